//! Tidy rules for the tree, checked by `cargo test`: the crate layering, SQL only in `store`,
//! `unsafe` only where ARCHITECTURE.md names it, and a bound on the size of source files.
//!
//! Each rule is a pure function over data read from the tree, so its own unit tests can feed
//! it a forbidden case and watch it fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which workspace crates each crate may depend on (its `[dependencies]`). A crate missing
/// from this table may depend on no workspace crate. The arrows only point down: model at
/// the bottom, the binary at the top.
const ALLOWED_EDGES: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("hostnet", &[]),
    ("ipmi", &[]),
    ("store", &["model"]),
    ("driver", &["model"]),
    ("identity", &["store", "model"]),
    ("image", &["store", "model"]),
    ("compute", &["store", "driver", "image", "model"]),
    ("container", &["driver", "model", "hostnet"]),
    ("driver-libvirt", &["driver", "model", "hostnet"]),
    ("baremetal", &["driver", "ipmi", "model", "store"]),
    // The networking service: its SQL in `store`, its kernel side (`hostnet`) behind the
    // `Host` trait that `onebox` implements.
    ("network", &["store", "model", "hostnet"]),
    // The block storage service: its SQL in `store`, its data behind `StorageBackend`.
    ("volume", &["store", "model"]),
    // `api` speaks to the services, never to the store: row types and filters it shows are
    // `model`'s.
    (
        "api",
        &[
            "compute",
            "identity",
            "image",
            "model",
            "driver",
            "baremetal",
            "network",
            "volume",
        ],
    ),
    (
        "onebox",
        &[
            "api",
            "baremetal",
            "driver-libvirt",
            "hostnet",
            "compute",
            "driver",
            "container",
            "identity",
            "image",
            "store",
            "model",
            "ipmi",
            "network",
            "volume",
        ],
    ),
];

/// The only files that may contain `unsafe` code (each says why in its module docs).
const UNSAFE_ALLOWED: &[&str] = &[
    // libvirt's event callbacks have no safe binding.
    "src/libvirt/src/events.rs",
    // clone(2) into new namespaces with a child stack.
    "src/container/src/shim.rs",
    // open_tree, mount_setattr (idmapped mounts), bpf(2) for the cgroup v2 device program,
    // and taking over a descriptor received with SCM_RIGHTS.
    "src/container/src/sys.rs",
];

/// The largest a source file (outside tests) may grow.
const MAX_LINES: usize = 800;

/// Source files allowed past `MAX_LINES` for now, each to be split by operation.
const LONG_FILES: &[&str] = &[
    "src/api/src/baremetal/mod.rs",
    "src/image/src/lib.rs",
    "src/ipmi/src/codec.rs",
    "src/libvirt/src/lib.rs",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The path of every workspace manifest, the root package's first.
fn manifest_paths() -> Vec<PathBuf> {
    let root = root();
    let top: toml::Table = read_toml(&root.join("Cargo.toml"));
    let members = top["workspace"]["members"]
        .as_array()
        .expect("workspace members");
    let mut paths = vec![root.join("Cargo.toml")];
    paths.extend(members.iter().map(|m| {
        root.join(m.as_str().expect("member path"))
            .join("Cargo.toml")
    }));
    paths
}

/// Every workspace manifest: the crate's name and the workspace crates it depends on.
fn manifests() -> BTreeMap<String, BTreeSet<String>> {
    let paths = manifest_paths();
    let workspace: BTreeSet<String> = paths.iter().map(|p| crate_name(&read_toml(p))).collect();
    paths
        .iter()
        .map(|p| {
            let t = read_toml(p);
            let deps = t
                .get("dependencies")
                .and_then(|d| d.as_table())
                .map(|d| {
                    d.keys()
                        .filter(|k| workspace.contains(*k))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            (crate_name(&t), deps)
        })
        .collect()
}

fn read_toml(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn crate_name(t: &toml::Table) -> String {
    t["package"]["name"]
        .as_str()
        .expect("package name")
        .to_string()
}

/// The edges of `crates` that `allowed` does not permit, as "from -> to".
fn forbidden_edges(
    crates: &BTreeMap<String, BTreeSet<String>>,
    allowed: &[(&str, &[&str])],
) -> Vec<String> {
    let mut bad = Vec::new();
    for (from, deps) in crates {
        let ok: &[&str] = allowed
            .iter()
            .find(|(name, _)| name == from)
            .map(|(_, to)| *to)
            .unwrap_or(&[]);
        for to in deps {
            if !ok.contains(&to.as_str()) {
                bad.push(format!("{from} -> {to}"));
            }
        }
    }
    bad
}

/// Every `.rs` file under `dir`, as a path relative to the repository root.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p.strip_prefix(root()).expect("under root").to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Whether a file is test code (a crate's `tests/` directory).
fn is_test_file(rel: &Path) -> bool {
    rel.components().any(|c| c.as_os_str() == "tests")
}

/// The lines of `text` that are code rather than comments (a rough cut: whole-line comments
/// are skipped, which is all this tree's style uses).
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter(|l| !l.trim_start().starts_with("//"))
}

/// Files (relative paths) that contain `word` as code, among `files` (path, text).
fn files_using<'a>(files: &'a [(PathBuf, String)], word: &str) -> Vec<&'a Path> {
    files
        .iter()
        .filter(|(_, text)| {
            code_lines(text).any(|l| {
                l.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .any(|w| w == word)
            })
        })
        .map(|(p, _)| p.as_path())
        .collect()
}

fn sources() -> Vec<(PathBuf, String)> {
    rust_files(&root().join("src"))
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(root().join(&p)).expect("readable source");
            (p, text)
        })
        .collect()
}

#[test]
fn crates_depend_only_downwards() {
    let bad = forbidden_edges(&manifests(), ALLOWED_EDGES);
    assert!(
        bad.is_empty(),
        "workspace edges not in tests/tidy.rs's ALLOWED_EDGES: {bad:?}"
    );
}

#[test]
fn only_store_speaks_sql() {
    let srcs = sources();
    let outside: Vec<_> = files_using(&srcs, "rusqlite")
        .into_iter()
        .filter(|p| !p.starts_with("src/store"))
        .collect();
    assert!(
        outside.is_empty(),
        "rusqlite used outside store: {outside:?}"
    );
    for path in manifest_paths() {
        let manifest = read_toml(&path);
        let name = crate_name(&manifest);
        if name == "store" {
            continue;
        }
        let deps = manifest.get("dependencies").and_then(|d| d.as_table());
        assert!(
            deps.is_none_or(|d| !d.contains_key("rusqlite")),
            "{name} depends on rusqlite"
        );
    }
}

#[test]
fn unsafe_only_where_named() {
    let srcs = sources();
    let bad: Vec<_> = files_using(&srcs, "unsafe")
        .into_iter()
        .filter(|p| !UNSAFE_ALLOWED.iter().any(|a| Path::new(a) == *p))
        .collect();
    assert!(bad.is_empty(), "unsafe outside {UNSAFE_ALLOWED:?}: {bad:?}");
}

#[test]
fn source_files_stay_small() {
    let long: Vec<String> = sources()
        .iter()
        .filter(|(p, _)| !is_test_file(p))
        .filter(|(_, text)| text.lines().count() > MAX_LINES)
        .map(|(p, _)| p.display().to_string())
        .filter(|p| !LONG_FILES.contains(&p.as_str()))
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines (split them by operation): {long:?}"
    );
}

#[test]
fn long_file_allowances_are_still_needed() {
    // An allowance outlives its reason once the file is split: drop it then.
    for f in LONG_FILES {
        let text = std::fs::read_to_string(root().join(f)).unwrap_or_default();
        assert!(
            text.lines().count() > MAX_LINES,
            "{f} is no longer long: remove it from LONG_FILES"
        );
    }
}

#[test]
fn a_forbidden_edge_is_caught() {
    let mut crates = manifests();
    assert!(forbidden_edges(&crates, ALLOWED_EDGES).is_empty());
    // model reaching up into compute, store into api, and api past the services into
    // store: all must be refused.
    crates
        .entry("model".into())
        .or_default()
        .insert("compute".into());
    crates
        .entry("api".into())
        .or_default()
        .insert("store".into());
    crates
        .entry("store".into())
        .or_default()
        .insert("api".into());
    let bad = forbidden_edges(&crates, ALLOWED_EDGES);
    assert_eq!(
        bad,
        vec!["api -> store", "model -> compute", "store -> api"]
    );
    // A crate the table does not know may depend on no workspace crate.
    let mut unknown = BTreeMap::new();
    unknown.insert(
        "newcomer".to_string(),
        BTreeSet::from(["store".to_string()]),
    );
    assert_eq!(
        forbidden_edges(&unknown, ALLOWED_EDGES),
        vec!["newcomer -> store"]
    );
}

#[test]
fn a_word_in_code_is_found_and_in_comments_is_not() {
    let files = vec![
        (
            PathBuf::from("a.rs"),
            "// unsafe is discussed here\nfn f() {}\n".to_string(),
        ),
        (
            PathBuf::from("b.rs"),
            "fn g() { unsafe { h() } }\n".to_string(),
        ),
        (
            PathBuf::from("c.rs"),
            "use rusqlite::Connection;\n".to_string(),
        ),
    ];
    assert_eq!(files_using(&files, "unsafe"), vec![Path::new("b.rs")]);
    assert_eq!(files_using(&files, "rusqlite"), vec![Path::new("c.rs")]);
}
