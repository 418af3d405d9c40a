#!/usr/bin/env bash
# Makes the virtualenv test_ansible.py runs Ansible from (default .venv-ansible): the packages
# of tests/clients/requirements-ansible.txt, and the collections below copied unchanged out of
# the `ansible` package's wheel into <venv>/collections. Made again only when this script or
# the requirements changed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${1:-.venv-ansible}
req="$here/../requirements-ansible.txt"
bundle=ansible==12.3.0
collections=(openstack/cloud ansible/posix)
stamp="$venv/.requirements.sha256"
want=$(cat "$req" "$0" | sha256sum | cut -d' ' -f1)
if [ -x "$venv/bin/ansible-playbook" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
"$venv/bin/pip" download -q --disable-pip-version-check --no-deps -d "$wheels" "$bundle"
"$venv/bin/python" - "$wheels"/*.whl "$venv/collections" "${collections[@]}" <<'PY'
import sys, zipfile
wheel, dest, *names = sys.argv[1:]
prefixes = tuple(f"ansible_collections/{n}/" for n in names)
with zipfile.ZipFile(wheel) as z:
    members = [m for m in z.namelist() if m.startswith(prefixes)]
    for n in names:
        if not any(m.startswith(f"ansible_collections/{n}/") for m in members):
            sys.exit(f"{wheel} has no collection {n}")
    z.extractall(dest, members)
PY
echo "$want" > "$stamp"
