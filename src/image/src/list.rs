//! Listing images: Glance's filters, sort orders and marker paging.
//!
//! The store returns every image the caller could see; filtering, sorting and paging happen
//! here. A box holds tens to a few hundred images, so this stays well under a millisecond and
//! keeps one obviously correct implementation of Glance's rules instead of a SQL builder.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};

use model::Context;
use model::ProjectId;
use model::image::{
    ContainerFormat, DiskFormat, Image, ImageId, ImageStatus, MemberStatus, Visibility,
};
use store::image as sql;

use crate::{Error, Images, Result};

/// Glance's `limit_param_default` and `api_limit_max`.
pub const DEFAULT_LIMIT: usize = 25;
pub const MAX_LIMIT: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VisibilityFilter {
    /// Every image the caller may see, community images included.
    All,
    Only(Visibility),
}

/// Which shared-with-me images to list, by the caller's member status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberFilter {
    All,
    Only(MemberStatus),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    Name,
    Status,
    ContainerFormat,
    DiskFormat,
    Size,
    VirtualSize,
    Id,
    CreatedAt,
    UpdatedAt,
    Visibility,
    Owner,
    MinDisk,
    MinRam,
}

impl SortKey {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "name" => Self::Name,
            "status" => Self::Status,
            "container_format" => Self::ContainerFormat,
            "disk_format" => Self::DiskFormat,
            "size" => Self::Size,
            "virtual_size" => Self::VirtualSize,
            "id" => Self::Id,
            "created_at" => Self::CreatedAt,
            "updated_at" => Self::UpdatedAt,
            "visibility" => Self::Visibility,
            "owner" => Self::Owner,
            "min_disk" => Self::MinDisk,
            "min_ram" => Self::MinRam,
            _ => return None,
        })
    }

    fn cmp(self, a: &Image, b: &Image) -> Ordering {
        match self {
            Self::Name => a.name.cmp(&b.name),
            Self::Status => a.status.as_str().cmp(b.status.as_str()),
            Self::ContainerFormat => a
                .container_format
                .map(ContainerFormat::as_str)
                .cmp(&b.container_format.map(ContainerFormat::as_str)),
            Self::DiskFormat => a
                .disk_format
                .map(DiskFormat::as_str)
                .cmp(&b.disk_format.map(DiskFormat::as_str)),
            Self::Size => a.size.cmp(&b.size),
            Self::VirtualSize => a.virtual_size.cmp(&b.virtual_size),
            Self::Id => a.id.cmp(&b.id),
            Self::CreatedAt => a.created_at.cmp(&b.created_at),
            Self::UpdatedAt => a.updated_at.cmp(&b.updated_at),
            Self::Visibility => a.visibility.as_str().cmp(b.visibility.as_str()),
            Self::Owner => a.owner.cmp(&b.owner),
            Self::MinDisk => a.min_disk.cmp(&b.min_disk),
            Self::MinRam => a.min_ram.cmp(&b.min_ram),
        }
    }
}

/// A comparison of Glance's time filters (`created_at=gt:2026-01-01T00:00:00Z`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeOp {
    Gt,
    Gte,
    Lt,
    Lte,
    Eq,
    Neq,
}

impl TimeOp {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "gt" => Self::Gt,
            "gte" => Self::Gte,
            "lt" => Self::Lt,
            "lte" => Self::Lte,
            "eq" => Self::Eq,
            "neq" => Self::Neq,
            _ => return None,
        })
    }

    fn holds(self, value: DateTime<Utc>, against: DateTime<Utc>) -> bool {
        match self {
            Self::Gt => value > against,
            Self::Gte => value >= against,
            Self::Lt => value < against,
            Self::Lte => value <= against,
            Self::Eq => value == against,
            Self::Neq => value != against,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortDir {
    Asc,
    Desc,
}

#[derive(Clone, Debug)]
pub struct ListQuery {
    pub ids: Option<Vec<ImageId>>,
    pub names: Option<Vec<String>>,
    pub statuses: Option<Vec<ImageStatus>>,
    pub visibility: Option<VisibilityFilter>,
    pub member_status: MemberFilter,
    pub owner: Option<ProjectId>,
    /// Every one of these tags must be present.
    pub tags: Vec<String>,
    pub disk_formats: Option<Vec<DiskFormat>>,
    pub container_formats: Option<Vec<ContainerFormat>>,
    pub size_min: Option<u64>,
    pub size_max: Option<u64>,
    pub protected: Option<bool>,
    /// `Some(false)` by default: hidden images are listed only when asked for.
    pub os_hidden: Option<bool>,
    /// Custom property filters: exact matches.
    pub properties: Vec<(String, String)>,
    /// Time filters; every one must hold.
    pub created_at: Vec<(TimeOp, DateTime<Utc>)>,
    pub updated_at: Vec<(TimeOp, DateTime<Utc>)>,
    pub sort: Vec<(SortKey, SortDir)>,
    pub limit: usize,
    pub marker: Option<ImageId>,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            ids: None,
            names: None,
            statuses: None,
            visibility: None,
            member_status: MemberFilter::Only(MemberStatus::Accepted),
            owner: None,
            tags: Vec::new(),
            disk_formats: None,
            container_formats: None,
            size_min: None,
            size_max: None,
            protected: None,
            os_hidden: Some(false),
            properties: Vec::new(),
            created_at: Vec::new(),
            updated_at: Vec::new(),
            sort: Vec::new(),
            limit: DEFAULT_LIMIT,
            marker: None,
        }
    }
}

pub struct Page {
    pub images: Vec<Image>,
    /// Set when more images follow: the marker of the next page.
    pub next_marker: Option<ImageId>,
}

impl Images {
    pub async fn list(&self, ctx: &Context, q: ListQuery) -> Result<Page> {
        let viewer = if ctx.is_admin() {
            None
        } else {
            match &ctx.project_id {
                Some(p) if ctx.has(model::Persona::Reader) => Some(p.clone()),
                _ => {
                    return Ok(Page {
                        images: vec![],
                        next_marker: None,
                    });
                }
            }
        };
        let v = viewer.clone();
        let rows = self
            .store
            .read(move |c| sql::list_visible(c, v.as_ref()))
            .await?;
        select(rows, viewer.as_ref(), ctx.project_id.as_ref(), q)
    }
}

/// Filters, sorts and pages `rows`. `viewer` is `None` for the administrator; `project` is the
/// caller's own project.
fn select(
    rows: Vec<(Image, Option<MemberStatus>)>,
    viewer: Option<&ProjectId>,
    project: Option<&ProjectId>,
    q: ListQuery,
) -> Result<Page> {
    let mut sort = q.sort.clone();
    if sort.is_empty() {
        sort.push((SortKey::CreatedAt, SortDir::Desc));
    }
    // The id breaks ties so that paging by marker is exact.
    if !sort.iter().any(|(k, _)| *k == SortKey::Id) {
        let dir = sort.last().map(|(_, d)| *d).unwrap_or(SortDir::Desc);
        sort.push((SortKey::Id, dir));
    }
    let order = |a: &Image, b: &Image| {
        for (k, d) in &sort {
            let o = k.cmp(a, b);
            let o = if *d == SortDir::Desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    };
    let marker = match &q.marker {
        Some(m) => Some(
            rows.iter()
                .find(|(i, _)| i.id == *m)
                .map(|(i, _)| i.clone())
                .ok_or_else(|| {
                    Error::BadRequest(format!("Invalid marker. Image {m} could not be found."))
                })?,
        ),
        None => None,
    };
    let mut out: Vec<Image> = rows
        .into_iter()
        .filter(|(img, member)| matches(img, *member, viewer, project, &q))
        .map(|(img, _)| img)
        .filter(|img| {
            marker
                .as_ref()
                .is_none_or(|m| order(img, m) == Ordering::Greater)
        })
        .collect();
    out.sort_by(order);
    let limit = q.limit.min(MAX_LIMIT);
    let next_marker = if out.len() > limit {
        out.truncate(limit);
        out.last().map(|i| i.id.clone())
    } else {
        None
    };
    Ok(Page {
        images: out,
        next_marker,
    })
}

fn matches(
    img: &Image,
    member: Option<MemberStatus>,
    viewer: Option<&ProjectId>,
    project: Option<&ProjectId>,
    q: &ListQuery,
) -> bool {
    let own = project == Some(&img.owner);
    let member_ok = match q.member_status {
        MemberFilter::All => member.is_some(),
        MemberFilter::Only(s) => member == Some(s),
    };
    // Which images a visibility filter selects, by Glance's rules: by default the caller's
    // own, public ones and those shared with it (accepted, unless member_status says
    // otherwise); community images only when asked for or owned.
    let visible = match q.visibility {
        None => {
            viewer.is_none() && img.visibility != Visibility::Community
                || own
                || img.visibility == Visibility::Public
                || (img.visibility == Visibility::Shared && member_ok)
        }
        Some(VisibilityFilter::All) => {
            viewer.is_none()
                || own
                || matches!(img.visibility, Visibility::Public | Visibility::Community)
                || (img.visibility == Visibility::Shared && member_ok)
        }
        Some(VisibilityFilter::Only(v)) => {
            img.visibility == v
                && match v {
                    Visibility::Public | Visibility::Community => true,
                    Visibility::Private => viewer.is_none() || own,
                    Visibility::Shared => viewer.is_none() || own || member_ok,
                }
        }
    };
    visible
        && q.ids.as_ref().is_none_or(|ids| ids.contains(&img.id))
        && q.names
            .as_ref()
            .is_none_or(|n| img.name.as_ref().is_some_and(|name| n.contains(name)))
        && q.statuses.as_ref().is_none_or(|s| s.contains(&img.status))
        && q.owner.as_ref().is_none_or(|o| *o == img.owner)
        && q.tags.iter().all(|t| img.tags.contains(t))
        && q.disk_formats
            .as_ref()
            .is_none_or(|f| img.disk_format.is_some_and(|d| f.contains(&d)))
        && q.container_formats
            .as_ref()
            .is_none_or(|f| img.container_format.is_some_and(|c| f.contains(&c)))
        && q.size_min.is_none_or(|m| img.size.is_some_and(|s| s >= m))
        && q.size_max.is_none_or(|m| img.size.is_some_and(|s| s <= m))
        && q.protected.is_none_or(|p| img.protected == p)
        && q.os_hidden.is_none_or(|h| img.os_hidden == h)
        && q.properties
            .iter()
            .all(|(k, v)| img.properties.get(k) == Some(v))
        // Glance's timestamps have whole seconds, and so do the clients' filters.
        && q
            .created_at
            .iter()
            .all(|(op, t)| op.holds(trunc(img.created_at), *t))
        && q
            .updated_at
            .iter()
            .all(|(op, t)| op.holds(trunc(img.updated_at), *t))
}

fn trunc(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}
