"""openstacksdk against onebox's Networking API: the network proxy's resources, the ports of a
server found by device_id, and the cloud layer's `create_server(auto_ip=True, wait=True)`
(what Ansible's openstack.cloud.server does by default) on a box without an external network
(a quiet no-op for floating IPs) and on one with it (the server gets a floating IP, shown
floating in `addresses`)."""

import ipaddress

import openstack.exceptions
import pytest

from conftest import FLOATING_RANGE, connect, public_image
from netutil import addrs_of, server_addresses, uniq


@pytest.fixture(scope="module")
def image(onebox):
    return public_image(onebox)


@pytest.fixture(scope="module")
def ext_image(ext_onebox):
    return public_image(ext_onebox)


@pytest.fixture
def demo(onebox):
    c = connect(onebox)
    yield c
    c.close()


@pytest.fixture
def ext_demo(ext_onebox):
    c = connect(ext_onebox)
    yield c
    c.close()


def test_the_network_endpoint(onebox, demo):
    assert demo.network.get_endpoint().rstrip("/") in (f"{onebox.base}/network",
                                                      f"{onebox.base}/network/v2.0")
    assert demo.has_service("network")
    aliases = {e.alias for e in demo.network.extensions()}
    assert {"external-net", "router", "security-group"} <= aliases, aliases


def test_network_proxy_crud(demo):
    project = demo.current_project_id
    net = demo.network.create_network(name=uniq("sdk-net"), description="sdk")
    assert net.status == "ACTIVE" and net.project_id == project
    assert net.is_router_external is False and net.is_shared is False
    assert demo.network.find_network(net.name).id == net.id
    assert demo.network.find_network(net.id).id == net.id
    assert demo.network.find_network(uniq("nope")) is None
    demo.network.update_network(net, description="changed")
    assert demo.network.get_network(net.id).description == "changed"

    sub = demo.network.create_subnet(network_id=net.id, ip_version=4, cidr="172.25.0.0/24",
                                     name=uniq("sdk-sub"))
    assert sub.gateway_ip == "172.25.0.1" and sub.network_id == net.id
    assert sub.allocation_pools == [{"start": "172.25.0.2", "end": "172.25.0.254"}]
    assert demo.network.find_subnet(sub.name).id == sub.id
    assert [s.id for s in demo.network.subnets(network_id=net.id)] == [sub.id]

    port = demo.network.create_port(network_id=net.id, name=uniq("sdk-port"), fixed_ips=[
        {"subnet_id": sub.id, "ip_address": "172.25.0.10"}])
    assert port.fixed_ips == [{"subnet_id": sub.id, "ip_address": "172.25.0.10"}]
    assert [p.id for p in demo.network.ports(network_id=net.id)] == [port.id]
    demo.network.update_port(port, name="renamed")
    assert demo.network.get_port(port.id).name == "renamed"

    router = demo.network.create_router(name=uniq("sdk-router"))
    demo.network.add_interface_to_router(router, subnet_id=sub.id)
    ifaces = list(demo.network.ports(device_id=router.id))
    assert [(p.device_owner, p.fixed_ips[0]["ip_address"]) for p in ifaces] == [
        ("network:router_interface", "172.25.0.1")]
    demo.network.remove_interface_from_router(router, subnet_id=sub.id)
    assert list(demo.network.ports(device_id=router.id)) == []

    # The cloud layer, as Ansible's modules use it.
    assert demo.get_network(net.name).id == net.id
    assert [s.id for s in demo.search_subnets(filters={"network_id": net.id})] == [sub.id]

    demo.network.delete_router(router)
    demo.network.delete_port(port)
    demo.network.delete_network(net)
    assert demo.network.find_network(net.id) is None
    with pytest.raises(openstack.exceptions.NotFoundException):
        demo.network.get_subnet(sub.id)
    quota = demo.network.get_quota(project)
    assert quota.networks > 0 or quota.networks == -1


def test_security_groups_through_the_proxy(demo):
    net = demo.network.create_network(name=uniq("sdk-sg-net"))
    demo.network.create_subnet(network_id=net.id, ip_version=4, cidr="172.25.1.0/24")
    port = demo.network.create_port(network_id=net.id)
    sg = demo.network.create_security_group(name=uniq("sdk-sg"), description="web")
    rule = demo.network.create_security_group_rule(
        security_group_id=sg.id, direction="ingress", ethertype="IPv4", protocol="tcp",
        port_range_min=80, port_range_max=80, remote_ip_prefix="0.0.0.0/0")
    assert rule.id in {r.id for r in demo.network.security_group_rules(security_group_id=sg.id)}
    assert demo.network.find_security_group(sg.name).id == sg.id
    assert demo.get_security_group(sg.name).id == sg.id
    demo.network.update_port(port, security_group_ids=[sg.id])
    assert demo.network.get_port(port.id).security_group_ids == [sg.id]
    demo.network.delete_port(port)
    demo.network.delete_security_group(sg)
    assert demo.network.find_security_group(sg.id) is None
    demo.network.delete_network(net)


def test_a_servers_ports_by_device_id(demo, image):
    server = demo.create_server(uniq("sdk-ports"), image=image["id"], flavor="m1.tiny",
                                auto_ip=False, wait=True, timeout=120)
    try:
        assert server.status == "ACTIVE"
        entries = server_addresses(demo, server.id)["private"]
        assert len(entries) == 1 and entries[0]["OS-EXT-IPS:type"] == "fixed"
        ports = list(demo.network.ports(device_id=server.id))
        assert len(ports) == 1
        port = ports[0]
        assert port.fixed_ips[0]["ip_address"] == entries[0]["addr"] == server.private_v4
        assert port.mac_address == entries[0]["OS-EXT-IPS-MAC:mac_addr"]
        assert port.device_owner.startswith("compute:")
        private = demo.network.find_network("private")
        assert private is not None and port.network_id == private.id
        assert private.project_id == demo.current_project_id
        assert private.is_router_external is False and len(private.subnet_ids) == 1
        subnet = demo.network.get_subnet(private.subnet_ids[0])
        net = ipaddress.ip_network(subnet.cidr)
        assert subnet.gateway_ip == str(net.network_address + 1)
        assert net.prefixlen == 16 and net.subnet_of(ipaddress.ip_network("10.0.0.0/8"))
        assert ipaddress.ip_address(server.private_v4) in net
        # Filters the SDK's server helpers use.
        assert [p.id for p in demo.network.ports(device_id=server.id,
                                                 network_id=private.id)] == [port.id]
        assert [p.id for p in demo.search_ports(filters={"device_id": server.id})] == [port.id]
    finally:
        demo.delete_server(server.id, wait=True, timeout=120)
    assert list(demo.network.ports(device_id=server.id)) == []


def test_auto_ip_without_an_external_network_is_a_quiet_no_op(demo, image):
    assert demo.get_external_ipv4_floating_networks() == []
    server = demo.create_server(uniq("sdk-noip"), image=image["id"], flavor="m1.tiny",
                                auto_ip=True, wait=True, timeout=120)
    try:
        assert server.status == "ACTIVE"
        assert not server.public_v4
        addresses = server_addresses(demo, server.id)
        assert addrs_of(addresses, "floating") == [] and len(addrs_of(addresses, "fixed")) == 1
        assert list(demo.network.ips()) == []
    finally:
        demo.delete_server(server.id, wait=True, timeout=120)


def test_auto_ip_with_the_external_network(ext_demo, ext_image):
    conn = ext_demo
    public = conn.network.find_network("public")
    assert public is not None and public.is_router_external is True
    assert [n.id for n in conn.get_external_ipv4_floating_networks()] == [public.id]
    server = conn.create_server(uniq("sdk-ip"), image=ext_image["id"], flavor="m1.tiny",
                                auto_ip=True, wait=True, timeout=120)
    # The server create_server hands back after attaching the address is the compute
    # proxy's (its computed public_v4 is empty whatever the cloud); the cloud layer's
    # get_server fills in public_v4 and private_v4, as against any OpenStack.
    server = conn.get_server(server.id)
    addr = server.public_v4
    try:
        assert server.status == "ACTIVE"
        assert addr in FLOATING_RANGE, server.addresses
        addresses = server_addresses(conn, server.id)
        assert addrs_of(addresses, "floating") == [addr], addresses
        assert addrs_of(addresses, "fixed") == [server.private_v4], addresses
        port = list(conn.network.ports(device_id=server.id))[0]
        fips = list(conn.network.ips(floating_ip_address=addr))
        assert len(fips) == 1
        assert (fips[0].port_id, fips[0].fixed_ip_address) == (port.id, server.private_v4)
        assert fips[0].floating_network_id == public.id
        assert fips[0].project_id == conn.current_project_id
    finally:
        conn.delete_server(server.id, wait=True, timeout=120, delete_ips=True)
    assert list(conn.network.ips(floating_ip_address=addr)) == []


def test_auto_ip_reuses_a_free_floating_ip(ext_demo, ext_image):
    conn = ext_demo
    public = conn.network.find_network("public")
    free = conn.network.create_ip(floating_network_id=public.id)
    assert free.floating_ip_address in FLOATING_RANGE and free.port_id is None
    server = conn.create_server(uniq("sdk-reuse"), image=ext_image["id"], flavor="m1.tiny",
                                auto_ip=True, reuse_ips=True, wait=True, timeout=120)
    try:
        server = conn.get_server(server.id)
        assert server.public_v4 == free.floating_ip_address, server.addresses
        assert conn.network.get_ip(free.id).port_id is not None
    finally:
        conn.delete_server(server.id, wait=True, timeout=120)
    # Not asked to delete it: the address stays the project's, free again.
    kept = conn.network.get_ip(free.id)
    assert kept.port_id is None
    conn.network.delete_ip(kept)
