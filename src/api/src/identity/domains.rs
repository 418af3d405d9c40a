//! `/v3/domains`: the Default domain, read-only.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use model::DomainId;
use serde_json::{Value, json};

use super::views;
use crate::extract::{Caller, QueryPairs};
use crate::{AppState, Fault};

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    h: HeaderMap,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    let base = s.base_url(&h);
    let ds = s
        .identity
        .list_domains(&c, q.get("name").map(str::to_owned))
        .await?;
    Ok(Json(views::collection(
        "domains",
        format!("{base}/identity/v3/domains"),
        ds.iter().map(|d| views::domain(&base, d)).collect(),
    )))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let d = s.identity.get_domain(&c, &DomainId::new(id)).await?;
    Ok(Json(json!({"domain": views::domain(&s.base_url(&h), &d)})))
}
