#!/usr/bin/env bash
# Installs what building and booting the firmware needs, and says what it
# does. Safe to run again: it only acts on what is missing.
#   - rust-src for the nightly toolchain (build-std)
#   - qemu-system-ppc >= 10 from Debian bookworm-backports (bookworm's 7.2
#     is too old for this firmware's powernv8 use)
#   - binutils-powerpc64le-linux-gnu (objdump for the no-FP/vector check)
#   - opal-utils (pflash, the OpenPOWER flash tool the PNOR image is
#     checked with)
set -euo pipefail

say() { echo "setup: $*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        say "need root to run: $*"; exit 1
    fi
}

need_qemu() {
    command -v qemu-system-ppc64 >/dev/null || return 0
    local v
    v=$(qemu-system-ppc64 --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p')
    [ "${v:-0}" -lt 10 ]
}

. "$(dirname "$0")/apt-mirror.sh"

apt_updated=0
apt_update() {
    if [ "$apt_updated" = 0 ]; then
        as_root apt-get update -q >/dev/null
        apt_updated=1
    fi
}

if ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
    say "installing rust-src for the nightly toolchain (needed by build-std)"
    rustup component add rust-src --toolchain nightly
fi

if need_qemu; then
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        mirror=$(debian_mirror) || exit 1
        say "adding bookworm-backports from $mirror to apt sources (QEMU 10 lives there)"
        as_root tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null <<SRC
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    fi
    say "installing qemu-system-ppc from bookworm-backports"
    apt_update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -t bookworm-backports qemu-system-ppc qemu-system-data >/dev/null
    say "$(qemu-system-ppc64 --version | head -1)"
fi

if ! command -v powerpc64le-linux-gnu-objdump >/dev/null; then
    say "installing binutils-powerpc64le-linux-gnu (objdump for the image checks)"
    apt_update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        binutils-powerpc64le-linux-gnu >/dev/null
fi

if ! command -v pflash >/dev/null && [ ! -x /usr/sbin/pflash ]; then
    say "installing opal-utils (pflash, to check the PNOR image)"
    apt_update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        opal-utils >/dev/null
fi
