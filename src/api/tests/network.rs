//! The networking API's networks, subnets and ports: shapes, Neutron's validation and
//! faults, list parameters, quotas, and what a member of another project must not do.

mod common;

use common::neutron as call;
use common::neutron_error;

use axum::http::{Method, StatusCode};
use common::{IMAGE, Resp, TestApp};
use serde_json::{Value, json};

async fn net(app: &TestApp, t: &str, name: &str) -> String {
    let r = call(
        app,
        Method::POST,
        "/networks",
        t,
        Some(json!({"network": {"name": name}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["network"]["id"].as_str().expect("id").to_owned()
}

async fn subnet(app: &TestApp, t: &str, network: &str, cidr: &str) -> Resp {
    call(
        app,
        Method::POST,
        "/subnets",
        t,
        Some(json!({"subnet": {"network_id": network, "ip_version": 4, "cidr": cidr}})),
    )
    .await
}

#[tokio::test]
async fn a_project_finds_its_default_network_before_its_first_server() {
    let app = TestApp::new().await;
    let (_, _, t) = app.user_with_role("newbie", "member").await;
    let r = call(&app, Method::GET, "/networks?name=private", &t, None).await;
    let nets = r.body["networks"].as_array().expect("list");
    assert_eq!(nets.len(), 1, "{}", r.text);
    assert_eq!(nets[0]["is_default"], true);
    let nid = nets[0]["id"].as_str().expect("id").to_owned();
    // A server on it by id gets an address of it; the same network, not a second one.
    let h = [
        ("x-auth-token", t.as_str()),
        ("openstack-api-version", "compute 2.37"),
    ];
    let r = app
        .call(Method::POST, "/compute/v2.1/servers", &h, Some(json!({"server": {"name": "s", "imageRef": IMAGE, "flavorRef": "1", "networks": [{"uuid": nid}]}})))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = app
        .call(Method::POST, "/compute/v2.1/servers", &h, Some(json!({"server": {"name": "s2", "imageRef": IMAGE, "flavorRef": "1", "networks": "auto"}})))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    app.compute.idle().await;
    let r = call(&app, Method::GET, "/networks", &t, None).await;
    assert_eq!(
        r.body["networks"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
    // A reader makes nothing by listing.
    let (_, _, reader) = app.user_with_role("reed", "reader").await;
    let r = call(&app, Method::GET, "/networks", &reader, None).await;
    assert_eq!(
        r.body["networks"].as_array().map(Vec::len),
        Some(0),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn versions_extensions_and_catalog() {
    let app = TestApp::new().await;
    let r = app.get("/network/", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["versions"][0]["id"], "v2.0");
    let t = app.demo().await;
    let r = call(&app, Method::GET, "/extensions", &t, None).await;
    let aliases: Vec<&str> = r.body["extensions"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|e| e["alias"].as_str())
        .collect();
    for a in [
        "security-group",
        "router",
        "external-net",
        "quotas",
        "port-security",
        "allowed-address-pairs",
        "project-id",
        "fip-port-details",
        "standard-attr-tag",
    ] {
        assert!(aliases.contains(&a), "{a} missing from {aliases:?}");
    }
    let r = call(&app, Method::GET, "/extensions/nope", &t, None).await;
    neutron_error(&r, 404, "HTTPNotFound");
    // Without a token: Keystone's 401.
    let r = app.get("/network/v2.0/networks", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn networks_subnets_and_ports_have_neutrons_shapes() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let r = call(
        &app,
        Method::POST,
        "/networks",
        &t,
        Some(json!({"network": {"name": "net1", "tags": ["blue"]}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let n = &r.body["network"];
    for k in [
        "id",
        "name",
        "tenant_id",
        "project_id",
        "admin_state_up",
        "mtu",
        "status",
        "subnets",
        "shared",
        "port_security_enabled",
        "router:external",
        "description",
        "tags",
        "created_at",
        "updated_at",
        "revision_number",
    ] {
        assert!(n.get(k).is_some(), "network lacks {k}: {n}");
    }
    assert_eq!(n["tags"], json!(["blue"]));
    let nid = n["id"].as_str().expect("id").to_owned();
    let r = call(&app, Method::POST, "/subnets", &t, Some(json!({"subnet": {"network_id": nid, "ip_version": 4, "cidr": "192.168.50.0/24", "dns_nameservers": ["192.168.50.53"]}}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let s = &r.body["subnet"];
    assert_eq!(s["gateway_ip"], "192.168.50.1");
    assert_eq!(
        s["allocation_pools"],
        json!([{"start": "192.168.50.2", "end": "192.168.50.254"}])
    );
    let sid = s["id"].as_str().expect("id").to_owned();
    let r = call(&app, Method::GET, &format!("/networks/{nid}"), &t, None).await;
    assert_eq!(r.body["network"]["subnets"], json!([sid]));
    // A chosen address, then the next free one.
    let r = call(&app, Method::POST, "/ports", &t, Some(json!({"port": {"network_id": nid, "name": "p1", "fixed_ips": [{"subnet_id": sid, "ip_address": "192.168.50.10"}], "allowed_address_pairs": [{"ip_address": "192.168.50.200"}]}}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let p = &r.body["port"];
    assert_eq!(
        p["fixed_ips"],
        json!([{"subnet_id": sid, "ip_address": "192.168.50.10"}])
    );
    assert_eq!(p["status"], "DOWN");
    assert_eq!(
        p["security_groups"].as_array().map(Vec::len),
        Some(1),
        "the default group"
    );
    assert_eq!(
        p["allowed_address_pairs"][0]["mac_address"],
        p["mac_address"]
    );
    let pid = p["id"].as_str().expect("id").to_owned();
    let r = call(
        &app,
        Method::POST,
        "/ports",
        &t,
        Some(json!({"port": {"network_id": nid}})),
    )
    .await;
    assert_eq!(r.body["port"]["fixed_ips"][0]["ip_address"], "192.168.50.2");
    let p2 = r.body["port"]["id"].as_str().expect("id").to_owned();
    // Update bumps the revision.
    let before = call(&app, Method::GET, &format!("/ports/{pid}"), &t, None)
        .await
        .body["port"]["revision_number"]
        .as_i64();
    let r = call(
        &app,
        Method::PUT,
        &format!("/ports/{pid}"),
        &t,
        Some(json!({"port": {"name": "renamed"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["port"]["name"], "renamed");
    assert!(r.body["port"]["revision_number"].as_i64() > before);
    // Filters, fields, sorting and paging.
    let r = call(
        &app,
        Method::GET,
        &format!("/ports?network_id={nid}&fields=id&fields=name&sort_key=name&sort_dir=desc"),
        &t,
        None,
    )
    .await;
    assert_eq!(
        r.body["ports"],
        json!([{"id": pid, "name": "renamed"}, {"id": p2, "name": ""}])
    );
    let r = call(
        &app,
        Method::GET,
        "/ports?fixed_ips=ip_address%3D192.168.50.10",
        &t,
        None,
    )
    .await;
    assert_eq!(
        r.body["ports"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
    let r = call(
        &app,
        Method::GET,
        &format!("/ports?network_id={nid}&limit=1"),
        &t,
        None,
    )
    .await;
    assert_eq!(r.body["ports"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.body["ports_links"][0]["rel"], "next");
    let r = call(&app, Method::GET, "/networks?tags=blue", &t, None).await;
    assert_eq!(r.body["networks"].as_array().map(Vec::len), Some(1));
    let r = call(&app, Method::GET, "/networks?colour=red", &t, None).await;
    neutron_error(&r, 400, "HTTPBadRequest");
    // Tags.
    let r = call(
        &app,
        Method::PUT,
        &format!("/networks/{nid}/tags"),
        &t,
        Some(json!({"tags": ["a", "b"]})),
    )
    .await;
    assert_eq!(r.body["tags"], json!(["a", "b"]), "{}", r.text);
    let r = call(&app, Method::PUT, &format!("/ports/{pid}/tags/x"), &t, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = call(&app, Method::GET, &format!("/ports/{pid}/tags"), &t, None).await;
    assert_eq!(r.body["tags"], json!(["x"]));
    // In use: the network and the subnet stay while ports hold addresses.
    let r = call(&app, Method::DELETE, &format!("/networks/{nid}"), &t, None).await;
    neutron_error(&r, 409, "NetworkInUse");
    let r = call(&app, Method::DELETE, &format!("/subnets/{sid}"), &t, None).await;
    neutron_error(&r, 409, "SubnetInUse");
    for p in [&pid, &p2] {
        let r = call(&app, Method::DELETE, &format!("/ports/{p}"), &t, None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    }
    let r = call(&app, Method::DELETE, &format!("/networks/{nid}"), &t, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = call(&app, Method::GET, &format!("/subnets/{sid}"), &t, None).await;
    neutron_error(&r, 404, "SubnetNotFound");
}

#[tokio::test]
async fn bad_input_gets_neutrons_faults_and_writes_nothing() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let nid = net(&app, &t, "v").await;
    let r = subnet(&app, &t, &nid, "10.0.0.300/24").await;
    neutron_error(&r, 400, "InvalidInput");
    assert_eq!(
        r.body["NeutronError"]["message"],
        "Invalid input for operation: 10.0.0.300/24 is not in a CIDR format."
    );
    let r = call(&app, Method::POST, "/subnets", &t, Some(json!({"subnet": {"network_id": nid, "ip_version": 4, "cidr": "172.20.0.0/24", "gateway_ip": "172.21.0.1"}}))).await;
    neutron_error(&r, 400, "InvalidInput");
    let r = subnet(&app, &t, &nid, "172.20.0.0/24").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let sid = r.body["subnet"]["id"].as_str().expect("id").to_owned();
    let r = subnet(&app, &t, &nid, "172.20.0.128/25").await;
    neutron_error(&r, 400, "InvalidInput");
    assert!(
        r.body["NeutronError"]["message"]
            .as_str()
            .expect("m")
            .contains("overlaps with another subnet")
    );
    let r = call(&app, Method::POST, "/subnets", &t, Some(json!({"subnet": {"network_id": nid, "ip_version": 4, "cidr": "172.22.0.0/24", "allocation_pools": [{"start": "172.22.0.1", "end": "172.22.0.20"}]}}))).await;
    neutron_error(&r, 409, "GatewayConflictWithAllocationPools");
    let r = call(&app, Method::POST, "/subnets", &t, Some(json!({"subnet": {"network_id": nid, "ip_version": 4, "cidr": "172.22.0.0/24", "allocation_pools": [{"start": "172.23.0.1", "end": "172.23.0.20"}]}}))).await;
    neutron_error(&r, 400, "OutOfBoundsAllocationPool");
    let r = call(
        &app,
        Method::POST,
        "/ports",
        &t,
        Some(json!({"port": {"network_id": "00000000-0000-0000-0000-000000000000"}})),
    )
    .await;
    neutron_error(&r, 404, "NetworkNotFound");
    assert_eq!(
        r.body["NeutronError"]["message"],
        "Network 00000000-0000-0000-0000-000000000000 could not be found."
    );
    let r = call(
        &app,
        Method::POST,
        "/ports",
        &t,
        Some(json!({"port": {"network_id": nid, "fixed_ips": [{"ip_address": "172.20.0.10"}]}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = call(
        &app,
        Method::POST,
        "/ports",
        &t,
        Some(json!({"port": {"network_id": nid, "fixed_ips": [{"ip_address": "172.20.0.10"}]}})),
    )
    .await;
    neutron_error(&r, 409, "IpAddressAlreadyAllocated");
    assert_eq!(
        r.body["NeutronError"]["message"],
        format!("IP address 172.20.0.10 already allocated in subnet {sid}")
    );
    let r = call(
        &app,
        Method::POST,
        "/ports",
        &t,
        Some(json!({"port": {"network_id": nid, "fixed_ips": [{"ip_address": "172.99.0.10"}]}})),
    )
    .await;
    neutron_error(&r, 400, "InvalidIpForNetwork");
    let r = call(
        &app,
        Method::POST,
        "/networks",
        &t,
        Some(json!({"network": {"name": "x", "colour": 1}})),
    )
    .await;
    neutron_error(&r, 400, "HTTPBadRequest");
    assert_eq!(
        r.body["NeutronError"]["message"],
        "Unrecognized attribute(s) 'colour'"
    );
    let r = call(
        &app,
        Method::POST,
        "/networks",
        &t,
        Some(json!({"network": {"name": 5}})),
    )
    .await;
    neutron_error(&r, 400, "HTTPBadRequest");
    let r = app
        .call_raw(
            Method::POST,
            "/network/v2.0/networks",
            &[("x-auth-token", t.as_str())],
            Some(b"{not json".to_vec()),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["NeutronError"].is_object(), "{}", r.text);
    let r = call(&app, Method::GET, "/routersx", &t, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Nothing half-made: one network, one subnet, one port.
    let r = call(&app, Method::GET, "/networks", &t, None).await;
    let mine: Vec<&Value> = r.body["networks"]
        .as_array()
        .expect("l")
        .iter()
        .filter(|n| n["name"] == "v" || n["name"] == "x")
        .collect();
    assert_eq!(mine.len(), 1, "{}", r.text);
    let r = call(
        &app,
        Method::GET,
        &format!("/ports?network_id={nid}"),
        &t,
        None,
    )
    .await;
    assert_eq!(r.body["ports"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn attack_a_member_reaches_no_other_projects_network_and_no_admin_attribute() {
    let app = TestApp::new().await;
    let a = app.demo().await;
    let (_, _, b) = app.user_with_role("mallory", "member").await;
    let (_, _, reader) = app.user_with_role("rita", "reader").await;
    let nid = net(&app, &a, "a-net").await;
    let r = subnet(&app, &a, &nid, "172.30.0.0/24").await;
    let sid = r.body["subnet"]["id"].as_str().expect("id").to_owned();
    let r = call(
        &app,
        Method::POST,
        "/ports",
        &a,
        Some(json!({"port": {"network_id": nid}})),
    )
    .await;
    let pid = r.body["port"]["id"].as_str().expect("id").to_owned();
    // Invisible: lists leave them out, reads and writes are 404s.
    for coll in ["networks", "subnets", "ports"] {
        let r = call(&app, Method::GET, &format!("/{coll}"), &b, None).await;
        assert!(
            !r.text.contains(&nid) && !r.text.contains(&pid) && !r.text.contains(&sid),
            "{coll}: {}",
            r.text
        );
    }
    neutron_error(
        &call(&app, Method::GET, &format!("/networks/{nid}"), &b, None).await,
        404,
        "NetworkNotFound",
    );
    neutron_error(
        &call(&app, Method::DELETE, &format!("/networks/{nid}"), &b, None).await,
        404,
        "NetworkNotFound",
    );
    neutron_error(
        &call(
            &app,
            Method::PUT,
            &format!("/subnets/{sid}"),
            &b,
            Some(json!({"subnet": {"name": "x"}})),
        )
        .await,
        404,
        "SubnetNotFound",
    );
    neutron_error(
        &call(&app, Method::DELETE, &format!("/ports/{pid}"), &b, None).await,
        404,
        "PortNotFound",
    );
    neutron_error(
        &call(
            &app,
            Method::PUT,
            &format!("/networks/{nid}/tags/x"),
            &b,
            None,
        )
        .await,
        404,
        "NetworkNotFound",
    );
    // No port or subnet on another project's network.
    neutron_error(
        &call(
            &app,
            Method::POST,
            "/ports",
            &b,
            Some(json!({"port": {"network_id": nid}})),
        )
        .await,
        404,
        "NetworkNotFound",
    );
    neutron_error(
        &subnet(&app, &b, &nid, "172.31.0.0/24").await,
        404,
        "NetworkNotFound",
    );
    // No shared or external network, no port in another project's name.
    for attr in ["shared", "router:external"] {
        let r = call(
            &app,
            Method::POST,
            "/networks",
            &b,
            Some(json!({"network": {"name": "x", attr: true}})),
        )
        .await;
        neutron_error(&r, 403, "PolicyNotAuthorized");
    }
    let admin_project = "00000000000000000000000000000000";
    let r = call(
        &app,
        Method::POST,
        "/networks",
        &b,
        Some(json!({"network": {"name": "x", "project_id": admin_project}})),
    )
    .await;
    neutron_error(&r, 403, "PolicyNotAuthorized");
    // No server on another project's network or port.
    let r = app
        .call(
            Method::POST,
            "/compute/v2.1/servers",
            &[("x-auth-token", b.as_str()), ("openstack-api-version", "compute 2.37")],
            Some(json!({"server": {"name": "s", "imageRef": IMAGE, "flavorRef": "1", "networks": [{"port": pid}]}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = app
        .call(
            Method::POST,
            "/compute/v2.1/servers",
            &[("x-auth-token", b.as_str()), ("openstack-api-version", "compute 2.37")],
            Some(json!({"server": {"name": "s", "imageRef": IMAGE, "flavorRef": "1", "networks": [{"uuid": nid}]}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // A reader writes nothing.
    let r = call(
        &app,
        Method::POST,
        "/networks",
        &reader,
        Some(json!({"network": {"name": "x"}})),
    )
    .await;
    neutron_error(&r, 403, "PolicyNotAuthorized");
    // The quota holds: a member cannot take every address of the box.
    let admin = app.admin().await;
    let r = app.get("/identity/v3/auth/projects", Some(&b)).await;
    let bp = r.body["projects"][0]["id"]
        .as_str()
        .expect("project")
        .to_owned();
    let r = call(
        &app,
        Method::PUT,
        &format!("/quotas/{bp}"),
        &admin,
        Some(json!({"quota": {"network": 1, "check_limit": true}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // B has its default network `private` already (made when it first listed networks):
    // a limit under what is used is refused when the client asks for the check.
    let q = |n: i64| json!({"quota": {"network": n, "check_limit": true}});
    let r = call(
        &app,
        Method::PUT,
        &format!("/quotas/{bp}"),
        &admin,
        Some(q(0)),
    )
    .await;
    neutron_error(&r, 400, "InvalidQuotaValue");
    let r = call(
        &app,
        Method::PUT,
        &format!("/quotas/{bp}"),
        &admin,
        Some(q(2)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    net(&app, &b, "one").await;
    let r = call(
        &app,
        Method::POST,
        "/networks",
        &b,
        Some(json!({"network": {"name": "two"}})),
    )
    .await;
    neutron_error(&r, 409, "OverQuota");
    let r = call(
        &app,
        Method::PUT,
        &format!("/quotas/{bp}"),
        &b,
        Some(json!({"quota": {"network": 100}})),
    )
    .await;
    neutron_error(&r, 403, "PolicyNotAuthorized");
    let r = call(
        &app,
        Method::GET,
        &format!("/quotas/{bp}/details"),
        &b,
        None,
    )
    .await;
    assert_eq!(
        r.body["quota"]["network"],
        json!({"limit": 2, "used": 2, "reserved": 0}),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn servers_take_ports_networks_and_fixed_addresses() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let nid = net(&app, &t, "web").await;
    let r = subnet(&app, &t, &nid, "172.40.0.0/24").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = call(
        &app,
        Method::POST,
        "/ports",
        &t,
        Some(json!({"port": {"network_id": nid, "name": "mine"}})),
    )
    .await;
    let pid = r.body["port"]["id"].as_str().expect("id").to_owned();
    let addr = r.body["port"]["fixed_ips"][0]["ip_address"]
        .as_str()
        .expect("ip")
        .to_owned();
    let h = [
        ("x-auth-token", t.as_str()),
        ("openstack-api-version", "compute 2.37"),
    ];
    let r = app
        .call(
            Method::POST,
            "/compute/v2.1/servers",
            &h,
            Some(json!({"server": {"name": "s", "imageRef": IMAGE, "flavorRef": "1", "networks": [{"port": pid}, {"uuid": nid, "fixed_ip": "172.40.0.77"}]}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let sid = r.body["server"]["id"].as_str().expect("id").to_owned();
    app.compute.idle().await;
    let r = app
        .call(
            Method::GET,
            &format!("/compute/v2.1/servers/{sid}"),
            &h,
            None,
        )
        .await;
    let addrs = &r.body["server"]["addresses"]["web"];
    assert_eq!(addrs[0]["addr"], addr.as_str(), "{}", r.text);
    assert_eq!(addrs[1]["addr"], "172.40.0.77", "{}", r.text);
    assert_eq!(
        r.body["server"]["security_groups"],
        json!([{"name": "default"}])
    );
    let r = call(
        &app,
        Method::GET,
        &format!("/ports?device_id={sid}"),
        &t,
        None,
    )
    .await;
    let ports = r.body["ports"].as_array().expect("ports");
    assert_eq!(ports.len(), 2);
    assert!(
        ports
            .iter()
            .all(|p| p["device_owner"] == "compute:nova" && p["status"] == "ACTIVE")
    );
    // The port is in use; the address too.
    let r = app
        .call(
            Method::POST,
            "/compute/v2.1/servers",
            &h,
            Some(json!({"server": {"name": "t", "imageRef": IMAGE, "flavorRef": "1", "networks": [{"port": pid}]}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let r = app
        .call(
            Method::POST,
            "/compute/v2.1/servers",
            &h,
            Some(json!({"server": {"name": "t", "imageRef": IMAGE, "flavorRef": "1", "networks": [{"uuid": nid, "fixed_ip": "172.40.0.77"}]}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // Deleting the server deletes the port compute made and unbinds the one the user made.
    let r = app
        .call(
            Method::DELETE,
            &format!("/compute/v2.1/servers/{sid}"),
            &h,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    app.compute.idle().await;
    let r = call(
        &app,
        Method::GET,
        &format!("/ports?network_id={nid}"),
        &t,
        None,
    )
    .await;
    let ports = r.body["ports"].as_array().expect("ports");
    assert_eq!(ports.len(), 1, "{}", r.text);
    assert_eq!(ports[0]["id"], pid.as_str());
    assert_eq!(ports[0]["device_id"], "");
}

#[tokio::test]
async fn interfaces_attach_and_detach_through_the_backend() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let (_, _, other) = app.user_with_role("eve", "member").await;
    let nid = net(&app, &t, "extra").await;
    subnet(&app, &t, &nid, "172.50.0.0/24").await;
    let h = [
        ("x-auth-token", t.as_str()),
        ("openstack-api-version", "compute 2.37"),
    ];
    let r = app
        .call(Method::POST, "/compute/v2.1/servers", &h, Some(json!({"server": {"name": "s", "imageRef": IMAGE, "flavorRef": "1", "networks": "auto"}})))
        .await;
    let sid = r.body["server"]["id"].as_str().expect("id").to_owned();
    app.compute.idle().await;
    let server_id = model::compute::ServerId::from_stored(sid.clone());
    assert_eq!(app.driver.macs_of(&server_id).len(), 1);
    let uri = format!("/compute/v2.1/servers/{sid}/os-interface");
    let r = app.call(Method::POST, &uri, &h, Some(json!({"interfaceAttachment": {"net_id": nid, "fixed_ips": [{"ip_address": "172.50.0.9"}]}}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let ia = &r.body["interfaceAttachment"];
    assert_eq!(ia["fixed_ips"][0]["ip_address"], "172.50.0.9");
    let port = ia["port_id"].as_str().expect("port").to_owned();
    let macs = app.driver.macs_of(&server_id);
    assert_eq!(macs.len(), 2, "the backend plugged it");
    assert!(macs.contains(&ia["mac_addr"].as_str().expect("mac").to_owned()));
    let r = app.call(Method::GET, &uri, &h, None).await;
    assert_eq!(
        r.body["interfaceAttachments"].as_array().map(Vec::len),
        Some(2)
    );
    let r = app
        .call(
            Method::GET,
            &format!("/compute/v2.1/servers/{sid}"),
            &h,
            None,
        )
        .await;
    assert_eq!(
        r.body["server"]["addresses"]["extra"][0]["addr"], "172.50.0.9",
        "{}",
        r.text
    );
    // Another project can neither see nor change the server's interfaces, nor attach its
    // own network to it.
    let ho = [
        ("x-auth-token", other.as_str()),
        ("openstack-api-version", "compute 2.37"),
    ];
    assert_eq!(
        app.call(Method::GET, &uri, &ho, None).await.status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .call(Method::DELETE, &format!("{uri}/{port}"), &ho, None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let onid = net(&app, &other, "theirs").await;
    subnet(&app, &other, &onid, "172.51.0.0/24").await;
    let r = app
        .call(
            Method::POST,
            &uri,
            &h,
            Some(json!({"interfaceAttachment": {"net_id": onid}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    // Detach: the port compute made is gone, and so is the NIC.
    let r = app
        .call(Method::DELETE, &format!("{uri}/{port}"), &h, None)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(app.driver.macs_of(&server_id).len(), 1);
    let r = call(&app, Method::GET, &format!("/ports/{port}"), &t, None).await;
    neutron_error(&r, 404, "PortNotFound");
    // A port the user made is only unbound.
    let r = call(
        &app,
        Method::POST,
        "/ports",
        &t,
        Some(json!({"port": {"network_id": nid}})),
    )
    .await;
    let mine = r.body["port"]["id"].as_str().expect("id").to_owned();
    let r = app
        .call(
            Method::POST,
            &uri,
            &h,
            Some(json!({"interfaceAttachment": {"port_id": mine}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(&app, Method::DELETE, &format!("/ports/{mine}"), &t, None).await;
    neutron_error(&r, 409, "PortInUse");
    let r = app
        .call(Method::DELETE, &format!("{uri}/{mine}"), &h, None)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = call(&app, Method::GET, &format!("/ports/{mine}"), &t, None).await;
    assert_eq!(r.body["port"]["device_id"], "", "{}", r.text);
}

#[tokio::test]
async fn novas_network_proxy_lists_the_projects_networks_until_2_36() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let (_, _, other) = app.user_with_role("oscar", "member").await;
    let nid = net(&app, &t, "mine").await;
    let h = [
        ("x-auth-token", t.as_str()),
        ("openstack-api-version", "compute 2.35"),
    ];
    let r = app
        .call(Method::GET, "/compute/v2.1/os-networks", &h, None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.body["networks"]
            .as_array()
            .expect("l")
            .iter()
            .any(|n| n["id"] == nid.as_str() && n["label"] == "mine")
    );
    let r = app
        .call(
            Method::GET,
            &format!("/compute/v2.1/os-networks/{nid}"),
            &h,
            None,
        )
        .await;
    assert_eq!(r.body["network"]["label"], "mine");
    let h36 = [
        ("x-auth-token", t.as_str()),
        ("openstack-api-version", "compute 2.36"),
    ];
    let r = app
        .call(Method::GET, "/compute/v2.1/os-networks", &h36, None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let ho = [
        ("x-auth-token", other.as_str()),
        ("openstack-api-version", "compute 2.35"),
    ];
    let r = app
        .call(
            Method::GET,
            &format!("/compute/v2.1/os-networks/{nid}"),
            &ho,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = app
        .call(Method::GET, "/compute/v2.1/os-networks", &ho, None)
        .await;
    assert!(!r.text.contains(&nid));
}

#[tokio::test]
async fn attack_a_member_cannot_unpin_its_port_on_a_shared_network() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let (_, _, b) = app.user_with_role("mallory", "member").await;
    let r = call(
        &app,
        Method::POST,
        "/networks",
        &admin,
        Some(json!({"network": {"name": "lan", "shared": true}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let shared = r.body["network"]["id"].as_str().expect("id").to_owned();
    assert_eq!(
        subnet(&app, &admin, &shared, "172.31.0.0/24").await.status,
        StatusCode::CREATED
    );
    // Either would let its guests speak with other projects' addresses on the network.
    for (attr, value) in [
        (
            "allowed_address_pairs",
            json!([{"ip_address": "172.31.0.0/24"}]),
        ),
        ("port_security_enabled", json!(false)),
    ] {
        let r = call(
            &app,
            Method::POST,
            "/ports",
            &b,
            Some(json!({"port": {"network_id": shared, attr: value}})),
        )
        .await;
        neutron_error(&r, 403, "PolicyNotAuthorized");
        assert!(
            r.body["NeutronError"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(attr)),
            "{}",
            r.text
        );
    }
    let r = call(
        &app,
        Method::POST,
        "/ports",
        &b,
        Some(json!({"port": {"network_id": shared}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let port = r.body["port"]["id"].as_str().expect("id").to_owned();
    for body in [
        json!({"port": {"allowed_address_pairs": [{"ip_address": "172.31.0.9"}]}}),
        json!({"port": {"port_security_enabled": false, "security_groups": []}}),
    ] {
        let r = call(&app, Method::PUT, &format!("/ports/{port}"), &b, Some(body)).await;
        neutron_error(&r, 403, "PolicyNotAuthorized");
    }
    let r = call(&app, Method::GET, &format!("/ports/{port}"), &b, None).await;
    assert_eq!(r.body["port"]["allowed_address_pairs"], json!([]));
    assert_eq!(r.body["port"]["port_security_enabled"], true);

    // On its own network the member may do both, as under Neutron.
    let own = net(&app, &b, "own").await;
    assert_eq!(
        subnet(&app, &b, &own, "172.30.9.0/24").await.status,
        StatusCode::CREATED
    );
    let r = call(
        &app,
        Method::POST,
        "/ports",
        &b,
        Some(json!({"port": {"network_id": own,
            "allowed_address_pairs": [{"ip_address": "172.30.9.100"}]}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let mac = r.body["port"]["mac_address"].clone();
    assert_eq!(
        r.body["port"]["allowed_address_pairs"],
        json!([{"ip_address": "172.30.9.100", "mac_address": mac}])
    );
}
