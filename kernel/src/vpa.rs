//! H_REGISTER_VPA: a vcpu's Virtual Processor Area, SLB shadow buffer and
//! dispatch trace log, registered by the guest in its own memory.
//!
//! Validation as PAPR and KVM-HV (`do_h_register_vpa`) do it: the
//! subfunction is in flag bits 16-18; a registered area is cache-line
//! aligned, non-zero, inside guest memory and within one 4 KiB page, and
//! its size comes from the area itself (a 16-bit size at offset 4 for the
//! VPA, 32-bit for the others): at least 640 bytes for the VPA, one
//! 48-byte entry for the DTL. The DTL and SLB shadow need a registered
//! VPA, and the VPA cannot be deregistered while either is registered
//! (H_RESOURCE).

use crate::gmem::GuestMemory;
use papr_abi::{H_PARAMETER, H_RESOURCE, H_SUCCESS};

/// Bit position (from the right) of the subfunction in the flags.
pub const FUNC_SHIFT: u32 = 63 - 18;
pub const REG_VPA: u64 = 1;
pub const REG_DTL: u64 = 2;
pub const REG_SLB: u64 = 3;
pub const DEREG_VPA: u64 = 5;
pub const DEREG_DTL: u64 = 6;
pub const DEREG_SLB: u64 = 7;

/// Linux's `struct lppaca`: what a VPA must at least hold.
pub const VPA_MIN: u32 = 640;
/// One dispatch trace log entry (`struct dtl_entry`).
pub const DTL_ENTRY: u32 = 48;
/// Offset of the yield count (odd while the vcpu is not dispatched).
pub const YIELD_COUNT: u64 = 0x100;
/// `__old_status`: the hypervisor marks a shared-processor partition
/// here ([`SHARED_PROC`]), as KVM-HV does on registration; Linux then
/// reads the yield count (`vcpu_is_preempted`, lock spinning with
/// H_CONFER) and the steal totals.
pub const OLD_STATUS: u64 = 0x09;
pub const SHARED_PROC: u8 = 0x02;
/// Which dispatches the guest wants logged in its DTL ([`DTL_LOG_CEDE`],
/// [`DTL_LOG_PREEMPT`]); written by the guest after registering the DTL.
pub const DTL_ENABLE_MASK: u64 = 0xb8;
pub const DTL_LOG_CEDE: u8 = 0x1;
pub const DTL_LOG_PREEMPT: u8 = 0x2;
/// Total timebase ticks from enqueue to dispatch (be64): the vcpu was
/// ready and not running. Linux's paravirt steal clock reads it.
pub const ENQUEUE_DISPATCH_TB: u64 = 0x158;
/// The DTL's head (be64): entries written so far.
pub const DTL_IDX: u64 = 0x218;
/// `struct dtl_entry` offsets (big-endian).
const DTL_DISPATCH_REASON: u64 = 0;
const DTL_PREEMPT_REASON: u64 = 1;
const DTL_PROCESSOR: u64 = 2;
const DTL_ENQUEUE_TO_DISPATCH: u64 = 4;
const DTL_TIMEBASE: u64 = 16;
const DTL_SRR0: u64 = 32;
const DTL_SRR1: u64 = 40;
/// DTL dispatch reasons (PowerVM's codes, as Linux's decoders name them).
pub const DISPATCH_EXTERNAL: u8 = 0;
pub const DISPATCH_DECREMENTER: u8 = 3;
pub const DISPATCH_TIME_SLICE: u8 = 7;
/// DTL preempt reasons.
pub const PREEMPT_CEDE: u8 = 2;
pub const PREEMPT_TIME_SLICE: u8 = 4;
const ALIGN: u64 = 128;
const PAGE: u64 = 4096;

/// A registered area: guest-physical address and length in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Area {
    pub gpa: u64,
    pub len: u32,
}

/// One vcpu's registrations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vpa {
    pub vpa: Option<Area>,
    pub dtl: Option<Area>,
    pub slb: Option<Area>,
    /// DTL entries written since the DTL was registered (the guest's
    /// `dtl_idx`).
    dtl_count: u64,
}

/// Why a vcpu was not running until a dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Undispatched {
    /// It ceded (H_CEDE) and woke.
    Ceded,
    /// Its vcore left the core at a slice end while it wanted to run.
    Preempted,
}

/// One dispatch of a vcpu after it was not running, as its VPA and DTL
/// record it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dispatch {
    pub after: Undispatched,
    /// Timebase ticks it was ready to run and did not (steal).
    pub stolen: u64,
    /// The timebase now (the guest's: it has no offset here).
    pub tb: u64,
    /// The hardware thread it runs on (PIR).
    pub processor: u16,
    /// Its PC and MSR at the dispatch.
    pub srr0: u64,
    pub srr1: u64,
    /// DTL dispatch reason.
    pub reason: u8,
}

impl Vpa {
    /// H_REGISTER_VPA for this vcpu (the caller has resolved the target
    /// vcpu id; an unknown one is H_PARAMETER there).
    pub fn register(&mut self, flags: u64, addr: u64, mem: &mut GuestMemory<'_>) -> i64 {
        let func = (flags >> FUNC_SHIFT) & 7;
        if flags & !(7 << FUNC_SHIFT) != 0 {
            return H_PARAMETER;
        }
        let area = if matches!(func, REG_VPA | REG_DTL | REG_SLB) {
            if addr == 0 || !addr.is_multiple_of(ALIGN) {
                return H_PARAMETER;
            }
            let len = if func == REG_VPA {
                mem.read_be16(addr + 4).map(u32::from)
            } else {
                mem.read_be32(addr + 4)
            };
            let Some(len) = len else { return H_PARAMETER };
            let room = PAGE - addr % PAGE;
            if u64::from(len) > room || !mem.contains(addr, u64::from(len)) {
                return H_PARAMETER;
            }
            Some(Area { gpa: addr, len })
        } else {
            None
        };
        match (func, area) {
            (REG_VPA, Some(a)) if a.len >= VPA_MIN => {
                self.vpa = Some(a);
                if let Some(s) = mem.read_u8(a.gpa + OLD_STATUS) {
                    mem.write_u8(a.gpa + OLD_STATUS, s | SHARED_PROC);
                }
            }
            (REG_DTL, Some(mut a)) if a.len >= DTL_ENTRY => {
                if self.vpa.is_none() {
                    return H_RESOURCE;
                }
                a.len -= a.len % DTL_ENTRY;
                self.dtl = Some(a);
                self.dtl_count = 0;
            }
            (REG_SLB, Some(a)) if a.len >= 8 => {
                if self.vpa.is_none() {
                    return H_RESOURCE;
                }
                self.slb = Some(a);
            }
            (DEREG_VPA, None) => {
                if self.dtl.is_some() || self.slb.is_some() {
                    return H_RESOURCE;
                }
                self.vpa = None;
            }
            (DEREG_DTL, None) => self.dtl = None,
            (DEREG_SLB, None) => self.slb = None,
            _ => return H_PARAMETER,
        }
        H_SUCCESS
    }

    /// Advances the yield count: called when the vcpu stops being
    /// dispatched (odd) and when it is dispatched again (even).
    pub fn bump_yield_count(&self, mem: &mut GuestMemory<'_>) {
        if let Some(a) = self.vpa {
            let at = a.gpa + YIELD_COUNT;
            if let Some(n) = mem.read_be32(at) {
                mem.write_be32(at, n.wrapping_add(1));
            }
        }
    }

    /// The vcpu is dispatched again after `d.after`: the yield count
    /// becomes even, the time it was kept from running is added to the
    /// steal total, and a DTL entry is logged if the guest registered a
    /// DTL and asked for this kind (its enable mask), the index advanced
    /// after the entry is written.
    pub fn dispatched(&mut self, mem: &mut GuestMemory<'_>, d: &Dispatch) {
        let Some(vpa) = self.vpa else { return };
        self.bump_yield_count(mem);
        if d.stolen != 0 {
            let at = vpa.gpa + ENQUEUE_DISPATCH_TB;
            if let Some(total) = mem.read_be64(at) {
                mem.write_be64(at, total.wrapping_add(d.stolen));
            }
        }
        let Some(dtl) = self.dtl else { return };
        let want = match d.after {
            Undispatched::Ceded => DTL_LOG_CEDE,
            Undispatched::Preempted => DTL_LOG_PREEMPT,
        };
        if mem.read_u8(vpa.gpa + DTL_ENABLE_MASK).unwrap_or(0) & want == 0 {
            return;
        }
        let entries = u64::from(dtl.len / DTL_ENTRY);
        let e = dtl.gpa + (self.dtl_count % entries) * u64::from(DTL_ENTRY);
        let mut b = [0u8; DTL_ENTRY as usize];
        b[DTL_DISPATCH_REASON as usize] = d.reason;
        b[DTL_PREEMPT_REASON as usize] = match d.after {
            Undispatched::Ceded => PREEMPT_CEDE,
            Undispatched::Preempted => PREEMPT_TIME_SLICE,
        };
        let put = |b: &mut [u8], off: u64, v: &[u8]| {
            b[off as usize..off as usize + v.len()].copy_from_slice(v);
        };
        put(&mut b, DTL_PROCESSOR, &d.processor.to_be_bytes());
        let stolen = u32::try_from(d.stolen).unwrap_or(u32::MAX);
        put(&mut b, DTL_ENQUEUE_TO_DISPATCH, &stolen.to_be_bytes());
        put(&mut b, DTL_TIMEBASE, &d.tb.to_be_bytes());
        put(&mut b, DTL_SRR0, &d.srr0.to_be_bytes());
        put(&mut b, DTL_SRR1, &d.srr1.to_be_bytes());
        if mem.write(e, &b).is_none() {
            return;
        }
        // The entry is complete before the guest can see the new index.
        core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
        self.dtl_count += 1;
        mem.write_be64(vpa.gpa + DTL_IDX, self.dtl_count);
    }

    /// The yield count, if a VPA is registered.
    pub fn yield_count(&self, mem: &GuestMemory<'_>) -> Option<u32> {
        mem.read_be32(self.vpa?.gpa + YIELD_COUNT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn f(func: u64) -> u64 {
        func << FUNC_SHIFT
    }

    /// Guest memory with a VPA (size 640) at 0x1000, a DTL (size 4096) at
    /// 0x2000 and an SLB shadow (size 0x80) at 0x3000.
    fn mem() -> alloc::vec::Vec<u8> {
        let mut v = vec![0u8; 0x10000];
        v[0x1004..0x1006].copy_from_slice(&640u16.to_be_bytes());
        v[0x2004..0x2008].copy_from_slice(&4096u32.to_be_bytes());
        v[0x3004..0x3008].copy_from_slice(&0x80u32.to_be_bytes());
        v
    }

    #[test]
    fn register_in_order_and_deregister_in_reverse() {
        let mut v = mem();
        let mut m = GuestMemory::new(&mut v);
        let mut p = Vpa::default();
        assert_eq!(p.register(f(REG_DTL), 0x2000, &mut m), H_RESOURCE);
        assert_eq!(p.register(f(REG_SLB), 0x3000, &mut m), H_RESOURCE);
        assert_eq!(p.register(f(REG_VPA), 0x1000, &mut m), H_SUCCESS);
        assert_eq!(
            p.vpa,
            Some(Area {
                gpa: 0x1000,
                len: 640
            })
        );
        assert_eq!(p.register(f(REG_DTL), 0x2000, &mut m), H_SUCCESS);
        assert_eq!(p.dtl.unwrap().len, 4096 - 4096 % 48);
        assert_eq!(p.register(f(REG_SLB), 0x3000, &mut m), H_SUCCESS);
        assert_eq!(p.register(f(DEREG_VPA), 0, &mut m), H_RESOURCE);
        assert_eq!(p.register(f(DEREG_DTL), 0, &mut m), H_SUCCESS);
        assert_eq!(p.register(f(DEREG_SLB), 0, &mut m), H_SUCCESS);
        assert_eq!(p.register(f(DEREG_VPA), 0, &mut m), H_SUCCESS);
        assert_eq!(p, Vpa::default());
    }

    #[test]
    fn bad_areas_are_refused() {
        let mut v = mem();
        v[0x4004..0x4006].copy_from_slice(&100u16.to_be_bytes()); // too small
        v[0x1f84..0x1f86].copy_from_slice(&640u16.to_be_bytes()); // crosses 4K
        let mut m = GuestMemory::new(&mut v);
        let mut p = Vpa::default();
        for addr in [0, 0x1008, 0x4000, 0x1f80, 0x10000, 0xffff_ffff_ffff_ff80] {
            assert_eq!(
                p.register(f(REG_VPA), addr, &mut m),
                H_PARAMETER,
                "{addr:#x}"
            );
        }
        assert_eq!(
            p.register(f(0), 0x1000, &mut m),
            H_PARAMETER,
            "subfunction 0"
        );
        assert_eq!(
            p.register(f(4), 0x1000, &mut m),
            H_PARAMETER,
            "subfunction 4"
        );
        assert_eq!(
            p.register(f(REG_VPA) | 1, 0x1000, &mut m),
            H_PARAMETER,
            "stray flag"
        );
        assert_eq!(p, Vpa::default());
    }

    #[test]
    fn yield_count_advances_only_with_a_vpa() {
        let mut v = mem();
        let mut m = GuestMemory::new(&mut v);
        let mut p = Vpa::default();
        p.bump_yield_count(&mut m);
        assert_eq!(p.yield_count(&m), None);
        p.register(f(REG_VPA), 0x1000, &mut m);
        p.bump_yield_count(&mut m);
        assert_eq!(p.yield_count(&m), Some(1));
        p.bump_yield_count(&mut m);
        assert_eq!(p.yield_count(&m), Some(2));
        assert_eq!(v[0x1100..0x1104], 2u32.to_be_bytes());
    }

    #[test]
    fn registering_a_vpa_marks_a_shared_processor_partition() {
        let mut v = mem();
        let mut m = GuestMemory::new(&mut v);
        let mut p = Vpa::default();
        p.register(f(REG_VPA), 0x1000, &mut m);
        assert_eq!(v[0x1009] & SHARED_PROC, SHARED_PROC);
    }

    fn dispatch(after: Undispatched, stolen: u64, tb: u64) -> Dispatch {
        Dispatch {
            after,
            stolen,
            tb,
            processor: 0x11,
            srr0: 0xc000_0000_0000_1234,
            srr1: 0x8000_0000_0000_1033,
            reason: DISPATCH_TIME_SLICE,
        }
    }

    #[test]
    fn a_dispatch_counts_steal_and_logs_what_the_guest_asked_for() {
        let mut v = mem();
        let mut m = GuestMemory::new(&mut v);
        let mut p = Vpa::default();
        // Nothing registered: nothing written.
        p.dispatched(&mut m, &dispatch(Undispatched::Preempted, 500, 9));
        p.register(f(REG_VPA), 0x1000, &mut m);
        p.register(f(REG_DTL), 0x2000, &mut m);
        // Preempted, but the guest has not enabled the log yet: steal and
        // the yield count only.
        p.dispatched(&mut m, &dispatch(Undispatched::Preempted, 500, 9));
        assert_eq!(p.yield_count(&m), Some(1));
        assert_eq!(m.read_be64(0x1000 + ENQUEUE_DISPATCH_TB), Some(500));
        assert_eq!(m.read_be64(0x1000 + DTL_IDX), Some(0));
        // Linux's native accounting: preemptions only.
        m.write_u8(0x1000 + DTL_ENABLE_MASK, DTL_LOG_PREEMPT)
            .unwrap();
        p.dispatched(&mut m, &dispatch(Undispatched::Ceded, 0, 10));
        assert_eq!(m.read_be64(0x1000 + DTL_IDX), Some(0), "cede not asked for");
        p.dispatched(&mut m, &dispatch(Undispatched::Preempted, 7000, 11));
        assert_eq!(m.read_be64(0x1000 + ENQUEUE_DISPATCH_TB), Some(7500));
        assert_eq!(m.read_be64(0x1000 + DTL_IDX), Some(1));
        let e = m.to_vec(0x2000, 48).unwrap();
        assert_eq!(e[0], DISPATCH_TIME_SLICE);
        assert_eq!(e[1], PREEMPT_TIME_SLICE);
        assert_eq!(e[2..4], 0x11u16.to_be_bytes());
        assert_eq!(e[4..8], 7000u32.to_be_bytes());
        assert_eq!(e[16..24], 11u64.to_be_bytes());
        assert_eq!(e[32..40], 0xc000_0000_0000_1234u64.to_be_bytes());
        assert_eq!(e[40..48], 0x8000_0000_0000_1033u64.to_be_bytes());
    }

    #[test]
    fn the_dtl_is_a_ring_and_a_long_steal_saturates_its_field() {
        let mut v = mem();
        let mut m = GuestMemory::new(&mut v);
        let mut p = Vpa::default();
        p.register(f(REG_VPA), 0x1000, &mut m);
        p.register(f(REG_DTL), 0x2000, &mut m);
        m.write_u8(0x1000 + DTL_ENABLE_MASK, DTL_LOG_CEDE | DTL_LOG_PREEMPT)
            .unwrap();
        // 4096 bytes hold 85 entries; the 86th goes back to the start.
        for i in 0..86u64 {
            p.dispatched(&mut m, &dispatch(Undispatched::Ceded, 1, 100 + i));
        }
        assert_eq!(m.read_be64(0x1000 + DTL_IDX), Some(86));
        assert_eq!(m.read_be64(0x2000 + 16), Some(185));
        assert_eq!(m.read_be64(0x2000 + 48 + 16), Some(101));
        assert_eq!(
            m.read_u8(0x2000 + 85 * 48).unwrap(),
            0,
            "nothing past the ring"
        );
        p.dispatched(&mut m, &dispatch(Undispatched::Preempted, 1 << 40, 300));
        assert_eq!(m.read_be32(0x2000 + 48 + 4), Some(u32::MAX));
        // Registering the DTL again starts from its beginning.
        // (Its size is in the first entry's place, as Linux writes it.)
        p.register(f(DEREG_DTL), 0, &mut m);
        m.write_be32(0x2004, 4096);
        assert_eq!(p.register(f(REG_DTL), 0x2000, &mut m), H_SUCCESS);
        p.dispatched(&mut m, &dispatch(Undispatched::Ceded, 1, 400));
        assert_eq!(m.read_be64(0x1000 + DTL_IDX), Some(1));
    }
}
