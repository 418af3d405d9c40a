"""The real `openstack` CLI and openstacksdk against onebox's Compute API (fake driver)."""

import os
import re
import subprocess
import tempfile
import uuid

import openstack
import pytest


@pytest.fixture(scope="module")
def image(onebox):
    """A small qcow2 image in the demo project, uploaded with the CLI."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "tiny.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", path, "64M"], check=True)
        name = f"img-{uuid.uuid4().hex[:6]}"
        img = onebox.osc_json("image", "create", "--file", path, "--disk-format", "qcow2",
                              "--container-format", "bare", name, cloud="onebox-demo")
        assert img["status"] == "active"
        yield img


@pytest.fixture
def demo(onebox, monkeypatch):
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", onebox.clouds)
    c = openstack.connect(cloud="onebox-demo")
    yield c
    c.close()


def test_flavor_lifecycle(onebox):
    rows = onebox.osc_json("flavor", "list")
    names = {r["Name"] for r in rows}
    assert {"m1.tiny", "m1.small", "m1.nano"} <= names
    tiny = onebox.osc_json("flavor", "show", "m1.tiny")
    assert (tiny["ram"], tiny["vcpus"], tiny["disk"]) == (512, 1, 1)
    name = f"f-{uuid.uuid4().hex[:6]}"
    f = onebox.osc_json("flavor", "create", "--ram", "256", "--vcpus", "2", "--disk", "3",
                        "--property", "hw:cpu_policy=shared", name)
    assert f["name"] == name and f["vcpus"] == 2
    shown = onebox.osc_json("flavor", "show", name)
    assert "hw:cpu_policy" in str(shown["properties"])
    dup = onebox.osc("flavor", "create", "--ram", "1", "--vcpus", "1", "--disk", "1", name, check=False)
    assert dup.returncode != 0 and "409" in dup.stderr
    # Members cannot create flavors.
    denied = onebox.osc("flavor", "create", "--ram", "1", "--vcpus", "1", "--disk", "1", "nope",
                        cloud="onebox-demo", check=False)
    assert denied.returncode != 0 and "403" in denied.stderr
    onebox.osc("flavor", "delete", name)
    assert name not in {r["Name"] for r in onebox.osc_json("flavor", "list")}


def test_keypair_lifecycle(onebox):
    name = f"k-{uuid.uuid4().hex[:6]}"
    # The CLI makes an ed25519 key itself and uploads the public half.
    created = onebox.osc("keypair", "create", name, cloud="onebox-demo")
    assert "PRIVATE KEY" in created.stdout
    with tempfile.TemporaryDirectory() as d:
        key = os.path.join(d, "k")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True) \
            if shutil_which("ssh-keygen") else write_key(key)
        imported = onebox.osc_json("keypair", "create", "--public-key", key + ".pub", name + "-imp",
                                   cloud="onebox-demo")
        assert imported["name"] == name + "-imp"
        assert imported["fingerprint"].count(":") == 15
    rows = onebox.osc_json("keypair", "list", cloud="onebox-demo")
    assert {name, name + "-imp"} <= {r["Name"] for r in rows}
    # Another user does not see them.
    assert name not in {r["Name"] for r in onebox.osc_json("keypair", "list")}
    onebox.osc("keypair", "delete", name, name + "-imp", cloud="onebox-demo")
    rows = onebox.osc_json("keypair", "list", cloud="onebox-demo")
    assert name not in {r["Name"] for r in rows}


def shutil_which(cmd):
    import shutil
    return shutil.which(cmd)


def write_key(path):
    with open(path + ".pub", "w") as f:
        f.write("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGf7Wq3ad5G3+1dEnTHy1RdQjpLSFajmyRzkd5HMIbhW test\n")


def test_sdk_creates_and_deletes_a_server(onebox, demo, image):
    name = f"sdk-{uuid.uuid4().hex[:6]}"
    server = demo.compute.create_server(name=name, image_id=image["id"], flavor_id="1",
                                        networks="auto", metadata={"role": "web"})
    server = demo.compute.wait_for_server(server, wait=60, interval=1)
    assert server.status == "ACTIVE"
    assert server.addresses["private"][0]["addr"].startswith("10.")
    assert server.image.id == image["id"]
    demo.compute.delete_server(server)
    demo.compute.wait_for_delete(server, interval=1, wait=60)


def test_server_lifecycle(onebox, image):
    name = f"s-{uuid.uuid4().hex[:6]}"
    created = onebox.osc_json("server", "create", "--image", image["name"], "--flavor", "m1.tiny",
                              "--property", "role=web", "--wait", name, cloud="onebox-demo")
    assert created["status"] == "ACTIVE"
    # The project's network is a /16 of 10.0.0.0/8; which one depends on the projects that
    # needed a network before.
    assert re.search(r"'private': \['10\.\d+\.0\.\d+'\]", str(created["addresses"])), created

    server_id = created["id"]

    rows = onebox.osc_json("server", "list", cloud="onebox-demo")
    row = [r for r in rows if r["Name"] == name][0]
    assert row["Status"] == "ACTIVE" and re.search(r"10\.\d+\.0\.\d+", str(row["Networks"])), row
    assert row["Flavor"] == "m1.tiny"
    assert row["Image"] == image["name"]
    long_rows = onebox.osc_json("server", "list", "--long", cloud="onebox-demo")
    assert [r for r in long_rows if r["Name"] == name][0]["Power State"] in (1, "Running")

    shown = onebox.osc_json("server", "show", name, cloud="onebox-demo")
    assert shown["status"] == "ACTIVE" and shown["id"] == server_id
    assert "role" in str(shown["properties"])

    new = name + "-renamed"
    onebox.osc("server", "set", "--name", new, "--property", "tier=1", "--tag", "blue", name,
               cloud="onebox-demo")
    shown = onebox.osc_json("server", "show", new, cloud="onebox-demo")
    assert "tier" in str(shown["properties"]) and "blue" in str(shown["tags"])
    onebox.osc("server", "unset", "--property", "tier", "--tag", "blue", new, cloud="onebox-demo")
    shown = onebox.osc_json("server", "show", new, cloud="onebox-demo")
    assert "tier" not in str(shown["properties"]) and "blue" not in str(shown["tags"])

    # Actions, their log, and the console.
    onebox.osc("server", "stop", new, cloud="onebox-demo")
    onebox.osc("server", "start", new, cloud="onebox-demo")
    onebox.osc("server", "reboot", "--hard", "--wait", new, cloud="onebox-demo")
    events = onebox.osc_json("server", "event", "list", new, cloud="onebox-demo")
    assert [e["Action"] for e in events][:4] == ["reboot", "start", "stop", "create"] or \
        {"reboot", "start", "stop", "create"} <= {e["Action"] for e in events}
    log = onebox.osc("console", "log", "show", new, cloud="onebox-demo")
    assert "login:" in log.stdout
    onebox.osc("server", "lock", "--reason", "testing", new, cloud="onebox-demo")
    locked = onebox.osc("server", "stop", new, cloud="onebox-demo", check=False)
    assert locked.returncode != 0 and "409" in locked.stderr
    onebox.osc("server", "unlock", new, cloud="onebox-demo")

    onebox.osc("server", "delete", "--wait", new, cloud="onebox-demo")
    assert new not in {r["Name"] for r in onebox.osc_json("server", "list", cloud="onebox-demo")}


def test_quota_and_limits(onebox, demo):
    project = onebox.osc_json("project", "show", "demo")["id"]
    q = {r["Resource"]: r["Limit"] for r in onebox.osc_json("quota", "show", project)}
    assert q["instances"] == 10 and q["cores"] == 20
    onebox.osc("quota", "set", "--instances", "12", "--cores", "30", project)
    q = {r["Resource"]: r["Limit"] for r in onebox.osc_json("quota", "show", project)}
    assert q["instances"] == 12 and q["cores"] == 30
    limits = {r["Name"]: r["Value"] for r in onebox.osc_json("limits", "show", "--absolute",
                                                             cloud="onebox-demo")}
    # The CLI prints the SDK's names for the absolute limits.
    assert limits["max_total_instances"] == 12
    assert "total_instances_used" in limits
    onebox.osc("quota", "set", "--instances", "10", "--cores", "20", project)
    # Members cannot raise their own quota.
    denied = onebox.osc("quota", "set", "--instances", "99", project, cloud="onebox-demo",
                        check=False)
    assert denied.returncode != 0 and "403" in denied.stderr
