//! Routers: a gateway on an external network (an address from its pool, SNAT on or off)
//! and interfaces on project subnets. On this host a project network is attached to one
//! router at most (its bridge follows one router's way out).

use model::network::{FixedIp, PortRec, RouterRec, owner};
use model::{Context, ProjectId};
use store::network as sql;

use crate::ports::{FixedIpRequest, allocate};
use crate::{
    Error, Network, Result, abort, may_write, now_stamp, owner_for, quota, scope_of, unwrap_abort,
};

/// `external_gateway_info` as asked.
#[derive(Clone, Debug, Default)]
pub struct GatewayRequest {
    pub network_id: String,
    pub enable_snat: Option<bool>,
    pub external_fixed_ips: Option<Vec<FixedIpRequest>>,
}

#[derive(Clone, Debug, Default)]
pub struct RouterCreate {
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub gateway: Option<GatewayRequest>,
    pub project_id: Option<String>,
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct RouterUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_state_up: Option<bool>,
    /// `Some(None)`: remove the gateway.
    pub gateway: Option<Option<GatewayRequest>>,
}

/// The answer of `add_router_interface` / `remove_router_interface`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceInfo {
    pub router_id: String,
    pub project_id: ProjectId,
    pub port_id: String,
    pub network_id: String,
    pub subnet_id: String,
}

pub(crate) fn not_found(id: &str) -> Error {
    Error::not_found("RouterNotFound", format!("Router {id} could not be found"))
}

fn bad_router(m: impl std::fmt::Display) -> Error {
    Error::bad("BadRequest", format!("Bad router request: {m}."))
}

/// Members name only the gateway's network; its address and SNAT are an admin's.
fn gateway_policy(ctx: &Context, op: &str, g: &GatewayRequest) -> Result<()> {
    if ctx.is_admin() {
        return Ok(());
    }
    let attr = if g.external_fixed_ips.is_some() {
        "external_fixed_ips"
    } else if g.enable_snat.is_some() {
        "enable_snat"
    } else {
        return Ok(());
    };
    Err(Error::Forbidden(format!(
        "(rule:{op}_router and (rule:{op}_router:external_gateway_info and (rule:{op}_router:external_gateway_info:network_id and rule:{op}_router:external_gateway_info:{attr}))) is disallowed by policy"
    )))
}

fn internal_port(
    id: String,
    network: &str,
    project: ProjectId,
    owner: &str,
    device: &str,
    status: &str,
) -> PortRec {
    PortRec {
        id,
        network_id: network.to_owned(),
        project_id: project,
        name: String::new(),
        description: String::new(),
        mac_address: String::new(),
        admin_state_up: true,
        status: status.into(),
        device_id: device.to_owned(),
        device_owner: owner.to_owned(),
        port_security: false,
        fixed_ips: Vec::new(),
        security_groups: Vec::new(),
        allowed_address_pairs: Vec::new(),
        compute_owned: false,
        position: 0,
        tags: Vec::new(),
        stamp: now_stamp(),
    }
}

/// Gives `router` a gateway port on the external network `g` names (checked by the caller),
/// with an address from its pool.
fn set_gateway(c: &store::Connection, router: &str, g: &GatewayRequest) -> store::Result<()> {
    let mut p = internal_port(
        model::network::new_id(),
        &g.network_id,
        ProjectId::new(""),
        owner::ROUTER_GATEWAY,
        router,
        "ACTIVE",
    );
    p.mac_address = sql::free_mac(c)?;
    p.fixed_ips = allocate(c, &g.network_id, g.external_fixed_ips.as_deref())?;
    if p.fixed_ips.is_empty() {
        return Err(abort(bad_router(format!(
            "Network {} does not contain any IPv4 subnet",
            g.network_id
        ))));
    }
    sql::insert_port(c, &p)
}

fn clear_gateway(c: &store::Connection, router: &str) -> store::Result<()> {
    if let Some(p) = sql::router_gateway_port(c, router)? {
        sql::delete_port(c, &p.id)?;
    }
    Ok(())
}

impl Network {
    pub async fn list_routers(&self, ctx: &Context) -> Result<Vec<RouterRec>> {
        let scope = scope_of(ctx);
        Ok(self
            .store
            .read(move |c| sql::list_routers(c, &scope))
            .await?)
    }

    pub async fn get_router(&self, ctx: &Context, id: &str) -> Result<RouterRec> {
        let scope = scope_of(ctx);
        let i = id.to_owned();
        self.store
            .read(move |c| sql::get_router(c, &scope, &i))
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// The gateway's network, visible to the caller and external; an admin's addresses in
    /// the floating range.
    async fn check_gateway(&self, ctx: &Context, g: &GatewayRequest) -> Result<()> {
        let net = self.get_network(ctx, &g.network_id).await?;
        if !net.external {
            return Err(bad_router(format!(
                "Network {} is not an external network",
                g.network_id
            )));
        }
        for f in g.external_fixed_ips.iter().flatten() {
            if let Some(a) = f.ip_address.as_deref().and_then(model::network::parse_v4) {
                self.check_external_address(a)?;
            }
        }
        Ok(())
    }

    pub async fn create_router(&self, ctx: &Context, req: RouterCreate) -> Result<RouterRec> {
        may_write(ctx, "create_router")?;
        if let Some(g) = &req.gateway {
            gateway_policy(ctx, "create", g)?;
            self.check_gateway(ctx, g).await?;
        }
        let project = owner_for(ctx, req.project_id.as_deref())?;
        let r = RouterRec {
            id: model::network::new_id(),
            project_id: project.clone(),
            name: req.name,
            description: req.description,
            admin_state_up: req.admin_state_up,
            external_network_id: req.gateway.as_ref().map(|g| g.network_id.clone()),
            enable_snat: req
                .gateway
                .as_ref()
                .and_then(|g| g.enable_snat)
                .unwrap_or(true),
            external_fixed_ips: Vec::new(),
            tags: req.tags,
            stamp: now_stamp(),
        };
        let id = r.id.clone();
        let gateway = req.gateway;
        unwrap_abort(
            self.store
                .write(move |c| {
                    quota(c, &project, "router")?;
                    sql::insert_router(c, &r)?;
                    if let Some(g) = &gateway {
                        set_gateway(c, &r.id, g)?;
                        sql::touch_router(c, &r.id)?;
                    }
                    Ok(())
                })
                .await,
        )?;
        tracing::info!(router_id = %id, "router created");
        self.resync().await?;
        self.get_router(ctx, &id).await
    }

    async fn writable_router(&self, ctx: &Context, id: &str, what: &str) -> Result<RouterRec> {
        may_write(ctx, what)?;
        let r = self.get_router(ctx, id).await?;
        if !ctx.can_write(&r.project_id) {
            return Err(Error::Forbidden(format!(
                "rule:{what} is disallowed by policy"
            )));
        }
        Ok(r)
    }

    pub async fn update_router(
        &self,
        ctx: &Context,
        id: &str,
        u: RouterUpdate,
    ) -> Result<RouterRec> {
        let mut r = self.writable_router(ctx, id, "update_router").await?;
        if let Some(Some(g)) = &u.gateway {
            gateway_policy(ctx, "update", g)?;
            self.check_gateway(ctx, g).await?;
        }
        if let Some(v) = u.name {
            r.name = v;
        }
        if let Some(v) = u.description {
            r.description = v;
        }
        if let Some(v) = u.admin_state_up {
            r.admin_state_up = v;
        }
        let gateway = u.gateway;
        unwrap_abort(
            self.store
                .write(move |c| {
                    if let Some(g) = gateway {
                        let same = g.as_ref().map(|g| &g.network_id) == r.external_network_id.as_ref();
                        let new_ips = g.as_ref().is_some_and(|g| g.external_fixed_ips.is_some());
                        if (!same || new_ips) && sql::router_floating_in_use(c, &r.id, None)? {
                            return Err(abort(Error::conflict(
                                "RouterExternalGatewayInUseByFloatingIp",
                                format!(
                                    "Gateway cannot be updated for router {}, since a gateway to external network {} is required by one or more floating IPs.",
                                    r.id,
                                    r.external_network_id.clone().unwrap_or_default()
                                ),
                            )));
                        }
                        if !same || new_ips {
                            clear_gateway(c, &r.id)?;
                            if let Some(g) = &g {
                                set_gateway(c, &r.id, g)?;
                            }
                        }
                        r.external_network_id = g.as_ref().map(|g| g.network_id.clone());
                        r.enable_snat = g.as_ref().and_then(|g| g.enable_snat).unwrap_or(true);
                    }
                    sql::update_router(c, &r)
                })
                .await,
        )?;
        self.resync().await?;
        self.get_router(ctx, id).await
    }

    pub async fn delete_router(&self, ctx: &Context, id: &str) -> Result<()> {
        self.writable_router(ctx, id, "delete_router").await?;
        let i = id.to_owned();
        unwrap_abort(
            self.store
                .write(move |c| {
                    let ports = sql::router_interfaces(c, &i)?;
                    if !ports.is_empty() {
                        let ids: Vec<&str> = ports.iter().map(|p| p.id.as_str()).collect();
                        return Err(abort(Error::conflict(
                            "RouterInUse",
                            format!("Router {i} has ports still attached: {}", ids.join(", ")),
                        )));
                    }
                    sql::delete_router(c, &i)
                })
                .await,
        )?;
        tracing::info!(router_id = %id, "router deleted");
        self.resync().await?;
        Ok(())
    }

    /// `PUT /routers/{id}/add_router_interface` with a subnet (a new port holding its gateway
    /// address) or a port of the caller's (which becomes the interface).
    pub async fn add_router_interface(
        &self,
        ctx: &Context,
        id: &str,
        subnet_id: Option<String>,
        port_id: Option<String>,
    ) -> Result<InterfaceInfo> {
        let r = self
            .writable_router(ctx, id, "add_router_interface")
            .await?;
        let (port, subnet) = match (subnet_id, port_id) {
            (None, None) => {
                return Err(bad_router("Either subnet_id or port_id must be specified"));
            }
            (Some(_), Some(_)) => {
                return Err(bad_router("Cannot specify both subnet-id and port-id"));
            }
            (Some(s), None) => {
                let s = self.get_subnet(ctx, &s).await?;
                if !ctx.can_write(&s.project_id) {
                    return Err(crate::subnets::not_found(&s.id));
                }
                if s.gateway_ip.is_none() {
                    return Err(bad_router(
                        "Subnet for router interface must have a gateway IP",
                    ));
                }
                (None, s)
            }
            (None, Some(p)) => {
                let p = self.get_port(ctx, &p).await?;
                if !ctx.can_write(&p.project_id) {
                    return Err(crate::ports::not_found(&p.id));
                }
                if !p.device_id.is_empty() || !p.device_owner.is_empty() {
                    return Err(Error::conflict(
                        "PortInUse",
                        format!(
                            "Unable to complete operation on port {} for network {}. Port already has an attached device {}.",
                            p.id, p.network_id, p.device_id
                        ),
                    ));
                }
                let [f] = p.fixed_ips.as_slice() else {
                    return Err(bad_router(if p.fixed_ips.is_empty() {
                        "Router port must have at least one fixed IP"
                    } else {
                        "Cannot have multiple IPv4 subnets on router port"
                    }));
                };
                let s = self.get_subnet(ctx, &f.subnet_id).await?;
                (Some(p), s)
            }
        };
        let net = self.get_network(ctx, &subnet.network_id).await?;
        if net.external {
            return Err(bad_router(format!(
                "Network {} is external: it is a router's gateway, not an interface",
                net.id
            )));
        }
        let router = r.id.clone();
        let out = unwrap_abort(
            self.store
                .write(move |c| {
                    for i in sql::router_interfaces(c, &router)? {
                        if i.fixed_ips.iter().any(|f| f.subnet_id == subnet.id) {
                            return Err(abort(bad_router(format!(
                                "Router already has a port on subnet {}",
                                subnet.id
                            ))));
                        }
                    }
                    let gw = subnet.gateway_ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
                    let (mut p, new) = match port {
                        Some(p) => (p, false),
                        None => {
                            if sql::used_ips(c, &subnet.network_id)?.contains(&u32::from(gw)) {
                                return Err(abort(Error::conflict(
                                    "IpAddressAlreadyAllocated",
                                    format!("IP address {gw} already allocated in subnet {}", subnet.id),
                                )));
                            }
                            let mut p = internal_port(
                                model::network::new_id(),
                                &subnet.network_id,
                                net.project_id.clone(),
                                "",
                                "",
                                "ACTIVE",
                            );
                            p.mac_address = sql::free_mac(c)?;
                            p.fixed_ips = vec![FixedIp {
                                subnet_id: subnet.id.clone(),
                                ip_address: gw,
                            }];
                            (p, true)
                        }
                    };
                    if let Some((other, _)) = sql::network_router(c, &subnet.network_id)? {
                        return Err(abort(bad_router(format!(
                            "Network {} is already attached to router {other}; on this host a network is attached to one router",
                            subnet.network_id
                        ))));
                    }
                    p.device_id = router.clone();
                    p.device_owner = owner::ROUTER_INTERFACE.into();
                    p.status = "ACTIVE".into();
                    if new {
                        quota(c, &p.project_id, "port")?;
                        sql::insert_port(c, &p)?;
                    } else {
                        sql::update_port(c, &p)?;
                    }
                    sql::touch_router(c, &router)?;
                    Ok(InterfaceInfo {
                        router_id: router.clone(),
                        project_id: r.project_id.clone(),
                        port_id: p.id.clone(),
                        network_id: p.network_id.clone(),
                        subnet_id: subnet.id.clone(),
                    })
                })
                .await,
        )?;
        tracing::info!(router_id = %id, port_id = %out.port_id, "router interface added");
        self.resync().await?;
        Ok(out)
    }

    /// `PUT /routers/{id}/remove_router_interface`: the interface port goes.
    pub async fn remove_router_interface(
        &self,
        ctx: &Context,
        id: &str,
        subnet_id: Option<String>,
        port_id: Option<String>,
    ) -> Result<InterfaceInfo> {
        let r = self
            .writable_router(ctx, id, "remove_router_interface")
            .await?;
        if subnet_id.is_none() && port_id.is_none() {
            return Err(bad_router("Either subnet_id or port_id must be specified"));
        }
        if let Some(s) = &subnet_id
            && port_id.is_none()
        {
            self.get_subnet(ctx, s).await?;
        }
        let router = r.id.clone();
        let out = unwrap_abort(
            self.store
                .write(move |c| {
                    let ports = sql::router_interfaces(c, &router)?;
                    let port = match (&port_id, &subnet_id) {
                        (Some(p), _) => ports.into_iter().find(|x| &x.id == p).ok_or_else(|| {
                            abort(Error::not_found(
                                "RouterInterfaceNotFound",
                                format!("Router {router} does not have an interface with id {p}"),
                            ))
                        })?,
                        (None, Some(s)) => ports
                            .into_iter()
                            .find(|x| x.fixed_ips.iter().any(|f| &f.subnet_id == s))
                            .ok_or_else(|| {
                                abort(Error::not_found(
                                    "RouterInterfaceNotFoundForSubnet",
                                    format!("Router {router} has no interface on subnet {s}"),
                                ))
                            })?,
                        (None, None) => unreachable!("checked above"),
                    };
                    let subnet = match &subnet_id {
                        Some(s) => s.clone(),
                        None => port.fixed_ips.first().map(|f| f.subnet_id.clone()).unwrap_or_default(),
                    };
                    if sql::router_floating_in_use(c, &router, Some(&subnet))? {
                        return Err(abort(Error::conflict(
                            "RouterInterfaceInUseByFloatingIP",
                            format!("Router interface for subnet {subnet} on router {router} cannot be deleted, as it is required by one or more floating IPs."),
                        )));
                    }
                    sql::delete_port(c, &port.id)?;
                    sql::touch_router(c, &router)?;
                    Ok(InterfaceInfo {
                        router_id: router.clone(),
                        project_id: r.project_id.clone(),
                        port_id: port.id.clone(),
                        network_id: port.network_id.clone(),
                        subnet_id: subnet,
                    })
                })
                .await,
        )?;
        tracing::info!(router_id = %id, port_id = %out.port_id, "router interface removed");
        self.resync().await?;
        Ok(out)
    }
}
