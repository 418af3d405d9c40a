"""An unmodified Ansible playbook (tests/clients/ansible/network.yml) with the openstack.cloud
collection as the `ansible` package on PyPI ships it, against the box with the external
network: a network, subnet, router with a gateway and an interface, security group and rules,
a server with a floating IP, a server with the server module's default auto_ip, and the ports
of a server. The second run changes nothing.

Ansible runs from its own virtualenv (ONEBOX_ANSIBLE_VENV, else `.venv-ansible` at the
repository's root), which tests/clients/ansible/setup-venv.sh makes: ansible-core and the
collections copied from the `ansible` package (requirements-ansible.txt says why it pins an
older openstacksdk than the CLI's)."""

import json
import os
import subprocess
import tempfile
import time

import pytest

from conftest import FLOATING_RANGE, public_image

HERE = os.path.dirname(os.path.abspath(__file__))
PLAYBOOK = os.path.join(HERE, "ansible", "network.yml")
DEMO = "onebox-demo"


def ansible_venv():
    venv = os.environ.get("ONEBOX_ANSIBLE_VENV") or os.path.join(HERE, "..", "..",
                                                                 ".venv-ansible")
    if not os.path.exists(os.path.join(venv, "bin", "ansible-playbook")):
        if os.environ.get("ONEBOX_REQUIRE_ANSIBLE"):
            pytest.fail(f"no ansible-playbook in {venv}")
        pytest.skip(f"no ansible-playbook in {venv} (tests/clients/ansible/setup-venv.sh)")
    return os.path.abspath(venv)


@pytest.fixture(scope="module")
def runs(ext_onebox):
    """Both runs of the playbook: (first, second), each the json callback's document with
    the seconds it took."""
    venv = ansible_venv()
    image = public_image(ext_onebox)
    home = tempfile.mkdtemp(prefix="onebox-ansible-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ANSIBLE_"))}
    env.update({
        "OS_CLIENT_CONFIG_FILE": ext_onebox.clouds,
        "ANSIBLE_HOME": home,
        "ANSIBLE_COLLECTIONS_PATH": os.path.join(venv, "collections"),
        "ANSIBLE_LOCAL_TEMP": os.path.join(home, "tmp"),
        "ANSIBLE_PYTHON_INTERPRETER": os.path.join(venv, "bin", "python"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
        "ANSIBLE_NOCOLOR": "1",
        "PATH": os.path.join(venv, "bin") + os.pathsep + env.get("PATH", ""),
    })
    out = []
    for _ in range(2):
        start = time.time()
        p = subprocess.run(
            [os.path.join(venv, "bin", "ansible-playbook"), "-i", "localhost,", "-c", "local",
             PLAYBOOK, "-e", f"cloud={DEMO}", "-e", f"image={image['id']}"],
            capture_output=True, text=True, env=env, timeout=600)
        took = time.time() - start
        try:
            doc = json.loads(p.stdout)
        except json.JSONDecodeError:
            raise AssertionError(f"ansible-playbook printed no json ({p.returncode}):\n"
                                 f"{p.stdout}\n{p.stderr}")
        doc["seconds"] = took
        doc["returncode"] = p.returncode
        doc["stderr"] = p.stderr
        out.append(doc)
        if p.returncode != 0:
            break
    return out


def results(doc):
    """{task name: the task's result on localhost} (a looped task's result holds `results`)."""
    return {t["task"]["name"]: t["hosts"]["localhost"] for t in doc["plays"][0]["tasks"]}


def failed(doc):
    return {name: r.get("msg") or r for name, r in results(doc).items()
            if r.get("failed") or r.get("unreachable")}


def test_the_playbook_builds_the_network_and_servers(ext_onebox, runs):
    first = runs[0]
    assert first["returncode"] == 0 and not failed(first), (failed(first), first["stderr"])
    stats = first["stats"]["localhost"]
    assert stats["failures"] == 0 and stats["changed"] >= 8, stats
    r = results(first)
    box = ext_onebox

    net = box.osc_json("network", "show", "ansible-net", cloud=DEMO)
    assert r["Network"]["network"]["id"] == net["id"] and r["Network"]["changed"]
    sub = box.osc_json("subnet", "show", "ansible-subnet", cloud=DEMO)
    assert sub["cidr"] == "172.26.0.0/24" and sub["network_id"] == net["id"]
    assert sub["dns_nameservers"] == ["172.26.0.53"] and sub["gateway_ip"] == "172.26.0.1"

    router = box.osc_json("router", "show", "ansible-router", cloud=DEMO)
    public = box.osc_json("network", "show", "public", cloud=DEMO)
    gw = router["external_gateway_info"]
    assert gw["network_id"] == public["id"]
    assert gw["external_fixed_ips"][0]["ip_address"] in FLOATING_RANGE
    assert [(i["subnet_id"], i["ip_address"]) for i in router["interfaces_info"]] == [
        (sub["id"], "172.26.0.1")]

    rules = box.osc_json("security group rule", "list", "ansible-web", cloud=DEMO)
    ingress = sorted((x["IP Protocol"], x["Port Range"]) for x in rules
                     if x["Direction"] == "ingress")
    assert ingress == [("icmp", ""), ("tcp", "22:22"), ("tcp", "80:80")], rules

    server = box.osc_json("server", "show", "ansible-web", cloud=DEMO)
    assert server["status"] == "ACTIVE"
    assert [g["name"] for g in server["security_groups"]] == ["ansible-web"]
    fip = r["Floating IP for it"]["floating_ip"]
    addr = fip["floating_ip_address"]
    assert addr in FLOATING_RANGE
    fixed = [a for a in server["addresses"]["ansible-net"] if a != addr]
    assert server["addresses"] == {"ansible-net": fixed + [addr]} and len(fixed) == 1
    assert fixed[0].startswith("172.26.0.")

    ports = r["Ports of the first server"]["ports"]
    assert [p["fixed_ips"][0]["ip_address"] for p in ports] == fixed
    assert fip["port_id"] == ports[0]["id"]
    sg = box.osc_json("security group", "show", "ansible-web", cloud=DEMO)
    assert ports[0]["security_group_ids"] == [sg["id"]]

    # The module's default auto_ip gave the other server a floating IP of its own.
    auto = box.osc_json("server", "show", "ansible-auto", cloud=DEMO)
    assert auto["status"] == "ACTIVE"
    floating = [a for a in auto["addresses"]["private"] if a in FLOATING_RANGE]
    assert len(floating) == 1 and floating[0] != addr, auto["addresses"]
    assert r["Server on the project's own network, with the module's default auto_ip"][
        "changed"]


def test_a_second_run_changes_nothing(runs, ext_onebox):
    assert len(runs) == 2, "the first run failed"
    second = runs[1]
    assert second["returncode"] == 0 and not failed(second), (failed(second), second["stderr"])
    # The server task without `security_groups` reports a change on its second run: the
    # module's default (`[]`) makes it remove the `default` group the server was created
    # with, as it does against Neutron; the server and its floating IP stay (checked
    # below). Every other task must be a no-op.
    auto = "Server on the project's own network, with the module's default auto_ip"
    changed = {name: res for name, res in results(second).items()
               if res.get("changed") and name != auto}
    assert not changed, list(changed)
    first_auto, second_auto = results(runs[0])[auto], results(second)[auto]
    assert first_auto["server"]["id"] == second_auto["server"]["id"]
    assert first_auto["server"]["addresses"] == second_auto["server"]["addresses"]
    shown = ext_onebox.osc_json("server", "show", "ansible-auto", cloud=DEMO)
    assert not shown.get("security_groups"), shown.get("security_groups")
    # Time taken, for the record (pytest -rA shows it).
    print(f"ansible-playbook: first run {runs[0]['seconds']:.1f} s, "
          f"second run {second['seconds']:.1f} s")
