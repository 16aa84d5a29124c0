//! `cargo xtask soak`: the long versions of the robustness tests that the
//! test command runs bounded:
//!
//! - host fuzzing of the boot archive, manifest, flash ROOTFS container,
//!   ELF loader, device tree and boot arguments (kernel/tests/fuzz.rs),
//!   1,000,000 cases each in release mode;
//! - the hypercall fuzzing guest: 2,500,000 calls on one vcpu, then
//!   2,500,000 over the four vcpus of one SMT4 vcore, while the neighbour
//!   VM on the other core re-checks its memory and HPT.
//!
//!   cargo xtask soak [--cases N] [--calls N] [--seed S]
//!
//! The seed defaults to the time of day and is printed; `--seed` repeats
//! a run.

use crate::smoke::{cargo, step};

pub fn soak(args: &[String]) -> Result<(), String> {
    let value = |name: &str, default: u64| -> Result<u64, String> {
        match args.iter().position(|a| a == name) {
            None => Ok(default),
            Some(i) => args
                .get(i + 1)
                .and_then(|v| v.parse().ok())
                .ok_or(format!("{name} needs a number")),
        }
    };
    let cases = value("--cases", 1_000_000)?;
    // A new seed each run (the bounded test run always uses its fixed
    // one); it is printed, and `--seed` repeats a run.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs());
    let seed = value("--seed", now)?;
    let calls = value("--calls", GUEST_CALLS)?;
    step(
        &format!("host fuzzing: {cases} cases per reader, seed {seed}"),
        cargo()
            .args(["test", "--release", "--package", "kernel", "--test", "fuzz"])
            .args(["--", "--nocapture", "--test-threads", "2"])
            .env("HV_FUZZ_CASES", cases.to_string())
            .env("HV_FUZZ_SEED", seed.to_string()),
    )?;
    guest_fuzzing(seed, calls)
}

/// Hypercalls the soak's fuzzing guests make: half on one vcpu, half
/// over an SMT4 vcore.
const GUEST_CALLS: u64 = 5_000_000;

fn guest_fuzzing(seed: u64, calls: u64) -> Result<(), String> {
    eprintln!(
        "xtask: == hypercall fuzzing: {calls} calls, seeds {seed} and {}",
        seed + 1
    );
    crate::build::build(false)?;
    let half = calls / 2;
    let smt = half / 4 * 4;
    let fuzz =
        std::fs::read(crate::root().join("build/guests/fuzz.elf")).map_err(|e| e.to_string())?;
    let manifest = format!(
        "[vm fuzz-1]\nmemory = 64M\nimage = fuzz.elf\nbootargs = seed={seed} calls={half}\n\n\
         [vm other]\nmemory = 64M\nimage = fuzz.elf\nbootargs = neighbour\n\n\
         [vm fuzz-smt]\nmemory = 64M\nvcpus = 4\nthreads = 4\nimage = fuzz.elf\nbootargs = seed={} calls={smt}\nafter = fuzz-1\n",
        seed + 1
    );
    let dir = crate::root().join("build/archives");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let path = dir.join("fuzz-soak.cpio");
    std::fs::write(
        &path,
        kernel::archive::build_newc(&[("manifest", manifest.as_bytes()), ("fuzz.elf", &fuzz)]),
    )
    .map_err(|e| e.to_string())?;
    let t = std::time::Instant::now();
    let b = crate::qemu::boot_typing(
        &["--initrd", &path.to_string_lossy(), "--timeout", "3600"],
        &[("hv: vm fuzz-smt lpid=", "q")],
    )?;
    let verdict = if b.status != 0 {
        Err(format!("qemu-run.sh exit status {}", b.status))
    } else {
        crate::smoke::fuzz_run_passed(
            &b,
            &[("fuzz-1", seed, half), ("fuzz-smt", seed + 1, smt)],
            3,
        )
    };
    for l in b
        .lines()
        .filter(|l| l.contains("fuzz: seed ") || l.contains("neighbour: "))
    {
        eprintln!("{l}");
    }
    match verdict {
        Ok(()) => {
            eprintln!(
                "xtask: soak: {} hypercalls fuzzed in {:.0} s, no anomaly, neighbour intact",
                half + smt,
                t.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Err(e) => Err(format!("hypercall fuzzing: {e}")),
    }
}
