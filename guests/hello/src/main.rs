//! The hello guest: reads its device tree, greets on the hvterm console
//! and powers its partition off through RTAS.
#![no_std]
#![no_main]

use guest_common::{device_tree, power_off, println, vsr_fill};

#[unsafe(no_mangle)]
pub extern "C" fn guest_main(fdt_addr: u64) -> ! {
    let fdt = device_tree(fdt_addr);
    let args = fdt
        .as_ref()
        .and_then(|f| f.chosen().bootargs())
        .unwrap_or("");
    let mem: u64 = fdt
        .as_ref()
        .map(|f| {
            f.memory()
                .regions()
                .map(|r| r.size.unwrap_or(0) as u64)
                .sum()
        })
        .unwrap_or(0);
    println!(
        "hello: guest running, {} MiB, bootargs \"{}\"",
        mem >> 20,
        args
    );
    // Leave a secret in the FP/VMX/VSX registers: no other partition may
    // ever see it (the bad guest checks, on the same thread with one core).
    vsr_fill(0x5ec2_e75e_c2e7_5ec2);
    power_off(fdt.as_ref())
}
