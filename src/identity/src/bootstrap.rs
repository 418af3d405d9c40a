//! The first identity records of a box: what `onebox init` creates.
//!
//! Bootstrap is idempotent: it creates only what is missing and never changes a password that
//! exists, so running it again on a live box is harmless.

use model::{Assignment, Domain, DomainId, Persona, Project, ProjectId, Role, RoleId, Target};
use store::identity as sql;

use crate::service::NewUser;
use crate::{Identity, Result, secret};

/// One account bootstrap makes: a user with a role on a project of the same name.
#[derive(Clone, Debug)]
pub struct Account {
    pub name: String,
    pub role: Persona,
    /// The password to give the user if it has to be created; a random one when `None`.
    pub password: Option<String>,
}

/// What happened to one account.
#[derive(Clone, Debug)]
pub struct AccountOutcome {
    pub name: String,
    pub project_id: ProjectId,
    /// The password, when this run created the user (it is known only then).
    pub new_password: Option<String>,
}

pub async fn bootstrap(identity: &Identity, accounts: &[Account]) -> Result<Vec<AccountOutcome>> {
    let store = identity.store().clone();
    // Domain and roles with their implication chain.
    store
        .write(|tx| {
            let default = DomainId::default_domain();
            if sql::get_domain(tx, &default)?.is_none() {
                sql::insert_domain(
                    tx,
                    &Domain {
                        id: default,
                        name: "Default".into(),
                        description: "The default domain".into(),
                        enabled: true,
                    },
                )?;
            }
            let mut ids = Vec::new();
            for p in Persona::ALL {
                let id = match sql::find_role(tx, p.role_name())? {
                    Some(r) => r.id,
                    None => {
                        let r = Role {
                            id: RoleId::generate(),
                            name: p.role_name().into(),
                            description: None,
                        };
                        sql::insert_role(tx, &r)?;
                        r.id
                    }
                };
                ids.push(id);
            }
            // Persona::ALL runs from weakest to strongest: each role implies the one before it.
            for pair in ids.windows(2) {
                sql::add_implied_role(tx, &pair[1], &pair[0])?;
            }
            Ok(())
        })
        .await?;

    let mut out = Vec::new();
    for acct in accounts {
        let name = acct.name.clone();
        let project = store
            .write(move |tx| {
                let d = DomainId::default_domain();
                if let Some(p) = sql::find_project(tx, &d, &name)? {
                    return Ok(p);
                }
                let p = Project {
                    id: ProjectId::generate(),
                    domain_id: d,
                    name: name.clone(),
                    description: format!("Bootstrap project for {name}"),
                    enabled: true,
                };
                sql::insert_project(tx, &p)?;
                Ok(p)
            })
            .await?;
        let existing = identity
            .find_user(crate::UserRef::Name {
                name: acct.name.clone(),
                domain: crate::DomainRef::Id(DomainId::default_domain()),
            })
            .await?;
        let (user, new_password) = match existing {
            Some(u) => (u, None),
            None => {
                let password = acct.password.clone().unwrap_or_else(secret::new_password);
                let u = identity
                    .create_user_bootstrap(NewUser {
                        name: acct.name.clone(),
                        domain_id: None,
                        password: Some(password.clone()),
                        email: None,
                        description: None,
                        enabled: true,
                        default_project_id: Some(project.id.clone()),
                    })
                    .await?;
                (u, Some(password))
            }
        };
        let role_name = acct.role.role_name();
        let a_user = user.id.clone();
        let a_project = project.id.clone();
        store
            .write(move |tx| {
                if let Some(role) = sql::find_role(tx, role_name)? {
                    sql::grant(
                        tx,
                        &Assignment {
                            user_id: a_user,
                            target: Target::Project(a_project),
                            role_id: role.id,
                        },
                    )?;
                }
                Ok(())
            })
            .await?;
        out.push(AccountOutcome {
            name: acct.name.clone(),
            project_id: project.id,
            new_password,
        });
    }
    Ok(out)
}
