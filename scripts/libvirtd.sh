#!/usr/bin/env bash
# Starts or stops libvirtd for onebox's VM backend on a machine where no init system manages
# it (containers, CI). `start` does nothing when libvirtd already answers on qemu:///system
# (systemd's, or one started earlier); otherwise it writes the minimal QEMU configuration
# libvirtd needs without Debian's libvirt-daemon-system package, starts the monolithic
# daemon and records its PID. `stop` stops only a daemon this script started (by that PID),
# after destroying the domains and networks named onebox-* that are still there.
set -euo pipefail
pidfile=/run/onebox-libvirtd.pid
uri=qemu:///system

answers() { virsh -q -c "$uri" version >/dev/null 2>&1; }

ours() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

start() {
    if answers; then
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "libvirtd.sh: libvirtd is not running and starting it needs root" >&2
        return 1
    fi
    [ -x /usr/sbin/libvirtd ] || { echo "libvirtd.sh: libvirtd is not installed (scripts/setup.sh)" >&2; return 1; }
    # libvirt resolves its default QEMU user before it reads qemu.conf: it must exist.
    getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
    getent passwd libvirt-qemu >/dev/null ||
        useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
    mkdir -p /var/log/libvirt/qemu /etc/libvirt
    # QEMU as root: as libvirt-qemu it cannot open /dev/kvm here, and libvirt then re-probes
    # QEMU's capabilities on every domain start (tens of seconds). Serial and stdio logs go to
    # files directly, so no virtlogd is needed.
    if [ ! -f /etc/libvirt/qemu.conf ]; then
        printf 'user = "root"\ngroup = "root"\nsecurity_driver = "none"\nstdio_handler = "file"\n' \
            > /etc/libvirt/qemu.conf
    fi
    /usr/sbin/libvirtd --daemon --pid-file="$pidfile"
    for _ in $(seq 1 600); do
        answers && return 0
        sleep 0.1
    done
    echo "libvirtd.sh: libvirtd did not answer within 60 s" >&2
    return 1
}

stop() {
    ours || return 0
    local v="virsh -q -c $uri"
    for d in $($v list --all --name | grep '^onebox-' || true); do
        $v destroy "$d" >/dev/null 2>&1 || true
        $v undefine --managed-save --nvram "$d" >/dev/null 2>&1 || $v undefine "$d" >/dev/null 2>&1 || true
    done
    local p
    p=$(cat "$pidfile")
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    rm -f "$pidfile"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) if answers; then echo running; else echo stopped; exit 1; fi ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
