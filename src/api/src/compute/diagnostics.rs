//! `GET /servers/{id}/diagnostics` (admin): the backend's figures for one server, in the
//! standard shape from 2.48 and the free-form, libvirt-like keys before.

use axum::Json;
use axum::extract::State;
use model::compute::PowerState;
use serde_json::{Map, Value, json};

use crate::extract::{Caller, Path};
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

fn state(p: Option<PowerState>) -> &'static str {
    match p {
        Some(PowerState::Running) => "running",
        Some(PowerState::Paused) => "paused",
        Some(PowerState::Shutdown) => "shutdown",
        Some(PowerState::Crashed) => "crashed",
        Some(PowerState::Suspended) => "suspended",
        Some(PowerState::NoState) | None => "pending",
    }
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let r = s.compute.diagnostics(&c, &id).await?;
    let d = &r.diagnostics;
    if !ver.at_least(48) {
        // Before 2.48 each driver chose its keys; these are libvirt's.
        let mut o = Map::new();
        for (i, t) in d.cpu_time_ns.iter().enumerate() {
            o.insert(format!("cpu{i}_time"), json!(t));
        }
        o.insert("memory".into(), json!(d.memory_max_kb));
        for (i, disk) in d.disks.iter().enumerate() {
            let name = format!("vd{}", (b'a' + (i % 26) as u8) as char);
            o.insert(format!("{name}_read"), json!(disk.read_bytes));
            o.insert(format!("{name}_read_req"), json!(disk.read_requests));
            o.insert(format!("{name}_write"), json!(disk.write_bytes));
            o.insert(format!("{name}_write_req"), json!(disk.write_requests));
            o.insert(format!("{name}_errors"), json!(disk.errors_count));
        }
        for (i, nic) in d.nics.iter().enumerate() {
            let name = format!("vnet{i}");
            o.insert(format!("{name}_rx"), json!(nic.rx_octets));
            o.insert(format!("{name}_rx_drop"), json!(nic.rx_drop));
            o.insert(format!("{name}_rx_errors"), json!(nic.rx_errors));
            o.insert(format!("{name}_rx_packets"), json!(nic.rx_packets));
            o.insert(format!("{name}_tx"), json!(nic.tx_octets));
            o.insert(format!("{name}_tx_drop"), json!(nic.tx_drop));
            o.insert(format!("{name}_tx_errors"), json!(nic.tx_errors));
            o.insert(format!("{name}_tx_packets"), json!(nic.tx_packets));
        }
        return Ok(Json(Value::Object(o)));
    }
    let cpus: Vec<Value> = d
        .cpu_time_ns
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"id": i, "time": t, "utilisation": null}))
        .collect();
    let disks: Vec<Value> = d
        .disks
        .iter()
        .map(|x| {
            json!({
                "read_bytes": x.read_bytes,
                "read_requests": x.read_requests,
                "write_bytes": x.write_bytes,
                "write_requests": x.write_requests,
                "errors_count": x.errors_count,
            })
        })
        .collect();
    let nics: Vec<Value> = d
        .nics
        .iter()
        .map(|n| {
            json!({
                "mac_address": n.mac_address,
                "rx_octets": n.rx_octets,
                "rx_errors": n.rx_errors,
                "rx_drop": n.rx_drop,
                "rx_packets": n.rx_packets,
                "rx_rate": null,
                "tx_octets": n.tx_octets,
                "tx_errors": n.tx_errors,
                "tx_drop": n.tx_drop,
                "tx_packets": n.tx_packets,
                "tx_rate": null,
            })
        })
        .collect();
    Ok(Json(json!({
        "state": state(d.power_state),
        "driver": r.driver,
        "hypervisor": d.hypervisor,
        "hypervisor_os": d.hypervisor_os,
        "uptime": d.uptime_s,
        "config_drive": r.server.config_drive,
        "num_cpus": d.num_cpus,
        "num_disks": d.disks.len(),
        "num_nics": d.nics.len(),
        "memory_details": {"maximum": d.memory_max_kb / 1024, "used": d.memory_used_kb.map(|k| k / 1024)},
        "cpu_details": cpus,
        "disk_details": disks,
        "nic_details": nics,
    })))
}
