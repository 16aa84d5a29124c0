//! The mmu guest: reads its device tree, H_ENTERs its own mappings, loads
//! an SLB entry, turns data translation on and checks the effects of
//! H_READ, H_PROTECT and H_REMOVE: a read-only page faults on store and a
//! removed page faults on load, each into the guest's own DSI handler.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![no_std]
#![no_main]

use guest_common::papr::{H_ENTER, H_PROTECT, H_READ, H_REMOVE};
use guest_common::{
    device_tree, hcall, install_trap_handlers, mftb, power_off, println, slb_load, translated_load,
    translated_store, trap_log,
};

const VSID: u64 = 0x1234;
const ESID: u64 = 1;
const EA_RW: u64 = ESID << 28;
const EA_RO: u64 = (ESID << 28) | 0x1000;
const GPA_RW: u64 = 0x30_0000;
const GPA_RO: u64 = 0x30_1000;

const DSISR_NOTRANS: u64 = 0x4000_0000;
const DSISR_PROT: u64 = 0x0800_0000;
const DSISR_STORE: u64 = 0x0200_0000;

fn real_read(gpa: u64) -> u64 {
    // SAFETY: guest-physical memory inside this guest, real mode.
    unsafe { core::ptr::read_volatile(gpa as *const u64) }
}

fn real_write(gpa: u64, v: u64) {
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(gpa as *mut u64, v) }
}

#[unsafe(no_mangle)]
pub extern "C" fn guest_main(fdt_addr: u64) -> ! {
    let fdt = device_tree(fdt_addr);
    let order = guest_common::hpt_order(fdt.as_ref());
    let ptegs = 1u64 << (order - 7);
    println!("mmu: HPT order {order}, {ptegs} PTEGs");
    let mut pass = 0;
    let mut fail = 0;
    let mut check = |name: &str, ok: bool| {
        if ok {
            pass += 1;
            println!("mmu: {name}: ok");
        } else {
            fail += 1;
            println!("mmu: {name}: FAIL");
        }
    };
    check(
        "little-endian interrupts and DSI handler",
        install_trap_handlers() == 0,
    );

    // 4 KiB pages in a 256 MiB segment: hash = VSID ^ page index.
    let v = (VSID << 12) | 1;
    let pteg = |ea: u64| ((VSID ^ ((ea & 0x0fff_ffff) >> 12)) & (ptegs - 1)) * 8;
    let (rc, rw_idx) = hcall(H_ENTER, [0, pteg(EA_RW), v, GPA_RW | 0x10 | 2, 0, 0]);
    check("H_ENTER read/write page", rc == 0);
    let (rc, ro_idx) = hcall(H_ENTER, [0, pteg(EA_RO), v, GPA_RO | 0x10 | 3, 0, 0]);
    check("H_ENTER read-only page", rc == 0);
    let (rw_idx, ro_idx) = (rw_idx[0], ro_idx[0]);
    slb_load(1, ESID, VSID);
    real_write(GPA_RO, 0x1111);

    translated_store(EA_RW, 0xabcd);
    check(
        "store through translation reaches its guest-physical page",
        real_read(GPA_RW) == 0xabcd,
    );
    check("load through translation", translated_load(EA_RW) == 0xabcd);
    check(
        "read-only page is readable",
        translated_load(EA_RO) == 0x1111,
    );
    let before = trap_log().count;
    translated_store(EA_RO, 0x2222);
    let log = trap_log();
    check(
        "store to the read-only page faults",
        log.count == before + 1 && log.vector == 0x300,
    );
    check(
        "... DSISR protection+store, DAR = the address",
        log.dsisr & (DSISR_PROT | DSISR_STORE) == DSISR_PROT | DSISR_STORE && log.dar == EA_RO,
    );
    check("... and the page is unchanged", real_read(GPA_RO) == 0x1111);

    check(
        "H_PROTECT makes the first page read-only",
        hcall(H_PROTECT, [3, rw_idx, 0, 0, 0, 0]).0 == 0,
    );
    let (rc, e) = hcall(H_READ, [0, rw_idx, 0, 0, 0, 0]);
    check(
        "H_READ shows pp=3 and the guest RPN",
        rc == 0 && e[1] & 3 == 3 && e[1] & 0x0fff_ffff_ffff_f000 == GPA_RW,
    );
    translated_store(EA_RW, 0x3333);
    let log = trap_log();
    check(
        "store after H_PROTECT faults",
        log.count == before + 2 && log.dsisr & DSISR_PROT != 0 && log.dar == EA_RW,
    );
    check("... and memory is unchanged", real_read(GPA_RW) == 0xabcd);

    let (rc, old) = hcall(H_REMOVE, [0, rw_idx, 0, 0, 0, 0]);
    check("H_REMOVE returns the old entry", rc == 0 && old[0] == v);
    translated_load(EA_RW);
    let log = trap_log();
    check(
        "load after H_REMOVE faults: no translation",
        log.count == before + 3 && log.dsisr & DSISR_NOTRANS != 0 && log.dar == EA_RW,
    );
    check(
        "the other page still translates",
        translated_load(EA_RO) == 0x1111,
    );
    check(
        "H_REMOVE of the read-only page",
        hcall(H_REMOVE, [0, ro_idx, 0, 0, 0, 0]).0 == 0,
    );

    // `rounds=N`: map, use and unmap a page N times, ~20 ms apart, so a
    // time-sliced vcore does it on whichever core it runs on now: each
    // unmap must be seen there (a stale translation would not fault).
    let rounds = fdt
        .as_ref()
        .and_then(|f| f.chosen().bootargs())
        .and_then(|a| a.split_whitespace().find_map(|w| w.strip_prefix("rounds=")))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    let mut seen = 0;
    for round in 0..rounds {
        let (rc, idx) = hcall(H_ENTER, [0, pteg(EA_RW), v, GPA_RW | 0x10 | 2, 0, 0]);
        translated_store(EA_RW, 0x5000 + round);
        let mapped = rc == 0 && real_read(GPA_RW) == 0x5000 + round;
        let faults = trap_log().count;
        let removed = hcall(H_REMOVE, [0, idx[0], 0, 0, 0, 0]).0 == 0;
        translated_load(EA_RW);
        if mapped && removed && trap_log().count == faults + 1 {
            seen += 1;
        }
        let end = mftb() + 20 * 512_000;
        while mftb() < end {
            core::hint::spin_loop();
        }
    }
    if rounds > 0 {
        check("every unmap of the rounds is seen", seen == rounds);
        println!("mmu: {rounds} rounds of map, use and unmap");
    }

    if fail == 0 {
        println!("mmu: all {pass} checks passed");
    } else {
        println!("mmu: {fail} of {} checks FAILED", pass + fail);
    }
    power_off(fdt.as_ref())
}
