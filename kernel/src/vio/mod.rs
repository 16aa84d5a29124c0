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
//! a device's lock is never held while a VM's lock is taken.

pub mod nvram;
pub mod vty;

use crate::fdtw::FdtWriter;
use crate::papr::services::{Env, HError};
use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;

/// A device's interrupt source, as the XICS and the device tree see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Irq {
    /// Asserted while a condition holds (the vty: input waits); the
    /// device tree's sense cell 1.
    Level,
    /// Pulsed per event (VIO devices on QEMU's pseries); sense 0.
    Edge,
}

/// The hypercalls addressed to a device by unit address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VioCall {
    PutTermChar,
    GetTermChar,
}

/// One virtual device.
pub trait VioDevice: Send {
    /// `reg`: its unit address.
    fn unit(&self) -> u32;
    /// Whether a hypercall's unit address `unit` names this device (its
    /// `reg`; the vty also answers to 0).
    fn answers(&self, unit: u64) -> bool {
        unit == u64::from(self.unit())
    }
    /// Its node's name before the `@` (`vty`, `l-lan`, ...).
    fn node_name(&self) -> &'static str;
    /// Its node's properties but `reg` and `interrupts` (the bus writes
    /// those).
    fn node(&self, w: &mut FdtWriter);
    /// Its interrupt source, if it has one.
    fn irq(&self) -> Option<Irq>;
    /// A hypercall for it, its arguments in `gpr[4..]` (the unit address
    /// in r4, already matched): its results written to `gpr[4..]`, and
    /// the level its interrupt line has now if the call changed it.
    fn hcall(
        &mut self,
        call: VioCall,
        gpr: &mut [u64; 32],
        env: &mut dyn Env,
    ) -> Result<Option<bool>, HError>;
}

/// A device on the bus, under its own lock.
pub type Device = spin::Mutex<Box<dyn VioDevice>>;

/// A VM's devices, fixed at creation.
pub struct VioBus {
    /// Each device with its XICS source number, if it has one.
    devices: Vec<(Option<u32>, Device)>,
}

impl VioBus {
    /// The bus of `devices`, in this order: sources are numbered from
    /// `crate::xics::IRQ_BASE` in it, and the device tree lists them so.
    ///
    /// # Panics
    /// If two devices have one unit address (a bug in the caller).
    pub fn new(devices: Vec<Box<dyn VioDevice>>) -> Self {
        let mut next = crate::xics::IRQ_BASE;
        let mut units: Vec<u32> = Vec::new();
        let devices = devices
            .into_iter()
            .map(|d| {
                assert!(!units.contains(&d.unit()), "unit {:#x} twice", d.unit());
                units.push(d.unit());
                let irq = d.irq().map(|_| {
                    next += 1;
                    next - 1
                });
                (irq, spin::Mutex::new(d))
            })
            .collect();
        VioBus { devices }
    }

    /// The XICS sources, in number order: true for a level-sensitive one.
    pub fn sources(&self) -> Vec<bool> {
        self.devices
            .iter()
            .filter(|(irq, _)| irq.is_some())
            .map(|(_, d)| d.lock().irq() == Some(Irq::Level))
            .collect()
    }

    /// The XICS source of the device at `unit`.
    pub fn irq(&self, unit: u32) -> Option<u32> {
        self.devices
            .iter()
            .find(|(_, d)| d.lock().unit() == unit)
            .and_then(|(irq, _)| *irq)
    }

    /// The first device that answers to `unit`, with its source.
    pub fn route(&self, unit: u64) -> Option<(Option<u32>, &Device)> {
        self.devices
            .iter()
            .find(|(_, d)| d.lock().answers(unit))
            .map(|(irq, d)| (*irq, d))
    }

    /// Each device's `/vdevice` child.
    pub fn write_nodes(&self, w: &mut FdtWriter) {
        for (irq, d) in &self.devices {
            let d = d.lock();
            w.begin_node(&format!("{}@{:x}", d.node_name(), d.unit()));
            w.prop_u32("reg", d.unit());
            d.node(w);
            // Sense 0 whatever the source's kind, as QEMU's pseries writes
            // it for every VIO device (Linux's xics_host_xlate reads bit 0
            // of the second cell: 1 would be level).
            if let Some(n) = irq {
                w.prop_cells("interrupts", &[*n, 0]);
            }
            w.end_node();
        }
    }
}

#[cfg(test)]
mod tests;
