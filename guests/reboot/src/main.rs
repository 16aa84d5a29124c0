//! The reboot guest: counts its boots in memory that survives a reboot,
//! leaves a mapping in its HPT and reboots through RTAS `system-reboot`;
//! after each reboot it checks the HPT came back empty. After the third
//! boot it powers off.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![no_std]
#![no_main]

use guest_common::papr::{H_ENTER, H_EXACT, H_READ};
use guest_common::{device_tree, hcall, power_off, println, rtas_call, rtas_token};

/// Guest-physical address of the boot counter (above the image, below the
/// device tree; the hypervisor keeps guest memory across a reboot).
const COUNTER: u64 = 0x20_0000;
const MAGIC: u64 = 0x7265_626f_6f74_0000; // "reboot\0\0"
const BOOTS: u64 = 3;

const INDEX: u64 = 0x100;

#[unsafe(no_mangle)]
pub extern "C" fn guest_main(fdt_addr: u64) -> ! {
    let fdt = device_tree(fdt_addr);
    let p = COUNTER as *mut u64;
    // SAFETY: COUNTER is inside this guest's memory, unused by anything else.
    let prev = unsafe { core::ptr::read_volatile(p) };
    let boot = if prev & !0xffff == MAGIC {
        (prev & 0xffff) + 1
    } else {
        1
    };
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(p, MAGIC | boot) };
    println!("reboot: boot #{boot}");
    if boot > 1 {
        let (rc, out) = hcall(H_READ, [0, INDEX, 0, 0, 0, 0]);
        if rc == 0 && out[0] & 1 == 0 {
            println!("reboot: HPT entry from the previous boot is gone");
        } else {
            println!(
                "reboot: HPT entry survived the reboot (rc={rc} v={:#x}) FAIL",
                out[0]
            );
        }
    }
    if boot >= BOOTS {
        println!("reboot: {BOOTS} boots done");
        power_off(fdt.as_ref());
    }
    // A valid 4K mapping that a reboot must clear.
    let v = (0x300u64 << 12) | 1;
    let r = 0x10_0000 | 0x10 | 2;
    let (rc, _) = hcall(H_ENTER, [H_EXACT, INDEX, v, r, 0, 0]);
    println!("reboot: H_ENTER rc={rc}, rebooting");
    match fdt.as_ref().and_then(|f| rtas_token(f, "system-reboot")) {
        Some(t) => {
            rtas_call(t, &[], 1);
            println!("reboot: system-reboot returned FAIL");
        }
        None => println!("reboot: no system-reboot token FAIL"),
    }
    power_off(fdt.as_ref())
}
