//! The per-thread area (the hypervisor's PACA), reachable from HSPRG0 in
//! exception entry. The vector stubs and `exc_common` address it through
//! the `PACA_*` constants, computed from the declaration below.

use crate::trap::TrapFrame;
use core::mem::offset_of;

#[repr(C, align(128))]
#[derive(Debug)]
pub struct Paca {
    /// Scratch slots for the vector stubs: r12, r11, CTR and CFAR of the
    /// interrupted context, saved before `exc_common` runs.
    pub scratch: [u64; SCRATCH_SLOTS],
    /// Absolute address of `exc_common`, loaded by the low-memory stub.
    pub exc_entry: u64,
    /// Top of this thread's exception stack (16-byte aligned).
    pub exc_stack_top: u64,
    /// Exceptions taken on this thread.
    pub exceptions: u64,
    /// Index of this thread in the hypervisor's CPU table.
    pub cpu_id: u64,
    /// Top of this thread's normal stack (for a secondary's first entry).
    pub stack_top: u64,
    /// Lowest address of the guard zones under the thread and exception
    /// stacks (`kernel::stackguard`).
    pub stack_zone: u64,
    pub exc_stack_zone: u64,
    /// SRR1 of the last wake-up from nap.
    pub wake_srr1: u64,
    /// Context saved by `__power_nap` and restored by `__nap_wake`.
    pub nap: HostContext,
    /// The guest register block while a guest runs on this thread.
    pub guest_regs: u64,
    /// This entry's `VcpuEntry::hcall_ctx`, for the hypercall fast path.
    pub hcall_ctx: u64,
    /// Hypervisor context saved by `__guest_enter`, restored at guest exit
    /// (same layout as the nap save area).
    pub host: HostContext,
    /// Context of the last exception taken on this thread.
    pub frame: TrapFrame,
}

/// What a thread needs to resume hypervisor code after nap or a guest's
/// run: the non-volatile GPRs (r1, r2, r13-r31), CR and LR of the
/// `__power_nap` or `__guest_enter` caller, and the partition
/// SPRs a POWER8 can lose in deeper power-saving states (restored only when
/// SRR1 says hypervisor state was lost). POWER8 nap itself loses nothing,
/// and QEMU never loses anything; sleep/winkle would also lose HID0/HMEER,
/// which OPAL's SLW engine restores, and this firmware never enters them.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct HostContext {
    pub r1: u64,
    pub r2: u64,
    /// r13..=r31
    pub nvgpr: [u64; 19],
    pub cr: u64,
    pub lr: u64,
    pub lpcr: u64,
    pub sdr1: u64,
    pub lpidr: u64,
}

impl HostContext {
    pub const fn new() -> Self {
        HostContext {
            r1: 0,
            r2: 0,
            nvgpr: [0; 19],
            cr: 0,
            lr: 0,
            lpcr: 0,
            sdr1: 0,
            lpidr: 0,
        }
    }
}

impl Paca {
    pub const fn new() -> Self {
        Paca {
            scratch: [0; SCRATCH_SLOTS],
            exc_entry: 0,
            exc_stack_top: 0,
            exceptions: 0,
            cpu_id: 0,
            stack_top: 0,
            stack_zone: 0,
            exc_stack_zone: 0,
            wake_srr1: 0,
            nap: HostContext::new(),
            guest_regs: 0,
            hcall_ctx: 0,
            host: HostContext::new(),
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
/// The scratch slots by use: the interrupted r12, r11, CTR and CFAR.
pub const PACA_SCRATCH_R12: usize = PACA_SCRATCH;
pub const PACA_SCRATCH_R11: usize = PACA_SCRATCH + 8;
pub const PACA_SCRATCH_CTR: usize = PACA_SCRATCH + 16;
pub const PACA_SCRATCH_CFAR: usize = PACA_SCRATCH + 24;
/// Scratch slots in the per-thread area: one per use above.
pub const SCRATCH_SLOTS: usize = 4;
const _: () = assert!(PACA_SCRATCH_CFAR + 8 == PACA_SCRATCH + 8 * SCRATCH_SLOTS);
pub const PACA_EXC_ENTRY: usize = offset_of!(Paca, exc_entry);
pub const PACA_EXC_STACK_TOP: usize = offset_of!(Paca, exc_stack_top);
pub const PACA_EXCEPTIONS: usize = offset_of!(Paca, exceptions);
pub const PACA_FRAME: usize = offset_of!(Paca, frame);
pub const PACA_STACK_TOP: usize = offset_of!(Paca, stack_top);
pub const PACA_WAKE_SRR1: usize = offset_of!(Paca, wake_srr1);
pub const PACA_NAP_R1: usize = offset_of!(Paca, nap) + offset_of!(HostContext, r1);
pub const PACA_NAP_R2: usize = offset_of!(Paca, nap) + offset_of!(HostContext, r2);
pub const PACA_NAP_NVGPR: usize = offset_of!(Paca, nap) + offset_of!(HostContext, nvgpr);
pub const PACA_NAP_CR: usize = offset_of!(Paca, nap) + offset_of!(HostContext, cr);
pub const PACA_NAP_LR: usize = offset_of!(Paca, nap) + offset_of!(HostContext, lr);
pub const PACA_NAP_LPCR: usize = offset_of!(Paca, nap) + offset_of!(HostContext, lpcr);
pub const PACA_NAP_SDR1: usize = offset_of!(Paca, nap) + offset_of!(HostContext, sdr1);
pub const PACA_NAP_LPIDR: usize = offset_of!(Paca, nap) + offset_of!(HostContext, lpidr);

pub const PACA_GUEST_REGS: usize = offset_of!(Paca, guest_regs);
pub const PACA_HCALL_CTX: usize = offset_of!(Paca, hcall_ctx);
pub const PACA_HOST_R1: usize = offset_of!(Paca, host) + offset_of!(HostContext, r1);
pub const PACA_HOST_R2: usize = offset_of!(Paca, host) + offset_of!(HostContext, r2);
pub const PACA_HOST_NVGPR: usize = offset_of!(Paca, host) + offset_of!(HostContext, nvgpr);
pub const PACA_HOST_CR: usize = offset_of!(Paca, host) + offset_of!(HostContext, cr);
pub const PACA_HOST_LR: usize = offset_of!(Paca, host) + offset_of!(HostContext, lr);
pub const PACA_HOST_LPCR: usize = offset_of!(Paca, host) + offset_of!(HostContext, lpcr);
pub const PACA_HOST_SDR1: usize = offset_of!(Paca, host) + offset_of!(HostContext, sdr1);
pub const PACA_HOST_LPIDR: usize = offset_of!(Paca, host) + offset_of!(HostContext, lpidr);

/// Entries of the PIR -> per-thread-area table (POWER8 PIRs are 13 bits).
pub const PIR_TABLE_SIZE: usize = 8192;
pub const PIR_MASK: u64 = PIR_TABLE_SIZE as u64 - 1;

// The stubs address the paca with 16-bit signed displacements.
const _: () = assert!(core::mem::size_of::<Paca>() < 0x8000);
const _: () = assert!(PACA_FRAME.is_multiple_of(8) && PACA_SCRATCH.is_multiple_of(8));

/// Saves r1, r2, r13-r31, CR and LR into a `HostContext` at r13 + offsets
/// named `{sv_r1}`, `{sv_r2}`, `{sv_nv}`, `{sv_cr}`, `{sv_lr}` (bound by
/// the `global_asm!` that uses it); clobbers r0. Used by `__power_nap`
/// (Paca::nap) and `__guest_enter` (Paca::host).
#[macro_export]
macro_rules! save_nv_asm {
    () => {
        r#"
        std 1, {sv_r1}(13)
        std 2, {sv_r2}(13)
        .irp n, 13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        std \n, {sv_nv}+(\n-13)*8(13)
        .endr
        mfcr 0
        std 0, {sv_cr}(13)
        mflr 0
        std 0, {sv_lr}(13)
        "#
    };
}

/// The reverse of `save_nv_asm!`: restores r1, r2, r14-r31, CR and LR,
/// and r13 last (it is the base); clobbers r0.
#[macro_export]
macro_rules! restore_nv_asm {
    () => {
        r#"
        ld 0, {sv_cr}(13)
        mtcrf 0xff, 0
        ld 0, {sv_lr}(13)
        mtlr 0
        ld 1, {sv_r1}(13)
        ld 2, {sv_r2}(13)
        .irp n, 14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        ld \n, {sv_nv}+(\n-13)*8(13)
        .endr
        ld 13, {sv_nv}(13)
        "#
    };
}
