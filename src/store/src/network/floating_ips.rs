//! Floating IPs: the row and its port on the external network (`network:floatingip`,
//! device = the floating IP, no project, so no member sees or deletes it).

use super::*;

const COLS: &str = "id, project_id, floating_network_id, floating_port_id, floating_ip_address,
    port_id, fixed_ip_address, router_id, description, revision, created_at, updated_at";

fn row(r: &Row<'_>) -> rusqlite::Result<FloatingIpRec> {
    Ok(FloatingIpRec {
        id: r.get(0)?,
        project_id: ProjectId::new(r.get::<_, String>(1)?),
        floating_network_id: r.get(2)?,
        floating_port_id: r.get(3)?,
        floating_ip_address: r
            .get::<_, String>(4)?
            .parse()
            .unwrap_or(Ipv4Addr::UNSPECIFIED),
        port_id: r.get(5)?,
        fixed_ip_address: r.get::<_, Option<String>>(6)?.and_then(|a| a.parse().ok()),
        router_id: r.get(7)?,
        description: r.get(8)?,
        tags: Vec::new(),
        stamp: stamp(r, 9)?,
    })
}

fn fill(c: &Connection, mut v: Vec<FloatingIpRec>) -> Result<Vec<FloatingIpRec>> {
    let ids: Vec<String> = v.iter().map(|n| n.id.clone()).collect();
    let mut tags = tags_of(c, &ids)?;
    for f in &mut v {
        f.tags = tags.remove(&f.id).unwrap_or_default();
    }
    Ok(v)
}

/// The floating IPs `scope` sees: its project's.
pub fn list_floating_ips(c: &Connection, scope: &Scope) -> Result<Vec<FloatingIpRec>> {
    let v = match scope.project() {
        None => {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLS} FROM net_floating_ips ORDER BY created_at, id"
            ))?;
            st.query_map([], row)?
                .collect::<rusqlite::Result<Vec<_>>>()?
        }
        Some(p) => {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLS} FROM net_floating_ips WHERE project_id = ?1 ORDER BY created_at, id"
            ))?;
            st.query_map([p], row)?
                .collect::<rusqlite::Result<Vec<_>>>()?
        }
    };
    fill(c, v)
}

pub fn get_floating_ip(c: &Connection, scope: &Scope, id: &str) -> Result<Option<FloatingIpRec>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {COLS} FROM net_floating_ips WHERE id = ?1"
    ))?;
    let Some(f) = st.query_row([id], row).optional()? else {
        return Ok(None);
    };
    if let Some(p) = scope.project()
        && f.project_id.as_str() != p
    {
        return Ok(None);
    }
    Ok(fill(c, vec![f])?.pop())
}

/// The floating IP on this fixed address of this port, if any.
pub fn floating_on(c: &Connection, port: &str, fixed: Ipv4Addr) -> Result<Option<String>> {
    Ok(c.query_row(
        "SELECT id FROM net_floating_ips WHERE port_id = ?1 AND fixed_ip_address = ?2",
        params![port, fixed.to_string()],
        |r| r.get(0),
    )
    .optional()?)
}

/// Inserts a floating IP (its port is inserted first by the caller).
pub fn insert_floating_ip(c: &Connection, f: &FloatingIpRec) -> Result<()> {
    let t = now();
    c.execute(
        "INSERT INTO net_floating_ips (id, project_id, floating_network_id, floating_port_id,
            floating_ip_address, port_id, fixed_ip_address, router_id, description, revision,
            created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10, ?10)",
        params![
            f.id,
            f.project_id.as_str(),
            f.floating_network_id,
            f.floating_port_id,
            f.floating_ip_address.to_string(),
            f.port_id,
            f.fixed_ip_address.map(|a| a.to_string()),
            f.router_id,
            f.description,
            t
        ],
    )
    .map_err(Error::from_write)?;
    for tag in &f.tags {
        c.execute(
            "INSERT OR IGNORE INTO net_tags (resource_id, tag) VALUES (?1, ?2)",
            params![f.id, tag],
        )?;
    }
    Ok(())
}

/// Writes the association and description and bumps the revision.
pub fn update_floating_ip(c: &Connection, f: &FloatingIpRec) -> Result<()> {
    c.execute(
        "UPDATE net_floating_ips SET port_id = ?2, fixed_ip_address = ?3, router_id = ?4,
            description = ?5 WHERE id = ?1",
        params![
            f.id,
            f.port_id,
            f.fixed_ip_address.map(|a| a.to_string()),
            f.router_id,
            f.description
        ],
    )
    .map_err(Error::from_write)?;
    touch(c, "net_floating_ips", &f.id)
}

/// Deletes a floating IP with its port and tags.
pub fn delete_floating_ip(c: &Connection, id: &str) -> Result<bool> {
    let port: Option<String> = c
        .query_row(
            "SELECT floating_port_id FROM net_floating_ips WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    drop_tags(c, id)?;
    let n = c.execute("DELETE FROM net_floating_ips WHERE id = ?1", [id])?;
    if let Some(p) = port {
        c.execute("DELETE FROM net_ports WHERE id = ?1", [p])?;
    }
    Ok(n > 0)
}
