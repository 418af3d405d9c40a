//! SQL for bare-metal nodes.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Map, Value};

use crate::{Error, Result, parse_ts, ts};

/// One enrolled machine, as the baremetal service keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub uuid: String,
    pub name: Option<String>,
    pub driver: String,
    /// BMC address, port and user; never the password.
    pub driver_info: Map<String, Value>,
    pub bmc_password: Option<String>,
    pub resource_class: Option<String>,
    pub properties: Map<String, Value>,
    pub extra: Map<String, Value>,
    pub instance_info: Map<String, Value>,
    pub power_state: Option<String>,
    pub target_power_state: Option<String>,
    pub provision_state: String,
    pub target_provision_state: Option<String>,
    pub maintenance: bool,
    pub maintenance_reason: Option<String>,
    pub last_error: Option<String>,
    pub instance_uuid: Option<String>,
    pub boot_device: Option<String>,
    pub boot_persistent: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub provision_updated_at: Option<DateTime<Utc>>,
}

const COLS: &str = "uuid, name, driver, driver_info, bmc_password, resource_class, properties, \
    extra, instance_info, power_state, target_power_state, provision_state, \
    target_provision_state, maintenance, maintenance_reason, last_error, instance_uuid, \
    boot_device, boot_persistent, created_at, updated_at, provision_updated_at";

fn json_col(r: &Row<'_>, i: usize) -> rusqlite::Result<Map<String, Value>> {
    let s: String = r.get(i)?;
    match serde_json::from_str::<Value>(&s) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            "not a JSON object".into(),
        )),
    }
}

fn opt_ts(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    r.get::<_, Option<String>>(i)?
        .map(|s| parse_ts(&s))
        .transpose()
}

fn node_row(r: &Row<'_>) -> rusqlite::Result<Node> {
    Ok(Node {
        uuid: r.get(0)?,
        name: r.get(1)?,
        driver: r.get(2)?,
        driver_info: json_col(r, 3)?,
        bmc_password: r.get(4)?,
        resource_class: r.get(5)?,
        properties: json_col(r, 6)?,
        extra: json_col(r, 7)?,
        instance_info: json_col(r, 8)?,
        power_state: r.get(9)?,
        target_power_state: r.get(10)?,
        provision_state: r.get(11)?,
        target_provision_state: r.get(12)?,
        maintenance: r.get(13)?,
        maintenance_reason: r.get(14)?,
        last_error: r.get(15)?,
        instance_uuid: r.get(16)?,
        boot_device: r.get(17)?,
        boot_persistent: r.get(18)?,
        created_at: parse_ts(&r.get::<_, String>(19)?)?,
        updated_at: opt_ts(r, 20)?,
        provision_updated_at: opt_ts(r, 21)?,
    })
}

fn obj(m: &Map<String, Value>) -> String {
    Value::Object(m.clone()).to_string()
}

pub fn insert_node(c: &Connection, n: &Node) -> Result<()> {
    c.execute(
        &format!(
            "INSERT INTO baremetal_nodes ({COLS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)"
        ),
        params![
            n.uuid,
            n.name,
            n.driver,
            obj(&n.driver_info),
            n.bmc_password,
            n.resource_class,
            obj(&n.properties),
            obj(&n.extra),
            obj(&n.instance_info),
            n.power_state,
            n.target_power_state,
            n.provision_state,
            n.target_provision_state,
            n.maintenance,
            n.maintenance_reason,
            n.last_error,
            n.instance_uuid,
            n.boot_device,
            n.boot_persistent,
            ts(n.created_at),
            n.updated_at.map(ts),
            n.provision_updated_at.map(ts),
        ],
    )
    .map_err(Error::from_write)?;
    Ok(())
}

/// Rewrites every column of the node but its uuid and creation time.
pub fn update_node(c: &Connection, n: &Node) -> Result<bool> {
    let changed = c
        .execute(
            "UPDATE baremetal_nodes SET name = ?2, driver = ?3, driver_info = ?4, \
             bmc_password = ?5, resource_class = ?6, properties = ?7, extra = ?8, \
             instance_info = ?9, power_state = ?10, target_power_state = ?11, \
             provision_state = ?12, target_provision_state = ?13, maintenance = ?14, \
             maintenance_reason = ?15, last_error = ?16, instance_uuid = ?17, boot_device = ?18, \
             boot_persistent = ?19, updated_at = ?20, provision_updated_at = ?21 WHERE uuid = ?1",
            params![
                n.uuid,
                n.name,
                n.driver,
                obj(&n.driver_info),
                n.bmc_password,
                n.resource_class,
                obj(&n.properties),
                obj(&n.extra),
                obj(&n.instance_info),
                n.power_state,
                n.target_power_state,
                n.provision_state,
                n.target_provision_state,
                n.maintenance,
                n.maintenance_reason,
                n.last_error,
                n.instance_uuid,
                n.boot_device,
                n.boot_persistent,
                n.updated_at.map(ts),
                n.provision_updated_at.map(ts),
            ],
        )
        .map_err(Error::from_write)?;
    Ok(changed == 1)
}

/// A node by uuid, or else by name.
pub fn get_node(c: &Connection, ident: &str) -> Result<Option<Node>> {
    let by_uuid = c
        .query_row(
            &format!("SELECT {COLS} FROM baremetal_nodes WHERE uuid = ?1"),
            [ident],
            node_row,
        )
        .optional()?;
    if by_uuid.is_some() {
        return Ok(by_uuid);
    }
    Ok(c.query_row(
        &format!("SELECT {COLS} FROM baremetal_nodes WHERE name = ?1"),
        [ident],
        node_row,
    )
    .optional()?)
}

pub fn node_by_instance(c: &Connection, instance_uuid: &str) -> Result<Option<Node>> {
    Ok(c.query_row(
        &format!("SELECT {COLS} FROM baremetal_nodes WHERE instance_uuid = ?1"),
        [instance_uuid],
        node_row,
    )
    .optional()?)
}

/// Every node, oldest first.
pub fn list_nodes(c: &Connection) -> Result<Vec<Node>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLS} FROM baremetal_nodes ORDER BY created_at, uuid"
    ))?;
    let rows = st.query_map([], node_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn delete_node(c: &Connection, uuid: &str) -> Result<bool> {
    Ok(c.execute("DELETE FROM baremetal_nodes WHERE uuid = ?1", [uuid])? == 1)
}

/// Picks the oldest available node, not in maintenance, whose resource class `fits`, and binds
/// it to `instance_uuid` (inside the caller's transaction, so two claims cannot take one node).
pub fn claim_node(
    c: &Connection,
    fits: &dyn Fn(&str) -> bool,
    instance_uuid: &str,
    now: DateTime<Utc>,
) -> Result<Option<Node>> {
    let mut st = c.prepare(
        "SELECT uuid, resource_class FROM baremetal_nodes WHERE provision_state = 'available' \
         AND maintenance = 0 AND instance_uuid IS NULL AND resource_class IS NOT NULL \
         ORDER BY created_at, uuid",
    )?;
    let candidates = st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let Some((uuid, _)) = candidates.into_iter().find(|(_, class)| fits(class)) else {
        return Ok(None);
    };
    c.execute(
        "UPDATE baremetal_nodes SET instance_uuid = ?2, provision_state = 'deploying', \
         target_provision_state = 'active', last_error = NULL, updated_at = ?3, \
         provision_updated_at = ?3 WHERE uuid = ?1",
        params![uuid, instance_uuid, ts(now)],
    )
    .map_err(Error::from_write)?;
    get_node(c, &uuid)
}

/// Counts of available nodes per resource class (for capacity reports).
pub fn available_by_class(c: &Connection) -> Result<Vec<(String, i64)>> {
    let mut st = c.prepare(
        "SELECT resource_class, count(*) FROM baremetal_nodes WHERE provision_state = 'available' \
         AND maintenance = 0 AND resource_class IS NOT NULL GROUP BY resource_class",
    )?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(uuid: &str, class: &str) -> Node {
        Node {
            uuid: uuid.into(),
            name: Some(format!("n-{uuid}")),
            driver: "ipmi".into(),
            driver_info: Map::new(),
            bmc_password: Some("pw".into()),
            resource_class: Some(class.into()),
            properties: Map::new(),
            extra: Map::new(),
            instance_info: Map::new(),
            power_state: None,
            target_power_state: None,
            provision_state: "available".into(),
            target_provision_state: None,
            maintenance: false,
            maintenance_reason: None,
            last_error: None,
            instance_uuid: None,
            boot_device: None,
            boot_persistent: false,
            created_at: Utc::now(),
            updated_at: None,
            provision_updated_at: None,
        }
    }

    #[test]
    fn nodes_round_trip_and_claims_take_each_node_once() {
        let store = crate::Store::open_in_memory().expect("store");
        store
            .write_blocking(|c| {
                insert_node(c, &node("a", "baremetal.gold"))?;
                insert_node(c, &node("b", "other"))?;
                Ok(())
            })
            .expect("insert");
        let got = store
            .read_blocking(|c| get_node(c, "n-a"))
            .expect("get")
            .expect("by name");
        assert_eq!(got.uuid, "a");
        assert_eq!(got.bmc_password.as_deref(), Some("pw"));
        let claimed = store
            .write_blocking(|c| claim_node(c, &|k| k == "baremetal.gold", "i1", Utc::now()))
            .expect("claim");
        assert_eq!(
            claimed.map(|n| (n.uuid, n.provision_state)),
            Some(("a".into(), "deploying".into()))
        );
        let again = store
            .write_blocking(|c| claim_node(c, &|k| k == "baremetal.gold", "i2", Utc::now()))
            .expect("claim");
        assert!(again.is_none());
        assert!(
            store
                .read_blocking(|c| node_by_instance(c, "i1"))
                .expect("q")
                .is_some()
        );
    }
}
