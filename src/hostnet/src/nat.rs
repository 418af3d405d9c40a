//! The optional way out of project networks: masquerading through one uplink interface.
//!
//! Off by default (project networks are isolated). When an operator names an uplink
//! (`[network] nat_uplink`), [`apply`] writes one nftables table of onebox's own
//! (`table ip onebox`) and turns IPv4 forwarding on for the uplink and for the project
//! bridges (`obr*`); [`remove`] deletes that table and turns the bridges' forwarding off again.
//! Nothing else in the host's ruleset is read or changed.
//!
//! The table's forward chain lets guests open connections out through the uplink and lets
//! their replies back in; anything else routed in or out of a project bridge is dropped, so
//! networks stay isolated from each other and nothing outside can open a connection to a
//! guest. The nat chain rewrites the source of what leaves through the uplink to the
//! uplink's address.
//!
//! Forwarding is switched on per interface (`conf/<if>/forwarding`), never through
//! `ip_forward` or `conf/all/forwarding`: writing either resets the setting of every
//! interface on the host, and the kernel only consults the receiving interface's own switch.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::{Error, Result};

/// The nftables table onebox owns (family `ip`); onebox edits no other.
pub const TABLE: &str = "onebox";

/// How project bridges are matched in the ruleset (see [`crate::bridge_name`]).
const BRIDGES: &str = "obr*";

/// Whether `name` can be the uplink: a kernel interface name (1 to 15 bytes, no `/`,
/// whitespace, quote or backslash) that is not a project bridge.
pub fn check_uplink(name: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::Invalid(format!("uplink {name:?}"), why.into()));
    if name.is_empty() || name.len() > 15 {
        return bad("an interface name has 1 to 15 characters");
    }
    if name == "." || name == ".." {
        return bad("not an interface name");
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '"' | '\\' | '*'))
    {
        return bad("not an interface name");
    }
    if name.starts_with("obr") {
        return bad("names starting with obr are onebox's project bridges");
    }
    Ok(())
}

/// The nft script that replaces onebox's table with one masquerading through `uplink`.
/// Run as one transaction: the first line makes the table exist so that deleting it never
/// fails, and the whole script applies or nothing does.
pub fn ruleset(uplink: &str) -> Result<String> {
    check_uplink(uplink)?;
    Ok(format!(
        r#"table ip {TABLE}
delete table ip {TABLE}
table ip {TABLE} {{
	chain forward {{
		type filter hook forward priority filter; policy accept;
		iifname "{BRIDGES}" oifname "{uplink}" accept
		iifname "{uplink}" oifname "{BRIDGES}" ct state established,related accept
		iifname "{BRIDGES}" oifname "{BRIDGES}" fib daddr . iif oif exists accept
		iifname "{BRIDGES}" drop
		oifname "{BRIDGES}" drop
	}}
	chain postrouting {{
		type nat hook postrouting priority srcnat; policy accept;
		iifname "{BRIDGES}" oifname "{uplink}" masquerade
	}}
}}
"#
    ))
}

/// The script that deletes onebox's table, whether it exists or not.
fn removal() -> String {
    format!("table ip {TABLE}\ndelete table ip {TABLE}\n")
}

/// Feeds `script` to `nft -f -` in the calling thread's network namespace.
fn nft(script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Io("nft".into(), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| Error::Io("nft stdin".into(), e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Io("nft".into(), e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Nft(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

/// Whether the `nft` tool can be run.
pub fn nft_available() -> bool {
    Command::new("nft")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn conf_dir() -> &'static str {
    "/proc/sys/net/ipv4/conf"
}

/// Writes an interface's IPv4 forwarding switch.
pub(crate) fn set_forwarding(ifname: &str, on: bool) -> Result<()> {
    let path = format!("{}/{ifname}/forwarding", conf_dir());
    std::fs::write(&path, if on { "1" } else { "0" }).map_err(|e| Error::Io(path, e))
}

/// The project bridges of the current network namespace.
/// The project bridges that exist on the host (`obr*`).
pub fn bridges() -> Result<Vec<String>> {
    let dir = conf_dir();
    let rd = std::fs::read_dir(dir).map_err(|e| Error::Io(dir.into(), e))?;
    Ok(rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("obr"))
        .collect())
}

/// Masquerades the project networks through `uplink`: replaces onebox's nft table (so it is
/// idempotent) and turns forwarding on for the uplink and every project bridge that exists.
/// Bridges made later get it from [`crate::NetworkDef::forwarding`].
pub fn apply(uplink: &str) -> Result<()> {
    let script = ruleset(uplink)?;
    if !std::path::Path::new(conf_dir()).join(uplink).exists() {
        return Err(Error::Invalid(
            format!("uplink {uplink:?}"),
            "no such interface".into(),
        ));
    }
    nft(&script)?;
    // Replies come in on the uplink and are routed to the bridges.
    set_forwarding(uplink, true)?;
    for b in bridges()? {
        set_forwarding(&b, true)?;
    }
    tracing::debug!(%uplink, "NAT uplink applied");
    Ok(())
}

/// Isolates the project networks again: deletes onebox's nft table if there is one and turns
/// forwarding off on every project bridge. Without the `nft` tool there can be no table to
/// delete. The uplink's own forwarding switch is left as it is (it may serve other routing
/// on the host, and routes nothing from the bridges once theirs are off).
pub fn remove() -> Result<()> {
    if nft_available() {
        nft(&removal())?;
    }
    for b in bridges()? {
        let path = format!("{}/{b}/forwarding", conf_dir());
        let on = std::fs::read_to_string(&path).is_ok_and(|v| v.trim() != "0");
        if on {
            set_forwarding(&b, false)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ruleset_replaces_only_onebox_table() {
        let r = ruleset("eth0").expect("ruleset");
        let lines: Vec<&str> = r.lines().map(str::trim).collect();
        // One transaction that makes, deletes and remakes the one table: idempotent.
        assert_eq!(lines[0], "table ip onebox");
        assert_eq!(lines[1], "delete table ip onebox");
        assert_eq!(lines[2], "table ip onebox {");
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("table ")).count(),
            2,
            "{r}"
        );
        assert!(!r.contains("flush ruleset"), "{r}");
        // Every table the script names is onebox's.
        for l in &lines {
            if let Some(rest) = l.strip_prefix("table ").or(l.strip_prefix("delete table ")) {
                assert!(rest.starts_with("ip onebox"), "{l}");
            }
        }
    }

    #[test]
    fn the_forward_chain_lets_out_lets_replies_in_and_drops_the_rest() {
        let r = ruleset("eth0").expect("ruleset");
        let chain: Vec<&str> = r
            .split("chain forward {")
            .nth(1)
            .and_then(|c| c.split('}').next())
            .expect("forward chain")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(
            chain,
            [
                "type filter hook forward priority filter; policy accept;",
                r#"iifname "obr*" oifname "eth0" accept"#,
                r#"iifname "eth0" oifname "obr*" ct state established,related accept"#,
                r#"iifname "obr*" oifname "obr*" fib daddr . iif oif exists accept"#,
                r#"iifname "obr*" drop"#,
                r#"oifname "obr*" drop"#,
            ]
        );
        let nat: Vec<&str> = r
            .split("chain postrouting {")
            .nth(1)
            .and_then(|c| c.split('}').next())
            .expect("postrouting chain")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(
            nat,
            [
                "type nat hook postrouting priority srcnat; policy accept;",
                r#"iifname "obr*" oifname "eth0" masquerade"#,
            ]
        );
    }

    #[test]
    fn uplink_names_are_checked_before_they_reach_nft() {
        for ok in ["eth0", "enp3s0", "wlan0.100", "br-lan"] {
            assert!(ruleset(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a-name-longer-than-15",
            "eth0\" accept",
            "eth0\n",
            "eth 0",
            "eth*",
            "a/b",
            "..",
            "obr0123456789a",
        ] {
            assert!(ruleset(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn removal_deletes_only_onebox_table() {
        assert_eq!(removal(), "table ip onebox\ndelete table ip onebox\n");
    }
}
