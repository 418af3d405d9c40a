"""Interactive consoles through the real `openstack` CLI and a websocket client, on real
backends: `openstack console url show --serial` gives a URL on onebox's own listener where
a container's shell and a VM guest's serial port answer what is typed, while the console log
keeps recording; `--novnc` gives noVNC's page, whose websocket speaks RFB to the guest. The
refusals a member meets: a bad Origin, a second session, another project's server.

Needs root and libvirtd (scripts/libvirtd.sh start); skipped otherwise, unless
ONEBOX_REQUIRE_BACKENDS is set."""

import os
import time
import urllib.request

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from test_vm import FW, console_until, vmbox  # noqa: F401 - the fixture is used by name

SHELL = "#!/bin/sh\n(setsid /bin/sh -i </dev/ttyS0 >/dev/ttyS0 2>&1 &)\n"


def typed(url, line, needle, origin=None, timeout=60):
    """Types `line` on the console at `url` and reads until `needle` comes back."""
    with ws_connect(url, origin=origin, open_timeout=10) as ws:
        ws.send(line.encode())
        got = b""
        deadline = time.time() + timeout
        while needle.encode() not in got:
            assert time.time() < deadline, f"{needle!r} not read; got {got!r}"
            try:
                msg = ws.recv(timeout=1)
            except TimeoutError:
                continue
            got += msg if isinstance(msg, bytes) else msg.encode()
        return got.decode(errors="replace")


def refused(url, origin=None):
    try:
        with ws_connect(url, origin=origin, open_timeout=10):
            return None
    except InvalidStatus as e:
        return e.response.status_code


def console_url(box, kind, server, cloud="onebox-admin", check=True):
    p = box.osc("console", "url", "show", kind, server, "-f", "json", cloud=cloud, check=check)
    if not check and p.returncode != 0:
        return None
    import json
    return json.loads(p.stdout)["url"]


def test_a_containers_shell_answers_on_its_serial_console(vmbox):  # noqa: F811
    box = vmbox
    box.osc("image", "create", "--disk-format", "raw", "--container-format", "bare",
            "--property", "hypervisor_type=lxc", "--file",
            os.path.join(FW, "onebox-rootfs.tar"), "ctr-console")
    srv = box.osc_json("server", "create", "--image", "ctr-console", "--flavor", "m1.tiny",
                       "--nic", "none", "--wait", "ctr-console")
    assert srv["status"] == "ACTIVE"
    console_until(box, srv["id"], "onebox-rootfs: ready", timeout=60)
    url = console_url(box, "--serial", srv["id"])
    assert url.startswith(f"ws://127.0.0.1:{box.port}/console/serial?token="), url
    out = typed(url, "echo onebox-$((6*7)) in $(hostname)\n", "onebox-42 in ctr-console")
    assert "onebox-42" in out
    console_until(box, srv["id"], "onebox-42 in ctr-console", timeout=10)

    # A page of another site may not open it; a second session waits for the first.
    assert refused(url, origin="https://evil.example") == 403
    with ws_connect(url, open_timeout=10):
        assert refused(url) == 409
    # A container has no screen: Nova's answer for a backend without the console.
    p = box.osc("console", "url", "show", "--novnc", srv["id"], check=False)
    assert p.returncode != 0 and "501" in p.stderr, p.stderr
    box.osc("server", "delete", "--wait", srv["id"])
    assert refused(url) in (401, 409)


def test_a_guests_serial_port_and_screen_through_the_proxy(vmbox):  # noqa: F811
    box = vmbox
    ud = os.path.join(box.data_dir, "console-shell.sh")
    with open(ud, "w") as f:
        f.write(SHELL)
    srv = box.osc_json("server", "create", "--image", "vm-tiny", "--flavor", "vm.tiny",
                       "--user-data", ud, "--config-drive", "True", "--wait", "vm-console")
    console_until(box, srv["id"], "user-data-exit=0")
    url = console_url(box, "--serial", srv["id"])
    typed(url, "echo onebox-vm-$((6*7))\n", "onebox-vm-42", origin=f"http://127.0.0.1:{box.port}")
    console_until(box, srv["id"], "onebox-vm-42", timeout=10)

    # noVNC's page, and its websocket speaking RFB to the guest's screen.
    page = console_url(box, "--novnc", srv["id"])
    assert page.startswith(f"http://127.0.0.1:{box.port}/console/vnc/vnc_lite.html?path="), page
    with urllib.request.urlopen(page, timeout=10) as r:
        assert r.status == 200 and b"noVNC" in r.read()
    token = page.rsplit("token%3D", 1)[1]
    ws = f"ws://127.0.0.1:{box.port}/console/vnc/websockify?token={token}"
    with ws_connect(ws, open_timeout=10, subprotocols=["binary"]) as c:
        banner = c.recv(timeout=10)
        assert bytes(banner).startswith(b"RFB 003."), banner

    # Another project's member gets no URL for it.
    demo = console_url(box, "--serial", srv["id"], cloud="onebox-demo", check=False)
    assert demo is None
    box.osc("server", "delete", "--wait", srv["id"])
