//! Guest partitions on the firmware: creation (LPID, memory, HPT, VRMA,
//! image, device tree), the run loop on thread 0 of a core, and the
//! hypercalls guests use.

use crate::mem::{HPT_POOL, PAGES};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use kernel::deliver::{self, External, InterruptMode};
use kernel::dispatch::Dispatch;
use kernel::fwnmi::{self, Cause, Fwnmi, Refused};
use kernel::gmem::GuestMemory;
use kernel::guestfdt::{self, GuestFdtConfig};
use kernel::hcall::{self, Hcall, HptCall, H_PARAMETER, H_SUCCESS};
use kernel::hpt::{self, Hpt, HptMemory};
use kernel::layout::{self, LayoutError};
use kernel::lpid::LpidAllocator;
use kernel::mode::{self, ModeChange};
use kernel::rtas::{self, Service};
use kernel::smp::{CpuState, ThreadMode};
use kernel::tlb::{TlbOps, VmTlb};
use kernel::vcore::{Cede, CedeState, EntryExit, JoinWatch, Late, Layout, VcpuState, MAX_THREADS};
use kernel::vpa::{self, Undispatched, Vpa};
use kernel::vterm::{self, Typed, Vterm};
use kernel::xics::{Xics, XicsError};
use log::{info, warn};
use ppc64::cpu;
use ppc64::guest;
use ppc64::hpte::{self, HptOrder, PageSize};
use ppc64::regs::{self, Exit, ExitScope, GuestRegs, HcallPath, PartitionRegs, VcpuEntry};
use ppc64::spr;
use ppc64::trap::vector;

/// `ibm,hypertas-functions`: the PAPR function sets implemented
/// (splpar: H_CEDE, H_PROD, H_CONFER, H_REGISTER_VPA; interrupt: the XICS
/// hypercalls; bulk: H_BULK_REMOVE; sprg0, copy: H_SET_SPRG0, H_PAGE_INIT).
const HYPERTAS_FUNCTIONS: &[&str] = &[
    "hcall-pft",
    "hcall-term",
    "hcall-interrupt",
    "hcall-splpar",
    "hcall-bulk",
    "hcall-set-mode",
    "hcall-sprg0",
    "hcall-copy",
];

/// How often a VM that owns the console polls it while it idles.
const CONSOLE_POLL_MS: u64 = 10;
/// Cores whose threads' joins are watched, as many as the scheduler's
/// idle mask (a u64) knows.
const MAX_CORES: usize = 64;

/// Each physical core's watch over its threads' answers to thread 0
/// (a hung thread is the core's, whichever vcore asked it).
static CORE_JOINS: [JoinWatch; MAX_CORES] = [const { JoinWatch::new() }; MAX_CORES];

fn core_joins(core: usize) -> &'static JoinWatch {
    &CORE_JOINS[core % MAX_CORES]
}

/// The guest time slice (HDEC).
const SLICE_MS: u64 = 10;

/// Id (creation order) of the VM that owns the serial console.
static CONSOLE_OWNER: AtomicUsize = AtomicUsize::new(0);
/// (id, name) of the VMs running now: where Ctrl-] n can move the console.
static RUNNING: spin::Mutex<Vec<(usize, String)>> = spin::Mutex::new(Vec::new());

/// A VM's console output for the serial console: raw for the owner, else
/// one log line each, prefixed with the VM's name.
enum ConsoleOut {
    Raw(Vec<u8>),
    Line(String),
}

/// Where a VM's console output goes under the VM's lock: a queue
/// ([`Vm::write_console`] writes it out without the lock, because an
/// OPAL console write can take long and every exit of every vcpu of the
/// VM may need the lock meanwhile).
struct ConsoleSink<'a> {
    out: &'a mut Vec<ConsoleOut>,
    queued: &'a AtomicBool,
}

impl vterm::Sink for ConsoleSink<'_> {
    fn raw(&mut self, bytes: &[u8]) {
        match self.out.last_mut() {
            Some(ConsoleOut::Raw(r)) => r.extend_from_slice(bytes),
            _ => self.out.push(ConsoleOut::Raw(bytes.to_vec())),
        }
        self.queued.store(true, Ordering::Release);
    }
    fn line(&mut self, line: &str) {
        self.out.push(ConsoleOut::Line(String::from(line)));
        self.queued.store(true, Ordering::Release);
    }
}

/// The firmware's HPT memory: page allocator and preallocated pool.
struct FirmwareHptMemory;

impl HptMemory for FirmwareHptMemory {
    fn alloc_pages(&mut self, order: u32) -> Option<u64> {
        if !crate::churn::may_allocate("HPT from the page allocator") {
            return None;
        }
        PAGES.lock().alloc_order(order)
    }
    fn free_pages(&mut self, addr: u64, order: u32) {
        PAGES.lock().free_order(addr, order)
    }
    fn pool_order(&self) -> Option<u32> {
        HPT_POOL
            .get()
            .map(|p| p.lock())
            .filter(|p| p.slots() > 0)
            .map(|p| p.order())
    }
    fn pool_alloc(&mut self) -> Option<u64> {
        if !crate::churn::may_allocate("HPT pool slot") {
            return None;
        }
        let mut pool = HPT_POOL.get()?.lock();
        let order = pool.order();
        pool.alloc(order)
    }
    fn pool_free(&mut self, addr: u64) {
        if let Some(p) = HPT_POOL.get() {
            let _ = p.lock().free(addr);
        }
    }
    fn zero(&mut self, addr: u64, len: u64) {
        // SAFETY: `addr..addr+len` was just allocated for this HPT (or it
        // is being reset with no vcpu running) and is RAM that nothing
        // else references (real mode: identity mapped).
        unsafe { cpu::zero_real(addr, len) };
    }
}

/// Entry-time TLB flush: only records that the asm must flush.
struct EntryFlush(bool);
impl TlbOps for EntryFlush {
    fn local(&mut self, _: u32, _: u64) {}
    fn global(&mut self, _: u32, _: u64) {}
    fn flush_lpid_here(&mut self, _: u32) {
        self.0 = true;
    }
}

/// TLB invalidations of hypercalls, on POWER8.
struct Power8Tlb;
impl TlbOps for Power8Tlb {
    fn local(&mut self, lpid: u32, rb: u64) {
        // Hypercalls run in the caller's partition, so tlbiel (which acts
        // on the loaded LPID) hits the right one; were another loaded, a
        // tlbie for this LPID is still correct.
        if cpu::lpidr() == u64::from(lpid) {
            cpu::tlbiel(rb);
        } else {
            cpu::tlbie_lpid(lpid as u64, rb);
        }
    }
    fn global(&mut self, lpid: u32, rb: u64) {
        cpu::tlbie_lpid(lpid as u64, rb);
    }
    fn flush_lpid_here(&mut self, _: u32) {
        // Whole-LPID flushes happen in the entry asm (PartitionRegs::flush_tlb).
    }
    fn local_batch(&mut self, lpid: u32, rbs: &[u64]) {
        if cpu::lpidr() == u64::from(lpid) {
            cpu::tlbiel_batch(rbs);
        } else {
            cpu::tlbie_lpid_batch(lpid as u64, rbs);
        }
    }
    fn global_batch(&mut self, lpid: u32, rbs: &[u64]) {
        cpu::tlbie_lpid_batch(lpid as u64, rbs);
    }
}

/// Why a VM could not be created or rebooted.
#[derive(Debug)]
pub enum VmError {
    /// Guest memory must be a non-zero multiple of the VRMA page.
    MemorySize(u64),
    /// No contiguous block of this many MiB.
    NoMemory(u64),
    Hpt(hpt::HptError),
    Image(kernel::elf::ElfError),
    Layout(layout::LayoutError),
    Lpid(kernel::lpid::LpidError),
    Vrma(u64, hpte::VrmaError),
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmError::MemorySize(m) => write!(
                f,
                "memory must be a non-zero multiple of 16 MiB, not {m:#x}"
            ),
            VmError::NoMemory(mib) => write!(f, "no {mib} MiB of contiguous memory"),
            VmError::Hpt(e) => write!(f, "{e}"),
            VmError::Image(e) => write!(f, "image: {e}"),
            VmError::Layout(LayoutError::InitrdTooBig(len)) => {
                write!(
                    f,
                    "initrd of {} KiB does not fit in guest memory",
                    len / 1024
                )
            }
            VmError::Lpid(e) => write!(f, "LPID: {e}"),
            VmError::Layout(LayoutError::NoRoomForDeviceTree) => {
                write!(f, "no room for the device tree above the image")
            }
            VmError::Vrma(page, e) => write!(f, "VRMA page {page}: {e:?}"),
        }
    }
}

/// How a VM ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Crashed(String),
    /// Stopped from the console (Ctrl-] x).
    Stopped,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => write!(f, "result=ok"),
            Outcome::Crashed(why) => write!(f, "result=crashed reason=\"{why}\""),
            Outcome::Stopped => write!(f, "result=stopped reason=\"Ctrl-] x on the console\""),
        }
    }
}

/// Everything of a VM but its vcpus: what exit handlers share.
struct VmState {
    pub name: String,
    pub lpid: u32,
    mem_base: u64,
    mem_order: u32,
    mem_size: u64,
    pub hpt: Hpt,
    /// Interrupt endianness and location (H_SET_MODE: LPCR[ILE], [AIL]).
    irq_mode: InterruptMode,
    /// What the threads running its vcpus share (layout, per-vcpu wake
    /// state, vcores).
    sh: Arc<Shared>,
    /// Interrupt controller: one ICP per vcpu, the vty's source.
    xics: Xics,
    /// The vty: output lines (the last one is a guest panic's reason),
    /// the console owner's unfinished line, typed input.
    term: Vterm,
    /// Creation order (console ownership).
    id: usize,
    /// Seconds added to the host's clock (set-time-of-day).
    tod_offset: i64,
    /// `ibm,nmi-register` and the machine-check log interlock.
    fwnmi: Fwnmi,
    /// Its NVRAM (RTAS nvram-fetch/-store), kept across reboots, and in
    /// flash (crate::nvstore) when it stops or reboots after a store.
    nvram: Vec<u8>,
    nvram_dirty: bool,
    hcalls: u64,
    /// Unimplemented hypercall numbers, for the stop report.
    unknown_counts: hcall::UnknownCounts,
    /// RTAS calls by service (index into `rtas::SERVICES`).
    rtas_counts: [u64; rtas::SERVICES.len()],
    /// Implemented hypercalls by table index (no map lookup on the
    /// hypercall path); `unknown_counts` and `rtas_counts` the others.
    known_counts: [u64; hcall::IMPLEMENTED],
    /// `sc 1` from guest user space, refused.
    privileged: u64,
    /// Console output made under the lock, written without it.
    console_out: Vec<ConsoleOut>,
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

/// A vcpu's state that other vcpus change while it may run elsewhere.
#[derive(Default)]
struct VcpuShared {
    /// H_PROD / H_CEDE handshake (a prod before the cede is kept).
    cede: CedeState,
    /// Stopped (never started, or `stop-self`): its thread naps in the
    /// vcore until RTAS `start-cpu`.
    stopped: AtomicBool,
    /// `start-cpu`'s (entry, r3), applied by the thread that runs the
    /// vcpu next; the lock also orders start-cpu against stop-self.
    start: spin::Mutex<Option<(u64, u64)>>,
    /// H_REGISTER_VPA registrations (any vcpu may register for another).
    vpa: spin::Mutex<Vpa>,
    /// Timebase of the first interrupt or prod sent to the vcpu since it
    /// last ceded, 0 if none (how late a ceded vcpu woke: kernel::dispatch).
    kicked: AtomicU64,
    /// Its ICP presents an interrupt: a copy of `VmState::xics` made under
    /// the VM's lock by every change (`VmState::sync_presented`), before
    /// the vcpu is kicked, so its thread checks for interrupts without
    /// the lock (a stale `false` is followed by the kick's IPI, a stale
    /// `true` costs a look under the lock).
    presented: AtomicBool,
}

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

/// What the HPT hypercalls work on, fixed when the VM is made: every
/// thread running the VM's vcpus uses it without the VM's lock (each HPTE
/// is changed under its own lock, kernel::hcall).
struct GuestMmu {
    hpt_base: u64,
    /// HPTEs in the table (16 bytes each).
    hpt_entries: u64,
    mem_base: u64,
    mem_size: u64,
    tlb: VmTlb,
}

impl GuestMmu {
    /// The HPT hypercalls' view of this VM from `core`, where its vcpu
    /// runs.
    fn partition(&self, core: usize) -> hcall::Partition<'_> {
        // SAFETY: the HPT belongs to this VM alone and lives as long as
        // it; its entries are only changed under their HPTE lock
        // (kernel::hcall), by atomic accesses, so vcpus on several threads
        // may share it.
        let table = unsafe {
            core::slice::from_raw_parts(
                self.hpt_base as *const [core::sync::atomic::AtomicU64; 2],
                self.hpt_entries as usize,
            )
        };
        hcall::Partition {
            hpt: table,
            mem_base: self.mem_base,
            mem_size: self.mem_size,
            tlb: &self.tlb,
            core,
            running_here: true,
        }
    }
}

/// HPT hypercall `op` on `p`, with its arguments in `g[4..]` and its
/// return code written to `g[3]` and its results after it: only the
/// registers PAPR defines for the call's results (H_ENTER: r4; H_REMOVE,
/// H_READ: r4-r5, or r4-r11 with H_READ_4; H_CLEAR_REF/MOD: r4;
/// H_BULK_REMOVE: r4-r11 in place; H_PROTECT: none). Each call has its
/// own out-of-line function, so each pays only for its own registers.
#[inline(always)]
fn hpt_hcall(p: &hcall::Partition, op: HptCall, g: &mut [u64; 32]) -> HcallPath {
    match op {
        HptCall::Enter => hpt_enter(p, g),
        HptCall::Remove => hpt_remove(p, g),
        HptCall::Read if g[4] & hcall::H_READ_4 != 0 => hpt_read_4(p, g),
        HptCall::Read => hpt_read(p, g),
        HptCall::Protect => hpt_protect(p, g),
        HptCall::ClearRef => hpt_clear(p, g, true),
        HptCall::ClearMod => hpt_clear(p, g, false),
        HptCall::BulkRemove => hpt_bulk_remove(p, g),
    }
}

/// Orders the HPTE updates before the guest runs again.
#[inline(always)]
fn ptesync() {
    // SAFETY: an ordering instruction only.
    unsafe { core::arch::asm!("ptesync", options(nostack, preserves_flags)) };
}

/// The end of every HPT call: its return code in r3.
#[inline(always)]
fn answered(g: &mut [u64; 32], code: i64) -> HcallPath {
    g[3] = code as u64;
    HcallPath::Resumed
}

#[inline(never)]
fn hpt_enter(p: &hcall::Partition, g: &mut [u64; 32]) -> HcallPath {
    let r = p.h_enter(g[4], g[5], g[6], g[7]);
    ptesync();
    g[4] = r.vals[0];
    answered(g, r.code)
}

#[inline(never)]
fn hpt_remove(p: &hcall::Partition, g: &mut [u64; 32]) -> HcallPath {
    let r = p.h_remove(&mut Power8Tlb, g[4], g[5], g[6]);
    ptesync();
    (g[4], g[5]) = (r.vals[0], r.vals[1]);
    answered(g, r.code)
}

#[inline(never)]
fn hpt_read(p: &hcall::Partition, g: &mut [u64; 32]) -> HcallPath {
    let r = p.h_read_1(g[5]);
    if r.code == hcall::H_SUCCESS {
        (g[4], g[5]) = (r.vals[0], r.vals[1]);
    }
    answered(g, r.code)
}

#[inline(never)]
fn hpt_read_4(p: &hcall::Partition, g: &mut [u64; 32]) -> HcallPath {
    let r = p.h_read_4(g[5]);
    if r.code == hcall::H_SUCCESS {
        g[4..12].copy_from_slice(&r.vals);
    }
    answered(g, r.code)
}

#[inline(never)]
fn hpt_protect(p: &hcall::Partition, g: &mut [u64; 32]) -> HcallPath {
    let r = p.h_protect(&mut Power8Tlb, g[4], g[5], g[6]);
    ptesync();
    answered(g, r.code)
}

#[inline(never)]
fn hpt_clear(p: &hcall::Partition, g: &mut [u64; 32], reference: bool) -> HcallPath {
    let r = if reference {
        p.h_clear_ref(&mut Power8Tlb, g[5])
    } else {
        p.h_clear_mod(&mut Power8Tlb, g[5])
    };
    ptesync();
    g[4] = r.vals[0];
    answered(g, r.code)
}

#[inline(never)]
fn hpt_bulk_remove(p: &hcall::Partition, g: &mut [u64; 32]) -> HcallPath {
    let code = match g[4..].first_chunk_mut::<8>() {
        Some(regs) => p.h_bulk_remove_in_place(&mut Power8Tlb, regs),
        None => hcall::H_PARAMETER, // r4-r11 are always there
    };
    ptesync();
    answered(g, code)
}

/// What every thread running a VM's vcpus shares without the VM's lock.
struct Shared {
    layout: Layout,
    mmu: GuestMmu,
    vcpus: Vec<VcpuShared>,
    vcores: Vec<Vcore>,
    /// A `VmEvent` is pending (the scheduler holds the event itself).
    leaving: AtomicBool,
    /// Vcores in the guest partition now; an HPT reset is refused unless 0.
    running: AtomicU32,
    /// HPT and VRMA set up: entries are gated on it (ordered against
    /// `running`, so a reset never races an entry).
    mmu_ready: AtomicBool,
    /// Console output is queued in `VmState::console_out`.
    console_queued: AtomicBool,
    /// The owner's unfinished line waits in the vty for a flush.
    raw_held: AtomicBool,
    /// The LPCR bits of the guest's interrupt mode (ILE, AIL), kept with
    /// `VmState::irq_mode` so an entry needs no lock.
    irq_lpcr: AtomicU64,
    /// Timebase at which the console owner next reads the serial console.
    next_poll: AtomicU64,
}

impl Shared {
    fn new(layout: Layout, mmu: GuestMmu) -> Self {
        Shared {
            layout,
            mmu,
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
            crate::sched::wake_idle();
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

    fn all_stopped(&self) -> bool {
        self.vcpus.iter().all(|v| v.stopped.load(Ordering::Acquire))
    }
}

/// IPIs hardware thread `thread` of `core` (not the caller itself).
fn kick_thread(core: usize, thread: usize) {
    let me = crate::smp::me();
    match crate::smp::thread_at(core, thread) {
        Some(t) if t.id != me.id => crate::smp::smp().kick(me, t),
        _ => {}
    }
}

/// Work thread 0 posts in a secondary's hypervisor-state block: join run
/// `run` of vcore `vcore` of `vm`.
pub struct Join {
    pub vm: Arc<Vm>,
    pub vcore: u32,
    pub run: u32,
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

impl Vm {
    /// Prepares a VM; nothing is left behind on failure.
    pub fn create(cfg: &VmConfig<'static>, cores: usize, id: usize) -> Result<Vm, VmError> {
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
        Ok(Vm {
            name: st.name.clone(),
            id,
            st: spin::Mutex::new(st),
            console_writer: spin::Mutex::new(()),
            sh,
            vcpus,
        })
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

    /// Runs vcore `index` on this thread, thread 0 of its core, for one
    /// time slice or until it must leave: switches the partition, wakes
    /// the secondaries (each finds its work in its hypervisor-state block
    /// and enters its own vcpu), runs virtual thread 0, and switches back
    /// once every thread that entered has left and saved its vcpu.
    pub fn run_vcore(self: &Arc<Self>, index: u32, me: &CpuState) {
        let vc = &self.sh.vcores[index as usize];
        let smp = crate::smp::smp();
        // One partition per core at a time: its LPIDR/SDR1 are the
        // core's on POWER8.
        if cpu::lpidr() != u64::from(kernel::lpid::HOST_LPID) {
            let why = alloc::format!(
                "core {} already has partition {} loaded",
                me.core,
                cpu::lpidr()
            );
            crate::sched::post_event(self, VmEvent::Stop(Outcome::Crashed(why)));
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
            let Some(t) = crate::smp::thread_at(me.core, ptid) else {
                break;
            };
            let job = Box::new(crate::sched::Work::Join(Join {
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
                drop(unsafe { Box::from_raw(token as *mut crate::sched::Work) });
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
            crate::sched::post_event(self, VmEvent::Stop(Outcome::Crashed(why)));
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
                drop(unsafe { Box::from_raw(*token as *mut crate::sched::Work) });
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
    fn report_late_threads(&self, index: u32, vc: &Vcore, me: &CpuState, ms: u64) {
        let inside = vc.ee.still_in();
        for t in (0..8).filter(|t| inside & (1 << t) != 0) {
            if let Some(c) = crate::smp::thread_at(me.core, t) {
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
    fn late_join(&self, vc: &Vcore, me: &CpuState, t: usize, late: Late) {
        let Some(c) = crate::smp::thread_at(me.core, t) else {
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
                crate::sched::post_event(self, VmEvent::Stop(Outcome::Crashed(why)));
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
    fn leave(&self, vc: &Vcore, ptid: u32, me: &CpuState) {
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

    fn must_leave(&self, vc: &Vcore) -> bool {
        vc.ee.exiting() || self.sh.leaving.load(Ordering::Acquire)
    }

    /// Runs virtual thread `ptid` of `vc` on this thread until the vcore
    /// leaves: every exit handled on the thread goes straight back into
    /// the guest, without a partition switch or an SLB save and load.
    fn vcpu_thread(&self, vc: &Vcore, ptid: u32, me: &CpuState, host_lpcr: u64) {
        let Some(id) = self.sh.layout.vcpu(vc.index, ptid) else {
            return;
        };
        let Some(mut v) = self.vcpus[id as usize].lock().take() else {
            let why = alloc::format!("vcpu {id} is already running");
            crate::sched::post_event(self, VmEvent::Stop(Outcome::Crashed(why)));
            return;
        };
        v.core = me.core;
        // The vcpu's own counts, moved out of it (a pointer) for the run.
        let mut tally = v.tally.take().unwrap_or_default();
        let mut fast = FastCtx {
            part: self.sh.mmu.partition(me.core),
            tally: &mut tally,
        };
        // The thread's FP/VMX/VSX registers become this vcpu's, saved
        // again when it leaves: no other partition ever sees them.
        ppc64::fpu::load(&v.fp);
        guest::slb_load(&v.regs);
        me.hv.set_mode(ThreadMode::InHost);
        self.vcpu_loop(&mut v, vc, me, host_lpcr, core::ptr::addr_of_mut!(fast));
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
                st.undispatch(v.id);
            }
        }
        // Zeroed here, on the way out, not on the way in.
        *tally = hcall::Tally::default();
        v.tally = Some(tally);
        me.hv.set_mode(ThreadMode::Idle);
        *self.vcpus[id as usize].lock() = Some(v);
    }

    /// `fast` is what the hypercall fast path gets with every entry.
    fn vcpu_loop(
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
        loop {
            if self.must_leave(vc) {
                return;
            }
            if shv.stopped.load(Ordering::Acquire) {
                if !self.block(v, vc, me, Block::Stopped) {
                    return;
                }
                take_start(v);
                stopped_itself = false;
                continue;
            }
            if core::mem::take(&mut stopped_itself) {
                take_start(v);
            }
            if v.ceded && !self.block(v, vc, me, Block::Ceded) {
                return;
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
            let mut entry = self.prepare_entry(v, host_lpcr, vc.deadline.load(Ordering::Acquire));
            entry.hcall_ctx = fast as u64;
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
            crate::stackguard::check();
            let exit = Exit::decode(vec);
            let next = if exit_needs_vm(exit) {
                let mut st = self.st.lock();
                let next = st.handle_exit(v, exit, vec);
                // The exit may have changed its own ICP (H_XIRR, H_EOI,
                // H_CPPR) without a kick.
                st.sync_presented(v.id);
                next
            } else {
                v.quick_exits += 1;
                Next::Resume
            };
            if exit == Exit::External {
                // An IPI for this thread: run any call it brought.
                crate::smp::external_exit();
            }
            // Output an exit queued goes out now; the owner's input is
            // read on time-slice exits (at least every SLICE_MS) and
            // while a vcpu naps.
            if exit == Exit::Hdec {
                self.console_service();
            } else if self.sh.console_queued.load(Ordering::Acquire) {
                self.write_console();
            }
            match next {
                // An exit that concerns the whole vcore (regs::Exit::scope):
                // at the slice's end it leaves if another vcore waits.
                Next::Resume if exit.scope() == ExitScope::Vcore => {
                    if self.slice_over(vc, me) {
                        return;
                    }
                }
                Next::Yield => {
                    if crate::sched::others_waiting() {
                        return;
                    }
                }
                Next::Stopped => {
                    stopped_itself = true;
                    v.ready_since = None;
                }
                Next::Resume => {}
                Next::Cede => {
                    // (Its yield count went odd in the H_CEDE handler.)
                    v.ceded = true;
                    v.undispatched = Some(Undispatched::Ceded);
                    v.ready_since = None;
                }
                Next::Reboot => crate::sched::post_event(self, VmEvent::Reboot),
                Next::Stop(o) => crate::sched::post_event(self, VmEvent::Stop(o)),
            }
        }
    }

    /// What the next entry of `v` loads: the interrupt it takes now (or
    /// MER), this VM's LPCR, what is left of the vcore's time slice (HDEC
    /// is core-wide: every thread loads the same deadline), the guest's
    /// decrementer. The VM's lock only when an interrupt is presented.
    fn prepare_entry(&self, v: &mut Vcpu, host_lpcr: u64, deadline: u64) -> VcpuEntry {
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
        }
    }

    /// Whether a ceded `v` on hardware thread `thread` must wake: prodded,
    /// an interrupt presented, a doorbell pending (DPDES), or its
    /// decrementer expired. No lock: each condition is its own word.
    fn cede_ends(&self, v: &Vcpu, thread: usize) -> bool {
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
    fn record_wait(&self, v: &mut Vcpu, what: Wait, ticks: u64) {
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
    fn dispatched(&self, v: &Vcpu, after: Undispatched, ready: u64, me: &CpuState) {
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
        let mut st = self.st.lock();
        self.sh.vcpus[v.id as usize]
            .vpa
            .lock()
            .dispatched(&mut st.mem(), &d);
    }

    /// The time slice has ended: true when the vcore must give the core
    /// to a waiting vcore, else the slice is renewed. Thread 0 also
    /// watches the threads it asked to join, at least once a slice.
    fn slice_over(&self, vc: &Vcore, me: &CpuState) -> bool {
        let now = cpu::mftb();
        if now < vc.deadline.load(Ordering::Acquire) {
            return false;
        }
        if me.thread == 0 {
            core_joins(me.core).check(now, kernel::time::ticks_per_ms(), |t, late| {
                self.late_join(vc, me, t, late)
            });
        }
        if crate::sched::others_waiting() {
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
    fn block(&self, v: &mut Vcpu, vc: &Vcore, me: &CpuState, why: Block) -> bool {
        let smp = crate::smp::smp();
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

    /// Prints the stop line and returns every resource. The scheduler
    /// calls it once, with every vcore off the cores and out of the queue.
    pub fn finish(&self, outcome: &Outcome) {
        {
            let mut st = self.st.lock();
            st.flush_raw();
            st.save_nvram();
        }
        self.write_console();
        self.print_dispatch();
        let mut st = self.st.lock();
        RUNNING.lock().retain(|(i, _)| *i != self.id);
        if owns_console(st.id) {
            pass_console_on(self.id);
        }
        st.destroy(outcome);
    }

    /// The VM's console work, done without its lock on time-slice exits
    /// and after every nap: writes out the output its
    /// vcpus queued, and while it owns the serial console (at most every
    /// CONSOLE_POLL_MS, whichever vcpu comes first) shows its unfinished
    /// line and reads what was typed; Ctrl-] x stops the VM.
    fn console_service(&self) {
        if self.sh.console_queued.load(Ordering::Acquire) {
            self.write_console();
        }
        if !owns_console(self.id) {
            return;
        }
        let now = cpu::mftb();
        let poll = self.sh.next_poll.load(Ordering::Relaxed);
        let every = kernel::time::ms_to_ticks(CONSOLE_POLL_MS);
        if now < poll
            || self
                .sh
                .next_poll
                .compare_exchange(poll, now + every, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let mut buf = [0u8; 64];
        let n = ppc64::opal::console_read(&mut buf);
        if n == 0 && !self.sh.raw_held.load(Ordering::Acquire) {
            return;
        }
        let stop = {
            let mut st = self.st.lock();
            st.flush_raw();
            n != 0 && st.typed(&buf[..n])
        };
        if stop {
            crate::sched::post_event(self, VmEvent::Stop(Outcome::Stopped));
        }
        self.write_console();
    }

    /// Writes the console output queued under the VM's lock, in order,
    /// without the lock: one writer at a time; a thread that finds
    /// another writing leaves its output to it.
    fn write_console(&self) {
        loop {
            // Pairs with the fence below: a producer that fails to take
            // the writer's lock has its `console_queued` seen by the
            // writer's last look (store-buffer order needs SeqCst).
            core::sync::atomic::fence(Ordering::SeqCst);
            {
                let Some(_writer) = self.console_writer.try_lock() else {
                    return;
                };
                loop {
                    let out = {
                        let mut st = self.st.lock();
                        self.sh.console_queued.store(false, Ordering::Release);
                        core::mem::take(&mut st.console_out)
                    };
                    if out.is_empty() {
                        break;
                    }
                    for o in out {
                        match o {
                            ConsoleOut::Raw(b) => crate::CONSOLE.write_raw(&b),
                            ConsoleOut::Line(l) => info!(target: "guest", "{}: {l}", self.name),
                        }
                    }
                }
            }
            // Output queued after the last look, while this thread still
            // held the writer's lock, is written by this thread.
            core::sync::atomic::fence(Ordering::SeqCst);
            if !self.sh.console_queued.load(Ordering::Acquire) {
                return;
            }
        }
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

    /// Lists the VM where Ctrl-] n can move the console; it takes the
    /// console if nobody has it (a VM created after the others stopped).
    pub fn started(&self) {
        RUNNING.lock().push((self.id, self.name.clone()));
        if CONSOLE_OWNER
            .compare_exchange(usize::MAX, self.id, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            info!(target: "console", "input now goes to vm {} (Ctrl-] n: next VM)", self.name);
        }
    }
}

/// Vcore run timings (timebase ticks), kept for the VM's stop report:
/// entry is thread 0's first wake-up IPI to the last thread's first
/// instruction in the guest, exit the first thread leaving to thread 0
/// having switched the partition back.
#[derive(Default)]
struct VcoreTimings {
    entry: Vec<u64>,
    exit: Vec<u64>,
}

impl VcoreTimings {
    /// Samples kept (the first runs of a long-lived VM).
    const MAX: usize = 4096;

    fn record(&mut self, entry: u64, exit: u64) {
        if self.entry.len() < Self::MAX {
            self.entry.push(entry);
            self.exit.push(exit);
        }
    }

    fn print(&mut self, vm: &str, threads: u32) {
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
enum Wait {
    Ready,
    Wake,
}

/// Why a vcpu's thread naps in the partition.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Block {
    Ceded,
    Stopped,
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
    tally: Option<Box<hcall::Tally>>,
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

/// What the hypercall fast path works with during one vcpu's run on a
/// thread (`VcpuEntry::hcall_ctx` points at it).
pub struct FastCtx<'a> {
    /// The HPT calls' view of the VM from this thread's core.
    part: hcall::Partition<'a>,
    /// Counted here, added to the VM's when the vcpu leaves the thread.
    tally: &'a mut hcall::Tally,
}

/// The hypercall fast path's handler (`ppc64::regs::HcallPath`), called
/// by the exit assembly for every `sc 1` with the vcpu's register image
/// (r0-r13, CR, LR, CTR, XER, PC, MSR saved; the other SPRs, FP and the
/// partition still the guest's) and this run's [`FastCtx`]. It handles
/// what [`Hcall::path`] says is fast and unimplemented numbers, and
/// answers [`HcallPath::Full`], having changed nothing, for the rest:
/// hypercalls from guest problem state, the full-path calls, an
/// unimplemented number when the tally has no room for it.
#[unsafe(no_mangle)]
pub extern "C" fn hv_hcall_fast(regs: &mut GuestRegs, ctx: *mut FastCtx) -> HcallPath {
    // SAFETY: the pointer vcpu_thread put in this entry: its FastCtx,
    // alive for the whole run and used by nothing else while the guest
    // (or this handler) runs; null only for an entry made elsewhere.
    let Some(ctx) = (unsafe { ctx.as_mut() }) else {
        return HcallPath::Full;
    };
    if regs.msr & spr::MSR_PR != 0 {
        return HcallPath::Full;
    }
    let nr = regs.gpr[3];
    match Hcall::decode(nr) {
        None => {
            if !ctx.tally.count_unknown(nr) {
                return HcallPath::Full;
            }
            answered(&mut regs.gpr, hcall::H_FUNCTION)
        }
        Some((i, call)) => match (call.path(), call) {
            (hcall::Path::Fast, Hcall::Hpt(op)) => {
                ctx.tally.known[i] += 1;
                hpt_hcall(&ctx.part, op, &mut regs.gpr)
            }
            _ => HcallPath::Full,
        },
    }
}

/// The LPCR bits of an interrupt mode (H_SET_MODE: ILE, AIL).
fn irq_lpcr(m: InterruptMode) -> u64 {
    let ile = if m.little_endian { spr::LPCR_ILE } else { 0 };
    ile | (m.ail << spr::LPCR_AIL_SHIFT)
}

/// A guest's LPCR on a host whose LPCR is `host`: VRMA with its page
/// size, HDEC interrupts, external interrupts to the hypervisor (LPES 0),
/// the interrupt mode's bits (`irq`, [`irq_lpcr`]) and MER when an
/// interrupt waits for the guest to enable MSR[EE].
fn guest_lpcr(host: u64, irq: u64, mer: bool) -> u64 {
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

/// Whether handling `exit` needs the VM's state (its lock). IPIs and
/// doorbells for the thread are run by the caller; a slice end is the
/// vcore's (`slice_over`), and console work is done without the lock
/// (`console_service`).
fn exit_needs_vm(exit: Exit) -> bool {
    !matches!(exit, Exit::Hdec | Exit::HvDoorbell | Exit::External)
}

/// What the run loop does after an exit.
enum Next {
    Resume,
    Cede,
    /// H_CONFER to a vcpu whose vcore waits for a core: this vcore gives
    /// its core up now if a vcore waits (its slice ends early).
    Yield,
    /// The vcpu stopped itself (`stop-self`).
    Stopped,
    Reboot,
    Stop(Outcome),
}

/// The VRMA page size: 16 MiB (guest memory is a multiple of it).
const VRMA_PAGE: PageSize = PageSize::P16M;

/// Writes the VRMA HPTEs mapping guest-real `0..size` onto host-physical
/// `base..` (one per PTEG, slot 7 as KVM does); returns how many.
fn map_vrma(hpt: &Hpt, base: u64, size: u64) -> Result<u64, VmError> {
    // An allocated HPT always has a valid order.
    let order = HptOrder::new(hpt.order).ok_or(VmError::Hpt(hpt::HptError::BadOrder(hpt.order)))?;
    let pages = size.div_ceil(VRMA_PAGE.bytes());
    for i in 0..pages {
        let (pteg, e) = hpte::vrma_hpte(order, i, VRMA_PAGE, base + i * VRMA_PAGE.bytes())
            .map_err(|e| VmError::Vrma(i, e))?;
        let slot = hpt.base + pteg * hpte::PTEG_BYTES + 7 * hpte::HPTE_BYTES;
        let [v, r] = e.to_be_words();
        // SAFETY: the slot lies in this VM's zeroed HPT; R first, then V
        // (valid), ordered by eieio as the architecture requires.
        unsafe {
            core::ptr::write_volatile((slot + 8) as *mut u64, r);
            core::arch::asm!("eieio");
            core::ptr::write_volatile(slot as *mut u64, v);
        }
    }
    // SAFETY: orders the HPTE stores before any translation uses them.
    unsafe { core::arch::asm!("ptesync") };
    Ok(pages)
}

static LPIDS: spin::Mutex<LpidAllocator> = spin::Mutex::new(LpidAllocator::new());

/// Guest LPIDs not in use.
pub fn lpids_free() -> u32 {
    LPIDS.lock().available()
}

/// What a VM is made from.
pub struct VmConfig<'a> {
    pub name: &'a str,
    /// vcpus and how they group into vcores.
    pub layout: Layout,
    pub image: &'a [u8],
    pub memory: u64,
    pub hpt_order: Option<u32>,
    pub bootargs: &'a str,
    pub initrd: Option<&'a [u8]>,
    pub load_addr: Option<u64>,
    pub entry_little_endian: bool,
    /// Bytes of its NVRAM.
    pub nvram: u32,
}

/// What a VM under construction holds; freed on drop unless the VM was
/// committed (prepare everything first, commit last).
#[derive(Default)]
struct Reserved {
    mem: Option<(u64, u32)>,
    hpt: Option<Hpt>,
    lpid: Option<u32>,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        if let Some(l) = self.lpid.take() {
            LPIDS.lock().free(l).ok();
        }
        if let Some(h) = self.hpt.take() {
            hpt::free(&mut FirmwareHptMemory, h);
        }
        if let Some((base, order)) = self.mem.take() {
            PAGES.lock().free_order(base, order);
        }
    }
}

impl VmState {
    /// Prepares a VM; nothing is left behind on failure.
    fn create(
        cfg: &VmConfig<'static>,
        cores: usize,
        id: usize,
    ) -> Result<(VmState, GuestRegs), VmError> {
        let (name, image, mem_size, bootargs) = (cfg.name, cfg.image, cfg.memory, cfg.bootargs);
        if mem_size == 0 || !mem_size.is_multiple_of(VRMA_PAGE.bytes()) {
            return Err(VmError::MemorySize(mem_size));
        }
        let mem_order = 64 - (mem_size - 1).leading_zeros();
        let mem_base = crate::churn::may_allocate("guest memory")
            .then(|| PAGES.lock().alloc_order(mem_order))
            .flatten()
            .ok_or(VmError::NoMemory(mem_size >> 20))?;
        let mut held = Reserved {
            mem: Some((mem_base, mem_order)),
            ..Default::default()
        };
        let want_order = cfg
            .hpt_order
            .unwrap_or_else(|| hpt::default_order(mem_size));
        let hpt = hpt::alloc(&mut FirmwareHptMemory, want_order).map_err(VmError::Hpt)?;
        held.hpt = Some(hpt);
        // Guest memory must never show what a previous owner (or the
        // machine's loader) left there: whatever may hold data is zeroed.
        let dirty = PAGES
            .lock()
            .dirty_parts(kernel::memmap::Range::sized(mem_base, mem_size));
        for d in &dirty {
            // SAFETY: part of the guest memory just allocated for this VM
            // alone (real mode: identity addresses).
            unsafe { cpu::zero_real(d.start, d.size()) };
        }
        let zeroed: u64 = dirty.iter().map(|d| d.size()).sum();
        // SAFETY: as above.
        let mem =
            unsafe { core::slice::from_raw_parts_mut(mem_base as *mut u8, mem_size as usize) };
        let loaded = kernel::elf::load(image, mem, cfg.load_addr).map_err(VmError::Image)?;
        if hpt.order != want_order {
            info!(target: "vm", "{name}: HPT order {want_order} not available, got order {}{}", hpt.order, if hpt.from_pool { " from the pool" } else { "" });
        }
        let initrd = match cfg.initrd {
            None => None,
            Some(data) => {
                let (start, end) = layout::initrd(loaded.end, data.len() as u64, mem_size)
                    .map_err(VmError::Layout)?;
                mem[start as usize..end as usize].copy_from_slice(data);
                Some((start, end))
            }
        };
        let top_used = initrd.map(|i| i.1).unwrap_or(loaded.end);
        let lpid = match crate::churn::may_allocate("LPID") {
            true => LPIDS.lock().alloc(),
            false => Err(kernel::lpid::LpidError::Exhausted),
        }
        .map_err(VmError::Lpid)?;
        held.lpid = Some(lpid);
        let tlb = VmTlb::new(lpid, cores);
        tlb.set_online_vcores(cfg.layout.vcores());
        tlb.set_local_reaches_vcore(
            cfg.layout.threads == 1
                || !crate::mem::TLBIEL_REACHES_ONE_THREAD.load(Ordering::Acquire),
        );
        let rtas_base = layout::rtas_base(mem_size);
        mem[rtas_base as usize..rtas_base as usize + rtas::RTAS_BLOB.len()]
            .copy_from_slice(&rtas::RTAS_BLOB);
        let tokens = rtas::tokens();
        let fdt = guestfdt::build(&GuestFdtConfig {
            name,
            layout: cfg.layout,
            memory: mem_size,
            hpt_order: hpt.order,
            timebase_frequency: kernel::time::timebase_hz() as u32,
            clock_frequency: kernel::time::cpu_clock_hz().min(u64::from(u32::MAX)) as u32,
            bootargs,
            initrd,
            rtas_base: rtas_base as u32,
            rtas_size: layout::RTAS_SIZE as u32,
            hypertas_functions: HYPERTAS_FUNCTIONS,
            rtas_tokens: &tokens,
            nvram_size: cfg.nvram,
        });
        let fdt_gpa =
            layout::device_tree(mem_size, fdt.len() as u64, top_used).map_err(VmError::Layout)?;
        mem[fdt_gpa as usize..fdt_gpa as usize + fdt.len()].copy_from_slice(&fdt);
        // Entered as SLOF enters an image on QEMU's pseries machine:
        // 64-bit real mode, big-endian unless the manifest says otherwise.
        let le = if cfg.entry_little_endian {
            spr::MSR_LE
        } else {
            0
        };
        let mut regs = GuestRegs {
            pc: loaded.entry,
            msr: spr::MSR_SF | spr::MSR_ME | spr::MSR_RI | le,
            dec: spr::DEC_MAX,
            ..Default::default()
        };
        regs.gpr[3] = fdt_gpa;
        regs.gpr[4] = loaded.start;
        let initrd_copy = match (initrd, cfg.initrd) {
            (Some((start, _)), Some(data)) => Some((start, data)),
            _ => None,
        };
        let n = map_vrma(&hpt, mem_base, mem_size)?;
        let l = cfg.layout;
        info!(
            target: "vm",
            "{name}: lpid {lpid} memory {} MiB at {mem_base:#x} ({} MiB zeroed), HPT order {} at {:#x}{}, {n} VRMA HPTEs, {} vcpus in {} vcores of {} threads",
            mem_size >> 20,
            zeroed >> 20,
            hpt.order,
            hpt.base,
            if hpt.from_pool { " (pool)" } else { "" },
            l.vcpus,
            l.vcores(),
            l.threads,
        );
        let sh = Arc::new(Shared::new(
            cfg.layout,
            GuestMmu {
                hpt_base: hpt.base,
                hpt_entries: hpt.size() / hpte::HPTE_BYTES,
                mem_base,
                mem_size,
                tlb,
            },
        ));
        // Commit: from here the VM owns its memory, HPT and LPID.
        held.mem = None;
        held.hpt = None;
        held.lpid = None;
        let state = VmState {
            image,
            initrd: initrd_copy,
            fdt,
            fdt_gpa,
            rtas_base,
            boot_regs: regs,
            reboots: 0,
            reflected: 0,
            name: name.into(),
            lpid,
            mem_base,
            mem_order,
            mem_size,
            hpt,
            irq_mode: InterruptMode::default(),
            xics: Xics::new(cfg.layout.vcpus, &[true]),
            sh,
            term: Vterm::default(),
            id,
            tod_offset: 0,
            fwnmi: Fwnmi::default(),
            nvram: crate::nvstore::load(cfg.name, cfg.nvram)
                .unwrap_or_else(|| kernel::nvram::blank(cfg.nvram)),
            nvram_dirty: false,
            hcalls: 0,
            unknown_counts: hcall::UnknownCounts::default(),
            rtas_counts: [0; rtas::SERVICES.len()],
            console_out: Vec::new(),
            known_counts: [0; hcall::IMPLEMENTED],
            privileged: 0,
            externals: 0,
            exits: 0,
            partition_switches: 0,
            timings: VcoreTimings::default(),
        };
        Ok((state, regs))
    }

    /// The guest's LPCR: the host's, with VRMA real mode (VPM0, VRMASD),
    /// guest faults kept in the guest (VPM1=0), external interrupts to the
    /// hypervisor (LPES=0), HDEC interrupts on, the host's power-saving
    /// exit enables (the guest cannot nap; a ceding vcpu's thread naps
    /// with this LPCR loaded and must wake as the host's would), the
    /// guest's interrupt endianness and location (H_SET_MODE), and MER when
    /// an external interrupt waits for the guest to enable MSR[EE].
    /// This VM's memory, bounds-checked.
    fn mem(&mut self) -> GuestMemory<'_> {
        // SAFETY: `mem_base..mem_base+mem_size` is this VM's own RAM
        // (allocated in `create`, freed only in `destroy`), identity-mapped
        // in real mode; `&mut self` keeps the view unique on this thread.
        GuestMemory::new(unsafe {
            core::slice::from_raw_parts_mut(self.mem_base as *mut u8, self.mem_size as usize)
        })
    }

    /// `system-reboot`, with every vcpu stopped: clear the HPT (refused
    /// unless no vcore is in the guest), mark every core for a TLB flush,
    /// reload the image, initrd and device tree (the caller re-establishes
    /// the VRMA and restarts the vcpus). Guest memory outside those is
    /// kept, as on a real reset.
    fn reboot(&mut self, vcores_running: u32) -> Result<(), VmError> {
        hpt::reset(&mut FirmwareHptMemory, &self.hpt, vcores_running).map_err(VmError::Hpt)?;
        self.sh.mmu.tlb.mark_all();
        // SAFETY: this VM's own memory; every vcpu is stopped.
        let mem = unsafe {
            core::slice::from_raw_parts_mut(self.mem_base as *mut u8, self.mem_size as usize)
        };
        // Reload where the image was first placed (r4 at entry).
        let load_addr = Some(self.boot_regs.gpr[4]);
        kernel::elf::load(self.image, mem, load_addr).map_err(VmError::Image)?;
        if let Some((start, data)) = self.initrd {
            mem[start as usize..start as usize + data.len()].copy_from_slice(data);
        }
        let rb = self.rtas_base as usize;
        mem[rb..rb + rtas::RTAS_BLOB.len()].copy_from_slice(&rtas::RTAS_BLOB);
        let f = self.fdt_gpa as usize;
        mem[f..f + self.fdt.len()].copy_from_slice(&self.fdt);
        map_vrma(&self.hpt, self.mem_base, self.mem_size)?;
        self.xics.reset();
        for id in 0..self.sh.layout.vcpus {
            self.sync_presented(id);
        }
        self.irq_mode = InterruptMode::default();
        self.sh
            .irq_lpcr
            .store(irq_lpcr(self.irq_mode), Ordering::Release);
        self.fwnmi.reset();
        self.reboots += 1;
        info!(target: "vm", "{}: system-reboot #{}: HPT cleared, image reloaded", self.name, self.reboots);
        Ok(())
    }

    /// Adds what a vcpu's thread counted on the fast path.
    fn add_tally(&mut self, t: &hcall::Tally) {
        // Every fast-path hypercall was one exit.
        self.exits += t.hcalls();
        self.hcalls += t.hcalls();
        for (k, n) in self.known_counts.iter_mut().zip(t.known) {
            *k += n;
        }
        for (nr, n) in t.unknown() {
            self.unknown_counts.count(nr, n);
        }
    }

    /// Handles an exit of `v` on its thread (the partition still loaded).
    /// `vec` is the raw exit vector `exit` was decoded from.
    fn handle_exit(&mut self, v: &mut Vcpu, exit: Exit, vec: u64) -> Next {
        self.exits += 1;
        match exit {
            Exit::Hcall => self.hcall(v),
            // Handled without the VM's lock ([`exit_needs_vm`]).
            Exit::Hdec | Exit::HvDoorbell | Exit::External => Next::Resume,
            // An instruction the guest may not execute, or a facility it
            // does not have (TM, BHRB): to the guest it is an
            // illegal-instruction program interrupt.
            Exit::HvEmulation | Exit::HvFacility => {
                self.reflect_fault(v, vector::PROGRAM, spr::SRR1_PROGRAM_ILLEGAL, vec)
            }
            // A real-mode access beyond guest memory: a machine check for
            // the guest, as on QEMU's pseries machine.
            Exit::Hdsi if v.regs.msr & spr::MSR_DR == 0 => {
                let r = &v.regs;
                info!(target: "vm", "{}: real-mode data access beyond guest memory at pc {:#x} (HDAR {:#x}): machine check", self.name, r.pc, r.hdar);
                self.machine_check(v, Cause::LoadStore(r.hdar), vec)
            }
            Exit::Hisi if v.regs.msr & spr::MSR_IR == 0 => {
                info!(target: "vm", "{}: real-mode instruction fetch at {:#x} beyond guest memory: machine check", self.name, v.regs.pc);
                self.machine_check(v, Cause::Fetch(v.regs.pc), vec)
            }
            _ => Next::Stop(self.unexpected(v, vec)),
        }
    }

    fn unexpected(&self, v: &Vcpu, vec: u64) -> Outcome {
        let r = &v.regs;
        let v = vec & !ppc64::trap::VEC_HSRR_FLAG;
        Outcome::Crashed(alloc::format!(
            "unexpected exit {:#x} ({}) at pc {:#x} msr {:#x} hdar {:#x}",
            v,
            ppc64::trap::vector_name(v),
            r.pc,
            r.msr,
            r.hdar
        ))
    }

    /// Makes the presented external interrupt the guest's: delivered now
    /// (0x500) when its MSR[EE] allows, else left to LPCR[MER] so it is
    /// taken the moment the guest enables EE. Returns whether MER is needed.
    fn deliver_external(&mut self, v: &mut Vcpu) -> bool {
        let presented = self.xics.icp(v.id).is_some_and(|i| i.pending().is_some());
        match deliver::external(presented, v.regs.msr) {
            External::None => false,
            External::Inject => {
                self.reflect(v, vector::EXTERNAL, 0);
                self.externals += 1;
                true
            }
            External::Mediated => true,
        }
    }

    /// Delivers an interrupt to the guest (kernel::deliver says how).
    fn reflect(&mut self, v: &mut Vcpu, vector: u64, reason: u64) -> u64 {
        self.reflected += 1;
        deliver::deliver(&mut v.regs, self.irq_mode, vector, reason)
    }

    /// Reflects a fault, unless it happened on the first instruction of
    /// the vector this hypervisor last sent the guest to: then the guest
    /// has no handler there and would fault forever; the VM stops.
    fn reflect_fault(&mut self, v: &mut Vcpu, vector: u64, reason: u64, exit: u64) -> Next {
        if let Some((at, sent)) = v.last_vector.filter(|l| l.0 == v.regs.pc) {
            let offset = exit & !ppc64::trap::VEC_HSRR_FLAG;
            return Next::Stop(Outcome::Crashed(alloc::format!(
                "no handler at the guest's {sent:#x} vector: {} at {at:#x} (msr {:#x})",
                ppc64::trap::vector_name(offset),
                v.regs.msr
            )));
        }
        let at = self.reflect(v, vector, reason);
        v.last_vector = Some((at, vector));
        Next::Resume
    }

    /// A machine check for the running vcpu. With FWNMI registered it goes
    /// to the guest's handler with r3 pointing at the error log in the
    /// RTAS area (the interrupted r3 saved in it), MSR as for a machine
    /// check (translation off, ME on, interrupt endianness); without, at
    /// 0x200. A machine check while this vcpu has not yet released the
    /// previous log (`ibm,nmi-interlock`) stops the VM, as a nested
    /// machine check checkstops a machine.
    fn machine_check(&mut self, v: &mut Vcpu, cause: Cause, exit: u64) -> Next {
        let reason = match cause {
            Cause::LoadStore(addr) => {
                v.regs.dar = addr;
                spr::SRR1_MC_DATA_SIDE
            }
            Cause::Fetch(_) => 0,
        };
        let handler = match self.fwnmi.begin_machine_check(v.id) {
            Ok(v) => v,
            Err(Refused::NotRegistered) => return self.reflect_fault(v, vector::MACHINE_CHECK, reason, exit),
            // A nested machine check, or one while another vcpu holds the
            // log: QEMU makes the second wait, which a vcpu whose thread
            // must keep going cannot here; the VM stops, as on a
            // checkstop.
            Err(Refused::Nested | Refused::Busy(_)) => {
                return Next::Stop(Outcome::Crashed(alloc::format!(
                    "machine check at pc {:#x} before the guest released the previous one (ibm,nmi-interlock)",
                    v.regs.pc
                )))
            }
        };
        let log_gpa = self.rtas_base + fwnmi::ERROR_LOG_OFFSET;
        let log = fwnmi::machine_check_log(v.regs.gpr[3], cause);
        match self.mem().slice(log_gpa, log.len() as u64) {
            Some(dst) => dst.copy_from_slice(&log),
            None => {
                return Next::Stop(Outcome::Crashed("no room for the machine check log".into()))
            }
        }
        self.reflected += 1;
        deliver::deliver_fwnmi(&mut v.regs, self.irq_mode, handler, log_gpa, reason);
        Next::Resume
    }

    /// Writes out the console owner's unfinished line.
    fn flush_raw(&mut self) {
        let mut sink = ConsoleSink {
            out: &mut self.console_out,
            queued: &self.sh.console_queued,
        };
        self.term.flush(&mut sink);
        self.sh.raw_held.store(false, Ordering::Release);
    }

    /// What was typed on the serial console while this VM owns it
    /// ([`Vm::console_service`] reads it); the vty interrupt is asserted
    /// while input waits. Ctrl-] n passes the console on; Ctrl-] x
    /// answers true (stop the VM).
    fn typed(&mut self, bytes: &[u8]) -> bool {
        let mut stop = false;
        match self.term.typed(bytes) {
            Typed::NextVm => {
                self.flush_raw();
                pass_console_on(self.id);
                return false;
            }
            Typed::StopVm => {
                info!(target: "console", "stopping vm {} (Ctrl-] x)", self.name);
                stop = true;
            }
            Typed::Input => {}
        }
        self.update_vty_line();
        stop
    }

    fn update_vty_line(&mut self) {
        let k = self.xics.set_line(guestfdt::VTY_IRQ, self.term.has_input());
        self.kick(k);
    }

    /// Guest console output: passed through as it is when this VM owns
    /// the console, else printed a line at a time with the VM's name. The
    /// owner's output goes out a whole line at a time too, and an
    /// unfinished line (a shell prompt, the echo of what is typed) as
    /// soon as the guest waits: it cedes, reads the console, or its time
    /// slice ends ([`Vm::flush_raw`]), so a prompt shows before the user
    /// types and other VMs' lines never cut into it.
    fn console_bytes(&mut self, b: &[u8]) {
        let owner = owns_console(self.id);
        let mut sink = ConsoleSink {
            out: &mut self.console_out,
            queued: &self.sh.console_queued,
        };
        self.term.output(b, owner, &mut sink);
        self.sh
            .raw_held
            .store(self.term.holds_raw(), Ordering::Release);
    }

    /// Handles `sc 1`. From guest problem state nothing is done: the
    /// caller gets H_PRIVILEGE, as on QEMU's pseries machine.
    fn hcall(&mut self, v: &mut Vcpu) -> Next {
        let r = &v.regs.gpr;
        let (nr, a) = (r[3], [r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11]]);
        if v.regs.msr & spr::MSR_PR != 0 {
            self.privileged += 1;
            v.regs.gpr[3] = hcall::H_PRIVILEGE as u64;
            return Next::Resume;
        }
        self.hcalls += 1;
        let Some((index, call)) = Hcall::decode(nr) else {
            self.unknown_counts.count(nr, 1);
            v.regs.gpr[3] = hcall::H_FUNCTION as u64;
            return Next::Resume;
        };
        self.known_counts[index] += 1;
        let (ret, next) = match call {
            Hcall::PutTermChar => (self.h_put_term_char(a[0], a[1], a[2], a[3]), Next::Resume),
            Hcall::GetTermChar => (self.h_get_term_char(v, a[0]), Next::Resume),
            Hcall::SetMode => (self.h_set_mode(v, a[0], a[1], a[2], a[3]), Next::Resume),
            Hcall::Rtas => self.rtas(v, a[0]),
            // Only from the fast path's refusal (it takes every HPT call
            // a kernel makes), the same code.
            Hcall::Hpt(op) => {
                let p = self.sh.mmu.partition(v.core);
                hpt_hcall(&p, op, &mut v.regs.gpr);
                (v.regs.gpr[3] as i64, Next::Resume)
            }
            Hcall::Xirr | Hcall::XirrX => {
                let (xirr, _) = self.xics.accept(v.id);
                v.regs.gpr[4] = u64::from(xirr);
                if call == Hcall::XirrX {
                    v.regs.gpr[5] = cpu::mftb();
                }
                (H_SUCCESS, Next::Resume)
            }
            Hcall::Eoi => {
                let r = self.xics.eoi(v.id, a[0]);
                (self.xics_ret(r), Next::Resume)
            }
            Hcall::Cppr => {
                let r = self.xics.set_cppr(v.id, a[0]);
                (self.xics_ret(r), Next::Resume)
            }
            // To any vcpu of the VM, woken wherever it is.
            Hcall::Ipi => {
                let r = self.xics.set_mfrr(a[0], a[1]);
                (self.xics_ret(r), Next::Resume)
            }
            Hcall::Ipoll => match self.xics.poll(a[0]) {
                Ok((xirr, mfrr)) => {
                    v.regs.gpr[4] = u64::from(xirr);
                    v.regs.gpr[5] = u64::from(mfrr);
                    (H_SUCCESS, Next::Resume)
                }
                Err(_) => (H_PARAMETER, Next::Resume),
            },
            Hcall::Cede => {
                // PAPR: H_CEDE returns with MSR[EE] set.
                v.regs.msr |= spr::MSR_EE;
                match self.sh.vcpus[v.id as usize].cede.cede() {
                    Cede::Resume => (H_SUCCESS, Next::Resume),
                    Cede::Sleep => {
                        self.undispatch(v.id);
                        // Wake-ups sent before the cede do not count
                        // against it (one still pending ends it at once);
                        // kicks take this lock, so none is lost here.
                        self.sh.vcpus[v.id as usize]
                            .kicked
                            .store(0, Ordering::Relaxed);
                        (H_SUCCESS, Next::Cede)
                    }
                }
            }
            // Remembered if the target has not ceded yet; a ceded target
            // is woken wherever its thread naps.
            Hcall::Prod => match self.vcpu_id(a[0]) {
                Some(id) => {
                    if self.sh.vcpus[id as usize].cede.prod() {
                        self.sh.kick_vcpu(id);
                    }
                    (H_SUCCESS, Next::Resume)
                }
                None => (H_PARAMETER, Next::Resume),
            },
            // Yield to vcpu a[0] (-1: any), which had yield count a[1]
            // when the guest looked (Linux: a lock holder it saw
            // preempted). If it has not run since and its vcore waits for
            // a core, this vcore gives its core up (as KVM-HV yields to
            // the target's thread); a vcpu of the caller's own vcore runs
            // beside it already, and "any" has nothing to give to.
            Hcall::Confer => match self.vcpu_id(a[0]) {
                _ if a[0] as i64 == -1 => (H_SUCCESS, Next::Resume),
                None => (H_PARAMETER, Next::Resume),
                Some(id) => (H_SUCCESS, self.confer(v.id, id, a[1] as u32)),
            },
            // For any vcpu of the VM (Linux registers each from itself).
            Hcall::RegisterVpa => match self.vcpu_id(a[1]) {
                Some(id) => {
                    let sh = self.sh.clone();
                    let rc = sh.vcpus[id as usize]
                        .vpa
                        .lock()
                        .register(a[0], a[2], &mut self.mem());
                    (rc, Next::Resume)
                }
                None => (H_PARAMETER, Next::Resume),
            },
            Hcall::SetSprg0 => {
                v.regs.sprg[0] = a[0];
                (H_SUCCESS, Next::Resume)
            }
            Hcall::PageInit => (self.h_page_init(a[0], a[1], a[2]), Next::Resume),
            Hcall::GetCpuCharacteristics => {
                let c = crate::mem::CPU_CHARACTERISTICS
                    .get()
                    .copied()
                    .unwrap_or(kernel::cpuchar::CONSERVATIVE);
                v.regs.gpr[4] = c.character;
                v.regs.gpr[5] = c.behaviour;
                (H_SUCCESS, Next::Resume)
            }
        };
        v.regs.gpr[3] = ret as u64;
        next
    }

    /// The vcpu a guest names by its id (its interrupt server number).
    fn vcpu_id(&self, id: u64) -> Option<u32> {
        (id < u64::from(self.sh.layout.vcpus)).then_some(id as u32)
    }

    /// A XICS hypercall's answer; the vcpus it changed are woken.
    fn xics_ret(&self, r: Result<kernel::xics::Kick, XicsError>) -> i64 {
        match r {
            Ok(k) => {
                self.kick(k);
                H_SUCCESS
            }
            Err(_) => H_PARAMETER,
        }
    }

    /// Wakes the vcpus whose presented interrupt may have changed.
    fn kick(&self, k: kernel::xics::Kick) {
        for s in k.servers() {
            self.sync_presented(s);
            self.sh.kick_vcpu(s);
        }
    }

    /// Vcpu `id` stops running (ceded, preempted): its VPA's yield count
    /// goes odd, as guests read it (Linux: `vcpu_is_preempted`).
    fn undispatch(&mut self, id: u32) {
        let sh = self.sh.clone();
        sh.vcpus[id as usize]
            .vpa
            .lock()
            .bump_yield_count(&mut self.mem());
    }

    /// Copies whether vcpu `id`'s ICP presents an interrupt to its
    /// lock-free flag (after any change of its ICP, before its kick).
    fn sync_presented(&self, id: u32) {
        if let Some(shv) = self.sh.vcpus.get(id as usize) {
            let p = self.xics.icp(id).is_some_and(|i| i.pending().is_some());
            shv.presented.store(p, Ordering::Release);
        }
    }

    /// The partition registers of this VM. With `switch_on` (thread 0
    /// switching `core`): counts the switch and asks for the core's TLB
    /// flush for the LPID if the VM ran elsewhere since (need_tlb_flush).
    fn partition_regs(&mut self, host_lpcr: u64, switch_on: Option<usize>) -> PartitionRegs {
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

    /// H_PUT_TERM_CHAR(vtermno, len, chars 0-7, chars 8-15).
    fn h_put_term_char(&mut self, term: u64, len: u64, hi: u64, lo: u64) -> i64 {
        let Some((bytes, n)) = vterm::unpack(len, hi, lo) else {
            return H_PARAMETER;
        };
        if !vterm::names_vty(term, guestfdt::VTY_REG) {
            return H_PARAMETER;
        }
        self.console_bytes(&bytes[..n]);
        H_SUCCESS
    }

    /// H_GET_TERM_CHAR(vtermno): up to 16 typed bytes in r5, r6; count in r4.
    fn h_get_term_char(&mut self, v: &mut Vcpu, term: u64) -> i64 {
        if !vterm::names_vty(term, guestfdt::VTY_REG) {
            return H_PARAMETER;
        }
        // Typed input comes in through Vm::console_service (after this
        // exit, and every CONSOLE_POLL_MS), not here under the lock.
        self.flush_raw();
        let (n, hi, lo) = self.term.read();
        let r = &mut v.regs.gpr;
        (r[4], r[5], r[6]) = (n, hi, lo);
        self.update_vty_line();
        H_SUCCESS
    }

    /// H_SET_MODE (kernel::mode checks it): breakpoints go into the
    /// vcpu's registers, AIL and endianness into the interrupt mode.
    fn h_set_mode(&mut self, v: &mut Vcpu, mflags: u64, resource: u64, v1: u64, v2: u64) -> i64 {
        let r = &mut v.regs;
        match mode::set_mode(mflags, resource, v1, v2) {
            Ok(ModeChange::Ciabr(v)) => r.ciabr = v,
            Ok(ModeChange::Dawr { dawr, dawrx }) => (r.dawr, r.dawrx) = (dawr, dawrx),
            Ok(ModeChange::Ail(ail)) => {
                self.irq_mode.ail = ail;
                self.sh
                    .irq_lpcr
                    .store(irq_lpcr(self.irq_mode), Ordering::Release);
            }
            Ok(ModeChange::LittleEndian(le)) => {
                self.irq_mode.little_endian = le;
                self.sh
                    .irq_lpcr
                    .store(irq_lpcr(self.irq_mode), Ordering::Release);
            }
            Err(code) => return code,
        }
        H_SUCCESS
    }

    /// H_PAGE_INIT (kernel::mode checks it and does the copy or zeroing).
    fn h_page_init(&mut self, flags: u64, dst: u64, src: u64) -> i64 {
        match mode::page_init(&mut self.mem(), flags, dst, src) {
            Ok(Some(gpa)) => {
                let host = self.mem_base + gpa;
                // SAFETY: the page was just checked to lie in this VM's RAM.
                unsafe { cpu::flush_icache_range(host, host + 4096) };
                H_SUCCESS
            }
            Ok(None) => H_SUCCESS,
            Err(code) => code,
        }
    }

    /// H_RTAS: the argument buffer is big-endian (token, nargs, nret,
    /// args, rets); a buffer outside guest memory is H_PARAMETER.
    fn rtas(&mut self, v: &mut Vcpu, gpa: u64) -> (i64, Next) {
        let Some(call) = rtas::Call::read(&mut self.mem(), gpa) else {
            return (H_PARAMETER, Next::Resume);
        };
        let Some(service) = rtas::service(call.token) else {
            call.set_ret(&mut self.mem(), 0, rtas::PARAMETER_ERROR);
            return (H_SUCCESS, Next::Resume);
        };
        if let Some(i) = rtas::SERVICES.iter().position(|&(_, s)| s == service) {
            self.rtas_counts[i] += 1;
        }
        let mut rets: [i32; 8] = [0; 8];
        let (status, next) = self.rtas_service(v, service, &call, &mut rets);
        let mut mem = self.mem();
        call.set_ret(&mut mem, 0, status);
        for (i, v) in rets
            .iter()
            .enumerate()
            .take(call.nret.saturating_sub(1) as usize)
        {
            call.set_ret(&mut mem, 1 + i as u32, *v);
        }
        (H_SUCCESS, next)
    }

    /// One RTAS service: its status and further return values.
    fn rtas_service(
        &mut self,
        v: &mut Vcpu,
        s: Service,
        c: &rtas::Call,
        rets: &mut [i32; 8],
    ) -> (i32, Next) {
        use rtas::{PARAMETER_ERROR as BAD, SUCCESS as OK};
        let args = &c.args;
        let xics_status = |st: &Self, r: Result<kernel::xics::Kick, XicsError>| match r {
            Ok(k) => {
                st.kick(k);
                OK
            }
            Err(_) => BAD,
        };
        match s {
            Service::PowerOff => (OK, Next::Stop(Outcome::Ok)),
            Service::SystemReboot => (OK, Next::Reboot),
            Service::DisplayCharacter => {
                if c.nargs < 1 {
                    return (BAD, Next::Resume);
                }
                self.console_bytes(&[args[0] as u8]);
                (OK, Next::Resume)
            }
            Service::GetTimeOfDay => match host_epoch() {
                Some(now) => {
                    let t = rtas::from_epoch(now + self.tod_offset);
                    for (i, v) in t.iter().enumerate() {
                        rets[i] = *v as i32;
                    }
                    rets[6] = 0; // nanoseconds
                    (OK, Next::Resume)
                }
                None => (rtas::HARDWARE_ERROR, Next::Resume),
            },
            Service::SetTimeOfDay => {
                if c.nargs < 6 {
                    return (BAD, Next::Resume);
                }
                let want = [args[0], args[1], args[2], args[3], args[4], args[5]];
                match (rtas::to_epoch(want), host_epoch()) {
                    (Some(w), Some(now)) => {
                        self.tod_offset = w - now;
                        (OK, Next::Resume)
                    }
                    (None, _) => (BAD, Next::Resume),
                    (_, None) => (rtas::HARDWARE_ERROR, Next::Resume),
                }
            }
            Service::EventScan => (rtas::NO_ERRORS_FOUND, Next::Resume),
            // No system parameter is available here.
            Service::GetSystemParameter => (BAD, Next::Resume),
            Service::NmiRegister => match c.shape(2, 1) {
                true => {
                    let size = self.mem_size;
                    (
                        self.fwnmi
                            .register(u64::from(args[0]), u64::from(args[1]), size),
                        Next::Resume,
                    )
                }
                false => (BAD, Next::Resume),
            },
            Service::NmiInterlock => match c.shape(0, 1) {
                true => (self.fwnmi.interlock(v.id), Next::Resume),
                false => (BAD, Next::Resume),
            },
            Service::OsTerm => {
                // The guest's panic message (Linux: "OS panic: <why>"),
                // else the last line it printed.
                let msg = match c.nargs {
                    0 => String::new(),
                    _ => self
                        .mem()
                        .read_cstr(u64::from(args[0]), 256)
                        .unwrap_or_default(),
                };
                self.flush_line();
                let msg = msg.trim();
                let last = match msg.strip_prefix("OS panic:").unwrap_or(msg).trim() {
                    "" => String::from(self.term.last_line()),
                    m => String::from(m),
                };
                let why = alloc::format!("guest panic: {}", last.replace('"', "'"));
                (OK, Next::Stop(Outcome::Crashed(why)))
            }
            Service::SetXive => {
                if c.nargs < 3 {
                    return (BAD, Next::Resume);
                }
                let r = self
                    .xics
                    .set_xive(args[0].into(), args[1].into(), args[2].into());
                (xics_status(self, r), Next::Resume)
            }
            Service::GetXive => {
                if c.nargs < 1 {
                    return (BAD, Next::Resume);
                }
                match self.xics.get_xive(args[0].into()) {
                    Ok((server, prio)) => {
                        rets[0] = server as i32;
                        rets[1] = i32::from(prio);
                        (OK, Next::Resume)
                    }
                    Err(_) => (BAD, Next::Resume),
                }
            }
            Service::IntOff | Service::IntOn => {
                if c.nargs < 1 {
                    return (BAD, Next::Resume);
                }
                let irq = args[0].into();
                let r = if s == Service::IntOff {
                    self.xics.int_off(irq)
                } else {
                    self.xics.int_on(irq)
                };
                (xics_status(self, r), Next::Resume)
            }
            Service::QueryCpuStoppedState => {
                if c.nargs < 1 {
                    return (BAD, Next::Resume);
                }
                match self.vcpu_id(args[0].into()) {
                    Some(id) => {
                        let stopped = self.sh.vcpus[id as usize].stopped.load(Ordering::Acquire);
                        rets[0] = if stopped {
                            rtas::CPU_STOPPED
                        } else {
                            rtas::CPU_RUNNING
                        };
                        (OK, Next::Resume)
                    }
                    None => (BAD, Next::Resume),
                }
            }
            // start-cpu(id, address, r3), as QEMU's pseries: a running
            // vcpu is a hardware error, an unknown id a parameter error.
            Service::StartCpu => match (c.nargs >= 3)
                .then(|| self.vcpu_id(args[0].into()))
                .flatten()
            {
                Some(id) => {
                    let shv = &self.sh.vcpus[id as usize];
                    let mut start = shv.start.lock();
                    if !shv.stopped.load(Ordering::Acquire) {
                        return (rtas::HARDWARE_ERROR, Next::Resume);
                    }
                    *start = Some((u64::from(args[1]), u64::from(args[2])));
                    shv.stopped.store(false, Ordering::Release);
                    drop(start);
                    self.sh.kick_vcpu(id);
                    (OK, Next::Resume)
                }
                None => (BAD, Next::Resume),
            },
            // The caller stops until another vcpu starts it again; with no
            // other vcpu left running nothing ever can: the VM ends.
            Service::StopSelf => {
                let shv = &self.sh.vcpus[v.id as usize];
                let start = shv.start.lock();
                shv.stopped.store(true, Ordering::Release);
                drop(start);
                if self.sh.all_stopped() {
                    let why = String::from("stop-self on the last running vcpu");
                    return (OK, Next::Stop(Outcome::Crashed(why)));
                }
                (OK, Next::Stopped)
            }
            // (offset, buffer, length) -> (status, length done), as on
            // QEMU's pseries: -3 for a bad call or bytes outside the
            // NVRAM, -1 for a buffer outside guest memory.
            Service::NvramFetch | Service::NvramStore => {
                if c.nargs != 3 || c.nret != 2 {
                    return (BAD, Next::Resume);
                }
                let (off, buf, len) = (args[0], u64::from(args[1]), args[2]);
                let Some(span) = kernel::nvram::span(self.nvram.len(), off, len) else {
                    return (BAD, Next::Resume);
                };
                let mut nvram = core::mem::take(&mut self.nvram);
                let done = self.mem().slice(buf, u64::from(len)).map(|g| {
                    if s == Service::NvramFetch {
                        g.copy_from_slice(&nvram[span]);
                    } else {
                        nvram[span].copy_from_slice(g);
                    }
                });
                self.nvram = nvram;
                self.nvram_dirty |= done.is_some() && s == Service::NvramStore;
                match done {
                    Some(()) => {
                        rets[0] = len as i32;
                        (OK, Next::Resume)
                    }
                    None => (rtas::HARDWARE_ERROR, Next::Resume),
                }
            }
        }
    }

    /// H_CONFER from vcpu `from` to `to`, which had yield count `seen`
    /// when the guest looked (Linux: a lock holder it saw preempted). If
    /// `to` has not run since and its vcore waits for a core, `from`'s
    /// vcore gives its core up (as KVM-HV yields to the target's thread);
    /// a vcpu of the caller's own vcore already runs beside it.
    fn confer(&mut self, from: u32, to: u32, seen: u32) -> Next {
        let sh = self.sh.clone();
        let count = sh.vcpus[to as usize]
            .vpa
            .lock()
            .yield_count(&mut self.mem());
        let (theirs, ours) = (sh.layout.place(to), sh.layout.place(from));
        let waiting = match (theirs, ours) {
            (Some((t, _)), Some((o, _))) => {
                t != o && sh.vcores[t as usize].core.load(Ordering::Acquire) == NO_CORE
            }
            _ => false,
        };
        if waiting && count == Some(seen) {
            Next::Yield
        } else {
            Next::Resume
        }
    }

    /// Keeps the NVRAM in flash if the guest stored into it since (no
    /// vcpu runs: the VM is stopping or rebooting).
    fn save_nvram(&mut self) {
        if core::mem::take(&mut self.nvram_dirty) {
            crate::nvstore::save(&self.name, &self.nvram);
        }
    }

    /// Ends an unterminated console line (so it counts as the last line).
    fn flush_line(&mut self) {
        if self.term.unterminated().is_some() {
            self.console_bytes(b"\n");
        }
    }

    /// Prints the stop line and returns every resource (once: nothing
    /// runs the VM afterwards).
    fn destroy(&mut self, outcome: &Outcome) {
        info!(
            target: "hv",
            "vm {} lpid={} {} hcalls={} exits={} partition-switches={} reboots={} reflected={} external-irqs={} refused-from-user={}",
            self.name,
            self.lpid,
            outcome,
            self.hcalls,
            self.exits,
            self.partition_switches,
            self.reboots,
            self.reflected,
            self.externals,
            self.privileged
        );
        self.print_hcall_counts();
        self.timings.print(&self.name, self.sh.layout.threads);
        let tlb = &self.sh.mmu.tlb;
        for c in 0..tlb.cores() {
            let (l, g, f) = tlb.counts(c);
            if l + g + f > 0 {
                info!(target: "tlb", "vm {} core {c}: tlbiel={l} tlbie={g} entry-flushes={f}", self.name);
            }
        }
        hpt::free(&mut FirmwareHptMemory, self.hpt);
        PAGES.lock().free_order(self.mem_base, self.mem_order);
        if let Err(e) = LPIDS.lock().free(self.lpid) {
            warn!(target: "vm", "{}: freeing LPID {}: {e}", self.name, self.lpid);
        }
        if let Some(line) = self.term.unterminated() {
            warn!(target: "guest", "{}: (unterminated) {line}", self.name);
        }
    }

    /// One line per hypercall (and RTAS service) the VM made, most used
    /// first: where a guest's time in the hypervisor went.
    fn print_hcall_counts(&self) {
        let known = self
            .known_counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0);
        let rtas = self.rtas_counts.iter().enumerate().filter(|(_, n)| **n > 0);
        let mut v: Vec<(u64, &str, u64)> = known
            .map(|(i, n)| (*n, hcall::name(hcall::number(i)), hcall::number(i)))
            .chain(rtas.map(|(i, n)| {
                let (name, s) = rtas::SERVICES[i];
                (*n, name, RTAS_COUNT_BASE | u64::from(rtas::token(s)))
            }))
            .chain(self.unknown_counts.named().map(|(k, n)| (n, "unknown", k)))
            .collect();
        v.sort_by(|a, b| b.cmp(a));
        for (n, name, k) in v {
            info!(target: "hcall", "vm {}: {name} ({k:#x}) {n}", self.name);
        }
        if self.unknown_counts.others > 0 {
            info!(
                target: "hcall",
                "vm {}: {} calls to other unknown numbers",
                self.name,
                self.unknown_counts.others
            );
        }
    }
}

/// The host's clock, read from OPAL's RTC once (when it first answers)
/// and advanced by the timebase since: (epoch seconds, timebase then).
static HOST_CLOCK: spin::Once<(i64, u64)> = spin::Once::new();

/// Seconds since the epoch now, if the RTC could ever be read.
pub fn host_epoch() -> Option<i64> {
    let (epoch, tb) = match HOST_CLOCK.get() {
        Some(c) => *c,
        None => {
            let t = ppc64::opal::rtc_read().and_then(rtas::to_epoch)?;
            *HOST_CLOCK.call_once(|| (t, cpu::mftb()))
        }
    };
    let hz = kernel::time::timebase_hz().max(1);
    Some(epoch + (cpu::mftb().wrapping_sub(tb) / hz) as i64)
}

/// Keys of RTAS services in the hypercall histogram.
const RTAS_COUNT_BASE: u64 = 1 << 32;

/// Moves the console to the next running VM after `from` (in creation
/// order, wrapping), and says so.
fn pass_console_on(from: usize) {
    let running = RUNNING.lock();
    let next = running
        .iter()
        .filter(|(id, _)| *id != from)
        .min_by_key(|(id, _)| (*id <= from, *id));
    match next {
        Some((id, name)) => {
            CONSOLE_OWNER.store(*id, Ordering::Release);
            info!(target: "console", "input now goes to vm {name} (Ctrl-] n: next VM)");
        }
        None => CONSOLE_OWNER.store(usize::MAX, Ordering::Release),
    }
}

/// Whether VM `id` (creation order) owns the serial console.
fn owns_console(id: usize) -> bool {
    CONSOLE_OWNER.load(Ordering::Acquire) == id
}

/// Chooses the VM that owns the console first.
pub fn set_console_owner(id: usize) {
    CONSOLE_OWNER.store(id, Ordering::Release);
}
