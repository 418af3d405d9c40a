//! The Networking API (Neutron v2.0), under `/network`.
//!
//! | method | path | handler |
//! |---|---|---|
//! | GET | `/`, `/v2.0/` | version documents |
//! | GET | `/v2.0/extensions[/{alias}]` | what is served |
//! | GET, POST / GET, PUT, DELETE | `/v2.0/networks[/{id}]` | [`networks`] |
//! | GET, POST / GET, PUT, DELETE | `/v2.0/subnets[/{id}]` | [`subnets`] |
//! | GET, POST / GET, PUT, DELETE | `/v2.0/ports[/{id}]` | [`ports`] |
//! | GET, POST / GET, PUT, DELETE | `/v2.0/routers[/{id}]` | [`routers`] |
//! | PUT | `/v2.0/routers/{id}/add_router_interface`, `…/remove_router_interface` | [`routers`] |
//! | GET, POST / GET, PUT, DELETE | `/v2.0/floatingips[/{id}]` | [`floating_ips`] |
//! | GET, PUT, DELETE | `/v2.0/<collection>/{id}/tags[/{tag}]` | [`tags`] |
//! | GET, PUT, DELETE | `/v2.0/quotas[/{project}[/details,/default]]` | [`quotas`] |
//!
//! Faults are Neutron's `{"NeutronError": {"type", "message", "detail"}}`
//! ([`fault::render`] with [`Service::Network`]). A `.json` suffix on a path is accepted, as
//! Neutron accepts it.

mod body;
mod floating_ips;
mod list;
mod networks;
mod ports;
mod quotas;
mod routers;
mod subnets;
mod tags;
pub mod views;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{any, get, put};
use serde_json::{Value, json};

use crate::{AppState, Fault, Service, auth, fault};

pub fn router(state: AppState) -> Router {
    let mut v2 = Router::new();
    for coll in ::network::Tagged::COLLECTIONS {
        v2 = v2
            .route(
                &format!("/network/v2.0/{coll}/{{id}}/tags"),
                get(tags::list).put(tags::replace).delete(tags::clear),
            )
            .route(
                &format!("/network/v2.0/{coll}/{{id}}/tags/{{tag}}"),
                get(tags::check).put(tags::add).delete(tags::remove),
            );
    }
    let v2 = v2
        .route("/network/v2.0/extensions", get(extensions))
        .route("/network/v2.0/extensions/{alias}", get(extension))
        .route(
            "/network/v2.0/networks",
            get(networks::list).post(networks::create),
        )
        .route(
            "/network/v2.0/networks/{id}",
            get(networks::show)
                .put(networks::update)
                .delete(networks::delete),
        )
        .route(
            "/network/v2.0/subnets",
            get(subnets::list).post(subnets::create),
        )
        .route(
            "/network/v2.0/subnets/{id}",
            get(subnets::show)
                .put(subnets::update)
                .delete(subnets::delete),
        )
        .route("/network/v2.0/ports", get(ports::list).post(ports::create))
        .route(
            "/network/v2.0/ports/{id}",
            get(ports::show).put(ports::update).delete(ports::delete),
        )
        .route(
            "/network/v2.0/routers",
            get(routers::list).post(routers::create),
        )
        .route(
            "/network/v2.0/routers/{id}",
            get(routers::show)
                .put(routers::update)
                .delete(routers::delete),
        )
        .route(
            "/network/v2.0/routers/{id}/add_router_interface",
            put(routers::add_interface),
        )
        .route(
            "/network/v2.0/routers/{id}/remove_router_interface",
            put(routers::remove_interface),
        )
        .route(
            "/network/v2.0/floatingips",
            get(floating_ips::list).post(floating_ips::create),
        )
        .route(
            "/network/v2.0/floatingips/{id}",
            get(floating_ips::show)
                .put(floating_ips::update)
                .delete(floating_ips::delete),
        )
        .route("/network/v2.0/quotas", get(quotas::list))
        .route(
            "/network/v2.0/quotas/{project}",
            get(quotas::show).put(quotas::update).delete(quotas::reset),
        )
        .route(
            "/network/v2.0/quotas/{project}/details",
            get(quotas::details),
        )
        .route(
            "/network/v2.0/quotas/{project}/default",
            get(quotas::defaults),
        )
        .route("/network/v2.0/{*rest}", any(fault::unknown_route))
        .layer(from_fn_with_state(state.clone(), auth::required));
    Router::new()
        .merge(v2)
        .route("/network", get(versions))
        .route("/network/", get(versions))
        .route("/network/v2.0", get(v2_index))
        .route("/network/v2.0/", get(v2_index))
        .route("/network/{*rest}", any(fault::unknown_route))
        .layer(from_fn(|req, next| {
            fault::render(Service::Network, req, next)
        }))
        .layer(from_fn(strip_json_suffix))
        .with_state(state)
}

/// `/v2.0/networks.json` is `/v2.0/networks`.
async fn strip_json_suffix(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = req.uri().path();
    if let Some(p) = path.strip_suffix(".json") {
        let pq = match req.uri().query() {
            Some(q) => format!("{p}?{q}"),
            None => p.to_owned(),
        };
        if let Ok(u) = pq.parse() {
            *req.uri_mut() = u;
        }
    }
    next.run(req).await
}

impl From<::network::Error> for Fault {
    fn from(e: ::network::Error) -> Self {
        use ::network::Error as E;
        match e {
            E::NotFound { kind, message } => Fault::not_found(message).kind(kind),
            E::BadRequest { kind, message } => Fault::bad_request(message).kind(kind),
            E::Conflict { kind, message } => Fault::conflict(message).kind(kind),
            E::Forbidden(m) => Fault::forbidden(m).kind("PolicyNotAuthorized"),
            e @ E::OverQuota(_) => Fault::conflict(e.to_string()).kind("OverQuota"),
            E::Store(s) => crate::fault::storage(s.conflict(), &s),
        }
    }
}

async fn versions(State(s): State<AppState>, h: HeaderMap) -> Json<Value> {
    let href = format!("{}/network/v2.0/", s.base_url(&h));
    Json(
        json!({"versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": href}]}]}),
    )
}

async fn v2_index(State(s): State<AppState>, h: HeaderMap) -> Json<Value> {
    let base = format!("{}/network/v2.0", s.base_url(&h));
    let resources: Vec<Value> = [
        ("network", "networks"),
        ("subnet", "subnets"),
        ("port", "ports"),
        ("security_group", "security-groups"),
        ("security_group_rule", "security-group-rules"),
        ("router", "routers"),
        ("floatingip", "floatingips"),
        ("quota", "quotas"),
    ]
    .iter()
    .map(|(name, coll)| {
        json!({"name": name, "collection": coll, "links": [{"rel": "self", "href": format!("{base}/{coll}")}]})
    })
    .collect();
    Json(json!({ "resources": resources }))
}

/// The extensions onebox serves, alias and name.
const EXTENSIONS: &[(&str, &str, &str)] = &[
    (
        "security-group",
        "security-group",
        "The security groups extension.",
    ),
    ("port-security", "Port Security", "Provides port security"),
    (
        "allowed-address-pairs",
        "Allowed Address Pairs",
        "Provides allowed address pairs",
    ),
    (
        "external-net",
        "Neutron external network",
        "Adds external network attribute to network resource.",
    ),
    (
        "router",
        "Neutron L3 Router",
        "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks via a NAT gateway.",
    ),
    (
        "ext-gw-mode",
        "Neutron L3 Configurable external gateway mode",
        "Extension of the router abstraction for specifying whether SNAT should occur on the external gateway",
    ),
    (
        "fip-port-details",
        "Floating IP Port Details Extension",
        "Add port_details attribute to Floating IP resource",
    ),
    (
        "quotas",
        "Quota management support",
        "Expose functions for quotas management per tenant",
    ),
    (
        "quota_details",
        "Quota details management support",
        "Expose functions for quotas usage statistics per project",
    ),
    (
        "project-id",
        "project_id field enabled",
        "Extension that indicates that project_id field is enabled.",
    ),
    (
        "standard-attr-revisions",
        "Resource revision numbers",
        "This extension will display the revision number of neutron resources.",
    ),
    (
        "standard-attr-timestamp",
        "Resource timestamps",
        "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes.",
    ),
    (
        "standard-attr-description",
        "standard-attr-description",
        "Extension to add descriptions to standard attributes",
    ),
    (
        "standard-attr-tag",
        "Tag support for resources with standard attribute: subnet, trunk, network_segment_range, router, network, policy, subnet_pool, port, security_group, floatingip",
        "Enables to set tag on resources with standard attribute.",
    ),
    (
        "binding",
        "Port Binding",
        "Expose port bindings of a virtual port to external application",
    ),
    (
        "net-mtu",
        "Network MTU",
        "Provides MTU attribute for a network resource.",
    ),
    (
        "pagination",
        "Pagination support",
        "Extension that indicates that pagination is enabled.",
    ),
    (
        "sorting",
        "Sorting support",
        "Extension that indicates that sorting is enabled.",
    ),
    (
        "filter-validation",
        "Filter parameters validation",
        "Provides validation on filtering parameters.",
    ),
    (
        "fields-validation",
        "Fields validation",
        "Extension that indicates that fields are validated.",
    ),
    (
        "empty-string-filtering",
        "Empty String Filtering Extension",
        "Allow filtering by attributes with empty string value",
    ),
    (
        "stateful-security-group",
        "Stateful security group",
        "Indicates if the security group is stateful or not",
    ),
];

fn ext(e: &(&str, &str, &str)) -> Value {
    json!({"alias": e.0, "name": e.1, "description": e.2, "links": [], "updated": "2013-02-03T10:00:00-00:00"})
}

async fn extensions() -> Json<Value> {
    Json(json!({"extensions": EXTENSIONS.iter().map(ext).collect::<Vec<_>>()}))
}

async fn extension(Path(alias): Path<String>) -> Result<Json<Value>, Fault> {
    EXTENSIONS
        .iter()
        .find(|e| e.0 == alias)
        .map(|e| Json(json!({"extension": ext(e)})))
        .ok_or_else(|| {
            Fault::not_found(format!("Extension with alias {alias} does not exist"))
                .kind("HTTPNotFound")
        })
}

/// The URL of a collection, for paging links.
fn collection_url(s: &AppState, h: &HeaderMap, coll: &str) -> String {
    format!("{}/network/v2.0/{coll}", s.base_url(h))
}

/// 201 with the resource under its name.
fn created(name: &str, v: Value) -> (StatusCode, Json<Value>) {
    (StatusCode::CREATED, Json(json!({ name: v })))
}
