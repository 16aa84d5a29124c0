//! TLB invalidation policy for guest HPT changes (seed 000).
//!
//! POWER8's TLB is per core. When a VM has exactly one online virtual core
//! and it is running on this core, an HPT change can be invalidated with
//! `tlbiel` (this core only); every other core is then marked in the VM's
//! `need_tlb_flush` mask, because it may hold stale entries from an earlier
//! run. Otherwise `tlbie` (broadcast, with ptesync/tlbsync) is used. On
//! guest entry, thread 0 of a core test-and-clears its core's bit and, if
//! it was set, flushes the whole TLB for the LPID. A new VM and an HPT
//! reset set every bit (a recycled LPID may have stale entries anywhere).
//!
//! H_LOCAL: the seed honours it only when guest pages are never taken away
//! while mapped (no MMU notifiers); this hypervisor never takes pages from
//! a running guest, so the caller passes `honour_h_local = true` for now.

use crate::cpumask::{AtomicCpuMask, CpuMask};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// PAPR H_LOCAL hypercall flag (Linux hvcall.h: bit 35 from the top).
pub const H_LOCAL: u64 = 1 << (63 - 35);

/// The TLB instructions, implemented with tlbiel/tlbie on POWER8 and by a
/// recording fake in tests.
pub trait TlbOps {
    /// `tlbiel` of one entry (this core), with the ptesync around it.
    fn local(&mut self, lpid: u32, rb: u64);
    /// `tlbie` of one entry (all cores), with ptesync; tlbie; eieio;
    /// tlbsync; ptesync.
    fn global(&mut self, lpid: u32, rb: u64);
    /// Flushes every TLB entry of `lpid` on this core (`tlbiel` over all
    /// congruence classes: 512 on POWER8).
    fn flush_lpid_here(&mut self, lpid: u32);
    /// `tlbiel` of several entries between one pair of ptesyncs.
    fn local_batch(&mut self, lpid: u32, rbs: &[u64]) {
        for &rb in rbs {
            self.local(lpid, rb);
        }
    }
    /// `tlbie` of several entries, with one ptesync before and one
    /// eieio; tlbsync; ptesync after.
    fn global_batch(&mut self, lpid: u32, rbs: &[u64]) {
        for &rb in rbs {
            self.global(lpid, rb);
        }
    }
}

/// Per-core invalidation counters of one VM.
#[derive(Default, Debug)]
pub struct CoreTlbStats {
    pub local: AtomicU64,
    pub global: AtomicU64,
    pub entry_flushes: AtomicU64,
}

/// A VM's TLB state.
#[derive(Debug)]
pub struct VmTlb {
    pub lpid: u32,
    cores: usize,
    need_tlb_flush: AtomicCpuMask,
    /// Every core of the machine.
    all: CpuMask,
    /// For each core, every other core (what a `tlbiel` there marks).
    others: Vec<CpuMask>,
    online_vcores: AtomicU32,
    /// `tlbiel` on one thread reaches every thread of the VM's vcore
    /// (POWER8: the TLB is per core). False for a multi-thread vcore
    /// under QEMU (`quirks::tlbiel_reaches_one_thread`): then every
    /// invalidation is a `tlbie`.
    local_reaches_vcore: AtomicBool,
    stats: Vec<CoreTlbStats>,
}

impl VmTlb {
    /// A new VM on a machine with `cores` physical cores: every core must
    /// flush before it first runs the VM.
    pub fn new(lpid: u32, cores: usize) -> Self {
        let t = VmTlb {
            lpid,
            cores,
            need_tlb_flush: AtomicCpuMask::new(),
            all: CpuMask::first_n(cores),
            others: (0..cores)
                .map(|c| {
                    let mut m = CpuMask::first_n(cores);
                    m.clear(c);
                    m
                })
                .collect(),
            online_vcores: AtomicU32::new(0),
            local_reaches_vcore: AtomicBool::new(true),
            stats: (0..cores).map(|_| CoreTlbStats::default()).collect(),
        };
        t.mark_all();
        t
    }

    /// Marks every core as possibly holding stale entries (new VM, HPT reset).
    pub fn mark_all(&self) {
        self.need_tlb_flush.set_all(&self.all);
    }

    pub fn set_online_vcores(&self, n: u32) {
        self.online_vcores.store(n, Ordering::Release);
    }

    /// Whether a `tlbiel` reaches every thread of the VM's vcore.
    pub fn set_local_reaches_vcore(&self, yes: bool) {
        self.local_reaches_vcore.store(yes, Ordering::Release);
    }

    pub fn needs_flush(&self, core: usize) -> bool {
        self.need_tlb_flush.test(core)
    }

    /// The seed's `global_invalidates()`: false (use tlbiel) only when the
    /// VM has one online vcore and it is running on `running_core`; in that
    /// case every other core is marked in `need_tlb_flush` first.
    #[inline(always)]
    pub fn global_invalidates(
        &self,
        running_core: Option<usize>,
        flags: u64,
        honour_h_local: bool,
    ) -> bool {
        // Both are the VM's configuration, set before any of its vcpus
        // runs (ordered by the VM's creation): plain loads.
        if !self.local_reaches_vcore.load(Ordering::Relaxed) {
            return true;
        }
        let global = match running_core {
            Some(_) if self.online_vcores.load(Ordering::Relaxed) == 1 => false,
            _ if !honour_h_local => true,
            _ => flags & H_LOCAL == 0,
        };
        if !global {
            let others = running_core
                .and_then(|c| self.others.get(c))
                .unwrap_or(&self.all);
            self.need_tlb_flush.set_all(others);
        }
        global
    }

    /// Invalidates one translation after an HPTE change, counting it
    /// against `core` (the core the hypercall runs on).
    #[inline(always)]
    pub fn invalidate(
        &self,
        ops: &mut impl TlbOps,
        core: usize,
        running_core: Option<usize>,
        flags: u64,
        rb: u64,
    ) {
        if self.global_invalidates(running_core, flags, true) {
            ops.global(self.lpid, rb);
            self.stats[core].global.fetch_add(1, Ordering::Relaxed);
        } else {
            ops.local(self.lpid, rb);
            self.stats[core].local.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Invalidates several translations at once (H_BULK_REMOVE), with
    /// one policy decision and one batch of instructions.
    #[inline(always)]
    pub fn invalidate_batch(
        &self,
        ops: &mut impl TlbOps,
        core: usize,
        running_core: Option<usize>,
        rbs: &[u64],
    ) {
        let n = rbs.len() as u64;
        if n == 0 {
            return;
        }
        if self.global_invalidates(running_core, 0, true) {
            ops.global_batch(self.lpid, rbs);
            self.stats[core].global.fetch_add(n, Ordering::Relaxed);
        } else {
            ops.local_batch(self.lpid, rbs);
            self.stats[core].local.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Guest entry on `core` (thread 0): flush if this core's bit was set.
    pub fn on_entry(&self, ops: &mut impl TlbOps, core: usize) -> bool {
        if self.need_tlb_flush.test_and_clear(core) {
            ops.flush_lpid_here(self.lpid);
            self.stats[core]
                .entry_flushes
                .fetch_add(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// (local, global, entry flushes) counted on `core`.
    pub fn counts(&self, core: usize) -> (u64, u64, u64) {
        let s = &self.stats[core];
        (
            s.local.load(Ordering::Relaxed),
            s.global.load(Ordering::Relaxed),
            s.entry_flushes.load(Ordering::Relaxed),
        )
    }

    pub fn cores(&self) -> usize {
        self.cores
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        ops: Vec<String>,
    }

    impl TlbOps for Recorder {
        fn local(&mut self, lpid: u32, rb: u64) {
            self.ops.push(format!("tlbiel lpid={lpid} rb={rb:#x}"));
        }
        fn global(&mut self, lpid: u32, rb: u64) {
            self.ops.push(format!("tlbie lpid={lpid} rb={rb:#x}"));
        }
        fn flush_lpid_here(&mut self, lpid: u32) {
            self.ops.push(format!("flush lpid={lpid}"));
        }
    }

    #[test]
    fn a_new_vm_flushes_once_on_every_core() {
        let t = VmTlb::new(5, 3);
        let mut r = Recorder::default();
        for core in 0..3 {
            assert!(t.on_entry(&mut r, core));
            assert!(!t.on_entry(&mut r, core), "flushed twice on core {core}");
        }
        assert_eq!(r.ops, vec!["flush lpid=5"; 3]);
        assert_eq!(t.counts(1), (0, 0, 1));
    }

    #[test]
    fn single_running_vcore_uses_tlbiel_and_marks_the_other_cores() {
        let t = VmTlb::new(7, 4);
        let mut r = Recorder::default();
        for c in 0..4 {
            t.on_entry(&mut r, c);
        }
        r.ops.clear();
        t.set_online_vcores(1);
        t.invalidate(&mut r, 2, Some(2), 0, 0x1000);
        assert_eq!(r.ops, vec!["tlbiel lpid=7 rb=0x1000"]);
        assert_eq!(t.counts(2), (1, 0, 1));
        // Every core but 2 must now flush before running the VM.
        assert!(!t.needs_flush(2));
        for c in [0, 1, 3] {
            assert!(t.needs_flush(c), "core {c}");
        }
        r.ops.clear();
        assert!(!t.on_entry(&mut r, 2));
        assert!(t.on_entry(&mut r, 0));
        assert_eq!(r.ops, vec!["flush lpid=7"]);
    }

    #[test]
    fn two_vcores_or_not_running_here_use_tlbie() {
        let t = VmTlb::new(9, 2);
        let mut r = Recorder::default();
        for c in 0..2 {
            t.on_entry(&mut r, c);
        }
        r.ops.clear();
        t.set_online_vcores(2);
        t.invalidate(&mut r, 0, Some(0), 0, 0x2000);
        t.set_online_vcores(1);
        t.invalidate(&mut r, 1, None, 0, 0x3000);
        assert_eq!(
            r.ops,
            vec!["tlbie lpid=9 rb=0x2000", "tlbie lpid=9 rb=0x3000"]
        );
        assert!(
            !t.needs_flush(0) && !t.needs_flush(1),
            "tlbie needs no entry flush"
        );
        assert_eq!(t.counts(0), (0, 1, 1));
    }

    #[test]
    fn h_local_is_honoured_only_where_allowed() {
        let t = VmTlb::new(3, 2);
        t.set_online_vcores(2);
        assert!(!t.global_invalidates(Some(0), H_LOCAL, true));
        assert!(t.global_invalidates(Some(0), H_LOCAL, false));
        assert!(t.global_invalidates(Some(0), 0, true));
        // A local invalidation with H_LOCAL also marks the other cores.
        let mut r = Recorder::default();
        t.on_entry(&mut r, 1);
        t.global_invalidates(Some(0), H_LOCAL, true);
        assert!(t.needs_flush(1));
    }

    #[test]
    fn a_tlbiel_that_reaches_one_thread_is_never_used_for_a_multi_thread_vcore() {
        // One SMT4 vcore under QEMU: even H_LOCAL must broadcast, or the
        // siblings keep the stale translation.
        let t = VmTlb::new(6, 2);
        let mut r = Recorder::default();
        t.on_entry(&mut r, 0);
        t.on_entry(&mut r, 1);
        r.ops.clear();
        t.set_online_vcores(1);
        t.set_local_reaches_vcore(false);
        t.invalidate(&mut r, 0, Some(0), H_LOCAL, 0x4000);
        assert!(t.global_invalidates(Some(0), H_LOCAL, true));
        assert_eq!(r.ops, vec!["tlbie lpid=6 rb=0x4000"]);
        assert!(!t.needs_flush(1), "tlbie needs no entry flush");
        t.set_local_reaches_vcore(true);
        assert!(!t.global_invalidates(Some(0), 0, true));
    }

    #[test]
    fn hpt_reset_marks_every_core_again() {
        let t = VmTlb::new(4, 2);
        let mut r = Recorder::default();
        t.on_entry(&mut r, 0);
        t.on_entry(&mut r, 1);
        t.mark_all();
        assert!(t.needs_flush(0) && t.needs_flush(1));
    }
}
