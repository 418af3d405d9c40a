//! The identity service proper: authentication, token validation and administration.

use std::sync::Arc;
use std::time::Duration;

use model::{
    Assignment, Domain, DomainId, Persona, Project, ProjectId, Role, RoleId, Target, TokenRecord,
    User, UserId,
};
use store::Store;
use store::identity as sql;

use crate::limits::{HashGate, RateLimit};
use crate::lockout::{Lockout, LockoutConfig};
use crate::policy::{Context, Require};
use crate::token_cache::{TokenCache, TokenCacheStats};
use crate::{Error, Result, not_found, secret};

#[derive(Clone, Debug)]
pub struct IdentityConfig {
    /// How long a token lives.
    pub token_ttl: Duration,
    pub lockout: LockoutConfig,
    pub limits: AuthLimits,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            token_ttl: Duration::from_secs(3600),
            lockout: LockoutConfig::default(),
            limits: AuthLimits::default(),
        }
    }
}

/// Bounds on what callers, authenticated or not, can make the identity service hold or do.
#[derive(Clone, Debug)]
pub struct AuthLimits {
    /// Token requests (`POST /v3/auth/tokens`) per second from one source address; 0 turns
    /// the limit off.
    pub auth_per_sec: f64,
    /// Token requests one source may make at once before the rate applies.
    pub auth_burst: u32,
    /// Password hashes that may wait for a hashing thread; past it requests get 503.
    pub hash_queue: usize,
    /// Live tokens per user; issuing one more revokes the user's oldest.
    pub max_tokens_per_user: usize,
}

impl Default for AuthLimits {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            auth_per_sec: 20.0,
            auth_burst: 100,
            hash_queue: 8 * cpus,
            max_tokens_per_user: 1000,
        }
    }
}

/// A user named in an auth request: by id, or by name within a domain.
#[derive(Clone, Debug)]
pub enum UserRef {
    Id(UserId),
    Name { name: String, domain: DomainRef },
}

#[derive(Clone, Debug)]
pub enum DomainRef {
    Id(DomainId),
    Name(String),
}

#[derive(Clone, Debug)]
pub enum ProjectRef {
    Id(ProjectId),
    Name { name: String, domain: DomainRef },
}

/// What a token is scoped to.
#[derive(Clone, Debug)]
pub enum Scope {
    Unscoped,
    Project(ProjectRef),
}

/// Everything a validated token says, ready to be rendered.
#[derive(Clone, Debug)]
pub struct TokenInfo {
    pub record: TokenRecord,
    pub user: User,
    pub user_domain: Domain,
    pub project: Option<(Project, Domain)>,
    /// Effective roles on the project, implied roles included; empty when unscoped.
    pub roles: Vec<Role>,
}

impl TokenInfo {
    pub fn context(&self) -> Context {
        let persona = self
            .roles
            .iter()
            .filter_map(|r| Persona::from_role_name(&r.name))
            .max();
        Context {
            user_id: self.user.id.clone(),
            user_name: self.user.name.clone(),
            user_domain_id: self.user.domain_id.clone(),
            project_id: self.project.as_ref().map(|(p, _)| p.id.clone()),
            roles: self.roles.iter().map(|r| r.name.clone()).collect(),
            persona,
        }
    }
}

/// A freshly issued token: the secret is shown to the client once and never stored.
#[derive(Clone, Debug)]
pub struct Issued {
    pub token: String,
    pub info: TokenInfo,
}

#[derive(Clone, Debug)]
pub struct NewProject {
    pub name: String,
    pub domain_id: Option<DomainId>,
    pub description: String,
    pub enabled: bool,
}

#[derive(Clone, Debug, Default)]
pub struct ProjectPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

#[derive(Clone, Debug)]
pub struct NewUser {
    pub name: String,
    pub domain_id: Option<DomainId>,
    pub password: Option<String>,
    pub email: Option<String>,
    pub description: Option<String>,
    pub enabled: bool,
    pub default_project_id: Option<ProjectId>,
}

#[derive(Clone, Debug, Default)]
pub struct UserPatch {
    pub name: Option<String>,
    pub password: Option<String>,
    pub email: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
    pub default_project_id: Option<Option<ProjectId>>,
}

#[derive(Clone)]
pub struct Identity {
    pub(crate) store: Store,
    pub(crate) cfg: IdentityConfig,
    pub(crate) lockout: Arc<Lockout>,
    pub(crate) rate: Arc<RateLimit>,
    pub(crate) hash_gate: Arc<HashGate>,
    pub(crate) tokens: Arc<TokenCache>,
}

impl Identity {
    pub fn new(store: Store, cfg: IdentityConfig) -> Self {
        let lockout = Arc::new(Lockout::new(cfg.lockout.clone()));
        let rate = Arc::new(RateLimit::new(
            cfg.limits.auth_per_sec,
            cfg.limits.auth_burst,
        ));
        let hash_gate = Arc::new(HashGate::new(cfg.limits.hash_queue));
        Self {
            store,
            cfg,
            lockout,
            rate,
            hash_gate,
            tokens: Arc::new(TokenCache::new()),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// How the cache of validated tokens is doing.
    pub fn token_cache_stats(&self) -> TokenCacheStats {
        self.tokens.stats()
    }

    /// Projects the caller may scope a token to.
    pub async fn projects_for(&self, user: &UserId) -> Result<Vec<Project>> {
        let user = user.clone();
        Ok(self
            .store
            .read(move |c| sql::projects_of_user(c, &user))
            .await?)
    }

    // ---- domains -------------------------------------------------------------------------

    pub async fn list_domains(&self, ctx: &Context, name: Option<String>) -> Result<Vec<Domain>> {
        ctx.require_admin()?;
        Ok(self
            .store
            .read(move |c| sql::list_domains(c, name.as_deref()))
            .await?)
    }

    pub async fn get_domain(&self, ctx: &Context, id: &DomainId) -> Result<Domain> {
        if !ctx.is_admin() && &ctx.user_domain_id != id {
            return Err(crate::policy::forbidden());
        }
        let id2 = id.clone();
        self.store
            .read(move |c| sql::get_domain(c, &id2))
            .await?
            .ok_or_else(|| not_found("domain", id))
    }

    pub async fn domain(&self, id: &DomainId) -> Result<Option<Domain>> {
        let id = id.clone();
        Ok(self.store.read(move |c| sql::get_domain(c, &id)).await?)
    }

    // ---- projects ------------------------------------------------------------------------

    pub async fn list_projects(
        &self,
        ctx: &Context,
        filter: sql::ProjectFilter,
    ) -> Result<Vec<Project>> {
        ctx.require_admin()?;
        Ok(self
            .store
            .read(move |c| sql::list_projects(c, &filter))
            .await?)
    }

    pub async fn get_project(&self, ctx: &Context, id: &ProjectId) -> Result<Project> {
        if !ctx.is_admin() && !ctx.in_project(id) {
            return Err(crate::policy::forbidden());
        }
        let id2 = id.clone();
        self.store
            .read(move |c| sql::get_project(c, &id2))
            .await?
            .ok_or_else(|| not_found("project", id))
    }

    pub async fn create_project(&self, ctx: &Context, new: NewProject) -> Result<Project> {
        ctx.require_admin()?;
        validate_name(&new.name)?;
        let domain_id = new.domain_id.unwrap_or_else(|| ctx.user_domain_id.clone());
        let p = Project {
            id: ProjectId::generate(),
            domain_id,
            name: new.name,
            description: new.description,
            enabled: new.enabled,
        };
        let out = p.clone();
        self.store
            .write(move |tx| {
                if sql::get_domain(tx, &p.domain_id)?.is_none() {
                    return Ok(Err(not_found("domain", &p.domain_id)));
                }
                if sql::find_project(tx, &p.domain_id, &p.name)?.is_some() {
                    return Ok(Err(Error::Conflict(format!(
                        "Conflict occurred attempting to store project - it is not permitted to have two projects with the same name in the same domain : {}.",
                        p.name
                    ))));
                }
                sql::insert_project(tx, &p)?;
                Ok(Ok(()))
            })
            .await??;
        tracing::info!(project_id = %out.id, "project created");
        Ok(out)
    }

    pub async fn update_project(
        &self,
        ctx: &Context,
        id: &ProjectId,
        patch: ProjectPatch,
    ) -> Result<Project> {
        ctx.require_admin()?;
        if let Some(n) = &patch.name {
            validate_name(n)?;
        }
        let id2 = id.clone();
        self.store
            .write(move |tx| {
                let Some(mut p) = sql::get_project(tx, &id2)? else {
                    return Ok(Err(not_found("project", &id2)));
                };
                if let Some(n) = patch.name {
                    p.name = n;
                }
                if let Some(d) = patch.description {
                    p.description = d;
                }
                if let Some(e) = patch.enabled {
                    p.enabled = e;
                }
                sql::update_project(tx, &p)?;
                Ok(Ok(p))
            })
            .await?
    }

    pub async fn delete_project(&self, ctx: &Context, id: &ProjectId) -> Result<()> {
        ctx.require_admin()?;
        let id2 = id.clone();
        if !self
            .store
            .write(move |tx| sql::delete_project(tx, &id2))
            .await?
        {
            return Err(not_found("project", id));
        }
        tracing::info!(project_id = %id, "project deleted");
        Ok(())
    }

    // ---- users ---------------------------------------------------------------------------

    pub async fn list_users(&self, ctx: &Context, filter: sql::UserFilter) -> Result<Vec<User>> {
        ctx.require_admin()?;
        Ok(self
            .store
            .read(move |c| sql::list_users(c, &filter))
            .await?)
    }

    pub async fn get_user(&self, ctx: &Context, id: &UserId) -> Result<User> {
        if !ctx.is_admin() && !ctx.is_self(id) {
            return Err(crate::policy::forbidden());
        }
        let id2 = id.clone();
        self.store
            .read(move |c| sql::get_user(c, &id2))
            .await?
            .ok_or_else(|| not_found("user", id))
    }

    pub async fn create_user(&self, ctx: &Context, new: NewUser) -> Result<User> {
        ctx.require_admin()?;
        self.create_user_unchecked(new, &ctx.user_domain_id).await
    }

    async fn create_user_unchecked(&self, new: NewUser, default_domain: &DomainId) -> Result<User> {
        validate_name(&new.name)?;
        let hash = match new.password {
            Some(p) => Some(self.hash_password(p).await?),
            None => None,
        };
        let u = User {
            id: UserId::generate(),
            domain_id: new.domain_id.unwrap_or_else(|| default_domain.clone()),
            name: new.name,
            email: new.email,
            description: new.description,
            enabled: new.enabled,
            default_project_id: new.default_project_id,
            password_expires_at: None,
        };
        let out = u.clone();
        self.store
            .write(move |tx| {
                if sql::get_domain(tx, &u.domain_id)?.is_none() {
                    return Ok(Err(not_found("domain", &u.domain_id)));
                }
                if sql::find_user(tx, &u.domain_id, &u.name)?.is_some() {
                    return Ok(Err(Error::Conflict(format!(
                        "Conflict occurred attempting to store user - Duplicate entry found with name {} at domain ID {}.",
                        u.name, u.domain_id
                    ))));
                }
                sql::insert_user(tx, &u, hash.as_deref())?;
                Ok(Ok(()))
            })
            .await??;
        tracing::info!(user_id = %out.id, "user created");
        Ok(out)
    }

    pub async fn update_user(&self, ctx: &Context, id: &UserId, patch: UserPatch) -> Result<User> {
        ctx.require_admin()?;
        if let Some(n) = &patch.name {
            validate_name(n)?;
        }
        let hash = match patch.password.clone() {
            Some(p) => Some(self.hash_password(p).await?),
            None => None,
        };
        let id2 = id.clone();
        let user = self
            .store
            .write(move |tx| {
                let Some(mut u) = sql::get_user(tx, &id2)? else {
                    return Ok(Err(not_found("user", &id2)));
                };
                if let Some(n) = patch.name {
                    u.name = n;
                }
                if let Some(e) = patch.email {
                    u.email = e;
                }
                if let Some(d) = patch.description {
                    u.description = d;
                }
                if let Some(p) = patch.default_project_id {
                    u.default_project_id = p;
                }
                let disabling = patch.enabled == Some(false) && u.enabled;
                if let Some(e) = patch.enabled {
                    u.enabled = e;
                }
                sql::update_user(tx, &u)?;
                if let Some(h) = &hash {
                    sql::set_password_hash(tx, &u.id, h)?;
                }
                // A new password or a disabled account ends every session of the user.
                if hash.is_some() || disabling {
                    sql::revoke_user_tokens(tx, &u.id)?;
                }
                Ok(Ok(u))
            })
            .await??;
        if patch.password.is_some() {
            self.lockout.forget(user.id.as_str());
            tracing::info!(user_id = %user.id, "password changed");
        }
        Ok(user)
    }

    pub async fn delete_user(&self, ctx: &Context, id: &UserId) -> Result<()> {
        ctx.require_admin()?;
        let id2 = id.clone();
        if !self
            .store
            .write(move |tx| sql::delete_user(tx, &id2))
            .await?
        {
            return Err(not_found("user", id));
        }
        tracing::info!(user_id = %id, "user deleted");
        Ok(())
    }

    // ---- roles ---------------------------------------------------------------------------

    pub async fn list_roles(&self, ctx: &Context, name: Option<String>) -> Result<Vec<Role>> {
        if !ctx.has(Persona::Reader) {
            return Err(crate::policy::forbidden());
        }
        Ok(self
            .store
            .read(move |c| sql::list_roles(c, name.as_deref()))
            .await?)
    }

    pub async fn get_role(&self, ctx: &Context, id: &RoleId) -> Result<Role> {
        if !ctx.has(Persona::Reader) {
            return Err(crate::policy::forbidden());
        }
        let id2 = id.clone();
        self.store
            .read(move |c| sql::get_role(c, &id2))
            .await?
            .ok_or_else(|| not_found("role", id))
    }

    pub async fn create_role(
        &self,
        ctx: &Context,
        name: String,
        description: Option<String>,
    ) -> Result<Role> {
        ctx.require_admin()?;
        validate_name(&name)?;
        let role = Role {
            id: RoleId::generate(),
            name,
            description,
        };
        let out = role.clone();
        self.store
            .write(move |tx| {
                if sql::find_role(tx, &role.name)?.is_some() {
                    return Ok(Err(Error::Conflict(format!(
                        "Conflict occurred attempting to store role - Duplicate entry found with name {}.",
                        role.name
                    ))));
                }
                sql::insert_role(tx, &role)?;
                Ok(Ok(()))
            })
            .await??;
        Ok(out)
    }

    pub async fn delete_role(&self, ctx: &Context, id: &RoleId) -> Result<()> {
        ctx.require_admin()?;
        let id2 = id.clone();
        let name = self
            .store
            .read(move |c| sql::get_role(c, &id2))
            .await?
            .ok_or_else(|| not_found("role", id))?
            .name;
        if Persona::from_role_name(&name).is_some() {
            return Err(Error::Forbidden(format!(
                "The role {name} is one of onebox's built-in personas and cannot be deleted."
            )));
        }
        let id2 = id.clone();
        self.store
            .write(move |tx| sql::delete_role(tx, &id2))
            .await?;
        Ok(())
    }

    // ---- assignments ---------------------------------------------------------------------

    pub async fn grant(&self, ctx: &Context, a: Assignment) -> Result<()> {
        ctx.require_admin()?;
        self.store
            .write(move |tx| {
                if let Some(missing) = missing_assignment_part(tx, &a)? {
                    return Ok(Err(missing));
                }
                sql::grant(tx, &a)?;
                Ok(Ok(()))
            })
            .await?
    }

    pub async fn check_grant(&self, ctx: &Context, a: Assignment) -> Result<()> {
        ctx.require_admin()?;
        let f = sql::AssignmentFilter {
            user_id: Some(a.user_id.clone()),
            target: Some(a.target.clone()),
            role_id: Some(a.role_id.clone()),
        };
        let found = self
            .store
            .read(move |c| sql::list_assignments(c, &f))
            .await?;
        if found.is_empty() {
            return Err(not_found("role assignment", ""));
        }
        Ok(())
    }

    pub async fn revoke_grant(&self, ctx: &Context, a: Assignment) -> Result<()> {
        ctx.require_admin()?;
        if !self.store.write(move |tx| sql::revoke(tx, &a)).await? {
            return Err(not_found("role assignment", ""));
        }
        Ok(())
    }

    /// Role assignments. A non-admin may list only its own.
    pub async fn list_assignments(
        &self,
        ctx: &Context,
        filter: sql::AssignmentFilter,
    ) -> Result<Vec<Assignment>> {
        if !ctx.is_admin() && filter.user_id.as_ref() != Some(&ctx.user_id) {
            return Err(crate::policy::forbidden());
        }
        Ok(self
            .store
            .read(move |c| sql::list_assignments(c, &filter))
            .await?)
    }

    /// Effective roles of a user on a project (implied roles included).
    pub async fn effective_roles(&self, user: &UserId, project: &ProjectId) -> Result<Vec<Role>> {
        let (u, p) = (user.clone(), project.clone());
        Ok(self.store.read(move |c| effective_roles(c, &u, &p)).await?)
    }

    /// Every (prior, implied) role pair.
    pub async fn implied_pairs(&self) -> Result<Vec<(RoleId, RoleId)>> {
        Ok(self.store.read(sql::implied_roles).await?)
    }

    /// Users, projects and roles by id, for rendering names (`include_names`).
    pub async fn names(
        &self,
        users: Vec<UserId>,
        projects: Vec<ProjectId>,
        roles: Vec<RoleId>,
    ) -> Result<(Vec<User>, Vec<Project>, Vec<Role>)> {
        Ok(self
            .store
            .read(move |c| {
                let mut us = Vec::new();
                for u in &users {
                    us.extend(sql::get_user(c, u)?);
                }
                let mut ps = Vec::new();
                for p in &projects {
                    ps.extend(sql::get_project(c, p)?);
                }
                let mut rs = Vec::new();
                for r in &roles {
                    rs.extend(sql::get_role(c, r)?);
                }
                Ok((us, ps, rs))
            })
            .await?)
    }

    /// Resolves a user by id or by name in a domain, for admin lookups.
    pub async fn find_user(&self, user: UserRef) -> Result<Option<User>> {
        Ok(self
            .store
            .read(move |c| match &user {
                UserRef::Id(id) => sql::get_user(c, id),
                UserRef::Name { name, domain } => match resolve_domain(c, domain)? {
                    Some(d) => sql::find_user(c, &d.id, name),
                    None => Ok(None),
                },
            })
            .await?)
    }

    pub(crate) async fn create_user_bootstrap(&self, new: NewUser) -> Result<User> {
        self.create_user_unchecked(new, &DomainId::default_domain())
            .await
    }
}

pub(crate) fn invalid_credentials() -> Error {
    Error::Unauthorized("The request you have made requires authentication.".into())
}

fn validate_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > 255 {
        return Err(Error::BadRequest(
            "Invalid input for field 'name': it must be 1 to 255 characters.".into(),
        ));
    }
    Ok(())
}

impl Identity {
    /// Hashes a new password on the hashing threads, within the queue's bound.
    pub(crate) async fn hash_password(&self, password: String) -> Result<String> {
        self.hash_gate
            .run(move || secret::hash_password(&password))
            .await?
    }
}

pub(crate) fn resolve_domain(
    c: &store::Connection,
    d: &DomainRef,
) -> store::Result<Option<Domain>> {
    match d {
        DomainRef::Id(id) => sql::get_domain(c, id),
        DomainRef::Name(n) => sql::find_domain_by_name(c, n),
    }
}

/// The first part of an assignment that does not exist, as the error to report.
fn missing_assignment_part(c: &store::Connection, a: &Assignment) -> store::Result<Option<Error>> {
    if sql::get_role(c, &a.role_id)?.is_none() {
        return Ok(Some(not_found("role", &a.role_id)));
    }
    if sql::get_user(c, &a.user_id)?.is_none() {
        return Ok(Some(not_found("user", &a.user_id)));
    }
    Ok(match &a.target {
        Target::Project(p) => sql::get_project(c, p)?
            .is_none()
            .then(|| not_found("project", p)),
        Target::Domain(d) => sql::get_domain(c, d)?
            .is_none()
            .then(|| not_found("domain", d)),
    })
}

fn effective_roles(
    c: &store::Connection,
    user: &UserId,
    project: &ProjectId,
) -> store::Result<Vec<Role>> {
    let direct = sql::direct_roles_on_project(c, user, project)?;
    let implied = sql::implied_roles(c)?;
    let mut ids: Vec<RoleId> = direct.clone();
    let mut i = 0;
    while i < ids.len() {
        let cur = ids[i].clone();
        for (prior, imp) in &implied {
            if prior == &cur && !ids.contains(imp) {
                ids.push(imp.clone());
            }
        }
        i += 1;
    }
    let mut roles = Vec::with_capacity(ids.len());
    for id in &ids {
        roles.extend(sql::get_role(c, id)?);
    }
    Ok(roles)
}

/// Completes a token record with its user, project and roles, or `None` when it no longer
/// stands (user gone or disabled, project gone or disabled, no role left on the project).
pub(crate) fn load_info(
    c: &store::Connection,
    record: TokenRecord,
) -> store::Result<Option<TokenInfo>> {
    let Some(user) = sql::get_user(c, &record.user_id)? else {
        return Ok(None);
    };
    if !user.enabled {
        return Ok(None);
    }
    let Some(user_domain) = sql::get_domain(c, &user.domain_id)? else {
        return Ok(None);
    };
    let (project, roles) = match &record.project_id {
        None => (None, Vec::new()),
        Some(pid) => {
            let Some(p) = sql::get_project(c, pid)? else {
                return Ok(None);
            };
            if !p.enabled {
                return Ok(None);
            }
            let Some(d) = sql::get_domain(c, &p.domain_id)? else {
                return Ok(None);
            };
            let roles = effective_roles(c, &user.id, pid)?;
            if roles.is_empty() {
                return Ok(None);
            }
            (Some((p, d)), roles)
        }
    };
    Ok(Some(TokenInfo {
        record,
        user,
        user_domain,
        project,
        roles,
    }))
}
