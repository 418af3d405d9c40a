//! `/v2/schemas/…`: the JSON schemas Glance publishes. glanceclient builds its models from
//! them, and they document for any client which attributes are core, which are read-only, and
//! that every other attribute is a string-valued custom property.

use axum::Json;
use model::image::{ContainerFormat, DiskFormat};
use serde_json::{Value, json};

fn nullable_enum(names: Vec<&str>, description: &str) -> Value {
    let mut e: Vec<Value> = vec![Value::Null];
    e.extend(names.into_iter().map(|n| json!(n)));
    json!({"type": ["null", "string"], "description": description, "enum": e})
}

fn ro(t: Value, description: &str) -> Value {
    json!({"type": t, "readOnly": true, "description": description})
}

pub fn image_schema() -> Value {
    json!({
        "name": "image",
        "additionalProperties": {"type": "string"},
        "properties": {
            "id": {"type": "string", "description": "An identifier for the image",
                   "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"},
            "name": {"type": ["null", "string"], "maxLength": 255,
                     "description": "Descriptive name for the image"},
            "status": {"type": "string", "readOnly": true,
                       "description": "Status of the image",
                       "enum": ["queued", "saving", "active", "killed", "deleted",
                                "uploading", "importing", "pending_delete", "deactivated"]},
            "visibility": {"type": "string", "description": "Scope of image accessibility",
                           "enum": ["community", "public", "private", "shared"]},
            "protected": {"type": "boolean",
                          "description": "If true, image will not be deletable."},
            "os_hidden": {"type": "boolean",
                          "description": "If true, image will not appear in default image list response."},
            "checksum": ro(json!(["null", "string"]), "md5 hash of image contents."),
            "os_hash_algo": ro(json!(["null", "string"]), "Algorithm to calculate the os_hash_value"),
            "os_hash_value": ro(json!(["null", "string"]), "Hexdigest of the image contents using the algorithm specified by the os_hash_algo"),
            "owner": {"type": ["null", "string"], "maxLength": 255,
                      "description": "Owner of the image"},
            "size": ro(json!(["null", "integer"]), "Size of image file in bytes"),
            "virtual_size": ro(json!(["null", "integer"]), "Virtual size of image in bytes"),
            "container_format": nullable_enum(
                ContainerFormat::ALL.iter().map(|f| f.as_str()).collect(),
                "Format of the container"),
            "disk_format": nullable_enum(
                DiskFormat::ALL.iter().map(|f| f.as_str()).collect(),
                "Format of the disk"),
            "created_at": ro(json!("string"), "Date and time of image registration"),
            "updated_at": ro(json!("string"), "Date and time of the last image modification"),
            "tags": {"type": "array", "description": "List of strings related to the image",
                     "items": {"type": "string", "maxLength": 255}},
            "direct_url": ro(json!("string"), "URL to access the image file kept in external store"),
            "min_ram": {"type": "integer", "minimum": 0,
                        "description": "Amount of ram (in MB) required to boot image."},
            "min_disk": {"type": "integer", "minimum": 0,
                         "description": "Amount of disk space (in GB) required to boot image."},
            "self": ro(json!("string"), "An image self url"),
            "file": ro(json!("string"), "An image file url"),
            "schema": ro(json!("string"), "An image schema url"),
            "locations": {"type": "array", "description": "A set of URLs to access the image file kept in external store",
                          "items": {"type": "object"}},
        },
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    })
}

pub async fn image() -> Json<Value> {
    Json(image_schema())
}

pub async fn images() -> Json<Value> {
    Json(json!({
        "name": "images",
        "properties": {
            "images": {"type": "array", "items": image_schema()},
            "schema": {"type": "string"},
            "first": {"type": "string"},
            "next": {"type": "string"},
        },
        "links": [
            {"rel": "first", "href": "{first}"},
            {"rel": "next", "href": "{next}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    }))
}

fn member_schema() -> Value {
    json!({
        "name": "member",
        "properties": {
            "created_at": {"type": "string", "description": "Date and time of image member creation"},
            "image_id": {"type": "string", "description": "An identifier for the image"},
            "member_id": {"type": "string", "description": "An identifier for the image member (tenantId)"},
            "schema": {"type": "string", "readOnly": true},
            "status": {"type": "string", "description": "The status of this image member",
                       "enum": ["pending", "accepted", "rejected"]},
            "updated_at": {"type": "string", "description": "Date and time of last modification of image member"},
        },
    })
}

pub async fn member() -> Json<Value> {
    Json(member_schema())
}

pub async fn members() -> Json<Value> {
    Json(json!({
        "name": "members",
        "properties": {
            "members": {"type": "array", "items": member_schema()},
            "schema": {"type": "string"},
        },
        "links": [{"rel": "schema", "href": "{schema}"}],
    }))
}
