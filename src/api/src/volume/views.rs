//! The JSON of volumes and snapshots, per microversion and caller, as Cinder shows them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use model::volume::{AttachmentRec, SnapshotRec, VolumeRec};
use serde_json::{Map, Value, json};

/// Cinder's timestamps: microseconds, no zone.
pub fn time(t: &DateTime<Utc>) -> Value {
    json!(t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
}

fn opt_time(t: &Option<DateTime<Utc>>) -> Value {
    t.as_ref().map_or(Value::Null, time)
}

fn strings(m: &BTreeMap<String, String>) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

fn links(base: &str, coll: &str, id: &str) -> Value {
    let bookmark = base.replacen("/v3/", "/", 1);
    json!([
        {"rel": "self", "href": format!("{base}/{coll}/{id}")},
        {"rel": "bookmark", "href": format!("{bookmark}/{coll}/{id}")},
    ])
}

pub fn attachment(a: &AttachmentRec) -> Value {
    json!({
        "id": a.volume_id,
        "attachment_id": a.id,
        "volume_id": a.volume_id,
        "server_id": a.server_id,
        "host_name": null,
        "device": a.device,
        "attached_at": time(&a.attached_at),
    })
}

/// A volume in a list without detail.
pub fn volume_summary(v: &VolumeRec, base: &str) -> Value {
    json!({"id": v.id, "name": v.name, "links": links(base, "volumes", &v.id)})
}

/// A volume in full, at microversion `3.mv`; the host and migration attributes only for an
/// admin.
pub fn volume(v: &VolumeRec, base: &str, mv: u16, admin: bool) -> Value {
    let mut o = Map::new();
    let mut put = |k: &str, val: Value| {
        o.insert(k.to_owned(), val);
    };
    put("id", json!(v.id));
    put("status", json!(v.status));
    put("size", json!(v.size_gb));
    put("availability_zone", json!(v.availability_zone));
    put("created_at", time(&v.created_at));
    put("updated_at", opt_time(&v.updated_at));
    put("name", json!(v.name));
    put("description", json!(v.description));
    put("volume_type", json!(v.volume_type_name));
    put("snapshot_id", json!(v.snapshot_id));
    put("source_volid", json!(v.source_volid));
    put("metadata", strings(&v.metadata));
    put("links", links(base, "volumes", &v.id));
    put("user_id", json!(v.user_id.as_str()));
    put("bootable", json!(if v.bootable { "true" } else { "false" }));
    put("encrypted", json!(false));
    put("replication_status", Value::Null);
    put("consistencygroup_id", Value::Null);
    put("multiattach", json!(false));
    put(
        "attachments",
        Value::Array(v.attachments.iter().map(attachment).collect()),
    );
    if !v.image_metadata.is_empty() {
        put("volume_image_metadata", strings(&v.image_metadata));
    }
    if mv >= 13 {
        put("group_id", Value::Null);
    }
    if mv >= 48 {
        put("shared_targets", json!(false));
        put("service_uuid", Value::Null);
    }
    if mv >= 63 {
        put("volume_type_id", json!(v.volume_type_id));
    }
    if mv >= 65 {
        put("consumes_quota", json!(true));
    }
    put("os-vol-tenant-attr:tenant_id", json!(v.project_id.as_str()));
    if admin {
        put("migration_status", Value::Null);
        put("os-vol-mig-status-attr:migstat", Value::Null);
        put("os-vol-mig-status-attr:name_id", Value::Null);
        put("os-vol-host-attr:host", json!("onebox@file#file"));
        if mv >= 21 {
            put("provider_id", Value::Null);
        }
        if mv >= 31 {
            put("cluster_name", Value::Null);
        }
    }
    Value::Object(o)
}

pub fn snapshot(s: &SnapshotRec, mv: u16) -> Value {
    let mut v = json!({
        "id": s.id,
        "created_at": time(&s.created_at),
        "updated_at": opt_time(&s.updated_at),
        "name": s.name,
        "description": s.description,
        "volume_id": s.volume_id,
        "status": s.status,
        "size": s.size_gb,
        "metadata": strings(&s.metadata),
        "os-extended-snapshot-attributes:project_id": s.project_id.as_str(),
        "os-extended-snapshot-attributes:progress": if s.status == "available" { "100%" } else { "0%" },
    });
    if mv >= 14 {
        v["group_snapshot_id"] = Value::Null;
    }
    if mv >= 41 {
        v["user_id"] = json!(s.user_id.as_str());
    }
    if mv >= 65 {
        v["consumes_quota"] = json!(true);
    }
    v
}
