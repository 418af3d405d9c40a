//! SQL for the compute service: flavors, keypairs, quotas, networks and ports, servers with
//! their metadata, tags and faults, and instance actions.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use model::compute::{
    Address, Backend, Flavor, FlavorId, FlavorSortKey, Keypair, KeypairType, LockedBy, PowerState,
    Server, ServerFault, ServerFilter, ServerId, ServerSortKey, TaskState, Usage, VmState,
};
use model::{ProjectId, UserId};
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter, types::Value};

pub use model::compute::{ActionEvent, InstanceAction};

use crate::query_columns::{flavor_sort_column, server_condition, server_sort_column};
use crate::{Error, Result, parse_ts, ts};

// ---- flavors -------------------------------------------------------------------------------

const FLAVOR_COLS: &str = "flavorid, name, vcpus, ram_mb, disk_gb, ephemeral_gb, swap_mb, \
                           rxtx_factor, is_public, disabled, description";

fn flavor_row(r: &Row<'_>) -> rusqlite::Result<Flavor> {
    Ok(Flavor {
        id: FlavorId(r.get(0)?),
        name: r.get(1)?,
        vcpus: r.get(2)?,
        ram_mb: r.get(3)?,
        disk_gb: r.get(4)?,
        ephemeral_gb: r.get(5)?,
        swap_mb: r.get(6)?,
        rxtx_factor: r.get(7)?,
        is_public: r.get(8)?,
        disabled: r.get(9)?,
        description: r.get(10)?,
        extra_specs: BTreeMap::new(),
    })
}

fn load_specs(c: &Connection, f: &mut Flavor) -> Result<()> {
    let mut st =
        c.prepare_cached("SELECT key, value FROM flavor_extra_specs WHERE flavorid = ?1")?;
    let rows = st.query_map([&f.id.0], |r| Ok((r.get(0)?, r.get(1)?)))?;
    f.extra_specs = rows.collect::<rusqlite::Result<_>>()?;
    Ok(())
}

pub fn insert_flavor(c: &Connection, f: &Flavor) -> Result<()> {
    c.execute(
        &format!(
            "INSERT INTO flavors ({FLAVOR_COLS}, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
        ),
        params![
            f.id.0,
            f.name,
            f.vcpus,
            f.ram_mb,
            f.disk_gb,
            f.ephemeral_gb,
            f.swap_mb,
            f.rxtx_factor,
            f.is_public,
            f.disabled,
            f.description,
            ts(Utc::now())
        ],
    )
    .map_err(Error::from_write)?;
    for (k, v) in &f.extra_specs {
        set_extra_spec(c, &f.id, k, v)?;
    }
    Ok(())
}

pub fn get_flavor(c: &Connection, id: &FlavorId) -> Result<Option<Flavor>> {
    let f = c
        .prepare_cached(&format!(
            "SELECT {FLAVOR_COLS} FROM flavors WHERE flavorid = ?1"
        ))?
        .query_row([&id.0], flavor_row)
        .optional()?;
    match f {
        Some(mut f) => {
            load_specs(c, &mut f)?;
            Ok(Some(f))
        }
        None => Ok(None),
    }
}

pub fn flavor_name_taken(c: &Connection, name: &str) -> Result<bool> {
    Ok(
        c.query_row("SELECT 1 FROM flavors WHERE name = ?1", [name], |_| Ok(()))
            .optional()?
            .is_some(),
    )
}

/// Which flavors a listing may see.
#[derive(Clone, Debug)]
pub enum FlavorVisibility {
    /// Public flavors, and private ones shared with this project (a non-admin caller).
    PublicOrSharedWith(ProjectId),
    /// Admin: public only, private only, or all.
    Public,
    Private,
    All,
}

#[derive(Clone, Debug)]
pub struct FlavorQuery {
    pub visibility: FlavorVisibility,
    pub min_ram: Option<u64>,
    pub min_disk: Option<u64>,
    pub sort_key: FlavorSortKey,
    pub ascending: bool,
}

/// Every flavor matching the query, sorted; paging is the caller's.
pub fn list_flavors(c: &Connection, q: &FlavorQuery) -> Result<Vec<Flavor>> {
    let (vis, project): (&str, Option<&str>) = match &q.visibility {
        FlavorVisibility::PublicOrSharedWith(p) => (
            "(is_public = 1 OR flavorid IN (SELECT flavorid FROM flavor_projects WHERE project_id = ?3))",
            Some(p.as_str()),
        ),
        FlavorVisibility::Public => ("is_public = 1 AND ?3 IS NULL", None),
        FlavorVisibility::Private => ("is_public = 0 AND ?3 IS NULL", None),
        FlavorVisibility::All => ("?3 IS NULL", None),
    };
    let dir = if q.ascending { "ASC" } else { "DESC" };
    let sql = format!(
        "SELECT {FLAVOR_COLS} FROM flavors
         WHERE {vis} AND (?1 IS NULL OR ram_mb >= ?1) AND (?2 IS NULL OR disk_gb >= ?2)
         ORDER BY {key} {dir}, flavorid {dir}",
        key = flavor_sort_column(q.sort_key)
    );
    let mut st = c.prepare_cached(&sql)?;
    let rows = st.query_map(params![q.min_ram, q.min_disk, project], flavor_row)?;
    let mut out: Vec<Flavor> = rows.collect::<rusqlite::Result<_>>()?;
    let mut specs: HashMap<String, BTreeMap<String, String>> = HashMap::new();
    let mut st = c.prepare_cached("SELECT flavorid, key, value FROM flavor_extra_specs")?;
    for row in st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })? {
        let (f, k, v) = row?;
        specs.entry(f).or_default().insert(k, v);
    }
    for f in &mut out {
        if let Some(s) = specs.remove(&f.id.0) {
            f.extra_specs = s;
        }
    }
    Ok(out)
}

pub fn delete_flavor(c: &Connection, id: &FlavorId) -> Result<bool> {
    Ok(c.execute("DELETE FROM flavors WHERE flavorid = ?1", [&id.0])? > 0)
}

pub fn set_flavor_description(c: &Connection, id: &FlavorId, d: Option<&str>) -> Result<bool> {
    Ok(c.execute(
        "UPDATE flavors SET description = ?2 WHERE flavorid = ?1",
        params![id.0, d],
    )? > 0)
}

pub fn set_extra_spec(c: &Connection, id: &FlavorId, key: &str, value: &str) -> Result<()> {
    c.execute(
        "INSERT INTO flavor_extra_specs (flavorid, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (flavorid, key) DO UPDATE SET value = excluded.value",
        params![id.0, key, value],
    )
    .map_err(Error::from_write)?;
    Ok(())
}

pub fn delete_extra_spec(c: &Connection, id: &FlavorId, key: &str) -> Result<bool> {
    Ok(c.execute(
        "DELETE FROM flavor_extra_specs WHERE flavorid = ?1 AND key = ?2",
        params![id.0, key],
    )? > 0)
}

pub fn flavor_access(c: &Connection, id: &FlavorId) -> Result<Vec<ProjectId>> {
    let mut st = c.prepare_cached(
        "SELECT project_id FROM flavor_projects WHERE flavorid = ?1 ORDER BY project_id",
    )?;
    let rows = st.query_map([&id.0], |r| Ok(ProjectId::new(r.get::<_, String>(0)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Returns false when the project already had access.
pub fn add_flavor_access(c: &Connection, id: &FlavorId, p: &ProjectId) -> Result<bool> {
    Ok(c.execute(
        "INSERT OR IGNORE INTO flavor_projects (flavorid, project_id) VALUES (?1, ?2)",
        params![id.0, p.as_str()],
    )? > 0)
}

pub fn remove_flavor_access(c: &Connection, id: &FlavorId, p: &ProjectId) -> Result<bool> {
    Ok(c.execute(
        "DELETE FROM flavor_projects WHERE flavorid = ?1 AND project_id = ?2",
        params![id.0, p.as_str()],
    )? > 0)
}

// ---- keypairs ------------------------------------------------------------------------------

fn keypair_row(r: &Row<'_>) -> rusqlite::Result<Keypair> {
    let kind: String = r.get(2)?;
    Ok(Keypair {
        user_id: UserId::new(r.get::<_, String>(0)?),
        name: r.get(1)?,
        kind: if kind == "x509" {
            KeypairType::X509
        } else {
            KeypairType::Ssh
        },
        public_key: r.get(3)?,
        fingerprint: r.get(4)?,
        created_at: parse_ts(&r.get::<_, String>(5)?)?,
    })
}

const KEYPAIR_COLS: &str = "user_id, name, type, public_key, fingerprint, created_at";

pub fn insert_keypair(c: &Connection, k: &Keypair) -> Result<()> {
    c.execute(
        &format!("INSERT INTO keypairs ({KEYPAIR_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
        params![
            k.user_id.as_str(),
            k.name,
            k.kind.as_str(),
            k.public_key,
            k.fingerprint,
            ts(k.created_at)
        ],
    )
    .map_err(Error::from_write)?;
    Ok(())
}

pub fn get_keypair(c: &Connection, user: &UserId, name: &str) -> Result<Option<Keypair>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {KEYPAIR_COLS} FROM keypairs WHERE user_id = ?1 AND name = ?2"
    ))?
    .query_row([user.as_str(), name], keypair_row)
    .optional()?)
}

/// A user's keypairs by name, after `marker` when given.
pub fn list_keypairs(
    c: &Connection,
    user: &UserId,
    marker: Option<&str>,
    limit: Option<usize>,
) -> Result<Vec<Keypair>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {KEYPAIR_COLS} FROM keypairs WHERE user_id = ?1 AND (?2 IS NULL OR name > ?2)
         ORDER BY name LIMIT ?3"
    ))?;
    let limit = limit.map_or(-1, |l| l as i64);
    let rows = st.query_map(params![user.as_str(), marker, limit], keypair_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn count_keypairs(c: &Connection, user: &UserId) -> Result<i64> {
    Ok(c.query_row(
        "SELECT COUNT(*) FROM keypairs WHERE user_id = ?1",
        [user.as_str()],
        |r| r.get(0),
    )?)
}

pub fn delete_keypair(c: &Connection, user: &UserId, name: &str) -> Result<bool> {
    Ok(c.execute(
        "DELETE FROM keypairs WHERE user_id = ?1 AND name = ?2",
        [user.as_str(), name],
    )? > 0)
}

// ---- quotas --------------------------------------------------------------------------------

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

// ---- networks ------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub project_id: Option<ProjectId>,
    pub cidr: String,
    pub gateway: String,
}

fn network_row(r: &Row<'_>) -> rusqlite::Result<Network> {
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

/// The backend a server (live or being deleted) runs on.
pub fn server_backend(c: &Connection, id: &ServerId) -> Result<Option<Backend>> {
    Ok(c.query_row(
        "SELECT backend FROM servers WHERE id = ?1",
        [id.as_str()],
        |r| r.get::<_, String>(0),
    )
    .optional()?
    .and_then(|b| Backend::parse(&b)))
}

/// The project of a server (deleted or not).
pub fn server_project(c: &Connection, id: &ServerId) -> Result<Option<String>> {
    Ok(c.query_row(
        "SELECT project_id FROM servers WHERE id = ?1",
        [id.as_str()],
        |r| r.get::<_, String>(0),
    )
    .optional()?)
}

pub fn release_ports(c: &Connection, server: &ServerId) -> Result<()> {
    c.execute("DELETE FROM ports WHERE server_id = ?1", [server.as_str()])?;
    Ok(())
}

// ---- servers -------------------------------------------------------------------------------

const SERVER_COLS: &str = "id, name, project_id, user_id, flavor, image_id, vm_state, task_state, \
    power_state, backend, availability_zone, key_name, key_data, user_data, config_drive, \
    description, hostname, access_ipv4, access_ipv6, locked_by, locked_reason, reservation_id, \
    launch_index, progress, host, scheduler_hints, created_at, updated_at, launched_at, \
    terminated_at, deleted";

fn encode_flavor(f: &Flavor) -> String {
    serde_json::json!({
        "id": f.id.0, "name": f.name, "vcpus": f.vcpus, "ram_mb": f.ram_mb,
        "disk_gb": f.disk_gb, "ephemeral_gb": f.ephemeral_gb, "swap_mb": f.swap_mb,
        "rxtx_factor": f.rxtx_factor, "is_public": f.is_public, "description": f.description,
        "extra_specs": f.extra_specs,
    })
    .to_string()
}

fn decode_flavor(s: &str) -> rusqlite::Result<Flavor> {
    let v: serde_json::Value = serde_json::from_str(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, e.into())
    })?;
    let u = |k: &str| v[k].as_u64().unwrap_or(0);
    Ok(Flavor {
        id: FlavorId(v["id"].as_str().unwrap_or_default().to_owned()),
        name: v["name"].as_str().unwrap_or_default().to_owned(),
        vcpus: u("vcpus") as u32,
        ram_mb: u("ram_mb"),
        disk_gb: u("disk_gb"),
        ephemeral_gb: u("ephemeral_gb"),
        swap_mb: u("swap_mb"),
        rxtx_factor: v["rxtx_factor"].as_f64().unwrap_or(1.0),
        is_public: v["is_public"].as_bool().unwrap_or(true),
        disabled: false,
        description: v["description"].as_str().map(str::to_owned),
        extra_specs: v["extra_specs"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

fn opt_ts(s: Option<String>) -> rusqlite::Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_ts).transpose()
}

fn server_row(r: &Row<'_>) -> rusqlite::Result<Server> {
    let vm: String = r.get(6)?;
    let task: Option<String> = r.get(7)?;
    let backend: String = r.get(9)?;
    let locked_by: Option<String> = r.get(19)?;
    let hints: String = r.get(25)?;
    Ok(Server {
        id: ServerId::from_stored(r.get(0)?),
        name: r.get(1)?,
        project_id: ProjectId::new(r.get::<_, String>(2)?),
        user_id: UserId::new(r.get::<_, String>(3)?),
        flavor: decode_flavor(&r.get::<_, String>(4)?)?,
        image_id: r.get(5)?,
        vm_state: VmState::parse(&vm).unwrap_or(VmState::Error),
        task_state: task.as_deref().and_then(TaskState::parse),
        power_state: PowerState::from_code(r.get(8)?),
        backend: Backend::parse(&backend).unwrap_or(Backend::Fake),
        availability_zone: r.get(10)?,
        key_name: r.get(11)?,
        key_data: r.get(12)?,
        user_data: r.get(13)?,
        config_drive: r.get(14)?,
        description: r.get(15)?,
        hostname: r.get(16)?,
        access_ipv4: r.get(17)?,
        access_ipv6: r.get(18)?,
        locked_by: match locked_by.as_deref() {
            Some("admin") => Some(LockedBy::Admin),
            Some(_) => Some(LockedBy::Owner),
            None => None,
        },
        locked_reason: r.get(20)?,
        metadata: BTreeMap::new(),
        tags: Vec::new(),
        reservation_id: r.get(21)?,
        launch_index: r.get(22)?,
        progress: r.get(23)?,
        host: r.get(24)?,
        addresses: Vec::new(),
        scheduler_hints: serde_json::from_str(&hints).unwrap_or_default(),
        created_at: parse_ts(&r.get::<_, String>(26)?)?,
        updated_at: parse_ts(&r.get::<_, String>(27)?)?,
        launched_at: opt_ts(r.get(28)?)?,
        terminated_at: opt_ts(r.get(29)?)?,
        deleted: r.get(30)?,
        fault: None,
    })
}

/// Inserts a new server with its metadata and tags (ports are added separately).
pub fn insert_server(c: &Connection, s: &Server) -> Result<()> {
    c.prepare_cached(&format!(
        "INSERT INTO servers ({SERVER_COLS}, flavorid, vcpus, ram_mb) VALUES (
            ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
            ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34)"
    ))?
    .execute(params![
        s.id.as_str(),
        s.name,
        s.project_id.as_str(),
        s.user_id.as_str(),
        encode_flavor(&s.flavor),
        s.image_id,
        s.vm_state.as_str(),
        s.task_state.map(|t| t.as_str()),
        s.power_state.code(),
        s.backend.as_str(),
        s.availability_zone,
        s.key_name,
        s.key_data,
        s.user_data,
        s.config_drive,
        s.description,
        s.hostname,
        s.access_ipv4,
        s.access_ipv6,
        s.locked_by.map(|l| match l {
            LockedBy::Admin => "admin",
            LockedBy::Owner => "owner",
        }),
        s.locked_reason,
        s.reservation_id,
        s.launch_index,
        s.progress,
        s.host,
        serde_json::to_string(&s.scheduler_hints).unwrap_or_else(|_| "{}".into()),
        ts(s.created_at),
        ts(s.updated_at),
        s.launched_at.map(ts),
        s.terminated_at.map(ts),
        s.deleted,
        s.flavor.id.0,
        s.flavor.vcpus,
        s.flavor.ram_mb,
    ])
    .map_err(Error::from_write)?;
    for (k, v) in &s.metadata {
        set_metadata_item(c, &s.id, k, v)?;
    }
    for t in &s.tags {
        add_tag(c, &s.id, t)?;
    }
    Ok(())
}

/// Loads servers by id, with metadata, tags, addresses and faults, in the order given.
pub fn load_servers(c: &Connection, ids: &[String]) -> Result<Vec<Server>> {
    let mut out: Vec<Server> = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut by_id: HashMap<String, Server> = HashMap::with_capacity(chunk.len());
        {
            let mut st = c.prepare(&format!(
                "SELECT {SERVER_COLS} FROM servers WHERE id IN ({marks})"
            ))?;
            for s in st.query_map(params_from_iter(chunk.iter()), server_row)? {
                let s = s?;
                by_id.insert(s.id.as_str().to_owned(), s);
            }
        }
        {
            let mut st = c.prepare(&format!(
                "SELECT server_id, key, value FROM server_metadata WHERE server_id IN ({marks})"
            ))?;
            let rows = st.query_map(params_from_iter(chunk.iter()), |r| {
                Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?))
            })?;
            for row in rows {
                let (id, k, v) = row?;
                if let Some(s) = by_id.get_mut(&id) {
                    s.metadata.insert(k, v);
                }
            }
        }
        {
            let mut st = c.prepare(&format!(
                "SELECT server_id, tag FROM server_tags WHERE server_id IN ({marks}) ORDER BY tag"
            ))?;
            let rows = st.query_map(params_from_iter(chunk.iter()), |r| {
                Ok((r.get::<_, String>(0)?, r.get(1)?))
            })?;
            for row in rows {
                let (id, t) = row?;
                if let Some(s) = by_id.get_mut(&id) {
                    s.tags.push(t);
                }
            }
        }
        {
            let mut st = c.prepare(&format!(
                "SELECT p.server_id, n.name, p.address, p.mac FROM ports p JOIN networks n ON n.id = p.network_id
                 WHERE p.server_id IN ({marks}) ORDER BY p.position"
            ))?;
            let rows = st.query_map(params_from_iter(chunk.iter()), |r| {
                Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
            for row in rows {
                let (id, network, addr, mac): (String, String, String, String) = row?;
                if let Some(s) = by_id.get_mut(&id) {
                    let version = if addr.contains(':') { 6 } else { 4 };
                    s.addresses.push(Address {
                        network,
                        addr,
                        mac,
                        version,
                    });
                }
            }
        }
        {
            let mut st = c.prepare(&format!(
                "SELECT server_id, code, message, details, created_at FROM server_faults WHERE server_id IN ({marks})"
            ))?;
            let rows = st.query_map(params_from_iter(chunk.iter()), |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    ServerFault {
                        code: r.get(1)?,
                        message: r.get(2)?,
                        details: r.get(3)?,
                        created_at: parse_ts(&r.get::<_, String>(4)?)?,
                    },
                ))
            })?;
            for row in rows {
                let (id, f) = row?;
                if let Some(s) = by_id.get_mut(&id) {
                    s.fault = Some(f);
                }
            }
        }
        for id in chunk {
            if let Some(s) = by_id.remove(id) {
                out.push(s);
            }
        }
    }
    Ok(out)
}

pub fn get_server(c: &Connection, id: &ServerId) -> Result<Option<Server>> {
    Ok(load_servers(c, &[id.as_str().to_owned()])?.pop())
}

/// A filter that SQL applies. Values are bound, never spliced.
#[derive(Clone, Debug)]
pub enum Cond {
    Project(ProjectId),
    Deleted(bool),
    VmStates(Vec<VmState>),
    TaskStates(Vec<Option<TaskState>>),
    /// An exact match the API asked for.
    Is(ServerFilter),
    /// `updated_at >= t`
    ChangedSince(DateTime<Utc>),
    /// `updated_at <= t`
    ChangedBefore(DateTime<Utc>),
    /// The server has every tag.
    AllTags(Vec<String>),
    /// The server has at least one of the tags.
    AnyTags(Vec<String>),
    NotAllTags(Vec<String>),
    NotAnyTags(Vec<String>),
}

/// What a listing needs of each candidate before paging: the light columns Rust-side
/// filters (regexes) look at.
#[derive(Clone, Debug)]
pub struct ServerKey {
    pub id: String,
    pub name: String,
    pub hostname: String,
    pub key_name: Option<String>,
    pub addresses: Vec<String>,
}

/// The WHERE clause of a listing and its bound values. Values are bound, never spliced.
fn where_clause(conds: &[Cond]) -> (String, Vec<Value>) {
    let mut sql = String::from(" WHERE 1 = 1");
    let mut args: Vec<Value> = Vec::new();
    let push = |args: &mut Vec<Value>, v: Value| {
        args.push(v);
        format!("?{}", args.len())
    };
    for cond in conds {
        match cond {
            Cond::Project(p) => {
                let m = push(&mut args, Value::Text(p.to_string()));
                sql.push_str(&format!(" AND project_id = {m}"));
            }
            Cond::Deleted(d) => {
                let m = push(&mut args, Value::Integer(i64::from(*d)));
                sql.push_str(&format!(" AND deleted = {m}"));
            }
            Cond::VmStates(vs) => {
                let ms: Vec<String> = vs
                    .iter()
                    .map(|v| push(&mut args, Value::Text(v.as_str().into())))
                    .collect();
                sql.push_str(&format!(" AND vm_state IN ({})", ms.join(",")));
            }
            Cond::TaskStates(ts_) => {
                let mut parts = Vec::new();
                let named: Vec<String> = ts_
                    .iter()
                    .flatten()
                    .map(|t| push(&mut args, Value::Text(t.as_str().into())))
                    .collect();
                if !named.is_empty() {
                    parts.push(format!("task_state IN ({})", named.join(",")));
                }
                if ts_.iter().any(Option::is_none) {
                    parts.push("task_state IS NULL".into());
                }
                if parts.is_empty() {
                    parts.push("0".into());
                }
                sql.push_str(&format!(" AND ({})", parts.join(" OR ")));
            }
            Cond::Is(f) => {
                let c = server_condition(f, |v| push(&mut args, v));
                sql.push_str(&format!(" AND {c}"));
            }
            Cond::ChangedSince(t) => {
                let m = push(&mut args, Value::Text(ts(*t)));
                sql.push_str(&format!(" AND updated_at >= {m}"));
            }
            Cond::ChangedBefore(t) => {
                let m = push(&mut args, Value::Text(ts(*t)));
                sql.push_str(&format!(" AND updated_at <= {m}"));
            }
            Cond::AllTags(tags) | Cond::NotAllTags(tags) => {
                let ms: Vec<String> = tags
                    .iter()
                    .map(|t| push(&mut args, Value::Text(t.clone())))
                    .collect();
                let n = push(&mut args, Value::Integer(tags.len() as i64));
                let neg = if matches!(cond, Cond::NotAllTags(_)) {
                    "NOT "
                } else {
                    ""
                };
                sql.push_str(&format!(
                    " AND {neg}((SELECT COUNT(*) FROM server_tags t WHERE t.server_id = s.id AND t.tag IN ({})) = {n})",
                    ms.join(",")
                ));
            }
            Cond::AnyTags(tags) | Cond::NotAnyTags(tags) => {
                let ms: Vec<String> = tags
                    .iter()
                    .map(|t| push(&mut args, Value::Text(t.clone())))
                    .collect();
                let neg = if matches!(cond, Cond::NotAnyTags(_)) {
                    "NOT "
                } else {
                    ""
                };
                sql.push_str(&format!(
                    " AND {neg}EXISTS (SELECT 1 FROM server_tags t WHERE t.server_id = s.id AND t.tag IN ({}))",
                    ms.join(",")
                ));
            }
        }
    }
    (sql, args)
}

/// Candidates for a listing, in the requested order. `order` pairs are (key, ascending).
pub fn server_keys(
    c: &Connection,
    conds: &[Cond],
    order: &[(ServerSortKey, bool)],
    with_addresses: bool,
) -> Result<Vec<ServerKey>> {
    let (where_sql, args) = where_clause(conds);
    let mut sql = format!("SELECT id, name, hostname, key_name FROM servers s{where_sql}");
    let mut order_sql: Vec<String> = order
        .iter()
        .map(|(key, asc)| {
            let col = server_sort_column(*key);
            format!("{col} {}", if *asc { "ASC" } else { "DESC" })
        })
        .collect();
    let last_dir = order.last().is_some_and(|(_, a)| *a);
    order_sql.push(format!("seq {}", if last_dir { "ASC" } else { "DESC" }));
    sql.push_str(&format!(" ORDER BY {}", order_sql.join(", ")));
    let mut st = c.prepare(&sql)?;
    let rows = st.query_map(params_from_iter(args.iter()), |r| {
        Ok(ServerKey {
            id: r.get(0)?,
            name: r.get(1)?,
            hostname: r.get(2)?,
            key_name: r.get(3)?,
            addresses: Vec::new(),
        })
    })?;
    let mut keys: Vec<ServerKey> = rows.collect::<rusqlite::Result<_>>()?;
    if with_addresses {
        let mut by: HashMap<String, Vec<String>> = HashMap::new();
        let mut st = c.prepare_cached("SELECT server_id, address FROM ports")?;
        for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (id, a) = row?;
            by.entry(id).or_default().push(a);
        }
        for k in &mut keys {
            k.addresses = by.remove(&k.id).unwrap_or_default();
        }
    }
    Ok(keys)
}

/// One page of a listing in the default order (newest first), found by keyset in SQL:
/// the servers after `marker` that match `conds`, at most `limit`. `None` when the marker is
/// not a server of the listing's project (`conds`' `Project`, when it has one): another
/// project's server is no marker, as if it did not exist, so paging never tells one project
/// that another's server exists nor where it sits.
pub fn server_page_newest_first(
    c: &Connection,
    conds: &[Cond],
    marker: Option<&str>,
    limit: usize,
) -> Result<Option<Vec<String>>> {
    let (where_sql, mut args) = where_clause(conds);
    let mut sql = format!("SELECT id FROM servers s{where_sql}");
    if let Some(m) = marker {
        let scope: Vec<Cond> = conds
            .iter()
            .filter_map(|c| match c {
                Cond::Project(p) => Some(Cond::Project(p.clone())),
                _ => None,
            })
            .collect();
        let (scope_sql, mut scope_args) = where_clause(&scope);
        scope_args.push(Value::Text(m.to_owned()));
        let Some((created, seq)) = c
            .query_row(
                &format!(
                    "SELECT created_at, seq FROM servers s{scope_sql} AND id = ?{}",
                    scope_args.len()
                ),
                params_from_iter(scope_args.iter()),
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
            )
            .optional()?
        else {
            return Ok(None);
        };
        args.push(Value::Text(created));
        let ci = args.len();
        args.push(Value::Integer(seq));
        let si = args.len();
        sql.push_str(&format!(
            " AND (created_at < ?{ci} OR (created_at = ?{ci} AND seq < ?{si}))"
        ));
    }
    args.push(Value::Integer(limit as i64));
    sql.push_str(&format!(
        " ORDER BY created_at DESC, seq DESC LIMIT ?{}",
        args.len()
    ));
    let mut st = c.prepare(&sql)?;
    let rows = st.query_map(params_from_iter(args.iter()), |r| r.get(0))?;
    Ok(Some(rows.collect::<rusqlite::Result<_>>()?))
}

/// Moves a server from one task state to another, only if it is still in `from`: the task
/// state is the lock that keeps one task per server. Returns false if someone else moved it.
pub fn transition(
    c: &Connection,
    id: &ServerId,
    from: Option<TaskState>,
    vm: VmState,
    task: Option<TaskState>,
    power: Option<PowerState>,
) -> Result<bool> {
    let n = c
        .prepare_cached(
            "UPDATE servers SET vm_state = ?3, task_state = ?4,
                 power_state = COALESCE(?5, power_state), updated_at = ?6
             WHERE id = ?1 AND task_state IS ?2 AND deleted = 0",
        )?
        .execute(params![
            id.as_str(),
            from.map(|t| t.as_str()),
            vm.as_str(),
            task.map(|t| t.as_str()),
            power.map(PowerState::code),
            ts(Utc::now())
        ])?;
    Ok(n > 0)
}

/// Sets the task state of a server whose current states the caller has just checked.
pub fn set_task_state(
    c: &Connection,
    id: &ServerId,
    expect_vm: VmState,
    expect_task: Option<TaskState>,
    task: Option<TaskState>,
) -> Result<bool> {
    Ok(c.execute(
        "UPDATE servers SET task_state = ?4, updated_at = ?5
         WHERE id = ?1 AND vm_state = ?2 AND task_state IS ?3 AND deleted = 0",
        params![
            id.as_str(),
            expect_vm.as_str(),
            expect_task.map(|t| t.as_str()),
            task.map(|t| t.as_str()),
            ts(Utc::now())
        ],
    )? > 0)
}

pub fn set_power_state(c: &Connection, id: &ServerId, p: PowerState) -> Result<()> {
    c.execute(
        "UPDATE servers SET power_state = ?2 WHERE id = ?1",
        params![id.as_str(), p.code()],
    )?;
    Ok(())
}

pub fn set_launched(c: &Connection, id: &ServerId, at: DateTime<Utc>) -> Result<()> {
    c.execute(
        "UPDATE servers SET launched_at = ?2, progress = 100 WHERE id = ?1",
        params![id.as_str(), ts(at)],
    )?;
    Ok(())
}

/// Puts a live server into the `deleting` task state, whatever it was doing.
pub fn mark_deleting(c: &Connection, id: &ServerId) -> Result<bool> {
    Ok(c.execute(
        "UPDATE servers SET task_state = 'deleting', updated_at = ?2 WHERE id = ?1 AND deleted = 0",
        params![id.as_str(), ts(Utc::now())],
    )? > 0)
}

/// Marks a server deleted (the row stays, for `changes-since` and instance actions) and
/// releases its addresses.
pub fn mark_deleted(c: &Connection, id: &ServerId) -> Result<()> {
    let now = ts(Utc::now());
    c.execute(
        "UPDATE servers SET deleted = 1, vm_state = 'deleted', task_state = NULL,
             power_state = 0, terminated_at = ?2, updated_at = ?2 WHERE id = ?1",
        params![id.as_str(), now],
    )?;
    release_ports(c, id)?;
    Ok(())
}

/// Updates the fields `PUT /servers/{id}` may change. The lock is not one of them: it
/// changes only through [`set_lock`], so a rename never writes back a lock it read before
/// another request changed it.
pub fn update_server_fields(c: &Connection, s: &Server) -> Result<()> {
    c.execute(
        "UPDATE servers SET name = ?2, description = ?3, hostname = ?4, access_ipv4 = ?5,
             access_ipv6 = ?6, updated_at = ?7
         WHERE id = ?1",
        params![
            s.id.as_str(),
            s.name,
            s.description,
            s.hostname,
            s.access_ipv4,
            s.access_ipv6,
            ts(Utc::now())
        ],
    )?;
    Ok(())
}

/// Who holds a server's lock now. Read inside the write whose decision depends on it, so
/// the lock a decision saw is the lock its write commits against.
pub fn lock_holder(c: &Connection, id: &ServerId) -> Result<Option<LockedBy>> {
    let by: Option<Option<String>> = c
        .query_row(
            "SELECT locked_by FROM servers WHERE id = ?1",
            [id.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    Ok(by.flatten().map(|b| match b.as_str() {
        "admin" => LockedBy::Admin,
        _ => LockedBy::Owner,
    }))
}

/// Sets (or, with `None`, clears) a server's lock and its reason.
pub fn set_lock(
    c: &Connection,
    id: &ServerId,
    by: Option<LockedBy>,
    reason: Option<&str>,
) -> Result<()> {
    c.execute(
        "UPDATE servers SET locked_by = ?2, locked_reason = ?3, updated_at = ?4 WHERE id = ?1",
        params![
            id.as_str(),
            by.map(|l| match l {
                LockedBy::Admin => "admin",
                LockedBy::Owner => "owner",
            }),
            reason,
            ts(Utc::now())
        ],
    )?;
    Ok(())
}

pub fn touch_server(c: &Connection, id: &ServerId) -> Result<()> {
    c.execute(
        "UPDATE servers SET updated_at = ?2 WHERE id = ?1",
        params![id.as_str(), ts(Utc::now())],
    )?;
    Ok(())
}

pub fn set_fault(c: &Connection, id: &ServerId, f: &ServerFault) -> Result<()> {
    c.execute(
        "INSERT INTO server_faults (server_id, code, message, details, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (server_id) DO UPDATE SET code = excluded.code, message = excluded.message,
             details = excluded.details, created_at = excluded.created_at",
        params![id.as_str(), f.code, f.message, f.details, ts(f.created_at)],
    )?;
    Ok(())
}

pub fn set_metadata_item(c: &Connection, id: &ServerId, key: &str, value: &str) -> Result<()> {
    c.execute(
        "INSERT INTO server_metadata (server_id, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (server_id, key) DO UPDATE SET value = excluded.value",
        params![id.as_str(), key, value],
    )?;
    Ok(())
}

pub fn delete_metadata_item(c: &Connection, id: &ServerId, key: &str) -> Result<bool> {
    Ok(c.execute(
        "DELETE FROM server_metadata WHERE server_id = ?1 AND key = ?2",
        params![id.as_str(), key],
    )? > 0)
}

pub fn clear_metadata(c: &Connection, id: &ServerId) -> Result<()> {
    c.execute(
        "DELETE FROM server_metadata WHERE server_id = ?1",
        [id.as_str()],
    )?;
    Ok(())
}

pub fn add_tag(c: &Connection, id: &ServerId, tag: &str) -> Result<bool> {
    Ok(c.execute(
        "INSERT OR IGNORE INTO server_tags (server_id, tag) VALUES (?1, ?2)",
        params![id.as_str(), tag],
    )? > 0)
}

pub fn delete_tag(c: &Connection, id: &ServerId, tag: &str) -> Result<bool> {
    Ok(c.execute(
        "DELETE FROM server_tags WHERE server_id = ?1 AND tag = ?2",
        params![id.as_str(), tag],
    )? > 0)
}

pub fn clear_tags(c: &Connection, id: &ServerId) -> Result<()> {
    c.execute(
        "DELETE FROM server_tags WHERE server_id = ?1",
        [id.as_str()],
    )?;
    Ok(())
}

/// Replaces a server's flavor (a resize, or its revert). `held` is the flavor whose cores
/// and RAM count against the quota meanwhile (the larger of both while a resize awaits
/// confirmation).
pub fn set_flavor(c: &Connection, id: &ServerId, f: &Flavor, held: (u32, u64)) -> Result<()> {
    c.execute(
        "UPDATE servers SET flavor = ?2, flavorid = ?3, vcpus = ?4, ram_mb = ?5, updated_at = ?6
         WHERE id = ?1",
        params![
            id.as_str(),
            encode_flavor(f),
            f.id.0,
            held.0,
            held.1,
            ts(Utc::now())
        ],
    )?;
    Ok(())
}

/// Sets the cores and RAM a server counts against its project's quota.
pub fn set_held_resources(c: &Connection, id: &ServerId, vcpus: u32, ram_mb: u64) -> Result<()> {
    c.execute(
        "UPDATE servers SET vcpus = ?2, ram_mb = ?3 WHERE id = ?1",
        params![id.as_str(), vcpus, ram_mb],
    )?;
    Ok(())
}

/// Updates what a rebuild may change: name, image, key, user data, description, hostname,
/// access addresses; metadata is replaced when given.
pub fn update_rebuilt(c: &Connection, s: &Server) -> Result<()> {
    c.execute(
        "UPDATE servers SET name = ?2, image_id = ?3, key_name = ?4, key_data = ?5,
             user_data = ?6, description = ?7, hostname = ?8, access_ipv4 = ?9,
             access_ipv6 = ?10, updated_at = ?11
         WHERE id = ?1",
        params![
            s.id.as_str(),
            s.name,
            s.image_id,
            s.key_name,
            s.key_data,
            s.user_data,
            s.description,
            s.hostname,
            s.access_ipv4,
            s.access_ipv6,
            ts(Utc::now())
        ],
    )?;
    clear_metadata(c, &s.id)?;
    for (k, v) in &s.metadata {
        set_metadata_item(c, &s.id, k, v)?;
    }
    Ok(())
}

/// Sets a live server's vm state and clears its task, whatever they were (`os-resetState`).
pub fn reset_state(c: &Connection, id: &ServerId, vm: VmState) -> Result<bool> {
    Ok(c.execute(
        "UPDATE servers SET vm_state = ?2, task_state = NULL, updated_at = ?3
         WHERE id = ?1 AND deleted = 0",
        params![id.as_str(), vm.as_str(), ts(Utc::now())],
    )? > 0)
}

// ---- system metadata -----------------------------------------------------------------------

pub fn set_sysmeta(c: &Connection, id: &ServerId, key: &str, value: &str) -> Result<()> {
    c.execute(
        "INSERT INTO server_system_metadata (server_id, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (server_id, key) DO UPDATE SET value = excluded.value",
        params![id.as_str(), key, value],
    )?;
    Ok(())
}

pub fn get_sysmeta(c: &Connection, id: &ServerId, key: &str) -> Result<Option<String>> {
    Ok(c.query_row(
        "SELECT value FROM server_system_metadata WHERE server_id = ?1 AND key = ?2",
        params![id.as_str(), key],
        |r| r.get(0),
    )
    .optional()?)
}

pub fn delete_sysmeta(c: &Connection, id: &ServerId, key: &str) -> Result<()> {
    c.execute(
        "DELETE FROM server_system_metadata WHERE server_id = ?1 AND key = ?2",
        params![id.as_str(), key],
    )?;
    Ok(())
}

/// Live servers holding system metadata `key`, with its value.
pub fn servers_with_sysmeta(c: &Connection, key: &str) -> Result<Vec<(ServerId, String)>> {
    let mut st = c.prepare_cached(
        "SELECT m.server_id, m.value FROM server_system_metadata m
         JOIN servers s ON s.id = m.server_id WHERE m.key = ?1 AND s.deleted = 0",
    )?;
    let rows = st.query_map([key], |r| Ok((ServerId::from_stored(r.get(0)?), r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Encodes a flavor as the servers table stores it.
pub fn flavor_json(f: &Flavor) -> String {
    encode_flavor(f)
}

/// Decodes a flavor stored by [`flavor_json`].
pub fn flavor_from_json(s: &str) -> Result<Flavor> {
    Ok(decode_flavor(s)?)
}

/// Servers in a transitional state, for the reconciler at start-up.
pub fn servers_in_flight(c: &Connection) -> Result<Vec<String>> {
    let mut st = c.prepare(
        "SELECT id FROM servers WHERE deleted = 0 AND (task_state IS NOT NULL OR vm_state = 'building')",
    )?;
    let rows = st.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every live server (not deleted), for reconciling with the backends.
pub fn live_server_ids(c: &Connection) -> Result<Vec<String>> {
    let mut st = c.prepare("SELECT id FROM servers WHERE deleted = 0")?;
    let rows = st.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// ---- instance actions ----------------------------------------------------------------------

pub fn start_action(
    c: &Connection,
    server: &ServerId,
    request_id: &str,
    action: &str,
    project: &ProjectId,
    user: &UserId,
) -> Result<i64> {
    let now = ts(Utc::now());
    c.prepare_cached(
        "INSERT INTO instance_actions (server_id, request_id, action, project_id, user_id, start_time, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?
    .execute(params![
        server.as_str(),
        request_id,
        action,
        project.as_str(),
        user.as_str(),
        now
    ])?;
    Ok(c.last_insert_rowid())
}

pub fn start_event(c: &Connection, action: i64, event: &str, host: &str) -> Result<i64> {
    let now = ts(Utc::now());
    c.prepare_cached(
        "INSERT INTO instance_action_events (action_id, event, start_time, host) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![action, event, now, host])?;
    c.execute(
        "UPDATE instance_actions SET updated_at = ?2 WHERE id = ?1",
        params![action, now],
    )?;
    Ok(c.last_insert_rowid())
}

/// Ends an event and its action; a failure marks the action's message `Error`, as Nova does.
pub fn finish_event(c: &Connection, event: i64, ok: bool, details: Option<&str>) -> Result<()> {
    let now = ts(Utc::now());
    c.execute(
        "UPDATE instance_action_events SET finish_time = ?2, result = ?3, details = ?4 WHERE id = ?1",
        params![event, now, if ok { "Success" } else { "Error" }, details],
    )?;
    c.execute(
        "UPDATE instance_actions SET finish_time = ?2, updated_at = ?2,
             message = CASE WHEN ?3 THEN message ELSE 'Error' END
         WHERE id = (SELECT action_id FROM instance_action_events WHERE id = ?1)",
        params![event, now, ok],
    )?;
    Ok(())
}

fn action_row(r: &Row<'_>) -> rusqlite::Result<InstanceAction> {
    Ok(InstanceAction {
        id: r.get(0)?,
        server_id: r.get(1)?,
        request_id: r.get(2)?,
        action: r.get(3)?,
        project_id: r.get(4)?,
        user_id: r.get(5)?,
        start_time: parse_ts(&r.get::<_, String>(6)?)?,
        finish_time: opt_ts(r.get(7)?)?,
        message: r.get(8)?,
        updated_at: parse_ts(&r.get::<_, String>(9)?)?,
    })
}

const ACTION_COLS: &str = "id, server_id, request_id, action, project_id, user_id, start_time, finish_time, message, updated_at";

/// A server's actions, newest first.
pub fn list_actions(c: &Connection, server: &ServerId) -> Result<Vec<InstanceAction>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {ACTION_COLS} FROM instance_actions WHERE server_id = ?1 ORDER BY start_time DESC, id DESC"
    ))?;
    let rows = st.query_map([server.as_str()], action_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn get_action(
    c: &Connection,
    server: &ServerId,
    request_id: &str,
) -> Result<Option<(InstanceAction, Vec<ActionEvent>)>> {
    let Some(a) = c
        .query_row(
            &format!(
                "SELECT {ACTION_COLS} FROM instance_actions WHERE server_id = ?1 AND request_id = ?2"
            ),
            [server.as_str(), request_id],
            action_row,
        )
        .optional()?
    else {
        return Ok(None);
    };
    let mut st = c.prepare_cached(
        "SELECT event, start_time, finish_time, result, details, host FROM instance_action_events
         WHERE action_id = ?1 ORDER BY id",
    )?;
    let events = st
        .query_map([a.id], |r| {
            Ok(ActionEvent {
                event: r.get(0)?,
                start_time: parse_ts(&r.get::<_, String>(1)?)?,
                finish_time: opt_ts(r.get(2)?)?,
                result: r.get(3)?,
                details: r.get(4)?,
                host: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some((a, events)))
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
