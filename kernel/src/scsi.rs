//! A SCSI direct-access block device (a disk), as Linux's `sd` drives it
//! (drivers/scsi/sd.c, scsi_scan.c): what the virtual SCSI adapter
//! (crate::vio::vscsi) serves each LUN with. It answers a command
//! descriptor block (CDB) over a [`Store`] (where the bytes live) and the
//! initiator's data buffers ([`Buffer`]), and says how it ended: a SCSI
//! status, fixed-format sense data, the bytes moved.
//!
//! The commands (SPC-3, SBC-3): INQUIRY (standard data and the VPD pages
//! 0x00, 0x80, 0x83, 0xB0), TEST UNIT READY, READ CAPACITY(10) and (16),
//! READ/WRITE(10) and (16), MODE SENSE(6) and (10) (the caching and
//! control pages), REPORT LUNS (answered by the adapter, which knows the
//! LUNs: [`report_luns`]), REQUEST SENSE, SYNCHRONIZE CACHE(10) and (16),
//! START STOP UNIT. Anything else is CHECK CONDITION, ILLEGAL REQUEST,
//! INVALID COMMAND OPERATION CODE. Blocks are 512 bytes.
//!
//! Strictness: every CDB field that selects something (a page, a service
//! action, an LBA range) is checked and a bad one answered ILLEGAL
//! REQUEST, INVALID FIELD IN CDB (or LBA OUT OF RANGE) with nothing
//! moved; a write to a read-only disk is DATA PROTECT, WRITE PROTECTED.
//! A buffer the initiator described too short for a READ or WRITE is
//! refused before any byte moves; a buffer that faults while the data
//! moves (its DMA mapping gone) ends the command ABORTED COMMAND, DATA
//! PHASE ERROR.

pub mod flash;

use alloc::boxed::Box;
use alloc::string::String;

/// Bytes per logical block.
pub const BLOCK: u64 = 512;

/// SCSI status codes (SAM).
pub const GOOD: u8 = 0x00;
pub const CHECK_CONDITION: u8 = 0x02;

/// Sense keys (SPC).
pub mod key {
    pub const NO_SENSE: u8 = 0x0;
    pub const MEDIUM_ERROR: u8 = 0x3;
    pub const ILLEGAL_REQUEST: u8 = 0x5;
    pub const DATA_PROTECT: u8 = 0x7;
    pub const ABORTED_COMMAND: u8 = 0xb;
}

/// Operation codes served.
pub mod op {
    pub const TEST_UNIT_READY: u8 = 0x00;
    pub const REQUEST_SENSE: u8 = 0x03;
    pub const INQUIRY: u8 = 0x12;
    pub const MODE_SENSE_6: u8 = 0x1a;
    pub const START_STOP_UNIT: u8 = 0x1b;
    pub const READ_CAPACITY_10: u8 = 0x25;
    pub const READ_10: u8 = 0x28;
    pub const WRITE_10: u8 = 0x2a;
    pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
    pub const MODE_SENSE_10: u8 = 0x5a;
    pub const READ_16: u8 = 0x88;
    pub const WRITE_16: u8 = 0x8a;
    pub const SYNCHRONIZE_CACHE_16: u8 = 0x91;
    /// SERVICE ACTION IN(16); service action 0x10 is READ CAPACITY(16).
    pub const SERVICE_ACTION_IN_16: u8 = 0x9e;
    pub const REPORT_LUNS: u8 = 0xa0;
}

/// READ CAPACITY(16)'s service action.
const SA_READ_CAPACITY_16: u8 = 0x10;

/// Fixed-format sense data (SPC 4.5.3): what CHECK CONDITION carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sense {
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
}

impl Sense {
    pub const INVALID_OPCODE: Sense = Sense::illegal(0x20);
    pub const LBA_OUT_OF_RANGE: Sense = Sense::illegal(0x21);
    pub const INVALID_FIELD: Sense = Sense::illegal(0x24);
    pub const LUN_NOT_SUPPORTED: Sense = Sense::illegal(0x25);
    pub const SAVING_NOT_SUPPORTED: Sense = Sense::illegal(0x39);
    pub const WRITE_PROTECTED: Sense = Sense {
        key: key::DATA_PROTECT,
        asc: 0x27,
        ascq: 0,
    };
    pub const DATA_PHASE_ERROR: Sense = Sense {
        key: key::ABORTED_COMMAND,
        asc: 0x4b,
        ascq: 0,
    };
    pub const READ_ERROR: Sense = Sense {
        key: key::MEDIUM_ERROR,
        asc: 0x11,
        ascq: 0,
    };
    pub const WRITE_ERROR: Sense = Sense {
        key: key::MEDIUM_ERROR,
        asc: 0x0c,
        ascq: 0,
    };

    const fn illegal(asc: u8) -> Sense {
        Sense {
            key: key::ILLEGAL_REQUEST,
            asc,
            ascq: 0,
        }
    }

    /// Bytes of fixed-format sense data: 18, what Linux's 96-byte sense
    /// buffer takes whole.
    pub const LEN: usize = 18;

    /// The fixed-format bytes (response code 0x70: current error).
    pub fn bytes(self) -> [u8; Self::LEN] {
        let mut s = [0u8; Self::LEN];
        s[0] = 0x70;
        s[2] = self.key;
        s[7] = (Self::LEN - 8) as u8;
        s[12] = self.asc;
        s[13] = self.ascq;
        s
    }
}

/// Why a store could not move data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoError {
    /// The initiator's buffer faulted (its sink or source said so).
    Transfer,
    /// The medium failed (a flash operation).
    Medium,
}

/// Where a disk's bytes live: hypervisor memory, an image shared
/// read-only, flash. Data moves through `sink`/`source` in pieces, in
/// order, so a store in memory hands out its own bytes (one copy between
/// it and the guest) and one elsewhere its bounce buffer.
pub trait Store: Send {
    /// Bytes of the disk (a non-zero multiple of [`BLOCK`]).
    fn bytes(&self) -> u64;
    /// Whether it may be written.
    fn writable(&self) -> bool;
    /// Whether writes are held until [`Store::flush`] (the disk then
    /// reports a write-back cache, WCE, and Linux sends SYNCHRONIZE CACHE).
    fn write_back(&self) -> bool {
        false
    }
    /// `len` bytes at `at` (inside the disk), handed to `sink` in pieces;
    /// a piece `sink` refuses ends the read ([`IoError::Transfer`]).
    fn read(
        &mut self,
        at: u64,
        len: u64,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), IoError>;
    /// `len` bytes at `at` (inside the disk) filled by `source` in
    /// pieces; a piece `source` cannot fill ends the write
    /// ([`IoError::Transfer`]; the pieces before it may be written).
    fn write(
        &mut self,
        at: u64,
        len: u64,
        source: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<(), IoError>;
    /// Every write done so far is on the medium.
    fn flush(&mut self) -> Result<(), IoError> {
        Ok(())
    }
}

/// A store in memory the hypervisor owns (`M`: a `Vec` in host tests,
/// pages of the machine's memory in the firmware).
pub struct RamStore<M> {
    mem: M,
    writable: bool,
}

impl<M: AsRef<[u8]> + AsMut<[u8]> + Send> RamStore<M> {
    /// Over `mem`, whose length is a non-zero multiple of [`BLOCK`].
    pub fn new(mem: M, writable: bool) -> Self {
        let n = mem.as_ref().len() as u64;
        assert!(n > 0 && n.is_multiple_of(BLOCK), "disk of {n} bytes");
        RamStore { mem, writable }
    }
}

impl<M: AsRef<[u8]>> RamStore<M> {
    /// Its bytes `at..at+len`.
    fn bytes_at(&self, at: u64, len: u64) -> &[u8] {
        &self.mem.as_ref()[at as usize..(at + len) as usize]
    }
}

impl<M: AsRef<[u8]> + AsMut<[u8]> + Send> Store for RamStore<M> {
    fn bytes(&self) -> u64 {
        self.mem.as_ref().len() as u64
    }

    fn writable(&self) -> bool {
        self.writable
    }

    fn read(
        &mut self,
        at: u64,
        len: u64,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), IoError> {
        sink(self.bytes_at(at, len))
            .then_some(())
            .ok_or(IoError::Transfer)
    }

    fn write(
        &mut self,
        at: u64,
        len: u64,
        source: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<(), IoError> {
        let bytes = &mut self.mem.as_mut()[at as usize..(at + len) as usize];
        source(bytes).then_some(()).ok_or(IoError::Transfer)
    }
}

/// An image read in place and never written: one copy serves every VM
/// that has it (a read-only image from the boot archive).
pub struct RomStore(pub &'static [u8]);

impl Store for RomStore {
    fn bytes(&self) -> u64 {
        self.0.len() as u64
    }

    fn writable(&self) -> bool {
        false
    }

    fn read(
        &mut self,
        at: u64,
        len: u64,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), IoError> {
        sink(&self.0[at as usize..(at + len) as usize])
            .then_some(())
            .ok_or(IoError::Transfer)
    }

    fn write(
        &mut self,
        _: u64,
        _: u64,
        _: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<(), IoError> {
        Err(IoError::Medium)
    }
}

/// One of a command's data buffers in the initiator's memory (the SRP
/// descriptors' concatenation): data-in is written with `put`, data-out
/// read with `get`.
pub trait Buffer {
    /// Bytes it holds.
    fn bytes(&self) -> u64;
    /// Copies `data` to offset `at`; false if the initiator's memory
    /// could not be written (nothing is then promised about the bytes).
    fn put(&mut self, at: u64, data: &[u8]) -> bool;
    /// Copies from offset `at` into `into`; false if it could not be read.
    fn get(&mut self, at: u64, into: &mut [u8]) -> bool;
}

/// A command without a buffer in that direction.
pub struct NoBuffer;

impl Buffer for NoBuffer {
    fn bytes(&self) -> u64 {
        0
    }
    fn put(&mut self, _: u64, data: &[u8]) -> bool {
        data.is_empty()
    }
    fn get(&mut self, _: u64, into: &mut [u8]) -> bool {
        into.is_empty()
    }
}

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    pub status: u8,
    pub sense: Option<Sense>,
    /// Bytes written into the data-in buffer.
    pub data_in: u64,
    /// Bytes read from the data-out buffer.
    pub data_out: u64,
}

impl Completion {
    pub const fn good(data_in: u64, data_out: u64) -> Self {
        Completion {
            status: GOOD,
            sense: None,
            data_in,
            data_out,
        }
    }

    pub const fn check(sense: Sense) -> Self {
        Completion {
            status: CHECK_CONDITION,
            sense: Some(sense),
            data_in: 0,
            data_out: 0,
        }
    }
}

/// What a disk counted, for its VM's stop report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub reads: u64,
    pub read_bytes: u64,
    pub writes: u64,
    pub write_bytes: u64,
    pub flushes: u64,
    /// Commands that ended in CHECK CONDITION.
    pub errors: u64,
}

/// INQUIRY's vendor and product identification (8 and 16 bytes, padded).
const VENDOR: &[u8; 8] = b"OPENPWR ";
const PRODUCT: &[u8; 16] = b"VIRTUAL DISK    ";
const REVISION: &[u8; 4] = b"0001";
/// The INQUIRY version: SPC-3 (Linux then asks READ CAPACITY(16) first).
const VERSION_SPC3: u8 = 5;
/// The VPD pages served, in order (page 0x00 lists them).
const VPD_PAGES: [u8; 4] = [0x00, 0x80, 0x83, 0xb0];
/// Longest answer built (REPORT LUNS of the most LUNs, INQUIRY, mode
/// pages): every answer is built here, then copied out.
const ANSWER: usize = 96;

/// One disk: a store, its serial number and what it counted.
pub struct Disk {
    store: Box<dyn Store>,
    serial: String,
    /// Transfers are at most this many bytes (the adapter's limit, which
    /// the initiator was told; the block-limits VPD page says it too).
    max_transfer: u64,
    pub counters: Counters,
}

impl Disk {
    /// A disk over `store`, answering INQUIRY with `serial` (printable
    /// ASCII, at most 32 bytes; longer is cut).
    pub fn new(store: Box<dyn Store>, serial: &str, max_transfer: u64) -> Self {
        let serial: String = serial
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(32)
            .collect();
        Disk {
            store,
            serial,
            max_transfer,
            counters: Counters::default(),
        }
    }

    /// Bytes of the disk.
    pub fn bytes(&self) -> u64 {
        self.store.bytes()
    }

    pub fn writable(&self) -> bool {
        self.store.writable()
    }

    fn blocks(&self) -> u64 {
        self.store.bytes() / BLOCK
    }

    /// Writes back what its store holds for later (a reboot, a stop),
    /// counted as a SYNCHRONIZE CACHE is; false if the store failed.
    pub fn flush(&mut self) -> bool {
        if !self.store.write_back() {
            return true;
        }
        self.counters.flushes += 1;
        let ok = self.store.flush().is_ok();
        if !ok {
            self.counters.errors += 1;
        }
        ok
    }

    /// Executes `cdb`, moving data through `din` (to the initiator) or
    /// `dout` (from it).
    pub fn execute(
        &mut self,
        cdb: &[u8; 16],
        din: &mut dyn Buffer,
        dout: &mut dyn Buffer,
    ) -> Completion {
        let c = self.dispatch(cdb, din, dout);
        if c.status != GOOD {
            self.counters.errors += 1;
        }
        c
    }

    fn dispatch(
        &mut self,
        cdb: &[u8; 16],
        din: &mut dyn Buffer,
        dout: &mut dyn Buffer,
    ) -> Completion {
        let mut a = [0u8; ANSWER];
        match cdb[0] {
            op::TEST_UNIT_READY | op::START_STOP_UNIT => Completion::good(0, 0),
            op::REQUEST_SENSE => {
                // Autosense carries every error, so nothing is pending.
                let s = Sense {
                    key: key::NO_SENSE,
                    asc: 0,
                    ascq: 0,
                };
                reply(din, &s.bytes(), u64::from(cdb[4]))
            }
            op::INQUIRY => {
                let alloc = u64::from(be16(&cdb[3..5]));
                match self.inquiry(cdb[1] & 1 != 0, cdb[2], &mut a) {
                    Some(n) => reply(din, &a[..n], alloc),
                    None => Completion::check(Sense::INVALID_FIELD),
                }
            }
            op::READ_CAPACITY_10 => {
                // The last LBA, or all ones when it does not fit (then
                // READ CAPACITY(16) tells).
                let last = (self.blocks() - 1).min(u64::from(u32::MAX)) as u32;
                a[..4].copy_from_slice(&last.to_be_bytes());
                a[4..8].copy_from_slice(&(BLOCK as u32).to_be_bytes());
                reply(din, &a[..8], 8)
            }
            op::SERVICE_ACTION_IN_16 if cdb[1] & 0x1f == SA_READ_CAPACITY_16 => {
                a[..8].copy_from_slice(&(self.blocks() - 1).to_be_bytes());
                a[8..12].copy_from_slice(&(BLOCK as u32).to_be_bytes());
                reply(din, &a[..32], u64::from(be32(&cdb[10..14])))
            }
            op::SERVICE_ACTION_IN_16 => Completion::check(Sense::INVALID_FIELD),
            op::READ_10 | op::WRITE_10 => {
                let lba = u64::from(be32(&cdb[2..6]));
                let n = u64::from(be16(&cdb[7..9]));
                self.transfer(cdb[0] == op::WRITE_10, lba, n, din, dout)
            }
            op::READ_16 | op::WRITE_16 => {
                let lba = u64::from_be_bytes(cdb[2..10].try_into().unwrap_or([0; 8]));
                let n = u64::from(be32(&cdb[10..14]));
                self.transfer(cdb[0] == op::WRITE_16, lba, n, din, dout)
            }
            op::SYNCHRONIZE_CACHE_10 | op::SYNCHRONIZE_CACHE_16 => {
                self.counters.flushes += 1;
                match self.store.flush() {
                    Ok(()) => Completion::good(0, 0),
                    Err(_) => Completion::check(Sense::WRITE_ERROR),
                }
            }
            op::MODE_SENSE_6 | op::MODE_SENSE_10 => {
                let ten = cdb[0] == op::MODE_SENSE_10;
                let alloc = if ten {
                    u64::from(be16(&cdb[7..9]))
                } else {
                    u64::from(cdb[4])
                };
                match self.mode_sense(ten, cdb[2], cdb[3], &mut a) {
                    Ok(n) => reply(din, &a[..n], alloc),
                    Err(s) => Completion::check(s),
                }
            }
            _ => Completion::check(Sense::INVALID_OPCODE),
        }
    }

    /// READ or WRITE of `n` blocks at `lba`.
    fn transfer(
        &mut self,
        write: bool,
        lba: u64,
        n: u64,
        din: &mut dyn Buffer,
        dout: &mut dyn Buffer,
    ) -> Completion {
        // The LBA must name a block even when none moves (SBC).
        if lba >= self.blocks() || lba.checked_add(n).is_none_or(|end| end > self.blocks()) {
            return Completion::check(Sense::LBA_OUT_OF_RANGE);
        }
        if write && !self.store.writable() {
            return Completion::check(Sense::WRITE_PROTECTED);
        }
        let len = n * BLOCK;
        let buf_len = if write { dout.bytes() } else { din.bytes() };
        if len > buf_len || len > self.max_transfer {
            return Completion::check(Sense::INVALID_FIELD);
        }
        if n == 0 {
            return Completion::good(0, 0);
        }
        let at = lba * BLOCK;
        let mut done = 0u64;
        let r = if write {
            self.store.write(at, len, &mut |piece| {
                let ok = dout.get(done, piece);
                done += piece.len() as u64;
                ok
            })
        } else {
            self.store.read(at, len, &mut |piece| {
                let ok = din.put(done, piece);
                done += piece.len() as u64;
                ok
            })
        };
        match (r, write) {
            (Ok(()), true) => {
                self.counters.writes += 1;
                self.counters.write_bytes += len;
                Completion::good(0, len)
            }
            (Ok(()), false) => {
                self.counters.reads += 1;
                self.counters.read_bytes += len;
                Completion::good(len, 0)
            }
            (Err(IoError::Transfer), _) => Completion::check(Sense::DATA_PHASE_ERROR),
            (Err(IoError::Medium), true) => Completion::check(Sense::WRITE_ERROR),
            (Err(IoError::Medium), false) => Completion::check(Sense::READ_ERROR),
        }
    }

    /// INQUIRY's data into `a`: its length, or `None` for a page not
    /// served (or a page code without EVPD).
    fn inquiry(&self, evpd: bool, page: u8, a: &mut [u8; ANSWER]) -> Option<usize> {
        if !evpd {
            if page != 0 {
                return None;
            }
            // Direct access, not removable, SPC-3, response format 2,
            // command queueing.
            a[2] = VERSION_SPC3;
            a[3] = 0x02;
            a[4] = 36 - 5;
            a[7] = 0x02;
            a[8..16].copy_from_slice(VENDOR);
            a[16..32].copy_from_slice(PRODUCT);
            a[32..36].copy_from_slice(REVISION);
            return Some(36);
        }
        a[1] = page;
        let body = match page {
            0x00 => {
                a[4..4 + VPD_PAGES.len()].copy_from_slice(&VPD_PAGES);
                VPD_PAGES.len()
            }
            // Unit serial number.
            0x80 => {
                let s = self.serial.as_bytes();
                a[4..4 + s.len()].copy_from_slice(s);
                s.len()
            }
            // Device identification: one T10 vendor ID designator (ASCII),
            // the vendor then the serial number.
            0x83 => {
                let s = self.serial.as_bytes();
                let d = &mut a[4..];
                d[0] = 0x02; // code set: ASCII
                d[1] = 0x01; // association: LU, type: T10 vendor ID
                d[3] = (VENDOR.len() + s.len()) as u8;
                d[4..12].copy_from_slice(VENDOR);
                d[12..12 + s.len()].copy_from_slice(s);
                4 + VENDOR.len() + s.len()
            }
            // Block limits: the most blocks one command may move.
            0xb0 => {
                let max = (self.max_transfer / BLOCK) as u32;
                a[8..12].copy_from_slice(&max.to_be_bytes());
                0x3c
            }
            _ => return None,
        };
        a[2..4].copy_from_slice(&(body as u16).to_be_bytes());
        Some(4 + body)
    }

    /// MODE SENSE's data into `a` (no block descriptors): its length, or
    /// why not.
    fn mode_sense(
        &self,
        ten: bool,
        pc_page: u8,
        subpage: u8,
        a: &mut [u8; ANSWER],
    ) -> Result<usize, Sense> {
        let (pc, page) = (pc_page >> 6, pc_page & 0x3f);
        if pc == 3 {
            return Err(Sense::SAVING_NOT_SUPPORTED);
        }
        if subpage != 0 {
            return Err(Sense::INVALID_FIELD);
        }
        let header = if ten { 8 } else { 4 };
        let mut n = header;
        // Nothing is changeable: PC 1 (changeable values) is all zeros.
        let current = pc != 1;
        if matches!(page, 0x08 | 0x3f) {
            // Caching: WCE when writes wait for a flush.
            a[n] = 0x08;
            a[n + 1] = 0x12;
            if current && self.store.write_back() {
                a[n + 2] = 0x04;
            }
            n += 20;
        }
        if matches!(page, 0x0a | 0x3f) {
            // Control: all defaults.
            a[n] = 0x0a;
            a[n + 1] = 0x0a;
            n += 12;
        }
        if n == header {
            return Err(Sense::INVALID_FIELD);
        }
        // Device-specific parameter: write protect.
        let wp = if self.store.writable() { 0 } else { 0x80 };
        if ten {
            a[..2].copy_from_slice(&((n - 2) as u16).to_be_bytes());
            a[3] = wp;
        } else {
            a[0] = (n - 1) as u8;
            a[2] = wp;
        }
        Ok(n)
    }
}

/// REPORT LUNS' data for `luns` LUNs (0..luns, peripheral addressing,
/// which Linux reads back as the LUN numbers 0..luns), into `a`: its
/// length. At most 8 LUNs fit.
pub fn report_luns(luns: u8, a: &mut [u8; 96]) -> usize {
    let n = usize::from(luns.min(8));
    a[..4].copy_from_slice(&((8 * n) as u32).to_be_bytes());
    for l in 0..n {
        a[8 + 8 * l + 1] = l as u8;
    }
    8 + 8 * n
}

/// A data-in answer `data`, cut to the allocation length `alloc` and to
/// the buffer.
pub fn reply(din: &mut dyn Buffer, data: &[u8], alloc: u64) -> Completion {
    let n = (data.len() as u64).min(alloc).min(din.bytes()) as usize;
    if din.put(0, &data[..n]) {
        Completion::good(n as u64, 0)
    } else {
        Completion::check(Sense::DATA_PHASE_ERROR)
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests;
