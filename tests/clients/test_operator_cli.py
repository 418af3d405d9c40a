"""The real `openstack` CLI on the operator's resources: server groups, availability zones,
hypervisors, compute services, usage and server events (fake driver)."""

import os
import subprocess
import tempfile
import time
import uuid

import pytest


@pytest.fixture(scope="module")
def image(onebox):
    """A small qcow2 image in the demo project."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "tiny.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", path, "64M"], check=True)
        name = f"img-{uuid.uuid4().hex[:6]}"
        img = onebox.osc_json("image", "create", "--file", path, "--disk-format", "qcow2",
                              "--container-format", "bare", name, cloud="onebox-demo")
        assert img["status"] == "active"
        yield img


def wait_status(onebox, server, want, cloud="onebox-demo", timeout=60):
    deadline = time.time() + timeout
    while True:
        s = onebox.osc_json("server", "show", server, cloud=cloud)
        if s["status"] == want or time.time() > deadline:
            return s
        time.sleep(0.5)


def create_server(onebox, image, name, *extra):
    return onebox.osc_json("server", "create", "--image", image["name"], "--flavor", "m1.tiny",
                           *extra, name, cloud="onebox-demo")


def test_server_group_with_a_member(onebox, image):
    gname = f"g-{uuid.uuid4().hex[:6]}"
    g = onebox.osc_json("server", "group", "create", "--policy", "anti-affinity", gname,
                        cloud="onebox-demo")
    assert g["name"] == gname and g["policy"] == "anti-affinity"
    first = create_server(onebox, image, gname + "-1", "--hint", f"group={g['id']}", "--wait")
    assert first["status"] == "ACTIVE"
    shown = onebox.osc_json("server", "group", "show", gname, cloud="onebox-demo")
    assert first["id"] in str(shown["members"])
    # One host: a second anti-affinity member finds no valid host.
    second = create_server(onebox, image, gname + "-2", "--hint", f"group={g['id']}")
    second = wait_status(onebox, second["id"], "ERROR")
    assert second["status"] == "ERROR"
    assert "No valid host" in str(second.get("fault"))
    listed = onebox.osc_json("server", "group", "list", cloud="onebox-demo")
    assert gname in {r["Name"] for r in listed}
    onebox.osc("server", "delete", "--wait", first["id"], second["id"], cloud="onebox-demo")
    shown = onebox.osc_json("server", "group", "show", gname, cloud="onebox-demo")
    assert first["id"] not in str(shown["members"])
    onebox.osc("server", "group", "delete", gname, cloud="onebox-demo")
    listed = onebox.osc_json("server", "group", "list", cloud="onebox-demo")
    assert gname not in {r["Name"] for r in listed}


def test_availability_zones_long(onebox):
    rows = onebox.osc_json("availability", "zone", "list", "--long")
    zones = {r["Zone Name"] for r in rows}
    assert {"nova", "internal"} <= zones
    services = {(r["Zone Name"], r["Service Name"]) for r in rows}
    assert ("nova", "nova-compute") in services
    assert ("internal", "nova-scheduler") in services


def test_hypervisor_list_and_show(onebox, image):
    s = create_server(onebox, image, f"h-{uuid.uuid4().hex[:6]}", "--wait")
    rows = onebox.osc_json("hypervisor", "list")
    assert len(rows) == 1
    row = rows[0]
    assert row["State"] == "up" and row["Hypervisor Type"] == "fake"
    shown = onebox.osc_json("hypervisor", "show", row["Hypervisor Hostname"])
    assert shown["hypervisor_hostname"] == row["Hypervisor Hostname"]
    assert shown["state"] == "up" and shown["status"] == "enabled"
    assert "load average" in str(shown.get("uptime")) or "load_average" in shown
    denied = onebox.osc("hypervisor", "list", cloud="onebox-demo", check=False)
    assert denied.returncode != 0 and "403" in denied.stderr
    onebox.osc("server", "delete", "--wait", s["id"], cloud="onebox-demo")


def test_compute_service_list_and_disable(onebox, image):
    rows = onebox.osc_json("compute", "service", "list")
    binaries = {r["Binary"] for r in rows}
    assert {"nova-compute", "nova-scheduler", "nova-conductor"} <= binaries
    compute = [r for r in rows if r["Binary"] == "nova-compute"][0]
    assert compute["Status"] == "enabled" and compute["State"] == "up"
    host = compute["Host"]
    onebox.osc("compute", "service", "set", "--disable", "--disable-reason", "maintenance",
               host, "nova-compute")
    try:
        rows = onebox.osc_json("compute", "service", "list", "--long")
        compute = [r for r in rows if r["Binary"] == "nova-compute"][0]
        assert compute["Status"] == "disabled"
        assert compute["Disabled Reason"] == "maintenance"
        # No new server is placed on a disabled compute service.
        s = create_server(onebox, image, f"d-{uuid.uuid4().hex[:6]}")
        s = wait_status(onebox, s["id"], "ERROR")
        assert s["status"] == "ERROR"
        onebox.osc("server", "delete", "--wait", s["id"], cloud="onebox-demo")
    finally:
        onebox.osc("compute", "service", "set", "--enable", host, "nova-compute")
    rows = onebox.osc_json("compute", "service", "list")
    assert [r for r in rows if r["Binary"] == "nova-compute"][0]["Status"] == "enabled"


def count(servers):
    """The CLI prints server usages as a count, or in JSON as the list itself."""
    return len(servers) if isinstance(servers, list) else int(servers)


def test_usage_list_and_show(onebox, image):
    s = create_server(onebox, image, f"u-{uuid.uuid4().hex[:6]}", "--wait")
    project = onebox.osc_json("project", "show", "demo")["id"]
    rows = onebox.osc_json("usage", "list")
    shown = onebox.osc_json("usage", "show", "--project", project)
    row = [r for r in rows if r["Project"] in (project, "demo")]
    assert row, rows
    # The SDK asks for `detailed=True`, which Nova (and onebox) read as not detailed: the
    # list carries totals only.
    assert float(row[0]["RAM MB-Hours"]) > 0 and float(row[0]["CPU Hours"]) > 0
    assert count(shown["Servers"]) >= 1
    assert s["id"] in str(shown["Servers"])
    onebox.osc("server", "delete", "--wait", s["id"], cloud="onebox-demo")


def test_server_event_list_and_show(onebox, image):
    s = create_server(onebox, image, f"e-{uuid.uuid4().hex[:6]}", "--wait")
    onebox.osc("server", "stop", s["id"], cloud="onebox-demo")
    wait_status(onebox, s["id"], "SHUTOFF")
    events = onebox.osc_json("server", "event", "list", s["id"], cloud="onebox-demo")
    assert [e["Action"] for e in events] == ["stop", "create"]
    req = events[0]["Request ID"]
    shown = onebox.osc_json("server", "event", "show", s["id"], req, cloud="onebox-demo")
    assert shown["action"] == "stop" and shown["request_id"] == req
    assert "compute_stop_instance" in str(shown["events"])
    # The admin sees the host of each event.
    shown = onebox.osc_json("server", "event", "show", s["id"], req)
    assert "host" in str(shown["events"])
    onebox.osc("server", "delete", "--wait", s["id"], cloud="onebox-demo")
