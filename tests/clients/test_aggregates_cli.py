"""The real `openstack` CLI on host aggregates and quota classes (fake driver)."""

import uuid

import pytest
from openstack import exceptions

from conftest import connect


def compute_host(onebox):
    rows = onebox.osc_json("compute", "service", "list")
    return [r for r in rows if r["Binary"] == "nova-compute"][0]["Host"]


def test_aggregate_create_add_host_set_show_delete(onebox):
    host = compute_host(onebox)
    name = f"agg-{uuid.uuid4().hex[:6]}"
    zoned = f"zone-{uuid.uuid4().hex[:6]}"
    agg = onebox.osc_json("aggregate", "create", name)
    assert agg["name"] == name
    try:
        added = onebox.osc_json("aggregate", "add", "host", name, host)
        assert host in str(added["hosts"])
        onebox.osc("aggregate", "set", "--property", "ssd=true", "--property", "rack=r1", name)
        shown = onebox.osc_json("aggregate", "show", name)
        assert "ssd" in str(shown["properties"]) and "r1" in str(shown["properties"])
        assert host in str(shown["hosts"])
        onebox.osc("aggregate", "unset", "--property", "rack", name)
        shown = onebox.osc_json("aggregate", "show", name)
        assert "rack" not in str(shown["properties"]) and "ssd" in str(shown["properties"])
        # Not empty: Nova refuses the delete.
        refused = onebox.osc("aggregate", "delete", name, check=False)
        assert refused.returncode != 0
        # An unknown host is Nova's 404.
        unknown = onebox.osc("aggregate", "add", "host", name, "no-such-host", check=False)
        assert unknown.returncode != 0 and "no-such-host could not be found" in unknown.stderr
        # A zone aggregate without hosts leaves the box where it is.
        z = onebox.osc_json("aggregate", "create", "--zone", "elsewhere", zoned)
        assert z["availability_zone"] == "elsewhere"
        listed = {r["Name"] for r in onebox.osc_json("aggregate", "list")}
        assert {name, zoned} <= listed
        # A member may not touch aggregates.
        denied = onebox.osc("aggregate", "create", f"m-{name}", cloud="onebox-demo", check=False)
        assert denied.returncode != 0 and "403" in denied.stderr
        denied = onebox.osc("aggregate", "list", cloud="onebox-demo", check=False)
        assert denied.returncode != 0 and "403" in denied.stderr
    finally:
        onebox.osc("aggregate", "remove", "host", name, host, check=False)
        onebox.osc("aggregate", "delete", name, check=False)
        onebox.osc("aggregate", "delete", zoned, check=False)
    listed = {r["Name"] for r in onebox.osc_json("aggregate", "list")}
    assert name not in listed and zoned not in listed


def test_quota_class_default_with_the_cli_and_the_sdk(onebox):
    """`quota show --class` left the CLI: the SDK reads the class, the CLI sets it."""
    admin = connect(onebox, "onebox-admin")
    cls = admin.compute.get_quota_class_set("default")
    assert cls.instances == 10 and cls.cores == 20
    member = connect(onebox, "onebox-demo")
    with pytest.raises(exceptions.ForbiddenException):
        member.compute.get_quota_class_set("default")
    denied = onebox.osc("quota", "set", "--class", "--key-pairs", "7", "default",
                        cloud="onebox-demo", check=False)
    assert denied.returncode != 0
    onebox.osc("quota", "set", "--class", "--key-pairs", "7", "default")
    try:
        assert admin.compute.get_quota_class_set("default").key_pairs == 7
        # The class is the default of every project without its own limits.
        defaults = onebox.osc_json("quota", "show", "--default", "--compute", "demo")
        assert "7" in str(defaults), defaults
    finally:
        onebox.osc("quota", "set", "--class", "--key-pairs", "100", "default")
    assert admin.compute.get_quota_class_set("default").key_pairs == 100
