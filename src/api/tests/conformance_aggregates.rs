//! Nova conformance of host aggregates, quota classes, server passwords and the removed APIs:
//! statuses, fault keys and messages as Nova 34 answers them, and what a project member may
//! not do with any of them.

mod common;

use common::Api;

use axum::http::{Method, StatusCode};
use common::{IMAGE, TestApp, assert_compute_fault};
use serde_json::{Value, json};

impl<'a> Api<'a> {
    async fn create_server(&self, name: &str) -> String {
        let r = self
            .at("2.100")
            .call(
                Method::POST,
                "/servers",
                Some(json!({"server": {"name": name, "imageRef": IMAGE, "flavorRef": "1", "networks": "auto"}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        let id = r.body["server"]["id"].as_str().expect("id").to_owned();
        self.app.compute.idle().await;
        id
    }

    async fn aggregate(&self, name: &str, zone: Option<&str>) -> i64 {
        let r = self
            .call(
                Method::POST,
                "/os-aggregates",
                Some(json!({"aggregate": {"name": name, "availability_zone": zone}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["aggregate"]["id"].as_i64().expect("id")
    }

    async fn act(&self, id: i64, body: Value) -> common::Resp {
        self.call(
            Method::POST,
            &format!("/os-aggregates/{id}/action"),
            Some(body),
        )
        .await
    }
}

fn api(app: &TestApp, token: String) -> Api<'_> {
    Api {
        app,
        token,
        version: "2.1".into(),
    }
}

/// Asserts a Nova fault with exactly this message.
fn fault(r: &common::Resp, status: u16, key: &str, message: &str) {
    assert_compute_fault(r, status, key);
    assert_eq!(r.body[key]["message"], message, "{}", r.text);
}

async fn put(api: &Api<'_>, class: &str, body: Value) -> common::Resp {
    api.call(
        Method::PUT,
        &format!("/os-quota-class-sets/{class}"),
        Some(body),
    )
    .await
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test]
async fn aggregates_are_created_shown_changed_and_deleted_as_nova_answers() {
    let app = TestApp::new().await;
    let admin = api(&app, app.admin().await);
    let r = admin
        .call(
            Method::POST,
            "/os-aggregates",
            Some(json!({"aggregate": {"name": "agg1", "availability_zone": "london"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let a = &r.body["aggregate"];
    assert_eq!(
        keys(a),
        [
            "availability_zone",
            "created_at",
            "deleted",
            "deleted_at",
            "id",
            "name",
            "updated_at"
        ]
    );
    assert_eq!(a["availability_zone"], "london");
    assert_eq!(a["deleted"], false);
    assert!(a["updated_at"].is_null() && a["deleted_at"].is_null());
    let created = a["created_at"].as_str().expect("created_at");
    assert!(
        !created.ends_with('Z') && created.contains('.'),
        "{created}"
    );
    let id = a["id"].as_i64().expect("id");

    fault(
        &admin
            .call(
                Method::POST,
                "/os-aggregates",
                Some(json!({"aggregate": {"name": "agg1"}})),
            )
            .await,
        409,
        "conflictingRequest",
        "Aggregate agg1 already exists.",
    );

    // 2.41 adds the uuid; show and list carry hosts and metadata.
    let v41 = admin.at("2.41");
    let s = v41
        .call(Method::GET, &format!("/os-aggregates/{id}"), None)
        .await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.text);
    let a = &s.body["aggregate"];
    assert!(a["uuid"].as_str().is_some_and(|u| u.len() == 36), "{a}");
    assert_eq!(a["hosts"], json!([]));
    assert_eq!(a["metadata"], json!({"availability_zone": "london"}));
    let old = admin
        .call(Method::GET, &format!("/os-aggregates/{id}"), None)
        .await;
    assert!(old.body["aggregate"].get("uuid").is_none(), "{}", old.text);
    let l = v41.call(Method::GET, "/os-aggregates", None).await;
    assert_eq!(l.body["aggregates"].as_array().map(Vec::len), Some(1));
    assert_eq!(l.body["aggregates"][0]["uuid"], a["uuid"]);

    // A rename is the row's own change: updated_at is kept.
    let u = admin
        .call(
            Method::PUT,
            &format!("/os-aggregates/{id}"),
            Some(json!({"aggregate": {"name": " renamed "}})),
        )
        .await;
    assert_eq!(u.status, StatusCode::OK, "{}", u.text);
    assert_eq!(u.body["aggregate"]["name"], "renamed");
    let stamped = u.body["aggregate"]["updated_at"].clone();
    assert!(stamped.is_string(), "{}", u.text);
    fault(
        &admin
            .call(
                Method::PUT,
                &format!("/os-aggregates/{id}"),
                Some(json!({"aggregate": {"availability_zone": null}})),
            )
            .await,
        400,
        "badRequest",
        &format!(
            "Cannot update aggregate {id}. Reason: Aggregate renamed does not support empty named availability zone."
        ),
    );

    // Metadata: set, then null removes a key (an absent one too).
    let m = admin
        .act(
            id,
            json!({"set_metadata": {"metadata": {"k1": "v1", "k2": "v2"}}}),
        )
        .await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.text);
    assert_eq!(
        m.body["aggregate"]["metadata"],
        json!({"availability_zone": "london", "k1": "v1", "k2": "v2"})
    );
    assert!(m.body["aggregate"]["updated_at"].is_string());
    let m = admin
        .act(
            id,
            json!({"set_metadata": {"metadata": {"k1": null, "zz": null, "availability_zone": "paris"}}}),
        )
        .await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.text);
    assert_eq!(
        m.body["aggregate"]["metadata"],
        json!({"availability_zone": "paris", "k2": "v2"})
    );
    assert_eq!(m.body["aggregate"]["availability_zone"], "paris");
    fault(
        &admin
            .act(
                id,
                json!({"set_metadata": {"metadata": {"availability_zone": null}}}),
            )
            .await,
        400,
        "badRequest",
        &format!(
            "Cannot update metadata of aggregate {id}. Reason: Aggregate renamed does not support empty named availability zone."
        ),
    );
    // Metadata changes do not touch the row: show keeps the rename's stamp.
    let s = admin
        .call(Method::GET, &format!("/os-aggregates/{id}"), None)
        .await;
    assert_eq!(s.body["aggregate"]["updated_at"], stamped);

    // Hosts: only the box's own compute host exists.
    fault(
        &admin
            .act(id, json!({"add_host": {"host": "elsewhere"}}))
            .await,
        404,
        "itemNotFound",
        "Compute host elsewhere could not be found.",
    );
    let h = admin.act(id, json!({"add_host": {"host": "box"}})).await;
    assert_eq!(h.status, StatusCode::OK, "{}", h.text);
    assert_eq!(h.body["aggregate"]["hosts"], json!(["box"]));
    fault(
        &admin.act(id, json!({"add_host": {"host": "box"}})).await,
        409,
        "conflictingRequest",
        &format!("Aggregate {id} already has host box."),
    );
    fault(
        &admin
            .call(Method::DELETE, &format!("/os-aggregates/{id}"), None)
            .await,
        400,
        "badRequest",
        &format!("Cannot remove host from aggregate {id}. Reason: Host aggregate is not empty."),
    );
    let h = admin.act(id, json!({"remove_host": {"host": "box"}})).await;
    assert_eq!(h.status, StatusCode::OK, "{}", h.text);
    assert_eq!(h.body["aggregate"]["hosts"], json!([]));
    fault(
        &admin.act(id, json!({"remove_host": {"host": "box"}})).await,
        404,
        "itemNotFound",
        &format!("Cannot remove host box in aggregate {id}"),
    );
    let d = admin
        .call(Method::DELETE, &format!("/os-aggregates/{id}"), None)
        .await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.text);
    assert!(d.text.is_empty());
    fault(
        &admin
            .call(Method::GET, &format!("/os-aggregates/{id}"), None)
            .await,
        404,
        "itemNotFound",
        &format!("Aggregate {id} could not be found."),
    );
    fault(
        &admin.call(Method::GET, "/os-aggregates/abc", None).await,
        400,
        "badRequest",
        "Invalid input received: id must be an integer",
    );
    fault(
        &admin.act(99, json!({"add_host": {"host": "box"}})).await,
        404,
        "itemNotFound",
        "Aggregate 99 could not be found.",
    );
}

#[tokio::test]
async fn aggregate_bodies_are_checked_with_novas_messages() {
    let app = TestApp::new().await;
    let admin = api(&app, app.admin().await);
    let id = admin.aggregate("a", None).await;
    let create = |b: Value| admin.call(Method::POST, "/os-aggregates", Some(b));
    let cases: Vec<(Value, &str)> = vec![
        (json!([]), "[] is not of type 'object'"),
        (json!({}), "'aggregate' is a required property"),
        (
            json!({"aggregate": {"nam": "x"}}),
            "Invalid input for field/attribute aggregate. Value: {'nam': 'x'}. 'name' is a required property",
        ),
        (
            json!({"aggregate": {"name": ""}}),
            "Invalid input for field/attribute name. Value: . '' should be non-empty",
        ),
        (
            json!({"aggregate": {"name": " x"}}),
            "An invalid 'name' value was provided. The name must be: printable characters. Can not start or end with whitespace.",
        ),
        (
            json!({"aggregate": {"name": 5}}),
            "Invalid input for field/attribute name. Value: 5. 5 is not of type 'string'",
        ),
        (
            json!({"aggregate": {"name": "x", "availability_zone": "a:b"}}),
            "Invalid input for field/attribute availability_zone. Value: a:b. 'a:b' is not valid under any of the given schemas",
        ),
        (
            json!({"aggregate": {"name": "x"}, "foo": 1}),
            "Additional properties are not allowed ('foo' was unexpected)",
        ),
    ];
    for (body, message) in cases {
        fault(&create(body.clone()).await, 400, "badRequest", message);
    }
    fault(
        &admin
            .call(
                Method::PUT,
                &format!("/os-aggregates/{id}"),
                Some(json!({"aggregate": {}})),
            )
            .await,
        400,
        "badRequest",
        "Invalid input for field/attribute aggregate. Value: {}. {} is not valid under any of the given schemas",
    );
    let actions: Vec<(Value, &str)> = vec![
        (json!({}), "Malformed request body"),
        (
            json!({"add_host": {"host": "h"}, "remove_host": {"host": "h"}}),
            "Malformed request body",
        ),
        (json!({"foo": {}}), "There is no such action: foo"),
        (
            json!({"add_host": {"host": "a b"}}),
            "Invalid input for field/attribute host. Value: a b. 'a b' does not match '^[a-zA-Z0-9-._]*$'",
        ),
        (
            json!({"add_host": {}}),
            "Invalid input for field/attribute add_host. Value: {}. 'host' is a required property",
        ),
        (
            json!({"set_metadata": {"metadata": {"a/b": "x"}}}),
            "Invalid input for field/attribute metadata. Value: {'a/b': 'x'}. 'a/b' does not match any of the regexes: '^[a-zA-Z0-9-_:. ]{1,255}$'",
        ),
        (
            json!({"set_metadata": {"metadata": {"k": 5}}}),
            "Invalid input for field/attribute k. Value: 5. 5 is not of type 'string', 'null'",
        ),
        (
            json!({"set_metadata": {}}),
            "Invalid input for field/attribute set_metadata. Value: {}. 'metadata' is a required property",
        ),
    ];
    for (body, message) in actions {
        fault(&admin.act(id, body).await, 400, "badRequest", message);
    }
    // Nothing of it was written.
    let l = admin.call(Method::GET, "/os-aggregates", None).await;
    assert_eq!(l.body["aggregates"].as_array().map(Vec::len), Some(1));
    assert_eq!(l.body["aggregates"][0]["metadata"], json!({}));
    assert_eq!(l.body["aggregates"][0]["hosts"], json!([]));
}

#[tokio::test]
async fn a_zone_aggregate_moves_the_box_and_its_servers_keep_their_zone() {
    let app = TestApp::new().await;
    let admin = api(&app, app.admin().await).at("2.100");
    let member = api(&app, app.demo().await).at("2.100");
    let rome = admin.aggregate("rome-agg", Some("rome")).await;
    let other = admin.aggregate("other-agg", Some("other")).await;
    let plain = admin.aggregate("plain", None).await;
    let r = admin.act(rome, json!({"add_host": {"host": "box"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The host is in one zone at most.
    fault(
        &admin.act(other, json!({"add_host": {"host": "box"}})).await,
        409,
        "conflictingRequest",
        &format!(
            "Cannot add host to aggregate {other}. Reason: One or more hosts already in availability zone(s) ['rome']."
        ),
    );
    let r = admin.act(plain, json!({"add_host": {"host": "box"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    fault(
        &admin
            .act(
                plain,
                json!({"set_metadata": {"metadata": {"availability_zone": "other"}}}),
            )
            .await,
        400,
        "badRequest",
        &format!(
            "Cannot update metadata of aggregate {plain}. Reason: One or more hosts already in availability zone(s) ['rome']."
        ),
    );
    // Everyone sees the box in zone rome.
    let z = member
        .call(Method::GET, "/os-availability-zone", None)
        .await;
    assert_eq!(
        z.body["availabilityZoneInfo"][0]["zoneName"], "rome",
        "{}",
        z.text
    );
    let svc = admin.call(Method::GET, "/os-services", None).await;
    let compute = svc.body["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["binary"] == "nova-compute")
        .cloned()
        .expect("compute");
    assert_eq!(compute["zone"], "rome");
    let bad = member
        .call(
            Method::POST,
            "/servers",
            Some(json!({"server": {"name": "x", "imageRef": IMAGE, "flavorRef": "1", "networks": "auto", "availability_zone": "nova"}})),
        )
        .await;
    fault(
        &bad,
        400,
        "badRequest",
        "The requested availability zone is not available",
    );
    let sid = member.create_server("in-rome").await;
    let s = member
        .call(Method::GET, &format!("/servers/{sid}"), None)
        .await;
    assert_eq!(s.body["server"]["OS-EXT-AZ:availability_zone"], "rome");
    // With a server on the host its zone cannot change.
    fault(
        &admin
            .call(
                Method::PUT,
                &format!("/os-aggregates/{rome}"),
                Some(json!({"aggregate": {"availability_zone": "milan"}})),
            )
            .await,
        400,
        "badRequest",
        &format!(
            "Cannot update aggregate {rome}. Reason: One or more hosts contain instances in this zone."
        ),
    );
    let r = admin
        .act(rome, json!({"remove_host": {"host": "box"}}))
        .await;
    fault(
        &r,
        409,
        "conflictingRequest",
        &format!(
            "Cannot remove host from aggregate {rome}. Reason: The host cannot be removed from the aggregate as the availability zone of the host would change from 'rome' to 'None' but the host already has 1 instance(s). Changing the AZ of an existing instance is not supported by this action. Move the instances away from this host then try again. If you need to move the instances between AZs then you can use shelve_offload and unshelve to achieve this.."
        ),
    );
    // Once the server is gone the host may leave the zone, and the box is in `nova` again.
    let d = member
        .call(Method::DELETE, &format!("/servers/{sid}"), None)
        .await;
    assert_eq!(d.status, StatusCode::NO_CONTENT, "{}", d.text);
    app.compute.idle().await;
    let r = admin
        .act(rome, json!({"remove_host": {"host": "box"}}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let z = member
        .call(Method::GET, "/os-availability-zone", None)
        .await;
    assert_eq!(z.body["availabilityZoneInfo"][0]["zoneName"], "nova");
}

#[tokio::test]
async fn attack_a_member_cannot_read_or_change_aggregates() {
    let app = TestApp::new().await;
    let admin = api(&app, app.admin().await);
    let member = api(&app, app.demo().await);
    let id = admin.aggregate("ops", Some("london")).await;
    let denied = |rule: &str| {
        format!("Policy doesn't allow os_compute_api:os-aggregates:{rule} to be performed.")
    };
    fault(
        &member.call(Method::GET, "/os-aggregates", None).await,
        403,
        "forbidden",
        &denied("index"),
    );
    fault(
        &member
            .call(Method::GET, &format!("/os-aggregates/{id}"), None)
            .await,
        403,
        "forbidden",
        &denied("show"),
    );
    fault(
        &member
            .call(
                Method::POST,
                "/os-aggregates",
                Some(json!({"aggregate": {"name": "mine"}})),
            )
            .await,
        403,
        "forbidden",
        &denied("create"),
    );
    fault(
        &member
            .call(
                Method::PUT,
                &format!("/os-aggregates/{id}"),
                Some(json!({"aggregate": {"availability_zone": "mine"}})),
            )
            .await,
        403,
        "forbidden",
        &denied("update"),
    );
    fault(
        &member.act(id, json!({"add_host": {"host": "box"}})).await,
        403,
        "forbidden",
        &denied("add_host"),
    );
    fault(
        &member
            .act(id, json!({"remove_host": {"host": "box"}}))
            .await,
        403,
        "forbidden",
        &denied("remove_host"),
    );
    fault(
        &member
            .act(id, json!({"set_metadata": {"metadata": {"k": "v"}}}))
            .await,
        403,
        "forbidden",
        &denied("set_metadata"),
    );
    fault(
        &member
            .call(Method::DELETE, &format!("/os-aggregates/{id}"), None)
            .await,
        403,
        "forbidden",
        &denied("delete"),
    );
    // Nothing changed, and the box's zone is still the operator's.
    let s = admin
        .call(Method::GET, &format!("/os-aggregates/{id}"), None)
        .await;
    let a = &s.body["aggregate"];
    assert_eq!(a["name"], "ops");
    assert_eq!(a["hosts"], json!([]));
    assert_eq!(a["metadata"], json!({"availability_zone": "london"}));
    let l = admin.call(Method::GET, "/os-aggregates", None).await;
    assert_eq!(l.body["aggregates"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn quota_classes_show_per_microversion_and_default_feeds_every_project() {
    let app = TestApp::new().await;
    let admin = api(&app, app.admin().await);
    let member = api(&app, app.demo().await);
    let show = admin
        .call(Method::GET, "/os-quota-class-sets/default", None)
        .await;
    assert_eq!(show.status, StatusCode::OK, "{}", show.text);
    assert_eq!(
        keys(&show.body["quota_class_set"]),
        [
            "cores",
            "fixed_ips",
            "floating_ips",
            "id",
            "injected_file_content_bytes",
            "injected_file_path_bytes",
            "injected_files",
            "instances",
            "key_pairs",
            "metadata_items",
            "ram",
            "security_group_rules",
            "security_groups"
        ]
    );
    assert_eq!(show.body["quota_class_set"]["id"], "default");
    assert_eq!(show.body["quota_class_set"]["instances"], 10);
    let v50 = admin
        .at("2.50")
        .call(Method::GET, "/os-quota-class-sets/default", None)
        .await;
    assert_eq!(
        keys(&v50.body["quota_class_set"]),
        [
            "cores",
            "id",
            "injected_file_content_bytes",
            "injected_file_path_bytes",
            "injected_files",
            "instances",
            "key_pairs",
            "metadata_items",
            "ram",
            "server_group_members",
            "server_groups"
        ]
    );
    let v57 = admin
        .at("2.57")
        .call(Method::GET, "/os-quota-class-sets/gold", None)
        .await;
    assert_eq!(v57.body["quota_class_set"]["id"], "gold");
    assert_eq!(
        keys(&v57.body["quota_class_set"]),
        [
            "cores",
            "id",
            "instances",
            "key_pairs",
            "metadata_items",
            "ram",
            "server_group_members",
            "server_groups"
        ]
    );

    // Bodies, in Nova's words; the network keys go at 2.50.
    fault(
        &put(
            &admin,
            "default",
            json!({"quota_class_set": {"instances": -2}}),
        )
        .await,
        400,
        "badRequest",
        "Invalid input for field/attribute instances. Value: -2. -2 is less than the minimum of -1",
    );
    fault(
        &put(
            &admin,
            "default",
            json!({"quota_class_set": {"instances": "abc"}}),
        )
        .await,
        400,
        "badRequest",
        "Invalid input for field/attribute instances. Value: abc. 'abc' does not match '^-?[0-9]+$'",
    );
    fault(
        &put(
            &admin,
            "default",
            json!({"quota_class_set": {"force": true}}),
        )
        .await,
        400,
        "badRequest",
        "Invalid input for field/attribute quota_class_set. Value: {'force': True}. Additional properties are not allowed ('force' was unexpected)",
    );
    fault(
        &put(
            &admin.at("2.50"),
            "default",
            json!({"quota_class_set": {"fixed_ips": 3}}),
        )
        .await,
        400,
        "badRequest",
        "Invalid input for field/attribute quota_class_set. Value: {'fixed_ips': 3}. Additional properties are not allowed ('fixed_ips' was unexpected)",
    );

    // A member may neither read nor set a class.
    fault(
        &member
            .call(Method::GET, "/os-quota-class-sets/default", None)
            .await,
        403,
        "forbidden",
        "Policy doesn't allow os_compute_api:os-quota-class-sets:show to be performed.",
    );
    fault(
        &put(
            &member,
            "default",
            json!({"quota_class_set": {"instances": 1000}}),
        )
        .await,
        403,
        "forbidden",
        "Policy doesn't allow os_compute_api:os-quota-class-sets:update to be performed.",
    );

    // The admin sets the default class: the answer has no id and the old key set.
    let u = put(
        &admin,
        "default",
        json!({"quota_class_set": {"instances": 1, "cores": "30"}}),
    )
    .await;
    assert_eq!(u.status, StatusCode::OK, "{}", u.text);
    assert!(u.body["quota_class_set"].get("id").is_none(), "{}", u.text);
    assert_eq!(u.body["quota_class_set"]["instances"], 1);
    assert_eq!(u.body["quota_class_set"]["cores"], 30);
    // Another class is kept but does not count.
    let g = put(
        &admin,
        "gold",
        json!({"quota_class_set": {"instances": 50}}),
    )
    .await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.text);

    // Every project without its own limits now has the class's.
    let project = app
        .identity
        .validate(&member.token)
        .await
        .expect("validate")
        .expect("live")
        .project
        .expect("scoped")
        .0
        .id
        .to_string();
    let q = member
        .call(Method::GET, &format!("/os-quota-sets/{project}"), None)
        .await;
    assert_eq!(q.body["quota_set"]["instances"], 1, "{}", q.text);
    assert_eq!(q.body["quota_set"]["cores"], 30);
    let d = member
        .call(
            Method::GET,
            &format!("/os-quota-sets/{project}/defaults"),
            None,
        )
        .await;
    assert_eq!(d.body["quota_set"]["instances"], 1);
    let l = member.call(Method::GET, "/limits", None).await;
    assert_eq!(l.body["limits"]["absolute"]["maxTotalInstances"], 1);
    member.create_server("one").await;
    let r = member
        .at("2.100")
        .call(
            Method::POST,
            "/servers",
            Some(json!({"server": {"name": "two", "imageRef": IMAGE, "flavorRef": "1", "networks": "auto"}})),
        )
        .await;
    assert_compute_fault(&r, 403, "forbidden");
    assert!(
        r.text.contains("Quota exceeded for instances"),
        "{}",
        r.text
    );
    // A project's own limit still wins over the class.
    let r = admin
        .call(
            Method::PUT,
            &format!("/os-quota-sets/{project}"),
            Some(json!({"quota_set": {"instances": 5}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let q = member
        .call(Method::GET, &format!("/os-quota-sets/{project}"), None)
        .await;
    assert_eq!(q.body["quota_set"]["instances"], 5);
    assert_eq!(q.body["quota_set"]["cores"], 30);
}

#[tokio::test]
async fn server_passwords_are_shown_and_cleared_only_within_the_project() {
    let app = TestApp::new().await;
    let member = api(&app, app.demo().await);
    let admin = api(&app, app.admin().await);
    let (_, _, other_token) = app.user_with_role("other", "member").await;
    let other = api(&app, other_token);
    let id = member.create_server("pw").await;
    let path = format!("/servers/{id}/os-server-password");
    let r = member.call(Method::GET, &path, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"password": ""}));

    // What the guest posted to the metadata service.
    let sid = model::compute::ServerId::parse(&id).expect("id");
    app.store
        .write_blocking(|tx| store::compute::set_sysmeta(tx, &sid, "password", "ZW5jcnlwdGVk"))
        .expect("set");
    let r = member.call(Method::GET, &path, None).await;
    assert_eq!(r.body, json!({"password": "ZW5jcnlwdGVk"}));
    let r = admin.call(Method::GET, &path, None).await;
    assert_eq!(r.body, json!({"password": "ZW5jcnlwdGVk"}));

    // Another project's member learns nothing and clears nothing.
    let missing = format!("Instance {id} could not be found.");
    fault(
        &other.call(Method::GET, &path, None).await,
        404,
        "itemNotFound",
        &missing,
    );
    fault(
        &other.call(Method::DELETE, &path, None).await,
        404,
        "itemNotFound",
        &missing,
    );
    let r = member.call(Method::GET, &path, None).await;
    assert_eq!(r.body, json!({"password": "ZW5jcnlwdGVk"}));

    let r = member.call(Method::DELETE, &path, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert!(r.text.is_empty());
    let r = member.call(Method::GET, &path, None).await;
    assert_eq!(r.body, json!({"password": ""}));
    fault(
        &member
            .call(
                Method::GET,
                "/servers/00000000-0000-0000-0000-000000000000/os-server-password",
                None,
            )
            .await,
        404,
        "itemNotFound",
        "Instance 00000000-0000-0000-0000-000000000000 could not be found.",
    );
}

#[tokio::test]
async fn removed_apis_answer_410_on_novas_routes_only() {
    let app = TestApp::new().await;
    let member = api(&app, app.demo().await).at("2.100");
    let gone = "This resource is no longer available. No forwarding address is given.";
    let removed: &[(Method, &str)] = &[
        (Method::GET, "/os-agents"),
        (Method::POST, "/os-agents"),
        (Method::DELETE, "/os-agents/1"),
        (Method::GET, "/os-cells"),
        (Method::GET, "/os-cells/detail"),
        (Method::POST, "/os-cells/sync_instances"),
        (Method::GET, "/os-cells/c1/capacities"),
        (Method::POST, "/os-certificates"),
        (Method::GET, "/os-certificates/root"),
        (Method::GET, "/os-cloudpipe"),
        (Method::PUT, "/os-cloudpipe/1"),
        (Method::GET, "/os-fping"),
        (Method::GET, "/os-fping/1"),
        (Method::GET, "/os-fixed-ips/10.0.0.1"),
        (Method::GET, "/os-floating-ip-dns"),
        (Method::GET, "/os-floating-ip-dns/d/entries/e"),
        (Method::GET, "/os-floating-ips-bulk"),
        (Method::PUT, "/os-floating-ips-bulk/1"),
        (Method::GET, "/os-security-group-default-rules"),
        (Method::DELETE, "/os-security-group-default-rules/1"),
        (Method::GET, "/servers/abc/consoles"),
        (Method::DELETE, "/servers/abc/consoles/1"),
        (Method::GET, "/servers/abc/os-virtual-interfaces"),
        (Method::POST, "/os-networks"),
        (Method::POST, "/os-networks/add"),
        (Method::DELETE, "/os-networks/1"),
        (Method::POST, "/os-tenant-networks"),
        (Method::DELETE, "/os-tenant-networks/1"),
    ];
    for (m, path) in removed {
        let r = member.call(m.clone(), path, Some(json!({}))).await;
        assert_eq!(r.status.as_u16(), 410, "{m} {path}: {}", r.text);
        fault(&r, 410, "computeFault", gone);
    }
    // Other methods on those paths, and paths Nova never had, are unknown.
    let unknown: &[(Method, &str)] = &[
        (Method::DELETE, "/os-fping"),
        (Method::GET, "/os-agents/1"),
        (Method::GET, "/os-certificates"),
        (Method::GET, "/os-cells/x/y"),
        (Method::GET, "/os-virtual-interfaces"),
        (Method::GET, "/os-consoles"),
        (Method::POST, "/os-networks/1"),
    ];
    for (m, path) in unknown {
        let r = member.call(m.clone(), path, None).await;
        assert_eq!(r.status.as_u16(), 404, "{m} {path}: {}", r.text);
    }
    // Removed actions.
    for body in [json!({"reserve": null}), json!({"unreserve": null})] {
        fault(
            &member
                .call(Method::POST, "/os-fixed-ips/1/action", Some(body))
                .await,
            410,
            "computeFault",
            gone,
        );
    }
    for name in [
        "disassociate",
        "disassociate_host",
        "disassociate_project",
        "associate_host",
    ] {
        fault(
            &member
                .call(
                    Method::POST,
                    "/os-networks/1/action",
                    Some(json!({ name: null })),
                )
                .await,
            410,
            "computeFault",
            gone,
        );
    }
    fault(
        &member
            .call(
                Method::POST,
                "/os-networks/1/action",
                Some(json!({"foo": 1})),
            )
            .await,
        400,
        "badRequest",
        "There is no such action: foo",
    );
    fault(
        &member
            .call(
                Method::POST,
                "/servers/abc/action",
                Some(json!({"resetNetwork": null})),
            )
            .await,
        410,
        "computeFault",
        gone,
    );
}

/// A request to the metadata service as if from the guest at `from`.
async fn metadata(
    app: &TestApp,
    from: &str,
    method: Method,
    path: &str,
    body: &str,
) -> (StatusCode, String) {
    use tower::ServiceExt;
    let peer: std::net::SocketAddr = format!("{from}:40000").parse().expect("addr");
    let mut req = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .body(axum::body::Body::from(body.to_owned()))
        .expect("request");
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    let r = api::metadata::router(app.compute.clone())
        .oneshot(req)
        .await
        .expect("response");
    let status = r.status();
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn a_guest_posts_its_password_once_and_its_project_reads_and_clears_it() {
    let app = TestApp::new().await;
    let member = api(&app, app.demo().await);
    let id = member.create_server("guest").await;
    let s = member
        .call(Method::GET, &format!("/servers/{id}"), None)
        .await;
    let addr = s.body["server"]["addresses"]
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(|v| v[0]["addr"].as_str())
        .expect("an address")
        .to_owned();
    let (st, listing) = metadata(&app, &addr, Method::GET, "/openstack/latest", "").await;
    assert_eq!(st, StatusCode::OK);
    assert!(listing.lines().any(|l| l == "password"), "{listing}");
    let (st, pw) = metadata(&app, &addr, Method::GET, "/openstack/latest/password", "").await;
    assert_eq!((st, pw.as_str()), (StatusCode::OK, ""));

    let (st, _) = metadata(
        &app,
        &addr,
        Method::POST,
        "/openstack/latest/password",
        "c2VjcmV0",
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = metadata(
        &app,
        &addr,
        Method::POST,
        "/openstack/latest/password",
        "other",
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, pw) = metadata(&app, &addr, Method::GET, "/openstack/latest/password", "").await;
    assert_eq!((st, pw.as_str()), (StatusCode::OK, "c2VjcmV0"));
    let path = format!("/servers/{id}/os-server-password");
    let r = member.call(Method::GET, &path, None).await;
    assert_eq!(r.body, json!({"password": "c2VjcmV0"}));

    // Too long, a path that takes no posts, and an address that is no guest's.
    let long = "x".repeat(1021);
    let (st, _) = metadata(
        &app,
        &addr,
        Method::POST,
        "/openstack/latest/password",
        &long,
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = metadata(
        &app,
        &addr,
        Method::POST,
        "/openstack/latest/meta_data.json",
        "x",
    )
    .await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    let (st, _) = metadata(
        &app,
        "192.0.2.77",
        Method::POST,
        "/openstack/latest/password",
        "x",
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Cleared through the API, the guest may post again.
    let r = member.call(Method::DELETE, &path, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let (st, _) = metadata(
        &app,
        &addr,
        Method::POST,
        "/openstack/latest/password",
        "bmV3",
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let r = member.call(Method::GET, &path, None).await;
    assert_eq!(r.body, json!({"password": "bmV3"}));
}
