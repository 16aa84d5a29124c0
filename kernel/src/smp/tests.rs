//! The call protocol on host threads: each "hardware thread" is an OS
//! thread, an IPI is a pending flag plus a condition variable (like an ICP's
//! MFRR: one level, so two IPIs before an acknowledgement coalesce), and
//! `idle` sleeps until the flag is set, as nap does.

use super::*;
use ppc64::spr::SRR1_WS_NOLOSS;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

struct FakeIcp {
    pending: Mutex<bool>,
    cv: Condvar,
}

struct Fake {
    icps: Vec<FakeIcp>,
    start: Instant,
    /// Microseconds (the fake's ticks) in a watchdog millisecond.
    per_ms: AtomicU64,
}

impl Machine for Fake {
    fn send_ipi(&self, to: &CpuState) {
        *self.icps[to.id].pending.lock().unwrap() = true;
        self.icps[to.id].cv.notify_one();
    }

    fn ipi_pending(&self, to: &CpuState) -> bool {
        *self.icps[to.id].pending.lock().unwrap()
    }

    fn idle(&self, me: &CpuState, deadline: Option<u64>) {
        let icp = &self.icps[me.id];
        let mut p = icp.pending.lock().unwrap();
        while !*p {
            let wait = match deadline {
                Some(d) => {
                    let now = self.now();
                    if now >= d {
                        me.stats.count_wake(WakeReason::Decrementer);
                        return;
                    }
                    Duration::from_micros(d - now)
                }
                None => Duration::from_secs(10),
            };
            p = icp.cv.wait_timeout(p, wait).unwrap().0;
        }
        *p = false;
        me.stats.count_wake(WakeReason::External);
        me.stats.ipis_received.fetch_add(1, Ordering::Relaxed);
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// Time is in microseconds; the watchdog's second is 100 ms unless a
    /// test says otherwise.
    fn ticks_per_ms(&self) -> u64 {
        self.per_ms.load(Ordering::Relaxed)
    }
}

/// 2 cores x 4 threads with powernv8 PIRs; all online.
fn machine() -> Arc<Smp<Fake>> {
    let mut cpus = Vec::new();
    for core in 0..2 {
        for t in 0..4 {
            let pir = ((core as u32 + 1) << 3) | t as u32;
            cpus.push(CpuState::new(cpus.len(), pir, core, t, 0));
        }
    }
    let n = cpus.len();
    let smp = Arc::new(Smp::new(
        cpus,
        Fake {
            icps: (0..n)
                .map(|_| FakeIcp {
                    pending: Mutex::new(false),
                    cv: Condvar::new(),
                })
                .collect(),
            start: Instant::now(),
            per_ms: AtomicU64::new(100),
        },
    ));
    for c in &smp.cpus {
        c.set_online();
    }
    smp
}

/// Starts idle loops on every thread but `except`.
fn start_idle(smp: &Arc<Smp<Fake>>, except: &[usize]) {
    for id in 0..smp.cpus.len() {
        if except.contains(&id) {
            continue;
        }
        let s = smp.clone();
        std::thread::spawn(move || s.idle_loop(&s.cpus[id]));
    }
}

fn double(x: u64) -> u64 {
    x * 2
}

#[test]
fn round_trips_from_each_core_thread0_are_counted_exactly() {
    let smp = machine();
    start_idle(&smp, &[0]);
    let me = &smp.cpus[0];
    let rounds = 2000u64;
    let before: Vec<_> = smp.cpus.iter().map(|c| c.stats.snapshot()).collect();
    for i in 0..rounds {
        let target = smp.cpus[1 + (i as usize % 7)].pir;
        let r = smp.call(me, target, double, i, true).unwrap();
        assert_eq!(r, Some(i * 2));
    }
    let d: Vec<_> = smp
        .cpus
        .iter()
        .zip(&before)
        .map(|(c, b)| c.stats.snapshot().since(b))
        .collect();
    // One IPI there, one back, per round trip; none lost, none duplicated.
    let sent: u64 = d.iter().map(|s| s.ipis_sent).sum();
    let merged: u64 = d.iter().map(|s| s.ipis_merged).sum();
    let recv: u64 = d.iter().map(|s| s.ipis_received).sum();
    // Every call and reply raised or joined an IPI; every raised IPI was
    // taken exactly once.
    assert_eq!(sent + merged, 2 * rounds);
    assert_eq!(recv, sent);
    assert_eq!(d[0].ipis_sent + d[0].ipis_merged, rounds);
    for (i, s) in d.iter().enumerate().skip(1) {
        let expect = (rounds / 7) + u64::from(((i - 1) as u64) < rounds % 7);
        assert_eq!(s.calls_run, expect, "thread {i}");
        assert!(s.ipis_received <= expect);
        assert_eq!(s.wakes_of(WakeReason::External), s.ipis_received);
    }
}

#[test]
fn calls_between_two_waiting_senders_do_not_deadlock() {
    // Thread 0 of each core calls into the other while itself waiting.
    let smp = machine();
    start_idle(&smp, &[0, 4]);
    let finished = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
    let hs: Vec<_> = [0usize, 4]
        .into_iter()
        .map(|me| {
            let s = smp.clone();
            let fin = finished.clone();
            std::thread::spawn(move || {
                let other = if me == 0 { 0x10 } else { 0x8 };
                for i in 0..500 {
                    assert_eq!(
                        s.call(&s.cpus[me], other, double, i, true).unwrap(),
                        Some(2 * i)
                    );
                }
                // Keep serving the other sender until it is done too.
                fin[me / 4].store(true, Ordering::SeqCst);
                while !fin[1 - me / 4].load(Ordering::SeqCst) {
                    s.wait_until(&s.cpus[me], Some(1000), || {
                        fin[1 - me / 4].load(Ordering::SeqCst)
                    });
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
}

static HITS: AtomicU64 = AtomicU64::new(0);
fn hit(x: u64) -> u64 {
    HITS.fetch_add(x, Ordering::SeqCst);
    0
}

#[test]
fn call_many_wakes_exactly_the_chosen_secondaries() {
    let smp = machine();
    start_idle(&smp, &[4]);
    let me = &smp.cpus[4]; // thread 0 of core 1
    let mut mask = CpuMask::new();
    for id in [5, 7] {
        mask.set(id);
    }
    let before: Vec<_> = smp.cpus.iter().map(|c| c.stats.snapshot()).collect();
    HITS.store(0, Ordering::SeqCst);
    smp.call_many(me, &mask, hit, 1, true).unwrap();
    assert_eq!(HITS.load(Ordering::SeqCst), 2);
    for (i, c) in smp.cpus.iter().enumerate() {
        let d = c.stats.snapshot().since(&before[i]);
        let chosen = i == 5 || i == 7;
        assert_eq!(d.calls_run, u64::from(chosen), "thread {i}");
    }
}

#[test]
fn calls_to_missing_or_offline_threads_are_refused() {
    let mut cpus = vec![CpuState::new(0, 8, 0, 0, 0), CpuState::new(1, 9, 0, 1, 0)];
    cpus[0].set_online();
    let smp = Smp::new(
        std::mem::take(&mut cpus),
        Fake {
            icps: (0..2)
                .map(|_| FakeIcp {
                    pending: Mutex::new(false),
                    cv: Condvar::new(),
                })
                .collect(),
            start: Instant::now(),
            per_ms: AtomicU64::new(100),
        },
    );
    let me = &smp.cpus[0];
    assert_eq!(
        smp.call(me, 0x7f, double, 1, true),
        Err(CallError::NoSuchThread(0x7f))
    );
    assert_eq!(smp.call(me, 9, double, 1, true), Err(CallError::Offline(9)));
    assert_eq!(
        CallError::NoSuchThread(0x7f).to_string(),
        "no thread with PIR 0x7f on this machine"
    );
    // A call to oneself runs inline, no IPI.
    assert_eq!(smp.call(me, 8, double, 21, true), Ok(Some(42)));
    assert_eq!(me.stats.snapshot().ipis_sent, 0);
    // Nothing was posted to the refused targets.
    assert!(smp.cpus[1].mailbox.take().is_none());
}

#[test]
fn wait_until_times_out_with_a_timer_wake() {
    let smp = machine();
    let me = &smp.cpus[0];
    let ok = smp.wait_until(me, Some(2000), || false);
    assert!(!ok);
    assert!(me.stats.wakes(WakeReason::Decrementer) >= 1);
}

#[test]
fn mailbox_states_follow_the_protocol() {
    let m = Mailbox::new();
    assert!(m.take().is_none(), "nothing posted");
    assert!(m.claim());
    assert!(!m.claim(), "claimed twice");
    assert!(m.take().is_none(), "claimed but not yet posted");
    m.post(3, double, 5, true);
    let r = m.take().unwrap();
    assert_eq!((r.arg, r.from, r.wait), (5, 3, true));
    assert!(m.collect().is_none(), "still running");
    m.finish(&r, (r.func)(r.arg));
    assert_eq!(m.collect(), Some(10));
    assert!(m.claim(), "free again");
    m.post(1, double, 1, false);
    let r = m.take().unwrap();
    m.finish(&r, 0);
    assert!(m.collect().is_none(), "no result kept for a no-wait call");
    assert!(m.claim());
}

#[test]
fn wake_reasons_decode_from_srr1() {
    assert_eq!(
        WakeReason::from_srr1(0x9000_0000_0021_0000 | SRR1_WS_NOLOSS),
        WakeReason::External
    );
    assert_eq!(
        WakeReason::from_srr1(SRR1_WAKE_DEC | SRR1_WS_NOLOSS),
        WakeReason::Decrementer
    );
    assert_eq!(
        WakeReason::from_srr1(SRR1_WAKE_HDBELL),
        WakeReason::HvDoorbell
    );
    assert_eq!(WakeReason::from_srr1(SRR1_WAKE_DBELL), WakeReason::Doorbell);
    assert_eq!(WakeReason::from_srr1(0x0010_0000), WakeReason::Other);
}

#[test]
fn work_posted_in_the_state_block_runs_from_the_idle_loop_exactly_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static SEEN: AtomicUsize = AtomicUsize::new(0);
    let smp = machine();
    // Thread 5 idles and runs posted work; thread 0 posts and kicks.
    let s = smp.clone();
    std::thread::spawn(move || {
        s.idle_loop_with(&s.cpus[5], |_, t| {
            SEEN.fetch_add(t, Ordering::AcqRel);
        })
    });
    let (me, t) = (&smp.cpus[0], &smp.cpus[5]);
    for i in 1..=200usize {
        while !t.hv.post(i) {
            std::thread::yield_now();
        }
        smp.kick(me, t);
    }
    let want: usize = (1..=200).sum();
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while SEEN.load(Ordering::Acquire) != want {
        assert!(Instant::now() < deadline, "posted work was lost");
        std::thread::yield_now();
    }
    // Work the thread never took is the poster's again, exactly once.
    let idle = &smp.cpus[6];
    assert!(idle.hv.post(7));
    assert!(!idle.hv.post(8), "a second post must wait for the first");
    assert!(idle.hv.reclaim(7));
    assert!(!idle.hv.reclaim(7));
    assert_eq!(idle.hv.take(), None);
    idle.hv.set_mode(ThreadMode::InGuest);
    assert_eq!(idle.hv.mode(), ThreadMode::InGuest);
}

#[test]
fn the_watchdog_reports_at_its_interval_and_then_at_each_doubling() {
    let mut d = Watchdog::new(100, 10);
    assert_eq!(d.deadline(), 100 + WATCHDOG_MS * 10);
    assert_eq!(d.due(100 + WATCHDOG_MS * 10 - 1), None);
    assert_eq!(d.due(100 + WATCHDOG_MS * 10), Some(WATCHDOG_MS));
    // The next report when the wait has doubled.
    assert_eq!(d.deadline(), 100 + 2 * WATCHDOG_MS * 10);
    assert_eq!(d.due(100 + 2 * WATCHDOG_MS * 10 - 1), None);
    assert_eq!(d.due(100 + 2 * WATCHDOG_MS * 10), Some(2 * WATCHDOG_MS));
}

fn slow(ms_of_fake_time: u64) -> u64 {
    // The fake's watchdog millisecond is 100 us.
    std::thread::sleep(Duration::from_micros(ms_of_fake_time * 100));
    ms_of_fake_time
}

#[test]
fn a_thread_that_answers_late_is_reported_and_a_prompt_one_is_not() {
    let smp = machine();
    start_idle(&smp, &[0]);
    let me = &smp.cpus[0];
    // A prompt answer, with a watchdog second of 10 s: however loaded the
    // host is, no report.
    smp.machine.per_ms.store(10_000, Ordering::Relaxed);
    assert_eq!(smp.call(me, smp.cpus[1].pir, slow, 0, true), Ok(Some(0)));
    assert_eq!(me.stats.watchdog_reports.load(Ordering::Relaxed), 0);
    // Late by 2.5 watchdog intervals (the sleep guarantees it): reported
    // at least at the first one, and the answer still arrives.
    smp.machine.per_ms.store(100, Ordering::Relaxed);
    let late = WATCHDOG_MS * 5 / 2;
    assert_eq!(
        smp.call(me, smp.cpus[2].pir, slow, late, true),
        Ok(Some(late))
    );
    assert!(me.stats.watchdog_reports.load(Ordering::Relaxed) >= 1);
}

#[test]
fn a_thread_still_busy_with_an_earlier_call_is_reported_too() {
    let smp = machine();
    start_idle(&smp, &[0]);
    let me = &smp.cpus[0];
    let t = smp.cpus[3].pir;
    // The second call waits for the mailbox the first still holds.
    assert_eq!(smp.call(me, t, slow, WATCHDOG_MS * 2, false), Ok(None));
    assert_eq!(smp.call(me, t, double, 21, true), Ok(Some(42)));
    assert!(me.stats.watchdog_reports.load(Ordering::Relaxed) >= 1);
}
