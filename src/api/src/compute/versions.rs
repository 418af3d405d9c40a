//! Compute version documents, shaped as `api_samples/versions/` shows them.

use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

use crate::AppState;
use crate::microversion::{MAX_VERSION, MIN_VERSION};

const V21_UPDATED: &str = "2013-07-23T11:33:21Z";
const V20_UPDATED: &str = "2025-07-04T12:00:00Z";

struct Entry {
    id: &'static str,
    path: &'static str,
    status: &'static str,
    version: String,
    min_version: String,
    updated: &'static str,
    media_type: &'static str,
}

fn entries() -> [Entry; 2] {
    [
        Entry {
            id: "v2.0",
            path: "v2",
            status: "DEPRECATED",
            version: String::new(),
            min_version: String::new(),
            updated: V20_UPDATED,
            media_type: "application/vnd.openstack.compute+json;version=2",
        },
        Entry {
            id: "v2.1",
            path: "v2.1",
            status: "CURRENT",
            version: MAX_VERSION.to_string(),
            min_version: MIN_VERSION.to_string(),
            updated: V21_UPDATED,
            media_type: "application/vnd.openstack.compute+json;version=2.1",
        },
    ]
}

fn summary(base: &str, e: &Entry) -> Value {
    json!({
        "id": e.id,
        "status": e.status,
        "version": e.version,
        "min_version": e.min_version,
        "updated": e.updated,
        "links": [{"rel": "self", "href": format!("{base}/compute/{}/", e.path)}],
    })
}

fn document(base: &str, e: &Entry) -> Value {
    json!({"version": {
        "id": e.id,
        "status": e.status,
        "version": e.version,
        "min_version": e.min_version,
        "updated": e.updated,
        "links": [
            {"rel": "self", "href": format!("{base}/compute/{}/", e.path)},
            {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"},
        ],
        "media-types": [{"base": "application/json", "type": e.media_type}],
    }})
}

/// `GET /compute/`: every version, 200.
pub async fn list(State(s): State<AppState>, h: HeaderMap) -> Json<Value> {
    let base = s.base_url(&h);
    Json(json!({"versions": entries().iter().map(|e| summary(&base, e)).collect::<Vec<_>>()}))
}

/// `GET /compute/v2.1/` (also reached as `/compute/v2.1/{project_id}/` with a token).
pub async fn v21_doc(State(s): State<AppState>, h: HeaderMap) -> Json<Value> {
    let [_, v21] = entries();
    Json(document(&s.base_url(&h), &v21))
}

/// `GET /compute/v2/`.
pub async fn v20_doc(State(s): State<AppState>, h: HeaderMap) -> Json<Value> {
    let [v20, _] = entries();
    Json(document(&s.base_url(&h), &v20))
}

/// Any other unversioned path: 300 with a choice per version, pointing at the same path.
pub async fn choices(
    State(s): State<AppState>,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> (StatusCode, Json<Value>) {
    let base = s.base_url(&h);
    let rest = uri
        .path()
        .strip_prefix("/compute/")
        .unwrap_or_default()
        .to_owned();
    let choices: Vec<Value> = entries()
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "status": e.status,
                "links": [{"rel": "self", "href": format!("{base}/compute/{}/{rest}", e.path)}],
                "media-types": [{"base": "application/json", "type": e.media_type}],
            })
        })
        .collect();
    (
        StatusCode::MULTIPLE_CHOICES,
        Json(json!({"choices": choices})),
    )
}

const GONE: &str = "This resource is no longer available. No forwarding address is given.";

/// Nova's answer to a removed API: 410 with `computeFault`.
pub fn gone_fault() -> crate::Fault {
    crate::Fault::new(StatusCode::GONE, GONE)
}

/// Whether `method` on the path `segs` is one of the routes Nova keeps only to answer 410
/// (its removed APIs: agents, cells, certificates, cloudpipe, fixed IPs, floating IP DNS,
/// bulk floating IPs, fping, default security group rules, the XVP consoles, virtual
/// interfaces, tenant network writes). Other methods on those paths are unknown routes.
pub fn removed(method: &Method, segs: &[&str]) -> bool {
    let m = |allowed: &[Method]| allowed.contains(method);
    use Method as M;
    match segs {
        ["os-agents"] | ["os-cloudpipe"] | ["os-floating-ips-bulk"] => m(&[M::GET, M::POST]),
        ["os-security-group-default-rules"] => m(&[M::GET, M::POST]),
        ["os-agents", _] => m(&[M::PUT, M::DELETE]),
        ["os-cells"] => m(&[M::GET, M::POST]),
        ["os-cells", id] => {
            m(&[M::GET, M::PUT, M::DELETE]) || (*id == "sync_instances" && m(&[M::POST]))
        }
        ["os-cells", _, "capacities"] => m(&[M::GET]),
        ["os-certificates"] => m(&[M::POST]),
        ["os-certificates", _] | ["os-fixed-ips", _] | ["os-fping", _] => m(&[M::GET]),
        ["os-fping"] | ["os-floating-ip-dns"] => m(&[M::GET]),
        ["os-cloudpipe", _] => m(&[M::PUT]),
        ["os-floating-ip-dns", _] => m(&[M::PUT, M::DELETE]),
        ["os-floating-ip-dns", _, "entries", _] => m(&[M::GET, M::PUT, M::DELETE]),
        ["os-floating-ips-bulk", _] => m(&[M::GET, M::PUT]),
        ["os-security-group-default-rules", _] => m(&[M::GET, M::DELETE]),
        ["servers", _, "consoles"] => m(&[M::GET, M::POST]),
        ["servers", _, "consoles", _] => m(&[M::GET, M::DELETE]),
        ["servers", _, "os-virtual-interfaces"] => m(&[M::GET]),
        ["os-tenant-networks"] => m(&[M::POST]),
        ["os-tenant-networks", _] => m(&[M::DELETE]),
        _ => false,
    }
}

/// Any path the route table does not name: 410 for Nova's removed APIs, else 404.
pub async fn gone(method: Method, uri: axum::http::Uri) -> crate::Fault {
    let segs: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    if removed(&method, &segs) {
        return gone_fault();
    }
    crate::Fault::not_found("The resource could not be found.").webob()
}

/// `POST /os-fixed-ips/{id}/action` and `POST /os-networks/{id}/action`: the removed
/// actions `names` answer 410; any other is unknown.
pub fn gone_action(body: &serde_json::Value, names: &[&str]) -> crate::Fault {
    let malformed = || crate::Fault::bad_request("Malformed request body");
    let Some(o) = body.as_object().filter(|o| o.len() == 1) else {
        return malformed();
    };
    match o.keys().next() {
        Some(k) if names.contains(&k.as_str()) => gone_fault(),
        Some(k) => crate::Fault::bad_request(format!("There is no such action: {k}")),
        None => malformed(),
    }
}

pub async fn fixed_ip_action(
    crate::extract::JsonBody(body): crate::extract::AnyJson,
) -> crate::Fault {
    gone_action(&body, &["reserve", "unreserve"])
}

pub async fn network_action(
    crate::extract::JsonBody(body): crate::extract::AnyJson,
) -> crate::Fault {
    gone_action(
        &body,
        &[
            "disassociate",
            "disassociate_host",
            "disassociate_project",
            "associate_host",
        ],
    )
}

/// `POST /os-networks`, `POST /os-networks/add`, `DELETE /os-networks/{id}`: nova-network's
/// writes, gone.
pub async fn network_write() -> crate::Fault {
    gone_fault()
}

/// `POST /os-networks/{id}`: only `add` is a (removed) route.
pub async fn network_post(crate::extract::Path(id): crate::extract::Path<String>) -> crate::Fault {
    if id == "add" {
        return gone_fault();
    }
    crate::Fault::not_found("The resource could not be found.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_routes_are_by_method_and_path() {
        assert!(removed(&Method::GET, &["os-cells"]));
        assert!(removed(&Method::POST, &["os-cells", "sync_instances"]));
        assert!(!removed(&Method::POST, &["os-cells", "x"]));
        assert!(removed(&Method::DELETE, &["os-agents", "1"]));
        assert!(!removed(&Method::GET, &["os-agents", "1"]));
        assert!(!removed(&Method::DELETE, &["os-fping"]));
        assert!(removed(
            &Method::GET,
            &["servers", "x", "os-virtual-interfaces"]
        ));
        assert!(!removed(&Method::GET, &["os-virtual-interfaces"]));
        assert!(!removed(&Method::GET, &["os-nothing"]));
    }
}
