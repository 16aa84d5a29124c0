//! Guest partitions on the firmware. One concern per file:
//! - `mod.rs`: the VM's types (its locked state, what its threads share
//!   lock-free, vcpus, vcores) and what the scheduler asks of a VM;
//! - `life.rs`: creation, `system-reboot`'s reset and destruction (LPID,
//!   memory, HPT, VRMA, image, device tree), and the stop report;
//! - `run.rs`: the vcore run loops (thread 0 and the secondaries), the
//!   time slice, a blocked vcpu's nap;
//! - `exit.rs`: exit handling and interrupt delivery;
//! - `fast.rs`: the hypercall fast path (HPT calls without the VM's lock);
//! - `env.rs`: the machine side of the partition services (`FirmwareEnv`);
//! - `console.rs`: the VM's console output and serial console ownership;
//! - `net.rs`: the virtual LANs (the switch between VMs' l-lan adapters).

mod console;
mod disk;
mod env;
mod exit;
mod fast;
mod life;
mod net;
mod run;

use console::*;
use exit::*;
use fast::*;
use life::*;
use run::*;

pub use console::set_console_owner;
pub use env::host_epoch;
pub use life::{lpids_free, VmConfig, VmError};
pub use run::Join;

use crate::mem::{HPT_POOL, PAGES};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use kernel::deliver::{self, External, InterruptMode};
use kernel::dispatch::Dispatch;
use kernel::fwnmi::{self, Cause, Refused};
use kernel::gmem::GuestMemory;
use kernel::guestfdt::{self, GuestFdtConfig};
use kernel::hpt::{self, Hpt, HptMemory};
use kernel::layout::{self, LayoutError};
use kernel::lpid::LpidAllocator;
use kernel::papr::hpt::Partition;
use kernel::papr::rtas;
use kernel::papr::services::{Action, Caller, Env, Services, VcpuShared};
use kernel::papr::table::{self, Hcall, HptCall};

pub use kernel::papr::services::Outcome;
use kernel::smp::{CpuState, ThreadMode};
use kernel::tlb::{TlbOps, VmTlb};
use kernel::vcore::{EntryExit, JoinWatch, Late, Layout, VcpuState, MAX_THREADS};
use kernel::vio::{nvram::Nvram, vty, vty::Vty, VioBus};
use kernel::vpa::{self, Undispatched, Vpa};
use kernel::vterm::{self, Typed, Vterm};
use log::{info, warn};
use ppc64::cpu;
use ppc64::guest;
use ppc64::hpte::{self, HptOrder, PageSize};
use ppc64::regs::{self, Exit, ExitScope, GuestRegs, HcallPath, PartitionRegs, VcpuEntry};
use ppc64::spr;
use ppc64::trap::vector;

/// Everything of a VM but its vcpus: what exit handlers share.
struct VmState {
    pub name: String,
    pub lpid: u32,
    mem_base: u64,
    mem_order: u32,
    mem_size: u64,
    pub hpt: Hpt,
    /// What the threads running its vcpus share (layout, per-vcpu wake
    /// state, vcores).
    sh: Arc<Shared>,
    /// The vty's state and the console output queued under the lock.
    con: GuestConsole,
    /// Creation order (console ownership).
    id: usize,
    /// The partition services' state (XICS, interrupt mode, FWNMI,
    /// clock offset, NVRAM, hypercall counts), kernel::papr::services;
    /// the NVRAM also in flash (crate::nvstore) when it stops or reboots
    /// after a store.
    svc: Services,
    /// External interrupts delivered by the hypervisor (the rest are taken
    /// through LPCR[MER]).
    externals: u64,
    exits: u64,
    /// Times a vcore entered the guest (partition switches).
    partition_switches: u64,
    /// Vcore entry and exit times of the runs where every thread ran.
    timings: VcoreTimings,
    /// What a reboot reloads: the image, the initrd, the device tree and
    /// the entry registers.
    image: &'static [u8],
    initrd: Option<(u64, &'static [u8])>,
    fdt: Vec<u8>,
    fdt_gpa: u64,
    rtas_base: u64,
    boot_regs: GuestRegs,
    reboots: u32,
    /// Interrupts reflected into the guest.
    reflected: u64,
}

/// What takes every vcore of a VM out of the guest: `system-reboot`
/// (every vcpu stops, the HPT is cleared, vcpu 0 restarts at the entry
/// point with the others stopped) or a stop with its outcome.
pub type VmEvent = kernel::vcore::sched::Event<Outcome>;

/// No physical core (a vcore waiting in the run queue).
pub const NO_CORE: usize = usize::MAX;

/// One virtual core: its gang entry/exit word and where it runs.
pub struct Vcore {
    pub index: u32,
    ee: EntryExit,
    run: AtomicU32,
    /// Physical core running it, [`NO_CORE`] when it waits.
    core: AtomicUsize,
    /// Timebase at which the current time slice ends (HDEC, core-wide).
    deadline: AtomicU64,
    /// Doorbells (`msgsndp`) pending for its threads while it waits: the
    /// core's DPDES, saved by thread 0 once every thread is out.
    dpdes: AtomicU64,
    /// This run's timings: threads that entered the guest, the timebase
    /// at the last first entry, when the first thread began leaving.
    threads_in: AtomicU32,
    last_in: AtomicU64,
    leaving_since: AtomicU64,
}

/// What every thread running a VM's vcpus shares without the VM's lock.
struct Shared {
    layout: Layout,
    mmu: GuestMmu,
    /// The VM's devices (kernel::vio), each under its own lock.
    vio: VioBus,
    /// The virtual LAN of each of its l-lan adapters, by unit address.
    lans: Vec<(u32, Arc<net::Lan>)>,
    vcpus: Vec<VcpuShared>,
    vcores: Vec<Vcore>,
    /// A `VmEvent` is pending (the scheduler holds the event itself).
    leaving: AtomicBool,
    /// Vcores in the guest partition now; an HPT reset is refused unless 0.
    running: AtomicU32,
    /// HPT and VRMA set up: entries are gated on it (ordered against
    /// `running`, so a reset never races an entry).
    mmu_ready: AtomicBool,
    /// Console output is queued in `VmState::con`.
    console_queued: AtomicBool,
    /// The owner's unfinished line waits in the vty for a flush.
    raw_held: AtomicBool,
    /// The LPCR bits of the guest's interrupt mode (ILE, AIL), kept with
    /// `Services::irq_mode` (`VmState::svc`) so an entry needs no lock.
    irq_lpcr: AtomicU64,
    /// Timebase at which the console owner next reads the serial console.
    next_poll: AtomicU64,
}

impl Shared {
    fn new(layout: Layout, mmu: GuestMmu, vio: VioBus, lans: Vec<(u32, Arc<net::Lan>)>) -> Self {
        Shared {
            layout,
            mmu,
            vio,
            lans,
            vcpus: (0..layout.vcpus).map(|_| VcpuShared::default()).collect(),
            vcores: (0..layout.vcores())
                .map(|index| Vcore {
                    index,
                    ee: EntryExit::default(),
                    run: AtomicU32::new(0),
                    core: AtomicUsize::new(NO_CORE),
                    deadline: AtomicU64::new(0),
                    dpdes: AtomicU64::new(0),
                    threads_in: AtomicU32::new(0),
                    last_in: AtomicU64::new(0),
                    leaving_since: AtomicU64::new(0),
                })
                .collect(),
            leaving: AtomicBool::new(false),
            running: AtomicU32::new(0),
            mmu_ready: AtomicBool::new(false),
            console_queued: AtomicBool::new(false),
            raw_held: AtomicBool::new(false),
            irq_lpcr: AtomicU64::new(irq_lpcr(InterruptMode::default())),
            next_poll: AtomicU64::new(0),
        }
    }

    /// The VM's memory, reached without its lock (a frame from another
    /// VM's adapter).
    ///
    /// # Safety
    /// The VM's memory must not have been freed (`VmState::destroy`) and
    /// must not be until the result is dropped.
    unsafe fn guest_memory(&self) -> GuestMemory<'_> {
        // SAFETY: the caller keeps the memory allocated; the firmware makes
        // no reference to it while vcpus run (as in `VmState::mem`).
        unsafe { GuestMemory::from_raw(self.mmu.mem_base as *mut u8, self.mmu.mem_size) }
    }

    /// Wakes the thread running vcpu `id`, wherever it is: in the guest
    /// (it exits and takes what is now pending), napping in H_CEDE or
    /// stopped (it re-checks), or not on a core (the scheduler is told).
    fn kick_vcpu(&self, id: u32) {
        let Some((vc, ptid)) = self.layout.place(id) else {
            return;
        };
        let _ = self.vcpus[id as usize].kicked.compare_exchange(
            0,
            cpu::mftb(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        // The wake state was written first; the fence orders it before
        // this read of where the vcore runs, against run_vcore's store of
        // its core and then its threads' checks (host test:
        // a_wake_sent_while_the_vcore_migrates_is_never_lost).
        core::sync::atomic::fence(Ordering::SeqCst);
        let core = self.vcores[vc as usize].core.load(Ordering::SeqCst);
        if core == NO_CORE {
            crate::scheduler::wake_idle();
            return;
        }
        kick_thread(core, ptid as usize);
    }

    /// Every thread of every vcore on a core (they see `leaving`, which
    /// was set first: the fence pairs with run_vcore's, as in kick_vcpu).
    fn kick_all(&self) {
        core::sync::atomic::fence(Ordering::SeqCst);
        for vc in &self.vcores {
            let core = vc.core.load(Ordering::SeqCst);
            if core != NO_CORE {
                for t in 0..self.layout.threads as usize {
                    kick_thread(core, t);
                }
            }
        }
    }
}

/// IPIs hardware thread `thread` of `core` (not the caller itself).
fn kick_thread(core: usize, thread: usize) {
    let me = crate::cpus::me();
    match crate::cpus::thread_at(core, thread) {
        Some(t) if t.id != me.id => crate::cpus::smp().kick(me, t),
        _ => {}
    }
}

/// A guest partition: its state under one lock (taken to prepare an
/// entry and to handle an exit, never while a vcpu runs or naps), the
/// state shared lock-free between the threads that run it, and its
/// vcpus, each owned by the thread running it meanwhile.
pub struct Vm {
    st: spin::Mutex<VmState>,
    /// Held by the thread writing the VM's console output (one at a
    /// time, so output stays in order).
    console_writer: spin::Mutex<()>,
    sh: Arc<Shared>,
    /// Boxed: a vcpu moves between its slot and the thread running it
    /// as a pointer, not as a copy of its 2 KiB of registers.
    vcpus: Vec<spin::Mutex<Option<Box<Vcpu>>>>,
    pub name: String,
    pub id: usize,
}

/// One virtual processor: registers and the state PAPR keeps per vcpu
/// that only its own thread touches.
struct Vcpu {
    id: u32,
    regs: GuestRegs,
    /// FP/VMX/VSX registers while the vcpu is not on a thread.
    fp: ppc64::fpu::FpState,
    /// Timebase value at which the guest decrementer reaches zero.
    dec_expires: Option<u64>,
    /// In H_CEDE (kept across vcore runs until the cede ends).
    ceded: bool,
    /// Why it is not running, until it is dispatched again (its VPA's
    /// yield count is odd meanwhile).
    undispatched: Option<Undispatched>,
    /// Its last cede: how late it woke (ticks) and why (DTL reason).
    cede_late: u64,
    wake_reason: u8,
    /// Physical core its thread is on (for TLB accounting).
    core: usize,
    /// Since when it could run guest code and has not (None: in the
    /// guest, ceded or stopped).
    ready_since: Option<u64>,
    /// Its dispatch figures for the stop report.
    dispatch: Dispatch,
    /// Exits handled without the VM's lock ([`exit_needs_vm`]), added to
    /// the VM's count when the vcpu leaves its thread.
    quick_exits: u64,
    /// (guest address, vector) of the interrupt last delivered by
    /// reflection: a fault at that address means the guest has no handler
    /// there (the VM stops instead of faulting forever).
    last_vector: Option<(u64, u64)>,
    /// Hypercalls counted on the fast path during a run (zero between
    /// runs), boxed so a run takes it without copying.
    tally: Option<Box<table::Tally>>,
    /// Edge interrupts of VMs its frames reached, raised once the VM's
    /// lock is released (`net::raise_edges`).
    raise: Vec<(Arc<Vm>, u32)>,
}

impl Vcpu {
    fn new(id: u32, regs: GuestRegs) -> Self {
        Vcpu {
            id,
            regs,
            fp: Default::default(),
            dec_expires: None,
            ceded: false,
            undispatched: None,
            cede_late: 0,
            wake_reason: 0,
            core: 0,
            ready_since: None,
            dispatch: Dispatch::default(),
            quick_exits: 0,
            last_vector: None,
            tally: Some(Box::default()),
            raise: Vec::new(),
        }
    }

    /// RTAS `start-cpu`: as QEMU's pseries starts a cpu, 64-bit real mode,
    /// big-endian, machine checks on, at `pc` with `r3`.
    fn start_at(&mut self, pc: u64, r3: u64) {
        self.regs.pc = pc;
        self.regs.gpr[3] = r3;
        self.regs.msr = spr::MSR_SF | spr::MSR_ME;
        self.regs.dec = spr::DEC_MAX;
        self.dec_expires = None;
        self.ceded = false;
        self.last_vector = None;
    }
}

impl Vm {
    /// Prepares a VM; nothing is left behind on failure. Its adapters
    /// join their LANs (frames reach it from now on).
    pub fn create(cfg: &VmConfig<'static>, cores: usize, id: usize) -> Result<Arc<Vm>, VmError> {
        let layout = cfg.layout;
        let (st, boot) = VmState::create(cfg, cores, id)?;
        let sh = st.sh.clone();
        let vcpus = (0..layout.vcpus)
            .map(|i| {
                // Vcpu 0 starts at the entry point, the others stopped
                // until the guest starts them (RTAS start-cpu).
                sh.vcpus[i as usize]
                    .stopped
                    .store(i != 0, Ordering::Release);
                let regs = if i == 0 { boot } else { GuestRegs::default() };
                spin::Mutex::new(Some(Box::new(Vcpu::new(i, regs))))
            })
            .collect();
        sh.mmu_ready.store(true, Ordering::SeqCst);
        Ok(Arc::new_cyclic(|me| {
            for (unit, lan) in &sh.lans {
                lan.join(me.clone(), id, *unit);
            }
            Vm {
                name: st.name.clone(),
                id,
                st: spin::Mutex::new(st),
                console_writer: spin::Mutex::new(()),
                sh,
                vcpus,
            }
        }))
    }

    pub fn vcores(&self) -> u32 {
        self.sh.layout.vcores()
    }

    /// Whether the scheduler should put vcore `index` on a core: some
    /// vcpu of it has been started (stopped ones wait for start-cpu).
    pub fn vcore_wants_core(&self, index: u32) -> bool {
        let l = self.sh.layout;
        kernel::vcore::wants_core((0..l.threads).filter_map(|t| l.vcpu(index, t)).map(|id| {
            let shv = &self.sh.vcpus[id as usize];
            // Exits are handled on the vcpu's thread within the vcore run,
            // so no vcpu is ever busy in the hypervisor off its vcore.
            if shv.stopped.load(Ordering::Acquire) {
                VcpuState::Stopped
            } else {
                VcpuState::Runnable
            }
        }))
    }

    /// The event has been posted (the scheduler's lock orders it against
    /// vcores being put on cores): everything running leaves.
    pub fn begin_leaving(&self) {
        self.sh.leaving.store(true, Ordering::Release);
        self.sh.kick_all();
    }

    /// With every vcpu out (no vcore on a core): the reset
    /// `system-reboot` asked for. The VM stops if it fails.
    pub fn reboot(&self) -> Result<(), VmError> {
        let mut st = self.st.lock();
        st.save_nvram();
        self.sh.mmu_ready.store(false, Ordering::SeqCst);
        st.reboot(self.sh.running.load(Ordering::SeqCst))?;
        for (i, slot) in self.vcpus.iter().enumerate() {
            let shv = &self.sh.vcpus[i];
            shv.stopped.store(i != 0, Ordering::Release);
            *shv.start.lock() = None;
            *shv.vpa.lock() = Vpa::default();
            // The CedeState word: a fresh one (nothing ceded or prodded).
            shv.cede.reset();
            let regs = if i == 0 {
                st.boot_regs
            } else {
                GuestRegs::default()
            };
            *slot.lock() = Some(Box::new(Vcpu::new(i as u32, regs)));
        }
        for vc in &self.sh.vcores {
            vc.dpdes.store(0, Ordering::Release);
        }
        drop(st);
        self.sh.leaving.store(false, Ordering::Release);
        self.sh.mmu_ready.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Sets a device's XICS line `irq` (under the VM's lock, which the
    /// caller does not hold) and wakes the vcpus that concern.
    pub(super) fn set_line(&self, irq: u32, high: bool) {
        let mut st = self.st.lock();
        let k = st.svc.xics.set_line(irq, high);
        let sh = &self.sh;
        st.svc.kick(&sh.vcpus, k, |s| sh.kick_vcpu(s));
    }

    /// Prints the stop line and returns every resource. The scheduler
    /// calls it once, with every vcore off the cores and out of the queue.
    pub fn finish(&self, outcome: &Outcome) {
        {
            let mut st = self.st.lock();
            st.flush_raw();
            st.save_nvram();
        }
        // Its devices at rest: a disk's cache written back to flash.
        self.sh.vio.reset();
        self.write_console();
        self.print_dispatch();
        // Off its LANs before its memory is freed (net.rs).
        for (_, lan) in &self.sh.lans {
            lan.leave(self.id);
        }
        let mut st = self.st.lock();
        RUNNING.lock().retain(|(i, _)| *i != self.id);
        if owns_console(st.id) {
            pass_console_on(self.id);
        }
        st.destroy(outcome);
    }

    /// The stop report's dispatch line: every vcpu's waits together.
    fn print_dispatch(&self) {
        let mut all = Dispatch::default();
        for slot in &self.vcpus {
            if let Some(v) = slot.lock().as_ref() {
                all.merge(&v.dispatch);
            }
        }
        let us = |ticks: u64| ticks * 1000 / kernel::time::ticks_per_ms().max(1);
        let (ready, rv) = all.ready.max();
        let (wake, wv) = all.wake.max();
        info!(
            target: "dispatch",
            "vm {}: ready -> in the guest: max={} us (vcpu {rv}) p99={} us ({} dispatches); ceded past its wake-up: max={} us (vcpu {wv}) p99={} us ({} wakes); {} preemptions",
            self.name,
            us(ready),
            us(all.ready.percentile(99)),
            all.ready.samples(),
            us(wake),
            us(all.wake.percentile(99)),
            all.wake.samples(),
            all.preemptions
        );
    }
}

impl VmState {
    /// This VM's memory: bounds-checked copies in and out, while its
    /// vcpus may run and write it (kernel::gmem).
    fn mem(&self) -> GuestMemory<'_> {
        // SAFETY: `mem_base..mem_base+mem_size` is this VM's own RAM
        // (allocated in `create`, freed only in `destroy`, after which no
        // `VmState` method runs), identity-mapped in real mode; outside
        // creation and reboot (no vcpu runs then) the firmware never makes
        // a reference to it.
        unsafe { GuestMemory::from_raw(self.mem_base as *mut u8, self.mem_size) }
    }

    /// Adds what a vcpu's thread counted on the fast path.
    fn add_tally(&mut self, t: &table::Tally) {
        // Every fast-path hypercall was one exit.
        self.exits += t.hcalls();
        self.svc.counts.add(t);
    }

    /// Keeps the NVRAM in flash if the guest stored into it since (no
    /// vcpu runs: the VM is stopping or rebooting).
    fn save_nvram(&mut self) {
        if core::mem::take(&mut self.svc.nvram_dirty) {
            crate::nvstore::save(&self.name, &self.svc.nvram);
        }
    }
}
