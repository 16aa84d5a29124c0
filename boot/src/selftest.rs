//! Boot-time self tests and benchmarks selected by boot arguments
//! (`hv.test=ipi[:N]`, `hv.bench=ipi[:N]`).

use crate::cpus::{me, smp};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::smp::{CpuState, WakeReason};
use log::{error, info};
use ppc64::cpu;

/// Runs on the target: proves which thread ran it.
fn echo(x: u64) -> u64 {
    x.rotate_left(7) ^ me().pir as u64
}

/// Calls each coordinator made to each thread, by thread index.
static EXPECTED_CALLS: [AtomicU64; 256] = [const { AtomicU64::new(0) }; 256];
static BAD_REPLIES: AtomicU64 = AtomicU64::new(0);

/// Targets of a coordinator: its own core's secondaries, then every thread
/// of the other cores.
fn targets_of(me: &CpuState) -> Vec<&'static CpuState> {
    let smp = smp();
    let mut t: Vec<&CpuState> = smp
        .cpus
        .iter()
        .filter(|c| c.core == me.core && c.id != me.id)
        .collect();
    t.extend(smp.cpus.iter().filter(|c| c.core != me.core));
    t.retain(|c| c.is_online());
    t
}

/// `rounds` round trips from the calling thread, round robin over its targets.
fn round_trips(rounds: u64) -> u64 {
    let smp = smp();
    let me = me();
    let targets = targets_of(me);
    if targets.is_empty() {
        return 0;
    }
    let t0 = cpu::mftb();
    for i in 0..rounds {
        let t = targets[i as usize % targets.len()];
        let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ me.pir as u64;
        match smp.call(me, t.pir, echo, x, true) {
            Ok(Some(r)) if r == x.rotate_left(7) ^ t.pir as u64 => {}
            other => {
                BAD_REPLIES.fetch_add(1, Ordering::Relaxed);
                error!(target: "ipi", "PIR {:#x} -> {:#x}: bad reply {other:?}", me.pir, t.pir);
            }
        }
        EXPECTED_CALLS[t.id].fetch_add(1, Ordering::Relaxed);
    }
    let ms = kernel::time::ticks_to_ns(cpu::mftb() - t0) / 1_000_000;
    info!(
        target: "ipi",
        "PIR {:#x} (core {} thread 0): {rounds} round trips to {} threads in {ms} ms",
        me.pir,
        me.core,
        targets.len()
    );
    rounds
}

/// Every thread's counters once nothing moves any more: an IPI raised
/// just before (or a reply still being taken) is counted on both sides,
/// not on one side of a snapshot taken thread by thread. Two equal reads
/// 1 ms apart, with no thread in the middle of a call (a caller may have
/// its reply before the replier's IPI is counted, and a host that does
/// not run that thread for a while made the snapshot miss it: a CI run
/// counted one reply too many), count as settled (at most 100 tries).
/// The wait spins on the timebase: a timed nap would itself show up in
/// the wake counters.
fn settled_counters() -> Vec<kernel::smp::CounterSnapshot> {
    let smp = smp();
    let read = || -> Vec<_> { smp.cpus.iter().map(|c| c.stats.snapshot()).collect() };
    let mut last = read();
    for _ in 0..100 {
        let until = ppc64::cpu::mftb() + kernel::time::ms_to_ticks(1);
        while ppc64::cpu::mftb() < until {
            core::hint::spin_loop();
        }
        let now = read();
        if now == last && smp.cpus.iter().all(|c| c.stats.between_calls()) {
            break;
        }
        last = now;
    }
    last
}

/// How many of `sent` IPIs may coalesce on the receiving side (see
/// `ipi_test`): one in a thousand, at least one.
pub fn coalesce_bound(sent: u64) -> u64 {
    (sent / 1000).max(1)
}

/// `hv.test=ipi[:N]`: N round trips from thread 0 of every core to its
/// secondaries and across cores, one coordinator at a time, then exact
/// accounting of every IPI and wake-up. Returns whether it passed.
pub fn ipi_test(rounds: u32) -> bool {
    let smp = smp();
    let me = me();
    let mut ok = true;

    // A call to a thread that does not exist is refused, cleanly.
    let missing = (0..0x2000u32)
        .rev()
        .find(|p| smp.by_pir(*p).is_none())
        .unwrap_or(0x1fff);
    match smp.call(me, missing, echo, 0, true) {
        Err(e) => info!(target: "ipi", "call to PIR {missing:#x} refused: {e}"),
        Ok(_) => {
            error!(target: "ipi", "call to missing PIR {missing:#x} was not refused");
            ok = false;
        }
    }

    let before = settled_counters();
    let coordinators: Vec<&CpuState> = smp
        .cpus
        .iter()
        .filter(|c| c.thread == 0 && c.is_online())
        .collect();
    let mut total = 0;
    let mut control = 0;
    for c in &coordinators {
        if c.id == me.id {
            total += round_trips(rounds as u64);
        } else {
            // The coordinator's own run is itself a (long) call.
            EXPECTED_CALLS[c.id].fetch_add(1, Ordering::Relaxed);
            control += 1;
            match smp.call(me, c.pir, round_trips, rounds as u64, true) {
                Ok(Some(n)) => total += n,
                other => {
                    error!(target: "ipi", "coordinator PIR {:#x} failed: {other:?}", c.pir);
                    ok = false;
                }
            }
        }
    }
    let deltas: Vec<_> = settled_counters()
        .iter()
        .zip(&before)
        .map(|(a, b)| a.since(b))
        .collect();

    let (mut sent, mut received) = (0, 0);
    for (c, d) in smp.cpus.iter().zip(&deltas) {
        info!(target: "ipi", "PIR {:#x} core {} thread {}: {d}", c.pir, c.core, c.thread);
        sent += d.ipis_sent;
        received += d.ipis_received;
        let expected = EXPECTED_CALLS[c.id].load(Ordering::Relaxed);
        let external = d.wakes_of(WakeReason::External);
        // Decrementer wakes are the timed waits' (a reply's watchdog
        // deadline while the target runs a long call); anything else
        // would be unexplained.
        let other_wakes: u64 = WakeReason::ALL
            .iter()
            .filter(|r| !matches!(**r, WakeReason::External | WakeReason::Decrementer))
            .map(|r| d.wakes_of(*r))
            .sum();
        if d.calls_run != expected {
            error!(target: "ipi", "PIR {:#x}: ran {} calls, {expected} were sent to it", c.pir, d.calls_run);
            ok = false;
        }
        if external != d.ipis_received || other_wakes != 0 || d.spurious != 0 {
            error!(
                target: "ipi",
                "PIR {:#x}: {external} external wakes for {} IPIs, {other_wakes} other wakes, {} spurious",
                c.pir,
                d.ipis_received,
                d.spurious
            );
            ok = false;
        }
    }
    // Every call and every reply raised an IPI or joined one not yet taken
    // (single-level MFRR). Every raised IPI was taken once, except that a
    // raise landing between the target's XIRR accept and its MFRR clear
    // joins the IPI being taken (the receiver cannot see it: the calls it
    // carried are still run, which `calls_run` checks exactly); such
    // coalescing is rare and bounded.
    let merged: u64 = deltas.iter().map(|d| d.ipis_merged).sum();
    let want = 2 * (total + control);
    let coalesced = sent.saturating_sub(received);
    if sent + merged != want || received > sent || coalesced > coalesce_bound(sent) {
        error!(
            target: "ipi",
            "IPIs sent={sent} merged={merged} received={received}, expected sent+merged={want} and received=sent (at most {} coalesced while being taken)",
            coalesce_bound(sent)
        );
        ok = false;
    } else if coalesced > 0 {
        info!(target: "ipi", "{coalesced} IPI(s) raised while the target was taking one: coalesced with it");
    }
    if BAD_REPLIES.load(Ordering::Relaxed) != 0 {
        ok = false;
    }
    if ok {
        info!(
            target: "ipi",
            "verdict ok: {total} round trips from {} coordinators, {sent} IPIs sent and received ({merged} calls joined a pending IPI), every call run once, every wake an external-interrupt wake from nap",
            coordinators.len()
        );
    } else {
        error!(target: "ipi", "verdict FAILED");
    }
    ok
}

/// Timestamp on the target, for latency measurement.
fn stamp(_: u64) -> u64 {
    cpu::mftb()
}

struct Stats {
    median: u64,
    min: u64,
    max: u64,
}

fn stats(mut v: Vec<u64>) -> Stats {
    v.sort_unstable();
    Stats {
        median: v[v.len() / 2],
        min: v[0],
        max: v[v.len() - 1],
    }
}

/// `hv.bench=ipi[:N]`: IPI send -> target handler running, and the whole
/// round trip (IPI there, nap wake, handler, IPI back, nap wake), in
/// timebase ticks, for a secondary of the boot core and for thread 0 of
/// another core. Every other thread naps meanwhile.
pub fn ipi_bench(trials: u32) {
    let smp = smp();
    let me = me();
    let same = smp
        .cpus
        .iter()
        .find(|c| c.core == me.core && c.id != me.id && c.is_online());
    let cross = smp.cpus.iter().find(|c| c.core != me.core && c.is_online());
    for (kind, t) in [("same-core", same), ("cross-core", cross)] {
        let Some(t) = t else {
            info!(target: "bench", "ipi {kind}: no target thread on this machine");
            continue;
        };
        let mut one_way = Vec::with_capacity(trials as usize);
        let mut round = Vec::with_capacity(trials as usize);
        for _ in 0..trials {
            let t0 = cpu::mftb();
            let Ok(Some(t1)) = smp.call(me, t.pir, stamp, 0, true) else {
                error!(target: "bench", "call to PIR {:#x} failed", t.pir);
                return;
            };
            let t2 = cpu::mftb();
            one_way.push(t1.wrapping_sub(t0));
            round.push(t2 - t0);
        }
        for (what, v) in [("send->handler", one_way), ("round-trip", round)] {
            let s = stats(v);
            info!(
                target: "bench",
                "ipi {kind} {what} PIR {:#x}->{:#x}: median={} min={} max={} ticks ({trials} trials)",
                me.pir,
                t.pir,
                s.median,
                s.min,
                s.max
            );
        }
    }
}

/// `hv.test=resume`: exceptions that return. A `trap` (0x700, SRR0/1,
/// `rfid`) with every GPR loaded with a pattern must come back with all of
/// them intact; a hypervisor decrementer interrupt (0x980, HSRR0/1,
/// `hrfid`) must be taken and returned from; a 2 ms delay must nap until
/// the decrementer wakes the thread. Returns whether all held.
pub fn resume_test() -> bool {
    use crate::exceptions::{HDEC_ARMED, HDEC_TAKEN, RESUME_NEXT_TRAP};
    use ppc64::probe::{probe_pattern, trap_probe};
    let mut ok = true;

    RESUME_NEXT_TRAP.store(true, Ordering::Release);
    // SAFETY: the program-interrupt handler was armed just above.
    let regs = unsafe { trap_probe() };
    let checked: Vec<usize> = (0..32).filter(|n| ![1, 2, 13].contains(n)).collect();
    let bad: Vec<usize> = checked
        .iter()
        .copied()
        .filter(|&n| regs[n] != probe_pattern(n))
        .collect();
    if RESUME_NEXT_TRAP.load(Ordering::Acquire) || !bad.is_empty() {
        error!(target: "trap", "trap probe: handler not reached or GPRs changed: {bad:?}");
        ok = false;
    } else {
        info!(target: "trap", "program interrupt (0x700, rfid) resumed with all {} probed GPRs intact", checked.len());
    }

    let before = HDEC_TAKEN.load(Ordering::Acquire);
    cpu::set_dec(ppc64::spr::DEC_MAX);
    let lpcr = cpu::mfspr::<{ ppc64::spr::LPCR }>();
    HDEC_ARMED.store(true, Ordering::Release);
    let t0 = cpu::mftb();
    // SAFETY: HDEC interrupts go to the armed handler, which returns; the
    // decrementer was pushed far away and no IPI is pending on this thread.
    unsafe {
        cpu::set_lpcr(lpcr | ppc64::spr::LPCR_HDICE);
        cpu::set_hdec(kernel::time::us_to_ticks(10));
        cpu::set_ee(true);
    }
    let limit = kernel::time::ms_to_ticks(100);
    while HDEC_TAKEN.load(Ordering::Acquire) == before && cpu::mftb() - t0 < limit {
        core::hint::spin_loop();
    }
    // SAFETY: back to the normal state: EE off, HDEC interrupts off.
    unsafe {
        cpu::set_ee(false);
        cpu::set_lpcr(lpcr);
    }
    let dt = cpu::mftb() - t0;
    if HDEC_TAKEN.load(Ordering::Acquire) == before + 1 {
        info!(target: "trap", "hypervisor decrementer (0x980, hrfid) taken and returned from after {dt} ticks");
    } else {
        error!(target: "trap", "hypervisor decrementer interrupt not taken within {dt} ticks");
        HDEC_ARMED.store(false, Ordering::Release);
        ok = false;
    }

    let me = me();
    let dec_before = me.stats.wakes(WakeReason::Decrementer);
    let t0 = cpu::mftb();
    crate::cpus::delay_us(2000);
    let us = kernel::time::ticks_to_ns(cpu::mftb() - t0) / 1000;
    let dec_wakes = me.stats.wakes(WakeReason::Decrementer) - dec_before;
    if us >= 2000 && dec_wakes >= 1 {
        info!(target: "time", "delay of 2000 us took {us} us, {dec_wakes} decrementer wake(s) from nap");
    } else {
        error!(target: "time", "delay of 2000 us took {us} us with {dec_wakes} decrementer wakes");
        ok = false;
    }
    ok
}

/// Bytes `hv.test=stack-overflow` grows a thread's stack past its bottom
/// (into its guard zone, which is larger).
pub const OVERFLOW_BYTES: u64 = 1024;

/// Test only (`hv.test=stack-overflow`): one other thread grows its stack
/// [`OVERFLOW_BYTES`] past its bottom and returns. Its next guard check
/// (the idle loop it goes back to) reports the overflow and stops the
/// machine.
pub fn stack_overflow() {
    let smp = smp();
    let boot = me();
    let Some(t) = smp.cpus.iter().find(|c| c.id != boot.id && c.is_online()) else {
        error!(target: "hv", "test: no other thread to overflow a stack on");
        return;
    };
    log::warn!(target: "hv", "test: PIR {:#x} grows its stack {OVERFLOW_BYTES} bytes past its bottom (hv.test=stack-overflow)", t.pir);
    let _ = smp.call(boot, t.pir, dive, OVERFLOW_BYTES, true);
}

/// Runs on the target: recurses until r1 is `below` bytes under the
/// bottom of this thread's stack.
fn dive(below: u64) -> u64 {
    let zone = ppc64::power::this_paca().stack_zone;
    let bottom = zone + kernel::stackguard::ZONE_BYTES as u64;
    dive_to(bottom - below)
}

#[inline(never)]
fn dive_to(limit: u64) -> u64 {
    let mut frame = [0u8; 256];
    core::hint::black_box(&mut frame);
    if cpu::stack_pointer() > limit {
        // Not a tail call: every level keeps its frame.
        dive_to(limit).wrapping_add(frame[0] as u64)
    } else {
        0
    }
}

/// Test only (`hv.test=stuck-thread`): another thread stops answering for
/// 2.5 watchdog intervals (it spins in a call); a call to it meanwhile
/// is reported by the watchdog, then answered, and the boot goes on.
pub fn stuck_thread() {
    let smp = smp();
    let boot = me();
    let Some(t) = smp.cpus.iter().find(|c| c.id != boot.id && c.is_online()) else {
        error!(target: "hv", "test: no other thread to get stuck");
        return;
    };
    let ms = kernel::smp::WATCHDOG_MS * 5 / 2;
    log::warn!(target: "hv", "test: PIR {:#x} stops answering for {ms} ms (hv.test=stuck-thread)", t.pir);
    let _ = smp.call(boot, t.pir, spin_ms, ms, false);
    match smp.call(boot, t.pir, echo, 1, true) {
        Ok(Some(r)) if r == 1u64.rotate_left(7) ^ t.pir as u64 => {
            info!(target: "hv", "test: PIR {:#x} answered again", t.pir)
        }
        other => error!(target: "hv", "test: PIR {:#x}: bad reply {other:?}", t.pir),
    }
}

/// Runs on the target: busy for `ms` milliseconds, serving nothing.
fn spin_ms(ms: u64) -> u64 {
    let end = cpu::mftb() + kernel::time::ms_to_ticks(ms);
    while cpu::mftb() < end {
        core::hint::spin_loop();
    }
    ms
}
