#!/usr/bin/env bash
# Fetches the unmodified Linux guest the tests boot: Debian bookworm's
# ppc64el kernel (linux-image-6.1.0-*-powerpc64le: its vmlinux, and the
# modules below from the same package) and
# busybox-static, from the Debian mirror this machine's apt uses, into a
# cache (default target/linux). Packages are checked against the SHA256 in
# the archive's index. Prints nothing but progress on stderr; on success
# the cache holds vmlinux, modules/*.ko, busybox and versions.
#   scripts/linux-guest.sh [CACHE_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/apt-mirror.sh"
cache=${1:-$here/../target/linux}
mkdir -p "$cache"
cd "$cache"
say() { echo "linux-guest: $*" >&2; }

# The modules the guests load, by path in the package: the virtual
# Ethernet (ibmveth); the virtual SCSI adapter and disks (ibmvscsi, sd_mod
# and what they depend on); ext2 through ext4 (and its dependencies).
modules=(
    drivers/net/ethernet/ibm/ibmveth.ko
    drivers/scsi/scsi_transport_srp.ko
    drivers/scsi/ibmvscsi/ibmvscsi.ko
    crypto/crct10dif_common.ko
    lib/crc-t10dif.ko
    lib/crc64.ko
    lib/crc64-rocksoft.ko
    block/t10-pi.ko
    drivers/scsi/sd_mod.ko
    lib/crc16.ko
    crypto/crc32c_generic.ko
    fs/mbcache.ko
    fs/jbd2/jbd2.ko
    fs/ext4/ext4.ko
)
cached() {
    local m
    [ -s vmlinux ] && [ -s busybox ] && [ -s versions ] || return 1
    for m in "${modules[@]}"; do [ -s "modules/$(basename "$m")" ] || return 1; done
}
if cached; then
    exit 0
fi
mirror=$(debian_mirror)
if [ ! -s Packages ]; then
    say "fetching the ppc64el package index from $mirror"
    curl -sSfL --retry 3 -o Packages.xz "$mirror/dists/bookworm/main/binary-ppc64el/Packages.xz"
    xz -dc Packages.xz > Packages.tmp && mv Packages.tmp Packages && rm -f Packages.xz
fi

# field PACKAGE FIELD: one field of one stanza of the index.
field() {
    awk -v p="$1" -v f="$2" '$1 == "Package:" { cur = $2 } cur == p && $1 == f":" { print $2; exit }' Packages
}
kpkg=$(awk '$1 == "Package:" && $2 ~ /^linux-image-6\.1\.0-[0-9]+-powerpc64le$/ { print $2 }' Packages |
    sort -t- -k5,5n | tail -1)
[ -n "$kpkg" ] || { say "no linux-image-6.1.0-*-powerpc64le in the index"; exit 1; }

fetch() { # PACKAGE OUT.deb
    local file sum
    file=$(field "$1" Filename)
    sum=$(field "$1" SHA256)
    if [ ! -s "$2" ] || ! echo "$sum  $2" | sha256sum -c --quiet 2>/dev/null; then
        say "fetching $1 ($(field "$1" Version), $(( $(field "$1" Size) / 1024 )) KiB)"
        curl -sSfL --retry 3 -o "$2.part" "$mirror/$file"
        echo "$sum  $2.part" | sha256sum -c --quiet || { say "$1: SHA256 mismatch"; exit 1; }
        mv "$2.part" "$2"
    fi
}
fetch "$kpkg" kernel.deb
fetch busybox-static busybox.deb

rm -rf x modules vmlinux.gz && mkdir x modules
dpkg-deb --fsys-tarfile kernel.deb |
    tar -x -C x --wildcards './boot/vmlinux-*' "${modules[@]/#/./lib/modules/*/kernel/}"
dpkg-deb --fsys-tarfile busybox.deb | tar -x -C x ./bin/busybox
mv x/boot/vmlinux-* vmlinux
for m in "${modules[@]}"; do mv x/lib/modules/*/kernel/"$m" modules/; done
mv x/bin/busybox busybox
# The versions come from the index: written before it goes.
printf '%s %s\nbusybox-static %s\n' "$kpkg" "$(field "$kpkg" Version)" "$(field busybox-static Version)" > versions
rm -rf x kernel.deb busybox.deb Packages
say "cached in $cache: $(tr '\n' ';' < versions)"
