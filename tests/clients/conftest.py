"""A real onebox process for the client tests, and helpers to drive the real clients.

Each test session starts the `onebox` binary (ONEBOX_BIN) on a free loopback port with its own
data directory, initialised with `onebox init`, with every server on the fake driver, and stops
it by its PID at the end.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import pytest

ADMIN_PW = "admin-pw-for-tests"
DEMO_PW = "demo-pw-for-tests"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Onebox:
    def __init__(self, binary, data_dir, port):
        self.binary = binary
        self.data_dir = data_dir
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.clouds = os.path.join(data_dir, "clouds.yaml")
        self.proc = None
        # Every server on the fake driver unless a test runs real backends.
        self.fake = True
        # Extra environment for the daemon (e.g. ONEBOX_CONFIG).
        self.env = {}

    def init(self):
        subprocess.run(
            [self.binary, "init", "--data-dir", self.data_dir,
             "--listen", f"127.0.0.1:{self.port}"],
            check=True, capture_output=True,
            env={**os.environ, "ONEBOX_ADMIN_PASSWORD": ADMIN_PW, "ONEBOX_DEMO_PASSWORD": DEMO_PW},
        )

    def start(self, fake=None):
        """Starts the daemon; `fake` (when given) chooses between the fake driver and the
        real backends for this and later starts."""
        if fake is not None:
            self.fake = fake
        self.log = open(os.path.join(self.data_dir, "onebox.log"), "ab")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--data-dir", self.data_dir,
             "--listen", f"127.0.0.1:{self.port}"] + (["--fake-driver"] if self.fake else []),
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **self.env},
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"onebox exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("onebox did not become healthy")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()

    def osc(self, *args, cloud="onebox-admin", check=True, extra_env=None):
        """Runs the real `openstack` CLI; returns the CompletedProcess."""
        exe = os.path.join(os.path.dirname(sys.executable), "openstack")
        if not os.path.exists(exe):
            exe = shutil.which("openstack")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["OS_CLIENT_CONFIG_FILE"] = self.clouds
        env.update(extra_env or {})
        cmd = [exe] + (["--os-cloud", cloud] if cloud else []) + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({p.returncode}):\n{p.stderr}")
        return p

    def osc_json(self, *args, **kw):
        p = self.osc(*args, "-f", "json", **kw)
        return json.loads(p.stdout)


@pytest.fixture(scope="session")
def onebox():
    binary = os.environ.get("ONEBOX_BIN") or shutil.which("onebox")
    assert binary, "set ONEBOX_BIN to the onebox binary"
    data_dir = tempfile.mkdtemp(prefix="onebox-clients-")
    box = Onebox(binary, data_dir, free_port())
    try:
        box.init()
        box.start()
        yield box
    finally:
        box.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


# The [network] keys that give a box an external network ("public"): TEST-NET-1 addresses,
# which no host routes; on the fake driver onebox touches no interface, route or table.
EXTERNAL_NETWORK_CONFIG = (
    'fake_driver = true\n'
    '[network]\n'
    'nat_uplink = "eth0"\n'
    'external_cidr = "192.0.2.0/24"\n'
    'external_gateway = "192.0.2.1"\n'
    'floating_range = "192.0.2.100-192.0.2.120"\n'
)
FLOATING_RANGE = [f"192.0.2.{i}" for i in range(100, 121)]


def start_box(prefix, config):
    """A onebox of its own (fake driver) whose configuration file holds `config`; the caller
    stops it with `stop_box`."""
    binary = os.environ.get("ONEBOX_BIN") or shutil.which("onebox")
    assert binary, "set ONEBOX_BIN to the onebox binary"
    data_dir = tempfile.mkdtemp(prefix=prefix)
    box = Onebox(binary, data_dir, free_port())
    path = os.path.join(data_dir, "onebox.toml")
    with open(path, "w") as f:
        f.write(config)
    box.env = {"ONEBOX_CONFIG": path}
    try:
        p = subprocess.run(
            [binary, "init", "--data-dir", data_dir, "--listen", f"127.0.0.1:{box.port}"],
            capture_output=True, text=True,
            env={**os.environ, **box.env, "ONEBOX_ADMIN_PASSWORD": ADMIN_PW,
                 "ONEBOX_DEMO_PASSWORD": DEMO_PW, "RUST_BACKTRACE": "0"},
        )
        if p.returncode != 0:
            raise RuntimeError(f"onebox init with\n{config}failed:\n{p.stderr}")
        try:
            box.start()
        except RuntimeError as e:
            with open(os.path.join(data_dir, "onebox.log"), errors="replace") as f:
                raise RuntimeError(f"{e}; with\n{config}its log ends:\n{f.read()[-3000:]}")
    except BaseException:
        stop_box(box)
        raise
    return box


def stop_box(box):
    box.stop()
    shutil.rmtree(box.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ext_onebox():
    """A second box whose configuration gives it the external network `public`."""
    box = start_box("onebox-ext-", EXTERNAL_NETWORK_CONFIG)
    try:
        yield box
    finally:
        stop_box(box)


class Member:
    """A user with the member role in a project of its own, made by the admin, with a
    clouds.yaml of its own (cloud `name`)."""

    def __init__(self, box, tag):
        self.box = box
        suffix = uuid.uuid4().hex[:8]
        self.project = f"{tag}-{suffix}"
        self.user = f"{tag}-u-{suffix}"
        self.password = f"pw-{suffix}"
        self.cloud = f"onebox-{tag}"
        box.osc("project", "create", self.project)
        box.osc("user", "create", "--password", self.password, "--project", self.project,
                self.user)
        box.osc("role", "add", "--project", self.project, "--user", self.user, "member")
        self.project_id = box.osc_json("project", "show", self.project)["id"]
        self.clouds = os.path.join(box.data_dir, f"clouds-{tag}-{suffix}.yaml")
        with open(self.clouds, "w") as f:
            f.write(
                "clouds:\n"
                f"  {self.cloud}:\n"
                "    auth:\n"
                f"      auth_url: {box.base}/identity\n"
                f"      username: {self.user}\n"
                f"      password: \"{self.password}\"\n"
                f"      project_name: {self.project}\n"
                "      user_domain_name: Default\n"
                "      project_domain_name: Default\n"
                "    region_name: RegionOne\n"
                "    interface: public\n"
                "    identity_api_version: 3\n"
            )

    def osc(self, *args, check=True):
        return self.box.osc(*args, cloud=self.cloud, check=check,
                            extra_env={"OS_CLIENT_CONFIG_FILE": self.clouds})

    def osc_json(self, *args):
        return json.loads(self.osc(*args, "-f", "json").stdout)

    def connect(self):
        return _connect(self.clouds, self.cloud)


def _connect(path, cloud):
    from openstack import config as occ
    from openstack import connection
    region = occ.OpenStackConfig(config_files=[path], load_envvars=False).get_one(cloud=cloud)
    return connection.Connection(config=region)


def connect(box, cloud="onebox-demo"):
    """An openstacksdk connection to `box` with one of the clouds `onebox init` wrote."""
    return _connect(box.clouds, cloud)


def public_image(box):
    """A small qcow2 image every project may boot, uploaded by the admin with the CLI."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "tiny.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", path, "64M"], check=True)
        name = f"img-{uuid.uuid4().hex[:6]}"
        img = box.osc_json("image", "create", "--file", path, "--disk-format", "qcow2",
                           "--container-format", "bare", "--public", name)
        assert img["status"] == "active"
        return img
