#!/usr/bin/env bash
# Runs onebox-rootfs.tar (firmware/build) the way a container runtime would, in new PID, mount,
# UTS and network namespaces (root only), with user data in /etc/onebox/user-data; checks
# init's console lines, fetches the page httpd serves from inside the network namespace, then
# sends SIGTERM and checks that init exits 0. Prints "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")"
B=${ONEBOX_FIRMWARE_OUT:-$PWD/build}
passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
fail() { echo "FAIL - $*"; failed=$((failed + 1)); }
[ "$(id -u)" = 0 ] || { echo "needs root (namespaces)"; exit 1; }
[ -f "$B/onebox-rootfs.tar" ] || { echo "no $B/onebox-rootfs.tar: run firmware/build-rootfs.sh"; exit 1; }

tmp=$(mktemp -d /tmp/onebox-rootfs-test.XXXXXX)
upid=""
cleanup() {
    if [ -n "$upid" ] && kill -0 "$upid" 2>/dev/null; then kill -KILL "$upid"; wait "$upid" 2>/dev/null; fi
    rm -rf "$tmp"
    echo "$passed passed, $failed failed"
}
trap cleanup EXIT

root=$tmp/root
mkdir -p "$root"
tar -x -f "$B/onebox-rootfs.tar" -C "$root"
printf '#!/bin/sh\necho "user data ran as $(id -u) on $(hostname)"\n' > "$root/etc/onebox/user-data"
log=$tmp/console.log
unshare --pid --fork --mount --uts --net sh -c \
    "ip link set lo up && hostname rootfs-test && exec chroot '$root' /sbin/init" > "$log" 2>&1 &
upid=$!
for _ in $(seq 100); do grep -q 'onebox-rootfs: ready' "$log" && break; sleep 0.1; done
sed 's/^/  | /' "$log"
has() { grep -qF -- "$1" "$log"; }
for line in "onebox-rootfs: booted" "onebox-rootfs: hostname=rootfs-test" \
    "user data ran as 0 on rootfs-test" "onebox-rootfs: user-data-exit=0" \
    "onebox-rootfs: http-port=80" "onebox-rootfs: ready"; do
    if has "$line"; then ok "console: $line"; else fail "console: $line"; fi
done
init=$(ps -o pid= --ppid "$upid" | tr -d ' ' | head -1)
page=""
for _ in $(seq 20); do
    page=$(nsenter --net="/proc/$init/ns/net" "$root/bin/busybox" wget -q -O - http://127.0.0.1:80/ 2>/dev/null) && break
    sleep 0.1
done
if [ "$page" = "onebox-rootfs rootfs-test" ]; then ok "httpd serves the hostname"; else fail "httpd serves the hostname (got '$page')"; fi
kill -TERM "$init"
wait "$upid"
rc=$?
upid=""
if [ "$rc" = 0 ]; then ok "SIGTERM: init exits 0"; else fail "SIGTERM: init exits 0 (got $rc)"; fi
if has "onebox-rootfs: stopping"; then ok "console: stopping"; else fail "console: stopping"; fi
exit $((failed > 0))
