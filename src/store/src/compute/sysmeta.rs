//! A server's system metadata (the facts an action keeps between its steps).

use super::*;

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
