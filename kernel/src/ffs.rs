//! skiboot's flash partition table (FFS v1, `libflash/ffs.h`), as the
//! PNOR holds it at offset 0: a 48-byte header and 128-byte entries, all
//! big-endian, each closed by a checksum word that makes the XOR of its
//! words zero. `cargo xtask pnor` writes it with these constants; the
//! firmware reads it to find its own partitions (the guest NVRAM store).

/// "PART".
pub const MAGIC: u32 = 0x5041_5254;
pub const VERSION_1: u32 = 1;
pub const HEADER_LEN: usize = 48;
pub const ENTRY_LEN: usize = 128;
/// Longest partition name (the field is 16 bytes, NUL-terminated).
pub const NAME_MAX: usize = 15;
/// The user word's data-integrity bit: the partition carries ECC.
pub const INTEG_ECC: u16 = 0x8000;
/// Offset in an entry of the user word's data-integrity field.
pub const ENTRY_INTEG: usize = 62;

/// A partition: where it lies in the flash, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    pub base: u64,
    pub size: u64,
    pub ecc: bool,
}

/// Why a table could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FfsError {
    /// Shorter than its header or its entries.
    Truncated,
    BadMagic(u32),
    BadVersion(u32),
    BadEntrySize(u32),
    /// The header's, or entry N's, checksum is wrong.
    BadChecksum(Option<usize>),
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// Whether the XOR of `b`'s big-endian words is zero (its checksum holds).
pub fn checksum_ok(b: &[u8]) -> bool {
    b.chunks_exact(4)
        .fold(0u32, |x, w| x ^ u32::from_be_bytes(w.try_into().unwrap()))
        == 0
}

/// The partition named `name` in the table `toc` (read from flash offset
/// 0), after checking the header and every entry up to it.
pub fn find(toc: &[u8], name: &str) -> Result<Option<Partition>, FfsError> {
    let hdr = toc.get(..HEADER_LEN).ok_or(FfsError::Truncated)?;
    match be32(hdr, 0) {
        MAGIC => {}
        m => return Err(FfsError::BadMagic(m)),
    }
    match be32(hdr, 4) {
        VERSION_1 => {}
        v => return Err(FfsError::BadVersion(v)),
    }
    if be32(hdr, 12) as usize != ENTRY_LEN {
        return Err(FfsError::BadEntrySize(be32(hdr, 12)));
    }
    if !checksum_ok(hdr) {
        return Err(FfsError::BadChecksum(None));
    }
    let (count, block) = (be32(hdr, 16) as usize, u64::from(be32(hdr, 20)));
    for i in 0..count {
        let at = HEADER_LEN + i * ENTRY_LEN;
        let e = toc.get(at..at + ENTRY_LEN).ok_or(FfsError::Truncated)?;
        if !checksum_ok(e) {
            return Err(FfsError::BadChecksum(Some(i)));
        }
        let n = e[..16].iter().position(|&c| c == 0).unwrap_or(16);
        if &e[..n] == name.as_bytes() {
            let integ = u16::from_be_bytes([e[ENTRY_INTEG], e[ENTRY_INTEG + 1]]);
            return Ok(Some(Partition {
                base: u64::from(be32(e, 16)) * block,
                size: u64::from(be32(e, 20)) * block,
                ecc: integ & INTEG_ECC != 0,
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// A table of two partitions (the xtask writer's tests check a real
    /// layout against this reader too).
    fn table() -> Vec<u8> {
        let mut t = vec![0u8; HEADER_LEN + 2 * ENTRY_LEN];
        let put = |b: &mut [u8], at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_be_bytes());
        for (at, v) in [
            (0, MAGIC),
            (4, VERSION_1),
            (8, 8),
            (12, 128),
            (16, 2),
            (20, 0x1000),
            (24, 0x4000),
        ] {
            put(&mut t, at, v);
        }
        let fix = |b: &mut [u8]| {
            let n = b.len();
            let x = b[..n - 4]
                .chunks_exact(4)
                .fold(0u32, |x, w| x ^ u32::from_be_bytes(w.try_into().unwrap()));
            b[n - 4..].copy_from_slice(&x.to_be_bytes());
        };
        fix(&mut t[..HEADER_LEN]);
        for (i, (name, base, size, ecc)) in [("NVRAM", 0x1de, 0x90, false), ("HBEL", 8, 0x24, true)]
            .into_iter()
            .enumerate()
        {
            let e = &mut t[HEADER_LEN + i * ENTRY_LEN..HEADER_LEN + (i + 1) * ENTRY_LEN];
            e[..name.len()].copy_from_slice(name.as_bytes());
            put(e, 16, base);
            put(e, 20, size);
            if ecc {
                e[ENTRY_INTEG] = 0x80;
            }
            fix(e);
        }
        t
    }

    #[test]
    fn finds_a_partition_by_name_in_bytes() {
        let t = table();
        assert_eq!(
            find(&t, "NVRAM"),
            Ok(Some(Partition {
                base: 0x1de000,
                size: 0x90000,
                ecc: false
            }))
        );
        assert!(find(&t, "HBEL").unwrap().unwrap().ecc);
        assert_eq!(find(&t, "NVRA"), Ok(None), "a prefix is not a name");
        assert_eq!(find(&t, "GUESTNVRAM"), Ok(None));
    }

    #[test]
    fn a_damaged_table_is_refused() {
        let t = table();
        assert_eq!(find(&t[..40], "NVRAM"), Err(FfsError::Truncated));
        assert_eq!(
            find(&t[..HEADER_LEN + 10], "HBEL"),
            Err(FfsError::Truncated)
        );
        let mut bad = t.clone();
        bad[0] = b'X';
        assert!(matches!(find(&bad, "NVRAM"), Err(FfsError::BadMagic(_))));
        let mut bad = t.clone();
        bad[HEADER_LEN + 20] ^= 1; // NVRAM's base, checksum not fixed
        assert_eq!(find(&bad, "NVRAM"), Err(FfsError::BadChecksum(Some(0))));
        let mut bad = t;
        bad[30] ^= 1;
        assert_eq!(find(&bad, "NVRAM"), Err(FfsError::BadChecksum(None)));
        assert_eq!(
            find(&[0xff; 4096], "NVRAM"),
            Err(FfsError::BadMagic(0xffff_ffff))
        );
    }
}
