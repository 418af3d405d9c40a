//! onebox's configuration: `/etc/onebox/onebox.toml` (or `--config`), every key with a
//! default, so `onebox serve` runs with no file at all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

/// Where the packaged configuration lives.
pub const DEFAULT_CONFIG: &str = "/etc/onebox/onebox.toml";

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// State directory: `onebox.db`, credentials, images, instances.
    pub data_dir: PathBuf,
    /// Address of the one HTTP listener.
    pub listen: SocketAddr,
    /// Base URL clients use to reach the box (`http://host:port`); by default each response
    /// uses the address the client reached.
    pub public_url: Option<String>,
    /// Region name in the service catalog.
    pub region: String,
    /// Put every server on the fake driver (tests and demos).
    pub fake_driver: bool,
    /// How long each fake-driver operation takes, in milliseconds (to watch servers in BUILD
    /// and in transition in demos and tests).
    pub fake_driver_delay_ms: u64,
    pub log: LogConfig,
    pub identity: IdentitySection,
    pub image: ImageSection,
    pub compute: ComputeSection,
    pub libvirt: LibvirtSection,
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
            log: LogConfig::default(),
            identity: IdentitySection::default(),
            image: ImageSection::default(),
            compute: ComputeSection::default(),
            libvirt: LibvirtSection::default(),
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
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
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
        format!("http://{addr}")
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
    }

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../../packaging/onebox.toml");
        let c = toml::from_str::<Config>(text).expect("packaging/onebox.toml");
        // The package's service listens on every address and keeps its state where the unit
        // lets it write.
        assert_eq!(c.listen, SocketAddr::from(([0, 0, 0, 0], 8774)));
        assert_eq!(c.data_dir, Path::new("/var/lib/onebox"));
        assert_eq!(c.libvirt.uri, "qemu:///system");
        assert_eq!(c.libvirt.metadata_listen, "169.254.169.254:80");
    }
}
