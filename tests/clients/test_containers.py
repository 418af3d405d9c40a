"""The container backend through the real clients and the real binary (no fake driver), as
root: an image with hypervisor_type=lxc gives a container, reachable at the address the API
reports; kill -9 of onebox leaves it running, and the restarted onebox adopts it (same init
process, still ACTIVE, nothing duplicated). Skipped without root unless
ONEBOX_REQUIRE_BACKENDS=1."""

import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import urllib.request

import pytest

from conftest import Onebox, free_port

INIT = """#!/bin/sh
echo "onebox-test: booted $(hostname)"
[ -x /etc/onebox/user-data ] && /etc/onebox/user-data
mkdir -p /www
echo "hello from $(hostname)" > /www/index.html
httpd -f -p 8080 -h /www &
HTTPD=$!
trap 'kill $HTTPD; exit 0' TERM
while :; do sleep 1 & wait $!; done
"""


def why_not():
    if os.geteuid() != 0:
        return "the container backend needs root"
    if not shutil.which("busybox"):
        return "busybox-static is not installed"
    return None


def build_rootfs(path):
    bb = shutil.which("busybox")
    applets = subprocess.run([bb, "--list"], capture_output=True, text=True, check=True).stdout.split()
    with tarfile.open(path, "w") as t:
        def add(name, kind, data=b"", mode=0o755, link=""):
            i = tarfile.TarInfo(name)
            i.type, i.mode, i.size, i.linkname, i.mtime = kind, mode, len(data), link, 1700000000
            t.addfile(i, io.BytesIO(data) if data else None)
        for d in ["bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root"]:
            add(d, tarfile.DIRTYPE)
        add("bin/busybox", tarfile.REGTYPE, open(bb, "rb").read())
        for a in applets:
            if a not in ("busybox", "init"):
                add(f"bin/{a}", tarfile.SYMTYPE, mode=0o777, link="busybox")
        add("sbin/init", tarfile.REGTYPE, INIT.encode())
        add("etc/passwd", tarfile.REGTYPE, b"root:x:0:0:root:/root:/bin/sh\n", 0o644)


def bridges():
    return {n for n in os.listdir("/sys/class/net") if n.startswith("obr")}


@pytest.fixture
def box():
    why = why_not()
    if why:
        if os.environ.get("ONEBOX_REQUIRE_BACKENDS") == "1":
            pytest.fail(why)
        pytest.skip(why)
    binary = os.environ.get("ONEBOX_BIN") or shutil.which("onebox")
    data_dir = tempfile.mkdtemp(prefix="onebox-containers-")
    parent = f"onebox-pytest-{os.getpid()}"
    config = os.path.join(data_dir, "onebox.toml")
    with open(config, "w") as f:
        f.write("[compute]\npower_sync_interval_secs = 1\n"
                f"[container]\ncgroup_parent = \"{parent}\"\nstop_timeout_secs = 3\n")
    os.environ["ONEBOX_CONFIG"] = config
    before = bridges()
    b = Onebox(binary, data_dir, free_port())
    try:
        b.init()
        b.start(fake=False)
        yield b
    finally:
        try:
            if b.proc and b.proc.poll() is None:
                for s in b.osc_json("server", "list", "--all-projects", check=False) or []:
                    b.osc("server", "delete", "--wait", s["ID"], check=False)
        finally:
            os.environ.pop("ONEBOX_CONFIG", None)
            b.stop()
            for ctrl in ["memory", "cpu", "cpuacct", "pids", "freezer", "devices", ""]:
                d = os.path.join("/sys/fs/cgroup", ctrl, parent)
                if os.path.isdir(d):
                    for c in os.listdir(d):
                        if os.path.isdir(os.path.join(d, c)):
                            os.rmdir(os.path.join(d, c))
                    os.rmdir(d)
            for br in bridges() - before:
                subprocess.run(["ip", "link", "del", br], check=False)
            shutil.rmtree(data_dir, ignore_errors=True)


def http(addr, timeout=1.0):
    try:
        with urllib.request.urlopen(f"http://{addr}:8080/", timeout=timeout) as r:
            return r.read().decode()
    except OSError:
        return None


def wait(pred, within=20.0):
    deadline = time.time() + within
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    return None


def init_pid(box, server_id):
    with open(os.path.join(box.data_dir, "instances", server_id, "boot.json")) as f:
        return json.load(f)["init_pid"]


def test_an_lxc_image_gives_a_container_that_survives_kill_9_of_onebox(box):
    with tempfile.TemporaryDirectory() as d:
        tarball = os.path.join(d, "rootfs.tar")
        build_rootfs(tarball)
        box.osc("image", "create", "--disk-format", "raw", "--container-format", "bare",
                "--property", "hypervisor_type=lxc", "--public", "--file", tarball, "rootfs")
    srv = box.osc_json("server", "create", "--image", "rootfs", "--flavor", "m1.tiny",
                       "--nic", "auto", "--wait", "ctr-1", cloud="onebox-demo")
    assert srv["status"] == "ACTIVE"
    shown = box.osc_json("server", "show", srv["id"], cloud="onebox-demo")
    addrs = shown["addresses"]
    addr = next(iter(addrs.values()))[0] if isinstance(addrs, dict) else addrs.split("=")[1].split(",")[0]
    body = wait(lambda: http(addr))
    assert body and "hello from ctr-1" in body, "the container answers at the reported address"
    log = wait(lambda: "booted" in box.osc("console", "log", "show", srv["id"],
                                          cloud="onebox-demo").stdout)
    assert log, "the console log holds init's output"
    pid = init_pid(box, srv["id"])
    assert os.path.exists(f"/proc/{pid}")

    # kill -9 of onebox: the container keeps running, and is adopted after the restart.
    box.proc.send_signal(signal.SIGKILL)
    box.proc.wait()
    box.log.close()
    assert http(addr), "the container serves while onebox is down"
    box.start(fake=False)
    servers = box.osc_json("server", "list", cloud="onebox-demo")
    assert [s["ID"] for s in servers] == [srv["id"]], "none lost, none duplicated"
    assert servers[0]["Status"] == "ACTIVE"
    assert init_pid(box, srv["id"]) == pid, "the same init process"
    assert os.path.exists(f"/proc/{pid}")
    assert http(addr)

    # Stop and start through the API.
    box.osc("server", "stop", srv["id"], cloud="onebox-demo")
    assert wait(lambda: box.osc_json("server", "show", srv["id"], cloud="onebox-demo")["status"] == "SHUTOFF")
    assert wait(lambda: not os.path.exists(f"/proc/{pid}"), 5)
    box.osc("server", "start", srv["id"], cloud="onebox-demo")
    assert wait(lambda: box.osc_json("server", "show", srv["id"], cloud="onebox-demo")["status"] == "ACTIVE")
    assert wait(lambda: http(addr))

    # An init that dies while onebox runs shows SHUTOFF through the power-state sync.
    os.kill(init_pid(box, srv["id"]), signal.SIGKILL)
    assert wait(lambda: box.osc_json("server", "show", srv["id"], cloud="onebox-demo")["status"] == "SHUTOFF")

    box.osc("server", "delete", "--wait", srv["id"], cloud="onebox-demo")
    assert not os.path.exists(os.path.join(box.data_dir, "instances", srv["id"]))


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHhsNhGq2Y6gFHm0mF0ELQ9pvw1Ckz6yEo3dxS6KsZ9X ctr@test"


def test_a_container_gets_its_user_data_key_and_config_drive(box):
    """user_data, key_name and config_drive reach a container as they reach a libvirt-LXC
    guest: the config drive's files where cloud-init's ConfigDrive source reads them, the
    user data where the image's init runs it, the key in root's authorized_keys (the image
    has no cloud-init)."""
    with tempfile.TemporaryDirectory() as d:
        tarball = os.path.join(d, "rootfs.tar")
        build_rootfs(tarball)
        box.osc("image", "create", "--disk-format", "raw", "--container-format", "bare",
                "--property", "hypervisor_type=lxc", "--public", "--file", tarball, "rootfs")
        pub = os.path.join(d, "k.pub")
        with open(pub, "w") as f:
            f.write(KEY + "\n")
        box.osc("keypair", "create", "--public-key", pub, "ctr-key", cloud="onebox-demo")
        ud = os.path.join(d, "ud.sh")
        with open(ud, "w") as f:
            f.write("#!/bin/sh\necho onebox-test: user-data ran as $(id -u)\n")
        srv = box.osc_json("server", "create", "--image", "rootfs", "--flavor", "m1.tiny",
                           "--nic", "auto", "--key-name", "ctr-key", "--user-data", ud,
                           "--config-drive", "true", "--wait", "ctr-seed", cloud="onebox-demo")
    assert srv["status"] == "ACTIVE"
    assert wait(lambda: "onebox-test: user-data ran as 0" in box.osc(
        "console", "log", "show", srv["id"], cloud="onebox-demo").stdout), "the user data ran"
    root = f"/proc/{init_pid(box, srv['id'])}/root"
    with open(f"{root}/root/.ssh/authorized_keys") as f:
        assert f.read() == KEY + "\n"
    cd = f"{root}/var/lib/cloud/seed/config_drive/openstack/latest"
    with open(f"{cd}/meta_data.json") as f:
        md = json.load(f)
    assert md["uuid"] == srv["id"], md
    assert {k: v.strip() for k, v in md["public_keys"].items()} == {"ctr-key": KEY}, md
    with open(f"{cd}/user_data") as f:
        assert "user-data ran" in f.read()
    with open(f"{cd}/network_data.json") as f:
        assert json.load(f)["links"], "the container's ports"
    # A reboot writes the same again; the key is not added twice.
    box.osc("server", "reboot", "--hard", "--wait", srv["id"], cloud="onebox-demo")
    root = f"/proc/{init_pid(box, srv['id'])}/root"
    with open(f"{root}/root/.ssh/authorized_keys") as f:
        assert f.read() == KEY + "\n"
    box.osc("server", "delete", "--wait", srv["id"], cloud="onebox-demo")
