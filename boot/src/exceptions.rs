//! The boot thread's per-thread area and the Rust side of exception entry.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use log::error;
use ppc64::paca::Paca;
use ppc64::trap::{TrapFrame, TrapReport};
use ppc64::{cpu, vectors};

/// Every thread's exception stack (the boot thread's is static, the
/// others' come from the heap).
pub const EXC_STACK_SIZE: usize = 32 * 1024;

#[repr(C, align(16))]
struct ExcStack([u8; EXC_STACK_SIZE]);

/// Memory that is shared with assembly and handed out by address only.
struct HwCell<T>(UnsafeCell<T>);
// SAFETY: each cell is only touched by the thread that owns it (the boot
// thread here) and by that thread's exception entry.
unsafe impl<T> Sync for HwCell<T> {}

static BOOT_PACA: HwCell<Paca> = HwCell(UnsafeCell::new(Paca::new()));
static BOOT_EXC_STACK: HwCell<ExcStack> = HwCell(UnsafeCell::new(ExcStack([0; EXC_STACK_SIZE])));

/// Sets up the boot thread's per-thread area, points HSPRG0 at it, copies
/// the exception vectors to real address 0, and enables machine checks.
pub fn init_boot_thread() {
    let paca = BOOT_PACA.0.get();
    let stack_top = BOOT_EXC_STACK.0.get() as u64 + EXC_STACK_SIZE as u64;
    // SAFETY: the boot thread is the only thread running; nothing else
    // references BOOT_PACA yet, and no exception has used the bottom of
    // BOOT_EXC_STACK (the guard zone).
    unsafe {
        (*paca).exc_entry = vectors::exc_common_address();
        (*paca).exc_stack_top = stack_top & !15;
        (*paca).exc_stack_zone = crate::stacks::arm_static(BOOT_EXC_STACK.0.get() as u64);
        ((*paca).stack_zone, (*paca).stack_top) = crate::entry::boot_stack();
        cpu::mtspr::<{ ppc64::spr::HSPRG0 }>(paca as u64);
        vectors::install();
    }
    cpu::enable_machine_check();
    log::info!(
        target: "trap",
        "exception vectors installed at 0x0-{:#x} (little-endian), per-thread area at {:#x}",
        vectors::vectors_len(),
        paca as u64
    );
}

/// Test only (`hv.test=resume`): the next `trap` resumes after itself.
pub static RESUME_NEXT_TRAP: AtomicBool = AtomicBool::new(false);
/// Test only: the next HDEC interrupt is counted and returned from.
pub static HDEC_ARMED: AtomicBool = AtomicBool::new(false);
pub static HDEC_TAKEN: AtomicU64 = AtomicU64::new(0);

/// Called by `__exc_common` with the saved context. Apart from the
/// test-only probes above, every exception is unexpected: report it and
/// stop the machine.
#[unsafe(no_mangle)]
pub extern "C" fn hv_exception(frame: &mut TrapFrame) {
    // An exception from a stack that ran into its guard zone is reported
    // as the overflow it is.
    crate::stacks::check_exception(frame.gpr[1]);
    match frame.vector_offset() {
        0x700
            if frame.msr & ppc64::spr::SRR1_PROGRAM_TRAP != 0
                && RESUME_NEXT_TRAP.swap(false, Ordering::AcqRel) =>
        {
            frame.pc += 4;
            return;
        }
        0x980 if HDEC_ARMED.swap(false, Ordering::AcqRel) => {
            cpu::set_hdec(ppc64::spr::DEC_MAX);
            HDEC_TAKEN.fetch_add(1, Ordering::AcqRel);
            return;
        }
        _ => {}
    }
    TrapReport(frame).for_each_line(|l| error!(target: "trap", "{l}"));
    crate::machine::power_off(false)
}
