//! Boot archives (cpio newc: a `manifest` plus guest images) for the smoke
//! tests and for users: `cargo xtask archive DIR OUT.cpio` packs the files
//! of DIR (which must hold a `manifest`).

use crate::root;
use std::path::{Path, PathBuf};

fn guest(name: &str) -> Result<Vec<u8>, String> {
    let p = root().join("build/guests").join(format!("{name}.elf"));
    std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))
}

fn write(name: &str, files: &[(&str, &[u8])]) -> Result<PathBuf, String> {
    let dir = root().join("build/archives");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let out = dir.join(format!("{name}.cpio"));
    std::fs::write(&out, kernel::archive::build_newc(files))
        .map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}

/// Hypercalls per seed in the `fuzz` archive (two seeds).
pub const FUZZ_CALLS: u64 = 100_000;

/// The archives the smoke tests boot with (built guests must exist).
pub fn prepare() -> Result<(), String> {
    let hello = guest("hello")?;
    let bad = guest("bad")?;
    let reboot = guest("reboot")?;
    let mmu = guest("mmu")?;
    let smp = guest("smp")?;
    let fuzz = guest("fuzz")?;
    let escape = guest("escape")?;
    // The escape catalogue, the hello guest and a guest that spins for
    // ever without a hypercall, on one core (the smoke test runs it so).
    write(
        "escape",
        &[
            ("manifest", b"[vm escape]\nmemory = 64M\nimage = escape.elf\nnet = escape\ndisk = scratch 1M\n\n[vm hello]\nmemory = 16M\nimage = hello.elf\nnet = escape\n\n[vm spinner]\nmemory = 16M\nimage = escape.elf\nbootargs = spin\n"),
            ("escape.elf", &escape),
            ("hello.elf", &hello),
        ],
    )?;
    // Hypercall fuzzing: two seeds one after the other on one core, a
    // neighbour on the other re-checking its memory and HPT until the
    // test types `q` (it has the console once the fuzzers have stopped).
    write(
        "fuzz",
        &[
            ("manifest", format!("[vm fuzz-1]\nmemory = 64M\nimage = fuzz.elf\nbootargs = seed=1 calls={FUZZ_CALLS}\nnet = fuzz\ndisk = scratch 1M\n\n[vm other]\nmemory = 64M\nimage = fuzz.elf\nbootargs = neighbour\nnet = fuzz\ndisk = scratch 1M\n\n[vm fuzz-2]\nmemory = 64M\nimage = fuzz.elf\nbootargs = seed=2 calls={FUZZ_CALLS}\nafter = fuzz-1\nnet = fuzz\ndisk = scratch 1M\n").as_bytes()),
            ("fuzz.elf", &fuzz),
        ],
    )?;
    // Three VMs on two cores: two SMP guests of two 1-thread vcores each
    // and a one-vcore guest changing its HPT (tlbiel) from whichever core
    // it is on, time-sliced and migrating.
    write(
        "three-vms",
        &[
            ("manifest", b"[vm smp-a]\nmemory = 64M\nimage = smp.elf\nvcpus = 2\n\n[vm smp-b]\nmemory = 64M\nimage = smp.elf\nvcpus = 2\n\n[vm paging]\nmemory = 32M\nimage = mmu.elf\nbootargs = rounds=40\n"),
            ("smp.elf", &smp),
            ("mmu.elf", &mmu),
        ],
    )?;
    // system-reboot of an SMP guest of two vcores.
    write(
        "smp-reboot",
        &[
            ("manifest", b"[vm smpreboot]\nmemory = 64M\nimage = smp.elf\nvcpus = 4\nthreads = 2\nbootargs = reboot\n"),
            ("smp.elf", &smp),
        ],
    )?;
    // Benchmarks (cargo xtask bench): round trips between the vcpus of
    // one SMT4 vcore alone on the machine, and two busy SMT4 vcores
    // time-sliced on one core (vcore entry and exit).
    write(
        "smp-bench",
        &[
            ("manifest", b"[vm smpbench]\nmemory = 64M\nimage = smp.elf\nvcpus = 4\nthreads = 4\nbootargs = bench\n"),
            ("smp.elf", &smp),
        ],
    )?;
    write(
        "vcore-bench",
        &[
            ("manifest", b"[vm spin]\nmemory = 64M\nimage = smp.elf\nvcpus = 8\nthreads = 4\nbootargs = spin\n"),
            ("smp.elf", &smp),
        ],
    )?;
    // The SMP guest as one SMT4 vcore, as two SMT4 vcores (both cores),
    // and as four 1-thread vcores on the two cores (time-sliced).
    for (name, vcpus, threads) in [("smp4x1", 4, 4), ("smp4x2", 8, 4), ("smp1x4", 4, 1)] {
        let manifest = format!(
            "[vm {name}]\nmemory = 64M\nimage = smp.elf\nvcpus = {vcpus}\nthreads = {threads}\n"
        );
        write(
            name,
            &[("manifest", manifest.as_bytes()), ("smp.elf", &smp)],
        )?;
    }
    write(
        "crash",
        &[
            ("manifest", b"[vm crasher]\nmemory = 16M\nimage = bad.elf\nbootargs = crash\n\n[vm survivor]\nmemory = 16M\nimage = hello.elf\n\n[vm nmi]\nmemory = 16M\nimage = bad.elf\nbootargs = fwnmi\n\n[vm stopper]\nmemory = 16M\nimage = bad.elf\nbootargs = stopself\n"),
            ("bad.elf", &bad),
            ("hello.elf", &hello),
        ],
    )?;
    // Fault injection: one VM whose HPT comes from the pool, one from the
    // page allocator (hv.test=fail-alloc:K walks their allocations).
    write(
        "fail-alloc",
        &[
            ("manifest", b"[vm pooled]\nmemory = 16M\nhpt_order = 24\nimage = hello.elf\n\n[vm paged]\nmemory = 16M\nimage = hello.elf\n"),
            ("hello.elf", &hello),
        ],
    )?;
    write(
        "hello",
        &[
            (
                "manifest",
                b"[vm hello]\nmemory = 16M\nimage = hello.elf\nbootargs = alone\n",
            ),
            ("hello.elf", &hello),
        ],
    )?;
    write(
        "bad",
        &[
            ("manifest", b"[vm bad]\nmemory = 16M\nimage = bad.elf\n"),
            ("bad.elf", &bad),
        ],
    )?;
    write(
        "mmu",
        &[
            ("manifest", b"[vm paging]\nmemory = 32M\nimage = mmu.elf\n"),
            ("mmu.elf", &mmu),
        ],
    )?;
    write(
        "reboot",
        &[
            (
                "manifest",
                b"[vm rebooter]\nmemory = 16M\nimage = reboot.elf\n",
            ),
            ("reboot.elf", &reboot),
        ],
    )?;
    write(
        "two-vms",
        &[
            (
                "manifest",
                b"# two guests, one per core\n[vm greeter]\nmemory = 32M\nimage = hello.elf\nbootargs = from the archive\n\n[vm checker]\nmemory = 64M\nimage = bad.elf\n",
            ),
            ("hello.elf", &hello),
            ("bad.elf", &bad),
        ],
    )?;
    write(
        "scrub",
        &[
            (
                "manifest",
                b"# the second VM gets the first one's memory once it has stopped\n[vm filler]\nmemory = 64M\nimage = bad.elf\nbootargs = fill\n\n[vm checker]\nmemory = 64M\nimage = bad.elf\nbootargs = zeros\nafter = filler\n",
            ),
            ("bad.elf", &bad),
        ],
    )?;
    write(
        "bench",
        &[
            (
                "manifest",
                b"[vm hcalls]\nmemory = 16M\nimage = bad.elf\nbootargs = bench\nnet = bench bench\ndisk = scratch 1M\n",
            ),
            ("bad.elf", &bad),
        ],
    )?;
    write(
        "hpt-fallback",
        &[
            (
                "manifest",
                b"[vm big-hpt]\nmemory = 16M\nhpt_order = 34\nimage = hello.elf\n",
            ),
            ("hello.elf", &hello),
        ],
    )?;
    write(
        "malformed",
        &[
            (
                "manifest",
                b"[vm notelf]\nmemory = 16M\nimage = manifest\n\n[vm good]\nmemory = 16M\nimage = hello.elf\n\n[vm broken]\nmemroy = 16M\nimage = hello.elf\n\n[vm smt]\nvcpus = 6\nthreads = 4\nmemory = 16M\nimage = hello.elf\n\n[vm missing]\nmemory = 16M\nimage = nothere.elf\n",
            ),
            ("hello.elf", &hello),
        ],
    )?;
    Ok(())
}

/// `cargo xtask archive DIR OUT.cpio`
pub fn pack(args: &[String]) -> Result<(), String> {
    let [dir, out] = args else {
        return Err("usage: cargo xtask archive DIR OUT.cpio".into());
    };
    let dir = Path::new(dir);
    if !dir.join("manifest").is_file() {
        return Err(format!("{} has no `manifest`", dir.display()));
    }
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let data: Vec<(String, Vec<u8>)> = names
        .into_iter()
        .map(|n| {
            std::fs::read(dir.join(&n))
                .map(|d| (n, d))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    let files: Vec<(&str, &[u8])> = data
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    std::fs::write(out, kernel::archive::build_newc(&files)).map_err(|e| format!("{out}: {e}"))?;
    eprintln!("xtask: wrote {out} ({} files)", files.len());
    Ok(())
}
