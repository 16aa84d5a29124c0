//! Host-side tool: `cargo xtask <command>`.
//!
//! - `build`  builds the firmware image and checks it (no FP/vector code)
//! - `run`    boots it under QEMU (same as ./qemu-run.sh)
//! - `test`   host unit tests, lint, firmware build, QEMU smoke tests
//! - `bench`  deterministic benchmarks under -icount
//! - `pnor`   a PNOR flash image with the firmware (and a boot archive)
//! - `soak`   the long robustness runs (host fuzzing: 1,000,000 cases each)
//! - `dtb`    captures the device tree skiboot hands over, as a fixture

mod archives;
mod bench;
mod build;
mod linux;
mod pnor;
mod qemu;
mod smoke;
mod soak;

use std::path::PathBuf;
use std::process::ExitCode;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: cargo xtask <command>\n\
         \n  build [--debug]          build and check the firmware image\
         \n  run [qemu-run.sh args]   boot the firmware under QEMU\
         \n  test [--no-lint] [--only NAME]\
         \n                           host tests, lint, image build, QEMU smoke tests\
         \n  archive DIR OUT.cpio     pack DIR (manifest + images) as a boot archive\
         \n  linux                    fetch Debian's kernel + busybox, build build/archives/linux.cpio\
         \n  pnor [--firmware ELF] [--archive FILE] [--out IMAGE]\
         \n                           64 MiB PNOR image (build/pnor.img) for flash boots\
         \n  bench [NAME]             deterministic benchmarks (-icount), Markdown table\
         \n  soak [--cases N] [--seed S]\
         \n                           long robustness runs (host fuzzing, N cases per reader)\
         \n  dtb --cores N --threads N --memory SIZE OUT.dtb\
         \n                           save the device tree skiboot passes to the payload"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        return usage();
    };
    let rest = &args[1..];
    let r = match cmd.as_str() {
        "build" => build::build(rest.iter().any(|a| a == "--debug")).map(|_| ()),
        "run" => qemu::exec_run(rest),
        "test" => smoke::test(rest),
        "dtb" => qemu::dump_dtb(rest),
        "bench" => bench::bench(rest),
        "soak" => soak::soak(rest),
        "archive" => archives::pack(rest),
        "linux" => linux::command(rest),
        "pnor" => pnor::command(rest),
        _ => return usage(),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}
