//! The preallocated pool of hashed-page-table blocks (seed 002's
//! "preallocated pool"): a contiguous region reserved at boot and cut into
//! equal slots of `1 << order` bytes, each aligned to its size as SDR1
//! requires. It lets guests get a large HPT even after RAM has fragmented.

use crate::memmap::Range;
use crate::units::MIB;
use alloc::vec;
use alloc::vec::Vec;

/// Slot order used unless the boot arguments say otherwise: 16 MiB, the
/// HPT KVM gives a guest by default.
pub const DEFAULT_POOL_ORDER: u32 = 24;
/// Pool size unless the boot arguments say otherwise...
pub const DEFAULT_POOL_BYTES: u64 = 64 * MIB;
/// ...but never more than this fraction of RAM by default.
pub const DEFAULT_POOL_MAX_FRACTION: u64 = 16;

/// Smallest and largest HPT orders (256 KiB .. 2^46 bytes, SDR1 HTABSIZE
/// <= 28), from the HPTE format module.
pub use ppc64::hpte::{MAX_HPT_ORDER, MIN_HPT_ORDER};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// Slot order outside 18..=46.
    BadOrder,
    /// Region not aligned to a slot, or not a whole number of slots.
    Misaligned,
    /// Address is not the start of an allocated slot.
    NotAllocated,
}

/// The pool size to reserve: `requested` when given (rounded down to whole
/// slots), else the default, capped at 1/16 of RAM.
pub fn pool_size(ram: u64, requested: Option<u64>, order: u32) -> u64 {
    let slot = 1u64 << order;
    let want = requested.unwrap_or_else(|| DEFAULT_POOL_BYTES.min(ram / DEFAULT_POOL_MAX_FRACTION));
    want / slot * slot
}

#[derive(Debug)]
pub struct HptPool {
    region: Range,
    order: u32,
    used: Vec<bool>,
}

impl HptPool {
    /// A pool over `region` with slots of `1 << order` bytes. An empty
    /// region makes an empty pool.
    pub fn new(region: Range, order: u32) -> Result<Self, PoolError> {
        if !(MIN_HPT_ORDER..=MAX_HPT_ORDER).contains(&order) {
            return Err(PoolError::BadOrder);
        }
        let slot = 1u64 << order;
        if !region.start.is_multiple_of(slot) || !region.size().is_multiple_of(slot) {
            return Err(PoolError::Misaligned);
        }
        Ok(HptPool {
            region,
            order,
            used: vec![false; (region.size() / slot) as usize],
        })
    }

    pub fn order(&self) -> u32 {
        self.order
    }

    pub fn region(&self) -> Range {
        self.region
    }

    pub fn slots(&self) -> usize {
        self.used.len()
    }

    pub fn free_slots(&self) -> usize {
        self.used.iter().filter(|u| !**u).count()
    }

    /// A free slot's address, if `order` is the pool's order.
    pub fn alloc(&mut self, order: u32) -> Option<u64> {
        if order != self.order {
            return None;
        }
        let i = self.used.iter().position(|u| !*u)?;
        self.used[i] = true;
        Some(self.region.start + ((i as u64) << self.order))
    }

    /// True if `addr` lies in the pool (so it must be freed here).
    pub fn owns(&self, addr: u64) -> bool {
        self.region.contains(addr)
    }

    /// Returns a slot to the pool.
    pub fn free(&mut self, addr: u64) -> Result<(), PoolError> {
        if !self.owns(addr) || !(addr - self.region.start).is_multiple_of(1 << self.order) {
            return Err(PoolError::NotAllocated);
        }
        let i = ((addr - self.region.start) >> self.order) as usize;
        if !self.used[i] {
            return Err(PoolError::NotAllocated);
        }
        self.used[i] = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::GIB;

    #[test]
    fn default_size_is_capped_by_ram_and_whole_slots() {
        assert_eq!(pool_size(2 * GIB, None, 24), 64 * MIB);
        assert_eq!(pool_size(GIB, None, 24), 64 * MIB);
        assert_eq!(pool_size(512 * MIB, None, 24), 32 * MIB);
        assert_eq!(pool_size(128 * MIB, None, 24), 0); // 8 MiB < one slot
        assert_eq!(pool_size(2 * GIB, Some(100 * MIB), 24), 96 * MIB);
        assert_eq!(pool_size(2 * GIB, Some(0), 24), 0);
    }

    #[test]
    fn slots_are_handed_out_once_and_recycled() {
        let base = 0x4000_0000;
        let mut p = HptPool::new(Range::sized(base, 48 * MIB), 24).unwrap();
        assert_eq!(p.slots(), 3);
        assert_eq!(p.alloc(23), None, "other orders are not served");
        let a = p.alloc(24).unwrap();
        let b = p.alloc(24).unwrap();
        let c = p.alloc(24).unwrap();
        assert_eq!([a, b, c], [base, base + 16 * MIB, base + 32 * MIB]);
        assert_eq!(p.alloc(24), None);
        assert_eq!(p.free(b), Ok(()));
        assert_eq!(p.free(b), Err(PoolError::NotAllocated), "double free");
        assert_eq!(p.free(base + 1), Err(PoolError::NotAllocated));
        assert_eq!(p.free(0), Err(PoolError::NotAllocated));
        assert_eq!(p.free_slots(), 1);
        assert_eq!(p.alloc(24), Some(b));
    }

    #[test]
    fn bad_regions_are_refused() {
        assert_eq!(
            HptPool::new(Range::sized(0x100_0000 + 4096, 16 * MIB), 24).unwrap_err(),
            PoolError::Misaligned
        );
        assert_eq!(
            HptPool::new(Range::sized(0, 20 * MIB), 24).unwrap_err(),
            PoolError::Misaligned
        );
        assert_eq!(
            HptPool::new(Range::sized(0, 16 * MIB), 17).unwrap_err(),
            PoolError::BadOrder
        );
        assert_eq!(HptPool::new(Range::sized(0, 0), 24).unwrap().slots(), 0);
    }
}
