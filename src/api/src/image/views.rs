//! Glance's JSON for images and members.

use chrono::{DateTime, Utc};
use model::image::{Image, ImageMember};
use serde_json::{Map, Value, json};

/// Glance's timestamp format: seconds, `Z`.
pub fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The core attributes of an image, as Glance names them. Everything else in an image body is
/// a custom property.
pub const CORE: &[&str] = &[
    "id",
    "name",
    "status",
    "visibility",
    "protected",
    "os_hidden",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "size",
    "virtual_size",
    "disk_format",
    "container_format",
    "min_disk",
    "min_ram",
    "owner",
    "created_at",
    "updated_at",
    "tags",
    "self",
    "file",
    "schema",
];

/// Attributes only the service sets (Glance's `_readonly_properties` and
/// `_disallowed_properties`): a client that sends one gets 403.
pub const READ_ONLY: &[&str] = &[
    "created_at",
    "updated_at",
    "status",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "size",
    "virtual_size",
    "direct_url",
    "self",
    "file",
    "schema",
    "stores",
    "locations",
];

/// Attributes Glance reserves and refuses outright.
pub const RESERVED: &[&str] = &["location", "deleted", "deleted_at"];

pub fn image(img: &Image) -> Value {
    let mut m = Map::new();
    // Custom properties first, so a core attribute can never be shadowed by one.
    for (k, v) in &img.properties {
        m.insert(k.clone(), Value::String(v.clone()));
    }
    let core = json!({
        "id": img.id.as_str(),
        "name": img.name,
        "status": img.status.as_str(),
        "visibility": img.visibility.as_str(),
        "protected": img.protected,
        "os_hidden": img.os_hidden,
        "checksum": img.checksum,
        "os_hash_algo": img.os_hash_algo,
        "os_hash_value": img.os_hash_value,
        "size": img.size,
        "virtual_size": img.virtual_size,
        "disk_format": img.disk_format.map(|f| f.as_str()),
        "container_format": img.container_format.map(|f| f.as_str()),
        "min_disk": img.min_disk,
        "min_ram": img.min_ram,
        "owner": img.owner.as_str(),
        "created_at": ts(img.created_at),
        "updated_at": ts(img.updated_at),
        "tags": img.tags,
        "self": format!("/v2/images/{}", img.id),
        "file": format!("/v2/images/{}/file", img.id),
        "schema": "/v2/schemas/image",
    });
    if let Value::Object(core) = core {
        m.extend(core);
    }
    Value::Object(m)
}

pub fn member(m: &ImageMember) -> Value {
    json!({
        "image_id": m.image_id.as_str(),
        "member_id": m.member.as_str(),
        "status": m.status.as_str(),
        "created_at": ts(m.created_at),
        "updated_at": ts(m.updated_at),
        "schema": "/v2/schemas/member",
    })
}
