#!/usr/bin/env python3
"""Runs the conformance corpus (cases/*.json) against a real Nova API and writes what it answers
to fixtures/*.json: status, media type, microversion headers, fault key, the body's shape (keys
and JSON types, recursively) and the values that must match exactly (fault messages and codes,
and the paths each case lists in "exact").

    cd /tmp/nova-oracle && ./run-nova.sh api      # the oracle, see its README
    python3 src/api/tests/conformance/record.py [--url http://127.0.0.1:8774] [--only PREFIX]

Nova runs without Keystone there: the token "user:project" is the identity, user "admin" has the
admin role and anyone else is member and reader of its project. Only the standard library is used.
"""
import argparse
import json
import os
import re
import sys
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))

# Persona -> the oracle's token; and the built-in placeholders. The names are unusual on
# purpose: recorded values have them replaced by their placeholder.
TOKENS = {
    "admin": "admin:admin",
    "member": "conf-member-user:conf-member-project",
    "other": "conf-other-user:conf-other-project",
}
BUILTIN = {
    "member_project": "conf-member-project",
    "member_user": "conf-member-user",
    "other_project": "conf-other-project",
    "other_user": "conf-other-user",
}
HEADERS = ["openstack-api-version", "x-openstack-nova-api-version"]
PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


def subst(v, vars_):
    """Replaces {name} in strings; a string that is only a placeholder takes the value's type."""
    if isinstance(v, str):
        m = PLACEHOLDER.fullmatch(v)
        if m and m.group(1) in vars_:
            return vars_[m.group(1)]
        return PLACEHOLDER.sub(lambda m: str(vars_.get(m.group(1), m.group(0))), v)
    if isinstance(v, list):
        return [subst(x, vars_) for x in v]
    if isinstance(v, dict):
        return {subst(k, vars_): subst(x, vars_) for k, x in v.items()}
    return v


def unsubst(v, vars_):
    """The reverse of subst for recorded values: each variable's value becomes {name} where it
    stands alone (after a space, quote, bracket, slash or '=', before a space, quote, bracket,
    slash or punctuation ending a sentence)."""
    if isinstance(v, str):
        for name, val in sorted(vars_.items(), key=lambda kv: -len(str(kv[1]))):
            val = str(val)
            if v == val:
                return "{%s}" % name
            v = re.sub(r"(?<![^\s'\"(\[/=])%s(?=$|[\s'\")\]/,;:]|\.(?!\w))" % re.escape(val),
                       "{%s}" % name, v)
        return v
    if isinstance(v, list):
        return [unsubst(x, vars_) for x in v]
    if isinstance(v, dict):
        return {k: unsubst(x, vars_) for k, x in v.items()}
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        for name, val in vars_.items():
            if val == v and name not in BUILTIN:
                return "{%s}" % name
    return v


def shape(v):
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        out = []
        for x in v:
            out = [merge(out[0], shape(x))] if out else [shape(x)]
        return out
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return "null"


def merge(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: merge(a[k], b[k]) if k in a and k in b else a.get(k, b.get(k)) for k in {**a, **b}}
    if isinstance(a, list) and isinstance(b, list):
        if not a or not b:
            return a or b
        return [merge(a[0], b[0])]
    if isinstance(a, str) and isinstance(b, str):
        return "|".join(sorted(set(a.split("|")) | set(b.split("|"))))
    return "mixed"


def at(body, path):
    cur = body
    for part in path.split("."):
        if isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        elif isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return {"$absent": True}
    return cur


def drop(v, path):
    parts = path.split(".")
    cur = v
    for p in parts[:-1]:
        if not isinstance(cur, dict) or p not in cur:
            return
        cur = cur[p]
    if isinstance(cur, dict):
        cur.pop(parts[-1], None)


class Oracle:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def send(self, persona, method, path, version=None, headers=None, body=None, raw=None):
        h = {"X-Auth-Token": TOKENS[persona]}
        if version:
            h["OpenStack-API-Version"] = "compute " + version
        h.update(headers or {})
        data = None
        if raw is not None:
            data = raw.encode()
        elif body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            h["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()


def step(oracle, s, vars_, where):
    path = subst(s["path"], vars_)
    if PLACEHOLDER.search(path) or "$absent" in path:
        print("%s: step %s %s skipped (unresolved)" % (where, s.get("method", "GET"), path))
        return None
    status, _, data = oracle.send(
        s["persona"], s.get("method", "GET"), path, s.get("version"),
        body=subst(s.get("body"), vars_))
    if status >= 400:
        print("%s: step %s %s -> %d %s" % (where, s.get("method", "GET"), path, status, data[:200]))
    body = json.loads(data) if data.strip().startswith(b"{") else None
    for name, path in s.get("save", {}).items():
        vars_[name] = at(body, path)
    return status


def record(oracle, case, vars_):
    status, headers, data = oracle.send(
        case.get("persona", "admin"), case.get("method", "GET"), subst(case["path"], vars_),
        case.get("version"), subst(case.get("headers"), vars_), subst(case.get("body"), vars_),
        case.get("raw"))
    out = {"status": status}
    ctype = headers.get("content-type")
    out["content_type"] = ctype.split(";")[0].strip().lower() if ctype else None
    out["headers"] = {h: headers.get(h) for h in HEADERS}
    try:
        body = json.loads(data) if data else None
    except ValueError:
        body = None
    if body is None:
        out["body"] = "empty" if not data else "text"
        if data:
            out["text"] = data.decode("utf-8", "replace")
    else:
        out["body"] = "json"
        out["shape"] = shape(body)
        values = {}
        if isinstance(body, dict) and len(body) == 1:
            (key, inner), = body.items()
            if isinstance(inner, dict) and "message" in inner and "code" in inner:
                out["fault"] = key
                values[key + ".code"] = inner["code"]
                values[key + ".message"] = inner["message"]
        for path in case.get("exact", []):
            v = at(body, path)
            if isinstance(v, (dict, list)):
                v = json.loads(json.dumps(v))
                for ign in case.get("ignore_values", []):
                    if ign.startswith(path + "."):
                        drop(v, ign[len(path) + 1:])
            values[path] = v
        out["values"] = unsubst(values, vars_)
        for name, path in case.get("save", {}).items():
            vars_[name] = at(body, path)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8774")
    ap.add_argument("--only", default="", help="record only the case files starting with this")
    args = ap.parse_args()
    oracle = Oracle(args.url)
    status, _, data = oracle.send("admin", "GET", "/")
    root = json.loads(data)
    nova_max = [v["version"] for v in root["versions"] if v["id"] == "v2.1"][0]
    cases_dir = os.path.join(HERE, "cases")
    fix_dir = os.path.join(HERE, "fixtures")
    os.makedirs(fix_dir, exist_ok=True)
    total = 0
    for fname in sorted(os.listdir(cases_dir)):
        if not fname.endswith(".json") or not fname.startswith(args.only):
            continue
        doc = json.load(open(os.path.join(cases_dir, fname)))
        vars_ = dict(BUILTIN)
        for s in doc.get("setup", []):
            step(oracle, s, vars_, fname)
        fixtures = {}
        for case in doc["cases"]:
            cvars = dict(vars_)
            for s in case.get("setup", []):
                step(oracle, s, cvars, case["name"])
            fixtures[case["name"]] = record(oracle, case, cvars)
            for s in case.get("teardown", []):
                step(oracle, s, cvars, case["name"])
            total += 1
        for s in doc.get("teardown", []):
            step(oracle, s, vars_, fname)
        with open(os.path.join(fix_dir, fname), "w") as f:
            f.write(json.dumps({"recorded_from": "nova-api %s (max microversion)" % nova_max,
                                "cases": fixtures}, indent=1, sort_keys=True) + "\n")
        print("%s: %d cases" % (fname, len(doc["cases"])))
    print("recorded %d cases" % total)


if __name__ == "__main__":
    sys.exit(main())
