//! The host side of project networks: one Linux bridge per network, veth pairs into it, and
//! addresses, all over netlink (no `ip` commands).
//!
//! A network's bridge is named from its id (`obr` + 11 hex digits), carries the network's
//! gateway address, and is isolated: the host does not forward packets that arrive on it, so
//! guests reach each other and the host's own services on the gateway (DHCP, metadata) and
//! nothing beyond. The one exception is an operator's NAT uplink ([`nat`]): then the bridges
//! forward, and onebox's own nftables table lets guests out through the uplink only; and
//! routers and floating IPs ([`edge`]), which add SNAT and DNAT rules to that table.
//! Every function is idempotent, so a restart can call them again.
//!
//! Functions block: each runs its netlink requests on a small runtime of its own, on the
//! calling thread (or, for work inside another network namespace, on a thread that joins it).

use std::net::Ipv4Addr;
use std::os::fd::AsFd;

use futures_util::TryStreamExt;
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth};

pub mod edge;
pub mod nat;
pub mod ports;
pub mod sg;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("network {0}: {1}")]
    Invalid(String, String),
    #[error("netlink: {0}")]
    Netlink(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("nft: {0}")]
    Nft(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A project network as the host sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkDef {
    pub id: String,
    /// `a.b.c.d/len`
    pub cidr: String,
    pub gateway: String,
    /// Whether the host routes packets arriving on the bridge: only when the operator set a
    /// NAT uplink ([`nat::apply`]), whose nft table then lets them out through the uplink
    /// only. `false`: isolated.
    pub forwarding: bool,
}

impl NetworkDef {
    pub fn prefix_len(&self) -> Result<u8> {
        self.cidr
            .split_once('/')
            .and_then(|(_, p)| p.parse::<u8>().ok())
            .filter(|p| *p <= 32)
            .ok_or_else(|| Error::Invalid(self.id.clone(), format!("bad CIDR {}", self.cidr)))
    }

    pub fn gateway_addr(&self) -> Result<Ipv4Addr> {
        self.gateway
            .parse()
            .map_err(|_| Error::Invalid(self.id.clone(), format!("bad gateway {}", self.gateway)))
    }
}

/// The bridge of a network: `obr` and the first 11 hex digits of its id (15 bytes at most,
/// the kernel's limit for interface names).
pub fn bridge_name(network_id: &str) -> String {
    let hex: String = network_id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(11)
        .collect();
    format!("obr{hex}")
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::Io("netlink runtime".into(), e))
}

/// Runs `f` with a netlink handle in the current network namespace.
fn with_handle<T>(f: impl AsyncFnOnce(Handle) -> Result<T, rtnetlink::Error>) -> Result<T> {
    let rt = runtime()?;
    rt.block_on(async move {
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|e| Error::Io("netlink socket".into(), e))?;
        let task = tokio::spawn(conn);
        let out = f(handle).await.map_err(|e| Error::Netlink(e.to_string()));
        task.abort();
        out
    })
}

async fn index_of(h: &Handle, name: &str) -> Result<Option<u32>, rtnetlink::Error> {
    let mut links = h.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(Some(l)) => Ok(Some(l.header.index)),
        Ok(None) => Ok(None),
        // The kernel answers ENODEV for a name it does not know.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => Ok(None),
        Err(e) => Err(e),
    }
}

async fn has_addr(h: &Handle, index: u32, addr: Ipv4Addr) -> Result<bool, rtnetlink::Error> {
    let mut addrs = h.address().get().set_link_index_filter(index).execute();
    while let Some(a) = addrs.try_next().await? {
        for attr in a.attributes {
            if let rtnetlink::packet_route::address::AddressAttribute::Address(
                std::net::IpAddr::V4(v),
            ) = attr
                && v == addr
            {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Whether an interface of this name exists in the current namespace.
pub fn link_exists(name: &str) -> Result<bool> {
    let name = name.to_owned();
    with_handle(async move |h| Ok(index_of(&h, &name).await?.is_some()))
}

/// Makes the network's bridge exist, up, with the gateway address, and isolated (or, with
/// `forwarding`, routed to the NAT uplink). Returns its name.
pub fn ensure_bridge(net: &NetworkDef) -> Result<String> {
    let name = bridge_name(&net.id);
    let gw = net.gateway_addr()?;
    let prefix = net.prefix_len()?;
    let n = name.clone();
    with_handle(async move |h| {
        let idx = match index_of(&h, &n).await? {
            Some(i) => i,
            None => {
                h.link().add(LinkBridge::new(&n).build()).execute().await?;
                index_of(&h, &n)
                    .await?
                    .ok_or(rtnetlink::Error::RequestFailed)?
            }
        };
        // No IPv6 on the bridge before it comes up: no link-local address for guests to
        // reach the host by, no router advertisement from a guest acted on.
        no_ipv6(&n).map_err(|_| rtnetlink::Error::RequestFailed)?;
        if !has_addr(&h, idx, gw).await? {
            h.address()
                .add(idx, std::net::IpAddr::V4(gw), prefix)
                .execute()
                .await?;
        }
        h.link()
            .set(LinkUnspec::new_with_index(idx).up().build())
            .execute()
            .await?;
        Ok(())
    })?;
    // Isolated: no routing off the bridge, so guests reach the host's services on the
    // gateway and nothing beyond it. With a NAT uplink the host routes for the bridge and
    // onebox's nft table decides what may pass.
    nat::set_forwarding(&name, net.forwarding)?;
    // Filtered by security groups from its first frame, not only after the next apply.
    if let Err(e) = sg::enable_bridge(&name) {
        tracing::warn!(bridge = %name, error = %e, "br_netfilter not switched on for the bridge");
    }
    tracing::debug!(bridge = %name, network_id = %net.id, forwarding = net.forwarding, "bridge ready");
    Ok(name)
}

/// Sets br_netfilter's per-bridge switch `nf_call_iptables` on `bridge`: IPv4 frames it
/// bridges pass the inet hooks (with conntrack), which [`sg`] filters at.
pub(crate) fn set_nf_call_iptables(bridge: &str) -> Result<()> {
    let n = bridge.to_owned();
    with_handle(async move |h| {
        let msg = rtnetlink::LinkMessageBuilder::<LinkBridge>::new(&n)
            .nf_call_iptables(true)
            .build();
        h.link().change(msg).execute().await
    })
}

/// Turns IPv6 off on a host interface (a bridge, the host end of a port): router
/// advertisements ignored (`accept_ra=0`, `autoconf=0`), then no IPv6 at all
/// (`disable_ipv6=1`, which also drops IPv6 packets arriving on it). Nothing to do on a host
/// without IPv6. Works in the calling thread's network namespace.
pub fn no_ipv6(ifname: &str) -> Result<()> {
    let dir = format!("/proc/sys/net/ipv6/conf/{ifname}");
    if !std::path::Path::new(&dir).exists() {
        return Ok(());
    }
    for (key, value) in [("accept_ra", "0"), ("autoconf", "0"), ("disable_ipv6", "1")] {
        let path = format!("{dir}/{key}");
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current.trim() != value {
            std::fs::write(&path, value).map_err(|e| Error::Io(path, e))?;
        }
    }
    Ok(())
}

/// Adds an extra address (e.g. the metadata service's 169.254.169.254/32) to a bridge.
pub fn ensure_address(ifname: &str, addr: Ipv4Addr, prefix: u8) -> Result<()> {
    let n = ifname.to_owned();
    with_handle(async move |h| {
        let idx = index_of(&h, &n)
            .await?
            .ok_or(rtnetlink::Error::RequestFailed)?;
        if !has_addr(&h, idx, addr).await? {
            h.address()
                .add(idx, std::net::IpAddr::V4(addr), prefix)
                .execute()
                .await?;
        }
        Ok(())
    })
}

/// Whether `ifname` exists and has `addr` (any prefix length).
pub fn has_address(ifname: &str, addr: Ipv4Addr) -> Result<bool> {
    let n = ifname.to_owned();
    with_handle(async move |h| match index_of(&h, &n).await? {
        Some(idx) => has_addr(&h, idx, addr).await,
        None => Ok(false),
    })
}

/// Deletes `addr` from `ifname` if it is there (whatever its prefix length).
pub fn delete_address(ifname: &str, addr: Ipv4Addr) -> Result<()> {
    let n = ifname.to_owned();
    with_handle(async move |h| {
        let Some(idx) = index_of(&h, &n).await? else {
            return Ok(());
        };
        let mut found = Vec::new();
        let mut addrs = h.address().get().set_link_index_filter(idx).execute();
        while let Some(a) = addrs.try_next().await? {
            let ours = a.attributes.iter().any(|attr| {
                matches!(attr, rtnetlink::packet_route::address::AddressAttribute::Address(
                    std::net::IpAddr::V4(v)) if *v == addr)
            });
            if ours {
                found.push(a);
            }
        }
        for a in found {
            h.address().del(a).execute().await?;
        }
        Ok(())
    })
}

/// Deletes an interface (a bridge, or a veth and its peer) if it exists.
pub fn delete_link(name: &str) -> Result<()> {
    let n = name.to_owned();
    with_handle(async move |h| {
        if let Some(idx) = index_of(&h, &n).await? {
            h.link().del(idx).execute().await?;
        }
        Ok(())
    })
}

/// Removes a network's bridge.
pub fn remove_bridge(network_id: &str) -> Result<()> {
    delete_link(&bridge_name(network_id))
}

/// Creates a veth pair whose `host` end is attached to `bridge` and up; the `peer` end is
/// left for [`move_to_netns`]. An existing pair of that name is replaced.
pub fn create_veth(host: &str, peer: &str, bridge: &str) -> Result<()> {
    let (host, peer, bridge) = (host.to_owned(), peer.to_owned(), bridge.to_owned());
    with_handle(async move |h| {
        if let Some(old) = index_of(&h, &host).await? {
            h.link().del(old).execute().await?;
        }
        h.link()
            .add(LinkVeth::new(&host, &peer).build())
            .execute()
            .await?;
        let br = index_of(&h, &bridge)
            .await?
            .ok_or(rtnetlink::Error::RequestFailed)?;
        let idx = index_of(&h, &host)
            .await?
            .ok_or(rtnetlink::Error::RequestFailed)?;
        no_ipv6(&host).map_err(|_| rtnetlink::Error::RequestFailed)?;
        h.link()
            .set(LinkUnspec::new_with_index(idx).controller(br).up().build())
            .execute()
            .await?;
        Ok(())
    })
}

/// Moves interface `name` into the network namespace of process `pid`.
pub fn move_to_netns(name: &str, pid: u32) -> Result<()> {
    let n = name.to_owned();
    with_handle(async move |h| {
        let idx = index_of(&h, &n)
            .await?
            .ok_or(rtnetlink::Error::RequestFailed)?;
        h.link()
            .set(LinkUnspec::new_with_index(idx).setns_by_pid(pid).build())
            .execute()
            .await?;
        Ok(())
    })
}

/// How an interface inside a guest's namespace is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// Its name as it arrived in the namespace.
    pub current_name: String,
    /// The name to give it (e.g. `eth0`).
    pub name: String,
    /// `aa:bb:cc:dd:ee:ff`
    pub mac: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    /// Default route, when given.
    pub gateway: Option<Ipv4Addr>,
    /// Further routes through this interface: (destination, prefix length, next hop).
    pub routes: Vec<(Ipv4Addr, u8, Ipv4Addr)>,
}

/// Parses a subnet's host routes (`destination CIDR`, `next hop`); malformed ones are left
/// out.
pub fn parse_routes(routes: &[(String, String)]) -> Vec<(Ipv4Addr, u8, Ipv4Addr)> {
    routes
        .iter()
        .filter_map(|(d, h)| {
            let (net, len) = nat::parse_prefix(d).ok()?;
            Some((net, len, h.parse().ok()?))
        })
        .collect()
}

pub(crate) fn parse_mac(mac: &str) -> Option<Vec<u8>> {
    let v: Vec<u8> = mac
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    (v.len() == 6).then_some(v)
}

/// Inside the network namespace of process `pid`: brings `lo` up, renames the interface,
/// sets its MAC and address, brings it up and adds the default route. Runs on a thread of
/// its own that joins the namespace, so the caller's namespace never changes.
pub fn configure_in_netns(pid: u32, cfg: &InterfaceConfig) -> Result<()> {
    let cfg = cfg.clone();
    let mac = parse_mac(&cfg.mac)
        .ok_or_else(|| Error::Invalid(cfg.name.clone(), format!("bad MAC {}", cfg.mac)))?;
    let ns_path = format!("/proc/{pid}/ns/net");
    let ns = std::fs::File::open(&ns_path).map_err(|e| Error::Io(ns_path.clone(), e))?;
    std::thread::spawn(move || -> Result<()> {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::Io(ns_path, e.into()))?;
        with_handle(async move |h| {
            if let Some(lo) = index_of(&h, "lo").await? {
                h.link()
                    .set(LinkUnspec::new_with_index(lo).up().build())
                    .execute()
                    .await?;
            }
            let idx = index_of(&h, &cfg.current_name)
                .await?
                .or(index_of(&h, &cfg.name).await?)
                .ok_or(rtnetlink::Error::RequestFailed)?;
            h.link()
                .set(
                    LinkUnspec::new_with_index(idx)
                        .down()
                        .name(cfg.name.clone())
                        .address(mac)
                        .build(),
                )
                .execute()
                .await?;
            if !has_addr(&h, idx, cfg.address).await? {
                h.address()
                    .add(idx, std::net::IpAddr::V4(cfg.address), cfg.prefix)
                    .execute()
                    .await?;
            }
            h.link()
                .set(LinkUnspec::new_with_index(idx).up().build())
                .execute()
                .await?;
            let mut routes: Vec<_> = cfg
                .routes
                .iter()
                .map(|(net, len, hop)| {
                    rtnetlink::RouteMessageBuilder::<Ipv4Addr>::new()
                        .destination_prefix(*net, *len)
                        .gateway(*hop)
                        .build()
                })
                .collect();
            if let Some(gw) = cfg.gateway {
                routes.push(
                    rtnetlink::RouteMessageBuilder::<Ipv4Addr>::new()
                        .gateway(gw)
                        .build(),
                );
            }
            for route in routes {
                match h.route().add(route).execute().await {
                    Ok(()) => {}
                    // EEXIST: the route is there already.
                    Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -17 => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    })
    .join()
    .map_err(|_| Error::Netlink("namespace thread panicked".into()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names_fit_the_kernel_limit_and_are_stable() {
        let n = bridge_name("5f2a1c3e-9b7d-4e0a-8c6f-0123456789ab");
        assert_eq!(n, "obr5f2a1c3e9b7");
        assert!(n.len() <= 15);
        assert_eq!(n, bridge_name("5f2a1c3e-9b7d-4e0a-8c6f-0123456789ab"));
    }

    #[test]
    fn macs_parse() {
        assert_eq!(
            parse_mac("fa:16:3e:00:0a:ff"),
            Some(vec![0xfa, 0x16, 0x3e, 0, 0x0a, 0xff])
        );
        assert_eq!(parse_mac("fa:16:3e"), None);
        assert_eq!(parse_mac("zz:16:3e:00:0a:ff"), None);
    }
}
