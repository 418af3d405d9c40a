"""The real `openstack` CLI against onebox's identity service."""

import uuid


def test_token_issue(onebox):
    tok = onebox.osc_json("token", "issue")
    assert set(tok) >= {"id", "expires", "project_id", "user_id"}
    admin = onebox.osc_json("project", "show", "admin")
    assert tok["project_id"] == admin["id"]
    me = onebox.osc_json("user", "show", "admin")
    assert tok["user_id"] == me["id"]


def test_catalog_list(onebox):
    cat = onebox.osc_json("catalog", "list")
    by_type = {c["Type"]: c for c in cat}
    assert set(by_type) == {"identity", "compute", "image", "network", "baremetal",
                            "block-storage", "volumev3"}
    assert by_type["baremetal"]["Name"] == "ironic"
    assert by_type["block-storage"]["Name"] == "cinder"
    assert by_type["volumev3"]["Name"] == "cinderv3"
    assert f"{onebox.base}/volume/v3" in str(by_type["volumev3"]["Endpoints"])
    assert by_type["network"]["Name"] == "neutron"
    assert by_type["compute"]["Name"] == "nova"
    endpoints = by_type["compute"]["Endpoints"]
    text = endpoints if isinstance(endpoints, str) else str(endpoints)
    assert f"{onebox.base}/compute/v2.1" in text
    assert "RegionOne" in text


def test_versions_show(onebox):
    rows = onebox.osc_json("versions", "show")
    compute = [r for r in rows if r["Service Type"] == "compute" and r["Status"] == "CURRENT"]
    assert len(compute) == 1
    assert compute[0]["Min Microversion"] == "2.1"
    # The advertised maximum, as the version document says it.
    assert compute[0]["Max Microversion"] == compute[0]["Max Microversion"].strip()
    ident = [r for r in rows if r["Service Type"] == "identity"]
    assert ident and ident[0]["Version"] == "3.14" and ident[0]["Status"] == "CURRENT"


def test_project_lifecycle(onebox):
    name = f"p-{uuid.uuid4().hex[:8]}"
    p = onebox.osc_json("project", "create", "--description", "made by a test", name)
    assert p["name"] == name and p["domain_id"] == "default" and p["enabled"] is True
    listed = {r["Name"]: r["ID"] for r in onebox.osc_json("project", "list")}
    assert listed[name] == p["id"]
    assert {"admin", "demo"} <= set(listed)
    dup = onebox.osc("project", "create", name, check=False)
    assert dup.returncode != 0 and "409" in dup.stderr
    onebox.osc("project", "delete", name)
    listed = {r["Name"] for r in onebox.osc_json("project", "list")}
    assert name not in listed


def test_user_lifecycle_and_password_change(onebox):
    project = f"up-{uuid.uuid4().hex[:8]}"
    user = f"u-{uuid.uuid4().hex[:8]}"
    onebox.osc("project", "create", project)
    u = onebox.osc_json("user", "create", "--password", "first-pw", "--project", project, user)
    assert u["name"] == user and u["domain_id"] == "default"
    assert "password" not in u
    users = {r["Name"] for r in onebox.osc_json("user", "list")}
    assert {user, "admin", "demo"} <= users

    onebox.osc("role", "add", "--project", project, "--user", user, "member")
    rows = onebox.osc_json("role", "assignment", "list", "--names", "--project", project)
    assert [(r["Role"], r["User"], r["Project"]) for r in rows] == [
        ("member", f"{user}@Default", f"{project}@Default")
    ]
    rows = onebox.osc_json("role", "assignment", "list", "--project", project, "--user", user)
    assert len(rows) == 1 and rows[0]["Role"]

    def login(password):
        return onebox.osc(
            "token", "issue", cloud=None, check=False,
            extra_env={
                "OS_AUTH_URL": f"{onebox.base}/identity",
                "OS_USERNAME": user, "OS_PASSWORD": password,
                "OS_PROJECT_NAME": project, "OS_USER_DOMAIN_NAME": "Default",
                "OS_PROJECT_DOMAIN_NAME": "Default", "OS_IDENTITY_API_VERSION": "3",
            },
        )

    assert login("first-pw").returncode == 0
    onebox.osc("user", "set", "--password", "second-pw", user)
    old = login("first-pw")
    assert old.returncode != 0 and "401" in old.stderr
    assert login("second-pw").returncode == 0

    onebox.osc("user", "delete", user)
    users = {r["Name"] for r in onebox.osc_json("user", "list")}
    assert user not in users
    onebox.osc("project", "delete", project)


def test_role_list(onebox):
    names = {r["Name"] for r in onebox.osc_json("role", "list")}
    assert {"admin", "manager", "member", "reader"} <= names


def test_domain_list(onebox):
    rows = onebox.osc_json("domain", "list")
    assert [(r["ID"], r["Name"]) for r in rows] == [("default", "Default")]


def test_wrong_password_is_401(onebox):
    p = onebox.osc(
        "token", "issue", cloud=None, check=False,
        extra_env={
            "OS_AUTH_URL": f"{onebox.base}/identity", "OS_USERNAME": "admin",
            "OS_PASSWORD": "wrong", "OS_PROJECT_NAME": "admin",
            "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
            "OS_IDENTITY_API_VERSION": "3",
        },
    )
    assert p.returncode != 0
    assert "The request you have made requires authentication. (HTTP 401)" in p.stderr


def test_member_cannot_administer(onebox):
    p = onebox.osc("project", "create", "nope", cloud="onebox-demo", check=False)
    assert p.returncode != 0 and "403" in p.stderr
    names = {r["Name"] for r in onebox.osc_json("project", "list")}
    assert "nope" not in names
