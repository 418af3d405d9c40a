//! SQL for server groups and the services of the box.

use chrono::{DateTime, Utc};
use model::ProjectId;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::{Result, parse_ts, ts};

pub use model::operator::{SERVICES, ServerGroup, ServiceRow};

// ---- server groups -------------------------------------------------------------------------

const GROUP_COLS: &str = "id, name, project_id, user_id, policy, max_server_per_host, created_at";

fn group_row(r: &Row<'_>) -> rusqlite::Result<ServerGroup> {
    Ok(ServerGroup {
        id: r.get(0)?,
        name: r.get(1)?,
        project_id: r.get(2)?,
        user_id: r.get(3)?,
        policy: r.get(4)?,
        max_server_per_host: r.get(5)?,
        created_at: parse_ts(&r.get::<_, String>(6)?)?,
        members: Vec::new(),
    })
}

/// The live members of a group: servers that still exist and are not deleted.
pub fn group_members(c: &Connection, group: &str) -> Result<Vec<String>> {
    let mut st = c.prepare_cached(
        "SELECT m.server_id FROM server_group_members m JOIN servers s ON s.id = m.server_id
         WHERE m.group_id = ?1 AND s.deleted = 0 ORDER BY m.added_at, m.server_id",
    )?;
    let rows = st.query_map([group], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn insert_group(c: &Connection, g: &ServerGroup) -> Result<()> {
    c.execute(
        &format!("INSERT INTO server_groups ({GROUP_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
        params![
            g.id,
            g.name,
            g.project_id,
            g.user_id,
            g.policy,
            g.max_server_per_host,
            ts(g.created_at)
        ],
    )?;
    Ok(())
}

pub fn get_group(c: &Connection, id: &str) -> Result<Option<ServerGroup>> {
    let g = c
        .query_row(
            &format!("SELECT {GROUP_COLS} FROM server_groups WHERE id = ?1"),
            [id],
            group_row,
        )
        .optional()?;
    match g {
        Some(mut g) => {
            g.members = group_members(c, &g.id)?;
            Ok(Some(g))
        }
        None => Ok(None),
    }
}

/// Groups of one project, or of every project, oldest first.
pub fn list_groups(c: &Connection, project: Option<&str>) -> Result<Vec<ServerGroup>> {
    let mut out: Vec<ServerGroup> = match project {
        Some(p) => {
            let mut st = c.prepare_cached(&format!(
                "SELECT {GROUP_COLS} FROM server_groups WHERE project_id = ?1 ORDER BY created_at, id"
            ))?;
            st.query_map([p], group_row)?
                .collect::<rusqlite::Result<_>>()?
        }
        None => {
            let mut st = c.prepare_cached(&format!(
                "SELECT {GROUP_COLS} FROM server_groups ORDER BY created_at, id"
            ))?;
            st.query_map([], group_row)?
                .collect::<rusqlite::Result<_>>()?
        }
    };
    for g in &mut out {
        g.members = group_members(c, &g.id)?;
    }
    Ok(out)
}

pub fn delete_group(c: &Connection, id: &str) -> Result<bool> {
    Ok(c.execute("DELETE FROM server_groups WHERE id = ?1", [id])? > 0)
}

pub fn count_groups(c: &Connection, p: &ProjectId) -> Result<i64> {
    Ok(c.query_row(
        "SELECT COUNT(*) FROM server_groups WHERE project_id = ?1",
        [p.as_str()],
        |r| r.get(0),
    )?)
}

pub fn add_member(c: &Connection, group: &str, server: &str) -> Result<()> {
    c.execute(
        "INSERT OR IGNORE INTO server_group_members (group_id, server_id, added_at)
         VALUES (?1, ?2, ?3)",
        params![group, server, ts(Utc::now())],
    )?;
    Ok(())
}

/// The group a server belongs to, if any (a server joins at most one).
pub fn group_of(c: &Connection, server: &str) -> Result<Option<String>> {
    Ok(c.query_row(
        "SELECT m.group_id FROM server_group_members m JOIN server_groups g ON g.id = m.group_id
         WHERE m.server_id = ?1",
        [server],
        |r| r.get(0),
    )
    .optional()?)
}

/// Members of `group` that joined before `server` and hold a place on the host: not
/// deleted, not in ERROR (a server that failed to schedule holds no place) and not offloaded.
/// Of servers that join together, the first ones take the places.
pub fn placed_members(c: &Connection, group: &str, server: &str) -> Result<i64> {
    Ok(c.query_row(
        "SELECT COUNT(*) FROM server_group_members m JOIN servers s ON s.id = m.server_id
         WHERE m.group_id = ?1 AND m.server_id <> ?2 AND s.deleted = 0
           AND s.vm_state NOT IN ('error', 'shelved_offloaded')
           AND m.rowid < (SELECT rowid FROM server_group_members
                          WHERE group_id = ?1 AND server_id = ?2)",
        [group, server],
        |r| r.get(0),
    )?)
}

// ---- services ------------------------------------------------------------------------------

fn service_row(r: &Row<'_>) -> rusqlite::Result<ServiceRow> {
    Ok(ServiceRow {
        binary: r.get(0)?,
        seq: r.get(1)?,
        id: r.get(2)?,
        node_id: r.get(3)?,
        disabled: r.get(4)?,
        disabled_reason: r.get(5)?,
        forced_down: r.get(6)?,
        created_at: parse_ts(&r.get::<_, String>(7)?)?,
        updated_at: parse_ts(&r.get::<_, String>(8)?)?,
    })
}

/// Creates the rows of the services that have none yet, with fresh UUIDs.
pub fn ensure_services(c: &Connection) -> Result<()> {
    let now = ts(Utc::now());
    for (i, b) in SERVICES.iter().enumerate() {
        c.execute(
            "INSERT OR IGNORE INTO compute_services
                 (binary, seq, id, node_id, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![
                b,
                i as i64 + 1,
                uuid::Uuid::new_v4().to_string(),
                uuid::Uuid::new_v4().to_string(),
                now
            ],
        )?;
    }
    Ok(())
}

pub fn list_services(c: &Connection) -> Result<Vec<ServiceRow>> {
    let mut st = c.prepare_cached(
        "SELECT binary, seq, id, node_id, disabled, disabled_reason, forced_down, created_at,
                updated_at
         FROM compute_services ORDER BY seq",
    )?;
    let rows = st.query_map([], service_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Sets a service's status; `None` leaves a field alone.
pub fn update_service(
    c: &Connection,
    binary: &str,
    disabled: Option<bool>,
    reason: Option<Option<&str>>,
    forced_down: Option<bool>,
) -> Result<bool> {
    let now = ts(Utc::now());
    let mut changed = c.execute(
        "UPDATE compute_services SET updated_at = ?2 WHERE binary = ?1",
        params![binary, now],
    )? > 0;
    if let Some(d) = disabled {
        changed &= c.execute(
            "UPDATE compute_services SET disabled = ?2 WHERE binary = ?1",
            params![binary, d],
        )? > 0;
    }
    if let Some(r) = reason {
        c.execute(
            "UPDATE compute_services SET disabled_reason = ?2 WHERE binary = ?1",
            params![binary, r],
        )?;
    }
    if let Some(f) = forced_down {
        c.execute(
            "UPDATE compute_services SET forced_down = ?2 WHERE binary = ?1",
            params![binary, f],
        )?;
    }
    Ok(changed)
}

/// Whether the compute service takes new servers (no row yet: it does).
pub fn compute_accepts_servers(c: &Connection) -> Result<bool> {
    let row: Option<(bool, bool)> = c
        .query_row(
            "SELECT disabled, forced_down FROM compute_services WHERE binary = 'nova-compute'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(row.is_none_or(|(d, f)| !d && !f))
}

// ---- usage ---------------------------------------------------------------------------------

/// Ids of servers that ran during `[start, end)`: launched before `end` and not terminated
/// before `start`, optionally of one project, ordered by id.
pub fn servers_active_in(
    c: &Connection,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    project: Option<&str>,
) -> Result<Vec<String>> {
    let mut st = c.prepare_cached(
        "SELECT id FROM servers
         WHERE launched_at IS NOT NULL AND launched_at < ?2
           AND (terminated_at IS NULL OR terminated_at > ?1)
           AND (?3 IS NULL OR project_id = ?3)
         ORDER BY project_id, id",
    )?;
    let rows = st.query_map(params![ts(start), ts(end), project], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    #[test]
    fn groups_and_services_round_trip() {
        let s = Store::open_in_memory().expect("store");
        s.write_blocking(|tx| {
            insert_group(
                tx,
                &ServerGroup {
                    id: "g1".into(),
                    name: "web".into(),
                    project_id: "p1".into(),
                    user_id: "u1".into(),
                    policy: "anti-affinity".into(),
                    max_server_per_host: Some(2),
                    created_at: Utc::now(),
                    members: Vec::new(),
                },
            )?;
            add_member(tx, "g1", "s1")?;
            ensure_services(tx)?;
            ensure_services(tx)?;
            update_service(
                tx,
                "nova-compute",
                Some(true),
                Some(Some("maintenance")),
                None,
            )?;
            Ok(())
        })
        .expect("write");
        s.read_blocking(|c| {
            let g = get_group(c, "g1")?.expect("group");
            assert_eq!(g.max_server_per_host, Some(2));
            // The member's server does not exist: it is not listed.
            assert!(g.members.is_empty());
            assert_eq!(count_groups(c, &ProjectId::new("p1"))?, 1);
            let svcs = list_services(c)?;
            assert_eq!(svcs.len(), 3);
            assert!(svcs[2].disabled);
            assert_eq!(svcs[2].disabled_reason.as_deref(), Some("maintenance"));
            assert!(!compute_accepts_servers(c)?);
            Ok(())
        })
        .expect("read");
    }
}
