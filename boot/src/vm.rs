//! Guest partitions on the firmware: creation (LPID, memory, HPT, VRMA,
//! image, device tree), the run loop on thread 0 of a core, and the
//! hypercalls guests use.

use crate::mem::{HPT_POOL, PAGES};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};
use kernel::deliver::{self, External, InterruptMode};
use kernel::fwnmi::{self, Cause, Fwnmi, Refused};
use kernel::gmem::GuestMemory;
use kernel::guestfdt::{self, GuestFdtConfig};
use kernel::hcall::{self, Hcall, HptCall, H_PARAMETER, H_SUCCESS};
use kernel::hpt::{self, Hpt, HptMemory};
use kernel::layout::{self, LayoutError};
use kernel::lpid::LpidAllocator;
use kernel::mode::{self, ModeChange};
use kernel::rtas::{self, Service};
use kernel::tlb::{TlbOps, VmTlb};
use kernel::vcore::{Cede, CedeState};
use kernel::vpa::Vpa;
use kernel::vterm::{self, Typed, Vterm};
use kernel::xics::{Xics, XicsError};
use log::{info, warn};
use ppc64::cpu;
use ppc64::guest;
use ppc64::hpte::{self, HptOrder, PageSize};
use ppc64::regs::{self, Exit, GuestRegs, PartitionRegs, VcpuEntry};
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
/// The guest time slice (HDEC).
const SLICE_MS: u64 = 10;

/// Id (creation order) of the VM that owns the serial console.
static CONSOLE_OWNER: AtomicUsize = AtomicUsize::new(0);
/// (id, name) of the VMs running now: where Ctrl-] n can move the console.
static RUNNING: spin::Mutex<Vec<(usize, String)>> = spin::Mutex::new(Vec::new());

/// A VM's console output on the serial console: raw for the owner, else
/// one log line each, prefixed with the VM's name.
struct ConsoleSink<'a>(&'a str);

impl vterm::Sink for ConsoleSink<'_> {
    fn raw(&mut self, bytes: &[u8]) {
        crate::CONSOLE.write_raw(bytes);
    }
    fn line(&mut self, line: &str) {
        info!(target: "guest", "{}: {line}", self.0);
    }
}

/// The firmware's HPT memory: page allocator and preallocated pool.
struct FirmwareHptMemory;

impl HptMemory for FirmwareHptMemory {
    fn alloc_pages(&mut self, order: u32) -> Option<u64> {
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
        // SAFETY: `addr..addr+len` was just allocated for this HPT and is
        // RAM that nothing else references (real mode: identity mapped).
        unsafe { core::ptr::write_bytes(addr as *mut u8, 0, len as usize) };
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
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => write!(f, "result=ok"),
            Outcome::Crashed(why) => write!(f, "result=crashed reason=\"{why}\""),
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
    tlb: VmTlb,
    /// Interrupt endianness and location (H_SET_MODE: LPCR[ILE], [AIL]).
    irq_mode: InterruptMode,
    /// How many vcpus the VM has (their ids are 0..).
    nr_vcpus: u32,
    /// Each vcpu's prod/cede handshake (a prod before the cede is kept).
    cede: Vec<CedeState>,
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
    hcalls: u64,
    /// Hypercalls by number (RTAS by service), for the stop report.
    hcall_counts: BTreeMap<u64, u64>,
    /// Implemented hypercalls by table index (no map lookup on the
    /// hypercall path); `hcall_counts` has the others and RTAS services.
    known_counts: [u64; hcall::IMPLEMENTED],
    /// `sc 1` from guest user space, refused.
    privileged: u64,
    /// External interrupts delivered by the hypervisor (the rest are taken
    /// through LPCR[MER]).
    externals: u64,
    exits: u64,
    /// Times the vcore entered the guest (partition switches).
    partition_switches: u64,
    /// Physical core this VM runs on (set by `run`).
    core: usize,
    /// What a reboot reloads: the image, the initrd, the device tree and
    /// the entry registers.
    image: &'static [u8],
    initrd: Option<(u64, &'static [u8])>,
    fdt: Vec<u8>,
    fdt_gpa: u64,
    rtas_base: u64,
    boot_regs: GuestRegs,
    /// Vcpus of this VM inside `run` (the HPT cannot be reset meanwhile).
    vcpus_running: core::sync::atomic::AtomicU32,
    reboots: u32,
    /// Interrupts reflected into the guest.
    reflected: u64,
}

/// A guest partition: its shared state under one lock, taken by a thread
/// to handle an exit of its vcpu and never held while that vcpu runs or
/// naps, and its vcpus, each owned by the thread that runs it meanwhile.
pub struct Vm {
    st: spin::Mutex<VmState>,
    vcpus: spin::Mutex<Vec<Option<Vcpu>>>,
}

impl Vm {
    /// Prepares a VM; nothing is left behind on failure.
    pub fn create(cfg: &VmConfig<'static>, cores: usize, id: usize) -> Result<Vm, VmError> {
        let (st, vcpu0) = VmState::create(cfg, cores, id)?;
        Ok(Vm {
            st: spin::Mutex::new(st),
            vcpus: spin::Mutex::new(alloc::vec![Some(vcpu0)]),
        })
    }

    /// Prints the stop line and returns every resource.
    pub fn destroy(self, outcome: &Outcome) {
        self.st.into_inner().destroy(outcome);
    }

    /// Runs the VM's vcpu 0 on this thread until the VM stops.
    pub fn run(&self, core: usize) -> Outcome {
        // One partition per core at a time: its LPIDR/SDR1/LPCR are the
        // core's on POWER8 (and `partition_enter` keeps one saved copy of
        // the hypervisor's per thread).
        if cpu::lpidr() != u64::from(kernel::lpid::HOST_LPID) {
            return Outcome::Crashed(alloc::format!(
                "core {core} already has partition {} loaded",
                cpu::lpidr()
            ));
        }
        // The thread that runs a vcpu owns it meanwhile.
        let Some(mut v) = self.vcpus.lock().first_mut().and_then(Option::take) else {
            return Outcome::Crashed(String::from("vcpu 0 is already running"));
        };
        let (id, name) = {
            let st = self.st.lock();
            st.vcpus_running.fetch_add(1, Ordering::AcqRel);
            (st.id, st.name.clone())
        };
        RUNNING.lock().push((id, name));
        // The thread's FP/VMX/VSX registers become this guest's (zeros for
        // a new VM), and are saved again when it stops: no other partition
        // ever sees them.
        ppc64::fpu::load(&v.fp);
        let o = self.run_vcpu(&mut v, core);
        ppc64::fpu::save(&mut v.fp);
        self.vcpus.lock()[0] = Some(v);
        let mut st = self.st.lock();
        st.flush_raw();
        RUNNING.lock().retain(|(i, _)| *i != id);
        if st.owns_console() {
            pass_console_on(id);
        }
        st.vcpus_running.fetch_sub(1, Ordering::AcqRel);
        o
    }

    fn run_vcpu(&self, v: &mut Vcpu, core: usize) -> Outcome {
        {
            let mut st = self.st.lock();
            st.core = core;
            let n = match map_vrma(&st.hpt, st.mem_base, st.mem_size) {
                Ok(n) => n,
                Err(e) => return Outcome::Crashed(alloc::format!("{e}")),
            };
            info!(
                target: "vm",
                "{}: lpid {} memory {} MiB at {:#x}, HPT order {} at {:#x}{}, {n} VRMA HPTEs",
                st.name,
                st.lpid,
                st.mem_size >> 20,
                st.mem_base,
                st.hpt.order,
                st.hpt.base,
                if st.hpt.from_pool { " (pool)" } else { "" }
            );
        }
        let host_lpcr = cpu::mfspr::<{ ppc64::spr::LPCR }>();
        loop {
            // The vcore enters the guest: thread 0 switches the partition
            // and flushes this core's TLB for the LPID if the VM ran
            // elsewhere since (need_tlb_flush).
            let part = {
                let mut st = self.st.lock();
                let mut flush = EntryFlush(false);
                st.tlb.on_entry(&mut flush, core);
                st.partition_switches += 1;
                PartitionRegs {
                    lpid: st.lpid as u64,
                    sdr1: st.hpt.sdr1(),
                    lpcr: st.lpcr(host_lpcr, false),
                    flush_tlb: flush.0 as u64,
                    tlb_sets: ppc64::sizes::TLB_SETS,
                }
            };
            // SAFETY: the HPT maps only this VM's memory; the hypervisor
            // runs in real mode until partition_exit.
            unsafe { guest::partition_enter(&part) };
            guest::slb_load(&v.regs);
            let next = self.run_in_partition(v, host_lpcr);
            // The whole vcore is out: back to the hypervisor's partition.
            guest::slb_save_clear(&mut v.regs);
            // SAFETY: this VM's only vcpu is out of the guest.
            unsafe { guest::partition_exit() };
            match next {
                VcoreExit::Reboot => {
                    // Stop the vcpu, then reset; refused (and the VM
                    // stopped) if anything else still ran it.
                    let mut st = self.st.lock();
                    st.vcpus_running.fetch_sub(1, Ordering::AcqRel);
                    let r = st.reboot(v);
                    st.vcpus_running.fetch_add(1, Ordering::AcqRel);
                    if let Err(e) = r {
                        return Outcome::Crashed(alloc::format!("reboot failed: {e}"));
                    }
                }
                VcoreExit::Stop(o) => return o,
            }
        }
    }

    /// Runs the vcpu with its partition loaded: every exit handled on the
    /// thread goes straight back into the guest, without a partition
    /// switch or an SLB save and load. The VM's lock is held only to
    /// prepare an entry and to handle an exit. Returns when the vcore must
    /// leave.
    fn run_in_partition(&self, v: &mut Vcpu, host_lpcr: u64) -> VcoreExit {
        let slice = kernel::time::ms_to_ticks(SLICE_MS);
        loop {
            let entry = self.st.lock().prepare_entry(v, host_lpcr, slice);
            // SAFETY: this vcpu's partition and SLB are loaded on this
            // thread (run_vcpu); `run` forces the MSR bits a guest may
            // not hold.
            let vec = unsafe { guest::run(&mut v.regs, &entry) };
            v.dec_expires = Some(cpu::mftb().wrapping_add(v.regs.dec));
            let exit = Exit::decode(vec);
            let next = self.st.lock().handle_exit(v, exit, vec);
            if exit == Exit::External {
                // An IPI for this thread: run the call it brought.
                crate::smp::external_exit();
            }
            match next {
                Next::Resume => {}
                Next::Cede => self.cede_wait(v),
                Next::Reboot => return VcoreExit::Reboot,
                Next::Stop(o) => return VcoreExit::Stop(o),
            }
        }
    }

    /// H_CEDE: the vcpu sleeps (its thread naps, without the VM's lock)
    /// until an interrupt is presented to it, its decrementer expires, or
    /// it is prodded. A prod that came first ends the cede at once (PAPR).
    fn cede_wait(&self, v: &mut Vcpu) {
        let smp = crate::smp::smp();
        let me = crate::smp::me();
        {
            let mut st = self.st.lock();
            st.flush_raw();
            v.vpa.bump_yield_count(&mut st.mem());
        }
        loop {
            let owner = {
                let mut st = self.st.lock();
                if st.cede_ends(v) {
                    break;
                }
                st.owns_console()
            };
            let mut wait = v
                .dec_expires
                .map_or(spr::DEC_MAX, |e| deliver::dec_remaining(e, cpu::mftb()));
            if owner {
                wait = wait.min(kernel::time::ms_to_ticks(CONSOLE_POLL_MS));
            }
            smp.wait_until(me, Some(wait), || false);
            self.st.lock().poll_console();
        }
        v.vpa.bump_yield_count(&mut self.st.lock().mem());
    }
}

/// One virtual processor: registers, the registrations and wake-up state
/// PAPR keeps per vcpu.
struct Vcpu {
    id: u32,
    regs: GuestRegs,
    /// FP/VMX/VSX registers while the vcpu is not on a thread.
    fp: ppc64::fpu::FpState,
    vpa: Vpa,
    /// Timebase value at which the guest decrementer reaches zero.
    dec_expires: Option<u64>,
    /// (guest address, vector) of the interrupt last delivered by
    /// reflection: a fault at that address means the guest has no handler
    /// there (the VM stops instead of faulting forever).
    last_vector: Option<(u64, u64)>,
}

impl Vcpu {
    fn new(id: u32, regs: GuestRegs) -> Self {
        Vcpu {
            id,
            regs,
            fp: Default::default(),
            vpa: Vpa::default(),
            dec_expires: None,
            last_vector: None,
        }
    }
}

/// What the run loop does after an exit.
enum Next {
    Resume,
    Cede,
    Reboot,
    Stop(Outcome),
}

/// Why the vcore left the guest (the partition is switched back).
enum VcoreExit {
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

/// What a VM is made from.
pub struct VmConfig<'a> {
    pub name: &'a str,
    pub image: &'a [u8],
    pub memory: u64,
    pub hpt_order: Option<u32>,
    pub bootargs: &'a str,
    pub initrd: Option<&'a [u8]>,
    pub load_addr: Option<u64>,
    pub entry_little_endian: bool,
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
    ) -> Result<(VmState, Vcpu), VmError> {
        let (name, image, mem_size, bootargs) = (cfg.name, cfg.image, cfg.memory, cfg.bootargs);
        if mem_size == 0 || !mem_size.is_multiple_of(VRMA_PAGE.bytes()) {
            return Err(VmError::MemorySize(mem_size));
        }
        let mem_order = 64 - (mem_size - 1).leading_zeros();
        let mem_base = PAGES
            .lock()
            .alloc_order(mem_order)
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
        // SAFETY: guest memory was just allocated for this VM alone.
        let mem =
            unsafe { core::slice::from_raw_parts_mut(mem_base as *mut u8, mem_size as usize) };
        mem.fill(0);
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
        let lpid = LPIDS.lock().alloc().map_err(VmError::Lpid)?;
        held.lpid = Some(lpid);
        let tlb = VmTlb::new(lpid, cores);
        tlb.set_online_vcores(1);
        let rtas_base = layout::rtas_base(mem_size);
        mem[rtas_base as usize..rtas_base as usize + rtas::RTAS_BLOB.len()]
            .copy_from_slice(&rtas::RTAS_BLOB);
        let tokens = rtas::tokens();
        let fdt = guestfdt::build(&GuestFdtConfig {
            name,
            // One vcpu per VM until SMT vcores are wired (vcore.rs).
            layout: kernel::vcore::Layout {
                vcpus: 1,
                threads: 1,
            },
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
            vcpus_running: core::sync::atomic::AtomicU32::new(0),
            reboots: 0,
            reflected: 0,
            name: name.into(),
            lpid,
            mem_base,
            mem_order,
            mem_size,
            hpt,
            tlb,
            irq_mode: InterruptMode::default(),
            nr_vcpus: 1,
            cede: alloc::vec![CedeState::default()],
            xics: Xics::new(1, &[true]),
            term: Vterm::default(),
            id,
            tod_offset: 0,
            fwnmi: Fwnmi::default(),
            hcalls: 0,
            hcall_counts: BTreeMap::new(),
            known_counts: [0; hcall::IMPLEMENTED],
            privileged: 0,
            externals: 0,
            exits: 0,
            partition_switches: 0,
            core: 0,
        };
        Ok((state, Vcpu::new(0, regs)))
    }

    /// The guest's LPCR: the host's, with VRMA real mode (VPM0, VRMASD),
    /// guest faults kept in the guest (VPM1=0), external interrupts to the
    /// hypervisor (LPES=0), HDEC interrupts on, the host's power-saving
    /// exit enables (the guest cannot nap; a ceding vcpu's thread naps
    /// with this LPCR loaded and must wake as the host's would), the
    /// guest's interrupt endianness and location (H_SET_MODE), and MER when
    /// an external interrupt waits for the guest to enable MSR[EE].
    fn lpcr(&self, host: u64, mer: bool) -> u64 {
        use spr::{
            LPCR_AIL, LPCR_AIL_SHIFT, LPCR_HDICE, LPCR_ILE, LPCR_LPES0, LPCR_LPES1, LPCR_MER,
            LPCR_VPM0, LPCR_VPM1,
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
        let ile = if self.irq_mode.little_endian {
            LPCR_ILE
        } else {
            0
        };
        let mer = if mer { LPCR_MER } else { 0 };
        (host & !clear)
            | LPCR_VPM0
            | hpte::lpcr_vrmasd(VRMA_PAGE)
            | LPCR_HDICE
            | ile
            | mer
            | (self.irq_mode.ail << LPCR_AIL_SHIFT)
    }

    /// This VM's memory, bounds-checked.
    fn mem(&mut self) -> GuestMemory<'_> {
        // SAFETY: `mem_base..mem_base+mem_size` is this VM's own RAM
        // (allocated in `create`, freed only in `destroy`), identity-mapped
        // in real mode; `&mut self` keeps the view unique on this thread.
        GuestMemory::new(unsafe {
            core::slice::from_raw_parts_mut(self.mem_base as *mut u8, self.mem_size as usize)
        })
    }

    /// `system-reboot`: with the vcpu stopped, clear the HPT (never while a
    /// vcpu runs), mark every core for a TLB flush, reload the image,
    /// initrd and device tree, re-establish the VRMA and restart at the
    /// entry point. Guest memory outside those is kept, as on a real reset.
    fn reboot(&mut self, v: &mut Vcpu) -> Result<(), VmError> {
        hpt::reset(
            &mut FirmwareHptMemory,
            &self.hpt,
            self.vcpus_running.load(Ordering::Acquire),
        )
        .map_err(VmError::Hpt)?;
        self.tlb.mark_all();
        // SAFETY: this VM's own memory; its only vcpu is stopped.
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
        *v = Vcpu::new(0, self.boot_regs);
        self.xics.reset();
        self.irq_mode = InterruptMode::default();
        self.fwnmi.reset();
        self.cede = (0..self.nr_vcpus).map(|_| CedeState::default()).collect();
        ppc64::fpu::load(&v.fp);
        self.reboots += 1;
        info!(target: "vm", "{}: system-reboot #{}: HPT cleared, image reloaded", self.name, self.reboots);
        Ok(())
    }

    /// What the next entry of `v` loads: the interrupt it takes now (or
    /// MER), this VM's LPCR, the time slice, the guest's decrementer.
    fn prepare_entry(&mut self, v: &mut Vcpu, host_lpcr: u64, slice: u64) -> VcpuEntry {
        let mer = self.deliver_external(v);
        // The guest's decrementer keeps counting while the hypervisor
        // runs: load what is left of it (the timebase is shared). A
        // negative value makes the guest take its decrementer interrupt
        // as soon as it enables MSR[EE].
        if let Some(expires) = v.dec_expires {
            v.regs.dec = deliver::dec_remaining(expires, cpu::mftb());
        }
        VcpuEntry {
            lpcr: self.lpcr(host_lpcr, mer),
            hdec: slice,
            hfscr: regs::HFSCR_GUEST,
        }
    }

    /// Handles an exit of `v` on its thread (the partition still loaded).
    /// `vec` is the raw exit vector `exit` was decoded from.
    fn handle_exit(&mut self, v: &mut Vcpu, exit: Exit, vec: u64) -> Next {
        self.exits += 1;
        match exit {
            Exit::Hcall => self.hcall(v),
            // The slice ended: show the console owner's unfinished line
            // and read what was typed (so hypercall exits never pay for an
            // OPAL call). With nothing else to run on this core the vcpu
            // goes straight back in.
            Exit::Hdec => {
                self.flush_raw();
                self.poll_console();
                Next::Resume
            }
            // Doorbells and IPIs for this thread: the caller runs what
            // they brought, without the VM's lock.
            Exit::HvDoorbell | Exit::External => Next::Resume,
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

    /// Whether a ceded `v` must wake: prodded, an interrupt presented, or
    /// its decrementer expired.
    fn cede_ends(&mut self, v: &mut Vcpu) -> bool {
        let dec_due = v
            .dec_expires
            .is_some_and(|e| deliver::dec_expired(e, cpu::mftb()));
        let irq = self.xics.icp(v.id).is_some_and(|i| i.pending().is_some());
        let cede = &self.cede[v.id as usize];
        if cede.take_wake() {
            return true;
        }
        if irq || dec_due {
            cede.end();
        }
        irq || dec_due
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
            // One vcpu per VM: no other vcpu can hold the log yet.
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
        self.term.flush(&mut ConsoleSink(&self.name));
    }

    fn owns_console(&self) -> bool {
        CONSOLE_OWNER.load(Ordering::Acquire) == self.id
    }

    /// Reads what was typed on the serial console if this VM owns it (on
    /// each time slice, every 10 ms of a cede, and when the guest reads
    /// the console); the vty interrupt is asserted while input waits. Ctrl-] n passes the
    /// console on.
    fn poll_console(&mut self) {
        if !self.owns_console() {
            return;
        }
        let mut buf = [0u8; 64];
        let n = ppc64::opal::console_read(&mut buf);
        if self.term.typed(&buf[..n]) == Typed::NextVm {
            self.flush_raw();
            pass_console_on(self.id);
            return;
        }
        self.update_vty_line();
    }

    fn update_vty_line(&mut self) {
        self.xics.set_line(guestfdt::VTY_IRQ, self.term.has_input());
    }

    /// Guest console output: passed through as it is when this VM owns
    /// the console, else printed a line at a time with the VM's name. The
    /// owner's output goes out a whole line at a time too, and an
    /// unfinished line (a shell prompt, the echo of what is typed) as
    /// soon as the guest waits: it cedes, reads the console, or its time
    /// slice ends ([`Vm::flush_raw`]), so a prompt shows before the user
    /// types and other VMs' lines never cut into it.
    fn console_bytes(&mut self, b: &[u8]) {
        let owner = self.owns_console();
        self.term.output(b, owner, &mut ConsoleSink(&self.name));
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
            *self.hcall_counts.entry(nr).or_insert(0) += 1;
            v.regs.gpr[3] = hcall::H_FUNCTION as u64;
            return Next::Resume;
        };
        self.known_counts[index] += 1;
        let (ret, next) = match call {
            Hcall::PutTermChar => (self.h_put_term_char(a[0], a[1], a[2], a[3]), Next::Resume),
            Hcall::GetTermChar => (self.h_get_term_char(v, a[0]), Next::Resume),
            Hcall::SetMode => (self.h_set_mode(v, a[0], a[1], a[2], a[3]), Next::Resume),
            Hcall::Rtas => self.rtas(v, a[0]),
            Hcall::Hpt(op) => {
                let ret = self.hpt_hcall(op, a);
                v.regs.gpr[4..12].copy_from_slice(&ret.vals);
                (ret.code, Next::Resume)
            }
            Hcall::Xirr | Hcall::XirrX => {
                let (xirr, _) = self.xics.accept(v.id);
                v.regs.gpr[4] = u64::from(xirr);
                if call == Hcall::XirrX {
                    v.regs.gpr[5] = cpu::mftb();
                }
                (H_SUCCESS, Next::Resume)
            }
            Hcall::Eoi => (xics_ret(self.xics.eoi(v.id, a[0])), Next::Resume),
            Hcall::Cppr => (xics_ret(self.xics.set_cppr(v.id, a[0])), Next::Resume),
            Hcall::Ipi => (xics_ret(self.xics.set_mfrr(a[0], a[1])), Next::Resume),
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
                match self.cede[v.id as usize].cede() {
                    Cede::Resume => (H_SUCCESS, Next::Resume),
                    Cede::Sleep => (H_SUCCESS, Next::Cede),
                }
            }
            // Remembered if the target has not ceded yet. A ceded target
            // is woken through its thread: with one vcpu per VM the
            // caller is the only vcpu and is running.
            Hcall::Prod => match self.vcpu_id(a[0]) {
                Some(id) => {
                    self.cede[id as usize].prod();
                    (H_SUCCESS, Next::Resume)
                }
                None => (H_PARAMETER, Next::Resume),
            },
            // Yield to another vcpu (-1: any): with every vcpu of the VM
            // on its own thread there is nothing to give the time to.
            Hcall::Confer => match (a[0] as i64 == -1) || self.vcpu_id(a[0]).is_some() {
                true => (H_SUCCESS, Next::Resume),
                false => (H_PARAMETER, Next::Resume),
            },
            Hcall::RegisterVpa => match self.vcpu_id(a[1]) {
                Some(_) => {
                    let mut vpa = v.vpa;
                    let rc = vpa.register(a[0], a[2], &mut self.mem());
                    v.vpa = vpa;
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
        (id < u64::from(self.nr_vcpus)).then_some(id as u32)
    }

    /// H_PUT_TERM_CHAR(vtermno, len, chars 0-7, chars 8-15).
    fn h_put_term_char(&mut self, term: u64, len: u64, hi: u64, lo: u64) -> i64 {
        let Some((bytes, n)) = vterm::unpack(len, hi, lo) else {
            return H_PARAMETER;
        };
        if term != u64::from(guestfdt::VTY_REG) {
            return H_PARAMETER;
        }
        self.console_bytes(&bytes[..n]);
        H_SUCCESS
    }

    /// H_GET_TERM_CHAR(vtermno): up to 16 typed bytes in r5, r6; count in r4.
    fn h_get_term_char(&mut self, v: &mut Vcpu, term: u64) -> i64 {
        if term != u64::from(guestfdt::VTY_REG) {
            return H_PARAMETER;
        }
        self.flush_raw();
        self.poll_console();
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
            Ok(ModeChange::Ail(ail)) => self.irq_mode.ail = ail,
            Ok(ModeChange::LittleEndian(le)) => self.irq_mode.little_endian = le,
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

    fn hpt_hcall(&mut self, op: HptCall, a: [u64; 8]) -> hcall::Ret {
        let entries = self.hpt.size() / 16;
        // SAFETY: the HPT belongs to this VM alone; its entries are only
        // changed under their HPTE lock (kernel::hcall), by atomic
        // accesses, so vcpus on several threads may share it.
        let table = unsafe {
            core::slice::from_raw_parts(
                self.hpt.base as *const core::sync::atomic::AtomicU64,
                2 * entries as usize,
            )
        };
        let p = hcall::Partition {
            hpt: table,
            mem_base: self.mem_base,
            mem_size: self.mem_size,
            tlb: &self.tlb,
            core: self.core,
            running_here: true,
        };
        let ops = &mut Power8Tlb;
        let ret = match op {
            HptCall::Enter => p.h_enter(a[0], a[1], a[2], a[3]),
            HptCall::Remove => p.h_remove(ops, a[0], a[1], a[2]),
            HptCall::Read => p.h_read(a[0], a[1]),
            HptCall::Protect => p.h_protect(ops, a[0], a[1], a[2]),
            HptCall::ClearRef => p.h_clear_ref(ops, a[1]),
            HptCall::ClearMod => p.h_clear_mod(ops, a[1]),
            HptCall::BulkRemove => p.h_bulk_remove(ops, a),
        };
        if op != HptCall::Read {
            // SAFETY: orders the HPTE updates before the guest runs again.
            unsafe { core::arch::asm!("ptesync") };
        }
        ret
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
        *self
            .hcall_counts
            .entry(RTAS_COUNT_BASE | u64::from(call.token))
            .or_insert(0) += 1;
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
        let xics_status = |r: Result<kernel::xics::Kick, XicsError>| match r {
            Ok(_) => OK,
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
                (xics_status(r), Next::Resume)
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
                (xics_status(r), Next::Resume)
            }
            Service::QueryCpuStoppedState => {
                if c.nargs < 1 {
                    return (BAD, Next::Resume);
                }
                match self.vcpu_id(args[0].into()) {
                    Some(_) => {
                        rets[0] = rtas::CPU_RUNNING;
                        (OK, Next::Resume)
                    }
                    None => (BAD, Next::Resume),
                }
            }
            // start-cpu(id, address, r3): every vcpu of a VM runs (one
            // per VM today), so starting one is a hardware error, as on
            // QEMU's pseries for a running cpu; an unknown id a parameter
            // error.
            Service::StartCpu => match c.nargs >= 3 && self.vcpu_id(args[0].into()).is_some() {
                true => (rtas::HARDWARE_ERROR, Next::Resume),
                false => (BAD, Next::Resume),
            },
            // The caller stops until another vcpu starts it again; with no
            // other vcpu left running nothing ever can: the VM ends.
            Service::StopSelf => (
                OK,
                Next::Stop(Outcome::Crashed(String::from(
                    "stop-self on the last running vcpu",
                ))),
            ),
        }
    }

    /// Ends an unterminated console line (so it counts as the last line).
    fn flush_line(&mut self) {
        if self.term.unterminated().is_some() {
            self.console_bytes(b"\n");
        }
    }

    /// Prints the stop line and returns every resource.
    fn destroy(self, outcome: &Outcome) {
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
        for c in 0..self.tlb.cores() {
            let (l, g, f) = self.tlb.counts(c);
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
        let mut v: Vec<_> = known
            .map(|(i, n)| (*n, hcall::number(i)))
            .chain(self.hcall_counts.iter().map(|(k, n)| (*n, *k)))
            .collect();
        v.sort_by(|a, b| b.cmp(a));
        for (n, k) in v {
            let name = if k & RTAS_COUNT_BASE != 0 {
                let t = (k & !RTAS_COUNT_BASE) as u32;
                rtas::SERVICES
                    .iter()
                    .find(|(_, s)| rtas::token(*s) == t)
                    .map_or("rtas ?", |(n, _)| n)
            } else {
                hcall::name(k)
            };
            info!(target: "hcall", "vm {}: {name} ({k:#x}) {n}", self.name);
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

fn xics_ret(r: Result<kernel::xics::Kick, XicsError>) -> i64 {
    match r {
        Ok(_) => H_SUCCESS,
        Err(_) => H_PARAMETER,
    }
}

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

/// Chooses the VM that owns the console first.
pub fn set_console_owner(id: usize) {
    CONSOLE_OWNER.store(id, Ordering::Release);
}
