//! Project networks and the ports servers hold on them.

use super::*;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub project_id: Option<ProjectId>,
    pub cidr: String,
    pub gateway: String,
}

pub(super) fn network_row(r: &Row<'_>) -> rusqlite::Result<Network> {
    Ok(Network {
        id: r.get(0)?,
        name: r.get(1)?,
        project_id: r.get::<_, Option<String>>(2)?.map(ProjectId::new),
        cidr: r.get(3)?,
        gateway: r.get(4)?,
    })
}

pub fn project_networks(c: &Connection, p: &ProjectId) -> Result<Vec<Network>> {
    let mut st = c.prepare_cached(
        "SELECT id, name, project_id, cidr, gateway FROM networks
         WHERE project_id = ?1 OR project_id IS NULL ORDER BY created_at, id",
    )?;
    let rows = st.query_map([p.as_str()], network_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn network_cidrs(c: &Connection) -> Result<Vec<String>> {
    let mut st = c.prepare_cached("SELECT cidr FROM networks")?;
    let rows = st.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn insert_network(c: &Connection, n: &Network) -> Result<()> {
    c.execute(
        "INSERT INTO networks (id, name, project_id, cidr, gateway, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            n.id,
            n.name,
            n.project_id.as_ref().map(|p| p.as_str()),
            n.cidr,
            n.gateway,
            ts(Utc::now())
        ],
    )
    .map_err(Error::from_write)?;
    Ok(())
}

pub fn used_addresses(c: &Connection, network_id: &str) -> Result<Vec<String>> {
    let mut st = c.prepare_cached("SELECT address FROM ports WHERE network_id = ?1")?;
    let rows = st.query_map([network_id], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn mac_taken(c: &Connection, mac: &str) -> Result<bool> {
    Ok(
        c.query_row("SELECT 1 FROM ports WHERE mac = ?1", [mac], |_| Ok(()))
            .optional()?
            .is_some(),
    )
}

pub fn insert_port(
    c: &Connection,
    server: &ServerId,
    network_id: &str,
    address: &str,
    mac: &str,
    position: u32,
) -> Result<()> {
    c.execute(
        "INSERT INTO ports (server_id, network_id, address, mac, position) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![server.as_str(), network_id, address, mac, position],
    )
    .map_err(Error::from_write)?;
    Ok(())
}

/// A server's port with its network, as a backend needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRow {
    pub network: Network,
    pub address: String,
    pub mac: String,
}

/// The ports of a server in attachment order.
pub fn server_ports(c: &Connection, server: &ServerId) -> Result<Vec<PortRow>> {
    let mut st = c.prepare_cached(
        "SELECT n.id, n.name, n.project_id, n.cidr, n.gateway, p.address, p.mac
         FROM ports p JOIN networks n ON n.id = p.network_id
         WHERE p.server_id = ?1 ORDER BY p.position",
    )?;
    let rows = st.query_map([server.as_str()], |r| {
        Ok(PortRow {
            network: network_row(r)?,
            address: r.get(5)?,
            mac: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every network, for backends that build one bridge per network.
pub fn all_networks(c: &Connection) -> Result<Vec<Network>> {
    let mut st = c.prepare_cached(
        "SELECT id, name, project_id, cidr, gateway FROM networks ORDER BY created_at, id",
    )?;
    let rows = st.query_map([], network_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn release_ports(c: &Connection, server: &ServerId) -> Result<()> {
    c.execute("DELETE FROM ports WHERE server_id = ?1", [server.as_str()])?;
    Ok(())
}

/// The live server holding a port with this address, and the port's MAC (for the metadata
/// service, which knows a guest by the address it speaks from). Addresses are unique across
/// networks: every network has its own CIDR.
pub fn server_by_port_address(c: &Connection, addr: &str) -> Result<Option<(ServerId, String)>> {
    let mut st = c.prepare_cached(
        "SELECT p.server_id, p.mac FROM ports p JOIN servers s ON s.id = p.server_id
         WHERE p.address = ?1 AND s.deleted = 0",
    )?;
    let mut rows = st.query_map([addr], |r| {
        Ok((ServerId::from_stored(r.get(0)?), r.get::<_, String>(1)?))
    })?;
    Ok(rows.next().transpose()?)
}
