//! SQL for the compute service, a file per table or operation family: `flavors`,
//! `keypairs`, `quotas` (with quota classes), `aggregates`, `networks` (and ports), `servers` (rows and lookups),
//! `server_list` (the typed filter and sort key mapped to columns), `server_state` (task,
//! vm and power state, lock, fault, flavor), `server_metadata` (metadata and tags),
//! `sysmeta` and `instance_actions`. Callers see one module, `store::compute`: every file's
//! public items are re-exported here, and each file reaches the shared imports and row
//! helpers through `use super::*`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use model::compute::{
    Address, Backend, Flavor, FlavorId, FlavorSortKey, Keypair, KeypairType, LockedBy, PowerState,
    Server, ServerFault, ServerFilter, ServerId, ServerSortKey, TaskState, Usage, VmState,
};
use model::{ProjectId, UserId};
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter, types::Value};

pub use model::compute::{ActionEvent, InstanceAction};

use crate::query_columns::{flavor_sort_column, server_condition, server_sort_column};
use crate::{Error, Result, parse_ts, ts};

mod aggregates;
mod flavors;
mod instance_actions;
mod keypairs;
mod networks;
mod quotas;
mod server_list;
mod server_metadata;
mod server_state;
mod servers;
mod sysmeta;

pub use aggregates::*;
pub use flavors::*;
pub use instance_actions::*;
pub use keypairs::*;
pub use networks::*;
pub use quotas::*;
pub use server_list::*;
pub use server_metadata::*;
pub use server_state::*;
pub use servers::*;
pub use sysmeta::*;
