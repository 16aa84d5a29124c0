//! Memory and machine discovery at boot: device tree, free-memory map,
//! heap, page allocator and the preallocated HPT pool.

use crate::machine::fatal;
use buddy_system_allocator::LockedHeap;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::bootargs::{self, BootArgs};
use kernel::devtree::{self, Topology};
use kernel::hptpool::{self, HptPool};
use kernel::memmap::{self, Range, RangeSet};
use kernel::pagealloc::{PageAllocator, PAGE_SIZE};
use kernel::units::MIB;
use log::{info, warn};
use ppc64::vectors;

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();

/// Bytes of the heap in use.
pub fn heap_used() -> usize {
    HEAP.lock().stats_alloc_actual()
}

/// Physical pages of all free RAM.
pub static PAGES: spin::Mutex<PageAllocator> = spin::Mutex::new(PageAllocator::new());
/// The preallocated HPT pool (seed 002).
pub static HPT_POOL: spin::Once<spin::Mutex<HptPool>> = spin::Once::new();

/// What guests are told about speculation mitigations
/// (H_GET_CPU_CHARACTERISTICS), from the host firmware's device tree.
pub static CPU_CHARACTERISTICS: spin::Once<kernel::cpuchar::Characteristics> = spin::Once::new();

/// `tlbiel` flushes only the executing thread (QEMU; see kernel::quirks).
pub static TLBIEL_REACHES_ONE_THREAD: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

/// Heap size: 1/64 of RAM, between 4 and 64 MiB.
fn heap_size(ram: u64) -> u64 {
    (ram / 64).clamp(4 * MIB, 64 * MIB)
}

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

/// What the rest of the boot needs from memory discovery.
pub struct BootInfo {
    pub args: BootArgs,
    pub topology: Topology,
    pub icps: alloc::vec::Vec<devtree::IcpWindow>,
    /// The boot archive (QEMU -initrd), still in place and reserved.
    pub initrd: Option<Range>,
    /// skiboot's system flash (where guest NVRAMs are kept).
    pub flash: Option<devtree::Flash>,
}

fn fdt_blob(addr: u64) -> &'static [u8] {
    // SAFETY: skiboot passes the address of a valid flattened device tree
    // in r3; its header (40 bytes) holds the total size, big-endian at +4.
    let total = unsafe { u32::from_be(core::ptr::read_unaligned((addr + 4) as *const u32)) };
    if !(40..=64 * MIB as u32).contains(&total) {
        fatal(format_args!(
            "device tree at {addr:#x} has an implausible size {total}"
        ));
    }
    // SAFETY: as above; the tree stays in place (it is reserved below) and
    // nothing writes to it.
    unsafe { core::slice::from_raw_parts(addr as *const u8, total as usize) }
}

pub fn init(fdt_addr: u64) -> BootInfo {
    let blob = fdt_blob(fdt_addr);
    let fdt = devtree::open(blob).unwrap_or_else(|e| fatal(format_args!("{e} (at {fdt_addr:#x})")));
    let chosen = devtree::chosen(&fdt).unwrap_or_else(|e| fatal(format_args!("{e}")));
    let args = bootargs::parse(
        chosen.bootargs,
        |b| warn!(target: "hv", "ignoring boot argument `{}`: {}", b.word, b.why),
    );
    if let Some(l) = args.log {
        log::set_max_level(l);
    }
    if !chosen.bootargs.is_empty() {
        info!(target: "hv", "bootargs: {}", chosen.bootargs);
    }
    let memory = devtree::memory(&fdt).unwrap_or_else(|e| fatal(format_args!("{e}")));
    let ram = memory.total();
    for r in memory.iter() {
        info!(target: "mem", "memory  {r} ({} MiB)", r.size() / MIB);
    }

    // Everything that must never be handed out.
    let mut firmware = RangeSet::new();
    devtree::reserved(&fdt, |r| {
        firmware.add(r).map_err(|_| devtree::DtError {
            parent: "/",
            node: "reserved-memory",
            property: "reg",
            problem: devtree::Problem::TooMany,
        })
    })
    .unwrap_or_else(|e| fatal(format_args!("{e}")));
    for r in firmware.iter() {
        info!(target: "mem", "reserved {r} firmware ({} KiB)", r.size() / 1024);
    }
    // SAFETY: linker symbols; only their addresses are used.
    let image = unsafe {
        Range {
            start: &__image_start as *const u8 as u64,
            end: &__image_end as *const u8 as u64,
        }
    };
    let fdt_range = Range::sized(fdt_addr, devtree::total_size(&fdt));
    let vec_range = Range::sized(0, vectors::vectors_len().next_multiple_of(PAGE_SIZE));
    info!(target: "mem", "reserved {image} hypervisor image ({} KiB)", image.size() / 1024);
    info!(target: "mem", "reserved {fdt_range} device tree ({} KiB)", fdt_range.size().div_ceil(1024));
    info!(target: "mem", "reserved {vec_range} exception vectors");
    if let Some(i) = chosen.initrd {
        info!(target: "mem", "reserved {i} boot archive ({} KiB)", i.size().div_ceil(1024));
    }
    let extra = [Some(image), Some(fdt_range), Some(vec_range), chosen.initrd];
    let mut free = memmap::free_map(
        &memory,
        firmware.iter().copied().chain(extra.into_iter().flatten()),
        PAGE_SIZE,
    )
    .unwrap_or_else(|_| {
        fatal(format_args!(
            "memory map has more than {} ranges",
            memmap::MAX_RANGES
        ))
    });

    // Heap first: the page allocator's own bookkeeping lives in it.
    let hsize = heap_size(ram);
    let heap = free.take(hsize, PAGE_SIZE).unwrap_or_else(|| {
        fatal(format_args!(
            "no {} MiB of free RAM for the heap",
            hsize / MIB
        ))
    });
    // SAFETY: `heap` was just removed from the free map, so nothing else
    // will ever use it; it is RAM (real mode, identity addresses).
    unsafe { HEAP.lock().init(heap.start as usize, heap.size() as usize) };
    info!(target: "mem", "heap     {heap} ({} MiB)", heap.size() / MIB);
    if args.dump_fdt {
        dump_fdt(blob);
    }

    // The HPT pool: contiguous, each slot aligned to its size.
    let order = args.hpt_pool_order.unwrap_or(hptpool::DEFAULT_POOL_ORDER);
    let want = hptpool::pool_size(ram, args.hpt_pool, order);
    let pool_range = if want == 0 {
        Range::default()
    } else {
        match free.take(want, 1 << order) {
            Some(r) => r,
            None => {
                warn!(target: "mem", "no contiguous {} MiB for the HPT pool; running without one", want / MIB);
                Range::default()
            }
        }
    };
    let pool =
        HptPool::new(pool_range, order).unwrap_or_else(|e| fatal(format_args!("HPT pool: {e:?}")));
    info!(
        target: "mem",
        "hpt-pool {pool_range} ({} MiB: {} slots of {} MiB)",
        pool_range.size() / MIB,
        pool.slots(),
        (1u64 << order) / MIB
    );
    HPT_POOL.call_once(|| spin::Mutex::new(pool));

    {
        // Free memory reads zero only where the machine says RAM does and
        // it did not load anything (kernel::quirks): VM memory there is
        // handed out without being zeroed.
        let zero_ram =
            kernel::quirks::ram_reads_zero_at_power_on(devtree::machine_compatible(&fdt))
                .filter(|_| !args.ram_unknown);
        let mut pages = PAGES.lock();
        for r in free.iter() {
            pages.add(*r, zero_ram.is_some());
        }
        for r in zero_ram.into_iter().flatten() {
            pages.mark_dirty(*r);
        }
        if zero_ram.is_some() {
            info!(target: "mem", "QEMU machine: RAM reads zero at power-on, so {} MiB of free memory need no zeroing for guests", pages.zero_bytes() / MIB);
        }
    }

    let topology = devtree::topology(&fdt).unwrap_or_else(|e| fatal(format_args!("{e}")));
    crate::machine::CONSOLE.set_timebase_hz(topology.timebase_hz);
    kernel::time::set_timebase_hz(topology.timebase_hz);
    match topology.clock_hz {
        Some(hz) => kernel::time::set_cpu_clock_hz(hz),
        None => warn!(target: "cpu", "no clock-frequency in /cpus: guests are told 0 Hz"),
    }
    let icps = devtree::icp_windows(&fdt).unwrap_or_else(|e| fatal(format_args!("{e}")));
    if kernel::quirks::tlbiel_reaches_one_thread(devtree::machine_compatible(&fdt)) {
        TLBIEL_REACHES_ONE_THREAD.store(true, core::sync::atomic::Ordering::Release);
        info!(target: "cpu", "QEMU machine: tlbiel reaches one thread, so vcores of more than one thread invalidate with tlbie");
    }
    let features = devtree::fw_features(&fdt);
    let chars = CPU_CHARACTERISTICS
        .call_once(|| kernel::cpuchar::from_fw_features(features.iter().copied()));
    match features.len() {
        0 => {
            info!(target: "cpu", "no /ibm,opal/fw-features: guests are asked for every speculation mitigation")
        }
        n => {
            info!(target: "cpu", "{n} firmware features: guest characteristics {:#018x}, behaviour {:#018x}", chars.character, chars.behaviour)
        }
    }
    for c in &topology.cores {
        info!(
            target: "cpu",
            "core {} (chip {}): {} threads, PIRs {}",
            c.index,
            c.chip_id.unwrap_or(0),
            c.pirs.len(),
            pir_list(&c.pirs)
        );
    }
    info!(target: "cpu", "timebase {} Hz", topology.timebase_hz);
    for c in &topology.cores {
        for &pir in &c.pirs {
            match icps.iter().find(|w| w.pir == pir) {
                Some(_) => {}
                None => warn!(target: "xics", "no ICP window for PIR {pir:#x}"),
            }
        }
    }
    if let Some(w) = icps.first() {
        info!(target: "xics", "{} ICP windows, first PIR {:#x} at {:#x} ({} bytes each)", icps.len(), w.pir, w.base, w.size);
    }

    let free_bytes = PAGES.lock().free_bytes();
    let pool_bytes = pool_range.size();
    info!(
        target: "hv",
        "topology: {} cores x {} threads = {} hardware threads",
        topology.cores.len(),
        topology.threads_per_core(),
        topology.thread_count()
    );
    info!(
        target: "hv",
        "boot ok cores={} threads={} memory={}MiB free={}MiB hpt-pool={}MiB",
        topology.cores.len(),
        topology.threads_per_core(),
        ram / MIB,
        free_bytes / MIB,
        pool_bytes / MIB
    );
    BootInfo {
        args,
        topology,
        icps,
        initrd: chosen.initrd,
        flash: devtree::system_flash(&fdt),
    }
}

/// PIRs as "0x8 0x9 0xa 0xb".
fn pir_list(pirs: &[u32]) -> alloc::string::String {
    use core::fmt::Write;
    let mut s = alloc::string::String::new();
    for (i, p) in pirs.iter().enumerate() {
        let _ = write!(s, "{}{p:#x}", if i == 0 { "" } else { " " });
    }
    s
}

/// Prints the device tree as hex lines (`fdt: dump OFFSET HEX`), for
/// capturing the tree skiboot really hands over as a test fixture.
fn dump_fdt(blob: &[u8]) {
    use core::fmt::Write;
    info!(target: "fdt", "dump begin {} bytes", blob.len());
    for (i, chunk) in blob.chunks(64).enumerate() {
        let mut hex = alloc::string::String::new();
        for b in chunk {
            let _ = write!(hex, "{b:02x}");
        }
        info!(target: "fdt", "dump {:06x} {hex}", i * 64);
    }
    info!(target: "fdt", "dump end");
}

// Fault injection in VM creation (`hv.test=fail-alloc:K`): next to the
// allocators it fails, so VM creation asks the allocator's module only.

/// The allocation of VM creation to fail (0: none), and how many have
/// been made since it was set.
static FAIL_AT: AtomicU64 = AtomicU64::new(0);
static MADE: AtomicU64 = AtomicU64::new(0);

/// `hv.test=fail-alloc:K`: the K-th allocation of VM creation (counted
/// over every VM of the boot) fails as if that resource had run out.
pub fn fail_allocation(k: u64) {
    FAIL_AT.store(k, Ordering::Release);
}

/// An allocation site of VM creation is about to allocate `what`: false
/// when this is the one `hv.test=fail-alloc` fails. One relaxed load when
/// fault injection is off.
#[inline]
pub fn may_allocate(what: &str) -> bool {
    let k = FAIL_AT.load(Ordering::Relaxed);
    if k == 0 {
        return true;
    }
    let n = MADE.fetch_add(1, Ordering::AcqRel) + 1;
    if n != k {
        return true;
    }
    warn!(target: "test", "failing allocation {n} of VM creation ({what}), as hv.test=fail-alloc:{k} asks");
    false
}

/// A block of the machine's memory that the hypervisor keeps for one
/// purpose (a disk, an expanded archive file): freed when dropped.
pub struct Pages {
    base: u64,
    bytes: u64,
    order: u32,
}

impl Pages {
    /// `bytes` of memory, as the allocator has it; `None` if no block is
    /// free.
    pub fn new(bytes: u64) -> Option<Pages> {
        let order = 64 - (bytes - 1).leading_zeros();
        let base = PAGES.lock().alloc_order(order)?;
        Some(Pages { base, bytes, order })
    }

    /// `bytes` of memory for a VM (a fault-injection point), zeroed where
    /// it may hold an earlier owner's data.
    pub fn zeroed(bytes: u64) -> Option<Pages> {
        let pages = may_allocate("hypervisor memory")
            .then(|| Pages::new(bytes))
            .flatten()?;
        let dirty = PAGES
            .lock()
            .dirty_parts(kernel::memmap::Range::sized(pages.base, bytes));
        for d in &dirty {
            // SAFETY: part of the block just allocated to this purpose
            // alone (real mode: identity addresses).
            unsafe { ppc64::cpu::zero_real(d.start, d.size()) };
        }
        Some(pages)
    }

    /// The block's bytes for the rest of the machine's life (never freed).
    pub fn leak(self) -> &'static mut [u8] {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: as in `as_mut`; the block is never freed, so the
        // reference may live as long as the machine.
        unsafe { core::slice::from_raw_parts_mut(this.base as *mut u8, this.bytes as usize) }
    }
}

impl AsRef<[u8]> for Pages {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the block is this owner's alone while `self` lives: no
        // partition's memory contains it (a guest reaches a disk only
        // through its adapter's copies), so a reference aliases nothing.
        unsafe { core::slice::from_raw_parts(self.base as *const u8, self.bytes as usize) }
    }
}

impl AsMut<[u8]> for Pages {
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_ref`; `&mut self` makes this the only one.
        unsafe { core::slice::from_raw_parts_mut(self.base as *mut u8, self.bytes as usize) }
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        PAGES.lock().free_order(self.base, self.order);
    }
}
