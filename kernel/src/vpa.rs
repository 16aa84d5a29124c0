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
use crate::hcall::{H_PARAMETER, H_RESOURCE, H_SUCCESS};

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
            (REG_VPA, Some(a)) if a.len >= VPA_MIN => self.vpa = Some(a),
            (REG_DTL, Some(mut a)) if a.len >= DTL_ENTRY => {
                if self.vpa.is_none() {
                    return H_RESOURCE;
                }
                a.len -= a.len % DTL_ENTRY;
                self.dtl = Some(a);
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

    /// The yield count, if a VPA is registered.
    pub fn yield_count(&self, mem: &mut GuestMemory<'_>) -> Option<u32> {
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
        assert_eq!(p.yield_count(&mut m), None);
        p.register(f(REG_VPA), 0x1000, &mut m);
        p.bump_yield_count(&mut m);
        assert_eq!(p.yield_count(&mut m), Some(1));
        p.bump_yield_count(&mut m);
        assert_eq!(p.yield_count(&mut m), Some(2));
        assert_eq!(v[0x1100..0x1104], 2u32.to_be_bytes());
    }
}
