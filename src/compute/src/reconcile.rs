//! Bringing the database and the backend into agreement, at start-up.
//!
//! A restart is always safe. Servers caught mid-task are resolved: a delete is carried out
//! again, a build that never finished ends in ERROR with a fault, and any other task is rolled
//! back to the stable state. Every live server's power state is then read from the backend;
//! a running server the backend no longer has is reported SHUTOFF. Instances the backend
//! holds that the database does not know are orphans: they are reported, and destroyed only
//! if the configured policy says so.

use chrono::Utc;
use model::compute::{PowerState, ServerFault, ServerId, TaskState, VmState};
use store::compute as sql;

use crate::{Compute, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrphanPolicy {
    /// Log them and leave them alone.
    Report,
    /// Destroy them.
    Destroy,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub deletes_resumed: usize,
    pub builds_failed: usize,
    pub tasks_rolled_back: usize,
    pub power_changed: usize,
    pub orphans: Vec<ServerId>,
}

impl Compute {
    pub async fn reconcile(&self, policy: OrphanPolicy) -> Result<Report> {
        let mut report = Report::default();
        let in_flight = self.store.read(sql::servers_in_flight).await?;
        let servers = self
            .store
            .read(move |c| sql::load_servers(c, &in_flight))
            .await?;
        for s in servers {
            let id = s.id.clone();
            match (s.vm_state, s.task_state) {
                (_, Some(TaskState::Deleting)) => {
                    let (id2, p, u) = (id.clone(), s.project_id.clone(), s.user_id.clone());
                    let action = self
                        .store
                        .write(move |tx| {
                            let rid = format!("req-{}", uuid::Uuid::new_v4());
                            sql::start_action(tx, &id2, &rid, "delete", &p, &u)
                        })
                        .await?;
                    self.resume_delete(id, action);
                    report.deletes_resumed += 1;
                }
                (VmState::Building, task) => {
                    let id2 = id.clone();
                    self.store
                        .write(move |tx| {
                            sql::transition(tx, &id2, task, VmState::Error, None, Some(PowerState::NoState))?;
                            sql::set_fault(
                                tx,
                                &id2,
                                &ServerFault {
                                    code: 500,
                                    message: "The server was being built when onebox stopped; build it again.".into(),
                                    details: None,
                                    created_at: Utc::now(),
                                },
                            )
                        })
                        .await?;
                    let d = self.driver.clone();
                    let id3 = id.clone();
                    let _ = tokio::task::spawn_blocking(move || d.destroy(&id3)).await;
                    tracing::warn!(server_id = %id, "interrupted build set to ERROR");
                    report.builds_failed += 1;
                }
                (vm, task) => {
                    let id2 = id.clone();
                    self.store
                        .write(move |tx| sql::transition(tx, &id2, task, vm, None, None))
                        .await?;
                    tracing::warn!(server_id = %id, task = ?task.map(TaskState::as_str), "interrupted task rolled back");
                    report.tasks_rolled_back += 1;
                }
            }
        }

        let live = self.store.read(sql::live_server_ids).await?;
        let d = self.driver.clone();
        let backend_ids = tokio::task::spawn_blocking(move || d.list_instances())
            .await
            .map_err(|e| crate::Error::Task(e.to_string()))?
            .map_err(|e| crate::Error::Task(e.to_string()))?;
        for id in &live {
            let sid = ServerId::from_stored(id.clone());
            let d = self.driver.clone();
            let s2 = sid.clone();
            let info = tokio::task::spawn_blocking(move || d.get_info(&s2))
                .await
                .map_err(|e| crate::Error::Task(e.to_string()))?;
            let Some(server) = self
                .store
                .read({
                    let s = sid.clone();
                    move |c| sql::get_server(c, &s)
                })
                .await?
            else {
                continue;
            };
            if server.task_state.is_some() || server.vm_state == VmState::Error {
                continue;
            }
            let power = match info {
                Ok(i) => i.power_state,
                Err(_) => PowerState::Shutdown,
            };
            if power != server.power_state {
                let vm = match (server.vm_state, power) {
                    (VmState::Active, PowerState::Shutdown | PowerState::Crashed) => {
                        VmState::Stopped
                    }
                    (vm, _) => vm,
                };
                let s3 = sid.clone();
                self.store
                    .write(move |tx| sql::transition(tx, &s3, None, vm, None, Some(power)))
                    .await?;
                tracing::warn!(server_id = %sid, ?power, "power state synced from the backend");
                report.power_changed += 1;
            }
        }
        for b in backend_ids {
            if !live.iter().any(|l| l == b.as_str()) {
                tracing::warn!(instance = %b, "backend instance unknown to the database");
                if policy == OrphanPolicy::Destroy {
                    let d = self.driver.clone();
                    let b2 = b.clone();
                    let _ = tokio::task::spawn_blocking(move || d.destroy(&b2)).await;
                }
                report.orphans.push(b);
            }
        }
        Ok(report)
    }
}
