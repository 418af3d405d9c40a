//! `/os-simple-tenant-usage`: hours, vCPU-, RAM- and disk-hours per project over a period,
//! computed from the server rows (deleted servers included) between launch and termination.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use model::ProjectId;
use model::compute::Server;
use serde_json::{Value, json};

use super::Links;
use super::validate as v;
use super::views::naive_time;
use crate::extract::{Caller, Path, QueryPairs};
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

/// Nova's accepted forms: ISO 8601 with `T` or a space, with or without fractions.
fn parse_when(s: &str) -> Result<DateTime<Utc>, Fault> {
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    Err(Fault::bad_request(
        "Invalid datetime string: Datetime is in invalid format",
    ))
}

struct Period {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    detailed: bool,
    limit: Option<usize>,
    marker: Option<String>,
}

fn period(ver: ApiVersion, q: &QueryPairs, max: usize) -> Result<Period, Fault> {
    let mut allowed = vec!["start", "end", "detailed"];
    if ver.at_least(40) {
        allowed.extend(["limit", "marker"]);
    }
    if ver.at_least(75) {
        v::query_only(&q.0, &allowed)?;
    }
    let now = Utc::now();
    let start = q.get("start").map(parse_when).transpose()?.unwrap_or(now);
    let end = q.get("end").map(parse_when).transpose()?.unwrap_or(now);
    if start > end {
        return Err(Fault::bad_request(
            "Invalid start time. The start time cannot occur after the end time.",
        ));
    }
    let (limit, marker) = if ver.at_least(40) {
        v::paging(q)?
    } else {
        (None, None)
    };
    Ok(Period {
        start,
        end,
        detailed: q.get("detailed") == Some("1"),
        limit: limit.map(|l| l.min(max)),
        marker,
    })
}

/// The servers of one page: after `marker`, at most `limit`.
fn paged(mut servers: Vec<Server>, p: &Period) -> Result<Vec<Server>, Fault> {
    if let Some(m) = &p.marker {
        let pos = servers
            .iter()
            .position(|s| s.id.as_str() == m)
            .ok_or_else(|| Fault::bad_request(format!("Marker {m} could not be found.")))?;
        servers.drain(..=pos);
    }
    if let Some(l) = p.limit {
        servers.truncate(l);
    }
    Ok(servers)
}

fn server_usage(s: &Server, p: &Period) -> (f64, Value) {
    let launched = s.launched_at.unwrap_or(s.created_at);
    let from = launched.max(p.start);
    let to = s.terminated_at.map_or(p.end, |t| t.min(p.end));
    let hours = ((to - from).num_milliseconds().max(0) as f64) / 3_600_000.0;
    let now = Utc::now();
    let uptime = (s.terminated_at.unwrap_or(now) - launched)
        .num_seconds()
        .max(0);
    let state = if s.deleted {
        "terminated"
    } else {
        s.vm_state.as_str()
    };
    (
        hours,
        json!({
            "instance_id": s.id.as_str(),
            "name": s.name,
            "hours": hours,
            "memory_mb": s.flavor.ram_mb,
            "local_gb": s.flavor.disk_gb,
            "vcpus": s.flavor.vcpus,
            "tenant_id": s.project_id.as_str(),
            "flavor": s.flavor.name,
            "started_at": naive_time(launched),
            "ended_at": s.terminated_at.map(naive_time),
            "state": state,
            "uptime": uptime,
        }),
    )
}

/// One project's usage from its servers (all of the same project, at least one).
fn tenant_usage(project: &str, servers: &[Server], p: &Period, detailed: bool) -> Value {
    let (mut hours, mut gb, mut mb, mut cpus) = (0.0, 0.0, 0.0, 0.0);
    let mut items = Vec::new();
    for s in servers {
        let (h, item) = server_usage(s, p);
        hours += h;
        gb += h * s.flavor.disk_gb as f64;
        mb += h * s.flavor.ram_mb as f64;
        cpus += h * f64::from(s.flavor.vcpus);
        items.push(item);
    }
    let mut o = json!({
        "tenant_id": project,
        "start": naive_time(p.start),
        "stop": naive_time(p.end),
        "total_hours": hours,
        "total_local_gb_usage": gb,
        "total_memory_mb_usage": mb,
        "total_vcpus_usage": cpus,
    });
    if detailed {
        o["server_usages"] = json!(items);
    }
    o
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    l: Links,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    let p = period(ver, &q, s.compute.config().max_limit)?;
    let servers = s.compute.usage_servers(&c, p.start, p.end, None).await?;
    let page = paged(servers, &p)?;
    let mut usages = Vec::new();
    let mut i = 0;
    while i < page.len() {
        let project = page[i].project_id.clone();
        let j = page[i..]
            .iter()
            .position(|x| x.project_id != project)
            .map_or(page.len(), |k| i + k);
        usages.push(tenant_usage(project.as_str(), &page[i..j], &p, p.detailed));
        i = j;
    }
    let mut body = json!({"tenant_usages": usages});
    if let (Some(lim), Some(last)) = (p.limit, page.last())
        && lim > 0
        && page.len() == lim
    {
        body["tenant_usages_links"] = l.next("os-simple-tenant-usage", &q.0, last.id.as_str());
    }
    Ok(Json(body))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    l: Links,
    q: QueryPairs,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, Fault> {
    let p = period(ver, &q, s.compute.config().max_limit)?;
    let project = ProjectId::new(tenant.clone());
    let servers = s
        .compute
        .usage_servers(&c, p.start, p.end, Some(&project))
        .await?;
    let page = paged(servers, &p)?;
    if page.is_empty() {
        return Ok(Json(json!({"tenant_usage": {}})));
    }
    let mut body = json!({"tenant_usage": tenant_usage(&tenant, &page, &p, true)});
    if let (Some(lim), Some(last)) = (p.limit, page.last())
        && lim > 0
        && page.len() == lim
    {
        body["tenant_usage_links"] = l.next(
            &format!("os-simple-tenant-usage/{tenant}"),
            &q.0,
            last.id.as_str(),
        );
    }
    Ok(Json(body))
}
