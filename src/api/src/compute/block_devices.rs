//! A create's block device mapping as Nova reads it: `block_device_mapping_v2` (and the
//! legacy `block_device_mapping` of volumes by device name) becomes the image a server boots
//! from and the volumes compute makes or reserves for it.

use compute::block_devices::{BdmSource, BlockDevice};
use serde_json::{Map, Value};

use super::validate as v;
use crate::Fault;
use crate::microversion::ApiVersion;

fn invalid(details: &str) -> Fault {
    Fault::bad_request(format!("Block Device Mapping is Invalid: {details}"))
}

/// Nova's `boot_index`: an integer, a string of one, or null; a negative one (and null)
/// is a device the server never boots from.
fn boot_index(x: Option<&Value>) -> Result<Option<u32>, Fault> {
    let n = match x {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse::<i64>().ok(),
        Some(_) => None,
    };
    match n {
        Some(i) if i < 0 => Ok(None),
        Some(i) => Ok(u32::try_from(i).ok()),
        None => Err(v::invalid(
            "boot_index",
            x.unwrap_or(&Value::Null),
            &format!(
                "{} is not of type 'integer', 'string', 'null'",
                v::py_repr(x.unwrap_or(&Value::Null))
            ),
        )),
    }
}

fn size(x: Option<&Value>) -> Result<Option<u64>, Fault> {
    match x {
        None | Some(Value::Null) => Ok(None),
        Some(x) => Ok(Some(v::integer("volume_size", x, 0, i64::MAX)? as u64)),
    }
}

fn flag(x: Option<&Value>) -> Result<bool, Fault> {
    match x {
        None | Some(Value::Null) => Ok(false),
        Some(x) => v::boolean("delete_on_termination", x),
    }
}

fn device_name(x: Option<&Value>) -> Result<Option<String>, Fault> {
    match x {
        None | Some(Value::Null) => Ok(None),
        Some(x) => {
            let d = v::string("device_name", x, 1, 255)?;
            if d.contains(char::is_whitespace) {
                return Err(invalid("Device name contains spaces."));
            }
            Ok(Some(d))
        }
    }
}

const V2_KEYS: &[&str] = &[
    "source_type",
    "destination_type",
    "uuid",
    "image_id",
    "boot_index",
    "volume_size",
    "delete_on_termination",
    "device_name",
    "device_type",
    "disk_bus",
    "guest_format",
    "no_device",
    "connection_info",
    "snapshot_id",
    "volume_id",
    "tag",
    "volume_type",
    "encrypted",
    "encryption_secret_uuid",
    "encryption_format",
    "encryption_options",
];

/// One `block_device_mapping_v2` entry: the image it boots (image to local, boot index 0),
/// a volume, or nothing onebox keeps (blank local disks: ephemeral and swap come from the
/// flavor).
enum Entry {
    Image(String),
    Volume(BlockDevice),
    Local,
}

fn v2_entry(ver: ApiVersion, b: &Value, has_image_ref: bool) -> Result<Entry, Fault> {
    let o = v::object("block_device_mapping_v2", b)?;
    let mut keys: Vec<&str> = V2_KEYS.to_vec();
    keys.retain(|k| (*k != "tag" || ver.at_least(42)) && (*k != "volume_type" || ver.at_least(67)));
    v::only("block_device_mapping_v2", b, &keys)?;
    let src = match o.get("source_type") {
        None | Some(Value::Null) => None,
        Some(x) => Some(v::string("source_type", x, 0, 255)?),
    };
    let src = match src.as_deref() {
        None => return Err(invalid("Missing source_type field.")),
        Some(s @ ("volume" | "image" | "snapshot" | "blank")) => s.to_owned(),
        Some(_) => {
            let x = o.get("source_type").unwrap_or(&Value::Null);
            return Err(v::invalid(
                "source_type",
                x,
                &format!(
                    "{} is not one of ['volume', 'image', 'snapshot', 'blank']",
                    v::py_repr(x)
                ),
            ));
        }
    };
    let dst = match o.get("destination_type") {
        None | Some(Value::Null) if matches!(src.as_str(), "volume" | "snapshot") => {
            "volume".into()
        }
        None | Some(Value::Null) => "local".to_owned(),
        Some(x) => {
            let d = v::string("destination_type", x, 0, 255)?;
            if d != "local" && d != "volume" {
                return Err(v::invalid(
                    "destination_type",
                    x,
                    &format!("{} is not one of ['local', 'volume']", v::py_repr(x)),
                ));
            }
            d
        }
    };
    let uuid = match o.get("uuid") {
        None | Some(Value::Null) => None,
        Some(x) => {
            let u = v::string("uuid", x, 1, 255)?;
            if !u
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
            {
                return Err(v::invalid(
                    "uuid",
                    x,
                    &format!("{} does not match '^[a-zA-Z0-9._-]*$'", v::py_repr(x)),
                ));
            }
            Some(u)
        }
    };
    let boot = boot_index(o.get("boot_index"))?;
    let device = BlockDevice {
        source: BdmSource::Blank,
        volume_size: size(o.get("volume_size"))?,
        boot_index: boot,
        delete_on_termination: flag(o.get("delete_on_termination"))?,
        device_name: device_name(o.get("device_name"))?,
        tag: match o.get("tag") {
            None | Some(Value::Null) => None,
            Some(x) => Some(v::string("tag", x, 1, 60)?),
        },
    };
    let id = || uuid.clone().ok_or_else(|| invalid("Missing device UUID."));
    if src == "blank" && uuid.is_some() {
        return Err(invalid("Invalid device UUID."));
    }
    match (src.as_str(), dst.as_str()) {
        ("image", "local") => {
            if boot == Some(0) {
                Ok(Entry::Image(id()?))
            } else if has_image_ref {
                Ok(Entry::Local)
            } else {
                Err(invalid("Mapping image to local is not supported."))
            }
        }
        ("blank", "local") => Ok(Entry::Local),
        ("image", "volume") => Ok(Entry::Volume(BlockDevice {
            source: BdmSource::Image(id()?),
            ..device
        })),
        ("volume", "volume") => Ok(Entry::Volume(BlockDevice {
            source: BdmSource::Volume(id()?),
            ..device
        })),
        ("snapshot", "volume") => Ok(Entry::Volume(BlockDevice {
            source: BdmSource::Snapshot(id()?),
            ..device
        })),
        ("blank", "volume") => Ok(Entry::Volume(device)),
        _ => Err(invalid(&format!(
            "Specified BDM source_type '{src}' with destination_type '{dst}' is not supported."
        ))),
    }
}

/// The legacy mapping: volumes (or snapshots) by device name; the one on `vda` (or the
/// first, when the request names no image) is the boot disk.
fn legacy_entry(b: &Value, first_without_image: bool) -> Result<Option<BlockDevice>, Fault> {
    let o = v::object("block_device_mapping", b)?;
    v::only(
        "block_device_mapping",
        b,
        &[
            "virtual_name",
            "volume_id",
            "snapshot_id",
            "volume_size",
            "device_name",
            "delete_on_termination",
            "no_device",
            "connection_info",
        ],
    )?;
    let device_name = device_name(o.get("device_name"))?;
    let id_of = |k: &str| -> Result<Option<String>, Fault> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => Ok(Some(v::string(k, x, 1, 255)?)),
        }
    };
    let source = match (id_of("volume_id")?, id_of("snapshot_id")?) {
        (Some(vid), _) => BdmSource::Volume(vid),
        (None, Some(sid)) => BdmSource::Snapshot(sid),
        (None, None) => return Ok(None),
    };
    let root = matches!(device_name.as_deref(), Some("vda" | "/dev/vda")) || first_without_image;
    Ok(Some(BlockDevice {
        source,
        volume_size: size(o.get("volume_size"))?,
        boot_index: root.then_some(0),
        delete_on_termination: flag(o.get("delete_on_termination"))?,
        device_name,
        tag: None,
    }))
}

/// The image to boot (from `imageRef` or an image-to-local boot mapping) and the volumes of
/// the mapping.
pub(super) fn parse(
    ver: ApiVersion,
    o: &Map<String, Value>,
    image_ref: Option<String>,
) -> Result<(Option<String>, Vec<BlockDevice>), Fault> {
    let v2 = o.get("block_device_mapping_v2").filter(|x| !x.is_null());
    let v1 = o.get("block_device_mapping").filter(|x| !x.is_null());
    if v2.is_some() && v1.is_some() {
        return Err(Fault::bad_request(
            "Using different block_device_mapping syntaxes is not allowed in the same request.",
        ));
    }
    let mut image = image_ref;
    let mut volumes = Vec::new();
    if let Some(list) = v2 {
        let list = list.as_array().ok_or_else(|| {
            v::invalid(
                "block_device_mapping_v2",
                list,
                &format!("{} is not of type 'array'", v::py_repr(list)),
            )
        })?;
        let has_image_ref = image.is_some();
        for b in list {
            match v2_entry(ver, b, has_image_ref)? {
                Entry::Image(i) => {
                    if image.as_ref().is_some_and(|r| r != &i) {
                        return Err(invalid(
                            "Boot sequence for the instance and image/block device mapping combination is not valid.",
                        ));
                    }
                    image = Some(i);
                }
                Entry::Volume(d) => volumes.push(d),
                Entry::Local => {}
            }
        }
    }
    if let Some(list) = v1 {
        let list = list.as_array().ok_or_else(|| {
            v::invalid(
                "block_device_mapping",
                list,
                &format!("{} is not of type 'array'", v::py_repr(list)),
            )
        })?;
        for (i, b) in list.iter().enumerate() {
            if let Some(d) = legacy_entry(b, i == 0 && image.is_none())? {
                volumes.push(d);
            }
        }
    }
    Ok((image, volumes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(body: Value) -> Result<(Option<String>, Vec<BlockDevice>), Fault> {
        parse(
            ApiVersion::new(2, 100),
            body.as_object().expect("object"),
            None,
        )
    }

    #[test]
    fn boot_from_an_image_made_into_a_volume() {
        let (image, vols) = run(json!({"block_device_mapping_v2": [{
            "uuid": "70a599e0-31e7-49b7-b260-868f441e862b", "source_type": "image",
            "destination_type": "volume", "boot_index": "0", "volume_size": 2,
            "delete_on_termination": true
        }]}))
        .expect("parsed");
        assert_eq!(image, None);
        assert_eq!(vols.len(), 1);
        assert_eq!(
            vols[0].source,
            BdmSource::Image("70a599e0-31e7-49b7-b260-868f441e862b".into())
        );
        assert_eq!(vols[0].boot_index, Some(0));
        assert_eq!(vols[0].volume_size, Some(2));
        assert!(vols[0].delete_on_termination);
    }

    #[test]
    fn refusals_name_the_mapping() {
        for (body, want) in [
            (
                json!({"block_device_mapping_v2": [{"source_type": "volume", "boot_index": 0}]}),
                "Missing device UUID.",
            ),
            (
                json!({"block_device_mapping_v2": [{"source_type": "blank", "uuid": "x", "destination_type": "volume"}]}),
                "Invalid device UUID.",
            ),
            (
                json!({"block_device_mapping_v2": [{"source_type": "nfs", "uuid": "x"}]}),
                "is not one of",
            ),
            (
                json!({"block_device_mapping_v2": [], "block_device_mapping": []}),
                "different block_device_mapping syntaxes",
            ),
        ] {
            let f = run(body).expect_err("refused");
            assert_eq!(f.status.as_u16(), 400);
            assert!(f.message.contains(want), "{} lacks {want}", f.message);
        }
    }
}
