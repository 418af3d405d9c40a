//! Volume actions that move data or tell other services: `os-extend` (offline, and online
//! for a volume attached to a server that can see it grow) and `os-volume_upload_image`.

use std::path::PathBuf;

use model::Context;
use model::volume::{VolumeRec, status};
use store::volume as sql;

use crate::{BackendError, Error, GIB, Result, Volumes, check_quota, may_write, unwrap_abort};

/// What [`OnlineExtend`]'s calls return.
pub type HookFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = std::result::Result<(), String>> + Send + 'a>,
>;

/// Where attached volumes live (the compute service): whether the server holding a volume
/// can see it grow, and telling it that it did.
pub trait OnlineExtend: Send + Sync {
    /// Refused (with the reason) when the holder cannot see the volume grow.
    fn check<'a>(&'a self, volume_id: &'a str) -> HookFuture<'a>;
    /// The volume's file now has `new_bytes`.
    fn grown<'a>(&'a self, volume_id: &'a str, new_bytes: u64) -> HookFuture<'a>;
}

impl Volumes {
    /// Starts copying a volume to an image (`os-volume_upload_image`): `available` (or,
    /// with `force`, `in-use`) → `uploading`. Returns the volume as it was.
    pub async fn begin_upload(&self, ctx: &Context, id: &str, force: bool) -> Result<VolumeRec> {
        let v = self.get(ctx, id).await?;
        may_write(ctx, &v.project_id, "volume:upload_image")?;
        let from: &[&str] = if force {
            &[status::AVAILABLE, status::IN_USE]
        } else {
            &[status::AVAILABLE]
        };
        let key = id.to_owned();
        let moved = self
            .store
            .write(move |tx| sql::set_status(tx, &key, from, status::UPLOADING))
            .await?;
        if !moved {
            return Err(Error::BadRequest(format!(
                "Invalid volume: Volume {id} status must be available{}, but current status is: {}.",
                if force { " or in-use" } else { "" },
                v.status
            )));
        }
        Ok(v)
    }

    /// The volume's data as a file of `disk_format` (the caller removes it).
    pub async fn export(&self, v: &VolumeRec, disk_format: &str) -> Result<PathBuf> {
        let path = v
            .path
            .clone()
            .ok_or_else(|| Error::BadRequest("Invalid volume: the volume has no data.".into()))?;
        let b = self.backend.clone();
        let fmt = disk_format.to_owned();
        Ok(
            tokio::task::spawn_blocking(move || b.export(std::path::Path::new(&path), &fmt))
                .await
                .map_err(|e| Error::Backend(BackendError::Io(e.to_string())))??,
        )
    }

    /// Ends an upload: the volume goes back to the status it had.
    pub async fn end_upload(&self, id: &str, back_to: &str) {
        let (key, to) = (id.to_owned(), back_to.to_owned());
        let r = self
            .store
            .write(move |tx| sql::set_status(tx, &key, &[status::UPLOADING], &to))
            .await;
        if let Err(e) = r {
            tracing::error!(volume_id = %id, error = %e, "ending an upload");
        }
    }

    /// Grows a volume (`os-extend`): an unattached one, or with `online` (Cinder 3.42+) one
    /// attached to a server that can see it grow.
    pub async fn extend(&self, ctx: &Context, id: &str, new_size: u64, online: bool) -> Result<()> {
        let v = self.get(ctx, id).await?;
        may_write(ctx, &v.project_id, "volume:extend")?;
        let hook = match (v.status.as_str(), online, self.online.get()) {
            (status::IN_USE, true, Some(h)) => {
                h.check(id).await.map_err(Error::BadRequest)?;
                Some(h.clone())
            }
            _ => None,
        };
        let from = if hook.is_some() {
            status::IN_USE
        } else {
            status::AVAILABLE
        };
        if v.status != from {
            return Err(Error::BadRequest(format!(
                "Invalid volume: Volume {id} status must be 'available' or 'in-use' but is currently {}.",
                v.status
            )));
        }
        if new_size <= v.size_gb {
            return Err(Error::BadRequest(format!(
                "Invalid input received: New size for extend must be greater than current size. (current: {}, extended: {new_size}).",
                v.size_gb
            )));
        }
        let key = id.to_owned();
        let delta = (new_size - v.size_gb) as i64;
        let project = v.project_id.clone();
        unwrap_abort(
            self.store
                .write(move |tx| {
                    check_quota(tx, &project, 0, 0, delta).map_err(store::abort)?;
                    if !sql::set_status(tx, &key, &[from], status::EXTENDING)? {
                        return Err(store::abort(Error::BadRequest(format!(
                            "Invalid volume: Volume status must be '{from}'."
                        ))));
                    }
                    Ok(())
                })
                .await,
        )?;
        let b = self.backend.clone();
        let path = v.path.clone();
        let r = tokio::task::spawn_blocking(move || match path {
            Some(p) => b.extend(std::path::Path::new(&p), new_size),
            None => Err(BackendError::Invalid("the volume has no data".into())),
        })
        .await
        .unwrap_or_else(|e| Err(BackendError::Io(e.to_string())))
        .map_err(|e| e.to_string());
        // The file has grown; the guest that holds it is told.
        let r = match (r, &hook) {
            (Ok(()), Some(h)) => h.grown(id, new_size * GIB).await,
            (r, _) => r,
        };
        let key = id.to_owned();
        let mut v2 = v.clone();
        let ok = r.is_ok();
        if let Err(e) = &r {
            tracing::warn!(volume_id = %id, error = %e, "volume extend failed");
        }
        self.store
            .write(move |tx| {
                if ok {
                    v2.size_gb = new_size;
                    sql::update_volume(tx, &v2)?;
                    sql::set_status(tx, &key, &[status::EXTENDING], from)?;
                } else {
                    sql::set_status(tx, &key, &[status::EXTENDING], status::ERROR_EXTENDING)?;
                }
                Ok(())
            })
            .await?;
        Ok(())
    }
}
