//! The task runner: background work on servers, detached from the request that asked for it.
//!
//! Every task runs on the tokio runtime under three guards, taken in this order: a per-server
//! mutex so that two tasks never drive the same server's backend at the same time (a delete
//! waits for a build to finish its driver call, then destroys what it made); a per-project
//! semaphore of half the runner's slots (at least one), so one project's tasks never hold every
//! slot; and the runner's semaphore bounding how many run at once. A task waiting for its
//! server or its project holds no slot, so requests piling up on one server, or one project's
//! many servers, never keep another project's tasks from running. Driver calls run on
//! blocking threads. A task records its progress as an instance action event and moves the
//! server only from the state it expects (see `store::compute::transition`), so a task that
//! finds the server changed under it stops.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use driver::{ComputeDriver, InstanceSpec};
use model::compute::{Backend, PowerState, Server, ServerId, TaskState, VmState};
use store::compute as sql;
use tokio::sync::{Notify, Semaphore};

use crate::Compute;

pub(crate) struct Runner {
    slots: Arc<Semaphore>,
    /// How many slots one project's tasks may hold at once.
    per_project: usize,
    /// One semaphore per project with a task queued or running (the same discipline as
    /// `locks`).
    projects: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// One mutex per server with a task queued or running. The std mutex guards the map only
    /// for an insert or lookup, never across an `.await`.
    locks: Mutex<HashMap<ServerId, Arc<tokio::sync::Mutex<()>>>>,
    running: AtomicUsize,
    idle: Notify,
}

impl Runner {
    pub fn new(concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            slots: Arc::new(Semaphore::new(concurrency)),
            per_project: project_share(concurrency),
            projects: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            running: AtomicUsize::new(0),
            idle: Notify::new(),
        }
    }

    fn lock_of(&self, id: &ServerId) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(id.clone()).or_default().clone()
    }

    fn forget(&self, id: &ServerId) {
        let mut map = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = map.get(id) {
            // Only the map and the finishing task hold it: nobody is waiting.
            if Arc::strong_count(l) <= 2 {
                map.remove(id);
            }
        }
    }

    fn project_slots(&self, project: &str) -> Arc<Semaphore> {
        let mut map = self.projects.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(project.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_project)))
            .clone()
    }

    fn forget_project(&self, project: &str) {
        let mut map = self.projects.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get(project)
            && Arc::strong_count(s) <= 1
        {
            map.remove(project);
        }
    }

    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.running.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// The slots one project's tasks may hold: half the runner's, at least one.
fn project_share(concurrency: usize) -> usize {
    (concurrency / 2).max(1)
}

impl Compute {
    /// Starts a task on server `id` in the background: the future `job` makes of the
    /// service runs under the runner's guards and outlives the request that started it. The
    /// runner knows nothing of what the task does.
    pub(crate) fn run<F, Fut>(&self, id: &ServerId, job: F)
    where
        F: FnOnce(Compute) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let job = job(self.clone());
        let this = self.clone();
        let id = id.clone();
        self.tasks.running.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let lock = this.tasks.lock_of(&id);
            let project = this.project_of(&id).await;
            {
                // The server first, then the project's share, then a slot: nothing waits
                // while holding what another project's task needs.
                let _guard = lock.lock().await;
                let mine = this.tasks.project_slots(&project);
                let _share = mine.clone().acquire_owned().await;
                let _permit = this.tasks.slots.clone().acquire_owned().await;
                drop(mine);
                job.await;
            }
            drop(lock);
            this.tasks.forget(&id);
            this.tasks.forget_project(&project);
            if this.tasks.running.fetch_sub(1, Ordering::SeqCst) == 1 {
                this.tasks.idle.notify_waiters();
            }
        });
    }

    /// The project a server belongs to, for its task's share of the runner; a server the
    /// database no longer has shares the empty project's.
    async fn project_of(&self, id: &ServerId) -> String {
        let id2 = id.clone();
        match self.store.read(move |c| sql::server_project(c, &id2)).await {
            Ok(p) => p.unwrap_or_default(),
            Err(e) => {
                tracing::error!(server_id = %id, error = %e, "reading a server's project");
                String::new()
            }
        }
    }

    /// The backend a server runs on; a server the database no longer has is looked for on
    /// the default backend.
    pub(crate) async fn backend_of(&self, id: &ServerId) -> Backend {
        let id2 = id.clone();
        match self.store.read(move |c| sql::server_backend(c, &id2)).await {
            Ok(Some(b)) => b,
            Ok(None) => Backend::Vm,
            Err(e) => {
                tracing::error!(server_id = %id, error = %e, "reading a server's backend");
                Backend::Vm
            }
        }
    }

    /// Runs `f` on a blocking thread with the driver of server `id`'s backend.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        id: &ServerId,
        f: impl FnOnce(&dyn ComputeDriver) -> driver::Result<T> + Send + 'static,
    ) -> driver::Result<T> {
        let d = self.backends.get(self.backend_of(id).await);
        tokio::task::spawn_blocking(move || f(d.as_ref()))
            .await
            .unwrap_or_else(|e| Err(driver::DriverError::Failed(format!("driver task: {e}"))))
    }

    pub(crate) async fn build(
        &self,
        server: Server,
        action: i64,
        to_make: Vec<crate::block_devices::BlockDevice>,
    ) {
        use TaskState as T;
        let id = server.id.clone();
        if let Err(reason) = self.schedule(&id).await {
            self.no_valid_host(&id, action, &reason).await;
            return;
        }
        let event = self
            .event(action, "compute__do_build_and_run_instance")
            .await;
        for (from, to) in [
            (T::Scheduling, T::Networking),
            (T::Networking, T::BlockDeviceMapping),
            (T::BlockDeviceMapping, T::Spawning),
        ] {
            if to == T::Spawning
                && let Err(why) = self.make_volumes(&server, to_make.clone()).await
            {
                tracing::warn!(server_id = %id, error = %why, "block devices failed");
                let message = format!("Build of instance {id} aborted: {why}");
                self.step_with(
                    &id,
                    Some(T::BlockDeviceMapping),
                    (VmState::Error, None, Some(PowerState::NoState)),
                    crate::steps::record_fault(500, message.clone()),
                )
                .await;
                self.finish(event, false, Some(message)).await;
                return;
            }
            if !self
                .step(&id, Some(from), VmState::Building, Some(to), None)
                .await
            {
                self.finish(
                    event,
                    false,
                    Some("the server was deleted while it was being built".into()),
                )
                .await;
                return;
            }
        }
        let spec = self.instance_spec(&server).await;
        match self.blocking(&id, move |d| d.spawn(&spec)).await {
            Ok(()) => {
                self.volumes_attached(&id).await;
                if self
                    .step_with(
                        &id,
                        Some(T::Spawning),
                        (VmState::Active, None, Some(PowerState::Running)),
                        |tx, id| sql::set_launched(tx, id, Utc::now()),
                    )
                    .await
                {
                    tracing::info!(server_id = %id, "server active");
                }
                // Deleted while spawning, the build still did its part: the delete task,
                // waiting on this server's lock, destroys what was just made.
                self.finish(event, true, None).await;
            }
            Err(e) => {
                tracing::warn!(server_id = %id, error = %e, "build failed");
                let (code, message) = match &e {
                    driver::DriverError::NoValidHost(why) => (
                        500,
                        format!(
                            "No valid host was found. There are not enough hosts available. {why}"
                        ),
                    ),
                    _ => (500, format!("Build of instance {id} aborted: {e}")),
                };
                self.step_with(
                    &id,
                    Some(T::Spawning),
                    (VmState::Error, None, Some(PowerState::NoState)),
                    crate::steps::record_fault(code, message.clone()),
                )
                .await;
                self.finish(event, false, Some(message)).await;
            }
        }
    }

    pub(crate) async fn destroy(&self, id: ServerId, action: i64) {
        let event = self.event(action, "compute_terminate_instance").await;
        let id2 = id.clone();
        match self.blocking(&id, move |d| d.destroy(&id2)).await {
            Ok(()) => {
                let id2 = id.clone();
                match self
                    .store
                    .write(move |tx| {
                        let owner = sql::get_server(tx, &id2)?;
                        sql::mark_deleted(tx, &id2)?;
                        Ok((owner, store::volume::release_server(tx, id2.as_str())?))
                    })
                    .await
                {
                    Ok((owner, released)) => {
                        if let Some(owner) = owner {
                            self.delete_released(&owner, released).await;
                        }
                        tracing::info!(server_id = %id, "server deleted");
                        self.ports_changed().await;
                        self.finish(event, true, None).await;
                    }
                    Err(e) => {
                        tracing::error!(server_id = %id, error = %e, "marking deleted");
                        self.finish(event, false, Some(e.to_string())).await;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(server_id = %id, error = %e, "delete failed");
                let _ = self
                    .step(&id, Some(TaskState::Deleting), VmState::Error, None, None)
                    .await;
                self.finish(event, false, Some(e.to_string())).await;
            }
        }
    }

    /// What the backend needs to build (or rebuild, or resize) `server`: its flavor, the data
    /// of its image (with the kernel and ramdisk the image names), its ports and the
    /// metadata a guest reads.
    pub(crate) async fn instance_spec(&self, server: &Server) -> InstanceSpec {
        // The kernel's filters for the ports come before any interface exists.
        self.ports_changed().await;
        let image = match &server.image_id {
            Some(i) => self.images.file(i).await,
            None => None,
        };
        // A volume-backed server's image properties are its boot volume's image metadata
        // (as Nova's are): a kernel and ramdisk named there boot it directly.
        let boot_meta = match &server.image_id {
            Some(_) => Default::default(),
            None => self.boot_volume_image_metadata(&server.id).await,
        };
        let linked = |key: &'static str| {
            image
                .as_ref()
                .and_then(|i| i.properties.get(key).cloned())
                .or_else(|| boot_meta.get(key).cloned())
                .filter(|v| !v.is_empty())
        };
        // What the image links to is resolved with the server owner's visibility, never the
        // box's: another project's private image is no kernel or ramdisk of this server.
        let kernel = match linked("kernel_id") {
            Some(k) => self.images.file_for(&server.project_id, &k).await,
            None => None,
        };
        let ramdisk = match linked("ramdisk_id") {
            Some(r) => self.images.file_for(&server.project_id, &r).await,
            None => None,
        };
        let id = server.id.clone();
        let ports = self
            .store
            .read(move |c| sql::server_ports(c, &id))
            .await
            .unwrap_or_else(|e| {
                tracing::error!(server_id = %server.id, error = %e, "reading ports");
                Vec::new()
            })
            .into_iter()
            .map(|p| driver::Port {
                network_id: p.network.id,
                network_name: p.network.name,
                cidr: p.network.cidr,
                gateway: p.network.gateway,
                address: p.address,
                mac: p.mac,
                port_id: p.port_id,
                mtu: p.network.mtu,
                dns_nameservers: p.network.dns_nameservers,
                host_routes: p.network.host_routes,
                dhcp: p.network.enable_dhcp,
                port_security: p.port_security,
                allowed_address_pairs: p.allowed_address_pairs,
            })
            .collect();
        InstanceSpec {
            id: server.id.clone(),
            name: server.name.clone(),
            hostname: server.hostname.clone(),
            project_id: server.project_id.to_string(),
            availability_zone: server.availability_zone.clone(),
            launch_index: server.launch_index,
            vcpus: server.flavor.vcpus,
            ram_mb: server.flavor.ram_mb,
            disk_gb: server.flavor.disk_gb,
            flavor_name: server.flavor.name.clone(),
            extra_specs: server.flavor.extra_specs.clone(),
            image_id: server.image_id.clone(),
            image,
            kernel,
            ramdisk,
            user_data: server.user_data.clone(),
            key_name: server.key_name.clone(),
            key_data: server.key_data.clone(),
            admin_pass: None,
            metadata: server.metadata.clone(),
            config_drive: server.config_drive,
            addresses: server.addresses.clone(),
            ports,
            volumes: self.spec_volumes(&server.id).await,
        }
    }

    /// Re-runs a delete that a restart interrupted.
    pub(crate) fn resume_delete(&self, id: ServerId, action: i64) {
        self.run(
            &id.clone(),
            move |c| async move { c.destroy(id, action).await },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::project_share;

    #[test]
    fn a_project_gets_half_the_slots_and_at_least_one() {
        assert_eq!(project_share(1), 1);
        assert_eq!(project_share(2), 1);
        assert_eq!(project_share(3), 1);
        assert_eq!(project_share(8), 4);
    }
}
