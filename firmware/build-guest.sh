#!/usr/bin/env bash
# Builds onebox-tiny, the VM guest onebox ships, from Debian packages only:
#   onebox-tiny.vmlinux  the Debian kernel as an uncompressed ELF (QEMU boots it through its
#                        PVH entry, skipping the decompressor: seconds saved under TCG)
#   onebox-tiny.initrd   a busybox initramfs whose /init behaves like a minimal cloud-init
#                        guest (see firmware/README.md for what it prints on the console)
#   onebox-tiny.qcow2    a small qcow2 disk (64 MiB ext2, label onebox-root): the image a
#                        server's root overlay is made from
# into firmware/build/, with firmware/build/provenance/onebox-tiny.txt and SHA256SUMS.
# Options: --refresh, --verify, --force (see firmware/lib.sh). Needs apt-get (the archive),
# dpkg-deb, xz, gzip, GNU cpio, mke2fs (e2fsprogs) and qemu-img (qemu-utils).

. "$(dirname "$0")/lib.sh"

PAYLOAD=onebox-tiny
OUTPUTS=(onebox-tiny.vmlinux onebox-tiny.initrd onebox-tiny.qcow2)
if up_to_date "$PAYLOAD" "${OUTPUTS[@]}"; then
    note "$PAYLOAD is built and matches its provenance ($OUT)"
    exit 0
fi
for t in dpkg-deb xz gzip cpio mke2fs debugfs qemu-img; do
    command -v "$t" >/dev/null 2>&1 || die "$t is missing (scripts/setup.sh installs it)"
done

# The kernel package is whatever linux-image-amd64 depends on when pinning.
default_kernel=$(apt-cache depends linux-image-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
kpkg=$(input_name "$PAYLOAD" kernel "$default_kernel")
[ -n "$kpkg" ] || die "cannot tell which kernel package linux-image-amd64 depends on"
fetch_deb "$PAYLOAD" kernel "$kpkg"
kdeb=$FETCHED
fetch_deb "$PAYLOAD" busybox busybox-static
bbdeb=$FETCHED

# Modules the guest loads (their dependencies are added): the virtio NIC and disk, the IDE
# and AHCI CD-ROM and ISO 9660 (a config drive on either bus), and the ACPI power button
# with the input events busybox acpid reads.
WANT_MODULES="virtio_pci virtio_net virtio_blk ata_piix ahci sr_mod isofs button evdev"

kroot=$WORK/kernel
rm -rf "$kroot" && mkdir -p "$kroot"
dpkg-deb --fsys-tarfile "$kdeb" | tar -x -C "$kroot" --wildcards './boot/vmlinuz-*' './lib/modules/*'
kver=$(ls "$kroot/lib/modules")

# 1. The kernel: the xz stream inside the bzImage is the ELF vmlinux.
vmlinuz=$(ls "$kroot"/boot/vmlinuz-*)
off=$(grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -1 | cut -d: -f1)
[ -n "$off" ] || die "no xz stream in $vmlinuz"
# xz stops at the end of its stream and complains about the bzImage's trailing bytes.
tail -c +$((off + 1)) "$vmlinuz" | xz -dc > "$OUT/onebox-tiny.vmlinux.tmp" 2>/dev/null || true
[ "$(head -c 4 "$OUT/onebox-tiny.vmlinux.tmp" | od -An -c | tr -d ' ')" = '177ELF' ] ||
    die "extracting the ELF vmlinux from $vmlinuz failed"
mv "$OUT/onebox-tiny.vmlinux.tmp" "$OUT/onebox-tiny.vmlinux"

# 2. The initramfs.
tree=$WORK/initramfs
rm -rf "$tree"
mkdir -p "$tree"/{dev,proc,sys,run,tmp,root,mnt/config,etc/onebox,etc/acpi/PWRF,lib/modules}
chmod 1777 "$tree/tmp"
install_busybox "$bbdeb" "$tree"

# Module load order: each module after what it depends on (from the .modinfo "depends=").
declare -A seen=()
order=()
add_module() {
    local m=$1 ko deps d
    [ -n "${seen[$m]:-}" ] && return 0
    seen[$m]=1
    ko=$(find "$kroot/lib/modules/$kver" -name "$m.ko" | head -1)
    [ -n "$ko" ] || die "module $m not found in $kpkg"
    deps=$(grep -aoP 'depends=[^\x00]*' "$ko" | head -1 | cut -d= -f2 | tr ',' ' ')
    for d in $deps; do add_module "$d"; done
    cp "$ko" "$tree/lib/modules/$m.ko"
    order+=("$m")
}
for m in $WANT_MODULES; do add_module "$m"; done
printf '%s\n' "${order[@]}" > "$tree/etc/onebox/modules"

cat > "$tree/init" <<'EOF'
#!/bin/sh
# onebox-tiny: PID 1 is busybox init, so that poweroff, reboot and the ACPI power button go
# through its orderly shutdown. Everything else happens in /etc/onebox/rc (sysinit).
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
exec /sbin/init
EOF
chmod 755 "$tree/init"

cat > "$tree/etc/inittab" <<'EOF'
::sysinit:/etc/onebox/rc
::ctrlaltdel:/sbin/reboot
::shutdown:/etc/onebox/shutdown
EOF

cat > "$tree/etc/onebox/rc" <<'EOF'
#!/bin/sh
# onebox-tiny's boot: a minimal cloud-init. Every line it prints for a machine to read starts
# with "onebox-guest: " and is one key=value.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
say() { echo "onebox-guest: $*"; }
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs -o mode=755 run /run
say "booted uptime=$(cut -d' ' -f1 /proc/uptime)"
while read -r m; do insmod "/lib/modules/$m.ko" 2>/dev/null; done < /etc/onebox/modules
ip link set lo up
hostname localhost

# The ACPI power button (a graceful shutdown from the host) powers off through init.
acpid -c /etc/acpi -l /run/acpid.log

# Network: DHCP on eth0; the hook applies the address, router, static routes and DNS.
if ip link show eth0 >/dev/null 2>&1; then
    ip link set eth0 up
    if udhcpc -i eth0 -s /etc/onebox/udhcpc -t 10 -T 1 -n -q >/dev/null 2>&1; then
        say "ip=$(ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)"
    else
        say "ip=none"
    fi
else
    say "ip=none"
fi

# The root disk, when attached (virtio).
disk=$(findfs LABEL=onebox-root 2>/dev/null)
[ -n "$disk" ] && say "root-disk=$disk"

# Configuration: a config drive (iso9660 labelled config-2) first, else the metadata service.
cfg=/run/onebox-config
mkdir -p "$cfg"
source=none
i=0
while [ $i -lt 15 ]; do
    dev=$(findfs LABEL=config-2 2>/dev/null)
    if [ -n "$dev" ] && mount -t iso9660 -o ro "$dev" /mnt/config 2>/dev/null; then
        cp /mnt/config/openstack/latest/meta_data.json "$cfg/meta_data.json" 2>/dev/null
        cp /mnt/config/openstack/latest/user_data "$cfg/user_data" 2>/dev/null
        umount /mnt/config
        source="config-drive:$dev"
        break
    fi
    # Give late block devices (a CD-ROM's probe) a moment; stop early when there are none.
    ls /sys/class/block 2>/dev/null | grep -q . || break
    i=$((i + 1))
    sleep 0.2
done
if [ "$source" = none ] && ip -4 -o addr show eth0 2>/dev/null | grep -q inet; then
    # (busybox 1.35's wget -T crashes: timeout bounds it instead.)
    md=http://169.254.169.254/openstack/latest
    for try in 1 2 3; do
        if timeout 5 wget -q -O "$cfg/meta_data.json" "$md/meta_data.json" 2>/dev/null; then
            source=metadata-service
            timeout 5 wget -q -O "$cfg/user_data" "$md/user_data" 2>/dev/null || rm -f "$cfg/user_data"
            break
        fi
        rm -f "$cfg/meta_data.json"
        sleep 1
    done
fi
say "config=$source"

# Nova's meta_data.json, read with sed: the public key from "public_keys", and top-level
# string values once nested objects and arrays are folded away (so "name" is the server's,
# not a key's).
if [ -f "$cfg/meta_data.json" ]; then
    flat=$(tr -d '\n' < "$cfg/meta_data.json" | sed 's/^[^{]*{//; s/}[^}]*$//')
    key=$(printf '%s' "$flat" |
        sed -n 's/.*"public_keys": *{ *"[^"]*": *"\([^"]*\)".*/\1/p' | sed 's/\\n$//')
    top=$flat
    while :; do
        folded=$(printf '%s' "$top" | sed 's/\[[^][]*\]/0/g; s/{[^{}]*}/0/g')
        [ "$folded" = "$top" ] && break
        top=$folded
    done
    json_str() { printf '%s' "$top" | sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p"; }
    uuid=$(json_str uuid)
    name=$(json_str name)
    host=$(json_str hostname)
    [ -n "$uuid" ] && say "uuid=$uuid"
    [ -n "$name" ] && say "name=$name"
    [ -n "$key" ] && say "public-key=$key"
    if [ -n "$key" ]; then
        mkdir -p /root/.ssh && chmod 700 /root/.ssh
        echo "$key" > /root/.ssh/authorized_keys
    fi
    [ -n "$host" ] || host=$name
    if [ -n "$host" ]; then
        hostname "$host"
        echo "$host" > /etc/hostname
        say "hostname=$(hostname)"
    fi
fi
if [ -f "$cfg/user_data" ]; then
    say "user-data-sha256=$(sha256sum "$cfg/user_data" | cut -d' ' -f1)"
    if [ "$(head -c 2 "$cfg/user_data")" = '#!' ]; then
        cp "$cfg/user_data" /run/user-data
        chmod 700 /run/user-data
        /run/user-data
        say "user-data-exit=$?"
    fi
fi
say "ready uptime=$(cut -d' ' -f1 /proc/uptime)"
EOF
chmod 755 "$tree/etc/onebox/rc"

cat > "$tree/etc/onebox/shutdown" <<'EOF'
#!/bin/sh
echo "onebox-guest: shutdown"
EOF
chmod 755 "$tree/etc/onebox/shutdown"

# busybox acpid runs /etc/acpi/PWRF/00000080 on the power button.
cat > "$tree/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo "onebox-guest: power-button" > /dev/console
/sbin/poweroff
EOF
chmod 755 "$tree/etc/acpi/PWRF/00000080"

cat > "$tree/etc/onebox/udhcpc" <<'EOF'
#!/bin/sh
# udhcpc hook: the lease's address, default router, classless static routes (option 121,
# how a DHCP server points at 169.254.169.254) and DNS servers.
case "$1" in
deconfig)
    ip addr flush dev "$interface"
    ;;
bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    if [ -n "$staticroutes" ]; then
        set -- $staticroutes
        while [ $# -ge 2 ]; do
            if [ "$2" = 0.0.0.0 ]; then
                ip route replace "$1" dev "$interface"
            else
                ip route replace "$1" via "$2" dev "$interface"
            fi
            shift 2
        done
    elif [ -n "$router" ]; then
        ip route replace default via "${router%% *}" dev "$interface"
    fi
    # Metadata on the link itself when no route leads elsewhere.
    ip route get 169.254.169.254 >/dev/null 2>&1 ||
        ip route add 169.254.169.254/32 dev "$interface"
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    ;;
esac
exit 0
EOF
chmod 755 "$tree/etc/onebox/udhcpc"

printf 'root:x:0:0:root:/root:/bin/sh\n' > "$tree/etc/passwd"
printf 'root:x:0:\n' > "$tree/etc/group"
printf '127.0.0.1 localhost\n' > "$tree/etc/hosts"
: > "$tree/etc/resolv.conf"
printf 'NAME="onebox-tiny"\nID=onebox-tiny\nPRETTY_NAME="onebox tiny guest (%s, busybox)"\n' \
    "$kver" > "$tree/etc/os-release"

clamp_mtimes "$tree"
(cd "$tree" && find . -mindepth 1 | sort |
    cpio --quiet -o -H newc --reproducible -R 0:0 | gzip -n -9) > "$OUT/onebox-tiny.initrd.tmp"
mv "$OUT/onebox-tiny.initrd.tmp" "$OUT/onebox-tiny.initrd"

# 3. The disk: 64 MiB of ext2 labelled onebox-root with one file that names it.
disk=$WORK/disk
rm -rf "$disk" && mkdir -p "$disk/tree"
printf 'onebox-tiny root disk\n' > "$disk/tree/onebox-disk"
clamp_mtimes "$disk/tree"
truncate -s 64M "$disk/root.raw"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mke2fs -q -F -t ext2 -L onebox-root \
    -U 6f6e6562-6f78-4000-8000-00000000c0de -E root_owner=0:0,hash_seed=6f6e6562-6f78-4000-8000-000000005eed \
    -d "$disk/tree" "$disk/root.raw"
# mke2fs -d copies the source's access time, which reading the file moves: pin it.
for f in atime mtime ctime; do
    debugfs -w -R "set_inode_field /onebox-disk $f @$SOURCE_DATE_EPOCH" "$disk/root.raw" >/dev/null 2>&1
done
rm -f "$OUT/onebox-tiny.qcow2.tmp"
qemu-img convert -q -f raw -O qcow2 -c "$disk/root.raw" "$OUT/onebox-tiny.qcow2.tmp"
mv "$OUT/onebox-tiny.qcow2.tmp" "$OUT/onebox-tiny.qcow2"

write_provenance "$PAYLOAD" "firmware/build-guest.sh" "${OUTPUTS[@]}"
ls -l "${OUTPUTS[@]/#/$OUT/}"
