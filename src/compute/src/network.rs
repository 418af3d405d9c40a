//! Address allocation on project networks, kept in SQLite.
//!
//! Each project gets a network named `private` the first time one of its servers needs one:
//! a /16 out of 10.0.0.0/8 (10.1.0.0/16 first, so up to 255 projects with networks), its
//! gateway at .0.1, and guest addresses handed out from .0.10 upward (65,000 per project). MAC addresses use OpenStack's `fa:16:3e` prefix. The bridges, DHCP and
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
    let cidr = (1..=255u32)
        .map(|i| format!("10.{i}.0.0/16"))
        .find(|c| !taken.contains(c))
        .ok_or_else(|| {
            abort(Error::Conflict(
                "No address space is left for a new network.".into(),
            ))
        })?;
    let base = cidr.trim_end_matches(".0.0/16");
    let n = Network {
        id: uuid::Uuid::new_v4().hyphenated().to_string(),
        name: DEFAULT_NETWORK.into(),
        project_id: Some(project.clone()),
        cidr: cidr.clone(),
        gateway: format!("{base}.0.1"),
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
    let (base, prefix) = net
        .cidr
        .split_once('/')
        .and_then(|(a, p)| Some((a.parse::<Ipv4Addr>().ok()?, p.parse::<u32>().ok()?)))
        .filter(|(_, p)| *p <= 30)
        .ok_or_else(|| {
            abort(Error::Conflict(format!(
                "network {} has a bad CIDR",
                net.id
            )))
        })?;
    let used: std::collections::HashSet<u32> = sql::used_addresses(c, &net.id)?
        .iter()
        .filter_map(|a| a.parse::<Ipv4Addr>().ok())
        .map(u32::from)
        .collect();
    let first = u32::from(base);
    let size = 1u32 << (32 - prefix);
    // .1 is the gateway; guests start at .10 and stop before the broadcast address.
    let addr = (10..size - 1)
        .map(|i| first + i)
        .find(|a| !used.contains(a))
        .map(|a| Ipv4Addr::from(a).to_string())
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
