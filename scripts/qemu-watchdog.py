#!/usr/bin/env python3
"""The timeout of qemu-run.sh: when a run has not ended after TIMEOUT
seconds, asks QEMU's monitor where every CPU is (NIP, LR, MSR, r1 and the
hypervisor function each address falls in), prints one line per CPU to
stderr, writes FLAG and quits QEMU. A hang in CI then says where it hung.

    qemu-watchdog.py MONITOR_SOCKET TIMEOUT IMAGE FLAG
"""

import bisect
import re
import socket
import subprocess
import sys
import time

MSR_HV = 1 << 60


def monitor(path, commands):
    """Runs HMP commands on the monitor at `path`; returns their output."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.settimeout(5)

    def until_prompt():
        out = b""
        try:
            while not out.endswith(b"(qemu) "):
                d = s.recv(1 << 16)
                if not d:
                    break
                out += d
        except socket.timeout:
            pass
        return out.decode(errors="replace")

    until_prompt()
    outs = []
    for c in commands:
        s.sendall(c.encode() + b"\n")
        outs.append(until_prompt())
    return s, outs


def symbols(image, addrs):
    """addr -> 'function+offset' for the addresses inside the hypervisor
    image (its symbol table: the function holding the address, not an
    inlined callee)."""
    if not addrs:
        return {}
    try:
        r = subprocess.run(
            ["powerpc64le-linux-gnu-nm", "-C", "--defined-only", image],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    syms = []
    for line in r.stdout.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tTwW":
            syms.append((int(parts[0], 16), parts[2]))
    syms.sort()
    starts = [a for a, _ in syms]
    names = {}
    for a in addrs:
        i = bisect.bisect_right(starts, a) - 1
        if i >= 0 and a - starts[i] < 0x10000:
            names[a] = f"{syms[i][1]}+{a - starts[i]:#x}"
    return names


def main():
    path, timeout, image, flag = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
    time.sleep(timeout)
    open(flag, "w").close()
    try:
        s, (regs,) = monitor(path, ["info registers -a"])
    except OSError as e:
        print(f"qemu-run: no CPU states (monitor: {e})", file=sys.stderr)
        return
    states = []
    for block in re.split(r"\n(?=CPU#\d+\r?\n)", regs):
        m = re.match(r"CPU#(\d+)", block.strip())
        if not m:
            continue
        f = lambda pat: int(re.search(pat, block).group(1), 16)
        try:
            states.append((int(m.group(1)), f(r"NIP ([0-9a-f]+)"), f(r"LR ([0-9a-f]+)"),
                           f(r"MSR ([0-9a-f]+)"), f(r"GPR00 [0-9a-f]+ ([0-9a-f]+)")))
        except AttributeError:
            continue
    # Only a hypervisor-state address is the image's (MSR[HV]); a guest's
    # may fall in the same range.
    hv = [st for st in states if st[3] & MSR_HV]
    names = symbols(image, sorted({a for st in hv for a in st[1:3]}))
    print(f"qemu-run: CPU states after {timeout:.0f} s:", file=sys.stderr)
    for cpu, nip, lr, msr, r1 in states:
        own = msr & MSR_HV
        where = lambda a: f"{a:#x} {names[a]}" if own and a in names else f"{a:#x}"
        print(f"qemu-run: cpu {cpu}: nip {where(nip)} lr {where(lr)} msr {msr:#x} r1 {r1:#x}",
              file=sys.stderr)
    s.sendall(b"quit\n")


if __name__ == "__main__":
    main()
