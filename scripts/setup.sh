#!/usr/bin/env bash
# Installs what building (and, with --with-tests, testing) onebox needs on Debian 12 or
# Ubuntu, only where it is missing: a C compiler for the bundled SQLite, qemu-img for image
# checks, Rust, and Python's venv for the client tests. Safe to run again; a ready machine
# runs no apt at all.
# Sourced by run.sh and test.sh, so it leaves cargo on PATH.

need=()
command -v cc >/dev/null 2>&1 || need+=(build-essential)
# qemu-img checks every uploaded image (and the image tests make qcow2 files with it).
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
if [ "${1:-}" = "--with-tests" ]; then
    command -v python3 >/dev/null 2>&1 || need+=(python3)
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv python3-pip)
    # The container tests build their root filesystem from a static busybox; the container
    # benchmark compares with crun.
    [ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || need+=(busybox-static)
    command -v crun >/dev/null 2>&1 || need+=(crun)
fi
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null 2>&1; then
    command -v curl >/dev/null 2>&1 || need+=(curl ca-certificates)
fi
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: installing the Rust toolchain with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
        | sh -s -- -y --profile minimal -c rustfmt,clippy
    export PATH="$HOME/.cargo/bin:$PATH"
fi
