//! `/servers/{id}/tags` (from 2.26): a server's tags, all at once or one at a time.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Links;
use super::servers::server;
use super::validate as v;
use crate::extract::{AnyJson, Caller, JsonBody, Path};
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

/// A list of tags (a create's `tags` or a replace's body): at most 50 of them.
pub(super) fn parse_tags(field: &str, val: &Value) -> Result<Vec<String>, Fault> {
    let list = val.as_array().ok_or_else(|| {
        v::invalid(
            field,
            val,
            &format!("{} is not of type 'array'", v::py_repr(val)),
        )
    })?;
    if list.len() > 50 {
        return Err(v::invalid(field, val, "is too long"));
    }
    list.iter().map(tag).collect()
}

fn tag(val: &Value) -> Result<String, Fault> {
    let t = v::string("tags", val, 1, 60)?;
    if t.contains('/') || t.contains(',') {
        return Err(v::invalid(
            "tags",
            val,
            &format!("{} does not match '^[^,/]*$'", v::py_repr(val)),
        ));
    }
    Ok(t)
}

/// Nova's tags API looks the server's cell mapping up first: a server the caller cannot see
/// "has no mapping to a cell" there.
fn unmapped(id: &str) -> impl FnOnce(Fault) -> Fault + '_ {
    move |f| {
        if f.status == StatusCode::NOT_FOUND
            && f.message == format!("Instance {id} could not be found.")
        {
            Fault::not_found(format!("Instance {id} has no mapping to a cell."))
        } else {
            f
        }
    }
}

fn tags_version(ver: ApiVersion) -> Result<(), Fault> {
    if ver.at_least(26) {
        Ok(())
    } else {
        Err(Fault::not_found("The resource could not be found."))
    }
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    tags_version(ver)?;
    let sv = server(&s, &c, &id).await.map_err(unmapped(&id))?;
    Ok(Json(json!({"tags": sv.tags})))
}

pub async fn replace(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    tags_version(ver)?;
    let root = v::root(&body)?;
    let t = v::required(root, "tags")?;
    v::only("", &body, &["tags"])?;
    let tags = parse_tags("tags", t)?;
    let out = s
        .compute
        .set_tags(&c, &id, tags)
        .await
        .map_err(|e| unmapped(&id)(e.into()))?;
    Ok(Json(json!({ "tags": out })))
}

pub async fn clear(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
) -> Result<StatusCode, Fault> {
    tags_version(ver)?;
    s.compute
        .set_tags(&c, &id, Vec::new())
        .await
        .map_err(|e| unmapped(&id)(e.into()))?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn check(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path((id, t)): Path<(String, String)>,
) -> Result<StatusCode, Fault> {
    tags_version(ver)?;
    let sv = server(&s, &c, &id).await.map_err(unmapped(&id))?;
    if sv.tags.contains(&t) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Fault::not_found(format!(
            "Tag '{t}' could not be found for instance {id}."
        )))
    }
}

pub async fn add(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    l: Links,
    Path((id, t)): Path<(String, String)>,
) -> Result<Response, Fault> {
    tags_version(ver)?;
    let t = tag(&json!(t))?;
    let created = s
        .compute
        .add_tag(&c, &id, &t)
        .await
        .map_err(|e| unmapped(&id)(e.into()))?;
    let mut resp = if created {
        StatusCode::CREATED.into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    };
    if let Ok(v) = HeaderValue::from_str(&l.href(&format!("servers/{id}/tags/{t}"))) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path((id, t)): Path<(String, String)>,
) -> Result<StatusCode, Fault> {
    tags_version(ver)?;
    s.compute
        .delete_tag(&c, &id, &t)
        .await
        .map_err(|e| unmapped(&id)(e.into()))?;
    Ok(StatusCode::NO_CONTENT)
}
