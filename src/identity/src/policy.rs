//! Policy: what a caller may do, decided from the roles in its token.
//!
//! onebox follows Nova's secure-RBAC personas. `admin` is the cloud administrator, whatever
//! project its token is scoped to; `manager`, `member` and `reader` act within their project
//! only. Roles imply one another (admin → manager → member → reader), so a check asks for the
//! weakest persona that may act and every stronger one passes too. Every API calls these
//! functions; none decides on roles by itself.

use model::ProjectId;

use crate::{Error, Result};

pub use model::Context;

/// The checks of [`Context`] that answer with identity's 403.
pub trait Require {
    fn require_admin(&self) -> Result<()>;

    /// Fails with 403 unless the caller may change resources of `project`. Use only where the
    /// resource's existence is already visible to the caller (readers of the same project);
    /// strangers should get 404 from the caller instead.
    fn require_write(&self, project: &ProjectId) -> Result<()>;
}

impl Require for Context {
    fn require_admin(&self) -> Result<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(forbidden())
        }
    }

    fn require_write(&self, project: &ProjectId) -> Result<()> {
        if self.can_write(project) {
            Ok(())
        } else {
            Err(forbidden())
        }
    }
}

pub fn forbidden() -> Error {
    Error::Forbidden("You are not authorized to perform the requested action.".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{DomainId, Persona, UserId};

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
