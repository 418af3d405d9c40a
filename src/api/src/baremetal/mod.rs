//! The Bare Metal API (an Ironic v1 subset), under `/baremetal`: what `openstack baremetal
//! node …` (python-ironicclient) uses. Admin only.
//!
//! | method | path (under `/baremetal`) | what |
//! |---|---|---|
//! | GET | `/`, `/v1`, `/v1/` | version documents (no token needed) |
//! | GET, POST | `/v1/nodes` | list (`fields`, `detail`, filters), create (201) |
//! | GET | `/v1/nodes/detail` | list with every field |
//! | GET, PATCH, DELETE | `/v1/nodes/{node}` | show, JSON patch, delete (204) |
//! | GET | `/v1/nodes/{node}/states` | power and provision states |
//! | PUT | `/v1/nodes/{node}/states/power` | `{"target": "power on"…}` (202) |
//! | PUT | `/v1/nodes/{node}/states/provision` | `{"target": "manage" / "provide"}` (202) |
//! | PUT, DELETE | `/v1/nodes/{node}/maintenance` | maintenance on (`reason`) / off (202) |
//! | GET, PUT | `/v1/nodes/{node}/management/boot_device` | boot device (PUT: 204) |
//! | GET | `/v1/nodes/{node}/management/boot_device/supported` | the devices |
//!
//! `{node}` is a UUID or a name. Every answer carries `X-OpenStack-Ironic-API-Minimum-Version`,
//! `-Maximum-Version` and `-Version`; a request for a version outside the range gets 406.
//! Errors use Ironic's body, `{"error_message": "<JSON of faultstring, faultcode, debuginfo>"}`.
//! `driver_info.ipmi_password` is stored apart and shown as `******`, as Ironic does.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, put};
use baremetal::{Error as BmError, NewNode, Node};
use serde_json::{Map, Value, json};

use crate::{AppState, Fault, Service, auth, fault};

/// The API versions served: 1.1 to this one.
pub const MIN_VERSION: (u32, u32) = (1, 1);
pub const MAX_VERSION: (u32, u32) = (1, 99);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(pub u32, pub u32);

fn vstr(v: (u32, u32)) -> String {
    format!("{}.{}", v.0, v.1)
}

pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/baremetal/v1/nodes", get(list).post(create))
        .route("/baremetal/v1/nodes/detail", get(list_detail))
        .route(
            "/baremetal/v1/nodes/{node}",
            get(show).patch(update).delete(delete),
        )
        .route("/baremetal/v1/nodes/{node}/states", get(states))
        .route("/baremetal/v1/nodes/{node}/states/power", put(set_power))
        .route(
            "/baremetal/v1/nodes/{node}/states/provision",
            put(provision),
        )
        .route(
            "/baremetal/v1/nodes/{node}/maintenance",
            put(maintenance_on).delete(maintenance_off),
        )
        .route(
            "/baremetal/v1/nodes/{node}/management/boot_device",
            get(boot_device).put(set_boot_device),
        )
        .route(
            "/baremetal/v1/nodes/{node}/management/boot_device/supported",
            get(supported_boot_devices),
        )
        .route("/baremetal/v1/{*rest}", any(fault::unknown_route))
        .layer(from_fn(admin_only))
        .layer(from_fn_with_state(state.clone(), auth::required));
    Router::new()
        .merge(v1)
        .route("/baremetal", get(root))
        .route("/baremetal/", get(root))
        .route("/baremetal/v1", get(v1_root))
        .route("/baremetal/v1/", get(v1_root))
        .route("/baremetal/{*rest}", any(fault::unknown_route))
        .layer(from_fn(version_layer))
        .layer(from_fn(|req, next| {
            fault::render(Service::Baremetal, req, next)
        }))
        .with_state(state)
}

fn parse_version(s: &str) -> Option<ApiVersion> {
    let (a, b) = s.trim().split_once('.')?;
    Some(ApiVersion(a.parse().ok()?, b.parse().ok()?))
}

/// Negotiates `X-OpenStack-Ironic-API-Version` and stamps the version headers on every answer.
async fn version_layer(mut req: Request, next: Next) -> Response {
    let (min, max) = (
        ApiVersion(MIN_VERSION.0, MIN_VERSION.1),
        ApiVersion(MAX_VERSION.0, MAX_VERSION.1),
    );
    let asked = req
        .headers()
        .get("x-openstack-ironic-api-version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let chosen = match asked.as_deref() {
        None => Ok(min),
        Some("latest") => Ok(max),
        Some(s) => match parse_version(s) {
            Some(v) if v >= min && v <= max => Ok(v),
            Some(v) => Err(Fault::new(
                StatusCode::NOT_ACCEPTABLE,
                format!(
                    "Version {}.{} was requested but the minor version is not supported by this service. The supported version range is: [{}, {}].",
                    v.0,
                    v.1,
                    vstr(MIN_VERSION),
                    vstr(MAX_VERSION)
                ),
            )),
            None => Err(Fault::new(
                StatusCode::NOT_ACCEPTABLE,
                format!("Invalid value for X-OpenStack-Ironic-API-Version header: {s}"),
            )),
        },
    };
    let (mut resp, v) = match chosen {
        Ok(v) => {
            req.extensions_mut().insert(v);
            (next.run(req).await, v)
        }
        Err(f) => (f.into_response(), max),
    };
    let h = resp.headers_mut();
    let mut put = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    put("x-openstack-ironic-api-minimum-version", vstr(MIN_VERSION));
    put("x-openstack-ironic-api-maximum-version", vstr(MAX_VERSION));
    put("x-openstack-ironic-api-version", format!("{}.{}", v.0, v.1));
    resp
}

async fn admin_only(req: Request, next: Next) -> Response {
    let admin = req
        .extensions()
        .get::<::identity::Context>()
        .is_some_and(|c| c.is_admin());
    if !admin {
        return Fault::forbidden("Access was denied to the following resource: baremetal:node:get")
            .into_response();
    }
    next.run(req).await
}

fn version_doc(base: &str) -> Value {
    json!({
        "id": "v1",
        "links": [{"href": format!("{base}/baremetal/v1/"), "rel": "self"}],
        "status": "CURRENT",
        "min_version": vstr(MIN_VERSION),
        "version": vstr(MAX_VERSION),
    })
}

async fn root(State(state): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let base = state.base_url(&headers);
    Json(json!({
        "name": "OpenStack Ironic API",
        "description": "Ironic is an OpenStack project which enables the provision and management of baremetal machines.",
        "default_version": version_doc(&base),
        "versions": [version_doc(&base)],
    }))
}

async fn v1_root(State(state): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let base = state.base_url(&headers);
    let link = |p: &str| {
        json!([
            {"href": format!("{base}/baremetal/v1/{p}/"), "rel": "self"},
            {"href": format!("{base}/baremetal/{p}/"), "rel": "bookmark"},
        ])
    };
    Json(json!({
        "id": "v1",
        "links": [{"href": format!("{base}/baremetal/v1/"), "rel": "self"}],
        "media_types": [{"base": "application/json", "type": "application/vnd.openstack.ironic.v1+json"}],
        "nodes": link("nodes"),
        "version": version_doc(&base),
    }))
}

impl From<BmError> for Fault {
    fn from(e: BmError) -> Self {
        match e {
            BmError::NotFound(m) => Fault::not_found(m),
            BmError::BadRequest(m) => Fault::bad_request(m),
            BmError::Conflict(m) => Fault::conflict(m),
            BmError::Bmc(m) => Fault::new(StatusCode::SERVICE_UNAVAILABLE, m),
            BmError::Store(s) => crate::fault::storage(s.conflict(), &s),
        }
    }
}

/// Runs a blocking service call off the async executor.
async fn run<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BmError> + Send + 'static,
) -> Result<T, Fault> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Fault::internal(&e))?
        .map_err(Fault::from)
}

fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

fn masked(info: &Map<String, Value>, has_password: bool) -> Value {
    let mut m = info.clone();
    if has_password {
        m.insert("ipmi_password".into(), json!("******"));
    }
    Value::Object(m)
}

/// Ironic's node document.
pub fn node_view(n: &Node, base: &str) -> Value {
    let links = json!([
        {"href": format!("{base}/baremetal/v1/nodes/{}", n.uuid), "rel": "self"},
        {"href": format!("{base}/baremetal/nodes/{}", n.uuid), "rel": "bookmark"},
    ]);
    let mut doc = json!({
        "uuid": n.uuid,
        "name": n.name,
        "driver": n.driver,
        "driver_info": masked(&n.driver_info, n.bmc_password.is_some()),
        "driver_internal_info": {},
        "resource_class": n.resource_class,
        "properties": n.properties,
        "extra": n.extra,
        "instance_info": n.instance_info,
        "instance_uuid": n.instance_uuid,
        "power_state": n.power_state,
        "target_power_state": n.target_power_state,
        "provision_state": n.provision_state,
        "target_provision_state": n.target_provision_state,
        "maintenance": n.maintenance,
        "maintenance_reason": n.maintenance_reason,
        "fault": if n.maintenance && n.last_error.is_some() { json!("power failure") } else { Value::Null },
        "last_error": n.last_error,
        "reservation": null,
        "console_enabled": false,
        "chassis_uuid": null,
        "conductor_group": "",
        "conductor": "onebox",
        "protected": false,
        "protected_reason": null,
        "owner": null,
        "lessee": null,
        "description": null,
        "automated_clean": null,
        "retired": false,
        "retired_reason": null,
        "allocation_uuid": null,
        "boot_mode": null,
        "secure_boot": null,
    });
    let more = json!({
        "clean_step": {},
        "deploy_step": {},
        "network_data": {},
        "traits": [],
        "inspection_started_at": null,
        "inspection_finished_at": null,
        "bios_interface": "no-bios",
        "boot_interface": "pxe",
        "console_interface": "no-console",
        "deploy_interface": "direct",
        "firmware_interface": "no-firmware",
        "inspect_interface": "no-inspect",
        "management_interface": "ipmitool",
        "network_interface": "noop",
        "power_interface": "ipmitool",
        "raid_interface": "no-raid",
        "rescue_interface": "no-rescue",
        "storage_interface": "noop",
        "vendor_interface": "no-vendor",
        "created_at": ts(n.created_at),
        "updated_at": n.updated_at.map(ts),
        "provision_updated_at": n.provision_updated_at.map(ts),
        "links": links,
        "ports": [
            {"href": format!("{base}/baremetal/v1/nodes/{}/ports", n.uuid), "rel": "self"},
            {"href": format!("{base}/baremetal/nodes/{}/ports", n.uuid), "rel": "bookmark"},
        ],
        "states": [
            {"href": format!("{base}/baremetal/v1/nodes/{}/states", n.uuid), "rel": "self"},
            {"href": format!("{base}/baremetal/nodes/{}/states", n.uuid), "rel": "bookmark"},
        ],
    });
    if let (Value::Object(d), Value::Object(m)) = (&mut doc, more) {
        d.extend(m);
    }
    doc
}

const LIST_FIELDS: &[&str] = &[
    "uuid",
    "name",
    "instance_uuid",
    "power_state",
    "provision_state",
    "maintenance",
    "links",
];

fn select(full: Value, fields: &[&str]) -> Value {
    let Value::Object(m) = full else { return full };
    Value::Object(
        m.into_iter()
            .filter(|(k, _)| fields.contains(&k.as_str()))
            .collect(),
    )
}

fn bool_param(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

async fn list_nodes(
    state: AppState,
    headers: HeaderMap,
    q: Map<String, Value>,
    detail: bool,
) -> Result<Json<Value>, Fault> {
    let base = state.base_url(&headers);
    let bm = state.baremetal.clone();
    let nodes = run(move || bm.list()).await?;
    let qs = |k: &str| q.get(k).and_then(Value::as_str).map(str::to_owned);
    let detail = detail
        || qs("detail")
            .as_deref()
            .and_then(bool_param)
            .unwrap_or(false);
    let fields: Option<Vec<String>> =
        qs("fields").map(|f| f.split(',').map(|s| s.trim().to_owned()).collect());
    if detail && fields.is_some() {
        return Err(Fault::bad_request(
            "Can not specify ?detail=True and fields in the same request.",
        ));
    }
    let mut out = Vec::new();
    for n in nodes {
        if qs("provision_state").is_some_and(|p| p != n.provision_state)
            || qs("resource_class").is_some_and(|r| Some(r) != n.resource_class)
            || qs("driver").is_some_and(|d| d != n.driver)
            || qs("maintenance")
                .and_then(|m| bool_param(&m))
                .is_some_and(|m| m != n.maintenance)
            || qs("associated")
                .and_then(|m| bool_param(&m))
                .is_some_and(|a| a != n.instance_uuid.is_some())
            || qs("instance_uuid").is_some_and(|i| Some(i) != n.instance_uuid)
        {
            continue;
        }
        let v = node_view(&n, &base);
        out.push(match (&fields, detail) {
            (Some(f), _) => select(v, &f.iter().map(String::as_str).collect::<Vec<_>>()),
            (None, true) => v,
            (None, false) => select(v, LIST_FIELDS),
        });
    }
    if let Some(limit) = qs("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
    {
        out.truncate(limit);
    }
    Ok(Json(json!({ "nodes": out })))
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Map<String, Value>>,
) -> Result<Json<Value>, Fault> {
    list_nodes(state, headers, q, false).await
}

async fn list_detail(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Map<String, Value>>,
) -> Result<Json<Value>, Fault> {
    list_nodes(state, headers, q, true).await
}

fn obj_field(body: &Map<String, Value>, k: &str) -> Result<Map<String, Value>, Fault> {
    match body.get(k) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(Fault::bad_request(format!(
            "Invalid input for field/attribute {k}. Value must be a dictionary."
        ))),
    }
}

fn str_field(body: &Map<String, Value>, k: &str) -> Result<Option<String>, Fault> {
    match body.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Fault::bad_request(format!(
            "Invalid input for field/attribute {k}. Value must be a string."
        ))),
    }
}

fn body_object(body: &[u8]) -> Result<Map<String, Value>, Fault> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Fault::bad_request("The request body is not a JSON object.")),
    }
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Extension(v): axum::Extension<ApiVersion>,
    body: axum::body::Bytes,
) -> Result<Response, Fault> {
    let b = body_object(&body)?;
    let known = [
        "uuid",
        "name",
        "driver",
        "driver_info",
        "resource_class",
        "properties",
        "extra",
        "network_interface",
        "boot_interface",
        "deploy_interface",
        "management_interface",
        "power_interface",
        "console_interface",
        "description",
        "chassis_uuid",
    ];
    if let Some(k) = b.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(Fault::bad_request(format!(
            "Unknown attribute for Node: {k}"
        )));
    }
    let driver = str_field(&b, "driver")?
        .ok_or_else(|| Fault::bad_request("Mandatory field missing: driver"))?;
    let new = NewNode {
        uuid: str_field(&b, "uuid")?,
        name: str_field(&b, "name")?,
        driver,
        driver_info: obj_field(&b, "driver_info")?,
        resource_class: str_field(&b, "resource_class")?,
        properties: obj_field(&b, "properties")?,
        extra: obj_field(&b, "extra")?,
        initial_state: if v >= ApiVersion(1, 11) {
            "enroll".into()
        } else {
            "available".into()
        },
    };
    let bm = state.baremetal.clone();
    let node = run(move || bm.create(new)).await?;
    let base = state.base_url(&headers);
    let mut r = (StatusCode::CREATED, Json(node_view(&node, &base))).into_response();
    if let Ok(loc) = HeaderValue::from_str(&format!("{base}/baremetal/v1/nodes/{}", node.uuid)) {
        r.headers_mut().insert("location", loc);
    }
    Ok(r)
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    Query(q): Query<Map<String, Value>>,
) -> Result<Json<Value>, Fault> {
    let bm = state.baremetal.clone();
    let node = run(move || bm.get(&ident)).await?;
    let v = node_view(&node, &state.base_url(&headers));
    Ok(Json(match q.get("fields").and_then(Value::as_str) {
        Some(f) => select(v, &f.split(',').map(str::trim).collect::<Vec<_>>()),
        None => v,
    }))
}

/// JSON-pointer segments of a patch path.
fn pointer(path: &str) -> Result<Vec<String>, Fault> {
    let p = path
        .strip_prefix('/')
        .ok_or_else(|| Fault::bad_request(format!("Invalid patch path {path:?}.")))?;
    Ok(p.split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect())
}

const PATCHABLE: &[&str] = &[
    "name",
    "driver",
    "driver_info",
    "properties",
    "extra",
    "instance_info",
    "resource_class",
    "instance_uuid",
];

fn apply_patch(doc: &mut Map<String, Value>, ops: &[Value]) -> Result<bool, Fault> {
    let mut password_removed = false;
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or("");
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| Fault::bad_request("A patch operation has no path."))?;
        let segs = pointer(path)?;
        let top = segs[0].as_str();
        if !PATCHABLE.contains(&top) {
            return Err(Fault::bad_request(format!(
                "'/{top}' is an internal attribute and can not be updated"
            )));
        }
        if segs.len() > 2 {
            return Err(Fault::bad_request(format!(
                "Patching {path} is not supported."
            )));
        }
        let value = op.get("value").cloned();
        match (kind, segs.len()) {
            ("add" | "replace", 1) => {
                let v = value.ok_or_else(|| {
                    Fault::bad_request("'add' and 'replace' operations need a value")
                })?;
                doc.insert(top.into(), v);
            }
            ("remove", 1) => {
                doc.insert(
                    top.into(),
                    if matches!(
                        top,
                        "driver_info" | "properties" | "extra" | "instance_info"
                    ) {
                        json!({})
                    } else {
                        Value::Null
                    },
                );
            }
            (k @ ("add" | "replace" | "remove"), 2) => {
                let sub = doc.entry(top.to_string()).or_insert_with(|| json!({}));
                if sub.is_null() {
                    *sub = json!({});
                }
                let Value::Object(m) = sub else {
                    return Err(Fault::bad_request(format!("{top} is not a dictionary.")));
                };
                if k == "remove" {
                    if top == "driver_info" && segs[1] == "ipmi_password" {
                        password_removed = true;
                    }
                    if m.remove(&segs[1]).is_none() && !password_removed {
                        return Err(Fault::bad_request(format!(
                            "can't remove non-existent object '{}'",
                            segs[1]
                        )));
                    }
                } else {
                    if k == "replace"
                        && !m.contains_key(&segs[1])
                        && !(top == "driver_info" && segs[1] == "ipmi_password")
                    {
                        return Err(Fault::bad_request(format!(
                            "can't replace non-existent object '{}'",
                            segs[1]
                        )));
                    }
                    let v = value.ok_or_else(|| {
                        Fault::bad_request("'add' and 'replace' operations need a value")
                    })?;
                    m.insert(segs[1].clone(), v);
                }
            }
            _ => {
                return Err(Fault::bad_request(format!(
                    "Invalid patch operation {kind:?}."
                )));
            }
        }
    }
    Ok(password_removed)
}

fn as_obj(v: Option<&Value>, k: &str) -> Result<Map<String, Value>, Fault> {
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(Fault::bad_request(format!(
            "Invalid input for field/attribute {k}."
        ))),
    }
}

fn as_opt_str(v: Option<&Value>, k: &str) -> Result<Option<String>, Fault> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Fault::bad_request(format!(
            "Invalid input for field/attribute {k}."
        ))),
    }
}

async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(ident): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, Fault> {
    let ops = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(a)) => a,
        _ => {
            return Err(Fault::bad_request(
                "The request body must be a JSON patch (a list of operations).",
            ));
        }
    };
    let bm = state.baremetal.clone();
    let node = run(move || bm.get(&ident)).await?;
    let mut doc = Map::new();
    doc.insert("name".into(), json!(node.name));
    doc.insert("driver".into(), json!(node.driver));
    doc.insert(
        "driver_info".into(),
        Value::Object(node.driver_info.clone()),
    );
    doc.insert("properties".into(), Value::Object(node.properties.clone()));
    doc.insert("extra".into(), Value::Object(node.extra.clone()));
    doc.insert(
        "instance_info".into(),
        Value::Object(node.instance_info.clone()),
    );
    doc.insert("resource_class".into(), json!(node.resource_class));
    doc.insert("instance_uuid".into(), json!(node.instance_uuid));
    let password_removed = apply_patch(&mut doc, &ops)?;
    let mut n = node.clone();
    n.name = as_opt_str(doc.get("name"), "name")?;
    n.driver = as_opt_str(doc.get("driver"), "driver")?.unwrap_or(node.driver.clone());
    if n.driver != "ipmi" {
        return Err(Fault::bad_request(format!(
            "No valid host was found. Reason: No conductor service registered which supports driver {}.",
            n.driver
        )));
    }
    n.driver_info = as_obj(doc.get("driver_info"), "driver_info")?;
    n.properties = as_obj(doc.get("properties"), "properties")?;
    n.extra = as_obj(doc.get("extra"), "extra")?;
    n.instance_info = as_obj(doc.get("instance_info"), "instance_info")?;
    n.resource_class = as_opt_str(doc.get("resource_class"), "resource_class")?;
    n.instance_uuid = as_opt_str(doc.get("instance_uuid"), "instance_uuid")?;
    if password_removed {
        n.bmc_password = None;
    }
    if n.instance_uuid != node.instance_uuid && node.provision_state == "active" {
        return Err(Fault::conflict(format!(
            "Node {} is associated with an instance and is active; its instance_uuid can not change.",
            node.uuid
        )));
    }
    let bm = state.baremetal.clone();
    let saved = run(move || bm.save(n)).await?;
    Ok(Json(node_view(&saved, &state.base_url(&headers))))
}

async fn delete(
    State(state): State<AppState>,
    Path(ident): Path<String>,
) -> Result<StatusCode, Fault> {
    let bm = state.baremetal.clone();
    run(move || bm.delete(&ident)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn states(
    State(state): State<AppState>,
    Path(ident): Path<String>,
) -> Result<Json<Value>, Fault> {
    let bm = state.baremetal.clone();
    let n = run(move || bm.get(&ident)).await?;
    Ok(Json(json!({
        "power_state": n.power_state,
        "target_power_state": n.target_power_state,
        "provision_state": n.provision_state,
        "target_provision_state": n.target_provision_state,
        "provision_updated_at": n.provision_updated_at.map(ts),
        "last_error": n.last_error,
        "console_enabled": false,
        "raid_config": {},
        "target_raid_config": {},
    })))
}

fn target_of(body: &[u8]) -> Result<(String, Map<String, Value>), Fault> {
    let b = body_object(body)?;
    let t = b
        .get("target")
        .and_then(Value::as_str)
        .ok_or_else(|| Fault::bad_request("Mandatory field missing: target"))?
        .to_owned();
    Ok((t, b))
}

/// Power changes are carried out before the answer (bounded by the IPMI timeouts); a BMC
/// failure is recorded in the node's `last_error`, and the answer is still 202, as Ironic's.
async fn set_power(
    State(state): State<AppState>,
    Path(ident): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, Fault> {
    let (target, _) = target_of(&body)?;
    let bm = state.baremetal.clone();
    match run(move || bm.set_power(&ident, &target)).await {
        Ok(_) => Ok(StatusCode::ACCEPTED),
        Err(f) if f.status == StatusCode::SERVICE_UNAVAILABLE => Ok(StatusCode::ACCEPTED),
        Err(f) => Err(f),
    }
}

async fn provision(
    State(state): State<AppState>,
    Path(ident): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, Fault> {
    let (target, _) = target_of(&body)?;
    let bm = state.baremetal.clone();
    run(move || bm.provision(&ident, &target)).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn maintenance_on(
    State(state): State<AppState>,
    Path(ident): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, Fault> {
    let reason = if body.is_empty() {
        None
    } else {
        body_object(&body)?
            .get("reason")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let bm = state.baremetal.clone();
    run(move || bm.set_maintenance(&ident, true, reason)).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn maintenance_off(
    State(state): State<AppState>,
    Path(ident): Path<String>,
) -> Result<StatusCode, Fault> {
    let bm = state.baremetal.clone();
    run(move || bm.set_maintenance(&ident, false, None)).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn boot_device(
    State(state): State<AppState>,
    Path(ident): Path<String>,
) -> Result<Json<Value>, Fault> {
    let bm = state.baremetal.clone();
    let (dev, persistent) = run(move || bm.boot_device(&ident)).await?;
    Ok(Json(json!({"boot_device": dev, "persistent": persistent})))
}

async fn set_boot_device(
    State(state): State<AppState>,
    Path(ident): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, Fault> {
    let b = body_object(&body)?;
    let dev = b
        .get("boot_device")
        .and_then(Value::as_str)
        .ok_or_else(|| Fault::bad_request("Mandatory field missing: boot_device"))?
        .to_owned();
    let persistent = b
        .get("persistent")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let bm = state.baremetal.clone();
    run(move || bm.set_boot_device(&ident, &dev, persistent)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn supported_boot_devices(
    State(state): State<AppState>,
    Path(ident): Path<String>,
) -> Result<Json<Value>, Fault> {
    let bm = state.baremetal.clone();
    run(move || bm.get(&ident)).await?;
    Ok(Json(
        json!({"supported_boot_devices": ["pxe", "disk", "cdrom", "bios"]}),
    ))
}
