//! `onebox teardown`: stops what onebox started on the host, for the package's removal.
//!
//! The service itself stops with its unit, but what it started outlives it by design (so a
//! restart or an upgrade keeps guests running): the containers' supervisors and processes,
//! its libvirt domains, a dnsmasq per project bridge, the bridges, and its nft table. When
//! the package goes, they go too:
//! - `apt remove` (the prerm's `remove`): every guest is powered off, keeping its disk or
//!   root filesystem and its definition in the state directory (a reinstalled onebox finds
//!   them SHUTOFF); dnsmasq stopped; bridges and the nft table deleted.
//! - `apt purge`: the prerm's teardown has powered every guest off; the postrm (the binary
//!   is gone by then) undefines onebox's domains, removes the empty cgroups, unmounts the
//!   containers' layers and deletes the tables and the state directory.
//! - `onebox teardown --purge` destroys every guest as a delete would, for an administrator
//!   who wants the box empty while onebox is still installed.
//!
//! Refused while a onebox serves the data directory: the service must stop first.

use std::sync::Arc;

use anyhow::Result;
use driver::ComputeDriver;

use crate::config::Config;

/// What a teardown did, and what it could not do (it goes on past each failure).
#[derive(Debug, Default)]
pub struct Report {
    pub guests: usize,
    pub dnsmasq: Vec<String>,
    pub bridges: Vec<String>,
    pub failures: Vec<String>,
}

/// With `network`, the project bridges and onebox's nft table are deleted too.
pub fn run(cfg: &Config, purge: bool, network: bool) -> Result<Report> {
    let mut report = Report::default();
    let _lock = if cfg.data_dir.is_dir() {
        Some(crate::lock::acquire(
            &cfg.data_dir,
            "onebox is serving this data directory; stop it first (systemctl stop onebox)",
        )?)
    } else {
        None
    };
    if !cfg.fake_driver && cfg.data_dir.is_dir() {
        guests(cfg, purge, &mut report);
        #[cfg(feature = "vm")]
        {
            let dhcp = driver_libvirt::dhcp::Dhcp::new(
                cfg.libvirt.dnsmasq.to_string_lossy().into_owned(),
                cfg.data_dir.join("dhcp"),
            );
            report.dnsmasq = dhcp.stop_all();
        }
    }
    if network && !cfg.fake_driver {
        self::network(cfg, &mut report);
    }
    Ok(report)
}

/// Powers off (or, purging, destroys) the instances of the container and VM backends.
#[cfg_attr(
    not(any(feature = "vm", feature = "container")),
    allow(unused_variables)
)]
fn guests(cfg: &Config, purge: bool, report: &mut Report) {
    #[allow(unused_mut)]
    let mut backends: Vec<(&str, Arc<dyn ComputeDriver>)> = Vec::new();
    // The containers' id ranges are freed in the database as they are destroyed.
    #[cfg(feature = "container")]
    match store::Store::open(&cfg.db_path()) {
        Ok(store) => match crate::serve::container_driver(cfg, &store) {
            Ok(d) => backends.push(("container", Arc::new(d))),
            Err(why) => tracing::info!(reason = %why, "no container backend to tear down"),
        },
        Err(e) => report
            .failures
            .push(format!("opening the database for the containers: {e}")),
    }
    #[cfg(feature = "vm")]
    if let Some(d) = crate::serve::libvirt_driver(cfg) {
        backends.push(("vm", d));
    }
    for (kind, b) in &backends {
        let ids = match b.list_instances() {
            Ok(ids) => ids,
            Err(e) => {
                report
                    .failures
                    .push(format!("listing the {kind} instances: {e}"));
                continue;
            }
        };
        for id in ids {
            let done = if purge {
                b.destroy(&id)
            } else {
                b.power_off(&id)
            };
            match done {
                Ok(()) => report.guests += 1,
                Err(e) => report.failures.push(format!("{kind} {}: {e}", id.as_str())),
            }
        }
    }
}

/// Deletes the project bridges, the routers' and floating IPs' addresses on the uplink and
/// onebox's nft table.
fn network(cfg: &Config, report: &mut Report) {
    match hostnet::nat::bridges() {
        Ok(bridges) => {
            for b in bridges {
                match hostnet::delete_link(&b) {
                    Ok(()) => report.bridges.push(b),
                    Err(e) => report.failures.push(format!("bridge {b}: {e}")),
                }
            }
        }
        Err(e) => report.failures.push(format!("listing the bridges: {e}")),
    }
    if let Err(e) = hostnet::edge::remove(&cfg.data_dir.join("hostnet")) {
        report
            .failures
            .push(format!("onebox's nft table and edge addresses: {e}"));
    }
}
