//! Security groups, their rules and which ports are in them.

use super::*;

const GROUP_COLS: &str =
    "id, project_id, name, description, stateful, revision, created_at, updated_at";
const RULE_COLS: &str = "id, seq, project_id, security_group_id, direction, ethertype, protocol,
    port_range_min, port_range_max, remote_ip_prefix, remote_group_id, description, revision,
    created_at, updated_at";

fn group_row(r: &Row<'_>) -> rusqlite::Result<SecurityGroupRec> {
    Ok(SecurityGroupRec {
        id: r.get(0)?,
        project_id: ProjectId::new(r.get::<_, String>(1)?),
        name: r.get(2)?,
        description: r.get(3)?,
        stateful: r.get(4)?,
        rules: Vec::new(),
        tags: Vec::new(),
        stamp: stamp(r, 5)?,
    })
}

fn rule_row(r: &Row<'_>) -> rusqlite::Result<SgRuleRec> {
    Ok(SgRuleRec {
        id: r.get(0)?,
        seq: r.get(1)?,
        project_id: ProjectId::new(r.get::<_, String>(2)?),
        security_group_id: r.get(3)?,
        direction: Direction::parse(&r.get::<_, String>(4)?).unwrap_or(Direction::Ingress),
        ethertype: r.get(5)?,
        protocol: r.get(6)?,
        port_range_min: r.get(7)?,
        port_range_max: r.get(8)?,
        remote_ip_prefix: r.get(9)?,
        remote_group_id: r.get(10)?,
        description: r.get(11)?,
        stamp: stamp(r, 12)?,
    })
}

fn fill(c: &Connection, mut v: Vec<SecurityGroupRec>) -> Result<Vec<SecurityGroupRec>> {
    let ids: Vec<String> = v.iter().map(|n| n.id.clone()).collect();
    let mut tags = tags_of(c, &ids)?;
    let mut rules: HashMap<String, Vec<SgRuleRec>> = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut st = c.prepare(&format!(
            "SELECT {RULE_COLS} FROM net_sg_rules WHERE security_group_id IN ({}) ORDER BY seq",
            marks(chunk.len())
        ))?;
        let rows = st.query_map(params_from_iter(chunk.iter()), rule_row)?;
        for row in rows {
            let r = row?;
            rules
                .entry(r.security_group_id.clone())
                .or_default()
                .push(r);
        }
    }
    for g in &mut v {
        g.tags = tags.remove(&g.id).unwrap_or_default();
        g.rules = rules.remove(&g.id).unwrap_or_default();
    }
    Ok(v)
}

pub fn list_security_groups(c: &Connection, scope: &Scope) -> Result<Vec<SecurityGroupRec>> {
    let v = match scope.project() {
        None => {
            let mut st = c.prepare_cached(&format!(
                "SELECT {GROUP_COLS} FROM net_security_groups ORDER BY created_at, id"
            ))?;
            st.query_map([], group_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?
        }
        Some(p) => {
            let mut st = c.prepare_cached(&format!(
                "SELECT {GROUP_COLS} FROM net_security_groups WHERE project_id = ?1
                 ORDER BY created_at, id"
            ))?;
            st.query_map([p], group_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?
        }
    };
    fill(c, v)
}

pub fn get_security_group(
    c: &Connection,
    scope: &Scope,
    id: &str,
) -> Result<Option<SecurityGroupRec>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {GROUP_COLS} FROM net_security_groups WHERE id = ?1"
    ))?;
    let Some(g) = st.query_row([id], group_row).optional()? else {
        return Ok(None);
    };
    if let Some(p) = scope.project()
        && g.project_id.as_str() != p
    {
        return Ok(None);
    }
    Ok(fill(c, vec![g])?.pop())
}

/// A project's group by name (the first made), as Nova's `security_groups: [{name}]` names it.
pub fn security_group_by_name(
    c: &Connection,
    project: &ProjectId,
    name: &str,
) -> Result<Option<String>> {
    Ok(c.query_row(
        "SELECT id FROM net_security_groups WHERE project_id = ?1 AND name = ?2
         ORDER BY created_at LIMIT 1",
        params![project.as_str(), name],
        |r| r.get(0),
    )
    .optional()?)
}

pub fn insert_security_group(c: &Connection, g: &SecurityGroupRec) -> Result<()> {
    let t = now();
    c.execute(
        "INSERT INTO net_security_groups (id, project_id, name, description, stateful, revision,
            created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?6)",
        params![
            g.id,
            g.project_id.as_str(),
            g.name,
            g.description,
            g.stateful,
            t
        ],
    )
    .map_err(Error::from_write)?;
    for r in &g.rules {
        insert_rule(c, r)?;
    }
    Ok(())
}

pub fn update_security_group(c: &Connection, g: &SecurityGroupRec) -> Result<()> {
    c.execute(
        "UPDATE net_security_groups SET name = ?2, description = ?3, stateful = ?4 WHERE id = ?1",
        params![g.id, g.name, g.description, g.stateful],
    )
    .map_err(Error::from_write)?;
    touch(c, "net_security_groups", &g.id)
}

/// The ports in a group.
pub fn group_port_ids(c: &Connection, id: &str) -> Result<Vec<String>> {
    let mut st = c.prepare_cached(
        "SELECT port_id FROM net_port_security_groups WHERE security_group_id = ?1",
    )?;
    Ok(st
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

pub fn delete_security_group(c: &Connection, id: &str) -> Result<bool> {
    c.execute("DELETE FROM net_sg_rules WHERE remote_group_id = ?1", [id])?;
    drop_tags(c, id)?;
    let n = c
        .execute("DELETE FROM net_security_groups WHERE id = ?1", [id])
        .map_err(Error::from_write)?;
    Ok(n > 0)
}

/// Inserts a rule (its `seq` is assigned here) and bumps its group's revision.
pub fn insert_rule(c: &Connection, r: &SgRuleRec) -> Result<()> {
    let t = now();
    c.execute(
        "INSERT INTO net_sg_rules (id, project_id, security_group_id, direction, ethertype,
            protocol, port_range_min, port_range_max, remote_ip_prefix, remote_group_id,
            description, revision, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0, ?12, ?12)",
        params![
            r.id,
            r.project_id.as_str(),
            r.security_group_id,
            r.direction.as_str(),
            r.ethertype,
            r.protocol,
            r.port_range_min,
            r.port_range_max,
            r.remote_ip_prefix,
            r.remote_group_id,
            r.description,
            t
        ],
    )
    .map_err(Error::from_write)?;
    touch(c, "net_security_groups", &r.security_group_id)
}

pub fn list_rules(c: &Connection, scope: &Scope) -> Result<Vec<SgRuleRec>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {RULE_COLS} FROM net_sg_rules WHERE ?1 IS NULL OR project_id = ?1 ORDER BY seq"
    ))?;
    Ok(st
        .query_map([scope.project()], rule_row)?
        .collect::<rusqlite::Result<_>>()?)
}

pub fn get_rule(c: &Connection, scope: &Scope, id: &str) -> Result<Option<SgRuleRec>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {RULE_COLS} FROM net_sg_rules WHERE id = ?1 AND (?2 IS NULL OR project_id = ?2)"
    ))?;
    Ok(st
        .query_row(params![id, scope.project()], rule_row)
        .optional()?)
}

pub fn delete_rule(c: &Connection, id: &str) -> Result<bool> {
    let group: Option<String> = c
        .query_row(
            "SELECT security_group_id FROM net_sg_rules WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    let n = c.execute("DELETE FROM net_sg_rules WHERE id = ?1", [id])?;
    if let Some(g) = group {
        touch(c, "net_security_groups", &g)?;
    }
    Ok(n > 0)
}

/// A rule with no ports, prefix or remote group, as Neutron's defaults are.
pub fn plain_rule(
    project: &ProjectId,
    group: &str,
    direction: Direction,
    ethertype: &str,
    remote_group: Option<&str>,
) -> SgRuleRec {
    let t = Utc::now();
    SgRuleRec {
        id: new_id(),
        seq: 0,
        project_id: project.clone(),
        security_group_id: group.to_owned(),
        direction,
        ethertype: ethertype.to_owned(),
        protocol: None,
        port_range_min: None,
        port_range_max: None,
        remote_ip_prefix: None,
        remote_group_id: remote_group.map(str::to_owned),
        description: String::new(),
        stamp: Stamp {
            revision: 0,
            created_at: t,
            updated_at: t,
        },
    }
}

/// The project's `default` group, made with Neutron's default rules (ingress from the group
/// itself, all egress) the first time it is needed.
pub fn ensure_default_group(c: &Connection, project: &ProjectId) -> Result<String> {
    if let Some(id) = c
        .query_row(
            "SELECT id FROM net_security_groups WHERE project_id = ?1 AND name = 'default'",
            [project.as_str()],
            |r| r.get::<_, String>(0),
        )
        .optional()?
    {
        return Ok(id);
    }
    let id = new_id();
    let t = Utc::now();
    let mut g = SecurityGroupRec {
        id: id.clone(),
        project_id: project.clone(),
        name: "default".into(),
        description: "Default security group".into(),
        stateful: true,
        rules: Vec::new(),
        tags: Vec::new(),
        stamp: Stamp {
            revision: 1,
            created_at: t,
            updated_at: t,
        },
    };
    for eth in ["IPv4", "IPv6"] {
        g.rules
            .push(plain_rule(project, &id, Direction::Ingress, eth, Some(&id)));
    }
    for eth in ["IPv4", "IPv6"] {
        g.rules
            .push(plain_rule(project, &id, Direction::Egress, eth, None));
    }
    insert_security_group(c, &g)?;
    Ok(id)
}

/// What the kernel's security-group rules are made from: every port with port security on
/// and at least one group (its id, IPv4 addresses and groups), and every rule of those
/// groups and of the groups they name.
pub fn enforcement_state(c: &Connection) -> Result<(Vec<PortRec>, Vec<SgRuleRec>)> {
    let ids: Vec<String> = {
        let mut st = c.prepare_cached(
            "SELECT id FROM net_ports WHERE port_security = 1 AND id IN (
                SELECT port_id FROM net_port_security_groups)",
        )?;
        st.query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut ports = get_ports_by_id(c, &ids)?;
    ports.sort_by(|a, b| a.id.cmp(&b.id));
    let mut st = c.prepare_cached(&format!(
        "SELECT {RULE_COLS} FROM net_sg_rules ORDER BY seq"
    ))?;
    let rules = st
        .query_map([], rule_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((ports, rules))
}
