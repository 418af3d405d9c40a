//! Tags of any networking resource (`PUT /…/{id}/tags`), keyed by the resource's id.

use super::*;

pub fn tags_of(c: &Connection, ids: &[String]) -> Result<HashMap<String, Vec<String>>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut st = c.prepare(&format!(
            "SELECT resource_id, tag FROM net_tags WHERE resource_id IN ({}) ORDER BY tag",
            marks(chunk.len())
        ))?;
        let rows = st.query_map(params_from_iter(chunk.iter()), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (id, t) = row?;
            out.entry(id).or_default().push(t);
        }
    }
    Ok(out)
}

/// Replaces a resource's tags and bumps its revision.
pub fn set_tags(c: &Connection, table: &str, id: &str, tags: &[String]) -> Result<()> {
    c.execute("DELETE FROM net_tags WHERE resource_id = ?1", [id])?;
    for t in tags {
        c.execute(
            "INSERT OR IGNORE INTO net_tags (resource_id, tag) VALUES (?1, ?2)",
            params![id, t],
        )?;
    }
    touch(c, table, id)
}

pub fn add_tag(c: &Connection, table: &str, id: &str, tag: &str) -> Result<()> {
    c.execute(
        "INSERT OR IGNORE INTO net_tags (resource_id, tag) VALUES (?1, ?2)",
        params![id, tag],
    )?;
    touch(c, table, id)
}

/// Whether the tag was there.
pub fn remove_tag(c: &Connection, table: &str, id: &str, tag: &str) -> Result<bool> {
    let n = c.execute(
        "DELETE FROM net_tags WHERE resource_id = ?1 AND tag = ?2",
        params![id, tag],
    )?;
    if n > 0 {
        touch(c, table, id)?;
    }
    Ok(n > 0)
}

pub(super) fn drop_tags(c: &Connection, id: &str) -> Result<()> {
    c.execute("DELETE FROM net_tags WHERE resource_id = ?1", [id])?;
    Ok(())
}

/// The owner and tags of a resource in `table`, if `scope` sees it (its project's, or all).
pub fn tagged_owner(
    c: &Connection,
    table: &str,
    scope: &Scope,
    id: &str,
) -> Result<Option<(ProjectId, Vec<String>)>> {
    let owner: Option<String> = c
        .query_row(
            &format!("SELECT project_id FROM {table} WHERE id = ?1"),
            [id],
            |r| r.get(0),
        )
        .optional()?;
    let Some(owner) = owner else {
        return Ok(None);
    };
    if let Some(p) = scope.project()
        && p != owner
    {
        return Ok(None);
    }
    let tags = tags_of(c, &[id.to_owned()])?.remove(id).unwrap_or_default();
    Ok(Some((ProjectId::new(owner), tags)))
}
