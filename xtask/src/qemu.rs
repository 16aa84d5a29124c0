//! Running the firmware under QEMU through ./qemu-run.sh.

use crate::root;
use std::io::BufReader;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Replaces this process's work with `qemu-run.sh ARGS` (interactive run).
pub fn exec_run(args: &[String]) -> Result<(), String> {
    let st = Command::new(root().join("qemu-run.sh"))
        .args(args)
        .status()
        .map_err(|e| format!("qemu-run.sh: {e}"))?;
    match st.code() {
        Some(0) => Ok(()),
        Some(c) => Err(format!("qemu-run.sh exited with {c}")),
        None => Err("qemu-run.sh was killed".into()),
    }
}

/// One finished boot: exit status of qemu-run.sh and the console.
pub struct Boot {
    pub status: i32,
    pub console: String,
    pub seconds: f64,
    /// Seconds from the start at which each typing marker was seen.
    pub marks: Vec<f64>,
}

impl Boot {
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.console.lines()
    }

    /// The first line containing `marker`.
    pub fn find(&self, marker: &str) -> Option<&str> {
        self.lines().find(|l| l.contains(marker))
    }
}

/// Boots with `qemu-run.sh --no-build ARGS`, echoing nothing; returns when
/// QEMU has exited (the script enforces its own `--timeout`).
pub fn boot(args: &[&str]) -> Result<Boot, String> {
    boot_typing(args, &[])
}

/// Boots like [`boot`], typing on the serial console: for each
/// `(marker, input)` in order, waits until the console output so far
/// contains `marker` (after the previous one), then writes `input`. The
/// run stays bounded by qemu-run.sh's `--timeout`; a marker that never
/// comes leaves the rest untyped and the check that follows fails.
pub fn boot_typing(args: &[&str], script: &[(&str, &str)]) -> Result<Boot, String> {
    let mut cmd = Command::new(root().join("qemu-run.sh"));
    cmd.arg("--no-build").args(args);
    run_typing(cmd, script)
}

/// Runs `cmd` (a bounded QEMU run: qemu-run.sh, or QEMU under `timeout`)
/// in the repository root, typing `script` as [`boot_typing`] says.
pub fn run_typing(mut cmd: Command, script: &[(&str, &str)]) -> Result<Boot, String> {
    use std::io::{Read, Write};
    use std::sync::mpsc;
    let t = Instant::now();
    let name = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{name}: {e}"))?;
    let err = child.stderr.take().unwrap();
    let errt = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(err).read_to_string(&mut s);
        s
    });
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let mut out = child.stdout.take().unwrap();
    let outt = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut stdin = child.stdin.take();
    let mut seen: Vec<u8> = Vec::new();
    let mut from = 0;
    let mut step = 0;
    let mut marks = Vec::new();
    while let Ok(chunk) = rx.recv() {
        seen.extend_from_slice(&chunk);
        while let Some(&(marker, input)) = script.get(step) {
            let text = String::from_utf8_lossy(&seen[from..]);
            let Some(at) = text.find(marker) else { break };
            from += text[..at + marker.len()].len();
            marks.push(t.elapsed().as_secs_f64());
            if let Some(w) = stdin.as_mut() {
                let _ = w.write_all(input.as_bytes());
                let _ = w.flush();
            }
            step += 1;
        }
        if step == script.len() {
            // Everything typed: the console's input ends here.
            stdin = None;
        }
    }
    drop(stdin);
    let _ = outt.join();
    let st = child.wait().map_err(|e| e.to_string())?;
    let mut console = String::new();
    for l in String::from_utf8_lossy(&seen).split('\n') {
        console.push_str(l.trim_end_matches('\r'));
        console.push('\n');
    }
    console.push_str(&errt.join().unwrap_or_default());
    Ok(Boot {
        status: st.code().unwrap_or(-1),
        console,
        seconds: t.elapsed().as_secs_f64(),
        marks,
    })
}

/// `cargo xtask dtb --cores N --threads N --memory SIZE OUT`: boots with
/// `hv.dumpfdt` and writes the device tree the payload received.
pub fn dump_dtb(args: &[String]) -> Result<(), String> {
    let (out, qargs) = args.split_last().ok_or("missing output file")?;
    crate::build::build(false)?;
    let mut a: Vec<&str> = qargs.iter().map(|s| s.as_str()).collect();
    a.extend(["--append", "hv.dumpfdt", "--timeout", "120"]);
    let b = boot(&a)?;
    let blob = parse_dump(&b.console)?;
    std::fs::write(out, &blob).map_err(|e| format!("{out}: {e}"))?;
    eprintln!("xtask: wrote {} bytes to {out}", blob.len());
    Ok(())
}

/// Reassembles `fdt: dump OFFSET HEX` lines.
pub fn parse_dump(console: &str) -> Result<Vec<u8>, String> {
    let mut total = None;
    let mut blob = Vec::new();
    for l in console.lines() {
        let Some((_, rest)) = l.split_once("fdt: dump ") else {
            continue;
        };
        if let Some(n) = rest.strip_prefix("begin ") {
            total = n
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<usize>().ok());
            continue;
        }
        if rest.starts_with("end") {
            break;
        }
        let (off, hex) = rest.split_once(' ').ok_or("bad dump line")?;
        let off = usize::from_str_radix(off, 16).map_err(|e| e.to_string())?;
        if off != blob.len() {
            return Err(format!(
                "dump line at {off:#x} out of order (have {:#x})",
                blob.len()
            ));
        }
        for i in (0..hex.len()).step_by(2) {
            blob.push(u8::from_str_radix(&hex[i..i + 2], 16).map_err(|e| e.to_string())?);
        }
    }
    match total {
        Some(t) if t == blob.len() => Ok(blob),
        Some(t) => Err(format!("dump has {} of {t} bytes", blob.len())),
        None => Err("no `fdt: dump begin` in the console output".into()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dump_lines_reassemble_and_gaps_are_refused() {
        let c = "x\n[ 1.0] fdt: dump begin 3 bytes\n[ 1.1] fdt: dump 000000 d00d\n[ 1.2] fdt: dump 000002 fe\n[ 1.3] fdt: dump end\n";
        assert_eq!(super::parse_dump(c).unwrap(), vec![0xd0, 0x0d, 0xfe]);
        let gap = "fdt: dump begin 3 bytes\nfdt: dump 000000 d00d\nfdt: dump 000003 fe\n";
        assert!(super::parse_dump(gap).is_err());
        assert!(super::parse_dump("nothing").is_err());
    }
}
