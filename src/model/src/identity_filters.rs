//! What identity listings may filter on: plain values, matched exactly by the store.

use crate::{DomainId, RoleId, Target, UserId};

/// Which projects a listing returns; `None` matches any.
#[derive(Debug, Default, Clone)]
pub struct ProjectFilter {
    pub name: Option<String>,
    pub domain_id: Option<DomainId>,
    pub enabled: Option<bool>,
}

/// Which users a listing returns; `None` matches any.
#[derive(Debug, Default, Clone)]
pub struct UserFilter {
    pub name: Option<String>,
    pub domain_id: Option<DomainId>,
    pub enabled: Option<bool>,
}

/// Which role assignments a listing returns; `None` matches any.
#[derive(Debug, Default, Clone)]
pub struct AssignmentFilter {
    pub user_id: Option<UserId>,
    pub target: Option<Target>,
    pub role_id: Option<RoleId>,
}
