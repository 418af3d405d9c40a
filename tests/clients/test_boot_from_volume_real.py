"""Boot from volume on a real VM through the real `openstack` CLI: `server create
--boot-from-volume 1` makes a volume of the image and the guest boots from it; what the guest
writes to its root volume outlives the server (delete_on_termination false) and the next
server, booted from that volume with `--block-device` and delete_on_termination true, reads
it; deleting that server deletes the volume.

Needs root and libvirtd (scripts/libvirtd.sh start); skipped otherwise, unless
ONEBOX_REQUIRE_BACKENDS is set."""

import json
import os
import time

from test_consoles import SHELL, console_url, typed
from test_vm import console_until, virsh, vmbox  # noqa: F401 - the fixture is used by name
from test_volumes_real import wait_volume

MARKER = "bfv-marker-" + "7"
# Past the image's 64 MiB file system, so the marker never touches a file.
OFFSET_MIB = 512


def user_data(box):
    ud = os.path.join(box.data_dir, "bfv-shell.sh")
    with open(ud, "w") as f:
        f.write(SHELL)
    return ud


def domain_disks(server_id):
    return virsh("domblklist", "--details", f"onebox-{server_id}")


def test_a_guest_boots_from_a_volume_that_outlives_it(vmbox):  # noqa: F811
    box = vmbox
    ud = user_data(box)
    s1 = box.osc_json("server", "create", "--image", "vm-tiny", "--flavor", "vm.tiny",
                      "--boot-from-volume", "1", "--user-data", ud, "--config-drive", "True",
                      "--wait", "bfv-one")
    shown = box.osc_json("server", "show", s1["id"])
    attached = shown.get("volumes_attached") or []
    assert len(attached) == 1, shown
    vol = attached[0]["id"]
    # The guest's root disk is the volume: its file is the domain's vda, and the guest
    # finds the image's file system (label onebox-root) there.
    disks = domain_disks(s1["id"])
    assert f"volumes/{vol}.raw" in disks and "vda" in disks, disks
    console_until(box, s1["id"], "root-disk=/dev/vda")
    console_until(box, s1["id"], "user-data-exit=0")
    v = wait_volume(box, vol, "in-use")
    assert str(v["bootable"]).lower() == "true", v
    # The guest writes past its file system, straight to the volume.
    typed(console_url(box, "--serial", s1["id"]),
          f"echo {MARKER} | dd of=/dev/vda bs=1M seek={OFFSET_MIB} conv=fsync 2>/dev/null "
          "&& echo dd-$((3+4))\n", "dd-7", timeout=180)
    # The root volume cannot be detached while the server lives.
    p = box.osc("server", "remove", "volume", s1["id"], vol, check=False)
    assert p.returncode != 0
    box.osc("server", "delete", "--wait", s1["id"])
    wait_volume(box, vol, "available")

    # A second server boots from the same volume, to be deleted with it.
    s2 = box.osc_json("server", "create", "--flavor", "vm.tiny", "--block-device",
                      f"uuid={vol},source_type=volume,destination_type=volume,boot_index=0,"
                      "delete_on_termination=true",
                      "--user-data", ud, "--config-drive", "True", "--wait", "bfv-two")
    console_until(box, s2["id"], "user-data-exit=0")
    typed(console_url(box, "--serial", s2["id"]),
          f"dd if=/dev/vda bs=1M skip={OFFSET_MIB} count=1 2>/dev/null | head -c 64 | "
          "tr -cs 'a-z0-9-' '\\n' | grep bfv-marker-.\n", MARKER, timeout=180)
    box.osc("server", "delete", "--wait", s2["id"])
    vols = json.loads(box.osc("volume", "list", "-f", "json").stdout)
    for _ in range(100):
        if all(x["ID"] != vol for x in vols):
            break
        time.sleep(0.2)
        vols = json.loads(box.osc("volume", "list", "-f", "json").stdout)
    assert all(x["ID"] != vol for x in vols), vols
    assert not os.path.exists(os.path.join(box.data_dir, "volumes", f"{vol}.raw"))
