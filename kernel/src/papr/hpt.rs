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
use core::sync::atomic::{fence, AtomicU64, Ordering};
use papr_abi::*;
use ppc64::hpte::{self, Hpte};

/// Software lock bit in an HPTE's first doubleword (one of the
/// architecture's software-use bits 57:60, which the MMU ignores; KVM-HV's
/// HPTE_V_HVLOCK). Held while a hypercall changes the entry, so vcpus of
/// one VM (sibling threads, other cores) can update the table at once.
pub const HPTE_V_HVLOCK: u64 = 0x40;

/// A guest's HPT (big-endian doublewords in host memory) and memory.
/// Shared by every vcpu of the VM: entries are changed only under their
/// lock, in the architecture's store order.
pub struct Partition<'a> {
    /// The HPT: each entry its 2 doublewords (V, R), stored big-endian.
    pub hpt: &'a [[AtomicU64; 2]],
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

#[inline]
fn code(c: i64) -> Ret {
    Ret {
        code: c,
        vals: [0; 8],
    }
}

/// Success with the first return values (the rest zero).
#[inline(always)]
fn ok<const N: usize>(vals: [u64; N]) -> Ret {
    let mut v = [0; 8];
    let mut i = 0;
    while i < N {
        v[i] = vals[i];
        i += 1;
    }
    Ret { code: 0, vals: v }
}

/// The tlbie/tlbiel RB operand for an HPTE at `index` (ISA 2.07 tlbie,
/// following the AVA/L/LP layout KVM's compute_tlbie_rb uses).
#[inline(always)]
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

/// One HPTE, locked by this hypercall: unlocked when dropped (unchanged)
/// or by [`Locked::finish`] (with its new value).
struct Locked<'a> {
    v: &'a AtomicU64,
    r: &'a AtomicU64,
    /// V as it was when locked, still big-endian, without the lock bit:
    /// decoded only where a caller needs it (a byte swap is a dozen
    /// instructions on POWER8).
    raw_v: u64,
    done: bool,
}

impl Locked<'_> {
    #[inline]
    fn is_valid(&self) -> bool {
        self.raw_v & hpte::HPTE_V_VALID.to_be() != 0
    }

    /// V (without the lock bit).
    #[inline]
    fn v(&self) -> u64 {
        // Read again byte-reversed (one instruction) rather than swapping
        // `raw_v`: only the lock bit differs, and it is ours.
        ppc64::bedw::load(self.v) & !HPTE_V_HVLOCK
    }

    /// The entry: V as locked, R as it is now.
    #[inline]
    fn entry(&self) -> Hpte {
        Hpte::new(self.v(), self.current_r())
    }

    /// Makes the entry invalid to the MMU, keeping the lock (the first
    /// step of deleting or changing a valid entry: V := 0, then a full
    /// barrier, before the TLB invalidation).
    #[inline]
    fn invalidate(&mut self) {
        self.v.store(HPTE_V_HVLOCK.to_be(), Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// V := 0 with the lock kept, without the barrier (for a batch of
    /// entries that share one), and the lock handed to the caller, who
    /// ends it with [`Partition::finish_held`].
    #[inline]
    fn clear_valid_and_hold(mut self) {
        self.v.store(HPTE_V_HVLOCK.to_be(), Ordering::Relaxed);
        self.done = true;
    }

    /// R as it is now: with the entry invalid and its translations gone
    /// from the TLBs, including the reference and change bits the MMU set
    /// meanwhile.
    #[inline]
    fn current_r(&self) -> u64 {
        ppc64::bedw::load(self.r)
    }

    /// Stores `e` and releases the lock: R first, then a full barrier (the
    /// MMU must never see a valid V with a stale R), then V.
    #[inline]
    fn finish(mut self, e: Hpte) {
        ppc64::bedw::store(self.r, e.r);
        // Also makes the V store a release (it unlocks the entry).
        fence(Ordering::SeqCst);
        ppc64::bedw::store(self.v, e.v & !HPTE_V_HVLOCK);
        self.done = true;
    }

    /// Clears `bits` of R in place, atomically with any R/C update by the
    /// MMU (the entry stays valid); returns R before.
    #[inline]
    fn clear_r_bits(&self, bits: u64) -> u64 {
        u64::from_be(self.r.fetch_and(!bits.to_be(), Ordering::AcqRel))
    }
}

impl Drop for Locked<'_> {
    #[inline]
    fn drop(&mut self) {
        if !self.done {
            let v = self.v.load(Ordering::Relaxed);
            self.v.store(v & !HPTE_V_HVLOCK.to_be(), Ordering::Release);
        }
    }
}

impl Partition<'_> {
    #[inline]
    fn entries(&self) -> u64 {
        self.hpt.len() as u64
    }

    /// Entry `i` as it is (for tests).
    #[cfg(test)]
    fn read(&self, i: u64) -> Hpte {
        self.lock(i).entry()
    }

    /// Locks entry `i` (waiting while another vcpu holds it) and returns
    /// it; `i` must be below [`Partition::entries`].
    /// Entry `i`, invalidated and held by [`Locked::clear_valid_and_hold`]
    /// and its translations gone: its final R (with the MMU's R/C bits),
    /// then the entry cleared and unlocked.
    #[inline(always)]
    fn finish_held(&self, i: u64) -> u64 {
        // The lock is held already: the guard is only taken up again.
        let l = Locked {
            v: &self.hpt[i as usize][0],
            r: &self.hpt[i as usize][1],
            raw_v: 0,
            done: false,
        };
        let old_r = l.current_r();
        l.finish(Hpte::new(0, 0));
        old_r
    }

    /// One attempt at locking entry `i` (below [`Partition::entries`]):
    /// `None` if another holder has it (or the attempt failed).
    #[inline(always)]
    fn try_lock(&self, i: u64) -> Option<Locked<'_>> {
        let [v, r] = &self.hpt[i as usize];
        // The entry stays big-endian here: the lock bit is tested and set
        // with a byte-swapped constant.
        let lock_be = HPTE_V_HVLOCK.to_be();
        let raw = v.load(Ordering::Relaxed);
        if raw & lock_be != 0
            || v.compare_exchange_weak(raw, raw | lock_be, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        // The lock bit is visible before any store of the change that
        // follows (what H_READ's lock-free snapshot relies on to never see
        // half a change). POWER's acquiring CAS ends in the `lwsync` that
        // does it already; the memory model asks for the fence.
        fence(Ordering::Release);
        // Built only once locked: a guard that is dropped unlocks.
        Some(Locked {
            v,
            r,
            raw_v: raw,
            done: false,
        })
    }

    #[inline(always)]
    fn lock(&self, i: u64) -> Locked<'_> {
        loop {
            if let Some(l) = self.try_lock(i) {
                return l;
            }
            core::hint::spin_loop();
        }
    }

    #[inline(always)]
    fn invalidate(&self, ops: &mut impl TlbOps, flags: u64, e: Hpte, i: u64) {
        let running = self.running_here.then_some(self.core);
        self.tlb
            .invalidate(ops, self.core, running, flags, tlbie_rb(e, i));
    }

    /// What the guest reads back of entry `e`: the host RPN made the
    /// guest's, and never a host address. Every valid entry was made by
    /// H_ENTER or the VRMA set-up with the guest's RPN plus `mem_base`,
    /// and guest memory is a buddy block of at least 16 MiB aligned to its
    /// size: `mem_base` has no bit below the largest page size, so
    /// subtracting it from R changes the RPN alone (no borrow; the LP bits
    /// and flags below stay as they are). An invalid entry reads back with
    /// R 0, and so does a valid V whose R does not lie in guest memory:
    /// only H_READ's lock-free snapshot can pair them, when the guest
    /// changes that entry on another vcpu meanwhile (see
    /// [`Partition::snapshot`]).
    #[inline(always)]
    fn to_guest(&self, e: Hpte) -> Hpte {
        debug_assert!(self.mem_base.is_multiple_of(hpte::PageSize::P16M.bytes()));
        let r = e.r.wrapping_sub(self.mem_base);
        if !e.is_valid() || r & hpte::HPTE_R_RPN >= self.mem_size {
            return Hpte::new(e.v, 0);
        }
        Hpte::new(e.v, r)
    }

    /// H_ENTER(flags, pte_index, v, r) -> index used.
    #[inline(always)]
    pub fn h_enter(&self, flags: u64, index: u64, v: u64, r: u64) -> Ret {
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
        // The lock bit is the hypervisor's, never the guest's.
        let new = Hpte::new((v & !HPTE_V_HVLOCK) | hpte::HPTE_V_VALID, host_r);
        let slots = if flags & H_EXACT != 0 {
            index..index + 1
        } else {
            (index & !7)..(index & !7) + 8
        };
        for slot in slots {
            let l = self.lock(slot);
            if !l.is_valid() {
                l.finish(new);
                return ok([slot]);
            }
        }
        code(H_PTEG_FULL)
    }

    /// Locks the valid entry at `index` if it matches the H_AVPN /
    /// H_ANDCOND test.
    #[inline(always)]
    fn matching(&self, flags: u64, index: u64, avpn: u64) -> Result<Locked<'_>, i64> {
        if index >= self.entries() {
            return Err(H_PARAMETER);
        }
        let l = self.lock(index);
        if !l.is_valid()
            || (flags & H_AVPN != 0 && (l.v() & !0x7f) != avpn)
            || (flags & H_ANDCOND != 0 && l.v() & avpn != 0)
        {
            return Err(H_NOT_FOUND);
        }
        Ok(l)
    }

    /// H_REMOVE(flags, pte_index, avpn) -> old (v, r).
    #[inline(always)]
    pub fn h_remove(&self, ops: &mut impl TlbOps, flags: u64, index: u64, avpn: u64) -> Ret {
        match self.matching(flags, index, avpn) {
            Err(c) => code(c),
            Ok(mut l) => {
                // V := 0, barrier, TLB invalidation (ISA "deleting a page
                // table entry"); then the final R with the MMU's R/C.
                let e = l.entry();
                l.invalidate();
                self.invalidate(ops, flags, e, index);
                let old = Hpte::new(e.v, l.current_r());
                l.finish(Hpte::new(0, 0));
                let g = self.to_guest(old);
                ok([g.v, g.r])
            }
        }
    }

    /// H_READ(flags, pte_index) of one entry: (v, r). H_READ_4 in the
    /// flags is [`Partition::h_read_4`] (the caller tells them apart, so
    /// each path is its own function).
    #[inline(always)]
    pub fn h_read_1(&self, index: u64) -> Ret {
        if index >= self.entries() {
            return code(H_PARAMETER);
        }
        let g = self.to_guest(self.snapshot(index));
        ok([g.v, g.r])
    }

    /// H_READ with H_READ_4: the four entries of the group `index` is in.
    #[inline(always)]
    pub fn h_read_4(&self, index: u64) -> Ret {
        if index >= self.entries() {
            return code(H_PARAMETER);
        }
        let first = index & !3;
        let read = |i| {
            let g = self.to_guest(self.snapshot(i));
            [g.v, g.r]
        };
        let ([a, b], [c, d], [e, f], [g, h]) = (
            read(first),
            read(first + 1),
            read(first + 2),
            read(first + 3),
        );
        ok([a, b, c, d, e, f, g, h])
    }

    /// Entry `i` (below [`Partition::entries`]) without taking its lock
    /// (H_READ changes nothing; KVM-HV reads without the lock too): V,
    /// then R, then V again, until V was unlocked and unchanged around the
    /// R load. A holder sets the lock bit in V before it changes anything
    /// and clears it with its last store, so this never returns an entry
    /// halfway through one change. It can still pair a V with the R of
    /// another state of the entry when several changes by other vcpus of
    /// the guest bring V back to the same value during the read (the
    /// guest racing itself, as a read on KVM-HV can); [`Partition::to_guest`]
    /// makes sure that such an R is never a host address.
    #[inline(always)]
    fn snapshot(&self, i: u64) -> Hpte {
        let [v, r] = &self.hpt[i as usize];
        loop {
            let v1 = ppc64::bedw::load(v);
            if v1 & HPTE_V_HVLOCK == 0 {
                fence(Ordering::Acquire);
                let r = ppc64::bedw::load(r);
                fence(Ordering::Acquire);
                if ppc64::bedw::load(v) == v1 {
                    return Hpte::new(v1, r);
                }
            }
            core::hint::spin_loop();
        }
    }

    /// H_PROTECT(flags, pte_index, avpn): new pp0/pp/N/key from `flags`.
    #[inline(always)]
    pub fn h_protect(&self, ops: &mut impl TlbOps, flags: u64, index: u64, avpn: u64) -> Ret {
        let mut l = match self.matching(flags, index, avpn) {
            Err(c) => return code(c),
            Ok(l) => l,
        };
        let e = l.entry();
        let mask = hpte::HPTE_R_PP0 | hpte::HPTE_R_PP | hpte::HPTE_R_N | hpte::HPTE_R_KEY;
        let mut bits = (flags << 55) & hpte::HPTE_R_PP0;
        bits |= (flags << 48) & hpte::HPTE_R_KEY_HI;
        bits |= flags & (hpte::HPTE_R_PP | hpte::HPTE_R_N | hpte::HPTE_R_KEY_LO);
        // Invalidate the old translation before the new one is visible
        // (the entry stays locked, and invalid to the MMU, meanwhile);
        // the new R keeps the R/C bits the MMU set up to then.
        l.invalidate();
        self.invalidate(ops, flags, e, index);
        let r = l.current_r();
        l.finish(Hpte::new(e.v, (r & !mask) | bits));
        ok([])
    }

    #[inline(always)]
    fn clear_bit(&self, ops: &mut impl TlbOps, index: u64, bit: u64) -> Ret {
        let l = match self.matching(0, index, 0) {
            Err(c) => return code(c),
            Ok(l) => l,
        };
        // In place and atomically: the entry stays valid, and an R/C
        // update the MMU makes meanwhile is not lost.
        let old = l.clear_r_bits(bit);
        let e = Hpte::new(l.v(), old);
        if old & bit != 0 {
            self.invalidate(ops, 0, e, index);
        }
        drop(l);
        ok([self.to_guest(e).r])
    }

    /// H_CLEAR_REF(flags, pte_index) -> old r.
    pub fn h_clear_ref(&self, ops: &mut impl TlbOps, index: u64) -> Ret {
        self.clear_bit(ops, index, hpte::HPTE_R_R)
    }

    /// H_CLEAR_MOD(flags, pte_index) -> old r.
    pub fn h_clear_mod(&self, ops: &mut impl TlbOps, index: u64) -> Ret {
        self.clear_bit(ops, index, hpte::HPTE_R_C)
    }

    /// H_BULK_REMOVE: up to four (specifier, avpn) pairs in `args`, each
    /// answered in place (returned in the same registers). A malformed
    /// type, both match conditions at once or an entry beyond the HPT
    /// ends the call with H_PARAMETER; a request that matches nothing is
    /// answered "not found" and the others go on. As KVM-HV does,
    /// the matching entries are invalidated together: each V := 0, one
    /// barrier, one batch of TLB invalidations, then each R read back and
    /// the entry cleared. To never wait for an entry while holding
    /// another (two vcpus removing overlapping lists), an entry another
    /// holder has ends the batch; it is then waited for alone.
    #[inline(always)]
    pub fn h_bulk_remove(&self, ops: &mut impl TlbOps, args: [u64; 8]) -> Ret {
        let mut vals = args;
        let code = self.h_bulk_remove_in_place(ops, &mut vals);
        Ret { code, vals }
    }

    /// [`Partition::h_bulk_remove`] on the registers themselves (r4-r11):
    /// each request is answered where it was read.
    #[inline(always)]
    pub fn h_bulk_remove_in_place(&self, ops: &mut impl TlbOps, out: &mut [u64; 8]) -> i64 {
        let respond = |tsh: u64, c: u64, rc: u64| {
            (tsh & !(BULK_TYPE | BULK_CODE | BULK_RC)) | BULK_RESPONSE | c | rc
        };
        let mut k = 0;
        let mut code = H_SUCCESS;
        let mut end = false;
        while k < 4 && !end {
            // The batch: request slot and HPTE index of each entry held.
            let mut at = [0usize; 4];
            let mut held = [0u64; 4];
            let mut rbs = [0u64; 4];
            let mut n = 0;
            while k < 4 {
                let tsh = out[2 * k];
                match tsh & BULK_TYPE {
                    BULK_END => {
                        end = true;
                        break;
                    }
                    BULK_REQUEST => {}
                    _ => {
                        code = H_PARAMETER;
                        end = true;
                        break;
                    }
                }
                let index = tsh & BULK_PTEX;
                let flags = match tsh & BULK_FLAGS {
                    0 => Some(0),
                    BULK_ANDCOND => Some(H_ANDCOND),
                    BULK_AVPN => Some(H_AVPN),
                    _ => None,
                };
                // Both conditions at once, or an entry beyond the HPT:
                // answered "parameter error" in its slot, and the call
                // stops there with H_PARAMETER (as KVM-HV and QEMU's
                // pseries do; the entries before it are removed).
                let Some(flags) = flags.filter(|_| index < self.entries()) else {
                    out[2 * k] = respond(tsh, BULK_PARM, 0);
                    code = H_PARAMETER;
                    end = true;
                    break;
                };
                let l = if n == 0 {
                    self.lock(index)
                } else {
                    match self.try_lock(index) {
                        Some(l) => l,
                        // Taken (maybe by this batch): finish the batch
                        // first, then wait for it holding nothing.
                        None => break,
                    }
                };
                let avpn = out[2 * k + 1];
                if !l.is_valid()
                    || (flags & H_AVPN != 0 && (l.v() & !0x7f) != avpn)
                    || (flags & H_ANDCOND != 0 && l.v() & avpn != 0)
                {
                    out[2 * k] = respond(tsh, BULK_NOT_FOUND, 0);
                    k += 1;
                    continue;
                }
                rbs[n] = tlbie_rb(l.entry(), index);
                l.clear_valid_and_hold();
                (at[n], held[n]) = (k, index);
                n += 1;
                k += 1;
            }
            if n == 0 {
                continue;
            }
            fence(Ordering::SeqCst);
            let running = self.running_here.then_some(self.core);
            self.tlb
                .invalidate_batch(ops, self.core, running, &rbs[..n]);
            for j in 0..n {
                let r = self.finish_held(held[j]);
                let rc = (r & (hpte::HPTE_R_R | hpte::HPTE_R_C)) << BULK_RC_SHIFT;
                out[2 * at[j]] = respond(out[2 * at[j]], BULK_SUCCESS, rc);
            }
        }
        code
    }
}

#[cfg(test)]
mod tests;
