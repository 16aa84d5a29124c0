//! The vcore run loops: thread 0 switches the partition and wakes the
//! secondaries, every thread runs its vcpu until the vcore leaves, and a
//! blocked vcpu's thread naps in the partition.

use super::*;

/// Cores whose threads' joins are watched, as many as the scheduler's
/// idle mask (a u64) knows.
pub(super) const MAX_CORES: usize = 64;

/// Each physical core's watch over its threads' answers to thread 0
/// (a hung thread is the core's, whichever vcore asked it).
pub(super) static CORE_JOINS: [JoinWatch; MAX_CORES] = [const { JoinWatch::new() }; MAX_CORES];

pub(super) fn core_joins(core: usize) -> &'static JoinWatch {
    &CORE_JOINS[core % MAX_CORES]
}

/// The guest time slice (HDEC).
pub(super) const SLICE_MS: u64 = 10;

/// Entry-time TLB flush: only records that the asm must flush.
pub(super) struct EntryFlush(bool);

impl TlbOps for EntryFlush {
    fn local(&mut self, _: u32, _: u64) {}
    fn global(&mut self, _: u32, _: u64) {}
    fn flush_lpid_here(&mut self, _: u32) {
        self.0 = true;
    }
}

/// Work thread 0 posts in a secondary's hypervisor-state block: join run
/// `run` of vcore `vcore` of `vm`.
pub struct Join {
    pub vm: Arc<Vm>,
    pub vcore: u32,
    pub run: u32,
}

/// Vcore run timings (timebase ticks), kept for the VM's stop report:
/// entry is thread 0's first wake-up IPI to the last thread's first
/// instruction in the guest, exit the first thread leaving to thread 0
/// having switched the partition back.
#[derive(Default)]
pub(super) struct VcoreTimings {
    entry: Vec<u64>,
    exit: Vec<u64>,
}

impl VcoreTimings {
    /// Samples kept (the first runs of a long-lived VM).
    pub(super) const MAX: usize = 4096;

    pub(super) fn record(&mut self, entry: u64, exit: u64) {
        if self.entry.len() < Self::MAX {
            self.entry.push(entry);
            self.exit.push(exit);
        }
    }

    pub(super) fn print(&mut self, vm: &str, threads: u32) {
        if self.entry.is_empty() || threads < 2 {
            return;
        }
        let n = self.entry.len();
        for (what, v) in [
            (
                alloc::format!("entry (first IPI -> all {threads} threads in the guest)"),
                &mut self.entry,
            ),
            (
                String::from("exit (first thread out -> partition switched back)"),
                &mut self.exit,
            ),
        ] {
            v.sort_unstable();
            info!(target: "vcore", "vm {vm}: {what}: median={} min={} max={} ticks ({n} runs)", v[n / 2], v[0], v[n - 1]);
        }
    }
}

/// The waits kernel::dispatch measures.
#[derive(Clone, Copy)]
pub(super) enum Wait {
    Ready,
    Wake,
}

/// Why a vcpu's thread naps in the partition.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Block {
    Ceded,
    Stopped,
}

/// The LPCR bits of an interrupt mode (H_SET_MODE: ILE, AIL).
pub(super) fn irq_lpcr(m: InterruptMode) -> u64 {
    let ile = if m.little_endian { spr::LPCR_ILE } else { 0 };
    ile | (m.ail << spr::LPCR_AIL_SHIFT)
}

/// A guest's LPCR on a host whose LPCR is `host`: VRMA with its page
/// size, HDEC interrupts, external interrupts to the hypervisor (LPES 0),
/// the interrupt mode's bits (`irq`, [`irq_lpcr`]) and MER when an
/// interrupt waits for the guest to enable MSR[EE].
pub(super) fn guest_lpcr(host: u64, irq: u64, mer: bool) -> u64 {
    use spr::{
        LPCR_AIL, LPCR_HDICE, LPCR_ILE, LPCR_LPES0, LPCR_LPES1, LPCR_MER, LPCR_VPM0, LPCR_VPM1,
    };
    let clear = LPCR_VPM0
        | LPCR_VPM1
        | spr::LPCR_VRMASD
        | LPCR_ILE
        | LPCR_AIL
        | LPCR_MER
        | LPCR_LPES0
        | LPCR_LPES1
        | LPCR_HDICE;
    let mer = if mer { LPCR_MER } else { 0 };
    (host & !clear) | LPCR_VPM0 | hpte::lpcr_vrmasd(VRMA_PAGE) | LPCR_HDICE | irq | mer
}

impl Vm {
    /// Runs vcore `index` on this thread, thread 0 of its core, for one
    /// time slice or until it must leave: switches the partition, wakes
    /// the secondaries (each finds its work in its hypervisor-state block
    /// and enters its own vcpu), runs virtual thread 0, and switches back
    /// once every thread that entered has left and saved its vcpu.
    pub fn run_vcore(self: &Arc<Self>, index: u32, me: &CpuState) {
        let vc = &self.sh.vcores[index as usize];
        let smp = crate::cpus::smp();
        // One partition per core at a time: its LPIDR/SDR1 are the
        // core's on POWER8.
        if cpu::lpidr() != u64::from(kernel::lpid::HOST_LPID) {
            let why = alloc::format!(
                "core {} already has partition {} loaded",
                me.core,
                cpu::lpidr()
            );
            crate::scheduler::post_event(self, VmEvent::Stop(Outcome::Crashed(why)));
            return;
        }
        // The MMU gate: count this vcore in first, then check; an HPT
        // reset clears the gate first, then checks the count.
        self.sh.running.fetch_add(1, Ordering::SeqCst);
        if !self.sh.mmu_ready.load(Ordering::SeqCst) {
            self.sh.running.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        let host_lpcr = cpu::mfspr::<{ spr::LPCR }>();
        let part = self.st.lock().partition_regs(host_lpcr, Some(me.core));
        // SAFETY: the HPT maps only this VM's memory; the hypervisor
        // runs in real mode until partition_exit.
        unsafe { guest::partition_enter(&part) };
        // Doorbells saved when the vcore last left.
        // SAFETY: DPDES only holds doorbells for this core's threads.
        unsafe { cpu::mtspr::<{ spr::DPDES }>(vc.dpdes.load(Ordering::Acquire)) };
        let run = vc.run.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
        vc.deadline.store(
            cpu::mftb() + kernel::time::ms_to_ticks(SLICE_MS),
            Ordering::Release,
        );
        vc.core.store(me.core, Ordering::SeqCst);
        // Where the vcore runs is published before any of its threads
        // checks its vcpu's wake state (see Shared::kick_vcpu).
        core::sync::atomic::fence(Ordering::SeqCst);
        vc.threads_in.store(0, Ordering::Relaxed);
        vc.last_in.store(0, Ordering::Relaxed);
        vc.leaving_since.store(0, Ordering::Relaxed);
        vc.ee.start(run);
        // Each secondary's work, made before the first IPI goes out.
        let mut work: [Option<(&CpuState, usize)>; MAX_THREADS] = [None; MAX_THREADS];
        for (ptid, w) in work
            .iter_mut()
            .enumerate()
            .take(self.sh.layout.threads as usize)
            .skip(1)
        {
            let Some(t) = crate::cpus::thread_at(me.core, ptid) else {
                break;
            };
            let job = Box::new(crate::scheduler::Work::Join(Join {
                vm: self.clone(),
                vcore: index,
                run,
            }));
            *w = Some((t, Box::into_raw(job) as usize));
        }
        // Wake the secondaries: the work goes into each one's
        // hypervisor-state block before its IPI. Thread 0 does not wait
        // for them: each enters its vcpu when it comes, and one that is
        // late only delays its own vcpu (its lateness is watched in
        // `slice_over`, and reported; only a thread dead for
        // JOIN_DEAD_MS stops the VM).
        let first_ipi = cpu::mftb();
        let mut n = 0;
        for w in work.iter_mut() {
            let Some((t, token)) = *w else { continue };
            core_joins(me.core).ask(t.thread, first_ipi);
            if t.hv.post(token) {
                smp.kick(me, t);
                n += 1;
            } else {
                // SAFETY: the token was never published.
                drop(unsafe { Box::from_raw(token as *mut crate::scheduler::Work) });
                *w = None;
            }
        }
        if n + 1 != self.sh.layout.threads {
            // Every run takes back what its threads did not take, so a
            // busy block or a missing thread is the hypervisor's error.
            let why = alloc::format!(
                "vcore {index} needs {} threads, core {} could wake only {}",
                self.sh.layout.threads,
                me.core,
                n + 1
            );
            log::error!(target: "vcore", "{}: {why}", self.name);
            crate::scheduler::post_event(self, VmEvent::Stop(Outcome::Crashed(why)));
        }
        self.vcpu_thread(vc, 0, me, host_lpcr);
        self.leave(vc, 0, me);
        // Every thread that entered was told to leave; each IPIs thread
        // 0 once its vcpu is saved.
        smp.wait_watched(
            me,
            || vc.ee.all_out(),
            |ms| self.report_late_threads(index, vc, me, ms),
        );
        // Work a late thread has not taken yet is taken back (its request
        // stays in `joins`: the thread is still late); work it took finds
        // the run over and returns at once.
        for (t, token) in work.iter().flatten() {
            if t.hv.reclaim(*token) {
                // SAFETY: reclaimed, so the thread never took it.
                drop(unsafe { Box::from_raw(*token as *mut crate::scheduler::Work) });
            }
        }
        vc.dpdes
            .store(cpu::mfspr::<{ spr::DPDES }>(), Ordering::Release);
        // SAFETY: no thread of the core is in the guest; the next
        // partition must not see this one's doorbells.
        unsafe { cpu::mtspr::<{ spr::DPDES }>(0) };
        vc.core.store(NO_CORE, Ordering::Release);
        // SAFETY: every thread of this vcore is out of the guest.
        unsafe { guest::partition_exit() };
        self.sh.running.fetch_sub(1, Ordering::SeqCst);
        if vc.threads_in.load(Ordering::Acquire) == self.sh.layout.threads {
            let entry = vc.last_in.load(Ordering::Acquire).saturating_sub(first_ipi);
            let exit = cpu::mftb().saturating_sub(vc.leaving_since.load(Ordering::Acquire));
            self.st.lock().timings.record(entry, exit);
        }
    }

    /// The watchdog of thread 0's wait for its vcore's threads to leave:
    /// names each thread still inside and what it is doing.
    #[cold]
    pub(super) fn report_late_threads(&self, index: u32, vc: &Vcore, me: &CpuState, ms: u64) {
        let inside = vc.ee.still_in();
        for t in (0..8).filter(|t| inside & (1 << t) != 0) {
            if let Some(c) = crate::cpus::thread_at(me.core, t) {
                log::warn!(
                    target: "watchdog",
                    "vm {} vcore {index}: PIR {:#x} (core {} thread {t}) has not left the vcore for {ms} ms; it is {}",
                    self.name,
                    c.pir,
                    me.core,
                    c.hv.mode().describe()
                );
            }
        }
    }

    /// Thread `t` of this core has not answered thread 0's requests to
    /// join `vc`: reported while it is late, the VM stopped once it is
    /// proven dead.
    #[cold]
    pub(super) fn late_join(&self, vc: &Vcore, me: &CpuState, t: usize, late: Late) {
        let Some(c) = crate::cpus::thread_at(me.core, t) else {
            return;
        };
        let doing = c.hv.mode().describe();
        match late {
            Late::Report(ms) => {
                me.stats.watchdog_reports.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    target: "watchdog",
                    "vm {} vcore {}: PIR {:#x} (core {} thread {t}) has not come to join the vcore for {ms} ms; it is {doing}",
                    self.name,
                    vc.index,
                    c.pir,
                    me.core,
                );
            }
            Late::Dead(ms) => {
                core_joins(me.core).answered(t);
                let why = alloc::format!(
                    "vcore {}: thread PIR {:#x} of core {} has not come to join the vcore for {ms} ms (the limit is {} ms); it is {doing}",
                    vc.index,
                    c.pir,
                    me.core,
                    kernel::vcore::JOIN_DEAD_MS
                );
                log::error!(target: "vcore", "{}: {why}", self.name);
                crate::scheduler::post_event(self, VmEvent::Stop(Outcome::Crashed(why)));
            }
        }
    }

    /// A secondary's part of a vcore run (from its idle loop, where it
    /// found `Join` in its hypervisor-state block).
    pub fn join(self: &Arc<Self>, index: u32, run: u32, me: &CpuState) {
        let vc = &self.sh.vcores[index as usize];
        let ptid = me.thread as u32;
        // Alive, whether in time for its run or not.
        core_joins(me.core).answered(me.thread);
        // Work from a run long gone (the run number in `ee` wraps at 16
        // bits) must not enter the vcore now running on another core.
        if vc.core.load(Ordering::SeqCst) != me.core || !vc.ee.try_enter(ptid, run) {
            return;
        }
        let host_lpcr = cpu::mfspr::<{ spr::LPCR }>();
        let part = self.st.lock().partition_regs(host_lpcr, None);
        // SAFETY: thread 0 switched this core to `part` before waking us.
        let j = unsafe { guest::secondary_join_partition(&part) };
        self.vcpu_thread(vc, ptid, me, host_lpcr);
        // SAFETY: this thread's vcpu is out and saved.
        unsafe { guest::secondary_leave_partition(j) };
        self.leave(vc, ptid, me);
    }

    /// Thread `ptid` has saved its vcpu: it leaves the vcore. The first
    /// to leave tells the others; every secondary tells thread 0, which
    /// waits for the last.
    pub(super) fn leave(&self, vc: &Vcore, ptid: u32, me: &CpuState) {
        let _ =
            vc.leaving_since
                .compare_exchange(0, cpu::mftb(), Ordering::AcqRel, Ordering::Relaxed);
        let others = vc.ee.exit(ptid);
        for t in 0..8 {
            if others & (1 << t) != 0 {
                kick_thread(me.core, t);
            }
        }
        if ptid != 0 && others & 1 == 0 {
            kick_thread(me.core, 0);
        }
    }

    pub(super) fn must_leave(&self, vc: &Vcore) -> bool {
        vc.ee.exiting() || self.sh.leaving.load(Ordering::Acquire)
    }

    /// Runs virtual thread `ptid` of `vc` on this thread until the vcore
    /// leaves: every exit handled on the thread goes straight back into
    /// the guest, without a partition switch or an SLB save and load.
    pub(super) fn vcpu_thread(&self, vc: &Vcore, ptid: u32, me: &CpuState, host_lpcr: u64) {
        let Some(id) = self.sh.layout.vcpu(vc.index, ptid) else {
            return;
        };
        let Some(mut v) = self.vcpus[id as usize].lock().take() else {
            let why = alloc::format!("vcpu {id} is already running");
            crate::scheduler::post_event(self, VmEvent::Stop(Outcome::Crashed(why)));
            return;
        };
        v.core = me.core;
        // The vcpu's own counts, moved out of it (a pointer) for the run.
        let mut tally = v.tally.take().unwrap_or_default();
        let mut fast = FastCtx {
            part: self.sh.mmu.partition(me.core),
            vm: self,
            sh: &self.sh,
            frame: Default::default(),
            id: self.id,
            raise: core::mem::take(&mut v.raise),
            tally: &mut tally,
        };
        // The thread's FP/VMX/VSX registers become this vcpu's, saved
        // again when it leaves: no other partition ever sees them.
        ppc64::fpu::load(&v.fp);
        guest::slb_load(&v.regs);
        me.hv.set_mode(ThreadMode::InHost);
        self.vcpu_loop(&mut v, vc, me, host_lpcr, core::ptr::addr_of_mut!(fast));
        // Empty: the fast path raises what it collects before it returns.
        v.raise = core::mem::take(&mut fast.raise);
        let preempted = !v.ceded && !self.sh.vcpus[id as usize].stopped.load(Ordering::Acquire);
        guest::slb_save_clear(&mut v.regs);
        ppc64::fpu::save(&mut v.fp);
        {
            let mut st = self.st.lock();
            st.add_tally(&tally);
            st.exits += core::mem::take(&mut v.quick_exits);
            if preempted && v.undispatched.is_none() {
                // Off its thread while it wanted to run: preempted (the
                // yield count odd until it is dispatched again).
                v.undispatched = Some(Undispatched::Preempted);
                v.dispatch.preemptions += 1;
                Services::undispatch(&self.sh.vcpus, v.id, &mut st.mem());
            }
        }
        // Zeroed here, on the way out, not on the way in.
        *tally = table::Tally::default();
        v.tally = Some(tally);
        me.hv.set_mode(ThreadMode::Idle);
        *self.vcpus[id as usize].lock() = Some(v);
    }

    /// `fast` is what the hypercall fast path gets with every entry.
    pub(super) fn vcpu_loop(
        &self,
        v: &mut Vcpu,
        vc: &Vcore,
        me: &CpuState,
        host_lpcr: u64,
        fast: *mut FastCtx,
    ) {
        let shv = &self.sh.vcpus[v.id as usize];
        let mut entered = false;
        // start-cpu's entry point, taken once per run (it may have come
        // while the vcore waited) and after every stop, never on the path
        // of an ordinary exit.
        let take_start = |v: &mut Vcpu| {
            if let Some((pc, r3)) = shv.start.lock().take() {
                v.start_at(pc, r3);
            }
        };
        take_start(v);
        // The vcpu just made stop-self: another vcpu may have started it
        // again already (start-cpu sets the entry point before it clears
        // `stopped`), before this thread got to block.
        let mut stopped_itself = false;
        // The slice deadline HDEC was loaded for, while DEC and HDEC still
        // run as the last exit left them (nothing on this thread wrote
        // them since): the next entry need not load them.
        let mut timers_live: Option<u64> = None;
        loop {
            if self.must_leave(vc) {
                return;
            }
            if shv.stopped.load(Ordering::Acquire) {
                timers_live = None;
                if !self.block(v, vc, me, Block::Stopped) {
                    return;
                }
                take_start(v);
                stopped_itself = false;
                continue;
            }
            if core::mem::take(&mut stopped_itself) {
                timers_live = None;
                take_start(v);
            }
            if v.ceded {
                timers_live = None;
                if !self.block(v, vc, me, Block::Ceded) {
                    return;
                }
            }
            let now = cpu::mftb();
            let ready = v.ready_since.take().map(|since| now.saturating_sub(since));
            if let Some(ticks) = ready {
                self.record_wait(v, Wait::Ready, ticks);
            }
            if let Some(after) = v.undispatched.take() {
                // Before an interrupt is delivered: the DTL gets the PC
                // where the vcpu stopped.
                self.dispatched(v, after, ready.unwrap_or(0), me);
            }
            let deadline = vc.deadline.load(Ordering::Acquire);
            let mut entry = self.prepare_entry(v, host_lpcr, deadline);
            entry.hcall_ctx = fast as u64;
            entry.load_timers = u64::from(timers_live != Some(deadline));
            if !entered {
                entered = true;
                vc.last_in.fetch_max(now, Ordering::AcqRel);
                vc.threads_in.fetch_add(1, Ordering::AcqRel);
            }
            me.hv.set_mode(ThreadMode::InGuest);
            // SAFETY: this vcpu's partition and SLB are loaded on this
            // thread (run_vcore / join); `run` forces the MSR bits a guest
            // may not hold. `fast` outlives the run and is used by nothing
            // else meanwhile (hv_hcall_fast).
            let vec = unsafe { guest::run(&mut v.regs, &entry) };
            me.hv.set_mode(ThreadMode::InHost);
            let now = cpu::mftb();
            v.dec_expires = Some(now.wrapping_add(v.regs.dec));
            // Runnable from here until it enters again, unless it blocks.
            v.ready_since = Some(now);
            crate::stacks::check();
            let exit = Exit::decode(vec);
            // HDEC expired (QEMU raises it once, on the way down) or an
            // IPI's calls ran: load both again next time.
            timers_live = (!matches!(exit, Exit::Hdec | Exit::External)).then_some(deadline);
            let next = if exit_needs_vm(exit) {
                let mut st = self.st.lock();
                let next = st.handle_exit(v, exit, vec);
                // The exit may have changed its own ICP (H_XIRR, H_EOI,
                // H_CPPR) without a kick.
                st.svc.sync_presented(&self.sh.vcpus, v.id);
                next
            } else {
                v.quick_exits += 1;
                Action::Resume
            };
            if !v.raise.is_empty() {
                net::raise_edges(&mut v.raise);
            }
            if exit == Exit::External {
                // An IPI for this thread: run any call it brought.
                crate::cpus::external_exit();
            }
            // Output an exit queued goes out now; the owner's input is
            // read on time-slice exits (at least every SLICE_MS) and
            // while a vcpu naps.
            if exit == Exit::Hdec {
                self.console_service();
            } else if self.sh.console_queued.load(Ordering::Acquire) {
                // OPAL is called: whatever it does, DEC is loaded again.
                timers_live = None;
                self.write_console();
            }
            match next {
                // An exit that concerns the whole vcore (regs::Exit::scope):
                // at the slice's end it leaves if another vcore waits.
                Action::Resume if exit.scope() == ExitScope::Vcore => {
                    if self.slice_over(vc, me) {
                        return;
                    }
                }
                Action::Yield => {
                    if crate::scheduler::others_waiting() {
                        return;
                    }
                }
                Action::Stopped => {
                    stopped_itself = true;
                    v.ready_since = None;
                }
                Action::Resume => {}
                Action::Cede => {
                    // (Its yield count went odd in the H_CEDE handler.)
                    v.ceded = true;
                    v.undispatched = Some(Undispatched::Ceded);
                    v.ready_since = None;
                }
                Action::Reboot => crate::scheduler::post_event(self, VmEvent::Reboot),
                Action::Stop(o) => crate::scheduler::post_event(self, VmEvent::Stop(o)),
            }
        }
    }

    /// What the next entry of `v` loads: the interrupt it takes now (or
    /// MER), this VM's LPCR, what is left of the vcore's time slice (HDEC
    /// is core-wide: every thread loads the same deadline), the guest's
    /// decrementer. The VM's lock only when an interrupt is presented.
    pub(super) fn prepare_entry(&self, v: &mut Vcpu, host_lpcr: u64, deadline: u64) -> VcpuEntry {
        let mer = self.sh.vcpus[v.id as usize]
            .presented
            .load(Ordering::Acquire)
            && self.st.lock().deliver_external(v);
        let now = cpu::mftb();
        // The guest's decrementer keeps counting while the hypervisor
        // runs: load what is left of it (the timebase is shared). A
        // negative value makes the guest take its decrementer interrupt
        // as soon as it enables MSR[EE].
        if let Some(expires) = v.dec_expires {
            v.regs.dec = deliver::dec_remaining(expires, now);
        }
        VcpuEntry {
            lpcr: guest_lpcr(host_lpcr, self.sh.irq_lpcr.load(Ordering::Acquire), mer),
            hdec: deadline.saturating_sub(now).clamp(1, spr::DEC_MAX),
            hfscr: regs::HFSCR_GUEST,
            hcall_ctx: 0,
            load_timers: 1,
        }
    }

    /// Whether a ceded `v` on hardware thread `thread` must wake: prodded,
    /// an interrupt presented, a doorbell pending (DPDES), or its
    /// decrementer expired. No lock: each condition is its own word.
    pub(super) fn cede_ends(&self, v: &Vcpu, thread: usize) -> bool {
        let shv = &self.sh.vcpus[v.id as usize];
        let dec_due = v
            .dec_expires
            .is_some_and(|e| deliver::dec_expired(e, cpu::mftb()));
        let irq = shv.presented.load(Ordering::Acquire)
            || cpu::mfspr::<{ spr::DPDES }>() & (1 << thread) != 0;
        if shv.cede.take_wake() {
            return true;
        }
        if irq || dec_due {
            shv.cede.end();
        }
        irq || dec_due
    }

    /// Records one of `v`'s waits of `ticks`; a new longest one of a
    /// second or more is reported at once (the stop report has them all).
    pub(super) fn record_wait(&self, v: &mut Vcpu, what: Wait, ticks: u64) {
        let l = match what {
            Wait::Ready => &mut v.dispatch.ready,
            Wait::Wake => &mut v.dispatch.wake,
        };
        if l.record(ticks, v.id) && ticks >= kernel::time::ms_to_ticks(1000) {
            warn!(
                target: "dispatch",
                "vm {}: vcpu {} {} {} ms",
                self.name,
                v.id,
                match what {
                    Wait::Ready => "was ready to run and waited",
                    Wait::Wake => "stayed ceded past its wake-up by",
                },
                ticks / kernel::time::ticks_per_ms().max(1)
            );
        }
    }

    /// `v` runs again after it was not running (`after`), having been
    /// ready for `ready` ticks: its VPA's yield count goes even and its DTL
    /// (if the guest asked) logs the dispatch with the time it lost (a
    /// preemption's wait, or how late a cede woke), which is also added
    /// to the VPA's steal total.
    pub(super) fn dispatched(&self, v: &Vcpu, after: Undispatched, ready: u64, me: &CpuState) {
        let shv = &self.sh.vcpus[v.id as usize];
        if shv.vpa.lock().vpa.is_none() {
            return; // nothing to record (the lock order is VM, then VPA)
        }
        let (stolen, reason) = match after {
            Undispatched::Preempted => (ready, vpa::DISPATCH_TIME_SLICE),
            Undispatched::Ceded => (v.cede_late, v.wake_reason),
        };
        let d = vpa::Dispatch {
            after,
            stolen,
            tb: cpu::mftb(),
            processor: me.pir as u16,
            srr0: v.regs.pc,
            srr1: v.regs.msr,
            reason,
        };
        let st = self.st.lock();
        self.sh.vcpus[v.id as usize]
            .vpa
            .lock()
            .dispatched(&mut st.mem(), &d);
    }

    /// The time slice has ended: true when the vcore must give the core
    /// to a waiting vcore, else the slice is renewed. Thread 0 also
    /// watches the threads it asked to join, at least once a slice.
    pub(super) fn slice_over(&self, vc: &Vcore, me: &CpuState) -> bool {
        let now = cpu::mftb();
        if now < vc.deadline.load(Ordering::Acquire) {
            return false;
        }
        if me.thread == 0 {
            core_joins(me.core).check(now, kernel::time::ticks_per_ms(), |t, late| {
                self.late_join(vc, me, t, late)
            });
        }
        if crate::scheduler::others_waiting() {
            return true;
        }
        vc.deadline
            .store(now + kernel::time::ms_to_ticks(SLICE_MS), Ordering::Release);
        false
    }

    /// The vcpu is blocked (H_CEDE, or stopped): its thread naps in the
    /// partition, without the VM's lock, until the block ends (true) or
    /// the vcore must leave (false). A cede ends when an interrupt is
    /// presented to the vcpu, a doorbell is pending for its thread, its
    /// decrementer expires or it is prodded; a stop with `start-cpu`.
    pub(super) fn block(&self, v: &mut Vcpu, vc: &Vcore, me: &CpuState, why: Block) -> bool {
        let smp = crate::cpus::smp();
        let shv = &self.sh.vcpus[v.id as usize];
        if why == Block::Ceded && self.sh.raw_held.load(Ordering::Acquire) {
            self.st.lock().flush_raw();
            self.write_console();
        }
        // A ceded vcpu also wakes for a doorbell from a sibling thread
        // (msgsndp); a stopped one must not (it would never sleep).
        let lpcr = cpu::mfspr::<{ spr::LPCR }>();
        let want = match why {
            Block::Ceded => lpcr | spr::LPCR_PECE_DOORBELL,
            Block::Stopped => lpcr & !spr::LPCR_PECE_DOORBELL,
        };
        if want != lpcr {
            // SAFETY: only the doorbell wake-up enable changes; the next
            // entry loads the guest's LPCR again.
            unsafe { cpu::set_lpcr(want) };
        }
        me.hv.set_mode(ThreadMode::Napping);
        let woken = loop {
            let ended = match why {
                Block::Ceded => self.cede_ends(v, me.thread),
                Block::Stopped => !shv.stopped.load(Ordering::Acquire),
            };
            if ended {
                break true;
            }
            if self.must_leave(vc) || self.slice_over(vc, me) {
                break false;
            }
            let now = cpu::mftb();
            let mut wait = vc
                .deadline
                .load(Ordering::Acquire)
                .saturating_sub(now)
                .max(1);
            if let (Block::Ceded, Some(e)) = (why, v.dec_expires) {
                // An expiry already past (negative) is a wait of one tick.
                wait = wait.min((deliver::dec_remaining(e, now) as i64).max(1) as u64);
            }
            if owns_console(self.id) {
                let poll = self.sh.next_poll.load(Ordering::Relaxed);
                wait = wait.min(poll.saturating_sub(now).max(1));
            }
            // One nap, then every wake-up condition is checked again.
            smp.idle_once(me, wait);
            self.console_service();
        };
        if want != lpcr {
            // SAFETY: back to the LPCR this thread had before the block.
            unsafe { cpu::set_lpcr(lpcr) };
        }
        me.hv.set_mode(ThreadMode::InHost);
        if woken {
            let now = cpu::mftb();
            if why == Block::Ceded {
                v.ceded = false;
                let kicked = shv.kicked.swap(0, Ordering::Relaxed);
                let due = kernel::dispatch::wake_condition(v.dec_expires, kicked, now);
                v.cede_late = due.map_or(0, |d| now.saturating_sub(d));
                v.wake_reason = if due.is_some_and(|d| d != kicked) {
                    vpa::DISPATCH_DECREMENTER
                } else {
                    vpa::DISPATCH_EXTERNAL
                };
                if due.is_some() {
                    self.record_wait(v, Wait::Wake, v.cede_late);
                }
            }
            v.ready_since = Some(now);
        }
        woken
    }
}

impl VmState {
    /// The partition registers of this VM. With `switch_on` (thread 0
    /// switching `core`): counts the switch and asks for the core's TLB
    /// flush for the LPID if the VM ran elsewhere since (need_tlb_flush).
    pub(super) fn partition_regs(
        &mut self,
        host_lpcr: u64,
        switch_on: Option<usize>,
    ) -> PartitionRegs {
        let mut flush = EntryFlush(false);
        if let Some(core) = switch_on {
            self.sh.mmu.tlb.on_entry(&mut flush, core);
            self.partition_switches += 1;
        }
        PartitionRegs {
            lpid: self.lpid as u64,
            sdr1: self.hpt.sdr1(),
            lpcr: guest_lpcr(host_lpcr, self.sh.irq_lpcr.load(Ordering::Acquire), false),
            flush_tlb: flush.0 as u64,
            tlb_sets: ppc64::sizes::TLB_SETS,
        }
    }
}
