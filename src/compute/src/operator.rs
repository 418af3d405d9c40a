//! What an operator reads of the box: its one hypervisor, its services and usage per
//! project. Every figure is computed on demand from the driver and the server rows.

use chrono::{DateTime, Utc};
use model::Context;
use model::compute::Server;
use store::compute as csql;
use store::operator::{self as sql, ServiceRow};

use crate::common::policy;
use crate::{Compute, Error, Result};

/// The box as its one hypervisor (Nova's compute node).
#[derive(Clone, Debug)]
pub struct Hypervisor {
    /// The compute node's UUID (the id from 2.53).
    pub node_id: String,
    /// The hypervisor hostname, which is also the service host.
    pub host: String,
    pub host_ip: String,
    pub service: ServiceRow,
    pub resources: driver::Resources,
    pub vcpus_used: u64,
    pub memory_mb_used: u64,
    pub local_gb_used: u64,
    pub running_vms: u64,
    /// Servers with a task under way.
    pub current_workload: u64,
    /// Live servers on the host: (uuid, name).
    pub servers: Vec<(String, String)>,
}

/// The services of the box, creating their rows on first use (the only time a read of them
/// writes).
async fn service_rows(c: &Compute) -> Result<Vec<ServiceRow>> {
    let rows = c.store.read(sql::list_services).await?;
    if rows.len() == sql::SERVICES.len() {
        return Ok(rows);
    }
    Ok(c.store
        .write(|tx| {
            sql::ensure_services(tx)?;
            sql::list_services(tx)
        })
        .await?)
}

/// What `uptime` prints: ` 08:32:11 up 93 days, 18:25,  0 users,  load average: 0.20, 0.12, 0.14`.
pub fn uptime_line() -> Option<String> {
    let up = std::fs::read_to_string("/proc/uptime").ok()?;
    let secs = up.split_whitespace().next()?.parse::<f64>().ok()? as u64;
    let load = std::fs::read_to_string("/proc/loadavg").ok()?;
    let l: Vec<&str> = load.split_whitespace().take(3).collect();
    if l.len() < 3 {
        return None;
    }
    let now = Utc::now().format("%H:%M:%S");
    let (days, hours, mins) = (secs / 86400, secs % 86400 / 3600, secs % 3600 / 60);
    let span = match days {
        0 => format!("{hours:2}:{mins:02}"),
        1 => format!("1 day, {hours:2}:{mins:02}"),
        d => format!("{d} days, {hours:2}:{mins:02}"),
    };
    Some(format!(
        " {now} up {span},  0 users,  load average: {}, {}, {}",
        l[0], l[1], l[2]
    ))
}

/// The address other hosts would reach the box at: the source address of the default route
/// (a UDP `connect` sends nothing), or loopback when there is none.
fn host_ip() -> String {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "127.0.0.1".into())
}

impl Compute {
    /// The capacity of the host. Every backend of the box describes the same machine, so the
    /// virtual machine backend answers when there is one, else the first backend present; a
    /// box without backends reports nothing.
    async fn host_resources(&self) -> driver::Resources {
        let present = self.backends.present();
        let pick = present
            .iter()
            .find(|(kinds, _)| kinds.contains(&model::compute::Backend::Vm))
            .or_else(|| present.first())
            .map(|(_, d)| d.clone());
        let Some(d) = pick else {
            return driver::Resources {
                hypervisor_type: "none".into(),
                ..Default::default()
            };
        };
        match tokio::task::spawn_blocking(move || d.available_resources()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the backend did not report its resources");
                driver::Resources::default()
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the backend's resources");
                driver::Resources::default()
            }
        }
    }

    /// The box's hypervisor (admin only).
    pub async fn hypervisor(&self, ctx: &Context, rule: &str) -> Result<Hypervisor> {
        if !ctx.is_admin() {
            return Err(policy(rule));
        }
        let services = service_rows(self).await?;
        let service = services
            .into_iter()
            .find(|s| s.binary == "nova-compute")
            .ok_or_else(|| Error::Task("the compute service has no record".into()))?;
        let resources = self.host_resources().await;
        let servers = self
            .store
            .read(|c| {
                let ids = csql::live_server_ids(c)?;
                csql::load_servers(c, &ids)
            })
            .await?;
        let mut h = Hypervisor {
            node_id: service.node_id.clone(),
            host: self.cfg.host.clone(),
            host_ip: host_ip(),
            service,
            resources,
            vcpus_used: 0,
            memory_mb_used: 0,
            local_gb_used: 0,
            running_vms: 0,
            current_workload: 0,
            servers: Vec::new(),
        };
        for s in servers.iter().filter(|s| s.host == self.cfg.host) {
            // An offloaded shelved server holds nothing on the host, nor does one that failed
            // before it ever ran (no valid host, a failed build).
            let never_ran = s.vm_state == model::compute::VmState::Error && s.launched_at.is_none();
            if s.vm_state == model::compute::VmState::ShelvedOffloaded || never_ran {
                continue;
            }
            h.vcpus_used += u64::from(s.flavor.vcpus);
            h.memory_mb_used += s.flavor.ram_mb;
            h.local_gb_used += s.flavor.disk_gb;
            h.running_vms += 1;
            if s.task_state.is_some() {
                h.current_workload += 1;
            }
            h.servers.push((s.id.to_string(), s.name.clone()));
        }
        Ok(h)
    }

    /// The services of the box without a policy check, for what every caller may see of
    /// them (whether the availability zone takes servers).
    pub async fn service_states(&self) -> Result<Vec<ServiceRow>> {
        service_rows(self).await
    }

    /// The services of the box (admin only).
    pub async fn services(&self, ctx: &Context) -> Result<Vec<ServiceRow>> {
        if !ctx.is_admin() {
            return Err(policy("os_compute_api:os-services:list"));
        }
        service_rows(self).await
    }

    /// Changes a service's status (admin only); returns it as it is now.
    pub async fn update_service(
        &self,
        ctx: &Context,
        binary: &str,
        disabled: Option<bool>,
        reason: Option<Option<String>>,
        forced_down: Option<bool>,
    ) -> Result<ServiceRow> {
        if !ctx.is_admin() {
            return Err(policy("os_compute_api:os-services:update"));
        }
        let b = binary.to_owned();
        let row = self
            .store
            .write(move |tx| {
                sql::ensure_services(tx)?;
                sql::update_service(
                    tx,
                    &b,
                    disabled,
                    reason.as_ref().map(|r| r.as_deref()),
                    forced_down,
                )?;
                Ok(sql::list_services(tx)?.into_iter().find(|s| s.binary == b))
            })
            .await?
            .ok_or_else(|| Error::NotFound(format!("Service {binary} could not be found.")))?;
        tracing::info!(
            binary,
            disabled = row.disabled,
            forced_down = row.forced_down,
            "service status changed"
        );
        Ok(row)
    }

    /// Servers that ran during `[start, end)`, deleted ones included, of one project or
    /// (admin, `None`) every project, ordered by project then id.
    pub async fn usage_servers(
        &self,
        ctx: &Context,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        project: Option<&model::ProjectId>,
    ) -> Result<Vec<Server>> {
        match project {
            None if !ctx.is_admin() => {
                return Err(policy("os_compute_api:os-simple-tenant-usage:list"));
            }
            Some(p) if !ctx.can_read(p) => {
                return Err(policy("os_compute_api:os-simple-tenant-usage:show"));
            }
            _ => {}
        }
        let p = project.map(|p| p.to_string());
        Ok(self
            .store
            .read(move |c| {
                let ids = sql::servers_active_in(c, start, end, p.as_deref())?;
                csql::load_servers(c, &ids)
            })
            .await?)
    }
}

/// What `GET /servers/{id}/diagnostics` reports: the backend's figures and its driver.
#[derive(Clone, Debug)]
pub struct ServerDiagnostics {
    pub server: Server,
    /// Nova's name for the driver (`libvirt`, `ironic`, `fake`).
    pub driver: String,
    pub diagnostics: driver::Diagnostics,
}

impl Compute {
    /// A server's diagnostics from its backend (admin only). A backend that cannot tell is
    /// Nova's 501; a server the backend does not hold (still building, failed) is a 409.
    pub async fn diagnostics(&self, ctx: &Context, id: &str) -> Result<ServerDiagnostics> {
        let s = self.get_server(ctx, id).await?;
        if !ctx.is_admin() {
            return Err(policy("os_compute_api:os-server-diagnostics"));
        }
        let name = self.backends.get(s.backend).name();
        let driver = match name {
            "QEMU" | "qemu" | "kvm" | "lxc" => "libvirt".to_owned(),
            other => other.to_ascii_lowercase(),
        };
        let sid = s.id.clone();
        match self.blocking(&s.id, move |d| d.diagnostics(&sid)).await {
            Ok(diagnostics) => Ok(ServerDiagnostics {
                server: s,
                driver,
                diagnostics,
            }),
            Err(driver::DriverError::NotSupported(_)) => Err(Error::NotImplemented(
                "Unable to get diagnostics, functionality not implemented".into(),
            )),
            Err(driver::DriverError::NotFound(_)) => Err(Error::Conflict(format!(
                "Cannot 'get_diagnostics' instance {} while it is in vm_state {}",
                s.id,
                s.vm_state.as_str()
            ))),
            Err(e) => Err(Error::Task(e.to_string())),
        }
    }
}
