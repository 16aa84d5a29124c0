//! The hypercall fast path: HPT calls, TCE calls, the logical LAN's
//! per-frame calls and H_SEND_CRQ from the exit assembly, without the
//! VM's lock.

use super::*;
use kernel::vio::{lan::Frame, Quick};

/// TLB invalidations of hypercalls, on POWER8.
pub(super) struct Power8Tlb;

impl TlbOps for Power8Tlb {
    fn local(&mut self, lpid: u32, rb: u64) {
        // Hypercalls run in the caller's partition, so tlbiel (which acts
        // on the loaded LPID) hits the right one; were another loaded, a
        // tlbie for this LPID is still correct.
        if cpu::lpidr() == u64::from(lpid) {
            cpu::tlbiel(rb);
        } else {
            cpu::tlbie_lpid(lpid as u64, rb);
        }
    }
    fn global(&mut self, lpid: u32, rb: u64) {
        cpu::tlbie_lpid(lpid as u64, rb);
    }
    fn flush_lpid_here(&mut self, _: u32) {
        // Whole-LPID flushes happen in the entry asm (PartitionRegs::flush_tlb).
    }
    fn local_batch(&mut self, lpid: u32, rbs: &[u64]) {
        if cpu::lpidr() == u64::from(lpid) {
            cpu::tlbiel_batch(rbs);
        } else {
            cpu::tlbie_lpid_batch(lpid as u64, rbs);
        }
    }
    fn global_batch(&mut self, lpid: u32, rbs: &[u64]) {
        cpu::tlbie_lpid_batch(lpid as u64, rbs);
    }
}

/// What the HPT hypercalls work on, fixed when the VM is made: every
/// thread running the VM's vcpus uses it without the VM's lock (each HPTE
/// is changed under its own lock, kernel::papr::hpt).
pub(super) struct GuestMmu {
    pub(super) hpt_base: u64,
    /// HPTEs in the table (16 bytes each).
    pub(super) hpt_entries: u64,
    pub(super) mem_base: u64,
    pub(super) mem_size: u64,
    pub(super) tlb: VmTlb,
}

impl GuestMmu {
    /// The HPT hypercalls' view of this VM from `core`, where its vcpu
    /// runs.
    pub(super) fn partition(&self, core: usize) -> Partition<'_> {
        // SAFETY: the HPT belongs to this VM alone and lives as long as
        // it; its entries are only changed under their HPTE lock
        // (kernel::papr::hpt), by atomic accesses, so vcpus on several threads
        // may share it.
        let table = unsafe {
            core::slice::from_raw_parts(
                self.hpt_base as *const [core::sync::atomic::AtomicU64; 2],
                self.hpt_entries as usize,
            )
        };
        Partition {
            hpt: table,
            mem_base: self.mem_base,
            mem_size: self.mem_size,
            tlb: &self.tlb,
            core,
            running_here: true,
        }
    }
}

/// HPT hypercall `op` on `p`, with its arguments in `g[4..]` and its
/// return code written to `g[3]` and its results after it: only the
/// registers PAPR defines for the call's results (H_ENTER: r4; H_REMOVE,
/// H_READ: r4-r5, or r4-r11 with H_READ_4; H_CLEAR_REF/MOD: r4;
/// H_BULK_REMOVE: r4-r11 in place; H_PROTECT: none). Each call has its
/// own out-of-line function, so each pays only for its own registers.
#[inline(always)]
pub(super) fn hpt_hcall(p: &Partition, op: HptCall, g: &mut [u64; 32]) -> HcallPath {
    match op {
        HptCall::Enter => hpt_enter(p, g),
        HptCall::Remove => hpt_remove(p, g),
        HptCall::Read if g[4] & papr_abi::H_READ_4 != 0 => hpt_read_4(p, g),
        HptCall::Read => hpt_read(p, g),
        HptCall::Protect => hpt_protect(p, g),
        HptCall::ClearRef => hpt_clear(p, g, true),
        HptCall::ClearMod => hpt_clear(p, g, false),
        HptCall::BulkRemove => hpt_bulk_remove(p, g),
    }
}

/// Orders the HPTE updates before the guest runs again.
#[inline(always)]
pub(super) fn ptesync() {
    // SAFETY: an ordering instruction only.
    unsafe { core::arch::asm!("ptesync", options(nostack, preserves_flags)) };
}

/// The end of every HPT call: its return code in r3.
#[inline(always)]
pub(super) fn answered(g: &mut [u64; 32], code: i64) -> HcallPath {
    g[3] = code as u64;
    HcallPath::Resumed
}

#[inline(never)]
pub(super) fn hpt_enter(p: &Partition, g: &mut [u64; 32]) -> HcallPath {
    let r = p.h_enter(g[4], g[5], g[6], g[7]);
    ptesync();
    g[4] = r.vals[0];
    answered(g, r.code)
}

#[inline(never)]
pub(super) fn hpt_remove(p: &Partition, g: &mut [u64; 32]) -> HcallPath {
    let r = p.h_remove(&mut Power8Tlb, g[4], g[5], g[6]);
    ptesync();
    (g[4], g[5]) = (r.vals[0], r.vals[1]);
    answered(g, r.code)
}

#[inline(never)]
pub(super) fn hpt_read(p: &Partition, g: &mut [u64; 32]) -> HcallPath {
    let r = p.h_read_1(g[5]);
    if r.code == papr_abi::H_SUCCESS {
        (g[4], g[5]) = (r.vals[0], r.vals[1]);
    }
    answered(g, r.code)
}

#[inline(never)]
pub(super) fn hpt_read_4(p: &Partition, g: &mut [u64; 32]) -> HcallPath {
    let r = p.h_read_4(g[5]);
    if r.code == papr_abi::H_SUCCESS {
        g[4..12].copy_from_slice(&r.vals);
    }
    answered(g, r.code)
}

#[inline(never)]
pub(super) fn hpt_protect(p: &Partition, g: &mut [u64; 32]) -> HcallPath {
    let r = p.h_protect(&mut Power8Tlb, g[4], g[5], g[6]);
    ptesync();
    answered(g, r.code)
}

#[inline(never)]
pub(super) fn hpt_clear(p: &Partition, g: &mut [u64; 32], reference: bool) -> HcallPath {
    let r = if reference {
        p.h_clear_ref(&mut Power8Tlb, g[5])
    } else {
        p.h_clear_mod(&mut Power8Tlb, g[5])
    };
    ptesync();
    g[4] = r.vals[0];
    answered(g, r.code)
}

#[inline(never)]
pub(super) fn hpt_bulk_remove(p: &Partition, g: &mut [u64; 32]) -> HcallPath {
    let code = match g[4..].first_chunk_mut::<8>() {
        Some(regs) => p.h_bulk_remove_in_place(&mut Power8Tlb, regs),
        None => papr_abi::H_PARAMETER, // r4-r11 are always there
    };
    ptesync();
    answered(g, code)
}

/// What the hypercall fast path works with during one vcpu's run on a
/// thread (`VcpuEntry::hcall_ctx` points at it).
pub struct FastCtx<'a> {
    /// The HPT calls' view of the VM from this thread's core.
    pub(super) part: Partition<'a>,
    /// The VM (the interrupts its devices raise), its devices and memory
    /// (the TCE calls, the logical LAN's per-frame calls, H_SEND_CRQ) and
    /// its id (its ports on the switch).
    pub(super) vm: &'a Vm,
    pub(super) sh: &'a Shared,
    pub(super) id: usize,
    /// The frame an adapter sends, on its way to the switch.
    pub(super) frame: Frame,
    /// The interrupts a frame sent asks for, raised before the call
    /// returns (empty between calls; the vcpu's, lent for the run).
    pub(super) raise: Vec<(Arc<Vm>, u32)>,
    /// Counted here, added to the VM's when the vcpu leaves the thread.
    pub(super) tally: &'a mut table::Tally,
}

/// The hypercall fast path's handler (`ppc64::regs::HcallPath`), called
/// by the exit assembly for every `sc 1` with the vcpu's register image
/// (r0-r13, CR, LR, CTR, XER, PC, MSR saved; the other SPRs, FP and the
/// partition still the guest's) and this run's [`FastCtx`]. It handles
/// what [`Hcall::path`] says is fast and unimplemented numbers, and
/// answers [`HcallPath::Full`], having changed nothing, for the rest:
/// hypercalls from guest problem state, the full-path calls, an
/// unimplemented number when the tally has no room for it.
#[unsafe(no_mangle)]
pub extern "C" fn hv_hcall_fast(regs: &mut GuestRegs, ctx: *mut FastCtx) -> HcallPath {
    // SAFETY: the pointer vcpu_thread put in this entry: its FastCtx,
    // alive for the whole run and used by nothing else while the guest
    // (or this handler) runs; null only for an entry made elsewhere.
    let Some(ctx) = (unsafe { ctx.as_mut() }) else {
        return HcallPath::Full;
    };
    if regs.msr & spr::MSR_PR != 0 {
        return HcallPath::Full;
    }
    let nr = regs.gpr[3];
    match Hcall::decode(nr) {
        None => {
            if !ctx.tally.count_unknown(nr) {
                return HcallPath::Full;
            }
            answered(&mut regs.gpr, papr_abi::H_FUNCTION)
        }
        // Every HPT call takes the fast path (Hcall::path).
        Some((i, Hcall::Hpt(op))) => {
            ctx.tally.known[i] += 1;
            hpt_hcall(&ctx.part, op, &mut regs.gpr)
        }
        Some((i, call)) if call.path() == table::Path::Fast => {
            device_hcall(ctx, i, call, &mut regs.gpr)
        }
        Some(_) => HcallPath::Full,
    }
}

/// A device's fast call (a TCE call, H_ADD_LOGICAL_LAN_BUFFER,
/// H_SEND_LOGICAL_LAN, H_SEND_CRQ), out of line so the HPT calls'
/// dispatch keeps its frame. What the device leaves to do is done once
/// its lock is released: a frame sent is switched and the receivers'
/// interrupts raised, an edge of its own pulsed (this thread holds no
/// VM's lock).
#[inline(never)]
fn device_hcall(ctx: &mut FastCtx, i: usize, call: Hcall, g: &mut [u64; 32]) -> HcallPath {
    // SAFETY: this VM's memory, allocated while its vcpu runs.
    let mut mem = unsafe { ctx.sh.guest_memory() };
    // The unit address (r4 is a result register once the call is done).
    let unit = g[4] as u32;
    let r = if let Some(tc) = call.tce() {
        ctx.sh.vio.tce_call(tc, g, &mem)
    } else {
        let frame = &mut ctx.frame;
        match call
            .vio()
            .and_then(|vc| ctx.sh.vio.quick(vc, g, &mut mem, frame))
        {
            None => return HcallPath::Full,
            Some((irq, r)) => r.map(|then| match then {
                Quick::Done => {}
                Quick::Line(high) => {
                    if let Some(irq) = irq {
                        ctx.vm.set_line(irq, high);
                    }
                }
                Quick::Sent => {
                    net::transmit(ctx.sh, ctx.id, unit, &ctx.frame, &mut ctx.raise);
                    net::raise_edges(&mut ctx.raise);
                }
            }),
        }
    };
    ctx.tally.known[i] += 1;
    answered(g, r.map_or_else(|e| e.code(), |()| papr_abi::H_SUCCESS))
}
