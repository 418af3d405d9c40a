//! `/os-hypervisors`: the box is one hypervisor (admin only).
//!
//! Before 2.53 it has the integer id 1 and is found by hostname under `/{pattern}/search`
//! and `/{pattern}/servers`; from 2.53 its id is the compute node's UUID and the listing
//! takes `hypervisor_hostname_pattern` and `with_servers`. From 2.88 the resource figures
//! leave the bodies, `/statistics` and `/{id}/uptime` are gone and `uptime` is a field.

use axum::Json;
use axum::extract::State;
use compute::operator::{Hypervisor, uptime_line};
use serde_json::{Value, json};

use super::Links;
use super::validate as v;
use crate::extract::{Caller, Path, QueryPairs};
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

const LIST: &str = "os_compute_api:os-hypervisors:list";
const DETAIL: &str = "os_compute_api:os-hypervisors:list-detail";
const SHOW: &str = "os_compute_api:os-hypervisors:show";

fn id_of(ver: ApiVersion, h: &Hypervisor) -> Value {
    if ver.at_least(53) {
        json!(h.node_id)
    } else {
        json!(1)
    }
}

fn status(h: &Hypervisor) -> (&'static str, &'static str) {
    (
        if h.service.forced_down { "down" } else { "up" },
        if h.service.disabled {
            "disabled"
        } else {
            "enabled"
        },
    )
}

fn servers(h: &Hypervisor) -> Value {
    json!(
        h.servers
            .iter()
            .map(|(id, name)| json!({"name": name, "uuid": id}))
            .collect::<Vec<_>>()
    )
}

/// Adds `servers` as the microversion wants: from 2.75 always, before only when there are any.
fn with_servers(ver: ApiVersion, o: &mut Value, h: &Hypervisor) {
    if ver.at_least(75) || !h.servers.is_empty() {
        o["servers"] = servers(h);
    }
}

fn brief(ver: ApiVersion, h: &Hypervisor) -> Value {
    let (state, status) = status(h);
    json!({
        "hypervisor_hostname": h.host,
        "id": id_of(ver, h),
        "state": state,
        "status": status,
    })
}

fn cpu_info(ver: ApiVersion, h: &Hypervisor) -> Value {
    let info = json!({
        "arch": std::env::consts::ARCH,
        "model": "",
        "vendor": "",
        "features": [],
        "topology": {"cores": h.resources.vcpus, "threads": 1, "sockets": 1},
    });
    if ver.at_least(28) {
        info
    } else {
        json!(info.to_string())
    }
}

fn detail(ver: ApiVersion, h: &Hypervisor) -> Value {
    let mut o = brief(ver, h);
    o["hypervisor_type"] = json!(h.resources.hypervisor_type);
    o["hypervisor_version"] = json!(h.resources.hypervisor_version);
    o["host_ip"] = json!(h.host_ip);
    o["service"] = json!({
        "host": h.host,
        "id": if ver.at_least(53) { json!(h.service.id) } else { json!(h.service.seq) },
        "disabled_reason": h.service.disabled_reason,
    });
    if ver.at_least(88) {
        o["uptime"] = json!(uptime_line());
        return o;
    }
    let r = &h.resources;
    let free_disk = r.local_gb as i64 - h.local_gb_used as i64;
    o["cpu_info"] = cpu_info(ver, h);
    o["current_workload"] = json!(h.current_workload);
    o["disk_available_least"] = json!(free_disk);
    o["free_disk_gb"] = json!(free_disk);
    o["free_ram_mb"] = json!(r.memory_mb as i64 - h.memory_mb_used as i64);
    o["local_gb"] = json!(r.local_gb);
    o["local_gb_used"] = json!(h.local_gb_used);
    o["memory_mb"] = json!(r.memory_mb);
    o["memory_mb_used"] = json!(h.memory_mb_used);
    o["running_vms"] = json!(h.running_vms);
    o["vcpus"] = json!(r.vcpus);
    o["vcpus_used"] = json!(h.vcpus_used);
    o
}

/// The listing's filters and paging, per microversion; `None` when the box is filtered out.
async fn listing(
    s: &AppState,
    c: &identity::Context,
    ver: ApiVersion,
    q: &QueryPairs,
    rule: &str,
) -> Result<(Option<Hypervisor>, bool, Option<usize>), Fault> {
    let mut allowed = vec![];
    if ver.at_least(33) {
        allowed.extend(["limit", "marker"]);
    }
    if ver.at_least(53) {
        allowed.extend(["hypervisor_hostname_pattern", "with_servers"]);
    }
    if ver.at_least(53) {
        v::query_only(&q.0, &allowed)?;
    }
    let h = s.compute.hypervisor(c, rule).await?;
    let (limit, marker) = if ver.at_least(33) {
        v::paging(q)?
    } else {
        (None, None)
    };
    let with = ver.at_least(53)
        && q.get("with_servers")
            .is_some_and(|w| v::query_bool(w).unwrap_or(false));
    let pattern = if ver.at_least(53) {
        q.get("hypervisor_hostname_pattern")
    } else {
        None
    };
    if let Some(p) = pattern {
        if marker.is_some() || limit.is_some() {
            return Err(Fault::bad_request(
                "The server could not comply with the request since it is either malformed or otherwise incorrect.",
            ));
        }
        if !h.host.contains(p) {
            return Err(Fault::not_found(format!(
                "No hypervisor matching '{p}' could be found."
            )));
        }
    }
    if let Some(m) = marker {
        let mine = if ver.at_least(53) {
            h.node_id.clone()
        } else {
            "1".into()
        };
        if m != mine {
            return Err(Fault::bad_request(format!("marker [{m}] not found")));
        }
        // The box is the only hypervisor: nothing follows it.
        return Ok((None, with, limit));
    }
    if limit == Some(0) {
        return Ok((None, with, limit));
    }
    Ok((Some(h), with, limit))
}

fn page(
    l: &Links,
    ver: ApiVersion,
    path: &str,
    q: &QueryPairs,
    items: Vec<Value>,
    last: Option<&Hypervisor>,
    limit: Option<usize>,
) -> Value {
    let mut body = json!({"hypervisors": items});
    if let (Some(lim), Some(h)) = (limit, last)
        && lim == 1
    {
        let marker = if ver.at_least(53) {
            h.node_id.clone()
        } else {
            "1".into()
        };
        body["hypervisors_links"] = l.next(path, &q.0, &marker);
    }
    body
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    l: Links,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    let (h, with, limit) = listing(&s, &c, ver, &q, LIST).await?;
    let items = h
        .iter()
        .map(|h| {
            let mut o = brief(ver, h);
            if with {
                with_servers(ver, &mut o, h);
            }
            o
        })
        .collect();
    Ok(Json(page(
        &l,
        ver,
        "os-hypervisors",
        &q,
        items,
        h.as_ref(),
        limit,
    )))
}

pub async fn detail_list(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    l: Links,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    let (h, with, limit) = listing(&s, &c, ver, &q, DETAIL).await?;
    let items = h
        .iter()
        .map(|h| {
            let mut o = detail(ver, h);
            if with {
                with_servers(ver, &mut o, h);
            }
            o
        })
        .collect();
    Ok(Json(page(
        &l,
        ver,
        "os-hypervisors/detail",
        &q,
        items,
        h.as_ref(),
        limit,
    )))
}

/// The box, if `id` names it in this microversion's id form.
async fn by_id(
    s: &AppState,
    c: &identity::Context,
    ver: ApiVersion,
    id: &str,
    rule: &str,
) -> Result<Hypervisor, Fault> {
    // Policy first, then the form of the id, as Nova checks them.
    let h = s.compute.hypervisor(c, rule).await?;
    if ver.at_least(53) && uuid::Uuid::parse_str(id).is_err() {
        return Err(Fault::bad_request(format!("Invalid uuid {id}")));
    }
    let matches = if ver.at_least(53) {
        h.node_id == id
    } else {
        id == "1"
    };
    if !matches {
        return Err(Fault::not_found(format!(
            "Hypervisor with ID '{id}' could not be found."
        )));
    }
    Ok(h)
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    q: QueryPairs,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    if ver.at_least(53) {
        v::query_only(&q.0, &["with_servers"])?;
    }
    let h = by_id(&s, &c, ver, &id, SHOW).await?;
    let mut o = detail(ver, &h);
    if ver.at_least(53)
        && q.get("with_servers")
            .is_some_and(|w| v::query_bool(w).unwrap_or(false))
    {
        with_servers(ver, &mut o, &h);
    }
    Ok(Json(json!({"hypervisor": o})))
}

/// `GET /os-hypervisors/{id}/uptime`, up to 2.87.
pub async fn uptime(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    if ver.at_least(88) {
        return Err(Fault::not_found("The resource could not be found."));
    }
    let h = by_id(&s, &c, ver, &id, "os_compute_api:os-hypervisors:uptime").await?;
    let mut o = brief(ver, &h);
    o["uptime"] = json!(uptime_line());
    Ok(Json(json!({"hypervisor": o})))
}

/// `GET /os-hypervisors/statistics`, up to 2.87: the totals of every hypervisor.
pub async fn statistics(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
) -> Result<Json<Value>, Fault> {
    if ver.at_least(88) {
        return Err(Fault::not_found("The resource could not be found."));
    }
    let h = s
        .compute
        .hypervisor(&c, "os_compute_api:os-hypervisors:statistics")
        .await?;
    let d = detail(ver, &h);
    let mut o = json!({"count": 1});
    for k in [
        "current_workload",
        "disk_available_least",
        "free_disk_gb",
        "free_ram_mb",
        "local_gb",
        "local_gb_used",
        "memory_mb",
        "memory_mb_used",
        "running_vms",
        "vcpus",
        "vcpus_used",
    ] {
        o[k] = d[k].clone();
    }
    Ok(Json(json!({"hypervisor_statistics": o})))
}

/// The hypervisors whose hostname contains `pattern` (up to 2.52), or 404.
async fn search_pattern(
    s: &AppState,
    c: &identity::Context,
    ver: ApiVersion,
    pattern: &str,
    rule: &str,
) -> Result<Hypervisor, Fault> {
    if ver.at_least(53) {
        return Err(Fault::not_found("The resource could not be found."));
    }
    let h = s.compute.hypervisor(c, rule).await?;
    if !h.host.contains(pattern) {
        return Err(Fault::not_found(
            "No hypervisor matching '".to_owned() + pattern + "' could be found.",
        ));
    }
    Ok(h)
}

pub async fn search(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(pattern): Path<String>,
) -> Result<Json<Value>, Fault> {
    let h = search_pattern(
        &s,
        &c,
        ver,
        &pattern,
        "os_compute_api:os-hypervisors:search",
    )
    .await?;
    Ok(Json(json!({"hypervisors": [brief(ver, &h)]})))
}

pub async fn servers_of(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(pattern): Path<String>,
) -> Result<Json<Value>, Fault> {
    let h = search_pattern(
        &s,
        &c,
        ver,
        &pattern,
        "os_compute_api:os-hypervisors:servers",
    )
    .await?;
    let mut o = brief(ver, &h);
    with_servers(ver, &mut o, &h);
    Ok(Json(json!({"hypervisors": [o]})))
}
