//! The servers table: rows in and out, and the lookups every task makes.

use super::*;

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

pub(super) const SERVER_COLS: &str = "id, name, project_id, user_id, flavor, image_id, vm_state, task_state, \
    power_state, backend, availability_zone, key_name, key_data, user_data, config_drive, \
    description, hostname, access_ipv4, access_ipv6, locked_by, locked_reason, reservation_id, \
    launch_index, progress, host, scheduler_hints, created_at, updated_at, launched_at, \
    terminated_at, deleted, auto_disk_config, pinned_availability_zone";

pub(super) fn encode_flavor(f: &Flavor) -> String {
    serde_json::json!({
        "id": f.id.0, "name": f.name, "vcpus": f.vcpus, "ram_mb": f.ram_mb,
        "disk_gb": f.disk_gb, "ephemeral_gb": f.ephemeral_gb, "swap_mb": f.swap_mb,
        "rxtx_factor": f.rxtx_factor, "is_public": f.is_public, "description": f.description,
        "extra_specs": f.extra_specs,
    })
    .to_string()
}

pub(super) fn decode_flavor(s: &str) -> rusqlite::Result<Flavor> {
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

pub(super) fn opt_ts(s: Option<String>) -> rusqlite::Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_ts).transpose()
}

pub(super) fn server_row(r: &Row<'_>) -> rusqlite::Result<Server> {
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
        security_groups: Vec::new(),
        scheduler_hints: serde_json::from_str(&hints).unwrap_or_default(),
        created_at: parse_ts(&r.get::<_, String>(26)?)?,
        updated_at: parse_ts(&r.get::<_, String>(27)?)?,
        launched_at: opt_ts(r.get(28)?)?,
        terminated_at: opt_ts(r.get(29)?)?,
        deleted: r.get(30)?,
        auto_disk_config: r.get(31)?,
        pinned_availability_zone: r.get(32)?,
        fault: None,
    })
}

/// Inserts a new server with its metadata and tags (ports are added separately).
pub fn insert_server(c: &Connection, s: &Server) -> Result<()> {
    c.prepare_cached(&format!(
        "INSERT INTO servers ({SERVER_COLS}, flavorid, vcpus, ram_mb) VALUES (
            ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
            ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35, ?36)"
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
        s.auto_disk_config,
        s.pinned_availability_zone,
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
                "SELECT p.device_id, n.name, i.ip_address, p.mac_address, f.floating_ip_address
                 FROM net_ports p JOIN net_networks n ON n.id = p.network_id
                 JOIN net_ips i ON i.port_id = p.id
                 LEFT JOIN net_floating_ips f ON f.port_id = p.id AND f.fixed_ip_address = i.ip_address
                 WHERE p.device_id IN ({marks}) ORDER BY p.position, p.created_at, i.rowid"
            ))?;
            let rows = st.query_map(params_from_iter(chunk.iter()), |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })?;
            for row in rows {
                let (id, network, addr, mac, floating): (String, String, String, String, _) = row?;
                if let Some(s) = by_id.get_mut(&id) {
                    let version = if addr.contains(':') { 6 } else { 4 };
                    s.addresses.push(Address {
                        network: network.clone(),
                        addr,
                        mac: mac.clone(),
                        version,
                        floating: false,
                    });
                    if let Some(f) = floating {
                        s.addresses.push(Address {
                            network,
                            addr: f,
                            mac,
                            version: 4,
                            floating: true,
                        });
                    }
                }
            }
        }
        {
            let mut st = c.prepare(&format!(
                "SELECT DISTINCT p.device_id, g.name FROM net_ports p
                 JOIN net_port_security_groups ps ON ps.port_id = p.id
                 JOIN net_security_groups g ON g.id = ps.security_group_id
                 WHERE p.device_id IN ({marks}) ORDER BY g.name"
            ))?;
            let rows = st.query_map(params_from_iter(chunk.iter()), |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            for row in rows {
                let (id, name) = row?;
                if let Some(s) = by_id.get_mut(&id)
                    && !s.security_groups.contains(&name)
                {
                    s.security_groups.push(name);
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
