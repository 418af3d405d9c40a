//! The default seccomp filter of every container, in the spirit of Docker's default profile:
//! everything is allowed except the system calls that reach the host's kernel state from
//! inside a container (keyrings, BPF, perf, kernel modules, kexec, mounts, new namespaces,
//! clocks, swap, accounting, reboot, file handles, raw I/O ports, kernel log, …), which fail
//! with `EPERM`. `clone3` fails with `ENOSYS` (its flags live in memory a filter cannot read),
//! so the C library falls back to `clone`, whose namespace flags the filter does see.
//!
//! A system call of another architecture (32-bit `int 0x80` on x86-64, say) kills the
//! process (the architecture check seccompiler puts first), and a call of the x32 ABI fails
//! with `EPERM`.
//!
//! The filter is installed by init's process right before it executes init, after
//! `no_new_privs`; it is inherited by every process of the container and cannot be removed.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch, sock_filter,
};

/// System calls refused whatever their arguments.
pub const REFUSED: &[(&str, i64)] = &[
    ("acct", libc::SYS_acct),
    ("add_key", libc::SYS_add_key),
    ("bpf", libc::SYS_bpf),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("clock_settime", libc::SYS_clock_settime),
    ("adjtimex", libc::SYS_adjtimex),
    ("settimeofday", libc::SYS_settimeofday),
    ("delete_module", libc::SYS_delete_module),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("keyctl", libc::SYS_keyctl),
    ("request_key", libc::SYS_request_key),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("setns", libc::SYS_setns),
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("quotactl", libc::SYS_quotactl),
    ("syslog", libc::SYS_syslog),
    ("vhangup", libc::SYS_vhangup),
    ("kcmp", libc::SYS_kcmp),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
    ("nfsservctl", libc::SYS_nfsservctl),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("fanotify_init", libc::SYS_fanotify_init),
    ("pidfd_getfd", libc::SYS_pidfd_getfd),
    #[cfg(target_arch = "x86_64")]
    ("iopl", libc::SYS_iopl),
    #[cfg(target_arch = "x86_64")]
    ("ioperm", libc::SYS_ioperm),
    #[cfg(target_arch = "x86_64")]
    ("uselib", libc::SYS_uselib),
    #[cfg(target_arch = "x86_64")]
    ("ustat", libc::SYS_ustat),
    #[cfg(target_arch = "x86_64")]
    ("sysfs", libc::SYS_sysfs),
    #[cfg(target_arch = "x86_64")]
    ("_sysctl", libc::SYS__sysctl),
];

/// The namespace flags of `clone` and `unshare` (`CLONE_NEWNS`, `NEWCGROUP`, `NEWUTS`,
/// `NEWIPC`, `NEWUSER`, `NEWPID`, `NEWNET`, `NEWTIME`): refused, as Docker refuses them to a
/// container without `CAP_SYS_ADMIN`.
pub const NAMESPACE_FLAGS: [u64; 8] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    0x80, // CLONE_NEWTIME
];

/// The `personality` values allowed (as Docker): Linux, UNAME26, ADDR_NO_RANDOMIZE with
/// either, and the query 0xffffffff.
pub const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// `__X32_SYSCALL_BIT`: the x32 ABI's system call numbers have it set.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn arch() -> Result<TargetArch, String> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|e| format!("seccomp: {e}"))
}

fn cond(arg: u8, len: Len, op: Op, val: u64) -> Result<SeccompCondition, String> {
    SeccompCondition::new(arg, len, op, val).map_err(|e| format!("seccomp: {e}"))
}

fn rule(conds: Vec<SeccompCondition>) -> Result<SeccompRule, String> {
    SeccompRule::new(conds).map_err(|e| format!("seccomp: {e}"))
}

/// One rule per namespace flag: the call matches when any of them is set in `arg`.
fn any_namespace_flag(arg: u8) -> Result<Vec<SeccompRule>, String> {
    NAMESPACE_FLAGS
        .iter()
        .map(|f| rule(vec![cond(arg, Len::Qword, Op::MaskedEq(*f), *f)?]))
        .collect()
}

/// The rules whose match makes a call fail with `EPERM`.
fn refused_rules() -> Result<BTreeMap<i64, Vec<SeccompRule>>, String> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (_, nr) in REFUSED {
        rules.insert(*nr, Vec::new());
    }
    // clone's flags: the first argument on every architecture onebox runs on.
    rules.insert(libc::SYS_clone, any_namespace_flag(0)?);
    rules.insert(libc::SYS_unshare, any_namespace_flag(0)?);
    let other_personality = PERSONALITIES
        .iter()
        .map(|p| cond(0, Len::Dword, Op::Ne, *p))
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_personality, vec![rule(other_personality)?]);
    Ok(rules)
}

fn compile(f: SeccompFilter) -> Result<BpfProgram, String> {
    f.try_into()
        .map_err(|e: seccompiler::BackendError| format!("seccomp: {e}"))
}

/// The filters to install, in order: the refusals (`EPERM`), `clone3` (`ENOSYS`), and the
/// x32 ABI (`EPERM`).
pub fn filters() -> Result<Vec<BpfProgram>, String> {
    let arch = arch()?;
    let main = SeccompFilter::new(
        refused_rules()?,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| format!("seccomp: {e}"))?;
    let mut clone3 = BTreeMap::new();
    clone3.insert(libc::SYS_clone3, Vec::new());
    let clone3 = SeccompFilter::new(
        clone3,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(|e| format!("seccomp: {e}"))?;
    let mut out = vec![compile(main)?, compile(clone3)?];
    if arch == TargetArch::x86_64 {
        out.push(x32_filter());
    }
    Ok(out)
}

/// `nr >= __X32_SYSCALL_BIT` → `EPERM`, otherwise allow (the architecture was checked by
/// the filters before).
fn x32_filter() -> BpfProgram {
    // BPF_LD | BPF_W | BPF_ABS, BPF_JMP | BPF_JGE | BPF_K, BPF_RET | BPF_K.
    const LD_W_ABS: u16 = 0x20;
    const JGE_K: u16 = 0x05 | 0x30;
    const RET_K: u16 = 0x06;
    let ins = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        // seccomp_data.nr is at offset 0.
        ins(LD_W_ABS, 0, 0, 0),
        ins(JGE_K, 0, 1, X32_SYSCALL_BIT),
        ins(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        ins(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

/// Installs the filters on the calling thread (which has `no_new_privs` set).
pub fn install() -> Result<(), String> {
    for f in filters()? {
        seccompiler::apply_filter(&f).map_err(|e| format!("installing seccomp: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_compile_and_refuse_the_listed_calls() {
        let f = filters().expect("filters");
        assert!(f.len() >= 2);
        let rules = refused_rules().expect("rules");
        for (name, nr) in REFUSED {
            assert!(rules.get(nr).is_some_and(Vec::is_empty), "{name}");
        }
        assert_eq!(rules[&libc::SYS_clone].len(), NAMESPACE_FLAGS.len());
        assert!(!rules.contains_key(&libc::SYS_read));
    }

    /// The filter on a thread of the test (seccomp without TSYNC holds for the calling
    /// thread only): refused calls fail with EPERM, others still work.
    #[test]
    fn attack_a_filtered_thread_gets_eperm_for_kernel_facing_calls() {
        use nix::errno::Errno;
        use nix::mount::{MsFlags, mount};
        let r = std::thread::spawn(|| {
            nix::sys::prctl::set_no_new_privs().expect("nnp");
            install().expect("install");
            let m = mount(
                Some("tmpfs"),
                "/nonexistent-onebox-seccomp-test",
                Some("tmpfs"),
                MsFlags::empty(),
                None::<&str>,
            );
            let u = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUTS);
            let ok = std::fs::read_to_string("/proc/self/status").is_ok();
            // Each of these would succeed, or fail otherwise than EPERM, unfiltered.
            let raw = |nr, a, b, c| crate::sys::raw_syscall3(nr, a, b, c);
            let calls = vec![
                // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)
                ("keyctl", raw(libc::SYS_keyctl, 0, -3, 0), libc::EPERM),
                ("bpf", raw(libc::SYS_bpf, -1, 0, 0), libc::EPERM),
                (
                    "perf_event_open",
                    raw(libc::SYS_perf_event_open, 0, 0, -1),
                    libc::EPERM,
                ),
                (
                    "finit_module",
                    raw(libc::SYS_finit_module, -1, 0, 0),
                    libc::EPERM,
                ),
                (
                    "open_by_handle_at",
                    raw(libc::SYS_open_by_handle_at, -1, 0, 0),
                    libc::EPERM,
                ),
                ("setns", raw(libc::SYS_setns, -1, 0, 0), libc::EPERM),
                // clone(CLONE_NEWUSER) with a bad signal number, so it never forks.
                (
                    "clone",
                    raw(libc::SYS_clone, libc::CLONE_NEWUSER as i64 | 0xff, 0, 0),
                    libc::EPERM,
                ),
                ("clone3", raw(libc::SYS_clone3, 0, 0, 0), libc::ENOSYS),
                // READ_IMPLIES_EXEC
                (
                    "personality",
                    raw(libc::SYS_personality, 0x0400000, 0, 0),
                    libc::EPERM,
                ),
                #[cfg(target_arch = "x86_64")]
                (
                    "x32 getpid",
                    raw(0x4000_0000 | libc::SYS_getpid, 0, 0, 0),
                    libc::EPERM,
                ),
            ];
            (m, u, ok, calls)
        })
        .join()
        .expect("thread");
        assert_eq!(r.0, Err(Errno::EPERM), "mount");
        assert_eq!(r.1, Err(Errno::EPERM), "unshare(CLONE_NEWUTS)");
        assert!(r.2, "ordinary calls still work");
        for (name, got, want) in r.3 {
            assert_eq!(got, Err(want), "{name}");
        }
    }
}
