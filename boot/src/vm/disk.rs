//! A VM's disks (the LUNs of its v-scsi adapter, kernel::vio::vscsi):
//! where each one's bytes live on this machine. A writable disk is a
//! block of the machine's memory that the VM owns while it exists, so
//! what it wrote survives its reboots: a copy of its image from the boot
//! archive, or zeros. A read-only image is read where the boot archive
//! holds it (reserved for the hypervisor's whole life), one copy for
//! every VM that names it so.

use super::*;
use kernel::archive::{DiskSource, DiskSpec};
use kernel::scsi::{Disk, RamStore, RomStore, Store};
use kernel::vio::vscsi;

/// Memory the page allocator gave one disk; freed when the disk is.
pub(super) struct Pages {
    base: u64,
    bytes: u64,
    order: u32,
}

impl Pages {
    /// `bytes` of memory, zeroed where it may hold an earlier owner's
    /// data; `None` if no block is free.
    fn zeroed(bytes: u64) -> Option<Pages> {
        let order = 64 - (bytes - 1).leading_zeros();
        let base = crate::mem::may_allocate("disk memory")
            .then(|| PAGES.lock().alloc_order(order))
            .flatten()?;
        let pages = Pages { base, bytes, order };
        let dirty = PAGES
            .lock()
            .dirty_parts(kernel::memmap::Range::sized(base, bytes));
        for d in &dirty {
            // SAFETY: part of the block just allocated to this disk alone
            // (real mode: identity addresses).
            unsafe { cpu::zero_real(d.start, d.size()) };
        }
        Some(pages)
    }
}

impl AsRef<[u8]> for Pages {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the block is this disk's alone while `self` lives: no
        // partition's memory contains it (a guest reaches it only through
        // its adapter's copies), so a reference to it aliases nothing.
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

/// The disks of VM `name` from its manifest lines, in LUN order; an
/// error names the first that could not be made (the ones made before it
/// are freed).
pub(super) fn make(name: &str, specs: &[DiskSpec<'static>]) -> Result<Vec<Disk>, VmError> {
    let mut disks = Vec::with_capacity(specs.len());
    for (lun, spec) in specs.iter().enumerate() {
        let bytes = spec.bytes();
        let store: Box<dyn Store> = match (&spec.source, spec.read_only) {
            (DiskSource::Image(_, data), true) => Box::new(RomStore(data)),
            (source, _) => {
                let mut pages = Pages::zeroed(bytes).ok_or(VmError::NoDiskMemory {
                    lun,
                    mib: bytes.div_ceil(1 << 20),
                })?;
                if let DiskSource::Image(_, data) = source {
                    pages.as_mut().copy_from_slice(data);
                }
                Box::new(RamStore::new(pages, true))
            }
        };
        let serial = alloc::format!("{name}-{lun}");
        disks.push(Disk::new(store, &serial, vscsi::MAX_TRANSFER));
    }
    Ok(disks)
}
