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
//! as SLOF would leave it. The flash store's directory (where the
//! firmware keeps NVRAMs across power-offs) is here too.

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

/// The flash partition (`cargo xtask pnor` lays it out) where the
/// firmware keeps guest NVRAMs across power-offs, through OPAL's flash
/// calls.
pub const STORE_PARTITION: &str = "GUESTNVRAM";

/// The store's layout: its first erase block is a directory (the only
/// bytes ever read as metadata: a guest's NVRAM is data, whatever it
/// holds), the NVRAMs lie after it, each in whole erase blocks. The
/// directory: magic, entry count (be32), entries of [`DIR_ENTRY`] bytes
/// (VM name, NUL-padded, 32 bytes; offset of its NVRAM in the store,
/// size and FNV-1a of its bytes, be32 each), and an FNV-1a of all of it
/// before the block's last 4 bytes. A damaged directory is an empty
/// store: every VM starts blank, none gets another's bytes.
const DIR_MAGIC: &[u8; 8] = b"HVNVDIR1";
const DIR_ENTRY: usize = 48;
const DIR_NAME: usize = 32;

/// One stored NVRAM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreEntry {
    pub name: alloc::string::String,
    /// Bytes from the store's start (after the directory block).
    pub offset: u64,
    pub size: u32,
    pub sum: u32,
}

/// FNV-1a: a torn NVRAM or directory is not taken for a good one.
pub fn data_sum(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The directory's entries, empty when `dir` (the store's first block,
/// as read) is not a directory this firmware wrote whole.
pub fn read_directory(dir: &[u8], store_size: u64) -> Vec<StoreEntry> {
    let n = dir.len();
    if n < 16 + 4 || &dir[..8] != DIR_MAGIC {
        return Vec::new();
    }
    let be = |at: usize| u32::from_be_bytes(dir[at..at + 4].try_into().unwrap());
    if be(n - 4) != data_sum(&dir[..n - 4]) {
        return Vec::new();
    }
    let count = be(8) as usize;
    if 12 + count * DIR_ENTRY > n - 4 {
        return Vec::new();
    }
    let mut out: Vec<StoreEntry> = Vec::new();
    for i in 0..count {
        let e = 12 + i * DIR_ENTRY;
        let name = &dir[e..e + DIR_NAME];
        let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(DIR_NAME)];
        let (offset, size, sum) = (u64::from(be(e + 32)), be(e + 36), be(e + 40));
        // Entries that overlap the directory, the end or each other are
        // not this firmware's: the store is taken as empty.
        let ok = core::str::from_utf8(name).is_ok()
            && offset >= n as u64
            && offset + u64::from(size) <= store_size
            && out.iter().all(|o| {
                offset + u64::from(size) <= o.offset || o.offset + u64::from(o.size) <= offset
            });
        if !ok {
            return Vec::new();
        }
        out.push(StoreEntry {
            name: alloc::string::String::from_utf8_lossy(name).into_owned(),
            offset,
            size,
            sum,
        });
    }
    out
}

/// The directory block (`block` bytes) for `entries`; `None` if they do
/// not fit in it.
pub fn write_directory(entries: &[StoreEntry], block: usize) -> Option<Vec<u8>> {
    if 12 + entries.len() * DIR_ENTRY > block.checked_sub(4)? {
        return None;
    }
    let mut d = vec![0u8; block];
    d[..8].copy_from_slice(DIR_MAGIC);
    d[8..12].copy_from_slice(&(entries.len() as u32).to_be_bytes());
    for (i, x) in entries.iter().enumerate() {
        let e = 12 + i * DIR_ENTRY;
        let n = x.name.len().min(DIR_NAME);
        d[e..e + n].copy_from_slice(&x.name.as_bytes()[..n]);
        d[e + 32..e + 36].copy_from_slice(&(x.offset as u32).to_be_bytes());
        d[e + 36..e + 40].copy_from_slice(&x.size.to_be_bytes());
        d[e + 40..e + 44].copy_from_slice(&x.sum.to_be_bytes());
    }
    let sum = data_sum(&d[..block - 4]);
    d[block - 4..].copy_from_slice(&sum.to_be_bytes());
    Some(d)
}

/// Where `name`'s NVRAM of `size` bytes goes in a store of `store_size`
/// bytes (`block`-byte erase blocks, the first the directory) holding
/// `entries`: its own place if it has one of that size, else the first
/// gap between the others (a place of the same name but another size is
/// given up), in whole blocks; `None` when nothing fits.
pub fn place(
    entries: &[StoreEntry],
    store_size: u64,
    block: u64,
    name: &str,
    size: u32,
) -> Option<u64> {
    if let Some(e) = entries.iter().find(|e| e.name == name && e.size == size) {
        return Some(e.offset);
    }
    let need = u64::from(size).div_ceil(block) * block;
    let mut taken: Vec<(u64, u64)> = entries
        .iter()
        .filter(|e| e.name != name)
        .map(|e| {
            (
                e.offset,
                e.offset + u64::from(e.size).div_ceil(block) * block,
            )
        })
        .collect();
    taken.sort_unstable();
    let mut at = block;
    for (start, end) in taken {
        if at + need <= start {
            return Some(at);
        }
        at = at.max(end);
    }
    (at + need <= store_size).then_some(at)
}

/// The directory after `name`'s NVRAM of `data` went to `offset`.
pub fn with_entry(entries: &[StoreEntry], name: &str, offset: u64, data: &[u8]) -> Vec<StoreEntry> {
    let mut out: Vec<StoreEntry> = entries.iter().filter(|e| e.name != name).cloned().collect();
    out.push(StoreEntry {
        name: alloc::string::String::from(name),
        offset,
        size: data.len() as u32,
        sum: data_sum(data),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_store_directory_places_reads_back_and_refuses_damage() {
        const B: u64 = 4096;
        const SIZE: u64 = 65536;
        // Empty (erased) flash: no entries; the first NVRAM goes after
        // the directory block.
        assert!(read_directory(&[0xffu8; 4096], SIZE).is_empty());
        assert_eq!(place(&[], SIZE, B, "web", 8192), Some(4096));
        let d1 = with_entry(&[], "web", 4096, &blank(8192));
        let mut b = blank(16384);
        b[100] = 42;
        assert_eq!(place(&d1, SIZE, B, "db", 16384), Some(12288));
        let d2 = with_entry(&d1, "db", 12288, &b);
        let block = write_directory(&d2, 4096).unwrap();
        let back = read_directory(&block, SIZE);
        assert_eq!(back, d2);
        assert_eq!(back[1].sum, data_sum(&b));
        // Found again where it is.
        assert_eq!(place(&back, SIZE, B, "web", 8192), Some(4096));
        // Another size: its old place is given up, the first gap that
        // fits is taken (here before "db").
        assert_eq!(place(&back, SIZE, B, "web", 4096), Some(4096));
        assert_eq!(place(&back, SIZE, B, "web", 16384), Some(28672));
        // Nothing fits.
        assert_eq!(place(&back, SIZE, B, "big", 65536), None);
        // A torn or foreign directory is an empty store.
        let mut torn = block.clone();
        torn[20] ^= 1;
        assert!(read_directory(&torn, SIZE).is_empty());
        let over = with_entry(&d2, "x", 12288 + 4096, &blank(8192));
        assert!(
            read_directory(&write_directory(&over, 4096).unwrap(), SIZE).is_empty(),
            "overlap"
        );
        let past = with_entry(&[], "x", 61440, &blank(8192));
        assert!(
            read_directory(&write_directory(&past, 4096).unwrap(), SIZE).is_empty(),
            "past the end"
        );
        // 85 entries fit a 4 KiB directory, 86 do not.
        let many: Vec<StoreEntry> = (0..86)
            .map(|i| StoreEntry {
                name: alloc::format!("vm{i}"),
                offset: 4096 * (i + 1),
                size: 16,
                sum: 0,
            })
            .collect();
        assert!(write_directory(&many[..85], 4096).is_some());
        assert!(write_directory(&many, 4096).is_none());
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
