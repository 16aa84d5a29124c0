#!/usr/bin/env python3
"""Where a hypercall's instructions go, from a QEMU instruction trace.

Boot the firmware with one instruction per translation block and the exec
log limited to the hypervisor's addresses, e.g.

  qemu-system-ppc64 ... -icount shift=0,sleep=off \
      -accel tcg,one-insn-per-tb=on -d exec,nochain -D trace.log \
      -dfilter 0x0..0x1100,0x20000000..0x20400000

then: hcall-trace.py IMAGE trace.log [LENGTH]. Every `sc 1` exit starts at the
0xC00 vector and ends at the `hrfid` that returns to the guest; exits of
equal length are grouped (a benchmark loop repeats one path) and each
group's instructions are counted by symbol, per exit.
"""
import bisect, collections, re, subprocess, sys

image, log = sys.argv[1], sys.argv[2]
# With LENGTH: the instructions of the first exit of that many, one per line.
show = int(sys.argv[3]) if len(sys.argv) > 3 else None
syms = []
for line in subprocess.run(["nm", "-n", "-C", image], capture_output=True, text=True).stdout.splitlines():
    parts = line.split(maxsplit=2)
    if len(parts) == 3 and parts[1] in "tTwW":
        syms.append((int(parts[0], 16), parts[2]))
syms.sort()
addrs = [a for a, _ in syms]
vectors = next(a for a, n in syms if n == "__vectors_start")
# Every hrfid/rfid in the image ends an exit.
dis = subprocess.run(["powerpc64le-linux-gnu-objdump", "-d", image], capture_output=True, text=True).stdout
returns = set()
for line in dis.splitlines():
    m = re.match(r"\s*([0-9a-f]+):\s+(?:[0-9a-f]{2} ){4}\s*(h?rfid)\s*$", line)
    if m:
        returns.add(int(m.group(1), 16))

def sym(pc):
    a = pc + vectors if pc < 0x2000 else pc
    i = bisect.bisect_right(addrs, a) - 1
    name = syms[i][1] if i >= 0 else "?"
    return ("[vectors] " if pc < 0x2000 else "") + name[:90]

pat = re.compile(r"Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/")
exits, cur = [], None
with open(log) as f:
    for line in f:
        m = pat.match(line)
        if not m:
            continue
        pc = int(m.group(1), 16)
        if pc == 0xC00:
            cur = []
        if cur is None:
            continue
        cur.append(pc)
        a = pc + vectors if pc < 0x2000 else pc
        if a in returns:
            exits.append(cur)
            cur = None

if show is not None:
    text = {}
    for line in dis.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+(?:[0-9a-f]{2} ){4}\s*(.*)$", line)
        if m:
            text[int(m.group(1), 16)] = m.group(2)
    e = next((e for e in exits if len(e) == show), None)
    if e is None:
        sys.exit(f"no exit of {show} instructions")
    for pc in e:
        a = pc + vectors if pc < 0x2000 else pc
        print(f"{a:x}  {text.get(a, '?'):40} {sym(pc)}")
    sys.exit(0)

by_len = collections.OrderedDict()  # length -> [count, histogram]
for e in exits:
    g = by_len.setdefault(len(e), [0, collections.Counter()])
    g[0] += 1
    g[1].update(sym(pc) for pc in e)
for n, (count, hist) in by_len.items():
    if count < 50:
        continue
    print(f"\n== {count} exits of {n} instructions (sc 1 vector to hrfid), per exit:")
    for s, c in hist.most_common():
        print(f"{c / count:8.1f}  {s}")
