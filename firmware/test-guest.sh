#!/usr/bin/env bash
# Boots onebox-tiny (firmware/build) under plain QEMU (TCG, 128 MiB) with its disk, a config
# drive (iso9660, label config-2, on the IDE CD-ROM) and user-mode networking that reaches
# nothing outside QEMU (restrict=on), then checks the console: boot marker, DHCP address,
# root disk, config drive, hostname, public key, user data run, ready; then presses the ACPI
# power button and checks that the guest powers off by itself. A second boot takes its
# configuration from a metadata service instead and runs user data that powers it off.
# QEMU=path overrides qemu-system-x86_64. Needs genisoimage. Prints "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")"
B=${ONEBOX_FIRMWARE_OUT:-$PWD/build}
QEMU=${QEMU:-qemu-system-x86_64}
passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
fail() { echo "FAIL - $*"; failed=$((failed + 1)); }

command -v "$QEMU" >/dev/null 2>&1 || { echo "no $QEMU (install qemu-system-x86, or set QEMU)"; exit 1; }
command -v genisoimage >/dev/null 2>&1 || { echo "no genisoimage (apt-get install genisoimage)"; exit 1; }
for f in onebox-tiny.vmlinux onebox-tiny.initrd onebox-tiny.qcow2; do
    [ -f "$B/$f" ] || { echo "no $B/$f: run firmware/build-guest.sh"; exit 1; }
done

tmp=$(mktemp -d /tmp/onebox-guest-test.XXXXXX)
qpid=""
cleanup() {
    if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then kill "$qpid"; wait "$qpid" 2>/dev/null; fi
    [ -n "${KEEP:-}" ] || rm -rf "$tmp"; [ -n "${KEEP:-}" ] && echo "kept $tmp"
    echo "$passed passed, $failed failed"
}
trap cleanup EXIT

key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOneboxTestKeyOnly0000000000000000000000 test@onebox"
mkdir -p "$tmp/cd/openstack/latest"
cat > "$tmp/cd/openstack/latest/meta_data.json" <<EOF
{"uuid": "0c4b7ad4-1b7e-4d8f-9e39-4f2e6a0d7c11", "name": "tiny-test",
 "hostname": "tiny-test.novalocal", "launch_index": 0, "availability_zone": "nova",
 "public_keys": {"mykey": "$key\n"},
 "keys": [{"name": "mykey", "type": "ssh", "data": "$key\n"}], "project_id": "p"}
EOF
printf '#!/bin/sh\necho "user-data says hello from $(hostname)"\n' > "$tmp/cd/openstack/latest/user_data"
want_ud=$(sha256sum "$tmp/cd/openstack/latest/user_data" | cut -d' ' -f1)
genisoimage -quiet -o "$tmp/config.iso" -V config-2 -J -r "$tmp/cd"
qemu-img create -q -f qcow2 -F qcow2 -b "$B/onebox-tiny.qcow2" "$tmp/root.qcow2"

log=$tmp/console.log
"$QEMU" -machine pc -m 128 -smp 1 -nographic -no-reboot \
    -kernel "$B/onebox-tiny.vmlinux" -initrd "$B/onebox-tiny.initrd" \
    -append "console=ttyS0 quiet panic=-1" \
    -drive "file=$tmp/root.qcow2,format=qcow2,if=virtio" \
    -drive "file=$tmp/config.iso,format=raw,media=cdrom,if=ide,readonly=on" \
    -nic user,model=virtio-net-pci,restrict=on \
    -serial "file:$log" -monitor "unix:$tmp/mon.sock,server,nowait" -display none \
    > "$tmp/qemu.out" 2>&1 &
qpid=$!
started=$(date +%s.%N)

deadline=$(($(date +%s) + 120))
until grep -qa 'onebox-guest: ready' "$log" 2>/dev/null; do
    if [ "$(date +%s)" -gt "$deadline" ] || ! kill -0 "$qpid" 2>/dev/null; then break; fi
    sleep 0.2
done
echo "ready after $(echo "$(date +%s.%N) - $started" | bc 2>/dev/null || echo '?') s"
sed 's/^/  | /' "$log" | tr -d '\r'
has() { grep -qaF -- "$1" "$log"; }
for line in "onebox-guest: booted" "onebox-guest: ip=10.0.2.15" "onebox-guest: root-disk=/dev/vda" \
    "onebox-guest: config=config-drive:/dev/sr0" "onebox-guest: uuid=0c4b7ad4-1b7e-4d8f-9e39-4f2e6a0d7c11" \
    "onebox-guest: name=tiny-test" "onebox-guest: public-key=$key" \
    "onebox-guest: hostname=tiny-test.novalocal" "onebox-guest: user-data-sha256=$want_ud" \
    "user-data says hello from tiny-test.novalocal" "onebox-guest: user-data-exit=0" \
    "onebox-guest: ready"; do
    if has "$line"; then ok "console: $line"; else fail "console: $line"; fi
done

# The ACPI power button: the guest must shut down and QEMU exit by itself.
python3 - "$tmp/mon.sock" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
time.sleep(0.3)
s.sendall(b"system_powerdown\n")
time.sleep(0.3)
s.close()
PY
gone=0
for _ in $(seq 150); do
    kill -0 "$qpid" 2>/dev/null || { gone=1; break; }
    sleep 0.2
done
if [ "$gone" = 1 ]; then ok "the power button powers the guest off"; else fail "the power button powers the guest off"; fi
if has "onebox-guest: power-button"; then ok "console: power-button"; else fail "console: power-button"; fi
if has "onebox-guest: shutdown"; then ok "console: shutdown"; else fail "console: shutdown"; fi
wait "$qpid" 2>/dev/null
qpid=""

# Second boot: no config drive; the metadata service at 169.254.169.254 (a guestfwd of
# QEMU's user network answered by a tiny responder), and user data that powers the guest off.
mkdir -p "$tmp/md/openstack/latest"
sed 's/tiny-test/tiny-md/g' "$tmp/cd/openstack/latest/meta_data.json" > "$tmp/md/openstack/latest/meta_data.json"
printf '#!/bin/sh\necho "about to power off"\npoweroff\n' > "$tmp/md/openstack/latest/user_data"
cat > "$tmp/md.py" <<'PY'
import os, sys
root = sys.argv[1]
line = sys.stdin.buffer.readline().decode()
while sys.stdin.buffer.readline() not in (b"\r\n", b"\n", b""):
    pass
path = os.path.normpath(line.split()[1]).lstrip("/")
full = os.path.join(root, path)
out = sys.stdout.buffer
if os.path.isfile(full):
    body = open(full, "rb").read()
    out.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
else:
    out.write(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
out.flush()
PY
log=$tmp/console2.log
"$QEMU" -machine pc -m 128 -smp 1 -nographic -no-reboot \
    -kernel "$B/onebox-tiny.vmlinux" -initrd "$B/onebox-tiny.initrd" \
    -append "console=ttyS0 quiet panic=-1" \
    -drive "file=$tmp/root.qcow2,format=qcow2,if=virtio" \
    -nic "user,model=virtio-net-pci,restrict=on,net=169.254.0.0/16,host=169.254.0.2,guestfwd=tcp:169.254.169.254:80-cmd:python3 $tmp/md.py $tmp/md" \
    -serial "file:$log" -display none > "$tmp/qemu2.out" 2>&1 &
qpid=$!
gone=0
for _ in $(seq 600); do
    kill -0 "$qpid" 2>/dev/null || { gone=1; break; }
    sleep 0.2
done
sed 's/^/  | /' "$log" | tr -d '\r' | grep -a 'onebox-guest\|power'
for line in "onebox-guest: ip=169.254." "onebox-guest: config=metadata-service" \
    "onebox-guest: hostname=tiny-md.novalocal" "onebox-guest: public-key=$key" \
    "about to power off" "onebox-guest: shutdown"; do
    if has "$line"; then ok "console (metadata service): $line"; else fail "console (metadata service): $line"; fi
done
if [ "$gone" = 1 ]; then ok "poweroff in the guest stops it"; else fail "poweroff in the guest stops it"; fi
exit $((failed > 0))
