//! The caller of a request: who it is, which project its token is scoped to, and the
//! persona its roles give it. Every service decides on it (identity's policy adds the checks
//! that answer with identity's errors); it lives here so that compute and image reach it
//! without depending on identity.

use crate::{DomainId, Persona, ProjectId, UserId};

/// The caller of a request, as established from a validated token.
#[derive(Clone, Debug)]
pub struct Context {
    pub user_id: UserId,
    pub user_name: String,
    pub user_domain_id: DomainId,
    /// `None` for an unscoped token.
    pub project_id: Option<ProjectId>,
    /// Effective role names (implied roles included).
    pub roles: Vec<String>,
    /// The strongest persona among the roles, if any.
    pub persona: Option<Persona>,
}

impl Context {
    pub fn is_admin(&self) -> bool {
        self.persona == Some(Persona::Admin)
    }

    pub fn has(&self, p: Persona) -> bool {
        self.persona.is_some_and(|mine| mine >= p)
    }

    /// May the caller read resources owned by `project`?
    pub fn can_read(&self, project: &ProjectId) -> bool {
        self.is_admin() || (self.in_project(project) && self.has(Persona::Reader))
    }

    /// May the caller change resources owned by `project`?
    pub fn can_write(&self, project: &ProjectId) -> bool {
        self.is_admin() || (self.in_project(project) && self.has(Persona::Member))
    }

    pub fn in_project(&self, project: &ProjectId) -> bool {
        self.project_id.as_ref() == Some(project)
    }

    /// Is this call about the caller itself (own user record, own password)?
    pub fn is_self(&self, user: &UserId) -> bool {
        &self.user_id == user
    }

    /// The context of work one service does for a resource's owner after the request that
    /// asked for it has been answered (a server's build making its volumes, its delete
    /// deleting them): a member of the owner's project, never more.
    pub fn acting_for(project: &ProjectId, user: &UserId) -> Self {
        Self {
            user_id: user.clone(),
            user_name: String::new(),
            user_domain_id: DomainId::default_domain(),
            project_id: Some(project.clone()),
            roles: vec![Persona::Member.role_name().to_owned()],
            persona: Some(Persona::Member),
        }
    }
}
