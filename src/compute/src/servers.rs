//! Servers: create, list, show, update, delete (metadata and tags are in `server_metadata`
//! and `server_tags`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use model::compute::{
    Backend, Flavor, FlavorId, PowerState, QUOTA_DEFAULTS, Server, ServerFilter, ServerId,
    ServerSortKey, TaskState, VmState,
};
use model::{Persona, ProjectId};
use regex::Regex;
use store::compute::{self as sql, Cond};

use model::Context;

use crate::common::{not_found, policy, random_password};
use crate::network;
use crate::{Compute, Error, Result};

/// The networks a create request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkRequest {
    /// The project's default network.
    Auto,
    None,
    /// Networks, ports or fixed addresses, in order.
    List(Vec<network::NicRequest>),
}

/// A validated `POST /servers`.
#[derive(Clone, Debug)]
pub struct CreateRequest {
    pub name: String,
    pub image_ref: Option<String>,
    pub flavor_ref: FlavorId,
    pub networks: NetworkRequest,
    /// Security groups by name or id; empty: the project's `default`.
    pub security_groups: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub user_data: Option<String>,
    pub key_name: Option<String>,
    pub availability_zone: Option<String>,
    pub config_drive: bool,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub hostname: Option<String>,
    pub access_ipv4: Option<String>,
    pub access_ipv6: Option<String>,
    pub min_count: u32,
    pub max_count: u32,
    pub admin_pass: Option<String>,
    pub scheduler_hints: BTreeMap<String, Vec<String>>,
    /// The volumes of the block device mapping (image-to-local entries are `image_ref`).
    pub block_devices: Vec<crate::block_devices::BlockDevice>,
    /// `OS-DCF:diskConfig`: `Some(true)` for `AUTO`; `None` takes the image's
    /// `auto_disk_config` property.
    pub auto_disk_config: Option<bool>,
}

/// What a create made.
pub struct Created {
    pub servers: Vec<Server>,
    pub reservation_id: String,
    pub admin_pass: String,
}

/// The fields `PUT /servers/{id}` may change; `None` leaves a field alone.
#[derive(Clone, Debug, Default)]
pub struct ServerPatch {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub hostname: Option<String>,
    pub access_ipv4: Option<Option<String>>,
    pub access_ipv6: Option<Option<String>>,
    pub auto_disk_config: Option<bool>,
    /// From 2.104: `Some(None)` unpins, `Some(Some(zone))` pins to the server's own zone.
    pub pinned_availability_zone: Option<Option<String>>,
}

/// A validated server listing.
#[derive(Clone, Debug, Default)]
pub struct ServerQuery {
    /// Admin: list every project's servers (optionally one, `project`).
    pub all_projects: bool,
    pub project: Option<ProjectId>,
    /// `None`: live servers, or also deleted ones when `changes_since/before` is given.
    pub deleted: Option<bool>,
    /// Resolved status filters: (vm states, task states or `None` for any).
    pub statuses: Vec<model::compute::StatusStates>,
    pub changes_since: Option<DateTime<Utc>>,
    pub changes_before: Option<DateTime<Utc>>,
    pub name: Option<Regex>,
    pub hostname: Option<Regex>,
    pub ip: Option<Regex>,
    pub key_name: Option<Regex>,
    /// Exact matches, all of which a server must meet.
    pub filters: Vec<ServerFilter>,
    pub tags: Vec<String>,
    pub tags_any: Vec<String>,
    pub not_tags: Vec<String>,
    pub not_tags_any: Vec<String>,
    /// Sort keys, each ascending or not; none for newest first.
    pub sort: Vec<(ServerSortKey, bool)>,
    pub marker: Option<String>,
    pub limit: Option<usize>,
}

/// How many of a create's servers the project's quota has room for, at least `min_count`
/// and at most `max_count`; a quota fault naming the tightest resource otherwise.
fn quota_room(
    tx: &store::Connection,
    project: &ProjectId,
    flavor: &Flavor,
    req: &CreateRequest,
) -> store::Result<u32> {
    let limits = crate::quotas::limits_of(tx, project)?;
    let usage = sql::usage(tx, project)?;
    let mut allowed = req.max_count as i64;
    let mut worst: Option<(&str, i64, i64, i64)> = None;
    for (res, per, used) in [
        ("instances", 1i64, usage.instances),
        ("cores", i64::from(flavor.vcpus), usage.cores),
        ("ram", flavor.ram_mb as i64, usage.ram),
    ] {
        let limit = limits.get(res).copied().unwrap_or(-1);
        if limit < 0 || per == 0 {
            continue;
        }
        let room = ((limit - used) / per).max(0);
        if room < allowed {
            allowed = room;
            worst = Some((res, per, used, limit));
        }
    }
    if allowed < i64::from(req.min_count) {
        let (res, per, used, limit) = worst.unwrap_or(("instances", 1, 0, 0));
        return Err(crate::abort(crate::common::quota_exceeded(
            res,
            per * i64::from(req.min_count),
            used,
            limit,
        )));
    }
    Ok(allowed.min(i64::from(req.max_count)) as u32)
}

/// The interfaces a create asked for, each checked as the project sees the networks.
fn requested_networks(
    tx: &store::Connection,
    project: &ProjectId,
    req: &NetworkRequest,
    count: u32,
    routed: &[network::Prefix],
) -> store::Result<Vec<network::NicPlan>> {
    Ok(match req {
        NetworkRequest::None => Vec::new(),
        NetworkRequest::Auto => vec![network::auto_nic(tx, project, routed)?],
        NetworkRequest::List(nics) => {
            let mut v = Vec::new();
            for nic in nics {
                if count > 1 && nic.port.is_some() {
                    return Err(crate::abort(Error::BadRequest(
                        "Unable to launch multiple instances with a single configured port ID. Please launch your instance one by one with different ports.".into(),
                    )));
                }
                if count > 1 && nic.fixed_ip.is_some() {
                    return Err(crate::abort(Error::BadRequest(
                        "Unable to launch multiple instances with a single configured fixed IP address.".into(),
                    )));
                }
                v.push(network::plan_nic(tx, project, nic)?);
            }
            v
        }
    })
}

/// Nova's rule for `pinned_availability_zone` in `PUT /servers/{id}` (2.104): null unpins;
/// an unpinned server may be pinned only to the zone it is in; a pinned server keeps its pin
/// (asking for the same zone again changes nothing) and must be unpinned before another.
fn repin(current: Option<&str>, requested: Option<String>, zone: &str) -> Result<Option<String>> {
    match (current, requested) {
        (_, None) => Ok(None),
        (Some(cur), Some(req)) if cur == req => Ok(Some(req)),
        (Some(_), Some(_)) => Err(Error::Conflict(
            "Cannot change pinned availability zone directly. Unpin first by setting \
             pinned_availability_zone to null."
                .into(),
        )),
        (None, Some(req)) if req == zone => Ok(Some(req)),
        (None, Some(req)) => Err(Error::Conflict(format!(
            "Server can only be pinned to its current availability zone '{zone}', but \
             '{req}' was requested."
        ))),
    }
}

/// Server `i` of the `count` a create makes from `template`: its own id, and when there are
/// several, a name and hostname numbered from 1.
fn instance(
    template: &Server,
    req: &CreateRequest,
    count: u32,
    i: u32,
    now: DateTime<Utc>,
) -> Server {
    let base_host = req
        .hostname
        .clone()
        .unwrap_or_else(|| sanitize_hostname(&req.name));
    let (name, hostname) = if count > 1 {
        (
            format!("{}-{}", req.name, i + 1),
            format!("{base_host}-{}", i + 1),
        )
    } else {
        (req.name.clone(), base_host)
    };
    Server {
        id: ServerId::generate(),
        name,
        hostname,
        launch_index: i,
        created_at: now,
        updated_at: now,
        ..template.clone()
    }
}

/// The conditions SQL applies to a listing: the caller's scope (its project, or every
/// project for an admin who asks), deleted or not, statuses, times, exact filters and tags.
fn listing_conditions(ctx: &Context, q: &ServerQuery) -> Result<Vec<Cond>> {
    let mut conds = Vec::new();
    if q.all_projects {
        if !ctx.is_admin() {
            return Err(policy("os_compute_api:servers:index:get_all_tenants"));
        }
        if let Some(p) = &q.project {
            conds.push(Cond::Project(p.clone()));
        }
    } else {
        let p = ctx
            .project_id
            .clone()
            .ok_or_else(|| policy("os_compute_api:servers:index"))?;
        if !ctx.can_read(&p) {
            return Err(policy("os_compute_api:servers:index"));
        }
        conds.push(Cond::Project(p));
    }
    let deleted = q
        .deleted
        .or_else(|| (q.changes_since.is_none() && q.changes_before.is_none()).then_some(false));
    if let Some(d) = deleted {
        conds.push(Cond::Deleted(d));
    }
    if !q.statuses.is_empty() {
        let mut vms = Vec::new();
        let mut tasks: Option<Vec<Option<TaskState>>> = Some(Vec::new());
        for (v, t) in &q.statuses {
            vms.extend(v.iter().copied());
            match (t, &mut tasks) {
                (None, _) => tasks = None,
                (Some(ts), Some(acc)) => acc.extend(ts.iter().copied()),
                (Some(_), None) => {}
            }
        }
        conds.push(Cond::VmStates(vms));
        if let Some(t) = tasks {
            conds.push(Cond::TaskStates(t));
        }
    }
    if let Some(t) = q.changes_since {
        conds.push(Cond::ChangedSince(t));
    }
    if let Some(t) = q.changes_before {
        conds.push(Cond::ChangedBefore(t));
    }
    conds.extend(q.filters.iter().cloned().map(Cond::Is));
    if !q.tags.is_empty() {
        conds.push(Cond::AllTags(q.tags.clone()));
    }
    if !q.tags_any.is_empty() {
        conds.push(Cond::AnyTags(q.tags_any.clone()));
    }
    if !q.not_tags.is_empty() {
        conds.push(Cond::NotAllTags(q.not_tags.clone()));
    }
    if !q.not_tags_any.is_empty() {
        conds.push(Cond::NotAnyTags(q.not_tags_any.clone()));
    }
    Ok(conds)
}

/// Whether a candidate meets the listing's regular-expression filters.
fn patterns_match(q: &ServerQuery, k: &sql::ServerKey) -> bool {
    q.name.as_ref().is_none_or(|r| r.is_match(&k.name))
        && q.hostname.as_ref().is_none_or(|r| r.is_match(&k.hostname))
        && q.key_name
            .as_ref()
            .is_none_or(|r| k.key_name.as_deref().is_some_and(|n| r.is_match(n)))
        && q.ip
            .as_ref()
            .is_none_or(|r| k.addresses.iter().any(|a| r.is_match(a)))
}

/// Nova's hostname from a display name: lower case, letters, digits and hyphens, at most 63.
pub fn sanitize_hostname(name: &str) -> String {
    let mut out = String::new();
    for ch in name.to_lowercase().chars() {
        if ch.is_ascii_alphanumeric() || ch == '-' {
            out.push(ch);
        } else if (ch == ' ' || ch == '_' || ch == '.') && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').chars().take(63).collect::<String>();
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() { "server".into() } else { out }
}

fn reservation_id() -> String {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("the OS random number generator failed");
    let n = u32::from_le_bytes(b);
    // r-xxxxxxxx with base-36 digits, as Nova's look.
    let mut s = String::new();
    let mut v = n as u64 | (1 << 40);
    while s.len() < 8 {
        let d = (v % 36) as u32;
        s.push(std::char::from_digit(d, 36).unwrap_or('0'));
        v /= 36;
    }
    format!("r-{s}")
}

/// The flavor extra spec that names the backend of its servers.
pub const BACKEND_SPEC: &str = "onebox:backend";

impl Compute {
    /// Which backend runs a server of `flavor` booted from `image` (Nova's conventions):
    /// a flavor may name one with the extra spec `onebox:backend` (`vm`, `container`,
    /// `baremetal`); a flavor asking for a whole node of a resource class
    /// (`resources:CUSTOM_<CLASS>=1`, as with Ironic) gets bare metal; an image that is a
    /// container root filesystem (`hypervisor_type=lxc`) gets a container; anything else a
    /// virtual machine.
    pub fn select_backend(
        flavor: &model::compute::Flavor,
        image: Option<&crate::ImageInfo>,
    ) -> Result<Backend> {
        let forced = match flavor.extra_specs.get(BACKEND_SPEC) {
            Some(v) => Some(
                Backend::parse(v)
                    .filter(|b| *b != Backend::Fake)
                    .ok_or_else(|| {
                        Error::BadRequest(format!(
                            "Flavor {} has an invalid {BACKEND_SPEC} extra spec {v:?}: use vm, container or baremetal.",
                            flavor.id
                        ))
                    })?,
            ),
            None => None,
        };
        let node_class = flavor
            .extra_specs
            .iter()
            .any(|(k, v)| k.starts_with("resources:CUSTOM_") && v.trim() == "1");
        let rootfs = image.is_some_and(crate::ImageInfo::is_rootfs);
        let kind = forced.unwrap_or(if node_class {
            Backend::BareMetal
        } else if rootfs {
            Backend::Container
        } else {
            Backend::Vm
        });
        match (kind, image) {
            (Backend::Container, Some(i)) if !rootfs => Err(Error::BadRequest(format!(
                "Image {} is not a container root filesystem (hypervisor_type=lxc); a container server needs one.",
                i.id
            ))),
            (Backend::Container, None) => Err(Error::BadRequest(
                "A container server needs an image that is a container root filesystem.".into(),
            )),
            (Backend::Vm, Some(i)) if rootfs => Err(Error::BadRequest(format!(
                "Image {} is a container root filesystem; flavor {} asks for a virtual machine.",
                i.id, flavor.id
            ))),
            _ => Ok(kind),
        }
    }

    pub async fn create_servers(
        &self,
        ctx: &Context,
        req: CreateRequest,
        request_id: &str,
    ) -> Result<Created> {
        let project = ctx
            .project_id
            .clone()
            .ok_or_else(|| policy("os_compute_api:servers:create"))?;
        if !ctx.has(Persona::Member) {
            return Err(policy("os_compute_api:servers:create"));
        }
        let flavor = self.get_flavor(ctx, &req.flavor_ref).await.map_err(|_| {
            Error::BadRequest(format!("Flavor {} could not be found.", req.flavor_ref))
        })?;
        if flavor.disabled {
            return Err(Error::BadRequest("Flavor is disabled.".into()));
        }
        let mut image_info = None;
        if let Some(image_ref) = &req.image_ref {
            let image = self
                .find_bootable(ctx, image_ref)
                .await
                .map_err(|id| crate::imagefit::image_not_found(&id))?;
            self.check_image_fits(ctx, &flavor, &image)?;
            image_info = Some(image);
        }
        let boot_image = self.check_block_devices(ctx, &req).await?;
        let zone = self.host_zone().await?;
        let key_data = self.check_extras(ctx, &project, &req, &zone).await?;
        let admin_pass = req.admin_pass.clone().unwrap_or_else(random_password);
        let backend = Self::select_backend(&flavor, image_info.as_ref().or(boot_image.as_ref()))?;
        crate::block_devices::backend_takes(backend, &req.block_devices)?;
        let mut template = self.server_template(ctx, &project, &req, flavor, backend);
        template.key_data = key_data;
        template.auto_disk_config =
            crate::imagefit::auto_disk_config(image_info.as_ref(), req.auto_disk_config)?;
        // The zone a create asks for (`az`, `az:host`, `az::node`) pins the server to it.
        template.pinned_availability_zone = req
            .availability_zone
            .as_deref()
            .map(|az| az.split(':').next().unwrap_or_default().to_owned())
            .filter(|az| !az.is_empty());
        template.availability_zone = zone;
        template.reservation_id = reservation_id();
        let reservation_out = template.reservation_id.clone();
        let user = ctx.user_id.clone();
        let request_id = request_id.to_owned();
        let routed = if self.cfg.avoid_host_routes {
            network::host_routes()
        } else {
            Vec::new()
        };
        let req_devices = req.block_devices.clone();
        let servers = self
            .store
            .write(move |tx| {
                // Quota and insert share this transaction on the single writer: concurrent
                // creates cannot both see the same free room.
                let count = quota_room(tx, &project, &template.flavor, &req)?;
                let networks = requested_networks(tx, &project, &req.networks, count, &routed)?;
                let groups = network::resolve_groups(tx, &project, &req.security_groups)?;
                let now = Utc::now();
                let mut made = Vec::new();
                for i in 0..count {
                    let mut s = instance(&template, &req, count, i, now);
                    sql::insert_server(tx, &s)?;
                    crate::block_devices::reserve_named(tx, &project, &s.id, &req.block_devices)?;
                    for (pos, net) in networks.iter().enumerate() {
                        s.addresses.push(network::attach(
                            tx, &project, net, &s.id, pos as u32, &groups,
                        )?);
                    }
                    let action =
                        sql::start_action(tx, &s.id, &request_id, "create", &project, &user)?;
                    made.push((s, action));
                }
                if let Some(group) = req.scheduler_hints.get("group").and_then(|g| g.first()) {
                    let ids: Vec<String> = made.iter().map(|(s, _)| s.id.to_string()).collect();
                    crate::groups::join(tx, &project, group, &ids)?;
                }
                Ok(made)
            })
            .await?;
        let mut out = Vec::with_capacity(servers.len());
        for (s, action) in servers {
            tracing::info!(server_id = %s.id, flavor = %s.flavor.id, "server create accepted");
            let server = s.clone();
            let to_make = crate::block_devices::to_make(&req_devices);
            self.run(&s.id, move |c| async move {
                c.build(server, action, to_make).await
            });
            out.push(s);
        }
        Ok(Created {
            servers: out,
            reservation_id: reservation_out,
            admin_pass,
        })
    }

    /// The key pair, availability zone and metadata count of a create: the key's public key
    /// if one was named.
    async fn check_extras(
        &self,
        ctx: &Context,
        project: &ProjectId,
        req: &CreateRequest,
        zone: &str,
    ) -> Result<Option<String>> {
        let key_data = match &req.key_name {
            Some(k) => Some(
                self.get_keypair(ctx.user_id.clone(), k)
                    .await
                    .map_err(|_| Error::BadRequest("Invalid key_name provided.".into()))?
                    .public_key,
            ),
            None => None,
        };
        if let Some(az) = &req.availability_zone {
            // `az:host` and `az::node` forms name the box too.
            if az.split(':').next().unwrap_or_default() != zone {
                return Err(Error::BadRequest(
                    "The requested availability zone is not available".into(),
                ));
            }
        }
        self.check_metadata_quota(project, req.metadata.len())
            .await?;
        Ok(key_data)
    }

    /// What every server of a create shares; [`instance`] makes each one of it.
    fn server_template(
        &self,
        ctx: &Context,
        project: &ProjectId,
        req: &CreateRequest,
        flavor: Flavor,
        backend: Backend,
    ) -> Server {
        let now = Utc::now();
        Server {
            id: ServerId::default(),
            name: req.name.clone(),
            project_id: project.clone(),
            user_id: ctx.user_id.clone(),
            flavor,
            image_id: req.image_ref.clone(),
            vm_state: VmState::Building,
            task_state: Some(TaskState::Scheduling),
            power_state: PowerState::NoState,
            backend,
            availability_zone: self.cfg.availability_zone.clone(),
            key_name: req.key_name.clone(),
            key_data: None,
            user_data: req.user_data.clone(),
            config_drive: req.config_drive,
            description: req.description.clone(),
            hostname: String::new(),
            access_ipv4: req.access_ipv4.clone(),
            access_ipv6: req.access_ipv6.clone(),
            locked_by: None,
            locked_reason: None,
            metadata: req.metadata.clone(),
            tags: req.tags.clone(),
            reservation_id: String::new(),
            launch_index: 0,
            progress: 0,
            host: self.cfg.host.clone(),
            addresses: Vec::new(),
            security_groups: Vec::new(),
            scheduler_hints: req.scheduler_hints.clone(),
            auto_disk_config: false,
            pinned_availability_zone: None,
            created_at: now,
            updated_at: now,
            launched_at: None,
            terminated_at: None,
            deleted: false,
            fault: None,
        }
    }

    /// A server the caller may see. Others' servers, unknown ids and deleted servers are all
    /// the same 404, so existence never leaks.
    pub async fn get_server(&self, ctx: &Context, id: &str) -> Result<Server> {
        let sid = ServerId::parse(id).ok_or_else(|| not_found(id))?;
        let s = self
            .store
            .read(move |c| sql::get_server(c, &sid))
            .await?
            .filter(|s| !s.deleted)
            .ok_or_else(|| not_found(id))?;
        if !ctx.can_read(&s.project_id) {
            return Err(not_found(id));
        }
        Ok(s)
    }

    /// A server the caller may change: a reader of its project gets 403, a stranger 404.
    pub(crate) async fn server_for_write(
        &self,
        ctx: &Context,
        id: &str,
        rule: &str,
    ) -> Result<Server> {
        let s = self.get_server(ctx, id).await?;
        if !ctx.can_write(&s.project_id) {
            return Err(policy(rule));
        }
        Ok(s)
    }

    pub async fn list_servers(&self, ctx: &Context, q: ServerQuery) -> Result<Vec<Server>> {
        let conds = listing_conditions(ctx, &q)?;
        let limit = q
            .limit
            .unwrap_or(self.cfg.max_limit)
            .min(self.cfg.max_limit);
        // The common listing (default order, no regex filters) is paged in SQL by keyset, so
        // a small page costs the same however many servers the database holds.
        let regex_free =
            q.name.is_none() && q.hostname.is_none() && q.key_name.is_none() && q.ip.is_none();
        if q.sort.is_empty() && regex_free {
            let marker = q.marker.clone();
            let ids = self
                .store
                .read(move |c| sql::server_page_newest_first(c, &conds, marker.as_deref(), limit))
                .await?;
            let Some(ids) = ids else {
                return Err(Error::BadRequest(format!(
                    "marker [{}] not found",
                    q.marker.unwrap_or_default()
                )));
            };
            return Ok(self.store.read(move |c| sql::load_servers(c, &ids)).await?);
        }
        let order = if q.sort.is_empty() {
            vec![(ServerSortKey::CreatedAt, false)]
        } else {
            q.sort.clone()
        };
        let with_addresses = q.ip.is_some();
        let keys = self
            .store
            .read(move |c| sql::server_keys(c, &conds, &order, with_addresses))
            .await?;
        let keys: Vec<_> = keys.into_iter().filter(|k| patterns_match(&q, k)).collect();
        let start = match &q.marker {
            Some(m) => {
                keys.iter()
                    .position(|k| &k.id == m)
                    .ok_or_else(|| Error::BadRequest(format!("marker [{m}] not found")))?
                    + 1
            }
            None => 0,
        };
        let limit = q
            .limit
            .unwrap_or(self.cfg.max_limit)
            .min(self.cfg.max_limit);
        let ids: Vec<String> = keys
            .into_iter()
            .skip(start)
            .take(limit)
            .map(|k| k.id)
            .collect();
        Ok(self.store.read(move |c| sql::load_servers(c, &ids)).await?)
    }

    pub async fn update_server(
        &self,
        ctx: &Context,
        id: &str,
        patch: ServerPatch,
    ) -> Result<Server> {
        let mut s = self
            .server_for_write(ctx, id, "os_compute_api:servers:update")
            .await?;
        if let Some(n) = patch.name {
            s.name = n;
        }
        if let Some(d) = patch.description {
            s.description = d;
        }
        if let Some(h) = patch.hostname {
            s.hostname = h;
        }
        if let Some(a) = patch.access_ipv4 {
            s.access_ipv4 = a;
        }
        if let Some(a) = patch.access_ipv6 {
            s.access_ipv6 = a;
        }
        if let Some(a) = patch.auto_disk_config {
            s.auto_disk_config = a;
        }
        let s2 = s.clone();
        let pin = patch.pinned_availability_zone;
        self.store
            .write(move |tx| {
                // The pin is read and decided in the transaction that writes it.
                if let Some(requested) = pin {
                    let current = sql::pinned_zone(tx, &s2.id)?;
                    let next = repin(current.as_deref(), requested, &s2.availability_zone)
                        .map_err(crate::abort)?;
                    sql::set_pinned_zone(tx, &s2.id, next.as_deref())?;
                }
                sql::update_server_fields(tx, &s2)
            })
            .await?;
        self.get_server(ctx, id).await
    }

    /// Deletes a server; with `reclaim_instance_interval` set, a server that booted only
    /// becomes SOFT_DELETED (restorable until it is reclaimed).
    pub async fn delete_server(&self, ctx: &Context, id: &str, request_id: &str) -> Result<()> {
        let s = self
            .server_for_write(ctx, id, "os_compute_api:servers:delete")
            .await?;
        crate::common::check_lock(ctx, &s)?;
        if self.soft_deletes(&s) {
            return self.soft_delete(ctx, &s, request_id).await;
        }
        self.delete_now(ctx, id, request_id).await
    }

    /// Deletes a server now, whatever its state.
    pub(crate) async fn delete_now(&self, ctx: &Context, id: &str, request_id: &str) -> Result<()> {
        let s = self
            .server_for_write(ctx, id, "os_compute_api:servers:delete")
            .await?;
        crate::common::check_lock(ctx, &s)?;
        let (sid, rid, project, user) = (
            s.id.clone(),
            request_id.to_owned(),
            s.project_id.clone(),
            ctx.user_id.clone(),
        );
        // A shelved server's image goes with it, as in Nova.
        if matches!(s.vm_state, VmState::Shelved | VmState::ShelvedOffloaded)
            && let Some(image) = self.sysmeta(&s.id, crate::sysmeta::SHELVED_IMAGE).await
            && let Err(e) = self.images.delete_image(ctx, &image).await
        {
            tracing::warn!(server_id = %s.id, image = %image, error = %e, "deleting a shelved server's image");
        }
        // Delete is legal in any state: it takes the task state whatever it was, and a task
        // already running finds the server no longer in the state it expects and stops.
        let bound_by_lock = !ctx.is_admin();
        let action = self
            .store
            .write(move |tx| {
                if bound_by_lock {
                    crate::common::refuse_if_locked(tx, &sid)?;
                }
                sql::mark_deleting(tx, &sid)?;
                sql::start_action(tx, &sid, &rid, "delete", &project, &user)
            })
            .await?;
        let sid = s.id.clone();
        self.run(&s.id, move |c| async move { c.destroy(sid, action).await });
        Ok(())
    }

    /// The usage and limits behind `GET /limits`.
    pub async fn absolute_limits(
        &self,
        ctx: &Context,
        project: &ProjectId,
    ) -> Result<crate::quotas::QuotaReport> {
        self.quotas(ctx, project).await
    }
}

/// The quota resources a `PUT /os-quota-sets` may name.
pub fn quota_resource(name: &str) -> Option<&'static str> {
    QUOTA_DEFAULTS.iter().map(|(r, _)| *r).find(|r| *r == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::random_password;

    #[test]
    fn hostnames_from_names() {
        assert_eq!(sanitize_hostname("My Server_1"), "my-server-1");
        assert_eq!(sanitize_hostname("ÄÖ!!"), "server");
        assert_eq!(sanitize_hostname(&"a".repeat(80)).len(), 63);
        assert!(reservation_id().starts_with("r-"));
        assert_eq!(random_password().len(), 12);
    }
}
