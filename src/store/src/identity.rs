//! SQL for the identity service: domains, projects, users, roles, assignments and tokens.

use chrono::{DateTime, Utc};
use model::{
    Assignment, AuthMethod, Domain, DomainId, Project, ProjectId, Role, RoleId, Target,
    TokenRecord, User, UserId,
};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::{Error, Result, parse_ts, ts};

pub use model::{AssignmentFilter, ProjectFilter, UserFilter};

fn now() -> String {
    ts(Utc::now())
}

// ---- domains -------------------------------------------------------------------------------

fn domain_row(r: &Row<'_>) -> rusqlite::Result<Domain> {
    Ok(Domain {
        id: DomainId::new(r.get::<_, String>(0)?),
        name: r.get(1)?,
        description: r.get(2)?,
        enabled: r.get(3)?,
    })
}

const DOMAIN_COLS: &str = "id, name, description, enabled";

pub fn insert_domain(c: &Connection, d: &Domain) -> Result<()> {
    c.execute(
        "INSERT INTO domains (id, name, description, enabled, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![d.id.as_str(), d.name, d.description, d.enabled, now()],
    )
    .map_err(Error::from_write)?;
    Ok(())
}

pub fn get_domain(c: &Connection, id: &DomainId) -> Result<Option<Domain>> {
    Ok(c.query_row(
        &format!("SELECT {DOMAIN_COLS} FROM domains WHERE id = ?1"),
        [id.as_str()],
        domain_row,
    )
    .optional()?)
}

pub fn find_domain_by_name(c: &Connection, name: &str) -> Result<Option<Domain>> {
    Ok(c.query_row(
        &format!("SELECT {DOMAIN_COLS} FROM domains WHERE name = ?1"),
        [name],
        domain_row,
    )
    .optional()?)
}

pub fn list_domains(c: &Connection, name: Option<&str>) -> Result<Vec<Domain>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {DOMAIN_COLS} FROM domains WHERE (?1 IS NULL OR name = ?1) ORDER BY name"
    ))?;
    let rows = st.query_map([name], domain_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// ---- projects ------------------------------------------------------------------------------

const PROJECT_COLS: &str = "id, domain_id, name, description, enabled";

fn project_row(r: &Row<'_>) -> rusqlite::Result<Project> {
    Ok(Project {
        id: ProjectId::new(r.get::<_, String>(0)?),
        domain_id: DomainId::new(r.get::<_, String>(1)?),
        name: r.get(2)?,
        description: r.get(3)?,
        enabled: r.get(4)?,
    })
}

pub fn insert_project(c: &Connection, p: &Project) -> Result<()> {
    c.execute(
        "INSERT INTO projects (id, domain_id, name, description, enabled, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            p.id.as_str(),
            p.domain_id.as_str(),
            p.name,
            p.description,
            p.enabled,
            now()
        ],
    )
    .map_err(Error::from_write)?;
    Ok(())
}

pub fn get_project(c: &Connection, id: &ProjectId) -> Result<Option<Project>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {PROJECT_COLS} FROM projects WHERE id = ?1"
    ))?
    .query_row([id.as_str()], project_row)
    .optional()?)
}

pub fn find_project(c: &Connection, domain: &DomainId, name: &str) -> Result<Option<Project>> {
    Ok(c.query_row(
        &format!("SELECT {PROJECT_COLS} FROM projects WHERE domain_id = ?1 AND name = ?2"),
        [domain.as_str(), name],
        project_row,
    )
    .optional()?)
}

pub fn list_projects(c: &Connection, f: &ProjectFilter) -> Result<Vec<Project>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {PROJECT_COLS} FROM projects
         WHERE (?1 IS NULL OR name = ?1) AND (?2 IS NULL OR domain_id = ?2)
           AND (?3 IS NULL OR enabled = ?3)
         ORDER BY name, id"
    ))?;
    let rows = st.query_map(
        params![f.name, f.domain_id.as_ref().map(|d| d.as_str()), f.enabled],
        project_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn update_project(c: &Connection, p: &Project) -> Result<()> {
    c.execute(
        "UPDATE projects SET name = ?2, description = ?3, enabled = ?4 WHERE id = ?1",
        params![p.id.as_str(), p.name, p.description, p.enabled],
    )
    .map_err(Error::from_write)?;
    Ok(())
}

/// Deletes a project with its role assignments, the tokens scoped to it and its networks
/// (their address space is free again; the backends removed each network's bridge, DHCP
/// server and port rules when its last server went). Refused with [`Error::Conflict`] while
/// the project still has servers (soft-deleted and shelved ones included): their ports,
/// bridges and disks would be left without an owner.
pub fn delete_project(c: &Connection, id: &ProjectId) -> Result<bool> {
    let servers: i64 = c.query_row(
        "SELECT COUNT(*) FROM servers WHERE project_id = ?1 AND deleted = 0",
        [id.as_str()],
        |r| r.get(0),
    )?;
    if servers > 0 {
        return Err(Error::Conflict(format!(
            "The project still has {servers} server(s); delete them before the project."
        )));
    }
    crate::network::delete_project_resources(c, id)?;
    c.execute(
        "DELETE FROM role_assignments WHERE target_type = 'project' AND target_id = ?1",
        [id.as_str()],
    )?;
    let n = c
        .execute("DELETE FROM projects WHERE id = ?1", [id.as_str()])
        .map_err(Error::from_write)?;
    Ok(n > 0)
}

/// Projects on which the user holds at least one role, directly or through its domain.
pub fn projects_of_user(c: &Connection, user: &UserId) -> Result<Vec<Project>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {PROJECT_COLS} FROM projects p WHERE EXISTS (
             SELECT 1 FROM role_assignments a WHERE a.user_id = ?1 AND (
                 (a.target_type = 'project' AND a.target_id = p.id) OR
                 (a.target_type = 'domain' AND a.target_id = p.domain_id)))
         ORDER BY name, id"
    ))?;
    let rows = st.query_map([user.as_str()], project_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// ---- users ---------------------------------------------------------------------------------

const USER_COLS: &str =
    "id, domain_id, name, email, description, enabled, default_project_id, password_expires_at";

fn user_row(r: &Row<'_>) -> rusqlite::Result<User> {
    let expires: Option<String> = r.get(7)?;
    Ok(User {
        id: UserId::new(r.get::<_, String>(0)?),
        domain_id: DomainId::new(r.get::<_, String>(1)?),
        name: r.get(2)?,
        email: r.get(3)?,
        description: r.get(4)?,
        enabled: r.get(5)?,
        default_project_id: r.get::<_, Option<String>>(6)?.map(ProjectId::new),
        password_expires_at: expires.as_deref().map(parse_ts).transpose()?,
    })
}

pub fn insert_user(c: &Connection, u: &User, password_hash: Option<&str>) -> Result<()> {
    c.execute(
        "INSERT INTO users (id, domain_id, name, password_hash, email, description, enabled,
                            default_project_id, password_expires_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            u.id.as_str(),
            u.domain_id.as_str(),
            u.name,
            password_hash,
            u.email,
            u.description,
            u.enabled,
            u.default_project_id.as_ref().map(|p| p.as_str()),
            u.password_expires_at.map(ts),
            now()
        ],
    )
    .map_err(Error::from_write)?;
    Ok(())
}

pub fn get_user(c: &Connection, id: &UserId) -> Result<Option<User>> {
    Ok(
        c.prepare_cached(&format!("SELECT {USER_COLS} FROM users WHERE id = ?1"))?
            .query_row([id.as_str()], user_row)
            .optional()?,
    )
}

pub fn find_user(c: &Connection, domain: &DomainId, name: &str) -> Result<Option<User>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {USER_COLS} FROM users WHERE domain_id = ?1 AND name = ?2"
    ))?
    .query_row([domain.as_str(), name], user_row)
    .optional()?)
}

/// The user's stored password hash, if it has a password.
pub fn password_hash(c: &Connection, id: &UserId) -> Result<Option<String>> {
    Ok(
        c.prepare_cached("SELECT password_hash FROM users WHERE id = ?1")?
            .query_row([id.as_str()], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten(),
    )
}

pub fn list_users(c: &Connection, f: &UserFilter) -> Result<Vec<User>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {USER_COLS} FROM users
         WHERE (?1 IS NULL OR name = ?1) AND (?2 IS NULL OR domain_id = ?2)
           AND (?3 IS NULL OR enabled = ?3)
         ORDER BY name, id"
    ))?;
    let rows = st.query_map(
        params![f.name, f.domain_id.as_ref().map(|d| d.as_str()), f.enabled],
        user_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn update_user(c: &Connection, u: &User) -> Result<()> {
    c.execute(
        "UPDATE users SET name = ?2, email = ?3, description = ?4, enabled = ?5,
                          default_project_id = ?6 WHERE id = ?1",
        params![
            u.id.as_str(),
            u.name,
            u.email,
            u.description,
            u.enabled,
            u.default_project_id.as_ref().map(|p| p.as_str())
        ],
    )
    .map_err(Error::from_write)?;
    Ok(())
}

pub fn set_password_hash(c: &Connection, id: &UserId, hash: &str) -> Result<()> {
    c.execute(
        "UPDATE users SET password_hash = ?2 WHERE id = ?1",
        params![id.as_str(), hash],
    )?;
    Ok(())
}

pub fn delete_user(c: &Connection, id: &UserId) -> Result<bool> {
    Ok(c.execute("DELETE FROM users WHERE id = ?1", [id.as_str()])? > 0)
}

// ---- roles ---------------------------------------------------------------------------------

fn role_row(r: &Row<'_>) -> rusqlite::Result<Role> {
    Ok(Role {
        id: RoleId::new(r.get::<_, String>(0)?),
        name: r.get(1)?,
        description: r.get(2)?,
    })
}

pub fn insert_role(c: &Connection, role: &Role) -> Result<()> {
    c.execute(
        "INSERT INTO roles (id, name, description, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![role.id.as_str(), role.name, role.description, now()],
    )
    .map_err(Error::from_write)?;
    Ok(())
}

pub fn get_role(c: &Connection, id: &RoleId) -> Result<Option<Role>> {
    Ok(c.query_row(
        "SELECT id, name, description FROM roles WHERE id = ?1",
        [id.as_str()],
        role_row,
    )
    .optional()?)
}

pub fn find_role(c: &Connection, name: &str) -> Result<Option<Role>> {
    Ok(c.query_row(
        "SELECT id, name, description FROM roles WHERE name = ?1",
        [name],
        role_row,
    )
    .optional()?)
}

pub fn list_roles(c: &Connection, name: Option<&str>) -> Result<Vec<Role>> {
    let mut st = c.prepare_cached(
        "SELECT id, name, description FROM roles WHERE (?1 IS NULL OR name = ?1) ORDER BY name",
    )?;
    let rows = st.query_map([name], role_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn delete_role(c: &Connection, id: &RoleId) -> Result<bool> {
    Ok(c.execute("DELETE FROM roles WHERE id = ?1", [id.as_str()])? > 0)
}

pub fn add_implied_role(c: &Connection, prior: &RoleId, implied: &RoleId) -> Result<()> {
    c.execute(
        "INSERT OR IGNORE INTO implied_roles (prior_role_id, implied_role_id) VALUES (?1, ?2)",
        [prior.as_str(), implied.as_str()],
    )
    .map_err(Error::from_write)?;
    Ok(())
}

/// Every (prior, implied) pair.
pub fn implied_roles(c: &Connection) -> Result<Vec<(RoleId, RoleId)>> {
    let mut st = c.prepare_cached("SELECT prior_role_id, implied_role_id FROM implied_roles")?;
    let rows = st.query_map([], |r| {
        Ok((
            RoleId::new(r.get::<_, String>(0)?),
            RoleId::new(r.get::<_, String>(1)?),
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// ---- assignments ---------------------------------------------------------------------------

fn target_parts(t: &Target) -> (&'static str, &str) {
    match t {
        Target::Project(p) => ("project", p.as_str()),
        Target::Domain(d) => ("domain", d.as_str()),
    }
}

fn assignment_row(r: &Row<'_>) -> rusqlite::Result<Assignment> {
    let kind: String = r.get(1)?;
    let id: String = r.get(2)?;
    Ok(Assignment {
        user_id: UserId::new(r.get::<_, String>(0)?),
        target: if kind == "domain" {
            Target::Domain(DomainId::new(id))
        } else {
            Target::Project(ProjectId::new(id))
        },
        role_id: RoleId::new(r.get::<_, String>(3)?),
    })
}

pub fn grant(c: &Connection, a: &Assignment) -> Result<()> {
    let (kind, id) = target_parts(&a.target);
    c.execute(
        "INSERT OR IGNORE INTO role_assignments (user_id, target_type, target_id, role_id)
         VALUES (?1, ?2, ?3, ?4)",
        params![a.user_id.as_str(), kind, id, a.role_id.as_str()],
    )
    .map_err(Error::from_write)?;
    Ok(())
}

pub fn revoke(c: &Connection, a: &Assignment) -> Result<bool> {
    let (kind, id) = target_parts(&a.target);
    Ok(c.execute(
        "DELETE FROM role_assignments
         WHERE user_id = ?1 AND target_type = ?2 AND target_id = ?3 AND role_id = ?4",
        params![a.user_id.as_str(), kind, id, a.role_id.as_str()],
    )? > 0)
}

pub fn list_assignments(c: &Connection, f: &AssignmentFilter) -> Result<Vec<Assignment>> {
    let (kind, target) = match &f.target {
        Some(t) => {
            let (k, i) = target_parts(t);
            (Some(k), Some(i))
        }
        None => (None, None),
    };
    let mut st = c.prepare_cached(
        "SELECT user_id, target_type, target_id, role_id FROM role_assignments
         WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR target_type = ?2)
           AND (?3 IS NULL OR target_id = ?3) AND (?4 IS NULL OR role_id = ?4)
         ORDER BY user_id, target_type, target_id, role_id",
    )?;
    let rows = st.query_map(
        params![
            f.user_id.as_ref().map(|u| u.as_str()),
            kind,
            target,
            f.role_id.as_ref().map(|r| r.as_str())
        ],
        assignment_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The roles granted directly to a user on a project, including those granted on the
/// project's domain (Keystone's inherited-to-projects grants are not modelled).
pub fn direct_roles_on_project(
    c: &Connection,
    user: &UserId,
    project: &ProjectId,
) -> Result<Vec<RoleId>> {
    let mut st = c.prepare_cached(
        "SELECT DISTINCT role_id FROM role_assignments
         WHERE user_id = ?1 AND target_type = 'project' AND target_id = ?2",
    )?;
    let rows = st.query_map([user.as_str(), project.as_str()], |r| {
        Ok(RoleId::new(r.get::<_, String>(0)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// ---- tokens --------------------------------------------------------------------------------

/// Stores a token; `parent` is the hash of the token it was made from (`token` method), so a
/// revocation of the parent reaches it.
pub fn insert_token(
    c: &Connection,
    hash: &[u8],
    t: &TokenRecord,
    parent: Option<&[u8]>,
) -> Result<()> {
    let methods: Vec<&str> = t.methods.iter().map(|m| m.as_str()).collect();
    c.prepare_cached(
        "INSERT INTO tokens (hash, user_id, project_id, methods, issued_at, expires_at, audit_ids, parent_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        hash,
        t.user_id.as_str(),
        t.project_id.as_ref().map(|p| p.as_str()),
        methods.join(","),
        ts(t.issued_at),
        ts(t.expires_at),
        t.audit_ids.join(","),
        parent
    ])
    .map_err(Error::from_write)?;
    Ok(())
}

/// A token that is neither revoked nor expired at `at`.
pub fn live_token(c: &Connection, hash: &[u8], at: DateTime<Utc>) -> Result<Option<TokenRecord>> {
    let row = c
        .prepare_cached(
            "SELECT user_id, project_id, methods, issued_at, expires_at, audit_ids
             FROM tokens WHERE hash = ?1 AND revoked = 0 AND expires_at > ?2",
        )?
        .query_row(params![hash, ts(at)], |r| {
            let methods: String = r.get(2)?;
            let audit: String = r.get(5)?;
            Ok(TokenRecord {
                user_id: UserId::new(r.get::<_, String>(0)?),
                project_id: r.get::<_, Option<String>>(1)?.map(ProjectId::new),
                methods: methods
                    .split(',')
                    .map(|m| match m {
                        "token" => AuthMethod::Token,
                        _ => AuthMethod::Password,
                    })
                    .collect(),
                issued_at: parse_ts(&r.get::<_, String>(3)?)?,
                expires_at: parse_ts(&r.get::<_, String>(4)?)?,
                audit_ids: audit.split(',').map(str::to_owned).collect(),
            })
        })
        .optional()?;
    Ok(row)
}

/// Revokes a token and every token made from it, down the whole chain (a token issued with
/// the `token` method from a revoked one must die with it). True when `hash` itself was live.
pub fn revoke_token(c: &Connection, hash: &[u8]) -> Result<bool> {
    let own = c.execute(
        "UPDATE tokens SET revoked = 1 WHERE hash = ?1 AND revoked = 0",
        [hash],
    )? > 0;
    c.execute(
        "WITH RECURSIVE chain(h) AS (
             SELECT ?1
             UNION
             SELECT t.hash FROM tokens t JOIN chain ON t.parent_hash = chain.h
         )
         UPDATE tokens SET revoked = 1 WHERE revoked = 0 AND hash IN chain",
        [hash],
    )?;
    Ok(own)
}

/// Revokes a user's oldest live tokens (with their chains) so that at most `keep` stay live.
/// Returns how many were revoked.
pub fn revoke_oldest_tokens(
    c: &Connection,
    user: &UserId,
    keep: usize,
    at: DateTime<Utc>,
) -> Result<usize> {
    let hashes: Vec<Vec<u8>> = c
        .prepare_cached(
            "SELECT hash FROM tokens WHERE user_id = ?1 AND revoked = 0 AND expires_at > ?2
             ORDER BY issued_at DESC, rowid DESC LIMIT -1 OFFSET ?3",
        )?
        .query_map(
            params![
                user.as_str(),
                ts(at),
                i64::try_from(keep).unwrap_or(i64::MAX)
            ],
            |r| r.get(0),
        )?
        .collect::<rusqlite::Result<_>>()?;
    for h in &hashes {
        revoke_token(c, h)?;
    }
    Ok(hashes.len())
}

/// How many of a user's tokens are live at `at`.
pub fn live_token_count(c: &Connection, user: &UserId, at: DateTime<Utc>) -> Result<usize> {
    let n: i64 = c
        .prepare_cached(
            "SELECT COUNT(*) FROM tokens WHERE user_id = ?1 AND revoked = 0 AND expires_at > ?2",
        )?
        .query_row(params![user.as_str(), ts(at)], |r| r.get(0))?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// How many token rows the store holds, dead or alive.
pub fn token_rows(c: &Connection) -> Result<usize> {
    let n: i64 = c.query_row("SELECT COUNT(*) FROM tokens", [], |r| r.get(0))?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Revokes every token of a user (on password change or disable).
pub fn revoke_user_tokens(c: &Connection, user: &UserId) -> Result<usize> {
    Ok(c.execute(
        "UPDATE tokens SET revoked = 1 WHERE user_id = ?1 AND revoked = 0",
        [user.as_str()],
    )?)
}

/// Drops tokens that expired at or before `at`, and revoked ones: neither can be used or
/// inspected again, so keeping them only grows the database.
pub fn purge_tokens(c: &Connection, at: DateTime<Utc>) -> Result<usize> {
    Ok(c.execute(
        "DELETE FROM tokens WHERE expires_at <= ?1 OR revoked = 1",
        [ts(at)],
    )?)
}

/// [`purge_tokens`] for one user's tokens (done on every issue, cheap with the user index).
pub fn purge_user_tokens(c: &Connection, user: &UserId, at: DateTime<Utc>) -> Result<usize> {
    Ok(c.execute(
        "DELETE FROM tokens WHERE user_id = ?1 AND (expires_at <= ?2 OR revoked = 1)",
        params![user.as_str(), ts(at)],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let mut c = Connection::open_in_memory().expect("open");
        c.execute_batch("PRAGMA foreign_keys = ON").expect("fk");
        crate::migrations::apply(&mut c).expect("migrate");
        insert_domain(
            &c,
            &Domain {
                id: DomainId::default_domain(),
                name: "Default".into(),
                description: String::new(),
                enabled: true,
            },
        )
        .expect("domain");
        c
    }

    fn user(name: &str) -> User {
        User {
            id: UserId::generate(),
            domain_id: DomainId::default_domain(),
            name: name.into(),
            email: None,
            description: None,
            enabled: true,
            default_project_id: None,
            password_expires_at: None,
        }
    }

    #[test]
    fn duplicate_user_name_in_a_domain_is_a_conflict() {
        let c = conn();
        insert_user(&c, &user("alice"), None).expect("first");
        let err = insert_user(&c, &user("alice"), None).expect_err("second");
        assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    }

    #[test]
    fn deleting_a_project_drops_its_assignments_and_tokens() {
        let c = conn();
        let u = user("bob");
        insert_user(&c, &u, None).expect("user");
        let p = Project {
            id: ProjectId::generate(),
            domain_id: DomainId::default_domain(),
            name: "p".into(),
            description: String::new(),
            enabled: true,
        };
        insert_project(&c, &p).expect("project");
        let r = Role {
            id: RoleId::generate(),
            name: "member".into(),
            description: None,
        };
        insert_role(&c, &r).expect("role");
        grant(
            &c,
            &Assignment {
                user_id: u.id.clone(),
                target: Target::Project(p.id.clone()),
                role_id: r.id.clone(),
            },
        )
        .expect("grant");
        let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
        let tok = TokenRecord {
            user_id: u.id.clone(),
            project_id: Some(p.id.clone()),
            methods: vec![AuthMethod::Password],
            issued_at: now,
            expires_at: now + chrono::Duration::hours(1),
            audit_ids: vec!["a".into()],
        };
        insert_token(&c, b"h", &tok, None).expect("token");
        assert_eq!(live_token(&c, b"h", now).expect("get"), Some(tok));
        assert!(delete_project(&c, &p.id).expect("delete"));
        assert!(live_token(&c, b"h", now).expect("get").is_none());
        assert!(
            list_assignments(&c, &AssignmentFilter::default())
                .expect("list")
                .is_empty()
        );
    }

    #[test]
    fn expired_and_revoked_tokens_are_not_live() {
        let c = conn();
        let u = user("carol");
        insert_user(&c, &u, None).expect("user");
        let now = Utc::now();
        let tok = TokenRecord {
            user_id: u.id.clone(),
            project_id: None,
            methods: vec![AuthMethod::Password, AuthMethod::Token],
            issued_at: now,
            expires_at: now + chrono::Duration::seconds(10),
            audit_ids: vec!["x".into(), "y".into()],
        };
        insert_token(&c, b"t", &tok, None).expect("insert");
        assert!(live_token(&c, b"t", now).expect("live").is_some());
        assert!(
            live_token(&c, b"t", now + chrono::Duration::seconds(11))
                .expect("later")
                .is_none()
        );
        assert!(revoke_token(&c, b"t").expect("revoke"));
        assert!(live_token(&c, b"t", now).expect("revoked").is_none());
        assert_eq!(
            purge_tokens(&c, now + chrono::Duration::seconds(11)).expect("purge"),
            1
        );
    }

    #[test]
    fn revoking_a_token_revokes_its_chain_and_the_cap_keeps_the_newest() {
        let c = conn();
        let u = user("dave");
        insert_user(&c, &u, None).expect("user");
        let now = Utc::now();
        let tok = |audit: &str, age: i64| TokenRecord {
            user_id: u.id.clone(),
            project_id: None,
            methods: vec![AuthMethod::Password],
            issued_at: now - chrono::Duration::seconds(age),
            expires_at: now + chrono::Duration::hours(1),
            audit_ids: vec![audit.into()],
        };
        insert_token(&c, b"root", &tok("r", 30), None).expect("root");
        insert_token(&c, b"child", &tok("c", 20), Some(b"root")).expect("child");
        insert_token(&c, b"grandchild", &tok("g", 10), Some(b"child")).expect("grandchild");
        insert_token(&c, b"other", &tok("o", 5), None).expect("other");
        assert!(revoke_token(&c, b"child").expect("revoke"));
        assert!(live_token(&c, b"root", now).expect("root").is_some());
        assert!(live_token(&c, b"child", now).expect("child").is_none());
        assert!(live_token(&c, b"grandchild", now).expect("gc").is_none());
        assert_eq!(live_token_count(&c, &u.id, now).expect("count"), 2);
        // Keep one: the oldest live one (root) goes, the newest stays.
        assert_eq!(revoke_oldest_tokens(&c, &u.id, 1, now).expect("cap"), 1);
        assert!(live_token(&c, b"root", now).expect("root").is_none());
        assert!(live_token(&c, b"other", now).expect("other").is_some());
        assert_eq!(purge_user_tokens(&c, &u.id, now).expect("purge"), 3);
        assert_eq!(token_rows(&c).expect("rows"), 1);
    }
}
