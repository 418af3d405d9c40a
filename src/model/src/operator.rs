//! The operator's view of the box: server groups and the services os-services lists.

use chrono::{DateTime, Utc};

/// A server group (os-server-groups) and its live members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerGroup {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub user_id: String,
    pub policy: String,
    pub max_server_per_host: Option<i64>,
    pub created_at: DateTime<Utc>,
    /// Live member servers, in the order they joined.
    pub members: Vec<String>,
}

/// One service of the box, as os-services shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRow {
    pub binary: String,
    /// The integer id of microversions before 2.53.
    pub seq: i64,
    /// The UUID of 2.53 and later.
    pub id: String,
    /// For `nova-compute`: the UUID of the compute node (the hypervisor).
    pub node_id: String,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    pub forced_down: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The services of the box, in the order os-services lists them.
pub const SERVICES: &[&str] = &["nova-scheduler", "nova-conductor", "nova-compute"];

/// A host aggregate (os-aggregates): a name, the hosts in it and free-form metadata, whose
/// `availability_zone` key puts its hosts in that zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Aggregate {
    pub id: i64,
    pub uuid: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// Set when the aggregate's own row changes (a rename), as Nova's column is.
    pub updated_at: Option<DateTime<Utc>>,
    pub hosts: Vec<String>,
    pub metadata: std::collections::BTreeMap<String, String>,
}

impl Aggregate {
    /// The zone the aggregate puts its hosts in.
    pub fn availability_zone(&self) -> Option<&str> {
        self.metadata.get(AZ_KEY).map(String::as_str)
    }
}

/// The aggregate metadata key naming an availability zone.
pub const AZ_KEY: &str = "availability_zone";
