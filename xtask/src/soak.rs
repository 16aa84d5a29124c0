//! `cargo xtask soak`: the long versions of the robustness tests that the
//! test command runs bounded. Host fuzzing of the boot archive, manifest,
//! ELF loader, device tree and boot arguments (kernel/tests/fuzz.rs) with
//! 1,000,000 cases each in release mode.
//!
//!   cargo xtask soak [--cases N] [--seed S]
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
    step(
        &format!("host fuzzing: {cases} cases per reader, seed {seed}"),
        cargo()
            .args(["test", "--release", "--package", "kernel", "--test", "fuzz"])
            .args(["--", "--nocapture", "--test-threads", "2"])
            .env("HV_FUZZ_CASES", cases.to_string())
            .env("HV_FUZZ_SEED", seed.to_string()),
    )
}
