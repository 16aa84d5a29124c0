#!/usr/bin/env python3
"""Instructions of one hypervisor path, per CPU, from a QEMU exec trace.

  path-trace.py ipi   IMAGE trace.log   # hv.bench=ipi: sender's mftb -> target's stamp
  path-trace.py vcore IMAGE trace.log   # first HvThread::post of a vcore run -> 4th entry hrfid

The trace comes from booting with `-icount shift=0,sleep=off -accel
tcg,one-insn-per-tb=on -d exec,nochain -dfilter 0x0..0x1100,0x20000000..0x20400000`
(`hv.bench=ipi:1000`, or the vcore-bench archive with `-smp 4,cores=1,threads=4`).
The log names the CPU of every instruction ("Trace N:"), so the shortest
window found is counted by CPU and symbol.
"""
import bisect, collections, re, subprocess, sys

mode, image, log = sys.argv[1], sys.argv[2], sys.argv[3]
syms = []
for line in subprocess.run(["nm", "-n", "-C", image], capture_output=True, text=True).stdout.splitlines():
    p = line.split(maxsplit=2)
    if len(p) == 3 and p[1] in "tTwW":
        syms.append((int(p[0], 16), p[2]))
addrs = [a for a, _ in syms]
vectors = next(a for a, n in syms if n == "__vectors_start")

def sym(pc):
    a = pc + vectors if pc < 0x2000 else pc
    i = bisect.bisect_right(addrs, a) - 1
    return ("[vectors] " if pc < 0x2000 else "") + syms[i][1][:90]

# mftb and hrfid addresses, by function, from the disassembly.
mftb, hrfid, cur = {}, set(), None
dis = subprocess.run(["powerpc64le-linux-gnu-objdump", "-d", "--no-show-raw-insn", "-C", image],
                     capture_output=True, text=True).stdout
for line in dis.splitlines():
    m = re.match(r"^([0-9a-f]+) <(.*)>:$", line)
    if m:
        cur = m.group(2)
        continue
    m = re.match(r"\s*([0-9a-f]+):\s+(mftb|mfspr\s+r\d+,268)\b", line)
    if m:
        mftb.setdefault(cur, []).append(int(m.group(1), 16))
    m = re.match(r"\s*([0-9a-f]+):\s+hrfid", line)
    if m and cur == "__vcpu_run":
        hrfid.add(int(m.group(1), 16))

def pcs(name):
    return {x for k, v in mftb.items() if name in k for x in v}

if mode == "ipi":
    starts, ends, need = pcs("ipi_bench"), pcs("selftest::stamp"), 1
else:
    starts = {a for a, n in syms if n.endswith("HvThread>::post")}
    ends, need = hrfid, 4
pat = re.compile(r"Trace (\d+): 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/")
windows, cur, done = [], None, set()
with open(log) as f:
    for line in f:
        m = pat.match(line)
        if not m:
            continue
        cpu, pc = int(m.group(1)), int(m.group(2), 16)
        if pc in starts and (mode == "ipi" or cur is None):
            cur, done = [], set()
        if cur is None:
            continue
        cur.append((cpu, pc))
        if pc in ends:
            done.add(cpu)
            if len(done) == need:
                windows.append(cur)
                cur = None
if not windows:
    sys.exit("no window found")
w = min(windows, key=len)
print(f"{len(windows)} windows, shortest {len(w)} instructions")
per = collections.Counter(c for c, _ in w)
print("per CPU:", dict(sorted(per.items())))
for (c, n), k in sorted(collections.Counter((c, sym(pc)) for c, pc in w).items(),
                        key=lambda x: (x[0][0], -x[1])):
    print(f"cpu{c} {k:6d}  {n}")
