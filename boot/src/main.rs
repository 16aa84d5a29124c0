//! The hypervisor firmware: skiboot's payload on POWER8 (powernv).
//!
//! `kmain` wires `arch/ppc64` (the machine) and `kernel` (the logic)
//! together in boot order.
#![no_std]
#![no_main]

extern crate alloc;

mod entry;
mod mem;
mod selftest;
mod smp;
mod trap;
mod vm;

use kernel::console::{Console, Hooks};
use log::{error, info, warn};
use ppc64::{cpu, opal};

pub static CONSOLE: Console = Console::new();

/// Prints the final status line and powers the machine off.
pub fn power_off(ok: bool) -> ! {
    smp::print_counters();
    // Printed without a level tag: runners match these exact markers.
    if ok {
        info!(target: "hv", "power off (ok)");
    } else {
        info!(target: "hv", "power off (failure)");
    }
    opal::power_down()
}

/// Stops the boot with a message naming what went wrong.
pub fn fatal(args: core::fmt::Arguments<'_>) -> ! {
    error!(target: "hv", "fatal: {args}");
    power_off(false)
}

#[unsafe(no_mangle)]
pub extern "C" fn kmain(fdt_addr: u64, opal_base: u64, opal_entry: u64) -> ! {
    opal::init(opal_base, opal_entry);
    CONSOLE.init(Hooks {
        write: opal::console_write,
        ticks: cpu::mftb,
        cpu_id: || cpu::pir() as u64,
    });
    // Cannot fail: this is the only logger and it is set once.
    let _ = log::set_logger(&CONSOLE);
    log::set_max_level(log::LevelFilter::Info);
    info!(
        target: "hv",
        "POWER8 hypervisor firmware {} starting on PIR {:#x}, device tree at {:#x}, OPAL at {:#x}",
        env!("CARGO_PKG_VERSION"),
        cpu::pir(),
        fdt_addr,
        opal_base
    );

    // Hypervisor interrupts must arrive little-endian before the vectors
    // (little-endian code) can take any.
    let rc = opal::reinit_cpus_hile_le();
    if rc != opal::OPAL_SUCCESS {
        fatal(format_args!("OPAL_REINIT_CPUS(HILE_LE) failed: rc={rc}"));
    }
    trap::init_boot_thread();

    let boot = mem::init(fdt_addr);
    smp::init(&boot.topology, &boot.icps);

    match boot.args.test {
        Some(kernel::bootargs::TestAction::Panic) => {
            warn!(target: "hv", "test: panicking on request (hv.test=panic)");
            panic!("deliberate panic requested by hv.test=panic");
        }
        Some(kernel::bootargs::TestAction::Trap) => {
            warn!(target: "hv", "test: executing trap on request (hv.test=trap)");
            cpu::trap();
            fatal(format_args!("returned from a deliberate trap"));
        }
        Some(kernel::bootargs::TestAction::Ipi(n)) if !selftest::ipi_test(n) => power_off(false),
        Some(kernel::bootargs::TestAction::Resume) if !selftest::resume_test() => power_off(false),
        _ => {}
    }
    run_demo_guests();
    if let Some(kernel::bootargs::Bench::Ipi(n)) = boot.args.bench {
        selftest::ipi_bench(n);
    }
    power_off(true)
}

/// The guest images built into the firmware (guests/), run when no boot
/// archive is given.
static HELLO_ELF: &[u8] = include_bytes!(env!("HV_GUEST_HELLO"));

fn run_demo_guests() {
    let core = smp::me().core;
    let cores = smp::smp().cpus.iter().map(|c| c.core).max().unwrap_or(0) + 1;
    match vm::Vm::create("hello", HELLO_ELF, 64 << 20, "", cores) {
        Ok(mut v) => {
            let o = v.run(core);
            v.destroy(&o);
        }
        Err(e) => log::error!(target: "hv", "vm hello not created: {e}"),
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    use core::sync::atomic::{AtomicBool, Ordering};
    static PANICKING: AtomicBool = AtomicBool::new(false);
    if PANICKING.swap(true, Ordering::SeqCst) {
        // A panic while reporting a panic: just stop.
        opal::power_down();
    }
    match info.location() {
        Some(l) => error!(
            target: "hv",
            "panic at {}:{}:{}: {}",
            l.file(),
            l.line(),
            l.column(),
            info.message()
        ),
        None => error!(target: "hv", "panic: {}", info.message()),
    }
    power_off(false)
}
