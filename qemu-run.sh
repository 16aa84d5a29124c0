#!/usr/bin/env bash
# Boots the hypervisor firmware as skiboot's payload on QEMU powernv8.
#
#   ./qemu-run.sh [--cores N] [--threads N] [--memory SIZE] [--initrd FILE]
#                 [--flash [IMAGE]] [--append "bootargs"] [--gdb]
#                 [--timeout SECONDS] [--no-build] [--pci] [-- extra QEMU args]
#
# The machine has no PCI host bridges unless --pci is given: QEMU's
# powernv8 brings three PHB3s whose empty slots skiboot spends ~3 s
# resetting and training (and where its rare hang was), and nothing here
# uses PCI yet. What it keeps: the serial console (with QEMU's monitor on
# Ctrl-a c), the BMC that power-off goes through (ipmi-bmc-sim on an
# isa-ipmi-bt), the PNOR flash and the LPC bus it hangs on.
#
# --flash boots from a PNOR image on QEMU's emulated flash instead of
# -kernel/-initrd: skiboot loads the firmware from BOOTKERNEL and the boot
# archive from ROOTFS, and takes the boot arguments from its NVRAM. Without
# IMAGE it is build/pnor.img, made afresh by `cargo xtask pnor` from
# build/bootkernel.elf (with --initrd FILE as its archive and --append as
# its bootargs).
#
# Exit status: 0 when the firmware powered off with "hv: power off (ok)",
# 1 on "hv: power off (failure)" (or QEMU ending without either line),
# 2 on timeout. Installs what is missing first (scripts/setup.sh) and
# builds the firmware when its sources changed (cargo decides).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cores=2
threads=4
memory=2G
initrd=
flash=
flash_image=
append=
gdb=0
timeout=
build=1
pci=0
extra=()

die() { echo "qemu-run: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --cores) cores=${2:?--cores needs a number}; shift 2 ;;
        --threads) threads=${2:?--threads needs a number}; shift 2 ;;
        --memory) memory=${2:?--memory needs a size}; shift 2 ;;
        --initrd) initrd=${2:?--initrd needs a file}; shift 2 ;;
        --flash)
            flash=1
            if [ $# -gt 1 ] && [[ "$2" != -* ]]; then flash_image=$2; shift; fi
            shift ;;
        --append) append=${2?--append needs a string}; shift 2 ;;
        --gdb) gdb=1; shift ;;
        --timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
        --no-build) build=0; shift ;;
        --pci) pci=1; shift ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        *) die "unknown option '$1' (try --help)" ;;
    esac
done

[[ "$cores" =~ ^[1-9][0-9]*$ ]] || die "--cores must be a positive number, not '$cores'"
[[ "$threads" =~ ^(1|2|4|8)$ ]] || die "--threads must be 1, 2, 4 or 8, not '$threads'"
[[ "$memory" =~ ^[1-9][0-9]*[MG]?$ ]] || die "--memory must look like 2G or 1024M, not '$memory'"
if [ -n "$initrd" ] && [ ! -f "$initrd" ]; then die "--initrd: no such file '$initrd'"; fi
if [ -n "$flash_image" ]; then
    [ -f "$flash_image" ] || die "--flash: no such file '$flash_image'"
    [ -z "$initrd" ] || die "--flash IMAGE carries its boot archive in ROOTFS: make it with 'cargo xtask pnor --archive FILE' instead of --initrd"
    [ -z "$append" ] || die "--flash IMAGE carries its boot arguments in NVRAM: make it with 'cargo xtask pnor --bootargs \"...\"' instead of --append"
fi
if [ -z "$timeout" ]; then
    if [ "$gdb" = 1 ]; then timeout=0; else timeout=120; fi
fi
[[ "$timeout" =~ ^[0-9]+$ ]] || die "--timeout must be whole seconds, not '$timeout'"

"$here/scripts/setup.sh" || die "setup failed"

image="$here/target/ppc64le-hv/release/hvfw"
if [ "$build" = 1 ] || [ ! -f "$image" ]; then
    (cd "$here" && cargo xtask build) >&2 || die "firmware build failed"
fi

cmd=(qemu-system-ppc64 -M powernv8 -smp "$((cores * threads)),cores=$cores,threads=$threads"
     -m "$memory" -nographic)
if [ "$pci" = 0 ]; then
    cmd+=(-nodefaults -serial mon:stdio
          -device ipmi-bmc-sim,id=bmc0 -device isa-ipmi-bt,bmc=bmc0,irq=10)
fi
if [ -n "$flash" ]; then
    if [ -z "$flash_image" ]; then
        flash_image="$here/build/pnor.img"
        pnor=(cargo xtask pnor --firmware "$here/build/bootkernel.elf" --out "$flash_image")
        [ -n "$initrd" ] && pnor+=(--archive "$initrd")
        [ -n "$append" ] && pnor+=(--bootargs "$append")
        (cd "$here" && "${pnor[@]}") >&2 || die "making the PNOR image failed"
    fi
    # The image is the machine's flash: skiboot may write its NVRAM there.
    cmd+=(-drive "file=$flash_image,format=raw,if=mtd")
else
    cmd+=(-kernel "$image")
    [ -n "$initrd" ] && cmd+=(-initrd "$initrd")
    [ -n "$append" ] && cmd+=(-append "$append")
fi
if [ "$gdb" = 1 ]; then
    cmd+=(-s -S)
    echo "qemu-run: waiting for gdb on localhost:1234 (target remote :1234)" >&2
fi
cmd+=("${extra[@]}")

log=$(mktemp)
tmp=$(mktemp -d)
watchdog=
trap 'rm -f "$log"; rm -rf "$tmp"; [ -n "$watchdog" ] && kill "$watchdog" 2>/dev/null' EXIT
start=$(date +%s%N)
if [ "$timeout" = 0 ]; then
    "${cmd[@]}" | tee "$log"
    status=${PIPESTATUS[0]}
else
    # The timeout is scripts/qemu-watchdog.py: it prints where every CPU
    # is (from a second QEMU monitor) before it quits QEMU, so a hang says
    # where it hung. `timeout` stays as the backstop.
    backstop=$timeout
    if command -v python3 >/dev/null; then
        cmd+=(-chardev "socket,id=hvmon,path=$tmp/monitor,server=on,wait=off"
              -mon chardev=hvmon,mode=readline)
        python3 "$here/scripts/qemu-watchdog.py" "$tmp/monitor" "$timeout" "$image" \
            "$tmp/timed-out" </dev/null &
        watchdog=$!
        backstop=$((timeout + 30))
    fi
    timeout --foreground -k 5 "$backstop" "${cmd[@]}" | tee "$log"
    status=${PIPESTATUS[0]}
    [ -f "$tmp/timed-out" ] && status=124
fi
ms=$(( ($(date +%s%N) - start) / 1000000 ))
secs=$(printf "%d.%03d" $((ms / 1000)) $((ms % 1000)))

if grep -q 'hv: power off (ok)' "$log"; then
    echo "qemu-run: firmware powered off (ok) after ${secs} s" >&2
    exit 0
elif grep -q 'hv: power off (failure)' "$log"; then
    echo "qemu-run: firmware powered off (failure) after ${secs} s" >&2
    exit 1
elif [ "$status" = 124 ] || [ "$status" = 137 ]; then
    echo "qemu-run: timed out after $timeout s without a power-off line" >&2
    exit 2
else
    echo "qemu-run: QEMU exited with status $status without a power-off line" >&2
    exit 1
fi
