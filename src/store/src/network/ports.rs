//! Ports, their fixed addresses and groups, and address allocation (IPAM).

use super::*;

const COLS: &str = "id, network_id, project_id, name, description, mac_address, admin_state_up,
    status, device_id, device_owner, port_security, allowed_address_pairs, compute_owned,
    position, revision, created_at, updated_at";

fn pairs_from(s: &str) -> Vec<AddressPair> {
    let v: Vec<serde_json::Value> = serde_json::from_str(s).unwrap_or_default();
    v.iter()
        .filter_map(|p| {
            Some(AddressPair {
                ip_address: p.get("ip_address")?.as_str()?.to_owned(),
                mac_address: p.get("mac_address")?.as_str()?.to_owned(),
            })
        })
        .collect()
}

fn pairs_to(p: &[AddressPair]) -> String {
    serde_json::Value::Array(
        p.iter()
            .map(|p| serde_json::json!({"ip_address": p.ip_address, "mac_address": p.mac_address}))
            .collect(),
    )
    .to_string()
}

fn row(r: &Row<'_>) -> rusqlite::Result<PortRec> {
    Ok(PortRec {
        id: r.get(0)?,
        network_id: r.get(1)?,
        project_id: ProjectId::new(r.get::<_, String>(2)?),
        name: r.get(3)?,
        description: r.get(4)?,
        mac_address: r.get(5)?,
        admin_state_up: r.get(6)?,
        status: r.get(7)?,
        device_id: r.get(8)?,
        device_owner: r.get(9)?,
        port_security: r.get(10)?,
        allowed_address_pairs: pairs_from(&r.get::<_, String>(11)?),
        compute_owned: r.get(12)?,
        position: r.get(13)?,
        fixed_ips: Vec::new(),
        security_groups: Vec::new(),
        tags: Vec::new(),
        stamp: stamp(r, 14)?,
    })
}

fn fill(c: &Connection, mut v: Vec<PortRec>) -> Result<Vec<PortRec>> {
    let ids: Vec<String> = v.iter().map(|n| n.id.clone()).collect();
    let mut tags = tags_of(c, &ids)?;
    let mut ips: HashMap<String, Vec<FixedIp>> = HashMap::new();
    let mut groups: HashMap<String, Vec<String>> = HashMap::new();
    for chunk in ids.chunks(500) {
        let m = marks(chunk.len());
        let mut st = c.prepare(&format!(
            "SELECT port_id, subnet_id, ip_address FROM net_ips WHERE port_id IN ({m}) ORDER BY rowid"
        ))?;
        let rows = st.query_map(params_from_iter(chunk.iter()), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (p, s, a) = row?;
            if let Ok(a) = a.parse() {
                ips.entry(p).or_default().push(FixedIp {
                    subnet_id: s,
                    ip_address: a,
                });
            }
        }
        let mut st = c.prepare(&format!(
            "SELECT port_id, security_group_id FROM net_port_security_groups
             WHERE port_id IN ({m}) ORDER BY rowid"
        ))?;
        let rows = st.query_map(params_from_iter(chunk.iter()), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (p, g) = row?;
            groups.entry(p).or_default().push(g);
        }
    }
    for p in &mut v {
        p.tags = tags.remove(&p.id).unwrap_or_default();
        p.fixed_ips = ips.remove(&p.id).unwrap_or_default();
        p.security_groups = groups.remove(&p.id).unwrap_or_default();
    }
    Ok(v)
}

/// What a port listing may narrow in SQL (the rest is filtered by the caller).
#[derive(Clone, Debug, Default)]
pub struct PortQuery {
    pub device_id: Option<String>,
    pub network_id: Option<String>,
}

/// The ports `scope` sees: a project sees its own and those on its networks.
pub fn list_ports(c: &Connection, scope: &Scope, q: &PortQuery) -> Result<Vec<PortRec>> {
    let mut sql = format!("SELECT {COLS} FROM net_ports WHERE 1 = 1");
    let mut args: Vec<String> = Vec::new();
    if let Some(p) = scope.project() {
        args.push(p.to_owned());
        sql.push_str(&format!(
            " AND (project_id = ?{n} OR network_id IN (SELECT id FROM net_networks WHERE project_id = ?{n}))",
            n = args.len()
        ));
    }
    if let Some(d) = &q.device_id {
        args.push(d.clone());
        sql.push_str(&format!(" AND device_id = ?{}", args.len()));
    }
    if let Some(n) = &q.network_id {
        args.push(n.clone());
        sql.push_str(&format!(" AND network_id = ?{}", args.len()));
    }
    sql.push_str(" ORDER BY created_at, id");
    let mut st = c.prepare_cached(&sql)?;
    let v = st
        .query_map(params_from_iter(args.iter()), row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    fill(c, v)
}

pub fn get_port(c: &Connection, scope: &Scope, id: &str) -> Result<Option<PortRec>> {
    let mut st = c.prepare_cached(&format!("SELECT {COLS} FROM net_ports WHERE id = ?1"))?;
    let Some(p) = st.query_row([id], row).optional()? else {
        return Ok(None);
    };
    if let Some(proj) = scope.project()
        && p.project_id.as_str() != proj
    {
        let owner: Option<String> = c
            .query_row(
                "SELECT project_id FROM net_networks WHERE id = ?1",
                [&p.network_id],
                |r| r.get(0),
            )
            .optional()?;
        if owner.as_deref() != Some(proj) {
            return Ok(None);
        }
    }
    Ok(fill(c, vec![p])?.pop())
}

/// The ports of a device (a server, a router), in their order.
pub fn device_ports(c: &Connection, device: &str) -> Result<Vec<PortRec>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {COLS} FROM net_ports WHERE device_id = ?1 ORDER BY position, created_at, id"
    ))?;
    let v = st
        .query_map([device], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    fill(c, v)
}

pub fn mac_taken(c: &Connection, mac: &str) -> Result<bool> {
    Ok(c.query_row(
        "SELECT 1 FROM net_ports WHERE mac_address = ?1",
        [mac],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

/// A MAC no port has.
pub fn free_mac(c: &Connection) -> Result<String> {
    loop {
        let m = random_mac();
        if !mac_taken(c, &m)? {
            return Ok(m);
        }
    }
}

/// The answer of [`allocate_ip`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allocation {
    Address(Ipv4Addr),
    /// The asked address is held by another port.
    Taken,
    /// The asked address is not in the subnet (or is its network or broadcast address).
    Outside,
    /// No free address is left in the pools.
    Exhausted,
}

/// The addresses held on a network.
pub fn used_ips(c: &Connection, network: &str) -> Result<HashSet<u32>> {
    let mut st = c.prepare_cached("SELECT ip_address FROM net_ips WHERE network_id = ?1")?;
    let rows = st.query_map([network], |r| r.get::<_, String>(0))?;
    let mut set = HashSet::new();
    for row in rows {
        if let Ok(a) = row?.parse::<Ipv4Addr>() {
            set.insert(u32::from(a));
        }
    }
    Ok(set)
}

/// An address on `subnet`: `want` if it is free and inside the subnet, else the lowest free
/// one of the pools. The gateway address is never handed out.
pub fn allocate_ip(
    c: &Connection,
    subnet: &SubnetRec,
    want: Option<Ipv4Addr>,
) -> Result<Allocation> {
    let mut used = used_ips(c, &subnet.network_id)?;
    if let Some(g) = subnet.gateway_ip {
        if want == Some(g) {
            return Ok(Allocation::Taken);
        }
        used.insert(u32::from(g));
    }
    Ok(match want {
        Some(a) => {
            let x = u32::from(a);
            let c = &subnet.cidr;
            if !c.contains(a) || (c.len < 31 && (x == c.first() || x == c.last())) {
                Allocation::Outside
            } else if used.contains(&x) {
                Allocation::Taken
            } else {
                Allocation::Address(a)
            }
        }
        None => match first_free(&subnet.allocation_pools, &used) {
            Some(a) => Allocation::Address(a),
            None => Allocation::Exhausted,
        },
    })
}

/// Inserts a port with its addresses, groups and tags.
pub fn insert_port(c: &Connection, p: &PortRec) -> Result<()> {
    let t = now();
    c.execute(
        "INSERT INTO net_ports (id, network_id, project_id, name, description, mac_address,
            admin_state_up, status, device_id, device_owner, port_security,
            allowed_address_pairs, compute_owned, position, revision, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 1, ?15, ?15)",
        params![
            p.id,
            p.network_id,
            p.project_id.as_str(),
            p.name,
            p.description,
            p.mac_address,
            p.admin_state_up,
            p.status,
            p.device_id,
            p.device_owner,
            p.port_security,
            pairs_to(&p.allowed_address_pairs),
            p.compute_owned,
            p.position,
            t
        ],
    )
    .map_err(Error::from_write)?;
    set_port_ips(c, p)?;
    set_port_groups(c, &p.id, &p.security_groups)?;
    for tag in &p.tags {
        c.execute(
            "INSERT OR IGNORE INTO net_tags (resource_id, tag) VALUES (?1, ?2)",
            params![p.id, tag],
        )?;
    }
    Ok(())
}

fn set_port_ips(c: &Connection, p: &PortRec) -> Result<()> {
    c.execute("DELETE FROM net_ips WHERE port_id = ?1", [&p.id])?;
    for ip in &p.fixed_ips {
        c.execute(
            "INSERT INTO net_ips (port_id, subnet_id, network_id, ip_address) VALUES (?1, ?2, ?3, ?4)",
            params![p.id, ip.subnet_id, p.network_id, ip.ip_address.to_string()],
        )
        .map_err(Error::from_write)?;
    }
    Ok(())
}

pub fn set_port_groups(c: &Connection, port: &str, groups: &[String]) -> Result<()> {
    c.execute(
        "DELETE FROM net_port_security_groups WHERE port_id = ?1",
        [port],
    )?;
    for g in groups {
        c.execute(
            "INSERT OR IGNORE INTO net_port_security_groups (port_id, security_group_id) VALUES (?1, ?2)",
            params![port, g],
        )
        .map_err(Error::from_write)?;
    }
    Ok(())
}

/// Writes every field a port update may change (addresses and groups included) and bumps
/// the revision.
pub fn update_port(c: &Connection, p: &PortRec) -> Result<()> {
    c.execute(
        "UPDATE net_ports SET name = ?2, description = ?3, admin_state_up = ?4, status = ?5,
            device_id = ?6, device_owner = ?7, port_security = ?8, allowed_address_pairs = ?9,
            compute_owned = ?10, position = ?11, mac_address = ?12 WHERE id = ?1",
        params![
            p.id,
            p.name,
            p.description,
            p.admin_state_up,
            p.status,
            p.device_id,
            p.device_owner,
            p.port_security,
            pairs_to(&p.allowed_address_pairs),
            p.compute_owned,
            p.position,
            p.mac_address
        ],
    )
    .map_err(Error::from_write)?;
    set_port_ips(c, p)?;
    set_port_groups(c, &p.id, &p.security_groups)?;
    touch(c, "net_ports", &p.id)
}

/// Deletes a port; a floating IP on it is disassociated.
pub fn delete_port(c: &Connection, id: &str) -> Result<bool> {
    c.execute(
        "UPDATE net_floating_ips SET port_id = NULL, fixed_ip_address = NULL, router_id = NULL,
            revision = revision + 1, updated_at = ?2 WHERE port_id = ?1",
        params![id, now()],
    )?;
    drop_tags(c, id)?;
    let n = c
        .execute("DELETE FROM net_ports WHERE id = ?1", [id])
        .map_err(Error::from_write)?;
    Ok(n > 0)
}

/// A device's ports let go: the ones compute made are deleted, the others unbound (Nova's
/// `delete_on_termination`).
pub fn release_device_ports(c: &Connection, device: &str) -> Result<()> {
    for p in device_ports(c, device)? {
        if p.compute_owned {
            delete_port(c, &p.id)?;
        } else {
            c.execute(
                "UPDATE net_ports SET device_id = '', device_owner = '', status = 'DOWN',
                    position = 0, revision = revision + 1, updated_at = ?2 WHERE id = ?1",
                params![p.id, now()],
            )?;
        }
    }
    Ok(())
}

/// The live server holding a port with this address and the port's MAC (the metadata
/// service knows a guest by the address it speaks from).
pub fn device_by_address(c: &Connection, addr: &str) -> Result<Option<(String, String)>> {
    let mut st = c.prepare_cached(
        "SELECT p.device_id, p.mac_address FROM net_ips i JOIN net_ports p ON p.id = i.port_id
         JOIN servers s ON s.id = p.device_id
         WHERE i.ip_address = ?1 AND s.deleted = 0",
    )?;
    Ok(st
        .query_row([addr], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Ports by id, filled, in no particular order.
pub fn get_ports_by_id(c: &Connection, ids: &[String]) -> Result<Vec<PortRec>> {
    let mut v = Vec::new();
    for chunk in ids.chunks(500) {
        let mut st = c.prepare(&format!(
            "SELECT {COLS} FROM net_ports WHERE id IN ({})",
            marks(chunk.len())
        ))?;
        v.extend(
            st.query_map(params_from_iter(chunk.iter()), row)?
                .collect::<rusqlite::Result<Vec<_>>>()?,
        );
    }
    fill(c, v)
}

/// The ports plugged into servers (`compute:nova` with a device) with the subnet of their
/// first address: all of them, those of one subnet, or one port. What the host re-pins and
/// re-offers by DHCP when a port or a subnet changes, and at start.
pub fn plugged_ports(
    c: &Connection,
    subnet: Option<&str>,
    port: Option<&str>,
) -> Result<Vec<(PortRec, model::network::SubnetRec)>> {
    let mut st = c.prepare_cached(
        "SELECT id FROM net_ports WHERE device_owner = 'compute:nova' AND device_id != ''
         AND (?1 IS NULL OR id IN (SELECT port_id FROM net_ips WHERE subnet_id = ?1))
         AND (?2 IS NULL OR id = ?2) ORDER BY id",
    )?;
    let ids: Vec<String> = st
        .query_map(rusqlite::params![subnet, port], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::new();
    for p in get_ports_by_id(c, &ids)? {
        let Some(ip) = p.fixed_ips.first() else {
            continue;
        };
        if let Some(s) = super::get_subnet(c, &Scope::All, &ip.subnet_id)? {
            out.push((p, s));
        }
    }
    Ok(out)
}
