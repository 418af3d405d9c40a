//! What `qemu-img info` must say of uploaded data before it is stored: the declared format,
//! and nothing that makes QEMU open another file (a backing file, an external data file, a
//! VMDK extent elsewhere, any child node but the file itself).

use std::path::Path;
use std::time::Duration;

use model::image::DiskFormat;

use crate::{Error, Result};

/// How long `qemu-img info` may take on an upload.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// The qemu-img format name for a declared disk format; `None` for formats it cannot check.
fn qemu_format(f: DiskFormat) -> Option<&'static str> {
    Some(match f {
        DiskFormat::Qcow2 => "qcow2",
        DiskFormat::Raw | DiskFormat::Iso => "raw",
        DiskFormat::Vmdk => "vmdk",
        DiskFormat::Vdi => "vdi",
        DiskFormat::Vhdx => "vhdx",
        DiskFormat::Vhd => "vpc",
        DiskFormat::Ami | DiskFormat::Ari | DiskFormat::Aki | DiskFormat::Ploop => return None,
    })
}

const QCOW2_MAGIC: &[u8] = b"QFI\xfb";

/// Checks that the data is what its declared format says and is safe to hand to QEMU later;
/// returns its virtual size. The format is always given to qemu-img explicitly: letting it
/// guess would let a raw upload that looks like qcow2 name a host file as its backing file.
pub(crate) async fn probe(
    qemu_img: &Path,
    path: &Path,
    declared: Option<DiskFormat>,
    head: &[u8],
) -> Result<Option<u64>> {
    let Some(declared) = declared else {
        return Ok(None);
    };
    let Some(fmt) = qemu_format(declared) else {
        return Ok(None);
    };
    if fmt == "raw" && head.starts_with(QCOW2_MAGIC) {
        return Err(Error::BadRequest(
            "Image data is in qcow2 format, not the declared disk_format raw.".into(),
        ));
    }
    // `file:` stops qemu-img from reading a protocol (nbd:, http:) out of the path.
    let target = format!("file:{}", path.display());
    let run = tokio::process::Command::new(qemu_img)
        .args(["info", "--output=json", "-f", fmt])
        .arg(&target)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(PROBE_TIMEOUT, run)
        .await
        .map_err(|_| Error::Probe("qemu-img info timed out".into()))?
        .map_err(|e| Error::Probe(format!("running {}: {e}", qemu_img.display())))?;
    if !out.status.success() {
        tracing::debug!(stderr = %String::from_utf8_lossy(&out.stderr), "qemu-img info refused the data");
        return Err(Error::BadRequest(format!(
            "Image data does not match the declared disk_format {declared}."
        )));
    }
    let info: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::Probe(format!("qemu-img output: {e}")))?;
    check_info(&info, fmt, declared)?;
    check_self_contained(&info, path)?;
    Ok(info["virtual-size"].as_u64())
}

/// VMDK create types whose data is in the one uploaded file (Glance's `vmdk_allowed_types`).
const VMDK_SELF_CONTAINED: &[&str] = &["monolithicSparse", "streamOptimized"];

/// Every file name qemu-img reports anywhere in `v` (`filename`, `full-backing-filename`,
/// `data-file`, each VMDK extent's, each child node's) under `key`.
fn file_names<'a>(v: &'a serde_json::Value, key: Option<&str>, out: &mut Vec<&'a str>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                file_names(x, Some(k), out);
            }
        }
        serde_json::Value::Array(a) => {
            for x in a {
                file_names(x, key, out);
            }
        }
        serde_json::Value::String(s)
            if key.is_some_and(|k| k.ends_with("filename") || k == "data-file") =>
        {
            out.push(s);
        }
        _ => {}
    }
}

/// Refuses data that makes QEMU open any file but itself: a VMDK descriptor whose extents
/// are other files (`monolithicFlat`, split extents: an extent of `/etc/shadow` would hand
/// the host's file to a guest), and any format whose `qemu-img info` names another file
/// (a backing file, an external data file, a child node).
fn check_self_contained(info: &serde_json::Value, path: &Path) -> Result<()> {
    let refused = || {
        Err(Error::BadRequest(
            "Image data that refers to other files (VMDK extents, backing or data files) is refused."
                .into(),
        ))
    };
    if info["format"].as_str() == Some("vmdk") {
        let create = info["format-specific"]["data"]["create-type"].as_str();
        if !create.is_some_and(|c| VMDK_SELF_CONTAINED.contains(&c)) {
            return refused();
        }
    }
    let own = path.to_string_lossy();
    let target = format!("file:{own}");
    let mut names = Vec::new();
    file_names(info, None, &mut names);
    if names.iter().any(|n| *n != own && *n != target) {
        return refused();
    }
    if info["children"]
        .as_array()
        .is_some_and(|c| c.iter().any(|x| x["name"].as_str() != Some("file")))
    {
        return refused();
    }
    Ok(())
}

fn check_info(info: &serde_json::Value, fmt: &str, declared: DiskFormat) -> Result<()> {
    if info["format"].as_str() != Some(fmt) {
        return Err(Error::BadRequest(format!(
            "Image data does not match the declared disk_format {declared}."
        )));
    }
    if !info["backing-filename"].is_null() || !info["full-backing-filename"].is_null() {
        return Err(Error::BadRequest(
            "Images with a backing file are refused: flatten it first (qemu-img convert).".into(),
        ));
    }
    if !info["format-specific"]["data"]["data-file"].is_null() {
        return Err(Error::BadRequest(
            "qcow2 images with an external data file are refused.".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dangerous_qcow2_is_refused() {
        let backing = serde_json::json!({"format": "qcow2", "virtual-size": 1, "backing-filename": "base.qcow2"});
        assert!(check_info(&backing, "qcow2", DiskFormat::Qcow2).is_err());
        let data_file = serde_json::json!({"format": "qcow2", "virtual-size": 1,
            "format-specific": {"type": "qcow2", "data": {"data-file": "/etc/shadow"}}});
        assert!(check_info(&data_file, "qcow2", DiskFormat::Qcow2).is_err());
        let ok = serde_json::json!({"format": "qcow2", "virtual-size": 1048576,
            "format-specific": {"type": "qcow2", "data": {"compat": "1.1"}}});
        assert!(check_info(&ok, "qcow2", DiskFormat::Qcow2).is_ok());
    }

    #[test]
    fn attack_vmdk_extents_outside_the_image_are_refused() {
        let me = Path::new("/var/lib/onebox/images/x");
        let flat = serde_json::json!({"format": "vmdk", "filename": "/var/lib/onebox/images/x",
            "format-specific": {"type": "vmdk", "data": {"create-type": "monolithicFlat",
            "extents": [{"filename": "/etc/shadow", "format": "FLAT"}]}}});
        assert!(check_self_contained(&flat, me).is_err());
        // A sparse descriptor naming another file as its extent.
        let split = serde_json::json!({"format": "vmdk", "filename": "/var/lib/onebox/images/x",
            "format-specific": {"type": "vmdk", "data": {"create-type": "monolithicSparse",
            "extents": [{"filename": "/dev/sda", "format": ""}]}}});
        assert!(check_self_contained(&split, me).is_err());
        let child = serde_json::json!({"format": "vhdx", "filename": "/var/lib/onebox/images/x",
            "children": [{"name": "file", "info": {"filename": "/var/lib/onebox/images/x"}},
                         {"name": "data-file", "info": {"filename": "/root/x"}}]});
        assert!(check_self_contained(&child, me).is_err());
        let ok = serde_json::json!({"format": "vmdk", "filename": "/var/lib/onebox/images/x",
            "format-specific": {"type": "vmdk", "data": {"create-type": "monolithicSparse",
            "extents": [{"filename": "/var/lib/onebox/images/x", "format": ""}]}}});
        assert!(check_self_contained(&ok, me).is_ok());
    }
}
