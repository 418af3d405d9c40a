//! Host aggregates: the rows, their hosts (in the order they were added) and metadata.

use model::operator::{AZ_KEY, Aggregate};

use super::*;

fn aggregate_row(r: &Row<'_>) -> rusqlite::Result<Aggregate> {
    let updated: Option<String> = r.get(4)?;
    Ok(Aggregate {
        id: r.get(0)?,
        uuid: r.get(1)?,
        name: r.get(2)?,
        created_at: parse_ts(&r.get::<_, String>(3)?)?,
        updated_at: updated.as_deref().map(parse_ts).transpose()?,
        hosts: Vec::new(),
        metadata: BTreeMap::new(),
    })
}

fn fill(c: &Connection, a: &mut Aggregate) -> Result<()> {
    let mut st = c.prepare_cached(
        "SELECT host FROM aggregate_hosts WHERE aggregate_id = ?1 ORDER BY position",
    )?;
    a.hosts = st
        .query_map([a.id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut st =
        c.prepare_cached("SELECT key, value FROM aggregate_metadata WHERE aggregate_id = ?1")?;
    a.metadata = st
        .query_map([a.id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(())
}

const COLUMNS: &str = "id, uuid, name, created_at, updated_at";

/// Every aggregate, by id.
pub fn list_aggregates(c: &Connection) -> Result<Vec<Aggregate>> {
    let mut st = c.prepare_cached(&format!("SELECT {COLUMNS} FROM aggregates ORDER BY id"))?;
    let mut out: Vec<Aggregate> = st
        .query_map([], aggregate_row)?
        .collect::<rusqlite::Result<_>>()?;
    for a in &mut out {
        fill(c, a)?;
    }
    Ok(out)
}

pub fn get_aggregate(c: &Connection, id: i64) -> Result<Option<Aggregate>> {
    let a = c
        .query_row(
            &format!("SELECT {COLUMNS} FROM aggregates WHERE id = ?1"),
            [id],
            aggregate_row,
        )
        .optional()?;
    match a {
        Some(mut a) => {
            fill(c, &mut a)?;
            Ok(Some(a))
        }
        None => Ok(None),
    }
}

/// Whether an aggregate other than `except` is named `name`.
pub fn aggregate_name_taken(c: &Connection, name: &str, except: Option<i64>) -> Result<bool> {
    Ok(c.query_row(
        "SELECT EXISTS (SELECT 1 FROM aggregates WHERE name = ?1 AND id IS NOT ?2)",
        params![name, except],
        |r| r.get(0),
    )?)
}

/// A new aggregate, in `zone` if one is given; its id.
pub fn insert_aggregate(
    c: &Connection,
    uuid: &str,
    name: &str,
    zone: Option<&str>,
    now: DateTime<Utc>,
) -> Result<i64> {
    c.execute(
        "INSERT INTO aggregates (uuid, name, created_at) VALUES (?1, ?2, ?3)",
        params![uuid, name, ts(now)],
    )?;
    let id = c.last_insert_rowid();
    if let Some(z) = zone {
        set_aggregate_metadata(c, id, AZ_KEY, Some(z))?;
    }
    Ok(id)
}

pub fn rename_aggregate(c: &Connection, id: i64, name: &str, now: DateTime<Utc>) -> Result<()> {
    c.execute(
        "UPDATE aggregates SET name = ?2, updated_at = ?3 WHERE id = ?1 AND name != ?2",
        params![id, name, ts(now)],
    )?;
    Ok(())
}

/// Sets metadata `key` to `value`, or removes it with `None`.
pub fn set_aggregate_metadata(
    c: &Connection,
    id: i64,
    key: &str,
    value: Option<&str>,
) -> Result<()> {
    match value {
        Some(v) => c.execute(
            "INSERT INTO aggregate_metadata (aggregate_id, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (aggregate_id, key) DO UPDATE SET value = excluded.value",
            params![id, key, v],
        )?,
        None => c.execute(
            "DELETE FROM aggregate_metadata WHERE aggregate_id = ?1 AND key = ?2",
            params![id, key],
        )?,
    };
    Ok(())
}

pub fn add_aggregate_host(c: &Connection, id: i64, host: &str) -> Result<()> {
    c.execute(
        "INSERT INTO aggregate_hosts (aggregate_id, host, position)
         SELECT ?1, ?2, COALESCE(MAX(position), 0) + 1 FROM aggregate_hosts WHERE aggregate_id = ?1",
        params![id, host],
    )?;
    Ok(())
}

/// Removes `host` from an aggregate; whether it was there.
pub fn remove_aggregate_host(c: &Connection, id: i64, host: &str) -> Result<bool> {
    Ok(c.execute(
        "DELETE FROM aggregate_hosts WHERE aggregate_id = ?1 AND host = ?2",
        params![id, host],
    )? > 0)
}

pub fn delete_aggregate(c: &Connection, id: i64) -> Result<()> {
    c.execute("DELETE FROM aggregates WHERE id = ?1", [id])?;
    Ok(())
}

/// The aggregates holding `host` that name a zone: (id, zone), by id.
pub fn host_zones(c: &Connection, host: &str) -> Result<Vec<(i64, String)>> {
    let mut st = c.prepare_cached(
        "SELECT h.aggregate_id, m.value FROM aggregate_hosts h
         JOIN aggregate_metadata m ON m.aggregate_id = h.aggregate_id AND m.key = ?2
         WHERE h.host = ?1 ORDER BY h.aggregate_id",
    )?;
    let rows = st.query_map(params![host, AZ_KEY], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Live servers that are on the box (every live server but a shelved-offloaded one).
pub fn count_servers_on_host(c: &Connection) -> Result<i64> {
    Ok(c.query_row(
        "SELECT COUNT(*) FROM servers WHERE deleted = 0 AND vm_state != 'shelved_offloaded'",
        [],
        |r| r.get(0),
    )?)
}
