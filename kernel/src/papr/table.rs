//! The hypercalls this hypervisor implements: one table that decodes a
//! number (one load), names the call (for reports, as Linux's hvcall.h
//! does) and says which `ibm,hypertas-functions` set advertises it, so
//! the list the guest reads is derived from what is implemented, never
//! kept by hand. Also the fast/full path split and the hypercall counts.

pub use crate::vio::VioCall;
use alloc::vec::Vec;
use papr_abi::*;

/// The HPT hypercalls (handled by [`super::hpt::Partition`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HptCall {
    Enter,
    Remove,
    Read,
    Protect,
    BulkRemove,
    ClearRef,
    ClearMod,
}

/// Every hypercall this hypervisor implements. The number-to-call table
/// below is the only place a number is matched, so a handler can only be
/// reached by its own number, and the dispatcher's `match` on this enum is
/// exhaustive (a new call cannot be forgotten or land elsewhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hcall {
    Hpt(HptCall),
    // Addressed to a device of the VM's bus by unit address (r4): the
    // calls [`Hcall::vio`] names. Flat variants, not payloads beside
    // `Hpt`'s: with one payload variant `Hcall` stays one byte, and the
    // fast path's decode as short as it was (the assertion below).
    PutTermChar,
    GetTermChar,
    VioSignal,
    RegisterLogicalLan,
    FreeLogicalLan,
    AddLogicalLanBuffer,
    SendLogicalLan,
    MulticastCtrl,
    ChangeLogicalLanMac,
    RegCrq,
    FreeCrq,
    SendCrq,
    EnableCrq,
    // Addressed to a device's DMA window by LIOBN (r4): [`Hcall::tce`].
    GetTce,
    PutTce,
    StuffTce,
    PutTceIndirect,
    SetMode,
    Rtas,
    Xirr,
    XirrX,
    Eoi,
    Cppr,
    Ipi,
    Ipoll,
    Cede,
    Prod,
    Confer,
    RegisterVpa,
    SetSprg0,
    PageInit,
    GetCpuCharacteristics,
}

// The fast path decodes every hypercall into an `Hcall`: one byte.
const _: () = assert!(core::mem::size_of::<Hcall>() == 1);

/// The TCE hypercalls (a device's DMA window, crate::vio::tce).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TceCall {
    Get,
    Put,
    Stuff,
    PutIndirect,
}

/// One implemented hypercall.
pub struct Row {
    pub nr: u64,
    pub call: Hcall,
    /// As in Linux's hvcall.h.
    pub name: &'static str,
    /// The `ibm,hypertas-functions` set that tells a guest the call is
    /// there (PAPR; Linux tests the set before using its calls), if any:
    /// H_RTAS is found through the `/rtas` node, and Linux asks for the
    /// CPU characteristics without looking for a set.
    pub set: Option<&'static str>,
}

const fn row(nr: u64, call: Hcall, name: &'static str, set: Option<&'static str>) -> Row {
    Row {
        nr,
        call,
        name,
        set,
    }
}

const PFT: Option<&str> = Some("hcall-pft");
const TERM: Option<&str> = Some("hcall-term");
const INTERRUPT: Option<&str> = Some("hcall-interrupt");
const SPLPAR: Option<&str> = Some("hcall-splpar");
const LLAN: Option<&str> = Some("hcall-lLAN");
const VIO: Option<&str> = Some("hcall-vio");

/// Every implemented call, in the order their sets are advertised.
pub const CALLS: &[Row] = &[
    row(H_REMOVE, Hcall::Hpt(HptCall::Remove), "H_REMOVE", PFT),
    row(H_ENTER, Hcall::Hpt(HptCall::Enter), "H_ENTER", PFT),
    row(H_READ, Hcall::Hpt(HptCall::Read), "H_READ", PFT),
    row(
        H_CLEAR_MOD,
        Hcall::Hpt(HptCall::ClearMod),
        "H_CLEAR_MOD",
        PFT,
    ),
    row(
        H_CLEAR_REF,
        Hcall::Hpt(HptCall::ClearRef),
        "H_CLEAR_REF",
        PFT,
    ),
    row(H_PROTECT, Hcall::Hpt(HptCall::Protect), "H_PROTECT", PFT),
    row(H_GET_TERM_CHAR, Hcall::GetTermChar, "H_GET_TERM_CHAR", TERM),
    row(H_PUT_TERM_CHAR, Hcall::PutTermChar, "H_PUT_TERM_CHAR", TERM),
    row(H_EOI, Hcall::Eoi, "H_EOI", INTERRUPT),
    row(H_CPPR, Hcall::Cppr, "H_CPPR", INTERRUPT),
    row(H_IPI, Hcall::Ipi, "H_IPI", INTERRUPT),
    row(H_IPOLL, Hcall::Ipoll, "H_IPOLL", INTERRUPT),
    row(H_XIRR, Hcall::Xirr, "H_XIRR", INTERRUPT),
    row(H_XIRR_X, Hcall::XirrX, "H_XIRR_X", INTERRUPT),
    row(H_REGISTER_VPA, Hcall::RegisterVpa, "H_REGISTER_VPA", SPLPAR),
    row(H_CEDE, Hcall::Cede, "H_CEDE", SPLPAR),
    row(H_CONFER, Hcall::Confer, "H_CONFER", SPLPAR),
    row(H_PROD, Hcall::Prod, "H_PROD", SPLPAR),
    row(
        H_BULK_REMOVE,
        Hcall::Hpt(HptCall::BulkRemove),
        "H_BULK_REMOVE",
        Some("hcall-bulk"),
    ),
    row(
        H_SET_MODE,
        Hcall::SetMode,
        "H_SET_MODE",
        Some("hcall-set-mode"),
    ),
    row(
        H_SET_SPRG0,
        Hcall::SetSprg0,
        "H_SET_SPRG0",
        Some("hcall-sprg0"),
    ),
    row(
        H_PAGE_INIT,
        Hcall::PageInit,
        "H_PAGE_INIT",
        Some("hcall-copy"),
    ),
    row(
        H_GET_CPU_CHARACTERISTICS,
        Hcall::GetCpuCharacteristics,
        "H_GET_CPU_CHARACTERISTICS",
        None,
    ),
    row(H_RTAS, Hcall::Rtas, "H_RTAS", None),
    row(H_GET_TCE, Hcall::GetTce, "H_GET_TCE", Some("hcall-tce")),
    row(H_PUT_TCE, Hcall::PutTce, "H_PUT_TCE", Some("hcall-tce")),
    row(
        H_STUFF_TCE,
        Hcall::StuffTce,
        "H_STUFF_TCE",
        Some("hcall-multi-tce"),
    ),
    row(
        H_PUT_TCE_INDIRECT,
        Hcall::PutTceIndirect,
        "H_PUT_TCE_INDIRECT",
        Some("hcall-multi-tce"),
    ),
    row(H_VIO_SIGNAL, Hcall::VioSignal, "H_VIO_SIGNAL", VIO),
    row(
        H_REGISTER_LOGICAL_LAN,
        Hcall::RegisterLogicalLan,
        "H_REGISTER_LOGICAL_LAN",
        LLAN,
    ),
    row(
        H_FREE_LOGICAL_LAN,
        Hcall::FreeLogicalLan,
        "H_FREE_LOGICAL_LAN",
        LLAN,
    ),
    row(
        H_ADD_LOGICAL_LAN_BUFFER,
        Hcall::AddLogicalLanBuffer,
        "H_ADD_LOGICAL_LAN_BUFFER",
        LLAN,
    ),
    row(
        H_SEND_LOGICAL_LAN,
        Hcall::SendLogicalLan,
        "H_SEND_LOGICAL_LAN",
        LLAN,
    ),
    row(
        H_MULTICAST_CTRL,
        Hcall::MulticastCtrl,
        "H_MULTICAST_CTRL",
        LLAN,
    ),
    row(
        H_CHANGE_LOGICAL_LAN_MAC,
        Hcall::ChangeLogicalLanMac,
        "H_CHANGE_LOGICAL_LAN_MAC",
        LLAN,
    ),
    // The CRQ calls (ibmvscsi asks for `hcall-vio` before using them).
    row(H_REG_CRQ, Hcall::RegCrq, "H_REG_CRQ", VIO),
    row(H_FREE_CRQ, Hcall::FreeCrq, "H_FREE_CRQ", VIO),
    row(H_SEND_CRQ, Hcall::SendCrq, "H_SEND_CRQ", VIO),
    row(H_ENABLE_CRQ, Hcall::EnableCrq, "H_ENABLE_CRQ", VIO),
];

/// `ibm,hypertas-functions`: the set of every implemented call, each
/// once, in table order.
pub fn hypertas_functions() -> Vec<&'static str> {
    let mut sets: Vec<&'static str> = Vec::new();
    for s in CALLS.iter().filter_map(|r| r.set) {
        if !sets.contains(&s) {
            sets.push(s);
        }
    }
    sets
}

/// How many hypercalls are implemented (indexes of [`Hcall::decode`]).
pub const IMPLEMENTED: usize = CALLS.len();

/// The two ranges hypercall numbers come in (PAPR's, multiples of 4
/// below 0x400; the platform-specific ones from 0xF000), each indexed by
/// `nr / 4`: decoding is a range check and one load, whatever the number.
const LOW_LIMIT: u64 = 0x400;
const HIGH_BASE: u64 = 0xf000;
const HIGH_LIMIT: u64 = 0xf400;
const NONE: u8 = u8::MAX;

const fn index_table(base: u64, limit: u64) -> [u8; 256] {
    let mut t = [NONE; 256];
    let mut i = 0;
    while i < CALLS.len() {
        let nr = CALLS[i].nr;
        if nr >= base && nr < limit {
            t[((nr - base) / 4) as usize] = i as u8;
        }
        i += 1;
    }
    t
}

/// Every number in `CALLS` is a multiple of 4 in one of the two ranges.
const fn every_number_indexed() -> bool {
    let mut i = 0;
    while i < CALLS.len() {
        let nr = CALLS[i].nr;
        if !nr.is_multiple_of(4) || !(nr < LOW_LIMIT || (nr >= HIGH_BASE && nr < HIGH_LIMIT)) {
            return false;
        }
        i += 1;
    }
    true
}
const _: () = assert!(every_number_indexed() && IMPLEMENTED < NONE as usize);
const _: () = assert!(LOW_LIMIT / 4 == 256 && (HIGH_LIMIT - HIGH_BASE) / 4 == 256);

static LOW_INDEX: [u8; 256] = index_table(0, LOW_LIMIT);
static HIGH_INDEX: [u8; 256] = index_table(HIGH_BASE, HIGH_LIMIT);

/// Each row's call alone, by index: the fast path's decode reads one
/// byte, not a row (whose size is no power of two: the indexing would
/// cost a multiply on every hypercall).
static CALL_BY_INDEX: [Hcall; IMPLEMENTED] = {
    let mut t = [Hcall::Rtas; IMPLEMENTED];
    let mut i = 0;
    while i < IMPLEMENTED {
        t[i] = CALLS[i].call;
        i += 1;
    }
    t
};

/// Which exit path runs a hypercall (the assembly's two paths are named
/// in `ppc64::regs::HcallPath`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Only the registers a handler may clobber are saved; the handler
    /// runs on the vcpu's thread without the VM's lock and the guest is
    /// resumed directly.
    Fast,
    /// The full register and SPR save, then the run loop.
    Full,
}

impl Hcall {
    /// The call with hypercall number `nr`, if implemented, and its index
    /// below [`IMPLEMENTED`] (for per-call counters).
    #[inline]
    pub fn decode(nr: u64) -> Option<(usize, Hcall)> {
        let i = if nr < LOW_LIMIT {
            LOW_INDEX[(nr / 4) as usize]
        } else if (HIGH_BASE..HIGH_LIMIT).contains(&nr) {
            HIGH_INDEX[((nr - HIGH_BASE) / 4) as usize]
        } else {
            NONE
        };
        if i == NONE || !nr.is_multiple_of(4) {
            return None;
        }
        Some((i as usize, CALL_BY_INDEX[i as usize]))
    }

    /// The device call this is, if it is one.
    #[inline]
    pub const fn vio(self) -> Option<VioCall> {
        Some(match self {
            Hcall::PutTermChar => VioCall::PutTermChar,
            Hcall::GetTermChar => VioCall::GetTermChar,
            Hcall::VioSignal => VioCall::Signal,
            Hcall::RegisterLogicalLan => VioCall::RegisterLogicalLan,
            Hcall::FreeLogicalLan => VioCall::FreeLogicalLan,
            Hcall::AddLogicalLanBuffer => VioCall::AddLogicalLanBuffer,
            Hcall::SendLogicalLan => VioCall::SendLogicalLan,
            Hcall::MulticastCtrl => VioCall::MulticastCtrl,
            Hcall::ChangeLogicalLanMac => VioCall::ChangeLogicalLanMac,
            Hcall::RegCrq => VioCall::RegCrq,
            Hcall::FreeCrq => VioCall::FreeCrq,
            Hcall::SendCrq => VioCall::SendCrq,
            Hcall::EnableCrq => VioCall::EnableCrq,
            _ => return None,
        })
    }

    /// The TCE call this is, if it is one.
    #[inline]
    pub const fn tce(self) -> Option<TceCall> {
        Some(match self {
            Hcall::GetTce => TceCall::Get,
            Hcall::PutTce => TceCall::Put,
            Hcall::StuffTce => TceCall::Stuff,
            Hcall::PutTceIndirect => TceCall::PutIndirect,
            _ => return None,
        })
    }

    /// The path this call takes. The HPT calls touch only the HPT (each
    /// entry under its lock) and the TLB; the TCE calls only a device's
    /// window, H_ADD_LOGICAL_LAN_BUFFER only the adapter's pools (each
    /// under the device's lock) and H_SEND_LOGICAL_LAN its adapter, the
    /// switch and the receiving VMs (whose interrupts it raises under
    /// their own locks, none of its own VM's), H_SEND_CRQ its v-scsi
    /// adapter and disks (under the adapter's lock; its own VM's
    /// interrupt raised after): as KVM-HV takes H_PUT_TCE and its kin in
    /// real mode, the per-frame and per-request calls of a guest's
    /// network and disks stay off the full path. The others change what the next entry
    /// loads (interrupts and LPCR[MER], the MSR, SPRG0), block (H_CEDE),
    /// call OPAL (the console) or use state under the VM's lock (RTAS,
    /// VPA, XICS): the run loop of the full path handles those.
    #[inline]
    pub const fn path(self) -> Path {
        match self {
            Hcall::Hpt(_)
            | Hcall::GetTce
            | Hcall::PutTce
            | Hcall::StuffTce
            | Hcall::PutTceIndirect
            | Hcall::AddLogicalLanBuffer
            | Hcall::SendLogicalLan
            | Hcall::SendCrq => Path::Fast,
            _ => Path::Full,
        }
    }
}

/// Distinct unimplemented numbers a [`Tally`] keeps; a further one is
/// left to the full path, which counts it in the VM's [`UnknownCounts`].
pub const UNKNOWN_SLOTS: usize = 4;

/// Hypercall counts kept by the thread running a vcpu, without the VM's
/// lock (the fast path takes none); added to the VM's counts when the
/// vcpu leaves its thread.
#[derive(Clone, Debug)]
pub struct Tally {
    /// Implemented calls by [`Hcall::decode`] index.
    pub known: [u64; IMPLEMENTED],
    /// Unimplemented numbers with their counts (count 0: a free slot).
    unknown: [(u64, u64); UNKNOWN_SLOTS],
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            known: [0; IMPLEMENTED],
            unknown: [(0, 0); UNKNOWN_SLOTS],
        }
    }
}

impl Tally {
    /// Counts unimplemented number `nr`; false, with nothing counted,
    /// when every slot holds another number.
    #[inline]
    pub fn count_unknown(&mut self, nr: u64) -> bool {
        for s in &mut self.unknown {
            if s.1 == 0 {
                *s = (nr, 1);
                return true;
            }
            if s.0 == nr {
                s.1 += 1;
                return true;
            }
        }
        false
    }

    /// Hypercalls counted, each one exit (a sum, so that the fast path
    /// adds one count per call, not two).
    pub fn hcalls(&self) -> u64 {
        self.known.iter().sum::<u64>() + self.unknown().map(|(_, n)| n).sum::<u64>()
    }

    /// The unimplemented numbers counted, with their counts.
    pub fn unknown(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.unknown.iter().copied().filter(|s| s.1 != 0)
    }
}

/// Distinct unimplemented numbers a VM's counts name (the busiest
/// first, in its stop report); calls to any other are counted together,
/// so a guest cannot grow the hypervisor's memory by making up numbers.
pub const UNKNOWN_KINDS: usize = 16;

/// A VM's counts of unimplemented hypercall numbers, in fixed space.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnknownCounts {
    slots: [(u64, u64); UNKNOWN_KINDS],
    /// Calls to numbers beyond the first [`UNKNOWN_KINDS`].
    pub others: u64,
}

impl UnknownCounts {
    /// Counts `n` calls of `nr`.
    pub fn count(&mut self, nr: u64, n: u64) {
        for s in &mut self.slots {
            if s.1 == 0 {
                *s = (nr, n);
                return;
            }
            if s.0 == nr {
                s.1 += n;
                return;
            }
        }
        self.others += n;
    }

    /// (number, calls) of each named number.
    pub fn named(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.slots.iter().copied().filter(|s| s.1 != 0)
    }
}

/// The number of the implemented hypercall with index `i`.
pub fn number(i: usize) -> u64 {
    CALLS[i].nr
}

/// The name of hypercall `nr` (for reports); "unknown" if not implemented.
pub fn name(nr: u64) -> &'static str {
    CALLS
        .iter()
        .find(|c| c.nr == nr)
        .map_or("unknown", |c| c.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_implemented_hypercall_has_one_number_and_its_linux_name() {
        for (i, r) in CALLS.iter().enumerate() {
            let (nr, call, name) = (r.nr, r.call, r.name);
            assert_eq!(Hcall::decode(nr), Some((i, call)), "{name}");
            assert_eq!(number(i), nr);
            assert_eq!(super::name(nr), name);
            assert!(name.starts_with("H_"));
            for o in &CALLS[i + 1..] {
                let (other, other_call) = (o.nr, o.call);
                assert_ne!(nr, other, "{name}: number used twice");
                assert_ne!(call, other_call, "{name}: call listed twice");
            }
        }
        assert_eq!(
            Hcall::decode(H_ENTER).map(|c| c.1),
            Some(Hcall::Hpt(HptCall::Enter))
        );
        assert_eq!(
            Hcall::decode(0x1c8).map(|c| c.1),
            Some(Hcall::GetCpuCharacteristics)
        );
        // Not implemented: H_SET_DABR, H_GET_PERF_COUNTER_INFO, nonsense.
        for nr in [H_SET_DABR, 0xf080, 0x7f00, u64::MAX] {
            assert_eq!(Hcall::decode(nr), None);
            assert_eq!(super::name(nr), "unknown");
        }
        // The table lookup sees only multiples of 4 in its two ranges.
        for nr in [
            H_ENTER + 1,
            H_ENTER + 2,
            H_RTAS + 2,
            0x3fc,
            0x400,
            0xefff,
            0xf3fc,
            0xf400,
            0x1_0000_f000,
        ] {
            assert_eq!(Hcall::decode(nr), None, "{nr:#x}");
        }
    }

    #[test]
    fn only_the_hpt_tce_per_frame_lan_and_crq_send_calls_take_the_fast_path() {
        for r in CALLS {
            let (nr, call, name) = (r.nr, r.call, r.name);
            let fast = matches!(call, Hcall::Hpt(_))
                || call.tce().is_some()
                || matches!(
                    call,
                    Hcall::AddLogicalLanBuffer | Hcall::SendLogicalLan | Hcall::SendCrq
                );
            assert_eq!(call.path() == Path::Fast, fast, "{name} ({nr:#x})");
        }
    }

    #[test]
    fn a_tally_counts_unknown_numbers_until_its_slots_are_full() {
        let mut t = Tally::default();
        for nr in [0x7f00, 0x7f00, 0xf080, 0x7f00] {
            assert!(t.count_unknown(nr));
        }
        for nr in 1..UNKNOWN_SLOTS as u64 - 1 {
            assert!(t.count_unknown(0x1_0000 + nr));
        }
        // Full: a new number is refused (the full path counts it), a known
        // one still counts.
        assert!(!t.count_unknown(0x2_0000));
        assert!(t.count_unknown(0xf080));
        let seen: Vec<_> = t.unknown().collect();
        assert_eq!(seen.len(), UNKNOWN_SLOTS);
        assert_eq!(seen[0], (0x7f00, 3));
        assert_eq!(seen[1], (0xf080, 2));
        assert!(!seen.iter().any(|s| s.0 == 0x2_0000));
    }

    #[test]
    fn unknown_numbers_are_counted_in_fixed_space() {
        let mut c = UnknownCounts::default();
        for nr in 0..1000u64 {
            c.count(0x7f00 + 4 * nr, 1);
            c.count(0x7f00, 2);
        }
        let named: Vec<_> = c.named().collect();
        assert_eq!(named.len(), UNKNOWN_KINDS);
        assert_eq!(named[0], (0x7f00, 2001));
        assert_eq!(named[1], (0x7f04, 1));
        assert_eq!(c.others, 1000 - UNKNOWN_KINDS as u64);
    }

    #[test]
    fn the_advertised_sets_are_those_of_the_implemented_calls() {
        // PAPR's sets for what is implemented: the order guests saw when
        // the list was kept by hand, then the virtual I/O sets.
        assert_eq!(
            hypertas_functions(),
            [
                "hcall-pft",
                "hcall-term",
                "hcall-interrupt",
                "hcall-splpar",
                "hcall-bulk",
                "hcall-set-mode",
                "hcall-sprg0",
                "hcall-copy",
                "hcall-tce",
                "hcall-multi-tce",
                "hcall-vio",
                "hcall-lLAN",
            ]
        );
        // A call Linux uses only after finding its set has one.
        for nr in [
            H_ENTER,
            H_PUT_TERM_CHAR,
            H_XIRR,
            H_CEDE,
            H_BULK_REMOVE,
            H_SET_MODE,
        ] {
            let (i, _) = Hcall::decode(nr).unwrap();
            assert!(CALLS[i].set.is_some(), "{}", name(nr));
        }
    }
}
