//! The Interpartition Logical LAN adapter (`l-lan`, Linux's `ibmveth`):
//! one port of a virtual Ethernet switch, as PAPR defines it and QEMU's
//! pseries implements it (hw/net/spapr_llan.c). This is the port's state
//! machine; every access to guest memory goes through the port's own TCE
//! window ([`TceTable`]) with the permission it needs.
//!
//! The guest registers a buffer-list page (the hypervisor keeps the
//! count of frames it dropped for want of a buffer at +4088), a receive
//! queue (16-byte entries; each carries a toggle bit that flips every
//! time the queue wraps, starting at 1) and a filter page; it adds
//! receive buffers one descriptor at a time, kept here in up to five
//! pools by size (Linux adds about a thousand, more than the buffer-list
//! page holds). A frame received goes into the smallest buffer that holds
//! it after the 8-byte correlator Linux writes at each buffer's start;
//! its queue entry is written with its first byte last. A frame sent is
//! resolved from up to six descriptors into pieces of the sender's memory
//! ([`Frame`]) and copied from there into each receiver's buffer before
//! the call returns (Linux reuses its buffer at once).
//!
//! Buffer descriptors (`union ibmveth_buf_desc`, a big-endian u64 in a
//! register or in memory): bit 63 valid, 62 toggle, 55..32 length, 31..0
//! IOBA.

use super::lan::Frame;
use super::tce::{TceTable, TCE_READ};
use super::{Effect, Irq, Quick, VioCall, VioDevice};
use crate::fdtw::FdtWriter;
use crate::gmem::GuestMemory;
use crate::papr::services::{Env, HError};
use alloc::vec::Vec;

/// Unit address (`reg`, and the LIOBN of its window) of a VM's first
/// l-lan adapter; the next ones follow it.
pub const REG: u32 = 0x3000_0002;
/// Bytes of an adapter's DMA window: QEMU's 256 MiB (ibmveth maps some
/// 32 MiB of buffers; the table is 512 KiB of hypervisor memory).
pub const WINDOW: u64 = 256 << 20;

/// Descriptor: valid.
pub const BD_VALID: u64 = 1 << 63;
/// Descriptor: the receive queue's toggle (only in the queue's own).
pub const BD_TOGGLE: u64 = 1 << 62;
/// Receive-queue entry flags (the first big-endian word).
pub const RXQ_TOGGLE: u32 = 0x8000_0000;
pub const RXQ_VALID: u32 = 0x4000_0000;
/// Where in a receive buffer the frame starts: after Linux's correlator.
pub const RX_OFFSET: u64 = 8;
/// Bytes of one receive-queue entry.
pub const RXQ_ENTRY: u64 = 16;
/// Offset in the buffer-list page of the dropped-frame count.
pub const DROPPED_AT: u64 = 4088;
/// The largest frame one H_SEND_LOGICAL_LAN carries.
pub const MAX_FRAME: u64 = 64 * 1024;
/// Receive pools (distinct buffer sizes) and buffers in each, as QEMU's.
pub const MAX_POOLS: usize = 5;
pub const MAX_POOL_BUFFERS: usize = 4096;
/// Descriptors one H_SEND_LOGICAL_LAN names (r5-r10).
pub const SEND_BDS: usize = 6;

/// A descriptor's length.
pub fn bd_len(bd: u64) -> u64 {
    (bd >> 32) & 0xff_ffff
}

/// A descriptor's IOBA.
pub fn bd_ioba(bd: u64) -> u64 {
    bd & 0xffff_ffff
}

/// Whether `bd` is valid, its address and length multiples of `align`,
/// and its bytes inside `window`.
fn bd_ok(bd: u64, align: u64, window: u64) -> bool {
    let (ioba, len) = (bd_ioba(bd), bd_len(bd));
    bd & BD_VALID != 0
        && ioba.is_multiple_of(align)
        && len.is_multiple_of(align)
        && ioba + len <= window
}

/// What the port counted, for the VM's stop report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Frames that found no receive buffer (or a closed port).
    pub rx_dropped: u64,
}

/// How a frame offered to the port went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// In a buffer, its queue entry written; `signal`: the guest asked
    /// for an interrupt (H_VIO_SIGNAL) and should get one.
    Queued { signal: bool },
    /// Dropped and counted.
    Dropped,
}

/// The receive queue: where the next entry goes and its toggle.
#[derive(Clone, Copy, Debug)]
struct RxQueue {
    ioba: u64,
    entries: u64,
    next: u64,
    toggle: bool,
}

/// An open port (after H_REGISTER_LOGICAL_LAN).
#[derive(Clone, Debug)]
struct Open {
    buf_list: u64,
    rxq: RxQueue,
    /// Receive buffers by size, smallest first: (size, descriptors).
    pools: Vec<(u64, Vec<u64>)>,
    /// H_VIO_SIGNAL mode bit 0: interrupt on a received frame.
    signal: bool,
}

/// One l-lan port.
pub struct Llan {
    unit: u32,
    tce: TceTable,
    /// Its MAC (the device tree's, or what the guest set since).
    mac: [u8; 6],
    open: Option<Open>,
    pub counters: Counters,
}

impl Llan {
    /// The adapter at `unit`, whose window is `tce` (its LIOBN `unit`).
    pub fn new(unit: u32, tce: TceTable, mac: [u8; 6]) -> Self {
        Llan {
            unit,
            tce,
            mac,
            open: None,
            counters: Counters::default(),
        }
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// H_REGISTER_LOGICAL_LAN(buffer list, receive queue descriptor,
    /// filter list, MAC): both pages 4 KiB-aligned in the window, the
    /// queue valid, 16-byte aligned and sized, in the window and
    /// writable (it is zeroed here, as is the dropped count). A port
    /// already open is H_RESOURCE (Linux frees it and retries).
    pub fn register(
        &mut self,
        buf_list: u64,
        rxq: u64,
        filter: u64,
        mac: u64,
        mem: &mut GuestMemory<'_>,
    ) -> Result<(), HError> {
        if self.open.is_some() {
            return Err(HError::Resource);
        }
        let window = self.tce.window();
        let page_ok =
            |a: u64| a.is_multiple_of(4096) && a.checked_add(4096).is_some_and(|e| e <= window);
        if !page_ok(buf_list) || !page_ok(filter) || !bd_ok(rxq, RXQ_ENTRY, window) {
            return Err(HError::Parameter);
        }
        let (q, qlen) = (bd_ioba(rxq), bd_len(rxq));
        if qlen == 0 {
            return Err(HError::Parameter);
        }
        let zeros = alloc::vec![0u8; qlen as usize];
        if !self.tce.write(q, &zeros, mem) || !self.tce.write(buf_list + DROPPED_AT, &[0; 8], mem) {
            return Err(HError::Parameter);
        }
        self.mac.copy_from_slice(&mac.to_be_bytes()[2..]);
        self.open = Some(Open {
            buf_list,
            rxq: RxQueue {
                ioba: q,
                entries: qlen / RXQ_ENTRY,
                next: 0,
                toggle: true,
            },
            pools: Vec::new(),
            signal: false,
        });
        Ok(())
    }

    /// H_FREE_LOGICAL_LAN: closed, its buffers forgotten.
    pub fn free(&mut self) -> Result<(), HError> {
        self.open.take().map(|_| ()).ok_or(HError::Resource)
    }

    /// H_ADD_LOGICAL_LAN_BUFFER(descriptor): valid, 4-byte aligned, at
    /// least 16 bytes, in the window; kept in the pool of its size. A
    /// closed port, a sixth size or a full pool is H_RESOURCE.
    pub fn add_buffer(&mut self, bd: u64) -> Result<(), HError> {
        let window = self.tce.window();
        let open = self.open.as_mut().ok_or(HError::Resource)?;
        if !bd_ok(bd, 4, window) || bd_len(bd) < 16 {
            return Err(HError::Parameter);
        }
        let size = bd_len(bd);
        let i = match open.pools.iter().position(|p| p.0 == size) {
            Some(i) => i,
            None if open.pools.len() < MAX_POOLS => {
                let at = open.pools.partition_point(|p| p.0 < size);
                open.pools.insert(at, (size, Vec::new()));
                at
            }
            None => return Err(HError::Resource),
        };
        let pool = &mut open.pools[i].1;
        if pool.len() >= MAX_POOL_BUFFERS {
            return Err(HError::Resource);
        }
        pool.push(bd);
        Ok(())
    }

    /// H_VIO_SIGNAL(mode): bit 0 turns the receive interrupt on; any other
    /// bit is H_PARAMETER. A closed port keeps nothing (as QEMU, which
    /// resets it at registration).
    pub fn signal(&mut self, mode: u64) -> Result<(), HError> {
        if mode & !1 != 0 {
            return Err(HError::Parameter);
        }
        if let Some(o) = self.open.as_mut() {
            o.signal = mode & 1 != 0;
        }
        Ok(())
    }

    /// H_CHANGE_LOGICAL_LAN_MAC(mac).
    pub fn change_mac(&mut self, mac: u64) {
        self.mac.copy_from_slice(&mac.to_be_bytes()[2..]);
    }

    /// H_SEND_LOGICAL_LAN's frame: the valid descriptors up to the first
    /// invalid one, resolved through the window (each page readable and
    /// in guest memory), at most [`MAX_FRAME`] bytes, its destination
    /// MAC read. A closed port is H_DROPPED's case (`Ok(None)`).
    pub fn gather(
        &mut self,
        bds: &[u64; SEND_BDS],
        mem: &GuestMemory<'_>,
    ) -> Result<Option<Frame>, HError> {
        let mut frame = Frame::default();
        Ok(self.gather_into(bds, mem, &mut frame)?.then_some(frame))
    }

    /// [`Llan::gather`] into `frame`: false for a closed port.
    pub fn gather_into(
        &mut self,
        bds: &[u64; SEND_BDS],
        mem: &GuestMemory<'_>,
        frame: &mut Frame,
    ) -> Result<bool, HError> {
        if self.open.is_none() {
            return Ok(false);
        }
        let valid = bds.iter().take_while(|&&bd| bd & BD_VALID != 0);
        let total: u64 = valid.clone().map(|&bd| bd_len(bd)).sum();
        if total > MAX_FRAME {
            return Err(HError::Resource);
        }
        frame.clear();
        for &bd in valid {
            let pieces = self
                .tce
                .pieces(bd_ioba(bd), bd_len(bd), TCE_READ)
                .ok_or(HError::Parameter)?;
            for (gpa, n) in pieces {
                if !mem.contains(gpa, n) || !frame.push(gpa, n) {
                    return Err(HError::Parameter);
                }
            }
        }
        frame.read_dest(mem);
        self.counters.tx_frames += 1;
        self.counters.tx_bytes += total;
        Ok(true)
    }

    /// H_SEND_LOGICAL_LAN(unit, BD1..BD6, continuation token): no
    /// continuation here, as on QEMU's pseries. The frame goes to the
    /// switch once this port's lock is released; one the switch cannot
    /// place is still a success for the sender (as on an Ethernet).
    pub fn send(
        &mut self,
        gpr: &mut [u64; 32],
        mem: &GuestMemory<'_>,
        frame: &mut Frame,
    ) -> Result<(), HError> {
        if gpr[11] != 0 {
            return Err(HError::Hardware);
        }
        let bds: [u64; SEND_BDS] = core::array::from_fn(|i| gpr[5 + i]);
        if !self.gather_into(&bds, mem, frame)? {
            return Err(HError::Dropped);
        }
        gpr[4] = 0;
        Ok(())
    }

    /// A frame from the switch, its bytes in `src` (the sender's memory):
    /// into the smallest buffer that holds it after the correlator, then
    /// its queue entry (first byte last), the queue advanced (toggle
    /// flipped on a wrap). No buffer, a closed port, or guest memory the
    /// window no longer lets it write: dropped and counted (in the
    /// buffer-list page too when open).
    pub fn receive(
        &mut self,
        frame: &Frame,
        src: &GuestMemory<'_>,
        mem: &mut GuestMemory<'_>,
    ) -> Received {
        let len = frame.len;
        let Some(open) = self.open.as_mut() else {
            self.counters.rx_dropped += 1;
            return Received::Dropped;
        };
        let pool = open
            .pools
            .iter_mut()
            .find(|p| p.0 >= len + RX_OFFSET && !p.1.is_empty());
        let queued = pool.and_then(|p| p.1.pop()).and_then(|bd| {
            let buf = bd_ioba(bd);
            let mut correlator = [0u8; 8];
            let q = &mut open.rxq;
            let slot = q.ioba + q.next * RXQ_ENTRY;
            let mut flags = RXQ_VALID | RX_OFFSET as u32;
            if q.toggle {
                flags |= RXQ_TOGGLE;
            }
            let mut entry = [0u8; RXQ_ENTRY as usize];
            entry[..4].copy_from_slice(&flags.to_be_bytes());
            entry[4..8].copy_from_slice(&(len as u32).to_be_bytes());
            let ok = self.tce.read(buf, &mut correlator, mem)
                && self
                    .tce
                    .write_from(buf + RX_OFFSET, frame.pieces(), src, mem)
                && {
                    entry[8..].copy_from_slice(&correlator);
                    self.tce.write(slot + 1, &entry[1..], mem)
                };
            if !ok {
                return None;
            }
            // The entry is whole before the guest can see it valid.
            core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
            self.tce.write(slot, &entry[..1], mem).then_some(())?;
            q.next += 1;
            if q.next == q.entries {
                q.next = 0;
                q.toggle = !q.toggle;
            }
            Some(())
        });
        match queued {
            Some(()) => {
                self.counters.rx_frames += 1;
                self.counters.rx_bytes += len;
                Received::Queued {
                    signal: open.signal,
                }
            }
            None => {
                self.counters.rx_dropped += 1;
                let at = open.buf_list + DROPPED_AT;
                let mut n = [0u8; 8];
                if self.tce.read(at, &mut n, mem) {
                    let n = u64::from_be_bytes(n).wrapping_add(1);
                    self.tce.write(at, &n.to_be_bytes(), mem);
                }
                Received::Dropped
            }
        }
    }
}

impl VioDevice for Llan {
    fn unit(&self) -> u32 {
        self.unit
    }

    fn node_name(&self) -> &'static str {
        "l-lan"
    }

    fn kind(&self) -> (&'static str, &'static str) {
        ("network", "IBM,l-lan")
    }

    /// What ibmveth's probe reads: its MAC, and no multicast filter.
    fn node(&self, w: &mut FdtWriter) {
        w.prop("local-mac-address", &self.mac);
        w.prop_u32("ibm,mac-address-filters", 0);
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

    /// Closed, every DMA mapping gone, the counters kept.
    fn reset(&mut self) {
        self.open = None;
        self.tce.clear();
    }

    fn report(&self) -> Option<alloc::string::String> {
        let c = &self.counters;
        Some(alloc::format!(
            "mac {} tx={} frames ({} bytes) rx={} frames ({} bytes) rx-dropped={}",
            self.mac
                .iter()
                .map(|b| alloc::format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
            c.tx_frames,
            c.tx_bytes,
            c.rx_frames,
            c.rx_bytes,
            c.rx_dropped
        ))
    }

    /// Frames for its MAC, and every frame when `all` (broadcast and
    /// multicast: no filter is kept, as `ibm,mac-address-filters` is 0).
    /// A port the guest has not opened still answers for its MAC (and
    /// drops and counts the frame).
    fn offer(
        &mut self,
        frame: &Frame,
        src: &GuestMemory<'_>,
        all: bool,
        mem: &mut GuestMemory<'_>,
    ) -> Option<Received> {
        if !all && frame.dest != self.mac {
            return None;
        }
        Some(self.receive(frame, src, mem))
    }

    /// The per-frame calls, on the fast path: H_ADD_LOGICAL_LAN_BUFFER
    /// (one per frame received) and H_SEND_LOGICAL_LAN.
    fn quick(
        &mut self,
        call: VioCall,
        gpr: &mut [u64; 32],
        mem: &mut GuestMemory<'_>,
        frame: &mut Frame,
    ) -> Option<Result<Quick, HError>> {
        match call {
            VioCall::AddLogicalLanBuffer => Some(self.add_buffer(gpr[5]).map(|()| Quick::Done)),
            VioCall::SendLogicalLan => Some(self.send(gpr, mem, frame).map(|()| Quick::Sent)),
            _ => None,
        }
    }

    fn hcall(
        &mut self,
        call: VioCall,
        gpr: &mut [u64; 32],
        env: &mut dyn Env,
    ) -> Result<Effect, HError> {
        Ok(match call {
            VioCall::RegisterLogicalLan => {
                self.register(gpr[5], gpr[6], gpr[7], gpr[8], &mut env.mem())?;
                Effect::None
            }
            VioCall::FreeLogicalLan => {
                self.free()?;
                Effect::None
            }
            VioCall::AddLogicalLanBuffer => {
                self.add_buffer(gpr[5])?;
                Effect::None
            }
            VioCall::SendLogicalLan => {
                let mut frame = Frame::default();
                self.send(gpr, &env.mem(), &mut frame)?;
                Effect::Send(frame)
            }
            // Every multicast frame reaches every port: no filter to set.
            VioCall::MulticastCtrl => Effect::None,
            VioCall::ChangeLogicalLanMac => {
                self.change_mac(gpr[5]);
                Effect::None
            }
            VioCall::Signal => {
                self.signal(gpr[5])?;
                Effect::None
            }
            VioCall::PutTermChar
            | VioCall::GetTermChar
            | VioCall::RegCrq
            | VioCall::FreeCrq
            | VioCall::SendCrq
            | VioCall::EnableCrq => return Err(HError::Parameter),
        })
    }
}

#[cfg(test)]
mod tests;
