#!/usr/bin/env bash
# Sets up what is missing and runs every check and test of onebox: formatting, lints, the
# Rust test suites, and the real OpenStack clients (python-openstackclient, openstacksdk)
# against a running onebox, and the Debian package installed, upgraded and purged.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh --with-tests

# The VM backend's tests run against a real libvirtd: start one when none is running (as
# root; it stays up for the next run, `scripts/libvirtd.sh stop` stops the one it started).
if [ "$(id -u)" = 0 ]; then
    scripts/libvirtd.sh start || echo "warning: libvirtd could not be started; VM tests will skip"
fi

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "== cargo clippy, the API alone (no VM or container backend compiled in)"
cargo clippy --locked -p onebox --no-default-features --all-targets -- -D warnings
echo "== cargo test"
cargo test --locked --workspace
cargo build --locked

echo "== client tests"
# A virtualenv per requirements file, made again only when the file changed.
venv_for() {
    local venv=$1 req=$2 check=$3
    local stamp="$venv/.requirements.sha256" want
    want=$(sha256sum "$req" | cut -d' ' -f1)
    if [ ! -x "$venv/bin/$check" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
        echo "$want" > "$stamp"
    fi
}
venv_for .venv-test tests/clients/requirements.txt pytest
# Ansible and the openstack.cloud collection, with an older openstacksdk than the CLI's
# (tests/clients/requirements-ansible.txt says why).
tests/clients/ansible/setup-venv.sh .venv-ansible
ONEBOX_BIN="$PWD/target/debug/onebox" ONEBOX_ANSIBLE_VENV="$PWD/.venv-ansible" \
    ONEBOX_REQUIRE_ANSIBLE=1 .venv-test/bin/pytest -q tests/clients

echo "== package test"
# Builds, lints, installs, upgrades and purges the .deb on this machine (root only; it puts
# back whatever it moved aside). Its last line is "N passed, M failed".
if [ "$(id -u)" = 0 ]; then
    tests/package/test_deb.sh
else
    echo "skipped: the package test installs a .deb and needs root"
fi
