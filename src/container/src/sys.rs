//! The raw system calls the crate needs that neither `nix` nor `libc` wrap: the new mount
//! API's `open_tree` and `mount_setattr` (an idmapped copy of the image for a container in a
//! user namespace), and `bpf(2)` to load a cgroup device program, attach it and list what is
//! attached. Each is one `unsafe` call, with its `// SAFETY:` note; the rest of the crate
//! uses the safe functions here.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn path_cstr(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("{} holds a NUL", p.display()))
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// `open_tree(path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE)`: a detached copy
/// of the mount tree at `path`, as a file descriptor.
#[allow(unsafe_code)]
pub fn open_tree_clone(path: &Path) -> Result<OwnedFd, String> {
    let c = path_cstr(path)?;
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_RECURSIVE as u32;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; the kernel reads
    // it and returns a new file descriptor or -1, nothing else is touched.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(format!("open_tree {}: {}", path.display(), errno()));
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Makes the detached mount tree `tree` idmapped with the user namespace `userns` (its ids
/// as the namespace maps them), recursively.
#[allow(unsafe_code)]
pub fn idmap_tree(tree: &OwnedFd, userns: &OwnedFd) -> Result<(), String> {
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let empty = c"";
    // SAFETY: `attr` and `empty` live on this stack frame for the whole call and the size
    // passed is that of `attr`; the kernel only reads them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r < 0 {
        return Err(format!("mount_setattr(MOUNT_ATTR_IDMAP): {}", errno()));
    }
    Ok(())
}

/// `move_mount(tree, "", target, "", F_EMPTY_PATH | T_EMPTY_PATH)`: attaches the detached
/// mount tree `tree` on the directory `target` (an `O_PATH` descriptor), in the mount
/// namespace of the caller.
#[allow(unsafe_code)]
pub fn move_mount_onto(tree: &OwnedFd, target: &OwnedFd) -> Result<(), String> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    let empty = c"";
    // SAFETY: both descriptors are open for the whole call and `empty` is a valid
    // NUL-terminated string on this frame; the kernel only reads them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            target.as_raw_fd(),
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(format!("move_mount: {}", errno()));
    }
    Ok(())
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The part of `union bpf_attr` that `BPF_PROG_LOAD` reads.
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The part of `union bpf_attr` that `BPF_PROG_ATTACH` and `BPF_PROG_QUERY` use.
#[repr(C)]
#[derive(Default)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgQuery {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
    prog_attach_flags: u64,
}

#[allow(unsafe_code)]
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> Result<i64, std::io::Error> {
    // SAFETY: `attr` is a `#[repr(C)]` prefix of `union bpf_attr` for `cmd`, valid and
    // exclusively borrowed for the call; the size passed is its own, so the kernel reads
    // (and for a query writes) only inside it. Pointers inside it are set by the callers
    // to buffers that outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 { Err(errno()) } else { Ok(r) }
}

/// Loads a `BPF_PROG_TYPE_CGROUP_DEVICE` program of raw eBPF instructions (8 bytes each).
#[allow(unsafe_code)]
pub fn load_device_program(insns: &[u64]) -> Result<OwnedFd, String> {
    let license = c"GPL";
    let mut log = vec![0u8; 4096];
    let mut name = [0u8; 16];
    name[..13].copy_from_slice(b"onebox_device");
    let mut attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        prog_name: name,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    let fd = bpf(BPF_PROG_LOAD, &mut attr).map_err(|e| {
        let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
        format!(
            "loading the device program: {e}: {}",
            String::from_utf8_lossy(&log[..end])
        )
    })?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn open_dir(dir: &Path) -> Result<std::fs::File, String> {
    std::fs::File::open(dir).map_err(|e| format!("opening {}: {e}", dir.display()))
}

/// Attaches the device program `prog` to the cgroup v2 directory `dir`.
pub fn attach_device_program(dir: &Path, prog: &OwnedFd) -> Result<(), String> {
    let cg = open_dir(dir)?;
    let mut attr = ProgAttach {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, &mut attr)
        .map(|_| ())
        .map_err(|e| format!("attaching the device program to {}: {e}", dir.display()))
}

/// How many device programs are attached to the cgroup v2 directory `dir` itself.
pub fn device_programs_attached(dir: &Path) -> Result<u32, String> {
    let cg = open_dir(dir)?;
    let mut ids = [0u32; 64];
    let mut attr = ProgQuery {
        target_fd: cg.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr)
        .map_err(|e| format!("querying the device programs of {}: {e}", dir.display()))?;
    Ok(attr.prog_cnt)
}

/// A raw system call with three integer arguments, for the seccomp tests: the call's
/// result or its errno.
#[cfg(test)]
#[allow(unsafe_code)]
pub(crate) fn raw_syscall3(nr: i64, a: i64, b: i64, c: i64) -> Result<i64, i32> {
    // SAFETY: only called by tests with arguments that are integers or null pointers, for
    // which the kernel reads and writes no memory of ours (a null pointer fails with
    // EFAULT, or the call is refused before it looks).
    let r = unsafe { libc::syscall(nr, a, b, c) };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r)
    }
}

/// Makes the terminal `tty` the calling process's controlling terminal (`TIOCSCTTY`); the
/// caller leads a new session with no terminal yet.
#[allow(unsafe_code)]
pub fn set_controlling_terminal(tty: &OwnedFd) -> Result<(), String> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal a terminal another
    // session holds) and reads or writes no memory of ours; `tty` is an open descriptor.
    let r = unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSCTTY, 0) };
    if r < 0 {
        Err(format!("TIOCSCTTY: {}", std::io::Error::last_os_error()))
    } else {
        Ok(())
    }
}
