//! PAPR hypercalls that manage a guest's hashed page table: H_ENTER,
//! H_REMOVE, H_READ (incl. H_READ_4), H_PROTECT, H_BULK_REMOVE,
//! H_CLEAR_REF, H_CLEAR_MOD.
//!
//! Every argument is validated: a PTE index outside the HPT, an
//! unsupported page size, an RPN outside the guest's memory or a
//! cache-inhibited mapping of RAM is H_PARAMETER; nothing outside the
//! partition's HPT and memory is ever touched. Guest-physical RPNs are
//! translated to host-physical on insert and back on read. Each change to
//! a valid entry is followed by a TLB invalidation chosen by the VM's
//! `global_invalidates()` policy (tlb.rs).

use crate::tlb::{TlbOps, VmTlb};
use ppc64::hpte::{self, Hpte};

// Return codes (Linux arch/powerpc/include/asm/hvcall.h).
pub const H_SUCCESS: i64 = 0;
pub const H_BUSY: i64 = 1;
pub const H_HARDWARE: i64 = -1;
pub const H_FUNCTION: i64 = -2;
pub const H_PRIVILEGE: i64 = -3;
pub const H_PARAMETER: i64 = -4;
pub const H_PTEG_FULL: i64 = -6;
pub const H_NOT_FOUND: i64 = -7;
pub const H_RESOURCE: i64 = -16;
pub const H_P2: i64 = -55;
pub const H_P3: i64 = -56;
pub const H_P4: i64 = -57;
/// The first of PAPR's "unsupported flag" codes (QEMU's H_UNSUPPORTED_FLAG).
pub const H_UNSUPPORTED_FLAG: i64 = -256;

// Opcodes.
pub const H_REMOVE: u64 = 0x04;
pub const H_ENTER: u64 = 0x08;
pub const H_READ: u64 = 0x0c;
pub const H_CLEAR_MOD: u64 = 0x10;
pub const H_CLEAR_REF: u64 = 0x14;
pub const H_PROTECT: u64 = 0x18;
pub const H_BULK_REMOVE: u64 = 0x124;
pub const H_SET_SPRG0: u64 = 0x24;
pub const H_SET_DABR: u64 = 0x28;
pub const H_PAGE_INIT: u64 = 0x2c;
pub const H_GET_TERM_CHAR: u64 = 0x54;
pub const H_PUT_TERM_CHAR: u64 = 0x58;
pub const H_EOI: u64 = 0x64;
pub const H_CPPR: u64 = 0x68;
pub const H_IPI: u64 = 0x6c;
pub const H_IPOLL: u64 = 0x70;
pub const H_XIRR: u64 = 0x74;
pub const H_REGISTER_VPA: u64 = 0xdc;
pub const H_CEDE: u64 = 0xe0;
pub const H_CONFER: u64 = 0xe4;
pub const H_PROD: u64 = 0xe8;
pub const H_GET_CPU_CHARACTERISTICS: u64 = 0x1c8;
pub const H_XIRR_X: u64 = 0x2fc;
pub const H_SET_MODE: u64 = 0x31c;
/// The private RTAS hypercall QEMU and KVM use.
pub const H_RTAS: u64 = 0xf000;

/// Names of the hypercalls above (for reports); "unknown" otherwise.
pub fn name(nr: u64) -> &'static str {
    const NAMES: &[(u64, &str)] = &[
        (H_REMOVE, "H_REMOVE"),
        (H_ENTER, "H_ENTER"),
        (H_READ, "H_READ"),
        (H_CLEAR_MOD, "H_CLEAR_MOD"),
        (H_CLEAR_REF, "H_CLEAR_REF"),
        (H_PROTECT, "H_PROTECT"),
        (H_SET_SPRG0, "H_SET_SPRG0"),
        (H_SET_DABR, "H_SET_DABR"),
        (H_PAGE_INIT, "H_PAGE_INIT"),
        (H_GET_TERM_CHAR, "H_GET_TERM_CHAR"),
        (H_PUT_TERM_CHAR, "H_PUT_TERM_CHAR"),
        (H_EOI, "H_EOI"),
        (H_CPPR, "H_CPPR"),
        (H_IPI, "H_IPI"),
        (H_IPOLL, "H_IPOLL"),
        (H_XIRR, "H_XIRR"),
        (H_REGISTER_VPA, "H_REGISTER_VPA"),
        (H_CEDE, "H_CEDE"),
        (H_CONFER, "H_CONFER"),
        (H_PROD, "H_PROD"),
        (H_BULK_REMOVE, "H_BULK_REMOVE"),
        (H_GET_CPU_CHARACTERISTICS, "H_GET_CPU_CHARACTERISTICS"),
        (H_XIRR_X, "H_XIRR_X"),
        (H_SET_MODE, "H_SET_MODE"),
        (H_RTAS, "H_RTAS"),
    ];
    NAMES
        .iter()
        .find(|(n, _)| *n == nr)
        .map_or("unknown", |(_, s)| s)
}

// H_SET_MODE resources.
pub const H_SET_MODE_RESOURCE_SET_CIABR: u64 = 1;
pub const H_SET_MODE_RESOURCE_SET_DAWR: u64 = 2;
pub const H_SET_MODE_RESOURCE_ADDR_TRANS_MODE: u64 = 3;
pub const H_SET_MODE_RESOURCE_LE: u64 = 4;

// H_PAGE_INIT flags.
pub const H_ZERO_PAGE: u64 = 1 << (63 - 48);
pub const H_COPY_PAGE: u64 = 1 << (63 - 49);
pub const H_ICACHE_INVALIDATE: u64 = 1 << (63 - 40);
pub const H_ICACHE_SYNCHRONIZE: u64 = 1 << (63 - 41);

// Flags.
pub const H_EXACT: u64 = 1 << (63 - 24);
pub const H_READ_4: u64 = 1 << (63 - 26);
pub const H_AVPN: u64 = 1 << (63 - 32);
pub const H_ANDCOND: u64 = 1 << (63 - 33);

// H_BULK_REMOVE translation specifier high word.
pub const BULK_TYPE: u64 = 0xc000_0000_0000_0000;
pub const BULK_REQUEST: u64 = 0x4000_0000_0000_0000;
pub const BULK_RESPONSE: u64 = 0x8000_0000_0000_0000;
pub const BULK_END: u64 = 0xc000_0000_0000_0000;
pub const BULK_CODE: u64 = 0x3000_0000_0000_0000;
pub const BULK_SUCCESS: u64 = 0;
pub const BULK_NOT_FOUND: u64 = 0x1000_0000_0000_0000;
pub const BULK_PARM: u64 = 0x2000_0000_0000_0000;
pub const BULK_RC: u64 = 0x0c00_0000_0000_0000;
pub const BULK_RC_SHIFT: u32 = 51; // R,C (0x180) -> 0x0c00_0000_0000_0000
pub const BULK_FLAGS: u64 = 0x0300_0000_0000_0000;
pub const BULK_ANDCOND: u64 = 0x0100_0000_0000_0000;
pub const BULK_AVPN: u64 = 0x0200_0000_0000_0000;
pub const BULK_PTEX: u64 = 0x00ff_ffff_ffff_ffff;

/// A guest's HPT (big-endian doublewords in host memory) and memory.
pub struct Partition<'a> {
    /// The HPT as 2 u64 per entry, stored big-endian.
    pub hpt: &'a mut [u64],
    /// Host-physical base of guest memory (guest-physical 0).
    pub mem_base: u64,
    /// Bytes of guest memory.
    pub mem_size: u64,
    pub tlb: &'a VmTlb,
    /// Core running the hypercall and whether this VM's vcore runs there.
    pub core: usize,
    pub running_here: bool,
}

/// A hypercall's result: return code and up to 8 return values (r4..r11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Ret {
    pub code: i64,
    pub vals: [u64; 8],
}

fn code(c: i64) -> Ret {
    Ret {
        code: c,
        vals: [0; 8],
    }
}

fn ok(vals: &[u64]) -> Ret {
    let mut r = Ret::default();
    r.vals[..vals.len()].copy_from_slice(vals);
    r
}

/// The tlbie/tlbiel RB operand for an HPTE at `index` (ISA 2.07 tlbie,
/// following the AVA/L/LP layout KVM's compute_tlbie_rb uses).
pub fn tlbie_rb(e: Hpte, index: u64) -> u64 {
    let v = e.v;
    let Some(ps) = e.page_size() else { return 0 };
    let shift = ps.shift();
    // AVA from the AVPN, then the B (segment size) field.
    let mut rb = (v & !0x7f) << 16;
    rb |= (v >> (hpte::HPTE_V_SSIZE_SHIFT - 8)) & 0x300;
    // Low VA bits the AVPN lacks come from the hash: PTEG index ^ VSID.
    let mut va_low = index >> 3;
    if v & hpte::HPTE_V_SECONDARY != 0 {
        va_low = !va_low;
    }
    va_low ^= if v & hpte::HPTE_V_1TB_SEG != 0 {
        v >> 24
    } else {
        v >> 12
    };
    va_low &= 0x7ff;
    if shift == 12 {
        rb |= va_low << 12;
    } else {
        rb |= (va_low << shift) & 0x7f_f000;
        rb &= !((1u64 << shift) - 1) | 0x3ff;
        rb |= 1; // L
        rb |= e.r & hpte::HPTE_R_LP & ((1u64 << shift) - 1); // LP
    }
    rb
}

impl Partition<'_> {
    fn entries(&self) -> u64 {
        self.hpt.len() as u64 / 2
    }

    fn read(&self, i: u64) -> Hpte {
        Hpte::new(
            u64::from_be(self.hpt[2 * i as usize]),
            u64::from_be(self.hpt[2 * i as usize + 1]),
        )
    }

    /// Writes R then V (the caller issues the barriers on hardware; the
    /// firmware's HPT lives in plain memory that the MMU reads).
    fn write(&mut self, i: u64, e: Hpte) {
        self.hpt[2 * i as usize + 1] = e.r.to_be();
        self.hpt[2 * i as usize] = e.v.to_be();
    }

    fn invalidate(&self, ops: &mut impl TlbOps, flags: u64, e: Hpte, i: u64) {
        let running = self.running_here.then_some(self.core);
        self.tlb
            .invalidate(ops, self.core, running, flags, tlbie_rb(e, i));
    }

    /// Host RPN -> guest RPN for what the guest reads back.
    fn to_guest(&self, e: Hpte) -> Hpte {
        if !e.is_valid() {
            return e;
        }
        let Some(ps) = e.page_size() else { return e };
        let host = e.real_address(ps);
        let gpa = host.wrapping_sub(self.mem_base);
        Hpte::new(e.v, hpte::hpte_r_with_rpn(e.r, gpa, ps).unwrap_or(e.r))
    }

    /// H_ENTER(flags, pte_index, v, r) -> index used.
    pub fn h_enter(&mut self, flags: u64, index: u64, v: u64, r: u64) -> Ret {
        if index >= self.entries() {
            return code(H_PARAMETER);
        }
        let Some(ps) = hpte::page_size(v, r) else {
            return code(H_PARAMETER);
        };
        // Hardware segment sizes only (B = 0 or 1).
        if v & hpte::HPTE_V_SSIZE > hpte::HPTE_V_1TB_SEG {
            return code(H_PARAMETER);
        }
        let gpa = Hpte::new(v, r).real_address(ps);
        if gpa
            .checked_add(ps.bytes())
            .is_none_or(|end| end > self.mem_size)
        {
            return code(H_PARAMETER);
        }
        // Guest memory is RAM: refuse cache-inhibited or guarded mappings.
        if r & (hpte::HPTE_R_I | hpte::HPTE_R_G) != 0 {
            return code(H_PARAMETER);
        }
        let Some(host_r) = hpte::hpte_r_with_rpn(r, self.mem_base + gpa, ps) else {
            return code(H_PARAMETER);
        };
        let slot = if flags & H_EXACT != 0 {
            if self.read(index).is_valid() {
                return code(H_PTEG_FULL);
            }
            index
        } else {
            let base = index & !7;
            match (base..base + 8).find(|i| !self.read(*i).is_valid()) {
                Some(i) => i,
                None => return code(H_PTEG_FULL),
            }
        };
        self.write(slot, Hpte::new(v | hpte::HPTE_V_VALID, host_r));
        ok(&[slot])
    }

    /// Finds a valid entry at `index` matching the H_AVPN/H_ANDCOND test.
    fn matching(&self, flags: u64, index: u64, avpn: u64) -> Result<Hpte, i64> {
        if index >= self.entries() {
            return Err(H_PARAMETER);
        }
        let e = self.read(index);
        if !e.is_valid()
            || (flags & H_AVPN != 0 && (e.v & !0x7f) != avpn)
            || (flags & H_ANDCOND != 0 && e.v & avpn != 0)
        {
            return Err(H_NOT_FOUND);
        }
        Ok(e)
    }

    /// H_REMOVE(flags, pte_index, avpn) -> old (v, r).
    pub fn h_remove(&mut self, ops: &mut impl TlbOps, flags: u64, index: u64, avpn: u64) -> Ret {
        match self.matching(flags, index, avpn) {
            Err(c) => code(c),
            Ok(e) => {
                self.write(index, Hpte::new(0, 0));
                self.invalidate(ops, flags, e, index);
                let g = self.to_guest(e);
                ok(&[g.v, g.r])
            }
        }
    }

    /// H_READ(flags, pte_index) -> (v, r), or four entries with H_READ_4.
    pub fn h_read(&self, flags: u64, index: u64) -> Ret {
        if index >= self.entries() {
            return code(H_PARAMETER);
        }
        let (first, n) = if flags & H_READ_4 != 0 {
            (index & !3, 4)
        } else {
            (index, 1)
        };
        let mut r = Ret::default();
        for k in 0..n {
            let g = self.to_guest(self.read(first + k));
            r.vals[2 * k as usize] = g.v;
            r.vals[2 * k as usize + 1] = g.r;
        }
        r
    }

    /// H_PROTECT(flags, pte_index, avpn): new pp0/pp/N/key from `flags`.
    pub fn h_protect(&mut self, ops: &mut impl TlbOps, flags: u64, index: u64, avpn: u64) -> Ret {
        let e = match self.matching(flags, index, avpn) {
            Err(c) => return code(c),
            Ok(e) => e,
        };
        let mask = hpte::HPTE_R_PP0 | hpte::HPTE_R_PP | hpte::HPTE_R_N | hpte::HPTE_R_KEY;
        let mut bits = (flags << 55) & hpte::HPTE_R_PP0;
        bits |= (flags << 48) & hpte::HPTE_R_KEY_HI;
        bits |= flags & (hpte::HPTE_R_PP | hpte::HPTE_R_N | hpte::HPTE_R_KEY_LO);
        let new = Hpte::new(e.v, (e.r & !mask) | bits);
        // Invalidate the old translation before the new one is visible.
        self.write(index, Hpte::new(0, e.r));
        self.invalidate(ops, flags, e, index);
        self.write(index, new);
        ok(&[])
    }

    fn clear_bit(&mut self, ops: &mut impl TlbOps, index: u64, bit: u64) -> Ret {
        let e = match self.matching(0, index, 0) {
            Err(c) => return code(c),
            Ok(e) => e,
        };
        if e.r & bit != 0 {
            self.write(index, Hpte::new(e.v, e.r & !bit));
            self.invalidate(ops, 0, e, index);
        }
        ok(&[self.to_guest(e).r])
    }

    /// H_CLEAR_REF(flags, pte_index) -> old r.
    pub fn h_clear_ref(&mut self, ops: &mut impl TlbOps, index: u64) -> Ret {
        self.clear_bit(ops, index, hpte::HPTE_R_R)
    }

    /// H_CLEAR_MOD(flags, pte_index) -> old r.
    pub fn h_clear_mod(&mut self, ops: &mut impl TlbOps, index: u64) -> Ret {
        self.clear_bit(ops, index, hpte::HPTE_R_C)
    }

    /// H_BULK_REMOVE: up to four (specifier, avpn) pairs in `args`, each
    /// answered in place (returned in the same registers).
    pub fn h_bulk_remove(&mut self, ops: &mut impl TlbOps, args: [u64; 8]) -> Ret {
        let mut out = args;
        for k in 0..4 {
            let tsh = args[2 * k];
            match tsh & BULK_TYPE {
                BULK_END => break,
                BULK_REQUEST => {}
                _ => {
                    return Ret {
                        code: H_PARAMETER,
                        vals: out,
                    }
                }
            }
            let flags = match tsh & BULK_FLAGS {
                0 => 0,
                BULK_ANDCOND => H_ANDCOND,
                BULK_AVPN => H_AVPN,
                _ => {
                    out[2 * k] = (tsh & !(BULK_TYPE | BULK_CODE)) | BULK_RESPONSE | BULK_PARM;
                    continue;
                }
            };
            let index = tsh & BULK_PTEX;
            let r = self.h_remove(ops, flags, index, args[2 * k + 1]);
            let (c, rc) = match r.code {
                H_SUCCESS => (
                    BULK_SUCCESS,
                    (r.vals[1] & (hpte::HPTE_R_R | hpte::HPTE_R_C)) << BULK_RC_SHIFT,
                ),
                H_NOT_FOUND => (BULK_NOT_FOUND, 0),
                _ => (BULK_PARM, 0),
            };
            out[2 * k] = (tsh & !(BULK_TYPE | BULK_CODE | BULK_RC)) | BULK_RESPONSE | c | rc;
        }
        Ret {
            code: H_SUCCESS,
            vals: out,
        }
    }
}

#[cfg(test)]
mod tests;
