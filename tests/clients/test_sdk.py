"""openstacksdk against onebox: connection, endpoints and microversion negotiation."""

import openstack
import openstack.compute.v2.server
import openstack.utils
import pytest


@pytest.fixture
def conn(onebox, monkeypatch):
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", onebox.clouds)
    c = openstack.connect(cloud="onebox-admin")
    yield c
    c.close()


def server_max(onebox):
    import urllib.request, json
    with urllib.request.urlopen(onebox.base + "/compute/v2.1/") as r:
        return json.load(r)["version"]["version"]


def test_compute_endpoint_from_the_catalog(onebox, conn):
    assert conn.compute.get_endpoint() == f"{onebox.base}/compute/v2.1"


def test_microversion_negotiation_reaches_the_advertised_max(onebox, conn):
    advertised = server_max(onebox)
    data = conn.compute.get_endpoint_data()
    assert str(data.max_microversion[0]) + "." + str(data.max_microversion[1]) == advertised
    assert str(data.min_microversion[0]) + "." + str(data.min_microversion[1]) == "2.1"
    # The SDK asks for the highest version both sides know (its servers go up to 2.100,
    # below onebox's maximum); onebox echoes it back.
    sdk_max = openstack.compute.v2.server.Server._max_microversion
    chosen = openstack.utils.maximum_supported_microversion(conn.compute, sdk_max)
    assert chosen == sdk_max
    assert openstack.utils.maximum_supported_microversion(conn.compute, advertised) == advertised
    r = conn.compute.get("/", microversion=chosen)
    assert r.status_code == 200
    assert r.headers["OpenStack-API-Version"] == f"compute {chosen}"
    assert r.headers["X-OpenStack-Nova-API-Version"] == chosen


def test_identity_through_the_sdk(conn):
    names = {p.name for p in conn.identity.projects()}
    assert {"admin", "demo"} <= names
    roles = {r.name for r in conn.identity.roles()}
    assert {"admin", "manager", "member", "reader"} <= roles
