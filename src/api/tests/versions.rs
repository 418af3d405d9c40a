//! Version discovery compared field by field with Nova's own samples
//! (`reference/nova/api_samples/versions/`) and Keystone's and Glance's documents.

mod common;

use std::path::PathBuf;

use axum::http::{Method, StatusCode};
use common::TestApp;
use serde_json::Value;

/// The Nova reference samples, beside the repository (`../shared/reference/nova/api_samples`)
/// or where `ONEBOX_NOVA_SAMPLES` points.
fn samples_dir() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("ONEBOX_NOVA_SAMPLES") {
        return Some(PathBuf::from(p));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = root.join("../shared/reference/nova/api_samples");
    p.exists().then_some(p)
}

fn sample(name: &str) -> Option<Value> {
    let Some(dir) = samples_dir() else {
        assert!(
            std::env::var("ONEBOX_REQUIRE_SAMPLES").is_err(),
            "ONEBOX_REQUIRE_SAMPLES is set but the Nova samples were not found"
        );
        eprintln!("skipped: Nova api_samples not found");
        return None;
    };
    let text = std::fs::read_to_string(dir.join("versions").join(name)).expect("sample");
    Some(serde_json::from_str(&text).expect("sample json"))
}

/// Compares `ours` with Nova's sample: the same keys at every level, the same types, and the
/// same values except hrefs (which name the host) and the advertised maximum version.
fn same_shape(path: &str, ours: &Value, theirs: &Value) {
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            let mut ka: Vec<_> = a.keys().collect();
            let mut kb: Vec<_> = b.keys().collect();
            ka.sort();
            kb.sort();
            assert_eq!(ka, kb, "keys at {path}");
            for k in ka {
                same_shape(&format!("{path}.{k}"), &a[k], &b[k]);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "length at {path}");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                same_shape(&format!("{path}[{i}]"), x, y);
            }
        }
        (Value::String(a), Value::String(b)) => {
            if path.ends_with(".href") {
                let tail = |s: &str| s.rsplit_once("/v2").map(|(_, t)| t.to_owned());
                assert_eq!(tail(a), tail(b), "href at {path}: {a} vs {b}");
            } else if path.ends_with(".version") && !b.is_empty() {
                assert_eq!(a, &api::microversion::MAX_VERSION.to_string(), "{path}");
            } else {
                assert_eq!(a, b, "value at {path}");
            }
        }
        (a, b) => assert_eq!(a, b, "value at {path}"),
    }
}

#[tokio::test]
async fn compute_version_list_matches_nova() {
    let app = TestApp::new().await;
    for uri in ["/compute", "/compute/"] {
        let r = app.get(uri, None).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        // The root skips microversion processing: no version headers.
        assert!(r.header("openstack-api-version").is_none());
        if let Some(s) = sample("versions-get-resp.json") {
            same_shape("$", &r.body, &s);
        }
        let hrefs: Vec<&str> = r.body["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .map(|v| v["links"][0]["href"].as_str().expect("href"))
            .collect();
        assert_eq!(
            hrefs,
            [
                "http://onebox.test/compute/v2/",
                "http://onebox.test/compute/v2.1/"
            ]
        );
    }
}

#[tokio::test]
async fn compute_v21_document_matches_nova_with_and_without_slash() {
    let app = TestApp::new().await;
    for uri in ["/compute/v2.1", "/compute/v2.1/"] {
        let r = app.get(uri, None).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        if let Some(s) = sample("v21-version-get-resp.json") {
            same_shape("$", &r.body, &s);
        }
        assert_eq!(r.header("openstack-api-version"), Some("compute 2.1"));
        assert_eq!(r.header("x-openstack-nova-api-version"), Some("2.1"));
        let vary: Vec<_> = r.headers.get_all("vary").iter().collect();
        assert!(
            vary.iter().any(|v| *v == "OpenStack-API-Version"),
            "{vary:?}"
        );
        assert!(
            vary.iter().any(|v| *v == "X-OpenStack-Nova-API-Version"),
            "{vary:?}"
        );
    }
}

#[tokio::test]
async fn compute_v20_document_matches_nova() {
    let app = TestApp::new().await;
    for uri in ["/compute/v2", "/compute/v2/"] {
        let r = app.get(uri, None).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        if let Some(s) = sample("v2-version-get-resp.json") {
            same_shape("$", &r.body, &s);
        }
        assert!(r.header("x-openstack-nova-api-version").is_none());
    }
}

#[tokio::test]
async fn unversioned_compute_paths_offer_choices() {
    let app = TestApp::new().await;
    let r = app.get("/compute/servers/detail", None).await;
    assert_eq!(r.status, StatusCode::MULTIPLE_CHOICES);
    let choices = r.body["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 2);
    assert_eq!(choices[0]["id"], "v2.0");
    assert_eq!(
        choices[1]["links"][0]["href"],
        "http://onebox.test/compute/v2.1/servers/detail"
    );
    assert_eq!(
        choices[1]["media-types"][0]["type"],
        "application/vnd.openstack.compute+json;version=2.1"
    );
}

#[tokio::test]
async fn version_documents_need_no_token_but_accept_one() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    for uri in [
        "/compute/",
        "/compute/v2.1/",
        "/identity",
        "/identity/v3",
        "/image/",
    ] {
        let anon = app.get(uri, None).await;
        let with = app.get(uri, Some(&t)).await;
        assert!(anon.status.is_success() || anon.status == StatusCode::MULTIPLE_CHOICES);
        assert_eq!(anon.status, with.status, "{uri}");
        assert_eq!(anon.body, with.body, "{uri}");
        // A stale token does not break discovery either.
        let stale = app.get(uri, Some("not-a-token")).await;
        assert_eq!(stale.status, anon.status, "{uri}");
    }
}

#[tokio::test]
async fn identity_version_documents() {
    let app = TestApp::new().await;
    for uri in ["/identity", "/identity/"] {
        let r = app.get(uri, None).await;
        assert_eq!(r.status, StatusCode::MULTIPLE_CHOICES);
        let v = &r.body["versions"]["values"][0];
        assert_eq!(v["id"], "v3.14");
        assert_eq!(v["status"], "stable");
        assert_eq!(v["links"][0]["href"], "http://onebox.test/identity/v3/");
        assert_eq!(
            v["media-types"][0]["type"],
            "application/vnd.openstack.identity-v3+json"
        );
    }
    for uri in ["/identity/v3", "/identity/v3/"] {
        let r = app.get(uri, None).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        assert_eq!(r.body["version"]["id"], "v3.14");
    }
}

#[tokio::test]
async fn image_version_documents() {
    let app = TestApp::new().await;
    let r = app.get("/image/", None).await;
    assert_eq!(r.status, StatusCode::MULTIPLE_CHOICES);
    let first = &r.body["versions"][0];
    assert_eq!(first["status"], "CURRENT");
    assert_eq!(first["links"][0]["href"], "http://onebox.test/image/v2/");
    let r = app.call(Method::GET, "/image/versions", &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn every_response_carries_request_ids() {
    let app = TestApp::new().await;
    for uri in [
        "/compute/",
        "/identity/v3",
        "/nope",
        "/compute/v2.1/nope",
        "/healthz",
    ] {
        let r = app.get(uri, None).await;
        let a = r.header("x-openstack-request-id").expect("openstack id");
        let b = r.header("x-compute-request-id").expect("compute id");
        assert_eq!(a, b);
        assert!(a.starts_with("req-") && a.len() == 40, "{a}");
    }
    let one = app.get("/healthz", None).await;
    let two = app.get("/healthz", None).await;
    assert_ne!(
        one.header("x-openstack-request-id"),
        two.header("x-openstack-request-id")
    );
}
