# Shared by the firmware recipes (sourced, not run). Pins Debian package inputs to the
# versions recorded in firmware/provenance/, fetches them with `apt-get download`, checks
# their sha256, and writes each payload's provenance and the SHA256SUMS of every output.
#
# Options every recipe takes:
#   --refresh  build from the archive's current candidate versions and rewrite the committed
#              provenance (firmware/provenance/<payload>.txt) with what was used and made
#   --verify   fail when an output's sha256 differs from the committed provenance (by default
#              a difference is reported, since tool versions, e.g. qemu-img's, may change bytes)
#   --force    rebuild even if the outputs exist and match the committed provenance

set -euo pipefail
export LC_ALL=C
umask 022

FW_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${ONEBOX_FIRMWARE_OUT:-$FW_DIR/build}
WORK=$OUT/work
DEBS=$WORK/debs
COMMITTED=$FW_DIR/provenance
# Every timestamp in the payloads. Fixed, so that a rebuild from the same inputs gives the
# same bytes; a refresh keeps it (the package versions say what changed).
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1764374400}
export TZ=UTC

REFRESH=0
VERIFY=0
FORCE=0
for arg in "$@"; do
    case "$arg" in
        --refresh) REFRESH=1 ;;
        --verify) VERIFY=1 ;;
        --force) FORCE=1 ;;
        -h|--help)
            sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
            exit 0
            ;;
        *) echo "unknown option: $arg" >&2; exit 2 ;;
    esac
done

mkdir -p "$OUT/provenance" "$DEBS"

die() { echo "firmware: $*" >&2; exit 1; }
note() { echo "firmware: $*" >&2; }

# The committed version of a package input of payload $1, or nothing.
committed_version() {
    local f=$COMMITTED/$1.txt
    [ -f "$f" ] || return 0
    awk -v p="$2" '$1 == "deb" && $2 == p { print $3 }' "$f"
}

committed_deb_sha() {
    awk -v p="$2" '$1 == "deb" && $2 == p { print $5 }' "$COMMITTED/$1.txt"
}

committed_output_sha() {
    local f=$COMMITTED/$1.txt
    [ -f "$f" ] || return 0
    awk -v o="$2" '$1 == "output" && $2 == o { print $3 }' "$f"
}

candidate_version() {
    apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }'
}

# The Debian package name a committed input of payload $1 has under role $2 (e.g. the kernel
# package's name changes with its ABI); with --refresh, or when nothing is committed, $3.
input_name() {
    local f=$COMMITTED/$1.txt name=""
    if [ "$REFRESH" = 0 ] && [ -f "$f" ]; then
        name=$(awk -v r="$2" '$1 == "role" && $2 == r { print $3 }' "$f")
    fi
    echo "${name:-$3}"
}

PROV_LINES=()

# The cached .deb of package $1 at version $2, if any.
find_deb() {
    local d
    for d in "$DEBS/${1}_"*.deb; do
        [ -f "$d" ] && [ "$(dpkg-deb -f "$d" Version)" = "$2" ] && { echo "$d"; return 0; }
    done
    return 0
}

# fetch_deb PAYLOAD ROLE PACKAGE: downloads PACKAGE at its pinned version (the committed one,
# or the archive's candidate with --refresh) into $DEBS, checks it, and sets FETCHED to the
# .deb's path (not printed: the provenance lines must stay in this shell).
fetch_deb() {
    local payload=$1 role=$2 pkg=$3 ver want cand deb sha arch
    want=$(committed_version "$payload" "$pkg")
    if [ "$REFRESH" = 1 ] || [ -z "$want" ]; then
        [ -n "$want" ] || [ "$REFRESH" = 1 ] ||
            die "no committed version of $pkg for $payload; run with --refresh to pin one"
        ver=$(candidate_version "$pkg")
        [ -n "$ver" ] && [ "$ver" != "(none)" ] ||
            die "the archive offers no $pkg (run apt-get update?)"
    else
        ver=$want
        cand=$(candidate_version "$pkg")
        if [ -n "$cand" ] && [ "$cand" != "$ver" ]; then
            note "$pkg: building with the pinned $ver; the archive now offers $cand (--refresh to move)"
        fi
    fi
    deb=$(find_deb "$pkg" "$ver")
    if [ -z "$deb" ]; then
        (cd "$DEBS" && apt-get download -q "$pkg=$ver" >/dev/null 2>"$DEBS/.download.log") || {
            cat "$DEBS/.download.log" >&2
            die "$pkg $ver could not be downloaded; if the archive no longer has it, run with --refresh (the provenance changes)"
        }
        deb=$(find_deb "$pkg" "$ver")
    fi
    [ -n "$deb" ] || die "downloaded no .deb for $pkg $ver"
    sha=$(sha256sum "$deb" | cut -d' ' -f1)
    arch=$(dpkg-deb -f "$deb" Architecture)
    if [ "$REFRESH" = 0 ] && [ -n "$want" ]; then
        local csha
        csha=$(committed_deb_sha "$payload" "$pkg")
        [ "$sha" = "$csha" ] ||
            die "$pkg $ver: .deb sha256 $sha differs from the committed $csha"
    fi
    PROV_LINES+=("role $role $pkg" "deb $pkg $ver $arch $sha")
    FETCHED=$deb
}

# Sets every mtime under $1 to SOURCE_DATE_EPOCH (symlinks included).
clamp_mtimes() {
    find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
}

tool_version() {
    "$@" 2>&1 | head -1
}

# write_provenance PAYLOAD COMMAND OUTPUT...: the payload's provenance next to the outputs;
# compares the outputs with the committed provenance, and with --refresh commits the new one.
write_provenance() {
    local payload=$1 cmd=$2
    shift 2
    local f=$OUT/provenance/$payload.txt o sha want differ=0
    {
        echo "# Provenance of the $payload payload: the Debian packages it was built from (name,"
        echo "# version, architecture, sha256 of the .deb), the command that built it, the tools"
        echo "# that shaped the bytes (informational), and the sha256 of each output."
        echo "payload $payload"
        echo "command $cmd"
        echo "source_date_epoch $SOURCE_DATE_EPOCH"
        printf '%s\n' "${PROV_LINES[@]}"
        echo "tool gzip $(tool_version gzip --version | awk '{print $2}')"
        echo "tool tar $(tool_version tar --version | awk '{print $NF}')"
        if command -v cpio >/dev/null 2>&1; then echo "tool cpio $(tool_version cpio --version | awk '{print $NF}')"; fi
        if command -v qemu-img >/dev/null 2>&1; then echo "tool qemu-img $(tool_version qemu-img --version | awk '{print $3}')"; fi
        if command -v mke2fs >/dev/null 2>&1; then echo "tool mke2fs $(tool_version mke2fs -V | awk '{print $2}')"; fi
        for o in "$@"; do
            echo "output $o $(sha256sum "$OUT/$o" | cut -d' ' -f1)"
        done
    } > "$f.tmp"
    mv "$f.tmp" "$f"
    for o in "$@"; do
        sha=$(sha256sum "$OUT/$o" | cut -d' ' -f1)
        want=$(committed_output_sha "$payload" "$o")
        if [ "$REFRESH" = 0 ] && [ -n "$want" ] && [ "$sha" != "$want" ]; then
            note "$o: sha256 $sha differs from the committed $want (see the tool versions in $f)"
            differ=1
        fi
    done
    write_sums
    if [ "$REFRESH" = 1 ]; then
        mkdir -p "$COMMITTED"
        cp "$f" "$COMMITTED/$payload.txt"
        note "committed provenance updated: $COMMITTED/$payload.txt"
    fi
    if [ "$differ" = 1 ] && [ "$VERIFY" = 1 ]; then
        die "$payload does not rebuild to the committed bytes"
    fi
    if [ "$differ" = 0 ] && [ "$REFRESH" = 0 ]; then
        note "$payload rebuilt to the committed sha256 of every output"
    fi
}

# SHA256SUMS of every payload file in $OUT, in `sha256sum -c` format.
write_sums() {
    (cd "$OUT" && find . -maxdepth 1 -type f -name 'onebox-*' -printf '%f\n' | sort |
        xargs -r sha256sum > SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
}

# up_to_date PAYLOAD OUTPUT...: true when the outputs were built from the committed inputs and
# are intact (their sha256 is the one recorded at build time), so a second run is a no-op
# unless --force or --refresh.
up_to_date() {
    local payload=$1 o want built=$OUT/provenance/$1.txt
    shift
    [ "$FORCE" = 0 ] && [ "$REFRESH" = 0 ] || return 1
    [ -f "$built" ] && [ -f "$COMMITTED/$payload.txt" ] || return 1
    [ "$(grep '^deb ' "$built")" = "$(grep '^deb ' "$COMMITTED/$payload.txt")" ] || return 1
    for o in "$@"; do
        [ -f "$OUT/$o" ] || return 1
        want=$(awk -v o="$o" '$1 == "output" && $2 == o { print $3 }' "$built")
        [ "$(sha256sum "$OUT/$o" | cut -d' ' -f1)" = "$want" ] || return 1
    done
    write_sums
    return 0
}

# Installs the busybox of a busybox-static .deb ($1) into tree $2 with one absolute symlink
# per applet (the list comes from that very binary).
install_busybox() {
    local deb=$1 tree=$2 x
    x=$(mktemp -d "$WORK/busybox.XXXXXX")
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$x" ./bin/busybox
    mkdir -p "$tree/bin"
    cp "$x/bin/busybox" "$tree/bin/busybox"
    chmod 755 "$tree/bin/busybox"
    rm -rf "$x"
    "$tree/bin/busybox" --list-full | sort | while read -r path; do
        [ "$path" = bin/busybox ] && continue
        mkdir -p "$tree/$(dirname "$path")"
        [ -e "$tree/$path" ] || ln -s /bin/busybox "$tree/$path"
    done
}
