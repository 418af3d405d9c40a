#!/usr/bin/env bash
# Builds the Debian package of onebox into target/debian/: the release binary, its shell
# completions and man page (generated from the CLI definition), then cargo-deb, which is
# installed from crates.io when missing. Extra arguments go to cargo-deb, e.g.
# `--deb-version 0.1.0-2` or `--no-build` (reuse the release binary).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
command -v dpkg-shlibdeps >/dev/null 2>&1 || {
    echo "package: installing dpkg-dev"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dpkg-dev >/dev/null
}
if ! cargo deb --version >/dev/null 2>&1; then
    echo "package: installing cargo-deb"
    cargo install cargo-deb --locked
fi

target="${CARGO_TARGET_DIR:-target}"
build=1
args=()
for a in "$@"; do
    if [ "$a" = "--no-build" ]; then build=0; else args+=("$a"); fi
done
if [ "$build" = 1 ]; then
    cargo build --release --locked
fi
bin="$target/release/onebox"
gen="$target/release/generated"
mkdir -p "$gen"
"$bin" generate completions bash > "$gen/onebox.bash"
"$bin" generate completions zsh > "$gen/_onebox"
"$bin" generate completions fish > "$gen/onebox.fish"
rm -rf "$gen/man"
mkdir -p "$gen/man"
"$bin" generate man --out-dir "$gen/man"
gzip -9nf "$gen"/man/*.1
cargo deb --locked --no-build "${args[@]}"
