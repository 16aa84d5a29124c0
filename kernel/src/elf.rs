//! Loading a little-endian ELF64 guest image into guest memory.
//!
//! A segment's link address is its `p_paddr`, or `p_vaddr` with the top 4
//! bits cleared when `p_paddr` is 0 (a Linux `vmlinux` linked at
//! 0xc000...); the entry point likewise. Placement follows QEMU's pseries
//! machine (`translate_kernel_address`: `kernel-addr` 0x400000 plus the
//! link address) for images linked below [`KERNEL_ADDR`] (a `vmlinux`, a
//! relocatable kernel linked at 0), so they run as they do there and never
//! over their own vector area; images linked at or above it load where
//! they are linked; a manifest `load_addr` moves the lowest segment to a
//! chosen address. Every segment must fit in guest memory.

use core::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    NotElf,
    NotLittleEndian64,
    NotPowerPc64,
    Truncated(&'static str),
    /// A segment [start, end) lies outside guest memory of `mem` bytes.
    OutOfMemory {
        start: u64,
        end: u64,
        mem: u64,
    },
    NoLoadableSegment,
    EntryOutside(u64),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::NotElf => write!(f, "not an ELF file"),
            ElfError::NotLittleEndian64 => write!(f, "not a little-endian 64-bit ELF"),
            ElfError::NotPowerPc64 => write!(f, "not a PowerPC64 ELF (e_machine != 21)"),
            ElfError::Truncated(w) => write!(f, "file truncated in {w}"),
            ElfError::OutOfMemory { start, end, mem } => {
                write!(
                    f,
                    "segment {start:#x}-{end:#x} does not fit in {} MiB of guest memory",
                    mem >> 20
                )
            }
            ElfError::NoLoadableSegment => write!(f, "no PT_LOAD segment"),
            ElfError::EntryOutside(e) => {
                write!(f, "entry point {e:#x} is outside the loaded segments")
            }
        }
    }
}

/// Guest-physical address for an ELF address (see module doc).
fn phys(paddr: u64, vaddr: u64) -> u64 {
    if paddr != 0 {
        paddr
    } else {
        vaddr & 0x0fff_ffff_ffff_ffff
    }
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

/// A loaded image: entry point and the guest-physical range it spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded {
    pub entry: u64,
    pub start: u64,
    pub end: u64,
}

/// QEMU pseries' default `kernel-addr`.
pub const KERNEL_ADDR: u64 = 0x40_0000;

/// Copies every PT_LOAD segment of `image` into `mem` (guest memory,
/// guest-physical 0 at `mem[0]`), zeroing the part beyond the file size,
/// placed as the module documentation says (`load_addr`: where the lowest
/// segment goes). Nothing is written unless every segment fits.
pub fn load(image: &[u8], mem: &mut [u8], load_addr: Option<u64>) -> Result<Loaded, ElfError> {
    if image.get(0..4) != Some(b"\x7fELF") {
        return Err(ElfError::NotElf);
    }
    if image.get(4) != Some(&2) || image.get(5) != Some(&1) {
        return Err(ElfError::NotLittleEndian64);
    }
    if u16_at(image, 18) != Some(21) {
        return Err(ElfError::NotPowerPc64);
    }
    let t = ElfError::Truncated("the ELF header");
    let entry = u64_at(image, 24).ok_or(t)?;
    let phoff = u64_at(image, 32).ok_or(t)? as usize;
    let phentsize = u16_at(image, 54).ok_or(t)? as usize;
    let phnum = u16_at(image, 56).ok_or(t)? as usize;
    let memsz_total = mem.len() as u64;
    let mut segs = [(0u64, 0u64, 0u64, 0u64); 16]; // (dst, off, filesz, memsz)
    let mut n = 0;
    for i in 0..phnum {
        let o = phoff
            .checked_add(i.checked_mul(phentsize).ok_or(t)?)
            .ok_or(t)?;
        let th = ElfError::Truncated("a program header");
        if u32_at(image, o).ok_or(th)? != 1 {
            continue;
        }
        let off = u64_at(image, o + 8).ok_or(th)?;
        let vaddr = u64_at(image, o + 16).ok_or(th)?;
        let paddr = u64_at(image, o + 24).ok_or(th)?;
        let filesz = u64_at(image, o + 32).ok_or(th)?;
        let memsz = u64_at(image, o + 40).ok_or(th)?;
        let dst = phys(paddr, vaddr);
        if off
            .checked_add(filesz)
            .is_none_or(|e| e > image.len() as u64)
        {
            return Err(ElfError::Truncated("a segment's data"));
        }
        if n == segs.len() {
            return Err(ElfError::Truncated("too many segments"));
        }
        segs[n] = (dst, off, filesz, memsz.max(filesz));
        n += 1;
    }
    if n == 0 {
        return Err(ElfError::NoLoadableSegment);
    }
    let link = segs[..n].iter().map(|s| s.0).min().unwrap_or(0);
    let to = match load_addr {
        Some(a) => a,
        None if link < KERNEL_ADDR => link + KERNEL_ADDR,
        None => link,
    };
    for s in &mut segs[..n] {
        let too_far = ElfError::OutOfMemory {
            start: s.0,
            end: u64::MAX,
            mem: memsz_total,
        };
        s.0 = (s.0 - link).checked_add(to).ok_or(too_far)?;
        let end = s.0.checked_add(s.3).ok_or(too_far)?;
        if end > memsz_total {
            return Err(ElfError::OutOfMemory {
                start: s.0,
                end,
                mem: memsz_total,
            });
        }
    }
    let entry = phys(0, entry).wrapping_sub(link).wrapping_add(to);
    let start = segs[..n].iter().map(|s| s.0).min().unwrap_or(0);
    let end = segs[..n].iter().map(|s| s.0 + s.3).max().unwrap_or(0);
    if !segs[..n].iter().any(|s| (s.0..s.0 + s.3).contains(&entry)) {
        return Err(ElfError::EntryOutside(entry));
    }
    for &(dst, off, filesz, memsz) in &segs[..n] {
        let (d, o, f, m) = (dst as usize, off as usize, filesz as usize, memsz as usize);
        mem[d..d + f].copy_from_slice(&image[o..o + f]);
        mem[d + f..d + m].fill(0);
    }
    Ok(Loaded { entry, start, end })
}

/// A minimal little-endian PowerPC64 ELF with entry point `entry` and
/// one PT_LOAD per (vaddr, paddr, data, memsz), for host tools and tests.
pub fn build(entry: u64, segs: &[(u64, u64, &[u8], u64)]) -> alloc::vec::Vec<u8> {
    let mut b = alloc::vec![0u8; 64 + 56 * segs.len()];
    b[0..4].copy_from_slice(b"\x7fELF");
    b[4] = 2;
    b[5] = 1;
    b[6] = 1;
    b[16..18].copy_from_slice(&2u16.to_le_bytes());
    b[18..20].copy_from_slice(&21u16.to_le_bytes());
    b[24..32].copy_from_slice(&entry.to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes());
    b[54..56].copy_from_slice(&56u16.to_le_bytes());
    b[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
    for (i, (v, p, data, memsz)) in segs.iter().enumerate() {
        let off = b.len() as u64;
        b.extend_from_slice(data);
        let h = 64 + 56 * i;
        b[h..h + 4].copy_from_slice(&1u32.to_le_bytes());
        b[h + 8..h + 16].copy_from_slice(&off.to_le_bytes());
        b[h + 16..h + 24].copy_from_slice(&v.to_le_bytes());
        b[h + 24..h + 32].copy_from_slice(&p.to_le_bytes());
        b[h + 32..h + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
        b[h + 40..h + 48].copy_from_slice(&memsz.to_le_bytes());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(entry: u64, segs: &[(u64, u64, &[u8], u64)]) -> Vec<u8> {
        build(entry, segs)
    }

    #[test]
    fn loads_at_paddr_and_zeroes_bss() {
        let img = elf(0x40_0000, &[(0x40_0000, 0x40_0000, b"code", 16)]);
        let mut mem = vec![0xffu8; 0x50_0000];
        let l = load(&img, &mut mem, None).unwrap();
        assert_eq!(
            l,
            Loaded {
                entry: 0x40_0000,
                start: 0x40_0000,
                end: 0x40_0010
            }
        );
        assert_eq!(&mem[0x40_0000..0x40_0004], b"code");
        assert!(mem[0x40_0004..0x40_0010].iter().all(|b| *b == 0));
        assert_eq!(mem[0x40_0010], 0xff);
    }

    #[test]
    fn images_linked_low_go_to_kernel_addr_as_on_qemu_pseries() {
        // A vmlinux: vaddr 0xc000..., paddr 0.
        let img = elf(
            0xc000_0000_0000_0100,
            &[(0xc000_0000_0000_0000, 0, b"linux", 0x200)],
        );
        let mut mem = vec![0u8; 0x50_0000];
        let l = load(&img, &mut mem, None).unwrap();
        assert_eq!((l.entry, l.start), (0x40_0100, 0x40_0000));
        assert_eq!(&mem[0x40_0000..0x40_0005], b"linux");
        assert!(
            mem[..0x40_0000].iter().all(|b| *b == 0),
            "vectors untouched"
        );
        // A relocatable test kernel linked at 0x10000.
        let img = elf(0x10040, &[(0x10000, 0x10000, b"tk", 0x100)]);
        let l = load(&img, &mut mem, None).unwrap();
        assert_eq!((l.entry, l.start), (0x41_0040, 0x41_0000));
    }

    #[test]
    fn load_addr_moves_the_lowest_segment() {
        let img = elf(
            0x10040,
            &[
                (0x10000, 0x10000, b"a", 0x100),
                (0x20000, 0x20000, b"b", 0x10),
            ],
        );
        let mut mem = vec![0u8; 0x40000];
        let l = load(&img, &mut mem, Some(0x1000)).unwrap();
        assert_eq!((l.entry, l.start, l.end), (0x1040, 0x1000, 0x11010));
        assert_eq!((mem[0x1000], mem[0x11000]), (b'a', b'b'));
        assert_eq!(
            load(&img, &mut mem, Some(0x3_0000)),
            Err(ElfError::OutOfMemory {
                start: 0x4_0000,
                end: 0x4_0010,
                mem: 0x4_0000
            })
        );
        assert!(matches!(
            load(&img, &mut mem, Some(u64::MAX - 0xfff)),
            Err(ElfError::OutOfMemory { .. })
        ));
    }

    #[test]
    fn bad_images_are_refused_without_writing() {
        let mut mem = vec![7u8; 0x1000];
        assert_eq!(load(b"nope", &mut mem, None), Err(ElfError::NotElf));
        let big = elf(0x800, &[(0x800, 0x800, b"x", 0x1000)]);
        assert_eq!(
            load(&big, &mut mem, Some(0x800)),
            Err(ElfError::OutOfMemory {
                start: 0x800,
                end: 0x1800,
                mem: 0x1000
            })
        );
        let badentry = elf(0x900, &[(0x0, 0x0, b"x", 0x10)]);
        assert_eq!(
            load(&badentry, &mut mem, Some(0)),
            Err(ElfError::EntryOutside(0x900))
        );
        let mut be = elf(0, &[(0, 0, b"x", 1)]);
        be[5] = 2;
        assert_eq!(load(&be, &mut mem, None), Err(ElfError::NotLittleEndian64));
        let mut trunc = elf(0, &[(0, 0, b"xyz", 3)]);
        trunc.truncate(trunc.len() - 2);
        assert_eq!(
            load(&trunc, &mut mem, None),
            Err(ElfError::Truncated("a segment's data"))
        );
        assert!(mem.iter().all(|b| *b == 7), "nothing written on failure");
    }
}
