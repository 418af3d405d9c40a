//! The volume service as compute uses it for servers' block device mappings: volumes made
//! from images (resolved as the owner's project sees them), snapshots or nothing, and
//! deleted on termination, each with the owner's policy and quota.

use std::collections::BTreeMap;

use compute::block_devices::{BdmSource, NewVolume, ProviderFuture, VolumeProvider};
use model::Context;

/// What compute is given: the image and volume services, not the whole API state (which
/// holds compute itself).
pub(crate) struct ComputeVolumes {
    pub images: image::Images,
    pub volumes: volume::Volumes,
}

fn from_volume(e: volume::Error) -> compute::Error {
    match e {
        volume::Error::NotFound(m) => compute::Error::NotFound(m),
        volume::Error::BadRequest(m) => compute::Error::BadRequest(m),
        volume::Error::Forbidden(m) => compute::Error::Forbidden(m),
        volume::Error::OverQuota(m) => compute::Error::QuotaExceeded(m),
        other => compute::Error::Task(other.to_string()),
    }
}

/// What the volume service is given: the compute service, for volumes extended while
/// attached. (The two services then hold each other; both live as long as the process.)
pub(crate) struct AttachedVolumes {
    pub compute: compute::Compute,
}

impl volume::OnlineExtend for AttachedVolumes {
    fn check<'a>(&'a self, volume_id: &'a str) -> volume::HookFuture<'a> {
        Box::pin(async move {
            self.compute
                .may_grow_online(volume_id)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn grown<'a>(&'a self, volume_id: &'a str, new_bytes: u64) -> volume::HookFuture<'a> {
        Box::pin(async move {
            self.compute
                .volume_grown(volume_id, new_bytes)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

impl VolumeProvider for ComputeVolumes {
    fn create<'a>(&'a self, ctx: &'a Context, v: NewVolume) -> ProviderFuture<'a, String> {
        Box::pin(async move {
            let source = match v.source {
                BdmSource::Image(id) => volume::Source::Image(
                    super::volumes::source_image(&self.images, ctx, &id)
                        .await
                        .map_err(|f| compute::Error::BadRequest(f.message))?,
                ),
                BdmSource::Snapshot(id) => volume::Source::Snapshot(id),
                BdmSource::Blank => volume::Source::Blank,
                BdmSource::Volume(id) => {
                    return Err(compute::Error::BadRequest(format!(
                        "Volume {id} exists already."
                    )));
                }
            };
            let req = volume::VolumeCreate {
                size_gb: v.size_gb,
                name: Some(v.name),
                description: None,
                volume_type: None,
                availability_zone: None,
                metadata: BTreeMap::new(),
                bootable: false,
                source,
            };
            let rec = self.volumes.create(ctx, req).await.map_err(from_volume)?;
            Ok(rec.id)
        })
    }

    fn delete<'a>(&'a self, ctx: &'a Context, id: &'a str) -> ProviderFuture<'a, ()> {
        Box::pin(async move {
            self.volumes
                .delete(ctx, id, false, false)
                .await
                .map_err(from_volume)
        })
    }
}
