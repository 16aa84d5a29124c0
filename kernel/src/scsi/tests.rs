//! The disk against buffers in Vecs and stores in memory.

use super::*;
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

/// A buffer in a Vec, failing every access at or past `fail_from`.
struct VecBuf {
    data: Vec<u8>,
    fail_from: u64,
}

impl VecBuf {
    fn new(len: usize) -> Self {
        VecBuf {
            data: vec![0xee; len],
            fail_from: u64::MAX,
        }
    }
}

impl Buffer for VecBuf {
    fn bytes(&self) -> u64 {
        self.data.len() as u64
    }
    fn put(&mut self, at: u64, data: &[u8]) -> bool {
        if at + data.len() as u64 > self.fail_from {
            return false;
        }
        self.data[at as usize..at as usize + data.len()].copy_from_slice(data);
        true
    }
    fn get(&mut self, at: u64, into: &mut [u8]) -> bool {
        if at + into.len() as u64 > self.fail_from {
            return false;
        }
        into.copy_from_slice(&self.data[at as usize..at as usize + into.len()]);
        true
    }
}

const BLOCKS: u64 = 128;

/// A 64 KiB disk whose block `i` is filled with byte `i`.
fn disk(writable: bool) -> Disk {
    let mut bytes = vec![0u8; (BLOCKS * BLOCK) as usize];
    for (i, b) in bytes.chunks_mut(BLOCK as usize).enumerate() {
        b.fill(i as u8);
    }
    Disk::new(Box::new(RamStore::new(bytes, writable)), "vm-a.0", 1 << 20)
}

fn cdb(bytes: &[u8]) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[..bytes.len()].copy_from_slice(bytes);
    c
}

/// Runs a data-in command with a buffer of `len`.
fn read(d: &mut Disk, c: &[u8], len: usize) -> (Completion, Vec<u8>) {
    let mut din = VecBuf::new(len);
    let r = d.execute(&cdb(c), &mut din, &mut NoBuffer);
    (r, din.data)
}

fn rw10(op: u8, lba: u32, n: u16) -> Vec<u8> {
    let mut c = vec![op, 0];
    c.extend_from_slice(&lba.to_be_bytes());
    c.push(0);
    c.extend_from_slice(&n.to_be_bytes());
    c
}

fn rw16(op: u8, lba: u64, n: u32) -> Vec<u8> {
    let mut c = vec![op, 0];
    c.extend_from_slice(&lba.to_be_bytes());
    c.extend_from_slice(&n.to_be_bytes());
    c
}

#[test]
fn sense_is_fixed_format_18_bytes() {
    let s = Sense::LBA_OUT_OF_RANGE.bytes();
    assert_eq!(s.len(), 18);
    assert_eq!((s[0], s[2], s[7], s[12], s[13]), (0x70, 5, 10, 0x21, 0));
}

#[test]
fn standard_inquiry_is_a_spc3_disk_cut_to_the_allocation_length() {
    let mut d = disk(true);
    let (c, data) = read(&mut d, &[op::INQUIRY, 0, 0, 0, 96], 96);
    assert_eq!(c, Completion::good(36, 0));
    assert_eq!(data[0], 0, "direct access, connected");
    assert_eq!((data[2], data[3], data[4], data[7]), (5, 2, 31, 2));
    assert_eq!(&data[8..16], b"OPENPWR ");
    assert_eq!(data[36], 0xee, "nothing past the answer");
    // Allocation length 5: five bytes; a buffer of 4: four.
    assert_eq!(read(&mut d, &[op::INQUIRY, 0, 0, 0, 5], 96).0.data_in, 5);
    assert_eq!(read(&mut d, &[op::INQUIRY, 0, 0, 0, 96], 4).0.data_in, 4);
    // A page code without EVPD is invalid.
    let (c, _) = read(&mut d, &[op::INQUIRY, 0, 0x80, 0, 96], 96);
    assert_eq!(c, Completion::check(Sense::INVALID_FIELD));
}

#[test]
fn vpd_pages_list_serial_identification_and_limits() {
    let mut d = disk(true);
    let (c, p0) = read(&mut d, &[op::INQUIRY, 1, 0x00, 0, 255], 255);
    assert_eq!(c.status, GOOD);
    assert_eq!(&p0[..8], &[0, 0, 0, 4, 0x00, 0x80, 0x83, 0xb0]);
    let (_, p80) = read(&mut d, &[op::INQUIRY, 1, 0x80, 0, 255], 255);
    assert_eq!(&p80[..4], &[0, 0x80, 0, 6]);
    assert_eq!(&p80[4..10], b"vm-a.0");
    let (_, p83) = read(&mut d, &[op::INQUIRY, 1, 0x83, 0, 255], 255);
    assert_eq!(&p83[..8], &[0, 0x83, 0, 18, 2, 1, 0, 14]);
    assert_eq!(&p83[8..22], b"OPENPWR vm-a.0");
    let (_, pb0) = read(&mut d, &[op::INQUIRY, 1, 0xb0, 0, 255], 255);
    assert_eq!(&pb0[..4], &[0, 0xb0, 0, 0x3c]);
    assert_eq!(u32::from_be_bytes(pb0[8..12].try_into().unwrap()), 2048);
    let (c, _) = read(&mut d, &[op::INQUIRY, 1, 0xb1, 0, 255], 255);
    assert_eq!(c, Completion::check(Sense::INVALID_FIELD));
}

#[test]
fn capacity_in_both_forms() {
    let mut d = disk(true);
    let (c, r) = read(&mut d, &[op::READ_CAPACITY_10], 8);
    assert_eq!(c, Completion::good(8, 0));
    assert_eq!(&r[..8], &[0, 0, 0, 127, 0, 0, 2, 0]);
    let mut c16 = vec![op::SERVICE_ACTION_IN_16, 0x10];
    c16.extend_from_slice(&[0; 8]);
    c16.extend_from_slice(&32u32.to_be_bytes());
    let (c, r) = read(&mut d, &c16, 32);
    assert_eq!(c, Completion::good(32, 0));
    assert_eq!(&r[..12], &[0, 0, 0, 0, 0, 0, 0, 127, 0, 0, 2, 0]);
    // Another service action.
    let (c, _) = read(&mut d, &[op::SERVICE_ACTION_IN_16, 0x11], 32);
    assert_eq!(c, Completion::check(Sense::INVALID_FIELD));
}

#[test]
fn reads_and_writes_in_both_sizes_move_whole_blocks() {
    let mut d = disk(true);
    let (c, r) = read(&mut d, &rw10(op::READ_10, 3, 2), 1024);
    assert_eq!(c, Completion::good(1024, 0));
    assert!(r[..512].iter().all(|b| *b == 3) && r[512..].iter().all(|b| *b == 4));
    let mut out = VecBuf::new(1536);
    out.data.fill(0x5a);
    let c = d.execute(&cdb(&rw16(op::WRITE_16, 125, 3)), &mut NoBuffer, &mut out);
    assert_eq!(c, Completion::good(0, 1536));
    let (c, r) = read(&mut d, &rw16(op::READ_16, 124, 4), 2048);
    assert_eq!(c.status, GOOD);
    assert!(r[..512].iter().all(|b| *b == 124));
    assert!(r[512..].iter().all(|b| *b == 0x5a));
    assert_eq!(
        (
            d.counters.reads,
            d.counters.read_bytes,
            d.counters.writes,
            d.counters.write_bytes
        ),
        (2, 3072, 1, 1536)
    );
    // No blocks: nothing moves.
    assert_eq!(
        read(&mut d, &rw10(op::READ_10, 0, 0), 0).0,
        Completion::good(0, 0)
    );
}

#[test]
fn bad_ranges_short_buffers_and_faults_are_refused() {
    let mut d = disk(true);
    let lba = Completion::check(Sense::LBA_OUT_OF_RANGE);
    assert_eq!(read(&mut d, &rw10(op::READ_10, 127, 2), 1024).0, lba);
    assert_eq!(read(&mut d, &rw10(op::READ_10, 128, 0), 0).0, lba);
    assert_eq!(read(&mut d, &rw16(op::READ_16, u64::MAX, 2), 1024).0, lba);
    // The buffer holds less than the blocks asked for: nothing moves.
    let (c, r) = read(&mut d, &rw10(op::READ_10, 0, 2), 1000);
    assert_eq!(c, Completion::check(Sense::INVALID_FIELD));
    assert!(r.iter().all(|b| *b == 0xee));
    // More than one transfer may move.
    let mut small = Disk::new(Box::new(RamStore::new(vec![0; 4096], true)), "s", 1024);
    let (c, _) = read(&mut small, &rw10(op::READ_10, 0, 4), 2048);
    assert_eq!(c, Completion::check(Sense::INVALID_FIELD));
    // The initiator's memory faults mid-way.
    let mut din = VecBuf::new(1024);
    din.fail_from = 700;
    let c = d.execute(&cdb(&rw10(op::READ_10, 0, 2)), &mut din, &mut NoBuffer);
    assert_eq!(c, Completion::check(Sense::DATA_PHASE_ERROR));
    let mut dout = VecBuf::new(512);
    dout.fail_from = 0;
    let c = d.execute(&cdb(&rw10(op::WRITE_10, 0, 1)), &mut NoBuffer, &mut dout);
    assert_eq!(c, Completion::check(Sense::DATA_PHASE_ERROR));
    assert_eq!(d.counters.errors, 6);
    assert_eq!((d.counters.reads, d.counters.writes), (0, 0));
}

#[test]
fn a_read_only_disk_refuses_writes_and_says_so_in_mode_sense() {
    let mut d = disk(false);
    let mut out = VecBuf::new(512);
    let c = d.execute(&cdb(&rw10(op::WRITE_10, 0, 1)), &mut NoBuffer, &mut out);
    assert_eq!(c, Completion::check(Sense::WRITE_PROTECTED));
    assert_eq!(c.sense.unwrap().key, key::DATA_PROTECT);
    let (_, r) = read(&mut d, &rw10(op::READ_10, 0, 1), 512);
    assert!(r.iter().all(|b| *b == 0), "block 0 unchanged");
    let (c, m) = read(&mut d, &[op::MODE_SENSE_6, 0, 0x3f, 0, 255], 255);
    assert_eq!(c.status, GOOD);
    assert_eq!(m[2], 0x80, "write protected");
    let (_, m) = read(&mut disk(true), &[op::MODE_SENSE_6, 0, 0x3f, 0, 255], 255);
    assert_eq!(m[2], 0);
}

#[test]
fn mode_sense_serves_caching_and_control_pages_only() {
    let mut d = disk(true);
    // All pages, 6-byte form: header 4 + caching 20 + control 12.
    let (c, m) = read(&mut d, &[op::MODE_SENSE_6, 0, 0x3f, 0, 255], 255);
    assert_eq!(c, Completion::good(36, 0));
    assert_eq!((m[0], m[3]), (35, 0), "length, no block descriptors");
    assert_eq!((m[4], m[5], m[6]), (0x08, 0x12, 0), "caching, WCE clear");
    assert_eq!((m[24], m[25]), (0x0a, 0x0a));
    // The 10-byte form, caching alone.
    let (c, m) = read(
        &mut d,
        &[op::MODE_SENSE_10, 0, 0x08, 0, 0, 0, 0, 0, 255],
        255,
    );
    assert_eq!(c, Completion::good(28, 0));
    assert_eq!(&m[..8], &[0, 26, 0, 0, 0, 0, 0, 0]);
    assert_eq!(m[8], 0x08);
    let invalid = Completion::check(Sense::INVALID_FIELD);
    assert_eq!(
        read(&mut d, &[op::MODE_SENSE_6, 0, 0x1c, 0, 255], 255).0,
        invalid
    );
    assert_eq!(
        read(&mut d, &[op::MODE_SENSE_6, 0, 0x0a, 5, 255], 255).0,
        invalid
    );
    let saved = read(&mut d, &[op::MODE_SENSE_6, 0, 0xc8, 0, 255], 255).0;
    assert_eq!(saved, Completion::check(Sense::SAVING_NOT_SUPPORTED));
    // Allocation length 4: the header alone.
    assert_eq!(
        read(&mut d, &[op::MODE_SENSE_6, 0, 0x3f, 0, 4], 255)
            .0
            .data_in,
        4
    );
}

/// A store whose flush fails and which holds writes.
struct Flaky(RamStore<Vec<u8>>);

impl Store for Flaky {
    fn bytes(&self) -> u64 {
        self.0.bytes()
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
        self.0.read(at, len, sink)
    }
    fn write(
        &mut self,
        _: u64,
        _: u64,
        _: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<(), IoError> {
        Err(IoError::Medium)
    }
    fn flush(&mut self) -> Result<(), IoError> {
        Err(IoError::Medium)
    }
}

#[test]
fn a_write_back_store_reports_its_cache_and_its_failures() {
    let mut d = Disk::new(
        Box::new(Flaky(RamStore::new(vec![0; 4096], true))),
        "x",
        1 << 20,
    );
    let (_, m) = read(&mut d, &[op::MODE_SENSE_6, 0, 0x08, 0, 255], 255);
    assert_eq!(m[6], 0x04, "WCE");
    // Changeable values: nothing.
    let (_, m) = read(&mut d, &[op::MODE_SENSE_6, 0, 0x48, 0, 255], 255);
    assert_eq!(m[6], 0);
    let c = read(&mut d, &[op::SYNCHRONIZE_CACHE_10], 0).0;
    assert_eq!(c, Completion::check(Sense::WRITE_ERROR));
    let mut out = VecBuf::new(512);
    let c = d.execute(&cdb(&rw10(op::WRITE_10, 0, 1)), &mut NoBuffer, &mut out);
    assert_eq!(c, Completion::check(Sense::WRITE_ERROR));
    assert_eq!(d.counters.flushes, 1);
}

#[test]
fn housekeeping_commands_and_unknown_opcodes() {
    let mut d = disk(true);
    assert_eq!(
        read(&mut d, &[op::TEST_UNIT_READY], 0).0,
        Completion::good(0, 0)
    );
    assert_eq!(
        read(&mut d, &[op::START_STOP_UNIT, 0, 0, 0, 1], 0).0,
        Completion::good(0, 0)
    );
    assert_eq!(
        read(&mut d, &[op::SYNCHRONIZE_CACHE_16], 0).0,
        Completion::good(0, 0)
    );
    let (c, s) = read(&mut d, &[op::REQUEST_SENSE, 0, 0, 0, 252], 252);
    assert_eq!(c, Completion::good(18, 0));
    assert_eq!((s[0], s[2], s[7]), (0x70, 0, 10));
    // READ(6), WRITE SAME, MAINTENANCE IN: not served.
    for opcode in [0x08, 0x41, 0xa3] {
        let (c, _) = read(&mut d, &[opcode], 64);
        assert_eq!(c, Completion::check(Sense::INVALID_OPCODE), "{opcode:#x}");
    }
}

#[test]
fn report_luns_lists_peripheral_addresses() {
    let mut a = [0u8; 96];
    assert_eq!(report_luns(3, &mut a), 32);
    assert_eq!(&a[..8], &[0, 0, 0, 24, 0, 0, 0, 0]);
    assert_eq!(&a[8..16], &[0; 8]);
    assert_eq!(&a[16..24], &[0, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&a[24..32], &[0, 2, 0, 0, 0, 0, 0, 0]);
    assert_eq!(report_luns(200, &mut [0u8; 96]), 72);
}

#[test]
fn a_shared_image_is_read_in_place_and_never_written() {
    static IMAGE: [u8; 1024] = [7; 1024];
    let mut d = Disk::new(Box::new(RomStore(&IMAGE)), "ro", 1 << 20);
    let (c, r) = read(&mut d, &rw10(op::READ_10, 1, 1), 512);
    assert_eq!(c, Completion::good(512, 0));
    assert!(r.iter().all(|b| *b == 7));
    let c = d.execute(
        &cdb(&rw10(op::WRITE_10, 0, 1)),
        &mut NoBuffer,
        &mut VecBuf::new(512),
    );
    assert_eq!(c, Completion::check(Sense::WRITE_PROTECTED));
}
