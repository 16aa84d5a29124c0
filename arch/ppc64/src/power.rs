//! Power management and thread start: `nap`, the wake-up path from the
//! system-reset vector, and the entry point of threads started with
//! OPAL_START_CPU.
//!
//! `__power_nap` is a function call that returns the SRR1 of the wake-up:
//! it saves the caller's non-volatile state in the per-thread area, runs
//! POWER8's nap entry sequence and naps. The wake-up arrives at 0x100
//! (vectors.rs), which sees the power-saving bits in SRR1[46:47] and jumps
//! to `__nap_wake`; that finds the per-thread area by PIR (so it works even
//! if HSPRG0 were lost), restores what SRR1 says was lost and returns to
//! the caller of `__power_nap` with r3 = SRR1.

use crate::paca::{
    Paca, PACA_NAP_CR, PACA_NAP_LPCR, PACA_NAP_LPIDR, PACA_NAP_LR, PACA_NAP_NVGPR, PACA_NAP_R1,
    PACA_NAP_R2, PACA_NAP_SDR1, PACA_STACK_TOP, PACA_WAKE_SRR1, PIR_MASK, PIR_TABLE_SIZE,
};
use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

/// PIR -> per-thread area, read by `__nap_wake` and `__secondary_start`.
pub static PACA_BY_PIR: [AtomicU64; PIR_TABLE_SIZE] = [const { AtomicU64::new(0) }; PIR_TABLE_SIZE];

/// The per-thread area registered for PIR `pir`, if any.
pub fn paca_of(pir: u32) -> Option<&'static Paca> {
    let p = PACA_BY_PIR[(pir as u64 & PIR_MASK) as usize].load(Ordering::Acquire) as *const Paca;
    // SAFETY: only `register_paca` stores here, with areas that are never
    // freed.
    unsafe { p.as_ref() }
}

/// Every registered per-thread area, with the PIR it was registered for
/// (modulo the table's size).
pub fn pacas() -> impl Iterator<Item = (u32, &'static Paca)> {
    (0..PIR_TABLE_SIZE as u32).filter_map(|pir| paca_of(pir).map(|p| (pir, p)))
}

/// The calling thread's per-thread area (HSPRG0).
pub fn this_paca() -> &'static Paca {
    let paca = crate::cpu::mfspr::<{ crate::spr::HSPRG0 }>() as *const Paca;
    // SAFETY: HSPRG0 always points at this thread's per-thread area, set
    // before any Rust code runs on the thread (the boot thread's by the
    // firmware's trap set-up, a secondary's by `__secondary_start`);
    // areas are never freed.
    unsafe { &*paca }
}

/// Records the per-thread area of the thread with PIR `pir`.
pub fn register_paca(pir: u32, paca: *mut Paca) {
    PACA_BY_PIR[(pir as u64 & PIR_MASK) as usize].store(paca as u64, Ordering::Release);
}

/// Loads r13 with this thread's per-thread area, found by PIR; clobbers r12.
/// Needs the `table`, `pir_mask` and `spr_pir` operands.
macro_rules! paca_by_pir_asm {
    () => {
        r#"
        mfspr 13, {spr_pir}
        andi. 13, 13, {pir_mask}
        sldi 13, 13, 3
        lis 12, {table}@ha
        addi 12, 12, {table}@l
        ldx 13, 12, 13
        "#
    };
}

global_asm!(
    r#"
    .pushsection .text.power, "ax", @progbits
    .balign 16
    .global __power_nap
    # u64 __power_nap(void): naps; returns the wake-up's SRR1.
    __power_nap:
        mfspr 13, {spr_hsprg0}
    "#,
    crate::save_nv_asm!(),
    r#"
        mr 4, 13
        mfspr 0, {spr_lpcr}
        std 0, {lpcr}(4)
        mfspr 0, {spr_sdr1}
        std 0, {sdr1}(4)
        mfspr 0, {spr_lpidr}
        std 0, {lpidr}(4)
        # POWER8 nap entry: every prior store must have completed, so
        # store, ptesync, load it back and wait for the load.
        std 0, {wake}(4)
        ptesync
        ld 0, {wake}(4)
    1:  cmpd 0, 0
        bne 1b
        nap
        b .

    .global __nap_wake
    # Reached from the 0x100 vector after a power-saving wake-up.
    __nap_wake:
    "#,
    paca_by_pir_asm!(),
    r#"
        mfspr 12, {spr_srr1}
        std 12, {wake}(13)
        rldicl 11, 12, 64 - {ws_shift}, 62
        cmpdi 11, {ws_hvloss}
        bne 2f
        # Hypervisor state lost (never after nap): restore the partition
        # registers saved before the power-saving instruction.
        ld 11, {lpcr}(13)
        mtspr {spr_lpcr}, 11
        ld 11, {sdr1}(13)
        mtspr {spr_sdr1}, 11
        ld 11, {lpidr}(13)
        mtspr {spr_lpidr}, 11
        isync
    2:  mtspr {spr_hsprg0}, 13
    "#,
    crate::restore_nv_asm!(),
    r#"
        # The wake-up cleared MSR[RI] (and may have cleared ME).
        mfmsr 11
        ori 11, 11, {msr_me_ri}
        mtmsrd 11
        mr 3, 12
        blr

    .global __set_this_thread_paca
    # void __set_this_thread_paca(Paca *p): HSPRG0 and r13 (which the
    # compiler never allocates) point at this thread's area from now on.
    __set_this_thread_paca:
        mtspr {spr_hsprg0}, 3
        mr 13, 3
        blr

    .global __secondary_start
    # Threads started by OPAL_START_CPU arrive here big-endian, r3 = PIR.
    __secondary_start:
    "#,
    crate::fixup_endian_asm!(),
    paca_by_pir_asm!(),
    r#"
        mtspr {spr_hsprg0}, 13
        ld 1, {stack_top}(13)
        li 0, 0
        stdu 0, -112(1)
        lis 2, .TOC.@ha
        addi 2, 2, .TOC.@l
        mr 3, 13
        bl hv_secondary_main
        nop
        b .
    .popsection
    "#,
    table = sym PACA_BY_PIR,
    pir_mask = const PIR_MASK,
    ws_shift = const crate::spr::SRR1_WS_MASK.trailing_zeros(),
    ws_hvloss = const crate::spr::SRR1_WS_HVLOSS >> crate::spr::SRR1_WS_MASK.trailing_zeros(),
    msr_me_ri = const crate::spr::MSR_ME | crate::spr::MSR_RI,
    sv_r1 = const PACA_NAP_R1,
    sv_r2 = const PACA_NAP_R2,
    sv_nv = const PACA_NAP_NVGPR,
    sv_cr = const PACA_NAP_CR,
    sv_lr = const PACA_NAP_LR,
    lpcr = const PACA_NAP_LPCR,
    sdr1 = const PACA_NAP_SDR1,
    lpidr = const PACA_NAP_LPIDR,
    wake = const PACA_WAKE_SRR1,
    stack_top = const PACA_STACK_TOP,
    spr_hsprg0 = const crate::spr::HSPRG0,
    spr_pir = const crate::spr::PIR,
    spr_lpcr = const crate::spr::LPCR,
    spr_sdr1 = const crate::spr::SDR1,
    spr_lpidr = const crate::spr::LPIDR,
    spr_srr1 = const crate::spr::SRR1,
);

unsafe extern "C" {
    fn __power_nap() -> u64;
    fn __secondary_start();
    fn __set_this_thread_paca(p: *mut Paca);
}

/// Makes `paca` this thread's per-thread area (HSPRG0 for exception
/// entry, r13 for the hypervisor's own code), as `__secondary_start` does
/// for the other threads.
///
/// # Safety
/// `paca` must be a complete area that lives for the rest of the run and
/// is registered for this thread's PIR; exceptions save into it from now.
pub unsafe fn set_this_thread_paca(paca: *mut Paca) {
    // SAFETY: as the caller promises; the asm writes only HSPRG0 and r13.
    unsafe { __set_this_thread_paca(paca) }
}

/// Naps until a wake-up event enabled in LPCR[PECE] (and pending at the
/// thread) occurs; returns the SRR1 of the wake-up. Nothing is lost.
pub fn nap() -> u64 {
    // SAFETY: `__power_nap` saves every non-volatile register and the LR in
    // this thread's per-thread area (HSPRG0 must point at it, which thread
    // start-up guarantees) and `__nap_wake` restores them, so to the caller
    // this is an ordinary call that clobbers only volatile registers.
    unsafe { __power_nap() }
}

/// Real address where OPAL_START_CPU should start a secondary thread.
pub fn secondary_entry() -> u64 {
    __secondary_start as *const () as u64
}
