//! The guard zones under every hypervisor stack (`kernel::stackguard`):
//! made when the stacks are, checked on every slow guest exit and (the
//! thread stack's) before every idle nap (quick: the zone's top words), on
//! every hypervisor exception
//! (the interrupted r1) and in the failure report (every thread, whole
//! zones).

use alloc::boxed::Box;
use alloc::vec;
use kernel::stackguard::{self, Guarded, Overflow, StackKind, ZONE_BYTES};
use ppc64::paca::Paca;
use ppc64::{cpu, power};

/// A new heap stack of `usable` bytes with its guard zone below it:
/// (zone, top).
pub fn new_stack(usable: usize) -> (u64, u64) {
    let words = (ZONE_BYTES + usable) / 8;
    let s: &'static mut [u64] = Box::leak(vec![0u64; words].into_boxed_slice());
    stackguard::arm(&mut s[..ZONE_BYTES / 8]);
    let zone = s.as_ptr() as u64;
    (zone, (zone + (words * 8) as u64) & !15)
}

/// Arms the zone at the bottom of a static stack (`base`: its lowest
/// address, 8-byte aligned) and returns the zone's address.
///
/// # Safety
/// `base..base + ZONE_BYTES` must be part of that stack, below anything
/// in use, and used by nothing else.
pub unsafe fn arm_static(base: u64) -> u64 {
    // SAFETY: as the caller promises.
    stackguard::arm(unsafe { core::slice::from_raw_parts_mut(base as *mut u64, ZONE_BYTES / 8) });
    base
}

/// The two guarded stacks of the thread owning `paca` (a zone of 0: not
/// set up).
fn stacks(p: &Paca) -> [Guarded; 2] {
    [
        Guarded {
            kind: StackKind::Thread,
            zone: p.stack_zone,
            top: p.stack_top,
        },
        Guarded {
            kind: StackKind::Exception,
            zone: p.exc_stack_zone,
            top: p.exc_stack_top,
        },
    ]
}

fn zone(g: &Guarded) -> &'static [u64] {
    // SAFETY: a non-zero zone was armed by `new_stack`/`arm_static`, is
    // 8-byte aligned and never freed; the stack above only grows into it
    // by overflowing, which is what is checked.
    unsafe { core::slice::from_raw_parts(g.zone as *const u64, ZONE_BYTES / 8) }
}

/// The quick check of this thread's stacks; an overflow stops the machine
/// with the failure report.
#[inline]
pub fn check() {
    for g in stacks(power::this_paca()) {
        quick_check(g);
    }
}

/// The quick check of the thread stack alone, for the idle loop: every
/// cross-thread call passes there (on both sides), and the exception
/// stack, used only by hypervisor exceptions, is checked by each of them
/// ([`check_exception`]) and on slow exits.
#[inline]
pub fn check_thread_stack() {
    let [thread, _] = stacks(power::this_paca());
    quick_check(thread);
}

#[inline(always)]
fn quick_check(g: Guarded) {
    if g.zone != 0 && !stackguard::quick_ok(zone(&g)) {
        overflowed(g);
    }
}

/// A hypervisor exception interrupted code whose stack pointer was `r1`:
/// an overflow if it lies in (or just under) one of this thread's zones.
pub fn check_exception(r1: u64) {
    for g in stacks(power::this_paca()) {
        if g.zone != 0 && g.overflowed_to(r1) {
            crate::machine::fatal(format_args!(
                "PIR {:#x}: {} overflow: exception with r1 {r1:#x}, below the stack's bottom {:#x}",
                cpu::pir(),
                g.kind.name(),
                g.bottom()
            ));
        }
    }
    check();
}

/// The failure report names every written zone, this one included.
#[cold]
fn overflowed(_: Guarded) -> ! {
    crate::machine::power_off(false)
}

/// For the failure report: every thread's zones, checked in full; one
/// line for each that was written into.
pub fn report_all() {
    for (pir, p) in power::pacas() {
        for g in stacks(p) {
            if g.zone == 0 {
                continue;
            }
            let depth = stackguard::overwritten(zone(&g));
            if depth != 0 {
                log::error!(target: "hv", "PIR {pir:#x}: {}", Overflow { stack: g, depth });
            }
        }
    }
}
