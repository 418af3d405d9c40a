//! Routers: the row, its gateway port (`network:router_gateway`, its address on the
//! external network) and its interface ports (`network:router_interface`), both ports with
//! the router as their device.

use super::*;

const COLS: &str = "id, project_id, name, description, admin_state_up, external_network_id,
    enable_snat, revision, created_at, updated_at";

fn row(r: &Row<'_>) -> rusqlite::Result<RouterRec> {
    Ok(RouterRec {
        id: r.get(0)?,
        project_id: ProjectId::new(r.get::<_, String>(1)?),
        name: r.get(2)?,
        description: r.get(3)?,
        admin_state_up: r.get(4)?,
        external_network_id: r.get(5)?,
        enable_snat: r.get(6)?,
        external_fixed_ips: Vec::new(),
        tags: Vec::new(),
        stamp: stamp(r, 7)?,
    })
}

fn fill(c: &Connection, mut v: Vec<RouterRec>) -> Result<Vec<RouterRec>> {
    let ids: Vec<String> = v.iter().map(|n| n.id.clone()).collect();
    let mut tags = tags_of(c, &ids)?;
    for r in &mut v {
        r.tags = tags.remove(&r.id).unwrap_or_default();
        r.external_fixed_ips = match router_gateway_port(c, &r.id)? {
            Some(p) => p.fixed_ips,
            None => Vec::new(),
        };
    }
    Ok(v)
}

/// The routers `scope` sees: its project's.
pub fn list_routers(c: &Connection, scope: &Scope) -> Result<Vec<RouterRec>> {
    let v = match scope.project() {
        None => {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLS} FROM net_routers ORDER BY created_at, id"
            ))?;
            st.query_map([], row)?
                .collect::<rusqlite::Result<Vec<_>>>()?
        }
        Some(p) => {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLS} FROM net_routers WHERE project_id = ?1 ORDER BY created_at, id"
            ))?;
            st.query_map([p], row)?
                .collect::<rusqlite::Result<Vec<_>>>()?
        }
    };
    fill(c, v)
}

pub fn get_router(c: &Connection, scope: &Scope, id: &str) -> Result<Option<RouterRec>> {
    let mut st = c.prepare_cached(&format!("SELECT {COLS} FROM net_routers WHERE id = ?1"))?;
    let Some(r) = st.query_row([id], row).optional()? else {
        return Ok(None);
    };
    if let Some(p) = scope.project()
        && r.project_id.as_str() != p
    {
        return Ok(None);
    }
    Ok(fill(c, vec![r])?.pop())
}

pub fn insert_router(c: &Connection, r: &RouterRec) -> Result<()> {
    let t = now();
    c.execute(
        "INSERT INTO net_routers (id, project_id, name, description, admin_state_up,
            external_network_id, enable_snat, revision, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?8)",
        params![
            r.id,
            r.project_id.as_str(),
            r.name,
            r.description,
            r.admin_state_up,
            r.external_network_id,
            r.enable_snat,
            t
        ],
    )
    .map_err(Error::from_write)?;
    for tag in &r.tags {
        c.execute(
            "INSERT OR IGNORE INTO net_tags (resource_id, tag) VALUES (?1, ?2)",
            params![r.id, tag],
        )?;
    }
    Ok(())
}

/// Writes the fields an update may change and bumps the revision.
pub fn update_router(c: &Connection, r: &RouterRec) -> Result<()> {
    c.execute(
        "UPDATE net_routers SET name = ?2, description = ?3, admin_state_up = ?4,
            external_network_id = ?5, enable_snat = ?6 WHERE id = ?1",
        params![
            r.id,
            r.name,
            r.description,
            r.admin_state_up,
            r.external_network_id,
            r.enable_snat
        ],
    )?;
    touch(c, "net_routers", &r.id)
}

/// Bumps a router's revision (an interface added or removed).
pub fn touch_router(c: &Connection, id: &str) -> Result<()> {
    touch(c, "net_routers", id)
}

/// Deletes a router with its gateway port and tags (the caller checked it has no
/// interfaces).
pub fn delete_router(c: &Connection, id: &str) -> Result<bool> {
    c.execute(
        "DELETE FROM net_ports WHERE device_id = ?1 AND device_owner = 'network:router_gateway'",
        [id],
    )?;
    drop_tags(c, id)?;
    let n = c
        .execute("DELETE FROM net_routers WHERE id = ?1", [id])
        .map_err(Error::from_write)?;
    Ok(n > 0)
}

fn router_ports(c: &Connection, router: &str, owner: &str) -> Result<Vec<PortRec>> {
    Ok(device_ports(c, router)?
        .into_iter()
        .filter(|p| p.device_owner == owner)
        .collect())
}

/// A router's gateway port, if it has one.
pub fn router_gateway_port(c: &Connection, router: &str) -> Result<Option<PortRec>> {
    Ok(router_ports(c, router, owner::ROUTER_GATEWAY)?.pop())
}

/// A router's interface ports, oldest first.
pub fn router_interfaces(c: &Connection, router: &str) -> Result<Vec<PortRec>> {
    router_ports(c, router, owner::ROUTER_INTERFACE)
}

/// The router with an interface on this network, and that interface's port.
pub fn network_router(c: &Connection, network: &str) -> Result<Option<(String, String)>> {
    let mut st = c.prepare_cached(
        "SELECT p.device_id, p.id FROM net_ports p JOIN net_routers r ON r.id = p.device_id
         WHERE p.network_id = ?1 AND p.device_owner = 'network:router_interface'
         ORDER BY p.created_at LIMIT 1",
    )?;
    Ok(st
        .query_row([network], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// The router that routes `subnet` (has an interface on it) and has its gateway on
/// `external`: the router a floating IP from `external` to an address of `subnet` goes
/// through.
pub fn router_for_floating(c: &Connection, subnet: &str, external: &str) -> Result<Option<String>> {
    let mut st = c.prepare_cached(
        "SELECT r.id FROM net_routers r JOIN net_ports p ON p.device_id = r.id
         JOIN net_ips i ON i.port_id = p.id
         WHERE p.device_owner = 'network:router_interface' AND i.subnet_id = ?1
            AND r.external_network_id = ?2
         ORDER BY r.created_at LIMIT 1",
    )?;
    Ok(st.query_row([subnet, external], |r| r.get(0)).optional()?)
}

/// Whether a floating IP goes through `router` to an address of `subnet` (or, with
/// `None`, through `router` at all).
pub fn router_floating_in_use(c: &Connection, router: &str, subnet: Option<&str>) -> Result<bool> {
    let found = match subnet {
        None => c
            .query_row(
                "SELECT 1 FROM net_floating_ips WHERE router_id = ?1 LIMIT 1",
                [router],
                |_| Ok(()),
            )
            .optional()?,
        Some(s) => c
            .query_row(
                "SELECT 1 FROM net_floating_ips f JOIN net_ips i
                    ON i.port_id = f.port_id AND i.ip_address = f.fixed_ip_address
                 WHERE f.router_id = ?1 AND i.subnet_id = ?2 LIMIT 1",
                params![router, s],
                |_| Ok(()),
            )
            .optional()?,
    };
    Ok(found.is_some())
}

/// What the host's edge must say: every router, each one's attached subnets
/// `(router, network, cidr)`, and every associated floating IP with the network of its fixed
/// address.
pub fn edge_state(c: &Connection) -> Result<EdgeRows> {
    let routers = list_routers(c, &Scope::All)?;
    let mut st = c.prepare_cached(
        "SELECT p.device_id, p.network_id, s.cidr FROM net_ports p
         JOIN net_ips i ON i.port_id = p.id JOIN net_subnets s ON s.id = i.subnet_id
         WHERE p.device_owner = 'network:router_interface'
         ORDER BY p.created_at, p.id",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut interfaces = Vec::new();
    for row in rows {
        let (router, network, cidr) = row?;
        if let Some(cidr) = Cidr::parse(&cidr, false) {
            interfaces.push((router, network, cidr));
        }
    }
    let mut floating = Vec::new();
    for f in list_floating_ips(c, &Scope::All)? {
        let Some(port) = &f.port_id else { continue };
        let network: Option<String> = c
            .query_row(
                "SELECT network_id FROM net_ports WHERE id = ?1",
                [port],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(n) = network {
            floating.push((f, n));
        }
    }
    Ok(EdgeRows {
        routers,
        interfaces,
        floating,
    })
}

/// The rows [`edge_state`] reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EdgeRows {
    pub routers: Vec<RouterRec>,
    /// `(router id, network id, subnet cidr)`.
    pub interfaces: Vec<(String, String, Cidr)>,
    /// Associated floating IPs with the network of their fixed address.
    pub floating: Vec<(FloatingIpRec, String)>,
}
