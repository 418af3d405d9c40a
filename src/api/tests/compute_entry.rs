//! The way into the Compute API: tokens, microversion headers, the project id in the URL,
//! unknown routes, and the fault format for each.

mod common;

use axum::http::{Method, StatusCode};
use common::{TestApp, assert_compute_fault, assert_identity_error};

#[tokio::test]
async fn the_api_needs_a_valid_token() {
    let app = TestApp::new().await;
    for token in [None, Some("garbage")] {
        let r = app.get("/compute/v2.1/flavors", token).await;
        assert_identity_error(&r, 401);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Keystone uri=\"http://onebox.test/identity\"")
        );
    }
}

#[tokio::test]
async fn version_headers_are_negotiated() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let max = api::microversion::MAX_VERSION.to_string();
    let cases: &[(&str, &str, &str)] = &[
        ("x-openstack-nova-api-version", "2.1", "2.1"),
        ("x-openstack-nova-api-version", "latest", &max),
        ("openstack-api-version", "compute 2.1", "2.1"),
        ("openstack-api-version", "compute latest", &max),
        ("openstack-api-version", "volume 3.0", "2.1"),
    ];
    for (name, value, expect) in cases {
        let r = app
            .call(
                Method::GET,
                "/compute/v2.1/",
                &[("x-auth-token", &t), (name, value)],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {value}");
        assert_eq!(r.header("x-openstack-nova-api-version"), Some(*expect));
        assert_eq!(
            r.header("openstack-api-version"),
            Some(format!("compute {expect}").as_str())
        );
    }
}

#[tokio::test]
async fn bad_version_headers_are_refused() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let cases = [
        ("x-openstack-nova-api-version", "2.a", 400, "badRequest"),
        ("x-openstack-nova-api-version", "abc", 400, "badRequest"),
        ("x-openstack-nova-api-version", "2.01", 400, "badRequest"),
        ("openstack-api-version", "compute 2.x", 400, "badRequest"),
        ("x-openstack-nova-api-version", "3.0", 406, "computeFault"),
        ("x-openstack-nova-api-version", "2.999", 406, "computeFault"),
        ("x-openstack-nova-api-version", "1.1", 406, "computeFault"),
        (
            "openstack-api-version",
            "compute 2.999",
            406,
            "computeFault",
        ),
    ];
    for (name, value, status, fault) in cases {
        for uri in ["/compute/v2.1/", "/compute/v2.1/flavors"] {
            let r = app
                .call(
                    Method::GET,
                    uri,
                    &[("x-auth-token", &t), (name, value)],
                    None,
                )
                .await;
            assert_compute_fault(&r, status, fault);
            // A malformed version: no version headers. One out of range: Nova echoes it.
            let echoed = value.trim_start_matches("compute ");
            let (new, legacy) = if status == 406 {
                (Some(format!("compute {echoed}")), Some(echoed.to_owned()))
            } else {
                (None, None)
            };
            assert_eq!(
                r.header("x-openstack-nova-api-version").map(str::to_owned),
                legacy,
                "{value}"
            );
            assert_eq!(
                r.header("openstack-api-version").map(str::to_owned),
                new,
                "{value}"
            );
        }
    }
}

#[tokio::test]
async fn the_legacy_v2_endpoint_ignores_version_headers() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let r = app
        .call(
            Method::GET,
            "/compute/v2/nothing-here",
            &[
                ("x-auth-token", &t),
                ("x-openstack-nova-api-version", "2.999"),
            ],
            None,
        )
        .await;
    assert_webob_404(&r);
}

#[tokio::test]
async fn the_project_in_the_url_must_be_the_tokens() {
    let app = TestApp::new().await;
    let demo = app.demo().await;
    let (_, a_project, _) = app.user_with_role("alice", "member").await;
    // Demo's token on alice's project URL.
    let r = app
        .get(&format!("/compute/v2.1/{a_project}/"), Some(&demo))
        .await;
    assert_compute_fault(&r, 400, "badRequest");
    assert!(
        r.body["badRequest"]["message"]
            .as_str()
            .expect("message")
            .contains("doesn't match Context's project_id")
    );
    // Faults after negotiation carry the version headers.
    assert_eq!(r.header("x-openstack-nova-api-version"), Some("2.1"));
    // Even an admin may not use another project's URL.
    let admin = app.admin().await;
    let r = app
        .get(&format!("/compute/v2.1/{a_project}/"), Some(&admin))
        .await;
    assert_compute_fault(&r, 400, "badRequest");
    // Its own project works, with and without a trailing slash.
    let demo_project = app
        .identity
        .validate(&demo)
        .await
        .expect("validate")
        .expect("live")
        .project
        .expect("scoped")
        .0
        .id;
    for suffix in ["", "/"] {
        let r = app
            .get(
                &format!("/compute/v2.1/{demo_project}{suffix}"),
                Some(&demo),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["version"]["id"], "v2.1");
    }
}

/// webob's page for an unknown URL, as Nova's router answers one to a client that sends no
/// `Accept` (plain text, no microversion headers).
fn assert_webob_404(r: &common::Resp) {
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=UTF-8"));
    assert_eq!(
        r.text,
        "404 Not Found\n\nThe resource could not be found.\n\n   "
    );
    assert!(r.header("x-openstack-nova-api-version").is_none());
}

#[tokio::test]
async fn webob_pages_are_negotiated_as_webob_does() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let html = "<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n  <h1>404 Not Found</h1>\n  The resource could not be found.<br /><br />\n\n\n\n </body>\n</html>";
    for (accept, ctype) in [
        ("*/*", "text/html; charset=UTF-8"),
        ("text/*", "text/html; charset=UTF-8"),
        ("application/json, text/html", "text/html; charset=UTF-8"),
        (
            "application/json;q=0.5, text/html",
            "text/html; charset=UTF-8",
        ),
        ("text/html;q=0, application/json;q=0.1", "application/json"),
        ("text/plain", "text/plain; charset=UTF-8"),
        ("image/png", "text/plain; charset=UTF-8"),
    ] {
        let r = app
            .call(
                Method::GET,
                "/compute/v2.1/nonexistent",
                &[("x-auth-token", &t), ("accept", accept)],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{accept}");
        assert_eq!(r.header("content-type"), Some(ctype), "{accept}");
        if ctype.starts_with("text/html") {
            assert_eq!(r.text, html, "{accept}");
        }
    }
}

#[tokio::test]
async fn unknown_routes_are_nova_404s() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    for uri in ["/compute/v2.1/nonexistent", "/compute/v2.1/servers-ish/x"] {
        let r = app.get(uri, Some(&t)).await;
        assert_webob_404(&r);
    }
    // A method the route does not serve is a 404 too, as Nova's router answers it.
    for (m, uri) in [
        (Method::PATCH, "/compute/v2.1/"),
        (Method::DELETE, "/compute/v2.1/flavors"),
    ] {
        let r = app.call(m, uri, &[("x-auth-token", &t)], None).await;
        assert_webob_404(&r);
    }
    // A client that accepts JSON gets webob's JSON document.
    let r = app
        .call(
            Method::GET,
            "/compute/v2.1/nonexistent",
            &[("x-auth-token", &t), ("accept", "application/json")],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.body,
        serde_json::json!({
            "message": "The resource could not be found.<br /><br />\n\n\n",
            "code": "404 Not Found",
            "title": "Not Found"
        })
    );
    // A body past Nova's max_request_body_size: webob's 413, in Nova's words.
    let big = serde_json::json!({"keypair": {"name": "k", "public_key": "x".repeat(120_000)}});
    let r = app
        .call(
            Method::POST,
            "/compute/v2.1/os-keypairs",
            &[("x-auth-token", &t), ("accept", "application/json")],
            Some(big),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert_eq!(
        r.body["message"],
        "Request is too large. Larger than max_request_body_size (%s).<br /><br />\n\n\n"
    );
    assert_eq!(r.body["code"], "413 Request Entity Too Large");
    // Outside every service: onebox's own JSON 404.
    let r = app.get("/nowhere", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["error"]["code"], 404);
}
