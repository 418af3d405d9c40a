//! Security groups and rules: Neutron's shapes, checks and faults, quotas, and what a member
//! of another project or a reader must not do (servers' groups: `network_sg_nova.rs`).

mod common;

use common::neutron as call;
use common::neutron_error;

use axum::http::{Method, StatusCode};
use common::{Resp, TestApp};
use serde_json::{Value, json};

async fn group(app: &TestApp, t: &str, name: &str) -> String {
    let r = call(
        app,
        Method::POST,
        "/security-groups",
        t,
        Some(json!({"security_group": {"name": name, "description": "d"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["security_group"]["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

async fn rule(app: &TestApp, t: &str, g: &str, extra: Value) -> Resp {
    let mut r = json!({"security_group_id": g, "direction": "ingress"});
    for (k, v) in extra.as_object().expect("object") {
        r[k] = v.clone();
    }
    call(
        app,
        Method::POST,
        "/security-group-rules",
        t,
        Some(json!({ "security_group_rule": r })),
    )
    .await
}

async fn default_group(app: &TestApp, t: &str) -> Value {
    let r = call(app, Method::GET, "/security-groups?name=default", t, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = r.body["security_groups"].as_array().expect("list");
    assert_eq!(v.len(), 1, "{}", r.text);
    v[0].clone()
}

#[tokio::test]
async fn groups_and_rules_have_neutrons_shapes() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    // The default group is made on first access, with Neutron's four rules.
    let d = default_group(&app, &t).await;
    assert_eq!(d["description"], "Default security group");
    assert_eq!(d["security_group_rules"].as_array().map(Vec::len), Some(4));
    let again = default_group(&app, &t).await;
    assert_eq!(again["id"], d["id"]);
    let r = call(
        &app,
        Method::POST,
        "/security-groups",
        &t,
        Some(json!({"security_group": {"name": "web", "description": "ssh in"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let g = &r.body["security_group"];
    for k in [
        "id",
        "name",
        "stateful",
        "tenant_id",
        "project_id",
        "description",
        "shared",
        "security_group_rules",
        "tags",
        "created_at",
        "updated_at",
        "revision_number",
    ] {
        assert!(g.get(k).is_some(), "{k} missing: {}", r.text);
    }
    assert_eq!(g["stateful"], true);
    let rules = g["security_group_rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 2);
    assert!(rules.iter().all(|x| x["direction"] == "egress"
        && x["protocol"].is_null()
        && x["remote_group_id"].is_null()));
    let eth: Vec<&str> = rules
        .iter()
        .filter_map(|x| x["ethertype"].as_str())
        .collect();
    assert_eq!(eth, ["IPv4", "IPv6"]);
    let gid = g["id"].as_str().expect("id").to_owned();
    let r = rule(
        &app,
        &t,
        &gid,
        json!({"protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "10.0.0.1/8"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let x = &r.body["security_group_rule"];
    assert_eq!(x["ethertype"], "IPv4");
    assert_eq!(x["protocol"], "tcp");
    assert_eq!(x["port_range_min"], 22);
    assert_eq!(x["remote_ip_prefix"], "10.0.0.1/8");
    assert_eq!(x["normalized_cidr"], "10.0.0.0/8");
    assert_eq!(x["belongs_to_default_sg"], false);
    assert_eq!(x["security_group_id"], gid.as_str());
    let rid = x["id"].as_str().expect("id").to_owned();
    let r = call(
        &app,
        Method::GET,
        &format!("/security-group-rules/{rid}"),
        &t,
        None,
    )
    .await;
    assert_eq!(r.body["security_group_rule"]["id"], rid.as_str());
    let r = call(
        &app,
        Method::GET,
        &format!("/security-group-rules?security_group_id={gid}"),
        &t,
        None,
    )
    .await;
    assert_eq!(
        r.body["security_group_rules"].as_array().map(Vec::len),
        Some(3)
    );
    // IPv6 icmp is stored as ipv6-icmp; "any" as no protocol.
    let r = rule(
        &app,
        &t,
        &gid,
        json!({"ethertype": "IPv6", "protocol": "icmp"}),
    )
    .await;
    assert_eq!(r.body["security_group_rule"]["protocol"], "ipv6-icmp");
    let r = rule(&app, &t, &gid, json!({"protocol": "any"})).await;
    assert!(
        r.body["security_group_rule"]["protocol"].is_null(),
        "{}",
        r.text
    );
    // Rename, describe; list and show.
    let r = call(
        &app,
        Method::PUT,
        &format!("/security-groups/{gid}"),
        &t,
        Some(json!({"security_group": {"name": "web2", "description": "x"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["security_group"]["name"], "web2");
    let r = call(&app, Method::GET, "/security-groups?name=web2", &t, None).await;
    assert_eq!(r.body["security_groups"][0]["id"], gid.as_str());
    assert_eq!(
        r.body["security_groups"][0]["security_group_rules"]
            .as_array()
            .map(Vec::len),
        Some(5)
    );
    // Delete a rule, then the group.
    let r = call(
        &app,
        Method::DELETE,
        &format!("/security-group-rules/{rid}"),
        &t,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = call(
        &app,
        Method::GET,
        &format!("/security-group-rules/{rid}"),
        &t,
        None,
    )
    .await;
    neutron_error(&r, 404, "SecurityGroupRuleNotFound");
    let r = call(
        &app,
        Method::DELETE,
        &format!("/security-groups/{gid}"),
        &t,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = call(
        &app,
        Method::GET,
        &format!("/security-groups/{gid}"),
        &t,
        None,
    )
    .await;
    neutron_error(&r, 404, "SecurityGroupNotFound");
}

#[tokio::test]
async fn rules_are_validated_with_neutrons_faults() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let g = group(&app, &t, "web").await;
    let cases = [
        (json!({"direction": "sideways"}), "HTTPBadRequest"),
        (
            json!({"ethertype": "IPv5"}),
            "SecurityGroupRuleInvalidEtherType",
        ),
        (
            json!({"protocol": "foo"}),
            "SecurityGroupRuleInvalidProtocol",
        ),
        (
            json!({"protocol": "256"}),
            "SecurityGroupRuleInvalidProtocol",
        ),
        (
            json!({"protocol": "tcp", "port_range_min": 80, "port_range_max": 22}),
            "SecurityGroupInvalidPortRange",
        ),
        (
            json!({"protocol": "udp", "port_range_min": 10}),
            "SecurityGroupInvalidPortRange",
        ),
        (
            json!({"protocol": "tcp", "port_range_min": 1, "port_range_max": 70000}),
            "SecurityGroupInvalidPortValue",
        ),
        (
            json!({"protocol": "tcp", "port_range_min": "a"}),
            "SecurityGroupInvalidPortValue",
        ),
        (
            json!({"protocol": "gre", "port_range_min": 1, "port_range_max": 2}),
            "SecurityGroupInvalidProtocolForPort",
        ),
        (
            json!({"port_range_min": 1, "port_range_max": 2}),
            "SecurityGroupProtocolRequiredWithPorts",
        ),
        (
            json!({"protocol": "icmp", "port_range_min": 8, "port_range_max": 256}),
            "SecurityGroupInvalidIcmpValue",
        ),
        (
            json!({"protocol": "icmp", "port_range_max": 3}),
            "SecurityGroupMissingIcmpType",
        ),
        (
            json!({"protocol": "icmpv6"}),
            "SecurityGroupEthertypeConflictWithProtocol",
        ),
        (
            json!({"ethertype": "IPv6", "remote_ip_prefix": "10.0.0.0/8"}),
            "SecurityGroupRuleParameterConflict",
        ),
        (json!({"remote_ip_prefix": "bogus"}), "InvalidCIDR"),
        (
            json!({"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": g}),
            "SecurityGroupMultipleRemoteEntites",
        ),
        (json!({"colour": "red"}), "HTTPBadRequest"),
    ];
    for (body, kind) in cases {
        let r = rule(&app, &t, &g, body.clone()).await;
        neutron_error(&r, 400, kind);
    }
    let r = rule(
        &app,
        &t,
        &g,
        json!({"protocol": "tcp", "port_range_min": 80, "port_range_max": 22}),
    )
    .await;
    assert_eq!(
        r.body["NeutronError"]["message"],
        "For TCP/UDP protocols, port_range_min must be <= port_range_max"
    );
    let r = call(
        &app,
        Method::POST,
        "/security-group-rules",
        &t,
        Some(json!({"security_group_rule": {"security_group_id": g}})),
    )
    .await;
    neutron_error(&r, 400, "HTTPBadRequest");
    let r = rule(
        &app,
        &t,
        &g,
        json!({"remote_group_id": "00000000-0000-0000-0000-000000000000"}),
    )
    .await;
    neutron_error(&r, 404, "SecurityGroupNotFound");
    let r = rule(&app, &t, "00000000-0000-0000-0000-000000000000", json!({})).await;
    neutron_error(&r, 404, "SecurityGroupNotFound");
    // Duplicates, by protocol number too, and of the default egress rules.
    let r = rule(
        &app,
        &t,
        &g,
        json!({"protocol": "6", "port_range_min": 80, "port_range_max": 80}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let first = r.body["security_group_rule"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let r = rule(
        &app,
        &t,
        &g,
        json!({"protocol": "tcp", "port_range_min": 80, "port_range_max": 80}),
    )
    .await;
    neutron_error(&r, 409, "SecurityGroupRuleExists");
    assert_eq!(
        r.body["NeutronError"]["message"],
        format!("Security group rule already exists. Rule id is {first}.")
    );
    let r = rule(
        &app,
        &t,
        &g,
        json!({"direction": "egress", "ethertype": "IPv4"}),
    )
    .await;
    neutron_error(&r, 409, "SecurityGroupRuleExists");
    // A remote group of the project is fine.
    let r = rule(&app, &t, &g, json!({"remote_group_id": g})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // Nothing invalid was written: 2 egress + 2 made above.
    let r = call(
        &app,
        Method::GET,
        &format!("/security-groups/{g}"),
        &t,
        None,
    )
    .await;
    assert_eq!(
        r.body["security_group"]["security_group_rules"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
}

#[tokio::test]
async fn the_default_group_and_groups_in_use_are_kept() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let d = default_group(&app, &t).await;
    let did = d["id"].as_str().expect("id").to_owned();
    let r = call(
        &app,
        Method::PUT,
        &format!("/security-groups/{did}"),
        &t,
        Some(json!({"security_group": {"name": "x"}})),
    )
    .await;
    neutron_error(&r, 409, "SecurityGroupCannotUpdateDefault");
    let r = call(
        &app,
        Method::PUT,
        &format!("/security-groups/{did}"),
        &t,
        Some(json!({"security_group": {"description": "mine"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(
        &app,
        Method::DELETE,
        &format!("/security-groups/{did}"),
        &t,
        None,
    )
    .await;
    neutron_error(&r, 409, "SecurityGroupCannotRemoveDefault");
    let r = call(
        &app,
        Method::POST,
        "/security-groups",
        &t,
        Some(json!({"security_group": {"name": "default"}})),
    )
    .await;
    neutron_error(&r, 409, "SecurityGroupDefaultAlreadyExists");
    let g = group(&app, &t, "web").await;
    let r = call(
        &app,
        Method::PUT,
        &format!("/security-groups/{g}"),
        &t,
        Some(json!({"security_group": {"name": "default"}})),
    )
    .await;
    neutron_error(&r, 409, "SecurityGroupDefaultAlreadyExists");
    // In use by a port.
    let r = call(
        &app,
        Method::POST,
        "/networks",
        &t,
        Some(json!({"network": {"name": "n"}})),
    )
    .await;
    let nid = r.body["network"]["id"].as_str().expect("id").to_owned();
    let r = call(
        &app,
        Method::POST,
        "/ports",
        &t,
        Some(json!({"port": {"network_id": nid, "security_groups": [g]}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["port"]["security_groups"], json!([g]));
    let pid = r.body["port"]["id"].as_str().expect("id").to_owned();
    let r = call(
        &app,
        Method::DELETE,
        &format!("/security-groups/{g}"),
        &t,
        None,
    )
    .await;
    neutron_error(&r, 409, "SecurityGroupInUse");
    assert_eq!(
        r.body["NeutronError"]["message"],
        format!("Security Group {g} in use.")
    );
    let r = call(&app, Method::DELETE, &format!("/ports/{pid}"), &t, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = call(
        &app,
        Method::DELETE,
        &format!("/security-groups/{g}"),
        &t,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
}

#[tokio::test]
async fn quotas_count_groups_and_rules_in_the_write() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let admin = app.admin().await;
    let d = default_group(&app, &t).await;
    let project = d["project_id"].as_str().expect("p").to_owned();
    let r = call(
        &app,
        Method::PUT,
        &format!("/quotas/{project}"),
        &admin,
        Some(json!({"quota": {"security_group": 2, "security_group_rule": 8}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // default (4 rules) + web (2 rules).
    let g = group(&app, &t, "web").await;
    let r = call(
        &app,
        Method::POST,
        "/security-groups",
        &t,
        Some(json!({"security_group": {"name": "more"}})),
    )
    .await;
    neutron_error(&r, 409, "OverQuota");
    assert_eq!(
        r.body["NeutronError"]["message"],
        "Quota exceeded for resources: ['security_group']."
    );
    for port in [1, 2] {
        let r = rule(
            &app,
            &t,
            &g,
            json!({"protocol": "udp", "port_range_min": port, "port_range_max": port}),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let r = rule(
        &app,
        &t,
        &g,
        json!({"protocol": "udp", "port_range_min": 3, "port_range_max": 3}),
    )
    .await;
    neutron_error(&r, 409, "OverQuota");
    let r = call(
        &app,
        Method::GET,
        &format!("/quotas/{project}/details"),
        &t,
        None,
    )
    .await;
    assert_eq!(
        r.body["quota"]["security_group_rule"]["used"], 8,
        "{}",
        r.text
    );
}

#[tokio::test]
async fn attack_another_project_reaches_no_group_or_rule_and_readers_write_nothing() {
    let app = TestApp::new().await;
    let a = app.demo().await;
    let (_, _, b) = app.user_with_role("mallory", "member").await;
    let (_, _, reader) = app.user_with_role("rita", "reader").await;
    let g = group(&app, &a, "web").await;
    let r = rule(
        &app,
        &a,
        &g,
        json!({"protocol": "tcp", "port_range_min": 22, "port_range_max": 22}),
    )
    .await;
    let rid = r.body["security_group_rule"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // B sees only its own default group and its rules.
    let r = call(&app, Method::GET, "/security-groups", &b, None).await;
    let v = r.body["security_groups"].as_array().expect("list");
    assert_eq!(v.len(), 1, "{}", r.text);
    assert_eq!(v[0]["name"], "default");
    let r = call(&app, Method::GET, "/security-group-rules", &b, None).await;
    assert!(
        r.body["security_group_rules"]
            .as_array()
            .expect("list")
            .iter()
            .all(|x| x["security_group_id"] == v[0]["id"]),
        "{}",
        r.text
    );
    let bg = v[0]["id"].as_str().expect("id").to_owned();
    let path = format!("/security-groups/{g}");
    neutron_error(
        &call(&app, Method::GET, &path, &b, None).await,
        404,
        "SecurityGroupNotFound",
    );
    neutron_error(
        &call(
            &app,
            Method::PUT,
            &path,
            &b,
            Some(json!({"security_group": {"name": "x"}})),
        )
        .await,
        404,
        "SecurityGroupNotFound",
    );
    neutron_error(
        &call(&app, Method::DELETE, &path, &b, None).await,
        404,
        "SecurityGroupNotFound",
    );
    let rpath = format!("/security-group-rules/{rid}");
    neutron_error(
        &call(&app, Method::GET, &rpath, &b, None).await,
        404,
        "SecurityGroupRuleNotFound",
    );
    neutron_error(
        &call(&app, Method::DELETE, &rpath, &b, None).await,
        404,
        "SecurityGroupRuleNotFound",
    );
    // No rule in A's group; A's group is no remote group of B's, nor a group of B's port.
    neutron_error(
        &rule(&app, &b, &g, json!({})).await,
        404,
        "SecurityGroupNotFound",
    );
    neutron_error(
        &rule(&app, &b, &bg, json!({"remote_group_id": g})).await,
        404,
        "SecurityGroupNotFound",
    );
    let r = call(
        &app,
        Method::POST,
        "/networks",
        &b,
        Some(json!({"network": {"name": "n"}})),
    )
    .await;
    let nid = r.body["network"]["id"].as_str().expect("id").to_owned();
    let r = call(
        &app,
        Method::POST,
        "/ports",
        &b,
        Some(json!({"port": {"network_id": nid, "security_groups": [g]}})),
    )
    .await;
    neutron_error(&r, 404, "SecurityGroupNotFound");
    // B cannot create a group in A's project.
    let r = call(
        &app,
        Method::GET,
        &format!("/security-groups/{g}"),
        &a,
        None,
    )
    .await;
    let pa = r.body["security_group"]["project_id"]
        .as_str()
        .expect("p")
        .to_owned();
    let r = call(
        &app,
        Method::POST,
        "/security-groups",
        &b,
        Some(json!({"security_group": {"name": "x", "project_id": pa}})),
    )
    .await;
    neutron_error(&r, 403, "PolicyNotAuthorized");
    // A reader writes nothing.
    let r = call(
        &app,
        Method::POST,
        "/security-groups",
        &reader,
        Some(json!({"security_group": {"name": "x"}})),
    )
    .await;
    neutron_error(&r, 403, "PolicyNotAuthorized");
    let rg = default_group(&app, &reader).await;
    let rgid = rg["id"].as_str().expect("id").to_owned();
    neutron_error(
        &rule(&app, &reader, &rgid, json!({"protocol": "tcp"})).await,
        403,
        "PolicyNotAuthorized",
    );
    let rr = rg["security_group_rules"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    neutron_error(
        &call(
            &app,
            Method::DELETE,
            &format!("/security-group-rules/{rr}"),
            &reader,
            None,
        )
        .await,
        403,
        "PolicyNotAuthorized",
    );
    neutron_error(
        &call(
            &app,
            Method::PUT,
            &format!("/security-groups/{rgid}"),
            &reader,
            Some(json!({"security_group": {"description": "x"}})),
        )
        .await,
        403,
        "PolicyNotAuthorized",
    );
    // A's group and rule are whole.
    let r = call(&app, Method::GET, &path, &a, None).await;
    assert_eq!(r.body["security_group"]["name"], "web");
    assert_eq!(
        r.body["security_group"]["security_group_rules"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
}
