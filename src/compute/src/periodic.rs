//! The periodic work: confirms resizes, offloads shelved servers and reclaims soft-deleted
//! ones when their time has come, and prunes the backends' image caches.

use chrono::{DateTime, Utc};
use model::compute::{Server, ServerId, TaskState, VmState};
use store::compute as sql;

use crate::Compute;
use crate::actions::Action;
use crate::sysmeta::{RESIZED_AT, SHELVED_AT, SOFT_DELETED_AT};

fn request_id() -> String {
    format!("req-{}", uuid::Uuid::new_v4().hyphenated())
}

impl Compute {
    /// Servers whose system metadata `key` (a time) is older than `secs`.
    async fn expired(&self, key: &'static str, secs: u64) -> Vec<ServerId> {
        let now = Utc::now();
        let rows = self
            .store
            .read(move |c| sql::servers_with_sysmeta(c, key))
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "reading system metadata");
                Vec::new()
            });
        rows.into_iter()
            .filter(|(_, v)| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| (now - t.with_timezone(&Utc)).num_seconds() >= secs as i64)
                    .unwrap_or(false)
            })
            .map(|(id, _)| id)
            .collect()
    }

    /// The servers whose system metadata `key` is older than `secs`, still settled in `vm`
    /// with no task running.
    async fn due(&self, key: &'static str, secs: u64, vm: VmState) -> Vec<Server> {
        let mut out = Vec::new();
        for id in self.expired(key, secs).await {
            if let Some(s) = self.load(&id).await
                && s.vm_state == vm
                && s.task_state.is_none()
            {
                out.push(s);
            }
        }
        out
    }

    /// Asks every backend of the box to prune its image cache of what no instance uses and
    /// has been unused for `image_cache_min_age_secs` (Nova's image cache manager), each on a
    /// blocking thread, one after the other. Returns how many cached images were removed.
    pub async fn prune_image_caches(&self) -> usize {
        let min_age = std::time::Duration::from_secs(self.cfg.image_cache_min_age_secs);
        let mut removed = 0;
        for (kinds, d) in self.backends.present() {
            let name = d.name();
            match tokio::task::spawn_blocking(move || d.prune_image_cache(min_age)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => {
                    tracing::info!(backend = name, ?kinds, removed = n, "image cache pruned");
                    removed += n;
                }
                Ok(Err(e)) => {
                    tracing::error!(backend = name, ?kinds, error = %e, "pruning the image cache");
                }
                Err(e) => {
                    tracing::error!(backend = name, ?kinds, error = %e, "pruning the image cache");
                }
            }
        }
        removed
    }

    /// Whether the image caches are due for a prune at `now` (every
    /// `image_cache_interval_secs`, never with 0); when they are, the next prune is due one
    /// interval later.
    fn image_cache_prune_due(&self, now: std::time::Instant) -> bool {
        let every = self.cfg.image_cache_interval_secs;
        if every == 0 {
            return false;
        }
        let mut due = self
            .image_cache_due
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if now < *due {
            return false;
        }
        *due = now + std::time::Duration::from_secs(every);
        true
    }

    /// Confirms resizes older than `resize_confirm_window_secs`, offloads servers shelved
    /// longer than `shelved_offload_time` and reclaims servers soft-deleted longer than
    /// `reclaim_instance_interval`, as Nova's periodic tasks do. Returns how many it started.
    /// Every `image_cache_interval_secs` it also starts a prune of the backends' image caches
    /// in the background ([`prune_image_caches`](Self::prune_image_caches)); a prune waits
    /// for an image being converted, and the other periodic work does not wait for it.
    pub async fn run_periodic_tasks(&self) -> usize {
        if self.image_cache_prune_due(std::time::Instant::now()) {
            let this = self.clone();
            tokio::spawn(async move {
                this.prune_image_caches().await;
            });
        }
        let mut started = 0;
        if self.cfg.resize_confirm_window_secs > 0 {
            let secs = self.cfg.resize_confirm_window_secs;
            for s in self.due(RESIZED_AT, secs, VmState::Resized).await {
                let confirm = (Action::ConfirmResize, TaskState::ResizeConfirming);
                let run = Compute::run_confirm_resize;
                if self
                    .start(&s, confirm, &request_id(), &s.user_id, run)
                    .await
                    .is_ok()
                {
                    tracing::info!(server_id = %s.id, "resize confirmed automatically");
                    started += 1;
                }
            }
        }
        if self.cfg.shelved_offload_time > 0 {
            let secs = self.cfg.shelved_offload_time as u64;
            for s in self.due(SHELVED_AT, secs, VmState::Shelved).await {
                let offload = (Action::ShelveOffload, TaskState::ShelvingOffloading);
                let run = Compute::run_offload;
                if self
                    .start(&s, offload, &request_id(), &s.user_id, run)
                    .await
                    .is_ok()
                {
                    started += 1;
                }
            }
        }
        if self.cfg.reclaim_instance_interval > 0 {
            let secs = self.cfg.reclaim_instance_interval;
            for s in self.due(SOFT_DELETED_AT, secs, VmState::SoftDeleted).await {
                let (sid, rid, project, user) = (
                    s.id.clone(),
                    request_id(),
                    s.project_id.clone(),
                    s.user_id.clone(),
                );
                if let Ok(action) = self
                    .store
                    .write(move |tx| {
                        sql::mark_deleting(tx, &sid)?;
                        sql::start_action(tx, &sid, &rid, "delete", &project, &user)
                    })
                    .await
                {
                    tracing::info!(server_id = %s.id, "soft-deleted server reclaimed");
                    let sid = s.id.clone();
                    self.run(&s.id, move |c| async move { c.destroy(sid, action).await });
                    started += 1;
                }
            }
        }
        started
    }
}
