//! The PNOR `ROOTFS` container: how a boot archive travels in flash.
//!
//! skiboot loads the `ROOTFS` partition as the payload's initramfs, but it
//! sizes an unsigned partition by the ELF header at its start (the section
//! header table's end, `e_shoff + e_shentsize * e_shnum`: skiboot
//! `core/flash.c`, `sizeof_elf_from_hdr`); a bare cpio archive there is
//! refused with "Invalid ELF header part ROOTFS". So `cargo xtask pnor`
//! wraps the archive in a minimal ELF64 little-endian file: no program
//! headers, one `SHT_PROGBITS` section named [`SECTION`] holding the
//! archive at [`ARCHIVE_OFFSET`], a `.shstrtab`, and the section header
//! table last. skiboot hands the whole file over as the initrd; the
//! firmware finds the archive with [`unwrap`]. An initrd that does not
//! start with the ELF magic (QEMU's `-initrd`) is the archive itself.
//!
//! This is skiboot's behaviour, not QEMU's: the same container is what an
//! OpenPOWER machine's skiboot needs.

use alloc::vec::Vec;
use core::fmt;

/// The section holding the boot archive.
pub const SECTION: &str = ".hvarchive";
/// Where the archive starts in the container (page aligned, so the archive
/// in memory is as aligned as one QEMU loads).
pub const ARCHIVE_OFFSET: usize = 0x1000;

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const EHDR_LEN: usize = 64;
const SHDR_LEN: usize = 64;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EV_CURRENT: u8 = 1;
const ET_NONE: u16 = 0;
const EM_PPC64: u16 = 21;
const SHT_PROGBITS: u32 = 1;
const SHT_STRTAB: u32 = 3;
/// The section name table: "", SECTION, ".shstrtab", each NUL-terminated.
const SHSTRTAB: &[u8] = b"\0.hvarchive\0.shstrtab\0";
const NAME_ARCHIVE: u32 = 1;
const NAME_SHSTRTAB: u32 = 1 + SECTION.len() as u32 + 1;

/// Why an initrd that starts like an ELF file is not a valid container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootfsError {
    /// Shorter than the ELF header.
    Truncated,
    /// Not ELF64, little-endian, version 1, with 64-byte section headers.
    NotElf64Le,
    /// The section header table runs past the end of the data.
    SectionTablePastEnd { end: u64, len: usize },
    /// No section named [`SECTION`] of type `SHT_PROGBITS`.
    NoArchiveSection,
    /// The archive section runs past the end of the data.
    ArchivePastEnd { end: u64, len: usize },
}

impl fmt::Display for RootfsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "flash ROOTFS container: ")?;
        match self {
            Self::Truncated => write!(f, "shorter than an ELF header"),
            Self::NotElf64Le => write!(f, "not a 64-bit little-endian ELF file"),
            Self::SectionTablePastEnd { end, len } => write!(
                f,
                "section headers end at byte {end}, past the {len} bytes skiboot loaded"
            ),
            Self::NoArchiveSection => write!(f, "no {SECTION} section"),
            Self::ArchivePastEnd { end, len } => write!(
                f,
                "{SECTION} ends at byte {end}, past the {len} bytes skiboot loaded"
            ),
        }
    }
}

/// Wraps `archive` in the container (see the module text).
pub fn wrap(archive: &[u8]) -> Vec<u8> {
    let strtab_off = ARCHIVE_OFFSET + archive.len();
    let shoff = (strtab_off + SHSTRTAB.len()).next_multiple_of(8);
    let mut b = alloc::vec![0u8; shoff + 3 * SHDR_LEN];
    b[0..4].copy_from_slice(ELF_MAGIC);
    b[4] = ELFCLASS64;
    b[5] = ELFDATA2LSB;
    b[6] = EV_CURRENT;
    put16(&mut b, 16, ET_NONE);
    put16(&mut b, 18, EM_PPC64);
    put32(&mut b, 20, EV_CURRENT as u32);
    put64(&mut b, 40, shoff as u64);
    put16(&mut b, 52, EHDR_LEN as u16);
    put16(&mut b, 58, SHDR_LEN as u16);
    put16(&mut b, 60, 3);
    put16(&mut b, 62, 2); // e_shstrndx
    b[ARCHIVE_OFFSET..strtab_off].copy_from_slice(archive);
    b[strtab_off..strtab_off + SHSTRTAB.len()].copy_from_slice(SHSTRTAB);
    // Section 0 stays all zeros (SHN_UNDEF).
    let sections = [
        (
            NAME_ARCHIVE,
            SHT_PROGBITS,
            ARCHIVE_OFFSET,
            archive.len(),
            8u64,
        ),
        (NAME_SHSTRTAB, SHT_STRTAB, strtab_off, SHSTRTAB.len(), 1),
    ];
    for (i, (name, kind, off, size, align)) in sections.into_iter().enumerate() {
        let h = shoff + (i + 1) * SHDR_LEN;
        put32(&mut b, h, name);
        put32(&mut b, h + 4, kind);
        put64(&mut b, h + 24, off as u64);
        put64(&mut b, h + 32, size as u64);
        put64(&mut b, h + 48, align);
    }
    b
}

/// The boot archive inside an initrd: `Ok(None)` when `initrd` is not a
/// container (it is then the archive itself), `Ok(Some(archive))` when it
/// is one (an empty archive is an empty slice), an error when it starts
/// with the ELF magic but is not a valid container.
pub fn unwrap(initrd: &[u8]) -> Result<Option<&[u8]>, RootfsError> {
    if !initrd.starts_with(ELF_MAGIC) {
        return Ok(None);
    }
    if initrd.len() < EHDR_LEN {
        return Err(RootfsError::Truncated);
    }
    if initrd[4] != ELFCLASS64
        || initrd[5] != ELFDATA2LSB
        || initrd[6] != EV_CURRENT
        || get16(initrd, 58) as usize != SHDR_LEN
    {
        return Err(RootfsError::NotElf64Le);
    }
    let shoff = get64(initrd, 40);
    let shnum = get16(initrd, 60) as u64;
    let shstrndx = get16(initrd, 62) as u64;
    let len = initrd.len();
    let end = shoff.saturating_add(shnum * SHDR_LEN as u64);
    if end > len as u64 {
        return Err(RootfsError::SectionTablePastEnd { end, len });
    }
    let header = |i: u64| (shoff + i * SHDR_LEN as u64) as usize;
    let section = |i: u64| -> Option<(u32, u32, u64, u64)> {
        if i >= shnum {
            return None;
        }
        let h = header(i);
        Some((
            get32(initrd, h),
            get32(initrd, h + 4),
            get64(initrd, h + 24),
            get64(initrd, h + 32),
        ))
    };
    let name_of = |name: u32| -> Option<&[u8]> {
        let (_, kind, off, size) = section(shstrndx)?;
        let end = off.checked_add(size)?;
        if kind != SHT_STRTAB || end > len as u64 || name as u64 >= size {
            return None;
        }
        let table = &initrd[off as usize + name as usize..end as usize];
        table.iter().position(|&c| c == 0).map(|n| &table[..n])
    };
    for i in 1..shnum {
        let Some((name, kind, off, size)) = section(i) else {
            break;
        };
        if kind != SHT_PROGBITS || name_of(name) != Some(SECTION.as_bytes()) {
            continue;
        }
        let end = off.saturating_add(size);
        if end > len as u64 {
            return Err(RootfsError::ArchivePastEnd { end, len });
        }
        return Ok(Some(&initrd[off as usize..end as usize]));
    }
    Err(RootfsError::NoArchiveSection)
}

/// The length skiboot computes for a container it loads from flash
/// (skiboot `sizeof_elf_from_hdr`): where the section header table ends.
/// `None` unless `file` is a 64-bit little-endian ELF file (skiboot reads
/// the other kinds too, but the firmware and the container are this kind).
pub fn skiboot_size(file: &[u8]) -> Option<u64> {
    if file.len() < EHDR_LEN
        || !file.starts_with(ELF_MAGIC)
        || file[4] != ELFCLASS64
        || file[5] != ELFDATA2LSB
    {
        return None;
    }
    Some(get64(file, 40).saturating_add(get16(file, 58) as u64 * get16(file, 60) as u64))
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn get64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_archive_comes_back_and_skiboot_sizes_the_whole_file() {
        for archive in [&b""[..], b"0707010000", &[0xa5; 5000][..]] {
            let c = wrap(archive);
            assert_eq!(unwrap(&c), Ok(Some(archive)));
            // skiboot loads exactly the file: nothing is cut off, nothing
            // read past it.
            assert_eq!(skiboot_size(&c), Some(c.len() as u64));
            assert_eq!(&c[ARCHIVE_OFFSET..ARCHIVE_OFFSET + archive.len()], archive);
        }
    }

    #[test]
    fn skiboot_size_of_odd_headers() {
        let mut c = wrap(b"x");
        put64(&mut c, 40, u64::MAX);
        assert_eq!(skiboot_size(&c), Some(u64::MAX));
        c[5] = 2; // big-endian
        assert_eq!(skiboot_size(&c), None);
        assert_eq!(skiboot_size(b"\x7fELF"), None);
    }

    #[test]
    fn a_bare_archive_is_not_a_container() {
        assert_eq!(unwrap(b"070701..."), Ok(None));
        assert_eq!(unwrap(b""), Ok(None));
    }

    #[test]
    fn broken_containers_are_errors_not_archives() {
        let c = wrap(b"0707010000");
        assert_eq!(unwrap(&c[..40]), Err(RootfsError::Truncated));
        // skiboot loaded less than the section table: a cut-off partition.
        let cut = &c[..c.len() - 1];
        assert!(matches!(
            unwrap(cut),
            Err(RootfsError::SectionTablePastEnd { .. })
        ));
        let mut big_endian = c.clone();
        big_endian[5] = 2;
        assert_eq!(unwrap(&big_endian), Err(RootfsError::NotElf64Le));
        // Renamed section: not ours.
        let mut renamed = c.clone();
        let at = ARCHIVE_OFFSET + 10 + 2;
        assert_eq!(renamed[at], b'h');
        renamed[at] = b'x';
        assert_eq!(unwrap(&renamed), Err(RootfsError::NoArchiveSection));
        // Archive size pointing past the end.
        let mut long = c.clone();
        let shoff = get64(&c, 40) as usize;
        put64(&mut long, shoff + SHDR_LEN + 32, 1 << 40);
        assert!(matches!(
            unwrap(&long),
            Err(RootfsError::ArchivePastEnd { .. })
        ));
        // A name index past the string table.
        let mut name = c.clone();
        put32(&mut name, shoff + SHDR_LEN, 999);
        assert_eq!(unwrap(&name), Err(RootfsError::NoArchiveSection));
    }

    #[test]
    fn every_prefix_and_byte_flip_is_handled_without_panic() {
        let c = wrap(b"07070100000000");
        for n in 0..c.len() {
            let _ = unwrap(&c[..n]);
        }
        for i in (0..64).chain(c.len() - 3 * SHDR_LEN..c.len()) {
            for v in [0u8, 0xff, 0x80, 1] {
                let mut m = c.clone();
                m[i] = v;
                let _ = unwrap(&m);
            }
        }
    }
}
