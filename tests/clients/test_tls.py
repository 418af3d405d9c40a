"""The real clients over HTTPS: a onebox of its own whose configuration names a certificate
and key that do not exist yet, so `onebox init` creates the box's CA and the certificate
and writes `cacert` into clouds.yaml. openstacksdk and the openstack CLI verify the server
with that CA alone; without it they refuse the connection. Every server is on the fake
driver; the daemon is stopped by its PID.
"""

import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

import openstack
import pytest

from conftest import ADMIN_PW, DEMO_PW, free_port


@pytest.fixture(scope="module")
def tls_box():
    binary = os.environ.get("ONEBOX_BIN") or shutil.which("onebox")
    assert binary, "set ONEBOX_BIN to the onebox binary"
    root = tempfile.mkdtemp(prefix="onebox-tls-")
    data = os.path.join(root, "data")
    port = free_port()
    config = os.path.join(root, "onebox.toml")
    with open(config, "w") as f:
        f.write(
            f'data_dir = "{data}"\nlisten = "127.0.0.1:{port}"\nfake_driver = true\n'
            f'firmware_dir = "{root}/no-firmware"\n'
            f'[api]\ntls_cert = "{data}/tls/server.crt"\ntls_key = "{data}/tls/server.key"\n'
        )
    env = {**os.environ, "ONEBOX_ADMIN_PASSWORD": ADMIN_PW, "ONEBOX_DEMO_PASSWORD": DEMO_PW,
           "RUST_LOG": "warn"}
    subprocess.run([binary, "--config", config, "init"], check=True, capture_output=True,
                   env=env)
    log = open(os.path.join(root, "onebox.log"), "ab")
    proc = subprocess.Popen([binary, "--config", config, "serve"], stdout=log,
                            stderr=subprocess.STDOUT, env=env)
    clouds = os.path.join(data, "clouds.yaml")
    ca = os.path.join(data, "tls", "ca.crt")
    base = f"https://127.0.0.1:{port}"
    try:
        ctx = ssl.create_default_context(cafile=ca)
        deadline = time.time() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"onebox exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=1, context=ctx) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        yield {"base": base, "clouds": clouds, "ca": ca, "data": data}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def test_clouds_yaml_names_the_box_ca_and_the_keys_are_private(tls_box):
    text = open(tls_box["clouds"]).read()
    assert f"cacert: '{tls_box['ca']}'" in text
    assert f"auth_url: {tls_box['base']}/identity" in text
    for key in ("server.key", "ca.key"):
        mode = os.stat(os.path.join(tls_box["data"], "tls", key)).st_mode & 0o777
        assert mode == 0o600, (key, oct(mode))


def test_openstacksdk_verifies_the_box_with_cacert_and_the_catalog_is_https(tls_box,
                                                                             monkeypatch):
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", tls_box["clouds"])
    conn = openstack.connect(cloud="onebox-admin")
    flavors = [f.name for f in conn.compute.flavors()]
    assert "m1.tiny" in flavors
    for service in conn.service_catalog:
        for ep in service["endpoints"]:
            assert ep["url"].startswith("https://"), ep


def test_a_client_without_the_ca_is_refused(tls_box, monkeypatch):
    # The same cloud without its cacert: the system's trust store does not know the box.
    text = open(tls_box["clouds"]).read()
    stripped = "\n".join(l for l in text.splitlines() if "cacert:" not in l) + "\n"
    path = os.path.join(os.path.dirname(tls_box["clouds"]), "clouds-no-ca.yaml")
    with open(path, "w") as f:
        f.write(stripped)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", path)
    conn = openstack.connect(cloud="onebox-admin")
    with pytest.raises(Exception) as e:
        list(conn.compute.flavors())
    assert "certificate" in str(e.value).lower() or "ssl" in str(e.value).lower(), e.value


def test_the_openstack_cli_issues_a_token_over_https(tls_box):
    exe = os.path.join(os.path.dirname(sys.executable), "openstack")
    if not os.path.exists(exe):
        exe = shutil.which("openstack")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = tls_box["clouds"]
    p = subprocess.run([exe, "--os-cloud", "onebox-demo", "token", "issue", "-f", "value",
                        "-c", "id"], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip()
