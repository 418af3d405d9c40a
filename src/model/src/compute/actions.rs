//! The record of what was done to a server (os-instance-actions): one action per request,
//! and the events of its steps.

use chrono::{DateTime, Utc};

/// One request that acted on a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceAction {
    pub id: i64,
    pub server_id: String,
    pub request_id: String,
    pub action: String,
    pub project_id: String,
    pub user_id: String,
    pub start_time: DateTime<Utc>,
    pub finish_time: Option<DateTime<Utc>>,
    pub message: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// One step of an action, with its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionEvent {
    pub event: String,
    pub start_time: DateTime<Utc>,
    pub finish_time: Option<DateTime<Utc>>,
    pub result: Option<String>,
    pub details: Option<String>,
    pub host: String,
}
