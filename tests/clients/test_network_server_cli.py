"""Servers on Neutron networks with the real `openstack` CLI (fake driver): `server create
--network`, `--port`, `--nic net-id=…,v4-fixed-ip=…` and `--security-group`, `server add|remove
port`, `server add|remove security group`, `server add|remove floating ip`, and what Nova's
`addresses` then shows (fixed and floating, with OS-EXT-IPS:type), checked from both sides:
the server and its ports."""

import pytest

from conftest import FLOATING_RANGE, Member, connect, public_image
from netutil import addrs_of, cli_fails, post, server_addresses, uniq, wait_for

DEMO = "onebox-demo"


def osc(box, *args, **kw):
    return box.osc(*args, cloud=DEMO, **kw)


def osc_json(box, *args):
    return box.osc_json(*args, cloud=DEMO)


@pytest.fixture(scope="module")
def image(onebox):
    return public_image(onebox)


@pytest.fixture(scope="module")
def ext_image(ext_onebox):
    return public_image(ext_onebox)


@pytest.fixture(scope="module")
def lan(onebox):
    """A network of the demo project with the subnet 172.21.0.0/24."""
    net = osc_json(onebox, "network", "create", uniq("lan"))
    sub = osc_json(onebox, "subnet", "create", "--network", net["id"], "--subnet-range",
                   "172.21.0.0/24", uniq("lan-sub"))
    return net, sub


def boot(box, image, name, *args):
    s = osc_json(box, "server", "create", "--image", image["id"], "--flavor", "m1.tiny",
                 "--wait", *args, name)
    assert s["status"] == "ACTIVE", s
    return s


def ports_of(box, server_id):
    return osc_json(box, "port", "list", "--device-id", server_id, "--long")


def fixed_ips(port_row):
    return [f["ip_address"] for f in port_row["Fixed IP Addresses"]]


def test_server_on_a_named_network(onebox, image, lan):
    net, sub = lan
    s = boot(onebox, image, uniq("s-net"), "--network", net["name"])
    # The CLI prints the addresses as {network name: [addresses]}.
    addrs = s["addresses"][net["name"]]
    assert len(addrs) == 1 and addrs[0].startswith("172.21.0."), s["addresses"]
    assert addrs[0] != sub["gateway_ip"]
    ports = ports_of(onebox, s["id"])
    assert len(ports) == 1 and fixed_ips(ports[0]) == addrs
    port = osc_json(onebox, "port", "show", ports[0]["ID"])
    assert port["device_owner"].startswith("compute:"), port
    assert port["network_id"] == net["id"]
    # Nova's own view: one fixed address with the port's MAC.
    demo = connect(onebox)
    entries = server_addresses(demo, s["id"])[net["name"]]
    assert [(e["addr"], e["version"], e["OS-EXT-IPS:type"], e["OS-EXT-IPS-MAC:mac_addr"])
            for e in entries] == [(addrs[0], 4, "fixed", port["mac_address"])]
    # The port Nova made goes with the server.
    osc(onebox, "server", "delete", "--wait", s["id"])
    assert ports_of(onebox, s["id"]) == []
    assert osc(onebox, "port", "show", port["id"], check=False).returncode != 0
    demo.close()


def test_server_on_a_port_and_with_a_fixed_ip(onebox, image, lan):
    net, sub = lan
    port = osc_json(onebox, "port", "create", "--network", net["id"], "--fixed-ip",
                    f"subnet={sub['id']},ip-address=172.21.0.20", uniq("p"))
    s = boot(onebox, image, uniq("s-port"), "--port", port["name"])
    assert s["addresses"] == {net["name"]: ["172.21.0.20"]}, s["addresses"]
    shown = osc_json(onebox, "port", "show", port["id"])
    assert shown["device_id"] == s["id"] and shown["device_owner"].startswith("compute:")
    # The port is in use: another server cannot take it.
    p = osc(onebox, "server", "create", "--image", image["id"], "--flavor", "m1.tiny",
            "--port", port["id"], uniq("s-steal"), check=False)
    cli_fails(p, 409)

    nic = boot(onebox, image, uniq("s-nic"), "--nic",
               f"net-id={net['id']},v4-fixed-ip=172.21.0.50")
    assert nic["addresses"] == {net["name"]: ["172.21.0.50"]}, nic["addresses"]
    # That address is taken now.
    p = osc(onebox, "server", "create", "--image", image["id"], "--flavor", "m1.tiny", "--nic",
            f"net-id={net['id']},v4-fixed-ip=172.21.0.50", uniq("s-dup"), check=False)
    cli_fails(p, 400)

    # A port the user made outlives the server, free again; the one Nova made does not.
    osc(onebox, "server", "delete", "--wait", s["id"], nic["id"])
    kept = osc_json(onebox, "port", "show", port["id"])
    assert kept["device_id"] == "" and kept["device_owner"] == ""
    assert kept["fixed_ips"][0]["ip_address"] == "172.21.0.20"
    assert ports_of(onebox, nic["id"]) == []
    osc(onebox, "port", "delete", port["id"])


def test_server_add_and_remove_port(onebox, image, lan):
    net, sub = lan
    s = boot(onebox, image, uniq("s-add"))
    first = s["addresses"]["private"][0]
    extra = osc_json(onebox, "port", "create", "--network", net["id"], "--fixed-ip",
                     f"subnet={sub['id']},ip-address=172.21.0.30", uniq("p"))
    osc(onebox, "server", "add", "port", s["id"], extra["id"])
    shown = wait_for("the added port in the server's addresses",
                     lambda: (lambda a: a if net["name"] in a else None)(
                         osc_json(onebox, "server", "show", s["id"])["addresses"]))
    assert shown == {"private": [first], net["name"]: ["172.21.0.30"]}, shown
    port = osc_json(onebox, "port", "show", extra["id"])
    assert port["device_id"] == s["id"] and port["device_owner"].startswith("compute:")
    assert {p["ID"] for p in ports_of(onebox, s["id"])} >= {extra["id"]}
    assert len(ports_of(onebox, s["id"])) == 2
    interfaces = osc_json(onebox, "port", "list", "--server", s["id"])
    assert len(interfaces) == 2

    osc(onebox, "server", "remove", "port", s["id"], extra["id"])
    shown = wait_for("the removed port gone from the server's addresses",
                     lambda: (lambda a: a if net["name"] not in a else None)(
                         osc_json(onebox, "server", "show", s["id"])["addresses"]))
    assert shown == {"private": [first]}
    port = osc_json(onebox, "port", "show", extra["id"])
    assert port["device_id"] == "" and port["fixed_ips"][0]["ip_address"] == "172.21.0.30"
    assert extra["id"] not in {p["ID"] for p in ports_of(onebox, s["id"])}
    # Removing it again fails.
    p = osc(onebox, "server", "remove", "port", s["id"], extra["id"], check=False)
    assert p.returncode != 0
    osc(onebox, "server", "delete", "--wait", s["id"])
    osc(onebox, "port", "delete", extra["id"])


def test_server_security_groups(onebox, image, lan):
    net, _ = lan
    sg = osc_json(onebox, "security group", "create", uniq("web"))
    s = boot(onebox, image, uniq("s-sg"), "--network", net["id"], "--security-group",
             sg["name"])
    groups = osc_json(onebox, "server", "show", s["id"])["security_groups"]
    assert [g["name"] for g in groups] == [sg["name"]], groups
    port = ports_of(onebox, s["id"])[0]
    assert osc_json(onebox, "port", "show", port["ID"])["security_group_ids"] == [sg["id"]]

    osc(onebox, "server", "add", "security", "group", s["id"], "default")
    groups = osc_json(onebox, "server", "show", s["id"])["security_groups"]
    assert sorted(g["name"] for g in groups) == sorted(["default", sg["name"]]), groups
    port_groups = osc_json(onebox, "port", "show", port["ID"])["security_group_ids"]
    assert len(port_groups) == 2 and sg["id"] in port_groups

    osc(onebox, "server", "remove", "security", "group", s["id"], sg["name"])
    groups = osc_json(onebox, "server", "show", s["id"])["security_groups"]
    assert [g["name"] for g in groups] == ["default"], groups
    assert sg["id"] not in osc_json(onebox, "port", "show", port["ID"])["security_group_ids"]
    # A group the server does not have, and one that does not exist.
    p = osc(onebox, "server", "remove", "security", "group", s["id"], sg["id"], check=False)
    assert p.returncode != 0
    p = osc(onebox, "server", "add", "security", "group", s["id"], uniq("nope"), check=False)
    cli_fails(p, 404)
    # A group in use cannot be deleted.
    osc(onebox, "server", "add", "security", "group", s["id"], sg["id"])
    p = osc(onebox, "security", "group", "delete", sg["id"], check=False)
    cli_fails(p, 409)
    osc(onebox, "server", "delete", "--wait", s["id"])
    osc(onebox, "security", "group", "delete", sg["id"])

    # Without --security-group the server is in the project's default group.
    plain = boot(onebox, image, uniq("s-default"), "--network", net["id"])
    groups = osc_json(onebox, "server", "show", plain["id"])["security_groups"]
    assert [g["name"] for g in groups] == ["default"], groups
    osc(onebox, "server", "delete", "--wait", plain["id"])


def test_server_add_and_remove_floating_ip(ext_onebox, ext_image):
    box = ext_onebox
    demo = connect(box)
    net = osc_json(box, "network", "create", uniq("web"))
    sub = osc_json(box, "subnet", "create", "--network", net["id"], "--subnet-range",
                   "172.22.0.0/24", uniq("web-sub"))
    router = osc_json(box, "router", "create", "--external-gateway", "public", uniq("r"))
    osc(box, "router", "add", "subnet", router["id"], sub["id"])
    s = boot(box, ext_image, uniq("s-fip"), "--network", net["id"])
    fixed = s["addresses"][net["name"]][0]
    fip = osc_json(box, "floating ip", "create", "public")
    addr = fip["floating_ip_address"]

    osc(box, "server", "add", "floating", "ip", s["id"], addr)
    shown = wait_for("the floating IP in the server's addresses",
                     lambda: (lambda a: a if addr in str(a) else None)(
                         osc_json(box, "server", "show", s["id"])["addresses"]))
    assert shown == {net["name"]: [fixed, addr]}, shown
    entries = server_addresses(demo, s["id"])[net["name"]]
    kinds = {e["addr"]: e["OS-EXT-IPS:type"] for e in entries}
    assert kinds == {fixed: "fixed", addr: "floating"}, entries
    assert len({e["OS-EXT-IPS-MAC:mac_addr"] for e in entries}) == 1
    port = ports_of(box, s["id"])[0]
    f = osc_json(box, "floating ip", "show", addr)
    assert (f["port_id"], f["fixed_ip_address"], f["router_id"]) == \
        (port["ID"], fixed, router["id"])
    # The server list shows both.
    row = [r for r in osc_json(box, "server", "list") if r["ID"] == s["id"]][0]
    assert addr in str(row["Networks"]) and fixed in str(row["Networks"])

    osc(box, "server", "remove", "floating", "ip", s["id"], addr)
    shown = wait_for("the floating IP gone from the server's addresses",
                     lambda: (lambda a: a if addr not in str(a) else None)(
                         osc_json(box, "server", "show", s["id"])["addresses"]))
    assert shown == {net["name"]: [fixed]}
    f = osc_json(box, "floating ip", "show", addr)
    assert f["port_id"] is None and f["fixed_ip_address"] is None
    assert addrs_of(server_addresses(demo, s["id"]), "floating") == []

    # Deleting the server leaves the floating IP to its project, unassociated.
    osc(box, "server", "add", "floating", "ip", s["id"], addr)
    wait_for("the floating IP again", lambda: addr in str(
        osc_json(box, "server", "show", s["id"])["addresses"]))
    osc(box, "server", "delete", "--wait", s["id"])
    f = osc_json(box, "floating ip", "show", addr)
    assert f["port_id"] is None and f["floating_ip_address"] in FLOATING_RANGE
    osc(box, "floating ip", "delete", addr)
    osc(box, "router", "remove", "subnet", router["id"], sub["id"])
    osc(box, "router", "delete", router["id"])
    osc(box, "network", "delete", net["id"])
    demo.close()


def test_floating_ip_on_a_server_of_the_private_network(ext_onebox, ext_image):
    # The project's own network reaches the external one without a router of the user's
    # (what openstacksdk's auto_ip relies on).
    box = ext_onebox
    demo = connect(box)
    # No --network: the CLI asks for "auto", the project's own network.
    s = boot(box, ext_image, uniq("s-priv"))
    fixed = s["addresses"]["private"][0]
    fip = osc_json(box, "floating ip", "create", "public")
    addr = fip["floating_ip_address"]
    osc(box, "server", "add", "floating", "ip", s["id"], addr)
    wait_for("the floating IP in the server's addresses",
             lambda: addr in addrs_of(server_addresses(demo, s["id"]), "floating"))
    assert addrs_of(server_addresses(demo, s["id"]), "fixed") == [fixed]
    osc(box, "server", "delete", "--wait", s["id"])
    osc(box, "floating ip", "delete", addr)
    demo.close()


def test_nova_answers_for_networks_it_cannot_use(onebox, image, lan):
    net, _ = lan
    demo = connect(onebox)
    flavor = osc_json(onebox, "flavor", "show", "m1.tiny")["id"]

    def create(networks):
        return post(demo, "/servers", {"server": {
            "name": uniq("s-bad"), "imageRef": image["id"], "flavorRef": flavor,
            "networks": networks}}, service="compute")

    for networks in ([{"uuid": "00000000-0000-0000-0000-000000000000"}],
                     [{"port": "00000000-0000-0000-0000-000000000000"}]):
        r = create(networks)
        assert r.status_code == 400 and "badRequest" in r.json(), (networks, r.status_code,
                                                                   r.text)
    demo.close()


def test_a_new_project_boots_on_its_private_network_by_name(onebox, image):
    # The CLI looks the name up in Neutron before it asks Nova for the server, so the
    # project's network must be there before its first server.
    member = Member(onebox, "netp")
    nets = member.osc_json("network", "list")
    assert [n["Name"] for n in nets] == ["private"], nets
    s = member.osc_json("server", "create", "--image", image["id"], "--flavor", "m1.tiny",
                        "--network", "private", "--wait", uniq("s-first"))
    assert s["status"] == "ACTIVE" and list(s["addresses"]) == ["private"], s
    member.osc("server", "delete", "--wait", s["id"])
