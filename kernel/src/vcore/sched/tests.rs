//! The scheduler against fake VMs, and with host threads as the cores of
//! a machine racing to take, run and give back vcores while vcpus post
//! events.

use super::*;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::vec;

/// A fake VM: which of its vcores want a core.
struct Fake {
    id: usize,
    stopped: Vec<AtomicBool>,
}

impl SchedVm for Fake {
    fn id(&self) -> usize {
        self.id
    }
    fn wants_core(&self, vcore: u32) -> bool {
        !self.stopped[vcore as usize].load(Ordering::Acquire)
    }
}

fn vm(id: usize, vcores: usize) -> Arc<Fake> {
    Arc::new(Fake {
        id,
        stopped: (0..vcores).map(|_| AtomicBool::new(false)).collect(),
    })
}

type S = Scheduler<Arc<Fake>, &'static str>;

fn ids(got: &Option<(Arc<Fake>, u32)>) -> Option<(usize, u32)> {
    got.as_ref().map(|(v, c)| (v.id, *c))
}

#[test]
fn three_vms_on_two_cores_take_turns_round_robin() {
    let mut s = S::new();
    let vms = [vm(0, 1), vm(1, 1), vm(2, 1)];
    for v in &vms {
        s.add(v, 1);
    }
    let mut order = vec![];
    for _ in 0..6 {
        let (a, b) = (s.take().unwrap(), s.take().unwrap());
        order.push(a.0.id);
        order.push(b.0.id);
        assert!(s.others_waiting(), "the third VM waits");
        assert!(matches!(s.give_back(a.0, a.1), GiveBack::Queued));
        assert!(matches!(s.give_back(b.0, b.1), GiveBack::Queued));
    }
    // Every VM gets the same share: 4 slices each out of 12.
    for id in 0..3 {
        assert_eq!(order.iter().filter(|i| **i == id).count(), 4, "{order:?}");
    }
    assert_eq!(&order[..6], &[0, 1, 2, 0, 1, 2]);
}

#[test]
fn a_vcore_whose_vcpus_are_all_stopped_is_skipped_until_started() {
    let mut s = S::new();
    let v = vm(0, 2);
    v.stopped[1].store(true, Ordering::Release);
    s.add(&v, 2);
    let a = s.take();
    assert_eq!(ids(&a), Some((0, 0)));
    assert!(s.take().is_none(), "vcore 1 has no started vcpu");
    assert!(!s.others_waiting());
    v.stopped[1].store(false, Ordering::Release);
    assert!(s.others_waiting());
    assert_eq!(ids(&s.take()), Some((0, 1)));
}

#[test]
fn an_event_waits_for_the_last_vcore_off_and_removes_the_waiting_ones() {
    let mut s = S::new();
    let v = vm(7, 3);
    let other = vm(8, 1);
    s.add(&v, 3);
    s.add(&other, 1);
    let a = s.take().unwrap();
    let b = s.take().unwrap();
    assert_eq!(s.on_core(7), 2);
    assert!(s.post(7, Event::Stop("crashed")));
    assert!(!s.post(7, Event::Reboot), "the first event stands");
    // Vcore 2 of the VM still waits but is never taken now.
    assert_eq!(ids(&s.take()), Some((8, 0)));
    assert!(s.take().is_none());
    assert!(matches!(s.give_back(a.0, a.1), GiveBack::Others));
    match s.give_back(b.0, b.1) {
        GiveBack::Act(vm, Event::Stop(why)) => {
            assert_eq!((vm.id, why), (7, "crashed"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.waiting(), 0, "vcore 2 of the stopped VM is gone");
    assert_eq!(s.on_core(7), 0);
}

#[test]
fn a_stop_replaces_a_pending_reboot_and_a_reboot_requeues() {
    let mut s = S::new();
    let v = vm(1, 1);
    s.add(&v, 1);
    let a = s.take().unwrap();
    assert!(s.post(1, Event::Reboot));
    assert!(!s.post(1, Event::Stop("ok")));
    assert!(matches!(
        s.give_back(a.0, a.1),
        GiveBack::Act(_, Event::Stop("ok"))
    ));

    let a = {
        s.add(&v, 1);
        s.take().unwrap()
    };
    s.post(1, Event::Reboot);
    let GiveBack::Act(vm, Event::Reboot) = s.give_back(a.0, a.1) else {
        panic!("reboot expected");
    };
    // The reset is done by the caller; the VM's vcores wait again.
    s.add(&vm, 1);
    assert_eq!(ids(&s.take()), Some((1, 0)));
}

impl std::fmt::Debug for Fake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "vm{}", self.id)
    }
}

/// Four host threads are the cores; each repeatedly takes a vcore, marks
/// it running (it must not already run anywhere), sometimes posts an
/// event from it, and gives it back. Every event must be acted on
/// exactly once, by the last vcore off, with none of its VM's vcores on a
/// core; rebooted VMs come back and are stopped in the end.
#[test]
fn cores_racing_never_run_a_vcore_twice_and_act_on_each_event_once() {
    const VMS: usize = 6;
    const VCORES: u32 = 3;
    let sched = Arc::new(Mutex::new(S::new()));
    let vms: Vec<_> = (0..VMS).map(|i| vm(i, VCORES as usize)).collect();
    // Which core runs each vcore (usize::MAX: none).
    let running: Arc<Vec<AtomicUsize>> = Arc::new(
        (0..VMS * VCORES as usize)
            .map(|_| AtomicUsize::new(usize::MAX))
            .collect(),
    );
    let reboots: Arc<Vec<AtomicU32>> = Arc::new((0..VMS).map(|_| AtomicU32::new(0)).collect());
    let stops: Arc<Vec<AtomicU32>> = Arc::new((0..VMS).map(|_| AtomicU32::new(0)).collect());
    for v in &vms {
        sched.lock().unwrap().add(v, VCORES);
    }
    let live = Arc::new(AtomicUsize::new(VMS));
    let threads: Vec<_> = (0..4)
        .map(|core| {
            let (sched, running, reboots, stops, live) = (
                sched.clone(),
                running.clone(),
                reboots.clone(),
                stops.clone(),
                live.clone(),
            );
            std::thread::spawn(move || {
                let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ core as u64;
                let mut next = move || {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng
                };
                while live.load(Ordering::Acquire) != 0 {
                    let Some((vm, vc)) = sched.lock().unwrap().take() else {
                        std::thread::yield_now();
                        continue;
                    };
                    let slot = &running[vm.id * VCORES as usize + vc as usize];
                    assert_eq!(
                        slot.swap(core, Ordering::AcqRel),
                        usize::MAX,
                        "vcore {vc} of vm {} on two cores",
                        vm.id
                    );
                    // A vcpu of it reboots the VM, or stops it after a few
                    // reboots.
                    let r = next() % 16;
                    if r == 0 {
                        let e = if reboots[vm.id].load(Ordering::Acquire) >= 3 {
                            Event::Stop("done")
                        } else {
                            Event::Reboot
                        };
                        sched.lock().unwrap().post(vm.id, e);
                    }
                    std::thread::yield_now();
                    slot.store(usize::MAX, Ordering::Release);
                    let g = sched.lock().unwrap().give_back(vm.clone(), vc);
                    match g {
                        GiveBack::Queued | GiveBack::Others => {}
                        GiveBack::Act(vm, e) => {
                            let base = vm.id * VCORES as usize;
                            for i in 0..VCORES as usize {
                                assert_eq!(
                                    running[base + i].load(Ordering::Acquire),
                                    usize::MAX,
                                    "acting on vm {} with vcore {i} still on a core",
                                    vm.id
                                );
                            }
                            match e {
                                Event::Reboot => {
                                    reboots[vm.id].fetch_add(1, Ordering::AcqRel);
                                    sched.lock().unwrap().add(&vm, VCORES);
                                }
                                Event::Stop(_) => {
                                    assert_eq!(stops[vm.id].fetch_add(1, Ordering::AcqRel), 0);
                                    live.fetch_sub(1, Ordering::AcqRel);
                                }
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = sched.lock().unwrap();
    assert_eq!(s.waiting(), 0, "stopped VMs leave nothing queued");
    for i in 0..VMS {
        assert_eq!(stops[i].load(Ordering::Acquire), 1);
        assert_eq!(reboots[i].load(Ordering::Acquire), 3);
        assert_eq!(s.on_core(i), 0);
    }
}

/// Wakes sent to a vcpu whose vcore keeps moving between two cores (an
/// always busy VM of two vcores takes turns with it):
/// the waker sets the wake state, fences, then IPIs whichever core the
/// vcore is on, or none when it is between cores; the vcore's thread 0
/// publishes its core, fences, and checks the state after every wake-up
/// and at the start of every run. No wake is ever lost, whatever the
/// waker saw (the old core, no core, the new core).
#[test]
fn a_wake_sent_while_the_vcore_migrates_is_never_lost() {
    use std::sync::atomic::fence;
    const WAKES: u64 = 3000;
    const NO_CORE: usize = usize::MAX;
    let sched = Arc::new(Mutex::new(S::new()));
    // Two busy vcores and the target on two cores: the target comes back
    // on whichever core frees first.
    let (target, busy) = (vm(0, 1), vm(1, 2));
    sched.lock().unwrap().add(&target, 1);
    sched.lock().unwrap().add(&busy, 2);
    let pending = Arc::new(AtomicBool::new(false));
    let consumed = Arc::new(AtomicU32::new(0));
    let on_core = Arc::new(AtomicUsize::new(NO_CORE));
    let ipi: Arc<[AtomicBool; 2]> = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
    let moves = Arc::new(AtomicU32::new(0));
    let last_core = Arc::new(AtomicUsize::new(NO_CORE));
    let done = Arc::new(AtomicBool::new(false));
    let cores: Vec<_> = (0..2)
        .map(|core| {
            let (sched, pending, consumed, on_core, ipi, moves, last_core, done) = (
                sched.clone(),
                pending.clone(),
                consumed.clone(),
                on_core.clone(),
                ipi.clone(),
                moves.clone(),
                last_core.clone(),
                done.clone(),
            );
            std::thread::spawn(move || {
                while !done.load(Ordering::Acquire) {
                    let Some((vm, vc)) = sched.lock().unwrap().take() else {
                        std::thread::yield_now();
                        continue;
                    };
                    if vm.id == 0 {
                        let before = last_core.swap(core, Ordering::Relaxed);
                        if before != NO_CORE && before != core {
                            moves.fetch_add(1, Ordering::Relaxed);
                        }
                        on_core.store(core, Ordering::SeqCst);
                        fence(Ordering::SeqCst);
                        // One time slice: check at the start, then only
                        // after an IPI (as a napping thread does).
                        let check = || {
                            if pending.swap(false, Ordering::AcqRel) {
                                consumed.fetch_add(1, Ordering::AcqRel);
                            }
                        };
                        check();
                        for _ in 0..50 {
                            if ipi[core].swap(false, Ordering::AcqRel) {
                                check();
                            }
                            std::thread::yield_now();
                        }
                        on_core.store(NO_CORE, Ordering::SeqCst);
                    } else {
                        for _ in 0..20 {
                            std::thread::yield_now();
                        }
                    }
                    sched.lock().unwrap().give_back(vm, vc);
                }
            })
        })
        .collect();
    // At least WAKES wakes, and on until the vcore has moved (how soon
    // the host lets both "cores" take it is the host's business).
    let began = std::time::Instant::now();
    let mut i = 0;
    while i < WAKES || moves.load(Ordering::Relaxed) == 0 {
        assert!(began.elapsed().as_secs() < 60, "the vcore never migrated");
        pending.store(true, Ordering::Release);
        fence(Ordering::SeqCst);
        match on_core.load(Ordering::SeqCst) {
            NO_CORE => {} // queued: its next run checks the state first
            c => ipi[c].store(true, Ordering::Release),
        }
        // Wakes do not pile up: each is taken before the next is sent.
        let t = std::time::Instant::now();
        while consumed.load(Ordering::Acquire) as u64 <= i {
            assert!(t.elapsed().as_secs() < 10, "wake {i} was lost");
            std::thread::yield_now();
        }
        i += 1;
    }
    done.store(true, Ordering::Release);
    for c in cores {
        c.join().unwrap();
    }
    assert_eq!(consumed.load(Ordering::Acquire) as u64, i);
}
