//! Policy: what a caller may do, decided from the roles in its token.
//!
//! onebox follows Nova's secure-RBAC personas. `admin` is the cloud administrator, whatever
//! project its token is scoped to; `manager`, `member` and `reader` act within their project
//! only. Roles imply one another (admin → manager → member → reader), so a check asks for the
//! weakest persona that may act and every stronger one passes too. Every API calls these
//! functions; none decides on roles by itself.

use model::{DomainId, Persona, ProjectId, UserId};

use crate::{Error, Result};

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

    pub fn require_admin(&self) -> Result<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(forbidden())
        }
    }

    /// May the caller read resources owned by `project`?
    pub fn can_read(&self, project: &ProjectId) -> bool {
        self.is_admin() || (self.in_project(project) && self.has(Persona::Reader))
    }

    /// May the caller change resources owned by `project`?
    pub fn can_write(&self, project: &ProjectId) -> bool {
        self.is_admin() || (self.in_project(project) && self.has(Persona::Member))
    }

    /// Fails with 403 unless the caller may change resources of `project`. Use only where the
    /// resource's existence is already visible to the caller (readers of the same project);
    /// strangers should get 404 from the caller instead.
    pub fn require_write(&self, project: &ProjectId) -> Result<()> {
        if self.can_write(project) {
            Ok(())
        } else {
            Err(forbidden())
        }
    }

    pub fn in_project(&self, project: &ProjectId) -> bool {
        self.project_id.as_ref() == Some(project)
    }

    /// Is this call about the caller itself (own user record, own password)?
    pub fn is_self(&self, user: &UserId) -> bool {
        &self.user_id == user
    }
}

pub fn forbidden() -> Error {
    Error::Forbidden("You are not authorized to perform the requested action.".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(persona: Option<Persona>, project: &str) -> Context {
        Context {
            user_id: UserId::new("u"),
            user_name: "u".into(),
            user_domain_id: DomainId::default_domain(),
            project_id: Some(ProjectId::new(project)),
            roles: vec![],
            persona,
        }
    }

    #[test]
    fn personas_imply_weaker_ones() {
        let a = ProjectId::new("a");
        let b = ProjectId::new("b");
        let reader = ctx(Some(Persona::Reader), "a");
        assert!(reader.can_read(&a) && !reader.can_write(&a) && !reader.can_read(&b));
        let member = ctx(Some(Persona::Member), "a");
        assert!(member.can_write(&a) && !member.can_write(&b));
        let manager = ctx(Some(Persona::Manager), "a");
        assert!(manager.can_write(&a) && !manager.is_admin());
        let admin = ctx(Some(Persona::Admin), "a");
        assert!(admin.can_write(&b) && admin.require_admin().is_ok());
        let none = ctx(None, "a");
        assert!(!none.can_read(&a));
    }
}
