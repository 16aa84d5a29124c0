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
    /// checked before any is stored.
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
        let mut tces = [0u64; MAX_LIST as usize];
        for (k, t) in tces.iter_mut().enumerate().take(count as usize) {
            *t = mem
                .read_be64(list + 8 * k as u64)
                .ok_or(HError::Parameter)?;
            Self::check_tce(*t, mem.size())?;
        }
        self.entries[i..i + count as usize].copy_from_slice(&tces[..count as usize]);
        Ok(())
    }

    /// The guest-physical pieces of `ioba..ioba+len`, each page mapped
    /// with `need`; `None` if any page is not (or lies outside the window).
    fn pieces(&self, ioba: u64, len: u64, need: u64) -> Option<Vec<(u64, u64)>> {
        let end = ioba.checked_add(len)?;
        if end > self.window() {
            return None;
        }
        let mut out = Vec::new();
        let mut at = ioba;
        while at < end {
            let tce = self.entries[(at / PAGE) as usize];
            if tce & need != need {
                return None;
            }
            let offset = at % PAGE;
            let n = (PAGE - offset).min(end - at);
            out.push(((tce & !(PAGE - 1)) + offset, n));
            at += n;
        }
        Some(out)
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
        let Some(pieces) = self.pieces(ioba, data.len() as u64, TCE_WRITE) else {
            return false;
        };
        // Every piece lies in guest memory (checked when it was mapped),
        // so no write below fails after another succeeded.
        if pieces.iter().any(|&(gpa, n)| !mem.contains(gpa, n)) {
            return false;
        }
        let mut done = 0;
        for (gpa, n) in pieces {
            let n = n as usize;
            mem.write(gpa, &data[done..done + n]);
            done += n;
        }
        true
    }
}

#[cfg(test)]
mod tests;
