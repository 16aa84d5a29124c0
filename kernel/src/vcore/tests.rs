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
fn a_vcore_runs_when_no_vcpu_is_busy_and_one_is_runnable() {
    use VcpuState::*;
    assert!(can_run([Runnable, Ceded, Stopped, Runnable]));
    assert!(!can_run([Ceded, Stopped]));
    assert!(!can_run([Runnable, BusyInHost]));
    assert!(!can_run([]));
}

#[test]
fn entry_exit_is_all_or_nothing() {
    let e = EntryExit::default();
    e.start(5);
    assert!(!e.try_enter(1, 4), "a thread woken for another run");
    assert!(e.try_enter(0, 5) && e.try_enter(2, 5) && e.try_enter(3, 5));
    assert!(!e.exiting() && !e.all_out());
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
    assert!(e.all_out(), "nobody in a run that has just started");
    assert!(!e.try_enter(1, 5));
    assert!(e.try_enter(1, 6));
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

/// A fake core: `threads` host threads, a partition register only thread
/// 0 writes, IPIs as a condition variable, and a check that no thread is
/// in the guest while the partition is not loaded.
struct FakeCore {
    entry_exit: EntryExit,
    /// The partition register: the guest's LPID or 0 (the hypervisor's).
    lpidr: AtomicU32,
    /// Threads executing guest code now.
    in_guest: AtomicUsize,
    /// Run number thread 0 asked the secondaries to join (the IPI).
    run: Mutex<u64>,
    kick: Condvar,
    done: AtomicBool,
    entered: AtomicU64,
    refused: AtomicU64,
}

#[test]
fn thread0_switches_the_partition_only_with_every_thread_out() {
    const THREADS: u32 = 4;
    const RUNS: u64 = 2000;
    const LPID: u32 = 7;
    let core = Arc::new(FakeCore {
        entry_exit: EntryExit::default(),
        lpidr: AtomicU32::new(0),
        in_guest: AtomicUsize::new(0),
        run: Mutex::new(0),
        kick: Condvar::new(),
        done: AtomicBool::new(false),
        entered: AtomicU64::new(0),
        refused: AtomicU64::new(0),
    });
    // What a thread does in a run: enter if the vcore is not already on
    // its way out, run guest code until someone starts the vcore exit
    // (or, on `leader`, start it itself), leave.
    fn take_part(c: &FakeCore, ptid: u32, run: u64, leader: bool) {
        if !c.entry_exit.try_enter(ptid, run as u32) {
            c.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        assert_eq!(
            c.lpidr.load(Ordering::Acquire),
            LPID,
            "entered outside the partition"
        );
        c.in_guest.fetch_add(1, Ordering::AcqRel);
        c.entered.fetch_add(1, Ordering::Relaxed);
        if !leader {
            // Guest code until the exit IPI arrives.
            spin_until("the exit IPI", || c.entry_exit.exiting());
        }
        c.in_guest.fetch_sub(1, Ordering::AcqRel);
        // The first to leave would IPI the threads it names.
        let _ = c.entry_exit.exit(ptid);
    }
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
                            r = c.kick.wait(r).unwrap();
                        }
                        *r
                    };
                    if c.done.load(Ordering::Acquire) {
                        return;
                    }
                    seen = run;
                    // Every fourth run this thread starts the exit itself
                    // (a VM stop on a secondary).
                    take_part(&c, ptid, run, run % 4 == u64::from(ptid));
                }
            })
        })
        .collect();
    for run in 1..=RUNS {
        // Thread 0: switch the partition in, wake the others, take part.
        core.entry_exit.start(run as u32);
        core.lpidr.store(LPID, Ordering::Release);
        *core.run.lock().unwrap() = run;
        core.kick.notify_all();
        // Thread 0 starts the exit on the other runs (its time slice).
        take_part(&core, 0, run, run % 4 == 0);
        // Wait for everyone who entered, then switch back.
        spin_until("all threads out", || core.entry_exit.all_out());
        assert_eq!(
            core.in_guest.load(Ordering::Acquire),
            0,
            "a thread is still in the guest"
        );
        core.lpidr.store(0, Ordering::Release);
    }
    core.done.store(true, Ordering::Release);
    core.kick.notify_all();
    for s in secondaries {
        s.join().unwrap();
    }
    let (entered, refused) = (
        core.entered.load(Ordering::Relaxed),
        core.refused.load(Ordering::Relaxed),
    );
    // Thread 0 entered every run; late secondaries were refused, not lost.
    assert!(entered >= RUNS);
    assert!(
        entered + refused >= RUNS,
        "entered {entered} refused {refused}"
    );
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
