//! `/os-keypairs`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use compute::keypairs::acting_user;
use model::compute::KeypairType;
use serde_json::{Value, json};

use super::validate as v;
use super::{Links, views};
use crate::extract::{AnyJson, Caller, JsonBody, Path, QueryPairs};
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

/// `user_id` in the query, where the microversion allows it (2.10+).
fn user_param(ver: ApiVersion, q: &QueryPairs) -> Option<String> {
    if ver.at_least(10) {
        q.get("user_id").map(str::to_owned)
    } else {
        None
    }
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    l: Links,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    let mut allowed = vec![];
    if ver.at_least(10) {
        allowed.push("user_id");
    }
    if ver.at_least(35) {
        allowed.extend(["limit", "marker"]);
    }
    if ver.at_least(75) {
        v::query_only(&q.0, &allowed)?;
    }
    let user = acting_user(&c, user_param(ver, &q).as_deref(), "index")?;
    let (limit, marker) = if ver.at_least(35) {
        v::paging(&q)?
    } else {
        (None, None)
    };
    let max = s.compute.config().max_limit;
    let limit_eff = limit.map(|l| l.min(max));
    let list = s.compute.list_keypairs(user, marker, limit_eff).await?;
    let items: Vec<Value> = list
        .iter()
        .map(|k| json!({"keypair": views::keypair_brief(ver, k)}))
        .collect();
    let mut body = json!({ "keypairs": items });
    if let (Some(lim), Some(last)) = (limit_eff, list.last())
        && list.len() == lim
        && lim > 0
    {
        body["keypairs_links"] = l.next("os-keypairs", &q.0, &last.name);
    }
    Ok(Json(body))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    q: QueryPairs,
    Path(name): Path<String>,
) -> Result<Json<Value>, Fault> {
    let user = acting_user(&c, user_param(ver, &q).as_deref(), "show")?;
    let k = s.compute.get_keypair(user, &name).await?;
    let id = i64::from(k.created_at.timestamp_subsec_micros());
    Ok(Json(json!({"keypair": views::keypair_full(ver, &k, id)})))
}

pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    q: QueryPairs,
    Path(name): Path<String>,
) -> Result<StatusCode, Fault> {
    let user = acting_user(&c, user_param(ver, &q).as_deref(), "delete")?;
    s.compute.delete_keypair(user, &name).await?;
    Ok(if ver.at_least(2) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::ACCEPTED
    })
}

/// Keypair names: Nova's safe characters; `@` and `.` also from 2.92.
fn keypair_name(ver: ApiVersion, val: &Value) -> Result<String, Fault> {
    let n = v::string("name", val, 1, 255)?;
    let ok = n.chars().all(|ch| {
        ch.is_ascii_alphanumeric() || "-_ ".contains(ch) || (ver.at_least(92) && "@.".contains(ch))
    }) && n.trim() == n;
    let pattern = if ver.at_least(92) {
        r"^[_\-\@\. a-zA-Z0-9]+$"
    } else {
        r"^[_\- a-zA-Z0-9]+$"
    };
    if !ok {
        return Err(v::invalid(
            "name",
            val,
            &format!(
                "{} does not match {}",
                v::py_repr(val),
                v::py_repr(&Value::String(pattern.into()))
            ),
        ));
    }
    Ok(n)
}

pub async fn create(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    JsonBody(body): AnyJson,
) -> Result<Response, Fault> {
    let root = v::root(&body)?;
    let kv = v::required(root, "keypair")?;
    v::only("", &body, &["keypair"])?;
    let mut allowed = vec!["name", "public_key"];
    if ver.at_least(2) {
        allowed.push("type");
    }
    if ver.at_least(10) {
        allowed.push("user_id");
    }
    v::only("keypair", kv, &allowed)?;
    let k = v::object("keypair", kv)?;
    let name = keypair_name(ver, v::required_in("keypair", kv, k, "name")?)?;
    let kind = match k.get("type") {
        None => KeypairType::Ssh,
        Some(Value::String(t)) if t == "ssh" => KeypairType::Ssh,
        Some(Value::String(t)) if t == "x509" => KeypairType::X509,
        Some(x) => {
            return Err(v::invalid(
                "type",
                x,
                &format!("{} is not one of ['ssh', 'x509']", v::py_repr(x)),
            ));
        }
    };
    let requested_user = match k.get("user_id") {
        Some(u) => Some(v::string("user_id", u, 1, 255)?),
        None => None,
    };
    let user = acting_user(&c, requested_user.as_deref(), "create")?;
    let public_key = match k.get("public_key") {
        Some(p) => Some(v::string("public_key", p, 1, 65535)?),
        None if ver.at_least(92) => {
            return Err(v::invalid(
                "keypair",
                kv,
                "'public_key' is a required property",
            ));
        }
        None => None,
    };
    let (mut view, status) = match public_key {
        Some(pk) => {
            let kp = s.compute.import_keypair(&c, user, name, kind, pk).await?;
            (views::keypair_brief(ver, &kp), kp)
        }
        None => {
            let g = s.compute.generate_keypair(&c, user, name, kind).await?;
            let mut view = views::keypair_brief(ver, &g.keypair);
            view["private_key"] = json!(g.private_key);
            (view, g.keypair)
        }
    };
    view["user_id"] = json!(status.user_id.as_str());
    let code = if ver.at_least(2) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(json!({ "keypair": view }))).into_response())
}
