//! A Command/Response Queue (CRQ, PAPR): the ring of 16-byte entries in
//! guest memory through which a virtual device answers its partition
//! (the v-scsi adapter: Linux's ibmvscsi; H_REG_CRQ, H_FREE_CRQ). The
//! guest registers the queue by its I/O bus address in the device's DMA
//! window; the device writes entries in order and wraps, each entry's
//! first byte (its valid byte) written last, after the other fifteen, so
//! the guest never sees a valid entry half written; the guest zeroes the
//! valid byte once it has consumed the entry. An entry whose slot is
//! still valid is not written: the queue is full.
//!
//! Every access goes through the device's TCE table, with write
//! permission checked on each entry (the guest may unmap its queue while
//! it is registered).

use super::tce::{TceTable, PAGE, TCE_WRITE};
use crate::gmem::GuestMemory;
use crate::papr::services::HError;

/// Bytes of one entry.
pub const ENTRY: u64 = 16;
/// The largest queue accepted (QEMU's limit, 16 Mi entries).
pub const MAX_BYTES: u64 = 256 << 20;

/// A registered queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crq {
    ioba: u64,
    bytes: u64,
    /// Offset of the next entry written.
    next: u64,
}

/// Why an entry was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushError {
    /// The next slot is still valid: the guest has not consumed it.
    Full,
    /// The slot is not mapped writable (or not in guest memory).
    Fault,
}

impl Crq {
    /// H_REG_CRQ's checks: `ioba` page-aligned, `bytes` a whole number of
    /// pages from one page to [`MAX_BYTES`], all inside the window and
    /// mapped writable now.
    pub fn register(tce: &TceTable, ioba: u64, bytes: u64) -> Result<Crq, HError> {
        let sized = (PAGE..=MAX_BYTES).contains(&bytes) && bytes.is_multiple_of(PAGE);
        if !ioba.is_multiple_of(PAGE) || !sized || tce.pieces(ioba, bytes, TCE_WRITE).is_none() {
            return Err(HError::Parameter);
        }
        Ok(Crq {
            ioba,
            bytes,
            next: 0,
        })
    }

    /// Entries the queue holds.
    pub fn entries(&self) -> u64 {
        self.bytes / ENTRY
    }

    /// Writes `entry` (its byte 0 the valid byte, non-zero) in the next
    /// slot, bytes 1-15 first.
    pub fn push(
        &mut self,
        tce: &TceTable,
        entry: &[u8; 16],
        mem: &mut GuestMemory<'_>,
    ) -> Result<(), PushError> {
        let slot = self.ioba + self.next;
        let mut valid = [0u8; 1];
        if !tce.read(slot, &mut valid, mem) {
            return Err(PushError::Fault);
        }
        if valid[0] != 0 {
            return Err(PushError::Full);
        }
        if !tce.write(slot + 1, &entry[1..], mem) {
            return Err(PushError::Fault);
        }
        // The entry is whole before the guest can see it valid.
        core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
        if !tce.write(slot, &entry[..1], mem) {
            return Err(PushError::Fault);
        }
        self.next = (self.next + ENTRY) % self.bytes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vio::tce::{TCE_READ, TCE_WRITE};
    use alloc::vec;

    /// A window of 16 pages whose first `mapped` pages map guest pages
    /// 4.. read-write, over 64 KiB of guest memory.
    fn setup(mapped: u64) -> (TceTable, alloc::vec::Vec<u8>) {
        let mut t = TceTable::new(7, 16 * PAGE);
        for p in 0..mapped {
            t.put(p * PAGE, ((4 + p) * PAGE) | TCE_READ | TCE_WRITE, 64 << 10)
                .unwrap();
        }
        (t, vec![0u8; 64 << 10])
    }

    #[test]
    fn registration_checks_alignment_size_window_and_mapping() {
        let (t, _) = setup(2);
        assert!(Crq::register(&t, 0, PAGE).is_ok());
        assert!(Crq::register(&t, 0, 2 * PAGE).is_ok());
        assert_eq!(
            Crq::register(&t, 0, 3 * PAGE),
            Err(HError::Parameter),
            "unmapped page"
        );
        assert_eq!(
            Crq::register(&t, 8, PAGE),
            Err(HError::Parameter),
            "unaligned"
        );
        assert_eq!(
            Crq::register(&t, 0, PAGE / 2),
            Err(HError::Parameter),
            "short"
        );
        assert_eq!(
            Crq::register(&t, 0, PAGE + 16),
            Err(HError::Parameter),
            "part page"
        );
        assert_eq!(
            Crq::register(&t, 15 * PAGE, 2 * PAGE),
            Err(HError::Parameter),
            "past window"
        );
        assert_eq!(
            Crq::register(&t, 0, MAX_BYTES + PAGE),
            Err(HError::Parameter)
        );
        // Read-only is not enough: the device writes the queue.
        let mut ro = TceTable::new(7, 16 * PAGE);
        ro.put(0, (4 * PAGE) | TCE_READ, 64 << 10).unwrap();
        assert_eq!(Crq::register(&ro, 0, PAGE), Err(HError::Parameter));
    }

    #[test]
    fn entries_go_in_order_wrap_and_stop_at_an_unconsumed_slot() {
        let (t, mut ram) = setup(1);
        let mut q = Crq::register(&t, 0, PAGE).unwrap();
        assert_eq!(q.entries(), 256);
        let mut mem = GuestMemory::new(&mut ram);
        for i in 0..=255u8 {
            let mut e = [i; 16];
            e[0] = 0x80;
            assert_eq!(q.push(&t, &e, &mut mem), Ok(()));
        }
        // Full: slot 0 still valid.
        assert_eq!(q.push(&t, &[0x80; 16], &mut mem), Err(PushError::Full));
        let base = 4 * PAGE;
        assert_eq!(mem.read_u8(base), Some(0x80));
        assert_eq!(mem.read_u8(base + 1), Some(0));
        assert_eq!(mem.read_u8(base + 255 * 16 + 15), Some(255));
        // The guest consumes slot 0: the next entry goes there.
        mem.write_u8(base, 0).unwrap();
        let mut e = [0xaa; 16];
        e[0] = 0xc0;
        assert_eq!(q.push(&t, &e, &mut mem), Ok(()));
        assert_eq!(mem.read_u8(base), Some(0xc0));
        assert_eq!(mem.read_u8(base + 15), Some(0xaa));
        assert_eq!(q.push(&t, &e, &mut mem), Err(PushError::Full));
    }

    #[test]
    fn an_unmapped_queue_faults_and_writes_nothing() {
        let (mut t, mut ram) = setup(1);
        let mut q = Crq::register(&t, 0, PAGE).unwrap();
        t.put(0, 0, 64 << 10).unwrap();
        let mut mem = GuestMemory::new(&mut ram);
        assert_eq!(q.push(&t, &[0x80; 16], &mut mem), Err(PushError::Fault));
        assert!(ram.iter().all(|b| *b == 0));
    }
}
