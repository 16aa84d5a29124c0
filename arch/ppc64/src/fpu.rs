//! Guest floating-point, VMX and VSX state. The hypervisor itself is
//! soft-float and never touches these registers, so a guest's values stay
//! in the hardware while it exits and re-enters; they are saved when its
//! vcpu stops running on a thread and loaded before it starts, so no other
//! partition ever sees them (a fresh VM starts from zeros).
//!
//! These two functions are the only FP/vector code in the image; the
//! build's image check allows them by name.

use core::arch::global_asm;

/// VSR0-63 (VSR0-31 overlay FPR0-31, VSR32-63 are VR0-31), FPSCR, VSCR,
/// VRSAVE.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug)]
pub struct FpState {
    pub vsr: [[u64; 2]; 64],
    pub fpscr: u64,
    pub _pad: u64,
    pub vscr: [u32; 4],
    pub vrsave: u64,
    pub _pad2: u64,
}

impl Default for FpState {
    fn default() -> Self {
        FpState {
            vsr: [[0; 2]; 64],
            fpscr: 0,
            _pad: 0,
            vscr: [0; 4],
            vrsave: 0,
            _pad2: 0,
        }
    }
}

const FPSCR: usize = core::mem::offset_of!(FpState, fpscr);
const VSCR: usize = core::mem::offset_of!(FpState, vscr);
const VRSAVE: usize = core::mem::offset_of!(FpState, vrsave);
const _: () = assert!(FPSCR == 1024 && VSCR.is_multiple_of(16));

/// MSR[FP] | MSR[VEC] | MSR[VSX].
const MSR_FP_VEC_VSX: u64 = (1 << 13) | (1 << 25) | (1 << 23);

global_asm!(
    r#"
    .pushsection .text.fpu, "ax", @progbits
    .machine power8
    .balign 16
    .global __fp_state_save
    __fp_state_save:
        # MSR[FP|VEC|VSX] on; the caller's MSR kept in r4.
        mfmsr 4
        lis 5, {msr_hi}@h
        ori 5, 5, {msr_lo}
        or 5, 4, 5
        mtmsrd 5
        isync
        .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63
        li 6, \n*16
        stxvd2x \n, 3, 6
        .endr
        mffs 0
        stfd 0, {fpscr}(3)
        mfvscr 0
        li 6, {vscr}
        stvx 0, 3, 6
        mfspr 6, {spr_vrsave}
        std 6, {vrsave}(3)
        mtmsrd 4
        isync
        blr

    .global __fp_state_load
    __fp_state_load:
        mfmsr 4
        lis 5, {msr_hi}@h
        ori 5, 5, {msr_lo}
        or 5, 4, 5
        mtmsrd 5
        isync
        lfd 0, {fpscr}(3)
        mtfsf 0xff, 0
        li 6, {vscr}
        lvx 0, 3, 6
        mtvscr 0
        ld 6, {vrsave}(3)
        mtspr {spr_vrsave}, 6
        .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63
        li 6, \n*16
        lxvd2x \n, 3, 6
        .endr
        mtmsrd 4
        isync
        blr
    .popsection
    "#,
    msr_hi = const MSR_FP_VEC_VSX & 0xffff_0000,
    msr_lo = const MSR_FP_VEC_VSX & 0xffff,
    fpscr = const FPSCR,
    vscr = const VSCR,
    vrsave = const VRSAVE,
    spr_vrsave = const crate::spr::VRSAVE,
);

unsafe extern "C" {
    fn __fp_state_save(s: *mut FpState);
    fn __fp_state_load(s: *const FpState);
}

/// Saves this thread's FP/VMX/VSX registers into `s`.
pub fn save(s: &mut FpState) {
    // SAFETY: stores only into `s`; the MSR is restored before returning.
    unsafe { __fp_state_save(s) }
}

/// Loads this thread's FP/VMX/VSX registers from `s`.
pub fn load(s: &FpState) {
    // SAFETY: reads only `s`; the hypervisor never uses these registers.
    unsafe { __fp_state_load(s) }
}
