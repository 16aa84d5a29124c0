//! Special-purpose register numbers (ISA 2.07 / POWER8; names as Linux's
//! `asm/reg.h` without the `SPRN_` prefix) and the register bit fields
//! (MSR, LPCR, SRR1, HFSCR, MMCR0). The one place each is written: Rust
//! uses the numbers with `cpu::mfspr::<N>()`, assembly as `const`
//! operands. Builds on the host, so portable code and its tests use the
//! same bits.

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
/// Directed privileged doorbell exception state: one bit per thread of
/// the core (bit t = thread t), shared by the core's threads.
pub const DPDES: u16 = 176;
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

// MSR.
pub const MSR_SF: u64 = 1 << 63;
pub const MSR_HV: u64 = 1 << 60;
/// Transactional memory available (31) and transaction state (29:30).
pub const MSR_TM: u64 = 1 << 32;
pub const MSR_TS: u64 = 3 << 33;
/// Problem state (49), instruction and data relocation (58, 59).
pub const MSR_PR: u64 = 1 << 14;
pub const MSR_IR: u64 = 1 << 5;
pub const MSR_DR: u64 = 1 << 4;
/// MSR bits a guest may never run with (it has no TM, and HV is the
/// hypervisor's), and bits it always runs with (machine checks enabled).
pub const MSR_GUEST_CLEAR: u64 = MSR_HV | MSR_TM | MSR_TS;
pub const MSR_GUEST_SET: u64 = MSR_ME;
pub const MSR_EE: u64 = 1 << 15;
pub const MSR_ME: u64 = 1 << 12;
pub const MSR_RI: u64 = 1 << 1;
pub const MSR_LE: u64 = 1;

/// MMCR0[FC]: freeze all counters (set while the hypervisor runs).
pub const MMCR0_FC: u64 = 1 << 31;

/// LPCR fields (ISA 2.07 bit numbers in comments).
pub const LPCR_VPM0: u64 = 1 << 63; // 0: VRMA for guest real mode
pub const LPCR_VPM1: u64 = 1 << 62; // 1: guest translation faults to the hypervisor
pub const LPCR_ILE: u64 = 1 << 25; // 38: guest interrupts little-endian
/// All power-saving exit enables (47-51; KVM calls bit 49 "PECE0", the ISA
/// "PECE2"). The names below say what each enables.
pub const LPCR_PECE: u64 = 0x1f << 12;
pub const LPCR_PECE_DOORBELL: u64 = 1 << 16; // 47: privileged doorbells
pub const LPCR_PECE_EXTERNAL: u64 = 1 << 14; // 49
pub const LPCR_PECE_DEC: u64 = 1 << 13; // 50
/// Mediated external request (52): the guest takes an external interrupt
/// as soon as its MSR[EE] is set.
pub const LPCR_MER: u64 = 1 << 11;
/// Alternate interrupt location (39:40); 3 = 0xc000_0000_0000_4000.
pub const LPCR_AIL_SHIFT: u32 = 23;
pub const LPCR_AIL: u64 = 3 << LPCR_AIL_SHIFT;
/// External interrupts go to the guest OS (1) or the hypervisor (0).
pub const LPCR_LPES0: u64 = 1 << 3; // 60
pub const LPCR_LPES1: u64 = 1 << 2; // 61

/// Largest positive value of the 32-bit POWER8 decrementer.
pub const DEC_MAX: u64 = 0x7fff_ffff;
/// LPCR: hypervisor decrementer interrupts enabled (63).
pub const LPCR_HDICE: u64 = 1;
/// LPCR VRMASD field (bits 12:16): the VRMA page size.
pub const LPCR_VRMASD_SHIFT: u32 = 47;
pub const LPCR_VRMASD: u64 = 0x1f << LPCR_VRMASD_SHIFT;

// SRR1 (and HSRR1) fields an interrupt sets.
/// Bits an interrupt sets (33:36, 42:47); the others copy the MSR.
pub const SRR1_INTERRUPT_BITS: u64 = 0x7800_0000 | 0x003f_0000;
/// Program interrupt: illegal instruction (44), trap instruction (46).
pub const SRR1_PROGRAM_ILLEGAL: u64 = 1 << 19;
pub const SRR1_PROGRAM_TRAP: u64 = 1 << 17;
/// Machine check caused by a load or store (42).
pub const SRR1_MC_DATA_SIDE: u64 = 1 << 21;
/// System reset from a power-saving state: the wake reason (42:45) ...
pub const SRR1_WAKE_MASK: u64 = 0x003c_0000;
pub const SRR1_WAKE_EXTERNAL: u64 = 0x0020_0000;
pub const SRR1_WAKE_DEC: u64 = 0x0018_0000;
pub const SRR1_WAKE_DBELL: u64 = 0x0014_0000;
pub const SRR1_WAKE_HDBELL: u64 = 0x000c_0000;
/// ... and what the state lost (46:47; 0 = not a wake-up).
pub const SRR1_WS_MASK: u64 = 0x0003_0000;
pub const SRR1_WS_NOLOSS: u64 = 0x0001_0000;
pub const SRR1_WS_GPRLOSS: u64 = 0x0002_0000;
pub const SRR1_WS_HVLOSS: u64 = 0x0003_0000;

// HFSCR facilities (bit 63 - n).
pub const HFSCR_FP: u64 = 1 << 0;
pub const HFSCR_VECVSX: u64 = 1 << 1;
pub const HFSCR_DSCR: u64 = 1 << 2;
pub const HFSCR_PM: u64 = 1 << 3;
pub const HFSCR_BHRB: u64 = 1 << 4;
pub const HFSCR_TM: u64 = 1 << 5;
pub const HFSCR_EBB: u64 = 1 << 7;
pub const HFSCR_TAR: u64 = 1 << 8;
pub const HFSCR_MSGP: u64 = 1 << 10;
