//! Floating IPs: an address of an external network (its own port there), associated with
//! a fixed address of a port whose subnet a router with a gateway on that network routes.

use std::net::Ipv4Addr;

use model::network::{FloatingIpRec, PortRec, owner, parse_v4};
use model::{Context, ProjectId};
use store::network::{self as sql, Scope};

use crate::ports::{FixedIpRequest, allocate};
use crate::{
    Error, Network, Result, abort, may_write, now_stamp, owner_for, quota, scope_of, unwrap_abort,
};

#[derive(Clone, Debug, Default)]
pub struct FloatingIpCreate {
    pub floating_network_id: String,
    pub floating_ip_address: Option<String>,
    pub port_id: Option<String>,
    pub fixed_ip_address: Option<String>,
    pub description: String,
    pub project_id: Option<String>,
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct FloatingIpUpdate {
    /// `Some(None)`: disassociate.
    pub port_id: Option<Option<String>>,
    pub fixed_ip_address: Option<String>,
    pub description: Option<String>,
}

/// A floating IP with the port it is associated with (Neutron's `port_details`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FloatingIp {
    pub rec: FloatingIpRec,
    pub port: Option<PortRec>,
}

pub(crate) fn not_found(id: &str) -> Error {
    Error::not_found(
        "FloatingIPNotFound",
        format!("Floating IP {id} could not be found"),
    )
}

fn bad_fip(m: impl std::fmt::Display) -> Error {
    Error::bad("BadRequest", format!("Bad floatingip request: {m}."))
}

/// Where an association lands: the port, its fixed address and the router.
struct Target {
    port: String,
    fixed: Ipv4Addr,
    router: String,
}

/// Resolves an association of `fip` (on external network `net`, owned by `project`) to
/// `port_id` in the caller's `scope`, every check in the write's transaction.
fn target(
    c: &store::Connection,
    scope: &Scope,
    project: &ProjectId,
    fip: (&str, Ipv4Addr),
    net: &str,
    port_id: &str,
    fixed: Option<&str>,
) -> store::Result<Target> {
    // A member's port of another project (on the member's network) is as unknown as any.
    let port = sql::get_port(c, scope, port_id)?
        .filter(|p| scope == &Scope::All || p.project_id == *project)
        .ok_or_else(|| abort(crate::ports::not_found(port_id)))?;
    if port.project_id != *project {
        return Err(abort(bad_fip(format!(
            "Cannot process floating IP association with Port {port_id}, since that port is owned by a different project"
        ))));
    }
    if port.device_owner.starts_with("network:") {
        return Err(abort(bad_fip(format!(
            "Port {port_id} has owner {} and therefore cannot be assigned a floating IP",
            port.device_owner
        ))));
    }
    let f = match fixed {
        Some(s) => {
            let a = parse_v4(s)
                .ok_or_else(|| abort(Error::invalid(format!("'{s}' is not a valid IP address"))))?;
            port.fixed_ips
                .iter()
                .find(|f| f.ip_address == a)
                .ok_or_else(|| {
                    abort(bad_fip(format!(
                        "Port {port_id} does not have fixed ip {a}"
                    )))
                })?
        }
        None => port.fixed_ips.first().ok_or_else(|| {
            abort(bad_fip(format!(
                "Port {port_id} does not have any IPv4 address"
            )))
        })?,
    };
    let router = sql::router_for_floating(c, &f.subnet_id, net)?.ok_or_else(|| {
        abort(Error::not_found(
            "ExternalGatewayForFloatingIPNotFound",
            format!(
                "External network {net} is not reachable from subnet {}.  Therefore, cannot associate Port {port_id} with a Floating IP.",
                f.subnet_id
            ),
        ))
    })?;
    if let Some(other) = sql::floating_on(c, port_id, f.ip_address)?
        && other != fip.0
    {
        return Err(abort(Error::conflict(
            "FloatingIPPortAlreadyAssociated",
            format!(
                "Cannot associate floating IP {} ({}) with port {port_id} using fixed IP {}, as that fixed IP already has a floating IP on external network {net}.",
                fip.1, fip.0, f.ip_address
            ),
        )));
    }
    Ok(Target {
        port: port.id.clone(),
        fixed: f.ip_address,
        router,
    })
}

impl Network {
    async fn with_ports(&self, v: Vec<FloatingIpRec>) -> Result<Vec<FloatingIp>> {
        let ids: Vec<String> = v.iter().filter_map(|f| f.port_id.clone()).collect();
        let ports = self
            .store
            .read(move |c| sql::get_ports_by_id(c, &ids))
            .await?;
        Ok(v.into_iter()
            .map(|rec| {
                let port = ports
                    .iter()
                    .find(|p| Some(&p.id) == rec.port_id.as_ref())
                    .cloned();
                FloatingIp { rec, port }
            })
            .collect())
    }

    pub async fn list_floating_ips(&self, ctx: &Context) -> Result<Vec<FloatingIp>> {
        let scope = scope_of(ctx);
        let v = self
            .store
            .read(move |c| sql::list_floating_ips(c, &scope))
            .await?;
        self.with_ports(v).await
    }

    pub async fn get_floating_ip(&self, ctx: &Context, id: &str) -> Result<FloatingIp> {
        let scope = scope_of(ctx);
        let i = id.to_owned();
        let f = self
            .store
            .read(move |c| sql::get_floating_ip(c, &scope, &i))
            .await?
            .ok_or_else(|| not_found(id))?;
        Ok(self.with_ports(vec![f]).await?.remove(0))
    }

    pub async fn create_floating_ip(
        &self,
        ctx: &Context,
        req: FloatingIpCreate,
    ) -> Result<FloatingIp> {
        may_write(ctx, "create_floatingip")?;
        if req.floating_ip_address.is_some() && !ctx.is_admin() {
            return Err(Error::Forbidden(
                "(rule:create_floatingip and rule:create_floatingip:floating_ip_address) is disallowed by policy".into(),
            ));
        }
        let net = self.get_network(ctx, &req.floating_network_id).await?;
        if !net.external {
            return Err(bad_fip(format!(
                "Network {} is not a valid external network",
                net.id
            )));
        }
        let asked = match &req.floating_ip_address {
            Some(s) => {
                let a = parse_v4(s)
                    .ok_or_else(|| Error::invalid(format!("'{s}' is not a valid IP address")))?;
                self.check_external_address(a)?;
                Some(a)
            }
            None => None,
        };
        let project = owner_for(ctx, req.project_id.as_deref())?;
        let scope = scope_of(ctx);
        let id = model::network::new_id();
        let mut f = FloatingIpRec {
            id: id.clone(),
            project_id: project.clone(),
            floating_network_id: net.id.clone(),
            floating_port_id: model::network::new_id(),
            floating_ip_address: Ipv4Addr::UNSPECIFIED,
            port_id: None,
            fixed_ip_address: None,
            router_id: None,
            description: req.description,
            tags: req.tags,
            stamp: now_stamp(),
        };
        let (port_id, fixed) = (req.port_id, req.fixed_ip_address);
        unwrap_abort(
            self.store
                .write(move |c| {
                    quota(c, &project, "floatingip")?;
                    let mut p = PortRec {
                        id: f.floating_port_id.clone(),
                        network_id: f.floating_network_id.clone(),
                        project_id: ProjectId::new(""),
                        name: String::new(),
                        description: String::new(),
                        mac_address: sql::free_mac(c)?,
                        admin_state_up: true,
                        status: "N/A".into(),
                        device_id: f.id.clone(),
                        device_owner: owner::FLOATING_IP.into(),
                        port_security: false,
                        fixed_ips: Vec::new(),
                        security_groups: Vec::new(),
                        allowed_address_pairs: Vec::new(),
                        compute_owned: false,
                        position: 0,
                        tags: Vec::new(),
                        stamp: now_stamp(),
                    };
                    let want = asked.map(|a| {
                        vec![FixedIpRequest {
                            subnet_id: None,
                            ip_address: Some(a.to_string()),
                        }]
                    });
                    p.fixed_ips = allocate(c, &p.network_id, want.as_deref())?;
                    let Some(a) = p.fixed_ips.first() else {
                        return Err(abort(bad_fip(format!(
                            "Network {} does not contain any IPv4 subnet",
                            p.network_id
                        ))));
                    };
                    f.floating_ip_address = a.ip_address;
                    if let Some(port) = &port_id {
                        let t = target(
                            c,
                            &scope,
                            &project,
                            (&f.id, f.floating_ip_address),
                            &f.floating_network_id,
                            port,
                            fixed.as_deref(),
                        )?;
                        f.port_id = Some(t.port);
                        f.fixed_ip_address = Some(t.fixed);
                        f.router_id = Some(t.router);
                    }
                    sql::insert_port(c, &p)?;
                    sql::insert_floating_ip(c, &f)
                })
                .await,
        )?;
        tracing::info!(floatingip_id = %id, "floating IP created");
        self.resync().await?;
        self.get_floating_ip(ctx, &id).await
    }

    async fn writable_floating_ip(
        &self,
        ctx: &Context,
        id: &str,
        what: &str,
    ) -> Result<FloatingIpRec> {
        may_write(ctx, what)?;
        let f = self.get_floating_ip(ctx, id).await?.rec;
        if !ctx.can_write(&f.project_id) {
            return Err(Error::Forbidden(format!(
                "rule:{what} is disallowed by policy"
            )));
        }
        Ok(f)
    }

    pub async fn update_floating_ip(
        &self,
        ctx: &Context,
        id: &str,
        u: FloatingIpUpdate,
    ) -> Result<FloatingIp> {
        let mut f = self
            .writable_floating_ip(ctx, id, "update_floatingip")
            .await?;
        if let Some(d) = u.description {
            f.description = d;
        }
        let scope = scope_of(ctx);
        let (port_id, fixed) = (u.port_id, u.fixed_ip_address);
        unwrap_abort(
            self.store
                .write(move |c| {
                    match port_id {
                        Some(Some(port)) => {
                            let t = target(
                                c,
                                &scope,
                                &f.project_id,
                                (&f.id, f.floating_ip_address),
                                &f.floating_network_id,
                                &port,
                                fixed.as_deref(),
                            )?;
                            f.port_id = Some(t.port);
                            f.fixed_ip_address = Some(t.fixed);
                            f.router_id = Some(t.router);
                        }
                        Some(None) => {
                            f.port_id = None;
                            f.fixed_ip_address = None;
                            f.router_id = None;
                        }
                        None => {}
                    }
                    sql::update_floating_ip(c, &f)
                })
                .await,
        )?;
        self.resync().await?;
        self.get_floating_ip(ctx, id).await
    }

    pub async fn delete_floating_ip(&self, ctx: &Context, id: &str) -> Result<()> {
        self.writable_floating_ip(ctx, id, "delete_floatingip")
            .await?;
        let i = id.to_owned();
        self.store
            .write(move |c| sql::delete_floating_ip(c, &i))
            .await?;
        tracing::info!(floatingip_id = %id, "floating IP deleted");
        self.resync().await?;
        Ok(())
    }
}
