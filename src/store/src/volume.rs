//! The SQL of block storage: `volumes`, `volume_types`, `volume_snapshots`,
//! `volume_attachments`, `volume_quotas` and `volume_status_log`.
//!
//! Every status change is conditional on the status the caller expects (the update's `WHERE`
//! names it), and is written to `volume_status_log` in the same transaction.

use std::collections::BTreeMap;

use chrono::Utc;
use model::volume::{
    AttachmentRec, DEFAULT_TYPE_ID, QUOTA_DEFAULTS, SnapshotRec, VolumeRec, VolumeType, VolumeUsage,
};
use model::{ProjectId, UserId};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::{Error, Result, parse_ts, ts};

fn to_json(m: &BTreeMap<String, String>) -> String {
    serde_json::to_string(m).unwrap_or_else(|_| "{}".into())
}

fn from_json(s: &str) -> BTreeMap<String, String> {
    serde_json::from_str(s).unwrap_or_default()
}

fn opt_ts(s: Option<String>) -> rusqlite::Result<Option<chrono::DateTime<Utc>>> {
    s.map(|s| parse_ts(&s)).transpose()
}

const VOLUME_COLS: &str = "v.id, v.project_id, v.user_id, v.name, v.description, v.size_gb, \
     v.status, v.volume_type_id, t.name, v.availability_zone, v.bootable, v.read_only, \
     v.metadata, v.image_metadata, v.source_volid, v.snapshot_id, v.image_id, v.path, v.format, \
     v.created_at, v.updated_at";

fn volume_row(r: &Row<'_>) -> rusqlite::Result<VolumeRec> {
    Ok(VolumeRec {
        id: r.get(0)?,
        project_id: ProjectId::new(r.get::<_, String>(1)?),
        user_id: UserId::new(r.get::<_, String>(2)?),
        name: r.get(3)?,
        description: r.get(4)?,
        size_gb: r.get::<_, i64>(5)? as u64,
        status: r.get(6)?,
        volume_type_id: r.get(7)?,
        volume_type_name: r.get(8)?,
        availability_zone: r.get(9)?,
        bootable: r.get(10)?,
        read_only: r.get(11)?,
        metadata: from_json(&r.get::<_, String>(12)?),
        image_metadata: from_json(&r.get::<_, String>(13)?),
        source_volid: r.get(14)?,
        snapshot_id: r.get(15)?,
        image_id: r.get(16)?,
        path: r.get(17)?,
        format: r.get(18)?,
        created_at: parse_ts(&r.get::<_, String>(19)?)?,
        updated_at: opt_ts(r.get(20)?)?,
        attachments: Vec::new(),
    })
}

fn attachment_row(r: &Row<'_>) -> rusqlite::Result<AttachmentRec> {
    Ok(AttachmentRec {
        id: r.get(0)?,
        volume_id: r.get(1)?,
        server_id: r.get(2)?,
        device: r.get(3)?,
        attach_mode: r.get(4)?,
        tag: r.get(5)?,
        delete_on_termination: r.get(6)?,
        status: r.get(7)?,
        attached_at: parse_ts(&r.get::<_, String>(8)?)?,
        boot_index: r.get(9)?,
    })
}

const ATTACHMENT_COLS: &str = "id, volume_id, server_id, device, attach_mode, tag, \
     delete_on_termination, status, attached_at, boot_index";

fn with_attachments(c: &Connection, mut v: VolumeRec) -> Result<VolumeRec> {
    v.attachments = attachments_of_volume(c, &v.id)?;
    Ok(v)
}

/// One volume, with its attachments.
pub fn get_volume(c: &Connection, id: &str) -> Result<Option<VolumeRec>> {
    let v = c
        .query_row(
            &format!(
                "SELECT {VOLUME_COLS} FROM volumes v JOIN volume_types t ON t.id = v.volume_type_id WHERE v.id = ?1"
            ),
            [id],
            volume_row,
        )
        .optional()?;
    v.map(|v| with_attachments(c, v)).transpose()
}

/// Every volume of `project` (every volume when `None`), oldest first, with attachments.
pub fn list_volumes(c: &Connection, project: Option<&ProjectId>) -> Result<Vec<VolumeRec>> {
    let sql = format!(
        "SELECT {VOLUME_COLS} FROM volumes v JOIN volume_types t ON t.id = v.volume_type_id \
         WHERE (?1 IS NULL OR v.project_id = ?1) ORDER BY v.created_at, v.id"
    );
    let mut st = c.prepare(&sql)?;
    let rows = st
        .query_map([project.map(|p| p.as_str())], volume_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(|v| with_attachments(c, v)).collect()
}

pub fn insert_volume(c: &Connection, v: &VolumeRec) -> Result<()> {
    c.execute(
        "INSERT INTO volumes (id, project_id, user_id, name, description, size_gb, status, \
         volume_type_id, availability_zone, bootable, read_only, metadata, image_metadata, \
         source_volid, snapshot_id, image_id, path, format, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, NULL)",
        params![
            v.id,
            v.project_id.as_str(),
            v.user_id.as_str(),
            v.name,
            v.description,
            v.size_gb as i64,
            v.status,
            v.volume_type_id,
            v.availability_zone,
            v.bootable,
            v.read_only,
            to_json(&v.metadata),
            to_json(&v.image_metadata),
            v.source_volid,
            v.snapshot_id,
            v.image_id,
            v.path,
            v.format,
            ts(v.created_at),
        ],
    )
    .map_err(Error::from_write)?;
    log_status(c, &v.id, None, &v.status)
}

fn log_status(c: &Connection, id: &str, from: Option<&str>, to: &str) -> Result<()> {
    c.execute(
        "INSERT INTO volume_status_log (volume_id, from_status, to_status, at) VALUES (?1, ?2, ?3, ?4)",
        params![id, from, to, ts(Utc::now())],
    )?;
    Ok(())
}

/// Moves a volume from one of `from` to `to`; `false` (and nothing written) when its status
/// is none of them or it is gone.
pub fn set_status(c: &Connection, id: &str, from: &[&str], to: &str) -> Result<bool> {
    let cur: Option<String> = c
        .query_row("SELECT status FROM volumes WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    let Some(cur) = cur else { return Ok(false) };
    if !from.is_empty() && !from.contains(&cur.as_str()) {
        return Ok(false);
    }
    let n = c.execute(
        "UPDATE volumes SET status = ?2, updated_at = ?3 WHERE id = ?1 AND status = ?4",
        params![id, to, ts(Utc::now()), cur],
    )?;
    if n == 1 {
        log_status(c, id, Some(&cur), to)?;
    }
    Ok(n == 1)
}

/// The statuses a volume went through, oldest first.
pub fn status_history(c: &Connection, id: &str) -> Result<Vec<String>> {
    let mut st =
        c.prepare("SELECT to_status FROM volume_status_log WHERE volume_id = ?1 ORDER BY rowid")?;
    let out = st
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(out)
}

/// Where a volume's data is, once the backend made it.
pub fn set_path(c: &Connection, id: &str, path: &str) -> Result<()> {
    c.execute(
        "UPDATE volumes SET path = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, path, ts(Utc::now())],
    )?;
    Ok(())
}

/// The fields a user may change and the flags the actions set.
pub fn update_volume(c: &Connection, v: &VolumeRec) -> Result<()> {
    c.execute(
        "UPDATE volumes SET name = ?2, description = ?3, metadata = ?4, bootable = ?5, \
         read_only = ?6, size_gb = ?7, image_metadata = ?8, updated_at = ?9 WHERE id = ?1",
        params![
            v.id,
            v.name,
            v.description,
            to_json(&v.metadata),
            v.bootable,
            v.read_only,
            v.size_gb as i64,
            to_json(&v.image_metadata),
            ts(Utc::now()),
        ],
    )?;
    Ok(())
}

/// Removes a volume's row with its attachments and status history.
pub fn delete_volume(c: &Connection, id: &str) -> Result<()> {
    c.execute("DELETE FROM volume_attachments WHERE volume_id = ?1", [id])?;
    c.execute("DELETE FROM volume_status_log WHERE volume_id = ?1", [id])?;
    c.execute("DELETE FROM volumes WHERE id = ?1", [id])?;
    Ok(())
}

// ---- types

pub fn list_types(c: &Connection) -> Result<Vec<VolumeType>> {
    let mut st =
        c.prepare("SELECT id, name, description, is_public FROM volume_types ORDER BY name")?;
    let out = st
        .query_map([], |r| {
            Ok(VolumeType {
                id: r.get(0)?,
                name: r.get(1)?,
                description: r.get(2)?,
                is_public: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(out)
}

/// The default type (the one marked default, else `__DEFAULT__`).
pub fn default_type(c: &Connection) -> Result<Option<VolumeType>> {
    let types = list_types(c)?;
    let id: Option<String> = c
        .query_row(
            "SELECT id FROM volume_types WHERE is_default = 1 LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let id = id.unwrap_or_else(|| DEFAULT_TYPE_ID.into());
    Ok(types.into_iter().find(|t| t.id == id))
}

// ---- attachments

pub fn attachments_of_volume(c: &Connection, volume: &str) -> Result<Vec<AttachmentRec>> {
    let mut st = c.prepare(&format!(
        "SELECT {ATTACHMENT_COLS} FROM volume_attachments WHERE volume_id = ?1 ORDER BY attached_at, id"
    ))?;
    let out = st
        .query_map([volume], attachment_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(out)
}

pub fn attachments_of_server(c: &Connection, server: &str) -> Result<Vec<AttachmentRec>> {
    let mut st = c.prepare(&format!(
        "SELECT {ATTACHMENT_COLS} FROM volume_attachments WHERE server_id = ?1 ORDER BY attached_at, id"
    ))?;
    let out = st
        .query_map([server], attachment_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(out)
}

/// The attachments of each of `servers` (a listing's page), in one query.
pub fn attachments_of_servers(
    c: &Connection,
    servers: &[String],
) -> Result<std::collections::HashMap<String, Vec<AttachmentRec>>> {
    let mut out: std::collections::HashMap<String, Vec<AttachmentRec>> = Default::default();
    if servers.is_empty() {
        return Ok(out);
    }
    let ids = serde_json::to_string(servers).unwrap_or_else(|_| "[]".into());
    let mut st = c.prepare_cached(&format!(
        "SELECT {ATTACHMENT_COLS} FROM volume_attachments \
         WHERE server_id IN (SELECT value FROM json_each(?1)) ORDER BY attached_at, id"
    ))?;
    for a in st.query_map([ids], attachment_row)? {
        let a = a?;
        out.entry(a.server_id.clone()).or_default().push(a);
    }
    Ok(out)
}

pub fn insert_attachment(c: &Connection, a: &AttachmentRec) -> Result<()> {
    c.execute(
        "INSERT INTO volume_attachments (id, volume_id, server_id, device, attach_mode, tag, \
         delete_on_termination, status, attached_at, boot_index) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            a.id,
            a.volume_id,
            a.server_id,
            a.device,
            a.attach_mode,
            a.tag,
            a.delete_on_termination,
            a.status,
            ts(a.attached_at),
            a.boot_index,
        ],
    )
    .map_err(Error::from_write)?;
    Ok(())
}

pub fn set_attachment_status(c: &Connection, id: &str, status: &str) -> Result<()> {
    c.execute(
        "UPDATE volume_attachments SET status = ?2 WHERE id = ?1",
        params![id, status],
    )?;
    Ok(())
}

pub fn delete_attachment(c: &Connection, id: &str) -> Result<()> {
    c.execute("DELETE FROM volume_attachments WHERE id = ?1", [id])?;
    Ok(())
}

// ---- snapshots

const SNAPSHOT_COLS: &str = "id, project_id, user_id, volume_id, name, description, size_gb, \
     status, metadata, path, created_at, updated_at";

fn snapshot_row(r: &Row<'_>) -> rusqlite::Result<SnapshotRec> {
    Ok(SnapshotRec {
        id: r.get(0)?,
        project_id: ProjectId::new(r.get::<_, String>(1)?),
        user_id: UserId::new(r.get::<_, String>(2)?),
        volume_id: r.get(3)?,
        name: r.get(4)?,
        description: r.get(5)?,
        size_gb: r.get::<_, i64>(6)? as u64,
        status: r.get(7)?,
        metadata: from_json(&r.get::<_, String>(8)?),
        path: r.get(9)?,
        created_at: parse_ts(&r.get::<_, String>(10)?)?,
        updated_at: opt_ts(r.get(11)?)?,
    })
}

pub fn get_snapshot(c: &Connection, id: &str) -> Result<Option<SnapshotRec>> {
    Ok(c.query_row(
        &format!("SELECT {SNAPSHOT_COLS} FROM volume_snapshots WHERE id = ?1"),
        [id],
        snapshot_row,
    )
    .optional()?)
}

/// Snapshots of `project` (all when `None`), optionally of one volume, oldest first.
pub fn list_snapshots(
    c: &Connection,
    project: Option<&ProjectId>,
    volume: Option<&str>,
) -> Result<Vec<SnapshotRec>> {
    let mut st = c.prepare(&format!(
        "SELECT {SNAPSHOT_COLS} FROM volume_snapshots WHERE (?1 IS NULL OR project_id = ?1) \
         AND (?2 IS NULL OR volume_id = ?2) ORDER BY created_at, id"
    ))?;
    let out = st
        .query_map(params![project.map(|p| p.as_str()), volume], snapshot_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(out)
}

pub fn insert_snapshot(c: &Connection, s: &SnapshotRec) -> Result<()> {
    c.execute(
        "INSERT INTO volume_snapshots (id, project_id, user_id, volume_id, name, description, \
         size_gb, status, metadata, path, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            s.id,
            s.project_id.as_str(),
            s.user_id.as_str(),
            s.volume_id,
            s.name,
            s.description,
            s.size_gb as i64,
            s.status,
            to_json(&s.metadata),
            s.path,
            ts(s.created_at),
        ],
    )
    .map_err(Error::from_write)?;
    Ok(())
}

/// Moves a snapshot from one of `from` (any when empty) to `to`, setting its path when given.
pub fn set_snapshot_status(
    c: &Connection,
    id: &str,
    from: &[&str],
    to: &str,
    path: Option<&str>,
) -> Result<bool> {
    let cur: Option<String> = c
        .query_row(
            "SELECT status FROM volume_snapshots WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    let Some(cur) = cur else { return Ok(false) };
    if !from.is_empty() && !from.contains(&cur.as_str()) {
        return Ok(false);
    }
    let n = c.execute(
        "UPDATE volume_snapshots SET status = ?2, path = COALESCE(?3, path), updated_at = ?4 \
         WHERE id = ?1 AND status = ?5",
        params![id, to, path, ts(Utc::now()), cur],
    )?;
    Ok(n == 1)
}

pub fn update_snapshot(c: &Connection, s: &SnapshotRec) -> Result<()> {
    c.execute(
        "UPDATE volume_snapshots SET name = ?2, description = ?3, metadata = ?4, updated_at = ?5 WHERE id = ?1",
        params![s.id, s.name, s.description, to_json(&s.metadata), ts(Utc::now())],
    )?;
    Ok(())
}

pub fn delete_snapshot(c: &Connection, id: &str) -> Result<()> {
    c.execute("DELETE FROM volume_snapshots WHERE id = ?1", [id])?;
    Ok(())
}

// ---- quotas

/// The project's limit of each quota resource (its own, else the default).
pub fn limits(c: &Connection, project: &ProjectId) -> Result<Vec<(&'static str, i64)>> {
    let mut out = Vec::new();
    for (k, d) in QUOTA_DEFAULTS {
        let own: Option<i64> = c
            .query_row(
                "SELECT hard_limit FROM volume_quotas WHERE project_id = ?1 AND resource = ?2",
                params![project.as_str(), k],
                |r| r.get(0),
            )
            .optional()?;
        out.push((*k, own.unwrap_or(*d)));
    }
    Ok(out)
}

pub fn set_limit(c: &Connection, project: &ProjectId, resource: &str, limit: i64) -> Result<()> {
    c.execute(
        "INSERT INTO volume_quotas (project_id, resource, hard_limit) VALUES (?1, ?2, ?3) \
         ON CONFLICT (project_id, resource) DO UPDATE SET hard_limit = excluded.hard_limit",
        params![project.as_str(), resource, limit],
    )?;
    Ok(())
}

pub fn clear_limits(c: &Connection, project: &ProjectId) -> Result<()> {
    c.execute(
        "DELETE FROM volume_quotas WHERE project_id = ?1",
        [project.as_str()],
    )?;
    Ok(())
}

/// What the project holds: its volumes, their gigabytes plus its snapshots', its snapshots.
pub fn usage(c: &Connection, project: &ProjectId) -> Result<VolumeUsage> {
    let (volumes, vgb): (i64, i64) = c.query_row(
        "SELECT COUNT(*), COALESCE(SUM(size_gb), 0) FROM volumes WHERE project_id = ?1",
        [project.as_str()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (snapshots, sgb): (i64, i64) = c.query_row(
        "SELECT COUNT(*), COALESCE(SUM(size_gb), 0) FROM volume_snapshots WHERE project_id = ?1",
        [project.as_str()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(VolumeUsage {
        volumes,
        gigabytes: vgb + sgb,
        snapshots,
    })
}

/// Every path the database knows (volumes and snapshots), for the orphan sweep.
pub fn known_paths(c: &Connection) -> Result<Vec<String>> {
    let mut st = c.prepare(
        "SELECT path FROM volumes WHERE path IS NOT NULL UNION SELECT path FROM volume_snapshots WHERE path IS NOT NULL",
    )?;
    let out = st
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(out)
}

/// Every id the database knows (volumes and snapshots).
pub fn known_ids(c: &Connection) -> Result<Vec<String>> {
    let mut st = c.prepare("SELECT id FROM volumes UNION SELECT id FROM volume_snapshots")?;
    let out = st
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(out)
}

/// A deleted server lets go of its volumes: each attachment row goes and its volume is
/// `available` again. Returns the attachments released (those asked to be deleted on
/// termination are then the caller's to delete).
pub fn release_server(c: &Connection, server: &str) -> Result<Vec<AttachmentRec>> {
    let mut out = Vec::new();
    for a in attachments_of_server(c, server)? {
        delete_attachment(c, &a.id)?;
        set_status(
            c,
            &a.volume_id,
            &["in-use", "attaching", "detaching"],
            "available",
        )?;
        out.push(a);
    }
    Ok(out)
}
