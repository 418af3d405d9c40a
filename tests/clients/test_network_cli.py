"""The real `openstack` CLI against onebox's Networking API (Neutron v2.0, catalog type
`network`): networks, subnets, ports, routers, security groups and their rules, floating IPs
and quotas, created, listed, shown, changed and deleted as a project member does it, and the
answers to bad input, each checked against what Neutron answers (status, fault type and
message). Servers on these networks: test_network_server_cli.py; what a member of another
project must not do: test_network_attack_cli.py."""

import json
import re
import urllib.request

import pytest

from conftest import FLOATING_RANGE, connect
from netutil import cli_fails, delete, fault, get, post, put, uniq

DEMO = "onebox-demo"


@pytest.fixture
def demo(onebox):
    c = connect(onebox)
    yield c
    c.close()


def osc(box, *args, **kw):
    return box.osc(*args, cloud=DEMO, **kw)


def osc_json(box, *args):
    return box.osc_json(*args, cloud=DEMO)


def make_net(box, cidr, name=None):
    """A network of the demo project with one IPv4 subnet; returns (network, subnet)."""
    net = osc_json(box, "network", "create", name or uniq("net"))
    sub = osc_json(box, "subnet", "create", "--network", net["id"], "--subnet-range", cidr,
                   uniq("sub"))
    return net, sub


def test_the_catalog_names_the_network_service(onebox):
    rows = onebox.osc_json("catalog", "list")
    net = [r for r in rows if r["Type"] == "network"]
    assert len(net) == 1 and net[0]["Name"] == "neutron", rows
    urls = {e["url"].rstrip("/") for e in net[0]["Endpoints"] if e["interface"] == "public"}
    assert urls == {f"{onebox.base}/network"}, net
    # The unversioned root lists v2.0 without a token, as Neutron does.
    with urllib.request.urlopen(onebox.base + "/network/") as r:
        versions = json.load(r)["versions"]
    assert [v["id"] for v in versions] == ["v2.0"] and versions[0]["status"] == "CURRENT"
    aliases = {r["Alias"] for r in onebox.osc_json("extension", "list", "--network")}
    assert {"external-net", "router", "security-group", "quotas"} <= aliases, aliases


def test_network_lifecycle(onebox):
    project = onebox.osc_json("project", "show", "demo")["id"]
    name = uniq("net")
    net = osc_json(onebox, "network", "create", "--description", "first", name)
    assert net["name"] == name and net["description"] == "first"
    assert net["status"] == "ACTIVE" and net["admin_state_up"] is True
    assert net["shared"] is False and net["router:external"] is False
    assert net["project_id"] == project and net["subnets"] == []
    assert isinstance(net["mtu"], int) and net["mtu"] >= 1280

    rows = osc_json(onebox, "network", "list")
    assert name in {r["Name"] for r in rows}
    shown = osc_json(onebox, "network", "show", name)
    assert shown["id"] == net["id"]

    osc(onebox, "network", "set", "--name", name + "-b", "--description", "second", name)
    shown = osc_json(onebox, "network", "show", net["id"])
    assert (shown["name"], shown["description"]) == (name + "-b", "second")
    assert shown["revision_number"] > net["revision_number"]

    osc(onebox, "network", "delete", name + "-b")
    gone = osc(onebox, "network", "show", net["id"], check=False)
    assert gone.returncode != 0 and "No Network found" in gone.stderr, gone.stderr
    assert net["id"] not in {r["ID"] for r in osc_json(onebox, "network", "list")}


def test_subnet_lifecycle(onebox):
    net = osc_json(onebox, "network", "create", uniq("net"))
    name = uniq("sub")
    sub = osc_json(onebox, "subnet", "create", "--network", net["name"], "--subnet-range",
                   "172.20.1.0/24", "--dns-nameserver", "172.20.1.53", name)
    assert sub["cidr"] == "172.20.1.0/24" and sub["ip_version"] == 4
    assert sub["gateway_ip"] == "172.20.1.1"
    assert sub["allocation_pools"] == [{"start": "172.20.1.2", "end": "172.20.1.254"}]
    assert sub["dns_nameservers"] == ["172.20.1.53"] and sub["enable_dhcp"] is True
    assert sub["network_id"] == net["id"]
    assert osc_json(onebox, "network", "show", net["id"])["subnets"] == [sub["id"]]

    rows = osc_json(onebox, "subnet", "list", "--network", net["id"])
    assert [(r["ID"], r["Subnet"]) for r in rows] == [(sub["id"], "172.20.1.0/24")]

    osc(onebox, "subnet", "set", "--name", name + "-b", "--description", "lab", name)
    shown = osc_json(onebox, "subnet", "show", sub["id"])
    assert (shown["name"], shown["description"]) == (name + "-b", "lab")

    # Explicit pools and gateway are kept as given.
    pooled = osc_json(onebox, "subnet", "create", "--network", net["id"], "--subnet-range",
                      "172.20.2.0/24", "--gateway", "172.20.2.254", "--allocation-pool",
                      "start=172.20.2.10,end=172.20.2.20", uniq("sub"))
    assert pooled["gateway_ip"] == "172.20.2.254"
    assert pooled["allocation_pools"] == [{"start": "172.20.2.10", "end": "172.20.2.20"}]

    osc(onebox, "subnet", "delete", name + "-b")
    assert osc(onebox, "subnet", "show", sub["id"], check=False).returncode != 0
    # Deleting the network takes its remaining subnet with it.
    osc(onebox, "network", "delete", net["id"])
    assert osc(onebox, "subnet", "show", pooled["id"], check=False).returncode != 0


def test_subnet_bad_input(onebox, demo):
    net = osc_json(onebox, "network", "create", uniq("net"))
    osc_json(onebox, "subnet", "create", "--network", net["id"], "--subnet-range",
             "172.20.3.0/24", uniq("sub"))
    cases = [
        # (CLI arguments, raw body, status, fault type, part of the message)
        (["--subnet-range", "172.20.4.300/24"], {"cidr": "172.20.4.300/24"}, 400,
         "InvalidInput", "is not in a CIDR format"),
        (["--subnet-range", "172.20.3.128/25"], {"cidr": "172.20.3.128/25"}, 400,
         "InvalidInput", "overlaps with another subnet"),
        (["--subnet-range", "172.20.5.0/24", "--gateway", "172.20.5.255"],
         {"cidr": "172.20.5.0/24", "gateway_ip": "172.20.5.255"}, 400,
         "InvalidInput", "Gateway"),
        (["--subnet-range", "172.20.6.0/24", "--gateway", "172.20.6.5", "--allocation-pool",
          "start=172.20.6.2,end=172.20.6.100"],
         {"cidr": "172.20.6.0/24", "gateway_ip": "172.20.6.5",
          "allocation_pools": [{"start": "172.20.6.2", "end": "172.20.6.100"}]}, 409,
         "GatewayConflictWithAllocationPools", "conflicts with allocation pool"),
        (["--subnet-range", "172.20.7.0/24", "--gateway", "172.20.7.999"],
         {"cidr": "172.20.7.0/24", "gateway_ip": "172.20.7.999"}, 400,
         None, "is not a valid IP address"),
    ]
    for args, body, status, type_, message in cases:
        p = osc(onebox, "subnet", "create", "--network", net["id"], *args, uniq("bad"),
                check=False)
        cli_fails(p, status, message)
        r = post(demo, "/subnets", {"subnet": {"network_id": net["id"], "ip_version": 4,
                                               **body}})
        fault(r, status, type_, message)
    # Nothing was made.
    assert len(osc_json(onebox, "network", "show", net["id"])["subnets"]) == 1
    # A subnet on a network that does not exist.
    r = post(demo, "/subnets", {"subnet": {"network_id": "00000000-0000-0000-0000-000000000000",
                                           "ip_version": 4, "cidr": "172.20.8.0/24"}})
    fault(r, 404, "NetworkNotFound")
    # Unknown attributes are refused, as Neutron refuses them.
    r = post(demo, "/networks", {"network": {"name": "x", "colour": 1}})
    fault(r, 400, None, "Unrecognized attribute(s) 'colour'")


def test_subnet_gateway_outside_the_cidr_is_refused(onebox, demo):
    # onebox's bridge holds the gateway, so it must be in the subnet. (Neutron itself accepts
    # a gateway outside the subnet, as an on-link route, and hands out the whole range.)
    net = osc_json(onebox, "network", "create", uniq("net"))
    p = osc(onebox, "subnet", "create", "--network", net["id"], "--subnet-range",
            "172.20.9.0/24", "--gateway", "172.20.10.1", uniq("sub"), check=False)
    cli_fails(p, 400, "172.20.10.1")
    fault(post(demo, "/subnets", {"subnet": {"network_id": net["id"], "ip_version": 4,
                                             "cidr": "172.20.9.0/24",
                                             "gateway_ip": "172.20.10.1"}}),
          400, "InvalidInput", "172.20.10.1")
    assert osc_json(onebox, "network", "show", net["id"])["subnets"] == []


def test_port_lifecycle(onebox, demo):
    project = onebox.osc_json("project", "show", "demo")["id"]
    net, sub = make_net(onebox, "172.20.11.0/24")
    name = uniq("port")
    port = osc_json(onebox, "port", "create", "--network", net["name"], "--fixed-ip",
                    f"subnet={sub['name']},ip-address=172.20.11.10", name)
    assert port["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "172.20.11.10"}]
    assert port["network_id"] == net["id"] and port["project_id"] == project
    assert re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", port["mac_address"]), port
    assert port["device_id"] == "" and port["device_owner"] == ""
    assert port["admin_state_up"] is True and port["status"] == "DOWN"
    assert len(port["security_group_ids"]) == 1

    # Without a fixed IP, one from the pool.
    auto = osc_json(onebox, "port", "create", "--network", net["id"], uniq("port"))
    ip = auto["fixed_ips"][0]["ip_address"]
    assert re.fullmatch(r"172\.20\.11\.\d+", ip) and ip not in ("172.20.11.1", "172.20.11.10")
    assert auto["mac_address"] != port["mac_address"]

    rows = osc_json(onebox, "port", "list", "--network", net["id"])
    assert {port["id"], auto["id"]} == {r["ID"] for r in rows}
    osc(onebox, "port", "set", "--name", name + "-b", "--description", "web", name)
    shown = osc_json(onebox, "port", "show", port["id"])
    assert (shown["name"], shown["description"]) == (name + "-b", "web")

    # An address in use, and one outside every subnet of the network.
    p = osc(onebox, "port", "create", "--network", net["id"], "--fixed-ip",
            "ip-address=172.20.11.10", uniq("dup"), check=False)
    cli_fails(p, 409, "172.20.11.10")
    r = post(demo, "/ports", {"port": {"network_id": net["id"],
                                       "fixed_ips": [{"ip_address": "172.20.11.10"}]}})
    fault(r, 409, "IpAddressAlreadyAllocated", "172.20.11.10")
    r = post(demo, "/ports", {"port": {"network_id": net["id"], "fixed_ips": [
        {"subnet_id": sub["id"], "ip_address": "172.20.99.10"}]}})
    fault(r, 400, "InvalidIpForSubnet")
    r = post(demo, "/ports", {"port": {"network_id": "00000000-0000-0000-0000-000000000000"}})
    fault(r, 404, "NetworkNotFound")

    # A network with ports cannot go.
    p = osc(onebox, "network", "delete", net["id"], check=False)
    cli_fails(p, 409)
    fault(delete(demo, f"/networks/{net['id']}"), 409, "NetworkInUse")

    osc(onebox, "port", "delete", port["id"], auto["id"])
    assert osc_json(onebox, "port", "list", "--network", net["id"]) == []
    # The address is free again.
    again = osc_json(onebox, "port", "create", "--network", net["id"], "--fixed-ip",
                     "ip-address=172.20.11.10", uniq("port"))
    assert again["fixed_ips"][0]["ip_address"] == "172.20.11.10"
    # No group asked for: the project's default group.
    r = get(demo, "/security-groups?name=default")
    assert r.status_code == 200, r.text
    default = [g for g in r.json()["security_groups"] if g["project_id"] == project]
    assert len(default) == 1 and port["security_group_ids"] == [default[0]["id"]]


def test_router_lifecycle(onebox, demo):
    net, sub = make_net(onebox, "172.20.12.0/24")
    name = uniq("router")
    router = osc_json(onebox, "router", "create", "--description", "edge", name)
    assert router["status"] == "ACTIVE" and router["admin_state_up"] is True
    assert router["external_gateway_info"] in (None, {}) and router["description"] == "edge"
    assert name in {r["Name"] for r in osc_json(onebox, "router", "list")}

    osc(onebox, "router", "add", "subnet", name, sub["id"])
    ports = osc_json(onebox, "port", "list", "--router", name)
    assert len(ports) == 1
    assert ports[0]["Fixed IP Addresses"] == [{"subnet_id": sub["id"],
                                               "ip_address": "172.20.12.1"}]
    iface = osc_json(onebox, "port", "show", ports[0]["ID"])
    assert iface["device_owner"] == "network:router_interface"
    assert iface["device_id"] == router["id"]
    shown = osc_json(onebox, "router", "show", name)
    assert shown["interfaces_info"] == [{"port_id": ports[0]["ID"], "ip_address": "172.20.12.1",
                                         "subnet_id": sub["id"]}]
    # The same subnet twice, and a router or subnet in use.
    r = put(demo, f"/routers/{router['id']}/add_router_interface", {"subnet_id": sub["id"]})
    fault(r, 400, "BadRequest")
    fault(delete(demo, f"/routers/{router['id']}"), 409, "RouterInUse")
    fault(delete(demo, f"/subnets/{sub['id']}"), 409, "SubnetInUse")
    # A gateway on a network that is not external.
    r = put(demo, f"/routers/{router['id']}",
            {"router": {"external_gateway_info": {"network_id": net["id"]}}})
    fault(r, 400, "BadRequest", "is not an external network")

    osc(onebox, "router", "set", "--name", name + "-b", name)
    assert osc_json(onebox, "router", "show", router["id"])["name"] == name + "-b"
    osc(onebox, "router", "remove", "subnet", router["id"], sub["id"])
    assert osc_json(onebox, "port", "list", "--router", router["id"]) == []
    osc(onebox, "router", "delete", router["id"])
    assert osc(onebox, "router", "show", router["id"], check=False).returncode != 0
    osc(onebox, "network", "delete", net["id"])


def test_security_group_lifecycle(onebox, demo):
    project = onebox.osc_json("project", "show", "demo")["id"]
    default = [g for g in osc_json(onebox, "security group", "list")
               if g["Name"] == "default" and g["Project"] == project]
    assert len(default) == 1
    rules = osc_json(onebox, "security group rule", "list", default[0]["ID"])
    # Neutron's default group: all out, and in from members of the group.
    assert sorted((r["Direction"], r["Ethertype"]) for r in rules) == [
        ("egress", "IPv4"), ("egress", "IPv6"), ("ingress", "IPv4"), ("ingress", "IPv6")]
    assert all(r["Remote Security Group"] == default[0]["ID"]
               for r in rules if r["Direction"] == "ingress"), rules

    name = uniq("web")
    sg = osc_json(onebox, "security group", "create", "--description", "ssh in", name)
    assert sg["name"] == name and sg["description"] == "ssh in"
    assert sg["project_id"] == project and sg["stateful"] is True
    assert sorted((r["direction"], r["ethertype"], r["protocol"]) for r in sg["rules"]) == [
        ("egress", "IPv4", None), ("egress", "IPv6", None)]

    ssh = osc_json(onebox, "security group rule", "create", "--protocol", "tcp",
                   "--dst-port", "22", "--remote-ip", "0.0.0.0/0", name)
    assert (ssh["direction"], ssh["ether_type"], ssh["protocol"]) == ("ingress", "IPv4", "tcp")
    assert (ssh["port_range_min"], ssh["port_range_max"]) == (22, 22)
    assert ssh["remote_ip_prefix"] == "0.0.0.0/0" and ssh["security_group_id"] == sg["id"]
    rng = osc_json(onebox, "security group rule", "create", "--protocol", "udp", "--dst-port",
                   "1000:2000", "--remote-ip", "172.20.0.0/16", name)
    assert (rng["port_range_min"], rng["port_range_max"]) == (1000, 2000)
    ping = osc_json(onebox, "security group rule", "create", "--protocol", "icmp",
                    "--icmp-type", "8", "--icmp-code", "0", name)
    assert (ping["port_range_min"], ping["port_range_max"]) == (8, 0)
    out = osc_json(onebox, "security group rule", "create", "--egress", "--ethertype", "IPv6",
                   "--protocol", "tcp", "--dst-port", "443", "--remote-group", default[0]["ID"],
                   name)
    assert out["direction"] == "egress" and out["remote_group_id"] == default[0]["ID"]

    rows = osc_json(onebox, "security group rule", "list", name)
    assert len(rows) == 6
    assert {ssh["id"], rng["id"], ping["id"], out["id"]} <= {r["ID"] for r in rows}
    shown = osc_json(onebox, "security group rule", "show", ssh["id"])
    assert shown["port_range_min"] == 22 and shown["security_group_id"] == sg["id"]

    # The same rule twice.
    p = osc(onebox, "security group rule", "create", "--protocol", "tcp", "--dst-port", "22",
            "--remote-ip", "0.0.0.0/0", name, check=False)
    cli_fails(p, 409)
    r = post(demo, "/security-group-rules", {"security_group_rule": {
        "security_group_id": sg["id"], "direction": "ingress", "ethertype": "IPv4",
        "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
        "remote_ip_prefix": "0.0.0.0/0"}})
    fault(r, 409, "SecurityGroupRuleExists")

    osc(onebox, "security group", "set", "--name", name + "-b", "--description", "web in", name)
    shown = osc_json(onebox, "security group", "show", sg["id"])
    assert (shown["name"], shown["description"]) == (name + "-b", "web in")
    assert len(shown["rules"]) == 6

    osc(onebox, "security group rule", "delete", ssh["id"])
    assert ssh["id"] not in {r["ID"] for r in osc_json(onebox, "security group rule", "list",
                                                        sg["id"])}
    osc(onebox, "security group", "delete", sg["id"])
    assert osc(onebox, "security group", "show", sg["id"], check=False).returncode != 0
    # Its rules went with it.
    fault(get(demo, f"/security-group-rules/{rng['id']}"), 404, "SecurityGroupRuleNotFound")


def test_security_group_rule_bad_input(onebox, demo):
    sg = osc_json(onebox, "security group", "create", uniq("sg"))
    # A port range on a protocol without ports.
    p = osc(onebox, "security group rule", "create", "--protocol", "gre", "--dst-port", "22",
            sg["id"], check=False)
    cli_fails(p, 400, "Ports cannot be specified for protocol")
    base = {"security_group_id": sg["id"], "direction": "ingress"}
    cases = [
        ({"protocol": "gre", "port_range_min": 22, "port_range_max": 22}, 400,
         "SecurityGroupInvalidProtocolForPort"),
        ({"protocol": "tcp", "port_range_min": 80, "port_range_max": 22}, 400,
         "SecurityGroupInvalidPortRange"),
        ({"protocol": "tcp", "port_range_min": 0, "port_range_max": 70000}, 400, None),
        ({"protocol": "foo"}, 400, "SecurityGroupRuleInvalidProtocol"),
        ({"protocol": "tcp", "remote_ip_prefix": "10.0.0.0/33"}, 400, None),
        ({"protocol": "tcp", "direction": "sideways"}, 400, None),
        ({"protocol": "icmp", "port_range_max": 0}, 400, "SecurityGroupMissingIcmpType"),
    ]
    for extra, status, type_ in cases:
        r = post(demo, "/security-group-rules", {"security_group_rule": {**base, **extra}})
        fault(r, status, type_)
    r = post(demo, "/security-group-rules", {"security_group_rule": {
        **base, "security_group_id": "00000000-0000-0000-0000-000000000000"}})
    fault(r, 404, "SecurityGroupNotFound")
    # Only the two egress rules a new group starts with.
    assert len(osc_json(onebox, "security group rule", "list", sg["id"])) == 2


def test_quota_show_has_the_network_quotas(onebox, demo):
    project = onebox.osc_json("project", "show", "demo")["id"]
    q = {r["Resource"]: r["Limit"] for r in onebox.osc_json("quota", "show", project)}
    # python-openstackclient 10.5 prints the network quotas under openstacksdk's names.
    for key in ("networks", "subnets", "ports", "routers", "floating_ips", "security_groups",
                "security_group_rules"):
        assert isinstance(q.get(key), int) and (q[key] > 0 or q[key] == -1), (key, q)
    before = {r["Resource"]: r["In Use"]
              for r in onebox.osc_json("quota", "show", "--usage", "--network", project)}
    net = osc_json(onebox, "network", "create", uniq("net"))
    after = {r["Resource"]: r["In Use"]
             for r in onebox.osc_json("quota", "show", "--usage", "--network", project)}
    assert after["networks"] == before["networks"] + 1, (before, after)
    osc(onebox, "network", "delete", net["id"])

    # The admin sets a limit; past it a member gets Neutron's OverQuota.
    limit = q["networks"]
    try:
        onebox.osc("quota", "set", "--networks", str(before["networks"] + 1), project)
        shown = {r["Resource"]: r["Limit"]
                 for r in onebox.osc_json("quota", "show", "--network", project)}
        assert shown["networks"] == before["networks"] + 1
        osc_json(onebox, "network", "create", uniq("net"))
        p = osc(onebox, "network", "create", uniq("net"), check=False)
        cli_fails(p, 409, "Quota exceeded")
        fault(post(demo, "/networks", {"network": {"name": "over"}}), 409, "OverQuota")
    finally:
        onebox.osc("quota", "set", "--networks", str(limit), project)
    # A member may not change quotas.
    r = put(demo, f"/quotas/{project}", {"quota": {"network": 1000}})
    fault(r, 403, "PolicyNotAuthorized")


def test_external_network_of_the_configured_box(ext_onebox):
    box = ext_onebox
    rows = osc_json(box, "network", "list", "--external")
    assert [r["Name"] for r in rows] == ["public"], rows
    public = osc_json(box, "network", "show", "public")
    assert public["router:external"] is True and public["status"] == "ACTIVE"
    admin_project = box.osc_json("project", "show", "admin")["id"]
    assert public["project_id"] == admin_project
    assert len(public["subnets"]) == 1
    sub = osc_json(box, "subnet", "show", public["subnets"][0])
    assert sub["cidr"] == "192.0.2.0/24" and sub["gateway_ip"] == "192.0.2.1"
    assert sub["allocation_pools"] == [{"start": "192.0.2.100", "end": "192.0.2.120"}]
    assert sub["router:external"] is True


def test_no_external_network_without_the_configuration(onebox):
    assert osc_json(onebox, "network", "list", "--external") == []
    p = osc(onebox, "floating ip", "create", "public", check=False)
    assert p.returncode != 0


def test_floating_ip_lifecycle(ext_onebox):
    box = ext_onebox
    demo = connect(box)
    project = box.osc_json("project", "show", "demo")["id"]
    public = osc_json(box, "network", "show", "public")
    fip = osc_json(box, "floating ip", "create", "--description", "web", "public")
    addr = fip["floating_ip_address"]
    assert addr in FLOATING_RANGE, fip
    assert fip["floating_network_id"] == public["id"] and fip["project_id"] == project
    assert fip["port_id"] is None and fip["fixed_ip_address"] is None
    assert fip["description"] == "web"
    rows = osc_json(box, "floating ip", "list")
    assert [(r["ID"], r["Floating IP Address"]) for r in rows if r["ID"] == fip["id"]] == \
        [(fip["id"], addr)]
    # Shown by address as well as by id.
    assert osc_json(box, "floating ip", "show", addr)["id"] == fip["id"]

    # A port of a network routed to the external one.
    net, sub = make_net(box, "172.20.13.0/24")
    router = osc_json(box, "router", "create", "--external-gateway", "public", uniq("router"))
    gw = router["external_gateway_info"]
    assert gw["network_id"] == public["id"] and gw["enable_snat"] is True
    assert gw["external_fixed_ips"][0]["ip_address"] in FLOATING_RANGE
    assert gw["external_fixed_ips"][0]["ip_address"] != addr
    osc(box, "router", "add", "subnet", router["id"], sub["id"])
    port = osc_json(box, "port", "create", "--network", net["id"], uniq("port"))
    fixed = port["fixed_ips"][0]["ip_address"]

    osc(box, "floating ip", "set", "--port", port["id"], addr)
    shown = osc_json(box, "floating ip", "show", fip["id"])
    assert (shown["port_id"], shown["fixed_ip_address"]) == (port["id"], fixed)
    assert shown["router_id"] == router["id"]
    assert [r["Fixed IP Address"] for r in osc_json(box, "floating ip", "list", "--port",
                                                     port["id"])] == [fixed]
    osc(box, "floating ip", "unset", "--port", addr)
    shown = osc_json(box, "floating ip", "show", fip["id"])
    assert shown["port_id"] is None and shown["fixed_ip_address"] is None

    # Associated at creation.
    second = osc_json(box, "floating ip", "create", "--port", port["id"], "public")
    assert second["port_id"] == port["id"] and second["fixed_ip_address"] == fixed
    assert second["floating_ip_address"] in FLOATING_RANGE
    assert second["floating_ip_address"] not in (addr, gw["external_fixed_ips"][0]["ip_address"])

    osc(box, "floating ip", "delete", addr, second["id"])
    assert osc(box, "floating ip", "show", fip["id"], check=False).returncode != 0
    fault(get(demo, f"/floatingips/{fip['id']}"), 404, "FloatingIPNotFound")
    osc(box, "router", "remove", "subnet", router["id"], sub["id"])
    osc(box, "router", "delete", router["id"])
    demo.close()


def test_floating_ip_bad_input(ext_onebox):
    box = ext_onebox
    demo = connect(box)
    public = osc_json(box, "network", "show", "public")
    net, sub = make_net(box, "172.20.14.0/24")
    # Not an external network.
    p = osc(box, "floating ip", "create", net["id"], check=False)
    cli_fails(p, 400, "is not a valid external network")
    fault(post(demo, "/floatingips", {"floatingip": {"floating_network_id": net["id"]}}),
          400, "BadRequest", "is not a valid external network")
    # A member may not pick the address.
    p = osc(box, "floating ip", "create", "--floating-ip-address", "192.0.2.119", "public",
            check=False)
    cli_fails(p, 403)
    fault(post(demo, "/floatingips", {"floatingip": {"floating_network_id": public["id"],
                                                     "floating_ip_address": "192.0.2.119"}}),
          403, "PolicyNotAuthorized")
    # A port whose network has no router to the external network.
    port = osc_json(box, "port", "create", "--network", net["id"], uniq("port"))
    r = post(demo, "/floatingips", {"floatingip": {"floating_network_id": public["id"],
                                                   "port_id": port["id"]}})
    fault(r, 404, "ExternalGatewayForFloatingIPNotFound")
    # A member may not put ports or subnets on the external network.
    fault(post(demo, "/ports", {"port": {"network_id": public["id"]}}), 403,
          "PolicyNotAuthorized")
    fault(post(demo, "/subnets", {"subnet": {"network_id": public["id"], "ip_version": 4,
                                             "cidr": "198.51.100.0/24"}}), 403,
          "PolicyNotAuthorized")
    demo.close()
