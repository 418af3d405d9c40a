"""Helpers of the networking client tests: unique names, polling, and the checks of a Neutron
fault (`{"NeutronError": {"type", "message", "detail"}}`) seen raw and through the CLI."""

import ipaddress
import time
import uuid


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def wait_for(what, check, timeout=30, interval=0.5):
    """Polls `check()` until it returns something true; fails naming `what` and the last value."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def fault(resp, status, type_=None, contains=None):
    """The raw response `resp` (keystoneauth/requests) is Neutron's fault body with `status`."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert set(body) == {"NeutronError"}, body
    err = body["NeutronError"]
    assert {"type", "message", "detail"} <= set(err), body
    assert isinstance(err["message"], str) and err["message"], body
    if type_ is not None:
        assert err["type"] == type_, body
    if contains is not None:
        assert contains in err["message"], body
    return err


def cli_fails(p, status, contains=None):
    """The CLI run `p` failed with the HTTP `status` (and the server's message, when given)."""
    assert p.returncode != 0, p.stdout
    assert str(status) in p.stderr, p.stderr
    if contains is not None:
        assert contains in p.stderr, p.stderr


def raw(conn, service="network"):
    """The keystoneauth adapter of `service` (requests relative to its versioned endpoint)."""
    return getattr(conn, service)


def post(conn, path, body, service="network"):
    return raw(conn, service).post(path, json=body, raise_exc=False)


def put(conn, path, body, service="network"):
    return raw(conn, service).put(path, json=body, raise_exc=False)


def get(conn, path, service="network"):
    return raw(conn, service).get(path, raise_exc=False)


def delete(conn, path, service="network"):
    return raw(conn, service).delete(path, raise_exc=False)


def in_cidr(addr, cidr):
    return ipaddress.ip_address(addr) in ipaddress.ip_network(cidr)


def server_addresses(conn, server_id):
    """The server's `addresses` as Nova answers them (each entry with OS-EXT-IPS:type)."""
    r = conn.compute.get(f"/servers/{server_id}", raise_exc=False)
    assert r.status_code == 200, r.text
    return r.json()["server"]["addresses"]


def addrs_of(addresses, kind=None):
    """Every address of `addresses`, or only those of OS-EXT-IPS:type `kind`."""
    return [a["addr"] for entries in addresses.values() for a in entries
            if kind is None or a.get("OS-EXT-IPS:type") == kind]
