//! What a box holds, counted for `onebox status`.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::Result;

/// One line of the inventory: what was counted and how many there are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Count {
    pub what: String,
    pub n: i64,
}

/// Counts of every kind of record a box holds, in display order. Each kind is one query
/// below; a grouped kind (servers by state, when the servers table arrives) adds one line
/// per group, e.g. `servers ACTIVE`.
pub fn inventory(c: &Connection) -> Result<Vec<Count>> {
    let mut out = Vec::new();
    for (what, sql) in [
        ("projects", "SELECT count(*) FROM projects"),
        ("users", "SELECT count(*) FROM users"),
        ("flavors", "SELECT count(*) FROM flavors"),
        ("keypairs", "SELECT count(*) FROM keypairs"),
        ("servers", "SELECT count(*) FROM servers WHERE deleted = 0"),
    ] {
        let n = c.query_row(sql, [], |r| r.get(0))?;
        out.push(Count {
            what: what.into(),
            n,
        });
    }
    // Live servers by their public status, as `openstack server list` shows it.
    let mut by_status: std::collections::BTreeMap<&'static str, i64> = Default::default();
    let mut st = c.prepare(
        "SELECT vm_state, task_state, count(*) FROM servers WHERE deleted = 0
         GROUP BY vm_state, task_state",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (vm, task, n) = row?;
        let status = match model::compute::VmState::parse(&vm) {
            Some(v) => model::compute::status(
                v,
                task.as_deref().and_then(model::compute::TaskState::parse),
            ),
            None => "UNKNOWN",
        };
        *by_status.entry(status).or_default() += n;
    }
    for (status, n) in by_status {
        out.push(Count {
            what: format!("servers {status}"),
            n,
        });
    }
    Ok(out)
}

/// The schema version and inventory of the database at `path`, opened read-only so that a
/// running onebox is not disturbed and nothing is created or migrated.
pub fn inventory_at(path: &Path) -> Result<(i64, Vec<Count>)> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    let version = crate::migrations::current(&c)?;
    if version == 0 {
        return Ok((0, Vec::new()));
    }
    Ok((version, inventory(&c)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_projects_and_users_read_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("onebox.db");
        let store = crate::Store::open(&path).expect("open");
        store
            .write_blocking(|tx| {
                tx.execute_batch(
                    "INSERT INTO domains (id, name, created_at) VALUES ('default', 'Default', 'x');
                     INSERT INTO projects (id, domain_id, name, created_at)
                       VALUES ('p1', 'default', 'a', 'x'), ('p2', 'default', 'b', 'x');",
                )?;
                Ok(())
            })
            .expect("write");
        let (version, counts) = inventory_at(&path).expect("inventory");
        assert_eq!(version, crate::LATEST_VERSION);
        let got: Vec<(&str, i64)> = counts.iter().map(|c| (c.what.as_str(), c.n)).collect();
        assert_eq!(
            got,
            [
                ("projects", 2),
                ("users", 0),
                ("flavors", 0),
                ("keypairs", 0),
                ("servers", 0)
            ]
        );
        // Live servers are counted by their public status.
        store
            .write_blocking(|tx| {
                tx.execute_batch(
                    "INSERT INTO servers (id, name, project_id, user_id, flavor, flavorid, vcpus,
                         ram_mb, vm_state, task_state, backend, availability_zone, hostname,
                         reservation_id, host, created_at, updated_at, deleted)
                     VALUES ('s1', 'a', 'p1', 'u', '{}', '1', 1, 1, 'active', NULL, 'fake', 'nova', 'a', 'r', 'h', 'x', 'x', 0),
                            ('s2', 'b', 'p1', 'u', '{}', '1', 1, 1, 'active', 'rebooting', 'fake', 'nova', 'b', 'r', 'h', 'x', 'x', 0),
                            ('s3', 'c', 'p1', 'u', '{}', '1', 1, 1, 'stopped', NULL, 'fake', 'nova', 'c', 'r', 'h', 'x', 'x', 0),
                            ('s4', 'd', 'p1', 'u', '{}', '1', 1, 1, 'deleted', NULL, 'fake', 'nova', 'd', 'r', 'h', 'x', 'x', 1);",
                )?;
                Ok(())
            })
            .expect("servers");
        let (_, counts) = inventory_at(&path).expect("inventory");
        let got: Vec<(&str, i64)> = counts.iter().map(|c| (c.what.as_str(), c.n)).collect();
        assert_eq!(
            &got[4..],
            [
                ("servers", 3),
                ("servers ACTIVE", 1),
                ("servers REBOOT", 1),
                ("servers SHUTOFF", 1)
            ]
        );
    }
}
