//! SQL for the networking service, a file per resource: `networks`, `subnets`, `ports`
//! (with the address allocation both the networking API and compute use), `security_groups`
//! (groups, rules, a port's groups), `routers`, `floating_ips`, and the shared `tags` and
//! `quotas`. Tables are `net_*` (see the migration). Callers see one module,
//! `store::network`.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use chrono::Utc;
use model::ProjectId;
use model::network::*;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use crate::{Error, Result, parse_ts, ts};

mod floating_ips;
mod networks;
mod ports;
mod quotas;
mod routers;
mod security_groups;
mod subnets;
mod tags;

pub use floating_ips::*;
pub use networks::*;
pub use ports::*;
pub use quotas::*;
pub use routers::*;
pub use security_groups::*;
pub use subnets::*;
pub use tags::*;

/// Whose resources a read may return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every project's (an admin).
    All,
    /// One project's; for networks also the shared and external ones.
    Project(ProjectId),
}

impl Scope {
    fn project(&self) -> Option<&str> {
        match self {
            Scope::All => None,
            Scope::Project(p) => Some(p.as_str()),
        }
    }
}

fn stamp(r: &Row<'_>, at: usize) -> rusqlite::Result<Stamp> {
    Ok(Stamp {
        revision: r.get(at)?,
        created_at: parse_ts(&r.get::<_, String>(at + 1)?)?,
        updated_at: parse_ts(&r.get::<_, String>(at + 2)?)?,
    })
}

fn now() -> String {
    ts(Utc::now())
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn parse_list(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

/// `?, ?, ?` for `n` parameters.
fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Bumps a resource's revision and update time.
fn touch(c: &Connection, table: &str, id: &str) -> Result<()> {
    c.execute(
        &format!("UPDATE {table} SET revision = revision + 1, updated_at = ?2 WHERE id = ?1"),
        params![id, now()],
    )?;
    Ok(())
}
