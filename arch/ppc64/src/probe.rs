//! Test-only probes of the exception return path (`hv.test=resume`).

use core::arch::global_asm;

/// Value `__trap_probe` loads into GPR `n` before its `trap`.
pub const fn probe_pattern(n: usize) -> u64 {
    0x5a5a_0000 | n as u64
}

// void __trap_probe(u64 out[32]): loads probe_pattern(n) into r0, r3-r12 and
// r14-r31, executes `trap` (the exception handler must resume after it),
// then stores those registers to out[n].
global_asm!(
    r#"
    .pushsection .text.probe, "ax", @progbits
    .balign 16
    .global __trap_probe
    __trap_probe:
        mflr 0
        std 0, 16(1)
        stdu 1, -256(1)
        std 3, 32(1)
        std 14, 40(1)
        std 15, 48(1)
        std 16, 56(1)
        std 17, 64(1)
        std 18, 72(1)
        std 19, 80(1)
        std 20, 88(1)
        std 21, 96(1)
        std 22, 104(1)
        std 23, 112(1)
        std 24, 120(1)
        std 25, 128(1)
        std 26, 136(1)
        std 27, 144(1)
        std 28, 152(1)
        std 29, 160(1)
        std 30, 168(1)
        std 31, 176(1)
        mfcr 0
        std 0, 184(1)
        .irp n, 0,3,4,5,6,7,8,9,10,11,12,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        lis \n, 0x5a5a
        ori \n, \n, \n
        .endr
        trap
        std 12, 192(1)
        ld 12, 32(1)
        .irp n, 0,3,4,5,6,7,8,9,10,11,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        std \n, \n*8(12)
        .endr
        ld 0, 192(1)
        std 0, 12*8(12)
        ld 0, 184(1)
        mtcrf 0xff, 0
        ld 14, 40(1)
        ld 15, 48(1)
        ld 16, 56(1)
        ld 17, 64(1)
        ld 18, 72(1)
        ld 19, 80(1)
        ld 20, 88(1)
        ld 21, 96(1)
        ld 22, 104(1)
        ld 23, 112(1)
        ld 24, 120(1)
        ld 25, 128(1)
        ld 26, 136(1)
        ld 27, 144(1)
        ld 28, 152(1)
        ld 29, 160(1)
        ld 30, 168(1)
        ld 31, 176(1)
        addi 1, 1, 256
        ld 0, 16(1)
        mtlr 0
        blr
    .popsection
    "#
);

unsafe extern "C" {
    fn __trap_probe(out: *mut [u64; 32]);
}

/// Runs `__trap_probe`; returns the GPR values seen after the trap.
///
/// # Safety
/// The program-interrupt handler must be armed to resume after the trap.
pub unsafe fn trap_probe() -> [u64; 32] {
    let mut out = [0u64; 32];
    // SAFETY: the probe saves and restores every non-volatile register and
    // writes only `out`; the caller armed the handler.
    unsafe { __trap_probe(&mut out) };
    out
}
