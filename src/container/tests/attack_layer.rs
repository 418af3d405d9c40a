//! A container's writable layer is a file system of its own, capped at the flavor's disk
//! and mounted `nodev,nosuid`: real loop mounts, as root (skipped otherwise, failed under
//! `ONEBOX_REQUIRE_BACKENDS=1`); everything made is removed, also when a test fails.

mod common;

use std::io::Write;
use std::path::Path;

use container::layer;
use container::state::Paths;
use driver::ComputeDriver;

/// The mount options of the mount at `dir`, from /proc/self/mountinfo.
fn mount_options(dir: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let want = dir.to_string_lossy().into_owned();
    info.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.get(4) == Some(&want.as_str())).then(|| f.get(5).copied().unwrap_or("").to_owned())
    })
}

/// Removes the layer whatever happens to the test.
struct Cleanup<'a>(&'a Paths);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = layer::remove(self.0);
    }
}

#[test]
fn attack_filling_the_writable_layer_stops_at_its_cap() {
    if !common::can_run() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let p = Paths::new(tmp.path());
    let _c = Cleanup(&p);
    layer::create(&p, 64 << 20).expect("layer");
    let opts = mount_options(&p.layer()).expect("the layer is mounted");
    assert!(
        opts.split(',').any(|o| o == "nodev") && opts.split(',').any(|o| o == "nosuid"),
        "{opts}"
    );
    assert!(p.upper().starts_with(p.layer()) && p.upper().is_dir() && p.work().is_dir());
    // Writing 128 MiB into a 64 MiB layer ends in ENOSPC, not on the host's disk.
    let mut f = std::fs::File::create(p.upper().join("fill")).expect("create");
    let chunk = vec![0x77u8; 1 << 20];
    let mut written = 0u64;
    let err = loop {
        match f.write_all(&chunk).and_then(|()| f.sync_data()) {
            Ok(()) => written += chunk.len() as u64,
            Err(e) => break e,
        }
        assert!(
            written <= 128 << 20,
            "wrote {written} bytes into a 64 MiB layer"
        );
    };
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    drop(f);
    // The host's file costs no more than the cap.
    use std::os::unix::fs::MetadataExt;
    let img = std::fs::metadata(p.layer_image()).expect("image");
    assert!(
        img.blocks() * 512 <= 64 << 20,
        "{} bytes",
        img.blocks() * 512
    );
    // A device node on the layer opens nothing.
    let node = p.upper().join("null");
    nix::sys::stat::mknod(
        &node,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .expect("mknod");
    let e = std::fs::File::open(&node).expect_err("nodev");
    assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
    // A resize to a larger disk grows the layer (online where the kernel lets us, else at
    // the next mount); never smaller.
    std::fs::remove_file(p.upper().join("fill")).expect("rm");
    layer::grow(&p, 128 << 20).expect("grow");
    layer::unmount(&p).expect("unmount");
    layer::mount(&p).expect("mount");
    let st = nix::sys::statvfs::statvfs(&p.layer()).expect("statvfs");
    let size = st.blocks() as u64 * st.fragment_size() as u64;
    assert!(size > 96 << 20 && size <= 128 << 20, "{size}");
    layer::grow(&p, 32 << 20).expect("no shrink");
    assert_eq!(
        std::fs::metadata(p.layer_image()).expect("img").len(),
        128 << 20
    );
    layer::remove(&p).expect("remove");
    assert!(mount_options(&p.layer()).is_none());
    assert!(!p.layer_image().exists());
}

#[test]
fn attack_a_containers_layer_is_its_own_capped_mount_and_goes_with_it() {
    if !common::can_run() {
        return;
    }
    let mut env = common::Env::new("layer");
    let spec = env.spec("layer-1");
    env.d().spawn(&spec).expect("spawn");
    env.observe(&spec.id);
    let p = Paths::new(&env.cfg.data_dir.join("instances").join(spec.id.as_str()));
    let opts = mount_options(&p.layer()).expect("the layer is mounted");
    assert!(opts.contains("nodev") && opts.contains("nosuid"), "{opts}");
    let st = nix::sys::statvfs::statvfs(&p.layer()).expect("statvfs");
    let size = st.blocks() as u64 * st.fragment_size() as u64;
    assert!(size <= 1 << 30, "a 1 GiB flavor's layer holds {size} bytes");
    assert!(
        common::wait_http(&spec.ports[0].address, std::time::Duration::from_secs(10)).is_some()
    );
    // Rebuild keeps the layer (emptied); destroy takes it away with the instance.
    env.d().rebuild(&spec).expect("rebuild");
    assert!(mount_options(&p.layer()).is_some());
    env.teardown_and_check();
    assert!(mount_options(&p.layer()).is_none());
}
