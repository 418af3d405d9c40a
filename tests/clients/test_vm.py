"""Real VMs through the real `openstack` CLI: onebox without the fake driver, libvirt and
QEMU booting the tiny guest (firmware/build-guest.sh) from images uploaded with
`openstack image create`. The guest prints what it received on its serial console, which
`openstack console log show` returns: its address, its key and the hash of its user data,
read from the metadata service or from a config drive.

Needs root and libvirtd (scripts/libvirtd.sh start). Skipped otherwise, unless
ONEBOX_REQUIRE_BACKENDS is set (CI), which makes a missing prerequisite a failure.
"""

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import Onebox, free_port

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FW = os.path.join(REPO, "firmware", "build")


def missing():
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("virsh") is None:
        return "virsh is missing (scripts/setup.sh)"
    r = subprocess.run(["virsh", "-q", "-c", "qemu:///system", "version"], capture_output=True)
    if r.returncode != 0:
        return "libvirtd does not answer (scripts/libvirtd.sh start)"
    return None


@pytest.fixture(scope="module")
def vmbox():
    why = missing()
    if why:
        if os.environ.get("ONEBOX_REQUIRE_BACKENDS"):
            pytest.fail(f"VM backend prerequisites missing: {why}")
        pytest.skip(why)
    files = [os.path.join(FW, f"onebox-tiny.{x}") for x in ("vmlinux", "initrd", "qcow2")]
    if not all(os.path.exists(f) for f in files):
        subprocess.run([os.path.join(REPO, "firmware", "build-guest.sh")], check=True)
    binary = os.environ.get("ONEBOX_BIN") or shutil.which("onebox")
    # onebox puts the metadata address on lo when the host lacks it; the test takes it away
    # again if it was not there before.
    had_metadata_addr = "169.254.169.254/32" in subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "dev", "lo"], capture_output=True, text=True).stdout
    data_dir = tempfile.mkdtemp(prefix="onebox-vm-")
    links_before = set(os.listdir("/sys/class/net"))
    box = Onebox(binary, data_dir, free_port())
    box.fake = False
    # The periodic power-state sync is an hour away: what a guest does by itself reaches
    # the API through libvirt's lifecycle events alone.
    config = os.path.join(data_dir, "onebox.toml")
    with open(config, "w") as f:
        f.write("[compute]\npower_sync_interval_secs = 3600\n")
    box.env["ONEBOX_CONFIG"] = config
    try:
        box.init()
        box.start()
        kernel = box.osc_json("image", "create", "--disk-format", "aki", "--container-format",
                              "aki", "--file", files[0], "vm-tiny-kernel")
        ramdisk = box.osc_json("image", "create", "--disk-format", "ari", "--container-format",
                               "ari", "--file", files[1], "vm-tiny-ramdisk")
        box.osc("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                "--file", files[2], "--property", f"kernel_id={kernel['id']}",
                "--property", f"ramdisk_id={ramdisk['id']}", "vm-tiny")
        box.osc("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1", "vm.tiny")
        yield box
    finally:
        try:
            for s in box.osc_json("server", "list", "--all-projects"):
                box.osc("server", "delete", "--wait", s["ID"], check=False)
        except Exception:  # noqa: BLE001 - best effort before the stop
            pass
        box.stop()
        left = sweep(data_dir, links_before)
        shutil.rmtree(data_dir, ignore_errors=True)
        if not had_metadata_addr:
            subprocess.run(["ip", "addr", "del", "169.254.169.254/32", "dev", "lo"],
                           capture_output=True)
    assert not left, f"left behind after the VM tests: {left}"


def sweep(data_dir, links_before):
    """What the box's servers left once all were deleted (domains of this box, network links,
    dnsmasq processes, instance files), removed so that a failed run does not spoil the
    next one, and returned so that the run still fails."""
    left = []
    for name in virsh("list", "--all", "--name").split():
        if name.startswith("onebox-") and data_dir in virsh("dumpxml", name):
            left.append(f"domain {name}")
            virsh("destroy", name)
            virsh("undefine", "--managed-save", name)
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if os.path.basename(cmd.split(" ")[0]) == "dnsmasq" and data_dir in cmd:
            left.append(f"dnsmasq {pid}")
            os.kill(int(pid), signal.SIGTERM)
    for n in set(os.listdir("/sys/class/net")) - links_before:
        left.append(f"link {n}")
        subprocess.run(["ip", "link", "del", n], capture_output=True)
    inst = os.path.join(data_dir, "instances")
    if os.path.isdir(inst):
        left += [f"instance files {n}" for n in os.listdir(inst)]
    return left


def console_until(box, server, needle, timeout=180):
    deadline = time.time() + timeout
    text = ""
    while time.time() < deadline:
        text = box.osc("console", "log", "show", server, check=False).stdout
        if needle in text:
            return text
        time.sleep(2)
    raise AssertionError(f"{needle!r} not on the console of {server}:\n{text}")


def ed25519_public_key(name):
    """An OpenSSH ed25519 public key line (the key itself need not be usable)."""
    import base64
    import struct

    def string(b):
        return struct.pack(">I", len(b)) + b

    point = hashlib.sha256(name.encode()).digest()
    blob = string(b"ssh-ed25519") + string(point)
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} {name}@test"


def boot_and_check(box, name, config_drive, expect_source):
    keyfile = os.path.join(box.data_dir, f"{name}.pub")
    pub = ed25519_public_key(name)
    with open(keyfile, "w") as f:
        f.write(pub + "\n")
    box.osc("keypair", "create", "--public-key", keyfile, f"{name}-key")
    user_data = f"#!/bin/sh\necho onebox-test: user data of {name} ran\n"
    udfile = os.path.join(box.data_dir, f"{name}.ud")
    with open(udfile, "w") as f:
        f.write(user_data)
    args = ["server", "create", "--image", "vm-tiny", "--flavor", "vm.tiny",
            "--key-name", f"{name}-key", "--user-data", udfile, "--wait"]
    if config_drive:
        args += ["--config-drive", "True"]
    server = box.osc_json(*args, name)
    assert server["status"] == "ACTIVE"
    shown = box.osc_json("server", "show", server["id"])
    addrs = shown["addresses"]
    ip = list(addrs.values())[0][0] if isinstance(addrs, dict) else addrs.split("=")[1].split(",")[0]
    text = console_until(box, server["id"], "onebox-guest: ready")
    assert f"onebox-guest: ip={ip}" in text, text
    assert f"onebox-guest: config={expect_source}" in text, text
    assert f"onebox-guest: uuid={server['id']}" in text, text
    assert f"onebox-guest: public-key={pub}" in text, text
    sha = hashlib.sha256(user_data.encode()).hexdigest()
    assert f"onebox-guest: user-data-sha256={sha}" in text, text
    assert f"onebox-test: user data of {name} ran" in text, text
    return server["id"]


def test_guest_reads_key_and_user_data_from_the_metadata_service(vmbox):
    sid = boot_and_check(vmbox, "vm-md", False, "metadata-service")

    # Rescue through the CLI: the guest boots a fresh rescue disk, its own disk second.
    dom = f"onebox-{sid}"
    boots = vmbox.osc("console", "log", "show", sid).stdout.count("onebox-guest: booted")
    vmbox.osc("server", "rescue", "--password", "rescue-pw-1", sid)
    wait_status(vmbox, sid, "RESCUE")
    xml = virsh("dumpxml", dom)
    assert "/disk.rescue'" in xml and "/disk'" in xml, xml
    assert xml.index("/disk.rescue'") < xml.index("/disk'"), "the rescue disk boots first"
    deadline = time.time() + 180
    while vmbox.osc("console", "log", "show", sid).stdout.count("onebox-guest: booted") <= boots:
        assert time.time() < deadline, "the rescue system did not boot"
        time.sleep(2)
    vmbox.osc("server", "unrescue", sid)
    wait_status(vmbox, sid, "ACTIVE")
    assert "disk.rescue" not in virsh("dumpxml", dom)
    assert not os.path.exists(os.path.join(vmbox.data_dir, "instances", sid, "disk.rescue"))

    vmbox.osc("server", "delete", "--wait", sid)
    assert sid not in subprocess.run(["virsh", "-q", "-c", "qemu:///system", "list", "--all",
                                      "--name"], capture_output=True, text=True).stdout
    assert not os.path.exists(os.path.join(vmbox.data_dir, "instances", sid))


def test_guest_reads_key_and_user_data_from_a_config_drive(vmbox):
    sid = boot_and_check(vmbox, "vm-cd", True, "config-drive:")
    # Stop from the API: the guest gets the ACPI power button and the server shows SHUTOFF.
    vmbox.osc("server", "stop", sid)
    deadline = time.time() + 120
    while vmbox.osc_json("server", "show", sid)["status"] != "SHUTOFF":
        assert time.time() < deadline, "server did not reach SHUTOFF"
        time.sleep(1)
    vmbox.osc("server", "delete", "--wait", sid)
    assert not os.path.exists(os.path.join(vmbox.data_dir, "instances", sid))


def virsh(*args):
    return subprocess.run(["virsh", "-q", "-c", "qemu:///system", *args],
                          capture_output=True, text=True).stdout.strip()


def crash_and_restart(box):
    box.proc.send_signal(signal.SIGKILL)
    box.proc.wait()
    box.log.close()
    box.start()


def wait_status(box, sid, want, timeout=120):
    deadline = time.time() + timeout
    while True:
        s = box.osc_json("server", "show", sid)
        if s["status"] == want and not s.get("OS-EXT-STS:task_state"):
            return s
        assert time.time() < deadline, f"{sid} is {s['status']}/{s.get('OS-EXT-STS:task_state')}"
        time.sleep(1)


def test_kill_9_mid_spawn_after_boot_and_mid_delete(vmbox):
    box = vmbox
    # A running guest: a restart adopts it without restarting it.
    a = box.osc_json("server", "create", "--image", "vm-tiny", "--flavor", "vm.tiny", "--wait",
                     "vm-adopt")["id"]
    console_until(box, a, "onebox-guest: ready")
    dom_a = f"onebox-{a}"
    domid = virsh("domid", dom_a)
    boots = box.osc("console", "log", "show", a).stdout.count("onebox-guest: booted")

    # A build caught mid-spawn: its instance directory exists, the task has not finished.
    b = box.osc_json("server", "create", "--image", "vm-tiny", "--flavor", "vm.tiny",
                     "vm-midspawn")["id"]
    deadline = time.time() + 30
    while not os.path.exists(os.path.join(box.data_dir, "instances", b)):
        assert time.time() < deadline, "the spawn never started"
        time.sleep(0.02)
    crash_and_restart(box)

    s = box.osc_json("server", "show", b)
    assert not s.get("OS-EXT-STS:task_state"), s
    if s["status"] == "ERROR":
        # The interrupted build left nothing in libvirt or on disk.
        assert b not in virsh("list", "--all", "--name")
        assert not os.path.exists(os.path.join(box.data_dir, "instances", b))
    else:
        assert s["status"] == "ACTIVE", s
    # The running guest was adopted, not restarted.
    assert wait_status(box, a, "ACTIVE")
    assert virsh("domid", dom_a) == domid, "the guest was restarted"
    assert box.osc("console", "log", "show", a).stdout.count("onebox-guest: booted") == boots

    # A delete caught mid-flight is finished by the restart.
    box.osc("server", "delete", a)
    crash_and_restart(box)
    deadline = time.time() + 120
    while box.osc("server", "show", a, check=False).returncode == 0:
        assert time.time() < deadline, "the interrupted delete was not finished"
        time.sleep(1)
    assert dom_a not in virsh("list", "--all", "--name")
    assert not os.path.exists(os.path.join(box.data_dir, "instances", a))

    box.osc("server", "delete", "--wait", b)
    assert b not in virsh("list", "--all", "--name")
    assert not os.path.exists(os.path.join(box.data_dir, "instances", b))


def test_kill_9_mid_resize_rolls_the_resize_back(vmbox):
    box = vmbox
    box.osc("flavor", "create", "--vcpus", "1", "--ram", "192", "--disk", "2", "vm.small")
    # A bystander that must not be restarted by the crash.
    a = box.osc_json("server", "create", "--image", "vm-tiny", "--flavor", "vm.tiny", "--wait",
                     "vm-bystander")["id"]
    r = box.osc_json("server", "create", "--image", "vm-tiny", "--flavor", "vm.tiny", "--wait",
                     "vm-resized")["id"]
    console_until(box, a, "onebox-guest: ready")
    console_until(box, r, "onebox-guest: ready")
    domid_a = virsh("domid", f"onebox-{a}")
    boots_r = box.osc("console", "log", "show", r).stdout.count("onebox-guest: booted")

    # Caught once the backend has stopped the guest and started keeping its old disk.
    box.osc("server", "resize", "--flavor", "vm.small", r)
    inst = os.path.join(box.data_dir, "instances", r)
    kept = os.path.join(inst, "domain.resize-backup.xml")
    deadline = time.time() + 120
    while not os.path.exists(kept):
        assert time.time() < deadline, "the resize never reached the backend"
        time.sleep(0.02)
    crash_and_restart(box)

    # Rolled back: the old flavor, running again from the old disk, nothing left to revert.
    s = wait_status(box, r, "ACTIVE")
    assert s["flavor"] == "vm.tiny" or "vm.tiny" in str(s["flavor"]), s["flavor"]
    assert not s.get("fault"), s
    dom_r = f"onebox-{r}"
    assert virsh("domstate", dom_r) == "running"
    assert "<memory unit='KiB'>131072</memory>" in virsh("dumpxml", "--inactive", dom_r)
    for f in ("disk.resize-backup", "disk.resize-backup.part", "domain.resize-backup.xml"):
        assert not os.path.exists(os.path.join(inst, f)), f
    deadline = time.time() + 180
    while box.osc("console", "log", "show", r).stdout.count("onebox-guest: ready") <= boots_r:
        assert time.time() < deadline, "the rolled-back guest did not boot again"
        time.sleep(2)
    # The bystander was adopted, not restarted.
    assert virsh("domid", f"onebox-{a}") == domid_a, "the bystander was restarted"

    # The server resizes cleanly afterwards, and delete leaves nothing behind.
    box.osc("server", "resize", "--flavor", "vm.small", "--wait", r)
    assert wait_status(box, r, "VERIFY_RESIZE")
    box.osc("server", "resize", "confirm", r)
    wait_status(box, r, "ACTIVE")
    assert "<memory unit='KiB'>196608</memory>" in virsh("dumpxml", "--inactive", dom_r)
    for sid in (a, r):
        box.osc("server", "delete", "--wait", sid)
        assert f"onebox-{sid}" not in virsh("list", "--all", "--name")
        assert not os.path.exists(os.path.join(box.data_dir, "instances", sid))


def test_guest_shut_down_from_inside_shows_shutoff(vmbox):
    box = vmbox
    ud = os.path.join(box.data_dir, "poweroff.ud")
    with open(ud, "w") as f:
        f.write("#!/bin/sh\n(sleep 2; poweroff -f) &\n")
    sid = box.osc_json("server", "create", "--image", "vm-tiny", "--flavor", "vm.tiny",
                       "--user-data", ud, "--wait", "vm-selfstop")["id"]
    console_until(box, sid, "onebox-guest: ready")
    # The guest powers itself off; libvirt's lifecycle event makes the server SHUTOFF.
    dom = f"onebox-{sid}"
    deadline = time.time() + 120
    while virsh("domstate", dom) != "shut off":
        assert time.time() < deadline, box.osc("console", "log", "show", sid).stdout
        time.sleep(0.5)
    off = time.time()
    wait_status(box, sid, "SHUTOFF", timeout=30)
    assert time.time() - off < 15, "SHUTOFF came late: was the lifecycle event lost?"
    box.osc("server", "delete", "--wait", sid)
