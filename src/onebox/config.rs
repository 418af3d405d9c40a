//! onebox's configuration: `/etc/onebox/onebox.toml` (or `--config`), every key with a
//! default, so `onebox serve` runs with no file at all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

/// Where the packaged configuration lives.
pub const DEFAULT_CONFIG: &str = "/etc/onebox/onebox.toml";
/// Where the package installs the firmware payloads.
pub const PACKAGED_FIRMWARE: &str = "/usr/share/onebox/firmware";
/// Where the firmware recipes write them in a source tree.
pub const DEV_FIRMWARE: &str = "firmware/build";

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// State directory: `onebox.db`, credentials, images, instances.
    pub data_dir: PathBuf,
    /// Address of the API listener: HTTPS when `[api] tls_cert` and `tls_key` are set, else
    /// plain HTTP.
    pub listen: SocketAddr,
    /// Base URL clients use to reach the box (`https://host:port`); by default each response
    /// uses the address and scheme the client reached.
    pub public_url: Option<String>,
    /// Region name in the service catalog.
    pub region: String,
    /// Put every server on the fake driver (tests and demos).
    pub fake_driver: bool,
    /// How long each fake-driver operation takes, in milliseconds (to watch servers in BUILD
    /// and in transition in demos and tests).
    pub fake_driver_delay_ms: u64,
    /// Where `onebox init` finds the payloads it imports as public images (a directory with
    /// `SHA256SUMS`). Unset: `./firmware/build` when it holds built payloads (a run from the
    /// source tree), else the package's `/usr/share/onebox/firmware`.
    pub firmware_dir: Option<PathBuf>,
    pub api: ApiSection,
    pub log: LogConfig,
    pub identity: IdentitySection,
    pub listener: ListenerSection,
    pub image: ImageSection,
    pub compute: ComputeSection,
    pub baremetal: BaremetalSection,
    pub container: ContainerSection,
    pub libvirt: LibvirtSection,
    pub network: NetworkSection,
    pub console: ConsoleSection,
}

/// The API listeners (`[api]`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSection {
    /// The PEM certificate (chain) of the HTTPS listener. With `tls_key`, `listen` serves
    /// HTTPS only. When neither file exists, `onebox init` (and `onebox serve`) create them,
    /// signed by a CA of the box's own (`<data_dir>/tls/ca.crt`).
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert` (mode 0600).
    pub tls_key: Option<PathBuf>,
    /// The CA certificate clients need to verify `tls_cert`, written as `cacert` into
    /// clouds.yaml and `OS_CACERT` into the openrc files. Unset: the box's CA when onebox
    /// created the certificate, else nothing (a certificate the clients' system trusts).
    pub tls_ca: Option<PathBuf>,
    /// A second listener, plain HTTP, for local tools (`onebox status`, scripts); a loopback
    /// address only.
    pub plain_listen: Option<SocketAddr>,
}

impl ApiSection {
    /// The certificate and key of the HTTPS listener, when TLS is configured; an error when
    /// only one of them is.
    pub fn tls_files(&self) -> Result<Option<(&Path, &Path)>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => Ok(Some((c.as_path(), k.as_path()))),
            (None, None) => Ok(None),
            _ => anyhow::bail!("[api] tls_cert and tls_key go together: set both or neither"),
        }
    }
}

/// The project networks' way out (`[network]`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkSection {
    /// The host interface through which guests reach the outside, their addresses
    /// masqueraded as its own. Empty: project networks are isolated (guests reach each other
    /// and onebox's services on their gateway, nothing else).
    pub nat_uplink: String,
    /// Private destinations (`a.b.c.d/len`) guests may reach through the uplink. Without
    /// them guests reach no RFC 1918, CGNAT or link-local address and no network the host
    /// routes to (its LAN, a BMC network), only what lies beyond the default route.
    pub nat_allow: Vec<String>,
    /// The external network (the uplink's LAN, `a.b.c.d/len`) routers and floating IPs take
    /// addresses from. Empty: no external network, no floating IPs.
    pub external_cidr: String,
    /// The LAN's router (default: the prefix's first address).
    pub external_gateway: String,
    /// The addresses of the LAN onebox may hand out, `first-last` (routers' gateways and
    /// floating IPs); no other address of the LAN is ever used.
    pub floating_range: String,
    /// The interface on that LAN when `nat_uplink` is not set (it must be `nat_uplink`
    /// when that is set).
    pub external_uplink: String,
}

/// The external network of `[network]`: what the networking service and the host's edge
/// are told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalNet {
    pub edge: network::EdgeConfig,
    /// The interface on the LAN; `None` only on a box that leaves the host alone.
    pub uplink: Option<String>,
}

impl NetworkSection {
    /// The uplink, when one is set.
    pub fn uplink(&self) -> Option<&str> {
        Some(self.nat_uplink.trim()).filter(|u| !u.is_empty())
    }

    /// The external network, when `external_cidr` and `floating_range` are set.
    pub fn external(&self) -> Result<Option<ExternalNet>> {
        let (cidr, range) = (self.external_cidr.trim(), self.floating_range.trim());
        if cidr.is_empty() && range.is_empty() {
            return Ok(None);
        }
        if cidr.is_empty() || range.is_empty() {
            anyhow::bail!(
                "[network] external_cidr and floating_range go together: set both or neither"
            );
        }
        let c = model::network::Cidr::parse(cidr, true)
            .with_context(|| format!("[network] external_cidr {cidr:?} is not a.b.c.d/len"))?;
        let gateway = match self.external_gateway.trim() {
            "" => c
                .default_gateway()
                .context("[network] external_cidr is too small")?,
            g => model::network::parse_v4(g)
                .with_context(|| format!("[network] external_gateway {g:?} is not an address"))?,
        };
        let (a, b) = range
            .split_once('-')
            .with_context(|| format!("[network] floating_range {range:?} is not first-last"))?;
        let (Some(start), Some(end)) = (
            model::network::parse_v4(a.trim()),
            model::network::parse_v4(b.trim()),
        ) else {
            anyhow::bail!("[network] floating_range {range:?} is not first-last");
        };
        let edge = network::EdgeConfig {
            cidr: c,
            gateway,
            range: model::network::Pool { start, end },
        };
        edge.check().map_err(|e| anyhow::anyhow!("[network] {e}"))?;
        let ext = Some(self.external_uplink.trim()).filter(|u| !u.is_empty());
        let uplink = match (self.uplink(), ext) {
            (Some(n), Some(e)) if n != e => anyhow::bail!(
                "[network] external_uplink {e} must be nat_uplink {n} (or be left out)"
            ),
            (Some(n), _) => Some(n.to_owned()),
            (None, e) => e.map(str::to_owned),
        };
        Ok(Some(ExternalNet { edge, uplink }))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaremetalSection {
    /// How long to wait for each answer of a node's BMC, in milliseconds.
    pub ipmi_timeout_ms: u64,
    /// How many times a BMC request that got no answer is sent again.
    pub ipmi_retries: u32,
}

impl Default for BaremetalSection {
    fn default() -> Self {
        Self {
            ipmi_timeout_ms: 2000,
            ipmi_retries: 2,
        }
    }
}

/// Interactive consoles (`[console]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleSection {
    /// How long a console URL's token may be used, in seconds.
    pub token_ttl_secs: u64,
    /// Host names a browser may open consoles from besides this box's own.
    pub allowed_origins: Vec<String>,
    /// Where noVNC's files are.
    pub novnc_dir: PathBuf,
    /// Where xterm.js's package is, for the serial console's page.
    pub xterm_dir: PathBuf,
}

impl Default for ConsoleSection {
    fn default() -> Self {
        Self {
            token_ttl_secs: 600,
            allowed_origins: Vec::new(),
            novnc_dir: PathBuf::from("/usr/share/novnc"),
            xterm_dir: PathBuf::from("/usr/share/nodejs/xterm"),
        }
    }
}

/// The container backend (`[container]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContainerSection {
    /// `auto`: serve containers when the host can (root, namespaces, overlayfs, cgroups);
    /// `off`: never.
    pub enabled: ContainerEnabled,
    /// The cgroup holding every container's: `/sys/fs/cgroup/<it>/<uuid>` (v2) or
    /// `/sys/fs/cgroup/<controller>/<it>/<uuid>` (v1). Outside onebox's own cgroup, so
    /// containers outlive the service.
    pub cgroup_parent: String,
    /// Cap on each container's console log (init's stdout and stderr), in bytes.
    pub console_max_bytes: u64,
    /// Processes per container, unless the flavor's `onebox:pids_max` extra spec says.
    pub pids_max: u64,
    /// How long stop and soft reboot wait for init after SIGTERM before SIGKILL.
    pub stop_timeout_secs: u64,
    /// `nameserver`s written into each container's /etc/resolv.conf; empty: the gateway of
    /// its first network.
    pub nameservers: Vec<String>,
    /// Run each container in a user namespace of its own (the default), root inside an
    /// unprivileged host user with 65536 ids of its own; `false` turns them off for every
    /// container (a flavor's `onebox:userns=false` extra spec does it for that flavor).
    pub user_namespace: bool,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ContainerEnabled {
    Auto,
    Off,
}

impl Default for ContainerSection {
    fn default() -> Self {
        Self {
            enabled: ContainerEnabled::Auto,
            cgroup_parent: "onebox".into(),
            console_max_bytes: 1 << 20,
            pids_max: 4096,
            stop_timeout_secs: 10,
            nameservers: Vec::new(),
            user_namespace: true,
        }
    }
}

/// The VM backend.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LibvirtSection {
    /// Whether to run VMs at all; when libvirtd does not answer, VM servers fail with a fault
    /// saying so.
    pub enabled: bool,
    pub uri: String,
    /// `auto` (KVM where hardware virtualisation works, else TCG), `kvm` or `qemu`.
    pub virt_type: String,
    /// Seconds a guest has to shut down on ACPI (stop, soft reboot) before it is forced.
    pub shutdown_timeout_secs: u64,
    /// Attach a config drive to every VM, not only to those whose request asks for one.
    pub force_config_drive: bool,
    /// Where the metadata service listens for guests; empty turns it off.
    pub metadata_listen: String,
    /// The kernel command line for direct kernel boot when the image has no
    /// `os_command_line` property.
    pub kernel_cmdline: String,
    pub dnsmasq: PathBuf,
    pub genisoimage: PathBuf,
    /// Cap on each guest's serial log, in bytes (its newest half is kept in
    /// `console.log.1` when it is reached).
    pub console_max_bytes: u64,
}

impl Default for LibvirtSection {
    fn default() -> Self {
        Self {
            enabled: true,
            uri: "qemu:///system".into(),
            virt_type: "auto".into(),
            shutdown_timeout_secs: 60,
            force_config_drive: false,
            metadata_listen: "169.254.169.254:80".into(),
            kernel_cmdline: "root=/dev/vda console=ttyS0 quiet".into(),
            dnsmasq: PathBuf::from("dnsmasq"),
            genisoimage: PathBuf::from("genisoimage"),
            console_max_bytes: 1 << 20,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComputeSection {
    /// How often each settled server's power state is read from its backend, in seconds
    /// (a guest shut down from inside shows SHUTOFF within this).
    pub power_sync_interval_secs: u64,
    /// What start-up does with backend instances the database does not know: `report`
    /// (log them) or `destroy`.
    pub orphans: OrphanSetting,
    /// Seconds after which a resize awaiting confirmation is confirmed automatically; 0
    /// never (Nova's `resize_confirm_window`).
    pub resize_confirm_window_secs: u64,
    /// Seconds a shelved server keeps its backend instance before it is offloaded; 0 at
    /// once, -1 never (Nova's `shelved_offload_time`).
    pub shelved_offload_time: i64,
    /// With a value above 0, deleting a server only soft-deletes it: it can be restored
    /// until it is reclaimed this many seconds later (Nova's `reclaim_instance_interval`).
    pub reclaim_instance_interval: u64,
    /// How often, in seconds, the backends' image caches are pruned; 0 never (Nova's
    /// `image_cache_manager_interval`).
    pub image_cache_interval_secs: u64,
    /// Seconds a cached image no instance uses is kept after its last use (Nova's
    /// `remove_unused_original_minimum_age_seconds`).
    pub image_cache_min_age_secs: u64,
    /// The largest root disk, in GiB, of an admin's server on a `disk=0` flavor (such a disk
    /// is as large as its image; members may not boot images on `disk=0` flavors).
    pub zero_disk_max_gb: u64,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OrphanSetting {
    Report,
    Destroy,
}

impl Default for ComputeSection {
    fn default() -> Self {
        Self {
            power_sync_interval_secs: 5,
            orphans: OrphanSetting::Report,
            resize_confirm_window_secs: 0,
            shelved_offload_time: 0,
            reclaim_instance_interval: 0,
            image_cache_interval_secs: 2400,
            image_cache_min_age_secs: 86400,
            zero_disk_max_gb: 20,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `onebox=debug,info`; `RUST_LOG` overrides it.
    pub level: String,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentitySection {
    /// Token lifetime in seconds.
    pub token_ttl_secs: u64,
    /// Consecutive failed logins before a user's logins are refused for a while.
    pub lockout_threshold: u32,
    /// First refusal period in seconds; doubles with each further failure.
    pub lockout_base_secs: u64,
    /// Longest refusal period in seconds.
    pub lockout_max_secs: u64,
    /// Token requests per second one client address may make (a token bucket); 0 turns the
    /// limit off. Past it: 429 with `Retry-After`.
    pub auth_rate_per_sec: f64,
    /// Token requests one address may make at once before the rate applies.
    pub auth_burst: u32,
    /// Password hashes that may wait for a hashing thread (one thread per CPU); past it,
    /// requests that need a hash get 503 with `Retry-After`. Unset: 8 per CPU.
    pub hash_queue: Option<usize>,
    /// Live tokens per user; issuing one more revokes the user's oldest.
    pub max_tokens_per_user: usize,
    /// How often expired and revoked tokens are deleted, in seconds.
    pub token_purge_interval_secs: u64,
}

/// Bounds on the API's connections (`[listener]`), so slow or idle clients cannot hold the
/// box.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerSection {
    /// Seconds a client has to send a request's headers once the connection is ready for
    /// them; also how long a kept-alive connection may idle between requests.
    pub header_read_timeout_secs: u64,
    /// Longest pause, in seconds, within a request body.
    pub body_timeout_secs: u64,
    /// Connections served at once; further clients wait to be accepted.
    pub max_connections: usize,
}

impl Default for ListenerSection {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 30,
            body_timeout_secs: 60,
            max_connections: 1024,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageSection {
    /// Total bytes of image data each project may store (uploads past it get 413).
    pub quota_bytes: u64,
    /// The `qemu-img` that checks uploaded images.
    pub qemu_img: PathBuf,
}

impl Default for ImageSection {
    fn default() -> Self {
        Self {
            quota_bytes: image::DEFAULT_QUOTA_BYTES,
            qemu_img: PathBuf::from("qemu-img"),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8774)),
            public_url: None,
            region: "RegionOne".into(),
            fake_driver: false,
            fake_driver_delay_ms: 0,
            firmware_dir: None,
            api: ApiSection::default(),
            log: LogConfig::default(),
            identity: IdentitySection::default(),
            listener: ListenerSection::default(),
            image: ImageSection::default(),
            compute: ComputeSection::default(),
            baremetal: BaremetalSection::default(),
            container: ContainerSection::default(),
            libvirt: LibvirtSection::default(),
            network: NetworkSection::default(),
            console: ConsoleSection::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

impl Default for IdentitySection {
    fn default() -> Self {
        Self {
            token_ttl_secs: 3600,
            lockout_threshold: 5,
            lockout_base_secs: 2,
            lockout_max_secs: 300,
            auth_rate_per_sec: 20.0,
            auth_burst: 100,
            hash_queue: None,
            max_tokens_per_user: 1000,
            token_purge_interval_secs: 60,
        }
    }
}

/// `/var/lib/onebox` for root (a packaged or system install), `./.onebox` for anyone else.
fn default_data_dir() -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if root {
        PathBuf::from("/var/lib/onebox")
    } else {
        PathBuf::from(".onebox")
    }
}

impl Config {
    /// Reads `explicit`, or the packaged file when it exists, or nothing.
    pub fn load(explicit: Option<&Path>) -> Result<Self> {
        let path = match explicit {
            Some(p) => Some(p.to_owned()),
            None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()),
        };
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let cfg: Self =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        cfg.check()
            .with_context(|| format!("in {}", path.display()))?;
        Ok(cfg)
    }

    /// What the parser cannot tell: TLS files set in pairs, a plain listener on loopback
    /// only (the API carries passwords and tokens).
    pub fn check(&self) -> Result<()> {
        self.api.tls_files()?;
        if let Some(p) = self.api.plain_listen {
            if !p.ip().is_loopback() {
                anyhow::bail!(
                    "[api] plain_listen {p}: plain HTTP is served on a loopback address only"
                );
            }
            if p == self.listen && p.port() != 0 {
                anyhow::bail!("[api] plain_listen {p} is also `listen`");
            }
        }
        Ok(())
    }

    /// Whether `listen` serves HTTPS.
    pub fn tls(&self) -> bool {
        matches!(self.api.tls_files(), Ok(Some(_)))
    }

    /// The box's own CA: created by `onebox init` when TLS is configured and no certificate
    /// exists yet.
    pub fn box_ca_dir(&self) -> PathBuf {
        self.data_dir.join("tls")
    }

    /// The CA certificate clients should trust for `listen`, when it is not one their system
    /// trusts already (see `[api] tls_ca`).
    pub fn client_ca(&self) -> Option<PathBuf> {
        if !self.tls() {
            return None;
        }
        if let Some(ca) = &self.api.tls_ca {
            return Some(ca.clone());
        }
        Some(crate::tls::box_ca_cert(self)).filter(|p| p.is_file())
    }

    /// The firmware directory `onebox init` imports from (see `firmware_dir`).
    pub fn firmware_dir(&self) -> PathBuf {
        if let Some(d) = &self.firmware_dir {
            return d.clone();
        }
        let dev = Path::new(DEV_FIRMWARE);
        if dev.join(crate::firmware::SUMS).is_file() {
            return dev.to_owned();
        }
        PathBuf::from(PACKAGED_FIRMWARE)
    }

    /// The content store of images.
    pub fn images_dir(&self) -> PathBuf {
        self.data_dir.join("images")
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("onebox.db")
    }

    /// The base URL written into credentials files.
    pub fn client_base_url(&self) -> String {
        if let Some(u) = &self.public_url {
            return u.trim_end_matches('/').to_owned();
        }
        let mut addr = self.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let scheme = if self.tls() { "https" } else { "http" };
        format!("{scheme}://{addr}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_a_default_and_unknown_keys_are_refused() {
        let c: Config = toml::from_str("").expect("empty");
        assert_eq!(c.listen.port(), 8774);
        let c: Config =
            toml::from_str("listen = \"0.0.0.0:9000\"\n[identity]\ntoken_ttl_secs = 60")
                .expect("partial");
        assert_eq!(c.identity.token_ttl_secs, 60);
        assert_eq!(c.identity.lockout_threshold, 5);
        assert_eq!(c.image.quota_bytes, 100 << 30);
        assert_eq!(c.client_base_url(), "http://127.0.0.1:9000");
        assert!(toml::from_str::<Config>("listne = \"x\"").is_err());
        let c: Config = toml::from_str("firmware_dir = \"/srv/fw\"").expect("firmware_dir");
        assert_eq!(c.firmware_dir(), Path::new("/srv/fw"));
    }

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../../packaging/onebox.toml");
        let c = toml::from_str::<Config>(text).expect("packaging/onebox.toml");
        // The package's service listens on every address and keeps its state where the unit
        // lets it write.
        assert_eq!(c.listen, SocketAddr::from(([0, 0, 0, 0], 8774)));
        assert_eq!(c.data_dir, Path::new("/var/lib/onebox"));
        // ... only over HTTPS, with the certificate in the state directory; plain HTTP on
        // loopback for local tools.
        c.check().expect("the packaged configuration is consistent");
        assert!(c.tls());
        assert!(
            c.api
                .tls_key
                .as_deref()
                .is_some_and(|k| k.starts_with(&c.data_dir))
        );
        assert_eq!(
            c.api.plain_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 8773)))
        );
        assert_eq!(c.client_base_url(), "https://127.0.0.1:8774");
        assert_eq!(c.firmware_dir(), Path::new(PACKAGED_FIRMWARE));
        // Every commented [compute] key, uncommented, is a key the parser knows, and its
        // documented value is the default.
        let compute: String = text
            .split("[compute]")
            .nth(1)
            .and_then(|rest| rest.split("\n[").next())
            .expect("[compute] section")
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.contains(" = "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(compute.contains("resize_confirm_window_secs"), "{compute}");
        let uncommented: Config =
            toml::from_str(&format!("[compute]\n{compute}")).expect("[compute] keys");
        let d = ComputeSection::default();
        assert_eq!(
            uncommented.compute.resize_confirm_window_secs,
            d.resize_confirm_window_secs
        );
        assert_eq!(
            uncommented.compute.shelved_offload_time,
            d.shelved_offload_time
        );
        assert_eq!(
            uncommented.compute.reclaim_instance_interval,
            d.reclaim_instance_interval
        );
        assert_eq!(
            uncommented.compute.power_sync_interval_secs,
            d.power_sync_interval_secs
        );
        assert_eq!(
            uncommented.compute.image_cache_interval_secs,
            d.image_cache_interval_secs
        );
        assert_eq!(
            uncommented.compute.image_cache_min_age_secs,
            d.image_cache_min_age_secs
        );
        // The library's defaults are the same.
        let cc = compute::ComputeConfig::default();
        assert_eq!(cc.image_cache_interval_secs, d.image_cache_interval_secs);
        assert_eq!(cc.image_cache_min_age_secs, d.image_cache_min_age_secs);
        assert_eq!(uncommented.compute.zero_disk_max_gb, d.zero_disk_max_gb);
        assert_eq!(cc.zero_disk_max_gb, d.zero_disk_max_gb);
        assert_eq!(c.container.enabled, ContainerEnabled::Auto);
        assert_eq!(c.container.cgroup_parent, "onebox");
        assert_eq!(c.libvirt.uri, "qemu:///system");
        assert_eq!(c.libvirt.metadata_listen, "169.254.169.254:80");
        // Isolated unless the operator names an uplink; the documented key parses.
        assert_eq!(c.network.uplink(), None);
        let network: String = text
            .split("[network]")
            .nth(1)
            .and_then(|rest| rest.split("\n[").next())
            .expect("[network] section")
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.contains(" = "))
            .map(|l| format!("{l}\n"))
            .collect();
        let uncommented: Config =
            toml::from_str(&format!("[network]\n{network}")).expect("[network] keys");
        assert_eq!(uncommented.network.uplink(), Some("eth0"));
        assert_eq!(uncommented.network.nat_allow, ["192.168.1.20/32"]);
        let ext = uncommented
            .network
            .external()
            .expect("external")
            .expect("set");
        assert_eq!(ext.uplink.as_deref(), Some("eth0"));
        assert_eq!(ext.edge.range.start.to_string(), "192.0.2.100");
        assert_eq!(c.network.external().expect("none"), None);
    }

    #[test]
    fn the_external_network_is_checked() {
        let parse = |t: &str| -> Result<Option<ExternalNet>> {
            let c: Config = toml::from_str(&format!("[network]\n{t}")).expect("toml");
            c.network.external()
        };
        let e = parse("external_cidr = \"192.0.2.0/24\"\nfloating_range = \"192.0.2.100-192.0.2.120\"\nexternal_uplink = \"eth1\"")
            .expect("ok")
            .expect("set");
        assert_eq!(e.edge.gateway.to_string(), "192.0.2.1");
        assert_eq!(e.uplink.as_deref(), Some("eth1"));
        for bad in [
            "external_cidr = \"192.0.2.0/24\"",
            "external_cidr = \"192.0.2.0/24\"\nfloating_range = \"192.0.3.1-192.0.3.5\"",
            "external_cidr = \"192.0.2.0/24\"\nfloating_range = \"192.0.2.1-192.0.2.5\"",
            "external_cidr = \"192.0.2.1/24\"\nfloating_range = \"192.0.2.10-192.0.2.20\"",
            "nat_uplink = \"eth0\"\nexternal_uplink = \"eth1\"\nexternal_cidr = \"192.0.2.0/24\"\nfloating_range = \"192.0.2.10-192.0.2.20\"",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_documented_identity_and_listener_keys_are_the_defaults() {
        let text = include_str!("../../packaging/onebox.toml");
        let section = |name: &str| -> String {
            text.split(&format!("[{name}]"))
                .nth(1)
                .and_then(|rest| rest.split("\n[").next())
                .unwrap_or_else(|| panic!("[{name}] section"))
                .lines()
                .filter_map(|l| l.strip_prefix("# "))
                .filter(|l| l.contains(" = "))
                .map(|l| format!("{l}\n"))
                .collect()
        };
        let c: Config = toml::from_str(&format!(
            "[identity]\n{}[listener]\n{}",
            section("identity"),
            section("listener")
        ))
        .expect("documented keys");
        let (i, d) = (&c.identity, IdentitySection::default());
        assert_eq!(i.auth_rate_per_sec, d.auth_rate_per_sec);
        assert_eq!(i.auth_burst, d.auth_burst);
        assert_eq!(i.max_tokens_per_user, d.max_tokens_per_user);
        assert_eq!(i.token_purge_interval_secs, d.token_purge_interval_secs);
        let (l, d) = (&c.listener, ListenerSection::default());
        assert_eq!(l.header_read_timeout_secs, d.header_read_timeout_secs);
        assert_eq!(l.body_timeout_secs, d.body_timeout_secs);
        assert_eq!(l.max_connections, d.max_connections);
        let c: Config = toml::from_str("[identity]\nhash_queue = 0").expect("hash_queue");
        assert_eq!(c.identity.hash_queue, Some(0));
    }

    #[test]
    fn plain_http_stays_on_loopback_and_tls_files_go_in_pairs() {
        let c: Config = toml::from_str("").expect("empty");
        c.check().expect("defaults");
        assert!(!c.tls());
        assert_eq!(c.client_base_url(), "http://127.0.0.1:8774");
        let c: Config = toml::from_str("[api]\nplain_listen = \"0.0.0.0:8773\"").expect("parses");
        let err = c.check().expect_err("plain HTTP on every address");
        assert!(err.to_string().contains("loopback"), "{err}");
        let c: Config = toml::from_str("[api]\nplain_listen = \"[::1]:8773\"").expect("parses");
        c.check().expect("IPv6 loopback");
        let c: Config = toml::from_str("[api]\ntls_cert = \"/c.pem\"").expect("parses");
        assert!(c.check().is_err());
        assert!(!c.tls());
    }

    #[test]
    fn the_nat_uplink_is_off_unless_named() {
        let c: Config = toml::from_str("").expect("empty");
        assert_eq!(c.network.uplink(), None);
        let c: Config = toml::from_str("[network]\nnat_uplink = \"\"").expect("empty uplink");
        assert_eq!(c.network.uplink(), None);
        let c: Config = toml::from_str("[network]\nnat_uplink = \"enp3s0\"").expect("uplink");
        assert_eq!(c.network.uplink(), Some("enp3s0"));
        assert!(toml::from_str::<Config>("[network]\nnat = \"eth0\"").is_err());
    }
}
