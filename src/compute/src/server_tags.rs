//! A server's tags (microversion 2.26): replace all, add one, delete one.

use model::compute::{Server, VmState};
use store::compute::{self as sql};

use model::Context;

use crate::{Compute, Error, Result};

impl Compute {
    async fn server_for_tags(&self, ctx: &Context, id: &str) -> Result<Server> {
        let s = self
            .server_for_write(ctx, id, "os_compute_api:os-server-tags:update")
            .await?;
        let ok_vm = matches!(
            s.vm_state,
            VmState::Active
                | VmState::Paused
                | VmState::Suspended
                | VmState::Stopped
                | VmState::Shelved
                | VmState::ShelvedOffloaded
        );
        if !ok_vm || s.task_state.is_some() {
            return Err(Error::Conflict(format!(
                "Cannot 'update tags' instance {} while it is in vm_state {}",
                s.id,
                s.vm_state.as_str()
            )));
        }
        Ok(s)
    }

    /// Replaces all tags (`PUT /tags`), or clears them when `tags` is empty.
    pub async fn set_tags(
        &self,
        ctx: &Context,
        id: &str,
        tags: Vec<String>,
    ) -> Result<Vec<String>> {
        let s = self.server_for_tags(ctx, id).await?;
        let sid = s.id.clone();
        let mut t2 = tags.clone();
        t2.sort();
        t2.dedup();
        let out = t2.clone();
        self.store
            .write(move |tx| {
                sql::clear_tags(tx, &sid)?;
                for t in &t2 {
                    sql::add_tag(tx, &sid, t)?;
                }
                sql::touch_server(tx, &sid)
            })
            .await?;
        Ok(out)
    }

    /// Adds one tag; true when it was new.
    pub async fn add_tag(&self, ctx: &Context, id: &str, tag: &str) -> Result<bool> {
        let s = self.server_for_tags(ctx, id).await?;
        if !s.tags.iter().any(|t| t == tag) && s.tags.len() >= 50 {
            return Err(Error::BadRequest(
                "The number of tags exceeded the per-server limit 50".into(),
            ));
        }
        let (sid, t) = (s.id.clone(), tag.to_owned());
        Ok(self
            .store
            .write(move |tx| {
                let added = sql::add_tag(tx, &sid, &t)?;
                sql::touch_server(tx, &sid)?;
                Ok(added)
            })
            .await?)
    }

    pub async fn delete_tag(&self, ctx: &Context, id: &str, tag: &str) -> Result<()> {
        let s = self.server_for_tags(ctx, id).await?;
        let (sid, t) = (s.id.clone(), tag.to_owned());
        if !self
            .store
            .write(move |tx| {
                let removed = sql::delete_tag(tx, &sid, &t)?;
                sql::touch_server(tx, &sid)?;
                Ok(removed)
            })
            .await?
        {
            return Err(Error::NotFound(format!(
                "Tag '{tag}' could not be found for instance {}.",
                s.id
            )));
        }
        Ok(())
    }
}
