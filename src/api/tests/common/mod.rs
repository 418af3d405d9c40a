//! An in-process onebox for API tests: the real router on an in-memory database, driven
//! without a socket.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use api::{ApiConfig, AppState};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use identity::bootstrap::{Account, bootstrap};
use identity::{Identity, IdentityConfig, LockoutConfig};
use model::Persona;
use serde_json::{Value, json};
use tower::ServiceExt;

pub const ADMIN_PW: &str = "admin-secret";
pub const DEMO_PW: &str = "demo-secret";

pub struct TestApp {
    pub app: Router,
    /// What the app was built from.
    pub state: AppState,
    pub identity: Identity,
    pub compute: compute::Compute,
    pub driver: Arc<driver::fake::FakeDriver>,
    /// The database, for tests that put a server where only a crash could leave it.
    pub store: store::Store,
    pub images: image::Images,
    /// The stand-in catalog compute uses (unless built with [`TestApp::with_glance`]); it
    /// holds server snapshots in memory.
    pub standin: compute::StandinImages,
    /// The data dir; the image store is `images/` in it. Removed when the app is dropped.
    pub data_dir: tempfile::TempDir,
    /// The networking service the app serves.
    pub network: network::Network,
}

/// The one image the test box can boot.
pub const IMAGE: &str = "70a599e0-31e7-49b7-b260-868f441e862b";

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn fast_config() -> IdentityConfig {
    IdentityConfig {
        token_ttl: Duration::from_secs(3600),
        lockout: LockoutConfig {
            threshold: 3,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(2),
        },
        limits: identity::AuthLimits::default(),
    }
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_config(fast_config()).await
    }

    pub async fn with_config(cfg: IdentityConfig) -> Self {
        Self::build(cfg, image::DEFAULT_QUOTA_BYTES).await
    }

    /// An app whose projects may each store `quota_bytes` of image data.
    pub async fn with_image_quota(quota_bytes: u64) -> Self {
        Self::build(fast_config(), quota_bytes).await
    }

    /// An app whose compute service has these settings (host is always `box`).
    pub async fn with_compute(cc: compute::ComputeConfig) -> Self {
        Self::build_with(fast_config(), image::DEFAULT_QUOTA_BYTES, cc, false).await
    }

    /// An app whose networking service has an external network (its `public` network made
    /// as `onebox serve` makes it).
    pub async fn with_external(edge: network::EdgeConfig, host: Arc<dyn network::Host>) -> Self {
        let mut app = Self::new().await;
        let n = network::Network::new(app.store.clone(), host).with_edge(edge);
        n.ensure_public().await.expect("public network");
        app.app = api::app(AppState {
            network: n.clone(),
            ..app.state.clone()
        });
        app.network = n;
        app
    }

    /// An app whose compute service finds images in, and snapshots into, the real image
    /// service (Glance API), with `quota_bytes` per project.
    pub async fn with_glance(quota_bytes: u64) -> Self {
        Self::build_with(
            fast_config(),
            quota_bytes,
            compute::ComputeConfig::default(),
            true,
        )
        .await
    }

    async fn build(cfg: IdentityConfig, quota_bytes: u64) -> Self {
        Self::build_with(cfg, quota_bytes, compute::ComputeConfig::default(), false).await
    }

    async fn build_with(
        cfg: IdentityConfig,
        quota_bytes: u64,
        cc: compute::ComputeConfig,
        glance: bool,
    ) -> Self {
        let store = store::Store::open_in_memory().expect("store");
        let data_dir = tempfile::tempdir().expect("data dir");
        let images = image::Images::open(
            store.clone(),
            image::ImageConfig {
                dir: data_dir.path().join("images"),
                quota_bytes,
                qemu_img: "qemu-img".into(),
            },
        )
        .await
        .expect("image store");
        let identity = Identity::new(store.clone(), cfg);
        let bm_store = store.clone();
        let driver = Arc::new(driver::fake::FakeDriver::new());
        let standin = compute::StandinImages::new(vec![compute::ImageInfo {
            id: IMAGE.into(),
            name: "cirros".into(),
            min_disk_gb: 0,
            min_ram_mb: 0,
            size_bytes: 0,
            virtual_size_bytes: None,
            properties: Vec::new(),
        }]);
        let catalog: Arc<dyn compute::ImageCatalog> = if glance {
            Arc::new(images.clone())
        } else {
            Arc::new(standin.clone())
        };
        let compute = compute::Compute::new(
            store.clone(),
            driver.clone(),
            catalog,
            compute::ComputeConfig {
                host: "box".into(),
                ..cc
            },
        );
        compute.ensure_default_flavors().await.expect("flavors");
        bootstrap(
            &identity,
            &[
                Account {
                    name: "admin".into(),
                    role: Persona::Admin,
                    password: Some(ADMIN_PW.into()),
                },
                Account {
                    name: "demo".into(),
                    role: Persona::Member,
                    password: Some(DEMO_PW.into()),
                },
            ],
        )
        .await
        .expect("bootstrap");
        let state = AppState {
            identity: identity.clone(),
            compute: compute.clone(),
            images: images.clone(),
            baremetal: baremetal::Baremetal::new(
                bm_store,
                baremetal::BaremetalConfig {
                    ipmi_timeout: std::time::Duration::from_millis(200),
                    ipmi_retries: 1,
                    console_dir: data_dir.path().join("consoles"),
                },
            ),
            network: network::Network::new(store.clone(), Arc::new(network::NoHost)),
            volumes: volume::Volumes::new(
                store.clone(),
                Arc::new(
                    volume::FileBackend::new(data_dir.path().join("volumes"))
                        .expect("volume backend"),
                ),
            ),
            cfg: Arc::new(ApiConfig {
                public_url: Some("http://onebox.test".into()),
                region: "RegionOne".into(),
                console: Default::default(),
            }),
        };
        Self {
            network: state.network.clone(),
            state: state.clone(),
            app: api::app(state),
            identity,
            compute,
            driver,
            store,
            images,
            standin,
            data_dir,
        }
    }

    /// Sends a request; `body` is sent as JSON when given.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Resp {
        let raw = body.map(|b| b.to_string().into_bytes());
        self.call_raw(method, uri, headers, raw).await
    }

    /// Sends a request as if it came over a connection from `from` (an IP address).
    pub async fn call_from(
        &self,
        from: &str,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        let ip: std::net::IpAddr = from.parse().expect("an IP address");
        let mut req = b
            .body(body.map_or_else(Body::empty, |v| Body::from(v.to_string())))
            .expect("request");
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::new(
                ip, 40000,
            )));
        self.send(req).await
    }

    /// A password login (unscoped unless `project`) from the address `from`.
    pub async fn login_from(
        &self,
        from: &str,
        user: &str,
        password: &str,
        project: Option<&str>,
    ) -> Resp {
        let mut auth = json!({
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": user, "domain": {"name": "Default"}, "password": password}}
            }
        });
        if let Some(p) = project {
            auth["scope"] = json!({"project": {"name": p, "domain": {"id": "default"}}});
        }
        self.call_from(
            from,
            Method::POST,
            "/identity/v3/auth/tokens",
            &[],
            Some(json!({ "auth": auth })),
        )
        .await
    }

    pub async fn call_raw(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(uri);
        let has_ct = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if body.is_some() && !has_ct {
            b = b.header("content-type", "application/json");
        }
        let req = b
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .expect("request");
        self.send(req).await
    }

    /// Sends a request with any body (a stream, for instance).
    pub async fn call_body(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(body).expect("request")).await
    }

    async fn send(&self, req: Request<Body>) -> Resp {
        let resp = self.app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, uri: &str, token: Option<&str>) -> Resp {
        let h: Vec<(&str, &str)> = token.map(|t| ("x-auth-token", t)).into_iter().collect();
        self.call(Method::GET, uri, &h, None).await
    }

    /// A project-scoped password token; panics unless it is issued.
    pub async fn token(&self, user: &str, password: &str, project: &str) -> String {
        let r = self.login(user, password, Some(project)).await;
        assert_eq!(r.status, StatusCode::CREATED, "login {user}: {}", r.text);
        r.header("x-subject-token")
            .expect("subject token")
            .to_owned()
    }

    pub async fn login(&self, user: &str, password: &str, project: Option<&str>) -> Resp {
        let mut auth = json!({
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": user, "domain": {"name": "Default"}, "password": password}}
            }
        });
        match project {
            Some(p) => auth["scope"] = json!({"project": {"name": p, "domain": {"id": "default"}}}),
            None => auth["scope"] = json!("unscoped"),
        }
        self.call(
            Method::POST,
            "/identity/v3/auth/tokens",
            &[],
            Some(json!({ "auth": auth })),
        )
        .await
    }

    pub async fn admin(&self) -> String {
        self.token("admin", ADMIN_PW, "admin").await
    }

    pub async fn demo(&self) -> String {
        self.token("demo", DEMO_PW, "demo").await
    }

    /// Creates a user with `role` on a new project of the same name; returns (user id,
    /// project id, token).
    pub async fn user_with_role(&self, name: &str, role: &str) -> (String, String, String) {
        let admin = self.admin().await;
        let h = [("x-auth-token", admin.as_str())];
        let p = self
            .call(
                Method::POST,
                "/identity/v3/projects",
                &h,
                Some(json!({"project": {"name": name, "domain_id": "default"}})),
            )
            .await;
        assert_eq!(p.status, StatusCode::CREATED, "{}", p.text);
        let pid = p.body["project"]["id"].as_str().expect("pid").to_owned();
        let u = self
            .call(
                Method::POST,
                "/identity/v3/users",
                &h,
                Some(json!({"user": {"name": name, "password": "pw-".to_owned() + name}})),
            )
            .await;
        assert_eq!(u.status, StatusCode::CREATED, "{}", u.text);
        let uid = u.body["user"]["id"].as_str().expect("uid").to_owned();
        let roles = self
            .get(&format!("/identity/v3/roles?name={role}"), Some(&admin))
            .await;
        let rid = roles.body["roles"][0]["id"]
            .as_str()
            .expect("rid")
            .to_owned();
        let g = self
            .call(
                Method::PUT,
                &format!("/identity/v3/projects/{pid}/users/{uid}/roles/{rid}"),
                &h,
                None,
            )
            .await;
        assert_eq!(g.status, StatusCode::NO_CONTENT, "{}", g.text);
        let token = self.token(name, &format!("pw-{name}"), name).await;
        (uid, pid, token)
    }
}

/// Asserts a Nova fault: the status and `{"<name>": {"code", "message"}}`.
pub fn assert_compute_fault(r: &Resp, status: u16, name: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    let f = &r.body[name];
    assert_eq!(f["code"], status, "fault {name} in {}", r.text);
    assert!(f["message"].is_string(), "{}", r.text);
    assert_eq!(r.body.as_object().map(|o| o.len()), Some(1), "{}", r.text);
}

/// Asserts a Keystone error: `{"error": {"code", "message", "title"}}`.
pub fn assert_identity_error(r: &Resp, status: u16) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    let e = &r.body["error"];
    assert_eq!(e["code"], status, "{}", r.text);
    assert!(
        e["message"].is_string() && e["title"].is_string(),
        "{}",
        r.text
    );
}

/// A request to the networking API (`/network/v2.0{uri}`) with `token`.
pub async fn neutron(
    app: &TestApp,
    m: Method,
    uri: &str,
    token: &str,
    body: Option<Value>,
) -> Resp {
    let h = [("x-auth-token", token)];
    app.call(m, &format!("/network/v2.0{uri}"), &h, body).await
}

/// Asserts a fault in Neutron's shape: the status, `type`, a message and an empty `detail`.
pub fn neutron_error(r: &Resp, status: u16, kind: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(r.body["NeutronError"]["type"], kind, "{}", r.text);
    assert!(r.body["NeutronError"]["message"].is_string(), "{}", r.text);
    assert_eq!(r.body["NeutronError"]["detail"], "", "{}", r.text);
}

/// A caller of the Compute API at one microversion.
pub struct Api<'a> {
    pub app: &'a TestApp,
    pub token: String,
    pub version: String,
}

impl<'a> Api<'a> {
    /// A request to `/compute/v2.1{path}` with the token and microversion.
    pub async fn call(&self, m: Method, path: &str, body: Option<Value>) -> Resp {
        self.app
            .call(
                m,
                &format!("/compute/v2.1{path}"),
                &[
                    ("x-auth-token", &self.token),
                    (
                        "openstack-api-version",
                        &format!("compute {}", self.version),
                    ),
                ],
                body,
            )
            .await
    }

    /// The same caller at another microversion.
    pub fn at(&self, version: &str) -> Api<'a> {
        Api {
            app: self.app,
            token: self.token.clone(),
            version: version.into(),
        }
    }
}

/// A server of `api`'s project from the stand-in image with no network, built; its id.
pub async fn server_without_network(api: &Api<'_>, name: &str) -> String {
    let r = api
        .at("2.37")
        .call(
            Method::POST,
            "/servers",
            Some(serde_json::json!({"server": {"name": name, "imageRef": IMAGE, "flavorRef": "1", "networks": "none"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    api.app.compute.idle().await;
    r.body["server"]["id"].as_str().expect("id").to_owned()
}
