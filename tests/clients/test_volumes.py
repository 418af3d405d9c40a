"""The real `openstack` CLI against onebox's Block Storage API (Cinder v3, catalog types
`block-storage` and `volumev3`): volumes created empty, from an image and from a snapshot,
listed, shown, changed and deleted as a project member does it; snapshots; and the quota,
limits and availability-zone commands that call Cinder once the catalog names it. What a
member of another project must not do: src/api/tests/volume.rs (`attack_*`)."""

import time
import uuid

from conftest import public_image

DEMO = "onebox-demo"


def osc(box, *args, **kw):
    return box.osc(*args, cloud=DEMO, **kw)


def osc_json(box, *args):
    return box.osc_json(*args, cloud=DEMO)


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def wait_volume(box, ref, want="available", timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        p = osc(box, "volume", "show", ref, "-f", "json", check=False)
        if p.returncode != 0:
            if want is None:
                return None
            raise AssertionError(p.stderr)
        import json
        v = json.loads(p.stdout)
        if v["status"] == want:
            return v
        if v["status"] in ("error", "error_deleting", "error_extending"):
            raise AssertionError(f"volume {ref} is {v['status']}")
        time.sleep(0.3)
    raise AssertionError(f"volume {ref} never became {want}")


def wait_snapshot(box, ref, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = osc_json(box, "volume", "snapshot", "show", ref)
        if s["status"] == "available":
            return s
        assert s["status"] == "creating", s
        time.sleep(0.3)
    raise AssertionError(f"snapshot {ref} never became available")


def test_volume_create_list_show_set_delete(onebox):
    name = uniq("vol")
    v = osc_json(onebox, "volume", "create", "--size", "1", "--description", "first",
                 "--property", "tier=gold", name)
    assert v["size"] == 1 and v["name"] == name
    v = wait_volume(onebox, name)
    assert v["bootable"] in (False, "false") and v["type"] == "__DEFAULT__"
    assert v["properties"] == {"tier": "gold"}
    listed = osc_json(onebox, "volume", "list")
    assert name in {r["Name"] for r in listed}
    osc(onebox, "volume", "set", "--name", name + "-x", "--property", "b=2", "--size", "2",
        "--bootable", name)
    v = wait_volume(onebox, name + "-x")
    assert v["size"] == 2 and v["bootable"] in (True, "true")
    assert v["properties"] == {"tier": "gold", "b": "2"}
    # Members do not see the host attributes; the admin does, and lists every project's.
    assert not v.get("os-vol-host-attr:host") and not v.get("host")
    shown = onebox.osc_json("volume", "show", v["id"])
    assert "onebox@file#file" in (shown.get("os-vol-host-attr:host"), shown.get("host"))
    everyone = onebox.osc_json("volume", "list", "--all-projects")
    assert v["id"] in {r["ID"] for r in everyone}
    osc(onebox, "volume", "delete", v["id"])
    wait_volume(onebox, v["id"], want=None)
    assert v["id"] not in {r["ID"] for r in osc_json(onebox, "volume", "list")}


def test_volume_from_an_image_and_from_a_snapshot(onebox):
    img = public_image(onebox)
    name = uniq("fromimg")
    osc(onebox, "volume", "create", "--size", "1", "--image", img["id"], name)
    v = wait_volume(onebox, name)
    assert v["bootable"] in (True, "true")
    assert v["volume_image_metadata"]["image_id"] == img["id"]
    snap = uniq("snap")
    osc(onebox, "volume", "snapshot", "create", "--volume", name, snap)
    s = wait_snapshot(onebox, snap)
    assert s["size"] == 1
    restored = uniq("restored")
    osc(onebox, "volume", "create", "--snapshot", snap, restored)
    r = wait_volume(onebox, restored)
    assert r["snapshot_id"] == s["id"] and r["size"] == 1
    # A volume with a snapshot is not deleted.
    refused = osc(onebox, "volume", "delete", name, check=False)
    assert refused.returncode != 0 and "snapshot" in refused.stderr.lower()
    osc(onebox, "volume", "snapshot", "delete", snap)
    deadline = time.time() + 30
    while time.time() < deadline:
        if snap not in {r["Name"] for r in osc_json(onebox, "volume", "snapshot", "list")}:
            break
        time.sleep(0.3)
    else:
        raise AssertionError("the snapshot stayed")
    osc(onebox, "volume", "delete", name, restored)
    wait_volume(onebox, name, want=None)
    wait_volume(onebox, restored, want=None)
    onebox.osc("image", "delete", img["id"])


def test_quota_limits_and_zones_call_cinder(onebox):
    q = {r["Resource"]: r["Limit"] for r in onebox.osc_json("quota", "show", "demo")}
    assert q["volumes"] == 10 and q["gigabytes"] == 1000 and q["snapshots"] == 10
    assert q["instances"] >= 1 and "networks" in q
    onebox.osc("quota", "set", "--volumes", "12", "demo")
    try:
        q = {r["Resource"]: r["Limit"] for r in onebox.osc_json("quota", "show", "demo")}
        assert q["volumes"] == 12
        denied = osc(onebox, "quota", "set", "--volumes", "99", "demo", check=False)
        assert denied.returncode != 0 and "403" in denied.stderr
    finally:
        onebox.osc("quota", "set", "--volumes", "10", "demo")
    limits = {r["Name"]: r["Value"] for r in osc_json(onebox, "limits", "show", "--absolute")}
    assert limits["max_total_volumes"] == 10 and limits["max_total_volume_gigabytes"] == 1000
    assert "total_gigabytes_used" in limits and "max_total_instances" in limits
    zones = osc_json(onebox, "availability", "zone", "list", "--volume")
    assert [z["Zone Name"] for z in zones] == ["nova"]
    types = osc_json(onebox, "volume", "type", "list")
    assert [t["Name"] for t in types] == ["__DEFAULT__"]


def test_server_add_and_remove_volume(onebox):
    img = public_image(onebox)
    name = uniq("srv")
    s = onebox.osc_json("server", "create", "--image", img["id"], "--flavor", "m1.tiny",
                        "--wait", name, cloud=DEMO)
    assert s["status"] == "ACTIVE"
    vol = uniq("data")
    osc(onebox, "volume", "create", "--size", "1", vol)
    v = wait_volume(onebox, vol)
    osc(onebox, "server", "add", "volume", name, vol)
    v = wait_volume(onebox, vol, want="in-use")
    assert v["attachments"][0]["server_id"] == s["id"]
    shown = osc_json(onebox, "server", "show", s["id"])
    assert v["id"] in str(shown["volumes_attached"])
    refused = osc(onebox, "volume", "delete", vol, check=False)
    assert refused.returncode != 0
    osc(onebox, "server", "remove", "volume", name, vol)
    v = wait_volume(onebox, vol)
    assert v["attachments"] == []
    # A deleted server lets go of its volumes.
    osc(onebox, "server", "add", "volume", name, vol)
    wait_volume(onebox, vol, want="in-use")
    osc(onebox, "server", "delete", "--wait", name)
    wait_volume(onebox, vol)
    osc(onebox, "volume", "delete", vol)
    wait_volume(onebox, vol, want=None)
    onebox.osc("image", "delete", img["id"])


def test_boot_from_volume_and_a_volume_made_into_an_image(onebox):
    img = public_image(onebox)
    name = uniq("bfv")
    s = onebox.osc_json("server", "create", "--image", img["id"], "--flavor", "m1.tiny",
                        "--boot-from-volume", "1", "--wait", name, cloud=DEMO)
    assert s["status"] == "ACTIVE"
    shown = osc_json(onebox, "server", "show", s["id"])
    vol = shown["volumes_attached"][0]["id"]
    v = wait_volume(onebox, vol, want="in-use")
    assert v["volume_image_metadata"]["image_id"] == img["id"]
    atts = osc_json(onebox, "--os-volume-api-version", "3.27", "volume", "attachment", "list")
    assert any(a["Volume ID"] == vol and a["Server ID"] == s["id"] for a in atts), atts
    # --boot-from-volume leaves the volume behind (delete_on_termination false).
    osc(onebox, "server", "delete", "--wait", name)
    wait_volume(onebox, vol)
    # The volume becomes an image of the project.
    shot = uniq("from-volume")
    osc(onebox, "image", "create", "--volume", vol, "--disk-format", "qcow2", shot)
    deadline = time.time() + 120
    while time.time() < deadline:
        i = osc_json(onebox, "image", "show", shot)
        if i["status"] not in ("queued", "saving"):
            break
        time.sleep(0.5)
    assert i["status"] == "active" and i["disk_format"] == "qcow2", i
    wait_volume(onebox, vol)
    osc(onebox, "image", "delete", shot)
    osc(onebox, "volume", "delete", vol)
    wait_volume(onebox, vol, want=None)
    onebox.osc("image", "delete", img["id"])
