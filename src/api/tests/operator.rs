//! The operator's side of the Compute API on the fake driver: server groups and scheduling on
//! one host, hypervisors, services, usage, migrations and instance action paging.

mod common;

use common::Api;

use axum::http::{Method, StatusCode};
use common::{IMAGE, TestApp, assert_compute_fault};
use serde_json::{Value, json};

impl<'a> Api<'a> {
    async fn create(&self, name: &str, group: Option<&str>) -> common::Resp {
        let mut body = json!({"server": {"name": name, "imageRef": IMAGE, "flavorRef": "1", "networks": "auto"}});
        if let Some(g) = group {
            body["os:scheduler_hints"] = json!({"group": g});
        }
        self.call(Method::POST, "/servers", Some(body)).await
    }

    async fn server(&self, id: &str) -> Value {
        let r = self
            .call(Method::GET, &format!("/servers/{id}"), None)
            .await;
        r.body["server"].clone()
    }
}

fn api(app: &TestApp, token: String) -> Api<'_> {
    Api {
        app,
        token,
        version: "2.100".into(),
    }
}

async fn project_of(app: &TestApp, token: &str) -> String {
    app.identity
        .validate(token)
        .await
        .expect("validate")
        .expect("live")
        .project
        .expect("scoped")
        .0
        .id
        .to_string()
}

fn id_of(r: &common::Resp) -> String {
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    r.body["server"]["id"].as_str().expect("id").to_owned()
}

async fn group(a: &Api<'_>, policy: &str, rules: Value) -> String {
    let r = a
        .call(
            Method::POST,
            "/os-server-groups",
            Some(json!({"server_group": {"name": format!("g-{policy}"), "policy": policy, "rules": rules}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["server_group"]["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

#[tokio::test]
async fn anti_affinity_on_one_host_admits_one_server_and_soft_policies_admit_all() {
    let app = TestApp::new().await;
    let a = api(&app, app.demo().await);
    let project = project_of(&app, &a.token).await;
    let r = api(&app, app.admin().await)
        .call(
            Method::PUT,
            &format!("/os-quota-sets/{project}"),
            Some(json!({"quota_set": {"instances": 20, "cores": 20}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let anti = group(&a, "anti-affinity", json!({})).await;
    let first = id_of(&a.create("a1", Some(&anti)).await);
    app.compute.idle().await;
    assert_eq!(a.server(&first).await["status"], "ACTIVE");
    // The host already holds a member: the next one finds no valid host.
    let second = id_of(&a.create("a2", Some(&anti)).await);
    app.compute.idle().await;
    let s = a.server(&second).await;
    assert_eq!(s["status"], "ERROR", "{s}");
    assert_eq!(s["fault"]["code"], 500);
    assert!(
        s["fault"]["message"]
            .as_str()
            .expect("message")
            .starts_with("No valid host was found."),
        "{s}"
    );
    // The failed server never reached the backend.
    assert_eq!(
        driver::ComputeDriver::list_instances(app.driver.as_ref())
            .expect("list")
            .len(),
        1
    );
    // Both are members; the group shows them in the order they joined.
    let g = a
        .call(Method::GET, &format!("/os-server-groups/{anti}"), None)
        .await;
    assert_eq!(g.body["server_group"]["members"], json!([first, second]));
    // The instance action records the scheduling failure.
    let acts = a
        .call(
            Method::GET,
            &format!("/servers/{second}/os-instance-actions"),
            None,
        )
        .await;
    let rid = acts.body["instanceActions"][0]["request_id"]
        .as_str()
        .expect("rid")
        .to_owned();
    let act = a
        .call(
            Method::GET,
            &format!("/servers/{second}/os-instance-actions/{rid}"),
            None,
        )
        .await;
    assert_eq!(
        act.body["instanceAction"]["events"][0]["event"],
        "conductor_schedule_and_build_instances"
    );
    assert_eq!(act.body["instanceAction"]["events"][0]["result"], "Error");

    // Deleting the first member frees the host and removes it from the group.
    let r = a
        .call(Method::DELETE, &format!("/servers/{first}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.compute.idle().await;
    let g = a
        .call(Method::GET, &format!("/os-server-groups/{anti}"), None)
        .await;
    assert_eq!(g.body["server_group"]["members"], json!([second]));
    let third = id_of(&a.create("a3", Some(&anti)).await);
    app.compute.idle().await;
    assert_eq!(a.server(&third).await["status"], "ACTIVE");

    // max_server_per_host 2 admits two.
    let two = group(&a, "anti-affinity", json!({"max_server_per_host": 2})).await;
    let mut statuses = Vec::new();
    for n in 0..3 {
        let id = id_of(&a.create(&format!("b{n}"), Some(&two)).await);
        app.compute.idle().await;
        statuses.push(a.server(&id).await["status"].clone());
    }
    assert_eq!(statuses, vec!["ACTIVE", "ACTIVE", "ERROR"]);

    // Soft anti-affinity and affinity always fit.
    for policy in ["soft-anti-affinity", "affinity", "soft-affinity"] {
        let g = group(&a, policy, json!({})).await;
        for n in 0..2 {
            let id = id_of(&a.create(&format!("{policy}-{n}"), Some(&g)).await);
            app.compute.idle().await;
            assert_eq!(a.server(&id).await["status"], "ACTIVE", "{policy}");
        }
    }
}

#[tokio::test]
async fn server_group_requests_are_checked_and_quotas_hold() {
    let app = TestApp::new().await;
    let a = api(&app, app.demo().await);
    // 2.64 shape: rules only for anti-affinity.
    let r = a
        .call(
            Method::POST,
            "/os-server-groups",
            Some(json!({"server_group": {"name": "x", "policy": "affinity", "rules": {"max_server_per_host": 2}}})),
        )
        .await;
    assert_compute_fault(&r, 400, "badRequest");
    assert_eq!(
        r.body["badRequest"]["message"],
        "Only anti-affinity policy supports rules."
    );
    let r = a
        .call(
            Method::POST,
            "/os-server-groups",
            Some(json!({"server_group": {"name": "x", "policy": "cluster"}})),
        )
        .await;
    assert_compute_fault(&r, 400, "badRequest");
    // Before 2.64 the list form; `policy` is unknown there.
    let old = a.at("2.63");
    let r = old
        .call(
            Method::POST,
            "/os-server-groups",
            Some(json!({"server_group": {"name": "x", "policy": "affinity"}})),
        )
        .await;
    assert_compute_fault(&r, 400, "badRequest");
    let r = old
        .call(
            Method::POST,
            "/os-server-groups",
            Some(json!({"server_group": {"name": "x", "policies": ["anti-affinity"]}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let g = &r.body["server_group"];
    assert_eq!(g["policies"], json!(["anti-affinity"]));
    assert_eq!(g["metadata"], json!({}));
    assert!(g.get("policy").is_none());
    // Soft policies arrive in 2.15.
    let r = a
        .at("2.14")
        .call(
            Method::POST,
            "/os-server-groups",
            Some(json!({"server_group": {"name": "x", "policies": ["soft-affinity"]}})),
        )
        .await;
    assert_compute_fault(&r, 400, "badRequest");
    // project_id and user_id from 2.13.
    let gid = g["id"].as_str().expect("id").to_owned();
    let r = a
        .at("2.12")
        .call(Method::GET, &format!("/os-server-groups/{gid}"), None)
        .await;
    assert!(r.body["server_group"].get("project_id").is_none());
    let r = a
        .call(Method::GET, &format!("/os-server-groups/{gid}"), None)
        .await;
    assert_eq!(r.body["server_group"]["policy"], "anti-affinity");
    assert_eq!(r.body["server_group"]["rules"], json!({}));

    // Another project sees none of it.
    let (_, _, other) = app.user_with_role("other", "member").await;
    let o = api(&app, other);
    let r = o
        .call(Method::GET, &format!("/os-server-groups/{gid}"), None)
        .await;
    assert_compute_fault(&r, 404, "itemNotFound");
    let r = o.call(Method::GET, "/os-server-groups", None).await;
    assert_eq!(r.body["server_groups"], json!([]));
    // Nor can it put a server in the group.
    let r = o.create("intruder", Some(&gid)).await;
    assert_compute_fault(&r, 400, "badRequest");
    // The admin sees every project's groups with all_projects.
    let admin = api(&app, app.admin().await);
    let r = admin
        .call(Method::GET, "/os-server-groups?all_projects=True", None)
        .await;
    assert_eq!(r.body["server_groups"].as_array().expect("list").len(), 1);
    let r = admin.call(Method::GET, "/os-server-groups", None).await;
    assert_eq!(r.body["server_groups"], json!([]));

    // Quotas: server_groups and server_group_members.
    let demo_project = project_of(&app, &a.token).await;
    let r = admin
        .call(
            Method::PUT,
            &format!("/os-quota-sets/{demo_project}"),
            Some(json!({"quota_set": {"server_groups": 2, "server_group_members": 1}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let g2 = group(&a, "affinity", json!({})).await;
    let r = a
        .call(
            Method::POST,
            "/os-server-groups",
            Some(json!({"server_group": {"name": "third", "policy": "affinity"}})),
        )
        .await;
    assert_compute_fault(&r, 403, "forbidden");
    let limits = a.call(Method::GET, "/limits", None).await;
    assert_eq!(
        limits.body["limits"]["absolute"]["totalServerGroupsUsed"],
        2
    );
    id_of(&a.create("m1", Some(&g2)).await);
    let r = a.create("m2", Some(&g2)).await;
    assert_compute_fault(&r, 403, "forbidden");
    app.compute.idle().await;

    // Paging with limit and offset.
    let r = a
        .call(Method::GET, "/os-server-groups?limit=1&offset=1", None)
        .await;
    let list = r.body["server_groups"].as_array().expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], g2.as_str());

    // A reader may look but not delete; the member deletes.
    let r = a
        .call(Method::DELETE, &format!("/os-server-groups/{g2}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = a
        .call(Method::GET, &format!("/os-server-groups/{g2}"), None)
        .await;
    assert_compute_fault(&r, 404, "itemNotFound");
    // A group hint that is no UUID, and an unknown group, are refused.
    let r = a.create("bad", Some("not-a-uuid")).await;
    assert_compute_fault(&r, 400, "badRequest");
    assert_eq!(
        r.body["badRequest"]["message"],
        "Invalid input for field/attribute group. Value: not-a-uuid. 'not-a-uuid' is not valid under any of the given schemas"
    );
    let r = a
        .create("lost", Some("9a4b6a24-8f2a-4a4f-9d52-7f1e8a0c1b11"))
        .await;
    assert_compute_fault(&r, 400, "badRequest");
}

#[tokio::test]
async fn the_box_is_one_hypervisor_in_every_shape() {
    let app = TestApp::new().await;
    let demo = api(&app, app.demo().await);
    let id = id_of(&demo.create("web", None).await);
    app.compute.idle().await;
    let r = demo.call(Method::GET, "/os-hypervisors", None).await;
    assert_compute_fault(&r, 403, "forbidden");

    let a = api(&app, app.admin().await);
    let r = a
        .call(Method::GET, "/os-hypervisors?with_servers=true", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let h = &r.body["hypervisors"][0];
    assert_eq!(h["hypervisor_hostname"], "box");
    assert_eq!(h["state"], "up");
    assert_eq!(h["status"], "enabled");
    assert_eq!(h["servers"][0]["uuid"], id.as_str());
    let hid = h["id"].as_str().expect("uuid id").to_owned();

    // 2.88: no figures, uptime inline.
    let r = a
        .call(Method::GET, &format!("/os-hypervisors/{hid}"), None)
        .await;
    let h = &r.body["hypervisor"];
    assert!(h.get("vcpus").is_none(), "{h}");
    assert!(
        h["uptime"]
            .as_str()
            .expect("uptime")
            .contains("load average")
    );
    assert_eq!(h["service"]["host"], "box");
    // Figures before 2.88: the fake's capacity and the flavor of the one server.
    let r = a
        .at("2.87")
        .call(Method::GET, &format!("/os-hypervisors/{hid}"), None)
        .await;
    let h = &r.body["hypervisor"];
    assert_eq!(h["vcpus"], 64);
    assert_eq!(h["vcpus_used"], 1);
    assert_eq!(h["memory_mb_used"], 512);
    assert_eq!(h["local_gb_used"], 1);
    assert_eq!(h["running_vms"], 1);
    assert_eq!(h["free_ram_mb"], 256 * 1024 - 512);
    assert!(h["cpu_info"].is_object());
    let r = a
        .at("2.87")
        .call(Method::GET, "/os-hypervisors/statistics", None)
        .await;
    assert_eq!(r.body["hypervisor_statistics"]["count"], 1);
    assert_eq!(r.body["hypervisor_statistics"]["running_vms"], 1);
    let r = a
        .call(Method::GET, "/os-hypervisors/statistics", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = a
        .call(Method::GET, &format!("/os-hypervisors/{hid}/uptime"), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a
        .at("2.53")
        .call(Method::GET, &format!("/os-hypervisors/{hid}/uptime"), None)
        .await;
    assert!(r.body["hypervisor"]["uptime"].is_string(), "{}", r.text);
    // Ids are UUIDs from 2.53, the integer 1 before.
    let r = a.call(Method::GET, "/os-hypervisors/1", None).await;
    assert_compute_fault(&r, 400, "badRequest");
    let r = a
        .call(
            Method::GET,
            "/os-hypervisors/0b1e4b1e-0000-4000-8000-000000000000",
            None,
        )
        .await;
    assert_compute_fault(&r, 404, "itemNotFound");
    let old = a.at("2.27");
    let r = old.call(Method::GET, "/os-hypervisors/detail", None).await;
    let h = &r.body["hypervisors"][0];
    assert_eq!(h["id"], 1);
    assert!(h["cpu_info"].is_string());
    let r = old
        .call(Method::GET, "/os-hypervisors/box/search", None)
        .await;
    assert_eq!(r.body["hypervisors"][0]["id"], 1);
    let r = old
        .call(Method::GET, "/os-hypervisors/nope/search", None)
        .await;
    assert_compute_fault(&r, 404, "itemNotFound");
    let r = old
        .call(Method::GET, "/os-hypervisors/bo/servers", None)
        .await;
    assert_eq!(r.body["hypervisors"][0]["servers"][0]["uuid"], id.as_str());
    let r = a
        .call(Method::GET, "/os-hypervisors/box/search", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Paging: a limit of one links to the next page, which is empty.
    let r = a.call(Method::GET, "/os-hypervisors?limit=1", None).await;
    assert!(
        r.body["hypervisors_links"][0]["href"]
            .as_str()
            .expect("next")
            .contains(&format!("marker={hid}"))
    );
    let r = a
        .call(Method::GET, &format!("/os-hypervisors?marker={hid}"), None)
        .await;
    assert_eq!(r.body["hypervisors"], json!([]));
    let r = a
        .call(
            Method::GET,
            "/os-hypervisors?hypervisor_hostname_pattern=zzz",
            None,
        )
        .await;
    assert_compute_fault(&r, 404, "itemNotFound");
}

#[tokio::test]
async fn a_disabled_compute_service_takes_no_new_servers() {
    let app = TestApp::new().await;
    let demo = api(&app, app.demo().await);
    let a = api(&app, app.admin().await);
    let r = demo.call(Method::GET, "/os-services", None).await;
    assert_compute_fault(&r, 403, "forbidden");
    let r = a.call(Method::GET, "/os-services", None).await;
    let services = r.body["services"].as_array().expect("services").clone();
    let binaries: Vec<&str> = services
        .iter()
        .map(|s| s["binary"].as_str().expect("binary"))
        .collect();
    assert_eq!(
        binaries,
        ["nova-scheduler", "nova-conductor", "nova-compute"]
    );
    let compute = services[2].clone();
    assert_eq!(compute["zone"], "nova");
    assert_eq!(compute["host"], "box");
    assert_eq!(compute["forced_down"], false);
    let cid = compute["id"].as_str().expect("uuid").to_owned();
    // The scheduler cannot be disabled through the 2.53 API.
    let sid = services[0]["id"].as_str().expect("uuid");
    let r = a
        .call(
            Method::PUT,
            &format!("/os-services/{sid}"),
            Some(json!({"status": "disabled"})),
        )
        .await;
    assert_compute_fault(&r, 400, "badRequest");
    let r = a
        .call(
            Method::PUT,
            &format!("/os-services/{cid}"),
            Some(json!({"status": "enabled", "disabled_reason": "x"})),
        )
        .await;
    assert_compute_fault(&r, 400, "badRequest");
    let r = a
        .call(
            Method::PUT,
            &format!("/os-services/{cid}"),
            Some(json!({"status": "disabled", "disabled_reason": "maintenance"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["service"]["status"], "disabled");
    assert_eq!(r.body["service"]["disabled_reason"], "maintenance");
    // The hypervisor says so too.
    let r = a.call(Method::GET, "/os-hypervisors/detail", None).await;
    assert_eq!(r.body["hypervisors"][0]["status"], "disabled");
    assert_eq!(
        r.body["hypervisors"][0]["service"]["disabled_reason"],
        "maintenance"
    );
    // A new server finds no valid host.
    let id = id_of(&demo.create("late", None).await);
    app.compute.idle().await;
    let s = demo.server(&id).await;
    assert_eq!(s["status"], "ERROR");
    assert_eq!(s["fault"]["message"], "No valid host was found. ");
    // It holds nothing on the hypervisor.
    let r = a
        .at("2.87")
        .call(Method::GET, "/os-hypervisors/detail", None)
        .await;
    assert_eq!(r.body["hypervisors"][0]["running_vms"], 0, "{}", r.text);
    assert_eq!(r.body["hypervisors"][0]["vcpus_used"], 0);
    // The backend never held it: it has no diagnostics.
    let r = a
        .call(Method::GET, &format!("/servers/{id}/diagnostics"), None)
        .await;
    assert_compute_fault(&r, 409, "conflictingRequest");
    // Enabled again (the old action-style API), servers build.
    let old = a.at("2.52");
    let r = old
        .call(
            Method::PUT,
            "/os-services/enable",
            Some(json!({"host": "box", "binary": "nova-compute"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"service": {"host": "box", "binary": "nova-compute", "status": "enabled"}})
    );
    let r = old
        .call(Method::GET, "/os-services?binary=nova-compute", None)
        .await;
    assert_eq!(r.body["services"][0]["id"], 3);
    assert_eq!(r.body["services"][0]["disabled_reason"], Value::Null);
    let id = id_of(&demo.create("again", None).await);
    app.compute.idle().await;
    assert_eq!(demo.server(&id).await["status"], "ACTIVE");
    // disable-log-reason and force-down; an unknown host is 404.
    let r = old
        .call(
            Method::PUT,
            "/os-services/disable-log-reason",
            Some(json!({"host": "box", "binary": "nova-compute", "disabled_reason": "disk"})),
        )
        .await;
    assert_eq!(r.body["service"]["disabled_reason"], "disk");
    let r = old
        .call(
            Method::PUT,
            "/os-services/force-down",
            Some(json!({"host": "box", "binary": "nova-compute", "forced_down": true})),
        )
        .await;
    assert_eq!(r.body["service"]["forced_down"], true);
    let r = a.call(Method::GET, "/os-services", None).await;
    assert_eq!(r.body["services"][2]["state"], "down");
    let r = old
        .call(
            Method::PUT,
            "/os-services/disable",
            Some(json!({"host": "elsewhere", "binary": "nova-compute"})),
        )
        .await;
    assert_compute_fault(&r, 404, "itemNotFound");
    assert_eq!(
        r.body["itemNotFound"]["message"],
        "Host 'elsewhere' is not mapped to any cell"
    );
    let r = a
        .call(
            Method::PUT,
            "/os-services/disable",
            Some(json!({"host": "box", "binary": "nova-compute"})),
        )
        .await;
    assert_compute_fault(&r, 400, "badRequest");
}

#[tokio::test]
async fn usage_counts_hours_of_live_and_deleted_servers() {
    let app = TestApp::new().await;
    let demo = api(&app, app.demo().await);
    let a = api(&app, app.admin().await);
    let id1 = id_of(&demo.create("u1", None).await);
    let id2 = id_of(&demo.create("u2", None).await);
    app.compute.idle().await;
    demo.call(Method::DELETE, &format!("/servers/{id2}"), None)
        .await;
    app.compute.idle().await;
    let now = chrono::Utc::now();
    let start = (now - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%S");
    let end = (now + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%S");
    let q = format!("start={start}&end={end}");
    let r = demo
        .call(Method::GET, &format!("/os-simple-tenant-usage?{q}"), None)
        .await;
    assert_compute_fault(&r, 403, "forbidden");
    let r = a
        .call(
            Method::GET,
            &format!("/os-simple-tenant-usage?{q}&detailed=1"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let usages = r.body["tenant_usages"].as_array().expect("usages");
    assert_eq!(usages.len(), 1, "{}", r.text);
    let u = &usages[0];
    let servers = u["server_usages"].as_array().expect("servers");
    assert_eq!(servers.len(), 2);
    let deleted = servers
        .iter()
        .find(|s| s["instance_id"] == id2.as_str())
        .expect("deleted server");
    assert_eq!(deleted["state"], "terminated");
    assert!(deleted["ended_at"].is_string());
    let live = servers
        .iter()
        .find(|s| s["instance_id"] == id1.as_str())
        .expect("live");
    assert_eq!(live["state"], "active");
    assert_eq!(live["ended_at"], Value::Null);
    // The live server runs until the end of the period: about an hour.
    let hours = live["hours"].as_f64().expect("hours");
    assert!((0.9..=1.1).contains(&hours), "{hours}");
    let total = u["total_memory_mb_usage"].as_f64().expect("mb");
    assert!(total >= 512.0 * hours, "{total}");
    // Project members read their own project's usage.
    let project = live["tenant_id"].as_str().expect("tenant").to_owned();
    let r = demo
        .call(
            Method::GET,
            &format!("/os-simple-tenant-usage/{project}?{q}"),
            None,
        )
        .await;
    assert_eq!(
        r.body["tenant_usage"]["server_usages"]
            .as_array()
            .expect("servers")
            .len(),
        2
    );
    // Paging (2.40): one server per page, a next link.
    let r = a
        .call(
            Method::GET,
            &format!("/os-simple-tenant-usage?{q}&limit=1"),
            None,
        )
        .await;
    assert!(
        r.body["tenant_usages_links"][0]["href"].is_string(),
        "{}",
        r.text
    );
    // A period before anything ran is empty; a reversed one is refused.
    let r = a
        .call(
            Method::GET,
            "/os-simple-tenant-usage?start=2000-01-01T00:00:00&end=2000-01-02T00:00:00",
            None,
        )
        .await;
    assert_eq!(r.body["tenant_usages"], json!([]));
    let r = a
        .call(
            Method::GET,
            "/os-simple-tenant-usage?start=2000-01-02T00:00:00&end=2000-01-01T00:00:00",
            None,
        )
        .await;
    assert_compute_fault(&r, 400, "badRequest");
    let r = a
        .call(Method::GET, "/os-simple-tenant-usage?start=yesterday", None)
        .await;
    assert_eq!(
        r.body["badRequest"]["message"],
        "Invalid datetime string: Datetime is in invalid format"
    );
}

#[tokio::test]
async fn migrations_are_an_empty_list_with_checked_parameters() {
    let app = TestApp::new().await;
    let a = api(&app, app.admin().await);
    let r = a.call(Method::GET, "/os-migrations", None).await;
    assert_eq!(r.body, json!({"migrations": []}));
    let r = a.call(Method::GET, "/os-migrations?foo=1", None).await;
    assert_compute_fault(&r, 400, "badRequest");
    let r = a
        .at("2.58")
        .call(Method::GET, "/os-migrations?foo=1", None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = a
        .call(Method::GET, "/os-migrations?changes-since=yesterday", None)
        .await;
    assert_compute_fault(&r, 400, "badRequest");
    let demo = api(&app, app.demo().await);
    let r = demo.call(Method::GET, "/os-migrations", None).await;
    assert_compute_fault(&r, 403, "forbidden");
    let id = id_of(&demo.create("m", None).await);
    app.compute.idle().await;
    let r = a
        .call(Method::GET, &format!("/servers/{id}/migrations"), None)
        .await;
    assert_eq!(r.body, json!({"migrations": []}));
    let r = a
        .call(Method::GET, &format!("/servers/{id}/migrations/1"), None)
        .await;
    assert_compute_fault(&r, 404, "itemNotFound");
}

#[tokio::test]
async fn instance_actions_page_and_filter_by_time() {
    let app = TestApp::new().await;
    let a = api(&app, app.demo().await);
    let id = id_of(&a.create("acts", None).await);
    app.compute.idle().await;
    for action in ["os-stop", "os-start"] {
        let r = a
            .call(
                Method::POST,
                &format!("/servers/{id}/action"),
                Some(json!({ action: null })),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        app.compute.idle().await;
    }
    let path = format!("/servers/{id}/os-instance-actions");
    let r = a.call(Method::GET, &path, None).await;
    let names: Vec<&str> = r.body["instanceActions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|x| x["action"].as_str().expect("action"))
        .collect();
    assert_eq!(names, ["start", "stop", "create"]);
    let r = a.call(Method::GET, &format!("{path}?limit=2"), None).await;
    let acts = r.body["instanceActions"].as_array().expect("actions");
    assert_eq!(acts.len(), 2);
    let marker = acts[1]["request_id"].as_str().expect("rid").to_owned();
    assert!(
        r.body["links"][0]["href"]
            .as_str()
            .expect("next")
            .contains(&marker)
    );
    let r = a
        .call(Method::GET, &format!("{path}?marker={marker}"), None)
        .await;
    assert_eq!(r.body["instanceActions"][0]["action"], "create");
    let r = a
        .call(Method::GET, &format!("{path}?marker=req-nope"), None)
        .await;
    assert_compute_fault(&r, 400, "badRequest");
    let future = "2999-01-01T00:00:00Z";
    let r = a
        .call(Method::GET, &format!("{path}?changes-since={future}"), None)
        .await;
    assert_eq!(r.body["instanceActions"], json!([]));
    let r = a
        .call(
            Method::GET,
            &format!("{path}?changes-before={future}"),
            None,
        )
        .await;
    assert_eq!(r.body["instanceActions"].as_array().expect("a").len(), 3);
    let r = a
        .call(
            Method::GET,
            &format!("{path}?changes-since={future}&changes-before=2000-01-01T00:00:00Z"),
            None,
        )
        .await;
    assert_compute_fault(&r, 400, "badRequest");
    // changes-before arrives in 2.66, paging in 2.58.
    let r = a
        .at("2.65")
        .call(
            Method::GET,
            &format!("{path}?changes-before={future}"),
            None,
        )
        .await;
    assert_compute_fault(&r, 400, "badRequest");
    let r = a
        .at("2.57")
        .call(Method::GET, &format!("{path}?limit=1"), None)
        .await;
    assert_eq!(r.body["instanceActions"].as_array().expect("a").len(), 3);
    // Events: no traceback or host for a member; hostId from 2.62.
    let rid = marker;
    let r = a.call(Method::GET, &format!("{path}/{rid}"), None).await;
    let ev = &r.body["instanceAction"]["events"][0];
    assert!(
        ev.get("traceback").is_none() && ev.get("host").is_none(),
        "{ev}"
    );
    assert!(ev["hostId"].is_string());
    assert!(ev.get("details").is_none());
    let admin = api(&app, app.admin().await);
    let r = admin
        .call(Method::GET, &format!("{path}/{rid}"), None)
        .await;
    let ev = &r.body["instanceAction"]["events"][0];
    assert_eq!(ev["host"], "box");
    assert!(ev.as_object().expect("event").contains_key("traceback"));
    assert!(ev.as_object().expect("event").contains_key("details"));
    // Before 2.51 a member sees no events at all.
    let r = a
        .at("2.50")
        .call(Method::GET, &format!("{path}/{rid}"), None)
        .await;
    assert!(r.body["instanceAction"].get("events").is_none());
}

#[tokio::test]
async fn a_server_names_its_group_from_2_71() {
    let app = TestApp::new().await;
    let a = api(&app, app.demo().await);
    let g = group(&a, "affinity", json!({})).await;
    let id = id_of(&a.create("member", Some(&g)).await);
    app.compute.idle().await;
    assert_eq!(a.server(&id).await["server_groups"], json!([g]));
    assert!(
        a.at("2.70")
            .server(&id)
            .await
            .get("server_groups")
            .is_none()
    );
}

/// An active raw image in the image service, owned by the token's project.
async fn glance_image(app: &TestApp, token: &str, name: &str) -> String {
    let r = app
        .call(
            Method::POST,
            "/image/v2/images",
            &[("x-auth-token", token)],
            Some(
                json!({"name": name, "disk_format": "raw", "container_format": "bare",
                        "min_ram": 64, "auto_disk_config": "True"}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().expect("id").to_owned();
    let r = app
        .call_raw(
            Method::PUT,
            &format!("/image/v2/images/{id}/file"),
            &[
                ("x-auth-token", token),
                ("content-type", "application/octet-stream"),
            ],
            Some(vec![0u8; 4096]),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    id
}

#[tokio::test]
async fn the_images_proxy_answers_through_the_image_service_until_2_35() {
    let app = TestApp::new().await;
    let a = api(&app, app.demo().await).at("2.35");
    let id = glance_image(&app, &a.token, "cirros").await;
    let queued = app
        .call(
            Method::POST,
            "/image/v2/images",
            &[("x-auth-token", &a.token)],
            Some(json!({"name": "empty"})),
        )
        .await;
    let queued = queued.body["id"].as_str().expect("id").to_owned();

    let r = a.call(Method::GET, "/images", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["images"].as_array().expect("images").len(), 2);
    let r = a.call(Method::GET, &format!("/images/{id}"), None).await;
    let i = &r.body["image"];
    assert_eq!(i["status"], "ACTIVE");
    assert_eq!(i["progress"], 100);
    assert_eq!(i["minRam"], 64);
    assert_eq!(i["OS-EXT-IMG-SIZE:size"], 4096);
    assert_eq!(i["OS-DCF:diskConfig"], "AUTO");
    assert_eq!(i["metadata"]["auto_disk_config"], "True");
    assert_eq!(i["links"][2]["rel"], "alternate");
    let r = a
        .call(Method::GET, &format!("/images/{queued}"), None)
        .await;
    assert_eq!(r.body["image"]["status"], "SAVING");
    let r = a
        .call(Method::GET, "/images/detail?status=ACTIVE", None)
        .await;
    let list = r.body["images"].as_array().expect("images");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    let r = a.call(Method::GET, "/images?limit=1", None).await;
    assert!(r.body["images_links"][0]["href"].is_string(), "{}", r.text);

    // Nova's other proxy filters: a server's snapshots (by id or URL), the image type and
    // changes-since go to the image service, before the page is cut.
    let server = "5bbcc3c4-1da2-4437-a48a-66f15b1b13f9";
    let snap = app
        .call(
            Method::POST,
            "/image/v2/images",
            &[("x-auth-token", &a.token)],
            Some(json!({"name": "snap", "instance_uuid": server, "image_type": "snapshot"})),
        )
        .await;
    let snap = snap.body["id"].as_str().expect("id").to_owned();
    let ids = |r: &common::Resp| -> Vec<String> {
        r.body["images"]
            .as_array()
            .expect("images")
            .iter()
            .map(|i| i["id"].as_str().expect("id").to_owned())
            .collect()
    };
    for q in [
        format!("/images?server={server}"),
        format!("/images/detail?server=http://box/compute/v2.1/servers/{server}"),
        "/images?type=snapshot".to_owned(),
        "/images?type=snapshot&limit=1".to_owned(),
    ] {
        let r = a.call(Method::GET, &q, None).await;
        assert_eq!(ids(&r), vec![snap.clone()], "{q}: {}", r.text);
    }
    let r = a.call(Method::GET, "/images?type=backup", None).await;
    assert!(ids(&r).is_empty());
    let r = a
        .call(
            Method::GET,
            "/images?changes-since=2000-01-01T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(ids(&r).len(), 3, "{}", r.text);
    let r = a
        .call(
            Method::GET,
            "/images?changes-since=2999-01-01T00:00:00Z",
            None,
        )
        .await;
    assert!(ids(&r).is_empty(), "{}", r.text);
    let r = a
        .call(Method::GET, "/images?changes-since=yesterday", None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // A status filter and a limit: the page holds what matches, not what was read first.
    let r = a
        .call(Method::GET, "/images?status=ACTIVE&limit=1", None)
        .await;
    assert_eq!(ids(&r), vec![id.clone()], "{}", r.text);
    let r = a
        .call(Method::DELETE, &format!("/images/{snap}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

    // Metadata (up to 2.38): merge, replace, one key, delete.
    let m = format!("/images/{id}/metadata");
    let r = a
        .call(
            Method::POST,
            &m,
            Some(json!({"metadata": {"os_distro": "cirros"}})),
        )
        .await;
    assert_eq!(r.body["metadata"]["os_distro"], "cirros", "{}", r.text);
    assert_eq!(r.body["metadata"]["auto_disk_config"], "True");
    let r = a
        .call(Method::PUT, &m, Some(json!({"metadata": {"a": "1"}})))
        .await;
    assert_eq!(r.body["metadata"], json!({"a": "1"}), "{}", r.text);
    let r = a
        .call(
            Method::PUT,
            &format!("{m}/b"),
            Some(json!({"meta": {"b": "2"}})),
        )
        .await;
    assert_eq!(r.body, json!({"meta": {"b": "2"}}));
    let r = a
        .call(
            Method::PUT,
            &format!("{m}/b"),
            Some(json!({"meta": {"c": "2"}})),
        )
        .await;
    assert_compute_fault(&r, 400, "badRequest");
    let r = a.call(Method::GET, &format!("{m}/b"), None).await;
    assert_eq!(r.body, json!({"meta": {"b": "2"}}));
    let r = a.call(Method::DELETE, &format!("{m}/b"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = a.call(Method::GET, &format!("{m}/b"), None).await;
    assert_compute_fault(&r, 404, "itemNotFound");
    let r = a.at("2.38").call(Method::GET, &m, None).await;
    assert_eq!(r.body["metadata"], json!({"a": "1"}));
    let r = a.at("2.39").call(Method::GET, &m, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Another project's private image is not found; 2.36 has no proxy at all.
    let (_, _, other) = app.user_with_role("other", "member").await;
    let o = api(&app, other).at("2.35");
    let r = o.call(Method::GET, &format!("/images/{id}"), None).await;
    assert_compute_fault(&r, 404, "itemNotFound");
    let r = o.call(Method::DELETE, &format!("/images/{id}"), None).await;
    assert_compute_fault(&r, 404, "itemNotFound");
    let r = a.at("2.36").call(Method::GET, "/images", None).await;
    assert_compute_fault(&r, 404, "itemNotFound");
    // Delete through the proxy removes it from the image service.
    let r = a.call(Method::DELETE, &format!("/images/{id}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = app
        .get(&format!("/image/v2/images/{id}"), Some(&a.token))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn diagnostics_come_from_the_backend_in_both_shapes() {
    let app = TestApp::new().await;
    let demo = api(&app, app.demo().await);
    let a = api(&app, app.admin().await);
    let id = id_of(&demo.create("diag", None).await);
    app.compute.idle().await;
    let path = format!("/servers/{id}/diagnostics");
    let r = demo.call(Method::GET, &path, None).await;
    assert_compute_fault(&r, 403, "forbidden");
    let r = a.call(Method::GET, &path, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let d = &r.body;
    assert_eq!(d["state"], "running");
    assert_eq!(d["driver"], "fake");
    assert_eq!(d["num_cpus"], 1);
    assert_eq!(d["memory_details"]["maximum"], 512);
    assert_eq!(d["num_nics"], 1);
    assert_eq!(d["nic_details"].as_array().expect("nics").len(), 1);
    assert!(d["nic_details"][0]["mac_address"].is_string());
    let r = a.at("2.47").call(Method::GET, &path, None).await;
    assert_eq!(r.body["memory"], 512 * 1024, "{}", r.text);
    assert!(r.body.get("cpu0_time").is_some());
    assert!(r.body.get("vnet0_rx").is_some());
    // Stopped servers still answer; an unknown server is 404.
    let r = a
        .call(
            Method::POST,
            &format!("/servers/{id}/action"),
            Some(json!({"os-stop": null})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    app.compute.idle().await;
    let r = a.call(Method::GET, &path, None).await;
    assert_eq!(r.body["state"], "shutdown", "{}", r.text);
    let r = a
        .call(
            Method::GET,
            "/servers/9a4b6a24-8f2a-4a4f-9d52-7f1e8a0c1b11/diagnostics",
            None,
        )
        .await;
    assert_compute_fault(&r, 404, "itemNotFound");
}

#[tokio::test]
async fn availability_zones_follow_the_compute_service() {
    let app = TestApp::new().await;
    let demo = api(&app, app.demo().await);
    let a = api(&app, app.admin().await);
    let r = demo.call(Method::GET, "/os-availability-zone", None).await;
    assert_eq!(
        r.body["availabilityZoneInfo"][0]["zoneState"]["available"],
        true
    );
    let r = a
        .call(Method::GET, "/os-availability-zone/detail", None)
        .await;
    let zones = r.body["availabilityZoneInfo"].as_array().expect("zones");
    assert_eq!(zones[0]["hosts"]["box"]["nova-scheduler"]["active"], true);
    assert_eq!(zones[1]["hosts"]["box"]["nova-compute"]["active"], true);
    let r = a
        .call(Method::GET, "/os-services?binary=nova-compute", None)
        .await;
    let cid = r.body["services"][0]["id"].as_str().expect("id").to_owned();
    let r = a
        .call(
            Method::PUT,
            &format!("/os-services/{cid}"),
            Some(json!({"status": "disabled"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = demo.call(Method::GET, "/os-availability-zone", None).await;
    assert_eq!(
        r.body["availabilityZoneInfo"][0]["zoneState"]["available"],
        false
    );
    let r = a
        .call(Method::GET, "/os-availability-zone/detail", None)
        .await;
    let zones = r.body["availabilityZoneInfo"].as_array().expect("zones");
    assert_eq!(zones[1]["zoneState"]["available"], false);
    assert_eq!(zones[1]["hosts"]["box"]["nova-compute"]["active"], false);
}
