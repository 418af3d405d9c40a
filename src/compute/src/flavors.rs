//! Flavors: who sees which, and their administration.

use model::ProjectId;
use model::compute::{Flavor, FlavorId, FlavorSortKey};
use store::compute::{self as sql, FlavorQuery, FlavorVisibility};

use model::Context;

use crate::{Compute, Error, Result};

/// The flavors `onebox init` creates, DevStack's familiar set plus a tiny one for tests.
pub fn defaults() -> Vec<Flavor> {
    let f = |id: &str, name: &str, vcpus: u32, ram_mb: u64, disk_gb: u64| Flavor {
        id: FlavorId(id.into()),
        name: name.into(),
        vcpus,
        ram_mb,
        disk_gb,
        ephemeral_gb: 0,
        swap_mb: 0,
        rxtx_factor: 1.0,
        is_public: true,
        disabled: false,
        description: None,
        extra_specs: Default::default(),
    };
    vec![
        f("1", "m1.tiny", 1, 512, 1),
        f("2", "m1.small", 1, 2048, 20),
        f("3", "m1.medium", 2, 4096, 40),
        f("4", "m1.large", 4, 8192, 80),
        f("5", "m1.xlarge", 8, 16384, 160),
        f("42", "m1.nano", 1, 128, 1),
        f("84", "m1.micro", 1, 192, 1),
    ]
}

impl Compute {
    /// Creates the default flavors that do not exist yet.
    pub async fn ensure_default_flavors(&self) -> Result<usize> {
        Ok(self
            .store
            .write(|tx| {
                let mut n = 0;
                for f in defaults() {
                    if sql::get_flavor(tx, &f.id)?.is_none()
                        && !sql::flavor_name_taken(tx, &f.name)?
                    {
                        sql::insert_flavor(tx, &f)?;
                        n += 1;
                    }
                }
                Ok(n)
            })
            .await?)
    }

    /// Flavors the caller may see. `is_public` is the admin's choice (`Some(true)` by
    /// default, `None` for all); a non-admin always sees public flavors and those shared with
    /// its project.
    pub async fn list_flavors(
        &self,
        ctx: &Context,
        is_public: Option<bool>,
        min_ram: Option<u64>,
        min_disk: Option<u64>,
        sort_key: FlavorSortKey,
        ascending: bool,
    ) -> Result<Vec<Flavor>> {
        let visibility = if ctx.is_admin() {
            match is_public {
                Some(true) => FlavorVisibility::Public,
                Some(false) => FlavorVisibility::Private,
                None => FlavorVisibility::All,
            }
        } else {
            FlavorVisibility::PublicOrSharedWith(
                ctx.project_id.clone().unwrap_or_else(|| ProjectId::new("")),
            )
        };
        let q = FlavorQuery {
            visibility,
            min_ram,
            min_disk,
            sort_key,
            ascending,
        };
        Ok(self.store.read(move |c| sql::list_flavors(c, &q)).await?)
    }

    /// A flavor the caller may see; 404 otherwise (a private flavor's existence is hidden).
    pub async fn get_flavor(&self, ctx: &Context, id: &FlavorId) -> Result<Flavor> {
        let id2 = id.clone();
        let (flavor, access) = self
            .store
            .read(move |c| {
                let f = sql::get_flavor(c, &id2)?;
                let a = match &f {
                    Some(f) if !f.is_public => sql::flavor_access(c, &f.id)?,
                    _ => Vec::new(),
                };
                Ok((f, a))
            })
            .await?;
        let not_found = || Error::NotFound(format!("Flavor {id} could not be found."));
        let flavor = flavor.ok_or_else(not_found)?;
        let visible = flavor.is_public
            || ctx.is_admin()
            || ctx.project_id.as_ref().is_some_and(|p| access.contains(p));
        if !visible {
            return Err(not_found());
        }
        Ok(flavor)
    }

    pub async fn create_flavor(&self, ctx: &Context, f: Flavor) -> Result<Flavor> {
        require_admin(ctx, "os_compute_api:os-flavor-manage:create")?;
        let out = f.clone();
        self.store
            .write(move |tx| {
                if sql::get_flavor(tx, &f.id)?.is_some() {
                    return Ok(Err(Error::Conflict(format!(
                        "Flavor with ID {} already exists.",
                        f.id
                    ))));
                }
                if sql::flavor_name_taken(tx, &f.name)? {
                    return Ok(Err(Error::Conflict(format!(
                        "Flavor with name {} already exists.",
                        f.name
                    ))));
                }
                sql::insert_flavor(tx, &f)?;
                Ok(Ok(()))
            })
            .await??;
        tracing::info!(flavor_id = %out.id, "flavor created");
        Ok(out)
    }

    pub async fn update_flavor_description(
        &self,
        ctx: &Context,
        id: &FlavorId,
        description: Option<String>,
    ) -> Result<Flavor> {
        require_admin(ctx, "os_compute_api:os-flavor-manage:update")?;
        let id2 = id.clone();
        let found = self
            .store
            .write(move |tx| sql::set_flavor_description(tx, &id2, description.as_deref()))
            .await?;
        if !found {
            return Err(Error::NotFound(format!("Flavor {id} could not be found.")));
        }
        self.get_flavor(ctx, id).await
    }

    pub async fn delete_flavor(&self, ctx: &Context, id: &FlavorId) -> Result<()> {
        require_admin(ctx, "os_compute_api:os-flavor-manage:delete")?;
        let id2 = id.clone();
        if !self
            .store
            .write(move |tx| sql::delete_flavor(tx, &id2))
            .await?
        {
            return Err(Error::NotFound(format!("Flavor {id} could not be found.")));
        }
        Ok(())
    }

    pub async fn set_extra_specs(
        &self,
        ctx: &Context,
        id: &FlavorId,
        specs: Vec<(String, String)>,
    ) -> Result<()> {
        require_admin(ctx, "os_compute_api:os-flavor-extra-specs:create")?;
        let id2 = id.clone();
        let found = self
            .store
            .write(move |tx| {
                if sql::get_flavor(tx, &id2)?.is_none() {
                    return Ok(false);
                }
                for (k, v) in &specs {
                    sql::set_extra_spec(tx, &id2, k, v)?;
                }
                Ok(true)
            })
            .await?;
        if !found {
            return Err(Error::NotFound(format!("Flavor {id} could not be found.")));
        }
        Ok(())
    }

    pub async fn delete_extra_spec(&self, ctx: &Context, id: &FlavorId, key: &str) -> Result<()> {
        require_admin(ctx, "os_compute_api:os-flavor-extra-specs:delete")?;
        self.get_flavor(ctx, id).await?;
        let (id2, key2) = (id.clone(), key.to_owned());
        if !self
            .store
            .write(move |tx| sql::delete_extra_spec(tx, &id2, &key2))
            .await?
        {
            return Err(Error::NotFound(format!(
                "Flavor {id} has no extra specs with key {key}."
            )));
        }
        Ok(())
    }

    pub async fn flavor_access(&self, ctx: &Context, id: &FlavorId) -> Result<Vec<ProjectId>> {
        require_admin(ctx, "os_compute_api:os-flavor-access")?;
        let flavor = self.get_flavor(ctx, id).await?;
        if flavor.is_public {
            return Err(Error::NotFound(
                "Access list not available for public flavors.".into(),
            ));
        }
        let id2 = id.clone();
        Ok(self
            .store
            .read(move |c| sql::flavor_access(c, &id2))
            .await?)
    }

    /// Grants `project` access to flavor `id`. A public flavor takes entries as well unless
    /// `refuse_public` (Nova refuses them from microversion 2.7).
    pub async fn add_flavor_access(
        &self,
        ctx: &Context,
        id: &FlavorId,
        project: ProjectId,
        refuse_public: bool,
    ) -> Result<Vec<ProjectId>> {
        require_admin(ctx, "os_compute_api:os-flavor-access:add_tenant_access")?;
        let flavor = self.get_flavor(ctx, id).await?;
        if flavor.is_public && refuse_public {
            return Err(Error::Conflict(
                "Can not add access to a public flavor.".into(),
            ));
        }
        let (id2, p2) = (id.clone(), project.clone());
        if !self
            .store
            .write(move |tx| sql::add_flavor_access(tx, &id2, &p2))
            .await?
        {
            return Err(Error::Conflict(format!(
                "Flavor access already exists for flavor {id} and project {project} combination."
            )));
        }
        self.access_entries(id).await
    }

    pub async fn remove_flavor_access(
        &self,
        ctx: &Context,
        id: &FlavorId,
        project: ProjectId,
    ) -> Result<Vec<ProjectId>> {
        require_admin(ctx, "os_compute_api:os-flavor-access:remove_tenant_access")?;
        self.get_flavor(ctx, id).await?;
        let (id2, p2) = (id.clone(), project.clone());
        if !self
            .store
            .write(move |tx| sql::remove_flavor_access(tx, &id2, &p2))
            .await?
        {
            return Err(Error::NotFound(format!(
                "Flavor access not found for {id} / {project} combination."
            )));
        }
        self.access_entries(id).await
    }

    /// The projects flavor `id` is shared with, public or not.
    async fn access_entries(&self, id: &FlavorId) -> Result<Vec<ProjectId>> {
        let id2 = id.clone();
        Ok(self
            .store
            .read(move |c| sql::flavor_access(c, &id2))
            .await?)
    }
}

/// Nova's policy refusal for admin-only operations.
pub(crate) fn require_admin(ctx: &Context, rule: &str) -> Result<()> {
    if ctx.is_admin() {
        Ok(())
    } else {
        Err(crate::common::policy(rule))
    }
}
