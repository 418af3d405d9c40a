//! A volume attached to and detached from an existing container (see [`crate::volumes`]):
//! recorded in `instance.json` (every later boot mounts it before init runs) and, when the
//! container runs, mounted into it at once; a detach unmounts it inside, releases it on the
//! host, then drops it from the record. A stopped container only has its record changed.

use driver::{DriverError, InstanceSpec, Volume};

use crate::volumes::{self, VolumeRec};
use crate::{ContainerDriver, failed, state};

type Result<T> = std::result::Result<T, DriverError>;

pub(crate) fn attach(drv: &ContainerDriver, spec: &InstanceSpec, volume: &Volume) -> Result<()> {
    let (paths, mut inst) = drv.load(&spec.id)?;
    let rec = match inst
        .volumes
        .iter()
        .find(|v| v.volume_id == volume.volume_id)
    {
        // Recorded already (a retry): mounted in the running container if it is not there.
        Some(v) => v.clone(),
        None => {
            let rec = VolumeRec::of(volume).map_err(failed)?;
            if inst.volumes.iter().any(|v| v.mount_path == rec.mount_path) {
                return Err(failed(format!(
                    "another volume is mounted at {}",
                    rec.mount_path
                )));
            }
            inst.volumes.push(rec.clone());
            state::write_json(&paths.instance(), &inst)
                .map_err(|e| failed(format!("recording the volume: {e}")))?;
            rec
        }
    };
    if let Some(b) = drv.running_boot(&spec.id)
        && let Err(e) = volumes::attach_running(&paths, &rec, b.init_pid, inst.user_namespace)
    {
        tracing::warn!(server_id = %spec.id, volume_id = %rec.volume_id, error = %e, "volume attach failed; undoing");
        let _ = volumes::release(&paths, &rec);
        inst.volumes.retain(|v| v.volume_id != rec.volume_id);
        let _ = state::write_json(&paths.instance(), &inst);
        return Err(failed(format!("mounting the volume: {e}")));
    }
    tracing::info!(server_id = %spec.id, volume_id = %rec.volume_id, path = %rec.mount_path, "volume attached");
    Ok(())
}

pub(crate) fn detach(drv: &ContainerDriver, spec: &InstanceSpec, volume: &Volume) -> Result<()> {
    let (paths, mut inst) = drv.load(&spec.id)?;
    let rec = match inst
        .volumes
        .iter()
        .find(|v| v.volume_id == volume.volume_id)
    {
        Some(v) => v.clone(),
        None => match VolumeRec::of(volume) {
            Ok(r) => r,
            // Never attachable, so never attached.
            Err(_) => return Ok(()),
        },
    };
    if let Some(b) = drv.running_boot(&spec.id) {
        volumes::detach_running(&paths, &rec, b.init_pid).map_err(failed)?;
    }
    volumes::release(&paths, &rec).map_err(failed)?;
    if inst.volumes.iter().any(|v| v.volume_id == rec.volume_id) {
        inst.volumes.retain(|v| v.volume_id != rec.volume_id);
        state::write_json(&paths.instance(), &inst)
            .map_err(|e| failed(format!("recording the volume's removal: {e}")))?;
    }
    tracing::info!(server_id = %spec.id, volume_id = %rec.volume_id, "volume detached");
    Ok(())
}
