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
