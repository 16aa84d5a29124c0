//! POWER8 implementation sizes, for the hypervisor and for what guests are
//! told (`ibm,slb-size`), in one place.

/// Width of LPIDR.
pub const LPID_BITS: u32 = 12;
/// Number of LPID values (4096).
pub const NR_LPIDS: u32 = 1 << LPID_BITS;
/// The LPID loaded between two partitions' SDR1 and LPCR during a switch,
/// never given to a guest (KVM's `LPID_RSVD`): the highest.
pub const RESERVED_LPID: u32 = NR_LPIDS - 1;
/// SLB entries per thread.
pub const SLB_SIZE: usize = 32;
/// Cache line size (`dcbz`, `dcbst`, `icbi` work on whole lines).
pub const CACHE_LINE: u64 = 128;
/// TLB congruence classes (what `tlbiel` walks for a whole-LPID flush).
pub const TLB_SETS: u64 = 512;
