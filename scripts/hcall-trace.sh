#!/usr/bin/env bash
# Where each hypercall path's instructions go: boots the hypercall
# benchmark (`cargo xtask bench hcall`'s archive) with QEMU logging every
# hypervisor instruction (one instruction per translation block, the exec
# log limited to the vectors and the image), then counts each path's
# instructions by symbol (scripts/hcall-trace.py). Needs the archives of
# `cargo xtask test` or `cargo xtask bench` (build/archives/bench.cpio).
# With an argument N: the instructions of one exit of N instructions.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
image=$here/target/ppc64le-hv/release/hvfw
log=$(mktemp)
trap 'rm -f "$log"' EXIT
timeout 300 qemu-system-ppc64 -M powernv8 -smp 8,cores=2,threads=4 -m 2G -nographic \
    -kernel "$image" -initrd "$here/build/archives/bench.cpio" \
    -icount shift=0,sleep=off -accel tcg,one-insn-per-tb=on \
    -d exec,nochain -D "$log" -dfilter 0x0..0x1100,0x20000000..0x20400000 >/dev/null 2>&1 || true
python3 "$here/scripts/hcall-trace.py" "$image" "$log" "$@"
