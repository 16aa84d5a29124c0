//! Logical partition IDs.
//!
//! POWER8 LPIDR is 12 bits: LPIDs 0..=4095. LPID 0 is the hypervisor's own
//! (the value LPIDR holds while the hypervisor runs), and the highest,
//! 4095, is kept back for the partition-switch sequence, as KVM keeps
//! `LPID_RSVD` (0xfff on POWER8, Linux `arch/powerpc/include/asm/reg.h`).
//! Guests get 1..=4094, lowest free first; a freed LPID is handed out again.
//!
//! Reuse and the TLB: translations are tagged with the LPID, so entries a
//! previous partition left behind must be invalidated on every core before
//! a recycled LPID runs again. That is the caller's job.
//!
//! No locking inside: the caller owns the allocator behind its own lock.

use core::fmt;
pub use ppc64::sizes::{LPID_BITS, NR_LPIDS, RESERVED_LPID};

/// The hypervisor's own LPID.
pub const HOST_LPID: u32 = 0;
/// Lowest LPID a guest can get.
pub const FIRST_GUEST_LPID: u32 = HOST_LPID + 1;
/// Highest LPID a guest can get.
pub const LAST_GUEST_LPID: u32 = RESERVED_LPID - 1;
/// How many guests can hold an LPID at once (4094).
pub const GUEST_LPIDS: u32 = LAST_GUEST_LPID - FIRST_GUEST_LPID + 1;

const WORDS: usize = (NR_LPIDS / 64) as usize;

/// Whether `lpid` is one of the two that are never handed out.
pub const fn is_reserved(lpid: u32) -> bool {
    lpid == HOST_LPID || lpid == RESERVED_LPID
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LpidError {
    /// All 4094 guest LPIDs are in use.
    Exhausted,
    /// The host's or the partition-switch LPID: never allocated or freed.
    Reserved(u32),
    /// Not a 12-bit LPID.
    OutOfRange(u32),
    /// A guest LPID that is not currently allocated (e.g. a double free).
    NotAllocated(u32),
}

impl fmt::Display for LpidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LpidError::Exhausted => write!(f, "all {GUEST_LPIDS} guest LPIDs are in use"),
            LpidError::Reserved(l) => write!(f, "LPID {l} is reserved"),
            LpidError::OutOfRange(l) => write!(f, "LPID {l} is out of range (max {RESERVED_LPID})"),
            LpidError::NotAllocated(l) => write!(f, "LPID {l} is not allocated"),
        }
    }
}

/// The set of LPIDs handed out to guests: one bit per LPID.
#[derive(Clone)]
pub struct LpidAllocator {
    /// Bit `lpid % 64` of word `lpid / 64` is set while `lpid` is allocated.
    /// The bits of the two reserved LPIDs stay clear.
    used: [u64; WORDS],
    allocated: u32,
}

impl Default for LpidAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for LpidAllocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LpidAllocator")
            .field("allocated", &self.allocated)
            .field("available", &self.available())
            .finish()
    }
}

/// Bits of word `w` that are never free for a guest.
const fn reserved_bits(w: usize) -> u64 {
    let mut bits = 0;
    if w == (HOST_LPID / 64) as usize {
        bits |= 1 << (HOST_LPID % 64);
    }
    if w == (RESERVED_LPID / 64) as usize {
        bits |= 1 << (RESERVED_LPID % 64);
    }
    bits
}

impl LpidAllocator {
    /// No guest LPID allocated. `const`, so it can initialise a static.
    pub const fn new() -> Self {
        LpidAllocator {
            used: [0; WORDS],
            allocated: 0,
        }
    }

    /// The lowest free guest LPID, now allocated.
    pub fn alloc(&mut self) -> Result<u32, LpidError> {
        if self.allocated == GUEST_LPIDS {
            return Err(LpidError::Exhausted);
        }
        for (w, word) in self.used.iter_mut().enumerate() {
            let busy = *word | reserved_bits(w);
            if busy != u64::MAX {
                let bit = (!busy).trailing_zeros();
                *word |= 1 << bit;
                self.allocated += 1;
                return Ok(w as u32 * 64 + bit);
            }
        }
        // The count says there is a free one; the bitmap disagrees.
        debug_assert!(false, "LPID count and bitmap disagree");
        Err(LpidError::Exhausted)
    }

    /// Gives `lpid` back. Errors (nothing changes): a reserved LPID, one
    /// beyond 12 bits, or one that is not allocated.
    pub fn free(&mut self, lpid: u32) -> Result<(), LpidError> {
        if lpid >= NR_LPIDS {
            return Err(LpidError::OutOfRange(lpid));
        }
        if is_reserved(lpid) {
            return Err(LpidError::Reserved(lpid));
        }
        let (w, b) = Self::split(lpid);
        if self.used[w] & b == 0 {
            return Err(LpidError::NotAllocated(lpid));
        }
        self.used[w] &= !b;
        self.allocated -= 1;
        Ok(())
    }

    /// Whether `lpid` is currently allocated to a guest (false for the
    /// reserved LPIDs and for out-of-range values).
    pub fn is_allocated(&self, lpid: u32) -> bool {
        if lpid >= NR_LPIDS {
            return false;
        }
        let (w, b) = Self::split(lpid);
        self.used[w] & b != 0
    }

    /// How many more guest LPIDs can be allocated.
    pub fn available(&self) -> u32 {
        GUEST_LPIDS - self.allocated
    }

    /// How many guest LPIDs are allocated.
    pub fn allocated(&self) -> u32 {
        self.allocated
    }

    fn split(lpid: u32) -> (usize, u64) {
        ((lpid / 64) as usize, 1u64 << (lpid % 64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static _CONST_INIT: LpidAllocator = LpidAllocator::new();

    #[test]
    fn constants() {
        assert_eq!(NR_LPIDS, 4096);
        assert_eq!(HOST_LPID, 0);
        assert_eq!(RESERVED_LPID, 0xfff);
        assert_eq!((FIRST_GUEST_LPID, LAST_GUEST_LPID), (1, 4094));
        assert_eq!(GUEST_LPIDS, 4094);
        assert!(is_reserved(0) && is_reserved(4095));
        assert!(!is_reserved(1) && !is_reserved(4094));
    }

    #[test]
    fn first_lpids_are_1_2_3() {
        let mut a = LpidAllocator::new();
        assert_eq!(a.available(), 4094);
        assert_eq!(a.alloc(), Ok(1));
        assert_eq!(a.alloc(), Ok(2));
        assert_eq!(a.alloc(), Ok(3));
        assert!(a.is_allocated(1) && a.is_allocated(3));
        assert!(!a.is_allocated(4));
        assert_eq!((a.allocated(), a.available()), (3, 4091));
    }

    #[test]
    fn exhaustion_after_4094_and_never_0_or_4095() {
        let mut a = LpidAllocator::new();
        let mut seen = [false; NR_LPIDS as usize];
        for i in 0..GUEST_LPIDS {
            let l = a.alloc().unwrap();
            assert_eq!(l, i + 1, "lowest free first");
            assert!(!is_reserved(l));
            assert!(!seen[l as usize], "LPID {l} handed out twice");
            seen[l as usize] = true;
        }
        assert!(!seen[0] && !seen[4095]);
        assert_eq!(a.available(), 0);
        assert_eq!(a.alloc(), Err(LpidError::Exhausted));
        assert_eq!(a.alloc(), Err(LpidError::Exhausted));
        assert!(!a.is_allocated(HOST_LPID));
        assert!(!a.is_allocated(RESERVED_LPID));

        // One freed in the middle is the only one to come back.
        a.free(2000).unwrap();
        assert_eq!(a.available(), 1);
        assert_eq!(a.alloc(), Ok(2000));
        assert_eq!(a.alloc(), Err(LpidError::Exhausted));
        // Last word: 4094 comes back, 4095 never does.
        a.free(4094).unwrap();
        assert_eq!(a.alloc(), Ok(4094));
        assert_eq!(a.alloc(), Err(LpidError::Exhausted));
    }

    #[test]
    fn freed_lpids_are_recycled_lowest_first() {
        let mut a = LpidAllocator::new();
        for _ in 0..200 {
            a.alloc().unwrap();
        }
        a.free(150).unwrap();
        a.free(7).unwrap();
        a.free(64).unwrap();
        assert_eq!(a.available(), 4094 - 197);
        assert_eq!(a.alloc(), Ok(7));
        assert_eq!(a.alloc(), Ok(64));
        assert_eq!(a.alloc(), Ok(150));
        assert_eq!(a.alloc(), Ok(201));
    }

    #[test]
    fn errors_change_nothing() {
        let mut a = LpidAllocator::new();
        assert_eq!(a.alloc(), Ok(1));
        assert_eq!(a.free(HOST_LPID), Err(LpidError::Reserved(0)));
        assert_eq!(a.free(RESERVED_LPID), Err(LpidError::Reserved(4095)));
        assert_eq!(a.free(4096), Err(LpidError::OutOfRange(4096)));
        assert_eq!(a.free(u32::MAX), Err(LpidError::OutOfRange(u32::MAX)));
        assert_eq!(a.free(5), Err(LpidError::NotAllocated(5)));
        assert_eq!(a.free(1), Ok(()));
        assert_eq!(a.free(1), Err(LpidError::NotAllocated(1)));
        assert!(!a.is_allocated(4096) && !a.is_allocated(u32::MAX));
        assert_eq!((a.allocated(), a.available()), (0, 4094));
        assert_eq!(a.alloc(), Ok(1));
    }

    #[test]
    fn error_messages() {
        use std::string::ToString;
        assert_eq!(
            LpidError::Exhausted.to_string(),
            "all 4094 guest LPIDs are in use"
        );
        assert_eq!(
            LpidError::Reserved(4095).to_string(),
            "LPID 4095 is reserved"
        );
        assert_eq!(
            LpidError::NotAllocated(9).to_string(),
            "LPID 9 is not allocated"
        );
        let a = LpidAllocator::default();
        assert_eq!(
            std::format!("{a:?}"),
            "LpidAllocator { allocated: 0, available: 4094 }"
        );
    }
}
