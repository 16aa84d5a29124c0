//! Guest entry and exit in real assembly. Exits stay in the partition:
//! the hypervisor runs in hypervisor real mode (MSR[HV]=1, IR=DR=0), which
//! never translates through a partition's HPT, so it can handle an exit
//! with the guest's LPIDR, SDR1, LPCR and SLB still loaded.
//!
//! - `partition_enter` / `partition_exit`: the partition switch (LPIDR
//!   through the reserved LPID, SDR1, LPCR) and the core's TLB flush for
//!   the LPID when asked. On POWER8 these registers belong to the core, so
//!   with SMT vcores only thread 0 does this, when the whole vcore enters
//!   or has left the guest.
//! - `slb_load` / `slb_save_clear`: the vcpu's SLB, around that.
//! - `run(regs, entry)`: saves the hypervisor's non-volatile state in the
//!   per-thread area, loads this entry's LPCR, HFSCR, HDEC and the vcpu's
//!   SPRs and GPRs and `hrfid`s into the guest. Any interrupt taken while
//!   the guest runs enters through the vector stubs and `__exc_low`, which
//!   jumps through `Paca::exc_entry` — pointed at `__guest_exit` for the
//!   duration — so the guest's registers and SPRs are saved into `regs`
//!   and `run` returns the exit vector (bit 0 set when the interrupt used
//!   HSRR0/1), still in the partition.
//! - `sc 1` first takes the hypercall fast path (`regs::HcallPath`): only
//!   what a handler may clobber is saved, `hv_hcall_fast` runs on the
//!   vcpu thread's stack and the guest is resumed directly; a call the
//!   handler leaves to the full path continues as any other exit.

use crate::paca::{
    PACA_EXC_ENTRY, PACA_GUEST_REGS, PACA_HCALL_CTX, PACA_HOST_CR, PACA_HOST_LPCR, PACA_HOST_LPIDR,
    PACA_HOST_LR, PACA_HOST_NVGPR, PACA_HOST_R1, PACA_HOST_R2, PACA_HOST_SDR1, PACA_SCRATCH_CFAR,
    PACA_SCRATCH_CTR, PACA_SCRATCH_R11, PACA_SCRATCH_R12,
};
use crate::regs::{GuestRegs, PartitionRegs, VcpuEntry};
use crate::sizes::{RESERVED_LPID, SLB_SIZE};
use core::arch::global_asm;
use core::mem::offset_of;

const G_GPR: usize = offset_of!(GuestRegs, gpr);
const G_CR: usize = offset_of!(GuestRegs, cr);
const G_XER: usize = offset_of!(GuestRegs, xer);
const G_LR: usize = offset_of!(GuestRegs, lr);
const G_CTR: usize = offset_of!(GuestRegs, ctr);
const G_PC: usize = offset_of!(GuestRegs, pc);
const G_MSR: usize = offset_of!(GuestRegs, msr);
const G_SRR0: usize = offset_of!(GuestRegs, srr0);
const G_SRR1: usize = offset_of!(GuestRegs, srr1);
const G_SPRG: usize = offset_of!(GuestRegs, sprg);
const G_DAR: usize = offset_of!(GuestRegs, dar);
const G_DSISR: usize = offset_of!(GuestRegs, dsisr);
const G_DEC: usize = offset_of!(GuestRegs, dec);
const G_AMR: usize = offset_of!(GuestRegs, amr);
const G_DSCR: usize = offset_of!(GuestRegs, dscr);
const G_PPR: usize = offset_of!(GuestRegs, ppr);
const G_TAR: usize = offset_of!(GuestRegs, tar);
const G_FSCR: usize = offset_of!(GuestRegs, fscr);
const G_PSPB: usize = offset_of!(GuestRegs, pspb);
const G_IAMR: usize = offset_of!(GuestRegs, iamr);
const G_UAMOR: usize = offset_of!(GuestRegs, uamor);
const G_PMU: usize = offset_of!(GuestRegs, pmu);
const G_EBB: usize = offset_of!(GuestRegs, ebb);
const G_IC: usize = offset_of!(GuestRegs, ic);
const G_VTB: usize = offset_of!(GuestRegs, vtb);
const G_DAWR: usize = offset_of!(GuestRegs, dawr);
const G_DAWRX: usize = offset_of!(GuestRegs, dawrx);
const G_CIABR: usize = offset_of!(GuestRegs, ciabr);
const G_CFAR: usize = offset_of!(GuestRegs, cfar);
const G_PURR: usize = offset_of!(GuestRegs, purr);
const G_SPURR: usize = offset_of!(GuestRegs, spurr);
const G_HDAR: usize = offset_of!(GuestRegs, hdar);
const G_HDSISR: usize = offset_of!(GuestRegs, hdsisr);
const G_HEIR: usize = offset_of!(GuestRegs, heir);
const G_EXIT: usize = offset_of!(GuestRegs, exit_vector);
const G_SLB: usize = offset_of!(GuestRegs, slb);
const G_SLB_USED: usize = offset_of!(GuestRegs, slb_used);
const P_LPID: usize = offset_of!(PartitionRegs, lpid);
const P_SDR1: usize = offset_of!(PartitionRegs, sdr1);
const P_LPCR: usize = offset_of!(PartitionRegs, lpcr);
const P_FLUSH: usize = offset_of!(PartitionRegs, flush_tlb);
const P_SETS: usize = offset_of!(PartitionRegs, tlb_sets);
const V_LPCR: usize = offset_of!(VcpuEntry, lpcr);
const V_HDEC: usize = offset_of!(VcpuEntry, hdec);
const V_HFSCR: usize = offset_of!(VcpuEntry, hfscr);
const V_HCALL_CTX: usize = offset_of!(VcpuEntry, hcall_ctx);
const V_LOAD_TIMERS: usize = offset_of!(VcpuEntry, load_timers);
/// The fast path handler's stack frame: the ELFv2 minimum (back chain,
/// CR and LR save words, TOC save), 16-byte aligned, with room to spare.
const FAST_FRAME: usize = 112;

/// `tlbiel` RB for a whole-LPID flush: IS = 0b10 (all entries of the
/// current LPID in one congruence class), the class index in steps of
/// 0x1000.
const TLBIEL_RB_IS_LPID: u64 = 2 << 10;
const TLBIEL_RB_SET_STEP: u64 = 1 << 12;
/// SLB entry valid bit in the ESID doubleword (`slbmte`/`slbmfee`).
const SLB_ESID_V: u64 = 1 << 27;

/// Stores the guest's r0-r13, LR, CTR, XER and CFAR into the register
/// image at register `$base` (r11 or r12, whichever is free): r0-r10 as
/// they are, r11, r12, CTR and CFAR from the paca's scratch slots, r13
/// from HSPRG1. Clobbers r0. Both exit paths start with it.
macro_rules! save_volatile_asm {
    ($base:literal) => {
        concat!(
            ".irp n, 0,1,2,3,4,5,6,7,8,9,10\n",
            "std \\n, {g_gpr}+\\n*8(",
            $base,
            ")\n",
            ".endr\n",
            "ld 0, {scratch1}(13)\n",
            "std 0, {g_gpr}+11*8(",
            $base,
            ")\n",
            "ld 0, {scratch0}(13)\n",
            "std 0, {g_gpr}+12*8(",
            $base,
            ")\n",
            "mfspr 0, {spr_hsprg1}\n",
            "std 0, {g_gpr}+13*8(",
            $base,
            ")\n",
            "mflr 0\n",
            "std 0, {g_lr}(",
            $base,
            ")\n",
            "ld 0, {scratch2}(13)\n",
            "std 0, {g_ctr}(",
            $base,
            ")\n",
            "mfxer 0\n",
            "std 0, {g_xer}(",
            $base,
            ")\n",
            "ld 0, {scratch3}(13)\n",
            "std 0, {g_cfar}(",
            $base,
            ")\n",
        )
    };
}

/// Loads the guest's CR, LR, CTR and XER from the register image at r11
/// (both ways back into the guest); clobbers r0.
macro_rules! load_cr_lr_ctr_xer_asm {
    () => {
        r#"
        ld 0, {g_cr}(11)
        mtcrf 0xff, 0
        ld 0, {g_lr}(11)
        mtlr 0
        ld 0, {g_ctr}(11)
        mtctr 0
        ld 0, {g_xer}(11)
        mtxer 0
        "#
    };
}

// Every slot is addressed with a 16-bit displacement.
const _: () = assert!(core::mem::size_of::<GuestRegs>() < 0x8000);
const _: () = assert!(G_SLB.is_multiple_of(8) && G_GPR == 0);

global_asm!(
    r#"
    .pushsection .text.guest, "ax", @progbits
    .balign 16
    .global __vcpu_run
    # u64 __vcpu_run(GuestRegs *regs /* r3 */, const VcpuEntry *entry /* r4 */)
    __vcpu_run:
    "#,
    crate::save_nv_asm!(),
    r#"
        std 3, {guest_regs}(13)
        ld 0, {v_ctx}(4)
        std 0, {hcall_ctx}(13)
        # This entry's LPCR (MER, the interrupt mode); the partition
        # itself (LPIDR, SDR1, the SLB) is already loaded.
        ld 0, {v_lpcr}(4)
        mtspr {spr_lpcr}, 0
        isync

        ld 0, {g_sprg}+0(3)
        mtspr {spr_sprg0}, 0
        ld 0, {g_sprg}+8(3)
        mtspr {spr_sprg1}, 0
        ld 0, {g_sprg}+16(3)
        mtspr {spr_sprg2}, 0
        ld 0, {g_sprg}+24(3)
        mtspr {spr_sprg3}, 0
        ld 0, {g_dar}(3)
        mtspr {spr_dar}, 0
        ld 0, {g_dsisr}(3)
        mtspr {spr_dsisr}, 0
        ld 0, {g_amr}(3)
        mtspr {spr_amr}, 0
        # HFSCR and AMOR first: they decide what the guest may touch.
        ld 0, {v_hfscr}(4)
        mtspr {spr_hfscr}, 0
        li 0, -1
        mtspr {spr_amor}, 0
        ld 0, {g_dscr}(3)
        mtspr {spr_dscr}, 0
        ld 0, {g_ppr}(3)
        mtspr {spr_ppr}, 0
        ld 0, {g_tar}(3)
        mtspr {spr_tar}, 0
        ld 0, {g_fscr}(3)
        mtspr {spr_fscr}, 0
        ld 0, {g_pspb}(3)
        mtspr {spr_pspb}, 0
        ld 0, {g_iamr}(3)
        mtspr {spr_iamr}, 0
        ld 0, {g_uamor}(3)
        mtspr {spr_uamor}, 0
        ld 0, {g_ebb}+0(3)
        mtspr {spr_ebbhr}, 0
        ld 0, {g_ebb}+8(3)
        mtspr {spr_ebbrr}, 0
        ld 0, {g_ebb}+16(3)
        mtspr {spr_bescr}, 0
        ld 0, {g_ic}(3)
        mtspr {spr_ic}, 0
        ld 0, {g_vtb}(3)
        mtspr {spr_vtb}, 0
        ld 0, {g_dawr}(3)
        mtspr {spr_dawr}, 0
        ld 0, {g_dawrx}(3)
        mtspr {spr_dawrx}, 0
        ld 0, {g_ciabr}(3)
        mtspr {spr_ciabr}, 0
        ld 0, {g_purr}(3)
        mtspr {spr_purr}, 0
        ld 0, {g_spurr}(3)
        mtspr {spr_spurr}, 0
        # Performance monitor: counters and controls, MMCR0 (which may
        # unfreeze them) last.
        ld 0, {g_pmu}+4*8(3)
        mtspr {spr_pmc1}, 0
        ld 0, {g_pmu}+5*8(3)
        mtspr {spr_pmc2}, 0
        ld 0, {g_pmu}+6*8(3)
        mtspr {spr_pmc3}, 0
        ld 0, {g_pmu}+7*8(3)
        mtspr {spr_pmc4}, 0
        ld 0, {g_pmu}+8*8(3)
        mtspr {spr_pmc5}, 0
        ld 0, {g_pmu}+9*8(3)
        mtspr {spr_pmc6}, 0
        ld 0, {g_pmu}+10*8(3)
        mtspr {spr_siar}, 0
        ld 0, {g_pmu}+11*8(3)
        mtspr {spr_sdar}, 0
        ld 0, {g_pmu}+12*8(3)
        mtspr {spr_sier}, 0
        ld 0, {g_pmu}+1*8(3)
        mtspr {spr_mmcr1}, 0
        ld 0, {g_pmu}+2*8(3)
        mtspr {spr_mmcr2}, 0
        ld 0, {g_pmu}+3*8(3)
        mtspr {spr_mmcra}, 0
        ld 0, {g_pmu}+0*8(3)
        mtspr {spr_mmcr0}, 0
        ld 0, {g_srr0}(3)
        mtspr {spr_srr0}, 0
        ld 0, {g_srr1}(3)
        mtspr {spr_srr1}, 0
        # The decrementers, unless they still run from the last exit
        # (VcpuEntry::load_timers; CR is the guest's again below).
        ld 0, {v_load_timers}(4)
        cmpdi 0, 0
        beq 88f
        ld 0, {g_dec}(3)
        mtspr {spr_dec}, 0
        ld 0, {v_hdec}(4)
        mtspr {spr_hdec}, 0
    88:
        ld 0, {g_pc}(3)
        mtspr {spr_hsrr0}, 0
        ld 0, {g_msr}(3)
        mtspr {spr_hsrr1}, 0
        # CFAR last among the SPRs: no branch until the hrfid.
        ld 0, {g_cfar}(3)
        mtspr {spr_cfar}, 0

        # From here every interrupt is a guest exit.
        lis 5, __guest_exit@ha
        addi 5, 5, __guest_exit@l
        std 5, {exc_entry}(13)

        mr 11, 3
    "#,
    load_cr_lr_ctr_xer_asm!(),
    r#"
        .irp n, 0,1,2,3,4,5,6,7,8,9,10,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        ld \n, {g_gpr}+\n*8(11)
        .endr
        ld 11, {g_gpr}+11*8(11)
        hrfid

    .global __guest_exit
    # Entered from __exc_low: r13 = paca, r12 = vector | HSRR flag; the
    # guest's r12, r11, CTR, CFAR are in the paca scratch slots, its r13 in
    # HSPRG1. `sc 1` tries the hypercall fast path (regs::HcallPath) first:
    # CR goes to r11 (free: the guest's is in its slot) before the compare.
    __guest_exit:
        mfcr 11
        cmpdi 12, {vec_sc}
        beq __hcall_fast
        mtcrf 0xff, 11
        ld 11, {guest_regs}(13)
    "#,
    save_volatile_asm!("11"),
    r#"
        .irp n, 14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        std \n, {g_gpr}+\n*8(11)
        .endr
        mfcr 0
        std 0, {g_cr}(11)
        std 12, {g_exit}(11)
        andi. 0, 12, {hsrr_flag}
        beq 5f
        mfspr 0, {spr_hsrr0}
        std 0, {g_pc}(11)
        mfspr 0, {spr_hsrr1}
        std 0, {g_msr}(11)
        mfspr 0, {spr_srr0}
        std 0, {g_srr0}(11)
        mfspr 0, {spr_srr1}
        std 0, {g_srr1}(11)
        b 6f
        # SRR-type exit (sc 1 at 0xC00): SRR0/1 hold the guest's PC/MSR; its
        # own SRR0/1 were clobbered by the interrupt, as for any sc.
    5:  mfspr 0, {spr_srr0}
        std 0, {g_pc}(11)
        mfspr 0, {spr_srr1}
        std 0, {g_msr}(11)
    # Every exit's SPR save, with r11 = the register image, r12 = vector.
    6:
    __guest_exit_sprs:
        mfspr 0, {spr_sprg0}
        std 0, {g_sprg}+0(11)
        mfspr 0, {spr_sprg1}
        std 0, {g_sprg}+8(11)
        mfspr 0, {spr_sprg2}
        std 0, {g_sprg}+16(11)
        mfspr 0, {spr_sprg3}
        std 0, {g_sprg}+24(11)
        mfspr 0, {spr_dar}
        std 0, {g_dar}(11)
        mfspr 0, {spr_dsisr}
        std 0, {g_dsisr}(11)
        mfspr 0, {spr_dec}
        extsw 0, 0
        std 0, {g_dec}(11)
        mfspr 0, {spr_amr}
        std 0, {g_amr}(11)
        mfspr 0, {spr_dscr}
        std 0, {g_dscr}(11)
        mfspr 0, {spr_ppr}
        std 0, {g_ppr}(11)
        mfspr 0, {spr_tar}
        std 0, {g_tar}(11)
        mfspr 0, {spr_fscr}
        std 0, {g_fscr}(11)
        mfspr 0, {spr_pspb}
        std 0, {g_pspb}(11)
        mfspr 0, {spr_iamr}
        std 0, {g_iamr}(11)
        mfspr 0, {spr_uamor}
        std 0, {g_uamor}(11)
        # Freeze the guest's counters first so the hypervisor is not
        # counted, then save the performance monitor.
        mfspr 0, {spr_mmcr0}
        std 0, {g_pmu}+0*8(11)
        li 0, 1
        sldi 0, 0, {mmcr0_fc_bit}
        mtspr {spr_mmcr0}, 0
        isync
        mfspr 0, {spr_mmcr1}
        std 0, {g_pmu}+1*8(11)
        mfspr 0, {spr_mmcr2}
        std 0, {g_pmu}+2*8(11)
        mfspr 0, {spr_mmcra}
        std 0, {g_pmu}+3*8(11)
        mfspr 0, {spr_pmc1}
        std 0, {g_pmu}+4*8(11)
        mfspr 0, {spr_pmc2}
        std 0, {g_pmu}+5*8(11)
        mfspr 0, {spr_pmc3}
        std 0, {g_pmu}+6*8(11)
        mfspr 0, {spr_pmc4}
        std 0, {g_pmu}+7*8(11)
        mfspr 0, {spr_pmc5}
        std 0, {g_pmu}+8*8(11)
        mfspr 0, {spr_pmc6}
        std 0, {g_pmu}+9*8(11)
        mfspr 0, {spr_siar}
        std 0, {g_pmu}+10*8(11)
        mfspr 0, {spr_sdar}
        std 0, {g_pmu}+11*8(11)
        mfspr 0, {spr_sier}
        std 0, {g_pmu}+12*8(11)
        mfspr 0, {spr_ebbhr}
        std 0, {g_ebb}+0(11)
        mfspr 0, {spr_ebbrr}
        std 0, {g_ebb}+8(11)
        mfspr 0, {spr_bescr}
        std 0, {g_ebb}+16(11)
        mfspr 0, {spr_ic}
        std 0, {g_ic}(11)
        mfspr 0, {spr_vtb}
        std 0, {g_vtb}(11)
        mfspr 0, {spr_purr}
        std 0, {g_purr}(11)
        mfspr 0, {spr_spurr}
        std 0, {g_spurr}(11)
        mfspr 0, {spr_hdar}
        std 0, {g_hdar}(11)
        mfspr 0, {spr_hdsisr}
        std 0, {g_hdsisr}(11)
        mfspr 0, {spr_heir}
        std 0, {g_heir}(11)

        lis 5, __exc_common@ha
        addi 5, 5, __exc_common@l
        std 5, {exc_entry}(13)

        mr 3, 12
    "#,
    crate::restore_nv_asm!(),
    r#"
        blr

    # The hypercall fast path (regs::HcallPath::Fast). Entered from
    # __guest_exit with r11 = the guest's CR, r12 = the vector, r13 =
    # paca. Everything the handler may clobber goes to the register image
    # first: an exception taken inside the handler would reuse the scratch
    # slots, HSPRG1 and SRR0/1.
    __hcall_fast:
        ld 12, {guest_regs}(13)
        std 11, {g_cr}(12)
    "#,
    save_volatile_asm!("12"),
    r#"
        mfspr 0, {spr_srr0}
        std 0, {g_pc}(12)
        mfspr 0, {spr_srr1}
        std 0, {g_msr}(12)
        mfspr 0, {spr_ppr}
        std 0, {g_ppr}(12)
        # An exception in the handler is the hypervisor's own.
        lis 11, __exc_common@ha
        addi 11, 11, __exc_common@l
        std 11, {exc_entry}(13)
        # The handler runs on the vcpu thread's stack, below the frame of
        # __vcpu_run's caller (which has nothing live below it), with the
        # hypervisor's TOC; r13 stays the paca (no Rust code uses it).
        ld 1, {sv_r1}(13)
        ld 2, {sv_r2}(13)
        stdu 1, -{fast_frame}(1)
        mr 3, 12
        ld 4, {hcall_ctx}(13)
        bl hv_hcall_fast
        nop
        ld 11, {guest_regs}(13)
        cmpdi 3, {path_full}
        beq 7f
        # Resumed: the image has the results in r3-r12; back into the
        # guest. SRR1 was the guest's MSR as the interrupt saved it
        # (hypervisor state clear), untouched by the handler.
        lis 12, __guest_exit@ha
        addi 12, 12, __guest_exit@l
        std 12, {exc_entry}(13)
        ld 0, {g_pc}(11)
        mtspr {spr_hsrr0}, 0
        ld 0, {g_msr}(11)
        mtspr {spr_hsrr1}, 0
        ld 0, {g_ppr}(11)
        mtspr {spr_ppr}, 0
    "#,
    load_cr_lr_ctr_xer_asm!(),
    r#"
        # CFAR last among the SPRs: no branch until the hrfid.
        ld 0, {g_cfar}(11)
        mtspr {spr_cfar}, 0
        .irp n, 0,1,2,3,4,5,6,7,8,9,10,12,13
        ld \n, {g_gpr}+\n*8(11)
        .endr
        ld 11, {g_gpr}+11*8(11)
        hrfid
        # The full path after all (the handler changed nothing): the
        # guest's r14-r31, which the handler kept, and the SPRs, as for
        # any exit.
    7:  .irp n, 14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        std \n, {g_gpr}+\n*8(11)
        .endr
        li 12, {vec_sc}
        std 12, {g_exit}(11)
        b __guest_exit_sprs
    .popsection
    "#,
    guest_regs = const PACA_GUEST_REGS,
    hcall_ctx = const PACA_HCALL_CTX,
    v_ctx = const V_HCALL_CTX,
    vec_sc = const crate::trap::vector::SYSTEM_CALL,
    path_full = const crate::regs::HcallPath::Full as u64,
    fast_frame = const FAST_FRAME,
    exc_entry = const PACA_EXC_ENTRY,
    scratch0 = const PACA_SCRATCH_R12,
    scratch1 = const PACA_SCRATCH_R11,
    scratch2 = const PACA_SCRATCH_CTR,
    scratch3 = const PACA_SCRATCH_CFAR,
    sv_r1 = const PACA_HOST_R1,
    sv_r2 = const PACA_HOST_R2,
    sv_nv = const PACA_HOST_NVGPR,
    sv_cr = const PACA_HOST_CR,
    sv_lr = const PACA_HOST_LR,
    hsrr_flag = const crate::trap::VEC_HSRR_FLAG,
    g_gpr = const G_GPR,
    g_cr = const G_CR,
    g_xer = const G_XER,
    g_lr = const G_LR,
    g_ctr = const G_CTR,
    g_pc = const G_PC,
    g_msr = const G_MSR,
    g_srr0 = const G_SRR0,
    g_srr1 = const G_SRR1,
    g_sprg = const G_SPRG,
    g_dar = const G_DAR,
    g_dsisr = const G_DSISR,
    g_dec = const G_DEC,
    g_amr = const G_AMR,
    g_dscr = const G_DSCR,
    g_ppr = const G_PPR,
    g_tar = const G_TAR,
    g_fscr = const G_FSCR,
    g_pspb = const G_PSPB,
    g_iamr = const G_IAMR,
    g_uamor = const G_UAMOR,
    v_hfscr = const V_HFSCR,
    v_lpcr = const V_LPCR,
    g_pmu = const G_PMU,
    g_ebb = const G_EBB,
    g_ic = const G_IC,
    g_vtb = const G_VTB,
    g_dawr = const G_DAWR,
    g_dawrx = const G_DAWRX,
    g_ciabr = const G_CIABR,
    g_cfar = const G_CFAR,
    g_purr = const G_PURR,
    g_spurr = const G_SPURR,
    spr_cfar = const crate::spr::CFAR,
    spr_purr = const crate::spr::PURR,
    spr_spurr = const crate::spr::SPURR,
    spr_mmcr0 = const crate::spr::MMCR0,
    mmcr0_fc_bit = const crate::spr::MMCR0_FC.trailing_zeros(),
    spr_mmcr1 = const crate::spr::MMCR1,
    spr_mmcr2 = const crate::spr::MMCR2,
    spr_mmcra = const crate::spr::MMCRA,
    spr_pmc1 = const crate::spr::PMC1,
    spr_pmc2 = const crate::spr::PMC2,
    spr_pmc3 = const crate::spr::PMC3,
    spr_pmc4 = const crate::spr::PMC4,
    spr_pmc5 = const crate::spr::PMC5,
    spr_pmc6 = const crate::spr::PMC6,
    spr_siar = const crate::spr::SIAR,
    spr_sdar = const crate::spr::SDAR,
    spr_sier = const crate::spr::SIER,
    spr_ebbhr = const crate::spr::EBBHR,
    spr_ebbrr = const crate::spr::EBBRR,
    spr_bescr = const crate::spr::BESCR,
    spr_ic = const crate::spr::IC,
    spr_vtb = const crate::spr::VTB,
    spr_dawr = const crate::spr::DAWR,
    spr_dawrx = const crate::spr::DAWRX,
    spr_ciabr = const crate::spr::CIABR,
    g_hdar = const G_HDAR,
    g_hdsisr = const G_HDSISR,
    g_heir = const G_HEIR,
    g_exit = const G_EXIT,
    v_hdec = const V_HDEC,
    v_load_timers = const V_LOAD_TIMERS,
    spr_lpcr = const crate::spr::LPCR,
    spr_hsprg1 = const crate::spr::HSPRG1,
    spr_hsrr0 = const crate::spr::HSRR0,
    spr_hsrr1 = const crate::spr::HSRR1,
    spr_srr0 = const crate::spr::SRR0,
    spr_srr1 = const crate::spr::SRR1,
    spr_sprg0 = const crate::spr::SPRG0,
    spr_sprg1 = const crate::spr::SPRG1,
    spr_sprg2 = const crate::spr::SPRG2,
    spr_sprg3 = const crate::spr::SPRG3,
    spr_dar = const crate::spr::DAR,
    spr_dsisr = const crate::spr::DSISR,
    spr_dec = const crate::spr::DEC,
    spr_amr = const crate::spr::AMR,
    spr_dscr = const crate::spr::DSCR,
    spr_ppr = const crate::spr::PPR,
    spr_tar = const crate::spr::TAR,
    spr_fscr = const crate::spr::FSCR,
    spr_pspb = const crate::spr::PSPB,
    spr_iamr = const crate::spr::IAMR,
    spr_uamor = const crate::spr::UAMOR,
    spr_hdar = const crate::spr::HDAR,
    spr_hdsisr = const crate::spr::HDSISR,
    spr_heir = const crate::spr::HEIR,
    spr_hfscr = const crate::spr::HFSCR,
    spr_amor = const crate::spr::AMOR,
    spr_hdec = const crate::spr::HDEC,
);

/// The partition switch, the same both ways: LPIDR to the reserved LPID,
/// then SDR1, then the new LPID (so no translation ever mixes one
/// partition's SDR1 with another's LPID), then LPCR; each operand names
/// where its value is loaded from. Needs the `rsvd` and `spr_*` operands.
macro_rules! switch_partition_asm {
    ($sdr1:literal, $lpid:literal, $lpcr:literal) => {
        concat!(
            "li 0, {rsvd}\n",
            "mtspr {spr_lpidr}, 0\n",
            "ptesync\n",
            "ld 0, ",
            $sdr1,
            "\n",
            "mtspr {spr_sdr1}, 0\n",
            "ld 0, ",
            $lpid,
            "\n",
            "mtspr {spr_lpidr}, 0\n",
            "isync\n",
            "ld 0, ",
            $lpcr,
            "\n",
            "mtspr {spr_lpcr}, 0\n",
            "isync\n",
        )
    };
}

// The partition switch (thread 0 of a vcore, at vcore boundaries only)
// and the SLB load and save around it.
global_asm!(
    r#"
    .pushsection .text.guest, "ax", @progbits
    .balign 16
    .global __partition_enter
    # void __partition_enter(const PartitionRegs *part /* r3 */): saves the
    # hypervisor's LPCR, SDR1 and LPIDR in the per-thread area, switches to
    # the guest's (LPIDR through the reserved LPID, then SDR1, then the
    # guest LPID, so no translation ever mixes one partition's SDR1 with
    # another's LPID, then LPCR), and flushes this core's TLB for the guest
    # LPID when asked (tlbiel IS=0b10, one congruence class at a time).
    __partition_enter:
        mfspr 0, {spr_lpcr}
        std 0, {h_lpcr}(13)
        mfspr 0, {spr_sdr1}
        std 0, {h_sdr1}(13)
        mfspr 0, {spr_lpidr}
        std 0, {h_lpidr}(13)
    "#,
    switch_partition_asm!("{p_sdr1}(3)", "{p_lpid}(3)", "{p_lpcr}(3)"),
    r#"
        ld 0, {p_flush}(3)
        cmpdi 0, 0
        beqlr
        ld 5, {p_sets}(3)
        mtctr 5
        li 6, {rb_is_lpid}
        ptesync
    1:  tlbiel 6
        addi 6, 6, {rb_set_step}
        bdnz 1b
        ptesync
        blr

    .global __partition_exit
    # void __partition_exit(void): back to the hypervisor's LPCR, SDR1 and
    # LPIDR saved by __partition_enter, through the reserved LPID.
    __partition_exit:
    "#,
    switch_partition_asm!("{h_sdr1}(13)", "{h_lpidr}(13)", "{h_lpcr}(13)"),
    r#"
        blr

    .global __slb_load
    # void __slb_load(const GuestRegs *regs /* r3 */): clears the SLB (entry
    # 0 explicitly: slbia keeps it), then loads the valid entries among
    # the first slb_used with their index.
    __slb_load:
        li 0, 0
        slbmte 0, 0
        slbia
        isync
        ld 7, {g_slb_used}(3)
        cmpdi 7, 0
        beq 3f
        addi 5, 3, {g_slb}
        li 6, 0
        mtctr 7
    1:  ld 7, 0(5)
        andis. 0, 7, {slb_v_hi}
        beq 2f
        ld 8, 8(5)
        or 7, 7, 6
        slbmte 8, 7
    2:  addi 5, 5, 16
        addi 6, 6, 1
        bdnz 1b
    3:  isync
        blr

    .global __slb_save_clear
    # void __slb_save_clear(GuestRegs *regs /* r3 */): stores every SLB
    # entry and how many up to the last valid one (slb_used), then clears
    # the SLB.
    __slb_save_clear:
        addi 5, 3, {g_slb}
        li 6, 0
        li 9, 0
        li 7, {slb_size}
        mtctr 7
    1:  slbmfee 7, 6
        std 7, 0(5)
        slbmfev 8, 6
        std 8, 8(5)
        addi 6, 6, 1
        andis. 0, 7, {slb_v_hi}
        beq 2f
        mr 9, 6
    2:  addi 5, 5, 16
        bdnz 1b
        std 9, {g_slb_used}(3)
        li 0, 0
        slbmte 0, 0
        slbia
        isync
        blr
    .popsection
    "#,
    h_lpcr = const PACA_HOST_LPCR,
    h_sdr1 = const PACA_HOST_SDR1,
    h_lpidr = const PACA_HOST_LPIDR,
    rsvd = const RESERVED_LPID,
    slb_size = const SLB_SIZE,
    g_slb = const G_SLB,
    g_slb_used = const G_SLB_USED,
    p_lpid = const P_LPID,
    p_sdr1 = const P_SDR1,
    p_lpcr = const P_LPCR,
    p_flush = const P_FLUSH,
    p_sets = const P_SETS,
    rb_is_lpid = const TLBIEL_RB_IS_LPID,
    rb_set_step = const TLBIEL_RB_SET_STEP,
    slb_v_hi = const SLB_ESID_V >> 16,
    spr_lpcr = const crate::spr::LPCR,
    spr_sdr1 = const crate::spr::SDR1,
    spr_lpidr = const crate::spr::LPIDR,
);

unsafe extern "C" {
    fn __vcpu_run(regs: *mut GuestRegs, entry: *const VcpuEntry) -> u64;
    fn __partition_enter(part: *const PartitionRegs);
    fn __partition_exit();
    fn __slb_load(regs: *const GuestRegs);
    fn __slb_save_clear(regs: *mut GuestRegs);
}

/// Switches this thread to the guest's partition (LPIDR, SDR1, LPCR),
/// flushing this core's TLB for its LPID first when `part` says so.
///
/// # Safety
/// `part` must describe a partition whose HPT (SDR1) maps only memory
/// owned by that guest, and the thread must be in hypervisor real mode
/// (nothing it does translates through the partition) until
/// [`partition_exit`]. The per-thread area must be this thread's.
pub unsafe fn partition_enter(part: &PartitionRegs) {
    // SAFETY: as the caller promises; the asm saves the hypervisor's
    // partition registers in the per-thread area and clobbers only
    // volatile registers.
    unsafe { __partition_enter(part) }
}

/// Switches back to the hypervisor's partition registers saved by
/// [`partition_enter`].
///
/// # Safety
/// [`partition_enter`] must have run on this thread, and no vcpu of the
/// partition may still be running on it.
pub unsafe fn partition_exit() {
    // SAFETY: restores what partition_enter saved; volatile registers only.
    unsafe { __partition_exit() }
}

/// Loads the vcpu's SLB (after clearing the thread's).
pub fn slb_load(regs: &GuestRegs) {
    // SAFETY: the hypervisor runs in real mode and never uses the SLB, so
    // replacing it cannot disturb it; volatile registers only.
    unsafe { __slb_load(regs) }
}

/// Saves the thread's SLB into the vcpu's register image and clears it.
pub fn slb_save_clear(regs: &mut GuestRegs) {
    // SAFETY: as for slb_load.
    unsafe { __slb_save_clear(regs) }
}

/// Runs the vcpu in the partition already loaded on this thread until its
/// next exit; returns the exit vector (bit 0 set when the interrupt used
/// HSRR0/1). The partition and the SLB stay loaded.
///
/// # Safety
/// [`partition_enter`] must have loaded the vcpu's partition and
/// [`slb_load`] its SLB on this thread (the MSR bits a guest may not hold
/// are forced here on every entry). The per-thread area must be this
/// thread's (HSPRG0/r13).
pub unsafe fn run(regs: &mut GuestRegs, entry: &VcpuEntry) -> u64 {
    // The exit path stores the guest's own SRR1/HSRR1 in `regs.msr`, and
    // hypervisor code edits it: force what a guest may never run with.
    regs.msr = crate::regs::guest_msr(regs.msr);
    // SAFETY: `__vcpu_run` saves every non-volatile register and LR of
    // the caller and restores them before returning, like a normal call;
    // the caller vouches for the partition.
    unsafe { __vcpu_run(regs, entry) }
}

/// How a secondary thread joined its core's partition: see
/// [`secondary_join_partition`].
#[must_use]
pub struct SecondaryJoin {
    /// The thread loaded its own copy of the partition registers.
    own_copy: bool,
    /// Its LPCR before joining (vcpu entries write LPCR on every thread).
    lpcr: u64,
}

/// **QEMU quirk, the only place it lives.** On POWER8 LPIDR and SDR1
/// belong to the core: once thread 0 has switched the partition
/// ([`partition_enter`]), a secondary reads the guest's LPIDR and must
/// not write it (that would pull translation from under its siblings).
/// QEMU models LPIDR, SDR1 and LPCR per thread (PLATFORM.md): there the
/// secondary still reads the host's LPIDR and loads its own copy. Which
/// case applies is read from the thread's LPIDR, not guessed from the
/// machine's name.
///
/// # Safety
/// As for [`partition_enter`], and thread 0 of the core must already have
/// switched to `part`.
pub unsafe fn secondary_join_partition(part: &PartitionRegs) -> SecondaryJoin {
    let lpcr = crate::cpu::mfspr::<{ crate::spr::LPCR }>();
    let own_copy = crate::cpu::lpidr() != part.lpid;
    if own_copy {
        let mine = PartitionRegs {
            flush_tlb: 0,
            ..*part
        };
        // SAFETY: as the caller promises; this thread's own registers.
        unsafe { partition_enter(&mine) };
    }
    SecondaryJoin { own_copy, lpcr }
}

/// Undoes [`secondary_join_partition`] once the thread's vcpu is saved:
/// its own copy of the partition registers (QEMU), else only its LPCR.
///
/// # Safety
/// The thread's vcpu must be out of the guest and saved.
pub unsafe fn secondary_leave_partition(j: SecondaryJoin) {
    if j.own_copy {
        // SAFETY: the join loaded this thread's copy; its vcpu is out.
        unsafe { partition_exit() }
    } else {
        // SAFETY: the value this thread ran the hypervisor with before.
        unsafe { crate::cpu::set_lpcr(j.lpcr) }
    }
}
