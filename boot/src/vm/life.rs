//! A VM's resources and life cycle: creation (nothing left behind on
//! failure), `system-reboot`'s reset, destruction and the stop report.

use super::*;

/// The firmware's HPT memory: page allocator and preallocated pool.
pub(super) struct FirmwareHptMemory;

impl HptMemory for FirmwareHptMemory {
    fn alloc_pages(&mut self, order: u32) -> Option<u64> {
        if !crate::mem::may_allocate("HPT from the page allocator") {
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
        if !crate::mem::may_allocate("HPT pool slot") {
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
    /// No contiguous block for disk `lun`'s `mib` MiB.
    NoDiskMemory {
        lun: usize,
        mib: u64,
    },
    /// Disk `lun` cannot be had, and why.
    Disk {
        lun: usize,
        why: String,
    },
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmError::MemorySize(m) => write!(
                f,
                "memory must be a non-zero multiple of 16 MiB, not {m:#x}"
            ),
            VmError::NoMemory(mib) => write!(f, "no {mib} MiB of contiguous memory"),
            VmError::NoDiskMemory { lun, mib } => {
                write!(f, "disk {lun}: no {mib} MiB of contiguous memory")
            }
            VmError::Disk { lun, why } => write!(f, "disk {lun}: {why}"),
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

/// The VRMA page size: 16 MiB (guest memory is a multiple of it).
pub(super) const VRMA_PAGE: PageSize = PageSize::P16M;

/// Writes the VRMA HPTEs mapping guest-real `0..size` onto host-physical
/// `base..` (one per PTEG, slot 7 as KVM does); returns how many.
pub(super) fn map_vrma(hpt: &Hpt, base: u64, size: u64) -> Result<u64, VmError> {
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

pub(super) static LPIDS: spin::Mutex<LpidAllocator> = spin::Mutex::new(LpidAllocator::new());

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
    /// The virtual LANs of its l-lan adapters (`net = LAN [LAN...]`, as
    /// written; the manifest parser checked them).
    pub net: Option<&'a str>,
    /// Its disks, in LUN order (the manifest parser checked them).
    pub disks: Vec<kernel::archive::DiskSpec<'a>>,
}

/// What a VM under construction holds; freed on drop unless the VM was
/// committed (prepare everything first, commit last).
#[derive(Default)]
pub(super) struct Reserved {
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
    pub(super) fn create(
        cfg: &VmConfig<'static>,
        cores: usize,
        id: usize,
    ) -> Result<(VmState, GuestRegs), VmError> {
        let (name, image, mem_size, bootargs) = (cfg.name, cfg.image, cfg.memory, cfg.bootargs);
        if mem_size == 0 || !mem_size.is_multiple_of(VRMA_PAGE.bytes()) {
            return Err(VmError::MemorySize(mem_size));
        }
        let mem_order = 64 - (mem_size - 1).leading_zeros();
        let mem_base = crate::mem::may_allocate("guest memory")
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
        // SAFETY: as above; no vcpu exists yet, so this slice is the only
        // access to the RAM while it lives (kernel::gmem for later ones).
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
        let lpid = match crate::mem::may_allocate("LPID") {
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
        // The devices every VM has: the console and the NVRAM; and an
        // l-lan adapter for each virtual LAN the manifest puts it on.
        let mut devices: Vec<Box<dyn kernel::vio::VioDevice>> =
            alloc::vec![Box::new(Vty), Box::new(Nvram(cfg.nvram))];
        let mut lans = Vec::new();
        for (i, lan) in cfg
            .net
            .into_iter()
            .flat_map(str::split_whitespace)
            .enumerate()
        {
            let unit = kernel::vio::llan::REG + i as u32;
            let window = kernel::vio::tce::TceTable::new(unit, kernel::vio::llan::WINDOW);
            let mac = kernel::vio::lan::mac_for(name, i as u32);
            devices.push(Box::new(kernel::vio::llan::Llan::new(unit, window, mac)));
            lans.push((unit, super::net::lan(lan)));
        }
        // A v-scsi adapter with its disks, if it has any.
        if !cfg.disks.is_empty() {
            let disks = super::disk::make(name, &cfg.disks)?;
            use kernel::vio::vscsi::{Vscsi, REG, WINDOW};
            let window = kernel::vio::tce::TceTable::new(REG, WINDOW);
            devices.push(Box::new(Vscsi::new(window, disks, name, lpid)));
        }
        let vio = VioBus::new(devices);
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
            hypertas_functions: &table::hypertas_functions(),
            rtas_tokens: &tokens,
            vio: &vio,
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
            vio,
            lans,
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
            svc: Services::new(
                cfg.layout,
                &sh.vio.sources(),
                crate::nvstore::load(cfg.name, cfg.nvram)
                    .unwrap_or_else(|| kernel::nvram::blank(cfg.nvram)),
                mem_size,
            ),
            sh,
            con: GuestConsole::default(),
            id,
            externals: 0,
            exits: 0,
            partition_switches: 0,
            timings: VcoreTimings::default(),
        };
        Ok((state, regs))
    }

    /// `system-reboot`, with every vcpu stopped: clear the HPT (refused
    /// unless no vcore is in the guest), mark every core for a TLB flush,
    /// reload the image, initrd and device tree (the caller re-establishes
    /// the VRMA and restarts the vcpus). Guest memory outside those is
    /// kept, as on a real reset.
    pub(super) fn reboot(&mut self, vcores_running: u32) -> Result<(), VmError> {
        hpt::reset(&mut FirmwareHptMemory, &self.hpt, vcores_running).map_err(VmError::Hpt)?;
        self.sh.mmu.tlb.mark_all();
        // Devices first: a closed adapter with no DMA mapping takes no
        // frame into the memory reloaded below.
        self.sh.vio.reset();
        // SAFETY: this VM's own memory; no vcore is in the guest (the
        // HPT reset above refused otherwise), no vcpu is on a thread and
        // no device has a mapping, so this slice is the only access to
        // the RAM while it lives.
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
        self.svc.reset(&self.sh.vcpus);
        self.sh
            .irq_lpcr
            .store(irq_lpcr(self.svc.irq_mode), Ordering::Release);
        self.reboots += 1;
        info!(target: "vm", "{}: system-reboot #{}: HPT cleared, image reloaded", self.name, self.reboots);
        Ok(())
    }

    /// Prints the stop line and returns every resource (once: nothing
    /// runs the VM afterwards).
    pub(super) fn destroy(&mut self, outcome: &Outcome) {
        info!(
            target: "hv",
            "vm {} lpid={} {} hcalls={} exits={} partition-switches={} reboots={} reflected={} external-irqs={} refused-from-user={}",
            self.name,
            self.lpid,
            outcome,
            self.svc.counts.hcalls,
            self.exits,
            self.partition_switches,
            self.reboots,
            self.reflected,
            self.externals,
            self.svc.counts.privileged
        );
        for (node, unit, report) in self.sh.vio.reports() {
            let lan = self.sh.lans.iter().find(|l| l.0 == unit);
            let on = lan
                .map(|l| alloc::format!(" on {}", l.1.name))
                .unwrap_or_default();
            let subsystem = match node {
                "v-scsi" => "disk",
                _ => "net",
            };
            info!(target: subsystem, "vm {} {node}@{unit:x}{on}: {report}", self.name);
        }
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
        if let Some(line) = self.con.term.unterminated() {
            warn!(target: "guest", "{}: (unterminated) {line}", self.name);
        }
    }

    /// One line per hypercall (and RTAS service) the VM made, most used
    /// first: where a guest's time in the hypervisor went.
    pub(super) fn print_hcall_counts(&self) {
        let counts = &self.svc.counts;
        for (n, name, k) in counts.report() {
            info!(target: "hcall", "vm {}: {name} ({k:#x}) {n}", self.name);
        }
        let handlers: Vec<String> = counts
            .handler_report(6)
            .iter()
            .map(|(name, n, avg)| alloc::format!("{name} {n}x{avg}"))
            .collect();
        if !handlers.is_empty() {
            info!(
                target: "hcall",
                "vm {}: device-call handler ticks (calls x mean, most in all first): {}",
                self.name,
                handlers.join(", ")
            );
        }
        if counts.unknown.others > 0 {
            info!(
                target: "hcall",
                "vm {}: {} calls to other unknown numbers",
                self.name,
                counts.unknown.others
            );
        }
    }
}
