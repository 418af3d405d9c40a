//! A server's metadata and tags.

use super::*;

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
