//! Guest partitions on the firmware: creation (LPID, memory, HPT, VRMA,
//! image, device tree), the run loop on thread 0 of a core, and the
//! hypercalls guests use.

use crate::mem::{HPT_POOL, PAGES};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use kernel::guestfdt::{self, GuestFdtConfig};
use kernel::hcall;
use kernel::hpt::{self, Hpt, HptMemory};
use kernel::lpid::LpidAllocator;
use kernel::tlb::{TlbOps, VmTlb};
use log::{info, warn};
use ppc64::cpu;
use ppc64::guest::{self, GuestRegs, PartitionRegs};
use ppc64::hpte::{self, HptOrder, PageSize};

/// PAPR return codes as guests see them in r3.
const H_SUCCESS: u64 = hcall::H_SUCCESS as u64;
const H_FUNCTION: u64 = hcall::H_FUNCTION as u64;
const H_PARAMETER: u64 = hcall::H_PARAMETER as u64;

/// `ibm,hypertas-functions`: the PAPR function sets implemented.
const HYPERTAS_FUNCTIONS: &[&str] = &["hcall-pft", "hcall-term", "hcall-set-mode"];

/// RTAS tokens this hypervisor implements (values are ours to choose).
pub const RTAS_POWER_OFF: u32 = 0x2001;
pub const RTAS_SYSTEM_REBOOT: u32 = 0x2002;
pub const RTAS_DISPLAY_CHARACTER: u32 = 0x2003;
pub const RTAS_GET_TIME_OF_DAY: u32 = 0x2004;

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
        cpu::tlbiel_lpid(lpid as u64, rb);
    }
    fn global(&mut self, lpid: u32, rb: u64) {
        cpu::tlbie_lpid(lpid as u64, rb);
    }
    fn flush_lpid_here(&mut self, _: u32) {
        // Whole-LPID flushes happen in the entry asm (PartitionRegs::flush_tlb).
    }
}

/// SRR1 bits an interrupt sets (33:36, 42:47); the rest copy the MSR.
const SRR1_INTERRUPT_BITS: u64 = 0x7800_0000 | 0x003f_0000;
/// SRR1 bit 44: program interrupt for an illegal instruction.
const SRR1_PROGRAM_ILLEGAL: u64 = 1 << 19;

/// How a VM ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Crashed(String),
    /// The guest asked for `system-reboot` (handled inside `run`).
    Reboot,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => write!(f, "result=ok"),
            Outcome::Crashed(why) => write!(f, "result=crashed reason=\"{why}\""),
            Outcome::Reboot => write!(f, "result=reboot"),
        }
    }
}

pub struct Vm {
    pub name: String,
    pub lpid: u32,
    mem_base: u64,
    mem_order: u32,
    mem_size: u64,
    pub hpt: Hpt,
    tlb: VmTlb,
    lpcr_ile: bool,
    regs: GuestRegs,
    line: Vec<u8>,
    hcalls: u64,
    exits: u64,
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
    /// The guest's FP/VMX/VSX registers while its vcpu is not on a thread.
    fp: ppc64::fpu::FpState,
}

/// The VRMA page size: 16 MiB (guest memory is a multiple of it).
const VRMA_PAGE: PageSize = PageSize::P16M;

/// Writes the VRMA HPTEs mapping guest-real `0..size` onto host-physical
/// `base..` (one per PTEG, slot 7 as KVM does); returns how many.
fn map_vrma(hpt: &Hpt, base: u64, size: u64) -> Result<u64, String> {
    let order = HptOrder::new(hpt.order).ok_or("bad HPT order")?;
    let pages = size.div_ceil(VRMA_PAGE.bytes());
    for i in 0..pages {
        let (pteg, e) = hpte::vrma_hpte(order, i, VRMA_PAGE, base + i * VRMA_PAGE.bytes())
            .map_err(|e| alloc::format!("VRMA page {i}: {e:?}"))?;
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

/// The RTAS blob placed in guest memory (big-endian code: guests enter
/// RTAS big-endian): `mr r4,r3; lis r3,0; ori r3,r3,0xf000; sc 1; blr`.
const RTAS_BLOB: [u8; 20] = [
    0x7c, 0x64, 0x1b, 0x78, 0x3c, 0x60, 0x00, 0x00, 0x60, 0x63, 0xf0, 0x00, 0x44, 0x00, 0x00, 0x22,
    0x4e, 0x80, 0x00, 0x20,
];

static LPIDS: spin::Mutex<LpidAllocator> = spin::Mutex::new(LpidAllocator::new());

/// What a VM is made from.
pub struct VmConfig<'a> {
    pub name: &'a str,
    pub image: &'a [u8],
    pub memory: u64,
    pub hpt_order: Option<u32>,
    pub bootargs: &'a str,
    pub initrd: Option<&'a [u8]>,
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

impl Vm {
    /// Prepares a VM; nothing is left behind on failure.
    pub fn create(cfg: &VmConfig<'static>, cores: usize) -> Result<Vm, String> {
        let (name, image, mem_size, bootargs) = (cfg.name, cfg.image, cfg.memory, cfg.bootargs);
        if mem_size == 0 || !mem_size.is_multiple_of(VRMA_PAGE.bytes()) {
            return Err(alloc::format!(
                "memory must be a non-zero multiple of 16 MiB, not {mem_size:#x}"
            ));
        }
        let mem_order = 64 - (mem_size - 1).leading_zeros();
        let mem_base = PAGES
            .lock()
            .alloc_order(mem_order)
            .ok_or_else(|| alloc::format!("no {} MiB of contiguous memory", mem_size >> 20))?;
        let mut held = Reserved {
            mem: Some((mem_base, mem_order)),
            ..Default::default()
        };
        let want_order = cfg
            .hpt_order
            .unwrap_or_else(|| hpt::default_order(mem_size));
        let hpt =
            hpt::alloc(&mut FirmwareHptMemory, want_order).map_err(|e| alloc::format!("{e}"))?;
        held.hpt = Some(hpt);
        // SAFETY: guest memory was just allocated for this VM alone.
        let mem =
            unsafe { core::slice::from_raw_parts_mut(mem_base as *mut u8, mem_size as usize) };
        mem.fill(0);
        let loaded = kernel::elf::load(image, mem).map_err(|e| alloc::format!("image: {e}"))?;
        if hpt.order != want_order {
            info!(target: "vm", "{name}: HPT order {want_order} not available, got order {}{}", hpt.order, if hpt.from_pool { " from the pool" } else { "" });
        }
        // The guest's initrd, 1 MiB-aligned after the image.
        let initrd = match cfg.initrd {
            None => None,
            Some(data) => {
                let start = loaded.end.next_multiple_of(1 << 20);
                let end = start + data.len() as u64;
                if end + (1 << 20) > mem_size {
                    return Err(alloc::format!(
                        "initrd of {} KiB does not fit in guest memory",
                        data.len() / 1024
                    ));
                }
                mem[start as usize..end as usize].copy_from_slice(data);
                Some((start, end))
            }
        };
        let top_used = initrd.map(|i| i.1).unwrap_or(loaded.end);
        let lpid = LPIDS
            .lock()
            .alloc()
            .map_err(|e| alloc::format!("LPID: {e}"))?;
        held.lpid = Some(lpid);
        let tlb = VmTlb::new(lpid, cores);
        tlb.set_online_vcores(1);
        // Top of guest memory: RTAS blob, then the device tree below it.
        let rtas_base = mem_size - 0x1000;
        mem[rtas_base as usize..rtas_base as usize + RTAS_BLOB.len()].copy_from_slice(&RTAS_BLOB);
        let tokens = [
            ("power-off", RTAS_POWER_OFF),
            ("system-reboot", RTAS_SYSTEM_REBOOT),
            ("display-character", RTAS_DISPLAY_CHARACTER),
            ("get-time-of-day", RTAS_GET_TIME_OF_DAY),
        ];
        let fdt = guestfdt::build(&GuestFdtConfig {
            name,
            vcpus: 1,
            memory: mem_size,
            hpt_order: hpt.order,
            timebase_frequency: kernel::time::timebase_hz() as u32,
            clock_frequency: 3_000_000_000,
            bootargs,
            initrd,
            rtas_base: rtas_base as u32,
            rtas_size: 0x1000,
            hypertas_functions: HYPERTAS_FUNCTIONS,
            rtas_tokens: &tokens,
        });
        let fdt_gpa = (rtas_base - fdt.len() as u64) & !0xfff;
        if fdt_gpa < top_used {
            return Err("no room for the device tree above the image".into());
        }
        mem[fdt_gpa as usize..fdt_gpa as usize + fdt.len()].copy_from_slice(&fdt);
        let mut regs = GuestRegs {
            pc: loaded.entry,
            msr: cpu::MSR_SF | cpu::MSR_ME | cpu::MSR_RI | cpu::MSR_LE,
            dec: cpu::DEC_MAX,
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
        Ok(Vm {
            image,
            initrd: initrd_copy,
            fdt,
            fdt_gpa,
            rtas_base,
            boot_regs: regs,
            vcpus_running: core::sync::atomic::AtomicU32::new(0),
            reboots: 0,
            reflected: 0,
            fp: Default::default(),
            name: name.into(),
            lpid,
            mem_base,
            mem_order,
            mem_size,
            hpt,
            tlb,
            lpcr_ile: false,
            regs,
            line: Vec::new(),
            hcalls: 0,
            exits: 0,
            core: 0,
        })
    }

    /// The guest's LPCR: the host's, with VRMA real mode (VPM0, VRMASD),
    /// guest faults kept in the guest (VPM1=0), external interrupts to the
    /// hypervisor (LPES=0), HDEC interrupts on, no power-saving exits, and
    /// the guest's interrupt endianness (H_SET_MODE).
    fn lpcr(&self, host: u64) -> u64 {
        use cpu::{LPCR_HDICE, LPCR_ILE, LPCR_LPES0, LPCR_LPES1, LPCR_PECE, LPCR_VPM0, LPCR_VPM1};
        let clear = LPCR_VPM0
            | LPCR_VPM1
            | hpte::LPCR_VRMASD
            | LPCR_ILE
            | LPCR_LPES0
            | LPCR_LPES1
            | LPCR_HDICE
            | LPCR_PECE;
        let ile = if self.lpcr_ile { LPCR_ILE } else { 0 };
        (host & !clear) | LPCR_VPM0 | hpte::lpcr_vrmasd(VRMA_PAGE) | LPCR_HDICE | ile
    }

    /// `system-reboot`: with the vcpu stopped, clear the HPT (never while a
    /// vcpu runs), mark every core for a TLB flush, reload the image,
    /// initrd and device tree, re-establish the VRMA and restart at the
    /// entry point. Guest memory outside those is kept, as on a real reset.
    fn reboot(&mut self) -> Result<(), String> {
        hpt::reset(
            &mut FirmwareHptMemory,
            &self.hpt,
            self.vcpus_running
                .load(core::sync::atomic::Ordering::Acquire),
        )
        .map_err(|e| alloc::format!("{e}"))?;
        self.tlb.mark_all();
        // SAFETY: this VM's own memory; its only vcpu is stopped.
        let mem = unsafe {
            core::slice::from_raw_parts_mut(self.mem_base as *mut u8, self.mem_size as usize)
        };
        kernel::elf::load(self.image, mem).map_err(|e| alloc::format!("reload: {e}"))?;
        if let Some((start, data)) = self.initrd {
            mem[start as usize..start as usize + data.len()].copy_from_slice(data);
        }
        let rb = self.rtas_base as usize;
        mem[rb..rb + RTAS_BLOB.len()].copy_from_slice(&RTAS_BLOB);
        let f = self.fdt_gpa as usize;
        mem[f..f + self.fdt.len()].copy_from_slice(&self.fdt);
        map_vrma(&self.hpt, self.mem_base, self.mem_size)?;
        self.regs = self.boot_regs;
        self.lpcr_ile = false;
        self.fp = Default::default();
        ppc64::fpu::load(&self.fp);
        self.reboots += 1;
        info!(target: "vm", "{}: system-reboot #{}: HPT cleared, image reloaded", self.name, self.reboots);
        Ok(())
    }

    /// Runs the VM on this thread until it stops.
    pub fn run(&mut self, core: usize) -> Outcome {
        use core::sync::atomic::Ordering;
        self.vcpus_running.fetch_add(1, Ordering::AcqRel);
        // The thread's FP/VMX/VSX registers become this guest's (zeros for
        // a new VM), and are saved again when it stops: no other partition
        // ever sees them.
        ppc64::fpu::load(&self.fp);
        let o = self.run_vcpu(core);
        ppc64::fpu::save(&mut self.fp);
        self.vcpus_running.fetch_sub(1, Ordering::AcqRel);
        o
    }

    fn run_vcpu(&mut self, core: usize) -> Outcome {
        self.core = core;
        let n = match map_vrma(&self.hpt, self.mem_base, self.mem_size) {
            Ok(n) => n,
            Err(e) => return Outcome::Crashed(e),
        };
        info!(
            target: "vm",
            "{}: lpid {} memory {} MiB at {:#x}, HPT order {} at {:#x}{}, {n} VRMA HPTEs",
            self.name,
            self.lpid,
            self.mem_size >> 20,
            self.mem_base,
            self.hpt.order,
            self.hpt.base,
            if self.hpt.from_pool { " (pool)" } else { "" }
        );
        let host_lpcr = cpu::mfspr::<{ cpu::SPR_LPCR }>();
        let mut dec_expires: Option<u64> = None;
        loop {
            let mut flush = EntryFlush(false);
            self.tlb.on_entry(&mut flush, core);
            let part = PartitionRegs {
                lpid: self.lpid as u64,
                sdr1: self.hpt.sdr1(),
                lpcr: self.lpcr(host_lpcr),
                hdec: kernel::time::ms_to_ticks(10),
                flush_tlb: flush.0 as u64,
                tlb_sets: 512,
                hfscr: guest::HFSCR_GUEST,
            };
            // The guest's decrementer keeps counting while the hypervisor
            // runs: load what is left of it (the timebase is shared).
            if let Some(expires) = dec_expires {
                self.regs.dec = expires.wrapping_sub(cpu::mftb()) as i64 as i32 as i64 as u64;
            }
            // SAFETY: the HPT maps only this VM's memory and regs.msr has
            // HV clear (set in `create`, never from guest input).
            let vec = unsafe { guest::enter(&mut self.regs, &part) };
            dec_expires = Some(cpu::mftb().wrapping_add(self.regs.dec));
            self.exits += 1;
            match vec & !1 {
                0xc00 => match self.hcall() {
                    None => {}
                    Some(Outcome::Reboot) => {
                        // Stop the vcpu, then reset; refused (and the VM
                        // stopped) if anything else still ran it.
                        use core::sync::atomic::Ordering;
                        self.vcpus_running.fetch_sub(1, Ordering::AcqRel);
                        let r = self.reboot();
                        self.vcpus_running.fetch_add(1, Ordering::AcqRel);
                        if let Err(e) = r {
                            return Outcome::Crashed(alloc::format!("reboot failed: {e}"));
                        }
                        dec_expires = None;
                    }
                    Some(o) => return o,
                },
                0x980 => {}
                0x500 => crate::smp::external_exit(),
                // Directed hypervisor doorbell: only the hypervisor sends
                // these (msgsnd is hypervisor-privileged); nothing to do.
                0xe80 => {}
                // A hypervisor-privileged or unknown instruction: to the
                // guest it is an illegal-instruction program interrupt.
                0xe40 => self.reflect(0x700, SRR1_PROGRAM_ILLEGAL),
                other => {
                    return Outcome::Crashed(alloc::format!(
                        "unexpected exit {:#x} ({}) at pc {:#x} msr {:#x} hdar {:#x}",
                        other,
                        ppc64::trap::vector_name(other),
                        self.regs.pc,
                        self.regs.msr,
                        self.regs.hdar
                    ))
                }
            }
        }
    }

    /// Delivers an interrupt to the guest as the hardware would: SRR0/1
    /// get the interrupted PC and MSR (with `reason` in SRR1), the guest
    /// continues at `vector` in real mode, 64-bit, with its interrupt
    /// endianness (LPCR[ILE], from H_SET_MODE).
    fn reflect(&mut self, vector: u64, reason: u64) {
        let msr = self.regs.msr;
        self.regs.srr0 = self.regs.pc;
        self.regs.srr1 = (msr & !SRR1_INTERRUPT_BITS) | reason;
        self.regs.msr =
            cpu::MSR_SF | (msr & cpu::MSR_ME) | if self.lpcr_ile { cpu::MSR_LE } else { 0 };
        self.regs.pc = vector;
        self.reflected += 1;
    }

    /// Guest-physical `gpa..gpa+len` as host memory, if inside the VM.
    fn guest_mem(&mut self, gpa: u64, len: u64) -> Option<&mut [u8]> {
        let end = gpa.checked_add(len)?;
        if end > self.mem_size {
            return None;
        }
        // SAFETY: bounds checked against this VM's own memory.
        Some(unsafe {
            core::slice::from_raw_parts_mut((self.mem_base + gpa) as *mut u8, len as usize)
        })
    }

    fn console_bytes(&mut self, b: &[u8]) {
        for &c in b {
            if c == b'\n' || self.line.len() >= 200 {
                let s = String::from_utf8_lossy(&self.line).into_owned();
                info!(target: "guest", "{}: {}", self.name, s);
                self.line.clear();
            } else if c != b'\r' {
                self.line.push(c);
            }
        }
    }

    /// Handles `sc 1`; returns Some when the VM stops.
    fn hcall(&mut self) -> Option<Outcome> {
        self.hcalls += 1;
        let r = &mut self.regs.gpr;
        let (nr, a) = (r[3], [r[4], r[5], r[6], r[7], r[8], r[9]]);
        let ret = match nr {
            hcall::H_PUT_TERM_CHAR => {
                let len = a[1];
                if a[0] != 0 || len > 16 {
                    H_PARAMETER
                } else {
                    let mut bytes = [0u8; 16];
                    bytes[..8].copy_from_slice(&a[2].to_be_bytes());
                    bytes[8..].copy_from_slice(&a[3].to_be_bytes());
                    self.console_bytes(&bytes[..len as usize]);
                    H_SUCCESS
                }
            }
            hcall::H_GET_TERM_CHAR => {
                if a[0] != 0 {
                    H_PARAMETER
                } else {
                    self.regs.gpr[4] = 0;
                    H_SUCCESS
                }
            }
            hcall::H_SET_MODE => match (a[0], a[1]) {
                (1, 4) if a[2] == 0 && a[3] == 0 => {
                    self.lpcr_ile = true;
                    H_SUCCESS
                }
                (0, 4) if a[2] == 0 && a[3] == 0 => {
                    self.lpcr_ile = false;
                    H_SUCCESS
                }
                _ => H_PARAMETER,
            },
            hcall::H_RTAS => return self.rtas(a[0]),
            hcall::H_ENTER
            | hcall::H_REMOVE
            | hcall::H_READ
            | hcall::H_PROTECT
            | hcall::H_BULK_REMOVE
            | hcall::H_CLEAR_REF
            | hcall::H_CLEAR_MOD => {
                let args = [r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11]];
                let ret = self.hpt_hcall(nr, args);
                self.regs.gpr[4..12].copy_from_slice(&ret.vals);
                ret.code as u64
            }
            _ => H_FUNCTION,
        };
        self.regs.gpr[3] = ret;
        None
    }

    fn hpt_hcall(&mut self, nr: u64, a: [u64; 8]) -> hcall::Ret {
        let entries = self.hpt.size() / 16;
        // SAFETY: the HPT belongs to this VM alone and no vcpu of it runs
        // while its thread handles this hypercall.
        let table = unsafe {
            core::slice::from_raw_parts_mut(self.hpt.base as *mut u64, 2 * entries as usize)
        };
        let mut p = hcall::Partition {
            hpt: table,
            mem_base: self.mem_base,
            mem_size: self.mem_size,
            tlb: &self.tlb,
            core: self.core,
            running_here: true,
        };
        let ops = &mut Power8Tlb;
        let ret = match nr {
            hcall::H_ENTER => p.h_enter(a[0], a[1], a[2], a[3]),
            hcall::H_REMOVE => p.h_remove(ops, a[0], a[1], a[2]),
            hcall::H_READ => p.h_read(a[0], a[1]),
            hcall::H_PROTECT => p.h_protect(ops, a[0], a[1], a[2]),
            hcall::H_CLEAR_REF => p.h_clear_ref(ops, a[1]),
            hcall::H_CLEAR_MOD => p.h_clear_mod(ops, a[1]),
            _ => p.h_bulk_remove(ops, a),
        };
        if nr != hcall::H_READ {
            // SAFETY: orders the HPTE updates before the guest runs again.
            unsafe { core::arch::asm!("ptesync") };
        }
        ret
    }

    /// H_RTAS: the argument buffer is big-endian (token, nargs, nret, args, rets).
    fn rtas(&mut self, gpa: u64) -> Option<Outcome> {
        let Some(hdr) = self.guest_mem(gpa, 12).map(|b| {
            let w = |i: usize| u32::from_be_bytes(b[i * 4..i * 4 + 4].try_into().unwrap());
            (w(0), w(1), w(2))
        }) else {
            self.regs.gpr[3] = H_PARAMETER;
            return None;
        };
        let (token, nargs, nret) = hdr;
        if nargs > 16
            || nret > 16
            || self
                .guest_mem(gpa, 12 + 4 * (nargs + nret) as u64)
                .is_none()
        {
            self.regs.gpr[3] = H_PARAMETER;
            return None;
        }
        let set_ret = |vm: &mut Vm, i: u32, v: i32| {
            if i < nret {
                let off = 12 + 4 * (nargs + i) as u64;
                if let Some(b) = vm.guest_mem(gpa + off, 4) {
                    b.copy_from_slice(&v.to_be_bytes());
                }
            }
        };
        self.regs.gpr[3] = H_SUCCESS;
        match token {
            RTAS_POWER_OFF => {
                set_ret(self, 0, 0);
                Some(Outcome::Ok)
            }
            RTAS_GET_TIME_OF_DAY => {
                // Status, then year, month, day, hour, minute, second, ns.
                match ppc64::opal::rtc_read() {
                    Some(t) => {
                        set_ret(self, 0, 0);
                        for (i, v) in t.iter().enumerate() {
                            set_ret(self, 1 + i as u32, *v as i32);
                        }
                        set_ret(self, 7, 0);
                    }
                    None => set_ret(self, 0, -1), // hardware error
                }
                None
            }
            RTAS_SYSTEM_REBOOT => {
                set_ret(self, 0, 0);
                Some(Outcome::Reboot)
            }
            RTAS_DISPLAY_CHARACTER => {
                let c = self.guest_mem(gpa + 12, 4).map(|b| b[3]).unwrap_or(b'?');
                self.console_bytes(&[c]);
                set_ret(self, 0, 0);
                None
            }
            _ => {
                set_ret(self, 0, -3); // RTAS "parameter error / no such call"
                None
            }
        }
    }

    /// Prints the stop line and returns every resource.
    pub fn destroy(self, outcome: &Outcome) {
        info!(
            target: "hv",
            "vm {} lpid={} {} hcalls={} exits={} reboots={} reflected={}",
            self.name,
            self.lpid,
            outcome,
            self.hcalls,
            self.exits,
            self.reboots,
            self.reflected
        );
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
        if self.line.is_empty() {
            return;
        }
        warn!(target: "guest", "{}: (unterminated) {}", self.name, String::from_utf8_lossy(&self.line));
    }
}
