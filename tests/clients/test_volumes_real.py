"""Data on a volume outlives its servers, on real backends through the real `openstack`
CLI: a marker written inside a container on an attached volume is read back by a second
container after the first is gone, and found on the disk a VM guest sees; a marker a VM
guest writes to its volume is read by a second guest. The guests are driven through their
interactive serial consoles (`openstack console url show --serial`).

Needs root and libvirtd (scripts/libvirtd.sh start); skipped otherwise, unless
ONEBOX_REQUIRE_BACKENDS is set."""

import json
import os
import time

from test_consoles import SHELL, console_url, typed
from test_vm import FW, console_until, vmbox  # noqa: F401 - the fixture is used by name

MARKER = "onebox-marker-" + "42"


def wait_volume(box, ref, want, timeout=120):
    deadline = time.time() + timeout
    v = {}
    while time.time() < deadline:
        v = json.loads(box.osc("volume", "show", ref, "-f", "json").stdout)
        if v["status"] == want:
            return v
        assert not v["status"].startswith("error"), v
        time.sleep(0.5)
    raise AssertionError(f"volume {ref} is {v.get('status')}, not {want}")


def container(box, name):
    srv = box.osc_json("server", "create", "--image", "ctr-vol", "--flavor", "m1.tiny",
                       "--nic", "none", "--wait", name)
    console_until(box, srv["id"], "onebox-rootfs: ready", timeout=60)
    return srv["id"]


def vm(box, name):
    ud = os.path.join(box.data_dir, "vol-shell.sh")
    with open(ud, "w") as f:
        f.write(SHELL)
    srv = box.osc_json("server", "create", "--image", "vm-tiny", "--flavor", "vm.tiny",
                       "--user-data", ud, "--config-drive", "True", "--wait", name)
    console_until(box, srv["id"], "user-data-exit=0")
    return srv["id"]


def attach(box, server, volume):
    box.osc("server", "add", "volume", server, volume)
    wait_volume(box, volume, "in-use")


def detach(box, server, volume):
    box.osc("server", "remove", "volume", server, volume)
    wait_volume(box, volume, "available")


def guest_disk(volume_id):
    """A shell snippet naming the guest's disk whose serial is the volume id (as virtio's
    /dev/disk/by-id/virtio-<serial> would), waiting for it to appear."""
    serial = volume_id[:20]
    return ("d=; for i in $(seq 60); do for b in /sys/block/vd*; do "
            f"[ \"$(cat $b/serial 2>/dev/null)\" = \"{serial}\" ] && d=/dev/${{b##*/}}; done; "
            "[ -n \"$d\" ] && break; sleep 1; done; ")


def test_a_volume_keeps_its_data_across_containers_and_vms(vmbox):  # noqa: F811
    box = vmbox
    box.osc("image", "create", "--disk-format", "raw", "--container-format", "bare",
            "--property", "hypervisor_type=lxc", "--file",
            os.path.join(FW, "onebox-rootfs.tar"), "ctr-vol")
    vol = box.osc_json("volume", "create", "--size", "1", "data1")["id"]
    wait_volume(box, vol, "available")

    # A container writes a file on the volume (its file system made at the first attach).
    c1 = container(box, "ctr-writer")
    attach(box, c1, vol)
    shown = box.osc_json("server", "show", c1)
    assert vol in json.dumps(shown.get("volumes_attached")), shown
    typed(console_url(box, "--serial", c1),
          f"echo {MARKER} > /mnt/{vol}/marker && sync && echo written-$((1+1))\n", "written-2")
    detach(box, c1, vol)
    box.osc("server", "delete", "--wait", c1)

    # A second container reads it.
    c2 = container(box, "ctr-reader")
    attach(box, c2, vol)
    typed(console_url(box, "--serial", c2), f"cat /mnt/{vol}/marker\n", MARKER)
    detach(box, c2, vol)
    box.osc("server", "delete", "--wait", c2)

    # A VM guest finds it on the disk whose serial is the volume id (no ext4 in the tiny
    # guest: the bytes are read raw, from the first 256 MiB where ext4 put them (130 MiB in here), cut
    # into words so that grep never holds a long line in the guest's 128 MiB).
    g1 = vm(box, "vm-writer")
    attach(box, g1, vol)
    typed(console_url(box, "--serial", g1),
          guest_disk(vol) + "dd if=$d bs=1M count=256 2>/dev/null | tr -cs 'a-z0-9-' '\\n' | "
          "grep -m1 onebox-marker-4.\n",
          MARKER, timeout=180)

    # A guest writes to a raw volume; a second guest reads what it wrote.
    raw = box.osc_json("volume", "create", "--size", "1", "raw1")["id"]
    wait_volume(box, raw, "available")
    attach(box, g1, raw)
    typed(console_url(box, "--serial", g1),
          guest_disk(raw) + f"echo vm-{MARKER} | dd of=$d conv=fsync 2>/dev/null && "
          "echo dd-$((3+4))\n", "dd-7", timeout=180)
    detach(box, g1, raw)
    detach(box, g1, vol)
    box.osc("server", "delete", "--wait", g1)
    g2 = vm(box, "vm-reader")
    attach(box, g2, raw)
    typed(console_url(box, "--serial", g2),
          guest_disk(raw) + "head -c 64 $d | tr -cs 'a-z0-9-' '\\n' | grep vm-onebox-marker-4.\n",
          "vm-" + MARKER, timeout=180)
    detach(box, g2, raw)
    box.osc("server", "delete", "--wait", g2)
    box.osc("volume", "delete", vol, raw)
