//! A server's state changes: task and vm state, power, lock, fault, flavor, rebuild.

use super::*;

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
             access_ipv6 = ?6, updated_at = ?7, auto_disk_config = ?8
         WHERE id = ?1",
        params![
            s.id.as_str(),
            s.name,
            s.description,
            s.hostname,
            s.access_ipv4,
            s.access_ipv6,
            ts(Utc::now()),
            s.auto_disk_config,
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
/// access addresses, disk config; metadata is replaced when given.
pub fn update_rebuilt(c: &Connection, s: &Server) -> Result<()> {
    c.execute(
        "UPDATE servers SET name = ?2, image_id = ?3, key_name = ?4, key_data = ?5,
             user_data = ?6, description = ?7, hostname = ?8, access_ipv4 = ?9,
             access_ipv6 = ?10, updated_at = ?11, auto_disk_config = ?12
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
            ts(Utc::now()),
            s.auto_disk_config,
        ],
    )?;
    clear_metadata(c, &s.id)?;
    for (k, v) in &s.metadata {
        set_metadata_item(c, &s.id, k, v)?;
    }
    Ok(())
}

/// Sets a server's `auto_disk_config` (a resize request's disk config).
pub fn set_auto_disk_config(c: &Connection, id: &ServerId, auto: bool) -> Result<()> {
    c.execute(
        "UPDATE servers SET auto_disk_config = ?2 WHERE id = ?1",
        params![id.as_str(), auto],
    )?;
    Ok(())
}

/// The availability zone a server is pinned to.
pub fn pinned_zone(c: &Connection, id: &ServerId) -> Result<Option<String>> {
    Ok(c.query_row(
        "SELECT pinned_availability_zone FROM servers WHERE id = ?1",
        [id.as_str()],
        |r| r.get(0),
    )
    .optional()?
    .flatten())
}

/// Sets the availability zone a server is pinned to (`None` unpins).
pub fn set_pinned_zone(c: &Connection, id: &ServerId, zone: Option<&str>) -> Result<()> {
    c.execute(
        "UPDATE servers SET pinned_availability_zone = ?2 WHERE id = ?1",
        params![id.as_str(), zone],
    )?;
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
