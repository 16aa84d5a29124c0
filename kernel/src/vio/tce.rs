//! TCE tables: a virtual device's DMA window, the guest's IOMMU (PAPR;
//! Linux's `arch/powerpc/platforms/pseries/iommu.c` drives it). A window
//! is named by its LIOBN and covers I/O bus addresses (IOBAs) `0..size`
//! in 4 KiB pages; each page has one translation control entry: the guest
//! real page (bits 63..12) and what the device may do there (bit 0: read
//! guest memory, bit 1: write it; neither: unmapped).
//!
//! Every argument is checked as KVM-HV checks it (book3s_64_vio.c), and
//! stricter than QEMU's pseries (which maps any address): an IOBA must be
//! page-aligned and, with its count, inside the window; a TCE may carry
//! only the address and the two permission bits, and a mapping must name
//! a page inside the partition's memory; H_STUFF_TCE may only clear; an
//! indirect list must be 4 KiB-aligned, inside guest memory and at most
//! 512 entries. Any bad argument is H_PARAMETER and maps nothing: a call
//! is checked whole before its first entry changes. Linux treats every
//! error but -44 as done (and prints it), so these rules are proven by
//! the host tests below, not by booting.
//!
//! A device reaches guest memory only through [`TceTable::read`] and
//! [`TceTable::write`]: every page of the access must be mapped with the
//! permission it needs, or nothing is copied.

use crate::gmem::GuestMemory;
use crate::papr::services::HError;
use alloc::vec;
use alloc::vec::Vec;

/// IOMMU page: 4 KiB (`IOMMU_PAGE_SHIFT_4K`, whatever the guest's pages).
pub const PAGE_SHIFT: u32 = 12;
pub const PAGE: u64 = 1 << PAGE_SHIFT;
/// The device may read guest memory through the entry (`TCE_PCI_READ`).
pub const TCE_READ: u64 = 1;
/// The device may write guest memory through the entry (`TCE_PCI_WRITE`).
pub const TCE_WRITE: u64 = 2;
/// Entries one H_PUT_TCE_INDIRECT or H_STUFF_TCE call from Linux carries
/// at most (one 4 KiB page of TCEs); the list limit PAPR and KVM enforce.
pub const MAX_LIST: u64 = 512;

/// What a TCE may hold.
const TCE_VALID_BITS: u64 = !(PAGE - 1) | TCE_READ | TCE_WRITE;

/// One device's window.
pub struct TceTable {
    liobn: u32,
    entries: Vec<u64>,
}

impl TceTable {
    /// A window of `bytes` (a multiple of [`PAGE`]), everything unmapped.
    pub fn new(liobn: u32, bytes: u64) -> Self {
        TceTable {
            liobn,
            entries: vec![0; (bytes / PAGE) as usize],
        }
    }

    pub fn liobn(&self) -> u32 {
        self.liobn
    }

    /// Bytes of IOBA space.
    pub fn window(&self) -> u64 {
        self.entries.len() as u64 * PAGE
    }

    /// The first entry of `count` pages from `ioba`, if `ioba` is
    /// page-aligned and they all lie in the window.
    fn span(&self, ioba: u64, count: u64) -> Result<usize, HError> {
        let first = ioba / PAGE;
        let fits = first
            .checked_add(count)
            .is_some_and(|end| end <= self.entries.len() as u64);
        if !ioba.is_multiple_of(PAGE) || !fits {
            return Err(HError::Parameter);
        }
        Ok(first as usize)
    }

    /// Whether `tce` may be stored for a partition of `mem_size` bytes:
    /// only address and permission bits, and a mapping's page inside
    /// guest memory (an unmapping's address is ignored).
    fn check_tce(tce: u64, mem_size: u64) -> Result<(), HError> {
        if tce & !TCE_VALID_BITS != 0 {
            return Err(HError::Parameter);
        }
        let mapped = tce & (TCE_READ | TCE_WRITE) != 0;
        let page = tce & !(PAGE - 1);
        if mapped && page.checked_add(PAGE).is_none_or(|end| end > mem_size) {
            return Err(HError::Parameter);
        }
        Ok(())
    }

    /// H_PUT_TCE(liobn, ioba, tce).
    pub fn put(&mut self, ioba: u64, tce: u64, mem_size: u64) -> Result<(), HError> {
        let i = self.span(ioba, 1)?;
        Self::check_tce(tce, mem_size)?;
        self.entries[i] = tce;
        Ok(())
    }

    /// H_GET_TCE(liobn, ioba): the entry.
    pub fn get(&self, ioba: u64) -> Result<u64, HError> {
        let i = self.span(ioba, 1)?;
        Ok(self.entries[i])
    }

    /// Every entry unmapped (a device's reset).
    pub fn clear(&mut self) {
        self.entries.fill(0);
    }

    /// H_STUFF_TCE(liobn, ioba, value, count): `count` entries set to
    /// `value`, which may only unmap (no permission bit), as KVM allows.
    pub fn stuff(&mut self, ioba: u64, value: u64, count: u64) -> Result<(), HError> {
        let i = self.span(ioba, count)?;
        if value & (TCE_READ | TCE_WRITE) != 0 || value & !TCE_VALID_BITS != 0 {
            return Err(HError::Parameter);
        }
        self.entries[i..i + count as usize].fill(value);
        Ok(())
    }

    /// H_PUT_TCE_INDIRECT(liobn, ioba, list, count): `count` big-endian
    /// TCEs from the guest-real page `list` (not an IOBA), every one
    /// checked before any is stored (and again as it is stored: a guest
    /// changing its list meanwhile may see part of it stored, each entry
    /// valid).
    pub fn put_indirect(
        &mut self,
        ioba: u64,
        list: u64,
        count: u64,
        mem: &GuestMemory<'_>,
    ) -> Result<(), HError> {
        if count > MAX_LIST || !list.is_multiple_of(PAGE) {
            return Err(HError::Parameter);
        }
        let i = self.span(ioba, count)?;
        let tce = |k: u64| -> Result<u64, HError> {
            let t = mem.read_be64(list + 8 * k).ok_or(HError::Parameter)?;
            Self::check_tce(t, mem.size())?;
            Ok(t)
        };
        // Every entry checked first; then each read again, checked again
        // (the guest may change its list meanwhile) and stored.
        for k in 0..count {
            tce(k)?;
        }
        for k in 0..count {
            self.entries[i + k as usize] = tce(k)?;
        }
        Ok(())
    }

    /// The guest-physical pieces of `ioba..ioba+len` (one per page), if
    /// every page is mapped with `need` (and lies in the window).
    pub fn pieces(&self, ioba: u64, len: u64, need: u64) -> Option<Pieces<'_>> {
        let end = ioba.checked_add(len)?;
        if end > self.window() {
            return None;
        }
        if len > 0 {
            let (first, last) = ((ioba / PAGE) as usize, ((end - 1) / PAGE) as usize);
            if self.entries[first..=last].iter().any(|t| t & need != need) {
                return None;
            }
        }
        Some(Pieces {
            entries: &self.entries,
            at: ioba,
            end,
        })
    }

    /// The device reads `buf.len()` bytes of guest memory at `ioba` (each
    /// page mapped readable); false, with nothing read, if it may not.
    pub fn read(&self, ioba: u64, buf: &mut [u8], mem: &GuestMemory<'_>) -> bool {
        let Some(pieces) = self.pieces(ioba, buf.len() as u64, TCE_READ) else {
            return false;
        };
        let mut done = 0;
        for (gpa, n) in pieces {
            let n = n as usize;
            if mem.read(gpa, &mut buf[done..done + n]).is_none() {
                return false;
            }
            done += n;
        }
        true
    }

    /// The device writes `data` to guest memory at `ioba` (each page
    /// mapped writable); false, with nothing written, if it may not.
    pub fn write(&self, ioba: u64, data: &[u8], mem: &mut GuestMemory<'_>) -> bool {
        let Some(pieces) = self.writable(ioba, data.len() as u64, mem) else {
            return false;
        };
        let mut done = 0;
        for (gpa, n) in pieces {
            let n = n as usize;
            mem.write(gpa, &data[done..done + n]);
            done += n;
        }
        true
    }

    /// The device writes `len` bytes of `src` (another window's pieces of
    /// another memory, or of this one) to guest memory at `ioba`; false,
    /// with nothing written, if it may not (the source pieces were
    /// checked when they were resolved: they lie in `src_mem`).
    pub fn write_from(
        &self,
        ioba: u64,
        src: &[(u64, u64)],
        src_mem: &GuestMemory<'_>,
        mem: &mut GuestMemory<'_>,
    ) -> bool {
        let len = src.iter().map(|p| p.1).sum();
        let Some(mut dst) = self.writable(ioba, len, mem) else {
            return false;
        };
        let (mut d, mut dn) = (0, 0);
        for &(mut s, mut sn) in src {
            while sn > 0 {
                if dn == 0 {
                    // The destination has `len` bytes, as many as the source.
                    (d, dn) = dst.next().unwrap_or((0, 0));
                }
                let n = sn.min(dn);
                if n == 0 || mem.copy_from(d, src_mem, s, n).is_none() {
                    return false;
                }
                (s, sn, d, dn) = (s + n, sn - n, d + n, dn - n);
            }
        }
        true
    }

    /// The pieces of `ioba..ioba+len` if every page is mapped writable and
    /// each lies in `mem` (so no write fails after another succeeded).
    fn writable(&self, ioba: u64, len: u64, mem: &GuestMemory<'_>) -> Option<Pieces<'_>> {
        let pieces = self.pieces(ioba, len, TCE_WRITE)?;
        pieces
            .clone()
            .all(|(gpa, n)| mem.contains(gpa, n))
            .then_some(pieces)
    }
}

/// The guest-physical pieces of a run of IOBAs, one per page.
#[derive(Clone)]
pub struct Pieces<'a> {
    entries: &'a [u64],
    at: u64,
    end: u64,
}

impl Iterator for Pieces<'_> {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        if self.at >= self.end {
            return None;
        }
        let tce = self.entries[(self.at / PAGE) as usize];
        let offset = self.at % PAGE;
        let n = (PAGE - offset).min(self.end - self.at);
        self.at += n;
        Some(((tce & !(PAGE - 1)) + offset, n))
    }
}

#[cfg(test)]
mod tests;
