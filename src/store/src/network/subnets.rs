//! Subnets.

use super::*;

const COLS: &str = "id, network_id, project_id, name, description, ip_version, cidr, gateway_ip,
    enable_dhcp, allocation_pools, dns_nameservers, host_routes, revision, created_at, updated_at";

fn pools_from(s: &str) -> Vec<Pool> {
    let v: Vec<serde_json::Value> = serde_json::from_str(s).unwrap_or_default();
    v.iter()
        .filter_map(|p| {
            Some(Pool {
                start: p.get("start")?.as_str()?.parse().ok()?,
                end: p.get("end")?.as_str()?.parse().ok()?,
            })
        })
        .collect()
}

fn pools_to(p: &[Pool]) -> String {
    serde_json::Value::Array(
        p.iter()
            .map(|p| serde_json::json!({"start": p.start.to_string(), "end": p.end.to_string()}))
            .collect(),
    )
    .to_string()
}

fn routes_from(s: &str) -> Vec<HostRoute> {
    let v: Vec<serde_json::Value> = serde_json::from_str(s).unwrap_or_default();
    v.iter()
        .filter_map(|p| {
            Some(HostRoute {
                destination: p.get("destination")?.as_str()?.to_owned(),
                nexthop: p.get("nexthop")?.as_str()?.to_owned(),
            })
        })
        .collect()
}

fn routes_to(p: &[HostRoute]) -> String {
    serde_json::Value::Array(
        p.iter()
            .map(|p| serde_json::json!({"destination": p.destination, "nexthop": p.nexthop}))
            .collect(),
    )
    .to_string()
}

fn row(r: &Row<'_>) -> rusqlite::Result<SubnetRec> {
    let cidr: String = r.get(6)?;
    Ok(SubnetRec {
        id: r.get(0)?,
        network_id: r.get(1)?,
        project_id: ProjectId::new(r.get::<_, String>(2)?),
        name: r.get(3)?,
        description: r.get(4)?,
        ip_version: r.get(5)?,
        cidr: Cidr::parse(&cidr, false).unwrap_or(Cidr {
            addr: Ipv4Addr::UNSPECIFIED,
            len: 32,
        }),
        gateway_ip: r.get::<_, Option<String>>(7)?.and_then(|g| g.parse().ok()),
        enable_dhcp: r.get(8)?,
        allocation_pools: pools_from(&r.get::<_, String>(9)?),
        dns_nameservers: parse_list(&r.get::<_, String>(10)?),
        host_routes: routes_from(&r.get::<_, String>(11)?),
        tags: Vec::new(),
        stamp: stamp(r, 12)?,
    })
}

fn fill(c: &Connection, mut v: Vec<SubnetRec>) -> Result<Vec<SubnetRec>> {
    let ids: Vec<String> = v.iter().map(|n| n.id.clone()).collect();
    let mut tags = tags_of(c, &ids)?;
    for s in &mut v {
        s.tags = tags.remove(&s.id).unwrap_or_default();
    }
    Ok(v)
}

/// The subnets `scope` sees: those of the networks it sees.
pub fn list_subnets(c: &Connection, scope: &Scope) -> Result<Vec<SubnetRec>> {
    let v = match scope.project() {
        None => {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLS} FROM net_subnets ORDER BY created_at, id"
            ))?;
            st.query_map([], row)?
                .collect::<rusqlite::Result<Vec<_>>>()?
        }
        Some(p) => {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLS} FROM net_subnets WHERE project_id = ?1 OR network_id IN (
                    SELECT id FROM net_networks WHERE shared = 1 OR external = 1)
                 ORDER BY created_at, id"
            ))?;
            st.query_map([p], row)?
                .collect::<rusqlite::Result<Vec<_>>>()?
        }
    };
    fill(c, v)
}

/// The subnets of one network, oldest first.
pub fn network_subnets(c: &Connection, network: &str) -> Result<Vec<SubnetRec>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {COLS} FROM net_subnets WHERE network_id = ?1 ORDER BY created_at, id"
    ))?;
    let v = st
        .query_map([network], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    fill(c, v)
}

pub fn get_subnet(c: &Connection, scope: &Scope, id: &str) -> Result<Option<SubnetRec>> {
    let mut st = c.prepare_cached(&format!("SELECT {COLS} FROM net_subnets WHERE id = ?1"))?;
    let Some(s) = st.query_row([id], row).optional()? else {
        return Ok(None);
    };
    if let Some(p) = scope.project()
        && s.project_id.as_str() != p
        && get_network(c, scope, &s.network_id)?.is_none()
    {
        return Ok(None);
    }
    Ok(fill(c, vec![s])?.pop())
}

/// Every subnet's CIDR in a project (for the overlap check) with its network.
pub fn project_subnet_cidrs(c: &Connection, project: &ProjectId) -> Result<Vec<(String, Cidr)>> {
    let mut st = c.prepare_cached(
        "SELECT s.network_id, s.cidr FROM net_subnets s JOIN net_networks n ON n.id = s.network_id
         WHERE n.project_id = ?1",
    )?;
    let rows = st.query_map([project.as_str()], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut v = Vec::new();
    for row in rows {
        let (n, c) = row?;
        if let Some(c) = Cidr::parse(&c, false) {
            v.push((n, c));
        }
    }
    Ok(v)
}

/// Every subnet CIDR on the box.
pub fn all_subnet_cidrs(c: &Connection) -> Result<Vec<Cidr>> {
    let mut st = c.prepare_cached("SELECT cidr FROM net_subnets")?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    let mut v = Vec::new();
    for row in rows {
        if let Some(c) = Cidr::parse(&row?, false) {
            v.push(c);
        }
    }
    Ok(v)
}

pub fn insert_subnet(c: &Connection, s: &SubnetRec) -> Result<()> {
    let t = now();
    c.execute(
        "INSERT INTO net_subnets (id, network_id, project_id, name, description, ip_version, cidr,
            gateway_ip, enable_dhcp, allocation_pools, dns_nameservers, host_routes, revision,
            created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 0, ?13, ?13)",
        params![
            s.id,
            s.network_id,
            s.project_id.as_str(),
            s.name,
            s.description,
            s.ip_version,
            s.cidr.to_string(),
            s.gateway_ip.map(|g| g.to_string()),
            s.enable_dhcp,
            pools_to(&s.allocation_pools),
            json_list(&s.dns_nameservers),
            routes_to(&s.host_routes),
            t
        ],
    )
    .map_err(Error::from_write)?;
    for tag in &s.tags {
        c.execute(
            "INSERT OR IGNORE INTO net_tags (resource_id, tag) VALUES (?1, ?2)",
            params![s.id, tag],
        )?;
    }
    touch(c, "net_networks", &s.network_id)
}

pub fn update_subnet(c: &Connection, s: &SubnetRec) -> Result<()> {
    c.execute(
        "UPDATE net_subnets SET name = ?2, description = ?3, gateway_ip = ?4, enable_dhcp = ?5,
            allocation_pools = ?6, dns_nameservers = ?7, host_routes = ?8 WHERE id = ?1",
        params![
            s.id,
            s.name,
            s.description,
            s.gateway_ip.map(|g| g.to_string()),
            s.enable_dhcp,
            pools_to(&s.allocation_pools),
            json_list(&s.dns_nameservers),
            routes_to(&s.host_routes)
        ],
    )?;
    touch(c, "net_subnets", &s.id)
}

/// The ports holding an address on a subnet.
pub fn subnet_port_ids(c: &Connection, id: &str) -> Result<Vec<String>> {
    let mut st = c.prepare_cached(
        "SELECT DISTINCT i.port_id FROM net_ips i JOIN net_ports p ON p.id = i.port_id
         WHERE i.subnet_id = ?1 AND p.device_owner != 'network:dhcp'",
    )?;
    Ok(st
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

pub fn delete_subnet(c: &Connection, id: &str) -> Result<bool> {
    let network: Option<String> = c
        .query_row(
            "SELECT network_id FROM net_subnets WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    drop_tags(c, id)?;
    let n = c
        .execute("DELETE FROM net_subnets WHERE id = ?1", [id])
        .map_err(Error::from_write)?;
    if let Some(net) = network {
        touch(c, "net_networks", &net)?;
    }
    Ok(n > 0)
}
