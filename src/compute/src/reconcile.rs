//! Bringing the database and the backend into agreement, at start-up.
//!
//! A restart is always safe. Servers caught mid-task are resolved: a delete is carried out
//! again, a build that never finished ends in ERROR with a fault, a resize is undone in the
//! backend (old flavor, old disk), a rebuild, a revert/confirm or a rescue/unrescue in doubt
//! ends in ERROR with a fault, and any other task is rolled back to the stable state. Every
//! live server's power state is then read from the backend; a running server the backend no
//! longer has is reported SHUTOFF. Instances the backend holds that the database does not
//! know are orphans: they are reported, and destroyed only if the configured policy says so.

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
                    let d = self.backends.get(s.backend);
                    let id3 = id.clone();
                    let _ = tokio::task::spawn_blocking(move || d.destroy(&id3)).await;
                    tracing::warn!(server_id = %id, "interrupted build set to ERROR");
                    report.builds_failed += 1;
                }
                // A resize cut short before it finished is rolled back, as Nova does at
                // start-up: the backend goes back to the old flavor and the disk kept for a
                // revert, and the server is where it was before the request.
                (
                    vm,
                    task @ Some(
                        TaskState::ResizeMigrating
                        | TaskState::ResizeMigrated
                        | TaskState::ResizeFinish,
                    ),
                ) if self.roll_back_resize(&s, vm, task).await => {
                    report.tasks_rolled_back += 1;
                }
                // A rebuild cut short, a resize whose roll-back failed, a revert or confirm
                // cut short, or a rescue or unrescue cut short leaves the guest in doubt:
                // ERROR with a fault, as Nova leaves it. A rescue from ERROR followed by an
                // unrescue brings such a server back.
                (
                    _,
                    task @ Some(
                        TaskState::RebuildBlockDeviceMapping
                        | TaskState::RebuildSpawning
                        | TaskState::ResizeMigrating
                        | TaskState::ResizeMigrated
                        | TaskState::ResizeFinish
                        | TaskState::ResizeReverting
                        | TaskState::ResizeConfirming
                        | TaskState::Rescuing
                        | TaskState::Unrescuing,
                    ),
                ) => {
                    let id2 = id.clone();
                    let what = task.map_or("", TaskState::as_str).to_owned();
                    self.store
                        .write(move |tx| {
                            sql::transition(tx, &id2, task, VmState::Error, None, None)?;
                            sql::set_fault(
                                tx,
                                &id2,
                                &ServerFault {
                                    code: 500,
                                    message: format!(
                                        "onebox stopped while the server was in task state {what}."
                                    ),
                                    details: None,
                                    created_at: Utc::now(),
                                },
                            )
                        })
                        .await?;
                    tracing::warn!(server_id = %id, "interrupted rebuild, resize or rescue set to ERROR");
                    report.tasks_rolled_back += 1;
                }
                (vm, task) => {
                    if task == Some(TaskState::ResizePrep) {
                        // Nothing moved yet: release what the resize request held.
                        self.drop_resize_state(&id, &s.flavor).await;
                    }
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
        // Every backend's instances, with the driver that holds them.
        let mut backend_ids = Vec::new();
        for (_, d) in self.backends.present() {
            let d2 = d.clone();
            let ids = tokio::task::spawn_blocking(move || d2.list_instances())
                .await
                .map_err(|e| crate::Error::Task(e.to_string()))?
                .map_err(|e| crate::Error::Task(e.to_string()))?;
            backend_ids.extend(ids.into_iter().map(|i| (i, d.clone())));
        }
        report.power_changed = self.sync_power_states().await?;
        for (b, d) in backend_ids {
            if !live.iter().any(|l| l == b.as_str()) {
                tracing::warn!(instance = %b, "backend instance unknown to the database");
                if policy == OrphanPolicy::Destroy {
                    let b2 = b.clone();
                    let _ = tokio::task::spawn_blocking(move || d.destroy(&b2)).await;
                }
                report.orphans.push(b);
            }
        }
        Ok(report)
    }

    /// Undoes a resize that onebox stopped in the middle of: the backend is put back on the
    /// server's flavor (still the old one: the new flavor is recorded only when the resize
    /// finishes) with the disk it kept for a revert, powered as it was, and the server
    /// returns to `vm` with the resize's bookkeeping dropped. False when the backend could
    /// not, leaving the caller to set ERROR.
    async fn roll_back_resize(
        &self,
        s: &model::compute::Server,
        vm: VmState,
        task: Option<TaskState>,
    ) -> bool {
        let id = s.id.clone();
        let spec = self.instance_spec(s).await;
        let stopped = vm == VmState::Stopped;
        let undone = self
            .blocking(&id, move |d| {
                d.revert_resize(&spec)?;
                if stopped {
                    d.power_off(&spec.id)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = undone {
            tracing::error!(server_id = %id, error = %e, "rolling back an interrupted resize");
            return false;
        }
        self.drop_resize_state(&id, &s.flavor).await;
        let power = if stopped {
            PowerState::Shutdown
        } else {
            PowerState::Running
        };
        let id2 = id.clone();
        match self
            .store
            .write(move |tx| sql::transition(tx, &id2, task, vm, None, Some(power)))
            .await
        {
            Ok(_) => {
                tracing::warn!(server_id = %id, task = ?task.map(TaskState::as_str), "interrupted resize rolled back");
                true
            }
            Err(e) => {
                tracing::error!(server_id = %id, error = %e, "rolling back an interrupted resize");
                false
            }
        }
    }

    /// Brings the database's power state of every settled server (no task, not ERROR) in
    /// line with what its backend reports, as Nova's power-state sync does: a server the
    /// guest shut down (or that crashed, or vanished) becomes SHUTOFF; a stopped server the
    /// backend runs is powered off again, since the database's STOPPED is what the user asked
    /// for. Runs at start-up and then periodically. Returns how many servers changed.
    pub async fn sync_power_states(&self) -> Result<usize> {
        let live = self.store.read(sql::live_server_ids).await?;
        let mut changed = 0;
        for id in live {
            if self.sync_power_state(&ServerId::from_stored(id)).await? {
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// [`sync_power_states`](Self::sync_power_states) for one server; true when its state
    /// changed. A server that is gone, busy with a task or in ERROR is left alone.
    pub async fn sync_power_state(&self, sid: &ServerId) -> Result<bool> {
        let Some(server) = self
            .store
            .read({
                let s = sid.clone();
                move |c| sql::get_server(c, &s)
            })
            .await?
        else {
            return Ok(false);
        };
        if server.deleted
            || server.task_state.is_some()
            || matches!(server.vm_state, VmState::Error | VmState::ShelvedOffloaded)
        {
            return Ok(false);
        }
        let d = self.backends.get(server.backend);
        let s2 = sid.clone();
        let info = tokio::task::spawn_blocking(move || d.get_info(&s2))
            .await
            .map_err(|e| crate::Error::Task(e.to_string()))?;
        let power = match info {
            Ok(i) => i.power_state,
            Err(_) => PowerState::Shutdown,
        };
        if power == server.power_state {
            return Ok(false);
        }
        let vm = match (server.vm_state, power) {
            (VmState::Active, PowerState::Shutdown | PowerState::Crashed) => VmState::Stopped,
            (VmState::Stopped, PowerState::Running) => {
                let d = self.backends.get(server.backend);
                let s2 = sid.clone();
                let off = tokio::task::spawn_blocking(move || d.power_off(&s2))
                    .await
                    .map_err(|e| crate::Error::Task(e.to_string()))?;
                if let Err(e) = off {
                    tracing::warn!(server_id = %sid, error = %e, "powering off a stopped server the backend runs");
                }
                return Ok(false);
            }
            (vm, _) => vm,
        };
        // Only a server still settled in the state read above changes: a task that
        // started meanwhile owns it.
        let s3 = sid.clone();
        let from_vm = server.vm_state;
        let host = self.cfg.host.clone();
        let moved = self
            .store
            .write(move |tx| {
                let now = sql::get_server(tx, &s3)?;
                match now {
                    Some(n) if n.task_state.is_none() && n.vm_state == from_vm => {
                        let moved = sql::transition(tx, &s3, None, vm, None, Some(power))?;
                        // A crash (an OOM kill of a container's init, a guest that
                        // crashed) is recorded as an instance action, so the owner
                        // sees why the server stopped.
                        if moved && power == PowerState::Crashed {
                            let rid = format!("req-{}", uuid::Uuid::new_v4());
                            let a = sql::start_action(
                                tx,
                                &s3,
                                &rid,
                                "stop",
                                &n.project_id,
                                &n.user_id,
                            )?;
                            let ev = sql::start_event(tx, a, "compute_power_state_sync", &host)?;
                            sql::finish_event(
                                tx,
                                ev,
                                false,
                                Some("The instance crashed (its backend reported power state CRASHED)"),
                            )?;
                        }
                        Ok(moved)
                    }
                    _ => Ok(false),
                }
            })
            .await?;
        if moved {
            tracing::warn!(server_id = %sid, ?power, "power state synced from the backend");
        }
        Ok(moved)
    }

    /// Runs [`sync_power_states`](Self::sync_power_states) and then
    /// [`run_periodic_tasks`](Self::run_periodic_tasks) (resize auto-confirm, shelved
    /// offload, soft-delete reclaim) every `every` until the process ends. Between ticks,
    /// each backend with state events ([`ComputeDriver::watch`]) reports the servers that
    /// changed by themselves, and those are synced at once.
    ///
    /// [`ComputeDriver::watch`]: driver::ComputeDriver::watch
    pub fn spawn_power_sync(&self, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let (tx, mut changed) = tokio::sync::mpsc::unbounded_channel::<ServerId>();
        for (kinds, d) in self.backends.present() {
            let tx = tx.clone();
            let sink: driver::StateSink = std::sync::Arc::new(move |id: &ServerId| {
                let _ = tx.send(id.clone());
            });
            if d.watch(sink) {
                tracing::info!(
                    backend = d.name(),
                    ?kinds,
                    "following the backend's state events"
                );
            }
        }
        drop(tx);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            let mut events_open = true;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = this.sync_power_states().await {
                            tracing::error!(error = %e, "power-state sync");
                        }
                        this.run_periodic_tasks().await;
                    }
                    id = changed.recv(), if events_open => {
                        let Some(id) = id else {
                            events_open = false;
                            continue;
                        };
                        // One event often comes with others (stopped, then undefined);
                        // each server is synced once per burst.
                        let mut ids = std::collections::BTreeSet::from([id.to_string()]);
                        while let Ok(more) = changed.try_recv() {
                            ids.insert(more.to_string());
                        }
                        for id in ids {
                            let sid = ServerId::from_stored(id);
                            if let Err(e) = this.sync_power_state(&sid).await {
                                tracing::error!(server_id = %sid, error = %e, "power-state sync on a backend event");
                            }
                        }
                    }
                }
            }
        })
    }
}
