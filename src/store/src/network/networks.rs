//! Networks.

use super::*;

const COLS: &str = "n.id, n.project_id, n.name, n.description, n.admin_state_up, n.shared,
    n.external, n.mtu, n.port_security, n.is_default, n.revision, n.created_at, n.updated_at";

fn row(r: &Row<'_>) -> rusqlite::Result<NetworkRec> {
    Ok(NetworkRec {
        id: r.get(0)?,
        project_id: ProjectId::new(r.get::<_, String>(1)?),
        name: r.get(2)?,
        description: r.get(3)?,
        admin_state_up: r.get(4)?,
        shared: r.get(5)?,
        external: r.get(6)?,
        mtu: r.get(7)?,
        port_security: r.get(8)?,
        is_default: r.get(9)?,
        subnets: Vec::new(),
        tags: Vec::new(),
        stamp: stamp(r, 10)?,
    })
}

fn fill(c: &Connection, mut v: Vec<NetworkRec>) -> Result<Vec<NetworkRec>> {
    let ids: Vec<String> = v.iter().map(|n| n.id.clone()).collect();
    let mut tags = tags_of(c, &ids)?;
    let mut subnets: HashMap<String, Vec<String>> = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut st = c.prepare(&format!(
            "SELECT network_id, id FROM net_subnets WHERE network_id IN ({}) ORDER BY created_at, id",
            marks(chunk.len())
        ))?;
        let rows = st.query_map(params_from_iter(chunk.iter()), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (n, s) = row?;
            subnets.entry(n).or_default().push(s);
        }
    }
    for n in &mut v {
        n.tags = tags.remove(&n.id).unwrap_or_default();
        n.subnets = subnets.remove(&n.id).unwrap_or_default();
    }
    Ok(v)
}

/// The networks `scope` sees: a project sees its own, the shared and the external ones.
pub fn list_networks(c: &Connection, scope: &Scope) -> Result<Vec<NetworkRec>> {
    let v = match scope.project() {
        None => {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLS} FROM net_networks n ORDER BY n.created_at, n.id"
            ))?;
            st.query_map([], row)?
                .collect::<rusqlite::Result<Vec<_>>>()?
        }
        Some(p) => {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLS} FROM net_networks n
                 WHERE n.project_id = ?1 OR n.shared = 1 OR n.external = 1
                 ORDER BY n.created_at, n.id"
            ))?;
            st.query_map([p], row)?
                .collect::<rusqlite::Result<Vec<_>>>()?
        }
    };
    fill(c, v)
}

/// One network as `scope` sees it.
pub fn get_network(c: &Connection, scope: &Scope, id: &str) -> Result<Option<NetworkRec>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {COLS} FROM net_networks n WHERE n.id = ?1"
    ))?;
    let Some(n) = st.query_row([id], row).optional()? else {
        return Ok(None);
    };
    if let Some(p) = scope.project()
        && n.project_id.as_str() != p
        && !n.shared
        && !n.external
    {
        return Ok(None);
    }
    Ok(fill(c, vec![n])?.pop())
}

pub fn insert_network(c: &Connection, n: &NetworkRec) -> Result<()> {
    let t = now();
    c.execute(
        "INSERT INTO net_networks (id, project_id, name, description, admin_state_up, shared,
            external, mtu, port_security, is_default, revision, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 1, ?11, ?11)",
        params![
            n.id,
            n.project_id.as_str(),
            n.name,
            n.description,
            n.admin_state_up,
            n.shared,
            n.external,
            n.mtu,
            n.port_security,
            n.is_default,
            t
        ],
    )
    .map_err(Error::from_write)?;
    for tag in &n.tags {
        c.execute(
            "INSERT OR IGNORE INTO net_tags (resource_id, tag) VALUES (?1, ?2)",
            params![n.id, tag],
        )?;
    }
    Ok(())
}

/// Writes the fields an update may change and bumps the revision.
pub fn update_network(c: &Connection, n: &NetworkRec) -> Result<()> {
    c.execute(
        "UPDATE net_networks SET name = ?2, description = ?3, admin_state_up = ?4, shared = ?5,
            external = ?6, mtu = ?7, port_security = ?8 WHERE id = ?1",
        params![
            n.id,
            n.name,
            n.description,
            n.admin_state_up,
            n.shared,
            n.external,
            n.mtu,
            n.port_security
        ],
    )?;
    touch(c, "net_networks", &n.id)
}

/// The ids of the ports on a network other than onebox's own DHCP ports.
pub fn network_port_ids(c: &Connection, id: &str) -> Result<Vec<String>> {
    let mut st = c.prepare_cached(
        "SELECT id FROM net_ports WHERE network_id = ?1 AND device_owner != 'network:dhcp'
         ORDER BY created_at, id",
    )?;
    Ok(st
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Deletes a network with its subnets and tags (the caller checked it has no ports).
pub fn delete_network(c: &Connection, id: &str) -> Result<bool> {
    let subnets: Vec<String> = {
        let mut st = c.prepare_cached("SELECT id FROM net_subnets WHERE network_id = ?1")?;
        st.query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    c.execute(
        "DELETE FROM net_ports WHERE network_id = ?1 AND device_owner = 'network:dhcp'",
        [id],
    )?;
    for s in &subnets {
        drop_tags(c, s)?;
    }
    c.execute("DELETE FROM net_subnets WHERE network_id = ?1", [id])?;
    drop_tags(c, id)?;
    let n = c
        .execute("DELETE FROM net_networks WHERE id = ?1", [id])
        .map_err(Error::from_write)?;
    Ok(n > 0)
}

/// The project's default network (`is_default`), if made.
pub fn default_network(c: &Connection, project: &ProjectId) -> Result<Option<NetworkRec>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {COLS} FROM net_networks n WHERE n.project_id = ?1 AND n.is_default = 1
         ORDER BY n.created_at LIMIT 1"
    ))?;
    let n = st.query_row([project.as_str()], row).optional()?;
    Ok(match n {
        Some(n) => fill(c, vec![n])?.pop(),
        None => None,
    })
}

/// Deletes every network resource of a project (its servers are gone): floating IPs,
/// routers, ports, subnets, networks, security groups, tags and quotas.
pub fn delete_project_resources(c: &Connection, project: &ProjectId) -> Result<()> {
    let p = project.as_str();
    for sql in [
        "DELETE FROM net_tags WHERE resource_id IN (
            SELECT id FROM net_networks WHERE project_id = ?1 UNION ALL
            SELECT id FROM net_subnets WHERE project_id = ?1 UNION ALL
            SELECT id FROM net_ports WHERE project_id = ?1 UNION ALL
            SELECT id FROM net_routers WHERE project_id = ?1 UNION ALL
            SELECT id FROM net_floating_ips WHERE project_id = ?1 UNION ALL
            SELECT id FROM net_security_groups WHERE project_id = ?1)",
        "DELETE FROM net_floating_ips WHERE project_id = ?1",
        "DELETE FROM net_ports WHERE device_owner = 'network:floatingip'
            AND device_id NOT IN (SELECT id FROM net_floating_ips WHERE project_id != ?1)",
        "UPDATE net_floating_ips SET port_id = NULL, fixed_ip_address = NULL, router_id = NULL
            WHERE port_id IN (SELECT id FROM net_ports WHERE project_id = ?1)",
        "DELETE FROM net_ports WHERE device_id IN (SELECT id FROM net_routers WHERE project_id = ?1)",
        "DELETE FROM net_routers WHERE project_id = ?1",
        "DELETE FROM net_ports WHERE project_id = ?1
            OR network_id IN (SELECT id FROM net_networks WHERE project_id = ?1)",
        "DELETE FROM net_subnets WHERE network_id IN (SELECT id FROM net_networks WHERE project_id = ?1)",
        "DELETE FROM net_subnets WHERE project_id = ?1",
        "DELETE FROM net_networks WHERE project_id = ?1",
        "DELETE FROM net_sg_rules WHERE remote_group_id IN (
            SELECT id FROM net_security_groups WHERE project_id = ?1)",
        "DELETE FROM net_port_security_groups WHERE security_group_id IN (
            SELECT id FROM net_security_groups WHERE project_id = ?1)",
        "DELETE FROM net_security_groups WHERE project_id = ?1",
        "DELETE FROM net_quotas WHERE project_id = ?1",
    ] {
        c.execute(sql, [p])?;
    }
    Ok(())
}

/// Whether a router has its gateway on this network.
pub fn network_has_routers(c: &Connection, id: &str) -> Result<bool> {
    Ok(c.query_row(
        "SELECT 1 FROM net_routers WHERE external_network_id = ?1 LIMIT 1",
        [id],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}
