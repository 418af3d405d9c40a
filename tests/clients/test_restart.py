"""kill -9 at awkward moments: nothing acknowledged is lost, and on restart onebox reconciles
its database with what the backend really runs."""

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import openstack
import pytest

from conftest import Onebox, free_port


@pytest.fixture
def box():
    binary = os.environ.get("ONEBOX_BIN") or shutil.which("onebox")
    data_dir = tempfile.mkdtemp(prefix="onebox-restart-")
    b = Onebox(binary, data_dir, free_port())
    config = os.path.join(data_dir, "onebox.toml")
    with open(config, "w") as f:
        # Every fake-driver operation takes a second, so builds are caught in flight.
        f.write("fake_driver = true\nfake_driver_delay_ms = 1000\n")
    os.environ["ONEBOX_CONFIG"] = config
    try:
        b.init()
        b.start()
        yield b
    finally:
        os.environ.pop("ONEBOX_CONFIG", None)
        b.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def crash_and_restart(b):
    b.proc.send_signal(signal.SIGKILL)
    b.proc.wait()
    b.log.close()
    b.start()


def connect(b):
    os.environ["OS_CLIENT_CONFIG_FILE"] = b.clouds
    return openstack.connect(cloud="onebox-demo")


def upload_image(conn, d):
    path = os.path.join(d, "disk.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", path, "16M"], check=True)
    return conn.image.create_image(name="disk", filename=path, disk_format="qcow2",
                                   container_format="bare", wait=True)


def test_kill_9_mid_build_and_after_boot(box):
    conn = connect(box)
    with tempfile.TemporaryDirectory() as d:
        image = upload_image(conn, d)
    key = conn.compute.create_keypair(
        name="k-" + uuid.uuid4().hex[:6],
        public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGf7Wq3ad5G3+1dEnTHy1RdQjpLSFajmyRzkd5HMIbhW t")
    booted = conn.compute.create_server(name="booted", image_id=image.id, flavor_id="1",
                                        networks="auto")
    booted = conn.compute.wait_for_server(booted, wait=60, interval=1)
    assert booted.status == "ACTIVE"
    # A build that is still running when the process dies.
    building = conn.compute.create_server(name="building", image_id=image.id, flavor_id="1",
                                          networks="auto")
    assert conn.compute.get_server(building).status == "BUILD"
    conn.close()

    crash_and_restart(box)

    conn = connect(box)
    # Everything acknowledged before the kill is still there.
    assert conn.compute.find_keypair(key.name) is not None
    assert conn.image.get_image(image.id).status == "active"
    # The interrupted build ended in ERROR with a fault that says why.
    s = conn.compute.get_server(building)
    assert s.status == "ERROR"
    assert "onebox stopped" in s.fault["message"]
    # The fake backend forgot its guests with the process: the server that ran is reported
    # SHUTOFF, not ACTIVE.
    s = conn.compute.get_server(booted)
    assert s.status == "SHUTOFF"
    # Both can still be deleted.
    for srv in (booted, building):
        conn.compute.delete_server(srv)
        conn.compute.wait_for_delete(srv, interval=1, wait=60)
    assert list(conn.compute.servers()) == []
    conn.close()


def test_kill_9_mid_delete_finishes_the_delete(box):
    conn = connect(box)
    with tempfile.TemporaryDirectory() as d:
        image = upload_image(conn, d)
    srv = conn.compute.create_server(name="doomed", image_id=image.id, flavor_id="1",
                                     networks="auto")
    srv = conn.compute.wait_for_server(srv, wait=60, interval=1)
    conn.compute.delete_server(srv)
    # The delete is accepted and running (the driver takes a second).
    assert conn.compute.get_server(srv).task_state == "deleting"
    conn.close()

    crash_and_restart(box)

    conn = connect(box)
    conn.compute.wait_for_delete(srv, interval=1, wait=60)
    assert list(conn.compute.servers()) == []
    conn.close()


def wait_task(conn, srv, tasks, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = conn.compute.get_server(srv)
        if s.task_state in tasks:
            return s
        time.sleep(0.05)
    raise AssertionError(f"never in {tasks}")


def test_kill_9_mid_resize_and_mid_rebuild_leaves_error_with_a_fault(box):
    conn = connect(box)
    with tempfile.TemporaryDirectory() as d:
        image = upload_image(conn, d)
    servers = []
    for name in ("resized", "rebuilt"):
        srv = conn.compute.create_server(name=name, image_id=image.id, flavor_id="1",
                                         networks="auto")
        servers.append(conn.compute.wait_for_server(srv, wait=60, interval=1))
    resized, rebuilt = servers
    conn.compute.resize_server(resized, "2")
    conn.compute.rebuild_server(rebuilt, image=image.id)
    # Caught while the backend works (each fake operation takes a second).
    wait_task(conn, resized, ("resize_finish",))
    wait_task(conn, rebuilt, ("rebuild_spawning",))
    conn.close()

    crash_and_restart(box)

    conn = connect(box)
    for srv in (resized, rebuilt):
        s = conn.compute.get_server(srv)
        assert s.status == "ERROR" and s.task_state is None
        assert "onebox stopped" in s.fault["message"]
        conn.compute.delete_server(s)
        conn.compute.wait_for_delete(s, interval=1, wait=60)
    conn.close()
