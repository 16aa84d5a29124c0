//! NVRAM: the CHRP partition format that skiboot, SLOF and Linux share,
//! and a guest's NVRAM as PAPR gives it (QEMU's pseries:
//! hw/nvram/spapr_nvram.c): a `/vdevice` node of type `nvram` with
//! `#bytes`, read and written through RTAS `nvram-fetch` and
//! `nvram-store` (offset, guest buffer, length; status and length done).
//!
//! A partition starts with a 16-byte header: signature, checksum, length
//! in 16-byte blocks including the header (big-endian), a NUL-padded
//! 12-byte name. Linux allocates its partitions (`ibm,rtas-log`,
//! `lnx,oops-log`) only out of a free one (signature 0x7f) and never
//! formats, so a new guest NVRAM is one free partition over all of it,
//! as SLOF would leave it.

use alloc::vec;
use alloc::vec::Vec;

/// Bytes in a partition header (and the length unit).
pub const HEADER: usize = 16;
/// Free space (Linux takes its partitions from it).
pub const SIG_FREE: u8 = 0x7f;
/// The name skiboot and Linux give free space.
pub const FREE_NAME: &[u8; 12] = b"wwwwwwwwwwww";

/// A guest NVRAM's size: the default, and the bounds QEMU's pseries
/// accepts (`nvram = SIZE` in the manifest).
pub const GUEST_DEFAULT: u32 = 64 << 10;
pub const GUEST_MIN: u32 = 8 << 10;
pub const GUEST_MAX: u32 = 1 << 20;

/// The header checksum (skiboot `chrp_nv_cksum`): a byte sum with
/// end-around carry, the checksum byte (1) counted as zero.
pub fn checksum(h: &[u8; HEADER]) -> u8 {
    h.iter().enumerate().fold(0u8, |sum, (i, &b)| {
        let b = if i == 1 { 0 } else { b };
        let (s, carry) = sum.overflowing_add(b);
        s + carry as u8
    })
}

/// A partition header: `len` bytes (a multiple of 16, header included,
/// at most 0xffff blocks), a name of at most 12 bytes.
pub fn header(sig: u8, name: &[u8], len: usize) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0] = sig;
    h[2..4].copy_from_slice(&((len / HEADER) as u16).to_be_bytes());
    let n = name.len().min(12);
    h[4..4 + n].copy_from_slice(&name[..n]);
    h[1] = checksum(&h);
    h
}

/// A new guest NVRAM of `size` bytes (a multiple of 16, at most
/// [`GUEST_MAX`]): one free partition covering it, the rest zero.
pub fn blank(size: u32) -> Vec<u8> {
    let mut b = vec![0u8; size as usize];
    b[..HEADER].copy_from_slice(&header(SIG_FREE, FREE_NAME, size as usize));
    b
}

/// Whether `size` (bytes, from the manifest) is a guest NVRAM size this
/// hypervisor gives: [`GUEST_MIN`]..=[`GUEST_MAX`], a multiple of 16.
pub fn valid_guest_size(size: u64) -> bool {
    (u64::from(GUEST_MIN)..=u64::from(GUEST_MAX)).contains(&size)
        && size.is_multiple_of(HEADER as u64)
}

/// The bytes an `nvram-fetch` or `nvram-store` of `len` bytes at
/// `offset` covers in an NVRAM of `size` bytes; `None` (RTAS parameter
/// error) when any of them lies outside it, as QEMU checks.
pub fn span(size: usize, offset: u32, len: u32) -> Option<core::ops::Range<usize>> {
    let start = offset as usize;
    let end = start.checked_add(len as usize)?;
    (end <= size).then_some(start..end)
}

/// The partitions of an NVRAM image as Linux's scan finds them
/// (`nvram_scan_partitions`): from offset 0 until a header's checksum is
/// wrong, its length is 0 or it runs past the end. (offset, signature,
/// name, length in bytes).
pub fn partitions(img: &[u8]) -> Vec<(usize, u8, [u8; 12], usize)> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + HEADER <= img.len() {
        let h: &[u8; HEADER] = img[off..off + HEADER].try_into().unwrap();
        let len = usize::from(u16::from_be_bytes([h[2], h[3]])) * HEADER;
        if checksum(h) != h[1] || len == 0 || off + len > img.len() {
            break;
        }
        out.push((off, h[0], h[4..16].try_into().unwrap(), len));
        off += len;
    }
    out
}

/// The flash partition (`cargo xtask pnor` lays it out) where the
/// firmware keeps guest NVRAMs across power-offs, through OPAL's flash
/// calls.
pub const STORE_PARTITION: &str = "GUESTNVRAM";
/// A stored NVRAM: this header, then its bytes, together in whole erase
/// blocks; records follow one another from the partition's start, and
/// erased flash (or anything without the magic) ends the list.
pub const RECORD_HEADER: usize = 64;
const RECORD_MAGIC: &[u8; 8] = b"HVNVRAM1";
/// The VM's name (NUL-padded: VM names are at most 32 bytes).
const RECORD_NAME: usize = 32;

/// A record header: magic, VM name, NVRAM size (be32), checksum of the
/// bytes (be32), the rest zero.
pub fn record_header(name: &str, data: &[u8]) -> [u8; RECORD_HEADER] {
    let mut h = [0u8; RECORD_HEADER];
    h[..8].copy_from_slice(RECORD_MAGIC);
    let n = name.len().min(RECORD_NAME);
    h[8..8 + n].copy_from_slice(&name.as_bytes()[..n]);
    h[40..44].copy_from_slice(&(data.len() as u32).to_be_bytes());
    h[44..48].copy_from_slice(&data_sum(data).to_be_bytes());
    h
}

/// FNV-1a over the bytes: a torn or foreign record is not loaded.
pub fn data_sum(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// (name, size, checksum) of a record header, `None` for anything else.
fn parse_record(h: &[u8]) -> Option<(&[u8], u32, u32)> {
    if h.len() < RECORD_HEADER || &h[..8] != RECORD_MAGIC {
        return None;
    }
    let name = &h[8..8 + RECORD_NAME];
    let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(RECORD_NAME)];
    let be = |at: usize| u32::from_be_bytes(h[at..at + 4].try_into().unwrap());
    Some((name, be(40), be(44)))
}

/// Bytes a record of an NVRAM of `size` bytes takes: whole `block`s.
pub fn record_len(size: u32, block: u64) -> u64 {
    (RECORD_HEADER as u64 + u64::from(size)).div_ceil(block) * block
}

/// Where the record of `name`'s NVRAM of `size` bytes is, in a store of
/// `store_size` bytes with `block`-byte erase blocks whose record headers
/// `header_at(offset)` reads: `(offset, true)` for its record, `(offset,
/// false)` for where a new one goes, `None` when there is no room (or a
/// header cannot be read). A record of the same name with another size
/// (the manifest changed) is left where it is.
pub fn place(
    store_size: u64,
    block: u64,
    name: &str,
    size: u32,
    mut header_at: impl FnMut(u64) -> Option<[u8; RECORD_HEADER]>,
) -> Option<(u64, bool)> {
    let mut off = 0u64;
    while off + RECORD_HEADER as u64 <= store_size {
        let h = header_at(off)?;
        match parse_record(&h) {
            Some((n, s, _)) if n == name.as_bytes() && s == size => return Some((off, true)),
            Some((_, s, _)) => off += record_len(s, block),
            None => {
                return (off + record_len(size, block) <= store_size).then_some((off, false));
            }
        }
    }
    None
}

/// The NVRAM a record holds (`rec`: header and bytes as read from
/// flash), if it is `name`'s, of `size` bytes, with its checksum right.
pub fn record_data<'a>(rec: &'a [u8], name: &str, size: u32) -> Option<&'a [u8]> {
    let (n, s, sum) = parse_record(rec)?;
    let data = rec.get(RECORD_HEADER..RECORD_HEADER + size as usize)?;
    (n == name.as_bytes() && s == size && data_sum(data) == sum).then_some(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux's `nvram_checksum` (arch/powerpc/kernel/nvram_64.c), as a
    /// second opinion on [`checksum`].
    fn linux_checksum(h: &[u8; HEADER]) -> u8 {
        let mut c: u32 = u32::from(h[0]) + u32::from(u16::from_be_bytes([h[2], h[3]]));
        for i in 0..6 {
            c += u32::from(u16::from_be_bytes([h[4 + 2 * i], h[5 + 2 * i]]));
        }
        c = (c & 0xffff) + (c >> 16);
        let c2 = (c >> 8) + (c << 8);
        (((c + c2) >> 8) & 0xff) as u8
    }

    #[test]
    fn checksums_match_skiboot_and_linux() {
        // Values computed from skiboot's chrp_nv_cksum.
        for (sig, name, len, want) in [
            (0x7f, &b"wwwwwwwwwwww"[..], 0x1000 * 16, 0x29),
            (0x7f, b"wwwwwwwwwwww", 0x0e82 * 16, 0xa9),
            (0x7f, b"wwwwwwwwwwww", 0x7f00 * 16, 0x98),
            (0x70, b"common", 0x1000 * 16, 0x0c),
            (0xa0, b"ibm,rtas-log", 0x83 * 16, 0xb5),
            (0xa0, b"lnx,oops-log", 0xfb * 16, 0x4f),
        ] {
            let h = header(sig, name, len);
            assert_eq!(h[1], want, "{sig:#x} {:?}", core::str::from_utf8(name));
            assert_eq!(linux_checksum(&h), want);
        }
    }

    #[test]
    fn a_blank_guest_nvram_is_one_free_partition_linux_can_split() {
        let b = blank(GUEST_DEFAULT);
        assert_eq!(b.len(), 65536);
        assert_eq!(
            b[..16],
            [
                0x7f, 0x29, 0x10, 0x00, b'w', b'w', b'w', b'w', b'w', b'w', b'w', b'w', b'w', b'w',
                b'w', b'w'
            ]
        );
        assert!(b[16..].iter().all(|&x| x == 0));
        assert_eq!(partitions(&b), [(0, SIG_FREE, *FREE_NAME, 65536)]);
        // All zeros (an NVRAM nobody formatted) has no partition at all.
        assert!(partitions(&[0u8; 4096]).is_empty());
    }

    #[test]
    fn fetch_and_store_stay_inside() {
        assert_eq!(span(65536, 0, 32), Some(0..32));
        assert_eq!(span(65536, 65504, 32), Some(65504..65536));
        assert_eq!(span(65536, 65505, 32), None);
        assert_eq!(span(65536, 65536, 0), Some(65536..65536));
        assert_eq!(span(65536, u32::MAX, u32::MAX), None);
        assert!(valid_guest_size(64 << 10));
        assert!(valid_guest_size(8 << 10));
        assert!(!valid_guest_size(4 << 10));
        assert!(!valid_guest_size((1 << 20) + 16));
        assert!(!valid_guest_size((64 << 10) + 1));
    }

    #[test]
    fn records_are_found_appended_and_checked() {
        // A store of 64 KiB in 4 KiB blocks, erased.
        let mut flash = vec![0xffu8; 65536];
        let header_at =
            |f: &[u8], off: u64| Some(f[off as usize..][..RECORD_HEADER].try_into().unwrap());
        let write = |f: &mut [u8], off: u64, name: &str, data: &[u8]| {
            let o = off as usize;
            f[o..o + RECORD_HEADER].copy_from_slice(&record_header(name, data));
            f[o + RECORD_HEADER..o + RECORD_HEADER + data.len()].copy_from_slice(data);
        };
        assert_eq!(
            record_len(8192, 4096),
            12288,
            "header and data round up to blocks"
        );
        let a = blank(8192);
        assert_eq!(
            place(65536, 4096, "web", 8192, |o| header_at(&flash, o)),
            Some((0, false))
        );
        write(&mut flash, 0, "web", &a);
        let mut b = blank(16384);
        b[100] = 42;
        assert_eq!(
            place(65536, 4096, "db", 16384, |o| header_at(&flash, o)),
            Some((12288, false))
        );
        write(&mut flash, 12288, "db", &b);
        // Found again, and read back whole.
        assert_eq!(
            place(65536, 4096, "web", 8192, |o| header_at(&flash, o)),
            Some((0, true))
        );
        assert_eq!(
            place(65536, 4096, "db", 16384, |o| header_at(&flash, o)),
            Some((12288, true))
        );
        assert_eq!(record_data(&flash[12288..], "db", 16384), Some(&b[..]));
        assert_eq!(record_data(&flash[0..], "db", 16384), None, "another VM's");
        // The same name with another size goes after the others.
        assert_eq!(
            place(65536, 4096, "web", 16384, |o| header_at(&flash, o)),
            Some((32768, false))
        );
        // A torn record is not loaded.
        flash[12288 + RECORD_HEADER + 100] = 7;
        assert_eq!(record_data(&flash[12288..], "db", 16384), None);
        // No room for a VM whose NVRAM does not fit what is left.
        assert_eq!(
            place(65536, 4096, "big", 65536, |o| header_at(&flash, o)),
            None
        );
        assert_eq!(
            place(65536, 4096, "x", 8192, |_| None),
            None,
            "unreadable flash"
        );
    }

    #[test]
    fn the_scan_stops_where_linux_stops() {
        let mut b = blank(8192);
        // Linux's split: a partition of 0x83 blocks, the rest free.
        b[..16].copy_from_slice(&header(0xa0, b"ibm,rtas-log", 0x830));
        b[0x830..0x840].copy_from_slice(&header(SIG_FREE, FREE_NAME, 8192 - 0x830));
        let p = partitions(&b);
        assert_eq!(p.len(), 2);
        assert_eq!((p[1].0, p[1].1, p[1].3), (0x830, SIG_FREE, 8192 - 0x830));
        b[0x831] ^= 1;
        assert_eq!(partitions(&b).len(), 1, "a bad checksum ends the scan");
    }
}
