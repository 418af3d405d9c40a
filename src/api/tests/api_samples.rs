//! The api_samples conformance test: for every sample in Nova's `api_samples` whose
//! operation onebox serves, the same request at the same microversion must answer a body with
//! the same keys and value types. Ids, dates, hosts and the contents of free-form maps
//! (metadata, extra specs, addresses by network name) may differ.
//!
//! Request samples are sent as they are, except where they name things that exist only in
//! Nova's test fixture (its image and flavor ids, availability zone, port and volume ids,
//! trusted certificates, user `fake`); those are replaced by this box's equivalents.

mod common;

use std::path::{Path, PathBuf};

use axum::http::Method;
use common::TestApp;
use serde_json::{Value, json};

fn samples_dir() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("ONEBOX_NOVA_SAMPLES") {
        return Some(PathBuf::from(p));
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/nova/api_samples");
    p.exists().then_some(p)
}

fn read(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).expect("read sample")).expect("sample json")
}

/// Keys whose values are maps of data, not of fields.
const FREE_FORM: &[&str] = &[
    "metadata",
    "extra_specs",
    "addresses",
    "scheduler_hints",
    "properties",
    "meta",
    // Availability zones list their services under host names.
    "hosts",
];

fn compare(path: &str, ours: &Value, theirs: &Value, errors: &mut Vec<String>) {
    let last = path.rsplit('.').next().unwrap_or("");
    match (ours, theirs) {
        (_, Value::Null) | (Value::Null, _) => {}
        (Value::Object(a), Value::Object(b)) => {
            // Under each host, services are keyed by name: free-form too.
            if FREE_FORM.contains(&last) || path.ends_with("hosts.*") {
                // Compare the shape of the values, not the keys.
                if let (Some(x), Some(y)) = (a.values().next(), b.values().next()) {
                    compare(&format!("{path}.*"), x, y, errors);
                }
                return;
            }
            for k in b.keys() {
                if !a.contains_key(k) {
                    errors.push(format!("{path}: missing key '{k}'"));
                }
            }
            for k in a.keys() {
                if !b.contains_key(k) {
                    errors.push(format!("{path}: extra key '{k}'"));
                }
            }
            for (k, v) in a {
                if let Some(w) = b.get(k) {
                    compare(&format!("{path}.{k}"), v, w, errors);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if let (Some(x), Some(y)) = (a.first(), b.first()) {
                compare(&format!("{path}[0]"), x, y, errors);
            }
        }
        (Value::Number(_), Value::Number(_))
        | (Value::String(_), Value::String(_))
        | (Value::Bool(_), Value::Bool(_)) => {}
        (a, b) => errors.push(format!("{path}: type differs: ours {a} vs sample {b}")),
    }
}

/// The version a sample directory stands for.
fn version_of(dir: &Path) -> Option<(u32, u32)> {
    let name = dir.file_name()?.to_str()?;
    let v = name.strip_prefix("v2.")?;
    Some((2, v.parse().ok()?))
}

fn find_req(dir: &Path, base: &Path, name: &str) -> Option<Value> {
    let here = dir.join(name);
    if here.exists() {
        return Some(read(&here));
    }
    let top = base.join(name);
    top.exists().then(|| read(&top))
}

fn contains_key(v: &Value, key: &str) -> bool {
    match v {
        Value::Object(o) => o.contains_key(key) || o.values().any(|x| contains_key(x, key)),
        Value::Array(a) => a.iter().any(|x| contains_key(x, key)),
        _ => false,
    }
}

struct Ctx {
    app: TestApp,
    token: String,
    project: String,
    version: String,
}

impl Ctx {
    async fn call(&self, m: Method, path: &str, body: Option<Value>) -> common::Resp {
        let h = [
            ("x-auth-token", self.token.as_str()),
            ("x-openstack-nova-api-version", self.version.as_str()),
        ];
        self.app
            .call(
                m,
                &format!("/compute/v2.1/{}{path}", self.project),
                &h,
                body,
            )
            .await
    }

    async fn server(&self, with_tags: bool) -> String {
        let mut body = json!({"server": {
            "name": "sample-server",
            "imageRef": common::IMAGE,
            "flavorRef": "1",
            "metadata": {"My Server Name": "Apache1"},
            "accessIPv4": "1.2.3.4",
            "accessIPv6": "80fe::",
        }});
        if self.version_num() >= 37 {
            body["server"]["networks"] = json!("auto");
        }
        if with_tags && self.version_num() >= 52 {
            body["server"]["tags"] = json!(["tag1", "tag2"]);
        }
        let r = self.call(Method::POST, "/servers", Some(body)).await;
        assert_eq!(r.status.as_u16(), 202, "create for a sample: {}", r.text);
        let id = r.body["server"]["id"].as_str().expect("id").to_owned();
        self.app.compute.idle().await;
        if with_tags && self.version_num() < 52 && self.version_num() >= 26 {
            self.call(
                Method::PUT,
                &format!("/servers/{id}/tags"),
                Some(json!({"tags": ["tag1", "tag2"]})),
            )
            .await;
        }
        id
    }

    fn version_num(&self) -> u32 {
        self.version
            .strip_prefix("2.")
            .and_then(|m| m.parse().ok())
            .unwrap_or(1)
    }
}

/// Replaces what only exists in Nova's fixtures.
fn sanitize_server_req(mut body: Value, version: u32) -> Value {
    if let Some(s) = body.get_mut("server").and_then(Value::as_object_mut) {
        s.insert("imageRef".into(), json!(common::IMAGE));
        s.insert("flavorRef".into(), json!("1"));
        s.remove("trusted_image_certificates");
        s.remove("host");
        s.remove("hypervisor_hostname");
        s.remove("block_device_mapping_v2");
        s.remove("personality");
        if s.contains_key("availability_zone") {
            s.insert("availability_zone".into(), json!("nova"));
        }
        if version >= 37 {
            s.insert("networks".into(), json!("auto"));
        } else {
            s.remove("networks");
        }
    }
    if let Some(o) = body.as_object_mut() {
        o.remove("OS-SCH-HNT:scheduler_hints");
        o.remove("os:scheduler_hints");
    }
    body
}

#[tokio::test]
async fn responses_match_novas_samples() {
    let Some(base) = samples_dir() else {
        assert!(
            std::env::var("ONEBOX_REQUIRE_SAMPLES").is_err(),
            "ONEBOX_REQUIRE_SAMPLES is set but the Nova samples were not found"
        );
        eprintln!("skipped: Nova api_samples not found");
        return;
    };
    let max = api::microversion::MAX_VERSION;
    let areas = [
        "flavors",
        "flavor-manage",
        "flavor-access",
        "flavor-extra-specs",
        "os-keypairs",
        "limits",
        "os-quota-sets",
        "server-metadata",
        "os-server-tags",
        "server-ips",
        "servers",
        "os-availability-zone",
        "os-console-output",
        "os-instance-actions",
        "os-create-backup",
        "os-preserve-ephemeral-rebuild",
        "os-server-groups",
        "os-hypervisors",
        "os-services",
        "os-simple-tenant-usage",
        "os-migrations",
        "server-migrations",
        "os-server-diagnostics",
        "images",
        "os-aggregates",
        "os-rescue",
        "os-quota-class-sets",
        "os-server-password",
    ];
    let mut checked = Vec::new();
    let mut skipped = Vec::new();
    let mut failures = Vec::new();
    for area in areas {
        let area_dir = base.join(area);
        let mut dirs = vec![area_dir.clone()];
        for e in std::fs::read_dir(&area_dir).expect("area") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                dirs.push(p);
            }
        }
        for dir in dirs {
            let (maj, min) = version_of(&dir).unwrap_or((2, 1));
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .expect("dir")
                .map(|e| e.expect("e").path())
                .filter(|p| {
                    let n = p.to_string_lossy();
                    n.ends_with("-resp.json")
                        || (LENIENT_NAMES.contains(&area)
                            && n.ends_with(".json")
                            && !n.ends_with("-req.json"))
                })
                .collect();
            files.sort();
            for file in files {
                let name = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("")
                    .to_owned();
                let label = format!(
                    "{area}/{}{name}",
                    if min > 1 {
                        format!("v{maj}.{min}/")
                    } else {
                        String::new()
                    }
                );
                if api::microversion::ApiVersion::new(maj, min) > max {
                    skipped.push(format!("{label} (beyond {max})"));
                    continue;
                }
                let sample = read(&file);
                if min == 69 && area == "servers" {
                    skipped.push(format!("{label} (down-cell records: one box has no cells)"));
                    continue;
                }
                let paged = sample.get("servers_links").is_some();
                let admin = contains_key(&sample, "OS-EXT-SRV-ATTR:host")
                    || matches!(
                        area,
                        "flavor-manage" | "flavor-access" | "flavor-extra-specs"
                    )
                    || name.starts_with("quotas-update")
                    || name == "availability-zone-detail-resp.json"
                    || name == "instance-action-get-resp.json"
                    || ADMIN_AREAS.contains(&area);
                let app = TestApp::new().await;
                let (token, pname) = if admin {
                    (app.admin().await, "admin")
                } else {
                    (app.demo().await, "demo")
                };
                let project = app
                    .identity
                    .validate(&token)
                    .await
                    .expect("validate")
                    .expect("live")
                    .project
                    .expect("scoped")
                    .0
                    .id
                    .to_string();
                let _ = pname;
                let ctx = Ctx {
                    app,
                    token,
                    project: project.clone(),
                    version: format!("{maj}.{min}"),
                };
                let req = |n: &str| find_req(&dir, &area_dir, n);
                let resp = match (area, name.as_str()) {
                    ("flavors", "flavor-get-resp.json") => {
                        ctx.call(Method::GET, "/flavors/1", None).await
                    }
                    ("flavors", "flavors-detail-resp.json") => {
                        ctx.call(Method::GET, "/flavors/detail", None).await
                    }
                    ("flavors", "flavors-list-resp.json") => {
                        ctx.call(Method::GET, "/flavors", None).await
                    }
                    ("flavor-manage", "flavor-create-post-resp.json") => {
                        ctx.call(Method::POST, "/flavors", req("flavor-create-post-req.json"))
                            .await
                    }
                    ("flavor-manage", "flavor-update-resp.json") => {
                        let c = ctx
                            .call(Method::POST, "/flavors", req("flavor-create-post-req.json"))
                            .await;
                        let id = c.body["flavor"]["id"].as_str().unwrap_or("x").to_owned();
                        ctx.call(
                            Method::PUT,
                            &format!("/flavors/{id}"),
                            req("flavor-update-req.json"),
                        )
                        .await
                    }
                    ("flavor-access", n) => {
                        let c = ctx
                            .call(Method::POST, "/flavors", Some(json!({"flavor": {"name": "private", "ram": 512, "vcpus": 1, "disk": 1, "id": "10", "os-flavor-access:is_public": false}})))
                            .await;
                        assert_eq!(c.status.as_u16(), 200, "{}", c.text);
                        let add = json!({"addTenantAccess": {"tenant": "fake_tenant"}});
                        match n {
                            "flavor-access-list-resp.json" => {
                                ctx.call(Method::POST, "/flavors/10/action", Some(add))
                                    .await;
                                ctx.call(Method::GET, "/flavors/10/os-flavor-access", None)
                                    .await
                            }
                            "flavor-access-add-tenant-resp.json" => {
                                ctx.call(
                                    Method::POST,
                                    "/flavors/10/action",
                                    req("flavor-access-add-tenant-req.json"),
                                )
                                .await
                            }
                            "flavor-access-remove-tenant-resp.json" => {
                                ctx.call(Method::POST, "/flavors/10/action", Some(add))
                                    .await;
                                ctx.call(
                                    Method::POST,
                                    "/flavors/10/action",
                                    req("flavor-access-remove-tenant-req.json"),
                                )
                                .await
                            }
                            _ => {
                                skipped.push(format!("{label} (no mapping)"));
                                continue;
                            }
                        }
                    }
                    ("flavor-extra-specs", n) => {
                        let create = req("flavor-extra-specs-create-req.json");
                        match n {
                            "flavor-extra-specs-create-resp.json" => {
                                ctx.call(Method::POST, "/flavors/1/os-extra_specs", create)
                                    .await
                            }
                            _ => {
                                ctx.call(Method::POST, "/flavors/1/os-extra_specs", create.clone())
                                    .await;
                                let key = create
                                    .as_ref()
                                    .and_then(|c| c["extra_specs"].as_object())
                                    .and_then(|o| o.keys().next().cloned())
                                    .unwrap_or_default();
                                match n {
                                    "flavor-extra-specs-get-resp.json" => {
                                        ctx.call(
                                            Method::GET,
                                            &format!("/flavors/1/os-extra_specs/{key}"),
                                            None,
                                        )
                                        .await
                                    }
                                    "flavor-extra-specs-list-resp.json" => {
                                        ctx.call(Method::GET, "/flavors/1/os-extra_specs", None)
                                            .await
                                    }
                                    _ => {
                                        let upd = req("flavor-extra-specs-update-req.json");
                                        let ukey = upd
                                            .as_ref()
                                            .and_then(Value::as_object)
                                            .and_then(|o| o.keys().next().cloned())
                                            .unwrap_or_default();
                                        ctx.call(
                                            Method::PUT,
                                            &format!("/flavors/1/os-extra_specs/{ukey}"),
                                            upd,
                                        )
                                        .await
                                    }
                                }
                            }
                        }
                    }
                    ("os-keypairs", n) => {
                        let fix = |v: Option<Value>| {
                            v.map(|mut b| {
                                if b["keypair"].get("user_id").is_some() {
                                    b["keypair"]["user_id"] = json!(ctx_user(&b));
                                    if let Some(o) = b["keypair"].as_object_mut() {
                                        o.remove("user_id");
                                    }
                                }
                                b
                            })
                        };
                        let import = fix(req("keypairs-import-post-req.json"));
                        match n {
                            "keypairs-import-post-resp.json" => {
                                ctx.call(Method::POST, "/os-keypairs", import).await
                            }
                            "keypairs-post-resp.json" => {
                                ctx.call(
                                    Method::POST,
                                    "/os-keypairs",
                                    fix(req("keypairs-post-req.json")),
                                )
                                .await
                            }
                            "keypairs-list-resp.json" => {
                                ctx.call(Method::POST, "/os-keypairs", import).await;
                                let q = if min >= 35 { "?limit=1" } else { "" };
                                ctx.call(Method::GET, &format!("/os-keypairs{q}"), None)
                                    .await
                            }
                            "keypairs-get-resp.json" => {
                                let c = ctx.call(Method::POST, "/os-keypairs", import).await;
                                let kname =
                                    c.body["keypair"]["name"].as_str().unwrap_or("x").to_owned();
                                ctx.call(Method::GET, &format!("/os-keypairs/{kname}"), None)
                                    .await
                            }
                            _ => {
                                skipped.push(format!("{label} (lists another user's keypairs)"));
                                continue;
                            }
                        }
                    }
                    ("limits", _) => ctx.call(Method::GET, "/limits", None).await,
                    ("os-quota-sets", n) if n.starts_with("user-quotas") => {
                        skipped.push(format!("{label} (per-user quotas are not served)"));
                        continue;
                    }
                    ("os-quota-sets", "quotas-show-get-resp.json") => {
                        ctx.call(Method::GET, &format!("/os-quota-sets/{project}"), None)
                            .await
                    }
                    ("os-quota-sets", "quotas-show-defaults-get-resp.json") => {
                        ctx.call(
                            Method::GET,
                            &format!("/os-quota-sets/{project}/defaults"),
                            None,
                        )
                        .await
                    }
                    ("os-quota-sets", "quotas-show-detail-get-resp.json") => {
                        ctx.call(
                            Method::GET,
                            &format!("/os-quota-sets/{project}/detail"),
                            None,
                        )
                        .await
                    }
                    ("os-quota-sets", "quotas-update-post-resp.json") => {
                        ctx.call(
                            Method::PUT,
                            &format!("/os-quota-sets/{project}"),
                            req("quotas-update-post-req.json"),
                        )
                        .await
                    }
                    ("os-quota-sets", "quotas-update-force-post-resp.json") => {
                        ctx.call(
                            Method::PUT,
                            &format!("/os-quota-sets/{project}"),
                            req("quotas-update-force-post-req.json"),
                        )
                        .await
                    }
                    ("server-metadata", n) => {
                        let id = ctx.server(false).await;
                        if n == "server-metadata-all-resp.json" {
                            ctx.call(
                                Method::PUT,
                                &format!("/servers/{id}/metadata"),
                                req("server-metadata-all-req.json"),
                            )
                            .await
                        } else {
                            let body = req("server-metadata-req.json");
                            let key = body
                                .as_ref()
                                .and_then(|b| b["meta"].as_object())
                                .and_then(|o| o.keys().next().cloned())
                                .unwrap_or_default();
                            ctx.call(Method::PUT, &format!("/servers/{id}/metadata/{key}"), body)
                                .await
                        }
                    }
                    ("os-server-tags", n) => {
                        let id = ctx.server(true).await;
                        match n {
                            "server-tags-index-resp.json" => {
                                ctx.call(Method::GET, &format!("/servers/{id}/tags"), None)
                                    .await
                            }
                            "server-tags-put-all-resp.json" => {
                                ctx.call(
                                    Method::PUT,
                                    &format!("/servers/{id}/tags"),
                                    req("server-tags-put-all-req.json"),
                                )
                                .await
                            }
                            "server-tags-show-details-resp.json" => {
                                ctx.call(Method::GET, &format!("/servers/{id}"), None).await
                            }
                            _ => ctx.call(Method::GET, "/servers/detail", None).await,
                        }
                    }
                    ("server-ips", n) => {
                        let id = ctx.server(false).await;
                        if n == "server-ips-resp.json" {
                            ctx.call(Method::GET, &format!("/servers/{id}/ips"), None)
                                .await
                        } else {
                            ctx.call(Method::GET, &format!("/servers/{id}/ips/private"), None)
                                .await
                        }
                    }
                    ("servers", "server-create-resp.json") => {
                        let body =
                            req("server-create-req.json").map(|b| sanitize_server_req(b, min));
                        let r = ctx.call(Method::POST, "/servers", body).await;
                        ctx.app.compute.idle().await;
                        r
                    }
                    ("servers", "server-get-resp.json") => {
                        let id = ctx.server(true).await;
                        ctx.call(Method::GET, &format!("/servers/{id}"), None).await
                    }
                    ("servers", "servers-details-resp.json") => {
                        ctx.server(true).await;
                        ctx.server(true).await;
                        let q = if paged { "?limit=1" } else { "" };
                        ctx.call(Method::GET, &format!("/servers/detail{q}"), None)
                            .await
                    }
                    ("servers", "servers-list-resp.json") => {
                        ctx.server(false).await;
                        ctx.server(false).await;
                        let q = if paged { "?limit=1" } else { "" };
                        ctx.call(Method::GET, &format!("/servers{q}"), None).await
                    }
                    ("servers", "server-update-resp.json") => {
                        let id = ctx.server(true).await;
                        let body = req("server-update-req.json")
                            .unwrap_or(json!({"server": {"name": "new-name"}}));
                        let mut body = body;
                        if let Some(s) = body["server"].as_object_mut() {
                            s.remove("pinned_availability_zone");
                        }
                        ctx.call(Method::PUT, &format!("/servers/{id}"), Some(body))
                            .await
                    }
                    ("servers" | "os-preserve-ephemeral-rebuild", n) if n.contains("rebuild") => {
                        let id = ctx.server(false).await;
                        let body = dir
                            .read_dir()
                            .expect("dir")
                            .map(|e| e.expect("e").path())
                            .find(|p| {
                                let f = p.file_name().and_then(|f| f.to_str()).unwrap_or("");
                                f.contains("rebuild") && !f.ends_with("-resp.json")
                            })
                            .map(|p| read(&p));
                        let body = body.map(|b| sanitize_action_req(&ctx, b));
                        if let Some(k) = body
                            .as_ref()
                            .and_then(|b| b["rebuild"]["key_name"].as_str())
                        {
                            let r = ctx
                                .call(
                                    Method::POST,
                                    "/os-keypairs",
                                    Some(json!({"keypair": {"name": k}})),
                                )
                                .await;
                            assert!(r.status.is_success(), "{}", r.text);
                        }
                        let r = ctx
                            .call(Method::POST, &format!("/servers/{id}/action"), body)
                            .await;
                        ctx.app.compute.idle().await;
                        r
                    }
                    ("servers", "server-action-create-image-resp.json") => {
                        let id = ctx.server(false).await;
                        let r = ctx
                            .call(
                                Method::POST,
                                &format!("/servers/{id}/action"),
                                req("server-action-create-image.json"),
                            )
                            .await;
                        ctx.app.compute.idle().await;
                        r
                    }
                    ("os-create-backup", _) => {
                        let id = ctx.server(false).await;
                        let r = ctx
                            .call(
                                Method::POST,
                                &format!("/servers/{id}/action"),
                                req("create-backup-req.json"),
                            )
                            .await;
                        ctx.app.compute.idle().await;
                        r
                    }
                    ("os-rescue", "server-rescue-req-with-image-ref.json") => {
                        skipped.push(format!(
                            "{label} (a request: action_requests_of_novas_samples_are_accepted sends it)"
                        ));
                        continue;
                    }
                    ("os-rescue", n) => {
                        let id = ctx.server(false).await;
                        let path = format!("/servers/{id}/action");
                        let r = ctx
                            .call(Method::POST, &path, req("server-rescue-req.json"))
                            .await;
                        ctx.app.compute.idle().await;
                        match n {
                            "server-rescue.json" => r,
                            _ => {
                                assert_eq!(r.status.as_u16(), 200, "{}", r.text);
                                if n == "server-get-resp-unrescue.json" {
                                    let u = ctx
                                        .call(Method::POST, &path, req("server-unrescue-req.json"))
                                        .await;
                                    assert_eq!(u.status.as_u16(), 202, "{}", u.text);
                                    ctx.app.compute.idle().await;
                                }
                                ctx.call(Method::GET, &format!("/servers/{id}"), None).await
                            }
                        }
                    }
                    ("os-availability-zone", "availability-zone-list-resp.json") => {
                        ctx.call(Method::GET, "/os-availability-zone", None).await
                    }
                    ("os-availability-zone", _) => {
                        ctx.call(Method::GET, "/os-availability-zone/detail", None)
                            .await
                    }
                    ("os-console-output", _) => {
                        let id = ctx.server(false).await;
                        ctx.call(
                            Method::POST,
                            &format!("/servers/{id}/action"),
                            req("console-output-post-req.json"),
                        )
                        .await
                    }
                    ("os-quota-class-sets", "quota-classes-show-get-resp.json") => {
                        ctx.call(Method::GET, "/os-quota-class-sets/default", None)
                            .await
                    }
                    ("os-quota-class-sets", _) => {
                        ctx.call(
                            Method::PUT,
                            "/os-quota-class-sets/default",
                            req("quota-classes-update-post-req.json"),
                        )
                        .await
                    }
                    ("os-server-password", _) => {
                        let id = ctx.server(false).await;
                        ctx.call(
                            Method::GET,
                            &format!("/servers/{id}/os-server-password"),
                            None,
                        )
                        .await
                    }
                    (a, n) if OPERATOR_AREAS.contains(&a) || n.contains("-with-changes-") => {
                        match operator_sample(&ctx, a, n, &dir, &area_dir, min).await {
                            Ok(r) => r,
                            Err(why) => {
                                skipped.push(format!("{label} ({why})"));
                                continue;
                            }
                        }
                    }
                    ("os-instance-actions", n) => {
                        let id = ctx.server(false).await;
                        let r = ctx
                            .call(
                                Method::POST,
                                &format!("/servers/{id}/action"),
                                Some(json!({"os-stop": null})),
                            )
                            .await;
                        assert_eq!(r.status.as_u16(), 202, "{}", r.text);
                        ctx.app.compute.idle().await;
                        let list = ctx
                            .call(
                                Method::GET,
                                &format!("/servers/{id}/os-instance-actions"),
                                None,
                            )
                            .await;
                        let stop = list.body["instanceActions"][0]["request_id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        match n {
                            "instance-actions-list-resp.json" => list,
                            "instance-actions-list-with-limit-resp.json" => {
                                ctx.call(
                                    Method::GET,
                                    &format!("/servers/{id}/os-instance-actions?limit=1"),
                                    None,
                                )
                                .await
                            }
                            "instance-actions-list-with-marker-resp.json" => {
                                ctx.call(
                                    Method::GET,
                                    &format!("/servers/{id}/os-instance-actions?marker={stop}"),
                                    None,
                                )
                                .await
                            }
                            _ => {
                                ctx.call(
                                    Method::GET,
                                    &format!("/servers/{id}/os-instance-actions/{stop}"),
                                    None,
                                )
                                .await
                            }
                        }
                    }
                    _ => {
                        skipped.push(format!("{label} (operation not served yet)"));
                        continue;
                    }
                };
                let mut errors = Vec::new();
                if !resp.status.is_success() {
                    errors.push(format!("status {}: {}", resp.status, resp.text));
                } else if resp.text.is_empty() {
                    errors.push("empty body".into());
                } else {
                    // A single extra spec answers `{key: value}`: a free-form root.
                    // So is the free-form body of diagnostics before 2.48.
                    let free_root = name == "flavor-extra-specs-get-resp.json"
                        || (area == "os-server-diagnostics" && min < 48);
                    let root = if free_root { "$.meta" } else { "$" };
                    compare(root, &resp.body, &sample, &mut errors);
                }
                if errors.is_empty() {
                    checked.push(label);
                } else {
                    failures.push(format!("{label}:\n    {}", errors.join("\n    ")));
                }
            }
        }
    }
    println!(
        "api_samples: {} checked, {} skipped",
        checked.len(),
        skipped.len()
    );
    for s in &skipped {
        println!("  skipped {s}");
    }
    assert!(
        failures.is_empty(),
        "{} samples do not match:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        checked.len() > 50,
        "too few samples checked: {}",
        checked.len()
    );
}

/// Replaces what only exists in Nova's fixtures in an action's request: the image, image
/// certificates (not served), the host and zone names.
fn sanitize_action_req(ctx: &Ctx, mut body: Value) -> Value {
    let _ = ctx;
    if let Some(o) = body.as_object_mut() {
        for (_, arg) in o.iter_mut() {
            if let Some(a) = arg.as_object_mut() {
                if a.contains_key("imageRef") {
                    a.insert("imageRef".into(), json!(common::IMAGE));
                }
                if a.contains_key("rescue_image_ref") {
                    a.insert("rescue_image_ref".into(), json!(common::IMAGE));
                }
                a.remove("trusted_image_certificates");
                a.remove("personality");
                if a.get("host").is_some_and(|h| !h.is_null()) {
                    a.insert("host".into(), json!("box"));
                }
                if a.get("availability_zone").is_some_and(|z| !z.is_null()) {
                    a.insert("availability_zone".into(), json!("nova"));
                }
            }
        }
    }
    body
}

/// Every action request sample (actions answer with no body, so the test above cannot see
/// them): sent at its microversion to a server in a state the action is legal in, it must
/// succeed.
#[tokio::test]
async fn action_requests_of_novas_samples_are_accepted() {
    let Some(base) = samples_dir() else {
        eprintln!("skipped: Nova api_samples not found");
        return;
    };
    // (sample, the status the server must be in first, admin?)
    let table: &[(&str, &str, bool)] = &[
        ("servers/server-action-reboot.json", "ACTIVE", false),
        ("servers/server-action-stop.json", "ACTIVE", false),
        ("servers/server-action-start.json", "SHUTOFF", false),
        ("servers/server-action-resize.json", "ACTIVE", false),
        (
            "servers/server-action-confirm-resize.json",
            "VERIFY_RESIZE",
            false,
        ),
        (
            "servers/server-action-revert-resize.json",
            "VERIFY_RESIZE",
            false,
        ),
        ("servers/server-action-create-image.json", "ACTIVE", false),
        (
            "servers/v2.45/server-action-create-image.json",
            "ACTIVE",
            false,
        ),
        ("servers/server-action-rebuild.json", "SHUTOFF", false),
        (
            "servers/v2.17/server-action-trigger-crash-dump.json",
            "ACTIVE",
            false,
        ),
        (
            "servers/v2.73/lock-server-with-reason.json",
            "ACTIVE",
            false,
        ),
        ("os-lock-server/lock-server.json", "ACTIVE", false),
        ("os-lock-server/unlock-server.json", "ACTIVE", false),
        (
            "os-lock-server/v2.73/lock-server-with-reason.json",
            "ACTIVE",
            false,
        ),
        ("os-pause-server/pause-server.json", "ACTIVE", false),
        ("os-pause-server/unpause-server.json", "PAUSED", false),
        ("os-suspend-server/server-suspend.json", "ACTIVE", false),
        ("os-suspend-server/server-resume.json", "SUSPENDED", false),
        (
            "os-admin-password/admin-password-change-password.json",
            "ACTIVE",
            false,
        ),
        ("os-create-backup/create-backup-req.json", "ACTIVE", false),
        (
            "os-create-backup/v2.45/create-backup-req.json",
            "ACTIVE",
            false,
        ),
        ("os-shelve/os-shelve.json", "ACTIVE", false),
        ("os-shelve/os-shelve-offload.json", "SHELVED", false),
        ("os-shelve/os-unshelve.json", "SHELVED", false),
        ("os-shelve/v2.77/os-shelve.json", "ACTIVE", false),
        (
            "os-shelve/v2.77/os-unshelve.json",
            "SHELVED_OFFLOADED",
            false,
        ),
        (
            "os-shelve/v2.77/os-unshelve-az.json",
            "SHELVED_OFFLOADED",
            false,
        ),
        ("os-shelve/v2.91/os-shelve.json", "ACTIVE", false),
        ("os-shelve/v2.91/os-unshelve.json", "SHELVED", false),
        (
            "os-shelve/v2.91/os-unshelve-az.json",
            "SHELVED_OFFLOADED",
            false,
        ),
        (
            "os-shelve/v2.91/os-unshelve-unpin-az.json",
            "SHELVED_OFFLOADED",
            false,
        ),
        (
            "os-shelve/v2.91/os-unshelve-host.json",
            "SHELVED_OFFLOADED",
            true,
        ),
        (
            "os-shelve/v2.91/os-unshelve-az-host.json",
            "SHELVED_OFFLOADED",
            true,
        ),
        (
            "os-shelve/v2.91/os-unshelve-host-and-unpin-az.json",
            "SHELVED_OFFLOADED",
            true,
        ),
        (
            "os-admin-actions/admin-actions-reset-server-state.json",
            "ERROR",
            true,
        ),
        (
            "os-deferred-delete/restore-post-req.json",
            "SOFT_DELETED",
            false,
        ),
        (
            "os-deferred-delete/force-delete-post-req.json",
            "SOFT_DELETED",
            false,
        ),
        (
            "os-console-output/console-output-post-req.json",
            "ACTIVE",
            false,
        ),
        ("os-rescue/server-rescue-req.json", "ACTIVE", false),
        (
            "os-rescue/server-rescue-req-with-image-ref.json",
            "ACTIVE",
            false,
        ),
        ("os-rescue/server-unrescue-req.json", "RESCUE", false),
        ("os-rescue/v2.87/server-rescue-req.json", "SHUTOFF", false),
        (
            "os-rescue/v2.87/server-rescue-req-with-image-ref.json",
            "ACTIVE",
            false,
        ),
        ("os-rescue/v2.87/server-unrescue-req.json", "RESCUE", false),
    ];
    let mut failures = Vec::new();
    for (sample, state, admin) in table {
        let path = base.join(sample);
        if !path.exists() {
            failures.push(format!("{sample}: missing"));
            continue;
        }
        let dir = path.parent().expect("dir");
        let (maj, min) = version_of(dir).unwrap_or((2, 1));
        let app = TestApp::with_compute(compute::ComputeConfig {
            reclaim_instance_interval: 3600,
            shelved_offload_time: -1,
            ..Default::default()
        })
        .await;
        let token = if *admin {
            app.admin().await
        } else {
            app.demo().await
        };
        let project = app
            .identity
            .validate(&token)
            .await
            .expect("validate")
            .expect("live")
            .project
            .expect("scoped")
            .0
            .id
            .to_string();
        let ctx = Ctx {
            app,
            token,
            project,
            version: format!("{maj}.{min}"),
        };
        let id = ctx.server(false).await;
        let act = |body: Value| {
            let ctx = &ctx;
            let id = id.clone();
            async move {
                let r = ctx
                    .call(Method::POST, &format!("/servers/{id}/action"), Some(body))
                    .await;
                ctx.app.compute.idle().await;
                r
            }
        };
        let setup: Vec<Value> = match *state {
            "ACTIVE" => vec![],
            "SHUTOFF" => vec![json!({"os-stop": null})],
            "PAUSED" => vec![json!({"pause": null})],
            "SUSPENDED" => vec![json!({"suspend": null})],
            "VERIFY_RESIZE" => vec![json!({"resize": {"flavorRef": "2"}})],
            "SHELVED" => vec![json!({"shelve": null})],
            "SHELVED_OFFLOADED" => vec![json!({"shelve": null}), json!({"shelveOffload": null})],
            "RESCUE" => vec![json!({"rescue": null})],
            "ERROR" => vec![],
            _ => vec![],
        };
        for b in setup {
            let r = act(b.clone()).await;
            assert!(
                r.status.is_success(),
                "{sample}: setting up with {b}: {}",
                r.text
            );
        }
        if *state == "SOFT_DELETED" {
            let r = ctx
                .call(Method::DELETE, &format!("/servers/{id}"), None)
                .await;
            assert!(r.status.is_success(), "{}", r.text);
            ctx.app.compute.idle().await;
        }
        let got = ctx.call(Method::GET, &format!("/servers/{id}"), None).await;
        let now = got.body["server"]["status"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        if *state != "ERROR" {
            assert_eq!(now, *state, "{sample}: setting up");
        }
        let body = sanitize_action_req(&ctx, read(&path));
        let r = act(body).await;
        if !r.status.is_success() {
            failures.push(format!("{sample}: {} {}", r.status, r.text));
        }
    }
    println!("action request samples: {} checked", table.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Sample keypair bodies name Nova's test user; onebox creates for the caller instead.
fn ctx_user(_b: &Value) -> Value {
    Value::Null
}

// ---- the operator's resources -----------------------------------------------------------

/// Areas whose sample files do not all end in `-resp.json`; every `.json` but a request is
/// a response there.
const LENIENT_NAMES: &[&str] = &[
    "os-instance-actions",
    "os-rescue",
    "os-simple-tenant-usage",
    "os-migrations",
    "server-migrations",
    "images",
];

/// Areas whose operations only the admin may call.
const ADMIN_AREAS: &[&str] = &[
    "os-aggregates",
    "os-quota-class-sets",
    "os-hypervisors",
    "os-services",
    "os-simple-tenant-usage",
    "os-migrations",
    "server-migrations",
    "os-server-diagnostics",
];

/// Areas mapped by [`operator_sample`].
const OPERATOR_AREAS: &[&str] = &[
    "os-server-groups",
    "os-hypervisors",
    "os-services",
    "os-simple-tenant-usage",
    "os-migrations",
    "server-migrations",
    "os-server-diagnostics",
    "images",
    "os-aggregates",
];

/// An active image in the image service, with the property Nova's sample images carry.
async fn glance_image(ctx: &Ctx, auto_disk_config: bool) -> String {
    let h = [("x-auth-token", ctx.token.as_str())];
    let mut body = json!({"name": "fakeimage7", "disk_format": "raw", "container_format": "bare",
                          "architecture": "x86_64"});
    if auto_disk_config {
        body["auto_disk_config"] = json!("True");
    }
    let r = ctx
        .app
        .call(Method::POST, "/image/v2/images", &h, Some(body))
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    let id = r.body["id"].as_str().expect("id").to_owned();
    let r = ctx
        .app
        .call_raw(
            Method::PUT,
            &format!("/image/v2/images/{id}/file"),
            &[
                ("x-auth-token", ctx.token.as_str()),
                ("content-type", "application/octet-stream"),
            ],
            Some(vec![0u8; 1024]),
        )
        .await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    id
}

/// The box's hypervisor id at the context's microversion.
async fn hypervisor_id(ctx: &Ctx) -> String {
    let r = ctx.call(Method::GET, "/os-hypervisors", None).await;
    match &r.body["hypervisors"][0]["id"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The service request bodies name Nova's test host; ours is the box.
fn on_this_host(body: Option<Value>) -> Option<Value> {
    body.map(|mut b| {
        if b.get("host").is_some() {
            b["host"] = json!("box");
        }
        b
    })
}

/// Sends the request behind one sample of the operator's areas (and the instance action
/// time filters); `Err` names why a sample has no request here.
async fn operator_sample(
    ctx: &Ctx,
    area: &str,
    name: &str,
    dir: &Path,
    area_dir: &Path,
    min: u32,
) -> Result<common::Resp, &'static str> {
    let req = |n: &str| find_req(dir, area_dir, n);
    let sample = read(&dir.join(name));
    let paged = |key: &str| sample.get(key).is_some();
    Ok(match (area, name) {
        ("os-instance-actions", n) => {
            let id = ctx.server(false).await;
            let q = if n.contains("changes-before") {
                "changes-before=2999-01-01T00:00:00Z"
            } else {
                "changes-since=2000-01-01T00:00:00Z"
            };
            ctx.call(
                Method::GET,
                &format!("/servers/{id}/os-instance-actions?{q}"),
                None,
            )
            .await
        }
        ("os-server-groups", n) => {
            let c = ctx
                .call(
                    Method::POST,
                    "/os-server-groups",
                    req("server-groups-post-req.json"),
                )
                .await;
            if n == "server-groups-post-resp.json" {
                return Ok(c);
            }
            let gid = c.body["server_group"]["id"]
                .as_str()
                .unwrap_or("x")
                .to_owned();
            if n == "server-groups-get-resp.json" {
                ctx.call(Method::GET, &format!("/os-server-groups/{gid}"), None)
                    .await
            } else {
                ctx.call(Method::GET, "/os-server-groups", None).await
            }
        }
        ("os-hypervisors", n) => {
            if n.contains("with-servers") {
                ctx.server(false).await;
            }
            let hid = hypervisor_id(ctx).await;
            let limit = if paged("hypervisors_links") {
                "?limit=1"
            } else {
                ""
            };
            match n {
                "hypervisors-list-resp.json" => {
                    ctx.call(Method::GET, &format!("/os-hypervisors{limit}"), None)
                        .await
                }
                "hypervisors-detail-resp.json" => {
                    ctx.call(Method::GET, &format!("/os-hypervisors/detail{limit}"), None)
                        .await
                }
                "hypervisors-detail-with-servers-resp.json" => {
                    ctx.call(
                        Method::GET,
                        "/os-hypervisors/detail?with_servers=true",
                        None,
                    )
                    .await
                }
                "hypervisors-show-resp.json" => {
                    ctx.call(Method::GET, &format!("/os-hypervisors/{hid}"), None)
                        .await
                }
                "hypervisors-show-with-servers-resp.json" => {
                    ctx.call(
                        Method::GET,
                        &format!("/os-hypervisors/{hid}?with_servers=true"),
                        None,
                    )
                    .await
                }
                "hypervisors-statistics-resp.json" => {
                    ctx.call(Method::GET, "/os-hypervisors/statistics", None)
                        .await
                }
                "hypervisors-uptime-resp.json" => {
                    ctx.call(Method::GET, &format!("/os-hypervisors/{hid}/uptime"), None)
                        .await
                }
                "hypervisors-search-resp.json" if min >= 53 => {
                    ctx.call(
                        Method::GET,
                        "/os-hypervisors?hypervisor_hostname_pattern=box",
                        None,
                    )
                    .await
                }
                "hypervisors-search-resp.json" => {
                    ctx.call(Method::GET, "/os-hypervisors/box/search", None)
                        .await
                }
                "hypervisors-with-servers-resp.json" | "hypervisors-without-servers-resp.json"
                    if min >= 53 =>
                {
                    let with = n == "hypervisors-with-servers-resp.json";
                    ctx.call(
                        Method::GET,
                        &format!("/os-hypervisors?with_servers={with}"),
                        None,
                    )
                    .await
                }
                _ => {
                    ctx.call(Method::GET, "/os-hypervisors/box/servers", None)
                        .await
                }
            }
        }
        ("os-services", "services-list-get-resp.json") if min == 69 => {
            return Err("down-cell records: one box has no cells");
        }
        ("os-services", "services-list-get-resp.json") => {
            ctx.call(Method::GET, "/os-services", None).await
        }
        ("os-services", n) => {
            let req_name = n.replace("-resp.json", "-req.json");
            let body = on_this_host(req(&req_name));
            if min >= 53 {
                let list = ctx
                    .call(Method::GET, "/os-services?binary=nova-compute", None)
                    .await;
                let id = list.body["services"][0]["id"]
                    .as_str()
                    .unwrap_or("x")
                    .to_owned();
                ctx.call(Method::PUT, &format!("/os-services/{id}"), body)
                    .await
            } else {
                let action = match n {
                    "service-disable-log-put-resp.json" => "disable-log-reason",
                    "service-disable-put-resp.json" => "disable",
                    "service-enable-put-resp.json" => "enable",
                    _ => "force-down",
                };
                ctx.call(Method::PUT, &format!("/os-services/{action}"), body)
                    .await
            }
        }
        ("os-simple-tenant-usage", n) => {
            ctx.server(false).await;
            let now = chrono::Utc::now();
            let start = (now - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%S");
            let end = (now + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%S");
            let mut q = format!("start={start}&end={end}");
            if paged("tenant_usages_links") || paged("tenant_usage_links") {
                q.push_str("&limit=1");
            }
            match n {
                "simple-tenant-usage-get-specific.json" => {
                    ctx.call(
                        Method::GET,
                        &format!("/os-simple-tenant-usage/{}?{q}", ctx.project),
                        None,
                    )
                    .await
                }
                "simple-tenant-usage-get.json" => {
                    ctx.call(Method::GET, &format!("/os-simple-tenant-usage?{q}"), None)
                        .await
                }
                _ => {
                    ctx.call(
                        Method::GET,
                        &format!("/os-simple-tenant-usage?{q}&detailed=1"),
                        None,
                    )
                    .await
                }
            }
        }
        ("os-migrations", n) => {
            if n.contains("with-limit") || n.contains("with-marker") {
                return Err("an empty migration list has no pages");
            }
            let q = if n.contains("changes-before") {
                "?changes-before=2999-01-01T00:00:00Z"
            } else if n.contains("changes-since") {
                "?changes-since=2000-01-01T00:00:00Z"
            } else if n.contains("user-or-project") {
                "?project_id=p"
            } else {
                ""
            };
            ctx.call(Method::GET, &format!("/os-migrations{q}"), None)
                .await
        }
        ("server-migrations", "migrations-index.json") => {
            let id = ctx.server(false).await;
            ctx.call(Method::GET, &format!("/servers/{id}/migrations"), None)
                .await
        }
        ("server-migrations", _) => {
            return Err("live migration: one box has no other host");
        }
        ("os-server-diagnostics", _) => {
            let id = ctx.server(false).await;
            ctx.call(Method::GET, &format!("/servers/{id}/diagnostics"), None)
                .await
        }
        ("images", n) => {
            // Nova's sample images carry `auto_disk_config` only where they show a disk config.
            let id = glance_image(ctx, n != "images-details-get-resp.json").await;
            let m = format!("/images/{id}/metadata");
            match n {
                "image-get-resp.json" => {
                    ctx.call(Method::GET, &format!("/images/{id}"), None).await
                }
                "images-list-get-resp.json" => ctx.call(Method::GET, "/images", None).await,
                "images-details-get-resp.json" => {
                    ctx.call(Method::GET, "/images/detail", None).await
                }
                "image-metadata-get-resp.json" => ctx.call(Method::GET, &m, None).await,
                "image-metadata-post-resp.json" => {
                    ctx.call(Method::POST, &m, req("image-metadata-post-req.json"))
                        .await
                }
                "image-metadata-put-resp.json" => {
                    ctx.call(Method::PUT, &m, req("image-metadata-put-req.json"))
                        .await
                }
                "image-meta-key-get.json" => {
                    ctx.call(Method::GET, &format!("{m}/architecture"), None)
                        .await
                }
                "image-meta-key-put-resp.json" => {
                    let body = req("image-meta-key-put-req.json");
                    let key = body
                        .as_ref()
                        .and_then(|b| b["meta"].as_object())
                        .and_then(|o| o.keys().next().cloned())
                        .unwrap_or_default();
                    ctx.call(Method::PUT, &format!("{m}/{key}"), body).await
                }
                _ => return Err("no mapping"),
            }
        }
        ("os-aggregates", n) => {
            if n.contains("images") {
                return Err("the image cache of an aggregate is not served");
            }
            let c = ctx
                .call(
                    Method::POST,
                    "/os-aggregates",
                    req("aggregate-post-req.json"),
                )
                .await;
            if n == "aggregate-post-resp.json" {
                return Ok(c);
            }
            assert_eq!(c.status.as_u16(), 200, "{}", c.text);
            let agg = format!("/os-aggregates/{}", c.body["aggregate"]["id"]);
            let action = format!("{agg}/action");
            // The sample's host is Nova's; the box has its own.
            let add = json!({"add_host": {"host": "box"}});
            match n {
                "aggregate-update-post-resp.json" => {
                    ctx.call(Method::PUT, &agg, req("aggregate-update-post-req.json"))
                        .await
                }
                "aggregates-add-host-post-resp.json" => {
                    ctx.call(Method::POST, &action, Some(add)).await
                }
                "aggregates-get-resp.json" => ctx.call(Method::GET, &agg, None).await,
                "aggregates-list-get-resp.json" => {
                    ctx.call(Method::POST, &action, Some(add)).await;
                    ctx.call(Method::GET, "/os-aggregates", None).await
                }
                "aggregates-metadata-post-resp.json" => {
                    ctx.call(
                        Method::POST,
                        &action,
                        req("aggregate-metadata-post-req.json"),
                    )
                    .await
                }
                "aggregates-remove-host-post-resp.json" => {
                    ctx.call(Method::POST, &action, Some(add)).await;
                    ctx.call(
                        Method::POST,
                        &action,
                        Some(json!({"remove_host": {"host": "box"}})),
                    )
                    .await
                }
                _ => return Err("no mapping"),
            }
        }
        _ => return Err("no mapping"),
    })
}
