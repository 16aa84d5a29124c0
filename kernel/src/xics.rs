//! Virtual XICS for guests: one presentation controller (ICP) per vcpu and
//! one source controller (ICS) per VM, as PAPR's hypercalls (H_XIRR,
//! H_XIRR_X, H_EOI, H_CPPR, H_IPI, H_IPOLL) and RTAS calls (`ibm,set-xive`,
//! `ibm,get-xive`, `ibm,int-on`, `ibm,int-off`) see them.
//!
//! Facts from Linux `arch/powerpc/sysdev/xics/` and `kvm/book3s_xics.c`
//! and QEMU `hw/intc/xics.c`: XIRR = CPPR << 24 | XISR; XISR 2 is the IPI
//! (raised while MFRR is more favoured than CPPR), 0 means none; a lower
//! priority number is more favoured, 0xff is "masked" / "accept all".
//! Accepting an interrupt (H_XIRR) raises CPPR to its priority; H_EOI
//! restores CPPR from the XIRR the guest passes and ends the source's
//! service, after which a still-asserted level source or an edge that
//! arrived meanwhile is presented again (resend).
//!
//! The presented interrupt is recomputed from the state after every
//! change, so a more favoured arrival rejects a less favoured one and a
//! CPPR change masks or unmasks exactly as the hardware does. Every change
//! returns the vcpus whose presented interrupt may have changed
//! ([`Kick`]): the caller wakes them wherever they run. Server numbers
//! are vcpu ids.

use alloc::vec;
use alloc::vec::Vec;

/// First source number (QEMU's and PowerVM's XICS_IRQ_BASE).
pub const IRQ_BASE: u32 = 0x1000;
/// XISR of the inter-processor interrupt.
pub const XISR_IPI: u32 = 2;
/// Least favoured priority: masked (sources), accept everything (CPPR).
pub const PRIO_MASKED: u8 = 0xff;

/// One vcpu's presentation controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icp {
    pub cppr: u8,
    pub mfrr: u8,
    /// The interrupt presented to the vcpu, if any: (XISR, priority).
    presented: Option<(u32, u8)>,
}

impl Default for Icp {
    /// At reset CPPR is 0 (nothing is accepted until the guest opens it)
    /// and MFRR is 0xff (no IPI).
    fn default() -> Self {
        Icp {
            cppr: 0,
            mfrr: PRIO_MASKED,
            presented: None,
        }
    }
}

impl Icp {
    /// The XIRR as H_IPOLL reads it (without accepting).
    pub fn xirr(&self) -> u32 {
        (u32::from(self.cppr) << 24) | self.presented.map_or(0, |p| p.0)
    }

    /// The priority of the presented interrupt: the vcpu has an external
    /// interrupt pending.
    pub fn pending(&self) -> Option<u8> {
        self.presented.map(|p| p.1)
    }
}

/// One interrupt source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    pub server: u32,
    pub priority: u8,
    /// What `ibm,int-on` restores.
    pub saved_priority: u8,
    /// Level-sensitive: presented while asserted (else edge: latched).
    pub level: bool,
    asserted: bool,
    /// An edge that has not been accepted yet.
    latched: bool,
    /// Accepted by H_XIRR and not yet ended by H_EOI.
    in_service: bool,
}

impl Source {
    fn new(level: bool) -> Self {
        Source {
            server: 0,
            priority: PRIO_MASKED,
            saved_priority: PRIO_MASKED,
            level,
            asserted: false,
            latched: false,
            in_service: false,
        }
    }

    fn wants_service(&self) -> bool {
        let raised = if self.level {
            self.asserted
        } else {
            self.latched
        };
        raised && !self.in_service && self.priority != PRIO_MASKED
    }
}

/// Vcpus (servers) whose presented interrupt may have changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kick([Option<u32>; 2]);

impl Kick {
    fn one(s: u32) -> Self {
        Kick([Some(s), None])
    }
    fn two(a: u32, b: u32) -> Self {
        Kick([Some(a), (a != b).then_some(b)])
    }
    pub fn servers(self) -> impl Iterator<Item = u32> {
        self.0.into_iter().flatten()
    }
}

/// Why an XICS operation was refused (the caller maps it to PAPR's codes:
/// H_PARAMETER for hypercalls, -3 for RTAS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XicsError {
    NoSuchServer,
    NoSuchSource,
    BadPriority,
}

/// A VM's interrupt controller state.
#[derive(Clone, Debug)]
pub struct Xics {
    icps: Vec<Icp>,
    sources: Vec<Source>,
}

impl Xics {
    /// `servers` vcpus; sources `IRQ_BASE..` with the given kinds (true =
    /// level-sensitive).
    pub fn new(servers: u32, sources: &[bool]) -> Self {
        Xics {
            icps: vec![Icp::default(); servers as usize],
            sources: sources.iter().map(|&l| Source::new(l)).collect(),
        }
    }

    pub fn icp(&self, server: u32) -> Option<&Icp> {
        self.icps.get(server as usize)
    }

    pub fn source(&self, irq: u32) -> Option<&Source> {
        self.sources.get(irq.checked_sub(IRQ_BASE)? as usize)
    }

    fn check_server(&self, server: u64) -> Result<u32, XicsError> {
        if server < self.icps.len() as u64 {
            Ok(server as u32)
        } else {
            Err(XicsError::NoSuchServer)
        }
    }

    fn src_index(&self, irq: u64) -> Result<usize, XicsError> {
        irq.checked_sub(u64::from(IRQ_BASE))
            .filter(|&i| i < self.sources.len() as u64)
            .map(|i| i as usize)
            .ok_or(XicsError::NoSuchSource)
    }

    fn prio(p: u64) -> Result<u8, XicsError> {
        u8::try_from(p).map_err(|_| XicsError::BadPriority)
    }

    /// Recomputes what `server`'s ICP presents.
    fn update(&mut self, server: u32) {
        let icp = self.icps[server as usize];
        let mut best = (icp.mfrr < icp.cppr).then_some((XISR_IPI, icp.mfrr));
        for (i, s) in self.sources.iter().enumerate() {
            if s.server == server
                && s.wants_service()
                && s.priority < icp.cppr
                && best.is_none_or(|b| s.priority < b.1)
            {
                best = Some((IRQ_BASE + i as u32, s.priority));
            }
        }
        self.icps[server as usize].presented = best;
    }

    /// H_XIRR: accepts the presented interrupt; returns the XIRR before
    /// the accept (CPPR then the interrupt's XISR, 0 if none).
    pub fn accept(&mut self, server: u32) -> (u32, Kick) {
        let s = server as usize;
        let old = self.icps[s].xirr();
        if let Some((xisr, prio)) = self.icps[s].presented.take() {
            self.icps[s].cppr = prio;
            if xisr != XISR_IPI {
                let src = &mut self.sources[(xisr - IRQ_BASE) as usize];
                src.latched = false;
                src.in_service = true;
            }
        }
        self.update(server);
        (old, Kick::one(server))
    }

    /// H_EOI: CPPR from the XIRR's top byte, then the end of service of
    /// its source. An unknown source is refused after CPPR is set (as
    /// KVM does).
    pub fn eoi(&mut self, server: u32, xirr: u64) -> Result<Kick, XicsError> {
        self.icps[server as usize].cppr = (xirr >> 24) as u8;
        let irq = xirr & 0xff_ffff;
        let mut kick = Kick::one(server);
        let res = if irq == u64::from(XISR_IPI) || irq == 0 {
            Ok(())
        } else {
            self.src_index(irq).map(|i| {
                self.sources[i].in_service = false;
                let other = self.sources[i].server;
                kick = Kick::two(server, other);
            })
        };
        for s in kick.servers() {
            self.update(s);
        }
        res.map(|_| kick)
    }

    /// H_CPPR.
    pub fn set_cppr(&mut self, server: u32, cppr: u64) -> Result<Kick, XicsError> {
        self.icps[server as usize].cppr = Self::prio(cppr)?;
        self.update(server);
        Ok(Kick::one(server))
    }

    /// H_IPI: sets `target`'s MFRR.
    pub fn set_mfrr(&mut self, target: u64, mfrr: u64) -> Result<Kick, XicsError> {
        let t = self.check_server(target)?;
        self.icps[t as usize].mfrr = Self::prio(mfrr)?;
        self.update(t);
        Ok(Kick::one(t))
    }

    /// H_IPOLL: `target`'s XIRR (nothing accepted) and MFRR.
    pub fn poll(&self, target: u64) -> Result<(u32, u8), XicsError> {
        let t = self.check_server(target)?;
        let icp = &self.icps[t as usize];
        Ok((icp.xirr(), icp.mfrr))
    }

    /// RTAS `ibm,set-xive`.
    pub fn set_xive(&mut self, irq: u64, server: u64, prio: u64) -> Result<Kick, XicsError> {
        let i = self.src_index(irq)?;
        let server = self.check_server(server)?;
        let prio = Self::prio(prio)?;
        let old = self.sources[i].server;
        let s = &mut self.sources[i];
        s.server = server;
        s.priority = prio;
        s.saved_priority = prio;
        self.update(old);
        self.update(server);
        Ok(Kick::two(old, server))
    }

    /// RTAS `ibm,get-xive`: (server, priority).
    pub fn get_xive(&self, irq: u64) -> Result<(u32, u8), XicsError> {
        let s = &self.sources[self.src_index(irq)?];
        Ok((s.server, s.priority))
    }

    /// RTAS `ibm,int-off`: masks the source, keeping its priority for
    /// `ibm,int-on`.
    pub fn int_off(&mut self, irq: u64) -> Result<Kick, XicsError> {
        let i = self.src_index(irq)?;
        let s = &mut self.sources[i];
        if s.priority != PRIO_MASKED {
            s.saved_priority = s.priority;
        }
        s.priority = PRIO_MASKED;
        let server = s.server;
        self.update(server);
        Ok(Kick::one(server))
    }

    /// RTAS `ibm,int-on`.
    pub fn int_on(&mut self, irq: u64) -> Result<Kick, XicsError> {
        let i = self.src_index(irq)?;
        let s = &mut self.sources[i];
        s.priority = s.saved_priority;
        let server = s.server;
        self.update(server);
        Ok(Kick::one(server))
    }

    /// A device raises (level: asserts, edge: pulses) or lowers a source.
    pub fn set_line(&mut self, irq: u32, high: bool) -> Kick {
        let Ok(i) = self.src_index(u64::from(irq)) else {
            return Kick::default();
        };
        let s = &mut self.sources[i];
        let before = (s.asserted, s.latched);
        if s.level {
            s.asserted = high;
        } else if high {
            s.latched = true;
        }
        // Nothing changed (a level line polled again): nobody to wake.
        if (s.asserted, s.latched) == before {
            return Kick::default();
        }
        let server = s.server;
        self.update(server);
        Kick::one(server)
    }

    /// Back to the reset state (a guest reboot).
    pub fn reset(&mut self) {
        for icp in &mut self.icps {
            *icp = Icp::default();
        }
        for s in &mut self.sources {
            *s = Source::new(s.level);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VTY: u32 = IRQ_BASE;
    const EDGE: u32 = IRQ_BASE + 1;

    fn xics() -> Xics {
        let mut x = Xics::new(2, &[true, false]);
        for s in 0..2 {
            x.set_cppr(s, 0xff).unwrap();
        }
        x
    }

    #[test]
    fn reset_state_accepts_nothing() {
        let mut x = Xics::new(1, &[true]);
        assert_eq!(x.icp(0).unwrap().cppr, 0);
        x.set_mfrr(0, 5).unwrap();
        assert_eq!(x.icp(0).unwrap().pending(), None, "CPPR 0 masks all");
        x.set_cppr(0, 0xff).unwrap();
        assert_eq!(x.icp(0).unwrap().pending(), Some(5));
    }

    #[test]
    fn ipi_is_presented_accepted_and_reraised_if_mfrr_stays() {
        let mut x = xics();
        x.set_mfrr(1, 4).unwrap();
        assert_eq!(x.icp(0).unwrap().pending(), None);
        assert_eq!(x.icp(1).unwrap().pending(), Some(4));
        let (xirr, _) = x.accept(1);
        assert_eq!(xirr, 0xff00_0002);
        assert_eq!(x.icp(1).unwrap().cppr, 4);
        assert_eq!(x.icp(1).unwrap().pending(), None);
        // EOI before clearing MFRR re-raises it ...
        x.eoi(1, 0xff00_0002).unwrap();
        assert_eq!(x.icp(1).unwrap().pending(), Some(4));
        x.accept(1);
        // ... clearing MFRR first does not.
        x.set_mfrr(1, 0xff).unwrap();
        x.eoi(1, 0xff00_0002).unwrap();
        assert_eq!(x.icp(1).unwrap().pending(), None);
        assert_eq!(x.accept(1).0, 0xff00_0000, "nothing: XISR 0");
    }

    #[test]
    fn masked_source_is_not_presented_until_int_on_and_set_xive() {
        let mut x = xics();
        x.set_line(VTY, true);
        assert_eq!(x.icp(0).unwrap().pending(), None, "priority 0xff at reset");
        x.set_xive(u64::from(VTY), 0, 5).unwrap();
        assert_eq!(x.icp(0).unwrap().pending(), Some(5));
        x.int_off(u64::from(VTY)).unwrap();
        assert_eq!(x.icp(0).unwrap().pending(), None);
        assert_eq!(x.get_xive(u64::from(VTY)), Ok((0, 0xff)));
        x.int_on(u64::from(VTY)).unwrap();
        assert_eq!(x.get_xive(u64::from(VTY)), Ok((0, 5)));
        assert_eq!(x.icp(0).unwrap().pending(), Some(5));
    }

    #[test]
    fn a_line_that_does_not_change_wakes_nobody() {
        let mut x = xics();
        x.set_xive(u64::from(VTY), 1, 5).unwrap();
        assert_eq!(x.set_line(VTY, true).servers().collect::<Vec<_>>(), [1]);
        // Polled again while input still waits: no kick each time.
        assert_eq!(x.set_line(VTY, true), Kick::default());
        assert_eq!(x.set_line(VTY, false).servers().collect::<Vec<_>>(), [1]);
        assert_eq!(x.set_line(VTY, false), Kick::default());
    }

    #[test]
    fn cppr_masks_equal_and_less_favoured_priorities() {
        let mut x = xics();
        x.set_xive(u64::from(VTY), 0, 5).unwrap();
        x.set_line(VTY, true);
        x.set_cppr(0, 5).unwrap();
        assert_eq!(x.icp(0).unwrap().pending(), None, "5 is not below CPPR 5");
        x.set_cppr(0, 6).unwrap();
        assert_eq!(x.icp(0).unwrap().pending(), Some(5));
        x.set_cppr(0, 0).unwrap();
        assert_eq!(x.icp(0).unwrap().pending(), None);
    }

    #[test]
    fn more_favoured_arrival_rejects_the_presented_one() {
        let mut x = xics();
        x.set_xive(u64::from(VTY), 0, 5).unwrap();
        x.set_line(VTY, true);
        assert_eq!(x.icp(0).unwrap().xirr() & 0xff_ffff, VTY);
        x.set_mfrr(0, 3).unwrap();
        assert_eq!(x.icp(0).unwrap().xirr() & 0xff_ffff, XISR_IPI);
        let (xirr, _) = x.accept(0);
        assert_eq!(xirr, 0xff00_0002);
        x.set_mfrr(0, 0xff).unwrap();
        // The source waits below CPPR 3, and comes back after the EOI.
        assert_eq!(x.icp(0).unwrap().pending(), None);
        x.eoi(0, 0xff00_0002).unwrap();
        assert_eq!(x.icp(0).unwrap().xirr(), 0xff00_0000 | VTY);
    }

    #[test]
    fn level_source_is_resent_after_eoi_while_asserted() {
        let mut x = xics();
        x.set_xive(u64::from(VTY), 0, 5).unwrap();
        x.set_line(VTY, true);
        let (xirr, _) = x.accept(0);
        assert_eq!(xirr, 0xff00_0000 | VTY);
        assert_eq!(x.icp(0).unwrap().cppr, 5);
        // In service: not presented again even at a lower CPPR.
        x.set_cppr(0, 0xff).unwrap();
        assert_eq!(x.icp(0).unwrap().pending(), None);
        x.eoi(0, u64::from(0xff00_0000 | VTY)).unwrap();
        assert_eq!(x.icp(0).unwrap().pending(), Some(5), "still asserted");
        x.accept(0);
        x.set_line(VTY, false);
        x.eoi(0, u64::from(0xff00_0000 | VTY)).unwrap();
        assert_eq!(x.icp(0).unwrap().pending(), None);
    }

    #[test]
    fn edge_arriving_in_service_is_delivered_once_after_eoi() {
        let mut x = xics();
        x.set_xive(u64::from(EDGE), 1, 5).unwrap();
        x.set_line(EDGE, true);
        x.accept(1);
        x.set_line(EDGE, true);
        x.set_line(EDGE, true);
        assert_eq!(x.icp(1).unwrap().pending(), None);
        x.eoi(1, u64::from(0xff00_0000 | EDGE)).unwrap();
        assert_eq!(x.icp(1).unwrap().pending(), Some(5));
        x.accept(1);
        x.eoi(1, u64::from(0xff00_0000 | EDGE)).unwrap();
        assert_eq!(x.icp(1).unwrap().pending(), None, "the two edges merged");
    }

    #[test]
    fn retargeting_moves_the_interrupt_and_kicks_both_servers() {
        let mut x = xics();
        x.set_xive(u64::from(VTY), 0, 5).unwrap();
        x.set_line(VTY, true);
        assert_eq!(x.icp(0).unwrap().pending(), Some(5));
        let k = x.set_xive(u64::from(VTY), 1, 5).unwrap();
        assert_eq!(k.servers().collect::<Vec<_>>(), [0, 1]);
        assert_eq!(x.icp(0).unwrap().pending(), None);
        assert_eq!(x.icp(1).unwrap().pending(), Some(5));
    }

    #[test]
    fn bad_arguments_are_refused() {
        let mut x = xics();
        assert_eq!(x.set_mfrr(2, 5), Err(XicsError::NoSuchServer));
        assert_eq!(x.set_mfrr(0, 0x100), Err(XicsError::BadPriority));
        assert_eq!(x.poll(u64::MAX), Err(XicsError::NoSuchServer));
        assert_eq!(x.set_xive(2, 0, 5), Err(XicsError::NoSuchSource));
        assert_eq!(
            x.set_xive(u64::from(IRQ_BASE + 2), 0, 5),
            Err(XicsError::NoSuchSource)
        );
        assert_eq!(
            x.set_xive(u64::from(VTY), 7, 5),
            Err(XicsError::NoSuchServer)
        );
        assert_eq!(
            x.set_xive(u64::from(VTY), 0, 256),
            Err(XicsError::BadPriority)
        );
        assert_eq!(
            x.get_xive(u64::from(IRQ_BASE - 1)),
            Err(XicsError::NoSuchSource)
        );
        assert_eq!(x.int_on(0), Err(XicsError::NoSuchSource));
        assert_eq!(x.set_cppr(0, 0x1ff), Err(XicsError::BadPriority));
        // H_EOI of an unknown source sets CPPR, then refuses.
        assert_eq!(x.eoi(0, 0x0500_0777), Err(XicsError::NoSuchSource));
        assert_eq!(x.icp(0).unwrap().cppr, 5);
        assert_eq!(x.set_line(IRQ_BASE + 9, true), Kick::default());
    }

    #[test]
    fn poll_does_not_accept_and_reset_clears_everything() {
        let mut x = xics();
        x.set_mfrr(0, 4).unwrap();
        assert_eq!(x.poll(0), Ok((0xff00_0002, 4)));
        assert_eq!(x.poll(0), Ok((0xff00_0002, 4)));
        x.set_xive(u64::from(VTY), 0, 5).unwrap();
        x.reset();
        assert_eq!(*x.icp(0).unwrap(), Icp::default());
        assert_eq!(x.get_xive(u64::from(VTY)), Ok((0, 0xff)));
    }
}
