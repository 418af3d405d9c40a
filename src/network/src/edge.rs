//! The external network onebox was given (`[network] external_cidr`, `external_gateway`,
//! `floating_range`): the `public` network made from it at start, the checks that keep
//! every external address inside it, and what the host's edge is told.

use std::net::Ipv4Addr;

use model::network::{Cidr, NetworkRec, Pool, SubnetRec};
use model::{DomainId, ProjectId};
use store::network as sql;

use crate::{Error, Network, Result, now_stamp};

/// The external network: the uplink's LAN and the addresses of it onebox may hand out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeConfig {
    pub cidr: Cidr,
    /// The LAN's router.
    pub gateway: Ipv4Addr,
    /// Router gateways and floating IPs are taken from here only.
    pub range: Pool,
}

impl EdgeConfig {
    /// Whether onebox may use `a` on the LAN.
    pub fn allows(&self, a: Ipv4Addr) -> bool {
        model::network::in_pools(std::slice::from_ref(&self.range), a)
    }

    /// Whether the configuration is coherent: the range inside the prefix, the gateway in
    /// the prefix and outside the range.
    pub fn check(&self) -> std::result::Result<(), String> {
        let c = &self.cidr;
        if !(8..=30).contains(&c.len) {
            return Err(format!(
                "external_cidr {c}: the prefix length must be 8 to 30"
            ));
        }
        let usable = |a: Ipv4Addr| {
            let x = u32::from(a);
            c.contains(a) && x != c.first() && x != c.last()
        };
        if !usable(self.gateway) {
            return Err(format!(
                "external_gateway {} is not a host address of {c}",
                self.gateway
            ));
        }
        let (s, e) = (self.range.start, self.range.end);
        if !usable(s) || !usable(e) || u32::from(s) > u32::from(e) {
            return Err(format!(
                "floating_range {s}-{e} is not a range of host addresses of {c}"
            ));
        }
        if self.allows(self.gateway) {
            return Err(format!(
                "floating_range {s}-{e} holds external_gateway {}",
                self.gateway
            ));
        }
        Ok(())
    }
}

/// What the host's edge must say, as records: the rows and which network is the external
/// one onebox was given (routers and floating IPs on any other are not on the host).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EdgeRecords {
    pub public_network: Option<String>,
    pub rows: sql::EdgeRows,
}

/// The name of the external network onebox makes.
pub const PUBLIC: &str = "public";

impl Network {
    pub fn edge_config(&self) -> Option<&EdgeConfig> {
        self.edge.as_deref()
    }

    /// Makes the `public` external network exist (owned by the admin project, one subnet of
    /// the configured prefix, gateway and range, no DHCP) and remembers it. Nothing without
    /// an external network configured. Called at start, before the first [`Network::resync`].
    pub async fn ensure_public(&self) -> Result<Option<NetworkRec>> {
        let Some(cfg) = self.edge.clone() else {
            return Ok(None);
        };
        let id = self
            .store
            .write(move |c| {
                let nets = sql::list_networks(c, &sql::Scope::All)?;
                let subnet = |network: &NetworkRec| SubnetRec {
                    id: model::network::new_id(),
                    network_id: network.id.clone(),
                    project_id: network.project_id.clone(),
                    name: format!("{PUBLIC}-subnet"),
                    description: String::new(),
                    ip_version: 4,
                    cidr: cfg.cidr,
                    gateway_ip: Some(cfg.gateway),
                    enable_dhcp: false,
                    allocation_pools: vec![cfg.range.clone()],
                    dns_nameservers: Vec::new(),
                    host_routes: Vec::new(),
                    tags: Vec::new(),
                    stamp: now_stamp(),
                };
                if let Some(n) = nets.iter().find(|n| n.external && n.name == PUBLIC) {
                    let subnets = sql::network_subnets(c, &n.id)?;
                    if subnets.is_empty() {
                        // An admin deleted it: the configured one again.
                        sql::insert_subnet(c, &subnet(n))?;
                    }
                    for mut s in subnets {
                        if s.cidr == cfg.cidr
                            && (s.gateway_ip != Some(cfg.gateway)
                                || s.allocation_pools != [cfg.range.clone()])
                        {
                            s.gateway_ip = Some(cfg.gateway);
                            s.allocation_pools = vec![cfg.range.clone()];
                            sql::update_subnet(c, &s)?;
                            tracing::info!(subnet_id = %s.id, "public subnet follows the configuration");
                        }
                    }
                    return Ok(n.id.clone());
                }
                let owner = store::identity::find_project(c, &DomainId::default_domain(), "admin")?
                    .map(|p| p.id)
                    .unwrap_or_else(|| ProjectId::new(""));
                let n = NetworkRec {
                    id: model::network::new_id(),
                    project_id: owner,
                    name: PUBLIC.into(),
                    description: String::new(),
                    admin_state_up: true,
                    shared: false,
                    external: true,
                    mtu: 1500,
                    port_security: true,
                    is_default: false,
                    subnets: Vec::new(),
                    tags: Vec::new(),
                    stamp: now_stamp(),
                };
                sql::insert_network(c, &n)?;
                sql::insert_subnet(c, &subnet(&n))?;
                tracing::info!(network_id = %n.id, cidr = %cfg.cidr, "public network created");
                Ok(n.id)
            })
            .await?;
        if let Ok(mut g) = self.public.write() {
            *g = Some(id.clone());
        }
        Ok(self
            .store
            .read(move |c| sql::get_network(c, &sql::Scope::All, &id))
            .await?)
    }

    /// A subnet on an external network: with an external network configured, only the
    /// `public` one has a subnet, made by onebox (no admin hands out addresses onebox was
    /// not given).
    pub(crate) fn check_external_subnet(&self, network: &NetworkRec) -> Result<()> {
        if !network.external || self.edge.is_none() {
            return Ok(());
        }
        Err(Error::invalid(format!(
            "Network {} is external: onebox's external addresses are those of [network] external_cidr and floating_range, on its network '{PUBLIC}'.",
            network.id
        )))
    }

    /// Changed pools or gateway of the `public` subnet stay inside what onebox was given.
    pub(crate) fn check_external_pools(&self, s: &SubnetRec) -> Result<()> {
        let Some(cfg) = self.edge.as_deref() else {
            return Ok(());
        };
        if self.public_id().as_deref() != Some(s.network_id.as_str()) {
            return Ok(());
        }
        let inside = s
            .allocation_pools
            .iter()
            .all(|p| cfg.allows(p.start) && cfg.allows(p.end));
        if !inside || s.gateway_ip != Some(cfg.gateway) {
            return Err(Error::invalid(format!(
                "The subnet of network '{PUBLIC}' keeps the gateway {} and pools inside {}-{} ([network] floating_range).",
                cfg.gateway, cfg.range.start, cfg.range.end
            )));
        }
        Ok(())
    }

    /// An external address asked for by an admin lies in the floating range.
    pub(crate) fn check_external_address(&self, a: Ipv4Addr) -> Result<()> {
        match self.edge.as_deref() {
            Some(cfg) if !cfg.allows(a) => Err(Error::invalid(format!(
                "{a} is not in [network] floating_range {}-{}.",
                cfg.range.start, cfg.range.end
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(cidr: &str, gw: [u8; 4], start: [u8; 4], end: [u8; 4]) -> EdgeConfig {
        EdgeConfig {
            cidr: Cidr::parse(cidr, true).expect("cidr"),
            gateway: Ipv4Addr::from(gw),
            range: Pool {
                start: Ipv4Addr::from(start),
                end: Ipv4Addr::from(end),
            },
        }
    }

    #[test]
    fn the_external_range_is_checked_and_bounds_every_address() {
        let ok = cfg(
            "192.0.2.0/24",
            [192, 0, 2, 1],
            [192, 0, 2, 100],
            [192, 0, 2, 120],
        );
        ok.check().expect("coherent");
        assert!(ok.allows(Ipv4Addr::new(192, 0, 2, 100)));
        assert!(ok.allows(Ipv4Addr::new(192, 0, 2, 120)));
        assert!(!ok.allows(Ipv4Addr::new(192, 0, 2, 99)));
        assert!(!ok.allows(Ipv4Addr::new(192, 0, 2, 1)));
        for bad in [
            // The gateway in the range, outside the prefix, the network's address.
            cfg(
                "192.0.2.0/24",
                [192, 0, 2, 110],
                [192, 0, 2, 100],
                [192, 0, 2, 120],
            ),
            cfg(
                "192.0.2.0/24",
                [192, 0, 3, 1],
                [192, 0, 2, 100],
                [192, 0, 2, 120],
            ),
            cfg(
                "192.0.2.0/24",
                [192, 0, 2, 0],
                [192, 0, 2, 100],
                [192, 0, 2, 120],
            ),
            // The range reversed, past the prefix, on the broadcast address.
            cfg(
                "192.0.2.0/24",
                [192, 0, 2, 1],
                [192, 0, 2, 120],
                [192, 0, 2, 100],
            ),
            cfg(
                "192.0.2.0/24",
                [192, 0, 2, 1],
                [192, 0, 2, 100],
                [192, 0, 3, 5],
            ),
            cfg(
                "192.0.2.0/24",
                [192, 0, 2, 1],
                [192, 0, 2, 200],
                [192, 0, 2, 255],
            ),
            // A prefix with no room.
            cfg(
                "192.0.2.0/31",
                [192, 0, 2, 1],
                [192, 0, 2, 0],
                [192, 0, 2, 0],
            ),
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }
}
