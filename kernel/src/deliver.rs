//! Interrupts this hypervisor delivers into a guest, as the processor
//! would deliver them in a partition: SRR0/SRR1 get the interrupted PC and
//! MSR (SRR1's interrupt bits carrying the reason), the guest continues at
//! the vector in 64-bit mode with its interrupt endianness (LPCR[ILE]) and
//! translation off — or relocated to 0xc000_0000_0000_4000 + vector with
//! translation on when it asked for AIL 3 (H_SET_MODE) and was running
//! translated; machine checks are never relocated. Also the guest
//! decrementer arithmetic and the choice between injecting an external
//! interrupt and arming LPCR[MER].

use ppc64::regs::GuestRegs;
use ppc64::spr::{MSR_DR, MSR_EE, MSR_IR, MSR_LE, MSR_ME, MSR_SF, SRR1_INTERRUPT_BITS};
use ppc64::trap::vector;

/// Where LPCR[AIL] = 3 puts relocated interrupts.
pub const AIL3_BASE: u64 = 0xc000_0000_0000_4000;

/// The guest's interrupt mode (H_SET_MODE: endianness and AIL).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterruptMode {
    /// LPCR[ILE]: interrupts run little-endian.
    pub little_endian: bool,
    /// LPCR[AIL]: 0 or 3.
    pub ail: u64,
}

/// Delivers the interrupt at `vector` with `reason` in SRR1; returns the
/// address the guest continues at.
pub fn deliver(r: &mut GuestRegs, mode: InterruptMode, vector: u64, reason: u64) -> u64 {
    let msr = r.msr;
    r.srr0 = r.pc;
    r.srr1 = (msr & !SRR1_INTERRUPT_BITS) | reason;
    let relocate = mode.ail == 3
        && vector != vector::MACHINE_CHECK
        && msr & (MSR_IR | MSR_DR) == MSR_IR | MSR_DR;
    let le = if mode.little_endian { MSR_LE } else { 0 };
    r.msr = MSR_SF | (msr & MSR_ME) | le;
    r.pc = vector;
    if relocate {
        r.msr |= MSR_IR | MSR_DR;
        r.pc = AIL3_BASE + vector;
    }
    r.pc
}

/// Delivers a machine check through FWNMI: as a machine check (SRR0/1,
/// MSR), but at the guest's registered `handler` with r3 = `log_gpa`.
pub fn deliver_fwnmi(
    r: &mut GuestRegs,
    mode: InterruptMode,
    handler: u64,
    log_gpa: u64,
    reason: u64,
) {
    deliver(r, mode, vector::MACHINE_CHECK, reason);
    r.pc = handler;
    r.gpr[3] = log_gpa;
}

/// What to do on entry about an external interrupt presented to the vcpu.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum External {
    /// Nothing presented.
    None,
    /// Deliver it now (the guest has MSR[EE] set).
    Inject,
    /// Arm LPCR[MER]: the guest takes it the moment it sets MSR[EE].
    Mediated,
}

pub fn external(presented: bool, msr: u64) -> External {
    match (presented, msr & MSR_EE != 0) {
        (false, _) => External::None,
        (true, true) => External::Inject,
        (true, false) => External::Mediated,
    }
}

/// Guest decrementer value `expires` ticks from `now`: a 32-bit signed
/// count (POWER8), sign-extended into the 64-bit register image; a past
/// expiry is negative, clamped so it never wraps positive.
pub fn dec_remaining(expires: u64, now: u64) -> u64 {
    let d = expires.wrapping_sub(now) as i64;
    d.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as u64
}

/// Whether the decrementer with `expires` has reached zero at `now`.
pub fn dec_expired(expires: u64, now: u64) -> bool {
    (dec_remaining(expires, now) as i64) <= 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppc64::spr::{MSR_PR, MSR_RI, SRR1_PROGRAM_ILLEGAL};

    fn running(msr: u64) -> GuestRegs {
        GuestRegs {
            pc: 0xc000_0000_0012_3450,
            msr,
            ..GuestRegs::default()
        }
    }

    const KERNEL: u64 = MSR_SF | MSR_IR | MSR_DR | MSR_ME | MSR_RI | MSR_EE | MSR_LE;

    #[test]
    fn program_interrupt_saves_state_and_enters_real_mode() {
        let mut r = running(KERNEL | MSR_PR);
        let le = InterruptMode {
            little_endian: true,
            ail: 0,
        };
        assert_eq!(
            deliver(&mut r, le, vector::PROGRAM, SRR1_PROGRAM_ILLEGAL),
            0x700
        );
        assert_eq!(r.srr0, 0xc000_0000_0012_3450);
        assert_eq!(r.srr1, KERNEL | MSR_PR | SRR1_PROGRAM_ILLEGAL);
        // 64-bit, machine checks still on, little-endian, nothing else.
        assert_eq!(r.msr, MSR_SF | MSR_ME | MSR_LE);
    }

    #[test]
    fn srr1_interrupt_bits_come_from_the_reason_not_the_msr() {
        let mut r = running(KERNEL | SRR1_INTERRUPT_BITS);
        deliver(&mut r, InterruptMode::default(), vector::EXTERNAL, 0);
        assert_eq!(r.srr1 & SRR1_INTERRUPT_BITS, 0);
        assert_eq!(r.msr & MSR_LE, 0, "big-endian interrupts without ILE");
    }

    #[test]
    fn ail3_relocates_only_from_translated_code_and_never_machine_checks() {
        let ail3 = InterruptMode {
            little_endian: true,
            ail: 3,
        };
        let mut r = running(KERNEL);
        assert_eq!(
            deliver(&mut r, ail3, vector::EXTERNAL, 0),
            AIL3_BASE + 0x500
        );
        assert_eq!(r.msr & (MSR_IR | MSR_DR), MSR_IR | MSR_DR);
        let mut real = running(MSR_SF | MSR_ME);
        assert_eq!(deliver(&mut real, ail3, vector::EXTERNAL, 0), 0x500);
        let mut mc = running(KERNEL);
        assert_eq!(deliver(&mut mc, ail3, vector::MACHINE_CHECK, 0), 0x200);
        assert_eq!(mc.msr & (MSR_IR | MSR_DR), 0);
    }

    #[test]
    fn fwnmi_goes_to_the_handler_with_the_log_in_r3() {
        let mut r = running(KERNEL);
        r.gpr[3] = 0x1234;
        deliver_fwnmi(
            &mut r,
            InterruptMode {
                little_endian: true,
                ail: 3,
            },
            0x7100,
            0xfff030,
            1 << 21,
        );
        assert_eq!((r.pc, r.gpr[3]), (0x7100, 0xfff030));
        assert_eq!(r.srr0, 0xc000_0000_0012_3450);
        assert_eq!(r.srr1 & (1 << 21), 1 << 21);
        assert_eq!(r.msr, MSR_SF | MSR_ME | MSR_LE);
    }

    #[test]
    fn external_is_injected_with_ee_and_mediated_without() {
        assert_eq!(external(false, MSR_EE), External::None);
        assert_eq!(external(true, MSR_EE), External::Inject);
        assert_eq!(external(true, 0), External::Mediated);
    }

    #[test]
    fn decrementer_counts_down_and_clamps_to_32_bits() {
        assert_eq!(dec_remaining(1100, 1000), 100);
        assert_eq!(dec_remaining(900, 1000) as i64, -100);
        assert_eq!(dec_remaining(u64::MAX / 2, 0), i32::MAX as u64);
        assert_eq!(dec_remaining(0, u64::MAX / 2) as i64, i64::from(i32::MIN));
        // The timebase wraps: still 100 ticks left.
        assert_eq!(dec_remaining(50, u64::MAX - 49), 100);
        assert!(dec_expired(1000, 1000) && dec_expired(999, 1000) && !dec_expired(1001, 1000));
    }
}
