//! The vcore scheduler on the machine. Every vcore of every VM waits in
//! one round-robin run queue (the portable, host-tested decisions are
//! `kernel::vcore::sched`); thread 0 of each physical core
//! takes the next vcore that wants a core, runs it for a time slice (or
//! until it must leave: its VM reboots or stops) and puts it back. A vcore
//! can come back on another core: its VM's `need_tlb_flush` mask makes
//! that core flush the LPID's stale translations on entry.
//!
//! A VM event (reboot, stop) is posted under the queue's lock, so it is
//! ordered against vcores being taken: once it is posted no vcore of the
//! VM is put on a core, and the last one off acts on it (reboot: reset
//! and queue every vcore again; stop: destroy the VM). The VM's `leaving`
//! flag, set under the same lock, makes its running vcores leave.

use crate::vm::{Join, Outcome, Vm, VmConfig, VmEvent};
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use kernel::smp::CpuState;
use kernel::vcore::sched::{GiveBack, SchedVm, Scheduler};
use log::info;

impl SchedVm for Vm {
    fn id(&self) -> usize {
        self.id
    }
    fn wants_core(&self, vcore: u32) -> bool {
        self.vcore_wants_core(vcore)
    }
}

/// The run queue and VM events (kernel::vcore::sched decides).
static QUEUE: spin::Mutex<Scheduler<Arc<Vm>, Outcome>> = spin::Mutex::new(Scheduler::new());
/// VMs not yet stopped.
static LIVE: AtomicUsize = AtomicUsize::new(0);
static DONE: AtomicUsize = AtomicUsize::new(0);
static OK: AtomicUsize = AtomicUsize::new(0);
/// Cores whose thread 0 waits in the scheduler for work (bit = core).
static IDLE_CORES: AtomicU64 = AtomicU64::new(0);

/// A VM to create once another has stopped (manifest `after = NAME`).
pub struct Deferred {
    pub after: &'static str,
    pub cfg: VmConfig<'static>,
    pub cores: usize,
    pub id: usize,
}

/// VMs waiting for the VM they come after.
static DEFERRED: spin::Mutex<Vec<Deferred>> = spin::Mutex::new(Vec::new());

/// Keeps `d` until the VM it comes after stops (or could not be made).
pub fn defer(d: Deferred) {
    DEFERRED.lock().push(d);
}

/// Creates and queues the VMs that come after `name`, which has stopped
/// or could not be created (its memory, HPT and LPID are free again).
pub fn start_after(name: &str) {
    let ready: Vec<Deferred> = {
        let mut d = DEFERRED.lock();
        let (ready, wait) = core::mem::take(&mut *d)
            .into_iter()
            .partition(|x| x.after == name);
        *d = wait;
        ready
    };
    for r in ready {
        match Vm::create(&r.cfg, r.cores, r.id) {
            Ok(vm) => {
                info!(target: "sched", "vm {}: created after vm {name} stopped", vm.name);
                // Live before the VM it follows stops counting (finish).
                LIVE.fetch_add(1, Ordering::AcqRel);
                vm.started();
                QUEUE.lock().add(&vm, vm.vcores());
                wake_idle();
            }
            Err(e) => {
                log::error!(target: "hv", "vm {} not created: {e}", r.cfg.name);
                start_after(r.cfg.name);
            }
        }
    }
}

/// Work posted in a thread's hypervisor-state block.
pub enum Work {
    /// Thread 0 of a core: run the scheduler until every VM has stopped.
    Schedule,
    /// A secondary: join a vcore run.
    Join(Join),
}

/// Runs the work found in `me`'s hypervisor-state block (from the idle
/// loop).
pub fn thread_work(me: &CpuState, token: usize) {
    // SAFETY: tokens are only ever made by `Box::into_raw` of a `Work`
    // (`post_work`, `Vm::run_vcore`), and the thread that takes one from
    // its block owns it.
    let work = unsafe { Box::from_raw(token as *mut Work) };
    match *work {
        Work::Schedule => schedule(me),
        Work::Join(j) => j.vm.join(j.vcore, j.run, me),
    }
}

/// Test only (`hv.test=deaf-thread`, given to `cpus::init` instead of
/// [`thread_work`]): thread 1 of every core takes its vcore work and drops
/// it, so thread 0 must notice that the thread never came.
pub fn thread_work_deaf_thread_1(me: &CpuState, token: usize) {
    if me.thread != 1 {
        return thread_work(me, token);
    }
    // SAFETY: as in `thread_work`: a `Work` this thread now owns.
    let work = unsafe { Box::from_raw(token as *mut Work) };
    match *work {
        Work::Schedule => schedule(me),
        Work::Join(_) => {}
    }
}

/// Posts `w` to thread `to` and wakes it.
fn post_work(me: &CpuState, to: &CpuState, w: Work) -> bool {
    let token = Box::into_raw(Box::new(w)) as usize;
    if to.hv.post(token) {
        crate::cpus::smp().kick(me, to);
        true
    } else {
        // SAFETY: never published.
        drop(unsafe { Box::from_raw(token as *mut Work) });
        false
    }
}

/// Queues every vcore of `vms` and runs the scheduler on thread 0 of every
/// core (this thread too when it is one) until every VM has stopped.
/// Returns (VMs that ran, VMs that stopped with `result=ok`).
pub fn run(vms: Vec<Arc<Vm>>) -> (usize, usize) {
    let smp = crate::cpus::smp();
    let me = crate::cpus::me();
    let (done0, ok0) = (DONE.load(Ordering::Acquire), OK.load(Ordering::Acquire));
    // Added to: VMs that come after one that could not be made may be
    // live already (start_after).
    LIVE.fetch_add(vms.len(), Ordering::AcqRel);
    {
        let mut q = QUEUE.lock();
        for vm in &vms {
            vm.started();
            q.add(vm, vm.vcores());
        }
    }
    drop(vms);
    for c in smp
        .cpus
        .iter()
        .filter(|c| c.thread == 0 && c.id != me.id && c.is_online())
    {
        if !post_work(me, c, Work::Schedule) {
            log::warn!(target: "sched", "PIR {:#x} is busy: its core runs no vcores", c.pir);
        }
    }
    if me.thread == 0 {
        schedule(me);
    }
    smp.wait_until(me, None, || LIVE.load(Ordering::Acquire) == 0);
    (
        DONE.load(Ordering::Acquire) - done0,
        OK.load(Ordering::Acquire) - ok0,
    )
}

/// Thread 0's loop: take a vcore, run it, give it back.
fn schedule(me: &CpuState) {
    let smp = crate::cpus::smp();
    let bit = 1u64 << me.core;
    while LIVE.load(Ordering::Acquire) != 0 {
        let Some((vm, vcore)) = QUEUE.lock().take() else {
            IDLE_CORES.fetch_or(bit, Ordering::AcqRel);
            smp.wait_until(me, None, || {
                LIVE.load(Ordering::Acquire) == 0 || others_waiting()
            });
            IDLE_CORES.fetch_and(!bit, Ordering::AcqRel);
            continue;
        };
        vm.run_vcore(vcore, me);
        give_back(vm, vcore);
    }
}

/// Whether a vcore that could run is waiting (a time slice that ends then
/// gives the core up).
pub fn others_waiting() -> bool {
    QUEUE.lock().others_waiting()
}

/// Wakes the cores whose thread 0 waits for work (a vcore became able to
/// run).
pub fn wake_idle() {
    let idle = IDLE_CORES.load(Ordering::Acquire);
    if idle == 0 {
        return;
    }
    let smp = crate::cpus::smp();
    let me = crate::cpus::me();
    for c in smp
        .cpus
        .iter()
        .filter(|c| c.thread == 0 && idle & (1 << c.core) != 0)
    {
        if c.id != me.id {
            smp.kick(me, c);
        }
    }
}

/// A vcore is off its core: back in the queue, or, when its VM has an
/// event and it was the last one on a core, the event happens.
fn give_back(vm: Arc<Vm>, vcore: u32) {
    let g = QUEUE.lock().give_back(vm, vcore);
    match g {
        GiveBack::Queued => wake_idle(),
        GiveBack::Others => {}
        GiveBack::Act(vm, VmEvent::Reboot) => match vm.reboot() {
            Ok(()) => {
                QUEUE.lock().add(&vm, vm.vcores());
                wake_idle();
            }
            Err(e) => finish(&vm, Outcome::Crashed(alloc::format!("reboot failed: {e}"))),
        },
        GiveBack::Act(vm, VmEvent::Stop(o)) => finish(&vm, o),
    }
}

fn finish(vm: &Vm, o: Outcome) {
    vm.finish(&o);
    OK.fetch_add((o == Outcome::Ok) as usize, Ordering::AcqRel);
    DONE.fetch_add(1, Ordering::AcqRel);
    start_after(&vm.name);
    if LIVE.fetch_sub(1, Ordering::AcqRel) == 1 {
        info!(target: "sched", "every VM has stopped");
        // Every thread 0 (and the boot thread) returns from its wait.
        let smp = crate::cpus::smp();
        let me = crate::cpus::me();
        for c in smp
            .cpus
            .iter()
            .filter(|c| c.id != me.id && (c.thread == 0 || c.id == crate::cpus::boot_cpu().id))
        {
            smp.kick(me, c);
        }
    }
}

/// Posts `e` for `vm` (a stop replaces a pending reboot; otherwise the
/// first event stands) and makes every vcore of it leave its core.
pub fn post_event(vm: &Vm, e: VmEvent) {
    let mut q = QUEUE.lock();
    if q.post(vm.id, e) {
        // Under the queue's lock: no vcore of the VM is taken from now
        // on, and those on cores leave.
        vm.begin_leaving();
    }
}
