//! The physical page allocator: a buddy allocator over 4 KiB frames of all
//! free RAM. Blocks are powers of two in size and naturally aligned, which
//! is exactly what hashed page tables need.
//!
//! It also knows which free memory may hold data: every block ever freed,
//! and all memory when the platform does not guarantee RAM reads zero at
//! power-on. A caller that must hand out zeroed memory (a guest's) zeroes
//! only [`PageAllocator::dirty_parts`] of its block; memory that reads
//! zero is left untouched (under QEMU, whose RAM is host memory allocated
//! on first touch, that is most of a VM's creation time saved).

use crate::memmap::Range;
use alloc::vec::Vec;
use buddy_system_allocator::FrameAllocator;

pub const PAGE_SHIFT: u32 = 12;
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

/// Largest block: 2^(MAX_ORDER-1) pages (2^32 pages = 16 TiB).
const MAX_ORDER: usize = 33;

pub struct PageAllocator {
    frames: FrameAllocator<MAX_ORDER>,
    total: u64,
    free: u64,
    /// Memory that may not read zero: sorted, disjoint, not adjacent.
    dirty: Vec<Range>,
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
            dirty: Vec::new(),
        }
    }

    /// Hands a page-aligned range to the allocator; `reads_zero` when it
    /// is known to hold nothing (nobody wrote it since power-on, and the
    /// platform's RAM reads zero then).
    pub fn add(&mut self, r: Range, reads_zero: bool) {
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
        if !reads_zero {
            self.mark_dirty(r);
        }
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

    /// Frees a block obtained from `alloc_order` with the same order: it
    /// may hold its owner's data from now on.
    pub fn free_order(&mut self, addr: u64, order: u32) {
        let pages = 1usize << (order - PAGE_SHIFT);
        self.frames.dealloc((addr >> PAGE_SHIFT) as usize, pages);
        self.free += 1 << order;
        self.mark_dirty(Range::sized(addr, 1 << order));
    }

    /// The parts of `r` that may not read zero, in address order.
    pub fn dirty_parts(&self, r: Range) -> Vec<Range> {
        self.dirty
            .iter()
            .filter(|d| d.overlaps(&r))
            .map(|d| Range {
                start: d.start.max(r.start),
                end: d.end.min(r.end),
            })
            .collect()
    }

    /// Bytes of free memory known to read zero.
    pub fn zero_bytes(&self) -> u64 {
        let dirty: u64 = self.dirty.iter().map(Range::size).sum();
        self.total.saturating_sub(dirty).min(self.free)
    }

    /// Records that `r` may hold data (the machine wrote it, or a block
    /// there was freed).
    pub fn mark_dirty(&mut self, r: Range) {
        if r.is_empty() {
            return;
        }
        // Ranges before `r` that do not touch it stay; those overlapping or
        // adjacent merge into it.
        let first = self.dirty.partition_point(|d| d.end < r.start);
        let last = self.dirty.partition_point(|d| d.start <= r.end);
        let mut m = r;
        if first < last {
            m.start = m.start.min(self.dirty[first].start);
            m.end = m.end.max(self.dirty[last - 1].end);
        }
        self.dirty.splice(first..last, [m]);
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
        a.add(
            Range {
                start: 0x1000,
                end: 64 * MIB,
            },
            false,
        );
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

    #[test]
    fn only_memory_that_may_hold_data_needs_zeroing() {
        let mut a = PageAllocator::new();
        // Zero at power-on, as QEMU's RAM is.
        a.add(Range::sized(0, 64 * MIB), true);
        let b = a.alloc_order(24).unwrap();
        assert!(a.dirty_parts(Range::sized(b, 16 * MIB)).is_empty());
        assert_eq!(a.zero_bytes(), 48 * MIB);
        // Its owner wrote it: once freed and handed out again, all of it
        // must be zeroed.
        a.free_order(b, 24);
        assert_eq!(a.zero_bytes(), 48 * MIB);
        let again = a.alloc_order(24).unwrap();
        assert_eq!(again, b, "the buddy allocator hands the same block back");
        assert_eq!(
            a.dirty_parts(Range::sized(again, 16 * MIB)),
            vec![Range::sized(b, 16 * MIB)]
        );
        // A bigger block over it: only the freed part is dirty.
        a.free_order(again, 24);
        let big = a.alloc_order(25).unwrap();
        let parts = a.dirty_parts(Range::sized(big, 32 * MIB));
        let overlap = (b + 16 * MIB)
            .min(big + 32 * MIB)
            .saturating_sub(b.max(big));
        assert_eq!(parts.iter().map(Range::size).sum::<u64>(), overlap);
        assert!(parts
            .iter()
            .all(|p| p.start >= big && p.end <= big + 32 * MIB));
    }

    #[test]
    fn memory_of_unknown_content_is_dirty_and_dirty_ranges_merge() {
        let mut a = PageAllocator::new();
        a.add(Range::sized(0, 16 * MIB), false);
        a.add(Range::sized(32 * MIB, 16 * MIB), true);
        assert_eq!(
            a.dirty_parts(Range::sized(0, 48 * MIB)),
            vec![Range::sized(0, 16 * MIB)]
        );
        // Freed blocks next to and between dirty ranges merge into one.
        let blocks: Vec<u64> = (0..4).map(|_| a.alloc_order(22).unwrap()).collect();
        for b in &blocks {
            a.free_order(*b, 22);
        }
        let d = a.dirty_parts(Range::sized(0, 48 * MIB));
        assert!(d.windows(2).all(|w| w[0].end < w[1].start), "{d:?}");
        let covered: u64 = d.iter().map(Range::size).sum();
        assert!(covered >= 16 * MIB + 4 * 4 * MIB - 16 * MIB);
        for b in blocks {
            assert!(d
                .iter()
                .any(|r| r.contains(b) && r.contains(b + 4 * MIB - 1)));
        }
    }
}
