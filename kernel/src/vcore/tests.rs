//! The vcore protocol against host threads standing in for a core's
//! hardware threads: races QEMU cannot show (partition registers and the
//! TLB are per core on POWER8, per thread in QEMU).

use super::*;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use std::vec::Vec;

#[test]
fn layout_places_vcpu_n_on_thread_n_mod_threads() {
    let l = Layout::new(8, 4, 8).unwrap();
    assert_eq!(l.vcores(), 2);
    assert_eq!(l.place(0), Some((0, 0)));
    assert_eq!(l.place(5), Some((1, 1)));
    assert_eq!(l.place(8), None);
    assert_eq!(l.vcpu(1, 3), Some(7));
    assert_eq!(l.vcpu(1, 4), None);
    assert_eq!(l.vcpu(2, 0), None);
    assert_eq!(Layout::new(3, 1, 4).unwrap().vcores(), 3);
}

#[test]
fn layout_errors_say_what_is_wrong() {
    assert_eq!(Layout::new(0, 1, 4), Err(LayoutError::NoVcpus));
    assert_eq!(Layout::new(3, 3, 4), Err(LayoutError::Threads(3)));
    assert_eq!(
        Layout::new(8, 8, 4),
        Err(LayoutError::MoreThanMachine {
            threads: 8,
            machine: 4
        })
    );
    assert_eq!(
        Layout::new(6, 4, 4),
        Err(LayoutError::NotMultiple {
            vcpus: 6,
            threads: 4
        })
    );
    assert_eq!(
        LayoutError::NotMultiple {
            vcpus: 6,
            threads: 4
        }
        .to_string(),
        "vcpus = 6 is not a multiple of threads = 4"
    );
}

#[test]
fn a_vcore_wants_a_core_unless_a_vcpu_is_busy_or_all_are_stopped() {
    use VcpuState::*;
    assert!(wants_core([Runnable, Ceded, Stopped, Runnable]));
    assert!(
        wants_core([Ceded, Stopped]),
        "a ceded vcpu naps on its core"
    );
    assert!(!wants_core([Stopped, Stopped]), "waits for start-cpu");
    assert!(!wants_core([Runnable, BusyInHost]));
    assert!(!wants_core([]));
}

#[test]
fn entry_exit_is_all_or_nothing() {
    let e = EntryExit::default();
    e.start(5);
    // Thread 0 is in the run from the start: not all out yet.
    assert!(!e.all_out());
    assert!(!e.try_enter(1, 4), "a thread woken for another run");
    assert!(e.try_enter(2, 5) && e.try_enter(3, 5));
    assert!(!e.exiting());
    // Thread 2 starts the exit: 0 and 3 must be told.
    assert_eq!(e.exit(2), 0b1001);
    assert!(e.exiting());
    // A late thread cannot join a vcore on its way out.
    assert!(!e.try_enter(1, 5));
    assert_eq!(e.exit(3), 0, "only the first to leave kicks the others");
    assert!(!e.all_out());
    assert_eq!(e.exit(0), 0);
    assert!(e.all_out());
    e.start(6);
    assert!(!e.all_out(), "thread 0 is in every run");
    assert!(!e.try_enter(1, 5));
    assert!(e.try_enter(1, 6));
    assert_eq!(e.exit(0), 0b10, "thread 0 leaving first kicks thread 1");
    assert_eq!(e.exit(1), 0);
    assert!(e.all_out());
}

#[test]
fn a_prod_before_the_cede_is_remembered_and_one_after_wakes() {
    let c = CedeState::default();
    assert!(!c.prod(), "not ceded: nothing to wake");
    assert_eq!(c.cede(), Cede::Resume);
    assert_eq!(c.cede(), Cede::Sleep, "the prod was used up");
    assert!(!c.take_wake());
    assert!(c.prod(), "ceded: wake its thread");
    assert!(c.take_wake());
    assert_eq!(c.cede(), Cede::Sleep);
    c.end();
    assert!(!c.prod(), "the cede ended (an interrupt): only remembered");
    assert_eq!(c.cede(), Cede::Resume);
}

/// Waits for `cond`, failing the test instead of hanging.
fn spin_until(what: &str, cond: impl Fn() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "stuck waiting for {what}"
        );
        std::thread::yield_now();
    }
}

#[test]
fn prods_crossing_cedes_are_never_lost() {
    const ROUNDS: u64 = 20_000;
    let state = Arc::new(CedeState::default());
    let acks = Arc::new(AtomicU64::new(0));
    let sleeper = {
        let (state, acks) = (state.clone(), acks.clone());
        std::thread::spawn(move || {
            let mut slept = 0;
            for i in 0..ROUNDS {
                if state.cede() == Cede::Sleep {
                    slept += 1;
                    spin_until("a prod", || state.take_wake());
                }
                acks.store(i + 1, Ordering::Release);
            }
            slept
        })
    };
    for i in 0..ROUNDS {
        // Prod at any point of the sleeper's round: before, during or
        // after its cede.
        state.prod();
        spin_until("the sleeper", || acks.load(Ordering::Acquire) > i);
    }
    let slept = sleeper.join().unwrap();
    // Both orders happened, and every one ended in a wake.
    assert!(slept > 0 && slept < ROUNDS, "slept {slept} of {ROUNDS}");
}

/// A fake core: host threads as hardware threads, a partition register
/// only thread 0 writes, IPIs as a condition variable (to start a run) and
/// per-thread kick flags (the exit IPI, sent to exactly the threads the
/// first thread to leave is told about), and a check that no thread is in
/// the guest while the partition is not loaded.
struct FakeCore {
    entry_exit: EntryExit,
    /// The partition register: the guest's LPID or 0 (the hypervisor's).
    lpidr: AtomicU32,
    /// Threads executing guest code now.
    in_guest: AtomicUsize,
    /// Run number thread 0 asked the secondaries to join (the IPI).
    run: Mutex<u64>,
    wake: Condvar,
    /// Exit IPIs, one per thread.
    kicked: [AtomicBool; 4],
    done: AtomicBool,
    joined: AtomicU64,
    refused: AtomicU64,
}

const LPID: u32 = 7;

impl FakeCore {
    /// Thread `ptid` in run `run`: guest code until told to leave (or,
    /// as `leader`, it starts the vcore exit itself), then leaves; the
    /// first to leave sends the exit IPIs `exit` names.
    fn in_guest(&self, ptid: u32, leader: bool) {
        assert_eq!(
            self.lpidr.load(Ordering::Acquire),
            LPID,
            "in the guest outside the partition"
        );
        self.in_guest.fetch_add(1, Ordering::AcqRel);
        if !leader {
            spin_until("the exit IPI", || {
                self.kicked[ptid as usize].swap(false, Ordering::AcqRel)
            });
        }
        self.in_guest.fetch_sub(1, Ordering::AcqRel);
        let kick = self.entry_exit.exit(ptid);
        for t in 0..4 {
            if kick & (1 << t) != 0 {
                self.kicked[t].store(true, Ordering::Release);
            }
        }
    }
}

#[test]
fn thread0_switches_the_partition_only_with_every_thread_out() {
    const THREADS: u32 = 4;
    const RUNS: u64 = 2000;
    let core = Arc::new(FakeCore {
        entry_exit: EntryExit::default(),
        lpidr: AtomicU32::new(0),
        in_guest: AtomicUsize::new(0),
        run: Mutex::new(0),
        wake: Condvar::new(),
        kicked: Default::default(),
        done: AtomicBool::new(false),
        joined: AtomicU64::new(0),
        refused: AtomicU64::new(0),
    });
    let secondaries: Vec<_> = (1..THREADS)
        .map(|ptid| {
            let c = core.clone();
            std::thread::spawn(move || {
                let mut seen = 0;
                loop {
                    // Nap until thread 0's IPI for a new run.
                    let run = {
                        let mut r = c.run.lock().unwrap();
                        while *r == seen && !c.done.load(Ordering::Acquire) {
                            r = c.wake.wait(r).unwrap();
                        }
                        *r
                    };
                    if c.done.load(Ordering::Acquire) {
                        return;
                    }
                    seen = run;
                    // A thread woken late finds the vcore leaving, or
                    // already a later run: it stays out.
                    if !c.entry_exit.try_enter(ptid, run as u32) {
                        c.refused.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    c.joined.fetch_add(1, Ordering::Relaxed);
                    // Every fourth run this thread starts the exit itself
                    // (a VM stop on a secondary).
                    c.in_guest(ptid, run % 4 == u64::from(ptid));
                }
            })
        })
        .collect();
    for run in 1..=RUNS {
        // Thread 0: switch the partition in, start the run, wake the
        // others, run its vcpu.
        core.lpidr.store(LPID, Ordering::Release);
        core.entry_exit.start(run as u32);
        *core.run.lock().unwrap() = run;
        core.wake.notify_all();
        // Thread 0 starts the exit on the other runs (its time slice);
        // on a secondary's run it waits for that secondary's exit IPI
        // (the leader cannot be refused: nobody else starts an exit, and
        // the next run waits for this one).
        if run % 4 != 0 {
            spin_until("the exit IPI", || {
                core.kicked[0].swap(false, Ordering::AcqRel)
            });
        }
        core.in_guest(0, true);
        // Wait for everyone who entered, then switch back.
        spin_until("all threads out", || core.entry_exit.all_out());
        assert_eq!(
            core.in_guest.load(Ordering::Acquire),
            0,
            "a thread is still in the guest"
        );
        core.lpidr.store(0, Ordering::Release);
        for k in &core.kicked {
            k.store(false, Ordering::Release);
        }
    }
    core.done.store(true, Ordering::Release);
    core.wake.notify_all();
    for s in secondaries {
        s.join().unwrap();
    }
    // Secondaries did take part (the protocol is not trivially refusing).
    assert!(core.joined.load(Ordering::Relaxed) > RUNS);
}

#[test]
fn the_run_queue_is_round_robin_and_skips_what_cannot_run() {
    let mut q = RunQueue::new();
    for v in ["a", "b", "c"] {
        q.push(v);
    }
    // Two cores take the first two; a slice ends and "a" goes to the back.
    assert_eq!(q.take(|_| true), Some("a"));
    assert_eq!(q.take(|_| true), Some("b"));
    q.push("a");
    assert_eq!(q.take(|_| true), Some("c"));
    q.push("b");
    // "a" is blocked (all its vcpus ceded): "b" runs, "a" keeps its place.
    assert_eq!(q.take(|v| *v != "a"), Some("b"));
    assert_eq!(q.len(), 1);
    assert_eq!(q.take(|v| *v != "a"), None);
    assert_eq!(q.take(|_| true), Some("a"));
    assert!(q.is_empty());
}

/// Ticks a millisecond in the JoinWatch tests.
const MS: u64 = 512;

#[test]
fn a_thread_later_than_the_old_100_ms_is_only_reported_and_a_dead_one_after_30_s() {
    let w = JoinWatch::default();
    let t0 = 1_000_000;
    w.ask(1, t0);
    w.ask(2, t0);
    let seen = |now: u64| {
        let mut v = Vec::new();
        w.check(now, MS, |t, l| v.push((t, l)));
        v
    };
    // The old bounded wait stopped the VM here; now nothing happens.
    assert_eq!(seen(t0 + 150 * MS), []);
    assert_eq!(seen(t0 + 999 * MS), []);
    w.answered(2);
    assert_eq!(seen(t0 + 1000 * MS), [(1, Late::Report(1000))]);
    assert_eq!(
        seen(t0 + 1500 * MS),
        [],
        "next report when the wait doubled"
    );
    assert_eq!(seen(t0 + 2000 * MS), [(1, Late::Report(2000))]);
    assert_eq!(seen(t0 + 3999 * MS), []);
    assert_eq!(seen(t0 + 4000 * MS), [(1, Late::Report(4000))]);
    assert_eq!(
        seen(t0 + JOIN_DEAD_MS * MS),
        [(1, Late::Dead(JOIN_DEAD_MS))]
    );
}

#[test]
fn a_late_thread_stays_late_across_runs_until_it_answers() {
    let w = JoinWatch::default();
    w.ask(3, 10 * MS);
    // Later runs ask again: the first request's time is kept.
    w.ask(3, 500 * MS);
    w.ask(3, 900 * MS);
    let mut v = Vec::new();
    w.check(1010 * MS, MS, |t, l| v.push((t, l)));
    assert_eq!(v, [(3, Late::Report(1000))]);
    // It answers (even too late for its run): it is alive, the clock
    // starts again with the next request.
    w.answered(3);
    w.ask(3, 2000 * MS);
    v.clear();
    w.check(2999 * MS, MS, |t, l| v.push((t, l)));
    assert_eq!(v, []);
    w.check(3000 * MS, MS, |t, l| v.push((t, l)));
    assert_eq!(v, [(3, Late::Report(1000))]);
    w.answered(3);
    v.clear();
    w.check(u64::MAX / 2, MS, |t, l| v.push((t, l)));
    assert_eq!(v, [], "nobody is waited for once every thread answered");
}

#[test]
fn a_thread_that_joins_under_a_second_is_never_reported() {
    // Host threads as a core's threads: thread 0 asks, each secondary
    // answers after a delay longer than the old 100 ms bound.
    let w = Arc::new(JoinWatch::default());
    let start = Instant::now();
    let now = move || start.elapsed().as_micros() as u64 * MS / 1000 + 1;
    for t in 1..4 {
        w.ask(t, now());
    }
    let threads: Vec<_> = (1..4)
        .map(|t| {
            let w = w.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(120));
                w.answered(t);
            })
        })
        .collect();
    for h in threads {
        h.join().unwrap();
    }
    let mut reports = 0;
    w.check(now() + 10 * 1000 * MS, MS, |_, _| reports += 1);
    assert_eq!(reports, 0, "every thread answered: nothing to report");
}
