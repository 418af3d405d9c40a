//! Quota overrides per project and a project's usage.

use super::*;

/// The limits set for a project (resources not listed use the defaults).
pub fn quota_overrides(c: &Connection, p: &ProjectId) -> Result<Vec<(String, i64)>> {
    let mut st =
        c.prepare_cached("SELECT resource, hard_limit FROM quotas WHERE project_id = ?1")?;
    let rows = st.query_map([p.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn set_quota(c: &Connection, p: &ProjectId, resource: &str, limit: i64) -> Result<()> {
    c.execute(
        "INSERT INTO quotas (project_id, resource, hard_limit) VALUES (?1, ?2, ?3)
         ON CONFLICT (project_id, resource) DO UPDATE SET hard_limit = excluded.hard_limit",
        params![p.as_str(), resource, limit],
    )?;
    Ok(())
}

pub fn delete_quotas(c: &Connection, p: &ProjectId) -> Result<()> {
    c.execute("DELETE FROM quotas WHERE project_id = ?1", [p.as_str()])?;
    Ok(())
}

/// What a project uses now: live servers, their cores and RAM.
pub fn usage(c: &Connection, p: &ProjectId) -> Result<Usage> {
    let (instances, cores, ram) = c
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(vcpus), 0), COALESCE(SUM(ram_mb), 0)
             FROM servers WHERE project_id = ?1 AND deleted = 0",
        )?
        .query_row([p.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(Usage {
        instances,
        cores,
        ram,
        key_pairs: 0,
        server_groups: crate::operator::count_groups(c, p)?,
    })
}

/// The limits a quota class sets (resources not listed use the built-in defaults).
pub fn quota_class_values(c: &Connection, class: &str) -> Result<Vec<(String, i64)>> {
    let mut st =
        c.prepare_cached("SELECT resource, hard_limit FROM quota_classes WHERE class_name = ?1")?;
    let rows = st.query_map([class], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn set_quota_class(c: &Connection, class: &str, resource: &str, limit: i64) -> Result<()> {
    c.execute(
        "INSERT INTO quota_classes (class_name, resource, hard_limit) VALUES (?1, ?2, ?3)
         ON CONFLICT (class_name, resource) DO UPDATE SET hard_limit = excluded.hard_limit",
        params![class, resource, limit],
    )?;
    Ok(())
}
