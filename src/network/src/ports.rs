//! Ports: a network's interface, with its addresses, groups and address pairs.

use model::network::{AddressPair, FixedIp, PortRec, owner, parse_v4};
use model::{Context, ProjectId};
use store::network::{self as sql, Allocation, Scope};

use crate::{
    Error, Network, Result, abort, may_write, now_stamp, owner_for, quota, scope_of, unwrap_abort,
};

#[derive(Clone, Debug, Default)]
pub struct FixedIpRequest {
    pub subnet_id: Option<String>,
    pub ip_address: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct PortCreate {
    pub network_id: String,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub mac_address: Option<String>,
    pub fixed_ips: Option<Vec<FixedIpRequest>>,
    pub device_id: String,
    pub device_owner: String,
    pub security_groups: Option<Vec<String>>,
    pub port_security: Option<bool>,
    pub allowed_address_pairs: Vec<(String, Option<String>)>,
    pub project_id: Option<String>,
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct PortUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_state_up: Option<bool>,
    pub mac_address: Option<String>,
    pub fixed_ips: Option<Vec<FixedIpRequest>>,
    pub device_id: Option<String>,
    pub device_owner: Option<String>,
    pub security_groups: Option<Vec<String>>,
    pub port_security: Option<bool>,
    pub allowed_address_pairs: Option<Vec<(String, Option<String>)>>,
}

pub(crate) fn not_found(id: &str) -> Error {
    Error::not_found("PortNotFound", format!("Port {id} could not be found."))
}

fn valid_mac(m: &str) -> bool {
    let parts: Vec<&str> = m.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
        // Not multicast, not all zero.
        && u8::from_str_radix(parts[0], 16).is_ok_and(|b| b & 1 == 0)
        && m != "00:00:00:00:00:00"
}

/// Allocates `asked` on `network` (every address checked and taken in this transaction).
pub(crate) fn allocate(
    c: &store::Connection,
    network: &str,
    asked: Option<&[FixedIpRequest]>,
) -> store::Result<Vec<FixedIp>> {
    let subnets = sql::network_subnets(c, network)?;
    let Some(asked) = asked else {
        // One address from the first subnet that has one free.
        for s in &subnets {
            if let Allocation::Address(a) = sql::allocate_ip(c, s, None)? {
                return Ok(vec![FixedIp {
                    subnet_id: s.id.clone(),
                    ip_address: a,
                }]);
            }
        }
        if subnets.is_empty() {
            return Ok(Vec::new());
        }
        return Err(abort(Error::conflict(
            "IpAddressGenerationFailure",
            format!("No more IP addresses available on network {network}."),
        )));
    };
    let mut out: Vec<FixedIp> = Vec::new();
    for f in asked {
        let want =
            match &f.ip_address {
                Some(s) => Some(parse_v4(s).ok_or_else(|| {
                    abort(Error::invalid(format!("{s} is not a valid IP address.")))
                })?),
                None => None,
            };
        let subnet = match (&f.subnet_id, want) {
            (Some(id), _) => subnets.iter().find(|s| &s.id == id).ok_or_else(|| {
                abort(Error::invalid(format!(
                    "Failed to create port on network {network}, because fixed_ips included invalid subnet {id}"
                )))
            })?,
            (None, Some(a)) => subnets.iter().find(|s| s.cidr.contains(a)).ok_or_else(|| {
                abort(Error::bad(
                    "InvalidIpForNetwork",
                    format!("IP address {a} is not a valid IP for any of the subnets on the specified network."),
                ))
            })?,
            (None, None) => {
                return Err(abort(Error::invalid(
                    "Exceeded maximum amount of fixed ips per port.",
                )));
            }
        };
        if want.is_some_and(|a| out.iter().any(|o| o.ip_address == a)) {
            return Err(abort(Error::invalid("Duplicate IP address in fixed_ips.")));
        }
        match sql::allocate_ip(c, subnet, want)? {
            Allocation::Address(a) if out.iter().all(|o| o.ip_address != a) => out.push(FixedIp {
                subnet_id: subnet.id.clone(),
                ip_address: a,
            }),
            Allocation::Address(_) | Allocation::Exhausted => {
                return Err(abort(Error::conflict(
                    "IpAddressGenerationFailure",
                    format!("No more IP addresses available on network {network}."),
                )));
            }
            Allocation::Taken => {
                return Err(abort(Error::conflict(
                    "IpAddressAlreadyAllocated",
                    format!(
                        "IP address {} already allocated in subnet {}",
                        want.map(|a| a.to_string()).unwrap_or_default(),
                        subnet.id
                    ),
                )));
            }
            Allocation::Outside => {
                return Err(abort(Error::bad(
                    "InvalidIpForSubnet",
                    format!(
                        "IP address {} is not a valid IP for the specified subnet.",
                        want.map(|a| a.to_string()).unwrap_or_default()
                    ),
                )));
            }
        }
    }
    Ok(out)
}

/// The project's groups named by id; the `default` group when `None`.
fn groups(
    c: &store::Connection,
    project: &ProjectId,
    asked: Option<&[String]>,
) -> store::Result<Vec<String>> {
    let Some(asked) = asked else {
        return Ok(vec![sql::ensure_default_group(c, project)?]);
    };
    let scope = Scope::Project(project.clone());
    let mut out = Vec::new();
    for g in asked {
        if sql::get_security_group(c, &scope, g)?.is_none() {
            return Err(abort(Error::not_found(
                "SecurityGroupNotFound",
                format!("Security group {g} does not exist"),
            )));
        }
        if !out.contains(g) {
            out.push(g.clone());
        }
    }
    Ok(out)
}

fn pairs(mac: &str, asked: &[(String, Option<String>)]) -> Result<Vec<AddressPair>> {
    asked
        .iter()
        .map(|(ip, m)| {
            let ok = parse_v4(ip).is_some() || model::network::Cidr::parse(ip, false).is_some();
            if !ok {
                return Err(Error::invalid(format!("'{ip}' is not a valid IP address")));
            }
            let mac = m.clone().unwrap_or_else(|| mac.to_owned());
            if !valid_mac(&mac) {
                return Err(Error::invalid(format!(
                    "'{mac}' is not a valid MAC address"
                )));
            }
            Ok(AddressPair {
                ip_address: ip.clone(),
                mac_address: mac,
            })
        })
        .collect()
}

/// On a network it does not own (a shared one), a project may neither turn port security
/// off nor add allowed address pairs (Neutron's network-owner policy): either would let its
/// guests speak with other projects' addresses.
fn owner_only_fields(port_security: Option<bool>, no_pairs: bool, what: &str) -> Result<()> {
    if port_security.is_some() {
        return Err(Error::Forbidden(format!(
            "rule:{what}:port_security_enabled is disallowed by policy"
        )));
    }
    if !no_pairs {
        return Err(Error::Forbidden(format!(
            "rule:{what}:allowed_address_pairs is disallowed by policy"
        )));
    }
    Ok(())
}

fn security_needs(port_security: bool, groups: &[String], pairs: &[AddressPair]) -> Result<()> {
    if !port_security && !groups.is_empty() {
        return Err(Error::bad(
            "PortSecurityAndIPRequiredForSecurityGroups",
            "Port security must be enabled and port must have an IP address in order to use security groups.",
        ));
    }
    if !port_security && !pairs.is_empty() {
        return Err(Error::conflict(
            "AddressPairAndPortSecurityRequired",
            "Port Security must be enabled in order to have allowed address pairs on a port.",
        ));
    }
    Ok(())
}

impl Network {
    pub async fn list_ports(&self, ctx: &Context, q: sql::PortQuery) -> Result<Vec<PortRec>> {
        let scope = scope_of(ctx);
        Ok(self
            .store
            .read(move |c| sql::list_ports(c, &scope, &q))
            .await?)
    }

    pub async fn get_port(&self, ctx: &Context, id: &str) -> Result<PortRec> {
        let scope = scope_of(ctx);
        let i = id.to_owned();
        self.store
            .read(move |c| sql::get_port(c, &scope, &i))
            .await?
            .ok_or_else(|| not_found(id))
    }

    pub async fn create_port(&self, ctx: &Context, req: PortCreate) -> Result<PortRec> {
        may_write(ctx, "create_port")?;
        let net = self.get_network(ctx, &req.network_id).await?;
        let owns_net = ctx.can_write(&net.project_id);
        if net.external && !ctx.is_admin() {
            return Err(Error::Forbidden(
                "rule:create_port is disallowed by policy".into(),
            ));
        }
        if !owns_net && (req.mac_address.is_some() || req.device_owner.starts_with("network:")) {
            return Err(Error::Forbidden(
                "rule:create_port:mac_address is disallowed by policy".into(),
            ));
        }
        if !owns_net
            && req
                .fixed_ips
                .as_ref()
                .is_some_and(|f| f.iter().any(|f| f.ip_address.is_some()))
        {
            return Err(Error::Forbidden(
                "rule:create_port:fixed_ips:ip_address is disallowed by policy".into(),
            ));
        }
        if !owns_net {
            owner_only_fields(
                req.port_security.filter(|on| !on),
                req.allowed_address_pairs.is_empty(),
                "create_port",
            )?;
        }
        let project = owner_for(ctx, req.project_id.as_deref())?;
        let port_security = req.port_security.unwrap_or(net.port_security);
        let mac = match &req.mac_address {
            Some(m) if !valid_mac(m) => {
                return Err(Error::invalid(format!("'{m}' is not a valid MAC address")));
            }
            Some(m) => Some(m.to_ascii_lowercase()),
            None => None,
        };
        let id = model::network::new_id();
        let mut p = PortRec {
            id: id.clone(),
            network_id: net.id.clone(),
            project_id: project.clone(),
            name: req.name,
            description: req.description,
            mac_address: String::new(),
            admin_state_up: req.admin_state_up,
            status: "DOWN".into(),
            device_id: req.device_id,
            device_owner: req.device_owner,
            port_security,
            fixed_ips: Vec::new(),
            security_groups: Vec::new(),
            allowed_address_pairs: Vec::new(),
            compute_owned: false,
            position: 0,
            tags: req.tags,
            stamp: now_stamp(),
        };
        let asked_groups = req.security_groups.clone();
        let asked_pairs = req.allowed_address_pairs.clone();
        let fixed = req.fixed_ips.clone();
        unwrap_abort(
            self.store
                .write(move |c| {
                    quota(c, &project, "port")?;
                    p.mac_address = match mac {
                        Some(m) => {
                            if sql::mac_taken(c, &m)? {
                                return Err(abort(Error::conflict(
                                    "MacAddressInUse",
                                    format!("Unable to complete operation for network {}. The mac address {m} is in use.", p.network_id),
                                )));
                            }
                            m
                        }
                        None => sql::free_mac(c)?,
                    };
                    p.fixed_ips = allocate(c, &p.network_id, fixed.as_deref())?;
                    p.security_groups = if port_security {
                        groups(c, &project, asked_groups.as_deref())?
                    } else {
                        // Groups asked on a port without port security are refused below.
                        asked_groups.unwrap_or_default()
                    };
                    p.allowed_address_pairs =
                        pairs(&p.mac_address, &asked_pairs).map_err(abort)?;
                    security_needs(port_security, &p.security_groups, &p.allowed_address_pairs)
                        .map_err(abort)?;
                    sql::insert_port(c, &p)
                })
                .await,
        )?;
        tracing::info!(port_id = %id, "port created");
        self.resync().await?;
        self.get_port(ctx, &id).await
    }

    async fn writable_port(&self, ctx: &Context, id: &str, what: &str) -> Result<PortRec> {
        may_write(ctx, what)?;
        let p = self.get_port(ctx, id).await?;
        if !ctx.can_write(&p.project_id) {
            return Err(Error::Forbidden(format!(
                "rule:{what} is disallowed by policy"
            )));
        }
        Ok(p)
    }

    pub async fn update_port(&self, ctx: &Context, id: &str, u: PortUpdate) -> Result<PortRec> {
        let mut p = self.writable_port(ctx, id, "update_port").await?;
        if u.port_security.is_some() || u.allowed_address_pairs.is_some() {
            let net = self.get_network(ctx, &p.network_id).await?;
            if !ctx.can_write(&net.project_id) {
                owner_only_fields(
                    u.port_security.filter(|on| !on && p.port_security),
                    u.allowed_address_pairs.as_ref().is_none_or(Vec::is_empty),
                    "update_port",
                )?;
            }
        }
        if let Some(m) = &u.mac_address
            && *m != p.mac_address
        {
            if !ctx.is_admin() {
                return Err(Error::Forbidden(
                    "rule:update_port:mac_address is disallowed by policy".into(),
                ));
            }
            if !valid_mac(m) {
                return Err(Error::invalid(format!("'{m}' is not a valid MAC address")));
            }
            if !p.device_id.is_empty() {
                return Err(Error::conflict(
                    "PortBound",
                    format!("Unable to complete operation on port {id}, port is already bound."),
                ));
            }
            p.mac_address = m.to_ascii_lowercase();
        }
        if let Some(v) = u.name {
            p.name = v;
        }
        if let Some(v) = u.description {
            p.description = v;
        }
        if let Some(v) = u.admin_state_up {
            p.admin_state_up = v;
        }
        if let Some(v) = u.device_id {
            p.device_id = v;
        }
        if let Some(v) = u.device_owner {
            if v.starts_with("network:") && !ctx.is_admin() && v != p.device_owner {
                return Err(Error::Forbidden(
                    "rule:update_port:device_owner is disallowed by policy".into(),
                ));
            }
            p.device_owner = v;
        }
        if let Some(v) = u.port_security {
            p.port_security = v;
            if !v && u.security_groups.is_none() {
                // Neutron asks for the groups to be removed in the same request.
                if !p.security_groups.is_empty() {
                    return Err(Error::bad(
                        "PortSecurityPortHasSecurityGroup",
                        "Port has security group associated. Cannot disable port security or ip address until security group is removed",
                    ));
                }
            }
        }
        if let Some(pairs_asked) = &u.allowed_address_pairs {
            p.allowed_address_pairs = pairs(&p.mac_address, pairs_asked)?;
        }
        let project = p.project_id.clone();
        let asked_groups = u.security_groups.clone();
        let fixed = u.fixed_ips.clone();
        unwrap_abort(
            self.store
                .write(move |c| {
                    if let Some(g) = asked_groups {
                        p.security_groups = groups(c, &project, Some(&g))?;
                    }
                    security_needs(
                        p.port_security,
                        &p.security_groups,
                        &p.allowed_address_pairs,
                    )
                    .map_err(abort)?;
                    if let Some(f) = fixed {
                        // The port's own addresses are free for it to keep.
                        p.fixed_ips = Vec::new();
                        sql::update_port(c, &p)?;
                        p.fixed_ips = allocate(c, &p.network_id, Some(&f))?;
                    }
                    sql::update_port(c, &p)
                })
                .await,
        )?;
        self.resync().await?;
        self.apply_plugged(None, Some(id)).await?;
        self.get_port(ctx, id).await
    }

    pub async fn delete_port(&self, ctx: &Context, id: &str) -> Result<()> {
        let p = self.writable_port(ctx, id, "delete_port").await?;
        if [
            owner::ROUTER_INTERFACE,
            owner::ROUTER_GATEWAY,
            owner::FLOATING_IP,
        ]
        .contains(&p.device_owner.as_str())
        {
            return Err(Error::conflict(
                "PortInUse",
                format!(
                    "Port {id} cannot be deleted directly via the port API: has device owner {}.",
                    p.device_owner
                ),
            ));
        }
        if p.device_owner == owner::COMPUTE && !p.device_id.is_empty() {
            return Err(Error::conflict(
                "PortInUse",
                format!(
                    "Port {id} is attached to server {}; detach it from the server first.",
                    p.device_id
                ),
            ));
        }
        let i = id.to_owned();
        self.store.write(move |c| sql::delete_port(c, &i)).await?;
        tracing::info!(port_id = %id, "port deleted");
        self.resync().await?;
        Ok(())
    }
}
