//! Host aggregates (os-aggregates, admin only). The box has one compute host, so an
//! aggregate holds it or nothing; an aggregate's `availability_zone` metadata puts the host
//! in that zone, which then is the zone the box shows (os-availability-zone, os-services,
//! new servers). Nova's rules hold: a host is in at most one named zone, and the zone of a
//! host with servers never changes under them.

use chrono::Utc;
use model::Context;
use model::operator::{AZ_KEY, Aggregate};
use store::compute as sql;

use crate::common::policy;
use crate::{Compute, Error, Result, abort};

/// An aggregate as an answer shows it; `updated_at` is the time of a zone or metadata
/// change, which Nova shows in that answer without storing it.
pub struct AggregateView {
    pub aggregate: Aggregate,
    pub shown_updated_at: Option<chrono::DateTime<Utc>>,
}

fn not_found(id: &str) -> Error {
    Error::NotFound(format!("Aggregate {id} could not be found."))
}

/// Python's `repr` of a list of strings, as Nova's messages print one.
fn py_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    format!("[{}]", inner.join(", "))
}

/// Which request an aggregate rule refuses, for the wording of the fault.
#[derive(Clone, Copy)]
enum Doing {
    AddHost,
    RemoveHost,
    Update,
    UpdateMeta,
}

fn invalid(doing: Doing, id: i64, reason: &str) -> Error {
    let m = match doing {
        Doing::AddHost => format!("Cannot add host to aggregate {id}. Reason: {reason}."),
        Doing::RemoveHost => format!("Cannot remove host from aggregate {id}. Reason: {reason}."),
        Doing::Update => format!("Cannot update aggregate {id}. Reason: {reason}."),
        Doing::UpdateMeta => {
            format!("Cannot update metadata of aggregate {id}. Reason: {reason}.")
        }
    };
    match doing {
        Doing::AddHost | Doing::RemoveHost => Error::Conflict(m),
        Doing::Update | Doing::UpdateMeta => Error::BadRequest(m),
    }
}

/// Nova's check of a zone change on aggregate `a` (whose name is `name` by then): a zone must
/// be named, the hosts may be in no other zone, and (`check_servers`) a host with servers
/// may not change zone.
fn check_zone(
    tx: &store::Connection,
    a: &Aggregate,
    name: &str,
    zone: Option<&str>,
    hosts: &[String],
    doing: Doing,
    check_servers: bool,
) -> store::Result<()> {
    let Some(zone) = zone.filter(|z| !z.is_empty()) else {
        return Err(abort(invalid(
            doing,
            a.id,
            &format!("Aggregate {name} does not support empty named availability zone"),
        )));
    };
    let mut conflicting = Vec::new();
    for h in hosts {
        for (other, z) in sql::host_zones(tx, h)? {
            if other != a.id && z != zone {
                conflicting.push(z);
            }
        }
    }
    if !conflicting.is_empty() {
        return Err(abort(invalid(
            doing,
            a.id,
            &format!(
                "One or more hosts already in availability zone(s) {}",
                py_list(&conflicting)
            ),
        )));
    }
    if check_servers
        && a.availability_zone() != Some(zone)
        && !hosts.is_empty()
        && sql::count_servers_on_host(tx)? > 0
    {
        return Err(abort(invalid(
            doing,
            a.id,
            "One or more hosts contain instances in this zone",
        )));
    }
    Ok(())
}

fn zone_or_none(z: Option<&str>) -> String {
    z.map_or_else(|| "None".to_owned(), ToOwned::to_owned)
}

fn moving_servers(doing: Doing, id: i64, from: Option<&str>, to: Option<&str>, n: i64) -> Error {
    let verb = match doing {
        Doing::AddHost => "added to",
        _ => "removed from",
    };
    invalid(
        doing,
        id,
        &format!(
            "The host cannot be {verb} the aggregate as the availability zone of the host would change from '{}' to '{}' but the host already has {n} instance(s). Changing the AZ of an existing instance is not supported by this action. Move the instances away from this host then try again. If you need to move the instances between AZs then you can use shelve_offload and unshelve to achieve this.",
            zone_or_none(from),
            zone_or_none(to)
        ),
    )
}

impl Compute {
    fn may_manage_aggregates(ctx: &Context, rule: &str) -> Result<()> {
        if !ctx.is_admin() {
            return Err(policy(&format!("os_compute_api:os-aggregates:{rule}")));
        }
        Ok(())
    }

    /// The zone the box's compute host is in: its aggregates' zone, else the configured one.
    pub async fn host_zone(&self) -> Result<String> {
        let host = self.cfg.host.clone();
        let zones = self.store.read(move |c| sql::host_zones(c, &host)).await?;
        Ok(zones
            .into_iter()
            .next()
            .map_or_else(|| self.cfg.availability_zone.clone(), |(_, z)| z))
    }

    pub async fn aggregates(&self, ctx: &Context) -> Result<Vec<Aggregate>> {
        Self::may_manage_aggregates(ctx, "index")?;
        Ok(self.store.read(sql::list_aggregates).await?)
    }

    /// One aggregate; `raw` is the id as the request gave it, for the 404.
    pub async fn aggregate(&self, ctx: &Context, id: i64, raw: &str) -> Result<Aggregate> {
        Self::may_manage_aggregates(ctx, "show")?;
        self.store
            .read(move |c| sql::get_aggregate(c, id))
            .await?
            .ok_or_else(|| not_found(raw))
    }

    pub async fn create_aggregate(
        &self,
        ctx: &Context,
        name: String,
        zone: Option<String>,
    ) -> Result<Aggregate> {
        Self::may_manage_aggregates(ctx, "create")?;
        let uuid = uuid::Uuid::new_v4().to_string();
        let a = self
            .store
            .write(move |tx| {
                if sql::aggregate_name_taken(tx, &name, None)? {
                    return Err(abort(Error::Conflict(format!(
                        "Aggregate {name} already exists."
                    ))));
                }
                let id = sql::insert_aggregate(tx, &uuid, &name, zone.as_deref(), Utc::now())?;
                sql::get_aggregate(tx, id)
            })
            .await?;
        let a = a.ok_or_else(|| Error::Task("aggregate vanished".into()))?;
        tracing::info!(aggregate = a.id, "aggregate created");
        Ok(a)
    }

    /// Renames an aggregate and/or sets its zone (`Some(None)`: a null zone, refused).
    pub async fn update_aggregate(
        &self,
        ctx: &Context,
        id: i64,
        raw: &str,
        name: Option<String>,
        zone: Option<Option<String>>,
    ) -> Result<AggregateView> {
        Self::may_manage_aggregates(ctx, "update")?;
        let raw = raw.to_owned();
        let zone_given = zone.is_some();
        let now = Utc::now();
        let a = self
            .store
            .write(move |tx| {
                let a = sql::get_aggregate(tx, id)?.ok_or_else(|| abort(not_found(&raw)))?;
                let new_name = name.clone().unwrap_or_else(|| a.name.clone());
                if let Some(n) = &name
                    && sql::aggregate_name_taken(tx, n, Some(id))?
                {
                    return Err(abort(Error::Conflict(format!(
                        "Aggregate {n} already exists."
                    ))));
                }
                if let Some(z) = &zone {
                    check_zone(
                        tx,
                        &a,
                        &new_name,
                        z.as_deref(),
                        &a.hosts,
                        Doing::Update,
                        true,
                    )?;
                }
                if let Some(n) = &name {
                    sql::rename_aggregate(tx, id, n, now)?;
                }
                if let Some(Some(z)) = &zone {
                    sql::set_aggregate_metadata(tx, id, AZ_KEY, Some(z))?;
                }
                sql::get_aggregate(tx, id)
            })
            .await?
            .ok_or_else(|| Error::Task("aggregate vanished".into()))?;
        let shown = if zone_given { Some(now) } else { a.updated_at };
        Ok(AggregateView {
            aggregate: a,
            shown_updated_at: shown,
        })
    }

    /// Sets (or with `None` removes) metadata keys of an aggregate.
    pub async fn set_aggregate_metadata(
        &self,
        ctx: &Context,
        id: i64,
        raw: &str,
        metadata: Vec<(String, Option<String>)>,
    ) -> Result<AggregateView> {
        Self::may_manage_aggregates(ctx, "set_metadata")?;
        let raw = raw.to_owned();
        let a = self
            .store
            .write(move |tx| {
                let a = sql::get_aggregate(tx, id)?.ok_or_else(|| abort(not_found(&raw)))?;
                if let Some((_, z)) = metadata.iter().find(|(k, _)| k == AZ_KEY) {
                    check_zone(
                        tx,
                        &a,
                        &a.name,
                        z.as_deref(),
                        &a.hosts,
                        Doing::UpdateMeta,
                        true,
                    )?;
                }
                for (k, v) in &metadata {
                    sql::set_aggregate_metadata(tx, id, k, v.as_deref())?;
                }
                sql::get_aggregate(tx, id)
            })
            .await?
            .ok_or_else(|| Error::Task("aggregate vanished".into()))?;
        Ok(AggregateView {
            aggregate: a,
            shown_updated_at: Some(Utc::now()),
        })
    }

    pub async fn add_aggregate_host(
        &self,
        ctx: &Context,
        id: i64,
        raw: &str,
        host: &str,
    ) -> Result<Aggregate> {
        Self::may_manage_aggregates(ctx, "add_host")?;
        if host != self.cfg.host {
            return Err(Error::NotFound(format!(
                "Compute host {host} could not be found."
            )));
        }
        let (raw, host) = (raw.to_owned(), host.to_owned());
        self.store
            .write(move |tx| {
                let a = sql::get_aggregate(tx, id)?.ok_or_else(|| abort(not_found(&raw)))?;
                let hosts = [host.clone()];
                if a.metadata.contains_key(AZ_KEY) {
                    check_zone(
                        tx,
                        &a,
                        &a.name,
                        a.availability_zone(),
                        &hosts,
                        Doing::AddHost,
                        false,
                    )?;
                    let servers = sql::count_servers_on_host(tx)?;
                    let old = sql::host_zones(tx, &host)?
                        .into_iter()
                        .next()
                        .map(|(_, z)| z);
                    if servers > 0 && old.as_deref() != a.availability_zone() {
                        return Err(abort(moving_servers(
                            Doing::AddHost,
                            id,
                            old.as_deref(),
                            a.availability_zone(),
                            servers,
                        )));
                    }
                }
                if a.hosts.contains(&host) {
                    return Err(abort(Error::Conflict(format!(
                        "Aggregate {id} already has host {host}."
                    ))));
                }
                sql::add_aggregate_host(tx, id, &host)?;
                sql::get_aggregate(tx, id)
            })
            .await?
            .ok_or_else(|| Error::Task("aggregate vanished".into()))
    }

    pub async fn remove_aggregate_host(
        &self,
        ctx: &Context,
        id: i64,
        raw: &str,
        host: &str,
    ) -> Result<Aggregate> {
        Self::may_manage_aggregates(ctx, "remove_host")?;
        let gone = Error::NotFound(format!("Cannot remove host {host} in aggregate {raw}"));
        if host != self.cfg.host {
            return Err(gone);
        }
        let host = host.to_owned();
        self.store
            .write(move |tx| {
                let Some(a) = sql::get_aggregate(tx, id)? else {
                    return Err(abort(gone));
                };
                let servers = sql::count_servers_on_host(tx)?;
                if let Some(current) = a.availability_zone()
                    && servers > 0
                {
                    let after = sql::host_zones(tx, &host)?
                        .into_iter()
                        .find(|(other, _)| *other != id)
                        .map(|(_, z)| z);
                    if after.as_deref() != Some(current) {
                        return Err(abort(moving_servers(
                            Doing::RemoveHost,
                            id,
                            Some(current),
                            after.as_deref(),
                            servers,
                        )));
                    }
                }
                if !sql::remove_aggregate_host(tx, id, &host)? {
                    return Err(abort(gone));
                }
                sql::get_aggregate(tx, id)
            })
            .await?
            .ok_or_else(|| Error::Task("aggregate vanished".into()))
    }

    /// Deletes an empty aggregate.
    pub async fn delete_aggregate(&self, ctx: &Context, id: i64, raw: &str) -> Result<()> {
        Self::may_manage_aggregates(ctx, "delete")?;
        let raw = raw.to_owned();
        self.store
            .write(move |tx| {
                let a = sql::get_aggregate(tx, id)?.ok_or_else(|| abort(not_found(&raw)))?;
                if !a.hosts.is_empty() {
                    return Err(abort(Error::BadRequest(format!(
                        "Cannot remove host from aggregate {id}. Reason: Host aggregate is not empty."
                    ))));
                }
                sql::delete_aggregate(tx, id)
            })
            .await?;
        tracing::info!(aggregate = id, "aggregate deleted");
        Ok(())
    }
}
