//! The bad guest: makes hypercalls with out-of-range PTE indexes, RPNs
//! outside its memory, bad page sizes and flags, unknown numbers, and
//! checks each answer; also checks that good HPT calls work (H_ENTER,
//! H_READ, H_PROTECT, H_REMOVE, H_BULK_REMOVE). Prints one line per check
//! and a verdict, then powers off.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![no_std]
#![no_main]

use guest_common::papr::rtas::PARAMETER_ERROR as RTAS_PARAMETER_ERROR;
use guest_common::papr::{BULK_CODE, BULK_REQUEST, BULK_RESPONSE, BULK_TYPE};
use guest_common::papr::{
    H_AVPN, H_BULK_REMOVE, H_ENTER, H_EXACT, H_FUNCTION, H_NOT_FOUND, H_PARAMETER, H_PROTECT,
    H_PTEG_FULL, H_READ, H_REMOVE, H_SUCCESS,
};
use guest_common::{
    device_tree, hcall, hcall8, install_trap_handlers, mftb, power_off, println, trap_log,
    vsr_fill, vsr_nonzero,
};

const V_VALID: u64 = 1;
const V_LARGE: u64 = 4;
const R_M: u64 = 0x10;
const R_I: u64 = 0x20;

const TRIALS: usize = 1000;

fn report(what: &str, v: &mut [u64; TRIALS]) {
    v.sort_unstable();
    println!(
        "bench: {what}: median={} min={} max={} ticks ({TRIALS} trials)",
        v[TRIALS / 2],
        v[0],
        v[TRIALS - 1]
    );
}

/// `fwnmi` in bootargs: registers an FWNMI machine-check handler, takes
/// a machine check (a real-mode load beyond guest memory) and checks what
/// the handler got; releases it with `ibm,nmi-interlock`, takes a second
/// one and, without releasing that, a third, which must stop the VM.
fn fwnmi(fdt: Option<&guest_common::fdt::Fdt<'_>>, mem: u64) -> ! {
    let Some(f) = fdt else { power_off(None) };
    let token = |n| guest_common::rtas_token(f, n).unwrap_or(0);
    let (register, interlock) = (token("ibm,nmi-register"), token("ibm,nmi-interlock"));
    let rtas_base = f
        .find_node("/rtas")
        .and_then(|n| n.property("linux,rtas-base"))
        .and_then(|p| Some(u32::from_be_bytes(p.value.get(0..4)?.try_into().ok()?)))
        .unwrap_or(0) as u64;
    let mut fails = 0;
    let mut checks = 0;
    let mut check = |name: &str, got: u64, want: u64| {
        checks += 1;
        if got == want {
            println!("bad: fwnmi: {name}: {got:#x} ok");
        } else {
            fails += 1;
            println!("bad: fwnmi: {name}: {got:#x} want {want:#x} FAIL");
        }
    };
    install_trap_handlers();
    let handler = guest_common::fwnmi_handler() as u32;
    let rc = |r: i32| r as i64 as u64;
    check(
        "nmi-interlock before registering",
        rc(guest_common::rtas_call(interlock, &[], 1)),
        rc(RTAS_PARAMETER_ERROR),
    );
    check(
        "nmi-register beyond memory",
        rc(guest_common::rtas_call(register, &[handler, mem as u32], 1)),
        rc(RTAS_PARAMETER_ERROR),
    );
    check(
        "nmi-register",
        rc(guest_common::rtas_call(register, &[handler, handler], 1)),
        0,
    );
    let log_at = rtas_base + 0x30;
    for (n, addr) in [(1u64, mem), (2, mem + 8)] {
        // SAFETY: deliberately beyond guest memory; the machine check
        // goes to our handler, which returns past the load.
        unsafe { core::ptr::read_volatile(addr as *const u64) };
        let t = trap_log();
        check("machine checks taken", t.count, n);
        check("handler saw vector", t.vector, 0x200);
        check("r3 is the RTAS error log", t.fwnmi_log, log_at);
        check("DAR", t.dar, addr);
        check("SRR1 says load/store", (t.srr1 >> 21) & 1, 1);
        let word = |off: u64| {
            // SAFETY: the log lies in our RTAS area, inside our memory.
            unsafe { core::ptr::read_volatile((log_at + off) as *const u64) }.swap_bytes()
        };
        check(
            "log header (v6, error sync, not recovered, extended)",
            word(8) >> 32,
            0x0674_1000,
        );
        check("log section MC, 40 bytes", word(32) >> 32, 0x4d43_0028);
        check("log effective address", word(56), addr);
        if n == 1 {
            check(
                "nmi-interlock",
                rc(guest_common::rtas_call(interlock, &[], 1)),
                0,
            );
        }
    }
    println!("bad: fwnmi: {} of {checks} checks passed", checks - fails);
    println!("bad: fwnmi: a machine check before releasing the last one");
    // SAFETY: as above; this one must stop the VM.
    unsafe { core::ptr::read_volatile((mem + 16) as *const u64) };
    println!("bad: fwnmi: survived a nested machine check FAIL");
    power_off(fdt)
}

/// CFAR right after a null hypercall, with a taken branch just before
/// the `sc 1`.
fn cfar_across_hcall() -> u64 {
    let cfar: u64;
    // SAFETY: an unknown hypercall (r3 = 0x7f00), answered in r3 only;
    // r4-r12 and CR0 are declared clobbered; then a read of our own CFAR.
    unsafe {
        core::arch::asm!(
            "li 3, 0x7f00",
            "b 1f",
            "1: sc 1",
            "mfspr {cfar}, 28",
            cfar = out(reg) cfar,
            out("r3") _, out("r4") _, out("r5") _, out("r6") _, out("r7") _,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("r12") _,
            out("r0") _, out("cr0") _,
        )
    };
    cfar
}

/// `bench` in bootargs: guest-side timings of hypercall round trips
/// (meant for QEMU -icount, where they are deterministic).
/// The bench VM's two l-lan adapters (`net = bench bench`): unit
/// address and MAC of each, from the device tree.
fn lan_adapters(fdt: &guest_common::fdt::Fdt<'_>) -> Option<[(u64, [u8; 6]); 2]> {
    let mut found = [(0u64, [0u8; 6]); 2];
    let mut n = 0;
    for node in fdt.find_node("/vdevice")?.children() {
        if node.property("device_type").and_then(|p| p.as_str()) != Some("network") || n == 2 {
            continue;
        }
        let reg = node.property("reg")?.value.get(..4)?;
        let mac = node.property("local-mac-address")?.value.get(..6)?;
        found[n].0 = u64::from(u32::from_be_bytes(reg.try_into().ok()?));
        found[n].1.copy_from_slice(mac);
        n += 1;
    }
    (n == 2).then_some(found)
}

/// The v-scsi adapter's unit address, from the device tree.
fn vscsi_unit(fdt: &guest_common::fdt::Fdt<'_>) -> Option<u64> {
    let node = fdt
        .find_node("/vdevice")?
        .children()
        .find(|n| n.property("device_type").and_then(|p| p.as_str()) == Some("vscsi"))?;
    let reg = node.property("reg")?.value.get(..4)?;
    Some(u64::from(u32::from_be_bytes(reg.try_into().ok()?)))
}

/// The virtual SCSI disk's per-request hypervisor cost, as ibmvscsi
/// sends requests: H_SEND_CRQ of an SRP_CMD (READ(10) or WRITE(10) of 4
/// or 64 KiB through one direct descriptor) on LUN 0 of the VM's disk,
/// answered (data moved, SRP_RSP written, CRQ entry queued) before the
/// call returns; each response consumed before the next request. For
/// scale, this guest copying 4 and 64 KiB itself.
fn disk_bench(fdt: &guest_common::fdt::Fdt<'_>) {
    use guest_common::papr::{H_PUT_TCE, H_REG_CRQ, H_SEND_CRQ};
    const PAGE: u64 = 4096;
    const RW: u64 = 3;
    /// IOBA page 0 the queue (256 entries), 1 the IU, 2-17 the data.
    const PAGES: u64 = 18;
    const BASE: u64 = 14 << 20;
    let Some(unit) = vscsi_unit(fdt) else {
        println!("bench: disk: the VM needs a disk (disk = scratch 1M)");
        return;
    };
    for p in 0..PAGES {
        let (rc, _) = hcall(H_PUT_TCE, [unit, p * PAGE, (BASE + p * PAGE) | RW, 0, 0, 0]);
        if rc != H_SUCCESS {
            println!("bench: disk: H_PUT_TCE failed rc={rc}");
            return;
        }
    }
    let (rc, _) = hcall(H_REG_CRQ, [unit, 0, PAGE, 0, 0, 0]);
    if rc != H_SUCCESS {
        println!("bench: disk: H_REG_CRQ failed rc={rc}");
        return;
    }
    let iu = BASE + PAGE;
    let mut slot = 0u64;
    // One request: the IU written, the call timed, its response taken.
    let mut request = |op: u8, blocks: u16| -> Option<u64> {
        let mut cmd = [0u8; 64];
        cmd[0] = 0x02; // SRP_CMD
        cmd[5] = if op == 0x2a { 0x10 } else { 0x01 }; // direct, out or in
        cmd[8..16].copy_from_slice(&slot.to_be_bytes()); // tag
        cmd[20] = 0x80; // LUN 0 of target 0
        cmd[32] = op;
        cmd[39..41].copy_from_slice(&blocks.to_be_bytes());
        cmd[48..56].copy_from_slice(&(2 * PAGE).to_be_bytes());
        cmd[60..64].copy_from_slice(&(u32::from(blocks) * 512).to_be_bytes());
        for (i, b) in cmd.iter().enumerate() {
            // SAFETY: the IU page, guest memory used for nothing else.
            unsafe { core::ptr::write_volatile((iu + i as u64) as *mut u8, *b) };
        }
        let hi = 0x8001_0000_0000_0100u64; // valid, SRP format, 256 bytes
        let t0 = mftb();
        let (rc, _) = hcall(H_SEND_CRQ, [unit, hi, PAGE, 0, 0, 0]);
        let t = mftb() - t0;
        let entry = BASE + 16 * (slot % 256);
        // SAFETY: the queue page, written by the hypervisor; the guest
        // gives the slot back by zeroing its valid byte.
        let valid = unsafe { core::ptr::read_volatile(entry as *const u8) };
        // SAFETY: as above; the SRP_RSP's status byte in the IU page.
        let status = unsafe { core::ptr::read_volatile((iu + 19) as *const u8) };
        // SAFETY: as above: the slot is given back.
        unsafe { core::ptr::write_volatile(entry as *mut u8, 0) };
        slot += 1;
        (rc == H_SUCCESS && valid == 0x80 && status == 0).then_some(t)
    };
    let cases: [(&str, u8, u16); 4] = [
        ("disk H_SEND_CRQ READ(10) 4 KiB", 0x28, 8),
        ("disk H_SEND_CRQ READ(10) 64 KiB", 0x28, 128),
        ("disk H_SEND_CRQ WRITE(10) 4 KiB", 0x2a, 8),
        ("disk H_SEND_CRQ WRITE(10) 64 KiB", 0x2a, 128),
    ];
    let mut times = [[0u64; TRIALS]; 4];
    for (k, &(what, op, blocks)) in cases.iter().enumerate() {
        for t in times[k].iter_mut() {
            match request(op, blocks) {
                Some(ticks) => *t = ticks,
                None => {
                    println!("bench: disk: {what} failed");
                    return;
                }
            }
        }
    }
    for (k, &(what, _, _)) in cases.iter().enumerate() {
        report(what, &mut times[k]);
    }
    for (what, len) in [
        ("disk the guest's own copy of 4 KiB", 4096usize),
        ("disk the guest's own copy of 64 KiB", 65536),
    ] {
        let mut copy = [0u64; TRIALS];
        for t in copy.iter_mut() {
            let (src, dst) = (
                (BASE + 2 * PAGE) as *const u8,
                (BASE + 32 * PAGE) as *mut u8,
            );
            let t0 = mftb();
            // SAFETY: two distinct regions of the bench's memory, used for
            // nothing else.
            unsafe { core::ptr::copy(src, dst, len) };
            *t = mftb() - t0;
        }
        report(what, &mut copy);
    }
}

/// The virtual Ethernet's per-frame hypervisor cost: adapter A sends
/// 1,514-byte frames to adapter B of the same VM (both on one LAN); B
/// has a buffer for each. Also the calls a receiving Linux makes per
/// frame (H_ADD_LOGICAL_LAN_BUFFER, H_STUFF_TCE, H_PUT_TCE) and, for
/// scale, this guest copying 1,514 bytes itself (the same
/// compiler-builtins `memmove` the hypervisor's copy uses).
fn lan_bench(fdt: &guest_common::fdt::Fdt<'_>) {
    use guest_common::papr::{
        H_ADD_LOGICAL_LAN_BUFFER, H_PUT_TCE, H_PUT_TCE_INDIRECT, H_REGISTER_LOGICAL_LAN,
        H_SEND_LOGICAL_LAN, H_STUFF_TCE,
    };
    const PAGE: u64 = 4096;
    const RW: u64 = 3;
    const VALID: u64 = 1 << 63;
    const FRAME: u64 = 1514;
    /// IOBA pages: 0 buffer list, 1-16 the queue (4,096 entries), 17
    /// filter, 18-567 buffers (two per page), 580 the frame sent.
    const PAGES: u64 = 600;
    const SEND_PAGE: u64 = 580;
    let Some(nics) = lan_adapters(fdt) else {
        println!("bench: lan: the VM needs two l-lan adapters (net = bench bench)");
        return;
    };
    // Guest memory of each adapter's window: A at 8 MiB, B at 11 MiB; the
    // TCE lists at 7 MiB.
    let base = [8u64 << 20, 11 << 20];
    let list = 7u64 << 20;
    for (k, &(unit, mac)) in nics.iter().enumerate() {
        for chunk in 0..PAGES.div_ceil(512) {
            let first = chunk * 512;
            let count = (PAGES - first).min(512);
            for i in 0..count {
                let tce = (base[k] + (first + i) * PAGE) | RW;
                // SAFETY: the list page, guest memory used for nothing else.
                unsafe { core::ptr::write_volatile((list + 8 * i) as *mut u64, tce.to_be()) };
            }
            let (rc, _) = hcall(H_PUT_TCE_INDIRECT, [unit, first * PAGE, list, count, 0, 0]);
            if rc != H_SUCCESS {
                println!("bench: lan: H_PUT_TCE_INDIRECT failed rc={rc}");
                return;
            }
        }
        let mac = mac.iter().fold(0u64, |m, &b| m << 8 | u64::from(b));
        let queue = VALID | (16 * PAGE) << 32 | PAGE;
        let (rc, _) = hcall(H_REGISTER_LOGICAL_LAN, [unit, 0, queue, 17 * PAGE, mac, 0]);
        if rc != H_SUCCESS {
            println!("bench: lan: H_REGISTER_LOGICAL_LAN failed rc={rc}");
            return;
        }
    }
    let [(a, mac_a), (b, mac_b)] = nics;
    let mut add = [0u64; TRIALS];
    for (i, t) in add.iter_mut().enumerate() {
        let bd = VALID | 2048 << 32 | (18 * PAGE + 2048 * i as u64);
        let t0 = mftb();
        let (rc, _) = hcall(H_ADD_LOGICAL_LAN_BUFFER, [b, bd, 0, 0, 0, 0]);
        *t = mftb() - t0;
        if rc != H_SUCCESS {
            println!("bench: lan: H_ADD_LOGICAL_LAN_BUFFER failed rc={rc}");
            return;
        }
    }
    let frame = base[0] + SEND_PAGE * PAGE;
    for (i, byte) in mac_b
        .iter()
        .chain(mac_a.iter())
        .chain([8u8, 0].iter())
        .enumerate()
    {
        // SAFETY: A's frame page, guest memory used for nothing else.
        unsafe { core::ptr::write_volatile((frame + i as u64) as *mut u8, *byte) };
    }
    let mut send = [0u64; TRIALS];
    for t in send.iter_mut() {
        let bd = VALID | FRAME << 32 | (SEND_PAGE * PAGE);
        let t0 = mftb();
        let (rc, _) = hcall8(H_SEND_LOGICAL_LAN, [a, bd, 0, 0, 0, 0, 0, 0]);
        *t = mftb() - t0;
        if rc != H_SUCCESS {
            println!("bench: lan: H_SEND_LOGICAL_LAN failed rc={rc}");
            return;
        }
    }
    // Every frame reached B: its queue's last entry used is valid.
    let last = base[1] + PAGE + 16 * (TRIALS as u64 - 1);
    // SAFETY: B's queue, written by the hypervisor, read only.
    let flags = unsafe { core::ptr::read_volatile(last as *const u8) };
    if flags & 0x40 == 0 {
        println!("bench: lan: frame {TRIALS} did not reach the other adapter");
        return;
    }
    let (mut stuff, mut put) = ([0u64; TRIALS], [0u64; TRIALS]);
    for i in 0..TRIALS {
        let ioba = (18 + (i as u64 % 550)) * PAGE;
        let tce = (base[1] + ioba) | RW;
        let t0 = mftb();
        hcall(H_STUFF_TCE, [b, ioba, 0, 1, 0, 0]);
        let t1 = mftb();
        hcall(H_PUT_TCE, [b, ioba, tce, 0, 0, 0]);
        let t2 = mftb();
        (stuff[i], put[i]) = (t1 - t0, t2 - t1);
    }
    // The same without the copy (a MAC no adapter has), and the shortest
    // full-path device call, for the parts of H_SEND_LOGICAL_LAN.
    let (mut unknown, mut signal) = ([0u64; TRIALS], [0u64; TRIALS]);
    // SAFETY: A's frame page, as above.
    unsafe { core::ptr::write_volatile(frame as *mut u8, mac_b[0] ^ 0x80) };
    for i in 0..TRIALS {
        let bd = VALID | FRAME << 32 | (SEND_PAGE * PAGE);
        let t0 = mftb();
        hcall8(H_SEND_LOGICAL_LAN, [a, bd, 0, 0, 0, 0, 0, 0]);
        let t1 = mftb();
        hcall(guest_common::papr::H_VIO_SIGNAL, [b, 0, 0, 0, 0, 0]);
        let t2 = mftb();
        (unknown[i], signal[i]) = (t1 - t0, t2 - t1);
    }
    let mut copy = [0u64; TRIALS];
    for t in copy.iter_mut() {
        let (src, dst) = (
            frame as *const u8,
            (base[0] + (SEND_PAGE + 2) * PAGE) as *mut u8,
        );
        let t0 = mftb();
        // SAFETY: two distinct pages of A's region, used for nothing else.
        unsafe { core::ptr::copy(src, dst, FRAME as usize) };
        *t = mftb() - t0;
    }
    report(
        "lan H_SEND_LOGICAL_LAN (1514 bytes into the other adapter)",
        &mut send,
    );
    report(
        "lan H_SEND_LOGICAL_LAN to a MAC no adapter has",
        &mut unknown,
    );
    report(
        "lan H_VIO_SIGNAL (the full path's shortest device call)",
        &mut signal,
    );
    report("lan H_ADD_LOGICAL_LAN_BUFFER", &mut add);
    report("lan H_STUFF_TCE (one page)", &mut stuff);
    report("lan H_PUT_TCE", &mut put);
    report("lan the guest copying 1514 bytes (memmove)", &mut copy);
}

fn bench() {
    let mut t = [0u64; TRIALS];
    for x in t.iter_mut() {
        let t0 = mftb();
        hcall(0x7f00, [0; 6]); // unknown: the shortest path through the hypervisor
        *x = mftb() - t0;
    }
    report("null hypercall round trip", &mut t);
    let mut enter = [0u64; TRIALS];
    let mut remove = [0u64; TRIALS];
    for i in 0..TRIALS {
        let v = ((0x200 + i as u64) << 12) | V_VALID;
        let r = 0x10_0000 | R_M | 2;
        let t0 = mftb();
        let (rc, out) = hcall(H_ENTER, [0, 0x80, v, r, 0, 0]);
        let t1 = mftb();
        hcall(H_REMOVE, [0, out[0], 0, 0, 0, 0]);
        let t2 = mftb();
        if rc != H_SUCCESS {
            println!("bench: H_ENTER failed rc={rc}");
            return;
        }
        enter[i] = t1 - t0;
        remove[i] = t2 - t1;
    }
    report("H_ENTER (4K page)", &mut enter);
    report("H_REMOVE (4K page, tlbiel)", &mut remove);
    // H_READ and H_PROTECT of an entered page, then H_BULK_REMOVE of four.
    let mut read = [0u64; TRIALS];
    let mut protect = [0u64; TRIALS];
    let mut bulk = [0u64; TRIALS];
    for i in 0..TRIALS {
        let mut slots = [0u64; 4];
        for (k, s) in slots.iter_mut().enumerate() {
            let v = ((0x200 + (4 * i + k) as u64) << 12) | V_VALID;
            let (rc, out) = hcall(H_ENTER, [0, 0x80, v, 0x10_0000 | R_M | 2, 0, 0]);
            if rc != H_SUCCESS {
                println!("bench: H_ENTER failed rc={rc}");
                return;
            }
            *s = out[0];
        }
        let t0 = mftb();
        let (rc_read, _) = hcall(H_READ, [0, slots[0], 0, 0, 0, 0]);
        let t1 = mftb();
        let (rc_prot, _) = hcall(H_PROTECT, [1, slots[0], 0, 0, 0, 0]);
        let t2 = mftb();
        let req = |k: usize| BULK_REQUEST | slots[k];
        let (rc_bulk, out) = hcall8(H_BULK_REMOVE, [req(0), 0, req(1), 0, req(2), 0, req(3), 0]);
        let t3 = mftb();
        let all_removed = (0..4).all(|k| out[2 * k] & (BULK_TYPE | BULK_CODE) == BULK_RESPONSE);
        if rc_read != H_SUCCESS || rc_prot != H_SUCCESS || rc_bulk != H_SUCCESS || !all_removed {
            println!("bench: H_READ/H_PROTECT/H_BULK_REMOVE failed rc={rc_read}/{rc_prot}/{rc_bulk} {out:x?}");
            return;
        }
        read[i] = t1 - t0;
        protect[i] = t2 - t1;
        bulk[i] = t3 - t2;
    }
    report("H_READ (one entry)", &mut read);
    report("H_PROTECT (tlbiel)", &mut protect);
    report("H_BULK_REMOVE (4 entries, tlbiel)", &mut bulk);
}

unsafe extern "C" {
    static __bss_end: u8;
}

/// What the hypervisor leaves alone in this guest's memory: below the
/// image (loaded at 0x400000) and from the end of its bss (the stack is
/// in it) up to the device tree, which sits right below RTAS at the top.
fn free_memory(fdt_addr: u64) -> [(u64, u64); 2] {
    // SAFETY: a linker symbol; only its address is taken.
    let bss_end = unsafe { &__bss_end as *const u8 as u64 };
    [
        (0, 0x40_0000),
        (bss_end.next_multiple_of(4096), fdt_addr & !0xfff),
    ]
}

/// Each doubleword's pattern: its address, marked.
const PATTERN: u64 = 0x5a5a_0000_0000_0000;

/// `fill`: writes the pattern over every free doubleword of memory (the
/// smoke test then gives this memory to a VM that runs `zeros`).
/// `zeros`: checks every free doubleword reads zero.
fn scrub(mode: &str, fdt_addr: u64) {
    let mut bytes = 0;
    let (mut bad, mut first) = (0u64, 0u64);
    for (start, end) in free_memory(fdt_addr) {
        if start >= end {
            continue;
        }
        bytes += end - start;
        if mode == "fill" {
            // SAFETY: memory of this guest that nothing else uses (above);
            // asm, since address 0 is the null pointer to Rust.
            unsafe {
                core::arch::asm!(
                    "1: xor {t}, {a}, {p}",
                    "std {t}, 0({a})",
                    "addi {a}, {a}, 8",
                    "cmpld {a}, {e}",
                    "blt 1b",
                    a = inout(reg_nonzero) start => _,
                    e = in(reg) end,
                    p = in(reg) PATTERN,
                    t = out(reg) _,
                    out("cr0") _,
                    options(nostack)
                );
            }
        } else {
            let (n, f): (u64, u64);
            // SAFETY: reads of this guest's own memory (above).
            unsafe {
                core::arch::asm!(
                    "1: ld {t}, 0({a})",
                    "cmpdi {t}, 0",
                    "beq 2f",
                    "cmpdi {n}, 0",
                    "bne 3f",
                    "mr {f}, {a}",
                    "3: addi {n}, {n}, 1",
                    "2: addi {a}, {a}, 8",
                    "cmpld {a}, {e}",
                    "blt 1b",
                    a = inout(reg_nonzero) start => _,
                    e = in(reg) end,
                    n = inout(reg) 0u64 => n,
                    f = inout(reg) 0u64 => f,
                    t = out(reg) _,
                    out("cr0") _,
                    options(nostack, readonly)
                );
            }
            if n > 0 && bad == 0 {
                first = f;
            }
            bad += n;
        }
    }
    match mode {
        "fill" => println!(
            "bad: fill: wrote the pattern over {} KiB of my memory",
            bytes >> 10
        ),
        _ if bad == 0 => println!(
            "bad: zeros: {} KiB of my memory read zero PASS",
            bytes >> 10
        ),
        _ => {
            // SAFETY: an address inside this guest's memory found above.
            let v = unsafe { core::ptr::read_volatile(first as *const u64) };
            println!(
                "bad: zeros: {bad} non-zero doublewords in {} KiB, first at {first:#x} = {v:#x} FAIL",
                bytes >> 10
            );
        }
    }
}

/// The guest-writable SPRs `fill` sets to a pattern and `zeros` checks
/// for it: SPRG0-3, DAR, DSISR, AMR, IAMR, UAMOR, TAR, PSPB, PMC1-6,
/// SIAR, SDAR, EBBHR, EBBRR, VRSAVE (control registers that would start
/// the PMU or EBBs are left alone).
const LEAK_SPRS: [u32; 22] = [
    272, 273, 274, 275, 19, 18, 13, 61, 157, 815, 159, 787, 788, 789, 790, 791, 792, 796, 797, 804,
    805, 256,
];

/// SPR `n`'s pattern: low 32 bits only (several are 32-bit registers),
/// below the PMCs' overflow bit.
fn spr_pattern(n: u32) -> u64 {
    0x5a5a_0000 | n as u64
}

macro_rules! spr_rw {
    ($($n:literal),*) => {
        /// Writes SPR `n` (one of LEAK_SPRS).
        fn spr_write(n: u32, v: u64) {
            match n {
                // SAFETY: a guest-writable SPR of this guest's own.
                $($n => unsafe { core::arch::asm!(concat!("mtspr ", stringify!($n), ", {0}"), in(reg) v) },)*
                _ => {}
            }
        }
        /// Reads SPR `n` (one of LEAK_SPRS).
        fn spr_read(n: u32) -> u64 {
            let mut v = 0;
            match n {
                // SAFETY: as above, a read.
                $($n => unsafe { core::arch::asm!(concat!("mfspr {0}, ", stringify!($n)), out(reg) v) },)*
                _ => {}
            }
            v
        }
    };
}
spr_rw!(
    272, 273, 274, 275, 19, 18, 13, 61, 157, 815, 159, 787, 788, 789, 790, 791, 792, 796, 797, 804,
    805, 256
);

// The FPSCR through f0 (the guests build soft-float: no FP registers
// in Rust code). MSR[FP] must be on.
core::arch::global_asm!(
    r#"
    .pushsection .text.bad_fpscr, "ax", @progbits
    .machine power8
    .balign 16
    .global __bad_fpscr_write
    __bad_fpscr_write:
        stdu 1, -32(1)
        std 3, 16(1)
        lfd 0, 16(1)
        mtfsf 0xff, 0
        addi 1, 1, 32
        blr
    .global __bad_fpscr_read
    __bad_fpscr_read:
        stdu 1, -32(1)
        mffs 0
        stfd 0, 16(1)
        ld 3, 16(1)
        addi 1, 1, 32
        blr
    .popsection
    "#
);

unsafe extern "C" {
    fn __bad_fpscr_write(v: u64);
    fn __bad_fpscr_read() -> u64;
}

/// `fill`: FP/VMX/VSX registers, FPSCR and LEAK_SPRS get patterns;
/// returns how many SPRs kept theirs. `zeros`: how many SPRs hold their
/// pattern (a leak) and whether the vector registers and FPSCR are zero.
fn registers(mode: &str) {
    if mode == "fill" {
        vsr_fill(PATTERN | 0x5a);
        // SAFETY: the guest's own FPSCR (FP is on after vsr_fill):
        // every exception-enable and rounding bit set.
        unsafe { __bad_fpscr_write(0xff) };
        let mut kept = 0;
        for n in LEAK_SPRS {
            spr_write(n, spr_pattern(n));
            let got = spr_read(n);
            if got == spr_pattern(n) {
                kept += 1;
            } else {
                println!(
                    "bad: fill: SPR {n} reads {got:#x} after {:#x} (masked)",
                    spr_pattern(n)
                );
            }
        }
        println!(
            "bad: fill: {} of {} SPRs, the FPSCR and all 64 VSRs hold patterns",
            kept,
            LEAK_SPRS.len()
        );
    } else {
        let vsr = vsr_nonzero();
        // SAFETY: reads the guest's own FPSCR (FP is on after vsr_nonzero).
        let fpscr = unsafe { __bad_fpscr_read() } & 0xffff_ffff;
        let leaked: u32 = LEAK_SPRS
            .iter()
            .map(|&n| (spr_read(n) == spr_pattern(n)) as u32)
            .sum();
        let ok = vsr == 0 && fpscr == 0 && leaked == 0;
        println!(
            "bad: zeros: {vsr} non-zero VSR doublewords, FPSCR {fpscr:#x}, {leaked} of {} SPRs hold the last VM's pattern {}",
            LEAK_SPRS.len(),
            if ok { "PASS" } else { "FAIL" }
        );
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn guest_main(fdt_addr: u64) -> ! {
    let fdt = device_tree(fdt_addr);
    let order = guest_common::hpt_order(fdt.as_ref());
    let mem = guest_common::memory_size(fdt.as_ref());
    let entries = 1u64 << (order - 4);
    let args = fdt
        .as_ref()
        .and_then(|f| f.chosen().bootargs())
        .unwrap_or("");
    if args.split_whitespace().any(|w| w == "crash") {
        // A real-mode access outside the partition's memory: the VRMA has
        // no translation for it, so the hypervisor stops this VM.
        println!("bad: reading guest-physical 1 GiB, outside my memory");
        // SAFETY: deliberately invalid; the hypervisor must contain it.
        let v = unsafe { core::ptr::read_volatile(0x4000_0000 as *const u64) };
        println!("bad: read {v:#x} outside my memory FAIL");
    }
    if args.split_whitespace().any(|w| w == "stopself") {
        // The only vcpu stops itself: nothing can start it again.
        println!("bad: stop-self on my only vcpu");
        if let Some(t) = fdt
            .as_ref()
            .and_then(|f| guest_common::rtas_token(f, "stop-self"))
        {
            guest_common::rtas_call(t, &[], 1);
        }
        println!("bad: stop-self returned FAIL");
        power_off(fdt.as_ref());
    }
    if args.split_whitespace().any(|w| w == "fwnmi") {
        fwnmi(fdt.as_ref(), mem);
    }
    if args.split_whitespace().any(|w| w == "bench") {
        bench();
        if let Some(f) = fdt.as_ref() {
            lan_bench(f);
            disk_bench(f);
        }
        power_off(fdt.as_ref());
    }
    if let Some(mode) = args
        .split_whitespace()
        .find(|w| *w == "fill" || *w == "zeros")
    {
        scrub(mode, fdt_addr);
        registers(mode);
        power_off(fdt.as_ref());
    }
    println!(
        "bad: HPT order {order} ({entries} entries), memory {} MiB",
        mem >> 20
    );

    let mut pass = 0;
    let mut fail = 0;
    let mut check = |name: &str, got: i64, want: i64| {
        if got == want {
            pass += 1;
            println!("bad: {name}: rc={got} ok");
        } else {
            fail += 1;
            println!("bad: {name}: rc={got} want {want} FAIL");
        }
    };

    // A new partition starts with zeroed FP/VMX/VSX registers, whatever
    // ran on this thread before.
    check(
        "FP/VMX/VSX registers zero at start",
        vsr_nonzero() as i64,
        0,
    );

    let (dscr, tar): (u64, u64);
    // SAFETY: reading the guest's own SPRs.
    unsafe { core::arch::asm!("mfspr {0}, 17", "mfspr {1}, 815", out(reg) dscr, out(reg) tar) };
    check("DSCR and TAR zero at start", (dscr | tar) as i64, 0);

    // CFAR after a hypercall is the guest's own last branch, never a
    // hypervisor address.
    let cfar = cfar_across_hcall();
    check(
        "CFAR after a hypercall is the guest's own",
        (cfar < mem) as i64,
        1,
    );

    // The vcpus RTAS knows: this one (id 0, running) and no other.
    if let Some(f) = fdt.as_ref() {
        let token = |n| guest_common::rtas_token(f, n).unwrap_or(0);
        let (query, start) = (token("query-cpu-stopped-state"), token("start-cpu"));
        check(
            "query-cpu-stopped-state of vcpu 0",
            guest_common::rtas_call(query, &[0], 2).into(),
            0,
        );
        check(
            "start-cpu of the running vcpu 0",
            guest_common::rtas_call(start, &[0, 0x100, 0], 1).into(),
            -1,
        );
        check(
            "start-cpu of a vcpu that does not exist",
            guest_common::rtas_call(start, &[7, 0x100, 0], 1).into(),
            -3,
        );
    }

    // The NVRAM, as RTAS nvram-fetch/-store answer for it: a fresh one
    // is one free CHRP partition; a store reads back; bytes outside it, a
    // wrong argument count (-3) and a buffer outside guest memory (-1)
    // are refused.
    if let Some(f) = fdt.as_ref() {
        let token = |n| guest_common::rtas_token(f, n).unwrap_or(0);
        let (fetch, store) = (token("nvram-fetch"), token("nvram-store"));
        let size = f
            .all_nodes()
            .find(|n| n.property("device_type").and_then(|p| p.as_str()) == Some("nvram"))
            .and_then(|n| n.property("#bytes"))
            .and_then(|p| Some(u32::from_be_bytes(p.value.get(0..4)?.try_into().ok()?)))
            .unwrap_or(0);
        let mut head = [0u8; 16];
        let buf = head.as_mut_ptr() as u32;
        let mut rets = [0i32; 2];
        guest_common::rtas_call_rets(fetch, &[0, buf, 16], 2, &mut rets);
        // SAFETY: the hypervisor wrote these 16 bytes; read them afresh.
        let head = unsafe { core::ptr::read_volatile(&head) };
        check(
            "nvram-fetch of the first header: status, length, a free partition over all of it",
            (rets == [0, 16]
                && head[0] == 0x7f
                && u32::from(u16::from_be_bytes([head[2], head[3]])) * 16 == size
                && size >= 8192) as i64,
            1,
        );
        // What the last 4 bytes held at boot (a flash boot keeps the
        // NVRAM across power-offs: the second boot finds the first's).
        let mut before = [0u8; 4];
        guest_common::rtas_call_rets(
            fetch,
            &[size - 4, before.as_mut_ptr() as u32, 4],
            2,
            &mut rets,
        );
        // SAFETY: as above.
        let before = unsafe { core::ptr::read_volatile(&before) };
        println!(
            "bad: nvram's last 4 bytes at boot: {:02x}{:02x}{:02x}{:02x}",
            before[0], before[1], before[2], before[3]
        );
        let word = [0xc0u8, 0xff, 0xee, 0x42];
        let mut back = [0u8; 4];
        guest_common::rtas_call_rets(store, &[size - 4, word.as_ptr() as u32, 4], 2, &mut rets);
        let stored = rets == [0, 4];
        guest_common::rtas_call_rets(
            fetch,
            &[size - 4, back.as_mut_ptr() as u32, 4],
            2,
            &mut rets,
        );
        // SAFETY: as above.
        let back = unsafe { core::ptr::read_volatile(&back) };
        check(
            "nvram-store then nvram-fetch of the last 4 bytes",
            (stored && rets == [0, 4] && back == word) as i64,
            1,
        );
        check(
            "nvram-fetch past the end",
            guest_common::rtas_call(fetch, &[size - 8, buf, 16], 2).into(),
            -3,
        );
        check(
            "nvram-store with two arguments",
            guest_common::rtas_call(store, &[0, buf], 2).into(),
            -3,
        );
        check(
            "nvram-fetch into a buffer outside guest memory",
            guest_common::rtas_call(fetch, &[0, mem as u32, 16], 2).into(),
            -1,
        );
    }

    // A 4K page of segment VSID 0x100 at EA 0, guest-physical 1 MiB.
    let v = (0x100u64 << 12) | V_VALID;
    let r = 0x10_0000 | R_M | 2;
    let idx = 0x40; // any PTEG; H_EXACT keeps it
    check(
        "H_ENTER index past the HPT",
        hcall(H_ENTER, [0, entries, v, r, 0, 0]).0,
        H_PARAMETER,
    );
    check(
        "H_ENTER huge index",
        hcall(H_ENTER, [0, u64::MAX, v, r, 0, 0]).0,
        H_PARAMETER,
    );
    check(
        "H_ENTER RPN past memory",
        hcall(H_ENTER, [0, idx, v, mem | R_M | 2, 0, 0]).0,
        H_PARAMETER,
    );
    check(
        "H_ENTER RPN far away",
        hcall(H_ENTER, [0, idx, v, 0x0fff_ffff_f000 | R_M, 0, 0]).0,
        H_PARAMETER,
    );
    check(
        "H_ENTER bad page size",
        hcall(H_ENTER, [0, idx, v | V_LARGE, r | 0x3000, 0, 0]).0,
        H_PARAMETER,
    );
    check(
        "H_ENTER cache-inhibited RAM",
        hcall(H_ENTER, [0, idx, v, r | R_I, 0, 0]).0,
        H_PARAMETER,
    );
    check(
        "H_REMOVE empty slot",
        hcall(H_REMOVE, [0, idx, 0, 0, 0, 0]).0,
        H_NOT_FOUND,
    );
    check(
        "H_READ index past the HPT",
        hcall(H_READ, [0, entries, 0, 0, 0, 0]).0,
        H_PARAMETER,
    );
    check(
        "H_PROTECT empty slot",
        hcall(H_PROTECT, [0, idx, 0, 0, 0, 0]).0,
        H_NOT_FOUND,
    );
    check(
        "unknown hypercall 0x7f00",
        hcall(0x7f00, [0; 6]).0,
        H_FUNCTION,
    );
    check(
        "H_BULK_REMOVE bad type",
        hcall(H_BULK_REMOVE, [0x8000_0000_0000_0000 | idx, 0, 0, 0, 0, 0]).0,
        H_PARAMETER,
    );

    let (rc, out) = hcall(H_ENTER, [H_EXACT, idx, v, r, 0, 0]);
    check("H_ENTER good", rc, H_SUCCESS);
    check("H_ENTER returns the index", out[0] as i64, idx as i64);
    check(
        "H_ENTER same slot again (H_EXACT)",
        hcall(H_ENTER, [H_EXACT, idx, v, r, 0, 0]).0,
        H_PTEG_FULL,
    );
    let (rc, out) = hcall(H_READ, [0, idx, 0, 0, 0, 0]);
    check("H_READ good", rc, H_SUCCESS);
    check(
        "H_READ gives the guest RPN back",
        (out[1] == r && out[0] == v) as i64,
        1,
    );
    check(
        "H_PROTECT good",
        hcall(H_PROTECT, [3, idx, 0, 0, 0, 0]).0,
        H_SUCCESS,
    );
    let (_, out) = hcall(H_READ, [0, idx, 0, 0, 0, 0]);
    check("H_PROTECT made it read-only", (out[1] & 3) as i64, 3);
    check(
        "H_REMOVE wrong AVPN",
        hcall(H_REMOVE, [H_AVPN, idx, (v & !0x7f) ^ 0x80, 0, 0, 0]).0,
        H_NOT_FOUND,
    );
    let (rc, out) = hcall(H_REMOVE, [H_AVPN, idx, v & !0x7f, 0, 0, 0]);
    check("H_REMOVE good", rc, H_SUCCESS);
    check("H_REMOVE returns the old V", (out[0] == v) as i64, 1);
    check(
        "H_REMOVE again",
        hcall(H_REMOVE, [0, idx, 0, 0, 0, 0]).0,
        H_NOT_FOUND,
    );

    // Hypervisor-privileged instructions: the hypervisor reflects them as
    // program interrupts into the guest's own handler, and goes on.
    check(
        "H_SET_MODE little-endian interrupts",
        install_trap_handlers(),
        H_SUCCESS,
    );
    let before = trap_log().count;
    // SAFETY: deliberately privileged: each must trap into our handler.
    unsafe {
        core::arch::asm!("mtspr 318, {0}", in(reg) 0u64); // LPCR
        core::arch::asm!("mfspr {0}, 304", out(reg) _); // HSPRG0
    }
    let log = trap_log();
    check(
        "HV-privileged mtspr/mfspr trapped",
        (log.count - before) as i64,
        2,
    );
    check(
        "... as program interrupts (0x700)",
        log.vector as i64,
        0x700,
    );
    // Privileged (bit 45) or illegal (bit 44) instruction reason.
    check(
        "... with a privileged/illegal reason",
        ((log.srr1 >> 18) & 3 != 0) as i64,
        1,
    );
    // An illegal instruction: POWER8 raises hypervisor emulation
    // assistance (0xE40); the hypervisor reflects it as a program interrupt.
    // SAFETY: deliberately illegal; the handler skips it.
    unsafe { core::arch::asm!(".long 0") };
    let log = trap_log();
    check(
        "illegal instruction trapped",
        (log.count - before) as i64,
        3,
    );
    check(
        "... reflected with the illegal-instruction reason",
        ((log.srr1 >> 19) & 1) as i64,
        1,
    );

    if fail == 0 {
        println!("bad: all {pass} checks passed");
    } else {
        println!("bad: {fail} of {} checks FAILED", pass + fail);
    }
    power_off(fdt.as_ref())
}
