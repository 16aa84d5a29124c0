//! Special-purpose registers and single instructions, one small function
//! each.

use crate::spr;
use core::arch::asm;

pub const MSR_SF: u64 = 1 << 63;
pub const MSR_HV: u64 = 1 << 60;
/// Transactional memory available (31) and transaction state (29:30).
pub const MSR_TM: u64 = 1 << 32;
pub const MSR_TS: u64 = 3 << 33;
/// Problem state (49), instruction and data relocation (58, 59).
pub const MSR_PR: u64 = 1 << 14;
pub const MSR_IR: u64 = 1 << 5;
pub const MSR_DR: u64 = 1 << 4;
/// MSR bits a guest may never run with (it has no TM, and HV is the
/// hypervisor's), and bits it always runs with (machine checks enabled).
pub const MSR_GUEST_CLEAR: u64 = MSR_HV | MSR_TM | MSR_TS;
pub const MSR_GUEST_SET: u64 = MSR_ME;
pub const MSR_EE: u64 = 1 << 15;
pub const MSR_ME: u64 = 1 << 12;
pub const MSR_RI: u64 = 1 << 1;
pub const MSR_LE: u64 = 1;

/// Reads SPR `N`.
#[inline(always)]
pub fn mfspr<const N: u16>() -> u64 {
    let v: u64;
    // SAFETY: reading an SPR has no side effects for the SPRs this code
    // names (none of them is a read-to-clear register).
    unsafe { asm!("mfspr {0}, {n}", out(reg) v, n = const N, options(nomem, nostack)) };
    v
}

/// Writes SPR `N`.
///
/// # Safety
/// The caller must know what writing this SPR does to the machine state.
#[inline(always)]
pub unsafe fn mtspr<const N: u16>(v: u64) {
    // SAFETY: the caller guarantees the write is intended.
    unsafe { asm!("mtspr {n}, {0}", in(reg) v, n = const N, options(nostack)) };
}

/// The timebase.
#[inline(always)]
pub fn mftb() -> u64 {
    let v: u64;
    // SAFETY: reading the timebase has no side effects.
    unsafe { asm!("mftb {0}", out(reg) v, options(nomem, nostack)) };
    v
}

/// Machine state register.
#[inline(always)]
pub fn mfmsr() -> u64 {
    let v: u64;
    // SAFETY: reading the MSR has no side effects.
    unsafe { asm!("mfmsr {0}", out(reg) v, options(nomem, nostack)) };
    v
}

/// Sets MSR[ME] and MSR[RI] once the exception vectors are in place, so a
/// machine check is reported instead of checkstopping the machine.
pub fn enable_machine_check() {
    let msr = mfmsr() | MSR_ME | MSR_RI;
    // SAFETY: only ME and RI change; the vectors that handle a machine
    // check are installed before this is called.
    unsafe { asm!("mtmsrd {0}", in(reg) msr, options(nostack)) };
}

/// This thread's processor identification register.
pub fn pir() -> u32 {
    mfspr::<{ spr::PIR }>() as u32
}

/// Makes `start..end` (just written as data) visible to instruction fetch:
/// `dcbst` every line, `sync`, `icbi` every line, `isync`.
///
/// # Safety
/// `start..end` must be mapped memory (real mode: any RAM address).
pub unsafe fn flush_icache_range(start: u64, end: u64) {
    const LINE: u64 = 128;
    let mut a = start & !(LINE - 1);
    while a < end {
        // SAFETY: the caller guarantees the range is RAM.
        unsafe { asm!("dcbst 0, {0}", in(reg) a, options(nostack)) };
        a += LINE;
    }
    // SAFETY: ordering instructions only.
    unsafe { asm!("sync", options(nostack)) };
    a = start & !(LINE - 1);
    while a < end {
        // SAFETY: as above.
        unsafe { asm!("icbi 0, {0}", in(reg) a, options(nostack)) };
        a += LINE;
    }
    // SAFETY: ordering instructions only.
    unsafe { asm!("sync", "isync", options(nostack)) };
}

/// Executes a `trap` instruction (program interrupt), for the test-only
/// `hv.test=trap` boot argument.
pub fn trap() {
    // SAFETY: raises a program interrupt, which the vectors report.
    unsafe { asm!("trap", options(nostack)) };
}

/// Stops this thread without returning (low-priority spin on `HMT_low`).
pub fn halt() -> ! {
    loop {
        // SAFETY: a priority hint; no state changes.
        unsafe { asm!("or 1,1,1", options(nomem, nostack)) };
    }
}

/// MMCR0[FC]: freeze all counters (set while the hypervisor runs).
pub const MMCR0_FC: u64 = 1 << 31;

/// LPCR fields (ISA 2.07 bit numbers in comments).
pub const LPCR_VPM0: u64 = 1 << 63; // 0: VRMA for guest real mode
pub const LPCR_VPM1: u64 = 1 << 62; // 1: guest translation faults to the hypervisor
pub const LPCR_ILE: u64 = 1 << 25; // 38: guest interrupts little-endian
/// All power-saving exit enables (47-51; KVM calls bit 49 "PECE0", the ISA
/// "PECE2"). The names below say what each enables.
pub const LPCR_PECE: u64 = 0x1f << 12;
pub const LPCR_PECE_EXTERNAL: u64 = 1 << 14; // 49
pub const LPCR_PECE_DEC: u64 = 1 << 13; // 50
/// Mediated external request (52): the guest takes an external interrupt
/// as soon as its MSR[EE] is set.
pub const LPCR_MER: u64 = 1 << 11;
/// Alternate interrupt location (39:40); 3 = 0xc000_0000_0000_4000.
pub const LPCR_AIL_SHIFT: u32 = 23;
pub const LPCR_AIL: u64 = 3 << LPCR_AIL_SHIFT;
/// External interrupts go to the guest OS (1) or the hypervisor (0).
pub const LPCR_LPES0: u64 = 1 << 3; // 60
pub const LPCR_LPES1: u64 = 1 << 2; // 61

/// Largest positive value of the 32-bit POWER8 decrementer.
pub const DEC_MAX: u64 = 0x7fff_ffff;

/// Sets this thread's LPCR.
///
/// # Safety
/// LPCR controls partition-wide behaviour; the caller must know the value
/// is right for the thread's current state.
pub unsafe fn set_lpcr(v: u64) {
    // SAFETY: the caller vouches for the value; isync makes it take effect.
    unsafe {
        mtspr::<{ spr::LPCR }>(v);
        asm!("isync", options(nostack));
    }
}

/// Loads the decrementer (ticks until it goes negative; at most DEC_MAX).
pub fn set_dec(ticks: u64) {
    // SAFETY: with MSR[EE]=0 (always, in this firmware) an expiring
    // decrementer only wakes a napping thread when LPCR enables it.
    unsafe { mtspr::<{ spr::DEC }>(ticks.min(DEC_MAX)) };
}

/// LPCR: hypervisor decrementer interrupts enabled (bit 63).
pub const LPCR_HDICE: u64 = 1;

/// Loads the hypervisor decrementer (32 bits on POWER8).
pub fn set_hdec(ticks: u64) {
    // SAFETY: HDEC interrupts need LPCR[HDICE] and (MSR[EE] or a guest
    // running); the callers arm both deliberately.
    unsafe { mtspr::<{ spr::HDEC }>(ticks.min(DEC_MAX)) };
}

/// Sets or clears MSR[EE] (hypervisor code normally runs with EE=0).
///
/// # Safety
/// With EE=1 any pending external, decrementer or (with HDICE) HDEC
/// interrupt is taken at once; its vector must be prepared to return.
pub unsafe fn set_ee(on: bool) {
    let msr = if on {
        mfmsr() | MSR_EE
    } else {
        mfmsr() & !MSR_EE
    };
    // SAFETY: the caller vouches that the interrupts it enables are handled.
    unsafe { asm!("mtmsrd {0}, 1", in(reg) msr, options(nostack)) };
}

/// `tlbiel` of one translation of partition `lpid` on this core. The
/// hypervisor runs with its own LPID loaded, and tlbiel acts on the current
/// LPID, so LPIDR is switched to the guest's around it (harmless in
/// hypervisor real mode, which does not translate).
pub fn tlbiel_lpid(lpid: u64, rb: u64) {
    // SAFETY: only the TLB of this core changes; LPIDR is restored before
    // returning and nothing translates in between.
    unsafe {
        asm!(
                    "mfspr {old}, {spr_lpidr}",
                    "mtspr {spr_lpidr}, {lpid}",
                    "isync",
                    "ptesync",
                    "tlbiel {rb}",
                    "ptesync",
                    "mtspr {spr_lpidr}, {old}",
                    "isync",
                    old = out(reg) _,
                    lpid = in(reg) lpid,
                    rb = in(reg) rb,
                    options(nostack),
            spr_lpidr = const crate::spr::LPIDR,
        )
    };
}

/// `tlbie` (all cores) of one translation of partition `lpid`, with the
/// full ptesync; tlbie; eieio; tlbsync; ptesync sequence.
pub fn tlbie_lpid(lpid: u64, rb: u64) {
    // SAFETY: invalidating a translation has no effect beyond the TLBs.
    unsafe {
        asm!("ptesync", "tlbie {rb}, {rs}", "eieio", "tlbsync", "ptesync", rb = in(reg) rb, rs = in(reg) lpid, options(nostack))
    };
}
