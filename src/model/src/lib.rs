//! Domain types shared by every layer of onebox.
//!
//! Nothing here knows the OpenStack wire format: the `api` crate converts these types into the
//! JSON each service speaks. Ids are newtypes so that a project id can never be passed where a
//! user id is expected.

pub mod compute;
mod context;
mod identity_filters;
pub mod operator;
pub mod volume;

pub use context::Context;
pub use identity_filters::{AssignmentFilter, ProjectFilter, UserFilter};

use std::fmt;

use chrono::{DateTime, Utc};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// A fresh random id: 32 lower-case hex digits, as Keystone makes them.
            pub fn generate() -> Self {
                Self(uuid::Uuid::new_v4().simple().to_string())
            }

            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// The id of an identity domain (`default` for the Default domain).
    DomainId
);
id_type!(
    /// The id of a project (a tenant).
    ProjectId
);
id_type!(
    /// The id of a user.
    UserId
);
id_type!(
    /// The id of a role.
    RoleId
);

impl DomainId {
    /// The Default domain, which Keystone always names `default`.
    pub fn default_domain() -> Self {
        Self("default".to_owned())
    }
}

/// The four personas of Nova's secure RBAC, from weakest to strongest. Each implies every
/// persona below it: an admin is also a manager, a member and a reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Persona {
    Reader,
    Member,
    Manager,
    Admin,
}

impl Persona {
    pub const ALL: [Persona; 4] = [
        Persona::Reader,
        Persona::Member,
        Persona::Manager,
        Persona::Admin,
    ];

    /// The name of the role that grants this persona.
    pub fn role_name(self) -> &'static str {
        match self {
            Persona::Reader => "reader",
            Persona::Member => "member",
            Persona::Manager => "manager",
            Persona::Admin => "admin",
        }
    }

    pub fn from_role_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.role_name() == name)
    }

    /// The persona directly implied by this one (admin → manager → member → reader).
    pub fn implies(self) -> Option<Persona> {
        match self {
            Persona::Admin => Some(Persona::Manager),
            Persona::Manager => Some(Persona::Member),
            Persona::Member => Some(Persona::Reader),
            Persona::Reader => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain {
    pub id: DomainId,
    pub name: String,
    pub description: String,
    pub enabled: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    pub id: ProjectId,
    pub domain_id: DomainId,
    pub name: String,
    pub description: String,
    pub enabled: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub domain_id: DomainId,
    pub name: String,
    pub email: Option<String>,
    pub description: Option<String>,
    pub enabled: bool,
    pub default_project_id: Option<ProjectId>,
    pub password_expires_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    pub id: RoleId,
    pub name: String,
    pub description: Option<String>,
}

/// Where a role is granted: on a project or on a whole domain.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Project(ProjectId),
    Domain(DomainId),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub user_id: UserId,
    pub target: Target,
    pub role_id: RoleId,
}

/// How a token was obtained, as Keystone reports it in `methods`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    Password,
    Token,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::Token => "token",
        }
    }
}

/// A stored token. The token string itself is never kept: the store knows only its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    pub user_id: UserId,
    pub project_id: Option<ProjectId>,
    pub methods: Vec<AuthMethod>,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The audit id of this token followed by the one of the token it was rescoped from.
    pub audit_ids: Vec<String>,
}

pub mod image;
pub mod network;
