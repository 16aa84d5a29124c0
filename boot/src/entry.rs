//! The first instructions of the image: skiboot jumps here big-endian with
//! r3 = device tree, r8 = OPAL base, r9 = OPAL entry, MMU off, HV=1.

use core::arch::global_asm;

/// Bytes of the boot thread's stack.
pub const BOOT_STACK_SIZE: usize = 128 * 1024;

#[repr(C, align(16))]
pub struct Stack(pub [u8; BOOT_STACK_SIZE]);

#[unsafe(no_mangle)]
static mut BOOT_STACK: Stack = Stack([0; BOOT_STACK_SIZE]);

/// The boot thread's stack as (guard zone, top), its zone armed once.
pub fn boot_stack() -> (u64, u64) {
    static ZONE: spin::Once<u64> = spin::Once::new();
    let base = &raw const BOOT_STACK as u64;
    // SAFETY: the zone is the lowest ZONE_BYTES of the boot stack, which
    // the boot thread (running near its top) has never reached.
    let zone = *ZONE.call_once(|| unsafe { crate::stacks::arm_static(base) });
    (zone, base + BOOT_STACK_SIZE as u64)
}

global_asm!(
    r#"
    .pushsection .text.entry, "ax", @progbits
    .balign 4
    .global _start
    _start:
    "#,
    ppc64::fixup_endian_asm!(),
    r#"
        # Little-endian from here. Keep skiboot's r3, r8, r9.
        mr 14, 3
        mr 15, 8
        mr 16, 9
        # Zero the BSS (8-byte aligned by link.ld); the stack lives there.
        lis 4, __bss_start@ha
        addi 4, 4, __bss_start@l
        lis 5, __bss_end@ha
        addi 5, 5, __bss_end@l
        li 0, 0
    1:  cmpld 4, 5
        bge 2f
        std 0, 0(4)
        addi 4, 4, 8
        b 1b
    2:  lis 1, (BOOT_STACK + {stack_size})@ha
        addi 1, 1, (BOOT_STACK + {stack_size})@l
        stdu 0, -112(1)
        lis 2, .TOC.@ha
        addi 2, 2, .TOC.@l
        mr 3, 14
        mr 4, 15
        mr 5, 16
        bl kmain
        nop
    3:  b 3b
    .popsection
    "#,
    stack_size = const BOOT_STACK_SIZE,
);
