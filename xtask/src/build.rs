//! Building the firmware image and checking it.

use crate::root;
use std::path::PathBuf;
use std::process::Command;

pub const TARGET: &str = "ppc64le-hv";

/// Test guests (crate, binary) built before the firmware, which embeds them.
pub const GUESTS: &[(&str, &str)] = &[
    ("guest-hello", "hello"),
    ("guest-bad", "bad"),
    ("guest-reboot", "reboot"),
    ("guest-mmu", "mmu"),
    ("guest-smp", "smp"),
    ("guest-fuzz", "fuzz"),
    ("guest-escape", "escape"),
];

/// Builds the test guests into build/guests/NAME.elf.
pub fn build_guests() -> Result<(), String> {
    let root = root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = root.join("build/guests");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    for (krate, bin) in GUESTS {
        let st = Command::new(&cargo)
            .current_dir(&root)
            .args([
                "build",
                "--release",
                "--package",
                krate,
                "--target",
                &format!("{TARGET}.json"),
            ])
            .args([
                "-Zjson-target-spec",
                "-Zbuild-std=core,alloc,compiler_builtins",
                "-Zbuild-std-features=compiler-builtins-mem",
            ])
            .status()
            .map_err(|e| format!("running {cargo}: {e}"))?;
        if !st.success() {
            return Err(format!("guest {krate} build failed"));
        }
        let elf = root.join("target").join(TARGET).join("release").join(bin);
        // Embedded in the firmware and packed in boot archives: no debug info.
        strip(&elf, &out.join(format!("{bin}.elf")))?;
    }
    Ok(())
}

/// Copies `from` to `to` without debug sections.
fn strip(from: &std::path::Path, to: &std::path::Path) -> Result<(), String> {
    let st = Command::new("powerpc64le-linux-gnu-strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(to)
        .arg(from)
        .status()
        .map_err(|e| format!("powerpc64le-linux-gnu-strip: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("stripping {} failed", from.display()))
    }
}

/// Builds the firmware; returns the path of the ELF image.
pub fn build(debug: bool) -> Result<PathBuf, String> {
    build_guests()?;
    let root = root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&root).args([
        "build",
        "--package",
        "boot",
        "--target",
        &format!("{TARGET}.json"),
        "-Zjson-target-spec",
        "-Zbuild-std=core,alloc,compiler_builtins",
        "-Zbuild-std-features=compiler-builtins-mem",
    ]);
    if !debug {
        cmd.arg("--release");
    }
    let st = cmd.status().map_err(|e| format!("running {cargo}: {e}"))?;
    if !st.success() {
        return Err("firmware build failed".into());
    }
    let elf = root
        .join("target")
        .join(TARGET)
        .join(if debug { "debug" } else { "release" })
        .join("hvfw");
    check_image(&elf)?;
    if !debug {
        // The image to flash: same load layout, without debug sections.
        let out = root.join("build");
        std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
        let flash = out.join("bootkernel.elf");
        strip(&elf, &flash)?;
        let n = std::fs::metadata(&flash).map(|m| m.len()).unwrap_or(0);
        eprintln!(
            "xtask: flashable image {} ({} KiB)",
            flash.display(),
            n.div_ceil(1024)
        );
    }
    Ok(elf)
}

/// Mnemonics that share a forbidden prefix but move special-purpose
/// registers, not FP state: FSCR (facility status and control) moves.
const NOT_FP: &[&str] = &["mtfscr", "mffscr"];

fn is_fp_or_vector(mnem: &str) -> bool {
    !NOT_FP.contains(&mnem) && FORBIDDEN.iter().any(|p| mnem.starts_with(p))
}

/// The only functions allowed FP/vector instructions: saving and loading a
/// guest's FP/VMX/VSX registers (arch/ppc64/src/fpu.rs).
const FP_ALLOWED_IN: &[&str] = &["__fp_state_save", "__fp_state_load"];

/// Mnemonic prefixes of floating-point, VMX and VSX instructions. The
/// firmware is soft-float and must not touch FP/vector state (it would
/// trap with MSR[FP]=0, and guests' FP state must never be clobbered).
const FORBIDDEN: &[&str] = &[
    "lfd", "lfs", "stfd", "stfs", "lfiw", "stfiw", "mffs", "mtfs", "fmr", "fadd", "fsub", "fmul",
    "fdiv", "fmadd", "fmsub", "fnm", "fcmp", "fctid", "fctiw", "fcfid", "frsp", "fsel", "fabs",
    "fneg", "fsqrt", "fre", "frsqrt", "lvx", "lvs", "lve", "stvx", "stve", "mfvscr", "mtvscr",
    "lxv", "lxs", "lxsd", "stxv", "stxs", "mfvsr", "mtvsr", "xxl", "xxs", "xxm", "xxp", "xsc",
    "xsa", "xsm", "xsd", "xvc", "xva", "xvm", "xvd", "vadd", "vsub", "vxor", "vor", "vand",
    "vperm", "vsel", "vsplt", "vsl", "vsr", "vcmp", "vmul", "vmax", "vmin",
];

fn objdump() -> &'static str {
    "powerpc64le-linux-gnu-objdump"
}

/// Disassembles the image and refuses FP/vector instructions; prints size.
pub fn check_image(elf: &PathBuf) -> Result<(), String> {
    let out = Command::new(objdump())
        .args(["-d", "--no-show-raw-insn"])
        .arg(elf)
        .output()
        .map_err(|e| format!("running {} (run scripts/setup.sh): {e}", objdump()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            objdump(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut insns = 0usize;
    let mut bad = Vec::new();
    let mut allowed = 0usize;
    let mut func = String::new();
    for line in text.lines() {
        // "0000000020001234 <symbol>:" starts a function.
        if let Some(name) = line
            .strip_suffix(">:")
            .and_then(|l| l.split_once(" <"))
            .map(|(_, n)| n)
        {
            func = name.to_string();
            continue;
        }
        // "  20000080:\tmnemonic operands"
        let Some((_, rest)) = line.split_once(":\t") else {
            continue;
        };
        let mnem = rest.split_whitespace().next().unwrap_or("");
        insns += 1;
        if is_fp_or_vector(mnem) {
            if FP_ALLOWED_IN.contains(&func.as_str()) {
                allowed += 1;
            } else {
                bad.push(format!("{func}: {}", line.trim()));
            }
        }
    }
    if insns < 1000 {
        return Err(format!(
            "disassembly of {} has only {insns} instructions",
            elf.display()
        ));
    }
    if !bad.is_empty() {
        return Err(format!(
            "{} FP/vector instruction(s) in the image, first: {}",
            bad.len(),
            bad[..bad.len().min(5)].join(" | ")
        ));
    }
    let sz = Command::new("powerpc64le-linux-gnu-size").arg(elf).output();
    let loaded = sz
        .ok()
        .and_then(|o| {
            let s = String::from_utf8_lossy(&o.stdout).to_string();
            let l = s
                .lines()
                .nth(1)?
                .split_whitespace()
                .take(3)
                .map(|v| v.parse::<u64>().ok())
                .collect::<Option<Vec<_>>>()?;
            Some(l)
        })
        .map(|v| {
            format!(
                "text {} KiB, data {} KiB, bss {} KiB",
                v[0] / 1024,
                v[1] / 1024,
                v[2] / 1024
            )
        })
        .unwrap_or_default();
    let file = std::fs::metadata(elf).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "xtask: image {} ({} KiB file; {loaded}); {insns} instructions, no FP/vector outside the {allowed} in {}",
        elf.display(),
        file / 1024,
        FP_ALLOWED_IN.join("/")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_list_catches_fp_and_vector_but_not_integer_ops() {
        let hit = is_fp_or_vector;
        for m in [
            "lfd", "stfdu", "fmul", "xxlxor", "lxvd2x", "stxvd2x", "vaddubm", "mfvsrd", "mtfsf",
            "mffs",
        ] {
            assert!(hit(m), "{m}");
        }
        for m in [
            "ld", "std", "xor", "xori", "lwz", "stw", "mflr", "mtspr", "or", "and", "subf",
            "mtfscr", "mffscr",
        ] {
            assert!(!hit(m), "{m}");
        }
    }
}
