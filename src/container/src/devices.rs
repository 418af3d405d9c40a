//! The device allow-list of every container: only the standard character devices
//! (`null`, `zero`, `full`, `random`, `urandom`, `tty`, `console`, `ptmx` and the pty slaves)
//! may be created (`mknod`), read or written; every other device, the host's disks above
//! all, is refused by the kernel even to a process that holds a node for it.
//!
//! - cgroup v1: the `devices` controller, `a` denied then each entry allowed
//!   ([`v1_allow_lines`]);
//! - cgroup v2: a `BPF_PROG_TYPE_CGROUP_DEVICE` program attached to the container's cgroup,
//!   assembled here from the same list ([`program`]) and loaded with raw `bpf(2)`
//!   ([`crate::sys`]).

/// A device type as the rules name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Char,
    Block,
}

/// One allowed device (`minor: None`: every minor of the major), for read, write and mknod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub kind: Kind,
    pub major: u32,
    pub minor: Option<u32>,
}

const fn chr(major: u32, minor: u32) -> Rule {
    Rule {
        kind: Kind::Char,
        major,
        minor: Some(minor),
    }
}

/// The allowed devices (as runc's default): null 1:3, zero 1:5, full 1:7, random 1:8,
/// urandom 1:9, tty 5:0, console 5:1, ptmx 5:2, and the pty slaves 136:*.
pub const ALLOWED: [Rule; 9] = [
    chr(1, 3),
    chr(1, 5),
    chr(1, 7),
    chr(1, 8),
    chr(1, 9),
    chr(5, 0),
    chr(5, 1),
    chr(5, 2),
    Rule {
        kind: Kind::Char,
        major: 136,
        minor: None,
    },
];

/// Whether `rules` allow the device `kind major:minor` (what the program decides).
pub fn allowed(rules: &[Rule], kind: Kind, major: u32, minor: u32) -> bool {
    rules
        .iter()
        .any(|r| r.kind == kind && r.major == major && r.minor.is_none_or(|m| m == minor))
}

/// The lines for a v1 cgroup's `devices.allow` (after `a` is written to `devices.deny`).
pub fn v1_allow_lines(rules: &[Rule]) -> Vec<String> {
    rules
        .iter()
        .map(|r| {
            let t = match r.kind {
                Kind::Char => 'c',
                Kind::Block => 'b',
            };
            let minor = r.minor.map_or("*".to_owned(), |m| m.to_string());
            format!("{t} {}:{minor} rwm", r.major)
        })
        .collect()
}

// eBPF instruction encoding (one u64 each, little-endian fields: code, regs, off, imm).
const LDX_MEM_W: u8 = 0x61;
const ALU64_AND_K: u8 = 0x57;
const JNE_K: u8 = 0x55;
const MOV64_K: u8 = 0xb7;
const EXIT: u8 = 0x95;

/// `BPF_DEVCG_DEV_BLOCK` / `BPF_DEVCG_DEV_CHAR`: the low 16 bits of `access_type`.
fn devcg_type(k: Kind) -> i32 {
    match k {
        Kind::Block => 1,
        Kind::Char => 2,
    }
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    u64::from(code)
        | (u64::from(dst & 0xf) << 8)
        | (u64::from(src & 0xf) << 12)
        | (u64::from(off as u16) << 16)
        | (u64::from(imm as u32) << 32)
}

/// The device program for `rules`. Its context is `struct bpf_cgroup_dev_ctx { u32
/// access_type; u32 major; u32 minor; }` in r1; it returns 1 (allow) or 0 (refuse):
///
/// ```text
///   r2 = ctx->access_type & 0xffff   ; the device type
///   r3 = ctx->major
///   r4 = ctx->minor
///   for each rule: if r2 != type goto next; if r3 != major goto next;
///                  [if r4 != minor goto next;] r0 = 1; exit
///   r0 = 0; exit
/// ```
pub fn program(rules: &[Rule]) -> Vec<u64> {
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU64_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 4, 0),
        insn(LDX_MEM_W, 4, 1, 8, 0),
    ];
    for r in rules {
        // The checks, then `r0 = 1; exit`: each failed check jumps past the rest of the rule.
        let checks = if r.minor.is_some() { 3 } else { 2 };
        let len = checks + 2;
        p.push(insn(JNE_K, 2, 0, (len - 1) as i16, devcg_type(r.kind)));
        p.push(insn(JNE_K, 3, 0, (len - 2) as i16, r.major as i32));
        if let Some(m) = r.minor {
            p.push(insn(JNE_K, 4, 0, (len - 3) as i16, m as i32));
        }
        p.push(insn(MOV64_K, 0, 0, 0, 1));
        p.push(insn(EXIT, 0, 0, 0, 0));
    }
    p.push(insn(MOV64_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

/// Loads the program for [`ALLOWED`] and attaches it to the cgroup v2 directory `dir`.
pub fn attach_v2(dir: &std::path::Path) -> Result<(), String> {
    let prog = crate::sys::load_device_program(&program(&ALLOWED))?;
    crate::sys::attach_device_program(dir, &prog)
}

/// How many device programs are attached to the cgroup v2 directory `dir`.
pub fn programs_attached(dir: &std::path::Path) -> Result<u32, String> {
    crate::sys::device_programs_attached(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `prog` the way the kernel would, for the few instructions it uses.
    fn run(prog: &[u64], access_type: u32, major: u32, minor: u32) -> u64 {
        let ctx = [access_type, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let code = (i & 0xff) as u8;
            let dst = ((i >> 8) & 0xf) as usize;
            let src = ((i >> 12) & 0xf) as usize;
            let off = ((i >> 16) & 0xffff) as u16 as i16;
            let imm = (i >> 32) as u32 as i32;
            pc += 1;
            match code {
                LDX_MEM_W => {
                    assert_eq!(src, 1, "loads only from the context");
                    r[dst] = u64::from(ctx[off as usize / 4]);
                }
                ALU64_AND_K => r[dst] &= imm as i64 as u64,
                MOV64_K => r[dst] = imm as i64 as u64,
                JNE_K => {
                    if r[dst] != imm as i64 as u64 {
                        pc = (pc as i64 + i64::from(off)) as usize;
                    }
                }
                EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn the_program_decides_as_the_list() {
        let prog = program(&ALLOWED);
        // (type, major, minor) samples: the standard nodes, the host's disks, /dev/mem,
        // /dev/kmsg, pty slaves, a block device with an allowed char's numbers.
        let samples = [
            (Kind::Char, 1, 3),
            (Kind::Char, 1, 5),
            (Kind::Char, 1, 9),
            (Kind::Char, 1, 1),
            (Kind::Char, 1, 11),
            (Kind::Char, 5, 1),
            (Kind::Char, 5, 2),
            (Kind::Char, 136, 0),
            (Kind::Char, 136, 77),
            (Kind::Char, 4, 0),
            (Kind::Char, 10, 200),
            (Kind::Block, 1, 3),
            (Kind::Block, 8, 0),
            (Kind::Block, 8, 1),
            (Kind::Block, 253, 0),
            (Kind::Block, 259, 0),
            (Kind::Block, 7, 0),
        ];
        for (kind, major, minor) in samples {
            for access in [1u32, 2, 4, 6, 7] {
                let at = (access << 16) | devcg_type(kind) as u32;
                let want = allowed(&ALLOWED, kind, major, minor);
                assert_eq!(
                    run(&prog, at, major, minor) == 1,
                    want,
                    "{kind:?} {major}:{minor} access {access}"
                );
            }
        }
        assert!(!allowed(&ALLOWED, Kind::Block, 8, 0), "no disk is allowed");
    }

    #[test]
    fn the_v1_list_names_the_standard_nodes() {
        let l = v1_allow_lines(&ALLOWED);
        assert!(l.contains(&"c 1:3 rwm".to_owned()));
        assert!(l.contains(&"c 136:* rwm".to_owned()));
        assert!(l.iter().all(|x| x.starts_with("c ")));
    }
}
