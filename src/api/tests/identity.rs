//! Identity v3 as Keystone answers it: tokens, catalog, admin resources, policy, and every
//! refusal with its status and body, with nothing written by a refused request.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{ADMIN_PW, DEMO_PW, TestApp, assert_identity_error};
use serde_json::{Value, json};

fn ids(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {list}"))
        .iter()
        .map(|v| v["name"].as_str().expect("name").to_owned())
        .collect()
}

#[tokio::test]
async fn password_token_has_keystones_shape() {
    let app = TestApp::new().await;
    let r = app.login("admin", ADMIN_PW, Some("admin")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let token = r.header("x-subject-token").expect("token");
    assert_eq!(token.len(), 43);
    let t = &r.body["token"];
    assert_eq!(t["methods"], json!(["password"]));
    assert_eq!(t["user"]["name"], "admin");
    assert_eq!(
        t["user"]["domain"],
        json!({"id": "default", "name": "Default"})
    );
    assert_eq!(t["project"]["name"], "admin");
    assert_eq!(t["project"]["domain"]["id"], "default");
    assert_eq!(t["is_domain"], false);
    assert_eq!(t["audit_ids"].as_array().map(Vec::len), Some(1));
    for k in ["expires_at", "issued_at"] {
        let s = t[k].as_str().expect("time");
        // %Y-%m-%dT%H:%M:%S.%fZ
        assert_eq!(s.len(), 27, "{s}");
        assert!(s.ends_with('Z') && s.as_bytes()[19] == b'.', "{s}");
    }
    // Effective roles: admin implies manager, member and reader.
    let mut roles: Vec<&str> = t["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    roles.sort();
    assert_eq!(roles, ["admin", "manager", "member", "reader"]);
    // The catalog: identity, compute, image, network and baremetal, each with three interfaces, region and
    // region_id on every endpoint.
    let catalog = t["catalog"].as_array().expect("catalog");
    let types: Vec<&str> = catalog
        .iter()
        .map(|s| s["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        [
            "identity",
            "compute",
            "image",
            "network",
            "block-storage",
            "volumev3",
            "baremetal"
        ]
    );
    for svc in catalog {
        let eps = svc["endpoints"].as_array().expect("endpoints");
        assert_eq!(eps.len(), 3);
        for ep in eps {
            assert_eq!(ep["region"], "RegionOne");
            assert_eq!(ep["region_id"], "RegionOne");
            assert!(ep["id"].is_string() && ep["url"].is_string() && ep["interface"].is_string());
        }
    }
    assert_eq!(
        catalog[1]["endpoints"][0]["url"],
        "http://onebox.test/compute/v2.1"
    );
    // ?nocatalog leaves it out.
    let auth = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "demo", "domain": {"id": "default"}, "password": DEMO_PW}}}, "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}}});
    let r = app
        .call(
            Method::POST,
            "/identity/v3/auth/tokens?nocatalog",
            &[],
            Some(auth),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.body["token"].get("catalog").is_none());
    assert!(r.body["token"]["roles"].is_array());
}

#[tokio::test]
async fn users_and_projects_can_be_named_by_id() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let info = app.get("/identity/v3/auth/tokens", Some(&admin)).await;
    // Without X-Subject-Token validation is a 404 in Keystone's format.
    assert_identity_error(&info, 404);
    let me = app
        .call(
            Method::GET,
            "/identity/v3/auth/tokens",
            &[("x-auth-token", &admin), ("x-subject-token", &admin)],
            None,
        )
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    let uid = me.body["token"]["user"]["id"].as_str().expect("uid");
    let pid = me.body["token"]["project"]["id"].as_str().expect("pid");
    let r = app
        .call(
            Method::POST,
            "/identity/v3/auth/tokens",
            &[],
            Some(json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"id": uid, "password": ADMIN_PW}}}, "scope": {"project": {"id": pid}}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["token"]["project"]["id"], pid);
}

#[tokio::test]
async fn unscoped_default_scoped_and_rescoped_tokens() {
    let app = TestApp::new().await;
    let r = app.login("demo", DEMO_PW, None).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let t = &r.body["token"];
    for absent in ["project", "roles", "catalog"] {
        assert!(t.get(absent).is_none(), "{absent} in an unscoped token");
    }
    let unscoped = r.header("x-subject-token").expect("token").to_owned();
    // The unscoped token lists the projects it may scope to, but no catalog.
    let ps = app.get("/identity/v3/auth/projects", Some(&unscoped)).await;
    assert_eq!(ids(&ps.body, "projects"), ["demo"]);
    let cat = app.get("/identity/v3/auth/catalog", Some(&unscoped)).await;
    assert_identity_error(&cat, 403);
    // Rescope with the token method: methods grow and the audit chain is kept.
    let r = app
        .call(
            Method::POST,
            "/identity/v3/auth/tokens",
            &[],
            Some(json!({"auth": {"identity": {"methods": ["token"], "token": {"id": unscoped}}, "scope": {"project": {"name": "demo", "domain": {"id": "default"}}}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["token"]["methods"], json!(["password", "token"]));
    assert_eq!(r.body["token"]["audit_ids"][1], t["audit_ids"][0]);
    let scoped = r.header("x-subject-token").expect("token").to_owned();
    let cat = app.get("/identity/v3/auth/catalog", Some(&scoped)).await;
    assert_eq!(cat.status, StatusCode::OK);
    assert_eq!(cat.body["catalog"].as_array().map(Vec::len), Some(7));
    // With no scope at all, a user with a default project gets a token on it.
    let r = app
        .call(
            Method::POST,
            "/identity/v3/auth/tokens",
            &[],
            Some(json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "demo", "domain": {"name": "Default"}, "password": DEMO_PW}}}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["token"]["project"]["name"], "demo");
}

#[tokio::test]
async fn wrong_credentials_get_keystones_401() {
    let app = TestApp::new().await;
    let cases = [
        ("admin", "wrong", Some("admin")),
        ("nobody", "x", Some("admin")),
        // Right password, a project the user has no role on.
        ("demo", DEMO_PW, Some("admin")),
        ("demo", DEMO_PW, Some("no-such-project")),
    ];
    for (user, pw, project) in cases {
        let r = app.login(user, pw, project).await;
        assert_identity_error(&r, 401);
        assert_eq!(
            r.body["error"]["message"],
            "The request you have made requires authentication."
        );
        assert!(r.header("x-subject-token").is_none());
        assert_eq!(
            r.header("www-authenticate"),
            Some("Keystone uri=\"http://onebox.test/identity/v3\"")
        );
    }
    let r = app
        .call(
            Method::POST,
            "/identity/v3/auth/tokens",
            &[],
            Some(json!({"auth": {"identity": {"methods": ["totp"]}}})),
        )
        .await;
    assert_identity_error(&r, 401);
}

#[tokio::test]
async fn failed_logins_lock_for_a_while_only() {
    // The test config locks after 3 failures for 1 s, then 2 s at most.
    let app = TestApp::new().await;
    for _ in 0..3 {
        assert_identity_error(&app.login("demo", "bad", Some("demo")).await, 401);
    }
    let r = app.login("demo", DEMO_PW, Some("demo")).await;
    assert_identity_error(&r, 401);
    // The refusal is the one a wrong password gets: it names no account and does not say
    // the account exists or is locked.
    assert_eq!(
        r.body["error"]["message"], "The request you have made requires authentication.",
        "{}",
        r.text
    );
    // Another user is not affected.
    assert_eq!(
        app.login("admin", ADMIN_PW, Some("admin")).await.status,
        StatusCode::CREATED
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = app.login("demo", DEMO_PW, Some("demo")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

#[tokio::test]
async fn expired_tokens_are_refused_everywhere() {
    let mut cfg = common::fast_config();
    // Long enough that a loaded machine still uses the fresh tokens before they expire.
    cfg.token_ttl = Duration::from_secs(3);
    let app = TestApp::with_config(cfg).await;
    let t = app.demo().await;
    let admin = app.admin().await;
    assert_eq!(
        app.get("/compute/v2.1/no-such-thing", Some(&t))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_identity_error(&app.get("/compute/v2.1/no-such-thing", Some(&t)).await, 401);
    assert_identity_error(&app.get("/identity/v3/auth/projects", Some(&t)).await, 401);
    // Admin's token expired too; a fresh one sees the old token as unknown.
    assert_identity_error(&app.get("/identity/v3/users", Some(&admin)).await, 401);
    let fresh = app.admin().await;
    let r = app
        .call(
            Method::GET,
            "/identity/v3/auth/tokens",
            &[("x-auth-token", &fresh), ("x-subject-token", &t)],
            None,
        )
        .await;
    assert_identity_error(&r, 404);
}

#[tokio::test]
async fn revoked_tokens_are_refused() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let h = [
        ("x-auth-token", t.as_str()),
        ("x-subject-token", t.as_str()),
    ];
    assert_eq!(
        app.call(Method::HEAD, "/identity/v3/auth/tokens", &h, None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.call(Method::DELETE, "/identity/v3/auth/tokens", &h, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_identity_error(&app.get("/compute/v2.1/no-such-thing", Some(&t)).await, 401);
    let admin = app.admin().await;
    let r = app
        .call(
            Method::HEAD,
            "/identity/v3/auth/tokens",
            &[("x-auth-token", &admin), ("x-subject-token", &t)],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Rescoping from a revoked token fails as Keystone fails it.
    let r = app
        .call(
            Method::POST,
            "/identity/v3/auth/tokens",
            &[],
            Some(json!({"auth": {"identity": {"methods": ["token"], "token": {"id": t}}}})),
        )
        .await;
    assert_identity_error(&r, 404);
}

#[tokio::test]
async fn a_user_may_not_inspect_anothers_token() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let demo = app.demo().await;
    let r = app
        .call(
            Method::GET,
            "/identity/v3/auth/tokens",
            &[("x-auth-token", &demo), ("x-subject-token", &admin)],
            None,
        )
        .await;
    assert_identity_error(&r, 403);
    // An admin may.
    let r = app
        .call(
            Method::GET,
            "/identity/v3/auth/tokens",
            &[("x-auth-token", &admin), ("x-subject-token", &demo)],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["token"]["user"]["name"], "demo");
}

#[tokio::test]
async fn password_change_and_disable_end_sessions() {
    let app = TestApp::new().await;
    let (uid, _, t) = app.user_with_role("carol", "member").await;
    let admin = app.admin().await;
    let h = [("x-auth-token", admin.as_str())];
    let r = app
        .call(
            Method::PATCH,
            &format!("/identity/v3/users/{uid}"),
            &h,
            Some(json!({"user": {"password": "new-pw"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["user"].get("password").is_none());
    assert_identity_error(&app.get("/compute/v2.1/no-such-thing", Some(&t)).await, 401);
    assert_identity_error(&app.login("carol", "pw-carol", Some("carol")).await, 401);
    let t2 = app.token("carol", "new-pw", "carol").await;
    let r = app
        .call(
            Method::PATCH,
            &format!("/identity/v3/users/{uid}"),
            &h,
            Some(json!({"user": {"enabled": false}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_identity_error(
        &app.get("/compute/v2.1/no-such-thing", Some(&t2)).await,
        401,
    );
    let r = app.login("carol", "new-pw", Some("carol")).await;
    assert_identity_error(&r, 401);
    assert!(r.text.contains("disabled"), "{}", r.text);
}

#[tokio::test]
async fn users_change_their_own_password_with_the_old_one() {
    let app = TestApp::new().await;
    let (uid, _, t) = app.user_with_role("dave", "reader").await;
    let url = format!("/identity/v3/users/{uid}/password");
    let h = [("x-auth-token", t.as_str())];
    let bad = app
        .call(
            Method::POST,
            &url,
            &h,
            Some(json!({"user": {"original_password": "nope", "password": "n1"}})),
        )
        .await;
    assert_identity_error(&bad, 401);
    let ok = app
        .call(
            Method::POST,
            &url,
            &h,
            Some(json!({"user": {"original_password": "pw-dave", "password": "n1"}})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT, "{}", ok.text);
    app.token("dave", "n1", "dave").await;
}

#[tokio::test]
async fn admin_crud_of_projects_users_and_roles() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let h = [("x-auth-token", admin.as_str())];
    let p = app
        .call(
            Method::POST,
            "/identity/v3/projects",
            &h,
            Some(json!({"project": {"name": "p1", "description": "first", "enabled": true}})),
        )
        .await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.text);
    let pid = p.body["project"]["id"].as_str().expect("id").to_owned();
    assert_eq!(p.body["project"]["domain_id"], "default");
    assert_eq!(p.body["project"]["parent_id"], "default");
    assert_eq!(
        p.body["project"]["links"]["self"],
        format!("http://onebox.test/identity/v3/projects/{pid}")
    );
    // A second project of that name in the domain is a conflict.
    let dup = app
        .call(
            Method::POST,
            "/identity/v3/projects",
            &h,
            Some(json!({"project": {"name": "p1"}})),
        )
        .await;
    assert_identity_error(&dup, 409);
    // Lookups by name, with unknown query parameters ignored.
    let by_name = app
        .get(
            "/identity/v3/projects?name=p1&domain_id=default",
            Some(&admin),
        )
        .await;
    assert_eq!(ids(&by_name.body, "projects"), ["p1"]);
    let miss = app
        .get("/identity/v3/projects/p1?domain_id=default", Some(&admin))
        .await;
    assert_identity_error(&miss, 404);
    // A trailing slash is ignored, as Keystone ignores it.
    let slash = app.get("/identity/v3/projects/", Some(&admin)).await;
    assert_eq!(ids(&slash.body, "projects"), ["admin", "demo", "p1"]);

    let u = app
        .call(
            Method::POST,
            "/identity/v3/users",
            &h,
            Some(json!({"user": {"name": "u1", "password": "pw", "default_project_id": pid, "email": "u1@example.org"}})),
        )
        .await;
    assert_eq!(u.status, StatusCode::CREATED, "{}", u.text);
    let uid = u.body["user"]["id"].as_str().expect("id").to_owned();
    assert!(u.body["user"].get("password").is_none());
    assert_eq!(u.body["user"]["email"], "u1@example.org");
    assert_eq!(u.body["user"]["default_project_id"], pid);

    let roles = app
        .get("/identity/v3/roles?name=reader", Some(&admin))
        .await;
    let rid = roles.body["roles"][0]["id"]
        .as_str()
        .expect("rid")
        .to_owned();
    let grant = format!("/identity/v3/projects/{pid}/users/{uid}/roles/{rid}");
    assert_eq!(
        app.call(Method::HEAD, &grant, &h, None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call(Method::PUT, &grant, &h, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.call(Method::HEAD, &grant, &h, None).await.status,
        StatusCode::NO_CONTENT
    );
    let listed = app
        .get(
            &format!("/identity/v3/projects/{pid}/users/{uid}/roles"),
            Some(&admin),
        )
        .await;
    assert_eq!(ids(&listed.body, "roles"), ["reader"]);
    // Granting an unknown role names what is missing.
    let r = app
        .call(
            Method::PUT,
            &format!("/identity/v3/projects/{pid}/users/{uid}/roles/nope"),
            &h,
            None,
        )
        .await;
    assert_identity_error(&r, 404);
    assert!(r.text.contains("Could not find role: nope"), "{}", r.text);

    // Assignments, plain, with names, and effective (implied roles expanded).
    let a = app
        .get(
            &format!("/identity/v3/role_assignments?scope.project.id={pid}&include_names=True"),
            Some(&admin),
        )
        .await;
    let list = a.body["role_assignments"].as_array().expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["role"]["name"], "reader");
    assert_eq!(list[0]["user"]["name"], "u1");
    assert_eq!(list[0]["user"]["domain"]["name"], "Default");
    assert_eq!(list[0]["scope"]["project"]["name"], "p1");
    assert_eq!(
        list[0]["links"]["assignment"],
        format!("http://onebox.test{grant}")
    );
    let demo_pid = app
        .get("/identity/v3/projects?name=demo", Some(&admin))
        .await
        .body["projects"][0]["id"]
        .as_str()
        .expect("demo")
        .to_owned();
    let eff = app
        .get(
            &format!("/identity/v3/role_assignments?scope.project.id={demo_pid}&effective"),
            Some(&admin),
        )
        .await;
    let eff = eff.body["role_assignments"].as_array().expect("list");
    assert_eq!(eff.len(), 2, "member and the reader it implies: {eff:?}");
    assert!(eff.iter().any(|e| e["links"]["prior_role"].is_string()));

    // The new user logs in to its project with the granted role.
    let t = app.token("u1", "pw", "p1").await;
    let v = app
        .call(
            Method::GET,
            "/identity/v3/auth/tokens",
            &[("x-auth-token", &t), ("x-subject-token", &t)],
            None,
        )
        .await;
    assert_eq!(v.body["token"]["roles"][0]["name"], "reader");

    // Revoking the only role ends the project-scoped token.
    assert_eq!(
        app.call(Method::DELETE, &grant, &h, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_identity_error(&app.get("/compute/v2.1/no-such-thing", Some(&t)).await, 401);

    // Custom roles come and go; the built-in personas stay.
    let r = app
        .call(
            Method::POST,
            "/identity/v3/roles",
            &h,
            Some(json!({"role": {"name": "operator"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let op = r.body["role"]["id"].as_str().expect("id").to_owned();
    assert_eq!(
        app.call(
            Method::DELETE,
            &format!("/identity/v3/roles/{op}"),
            &h,
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_identity_error(
        &app.call(
            Method::DELETE,
            &format!("/identity/v3/roles/{rid}"),
            &h,
            None,
        )
        .await,
        403,
    );

    // Deletes.
    assert_eq!(
        app.call(
            Method::DELETE,
            &format!("/identity/v3/users/{uid}"),
            &h,
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.call(
            Method::DELETE,
            &format!("/identity/v3/projects/{pid}"),
            &h,
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_identity_error(
        &app.call(
            Method::DELETE,
            &format!("/identity/v3/projects/{pid}"),
            &h,
            None,
        )
        .await,
        404,
    );
    let left = app.get("/identity/v3/projects", Some(&admin)).await;
    assert_eq!(ids(&left.body, "projects"), ["admin", "demo"]);
}

#[tokio::test]
async fn readers_and_members_cannot_administer_and_nothing_is_written() {
    let app = TestApp::new().await;
    let (reader_uid, _, reader) = app.user_with_role("rita", "reader").await;
    let member = app.demo().await;
    let admin = app.admin().await;
    let before_projects = app.get("/identity/v3/projects", Some(&admin)).await.body;
    let before_users = app.get("/identity/v3/users", Some(&admin)).await.body;
    for t in [&reader, &member] {
        let h = [("x-auth-token", t.as_str())];
        let writes = [
            (
                Method::POST,
                "/identity/v3/projects".to_owned(),
                json!({"project": {"name": "evil"}}),
            ),
            (
                Method::POST,
                "/identity/v3/users".to_owned(),
                json!({"user": {"name": "evil", "password": "x"}}),
            ),
            (
                Method::POST,
                "/identity/v3/roles".to_owned(),
                json!({"role": {"name": "evil"}}),
            ),
            (
                Method::PATCH,
                format!("/identity/v3/users/{reader_uid}"),
                json!({"user": {"password": "x"}}),
            ),
            (
                Method::DELETE,
                format!("/identity/v3/users/{reader_uid}"),
                Value::Null,
            ),
        ];
        for (m, uri, body) in writes {
            let body = (!body.is_null()).then_some(body);
            let r = app.call(m.clone(), &uri, &h, body).await;
            assert_identity_error(&r, 403);
        }
        assert_identity_error(&app.get("/identity/v3/projects", Some(t)).await, 403);
        assert_identity_error(&app.get("/identity/v3/users", Some(t)).await, 403);
    }
    // A user may read itself but not others.
    let me = app
        .get(&format!("/identity/v3/users/{reader_uid}"), Some(&reader))
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(
        app.get("/identity/v3/projects", Some(&admin)).await.body,
        before_projects
    );
    assert_eq!(
        app.get("/identity/v3/users", Some(&admin)).await.body,
        before_users
    );
    // The password of the reader still works: the refused PATCH wrote nothing.
    app.token("rita", "pw-rita", "rita").await;
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_refused() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let h = [("x-auth-token", admin.as_str())];
    let bodies: [&[u8]; 5] = [
        b"{\"project\":",
        b"not json",
        b"{\"project\": {\"name\": 5}}",
        b"{\"project\": []}",
        b"{}",
    ];
    for b in bodies {
        let r = app
            .call_raw(Method::POST, "/identity/v3/projects", &h, Some(b.to_vec()))
            .await;
        assert_identity_error(&r, 400);
    }
    let r = app
        .call_raw(
            Method::POST,
            "/identity/v3/projects",
            &h,
            Some(b"{".to_vec()),
        )
        .await;
    assert!(
        r.text.contains("Expecting to find valid JSON"),
        "{}",
        r.text
    );
    let big = format!(
        "{{\"project\": {{\"name\": \"big\", \"description\": \"{}\"}}}}",
        "x".repeat(200_000)
    );
    let r = app
        .call_raw(
            Method::POST,
            "/identity/v3/projects",
            &h,
            Some(big.into_bytes()),
        )
        .await;
    assert_identity_error(&r, 413);
    let r = app
        .call_raw(
            Method::POST,
            "/identity/v3/projects",
            &[
                ("x-auth-token", &admin),
                ("content-type", "application/xml"),
            ],
            Some(b"<project/>".to_vec()),
        )
        .await;
    assert_identity_error(&r, 415);
    let r = app
        .call_raw(
            Method::POST,
            "/identity/v3/auth/tokens",
            &[],
            Some(b"{\"auth\": {}}".to_vec()),
        )
        .await;
    assert_identity_error(&r, 400);
    let names = ids(
        &app.get("/identity/v3/projects", Some(&admin)).await.body,
        "projects",
    );
    assert_eq!(names, ["admin", "demo"]);
}

#[tokio::test]
async fn catalog_views_and_domains() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let s = app.get("/identity/v3/services", Some(&admin)).await;
    assert_eq!(s.body["services"].as_array().map(Vec::len), Some(7));
    let e = app.get("/identity/v3/endpoints", Some(&admin)).await;
    let eps = e.body["endpoints"].as_array().expect("endpoints");
    assert_eq!(eps.len(), 21);
    let one = app
        .get(
            &format!(
                "/identity/v3/endpoints/{}",
                eps[4]["id"].as_str().expect("id")
            ),
            Some(&admin),
        )
        .await;
    assert_eq!(one.body["endpoint"], eps[4]);
    let d = app.get("/identity/v3/domains", Some(&admin)).await;
    assert_eq!(d.body["domains"][0]["id"], "default");
    let d = app.get("/identity/v3/domains/default", Some(&admin)).await;
    assert_eq!(d.body["domain"]["name"], "Default");
    assert_identity_error(
        &app.get("/identity/v3/domains/nope", Some(&admin)).await,
        404,
    );
    assert_identity_error(&app.get("/identity/v3/nothing", Some(&admin)).await, 404);
}
