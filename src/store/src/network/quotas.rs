//! The networking quotas: limits per project (Neutron's defaults unless set) and usage
//! counted from the rows, so a check and the insert it guards share one transaction.

use super::*;

/// The limit of every resource for a project: its own, else the default.
pub fn net_limits(c: &Connection, project: &ProjectId) -> Result<Vec<(&'static str, i64)>> {
    let mut st =
        c.prepare_cached("SELECT resource, hard_limit FROM net_quotas WHERE project_id = ?1")?;
    let set: HashMap<String, i64> = st
        .query_map([project.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(QUOTA_DEFAULTS
        .iter()
        .map(|(k, d)| (*k, set.get(*k).copied().unwrap_or(*d)))
        .collect())
}

pub fn set_net_limit(
    c: &Connection,
    project: &ProjectId,
    resource: &str,
    limit: i64,
) -> Result<()> {
    c.execute(
        "INSERT INTO net_quotas (project_id, resource, hard_limit) VALUES (?1, ?2, ?3)
         ON CONFLICT (project_id, resource) DO UPDATE SET hard_limit = excluded.hard_limit",
        params![project.as_str(), resource, limit],
    )?;
    Ok(())
}

/// Forgets a project's own limits (back to the defaults).
pub fn reset_net_limits(c: &Connection, project: &ProjectId) -> Result<()> {
    c.execute(
        "DELETE FROM net_quotas WHERE project_id = ?1",
        [project.as_str()],
    )?;
    Ok(())
}

/// How many of `resource` the project holds.
pub fn net_usage(c: &Connection, project: &ProjectId, resource: &str) -> Result<i64> {
    let sql = match resource {
        "network" => "SELECT COUNT(*) FROM net_networks WHERE project_id = ?1",
        "subnet" => "SELECT COUNT(*) FROM net_subnets WHERE project_id = ?1",
        "port" => "SELECT COUNT(*) FROM net_ports WHERE project_id = ?1",
        "router" => "SELECT COUNT(*) FROM net_routers WHERE project_id = ?1",
        "floatingip" => "SELECT COUNT(*) FROM net_floating_ips WHERE project_id = ?1",
        "security_group" => "SELECT COUNT(*) FROM net_security_groups WHERE project_id = ?1",
        "security_group_rule" => "SELECT COUNT(*) FROM net_sg_rules WHERE project_id = ?1",
        _ => return Ok(0),
    };
    Ok(c.query_row(sql, [project.as_str()], |r| r.get(0))?)
}

/// `Some(limit)` when `more` of `resource` would exceed the project's quota (a limit below
/// 0 is unlimited).
pub fn net_over_quota(
    c: &Connection,
    project: &ProjectId,
    resource: &str,
    more: i64,
) -> Result<Option<i64>> {
    let limit = net_limits(c, project)?
        .into_iter()
        .find(|(k, _)| *k == resource)
        .map(|(_, l)| l)
        .unwrap_or(-1);
    if limit < 0 {
        return Ok(None);
    }
    let used = net_usage(c, project, resource)?;
    Ok((used + more > limit).then_some(limit))
}
