#!/usr/bin/env bash
# Builds onebox-rootfs.tar, the container root filesystem onebox ships, from Debian packages
# only: busybox (busybox-static) with one symlink per applet, /sbin/init (a shell script, see
# firmware/README.md), placeholder /etc files, mount points, and busybox httpd serving
# /www/index.html as the service a test can reach. An uncompressed ustar archive with sorted
# entries, owner 0:0 and fixed mtimes; into firmware/build/ with
# firmware/build/provenance/onebox-rootfs.txt and SHA256SUMS.
# Options: --refresh, --verify, --force (see firmware/lib.sh). Needs apt-get, dpkg-deb, tar.

. "$(dirname "$0")/lib.sh"

PAYLOAD=onebox-rootfs
OUTPUTS=(onebox-rootfs.tar)
if up_to_date "$PAYLOAD" "${OUTPUTS[@]}"; then
    note "$PAYLOAD is built and matches its provenance ($OUT)"
    exit 0
fi
fetch_deb "$PAYLOAD" busybox busybox-static
bbdeb=$FETCHED

tree=$WORK/rootfs
rm -rf "$tree"
mkdir -p "$tree"/{dev,proc,sys,run,tmp,root,www,etc/onebox,var/log}
chmod 1777 "$tree/tmp"
chmod 700 "$tree/root"
install_busybox "$bbdeb" "$tree"
rm -f "$tree/sbin/init"

cat > "$tree/sbin/init" <<'EOF'
#!/bin/sh
# onebox-rootfs's init (PID 1 of the container). Every line it prints for a machine to read
# starts with "onebox-rootfs: " and is one key=value. It runs the user data the runtime put
# at /etc/onebox/user-data (when it starts with #!), serves /www over HTTP with busybox httpd
# (and, when its output is a terminal, a shell on it for the interactive console)
# on port ${ONEBOX_HTTP_PORT:-80}, and exits 0 on SIGTERM (or SIGINT) after stopping httpd.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
say() { echo "onebox-rootfs: $*"; }
say "booted"
# The runtime usually mounts these; mount what it did not.
[ -e /proc/self ] || mount -t proc proc /proc 2>/dev/null
[ -d /sys/kernel ] || mount -t sysfs sys /sys 2>/dev/null
host=$(hostname)
say "hostname=$host"
ip=$(ip -4 -o addr show scope global 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -1)
say "ip=${ip:-none}"

ud=/etc/onebox/user-data
if [ -f "$ud" ]; then
    say "user-data-sha256=$(sha256sum "$ud" | cut -d' ' -f1)"
    if [ "$(head -c 2 "$ud")" = '#!' ]; then
        chmod 700 "$ud" 2>/dev/null
        "$ud"
        say "user-data-exit=$?"
    fi
fi

port=${ONEBOX_HTTP_PORT:-80}
printf 'onebox-rootfs %s\n' "$host" > /www/index.html
httpd -f -p "$port" -h /www &
httpd_pid=$!
stopping=0
stop() {
    stopping=1
    say "stopping"
    kill "$httpd_pid" 2>/dev/null
    wait "$httpd_pid" 2>/dev/null
    exit 0
}
trap stop TERM INT
say "http-port=$port"
# The interactive console (openstack console url show --serial): a shell on init's terminal,
# started again when it exits. Only on a terminal: run with a pipe or /dev/null, nothing reads.
if [ -t 0 ]; then
    exec 3<&0
    ( while :; do setsid sh -i <&3 >&1 2>&1; sleep 1; done ) &
fi
say "ready"
# wait returns early when a trapped signal arrives; the trap then exits.
wait "$httpd_pid"
[ "$stopping" = 1 ] || say "httpd exited"
# Without the service, stay up until told to stop (sleep in the background so signals land).
while :; do
    sleep 3600 &
    wait $!
done
EOF
chmod 755 "$tree/sbin/init"

printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
    > "$tree/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$tree/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$tree/etc/hosts"
printf '# Written by the container runtime.\n' > "$tree/etc/resolv.conf"
printf 'onebox\n' > "$tree/etc/hostname"
printf 'NAME="onebox-rootfs"\nID=onebox-rootfs\nPRETTY_NAME="onebox container root filesystem (busybox)"\n' \
    > "$tree/etc/os-release"
printf 'onebox-rootfs\n' > "$tree/www/index.html"

clamp_mtimes "$tree"
tar --create --file "$OUT/onebox-rootfs.tar.tmp" --directory "$tree" --format=ustar \
    --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" .
mv "$OUT/onebox-rootfs.tar.tmp" "$OUT/onebox-rootfs.tar"

write_provenance "$PAYLOAD" "firmware/build-rootfs.sh" "${OUTPUTS[@]}"
ls -l "$OUT/onebox-rootfs.tar"
