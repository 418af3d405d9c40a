//! The identity service: who is calling, on which project, with which roles.
//!
//! Tokens are opaque random strings handed to the client once; the store keeps only their
//! SHA-256, so a copy of the database cannot be replayed as credentials. Passwords are hashed
//! with argon2id. The roles in a token are computed when it is validated, not when it is
//! issued, so removing a role assignment takes effect at once, as in Keystone.

mod auth;
pub mod bootstrap;
mod limits;
mod lockout;
pub mod policy;
mod secret;
mod service;
mod token_cache;

pub use lockout::LockoutConfig;
pub use policy::Context;
pub use service::AuthLimits;
pub use service::{
    DomainRef, Identity, IdentityConfig, Issued, NewProject, NewUser, ProjectPatch, ProjectRef,
    Scope, TokenInfo, UserPatch, UserRef,
};
pub use token_cache::TokenCacheStats;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Authentication failed; the message is safe to show the client.
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("could not find {kind}: {id}")]
    NotFound { kind: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(store::Error),
    #[error("password hashing failed")]
    Hash,
    /// Too much password hashing is already waiting; the caller should retry shortly.
    #[error("The service is busy checking other passwords; retry shortly.")]
    Busy { retry_after: std::time::Duration },
    /// The caller's address has sent too many authentication requests.
    #[error("Too many authentication requests from this address; retry later.")]
    TooManyRequests { retry_after: std::time::Duration },
}

impl From<store::Error> for Error {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::Conflict(m) => Error::Conflict(m),
            other => Error::Store(other),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn not_found(kind: &'static str, id: impl ToString) -> Error {
    Error::NotFound {
        kind,
        id: id.to_string(),
    }
}
