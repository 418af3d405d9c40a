//! Address allocation on project networks, kept in SQLite.
//!
//! Each project gets a network named `private` the first time one of its servers needs one:
//! a /24 out of 10.0.0.0/8 (10.0.1.0/24 first), its gateway at .1, and guest addresses handed
//! out from .10 upward. MAC addresses use OpenStack's `fa:16:3e` prefix. The bridges, DHCP and
//! metadata service that give these addresses to real guests belong to the backends.

use std::net::Ipv4Addr;

use model::ProjectId;
use model::compute::{Address, ServerId};
use store::compute::{self as sql, Network};

use crate::{Error, abort};

type Result<T> = store::Result<T>;

pub const DEFAULT_NETWORK: &str = "private";

/// The project's default network, created on first use.
pub(crate) fn default_network(c: &store::Connection, project: &ProjectId) -> Result<Network> {
    if let Some(n) = sql::project_networks(c, project)?
        .into_iter()
        .find(|n| n.name == DEFAULT_NETWORK && n.project_id.as_ref() == Some(project))
    {
        return Ok(n);
    }
    let taken = sql::network_cidrs(c)?;
    let cidr = (1..=255u32 * 256)
        .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256))
        .find(|c| !taken.contains(c))
        .ok_or_else(|| {
            abort(Error::Conflict(
                "No address space is left for a new network.".into(),
            ))
        })?;
    let base = cidr.trim_end_matches(".0/24");
    let n = Network {
        id: uuid::Uuid::new_v4().hyphenated().to_string(),
        name: DEFAULT_NETWORK.into(),
        project_id: Some(project.clone()),
        cidr: cidr.clone(),
        gateway: format!("{base}.1"),
    };
    sql::insert_network(c, &n)?;
    tracing::info!(project_id = %project, %cidr, "project network created");
    Ok(n)
}

/// A network the project may attach to, by id.
pub(crate) fn find_network(
    c: &store::Connection,
    project: &ProjectId,
    id: &str,
) -> Result<Option<Network>> {
    Ok(sql::project_networks(c, project)?
        .into_iter()
        .find(|n| n.id == id))
}

fn random_mac() -> String {
    let mut b = [0u8; 3];
    getrandom::fill(&mut b).expect("the OS random number generator failed");
    format!("fa:16:3e:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

/// Allocates the lowest free address of `net` to a server.
pub(crate) fn allocate(
    c: &store::Connection,
    net: &Network,
    server: &ServerId,
    position: u32,
) -> Result<Address> {
    let base: Ipv4Addr = net.cidr.trim_end_matches("/24").parse().map_err(|_| {
        abort(Error::Conflict(format!(
            "network {} has a bad CIDR",
            net.id
        )))
    })?;
    let used = sql::used_addresses(c, &net.id)?;
    let o = base.octets();
    let addr = (10..=254u8)
        .map(|h| Ipv4Addr::new(o[0], o[1], o[2], h).to_string())
        .find(|a| !used.contains(a))
        .ok_or_else(|| {
            abort(Error::Conflict(format!(
                "No more IP addresses available on network {}.",
                net.id
            )))
        })?;
    let mac = loop {
        let m = random_mac();
        if !sql::mac_taken(c, &m)? {
            break m;
        }
    };
    sql::insert_port(c, server, &net.id, &addr, &mac, position)?;
    Ok(Address {
        network: net.name.clone(),
        addr,
        mac,
        version: 4,
    })
}
