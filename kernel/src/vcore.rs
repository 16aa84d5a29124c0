//! SMT virtual cores (seeds 003 and 004), the portable part: how vcpus
//! group into vcores, the per-vcpu scheduling state, the gang entry/exit
//! protocol of one vcore on one physical core, the prod/cede handshake,
//! and the run queue vcores are scheduled from.
//!
//! A VM's vcpus are grouped by `id / threads` into vcores; vcpu `id` is
//! virtual thread `id % threads` of its vcore and always runs on physical
//! thread `id % threads` of whichever core runs the vcore (Linux signals
//! siblings with `msgsndp`, which only reaches the same core). Thread 0 of
//! the core switches the partition (LPIDR, SDR1, LPCR belong to the core
//! on POWER8) when the vcore starts and after every thread has left it;
//! the other threads nap until thread 0 wakes them with an IPI.
//!
//! This module decides; the machine acts (IPIs, nap, the partition
//! switch), so the protocol is tested here with host threads standing in
//! for hardware threads.

pub mod sched;

use alloc::collections::VecDeque;
use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Threads a vcore may have (the `threads` manifest key): POWER8 has 8
/// per core.
pub const THREAD_CHOICES: [u32; 4] = [1, 2, 4, 8];

/// The most vcpus a VM may have (its XICS servers, per-vcpu state).
pub const MAX_VCPUS: u32 = 256;

/// How a VM's vcpus map onto vcores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub vcpus: u32,
    pub threads: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    NoVcpus,
    /// More than [`MAX_VCPUS`].
    TooMany {
        vcpus: u32,
    },
    /// Not 1, 2, 4 or 8.
    Threads(u32),
    /// More threads per vcore than the machine has per core.
    MoreThanMachine {
        threads: u32,
        machine: u32,
    },
    /// `vcpus` is not a whole number of vcores.
    NotMultiple {
        vcpus: u32,
        threads: u32,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::NoVcpus => write!(f, "vcpus must be at least 1"),
            LayoutError::TooMany { vcpus } => {
                write!(
                    f,
                    "vcpus = {vcpus} is more than the {MAX_VCPUS} a VM may have"
                )
            }
            LayoutError::Threads(t) => write!(f, "threads = {t}: must be 1, 2, 4 or 8"),
            LayoutError::MoreThanMachine { threads, machine } => write!(
                f,
                "threads = {threads} is more than the {machine} threads per core this machine has"
            ),
            LayoutError::NotMultiple { vcpus, threads } => write!(
                f,
                "vcpus = {vcpus} is not a multiple of threads = {threads}"
            ),
        }
    }
}

impl Layout {
    /// Checks a VM's `vcpus` and `threads` against a machine with
    /// `machine_threads` threads per core.
    pub fn new(vcpus: u32, threads: u32, machine_threads: u32) -> Result<Layout, LayoutError> {
        if vcpus == 0 {
            return Err(LayoutError::NoVcpus);
        }
        if vcpus > MAX_VCPUS {
            return Err(LayoutError::TooMany { vcpus });
        }
        if !THREAD_CHOICES.contains(&threads) {
            return Err(LayoutError::Threads(threads));
        }
        if threads > machine_threads {
            return Err(LayoutError::MoreThanMachine {
                threads,
                machine: machine_threads,
            });
        }
        if !vcpus.is_multiple_of(threads) {
            return Err(LayoutError::NotMultiple { vcpus, threads });
        }
        Ok(Layout { vcpus, threads })
    }

    pub fn vcores(&self) -> u32 {
        self.vcpus / self.threads
    }

    /// (vcore, thread in the vcore) of vcpu `id`.
    pub fn place(&self, id: u32) -> Option<(u32, u32)> {
        (id < self.vcpus).then(|| (id / self.threads, id % self.threads))
    }

    /// The vcpu at thread `ptid` of `vcore`.
    pub fn vcpu(&self, vcore: u32, ptid: u32) -> Option<u32> {
        let id = vcore.checked_mul(self.threads)?.checked_add(ptid)?;
        (ptid < self.threads && id < self.vcpus).then_some(id)
    }
}

/// A vcpu's scheduling state (seed 003).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcpuState {
    /// Wants to run guest code.
    Runnable,
    /// Blocked in H_CEDE until an interrupt, its decrementer or a prod.
    Ceded,
    /// Stopped: never started, or `stop-self` (RTAS `start-cpu` starts it).
    Stopped,
    /// The hypervisor is doing long work for it: its thread is busy.
    BusyInHost,
}

/// Whether a vcore with vcpus in these states should be put on a core:
/// none busy in the hypervisor, and some vcpu runnable or ceded. A ceded
/// vcpu counts: its thread naps in the vcore and itself notices its
/// decrementer and interrupts (there is no host timer to queue it again),
/// and a vcore that has nothing but ceded vcpus gives its core up at the
/// end of its slice when another vcore waits. Only a vcore whose vcpus
/// are all stopped waits for `start-cpu` without a core.
pub fn wants_core(states: impl IntoIterator<Item = VcpuState>) -> bool {
    let mut wants = false;
    for s in states {
        match s {
            VcpuState::BusyInHost => return false,
            VcpuState::Runnable | VcpuState::Ceded => wants = true,
            VcpuState::Stopped => {}
        }
    }
    wants
}

/// The gang protocol of one vcore run (after KVM-HV's `entry_exit_map`):
/// one atomic word, bit `t` of the low byte set when thread `t` entered
/// the vcore, bit `t` of the second byte when it left, and the run's
/// number in the upper half. Once any thread has left, no thread may
/// enter: a vcore exit is all or nothing. A thread woken for an earlier
/// run cannot join this one by mistake (it names the run it was woken
/// for). Thread 0 drives the run, so it is in it from the start (whether
/// or not its own vcpu runs) and leaves last: it switches the partition
/// back only when every thread that entered has left, itself included.
#[derive(Debug, Default)]
pub struct EntryExit(AtomicU32);

const RUN_SHIFT: u32 = 16;

impl EntryExit {
    /// Run `run` starts with thread 0 in it (thread 0, before waking the
    /// others; the number wraps at 16 bits).
    pub fn start(&self, run: u32) {
        self.0
            .store((run & 0xffff) << RUN_SHIFT | 1, Ordering::Release);
    }

    /// Secondary thread `ptid` enters run `run`; refused once the vcore is
    /// exiting or when another run has started since.
    pub fn try_enter(&self, ptid: u32, run: u32) -> bool {
        let run = run & 0xffff;
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w >> RUN_SHIFT == run && (w >> 8) & 0xff == 0).then_some(w | 1 << ptid)
            })
            .is_ok()
    }

    /// Thread `ptid`, which entered, leaves the vcore. Returns the threads
    /// still inside that must be told to leave (non-empty only for the
    /// first thread to leave: it starts the vcore exit).
    pub fn exit(&self, ptid: u32) -> u8 {
        let old = self.0.fetch_or(1 << (8 + ptid), Ordering::AcqRel);
        if (old >> 8) & 0xff != 0 {
            return 0;
        }
        (old as u8) & !(1u8 << ptid)
    }

    /// The threads that entered and have not left (for reports).
    pub fn still_in(&self) -> u8 {
        let w = self.0.load(Ordering::Acquire);
        (w as u8) & !((w >> 8) as u8)
    }

    /// A thread has started the vcore exit.
    pub fn exiting(&self) -> bool {
        (self.0.load(Ordering::Acquire) >> 8) & 0xff != 0
    }

    /// Every thread that entered has left (thread 0 may switch back).
    pub fn all_out(&self) -> bool {
        let w = self.0.load(Ordering::Acquire);
        (w >> 8) as u8 == w as u8
    }
}

/// A hardware thread asked to join a vcore that has answered nothing
/// (not even too late for the run) for this long is proven dead and its
/// VM stops. A slower thread is only late: under QEMU a thread of the
/// emulated machine is a host thread the host may not run for hundreds of
/// milliseconds, and on silicon a thread stuck this long in the
/// hypervisor is a hypervisor bug worth stopping the VM for.
pub const JOIN_DEAD_MS: u64 = 30_000;

/// Threads a core may have (POWER8: 8).
pub const MAX_THREADS: usize = 8;

/// One physical core's watch over the threads its thread 0 asked to join
/// a vcore run (whichever vcore it was): each thread's first unanswered
/// request is kept across runs (a thread that misses run after run stays
/// late from the first), cleared when the thread answers (joins, or
/// arrives after its run ended). Only thread 0 checks; each thread of the
/// core answers for itself.
#[derive(Debug, Default)]
pub struct JoinWatch {
    /// Timebase of each thread's first unanswered request, 0 if none.
    asked: [AtomicU64; MAX_THREADS],
    /// When each late thread is reported next (0: not yet due once).
    next: [AtomicU64; MAX_THREADS],
}

/// What [`JoinWatch::check`] found for a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Late {
    /// Unanswered for this many milliseconds: report it (the first time
    /// at [`crate::smp::WATCHDOG_MS`], then whenever the wait doubled).
    Report(u64),
    /// Unanswered for [`JOIN_DEAD_MS`] or more: the thread is dead.
    Dead(u64),
}

impl JoinWatch {
    pub const fn new() -> Self {
        JoinWatch {
            asked: [const { AtomicU64::new(0) }; MAX_THREADS],
            next: [const { AtomicU64::new(0) }; MAX_THREADS],
        }
    }

    /// Thread 0 asks `ptid` to join (before posting the work); an earlier
    /// unanswered request keeps its time.
    pub fn ask(&self, ptid: usize, now: u64) {
        let _ =
            self.asked[ptid].compare_exchange(0, now.max(1), Ordering::AcqRel, Ordering::Relaxed);
    }

    /// Thread `ptid` answered (it came for its work, in time or not).
    pub fn answered(&self, ptid: usize) {
        self.asked[ptid].store(0, Ordering::Release);
        self.next[ptid].store(0, Ordering::Relaxed);
    }

    /// Thread 0's check at `now` (timebase, `per_ms` ticks a millisecond):
    /// calls `late(ptid, verdict)` for each thread whose report is due or
    /// that is dead.
    pub fn check(&self, now: u64, per_ms: u64, mut late: impl FnMut(usize, Late)) {
        let per_ms = per_ms.max(1);
        for t in 0..MAX_THREADS {
            let asked = self.asked[t].load(Ordering::Acquire);
            if asked == 0 || now <= asked {
                continue;
            }
            let waited = now - asked;
            if waited >= JOIN_DEAD_MS.saturating_mul(per_ms) {
                late(t, Late::Dead(waited / per_ms));
                continue;
            }
            let next = match self.next[t].load(Ordering::Relaxed) {
                0 => asked.saturating_add(crate::smp::WATCHDOG_MS * per_ms),
                n => n,
            };
            if now >= next {
                self.next[t].store(now.saturating_add(waited), Ordering::Relaxed);
                late(t, Late::Report(waited / per_ms));
            }
        }
    }
}

/// The prod/cede handshake of one vcpu (PAPR: a prod that arrives before
/// the cede is remembered and ends the next cede at once). Two bits in one
/// word, so a prod crossing a cede is never lost: whichever comes second
/// sees the other.
#[derive(Debug, Default)]
pub struct CedeState(AtomicU32);

const CEDED: u32 = 1;
const PRODDED: u32 = 2;

/// What the vcpu does after H_CEDE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cede {
    /// A prod was waiting: return to the guest at once.
    Resume,
    /// Sleep until woken.
    Sleep,
}

impl CedeState {
    /// The vcpu cedes.
    pub fn cede(&self) -> Cede {
        let old = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                Some(if w & PRODDED != 0 { 0 } else { w | CEDED })
            })
            .unwrap_or(0);
        if old & PRODDED != 0 {
            Cede::Resume
        } else {
            Cede::Sleep
        }
    }

    /// Another vcpu prods this one; true when it was ceded and its thread
    /// must be woken.
    pub fn prod(&self) -> bool {
        self.0.fetch_or(PRODDED, Ordering::AcqRel) & CEDED != 0
    }

    /// The sleeping vcpu checks whether a prod ended its cede (taking it).
    pub fn take_wake(&self) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w & PRODDED != 0).then_some(0)
            })
            .is_ok()
    }

    /// The cede ended for another reason (interrupt, decrementer).
    pub fn end(&self) {
        self.0.fetch_and(!CEDED, Ordering::AcqRel);
    }

    /// Neither ceded nor prodded (a reset vcpu).
    pub fn reset(&self) {
        self.0.store(0, Ordering::Release);
    }
}

/// Vcores waiting for a physical core, in round-robin order. Any free
/// core takes the next one that can run (a vcore may move to another
/// core: the VM's `need_tlb_flush` mask makes the new core flush stale
/// translations of its LPID on entry).
#[derive(Debug, Default)]
pub struct RunQueue<T> {
    waiting: VecDeque<T>,
}

impl<T> RunQueue<T> {
    pub const fn new() -> Self {
        RunQueue {
            waiting: VecDeque::new(),
        }
    }

    /// Queues `v` behind the others (a new vcore, or one whose slice ended).
    pub fn push(&mut self, v: T) {
        self.waiting.push_back(v);
    }

    /// Takes the first waiting vcore that `ready` accepts; those before it
    /// keep their places.
    pub fn take(&mut self, mut ready: impl FnMut(&T) -> bool) -> Option<T> {
        let i = self.waiting.iter().position(&mut ready)?;
        self.waiting.remove(i)
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether some waiting vcore satisfies `f`.
    pub fn any(&self, f: impl FnMut(&T) -> bool) -> bool {
        self.waiting.iter().any(f)
    }

    /// Drops the waiting vcores `keep` refuses (their VM is going away or
    /// being reset); the others keep their order.
    pub fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        self.waiting.retain(keep)
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests;
