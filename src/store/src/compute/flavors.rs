//! Flavors, their extra specs and their access lists.

use super::*;

pub(super) const FLAVOR_COLS: &str = "flavorid, name, vcpus, ram_mb, disk_gb, ephemeral_gb, swap_mb, \
                           rxtx_factor, is_public, disabled, description";

pub(super) fn flavor_row(r: &Row<'_>) -> rusqlite::Result<Flavor> {
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

pub(super) fn load_specs(c: &Connection, f: &mut Flavor) -> Result<()> {
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
