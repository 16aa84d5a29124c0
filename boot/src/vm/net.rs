//! The virtual LANs: each a switch (kernel::vio::lan) between the l-lan
//! adapters the manifest put on it (`net = LAN`), found by name.
//!
//! A frame is switched by its sender's thread during H_SEND_LOGICAL_LAN
//! (on the hypercall fast path, no lock of the sender's VM held), under
//! the LAN's lock, after the sender's device lock was released: each
//! receiving port's device lock is taken in turn, alone (device locks are
//! leaves, so two VMs sending to each other never wait on each other). A
//! receiving VM's interrupt needs that VM's lock: it is raised with no
//! other lock held ([`raise_edges`]), so no thread ever holds two VMs'
//! locks.
//!
//! A port leaves its LAN (under the LAN's lock) before its VM's memory
//! is freed, so a frame is only ever written into the memory of a VM
//! that lives; a VM that stopped, or never opened its adapter, loses the
//! frames sent to it and its peers go on.

use super::*;
use alloc::sync::Weak;
use kernel::vio::lan::{self, Counters, Frame, Ports};
use kernel::vio::llan::Received;

/// Every virtual LAN a VM has named since boot.
static LANS: spin::Mutex<Vec<Arc<Lan>>> = spin::Mutex::new(Vec::new());

/// One virtual LAN.
pub(super) struct Lan {
    pub(super) name: String,
    switch: spin::Mutex<Switch>,
}

/// A LAN's ports and what its switch counted.
struct Switch {
    ports: Vec<Port>,
    counters: Counters,
}

/// A VM's adapter on the LAN.
struct Port {
    vm: Weak<Vm>,
    /// The VM's id (creation order) and the adapter's unit address.
    id: usize,
    unit: u32,
}

/// The LAN called `name`, made if no VM named it before.
pub(super) fn lan(name: &str) -> Arc<Lan> {
    let mut all = LANS.lock();
    if let Some(l) = all.iter().find(|l| l.name == name) {
        return l.clone();
    }
    let l = Arc::new(Lan {
        name: name.into(),
        switch: spin::Mutex::new(Switch {
            ports: Vec::new(),
            counters: Counters::default(),
        }),
    });
    all.push(l.clone());
    l
}

impl Lan {
    /// Adapter `unit` of VM `id` joins the LAN.
    pub(super) fn join(&self, vm: Weak<Vm>, id: usize, unit: u32) {
        self.switch.lock().ports.push(Port { vm, id, unit });
    }

    /// Every adapter of VM `id` leaves the LAN (before its memory is
    /// freed); the last one to leave prints what the switch counted.
    pub(super) fn leave(&self, id: usize) {
        let mut sw = self.switch.lock();
        sw.ports.retain(|p| p.id != id);
        if sw.ports.is_empty() {
            let c = &sw.counters;
            info!(
                target: "net",
                "lan {}: the last port left: frames={} delivered={} dropped-at-ports={} unknown-mac={} runts={}",
                self.name, c.frames, c.delivered, c.dropped, c.unknown, c.runts
            );
        }
    }

    /// Switches `frame` from adapter `unit` of VM `id`, its bytes in
    /// `src` (that VM's memory); the interrupts of the ports it reached
    /// that asked for one are added to `raise`.
    pub(super) fn send(
        &self,
        id: usize,
        unit: u32,
        frame: &Frame,
        src: &GuestMemory<'_>,
        raise: &mut Vec<(Arc<Vm>, u32)>,
    ) {
        let mut sw = self.switch.lock();
        let Switch { ports, counters } = &mut *sw;
        let Some(from) = ports.iter().position(|p| p.id == id && p.unit == unit) else {
            return;
        };
        lan::switch(frame, from, &mut Reach { ports, src, raise }, counters);
    }
}

/// The ports of a locked LAN, as the switch reaches them.
struct Reach<'a> {
    ports: &'a [Port],
    /// The sender's memory.
    src: &'a GuestMemory<'a>,
    raise: &'a mut Vec<(Arc<Vm>, u32)>,
}

impl Ports for Reach<'_> {
    fn count(&self) -> usize {
        self.ports.len()
    }

    fn offer(&mut self, i: usize, frame: &Frame, all: bool) -> Option<Received> {
        let p = &self.ports[i];
        let vm = p.vm.upgrade()?;
        let (irq, dev) = vm.sh.vio.route(u64::from(p.unit))?;
        // SAFETY: the port is on the LAN, whose lock the caller holds, so
        // its VM has not reached `Vm::finish`'s `leave`, after which alone
        // its memory is freed.
        let mut mem = unsafe { vm.sh.guest_memory() };
        let r = dev.lock().offer(frame, self.src, all, &mut mem)?;
        if let (Received::Queued { signal: true }, Some(irq)) = (r, irq) {
            self.raise.push((vm, irq));
        }
        Some(r)
    }
}

/// Switches `frame`, sent by adapter `unit` of VM `id` (`sh`), its bytes
/// in that VM's memory, which is allocated while its vcpu is in the
/// hypercall sending it; the interrupts it asks for go to `raise`.
pub(super) fn transmit(
    sh: &Shared,
    id: usize,
    unit: u32,
    frame: &Frame,
    raise: &mut Vec<(Arc<Vm>, u32)>,
) {
    if let Some((_, lan)) = sh.lans.iter().find(|l| l.0 == unit) {
        // SAFETY: the sender's memory, allocated while its vcpu is in the
        // hypercall (the caller's promise).
        let src = unsafe { sh.guest_memory() };
        lan.send(id, unit, frame, &src, raise);
    }
}

/// Raises the edge interrupts that frames a vcpu sent asked for, with no
/// VM's lock held.
pub(super) fn raise_edges(raise: &mut Vec<(Arc<Vm>, u32)>) {
    for (vm, irq) in raise.drain(..) {
        vm.set_line(irq, true);
    }
}
