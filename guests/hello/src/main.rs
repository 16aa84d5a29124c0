//! The hello guest: reads its device tree, greets on the hvterm console
//! and powers its partition off through RTAS.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![no_std]
#![no_main]

use guest_common::papr::H_RTAS;
use guest_common::{device_tree, power_off, println, rtas_token, vsr_fill};

#[unsafe(no_mangle)]
pub extern "C" fn guest_main(fdt_addr: u64) -> ! {
    let fdt = device_tree(fdt_addr);
    let args = fdt
        .as_ref()
        .and_then(|f| f.chosen().bootargs())
        .unwrap_or("");
    let mem = guest_common::memory_size(fdt.as_ref());
    // `quiet` (the hypervisor's VM churn test): straight to power-off.
    if args.split_whitespace().any(|w| w == "quiet") {
        power_off(fdt.as_ref());
    }
    println!(
        "hello: guest running, {} MiB, bootargs \"{}\"",
        mem >> 20,
        args
    );
    // vtermno 0 is the first vty (Linux's early-debug console writes
    // there, as on QEMU's pseries); a vtermno that names no vty is refused.
    let rc = guest_common::put_bytes_to(0, b"hello: early-debug console (vtermno 0) works\n");
    let none = guest_common::vtermno() + 1;
    let refused = guest_common::put_bytes_to(none, b"x");
    println!("hello: vtermno 0 answered {rc}, vtermno {none:#x} (no vty) answered {refused}");
    // RTAS get-time-of-day: status, year, month, day, hour, min, sec, ns.
    if let Some(t) = fdt.as_ref().and_then(|f| rtas_token(f, "get-time-of-day")) {
        let mut buf = [0u32; 11];
        buf[0] = t.to_be();
        buf[2] = 8u32.to_be();
        guest_common::hcall(H_RTAS, [buf.as_ptr() as u64, 0, 0, 0, 0, 0]);
        let r = |i: usize| u32::from_be(buf[3 + i]);
        println!(
            "hello: get-time-of-day status {} {:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            r(0) as i32,
            r(1),
            r(2),
            r(3),
            r(4),
            r(5),
            r(6)
        );
    }
    // Leave a secret in the FP/VMX/VSX registers: no other partition may
    // ever see it (the bad guest checks, on the same thread with one core).
    vsr_fill(0x5ec2_e75e_c2e7_5ec2);
    // ... and in DSCR and TAR (switched per partition by the hypervisor).
    // SAFETY: the guest's own SPRs.
    unsafe {
        core::arch::asm!("mtspr 17, {0}", "mtspr 815, {1}", in(reg) 0x15u64, in(reg) 0x5ec2_e75e_c2e7_5ec0u64)
    };
    power_off(fdt.as_ref())
}
