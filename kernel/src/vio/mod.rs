//! A partition's virtual I/O bus (PAPR VIO, what Linux's pseries `vio`
//! bus scans under `/vdevice`): its devices, fixed when the VM is made,
//! each with a unit address (`reg`, the first argument of every hypercall
//! addressed to it), a device-tree node and, if it interrupts, one XICS
//! source. The bus is where the guest's view of the devices is derived
//! from: the `/vdevice` children ([`VioBus::write_nodes`]), the XICS
//! sources ([`VioBus::sources`]), the routing of a device hypercall by
//! unit address ([`VioBus::route`]).
//!
//! A device is the guest-facing part (its node, its hypercalls and their
//! argument checks); what backs it on the machine (the serial console
//! behind the vty) is reached through [`crate::papr::services::Env`], as
//! QEMU's pseries devices reach their chardev or network backends.
//!
//! Locking: the bus lives in what a VM's threads share without the VM's
//! lock, each device under a lock of its own, so a device can later be
//! reached without the VM's lock (a frame delivered into another VM's
//! network device). The order is the VM's lock, then one device's lock;
//! a device's lock is never held while a VM's lock or another device's
//! lock is taken (a frame sent is switched after its sender's lock is
//! released: [`Effect::Send`]).

pub mod crq;
pub mod lan;
pub mod llan;
pub mod nvram;
pub mod tce;
pub mod vscsi;
pub mod vty;

use crate::fdtw::FdtWriter;
use crate::gmem::GuestMemory;
use crate::papr::services::{Env, HError};
use crate::papr::table::TceCall;
use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;

/// A device's interrupt source, as the XICS sees it. The device tree's
/// sense cell is 0 for every device, as QEMU's pseries writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Irq {
    /// Asserted while a condition holds (the vty: input waits).
    Level,
    /// Pulsed per event (the network and disk devices to come, as on
    /// QEMU's pseries).
    Edge,
}

/// The hypercalls addressed to a device by unit address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VioCall {
    PutTermChar,
    GetTermChar,
    /// H_VIO_SIGNAL(unit, mode): the device's interrupt on (bit 0) or off.
    Signal,
    RegisterLogicalLan,
    FreeLogicalLan,
    AddLogicalLanBuffer,
    SendLogicalLan,
    MulticastCtrl,
    ChangeLogicalLanMac,
    RegCrq,
    FreeCrq,
    SendCrq,
    EnableCrq,
}

/// What a device's hypercall leaves for the bus's owner to do once the
/// device's lock is released.
// A frame's pieces (512 bytes) are moved once per H_SEND_LOGICAL_LAN;
// boxing them would allocate once per frame instead.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    None,
    /// Its interrupt line is at this level now.
    Line(bool),
    /// A frame it sent, for its virtual LAN's switch ([`lan::switch`]),
    /// which takes other devices' locks: never under this one's.
    Send(lan::Frame),
}

/// What a fast-path device call ([`VioDevice::quick`]) leaves to do once
/// the device's lock is released: [`Effect`] without its frame, which
/// stays in the caller's slot (moving 500 bytes through the return
/// values costs the frame's sender ~7 %).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quick {
    Done,
    /// Its interrupt line is at this level now.
    Line(bool),
    /// It sent the frame now in the caller's slot, for the switch.
    Sent,
}

/// One virtual device.
pub trait VioDevice: Send {
    /// `reg`: its unit address.
    fn unit(&self) -> u32;
    /// Another unit address a hypercall may name it by (the vty: 0, "the
    /// first vty").
    fn alias(&self) -> Option<u64> {
        None
    }
    /// Its node's name before the `@` (`vty`, `l-lan`, ...).
    fn node_name(&self) -> &'static str;
    /// Its node's `device_type` and `compatible`.
    fn kind(&self) -> (&'static str, &'static str);
    /// Its node's further properties (after `device_type`, `compatible`,
    /// `reg` and `interrupts`, which the bus writes).
    fn node(&self, _w: &mut FdtWriter) {}
    /// Its interrupt source, if it has one.
    fn irq(&self) -> Option<Irq>;
    /// Bytes of its DMA window, if it has one (its LIOBN is its unit
    /// address, as on QEMU's pseries).
    fn dma_window(&self) -> Option<u64> {
        None
    }
    /// Its DMA window's TCE table, if it has one.
    fn tce(&mut self) -> Option<&mut tce::TceTable> {
        None
    }
    /// Back to its power-on state (`system-reboot`).
    fn reset(&mut self) {}
    /// What it counted, for the VM's stop report (one line), if anything.
    fn report(&self) -> Option<alloc::string::String> {
        None
    }
    /// A frame from its virtual LAN's switch, its bytes in `src` (the
    /// sender's RAM), written into `mem` (its VM's RAM) through its
    /// window: `None` if it is not a network port or the frame is not for
    /// it (unicast to another MAC, unless `all`).
    fn offer(
        &mut self,
        _frame: &lan::Frame,
        _src: &GuestMemory<'_>,
        _all: bool,
        _mem: &mut GuestMemory<'_>,
    ) -> Option<llan::Received> {
        None
    }
    /// A hypercall it answers from its own state and `mem` alone (no
    /// console), for the fast path: `None` for the others. A frame it
    /// sends is written to `frame`.
    fn quick(
        &mut self,
        _call: VioCall,
        _gpr: &mut [u64; 32],
        _mem: &mut GuestMemory<'_>,
        _frame: &mut lan::Frame,
    ) -> Option<Result<Quick, HError>> {
        None
    }
    /// A hypercall for it, its arguments in `gpr[4..]` (the unit address
    /// in r4, already matched): its results written to `gpr[4..]`, and
    /// what is left to do once its lock is released.
    fn hcall(
        &mut self,
        call: VioCall,
        gpr: &mut [u64; 32],
        env: &mut dyn Env,
    ) -> Result<Effect, HError>;
}

/// A device under its own lock.
pub type Device = spin::Mutex<Box<dyn VioDevice>>;

/// A device on the bus with what the bus needs of it without its lock.
struct Slot {
    unit: u32,
    alias: Option<u64>,
    /// Bytes of its DMA window (0: none).
    window: u64,
    /// Its XICS source number, if it interrupts.
    irq: Option<u32>,
    dev: Device,
}

/// A VM's devices, fixed at creation.
pub struct VioBus {
    slots: Vec<Slot>,
}

impl VioBus {
    /// The bus of `devices`, in this order: sources are numbered from
    /// `crate::xics::IRQ_BASE` in it, and the device tree lists them so.
    ///
    /// # Panics
    /// If two devices answer to one unit address (a bug in the caller).
    pub fn new(devices: Vec<Box<dyn VioDevice>>) -> Self {
        let mut next = crate::xics::IRQ_BASE;
        let mut slots: Vec<Slot> = Vec::new();
        for d in devices {
            let (unit, alias, window) = (d.unit(), d.alias(), d.dma_window().unwrap_or(0));
            for u in core::iter::once(u64::from(unit)).chain(alias) {
                assert!(!slots.iter().any(|s| s.answers(u)), "unit {u:#x} twice");
            }
            let irq = d.irq().map(|_| {
                next += 1;
                next - 1
            });
            slots.push(Slot {
                unit,
                alias,
                window,
                irq,
                dev: spin::Mutex::new(d),
            });
        }
        VioBus { slots }
    }

    /// The XICS sources, in number order: true for a level-sensitive one.
    pub fn sources(&self) -> Vec<bool> {
        self.slots
            .iter()
            .filter(|s| s.irq.is_some())
            .map(|s| s.dev.lock().irq() == Some(Irq::Level))
            .collect()
    }

    /// The XICS source of the device at `unit`.
    pub fn irq(&self, unit: u32) -> Option<u32> {
        self.slots.iter().find(|s| s.unit == unit)?.irq
    }

    /// The device a hypercall's unit address names, with its source (no
    /// device's lock is taken to find it).
    pub fn route(&self, unit: u64) -> Option<(Option<u32>, &Device)> {
        let s = self.slots.iter().find(|s| s.answers(unit))?;
        Some((s.irq, &s.dev))
    }

    /// A TCE call (its LIOBN in r4, its results in r4) on the window it
    /// names, whose mappings may name only `mem`.
    pub fn tce_call(
        &self,
        call: TceCall,
        gpr: &mut [u64; 32],
        mem: &GuestMemory<'_>,
    ) -> Result<(), HError> {
        let dev = self.window(gpr[4]).ok_or(HError::Parameter)?;
        let mut dev = dev.lock();
        let t = dev.tce().ok_or(HError::Parameter)?;
        let a = [gpr[5], gpr[6], gpr[7]];
        match call {
            TceCall::Get => gpr[4] = t.get(a[0])?,
            TceCall::Put => t.put(a[0], a[1], mem.size())?,
            TceCall::Stuff => t.stuff(a[0], a[1], a[2])?,
            TceCall::PutIndirect => t.put_indirect(a[0], a[1], a[2], mem)?,
        }
        Ok(())
    }

    /// A device call for the fast path ([`VioDevice::quick`]): `None` if
    /// the device needs the full path for it, else the device's XICS
    /// source and what is left to do, the device's lock released.
    pub fn quick(
        &self,
        call: VioCall,
        gpr: &mut [u64; 32],
        mem: &mut GuestMemory<'_>,
        frame: &mut lan::Frame,
    ) -> Option<(Option<u32>, Result<Quick, HError>)> {
        match self.route(gpr[4]) {
            None => Some((None, Err(HError::Parameter))),
            Some((irq, dev)) => Some((irq, dev.lock().quick(call, gpr, mem, frame)?)),
        }
    }

    /// The device whose DMA window has LIOBN `liobn`.
    pub fn window(&self, liobn: u64) -> Option<&Device> {
        let s = self
            .slots
            .iter()
            .find(|s| s.window != 0 && u64::from(s.unit) == liobn)?;
        Some(&s.dev)
    }

    /// Every device back to its power-on state (`system-reboot`).
    pub fn reset(&self) {
        for s in &self.slots {
            s.dev.lock().reset();
        }
    }

    /// (node name, unit, report) of every device that reports.
    pub fn reports(&self) -> Vec<(&'static str, u32, alloc::string::String)> {
        self.slots
            .iter()
            .filter_map(|s| {
                let d = s.dev.lock();
                d.report().map(|r| (d.node_name(), s.unit, r))
            })
            .collect()
    }

    /// Each device's `/vdevice` child.
    pub fn write_nodes(&self, w: &mut FdtWriter) {
        for s in &self.slots {
            let d = s.dev.lock();
            let (device_type, compatible) = d.kind();
            w.begin_node(&format!("{}@{:x}", d.node_name(), s.unit));
            w.prop_str("device_type", device_type);
            w.prop_str("compatible", compatible);
            w.prop_u32("reg", s.unit);
            if let Some(n) = s.irq {
                w.prop_cells("interrupts", &[n, 0]);
            }
            if s.window != 0 {
                // As QEMU's pseries: LIOBN, a 2-cell bus address (0) and a
                // 2-cell size; without `ibm,#dma-size-cells` Linux would
                // take the parent's 0 and see an empty window.
                w.prop_u32("ibm,#dma-address-cells", 2);
                w.prop_u32("ibm,#dma-size-cells", 2);
                let (hi, lo) = ((s.window >> 32) as u32, s.window as u32);
                w.prop_cells("ibm,my-dma-window", &[s.unit, 0, 0, hi, lo]);
            }
            d.node(w);
            w.end_node();
        }
    }
}

impl Slot {
    fn answers(&self, unit: u64) -> bool {
        unit == u64::from(self.unit) || self.alias == Some(unit)
    }
}

#[cfg(test)]
mod tests;
