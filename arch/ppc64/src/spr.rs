//! Special-purpose register numbers (ISA 2.07 / POWER8; names as Linux's
//! `asm/reg.h` without the `SPRN_` prefix). The one place an SPR number is
//! written: Rust uses them with `cpu::mfspr::<N>()`, assembly as `const`
//! operands.

// Supervisor (guest-visible) state.
pub const AMR: u16 = 13;
pub const DSCR: u16 = 17;
pub const DSISR: u16 = 18;
pub const DAR: u16 = 19;
pub const DEC: u16 = 22;
pub const SDR1: u16 = 25;
pub const SRR0: u16 = 26;
pub const SRR1: u16 = 27;
/// Come-from address: the last taken branch (and rfid-class return).
pub const CFAR: u16 = 28;
pub const IAMR: u16 = 61;
pub const AMOR: u16 = 93;
pub const FSCR: u16 = 153;
pub const UAMOR: u16 = 157;
pub const PSPB: u16 = 159;
pub const VRSAVE: u16 = 256;
pub const SPRG0: u16 = 272;
pub const SPRG1: u16 = 273;
pub const SPRG2: u16 = 274;
pub const SPRG3: u16 = 275;
pub const TAR: u16 = 815;
pub const PPR: u16 = 896;

// Hypervisor state.
pub const DAWR: u16 = 180;
pub const CIABR: u16 = 187;
pub const DAWRX: u16 = 188;
pub const HFSCR: u16 = 190;
pub const HSPRG0: u16 = 304;
pub const HSPRG1: u16 = 305;
pub const HDSISR: u16 = 306;
pub const HDAR: u16 = 307;
/// Processor utilization counters (scaled and not).
pub const SPURR: u16 = 308;
pub const PURR: u16 = 309;
pub const HDEC: u16 = 310;
pub const HSRR0: u16 = 314;
pub const HSRR1: u16 = 315;
pub const LPCR: u16 = 318;
pub const LPIDR: u16 = 319;
pub const HEIR: u16 = 339;
/// Instruction counter and virtual timebase.
pub const IC: u16 = 0x350;
pub const VTB: u16 = 0x351;
pub const PIR: u16 = 1023;

// Performance monitor and event-based branches.
pub const SIAR: u16 = 780;
pub const SDAR: u16 = 781;
pub const SIER: u16 = 784;
pub const MMCR2: u16 = 785;
pub const MMCRA: u16 = 786;
pub const PMC1: u16 = 787;
pub const PMC2: u16 = 788;
pub const PMC3: u16 = 789;
pub const PMC4: u16 = 790;
pub const PMC5: u16 = 791;
pub const PMC6: u16 = 792;
pub const MMCR0: u16 = 795;
pub const MMCR1: u16 = 798;
pub const EBBHR: u16 = 804;
pub const EBBRR: u16 = 805;
pub const BESCR: u16 = 806;
