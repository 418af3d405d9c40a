//! Address allocation on project networks, kept in SQLite.
//!
//! Each project gets a network named `private` the first time one of its servers needs one:
//! a /16 out of 10.0.0.0/8 (10.1.0.0/16 first, so up to 255 projects with networks), its
//! gateway at .0.1, and guest addresses handed out from .0.10 upward (65,000 per project).
//! MAC addresses use OpenStack's `fa:16:3e` prefix. The bridges, DHCP and metadata service
//! that give these addresses to real guests belong to the backends.
//!
//! A box with real backends also skips the /16s that the host already routes (its LAN, a
//! VPN, another onebox's bridges): a project network there would take the host's traffic
//! for those addresses. Only when every free /16 is routed does it take one anyway, with a
//! warning.

use std::net::Ipv4Addr;

use model::ProjectId;
use model::compute::{Address, ServerId};
use store::compute::{self as sql, Network};

use crate::{Error, abort};

type Result<T> = store::Result<T>;

pub const DEFAULT_NETWORK: &str = "private";

/// An IPv4 prefix: network address and length.
pub(crate) type Prefix = (Ipv4Addr, u8);

/// Whether two prefixes share any address.
fn overlaps(a: Prefix, b: Prefix) -> bool {
    let len = a.1.min(b.1);
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(a.0) & mask == u32::from(b.0) & mask
}

/// The prefixes in the host's main IPv4 routing table (`/proc/net/route`), the default route
/// left out. Empty when the table cannot be read.
pub(crate) fn host_routes() -> Vec<Prefix> {
    std::fs::read_to_string("/proc/net/route")
        .map(|t| parse_routes(&t))
        .unwrap_or_default()
}

/// Parses `/proc/net/route`: destination and mask are the kernel's network-order words
/// printed in hex as native integers.
fn parse_routes(table: &str) -> Vec<Prefix> {
    let word = |h: &str| u32::from_str_radix(h, 16).ok().map(u32::to_ne_bytes);
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let dest = Ipv4Addr::from(word(f.get(1)?)?);
            let mask = u32::from(Ipv4Addr::from(word(f.get(7)?)?));
            let len = mask.leading_ones() as u8;
            (len > 0).then_some((dest, len))
        })
        .collect()
}

/// The project's default network, created on first use, on a free /16 that none of
/// `routed` (the host's routes) overlaps if there is one.
pub(crate) fn default_network(
    c: &store::Connection,
    project: &ProjectId,
    routed: &[Prefix],
) -> Result<Network> {
    if let Some(n) = sql::project_networks(c, project)?
        .into_iter()
        .find(|n| n.name == DEFAULT_NETWORK && n.project_id.as_ref() == Some(project))
    {
        return Ok(n);
    }
    let taken = sql::network_cidrs(c)?;
    let free: Vec<u8> = (1..=255u8)
        .filter(|i| !taken.contains(&format!("10.{i}.0.0/16")))
        .collect();
    let unrouted = free.iter().copied().find(|&i| {
        !routed
            .iter()
            .any(|&r| overlaps(r, (Ipv4Addr::new(10, i, 0, 0), 16)))
    });
    let pick = match (unrouted, free.first()) {
        (Some(i), _) => i,
        (None, Some(&i)) => {
            tracing::warn!(
                cidr = %format!("10.{i}.0.0/16"),
                "every free /16 of 10.0.0.0/8 is routed on the host already; taking one anyway"
            );
            i
        }
        (None, None) => {
            return Err(abort(Error::Conflict(
                "No address space is left for a new network.".into(),
            )));
        }
    };
    let cidr = format!("10.{pick}.0.0/16");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_read_in_network_order_and_the_default_route_is_left_out() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            obr1\t0000010A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
            eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        if cfg!(target_endian = "little") {
            assert_eq!(
                parse_routes(table),
                vec![
                    (Ipv4Addr::new(10, 1, 0, 0), 16),
                    (Ipv4Addr::new(192, 0, 2, 0), 24)
                ]
            );
        }
    }

    #[tokio::test]
    async fn a_new_network_skips_what_the_host_routes() {
        let store = store::Store::open_in_memory().expect("store");
        let net = |project: &str, routed: Vec<Prefix>| {
            let project = ProjectId::new(project);
            store.write(move |tx| default_network(tx, &project, &routed))
        };
        let lan = (Ipv4Addr::new(10, 1, 0, 0), 24);
        let vpn = (Ipv4Addr::new(10, 2, 0, 0), 15);
        let a = net("0a000000000000000000000000000001", vec![lan, vpn])
            .await
            .expect("network");
        assert_eq!(
            a.cidr, "10.4.0.0/16",
            "10.1 (the LAN) and 10.2-10.3 (the VPN) are routed"
        );
        // Only routed /16s left among the free ones: the first free is taken anyway.
        let everything = vec![(Ipv4Addr::new(10, 0, 0, 0), 8)];
        let b = net("0a000000000000000000000000000002", everything)
            .await
            .expect("network");
        assert_eq!(b.cidr, "10.1.0.0/16");
        // A project keeps its network whatever the host routes later.
        let again = net("0a000000000000000000000000000001", vec![])
            .await
            .expect("network");
        assert_eq!(again.id, a.id);
    }

    #[test]
    fn prefixes_overlap_when_the_shorter_one_holds_the_other() {
        let p = |a: [u8; 4], l| (Ipv4Addr::from(a), l);
        assert!(overlaps(p([10, 1, 0, 0], 16), p([10, 1, 2, 0], 24)));
        assert!(overlaps(p([10, 0, 0, 0], 8), p([10, 7, 0, 0], 16)));
        assert!(!overlaps(p([10, 1, 0, 0], 16), p([10, 2, 0, 0], 16)));
        assert!(!overlaps(p([192, 168, 1, 0], 24), p([10, 1, 0, 0], 16)));
        assert!(overlaps(p([10, 1, 0, 0], 16), p([10, 1, 0, 0], 16)));
    }
}
