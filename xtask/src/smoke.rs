//! `cargo xtask test`: host unit tests, lint, image build and QEMU smoke
//! tests that boot the real image and read its serial console.

use crate::qemu::{boot, boot_typing, Boot};
use crate::root;
use std::process::Command;

/// The per-cpu counts of a `/proc/interrupts` row (e.g. `DBL:`), from
/// the line the shell printed.
fn interrupt_row(b: &Boot, row: &str) -> Vec<u64> {
    b.lines()
        .find(|l| l.trim_start().starts_with(row))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .map_while(|w| w.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The SMP guest ran as VM `vm` with `[vcpus, vcores, threads]`: its
/// exact shared counter, every one of its `checks` passed, `result=ok`.
fn smp_guest_passed(
    b: &Boot,
    vm: &str,
    [vcpus, vcores, threads]: [u32; 3],
    checks: u32,
) -> Result<(), String> {
    has(
        b,
        &format!("smp: {vcpus} vcpus in {vcores} vcores of {threads} threads"),
    )?;
    has(
        b,
        &format!("smp: counter {} from {vcpus} vcpus", 20_000 * vcpus),
    )?;
    expect(b.find("FAIL").is_none(), "a guest check failed")?;
    has(b, &format!("smp: all {checks} checks passed"))?;
    has(b, &format!("hv: vm {vm} lpid=1 result=ok"))
}

/// (tlbiel, tlbie, entry flushes) of VM `vm`, summed over the cores it
/// ran on (its `tlb: vm NAME core N: …` stop lines).
fn tlb_counts(b: &Boot, vm: &str) -> (u64, u64, u64) {
    let prefix = format!("tlb: vm {vm} core ");
    let field = |l: &str, k: &str| -> u64 {
        l.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    b.lines()
        .filter(|l| l.contains(&prefix))
        .fold((0, 0, 0), |(a, g, f), l| {
            (
                a + field(l, "tlbiel="),
                g + field(l, "tlbie="),
                f + field(l, "entry-flushes="),
            )
        })
}

/// The crates that build and test on the host.
const HOST_CRATES: &[&str] = &[
    "--package",
    "papr-abi",
    "--package",
    "kernel",
    "--package",
    "arch-ppc64",
    "--package",
    "xtask",
];

pub fn step(name: &str, cmd: &mut Command) -> Result<(), String> {
    eprintln!("xtask: == {name}");
    let st = cmd
        .current_dir(root())
        .status()
        .map_err(|e| format!("{name}: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("{name} failed"))
    }
}

pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Key=value pairs of the boot summary line
/// `hv: boot ok cores=N threads=N memory=NMiB free=NMiB hpt-pool=NMiB`.
pub fn summary(b: &Boot) -> Result<Vec<(String, u64)>, String> {
    let line = b.find("hv: boot ok ").ok_or("no `hv: boot ok` line")?;
    let rest = line.split_once("hv: boot ok ").unwrap().1;
    let mut kv = Vec::new();
    for w in rest.split_whitespace() {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| format!("bad word `{w}` in `{line}`"))?;
        let v = v.strip_suffix("MiB").unwrap_or(v);
        let n = v
            .parse::<u64>()
            .map_err(|_| format!("bad number in `{w}`"))?;
        kv.push((k.to_string(), n));
    }
    let keys: Vec<&str> = kv.iter().map(|(k, _)| k.as_str()).collect();
    if keys != ["cores", "threads", "memory", "free", "hpt-pool"] {
        return Err(format!("summary line has keys {keys:?}: `{line}`"));
    }
    Ok(kv)
}

/// `free=` of the boot summary and of the line after all VMs stopped.
fn free_at_boot(b: &Boot) -> Option<u64> {
    summary(b).ok().map(|kv| get(&kv, "free"))
}

fn free_at_end(b: &Boot) -> Option<u64> {
    let l = b.find("hv: all VMs stopped: ")?;
    l.split_whitespace()
        .find_map(|w| w.strip_prefix("free=")?.strip_suffix("MiB")?.parse().ok())
}

fn get(kv: &[(String, u64)], k: &str) -> u64 {
    kv.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| *v)
        .unwrap_or(u64::MAX)
}

fn expect(cond: bool, what: &str) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what.to_string())
    }
}

/// A run of the fuzzing guest: each (VM, seed, calls) finished all its
/// calls with no anomaly, the neighbour checked at least one whole round
/// and found everything intact, and all `vms` VMs stopped ok.
pub fn fuzz_run_passed(b: &Boot, runs: &[(&str, u64, u64)], vms: usize) -> Result<(), String> {
    for &(vm, seed, calls) in runs {
        let line = b
            .find(&format!("fuzz: seed {seed}: {calls} calls ("))
            .ok_or(format!(
                "vm {vm} (seed {seed}) did not finish its {calls} calls"
            ))?;
        if !line.ends_with(" 0 anomalies") {
            return Err(format!("vm {vm}: {line}"));
        }
        has(b, &format!("hv: vm {vm} lpid="))?;
    }
    if let Some(l) = b.find("ANOMALY") {
        return Err(format!("an anomaly was reported: {l}"));
    }
    let line = b
        .lines()
        .find(|l| l.contains("neighbour: ") && l.contains(" rounds over "))
        .ok_or("the neighbour gave no verdict")?;
    let rounds: u64 = line
        .split("neighbour: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .ok_or("no round count")?;
    if rounds == 0 || !line.ends_with(": intact") {
        return Err(format!("neighbour: {line}"));
    }
    has(
        b,
        &format!("hv: all VMs stopped: {vms} ran, {vms} ok, 0 not ok"),
    )
}

/// The number after `key` in `line`.
fn number_after(line: &str, key: &str) -> Result<u64, String> {
    line.split(key)
        .nth(1)
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .ok_or(format!("no number after '{key}' in: {line}"))
}

fn has(b: &Boot, marker: &str) -> Result<(), String> {
    expect(
        b.find(marker).is_some(),
        &format!("console lacks `{marker}`"),
    )
}

type Check = fn(&Boot) -> Result<(), String>;

/// How many more times a smoke boot is made after skiboot itself hung.
const SKIBOOT_RETRIES: usize = 2;

/// A boot that timed out inside skiboot, before it started this firmware
/// (QEMU 10's skiboot hung there twice in about 500 boots on this 2-CPU
/// host, in `pci_do_jobs` waiting for a PCI slot job on another CPU, every
/// CPU in skiboot's own code).
fn skiboot_hung(b: &Boot) -> bool {
    b.status == 2 && b.find("INIT: Starting kernel").is_none()
}

/// The two-VM archive (build/archives/two-vms.cpio) ran both its VMs and
/// nothing else.
fn two_vms_ran(b: &Boot) -> Result<(), String> {
    has(b, "archive: 2 VMs in the manifest, 0 errors")?;
    has(
        b,
        "hello: guest running, 32 MiB, bootargs \"from the archive\"",
    )?;
    has(b, "bad: all 39 checks passed")?;
    has(b, "hv: vm greeter lpid=1 result=ok")?;
    has(b, "hv: vm checker lpid=2 result=ok")?;
    expect(
        b.find("vm hello").is_none(),
        "the built-in guests ran despite the archive",
    )?;
    has(b, "hv: power off (ok)")
}

/// skiboot accepted the image's NVRAM as formatted and wrote nothing: the
/// flash image `img` is still exactly what `cargo xtask pnor` made.
fn flash_image_unchanged(img: &str) -> Result<(), String> {
    let now = std::fs::read(crate::root().join(img)).map_err(|e| format!("{img}: {e}"))?;
    let want = crate::pnor::expected(img)?;
    // The guest NVRAM store is the one partition the firmware writes.
    let p = crate::pnor::part(kernel::nvram::STORE_PARTITION);
    let (a, b) = (p.base as usize, (p.base + p.size) as usize);
    expect(
        now.len() == want.len() && now[..a] == want[..a] && now[b..] == want[b..],
        "the flash image changed during the boot outside the guest NVRAM store",
    )
}

/// `hv.test=fail-alloc:K` with the `fail-alloc` archive (two VMs, six
/// allocations: memory, HPT from the pool or the page allocator, LPID
/// each): [`fail_alloc_passed`] checks the boot.
macro_rules! fail_alloc_smoke {
    ($k:literal) => {
        Smoke {
            name: concat!(
                "fail-alloc-",
                stringify!($k),
                "-of-vm-creation-leaks-nothing"
            ),
            args: &[
                "--initrd",
                "build/archives/fail-alloc.cpio",
                "--append",
                concat!("hv.test=fail-alloc:", stringify!($k)),
            ],
            status: 0,
            typing: &[],
            check: |b| fail_alloc_passed(b, $k),
        }
    };
}

/// Allocations of VM creation in the `fail-alloc` archive.
const FAIL_ALLOC_SITES: u32 = 6;

/// The K-th allocation failed, and only it (none when K is past the
/// last); a VM it stopped is reported with what ran out; everything is
/// free again at the end, exactly as at boot; the other VMs ran.
fn fail_alloc_passed(b: &Boot, k: u32) -> Result<(), String> {
    let failing: Vec<&str> = b
        .lines()
        .filter(|l| l.contains("failing allocation "))
        .collect();
    match (k <= FAIL_ALLOC_SITES, failing.as_slice()) {
        (true, [l]) if l.contains(&format!("failing allocation {k} of VM creation (")) => {}
        (false, []) => {}
        _ => return Err(format!("allocation {k}: failures injected {failing:?}")),
    }
    let not_created: Vec<&str> = b.lines().filter(|l| l.contains(" not created: ")).collect();
    for l in &not_created {
        let clear = [
            "no 16 MiB of contiguous memory",
            "LPID: all 4094 guest LPIDs are in use",
            "HPT",
        ];
        expect(
            clear.iter().any(|c| l.contains(c)),
            &format!("unclear error: {l}"),
        )?;
    }
    let made = 2 - not_created.len();
    has(
        b,
        &format!("hv: all VMs stopped: {made} ran, {made} ok, 0 not ok; "),
    )?;
    let end = b.find("hv: all VMs stopped: ").unwrap_or("");
    expect(
        free_at_end(b) == free_at_boot(b) && end.contains("hpt-pool-free=4/4 lpids-free=4094"),
        &format!(
            "resources not all back: boot free={:?}, end `{end}`",
            free_at_boot(b)
        ),
    )
}

struct Smoke {
    name: &'static str,
    args: &'static [&'static str],
    status: i32,
    check: Check,
    /// Typed on the serial console: (wait for this output, then type this).
    typing: &'static [(&'static str, &'static str)],
}

/// The shell prompt of the busybox initramfs.
const PROMPT: &str = "/ # ";

fn linux_booted(b: &Boot) -> Result<(), String> {
    has(b, crate::linux::SHELL_MARKER)?;
    has(b, "init: sc 1 from user space: refused with H_PRIVILEGE")?;
    // The virtual Ethernet's driver, from the same kernel package, loads.
    has(b, "init: ibmveth.ko loaded")?;
    has(b, "console: input goes to vm linux")?;
    // No hypercall Linux made at boot was left unimplemented by mistake.
    expect(
        b.find("XICS: Cannot find").is_none(),
        "Linux found no interrupt controller",
    )?;
    has(b, "hv: power off (ok)")
}

/// A stress run's verdict: every VM of `vms` printed the stress marker
/// and stopped with `result=ok`, no result was wrong, and no guest
/// reported a stall (hard or soft lockup, an RCU stall, a starved
/// kthread).
fn stress_ok(b: &Boot, vms: &[&str]) -> Result<(), String> {
    for l in b.lines() {
        let stall = l.contains("hard LOCKUP")
            || l.contains("soft lockup")
            || (l.contains("rcu") && l.contains("stall"))
            || l.contains("starved");
        expect(!stall, &format!("a guest saw a stall: {l}"))?;
        expect(!l.contains("WRONG"), &format!("a wrong result: {l}"))?;
    }
    every_vm_done(b, vms, &format!("{} in ", crate::linux::STRESS_DONE), " (")?;
    has(b, "hv: power off (ok)")
}

/// Each of `vms` printed `{done}{name}{after}` and stopped with
/// `result=ok`. One done line per VM, named by the partition itself:
/// counting lines would not do (a guest line interrupted by a log line is
/// shown again).
fn every_vm_done(b: &Boot, vms: &[&str], done: &str, after: &str) -> Result<(), String> {
    for vm in vms {
        let done = format!("{done}{vm}{after}");
        expect(
            b.lines().any(|l| l.contains(&done)),
            &format!("vm {vm} did not finish its work"),
        )?;
        let prefix = format!("hv: vm {vm} lpid=");
        expect(
            b.lines()
                .any(|l| l.contains(&prefix) && l.contains("result=ok")),
            &format!("vm {vm} did not stop with result=ok"),
        )?;
    }
    Ok(())
}

fn boot_counts(b: &Boot, cores: u64, threads: u64, mem: u64, pool: u64) -> Result<(), String> {
    let kv = summary(b)?;
    expect(
        get(&kv, "cores") == cores,
        &format!("cores={} (want {cores})", get(&kv, "cores")),
    )?;
    expect(
        get(&kv, "threads") == threads,
        &format!("threads={} (want {threads})", get(&kv, "threads")),
    )?;
    expect(
        get(&kv, "memory") == mem,
        &format!("memory={} (want {mem})", get(&kv, "memory")),
    )?;
    expect(
        get(&kv, "hpt-pool") == pool,
        &format!("hpt-pool={} (want {pool})", get(&kv, "hpt-pool")),
    )?;
    // Free memory: less than RAM by at least the pool, the heap and skiboot.
    let free = get(&kv, "free");
    expect(
        free + pool + 32 < mem && free > mem / 2,
        &format!("free={free} implausible for memory={mem}"),
    )?;
    has(
        b,
        &format!(
            "hv: topology: {cores} cores x {threads} threads = {} hardware threads",
            cores * threads
        ),
    )?;
    has(b, "hv: power off (ok)")?;
    expect(
        b.find("power off (failure)").is_none(),
        "failure line on an ok run",
    )
}

/// The `ipi: PIR .. core C thread T: ipi-sent=.. ipi-received=.. calls=..
/// wakes: external=.. decrementer=.. ...` lines, as (pir, core, thread, counters).
type IpiLine = (u64, u64, u64, Vec<(String, u64)>);

fn ipi_lines(b: &Boot) -> Vec<IpiLine> {
    let mut out = Vec::new();
    for l in b.lines() {
        let Some((_, rest)) = l.split_once("ipi: PIR 0x") else {
            continue;
        };
        let Some((head, counters)) = rest.split_once(": ipi-sent=") else {
            continue;
        };
        let mut h = head.split_whitespace();
        let pir = u64::from_str_radix(h.next().unwrap_or(""), 16).unwrap_or(u64::MAX);
        let core = h.nth(1).and_then(|v| v.parse().ok()).unwrap_or(u64::MAX);
        let thread = h.nth(1).and_then(|v| v.parse().ok()).unwrap_or(u64::MAX);
        let kv = format!("ipi-sent={counters}")
            .split_whitespace()
            .filter_map(|w| {
                w.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.parse().unwrap_or(u64::MAX)))
            })
            .collect();
        out.push((pir, core, thread, kv));
    }
    out
}

/// Independent check of the IPI test's accounting from its console lines.
fn ipi_check(b: &Boot, cores: u64, threads: u64, rounds: u64) -> Result<(), String> {
    has(b, "hv: power off (ok)")?;
    has(
        b,
        "ipi: call to PIR 0x1fff refused: no thread with PIR 0x1fff on this machine",
    )?;
    has(b, "ipi: verdict ok")?;
    let n = cores * threads;
    has(
        b,
        &format!("cpu: {n} of {n} threads online, {} answered a call", n - 1),
    )?;
    let lines = ipi_lines(b);
    expect(
        lines.len() as u64 == n,
        &format!("{} per-thread ipi lines, want {n}", lines.len()),
    )?;
    let (mut sent, mut recv, mut merged) = (0, 0, 0);
    for (pir, core, thread, kv) in &lines {
        // powernv8 numbering: PIR = chip<<7 | core-id<<3 | thread.
        expect(
            pir & 7 == *thread,
            &format!("PIR {pir:#x} reported as thread {thread}"),
        )?;
        expect(
            *core < cores && *thread < threads,
            &format!("PIR {pir:#x}: core {core} thread {thread}"),
        )?;
        let v = |k: &str| get(kv, k);
        sent += v("ipi-sent");
        recv += v("ipi-received");
        expect(
            v("external") == v("ipi-received"),
            &format!("PIR {pir:#x}: external wakes != IPIs received"),
        )?;
        for k in [
            "decrementer",
            "doorbell",
            "hv-doorbell",
            "other",
            "spurious",
        ] {
            expect(v(k) == 0, &format!("PIR {pir:#x}: {k}={}", v(k)))?;
        }
        merged += v("ipi-merged");
        if *thread != 0 {
            // A secondary takes one IPI per call, or fewer when a call
            // joined an IPI it had not taken yet.
            expect(
                v("calls") > 0 && v("ipi-received") <= v("calls"),
                &format!("PIR {pir:#x}: more IPIs than calls"),
            )?;
        }
    }
    // Each round trip is an IPI there and one back; each coordinator other
    // than the boot thread costs one more call (two IPIs).
    let want = 2 * (rounds * cores + (cores - 1));
    // Every call and reply raised an IPI or joined a pending one; every
    // raised IPI was taken once (none duplicated), except the rare raise
    // that lands while its target is taking an IPI and coalesces with it
    // (at most 1 in 1000; the calls themselves are counted exactly above).
    let bound = (sent / 1000).max(1);
    expect(
        sent + merged == want && recv <= sent && sent - recv <= bound,
        &format!("IPIs sent={sent} merged={merged} received={recv}, want sent+merged={want}, received=sent (at most {bound} coalesced)"),
    )?;
    let runs = b
        .lines()
        .filter(|l| l.contains(&format!("{rounds} round trips to {} threads", n - 1)))
        .count() as u64;
    expect(
        runs == cores,
        &format!("{runs} coordinator runs, want {cores}"),
    )
}

const SMOKES: &[Smoke] = &[
    Smoke {
        name: "boot-2c4t-2g",
        args: &["--cores", "2", "--threads", "4", "--memory", "2G"],
        status: 0,
        typing: &[],
        check: |b| {
            boot_counts(b, 2, 4, 2048, 64)?;
            has(b, "cpu: core 0 (chip 0): 4 threads, PIRs 0x8 0x9 0xa 0xb")?;
            has(
                b,
                "cpu: core 1 (chip 0): 4 threads, PIRs 0x10 0x11 0x12 0x13",
            )?;
            has(b, "cpu: timebase 512000000 Hz")?;
            has(b, "xics: 8 ICP windows")?;
            has(b, "firmware (")?;
            has(b, "cpu: 8 of 8 threads online, 7 answered a call")?;
            // The built-in demo guests ran in their own partitions, at once
            // on the two cores, with distinct LPIDs, and stopped cleanly.
            has(b, "hello: guest running, 64 MiB")?;
            has(b, "hv: vm hello lpid=1 result=ok")?;
            has(b, "hv: vm bad lpid=2 result=ok")?;
            has(b, "bad: all 39 checks passed")?;
            // The illegal instruction came to the hypervisor (0xE40) and
            // was reflected into the guest.
            has(b, "reflected=1")?;
            expect(b.find("FAIL").is_none(), "a guest check failed")?;
            let core_of = |vm: &str| {
                b.find(&format!("tlb: vm {vm} core "))
                    .map(|l| l.split(" core ").nth(1).unwrap_or("").chars().next())
            };
            expect(
                core_of("hello") != core_of("bad"),
                "both VMs ran on the same core",
            )?;
            // The bad guest's H_PROTECT and H_REMOVE: tlbiel, one vcore.
            has(b, "tlbiel=2 tlbie=0 entry-flushes=1")?;
            has(b, "hv: all VMs stopped: 2 ran, 2 ok, 0 not ok")?;
            expect(
                free_at_boot(b) == free_at_end(b),
                "memory not all returned after the VMs stopped",
            )?;
            for (pir, core, thread) in [
                (0x8, 0, 0),
                (0x9, 0, 1),
                (0xa, 0, 2),
                (0xb, 0, 3),
                (0x10, 1, 0),
                (0x11, 1, 1),
                (0x12, 1, 2),
                (0x13, 1, 3),
            ] {
                // The boot thread (0x8 or 0x10) does not print an online line.
                let online = format!("cpu: PIR {pir:#x} online: core {core} thread {thread}");
                let counters = format!("cpu: PIR {pir:#x} core {core} thread {thread}: ipi-sent=");
                expect(
                    b.find(&online).is_some()
                        || b.find("boot thread PIR")
                            .is_some_and(|l| l.ends_with(&format!("PIR {pir:#x})"))),
                    &format!("no `{online}`"),
                )?;
                has(b, &counters)?;
            }
            has(b, "trap: exception vectors installed")
        },
    },
    Smoke {
        name: "boot-1c4t-1g",
        args: &["--cores", "1", "--threads", "4", "--memory", "1G"],
        status: 0,
        typing: &[],
        check: |b| {
            boot_counts(b, 1, 4, 1024, 64)?;
            // One core: the two demo guests run one after the other.
            has(b, "hv: vm hello lpid=1 result=ok")?;
            has(b, "hv: vm bad lpid=2 result=ok")?;
            has(b, "bad: all 39 checks passed")
        },
    },
    Smoke {
        name: "bootargs-pool-size-and-bad-word",
        args: &[
            "--memory",
            "2G",
            "--append",
            "hv.hpt_pool=32M hv.bogus=1 console=x",
        ],
        status: 0,
        typing: &[],
        check: |b| {
            boot_counts(b, 2, 4, 2048, 32)?;
            has(
                b,
                "hv: warning: ignoring boot argument `hv.bogus=1`: unknown hypervisor argument",
            )
        },
    },
    Smoke {
        name: "deliberate-panic",
        args: &["--append", "hv.test=panic"],
        status: 1,
        typing: &[],
        check: |b| {
            has(b, "hv: error: panic at boot/src/main.rs:")?;
            has(b, "deliberate panic requested by hv.test=panic")?;
            has(b, "hv: power off (failure)")?;
            expect(
                b.find("power off (ok)").is_none(),
                "ok line on a failed run",
            )
        },
    },
    Smoke {
        name: "stack-overflow-is-reported",
        args: &["--append", "hv.test=stack-overflow"],
        status: 1,
        typing: &[],
        check: |b| {
            // A thread grew 1024 bytes past its stack: its next guard
            // check stops the machine with the failure report naming it.
            let pir = b
                .find("test: PIR ")
                .and_then(|l| l.split("test: PIR ").nth(1))
                .and_then(|r| r.split(' ').next())
                .ok_or("no line naming the thread")?;
            let want = format!("hv: error: PIR {pir}: thread stack overflow: ");
            let line = b
                .lines()
                .find(|l| l.contains(&want))
                .ok_or(format!("no report of PIR {pir}'s overflow"))?;
            let bytes: u64 = line
                .split("overflow: ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok())
                .ok_or("no byte count")?;
            if !(1024..4096).contains(&bytes) {
                return Err(format!("{bytes} bytes reported, want 1024..4096"));
            }
            has(b, "hv: power off (failure)")
        },
    },
    Smoke {
        name: "watchdog-names-a-thread-that-stops-answering",
        args: &["--append", "hv.test=stuck-thread"],
        status: 0,
        typing: &[],
        check: |b| {
            let pir = b
                .find("test: PIR ")
                .and_then(|l| l.split("test: PIR ").nth(1))
                .and_then(|r| r.split(' ').next())
                .ok_or("no line naming the thread")?;
            let want = format!("watchdog: warning: PIR {pir} (core ");
            let line = b
                .find(&want)
                .ok_or(format!("no watchdog report naming PIR {pir}"))?;
            if !line.contains("has not answered a call from PIR ")
                || !line.contains(" ms; it is in the hypervisor without a vcore")
            {
                return Err(format!("unexpected report: {line}"));
            }
            has(b, &format!("test: PIR {pir} answered again"))?;
            // The machine goes on: the default guests run.
            has(b, "hv: all VMs stopped: 2 ran, 2 ok, 0 not ok")
        },
    },
    Smoke {
        name: "vm-churn-1000-vms-nothing-leaks",
        args: &["--append", "hv.test=vm-churn:1000", "--timeout", "300"],
        status: 0,
        typing: &[],
        check: |b| {
            // Memory, pool slots and LPIDs exactly as before; the heap no
            // higher (the hypervisor's own comparison, printed).
            let line = |marker: &str| {
                b.find(marker)
                    .and_then(|l| l.split(marker).nth(1))
                    .and_then(|r| r.split(" heap-used=").next())
                    .map(str::to_string)
                    .ok_or(format!("no `{marker}` line"))
            };
            let before = line("test: vm-churn: 1000 VMs one after another; after the first two: ")?;
            let after = line("test: vm-churn: 1000 of 1000 VMs ran ok; after: ")?;
            expect(
                before == after,
                &format!("before: {before}, after: {after}"),
            )?;
            has(b, "(nothing leaked)")?;
            // Then the machine goes on: the default guests run.
            has(b, "hv: all VMs stopped: 2 ran, 2 ok, 0 not ok")
        },
    },
    fail_alloc_smoke!(1),
    fail_alloc_smoke!(2),
    fail_alloc_smoke!(3),
    fail_alloc_smoke!(4),
    fail_alloc_smoke!(5),
    fail_alloc_smoke!(6),
    fail_alloc_smoke!(7),
    Smoke {
        name: "deliberate-exception",
        args: &["--append", "hv.test=trap"],
        status: 1,
        typing: &[],
        check: |b| {
            has(
                b,
                "trap: error: unexpected exception 0x700 (program) on PIR 0x",
            )?;
            has(b, "trap: error: SRR0=0x")?;
            has(b, "DAR=0x")?;
            has(b, "LR=0x")?;
            has(b, "r28=0x")?;
            // SRR1 bit 46 (0x20000) marks a trap-type program interrupt.
            let l = b.find("SRR1=0x").unwrap_or("");
            let srr1 = l
                .rsplit("SRR1=0x")
                .next()
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok());
            expect(
                srr1.is_some_and(|v| v & 0x20000 != 0),
                &format!("SRR1 without the trap bit: `{l}`"),
            )?;
            has(b, "hv: power off (failure)")
        },
    },
    Smoke {
        name: "exceptions-that-return",
        args: &["--append", "hv.test=resume"],
        status: 0,
        typing: &[],
        check: |b| {
            has(
                b,
                "trap: program interrupt (0x700, rfid) resumed with all 29 probed GPRs intact",
            )?;
            has(
                b,
                "trap: hypervisor decrementer (0x980, hrfid) taken and returned from after",
            )?;
            has(b, "time: delay of 2000 us took")?;
            has(b, "hv: power off (ok)")
        },
    },
    Smoke {
        name: "ipi-10000-round-trips-2c4t",
        args: &["--cores", "2", "--threads", "4", "--append", "hv.test=ipi"],
        status: 0,
        typing: &[],
        check: |b| ipi_check(b, 2, 4, 10_000),
    },
    Smoke {
        name: "ipi-10000-round-trips-1c4t",
        args: &[
            "--cores",
            "1",
            "--threads",
            "4",
            "--memory",
            "1G",
            "--append",
            "hv.test=ipi",
        ],
        status: 0,
        typing: &[],
        check: |b| ipi_check(b, 1, 4, 10_000),
    },
    Smoke {
        name: "archive-two-vms",
        args: &["--initrd", "build/archives/two-vms.cpio"],
        status: 0,
        typing: &[],
        check: two_vms_ran,
    },
    Smoke {
        name: "flash-boot-built-in-guests",
        args: &["--flash", crate::pnor::TEST_DEFAULT],
        status: 0,
        typing: &[],
        check: |b| {
            // skiboot found the PNOR, loaded BOOTKERNEL and an (empty)
            // ROOTFS from it: no -kernel, no -initrd.
            has(b, "HIOMAP: Flash size is 64MiB")?;
            has(b, "INIT: 64-bit LE kernel discovered")?;
            has(
                b,
                "archive: flash ROOTFS holds no boot archive: running the built-in guests",
            )?;
            expect(
                b.find("FFS: Reading the flash has returned all 0xFF")
                    .is_none(),
                "skiboot saw erased flash",
            )?;
            boot_counts(b, 2, 4, 2048, 64)?;
            has(b, "hv: vm hello lpid=1 result=ok")?;
            has(b, "hv: vm bad lpid=2 result=ok")?;
            has(b, "hv: power off (ok)")?;
            flash_image_unchanged(crate::pnor::TEST_DEFAULT)
        },
    },
    Smoke {
        name: "flash-boot-archive-two-vms",
        args: &["--flash", crate::pnor::TEST_TWO_VMS],
        status: 0,
        typing: &[],
        check: |b| {
            has(b, "INIT: Initramfs loaded")?;
            has(b, "archive: boot archive from flash ROOTFS (")?;
            two_vms_ran(b)?;
            flash_image_unchanged(crate::pnor::TEST_TWO_VMS)
        },
    },
    Smoke {
        // Boot arguments from skiboot's NVRAM in flash (there is no
        // -append without -kernel): no HPT pool.
        name: "flash-boot-bootargs-from-nvram",
        args: &["--flash", crate::pnor::TEST_BOOTARGS],
        status: 0,
        typing: &[],
        check: |b| {
            has(b, "INIT: 64-bit LE kernel discovered")?;
            boot_counts(b, 2, 4, 2048, 0)?;
            has(b, "hv: all VMs stopped: 2 ran, 2 ok, 0 not ok")?;
            flash_image_unchanged(crate::pnor::TEST_BOOTARGS)
        },
    },
    Smoke {
        // The image pflash-erases-and-programs-bootkernel rewrote.
        name: "flash-boot-after-pflash-update",
        args: &["--flash", crate::pnor::TEST_UPDATED],
        status: 0,
        typing: &[],
        check: |b| {
            has(b, "INIT: 64-bit LE kernel discovered")?;
            boot_counts(b, 2, 4, 2048, 64)?;
            has(b, "hv: all VMs stopped: 2 ran, 2 ok, 0 not ok")?;
            has(b, "hv: power off (ok)")
        },
    },
    Smoke {
        name: "archive-next-vm-sees-zeros-not-the-last-ones-data",
        // One core: the second VM runs on the thread the first one left.
        args: &["--initrd", "build/archives/scrub.cpio", "--cores", "1"],
        status: 0,
        typing: &[],
        check: |b| {
            has(b, "archive: 2 VMs in the manifest, 0 errors")?;
            has(b, "bad: fill: wrote the pattern over")?;
            // Registers: the filler's patterns stuck (AMR, IAMR and
            // UAMOR read back 0 under QEMU 10: the guest's writes are
            // masked there), and none reached the checker.
            let kept: u32 = b
                .find(" SPRs, the FPSCR and all 64 VSRs hold patterns")
                .and_then(|l| {
                    l.split("bad: fill: ")
                        .nth(1)?
                        .split(' ')
                        .next()?
                        .parse()
                        .ok()
                })
                .ok_or("no register fill line")?;
            expect(kept >= 19, &format!("only {kept} SPRs took the pattern"))?;
            has(b, "bad: zeros: 0 non-zero VSR doublewords, FPSCR 0x0, 0 of 22 SPRs hold the last VM's pattern PASS")?;
            has(b, "hv: vm filler lpid=1 result=ok")?;
            has(b, "sched: vm checker: created after vm filler stopped")?;
            has(b, "bad: zeros: ")?;
            expect(b.find("FAIL").is_none(), "a check failed")?;
            // The checker really got the filler's memory, and all of it
            // was zeroed (it held the pattern).
            let at = |vm: &str| {
                b.lines()
                    .find_map(|l| l.split_once(&format!("vm: {vm}: lpid ")))
                    .and_then(|(_, r)| r.split_once(" memory 64 MiB at "))
                    .and_then(|(_, r)| r.split_once(" zeroed),"))
                    .map(|(m, _)| m.to_string())
                    .ok_or(format!("no creation line for vm {vm}"))
            };
            let (filler, checker) = (at("filler")?, at("checker")?);
            let addr = |s: &str| s.split(' ').next().unwrap_or("").to_string();
            expect(
                addr(&filler) == addr(&checker),
                &format!("checker got {checker}, not the filler's memory {filler}"),
            )?;
            expect(
                checker.ends_with("(64 MiB"),
                &format!("checker: {checker} zeroed (want all 64 MiB)"),
            )?;
            expect(
                b.lines()
                    .any(|l| l.contains("hv: vm checker lpid=") && l.contains(" result=ok ")),
                "vm checker did not stop with result=ok",
            )?;
            has(b, "hv: power off (ok)")
        },
    },
    Smoke {
        name: "archive-hpt-order-fallback",
        args: &["--initrd", "build/archives/hpt-fallback.cpio"],
        status: 0,
        typing: &[],
        check: |b| {
            // 2^34 cannot be had: the seed's fallback gives the pool's order.
            has(
                b,
                "vm: big-hpt: HPT order 34 not available, got order 24 from the pool",
            )?;
            has(b, "vm: big-hpt: lpid 1 memory 16 MiB")?;
            has(b, "HPT order 24 at")?;
            has(b, "hv: vm big-hpt lpid=1 result=ok")
        },
    },
    Smoke {
        name: "archive-malformed-manifest",
        args: &["--initrd", "build/archives/malformed.cpio"],
        status: 0,
        typing: &[],
        check: |b| {
            has(b, "archive: error: manifest:10: unknown key 'memroy'")?;
            // Prepared first, committed last: the failed VM leaves nothing.
            has(
                b,
                "hv: error: vm notelf not created: image: not an ELF file",
            )?;
            expect(
                free_at_boot(b) == free_at_end(b),
                "memory leaked by a failed or stopped VM",
            )?;
            has(
                b,
                "vcpus = 6 is not a multiple of threads = 4 (vm 'smt' skipped)",
            )?;
            has(b, "nothere.elf")?;
            has(b, "archive: 2 VMs in the manifest, ")?;
            has(b, "hv: vm good lpid=1 result=ok")?;
            for bad in ["vm broken ", "vm smt ", "vm missing "] {
                expect(b.find(bad).is_none(), &format!("`{bad}` was created"))?;
            }
            has(b, "hv: power off (ok)")
        },
    },
    Smoke {
        name: "archive-guest-reboots",
        args: &["--initrd", "build/archives/reboot.cpio"],
        status: 0,
        typing: &[],
        check: |b| {
            has(b, "reboot: boot #1")?;
            has(
                b,
                "vm: rebooter: system-reboot #1: HPT cleared, image reloaded",
            )?;
            has(b, "reboot: boot #2")?;
            has(
                b,
                "vm: rebooter: system-reboot #2: HPT cleared, image reloaded",
            )?;
            has(b, "reboot: boot #3")?;
            let cleared = b
                .lines()
                .filter(|l| l.contains("HPT entry from the previous boot is gone"))
                .count();
            expect(
                cleared == 2,
                &format!("{cleared} reboots found the HPT cleared, want 2"),
            )?;
            expect(b.find("FAIL").is_none(), "a guest check failed")?;
            // Each reset marked every core for a flush: one entry flush at
            // the first run and one after each of the two reboots, on
            // whichever core the vcore came back on.
            let flushes = tlb_counts(b, "rebooter").2;
            expect(
                flushes == 3,
                &format!("{flushes} entry flushes over all cores, want 3"),
            )?;
            has(b, "hv: vm rebooter lpid=1 result=ok")?;
            has(b, "reboots=2")
        },
    },
    Smoke {
        name: "archive-guest-hello-alone",
        args: &["--initrd", "build/archives/hello.cpio"],
        status: 0,
        typing: &[],
        check: |b| {
            has(b, "hello: guest running, 16 MiB, bootargs \"alone\"")?;
            // The vty's reg is 0x30000000 in the device tree the guest
            // reads; 0 is the first vty, reg + 1 no vty (H_PARAMETER).
            has(b, "hello: early-debug console (vtermno 0) works")?;
            has(
                b,
                "hello: vtermno 0 answered 0, vtermno 0x30000001 (no vty) answered -4",
            )?;
            has(b, "hello: get-time-of-day status 0 20")?;
            has(b, "hv: vm hello lpid=1 result=ok")?;
            has(b, "hv: all VMs stopped: 1 ran, 1 ok, 0 not ok")
        },
    },
    Smoke {
        name: "archive-guest-bad-alone",
        args: &["--initrd", "build/archives/bad.cpio"],
        status: 0,
        typing: &[],
        check: |b| {
            has(b, "bad: all 39 checks passed")?;
            expect(b.find("FAIL").is_none(), "a guest check failed")?;
            has(b, "hv: vm bad lpid=1 result=ok")?;
            has(b, "reflected=1")
        },
    },
    Smoke {
        name: "archive-crashing-guest-is-contained",
        args: &["--initrd", "build/archives/crash.cpio"],
        status: 0,
        typing: &[],
        check: |b| {
            has(b, "bad: reading guest-physical 1 GiB, outside my memory")?;
            expect(
                b.find("outside my memory FAIL").is_none(),
                "the guest read outside its memory",
            )?;
            // The access beyond its memory became a machine check for the
            // guest (as on QEMU pseries); it has no handler there, so the
            // VM stops with a report instead of faulting forever.
            has(
                b,
                "vm: crasher: real-mode data access beyond guest memory at pc ",
            )?;
            has(b, "hv: vm crasher lpid=1 result=crashed reason=\"no handler at the guest's 0x200 vector: hypervisor emulation assistance at 0x200")?;
            // The other VM and the hypervisor go on; a crash is a VM outcome.
            has(b, "hv: vm survivor lpid=2 result=ok")?;
            // With FWNMI registered, machine checks go to the guest's
            // handler with the RTAS error log; a second one before
            // ibm,nmi-interlock stops the VM.
            has(b, "bad: fwnmi: 20 of 20 checks passed")?;
            has(b, "result=crashed reason=\"machine check at pc ")?;
            has(
                b,
                "before the guest released the previous one (ibm,nmi-interlock)",
            )?;
            expect(
                b.find("nested machine check FAIL").is_none(),
                "survived a nested machine check",
            )?;
            // stop-self on the only vcpu ends the VM.
            has(b, "bad: stop-self on my only vcpu")?;
            expect(
                b.find("stop-self returned FAIL").is_none(),
                "stop-self returned",
            )?;
            has(
                b,
                "result=crashed reason=\"stop-self on the last running vcpu\"",
            )?;
            has(b, "hv: all VMs stopped: 4 ran, 1 ok, 3 not ok")?;
            has(b, "hv: power off (ok)")
        },
    },
    Smoke {
        name: "archive-guest-mmu",
        args: &["--initrd", "build/archives/mmu.cpio"],
        status: 0,
        typing: &[],
        check: |b| {
            has(b, "mmu: all 17 checks passed")?;
            expect(b.find("FAIL").is_none(), "a guest check failed")?;
            // H_PROTECT and two H_REMOVEs of a one-vcore VM: local invalidations.
            has(b, "tlb: vm paging core ")?;
            has(b, "tlbiel=3 tlbie=0 entry-flushes=1")?;
            has(b, "hv: vm paging lpid=1 result=ok")
        },
    },
    Smoke {
        name: "archive-smp-one-smt4-vcore",
        args: &["--initrd", "build/archives/smp4x1.cpio", "--timeout", "120"],
        status: 0,
        typing: &[],
        check: |b| {
            smp_guest_passed(b, "smp4x1", [4, 1, 4], 20)?;
            has(b, "smp: 60 doorbells to 3 sibling threads")?;
            has(b, "smp: 100 H_PROD/H_CEDE round trips, 0 lost wake-ups")
        },
    },
    Smoke {
        name: "fuzz-hypercalls-two-seeds-neighbour-intact",
        args: &["--initrd", "build/archives/fuzz.cpio", "--timeout", "240"],
        status: 0,
        typing: &[("hv: vm fuzz-2 lpid=", "q")],
        check: |b| {
            let calls = crate::archives::FUZZ_CALLS;
            fuzz_run_passed(b, &[("fuzz-1", 1, calls), ("fuzz-2", 2, calls)], 3)
        },
    },
    Smoke {
        name: "escape-catalogue-and-a-guest-that-never-yields",
        // One core: the spinner shares it with the other two, so they end
        // only if HDEC takes it back; once they have, it has the console
        // and Ctrl-] x stops it.
        args: &[
            "--initrd",
            "build/archives/escape.cpio",
            "--cores",
            "1",
            "--timeout",
            "120",
        ],
        status: 0,
        typing: &[("console: input now goes to vm spinner", "\x1dx")],
        check: |b| {
            let fails: Vec<&str> = b
                .lines()
                .filter(|l| l.contains("escape: ") && l.contains(": FAIL"))
                .collect();
            expect(fails.is_empty(), &format!("failed checks: {fails:?}"))?;
            let passed: u32 = b
                .find("escape: all ")
                .and_then(|l| {
                    l.split("escape: all ")
                        .nth(1)?
                        .split(' ')
                        .next()?
                        .parse()
                        .ok()
                })
                .ok_or("no verdict line from the escape catalogue")?;
            expect(passed >= 100, &format!("only {passed} checks ran"))?;
            has(b, "hv: vm escape lpid=1 result=ok")?;
            has(b, "hv: vm hello lpid=2 result=ok")?;
            has(b, "console: stopping vm spinner (Ctrl-] x)")?;
            has(
                b,
                "hv: vm spinner lpid=3 result=stopped reason=\"Ctrl-] x on the console\" hcalls=0 ",
            )?;
            has(b, "hv: all VMs stopped: 3 ran, 2 ok, 1 not ok")
        },
    },
    Smoke {
        name: "archive-smp-two-smt4-vcores",
        args: &["--initrd", "build/archives/smp4x2.cpio", "--timeout", "120"],
        status: 0,
        typing: &[],
        check: |b| {
            smp_guest_passed(b, "smp4x2", [8, 2, 4], 20)?;
            has(b, "smp: 60 doorbells to 3 sibling threads")
        },
    },
    Smoke {
        name: "archive-smp-four-1-thread-vcores-time-sliced",
        args: &["--initrd", "build/archives/smp1x4.cpio", "--timeout", "180"],
        status: 0,
        typing: &[],
        // No siblings: the two doorbell checks do not apply.
        check: |b| smp_guest_passed(b, "smp1x4", [4, 4, 1], 18),
    },
    Smoke {
        name: "archive-smp-reboot",
        args: &[
            "--initrd",
            "build/archives/smp-reboot.cpio",
            "--timeout",
            "120",
        ],
        status: 0,
        typing: &[],
        check: |b| {
            has(b, "smp: 4 vcpus in 2 vcores of 2 threads")?;
            has(
                b,
                "smp: reboot: 8 checks passed with every vcpu started, rebooting",
            )?;
            has(b, "system-reboot #1: HPT cleared, image reloaded")?;
            has(b, "smp: reboot: all 8 checks passed again after the reboot")?;
            expect(b.find("FAIL").is_none(), "a guest check failed")?;
            has(b, "hv: vm smpreboot lpid=1 result=ok")?;
            has(b, "reboots=1")
        },
    },
    Smoke {
        name: "archive-smp-secondary-that-never-comes",
        args: &[
            "--initrd",
            "build/archives/smp4x1.cpio",
            "--append",
            "hv.test=deaf-thread",
            "--timeout",
            "120",
        ],
        status: 0,
        typing: &[],
        check: |b| {
            // Thread 1 drops its wake-up. Lateness alone stops nothing:
            // thread 0 reports it after a second and at each doubling,
            // and only after JOIN_DEAD_MS of silence is the thread dead
            // and the VM stopped, the hypervisor fine.
            let pir = |l: &str| {
                l.contains("PIR 0x9 (core 0 thread 1)") || l.contains("PIR 0x11 (core 1 thread 1)")
            };
            let reports: Vec<&str> = b
                .lines()
                .filter(|l| {
                    l.contains("watchdog: warning: vm smp4x1 vcore 0: PIR ")
                        && l.contains("has not come to join the vcore for")
                })
                .collect();
            // When each report comes depends on how the host schedules
            // QEMU's threads; the rules do not: the first after a second
            // or more, each next one when the wait has at least doubled.
            let ms: Vec<u64> = reports
                .iter()
                .filter_map(|l| {
                    l.split("join the vcore for ")
                        .nth(1)?
                        .split(' ')
                        .next()?
                        .parse()
                        .ok()
                })
                .collect();
            expect(
                !ms.is_empty() && ms.len() == reports.len() && reports.iter().all(|l| pir(l)),
                &format!("want reports of thread 1 before it is given up: {reports:?}"),
            )?;
            expect(
                ms[0] >= 1000 && ms.windows(2).all(|w| w[1] >= 2 * w[0]),
                &format!("reports after a second, then at each doubling: {ms:?} ms"),
            )?;
            let line = b
                .lines()
                .find(|l| l.contains("vcore: error: smp4x1: vcore 0: thread PIR "))
                .ok_or("no error naming the thread that never came")?;
            let dead_ms: u64 = line
                .split("join the vcore for ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            expect(
                dead_ms >= 30_000
                    && line.contains("(the limit is 30000 ms)")
                    && (line.contains("PIR 0x9 of core 0") || line.contains("PIR 0x11 of core 1")),
                &format!("unexpected error line: {line}"),
            )?;
            has(
                b,
                "hv: vm smp4x1 lpid=1 result=crashed reason=\"vcore 0: thread PIR",
            )?;
            has(b, "hv: all VMs stopped: 1 ran, 0 ok, 1 not ok")?;
            has(b, "hv: power off (ok)")
        },
    },
    Smoke {
        name: "archive-three-vms-on-two-cores",
        args: &[
            "--initrd",
            "build/archives/three-vms.cpio",
            "--timeout",
            "180",
        ],
        status: 0,
        typing: &[],
        check: |b| {
            has(b, "hv: vm smp-a lpid=")?;
            expect(b.find("FAIL").is_none(), "a guest check failed")?;
            for vm in ["smp-a", "smp-b", "paging"] {
                expect(
                    b.lines().any(|l| {
                        l.contains(&format!("hv: vm {vm} lpid=")) && l.contains("result=ok")
                    }),
                    &format!("vm {vm} did not end with result=ok"),
                )?;
            }
            has(b, "mmu: 40 rounds of map, use and unmap")?;
            has(b, "hv: all VMs stopped: 3 ran, 3 ok, 0 not ok")?;
            // The one-vcore guest invalidated with tlbiel, which marks the
            // other core; it ran on both, so it flushed there on entry
            // after moving, more than the one first flush per core.
            let (local, _, flushes) = tlb_counts(b, "paging");
            expect(local > 40, &format!("tlbiel={local}, want > 40"))?;
            expect(
                flushes > 2,
                &format!("{flushes} entry flushes, want > 2 (flushes after migration)"),
            )?;
            expect(
                free_at_boot(b) == free_at_end(b),
                "memory not all returned after the VMs stopped",
            )
        },
    },
    Smoke {
        name: "runner-timeout-exit-2",
        // A boot that surely outlasts the timeout (the default one may
        // power off within a second).
        args: &["--timeout", "1", "--append", "hv.test=vm-churn:1000000"],
        status: 2,
        typing: &[],
        check: |b| has(b, "qemu-run: timed out after 1 s"),
    },
    Smoke {
        name: "linux-shell-uname-poweroff",
        args: &["--initrd", "build/archives/linux.cpio", "--timeout", "240"],
        status: 0,
        typing: &[
            (crate::linux::SHELL_MARKER, ""),
            (PROMPT, "uname -a\n"),
            ("GNU/Linux", ""),
            (PROMPT, "grep hvc /proc/interrupts\n"),
            ("hvc_console", ""),
            (PROMPT, "read line; echo \"typed: $line\"\n"),
            ("echo \"typed: $line\"", "while the shell waits\n"),
            ("typed: while the shell waits", ""),
            (PROMPT, "poweroff -f\n"),
        ],
        check: |b| {
            linux_booted(b)?;
            let release = crate::linux::kernel_release()?;
            expect(
                b.lines().any(|l| {
                    l.starts_with(&format!("Linux (none) {release} #1 SMP Debian"))
                        && l.ends_with("ppc64le GNU/Linux")
                }),
                &format!("no `uname -a` line for {release}"),
            )?;
            // Typed input raised the vty's interrupt (source 0x1000).
            let irqs = b
                .lines()
                .find(|l| l.contains("XICS 4096") && l.ends_with("hvc_console"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok());
            expect(
                irqs.is_some_and(|n| n > 0),
                &format!("hvc_console interrupt count {irqs:?}, want > 0"),
            )?;
            has(b, "hv: vm linux lpid=1 result=ok")?;
            has(b, "refused-from-user=1")?;
            // The boot's hypercall histogram, the busiest first.
            has(b, "hcall: vm linux: H_ENTER (0x8)")?;
            has(b, "hcall: vm linux: H_CEDE (0xe0)")?;
            has(b, "hcall: vm linux: H_GET_CPU_CHARACTERISTICS (0x1c8) 1")?;
            // QEMU's powernv has no firmware features: every mitigation.
            has(
                b,
                "cpu: no /ibm,opal/fw-features: guests are asked for every speculation mitigation",
            )?;
            has(b, "rfi-flush: fallback displacement flush available")?;
            has(b, "hcall: vm linux: H_REGISTER_VPA (0xdc)")
        },
    },
    Smoke {
        name: "linux-smp-one-smt4-vcore",
        args: &[
            "--initrd",
            "build/archives/linux-smp4.cpio",
            "--timeout",
            "300",
        ],
        status: 0,
        typing: &[
            (crate::linux::SHELL_MARKER, ""),
            (
                PROMPT,
                "echo \"cpus=$(nproc) cpuinfo=$(grep -c ^processor /proc/cpuinfo)\"\n",
            ),
            ("cpus=", ""),
            (PROMPT, "grep -E '^ *(DBL|IPI):' /proc/interrupts\n"),
            ("DBL:", ""),
            (PROMPT, "poweroff -f\n"),
        ],
        check: |b| {
            linux_booted(b)?;
            has(b, "smp: Brought up 1 node, 4 CPUs")?;
            has(b, "cpus=4 cpuinfo=4")?;
            // Siblings of one vcore signal each other with msgsndp: the
            // doorbell row counts on the secondaries.
            let dbl = interrupt_row(b, "DBL:");
            expect(
                dbl.len() == 4 && dbl[1..].iter().all(|n| *n > 0),
                &format!("doorbell interrupts per cpu {dbl:?}, want 4 with cpus 1-3 above 0"),
            )?;
            has(b, "vm: linux: lpid 1 memory 1024 MiB")?;
            has(b, "4 vcpus in 1 vcores of 4 threads")?;
            has(b, "hv: vm linux lpid=1 result=ok")
        },
    },
    // The guest NVRAM: Linux finds free space for its partitions (no
    // nvram error at boot), and what is written through /dev/nvram is
    // still there after a VM reboot (read back upper-cased, so the echo
    // of the typed command does not count).
    Smoke {
        name: "linux-nvram-survives-a-reboot",
        args: &["--initrd", "build/archives/linux.cpio", "--timeout", "240"],
        status: 0,
        typing: &[
            (crate::linux::SHELL_MARKER, ""),
            (
                PROMPT,
                "printf hv-nvram-ok | dd of=/dev/nvram bs=1 seek=65000 conv=notrunc; reboot -f\n",
            ),
            (crate::linux::SHELL_MARKER, ""),
            (
                PROMPT,
                "dd if=/dev/nvram bs=1 skip=65000 count=11 2>/dev/null | tr a-z A-Z; echo\n",
            ),
            ("HV-NVRAM-OK", ""),
            (PROMPT, "poweroff -f\n"),
        ],
        check: |b| {
            linux_booted(b)?;
            for l in b.lines() {
                expect(
                    !(l.contains("nvram:") && (l.contains("Failed") || l.contains("No room"))),
                    &format!("Linux found no room in its NVRAM: {l}"),
                )?;
            }
            has(b, "linux: system-reboot #1")?;
            has(b, "HV-NVRAM-OK")?;
            has(b, "hv: vm linux lpid=1 result=ok")
        },
    },
    // The virtual Ethernet adapter as unmodified Linux's ibmveth sees it:
    // probed from the device tree, opened (its DMA window mapped through
    // TCE hypercalls, the adapter registered, about a thousand receive
    // buffers added, its interrupt enabled), frames sent.
    Smoke {
        name: "linux-net-adapter-comes-up",
        args: &["--initrd", "build/archives/linux-net.cpio", "--timeout", "240"],
        status: 0,
        typing: &[
            (crate::linux::SHELL_MARKER, ""),
            (
                PROMPT,
                "ip link set eth0 up && ip addr add 10.0.0.1/24 dev eth0 && ip link show eth0 | grep -q UP && echo \"eth0 $(cat /sys/class/net/eth0/address) is-up\"; ping -c 2 -W 1 10.0.0.2; echo ping-done\n",
            ),
            ("ping-done", ""),
            (PROMPT, "poweroff -f\n"),
        ],
        check: |b| {
            linux_booted(b)?;
            let m = kernel::vio::lan::mac_for("linux", 0);
            let mac = m.map(|x| format!("{x:02x}")).join(":");
            has(b, &format!("eth0 {mac} is-up"))?;
            for l in b.lines() {
                expect(
                    !(l.contains("ibmveth") && (l.contains("fail") || l.contains("rror"))),
                    &format!("ibmveth reported a failure: {l}"),
                )?;
            }
            // The adapter's stop line: its MAC, and the ARP requests sent.
            let line = b
                .lines()
                .find(|l| l.contains("net: vm linux l-lan@30000002 on lan0: mac"))
                .ok_or("no l-lan stop line")?;
            expect(line.contains(&mac), &format!("stop line without the MAC: {line}"))?;
            expect(number_after(line, "tx=")? >= 1, &format!("no frame sent: {line}"))?;
            has(b, "hv: vm linux lpid=1 result=ok")
        },
    },
    // Two unmodified Linux VMs on one virtual LAN and a third with two
    // adapters on two others (linux::net_init_script): the two ping each
    // other both ways and each sends the other a few MiB over TCP with nc,
    // SHA-256 checked on both sides; one reboots meanwhile while the other
    // keeps sending to it; the third reaches neither.
    Smoke {
        name: "linux-net-two-vms-talk-a-third-cannot",
        args: &["--initrd", "build/archives/net.cpio", "--timeout", "400"],
        status: 0,
        typing: &[],
        check: |b| {
            for l in b.lines() {
                expect(!l.contains("WRONG"), &format!("a failed check: {l}"))?;
            }
            let vms: Vec<&str> = crate::linux::NET_VMS.iter().map(|v| v.0).collect();
            every_vm_done(b, &vms, &format!("{} in ", crate::linux::NET_DONE), "")?;
            has(b, "vm: net-b: system-reboot #1")?;
            let line = |start: &str| {
                b.lines()
                    .find(|l| l.contains(start))
                    .ok_or(format!("no line with '{start}'"))
            };
            // Frames sent to net-b while it rebooted were lost at its port.
            let lan0 = line("net: lan lan0: the last port left")?;
            expect(
                number_after(lan0, "dropped-at-ports=")? >= 1,
                &format!("no frame lost while net-b rebooted: {lan0}"),
            )?;
            // Nothing crossed from lan0 to lan1.
            let lan1 = line("net: lan lan1: the last port left")?;
            expect(
                number_after(lan1, "delivered=")? == 0,
                &format!("a frame was delivered on lan1: {lan1}"),
            )?;
            for lan in ["l-lan@30000002 on lan1", "l-lan@30000003 on lan2"] {
                let c = line(&format!("net: vm net-c {lan}: mac"))?;
                expect(
                    number_after(c, "rx=")? == 0,
                    &format!("net-c received frames: {c}"),
                )?;
            }
            // Its second adapter is the guest's eth1.
            has(b, "interfaces: eth0 eth1 lo")?;
            has(b, "hv: power off (ok)")
        },
    },
    // Virtual SCSI disks as unmodified Linux's ibmvscsi and sd see them
    // (linux::disk_init_script): two VMs, each with a scratch disk, the
    // shared read-only image and its own copy of another image. Each
    // finds the three at their sizes, reads the shared image as the host
    // wrote it and cannot write it, writes its own copy and an ext2 file
    // system, reboots, and finds both as it left them and nothing of the
    // other VM's.
    Smoke {
        name: "linux-disks-survive-a-reboot-and-stay-apart",
        args: &["--initrd", "build/archives/disk.cpio", "--timeout", "400"],
        status: 0,
        typing: &[],
        check: |b| {
            for l in b.lines() {
                expect(!l.contains("WRONG"), &format!("a failed check: {l}"))?;
            }
            let vms = crate::linux::DISK_VMS;
            every_vm_done(b, vms, &format!("{} in ", crate::linux::DISK_DONE), "")?;
            for vm in vms {
                has(b, &format!("vm: {vm}: system-reboot #1"))?;
                // The shared image was read, never written.
                let report = b
                    .lines()
                    .find(|l| l.contains(&format!("disk: vm {vm} v-scsi@30000008: ")))
                    .ok_or(format!("no disk report of {vm}"))?;
                let lun1 = report
                    .split("; lun 1: ")
                    .nth(1)
                    .ok_or(format!("no lun 1 in {report}"))?;
                expect(
                    lun1.contains(" ro ")
                        && number_after(lun1, "reads=")? > 0
                        && number_after(lun1, "writes=")? == 0,
                    &format!("{vm}: the shared image: {report}"),
                )?;
            }
            // Linux read the write protection from MODE SENSE.
            has(b, "Write Protect is on")?;
            has(b, "hv: power off (ok)")
        },
    },
    // SMP under load (kernel and initramfs as users boot them; the work
    // of `cargo xtask bench linux-smp`, smaller): every result right,
    // every VM ok, no stall any guest can see.
    Smoke {
        name: "linux-stress-one-smt4-vcore",
        args: &[
            "--initrd",
            "build/archives/stress-smt4.cpio",
            "--timeout",
            "400",
        ],
        status: 0,
        typing: &[],
        check: |b| stress_ok(b, &["stress"]),
    },
    Smoke {
        name: "linux-stress-two-smt4-vcores",
        args: &[
            "--initrd",
            "build/archives/stress-2x-smt4.cpio",
            "--timeout",
            "600",
        ],
        status: 0,
        typing: &[],
        check: |b| stress_ok(b, &["stress"]),
    },
    Smoke {
        name: "linux-stress-three-vms-on-two-cores",
        args: &[
            "--initrd",
            "build/archives/stress-three-vms.cpio",
            "--memory",
            "4G",
            "--timeout",
            "900",
        ],
        status: 0,
        typing: &[],
        check: |b| stress_ok(b, &["stress-a", "stress-b", "stress-c"]),
    },
    Smoke {
        name: "linux-smp-two-smt4-vcores",
        args: &[
            "--initrd",
            "build/archives/linux-smp8.cpio",
            "--timeout",
            "600",
        ],
        status: 0,
        typing: &[
            (crate::linux::SHELL_MARKER, ""),
            (
                PROMPT,
                "echo \"cpus=$(nproc) cpuinfo=$(grep -c ^processor /proc/cpuinfo)\"\n",
            ),
            ("cpus=", ""),
            (PROMPT, "poweroff -f\n"),
        ],
        check: |b| {
            linux_booted(b)?;
            has(b, "smp: Brought up 1 node, 8 CPUs")?;
            has(b, "cpus=8 cpuinfo=8")?;
            has(b, "8 vcpus in 2 vcores of 4 threads")?;
            // Two vcores: HPT changes broadcast (tlbie), none local.
            let (local, global, _) = tlb_counts(b, "linux");
            expect(
                local == 0 && global > 0,
                &format!("tlbiel={local} tlbie={global}, want only tlbie"),
            )?;
            has(b, "hv: vm linux lpid=1 result=ok")
        },
    },
    Smoke {
        name: "linux-guest-panic-is-contained",
        args: &["--initrd", "build/archives/linux.cpio", "--timeout", "240"],
        status: 0,
        typing: &[
            (crate::linux::SHELL_MARKER, ""),
            (PROMPT, "echo c > /proc/sysrq-trigger\n"),
        ],
        check: |b| {
            linux_booted(b)?;
            has(
                b,
                "hv: vm linux lpid=1 result=crashed reason=\"guest panic: sysrq triggered crash",
            )?;
            has(b, "hv: all VMs stopped: 1 ran, 0 ok, 1 not ok")
        },
    },
    Smoke {
        name: "linux-next-to-bad-guest",
        args: &[
            "--initrd",
            "build/archives/linux-and-bad.cpio",
            "--timeout",
            "240",
        ],
        status: 0,
        typing: &[(crate::linux::SHELL_MARKER, ""), (PROMPT, "poweroff -f\n")],
        check: |b| {
            linux_booted(b)?;
            has(b, "bad: all 39 checks passed")?;
            has(b, "hv: vm linux lpid=1 result=ok")?;
            has(b, "hv: vm bad lpid=2 result=ok")?;
            has(b, "hv: all VMs stopped: 2 ran, 2 ok, 0 not ok")
        },
    },
];

pub fn test(args: &[String]) -> Result<(), String> {
    let lint = !args.iter().any(|a| a == "--no-lint");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1));
    if only.is_none() {
        step("host unit tests", cargo().args(["test"]).args(HOST_CRATES))?;
        if lint {
            // The firmware embeds the test guests: build them first.
            crate::build::build_guests()?;
            step(
                "cargo fmt --check",
                cargo().args(["fmt", "--all", "--check"]),
            )?;
            step(
                "cargo clippy (firmware)",
                cargo().args([
                    "clippy",
                    "--package",
                    "boot",
                    "--package",
                    "guest-hello",
                    "--package",
                    "guest-bad",
                    "--package",
                    "guest-reboot",
                    "--package",
                    "guest-mmu",
                    "--package",
                    "guest-smp",
                    "--package",
                    "guest-fuzz",
                    "--package",
                    "guest-escape",
                    "--release",
                    "--target",
                    "ppc64le-hv.json",
                    "-Zjson-target-spec",
                    "-Zbuild-std=core,alloc,compiler_builtins",
                    "-Zbuild-std-features=compiler-builtins-mem",
                    "--",
                    "-D",
                    "warnings",
                ]),
            )?;
            step(
                "cargo clippy (host crates)",
                cargo()
                    .args(["clippy", "--all-targets"])
                    .args(HOST_CRATES)
                    .args(["--", "-D", "warnings"]),
            )?;
        }
    }
    eprintln!("xtask: == firmware image");
    crate::build::build(false)?;
    crate::archives::prepare()?;
    crate::pnor::prepare()?;
    // The Linux archives, if a test that boots Linux runs (a flash tool
    // test among them).
    let mut names = SMOKES
        .iter()
        .map(|s| s.name)
        .chain(crate::pnor::TOOL_TESTS.iter().map(|t| t.name));
    if names.any(|n| n.contains("linux") && only.is_none_or(|o| n.contains(o.as_str()))) {
        crate::linux::prepare()?;
    }

    eprintln!("xtask: == QEMU smoke tests");
    let (mut pass, mut fail) = (0, 0);
    let mut skiboot_retries = 0;
    for t in crate::pnor::TOOL_TESTS
        .iter()
        .filter(|t| only.is_none_or(|o| t.name.contains(o.as_str())))
    {
        let start = std::time::Instant::now();
        match (t.run)() {
            Ok(()) => {
                pass += 1;
                eprintln!(
                    "smoke {:<36} ok ({:.1} s)",
                    t.name,
                    start.elapsed().as_secs_f64()
                );
            }
            Err(e) => {
                fail += 1;
                eprintln!("smoke {:<36} FAILED: {e}", t.name);
            }
        }
    }
    for s in SMOKES
        .iter()
        .filter(|s| only.is_none_or(|o| s.name.contains(o.as_str())))
    {
        let mut a: Vec<&str> = s.args.to_vec();
        if !a.contains(&"--timeout") {
            a.extend(["--timeout", "90"]);
        }
        let run = || {
            if s.typing.is_empty() {
                boot(&a)
            } else {
                boot_typing(&a, s.typing)
            }
        };
        let mut b = run()?;
        for _ in 0..SKIBOOT_RETRIES {
            if !(skiboot_hung(&b) && s.status != 2) {
                break;
            }
            // Not this firmware's doing: it never ran. Said, and tried
            // again, at most SKIBOOT_RETRIES times.
            eprintln!(
                "smoke {:<36} skiboot hung before starting the firmware ({}); booting again",
                s.name,
                b.lines()
                    .filter(|l| l.starts_with('['))
                    .last()
                    .unwrap_or("no skiboot output")
                    .trim()
            );
            skiboot_retries += 1;
            b = run()?;
        }
        let r = if b.status != s.status {
            Err(format!(
                "qemu-run.sh exit status {} (want {})",
                b.status, s.status
            ))
        } else {
            (s.check)(&b)
        };
        match r {
            Ok(()) => {
                pass += 1;
                eprintln!("smoke {:<36} ok ({:.1} s)", s.name, b.seconds);
            }
            Err(e) => {
                fail += 1;
                eprintln!(
                    "smoke {:<36} FAILED: {e}\n---- console of {} ----\n{}---- end ----",
                    s.name, s.name, b.console
                );
            }
        }
    }
    println!(
        "smoke: {pass} passed, {fail} failed, {skiboot_retries} booted again after skiboot hung"
    );
    if fail > 0 {
        Err(format!("{fail} smoke test(s) failed"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot_of(status: i32, console: &str) -> Boot {
        Boot {
            status,
            console: console.into(),
            seconds: 0.0,
            marks: vec![],
        }
    }

    #[test]
    fn only_a_timeout_before_the_firmware_started_is_a_skiboot_hang() {
        let pci = "[    3.501365701,5] PCI: Probing slots...\n";
        assert!(skiboot_hung(&boot_of(2, pci)));
        let started = "[    4.3,5] INIT: Starting kernel at 0x20000080, fdt at 0x30864fe8\n";
        assert!(
            !skiboot_hung(&boot_of(2, started)),
            "our hang, not skiboot's"
        );
        assert!(!skiboot_hung(&boot_of(1, pci)), "a failure, not a timeout");
    }
}
