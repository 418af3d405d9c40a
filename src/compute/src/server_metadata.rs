//! A server's metadata (Nova's server-metadata API): set, replace, delete an item; changes
//! only while the server is settled, within the project's `metadata_items` quota.

use std::collections::BTreeMap;

use model::compute::{Server, VmState};
use store::compute::{self as sql};

use model::Context;

use crate::{Compute, Error, Result};

impl Compute {
    /// Checks that metadata may change now (Nova: active, paused, suspended or stopped, with
    /// no task running) and the caller may change it.
    async fn server_for_metadata(&self, ctx: &Context, id: &str, action: &str) -> Result<Server> {
        let s = self
            .server_for_write(ctx, id, "os_compute_api:server-metadata:update")
            .await?;
        crate::common::check_lock(ctx, &s)?;
        let ok_vm = matches!(
            s.vm_state,
            VmState::Active | VmState::Paused | VmState::Suspended | VmState::Stopped
        );
        if !ok_vm || s.task_state.is_some() {
            let (attr, state) = match s.task_state {
                Some(t) if ok_vm => ("task_state", t.as_str()),
                _ => ("vm_state", s.vm_state.as_str()),
            };
            return Err(Error::Conflict(format!(
                "Cannot '{action}' instance {} while it is in {attr} {state}",
                s.id
            )));
        }
        Ok(s)
    }

    /// Replaces (`replace`) or merges metadata; returns the resulting metadata.
    pub async fn set_metadata(
        &self,
        ctx: &Context,
        id: &str,
        items: BTreeMap<String, String>,
        replace: bool,
    ) -> Result<BTreeMap<String, String>> {
        let s = self.server_for_metadata(ctx, id, "update_metadata").await?;
        let mut merged = if replace {
            BTreeMap::new()
        } else {
            s.metadata.clone()
        };
        merged.extend(items);
        self.check_metadata_quota(&s.project_id, merged.len())
            .await?;
        let sid = s.id.clone();
        let m2 = merged.clone();
        let bound_by_lock = !ctx.is_admin();
        self.store
            .write(move |tx| {
                if bound_by_lock {
                    crate::common::refuse_if_locked(tx, &sid)?;
                }
                sql::clear_metadata(tx, &sid)?;
                for (k, v) in &m2 {
                    sql::set_metadata_item(tx, &sid, k, v)?;
                }
                sql::touch_server(tx, &sid)
            })
            .await?;
        Ok(merged)
    }

    pub async fn delete_metadata_item(&self, ctx: &Context, id: &str, key: &str) -> Result<()> {
        let s = self.server_for_metadata(ctx, id, "delete_metadata").await?;
        if !s.metadata.contains_key(key) {
            return Err(Error::NotFound("Metadata item was not found".into()));
        }
        let (sid, k) = (s.id.clone(), key.to_owned());
        let bound_by_lock = !ctx.is_admin();
        self.store
            .write(move |tx| {
                if bound_by_lock {
                    crate::common::refuse_if_locked(tx, &sid)?;
                }
                sql::delete_metadata_item(tx, &sid, &k)?;
                sql::touch_server(tx, &sid)
            })
            .await?;
        Ok(())
    }
}
