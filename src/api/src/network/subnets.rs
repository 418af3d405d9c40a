//! `/v2.0/subnets`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

use super::list::ListParams;
use super::{body, collection_url, created, views};
use crate::extract::{AnyJson, Caller, JsonBody, QueryPairs};
use crate::{AppState, Fault};

const CREATE: &[&str] = &[
    "network_id",
    "name",
    "description",
    "ip_version",
    "cidr",
    "gateway_ip",
    "enable_dhcp",
    "allocation_pools",
    "dns_nameservers",
    "host_routes",
    "project_id",
    "tenant_id",
    "tags",
    "ipv6_ra_mode",
    "ipv6_address_mode",
    "subnetpool_id",
    "prefixlen",
    "service_types",
    "segment_id",
    "use_default_subnetpool",
    "dns_publish_fixed_ip",
];
const UPDATE: &[&str] = &[
    "name",
    "description",
    "gateway_ip",
    "enable_dhcp",
    "allocation_pools",
    "dns_nameservers",
    "host_routes",
    "service_types",
    "segment_id",
    "dns_publish_fixed_ip",
];

fn pools(o: &Map<String, Value>) -> Result<Option<Vec<(String, String)>>, Fault> {
    Ok(
        body::object_list(o, "allocation_pools", &["start", "end"])?.map(|v| {
            v.iter()
                .map(|m| {
                    (
                        body::member(m, "start").unwrap_or_default(),
                        body::member(m, "end").unwrap_or_default(),
                    )
                })
                .collect()
        }),
    )
}

fn routes(o: &Map<String, Value>) -> Result<Option<Vec<(String, String)>>, Fault> {
    Ok(
        body::object_list(o, "host_routes", &["destination", "nexthop"])?.map(|v| {
            v.iter()
                .map(|m| {
                    (
                        body::member(m, "destination").unwrap_or_default(),
                        body::member(m, "nexthop").unwrap_or_default(),
                    )
                })
                .collect()
        }),
    )
}

/// Whether the subnets' networks are external (for `router:external`).
async fn externals(s: &AppState, c: &identity::Context) -> Result<Vec<String>, Fault> {
    Ok(s.network
        .list_networks(c)
        .await?
        .into_iter()
        .filter(|n| n.external)
        .map(|n| n.id)
        .collect())
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    q: QueryPairs,
    h: HeaderMap,
) -> Result<Json<Value>, Fault> {
    let p = ListParams::parse(&q, views::SUBNET_ATTRS)?;
    let ext = externals(&s, &c).await?;
    let items = s.network.list_subnets(&c).await?;
    let items = items
        .iter()
        .map(|x| views::subnet(x, ext.contains(&x.network_id)))
        .collect();
    Ok(Json(p.respond(
        "subnets",
        items,
        &collection_url(&s, &h, "subnets"),
    )?))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    let p = ListParams::parse(&q, views::SUBNET_ATTRS)?;
    let x = s.network.get_subnet(&c, &id).await?;
    let ext = externals(&s, &c).await?;
    Ok(Json(
        json!({"subnet": p.project(views::subnet(&x, ext.contains(&x.network_id)))}),
    ))
}

pub async fn create(
    State(s): State<AppState>,
    Caller(c): Caller,
    JsonBody(b): AnyJson,
) -> Result<(StatusCode, Json<Value>), Fault> {
    let o = body::object(&b, "subnet", CREATE)?;
    let Some(network_id) = body::string(o, "network_id", 255)? else {
        return Err(Fault::bad_request(
            "Failed to parse request. Required attribute 'network_id' not specified",
        )
        .kind("HTTPBadRequest"));
    };
    let ip_version = match body::integer(o, "ip_version")? {
        Some(Some(v)) => v,
        _ => {
            return Err(Fault::bad_request(
                "Failed to parse request. Required attribute 'ip_version' not specified",
            )
            .kind("HTTPBadRequest"));
        }
    };
    let Some(cidr) = body::string(o, "cidr", 64)? else {
        return Err(body::invalid(
            "A cidr must be specified in the absence of a subnet pool",
        ));
    };
    let req = ::network::SubnetCreate {
        network_id,
        name: body::string(o, "name", 255)?.unwrap_or_default(),
        description: body::string(o, "description", 255)?.unwrap_or_default(),
        ip_version: u8::try_from(ip_version).unwrap_or(0),
        cidr,
        gateway_ip: body::nullable_string(o, "gateway_ip", 64)?,
        enable_dhcp: body::boolean(o, "enable_dhcp")?.unwrap_or(true),
        allocation_pools: pools(o)?,
        dns_nameservers: body::string_list(o, "dns_nameservers")?.unwrap_or_default(),
        host_routes: routes(o)?.unwrap_or_default(),
        project_id: body::project(o)?,
        tags: body::string_list(o, "tags")?.unwrap_or_default(),
    };
    let x = s.network.create_subnet(&c, req).await?;
    let ext = externals(&s, &c).await?;
    Ok(created(
        "subnet",
        views::subnet(&x, ext.contains(&x.network_id)),
    ))
}

pub async fn update(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    JsonBody(b): AnyJson,
) -> Result<Json<Value>, Fault> {
    let o = body::object(&b, "subnet", UPDATE)?;
    let u = ::network::SubnetUpdate {
        name: body::string(o, "name", 255)?,
        description: body::string(o, "description", 255)?,
        gateway_ip: body::nullable_string(o, "gateway_ip", 64)?,
        enable_dhcp: body::boolean(o, "enable_dhcp")?,
        allocation_pools: pools(o)?,
        dns_nameservers: body::string_list(o, "dns_nameservers")?,
        host_routes: routes(o)?,
    };
    let x = s.network.update_subnet(&c, &id, u).await?;
    let ext = externals(&s, &c).await?;
    Ok(Json(
        json!({"subnet": views::subnet(&x, ext.contains(&x.network_id))}),
    ))
}

pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Fault> {
    s.network.delete_subnet(&c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
