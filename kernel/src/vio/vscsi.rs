//! The virtual SCSI adapter (`v-scsi`, PAPR's client adapter, which
//! Linux's `ibmvscsi` drives) with its server in the hypervisor, as QEMU's
//! pseries serves it (hw/scsi/spapr_vscsi.c) where PowerVM has a Virtual
//! I/O Server partition. The guest sends each request with H_SEND_CRQ: a
//! 16-byte CRQ entry naming an information unit (IU) in its memory,
//! through the adapter's DMA window; the server handles it during the
//! call and answers in the IU's place, then queues a response entry
//! carrying the request's tag on the guest's CRQ ([`super::crq`]) and
//! pulses the adapter's interrupt if the guest enabled it.
//!
//! The protocol (include/scsi/viosrp.h, include/scsi/srp.h; Linux
//! drivers/scsi/ibmvscsi/ibmvscsi.c is the client):
//! - init: the client's `C0 01` is answered `C0 02` (init complete); the
//!   server never sends an init of its own (the client's handler would
//!   run before its event pool exists);
//! - management datagrams (MADs, format 2): ADAPTER_INFO answered as a
//!   Linux server (`os_type` 2, so no AIX-only MADs follow) with the
//!   transfer limit; every other MAD "not supported";
//! - SRP (format 1): LOGIN answered with [`REQ_LIMIT`] credits; each
//!   SRP_CMD answered by an SRP_RSP returning one credit, with the SCSI
//!   status, autosense (18 bytes: Linux copies `sense_data_len` bytes
//!   into its 96-byte buffer without a bound) and residuals; task
//!   management answered "complete" (every command is done before its
//!   H_SEND_CRQ returns, so nothing is left to abort); I_LOGOUT ends the
//!   login and needs no answer; any other IU is answered CHECK CONDITION,
//!   INVALID COMMAND OPERATION CODE, as QEMU does.
//!
//! Addressing: the disks are LUNs 0.. of target 0 on bus 0, in manifest
//! order (Linux names them `sda`, `sdb`, ... in that order). An SRP LUN
//! field is read in SAM's logical-unit addressing (what ibmvscsi sends:
//! `0x80 | target`, `bus << 5 | lun`) or peripheral addressing (bus 0);
//! any other target answers CHECK CONDITION, LOGICAL UNIT NOT SUPPORTED
//! at once, so Linux's scan of 4 buses x 64 targets costs one INQUIRY
//! each.
//!
//! Data moves only through the adapter's TCE table, each page checked for
//! the permission the direction needs. Malformed input is answered with
//! an error and changes nothing: an IU that cannot be read (length,
//! mapping) fails H_SEND_CRQ with H_PARAMETER (Linux fails the command at
//! once); a bad descriptor (format, both directions, a table that is
//! empty, too long, unreadable or whose lengths do not add up) is CHECK
//! CONDITION, INVALID FIELD IN CDB, with no data moved.

use super::crq::{self, Crq};
use super::tce::TceTable;
use super::{Effect, Irq, Quick, VioCall, VioDevice};
use crate::fdtw::FdtWriter;
use crate::gmem::GuestMemory;
use crate::papr::services::{Env, HError};
use crate::scsi::{self, Buffer, Completion, Disk, NoBuffer, Sense};
use alloc::string::String;
use alloc::vec::Vec;

/// The adapter's unit address (after the l-lan adapters' range).
pub const REG: u32 = 0x3000_0008;
/// Bytes of its DMA window: QEMU's 256 MiB.
pub const WINDOW: u64 = 256 << 20;
/// The most bytes one command moves (told to the client in ADAPTER_INFO,
/// which makes it Linux's `max_sectors`: 2,048 sectors).
pub const MAX_TRANSFER: u64 = 1 << 20;
/// Requests the client may have outstanding (the login's credit).
pub const REQ_LIMIT: u32 = 64;
/// The largest IU (`SRP_MAX_IU_LEN`; Linux's IUs are this size).
pub const MAX_IU: usize = 256;
/// Disks one adapter serves (Linux's REPORT LUNS answer holds them).
pub const MAX_DISKS: usize = 8;
/// Descriptors one indirect table may hold (Linux uses at most SG_ALL,
/// 128 in 6.1).
pub const MAX_DESCRIPTORS: usize = 256;

/// CRQ valid bytes.
const CRQ_CMD_RSP: u8 = 0x80;
const CRQ_INIT: u8 = 0xc0;
/// Formats of a `CRQ_CMD_RSP` entry.
const FORMAT_SRP: u8 = 0x01;
const FORMAT_MAD: u8 = 0x02;
/// Formats of a `CRQ_INIT` entry.
const INIT: u8 = 0x01;
const INIT_COMPLETE: u8 = 0x02;
/// CRQ statuses.
const CRQ_OK: u8 = 0x00;
const CRQ_ADAPTER_FAIL: u8 = 0x10;

/// SRP IU opcodes.
mod srp {
    pub const LOGIN_REQ: u8 = 0x00;
    pub const TSK_MGMT: u8 = 0x01;
    pub const CMD: u8 = 0x02;
    pub const I_LOGOUT: u8 = 0x03;
    pub const LOGIN_RSP: u8 = 0xc0;
    pub const RSP: u8 = 0xc1;
    pub const LOGIN_REJ: u8 = 0xc2;
    /// Buffer formats (login): direct and indirect descriptors.
    pub const BUF_FORMAT_DIRECT: u16 = 1 << 1;
    pub const BUF_FORMAT_INDIRECT: u16 = 1 << 2;
    /// Descriptor formats (SRP_CMD's buf_fmt nibbles).
    pub const NO_DATA: u8 = 0;
    pub const DIRECT: u8 = 1;
    pub const INDIRECT: u8 = 2;
    /// SRP_RSP flags.
    pub const RSPVALID: u8 = 1 << 0;
    pub const SNSVALID: u8 = 1 << 1;
    pub const DOOVER: u8 = 1 << 2;
    pub const DIOVER: u8 = 1 << 4;
    /// LOGIN_REJ reasons.
    pub const REJ_NO_REASON: u32 = 0x0001_0000;
    pub const REJ_UNSUPPORTED_DESCRIPTOR_FMT: u32 = 0x0001_0004;
    /// Bytes of the fixed parts.
    pub const LOGIN_REQ_LEN: usize = 64;
    pub const LOGIN_RSP_LEN: usize = 52;
    pub const LOGIN_REJ_LEN: usize = 32;
    pub const CMD_LEN: usize = 48;
    pub const TSK_MGMT_LEN: usize = 44;
    pub const RSP_LEN: usize = 36;
    /// A descriptor: va (8), key (4), len (4).
    pub const DESC_LEN: usize = 16;
    /// An indirect header: the table's descriptor and the total length.
    pub const INDIRECT_LEN: usize = 20;
}

/// MAD types and statuses.
mod mad {
    pub const ADAPTER_INFO: u32 = 0x03;
    pub const SUCCESS: u16 = 0x00;
    pub const NOT_SUPPORTED: u16 = 0xf1;
    pub const FAILED: u16 = 0xf7;
    /// The common header (type, status, length, tag) and the buffer.
    pub const HEADER_LEN: usize = 16;
    pub const WITH_BUFFER_LEN: usize = 24;
    /// `struct mad_adapter_info_data`.
    pub const ADAPTER_INFO_LEN: usize = 148;
    /// `os_type`: Linux.
    pub const OS_LINUX: u32 = 2;
}

/// What the adapter counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub commands: u64,
    /// IUs refused with H_PARAMETER (unreadable, bad length or header).
    pub bad_requests: u64,
    /// Responses that found no free slot (or an unmapped queue).
    pub lost_responses: u64,
    pub logins: u64,
}

/// The adapter.
pub struct Vscsi {
    tce: TceTable,
    crq: Option<Crq>,
    /// Its interrupt is enabled (H_VIO_SIGNAL).
    signal: bool,
    disks: Vec<Disk>,
    /// What ADAPTER_INFO tells of the partition.
    partition: String,
    partition_number: u32,
    /// An indirect table's descriptors, kept between commands (no
    /// allocation per command).
    segs: Vec<(u64, u64)>,
    pub counters: Counters,
}

/// Where an SRP LUN field points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Addr {
    /// A configured disk.
    Disk(usize),
    /// Target 0, a LUN with no disk.
    EmptyLun,
    /// Any other target.
    NoTarget,
}

impl Vscsi {
    /// An adapter at [`REG`] with DMA window `tce` (LIOBN [`REG`]:
    /// [`WINDOW`] bytes on a VM's bus) serving `disks` (at most
    /// [`MAX_DISKS`]) to partition `partition` (its name and number, for
    /// ADAPTER_INFO).
    pub fn new(tce: TceTable, disks: Vec<Disk>, partition: &str, partition_number: u32) -> Self {
        assert!(disks.len() <= MAX_DISKS, "{} disks", disks.len());
        Vscsi {
            tce,
            crq: None,
            signal: false,
            disks,
            partition: partition.into(),
            partition_number,
            segs: Vec::with_capacity(MAX_DESCRIPTORS),
            counters: Counters::default(),
        }
    }

    pub fn disks(&self) -> &[Disk] {
        &self.disks
    }

    /// H_SEND_CRQ(unit, hi, lo) from its registers: an edge to pulse if
    /// an answer was queued with the interrupt on.
    fn send_crq(&mut self, gpr: &[u64; 32], mem: &mut GuestMemory<'_>) -> Result<Effect, HError> {
        let raise = self.send(gpr[5], gpr[6], mem)?;
        Ok(if raise {
            Effect::Line(true)
        } else {
            Effect::None
        })
    }

    /// H_REG_CRQ(unit, ioba, bytes): H_RESOURCE if one is registered.
    pub fn register(&mut self, ioba: u64, bytes: u64) -> Result<(), HError> {
        if self.crq.is_some() {
            return Err(HError::Resource);
        }
        self.crq = Some(Crq::register(&self.tce, ioba, bytes)?);
        Ok(())
    }

    /// H_FREE_CRQ(unit): the queue forgotten (if there was one).
    pub fn free(&mut self) {
        self.crq = None;
    }

    /// H_VIO_SIGNAL(unit, mode): the interrupt on (1) or off (0).
    pub fn set_signal(&mut self, mode: u64) -> Result<(), HError> {
        if mode & !1 != 0 {
            return Err(HError::Parameter);
        }
        self.signal = mode & 1 != 0;
        Ok(())
    }

    /// H_SEND_CRQ(unit, hi, lo): the entry's bytes are `hi` then `lo`,
    /// big-endian. Whether an interrupt is due.
    pub fn send(&mut self, hi: u64, lo: u64, mem: &mut GuestMemory<'_>) -> Result<bool, HError> {
        if self.crq.is_none() {
            return Err(HError::Closed);
        }
        let mut e = [0u8; 16];
        e[..8].copy_from_slice(&hi.to_be_bytes());
        e[8..].copy_from_slice(&lo.to_be_bytes());
        let answer = match (e[0], e[1]) {
            (CRQ_INIT, INIT) => {
                let mut r = [0u8; 16];
                (r[0], r[1]) = (CRQ_INIT, INIT_COMPLETE);
                Some(r)
            }
            // The answer to an init of ours, which is never sent.
            (CRQ_INIT, INIT_COMPLETE) => None,
            (CRQ_CMD_RSP, FORMAT_SRP | FORMAT_MAD) => {
                let len = usize::from(u16::from_be_bytes([e[6], e[7]]));
                let ioba = lo;
                let mut iu = [0u8; MAX_IU];
                if !(mad::HEADER_LEN..=MAX_IU).contains(&len)
                    || !self.tce.read(ioba, &mut iu[..len], mem)
                {
                    self.counters.bad_requests += 1;
                    return Err(HError::Parameter);
                }
                let r = if e[1] == FORMAT_MAD {
                    Some(self.mad(&mut iu, len, mem))
                } else {
                    self.srp(&mut iu, len, mem)
                };
                r.map(|n| {
                    // The answer replaces the request in its buffer.
                    let status = if self.tce.write(ioba, &iu[..n], mem) {
                        CRQ_OK
                    } else {
                        CRQ_ADAPTER_FAIL
                    };
                    let mut r = [0u8; 16];
                    (r[0], r[1], r[3]) = (CRQ_CMD_RSP, e[1], status);
                    r[6..8].copy_from_slice(&(n as u16).to_be_bytes());
                    // The tag, verbatim: Linux reads it as its pointer.
                    r[8..].copy_from_slice(&iu[8..16]);
                    r
                })
            }
            _ => {
                self.counters.bad_requests += 1;
                return Err(HError::Parameter);
            }
        };
        let Some(r) = answer else {
            return Ok(false);
        };
        let q = self.crq.as_mut().ok_or(HError::Closed)?;
        match q.push(&self.tce, &r, mem) {
            Ok(()) => Ok(self.signal),
            Err(crq::PushError::Full | crq::PushError::Fault) => {
                self.counters.lost_responses += 1;
                Ok(false)
            }
        }
    }

    /// A MAD of `len` bytes in `iu` (zeros after them), answered in
    /// place: the answer's length.
    fn mad(&mut self, iu: &mut [u8; MAX_IU], len: usize, mem: &mut GuestMemory<'_>) -> usize {
        let kind = be32(&iu[0..4]);
        let length = usize::from(u16::from_be_bytes([iu[6], iu[7]]));
        let status = match kind {
            mad::ADAPTER_INFO if len < mad::WITH_BUFFER_LEN => mad::FAILED,
            mad::ADAPTER_INFO if length < mad::ADAPTER_INFO_LEN => mad::FAILED,
            mad::ADAPTER_INFO => {
                let mut buffer = [0u8; 8];
                buffer.copy_from_slice(&iu[16..24]);
                let buffer = u64::from_be_bytes(buffer);
                let info = self.adapter_info();
                if self.tce.write(buffer, &info, mem) {
                    mad::SUCCESS
                } else {
                    mad::FAILED
                }
            }
            _ => mad::NOT_SUPPORTED,
        };
        iu[4..6].copy_from_slice(&status.to_be_bytes());
        len
    }

    /// `struct mad_adapter_info_data` of this server.
    fn adapter_info(&self) -> [u8; mad::ADAPTER_INFO_LEN] {
        let mut d = [0u8; mad::ADAPTER_INFO_LEN];
        d[..4].copy_from_slice(b"16.a");
        let name = self.partition.as_bytes();
        let n = name.len().min(95);
        d[8..8 + n].copy_from_slice(&name[..n]);
        d[104..108].copy_from_slice(&self.partition_number.to_be_bytes());
        d[108..112].copy_from_slice(&1u32.to_be_bytes()); // MAD version
        d[112..116].copy_from_slice(&mad::OS_LINUX.to_be_bytes());
        d[116..120].copy_from_slice(&(MAX_TRANSFER as u32).to_be_bytes());
        d
    }

    /// An SRP IU of `len` bytes in `iu` (zeros after them), answered in
    /// place: the answer's length, or `None` when none is due (I_LOGOUT).
    /// An IU too short for its kind is answered as malformed.
    fn srp(
        &mut self,
        iu: &mut [u8; MAX_IU],
        len: usize,
        mem: &mut GuestMemory<'_>,
    ) -> Option<usize> {
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&iu[8..16]);
        match iu[0] {
            srp::LOGIN_REQ => Some(self.login(iu, len)),
            srp::I_LOGOUT => None,
            srp::TSK_MGMT => {
                let ok = len >= srp::TSK_MGMT_LEN;
                // Function complete, or (a short IU) not supported.
                let code = if ok { 0 } else { 4 };
                Some(rsp(iu, &tag, None, [0, 0, 0, code]))
            }
            srp::CMD if len >= srp::CMD_LEN => {
                self.counters.commands += 1;
                let (c, din, dout) = self.command(&iu[..len], mem);
                Some(rsp(iu, &tag, Some((c, din, dout)), [0; 4]))
            }
            _ => {
                let c = Completion::check(Sense::INVALID_OPCODE);
                Some(rsp(iu, &tag, Some((c, 0, 0)), [0; 4]))
            }
        }
    }

    /// SRP_LOGIN_REQ: the credit and the formats asked for, or a refusal.
    fn login(&mut self, iu: &mut [u8; MAX_IU], len: usize) -> usize {
        let fmts = srp::BUF_FORMAT_DIRECT | srp::BUF_FORMAT_INDIRECT;
        let (it_len, asked) = if len >= srp::LOGIN_REQ_LEN {
            (
                be32(&iu[16..20]),
                u16::from_be_bytes([iu[24], iu[25]]) & fmts,
            )
        } else {
            (0, 0)
        };
        let reject = if it_len < srp::CMD_LEN as u32 {
            Some(srp::REJ_NO_REASON)
        } else if asked == 0 {
            Some(srp::REJ_UNSUPPORTED_DESCRIPTOR_FMT)
        } else {
            None
        };
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&iu[8..16]);
        iu.fill(0);
        iu[8..16].copy_from_slice(&tag);
        if let Some(reason) = reject {
            iu[0] = srp::LOGIN_REJ;
            iu[4..8].copy_from_slice(&reason.to_be_bytes());
            iu[24..26].copy_from_slice(&fmts.to_be_bytes());
            return srp::LOGIN_REJ_LEN;
        }
        self.counters.logins += 1;
        iu[0] = srp::LOGIN_RSP;
        iu[4..8].copy_from_slice(&REQ_LIMIT.to_be_bytes());
        let max = it_len.min(MAX_IU as u32);
        iu[16..20].copy_from_slice(&max.to_be_bytes());
        iu[20..24].copy_from_slice(&(MAX_IU as u32).to_be_bytes());
        iu[24..26].copy_from_slice(&asked.to_be_bytes());
        srp::LOGIN_RSP_LEN
    }

    /// SRP_CMD: its completion and the sizes of its data-in and data-out
    /// buffers.
    fn command(&mut self, iu: &[u8], mem: &mut GuestMemory<'_>) -> (Completion, u64, u64) {
        let fmt = iu[5];
        let (out_fmt, in_fmt) = (fmt >> 4, fmt & 0xf);
        let mut cdb = [0u8; 16];
        cdb.copy_from_slice(&iu[32..48]);
        // Additional CDB bytes (none of the commands served has any) come
        // before the descriptors.
        let desc_at = srp::CMD_LEN + usize::from(iu[31] & !3);
        let (write, desc_fmt) = match (out_fmt, in_fmt) {
            (srp::NO_DATA, f) => (false, f),
            (f, srp::NO_DATA) => (true, f),
            _ => return (Completion::check(Sense::INVALID_FIELD), 0, 0),
        };
        let total = match self.descriptors(desc_fmt, &iu[desc_at.min(iu.len())..], mem) {
            Some(t) => t,
            None => return (Completion::check(Sense::INVALID_FIELD), 0, 0),
        };
        let addr = self.address(iu[20..28].try_into().unwrap_or([0xff; 8]));
        let mut buf = Segments {
            tce: &self.tce,
            segs: &self.segs,
            len: total,
            mem,
        };
        let mut none = NoBuffer;
        let (din, dout): (&mut dyn Buffer, &mut dyn Buffer) = if write {
            (&mut none, &mut buf)
        } else {
            (&mut buf, &mut none)
        };
        let c = match (addr, cdb[0]) {
            (Addr::NoTarget, _) => Completion::check(Sense::LUN_NOT_SUPPORTED),
            (_, scsi::op::REPORT_LUNS) => {
                let mut a = [0u8; 96];
                let n = scsi::report_luns(self.disks.len() as u8, &mut a);
                let alloc = u64::from(be32(&cdb[6..10]));
                scsi::reply(din, &a[..n], alloc)
            }
            (Addr::EmptyLun, scsi::op::INQUIRY) if cdb[1] & 1 == 0 => {
                // Peripheral qualifier 3: no device at this LUN.
                let mut a = [0u8; 36];
                (a[0], a[2], a[3], a[4]) = (0x7f, 5, 0x02, 31);
                let alloc = u64::from(u16::from_be_bytes([cdb[3], cdb[4]]));
                scsi::reply(din, &a, alloc)
            }
            (Addr::EmptyLun, _) => Completion::check(Sense::LUN_NOT_SUPPORTED),
            (Addr::Disk(i), _) => self.disks[i].execute(&cdb, din, dout),
        };
        if write {
            (c, 0, total)
        } else {
            (c, total, 0)
        }
    }

    /// Reads the descriptors in `d` (format `fmt`) into `self.segs`: the
    /// buffer's total bytes, or `None` if they are malformed.
    fn descriptors(&mut self, fmt: u8, d: &[u8], mem: &GuestMemory<'_>) -> Option<u64> {
        self.segs.clear();
        let desc = |b: &[u8]| -> (u64, u64) {
            let va = u64::from_be_bytes(b[..8].try_into().unwrap_or([0; 8]));
            (va, u64::from(be32(&b[12..16])))
        };
        match fmt {
            srp::NO_DATA => Some(0),
            srp::DIRECT if d.len() >= srp::DESC_LEN => {
                let s = desc(d);
                self.segs.push(s);
                Some(s.1)
            }
            srp::INDIRECT if d.len() >= srp::INDIRECT_LEN => {
                // Linux points the table at its inline copy when it fits
                // there: the table is always where its descriptor says.
                let (table, bytes) = desc(d);
                let total = u64::from(be32(&d[16..20]));
                let n = bytes as usize / srp::DESC_LEN;
                if bytes % srp::DESC_LEN as u64 != 0 || n == 0 || n > MAX_DESCRIPTORS {
                    return None;
                }
                let mut raw = [0u8; srp::DESC_LEN];
                let mut sum = 0u64;
                for k in 0..n {
                    let at = table.checked_add((k * srp::DESC_LEN) as u64)?;
                    if !self.tce.read(at, &mut raw, mem) {
                        return None;
                    }
                    let s = desc(&raw);
                    sum += s.1;
                    self.segs.push(s);
                }
                (sum == total).then_some(total)
            }
            _ => None,
        }
    }

    /// Where `lun` points.
    fn address(&self, lun: [u8; 8]) -> Addr {
        if lun[2..].iter().any(|b| *b != 0) {
            return Addr::NoTarget;
        }
        let (target, bus, l) = match lun[0] >> 6 {
            0 => (0, lun[0] & 0x3f, lun[1]),
            2 => (lun[0] & 0x3f, lun[1] >> 5, lun[1] & 0x1f),
            _ => return Addr::NoTarget,
        };
        match (target, bus, usize::from(l)) {
            (0, 0, l) if l < self.disks.len() => Addr::Disk(l),
            (0, 0, _) => Addr::EmptyLun,
            _ => Addr::NoTarget,
        }
    }
}

/// An SRP_RSP into `iu` for `tag`: with a command's completion and buffer
/// sizes, or with response data `code` (task management). Its length.
fn rsp(
    iu: &mut [u8; MAX_IU],
    tag: &[u8; 8],
    c: Option<(Completion, u64, u64)>,
    code: [u8; 4],
) -> usize {
    let mut r = [0u8; srp::RSP_LEN + Sense::LEN];
    r[0] = srp::RSP;
    // Every answer returns the credit its request took.
    r[4..8].copy_from_slice(&1u32.to_be_bytes());
    r[8..16].copy_from_slice(tag);
    let len = match c {
        None => {
            r[18] = srp::RSPVALID;
            r[32..36].copy_from_slice(&4u32.to_be_bytes());
            r[36..40].copy_from_slice(&code);
            srp::RSP_LEN + 4
        }
        Some((c, din, dout)) => {
            r[19] = c.status;
            // What a buffer held beyond the data moved. Linux reads a
            // residual only with an ...OVER flag, so it is reported so,
            // as QEMU does (SRP would say ...UNDER).
            if din > c.data_in {
                r[18] |= srp::DIOVER;
                r[24..28].copy_from_slice(&((din - c.data_in) as u32).to_be_bytes());
            }
            if dout > c.data_out {
                r[18] |= srp::DOOVER;
                r[20..24].copy_from_slice(&((dout - c.data_out) as u32).to_be_bytes());
            }
            match c.sense {
                Some(s) => {
                    r[18] |= srp::SNSVALID;
                    r[28..32].copy_from_slice(&(Sense::LEN as u32).to_be_bytes());
                    r[36..].copy_from_slice(&s.bytes());
                    srp::RSP_LEN + Sense::LEN
                }
                None => srp::RSP_LEN,
            }
        }
    };
    iu[..len].copy_from_slice(&r[..len]);
    len
}

/// A command's buffer: its descriptors' runs of I/O bus addresses in the
/// adapter's window, one after another.
struct Segments<'a, 'm> {
    tce: &'a TceTable,
    segs: &'a [(u64, u64)],
    len: u64,
    mem: &'a mut GuestMemory<'m>,
}

impl Segments<'_, '_> {
    /// Calls `f(ioba, range in the caller's bytes)` for each run of
    /// `at..at+n` (which lies in the buffer); false if `f` failed.
    fn each(
        &mut self,
        at: u64,
        n: usize,
        mut f: impl FnMut(&mut Self, u64, core::ops::Range<usize>) -> bool,
    ) -> bool {
        if at.checked_add(n as u64).is_none_or(|end| end > self.len) {
            return false;
        }
        let (mut start, mut done) = (0u64, 0usize);
        for k in 0..self.segs.len() {
            let (va, len) = self.segs[k];
            if done == n {
                break;
            }
            let end = start + len;
            let here = at + done as u64;
            if here < end {
                let off = here - start;
                let m = ((len - off) as usize).min(n - done);
                let Some(ioba) = va.checked_add(off) else {
                    return false;
                };
                if !f(self, ioba, done..done + m) {
                    return false;
                }
                done += m;
            }
            start = end;
        }
        done == n
    }
}

impl Buffer for Segments<'_, '_> {
    fn bytes(&self) -> u64 {
        self.len
    }

    fn put(&mut self, at: u64, data: &[u8]) -> bool {
        self.each(at, data.len(), |s, ioba, r| {
            s.tce.write(ioba, &data[r], s.mem)
        })
    }

    fn get(&mut self, at: u64, into: &mut [u8]) -> bool {
        self.each(at, into.len(), |s, ioba, r| {
            s.tce.read(ioba, &mut into[r], s.mem)
        })
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl VioDevice for Vscsi {
    fn unit(&self) -> u32 {
        REG
    }

    fn node_name(&self) -> &'static str {
        "v-scsi"
    }

    fn kind(&self) -> (&'static str, &'static str) {
        ("vscsi", "IBM,v-scsi")
    }

    /// As QEMU's pseries writes it (for firmware's disk children; Linux
    /// does not read them).
    fn node(&self, w: &mut FdtWriter) {
        w.prop_u32("#address-cells", 2);
        w.prop_u32("#size-cells", 0);
    }

    fn irq(&self) -> Option<Irq> {
        Some(Irq::Edge)
    }

    fn dma_window(&self) -> Option<u64> {
        Some(self.tce.window())
    }

    fn tce(&mut self) -> Option<&mut TceTable> {
        Some(&mut self.tce)
    }

    /// The queue gone, every DMA mapping gone; the disks keep their bytes
    /// (a reboot finds what was written), a cached disk's written back.
    fn reset(&mut self) {
        for d in &mut self.disks {
            d.flush();
        }
        self.crq = None;
        self.signal = false;
        self.tce.clear();
    }

    fn report(&self) -> Option<String> {
        let c = &self.counters;
        let mut s = alloc::format!(
            "logins={} commands={} bad-requests={} lost-responses={}",
            c.logins,
            c.commands,
            c.bad_requests,
            c.lost_responses
        );
        for (i, d) in self.disks.iter().enumerate() {
            let k = &d.counters;
            s += &alloc::format!(
                "; lun {i}: {} KiB {} reads={} ({} bytes) writes={} ({} bytes) flushes={} errors={}",
                d.bytes() >> 10,
                if d.writable() { "rw" } else { "ro" },
                k.reads,
                k.read_bytes,
                k.writes,
                k.write_bytes,
                k.flushes,
                k.errors
            );
        }
        Some(s)
    }

    /// H_SEND_CRQ, on the fast path: one request answered (data moved,
    /// its answer queued) with no lock but the adapter's; its interrupt
    /// pulsed once that is released.
    fn quick(
        &mut self,
        call: VioCall,
        gpr: &mut [u64; 32],
        mem: &mut GuestMemory<'_>,
        _frame: &mut super::lan::Frame,
    ) -> Option<Result<Quick, HError>> {
        if call != VioCall::SendCrq {
            return None;
        }
        Some(match self.send(gpr[5], gpr[6], mem) {
            Ok(true) => Ok(Quick::Line(true)),
            Ok(false) => Ok(Quick::Done),
            Err(e) => Err(e),
        })
    }

    fn hcall(
        &mut self,
        call: VioCall,
        gpr: &mut [u64; 32],
        env: &mut dyn Env,
    ) -> Result<Effect, HError> {
        match call {
            VioCall::RegCrq => {
                self.register(gpr[5], gpr[6])?;
                Ok(Effect::None)
            }
            VioCall::FreeCrq => {
                self.free();
                Ok(Effect::None)
            }
            // Nothing to re-enable: the queue is not torn down by a
            // migration here.
            VioCall::EnableCrq => Ok(Effect::None),
            VioCall::SendCrq => self.send_crq(gpr, &mut env.mem()),
            VioCall::Signal => {
                self.set_signal(gpr[5])?;
                Ok(Effect::None)
            }
            _ => Err(HError::Parameter),
        }
    }
}

#[cfg(test)]
mod tests;
