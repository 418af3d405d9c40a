//! Instance actions and their events.

use super::*;

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

pub(super) fn action_row(r: &Row<'_>) -> rusqlite::Result<InstanceAction> {
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

pub(super) const ACTION_COLS: &str = "id, server_id, request_id, action, project_id, user_id, start_time, finish_time, message, updated_at";

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
