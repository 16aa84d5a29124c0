//! The hypervisor firmware: skiboot's payload on POWER8 (powernv).
//!
//! `kmain` wires `arch/ppc64` (the machine) and `kernel` (the logic)
//! together in boot order.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![no_std]
#![no_main]

extern crate alloc;

mod churn;
mod cpus;
mod entry;
mod exceptions;
mod machine;
mod mem;
mod nvstore;
mod scheduler;
mod selftest;
mod stacks;
mod vm;

use kernel::console::Hooks;
use log::{error, info, warn};
use machine::{fatal, power_off, CONSOLE};
use ppc64::{cpu, opal};

#[unsafe(no_mangle)]
pub extern "C" fn kmain(fdt_addr: u64, opal_base: u64, opal_entry: u64) -> ! {
    opal::init(opal_base, opal_entry);
    machine::on_power_off(|ok| {
        if !ok {
            stacks::report_all();
        }
        cpus::print_counters();
    });
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
    exceptions::init_boot_thread();

    let boot = mem::init(fdt_addr);
    // hv.test=deaf-thread swaps the secondaries' work for one that drops
    // thread 1's: the production path carries no test check.
    let deaf = boot.args.test == Some(kernel::bootargs::TestAction::DeafThread);
    let work = match deaf {
        true => scheduler::thread_work_deaf_thread_1 as fn(&_, usize),
        false => scheduler::thread_work,
    };
    cpus::init(&boot.topology, &boot.icps, work);

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
        Some(kernel::bootargs::TestAction::StackOverflow) => selftest::stack_overflow(),
        Some(kernel::bootargs::TestAction::StuckThread) => selftest::stuck_thread(),
        Some(kernel::bootargs::TestAction::FailAlloc(k)) => mem::fail_allocation(u64::from(k)),
        Some(kernel::bootargs::TestAction::VmChurn(n)) => {
            let cores = cpus::smp().cpus.iter().map(|c| c.core).max().unwrap_or(0) + 1;
            if !churn::churn(n, cores, HELLO_GUEST) {
                power_off(false);
            }
        }
        Some(kernel::bootargs::TestAction::DeafThread) => {
            warn!(target: "hv", "test: thread 1 of every core ignores vcore work (hv.test=deaf-thread)");
        }
        _ => {}
    }
    nvstore::init(boot.flash);
    // A boot archive that cannot be read runs no guests at all.
    let archive = boot_archive(boot.initrd);
    let bad_archive = archive.is_err();
    if !bad_archive {
        // Guests' time of day: the RTC read once, before any guest runs.
        if vm::host_epoch().is_none() {
            warn!(target: "hv", "OPAL has no real-time clock: guests' get-time-of-day will fail");
        }
        run_guests(archive.ok().flatten());
    }
    if let Some(kernel::bootargs::Bench::Ipi(n)) = boot.args.bench {
        selftest::ipi_bench(n);
    }
    power_off(true)
}

/// The boot archive in the initrd, which is the archive itself (QEMU's
/// -initrd) or the flash ROOTFS container skiboot loaded from PNOR
/// (`kernel::rootfs`): `Ok(None)` without one (no initrd, or an empty
/// container: the built-in guests run), `Err` when it cannot be read
/// (said on the console).
fn boot_archive(
    initrd: Option<kernel::memmap::Range>,
) -> Result<Option<kernel::archive::Archive<'static>>, ()> {
    let Some(r) = initrd else { return Ok(None) };
    // SAFETY: the initrd range comes from /chosen, is reserved from the
    // allocator (mem.rs) and is only read.
    let bytes: &'static [u8] =
        unsafe { core::slice::from_raw_parts(r.start as *const u8, r.size() as usize) };
    let refused =
        |e: &dyn core::fmt::Display| error!(target: "archive", "{e}; running no guests from it");
    let bytes = match kernel::rootfs::unwrap(bytes) {
        Ok(None) => bytes,
        Ok(Some([])) => {
            info!(target: "archive", "flash ROOTFS holds no boot archive: running the built-in guests");
            return Ok(None);
        }
        Ok(Some(a)) => {
            info!(target: "archive", "boot archive from flash ROOTFS ({} of {} bytes)", a.len(), bytes.len());
            a
        }
        Err(e) => {
            refused(&e);
            return Err(());
        }
    };
    match kernel::archive::Archive::parse(bytes) {
        Ok(a) => {
            info!(target: "archive", "boot archive: {} files, {} bytes", a.len(), bytes.len());
            Ok(Some(a))
        }
        Err(e) => {
            refused(&e);
            Err(())
        }
    }
}

/// The hello guest's image (guests/hello), built into the firmware.
pub static HELLO_GUEST: &[u8] = include_bytes!(env!("HV_GUEST_HELLO"));

/// The guest images built into the firmware (guests/), run when no boot
/// archive is given: (name, image, memory).
static DEMO_GUESTS: &[(&str, &[u8], u64)] = &[
    ("hello", HELLO_GUEST, 64 << 20),
    ("bad", include_bytes!(env!("HV_GUEST_BAD")), 64 << 20),
];

/// Archive file `path` (`data`) as a VM loads it: as it is, or, if it is
/// gzip'd (a `vmlinux.gz` that lets Linux fit a PNOR's ROOTFS), expanded
/// into memory of the hypervisor's, once for all the VMs that name it
/// (`done`). `None`, with the reason logged, if it cannot be.
fn expand(
    path: &'static str,
    data: &'static [u8],
    done: &mut alloc::vec::Vec<(&'static str, &'static [u8])>,
) -> Option<&'static [u8]> {
    if !kernel::gzip::is_gzip(data) {
        return Some(data);
    }
    if let Some((_, bytes)) = done.iter().find(|(p, _)| *p == path) {
        return Some(bytes);
    }
    let len = kernel::gzip::expanded_len(data).filter(|n| *n > 0);
    let Some(mut pages) = len.and_then(|n| mem::Pages::new(n as u64)) else {
        log::error!(target: "archive", "{path}: no memory to expand it into ({len:?} bytes)");
        return None;
    };
    if let Err(e) = kernel::gzip::expand(data, pages.as_mut()) {
        log::error!(target: "archive", "{path}: not a good gzip file: {e:?}");
        return None;
    }
    let bytes = pages.leak();
    log::info!(target: "archive", "{path}: expanded from {} to {} KiB", data.len() >> 10, bytes.len() >> 10);
    done.push((path, bytes));
    Some(bytes)
}

/// Creates every VM first (each gets its own LPID, memory and HPT) — from
/// the boot archive's manifest when there is one, else the built-in demo
/// guests — then runs their vcores on every core at once (scheduler.rs:
/// thread 0 of each core takes vcores from one run queue).
fn run_guests(archive: Option<kernel::archive::Archive<'static>>) {
    let smp = cpus::smp();
    let cores = smp.cpus.iter().map(|c| c.core).max().unwrap_or(0) + 1;
    let threads_per_core = smp.cpus.iter().map(|c| c.thread).max().unwrap_or(0) + 1;
    let mut vms = alloc::vec::Vec::new();
    let mut configs = alloc::vec::Vec::new();
    // The VM asked to own the console (`console = yes`), by config index.
    let mut console_wanted = None;
    let manifest;
    match archive {
        Some(a) => {
            manifest = kernel::archive::parse_manifest(&a, threads_per_core as u32);
            for e in &manifest.errors {
                log::error!(target: "archive", "{e}");
            }
            let mut expanded = alloc::vec::Vec::new();
            for v in &manifest.vms {
                let Some(image) = expand(v.image_path, v.image, &mut expanded) else {
                    continue;
                };
                if v.console && console_wanted.is_none() {
                    console_wanted = Some(configs.len());
                }
                configs.push((
                    vm::VmConfig {
                        name: v.name,
                        layout: v.layout,
                        image,
                        memory: v.memory,
                        hpt_order: v.hpt_order,
                        bootargs: v.bootargs,
                        initrd: v.initrd.map(|i| i.1),
                        load_addr: v.load_addr,
                        entry_little_endian: v.entry_little_endian,
                        nvram: v.nvram,
                        net: v.net,
                        disks: v.disks.clone(),
                    },
                    v.after,
                ));
            }
            log::info!(target: "archive", "{} VMs in the manifest, {} errors", manifest.vms.len(), manifest.errors.len());
        }
        None => {
            for (name, image, mem) in DEMO_GUESTS {
                configs.push((
                    vm::VmConfig {
                        name,
                        layout: kernel::vcore::Layout {
                            vcpus: 1,
                            threads: 1,
                        },
                        image,
                        memory: *mem,
                        hpt_order: None,
                        bootargs: "",
                        initrd: None,
                        load_addr: None,
                        entry_little_endian: false,
                        nvram: kernel::nvram::GUEST_DEFAULT,
                        net: None,
                        disks: alloc::vec::Vec::new(),
                    },
                    None,
                ));
            }
        }
    }
    let mut created = alloc::vec::Vec::new();
    let mut failed = alloc::vec::Vec::new();
    for (id, (cfg, after)) in configs.into_iter().enumerate() {
        if let Some(after) = after {
            scheduler::defer(scheduler::Deferred {
                after,
                cfg,
                cores,
                id,
            });
            continue;
        }
        match vm::Vm::create(&cfg, cores, id) {
            Ok(v) => {
                vms.push(v);
                created.push((id, cfg.name));
            }
            Err(e) => {
                log::error!(target: "hv", "vm {} not created: {e}", cfg.name);
                failed.push(cfg.name);
            }
        }
    }
    for name in failed {
        scheduler::start_after(name);
    }
    // The console goes to the VM that asked for it, else the first one.
    let owner = console_wanted
        .and_then(|w| created.iter().find(|c| c.0 == w))
        .or(created.first());
    if let Some(&(id, name)) = owner {
        vm::set_console_owner(id);
        log::info!(target: "console", "input goes to vm {name} (Ctrl-] n: next VM)");
    }
    let (done, ok) = scheduler::run(vms);
    log::info!(
        target: "hv",
        "all VMs stopped: {done} ran, {ok} ok, {} not ok; {}",
        done - ok,
        churn::free()
    );
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
