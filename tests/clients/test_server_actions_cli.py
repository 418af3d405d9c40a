"""Server actions with the real `openstack` CLI on the fake driver: power actions, lock,
console, resize with confirm and revert, rebuild, snapshots into the image service, shelve,
rescue."""

import os
import subprocess
import tempfile
import time
import uuid

import pytest

DEMO = "onebox-demo"


@pytest.fixture(scope="module")
def image(onebox):
    """A small qcow2 image in the demo project, uploaded with the CLI."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "tiny.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", path, "64M"], check=True)
        name = f"img-{uuid.uuid4().hex[:6]}"
        img = onebox.osc_json("image", "create", "--file", path, "--disk-format", "qcow2",
                              "--container-format", "bare", name, cloud=DEMO)
        assert img["status"] == "active"
        yield img


def show(onebox, name):
    return onebox.osc_json("server", "show", name, cloud=DEMO)


def wait_status(onebox, name, status, timeout=60):
    deadline = time.time() + timeout
    s = None
    while time.time() < deadline:
        s = show(onebox, name)
        if s["status"] == status and not s.get("OS-EXT-STS:task_state"):
            return s
        time.sleep(0.3)
    raise AssertionError(f"{name} never reached {status}: {s and s['status']}")


@pytest.fixture
def server(onebox, image):
    name = f"a-{uuid.uuid4().hex[:6]}"
    created = onebox.osc_json("server", "create", "--image", image["name"], "--flavor", "m1.tiny",
                              "--wait", name, cloud=DEMO)
    assert created["status"] == "ACTIVE"
    yield name
    onebox.osc("server", "delete", "--wait", name, cloud=DEMO, check=False)


def test_power_actions_lock_and_console(onebox, server):
    onebox.osc("server", "reboot", "--soft", "--wait", server, cloud=DEMO)
    onebox.osc("server", "reboot", "--hard", "--wait", server, cloud=DEMO)
    wait_status(onebox, server, "ACTIVE")
    onebox.osc("server", "stop", server, cloud=DEMO)
    wait_status(onebox, server, "SHUTOFF")
    onebox.osc("server", "start", server, cloud=DEMO)
    wait_status(onebox, server, "ACTIVE")
    onebox.osc("server", "pause", server, cloud=DEMO)
    wait_status(onebox, server, "PAUSED")
    onebox.osc("server", "unpause", server, cloud=DEMO)
    wait_status(onebox, server, "ACTIVE")
    onebox.osc("server", "suspend", server, cloud=DEMO)
    wait_status(onebox, server, "SUSPENDED")
    onebox.osc("server", "resume", server, cloud=DEMO)
    wait_status(onebox, server, "ACTIVE")
    onebox.osc("server", "lock", "--reason", "maintenance", server, cloud=DEMO)
    shown = show(onebox, server)
    assert shown["locked"] is True and shown["locked_reason"] == "maintenance"
    refused = onebox.osc("server", "pause", server, cloud=DEMO, check=False)
    assert refused.returncode != 0 and "409" in refused.stderr
    onebox.osc("server", "unlock", server, cloud=DEMO)
    assert show(onebox, server)["locked"] is False
    full = onebox.osc("console", "log", "show", server, cloud=DEMO).stdout
    assert "login:" in full
    tail = onebox.osc("console", "log", "show", "--lines", "3", server, cloud=DEMO).stdout
    assert tail.splitlines() == full.splitlines()[-3:]
    actions = {e["Action"] for e in onebox.osc_json("server", "event", "list", server, cloud=DEMO)}
    assert {"reboot", "stop", "start", "pause", "unpause", "suspend", "resume", "lock",
            "unlock"} <= actions


def test_resize_confirm_and_revert(onebox, server):
    onebox.osc("server", "resize", "--flavor", "m1.small", "--wait", server, cloud=DEMO)
    s = wait_status(onebox, server, "VERIFY_RESIZE")
    assert "m1.small" in str(s["flavor"])
    onebox.osc("server", "resize", "confirm", server, cloud=DEMO)
    s = wait_status(onebox, server, "ACTIVE")
    assert "m1.small" in str(s["flavor"])
    onebox.osc("server", "resize", "--flavor", "m1.medium", "--wait", server, cloud=DEMO)
    wait_status(onebox, server, "VERIFY_RESIZE")
    onebox.osc("server", "resize", "revert", server, cloud=DEMO)
    s = wait_status(onebox, server, "ACTIVE")
    assert "m1.small" in str(s["flavor"]) and "m1.medium" not in str(s["flavor"])
    same = onebox.osc("server", "resize", "--flavor", "m1.small", server, cloud=DEMO, check=False)
    assert same.returncode != 0 and "400" in same.stderr


def test_rebuild(onebox, server, image):
    onebox.osc("server", "rebuild", "--image", image["id"], "--name", server + "-r",
               "--property", "rebuilt=yes", "--wait", server, cloud=DEMO)
    s = wait_status(onebox, server + "-r", "ACTIVE")
    assert "rebuilt" in str(s["properties"])
    events = onebox.osc_json("server", "event", "list", server + "-r", cloud=DEMO)
    rebuild = [e for e in events if e["Action"] == "rebuild"][0]
    detail = onebox.osc_json("server", "event", "show", server + "-r", rebuild["Request ID"],
                             cloud=DEMO)
    assert "compute_rebuild_instance" in str(detail["events"])
    onebox.osc("server", "set", "--name", server, server + "-r", cloud=DEMO)


def test_image_create_from_a_server(onebox, server):
    snap = f"snap-{uuid.uuid4().hex[:6]}"
    onebox.osc("server", "image", "create", "--name", snap, "--wait", server, cloud=DEMO)
    img = onebox.osc_json("image", "show", snap, cloud=DEMO)
    assert img["status"] == "active"
    props = str(img.get("properties"))
    assert "snapshot" in props and show(onebox, server)["id"] in props
    wait_status(onebox, server, "ACTIVE")
    # The snapshot boots a server of its own.
    other = server + "-from-snap"
    created = onebox.osc_json("server", "create", "--image", snap, "--flavor", "m1.tiny",
                              "--wait", other, cloud=DEMO)
    assert created["status"] == "ACTIVE"
    onebox.osc("server", "delete", "--wait", other, cloud=DEMO)
    onebox.osc("image", "delete", snap, cloud=DEMO)


def test_shelve_and_unshelve(onebox, server):
    onebox.osc("server", "shelve", "--wait", server, cloud=DEMO)
    s = wait_status(onebox, server, "SHELVED_OFFLOADED")
    images = {i["Name"] for i in onebox.osc_json("image", "list", cloud=DEMO)}
    assert server + "-shelved" in images
    onebox.osc("server", "unshelve", "--wait", server, cloud=DEMO)
    s = wait_status(onebox, server, "ACTIVE")
    assert s["status"] == "ACTIVE"
    images = {i["Name"] for i in onebox.osc_json("image", "list", cloud=DEMO)}
    assert server + "-shelved" not in images


def test_rescue_and_unrescue(onebox, server, image):
    onebox.osc("server", "rescue", "--password", "rescue-pw", server, cloud=DEMO)
    s = wait_status(onebox, server, "RESCUE")
    assert s["OS-EXT-STS:vm_state"] == "rescued"
    # Rescued, the server refuses what Nova refuses there.
    refused = onebox.osc("server", "reboot", server, cloud=DEMO, check=False)
    assert refused.returncode != 0 and "409" in refused.stderr
    onebox.osc("server", "unrescue", server, cloud=DEMO)
    wait_status(onebox, server, "ACTIVE")
    # With a named image (by name, as the CLI resolves it), from a stopped server.
    onebox.osc("server", "stop", server, cloud=DEMO)
    wait_status(onebox, server, "SHUTOFF")
    onebox.osc("server", "rescue", "--image", image["name"], server, cloud=DEMO)
    wait_status(onebox, server, "RESCUE")
    again = onebox.osc("server", "rescue", server, cloud=DEMO, check=False)
    assert again.returncode != 0 and "409" in again.stderr
    onebox.osc("server", "unrescue", server, cloud=DEMO)
    wait_status(onebox, server, "ACTIVE")
    events = onebox.osc_json("server", "event", "list", server, cloud=DEMO)
    assert [e["Action"] for e in events].count("rescue") == 2
    unrescue = [e for e in events if e["Action"] == "unrescue"][0]
    detail = onebox.osc_json("server", "event", "show", server, unrescue["Request ID"],
                             cloud=DEMO)
    assert "compute_unrescue_instance" in str(detail["events"])
    # Unrescue of a server not in rescue is Nova's 409.
    wrong = onebox.osc("server", "unrescue", server, cloud=DEMO, check=False)
    assert wrong.returncode != 0 and "409" in wrong.stderr
