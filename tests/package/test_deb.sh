#!/usr/bin/env bash
# The Debian package, end to end, on this machine: build it, lint it, install it, start the
# installed unit's ExecStart the way systemd would and wait for READY=1, drive the API with
# the real openstack CLI, back up and restore, upgrade to a higher version, remove and purge.
# Needs root. Leaves the machine as it found it, apart from apt packages it installed: a
# /var/lib/onebox or /etc/onebox that existed before is moved aside and put back.
# The last line printed is "N passed, M failed"; the exit status is 0 only when M is 0.
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
started=$(date +%s)
passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
fail() { echo "FAIL - $*"; failed=$((failed + 1)); }
check() {
    local name=$1
    shift
    if "$@"; then ok "$name"; else fail "$name"; fi
}
mode_of() { stat -c %a "$1" 2>/dev/null; }

tmp=$(mktemp -d /tmp/onebox-pkg-test.XXXXXX)
server_pid=""
listener_pid=""
moved=()

cleanup() {
    [ -n "$listener_pid" ] && kill "$listener_pid" 2>/dev/null
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
    fi
    if dpkg-query -W -f='${Status}' onebox 2>/dev/null | grep -q 'ok installed\|config-files'; then
        dpkg --purge onebox >/dev/null 2>&1 || echo "cleanup: dpkg --purge onebox failed"
    fi
    for d in "${moved[@]}"; do
        rm -rf "$d"
        mv "$d.pre-package-test" "$d"
    done
    rm -rf "$tmp"
    echo "package test took $(($(date +%s) - started)) s"
    echo "$passed passed, $failed failed"
}

if [ "$(id -u)" != 0 ]; then
    echo "the package test installs a .deb and needs root"
    fail "running as root"
    cleanup
    exit 1
fi
if dpkg-query -W -f='${Status}' onebox 2>/dev/null | grep -q installed; then
    echo "a onebox package is already installed; this test would replace it"
    fail "machine without a onebox package"
    cleanup
    exit 1
fi
if [ -e /usr/bin/onebox ]; then
    echo "/usr/bin/onebox exists outside any package; this test would overwrite it"
    fail "machine without /usr/bin/onebox"
    cleanup
    exit 1
fi
trap 'cleanup; exit $((failed > 0))' EXIT
trap 'fail "interrupted"; exit 1' INT TERM
for d in /var/lib/onebox /etc/onebox; do
    if [ -e "$d" ]; then
        echo "moving the existing $d aside for the test"
        mv "$d" "$d.pre-package-test"
        moved+=("$d")
    fi
done

export DEBIAN_FRONTEND=noninteractive
venv="$repo/.venv-test"
openstack="$venv/bin/openstack"
python="$venv/bin/python"
[ -x "$python" ] || python=python3

echo "== build"
rm -f target/debian/onebox_*.deb
t0=$(date +%s)
if scripts/package.sh > "$tmp/build.log" 2>&1; then
    ok "scripts/package.sh builds the package ($(($(date +%s) - t0)) s)"
else
    tail -30 "$tmp/build.log"
    fail "scripts/package.sh builds the package"
    exit 1
fi
deb=$(ls -t target/debian/onebox_*.deb | head -1)
echo "package: $deb"

echo "== contents"
dpkg-deb -c "$deb" | awk '{print $NF}' > "$tmp/contents"
for f in ./usr/bin/onebox ./usr/lib/systemd/system/onebox.service ./etc/onebox/onebox.toml \
    ./usr/share/onebox/firmware/README.md ./usr/share/onebox/firmware/SHA256SUMS \
    ./usr/share/onebox/firmware/onebox-tiny.vmlinux ./usr/share/onebox/firmware/onebox-tiny.initrd \
    ./usr/share/onebox/firmware/onebox-tiny.qcow2 ./usr/share/onebox/firmware/onebox-rootfs.tar \
    ./usr/share/onebox/firmware/provenance/onebox-tiny.txt \
    ./usr/share/onebox/firmware/provenance/onebox-rootfs.txt \
    ./usr/share/bash-completion/completions/onebox \
    ./usr/share/zsh/vendor-completions/_onebox ./usr/share/fish/vendor_completions.d/onebox.fish \
    ./usr/share/man/man1/onebox.1.gz ./usr/share/man/man1/onebox-status.1.gz \
    ./usr/share/doc/onebox/copyright; do
    check "the package holds $f" grep -qx -- "$f" "$tmp/contents"
done
dpkg-deb -I "$deb" > "$tmp/info"
check "/etc/onebox/onebox.toml is a conffile" \
    sh -c "dpkg-deb --ctrl-tarfile '$deb' | tar -xO ./conffiles | grep -qx /etc/onebox/onebox.toml"
check "Depends comes from the shared libraries (libc6)" grep -q '^ Depends:.*libc6' "$tmp/info"
check "Depends on qemu-utils (the image service checks every disk with qemu-img)" \
    grep -q '^ Depends:.*qemu-utils' "$tmp/info"
check "Depends on nftables (the host table that guards the host from guests)" \
    grep -q '^ Depends:.*nftables' "$tmp/info"
check "Recommends libvirt-daemon-system, qemu-system-x86, dnsmasq-base, genisoimage (the VM backend), novnc (the VNC console's pages), node-xterm (the serial console's page)" \
    grep -q '^ Recommends: libvirt-daemon-system, qemu-system-x86, dnsmasq-base, genisoimage, novnc, node-xterm$' "$tmp/info"
check "nothing Python in the dependencies" \
    sh -c "! grep -E '^ (Pre-)?Depends:.*python' '$tmp/info'"

echo "== lintian"
# The checking tools this test needs, installed when missing: lintian, systemd-analyze (the
# systemd package; it verifies units without systemd running) and man.
need=()
command -v lintian >/dev/null 2>&1 || need+=(lintian)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v man >/dev/null 2>&1 || need+=(man-db)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}"
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
lintian --fail-on error --info "$deb" > "$tmp/lintian" 2>&1
lintian_rc=$?
sed 's/^/  /' "$tmp/lintian" | grep -E '^  [EWI]:' || true
check "lintian finds no errors" [ "$lintian_rc" = 0 ]

echo "== install"
if ! dpkg -i "$deb" > "$tmp/install.log" 2>&1; then
    apt-get install -f -y -qq >> "$tmp/install.log" 2>&1
fi
sed 's/^/  /' "$tmp/install.log"
check "dpkg -i installs onebox" \
    sh -c "dpkg-query -W -f='\${Status}' onebox | grep -q 'install ok installed'"
check "/usr/bin/onebox runs (--version)" sh -c "/usr/bin/onebox --version | grep -q '^onebox '"
check "/var/lib/onebox has mode 700" [ "$(mode_of /var/lib/onebox)" = 700 ]
check "postinst wrote clouds.yaml with mode 600" [ "$(mode_of /var/lib/onebox/clouds.yaml)" = 600 ]
check "postinst wrote admin-openrc with mode 600" [ "$(mode_of /var/lib/onebox/admin-openrc)" = 600 ]
check "postinst says where the admin credentials are" \
    grep -q '/var/lib/onebox/clouds.yaml' "$tmp/install.log"
check "the man page is installed" sh -c "man -w onebox >/dev/null 2>&1"
check "the installed firmware payloads match their SHA256SUMS" \
    sh -c "cd /usr/share/onebox/firmware && sha256sum --quiet -c SHA256SUMS"
check "postinst's onebox init imported the firmware as images" \
    grep -q 'imported public image onebox-tiny (' "$tmp/install.log"
check "postinst created the HTTPS key with mode 600" [ "$(mode_of /var/lib/onebox/tls/server.key)" = 600 ]
check "postinst created the box's CA key with mode 600" [ "$(mode_of /var/lib/onebox/tls/ca.key)" = 600 ]
check "clouds.yaml names the box's CA as cacert" \
    grep -q "cacert: '/var/lib/onebox/tls/ca.crt'" /var/lib/onebox/clouds.yaml
check "clouds.yaml's auth_url is HTTPS" grep -q 'auth_url: https://' /var/lib/onebox/clouds.yaml

echo "== systemd-analyze verify"
unit=/usr/lib/systemd/system/onebox.service
systemd-analyze verify "$unit" > "$tmp/verify" 2>&1
verify_rc=$?
sed 's/^/  /' "$tmp/verify"
check "systemd-analyze verify accepts the installed unit" [ "$verify_rc" = 0 ]

# Free loopback ports, so that nothing else on the machine (another onebox on 8774) is hit:
# the HTTPS listener and the plain one for local tools.
free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
plain_port=$(free_port)
sed -i -e "s/^listen = .*/listen = \"127.0.0.1:$port\"/" \
    -e "s/^plain_listen = .*/plain_listen = \"127.0.0.1:$plain_port\"/" /etc/onebox/onebox.toml
base="http://127.0.0.1:$plain_port"
tls_base="https://127.0.0.1:$port"
os() {
    OS_CLIENT_CONFIG_FILE=/var/lib/onebox/clouds.yaml "$openstack" --os-cloud onebox-admin \
        --os-auth-url "$base/identity" "$@"
}

# Runs the installed unit's ExecStart as systemd would: from /, with a bare environment and
# NOTIFY_SOCKET. Waits for READY=1 on that socket when $1 is "notify".
start_unit() {
    local exec
    exec=$(sed -n 's/^ExecStart=//p' "$unit")
    read -ra argv <<< "$exec"
    local sock="$tmp/notify.sock"
    rm -f "$sock" "$tmp/ready"
    "$python" - "$sock" "$tmp/ready" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(60)
while True:
    msg = s.recv(4096).decode()
    if "READY=1" in msg.split("\n"):
        open(sys.argv[2], "w").write(msg)
        break
PY
    listener_pid=$!
    for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
    (cd / && exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin NOTIFY_SOCKET="$sock" \
        "${argv[@]}") > "$tmp/serve.log" 2>&1 &
    server_pid=$!
    wait "$listener_pid"
    local rc=$?
    listener_pid=""
    [ "$rc" = 0 ] && [ -f "$tmp/ready" ]
}

stop_unit() {
    kill -TERM "$server_pid" && wait "$server_pid"
    local rc=$?
    server_pid=""
    return $rc
}

echo "== run the installed unit"
check "ExecStart sends READY=1 to NOTIFY_SOCKET" start_unit
check "onebox status: the listener answers" sh -c "onebox status > '$tmp/status'"
sed 's/^/  /' "$tmp/status"
check "onebox status counts projects" grep -qE '^  projects +[0-9]+' "$tmp/status"
token_issued() { os token issue -f value -c id | grep -q .; }
check "openstack token issue with the installed clouds.yaml" token_issued
https_token() {
    OS_CLIENT_CONFIG_FILE=/var/lib/onebox/clouds.yaml "$openstack" --os-cloud onebox-admin \
        --os-auth-url "$tls_base/identity" token issue -f value -c id | grep -q .
}
check "openstack token issue over HTTPS, verified with clouds.yaml's cacert" https_token
plain_to_tls() {
    "$python" - "$port" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
data = b""
try:
    while chunk := s.recv(4096):
        data += chunk
except OSError:
    pass
sys.exit(1 if b"HTTP/1." in data else 0)
PY
}
check "plain HTTP to the HTTPS port gets no answer" plain_to_tls
project_created() { os project create --description "kept across upgrades" pkgtest -f value -c id >/dev/null; }
check "openstack project create" project_created
firmware_images() {
    os image list -f value -c Name -c Status > "$tmp/images" &&
        for n in onebox-tiny-kernel onebox-tiny-ramdisk onebox-tiny onebox-rootfs; do
            grep -qx "$n active" "$tmp/images" || return 1
        done
}
check "openstack image list shows the firmware images, active" firmware_images
check "onebox backup while onebox serves" onebox backup --to "$tmp/backup.tar"
check "the backup has mode 600" [ "$(mode_of "$tmp/backup.tar")" = 600 ]
check "the backup holds the database and the credentials" \
    sh -c "tar -tf '$tmp/backup.tar' | sort | tr '\n' ' ' | grep -qx 'admin-openrc clouds.yaml demo-openrc onebox.db '"
check "onebox restore refuses while onebox serves" sh -c "! onebox restore --from '$tmp/backup.tar' 2>'$tmp/refused'"
check "  ... and says to stop it" grep -q 'stop it first' "$tmp/refused"
check "SIGTERM stops onebox cleanly" stop_unit
check "onebox restore after the stop" onebox restore --from "$tmp/backup.tar"

echo "== upgrade"
t0=$(date +%s)
check "the package rebuilt with version 0.1.0-2" \
    sh -c "scripts/package.sh --no-build --deb-version 0.1.0-2 > '$tmp/build2.log' 2>&1"
echo "  (rebuilt in $(($(date +%s) - t0)) s)"
deb2=target/debian/onebox_0.1.0-2_amd64.deb
dpkg -i --force-confold "$deb2" > "$tmp/upgrade.log" 2>&1
upgrade_rc=$?
sed 's/^/  /' "$tmp/upgrade.log"
check "dpkg -i upgrades to 0.1.0-2" [ "$upgrade_rc" = 0 ]
check "the installed version is 0.1.0-2" \
    sh -c "[ \"\$(dpkg-query -W -f='\${Version}' onebox)\" = 0.1.0-2 ]"
check "postinst ran onebox db migrate" grep -q 'schema is at version\|applied .* migration' "$tmp/upgrade.log"
check "the upgrade's onebox init imported no firmware twice" \
    grep -q '^4 firmware image(s) already imported' "$tmp/upgrade.log"
check "the upgrade backed up onebox.db" sh -c "ls /var/lib/onebox/onebox.db.v*.bak >/dev/null 2>&1"
check "the database backup has mode 600" \
    sh -c "for f in /var/lib/onebox/onebox.db.v*.bak; do [ \"\$(stat -c %a \$f)\" = 600 ] || exit 1; done"
check "the schema is current" sh -c "onebox db version | grep -qE '^([0-9]+) \(this onebox writes \1\)'"
check "the edited conffile was kept" grep -q "127.0.0.1:$port" /etc/onebox/onebox.toml
check "the clouds.yaml was kept" [ "$(mode_of /var/lib/onebox/clouds.yaml)" = 600 ]
check "the upgraded unit starts (READY=1)" start_unit
project_kept() { os project show pkgtest -f value -c description | grep -qx 'kept across upgrades'; }
check "the project still exists after the upgrade" project_kept
container_started() {
    OS_CLIENT_CONFIG_FILE=/var/lib/onebox/clouds.yaml "$openstack" --os-cloud onebox-admin \
        --os-auth-url "$base/identity" server create --image onebox-rootfs --flavor m1.tiny \
        --nic auto --wait pkg-ctr -f value -c status | grep -qx ACTIVE
}
if onebox status 2>/dev/null | grep -q '^  containers  available'; then
    check "a container server runs before the package is removed" container_started
fi
check "SIGTERM stops the upgraded onebox" stop_unit

echo "== remove and purge"
dpkg --remove onebox > "$tmp/remove.log" 2>&1
check "dpkg --remove" [ $? = 0 ]
check "remove deletes /usr/bin/onebox" [ ! -e /usr/bin/onebox ]
check "remove keeps /var/lib/onebox/onebox.db" [ -f /var/lib/onebox/onebox.db ]
check "remove keeps /etc/onebox/onebox.toml" [ -f /etc/onebox/onebox.toml ]
# What onebox started outlives the service (by design) but not the package.
leftovers() {
    local p
    for p in /proc/[0-9]*; do
        # The service or a container supervisor (the binary may be deleted by now).
        case "$(readlink "$p/exe" 2>/dev/null)" in
            /usr/bin/onebox*) echo "  onebox process ${p#/proc/}"; return 1 ;;
        esac
    done
    pgrep -f 'dnsmasq.*/var/lib/onebox' >/dev/null && { echo "  a dnsmasq of onebox's"; return 1; }
    ls /sys/class/net | grep -q '^obr' && { echo "  a project bridge"; return 1; }
    if command -v nft >/dev/null 2>&1; then
        for t in "ip onebox" "inet onebox" "bridge onebox"; do
            if nft list table $t >/dev/null 2>&1; then
                echo "  onebox's nft table $t"
                return 1
            fi
        done
    fi
    return 0
}
check "remove leaves no onebox process, container, dnsmasq, bridge or nft table" leftovers
dpkg --purge onebox > "$tmp/purge.log" 2>&1
check "dpkg --purge" [ $? = 0 ]
check "purge leaves no onebox process, container, dnsmasq, bridge or nft table" leftovers
check "purge leaves no cgroup of onebox's" \
    sh -c "! ls -d /sys/fs/cgroup/onebox /sys/fs/cgroup/*/onebox 2>/dev/null | grep -q ."
for p in /var/lib/onebox /etc/onebox /usr/bin/onebox "$unit" \
    /etc/systemd/system/multi-user.target.wants/onebox.service \
    /var/lib/systemd/deb-systemd-helper-enabled/onebox.service.dsh-also \
    /var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/onebox.service \
    /usr/share/onebox /usr/share/man/man1/onebox.1.gz; do
    check "purge leaves no $p" [ ! -e "$p" ]
done
check "dpkg knows no onebox any more" sh -c "! dpkg-query -W onebox >/dev/null 2>&1"
