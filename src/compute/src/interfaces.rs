//! A server's interfaces (Nova's `os-interface`): the ports bound to it, hot-plugged and
//! unplugged through the backend. Attaching binds or makes the port in one transaction,
//! lets the networking service filter it, then plugs it; a backend failure undoes the port.

use model::Context;
use model::network::PortRec;
use store::network as net;

use crate::actions::Action;
use crate::common::policy;
use crate::network::{self, NicRequest};
use crate::{Compute, Error, Result};

impl Compute {
    /// The ports of a server the caller may read.
    pub async fn interfaces(&self, ctx: &Context, id: &str) -> Result<Vec<PortRec>> {
        let s = self.get_server(ctx, id).await?;
        let sid = s.id.clone();
        Ok(self
            .store
            .read(move |c| net::device_ports(c, sid.as_str()))
            .await?)
    }

    /// Plugs a new interface (a network, a network with an address, or a port).
    pub async fn attach_interface(
        &self,
        ctx: &Context,
        id: &str,
        nic: NicRequest,
    ) -> Result<PortRec> {
        let s = self.get_server(ctx, id).await?;
        self.may_act(ctx, &s, Action::AttachInterface)?;
        let project = s.project_id.clone();
        let sid = s.id.clone();
        let port = self
            .store
            .write(move |tx| {
                let plan = network::plan_nic(tx, &project, &nic)?;
                let position = net::device_ports(tx, sid.as_str())?
                    .iter()
                    .map(|p| p.position + 1)
                    .max()
                    .unwrap_or(0);
                let groups = network::resolve_groups(tx, &project, &[])?;
                let addr = network::attach(tx, &project, &plan, &sid, position, &groups)?;
                Ok(net::device_ports(tx, sid.as_str())?
                    .into_iter()
                    .find(|p| p.mac_address == addr.mac))
            })
            .await
            .map_err(|e| match Error::from(e) {
                // Nova's os-interface answers an unknown port or network with 404 (a
                // server create with 400).
                Error::BadRequest(m) if m.ends_with("could not be found.") => Error::NotFound(m),
                other => other,
            })?
            .ok_or_else(|| Error::Conflict("the new interface vanished".into()))?;
        // Filtered before it exists in the guest.
        let spec = self.instance_spec(&s).await;
        let Some(dport) = spec
            .ports
            .iter()
            .find(|p| p.mac == port.mac_address)
            .cloned()
        else {
            return Err(Error::Conflict(format!(
                "Failed to attach network adapter device to {}",
                s.id
            )));
        };
        let r = self
            .blocking(&s.id, move |d| d.attach_interface(&spec, &dport))
            .await;
        if let Err(e) = r {
            tracing::warn!(server_id = %s.id, error = %e, "attaching an interface failed");
            self.let_go(&port).await;
            return Err(match e {
                driver::DriverError::NotSupported(_) => Error::BadRequest(format!(
                    "The backend of server {} cannot attach interfaces.",
                    s.id
                )),
                _ => Error::Conflict(format!(
                    "Failed to attach network adapter device to {}",
                    s.id
                )),
            });
        }
        tracing::info!(server_id = %s.id, port_id = %port.id, "interface attached");
        Ok(port)
    }

    /// Unplugs the interface of `port_id`; a port compute made is deleted, another unbound.
    pub async fn detach_interface(&self, ctx: &Context, id: &str, port_id: &str) -> Result<()> {
        let s = self.get_server(ctx, id).await?;
        if !ctx.can_write(&s.project_id) {
            return Err(policy("os_compute_api:os-attach-interfaces:delete"));
        }
        self.may_act(ctx, &s, Action::DetachInterface)?;
        let sid = s.id.clone();
        let ports = self
            .store
            .read(move |c| net::device_ports(c, sid.as_str()))
            .await?;
        let Some(port) = ports.into_iter().find(|p| p.id == port_id) else {
            return Err(Error::NotFound(format!("Port {port_id} is not attached")));
        };
        let spec = self.instance_spec(&s).await;
        let Some(dport) = spec
            .ports
            .iter()
            .find(|p| p.mac == port.mac_address)
            .cloned()
        else {
            return Err(Error::NotFound(format!("Port {port_id} is not attached")));
        };
        let mut after = spec.clone();
        after.ports.retain(|p| p.mac != port.mac_address);
        match self
            .blocking(&s.id, move |d| d.detach_interface(&after, &dport))
            .await
        {
            Ok(()) | Err(driver::DriverError::NotFound(_)) => {}
            Err(driver::DriverError::NotSupported(_)) => {
                return Err(Error::BadRequest(format!(
                    "The backend of server {} cannot detach interfaces.",
                    s.id
                )));
            }
            Err(e) => {
                tracing::warn!(server_id = %s.id, error = %e, "detaching an interface failed");
                return Err(Error::Conflict(format!(
                    "Failed to detach network adapter device from {}",
                    s.id
                )));
            }
        }
        self.let_go(&port).await;
        tracing::info!(server_id = %s.id, %port_id, "interface detached");
        Ok(())
    }

    /// A port no longer plugged: deleted if compute made it, else unbound; then filters again.
    async fn let_go(&self, port: &PortRec) {
        let p = port.clone();
        let r = self
            .store
            .write(move |tx| {
                if p.compute_owned {
                    net::delete_port(tx, &p.id)?;
                } else {
                    let mut q = p.clone();
                    q.device_id.clear();
                    q.device_owner.clear();
                    q.status = "DOWN".into();
                    q.position = 0;
                    net::update_port(tx, &q)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = r {
            tracing::error!(port_id = %port.id, error = %e, "releasing a port");
        }
        self.ports_changed().await;
    }
}
