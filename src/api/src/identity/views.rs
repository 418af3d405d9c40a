//! Keystone's JSON shapes for identity records.

use chrono::{DateTime, Utc};
use model::{Domain, Project, Role, User};
use serde_json::{Value, json};

/// Keystone's timestamp format: microseconds and a `Z`.
pub fn keystone_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub fn domain(base: &str, d: &Domain) -> Value {
    json!({
        "id": d.id.as_str(),
        "name": d.name,
        "description": d.description,
        "enabled": d.enabled,
        "tags": [],
        "options": {},
        "links": {"self": format!("{base}/identity/v3/domains/{}", d.id)},
    })
}

pub fn project(base: &str, p: &Project) -> Value {
    json!({
        "id": p.id.as_str(),
        "name": p.name,
        "domain_id": p.domain_id.as_str(),
        "description": p.description,
        "enabled": p.enabled,
        "parent_id": p.domain_id.as_str(),
        "is_domain": false,
        "tags": [],
        "options": {},
        "links": {"self": format!("{base}/identity/v3/projects/{}", p.id)},
    })
}

pub fn user(base: &str, u: &User) -> Value {
    let mut v = json!({
        "id": u.id.as_str(),
        "name": u.name,
        "domain_id": u.domain_id.as_str(),
        "enabled": u.enabled,
        "password_expires_at": u.password_expires_at.map(keystone_time),
        "options": {},
        "links": {"self": format!("{base}/identity/v3/users/{}", u.id)},
    });
    if let Some(e) = &u.email {
        v["email"] = json!(e);
    }
    if let Some(d) = &u.description {
        v["description"] = json!(d);
    }
    if let Some(p) = &u.default_project_id {
        v["default_project_id"] = json!(p.as_str());
    }
    v
}

pub fn role(base: &str, r: &Role) -> Value {
    let mut v = json!({
        "id": r.id.as_str(),
        "name": r.name,
        "domain_id": null,
        "options": {},
        "links": {"self": format!("{base}/identity/v3/roles/{}", r.id)},
    });
    if let Some(d) = &r.description {
        v["description"] = json!(d);
    }
    v
}

/// A collection body: `{"<key>": [...], "links": {"self", "previous", "next"}}`.
pub fn collection(key: &str, self_url: String, items: Vec<Value>) -> Value {
    json!({
        key: items,
        "links": {"self": self_url, "previous": null, "next": null},
    })
}
