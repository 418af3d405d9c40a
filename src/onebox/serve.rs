//! `onebox serve`: wiring, the listener, background upkeep and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

pub fn init_tracing(cfg: &Config) -> Result<()> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.log.level))
        .context("log level")?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}

/// The services of a box, over one store.
pub struct Services {
    pub identity: identity::Identity,
    pub compute: compute::Compute,
    pub images: image::Images,
    pub baremetal: baremetal::Baremetal,
    pub network: network::Network,
    pub store: store::Store,
}

/// Creates the data dir with mode 0700 when it does not exist.
pub fn ensure_data_dir(cfg: &Config) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !cfg.data_dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&cfg.data_dir)
            .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    }
    Ok(())
}

/// Opens (and migrates) the database under the data dir and builds the services on it.
pub async fn open_services(cfg: &Config) -> Result<Services> {
    ensure_data_dir(cfg)?;
    let store = store::Store::open(&cfg.db_path())
        .with_context(|| format!("opening {}", cfg.db_path().display()))?;
    let icfg = identity::IdentityConfig {
        token_ttl: Duration::from_secs(cfg.identity.token_ttl_secs),
        lockout: identity::LockoutConfig {
            threshold: cfg.identity.lockout_threshold,
            base_backoff: Duration::from_secs(cfg.identity.lockout_base_secs),
            max_backoff: Duration::from_secs(cfg.identity.lockout_max_secs),
        },
        limits: auth_limits(&cfg.identity),
    };
    let identity = identity::Identity::new(store.clone(), icfg);
    let baremetal = baremetal::Baremetal::new(
        store.clone(),
        baremetal::BaremetalConfig {
            ipmi_timeout: Duration::from_millis(cfg.baremetal.ipmi_timeout_ms.max(1)),
            ipmi_retries: cfg.baremetal.ipmi_retries,
            console_dir: cfg.data_dir.join("consoles"),
        },
    );
    let backends = backends(cfg, &baremetal, &store);
    let images = image::Images::open(
        store.clone(),
        image::ImageConfig {
            dir: cfg.images_dir(),
            quota_bytes: cfg.image.quota_bytes,
            qemu_img: cfg.image.qemu_img.clone(),
        },
    )
    .await
    .with_context(|| format!("opening the image store {}", cfg.images_dir().display()))?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "onebox".into());
    let compute = compute::Compute::with_backends(
        store.clone(),
        backends,
        Arc::new(images.clone()),
        compute::ComputeConfig {
            host,
            resize_confirm_window_secs: cfg.compute.resize_confirm_window_secs,
            shelved_offload_time: cfg.compute.shelved_offload_time,
            reclaim_instance_interval: cfg.compute.reclaim_instance_interval,
            image_cache_interval_secs: cfg.compute.image_cache_interval_secs,
            image_cache_min_age_secs: cfg.compute.image_cache_min_age_secs,
            zero_disk_max_gb: cfg.compute.zero_disk_max_gb,
            console_token_ttl_secs: cfg.console.token_ttl_secs,
            avoid_host_routes: !cfg.fake_driver,
            ..Default::default()
        },
    );
    let network = network_service(cfg, &store)?;
    Ok(Services {
        identity,
        compute,
        images,
        baremetal,
        network,
        store,
    })
}

/// The networking service: the host's edge (routers, floating IPs) applied under
/// `<data_dir>/hostnet` with the host table's rules, none on a fake-driver box; the
/// external network of `[network]` when it is configured.
fn network_service(cfg: &Config, store: &store::Store) -> Result<network::Network> {
    let external = cfg.network.external()?;
    let host: Arc<dyn network::Host> = if cfg.fake_driver {
        Arc::new(network::NoHost)
    } else {
        if let Some(e) = &external
            && e.uplink.is_none()
        {
            anyhow::bail!(
                "[network] external_cidr needs an uplink: set nat_uplink or external_uplink"
            );
        }
        Arc::new(crate::edge::HostEdge {
            state_dir: cfg.data_dir.join("hostnet"),
            rules: host_rules(cfg)?,
            external: external.clone(),
            sg: crate::nethost::NetHost::new(),
            #[cfg(feature = "vm")]
            dhcp: driver_libvirt::dhcp::Dhcp::new(
                cfg.libvirt.dnsmasq.to_string_lossy().into_owned(),
                cfg.data_dir.join("dhcp"),
            ),
        })
    };
    let mut n = network::Network::new(store.clone(), host);
    if !cfg.fake_driver {
        n = n.with_host_routes(hostnet::nat::host_routes);
    }
    Ok(match external {
        Some(e) => n.with_edge(e.edge),
        None => n,
    })
}

/// `[identity]`'s bounds on authentication.
fn auth_limits(c: &crate::config::IdentitySection) -> identity::AuthLimits {
    let d = identity::AuthLimits::default();
    identity::AuthLimits {
        auth_per_sec: c.auth_rate_per_sec.max(0.0),
        auth_burst: c.auth_burst.max(1),
        hash_queue: c.hash_queue.unwrap_or(d.hash_queue),
        max_tokens_per_user: c.max_tokens_per_user.max(1),
    }
}

/// `[listener]`'s bounds on connections.
fn listener_limits(c: &crate::config::ListenerSection) -> api::listener::ListenerLimits {
    api::listener::ListenerLimits {
        header_read_timeout: Duration::from_secs(c.header_read_timeout_secs.max(1)),
        body_timeout: Duration::from_secs(c.body_timeout_secs.max(1)),
        max_connections: c.max_connections.max(1),
    }
}

/// The compute backends of this box: the fake driver alone when configured, else each real
/// backend the host can run (a kind with none refuses its servers with a fault saying why).
/// Bare metal is always there: it runs on the nodes enrolled through `/baremetal`, whose BMCs
/// are reached over the network (with the fake driver too, so demos can mix both).
fn backends(cfg: &Config, bm: &baremetal::Baremetal, store: &store::Store) -> driver::Backends {
    let ironic: Arc<dyn driver::ComputeDriver> =
        Arc::new(baremetal::driver::IronicDriver::new(bm.clone()));
    if cfg.fake_driver {
        let fake = driver::fake::FakeDriver::new();
        fake.set_delay(Duration::from_millis(cfg.fake_driver_delay_ms));
        return driver::Backends::single(Arc::new(fake)).with(driver::Backend::BareMetal, ironic);
    }
    let mut b = driver::Backends::none().with(driver::Backend::BareMetal, ironic);
    #[cfg(not(feature = "container"))]
    {
        let _ = store;
        b = b.with(driver::Backend::Container, unbuilt("container"));
    }
    #[cfg(feature = "container")]
    if cfg.container.enabled == crate::config::ContainerEnabled::Auto {
        match container_driver(cfg, store) {
            Ok(d) => {
                tracing::info!(cgroups = d.layout().describe(), "container backend ready");
                b = b.with(driver::Backend::Container, Arc::new(d));
            }
            Err(why) => tracing::warn!(reason = %why, "no container backend"),
        }
    }
    #[cfg(not(feature = "vm"))]
    {
        b = b.with(driver::Backend::Vm, unbuilt("vm"));
    }
    #[cfg(feature = "vm")]
    if let Some(vm) = libvirt_driver(cfg) {
        b = b.with(driver::Backend::Vm, vm);
    }
    b
}

/// The driver of a backend this binary was built without (its cargo feature was off).
#[cfg(not(all(feature = "vm", feature = "container")))]
fn unbuilt(feature: &str) -> Arc<dyn driver::ComputeDriver> {
    Arc::new(driver::unavailable::Unavailable {
        reason: format!("this onebox was built without the {feature} backend"),
    })
}

/// The containers' user-namespace id ranges, kept in the database.
#[cfg(feature = "container")]
struct StoredIdRanges(store::Store);

#[cfg(feature = "container")]
impl std::fmt::Debug for StoredIdRanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoredIdRanges")
    }
}

#[cfg(feature = "container")]
impl container::userns::IdRanges for StoredIdRanges {
    fn allocate(&self, server: &str) -> Result<u32, String> {
        let id = server.to_owned();
        self.0
            .write_blocking(move |tx| {
                store::id_ranges::allocate(
                    tx,
                    &id,
                    container::userns::FLOOR,
                    container::userns::RANGE_SIZE,
                )
            })
            .map_err(|e| format!("allocating the container's user ids: {e}"))
    }

    fn release(&self, server: &str) -> Result<(), String> {
        let id = server.to_owned();
        self.0
            .write_blocking(move |tx| store::id_ranges::release(tx, &id))
            .map_err(|e| format!("freeing the container's user ids: {e}"))
    }
}

#[cfg(feature = "container")]
pub(crate) fn container_driver(
    cfg: &Config,
    store: &store::Store,
) -> Result<container::ContainerDriver, String> {
    let c = &cfg.container;
    let mut dc = container::Config::new(&cfg.data_dir);
    dc.cgroup_parent = c.cgroup_parent.clone();
    dc.console_max_bytes = c.console_max_bytes;
    dc.pids_max = c.pids_max;
    // A container on a disk=0 flavor (admins only) gets the largest root disk such a
    // server may have.
    dc.zero_disk_layer_bytes = cfg.compute.zero_disk_max_gb.saturating_mul(1 << 30);
    dc.stop_timeout = Duration::from_secs(c.stop_timeout_secs);
    dc.nameservers = c.nameservers.clone();
    dc.user_namespace = c.user_namespace;
    dc.id_ranges = std::sync::Arc::new(StoredIdRanges(store.clone()));
    dc.forwarding = cfg.network.uplink().is_some();
    container::ContainerDriver::new(dc)
}

/// The VM backend, when it is enabled and libvirtd answers.
#[cfg(feature = "vm")]
pub(crate) fn libvirt_driver(cfg: &Config) -> Option<Arc<dyn driver::ComputeDriver>> {
    let l = &cfg.libvirt;
    if !l.enabled {
        return None;
    }
    let mut lc = driver_libvirt::LibvirtConfig::new(cfg.data_dir.clone());
    lc.uri = l.uri.clone();
    lc.virt_type = match l.virt_type.as_str() {
        "kvm" => Some(driver_libvirt::VirtType::Kvm),
        "qemu" | "tcg" => Some(driver_libvirt::VirtType::Qemu),
        _ => None,
    };
    lc.shutdown_timeout = Duration::from_secs(l.shutdown_timeout_secs);
    lc.force_config_drive = l.force_config_drive;
    lc.forwarding = cfg.network.uplink().is_some();
    lc.default_cmdline = l.kernel_cmdline.clone();
    lc.qemu_img = cfg.image.qemu_img.to_string_lossy().into_owned();
    lc.dnsmasq = l.dnsmasq.to_string_lossy().into_owned();
    lc.genisoimage = l.genisoimage.to_string_lossy().into_owned();
    lc.console_max_bytes = l.console_max_bytes.max(4096);
    match driver_libvirt::LibvirtDriver::connect(lc) {
        Ok(d) => Some(Arc::new(d)),
        Err(e) => {
            tracing::warn!(uri = %l.uri, error = %e, "no VM backend: libvirt does not answer");
            None
        }
    }
}

/// Serves the metadata service to guests on `[libvirt] metadata_listen`, adding the
/// address to the loopback interface when the host does not have it.
async fn serve_metadata(cfg: &Config, compute: compute::Compute) -> Result<()> {
    let listen = cfg.libvirt.metadata_listen.trim();
    if listen.is_empty() {
        return Ok(());
    }
    let addr: std::net::SocketAddr = listen
        .parse()
        .with_context(|| format!("[libvirt] metadata_listen {listen}"))?;
    if let std::net::IpAddr::V4(v4) = addr.ip()
        && v4.is_link_local()
    {
        tokio::task::spawn_blocking(move || hostnet::ensure_address("lo", v4, 32))
            .await
            .context("joining")?
            .with_context(|| format!("adding {v4} to lo"))?;
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("metadata service on {addr}"))?;
    tracing::info!(%addr, "metadata service listening");
    tokio::spawn(async move {
        let app = api::metadata::router(compute)
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metadata service stopped");
        }
    });
    Ok(())
}

/// The host table `cfg` asks for: the uplink, the ranges it may reach, the metadata
/// service's address, the host's own routes (closed to guests behind the uplink).
fn host_rules(cfg: &Config) -> Result<hostnet::nat::HostRules> {
    let nat_allow = cfg
        .network
        .nat_allow
        .iter()
        .map(|p| hostnet::nat::parse_prefix(p))
        .collect::<Result<Vec<_>, _>>()
        .context("[network] nat_allow")?;
    let metadata = match cfg.libvirt.metadata_listen.trim() {
        "" => None,
        l => match l
            .parse::<std::net::SocketAddr>()
            .with_context(|| format!("[libvirt] metadata_listen {l}"))?
        {
            std::net::SocketAddr::V4(a) => Some(a),
            std::net::SocketAddr::V6(_) => None,
        },
    };
    Ok(hostnet::nat::HostRules {
        uplink: cfg.network.uplink().map(str::to_owned),
        nat_allow,
        blocked: hostnet::nat::host_routes(),
        metadata,
        dns: false,
    })
}

/// Writes onebox's host table (what guests reach of the host, and `[network] nat_uplink`'s
/// masquerading when it is set), before any backend makes a bridge. A failure stops onebox
/// when it runs as root (it makes bridges, which must not be left open) or the operator
/// asked for an uplink; otherwise (no root: no bridges) it is only logged. A fake-driver box
/// leaves the host alone.
async fn project_networks_uplink(cfg: &Config) -> Result<()> {
    if cfg.fake_driver {
        // No bridges of its own, and the host's table may belong to a real onebox.
        tracing::info!("fake driver: the host's networking is left alone");
        return Ok(());
    }
    let rules = host_rules(cfg)?;
    let uplink = rules.uplink.clone();
    // The whole table with the routers and floating IPs last applied (`hostnet::nat::apply`
    // alone would drop them); the networking service applies the database's at start.
    let state_dir = cfg.data_dir.join("hostnet");
    let outcome = tokio::task::spawn_blocking(move || hostnet::edge::restore(&state_dir, &rules))
        .await
        .context("joining")?;
    let root = effective_uid() == Some(0);
    match (uplink, outcome) {
        (Some(u), Ok(())) => {
            tracing::info!(uplink = %u, "project networks reach the outside through NAT");
        }
        (Some(u), Err(e)) => {
            return Err(anyhow::anyhow!(e)).with_context(|| format!("[network] nat_uplink {u}"));
        }
        (None, Ok(())) => tracing::info!("project networks are isolated (no NAT uplink)"),
        (None, Err(e)) if root => {
            return Err(anyhow::anyhow!(e)).context("writing onebox's nft table");
        }
        (None, Err(e)) => tracing::warn!(
            error = %e,
            "project networks are isolated (no NAT uplink), but onebox's nft table could not be written"
        ),
    }
    Ok(())
}

/// The effective user id, from `/proc/self/status`.
fn effective_uid() -> Option<u32> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Pins every recorded guest port to its MAC and address again (the bridge table may be
/// gone after a reboot or a flushed ruleset) and forgets the ports of servers that are gone.
async fn restore_ports(cfg: &Config, store: &store::Store) -> Result<()> {
    if cfg.fake_driver {
        return Ok(());
    }
    let ports = hostnet::ports::Ports::new(hostnet::ports::state_dir(&cfg.data_dir));
    if ports.list().is_empty() {
        return Ok(());
    }
    let live: std::collections::HashSet<String> = store
        .read(store::compute::live_server_ids)
        .await?
        .into_iter()
        .collect();
    let n = tokio::task::spawn_blocking(move || ports.restore(|s| live.contains(s)))
        .await
        .context("joining")?
        .context("pinning guest ports")?;
    tracing::info!(ports = n, "guest ports pinned");
    Ok(())
}

pub async fn run(cfg: Config) -> Result<()> {
    ensure_data_dir(&cfg)?;
    // Held while onebox serves: a second `onebox serve` and `onebox restore` refuse to use the
    // data directory meanwhile.
    let _lock = crate::lock::acquire(
        &cfg.data_dir,
        "another onebox is already serving this data directory",
    )?;
    // Before any backend makes a bridge.
    project_networks_uplink(&cfg).await?;
    let Services {
        identity,
        compute,
        images,
        baremetal,
        network,
        store,
    } = open_services(&cfg).await?;
    restore_ports(&cfg, &store).await?;
    // A box that was never initialised is initialised now, so `onebox serve` alone gives a
    // working cloud. On an initialised box this changes nothing.
    let fresh = identity
        .domain(&model::DomainId::default_domain())
        .await?
        .is_none();
    if fresh {
        tracing::info!(data_dir = %cfg.data_dir.display(), "first start: initialising");
        crate::init::run(
            &cfg,
            &identity,
            &compute,
            &images,
            crate::init::InitOptions {
                admin_password: None,
                demo_password: None,
            },
        )
        .await?;
    }
    // The external network, then the host's edge and security groups from the database
    // (changed while onebox was stopped: a restore, a project deleted), before any guest is
    // plugged by the reconciliation or any client served.
    if let Some(public) = network.ensure_public().await? {
        tracing::info!(network_id = %public.id, "external network 'public' ready");
    }
    network.resync().await?;
    network.apply_plugged(None, None).await?;
    let n = network.clone();
    compute.set_ports_hook(Arc::new(move || {
        let n = n.clone();
        Box::pin(async move {
            if let Err(e) = n.resync().await {
                tracing::warn!(error = %e, "applying the networking state failed");
            }
        })
    }));
    tokio::spawn(edge_upkeep(network.clone()));
    let policy = match cfg.compute.orphans {
        crate::config::OrphanSetting::Report => compute::reconcile::OrphanPolicy::Report,
        crate::config::OrphanSetting::Destroy => compute::reconcile::OrphanPolicy::Destroy,
    };
    let report = compute.reconcile(policy).await?;
    tracing::info!(?report, "reconciled with the backend");
    let _power_sync = compute.spawn_power_sync(Duration::from_secs(
        cfg.compute.power_sync_interval_secs.max(1),
    ));
    // Block storage: no volume left in a transitional status, no file without its row.
    let volumes = volume::Volumes::new(
        store.clone(),
        Arc::new(volume::FileBackend::new(cfg.data_dir.join("volumes"))?),
    );
    let report = volumes.reconcile().await?;
    tracing::info!(?report, "reconciled the volumes");
    let state = api::AppState {
        identity: identity.clone(),
        compute: compute.clone(),
        images,
        baremetal,
        network,
        volumes,
        cfg: Arc::new(api::ApiConfig {
            public_url: cfg.public_url.clone(),
            region: cfg.region.clone(),
            console: api::console::ConsoleConfig {
                allowed_origins: cfg.console.allowed_origins.clone(),
                novnc_dir: cfg.console.novnc_dir.clone(),
                xterm_dir: cfg.console.xterm_dir.clone(),
            },
        }),
    };
    let listeners = crate::listen::Listeners::bind(&cfg).await?;
    let (addr, https) = listeners.main_addr()?;
    let plain = listeners.plain_addr()?;
    tracing::info!(%addr, https, plain = ?plain, data_dir = %cfg.data_dir.display(), "onebox listening");
    // Scripts and tests that bind port 0 learn the port from this line on stdout.
    println!("listening on {addr}");
    if let Some(p) = plain {
        println!("plain HTTP for local tools on {p}");
    }
    // Under systemd (Type=notify) the unit becomes active only now, when clients can connect.
    if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "could not notify systemd");
    }

    if compute.backends().has(driver::Backend::Vm) && !cfg.fake_driver {
        // Guests can still read a config drive; the box serves without the metadata service.
        if let Err(e) = serve_metadata(&cfg, compute.clone()).await {
            tracing::error!(error = format!("{e:#}"), "no metadata service");
        }
    }
    tokio::spawn(upkeep(
        identity,
        Duration::from_secs(cfg.identity.token_purge_interval_secs.max(1)),
    ));
    // Header-read, body and connection bounds on every client of every listener (see
    // api::listener).
    listeners
        .serve(
            api::app(state),
            listener_limits(&cfg.listener),
            shutdown_signal(),
        )
        .await?;
    tracing::info!("onebox stopped");
    Ok(())
}

/// Applies the edge again when the database moved without the networking service: a
/// server deleted by compute frees its floating IPs' fixed addresses.
async fn edge_upkeep(network: network::Network) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        if let Err(e) = network.resync_edge().await {
            tracing::warn!(error = %e, "checking routers and floating IPs failed");
        }
    }
}

/// Periodic housekeeping: drop expired and revoked tokens.
async fn upkeep(identity: identity::Identity, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match identity.purge_expired().await {
            Ok(n) if n > 0 => tracing::info!(purged = n, "expired tokens purged"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "token purge failed"),
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop onebox with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_table_follows_the_configuration() {
        let mut cfg = Config::default();
        let r = host_rules(&cfg).expect("rules");
        assert_eq!(r.uplink, None);
        assert_eq!(
            r.metadata,
            Some("169.254.169.254:80".parse().expect("addr"))
        );
        assert!(!r.dns);
        cfg.network.nat_uplink = "eth0".into();
        cfg.network.nat_allow = vec!["192.168.1.20/32".into(), "10.9.0.0/16".into()];
        cfg.libvirt.metadata_listen = String::new();
        let r = host_rules(&cfg).expect("rules");
        assert_eq!(r.uplink.as_deref(), Some("eth0"));
        assert_eq!(r.nat_allow.len(), 2);
        assert_eq!(r.metadata, None);
        cfg.network.nat_allow = vec!["192.168.1.0/40".into()];
        let e = host_rules(&cfg).expect_err("a bad prefix");
        assert!(format!("{e:#}").contains("nat_allow"), "{e:#}");
    }
}
