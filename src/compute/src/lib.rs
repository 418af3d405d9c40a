//! The compute service: what a server is, what may happen to it and when, and the background
//! tasks that make it so through a [`driver::ComputeDriver`].
//!
//! The API layer validates requests and renders responses; everything between (policy on
//! resources, quotas, the state machine, the task runner, instance actions) is here. Every
//! state change goes through the store in one transaction, and a server's `task_state` is the
//! lock that keeps one task per server: a task moves a server only from the state it expects.

pub mod actions;
pub mod aggregates;
pub mod block_devices;
mod common;
pub mod consoles;
pub mod flavors;
pub mod groups;
mod imagefit;
pub mod images;
mod interfaces;
pub mod keypairs;
mod metadata;
mod network;
pub mod operator;
mod password;
mod periodic;
pub mod quotas;
mod rebuild;
pub mod reconcile;
mod rescue;
mod resize;
mod security_groups;
mod server_metadata;
mod server_tags;
pub mod servers;
mod snapshots;
mod soft_delete;
mod steps;
mod sysmeta;
mod tasks;
pub mod volumes;

use std::sync::Arc;

use driver::ComputeDriver;
use store::Store;

pub use images::{
    CatalogError, ImageCatalog, ImageInfo, SnapshotImage, StandinImages, StoredSnapshot,
};
pub use model::compute::{FlavorSortKey, ServerFilter, ServerSortKey};
pub use network::NicRequest;
pub use rebuild::RebuildRequest;
pub use servers::{CreateRequest, NetworkRequest, ServerQuery};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A quota would be exceeded (Nova answers 403).
    #[error("{0}")]
    QuotaExceeded(String),
    /// The backend cannot do this (Nova answers 501 for driver gaps).
    #[error("{0}")]
    NotImplemented(String),
    #[error(transparent)]
    Store(store::Error),
    #[error("background task failed: {0}")]
    Task(String),
}

impl From<store::Error> for Error {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::Conflict(m) => Error::Conflict(m),
            store::Error::Abort(inner) => match inner.downcast::<Error>() {
                Ok(e) => *e,
                Err(_) => Error::Task("transaction aborted".into()),
            },
            other => Error::Store(other),
        }
    }
}

/// Rolls back the current store transaction with a compute error.
pub(crate) fn abort(e: Error) -> store::Error {
    store::abort(e)
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Clone, Debug)]
pub struct ComputeConfig {
    /// The name of this box as Nova's `host` (and hypervisor hostname).
    pub host: String,
    /// The one availability zone of the box.
    pub availability_zone: String,
    /// How many server tasks may run at once; one project's tasks hold at most half of them
    /// (at least one).
    pub task_concurrency: usize,
    /// Nova's `[api] max_limit`: the most items one page holds.
    pub max_limit: usize,
    /// Nova's `resize_confirm_window`: seconds after which a resize awaiting confirmation
    /// is confirmed automatically; 0 never.
    pub resize_confirm_window_secs: u64,
    /// Nova's `shelved_offload_time`: seconds a shelved server keeps its backend instance
    /// before it is offloaded; 0 at once, -1 never.
    pub shelved_offload_time: i64,
    /// Nova's `reclaim_instance_interval`: with a value above 0, a delete only soft-deletes
    /// (the server can be restored) and the server is reclaimed that many seconds later.
    pub reclaim_instance_interval: u64,
    /// New project networks avoid the /16s the host already routes (see `network`). Off
    /// where nothing reaches the host's networking (the fake driver).
    pub avoid_host_routes: bool,
    /// Nova's `image_cache_manager_interval`: every this many seconds each backend prunes
    /// its image cache; 0 never.
    pub image_cache_interval_secs: u64,
    /// Nova's `remove_unused_original_minimum_age_seconds`: a cached image no instance uses
    /// is removed once it has been unused this long.
    pub image_cache_min_age_secs: u64,
    /// The largest root disk, in GiB, an admin's server on a `disk=0` flavor gets (such a
    /// disk is as large as its image; members may not use `disk=0` flavors at all).
    pub zero_disk_max_gb: u64,
    /// How long a console URL's token may be used (`[console] token_ttl_secs`).
    pub console_token_ttl_secs: u64,
}

impl Default for ComputeConfig {
    fn default() -> Self {
        Self {
            host: "onebox".into(),
            availability_zone: "nova".into(),
            task_concurrency: 8,
            max_limit: 1000,
            resize_confirm_window_secs: 0,
            shelved_offload_time: 0,
            reclaim_instance_interval: 0,
            avoid_host_routes: false,
            image_cache_interval_secs: 2400,
            image_cache_min_age_secs: 86400,
            zero_disk_max_gb: 20,
            console_token_ttl_secs: 600,
        }
    }
}

#[derive(Clone)]
pub struct Compute {
    store: Store,
    backends: driver::Backends,
    images: Arc<dyn ImageCatalog>,
    cfg: Arc<ComputeConfig>,
    tasks: Arc<tasks::Runner>,
    /// When the image caches are next pruned (see `run_periodic_tasks`).
    image_cache_due: Arc<std::sync::Mutex<std::time::Instant>>,
    /// Told when servers' ports change (see [`Compute::set_ports_hook`]).
    ports_hook: Arc<std::sync::OnceLock<PortsHook>>,
    /// Console tokens and the consoles with a session open.
    consoles: Arc<consoles::Registry>,
    /// The volume service volume-backed servers' builds use (see
    /// [`Compute::set_volume_provider`]).
    volume_provider: Arc<std::sync::OnceLock<Arc<dyn block_devices::VolumeProvider>>>,
}

/// What [`Compute::set_ports_hook`] takes: an async callback with no arguments.
pub type PortsHook =
    Arc<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync>;

impl Compute {
    /// A compute service whose every server runs on one driver (the fake driver of tests).
    pub fn new(
        store: Store,
        driver: Arc<dyn ComputeDriver>,
        images: Arc<dyn ImageCatalog>,
        cfg: ComputeConfig,
    ) -> Self {
        Self::with_backends(store, driver::Backends::single(driver), images, cfg)
    }

    /// A compute service over the backends of the box; each server runs on the one
    /// [`select_backend`](Self::select_backend) picks for it.
    pub fn with_backends(
        store: Store,
        backends: driver::Backends,
        images: Arc<dyn ImageCatalog>,
        cfg: ComputeConfig,
    ) -> Self {
        let tasks = Arc::new(tasks::Runner::new(cfg.task_concurrency));
        let image_cache_due = std::time::Instant::now()
            + std::time::Duration::from_secs(cfg.image_cache_interval_secs);
        Self {
            store,
            backends,
            images,
            cfg: Arc::new(cfg),
            tasks,
            image_cache_due: Arc::new(std::sync::Mutex::new(image_cache_due)),
            ports_hook: Arc::new(std::sync::OnceLock::new()),
            consoles: Arc::new(consoles::Registry::default()),
            volume_provider: Arc::new(std::sync::OnceLock::new()),
        }
    }

    /// Sets what is awaited whenever servers' ports changed: before a backend plugs a
    /// server's interfaces and after a server's ports are released (the networking service
    /// applies its security groups there, so no interface is ever up unfiltered). Set once.
    pub fn set_ports_hook(&self, hook: PortsHook) {
        let _ = self.ports_hook.set(hook);
    }

    pub(crate) async fn ports_changed(&self) {
        if let Some(h) = self.ports_hook.get() {
            h().await;
        }
    }

    pub fn config(&self) -> &ComputeConfig {
        &self.cfg
    }

    /// The driver of the default (VM) backend.
    pub fn driver(&self) -> Arc<dyn ComputeDriver> {
        self.backends.get(model::compute::Backend::Vm)
    }

    pub fn backends(&self) -> &driver::Backends {
        &self.backends
    }

    /// Waits until no server task is running (for tests and orderly shutdown).
    pub async fn idle(&self) {
        self.tasks.idle().await;
    }
}
