//! Listing servers: the typed filter and sort key mapped to columns, and paging.

use super::*;

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
pub(super) fn where_clause(conds: &[Cond]) -> (String, Vec<Value>) {
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
