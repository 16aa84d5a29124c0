//! The per-thread area (the hypervisor's PACA), reachable from HSPRG0 in
//! exception entry. The vector stubs and `exc_common` address it through
//! the `PACA_*` constants, computed from the declaration below.

use crate::trap::TrapFrame;
use core::mem::offset_of;

#[repr(C, align(128))]
#[derive(Debug)]
pub struct Paca {
    /// Scratch slots for the vector stubs: r12, r11 and CTR of the
    /// interrupted context, saved before `exc_common` runs.
    pub scratch: [u64; 4],
    /// Absolute address of `exc_common`, loaded by the low-memory stub.
    pub exc_entry: u64,
    /// Top of this thread's exception stack (16-byte aligned).
    pub exc_stack_top: u64,
    /// Processor identification register of this thread.
    pub pir: u64,
    /// Core index (dense, 0-based) and thread-in-core index.
    pub core_index: u32,
    pub thread_index: u32,
    /// Exceptions taken on this thread.
    pub exceptions: u64,
    /// Context of the last exception taken on this thread.
    pub frame: TrapFrame,
}

impl Paca {
    pub const fn new() -> Self {
        Paca {
            scratch: [0; 4],
            exc_entry: 0,
            exc_stack_top: 0,
            pir: 0,
            core_index: 0,
            thread_index: 0,
            exceptions: 0,
            frame: TrapFrame {
                gpr: [0; 32],
                cr: 0,
                xer: 0,
                lr: 0,
                ctr: 0,
                pc: 0,
                msr: 0,
                vector: 0,
                dar: 0,
                dsisr: 0,
                hdar: 0,
                hdsisr: 0,
                heir: 0,
                pir: 0,
            },
        }
    }
}

impl Default for Paca {
    fn default() -> Self {
        Self::new()
    }
}

pub const PACA_SCRATCH: usize = offset_of!(Paca, scratch);
pub const PACA_EXC_ENTRY: usize = offset_of!(Paca, exc_entry);
pub const PACA_EXC_STACK_TOP: usize = offset_of!(Paca, exc_stack_top);
pub const PACA_PIR: usize = offset_of!(Paca, pir);
pub const PACA_EXCEPTIONS: usize = offset_of!(Paca, exceptions);
pub const PACA_FRAME: usize = offset_of!(Paca, frame);

// The stubs address the paca with 16-bit signed displacements.
const _: () = assert!(core::mem::size_of::<Paca>() < 0x8000);
const _: () = assert!(PACA_FRAME.is_multiple_of(8) && PACA_SCRATCH.is_multiple_of(8));
