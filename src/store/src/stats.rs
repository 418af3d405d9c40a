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
    ] {
        let n = c.query_row(sql, [], |r| r.get(0))?;
        out.push(Count {
            what: what.into(),
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
        assert_eq!(
            counts,
            vec![
                Count {
                    what: "projects".into(),
                    n: 2
                },
                Count {
                    what: "users".into(),
                    n: 0
                }
            ]
        );
    }
}
