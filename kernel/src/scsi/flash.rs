//! A disk kept in a partition of the machine's flash (the PNOR), so that
//! what a guest writes outlives the machine's power-off.
//!
//! Flash is read and written in any size but erased, and only erased
//! bytes can be programmed, in whole erase blocks. The store keeps the
//! whole disk in memory (read from flash once, when the VM is made):
//! reads come from there, writes go there and mark their erase blocks
//! dirty, and [`Store::flush`] rewrites each dirty block (erase, then
//! program) before it answers. So the disk has a write-back cache, as
//! its MODE SENSE says (WCE): Linux sends SYNCHRONIZE CACHE when a file
//! system syncs, unmounts or the disk is shut down, and that command
//! returns only once the flash holds every write before it, or reports
//! MEDIUM ERROR if the flash failed (the blocks stay dirty and are tried
//! again at the next flush). The firmware also flushes when the VM
//! reboots or stops.
//!
//! What a power cut does: writes not yet flushed are lost, as with any
//! disk's volatile cache; a block being rewritten when the power goes
//! may be left erased or half programmed (there is no journal here: a
//! file system's own keeps it consistent).

use super::{IoError, RamStore, Store, BLOCK};
use alloc::string::String;

/// A flash disk named NAME in a manifest lives in the flash partition
/// `DISK-NAME` (`cargo xtask pnor --disk NAME=SIZE` lays it out): only
/// partitions so named may be given to a guest, never the firmware's.
pub const PARTITION_PREFIX: &str = "DISK-";
/// Longest disk name: a partition name holds 15 bytes.
pub const MAX_NAME: usize = crate::ffs::NAME_MAX - PARTITION_PREFIX.len();

/// The flash partition of disk `name`.
pub fn partition_name(name: &str) -> String {
    alloc::format!("{PARTITION_PREFIX}{name}")
}

/// Whether `name` may name a flash disk: 1 to [`MAX_NAME`] of A-Z a-z
/// 0-9 `_` `-`.
pub fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// The machine's flash, as the store reaches it: OPAL's flash calls in
/// the firmware (each done when it returns), a fake in tests. Offsets are
/// the partition's (0 is its first byte). An error is the machine's code.
pub trait Flash: Send {
    /// Bytes of the partition.
    fn bytes(&self) -> u64;
    /// Its erase block.
    fn erase_block(&self) -> u64;
    fn read(&mut self, at: u64, buf: &mut [u8]) -> Result<(), i64>;
    /// Erases `len` bytes at `at` (whole erase blocks).
    fn erase(&mut self, at: u64, len: u64) -> Result<(), i64>;
    /// Programs `data` at `at` (erased bytes).
    fn write(&mut self, at: u64, data: &[u8]) -> Result<(), i64>;
}

/// What the flash did for a store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlashCounters {
    /// Erase blocks rewritten.
    pub blocks_written: u64,
    /// Flash operations that failed.
    pub failures: u64,
    /// The last failure's code.
    pub last_error: i64,
}

/// A disk in flash, cached whole in `M`.
pub struct FlashStore<M, F> {
    mirror: RamStore<M>,
    flash: F,
    /// One bit per erase block: written since the last flush.
    dirty: alloc::vec::Vec<u64>,
    pub counters: FlashCounters,
}

/// Why a flash disk cannot be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashDiskError {
    /// The partition is no whole number of erase blocks and sectors, or
    /// its memory copy is not its size.
    Shape { bytes: u64, erase_block: u64 },
    /// Reading it failed (the machine's code).
    Read(i64),
}

impl<M: AsRef<[u8]> + AsMut<[u8]> + Send, F: Flash> FlashStore<M, F> {
    /// The disk in `flash`, read whole into `mirror` (its size).
    pub fn load(mut mirror: M, mut flash: F) -> Result<Self, FlashDiskError> {
        let (bytes, eb) = (flash.bytes(), flash.erase_block());
        let shape = FlashDiskError::Shape {
            bytes,
            erase_block: eb,
        };
        if bytes == 0
            || eb == 0
            || !bytes.is_multiple_of(eb)
            || !bytes.is_multiple_of(BLOCK)
            || mirror.as_ref().len() as u64 != bytes
        {
            return Err(shape);
        }
        flash
            .read(0, mirror.as_mut())
            .map_err(FlashDiskError::Read)?;
        let blocks = (bytes / eb) as usize;
        Ok(FlashStore {
            mirror: RamStore::new(mirror, true),
            flash,
            dirty: alloc::vec![0; blocks.div_ceil(64)],
            counters: FlashCounters::default(),
        })
    }

    /// Erase blocks written since the last flush.
    pub fn dirty_blocks(&self) -> u64 {
        self.dirty.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    fn mark(&mut self, at: u64, len: u64) {
        let eb = self.flash.erase_block();
        for b in at / eb..(at + len).div_ceil(eb) {
            self.dirty[(b / 64) as usize] |= 1 << (b % 64);
        }
    }
}

impl<M: AsRef<[u8]> + AsMut<[u8]> + Send, F: Flash> Store for FlashStore<M, F> {
    fn bytes(&self) -> u64 {
        self.flash.bytes()
    }

    fn writable(&self) -> bool {
        true
    }

    fn write_back(&self) -> bool {
        true
    }

    fn read(
        &mut self,
        at: u64,
        len: u64,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), IoError> {
        self.mirror.read(at, len, sink)
    }

    fn write(
        &mut self,
        at: u64,
        len: u64,
        source: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<(), IoError> {
        // Marked first: a source that fails part way may have changed
        // some of the bytes.
        self.mark(at, len);
        self.mirror.write(at, len, source)
    }

    /// Rewrites every dirty erase block, in order, each run of adjacent
    /// ones with one erase and one program (every flash call is a round
    /// trip to the service processor, which bounds a flush); the first
    /// failure stops the flush and leaves its run and the rest dirty.
    fn flush(&mut self) -> Result<(), IoError> {
        let eb = self.flash.erase_block();
        let blocks = self.flash.bytes() / eb;
        let dirty = |d: &[u64], b: u64| d[(b / 64) as usize] & (1 << (b % 64)) != 0;
        let mut b = 0;
        while b < blocks {
            if !dirty(&self.dirty, b) {
                b += 1;
                continue;
            }
            let mut end = b + 1;
            while end < blocks && end - b < MAX_RUN && dirty(&self.dirty, end) {
                end += 1;
            }
            let (at, len) = (b * eb, (end - b) * eb);
            let data = self.mirror.bytes_at(at, len);
            let r = self
                .flash
                .erase(at, len)
                .and_then(|()| self.flash.write(at, data));
            if let Err(code) = r {
                self.counters.failures += 1;
                self.counters.last_error = code;
                return Err(IoError::Medium);
            }
            for k in b..end {
                self.dirty[(k / 64) as usize] &= !(1 << (k % 64));
            }
            self.counters.blocks_written += end - b;
            b = end;
        }
        Ok(())
    }
}

/// Erase blocks one flush call rewrites at most (256 KiB of 4 KiB ones):
/// a bound on the time the flash is busy with one call.
const MAX_RUN: u64 = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::{op, Buffer, Completion, Disk, NoBuffer, Sense};
    use alloc::boxed::Box;
    use alloc::sync::Arc;
    use alloc::vec;
    use alloc::vec::Vec;
    use spin::Mutex;

    /// A NOR flash: erased bytes are 0xff, programming can only clear
    /// bits, and a program over unerased bytes is refused (as a real part
    /// would corrupt them). Shared with the test, which may make an
    /// operation fail.
    #[derive(Default)]
    struct Chip {
        bytes: Vec<u8>,
        erases: Vec<(u64, u64)>,
        fail_erase_at: Option<u64>,
    }

    struct FakeFlash {
        chip: Arc<Mutex<Chip>>,
        eb: u64,
    }

    impl Flash for FakeFlash {
        fn bytes(&self) -> u64 {
            self.chip.lock().bytes.len() as u64
        }
        fn erase_block(&self) -> u64 {
            self.eb
        }
        fn read(&mut self, at: u64, buf: &mut [u8]) -> Result<(), i64> {
            let c = self.chip.lock();
            buf.copy_from_slice(&c.bytes[at as usize..at as usize + buf.len()]);
            Ok(())
        }
        fn erase(&mut self, at: u64, len: u64) -> Result<(), i64> {
            let mut c = self.chip.lock();
            assert!(
                at.is_multiple_of(self.eb) && len.is_multiple_of(self.eb),
                "erase of part of a block"
            );
            if c.fail_erase_at == Some(at) {
                return Err(-1);
            }
            c.erases.push((at, len));
            c.bytes[at as usize..(at + len) as usize].fill(0xff);
            Ok(())
        }
        fn write(&mut self, at: u64, data: &[u8]) -> Result<(), i64> {
            let mut c = self.chip.lock();
            let old = &mut c.bytes[at as usize..at as usize + data.len()];
            assert!(
                old.iter().all(|b| *b == 0xff),
                "programmed over unerased bytes"
            );
            old.copy_from_slice(data);
            Ok(())
        }
    }

    const EB: u64 = 4096;

    /// A 64 KiB partition whose byte `i` is `i / 512`.
    fn chip() -> Arc<Mutex<Chip>> {
        let bytes = (0..64 << 10).map(|i: u32| (i / 512) as u8).collect();
        Arc::new(Mutex::new(Chip {
            bytes,
            ..Default::default()
        }))
    }

    fn store(chip: &Arc<Mutex<Chip>>) -> FlashStore<Vec<u8>, FakeFlash> {
        let flash = FakeFlash {
            chip: chip.clone(),
            eb: EB,
        };
        FlashStore::load(vec![0; 64 << 10], flash).unwrap()
    }

    struct Fill(u8, usize);

    impl Buffer for Fill {
        fn bytes(&self) -> u64 {
            self.1 as u64
        }
        fn put(&mut self, _: u64, _: &[u8]) -> bool {
            false
        }
        fn get(&mut self, _: u64, into: &mut [u8]) -> bool {
            into.fill(self.0);
            true
        }
    }

    fn write10(lba: u32, n: u16) -> [u8; 16] {
        let mut c = [0u8; 16];
        c[0] = op::WRITE_10;
        c[2..6].copy_from_slice(&lba.to_be_bytes());
        c[7..9].copy_from_slice(&n.to_be_bytes());
        c
    }

    #[test]
    fn the_disk_is_read_from_flash_and_writes_wait_for_a_flush() {
        let chip = chip();
        let mut d = Disk::new(Box::new(store(&chip)), "f", 1 << 20);
        assert_eq!(d.bytes(), 64 << 10);
        // Three sectors across the first two erase blocks.
        let c = d.execute(&write10(7, 3), &mut NoBuffer, &mut Fill(0xab, 1536));
        assert_eq!(c, Completion::good(0, 1536));
        assert_eq!(chip.lock().bytes[7 * 512], 7, "not in flash before a flush");
        let mut sync = [0u8; 16];
        sync[0] = op::SYNCHRONIZE_CACHE_10;
        assert_eq!(
            d.execute(&sync, &mut NoBuffer, &mut NoBuffer),
            Completion::good(0, 0)
        );
        let c = chip.lock();
        assert_eq!(
            c.erases,
            [(0, 2 * EB)],
            "whole blocks, each once, adjacent ones together"
        );
        assert!(c.bytes[7 * 512..10 * 512].iter().all(|b| *b == 0xab));
        // The rest of both blocks kept what the flash held.
        assert_eq!(c.bytes[6 * 512], 6);
        assert_eq!(c.bytes[10 * 512], 10);
        assert_eq!(c.bytes[2 * EB as usize], 16);
    }

    #[test]
    fn a_failed_flush_is_reported_and_tried_again() {
        let chip = chip();
        let mut s = store(&chip);
        s.write(EB, 512, &mut |b| {
            b.fill(1);
            true
        })
        .unwrap();
        s.write(3 * EB, 512, &mut |b| {
            b.fill(3);
            true
        })
        .unwrap();
        assert_eq!(s.dirty_blocks(), 2);
        chip.lock().fail_erase_at = Some(3 * EB);
        assert_eq!(s.flush(), Err(IoError::Medium));
        assert_eq!(
            s.dirty_blocks(),
            1,
            "the first block is done, the failed one left"
        );
        assert_eq!(s.counters.failures, 1);
        assert_eq!(chip.lock().bytes[EB as usize], 1);
        chip.lock().fail_erase_at = None;
        assert_eq!(s.flush(), Ok(()));
        assert_eq!(s.dirty_blocks(), 0);
        assert_eq!(chip.lock().bytes[3 * EB as usize], 3);
        assert_eq!(s.counters.blocks_written, 2);
        // A flush with nothing dirty touches nothing.
        let n = chip.lock().erases.len();
        assert_eq!(s.flush(), Ok(()));
        assert_eq!(chip.lock().erases.len(), n);
    }

    #[test]
    fn a_disk_in_flash_reports_its_write_cache_and_flush_errors() {
        let chip = chip();
        let s = store(&chip);
        assert!(s.write_back() && s.writable());
        let mut d = Disk::new(Box::new(s), "f", 1 << 20);
        d.execute(&write10(0, 1), &mut NoBuffer, &mut Fill(9, 512));
        chip.lock().fail_erase_at = Some(0);
        let mut sync = [0u8; 16];
        sync[0] = op::SYNCHRONIZE_CACHE_16;
        assert_eq!(
            d.execute(&sync, &mut NoBuffer, &mut NoBuffer),
            Completion::check(Sense::WRITE_ERROR)
        );
    }

    #[test]
    fn runs_of_dirty_blocks_are_rewritten_together_up_to_a_bound() {
        let chip = Arc::new(Mutex::new(Chip {
            bytes: vec![0xff; (100 * EB) as usize],
            ..Default::default()
        }));
        let flash = FakeFlash {
            chip: chip.clone(),
            eb: EB,
        };
        let mut s = FlashStore::load(vec![0; (100 * EB) as usize], flash).unwrap();
        // Blocks 2-3, 10, and 20-89 (70 blocks: one run of MAX_RUN, then 6).
        for (at, len) in [(2 * EB, 2 * EB), (10 * EB + 8, 16), (20 * EB, 70 * EB)] {
            s.write(at, len, &mut |b| {
                b.fill(7);
                true
            })
            .unwrap();
        }
        assert_eq!(s.flush(), Ok(()));
        let c = chip.lock();
        assert_eq!(
            c.erases,
            [
                (2 * EB, 2 * EB),
                (10 * EB, EB),
                (20 * EB, MAX_RUN * EB),
                ((20 + MAX_RUN) * EB, (70 - MAX_RUN) * EB)
            ]
        );
        assert_eq!(s.counters.blocks_written, 73);
        assert_eq!(c.bytes[(10 * EB + 8) as usize], 7);
        assert_eq!(
            c.bytes[(10 * EB) as usize],
            0xff,
            "the rest of the block as it was"
        );
    }

    #[test]
    fn a_partition_of_the_wrong_shape_is_refused() {
        let odd = Arc::new(Mutex::new(Chip {
            bytes: vec![0xff; 6000],
            ..Default::default()
        }));
        let flash = FakeFlash { chip: odd, eb: EB };
        let e = FlashStore::load(vec![0; 6000], flash).err();
        assert_eq!(
            e,
            Some(FlashDiskError::Shape {
                bytes: 6000,
                erase_block: EB
            })
        );
        let chip = chip();
        let flash = FakeFlash { chip, eb: EB };
        assert!(
            FlashStore::load(vec![0; 4096], flash).is_err(),
            "copy of the wrong size"
        );
    }
}
