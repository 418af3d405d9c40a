"""What a member of another project must not do with a project's networking, through the real
`openstack` CLI and raw requests with its token: see, change, delete or use project A's
network, subnet, port, security group, router or floating IP (Neutron answers 404, or 403
where Neutron's policy refuses before looking, and lists leave them out); create an external
or a shared network; attach a server to A's port or network, or put A's floating IP or
security group on its own server (Nova answers 400 or 404). The box has the external network,
so routers with gateways and floating IPs exist."""

import pytest

from conftest import Member, connect, public_image
from netutil import delete, fault, get, post, put, uniq

DEMO = "onebox-demo"


@pytest.fixture(scope="module")
def box(ext_onebox):
    return ext_onebox


@pytest.fixture(scope="module")
def image(box):
    return public_image(box)


@pytest.fixture(scope="module")
def mallory(box):
    """A member of project B."""
    return Member(box, "mallory")


@pytest.fixture(scope="module")
def victim(box, image):
    """Project A's (demo's) network, subnet, router with a gateway, port, security group,
    floating IP, and a server on its private network (made with openstacksdk: what is under
    test is the other project's view)."""
    a = connect(box)
    net = a.network.create_network(name=uniq("a-net"))
    sub = a.network.create_subnet(network_id=net.id, ip_version=4, cidr="172.23.0.0/24",
                                  name=uniq("a-sub"))
    public = a.network.find_network("public")
    router = a.network.create_router(name=uniq("a-router"),
                                     external_gateway_info={"network_id": public.id})
    a.network.add_interface_to_router(router, subnet_id=sub.id)
    port = a.network.create_port(network_id=net.id, name=uniq("a-port"))
    sg = a.network.create_security_group(name=uniq("a-sg"))
    rule = a.network.create_security_group_rule(
        security_group_id=sg.id, direction="ingress", ethertype="IPv4", protocol="tcp",
        port_range_min=22, port_range_max=22)
    fip = a.network.create_ip(floating_network_id=public.id)
    server = box.osc_json("server", "create", "--image", image["id"], "--flavor", "m1.tiny",
                          "--wait", uniq("a-server"), cloud=DEMO)
    private = a.network.find_network("private")
    yield {"conn": a,
           "net": {"id": net.id, "name": net.name}, "sub": {"id": sub.id},
           "router": {"id": router.id, "name": router.name},
           "port": {"id": port.id}, "sg": {"id": sg.id}, "rule": {"id": rule.id},
           "fip": {"id": fip.id, "floating_ip_address": fip.floating_ip_address},
           "server": server, "private": {"ID": private.id}}
    a.close()


@pytest.fixture(scope="module")
def b_conn(mallory):
    c = mallory.connect()
    yield c
    c.close()


def test_another_project_lists_none_of_it(mallory, victim, b_conn):
    v = victim
    nets = {r["ID"] for r in mallory.osc_json("network", "list")}
    assert v["net"]["id"] not in nets and v["private"]["ID"] not in nets
    # Its own networks and the external one, nothing else.
    rows = mallory.osc_json("network", "list", "--long")
    assert "public" in {r["Name"] for r in rows}
    assert all(r["Project"] == mallory.project_id for r in rows if r["Name"] != "public"), rows
    assert v["sub"]["id"] not in {r["ID"] for r in mallory.osc_json("subnet", "list")}
    ports = {r["ID"] for r in mallory.osc_json("port", "list")}
    assert v["port"]["id"] not in ports
    assert not ports & {p.id for p in v["conn"].network.ports(device_id=v["server"]["id"])}
    assert v["sg"]["id"] not in {r["ID"] for r in mallory.osc_json("security group", "list")}
    groups = mallory.osc_json("security group", "list")
    assert all(g["Project"] == mallory.project_id for g in groups), groups
    assert v["rule"]["id"] not in {r["ID"] for r in mallory.osc_json("security group rule",
                                                                     "list")}
    assert v["router"]["id"] not in {r["ID"] for r in mallory.osc_json("router", "list")}
    assert v["fip"]["id"] not in {r["ID"] for r in mallory.osc_json("floating ip", "list")}
    # Filters naming A's things find nothing either (the CLI cannot even resolve A's
    # network, so the filters go raw).
    assert mallory.osc_json("port", "list", "--device-id", v["server"]["id"]) == []
    p = mallory.osc("port", "list", "--network", v["net"]["id"], check=False)
    assert p.returncode != 0 and "No Network found" in p.stderr, p.stderr
    for path, key in ((f"/ports?network_id={v['net']['id']}", "ports"),
                      (f"/ports?device_id={v['server']['id']}", "ports"),
                      (f"/subnets?network_id={v['net']['id']}", "subnets"),
                      (f"/security-group-rules?security_group_id={v['sg']['id']}",
                       "security_group_rules"),
                      (f"/floatingips?floating_ip_address={v['fip']['floating_ip_address']}",
                       "floatingips")):
        r = get(b_conn, path)
        assert r.status_code == 200 and r.json()[key] == [], (path, r.text)


def test_another_project_cannot_show_change_or_delete_it(mallory, victim, b_conn):
    v = victim
    things = [
        ("network", v["net"]["id"], "/networks", "NetworkNotFound", {"name": "x"}),
        ("network", v["private"]["ID"], "/networks", "NetworkNotFound", {"name": "x"}),
        ("subnet", v["sub"]["id"], "/subnets", "SubnetNotFound", {"name": "x"}),
        ("port", v["port"]["id"], "/ports", "PortNotFound", {"name": "x"}),
        ("security_group", v["sg"]["id"], "/security-groups", "SecurityGroupNotFound",
         {"name": "x"}),
        ("router", v["router"]["id"], "/routers", "RouterNotFound", {"name": "x"}),
        ("floatingip", v["fip"]["id"], "/floatingips", "FloatingIPNotFound",
         {"description": "x"}),
    ]
    for kind, id_, path, type_, change in things:
        fault(get(b_conn, f"{path}/{id_}"), 404, type_)
        fault(put(b_conn, f"{path}/{id_}", {kind: change}), 404, type_)
        fault(delete(b_conn, f"{path}/{id_}"), 404, type_)
    # (Neutron's type here is HTTPNotFound or SecurityGroupRuleNotFound.)
    fault(get(b_conn, f"/security-group-rules/{v['rule']['id']}"), 404)
    fault(delete(b_conn, f"/security-group-rules/{v['rule']['id']}"), 404)
    # The CLI finds none of them by id or name.
    for cmd, ref in (("network", v["net"]["name"]), ("port", v["port"]["id"]),
                     ("security group", v["sg"]["id"]), ("router", v["router"]["name"]),
                     ("floating ip", v["fip"]["floating_ip_address"])):
        p = mallory.osc(*cmd.split(), "show", ref, check=False)
        assert p.returncode != 0 and "No " in p.stderr, (cmd, p.stderr)
    # All still there for A, unchanged.
    a = v["conn"].network
    assert a.get_network(v["net"]["id"]).name == v["net"]["name"]
    assert a.get_router(v["router"]["id"]).name == v["router"]["name"]
    assert a.get_subnet(v["sub"]["id"]).name != "x" and a.get_port(v["port"]["id"]).name != "x"
    assert a.get_security_group(v["sg"]["id"]).name != "x"
    assert a.get_ip(v["fip"]["id"]).description != "x"
    assert a.get_security_group_rule(v["rule"]["id"]).port_range_min == 22


def test_another_project_cannot_use_it(mallory, victim, b_conn):
    v = victim
    public = mallory.osc_json("network", "show", "public")
    # Ports and subnets on A's networks.
    for net in (v["net"]["id"], v["private"]["ID"]):
        r = post(b_conn, "/ports", {"port": {"network_id": net}})
        assert r.status_code in (403, 404), r.text
        fault(r, r.status_code)
        r = post(b_conn, "/subnets", {"subnet": {"network_id": net, "ip_version": 4,
                                                 "cidr": "172.24.0.0/24"}})
        assert r.status_code in (403, 404), r.text
        fault(r, r.status_code)
    # A's subnet on B's router; B's rules in A's group; A's group as a remote group.
    b_router = mallory.osc_json("router", "create", uniq("b-router"))
    fault(put(b_conn, f"/routers/{b_router['id']}/add_router_interface",
              {"subnet_id": v["sub"]["id"]}), 404, "SubnetNotFound")
    fault(put(b_conn, f"/routers/{b_router['id']}/add_router_interface",
              {"port_id": v["port"]["id"]}), 404, "PortNotFound")
    r = post(b_conn, "/security-group-rules", {"security_group_rule": {
        "security_group_id": v["sg"]["id"], "direction": "ingress", "protocol": "tcp"}})
    assert r.status_code in (403, 404), r.text
    fault(r, r.status_code)
    b_sg = mallory.osc_json("security group", "create", uniq("b-sg"))
    fault(post(b_conn, "/security-group-rules", {"security_group_rule": {
        "security_group_id": b_sg["id"], "direction": "ingress",
        "remote_group_id": v["sg"]["id"]}}), 404, "SecurityGroupNotFound")
    # A's port behind B's floating IP, at creation or afterwards.
    fault(post(b_conn, "/floatingips", {"floatingip": {"floating_network_id": public["id"],
                                                       "port_id": v["port"]["id"]}}),
          404, "PortNotFound")
    b_fip = mallory.osc_json("floating ip", "create", "public")
    assert b_fip["floating_ip_address"] != v["fip"]["floating_ip_address"]
    fault(put(b_conn, f"/floatingips/{b_fip['id']}", {"floatingip": {
        "port_id": v["port"]["id"]}}), 404, "PortNotFound")
    # A port of B's with A's security group.
    own = mallory.osc_json("network", "create", uniq("b-net"))
    mallory.osc_json("subnet", "create", "--network", own["id"], "--subnet-range",
                     "172.24.1.0/24", uniq("b-sub"))
    fault(post(b_conn, "/ports", {"port": {"network_id": own["id"],
                                            "security_groups": [v["sg"]["id"]]}}),
          404, "SecurityGroupNotFound")
    assert mallory.osc_json("port", "list", "--network", own["id"]) == []


def test_another_project_cannot_attach_its_server_to_it(mallory, victim, b_conn, image):
    v = victim
    flavor = mallory.osc_json("flavor", "show", "m1.tiny")["id"]
    for networks in ([{"port": v["port"]["id"]}], [{"uuid": v["net"]["id"]}],
                     [{"uuid": v["private"]["ID"]}]):
        r = post(b_conn, "/servers", {"server": {
            "name": uniq("b-bad"), "imageRef": image["id"], "flavorRef": flavor,
            "networks": networks}}, service="compute")
        assert r.status_code == 400, (networks, r.status_code, r.text)
    # Nor a server straight on the external network: Nova's ExternalNetworkAttachForbidden.
    public = mallory.osc_json("network", "show", "public")
    r = post(b_conn, "/servers", {"server": {
        "name": uniq("b-bad"), "imageRef": image["id"], "flavorRef": flavor,
        "networks": [{"uuid": public["id"]}]}}, service="compute")
    assert r.status_code == 403 and "forbidden" in r.json(), (r.status_code, r.text)
    # The CLI does not find them either.
    p = mallory.osc("server", "create", "--image", image["id"], "--flavor", "m1.tiny",
                    "--port", v["port"]["id"], uniq("b-bad"), check=False)
    assert p.returncode != 0
    names = {r["Name"] for r in mallory.osc_json("server", "list")}
    assert not any(n.startswith("b-bad") for n in names), names

    s = mallory.osc_json("server", "create", "--image", image["id"], "--flavor", "m1.tiny",
                         "--wait", uniq("b-server"))
    r = post(b_conn, f"/servers/{s['id']}/os-interface",
             {"interfaceAttachment": {"port_id": v["port"]["id"]}}, service="compute")
    assert r.status_code == 404, (r.status_code, r.text)
    r = post(b_conn, f"/servers/{s['id']}/os-interface",
             {"interfaceAttachment": {"net_id": v["net"]["id"]}}, service="compute")
    assert r.status_code in (400, 404), (r.status_code, r.text)
    r = post(b_conn, f"/servers/{s['id']}/action",
             {"addSecurityGroup": {"name": v["sg"]["id"]}}, service="compute")
    assert r.status_code == 404, (r.status_code, r.text)
    # A's floating IP on B's server.
    p = mallory.osc("server", "add", "floating", "ip", s["id"],
                    v["fip"]["floating_ip_address"], check=False)
    assert p.returncode != 0
    # Nothing of A's moved.
    a = v["conn"].network
    assert a.get_port(v["port"]["id"]).device_id == ""
    assert a.get_ip(v["fip"]["id"]).port_id is None
    assert len(a.get_security_group(v["sg"]["id"]).security_group_rules) == 3
    assert [g["name"] for g in mallory.osc_json("server", "show", s["id"])
            ["security_groups"]] == ["default"]
    # And A's server is A's alone.
    r = post(b_conn, f"/servers/{v['server']['id']}/os-interface",
             {"interfaceAttachment": {"port_id": v["port"]["id"]}}, service="compute")
    assert r.status_code == 404, (r.status_code, r.text)
    mallory.osc("server", "delete", "--wait", s["id"])


def test_a_member_cannot_make_external_or_shared_networks(mallory, b_conn, box):
    p = mallory.osc("network", "create", "--external", uniq("ext"), check=False)
    assert p.returncode != 0 and "403" in p.stderr, p.stderr
    p = mallory.osc("network", "create", "--share", uniq("shared"), check=False)
    assert p.returncode != 0 and "403" in p.stderr, p.stderr
    fault(post(b_conn, "/networks", {"network": {"name": "ext", "router:external": True}}),
          403, "PolicyNotAuthorized")
    fault(post(b_conn, "/networks", {"network": {"name": "shared", "shared": True}}),
          403, "PolicyNotAuthorized")
    own = mallory.osc_json("network", "create", uniq("own"))
    fault(put(b_conn, f"/networks/{own['id']}", {"network": {"router:external": True}}),
          403, "PolicyNotAuthorized")
    fault(put(b_conn, f"/networks/{own['id']}", {"network": {"shared": True}}),
          403, "PolicyNotAuthorized")
    shown = mallory.osc_json("network", "show", own["id"])
    assert shown["router:external"] is False and shown["shared"] is False
    # Nor change or delete the external network.
    public = mallory.osc_json("network", "show", "public")
    r = put(b_conn, f"/networks/{public['id']}", {"network": {"name": "mine"}})
    assert r.status_code in (403, 404), r.text
    fault(r, r.status_code)
    r = delete(b_conn, f"/networks/{public['id']}")
    assert r.status_code in (403, 404), r.text
    assert box.osc_json("network", "show", public["id"])["name"] == "public"
    # Nor read or set another project's quota.
    demo_id = box.osc_json("project", "show", "demo")["id"]
    fault(get(b_conn, f"/quotas/{demo_id}"), 403, "PolicyNotAuthorized")
    fault(put(b_conn, f"/quotas/{mallory.project_id}", {"quota": {"network": 1000}}),
          403, "PolicyNotAuthorized")


def test_the_admin_sees_every_project(box, victim):
    v = victim
    ids = {r["ID"] for r in box.osc_json("network", "list")}
    assert {v["net"]["id"], v["private"]["ID"]} <= ids
    assert v["port"]["id"] in {r["ID"] for r in box.osc_json("port", "list")}
    assert v["fip"]["id"] in {r["ID"] for r in box.osc_json("floating ip", "list")}
    demo_id = box.osc_json("project", "show", "demo")["id"]
    rows = box.osc_json("network", "list", "--project", demo_id)
    assert v["net"]["id"] in {r["ID"] for r in rows}
