#!/usr/bin/env bash
# Sets up what is missing, builds onebox and runs it in the foreground with its embedded
# defaults: listening on 127.0.0.1:8774, state in /var/lib/onebox (root) or ./.onebox.
# The first start creates the admin and demo accounts and writes clouds.yaml into the state
# directory. Extra arguments go to `onebox serve` (e.g. --listen 0.0.0.0:8774).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
cargo build --release --locked
# VM servers need a libvirtd: start one when none answers (as root; on a host where systemd
# runs libvirtd this does nothing). Without it, VM servers end in ERROR with a fault saying so.
if [ "$(id -u)" = 0 ]; then
    scripts/libvirtd.sh start || echo "warning: libvirtd could not be started; no VM backend"
fi
exec ./target/release/onebox serve "$@"
