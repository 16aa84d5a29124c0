//! `cargo xtask bench`: boots the firmware under `-icount shift=0,sleep=off`
//! (the timebase then advances with the instruction count, so figures are
//! deterministic) with benchmark boot arguments, and prints the figures as
//! a Markdown table for BENCHMARKS.md.

use crate::qemu::{boot, boot_typing, run_typing, Boot};
use std::process::Command;

/// Each benchmark: name, boot arguments.
const BENCHES: &[(&str, &[&str])] = &[
    ("ipi", &["--append", "hv.bench=ipi:1000"]),
    ("hcall", &["--initrd", "build/archives/bench.cpio"]),
    ("smp", &["--initrd", "build/archives/smp-bench.cpio"]),
    (
        "vcore",
        &[
            "--cores",
            "1",
            "--initrd",
            "build/archives/vcore-bench.cpio",
        ],
    ),
];

pub fn bench(args: &[String]) -> Result<(), String> {
    crate::build::build(false)?;
    let only = args.first();
    if only.is_some_and(|o| o == "linux") {
        return linux();
    }
    if only.is_some_and(|o| o == "linux-smp") {
        return linux_smp();
    }
    if only.is_some_and(|o| o == "net") {
        return net();
    }
    if only.is_some_and(|o| o == "disk") {
        return disk();
    }
    crate::archives::prepare()?;
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
            // A guest's "bench: PATH: median=…", or the hypervisor's vcore
            // timings "vcore: vm NAME: PATH: median=…".
            let Some((_, rest)) = l
                .split_once("bench: ")
                .or_else(|| l.split_once("vcore: vm "))
            else {
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

/// Where a Linux boot ends for the benchmark: the `/init` marker, then
/// `poweroff -f` at the shell prompt.
const LINUX_SCRIPT: &[(&str, &str)] =
    &[(crate::linux::SHELL_MARKER, ""), ("/ # ", "poweroff -f\n")];

/// The same on this hypervisor, which also marks when the VM is created
/// (the guest's first instruction follows that line).
const LINUX_SCRIPT_HV: &[(&str, &str)] = &[
    ("vm: linux: lpid", ""),
    (crate::linux::SHELL_MARKER, ""),
    ("/ # ", "poweroff -f\n"),
];

/// One Linux boot's figures.
struct LinuxRun {
    /// Wall seconds from QEMU's start to the `/init` marker.
    wall: f64,
    /// Wall seconds from the guest's start to the marker.
    guest_wall: f64,
    /// The kernel's uptime at the marker (`/proc/uptime`, printed by /init).
    uptime: f64,
}

fn linux_run(b: &Boot, what: &str, created: bool) -> Result<LinuxRun, String> {
    let fail = |why: &str| format!("{what}: {why} (exit status {})\n{}", b.status, b.console);
    // With `created`, the first mark is the VM's creation; the next is
    // the shell marker.
    let start = if created {
        b.marks.first().copied()
    } else {
        Some(0.0)
    };
    let marker = b.marks.get(usize::from(created)).copied();
    let (Some(start), Some(wall)) = (start, marker) else {
        return Err(fail("no shell marker"));
    };
    // "init: 6.1.0-50-powerpc64le up 1.20 s, 1 cpus"
    let uptime = b
        .lines()
        .find_map(|l| {
            l.split_once("init: ")?
                .1
                .split_once(" up ")?
                .1
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .ok_or_else(|| fail("no `init: ... up N s` line"))?;
    Ok(LinuxRun {
        wall,
        guest_wall: wall - start,
        uptime,
    })
}

/// QEMU's own pseries machine booting the same kernel and initramfs, lean
/// (no firmware images needed: VOF instead of SLOF), bounded by `timeout`.
fn pseries(icount: bool, smp: Option<&str>) -> Result<Boot, String> {
    let vmlinux = crate::linux::cache().join("vmlinux");
    let initrd = crate::linux::initramfs()?;
    let mut c = Command::new("timeout");
    c.args([
        "300",
        "qemu-system-ppc64",
        "-M",
        "pseries,x-vof=on",
        "-cpu",
        "POWER8",
        "-m",
        "1G",
    ])
    .args(["-display", "none", "-nodefaults", "-vga", "none"])
    .args([
        "-chardev",
        "stdio,id=con0,signal=off",
        "-device",
        "spapr-vty,chardev=con0",
    ])
    .arg("-kernel")
    .arg(vmlinux)
    .arg("-initrd")
    .arg(initrd)
    .args(["-append", "console=hvc0"]);
    if let Some(s) = smp {
        c.args(["-smp", s]);
    }
    if icount {
        c.args(["-icount", "shift=0,sleep=off"]);
    }
    run_typing(c, LINUX_SCRIPT)
}

/// Seconds between the hypervisor's `archive: … VMs in the manifest` line
/// and the `vm: linux: lpid` line (the VM is made; its first instruction
/// follows), from the console's own timestamps.
fn creation_seconds(b: &Boot) -> Result<f64, String> {
    let stamp = |marker: &str| {
        b.lines()
            .find(|l| l.contains(marker))
            .and_then(|l| {
                l.strip_prefix('[')?
                    .split_once(']')?
                    .0
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .ok_or(format!("no `{marker}` line with a timestamp"))
    };
    Ok(stamp("vm: linux: lpid")? - stamp("VMs in the manifest")?)
}

/// `cargo xtask bench linux`: the Debian kernel of `cargo xtask linux`
/// (1 vcpu, 1 GiB) on this hypervisor and on QEMU's pseries machine, in
/// the same run, once under plain TCG (wall time) and once under
/// `-icount shift=0,sleep=off` (uptime = instructions executed, 1 ns each);
/// the same with 4 vcpus as one SMT4 vcore against pseries' `-smp
/// 4,threads=4` under `-icount`; the time to create the 1 GiB VM, with
/// memory that reads zero left alone and with `hv.ram=unknown` (every
/// byte zeroed, as on POWER8 silicon); then the hypervisor's hypercall
/// histogram of the boot.
fn linux() -> Result<(), String> {
    crate::linux::prepare()?;
    println!("| mode | machine | wall, QEMU start to /init marker (s) | wall, guest start to marker (s) | kernel uptime at marker (s) |");
    println!("|---|---|---|---|---|");
    let mut histogram = Vec::new();
    let mut creation = Vec::new();
    for (icount, smp) in [(false, None), (true, None), (true, Some("4,threads=4"))] {
        let mode = match (icount, smp) {
            (false, _) => "TCG".to_string(),
            (true, None) => "-icount shift=0,sleep=off".to_string(),
            (true, Some(s)) => format!("-icount shift=0,sleep=off, -smp {s}"),
        };
        let archive = match smp {
            None => "build/archives/linux.cpio",
            Some(_) => "build/archives/linux-smp4.cpio",
        };
        let mut a = vec!["--initrd", archive, "--timeout", "300"];
        if icount {
            a.extend(["--", "-icount", "shift=0,sleep=off"]);
        }
        let ours = boot_typing(&a, LINUX_SCRIPT_HV)?;
        let o = linux_run(&ours, "this hypervisor", true)?;
        if ours.status != 0 {
            return Err(format!(
                "this hypervisor: exit status {}\n{}",
                ours.status, ours.console
            ));
        }
        if !icount {
            creation.push((
                "memory that reads zero is not zeroed",
                creation_seconds(&ours)?,
            ));
        }
        let q = linux_run(&pseries(icount, smp)?, "QEMU pseries", false)?;
        for (m, r) in [("this hypervisor (powernv8)", &o), ("QEMU pseries", &q)] {
            println!(
                "| {mode} | {m} | {:.2} | {:.2} | {:.2} |",
                r.wall, r.guest_wall, r.uptime
            );
        }
        println!(
            "| {mode} | ratio | {:.2} | {:.2} | {:.2} |",
            o.wall / q.wall,
            o.guest_wall / q.guest_wall,
            o.uptime / q.uptime
        );
        if icount && smp.is_none() {
            histogram = ours
                .lines()
                .filter_map(|l| {
                    l.split_once("hcall: vm linux: ")
                        .map(|(_, r)| r.to_string())
                })
                .collect();
            if let Some(stop) = ours.find("hv: vm linux lpid=") {
                println!("\n{}", stop.split_once("hv: ").map_or(stop, |(_, r)| r));
            }
        }
    }
    // The same VM made with every byte of its memory zeroed.
    let all = boot_typing(
        &[
            "--initrd",
            "build/archives/linux.cpio",
            "--timeout",
            "300",
            "--append",
            "hv.ram=unknown",
        ],
        LINUX_SCRIPT_HV,
    )?;
    creation.push(("hv.ram=unknown: all of it zeroed", creation_seconds(&all)?));
    println!("\n| creating the 1 GiB VM (TCG wall, manifest line to the VM's line) | seconds |\n|---|---|");
    for (what, secs) in &creation {
        println!("| {what} | {secs:.3} |");
    }
    println!("\n| hypercall | count |\n|---|---|");
    for h in histogram {
        if let Some((name, n)) = h.rsplit_once(' ') {
            println!("| {name} | {n} |");
        }
    }
    Ok(())
}

/// One stress run: the guest's uptime when its work was done and the
/// wall time of the whole QEMU run.
struct StressRun {
    uptime: f64,
    wall: f64,
}

/// "stress: done: every check passed (N of N) at 22.85 s of uptime, …"
fn stress_run(b: &Boot, what: &str) -> Result<StressRun, String> {
    let uptime = b
        .lines()
        .find_map(|l| {
            l.split_once(crate::linux::STRESS_DONE)?
                .1
                .split_once(") at ")?
                .1
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .ok_or_else(|| {
            format!(
                "{what}: the stress work did not finish (exit status {})\n{}",
                b.status, b.console
            )
        })?;
    Ok(StressRun {
        uptime,
        wall: b.seconds,
    })
}

/// `cargo xtask bench linux-smp`: the stress work of the smoke tests at
/// full size (`Stress::FULL`) on this hypervisor and on QEMU's pseries
/// with the same kernel and initramfs, in the same run: 1 vcpu, 4 vcpus
/// in one SMT4 vcore, 8 vcpus in two, 768 MiB each; under TCG and under
/// `-icount shift=0,sleep=off`. Prints the guest's uptime when the work
/// was done, the wall time of the run, and their ratios.
fn linux_smp() -> Result<(), String> {
    use crate::linux::{stress_archive, stress_initramfs, Stress};
    let layouts: [(&str, u32, u32, &str); 3] = [
        ("1 vcpu", 1, 1, "1"),
        ("4 vcpus, one SMT4 vcore", 4, 4, "4,threads=4"),
        ("8 vcpus, two SMT4 vcores", 8, 4, "8,threads=4"),
    ];
    let initrd = stress_initramfs("-full", Stress::FULL)?;
    println!("| mode | layout | uptime here (s) | uptime pseries (s) | ratio | wall here (s) | wall pseries (s) | ratio |");
    println!("|---|---|---|---|---|---|---|---|");
    for icount in [false, true] {
        let mode = if icount {
            "-icount shift=0,sleep=off"
        } else {
            "TCG"
        };
        for (name, vcpus, threads, smp) in layouts {
            let archive = stress_archive(
                &format!("stress-bench-{vcpus}"),
                &[("stress", vcpus, threads)],
                "768M",
                Stress::FULL,
                "-full",
            )?;
            let archive = archive.to_string_lossy().into_owned();
            let mut a = vec!["--initrd", archive.as_str(), "--timeout", "1800"];
            if icount {
                a.extend(["--", "-icount", "shift=0,sleep=off"]);
            }
            let ours = stress_run(&boot(&a)?, "this hypervisor")?;
            let mut c = Command::new("timeout");
            c.args(["1800", "qemu-system-ppc64", "-M", "pseries,x-vof=on"])
                .args(["-cpu", "POWER8", "-m", "768M", "-smp", smp])
                .args(["-display", "none", "-nodefaults", "-vga", "none"])
                .args(["-chardev", "stdio,id=con0,signal=off"])
                .args(["-device", "spapr-vty,chardev=con0"])
                .arg("-kernel")
                .arg(crate::linux::cache().join("vmlinux"))
                .arg("-initrd")
                .arg(&initrd)
                .args(["-append", "console=hvc0"]);
            if icount {
                c.args(["-icount", "shift=0,sleep=off"]);
            }
            let q = stress_run(&run_typing(c, &[])?, "QEMU pseries")?;
            println!(
                "| {mode} | {name} | {:.1} | {:.1} | {:.2} | {:.1} | {:.1} | {:.2} |",
                ours.uptime,
                q.uptime,
                ours.uptime / q.uptime,
                ours.wall,
                q.wall,
                ours.wall / q.wall
            );
        }
    }
    Ok(())
}

/// What one network benchmark run measured.
struct NetRun {
    /// `net-a` -> `net-b` over TCP: bytes, guest seconds (uptime).
    bytes: f64,
    seconds: f64,
    /// `net-a` -> `net-b` ping round trip, mean of 20 (ms).
    rtt: f64,
}

/// The figures of `net-a`'s and `net-b`'s lines in `console`.
fn net_run(console: &str, what: &str) -> Result<NetRun, String> {
    let fail = |why: &str| format!("{what}: {why}\n{console}");
    for vm in ["net-a", "net-b"] {
        let done = format!("{} in {vm}", crate::linux::NET_DONE);
        if !console.lines().any(|l| l.contains(&done)) {
            return Err(fail(&format!("{vm} did not pass its checks")));
        }
    }
    let after = |key: &str| {
        console
            .lines()
            .find_map(|l| Some(l.split_once(key)?.1.to_string()))
            .ok_or_else(|| fail(&format!("no '{key}' line")))
    };
    let sent = after("net: net-a: sent ")?;
    let words: Vec<&str> = sent.split_whitespace().collect();
    let num = |w: Option<&&str>| w.and_then(|w| w.parse::<f64>().ok());
    let (bytes, seconds) = (num(words.first()), num(words.get(3)));
    // "round-trip min/avg/max = 0.391/0.529/1.103 ms"
    let ping = after("net: net-a: ping round-trip min/avg/max = ")?;
    let rtt = ping.split('/').nth(1).and_then(|w| w.parse::<f64>().ok());
    match (bytes, seconds, rtt) {
        (Some(bytes), Some(seconds), Some(rtt)) => Ok(NetRun {
            bytes,
            seconds,
            rtt,
        }),
        _ => Err(fail(&format!("unreadable figures: '{sent}', '{ping}'"))),
    }
}

/// A free TCP/UDP port number on the host's loopback.
fn free_port() -> Result<u16, String> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(s.local_addr().map_err(|e| e.to_string())?.port())
}

/// `net-a` and `net-b` as two QEMU pseries machines, each with an
/// spapr-vlan adapter, joined by a UDP socket netdev.
fn pseries_net(initrd: &std::path::Path) -> Result<String, String> {
    let (pa, pb) = (free_port()?, free_port()?);
    let run = |name: &str, mac: &str, local: u16, remote: u16| {
        let mut c = Command::new("timeout");
        c.args(["900", "qemu-system-ppc64", "-M", "pseries,x-vof=on"])
            .args(["-cpu", "POWER8", "-m", "256M"])
            .args(["-display", "none", "-nodefaults", "-vga", "none"])
            .args(["-chardev", "stdio,id=con0,signal=off"])
            .args(["-device", "spapr-vty,chardev=con0"])
            .args([
                "-netdev",
                &format!("socket,id=n0,udp=127.0.0.1:{remote},localaddr=127.0.0.1:{local}"),
            ])
            .args(["-device", &format!("spapr-vlan,netdev=n0,mac={mac}")])
            .arg("-kernel")
            .arg(crate::linux::cache().join("vmlinux"))
            .arg("-initrd")
            .arg(initrd)
            .args(["-append", &format!("console=hvc0 netname={name}")]);
        std::thread::spawn(move || run_typing(c, &[]))
    };
    let a = run("net-a", "52:54:00:00:00:0a", pa, pb);
    let b = run("net-b", "52:54:00:00:00:0b", pb, pa);
    let join = |h: std::thread::JoinHandle<Result<Boot, String>>| {
        h.join().map_err(|_| "a QEMU thread panicked".to_string())?
    };
    let (a, b) = (join(a)?, join(b)?);
    Ok(format!("{}\n{}", a.console, b.console))
}

/// `cargo xtask bench net`: two Linux VMs on one virtual LAN (the smoke
/// test's kernel, ibmveth and `/init`, without the reboot): ping round
/// trip and TCP throughput of `nc` from `net-a` to `net-b`, against two
/// QEMU pseries machines with spapr-vlan adapters joined by a UDP socket
/// (same kernel, same initramfs, same run) under TCG; then this
/// hypervisor alone under `-icount shift=0,sleep=off`. Seconds are the
/// guests' (uptime).
fn net() -> Result<(), String> {
    const SEQ: u32 = 1_500_000;
    let vms = [("net-a", "lan0"), ("net-b", "lan0")];
    let archive = crate::linux::net_archive("net-bench", &vms, SEQ, false)?;
    let initrd = crate::linux::net_initramfs("net-bench", SEQ, false)?;
    let archive = archive.to_string_lossy().into_owned();
    println!("| mode | machine | TCP net-a -> net-b (MB/s) | ping round trip (ms) |");
    println!("|---|---|---|---|");
    for icount in [false, true] {
        let mode = if icount {
            "-icount shift=0,sleep=off"
        } else {
            "TCG"
        };
        let mut a = vec!["--initrd", archive.as_str(), "--timeout", "900"];
        if icount {
            a.extend(["--", "-icount", "shift=0,sleep=off"]);
        }
        let ours = boot(&a)?;
        let mut runs = vec![(
            "this hypervisor (powernv8)",
            net_run(&ours.console, "this hypervisor")?,
        )];
        // Two QEMU processes under -icount sleep=off each warp their own
        // clock while idle (a guest waiting for the other sees its
        // timers fire early): pseries is compared under TCG only.
        if !icount {
            runs.push((
                "QEMU pseries",
                net_run(&pseries_net(&initrd)?, "QEMU pseries")?,
            ));
        }
        for (m, r) in &runs {
            println!(
                "| {mode} | {m} | {:.2} | {:.3} |",
                r.bytes / r.seconds / 1e6,
                r.rtt
            );
        }
    }
    println!(
        "\nThe hypervisor's cost per frame, uncontended: `cargo xtask bench hcall` (its lan rows)."
    );
    Ok(())
}

/// One disk benchmark run's figures (guest seconds).
struct DiskRun {
    write: f64,
    read: f64,
    random: f64,
}

/// The figures of the `disk-bench:` line in `console`.
fn disk_run(console: &str, what: &str) -> Result<DiskRun, String> {
    let fail = |why: &str| format!("{what}: {why}\n{console}");
    if console.contains("disk-bench: WRONG") {
        return Err(fail("a step failed"));
    }
    // "disk-bench: /dev/sda write 128 MiB 3.1 s read 128 MiB 2.2 s random 300 x 4 KiB 1.9 s"
    let line = console
        .lines()
        .find_map(|l| Some(l.split_once(crate::linux::DISK_BENCH)?.1.to_string()))
        .ok_or_else(|| fail("no disk-bench line"))?;
    let w: Vec<&str> = line.split_whitespace().collect();
    let num = |i: usize| w.get(i).and_then(|x| x.parse::<f64>().ok());
    match (num(4), num(9), num(16)) {
        (Some(write), Some(read), Some(random)) => Ok(DiskRun {
            write,
            read,
            random,
        }),
        _ => Err(fail(&format!("unreadable figures: '{line}'"))),
    }
}

/// `cargo xtask bench disk`: a Linux VM with a RAM-backed disk (`disk =
/// scratch 256M`) writes 128 MiB and syncs, reads them back with the page
/// cache dropped, and makes 300 direct 4 KiB reads at pseudo-random
/// offsets; against QEMU's pseries with spapr-vscsi and a scsi-hd on a
/// 256 MiB raw file (same kernel, same initramfs, same run), under TCG;
/// then this hypervisor alone under `-icount shift=0,sleep=off`; then a
/// flash disk (`disk = flash bench`, 16 MiB, 8 MiB written and read, 100
/// random reads), booted from a PNOR image. Seconds are the guest's
/// (uptime). The hypervisor's cost per request: `cargo xtask bench
/// hcall` (its disk rows).
fn disk() -> Result<(), String> {
    const MIB: u32 = 128;
    const READS: u32 = 300;
    let ram =
        crate::linux::disk_bench_archive("disk-bench", "disk = scratch 256M", MIB, READS, false)?;
    let ram = ram.to_string_lossy().into_owned();
    let initrd = crate::linux::disk_bench_initramfs("disk-bench", MIB, READS)?;
    println!("| mode | machine | disk | write + sync (MB/s) | read (MB/s) | random 4 KiB reads (per s) |");
    println!("|---|---|---|---|---|---|");
    let row = |mode: &str, m: &str, disk: &str, mib: u32, reads: u32, r: &DiskRun| {
        let mb = f64::from(mib) * 1.048_576;
        println!(
            "| {mode} | {m} | {disk} | {:.3} | {:.1} | {:.0} |",
            mb / r.write,
            mb / r.read,
            f64::from(reads) / r.random
        );
    };
    for icount in [false, true] {
        let mode = if icount {
            "-icount shift=0,sleep=off"
        } else {
            "TCG"
        };
        let mut a = vec!["--initrd", ram.as_str(), "--timeout", "900"];
        if icount {
            a.extend(["--", "-icount", "shift=0,sleep=off"]);
        }
        let ours = boot(&a)?;
        row(
            mode,
            "this hypervisor (powernv8)",
            "scratch, RAM",
            MIB,
            READS,
            &disk_run(&ours.console, "this hypervisor")?,
        );
        if !icount {
            let img = crate::root().join("target/tmp/disk-bench.img");
            std::fs::create_dir_all(img.parent().unwrap()).map_err(|e| e.to_string())?;
            let f = std::fs::File::create(&img).map_err(|e| e.to_string())?;
            f.set_len(256 << 20).map_err(|e| e.to_string())?;
            let mut c = Command::new("timeout");
            c.args(["900", "qemu-system-ppc64", "-M", "pseries,x-vof=on"])
                .args(["-cpu", "POWER8", "-m", "512M"])
                .args(["-display", "none", "-nodefaults", "-vga", "none"])
                .args(["-chardev", "stdio,id=con0,signal=off"])
                .args(["-device", "spapr-vty,chardev=con0"])
                .args(["-device", "spapr-vscsi,id=scsi0"])
                .args([
                    "-drive",
                    &format!("file={},if=none,id=d0,format=raw", img.display()),
                ])
                .args(["-device", "scsi-hd,drive=d0,bus=scsi0.0"])
                .arg("-kernel")
                .arg(crate::linux::cache().join("vmlinux"))
                .arg("-initrd")
                .arg(&initrd)
                .args(["-append", "console=hvc0"]);
            let p = run_typing(c, &[])?;
            row(
                mode,
                "QEMU pseries",
                "scsi-hd, raw file",
                MIB,
                READS,
                &disk_run(&p.console, "QEMU pseries")?,
            );
        }
    }
    // A flash disk, from a PNOR image (TCG).
    const FLASH_MIB: u32 = 8;
    const FLASH_READS: u32 = 100;
    let flash = crate::linux::disk_bench_archive(
        "disk-bench-flash",
        "disk = flash bench",
        FLASH_MIB,
        FLASH_READS,
        true,
    )?;
    let img = crate::root().join("build/flash/disk-bench.img");
    crate::pnor::command(&[
        "--firmware".into(),
        crate::root()
            .join("build/bootkernel.elf")
            .to_string_lossy()
            .into_owned(),
        "--archive".into(),
        flash.to_string_lossy().into_owned(),
        "--disk".into(),
        "bench=16M".into(),
        "--out".into(),
        img.to_string_lossy().into_owned(),
    ])?;
    let img = img.to_string_lossy().into_owned();
    let b = boot(&["--flash", img.as_str(), "--timeout", "900"])?;
    row(
        "TCG",
        "this hypervisor (powernv8)",
        "flash (PNOR), 16 MiB",
        FLASH_MIB,
        FLASH_READS,
        &disk_run(&b.console, "flash disk")?,
    );
    println!("\nThe hypervisor's cost per request, uncontended: `cargo xtask bench hcall` (its disk rows).");
    Ok(())
}
