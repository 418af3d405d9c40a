//! Volume snapshots: create (a copy of the volume's data), show, list, update, delete.

use std::collections::BTreeMap;

use chrono::Utc;
use model::Context;
use model::volume::{SnapshotRec, status};
use store::volume as sql;

use crate::{BackendError, Error, Result, Volumes, check_quota, may_write, unwrap_abort};

fn snapshot_not_found(id: &str) -> Error {
    Error::NotFound(format!("Snapshot {id} could not be found."))
}

#[derive(Clone, Debug, Default)]
pub struct SnapshotCreate {
    pub volume_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// Snapshot an attached volume too.
    pub force: bool,
}

impl Volumes {
    pub async fn get_snapshot(&self, ctx: &Context, id: &str) -> Result<SnapshotRec> {
        let key = id.to_owned();
        match self.store.read(move |c| sql::get_snapshot(c, &key)).await? {
            Some(s) if ctx.can_read(&s.project_id) => Ok(s),
            _ => Err(snapshot_not_found(id)),
        }
    }

    pub async fn list_snapshots(
        &self,
        ctx: &Context,
        all_projects: bool,
    ) -> Result<Vec<SnapshotRec>> {
        let project = if all_projects && ctx.is_admin() {
            None
        } else {
            match &ctx.project_id {
                Some(p) if ctx.can_read(p) => Some(p.clone()),
                _ => return Ok(Vec::new()),
            }
        };
        Ok(self
            .store
            .read(move |c| sql::list_snapshots(c, project.as_ref(), None))
            .await?)
    }

    /// Snapshots a volume: the row in `creating` (quota checked in the same transaction),
    /// the copy on a blocking thread, then `available` or `error`.
    pub async fn create_snapshot(&self, ctx: &Context, req: SnapshotCreate) -> Result<SnapshotRec> {
        let v = self.get(ctx, &req.volume_id).await?;
        may_write(ctx, &v.project_id, "volume:create_snapshot")?;
        let ok = v.status == status::AVAILABLE || (req.force && v.status == status::IN_USE);
        if !ok {
            return Err(Error::BadRequest(
                "Invalid volume: Volume status must be available in order to create a snapshot."
                    .into(),
            ));
        }
        let rec = SnapshotRec {
            id: uuid::Uuid::new_v4().to_string(),
            project_id: v.project_id.clone(),
            user_id: ctx.user_id.clone(),
            volume_id: v.id.clone(),
            name: req.name,
            description: req.description,
            size_gb: v.size_gb,
            status: status::CREATING.into(),
            metadata: req.metadata,
            path: None,
            created_at: Utc::now(),
            updated_at: None,
        };
        let row = rec.clone();
        unwrap_abort(
            self.store
                .write(move |tx| {
                    check_quota(tx, &row.project_id, 0, 1, row.size_gb as i64)
                        .map_err(store::abort)?;
                    sql::insert_snapshot(tx, &row)
                })
                .await,
        )?;
        let this = self.clone();
        let (sid, src) = (rec.id.clone(), v.path.clone());
        tokio::spawn(async move {
            let b = this.backend.clone();
            let id = sid.clone();
            let made = tokio::task::spawn_blocking(move || match src {
                Some(p) => b.snapshot(&id, std::path::Path::new(&p)),
                None => Err(BackendError::Invalid("the volume has no data".into())),
            })
            .await
            .unwrap_or_else(|e| Err(BackendError::Io(e.to_string())));
            let (to, path) = match made {
                Ok(p) => (status::AVAILABLE, Some(p.to_string_lossy().into_owned())),
                Err(e) => {
                    tracing::warn!(snapshot_id = %sid, error = %e, "snapshot failed");
                    (status::ERROR, None)
                }
            };
            let _ = this
                .store
                .write(move |tx| {
                    sql::set_snapshot_status(tx, &sid, &[status::CREATING], to, path.as_deref())
                })
                .await;
        });
        Ok(rec)
    }

    pub async fn update_snapshot(
        &self,
        ctx: &Context,
        id: &str,
        name: Option<Option<String>>,
        description: Option<Option<String>>,
        metadata: Option<BTreeMap<String, String>>,
    ) -> Result<SnapshotRec> {
        let mut s = self.get_snapshot(ctx, id).await?;
        may_write(ctx, &s.project_id, "volume:update_snapshot")?;
        if let Some(n) = name {
            s.name = n;
        }
        if let Some(d) = description {
            s.description = d;
        }
        if let Some(m) = metadata {
            s.metadata = m;
        }
        let key = id.to_owned();
        self.store
            .write(move |tx| {
                sql::update_snapshot(tx, &s)?;
                sql::get_snapshot(tx, &key)
            })
            .await?
            .ok_or_else(|| snapshot_not_found(id))
    }

    pub async fn delete_snapshot(&self, ctx: &Context, id: &str) -> Result<()> {
        let s = self.get_snapshot(ctx, id).await?;
        may_write(ctx, &s.project_id, "volume:delete_snapshot")?;
        let key = id.to_owned();
        unwrap_abort(
            self.store
                .write(move |tx| {
                    let ok = sql::set_snapshot_status(
                        tx,
                        &key,
                        &[status::AVAILABLE, status::ERROR, status::ERROR_DELETING],
                        status::DELETING,
                        None,
                    )?;
                    if !ok {
                        return Err(store::abort(Error::BadRequest(
                            "Invalid snapshot: Snapshot status must be available or error and must not be part of a group."
                                .into(),
                        )));
                    }
                    Ok(())
                })
                .await,
        )?;
        let b = self.backend.clone();
        let path = s.path.clone();
        let r = tokio::task::spawn_blocking(move || match path {
            Some(p) => b.delete(std::path::Path::new(&p)),
            None => Ok(()),
        })
        .await
        .unwrap_or_else(|e| Err(BackendError::Io(e.to_string())));
        let key = id.to_owned();
        let ok = r.is_ok();
        self.store
            .write(move |tx| {
                if ok {
                    sql::delete_snapshot(tx, &key)
                } else {
                    sql::set_snapshot_status(tx, &key, &[], status::ERROR_DELETING, None)
                        .map(|_| ())
                }
            })
            .await?;
        Ok(())
    }
}
