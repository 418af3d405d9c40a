"""Real traffic through the networking service, as root, with real containers and a real VM on
one project network, all driven by the `openstack` CLI:

- security groups: a rule lets tcp in from one group only; a member of that group (a
  container and the VM) gets through, a guest outside it is dropped; the filter is stateful
  (replies pass, a guest's own connections out pass) and removing the rule cuts a live
  connection it had allowed, as Neutron's firewall does;
- a floating IP on the external network (a veth the test makes, its far end in a namespace
  playing the LAN) reaches the guest's port from outside, and disassociating it cuts it;
- deleting the allowing rule from the kernel's table by hand makes the allowed connection
  fail: the assertions depend on onebox's rules, not on luck.

Nothing leaves the box: the "outside" is a network namespace the test makes. Skipped without
root, unless ONEBOX_REQUIRE_BACKENDS=1 (CI) makes that a failure.
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import Onebox, free_port
from test_containers import build_rootfs, init_pid, wait

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FW = os.path.join(REPO, "firmware", "build")
TAG = f"{os.getpid() % 10000:04d}"
UPLINK = f"obxu{TAG}"
OUTSIDE_IF = f"obxo{TAG}"
OUTSIDE_NS = f"obt-out-{TAG}"
SUBNET = "10.197.0.0/24"


def missing():
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("nft", "ip", "nsenter", "busybox", "virsh"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (scripts/setup.sh)"
    r = subprocess.run(["virsh", "-q", "-c", "qemu:///system", "version"], capture_output=True)
    if r.returncode != 0:
        return "libvirtd does not answer (scripts/libvirtd.sh start)"
    return None


def sh(*cmd, check=True):
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


# A client run inside a network namespace (a container's, by its init's pid, or the
# outside's): connects (from the source address given third, if any), sends, and prints
# what came back, or FAIL.
PROBE = r"""
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
source = (sys.argv[3], 0) if len(sys.argv) > 3 else None
try:
    s = socket.create_connection((host, port), timeout=2, source_address=source)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    s.settimeout(2)
    got = b""
    while True:  # to the end: the headers and the body may come in separate segments
        d = s.recv(4096)
        if not d:
            break
        got += d
    print(got.decode(errors="replace"))
except OSError as e:
    print("FAIL", e)
"""

# An echo server that keeps each connection open (run in A's namespace).
ECHO = r"""
import socket, sys, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(sys.argv[1]))); srv.listen(8)
def serve(c):
    while True:
        d = c.recv(100)
        if not d:
            return
        c.sendall(d)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


def in_ns_of(pid):
    return ["nsenter", "-t", str(pid), "-n"]


def probe(prefix, host, port):
    return subprocess.run(prefix + ["python3", "-c", PROBE, host, str(port)],
                          capture_output=True, text=True, timeout=20).stdout


@pytest.fixture(scope="module")
def netbox():
    why = missing()
    if why:
        if os.environ.get("ONEBOX_REQUIRE_BACKENDS"):
            pytest.fail(f"prerequisites missing: {why}")
        pytest.skip(why)
    files = [os.path.join(FW, f"onebox-tiny.{x}") for x in ("vmlinux", "initrd", "qcow2")]
    if not all(os.path.exists(f) for f in files):
        subprocess.run([os.path.join(REPO, "firmware", "build-guest.sh")], check=True)
    binary = os.environ.get("ONEBOX_BIN") or shutil.which("onebox")
    data_dir = tempfile.mkdtemp(prefix="onebox-traffic-")
    parent = f"onebox-traffic-{os.getpid()}"
    config = os.path.join(data_dir, "onebox.toml")
    box = Onebox(binary, data_dir, free_port())
    box.fake = False
    box.env["ONEBOX_CONFIG"] = config
    tables_before = nft_tables()
    try:
        # The uplink: a veth whose far end is the LAN of a namespace.
        sh("ip", "netns", "add", OUTSIDE_NS)
        sh("ip", "link", "add", UPLINK, "type", "veth", "peer", "name", OUTSIDE_IF)
        sh("ip", "link", "set", OUTSIDE_IF, "netns", OUTSIDE_NS)
        sh("ip", "addr", "add", "198.18.77.1/24", "dev", UPLINK)
        sh("ip", "link", "set", UPLINK, "up")
        outside = ["ip", "netns", "exec", OUTSIDE_NS]
        sh(*outside, "ip", "addr", "add", "198.18.77.2/24", "dev", OUTSIDE_IF)
        sh(*outside, "ip", "link", "set", OUTSIDE_IF, "up")
        sh(*outside, "ip", "link", "set", "lo", "up")
        with open(config, "w") as f:
            f.write(
                "[compute]\npower_sync_interval_secs = 3600\n"
                f"[container]\ncgroup_parent = \"{parent}\"\nstop_timeout_secs = 3\n"
                f"[network]\nnat_uplink = \"{UPLINK}\"\nexternal_cidr = \"198.18.77.0/24\"\n"
                "external_gateway = \"198.18.77.2\"\n"
                "floating_range = \"198.18.77.100-198.18.77.110\"\n")
        box.init()
        box.start()
        with tempfile.TemporaryDirectory() as d:
            tarball = os.path.join(d, "rootfs.tar")
            build_rootfs(tarball)
            box.osc("image", "create", "--disk-format", "raw", "--container-format", "bare",
                    "--property", "hypervisor_type=lxc", "--public", "--file", tarball, "rootfs")
        kernel = box.osc_json("image", "create", "--disk-format", "aki", "--container-format",
                              "aki", "--public", "--file", files[0], "tr-kernel")
        ramdisk = box.osc_json("image", "create", "--disk-format", "ari", "--container-format",
                               "ari", "--public", "--file", files[1], "tr-ramdisk")
        box.osc("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                "--public", "--file", files[2], "--property", f"kernel_id={kernel['id']}",
                "--property", f"ramdisk_id={ramdisk['id']}", "tr-tiny")
        box.osc("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1", "tr.vm")
        yield box
    finally:
        clean_up(box, config, parent, tables_before)


def nft_tables():
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    return {tuple(line.split()[1:3]) for line in out.splitlines() if line.startswith("table ")}


def bridge_name(network_id):
    """hostnet::bridge_name: `obr` and the first 11 hex digits of the network's id."""
    return "obr" + "".join(c for c in network_id if c in "0123456789abcdefABCDEF")[:11]


def our_bridges(data_dir):
    """The bridges of this box's networks (read from its database, which outlives a crash)."""
    try:
        db = sqlite3.connect(f"file:{os.path.join(data_dir, 'onebox.db')}?mode=ro", uri=True)
        try:
            ids = [r[0] for r in db.execute("SELECT id FROM net_networks")]
        finally:
            db.close()
    except sqlite3.Error:
        return set()
    return {bridge_name(i) for i in ids} & set(os.listdir("/sys/class/net"))


def clean_up(box, config, parent, tables_before):
    """Leaves the host as it was, whatever state the test left the box in: the guests
    (destroyed through the API when onebox still answers, else by `onebox teardown
    --purge`), dnsmasq, this box's bridges only (another box's stay), the nft tables onebox
    made, the namespace and the uplink (its addresses go with it), the cgroups."""
    env = {**os.environ, "ONEBOX_CONFIG": config}
    try:
        if box.proc and box.proc.poll() is None:
            for s in box.osc_json("server", "list", "--all-projects", check=False) or []:
                box.osc("server", "delete", "--wait", s["ID"], check=False)
    except Exception:  # noqa: BLE001 - best effort: the teardown below destroys the rest
        pass
    box.stop()
    if os.path.exists(os.path.join(box.data_dir, "onebox.db")):
        subprocess.run([box.binary, "teardown", "--purge", "--keep-network", "--data-dir",
                        box.data_dir], capture_output=True, env=env, timeout=120)
    for br in our_bridges(box.data_dir):
        subprocess.run(["ip", "link", "del", br], capture_output=True)
    for family, name in nft_tables() - tables_before:
        if name.startswith("onebox"):
            subprocess.run(["nft", "delete", "table", family, name], capture_output=True)
    subprocess.run(["ip", "netns", "del", OUTSIDE_NS], capture_output=True)
    subprocess.run(["ip", "link", "del", UPLINK], capture_output=True)
    for ctrl in ["memory", "cpu", "cpuacct", "pids", "freezer", "devices", ""]:
        p = os.path.join("/sys/fs/cgroup", ctrl, parent)
        if os.path.isdir(p):
            for c in os.listdir(p):
                if os.path.isdir(os.path.join(p, c)):
                    os.rmdir(os.path.join(p, c))
            os.rmdir(p)
    shutil.rmtree(box.data_dir, ignore_errors=True)


def address(box, server):
    shown = box.osc_json("server", "show", server, cloud="onebox-demo")
    addrs = shown["addresses"]
    if isinstance(addrs, dict):
        return [a for v in addrs.values() for a in v]
    return re.findall(r"\d+\.\d+\.\d+\.\d+", addrs)


def sg_rule_handle(group_id, needle):
    """The handle of the rule of `group_id`'s ingress chain that contains `needle`."""
    out = sh("nft", "-a", "list", "table", "inet", "onebox_sg").stdout
    chain = None
    for line in out.splitlines():
        m = re.match(r"\s*chain (\S+) \{", line)
        if m:
            chain = m.group(1)
            continue
        if chain and group_id.replace("-", "_") in chain.replace("-", "_") and chain.endswith("_in") \
                and needle in line:
            h = re.search(r"# handle (\d+)", line)
            if h:
                return chain, h.group(1)
    raise AssertionError(f"no rule with {needle!r} for group {group_id} in:\n{out}")


def test_security_groups_and_floating_ips_carry_real_traffic(netbox):
    box = netbox
    demo = {"cloud": "onebox-demo"}
    net = box.osc_json("network", "create", "tr-net", **demo)
    box.osc_json("subnet", "create", "--network", "tr-net", "--subnet-range", SUBNET, "tr-sub", **demo)
    web = box.osc_json("security group", "create", "web", **demo)
    box.osc_json("security group", "create", "clients", **demo)
    rule = box.osc_json("security group rule", "create", "--ingress", "--protocol", "tcp",
                        "--dst-port", "8080", "--remote-group", "clients", "web", **demo)
    echo_rule = box.osc_json("security group rule", "create", "--ingress", "--protocol", "tcp",
                             "--dst-port", "9000", "--remote-group", "clients", "web", **demo)
    box.osc_json("router", "create", "tr-router", **demo)
    box.osc("router", "set", "--external-gateway", "public", "tr-router", **demo)
    box.osc("router", "add", "subnet", "tr-router", "tr-sub", **demo)

    def container(name, group):
        s = box.osc_json("server", "create", "--image", "rootfs", "--flavor", "m1.tiny",
                         "--network", "tr-net", "--security-group", group, "--wait", name, **demo)
        assert s["status"] == "ACTIVE"
        return s["id"]

    a = container("tr-a", "web")
    b = container("tr-b", "clients")
    c = container("tr-c", "default")
    a_addr = address(box, a)[0]
    assert a_addr.startswith("10.197.0."), a_addr
    pid_a, pid_b, pid_c = (init_pid(box, x) for x in (a, b, c))

    # The VM is a client too: its user data asks A and prints what it got on the console.
    ud = os.path.join(box.data_dir, "vm-ud.sh")
    with open(ud, "w") as f:
        f.write("#!/bin/sh\nfor i in $(seq 1 60); do\n"
                # busybox 1.35's `wget -T` crashes: `timeout` bounds it instead.
                f"  if timeout 5 wget -q -O- http://{a_addr}:8080/ | grep -q hello; then\n"
                "    echo onebox-test: vm-reached-a > /dev/console; exit 0; fi\n"
                "  sleep 2\ndone\necho onebox-test: vm-never-reached-a > /dev/console\n")
    vm = box.osc_json("server", "create", "--image", "tr-tiny", "--flavor", "tr.vm",
                      "--network", "tr-net", "--security-group", "clients", "--user-data", ud,
                      "--wait", "tr-vm", **demo)
    assert vm["status"] == "ACTIVE"

    # A member of `clients` gets through; a guest only in `default` does not.
    assert wait(lambda: "hello from tr-a" in probe(in_ns_of(pid_b), a_addr, 8080), 20), \
        "a container in the allowed group reaches A"
    assert "FAIL" in probe(in_ns_of(pid_c), a_addr, 8080), "a guest outside the group is dropped"
    # Stateful: `clients` has no ingress rule at all, yet B got A's answer above.
    deadline = time.time() + 240
    text = ""
    while time.time() < deadline:
        text = box.osc("console", "log", "show", "tr-vm", **demo, check=False).stdout
        if "vm-reached-a" in text or "vm-never-reached-a" in text:
            break
        time.sleep(3)
    assert "onebox-test: vm-reached-a" in text, f"the VM in `clients` reaches A:\n{text[-2000:]}"

    # Removing a rule cuts the live connection it allowed.
    echo_a = subprocess.Popen(in_ns_of(pid_a) + ["python3", "-c", ECHO, "9000"])
    try:
        time.sleep(0.5)
        client = subprocess.Popen(
            in_ns_of(pid_b) + ["python3", "-u", "-c", r"""
import socket, sys, time
s = socket.create_connection((sys.argv[1], 9000), timeout=2)
for i in range(200):
    try:
        s.sendall(b"x"); s.settimeout(1.5); ok = s.recv(1) == b"x"
    except OSError:
        ok = False
    print("ok" if ok else "cut", flush=True)
    time.sleep(0.1)
""", a_addr], stdout=subprocess.PIPE, text=True)
        first = [client.stdout.readline().strip() for _ in range(3)]
        assert first == ["ok"] * 3, first
        box.osc("security group rule", "delete", echo_rule["id"], **demo)
        seen = []
        for _ in range(40):
            line = client.stdout.readline().strip()
            seen.append(line)
            if line == "cut":
                break
        assert "cut" in seen, f"the established connection survived its rule: {seen}"
        client.kill()
        client.wait()
    finally:
        echo_a.kill()
        echo_a.wait()

    # A floating IP reaches A's port from outside; disassociating it cuts it.
    fip = box.osc_json("floating ip", "create", "public", **demo)["floating_ip_address"]
    assert fip.startswith("198.18.77."), fip
    outside = ["ip", "netns", "exec", OUTSIDE_NS]
    assert "FAIL" in probe(outside, fip, 8080), "nothing answers before the association"
    box.osc("server", "add", "floating ip", "tr-a", fip, **demo)
    shown = box.osc_json("server", "show", "tr-a", **demo)
    assert fip in str(shown["addresses"]), shown["addresses"]
    # From outside, the rule of `web` (from `clients` only) would drop it: open 8080 to all.
    world = box.osc_json("security group rule", "create", "--ingress", "--protocol", "tcp",
                         "--dst-port", "8080", "--remote-ip", "0.0.0.0/0", "web", **demo)
    assert wait(lambda: "hello from tr-a" in probe(outside, fip, 8080), 20), \
        "the floating IP reaches the guest from outside"
    assert "FAIL" in probe(outside, a_addr, 8080), "the fixed address is not reachable from outside"
    # C was kept out by the groups alone: the rule open to all lets it in too.
    assert "hello from tr-a" in probe(in_ns_of(pid_c), a_addr, 8080)
    box.osc("server", "remove", "floating ip", "tr-a", fip, **demo)
    assert wait(lambda: "FAIL" in probe(outside, fip, 8080), 10), "disassociated: cut"
    box.osc("security group rule", "delete", world["id"], **demo)

    # The kernel's rule is what lets B in: delete it by hand and B is dropped.
    assert "hello from tr-a" in probe(in_ns_of(pid_b), a_addr, 8080)
    chain, handle = sg_rule_handle(web["id"], "8080")
    sh("nft", "delete", "rule", "inet", "onebox_sg", chain, "handle", handle)
    assert "FAIL" in probe(in_ns_of(pid_b), a_addr, 8080), \
        "without the kernel rule the allowed connection fails"
    del rule, net
    for s in ("tr-vm", "tr-a", "tr-b", "tr-c"):
        box.osc("server", "delete", "--wait", s, **demo)


def test_nothing_from_outside_reaches_a_guest_without_a_floating_ip(netbox):
    box = netbox
    demo = {"cloud": "onebox-demo"}
    box.osc_json("network", "create", "tr-iso", **demo)
    box.osc_json("subnet", "create", "--network", "tr-iso", "--subnet-range", "10.198.0.0/24",
                 "tr-iso-sub", **demo)
    open_all = box.osc_json("security group", "create", "open", **demo)
    box.osc_json("security group rule", "create", "--ingress", "--protocol", "tcp",
                 "--dst-port", "8080", "--remote-ip", "0.0.0.0/0", open_all["id"], **demo)
    s = box.osc_json("server", "create", "--image", "rootfs", "--flavor", "m1.tiny",
                     "--network", "tr-iso", "--security-group", "open", "--wait", "tr-iso-a", **demo)
    addr = address(box, s["id"])[0]
    # Even with a route to it and a rule open to the world, the outside cannot reach it.
    outside = ["ip", "netns", "exec", OUTSIDE_NS]
    sh(*outside, "ip", "route", "replace", "10.198.0.0/24", "via", "198.18.77.1")
    assert "FAIL" in probe(outside, addr, 8080)
    # And its port is where its address is: the host itself still reaches it.
    with socket.create_connection((addr, 8080), timeout=5) as c:
        c.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert b"hello" in c.recv(4096)
    box.osc("server", "delete", "--wait", "tr-iso-a", **demo)


# kill -9 in the middle of networking calls: the database and the kernel agree afterwards.

def token(box, cloud):
    return box.osc("token", "issue", "-f", "value", "-c", "id", cloud=cloud).stdout.strip()


def api(box, tok, method, path, body=None, timeout=15):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(box.base + path, data=data, method=method,
                                 headers={"X-Auth-Token": tok, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


def kernel_and_database_agree(box, admin, vms):
    """Every port with port security and groups has its chains and nothing else has; every
    associated floating IP has its DNAT rule and /32, nothing remains of the others; this
    box's bridges and dnsmasq are those of the networks with servers (with VMs)."""
    ports = api(box, admin, "GET", "/network/v2.0/ports")["ports"]
    filtered = {f["ip_address"] for p in ports
                if p.get("port_security_enabled") and p.get("security_groups")
                for f in p["fixed_ips"] if ":" not in f["ip_address"]}
    sg = sh("nft", "list", "table", "inet", "onebox_sg").stdout
    for d in ("in", "out"):
        chains = {".".join(m) for m in re.findall(rf"chain p_(\d+)_(\d+)_(\d+)_(\d+)_{d} \{{", sg)}
        assert chains == filtered, f"{d} chains {sorted(chains)} != ports {sorted(filtered)}"
        mapped = set(re.findall(rf"(\d+\.\d+\.\d+\.\d+) : goto p_[\d_]+_{d}\b", sg))
        assert mapped == filtered, f"{d} map {sorted(mapped)} != ports {sorted(filtered)}"
    fips = api(box, admin, "GET", "/network/v2.0/floatingips")["floatingips"]
    routers = api(box, admin, "GET", "/network/v2.0/routers")["routers"]
    host = sh("nft", "list", "table", "inet", "onebox").stdout
    for f in fips:
        a = f["floating_ip_address"]
        dnat = re.findall(rf"ip daddr {re.escape(a)} dnat ip to (\S+)", host)
        if f["port_id"]:
            assert dnat and set(dnat) == {f["fixed_ip_address"]}, (f, dnat)
        else:
            assert not dnat, f"disassociated {a} still DNATed to {dnat}"
    want = {f["floating_ip_address"] for f in fips if f["port_id"]}
    want |= {x["ip_address"] for r in routers for x in
             ((r.get("external_gateway_info") or {}).get("external_fixed_ips") or [])}
    shown = json.loads(sh("ip", "-j", "addr", "show", "dev", UPLINK).stdout)
    on_uplink = {a["local"] for i in shown for a in i["addr_info"]
                 if a["family"] == "inet" and a["prefixlen"] == 32}
    assert on_uplink == want, f"/32s on the uplink {sorted(on_uplink)} != {sorted(want)}"
    served = {p["network_id"] for p in ports if p["device_owner"].startswith("compute:")}
    assert our_bridges(box.data_dir) == {bridge_name(n) for n in served}
    with_vms = {p["network_id"] for p in ports if p["device_id"] in vms}
    dhcp = os.path.join(box.data_dir, "dhcp") + "/"
    running = set()
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if args and args[0].endswith("dnsmasq") and any(dhcp in a for a in args):
            running |= {a.split("=", 1)[1] for a in args if a.startswith("--interface=")}
    assert running == {bridge_name(n) for n in with_vms}, running


def test_kill_9_mid_network_calls_leaves_kernel_and_database_in_agreement(netbox):
    box = netbox
    demo = {"cloud": "onebox-demo"}
    net = box.osc_json("network", "create", "kc-net", **demo)
    box.osc_json("subnet", "create", "--network", "kc-net", "--subnet-range", "10.199.0.0/24",
                 "kc-sub", **demo)
    grp = box.osc_json("security group", "create", "kc", **demo)
    box.osc_json("security group rule", "create", "--ingress", "--protocol", "tcp",
                 "--dst-port", "22", "--remote-group", "kc", "kc", **demo)
    box.osc_json("router", "create", "kc-router", **demo)
    box.osc("router", "set", "--external-gateway", "public", "kc-router", **demo)
    box.osc("router", "add", "subnet", "kc-router", "kc-sub", **demo)
    box.osc_json("server", "create", "--image", "rootfs", "--flavor", "m1.tiny", "--network",
                 "kc-net", "--security-group", "kc", "--wait", "kc-ctr", **demo)
    vm = box.osc_json("server", "create", "--image", "tr-tiny", "--flavor", "tr.vm", "--network",
                      "kc-net", "--security-group", "kc", "--wait", "kc-vm", **demo)
    vms = {vm["id"]}
    admin, user = token(box, "onebox-admin"), token(box, "onebox-demo")
    targets = [api(box, user, "POST", "/network/v2.0/ports", {"port": {
        "network_id": net["id"], "security_groups": [grp["id"]]}})["port"]["id"]
        for _ in range(3)]
    fips = [api(box, user, "POST", "/network/v2.0/floatingips", {"floatingip": {
        "floating_network_id": box.osc_json("network", "show", "public")["id"]}})
        ["floatingip"]["id"] for _ in range(3)]
    kernel_and_database_agree(box, admin, vms)

    for rnd, delay in enumerate((0.3, 1.0, 2.0)):
        stop = threading.Event()
        calls, errors = [], []

        def ports():
            made = []
            while not stop.is_set():
                try:
                    p = api(box, user, "POST", "/network/v2.0/ports", {"port": {
                        "network_id": net["id"], "security_groups": [grp["id"]]}})
                    made.append(p["port"]["id"])
                    calls.append("port")
                    if len(made) % 2 == 0:
                        api(box, user, "DELETE", f"/network/v2.0/ports/{made.pop(0)}")
                except urllib.error.HTTPError as e:
                    errors.append(f"port: {e.code} {e.read()[:200]!r}")
                    return
                except (OSError, http.client.HTTPException):  # the kill
                    return

        def floating(k):
            i = 0
            while not stop.is_set():
                i += 1
                port = targets[(i + k) % len(targets)] if i % 2 else None
                try:
                    api(box, user, "PUT", f"/network/v2.0/floatingips/{fips[k]}",
                        {"floatingip": {"port_id": port}})
                    calls.append("fip")
                except urllib.error.HTTPError as e:
                    if e.code != 409:  # 409: another floating IP holds that port meanwhile
                        errors.append(f"floating IP: {e.code} {e.read()[:200]!r}")
                        return
                except (OSError, http.client.HTTPException):  # the kill
                    return

        workers = [threading.Thread(target=ports) for _ in range(2)]
        workers += [threading.Thread(target=floating, args=(k,)) for k in range(len(fips))]
        for w in workers:
            w.start()
        time.sleep(delay)
        box.proc.send_signal(signal.SIGKILL)
        box.proc.wait()
        box.log.close()
        stop.set()
        for w in workers:
            w.join(30)
        assert calls, f"round {rnd}: no call went through before the kill"
        assert not errors, errors
        print(f"round {rnd}: killed after {delay}s, {calls.count('port')} port creates and "
              f"{calls.count('fip')} floating IP updates done")
        box.start()
        kernel_and_database_agree(box, admin, vms)
        # And the restarted box goes on applying changes.
        api(box, user, "PUT", f"/network/v2.0/floatingips/{fips[0]}",
            {"floatingip": {"port_id": None}})
        kernel_and_database_agree(box, admin, vms)

    for s in ("kc-ctr", "kc-vm"):
        box.osc("server", "delete", "--wait", s, **demo)
    kernel_and_database_agree(box, admin, set())



def probe_from(pid, src, host, port):
    """`probe` from a container's namespace, bound to the source address `src`."""
    return subprocess.run(in_ns_of(pid) + ["python3", "-c", PROBE, host, str(port), src],
                          capture_output=True, text=True, timeout=20).stdout


def dnsmasq_args(bridge):
    """The command line of the dnsmasq serving `bridge`, or []."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if args and args[0].endswith("dnsmasq") and f"--interface={bridge}" in args:
            return args
    return []


def test_subnet_options_and_address_pairs_follow_the_api(netbox):
    box = netbox
    demo = {"cloud": "onebox-demo"}
    net = box.osc_json("network", "create", "ap-net", **demo)
    box.osc_json("subnet", "create", "--network", "ap-net", "--subnet-range", "10.196.0.0/24",
                 "--dns-nameserver", "10.196.0.53",
                 "--host-route", "destination=192.168.99.0/24,gateway=10.196.0.254",
                 "ap-sub", **demo)
    box.osc_json("security group", "create", "ap-open", **demo)
    box.osc_json("security group rule", "create", "--ingress", "--protocol", "tcp",
                 "--dst-port", "8080", "--remote-ip", "0.0.0.0/0", "ap-open", **demo)

    def server(name, image, flavor):
        s = box.osc_json("server", "create", "--image", image, "--flavor", flavor,
                         "--network", "ap-net", "--security-group", "ap-open", "--wait",
                         name, **demo)
        assert s["status"] == "ACTIVE"
        return s["id"]

    p = server("ap-p", "rootfs", "m1.tiny")
    q = server("ap-q", "rootfs", "m1.tiny")
    server("ap-vm", "tr-tiny", "tr.vm")
    pid_p = init_pid(box, p)

    # The subnet's DNS server and host route inside the container.
    with open(f"/proc/{pid_p}/root/etc/resolv.conf") as f:
        assert "nameserver 10.196.0.53" in f.read()
    routes = sh(*in_ns_of(pid_p), "ip", "-4", "route").stdout
    assert "192.168.99.0/24 via 10.196.0.254" in routes, routes
    # The VM's dnsmasq offers them, and follows a subnet update at once.
    bridge = bridge_name(net["id"])
    args = dnsmasq_args(bridge)
    assert "--dhcp-option=6,10.196.0.53" in args, args
    assert any("192.168.99.0/24,10.196.0.254" in a for a in args), args
    box.osc("subnet", "set", "--no-dns-nameservers", "--dns-nameserver", "10.196.0.54",
            "ap-sub", **demo)
    assert wait(lambda: "--dhcp-option=6,10.196.0.54" in dnsmasq_args(bridge), 10), \
        dnsmasq_args(bridge)
    box.osc("subnet", "set", "--no-dhcp", "ap-sub", **demo)
    assert wait(lambda: not dnsmasq_args(bridge), 10), "DHCP off: no dnsmasq"
    box.osc("subnet", "set", "--dhcp", "ap-sub", **demo)
    assert wait(lambda: dnsmasq_args(bridge), 10), "DHCP on again"

    # An address of the container's own is a spoof until the port allows it as a pair.
    q_addr = address(box, q)[0]
    vip = "10.196.0.100"
    sh(*in_ns_of(pid_p), "ip", "addr", "add", f"{vip}/32", "dev", "eth0")
    assert "hello from ap-q" in probe(in_ns_of(pid_p), q_addr, 8080), "its own address works"
    assert "FAIL" in probe_from(pid_p, vip, q_addr, 8080), "no pair: dropped"
    listed = box.osc_json("port", "list", "--server", "ap-p", **demo)[0]
    port, mac = listed["ID"], listed["MAC Address"]
    box.osc("port", "set", "--allowed-address", f"ip-address={vip}", port, **demo)
    assert wait(lambda: "hello from ap-q" in probe_from(pid_p, vip, q_addr, 8080), 10), \
        "the pair's address reaches a neighbour"
    # The CLI removes a pair only when it names the MAC the port shows (as with Neutron).
    box.osc("port", "unset", "--allowed-address", f"ip-address={vip},mac-address={mac}", port,
            **demo)
    assert wait(lambda: "FAIL" in probe_from(pid_p, vip, q_addr, 8080), 10), \
        "the pair removed: dropped again"
    for s in ("ap-p", "ap-q", "ap-vm"):
        box.osc("server", "delete", "--wait", s, **demo)
