#!/usr/bin/env bash
# Installs what building (and, with --with-tests, testing) onebox needs on Debian 12 or
# Ubuntu, only where it is missing: a C compiler for the bundled SQLite, qemu-img for image
# checks, Rust, and Python's venv for the client tests. Safe to run again; a ready machine
# runs no apt at all.
# Sourced by run.sh, test.sh and package.sh (from the repository's root), so it leaves cargo on
# PATH. Builds the firmware payloads (firmware/build) when they are missing or out of date.

need=()
command -v cc >/dev/null 2>&1 || need+=(build-essential)
# qemu-img checks every uploaded image (and the image tests make qcow2 files with it).
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
# The firmware recipes (firmware/build-*.sh): busybox and the guest kernel are downloaded as
# .debs, never installed; these are the tools that unpack and pack them.
command -v cpio >/dev/null 2>&1 || need+=(cpio)
command -v mke2fs >/dev/null 2>&1 || need+=(e2fsprogs)
command -v xz >/dev/null 2>&1 || need+=(xz-utils)
if [ "${1:-}" = "--with-tests" ]; then
    command -v python3 >/dev/null 2>&1 || need+=(python3)
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv python3-pip)
    # The bare-metal tests drive a simulated BMC (ipmi_sim) and compare with ipmitool.
    command -v ipmi_sim >/dev/null 2>&1 || need+=(openipmi)
    command -v ipmitool >/dev/null 2>&1 || need+=(ipmitool)
    command -v socat >/dev/null 2>&1 || need+=(socat)
    # The container tests build their root filesystem from a static busybox; the container
    # benchmark compares with crun.
    [ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || need+=(busybox-static)
    command -v crun >/dev/null 2>&1 || need+=(crun)
    # The dnsmasq test makes and removes a bridge of its own with ip(8).
    command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || need+=(iproute2)
    # The console pages are opened in headless Chromium, driven by selenium.
    command -v chromium >/dev/null 2>&1 || need+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
fi
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null 2>&1; then
    command -v curl >/dev/null 2>&1 || need+=(curl ca-certificates)
fi
# The VM backend: libvirtd and QEMU (without Debian's systemd integration and its NAT
# "default" network), libvirt's headers for the build, dnsmasq for guests' DHCP, and
# genisoimage for config drives. qemu-system-x86 needs the qemu-utils of its own release:
# a newer qemu-utils (bookworm-backports) breaks it, so it is pinned to the same version.
qemu_pin=()
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    command -v libvirtd >/dev/null 2>&1 || [ -x /usr/sbin/libvirtd ] || need+=(libvirt-daemon)
    [ -e /usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so ] \
        || [ -n "$(find /usr/lib -name 'libvirt_driver_qemu.so' 2>/dev/null | head -1)" ] \
        || need+=(libvirt-daemon-driver-qemu)
    command -v virsh >/dev/null 2>&1 || need+=(libvirt-clients)
    pkg-config --exists libvirt 2>/dev/null || need+=(libvirt-dev pkgconf)
    command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
    command -v genisoimage >/dev/null 2>&1 || need+=(genisoimage)
    # nft writes onebox's table when [network] nat_uplink lets guests out (and the NAT test
    # checks it inside namespaces of its own).
    command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || need+=(nftables)
    # noVNC's pages for the VNC console in a browser (served by onebox at /console/vnc/).
    [ -f /usr/share/novnc/vnc_lite.html ] || need+=(novnc)
    # xterm.js for the serial console in a browser (/console/serial/xterm.html): Debian ships
    # its modules in node-xterm (libjs-xterm's own browser file only requires them).
    [ -f /usr/share/nodejs/xterm/lib/xterm.js ] || need+=(node-xterm)
    if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
        need+=(qemu-system-x86)
        qemu_pin=(x)
    fi
fi
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    if [ ${#qemu_pin[@]} -gt 0 ]; then
        qv=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/{print $2}')
        keep=()
        for p in "${need[@]}"; do [ "$p" = qemu-utils ] || keep+=("$p"); done
        need=("${keep[@]}" "qemu-utils=$qv")
    fi
    apt-get install -y -qq --no-install-recommends --allow-downgrades "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: installing the Rust toolchain with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
        | sh -s -- -y --profile minimal -c rustfmt,clippy
    export PATH="$HOME/.cargo/bin:$PATH"
fi
# The payloads onebox ships and `onebox init` imports (firmware/README.md): built when missing
# or when the committed provenance changed; otherwise the recipes only check them (~1 s).
# ONEBOX_FIRMWARE_REFRESH=1 builds from the archive's current packages when the pinned ones
# are gone from it (the recipes then rewrite firmware/provenance/: commit it).
fw_args=()
[ "${ONEBOX_FIRMWARE_REFRESH:-0}" = 1 ] && fw_args+=(--refresh)
{ firmware/build-guest.sh "${fw_args[@]}" && firmware/build-rootfs.sh "${fw_args[@]}"; } 2>&1 |
    sed 's/^/setup: /' >&2 || true
[ -f firmware/build/onebox-tiny.vmlinux ] && [ -f firmware/build/onebox-rootfs.tar ] ||
    echo "setup: the firmware payloads were not built (above: why); onebox init will import none" >&2
