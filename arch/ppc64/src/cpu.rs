//! Special-purpose register access and single instructions, one small
//! function each (the numbers and bit fields are in `spr`).

use crate::spr;
use core::arch::asm;

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
    let msr = mfmsr() | spr::MSR_ME | spr::MSR_RI;
    // SAFETY: only ME and RI change; the vectors that handle a machine
    // check are installed before this is called.
    unsafe { asm!("mtmsrd {0}", in(reg) msr, options(nostack)) };
}

/// This thread's processor identification register.
pub fn pir() -> u32 {
    mfspr::<{ spr::PIR }>() as u32
}

/// The stack pointer (r1) where this is inlined.
#[inline(always)]
pub fn stack_pointer() -> u64 {
    let sp: u64;
    // SAFETY: reads r1; touches nothing else.
    unsafe { asm!("mr {0}, 1", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    sp
}

/// Makes `start..end` (just written as data) visible to instruction fetch:
/// `dcbst` every line, `sync`, `icbi` every line, `isync`.
///
/// # Safety
/// `start..end` must be mapped memory (real mode: any RAM address).
pub unsafe fn flush_icache_range(start: u64, end: u64) {
    const LINE: u64 = crate::sizes::CACHE_LINE;
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

/// Zeroes `len` bytes of RAM at real address `addr`: whole cache lines
/// with `dcbz` (one instruction per 128 bytes, instead of sixteen
/// doubleword stores), the unaligned ends with stores; then `sync`, so
/// the zeros are visible to every thread before the memory is handed on.
///
/// # Safety
/// `addr..addr + len` must be RAM that nothing else uses meanwhile
/// (real mode: identity addresses, cacheable).
pub unsafe fn zero_real(addr: u64, len: u64) {
    const LINE: u64 = crate::sizes::CACHE_LINE;
    let end = addr + len;
    let lines_start = addr.next_multiple_of(LINE).min(end);
    let lines_end = (end & !(LINE - 1)).max(lines_start);
    // SAFETY: the head and tail lie in the range the caller gave.
    unsafe {
        core::ptr::write_bytes(addr as *mut u8, 0, (lines_start - addr) as usize);
        core::ptr::write_bytes(lines_end as *mut u8, 0, (end - lines_end) as usize);
    }
    let mut a = lines_start;
    while a < lines_end {
        // SAFETY: a whole line inside the caller's range.
        unsafe { asm!("dcbz 0, {0}", in(reg) a, options(nostack)) };
        a += LINE;
    }
    // SAFETY: an ordering instruction only.
    unsafe { asm!("sync", options(nostack)) };
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

/// Loads the decrementer (ticks until it goes negative; at most spr::DEC_MAX).
pub fn set_dec(ticks: u64) {
    // SAFETY: with MSR[EE]=0 (always, in this firmware) an expiring
    // decrementer only wakes a napping thread when LPCR enables it.
    unsafe { mtspr::<{ spr::DEC }>(ticks.min(spr::DEC_MAX)) };
}

/// Loads the hypervisor decrementer (32 bits on POWER8).
pub fn set_hdec(ticks: u64) {
    // SAFETY: HDEC interrupts need LPCR[HDICE] and (MSR[EE] or a guest
    // running); the callers arm both deliberately.
    unsafe { mtspr::<{ spr::HDEC }>(ticks.min(spr::DEC_MAX)) };
}

/// Sets or clears MSR[EE] (hypervisor code normally runs with EE=0).
///
/// # Safety
/// With EE=1 any pending external, decrementer or (with HDICE) HDEC
/// interrupt is taken at once; its vector must be prepared to return.
pub unsafe fn set_ee(on: bool) {
    let msr = if on {
        mfmsr() | spr::MSR_EE
    } else {
        mfmsr() & !spr::MSR_EE
    };
    // SAFETY: the caller vouches that the interrupts it enables are handled.
    unsafe { asm!("mtmsrd {0}, 1", in(reg) msr, options(nostack)) };
}

/// `tlbiel` of one translation on this core, in the partition loaded on
/// this thread (tlbiel acts on the current LPIDR). Hypercalls run with the
/// guest's partition still loaded, so there is no LPIDR switch around it:
/// with SMT vcores one would pull translation from under the siblings.
pub fn tlbiel(rb: u64) {
    // SAFETY: only this core's TLB changes.
    unsafe { asm!("ptesync", "tlbiel {rb}", "ptesync", rb = in(reg) rb, options(nostack)) };
}

/// `tlbiel` (this core) of several translations of the loaded LPID,
/// between one pair of ptesyncs.
pub fn tlbiel_batch(rbs: &[u64]) {
    // SAFETY: an ordering instruction only.
    unsafe { asm!("ptesync", options(nostack)) };
    for &rb in rbs {
        // SAFETY: only this core's TLB changes.
        unsafe { asm!("tlbiel {rb}", rb = in(reg) rb, options(nostack)) };
    }
    // SAFETY: an ordering instruction only.
    unsafe { asm!("ptesync", options(nostack)) };
}

/// `tlbie` (all cores) of several translations of partition `lpid`: one
/// ptesync, the tlbies, then eieio; tlbsync; ptesync.
pub fn tlbie_lpid_batch(lpid: u64, rbs: &[u64]) {
    // SAFETY: an ordering instruction only.
    unsafe { asm!("ptesync", options(nostack)) };
    for &rb in rbs {
        // SAFETY: invalidating a translation has no effect beyond the TLBs.
        unsafe { asm!("tlbie {rb}, {rs}", rb = in(reg) rb, rs = in(reg) lpid, options(nostack)) };
    }
    // SAFETY: ordering instructions only; tlbsync waits for the tlbies.
    unsafe { asm!("eieio", "tlbsync", "ptesync", options(nostack)) };
}

/// The LPID loaded on this thread.
pub fn lpidr() -> u64 {
    mfspr::<{ spr::LPIDR }>()
}

/// `tlbie` (all cores) of one translation of partition `lpid`, with the
/// full ptesync; tlbie; eieio; tlbsync; ptesync sequence.
pub fn tlbie_lpid(lpid: u64, rb: u64) {
    // SAFETY: invalidating a translation has no effect beyond the TLBs.
    unsafe {
        asm!("ptesync", "tlbie {rb}, {rs}", "eieio", "tlbsync", "ptesync", rb = in(reg) rb, rs = in(reg) lpid, options(nostack))
    };
}
