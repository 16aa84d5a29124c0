//! The adapter against a client written as ibmvscsi behaves: guest
//! memory in a Vec, IOBA page `i` mapped to guest page `GPA/PAGE + i`
//! for the first `MAPPED` pages, the CRQ at IOBA 0, IUs at [`IU`].

use super::*;
use crate::scsi::{RamStore, BLOCK};
use crate::vio::tce::{PAGE, TCE_READ, TCE_WRITE};
use alloc::boxed::Box;
use alloc::vec;

const MEM: u64 = 4 << 20;
const GPA: u64 = 1 << 20;
const MAPPED: u64 = 512;
const QUEUE: u64 = 16 * PAGE;
/// IU buffers (256 bytes each).
const IU: u64 = 0x10000;
/// Data buffers.
const DATA: u64 = 0x40000;
/// LUN 0 of target 0 as ibmvscsi writes it.
const LUN0: [u8; 8] = [0x80, 0, 0, 0, 0, 0, 0, 0];
const DISK: u64 = 64 << 10;

struct Client {
    v: Vscsi,
    ram: Vec<u8>,
    /// Next CRQ slot read.
    next: u64,
    tag: u64,
}

impl Client {
    /// Two disks of 64 KiB (block `i` of disk `d` filled with `d * 100 + i`),
    /// the window mapped, the queue registered, interrupts on.
    fn new() -> Client {
        let disks = (0..2u8)
            .map(|d| {
                let mut bytes = vec![0u8; DISK as usize];
                for (i, b) in bytes.chunks_mut(BLOCK as usize).enumerate() {
                    b.fill(d * 100 + i as u8);
                }
                Disk::new(Box::new(RamStore::new(bytes, true)), "t", MAX_TRANSFER)
            })
            .collect();
        let mut v = Vscsi::new(TceTable::new(REG, 2 * MAPPED * PAGE), disks, "vm-a", 3);
        let t = v.tce().unwrap();
        for i in 0..MAPPED {
            t.put(i * PAGE, (GPA + i * PAGE) | TCE_READ | TCE_WRITE, MEM)
                .unwrap();
        }
        v.register(0, QUEUE).unwrap();
        v.set_signal(1).unwrap();
        Client {
            v,
            ram: vec![0u8; MEM as usize],
            next: 0,
            tag: 0x1000,
        }
    }

    fn at(ioba: u64) -> usize {
        (GPA + ioba) as usize
    }

    fn write(&mut self, ioba: u64, bytes: &[u8]) {
        let at = Self::at(ioba);
        self.ram[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn read(&self, ioba: u64, len: usize) -> &[u8] {
        &self.ram[Self::at(ioba)..Self::at(ioba) + len]
    }

    /// H_SEND_CRQ of entry `e`: its result.
    fn send_entry(&mut self, e: [u8; 16]) -> Result<bool, HError> {
        let hi = u64::from_be_bytes(e[..8].try_into().unwrap());
        let lo = u64::from_be_bytes(e[8..].try_into().unwrap());
        let mut mem = GuestMemory::new(&mut self.ram);
        self.v.send(hi, lo, &mut mem)
    }

    /// The next response entry, consumed (its valid byte zeroed).
    fn take(&mut self) -> Option<[u8; 16]> {
        let at = Self::at(self.next);
        let mut e = [0u8; 16];
        e.copy_from_slice(&self.ram[at..at + 16]);
        if e[0] == 0 {
            return None;
        }
        self.ram[at] = 0;
        self.next = (self.next + 16) % QUEUE;
        Some(e)
    }

    /// Sends IU `iu` (format `format`, its tag set) from IU slot 0: the
    /// response entry and the IU buffer's bytes after it.
    fn send_iu(&mut self, format: u8, mut iu: Vec<u8>) -> ([u8; 16], Vec<u8>) {
        self.tag += 1;
        iu.resize(MAX_IU, 0);
        iu[8..16].copy_from_slice(&self.tag.to_le_bytes());
        self.write(IU, &iu);
        let mut e = [0u8; 16];
        (e[0], e[1]) = (0x80, format);
        e[6..8].copy_from_slice(&(MAX_IU as u16).to_be_bytes());
        e[8..].copy_from_slice(&IU.to_be_bytes());
        assert_eq!(self.send_entry(e), Ok(true), "interrupt due");
        let r = self.take().expect("a response");
        assert_eq!((r[0], r[1]), (0x80, format));
        assert_eq!(&r[8..], &self.tag.to_le_bytes(), "the tag, verbatim");
        assert!(self.take().is_none(), "one response");
        (r, self.read(IU, MAX_IU).to_vec())
    }

    /// An SRP_CMD for `lun` with `cdb` and `desc` (buf_fmt, descriptor
    /// bytes): the SRP_RSP.
    fn command(&mut self, lun: [u8; 8], cdb: &[u8], fmt: u8, desc: &[u8]) -> Rsp {
        let mut iu = vec![0u8; 48];
        iu[0] = srp::CMD;
        iu[5] = fmt;
        iu[20..28].copy_from_slice(&lun);
        iu[32..32 + cdb.len()].copy_from_slice(cdb);
        iu.extend_from_slice(desc);
        let (e, r) = self.send_iu(FORMAT_SRP, iu);
        assert_eq!(e[3], CRQ_OK);
        assert_eq!(u16::from_be_bytes([e[6], e[7]]) as usize, rsp_len(&r));
        Rsp::of(&r)
    }
}

fn rsp_len(r: &[u8]) -> usize {
    srp::RSP_LEN + be32(&r[28..32]) as usize + be32(&r[32..36]) as usize
}

/// An SRP_RSP's fields.
#[derive(Debug, PartialEq, Eq)]
struct Rsp {
    credit: u32,
    flags: u8,
    status: u8,
    out_res: u32,
    in_res: u32,
    sense: Option<(u8, u8)>,
}

impl Rsp {
    fn of(r: &[u8]) -> Rsp {
        assert_eq!(r[0], srp::RSP);
        let sense = (be32(&r[28..32]) == 18).then(|| {
            assert_eq!(r[36], 0x70);
            (r[38], r[48])
        });
        Rsp {
            credit: be32(&r[4..8]),
            flags: r[18],
            status: r[19],
            out_res: be32(&r[20..24]),
            in_res: be32(&r[24..28]),
            sense,
        }
    }

    fn good(flags: u8, in_res: u32) -> Rsp {
        Rsp {
            credit: 1,
            flags,
            status: 0,
            out_res: 0,
            in_res,
            sense: None,
        }
    }

    /// With `n` bytes of the data-in buffer unused.
    fn left_in(mut self, n: u32) -> Rsp {
        self.flags |= srp::DIOVER;
        self.in_res = n;
        self
    }

    /// With `n` bytes of the data-out buffer unused.
    fn left_out(mut self, n: u32) -> Rsp {
        self.flags |= srp::DOOVER;
        self.out_res = n;
        self
    }

    fn check(key: u8, asc: u8) -> Rsp {
        Rsp {
            credit: 1,
            flags: srp::SNSVALID,
            status: 2,
            out_res: 0,
            in_res: 0,
            sense: Some((key, asc)),
        }
    }
}

fn direct(ioba: u64, len: u32) -> Vec<u8> {
    let mut d = ioba.to_be_bytes().to_vec();
    d.extend_from_slice(&[0; 4]);
    d.extend_from_slice(&len.to_be_bytes());
    d
}

/// An indirect header whose table is at `table` with `n` descriptors and
/// a total of `total`, then `inline` descriptor bytes.
fn indirect(table: u64, n: u32, total: u32, inline: &[u8]) -> Vec<u8> {
    let mut d = direct(table, n * 16);
    d.extend_from_slice(&total.to_be_bytes());
    d.extend_from_slice(inline);
    d
}

fn rw10(op: u8, lba: u32, n: u16) -> Vec<u8> {
    let mut c = vec![op, 0];
    c.extend_from_slice(&lba.to_be_bytes());
    c.push(0);
    c.extend_from_slice(&n.to_be_bytes());
    c
}

const IN_DIRECT: u8 = srp::DIRECT;
const OUT_DIRECT: u8 = srp::DIRECT << 4;
const IN_INDIRECT: u8 = srp::INDIRECT;
const OUT_INDIRECT: u8 = srp::INDIRECT << 4;

#[test]
fn the_init_handshake_is_answered_and_nothing_is_sent_unasked() {
    let mut c = Client::new();
    assert!(c.take().is_none(), "no init of the server's own");
    let mut init = [0u8; 16];
    (init[0], init[1]) = (0xc0, 0x01);
    assert_eq!(c.send_entry(init), Ok(true));
    assert_eq!(c.take().map(|e| (e[0], e[1])), Some((0xc0, 0x02)));
    // An init-complete from the client is taken, unanswered.
    init[1] = 0x02;
    assert_eq!(c.send_entry(init), Ok(false));
    assert!(c.take().is_none());
    // Interrupts off: the entry is queued, no interrupt is due.
    c.v.set_signal(0).unwrap();
    init[1] = 0x01;
    assert_eq!(c.send_entry(init), Ok(false));
    assert!(c.take().is_some());
    assert_eq!(c.v.set_signal(2), Err(HError::Parameter));
}

#[test]
fn queue_registration_and_bad_entries() {
    let mut c = Client::new();
    assert_eq!(c.v.register(0, QUEUE), Err(HError::Resource));
    // Transport events are the hypervisor's; other valid bytes are nothing.
    for (valid, format) in [(0xff, 0x01), (0x00, 0x00), (0x80, 0x03), (0xc0, 0x07)] {
        let mut e = [0u8; 16];
        (e[0], e[1]) = (valid, format);
        assert_eq!(
            c.send_entry(e),
            Err(HError::Parameter),
            "{valid:#x} {format:#x}"
        );
    }
    // An IU of no length, too long, or not mapped.
    for (len, ioba) in [
        (0u16, IU),
        (257, IU),
        (256, MAPPED * PAGE),
        (256, MAPPED * PAGE - 64),
    ] {
        let mut e = [0u8; 16];
        (e[0], e[1]) = (0x80, FORMAT_SRP);
        e[6..8].copy_from_slice(&len.to_be_bytes());
        e[8..].copy_from_slice(&ioba.to_be_bytes());
        assert_eq!(
            c.send_entry(e),
            Err(HError::Parameter),
            "len {len} at {ioba:#x}"
        );
    }
    assert_eq!(c.v.counters.bad_requests, 8);
    assert!(c.take().is_none(), "nothing answered");
    // Without a queue the link is closed.
    c.v.reset();
    let mut init = [0u8; 16];
    (init[0], init[1]) = (0xc0, 0x01);
    assert_eq!(c.send_entry(init), Err(HError::Closed));
}

#[test]
fn adapter_info_answers_as_a_linux_server_and_other_mads_are_unsupported() {
    let mut c = Client::new();
    let mut iu = vec![0u8; 24];
    iu[..4].copy_from_slice(&mad::ADAPTER_INFO.to_be_bytes());
    iu[6..8].copy_from_slice(&148u16.to_be_bytes());
    iu[16..24].copy_from_slice(&DATA.to_be_bytes());
    let (e, r) = c.send_iu(FORMAT_MAD, iu.clone());
    assert_eq!(e[3], CRQ_OK);
    assert_eq!(u16::from_be_bytes([r[4], r[5]]), mad::SUCCESS);
    let info = c.read(DATA, 148);
    assert_eq!(&info[..5], b"16.a\0");
    assert_eq!(&info[8..13], b"vm-a\0");
    assert_eq!(be32(&info[104..108]), 3, "partition number");
    assert_eq!(be32(&info[112..116]), 2, "os_type: Linux");
    assert_eq!(be32(&info[116..120]), 1 << 20, "max transfer");
    // A buffer that cannot be written, or too short: failed.
    iu[16..24].copy_from_slice(&(MAPPED * PAGE).to_be_bytes());
    let (_, r) = c.send_iu(FORMAT_MAD, iu.clone());
    assert_eq!(u16::from_be_bytes([r[4], r[5]]), mad::FAILED);
    iu[6..8].copy_from_slice(&100u16.to_be_bytes());
    let (_, r) = c.send_iu(FORMAT_MAD, iu.clone());
    assert_eq!(u16::from_be_bytes([r[4], r[5]]), mad::FAILED);
    // Capabilities, fast fail, anything else: not supported.
    for kind in [5u32, 8, 1, 0x77] {
        iu[..4].copy_from_slice(&kind.to_be_bytes());
        let (_, r) = c.send_iu(FORMAT_MAD, iu.clone());
        assert_eq!(
            u16::from_be_bytes([r[4], r[5]]),
            mad::NOT_SUPPORTED,
            "{kind}"
        );
    }
}

#[test]
fn login_grants_the_credit_or_is_rejected() {
    let mut c = Client::new();
    let mut iu = vec![0u8; 64];
    iu[16..20].copy_from_slice(&256u32.to_be_bytes());
    iu[24..26].copy_from_slice(&6u16.to_be_bytes());
    let (e, r) = c.send_iu(FORMAT_SRP, iu.clone());
    assert_eq!(u16::from_be_bytes([e[6], e[7]]), 52);
    assert_eq!(r[0], srp::LOGIN_RSP);
    assert_eq!(be32(&r[4..8]), REQ_LIMIT);
    assert_eq!((be32(&r[16..20]), be32(&r[20..24])), (256, 256));
    assert_eq!(u16::from_be_bytes([r[24], r[25]]), 6);
    // No descriptor format it knows; an IU length that cannot carry a command.
    iu[24..26].copy_from_slice(&1u16.to_be_bytes());
    let (_, r) = c.send_iu(FORMAT_SRP, iu.clone());
    assert_eq!((r[0], be32(&r[4..8])), (srp::LOGIN_REJ, 0x0001_0004));
    iu[24..26].copy_from_slice(&6u16.to_be_bytes());
    iu[16..20].copy_from_slice(&32u32.to_be_bytes());
    let (_, r) = c.send_iu(FORMAT_SRP, iu);
    assert_eq!((r[0], be32(&r[4..8])), (srp::LOGIN_REJ, 0x0001_0000));
    assert_eq!(c.v.counters.logins, 1);
}

#[test]
fn the_scan_finds_two_luns_on_target_0_and_nothing_elsewhere() {
    let mut c = Client::new();
    let inquiry = [0x12, 0, 0, 0, 96];
    let r = c.command(LUN0, &inquiry, IN_DIRECT, &direct(DATA, 96));
    // 36 bytes of 96: the rest reported as an overrun, as Linux reads it.
    assert_eq!(r, Rsp::good(srp::DIOVER, 60));
    assert_eq!(c.read(DATA, 1)[0], 0);
    // LUN 5 of target 0: peripheral qualifier 3.
    let r = c.command(
        [0x80, 5, 0, 0, 0, 0, 0, 0],
        &inquiry,
        IN_DIRECT,
        &direct(DATA, 96),
    );
    assert_eq!(r.status, 0);
    assert_eq!(c.read(DATA, 1)[0], 0x7f);
    // Target 1, bus 1, a two-level LUN, flat addressing: no such unit.
    for lun in [
        [0x81, 0, 0, 0, 0, 0, 0, 0],
        [0x80, 0x20, 0, 0, 0, 0, 0, 0],
        [0x80, 0, 0, 1, 0, 0, 0, 0],
        [0x40, 0, 0, 0, 0, 0, 0, 0],
    ] {
        let r = c.command(lun, &inquiry, IN_DIRECT, &direct(DATA, 96));
        assert_eq!(r, Rsp::check(5, 0x25).left_in(96), "{lun:?}");
    }
    // REPORT LUNS: 0 and 1.
    let r = c.command(
        LUN0,
        &[0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
        IN_DIRECT,
        &direct(DATA, 256),
    );
    assert_eq!(r, Rsp::good(srp::DIOVER, 256 - 24));
    assert_eq!(
        c.read(DATA, 24),
        &[0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    );
    // LUN 1 by peripheral addressing reads the second disk.
    let r = c.command(
        [0, 1, 0, 0, 0, 0, 0, 0],
        &rw10(0x28, 2, 1),
        IN_DIRECT,
        &direct(DATA, 512),
    );
    assert_eq!(r, Rsp::good(0, 0));
    assert!(c.read(DATA, 512).iter().all(|b| *b == 102));
    // Commands to an empty LUN other than INQUIRY and REPORT LUNS.
    let r = c.command([0x80, 2, 0, 0, 0, 0, 0, 0], &[0], 0, &[]);
    assert_eq!(r, Rsp::check(5, 0x25));
}

#[test]
fn data_moves_through_direct_inline_and_external_descriptor_tables() {
    let mut c = Client::new();
    // Three pieces of a write, scattered, their table inline in the IU.
    let pieces = [
        (DATA + 0x3000, 512u32),
        (DATA + 0x100, 1024),
        (DATA + 0x8000, 512),
    ];
    let mut table = Vec::new();
    for (k, (ioba, len)) in pieces.iter().enumerate() {
        c.write(*ioba, &vec![0x40 + k as u8; *len as usize]);
        table.extend_from_slice(&direct(*ioba, *len));
    }
    let r = c.command(
        LUN0,
        &rw10(0x2a, 4, 4),
        OUT_INDIRECT,
        &indirect(IU + 68, 3, 2048, &table),
    );
    assert_eq!(r, Rsp::good(0, 0));
    // Read the four blocks back, 16 descriptors of 128 bytes each in an
    // external table (with the first ten also inline, as Linux sends it).
    let mut table = Vec::new();
    for k in 0..16u64 {
        table.extend_from_slice(&direct(DATA + 0x10000 + k * 0x200, 128));
    }
    c.write(DATA + 0x30000, &table);
    let r = c.command(
        LUN0,
        &rw10(0x28, 4, 4),
        IN_INDIRECT,
        &indirect(DATA + 0x30000, 16, 2048, &table[..160]),
    );
    assert_eq!(r, Rsp::good(0, 0));
    let mut back = Vec::new();
    for k in 0..16u64 {
        back.extend_from_slice(c.read(DATA + 0x10000 + k * 0x200, 128));
    }
    let mut want = vec![0x40; 512];
    want.extend_from_slice(&[0x41; 1024]);
    want.extend_from_slice(&[0x42; 512]);
    assert_eq!(back, want);
    // Direct, crossing pages.
    let r = c.command(
        LUN0,
        &rw10(0x28, 5, 2),
        IN_DIRECT,
        &direct(DATA + PAGE - 256, 1024),
    );
    assert_eq!(r, Rsp::good(0, 0));
    assert_eq!(c.read(DATA + PAGE - 256, 1024), &want[512..1536]);
    let k = c.v.disks()[0].counters;
    assert_eq!((k.reads, k.writes, k.write_bytes), (2, 1, 2048));
}

#[test]
fn malformed_descriptors_are_refused_and_move_nothing() {
    let mut c = Client::new();
    c.write(DATA, &[0x99; 1024]);
    let one = direct(DATA, 512);
    let invalid = Rsp::check(5, 0x24);
    let write = rw10(0x2a, 0, 1);
    let cases: Vec<(u8, Vec<u8>)> = vec![
        // Immediate data, a reserved format; both directions at once.
        (3 << 4, one.clone()),
        (OUT_DIRECT | IN_DIRECT, one.clone()),
        // An indirect table of no descriptor, of a part of one, too many.
        (OUT_INDIRECT, indirect(IU + 68, 0, 512, &[])),
        (OUT_INDIRECT, {
            let mut d = indirect(IU + 68, 1, 512, &one);
            d[12..16].copy_from_slice(&20u32.to_be_bytes());
            d
        }),
        (
            OUT_INDIRECT,
            indirect(DATA, MAX_DESCRIPTORS as u32 + 1, 512, &[]),
        ),
        // Lengths that do not add up to the total.
        (OUT_INDIRECT, indirect(IU + 68, 1, 1024, &one)),
        // A table that is not mapped.
        (OUT_INDIRECT, indirect(MAPPED * PAGE, 1, 512, &[])),
        // A table in the IU that runs past it (IU + 256).
        (OUT_INDIRECT, indirect(u64::MAX - 8, 1, 512, &[])),
    ];
    for (fmt, desc) in cases {
        let r = c.command(LUN0, &write, fmt, &desc);
        assert_eq!(r, invalid, "fmt {fmt:#x} {desc:?}");
    }
    // A direct descriptor shorter than the blocks: refused by the disk.
    let r = c.command(LUN0, &write, OUT_DIRECT, &direct(DATA, 256));
    assert_eq!(r, Rsp::check(5, 0x24).left_out(256));
    // Unmapped for the direction it needs: read into a read-only page.
    c.v.tce()
        .unwrap()
        .put(0x200 * PAGE - PAGE, (GPA + 0x1ff * PAGE) | TCE_READ, MEM)
        .unwrap();
    let r = c.command(
        LUN0,
        &rw10(0x28, 0, 1),
        IN_DIRECT,
        &direct(0x1ff * PAGE, 512),
    );
    assert_eq!(r, Rsp::check(0xb, 0x4b).left_in(512));
    assert!(c.v.disks()[0].counters.writes == 0, "nothing written");
    // An SRP IU the server does not take.
    let (_, r) = c.send_iu(FORMAT_SRP, vec![0x81]);
    assert_eq!(Rsp::of(&r), Rsp::check(5, 0x20));
}

#[test]
fn task_management_is_answered_complete_and_logout_unanswered() {
    let mut c = Client::new();
    let mut iu = vec![0u8; 44];
    iu[0] = srp::TSK_MGMT;
    iu[20..28].copy_from_slice(&LUN0);
    iu[30] = 0x01;
    let (e, r) = c.send_iu(FORMAT_SRP, iu);
    assert_eq!(u16::from_be_bytes([e[6], e[7]]), 40);
    assert_eq!(
        (r[0], r[18], be32(&r[32..36])),
        (srp::RSP, srp::RSPVALID, 4)
    );
    assert_eq!(&r[36..40], &[0, 0, 0, 0], "function complete");
    // I_LOGOUT: nothing queued.
    let mut iu = [0u8; 256];
    iu[0] = srp::I_LOGOUT;
    c.write(IU, &iu);
    let mut e = [0u8; 16];
    (e[0], e[1]) = (0x80, FORMAT_SRP);
    e[6..8].copy_from_slice(&256u16.to_be_bytes());
    e[8..].copy_from_slice(&IU.to_be_bytes());
    assert_eq!(c.send_entry(e), Ok(false));
    assert!(c.take().is_none());
}

#[test]
fn a_full_queue_loses_the_response_and_counts_it() {
    let mut c = Client::new();
    let mut init = [0u8; 16];
    (init[0], init[1]) = (0xc0, 0x01);
    for _ in 0..QUEUE / 16 {
        assert_eq!(c.send_entry(init), Ok(true));
    }
    assert_eq!(c.send_entry(init), Ok(false));
    assert_eq!(c.v.counters.lost_responses, 1);
}

#[test]
fn a_reset_forgets_the_queue_and_mappings_and_keeps_the_disks() {
    let mut c = Client::new();
    c.write(DATA, &[0x33; 512]);
    let r = c.command(LUN0, &rw10(0x2a, 9, 1), OUT_DIRECT, &direct(DATA, 512));
    assert_eq!(r, Rsp::good(0, 0));
    c.v.reset();
    assert_eq!(c.v.tce().unwrap().get(0), Ok(0));
    let mut c2 = Client {
        v: c.v,
        ram: vec![0u8; MEM as usize],
        next: 0,
        tag: 0,
    };
    let t = c2.v.tce().unwrap();
    for i in 0..MAPPED {
        t.put(i * PAGE, (GPA + i * PAGE) | TCE_READ | TCE_WRITE, MEM)
            .unwrap();
    }
    c2.v.register(0, QUEUE).unwrap();
    c2.v.set_signal(1).unwrap();
    let r = c2.command(LUN0, &rw10(0x28, 9, 1), IN_DIRECT, &direct(DATA, 512));
    assert_eq!(r, Rsp::good(0, 0));
    assert!(c2.read(DATA, 512).iter().all(|b| *b == 0x33));
}

#[test]
fn short_ius_are_answered_as_malformed() {
    let mut c = Client::new();
    // (opcode, IU length, what comes back)
    for (opcode, len, answer) in [
        (srp::LOGIN_REQ, 20u16, srp::LOGIN_REJ),
        (srp::TSK_MGMT, 30, srp::RSP),
        (srp::CMD, 40, srp::RSP),
    ] {
        let mut iu = [0u8; 256];
        iu[0] = opcode;
        iu[8] = 0x77;
        c.write(IU, &iu);
        let mut e = [0u8; 16];
        (e[0], e[1]) = (0x80, FORMAT_SRP);
        e[6..8].copy_from_slice(&len.to_be_bytes());
        e[8..].copy_from_slice(&IU.to_be_bytes());
        assert_eq!(c.send_entry(e), Ok(true));
        let r = c.take().unwrap();
        assert_eq!(r[8], 0x77, "the tag");
        assert_eq!(c.read(IU, 1)[0], answer, "opcode {opcode:#x}");
    }
    // The short command: invalid opcode, nothing executed.
    assert_eq!(Rsp::of(c.read(IU, 256)), Rsp::check(5, 0x20));
    assert_eq!(c.v.counters.commands, 0);
}
