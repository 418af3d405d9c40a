//! Routers and floating IPs through `/network/v2.0`: the flow of a gateway, an interface and
//! a floating IP in Neutron's shapes, Neutron's errors, and what a member of another project
//! cannot do with them.

mod common;

use common::neutron as call;

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use common::{IMAGE, Resp, TestApp};
use model::network::{Cidr, Pool};
use serde_json::{Value, json};

/// Remembers every edge the networking service hands to the host.
#[derive(Default)]
struct Recorder(Mutex<Vec<network::EdgeRecords>>);

impl network::Host for Recorder {
    fn apply_security_groups(&self, _: &network::Enforcement) -> Result<(), String> {
        Ok(())
    }
    fn apply_edge(&self, s: &network::EdgeRecords) -> Result<(), String> {
        self.0.lock().expect("lock").push(s.clone());
        Ok(())
    }
}

impl Recorder {
    fn last(&self) -> network::EdgeRecords {
        self.0
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

fn edge() -> network::EdgeConfig {
    network::EdgeConfig {
        cidr: Cidr::parse("192.0.2.0/24", true).expect("cidr"),
        gateway: Ipv4Addr::new(192, 0, 2, 1),
        range: Pool {
            start: Ipv4Addr::new(192, 0, 2, 100),
            end: Ipv4Addr::new(192, 0, 2, 120),
        },
    }
}

async fn boxed() -> (TestApp, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    (TestApp::with_external(edge(), rec.clone()).await, rec)
}

/// Asserts a Neutron fault: status, type and message.
fn fault(r: &Resp, status: u16, kind: &str, message: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(r.body["NeutronError"]["type"], kind, "{}", r.text);
    assert_eq!(r.body["NeutronError"]["message"], message, "{}", r.text);
}

fn id(r: &Resp, what: &str) -> String {
    assert!(r.status.is_success(), "{}", r.text);
    r.body[what]["id"].as_str().expect("id").to_owned()
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    k.sort();
    k
}

async fn public(app: &TestApp, token: &str) -> (String, String) {
    let r = call(app, Method::GET, "/networks?name=public", token, None).await;
    let n = &r.body["networks"][0];
    assert_eq!(n["router:external"], true, "{}", r.text);
    (
        n["id"].as_str().expect("id").to_owned(),
        n["subnets"][0].as_str().expect("subnet").to_owned(),
    )
}

/// A network with one subnet of `cidr`; (network, subnet).
async fn net(app: &TestApp, token: &str, cidr: &str) -> (String, String) {
    let r = call(
        app,
        Method::POST,
        "/networks",
        token,
        Some(json!({"network": {"name": "n"}})),
    )
    .await;
    let n = id(&r, "network");
    let r = call(
        app,
        Method::POST,
        "/subnets",
        token,
        Some(json!({"subnet": {"network_id": n, "ip_version": 4, "cidr": cidr}})),
    )
    .await;
    (n.clone(), id(&r, "subnet"))
}

async fn port(app: &TestApp, token: &str, network: &str) -> (String, String) {
    let r = call(
        app,
        Method::POST,
        "/ports",
        token,
        Some(json!({"port": {"network_id": network, "name": "port1"}})),
    )
    .await;
    let ip = r.body["port"]["fixed_ips"][0]["ip_address"]
        .as_str()
        .expect("ip")
        .to_owned();
    (id(&r, "port"), ip)
}

const ROUTER_KEYS: &[&str] = &[
    "id",
    "name",
    "tenant_id",
    "project_id",
    "admin_state_up",
    "status",
    "external_gateway_info",
    "description",
    "availability_zones",
    "availability_zone_hints",
    "routes",
    "flavor_id",
    "tags",
    "created_at",
    "updated_at",
    "revision_number",
];
const FIP_KEYS: &[&str] = &[
    "id",
    "tenant_id",
    "project_id",
    "floating_ip_address",
    "floating_network_id",
    "router_id",
    "port_id",
    "fixed_ip_address",
    "status",
    "description",
    "port_details",
    "tags",
    "created_at",
    "updated_at",
    "revision_number",
];

#[tokio::test]
async fn a_router_gateway_interface_and_floating_ip_in_neutrons_shapes() {
    let (app, host) = boxed().await;
    let (_, pid, t) = app.user_with_role("l3-flow", "member").await;
    let (ext, ext_subnet) = public(&app, &t).await;
    let r = call(
        &app,
        Method::GET,
        &format!("/subnets/{ext_subnet}"),
        &t,
        None,
    )
    .await;
    assert_eq!(
        r.body["subnet"]["allocation_pools"],
        json!([{"start": "192.0.2.100", "end": "192.0.2.120"}]),
        "{}",
        r.text
    );
    assert_eq!(r.body["subnet"]["gateway_ip"], "192.0.2.1");
    assert_eq!(r.body["subnet"]["enable_dhcp"], false);
    let (n, s) = net(&app, &t, "10.50.0.0/24").await;

    let r = call(
        &app,
        Method::POST,
        "/routers",
        &t,
        Some(json!({"router": {"name": "r1", "external_gateway_info": {"network_id": ext}}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let router = &r.body["router"];
    assert_eq!(keys(router), sorted(ROUTER_KEYS), "{}", r.text);
    assert_eq!(
        router["external_gateway_info"],
        json!({"network_id": ext, "enable_snat": true, "external_fixed_ips": [{"subnet_id": ext_subnet, "ip_address": "192.0.2.100"}]})
    );
    assert_eq!(router["project_id"], pid.as_str());
    assert_eq!(router["status"], "ACTIVE");
    let rid = id(&r, "router");

    let r = call(
        &app,
        Method::PUT,
        &format!("/routers/{rid}/add_router_interface"),
        &t,
        Some(json!({"subnet_id": s})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        keys(&r.body),
        sorted(&[
            "id",
            "project_id",
            "port_id",
            "network_id",
            "subnet_id",
            "subnet_ids"
        ])
    );
    assert_eq!(r.body["subnet_ids"], json!([s]));
    let iface = r.body["port_id"].as_str().expect("port").to_owned();
    let r = call(
        &app,
        Method::GET,
        &format!("/ports?network_id={n}&device_owner=network:router_interface"),
        &t,
        None,
    )
    .await;
    assert_eq!(r.body["ports"][0]["id"], iface.as_str(), "{}", r.text);
    assert_eq!(
        r.body["ports"][0]["fixed_ips"][0]["ip_address"],
        "10.50.0.1"
    );
    assert_eq!(r.body["ports"][0]["device_id"], rid.as_str());
    // The interface port cannot be deleted as a port.
    let r = call(&app, Method::DELETE, &format!("/ports/{iface}"), &t, None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);

    let (p, fixed) = port(&app, &t, &n).await;
    let r = call(
        &app,
        Method::POST,
        "/floatingips",
        &t,
        Some(json!({"floatingip": {"floating_network_id": ext, "port_id": p}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let f = &r.body["floatingip"];
    assert_eq!(keys(f), sorted(FIP_KEYS), "{}", r.text);
    assert_eq!(f["floating_ip_address"], "192.0.2.101");
    assert_eq!(f["router_id"], rid.as_str());
    assert_eq!(f["fixed_ip_address"], fixed.as_str());
    assert_eq!(f["status"], "ACTIVE");
    assert_eq!(
        keys(&f["port_details"]),
        sorted(&[
            "name",
            "network_id",
            "mac_address",
            "admin_state_up",
            "status",
            "device_id",
            "device_owner"
        ])
    );
    assert_eq!(f["port_details"]["name"], "port1");
    let fid = id(&r, "floatingip");

    // The host is told: the router with its subnet, the floating IP on the network's bridge.
    let e = host.last();
    assert_eq!(e.public_network.as_deref(), Some(ext.as_str()));
    assert_eq!(e.rows.routers.len(), 1);
    assert_eq!(e.rows.interfaces[0].1, n);
    assert_eq!(e.rows.floating.len(), 1);
    assert_eq!(e.rows.floating[0].1, n);

    let r = call(
        &app,
        Method::GET,
        "/floatingips?floating_ip_address=192.0.2.101",
        &t,
        None,
    )
    .await;
    assert_eq!(r.body["floatingips"][0]["id"], fid.as_str(), "{}", r.text);
    let r = call(&app, Method::GET, &format!("/routers/{rid}"), &t, None).await;
    assert_eq!(r.body["router"]["revision_number"], 3, "{}", r.text);

    // Disassociated: DOWN, no router, no port details; the host forgets it.
    let r = call(
        &app,
        Method::PUT,
        &format!("/floatingips/{fid}"),
        &t,
        Some(json!({"floatingip": {"port_id": null}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["floatingip"]["status"], "DOWN");
    assert_eq!(r.body["floatingip"]["router_id"], Value::Null);
    assert_eq!(r.body["floatingip"]["port_details"], Value::Null);
    assert!(host.last().rows.floating.is_empty());
    let r = call(
        &app,
        Method::PUT,
        &format!("/floatingips/{fid}"),
        &t,
        Some(json!({"floatingip": {"port_id": p, "fixed_ip_address": fixed}})),
    )
    .await;
    assert_eq!(r.body["floatingip"]["status"], "ACTIVE", "{}", r.text);

    // What the floating IP needs stays.
    let r = call(
        &app,
        Method::PUT,
        &format!("/routers/{rid}/remove_router_interface"),
        &t,
        Some(json!({"subnet_id": s})),
    )
    .await;
    fault(
        &r,
        409,
        "RouterInterfaceInUseByFloatingIP",
        &format!(
            "Router interface for subnet {s} on router {rid} cannot be deleted, as it is required by one or more floating IPs."
        ),
    );
    let r = call(
        &app,
        Method::PUT,
        &format!("/routers/{rid}"),
        &t,
        Some(json!({"router": {"external_gateway_info": {}}})),
    )
    .await;
    fault(
        &r,
        409,
        "RouterExternalGatewayInUseByFloatingIp",
        &format!(
            "Gateway cannot be updated for router {rid}, since a gateway to external network {ext} is required by one or more floating IPs."
        ),
    );
    let r = call(&app, Method::DELETE, &format!("/routers/{rid}"), &t, None).await;
    fault(
        &r,
        409,
        "RouterInUse",
        &format!("Router {rid} has ports still attached: {iface}"),
    );

    // Deleting the port disassociates its floating IP.
    let r = call(&app, Method::DELETE, &format!("/ports/{p}"), &t, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = call(&app, Method::GET, &format!("/floatingips/{fid}"), &t, None).await;
    assert_eq!(r.body["floatingip"]["port_id"], Value::Null, "{}", r.text);

    // Teardown as Neutron's.
    let r = call(
        &app,
        Method::DELETE,
        &format!("/floatingips/{fid}"),
        &t,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = call(
        &app,
        Method::PUT,
        &format!("/routers/{rid}/remove_router_interface"),
        &t,
        Some(json!({"subnet_id": s})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["port_id"], iface.as_str());
    let r = call(
        &app,
        Method::PUT,
        &format!("/routers/{rid}"),
        &t,
        Some(json!({"router": {"external_gateway_info": null}})),
    )
    .await;
    assert_eq!(
        r.body["router"]["external_gateway_info"],
        Value::Null,
        "{}",
        r.text
    );
    let r = call(&app, Method::DELETE, &format!("/routers/{rid}"), &t, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let e = host.last();
    assert!(e.rows.routers.is_empty() && e.rows.floating.is_empty());
    // Every address of the pool is free again: the gateway and floating ports are gone.
    let admin = app.admin().await;
    let r = call(
        &app,
        Method::GET,
        &format!("/ports?network_id={ext}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(r.body["ports"], json!([]), "{}", r.text);
}

#[tokio::test]
async fn a_server_shows_its_floating_ip_and_loses_it_with_its_port() {
    let (app, _) = boxed().await;
    let (_, _, t) = app.user_with_role("l3-server", "member").await;
    let h = [
        ("x-auth-token", t.as_str()),
        ("openstack-api-version", "compute 2.37"),
    ];
    // A network of the project's own (its default network would get a router made for
    // it, see a_floating_ip_for_the_default_network_gets_its_router_made).
    let (own, _) = net(&app, &t, "172.62.0.0/24").await;
    let r = app
        .call(Method::POST, "/compute/v2.1/servers", &h, Some(json!({"server": {"name": "s", "imageRef": IMAGE, "flavorRef": "1", "networks": [{"uuid": own}]}})))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let sid = r.body["server"]["id"].as_str().expect("id").to_owned();
    app.compute.idle().await;
    let (ext, _) = public(&app, &t).await;
    // What `openstack server add floating ip` does: the server's ports, then the floating
    // IP updated with one of them.
    let r = call(
        &app,
        Method::GET,
        &format!("/ports?device_id={sid}"),
        &t,
        None,
    )
    .await;
    let port = r.body["ports"][0]["id"].as_str().expect("port").to_owned();
    let subnet = r.body["ports"][0]["fixed_ips"][0]["subnet_id"]
        .as_str()
        .expect("subnet")
        .to_owned();
    let fixed = r.body["ports"][0]["fixed_ips"][0]["ip_address"]
        .as_str()
        .expect("ip")
        .to_owned();
    let r = call(
        &app,
        Method::POST,
        "/floatingips",
        &t,
        Some(json!({"floatingip": {"floating_network_id": ext}})),
    )
    .await;
    let fid = id(&r, "floatingip");
    let addr = r.body["floatingip"]["floating_ip_address"]
        .as_str()
        .expect("addr")
        .to_owned();
    let r = call(
        &app,
        Method::PUT,
        &format!("/floatingips/{fid}"),
        &t,
        Some(json!({"floatingip": {"port_id": port}})),
    )
    .await;
    fault(
        &r,
        404,
        "ExternalGatewayForFloatingIPNotFound",
        &format!(
            "External network {ext} is not reachable from subnet {subnet}.  Therefore, cannot associate Port {port} with a Floating IP."
        ),
    );
    let r = call(
        &app,
        Method::POST,
        "/routers",
        &t,
        Some(json!({"router": {"name": "r", "external_gateway_info": {"network_id": ext}}})),
    )
    .await;
    let rid = id(&r, "router");
    let r = call(
        &app,
        Method::PUT,
        &format!("/routers/{rid}/add_router_interface"),
        &t,
        Some(json!({"subnet_id": subnet})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(
        &app,
        Method::PUT,
        &format!("/floatingips/{fid}"),
        &t,
        Some(json!({"floatingip": {"port_id": port}})),
    )
    .await;
    assert_eq!(
        r.body["floatingip"]["fixed_ip_address"],
        fixed.as_str(),
        "{}",
        r.text
    );
    assert_eq!(
        r.body["floatingip"]["port_details"]["device_id"],
        sid.as_str()
    );
    assert_eq!(
        r.body["floatingip"]["port_details"]["device_owner"],
        "compute:nova"
    );

    let r = app
        .get(&format!("/compute/v2.1/servers/{sid}"), Some(&t))
        .await;
    let addrs: Vec<&Value> = r.body["server"]["addresses"]
        .as_object()
        .expect("addresses")
        .values()
        .flat_map(|v| v.as_array().expect("list"))
        .collect();
    assert!(
        addrs
            .iter()
            .any(|a| a["addr"] == addr.as_str() && a["OS-EXT-IPS:type"] == "floating"),
        "{}",
        r.text
    );
    assert!(
        addrs
            .iter()
            .any(|a| a["addr"] == fixed.as_str() && a["OS-EXT-IPS:type"] == "fixed")
    );

    // `openstack server remove floating ip`.
    let r = call(
        &app,
        Method::PUT,
        &format!("/floatingips/{fid}"),
        &t,
        Some(json!({"floatingip": {"port_id": null}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .get(&format!("/compute/v2.1/servers/{sid}"), Some(&t))
        .await;
    assert!(!r.text.contains(&addr), "{}", r.text);
    let r = call(
        &app,
        Method::PUT,
        &format!("/floatingips/{fid}"),
        &t,
        Some(json!({"floatingip": {"port_id": port}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // The server goes, its port with it: the floating IP stays the project's, unassociated.
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
    let r = call(&app, Method::GET, &format!("/floatingips/{fid}"), &t, None).await;
    assert_eq!(r.body["floatingip"]["port_id"], Value::Null, "{}", r.text);
    assert_eq!(r.body["floatingip"]["status"], "DOWN");
    app.network.resync_edge().await.expect("resync");
}

#[tokio::test]
async fn router_and_floating_ip_errors_are_neutrons() {
    let (app, _) = boxed().await;
    let (_, _, t) = app.user_with_role("l3-errors", "member").await;
    let (ext, _) = public(&app, &t).await;
    let (n, s) = net(&app, &t, "10.51.0.0/24").await;
    let r = call(&app, Method::POST, "/subnets", &t, Some(json!({"subnet": {"network_id": n, "ip_version": 4, "cidr": "10.52.0.0/24", "gateway_ip": null}}))).await;
    let nogw = id(&r, "subnet");
    let r = call(
        &app,
        Method::POST,
        "/subnets",
        &t,
        Some(json!({"subnet": {"network_id": n, "ip_version": 4, "cidr": "10.53.0.0/24"}})),
    )
    .await;
    let second = id(&r, "subnet");
    let r = call(
        &app,
        Method::POST,
        "/routers",
        &t,
        Some(json!({"router": {"name": "r"}})),
    )
    .await;
    let rid = id(&r, "router");
    assert_eq!(r.body["router"]["external_gateway_info"], Value::Null);
    let add = format!("/routers/{rid}/add_router_interface");
    let remove = format!("/routers/{rid}/remove_router_interface");
    let zero = "00000000-0000-0000-0000-000000000000";

    let r = call(&app, Method::PUT, &add, &t, Some(json!({}))).await;
    fault(
        &r,
        400,
        "BadRequest",
        "Bad router request: Either subnet_id or port_id must be specified.",
    );
    let r = call(
        &app,
        Method::PUT,
        &add,
        &t,
        Some(json!({"subnet_id": s, "port_id": zero})),
    )
    .await;
    fault(
        &r,
        400,
        "BadRequest",
        "Bad router request: Cannot specify both subnet-id and port-id.",
    );
    let r = call(
        &app,
        Method::PUT,
        &add,
        &t,
        Some(json!({"subnet_id": "nope"})),
    )
    .await;
    fault(
        &r,
        400,
        "BadRequest",
        "Bad router request: 'nope' is not a valid UUID.",
    );
    let r = call(
        &app,
        Method::PUT,
        &add,
        &t,
        Some(json!({"subnet_id": zero})),
    )
    .await;
    fault(
        &r,
        404,
        "SubnetNotFound",
        &format!("Subnet {zero} could not be found."),
    );
    let r = call(&app, Method::PUT, &add, &t, Some(json!({"port_id": zero}))).await;
    fault(
        &r,
        404,
        "PortNotFound",
        &format!("Port {zero} could not be found."),
    );
    let r = call(
        &app,
        Method::PUT,
        &add,
        &t,
        Some(json!({"subnet_id": nogw})),
    )
    .await;
    fault(
        &r,
        400,
        "BadRequest",
        "Bad router request: Subnet for router interface must have a gateway IP.",
    );
    let r = call(&app, Method::PUT, &add, &t, Some(json!({"subnet_id": s}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(&app, Method::PUT, &add, &t, Some(json!({"subnet_id": s}))).await;
    fault(
        &r,
        400,
        "BadRequest",
        &format!("Bad router request: Router already has a port on subnet {s}."),
    );
    // A network is on one router: another subnet of it, or the subnet on another router.
    let r = call(
        &app,
        Method::PUT,
        &add,
        &t,
        Some(json!({"subnet_id": second})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = call(
        &app,
        Method::POST,
        "/routers",
        &t,
        Some(json!({"router": {"name": "r2"}})),
    )
    .await;
    let r2 = id(&r, "router");
    let r = call(
        &app,
        Method::PUT,
        &format!("/routers/{r2}/add_router_interface"),
        &t,
        Some(json!({"subnet_id": s})),
    )
    .await;
    fault(
        &r,
        409,
        "IpAddressAlreadyAllocated",
        &format!("IP address 10.51.0.1 already allocated in subnet {s}"),
    );
    let r = call(
        &app,
        Method::PUT,
        &format!("/routers/{r2}/add_router_interface"),
        &t,
        Some(json!({"subnet_id": second})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = call(
        &app,
        Method::PUT,
        &remove,
        &t,
        Some(json!({"subnet_id": second})),
    )
    .await;
    fault(
        &r,
        404,
        "RouterInterfaceNotFoundForSubnet",
        &format!("Router {rid} has no interface on subnet {second}"),
    );
    let r = call(
        &app,
        Method::PUT,
        &remove,
        &t,
        Some(json!({"port_id": zero})),
    )
    .await;
    fault(
        &r,
        404,
        "RouterInterfaceNotFound",
        &format!("Router {rid} does not have an interface with id {zero}"),
    );
    let r = call(&app, Method::PUT, &remove, &t, Some(json!({}))).await;
    fault(
        &r,
        400,
        "BadRequest",
        "Bad router request: Either subnet_id or port_id must be specified.",
    );
    let r = call(&app, Method::GET, &format!("/routers/{zero}"), &t, None).await;
    fault(
        &r,
        404,
        "RouterNotFound",
        &format!("Router {zero} could not be found"),
    );

    // Gateways: external networks only; address and SNAT are an admin's.
    let r = call(
        &app,
        Method::PUT,
        &format!("/routers/{rid}"),
        &t,
        Some(json!({"router": {"external_gateway_info": {"network_id": n}}})),
    )
    .await;
    fault(
        &r,
        400,
        "BadRequest",
        &format!("Bad router request: Network {n} is not an external network."),
    );
    let r = call(
        &app,
        Method::PUT,
        &format!("/routers/{rid}"),
        &t,
        Some(
            json!({"router": {"external_gateway_info": {"network_id": ext, "enable_snat": false}}}),
        ),
    )
    .await;
    fault(
        &r,
        403,
        "PolicyNotAuthorized",
        "(rule:update_router and (rule:update_router:external_gateway_info and (rule:update_router:external_gateway_info:network_id and rule:update_router:external_gateway_info:enable_snat))) is disallowed by policy",
    );
    let r = call(&app, Method::POST, "/routers", &t, Some(json!({"router": {"external_gateway_info": {"network_id": ext, "external_fixed_ips": [{"ip_address": "192.0.2.110"}]}}}))).await;
    fault(
        &r,
        403,
        "PolicyNotAuthorized",
        "(rule:create_router and (rule:create_router:external_gateway_info and (rule:create_router:external_gateway_info:network_id and rule:create_router:external_gateway_info:external_fixed_ips))) is disallowed by policy",
    );

    // Floating IPs.
    let r = call(
        &app,
        Method::POST,
        "/floatingips",
        &t,
        Some(json!({"floatingip": {}})),
    )
    .await;
    fault(
        &r,
        400,
        "HTTPBadRequest",
        "Failed to parse request. Required attribute 'floating_network_id' not specified",
    );
    let r = call(
        &app,
        Method::POST,
        "/floatingips",
        &t,
        Some(json!({"floatingip": {"floating_network_id": n}})),
    )
    .await;
    fault(
        &r,
        400,
        "BadRequest",
        &format!("Bad floatingip request: Network {n} is not a valid external network."),
    );
    let r = call(
        &app,
        Method::POST,
        "/floatingips",
        &t,
        Some(json!({"floatingip": {"floating_network_id": zero}})),
    )
    .await;
    fault(
        &r,
        404,
        "NetworkNotFound",
        &format!("Network {zero} could not be found."),
    );
    let r = call(&app, Method::POST, "/floatingips", &t, Some(json!({"floatingip": {"floating_network_id": ext, "floating_ip_address": "192.0.2.110"}}))).await;
    fault(
        &r,
        403,
        "PolicyNotAuthorized",
        "(rule:create_floatingip and rule:create_floatingip:floating_ip_address) is disallowed by policy",
    );
    let r = call(
        &app,
        Method::PUT,
        &format!("/routers/{rid}"),
        &t,
        Some(json!({"router": {"external_gateway_info": {"network_id": ext}}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (p, fixed) = port(&app, &t, &n).await;
    let r = call(&app, Method::POST, "/floatingips", &t, Some(json!({"floatingip": {"floating_network_id": ext, "port_id": p, "fixed_ip_address": "10.51.0.99"}}))).await;
    fault(
        &r,
        400,
        "BadRequest",
        &format!("Bad floatingip request: Port {p} does not have fixed ip 10.51.0.99."),
    );
    let r = call(
        &app,
        Method::POST,
        "/floatingips",
        &t,
        Some(json!({"floatingip": {"floating_network_id": ext, "port_id": zero}})),
    )
    .await;
    fault(
        &r,
        404,
        "PortNotFound",
        &format!("Port {zero} could not be found."),
    );
    let r = call(
        &app,
        Method::POST,
        "/floatingips",
        &t,
        Some(json!({"floatingip": {"floating_network_id": ext, "port_id": p}})),
    )
    .await;
    let fid = id(&r, "floatingip");
    let r = call(
        &app,
        Method::POST,
        "/floatingips",
        &t,
        Some(json!({"floatingip": {"floating_network_id": ext, "port_id": p}})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 409, "{}", r.text);
    assert_eq!(
        r.body["NeutronError"]["type"],
        "FloatingIPPortAlreadyAssociated"
    );
    let m = r.body["NeutronError"]["message"].as_str().expect("message");
    assert!(m.ends_with(&format!("with port {p} using fixed IP {fixed}, as that fixed IP already has a floating IP on external network {ext}.")), "{m}");
    // Nothing was left of the refused one.
    let r = call(&app, Method::GET, "/floatingips", &t, None).await;
    assert_eq!(
        r.body["floatingips"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
    let r = call(
        &app,
        Method::PUT,
        &format!("/floatingips/{fid}"),
        &t,
        Some(json!({"floatingip": {"floating_ip_address": "192.0.2.111"}})),
    )
    .await;
    fault(
        &r,
        400,
        "HTTPBadRequest",
        "Cannot update read-only attribute floating_ip_address",
    );
    let r = call(&app, Method::GET, &format!("/floatingips/{zero}"), &t, None).await;
    fault(
        &r,
        404,
        "FloatingIPNotFound",
        &format!("Floating IP {zero} could not be found"),
    );
    // The floating IP's own port is not a port to delete.
    let admin = app.admin().await;
    let r = call(
        &app,
        Method::GET,
        "/ports?device_owner=network:floatingip",
        &admin,
        None,
    )
    .await;
    let fport = r.body["ports"][0]["id"].as_str().expect("port").to_owned();
    assert_eq!(r.body["ports"][0]["device_id"], fid.as_str());
    let r = call(
        &app,
        Method::DELETE,
        &format!("/ports/{fport}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
}

#[tokio::test]
async fn attack_members_cannot_reach_another_projects_routers_floating_ips_or_the_external_network()
{
    let (app, _) = boxed().await;
    let (_, _, a) = app.user_with_role("l3-alice", "member").await;
    let (_, bpid, b) = app.user_with_role("l3-bob", "member").await;
    let (_, _, reader) = app.user_with_role("l3-reader", "reader").await;
    let (ext, ext_subnet) = public(&app, &a).await;
    let (an, asub) = net(&app, &a, "10.60.0.0/24").await;
    let r = call(
        &app,
        Method::POST,
        "/routers",
        &a,
        Some(json!({"router": {"name": "ra", "external_gateway_info": {"network_id": ext}}})),
    )
    .await;
    let ra = id(&r, "router");
    let r = call(
        &app,
        Method::PUT,
        &format!("/routers/{ra}/add_router_interface"),
        &a,
        Some(json!({"subnet_id": asub})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (ap, _) = port(&app, &a, &an).await;
    let r = call(
        &app,
        Method::POST,
        "/floatingips",
        &a,
        Some(json!({"floatingip": {"floating_network_id": ext, "port_id": ap}})),
    )
    .await;
    let fa = id(&r, "floatingip");

    // Bob sees none of it and touches none of it: every answer a 404.
    let not_router = |r: &Resp| {
        fault(
            r,
            404,
            "RouterNotFound",
            &format!("Router {ra} could not be found"),
        )
    };
    not_router(&call(&app, Method::GET, &format!("/routers/{ra}"), &b, None).await);
    not_router(
        &call(
            &app,
            Method::PUT,
            &format!("/routers/{ra}"),
            &b,
            Some(json!({"router": {"name": "x"}})),
        )
        .await,
    );
    not_router(&call(&app, Method::DELETE, &format!("/routers/{ra}"), &b, None).await);
    not_router(
        &call(
            &app,
            Method::PUT,
            &format!("/routers/{ra}/remove_router_interface"),
            &b,
            Some(json!({"subnet_id": asub})),
        )
        .await,
    );
    let (_, bsub) = net(&app, &b, "10.61.0.0/24").await;
    not_router(
        &call(
            &app,
            Method::PUT,
            &format!("/routers/{ra}/add_router_interface"),
            &b,
            Some(json!({"subnet_id": bsub})),
        )
        .await,
    );
    let r = call(&app, Method::GET, "/routers", &b, None).await;
    assert_eq!(r.body["routers"], json!([]), "{}", r.text);
    let r = call(&app, Method::GET, "/floatingips", &b, None).await;
    assert_eq!(r.body["floatingips"], json!([]), "{}", r.text);
    let not_fip = |r: &Resp| {
        fault(
            r,
            404,
            "FloatingIPNotFound",
            &format!("Floating IP {fa} could not be found"),
        )
    };
    not_fip(&call(&app, Method::GET, &format!("/floatingips/{fa}"), &b, None).await);
    not_fip(
        &call(
            &app,
            Method::PUT,
            &format!("/floatingips/{fa}"),
            &b,
            Some(json!({"floatingip": {"port_id": null}})),
        )
        .await,
    );
    not_fip(
        &call(
            &app,
            Method::DELETE,
            &format!("/floatingips/{fa}"),
            &b,
            None,
        )
        .await,
    );
    // Bob's router cannot take Alice's subnet or port; Bob's floating IP cannot take her port.
    let r = call(
        &app,
        Method::POST,
        "/routers",
        &b,
        Some(json!({"router": {"name": "rb", "external_gateway_info": {"network_id": ext}}})),
    )
    .await;
    let rb = id(&r, "router");
    let r = call(
        &app,
        Method::PUT,
        &format!("/routers/{rb}/add_router_interface"),
        &b,
        Some(json!({"subnet_id": asub})),
    )
    .await;
    fault(
        &r,
        404,
        "SubnetNotFound",
        &format!("Subnet {asub} could not be found."),
    );
    let r = call(
        &app,
        Method::PUT,
        &format!("/routers/{rb}/add_router_interface"),
        &b,
        Some(json!({"port_id": ap})),
    )
    .await;
    fault(
        &r,
        404,
        "PortNotFound",
        &format!("Port {ap} could not be found."),
    );
    let r = call(
        &app,
        Method::POST,
        "/floatingips",
        &b,
        Some(json!({"floatingip": {"floating_network_id": ext, "port_id": ap}})),
    )
    .await;
    fault(
        &r,
        404,
        "PortNotFound",
        &format!("Port {ap} could not be found."),
    );
    let r = call(
        &app,
        Method::POST,
        "/floatingips",
        &b,
        Some(json!({"floatingip": {"floating_network_id": ext}})),
    )
    .await;
    let fb = id(&r, "floatingip");
    let r = call(
        &app,
        Method::PUT,
        &format!("/floatingips/{fb}"),
        &b,
        Some(json!({"floatingip": {"port_id": ap}})),
    )
    .await;
    fault(
        &r,
        404,
        "PortNotFound",
        &format!("Port {ap} could not be found."),
    );
    // Nor the router's ports on the external network, nor Alice's interface.
    let r = call(
        &app,
        Method::GET,
        &format!("/ports?network_id={ext}"),
        &b,
        None,
    )
    .await;
    assert_eq!(r.body["ports"], json!([]), "{}", r.text);
    // Alice's things are as they were.
    let r = call(&app, Method::GET, &format!("/floatingips/{fa}"), &a, None).await;
    assert_eq!(r.body["floatingip"]["port_id"], ap.as_str(), "{}", r.text);

    // The external network is the operator's: no member makes one, changes it, adds to it.
    let r = call(
        &app,
        Method::POST,
        "/networks",
        &b,
        Some(json!({"network": {"name": "mine", "router:external": true}})),
    )
    .await;
    fault(
        &r,
        403,
        "PolicyNotAuthorized",
        "(rule:create_network and rule:create_network:router:external) is disallowed by policy",
    );
    let r = call(
        &app,
        Method::PUT,
        &format!("/networks/{ext}"),
        &b,
        Some(json!({"network": {"router:external": false}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = call(&app, Method::DELETE, &format!("/networks/{ext}"), &b, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = call(
        &app,
        Method::PUT,
        &format!("/subnets/{ext_subnet}"),
        &b,
        Some(
            json!({"subnet": {"allocation_pools": [{"start": "192.0.2.2", "end": "192.0.2.50"}]}}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = call(
        &app,
        Method::POST,
        "/subnets",
        &b,
        Some(json!({"subnet": {"network_id": ext, "ip_version": 4, "cidr": "192.0.3.0/24"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = call(
        &app,
        Method::POST,
        "/ports",
        &b,
        Some(json!({"port": {"network_id": ext}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = call(
        &app,
        Method::PUT,
        &format!("/routers/{rb}/add_router_interface"),
        &b,
        Some(json!({"subnet_id": ext_subnet})),
    )
    .await;
    assert!(
        r.status == StatusCode::NOT_FOUND || r.status == StatusCode::BAD_REQUEST,
        "{}",
        r.text
    );

    // Readers write nothing.
    let r = call(
        &app,
        Method::POST,
        "/routers",
        &reader,
        Some(json!({"router": {"name": "x"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = call(
        &app,
        Method::POST,
        "/floatingips",
        &reader,
        Some(json!({"floatingip": {"floating_network_id": ext}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);

    // Bob takes no more of the floating range than his quota.
    let admin = app.admin().await;
    let r = call(
        &app,
        Method::PUT,
        &format!("/quotas/{bpid}"),
        &admin,
        Some(json!({"quota": {"floatingip": 3, "router": 1}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for _ in 0..2 {
        let r = call(
            &app,
            Method::POST,
            "/floatingips",
            &b,
            Some(json!({"floatingip": {"floating_network_id": ext}})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let r = call(
        &app,
        Method::POST,
        "/floatingips",
        &b,
        Some(json!({"floatingip": {"floating_network_id": ext}})),
    )
    .await;
    fault(
        &r,
        409,
        "OverQuota",
        "Quota exceeded for resources: ['floatingip'].",
    );
    let r = call(
        &app,
        Method::POST,
        "/routers",
        &b,
        Some(json!({"router": {"name": "again", "external_gateway_info": {"network_id": ext}}})),
    )
    .await;
    fault(
        &r,
        409,
        "OverQuota",
        "Quota exceeded for resources: ['router'].",
    );
    let r = call(
        &app,
        Method::GET,
        &format!("/ports?network_id={ext}"),
        &admin,
        None,
    )
    .await;
    // Alice's router and floating IP, Bob's router and three floating IPs.
    assert_eq!(
        r.body["ports"].as_array().map(Vec::len),
        Some(6),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn external_addresses_stay_inside_the_configured_range() {
    let (app, _) = boxed().await;
    let admin = app.admin().await;
    let (ext, ext_subnet) = public(&app, &admin).await;
    // Another external network gets no subnet: onebox was given one range of the LAN.
    let r = call(
        &app,
        Method::POST,
        "/networks",
        &admin,
        Some(json!({"network": {"name": "lan", "router:external": true}})),
    )
    .await;
    let lan = id(&r, "network");
    let r = call(
        &app,
        Method::POST,
        "/subnets",
        &admin,
        Some(json!({"subnet": {"network_id": lan, "ip_version": 4, "cidr": "192.168.1.0/24"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.body["NeutronError"]["type"], "InvalidInput");
    let (own, _) = net(&app, &admin, "10.70.0.0/24").await;
    let r = call(
        &app,
        Method::PUT,
        &format!("/networks/{own}"),
        &admin,
        Some(json!({"network": {"router:external": true}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // The public subnet keeps its pool inside the range.
    let r = call(
        &app,
        Method::PUT,
        &format!("/subnets/{ext_subnet}"),
        &admin,
        Some(
            json!({"subnet": {"allocation_pools": [{"start": "192.0.2.2", "end": "192.0.2.50"}]}}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = call(
        &app,
        Method::PUT,
        &format!("/subnets/{ext_subnet}"),
        &admin,
        Some(json!({"subnet": {"gateway_ip": "192.0.2.2"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // An admin's chosen address is in the range too.
    let r = call(&app, Method::POST, "/floatingips", &admin, Some(json!({"floatingip": {"floating_network_id": ext, "floating_ip_address": "192.0.2.20"}}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = call(&app, Method::POST, "/routers", &admin, Some(json!({"router": {"external_gateway_info": {"network_id": ext, "external_fixed_ips": [{"ip_address": "192.0.2.20"}]}}}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = call(&app, Method::POST, "/floatingips", &admin, Some(json!({"floatingip": {"floating_network_id": ext, "floating_ip_address": "192.0.2.115"}}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["floatingip"]["floating_ip_address"], "192.0.2.115");
    let r = call(&app, Method::POST, "/routers", &admin, Some(json!({"router": {"external_gateway_info": {"network_id": ext, "enable_snat": false, "external_fixed_ips": [{"ip_address": "192.0.2.116"}]}}}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let g = &r.body["router"]["external_gateway_info"];
    assert_eq!(g["enable_snat"], false);
    assert_eq!(g["external_fixed_ips"][0]["ip_address"], "192.0.2.116");
    assert_eq!(r.body["router"]["ha"], false);
    // The range runs out at its end (21 addresses, 2 taken).
    for _ in 0..19 {
        let r = call(
            &app,
            Method::POST,
            "/floatingips",
            &admin,
            Some(json!({"floatingip": {"floating_network_id": ext}})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let r = call(
        &app,
        Method::POST,
        "/floatingips",
        &admin,
        Some(json!({"floatingip": {"floating_network_id": ext}})),
    )
    .await;
    fault(
        &r,
        409,
        "IpAddressGenerationFailure",
        &format!("No more IP addresses available on network {ext}."),
    );
    // A restart finds the public network as it is.
    let again = app
        .network
        .ensure_public()
        .await
        .expect("public")
        .expect("made");
    assert_eq!(again.id, ext);
}

#[tokio::test]
async fn without_an_external_network_there_is_nowhere_to_take_floating_ips_from() {
    let app = TestApp::new().await;
    let (_, _, t) = app.user_with_role("l3-none", "member").await;
    let r = call(
        &app,
        Method::GET,
        "/networks?router:external=true",
        &t,
        None,
    )
    .await;
    assert_eq!(r.body["networks"], json!([]), "{}", r.text);
    let (n, _) = net(&app, &t, "10.80.0.0/24").await;
    let r = call(
        &app,
        Method::POST,
        "/floatingips",
        &t,
        Some(json!({"floatingip": {"floating_network_id": n}})),
    )
    .await;
    fault(
        &r,
        400,
        "BadRequest",
        &format!("Bad floatingip request: Network {n} is not a valid external network."),
    );
    let zero = "00000000-0000-0000-0000-000000000000";
    let r = call(
        &app,
        Method::POST,
        "/floatingips",
        &t,
        Some(json!({"floatingip": {"floating_network_id": zero}})),
    )
    .await;
    fault(
        &r,
        404,
        "NetworkNotFound",
        &format!("Network {zero} could not be found."),
    );
    // Routers without a gateway still work (their subnets are isolated).
    let r = call(
        &app,
        Method::POST,
        "/routers",
        &t,
        Some(json!({"router": {"name": "r"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(
        app.network
            .ensure_public()
            .await
            .expect("nothing")
            .is_none()
    );
}

#[tokio::test]
async fn novas_floating_ip_pools_are_the_external_networks_up_to_2_35() {
    let (app, _) = boxed().await;
    let (_, _, t) = app.user_with_role("l3-pools", "member").await;
    let h = [
        ("x-auth-token", t.as_str()),
        ("openstack-api-version", "compute 2.35"),
    ];
    let r = app
        .call(Method::GET, "/compute/v2.1/os-floating-ip-pools", &h, None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"floating_ip_pools": [{"name": "public"}]}));
    let h = [
        ("x-auth-token", t.as_str()),
        ("openstack-api-version", "compute 2.36"),
    ];
    let r = app
        .call(Method::GET, "/compute/v2.1/os-floating-ip-pools", &h, None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}

#[tokio::test]
async fn deleting_a_project_gives_its_external_addresses_back() {
    let (app, host) = boxed().await;
    let (_, pid, t) = app.user_with_role("l3-gone", "member").await;
    let (ext, _) = public(&app, &t).await;
    let r = call(
        &app,
        Method::POST,
        "/routers",
        &t,
        Some(json!({"router": {"name": "r", "external_gateway_info": {"network_id": ext}}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = call(
        &app,
        Method::POST,
        "/floatingips",
        &t,
        Some(json!({"floatingip": {"floating_network_id": ext}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let admin = app.admin().await;
    let h = [("x-auth-token", admin.as_str())];
    let r = app
        .call(
            Method::DELETE,
            &format!("/identity/v3/projects/{pid}"),
            &h,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = call(
        &app,
        Method::GET,
        &format!("/ports?network_id={ext}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(r.body["ports"], json!([]), "{}", r.text);
    // The host follows at the next check.
    app.network.resync_edge().await.expect("resync");
    assert!(host.last().rows.routers.is_empty());
}

#[tokio::test]
async fn the_public_subnet_comes_back_at_start_if_an_admin_deleted_it() {
    let (app, _) = boxed().await;
    let admin = app.admin().await;
    let (ext, sub) = public(&app, &admin).await;
    let r = call(
        &app,
        Method::DELETE,
        &format!("/subnets/{sub}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let n = app
        .network
        .ensure_public()
        .await
        .expect("public")
        .expect("made");
    assert_eq!(n.id, ext);
    assert_eq!(n.subnets.len(), 1);
    let r = call(
        &app,
        Method::GET,
        &format!("/subnets/{}", n.subnets[0]),
        &admin,
        None,
    )
    .await;
    assert_eq!(
        r.body["subnet"]["allocation_pools"],
        json!([{"start": "192.0.2.100", "end": "192.0.2.120"}]),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn a_floating_ip_for_the_default_network_gets_its_router_made() {
    let (app, _rec) = boxed().await;
    let t = app.demo().await;
    let (ext, _) = public(&app, &t).await;
    let h = [
        ("x-auth-token", t.as_str()),
        ("openstack-api-version", "compute 2.37"),
    ];
    let r = app
        .call(
            Method::POST,
            "/compute/v2.1/servers",
            &h,
            Some(json!({"server": {"name": "s", "imageRef": common::IMAGE, "flavorRef": "1", "networks": "auto"}})),
        )
        .await;
    let sid = id(&r, "server");
    app.compute.idle().await;
    let r = call(
        &app,
        Method::GET,
        &format!("/ports?device_id={sid}"),
        &t,
        None,
    )
    .await;
    let server_port = r.body["ports"][0]["id"].as_str().expect("port").to_owned();
    // What openstacksdk's auto_ip sends: a floating IP made straight onto the port.
    let r = call(
        &app,
        Method::POST,
        "/floatingips",
        &t,
        Some(json!({"floatingip": {"floating_network_id": ext, "port_id": server_port}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["floatingip"]["status"], "ACTIVE", "{}", r.text);
    let r = call(&app, Method::GET, "/routers", &t, None).await;
    let routers = r.body["routers"].as_array().expect("routers");
    assert_eq!(routers.len(), 1, "{}", r.text);
    assert_eq!(routers[0]["name"], "auto_allocated_router");
    assert_eq!(
        routers[0]["external_gateway_info"]["network_id"],
        ext.as_str()
    );
    // Another network of the project gets no router of onebox's making: Neutron's 404.
    let (other_net, _) = net(&app, &t, "172.60.0.0/24").await;
    let (other_port, _) = port(&app, &t, &other_net).await;
    let r = call(
        &app,
        Method::POST,
        "/floatingips",
        &t,
        Some(json!({"floatingip": {"floating_network_id": ext, "port_id": other_port}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(
        r.body["NeutronError"]["type"],
        "ExternalGatewayForFloatingIPNotFound"
    );
    let r = call(&app, Method::GET, "/routers", &t, None).await;
    assert_eq!(r.body["routers"].as_array().map(Vec::len), Some(1));
}
