//! Test only: VM lifecycle churn (`hv.test=vm-churn:N`), and what the
//! machine has free (memory, HPT pool slots, LPIDs), which it and fault
//! injection in VM creation (`hv.test=fail-alloc:K`, crate::mem) compare
//! before and after.

use crate::mem::{HPT_POOL, PAGES};
use core::fmt;
use log::{error, info};

/// What the machine has free for VMs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Free {
    pub bytes: u64,
    pub pool_slots: (usize, usize),
    pub lpids: u32,
    /// Bytes of the hypervisor's heap in use.
    pub heap_used: usize,
}

impl fmt::Display for Free {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "free={}MiB hpt-pool-free={}/{} lpids-free={} heap-used={}",
            self.bytes >> 20,
            self.pool_slots.0,
            self.pool_slots.1,
            self.lpids,
            self.heap_used
        )
    }
}

pub fn free() -> Free {
    let pool = HPT_POOL
        .get()
        .map(|p| {
            let p = p.lock();
            (p.free_slots(), p.slots())
        })
        .unwrap_or((0, 0));
    Free {
        bytes: PAGES.lock().free_bytes(),
        pool_slots: pool,
        lpids: crate::vm::lpids_free(),
        heap_used: crate::mem::heap_used(),
    }
}

/// `hv.test=vm-churn:N`: N VMs of the hello guest, one after another,
/// each created, run to its power-off and destroyed through the real
/// path (memory, HPT from the page allocator for even ones and from the
/// pool for odd ones, LPID, device tree, a vcore on a core). Quiet but
/// for a line every 100 VMs and any warning or error. True when all ran
/// ok and everything is free again.
pub fn churn(n: u32, cores: usize, image: &'static [u8]) -> bool {
    let pool_order = HPT_POOL.get().map(|p| p.lock().order());
    let level = log::max_level();
    let mut ok = 0;
    // "Before" is taken after the first VM of each kind: the scheduler's
    // queues keep the capacity they grew to once.
    let mut before = free();
    for i in 0..n {
        if i == 2 {
            before = free();
            info!(target: "test", "vm-churn: {n} VMs one after another; after the first two: {before}");
        }
        let cfg = crate::vm::VmConfig {
            name: "churn",
            layout: kernel::vcore::Layout {
                vcpus: 1,
                threads: 1,
            },
            image,
            memory: 16 << 20,
            hpt_order: if i % 2 == 1 { pool_order } else { None },
            bootargs: "quiet",
            initrd: None,
            load_addr: None,
            entry_little_endian: false,
            nvram: kernel::nvram::GUEST_MIN,
            net: None,
            disks: alloc::vec::Vec::new(),
        };
        log::set_max_level(log::LevelFilter::Warn);
        match crate::vm::Vm::create(&cfg, cores, 100_000 + i as usize) {
            Ok(vm) => ok += crate::scheduler::run(alloc::vec![vm]).1,
            Err(e) => error!(target: "test", "vm-churn: VM {i} not created: {e}"),
        }
        log::set_max_level(level);
        if (i + 1) % 100 == 0 {
            info!(target: "test", "vm-churn: {} of {n} VMs done", i + 1);
        }
    }
    let after = free();
    // The heap may be a little lower after: a scheduling request another
    // core had not freed yet when `before` was taken. It must not grow.
    let kept = Free {
        heap_used: before.heap_used,
        ..after
    } == before
        && after.heap_used <= before.heap_used;
    info!(
        target: "test",
        "vm-churn: {ok} of {n} VMs ran ok; after: {after} ({})",
        if kept { "nothing leaked" } else { "LEAKED" }
    );
    ok == n as usize && kept
}
