//! `cargo xtask pnor`: a 64 MiB OpenPOWER PNOR image holding this firmware
//! in `BOOTKERNEL` and, optionally, a boot archive in `ROOTFS`.
//!
//! The format is skiboot's FFS v1 (`libflash/ffs.h`, `libflash/libffs.c`):
//! a table of contents (TOC) at offset 0 — a 48-byte header and 128-byte
//! entries, every field big-endian, each header and entry closed by a
//! checksum word that makes the XOR of all its words zero — and the
//! partitions it names, in units of 4 KiB erase blocks. Partitions flagged
//! ECC carry one ECC byte after every 8 data bytes (`libflash/ecc.c`).
//!
//! The layout is side A of op-build's 64 MiB POWER8 layout
//! (`p8Layouts/defaultPnorLayoutWithoutGoldenSide.xml` of open-power/pnor),
//! offsets, sizes and flags unchanged, with its backup TOC at the end of
//! side A; `ROOTFS`, which skiboot loads as the payload's initramfs, takes
//! the second 32 MiB where side B would be, but for its last MiB:
//! `GUESTNVRAM`, where the firmware keeps guests' NVRAMs. Guest flash
//! disks (`--disk NAME=SIZE`: partitions `DISK-NAME`, kernel::scsi::flash)
//! are carved from the end of `ROOTFS`, which shrinks by as much. Hostboot's partitions are
//! there, erased (with correct ECC where flagged), so the image lists as a
//! real PNOR does (all but `CAPP`: see [`LAYOUT`]); QEMU's powernv does
//! not run hostboot, and skiboot on it reads `NVRAM`, `BOOTKERNEL` and
//! `ROOTFS`.

use crate::root;
use std::path::{Path, PathBuf};

/// Total size of the image: a 64 MiB PNOR.
pub const FLASH_SIZE: u32 = 64 << 20;
/// Erase block: every base and size is a whole number of them.
pub const BLOCK_SIZE: u32 = 0x1000;
/// Space for one TOC (`part`, and its copy `BACKUP_PART`).
pub const TOC_SIZE: u32 = 0x8000;

use kernel::ffs::{
    ENTRY_INTEG, ENTRY_LEN, HEADER_LEN as HDR_LEN, INTEG_ECC, MAGIC as FFS_MAGIC, NAME_MAX,
    VERSION_1 as FFS_VERSION_1,
};
const PID_TOPLEVEL: u32 = 0xffff_ffff;
const TYPE_DATA: u32 = 1;
const TYPE_PARTITION: u32 = 3;

/// Partition flags (the user word's `vercheck` and `miscflags` of
/// `libflash/ffs.h`), as `pflash -i` prints them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Flags {
    pub ecc: bool,
    pub vercheck: u8,
    pub misc: u8,
}

const VER_SHA512: u8 = 0x80; // L
const VER_SHA512_PER_EC: u8 = 0x40; // I
const MISC_PRESERVED: u8 = 0x80; // P
const MISC_READONLY: u8 = 0x40; // R
const MISC_BACKUP: u8 = 0x20; // B
const MISC_REPROVISION: u8 = 0x10; // F

const fn f(ecc: bool, vercheck: u8, misc: u8) -> Flags {
    Flags {
        ecc,
        vercheck,
        misc,
    }
}

/// What a partition holds in the image.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Content {
    /// The table of contents (`part`, `BACKUP_PART`).
    Toc,
    /// The firmware ELF (skiboot's kernel resource).
    Firmware,
    /// The boot archive in its container (skiboot's initramfs resource).
    Rootfs,
    /// skiboot's NVRAM, formatted as skiboot formats it.
    Nvram,
    /// The `VERSION` text.
    Version,
    /// Erased: another firmware component's place, empty here.
    Erased,
    /// A guest flash disk: its index in [`Inputs::disks`].
    Disk(usize),
}

/// One partition of the layout.
#[derive(Clone, Copy, Debug)]
pub struct Part {
    pub name: &'static str,
    pub base: u32,
    pub size: u32,
    pub flags: Flags,
    pub content: Content,
}

const fn p(name: &'static str, base: u32, size: u32, flags: Flags, content: Content) -> Part {
    Part {
        name,
        base,
        size,
        flags,
        content,
    }
}

const E: bool = true;
const N: bool = false;
use Content::*;

/// The layout, in flash order (see the module text for where it is from).
pub const LAYOUT: &[Part] = &[
    p("part", 0, TOC_SIZE, f(N, 0, 0), Toc),
    p("HBEL", 0x8000, 0x24000, f(E, 0, MISC_REPROVISION), Erased),
    p(
        "GUARD",
        0x2c000,
        0x5000,
        f(E, 0, MISC_PRESERVED | MISC_REPROVISION),
        Erased,
    ),
    p("HBD", 0x31000, 0x60000, f(E, 0, 0), Erased),
    p("DJVPD", 0x91000, 0x48000, f(E, 0, MISC_REPROVISION), Erased),
    p("MVPD", 0xd9000, 0x90000, f(E, 0, MISC_REPROVISION), Erased),
    p("CVPD", 0x169000, 0x48000, f(E, 0, MISC_REPROVISION), Erased),
    p(
        "HBI",
        0x1b1000,
        0x5a0000,
        f(E, VER_SHA512, MISC_READONLY),
        Erased,
    ),
    p(
        "SBEC",
        0x751000,
        0x90000,
        f(E, VER_SHA512_PER_EC, MISC_READONLY),
        Erased,
    ),
    p(
        "SBE",
        0x7e1000,
        0x48000,
        f(E, VER_SHA512_PER_EC, MISC_READONLY),
        Erased,
    ),
    p(
        "WINK",
        0x829000,
        0x120000,
        f(E, VER_SHA512, MISC_READONLY),
        Erased,
    ),
    p(
        "HBRT",
        0x949000,
        0x360000,
        f(E, VER_SHA512, MISC_READONLY),
        Erased,
    ),
    p(
        "PAYLOAD",
        0xca9000,
        0x100000,
        f(N, 0, MISC_READONLY),
        Erased,
    ),
    p(
        "BOOTKERNEL",
        0xda9000,
        0xf00000,
        f(N, 0, MISC_READONLY),
        Firmware,
    ),
    p(
        "ATTR_TMP",
        0x1ca9000,
        0x8000,
        f(N, 0, MISC_REPROVISION),
        Erased,
    ),
    p(
        "ATTR_PERM",
        0x1cb1000,
        0x8000,
        f(E, 0, MISC_REPROVISION),
        Erased,
    ),
    p("OCC", 0x1cb9000, 0x120000, f(E, 0, MISC_READONLY), Erased),
    p(
        "NVRAM",
        0x1de2000,
        0x90000,
        f(N, 0, MISC_PRESERVED | MISC_REPROVISION),
        Nvram,
    ),
    p(
        "FIRDATA",
        0x1e72000,
        0x3000,
        f(E, 0, MISC_REPROVISION),
        Erased,
    ),
    p(
        "BMC_INV",
        0x1e75000,
        0x9000,
        f(N, 0, MISC_REPROVISION),
        Erased,
    ),
    // CAPP (0x1e7e000, 144 KiB, ECC, read-only) is left out: it holds
    // IBM's CAPI microcode, which this image does not ship, and skiboot on
    // POWER8 loads it for every PHB, printing errors for an erased one.
    p(
        "SECBOOT",
        0x1ea2000,
        0x24000,
        f(E, 0, MISC_PRESERVED),
        Erased,
    ),
    p(
        "IMA_CATALOG",
        0x1ec6000,
        0x9000,
        f(E, 0, MISC_READONLY | MISC_REPROVISION),
        Erased,
    ),
    p(
        "HBB",
        0x1f60000,
        0x90000,
        f(E, VER_SHA512, MISC_READONLY),
        Erased,
    ),
    p(
        "VERSION",
        0x1ff7000,
        0x1000,
        f(N, 0, MISC_READONLY),
        Version,
    ),
    p(
        "BACKUP_PART",
        0x1ff8000,
        TOC_SIZE,
        f(N, 0, MISC_BACKUP),
        Toc,
    ),
    p("ROOTFS", 0x2000000, 0x1f00000, f(N, 0, 0), Rootfs),
    // Guest NVRAMs (kernel::nvram's store), written by the firmware
    // through OPAL's flash calls; kept across flash updates.
    p(
        kernel::nvram::STORE_PARTITION,
        0x3f00000,
        0x100000,
        f(N, 0, MISC_PRESERVED),
        Erased,
    ),
];

// Every name fits the entry's 16-byte, NUL-terminated field.
const _: () = {
    let mut i = 0;
    while i < LAYOUT.len() {
        assert!(LAYOUT[i].name.len() <= NAME_MAX);
        i += 1;
    }
};

/// The partition named `name`.
pub fn part(name: &str) -> &'static Part {
    LAYOUT
        .iter()
        .find(|p| p.name == name)
        .expect("partition in LAYOUT")
}

/// A guest flash disk of the image (`--disk NAME=SIZE[:FILE]`).
pub struct DiskInput {
    /// The disk's name (its partition is `DISK-NAME`).
    pub name: String,
    /// Bytes of its partition: a whole number of erase blocks.
    pub size: u32,
    /// What it holds at first (zeros after it), if not all zeros.
    pub data: Option<Vec<u8>>,
}

/// The layout with `disks` carved from the end of ROOTFS, in order,
/// before GUESTNVRAM.
pub fn layout(disks: &[DiskInput]) -> Result<Vec<Part>, String> {
    let mut out: Vec<Part> = LAYOUT.to_vec();
    let total: u64 = disks.iter().map(|d| u64::from(d.size)).sum();
    let r = out.iter().position(|p| p.name == "ROOTFS").expect("ROOTFS");
    let rootfs = out[r];
    // ROOTFS keeps at least 1 MiB (an archive of the built-in guests).
    if total + (1 << 20) > u64::from(rootfs.size) {
        return Err(format!(
            "the disks take {} KiB, more than the {} KiB ROOTFS can give up",
            total >> 10,
            (rootfs.size >> 10) - 1024
        ));
    }
    out[r].size -= total as u32;
    let mut at = rootfs.base + out[r].size;
    for (i, d) in disks.iter().enumerate() {
        let name = kernel::scsi::flash::partition_name(&d.name);
        if !kernel::scsi::flash::valid_name(&d.name) {
            return Err(format!(
                "disk name '{}': 1 to {} of A-Z a-z 0-9 _ -",
                d.name,
                kernel::scsi::flash::MAX_NAME
            ));
        }
        if d.size == 0 || d.size % BLOCK_SIZE != 0 {
            return Err(format!(
                "disk {}: {} bytes is not a non-zero multiple of the {BLOCK_SIZE:#x}-byte erase block",
                d.name, d.size
            ));
        }
        if disks[..i].iter().any(|o| o.name == d.name) {
            return Err(format!("disk {} named twice", d.name));
        }
        if let Some(data) = &d.data {
            if data.len() > d.size as usize {
                return Err(format!(
                    "disk {}: its file of {} bytes does not fit its {} bytes",
                    d.name,
                    data.len(),
                    d.size
                ));
            }
        }
        // The table holds `&'static str` names: an image is made once per
        // run of this tool.
        let name: &'static str = Box::leak(name.into_boxed_str());
        out.insert(
            r + 1 + i,
            p(name, at, d.size, f(N, 0, MISC_PRESERVED), Disk(i)),
        );
        at += d.size;
    }
    Ok(out)
}

/// What goes into the image.
pub struct Inputs<'a> {
    /// The firmware ELF for `BOOTKERNEL`.
    pub firmware: &'a [u8],
    /// The boot archive for `ROOTFS` (none: an empty one, so the firmware
    /// runs its built-in guests).
    pub archive: Option<&'a [u8]>,
    /// The first line of `VERSION`.
    pub version: &'a str,
    /// Boot arguments for the firmware, kept in skiboot's NVRAM
    /// (`bootargs=` in its `ibm,skiboot` partition, which skiboot puts in
    /// /chosen over the device tree's, as on a real machine).
    pub bootargs: Option<&'a str>,
    /// Guest flash disks.
    pub disks: &'a [DiskInput],
}

/// The 8-bit ECC of one big-endian doubleword (skiboot `eccgenerate`:
/// check bit i is the parity of the data bits row i of the matrix selects).
pub fn ecc_byte(data: u64) -> u8 {
    const MATRIX: [u64; 8] = [
        0x0000_e842_3c0f_99ff,
        0x00e8_423c_0f99_ff00,
        0xe842_3c0f_99ff_0000,
        0x423c_0f99_ff00_00e8,
        0x3c0f_99ff_0000_e842,
        0x0f99_ff00_00e8_423c,
        0x99ff_0000_e842_3c0f,
        0xff00_00e8_423c_0f99,
    ];
    MATRIX.iter().enumerate().fold(0, |acc, (i, m)| {
        acc | (((m & data).count_ones() & 1) as u8) << i
    })
}

/// `data` with ECC: each 8 bytes followed by their ECC byte (the length
/// must be a multiple of 8, as skiboot's `memcpy_to_ecc` requires).
pub fn with_ecc(data: &[u8]) -> Vec<u8> {
    assert!(
        data.len().is_multiple_of(8),
        "ECC data is whole doublewords"
    );
    let mut out = Vec::with_capacity(data.len() / 8 * 9);
    for w in data.chunks_exact(8) {
        out.extend_from_slice(w);
        out.push(ecc_byte(u64::from_be_bytes(w.try_into().unwrap())));
    }
    out
}

/// How many data bytes a partition of `size` bytes holds.
pub fn capacity(part: &Part) -> u32 {
    if part.flags.ecc {
        part.size / 9 * 8
    } else {
        part.size
    }
}

fn xor_checksum(words: &[u8]) -> [u8; 4] {
    let x = words.chunks_exact(4).fold(0u32, |acc, w| {
        acc ^ u32::from_ne_bytes(w.try_into().unwrap())
    });
    x.to_ne_bytes()
}

/// The TOC of `layout` for `actual` (the bytes of content each partition
/// holds, in layout order), padded with 0xff to [`TOC_SIZE`].
pub fn toc(layout: &[Part], actual: &[u32]) -> Vec<u8> {
    let mut t = vec![0u8; HDR_LEN + ENTRY_LEN * layout.len()];
    let put = |b: &mut [u8], at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_be_bytes());
    put(&mut t, 0, FFS_MAGIC);
    put(&mut t, 4, FFS_VERSION_1);
    put(&mut t, 8, TOC_SIZE / BLOCK_SIZE);
    put(&mut t, 12, ENTRY_LEN as u32);
    put(&mut t, 16, layout.len() as u32);
    put(&mut t, 20, BLOCK_SIZE);
    put(&mut t, 24, FLASH_SIZE / BLOCK_SIZE);
    let c = xor_checksum(&t[..HDR_LEN - 4]);
    t[HDR_LEN - 4..HDR_LEN].copy_from_slice(&c);
    for (i, (part, &act)) in layout.iter().zip(actual).enumerate() {
        let e = &mut t[HDR_LEN + i * ENTRY_LEN..HDR_LEN + (i + 1) * ENTRY_LEN];
        e[..part.name.len()].copy_from_slice(part.name.as_bytes());
        put(e, 16, part.base / BLOCK_SIZE);
        put(e, 20, part.size / BLOCK_SIZE);
        put(e, 24, PID_TOPLEVEL);
        put(e, 28, i as u32 + 1); // on-flash IDs start at 1
        let kind = if part.content == Toc {
            TYPE_PARTITION
        } else {
            TYPE_DATA
        };
        put(e, 32, kind);
        put(e, 40, act);
        // The user word: chip, compress type, data integrity, version
        // check, misc flags.
        let integ = if part.flags.ecc { INTEG_ECC } else { 0 };
        e[ENTRY_INTEG..ENTRY_INTEG + 2].copy_from_slice(&integ.to_be_bytes());
        e[64] = part.flags.vercheck;
        e[65] = part.flags.misc;
        let c = xor_checksum(&e[..ENTRY_LEN - 4]);
        e[ENTRY_LEN - 4..].copy_from_slice(&c);
    }
    t.resize(TOC_SIZE as usize, 0xff);
    t
}

/// skiboot's NVRAM as its `nvram_format` leaves it: a 4 KiB `ibm,skiboot`
/// partition, a 64 KiB `common` one and the rest free, each with its CHRP
/// header (signature, checksum, length in 16-byte units, name); with
/// `bootargs`, the `ibm,skiboot` partition holds `bootargs=…` (its
/// contents are NUL-terminated `key=value` strings, ended by an empty
/// one: skiboot `__nvram_query`).
pub fn nvram(size: u32, bootargs: Option<&str>) -> Result<Vec<u8>, String> {
    let mut b = vec![0u8; size as usize];
    if let Some(args) = bootargs {
        let kv = format!("bootargs={args}");
        // After the header: the string, its NUL and the empty one.
        let room = NVRAM_SKIBOOT_SIZE - 16 - 2;
        if kv.len() > room || kv.contains('\0') {
            return Err(format!(
                "bootargs of {} bytes (or with a NUL) do not fit skiboot's NVRAM partition ({} bytes for `bootargs=…`)",
                args.len(),
                room
            ));
        }
        b[16..16 + kv.len()].copy_from_slice(kv.as_bytes());
    }
    let parts: [(u8, &[u8], u32); 3] = [
        (0x51, b"ibm,skiboot", NVRAM_SKIBOOT_SIZE as u32),
        (0x70, b"common", 0x10000),
        (
            kernel::nvram::SIG_FREE,
            kernel::nvram::FREE_NAME,
            size - 0x11000,
        ),
    ];
    let mut off = 0usize;
    for (sig, name, len) in parts {
        b[off..off + 16].copy_from_slice(&kernel::nvram::header(sig, name, len as usize));
        off += len as usize;
    }
    Ok(b)
}

/// skiboot's own NVRAM partition (`NVRAM_SIZE_FW_PRIV`).
const NVRAM_SKIBOOT_SIZE: usize = 0x1000;

/// The firmware must be an ELF whose section header table ends the file:
/// skiboot loads exactly that many bytes from `BOOTKERNEL`.
fn check_firmware(elf: &[u8]) -> Result<(), String> {
    match kernel::rootfs::skiboot_size(elf) {
        Some(n) if n == elf.len() as u64 => Ok(()),
        Some(n) => Err(format!(
            "the firmware's section headers end at byte {n} of its {} bytes: \
             skiboot would load only that much from BOOTKERNEL",
            elf.len()
        )),
        None => Err("the firmware is not a 64-bit little-endian ELF file".into()),
    }
}

fn fits(part: &Part, what: &str, len: usize) -> Result<(), String> {
    let cap = capacity(part);
    if len as u64 > cap as u64 {
        return Err(format!(
            "{what} is {len} bytes ({:.2} MiB); partition {} holds {cap} bytes ({:.2} MiB)",
            len as f64 / (1 << 20) as f64,
            part.name,
            cap as f64 / (1 << 20) as f64
        ));
    }
    Ok(())
}

/// The image, and the ROOTFS container in it (also written alone, for
/// pflash).
pub struct Image {
    pub bytes: Vec<u8>,
    pub rootfs: Vec<u8>,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Image({} bytes, ROOTFS container {} bytes)",
            self.bytes.len(),
            self.rootfs.len()
        )
    }
}

/// The whole image.
pub fn image(inp: &Inputs) -> Result<Image, String> {
    let layout = layout(inp.disks)?;
    fits(part("BOOTKERNEL"), "the firmware", inp.firmware.len())?;
    check_firmware(inp.firmware)?;
    let rootfs = kernel::rootfs::wrap(inp.archive.unwrap_or(&[]));
    let rootfs_part = layout.iter().find(|p| p.name == "ROOTFS").expect("ROOTFS");
    fits(
        rootfs_part,
        "the boot archive in its ROOTFS container",
        rootfs.len(),
    )?;
    let mut version =
        format!("open-power-hvfw-{}\n\thvfw-{}\n", inp.version, inp.version).into_bytes();
    fits(part("VERSION"), "the version text", version.len())?;
    version.resize(part("VERSION").size as usize, 0);

    let mut img = vec![0xffu8; FLASH_SIZE as usize];
    let mut actual = Vec::with_capacity(layout.len());
    for part in &layout {
        use std::borrow::Cow;
        let data: Option<Cow<[u8]>> = match part.content {
            Toc => None,
            Firmware => Some(inp.firmware.into()),
            Rootfs => Some(rootfs.as_slice().into()),
            Nvram => Some(nvram(part.size, inp.bootargs)?.into()),
            Version => Some(version.as_slice().into()),
            Erased if part.flags.ecc => Some(vec![0xff; capacity(part) as usize].into()),
            // A disk reads as zeros where its file does not reach.
            Disk(i) => {
                let mut d = inp.disks[i].data.clone().unwrap_or_default();
                d.resize(part.size as usize, 0);
                Some(d.into())
            }
            Erased => None,
        };
        let Some(data) = data else {
            actual.push(0);
            continue;
        };
        let raw = if part.flags.ecc {
            with_ecc(&data).into()
        } else {
            data
        };
        let at = part.base as usize;
        img[at..at + raw.len()].copy_from_slice(&raw);
        // "actual" is the raw bytes written, ECC included (what pflash reads
        // back by default, stripping the ECC; an erased ECC partition holds
        // ECC-protected blank data, as op-build writes it).
        actual.push(raw.len() as u32);
    }
    let toc = toc(&layout, &actual);
    for part in layout.iter().filter(|p| p.content == Toc) {
        let at = part.base as usize;
        img[at..at + toc.len()].copy_from_slice(&toc);
    }
    Ok(Image { bytes: img, rootfs })
}

/// `git describe` of the tree, once per run (so the images a test run
/// makes and the ones it compares against carry the same).
fn version() -> String {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(describe).clone()
}

fn describe() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string())
}

const USAGE: &str = "cargo xtask pnor [--firmware ELF] [--archive FILE] [--bootargs STRING] [--disk NAME=SIZE[:FILE]]... [--out IMAGE]";

/// A `--disk NAME=SIZE[:FILE]` argument: the disk, its file read.
fn disk_arg(v: &str) -> Result<DiskInput, String> {
    let bad = || format!("--disk '{v}': expected NAME=SIZE or NAME=SIZE:FILE (e.g. data=8M)");
    let (name, rest) = v.split_once('=').ok_or_else(bad)?;
    let (size, file) = match rest.split_once(':') {
        Some((s, f)) => (s, Some(f)),
        None => (rest, None),
    };
    let size = kernel::units::parse_size(size)
        .filter(|n| *n <= u64::from(u32::MAX))
        .ok_or_else(bad)? as u32;
    let data = file
        .map(|f| std::fs::read(f).map_err(|e| format!("--disk {name}: {f}: {e}")))
        .transpose()?;
    Ok(DiskInput {
        name: name.to_string(),
        size,
        data,
    })
}

/// `cargo xtask pnor` ([`USAGE`]).
pub fn command(args: &[String]) -> Result<(), String> {
    let mut firmware: Option<PathBuf> = None;
    let mut archive: Option<PathBuf> = None;
    let mut out = root().join("build/pnor.img");
    let mut bootargs: Option<String> = None;
    let mut disks: Vec<DiskInput> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--bootargs" {
            bootargs = Some(it.next().ok_or("--bootargs needs a string")?.clone());
            continue;
        }
        if a == "--disk" {
            disks.push(disk_arg(it.next().ok_or("--disk needs NAME=SIZE")?)?);
            continue;
        }
        let mut val = || {
            it.next()
                .map(PathBuf::from)
                .ok_or(format!("{a} needs a file"))
        };
        match a.as_str() {
            "--firmware" => firmware = Some(val()?),
            "--archive" => archive = Some(val()?),
            "--out" => out = val()?,
            _ => return Err(format!("unknown argument '{a}' (usage: {USAGE})")),
        }
    }
    let firmware = match firmware {
        Some(f) => f,
        None => {
            crate::build::build(false)?;
            root().join("build/bootkernel.elf")
        }
    };
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let fw = read(&firmware)?;
    let ar = archive.as_deref().map(read).transpose()?;
    if let Some(a) = &ar {
        kernel::archive::Archive::parse(a).map_err(|e| {
            format!(
                "{}: not a boot archive: {e}",
                archive.as_ref().unwrap().display()
            )
        })?;
    }
    let img = image(&Inputs {
        firmware: &fw,
        archive: ar.as_deref(),
        bootargs: bootargs.as_deref(),
        version: &version(),
        disks: &disks,
    })?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    std::fs::write(&out, &img.bytes).map_err(|e| format!("{}: {e}", out.display()))?;
    let rootfs = out.with_file_name("rootfs.elf");
    std::fs::write(&rootfs, &img.rootfs).map_err(|e| format!("{}: {e}", rootfs.display()))?;
    let bk = part("BOOTKERNEL");
    let laid = layout(&disks)?;
    let rf = laid.iter().find(|p| p.name == "ROOTFS").expect("ROOTFS");
    for d in laid.iter().filter(|p| matches!(p.content, Disk(_))) {
        eprintln!(
            "xtask: flash disk {} at 0x{:07x}, {} KiB (a VM's 'disk = flash {}')",
            d.name,
            d.base,
            d.size >> 10,
            &d.name[kernel::scsi::flash::PARTITION_PREFIX.len()..]
        );
    }
    eprintln!(
        "xtask: wrote {} (64 MiB PNOR): BOOTKERNEL 0x{:07x} = {} ({} of {} KiB), ROOTFS 0x{:07x} = {} ({} of {} KiB); ROOTFS content also in {}",
        out.display(),
        bk.base,
        firmware.display(),
        fw.len().div_ceil(1024),
        bk.size / 1024,
        rf.base,
        archive.as_ref().map_or("no boot archive (built-in guests)".into(), |a| a.display().to_string()),
        img.rootfs.len().div_ceil(1024),
        rf.size / 1024,
        rootfs.display(),
    );
    Ok(())
}

/// Images the smoke tests boot, under build/flash/.
pub const TEST_DEFAULT: &str = "build/flash/default.img";
pub const TEST_TWO_VMS: &str = "build/flash/two-vms.img";
pub const TEST_BOOTARGS: &str = "build/flash/bootargs.img";
pub const TEST_UPDATED: &str = "build/flash/updated.img";

/// What [`prepare`] puts in each: (image, archive, bootargs).
const TEST_IMAGES: &[(&str, Option<&str>, Option<&str>)] = &[
    (TEST_DEFAULT, None, None),
    (TEST_TWO_VMS, Some("build/archives/two-vms.cpio"), None),
    (TEST_BOOTARGS, None, Some(TEST_BOOTARGS_STRING)),
];

/// The boot arguments of [`TEST_BOOTARGS`]: no HPT pool, which the boot
/// line shows.
pub const TEST_BOOTARGS_STRING: &str = "hv.hpt_pool=0";

/// Makes the smoke tests' images with the same code `cargo xtask pnor`
/// runs.
pub fn prepare() -> Result<(), String> {
    let abs = |f: &str| root().join(f).to_string_lossy().into_owned();
    for (img, archive, bootargs) in TEST_IMAGES {
        let mut a = vec![
            "--firmware".into(),
            abs("build/bootkernel.elf"),
            "--out".into(),
            abs(img),
        ];
        if let Some(ar) = archive {
            a.extend(["--archive".into(), abs(ar)]);
        }
        if let Some(b) = bootargs {
            a.extend(["--bootargs".into(), b.to_string()]);
        }
        command(&a)?;
    }
    Ok(())
}

/// Test image `img` as [`prepare`] made it, as it must still be byte for
/// byte after a boot (nothing but skiboot's NVRAM may be written, and a
/// correctly formatted NVRAM is not).
pub fn expected(img: &str) -> Result<Vec<u8>, String> {
    let &(_, archive, bootargs) = TEST_IMAGES
        .iter()
        .find(|t| t.0 == img)
        .ok_or(format!("{img} is not a test image"))?;
    let read = |p: &str| std::fs::read(root().join(p)).map_err(|e| format!("{p}: {e}"));
    let fw = read("build/bootkernel.elf")?;
    let ar = archive.map(read).transpose()?;
    image(&Inputs {
        firmware: &fw,
        archive: ar.as_deref(),
        version: &version(),
        bootargs,
        disks: &[],
    })
    .map(|i| i.bytes)
}

fn pflash_path() -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join("pflash"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "pflash not found (Debian's opal-utils; scripts/setup.sh installs it)".into()
        })
}

/// Runs `pflash ARGS`, returning its standard output.
pub fn pflash(args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(pflash_path()?)
        .args(args)
        .current_dir(root())
        .output()
        .map_err(|e| format!("pflash: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "pflash {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Reads partition `name` of `image` back with pflash (`ecc`: through
/// pflash's ECC decoding, which fails on a bad ECC byte).
fn pflash_read(image: &str, name: &str, ecc: bool) -> Result<Vec<u8>, String> {
    let tmp = root().join(format!("target/tmp/pflash-{name}.out"));
    std::fs::create_dir_all(tmp.parent().unwrap()).map_err(|e| e.to_string())?;
    let tmp_s = tmp.to_string_lossy().into_owned();
    let mut a = vec!["-F", image, "-P", name, "-r", &tmp_s];
    if ecc {
        a.push("--ecc");
    }
    pflash(&a)?;
    std::fs::read(&tmp).map_err(|e| format!("{tmp_s}: {e}"))
}

/// The checks of the image that are not a boot (smoke tests by name).
pub struct ToolTest {
    pub name: &'static str,
    pub run: fn() -> Result<(), String>,
}

pub const TOOL_TESTS: &[ToolTest] = &[
    ToolTest {
        name: "pnor-refuses-firmware-and-archive-too-large",
        run: too_large_refused,
    },
    ToolTest {
        name: "pflash-lists-the-layout-and-reads-back-the-contents",
        run: pflash_lists_and_reads_back,
    },
    ToolTest {
        name: "pflash-erases-and-programs-bootkernel",
        run: pflash_updates_bootkernel,
    },
    ToolTest {
        name: "flash-keeps-a-guest-nvram-across-power-off",
        run: nvram_kept_across_power_off,
    },
    ToolTest {
        name: "flash-keeps-a-linux-disk-across-power-off",
        run: disk_kept_across_power_off,
    },
];

/// A guest's flash disk outlives the machine: an image made with
/// `--disk` and the flash-disk archive (Debian's kernel, gzip'd, with a
/// VM whose LUN 0 is the flash disk) boots twice. The first boot makes
/// an ext2 file system there with a file and powers off; the second
/// finds the file whole. Then pflash reads the partition: the file
/// system's magic and the file's first line are in it.
fn disk_kept_across_power_off() -> Result<(), String> {
    use crate::linux::{
        FLASH_DISK, FLASH_DISK_DONE, FLASH_DISK_MADE, FLASH_DISK_MARK, FLASH_DISK_SIZE,
    };
    const IMG: &str = "build/flash/disk.img";
    let abs = |f: &str| root().join(f).to_string_lossy().into_owned();
    command(&[
        "--firmware".into(),
        abs("build/bootkernel.elf"),
        "--archive".into(),
        abs("build/archives/flash-disk.cpio"),
        "--disk".into(),
        format!("{FLASH_DISK}={FLASH_DISK_SIZE}"),
        "--out".into(),
        abs(IMG),
    ])?;
    for (round, marker) in [(1, FLASH_DISK_MADE), (2, FLASH_DISK_DONE)] {
        let b = crate::qemu::boot(&["--flash", IMG, "--timeout", "400"])?;
        let says = |s: &str| b.console.contains(s);
        expect(
            b.status == 0 && says("hv: power off (ok)") && !says("WRONG"),
            format!("boot {round}: exit status {}\n{}", b.status, b.console),
        )?;
        expect(
            says(marker) && says("write cache: write back"),
            format!("boot {round}: no `{marker}`\n{}", b.console),
        )?;
        expect(
            says(&format!("LUN 0 is flash disk {FLASH_DISK}")),
            format!("boot {round}: the flash disk was not found\n{}", b.console),
        )?;
    }
    let part = kernel::scsi::flash::partition_name(FLASH_DISK);
    let back = pflash_read(IMG, &part, false)?;
    expect(
        back.len() == 8 << 20 && back[1080..1082] == [0x53, 0xef],
        format!("{part}: {} bytes, no ext2 magic", back.len()),
    )?;
    expect(
        back.windows(FLASH_DISK_MARK.len())
            .any(|w| w == FLASH_DISK_MARK.as_bytes()),
        format!("{part}: the file's first line is not in the partition"),
    )
}

/// A guest's NVRAM outlives the machine: two boots of one flash image
/// (the built-in guests), the bad guest reading the last 4 bytes of its
/// NVRAM before it stores `c0ffee42` there; the second boot finds them.
fn nvram_kept_across_power_off() -> Result<(), String> {
    const IMG: &str = "build/flash/nvram.img";
    std::fs::copy(root().join(TEST_DEFAULT), root().join(IMG))
        .map_err(|e| format!("{IMG}: {e}"))?;
    for (round, found) in [(1, "00000000"), (2, "c0ffee42")] {
        let b = crate::qemu::boot(&["--flash", IMG, "--timeout", "120"])?;
        let says = |s: &str| b.console.contains(s);
        expect(
            b.status == 0 && says("hv: power off (ok)"),
            format!("boot {round}: exit status {}\n{}", b.status, b.console),
        )?;
        expect(
            says(&format!("bad: nvram's last 4 bytes at boot: {found}")),
            format!(
                "boot {round}: the bad guest did not find {found} in its NVRAM\n{}",
                b.console
            ),
        )?;
        expect(
            says("nvram: vm bad: NVRAM (64 KiB) saved to flash"),
            format!("boot {round}: the NVRAM was not saved\n{}", b.console),
        )?;
        expect(
            round == 1 || says("nvram: vm bad: NVRAM (64 KiB) read from flash"),
            format!(
                "boot {round}: the NVRAM was not read from flash\n{}",
                b.console
            ),
        )?;
    }
    Ok(())
}

fn expect(cond: bool, what: String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what)
    }
}

/// `cargo xtask pnor` (this binary) with a 16 MiB firmware, then with a
/// 33 MiB archive: each refused, naming the partition and both sizes, and
/// no image written.
fn too_large_refused() -> Result<(), String> {
    let dir = root().join("target/tmp/pnor-too-large");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let seg = vec![0x60u8; 16 << 20];
    let big = kernel::elf::build(
        0x2000_0080,
        &[(0x2000_0000, 0x2000_0000, &seg, seg.len() as u64)],
    );
    let archive = kernel::archive::build_newc(&[
        ("manifest", b"[vm a]\nimage = a.elf\n"),
        ("a.elf", &vec![0; 33 << 20]),
    ]);
    let files = [("firmware.elf", &big), ("archive.cpio", &archive)];
    for (name, data) in files {
        std::fs::write(dir.join(name), data).map_err(|e| e.to_string())?;
    }
    let fw = root().join("build/bootkernel.elf");
    let out = dir.join("refused.img");
    let cases = [
        (
            dir.join("firmware.elf"),
            None,
            "BOOTKERNEL",
            big.len(),
            capacity(part("BOOTKERNEL")),
        ),
        (
            fw,
            Some(dir.join("archive.cpio")),
            "ROOTFS",
            kernel::rootfs::wrap(&archive).len(),
            capacity(part("ROOTFS")),
        ),
    ];
    for (firmware, archive, name, len, cap) in cases {
        let _ = std::fs::remove_file(&out);
        let mut cmd =
            std::process::Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
        cmd.arg("pnor")
            .arg("--firmware")
            .arg(&firmware)
            .arg("--out")
            .arg(&out);
        if let Some(a) = &archive {
            cmd.arg("--archive").arg(a);
        }
        let r = cmd.output().map_err(|e| e.to_string())?;
        let err = String::from_utf8_lossy(&r.stderr);
        expect(
            !r.status.success(),
            format!("{name}: xtask pnor succeeded: {err}"),
        )?;
        let want = format!("is {len} bytes");
        let holds = format!("partition {name} holds {cap} bytes");
        expect(
            err.contains(&want) && err.contains(&holds),
            format!("message lacks `{want}` and `{holds}`: {err}"),
        )?;
        expect(
            !out.exists(),
            format!("{name}: an image was written anyway"),
        )?;
    }
    Ok(())
}

/// `pflash -i` lists every partition at its place with its flags, and
/// reading BOOTKERNEL, ROOTFS and an ECC partition back gives what went in.
fn pflash_lists_and_reads_back() -> Result<(), String> {
    let info = pflash(&["-F", TEST_DEFAULT, "-i"])?;
    let fw = std::fs::read(root().join("build/bootkernel.elf")).map_err(|e| e.to_string())?;
    for (i, p) in LAYOUT.iter().enumerate() {
        let line = format!(
            "ID={i:02} {:>15} 0x{:08x}..0x{:08x}",
            p.name,
            p.base,
            p.base + p.size
        );
        let found = info.lines().find(|l| l.starts_with(&line));
        let found = found.ok_or(format!("pflash -i lacks `{line}`:\n{info}"))?;
        let ecc = found.contains("[E");
        expect(
            ecc == p.flags.ecc,
            format!("{}: ECC flag in `{found}`", p.name),
        )?;
    }
    expect(
        info.contains(&format!(
            "BOOTKERNEL 0x00da9000..0x01ca9000 (actual=0x{:08x})",
            fw.len()
        )),
        format!(
            "BOOTKERNEL's actual size is not the firmware's {} bytes:\n{info}",
            fw.len()
        ),
    )?;
    let back = pflash_read(TEST_DEFAULT, "BOOTKERNEL", false)?;
    expect(
        back == fw,
        format!(
            "BOOTKERNEL read back: {} bytes, not the firmware's {}",
            back.len(),
            fw.len()
        ),
    )?;
    let archive =
        std::fs::read(root().join("build/archives/two-vms.cpio")).map_err(|e| e.to_string())?;
    let back = pflash_read(TEST_TWO_VMS, "ROOTFS", false)?;
    expect(
        back == kernel::rootfs::wrap(&archive),
        format!(
            "ROOTFS read back: {} bytes, not the container of two-vms.cpio",
            back.len()
        ),
    )?;
    // Through pflash's ECC decoding: blank data, every ECC byte right.
    let g = part("GUARD");
    let back = pflash_read(TEST_DEFAULT, "GUARD", true)?;
    expect(
        back.len() == capacity(g) as usize && back.iter().all(|&b| b == 0xff),
        format!(
            "GUARD through ECC: {} bytes, want {} of 0xff",
            back.len(),
            capacity(g)
        ),
    )
}

/// What an operator does on the BMC, on a copy of the image whose
/// BOOTKERNEL holds something else (zeros, standing for an older image):
/// erase and program it with the firmware. The smoke test
/// `flash-boot-after-pflash-update` boots the result. (`pflash -e` of the
/// whole 15 MiB partition takes ~15 s on a file here; `-e -p` erases only
/// what it programs.)
fn pflash_updates_bootkernel() -> Result<(), String> {
    let img = root().join(TEST_UPDATED);
    let mut raw = std::fs::read(root().join(TEST_DEFAULT)).map_err(|e| e.to_string())?;
    let bk = part("BOOTKERNEL");
    raw[bk.base as usize..(bk.base + bk.size) as usize].fill(0);
    std::fs::write(&img, &raw).map_err(|e| e.to_string())?;
    expect(
        pflash_read(TEST_UPDATED, "BOOTKERNEL", false)?
            .iter()
            .all(|&b| b == 0),
        "BOOTKERNEL not overwritten before the update".into(),
    )?;
    pflash(&[
        "-F",
        TEST_UPDATED,
        "-P",
        "BOOTKERNEL",
        "-e",
        "-p",
        "build/bootkernel.elf",
        "-f",
    ])?;
    let fw = std::fs::read(root().join("build/bootkernel.elf")).map_err(|e| e.to_string())?;
    let back = pflash_read(TEST_UPDATED, "BOOTKERNEL", false)?;
    expect(
        back == fw,
        format!(
            "after pflash -e -p: {} bytes read back, not the firmware",
            back.len()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn xor_all(b: &[u8]) -> u32 {
        b.chunks_exact(4)
            .fold(0, |acc, w| acc ^ u32::from_ne_bytes(w.try_into().unwrap()))
    }

    /// Rows of skiboot's libflash/test/test-ecc.c marked "Use this row to
    /// check eccgenerate()". That test stores each doubleword as a host
    /// (little-endian) integer and reads it through `be64toh`, so the bytes
    /// on flash are the constant's little-endian bytes. Also the all-ones
    /// doubleword, whose ECC 0x00 the table's single-bit-error rows are
    /// built on.
    #[test]
    fn ecc_matches_skiboots_known_vectors() {
        for (row, ecc) in [
            (0x68fa_9c63_3eef_0544u64, 0x2a),
            (0xe814_b258_b3f9_2e55, 0x35),
            (0xc3e2_bd65_8db4_db6d, 0xda),
            (0x309f_9e6b_9183_1433, 0xe4),
            (0xa74b_bf1e_6b6f_da00, 0xc5),
            (0x795d_511e_3605_ff67, 0x03),
            (0xc67c_ae25_5a24_1c00, 0x78),
            (0xffff_ffff_ffff_ffff, 0x00),
            (0, 0),
        ] {
            let flash = row.to_le_bytes();
            let enc = with_ecc(&flash);
            assert_eq!(enc[..8], flash);
            assert_eq!(enc[8], ecc, "row {row:#018x}");
        }
        assert_eq!(
            with_ecc(&[0xff; 16]),
            [&[0xff; 8][..], &[0], &[0xff; 8], &[0]].concat()
        );
    }

    #[test]
    fn layout_is_block_aligned_in_order_without_overlap_and_fills_64_mib() {
        let mut end = 0;
        for p in LAYOUT {
            assert_eq!(p.base % BLOCK_SIZE, 0, "{}", p.name);
            assert_eq!(p.size % BLOCK_SIZE, 0, "{}", p.name);
            assert!(p.base >= end, "{} overlaps the partition before it", p.name);
            end = p.base + p.size;
        }
        assert_eq!(end, FLASH_SIZE);
        assert_eq!(part("part").base, 0);
        // The backup TOC ends side A, as op-build places it.
        assert_eq!(part("BACKUP_PART").base + TOC_SIZE, FLASH_SIZE / 2);
        // BOOTKERNEL is 15 MiB at its op-build offset.
        assert_eq!(
            (part("BOOTKERNEL").base, part("BOOTKERNEL").size),
            (0xda9000, 15 << 20)
        );
    }

    fn firmware() -> Vec<u8> {
        // A valid shape: headers, a segment, then 2 section headers last.
        let mut f = kernel::elf::build(
            0x2000_0080,
            &[(0x2000_0000, 0x2000_0000, &[0x60; 1000], 1000)],
        );
        let shoff = f.len() as u64;
        f[40..48].copy_from_slice(&shoff.to_le_bytes());
        f[58..60].copy_from_slice(&64u16.to_le_bytes());
        f[60..62].copy_from_slice(&2u16.to_le_bytes());
        f.extend_from_slice(&[0; 128]);
        f
    }

    #[test]
    fn disks_are_carved_from_the_end_of_rootfs_and_hold_their_file() {
        let disk = |name: &str, size: u32, data: Option<Vec<u8>>| DiskInput {
            name: name.into(),
            size,
            data,
        };
        let disks = [
            disk("data", 8 << 20, Some(b"hello".to_vec())),
            disk("b", 0x1000, None),
        ];
        let l = layout(&disks).unwrap();
        let at = |n: &str| l.iter().position(|p| p.name == n).unwrap();
        let (r, d, b, g) = (
            at("ROOTFS"),
            at("DISK-data"),
            at("DISK-b"),
            at("GUESTNVRAM"),
        );
        assert_eq!((d, b, g), (r + 1, r + 2, r + 3));
        assert_eq!(l[r].base, part("ROOTFS").base);
        assert_eq!(l[r].size, part("ROOTFS").size - (8 << 20) - 0x1000);
        assert_eq!(l[d].base, l[r].base + l[r].size);
        assert_eq!(l[b].base + l[b].size, l[g].base);
        assert!(!l[d].flags.ecc);
        let img = image(&Inputs {
            firmware: &firmware(),
            archive: None,
            version: "v1",
            bootargs: None,
            disks: &disks,
        })
        .unwrap()
        .bytes;
        let base = l[d].base as usize;
        assert_eq!(&img[base..base + 6], b"hello\0", "its file, then zeros");
        assert!(img[l[b].base as usize..][..0x1000].iter().all(|x| *x == 0));
        // The table names them (and says ROOTFS is smaller).
        let entry = |i: usize| &img[HDR_LEN + i * ENTRY_LEN..][..ENTRY_LEN];
        assert_eq!(&entry(d)[..10], b"DISK-data\0");
        assert_eq!(be32(entry(r), 20), l[r].size / BLOCK_SIZE);
        for bad in [
            vec![disk("x", 0x800, None)],
            vec![disk("much-too-long", 0x1000, None)],
            vec![disk("a", 0x1000, None), disk("a", 0x1000, None)],
            vec![disk("a", 0x1000, Some(vec![0; 0x1001]))],
            vec![disk("a", 31 << 20, None)],
        ] {
            assert!(
                layout(&bad).is_err(),
                "{:?}",
                bad.iter().map(|d| &d.name).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn toc_checksums_fields_and_both_copies() {
        let fw = firmware();
        let archive = kernel::archive::build_newc(&[("manifest", b"x")]);
        let img = image(&Inputs {
            firmware: &fw,
            archive: Some(&archive),
            version: "v1",
            bootargs: None,
            disks: &[],
        })
        .unwrap()
        .bytes;
        assert_eq!(img.len(), FLASH_SIZE as usize);
        let toc = &img[..TOC_SIZE as usize];
        assert_eq!(be32(toc, 0), FFS_MAGIC);
        assert_eq!(be32(toc, 4), 1);
        assert_eq!(be32(toc, 8), TOC_SIZE / BLOCK_SIZE);
        assert_eq!(be32(toc, 12), 128);
        assert_eq!(be32(toc, 16), LAYOUT.len() as u32);
        assert_eq!(be32(toc, 20), BLOCK_SIZE);
        assert_eq!(be32(toc, 24), FLASH_SIZE / BLOCK_SIZE);
        assert_eq!(xor_all(&toc[..HDR_LEN]), 0, "header checksum");
        assert_ne!(toc[HDR_LEN - 4..HDR_LEN], [0; 4]);
        for (i, p) in LAYOUT.iter().enumerate() {
            let e = &toc[HDR_LEN + i * ENTRY_LEN..][..ENTRY_LEN];
            assert_eq!(xor_all(e), 0, "{} entry checksum", p.name);
            assert_eq!(&e[..p.name.len()], p.name.as_bytes());
            assert!(e[p.name.len()..16].iter().all(|&c| c == 0));
            assert_eq!(be32(e, 16) * BLOCK_SIZE, p.base, "{}", p.name);
            assert_eq!(be32(e, 20) * BLOCK_SIZE, p.size, "{}", p.name);
            assert_eq!(be32(e, 28), i as u32 + 1);
            assert_eq!(e[62] & 0x80 != 0, p.flags.ecc, "{} ECC flag", p.name);
            // The firmware's reader finds each where the writer put it.
            assert_eq!(
                kernel::ffs::find(toc, p.name),
                Ok(Some(kernel::ffs::Partition {
                    base: u64::from(p.base),
                    size: u64::from(p.size),
                    ecc: p.flags.ecc
                })),
                "{}",
                p.name
            );
        }
        let bk = LAYOUT.iter().position(|p| p.name == "BOOTKERNEL").unwrap();
        assert_eq!(
            be32(toc, HDR_LEN + bk * ENTRY_LEN + 40),
            fw.len() as u32,
            "actual"
        );
        assert_eq!(toc[HDR_LEN + bk * ENTRY_LEN + 65], MISC_READONLY);
        let b = part("BACKUP_PART").base as usize;
        assert_eq!(&img[b..b + TOC_SIZE as usize], toc, "backup TOC");
        // Contents in place.
        let at = part("BOOTKERNEL").base as usize;
        assert_eq!(&img[at..at + fw.len()], &fw[..]);
        assert!(img[at + fw.len()..at + part("BOOTKERNEL").size as usize]
            .iter()
            .all(|&c| c == 0xff));
        let r = part("ROOTFS").base as usize;
        assert_eq!(
            kernel::rootfs::unwrap(&img[r..r + 0x2000]),
            Ok(Some(&archive[..]))
        );
    }

    #[test]
    fn erased_ecc_partitions_are_ones_with_valid_ecc() {
        let img = image(&Inputs {
            firmware: &firmware(),
            archive: None,
            version: "v1",
            bootargs: None,
            disks: &[],
        })
        .unwrap()
        .bytes;
        let g = part("GUARD");
        let raw = &img[g.base as usize..(g.base + g.size) as usize];
        for w in raw.chunks_exact(9).take(capacity(g) as usize / 8) {
            assert_eq!(w, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
        }
        // No archive: an empty one, so the firmware runs its own guests.
        let r = part("ROOTFS").base as usize;
        assert_eq!(
            kernel::rootfs::unwrap(&img[r..r + 0x2000]),
            Ok(Some(&[][..]))
        );
    }

    #[test]
    fn nvram_is_what_skiboot_formats() {
        let n = nvram(0x90000, None).unwrap();
        // skiboot's nvram_format for 0x90000 bytes (its header checksums
        // computed by hand from chrp_nv_cksum).
        assert_eq!(&n[..16], b"\x51\xb5\x01\x00ibm,skiboot\0");
        assert_eq!(&n[0x1000 + 2..0x1000 + 10], b"\x10\x00common");
        assert_eq!(n[0x1000 + 1], 0x0c);
        assert_eq!(&n[0x11000..0x11001], b"\x7f");
        assert_eq!(&n[0x11000 + 2..0x11000 + 16], b"\x7f\x00wwwwwwwwwwww");
        assert_eq!(n[0x11000 + 1], 0x98);
    }

    #[test]
    fn bootargs_are_a_key_in_skiboots_nvram_partition() {
        let n = nvram(0x90000, Some("hv.log=debug")).unwrap();
        // The header is unchanged (its checksum covers the header only).
        assert_eq!(&n[..16], &nvram(0x90000, None).unwrap()[..16]);
        assert_eq!(&n[16..16 + 22], b"bootargs=hv.log=debug\0");
        assert_eq!(n[16 + 22], 0, "the empty string that ends the list");
        let long = "x".repeat(0x1000);
        assert!(nvram(0x90000, Some(&long))
            .unwrap_err()
            .contains("do not fit"));
    }

    #[test]
    fn too_large_inputs_name_the_partition_and_both_sizes() {
        let mut big = firmware();
        big.resize((15 << 20) + 1, 0);
        let e = image(&Inputs {
            firmware: &big,
            archive: None,
            version: "v1",
            bootargs: None,
            disks: &[],
        })
        .unwrap_err();
        assert!(e.contains("BOOTKERNEL"), "{e}");
        assert!(e.contains(&format!("{} bytes", (15 << 20) + 1)), "{e}");
        assert!(e.contains(&format!("{} bytes", 15 << 20)), "{e}");
        let archive = vec![0u8; 32 << 20];
        let e = image(&Inputs {
            firmware: &firmware(),
            archive: Some(&archive),
            version: "v1",
            bootargs: None,
            disks: &[],
        })
        .unwrap_err();
        assert!(
            e.contains("ROOTFS") && e.contains(&format!("{} bytes", 31 << 20)),
            "{e}"
        );
        // A firmware whose section headers are not last would be cut short.
        let mut short = firmware();
        short.extend_from_slice(&[0; 8]);
        assert!(image(&Inputs {
            firmware: &short,
            archive: None,
            version: "v1",
            bootargs: None,
            disks: &[],
        })
        .unwrap_err()
        .contains("skiboot would load only"));
    }
}
