//! The register image of a vcpu while it is not running, what the
//! partition switch loads, and the decoded exit: plain data shared with the
//! entry/exit assembly (guest.rs), host-buildable so portable code and its
//! tests use the same types.

use crate::sizes::SLB_SIZE;
use crate::spr;

/// One SLB entry as `slbmfee`/`slbmfev` return it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SlbEntry {
    /// ESID | V (the index is OR-ed in when loading).
    pub esid: u64,
    pub vsid: u64,
}

/// The guest's register state while it is not running.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GuestRegs {
    pub gpr: [u64; 32],
    pub cr: u64,
    pub xer: u64,
    pub lr: u64,
    pub ctr: u64,
    /// Next instruction address (loaded into HSRR0 on entry).
    pub pc: u64,
    /// Guest MSR (loaded into HSRR1 on entry; HV is always clear).
    pub msr: u64,
    pub srr0: u64,
    pub srr1: u64,
    pub sprg: [u64; 4],
    pub dar: u64,
    pub dsisr: u64,
    pub dec: u64,
    pub amr: u64,
    /// Problem-state-visible SPRs a guest (Linux) uses: DSCR, PPR, TAR,
    /// FSCR, PSPB, IAMR, UAMOR.
    pub dscr: u64,
    pub ppr: u64,
    pub tar: u64,
    pub fscr: u64,
    pub pspb: u64,
    pub iamr: u64,
    pub uamor: u64,
    /// Performance monitor: MMCR0, MMCR1, MMCR2, MMCRA, PMC1-6, SIAR,
    /// SDAR, SIER (HFSCR[PM] is given to guests).
    pub pmu: [u64; 13],
    /// Event-based branches: EBBHR, EBBRR, BESCR (HFSCR[EBB]).
    pub ebb: [u64; 3],
    /// Instruction counter and virtual timebase.
    pub ic: u64,
    pub vtb: u64,
    /// Breakpoints, set through H_SET_MODE (hypervisor-privileged SPRs:
    /// the guest cannot write them itself, so they are only loaded).
    pub dawr: u64,
    pub dawrx: u64,
    pub ciabr: u64,
    /// Come-from address register (captured by the vector stub before its
    /// first branch) and the utilization counters, which count only while
    /// the guest runs.
    pub cfar: u64,
    pub purr: u64,
    pub spurr: u64,
    /// Saved at exit for the handlers.
    pub hdar: u64,
    pub hdsisr: u64,
    pub heir: u64,
    pub exit_vector: u64,
    pub slb: [SlbEntry; SLB_SIZE],
    /// Entries of `slb` up to the last valid one: what `slb_load` walks
    /// (set by `slb_save_clear`).
    pub slb_used: u64,
}

impl Default for GuestRegs {
    fn default() -> Self {
        GuestRegs {
            gpr: [0; 32],
            cr: 0,
            xer: 0,
            lr: 0,
            ctr: 0,
            pc: 0,
            msr: 0,
            srr0: 0,
            srr1: 0,
            sprg: [0; 4],
            dar: 0,
            dsisr: 0,
            dec: 0,
            amr: 0,
            dscr: 0,
            ppr: PPR_DEFAULT,
            tar: 0,
            fscr: 0,
            pspb: 0,
            iamr: 0,
            uamor: 0,
            // Counters frozen until the guest starts them.
            pmu: [crate::spr::MMCR0_FC, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ebb: [0; 3],
            ic: 0,
            vtb: 0,
            dawr: 0,
            dawrx: 0,
            ciabr: 0,
            cfar: 0,
            purr: 0,
            spurr: 0,
            hdar: 0,
            hdsisr: 0,
            heir: 0,
            exit_vector: 0,
            slb: [SlbEntry::default(); SLB_SIZE],
            slb_used: 0,
        }
    }
}

/// What the partition switch loads (thread 0, when a vcore starts).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PartitionRegs {
    pub lpid: u64,
    pub sdr1: u64,
    pub lpcr: u64,
    /// Non-zero: flush this core's TLB for the LPID before entering.
    pub flush_tlb: u64,
    /// TLB congruence classes to walk for the flush (512 on POWER8).
    pub tlb_sets: u64,
}

/// What one vcpu entry loads besides the vcpu's registers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VcpuEntry {
    /// LPCR for this entry (MER when an interrupt waits for MSR[EE]).
    pub lpcr: u64,
    /// Time slice in timebase ticks (HDEC, 32 bits on POWER8).
    pub hdec: u64,
    /// Facilities the guest may use (HFSCR); others trap to the hypervisor.
    pub hfscr: u64,
    /// Passed to the hypercall fast path's handler (`hv_hcall_fast`)
    /// with the register image, unchanged: whatever it needs for this run.
    pub hcall_ctx: u64,
    /// Nonzero: load DEC (the image's) and HDEC (`hdec`). Zero: both are
    /// still what the last exit on this thread left running (the guest's
    /// decrementer, this slice's HDEC), so nothing is written: on QEMU each
    /// write re-arms a host timer and wakes its main loop.
    pub load_timers: u64,
}

/// The two exit paths of `sc 1`, as the fast path's handler answers.
///
/// - **Fast**: the exit assembly saves only what a handler may clobber
///   (r0-r13, CR, LR, CTR, XER, CFAR, PPR, SRR0/1 into the register
///   image; PAPR leaves r1, r2 and r13-r31 to the hypervisor to keep, and
///   the handler, a normal function, keeps r14-r31 itself), calls
///   `hv_hcall_fast(regs, hcall_ctx)` on the vcpu thread's stack with the
///   partition, the SLB, the guest's SPRs, FP/vector registers and
///   decrementer all still live, and on [`HcallPath::Resumed`] reloads
///   them and `hrfid`s straight back: no SPR block, no run loop.
/// - **Full**: on [`HcallPath::Full`] (the handler changed nothing) the
///   same exit continues as every other exit does: the whole SPR save,
///   and `run` returns to the run loop with the 0xC00 vector.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HcallPath {
    Full = 0,
    /// Handled: the return code and values are in the image's r3-r12.
    Resumed = 1,
}

/// PPR at guest start: medium thread priority (0b011 in bits 11:13).
pub const PPR_DEFAULT: u64 = 0b011 << 50;

/// HFSCR facilities given to guests: FP, VMX/VSX, DSCR, PM, EBB, TAR (the
/// state this hypervisor switches). BHRB and TM are withheld (a guest use
/// traps to the hypervisor, which answers with a program interrupt; the
/// device tree's ibm,pa-features says there is no TM). MSGP lets a guest
/// send `msgsndp` doorbells to the other threads of its vcore (virtual
/// thread N is physical thread N, and DPDES is saved per vcore).
pub const HFSCR_GUEST: u64 = spr::HFSCR_FP
    | spr::HFSCR_MSGP
    | spr::HFSCR_VECVSX
    | spr::HFSCR_DSCR
    | spr::HFSCR_PM
    | spr::HFSCR_EBB
    | spr::HFSCR_TAR;

/// The MSR a guest is entered with, whatever its register image says:
/// never hypervisor state, never TM (it has none), machine checks on.
pub const fn guest_msr(msr: u64) -> u64 {
    (msr & !spr::MSR_GUEST_CLEAR) | spr::MSR_GUEST_SET
}

/// Why the guest stopped running: the interrupt that brought the thread
/// back to the hypervisor, decoded from the vector in one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `sc 1` (0xC00): a hypercall, or a user-space `sc 1` to refuse.
    Hcall,
    /// Hypervisor decrementer (0x980): the time slice ended.
    Hdec,
    /// External interrupt (0x500): an IPI or device interrupt for the
    /// hypervisor (LPES0 = 0).
    External,
    /// Directed hypervisor doorbell (0xE80).
    HvDoorbell,
    /// Hypervisor emulation assistance (0xE40): an instruction the guest
    /// may not execute (HV-privileged or illegal; HEIR has it).
    HvEmulation,
    /// Hypervisor facility unavailable (0xF80): a facility HFSCR withholds.
    HvFacility,
    /// Hypervisor data / instruction storage interrupt (0xE00 / 0xE20).
    Hdsi,
    Hisi,
    /// Anything else: the vector offset.
    Other(u64),
}

impl Exit {
    /// Decodes `__guest_enter`'s return value (vector | HSRR flag).
    pub fn decode(vector: u64) -> Exit {
        use crate::trap::vector as v;
        match vector & !crate::trap::VEC_HSRR_FLAG {
            v::SYSTEM_CALL => Exit::Hcall,
            v::HV_DECREMENTER => Exit::Hdec,
            v::EXTERNAL => Exit::External,
            v::HV_DOORBELL => Exit::HvDoorbell,
            v::HV_EMULATION => Exit::HvEmulation,
            v::HV_FACILITY_UNAVAILABLE => Exit::HvFacility,
            v::HV_DATA_STORAGE => Exit::Hdsi,
            v::HV_INSTRUCTION_STORAGE => Exit::Hisi,
            other => Exit::Other(other),
        }
    }

    /// Where the exit is handled. With SMT virtual cores the partition
    /// (LPIDR, SDR1, LPCR) belongs to the whole core, so only an exit that
    /// needs the whole vcore out of the guest may switch it, on thread 0.
    pub const fn scope(self) -> ExitScope {
        match self {
            // A hypercall, a doorbell or IPI for this thread, an
            // instruction or facility to reflect as a program interrupt,
            // a real-mode access beyond guest memory (a machine check):
            // the thread handles it and goes back into the same vcpu. A
            // handler's result can still ask for more (a cede, a VM stop).
            Exit::Hcall
            | Exit::External
            | Exit::HvDoorbell
            | Exit::HvEmulation
            | Exit::HvFacility
            | Exit::Hdsi
            | Exit::Hisi => ExitScope::Thread,
            // The time slice ended (HDEC is core-wide): the vcore leaves
            // if another waits for the core, else the slice is renewed;
            // or something unexpected stops the VM.
            Exit::Hdec | Exit::Other(_) => ExitScope::Vcore,
        }
    }
}

/// Where an [`Exit`] is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitScope {
    /// On the thread that took it, with the guest's partition still
    /// loaded.
    Thread,
    /// Only once every thread of the vcore is out of the guest.
    Vcore,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trap::{vector, VEC_HSRR_FLAG};

    #[test]
    fn a_guest_never_runs_in_hypervisor_state_or_with_tm() {
        use spr::{MSR_EE, MSR_HV, MSR_LE, MSR_ME, MSR_PR, MSR_SF, MSR_TM, MSR_TS};
        assert_eq!(guest_msr(u64::MAX) & (MSR_HV | MSR_TM | MSR_TS), 0);
        assert_eq!(
            guest_msr(MSR_SF | MSR_HV | MSR_PR),
            MSR_SF | MSR_PR | MSR_ME
        );
        // Everything else is the guest's own.
        let user = MSR_SF | MSR_EE | MSR_PR | MSR_LE | MSR_ME;
        assert_eq!(guest_msr(user), user);
    }

    #[test]
    fn exits_decode_from_the_vector_and_say_where_they_are_handled() {
        assert_eq!(Exit::decode(vector::SYSTEM_CALL), Exit::Hcall);
        assert_eq!(
            Exit::decode(vector::HV_DECREMENTER | VEC_HSRR_FLAG),
            Exit::Hdec
        );
        assert_eq!(
            Exit::decode(vector::HV_DATA_STORAGE | VEC_HSRR_FLAG),
            Exit::Hdsi
        );
        assert_eq!(Exit::decode(0x300), Exit::Other(0x300));
        assert_eq!(Exit::Hcall.scope(), ExitScope::Thread);
        assert_eq!(Exit::Hisi.scope(), ExitScope::Thread);
        assert_eq!(Exit::Hdec.scope(), ExitScope::Vcore);
        assert_eq!(Exit::Other(0x300).scope(), ExitScope::Vcore);
    }
}
