//! Exception vectors (copied to real address 0) and the common exception
//! entry/exit path.
//!
//! 0x100 (system reset) tells a nap wake-up from a real reset (see below);
//! every 0x20 slot from 0x200 to 0xFE0 holds a seven-instruction stub:
//! park r13 in HSPRG1, load the per-thread area (`Paca`) from HSPRG0, save
//! r12 and CFAR (before a branch overwrites it), load the vector number (bit 0 set when the interrupt uses HSRR0/1)
//! and branch to `__exc_low`, which sits right after the vectors in the same
//! copied block (a relative branch, so the block runs at any address).
//! `__exc_low` saves r11 and CTR and jumps through `Paca::exc_entry` to
//! `__exc_common` in the image, which saves the whole context into
//! `Paca::frame`, switches to the thread's exception stack, and calls the
//! Rust handler `hv_exception(&mut TrapFrame)`. When that returns, the
//! context is restored from the frame and the interrupt returns with `rfid`
//! or `hrfid` according to the same bit.

use crate::paca::{
    PACA_EXCEPTIONS, PACA_EXC_ENTRY, PACA_EXC_STACK_TOP, PACA_FRAME, PACA_SCRATCH_CFAR,
    PACA_SCRATCH_CTR, PACA_SCRATCH_R11, PACA_SCRATCH_R12,
};
use crate::trap::{
    FRAME_CR, FRAME_CTR, FRAME_DAR, FRAME_DSISR, FRAME_GPR, FRAME_HDAR, FRAME_HDSISR, FRAME_HEIR,
    FRAME_LR, FRAME_MSR, FRAME_PC, FRAME_PIR, FRAME_VECTOR, FRAME_XER, VEC_HSRR_FLAG,
};
use core::arch::global_asm;

// The stubs: the HSRR0/1 vectors on POWER8 are 0x500 (external, with
// LPCR[LPES0]=0), 0x980, 0xE00-0xEE0 and 0xF80.
global_asm!(
    r#"
    .pushsection .vectors, "ax", @progbits
    .balign 4096
    # 0x100 system reset: a wake-up from a power-saving state sets
    # SRR1[46:47]; those go to __nap_wake (power.rs), anything else is a
    # real reset and takes the common path (with CR0 already clobbered,
    # and CFAR: the branch here overwrites it before a register is free
    # to save it, so a system reset taken in a guest, which stops the VM,
    # does not report the guest's CFAR).
    .org 0x100
        mtspr {spr_hsprg1}, 13
        mfspr 13, {spr_srr1}
        rldicl 13, 13, 64 - {ws_shift}, 62
        cmpdi 13, 0
        beq 1f
        lis 13, __nap_wake@ha
        addi 13, 13, __nap_wake@l
        mtctr 13
        bctr
    1:  mfspr 13, {spr_hsprg0}
        std 12, {scratch0}(13)
        li 12, {vec_reset}
        b __exc_low
    .set __vec_slot, 0x1e0
    .rept 0x70
      .set __vec_slot, __vec_slot + 0x20
      .set __vec_hv, ((__vec_slot == 0x500) | (__vec_slot == 0x980) | ((__vec_slot >= 0xe00) & (__vec_slot < 0xf00)) | (__vec_slot == 0xf80))
      .org __vec_slot
        mtspr {spr_hsprg1}, 13
        mfspr 13, {spr_hsprg0}
        std 12, {scratch0}(13)
        mfspr 12, {spr_cfar}
        std 12, {scratch3}(13)
        li 12, __vec_slot + (__vec_hv & 1)
        b __exc_low
    .endr
    .org 0x1000
    __exc_low:
        std 11, {scratch1}(13)
        mfctr 11
        std 11, {scratch2}(13)
        ld 11, {exc_entry}(13)
        mtctr 11
        bctr
    .popsection
    "#,
    scratch0 = const PACA_SCRATCH_R12,
    scratch1 = const PACA_SCRATCH_R11,
    scratch2 = const PACA_SCRATCH_CTR,
    scratch3 = const PACA_SCRATCH_CFAR,
    spr_cfar = const crate::spr::CFAR,
    exc_entry = const PACA_EXC_ENTRY,
    spr_srr1 = const crate::spr::SRR1,
    spr_hsprg0 = const crate::spr::HSPRG0,
    spr_hsprg1 = const crate::spr::HSPRG1,
    ws_shift = const crate::spr::SRR1_WS_MASK.trailing_zeros(),
    vec_reset = const crate::trap::vector::SYSTEM_RESET,
);

/// Restores CR, LR, CTR, XER and every GPR from the frame at r11; r11 last.
macro_rules! restore_all {
    () => {
        r#"
        ld 0, {f_cr}(11)
        mtcrf 0xff, 0
        ld 0, {f_lr}(11)
        mtlr 0
        ld 0, {f_ctr}(11)
        mtctr 0
        ld 0, {f_xer}(11)
        mtxer 0
        ld 0, {f_gpr}+0*8(11)
        ld 1, {f_gpr}+1*8(11)
        ld 2, {f_gpr}+2*8(11)
        ld 3, {f_gpr}+3*8(11)
        ld 4, {f_gpr}+4*8(11)
        ld 5, {f_gpr}+5*8(11)
        ld 6, {f_gpr}+6*8(11)
        ld 7, {f_gpr}+7*8(11)
        ld 8, {f_gpr}+8*8(11)
        ld 9, {f_gpr}+9*8(11)
        ld 10, {f_gpr}+10*8(11)
        ld 12, {f_gpr}+12*8(11)
        ld 13, {f_gpr}+13*8(11)
        ld 14, {f_gpr}+14*8(11)
        ld 15, {f_gpr}+15*8(11)
        ld 16, {f_gpr}+16*8(11)
        ld 17, {f_gpr}+17*8(11)
        ld 18, {f_gpr}+18*8(11)
        ld 19, {f_gpr}+19*8(11)
        ld 20, {f_gpr}+20*8(11)
        ld 21, {f_gpr}+21*8(11)
        ld 22, {f_gpr}+22*8(11)
        ld 23, {f_gpr}+23*8(11)
        ld 24, {f_gpr}+24*8(11)
        ld 25, {f_gpr}+25*8(11)
        ld 26, {f_gpr}+26*8(11)
        ld 27, {f_gpr}+27*8(11)
        ld 28, {f_gpr}+28*8(11)
        ld 29, {f_gpr}+29*8(11)
        ld 30, {f_gpr}+30*8(11)
        ld 31, {f_gpr}+31*8(11)
        ld 11, {f_gpr}+11*8(11)
        "#
    };
}

global_asm!(
    r#"
    .pushsection .text.exc_common, "ax", @progbits
    .balign 16
    .global __exc_common
    __exc_common:
        addi 11, 13, {frame}
        std 0, {f_gpr}+0*8(11)
        mfcr 0
        std 0, {f_cr}(11)
        std 1, {f_gpr}+1*8(11)
        std 2, {f_gpr}+2*8(11)
        std 3, {f_gpr}+3*8(11)
        std 4, {f_gpr}+4*8(11)
        std 5, {f_gpr}+5*8(11)
        std 6, {f_gpr}+6*8(11)
        std 7, {f_gpr}+7*8(11)
        std 8, {f_gpr}+8*8(11)
        std 9, {f_gpr}+9*8(11)
        std 10, {f_gpr}+10*8(11)
        ld 0, {scratch1}(13)
        std 0, {f_gpr}+11*8(11)
        ld 0, {scratch0}(13)
        std 0, {f_gpr}+12*8(11)
        mfspr 0, {spr_hsprg1}
        std 0, {f_gpr}+13*8(11)
        std 14, {f_gpr}+14*8(11)
        std 15, {f_gpr}+15*8(11)
        std 16, {f_gpr}+16*8(11)
        std 17, {f_gpr}+17*8(11)
        std 18, {f_gpr}+18*8(11)
        std 19, {f_gpr}+19*8(11)
        std 20, {f_gpr}+20*8(11)
        std 21, {f_gpr}+21*8(11)
        std 22, {f_gpr}+22*8(11)
        std 23, {f_gpr}+23*8(11)
        std 24, {f_gpr}+24*8(11)
        std 25, {f_gpr}+25*8(11)
        std 26, {f_gpr}+26*8(11)
        std 27, {f_gpr}+27*8(11)
        std 28, {f_gpr}+28*8(11)
        std 29, {f_gpr}+29*8(11)
        std 30, {f_gpr}+30*8(11)
        std 31, {f_gpr}+31*8(11)
        ld 0, {scratch2}(13)
        std 0, {f_ctr}(11)
        mflr 0
        std 0, {f_lr}(11)
        mfxer 0
        std 0, {f_xer}(11)
        std 12, {f_vector}(11)
        andi. 0, 12, {hsrr_flag}
        beq 1f
        mfspr 0, {spr_hsrr0}
        std 0, {f_pc}(11)
        mfspr 0, {spr_hsrr1}
        std 0, {f_msr}(11)
        b 2f
    1:  mfspr 0, {spr_srr0}
        std 0, {f_pc}(11)
        mfspr 0, {spr_srr1}
        std 0, {f_msr}(11)
    2:  mfspr 0, {spr_dar}
        std 0, {f_dar}(11)
        mfspr 0, {spr_dsisr}
        std 0, {f_dsisr}(11)
        mfspr 0, {spr_hdar}
        std 0, {f_hdar}(11)
        mfspr 0, {spr_hdsisr}
        std 0, {f_hdsisr}(11)
        mfspr 0, {spr_heir}
        std 0, {f_heir}(11)
        mfspr 0, {spr_pir}
        std 0, {f_pir}(11)
        ld 0, {exceptions}(13)
        addic 0, 0, 1
        std 0, {exceptions}(13)
        ld 1, {stack_top}(13)
        li 0, 0
        stdu 0, -112(1)
        lis 2, .TOC.@ha
        addi 2, 2, .TOC.@l
        mr 3, 11
        bl hv_exception
        nop
        mfspr 13, {spr_hsprg0}
        addi 11, 13, {frame}
        ld 12, {f_vector}(11)
        andi. 0, 12, {hsrr_flag}
        ld 0, {f_pc}(11)
        ld 12, {f_msr}(11)
        bne 3f
        mtspr {spr_srr0}, 0
        mtspr {spr_srr1}, 12
    "#,
    restore_all!(),
    r#"
        rfid
    3:  mtspr {spr_hsrr0}, 0
        mtspr {spr_hsrr1}, 12
    "#,
    restore_all!(),
    r#"
        hrfid
    .popsection
    "#,
    frame = const PACA_FRAME,
    scratch0 = const PACA_SCRATCH_R12,
    scratch1 = const PACA_SCRATCH_R11,
    scratch2 = const PACA_SCRATCH_CTR,
    exceptions = const PACA_EXCEPTIONS,
    stack_top = const PACA_EXC_STACK_TOP,
    hsrr_flag = const VEC_HSRR_FLAG,
    f_gpr = const FRAME_GPR,
    f_cr = const FRAME_CR,
    f_xer = const FRAME_XER,
    f_lr = const FRAME_LR,
    f_ctr = const FRAME_CTR,
    f_pc = const FRAME_PC,
    f_msr = const FRAME_MSR,
    f_vector = const FRAME_VECTOR,
    f_dar = const FRAME_DAR,
    f_dsisr = const FRAME_DSISR,
    f_hdar = const FRAME_HDAR,
    f_hdsisr = const FRAME_HDSISR,
    f_heir = const FRAME_HEIR,
    f_pir = const FRAME_PIR,
    spr_hsprg1 = const crate::spr::HSPRG1,
    spr_hsrr0 = const crate::spr::HSRR0,
    spr_hsrr1 = const crate::spr::HSRR1,
    spr_srr0 = const crate::spr::SRR0,
    spr_srr1 = const crate::spr::SRR1,
    spr_dar = const crate::spr::DAR,
    spr_dsisr = const crate::spr::DSISR,
    spr_hdar = const crate::spr::HDAR,
    spr_hdsisr = const crate::spr::HDSISR,
    spr_heir = const crate::spr::HEIR,
    spr_pir = const crate::spr::PIR,
    spr_hsprg0 = const crate::spr::HSPRG0,
);

unsafe extern "C" {
    static __vectors_start: u8;
    static __vectors_end: u8;
    fn __exc_common();
}

/// Address of `__exc_common`, for `Paca::exc_entry`.
pub fn exc_common_address() -> u64 {
    __exc_common as *const () as u64
}

/// Copies the vector block to real address 0 and makes it visible to
/// instruction fetch.
///
/// # Safety
/// Runs in real mode with HRMOR = 0 before anything else uses real
/// addresses 0..0x1100 (skiboot's vectors there are no longer needed once
/// the payload runs; the boot code excludes this range from the allocator).
pub unsafe fn install() {
    // SAFETY: linker-provided symbols; only their addresses are taken.
    let (start, end) = unsafe {
        (
            &__vectors_start as *const u8 as usize,
            &__vectors_end as *const u8 as usize,
        )
    };
    let len = end - start;
    // SAFETY: the destination is RAM at real address 0 (MMU off), which no
    // Rust object occupies; source and destination do not overlap. The copy
    // is done in asm because address 0 is the null pointer to Rust.
    unsafe {
        core::arch::asm!(
            "mtctr {n}",
            "li {dst}, -8",
            "addi {src}, {src}, -8",
            "1: ldu {t}, 8({src})",
            "stdu {t}, 8({dst})",
            "bdnz 1b",
            n = in(reg) len.div_ceil(8),
            src = inout(reg_nonzero) start => _,
            dst = out(reg_nonzero) _,
            t = out(reg) _,
            out("ctr") _,
            options(nostack)
        );
        crate::cpu::flush_icache_range(0, len as u64);
    }
}

/// Bytes of the vector block (copied to real address 0).
pub fn vectors_len() -> u64 {
    // SAFETY: linker-provided symbols; only their addresses are taken.
    unsafe { (&__vectors_end as *const u8 as u64) - (&__vectors_start as *const u8 as u64) }
}
