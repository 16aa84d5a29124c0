//! The boot archive: what QEMU `-initrd` (or the PNOR initramfs) hands the
//! hypervisor, a cpio `newc` archive holding a manifest and guest files.
//!
//! # Archive
//!
//! Each entry is a 110-byte ASCII header — the magic `070701` and thirteen
//! fields of exactly eight hex digits (`ino mode uid gid nlink mtime filesize
//! devmajor devminor rdevmajor rdevminor namesize check`) — then the name
//! (`namesize` bytes including its NUL), padded with zeros so that header plus
//! name is a multiple of 4 bytes, then `filesize` bytes of data padded to 4
//! bytes. The entry named `TRAILER!!!` ends the archive; anything after it
//! (cpio pads to 512-byte blocks) is ignored. [`Archive::parse`] checks the
//! whole archive once and borrows names and data from the input (no copies).
//!
//! Names are stored without one leading `./` or `/`, so an archive made with
//! `find . | cpio -o -H newc` works; [`Archive::file`] strips the same prefix
//! from its argument. [`Archive::file`] finds regular files only (mode
//! `S_IFREG`); [`Archive::entries`] lists everything (directories too). Two
//! entries with the same name are refused. Hard links (data stored only with
//! the last link) are not supported: the other links read as empty files.
//! The checksum field (`070702` archives) is not supported.
//!
//! # Manifest
//!
//! The manifest is the archive file named [`MANIFEST_NAME`] (`manifest`),
//! UTF-8 text. One section per VM, opened by `[vm NAME]`, followed by
//! `key = value` lines:
//!
//! ```text
//! # Two guests sharing one kernel image.
//! [vm web]
//! memory = 256M
//! image = vmlinux
//! initrd = web-rootfs.cpio
//! bootargs = console=hvc0 root=/dev/ram0 quiet
//!
//! [vm db]
//! vcpus = 1
//! memory = 1G
//! hpt_order = 24
//! image = vmlinux
//! ```
//!
//! | key | value | |
//! |---|---|---|
//! | `vcpus` | decimal number, 1 to 256 | optional, default 1 |
//! | `threads` | 1, 2, 4 or 8: vcpus per virtual core, at most the machine's threads per core, dividing `vcpus` (as QEMU's `-smp N,threads=T`) | optional, default 1 |
//! | `memory` | size: bytes, or with `K`/`M`/`G` suffix (`256M`, `0x1000000`); a non-zero multiple of 16 MiB (the VRMA page) | required |
//! | `hpt_order` | log2 of the hashed page table size, 18..=46 | optional (the hypervisor picks) |
//! | `image` | path of the guest kernel inside the archive | required |
//! | `initrd` | path of the guest initrd inside the archive | optional |
//! | `bootargs` | the rest of the line after `=` (may contain `=` and `#`) | optional, default empty |
//! | `load_addr` | 4K-aligned hex guest-physical address of the image's lowest segment | optional (default as QEMU pseries: images linked below 0x400000 go 0x400000 higher) |
//! | `entry_endian` | `big` or `little`: the MSR[LE] the image is entered with | optional, default `big` (as SLOF) |
//! | `console` | `yes`: this VM owns the serial console first (one VM only) | optional, default: the first VM |
//! | `after` | name of a VM defined above: this one is created when that one has stopped (its memory, HPT and LPID free again) | optional, default: created at boot |
//! | `nvram` | size of the guest's NVRAM (RTAS nvram-fetch/-store), 8K..=1M, a multiple of 16 | optional, default 64K |
//! | `net` | the virtual LANs of its l-lan adapters, one adapter per name (names like a VM's, space-separated, at most 4) | optional, no adapter |
//! | `disk` | a disk of its v-scsi adapter (LUN 0, 1, ... in line order; the key may repeat, at most 8): `image PATH` (the VM's own copy of a file in the archive, kept across its reboots), `image PATH ro` (the file itself, read-only, shared by every VM that names it so), `scratch SIZE` (zeros), `flash NAME` (the machine's flash partition `DISK-NAME`, kept across power-offs) | optional, no disk |
//!
//! Lines are trimmed; blank lines and lines whose first non-blank character
//! is `#` are ignored. There are no trailing comments (a `#` later in a line
//! is part of the value, which keeps `bootargs` verbatim). VM names use
//! `A-Z a-z 0-9 _ - .`, at most [`MAX_VM_NAME`] bytes.
//!
//! Errors never stop the whole manifest: every problem is reported with the
//! file name and line (`manifest:7: unknown key 'memroy' (vm 'web'
//! skipped)`), a VM with any error is skipped, and the other VMs are returned
//! ready to run. A VM whose name repeats an earlier one is an error for the
//! second; a missing required key is reported at the `[vm NAME]` line; an
//! `image`/`initrd` that is not a file in the archive at the key's line.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::units::{parse_size, MIB};
use crate::vcore::{Layout, LayoutError};
use alloc::string::ToString;

/// The manifest's name inside the archive.
pub const MANIFEST_NAME: &str = "manifest";
/// The name of the entry that ends a cpio archive.
pub const TRAILER_NAME: &str = "TRAILER!!!";
/// Longest accepted VM name, in bytes.
pub const MAX_VM_NAME: usize = 32;
/// Accepted `hpt_order` values (256 KiB .. 64 TiB), as for `hv.hpt_pool_order`.
pub const HPT_ORDERS: core::ops::RangeInclusive<u32> = 18..=46;

const MAGIC: &[u8; 6] = b"070701";
const HEADER_LEN: usize = 110;
const FIELDS: [&str; 13] = [
    "ino",
    "mode",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "filesize",
    "devmajor",
    "devminor",
    "rdevmajor",
    "rdevminor",
    "namesize",
    "check",
];
const F_MODE: usize = 1;
const F_FILESIZE: usize = 6;
const F_NAMESIZE: usize = 11;
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;

/// What is wrong with an archive; see [`ArchiveError`] for where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArchiveErrorKind {
    /// The six bytes found where a header's magic should be.
    BadMagic([u8; 6]),
    /// Fewer than 110 header bytes left.
    TruncatedHeader { have: usize },
    /// A header field that is not eight hex digits.
    NonHexField { field: &'static str },
    /// The name runs past the end of the input.
    TruncatedName { namesize: usize, have: usize },
    /// The data runs past the end of the input.
    TruncatedData { filesize: usize, have: usize },
    /// `namesize` is 0, or the name has no NUL at its end, or a NUL inside.
    BadName,
    /// The name is not UTF-8.
    NameNotUtf8,
    /// A second entry with this name.
    DuplicateName(String),
    /// The input ended without a `TRAILER!!!` entry.
    MissingTrailer,
}

/// An archive that cannot be used: the byte offset (from the start of the
/// archive) where the problem is, and what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveError {
    pub offset: usize,
    pub kind: ArchiveErrorKind,
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "boot archive offset {:#x}: ", self.offset)?;
        match &self.kind {
            ArchiveErrorKind::BadMagic(m) => {
                write!(
                    f,
                    "bad magic \"{}\" (expected \"070701\", cpio newc)",
                    m.escape_ascii()
                )
            }
            ArchiveErrorKind::TruncatedHeader { have } => write!(
                f,
                "truncated header ({have} bytes left, a header is {HEADER_LEN})"
            ),
            ArchiveErrorKind::NonHexField { field } => {
                write!(f, "header field '{field}' is not 8 hex digits")
            }
            ArchiveErrorKind::TruncatedName { namesize, have } => {
                write!(f, "truncated name ({namesize} bytes, {have} left)")
            }
            ArchiveErrorKind::TruncatedData { filesize, have } => {
                write!(f, "truncated data ({filesize} bytes, {have} left)")
            }
            ArchiveErrorKind::BadName => {
                f.write_str("bad name (empty, or not ended by exactly one NUL)")
            }
            ArchiveErrorKind::NameNotUtf8 => f.write_str("name is not UTF-8"),
            ArchiveErrorKind::DuplicateName(n) => write!(f, "duplicate entry '{n}'"),
            ArchiveErrorKind::MissingTrailer => {
                f.write_str("end of input without a TRAILER!!! entry")
            }
        }
    }
}

/// One archive entry, borrowed from the archive bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The name without a leading `./` or `/`.
    pub name: &'a str,
    /// The cpio mode: file type and permission bits.
    pub mode: u32,
    pub data: &'a [u8],
    /// Offset of the entry's header in the archive.
    pub offset: usize,
}

impl Entry<'_> {
    pub fn is_file(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }
}

/// A parsed cpio `newc` archive; see the module documentation.
#[derive(Clone, Debug)]
pub struct Archive<'a> {
    entries: Vec<Entry<'a>>,
    len: usize,
}

fn strip_prefix(name: &str) -> &str {
    name.strip_prefix("./")
        .or_else(|| name.strip_prefix('/'))
        .unwrap_or(name)
}

fn hex8(b: &[u8]) -> Option<u32> {
    if b.len() != 8 {
        return None;
    }
    b.iter().try_fold(0u32, |acc, &c| {
        let d = (c as char).to_digit(16)?;
        Some(acc << 4 | d)
    })
}

impl<'a> Archive<'a> {
    /// Parses and checks the whole archive; `bytes` may extend past the
    /// trailer.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ArchiveError> {
        let mut entries: Vec<Entry<'a>> = Vec::new();
        let mut off = 0;
        let err = |offset, kind| Err(ArchiveError { offset, kind });
        loop {
            let rest = &bytes[off..];
            if rest.is_empty() {
                return err(off, ArchiveErrorKind::MissingTrailer);
            }
            if rest.len() < HEADER_LEN {
                // A short tail that cannot even hold the magic is still
                // reported as a truncated header: the trailer is missing
                // either way, but this says more.
                if rest.len() >= 6 && &rest[..6] != MAGIC {
                    let mut m = [0; 6];
                    m.copy_from_slice(&rest[..6]);
                    return err(off, ArchiveErrorKind::BadMagic(m));
                }
                return err(off, ArchiveErrorKind::TruncatedHeader { have: rest.len() });
            }
            if &rest[..6] != MAGIC {
                let mut m = [0; 6];
                m.copy_from_slice(&rest[..6]);
                return err(off, ArchiveErrorKind::BadMagic(m));
            }
            let mut fields = [0u32; 13];
            for (i, (field, name)) in fields.iter_mut().zip(FIELDS).enumerate() {
                let at = 6 + 8 * i;
                match hex8(&rest[at..at + 8]) {
                    Some(v) => *field = v,
                    None => return err(off + at, ArchiveErrorKind::NonHexField { field: name }),
                }
            }
            let namesize = fields[F_NAMESIZE] as usize;
            let filesize = fields[F_FILESIZE] as usize;
            let name_off = off + HEADER_LEN;
            let have = bytes.len() - name_off;
            if namesize > have {
                return err(name_off, ArchiveErrorKind::TruncatedName { namesize, have });
            }
            let raw = &bytes[name_off..name_off + namesize];
            let Some((&0, raw)) = raw.split_last() else {
                return err(name_off, ArchiveErrorKind::BadName);
            };
            if raw.contains(&0) {
                return err(name_off, ArchiveErrorKind::BadName);
            }
            let Ok(full_name) = core::str::from_utf8(raw) else {
                return err(name_off, ArchiveErrorKind::NameNotUtf8);
            };
            // Cannot overflow: name_off + namesize <= bytes.len(). The
            // padding may be cut off at the very end of the input (an
            // empty last entry): the data then starts at the end.
            let data_off = (name_off + namesize).next_multiple_of(4).min(bytes.len());
            let have = bytes.len() - data_off;
            if filesize > have {
                return err(data_off, ArchiveErrorKind::TruncatedData { filesize, have });
            }
            let data = &bytes[data_off..data_off + filesize];
            // The padding after the last data byte may be missing at the
            // very end of the input (nothing follows); that is harmless.
            let next = (data_off + filesize).next_multiple_of(4).min(bytes.len());
            if full_name == TRAILER_NAME {
                return Ok(Archive { entries, len: next });
            }
            let name = strip_prefix(full_name);
            if entries.iter().any(|e| e.name == name) {
                return err(off, ArchiveErrorKind::DuplicateName(name.into()));
            }
            entries.push(Entry {
                name,
                mode: fields[F_MODE],
                data,
                offset: off,
            });
            off = next;
        }
    }

    /// The data of the regular file `name` (a leading `./` or `/` is ignored).
    pub fn file(&self, name: &str) -> Option<&'a [u8]> {
        let name = strip_prefix(name);
        self.entries
            .iter()
            .find(|e| e.is_file() && e.name == name)
            .map(|e| e.data)
    }

    /// Every entry before the trailer, in archive order.
    pub fn entries(&self) -> core::slice::Iter<'_, Entry<'a>> {
        self.entries.iter()
    }

    /// The regular files, as (name, data), in archive order.
    pub fn files(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        self.entries
            .iter()
            .filter(|e| e.is_file())
            .map(|e| (e.name, e.data))
    }

    /// Number of entries, not counting the trailer.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes from the start of the archive to the end of the trailer entry.
    pub fn byte_len(&self) -> usize {
        self.len
    }
}

impl<'b, 'a> IntoIterator for &'b Archive<'a> {
    type Item = &'b Entry<'a>;
    type IntoIter = core::slice::Iter<'b, Entry<'a>>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries()
    }
}

fn push_header(out: &mut Vec<u8>, fields: [u32; 13], name: &str) {
    out.extend_from_slice(MAGIC);
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// One entry for [`build_newc_entries`]: a path, its full mode (type and
/// permissions, e.g. `0o100755`), a device number for device nodes and
/// the contents.
#[derive(Clone, Copy, Debug)]
pub struct NewcEntry<'a> {
    pub name: &'a str,
    pub mode: u32,
    pub rdev: (u32, u32),
    pub data: &'a [u8],
}

/// Builds a cpio `newc` archive of regular files (mode 0644, in the given
/// order) ending with the trailer, for host tools and tests.
///
/// # Panics
///
/// On an empty name, a name with a NUL, or a file of 4 GiB or more.
pub fn build_newc(files: &[(&str, &[u8])]) -> Vec<u8> {
    let entries: Vec<NewcEntry<'_>> = files
        .iter()
        .map(|&(name, data)| NewcEntry {
            name,
            mode: S_IFREG | 0o644,
            rdev: (0, 0),
            data,
        })
        .collect();
    build_newc_entries(&entries)
}

/// Builds a cpio `newc` archive of any entries (an initramfs with
/// directories and device nodes), with inode numbers in order and zero
/// times, so the same entries always give the same bytes.
///
/// # Panics
///
/// As [`build_newc`].
pub fn build_newc_entries(entries: &[NewcEntry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        assert!(
            !e.name.is_empty() && !e.name.contains('\0'),
            "bad cpio name {:?}",
            e.name
        );
        let size = u32::try_from(e.data.len()).expect("cpio newc files are below 4 GiB");
        let namesize = e.name.len() as u32 + 1;
        let nlink = if e.mode & S_IFMT == S_IFDIR { 2 } else { 1 };
        // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor
        // rdevminor namesize check
        let fields = [
            i as u32 + 1,
            e.mode,
            0,
            0,
            nlink,
            0,
            size,
            0,
            0,
            e.rdev.0,
            e.rdev.1,
            namesize,
            0,
        ];
        push_header(&mut out, fields, e.name);
        out.extend_from_slice(e.data);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }
    let namesize = TRAILER_NAME.len() as u32 + 1;
    push_header(
        &mut out,
        [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, namesize, 0],
        TRAILER_NAME,
    );
    out
}

// ---------------------------------------------------------------------------
// Manifest
// ---------------------------------------------------------------------------

/// One VM from the manifest, checked and ready to start. Paths and file
/// contents are borrowed from the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmSpec<'a> {
    pub name: &'a str,
    /// Line of the `[vm NAME]` header.
    pub line: usize,
    /// vcpus and how they form virtual cores.
    pub layout: Layout,
    /// Guest memory in bytes.
    pub memory: u64,
    pub hpt_order: Option<u32>,
    pub image_path: &'a str,
    pub image: &'a [u8],
    pub bootargs: &'a str,
    /// (path, contents)
    pub initrd: Option<(&'a str, &'a [u8])>,
    /// Guest-physical address for the image's lowest segment (default:
    /// QEMU pseries' placement, see `elf::load`).
    pub load_addr: Option<u64>,
    /// Enter the image little-endian (default big-endian, as SLOF does).
    pub entry_little_endian: bool,
    /// This VM owns the serial console first (`console = yes`).
    pub console: bool,
    /// Created only once the VM of this name (defined above) has stopped
    /// and given its memory, HPT and LPID back (`after = NAME`).
    pub after: Option<&'a str>,
    /// Bytes of its NVRAM (`nvram = SIZE`).
    pub nvram: u32,
    /// The virtual LANs of its l-lan adapters (`net = LAN [LAN...]`), as
    /// written: [`VmSpec::lans`] splits them.
    pub net: Option<&'a str>,
    /// Its disks (`disk = ...`), in LUN order.
    pub disks: Vec<DiskSpec<'a>>,
}

/// Where a disk's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiskSource<'a> {
    /// A file of the archive: (path, contents).
    Image(&'a str, &'a [u8]),
    /// Zeros, this many bytes.
    Scratch(u64),
    /// The machine's flash partition `DISK-NAME`
    /// ([`crate::scsi::flash::partition_name`]), found when the VM is
    /// made.
    Flash(&'a str),
}

/// One disk of a VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSpec<'a> {
    pub source: DiskSource<'a>,
    /// Read in place and never written (`ro`).
    pub read_only: bool,
}

impl DiskSpec<'_> {
    /// Bytes of the disk, if the manifest says (a flash disk is its
    /// partition's size).
    pub fn bytes(&self) -> Option<u64> {
        match self.source {
            DiskSource::Image(_, data) => Some(data.len() as u64),
            DiskSource::Scratch(n) => Some(n),
            DiskSource::Flash(_) => None,
        }
    }
}

/// Disks one VM may have (`disk = ...`): the LUNs of its v-scsi adapter.
pub const MAX_DISKS: usize = crate::vio::vscsi::MAX_DISKS;

/// l-lan adapters one VM may have (`net = ...`).
pub const MAX_ADAPTERS: usize = 4;

impl<'a> VmSpec<'a> {
    /// The LAN of each of its l-lan adapters, in adapter order.
    pub fn lans(&self) -> impl Iterator<Item = &'a str> {
        self.net.into_iter().flat_map(str::split_whitespace)
    }
}

/// A problem in the manifest. `line` is 1-based; 0 means the whole file
/// (for example a missing manifest). `vm` names the VM that is skipped
/// because of it, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    pub file: &'static str,
    pub line: usize,
    pub vm: Option<String>,
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)?;
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)?;
        }
        if let Some(vm) = &self.vm {
            write!(f, " (vm '{vm}' skipped)")?;
        }
        Ok(())
    }
}

/// The outcome of reading the manifest: the VMs that can run, in manifest
/// order, and every problem found (VMs with problems are not in `vms`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest<'a> {
    pub vms: Vec<VmSpec<'a>>,
    pub errors: Vec<ManifestError>,
}

/// Reads [`MANIFEST_NAME`] from `archive` and checks it against the archive.
pub fn parse_manifest<'a>(archive: &Archive<'a>, machine_threads: u32) -> Manifest<'a> {
    let file_error = |message: String| Manifest {
        vms: Vec::new(),
        errors: alloc::vec![ManifestError {
            file: MANIFEST_NAME,
            line: 0,
            vm: None,
            message,
        }],
    };
    let Some(bytes) = archive.file(MANIFEST_NAME) else {
        return file_error(format!("no file '{MANIFEST_NAME}' in the boot archive"));
    };
    match core::str::from_utf8(bytes) {
        Ok(text) => parse_manifest_text(text, archive, machine_threads),
        Err(e) => file_error(format!(
            "not UTF-8 text (bad byte at offset {})",
            e.valid_up_to()
        )),
    }
}

/// A VM section being read.
struct Draft<'a> {
    name: &'a str,
    line: usize,
    /// The VM is skipped (errors were reported).
    bad: bool,
    /// (key, line) of each key seen, to report duplicates.
    seen: Vec<(&'static str, usize)>,
    vcpus: Option<u32>,
    threads: Option<u32>,
    memory: Option<u64>,
    hpt_order: Option<u32>,
    image: Option<(&'a str, &'a [u8])>,
    bootargs: Option<&'a str>,
    initrd: Option<(&'a str, &'a [u8])>,
    load_addr: Option<u64>,
    entry_little_endian: bool,
    console: bool,
    /// (name, line) of `after`.
    after: Option<(&'a str, usize)>,
    nvram: Option<u32>,
    net: Option<&'a str>,
    disks: Vec<DiskSpec<'a>>,
}

const KEYS: [&str; 14] = [
    "vcpus",
    "threads",
    "memory",
    "hpt_order",
    "image",
    "bootargs",
    "initrd",
    "load_addr",
    "entry_endian",
    "console",
    "after",
    "nvram",
    "net",
    "disk",
];

/// Keys that may repeat, each line adding one more.
const REPEATABLE: [&str; 1] = ["disk"];

/// Reads a `disk = ...` value.
fn parse_disk<'a>(value: &'a str, archive: &Archive<'a>) -> Result<DiskSpec<'a>, String> {
    let words: Vec<&'a str> = value.split_whitespace().collect();
    let usage = "expected 'image PATH', 'image PATH ro', 'scratch SIZE' or 'flash NAME'";
    let (source, read_only) = match words.as_slice() {
        ["image", path, rest @ ..] if matches!(rest, [] | ["ro"]) => {
            let Some(data) = archive.file(path) else {
                return Err(format!("disk image '{path}' is not a file in the boot archive"));
            };
            if data.is_empty() || !(data.len() as u64).is_multiple_of(crate::scsi::BLOCK) {
                return Err(format!(
                    "disk image '{path}' is {} bytes, not a non-zero multiple of 512",
                    data.len()
                ));
            }
            (DiskSource::Image(path, data), !rest.is_empty())
        }
        ["scratch", size] => match parse_size(size) {
            Some(n) if n > 0 && n.is_multiple_of(crate::scsi::BLOCK) => (DiskSource::Scratch(n), false),
            _ => return Err(format!("invalid scratch disk size '{size}' (expected a non-zero multiple of 512, e.g. 64M)")),
        },
        ["flash", name] if crate::scsi::flash::valid_name(name) => (DiskSource::Flash(name), false),
        ["flash", name] => {
            return Err(format!(
                "invalid flash disk name '{name}' (1 to {} of A-Z a-z 0-9 _ -)",
                crate::scsi::flash::MAX_NAME
            ))
        }
        _ => return Err(format!("invalid disk '{value}' ({usage}){}", comment_hint(value))),
    };
    Ok(DiskSpec { source, read_only })
}

/// Guest memory is a whole number of VRMA pages (16 MiB).
pub const MEMORY_MULTIPLE: u64 = 16 * MIB;

fn valid_vm_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= MAX_VM_NAME
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn comment_hint(v: &str) -> &'static str {
    if v.contains('#') {
        " (comments must be on their own line)"
    } else {
        ""
    }
}

/// Parses manifest `text`, resolving `image` and `initrd` paths in `archive`.
/// `machine_threads`: threads per core of this machine (the most a
/// vcore may have).
pub fn parse_manifest_text<'a>(
    text: &'a str,
    archive: &Archive<'a>,
    machine_threads: u32,
) -> Manifest<'a> {
    let mut out = Manifest::default();
    let mut drafts: Vec<Draft<'a>> = Vec::new();
    // Index of the VM being read, `None` before the first section or after
    // a broken section header (whose keys are then skipped silently).
    let mut current: Option<usize> = None;
    let mut broken_section = false;

    let error = |errors: &mut Vec<ManifestError>, line, vm: Option<&str>, message| {
        errors.push(ManifestError {
            file: MANIFEST_NAME,
            line,
            vm: vm.map(String::from),
            message,
        })
    };

    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            current = None;
            broken_section = true;
            let Some(inner) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) else {
                error(
                    &mut out.errors,
                    lineno,
                    None,
                    format!("unterminated section header '{line}'"),
                );
                continue;
            };
            let inner = inner.trim();
            let Some(name) = inner
                .strip_prefix("vm")
                .filter(|r| r.starts_with(char::is_whitespace))
                .map(str::trim)
            else {
                error(
                    &mut out.errors,
                    lineno,
                    None,
                    format!("unknown section '{line}' (expected '[vm NAME]')"),
                );
                continue;
            };
            if !valid_vm_name(name) {
                error(
                    &mut out.errors,
                    lineno,
                    None,
                    format!("invalid vm name '{name}' (1 to {MAX_VM_NAME} of A-Z a-z 0-9 _ - .)"),
                );
                continue;
            }
            let mut bad = false;
            if let Some(first) = drafts.iter().find(|d| d.name == name) {
                error(
                    &mut out.errors,
                    lineno,
                    Some(name),
                    format!(
                        "duplicate vm name '{name}' (first defined at line {})",
                        first.line
                    ),
                );
                bad = true;
            }
            broken_section = false;
            current = Some(drafts.len());
            drafts.push(Draft {
                name,
                line: lineno,
                bad,
                seen: Vec::new(),
                vcpus: None,
                threads: None,
                memory: None,
                hpt_order: None,
                image: None,
                bootargs: None,
                initrd: None,
                load_addr: None,
                entry_little_endian: false,
                console: false,
                after: None,
                nvram: None,
                net: None,
                disks: Vec::new(),
            });
            continue;
        }

        let Some(d) = current.map(|i| &mut drafts[i]) else {
            if !broken_section {
                error(
                    &mut out.errors,
                    lineno,
                    None,
                    format!("'{line}' outside a [vm NAME] section"),
                );
            }
            continue;
        };
        let mut fail = |d: &mut Draft<'a>, message: String| {
            d.bad = true;
            error(&mut out.errors, lineno, Some(d.name), message);
        };
        let Some((key, value)) = line.split_once('=') else {
            // `memory 1G`: do not also report 'memory' as missing.
            let first = line.split_whitespace().next().unwrap_or("");
            if let Some(&key) = KEYS.iter().find(|k| **k == first) {
                d.seen.push((key, lineno));
            }
            fail(d, format!("expected 'key = value', found '{line}'"));
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        let Some(&key) = KEYS.iter().find(|k| **k == key) else {
            fail(d, format!("unknown key '{key}'"));
            continue;
        };
        if let Some(&(_, first)) = d
            .seen
            .iter()
            .find(|(k, _)| *k == key && !REPEATABLE.contains(k))
        {
            fail(d, format!("duplicate key '{key}' (first at line {first})"));
            continue;
        }
        d.seen.push((key, lineno));
        if value.is_empty() && key != "bootargs" {
            fail(d, format!("missing value for '{key}'"));
            continue;
        }
        match key {
            "vcpus" | "threads" => match value.parse::<u32>() {
                Ok(n) if key == "vcpus" => d.vcpus = Some(n),
                Ok(n) => d.threads = Some(n),
                Err(_) => fail(
                    d,
                    format!(
                        "invalid {key} '{value}' (expected a number){}",
                        comment_hint(value)
                    ),
                ),
            },
            "memory" => match parse_size(value) {
                Some(m) if m > 0 && m.is_multiple_of(MEMORY_MULTIPLE) => d.memory = Some(m),
                Some(_) => fail(
                    d,
                    format!("memory '{value}' is not a non-zero multiple of 16M"),
                ),
                None => fail(
                    d,
                    format!(
                        "invalid memory size '{value}' (expected e.g. 256M or 1G){}",
                        comment_hint(value)
                    ),
                ),
            },
            "nvram" => match parse_size(value) {
                Some(n) if crate::nvram::valid_guest_size(n) => d.nvram = Some(n as u32),
                _ => fail(
                    d,
                    format!(
                        "invalid nvram size '{value}' (expected 8K..=1M, a multiple of 16){}",
                        comment_hint(value)
                    ),
                ),
            },
            "hpt_order" => match value.parse::<u32>() {
                Ok(o) if HPT_ORDERS.contains(&o) => d.hpt_order = Some(o),
                _ => fail(
                    d,
                    format!(
                        "invalid hpt_order '{value}' (expected {}..={}){}",
                        HPT_ORDERS.start(),
                        HPT_ORDERS.end(),
                        comment_hint(value)
                    ),
                ),
            },
            "image" | "initrd" => match archive.file(value) {
                Some(data) if key == "image" => d.image = Some((value, data)),
                Some(data) => d.initrd = Some((value, data)),
                None => fail(
                    d,
                    format!("{key} '{value}' is not a file in the boot archive"),
                ),
            },
            "bootargs" => d.bootargs = Some(value),
            "load_addr" => match value
                .strip_prefix("0x")
                .and_then(|h| u64::from_str_radix(h, 16).ok())
            {
                Some(a) if a.is_multiple_of(0x1000) => d.load_addr = Some(a),
                _ => fail(
                    d,
                    format!(
                        "invalid load_addr '{value}' (expected a 4K-aligned hex address like 0x400000){}",
                        comment_hint(value)
                    ),
                ),
            },
            "entry_endian" => match value {
                "big" => d.entry_little_endian = false,
                "little" => d.entry_little_endian = true,
                _ => fail(
                    d,
                    format!("invalid entry_endian '{value}' (expected big or little)"),
                ),
            },
            "console" => match value {
                "yes" => d.console = true,
                "no" => d.console = false,
                _ => fail(d, format!("invalid console '{value}' (expected yes or no)")),
            },
            "after" => d.after = Some((value, lineno)),
            "net" => {
                let names = value.split_whitespace();
                match names.clone().find(|n| !valid_vm_name(n)) {
                    Some(bad) => fail(
                        d,
                        format!(
                            "invalid LAN name '{bad}' (letters, digits, '_', '-', '.'; at most {MAX_VM_NAME}){}",
                            comment_hint(value)
                        ),
                    ),
                    None if names.count() > MAX_ADAPTERS => fail(
                        d,
                        format!("more than {MAX_ADAPTERS} network adapters: '{value}'"),
                    ),
                    None => d.net = Some(value),
                }
            }
            "disk" if d.disks.len() == MAX_DISKS => {
                fail(d, format!("more than {MAX_DISKS} disks"));
            }
            "disk" => match parse_disk(value, archive) {
                Ok(disk) => d.disks.push(disk),
                Err(e) => fail(d, e),
            },
            _ => unreachable!("key list and match disagree"),
        }
    }

    // Names of the VMs accepted so far (`after` must name one of them).
    let mut accepted: Vec<&'a str> = Vec::new();
    for (i, d) in drafts.iter().enumerate() {
        let mut missing = |key: &str, bad: &mut bool| {
            *bad = true;
            error(
                &mut out.errors,
                d.line,
                Some(d.name),
                format!("missing required key '{key}'"),
            );
        };
        let mut bad = d.bad;
        // Only report a missing key that was not present with a bad value.
        let absent = |k| !d.seen.iter().any(|(s, _)| *s == k);
        if d.memory.is_none() && absent("memory") {
            missing("memory", &mut bad);
        }
        if d.image.is_none() && absent("image") {
            missing("image", &mut bad);
        }
        // vcpus and threads together, against the machine.
        let line_of = |k| d.seen.iter().find(|(s, _)| *s == k).map(|(_, l)| *l);
        let layout = match Layout::new(
            d.vcpus.unwrap_or(1),
            d.threads.unwrap_or(1),
            machine_threads,
        ) {
            Ok(l) => l,
            Err(e) => {
                let at = match e {
                    LayoutError::NoVcpus | LayoutError::TooMany { .. } => line_of("vcpus"),
                    _ => line_of("threads").or(line_of("vcpus")),
                }
                .unwrap_or(d.line);
                error(&mut out.errors, at, Some(d.name), e.to_string());
                bad = true;
                Layout {
                    vcpus: 1,
                    threads: 1,
                }
            }
        };
        if let Some((after, at)) = d.after {
            let message = if !drafts[..i].iter().any(|o| o.name == after) {
                Some(format!("after: no VM named '{after}' is defined above"))
            } else if !accepted.contains(&after) {
                Some(format!(
                    "after: vm '{after}' is skipped, so this one could never start"
                ))
            } else {
                None
            };
            if let Some(m) = message {
                error(&mut out.errors, at, Some(d.name), m);
                bad = true;
            }
        }
        // One VM owns the console first; a second claim is an error (the
        // first accepted one keeps it).
        let console_owner = out.vms.iter().find(|v| v.console);
        if let (true, false, Some(owner)) = (d.console, bad, console_owner) {
            error(
                &mut out.errors,
                line_of("console").unwrap_or(d.line),
                Some(d.name),
                format!("console: vm '{}' already has the console first", owner.name),
            );
            bad = true;
        }
        if bad {
            continue;
        }
        let (Some(memory), Some((image_path, image))) = (d.memory, d.image) else {
            continue;
        };
        accepted.push(d.name);
        out.vms.push(VmSpec {
            name: d.name,
            line: d.line,
            layout,
            memory,
            hpt_order: d.hpt_order,
            image_path,
            image,
            bootargs: d.bootargs.unwrap_or(""),
            initrd: d.initrd,
            load_addr: d.load_addr,
            entry_little_endian: d.entry_little_endian,
            console: d.console,
            after: d.after.map(|a| a.0),
            nvram: d.nvram.unwrap_or(crate::nvram::GUEST_DEFAULT),
            net: d.net,
            disks: d.disks.clone(),
        });
    }
    out.errors.sort_by_key(|e| e.line);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn sample() -> Vec<u8> {
        build_newc(&[
            ("manifest", b"[vm a]\nmemory=1M\nimage=k\n"),
            ("k", b"kernel!"),
            ("dir/initrd", &[1, 2, 3, 4, 5, 6, 7, 8]),
            ("empty", b""),
        ])
    }

    fn err(bytes: &[u8]) -> ArchiveError {
        Archive::parse(bytes).unwrap_err()
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        assert!(bytes.len().is_multiple_of(4));
        let a = Archive::parse(&bytes).unwrap();
        assert_eq!(a.len(), 4);
        assert_eq!(a.byte_len(), bytes.len());
        assert_eq!(a.file("k"), Some(&b"kernel!"[..]));
        assert_eq!(a.file("./k"), Some(&b"kernel!"[..]));
        assert_eq!(a.file("dir/initrd"), Some(&[1, 2, 3, 4, 5, 6, 7, 8][..]));
        assert_eq!(a.file("empty"), Some(&b""[..]));
        assert_eq!(a.file("nope"), None);
        let names: Vec<_> = a.files().map(|(n, _)| n).collect();
        assert_eq!(names, ["manifest", "k", "dir/initrd", "empty"]);
        let iterated: Vec<_> = (&a).into_iter().map(|e| (e.name, e.data.len())).collect();
        assert_eq!(
            iterated,
            [("manifest", 25), ("k", 7), ("dir/initrd", 8), ("empty", 0)]
        );
        assert!(a.entries().all(|e| e.is_file() && e.mode == 0o100644));
        // Zero-copy: data points into the input.
        let k = a.file("k").unwrap();
        assert!(bytes.as_ptr_range().contains(&k.as_ptr()));
        // Header offsets are 4-byte aligned and the first is 0.
        assert_eq!(a.entries().next().unwrap().offset, 0);
        assert!(a.entries().all(|e| e.offset.is_multiple_of(4)));
    }

    #[test]
    fn empty_archive_and_trailing_padding() {
        let mut bytes = build_newc(&[]);
        let len = bytes.len();
        bytes.resize(512, 0);
        let a = Archive::parse(&bytes).unwrap();
        assert!(a.is_empty());
        assert_eq!(a.byte_len(), len);
    }

    /// An archive in the shape GNU cpio writes with `find . | cpio -o -H
    /// newc`: lower-case hex, a "." directory, "./" prefixes, a data-less
    /// trailer at the very end without padding.
    #[test]
    fn foreign_archive_with_directories_and_dot_slash() {
        fn entry(out: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]) {
            out.extend_from_slice(b"070701");
            let f = [1, mode, 0, 0, 1, 0, data.len() as u32, 8, 1, 0, 0];
            for v in f {
                out.extend_from_slice(format!("{v:08x}").as_bytes());
            }
            out.extend_from_slice(format!("{:08x}", name.len() + 1).as_bytes());
            out.extend_from_slice(b"00000000");
            out.extend_from_slice(name.as_bytes());
            out.push(0);
            while !out.len().is_multiple_of(4) {
                out.push(0);
            }
            out.extend_from_slice(data);
            while !out.len().is_multiple_of(4) {
                out.push(0);
            }
        }
        let mut b = Vec::new();
        entry(&mut b, ".", 0o40755, b"");
        entry(&mut b, "./guests", 0o40755, b"");
        entry(&mut b, "./guests/vmlinux", 0o100644, b"abc");
        entry(&mut b, "./link", 0o120777, b"guests/vmlinux");
        entry(&mut b, TRAILER_NAME, 0, b"");
        let a = Archive::parse(&b).unwrap();
        assert_eq!(a.len(), 4);
        assert_eq!(a.file("guests/vmlinux"), Some(&b"abc"[..]));
        assert_eq!(a.file("/guests/vmlinux"), Some(&b"abc"[..]));
        // Directories and symlinks are entries but not files.
        assert_eq!(a.file("guests"), None);
        assert_eq!(a.file("link"), None);
        assert_eq!(a.entries().filter(|e| e.is_file()).count(), 1);
        assert_eq!(a.entries().next().unwrap().name, ".");
    }

    #[test]
    fn bad_magic() {
        let mut b = sample();
        b[3] = b'2';
        let e = err(&b);
        assert_eq!(e.offset, 0);
        assert_eq!(e.kind, ArchiveErrorKind::BadMagic(*b"070201"));
        assert_eq!(
            e.to_string(),
            "boot archive offset 0x0: bad magic \"070201\" (expected \"070701\", cpio newc)"
        );
        // The second entry's magic is checked at its own offset.
        let b = sample();
        let second = Archive::parse(&b).unwrap().entries().nth(1).unwrap().offset;
        let mut b2 = b.clone();
        b2[second] = b'X';
        assert_eq!(err(&b2).offset, second);
        assert!(matches!(err(&b2).kind, ArchiveErrorKind::BadMagic(_)));
        // Binary junk.
        assert!(matches!(
            err(&[0xff; 200]).kind,
            ArchiveErrorKind::BadMagic([0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
        ));
    }

    #[test]
    fn truncated_header() {
        let b = sample();
        let e = err(&b[..50]);
        assert_eq!(e.offset, 0);
        assert_eq!(e.kind, ArchiveErrorKind::TruncatedHeader { have: 50 });
        assert_eq!(
            e.to_string(),
            "boot archive offset 0x0: truncated header (50 bytes left, a header is 110)"
        );
        assert_eq!(
            err(&b[..3]).kind,
            ArchiveErrorKind::TruncatedHeader { have: 3 }
        );
        // Cut inside the trailer's header.
        let trailer = b.len() - 124;
        let e = err(&b[..trailer + 20]);
        assert_eq!(e.offset, trailer);
        assert_eq!(e.kind, ArchiveErrorKind::TruncatedHeader { have: 20 });
    }

    #[test]
    fn non_hex_field() {
        let mut b = sample();
        // The filesize field of the first entry (field 6).
        b[6 + 6 * 8 + 3] = b'g';
        let e = err(&b);
        assert_eq!(e.offset, 6 + 6 * 8);
        assert_eq!(e.kind, ArchiveErrorKind::NonHexField { field: "filesize" });
        assert_eq!(
            e.to_string(),
            "boot archive offset 0x36: header field 'filesize' is not 8 hex digits"
        );
        let mut b = sample();
        b[6 + 12 * 8] = b' ';
        assert_eq!(
            err(&b).kind,
            ArchiveErrorKind::NonHexField { field: "check" }
        );
    }

    #[test]
    fn truncated_name_and_data() {
        let b = sample();
        // "manifest\0" is 9 bytes after the 110-byte header.
        let e = err(&b[..115]);
        assert_eq!(e.offset, 110);
        assert_eq!(
            e.kind,
            ArchiveErrorKind::TruncatedName {
                namesize: 9,
                have: 5
            }
        );
        assert_eq!(
            e.to_string(),
            "boot archive offset 0x6e: truncated name (9 bytes, 5 left)"
        );
        // Data starts at 120 (110 + 9 rounded up to 4) and is 25 bytes.
        let e = err(&b[..130]);
        assert_eq!(e.offset, 120);
        assert_eq!(
            e.kind,
            ArchiveErrorKind::TruncatedData {
                filesize: 25,
                have: 10
            }
        );
        assert_eq!(
            e.to_string(),
            "boot archive offset 0x78: truncated data (25 bytes, 10 left)"
        );
        // Name exactly at the end: the padding is missing, too.
        let e = err(&b[..119]);
        assert_eq!(
            e.kind,
            ArchiveErrorKind::TruncatedData {
                filesize: 25,
                have: 0
            }
        );
        assert_eq!(e.offset, 119);
    }

    #[test]
    fn missing_trailer() {
        let b = sample();
        let end = b.len() - 124; // the trailer: 110 + "TRAILER!!!\0", padded
        let e = err(&b[..end]);
        assert_eq!(e.offset, end);
        assert_eq!(e.kind, ArchiveErrorKind::MissingTrailer);
        assert_eq!(
            e.to_string(),
            format!("boot archive offset {end:#x}: end of input without a TRAILER!!! entry")
        );
        assert_eq!(err(&[]).kind, ArchiveErrorKind::MissingTrailer);
    }

    #[test]
    fn bad_names() {
        // namesize 0.
        let mut b = build_newc(&[("x", b"")]);
        b[6 + 11 * 8..6 + 12 * 8].copy_from_slice(b"00000000");
        assert_eq!(err(&b).kind, ArchiveErrorKind::BadName);
        assert_eq!(err(&b).offset, 110);
        // No NUL at the end of the name.
        let mut b = build_newc(&[("ab", b"")]);
        b[6 + 11 * 8..6 + 12 * 8].copy_from_slice(b"00000002");
        assert_eq!(err(&b).kind, ArchiveErrorKind::BadName);
        // A NUL inside the name.
        let mut b = build_newc(&[("ab", b"")]);
        b[110] = 0;
        assert_eq!(err(&b).kind, ArchiveErrorKind::BadName);
        // Not UTF-8.
        let mut b = build_newc(&[("ab", b"")]);
        b[110] = 0xc3;
        let e = err(&b);
        assert_eq!(e.kind, ArchiveErrorKind::NameNotUtf8);
        assert_eq!(e.to_string(), "boot archive offset 0x6e: name is not UTF-8");
    }

    #[test]
    fn duplicate_entries() {
        let b = build_newc(&[("a", b"1"), ("./a", b"2")]);
        let e = err(&b);
        assert_eq!(e.kind, ArchiveErrorKind::DuplicateName("a".into()));
        assert_eq!(e.offset, 116);
        assert_eq!(
            e.to_string(),
            "boot archive offset 0x74: duplicate entry 'a'"
        );
    }

    #[test]
    #[should_panic(expected = "bad cpio name")]
    fn builder_refuses_nul_in_names() {
        build_newc(&[("a\0b", b"")]);
    }

    // -- manifest --------------------------------------------------------

    fn archive_with(manifest: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
        let mut files: Vec<(&str, &[u8])> = alloc::vec![("manifest", manifest.as_bytes())];
        files.extend_from_slice(extra);
        build_newc(&files)
    }

    const FILES: &[(&str, &[u8])] = &[("vmlinux", b"\x7fELF kernel"), ("rootfs.cpio", b"rootfs")];

    fn manifest_of(bytes: &[u8]) -> Manifest<'_> {
        let a = Archive::parse(bytes).unwrap();
        parse_manifest(&a, 4)
    }

    fn messages(m: &Manifest<'_>) -> Vec<String> {
        m.errors.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn manifest_with_every_key() {
        let text = "\
# comment
  # indented comment

[vm web]
vcpus = 1
memory = 256M
hpt_order=24
image = vmlinux
initrd = ./rootfs.cpio
bootargs = console=hvc0 root=/dev/ram0 rdinit=/init # not a comment\r

[ vm  db ]
memory = 1G
image = vmlinux
";
        let bytes = archive_with(text, FILES);
        let m = manifest_of(&bytes);
        assert_eq!(messages(&m), Vec::<String>::new());
        assert_eq!(m.vms.len(), 2);
        let web = &m.vms[0];
        assert_eq!(
            *web,
            VmSpec {
                name: "web",
                line: 4,
                layout: Layout {
                    vcpus: 1,
                    threads: 1
                },
                memory: 256 * MIB,
                hpt_order: Some(24),
                image_path: "vmlinux",
                image: b"\x7fELF kernel",
                bootargs: "console=hvc0 root=/dev/ram0 rdinit=/init # not a comment",
                initrd: Some(("./rootfs.cpio", b"rootfs")),
                load_addr: None,
                entry_little_endian: false,
                console: false,
                after: None,
                nvram: 64 << 10,
                net: None,
                disks: Vec::new(),
            }
        );
        let db = &m.vms[1];
        assert_eq!(db.name, "db");
        assert_eq!(db.line, 12);
        assert_eq!(db.layout.vcpus, 1);
        assert_eq!(db.memory, 1024 * MIB);
        assert_eq!(db.hpt_order, None);
        assert_eq!(db.bootargs, "");
        assert_eq!(db.initrd, None);
    }

    #[test]
    fn nvram_size_defaults_to_64k_and_is_checked() {
        let text = "\
[vm big]
memory = 16M
image = vmlinux
nvram = 128K
[vm plain]
memory = 16M
image = vmlinux
[vm small]
memory = 16M
image = vmlinux
nvram = 4K
[vm odd]
memory = 16M
image = vmlinux
nvram = 65537
";
        let bytes = archive_with(text, FILES);
        let m = manifest_of(&bytes);
        let sizes: Vec<_> = m.vms.iter().map(|v| (v.name, v.nvram)).collect();
        assert_eq!(sizes, [("big", 128 << 10), ("plain", 64 << 10)]);
        assert_eq!(
            messages(&m),
            [
                "manifest:11: invalid nvram size '4K' (expected 8K..=1M, a multiple of 16) (vm 'small' skipped)",
                "manifest:15: invalid nvram size '65537' (expected 8K..=1M, a multiple of 16) (vm 'odd' skipped)",
            ]
        );
    }

    #[test]
    fn net_names_one_lan_per_adapter() {
        let text = "\
[vm one]
memory = 16M
image = vmlinux
net = lan0
[vm two]
memory = 16M
image = vmlinux
net = lan0  back-end
[vm none]
memory = 16M
image = vmlinux
[vm bad]
memory = 16M
image = vmlinux
net = lan0 l/an
[vm many]
memory = 16M
image = vmlinux
net = a b c d e
";
        let bytes = archive_with(text, FILES);
        let m = manifest_of(&bytes);
        let lans: Vec<(&str, Vec<&str>)> =
            m.vms.iter().map(|v| (v.name, v.lans().collect())).collect();
        assert_eq!(
            lans,
            [
                ("one", vec!["lan0"]),
                ("two", vec!["lan0", "back-end"]),
                ("none", vec![])
            ]
        );
        assert_eq!(
            messages(&m),
            [
                "manifest:15: invalid LAN name 'l/an' (letters, digits, '_', '-', '.'; at most 32) (vm 'bad' skipped)",
                "manifest:19: more than 4 network adapters: 'a b c d e' (vm 'many' skipped)",
            ]
        );
    }

    #[test]
    fn disks_are_luns_in_line_order() {
        let disk = [7u8; 1024];
        let files: &[(&str, &[u8])] = &[
            ("vmlinux", b"\x7fELF kernel"),
            ("root.ext2", &disk),
            ("odd.img", &disk[..1000]),
            ("empty.img", &[]),
        ];
        let text = "\
[vm one]
memory = 16M
image = vmlinux
disk = image root.ext2
disk = scratch 64M
disk = image  root.ext2   ro
disk = flash data
[vm none]
memory = 16M
image = vmlinux
[vm bad]
memory = 16M
image = vmlinux
disk = image odd.img
disk = image empty.img
disk = image nope.img
disk = scratch 1000
disk = scratch 64M ro
disk = tape 1
disk = image root.ext2 rw
disk = flash much-too-long
disk = flash data ro
[vm many]
memory = 16M
image = vmlinux
disk = scratch 1M
disk = scratch 1M
disk = scratch 1M
disk = scratch 1M
disk = scratch 1M
disk = scratch 1M
disk = scratch 1M
disk = scratch 1M
disk = scratch 1M
";
        let bytes = archive_with(text, files);
        let m = manifest_of(&bytes);
        let disks: Vec<(&str, &[DiskSpec])> =
            m.vms.iter().map(|v| (v.name, v.disks.as_slice())).collect();
        let image = DiskSource::Image("root.ext2", &disk);
        assert_eq!(
            disks,
            [
                (
                    "one",
                    &[
                        DiskSpec {
                            source: image.clone(),
                            read_only: false
                        },
                        DiskSpec {
                            source: DiskSource::Scratch(64 << 20),
                            read_only: false
                        },
                        DiskSpec {
                            source: image,
                            read_only: true
                        },
                        DiskSpec {
                            source: DiskSource::Flash("data"),
                            read_only: false
                        },
                    ][..]
                ),
                ("none", &[][..]),
            ]
        );
        assert_eq!(m.vms[0].disks[1].bytes(), Some(64 << 20));
        assert_eq!(m.vms[0].disks[3].bytes(), None);
        let usage = "(expected 'image PATH', 'image PATH ro', 'scratch SIZE' or 'flash NAME')";
        assert_eq!(
            messages(&m),
            [
                "manifest:14: disk image 'odd.img' is 1000 bytes, not a non-zero multiple of 512 (vm 'bad' skipped)".to_string(),
                "manifest:15: disk image 'empty.img' is 0 bytes, not a non-zero multiple of 512 (vm 'bad' skipped)".to_string(),
                "manifest:16: disk image 'nope.img' is not a file in the boot archive (vm 'bad' skipped)".to_string(),
                "manifest:17: invalid scratch disk size '1000' (expected a non-zero multiple of 512, e.g. 64M) (vm 'bad' skipped)".to_string(),
                format!("manifest:18: invalid disk 'scratch 64M ro' {usage} (vm 'bad' skipped)"),
                format!("manifest:19: invalid disk 'tape 1' {usage} (vm 'bad' skipped)"),
                format!("manifest:20: invalid disk 'image root.ext2 rw' {usage} (vm 'bad' skipped)"),
                "manifest:21: invalid flash disk name 'much-too-long' (1 to 10 of A-Z a-z 0-9 _ -) (vm 'bad' skipped)".to_string(),
                format!("manifest:22: invalid disk 'flash data ro' {usage} (vm 'bad' skipped)"),
                "manifest:34: more than 8 disks (vm 'many' skipped)".to_string(),
            ]
        );
    }

    #[test]
    fn after_names_a_vm_defined_and_accepted_above() {
        let text = "\
[vm first]
memory = 128M
image = vmlinux

[vm second]
memory = 128M
image = vmlinux
after = first

[vm early]
memory = 128M
image = vmlinux
after = later

[vm later]
memory = 128M
mem = 1
image = vmlinux

[vm orphan]
memory = 128M
image = vmlinux
after = later
";
        let bytes = archive_with(text, FILES);
        let m = manifest_of(&bytes);
        let names: Vec<_> = m.vms.iter().map(|v| (v.name, v.after)).collect();
        assert_eq!(names, [("first", None), ("second", Some("first"))]);
        assert_eq!(
            messages(&m),
            [
                "manifest:13: after: no VM named 'later' is defined above (vm 'early' skipped)",
                "manifest:17: unknown key 'mem' (vm 'later' skipped)",
                "manifest:23: after: vm 'later' is skipped, so this one could never start (vm 'orphan' skipped)",
            ]
        );
    }

    #[test]
    fn one_good_and_one_bad_vm() {
        let text = "\
[vm good]
memory = 128M
image = vmlinux

[vm bad]
memory = 128M
memroy = 256M
image = vmlinux
";
        let bytes = archive_with(text, FILES);
        let m = manifest_of(&bytes);
        assert_eq!(m.vms.len(), 1);
        assert_eq!(m.vms[0].name, "good");
        assert_eq!(
            messages(&m),
            ["manifest:7: unknown key 'memroy' (vm 'bad' skipped)"]
        );
        let e = &m.errors[0];
        assert_eq!(
            (e.file, e.line, e.vm.as_deref()),
            ("manifest", 7, Some("bad"))
        );
        assert_eq!(e.message, "unknown key 'memroy'");
    }

    #[test]
    fn manifest_errors() {
        let text = "\
memory = 1G
[vm smt]
vcpus = 4096
memory = 1G
image = vmlinux
[vm zero]
vcpus = 0
memory = 1G
image = vmlinux
[vm nomem]
image = vmlinux
[vm noimage]
memory = 64M
[vm sizes]
memory = 1.5G
image = vmlinux
[vm odd]
memory = 1000K
image = vmlinux
[vm hpt]
memory = 1G
hpt_order = 17
image = vmlinux
[vm hpt2]
memory = 1G
hpt_order = 47
image = vmlinux
[vm missing]
memory = 1G
image = bzImage
initrd = nope.cpio
[vm dupkey]
memory = 1G
memory = 2G
image = vmlinux
[vm syntax]
memory 1G
image = vmlinux
[vm empty]
memory =
image = vmlinux
[vm smt]
memory = 1G
image = vmlinux
[vm trailing]
memory = 1G # one gig
image = vmlinux
[vm bad name!]
memory = 1G
[host]
memory = 1G
[vm ok]
memory = 16M
image = vmlinux
[vm unterminated
[vm]
[vmfoo]
[vm 012345678901234567890123456789012]
";
        let bytes = archive_with(text, FILES);
        let m = manifest_of(&bytes);
        let names: Vec<_> = m.vms.iter().map(|v| v.name).collect();
        assert_eq!(names, ["ok"]);
        let expected = [
            "manifest:1: 'memory = 1G' outside a [vm NAME] section",
            "manifest:3: vcpus = 4096 is more than the 256 a VM may have (vm 'smt' skipped)",
            "manifest:7: vcpus must be at least 1 (vm 'zero' skipped)",
            "manifest:10: missing required key 'memory' (vm 'nomem' skipped)",
            "manifest:12: missing required key 'image' (vm 'noimage' skipped)",
            "manifest:15: invalid memory size '1.5G' (expected e.g. 256M or 1G) (vm 'sizes' skipped)",
            "manifest:18: memory '1000K' is not a non-zero multiple of 16M (vm 'odd' skipped)",
            "manifest:22: invalid hpt_order '17' (expected 18..=46) (vm 'hpt' skipped)",
            "manifest:26: invalid hpt_order '47' (expected 18..=46) (vm 'hpt2' skipped)",
            "manifest:30: image 'bzImage' is not a file in the boot archive (vm 'missing' skipped)",
            "manifest:31: initrd 'nope.cpio' is not a file in the boot archive (vm 'missing' skipped)",
            "manifest:34: duplicate key 'memory' (first at line 33) (vm 'dupkey' skipped)",
            "manifest:37: expected 'key = value', found 'memory 1G' (vm 'syntax' skipped)",
            "manifest:40: missing value for 'memory' (vm 'empty' skipped)",
            "manifest:42: duplicate vm name 'smt' (first defined at line 2) (vm 'smt' skipped)",
            "manifest:46: invalid memory size '1G # one gig' (expected e.g. 256M or 1G) (comments must be on their own line) (vm 'trailing' skipped)",
            "manifest:48: invalid vm name 'bad name!' (1 to 32 of A-Z a-z 0-9 _ - .)",
            "manifest:50: unknown section '[host]' (expected '[vm NAME]')",
            "manifest:55: unterminated section header '[vm unterminated'",
            "manifest:56: unknown section '[vm]' (expected '[vm NAME]')",
            "manifest:57: unknown section '[vmfoo]' (expected '[vm NAME]')",
            "manifest:58: invalid vm name '012345678901234567890123456789012' (1 to 32 of A-Z a-z 0-9 _ - .)",
        ];
        assert_eq!(messages(&m), expected);
    }

    #[test]
    fn placement_endianness_and_console_keys() {
        let text = "[vm a]\nmemory = 32M\nimage = vmlinux\nload_addr = 0x10000\nentry_endian = little\nconsole = yes\n\
                    [vm b]\nmemory = 24M\nimage = vmlinux\n\
                    [vm c]\nmemory = 16M\nimage = vmlinux\nload_addr = 4096\nentry_endian = middle\nconsole = maybe\nload_addr = 0x1001\n";
        let bytes = archive_with(text, FILES);
        let m = manifest_of(&bytes);
        assert_eq!(m.vms.len(), 1);
        let a = &m.vms[0];
        assert_eq!(
            (a.load_addr, a.entry_little_endian, a.console),
            (Some(0x10000), true, true)
        );
        assert_eq!(
            messages(&m),
            [
                "manifest:8: memory '24M' is not a non-zero multiple of 16M (vm 'b' skipped)",
                "manifest:13: invalid load_addr '4096' (expected a 4K-aligned hex address like 0x400000) (vm 'c' skipped)",
                "manifest:14: invalid entry_endian 'middle' (expected big or little) (vm 'c' skipped)",
                "manifest:15: invalid console 'maybe' (expected yes or no) (vm 'c' skipped)",
                "manifest:16: duplicate key 'load_addr' (first at line 13) (vm 'c' skipped)",
            ]
        );
    }

    #[test]
    fn a_second_console_claim_is_an_error() {
        // A skipped VM's claim does not count; the first accepted keeps it.
        let text = "[vm a]\nmemory = 24M\nimage = vmlinux\nconsole = yes\n\
                    [vm b]\nmemory = 16M\nimage = vmlinux\nconsole = yes\n\
                    [vm c]\nconsole = yes\nmemory = 16M\nimage = vmlinux\n";
        let bytes = archive_with(text, FILES);
        let m = manifest_of(&bytes);
        let names: Vec<_> = m.vms.iter().map(|v| (v.name, v.console)).collect();
        assert_eq!(names, [("b", true)]);
        assert_eq!(
            messages(&m),
            [
                "manifest:2: memory '24M' is not a non-zero multiple of 16M (vm 'a' skipped)",
                "manifest:10: console: vm 'b' already has the console first (vm 'c' skipped)",
            ]
        );
    }

    #[test]
    fn a_key_with_a_bad_value_is_not_also_reported_missing() {
        let text = "[vm a]\nmemory = lots\nimage = gone\n";
        let bytes = archive_with(text, FILES);
        let m = manifest_of(&bytes);
        assert!(m.vms.is_empty());
        assert_eq!(m.errors.len(), 2, "{:?}", messages(&m));
    }

    #[test]
    fn image_must_be_a_regular_file() {
        // A directory entry named like the image does not count.
        // Build with a file "dir", then patch its mode to S_IFDIR 0755.
        let text = b"[vm a]\nmemory=16M\nimage=dir\n";
        let mut b = build_newc(&[("manifest", text), ("dir", b"")]);
        let a = Archive::parse(&b).unwrap();
        let dir = a.entries().nth(1).unwrap().offset;
        b[dir + 14..dir + 22].copy_from_slice(b"000041ED");
        let m = manifest_of(&b);
        assert_eq!(
            messages(&m),
            ["manifest:3: image 'dir' is not a file in the boot archive (vm 'a' skipped)"]
        );
    }

    #[test]
    fn missing_or_binary_manifest() {
        let bytes = build_newc(&[("hv.manifest", b"")]);
        let m = manifest_of(&bytes);
        assert!(m.vms.is_empty());
        assert_eq!(
            messages(&m),
            ["manifest: no file 'manifest' in the boot archive"]
        );
        let bytes = build_newc(&[("manifest", b"[vm a]\n\xff\n")]);
        assert_eq!(
            messages(&manifest_of(&bytes)),
            ["manifest: not UTF-8 text (bad byte at offset 7)"]
        );
    }

    #[test]
    fn empty_manifest_has_no_vms_and_no_errors() {
        let bytes = archive_with("# nothing yet\n\n", &[]);
        assert_eq!(manifest_of(&bytes), Manifest::default());
    }

    #[test]
    fn threads_must_fit_the_machine_and_divide_vcpus() {
        let text = "\
[vm three]
threads = 3
memory = 16M
image = vmlinux
[vm eight]
threads = 8
memory = 16M
image = vmlinux
[vm uneven]
threads = 2
memory = 16M
image = vmlinux
[vm word]
threads = four
memory = 16M
image = vmlinux
[vm one]
threads = 1
memory = 16M
image = vmlinux
";
        let bytes = archive_with(text, FILES);
        // manifest_of reads it for a machine with 4 threads per core.
        let m = manifest_of(&bytes);
        let names: Vec<_> = m.vms.iter().map(|v| v.name).collect();
        assert_eq!(names, ["one"]);
        assert_eq!(
            m.vms[0].layout,
            Layout {
                vcpus: 1,
                threads: 1
            }
        );
        let errors: Vec<_> = m.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            errors,
            [
                "manifest:2: threads = 3: must be 1, 2, 4 or 8 (vm 'three' skipped)",
                "manifest:6: threads = 8 is more than the 4 threads per core this machine has (vm 'eight' skipped)",
                "manifest:10: vcpus = 1 is not a multiple of threads = 2 (vm 'uneven' skipped)",
                "manifest:14: invalid threads 'four' (expected a number) (vm 'word' skipped)",
            ]
        );
    }
}
