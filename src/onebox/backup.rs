//! `onebox backup` and `onebox restore`.
//!
//! A backup is one uncompressed tar file, written with mode 0600 because it holds secrets:
//!
//! - `onebox.db`: a consistent snapshot of the live database (SQLite's `VACUUM INTO`, one read
//!   transaction), so a backup may be taken while onebox serves and writes;
//! - `clouds.yaml` and every `*-openrc` of the data directory: the credentials `onebox init`
//!   wrote, whose passwords match the snapshot's users.
//!
//! Restoring refuses while onebox serves the data directory. It checks the archive's database
//! (`PRAGMA integrity_check`, a schema this onebox knows) before it touches anything, keeps the
//! database it replaces as `onebox.db.pre-restore-<time>.bak`, and replaces each file with one
//! `rename`, the database last.

use std::fs::{DirBuilder, File};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::config::Config;

const DB: &str = "onebox.db";

/// Whether `name` is a file a backup carries: the database or a credentials file.
fn carried(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains('/')
        && (name == DB || name == "clouds.yaml" || name.ends_with("-openrc"))
}

/// A private scratch directory inside `parent`, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(parent: &Path, what: &str) -> Result<Self> {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
        let path = parent.join(format!(".{what}-{}-{stamp}", std::process::id()));
        DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a backup or a restore carried.
#[derive(Debug)]
pub struct Summary {
    pub files: Vec<String>,
}

/// Writes a backup of `cfg`'s data directory to `to`, which must not exist yet.
pub fn create(cfg: &Config, to: &Path) -> Result<Summary> {
    let db = cfg.db_path();
    if !db.exists() {
        bail!("no database at {}; nothing to back up", db.display());
    }
    if to.exists() {
        bail!("{} already exists; choose a new file", to.display());
    }
    let scratch = Scratch::new(&cfg.data_dir, "backup")?;
    let snapshot = scratch.0.join(DB);
    store::Store::open_unmigrated(&db)
        .and_then(|s| s.backup_to(&snapshot))
        .with_context(|| format!("taking a snapshot of {}", db.display()))?;

    let mut files = vec![DB.to_owned()];
    let mut creds: Vec<String> = std::fs::read_dir(&cfg.data_dir)
        .with_context(|| format!("reading {}", cfg.data_dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n != DB && carried(n))
        .collect();
    creds.sort();
    files.extend(creds);

    let dir = to.parent().filter(|p| !p.as_os_str().is_empty());
    let tmp = match dir {
        Some(d) => d.join(format!(
            ".{}.tmp",
            to.file_name().unwrap_or_default().to_string_lossy()
        )),
        None => PathBuf::from(format!(".{}.tmp", to.display())),
    };
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let written = (|| -> Result<()> {
        let mut tar = tar::Builder::new(out);
        tar.mode(tar::HeaderMode::Deterministic);
        for name in &files {
            let src = if name == DB {
                snapshot.clone()
            } else {
                cfg.data_dir.join(name)
            };
            let mut f = File::open(&src).with_context(|| format!("reading {}", src.display()))?;
            tar.append_file(name, &mut f)
                .with_context(|| format!("adding {name}"))?;
        }
        let out = tar.into_inner()?;
        out.sync_all()?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("writing {}", to.display())));
    }
    std::fs::rename(&tmp, to).with_context(|| format!("writing {}", to.display()))?;
    Ok(Summary { files })
}

/// Replaces `cfg`'s database and credentials files with those of the backup `from`.
pub fn restore(cfg: &Config, from: &Path) -> Result<Summary> {
    const RUNNING: &str = "onebox is running on this data directory; stop it first \
                           (systemctl stop onebox)";
    crate::serve::ensure_data_dir(cfg)?;
    // Held until the restore is over, so that onebox cannot start half-way through.
    let _lock = crate::lock::acquire(&cfg.data_dir, RUNNING)?;
    if crate::status::probe_listener(cfg.listen).is_ok() {
        bail!(
            "something answers /healthz on {}: {RUNNING}",
            cfg.client_base_url()
        );
    }

    let scratch = Scratch::new(&cfg.data_dir, "restore")?;
    let archive = File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let mut files = Vec::new();
    let mut tar = tar::Archive::new(archive);
    for entry in tar
        .entries()
        .with_context(|| format!("reading {}", from.display()))?
    {
        let mut entry = entry.with_context(|| format!("reading {}", from.display()))?;
        let name = entry.path()?.to_string_lossy().into_owned();
        if !entry.header().entry_type().is_file() || !carried(&name) {
            bail!(
                "{} is not a onebox backup: unexpected entry {name:?}",
                from.display()
            );
        }
        let dest = scratch.0.join(&name);
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&dest)
            .with_context(|| format!("writing {}", dest.display()))?;
        std::io::copy(&mut entry, &mut out)?;
        out.sync_all()?;
        files.push(name);
    }
    if !files.iter().any(|f| f == DB) {
        bail!("{} is not a onebox backup: it has no {DB}", from.display());
    }

    // Check the database before anything is replaced.
    {
        let staged = store::Store::open_unmigrated(&scratch.0.join(DB))
            .context("opening the backup's database")?;
        let check = staged.integrity_check()?;
        if check != "ok" {
            bail!("the backup's database is damaged: {check}");
        }
        let version = staged.schema_version()?;
        if version > store::LATEST_VERSION {
            bail!(
                "the backup's database is at schema {version}, newer than this onebox ({})",
                store::LATEST_VERSION
            );
        }
    }
    // Opening the staged database put it in WAL mode; closing it folded the WAL back in.
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(scratch.0.join(format!("{DB}{suffix}")));
    }

    let live = cfg.db_path();
    if live.exists() {
        // Closing the last connection folds the WAL into the database, so the copy kept
        // below is complete and no stale WAL can be replayed onto the restored database.
        drop(store::Store::open_unmigrated(&live)?);
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let kept = cfg.data_dir.join(format!("{DB}.pre-restore-{stamp}.bak"));
        std::fs::hard_link(&live, &kept)
            .with_context(|| format!("keeping the current database as {}", kept.display()))?;
        println!("kept the current database as {}", kept.display());
    }
    for suffix in ["-wal", "-shm"] {
        let p = cfg.data_dir.join(format!("{DB}{suffix}"));
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", p.display())),
        }
    }
    // Credentials first, the database last: each with one atomic rename.
    let mut order: Vec<&String> = files.iter().filter(|f| *f != DB).collect();
    let db_name = DB.to_owned();
    order.push(&db_name);
    for name in order {
        let dest = cfg.data_dir.join(name);
        std::fs::set_permissions(scratch.0.join(name), std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(scratch.0.join(name), &dest)
            .with_context(|| format!("replacing {}", dest.display()))?;
    }
    File::open(&cfg.data_dir)?.sync_all()?;
    Ok(Summary { files })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn cfg_for(dir: &Path) -> Config {
        // A port nothing listens on, so the listener probe finds nothing.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        Config {
            data_dir: dir.to_owned(),
            listen: probe.local_addr().expect("addr"),
            // No payloads: these tests are about the database and the credentials.
            firmware_dir: Some(dir.join("no-firmware")),
            ..Config::default()
        }
    }

    fn seeded_store(cfg: &Config) -> store::Store {
        let store = store::Store::open(&cfg.db_path()).expect("open");
        store
            .write_blocking(|tx| {
                store::identity::insert_domain(
                    tx,
                    &model::Domain {
                        id: model::DomainId::default_domain(),
                        name: "Default".into(),
                        description: String::new(),
                        enabled: true,
                    },
                )
            })
            .expect("domain");
        store
    }

    fn project_names(store: &store::Store) -> Vec<String> {
        store
            .read_blocking(|c| {
                store::identity::list_projects(c, &store::identity::ProjectFilter::default())
            })
            .expect("list")
            .into_iter()
            .map(|p| p.name)
            .collect()
    }

    #[test]
    fn a_backup_taken_during_writes_restores_to_a_consistent_database() {
        let src = tempfile::tempdir().expect("tempdir");
        let cfg = cfg_for(src.path());
        let store = seeded_store(&cfg);
        std::fs::write(src.path().join("clouds.yaml"), "clouds: {}\n").expect("clouds");
        std::fs::write(
            src.path().join("admin-openrc"),
            "export OS_USERNAME=admin\n",
        )
        .expect("openrc");

        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) || i < 50 {
                    let p = model::Project {
                        id: model::ProjectId::generate(),
                        domain_id: model::DomainId::default_domain(),
                        name: format!("p{i:06}"),
                        description: String::new(),
                        enabled: true,
                    };
                    store
                        .write_blocking(|tx| store::identity::insert_project(tx, &p))
                        .expect("insert");
                    i += 1;
                }
                i
            })
        };
        let out = tempfile::tempdir().expect("tempdir");
        let mut backups = Vec::new();
        for n in 0..3 {
            std::thread::sleep(std::time::Duration::from_millis(30));
            let file = out.path().join(format!("b{n}.tar"));
            let summary = create(&cfg, &file).expect("backup");
            assert_eq!(summary.files, ["onebox.db", "admin-openrc", "clouds.yaml"]);
            let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            backups.push(file);
        }
        stop.store(true, Ordering::Relaxed);
        let written = writer.join().expect("writer");
        assert!(written >= 50);

        for file in &backups {
            let dest = tempfile::tempdir().expect("tempdir");
            let dcfg = cfg_for(dest.path());
            restore(&dcfg, file).expect("restore");
            let restored = store::Store::open_unmigrated(&dcfg.db_path()).expect("open");
            assert_eq!(restored.integrity_check().expect("check"), "ok");
            // Projects were committed one by one, in order: a consistent snapshot holds
            // exactly the first k of them.
            let mut names = project_names(&restored);
            names.sort();
            let want: Vec<String> = (0..names.len()).map(|i| format!("p{i:06}")).collect();
            assert_eq!(names, want);
            assert!(names.len() as u32 <= written);
            let creds = std::fs::read_to_string(dest.path().join("clouds.yaml")).expect("clouds");
            assert_eq!(creds, "clouds: {}\n");
            let mode = std::fs::metadata(dest.path().join("admin-openrc"))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    const IMAGE: &str = "0b0e1c1d-5f6a-4b7c-8d9e-0a1b2c3d4e5f";

    /// Servers are made through the compute service (one transaction per create: row,
    /// address and instance action together) while backups are taken. Every restored
    /// database must hold whole servers only: each with its address and its create action,
    /// and usage that counts exactly them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backup_taken_while_servers_are_created_restores_consistently() {
        let src = tempfile::tempdir().expect("tempdir");
        let mut cfg = cfg_for(src.path());
        cfg.fake_driver = true;
        let services = crate::serve::open_services(&cfg).await.expect("services");
        crate::init::run(
            &cfg,
            &services.identity,
            &services.compute,
            &services.images,
            crate::init::InitOptions {
                admin_password: Some("a".into()),
                demo_password: Some("d".into()),
            },
        )
        .await
        .expect("init");
        let issued = services
            .identity
            .authenticate_password(
                identity::UserRef::Name {
                    name: "demo".into(),
                    domain: identity::DomainRef::Name("Default".into()),
                },
                "d".into(),
                identity::Scope::Project(identity::ProjectRef::Name {
                    name: "demo".into(),
                    domain: identity::DomainRef::Name("Default".into()),
                }),
            )
            .await
            .expect("login");
        let ctx = issued.info.context();
        let project = ctx.project_id.clone().expect("project");
        // The same store, with one image the fake driver can boot.
        let compute = compute::Compute::new(
            services.identity.store().clone(),
            Arc::new(driver::fake::FakeDriver::new()),
            Arc::new(compute::StandinImages::new(vec![compute::ImageInfo {
                id: IMAGE.into(),
                name: "img".into(),
                min_disk_gb: 0,
                min_ram_mb: 0,
                size_bytes: 0,
                virtual_size_bytes: None,
                properties: Vec::new(),
            }])),
            compute::ComputeConfig::default(),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let creator = {
            let (compute, stop, ctx) = (compute.clone(), stop.clone(), ctx.clone());
            tokio::spawn(async move {
                let mut made = 0;
                while !stop.load(Ordering::Relaxed) || made < 8 {
                    if made == 10 {
                        break;
                    }
                    let req = compute::CreateRequest {
                        name: format!("s{made}"),
                        image_ref: Some(IMAGE.into()),
                        flavor_ref: model::compute::FlavorId("42".into()),
                        networks: compute::NetworkRequest::Auto,
                        security_groups: Vec::new(),
                        metadata: Default::default(),
                        user_data: None,
                        key_name: None,
                        availability_zone: None,
                        config_drive: false,
                        description: None,
                        tags: vec!["t".into()],
                        hostname: None,
                        access_ipv4: None,
                        access_ipv6: None,
                        min_count: 1,
                        max_count: 1,
                        admin_pass: None,
                        scheduler_hints: Default::default(),
                        block_devices: Vec::new(),
                        auto_disk_config: None,
                    };
                    compute
                        .create_servers(&ctx, req, &format!("req-{made}"))
                        .await
                        .expect("create");
                    made += 1;
                }
                made
            })
        };
        let out = tempfile::tempdir().expect("tempdir");
        let mut backups = Vec::new();
        for n in 0..3 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let file = out.path().join(format!("s{n}.tar"));
            let (c2, f2) = (cfg.clone(), file.clone());
            tokio::task::spawn_blocking(move || create(&c2, &f2))
                .await
                .expect("join")
                .expect("backup");
            backups.push(file);
        }
        stop.store(true, Ordering::Relaxed);
        let made = creator.await.expect("creator");
        compute.idle().await;
        assert!(made >= 8);

        let mut seen = 0;
        for file in &backups {
            let dest = tempfile::tempdir().expect("tempdir");
            let dcfg = cfg_for(dest.path());
            restore(&dcfg, file).expect("restore");
            let restored = store::Store::open(&dcfg.db_path()).expect("open");
            assert_eq!(restored.integrity_check().expect("check"), "ok");
            let p = project.clone();
            let (servers, usage) = restored
                .read_blocking(move |c| {
                    let ids = store::compute::live_server_ids(c)?;
                    let servers = store::compute::load_servers(c, &ids)?;
                    let usage = store::compute::usage(c, &p)?;
                    let mut with_actions = Vec::new();
                    for s in servers {
                        let actions = store::compute::list_actions(c, &s.id)?;
                        with_actions.push((s, actions));
                    }
                    Ok((with_actions, usage))
                })
                .expect("read");
            assert_eq!(usage.instances as usize, servers.len());
            seen += servers.len();
            for (s, actions) in &servers {
                assert_eq!(s.addresses.len(), 1, "{} has its address", s.name);
                assert_eq!(s.tags, ["t"], "{} has its tags", s.name);
                assert!(
                    actions.iter().any(|a| a.action == "create"),
                    "{} has its create action",
                    s.name
                );
            }
        }
        assert!(seen > 0, "the backups caught servers being created");
    }

    #[test]
    fn restore_replaces_the_database_and_keeps_the_old_one() {
        let src = tempfile::tempdir().expect("tempdir");
        let cfg = cfg_for(src.path());
        let store = seeded_store(&cfg);
        let file = src.path().join("backup.tar");
        create(&cfg, &file).expect("backup");
        let p = model::Project {
            id: model::ProjectId::generate(),
            domain_id: model::DomainId::default_domain(),
            name: "after-the-backup".into(),
            description: String::new(),
            enabled: true,
        };
        store
            .write_blocking(|tx| store::identity::insert_project(tx, &p))
            .expect("insert");
        drop(store);

        restore(&cfg, &file).expect("restore");
        let restored = store::Store::open_unmigrated(&cfg.db_path()).expect("open");
        assert!(project_names(&restored).is_empty());
        let kept: Vec<_> = std::fs::read_dir(src.path())
            .expect("dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("onebox.db.pre-restore-"))
            .collect();
        assert_eq!(kept.len(), 1, "{kept:?}");
        let old = store::Store::open_unmigrated(&src.path().join(&kept[0])).expect("old");
        assert_eq!(project_names(&old), ["after-the-backup"]);
        // No scratch directories are left behind.
        assert!(
            std::fs::read_dir(src.path())
                .expect("dir")
                .filter_map(|e| e.ok())
                .all(|e| !e.file_name().to_string_lossy().starts_with(".restore"))
        );
    }

    #[test]
    fn restore_refuses_while_onebox_holds_the_data_directory() {
        let src = tempfile::tempdir().expect("tempdir");
        let cfg = cfg_for(src.path());
        drop(seeded_store(&cfg));
        let file = src.path().join("backup.tar");
        create(&cfg, &file).expect("backup");
        let _serving = crate::lock::acquire(src.path(), "serving").expect("lock");
        let err = restore(&cfg, &file).expect_err("refused");
        assert!(err.to_string().contains("stop it first"), "{err}");
    }

    #[test]
    fn restore_refuses_what_is_not_a_backup() {
        let src = tempfile::tempdir().expect("tempdir");
        let cfg = cfg_for(src.path());
        let file = src.path().join("evil.tar");
        {
            let mut tar = tar::Builder::new(File::create(&file).expect("create"));
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            h.set_mode(0o600);
            h.set_cksum();
            tar.append_data(&mut h, "etc-passwd", &b"x"[..])
                .expect("append");
            tar.finish().expect("finish");
        }
        let err = restore(&cfg, &file).expect_err("refused");
        assert!(err.to_string().contains("not a onebox backup"), "{err}");
        assert!(!cfg.db_path().exists());
    }
}
