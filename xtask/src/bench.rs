//! `cargo xtask bench`: boots the firmware under `-icount shift=0,sleep=off`
//! (the timebase then advances with the instruction count, so figures are
//! deterministic) with benchmark boot arguments, and prints the figures as
//! a Markdown table for BENCHMARKS.md.

use crate::qemu::boot;

/// Each benchmark: name, boot arguments.
const BENCHES: &[(&str, &[&str])] = &[
    ("ipi", &["--append", "hv.bench=ipi:1000"]),
    ("hcall", &["--initrd", "build/archives/bench.cpio"]),
];

pub fn bench(args: &[String]) -> Result<(), String> {
    crate::build::build(false)?;
    crate::archives::prepare()?;
    let only = args.first();
    println!("| benchmark | path | median | min | max | trials |");
    println!("|---|---|---|---|---|---|");
    for (name, bargs) in BENCHES
        .iter()
        .filter(|(n, _)| only.is_none_or(|o| n.contains(o.as_str())))
    {
        let mut a: Vec<&str> = bargs.to_vec();
        a.extend(["--timeout", "300", "--", "-icount", "shift=0,sleep=off"]);
        let b = boot(&a)?;
        if b.status != 0 {
            return Err(format!(
                "benchmark {name}: exit status {}\n{}",
                b.status, b.console
            ));
        }
        let mut rows = 0;
        for l in b.lines() {
            let Some((_, rest)) = l.split_once("bench: ") else {
                continue;
            };
            // "ipi same-core send->handler PIR 0x8->0x9: median=208 min=207 max=208 ticks (1000 trials)"
            let Some((path, figs)) = rest.split_once(": median=") else {
                continue;
            };
            let num = |key: &str| -> String {
                figs.split_whitespace()
                    .find_map(|w| w.strip_prefix(key))
                    .unwrap_or("?")
                    .to_string()
            };
            let median = figs.split_whitespace().next().unwrap_or("?");
            let trials = figs
                .split('(')
                .nth(1)
                .and_then(|t| t.split_whitespace().next())
                .unwrap_or("?");
            println!(
                "| {name} | {path} | {median} | {} | {} | {trials} |",
                num("min="),
                num("max=")
            );
            rows += 1;
        }
        if rows == 0 {
            return Err(format!(
                "benchmark {name} printed no `bench:` line\n{}",
                b.console
            ));
        }
    }
    println!("\nTimebase ticks (512 MHz timebase; under -icount shift=0 one instruction is 1 ns, i.e. 0.512 ticks).");
    Ok(())
}
