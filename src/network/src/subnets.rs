//! Subnets: CIDR, gateway, pools, DNS servers and routes, checked as Neutron checks them.

use std::net::Ipv4Addr;

use model::Context;
use model::network::{Cidr, HostRoute, Pool, SubnetRec, parse_v4};
use store::network as sql;

use crate::{
    Error, Network, Result, abort, may_write, now_stamp, owner_for, quota, scope_of, unwrap_abort,
};

#[derive(Clone, Debug, Default)]
pub struct SubnetCreate {
    pub network_id: String,
    pub name: String,
    pub description: String,
    pub ip_version: u8,
    pub cidr: String,
    /// `None`: the default (first address); `Some(None)`: no gateway.
    pub gateway_ip: Option<Option<String>>,
    pub enable_dhcp: bool,
    pub allocation_pools: Option<Vec<(String, String)>>,
    pub dns_nameservers: Vec<String>,
    pub host_routes: Vec<(String, String)>,
    pub project_id: Option<String>,
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct SubnetUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub gateway_ip: Option<Option<String>>,
    pub enable_dhcp: Option<bool>,
    pub allocation_pools: Option<Vec<(String, String)>>,
    pub dns_nameservers: Option<Vec<String>>,
    pub host_routes: Option<Vec<(String, String)>>,
}

pub(crate) fn not_found(id: &str) -> Error {
    Error::not_found("SubnetNotFound", format!("Subnet {id} could not be found."))
}

fn ip(s: &str, what: &str) -> Result<Ipv4Addr> {
    parse_v4(s)
        .ok_or_else(|| Error::invalid(format!("'{s}' is not a valid IP address for {what}.")))
}

fn gateway(cidr: &Cidr, g: Option<Option<String>>) -> Result<Option<Ipv4Addr>> {
    match g {
        None => Ok(cidr.default_gateway()),
        Some(None) => Ok(None),
        Some(Some(s)) if s.is_empty() => Ok(None),
        Some(Some(s)) => {
            let a = ip(&s, "gateway_ip")?;
            let x = u32::from(a);
            if !cidr.contains(a) || (cidr.len < 31 && (x == cidr.first() || x == cidr.last())) {
                return Err(Error::invalid(format!(
                    "Gateway IP {a} is not a usable address of subnet {cidr}."
                )));
            }
            Ok(Some(a))
        }
    }
}

fn pools(
    id: &str,
    cidr: &Cidr,
    gw: Option<Ipv4Addr>,
    asked: Option<Vec<(String, String)>>,
) -> Result<Vec<Pool>> {
    let Some(asked) = asked else {
        return Ok(cidr.default_pools(gw));
    };
    let mut out: Vec<Pool> = Vec::new();
    for (s, e) in asked {
        let (start, end) = (ip(&s, "allocation_pools")?, ip(&e, "allocation_pools")?);
        let p = Pool { start, end };
        if u32::from(start) > u32::from(end) {
            return Err(Error::bad(
                "InvalidAllocationPool",
                format!("The allocation pool {start}-{end} is not valid."),
            ));
        }
        if !cidr.contains(start) || !cidr.contains(end) {
            return Err(Error::bad(
                "OutOfBoundsAllocationPool",
                format!("The allocation pool {start}-{end} spans beyond the subnet cidr {cidr}."),
            ));
        }
        if let Some(o) = out
            .iter()
            .find(|o| u32::from(o.start) <= u32::from(end) && u32::from(start) <= u32::from(o.end))
        {
            return Err(Error::bad(
                "OverlappingAllocationPools",
                format!(
                    "Found overlapping allocation pools: {}-{} and {start}-{end} for subnet {id}.",
                    o.start, o.end
                ),
            ));
        }
        if let Some(g) = gw
            && model::network::in_pools(std::slice::from_ref(&p), g)
        {
            return Err(Error::conflict(
                "GatewayConflictWithAllocationPools",
                format!("Gateway ip {g} conflicts with allocation pool {start}-{end}"),
            ));
        }
        out.push(p);
    }
    Ok(out)
}

fn nameservers(v: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for s in v {
        let a = parse_v4(s)
            .ok_or_else(|| Error::invalid(format!("'{s}' is not a valid nameserver.")))?;
        if out.contains(&a.to_string()) {
            return Err(Error::invalid(format!("Duplicate nameserver '{s}'.")));
        }
        out.push(a.to_string());
    }
    Ok(out)
}

fn routes(v: &[(String, String)]) -> Result<Vec<HostRoute>> {
    v.iter()
        .map(|(d, n)| {
            let dest = Cidr::parse(d, false).ok_or_else(|| {
                Error::invalid(format!("'{d}' is not a valid host route destination."))
            })?;
            let hop = ip(n, "host_routes")?;
            Ok(HostRoute {
                destination: dest.to_string(),
                nexthop: hop.to_string(),
            })
        })
        .collect()
}

impl Network {
    pub async fn list_subnets(&self, ctx: &Context) -> Result<Vec<SubnetRec>> {
        let scope = scope_of(ctx);
        Ok(self
            .store
            .read(move |c| sql::list_subnets(c, &scope))
            .await?)
    }

    pub async fn get_subnet(&self, ctx: &Context, id: &str) -> Result<SubnetRec> {
        let scope = scope_of(ctx);
        let i = id.to_owned();
        self.store
            .read(move |c| sql::get_subnet(c, &scope, &i))
            .await?
            .ok_or_else(|| not_found(id))
    }

    pub async fn create_subnet(&self, ctx: &Context, req: SubnetCreate) -> Result<SubnetRec> {
        may_write(ctx, "create_subnet")?;
        let net = self
            .get_network(ctx, &req.network_id)
            .await
            .map_err(|_| crate::networks::not_found(&req.network_id))?;
        if !ctx.can_write(&net.project_id) {
            return Err(Error::Forbidden(
                "rule:create_subnet is disallowed by policy".into(),
            ));
        }
        self.check_external_subnet(&net)?;
        if req.ip_version != 4 {
            return Err(Error::invalid(
                "onebox's networks carry IPv4 only; ip_version must be 4.",
            ));
        }
        let Some(cidr) = Cidr::parse(&req.cidr, false) else {
            return Err(Error::invalid(format!(
                "{} is not in a CIDR format.",
                req.cidr
            )));
        };
        if cidr.to_string() != req.cidr {
            return Err(Error::invalid(format!(
                "'{}' isn't a recommended CIDR, it should be '{cidr}'",
                req.cidr
            )));
        }
        if !(8..=30).contains(&cidr.len) {
            return Err(Error::invalid(format!(
                "The prefix length of {cidr} must be between 8 and 30."
            )));
        }
        let id = model::network::new_id();
        let gw = gateway(&cidr, req.gateway_ip)?;
        let allocation_pools = pools(&id, &cidr, gw, req.allocation_pools)?;
        let project = owner_for(ctx, req.project_id.as_deref()).map(|p| {
            if ctx.is_admin() {
                p
            } else {
                net.project_id.clone()
            }
        })?;
        let s = SubnetRec {
            id: id.clone(),
            network_id: net.id.clone(),
            project_id: project.clone(),
            name: req.name,
            description: req.description,
            ip_version: 4,
            cidr,
            gateway_ip: gw,
            enable_dhcp: req.enable_dhcp,
            allocation_pools,
            dns_nameservers: nameservers(&req.dns_nameservers)?,
            host_routes: routes(&req.host_routes)?,
            tags: req.tags,
            stamp: now_stamp(),
        };
        let external = net.external;
        unwrap_abort(
            self.store
                .write(move |c| {
                    quota(c, &project, "subnet")?;
                    for (n, other) in sql::project_subnet_cidrs(c, &project)? {
                        if other.overlaps(&cidr) && n == s.network_id {
                            return Err(abort(Error::invalid(format!(
                                "Requested subnet with cidr: {cidr} for network: {n} overlaps with another subnet."
                            ))));
                        }
                    }
                    // Every project network is a bridge with its gateway on this one host:
                    // two subnets sharing addresses would share the host's routes.
                    if !external && sql::all_subnet_cidrs(c)?.iter().any(|o| o.overlaps(&cidr)) {
                        return Err(abort(Error::invalid(format!(
                            "Requested subnet with cidr: {cidr} overlaps with another subnet on this host."
                        ))));
                    }
                    sql::insert_subnet(c, &s)
                })
                .await,
        )?;
        tracing::info!(subnet_id = %id, %cidr, "subnet created");
        self.get_subnet(ctx, &id).await
    }

    async fn writable_subnet(&self, ctx: &Context, id: &str, what: &str) -> Result<SubnetRec> {
        may_write(ctx, what)?;
        let s = self.get_subnet(ctx, id).await?;
        if !ctx.can_write(&s.project_id) {
            return Err(Error::Forbidden(format!(
                "rule:{what} is disallowed by policy"
            )));
        }
        Ok(s)
    }

    pub async fn update_subnet(
        &self,
        ctx: &Context,
        id: &str,
        u: SubnetUpdate,
    ) -> Result<SubnetRec> {
        let mut s = self.writable_subnet(ctx, id, "update_subnet").await?;
        if let Some(g) = u.gateway_ip {
            s.gateway_ip = gateway(&s.cidr, Some(g))?;
        }
        if let Some(p) = u.allocation_pools {
            s.allocation_pools = pools(id, &s.cidr, s.gateway_ip, Some(p))?;
        } else if let Some(g) = s.gateway_ip
            && model::network::in_pools(&s.allocation_pools, g)
        {
            return Err(Error::conflict(
                "GatewayConflictWithAllocationPools",
                format!("Gateway ip {g} conflicts with allocation pool"),
            ));
        }
        if let Some(v) = u.name {
            s.name = v;
        }
        if let Some(v) = u.description {
            s.description = v;
        }
        if let Some(v) = u.enable_dhcp {
            s.enable_dhcp = v;
        }
        if let Some(v) = u.dns_nameservers {
            s.dns_nameservers = nameservers(&v)?;
        }
        if let Some(v) = u.host_routes {
            s.host_routes = routes(&v)?;
        }
        self.check_external_pools(&s)?;
        self.store.write(move |c| sql::update_subnet(c, &s)).await?;
        self.apply_plugged(Some(id), None).await?;
        self.get_subnet(ctx, id).await
    }

    pub async fn delete_subnet(&self, ctx: &Context, id: &str) -> Result<()> {
        self.writable_subnet(ctx, id, "delete_subnet").await?;
        let i = id.to_owned();
        unwrap_abort(
            self.store
                .write(move |c| {
                    if !sql::subnet_port_ids(c, &i)?.is_empty() {
                        return Err(abort(Error::conflict(
                            "SubnetInUse",
                            format!("Unable to complete operation on subnet {i}: One or more ports have an IP allocation from this subnet."),
                        )));
                    }
                    sql::delete_subnet(c, &i)
                })
                .await,
        )?;
        Ok(())
    }
}
