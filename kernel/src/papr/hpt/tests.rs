//! HPT hypercalls against an HPT in a Vec and a recording TLB fake.

use super::*;
use core::sync::atomic::{AtomicU64, Ordering};
use ppc64::hpte::PageSize;
use ppc64::hpte::{hpte_encode_r, hpte_encode_v, primary_hash, SegmentSize};

#[derive(Default)]
struct Rec(Vec<&'static str>);
impl TlbOps for Rec {
    fn local(&mut self, _: u32, _: u64) {
        self.0.push("tlbiel");
    }
    fn global(&mut self, _: u32, _: u64) {
        self.0.push("tlbie");
    }
    fn flush_lpid_here(&mut self, _: u32) {
        self.0.push("flush");
    }
}

const MEM_BASE: u64 = 0x4000_0000;
const MEM: u64 = 64 << 20;
const ORDER: u32 = 18; // 16384 entries

struct Fixture {
    hpt: Vec<[AtomicU64; 2]>,
    tlb: VmTlb,
}

impl Fixture {
    fn new(vcores: u32) -> Self {
        let tlb = VmTlb::new(3, 2);
        tlb.set_online_vcores(vcores);
        Fixture {
            hpt: (0..(1 << ORDER) / 16)
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                .collect(),
            tlb,
        }
    }
    /// Enters a 4K page mapping `ea` of `vsid` onto the same guest
    /// address, anywhere in its PTEG; returns the index used.
    fn enter(&self, vsid: u64, ea: u64) -> u64 {
        let (i, v, r) = guest_pte(vsid, ea, PageSize::P4K, ea, 2);
        let ret = self.part().h_enter(0, i, v, r);
        assert_eq!(ret.code, H_SUCCESS);
        ret.vals[0]
    }

    fn part(&self) -> Partition<'_> {
        Partition {
            hpt: &self.hpt,
            mem_base: MEM_BASE,
            mem_size: MEM,
            tlb: &self.tlb,
            core: 0,
            running_here: true,
        }
    }
}

/// A guest's (v, r) for `ea` in segment `vsid` mapped at guest-physical `gpa`.
fn guest_pte(vsid: u64, ea: u64, page: PageSize, gpa: u64, pp: u64) -> (u64, u64, u64) {
    let v = hpte_encode_v(vsid, ea, SegmentSize::S256M, page) | hpte::HPTE_V_VALID;
    let r = hpte_encode_r(gpa, page).unwrap() | hpte::HPTE_R_M | pp;
    let hash = primary_hash(vsid, ea, SegmentSize::S256M, page);
    let pteg = hash & ((1 << (ORDER - 7)) - 1);
    (pteg * 8, v, r)
}

#[test]
fn enter_translates_rpn_and_read_translates_back() {
    let f = Fixture::new(1);
    let p = f.part();
    let (idx, v, r) = guest_pte(0x123, 0x5000, PageSize::P4K, 0x20_0000, 2);
    let ret = p.h_enter(0, idx, v, r);
    assert_eq!(ret.code, H_SUCCESS);
    assert_eq!(ret.vals[0], idx);
    // Stored with the host address, big-endian.
    let stored = p.read(idx);
    assert_eq!(stored.real_address(PageSize::P4K), MEM_BASE + 0x20_0000);
    assert_eq!(
        u64::from_be(p.hpt[idx as usize][0].load(Ordering::Relaxed)),
        v
    );
    // Read back with the guest address.
    let rd = p.h_read_1(idx);
    assert_eq!((rd.code, rd.vals[0], rd.vals[1]), (H_SUCCESS, v, r));
    // Next H_ENTER without H_EXACT takes the next free slot of the PTEG.
    let ret2 = p.h_enter(0, idx, v, r);
    assert_eq!(ret2.vals[0], idx + 1);
    // H_EXACT on a taken slot: H_PTEG_FULL.
    assert_eq!(p.h_enter(H_EXACT, idx, v, r).code, H_PTEG_FULL);
    // H_READ_4 returns the four entries of the aligned group.
    let r4 = p.h_read_4(idx + 1);
    assert_eq!((r4.vals[0], r4.vals[2], r4.vals[4]), (v, v, 0));
}

#[test]
fn a_full_pteg_is_reported() {
    let f = Fixture::new(1);
    let p = f.part();
    let (idx, v, r) = guest_pte(0x77, 0x1000, PageSize::P4K, 0x1000, 2);
    for k in 0..8 {
        assert_eq!(p.h_enter(0, idx, v, r).vals[0], idx + k);
    }
    assert_eq!(p.h_enter(0, idx, v, r).code, H_PTEG_FULL);
}

#[test]
fn bad_arguments_are_h_parameter_and_touch_nothing() {
    let f = Fixture::new(1);
    let p = f.part();
    let n = p.entries();
    let (idx, v, r) = guest_pte(0x1, 0x0, PageSize::P4K, 0x3000, 2);
    // PTE index outside the HPT.
    assert_eq!(p.h_enter(0, n, v, r).code, H_PARAMETER);
    assert_eq!(p.h_enter(0, u64::MAX, v, r).code, H_PARAMETER);
    // RPN outside guest memory (last page + 1, and far away).
    let (_, v2, r2) = guest_pte(0x1, 0x0, PageSize::P4K, MEM, 2);
    assert_eq!(p.h_enter(0, idx, v2, r2).code, H_PARAMETER);
    let (_, v3, r3) = guest_pte(
        0x1,
        0x0,
        PageSize::P16M,
        (MEM - (8 << 20)) & !((16 << 20) - 1),
        2,
    );
    assert_eq!(
        p.h_enter(0, idx, v3, r3).code,
        H_SUCCESS,
        "last 16M page fits"
    );
    let (_, v4, r4) = guest_pte(0x1, 0x0, PageSize::P4K, 0x0fff_ffff_f000, 2);
    assert_eq!(p.h_enter(0, idx, v4, r4).code, H_PARAMETER);
    // Bad page size encoding: L set with an unknown LP.
    assert_eq!(
        p.h_enter(0, idx, v | hpte::HPTE_V_LARGE, r | (0x3 << 12))
            .code,
        H_PARAMETER
    );
    // Cache-inhibited mapping of RAM; reserved segment size B=0b10.
    assert_eq!(p.h_enter(0, idx, v, r | hpte::HPTE_R_I).code, H_PARAMETER);
    assert_eq!(p.h_enter(0, idx, v | (2 << 62), r).code, H_PARAMETER);
    // Every other call with an index outside the HPT.
    let mut rec = Rec::default();
    assert_eq!(p.h_remove(&mut rec, 0, n, 0).code, H_PARAMETER);
    assert_eq!(p.h_read_1(n).code, H_PARAMETER);
    assert_eq!(p.h_protect(&mut rec, 0, n, 0).code, H_PARAMETER);
    assert_eq!(p.h_clear_ref(&mut rec, n).code, H_PARAMETER);
    assert!(rec.0.is_empty());
    // Only the one valid 16M entry was ever written.
    let valid = (0..n).filter(|i| p.read(*i).is_valid()).count();
    assert_eq!(valid, 1);
}

#[test]
fn remove_honours_avpn_and_andcond_and_invalidates() {
    let f = Fixture::new(1);
    let p = f.part();
    let (idx, v, r) = guest_pte(0x42, 0x9000, PageSize::P4K, 0x9000, 2);
    p.h_enter(H_EXACT, idx, v, r);
    let mut rec = Rec::default();
    // Wrong AVPN: not found, entry kept.
    assert_eq!(
        p.h_remove(&mut rec, H_AVPN, idx, (v & !0x7f) ^ 0x80).code,
        H_NOT_FOUND
    );
    // ANDCOND: any V bit in common with the mask means "not found".
    assert_eq!(
        p.h_remove(&mut rec, H_ANDCOND, idx, v & !0x7f).code,
        H_NOT_FOUND
    );
    assert!(p.read(idx).is_valid());
    assert!(rec.0.is_empty());
    let ret = p.h_remove(&mut rec, H_AVPN, idx, v & !0x7f);
    assert_eq!((ret.code, ret.vals[0], ret.vals[1]), (H_SUCCESS, v, r));
    assert!(!p.read(idx).is_valid());
    assert_eq!(
        p.h_remove(&mut rec, 0, idx, 0).code,
        H_NOT_FOUND,
        "already gone"
    );
    // One vcore running here: local invalidation.
    assert_eq!(rec.0, vec!["tlbiel"]);
}

#[test]
fn two_vcores_invalidate_globally() {
    let f = Fixture::new(2);
    let p = f.part();
    let (idx, v, r) = guest_pte(0x42, 0x9000, PageSize::P4K, 0x9000, 2);
    p.h_enter(H_EXACT, idx, v, r);
    let mut rec = Rec::default();
    p.h_protect(&mut rec, 1, idx, 0);
    p.h_remove(&mut rec, 0, idx, 0);
    assert_eq!(rec.0, vec!["tlbie", "tlbie"]);
    assert_eq!(f.tlb.counts(0), (0, 2, 0));
}

#[test]
fn protect_sets_pp_n_and_key_from_flags() {
    let f = Fixture::new(1);
    let p = f.part();
    let (idx, v, r) = guest_pte(0x5, 0x2000, PageSize::P4K, 0x2000, 2);
    p.h_enter(H_EXACT, idx, v, r);
    let mut rec = Rec::default();
    // pp=0b011 (read-only), N, pp0 via flag bit 8? pp0 comes from flag 0x100.
    assert_eq!(
        p.h_protect(&mut rec, 0x3 | hpte::HPTE_R_N | 0x100, idx, 0)
            .code,
        H_SUCCESS
    );
    let e = p.read(idx);
    assert_eq!(e.r & hpte::HPTE_R_PP, 3);
    assert_ne!(e.r & hpte::HPTE_R_N, 0);
    assert_ne!(e.r & hpte::HPTE_R_PP0, 0);
    assert_eq!(
        e.real_address(PageSize::P4K),
        MEM_BASE + 0x2000,
        "RPN untouched"
    );
    assert!(e.is_valid());
    assert_eq!(p.h_protect(&mut rec, 0, idx + 1, 0).code, H_NOT_FOUND);
}

#[test]
fn clear_ref_and_mod_return_old_bits() {
    let f = Fixture::new(1);
    let p = f.part();
    let (idx, v, r) = guest_pte(0x5, 0x2000, PageSize::P4K, 0x2000, 2);
    p.h_enter(H_EXACT, idx, v, r | hpte::HPTE_R_R | hpte::HPTE_R_C);
    let mut rec = Rec::default();
    let cr = p.h_clear_ref(&mut rec, idx);
    assert_ne!(cr.vals[0] & hpte::HPTE_R_R, 0);
    assert_eq!(p.read(idx).r & hpte::HPTE_R_R, 0);
    assert_eq!(p.h_clear_ref(&mut rec, idx).vals[0] & hpte::HPTE_R_R, 0);
    let cm = p.h_clear_mod(&mut rec, idx);
    assert_ne!(cm.vals[0] & hpte::HPTE_R_C, 0);
    assert_eq!(p.read(idx).r & hpte::HPTE_R_C, 0);
    assert_eq!(rec.0.len(), 2, "one invalidation per bit actually cleared");
    assert_eq!(p.h_clear_mod(&mut rec, idx + 1).code, H_NOT_FOUND);
}

#[test]
fn bulk_remove_answers_each_request_in_place() {
    let f = Fixture::new(1);
    let p = f.part();
    let (i1, v1, r1) = guest_pte(0x10, 0x1000, PageSize::P4K, 0x1000, 2);
    let (i2, v2, r2) = guest_pte(0x11, 0x2000, PageSize::P4K, 0x2000, 2);
    p.h_enter(H_EXACT, i1, v1, r1 | hpte::HPTE_R_C);
    p.h_enter(H_EXACT, i2, v2, r2);
    let mut rec = Rec::default();
    let args = [
        BULK_REQUEST | i1,
        0,
        BULK_REQUEST | BULK_AVPN | i2,
        (v2 & !0x7f) ^ 0x80, // wrong AVPN
        BULK_REQUEST | BULK_AVPN | i2,
        v2 & !0x7f,
        BULK_END,
        0,
    ];
    let ret = p.h_bulk_remove(&mut rec, args);
    assert_eq!(ret.code, H_SUCCESS);
    assert_eq!(
        ret.vals[0] & (BULK_TYPE | BULK_CODE),
        BULK_RESPONSE | BULK_SUCCESS
    );
    assert_eq!(ret.vals[0] & BULK_RC, hpte::HPTE_R_C << BULK_RC_SHIFT);
    assert_eq!(
        ret.vals[2] & (BULK_TYPE | BULK_CODE),
        BULK_RESPONSE | BULK_NOT_FOUND
    );
    assert_eq!(
        ret.vals[4] & (BULK_TYPE | BULK_CODE),
        BULK_RESPONSE | BULK_SUCCESS
    );
    assert!(!p.read(i1).is_valid() && !p.read(i2).is_valid());
    // A malformed type is H_PARAMETER.
    assert_eq!(
        p.h_bulk_remove(&mut rec, [BULK_RESPONSE | i1, 0, 0, 0, 0, 0, 0, 0])
            .code,
        H_PARAMETER
    );
}

#[test]
fn bulk_remove_batches_its_invalidations_and_never_waits_holding_an_entry() {
    let f = Fixture::new(1);
    let p = f.part();
    let enter = |vsid, ea| f.enter(vsid, ea);
    let (i1, i2, i3) = (
        enter(0x20, 0x1000),
        enter(0x21, 0x2000),
        enter(0x22, 0x3000),
    );
    // i2 twice: the second finds it held by this very batch, so the
    // batch ends there and the second request, made alone afterwards,
    // finds it removed. Nothing deadlocks; every answer is in its slot.
    let mut rec = Rec::default();
    let ret = p.h_bulk_remove(
        &mut rec,
        [
            BULK_REQUEST | i1,
            0,
            BULK_REQUEST | i2,
            0,
            BULK_REQUEST | i2,
            0,
            BULK_REQUEST | i3,
            0,
        ],
    );
    assert_eq!(ret.code, H_SUCCESS);
    let codes: Vec<u64> = (0..4)
        .map(|k| ret.vals[2 * k] & (BULK_TYPE | BULK_CODE))
        .collect();
    assert_eq!(
        codes,
        [
            BULK_RESPONSE | BULK_SUCCESS,
            BULK_RESPONSE | BULK_SUCCESS,
            BULK_RESPONSE | BULK_NOT_FOUND,
            BULK_RESPONSE | BULK_SUCCESS
        ]
    );
    for i in [i1, i2, i3] {
        let e = p.read(i);
        assert!(
            !e.is_valid() && e.v & HPTE_V_HVLOCK == 0 && e.r == 0,
            "{i:#x}: {e:?}"
        );
    }
    assert_eq!(
        rec.0.len(),
        3,
        "one invalidation per entry removed: {:?}",
        rec.0
    );
    // An entry another vcpu holds cannot be taken without waiting (what
    // ends a batch that already holds one).
    let i5 = enter(0x24, 0x5000);
    let other = p.lock(i5);
    assert!(p.try_lock(i5).is_none(), "held elsewhere");
    // A failed attempt leaves the holder's lock alone.
    assert!(p.try_lock(i5).is_none(), "a failed try_lock released it");
    assert_ne!(
        u64::from_be(f.hpt[i5 as usize][0].load(Ordering::Relaxed)) & HPTE_V_HVLOCK,
        0
    );
    drop(other);
    assert!(p.try_lock(i5).is_some());
}

#[test]
fn bulk_remove_stops_with_h_parameter_at_a_bad_request_as_kvm_and_qemu_do() {
    let f = Fixture::new(1);
    let p = f.part();
    let enter = |vsid, ea| f.enter(vsid, ea);
    let beyond = 1 << (ORDER - 4); // the first index past the table
    for bad in [
        BULK_REQUEST | BULK_ANDCOND | BULK_AVPN,
        BULK_REQUEST | beyond,
    ] {
        let (i1, i2) = (enter(0x30, 0x1000), enter(0x31, 0x2000));
        let bad = if bad & BULK_PTEX == 0 { bad | i2 } else { bad };
        let ret = p.h_bulk_remove(
            &mut Rec::default(),
            [
                BULK_REQUEST | i1,
                0,
                bad,
                0,
                BULK_REQUEST | i2,
                0,
                BULK_END,
                0,
            ],
        );
        assert_eq!(ret.code, H_PARAMETER, "{bad:#x}");
        let code = |k: usize| ret.vals[2 * k] & (BULK_TYPE | BULK_CODE);
        assert_eq!(code(0), BULK_RESPONSE | BULK_SUCCESS);
        assert_eq!(code(1), BULK_RESPONSE | BULK_PARM);
        // Not reached: still a request, and the entry is still there.
        assert_eq!(ret.vals[4], BULK_REQUEST | i2);
        assert!(!p.read(i1).is_valid() && p.read(i2).is_valid());
        assert_eq!(p.h_remove(&mut Rec::default(), 0, i2, 0).code, H_SUCCESS);
    }
}

#[test]
fn tlbie_rb_carries_segment_size_and_large_page_bits() {
    let (idx, v, r) = guest_pte(0x123, 0x5000, PageSize::P4K, 0x5000, 2);
    let rb = tlbie_rb(Hpte::new(v, r), idx);
    assert_eq!(rb & 1, 0, "L=0 for 4K");
    assert_eq!(rb & 0x300, 0, "B=0 for 256M");
    let (idx, v, r) = guest_pte(0x123, 0x100_0000, PageSize::P16M, 0x100_0000, 2);
    let rb = tlbie_rb(Hpte::new(v | hpte::HPTE_V_1TB_SEG, r), idx);
    assert_eq!(rb & 1, 1, "L=1 for 16M");
    assert_eq!(rb & 0x300, 0x100, "B=1 for 1T");
}

#[test]
fn vcpus_on_several_threads_share_one_table_without_losing_an_entry() {
    // Four "vcpus" enter, read, protect and remove their own entries in
    // the same two PTEGs at once. Each holds at most one entry at a time,
    // so every H_ENTER must find a slot, and every entry must read back as
    // its owner wrote it until its owner removes it: a slot taken twice
    // (no lock between the search and the store) shows up as a wrong
    // H_READ or a failed H_REMOVE.
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 5000;
    let f = Fixture::new(2);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let f = &f;
            s.spawn(move || {
                let p = f.part();
                let mut ops = Rec::default();
                for k in 0..ROUNDS {
                    let vsid = 0x10_0000 + t * ROUNDS + k;
                    let (_, v, r) = guest_pte(vsid, 0x7000, PageSize::P4K, 0x10_0000, 2);
                    let base = (k % 2) * 8;
                    let ret = p.h_enter(0, base, v, r);
                    assert_eq!(ret.code, H_SUCCESS, "thread {t} round {k}: no free slot");
                    let slot = ret.vals[0];
                    let rd = p.h_read_1(slot);
                    assert_eq!(
                        (rd.vals[0], rd.vals[1]),
                        (v, r),
                        "thread {t}: slot {slot} taken twice"
                    );
                    let avpn = v & !0x7f;
                    assert_eq!(
                        p.h_protect(&mut ops, H_AVPN | 1, slot, avpn).code,
                        H_SUCCESS
                    );
                    let rm = p.h_remove(&mut ops, H_AVPN, slot, avpn);
                    assert_eq!(rm.code, H_SUCCESS, "thread {t}: lost slot {slot}");
                    assert_eq!(rm.vals[0], v);
                }
            });
        }
    });
    // Nothing left valid or locked.
    assert!(f
        .hpt
        .iter()
        .flatten()
        .all(|w| w.load(Ordering::Relaxed) == 0));
}

#[test]
fn a_guest_cannot_set_the_hypervisors_lock_bit() {
    let f = Fixture::new(1);
    let p = f.part();
    let (idx, v, r) = guest_pte(0x77, 0x1000, PageSize::P4K, 0x3000, 2);
    assert_eq!(
        p.h_enter(H_EXACT, idx, v | HPTE_V_HVLOCK, r).code,
        H_SUCCESS
    );
    // Stored unlocked (another call can take the entry) and read back
    // without it.
    assert_eq!(p.h_read_1(idx).vals[0], v);
    assert_eq!(p.h_remove(&mut Rec::default(), 0, idx, 0).code, H_SUCCESS);
}

/// A TLB fake that looks at the table when asked to invalidate: the entry
/// must already be invalid to the MMU, and it plays the MMU setting the
/// change bit just before the translation goes.
struct MmuAtInvalidate<'a> {
    hpt: &'a [[AtomicU64; 2]],
    idx: usize,
    seen_valid: bool,
}
impl TlbOps for MmuAtInvalidate<'_> {
    fn local(&mut self, _: u32, _: u64) {
        self.look();
    }
    fn global(&mut self, _: u32, _: u64) {
        self.look();
    }
    fn flush_lpid_here(&mut self, _: u32) {}
}
impl MmuAtInvalidate<'_> {
    fn look(&mut self) {
        let v = u64::from_be(self.hpt[self.idx][0].load(Ordering::Relaxed));
        self.seen_valid |= v & hpte::HPTE_V_VALID != 0;
        let r = &self.hpt[self.idx][1];
        let now = u64::from_be(r.load(Ordering::Relaxed));
        r.store((now | hpte::HPTE_R_C).to_be(), Ordering::Relaxed);
    }
}

#[test]
fn entries_are_invalid_before_the_tlb_is_and_mmu_rc_updates_are_kept() {
    let f = Fixture::new(1);
    let p = f.part();
    let (idx, v, r) = guest_pte(0x55, 0x2000, PageSize::P4K, 0x4000, 2);
    assert_eq!(p.h_enter(H_EXACT, idx, v, r).code, H_SUCCESS);
    let mut mmu = MmuAtInvalidate {
        hpt: &f.hpt,
        idx: idx as usize,
        seen_valid: false,
    };
    // H_PROTECT: invalid during the invalidation; the MMU's C bit survives.
    assert_eq!(p.h_protect(&mut mmu, 1, idx, 0).code, H_SUCCESS);
    assert!(
        !mmu.seen_valid,
        "H_PROTECT invalidated the TLB with the entry still valid"
    );
    let e = p.read(idx);
    assert!(e.is_valid() && e.r & hpte::HPTE_R_C != 0 && e.r & hpte::HPTE_R_PP == 1);
    // H_REMOVE: V cleared before the invalidation, and the old R it
    // returns carries what the MMU set meanwhile.
    let rm = p.h_remove(&mut mmu, 0, idx, 0);
    assert!(
        !mmu.seen_valid,
        "H_REMOVE invalidated the TLB with the entry still valid"
    );
    assert_eq!(rm.code, H_SUCCESS);
    assert_ne!(rm.vals[1] & hpte::HPTE_R_C, 0);
    assert!(f.hpt[idx as usize]
        .iter()
        .all(|w| w.load(Ordering::Relaxed) == 0));
}

#[test]
fn read_gives_back_what_enter_took_for_every_page_size() {
    let f = Fixture::new(1);
    let p = f.part();
    for (n, page) in PageSize::ALL.into_iter().enumerate() {
        // The last page of guest memory, so the RPN's high bits are set.
        let gpa = MEM - page.bytes();
        let (idx, v, r) = guest_pte(0x40 + n as u64, 0x100_0000 * n as u64, page, gpa, 2);
        let e = p.h_enter(0, idx, v, r);
        assert_eq!(e.code, H_SUCCESS, "{page:?}");
        let stored = p.read(e.vals[0]);
        assert_eq!(stored.real_address(page), MEM_BASE + gpa, "{page:?}");
        let rd = p.h_read_1(e.vals[0]);
        assert_eq!(
            (rd.code, rd.vals[0], rd.vals[1]),
            (H_SUCCESS, v, r),
            "{page:?}"
        );
    }
}

/// H_READ takes no lock but never returns a half-changed entry: while
/// another thread keeps changing the entry's protection (each change
/// makes it invalid to the MMU, under its lock, before the new R), every
/// read sees it valid, with one of the two R values. A read that ignored
/// the lock would see the invalid V in between.
#[test]
fn lockless_read_never_sees_an_entry_mid_change() {
    let f = Fixture::new(1);
    let (idx, v, r) = guest_pte(0x77, 0x3000, PageSize::P4K, 0x1000, 2);
    assert_eq!(f.part().h_enter(H_EXACT, idx, v, r).code, H_SUCCESS);
    let done = core::sync::atomic::AtomicBool::new(false);
    let rounds = 20_000;
    std::thread::scope(|s| {
        s.spawn(|| {
            let p = f.part();
            for i in 0..rounds {
                let pp = if i % 2 == 0 { 1 } else { 2 };
                assert_eq!(p.h_protect(&mut Rec::default(), pp, idx, 0).code, H_SUCCESS);
            }
            done.store(true, Ordering::Release);
        });
        let p = f.part();
        let mut reads = 0u64;
        while !done.load(Ordering::Acquire) || reads < 1000 {
            let rd = p.h_read_1(idx);
            assert_eq!(rd.code, H_SUCCESS);
            assert_eq!(rd.vals[0], v, "read {reads}: V changed or invalid");
            let pp = rd.vals[1] & hpte::HPTE_R_PP;
            assert!(pp == 1 || pp == 2, "read {reads}: R {:#x}", rd.vals[1]);
            assert_eq!(rd.vals[1] & !hpte::HPTE_R_PP, r & !hpte::HPTE_R_PP);
            reads += 1;
        }
    });
    // Nothing left locked.
    assert_eq!(f.part().read(idx).v & HPTE_V_HVLOCK, 0);
}

/// What H_READ's lock-free snapshot can pair when the guest changes the
/// entry on another vcpu during the read (an H_REMOVE, then an H_ENTER
/// with the same V): a valid V with R 0 or an invalid V with the host R
/// of a moment before. Neither reads back as a host address.
#[test]
fn read_never_returns_a_host_address() {
    let f = Fixture::new(1);
    let p = f.part();
    let (idx, v, r) = guest_pte(0x66, 0x7000, PageSize::P4K, 0x3000, 2);
    assert_eq!(p.h_enter(H_EXACT, idx, v, r).code, H_SUCCESS);
    let host_r = u64::from_be(f.hpt[idx as usize][1].load(Ordering::Relaxed));
    assert_eq!(host_r & hpte::HPTE_R_RPN, MEM_BASE + 0x3000);
    let set = |v: u64, r: u64| {
        f.hpt[idx as usize][0].store(v.to_be(), Ordering::Relaxed);
        f.hpt[idx as usize][1].store(r.to_be(), Ordering::Relaxed);
    };
    set(v, 0);
    assert_eq!(p.h_read_1(idx).vals[..2], [v, 0]);
    set(0, host_r);
    assert_eq!(p.h_read_1(idx).vals[..2], [0, 0]);
    // An R beyond guest memory, as from another VM's block.
    set(v, host_r + MEM);
    assert_eq!(p.h_read_1(idx).vals[..2], [v, 0]);
    // And the consistent entry still reads back as the guest made it.
    set(v, host_r);
    assert_eq!(p.h_read_1(idx).vals[..2], [v, r]);
}
