//! `addSecurityGroup` and `removeSecurityGroup`: a group put on (or taken off) every port of
//! a server that has port security, in one transaction over `store::network`, then the
//! networking service told (the ports hook) so the kernel follows. Nova checks no state for
//! these, so they are not in the legality table.

use model::Context;
use model::ProjectId;
use store::network::{self as net, Scope};

use crate::{Compute, Error, Result, abort};

/// A group of the project named by id or name (`default` made when missing).
fn find_group(c: &store::Connection, project: &ProjectId, name: &str) -> store::Result<String> {
    if let Some(g) = net::get_security_group(c, &Scope::Project(project.clone()), name)? {
        return Ok(g.id);
    }
    if name == "default" {
        return net::ensure_default_group(c, project);
    }
    net::security_group_by_name(c, project, name)?.ok_or_else(|| {
        abort(Error::NotFound(format!(
            "Security group {name} not found for project {project}."
        )))
    })
}

impl Compute {
    /// Adds the group to every port of the server with port security.
    pub async fn add_security_group(&self, ctx: &Context, id: &str, name: &str) -> Result<()> {
        self.change_security_group(ctx, id, name, true).await
    }

    /// Takes the group off every port of the server.
    pub async fn remove_security_group(&self, ctx: &Context, id: &str, name: &str) -> Result<()> {
        self.change_security_group(ctx, id, name, false).await
    }

    async fn change_security_group(
        &self,
        ctx: &Context,
        id: &str,
        name: &str,
        add: bool,
    ) -> Result<()> {
        let rule = if add {
            "os_compute_api:os-security-groups:add"
        } else {
            "os_compute_api:os-security-groups:remove"
        };
        let s = self.server_for_write(ctx, id, rule).await?;
        let project = s.project_id.clone();
        let sid = s.id.to_string();
        let n = name.to_owned();
        self.store
            .write(move |c| {
                let g = find_group(c, &project, &n)?;
                let ports: Vec<_> = net::device_ports(c, &sid)?
                    .into_iter()
                    .filter(|p| p.port_security)
                    .collect();
                let has = ports.iter().any(|p| p.security_groups.contains(&g));
                let all = ports.iter().all(|p| p.security_groups.contains(&g));
                if add && !ports.is_empty() && all {
                    return Err(abort(Error::BadRequest(format!(
                        "Security group {n} is already associated with the instance {sid}"
                    ))));
                }
                if !add && !has {
                    return Err(abort(Error::BadRequest(format!(
                        "Security group {n} not associated with the instance {sid}"
                    ))));
                }
                for p in ports {
                    let mut groups = p.security_groups.clone();
                    if add && !groups.contains(&g) {
                        groups.push(g.clone());
                    } else if !add {
                        groups.retain(|x| x != &g);
                    } else {
                        continue;
                    }
                    net::set_port_groups(c, &p.id, &groups)?;
                }
                Ok(())
            })
            .await?;
        tracing::info!(server_id = %id, group = %name, add, "server's security groups changed");
        self.ports_changed().await;
        Ok(())
    }
}
