//! The payloads onebox ships (firmware/README.md), imported by `onebox init` as public images
//! of the admin project: the onebox-tiny guest's kernel, ramdisk and disk, and the container
//! root filesystem.
//!
//! Every file is checked against the directory's `SHA256SUMS` before anything is imported; a
//! mismatch refuses the whole import. Each image records the payload's sha256 in the property
//! `onebox_payload_sha256`, so a second `onebox init` finds it (by name and checksum) and
//! imports nothing. When a payload changes (a package upgrade ships a rebuilt one), the new
//! image is imported and the older image of that name is hidden (`os_hidden`), not deleted:
//! servers may still use it.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use identity::Context;
use image::{Change, Images, ListQuery, NewImage};
use model::image::{ContainerFormat, DiskFormat, Image, ImageId, ImageStatus, Visibility};
use model::{Persona, ProjectId, UserId};
use sha2::{Digest, Sha256};

/// The property recording which payload (by sha256) an image was imported from.
pub const PAYLOAD_SHA_PROPERTY: &str = "onebox_payload_sha256";
/// The property naming the payload file an image was imported from.
pub const PAYLOAD_FILE_PROPERTY: &str = "onebox_payload";
pub const SUMS: &str = "SHA256SUMS";

/// The kernel command line the guest expects (Nova's `os_command_line` image property).
const GUEST_CMDLINE: &str = "console=ttyS0 quiet panic=-1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Kernel,
    Ramdisk,
    Disk,
    Rootfs,
}

/// One payload: its file, the image it becomes and how that image is described.
struct Payload {
    file: &'static str,
    image: &'static str,
    role: Role,
    disk_format: DiskFormat,
    container_format: ContainerFormat,
    min_ram: u64,
    properties: &'static [(&'static str, &'static str)],
}

/// In import order: the disk refers to the kernel and the ramdisk by id.
const PAYLOADS: &[Payload] = &[
    Payload {
        file: "onebox-tiny.vmlinux",
        image: "onebox-tiny-kernel",
        role: Role::Kernel,
        disk_format: DiskFormat::Aki,
        container_format: ContainerFormat::Aki,
        min_ram: 0,
        properties: &[],
    },
    Payload {
        file: "onebox-tiny.initrd",
        image: "onebox-tiny-ramdisk",
        role: Role::Ramdisk,
        disk_format: DiskFormat::Ari,
        container_format: ContainerFormat::Ari,
        min_ram: 0,
        properties: &[],
    },
    Payload {
        file: "onebox-tiny.qcow2",
        image: "onebox-tiny",
        role: Role::Disk,
        disk_format: DiskFormat::Qcow2,
        container_format: ContainerFormat::Bare,
        // The Debian kernel needs 96 MiB; below that it panics or hangs.
        min_ram: 96,
        properties: &[
            ("os_type", "linux"),
            ("os_command_line", GUEST_CMDLINE),
            ("hw_disk_bus", "virtio"),
            ("hw_vif_model", "virtio"),
            ("hw_cdrom_bus", "ide"),
        ],
    },
    Payload {
        file: "onebox-rootfs.tar",
        image: "onebox-rootfs",
        role: Role::Rootfs,
        disk_format: DiskFormat::Raw,
        container_format: ContainerFormat::Bare,
        min_ram: 0,
        properties: &[
            (model::image::ROOTFS_PROPERTY, "true"),
            // Nova's convention for picking a container backend.
            ("hypervisor_type", "lxc"),
            ("os_type", "linux"),
        ],
    },
];

/// What an import did, image by image.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// (image name, id) imported by this run.
    pub imported: Vec<(String, ImageId)>,
    /// (image name, id) already there.
    pub present: Vec<(String, ImageId)>,
    /// Older images hidden because a newer payload replaced them.
    pub hidden: Vec<ImageId>,
}

/// Reads `SHA256SUMS` (the `sha256sum` format: `<hex>  <name>` or `<hex> *<name>`).
fn read_sums(dir: &Path) -> Result<BTreeMap<String, String>> {
    let path = dir.join(SUMS);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut sums = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = line.split_once(' ').and_then(|(hex, rest)| {
            let name = rest.strip_prefix(' ').or_else(|| rest.strip_prefix('*'))?;
            let ok = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
            ok.then(|| (name.to_owned(), hex.to_ascii_lowercase()))
        });
        let Some((name, hex)) = parsed else {
            bail!(
                "{}: line {} is not `<sha256>  <file>`",
                path.display(),
                n + 1
            );
        };
        sums.insert(name, hex);
    }
    Ok(sums)
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// The payloads present in `dir`, each with its checked sha256. Refuses (an error naming the
/// file) when a payload is not listed in `SHA256SUMS`, is listed but missing, or does not
/// match its checksum; nothing is imported then.
fn verified(dir: &Path) -> Result<Vec<(&'static Payload, PathBuf, String)>> {
    let sums = read_sums(dir)?;
    let mut out = Vec::new();
    for p in PAYLOADS {
        let path = dir.join(p.file);
        let listed = sums.get(p.file);
        match (listed, path.exists()) {
            (None, false) => continue,
            (None, true) => bail!(
                "firmware {}: not listed in {}; refusing to import it",
                path.display(),
                dir.join(SUMS).display()
            ),
            (Some(_), false) => bail!(
                "firmware {}: listed in {} but missing",
                path.display(),
                dir.join(SUMS).display()
            ),
            (Some(want), true) => {
                let got = sha256_file(&path)?;
                if &got != want {
                    bail!(
                        "firmware {}: sha256 {got} does not match {} ({want}); refusing to \
                         import it (rebuild the payloads with firmware/build-*.sh, or reinstall \
                         the package)",
                        path.display(),
                        dir.join(SUMS).display()
                    );
                }
                out.push((p, path, got));
            }
        }
    }
    Ok(out)
}

/// The cloud administrator acting in the admin project. The image service records no user,
/// so the user is only a label here.
fn admin_context(project: &ProjectId) -> Context {
    Context {
        user_id: UserId::new("onebox-init"),
        user_name: "onebox-init".into(),
        user_domain_id: model::DomainId::default_domain(),
        project_id: Some(project.clone()),
        roles: Persona::ALL.iter().map(|p| p.role_name().into()).collect(),
        persona: Some(Persona::Admin),
    }
}

/// Imports the payloads found in `dir` into the image service as public images owned by
/// `project`. A directory without `SHA256SUMS` holds no payloads: nothing is imported.
pub async fn import(dir: &Path, images: &Images, project: &ProjectId) -> Result<Report> {
    let mut report = Report::default();
    if !dir.join(SUMS).exists() {
        return Ok(report);
    }
    let d = dir.to_owned();
    let payloads = tokio::task::spawn_blocking(move || verified(&d))
        .await
        .context("checking the firmware")??;
    let ctx = admin_context(project);
    let mut ids: BTreeMap<&'static str, ImageId> = BTreeMap::new();
    for (p, path, sha) in payloads {
        let same_name = images
            .list(
                &ctx,
                ListQuery {
                    names: Some(vec![p.image.into()]),
                    owner: Some(project.clone()),
                    os_hidden: None,
                    limit: image::list::MAX_LIMIT,
                    ..Default::default()
                },
            )
            .await
            .with_context(|| format!("looking up image {}", p.image))?
            .images;
        let mut current = None;
        for img in &same_name {
            let from_this = img.properties.get(PAYLOAD_SHA_PROPERTY) == Some(&sha);
            if from_this && img.status == ImageStatus::Active && current.is_none() {
                current = Some(img.id.clone());
            } else if from_this && img.status != ImageStatus::Active {
                // Left by an import that did not finish (a crash mid-upload).
                images.delete(&ctx, &img.id).await.with_context(|| {
                    format!("removing the unfinished import {} ({})", p.image, img.id)
                })?;
            }
        }
        let id = match current {
            Some(id) => {
                report.present.push((p.image.into(), id.clone()));
                id
            }
            None => {
                let img = create_and_upload(images, &ctx, p, &path, &sha, &ids).await?;
                report.imported.push((p.image.into(), img.id.clone()));
                img.id
            }
        };
        if p.role == Role::Disk {
            link_kernel(images, &ctx, &id, &ids).await?;
        }
        // Older payloads of this name stay (servers may use them) but leave listings.
        for img in &same_name {
            let older = img.properties.contains_key(PAYLOAD_SHA_PROPERTY)
                && img.properties.get(PAYLOAD_SHA_PROPERTY) != Some(&sha)
                && !img.os_hidden
                && img.status == ImageStatus::Active;
            if older {
                images
                    .update(&ctx, &img.id, vec![Change::OsHidden(true)])
                    .await
                    .with_context(|| format!("hiding the older {} ({})", p.image, img.id))?;
                report.hidden.push(img.id.clone());
            }
        }
        ids.insert(p.file, id);
    }
    Ok(report)
}

fn kernel_props(ids: &BTreeMap<&'static str, ImageId>) -> Vec<(String, String)> {
    let mut props = Vec::new();
    for (file, key) in [
        ("onebox-tiny.vmlinux", "kernel_id"),
        ("onebox-tiny.initrd", "ramdisk_id"),
    ] {
        if let Some(id) = ids.get(file) {
            props.push((key.to_owned(), id.to_string()));
        }
    }
    props
}

/// Points the disk's `kernel_id`/`ramdisk_id` at the current kernel and ramdisk images.
async fn link_kernel(
    images: &Images,
    ctx: &Context,
    disk: &ImageId,
    ids: &BTreeMap<&'static str, ImageId>,
) -> Result<()> {
    let img = images.get(ctx, disk).await?;
    let changes: Vec<Change> = kernel_props(ids)
        .into_iter()
        .filter(|(k, v)| img.properties.get(k) != Some(v))
        .map(|(key, value)| Change::SetProperty {
            key,
            value,
            must_exist: false,
        })
        .collect();
    if !changes.is_empty() {
        images
            .update(ctx, disk, changes)
            .await
            .with_context(|| format!("linking {disk} to its kernel and ramdisk"))?;
    }
    Ok(())
}

async fn create_and_upload(
    images: &Images,
    ctx: &Context,
    p: &Payload,
    path: &Path,
    sha: &str,
    ids: &BTreeMap<&'static str, ImageId>,
) -> Result<Image> {
    let mut properties: Vec<(String, String)> = p
        .properties
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    properties.push((PAYLOAD_SHA_PROPERTY.into(), sha.into()));
    properties.push((PAYLOAD_FILE_PROPERTY.into(), p.file.into()));
    if p.role == Role::Disk {
        properties.extend(kernel_props(ids));
    }
    let img = images
        .create(
            ctx,
            NewImage {
                name: Some(p.image.into()),
                owner: ctx.project_id.clone(),
                visibility: Some(Visibility::Public),
                disk_format: Some(p.disk_format),
                container_format: Some(p.container_format),
                min_ram: p.min_ram,
                properties,
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("creating image {}", p.image))?;
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata().await?.len();
    let body = futures_util::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = bytes::BytesMut::with_capacity(1 << 20);
        match f.read_buf(&mut buf).await {
            Ok(0) => None,
            Ok(_) => Some((Ok::<_, std::io::Error>(buf.freeze()), f)),
            Err(e) => Some((Err(e), f)),
        }
    });
    images
        .upload(ctx, &img.id, Some(size), body)
        .await
        .with_context(|| format!("uploading {} into image {}", path.display(), p.image))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn images(dir: &Path) -> Images {
        Images::open(
            store::Store::open_in_memory().expect("db"),
            image::ImageConfig {
                dir: dir.join("images"),
                quota_bytes: 1 << 30,
                qemu_img: "qemu-img".into(),
            },
        )
        .await
        .expect("images")
    }

    /// Small stand-ins for the payloads: a kernel and ramdisk of a few bytes, a real qcow2
    /// (the image service checks it with qemu-img) and a tar.
    fn fake_firmware(dir: &Path) {
        std::fs::create_dir_all(dir).expect("dir");
        std::fs::write(dir.join("onebox-tiny.vmlinux"), b"\x7fELF fake kernel").expect("k");
        std::fs::write(dir.join("onebox-tiny.initrd"), b"fake initramfs").expect("r");
        let st = std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(dir.join("onebox-tiny.qcow2"))
            .arg("4M")
            .status()
            .expect("qemu-img");
        assert!(st.success());
        std::fs::write(dir.join("onebox-rootfs.tar"), vec![0u8; 10240]).expect("tar");
        write_sums(dir);
    }

    fn write_sums(dir: &Path) {
        let mut sums = String::new();
        for p in PAYLOADS {
            let path = dir.join(p.file);
            if path.exists() {
                sums.push_str(&format!(
                    "{}  {}\n",
                    sha256_file(&path).expect("sha"),
                    p.file
                ));
            }
        }
        std::fs::write(dir.join(SUMS), sums).expect("sums");
    }

    fn by_name<'a>(all: &'a [Image], name: &str) -> Vec<&'a Image> {
        all.iter()
            .filter(|i| i.name.as_deref() == Some(name))
            .collect()
    }

    async fn all(images: &Images, project: &ProjectId) -> Vec<Image> {
        images
            .list(
                &admin_context(project),
                ListQuery {
                    os_hidden: None,
                    limit: image::list::MAX_LIMIT,
                    ..Default::default()
                },
            )
            .await
            .expect("list")
            .images
    }

    #[tokio::test]
    async fn payloads_become_public_images_once() {
        let tmp = tempfile::tempdir().expect("tmp");
        let fw = tmp.path().join("firmware");
        fake_firmware(&fw);
        let imgs = images(tmp.path()).await;
        let admin = ProjectId::new("admin-project");

        let first = import(&fw, &imgs, &admin).await.expect("import");
        let names: Vec<&str> = first.imported.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "onebox-tiny-kernel",
                "onebox-tiny-ramdisk",
                "onebox-tiny",
                "onebox-rootfs"
            ]
        );
        let listed = all(&imgs, &admin).await;
        assert_eq!(listed.len(), 4);
        for img in &listed {
            assert_eq!(img.status, ImageStatus::Active, "{:?}", img.name);
            assert_eq!(img.visibility, Visibility::Public);
            assert_eq!(img.owner, admin);
        }
        let kernel = by_name(&listed, "onebox-tiny-kernel")[0];
        assert_eq!(
            (kernel.disk_format, kernel.container_format),
            (Some(DiskFormat::Aki), Some(ContainerFormat::Aki))
        );
        assert_eq!(kernel.size, Some(16));
        let ramdisk = by_name(&listed, "onebox-tiny-ramdisk")[0];
        assert_eq!(
            (ramdisk.disk_format, ramdisk.container_format),
            (Some(DiskFormat::Ari), Some(ContainerFormat::Ari))
        );
        let disk = by_name(&listed, "onebox-tiny")[0];
        assert_eq!(disk.disk_format, Some(DiskFormat::Qcow2));
        assert_eq!(disk.virtual_size, Some(4 << 20));
        assert_eq!(disk.properties["kernel_id"], kernel.id.to_string());
        assert_eq!(disk.properties["ramdisk_id"], ramdisk.id.to_string());
        assert_eq!(disk.backend(), Some(model::image::Backend::Vm));
        let rootfs = by_name(&listed, "onebox-rootfs")[0];
        assert_eq!(rootfs.backend(), Some(model::image::Backend::Container));
        assert_eq!(rootfs.properties["hypervisor_type"], "lxc");
        assert_eq!(
            rootfs.properties[PAYLOAD_SHA_PROPERTY],
            sha256_file(&fw.join("onebox-rootfs.tar")).expect("sha")
        );
        // Anyone may see and boot them.
        let demo = Context {
            persona: Some(Persona::Member),
            roles: vec!["member".into(), "reader".into()],
            ..admin_context(&ProjectId::new("demo-project"))
        };
        let boot = imgs.bootable(&demo, &rootfs.id).await.expect("bootable");
        assert_eq!(boot.backend, model::image::Backend::Container);

        // Again: nothing new.
        let second = import(&fw, &imgs, &admin).await.expect("again");
        assert!(second.imported.is_empty(), "{second:?}");
        assert_eq!(second.present.len(), 4);
        assert_eq!(all(&imgs, &admin).await.len(), 4);
    }

    #[tokio::test]
    async fn a_checksum_mismatch_refuses_the_import() {
        let tmp = tempfile::tempdir().expect("tmp");
        let fw = tmp.path().join("firmware");
        fake_firmware(&fw);
        std::fs::write(fw.join("onebox-tiny.initrd"), b"tampered").expect("tamper");
        let imgs = images(tmp.path()).await;
        let admin = ProjectId::new("admin-project");
        let err = import(&fw, &imgs, &admin).await.expect_err("refused");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("onebox-tiny.initrd") && msg.contains("does not match"),
            "{msg}"
        );
        // Nothing at all was imported, not even the files that matched.
        assert!(all(&imgs, &admin).await.is_empty());

        // A payload that SHA256SUMS does not list is refused too.
        write_sums(&fw);
        let sums = std::fs::read_to_string(fw.join(SUMS)).expect("sums");
        let without: String = sums
            .lines()
            .filter(|l| !l.ends_with("onebox-rootfs.tar"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(fw.join(SUMS), without).expect("sums");
        let err = import(&fw, &imgs, &admin).await.expect_err("unlisted");
        assert!(format!("{err:#}").contains("not listed"), "{err:#}");
        assert!(all(&imgs, &admin).await.is_empty());
    }

    #[tokio::test]
    async fn a_directory_without_sums_imports_nothing() {
        let tmp = tempfile::tempdir().expect("tmp");
        let imgs = images(tmp.path()).await;
        let admin = ProjectId::new("admin-project");
        let r = import(&tmp.path().join("none"), &imgs, &admin)
            .await
            .expect("import");
        assert_eq!(r, Report::default());
    }

    #[tokio::test]
    async fn a_rebuilt_payload_replaces_and_hides_the_older_image() {
        let tmp = tempfile::tempdir().expect("tmp");
        let fw = tmp.path().join("firmware");
        fake_firmware(&fw);
        let imgs = images(tmp.path()).await;
        let admin = ProjectId::new("admin-project");
        import(&fw, &imgs, &admin).await.expect("import");
        std::fs::write(fw.join("onebox-tiny.vmlinux"), b"\x7fELF newer kernel").expect("k");
        write_sums(&fw);
        let r = import(&fw, &imgs, &admin).await.expect("again");
        let names: Vec<&str> = r.imported.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["onebox-tiny-kernel"]);
        assert_eq!(r.hidden.len(), 1);
        let listed = all(&imgs, &admin).await;
        let kernels = by_name(&listed, "onebox-tiny-kernel");
        assert_eq!(kernels.len(), 2);
        let visible: Vec<_> = kernels.iter().filter(|k| !k.os_hidden).collect();
        assert_eq!(visible.len(), 1);
        assert_eq!(visible[0].id, r.imported[0].1);
        // The disk now boots with the new kernel.
        let disk = by_name(&listed, "onebox-tiny")[0];
        assert_eq!(disk.properties["kernel_id"], visible[0].id.to_string());
    }
}
