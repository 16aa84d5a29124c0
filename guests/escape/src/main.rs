//! The escape catalogue: named checks, each PASS or FAIL on the console,
//! that a guest cannot reach outside its partition or above its
//! privilege. HPT entries at and beyond the end of its memory (every page
//! size, cacheable, I and I|G), at host addresses (the hypervisor image,
//! another VM, the HPT), PTE indexes at every edge, forged H_BULK_REMOVE
//! lists, RTAS buffers straddling the end of memory; DMA through the
//! l-lan adapter's window (TCEs naming memory outside the partition, IOBAs
//! outside the window, the device's own reads and writes); every hypervisor
//! SPR written and read (exactly one program interrupt each, nothing
//! read); MSR[HV] and MSR[ME] games with mtmsrd and rfid; msgsnd, nap,
//! sleep, rvwinkle and tlbie; a decrementer storm. Then a verdict line and
//! power-off. With `spin` in its bootargs it is the guest that never makes
//! a hypercall, never enables interrupts and never ends.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use guest_common::papr::*;
use guest_common::{
    device_tree, hcall, hcall8, install_trap_handlers, install_vector, power_off, println,
    slb_load, translated_load, trap_log,
};

const V_VALID: u64 = 1;
const V_LARGE: u64 = 4;
const R_M: u64 = 0x10;
const R_I: u64 = 0x20;
const R_G: u64 = 0x08;
const R_PP_RW: u64 = 0x2;
/// A 256 MiB segment of the guest's own for the translated checks.
const VSID: u64 = 0x5e5;
const ESID: u64 = 3;

struct Checks {
    pass: u32,
    fail: u32,
}

impl Checks {
    fn check(&mut self, name: &str, ok: bool, detail: core::fmt::Arguments<'_>) {
        if ok {
            self.pass += 1;
            println!("escape: {name}: PASS");
        } else {
            self.fail += 1;
            println!("escape: {name}: FAIL ({detail})");
        }
    }

    fn rc(&mut self, name: &str, got: i64, want: i64) {
        self.check(name, got == want, format_args!("rc {got}, want {want}"));
    }
}

/// (L bit, LP bits of R, bytes) of each base page size.
const SIZES: [(&str, u64, u64, u64); 3] = [
    ("4K", 0, 0, 0x1000),
    ("64K", V_LARGE, 0x1000, 0x1_0000),
    ("16M", V_LARGE, 0, 0x100_0000),
];

fn hpt_checks(c: &mut Checks, mem: u64, entries: u64) {
    let v = (0x1234_5670 << 12) | V_VALID;
    // A PTEG away from the real-mode entries' (their VSID is 0x1ffffff).
    let ptex = (entries / 2) & !7;
    for (name, l, lp, size) in SIZES {
        let entry =
            |gpa: u64, wimg: u64| hcall(H_ENTER, [0, ptex, v | l, gpa | lp | wimg | R_PP_RW, 0, 0]);
        let (rc, r) = entry(mem - size, R_M);
        c.rc(
            &fmtbuf::buf(format_args!(
                "H_ENTER {name} {}",
                "page at the end of memory, cacheable: accepted"
            )),
            rc,
            H_SUCCESS,
        );
        if rc == H_SUCCESS {
            hcall(H_REMOVE, [0, r[0], 0, 0, 0, 0]);
        }
        for (what, gpa) in [
            ("page just past the end of memory", mem),
            ("page far past the end of memory", mem << 4),
            (
                "page at the hypervisor image (host 0x20000000)",
                0x2000_0000,
            ),
            (
                "page of the next VM's memory (host memory above ours)",
                mem + 0x100_0000,
            ),
        ] {
            let gpa = gpa & !(size - 1);
            if gpa + size <= mem {
                continue;
            }
            c.rc(
                &fmtbuf::buf(format_args!("H_ENTER {name} {what}")),
                entry(gpa, R_M).0,
                H_PARAMETER,
            );
        }
        if size > 0x1000 {
            // Only its first 4K inside memory.
            c.rc(
                &fmtbuf::buf(format_args!(
                    "H_ENTER {name} {}",
                    "page straddling the end of memory"
                )),
                entry(mem - 0x1000, R_M).0,
                H_PARAMETER,
            );
        }
        c.rc(
            &fmtbuf::buf(format_args!("H_ENTER {name} {}", "cache-inhibited (I) RAM")),
            entry(0, R_I | R_M).0,
            H_PARAMETER,
        );
        c.rc(
            &fmtbuf::buf(format_args!(
                "H_ENTER {name} {}",
                "cache-inhibited guarded (I|G) RAM"
            )),
            entry(0, R_I | R_G).0,
            H_PARAMETER,
        );
    }
    // A guest-physical address that is the host address of the HPT
    // (0x2080000 on this machine) maps the guest's own memory.
    let gpa = 0x208_0000u64;
    if gpa < mem {
        let marker = 0x4553_4341_5045_0001u64;
        // SAFETY: the guest's own memory, in real mode.
        unsafe { core::ptr::write_volatile(gpa as *mut u64, marker) };
        let ea = (ESID << 28) | gpa;
        let page = (ea & 0x0fff_ffff) >> 12;
        let pteg = ((VSID ^ page) & ((entries >> 3) - 1)) * 8;
        let vsid_v = (VSID << 12) | ((page >> 11) << 7) | V_VALID;
        let (rc, r) = hcall(H_ENTER, [0, pteg, vsid_v, gpa | R_M | R_PP_RW, 0, 0]);
        slb_load(2, ESID, VSID);
        let got = if rc == H_SUCCESS {
            translated_load(ea)
        } else {
            0
        };
        c.check(
            "a mapping of guest-physical 0x2080000 (the host's HPT address) reaches the guest's own memory",
            rc == H_SUCCESS && got == marker,
            format_args!("rc {rc}, read {got:#x}"),
        );
        if rc == H_SUCCESS {
            hcall(H_REMOVE, [0, r[0], 0, 0, 0, 0]);
        }
    }
    // PTE indexes at every edge.
    c.rc(
        "H_READ of the last entry",
        hcall(H_READ, [0, entries - 1, 0, 0, 0, 0]).0,
        H_SUCCESS,
    );
    for (what, i) in [
        ("one past the HPT", entries),
        ("a group past the HPT", entries + 8),
        ("the sign bit", 1 << 63),
        ("all ones", u64::MAX),
    ] {
        c.rc(
            &fmtbuf::buf(format_args!("H_READ at {what}")),
            hcall(H_READ, [0, i, 0, 0, 0, 0]).0,
            H_PARAMETER,
        );
        c.rc(
            &fmtbuf::buf(format_args!("H_READ_4 at {what}")),
            hcall(H_READ, [H_READ_4, i, 0, 0, 0, 0]).0,
            H_PARAMETER,
        );
        c.rc(
            &fmtbuf::buf(format_args!("H_REMOVE at {what}")),
            hcall(H_REMOVE, [0, i, 0, 0, 0, 0]).0,
            H_PARAMETER,
        );
        c.rc(
            &fmtbuf::buf(format_args!("H_PROTECT at {what}")),
            hcall(H_PROTECT, [0, i, 0, 0, 0, 0]).0,
            H_PARAMETER,
        );
        c.rc(
            &fmtbuf::buf(format_args!("H_CLEAR_REF at {what}")),
            hcall(H_CLEAR_REF, [0, i, 0, 0, 0, 0]).0,
            H_PARAMETER,
        );
        c.rc(
            &fmtbuf::buf(format_args!("H_ENTER (exact) at {what}")),
            hcall(H_ENTER, [H_EXACT, i, v, R_M | R_PP_RW, 0, 0]).0,
            H_PARAMETER,
        );
    }
    // Forged H_BULK_REMOVE lists.
    let req = |ptex: u64| BULK_REQUEST | (ptex & BULK_PTEX);
    for (what, list, want) in [
        (
            "an entry past the HPT",
            [req(entries), 0, BULK_END, 0],
            H_PARAMETER,
        ),
        (
            "an index too wide for the field",
            [BULK_REQUEST | BULK_PTEX, 0, BULK_END, 0],
            H_PARAMETER,
        ),
        (
            "both match conditions",
            [req(ptex) | BULK_AVPN | BULK_ANDCOND, 0, BULK_END, 0],
            H_PARAMETER,
        ),
        (
            "a response posing as a request",
            [BULK_RESPONSE | ptex, 0, BULK_END, 0],
            H_PARAMETER,
        ),
        (
            "an end marker first",
            [BULK_END, 0, req(entries), 0],
            H_SUCCESS,
        ),
    ] {
        let (rc, _) = hcall8(
            H_BULK_REMOVE,
            [list[0], list[1], list[2], list[3], 0, 0, 0, 0],
        );
        c.rc(
            &fmtbuf::buf(format_args!("H_BULK_REMOVE with {what}")),
            rc,
            want,
        );
    }
}

fn rtas_checks(c: &mut Checks, fdt: &guest_common::fdt::Fdt<'_>, mem: u64) {
    let token = guest_common::rtas_token(fdt, "get-time-of-day").unwrap_or(0);
    for (what, buf) in [
        ("a buffer just past the end of memory", mem),
        ("a buffer whose header straddles the end", mem - 8),
        ("a buffer whose returns lie past the end", mem - 16),
        ("a buffer at the top of the address space", u64::MAX - 3),
    ] {
        if buf.checked_add(16).is_some_and(|e| e <= mem) {
            // The header fits: write it (get-time-of-day, 0 args, 8 rets).
            for (i, w) in [token, 0, 8].iter().enumerate() {
                // SAFETY: inside guest memory (checked above).
                unsafe { core::ptr::write_volatile((buf + 4 * i as u64) as *mut u32, w.to_be()) };
            }
        }
        let (rc, _) = hcall(H_RTAS, [buf, 0, 0, 0, 0, 0]);
        c.rc(
            &fmtbuf::buf(format_args!("H_RTAS with {what}")),
            rc,
            H_PARAMETER,
        );
    }
}

/// An IOMMU page, a TCE's permission bits, a buffer descriptor's valid
/// bit (PAPR).
const PAGE: u64 = 4096;
const TCE_READ: u64 = 1;
const TCE_WRITE: u64 = 2;
const BD_VALID: u64 = 1 << 63;

fn bd(ioba: u64, len: u64) -> u64 {
    BD_VALID | len << 32 | ioba
}

/// The guest's DMA window (its l-lan adapter's, from the device tree):
/// no TCE may name memory outside the partition (the hypervisor's, another
/// VM's) or carry other bits, no IOBA may lie outside the window, a
/// rejected indirect list maps nothing, and the device reaches guest memory
/// only where and as the window allows.
/// Guest page `p`'s bytes at `at`.
fn peek(p: u64, at: u64) -> u8 {
    // SAFETY: a page of guest memory below the image (pages 0x20-0x2f,
    // used by nothing else).
    unsafe { core::ptr::read_volatile((p * PAGE + at) as *const u8) }
}

fn poke(p: u64, at: u64, bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        // SAFETY: as in `peek`.
        unsafe { core::ptr::write_volatile((p * PAGE + at + i as u64) as *mut u8, *b) };
    }
}

/// The virtual SCSI adapter's queue and its server, driven wrong on
/// purpose: a queue where the device may not write, IUs it may not read,
/// data descriptors naming pages it may not write (or read), tables too
/// long, a target that is not there. Each is refused and writes nothing
/// outside what the window lets the device write. IOBA pages 0-5 are
/// guest pages 0x20-0x25: 0 the queue, 1 the IU, 2 read-only, 3
/// read-write, 4 write-only, 5 unmapped.
fn crq_checks(c: &mut Checks, fdt: &guest_common::fdt::Fdt<'_>) {
    let Some((unit, window)) = guest_common::vio_device(fdt, "vscsi") else {
        c.check("a v-scsi adapter (disk = ...)", false, format_args!("none"));
        return;
    };
    c.check(
        "a v-scsi adapter with a DMA window",
        window >= 16 * PAGE,
        format_args!("{window:#x} bytes"),
    );
    let rw = TCE_READ | TCE_WRITE;
    for (i, perm) in [(0u64, rw), (1, rw), (2, TCE_READ), (3, rw), (4, TCE_WRITE)] {
        hcall(
            H_PUT_TCE,
            [unit, i * PAGE, ((0x20 + i) * PAGE) | perm, 0, 0, 0],
        );
    }
    let send = |hi: u64, lo: u64| hcall(H_SEND_CRQ, [unit, hi, lo, 0, 0, 0]).0;
    let srp = 0x8001_0000_0000_0100u64;
    c.rc(
        "H_SEND_CRQ with no queue registered",
        send(0xc001 << 48, 0),
        H_CLOSED,
    );
    for (what, ioba, len) in [
        ("on a read-only page", 2 * PAGE, PAGE),
        ("on an unmapped page", 5 * PAGE, PAGE),
        ("past the window", window - PAGE, 2 * PAGE),
        ("misaligned", 8, PAGE),
        ("of half a page", 0, PAGE / 2),
    ] {
        let (rc, _) = hcall(H_REG_CRQ, [unit, ioba, len, 0, 0, 0]);
        c.rc(
            &fmtbuf::buf(format_args!("H_REG_CRQ {what}")),
            rc,
            H_PARAMETER,
        );
    }
    let (rc, _) = hcall(H_REG_CRQ, [unit, 0, PAGE, 0, 0, 0]);
    c.rc("H_REG_CRQ on a writable page", rc, H_SUCCESS);
    let (rc, _) = hcall(H_REG_CRQ, [unit, 0, PAGE, 0, 0, 0]);
    c.rc("H_REG_CRQ a second time", rc, H_RESOURCE);
    for (what, ioba) in [
        ("on an unmapped page", 5 * PAGE),
        ("past the window", window),
    ] {
        c.rc(
            &fmtbuf::buf(format_args!("H_SEND_CRQ with its IU {what}")),
            send(srp, ioba),
            H_PARAMETER,
        );
    }
    c.check(
        "nothing queued for a refused request",
        peek(0x20, 0) == 0,
        format_args!("valid byte {:#x}", peek(0x20, 0)),
    );
    // SRP_CMDs of LUN 0: the answer's SCSI status and sense key, the
    // queue slot given back.
    let mut slot = 0u64;
    let mut cmd = |cdb: &[u8], fmt: u8, desc: &[u8]| -> (i64, u8, u8, u8) {
        let mut iu = [0u8; 256];
        (iu[0], iu[5], iu[20]) = (0x02, fmt, 0x80);
        iu[32..32 + cdb.len()].copy_from_slice(cdb);
        iu[48..48 + desc.len()].copy_from_slice(desc);
        poke(0x21, 0, &iu);
        let rc = send(srp, PAGE);
        poke(0x20, 16 * slot, &[0]);
        slot += 1;
        (rc, peek(0x21, 19), peek(0x21, 38), peek(0x21, 48))
    };
    let direct = |ioba: u64, len: u32| -> [u8; 16] {
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&ioba.to_be_bytes());
        d[12..].copy_from_slice(&len.to_be_bytes());
        d
    };
    let read1 = [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0];
    let write1 = [0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0];
    poke(0x22, 0, &[0xa5; 512]);
    let r = cmd(&read1, 0x01, &direct(2 * PAGE, 512));
    c.check(
        "a READ into a read-only page is refused and writes nothing",
        r == (H_SUCCESS, 2, 0xb, 0x4b) && peek(0x22, 0) == 0xa5 && peek(0x22, 511) == 0xa5,
        format_args!("{r:?}, page {:#x}", peek(0x22, 0)),
    );
    let r = cmd(&read1, 0x01, &direct(window - 256, 512));
    c.check(
        "a READ running past the window is refused",
        r.1 == 2 && r.2 == 0xb,
        format_args!("{r:?}"),
    );
    poke(0x24, 0, &[0x77; 512]);
    let r = cmd(&write1, 0x10, &direct(4 * PAGE, 512));
    c.check(
        "a WRITE from a write-only page is refused",
        r.1 == 2 && r.2 == 0xb,
        format_args!("{r:?}"),
    );
    poke(0x23, 0, &[0x11; 512]);
    let r = cmd(&read1, 0x01, &direct(3 * PAGE, 512));
    c.check(
        "the disk kept nothing of the refused WRITE",
        r == (H_SUCCESS, 0, 0, 0) && peek(0x23, 0) == 0 && peek(0x23, 511) == 0,
        format_args!("{r:?}, byte {:#x}", peek(0x23, 0)),
    );
    let mut table = [0u8; 20];
    table[..8].copy_from_slice(&(PAGE + 68).to_be_bytes());
    table[12..16].copy_from_slice(&(300u32 * 16).to_be_bytes());
    table[16..20].copy_from_slice(&512u32.to_be_bytes());
    let r = cmd(&read1, 0x02, &table);
    c.check(
        "an indirect table of 300 descriptors is refused",
        r.1 == 2 && r.2 == 5 && r.3 == 0x24,
        format_args!("{r:?}"),
    );
    let r = {
        let mut iu = [0u8; 256];
        (iu[0], iu[20], iu[32], iu[36]) = (0x02, 0x85, 0x12, 36);
        poke(0x21, 0, &iu);
        let rc = send(srp, PAGE);
        poke(0x20, 16 * slot, &[0]);
        (rc, peek(0x21, 19), peek(0x21, 38), peek(0x21, 48))
    };
    c.check(
        "target 5 is not there",
        r == (H_SUCCESS, 2, 5, 0x25),
        format_args!("{r:?}"),
    );
    let (rc, _) = hcall(H_FREE_CRQ, [unit, 0, 0, 0, 0, 0]);
    c.check(
        "no queue after H_FREE_CRQ",
        rc == H_SUCCESS && send(0xc001 << 48, 0) == H_CLOSED,
        format_args!("rc {rc}"),
    );
}

fn dma_checks(c: &mut Checks, fdt: &guest_common::fdt::Fdt<'_>, mem: u64) {
    let Some((unit, window)) = guest_common::vio_device(fdt, "network") else {
        c.check(
            "an l-lan adapter with a DMA window",
            false,
            format_args!("none"),
        );
        return;
    };
    c.check(
        "an l-lan adapter with a DMA window",
        window >= 16 * PAGE,
        format_args!("{window:#x} bytes"),
    );
    let get = |ioba: u64| hcall(H_GET_TCE, [unit, ioba, 0, 0, 0, 0]);
    let rw = TCE_READ | TCE_WRITE;
    for (what, target) in [
        ("just past the end of memory", mem),
        ("one page further", mem + PAGE),
        ("4 GiB up (another VM, the hypervisor)", 1 << 32),
        ("the top of the address space", !(PAGE - 1)),
    ] {
        let (rc, _) = hcall(H_PUT_TCE, [unit, 0, target | rw, 0, 0, 0]);
        let (_, tce) = get(0);
        c.check(
            &fmtbuf::buf(format_args!("H_PUT_TCE naming memory {what}")),
            rc == H_PARAMETER && tce[0] == 0,
            format_args!("rc {rc}, entry {:#x}", tce[0]),
        );
    }
    for (what, ioba) in [
        ("at the window's end", window),
        ("far past the window", window << 8),
        ("misaligned", 8),
        ("at the top of the bus", !(PAGE - 1)),
    ] {
        let (rc, _) = hcall(H_PUT_TCE, [unit, ioba, PAGE | rw, 0, 0, 0]);
        c.rc(
            &fmtbuf::buf(format_args!("H_PUT_TCE {what}")),
            rc,
            H_PARAMETER,
        );
    }
    let (rc, _) = hcall(H_PUT_TCE, [unit, 0, PAGE | rw | 4, 0, 0, 0]);
    c.rc("H_PUT_TCE with a reserved bit", rc, H_PARAMETER);
    for liobn in [0, u64::from(u32::MAX), unit | 1 << 32, unit + 0x100] {
        let (rc, _) = hcall(H_PUT_TCE, [liobn, 0, PAGE | rw, 0, 0, 0]);
        c.rc(
            &fmtbuf::buf(format_args!("H_PUT_TCE on LIOBN {liobn:#x}, not this VM's")),
            rc,
            H_PARAMETER,
        );
    }
    let (rc, _) = hcall(H_STUFF_TCE, [unit, 0, PAGE | rw, 1, 0, 0]);
    c.rc("H_STUFF_TCE mapping a page", rc, H_PARAMETER);
    let (rc, _) = hcall(H_STUFF_TCE, [unit, window - PAGE, 0, 2, 0, 0]);
    c.rc("H_STUFF_TCE past the window's end", rc, H_PARAMETER);
    // An indirect list: the list itself outside memory, and a list whose
    // last entry names memory outside (the first two must stay unmapped).
    let list = mem - 2 * PAGE;
    for (k, t) in [PAGE | rw, (2 * PAGE) | rw, mem | rw].iter().enumerate() {
        // SAFETY: inside guest memory, below the device tree (the
        // hypervisor puts it at the top, under RTAS) and unused.
        unsafe { core::ptr::write_volatile((list + 8 * k as u64) as *mut u64, t.to_be()) };
    }
    let (rc, _) = hcall(H_PUT_TCE_INDIRECT, [unit, 0, mem, 1, 0, 0]);
    c.rc(
        "H_PUT_TCE_INDIRECT with its list past memory",
        rc,
        H_PARAMETER,
    );
    let (rc, _) = hcall(H_PUT_TCE_INDIRECT, [unit, 0, list, 3, 0, 0]);
    let (_, first) = get(0);
    c.check(
        "H_PUT_TCE_INDIRECT with one entry outside memory maps none",
        rc == H_PARAMETER && first[0] == 0,
        format_args!("rc {rc}, first entry {:#x}", first[0]),
    );
    // The device itself: IOBA pages 0-3 are guest pages 0x10-0x13, page 0
    // read-only, the others read-write.
    let base = 0x10 * PAGE;
    for i in 0..4 {
        let perm = if i == 0 { TCE_READ } else { rw };
        hcall(
            H_PUT_TCE,
            [unit, i * PAGE, (base + i * PAGE) | perm, 0, 0, 0],
        );
    }
    let mac = 0x0200_0000_0001;
    let pattern = 0x5a5a_5a5a_5a5a_5a5au64;
    // SAFETY: guest page 0x10, unused by this guest's image (it starts at
    // 4 MiB) and its stack.
    unsafe { core::ptr::write_volatile(base as *mut u64, pattern) };
    let (rc, _) = hcall(
        H_REGISTER_LOGICAL_LAN,
        [unit, PAGE, bd(0, 64), 2 * PAGE, mac, 0],
    );
    // SAFETY: as above.
    let after = unsafe { core::ptr::read_volatile(base as *const u64) };
    c.check(
        "H_REGISTER_LOGICAL_LAN with its queue on a read-only page writes nothing",
        rc == H_PARAMETER && after == pattern,
        format_args!("rc {rc}, page 0x10 {after:#x}"),
    );
    let (rc, _) = hcall(
        H_REGISTER_LOGICAL_LAN,
        [unit, PAGE, bd(window - 32, 64), 2 * PAGE, mac, 0],
    );
    c.rc(
        "H_REGISTER_LOGICAL_LAN with its queue past the window",
        rc,
        H_PARAMETER,
    );
    let (rc, _) = hcall(
        H_REGISTER_LOGICAL_LAN,
        [unit, PAGE, bd(3 * PAGE, 64), 2 * PAGE, mac, 0],
    );
    c.rc("H_REGISTER_LOGICAL_LAN inside the window", rc, H_SUCCESS);
    let (rc, _) = hcall(
        H_ADD_LOGICAL_LAN_BUFFER,
        [unit, bd(window - 256, 512), 0, 0, 0, 0],
    );
    c.rc("H_ADD_LOGICAL_LAN_BUFFER past the window", rc, H_PARAMETER);
    let (rc, _) = hcall8(
        H_SEND_LOGICAL_LAN,
        [unit, bd(window - 32, 64), 0, 0, 0, 0, 0, 0],
    );
    c.rc("H_SEND_LOGICAL_LAN from past the window", rc, H_PARAMETER);
    hcall(
        H_PUT_TCE,
        [unit, 3 * PAGE, (base + 3 * PAGE) | TCE_WRITE, 0, 0, 0],
    );
    let (rc, _) = hcall8(
        H_SEND_LOGICAL_LAN,
        [unit, bd(3 * PAGE, 64), 0, 0, 0, 0, 0, 0],
    );
    c.rc(
        "H_SEND_LOGICAL_LAN from a page it may not read",
        rc,
        H_PARAMETER,
    );
    let (rc, _) = hcall8(H_SEND_LOGICAL_LAN, [unit, bd(0, 64), 0, 0, 0, 0, 0, 0]);
    c.rc("H_SEND_LOGICAL_LAN from a readable page", rc, H_SUCCESS);
    let (rc, _) = hcall(H_FREE_LOGICAL_LAN, [unit, 0, 0, 0, 0, 0]);
    c.rc("H_FREE_LOGICAL_LAN", rc, H_SUCCESS);
    hcall(H_STUFF_TCE, [unit, 0, 0, 4, 0, 0]);
}

// One instruction that must trap: `probe_N` runs it with r3 = a sentinel
// and returns r3 (a trapped mfspr leaves it unchanged; the trap handler
// skips the instruction).
macro_rules! probes {
    ($($name:ident: $insn:literal;)*) => {
        global_asm!(
            ".pushsection .text.escape_probes, \"ax\", @progbits",
            ".machine power8",
            $(
                concat!(".global ", stringify!($name)),
                concat!(stringify!($name), ":"),
                $insn,
                "blr",
            )*
            ".popsection"
        );
        unsafe extern "C" {
            $(fn $name(x: u64) -> u64;)*
        }
    };
}

probes! {
    mt_lpidr: "mtspr 319, 3"; mf_lpidr: "mfspr 3, 319";
    mt_sdr1: "mtspr 25, 3"; mf_sdr1: "mfspr 3, 25";
    mt_lpcr: "mtspr 318, 3"; mf_lpcr: "mfspr 3, 318";
    mt_hrmor: "mtspr 313, 3"; mf_hrmor: "mfspr 3, 313";
    mt_hdec: "mtspr 310, 3"; mf_hdec: "mfspr 3, 310";
    mt_hsprg0: "mtspr 304, 3"; mf_hsprg0: "mfspr 3, 304";
    mt_hsprg1: "mtspr 305, 3"; mf_hsprg1: "mfspr 3, 305";
    mt_hsrr0: "mtspr 314, 3"; mf_hsrr0: "mfspr 3, 314";
    mt_hsrr1: "mtspr 315, 3"; mf_hsrr1: "mfspr 3, 315";
    mt_hid0: "mtspr 1008, 3"; mf_hid0: "mfspr 3, 1008";
    mt_hid1: "mtspr 1009, 3"; mf_hid1: "mfspr 3, 1009";
    mt_hid4: "mtspr 1012, 3"; mf_hid4: "mfspr 3, 1012";
    mt_hid5: "mtspr 1014, 3"; mf_hid5: "mfspr 3, 1014";
    mt_hmer: "mtspr 336, 3"; mf_hmer: "mfspr 3, 336";
    mt_hmeer: "mtspr 337, 3"; mf_hmeer: "mfspr 3, 337";
    mt_pcr: "mtspr 338, 3"; mf_pcr: "mfspr 3, 338";
    mt_amor: "mtspr 93, 3"; mf_amor: "mfspr 3, 93";
    mt_hfscr: "mtspr 190, 3"; mf_hfscr: "mfspr 3, 190";
    mt_rpr: "mtspr 186, 3"; mf_rpr: "mfspr 3, 186";
    mt_tscr: "mtspr 921, 3"; mf_tscr: "mfspr 3, 921";
    mt_hdar: "mtspr 307, 3"; mf_hdar: "mfspr 3, 307";
    mt_hdsisr: "mtspr 306, 3"; mf_hdsisr: "mfspr 3, 306";
    mt_heir: "mtspr 339, 3"; mf_heir: "mfspr 3, 339";
    mt_purr: "mtspr 309, 3";
    mt_spurr: "mtspr 308, 3";
    // Encoded by hand (the assembler lacks the mnemonics): msgsnd r3,
    // nap, sleep, rvwinkle, tlbie r3 (RS = r0).
    do_msgsnd: ".long 0x7c00199c";
    do_nap: ".long 0x4c000364";
    do_sleep: ".long 0x4c0003a4";
    do_rvwinkle: ".long 0x4c0003e4";
    do_tlbie: ".long 0x7c001a64";
}

/// Runs `f(sentinel)` and returns (interrupts it took, what it returned).
fn trapped(f: unsafe extern "C" fn(u64) -> u64) -> (u64, u64) {
    const SENTINEL: u64 = 0x5e47_1e1a_5e47_1e1a;
    let before = trap_log().count;
    // SAFETY: each probe is one instruction the guest may try; its
    // program interrupt is taken by the recording handler, which skips it.
    let r = unsafe { f(SENTINEL) };
    (trap_log().count - before, if r == SENTINEL { 0 } else { r })
}

/// SPRs whose guest accesses QEMU 10's POWER8 treats as no-ops rather
/// than trapping: HID1, HID4 and HID5 are not in its model (an undefined
/// SPR with bit 0x10 set is a no-op in privileged state, ISA 2.07), and
/// AMOR reads and writes from a guest change nothing there either. They
/// may not trap; nothing may be read through them.
const NO_OP_ON_QEMU: [&str; 4] = ["HID1", "HID4", "HID5", "AMOR"];

fn privilege_checks(c: &mut Checks) {
    let sprs: [(
        &str,
        unsafe extern "C" fn(u64) -> u64,
        unsafe extern "C" fn(u64) -> u64,
    ); 22] = [
        ("LPIDR", mt_lpidr, mf_lpidr),
        ("SDR1", mt_sdr1, mf_sdr1),
        ("LPCR", mt_lpcr, mf_lpcr),
        ("HRMOR", mt_hrmor, mf_hrmor),
        ("HDEC", mt_hdec, mf_hdec),
        ("HSPRG0", mt_hsprg0, mf_hsprg0),
        ("HSPRG1", mt_hsprg1, mf_hsprg1),
        ("HSRR0", mt_hsrr0, mf_hsrr0),
        ("HSRR1", mt_hsrr1, mf_hsrr1),
        ("HID0", mt_hid0, mf_hid0),
        ("HID1", mt_hid1, mf_hid1),
        ("HID4", mt_hid4, mf_hid4),
        ("HID5", mt_hid5, mf_hid5),
        ("HMER", mt_hmer, mf_hmer),
        ("HMEER", mt_hmeer, mf_hmeer),
        ("PCR", mt_pcr, mf_pcr),
        ("AMOR", mt_amor, mf_amor),
        ("HFSCR", mt_hfscr, mf_hfscr),
        ("RPR", mt_rpr, mf_rpr),
        ("TSCR", mt_tscr, mf_tscr),
        ("HDAR", mt_hdar, mf_hdar),
        ("HDSISR", mt_hdsisr, mf_hdsisr),
    ];
    for (name, mt, mf) in sprs {
        let want = |n: u64| n == 1 || (n == 0 && NO_OP_ON_QEMU.contains(&name));
        let kind = |n: u64| {
            if n == 0 {
                "a no-op"
            } else {
                "one program interrupt"
            }
        };
        let (n, _) = trapped(mt);
        c.check(
            &fmtbuf::buf(format_args!("mtspr {name}: {}", kind(n))),
            want(n),
            format_args!("{n} interrupts"),
        );
        let (n, leaked) = trapped(mf);
        c.check(
            &fmtbuf::buf(format_args!("mfspr {name}: {}, nothing read", kind(n))),
            want(n) && leaked == 0,
            format_args!("{n} interrupts, read {leaked:#x}"),
        );
    }
    let (n, leaked) = trapped(mf_heir);
    c.check(
        "mfspr HEIR: one program interrupt, nothing read",
        n == 1 && leaked == 0,
        format_args!("{n} interrupts, read {leaked:#x}"),
    );
    for (name, f) in [
        ("mtspr HEIR", mt_heir as unsafe extern "C" fn(u64) -> u64),
        ("mtspr PURR", mt_purr),
        ("mtspr SPURR", mt_spurr),
        ("msgsnd", do_msgsnd),
        ("nap", do_nap),
        ("sleep", do_sleep),
        ("rvwinkle", do_rvwinkle),
        ("tlbie", do_tlbie),
    ] {
        let (n, _) = trapped(f);
        c.check(
            &fmtbuf::buf(format_args!("{name}: one program interrupt")),
            n == 1,
            format_args!("{n} interrupts"),
        );
    }
}

const MSR_HV: u64 = 1 << 60;
const MSR_ME: u64 = 1 << 12;

fn mfmsr() -> u64 {
    let m: u64;
    // SAFETY: reads the guest's own MSR.
    unsafe { asm!("mfmsr {0}", out(reg) m) };
    m
}

// u64 __escape_rfid(u64 srr1): rfid to the next instruction with SRR1 =
// srr1; returns the MSR it arrived with (r5 keeps the return address
// across the bcl).
global_asm!(
    r#"
    .pushsection .text.escape_rfid, "ax", @progbits
    .global __escape_rfid
    __escape_rfid:
        mflr 5
        mtsrr1 3
        bcl 20, 31, 1f
    1:  mflr 4
        addi 4, 4, 16
        mtsrr0 4
        rfid
        mfmsr 3
        mtlr 5
        blr
    .popsection
    "#
);

unsafe extern "C" {
    fn __escape_rfid(srr1: u64) -> u64;
}

fn msr_checks(c: &mut Checks) {
    let msr = mfmsr();
    c.check(
        "the guest runs without MSR[HV]",
        msr & MSR_HV == 0,
        format_args!("MSR {msr:#x}"),
    );
    // SAFETY: an attempt to set HV in the guest's own MSR; the MSR is
    // restored right after.
    unsafe { asm!("mtmsrd {0}", "isync", in(reg) msr | MSR_HV) };
    let after = mfmsr();
    // SAFETY: back to the MSR it had.
    unsafe { asm!("mtmsrd {0}", "isync", in(reg) msr) };
    c.check(
        "mtmsrd cannot set MSR[HV]",
        after & MSR_HV == 0,
        format_args!("MSR {after:#x}"),
    );
    // SAFETY: rfid to the next instruction asking for HV; the guest's own
    // state otherwise.
    let after = unsafe { __escape_rfid(msr | MSR_HV) };
    c.check(
        "rfid cannot set MSR[HV]",
        after & MSR_HV == 0,
        format_args!("MSR {after:#x}"),
    );
    // Machine checks off, then a hypercall: the hypervisor enters the
    // guest with ME on, whatever it was.
    // SAFETY: ME off in the guest's own MSR, for one hypercall.
    unsafe { asm!("mtmsrd {0}", "isync", in(reg) msr & !MSR_ME) };
    hcall(0x7f00, [0; 6]);
    let after = mfmsr();
    c.check(
        "MSR[ME] is on again after a hypercall",
        after & MSR_ME != 0,
        format_args!("MSR {after:#x}"),
    );
    // SAFETY: as at the start.
    unsafe { asm!("mtmsrd {0}", "isync", in(reg) msr) };
}

// The decrementer storm: a 0x900 handler that counts and re-arms the
// decrementer to 1 until STORM_LEFT reaches 0.
global_asm!(
    r#"
    .pushsection .text.escape_dec, "ax", @progbits
    .global __escape_dec
    __escape_dec:
        mtsprg 1, 3
        mtsprg 2, 4
        lis 3, STORM_LEFT@ha
        addi 3, 3, STORM_LEFT@l
        ld 4, 0(3)
        addi 4, 4, -1
        std 4, 0(3)
        cmpdi 4, 0
        li 4, 1
        bgt 1f
        lis 4, 0x7fff
    1:  mtdec 4
        mfsprg 4, 2
        mfsprg 3, 1
        rfid
    .popsection
    "#
);

unsafe extern "C" {
    fn __escape_dec();
}

#[unsafe(no_mangle)]
static mut STORM_LEFT: u64 = 0;

fn storm_checks(c: &mut Checks) {
    const STORM: u64 = 20_000;
    install_vector(0x900, __escape_dec as *const () as u64);
    // SAFETY: read by the handler only while the storm runs.
    unsafe { (&raw mut STORM_LEFT).write_volatile(STORM) };
    let msr = mfmsr();
    let t0 = guest_common::mftb();
    // SAFETY: the guest's own decrementer and MSR[EE]; the handler above
    // takes every decrementer interrupt.
    unsafe {
        asm!("li {t}, 1", "mtdec {t}", "mtmsrd {m}, 1", t = out(reg) _, m = in(reg) msr | 0x8000)
    };
    // SAFETY: as above.
    while unsafe { (&raw const STORM_LEFT).read_volatile() } > 0 {
        core::hint::spin_loop();
    }
    // SAFETY: EE off again.
    unsafe { asm!("mtmsrd {0}, 1", in(reg) msr) };
    let ticks = guest_common::mftb() - t0;
    let (rc, _) = hcall(H_READ, [0, 0, 0, 0, 0, 0]);
    c.check(
        "a decrementer storm (20,000 interrupts at DEC=1) ends, and hypercalls still work",
        rc == H_SUCCESS,
        format_args!("H_READ {rc} after {ticks} ticks"),
    );
}

/// `format!` without an allocator: "SIZE WHAT" into a fixed buffer.
mod fmtbuf {
    pub struct Buf {
        b: [u8; 160],
        n: usize,
    }
    impl core::fmt::Write for Buf {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let take = s.len().min(self.b.len() - self.n);
            self.b[self.n..self.n + take].copy_from_slice(&s.as_bytes()[..take]);
            self.n += take;
            Ok(())
        }
    }
    impl core::ops::Deref for Buf {
        type Target = str;
        fn deref(&self) -> &str {
            core::str::from_utf8(&self.b[..self.n]).unwrap_or("?")
        }
    }
    pub fn buf(args: core::fmt::Arguments<'_>) -> Buf {
        let mut b = Buf { b: [0; 160], n: 0 };
        let _ = core::fmt::Write::write_fmt(&mut b, args);
        b
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn guest_main(fdt_addr: u64) -> ! {
    let fdt = device_tree(fdt_addr);
    let Some(f) = fdt.as_ref() else {
        println!("escape: FAIL no device tree");
        power_off(None)
    };
    // `spin`: never a hypercall, never an interrupt enabled, never an
    // end; only HDEC takes the core back (and Ctrl-] x stops the VM).
    if f.chosen()
        .bootargs()
        .is_some_and(|a| a.split_whitespace().any(|w| w == "spin"))
    {
        loop {
            core::hint::spin_loop();
        }
    }
    let mem = guest_common::memory_size(Some(f));
    let entries = 1u64 << (guest_common::hpt_order(Some(f)) - 4);
    install_trap_handlers();
    let mut c = Checks { pass: 0, fail: 0 };
    hpt_checks(&mut c, mem, entries);
    rtas_checks(&mut c, f, mem);
    dma_checks(&mut c, f, mem);
    crq_checks(&mut c, f);
    privilege_checks(&mut c);
    msr_checks(&mut c);
    storm_checks(&mut c);
    if c.fail == 0 {
        println!("escape: all {} checks passed", c.pass);
    } else {
        println!("escape: {} of {} checks failed", c.fail, c.pass + c.fail);
    }
    power_off(fdt.as_ref())
}
