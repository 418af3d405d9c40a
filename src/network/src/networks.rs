//! Networks.

use model::Context;
use model::network::NetworkRec;
use store::network as sql;

use crate::{
    Error, Network, Result, abort, may_write, now_stamp, owner_for, quota, scope_of, unwrap_abort,
};

#[derive(Clone, Debug, Default)]
pub struct NetworkCreate {
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub shared: bool,
    pub external: bool,
    pub mtu: Option<u32>,
    pub port_security: bool,
    pub project_id: Option<String>,
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct NetworkUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_state_up: Option<bool>,
    pub shared: Option<bool>,
    pub external: Option<bool>,
    pub mtu: Option<u32>,
    pub port_security: Option<bool>,
}

pub(crate) fn not_found(id: &str) -> Error {
    Error::not_found(
        "NetworkNotFound",
        format!("Network {id} could not be found."),
    )
}

/// The largest MTU a bridge here carries.
const MAX_MTU: u32 = 9000;

impl Network {
    pub async fn list_networks(&self, ctx: &Context) -> Result<Vec<NetworkRec>> {
        let scope = scope_of(ctx);
        Ok(self
            .store
            .read(move |c| sql::list_networks(c, &scope))
            .await?)
    }

    pub async fn get_network(&self, ctx: &Context, id: &str) -> Result<NetworkRec> {
        let scope = scope_of(ctx);
        let i = id.to_owned();
        self.store
            .read(move |c| sql::get_network(c, &scope, &i))
            .await?
            .ok_or_else(|| not_found(id))
    }

    pub async fn create_network(&self, ctx: &Context, req: NetworkCreate) -> Result<NetworkRec> {
        may_write(ctx, "create_network")?;
        if (req.shared || req.external) && !ctx.is_admin() {
            let attr = if req.external {
                "router:external"
            } else {
                "shared"
            };
            return Err(Error::Forbidden(format!(
                "(rule:create_network and rule:create_network:{attr}) is disallowed by policy"
            )));
        }
        if let Some(m) = req.mtu
            && !(68..=MAX_MTU).contains(&m)
        {
            return Err(Error::invalid(format!(
                "Requested MTU is too big, maximum is {MAX_MTU}"
            )));
        }
        let project = owner_for(ctx, req.project_id.as_deref())?;
        let n = NetworkRec {
            id: model::network::new_id(),
            project_id: project.clone(),
            name: req.name,
            description: req.description,
            admin_state_up: req.admin_state_up,
            shared: req.shared,
            external: req.external,
            mtu: req.mtu.unwrap_or(1500),
            port_security: req.port_security,
            is_default: false,
            subnets: Vec::new(),
            tags: req.tags,
            stamp: now_stamp(),
        };
        let out = n.clone();
        unwrap_abort(
            self.store
                .write(move |c| {
                    quota(c, &project, "network")?;
                    sql::insert_network(c, &n)
                })
                .await,
        )?;
        tracing::info!(network_id = %out.id, "network created");
        self.get_network(ctx, &out.id).await
    }

    /// A network the caller may change: its own project's (or any, for an admin).
    async fn writable(&self, ctx: &Context, id: &str, what: &str) -> Result<NetworkRec> {
        may_write(ctx, what)?;
        let n = self.get_network(ctx, id).await?;
        if !ctx.can_write(&n.project_id) {
            // Visible (shared or external) but not the caller's.
            return Err(Error::Forbidden(format!(
                "rule:{what} is disallowed by policy"
            )));
        }
        Ok(n)
    }

    pub async fn update_network(
        &self,
        ctx: &Context,
        id: &str,
        u: NetworkUpdate,
    ) -> Result<NetworkRec> {
        let mut n = self.writable(ctx, id, "update_network").await?;
        if (u.shared.is_some_and(|s| s != n.shared) || u.external.is_some_and(|e| e != n.external))
            && !ctx.is_admin()
        {
            let attr = if u.external.is_some() {
                "router:external"
            } else {
                "shared"
            };
            return Err(Error::Forbidden(format!(
                "(rule:update_network and rule:update_network:{attr}) is disallowed by policy"
            )));
        }
        if let Some(m) = u.mtu
            && !(68..=MAX_MTU).contains(&m)
        {
            return Err(Error::invalid(format!(
                "Requested MTU is too big, maximum is {MAX_MTU}"
            )));
        }
        if u.external == Some(true) && !n.external && !n.subnets.is_empty() {
            let mut ext = n.clone();
            ext.external = true;
            self.check_external_subnet(&ext)?;
        }
        if u.external == Some(false) && n.external {
            let i = id.to_owned();
            let used = self
                .store
                .read(move |c| {
                    Ok(sql::network_has_routers(c, &i)?
                        || !sql::network_port_ids(c, &i)?.is_empty())
                })
                .await?;
            if used {
                return Err(Error::conflict(
                    "NetworkInUse",
                    format!(
                        "Unable to complete operation on network {id}. There are one or more ports still in use on the network."
                    ),
                ));
            }
        }
        if let Some(v) = u.name {
            n.name = v;
        }
        if let Some(v) = u.description {
            n.description = v;
        }
        if let Some(v) = u.admin_state_up {
            n.admin_state_up = v;
        }
        if let Some(v) = u.shared {
            n.shared = v;
        }
        if let Some(v) = u.external {
            n.external = v;
        }
        if let Some(v) = u.mtu {
            n.mtu = v;
        }
        if let Some(v) = u.port_security {
            n.port_security = v;
        }
        self.store
            .write(move |c| sql::update_network(c, &n))
            .await?;
        self.get_network(ctx, id).await
    }

    pub async fn delete_network(&self, ctx: &Context, id: &str) -> Result<()> {
        self.writable(ctx, id, "delete_network").await?;
        let i = id.to_owned();
        unwrap_abort(
            self.store
                .write(move |c| {
                    let ports = sql::network_port_ids(c, &i)?;
                    if !ports.is_empty() {
                        return Err(abort(Error::conflict(
                            "NetworkInUse",
                            format!(
                                "Unable to complete operation on network {i}. There are one or more ports still in use on the network, id for these ports is: {}.",
                                ports.join(",")
                            ),
                        )));
                    }
                    if sql::network_has_routers(c, &i)? {
                        return Err(abort(Error::conflict(
                            "NetworkInUse",
                            format!("Unable to complete operation on network {i}. There are one or more ports still in use on the network."),
                        )));
                    }
                    sql::delete_network(c, &i)
                })
                .await,
        )?;
        tracing::info!(network_id = %id, "network deleted");
        Ok(())
    }
}
