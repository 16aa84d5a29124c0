//! The physical page allocator: a buddy allocator over 4 KiB frames of all
//! free RAM. Blocks are powers of two in size and naturally aligned, which
//! is exactly what hashed page tables need.

use crate::memmap::Range;
use buddy_system_allocator::FrameAllocator;

pub const PAGE_SHIFT: u32 = 12;
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

/// Largest block: 2^(MAX_ORDER-1) pages (2^32 pages = 16 TiB).
const MAX_ORDER: usize = 33;

pub struct PageAllocator {
    frames: FrameAllocator<MAX_ORDER>,
    total: u64,
    free: u64,
}

impl Default for PageAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl PageAllocator {
    pub const fn new() -> Self {
        PageAllocator {
            frames: FrameAllocator::new(),
            total: 0,
            free: 0,
        }
    }

    /// Hands a page-aligned range to the allocator.
    pub fn add(&mut self, r: Range) {
        debug_assert!(r.start.is_multiple_of(PAGE_SIZE) && r.end.is_multiple_of(PAGE_SIZE));
        if r.is_empty() {
            return;
        }
        self.frames.add_frame(
            (r.start >> PAGE_SHIFT) as usize,
            (r.end >> PAGE_SHIFT) as usize,
        );
        self.total += r.size();
        self.free += r.size();
    }

    /// Allocates a block of `1 << order` bytes aligned to its size
    /// (order >= PAGE_SHIFT). Returns its physical address.
    pub fn alloc_order(&mut self, order: u32) -> Option<u64> {
        if !(PAGE_SHIFT..PAGE_SHIFT + MAX_ORDER as u32).contains(&order) {
            return None;
        }
        let pages = 1usize << (order - PAGE_SHIFT);
        let f = self.frames.alloc(pages)?;
        self.free -= 1 << order;
        Some((f as u64) << PAGE_SHIFT)
    }

    /// Frees a block obtained from `alloc_order` with the same order.
    pub fn free_order(&mut self, addr: u64, order: u32) {
        let pages = 1usize << (order - PAGE_SHIFT);
        self.frames.dealloc((addr >> PAGE_SHIFT) as usize, pages);
        self.free += 1 << order;
    }

    /// Bytes handed to the allocator.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// Bytes currently free.
    pub fn free_bytes(&self) -> u64 {
        self.free
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::MIB;

    #[test]
    fn blocks_are_naturally_aligned_and_accounted() {
        let mut a = PageAllocator::new();
        a.add(Range {
            start: 0x1000,
            end: 64 * MIB,
        });
        assert_eq!(a.total_bytes(), 64 * MIB - 0x1000);
        let b = a.alloc_order(24).unwrap();
        assert_eq!(b % (16 * MIB), 0);
        let c = a.alloc_order(18).unwrap();
        assert_eq!(c % (256 * 1024), 0);
        assert_ne!(b, c);
        assert!(!(b..b + 16 * MIB).contains(&c));
        assert_eq!(a.free_bytes(), 64 * MIB - 0x1000 - 16 * MIB - 256 * 1024);
        a.free_order(b, 24);
        a.free_order(c, 18);
        assert_eq!(a.free_bytes(), a.total_bytes());
        // Too large for what is there.
        assert!(a.alloc_order(27).is_none());
        assert!(a.alloc_order(5).is_none());
    }
}
