//! Hardware threads as the hypervisor sees them: per-thread state, wake-up
//! accounting, and cross-thread calls ("run this function on thread X")
//! carried by inter-processor interrupts.
//!
//! The machine side (sending an XICS IPI, napping until woken) is the
//! `Machine` trait; the firmware implements it on POWER8 and the tests with
//! host threads. Every wait here is an idle wait (`Machine::idle`, `nap` on
//! POWER8): a thread that waits for a reply sleeps until the reply's IPI
//! wakes it.
//!
//! Mailbox protocol (one slot per target thread):
//! `FREE -claim-> CLAIMED -post-> POSTED -take-> RUNNING -finish-> DONE -collect-> FREE`
//! (or `RUNNING -finish-> FREE` for calls nobody waits for). The sender
//! claims the slot with a compare-and-swap, fills it, publishes it with a
//! release store of POSTED and raises the IPI; the target takes it with an
//! acquire CAS, runs it, publishes DONE and raises an IPI back to a waiting
//! sender.

use crate::cpumask::CpuMask;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use ppc64::spr::{
    SRR1_WAKE_DBELL, SRR1_WAKE_DEC, SRR1_WAKE_EXTERNAL, SRR1_WAKE_HDBELL, SRR1_WAKE_MASK,
};

/// A function run on another thread: takes and returns one word.
pub type CallFn = fn(u64) -> u64;

/// Why a thread left nap, from SRR1[42:45] at the 0x100 wake-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WakeReason {
    External,
    Decrementer,
    Doorbell,
    HvDoorbell,
    Other,
}

impl WakeReason {
    pub const ALL: [WakeReason; 5] = [
        WakeReason::External,
        WakeReason::Decrementer,
        WakeReason::Doorbell,
        WakeReason::HvDoorbell,
        WakeReason::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            WakeReason::External => "external",
            WakeReason::Decrementer => "decrementer",
            WakeReason::Doorbell => "doorbell",
            WakeReason::HvDoorbell => "hv-doorbell",
            WakeReason::Other => "other",
        }
    }

    /// Decodes the wake reason field of SRR1 (ISA 2.07, bits 42:45).
    pub fn from_srr1(srr1: u64) -> WakeReason {
        match srr1 & SRR1_WAKE_MASK {
            SRR1_WAKE_EXTERNAL => WakeReason::External,
            SRR1_WAKE_DEC => WakeReason::Decrementer,
            SRR1_WAKE_DBELL => WakeReason::Doorbell,
            SRR1_WAKE_HDBELL => WakeReason::HvDoorbell,
            _ => WakeReason::Other,
        }
    }
}

/// Per-thread event counters.
#[derive(Default, Debug)]
pub struct Counters {
    wakes: [AtomicU64; 5],
    /// IPIs raised (the target had none pending).
    pub ipis_sent: AtomicU64,
    /// Calls posted while the target still had an unacknowledged IPI: they
    /// ride on that one (a single-level MFRR merges them), nothing is lost.
    pub ipis_merged: AtomicU64,
    pub ipis_received: AtomicU64,
    /// External-interrupt wakes that found no IPI (another source).
    pub spurious: AtomicU64,
    pub calls_run: AtomicU64,
    /// Calls finished: run, and their reply's IPI (if the caller waits)
    /// counted. Behind `calls_run` only while a call is under way.
    pub calls_done: AtomicU64,
    /// Watchdog reports this thread made about a thread that did not
    /// answer it.
    pub watchdog_reports: AtomicU64,
}

impl Counters {
    #[inline]
    pub fn count_wake(&self, r: WakeReason) {
        self.wakes[r as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn wakes(&self, r: WakeReason) -> u64 {
        self.wakes[r as usize].load(Ordering::Relaxed)
    }

    pub fn total_wakes(&self) -> u64 {
        WakeReason::ALL.iter().map(|r| self.wakes(*r)).sum()
    }

    /// No call is under way on the thread: every call it ran has had its
    /// reply's IPI counted (a waiter may see the reply before the replier
    /// gets to raise that IPI, so counters read after the waiter returns
    /// can still move).
    pub fn between_calls(&self) -> bool {
        let done = self.calls_done.load(Ordering::Acquire);
        done == self.calls_run.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            wakes: WakeReason::ALL.map(|r| self.wakes(r)),
            ipis_sent: self.ipis_sent.load(Ordering::Relaxed),
            ipis_merged: self.ipis_merged.load(Ordering::Relaxed),
            ipis_received: self.ipis_received.load(Ordering::Relaxed),
            spurious: self.spurious.load(Ordering::Relaxed),
            calls_run: self.calls_run.load(Ordering::Relaxed),
        }
    }
}

/// Counter values at one moment; subtract two to get a window's events.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub wakes: [u64; 5],
    pub ipis_sent: u64,
    pub ipis_merged: u64,
    pub ipis_received: u64,
    pub spurious: u64,
    pub calls_run: u64,
}

impl CounterSnapshot {
    pub fn since(&self, earlier: &CounterSnapshot) -> CounterSnapshot {
        CounterSnapshot {
            wakes: core::array::from_fn(|i| self.wakes[i] - earlier.wakes[i]),
            ipis_sent: self.ipis_sent - earlier.ipis_sent,
            ipis_merged: self.ipis_merged - earlier.ipis_merged,
            ipis_received: self.ipis_received - earlier.ipis_received,
            spurious: self.spurious - earlier.spurious,
            calls_run: self.calls_run - earlier.calls_run,
        }
    }

    pub fn wakes_of(&self, r: WakeReason) -> u64 {
        self.wakes[r as usize]
    }
}

impl fmt::Display for CounterSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ipi-sent={} ipi-merged={} ipi-received={} calls={} wakes:",
            self.ipis_sent, self.ipis_merged, self.ipis_received, self.calls_run
        )?;
        for r in WakeReason::ALL {
            write!(f, " {}={}", r.name(), self.wakes_of(r))?;
        }
        write!(f, " spurious={}", self.spurious)
    }
}

const FREE: u32 = 0;
const CLAIMED: u32 = 1;
const POSTED: u32 = 2;
const RUNNING: u32 = 3;
const DONE: u32 = 4;

/// A posted call as the target sees it.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    pub func: CallFn,
    pub arg: u64,
    pub from: usize,
    pub wait: bool,
}

/// One thread's call slot.
#[derive(Debug, Default)]
pub struct Mailbox {
    state: AtomicU32,
    func: AtomicUsize,
    arg: AtomicU64,
    ret: AtomicU64,
    from: AtomicUsize,
    wait: AtomicBool,
}

impl Mailbox {
    pub const fn new() -> Self {
        Mailbox {
            state: AtomicU32::new(FREE),
            func: AtomicUsize::new(0),
            arg: AtomicU64::new(0),
            ret: AtomicU64::new(0),
            from: AtomicUsize::new(0),
            wait: AtomicBool::new(false),
        }
    }

    /// Sender: takes the free slot.
    #[inline]
    pub fn claim(&self) -> bool {
        self.state
            .compare_exchange(FREE, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Sender: fills a claimed slot and publishes it.
    #[inline]
    pub fn post(&self, from: usize, func: CallFn, arg: u64, wait: bool) {
        debug_assert_eq!(self.state.load(Ordering::Relaxed), CLAIMED);
        self.func.store(func as usize, Ordering::Relaxed);
        self.arg.store(arg, Ordering::Relaxed);
        self.from.store(from, Ordering::Relaxed);
        self.wait.store(wait, Ordering::Relaxed);
        self.state.store(POSTED, Ordering::Release);
    }

    /// Target: takes a posted request, if any.
    #[inline]
    pub fn take(&self) -> Option<Request> {
        self.state
            .compare_exchange(POSTED, RUNNING, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        let f = self.func.load(Ordering::Relaxed);
        // SAFETY: `func` was stored from a `CallFn` by `post`, and the
        // acquire above orders this load after that store.
        let func: CallFn = unsafe { core::mem::transmute::<usize, CallFn>(f) };
        Some(Request {
            func,
            arg: self.arg.load(Ordering::Relaxed),
            from: self.from.load(Ordering::Relaxed),
            wait: self.wait.load(Ordering::Relaxed),
        })
    }

    /// Target: publishes the result (DONE for a waiting sender, else FREE).
    #[inline]
    pub fn finish(&self, req: &Request, ret: u64) {
        if req.wait {
            self.ret.store(ret, Ordering::Relaxed);
            self.state.store(DONE, Ordering::Release);
        } else {
            self.state.store(FREE, Ordering::Release);
        }
    }

    /// Sender: the result of a finished call, freeing the slot.
    #[inline]
    pub fn collect(&self) -> Option<u64> {
        self.state
            .compare_exchange(DONE, FREE, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        Some(self.ret.load(Ordering::Relaxed))
    }
}

/// What a thread is doing, as its hypervisor-state block records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ThreadMode {
    /// In the hypervisor's idle loop, no vcore.
    Idle = 0,
    /// Napping for a vcpu (ceded or stopped), partition loaded.
    Napping = 1,
    /// In the hypervisor for a vcpu (handling an exit), partition loaded.
    InHost = 2,
    /// Running guest code.
    InGuest = 3,
}

impl ThreadMode {
    fn from_u32(v: u32) -> ThreadMode {
        match v {
            1 => ThreadMode::Napping,
            2 => ThreadMode::InHost,
            3 => ThreadMode::InGuest,
            _ => ThreadMode::Idle,
        }
    }
}

/// The per-thread hypervisor-state block (what KVM keeps in the PACA's
/// `kvm_hstate`), reached from the per-thread area through `cpu_id`:
/// what the thread is doing, and the work word thread 0 (or the
/// scheduler) fills before it wakes the thread with an IPI. The idle
/// loop reads the word after every wake-up and goes straight to the
/// work. The word is an opaque non-zero token the firmware owns (a boxed
/// request); exactly one side ever owns it: the poster until the thread
/// takes it, or again if it reclaims it first.
#[derive(Debug, Default)]
pub struct HvThread {
    work: AtomicUsize,
    mode: AtomicU32,
}

impl HvThread {
    pub const fn new() -> Self {
        HvThread {
            work: AtomicUsize::new(0),
            mode: AtomicU32::new(ThreadMode::Idle as u32),
        }
    }

    /// Posts work (non-zero); refused while earlier work is still posted.
    /// (Not inlined: scripts/path-trace.py starts its vcore-entry window
    /// at this function.)
    #[inline(never)]
    pub fn post(&self, token: usize) -> bool {
        debug_assert_ne!(token, 0);
        self.work
            .compare_exchange(0, token, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    }

    /// The thread takes its posted work, if any.
    pub fn take(&self) -> Option<usize> {
        match self.work.swap(0, Ordering::Acquire) {
            0 => None,
            t => Some(t),
        }
    }

    /// The poster takes back work the thread has not taken (true: it is
    /// the poster's again; false: the thread has it).
    pub fn reclaim(&self, token: usize) -> bool {
        self.work
            .compare_exchange(token, 0, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Records what the thread does (for reports and kicks that want to
    /// know; nothing waits on it, so no ordering).
    #[inline]
    pub fn set_mode(&self, m: ThreadMode) {
        self.mode.store(m as u32, Ordering::Relaxed);
    }

    #[inline]
    pub fn mode(&self) -> ThreadMode {
        ThreadMode::from_u32(self.mode.load(Ordering::Relaxed))
    }
}

/// One hardware thread.
#[derive(Debug)]
pub struct CpuState {
    /// Dense index into `Smp::cpus`.
    pub id: usize,
    pub pir: u32,
    pub core: usize,
    pub thread: usize,
    /// This thread's XICS presentation controller window (real address).
    pub icp_base: u64,
    online: AtomicBool,
    pub mailbox: Mailbox,
    pub stats: Counters,
    /// The hypervisor-state block (vcore work, thread mode).
    pub hv: HvThread,
}

impl CpuState {
    pub fn new(id: usize, pir: u32, core: usize, thread: usize, icp_base: u64) -> Self {
        CpuState {
            id,
            pir,
            core,
            thread,
            icp_base,
            online: AtomicBool::new(false),
            mailbox: Mailbox::new(),
            stats: Counters::default(),
            hv: HvThread::new(),
        }
    }

    #[inline]
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Acquire)
    }

    pub fn set_online(&self) {
        self.online.store(true, Ordering::Release);
    }
}

/// Why a cross-thread call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// No thread with this PIR exists on the machine.
    NoSuchThread(u32),
    /// The thread exists but has not come online.
    Offline(u32),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::NoSuchThread(p) => write!(f, "no thread with PIR {p:#x} on this machine"),
            CallError::Offline(p) => write!(f, "thread PIR {p:#x} is not online"),
        }
    }
}

/// What the hypervisor needs from the machine to run calls across threads.
pub trait Machine: Sync {
    /// Raises an IPI at `to` (POWER8: byte store to its ICP's MFRR).
    fn send_ipi(&self, to: &CpuState);
    /// Whether `to` still has an IPI it has not acknowledged (POWER8: its
    /// MFRR is still set); a new one would merge with it.
    fn ipi_pending(&self, to: &CpuState) -> bool;
    /// Sleeps until something wakes `me` or `deadline` (timebase) passes,
    /// then acknowledges any IPI: counts the wake in `me.stats` and, for an
    /// IPI, `ipis_received`.
    fn idle(&self, me: &CpuState, deadline: Option<u64>);
    /// The timebase.
    fn now(&self) -> u64;
    /// Timebase ticks in a millisecond.
    fn ticks_per_ms(&self) -> u64 {
        crate::time::ticks_per_ms()
    }
}

/// A wait that has taken longer than [`WATCHDOG_MS`] is reported, and
/// again each time the wait has doubled.
pub const WATCHDOG_MS: u64 = 1000;

/// The watchdog of one wait: when its next report is due.
#[derive(Clone, Copy, Debug)]
pub struct Watchdog {
    start: u64,
    next: u64,
    per_ms: u64,
}

impl Watchdog {
    pub fn new(now: u64, per_ms: u64) -> Self {
        let per_ms = per_ms.max(1);
        Watchdog {
            start: now,
            next: now.saturating_add(WATCHDOG_MS * per_ms),
            per_ms,
        }
    }

    /// When to wake up to check again, at the latest.
    pub fn deadline(&self) -> u64 {
        self.next
    }

    /// The milliseconds waited, when a report is due at `now` (the next
    /// one is then due when the wait has doubled).
    pub fn due(&mut self, now: u64) -> Option<u64> {
        if now < self.next {
            return None;
        }
        let waited = now - self.start;
        self.next = now.saturating_add(waited);
        Some(waited / self.per_ms)
    }
}

impl ThreadMode {
    /// For reports: what a thread in this mode is doing.
    pub fn describe(self) -> &'static str {
        match self {
            ThreadMode::Idle => "in the hypervisor without a vcore",
            ThreadMode::Napping => "napping for a vcpu",
            ThreadMode::InHost => "in the hypervisor for a vcpu",
            ThreadMode::InGuest => "running guest code",
        }
    }
}

/// All hardware threads and the machine that connects them.
pub struct Smp<M: Machine> {
    pub cpus: Vec<CpuState>,
    pub machine: M,
}

impl<M: Machine> Smp<M> {
    pub fn new(cpus: Vec<CpuState>, machine: M) -> Self {
        Smp { cpus, machine }
    }

    /// The thread with this PIR.
    pub fn by_pir(&self, pir: u32) -> Option<&CpuState> {
        self.cpus.iter().find(|c| c.pir == pir)
    }

    /// Threads of core `core`, thread 0 first.
    pub fn core_threads(&self, core: usize) -> impl Iterator<Item = &CpuState> + '_ {
        self.cpus.iter().filter(move |c| c.core == core)
    }

    /// Runs every call posted to `me`; returns how many ran.
    pub fn service(&self, me: &CpuState) -> usize {
        let mut n = 0;
        while let Some(req) = me.mailbox.take() {
            me.stats.calls_run.fetch_add(1, Ordering::Relaxed);
            let ret = (req.func)(req.arg);
            me.mailbox.finish(&req, ret);
            if req.wait {
                self.kick(me, &self.cpus[req.from]);
            }
            me.stats.calls_done.fetch_add(1, Ordering::Release);
            n += 1;
        }
        n
    }

    /// Wakes `to` (an IPI, counted; merged with one it has not taken):
    /// it then looks at whatever state changed for it, or the calls
    /// posted to it.
    pub fn kick(&self, me: &CpuState, to: &CpuState) {
        // Counted before the IPI goes out, so whoever it wakes sees it
        // counted. A call posted while the target's previous IPI is not
        // yet taken rides on that one: the target serves every posted call
        // after taking an IPI, so nothing waits for a second one.
        if self.machine.ipi_pending(to) {
            me.stats.ipis_merged.fetch_add(1, Ordering::Relaxed);
        } else {
            me.stats.ipis_sent.fetch_add(1, Ordering::Relaxed);
            self.machine.send_ipi(to);
        }
    }

    /// Idles (servicing calls) until `cond` holds or `timeout` ticks pass;
    /// returns whether `cond` held.
    pub fn wait_until(
        &self,
        me: &CpuState,
        timeout: Option<u64>,
        mut cond: impl FnMut() -> bool,
    ) -> bool {
        let deadline = timeout.map(|t| self.machine.now().saturating_add(t));
        loop {
            self.service(me);
            if cond() {
                return true;
            }
            if deadline.is_some_and(|d| self.machine.now() >= d) {
                return false;
            }
            self.machine.idle(me, deadline);
        }
    }

    /// Sleeps once, until anything wakes `me` (an IPI, a doorbell, the
    /// timer) or `timeout` ticks pass, serving calls before and after: for
    /// a caller that re-checks its own wake-up conditions after every
    /// wake (a ceded vcpu: a prod, an interrupt, a doorbell).
    pub fn idle_once(&self, me: &CpuState, timeout: u64) {
        self.service(me);
        let deadline = self.machine.now().saturating_add(timeout);
        self.machine.idle(me, Some(deadline));
        self.service(me);
    }

    /// Sleeps until `done` yields a value. Every reply comes with an IPI,
    /// so this idles *first*: the reply's IPI is acknowledged here (at once
    /// if it is already pending) and not left to coalesce with the next
    /// one sent to this thread, unless the reply arrives just as a
    /// watchdog wake-up does (then that IPI wakes the next wait once, for
    /// nothing). A `to` that has not answered for [`WATCHDOG_MS`] is
    /// reported by name, and again whenever the wait has doubled.
    fn wait_reply<T>(
        &self,
        me: &CpuState,
        mut done: impl FnMut(&Self) -> Option<T>,
        late: impl Fn() -> Option<usize>,
    ) -> T {
        let mut dog = self.watchdog();
        loop {
            self.machine.idle(me, Some(dog.deadline()));
            self.service(me);
            if let Some(v) = done(self) {
                return v;
            }
            if let Some(ms) = dog.due(self.machine.now()) {
                if let Some(to) = late().and_then(|i| self.cpus.get(i)) {
                    self.report_unanswered(me, to, ms);
                }
            }
        }
    }

    /// A watchdog for a wait that starts now.
    fn watchdog(&self) -> Watchdog {
        Watchdog::new(self.machine.now(), self.machine.ticks_per_ms())
    }

    /// The watchdog's report of a thread that does not answer.
    #[cold]
    fn report_unanswered(&self, me: &CpuState, to: &CpuState, ms: u64) {
        me.stats.watchdog_reports.fetch_add(1, Ordering::Relaxed);
        log::warn!(
            target: "watchdog",
            "PIR {:#x} (core {} thread {}) has not answered a call from PIR {:#x} for {ms} ms; it is {}",
            to.pir,
            to.core,
            to.thread,
            me.pir,
            to.hv.mode().describe()
        );
    }

    /// Idles (serving calls) until `cond` holds, with no time limit but a
    /// watchdog: `report(ms)` after [`WATCHDOG_MS`] of waiting and again
    /// whenever the wait has doubled (it names whoever is late).
    pub fn wait_watched(
        &self,
        me: &CpuState,
        mut cond: impl FnMut() -> bool,
        mut report: impl FnMut(u64),
    ) {
        let mut dog = self.watchdog();
        loop {
            self.service(me);
            if cond() {
                return;
            }
            if let Some(ms) = dog.due(self.machine.now()) {
                me.stats.watchdog_reports.fetch_add(1, Ordering::Relaxed);
                report(ms);
            }
            self.machine.idle(me, Some(dog.deadline()));
        }
    }

    /// The idle loop of a thread with nothing else to do. It idles
    /// *first*: every call is posted before its IPI, so a call is always
    /// found after the wake-up that acknowledges its IPI, and no IPI is
    /// left pending after its call was served (it would otherwise be taken
    /// later and counted against some other call).
    pub fn idle_loop(&self, me: &CpuState) -> ! {
        self.idle_loop_with(me, |_, _| {})
    }

    /// The idle loop, also running `work(me, token)` for work posted in
    /// the thread's hypervisor-state block (checked after every wake-up).
    pub fn idle_loop_with(&self, me: &CpuState, mut work: impl FnMut(&CpuState, usize)) -> ! {
        loop {
            self.machine.idle(me, None);
            self.service(me);
            while let Some(t) = me.hv.take() {
                work(me, t);
            }
        }
    }

    fn target(&self, pir: u32) -> Result<&CpuState, CallError> {
        let t = self.by_pir(pir).ok_or(CallError::NoSuchThread(pir))?;
        if !t.is_online() {
            return Err(CallError::Offline(pir));
        }
        Ok(t)
    }

    fn post(&self, me: &CpuState, t: &CpuState, func: CallFn, arg: u64, wait: bool) {
        // Another sender may hold the slot, or `t` may still be running
        // an earlier call: poll until it is free (its owner's reply wakes
        // nobody here), serving calls in between, with the watchdog.
        let mut dog: Option<Watchdog> = None;
        while !t.mailbox.claim() {
            self.service(me);
            let d = dog.get_or_insert_with(|| self.watchdog());
            if let Some(ms) = d.due(self.machine.now()) {
                self.report_unanswered(me, t, ms);
            }
            core::hint::spin_loop();
        }
        t.mailbox.post(me.id, func, arg, wait);
        self.kick(me, t);
    }

    /// Runs `func(arg)` on the thread with PIR `pir`; with `wait`, sleeps
    /// until it has run and returns its result. A call to oneself runs
    /// inline.
    pub fn call(
        &self,
        me: &CpuState,
        pir: u32,
        func: CallFn,
        arg: u64,
        wait: bool,
    ) -> Result<Option<u64>, CallError> {
        let t = self.target(pir)?;
        if t.id == me.id {
            return Ok(Some(func(arg)));
        }
        self.post(me, t, func, arg, wait);
        if !wait {
            return Ok(None);
        }
        Ok(Some(self.wait_reply(
            me,
            |_| t.mailbox.collect(),
            || Some(t.id),
        )))
    }

    /// Runs `func(arg)` on every thread in `targets` (indexes into `cpus`)
    /// at once: posts all, raises one IPI each, then (with `wait`) sleeps
    /// until all have run. This is how thread 0 of a core wakes exactly the
    /// secondaries it needs.
    pub fn call_many(
        &self,
        me: &CpuState,
        targets: &CpuMask,
        func: CallFn,
        arg: u64,
        wait: bool,
    ) -> Result<(), CallError> {
        for i in targets.iter() {
            let t = self.cpus.get(i).ok_or(CallError::NoSuchThread(u32::MAX))?;
            if !t.is_online() {
                return Err(CallError::Offline(t.pir));
            }
        }
        for i in targets.iter().filter(|i| *i != me.id) {
            self.post(me, &self.cpus[i], func, arg, wait);
        }
        if targets.test(me.id) {
            func(arg);
        }
        let mut pending = *targets;
        pending.clear(me.id);
        let pending = core::cell::Cell::new(pending);
        if wait && !pending.get().is_empty() {
            self.wait_reply(
                me,
                |s| {
                    let mut p = pending.get();
                    for i in p.iter().collect::<Vec<_>>() {
                        if s.cpus[i].mailbox.collect().is_some() {
                            p.clear(i);
                        }
                    }
                    pending.set(p);
                    p.is_empty().then_some(())
                },
                || pending.get().iter().next(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
