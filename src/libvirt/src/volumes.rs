//! Block-storage volumes as virtio disks of a guest.
//!
//! Every volume of a spec is a `<disk>` of the definition, after the server's own disk, with
//! the volume id as its serial and its format as given. A server booted from a volume (no
//! image, a volume with boot index 0) has no disk of its own and boots that volume. Attach
//! adds the disk to the running guest and its persistent definition (`AFFECT_LIVE|CONFIG`),
//! or to the definition alone when the guest is shut off; detach removes it likewise and
//! returns once the guest released it and QEMU no longer holds the volume open. A volume's
//! file is never the instance's: destroy leaves it where it is.

use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use driver::{DriverError, InstanceSpec, Volume};
use virt::domain::Domain;
use virt::sys;

use crate::{Error, LibvirtDriver, xml};

/// How long a guest has to release a disk unplugged while it runs.
const RELEASE: Duration = Duration::from_secs(30);

/// Whether the volume is the one a server without an image boots from.
pub(crate) fn boots(spec: &InstanceSpec, v: &Volume) -> bool {
    spec.image.is_none() && v.boot_index == Some(0)
}

/// Whether `spec` boots from a volume (and so has no disk of its own).
pub(crate) fn volume_backed(spec: &InstanceSpec) -> bool {
    spec.volumes.iter().any(|v| boots(spec, v))
}

/// Whether O_DIRECT opens `path` (tmpfs, for one, refuses it): `cache='none'` needs it.
fn direct_ok(path: &Path) -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECT)
        .open(path)
        .is_ok()
}

/// The target device name of `v`: its device without `/dev/`, checked, or the first free
/// `vd*` name after the ones `taken`.
fn target(v: &Volume, taken: &[String]) -> Result<String, Error> {
    let name = v.device.trim_start_matches("/dev/");
    if !name.is_empty() {
        let ok = name.len() <= 8
            && name.starts_with("vd")
            && name[2..].bytes().all(|b| b.is_ascii_lowercase());
        if !ok || name.len() == 2 {
            return Err(Error::Invalid(format!("bad volume device {}", v.device)));
        }
        return Ok(name.to_owned());
    }
    (b'b'..=b'z')
        .map(|c| format!("vd{}", c as char))
        .find(|t| !taken.iter().any(|x| x == t))
        .ok_or_else(|| Error::Invalid("no free disk name left".into()))
}

/// `v` as a guest disk.
fn disk(v: &Volume, boot: bool, taken: &[String]) -> Result<xml::VolumeDisk, Error> {
    if v.format != "raw" && v.format != "qcow2" {
        return Err(Error::Invalid(format!(
            "volume {} has format {:?}, not raw or qcow2",
            v.volume_id, v.format
        )));
    }
    let m =
        std::fs::metadata(&v.path).map_err(|e| Error::Io(format!("volume {}", v.volume_id), e))?;
    let block = m.file_type().is_block_device();
    if !block && !m.is_file() {
        return Err(Error::Invalid(format!(
            "volume {} is neither a file nor a block device",
            v.volume_id
        )));
    }
    Ok(xml::VolumeDisk {
        source: v.path.clone(),
        block,
        format: v.format.clone(),
        target: target(v, taken)?,
        serial: v.volume_id.clone(),
        read_only: v.read_only,
        direct: direct_ok(&v.path),
        boot,
    })
}

/// The disks of every volume of `spec`, in its order (the boot volume `vda` when the
/// server has no disk of its own).
pub(crate) fn disks(spec: &InstanceSpec) -> Result<Vec<xml::VolumeDisk>, Error> {
    let mut taken = vec!["vda".to_owned()];
    let mut out = Vec::new();
    for v in &spec.volumes {
        let boot = boots(spec, v);
        let mut d = disk(v, boot, &taken)?;
        if boot {
            d.target = "vda".into();
        }
        taken.push(d.target.clone());
        out.push(d);
    }
    Ok(out)
}

/// The `<disk>` element of a definition whose serial is `serial`.
fn element<'a>(def: &'a str, serial: &str) -> Option<&'a str> {
    let want = format!("<serial>{}</serial>", xml::esc(serial));
    let mut at = 0;
    while let Some(i) = def[at..].find("<disk ") {
        let start = at + i;
        let end = start + def[start..].find("</disk>")? + "</disk>".len();
        if def[start..end].contains(&want) {
            return Some(&def[start..end]);
        }
        at = end;
    }
    None
}

/// The target device names a definition's disks use.
fn targets(def: &str) -> Vec<String> {
    def.split("<target dev='")
        .skip(1)
        .filter_map(|r| r.split('\'').next().map(str::to_owned))
        .collect()
}

fn defs(d: &Domain) -> Result<(String, String, bool), Error> {
    let inactive = d.get_xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)?;
    let active = d.is_active()?;
    let live = if active {
        d.get_xml_desc(0)?
    } else {
        String::new()
    };
    Ok((inactive, live, active))
}

pub(crate) fn attach(drv: &LibvirtDriver, spec: &InstanceSpec, v: &Volume) -> driver::Result<()> {
    let d = drv.domain(&spec.id)?;
    let (inactive, live, active) = defs(&d)?;
    let in_config = element(&inactive, &v.volume_id).is_some();
    let in_live = element(&live, &v.volume_id).is_some();
    if in_config && (!active || in_live) {
        return Ok(());
    }
    let mut taken = targets(&inactive);
    taken.extend(targets(&live));
    let mut dev = disk(v, false, &taken)?;
    // A retry after the definition got it: the running guest gets the same disk.
    if let Some(t) = element(&inactive, &v.volume_id).and_then(|e| targets(e).pop()) {
        dev.target = t;
    } else if taken.contains(&dev.target) {
        return Err(DriverError::Failed(format!(
            "the server already has a disk {}",
            dev.target
        )));
    }
    let flags = match (in_config, active) {
        (true, _) => sys::VIR_DOMAIN_AFFECT_LIVE,
        (false, true) => sys::VIR_DOMAIN_AFFECT_LIVE | sys::VIR_DOMAIN_AFFECT_CONFIG,
        (false, false) => sys::VIR_DOMAIN_AFFECT_CONFIG,
    };
    d.attach_device_flags(&dev.to_xml(), flags)
        .map_err(Error::from)?;
    tracing::info!(server_id = %spec.id, volume_id = %v.volume_id, target = %dev.target, "volume attached");
    Ok(())
}

/// Whether the QEMU of server `name` holds `path` open.
fn qemu_holds(path: &Path, name: &str) -> bool {
    let guest = format!("guest={name},");
    !driver::holders::holders(path, |pid| driver::holders::cmdline(pid).contains(&guest)).is_empty()
}

/// An online extend: QEMU is told the volume's new size (the file has grown already), and
/// the guest sees a capacity change on the disk. A stopped domain reads the size at start.
pub(crate) fn extend(
    drv: &LibvirtDriver,
    spec: &InstanceSpec,
    v: &Volume,
    new_bytes: u64,
) -> driver::Result<()> {
    let d = drv.domain(&spec.id)?;
    if !d.is_active().map_err(Error::from)? {
        return Ok(());
    }
    let live = d.get_xml_desc(0).map_err(Error::from)?;
    let target = element(&live, &v.volume_id)
        .and_then(|e| targets(e).pop())
        .ok_or_else(|| DriverError::Failed(format!("volume {} is not attached", v.volume_id)))?;
    d.block_resize(&target, new_bytes, sys::VIR_DOMAIN_BLOCK_RESIZE_BYTES)
        .map_err(Error::from)?;
    tracing::info!(server_id = %spec.id, volume_id = %v.volume_id, %target, new_bytes, "volume extended online");
    Ok(())
}

pub(crate) fn detach(drv: &LibvirtDriver, spec: &InstanceSpec, v: &Volume) -> driver::Result<()> {
    let d = drv.domain(&spec.id)?;
    let name = crate::domain_name_of(&spec.id);
    let (inactive, live, _) = defs(&d)?;
    if let Some(e) = element(&live, &v.volume_id) {
        d.detach_device_flags(e, sys::VIR_DOMAIN_AFFECT_LIVE)
            .map_err(Error::from)?;
    }
    if let Some(e) = element(&inactive, &v.volume_id) {
        d.detach_device_flags(e, sys::VIR_DOMAIN_AFFECT_CONFIG)
            .map_err(Error::from)?;
    }
    // The guest releases the disk when it answers the unplug request; until then QEMU
    // still writes to the volume.
    let end = Instant::now() + RELEASE;
    loop {
        let live = if d.is_active().map_err(Error::from)? {
            d.get_xml_desc(0).map_err(Error::from)?
        } else {
            String::new()
        };
        if element(&live, &v.volume_id).is_none() && !qemu_holds(&v.path, &name) {
            break;
        }
        if Instant::now() >= end {
            return Err(DriverError::Failed(format!(
                "the guest did not release the disk of volume {} within {} s",
                v.volume_id,
                RELEASE.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    tracing::info!(server_id = %spec.id, volume_id = %v.volume_id, "volume detached");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_is_found_by_its_serial() {
        let x = "<domain><disk type='file' device='disk'>\n<target dev='vda'/>\n</disk>\n<disk type='file' device='disk'>\n<target dev='vdb' bus='virtio'/>\n<serial>vol-1</serial>\n</disk></domain>";
        let e = element(x, "vol-1").expect("found");
        assert!(e.starts_with("<disk ") && e.ends_with("</disk>") && e.contains("vdb"));
        assert_eq!(element(x, "vol-2"), None);
        assert_eq!(targets(x), vec!["vda", "vdb"]);
    }

    #[test]
    fn targets_come_from_the_device_or_the_first_free_name() {
        let v = |dev: &str| Volume {
            device: dev.into(),
            ..Default::default()
        };
        assert_eq!(target(&v("/dev/vdc"), &[]).expect("vdc"), "vdc");
        let taken = vec!["vda".to_owned(), "vdb".to_owned()];
        assert_eq!(target(&v(""), &taken).expect("free"), "vdc");
        for bad in ["/dev/sda", "/dev/vd", "/dev/vdb'/>", "/dev/../vdb"] {
            assert!(target(&v(bad), &[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_a_server_without_an_image_boots_its_volume() {
        let vol = Volume {
            boot_index: Some(0),
            ..Default::default()
        };
        let mut s = InstanceSpec {
            volumes: vec![vol.clone()],
            ..Default::default()
        };
        assert!(volume_backed(&s));
        s.image = Some(driver::ImageFile {
            id: "i".into(),
            path: "/i".into(),
            disk_format: "qcow2".into(),
            container_format: "bare".into(),
            content_hash: String::new(),
            properties: Default::default(),
        });
        assert!(!volume_backed(&s));
    }
}
