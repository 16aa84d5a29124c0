//! The trap frame shared by the exception-entry assembly and Rust, and the
//! human-readable report printed for an unexpected exception.

use core::fmt;
use core::mem::offset_of;

/// Vector numbers are multiples of 0x20; the entry stubs set bit 0 of the
/// vector word when the interrupt saved its state in HSRR0/1 (hypervisor
/// interrupts) rather than SRR0/1.
pub const VEC_HSRR_FLAG: u64 = 1;

/// Interrupted context, saved by `exc_common` (vectors.rs) into the
/// per-thread area. The assembly addresses every field through the
/// `FRAME_*` constants below, which are computed from this declaration.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    pub gpr: [u64; 32],
    pub cr: u64,
    pub xer: u64,
    pub lr: u64,
    pub ctr: u64,
    /// SRR0 or HSRR0, whichever the vector uses.
    pub pc: u64,
    /// SRR1 or HSRR1, whichever the vector uses.
    pub msr: u64,
    /// Vector offset | `VEC_HSRR_FLAG` when HSRR0/1 hold the state.
    pub vector: u64,
    pub dar: u64,
    pub dsisr: u64,
    pub hdar: u64,
    pub hdsisr: u64,
    /// Hypervisor emulation instruction register (0xE40).
    pub heir: u64,
    /// PIR of the thread that took the interrupt.
    pub pir: u64,
}

pub const FRAME_GPR: usize = offset_of!(TrapFrame, gpr);
pub const FRAME_CR: usize = offset_of!(TrapFrame, cr);
pub const FRAME_XER: usize = offset_of!(TrapFrame, xer);
pub const FRAME_LR: usize = offset_of!(TrapFrame, lr);
pub const FRAME_CTR: usize = offset_of!(TrapFrame, ctr);
pub const FRAME_PC: usize = offset_of!(TrapFrame, pc);
pub const FRAME_MSR: usize = offset_of!(TrapFrame, msr);
pub const FRAME_VECTOR: usize = offset_of!(TrapFrame, vector);
pub const FRAME_DAR: usize = offset_of!(TrapFrame, dar);
pub const FRAME_DSISR: usize = offset_of!(TrapFrame, dsisr);
pub const FRAME_HDAR: usize = offset_of!(TrapFrame, hdar);
pub const FRAME_HDSISR: usize = offset_of!(TrapFrame, hdsisr);
pub const FRAME_HEIR: usize = offset_of!(TrapFrame, heir);
pub const FRAME_PIR: usize = offset_of!(TrapFrame, pir);

// The assembly uses `std`/`ld` (DS-form, 16-bit displacements) and needs
// doubleword alignment of every slot.
const _: () = assert!(core::mem::size_of::<TrapFrame>().is_multiple_of(8));
const _: () = assert!(FRAME_GPR == 0 && FRAME_CR == 32 * 8);

impl TrapFrame {
    /// The vector offset without the HSRR flag.
    pub fn vector_offset(&self) -> u64 {
        self.vector & !VEC_HSRR_FLAG
    }

    /// True when the interrupt saved its state in HSRR0/1.
    pub fn uses_hsrr(&self) -> bool {
        self.vector & VEC_HSRR_FLAG != 0
    }
}

/// Interrupt vector offsets (ISA 2.07), named once.
pub mod vector {
    pub const SYSTEM_RESET: u64 = 0x100;
    pub const MACHINE_CHECK: u64 = 0x200;
    pub const DATA_STORAGE: u64 = 0x300;
    pub const DATA_SEGMENT: u64 = 0x380;
    pub const INSTRUCTION_STORAGE: u64 = 0x400;
    pub const INSTRUCTION_SEGMENT: u64 = 0x480;
    pub const EXTERNAL: u64 = 0x500;
    pub const ALIGNMENT: u64 = 0x600;
    pub const PROGRAM: u64 = 0x700;
    pub const FP_UNAVAILABLE: u64 = 0x800;
    pub const DECREMENTER: u64 = 0x900;
    pub const HV_DECREMENTER: u64 = 0x980;
    pub const DOORBELL: u64 = 0xa00;
    pub const SYSTEM_CALL: u64 = 0xc00;
    pub const TRACE: u64 = 0xd00;
    pub const HV_DATA_STORAGE: u64 = 0xe00;
    pub const HV_INSTRUCTION_STORAGE: u64 = 0xe20;
    pub const HV_EMULATION: u64 = 0xe40;
    pub const HV_MAINTENANCE: u64 = 0xe60;
    pub const HV_DOORBELL: u64 = 0xe80;
    pub const PERFORMANCE_MONITOR: u64 = 0xf00;
    pub const VECTOR_UNAVAILABLE: u64 = 0xf20;
    pub const VSX_UNAVAILABLE: u64 = 0xf40;
    pub const FACILITY_UNAVAILABLE: u64 = 0xf60;
    pub const HV_FACILITY_UNAVAILABLE: u64 = 0xf80;
}

/// Every POWER8 (ISA 2.07) vector from 0x100 to 0xF80, with the save
/// registers it uses. Slots not listed here are reserved on POWER8.
pub const VECTORS: &[(u64, &str, bool)] = &[
    (vector::SYSTEM_RESET, "system reset", false),
    (vector::MACHINE_CHECK, "machine check", false),
    (vector::DATA_STORAGE, "data storage", false),
    (vector::DATA_SEGMENT, "data segment", false),
    (vector::INSTRUCTION_STORAGE, "instruction storage", false),
    (vector::INSTRUCTION_SEGMENT, "instruction segment", false),
    // With LPCR[LPES0]=0 external interrupts go to the hypervisor (HSRR).
    (vector::EXTERNAL, "external", true),
    (vector::ALIGNMENT, "alignment", false),
    (vector::PROGRAM, "program", false),
    (vector::FP_UNAVAILABLE, "floating-point unavailable", false),
    (vector::DECREMENTER, "decrementer", false),
    (vector::HV_DECREMENTER, "hypervisor decrementer", true),
    (vector::DOORBELL, "directed privileged doorbell", false),
    (vector::SYSTEM_CALL, "system call", false),
    (vector::TRACE, "trace", false),
    (vector::HV_DATA_STORAGE, "hypervisor data storage", true),
    (
        vector::HV_INSTRUCTION_STORAGE,
        "hypervisor instruction storage",
        true,
    ),
    (
        vector::HV_EMULATION,
        "hypervisor emulation assistance",
        true,
    ),
    (vector::HV_MAINTENANCE, "hypervisor maintenance", true),
    (vector::HV_DOORBELL, "directed hypervisor doorbell", true),
    (vector::PERFORMANCE_MONITOR, "performance monitor", false),
    (vector::VECTOR_UNAVAILABLE, "vector unavailable", false),
    (vector::VSX_UNAVAILABLE, "VSX unavailable", false),
    (vector::FACILITY_UNAVAILABLE, "facility unavailable", false),
    (
        vector::HV_FACILITY_UNAVAILABLE,
        "hypervisor facility unavailable",
        true,
    ),
];

/// Name of a vector, "reserved vector" for slots POWER8 does not define.
pub fn vector_name(offset: u64) -> &'static str {
    VECTORS
        .iter()
        .find(|v| v.0 == offset)
        .map(|v| v.1)
        .unwrap_or("reserved vector")
}

/// True when the vector at `offset` saves state in HSRR0/1.
pub fn vector_uses_hsrr(offset: u64) -> bool {
    VECTORS.iter().any(|v| v.0 == offset && v.2)
}

/// A multi-line report of an unexpected exception. Each `Display` line is
/// meant to be printed as its own console line by the caller.
pub struct TrapReport<'a>(pub &'a TrapFrame);

impl TrapReport<'_> {
    /// Writes the report one line at a time through `line`.
    pub fn for_each_line(&self, mut line: impl FnMut(fmt::Arguments<'_>)) {
        let f = self.0;
        let off = f.vector_offset();
        let (p, m) = if f.uses_hsrr() {
            ("HSRR0", "HSRR1")
        } else {
            ("SRR0", "SRR1")
        };
        line(format_args!(
            "unexpected exception {:#05x} ({}) on PIR {:#x}",
            off,
            vector_name(off),
            f.pir
        ));
        line(format_args!("{}={:#018x} {}={:#018x}", p, f.pc, m, f.msr));
        line(format_args!(
            "DAR={:#018x} DSISR={:#010x} HDAR={:#018x} HDSISR={:#010x} HEIR={:#010x}",
            f.dar, f.dsisr, f.hdar, f.hdsisr, f.heir
        ));
        line(format_args!(
            "LR={:#018x} CTR={:#018x} CR={:#010x} XER={:#018x}",
            f.lr, f.ctr, f.cr, f.xer
        ));
        for row in 0..8 {
            let r = row * 4;
            line(format_args!(
                "r{:<2}={:#018x} r{:<2}={:#018x} r{:<2}={:#018x} r{:<2}={:#018x}",
                r,
                f.gpr[r],
                r + 1,
                f.gpr[r + 1],
                r + 2,
                f.gpr[r + 2],
                r + 3,
                f.gpr[r + 3]
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::{String, ToString};
    use std::vec::Vec;

    #[test]
    fn every_power8_vector_has_a_name_and_the_right_save_pair() {
        assert_eq!(vector_name(0x700), "program");
        assert_eq!(vector_name(0xE40), "hypervisor emulation assistance");
        assert_eq!(vector_name(0xB00), "reserved vector");
        assert!(vector_uses_hsrr(0x980));
        assert!(vector_uses_hsrr(0xE00));
        assert!(!vector_uses_hsrr(0xC00));
        assert!(!vector_uses_hsrr(0x300));
        for v in VECTORS {
            assert_eq!(v.0 % 0x20, 0, "{:#x}", v.0);
            assert!((0x100..=0xF80).contains(&v.0));
        }
    }

    #[test]
    fn report_names_vector_pair_and_all_gprs() {
        let mut f = TrapFrame {
            vector: 0x980 | VEC_HSRR_FLAG,
            pc: 0x2000_1234,
            pir: 0x11,
            ..Default::default()
        };
        for (i, g) in f.gpr.iter_mut().enumerate() {
            *g = 0x1000 + i as u64;
        }
        let mut lines: Vec<String> = Vec::new();
        TrapReport(&f).for_each_line(|a| lines.push(a.to_string()));
        assert!(lines[0].contains("0x980 (hypervisor decrementer) on PIR 0x11"));
        assert!(lines[1].starts_with("HSRR0=0x0000000020001234"));
        let all = lines.join("\n");
        assert!(all.contains("r31=0x000000000000101f"));
        assert!(all.contains("r0 =0x0000000000001000"));
        assert_eq!(lines.len(), 12);
    }
}
