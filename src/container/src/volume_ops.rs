//! A volume attached to and detached from an existing container (see [`crate::volumes`]):
//! recorded in `instance.json` (every later boot mounts it before init runs) and, when the
//! container runs, mounted into it at once; a detach unmounts it inside, releases it on the
//! host, then drops it from the record. A stopped container only has its record changed.

use driver::{DriverError, InstanceSpec, Volume};

use model::compute::ServerId;

use crate::state::{Instance, Paths};
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

/// Releases the volumes staged for the stopped instance at `p` (recorded or left by an
/// interrupted attach).
pub(crate) fn release_stopped(p: &Paths) -> Result<()> {
    let vols = state::read_json::<Instance>(&p.instance())
        .map(|i| i.volumes)
        .unwrap_or_default();
    volumes::release_all(p, &vols).map_err(failed)
}

/// At start-up: the volumes of containers that do not run (their shim was killed, say) are
/// released, so no loop device or staging mount of a stopped container stays behind.
pub(crate) fn sweep(drv: &ContainerDriver) {
    let Ok(rd) = std::fs::read_dir(drv.instances_dir()) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = ServerId::parse(&name) else {
            continue;
        };
        if !e.path().join("volumes").exists() || drv.running_boot(&id).is_some() {
            continue;
        }
        if let Err(e) = release_stopped(&Paths::new(&e.path())) {
            tracing::warn!(server_id = %name, error = %e, "cannot release the volumes of a stopped container");
        }
    }
}
