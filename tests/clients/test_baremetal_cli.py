"""Bare metal end to end with the real clients: `openstack baremetal node ...` enrols a node
whose BMC is Debian's ipmi_sim on loopback (scripts/ipmi-sim.sh: power on starts a process
standing in for the machine, whose serial console reaches SOL), then `openstack server ...`
runs a server on it through a bare-metal flavor, whose serial console (SOL) answers through
onebox's console websocket.

Skipped when ipmi_sim is not installed, unless ONEBOX_REQUIRE_BACKENDS=1 (then it fails).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _free(kind):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sim:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="onebox-ipmi-sim-")
        self.port = _free(socket.SOCK_DGRAM)
        out = subprocess.run(
            [os.path.join(ROOT, "scripts/ipmi-sim.sh"), "start", self.dir,
             str(self.port), str(_free(socket.SOCK_STREAM))],
            check=True, capture_output=True, text=True)
        self.pid = int(out.stdout.strip())

    def machine_pid(self):
        """PID of the process standing in for the machine, or None when it is off."""
        try:
            pid = int(open(os.path.join(self.dir, "machine", "pid")).read().strip())
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            return None
        return None if state == "Z" else pid

    def stop(self):
        subprocess.run([os.path.join(ROOT, "scripts/ipmi-sim.sh"), "stop", self.dir],
                       capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def sim():
    if not shutil.which("ipmi_sim") or not shutil.which("socat"):
        if os.environ.get("ONEBOX_REQUIRE_BACKENDS") == "1":
            pytest.fail("ipmi_sim (openipmi) or socat is not installed and ONEBOX_REQUIRE_BACKENDS=1")
        pytest.skip("ipmi_sim (openipmi) or socat is not installed")
    s = Sim()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def image(onebox):
    """A small image for the bare-metal servers (the node would be deployed with it)."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "metal.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", path, "64M"], check=True)
        img = onebox.osc_json("image", "create", "--file", path, "--disk-format", "qcow2",
                              "--container-format", "bare", f"metal-{uuid.uuid4().hex[:6]}")
        yield img


def wait(pred, timeout=30, step=0.5):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def test_enrol_and_run_a_server_on_a_node(onebox, sim, image):
    bm = lambda *a, **kw: onebox.osc("baremetal", *a, **kw)  # noqa: E731
    bmj = lambda *a, **kw: onebox.osc_json("baremetal", *a, **kw)  # noqa: E731
    name = f"bm-{uuid.uuid4().hex[:6]}"
    node = bmj("node", "create", "--driver", "ipmi", "--name", name,
               "--driver-info", "ipmi_address=127.0.0.1",
               "--driver-info", f"ipmi_port={sim.port}",
               "--driver-info", "ipmi_username=admin",
               "--driver-info", "ipmi_password=password",
               "--resource-class", "baremetal.small",
               "--property", "cpus=2", "--property", "memory_mb=2048", "--property", "local_gb=10")
    assert node["provision_state"] == "enroll"
    assert node["driver_info"]["ipmi_password"] == "******"
    rows = bmj("node", "list")
    listed = {n["name"]: n for n in rows}
    assert name in listed, rows
    assert listed[name]["provision_state"] == "enroll"

    bm("node", "set", name, "--property", "cpu_arch=x86_64")
    assert bmj("node", "show", name)["properties"]["cpu_arch"] == "x86_64"

    bm("node", "manage", name, "--wait", "30")
    shown = bmj("node", "show", name)
    assert shown["provision_state"] == "manageable", shown["last_error"]
    assert shown["power_state"] == "power off"
    bm("node", "provide", name, "--wait", "30")
    assert bmj("node", "show", name)["provision_state"] == "available"

    # Power and boot device straight through the Bare Metal API.
    bm("node", "power", "on", name)
    assert wait(lambda: bmj("node", "show", name)["power_state"] == "power on")
    assert sim.machine_pid() is not None
    bm("node", "power", "off", name)
    assert wait(lambda: bmj("node", "show", name)["power_state"] == "power off")
    assert sim.machine_pid() is None
    bm("node", "boot", "device", "set", name, "cdrom")
    assert bmj("node", "boot", "device", "show", name)["boot_device"] == "cdrom"
    bm("node", "maintenance", "set", name, "--reason", "checking")
    assert bmj("node", "show", name)["maintenance"] is True
    bm("node", "maintenance", "unset", name)

    # A bare-metal flavor, as with Nova and Ironic; a server lands on the node.
    flavor = f"bm.small-{uuid.uuid4().hex[:4]}"
    onebox.osc("flavor", "create", "--ram", "2048", "--vcpus", "2", "--disk", "10",
               "--property", "resources:CUSTOM_BAREMETAL_SMALL=1",
               "--property", "resources:VCPU=0", "--property", "resources:MEMORY_MB=0",
               "--property", "resources:DISK_GB=0", flavor)
    server = f"metal-{uuid.uuid4().hex[:6]}"
    created = onebox.osc_json("server", "create", "--flavor", flavor, "--image", image["id"],
                              "--wait", server,
                              cloud="onebox-admin")
    assert created["status"] == "ACTIVE", created
    node = bmj("node", "show", name)
    assert node["provision_state"] == "active"
    assert node["instance_uuid"] == created["id"]
    assert node["power_state"] == "power on"
    first = sim.machine_pid()
    assert first is not None

    def console():
        return onebox.osc("console", "log", "show", server).stdout
    assert wait(lambda: "onebox-sim machine" in console(), timeout=60), console()

    onebox.osc("server", "reboot", "--hard", "--wait", server)
    assert wait(lambda: sim.machine_pid() not in (None, first))

    onebox.osc("server", "stop", server)
    assert wait(lambda: onebox.osc_json("server", "show", server)["status"] == "SHUTOFF")
    assert sim.machine_pid() is None
    assert bmj("node", "show", name)["power_state"] == "power off"
    onebox.osc("server", "start", server)
    assert wait(lambda: onebox.osc_json("server", "show", server)["status"] == "ACTIVE")
    assert sim.machine_pid() is not None

    onebox.osc("server", "delete", "--wait", server)
    node = bmj("node", "show", name)
    assert node["provision_state"] == "available"
    assert node["instance_uuid"] is None
    assert sim.machine_pid() is None

    bm("node", "delete", name)
    gone = bm("node", "show", name, check=False)
    assert gone.returncode != 0 and "could not be found" in gone.stderr


def console_url(onebox, kind, server, cloud="onebox-admin"):
    p = onebox.osc("console", "url", "show", kind, server, "-f", "json", cloud=cloud, check=False)
    return (json.loads(p.stdout)["url"] if p.returncode == 0 else None), p.stderr


def ws_status(url):
    """The HTTP status refusing a websocket to `url`, or None when it opens."""
    try:
        with ws_connect(url, open_timeout=10):
            return None
    except InvalidStatus as e:
        return e.response.status_code


def typed(ws, line, needle, timeout=30):
    """Types `line` on the open console `ws` until `needle` is read back; returns all read."""
    got = b""
    deadline = time.time() + timeout
    while needle.encode() not in got:
        assert time.time() < deadline, f"{needle!r} not read; got {got!r}"
        ws.send(line.encode())
        end = time.time() + 3
        while needle.encode() not in got and time.time() < end:
            try:
                msg = ws.recv(timeout=0.5)
            except TimeoutError:
                continue
            got += msg if isinstance(msg, bytes) else msg.encode()
    return got.decode(errors="replace")


@pytest.fixture
def metal(onebox, sim, image):
    """A bare-metal server on a node of its own (deleted with the node afterwards): yields
    the server as `server show` gives it and the node's UUID."""
    name = f"con-{uuid.uuid4().hex[:6]}"
    onebox.osc("baremetal", "node", "create", "--driver", "ipmi", "--name", name,
               "--driver-info", "ipmi_address=127.0.0.1",
               "--driver-info", f"ipmi_port={sim.port}",
               "--driver-info", "ipmi_username=admin",
               "--driver-info", "ipmi_password=password",
               "--resource-class", "baremetal.console")
    server = f"metal-con-{uuid.uuid4().hex[:6]}"
    try:
        onebox.osc("baremetal", "node", "manage", name, "--wait", "30")
        onebox.osc("baremetal", "node", "provide", name, "--wait", "30")
        flavor = f"bm.console-{uuid.uuid4().hex[:4]}"
        onebox.osc("flavor", "create", "--ram", "512", "--vcpus", "1", "--disk", "1",
                   "--property", "resources:CUSTOM_BAREMETAL_CONSOLE=1", flavor)
        srv = onebox.osc_json("server", "create", "--flavor", flavor, "--image", image["id"],
                              "--wait", server)
        assert srv["status"] == "ACTIVE", srv
        yield srv, onebox.osc_json("baremetal", "node", "show", name)["uuid"]
    finally:
        onebox.osc("server", "delete", "--wait", server, check=False)
        onebox.osc("baremetal", "node", "delete", name, check=False)


def test_a_nodes_serial_console_through_the_websocket(onebox, sim, metal):
    """`console url show --serial` on a bare-metal server gives onebox's websocket, relayed
    to the machine's serial line over SOL: what is typed reaches the machine, its answer comes
    back and lands in the console log; leaving touches neither power nor capture. No VNC."""
    srv, _ = metal
    machine = sim.machine_pid()
    assert machine is not None
    url, err = console_url(onebox, "--serial", srv["id"])
    assert url and url.startswith(f"ws://127.0.0.1:{onebox.port}/console/serial?token="), err
    with ws_connect(url, open_timeout=10) as ws:
        seen = typed(ws, "hello-metal-ws\r", "machine got: hello-metal-ws", timeout=60)
        assert "machine got: hello-metal-ws" in seen
        # One session per console, as on every backend.
        assert ws_status(url) == 409
    assert wait(lambda: "machine got: hello-metal-ws" in
                onebox.osc("console", "log", "show", srv["id"]).stdout, timeout=10)
    assert sim.machine_pid() == machine
    with ws_connect(url, open_timeout=10) as ws:
        typed(ws, "again\r", "machine got: again", timeout=30)
    # No screen on a machine: Nova's answer for a backend without the console.
    p = onebox.osc("console", "url", "show", "--novnc", srv["id"], check=False)
    assert p.returncode != 0 and "501" in p.stderr, p.stderr


def test_attack_a_nodes_console_stays_with_its_server_and_project(onebox, sim, metal, image):
    """Another project's member gets no console URL for the server; the console socket is
    onebox's only; the server's token opens neither its screen nor another server's console,
    and another server's token does not reach the machine."""
    srv, node = metal
    demo, _ = console_url(onebox, "--serial", srv["id"], cloud="onebox-demo")
    assert demo is None, "a member of another project got a console URL"
    url, err = console_url(onebox, "--serial", srv["id"])
    assert url, err
    sock = os.path.join(onebox.data_dir, "consoles", f"{node}.sock")
    assert os.stat(sock).st_mode & 0o777 == 0o600
    assert os.stat(os.path.dirname(sock)).st_mode & 0o077 == 0
    token = url.split("token=", 1)[1]
    assert ws_status(f"ws://127.0.0.1:{onebox.port}/console/vnc/websockify?token={token}") == 401
    # A server on the fake backend, in the same project, with a console of its own.
    other = onebox.osc_json("server", "create", "--flavor", "m1.tiny", "--image", image["id"],
                            "--nic", "none", "--wait", f"fake-con-{uuid.uuid4().hex[:6]}")
    try:
        other_url, err = console_url(onebox, "--serial", other["id"])
        assert other_url, err
        with ws_connect(url, open_timeout=10) as ws:
            typed(ws, "whose-console\r", "machine got: whose-console", timeout=60)
            with ws_connect(other_url, open_timeout=10) as ws2:
                echoed = typed(ws2, "to-the-fake\r", "to-the-fake", timeout=10)
                assert "machine got" not in echoed, echoed
        assert "to-the-fake" not in onebox.osc("console", "log", "show", srv["id"]).stdout
    finally:
        onebox.osc("server", "delete", "--wait", other["id"], check=False)


def test_a_node_whose_bmc_refuses_the_password(onebox, sim):
    name = f"bad-{uuid.uuid4().hex[:6]}"
    onebox.osc("baremetal", "node", "create", "--driver", "ipmi", "--name", name,
               "--driver-info", "ipmi_address=127.0.0.1",
               "--driver-info", f"ipmi_port={sim.port}",
               "--driver-info", "ipmi_username=admin",
               "--driver-info", "ipmi_password=not-it")
    onebox.osc("baremetal", "node", "manage", name)
    node = onebox.osc_json("baremetal", "node", "show", name)
    assert node["provision_state"] == "enroll"
    assert "authentication failed" in node["last_error"]
    assert "not-it" not in node["last_error"]
    onebox.osc("baremetal", "node", "delete", name)


def test_baremetal_is_admin_only(onebox):
    r = onebox.osc("baremetal", "node", "list", cloud="onebox-demo", check=False)
    assert r.returncode != 0 and "403" in r.stderr or "denied" in r.stderr.lower()


def test_a_bmc_that_stops_answering_mid_deploy(onebox, sim, image):
    """The BMC freezes (SIGSTOP) as a server is built on its node: the server goes to ERROR
    with a fault, the node keeps last_error and is in no transitional state; once the BMC
    answers again, deleting the server returns the node to available."""
    name = f"frozen-{uuid.uuid4().hex[:6]}"
    onebox.osc("baremetal", "node", "create", "--driver", "ipmi", "--name", name,
               "--driver-info", "ipmi_address=127.0.0.1",
               "--driver-info", f"ipmi_port={sim.port}",
               "--driver-info", "ipmi_username=admin",
               "--driver-info", "ipmi_password=password",
               "--resource-class", "baremetal.frozen")
    onebox.osc("baremetal", "node", "manage", name)
    onebox.osc("baremetal", "node", "provide", name)
    assert onebox.osc_json("baremetal", "node", "show", name)["provision_state"] == "available"
    flavor = f"bm.frozen-{uuid.uuid4().hex[:4]}"
    onebox.osc("flavor", "create", "--ram", "512", "--vcpus", "1", "--disk", "1",
               "--property", "resources:CUSTOM_BAREMETAL_FROZEN=1", flavor)
    server = f"frozen-{uuid.uuid4().hex[:6]}"
    os.kill(sim.pid, signal.SIGSTOP)
    try:
        started = time.time()
        onebox.osc("server", "create", "--flavor", flavor, "--image", image["id"], server)
        assert wait(lambda: onebox.osc_json("server", "show", server)["status"] in ("ERROR", "ACTIVE"),
                    timeout=60)
        # The daemon's IPMI budget is 2 s x 3 attempts per BMC call: no hang beyond that.
        assert time.time() - started < 40
    finally:
        os.kill(sim.pid, signal.SIGCONT)
    shown = onebox.osc_json("server", "show", server)
    assert shown["status"] == "ERROR", shown
    assert "unreachable" in str(shown.get("fault")), shown.get("fault")
    node = onebox.osc_json("baremetal", "node", "show", name)
    assert node["provision_state"] == "deploy failed"
    assert node["target_provision_state"] is None
    assert "unreachable" in node["last_error"]
    onebox.osc("server", "delete", "--wait", server)
    node = onebox.osc_json("baremetal", "node", "show", name)
    assert node["provision_state"] == "available", node["last_error"]
    assert node["instance_uuid"] is None
    onebox.osc("baremetal", "node", "delete", name)
