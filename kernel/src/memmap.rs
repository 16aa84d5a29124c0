//! Physical memory map: sets of half-open address ranges with fixed
//! capacity (usable before the heap exists), and the construction of the
//! free-memory map from the device tree's memory and reserved ranges.

use crate::units::{align_down, align_up};
use core::fmt;

/// A half-open physical address range `[start, end)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    /// `[start, start + size)`, clamped at the top of the address space.
    pub fn sized(start: u64, size: u64) -> Range {
        Range {
            start,
            end: start.saturating_add(size),
        }
    }

    pub fn size(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    pub fn overlaps(&self, o: &Range) -> bool {
        self.start < o.end && o.start < self.end
    }

    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#014x}-{:#014x}", self.start, self.end)
    }
}

/// The set ran out of room for another disjoint range.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Full;

/// How many disjoint ranges a set can hold. The POWER8 boxes we know have
/// at most a few dozen memory and reserved ranges.
pub const MAX_RANGES: usize = 128;

/// A sorted set of disjoint, non-adjacent ranges.
#[derive(Clone)]
pub struct RangeSet {
    r: [Range; MAX_RANGES],
    n: usize,
}

impl Default for RangeSet {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl RangeSet {
    pub const fn new() -> Self {
        RangeSet {
            r: [Range { start: 0, end: 0 }; MAX_RANGES],
            n: 0,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Range> + '_ {
        self.r[..self.n].iter()
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Sum of the sizes of all ranges.
    pub fn total(&self) -> u64 {
        self.iter().map(|r| r.size()).sum()
    }

    fn insert_at(&mut self, i: usize, v: Range) -> Result<(), Full> {
        if self.n == MAX_RANGES {
            return Err(Full);
        }
        self.r.copy_within(i..self.n, i + 1);
        self.r[i] = v;
        self.n += 1;
        Ok(())
    }

    fn remove_at(&mut self, i: usize) {
        self.r.copy_within(i + 1..self.n, i);
        self.n -= 1;
    }

    /// Adds `v`, merging with overlapping or adjacent ranges.
    pub fn add(&mut self, v: Range) -> Result<(), Full> {
        if v.is_empty() {
            return Ok(());
        }
        let mut v = v;
        // Absorb every range that touches v.
        let mut i = 0;
        while i < self.n {
            let c = self.r[i];
            if c.start <= v.end && v.start <= c.end {
                v.start = v.start.min(c.start);
                v.end = v.end.max(c.end);
                self.remove_at(i);
            } else {
                i += 1;
            }
        }
        let pos = self.r[..self.n]
            .iter()
            .position(|c| c.start > v.start)
            .unwrap_or(self.n);
        self.insert_at(pos, v)
    }

    /// Removes `v` from the set, splitting a range when `v` is inside it.
    pub fn remove(&mut self, v: Range) -> Result<(), Full> {
        if v.is_empty() {
            return Ok(());
        }
        let mut i = 0;
        while i < self.n {
            let c = self.r[i];
            if !c.overlaps(&v) {
                i += 1;
                continue;
            }
            let left = Range {
                start: c.start,
                end: v.start.max(c.start),
            };
            let right = Range {
                start: v.end.min(c.end),
                end: c.end,
            };
            match (left.is_empty(), right.is_empty()) {
                (true, true) => self.remove_at(i),
                (false, true) => {
                    self.r[i] = left;
                    i += 1;
                }
                (true, false) => {
                    self.r[i] = right;
                    i += 1;
                }
                (false, false) => {
                    self.r[i] = left;
                    self.insert_at(i + 1, right)?;
                    i += 2;
                }
            }
        }
        Ok(())
    }

    /// Shrinks every range to whole `page`s, dropping ranges smaller than a page.
    pub fn trim_to_pages(&mut self, page: u64) {
        let mut i = 0;
        while i < self.n {
            let c = self.r[i];
            let s = align_up(c.start, page);
            let e = align_down(c.end, page);
            match s {
                Some(s) if s < e => {
                    self.r[i] = Range { start: s, end: e };
                    i += 1;
                }
                _ => self.remove_at(i),
            }
        }
    }

    /// Takes `size` bytes aligned to `align` from the lowest range that can
    /// hold them and removes them from the set.
    pub fn take(&mut self, size: u64, align: u64) -> Option<Range> {
        if size == 0 || !align.is_power_of_two() {
            return None;
        }
        let found = self.iter().find_map(|c| {
            let s = align_up(c.start, align)?;
            let e = s.checked_add(size)?;
            (e <= c.end).then_some(Range { start: s, end: e })
        })?;
        // Splitting can need one more slot; the caller sees None if full.
        self.remove(found).ok()?;
        Some(found)
    }

    /// True when some range overlaps `v`.
    pub fn overlaps(&self, v: &Range) -> bool {
        self.iter().any(|c| c.overlaps(v))
    }
}

/// Everything that must never be handed out, by where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReservedKind {
    /// Firmware's memreserve block or `/reserved-memory` (skiboot, OPAL,
    /// HOMER, OCC).
    Firmware,
    /// This firmware image, including its BSS and boot stack.
    Image,
    /// The flattened device tree skiboot handed over.
    DeviceTree,
    /// The boot archive (`/chosen` initrd).
    Initrd,
    /// Exception vectors at real address 0.
    Vectors,
}

/// Builds the free-memory map: all memory minus every reserved range,
/// trimmed to whole pages.
pub fn free_map(
    memory: &RangeSet,
    reserved: impl IntoIterator<Item = Range>,
    page: u64,
) -> Result<RangeSet, Full> {
    let mut free = memory.clone();
    for r in reserved {
        free.remove(r)?;
    }
    free.trim_to_pages(page);
    Ok(free)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: u64, e: u64) -> Range {
        Range { start: s, end: e }
    }

    fn set(rs: &[(u64, u64)]) -> RangeSet {
        let mut s = RangeSet::new();
        for &(a, b) in rs {
            s.add(r(a, b)).unwrap();
        }
        s
    }

    fn v(s: &RangeSet) -> Vec<(u64, u64)> {
        s.iter().map(|r| (r.start, r.end)).collect()
    }

    #[test]
    fn add_merges_overlapping_and_adjacent_ranges_in_order() {
        let s = set(&[(100, 200), (300, 400), (150, 250), (250, 300), (0, 10)]);
        assert_eq!(v(&s), vec![(0, 10), (100, 400)]);
        assert_eq!(s.total(), 310);
    }

    #[test]
    fn remove_splits_trims_and_drops() {
        let mut s = set(&[(0, 1000)]);
        s.remove(r(100, 200)).unwrap();
        assert_eq!(v(&s), vec![(0, 100), (200, 1000)]);
        s.remove(r(50, 250)).unwrap(); // overlaps both edges
        assert_eq!(v(&s), vec![(0, 50), (250, 1000)]);
        s.remove(r(0, 50)).unwrap(); // exactly one range
        assert_eq!(v(&s), vec![(250, 1000)]);
        s.remove(r(900, 5000)).unwrap(); // past the end
        assert_eq!(v(&s), vec![(250, 900)]);
        s.remove(r(0, 0)).unwrap(); // empty: no change
        assert_eq!(v(&s), vec![(250, 900)]);
    }

    #[test]
    fn trim_to_pages_handles_unaligned_edges() {
        let mut s = set(&[(0x1001, 0x5fff), (0x7000, 0x7800), (0x9000, 0xb000)]);
        s.trim_to_pages(0x1000);
        assert_eq!(v(&s), vec![(0x2000, 0x5000), (0x9000, 0xb000)]);
    }

    #[test]
    fn take_is_aligned_first_fit_and_removes() {
        let mut s = set(&[(0x1000, 0x3000), (0x10000, 0x40000)]);
        let t = s.take(0x10000, 0x10000).unwrap();
        assert_eq!(t, r(0x10000, 0x20000));
        assert_eq!(v(&s), vec![(0x1000, 0x3000), (0x20000, 0x40000)]);
        let t = s.take(0x1000, 0x1000).unwrap();
        assert_eq!(t, r(0x1000, 0x2000));
        assert!(s.take(0x100000, 0x1000).is_none());
        assert!(s.take(0x1000, 3).is_none());
        assert_eq!(s.total(), 0x1000 + 0x20000);
    }

    #[test]
    fn free_map_excludes_every_reserved_range_even_overlapping_ones() {
        let mem = set(&[(0, 0x8000_0000)]);
        let reserved = [
            (ReservedKind::Vectors, r(0, 0x2000)),
            (ReservedKind::Image, r(0x2000_0000, 0x2010_0000)),
            (ReservedKind::Firmware, r(0x3000_0000, 0x3100_0000)),
            (ReservedKind::DeviceTree, r(0x30f0_0000, 0x3100_8000)), // overlaps firmware
            (ReservedKind::Initrd, r(0x2800_0000, 0x2800_0123)),     // unaligned end
            (ReservedKind::Firmware, r(0x7fff_f000, 0x9000_0000)),   // past memory
        ];
        let f = free_map(&mem, reserved.iter().map(|r| r.1), 0x1000).unwrap();
        assert_eq!(
            v(&f),
            vec![
                (0x2000, 0x2000_0000),
                (0x2010_0000, 0x2800_0000),
                (0x2800_1000, 0x3000_0000),
                (0x3101_0000 - 0x8000, 0x7fff_f000),
            ]
        );
        for (_, res) in reserved {
            assert!(!f.overlaps(&res), "{res} still free");
        }
    }

    #[test]
    fn a_full_set_reports_full() {
        let mut s = RangeSet::new();
        for i in 0..MAX_RANGES as u64 {
            s.add(r(i * 10, i * 10 + 5)).unwrap();
        }
        assert_eq!(s.add(r(10_000, 10_005)), Err(Full));
        // Splitting needs a slot too.
        assert_eq!(s.remove(r(1, 2)), Err(Full));
    }
}
