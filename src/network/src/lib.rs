//! The networking service (Neutron's resources): networks, subnets, ports and their
//! addresses, security groups, routers, floating IPs and quotas, decided here and kept by
//! `store::network`.
//!
//! Every change is one transaction on the store's writer: the policy check, the quota
//! check, the address allocation and the rows it writes. After a change that moves what the
//! kernel must enforce (ports, groups, rules, routers, floating IPs), [`Network::resync`]
//! hands the whole new state to the [`Host`], which applies it in one transaction of its own.

mod edge;
mod floating_ips;
mod networks;
mod ports;
mod quotas;
mod routers;
mod security_groups;
mod subnets;
mod tags;

use std::sync::Arc;

pub use edge::{EdgeConfig, EdgeRecords};
pub use floating_ips::{FloatingIp, FloatingIpCreate, FloatingIpUpdate};
use model::network::{PortRec, SgRuleRec};
use model::{Context, Persona, ProjectId};
pub use networks::{NetworkCreate, NetworkUpdate};
pub use ports::{FixedIpRequest, PortCreate, PortUpdate};
pub use routers::{GatewayRequest, InterfaceInfo, RouterCreate, RouterUpdate};
pub use security_groups::{RuleCreate, SecurityGroupCreate, SecurityGroupUpdate, normalize_prefix};
pub use store::network::{PortQuery, Scope};
pub use subnets::{SubnetCreate, SubnetUpdate};
pub use tags::Tagged;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 404, with Neutron's type (`NetworkNotFound`, …).
    #[error("{message}")]
    NotFound { kind: &'static str, message: String },
    /// 400, with Neutron's type (`InvalidInput`, `BadRequest`, …).
    #[error("{message}")]
    BadRequest { kind: &'static str, message: String },
    /// 409, with Neutron's type (`NetworkInUse`, `IpAddressAlreadyAllocated`, …).
    #[error("{message}")]
    Conflict { kind: &'static str, message: String },
    /// 403 `PolicyNotAuthorized`.
    #[error("{0}")]
    Forbidden(String),
    /// 409 `OverQuota`.
    #[error("Quota exceeded for resources: ['{0}'].")]
    OverQuota(String),
    #[error(transparent)]
    Store(#[from] store::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::BadRequest {
            kind: "InvalidInput",
            message: format!("Invalid input for operation: {}", message.into()),
        }
    }

    pub fn bad(kind: &'static str, message: impl Into<String>) -> Self {
        Error::BadRequest {
            kind,
            message: message.into(),
        }
    }

    pub fn conflict(kind: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict {
            kind,
            message: message.into(),
        }
    }

    pub fn not_found(kind: &'static str, message: impl Into<String>) -> Self {
        Error::NotFound {
            kind,
            message: message.into(),
        }
    }
}

/// Rolls back a write with a networking error.
pub(crate) fn abort(e: Error) -> store::Error {
    store::abort(e)
}

/// A write's outcome: a networking error raised inside it comes back out as itself.
pub(crate) fn unwrap_abort<T>(r: store::Result<T>) -> Result<T> {
    r.map_err(|e| match e {
        store::Error::Abort(b) => match b.downcast::<Error>() {
            Ok(e) => *e,
            Err(b) => Error::Store(store::Error::Abort(b)),
        },
        other => Error::Store(other),
    })
}

/// What the kernel must enforce: every port with port security and groups, and every rule.
#[derive(Clone, Debug, Default)]
pub struct Enforcement {
    pub ports: Vec<PortRec>,
    pub rules: Vec<SgRuleRec>,
}

/// The host side: applies security groups, routers and floating IPs to the kernel. The
/// fake-driver box has none.
pub trait Host: Send + Sync {
    fn apply_security_groups(&self, state: &Enforcement) -> std::result::Result<(), String>;
    /// Makes the host's routers and floating IPs say `state` (the whole of it, every time).
    fn apply_edge(&self, state: &EdgeRecords) -> std::result::Result<(), String>;
    /// Makes the plugged ports' pinning (address, allowed address pairs, port security) and
    /// their subnets' DHCP (DNS servers, host routes, `enable_dhcp`) say what the records
    /// say: after a port or subnet update, and for all of them at start.
    fn apply_plugged(&self, _ports: &[Plugged]) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// A port plugged into a server, with the subnet of its first address.
#[derive(Clone, Debug)]
pub struct Plugged {
    pub port: PortRec,
    pub subnet: model::network::SubnetRec,
}

/// A host that enforces nothing (tests, a box without real backends).
pub struct NoHost;

impl Host for NoHost {
    fn apply_security_groups(&self, _: &Enforcement) -> std::result::Result<(), String> {
        Ok(())
    }
    fn apply_edge(&self, _: &EdgeRecords) -> std::result::Result<(), String> {
        Ok(())
    }
}

#[derive(Clone)]
pub struct Network {
    store: store::Store,
    host: Arc<dyn Host>,
    /// Serialises kernel updates so a newer state never lands before an older one; holds
    /// the edge state last applied (so an unchanged one is not written again).
    sync: Arc<tokio::sync::Mutex<Option<EdgeRecords>>>,
    /// The external network onebox was given (`[network] external_cidr`, …), if any.
    edge: Option<Arc<EdgeConfig>>,
    /// The id of the `public` network made from it.
    public: Arc<std::sync::RwLock<Option<String>>>,
    /// The prefixes the host routes, which a project's default network avoids.
    host_routes: Arc<dyn Fn() -> Vec<(std::net::Ipv4Addr, u8)> + Send + Sync>,
}

impl Network {
    pub fn new(store: store::Store, host: Arc<dyn Host>) -> Self {
        Self {
            store,
            host,
            sync: Arc::new(tokio::sync::Mutex::new(None)),
            edge: None,
            public: Arc::new(std::sync::RwLock::new(None)),
            host_routes: Arc::new(Vec::new),
        }
    }

    /// The same service with the host's routes read by `routes` (a box with real
    /// backends: a project's default network must not take an address range the host
    /// routes elsewhere).
    pub fn with_host_routes(
        mut self,
        routes: impl Fn() -> Vec<(std::net::Ipv4Addr, u8)> + Send + Sync + 'static,
    ) -> Self {
        self.host_routes = Arc::new(routes);
        self
    }

    /// The same service with an external network (see [`Network::ensure_public`]).
    pub fn with_edge(mut self, edge: EdgeConfig) -> Self {
        self.edge = Some(Arc::new(edge));
        self
    }

    pub fn store(&self) -> &store::Store {
        &self.store
    }

    /// Re-applies what the kernel must enforce from the database (after every change of
    /// ports, groups, rules, routers or floating IPs, and at start): the security groups,
    /// and the edge when it changed since it was last applied. A failure is logged: the
    /// database is the truth and the next change or start applies it again.
    pub async fn resync(&self) -> Result<()> {
        let mut last = self.sync.lock().await;
        let (ports, rules) = self.store.read(store::network::enforcement_state).await?;
        let host = self.host.clone();
        let state = Enforcement { ports, rules };
        let r = tokio::task::spawn_blocking(move || host.apply_security_groups(&state))
            .await
            .map_err(|e| Error::Store(store::Error::Join(e.to_string())))?;
        if let Err(e) = r {
            tracing::error!(error = %e, "applying security groups failed");
        }
        self.apply_edge(&mut last).await
    }

    /// Applies the records of plugged ports (all of them, a subnet's, or one port's) to the
    /// host: their pinning and their subnets' DHCP. Failures are logged (the records stand;
    /// the next start applies them again).
    pub async fn apply_plugged(&self, subnet: Option<&str>, port: Option<&str>) -> Result<()> {
        let (s, p) = (subnet.map(str::to_owned), port.map(str::to_owned));
        let rows = self
            .store
            .read(move |c| store::network::plugged_ports(c, s.as_deref(), p.as_deref()))
            .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let plugged: Vec<Plugged> = rows
            .into_iter()
            .map(|(port, subnet)| Plugged { port, subnet })
            .collect();
        let host = self.host.clone();
        let r = tokio::task::spawn_blocking(move || host.apply_plugged(&plugged))
            .await
            .map_err(|e| Error::Store(store::Error::Join(e.to_string())))?;
        if let Err(e) = r {
            tracing::error!(error = %e, "applying plugged ports failed");
        }
        Ok(())
    }

    /// Applies the edge (routers, floating IPs) when it differs from what was last applied:
    /// what a periodic check calls, as compute's deletes free floating IPs without this
    /// service.
    pub async fn resync_edge(&self) -> Result<()> {
        let mut last = self.sync.lock().await;
        self.apply_edge(&mut last).await
    }

    async fn apply_edge(&self, last: &mut Option<EdgeRecords>) -> Result<()> {
        let rows = self.store.read(store::network::edge_state).await?;
        let state = EdgeRecords {
            public_network: self.public_id(),
            rows,
        };
        if last.as_ref() == Some(&state) {
            return Ok(());
        }
        let host = self.host.clone();
        let s = state.clone();
        let r = tokio::task::spawn_blocking(move || host.apply_edge(&s))
            .await
            .map_err(|e| Error::Store(store::Error::Join(e.to_string())))?;
        match r {
            Ok(()) => *last = Some(state),
            Err(e) => {
                tracing::error!(error = %e, "applying routers and floating IPs failed");
                *last = None;
            }
        }
        Ok(())
    }

    pub(crate) fn public_id(&self) -> Option<String> {
        self.public.read().ok().and_then(|g| g.clone())
    }
}

/// The scope a caller reads in.
pub fn scope_of(ctx: &Context) -> Scope {
    match (&ctx.project_id, ctx.is_admin()) {
        (_, true) => Scope::All,
        (Some(p), false) => Scope::Project(p.clone()),
        (None, false) => Scope::Project(ProjectId::new("")),
    }
}

/// The project a caller creates in: its own, or for an admin the one it names.
pub(crate) fn owner_for(ctx: &Context, asked: Option<&str>) -> Result<ProjectId> {
    let own = ctx.project_id.clone().unwrap_or_else(|| ProjectId::new(""));
    match asked {
        Some(p) if p != own.as_str() => {
            if ctx.is_admin() {
                Ok(ProjectId::new(p))
            } else {
                Err(Error::Forbidden(
                    "Only admins may create resources in another project".into(),
                ))
            }
        }
        _ => Ok(own),
    }
}

/// Readers may not write.
pub(crate) fn may_write(ctx: &Context, what: &str) -> Result<()> {
    if ctx.has(Persona::Member) {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "rule:{what} is disallowed by policy"
        )))
    }
}

pub(crate) fn now_stamp() -> model::network::Stamp {
    let t = chrono::Utc::now();
    model::network::Stamp {
        revision: 1,
        created_at: t,
        updated_at: t,
    }
}

pub(crate) fn quota(
    c: &store::Connection,
    project: &ProjectId,
    resource: &str,
) -> store::Result<()> {
    if store::network::net_over_quota(c, project, resource, 1)?.is_some() {
        return Err(abort(Error::OverQuota(resource.to_owned())));
    }
    Ok(())
}
