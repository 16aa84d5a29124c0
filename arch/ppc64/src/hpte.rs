//! Hashed page table entries of POWER8 (Power ISA 2.07, Book III-S), the
//! hash that places them, and the VRMA (guest real mode through the HPT).
//!
//! Pure arithmetic: no memory access, host-tested. Bit numbers in the
//! comments are IBM numbering (bit 0 = most significant); the constants are
//! ordinary little-endian-numbered masks on the `u64` value.
//!
//! An HPTE is two doublewords, stored big-endian in the table:
//!
//! ```text
//! V (dword 0): B 0:1 | AVPN 2:56 | SW 57:60 | L 61 | H 62 | V 63
//! R (dword 1): PP0 0 | / 1 | KEY 2:3 | ARPN 4:43 | LP 44:51 | KEY 52:54
//!              | R 55 | C 56 | WIMG 57:60 | N 61 | PP 62:63
//! ```
//!
//! The virtual address is 78 bits: VSID || offset in segment (28 bits for
//! 256 MiB segments, 40 for 1 TiB). AVPN holds VA bits 0:54 (VA >> 23);
//! the page-number bits below 2^23 are not stored but are recoverable from
//! the PTEG the entry sits in (see [`hpte_virt_page`]).
//!
//! Page sizes: 4 KiB, 64 KiB and 16 MiB, each with base size = actual size
//! (no mixed-page-size segments). Constants agree with Linux
//! `arch/powerpc/include/asm/book3s/64/mmu-hash.h` and QEMU
//! `target/ppc/mmu-hash64.h`.

use core::fmt;

// ---------------------------------------------------------------------------
// Table geometry

/// Bytes per HPTE (two doublewords).
pub const HPTE_BYTES: u64 = 16;
/// HPTEs per PTEG.
pub const HPTES_PER_GROUP: u64 = 8;
/// Bytes per PTEG (8 x 16).
pub const PTEG_BYTES: u64 = HPTE_BYTES * HPTES_PER_GROUP;
/// Smallest HPT the architecture allows: 256 KiB (SDR1 HTABSIZE = 0).
pub const MIN_HPT_ORDER: u32 = 18;
/// Largest HPT SDR1 can describe: HTABSIZE = 28, 2^46 bytes.
pub const MAX_HPT_ORDER: u32 = 46;
/// The hash value is 39 bits wide (enough to index 2^39 PTEGs, the
/// largest table); Linux `hpt_hash()` masks with the same value.
pub const HASH_MASK: u64 = 0x7f_ffff_ffff;

/// The size of a hashed page table, as a power of two (18..=46).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HptOrder(u32);

impl HptOrder {
    /// `None` outside [`MIN_HPT_ORDER`]..=[`MAX_HPT_ORDER`].
    pub const fn new(order: u32) -> Option<Self> {
        if order >= MIN_HPT_ORDER && order <= MAX_HPT_ORDER {
            Some(HptOrder(order))
        } else {
            None
        }
    }

    pub const fn get(self) -> u32 {
        self.0
    }

    /// Size of the table in bytes.
    pub const fn bytes(self) -> u64 {
        1 << self.0
    }

    /// Number of PTEGs: 2^(order - 7).
    pub const fn pteg_count(self) -> u64 {
        1 << (self.0 - 7)
    }

    /// Number of HPTEs: 2^(order - 4).
    pub const fn hpte_count(self) -> u64 {
        1 << (self.0 - 4)
    }

    /// Mask applied to a hash to select a PTEG (`pteg_count() - 1`).
    pub const fn hash_mask(self) -> u64 {
        self.pteg_count() - 1
    }

    /// The PTEG a hash value selects.
    pub const fn pteg_index(self, hash: u64) -> u64 {
        hash & self.hash_mask()
    }
}

// ---------------------------------------------------------------------------
// First doubleword (V)

/// B (segment size) field position: bits 0:1.
pub const HPTE_V_SSIZE_SHIFT: u32 = 62;
/// B field mask.
pub const HPTE_V_SSIZE: u64 = 0xc000_0000_0000_0000;
/// B = 1: 1 TiB segment.
pub const HPTE_V_1TB_SEG: u64 = 0x4000_0000_0000_0000;
/// AVPN field position: bits 2:56.
pub const HPTE_V_AVPN_SHIFT: u32 = 7;
/// AVPN field mask (55 bits: VA >> 23).
pub const HPTE_V_AVPN: u64 = 0x3fff_ffff_ffff_ff80;
/// Software-use bits 57:60.
pub const HPTE_V_SW: u64 = 0x78;
/// Software bit Linux and PAPR (H_ENTER / H_REMOVE) use for "bolted".
pub const HPTE_V_BOLTED: u64 = 0x10;
/// L: large page (size in R's LP field).
pub const HPTE_V_LARGE: u64 = 0x4;
/// H: the entry is in its secondary PTEG.
pub const HPTE_V_SECONDARY: u64 = 0x2;
/// V: valid.
pub const HPTE_V_VALID: u64 = 0x1;
/// Bits an address match compares: B, AVPN (not SW, L, H, V). Linux
/// `HPTE_V_COMPARE`.
pub const HPTE_V_COMPARE_MASK: u64 = 0xffff_ffff_ffff_ff80;

// ---------------------------------------------------------------------------
// Second doubleword (R)

/// PP0: high bit of the 3-bit page protection.
pub const HPTE_R_PP0: u64 = 0x8000_0000_0000_0000;
/// Storage key bits 0:1 (at R bits 2:3).
pub const HPTE_R_KEY_HI: u64 = 0x3000_0000_0000_0000;
/// Position of ARPN || LP.
pub const HPTE_R_RPN_SHIFT: u32 = 12;
/// ARPN || LP, bits 4:51: the real page number (real addresses of up to
/// 60 bits), whose low bits within a large page hold the LP encoding.
pub const HPTE_R_RPN: u64 = 0x0fff_ffff_ffff_f000;
/// Position of the LP field (bits 44:51).
pub const HPTE_R_LP_SHIFT: u32 = 12;
/// LP field mask (8 bits).
pub const HPTE_R_LP: u64 = 0xf_f000;
/// Storage key bits 2:4 (at R bits 52:54).
pub const HPTE_R_KEY_LO: u64 = 0xe00;
/// Both parts of the 5-bit storage key.
pub const HPTE_R_KEY: u64 = HPTE_R_KEY_HI | HPTE_R_KEY_LO;
/// R: referenced.
pub const HPTE_R_R: u64 = 0x100;
/// C: changed.
pub const HPTE_R_C: u64 = 0x80;
/// W: write-through.
pub const HPTE_R_W: u64 = 0x40;
/// I: caching inhibited.
pub const HPTE_R_I: u64 = 0x20;
/// M: memory coherence required.
pub const HPTE_R_M: u64 = 0x10;
/// G: guarded.
pub const HPTE_R_G: u64 = 0x8;
/// WIMG mask.
pub const HPTE_R_WIMG: u64 = 0x78;
/// N: no-execute.
pub const HPTE_R_N: u64 = 0x4;
/// PP: low two bits of the page protection.
pub const HPTE_R_PP: u64 = 0x3;

/// LP field of a 64 KiB page: `rrrr_0001` (the `r` bits are RPN bits).
const LP_64K: u64 = 0x1;
/// Mask of the LP bits that lie inside a 64 KiB page.
const LP_64K_MASK: u64 = 0xf;
/// LP field of a 16 MiB page: `0000_0000`.
const LP_16M: u64 = 0x0;

// ---------------------------------------------------------------------------
// SLB and LPCR fields used by the VRMA

/// SLB VSID word: B = 1 TiB.
pub const SLB_VSID_B_1T: u64 = 0x4000_0000_0000_0000;
/// SLB VSID word: position of a 1 TiB segment's VSID.
pub const SLB_VSID_SHIFT_1T: u32 = 24;
/// SLB VSID word: L (large base page).
pub const SLB_VSID_L: u64 = 0x100;
/// SLB VSID word: LP (which large size).
pub const SLB_VSID_LP: u64 = 0x30;
/// The VSID of the VRMA's 1 TiB segment (Linux/KVM `VRMA_VSID`; QEMU
/// `SLB_VSID_VRMA`).
pub const VRMA_VSID: u64 = 0x1ff_ffff;
/// The VRMA is one 1 TiB segment.
pub const VRMA_MAX_BYTES: u64 = 1 << 40;

// ---------------------------------------------------------------------------
// Segment and page sizes

/// Segment size, as the B field of the SLB and of an HPTE encodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SegmentSize {
    /// 256 MiB (B = 0).
    S256M,
    /// 1 TiB (B = 1).
    S1T,
}

impl SegmentSize {
    /// log2 of the segment size: 28 or 40.
    pub const fn shift(self) -> u32 {
        match self {
            SegmentSize::S256M => 28,
            SegmentSize::S1T => 40,
        }
    }

    /// Width of the VSID: 78 - shift (50 or 38 bits).
    pub const fn vsid_bits(self) -> u32 {
        78 - self.shift()
    }

    /// Mask of the offset-in-segment bits of an effective address.
    pub const fn offset_mask(self) -> u64 {
        (1 << self.shift()) - 1
    }

    /// The 2-bit B field value.
    pub const fn b(self) -> u64 {
        match self {
            SegmentSize::S256M => 0,
            SegmentSize::S1T => 1,
        }
    }

    /// Decodes a B field; 2 and 3 are reserved.
    pub const fn from_b(b: u64) -> Option<Self> {
        match b {
            0 => Some(SegmentSize::S256M),
            1 => Some(SegmentSize::S1T),
            _ => None,
        }
    }
}

/// A supported page size (base size = actual size).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PageSize {
    P4K,
    P64K,
    P16M,
}

impl PageSize {
    pub const ALL: [PageSize; 3] = [PageSize::P4K, PageSize::P64K, PageSize::P16M];

    /// log2 of the size: 12, 16 or 24.
    pub const fn shift(self) -> u32 {
        match self {
            PageSize::P4K => 12,
            PageSize::P64K => 16,
            PageSize::P16M => 24,
        }
    }

    pub const fn bytes(self) -> u64 {
        1 << self.shift()
    }

    pub const fn from_shift(shift: u32) -> Option<Self> {
        match shift {
            12 => Some(PageSize::P4K),
            16 => Some(PageSize::P64K),
            24 => Some(PageSize::P16M),
            _ => None,
        }
    }

    /// Whether an HPTE of this size has L set.
    pub const fn is_large(self) -> bool {
        !matches!(self, PageSize::P4K)
    }

    /// The segment's L||LP bits in the SLB VSID word for this base page
    /// size: 4K 0, 64K L|LP=01 (0x110), 16M L|LP=00 (0x100).
    pub const fn slb_llp(self) -> u64 {
        match self {
            PageSize::P4K => 0,
            PageSize::P64K => SLB_VSID_L | 0x10,
            PageSize::P16M => SLB_VSID_L,
        }
    }

    /// LP field value (unshifted) an HPTE of this size carries.
    const fn lp(self) -> u64 {
        match self {
            PageSize::P4K | PageSize::P16M => LP_16M,
            PageSize::P64K => LP_64K,
        }
    }
}

// ---------------------------------------------------------------------------
// The entry

/// One HPTE in host byte order. The table holds it big-endian: convert
/// with [`Hpte::to_be_bytes`]/[`Hpte::from_be_bytes`] (or the word forms)
/// at every access.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Hpte {
    pub v: u64,
    pub r: u64,
}

impl Hpte {
    pub const fn new(v: u64, r: u64) -> Self {
        Hpte { v, r }
    }

    /// The 16 bytes as they are stored in the table.
    pub fn to_be_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.v.to_be_bytes());
        b[8..].copy_from_slice(&self.r.to_be_bytes());
        b
    }

    /// Reads 16 bytes as stored in the table.
    pub fn from_be_bytes(b: [u8; 16]) -> Self {
        let mut v = [0u8; 8];
        let mut r = [0u8; 8];
        v.copy_from_slice(&b[..8]);
        r.copy_from_slice(&b[8..]);
        Hpte {
            v: u64::from_be_bytes(v),
            r: u64::from_be_bytes(r),
        }
    }

    /// The two doublewords as the table holds them, for `u64` stores.
    pub const fn to_be_words(self) -> [u64; 2] {
        [self.v.to_be(), self.r.to_be()]
    }

    /// From two doublewords loaded from the table as `u64`.
    pub const fn from_be_words(w: [u64; 2]) -> Self {
        Hpte {
            v: u64::from_be(w[0]),
            r: u64::from_be(w[1]),
        }
    }

    pub const fn is_valid(self) -> bool {
        self.v & HPTE_V_VALID != 0
    }

    pub const fn is_secondary(self) -> bool {
        self.v & HPTE_V_SECONDARY != 0
    }

    pub const fn is_bolted(self) -> bool {
        self.v & HPTE_V_BOLTED != 0
    }

    /// Segment size from B; `None` for the reserved values.
    pub const fn segment_size(self) -> Option<SegmentSize> {
        SegmentSize::from_b(self.v >> HPTE_V_SSIZE_SHIFT)
    }

    /// Page size from L and LP; see [`page_size`].
    pub const fn page_size(self) -> Option<PageSize> {
        page_size(self.v, self.r)
    }

    /// The 5-bit storage key (KEY_HI || KEY_LO).
    pub const fn key(self) -> u8 {
        (((self.r & HPTE_R_KEY_HI) >> 57) | ((self.r & HPTE_R_KEY_LO) >> 9)) as u8
    }

    /// The 3-bit page protection PP0 || PP.
    pub const fn pp(self) -> u8 {
        (((self.r & HPTE_R_PP0) >> 61) | (self.r & HPTE_R_PP)) as u8
    }

    /// The real address of the page (RPN with the bits inside the page,
    /// LP included, cleared).
    pub const fn real_address(self, page: PageSize) -> u64 {
        self.r & HPTE_R_RPN & !(page.bytes() - 1)
    }
}

/// The page size an HPTE encodes, or `None` for an encoding this
/// hypervisor does not support.
///
/// L = 0 is 4 KiB. With L = 1 the LP bits inside the page select the size
/// (POWER7/8 `ibm,segment-page-sizes`, Linux `kvmppc_hpte_page_shifts`):
/// LP = `rrrr_0001` is 64 KiB (the `r` bits belong to the RPN), LP =
/// `0000_0000` is 16 MiB. Rejected: 16 GiB (`0000_0011`) and the
/// mixed-size encodings 64K-in-4K (`0000_0111`), 16M-in-4K (`0011_1000`)
/// and 16M-in-64K (`0000_1000`), and every other value.
///
/// Only the LP field is examined, as KVM does: the RPN bits 20:23 that lie
/// inside a 16 MiB page are not part of the encoding. QEMU, however,
/// treats a 16 MiB entry with any of them set as a bad encoding, so
/// whoever writes an entry must clear them ([`hpte_r_with_rpn`] does).
#[inline]
pub const fn page_size(v: u64, r: u64) -> Option<PageSize> {
    if v & HPTE_V_LARGE == 0 {
        return Some(PageSize::P4K);
    }
    let lp = (r & HPTE_R_LP) >> HPTE_R_LP_SHIFT;
    if lp & LP_64K_MASK == LP_64K {
        Some(PageSize::P64K)
    } else if lp == LP_16M {
        Some(PageSize::P16M)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------
// Hash and encoding

/// The primary hash of the page containing `ea` in segment `vsid`
/// (39 bits; select the PTEG with [`HptOrder::pteg_index`]).
///
/// 256 MiB: `VSID ^ (offset >> p)`; 1 TiB: `VSID ^ (VSID << 25) ^ (offset
/// >> p)`, where offset is `ea` within its segment and p the page shift
/// (ISA 2.07 Book III-S; QEMU `ppc_hash64_htab_lookup`, Linux `hpt_hash`).
/// Only the low [`SegmentSize::vsid_bits`] of `vsid` count.
pub const fn primary_hash(vsid: u64, ea: u64, seg: SegmentSize, page: PageSize) -> u64 {
    let vsid = vsid & ((1 << seg.vsid_bits()) - 1);
    let pn = (ea & seg.offset_mask()) >> page.shift();
    let hash = match seg {
        SegmentSize::S256M => vsid ^ pn,
        SegmentSize::S1T => vsid ^ (vsid << 25) ^ pn,
    };
    hash & HASH_MASK
}

/// The secondary hash: the one's complement of the primary.
pub const fn secondary_hash(primary: u64) -> u64 {
    !primary & HASH_MASK
}

/// B || AVPN as stored in the V dword (low 7 bits zero), for the page
/// containing `ea` in segment `vsid`: AVPN = VA >> 23 with VA = VSID ||
/// offset. For a 16 MiB page VA bit 2^23 lies inside the page and is
/// cleared (Linux `avpnm` = 1). Only the low [`SegmentSize::vsid_bits`]
/// of `vsid` count.
pub const fn hpte_v_avpn(vsid: u64, ea: u64, seg: SegmentSize, page: PageSize) -> u64 {
    let vsid = vsid & ((1 << seg.vsid_bits()) - 1);
    let offset = ea & seg.offset_mask() & !(page.bytes() - 1);
    let avpn = (vsid << (seg.shift() - 23)) | (offset >> 23);
    (seg.b() << HPTE_V_SSIZE_SHIFT) | (avpn << HPTE_V_AVPN_SHIFT)
}

/// The V dword of an entry mapping the page containing `ea`: B, AVPN and
/// L. The caller adds [`HPTE_V_VALID`], [`HPTE_V_SECONDARY`] when it goes
/// in the secondary PTEG, and any software bits.
pub const fn hpte_encode_v(vsid: u64, ea: u64, seg: SegmentSize, page: PageSize) -> u64 {
    let l = if page.is_large() { HPTE_V_LARGE } else { 0 };
    hpte_v_avpn(vsid, ea, seg, page) | l
}

/// The R dword's RPN and LP for a page at real address `phys`; the caller
/// adds protection, WIMG, key and R/C. `None` if `phys` is not aligned to
/// the page or beyond the 60-bit real address range.
pub const fn hpte_encode_r(phys: u64, page: PageSize) -> Option<u64> {
    if phys & (page.bytes() - 1) != 0 || phys & !HPTE_R_RPN != 0 {
        return None;
    }
    Some(phys | (page.lp() << HPTE_R_LP_SHIFT))
}

/// `r` with its RPN replaced by `phys` and the LP field set for `page`,
/// every other field kept (what H_ENTER does when it swaps a guest real
/// address for a host one). Bits of the old RPN inside the page are
/// dropped. `None` if `phys` is misaligned or out of range.
#[inline]
pub const fn hpte_r_with_rpn(r: u64, phys: u64, page: PageSize) -> Option<u64> {
    match hpte_encode_r(phys, page) {
        Some(rpn) => Some((r & !HPTE_R_RPN) | rpn),
        None => None,
    }
}

// ---------------------------------------------------------------------------
// Reverse: from an entry and its PTEG back to the virtual page

/// A virtual page: segment, VSID and the page's offset in the segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VirtPage {
    pub segment: SegmentSize,
    pub vsid: u64,
    /// Offset of the page within its segment (page-aligned).
    pub offset: u64,
    pub page: PageSize,
}

impl VirtPage {
    /// The page containing `ea` in segment `vsid` (VSID truncated to the
    /// segment's VSID width).
    pub const fn new(vsid: u64, ea: u64, seg: SegmentSize, page: PageSize) -> Self {
        VirtPage {
            segment: seg,
            vsid: vsid & ((1 << seg.vsid_bits()) - 1),
            offset: ea & seg.offset_mask() & !(page.bytes() - 1),
            page,
        }
    }

    /// The 78-bit virtual address of the page's first byte.
    pub const fn va(self) -> u128 {
        ((self.vsid as u128) << self.segment.shift()) | self.offset as u128
    }

    /// Its primary hash.
    pub const fn primary_hash(self) -> u64 {
        primary_hash(self.vsid, self.offset, self.segment, self.page)
    }

    /// B || AVPN || L, as [`hpte_encode_v`] gives it.
    pub const fn hpte_v(self) -> u64 {
        hpte_encode_v(self.vsid, self.offset, self.segment, self.page)
    }
}

/// The virtual page an entry maps, from its V dword (B, AVPN, H), its page
/// size and the index of the PTEG it sits in (`hpte_index / 8`).
///
/// AVPN gives the VSID and the offset bits from 2^23 up; the page-number
/// bits below 2^23 (11 for 4 KiB pages, 7 for 64 KiB, none for 16 MiB) are
/// the low bits of hash ^ VSID, and the hash is the PTEG index (its
/// complement when H is set). A table has at least 2^11 PTEGs, so those
/// bits are always there. `None` for a reserved B or an unsupported
/// page-size encoding.
pub const fn hpte_virt_page(hpte: Hpte, pteg_index: u64) -> Option<VirtPage> {
    let seg = match hpte.segment_size() {
        Some(s) => s,
        None => return None,
    };
    let page = match hpte.page_size() {
        Some(p) => p,
        None => return None,
    };
    let avpn = (hpte.v & HPTE_V_AVPN) >> HPTE_V_AVPN_SHIFT;
    let hi_bits = seg.shift() - 23;
    let vsid = avpn >> hi_bits;
    let mut offset = (avpn & ((1 << hi_bits) - 1)) << 23;
    let hash = if hpte.is_secondary() {
        !pteg_index
    } else {
        pteg_index
    };
    let p = page.shift();
    if p < 23 {
        // (vsid << 25) of the 1 TiB hash does not reach these low bits.
        let low = (hash ^ vsid) & ((1 << (23 - p)) - 1);
        offset |= low << p;
    }
    offset &= !(page.bytes() - 1);
    Some(VirtPage {
        segment: seg,
        vsid,
        offset,
        page,
    })
}

/// The primary hash of the page an entry maps, recomputed from the entry
/// and its PTEG index (see [`hpte_virt_page`]).
pub const fn hpte_primary_hash(hpte: Hpte, pteg_index: u64) -> Option<u64> {
    match hpte_virt_page(hpte, pteg_index) {
        Some(vp) => Some(vp.primary_hash()),
        None => None,
    }
}

// ---------------------------------------------------------------------------
// VRMA

/// Why a VRMA entry cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VrmaError {
    /// The page index is beyond the 1 TiB segment or beyond one entry per
    /// PTEG of this table (see [`vrma_max_pages`]).
    IndexTooLarge,
    /// The real address is not aligned to the page size.
    Misaligned,
    /// The real address is beyond the 60-bit real address range.
    AddressTooLarge,
}

impl fmt::Display for VrmaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VrmaError::IndexTooLarge => f.write_str("VRMA page index too large"),
            VrmaError::Misaligned => f.write_str("VRMA page address misaligned"),
            VrmaError::AddressTooLarge => f.write_str("VRMA page address out of range"),
        }
    }
}

/// How many VRMA pages a table of `order` can hold at one entry per PTEG
/// (KVM's limit), capped at the 1 TiB segment.
pub const fn vrma_max_pages(order: HptOrder, page: PageSize) -> u64 {
    let seg_pages = VRMA_MAX_BYTES >> page.shift();
    let ptegs = order.pteg_count();
    if seg_pages < ptegs {
        seg_pages
    } else {
        ptegs
    }
}

/// The VRMA entry for guest real page `index` (guest real address `index
/// << page.shift()`) backed by real address `phys`, and the PTEG it
/// belongs in (primary hash; H clear).
///
/// V: 1 TiB segment, VSID [`VRMA_VSID`], AVPN, L for large pages, bolted,
/// valid. R: RPN, LP, R, C, M, PP0||PP = 000 (read/write with key 0): the
/// entry KVM's `kvmppc_map_vrma` builds. KVM stores each in slot 7 of its
/// PTEG, the table being otherwise empty then; the slot is the caller's
/// choice. Distinct indexes below [`vrma_max_pages`] get distinct PTEGs.
pub const fn vrma_hpte(
    order: HptOrder,
    index: u64,
    page: PageSize,
    phys: u64,
) -> Result<(u64, Hpte), VrmaError> {
    if index >= vrma_max_pages(order, page) {
        return Err(VrmaError::IndexTooLarge);
    }
    if phys & (page.bytes() - 1) != 0 {
        return Err(VrmaError::Misaligned);
    }
    let rpn = match hpte_encode_r(phys, page) {
        Some(rpn) => rpn,
        None => return Err(VrmaError::AddressTooLarge),
    };
    let ea = index << page.shift();
    let seg = SegmentSize::S1T;
    let v = hpte_encode_v(VRMA_VSID, ea, seg, page) | HPTE_V_BOLTED | HPTE_V_VALID;
    let r = rpn | HPTE_R_R | HPTE_R_C | HPTE_R_M;
    let pteg = order.pteg_index(primary_hash(VRMA_VSID, ea, seg, page));
    Ok((pteg, Hpte { v, r }))
}

/// Whether a V dword belongs to the VRMA segment (1 TiB, VSID
/// [`VRMA_VSID`]); Linux `is_vrma_hpte`.
pub const fn is_vrma_hpte(v: u64) -> bool {
    (v & !0xff_ffff) == (HPTE_V_1TB_SEG | (VRMA_VSID << SLB_VSID_SHIFT_1T))
}

/// The LPCR VRMASD bits for a VRMA of `page`-sized pages: the segment's
/// SLB L||LP bits shifted into LPCR bits 12:16 (4K 0b00000, 64K 0b10001,
/// 16M 0b10000). The caller clears [`crate::spr::LPCR_VRMASD`] and ORs this in.
pub const fn lpcr_vrmasd(page: PageSize) -> u64 {
    (page.slb_llp() >> 4) << crate::spr::LPCR_VRMASD_SHIFT
}

/// The SLB VSID word of the VRMA segment for `page`-sized pages (what the
/// hardware derives from LPCR[VRMASD]; KVM's `vrma_slb_v`).
pub const fn vrma_slb_vsid(page: PageSize) -> u64 {
    SLB_VSID_B_1T | (VRMA_VSID << SLB_VSID_SHIFT_1T) | page.slb_llp()
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    const S256M: SegmentSize = SegmentSize::S256M;
    const S1T: SegmentSize = SegmentSize::S1T;
    const P4K: PageSize = PageSize::P4K;
    const P64K: PageSize = PageSize::P64K;
    const P16M: PageSize = PageSize::P16M;

    fn order(o: u32) -> HptOrder {
        HptOrder::new(o).unwrap()
    }

    /// xorshift64: a deterministic stream for the round-trip tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
    }

    #[test]
    fn field_masks_tile_the_dwords() {
        let v_fields = [
            HPTE_V_SSIZE,
            HPTE_V_AVPN,
            HPTE_V_SW,
            HPTE_V_LARGE,
            HPTE_V_SECONDARY,
            HPTE_V_VALID,
        ];
        let mut acc = 0u64;
        for f in v_fields {
            assert_eq!(acc & f, 0, "overlap at {f:#x}");
            acc |= f;
        }
        assert_eq!(acc, u64::MAX);
        assert_eq!(HPTE_V_SW & HPTE_V_BOLTED, HPTE_V_BOLTED);
        assert_eq!(HPTE_V_SSIZE & HPTE_V_1TB_SEG, HPTE_V_1TB_SEG);

        // R: everything but bit 1 (reserved on POWER8).
        let r_fields = [
            HPTE_R_PP0,
            HPTE_R_KEY_HI,
            HPTE_R_RPN,
            HPTE_R_KEY_LO,
            HPTE_R_R,
            HPTE_R_C,
            HPTE_R_WIMG,
            HPTE_R_N,
            HPTE_R_PP,
        ];
        let mut acc = 0u64;
        for f in r_fields {
            assert_eq!(acc & f, 0, "overlap at {f:#x}");
            acc |= f;
        }
        assert_eq!(acc, !0x4000_0000_0000_0000);
        assert_eq!(HPTE_R_W | HPTE_R_I | HPTE_R_M | HPTE_R_G, HPTE_R_WIMG);
        assert_eq!(HPTE_R_RPN & HPTE_R_LP, HPTE_R_LP);
        assert_eq!(crate::spr::LPCR_VRMASD, 0x000f_8000_0000_0000);
    }

    #[test]
    fn order_geometry() {
        assert_eq!(HptOrder::new(17), None);
        assert_eq!(HptOrder::new(47), None);
        let o = order(18);
        assert_eq!(o.bytes(), 256 << 10);
        assert_eq!(o.pteg_count(), 2048);
        assert_eq!(o.hpte_count(), 16384);
        assert_eq!(o.hash_mask(), 0x7ff);
        let o = order(24);
        assert_eq!(o.pteg_count() * PTEG_BYTES, o.bytes());
        assert_eq!(o.pteg_index(0x12_3456_789a), 0x789a & 0x1ffff);
        // The largest table uses the whole 39-bit hash.
        assert_eq!(order(46).hash_mask(), HASH_MASK);
    }

    #[test]
    fn big_endian_layout() {
        let h = Hpte::new(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
        let b = h.to_be_bytes();
        assert_eq!(
            b,
            [
                0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54,
                0x32, 0x10
            ]
        );
        assert_eq!(Hpte::from_be_bytes(b), h);
        // The word forms agree with the byte form in host memory order.
        let w = h.to_be_words();
        let mut mem = [0u8; 16];
        mem[..8].copy_from_slice(&w[0].to_ne_bytes());
        mem[8..].copy_from_slice(&w[1].to_ne_bytes());
        assert_eq!(mem, b);
        assert_eq!(Hpte::from_be_words(w), h);
    }

    #[test]
    fn hash_256m_by_hand() {
        let vsid = 0x12_3456;
        // 4K: offset 0x123_4000 >> 12 = 0x1234; 0x123456 ^ 0x1234.
        assert_eq!(primary_hash(vsid, 0x0123_4000, S256M, P4K), 0x12_2662);
        // The ESID part of the EA does not enter the hash.
        assert_eq!(
            primary_hash(vsid, 0xc000_0000_0123_4000, S256M, P4K),
            0x12_2662
        );
        // Offset bits inside the page do not either.
        assert_eq!(primary_hash(vsid, 0x0123_4fff, S256M, P4K), 0x12_2662);
        // 64K: 0xabc_0000 >> 16 = 0xabc; 0x123456 ^ 0xabc.
        assert_eq!(primary_hash(vsid, 0x0abc_0000, S256M, P64K), 0x12_3eea);
        // 16M: 0x500_0000 >> 24 = 5.
        assert_eq!(primary_hash(vsid, 0x0500_0000, S256M, P16M), 0x12_3453);
        assert_eq!(primary_hash(vsid, 0x05ff_ffff, S256M, P16M), 0x12_3453);
        // A wide VSID is cut to 39 bits.
        assert_eq!(
            primary_hash(0x3_ffff_ffff_ffff, 0, S256M, P4K),
            0x7f_ffff_ffff
        );
    }

    #[test]
    fn hash_1t_by_hand() {
        // vsid 0x1234: vsid << 25 = 0x24_6800_0000; offset 0x12_3456_7000
        // >> 12 = 0x123_4567; 0x1234 ^ 0x1234567 = 0x1235753.
        assert_eq!(
            primary_hash(0x1234, 0x12_3456_7000, S1T, P4K),
            0x24_6923_5753
        );
        // The ESID part (bits above 2^40) is ignored.
        assert_eq!(
            primary_hash(0x1234, 0xc000_0012_3456_7000, S1T, P4K),
            0x24_6923_5753
        );
        // All-ones 38-bit VSID: vsid ^ vsid << 25 keeps bits 0..24 and sets
        // 38..62; cut to 39 bits that is bit 38 and bits 0..24.
        assert_eq!(primary_hash(0x3f_ffff_ffff, 0, S1T, P64K), 0x40_01ff_ffff);
        // VRMA: VSID 0x1ffffff ^ (0x1ffffff << 25) = bits 0..49, cut to
        // 39 bits = all ones; page i then gives !i.
        assert_eq!(primary_hash(VRMA_VSID, 0, S1T, P16M), 0x7f_ffff_ffff);
        assert_eq!(primary_hash(VRMA_VSID, 1 << 24, S1T, P16M), 0x7f_ffff_fffe);
        assert_eq!(primary_hash(VRMA_VSID, 3 << 16, S1T, P64K), 0x7f_ffff_fffc);
    }

    #[test]
    fn secondary_is_the_complement() {
        assert_eq!(secondary_hash(0), HASH_MASK);
        assert_eq!(secondary_hash(0x12_2662), 0x7f_ffed_d99d);
        assert_eq!(order(18).pteg_index(secondary_hash(0x12_2662)), 0x19d);
        for h in [0, 1, 0x12_3456, HASH_MASK] {
            assert_eq!(secondary_hash(secondary_hash(h)), h);
        }
    }

    #[test]
    fn avpn_by_hand() {
        // 256M, 64K: VSID << 12 | (offset >> 16) with the low 7 bits gone.
        assert_eq!(
            hpte_v_avpn(0x12_3456, 0x0abc_0000, S256M, P64K),
            0x1_2345_6a80
        );
        // The 2^23 bit is inside a 16M page and is not stored.
        assert_eq!(
            hpte_v_avpn(0x12_3456, 0x0580_0000, S256M, P16M),
            0x1_2345_6500
        );
        assert_eq!(
            hpte_v_avpn(0x12_3456, 0x0580_0000, S256M, P4K),
            0x1_2345_6580
        );
        // 1T, 4K: B = 1 | VSID << 24 | (offset >> 16) & ~0x7f.
        assert_eq!(
            hpte_v_avpn(0x1234, 0x12_3456_7000, S1T, P4K),
            0x4000_0012_3412_3400
        );
        // L is added for large pages only.
        assert_eq!(
            hpte_encode_v(0x1234, 0x12_3456_7000, S1T, P4K),
            0x4000_0012_3412_3400
        );
        assert_eq!(
            hpte_encode_v(0x12_3456, 0x0abc_0000, S256M, P64K),
            0x1_2345_6a84
        );
        // Widest VSIDs fill AVPN exactly.
        assert_eq!(hpte_v_avpn(u64::MAX, u64::MAX, S256M, P4K), HPTE_V_AVPN);
        assert_eq!(
            hpte_v_avpn(u64::MAX, u64::MAX, S1T, P4K),
            HPTE_V_1TB_SEG | HPTE_V_AVPN
        );
    }

    /// QEMU's lookup compares the V dword against
    /// `(slb_vsid & (B | VSID)) | ((epn >> 16) & AVPN)`; check that our
    /// encoding matches that formula for both segment sizes.
    #[test]
    fn avpn_matches_the_slb_form() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let ea = rng.next();
            for (seg, vsid_shift) in [(S256M, 12), (S1T, 24)] {
                let vsid = rng.next() & ((1 << seg.vsid_bits()) - 1);
                for page in PageSize::ALL {
                    let slb_v = (seg.b() << 62) | (vsid << vsid_shift) | page.slb_llp();
                    let epn = ea & seg.offset_mask() & !(page.bytes() - 1);
                    let ptem = (slb_v & 0xffff_ffff_ffff_f000) | ((epn >> 16) & HPTE_V_AVPN);
                    assert_eq!(hpte_v_avpn(vsid, ea, seg, page), ptem);
                }
            }
        }
    }

    #[test]
    fn page_size_encodings() {
        let l = HPTE_V_LARGE;
        // 4K: no L, whatever R holds.
        assert_eq!(page_size(0, 0x1234_5000), Some(P4K));
        assert_eq!(page_size(0, 0x1234_5fff), Some(P4K));
        // 64K: LP = rrrr_0001.
        assert_eq!(page_size(l, 0x1234_1000), Some(P64K));
        assert_eq!(page_size(l, 0x1_2345_1000), Some(P64K));
        assert_eq!(page_size(l, 0xf_1000), Some(P64K));
        // 16M: LP = 0000_0000.
        assert_eq!(page_size(l, 0x4000_0000), Some(P16M));
        assert_eq!(page_size(l, 0x4000_0196), Some(P16M));
        // Unsupported: 16G (0x03), 64K-in-4K (0x07), 16M-in-4K (0x38),
        // 16M-in-64K (0x08), others.
        for lp in [0x03u64, 0x07, 0x38, 0x08, 0x10, 0x02, 0xf0, 0xff] {
            assert_eq!(page_size(l, lp << 12), None, "LP {lp:#x}");
        }
        // Every LP value: exactly 16 decode as 64K, 1 as 16M.
        let mut n64 = 0;
        let mut n16 = 0;
        for lp in 0u64..256 {
            match page_size(l, lp << 12) {
                Some(P64K) => n64 += 1,
                Some(P16M) => n16 += 1,
                Some(P4K) => panic!("4K with L set"),
                None => {}
            }
        }
        assert_eq!((n64, n16), (16, 1));
    }

    #[test]
    fn encode_r() {
        assert_eq!(hpte_encode_r(0x1234_5000, P4K), Some(0x1234_5000));
        assert_eq!(hpte_encode_r(0x1234_0000, P64K), Some(0x1234_1000));
        assert_eq!(hpte_encode_r(0x4000_0000, P16M), Some(0x4000_0000));
        // Misaligned.
        assert_eq!(hpte_encode_r(0x1234_5800, P4K), None);
        assert_eq!(hpte_encode_r(0x1234_1000, P64K), None);
        assert_eq!(hpte_encode_r(0x4080_0000, P16M), None);
        // Beyond 60 bits.
        assert_eq!(hpte_encode_r(1 << 60, P4K), None);
        assert_eq!(
            hpte_encode_r(0x0fff_ffff_ff00_0000, P16M),
            Some(0x0fff_ffff_ff00_0000)
        );
        for page in PageSize::ALL {
            let r = hpte_encode_r(0x0abc_0000_0000, page).unwrap();
            let v = if page.is_large() { HPTE_V_LARGE } else { 0 };
            assert_eq!(page_size(v, r), Some(page));
            assert_eq!(Hpte::new(v, r).real_address(page), 0x0abc_0000_0000);
        }
    }

    #[test]
    fn replace_rpn_keeps_the_flags() {
        let flags = HPTE_R_PP0
            | HPTE_R_KEY_HI
            | HPTE_R_KEY_LO
            | HPTE_R_R
            | HPTE_R_C
            | HPTE_R_M
            | HPTE_R_N
            | 2;
        // A guest 16M entry with junk RPN bits inside the page.
        let guest = flags | 0x0000_1234_5070_0000;
        assert_eq!(page_size(HPTE_V_LARGE, guest), Some(P16M));
        let host = hpte_r_with_rpn(guest, 0x8_0000_0000, P16M).unwrap();
        assert_eq!(host, flags | 0x8_0000_0000);
        // 64K keeps LP = 1.
        let guest = flags | 0x0000_0042_0001_1000;
        let host = hpte_r_with_rpn(guest, 0x7_0000, P64K).unwrap();
        assert_eq!(host, flags | 0x7_1000);
        assert_eq!(page_size(HPTE_V_LARGE, host), Some(P64K));
        assert_eq!(hpte_r_with_rpn(guest, 0x7_8000, P64K), None);
    }

    #[test]
    fn key_and_pp() {
        let h = Hpte::new(0, HPTE_R_KEY_HI | HPTE_R_KEY_LO | HPTE_R_PP0 | 0x2);
        assert_eq!(h.key(), 0x1f);
        assert_eq!(h.pp(), 0b110);
        let h = Hpte::new(0, 0x1000_0000_0000_0000 | 0x400 | 0x1);
        assert_eq!(h.key(), 0b01010);
        assert_eq!(h.pp(), 0b001);
    }

    #[test]
    fn reverse_by_hand() {
        // 256M, 4K, vsid 0x123456, offset 0x123_4000: hash 0x122662.
        let v = hpte_encode_v(0x12_3456, 0x0123_4000, S256M, P4K) | HPTE_V_VALID;
        let hpte = Hpte::new(v, 0x5000);
        let o = order(18);
        let vp = hpte_virt_page(hpte, o.pteg_index(0x12_2662)).unwrap();
        assert_eq!(
            vp,
            VirtPage {
                segment: S256M,
                vsid: 0x12_3456,
                offset: 0x0123_4000,
                page: P4K
            }
        );
        assert_eq!(vp.va(), 0x1_2345_6123_4000);
        assert_eq!(hpte_primary_hash(hpte, 0x662), Some(0x12_2662));
        // In the secondary group: index = !hash & mask.
        let hpte2 = Hpte::new(v | HPTE_V_SECONDARY, 0x5000);
        let sidx = o.pteg_index(secondary_hash(0x12_2662));
        assert_eq!(hpte_virt_page(hpte2, sidx).unwrap().offset, 0x0123_4000);
        // Reserved B and bad LP are refused.
        assert_eq!(hpte_virt_page(Hpte::new(v | (2 << 62), 0), 0), None);
        assert_eq!(hpte_virt_page(Hpte::new(v | (3 << 62), 0), 0), None);
        assert_eq!(hpte_virt_page(Hpte::new(v | HPTE_V_LARGE, 0x7000), 0), None);
    }

    #[test]
    fn reverse_round_trips() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let orders = [18, 19, 24, 30, 39, 46];
        for i in 0..20_000 {
            let seg = if i % 2 == 0 { S256M } else { S1T };
            let page = PageSize::ALL[(i / 2) % 3];
            let o = order(orders[(i / 6) % orders.len()]);
            let vsid = rng.next() & ((1 << seg.vsid_bits()) - 1);
            let ea = rng.next();
            let secondary = rng.next() & 1 == 1;
            let phys = rng.next() & HPTE_R_RPN & !(page.bytes() - 1);

            let hash = primary_hash(vsid, ea, seg, page);
            let idx = o.pteg_index(if secondary {
                secondary_hash(hash)
            } else {
                hash
            });
            let mut v = hpte_encode_v(vsid, ea, seg, page) | HPTE_V_VALID;
            if secondary {
                v |= HPTE_V_SECONDARY;
            }
            let r = hpte_encode_r(phys, page).unwrap() | HPTE_R_M | HPTE_R_R;
            let hpte = Hpte::new(v, r);

            let want = VirtPage::new(vsid, ea, seg, page);
            let got = hpte_virt_page(hpte, idx).unwrap();
            assert_eq!(got, want, "case {i}");
            assert_eq!(got.primary_hash(), hash);
            assert_eq!(got.hpte_v() | (v & 0x7f), v);
            assert_eq!(hpte_primary_hash(hpte, idx), Some(hash));
            assert_eq!(hpte.real_address(page), phys);
            // Through memory and back.
            assert_eq!(Hpte::from_be_bytes(hpte.to_be_bytes()), hpte);
        }
    }

    #[test]
    fn vrma_entries_by_hand() {
        let o = order(24);
        // 16M page 1 at 1 GiB.
        let (pteg, h) = vrma_hpte(o, 1, P16M, 0x4000_0000).unwrap();
        assert_eq!(pteg, 0x1fffe);
        assert_eq!(h.v, 0x4001_ffff_ff00_0115);
        assert_eq!(h.r, 0x4000_0190);
        // 64K page 3: the page number is below 2^23, so AVPN adds nothing.
        let (pteg, h) = vrma_hpte(o, 3, P64K, 0x1234_0000).unwrap();
        assert_eq!(pteg, 0x1fffc);
        assert_eq!(h.v, 0x4001_ffff_ff00_0015);
        assert_eq!(h.r, 0x1234_1190);
        // 4K page 0x800 (2^23): first one that reaches AVPN.
        let (pteg, h) = vrma_hpte(order(30), 0x800, P4K, 0x1000).unwrap();
        assert_eq!(pteg, 0x7f_ffff_ffff & !0x800 & 0x7f_ffff);
        assert_eq!(h.v, 0x4001_ffff_ff00_0091);
        assert_eq!(h.r, 0x1190);
        assert!(is_vrma_hpte(h.v));
        assert!(!is_vrma_hpte(hpte_encode_v(0x1234, 0, S1T, P4K)));
        assert!(!is_vrma_hpte(
            hpte_encode_v(VRMA_VSID, 0, S256M, P4K) | HPTE_V_VALID
        ));
    }

    #[test]
    fn vrma_limits() {
        let o = order(18); // 2048 PTEGs
        assert_eq!(vrma_max_pages(o, P16M), 2048);
        assert_eq!(vrma_max_pages(order(46), P16M), 1 << 16);
        assert_eq!(vrma_max_pages(order(46), P4K), 1 << 28);
        assert!(vrma_hpte(o, 2047, P16M, 0).is_ok());
        assert_eq!(vrma_hpte(o, 2048, P16M, 0), Err(VrmaError::IndexTooLarge));
        assert_eq!(
            vrma_hpte(order(46), 1 << 16, P16M, 0),
            Err(VrmaError::IndexTooLarge)
        );
        assert_eq!(vrma_hpte(o, 0, P16M, 0x80_0000), Err(VrmaError::Misaligned));
        assert_eq!(
            vrma_hpte(o, 0, P64K, 1 << 60),
            Err(VrmaError::AddressTooLarge)
        );
    }

    #[test]
    fn vrma_entries_are_found_by_the_lookup() {
        // Build every VRMA page of a small table and look each one up the
        // way the MMU does: VRMA SLB entry, primary hash, AVPN compare.
        for page in PageSize::ALL {
            let o = order(18);
            let n = vrma_max_pages(o, page);
            let mut seen = Vec::new();
            seen.resize(o.pteg_count() as usize, false);
            for i in 0..n {
                let phys = i << page.shift();
                let (pteg, h) = vrma_hpte(o, i, page, phys).unwrap();
                assert!(!seen[pteg as usize], "two VRMA pages in PTEG {pteg}");
                seen[pteg as usize] = true;

                let ea = i << page.shift();
                let slb = vrma_slb_vsid(page);
                assert_eq!(slb & (SLB_VSID_L | SLB_VSID_LP), page.slb_llp());
                let vsid = (slb & 0x3fff_ffff_ffff_f000) >> SLB_VSID_SHIFT_1T;
                assert_eq!(vsid, VRMA_VSID);
                assert_eq!(pteg, o.pteg_index(primary_hash(vsid, ea, S1T, page)));
                let ptem = (slb & 0xffff_ffff_ffff_f000) | ((ea >> 16) & HPTE_V_AVPN);
                assert_eq!(h.v & HPTE_V_COMPARE_MASK, ptem);
                assert!(h.is_valid() && h.is_bolted() && !h.is_secondary());
                assert_eq!(h.page_size(), Some(page));
                assert_eq!(h.real_address(page), phys);
                assert_eq!(h.pp(), 0);
                assert_eq!(h.r & HPTE_R_WIMG, HPTE_R_M);
                assert!(is_vrma_hpte(h.v));
                let vp = hpte_virt_page(h, pteg).unwrap();
                assert_eq!((vp.vsid, vp.offset), (VRMA_VSID, ea));
            }
        }
    }

    #[test]
    fn lpcr_vrmasd_values() {
        assert_eq!(lpcr_vrmasd(P4K), 0);
        // L | LP1: Linux LPCR_VRMA_L | LPCR_VRMA_LP1.
        assert_eq!(lpcr_vrmasd(P64K), 0x0008_8000_0000_0000);
        assert_eq!(lpcr_vrmasd(P16M), 0x0008_0000_0000_0000);
        for page in PageSize::ALL {
            let lpcr = lpcr_vrmasd(page);
            assert_eq!(lpcr & !crate::spr::LPCR_VRMASD, 0);
            // QEMU rebuilds the VRMA SLB L||LP from the field this way.
            let vrmasd = (lpcr & crate::spr::LPCR_VRMASD) >> crate::spr::LPCR_VRMASD_SHIFT;
            assert_eq!((vrmasd << 4) & (SLB_VSID_L | SLB_VSID_LP), page.slb_llp());
        }
        assert_eq!(lpcr_vrmasd(P64K) >> crate::spr::LPCR_VRMASD_SHIFT, 0b10001);
        assert_eq!(lpcr_vrmasd(P16M) >> crate::spr::LPCR_VRMASD_SHIFT, 0b10000);
        assert_eq!(vrma_slb_vsid(P16M), 0x4001_ffff_ff00_0100);
    }

    #[test]
    fn sizes_and_segments() {
        for page in PageSize::ALL {
            assert_eq!(PageSize::from_shift(page.shift()), Some(page));
        }
        assert_eq!(PageSize::from_shift(13), None);
        assert_eq!(PageSize::from_shift(34), None);
        assert_eq!(SegmentSize::from_b(0), Some(S256M));
        assert_eq!(SegmentSize::from_b(1), Some(S1T));
        assert_eq!(SegmentSize::from_b(2), None);
        assert_eq!(S256M.vsid_bits(), 50);
        assert_eq!(S1T.vsid_bits(), 38);
        let h = Hpte::new(hpte_encode_v(1, 0, S1T, P4K), 0);
        assert_eq!(h.segment_size(), Some(S1T));
    }
}
