"""The real `openstack image …` commands and openstacksdk's image proxy against onebox."""

import hashlib
import os
import subprocess
import uuid

import openstack
import pytest

from conftest import ADMIN_PW  # noqa: F401  (the fixture module's constants)


def md5_of(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture
def qcow2(tmp_path):
    path = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True)
    # Some data inside, so the file is more than a header.
    raw = tmp_path / "data.raw"
    raw.write_bytes(os.urandom(256 * 1024) * 4)
    subprocess.run(
        ["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(path)],
        check=True,
    )
    return str(path)


def test_image_create_list_show_set_save_delete(onebox, qcow2, tmp_path):
    name = f"img-{uuid.uuid4().hex[:8]}"
    img = onebox.osc_json(
        "image", "create", "--file", qcow2, "--disk-format", "qcow2",
        "--container-format", "bare", "--property", "os_distro=cirros", name,
    )
    assert img["name"] == name
    assert img["status"] == "active"
    assert img["disk_format"] == "qcow2" and img["container_format"] == "bare"
    assert img["checksum"] == md5_of(qcow2)
    assert img["size"] == os.path.getsize(qcow2)
    assert img["virtual_size"] == 1024 * 1024

    listed = {r["Name"]: r for r in onebox.osc_json("image", "list")}
    assert listed[name]["ID"] == img["id"] and listed[name]["Status"] == "active"

    shown = onebox.osc_json("image", "show", name)
    assert shown["id"] == img["id"]
    assert shown["properties"]["os_distro"] == "cirros"
    # The CLI files os_hash_* under properties.
    assert shown["properties"]["os_hash_algo"] == "sha512"
    sha512 = hashlib.sha512(open(qcow2, "rb").read()).hexdigest()
    assert shown["properties"]["os_hash_value"] == sha512

    onebox.osc("image", "set", "--property", "hw_disk_bus=virtio", "--tag", "lab", name)
    shown = onebox.osc_json("image", "show", name)
    assert shown["properties"]["hw_disk_bus"] == "virtio"
    assert "lab" in shown["tags"]
    onebox.osc("image", "unset", "--property", "hw_disk_bus", name)
    assert "hw_disk_bus" not in onebox.osc_json("image", "show", name)["properties"]

    out = tmp_path / "out.qcow2"
    onebox.osc("image", "save", "--file", str(out), name)
    assert md5_of(str(out)) == md5_of(qcow2)

    onebox.osc("image", "delete", name)
    gone = onebox.osc("image", "show", img["id"], check=False)
    assert gone.returncode != 0
    assert img["id"] not in os.listdir(os.path.join(onebox.data_dir, "images"))


def test_image_shared_with_another_project(onebox, qcow2):
    project = f"share-{uuid.uuid4().hex[:8]}"
    user = f"u-{uuid.uuid4().hex[:8]}"
    onebox.osc("project", "create", project)
    onebox.osc("user", "create", "--password", "pw-share", "--project", project, user)
    onebox.osc("role", "add", "--project", project, "--user", user, "member")
    pid = onebox.osc_json("project", "show", project)["id"]
    as_other = {
        "OS_AUTH_URL": f"{onebox.base}/identity", "OS_USERNAME": user,
        "OS_PASSWORD": "pw-share", "OS_PROJECT_NAME": project,
        "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
        "OS_IDENTITY_API_VERSION": "3",
    }

    name = f"shared-{uuid.uuid4().hex[:8]}"
    img = onebox.osc_json(
        "image", "create", "--file", qcow2, "--disk-format", "qcow2",
        "--container-format", "bare", "--shared", name,
    )
    # Not shared yet: the other project cannot see it.
    hidden = onebox.osc("image", "show", img["id"], cloud=None, check=False, extra_env=as_other)
    assert hidden.returncode != 0

    member = onebox.osc_json("image", "add", "project", img["id"], pid)
    assert member["status"] == "pending"
    other_list = onebox.osc_json("image", "list", cloud=None, extra_env=as_other)
    assert img["id"] not in {r["ID"] for r in other_list}

    onebox.osc("image", "set", "--accept", img["id"], cloud=None, extra_env=as_other)
    other_list = onebox.osc_json("image", "list", cloud=None, extra_env=as_other)
    assert img["id"] in {r["ID"] for r in other_list}
    members = onebox.osc_json("image", "member", "list", img["id"])
    assert [(m["Member ID"], m["Status"]) for m in members] == [(pid, "accepted")]

    # The member may use the image but not change it.
    denied = onebox.osc("image", "set", "--name", "stolen", img["id"], cloud=None,
                        check=False, extra_env=as_other)
    assert denied.returncode != 0 and "403" in denied.stderr

    onebox.osc("image", "remove", "project", img["id"], pid)
    onebox.osc("image", "delete", img["id"])


@pytest.fixture
def conn(onebox, monkeypatch):
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", onebox.clouds)
    c = openstack.connect(cloud="onebox-demo")
    yield c
    c.close()


def test_sdk_create_and_download(onebox, conn, qcow2):
    name = f"sdk-{uuid.uuid4().hex[:8]}"
    image = conn.image.create_image(
        name, filename=qcow2, disk_format="qcow2", container_format="bare", wait=True,
    )
    image = conn.image.get_image(image.id)
    assert image.status == "active"
    assert image.checksum == md5_of(qcow2)
    # The SDK records the hashes it computed as owner_specified properties.
    assert image.properties.get("owner_specified.openstack.md5") in ("", md5_of(qcow2))
    resp = conn.image.download_image(image)
    assert hashlib.md5(resp.content).hexdigest() == md5_of(qcow2)
    assert resp.headers["Content-MD5"] == image.checksum
    found = [i.id for i in conn.image.images(name=name)]
    assert found == [image.id]
    conn.image.delete_image(image)
    assert conn.image.find_image(name) is None


def test_a_client_that_disconnects_midway_leaves_a_killed_image(onebox):
    import socket
    import time

    import json
    import urllib.request

    # Created through the API: the CLI, run without a terminal, would upload its empty stdin.
    token = onebox.osc("token", "issue", "-f", "value", "-c", "id").stdout.strip()
    req = urllib.request.Request(
        f"{onebox.base}/image/v2/images", method="POST",
        data=json.dumps({"name": f"cut-{uuid.uuid4().hex[:8]}", "disk_format": "raw",
                         "container_format": "bare"}).encode(),
        headers={"X-Auth-Token": token, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req) as r:
        img = json.load(r)
    assert img["status"] == "queued"
    with socket.create_connection(("127.0.0.1", onebox.port)) as s:
        s.sendall(
            (f"PUT /image/v2/images/{img['id']}/file HTTP/1.1\r\n"
             f"Host: 127.0.0.1:{onebox.port}\r\nX-Auth-Token: {token}\r\n"
             "Content-Type: application/octet-stream\r\n"
             f"Content-Length: {10 << 20}\r\n\r\n").encode()
        )
        s.sendall(os.urandom(1 << 20))
    # The connection is gone with 9 MiB unsent: the upload fails and cleans up by itself.
    deadline = time.time() + 20
    status = None
    while time.time() < deadline:
        status = onebox.osc_json("image", "show", img["id"])["status"]
        if status == "killed":
            break
        time.sleep(0.2)
    assert status == "killed"
    assert not [f for f in os.listdir(os.path.join(onebox.data_dir, "images")) if img["id"] in f]
    onebox.osc("image", "delete", img["id"])


def test_deactivate_and_reactivate(onebox, qcow2):
    name = f"deact-{uuid.uuid4().hex[:8]}"
    onebox.osc("image", "create", "--file", qcow2, "--disk-format", "qcow2",
               "--container-format", "bare", name)
    onebox.osc("image", "set", "--deactivate", name)
    assert onebox.osc_json("image", "show", name)["status"] == "deactivated"
    onebox.osc("image", "set", "--activate", name)
    assert onebox.osc_json("image", "show", name)["status"] == "active"
    onebox.osc("image", "set", "--protected", name)
    denied = onebox.osc("image", "delete", name, check=False)
    assert denied.returncode != 0
    onebox.osc("image", "set", "--unprotected", name)
    onebox.osc("image", "delete", name)


def test_init_imported_the_firmware_as_public_images(onebox):
    """`onebox init` (run by the fixture from the repository's root) imports the payloads of
    firmware/build: the guest's kernel, ramdisk and disk, and the container root filesystem."""
    if not os.path.isfile(os.path.join("firmware", "build", "SHA256SUMS")):
        pytest.skip("firmware/build holds no payloads (scripts/setup.sh builds them)")
    listed = {r["Name"]: r for r in onebox.osc_json("image", "list", cloud="onebox-demo")}
    for name in ("onebox-tiny-kernel", "onebox-tiny-ramdisk", "onebox-tiny", "onebox-rootfs"):
        assert listed[name]["Status"] == "active", name

    def show(name):
        return onebox.osc_json("image", "show", name, cloud="onebox-demo")

    kernel, ramdisk = show("onebox-tiny-kernel"), show("onebox-tiny-ramdisk")
    assert (kernel["disk_format"], kernel["container_format"]) == ("aki", "aki")
    assert (ramdisk["disk_format"], ramdisk["container_format"]) == ("ari", "ari")
    disk = show("onebox-tiny")
    assert disk["visibility"] == "public"
    assert (disk["disk_format"], disk["container_format"]) == ("qcow2", "bare")
    assert disk["properties"]["kernel_id"] == kernel["id"]
    assert disk["properties"]["ramdisk_id"] == ramdisk["id"]
    assert disk["virtual_size"] == 64 * 1024 * 1024
    rootfs = show("onebox-rootfs")
    assert (rootfs["disk_format"], rootfs["container_format"]) == ("raw", "bare")
    assert rootfs["properties"]["onebox_rootfs"] == "true"
    assert rootfs["properties"]["hypervisor_type"] == "lxc"
    sums = dict(
        reversed(line.split()) for line in open(os.path.join("firmware", "build", "SHA256SUMS"))
    )
    assert rootfs["properties"]["onebox_payload_sha256"] == sums["onebox-rootfs.tar"]
