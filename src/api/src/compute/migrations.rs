//! `/os-migrations` and `/servers/{id}/migrations`: one box never migrates a server, so the
//! lists are empty; their query parameters are still checked as Nova checks them.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::validate as v;
use crate::extract::{Caller, Path, QueryPairs};
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

pub async fn list(
    State(_s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    if !c.is_admin() {
        return Err(Fault::forbidden(
            "Policy doesn't allow os_compute_api:os-migrations:index to be performed.",
        ));
    }
    if ver.at_least(59) {
        let mut allowed = vec![
            "hidden",
            "host",
            "instance_uuid",
            "source_compute",
            "status",
            "migration_type",
            "limit",
            "marker",
            "changes-since",
        ];
        if ver.at_least(66) {
            allowed.push("changes-before");
        }
        if ver.at_least(80) {
            allowed.extend(["user_id", "project_id"]);
        }
        v::query_only(&q.0, &allowed)?;
        let since = q
            .get("changes-since")
            .map(|t| super::validate::parse_time("changes-since", t))
            .transpose()?;
        let before = q
            .get("changes-before")
            .map(|t| super::validate::parse_time("changes-before", t))
            .transpose()?;
        if let (Some(a), Some(b)) = (since, before)
            && a > b
        {
            return Err(Fault::bad_request(
                "The value of changes-since must be less than or equal to changes-before.",
            ));
        }
        let (_, marker) = v::paging(&q)?;
        if let Some(m) = marker {
            return Err(Fault::bad_request(format!(
                "Marker {m} could not be found."
            )));
        }
    }
    Ok(Json(json!({"migrations": []})))
}

/// `GET /servers/{id}/migrations` (2.23+): the server's live migrations in progress.
pub async fn server_list(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    if !ver.at_least(23) {
        return Err(Fault::not_found("The resource could not be found."));
    }
    if !c.is_admin() {
        return Err(Fault::forbidden(
            "Policy doesn't allow os_compute_api:servers:migrations:index to be performed.",
        ));
    }
    s.compute.get_server(&c, &id).await?;
    Ok(Json(json!({"migrations": []})))
}

/// `GET /servers/{id}/migrations/{migration}` (2.23+): never one in progress.
pub async fn server_show(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path((id, mid)): Path<(String, String)>,
) -> Result<Json<Value>, Fault> {
    if !ver.at_least(23) {
        return Err(Fault::not_found("The resource could not be found."));
    }
    if !c.is_admin() {
        return Err(Fault::forbidden(
            "Policy doesn't allow os_compute_api:servers:migrations:show to be performed.",
        ));
    }
    s.compute.get_server(&c, &id).await?;
    Err(Fault::not_found(format!(
        "In-progress live migration {mid} is not found for server {id}."
    )))
}
