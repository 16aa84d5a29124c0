//! gzip members (RFC 1952) in the boot archive: a guest kernel stored
//! compressed (`vmlinux.gz`) so that Linux fits a PNOR's ROOTFS. The
//! firmware expands such a file once, into memory of its own, before any
//! VM uses it. The header is checked (method 8, no reserved flag), its
//! optional fields skipped; the DEFLATE data is inflated by miniz_oxide
//! straight into the caller's buffer, whose size the trailer gave; the
//! trailer's CRC-32 and length must match what came out.

use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

/// What is wrong with a gzip member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GzipError {
    /// Shorter than a header and trailer, or its header runs past it.
    Truncated,
    /// Not method 8 (DEFLATE), or a reserved flag set.
    Header,
    /// The DEFLATE data is damaged (miniz_oxide's status).
    Data(i8),
    /// It expands to more than the trailer said.
    TooLong,
    /// The trailer's length or CRC-32 does not match what came out.
    Trailer,
}

const FHCRC: u8 = 1 << 1;
const FEXTRA: u8 = 1 << 2;
const FNAME: u8 = 1 << 3;
const FCOMMENT: u8 = 1 << 4;
const RESERVED: u8 = 0xe0;

/// Whether `data` starts like a gzip member.
pub fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(&[0x1f, 0x8b])
}

/// The length `data` says it expands to (modulo 4 GiB, as the format
/// keeps it), if it is long enough to have a trailer.
pub fn expanded_len(data: &[u8]) -> Option<usize> {
    let t = data.len().checked_sub(4)?;
    Some(u32::from_le_bytes(data[t..].try_into().ok()?) as usize)
}

/// Where the DEFLATE data starts.
fn body(data: &[u8]) -> Result<usize, GzipError> {
    if data.len() < 18 {
        return Err(GzipError::Truncated);
    }
    let flags = data[3];
    if !is_gzip(data) || data[2] != 8 || flags & RESERVED != 0 {
        return Err(GzipError::Header);
    }
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let n = u16::from_le_bytes([
            *data.get(at).ok_or(GzipError::Truncated)?,
            *data.get(at + 1).ok_or(GzipError::Truncated)?,
        ]);
        at += 2 + usize::from(n);
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let nul = data
                .get(at..)
                .and_then(|r| r.iter().position(|b| *b == 0))
                .ok_or(GzipError::Truncated)?;
            at += nul + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    if at + 8 > data.len() {
        return Err(GzipError::Truncated);
    }
    Ok(at)
}

/// Expands `data` into `out`, which is [`expanded_len`] bytes long.
pub fn expand(data: &[u8], out: &mut [u8]) -> Result<(), GzipError> {
    let start = body(data)?;
    let end = data.len() - 8;
    let mut state = alloc::boxed::Box::new(DecompressorOxide::new());
    // The whole output is one buffer: no wrapping window.
    let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    let (status, _, written) = decompress(&mut state, &data[start..end], out, 0, flags);
    match status {
        TINFLStatus::Done => {}
        TINFLStatus::HasMoreOutput => return Err(GzipError::TooLong),
        s => return Err(GzipError::Data(s as i8)),
    }
    let crc = u32::from_le_bytes(
        data[end..end + 4]
            .try_into()
            .map_err(|_| GzipError::Truncated)?,
    );
    if written != out.len() || crc32(out) != crc {
        return Err(GzipError::Trailer);
    }
    Ok(())
}

/// CRC-32 (IEEE 802.3, reflected, as gzip's trailer keeps it).
pub fn crc32(data: &[u8]) -> u32 {
    static TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    !data.iter().fold(!0u32, |c, b| {
        TABLE[((c ^ u32::from(*b)) & 0xff) as usize] ^ (c >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// `printf 'hello, world\n' | gzip -9n` and the same with a name
    /// (`gzip -9` of a file `hi`).
    const HELLO: &[u8] = &[
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9,
        0xd7, 0x51, 0x28, 0xcf, 0x2f, 0xca, 0x49, 0xe1, 0x02, 0x00, 0x53, 0x74, 0x24, 0xf4, 0x0d,
        0x00, 0x00, 0x00,
    ];

    fn named(name: &[u8]) -> Vec<u8> {
        let mut g = HELLO[..10].to_vec();
        g[3] = FNAME;
        g.extend_from_slice(name);
        g.push(0);
        g.extend_from_slice(&HELLO[10..]);
        g
    }

    #[test]
    fn a_member_expands_and_its_trailer_is_checked() {
        assert!(is_gzip(HELLO));
        assert_eq!(expanded_len(HELLO), Some(13));
        let mut out = vec![0u8; 13];
        assert_eq!(expand(HELLO, &mut out), Ok(()));
        assert_eq!(out, b"hello, world\n");
        let g = named(b"hi");
        assert_eq!(expand(&g, &mut out), Ok(()));
        assert_eq!(out, b"hello, world\n");
        // A wrong CRC, a wrong length, a damaged stream, a bad header.
        let mut bad = HELLO.to_vec();
        bad[HELLO.len() - 8] ^= 1;
        assert_eq!(expand(&bad, &mut out), Err(GzipError::Trailer));
        assert_eq!(expand(HELLO, &mut [0u8; 14]), Err(GzipError::Trailer));
        assert_eq!(expand(HELLO, &mut [0u8; 12]), Err(GzipError::TooLong));
        let mut bad = HELLO.to_vec();
        bad[10] = 0xff;
        assert!(matches!(expand(&bad, &mut out), Err(GzipError::Data(_))));
        let mut bad = HELLO.to_vec();
        bad[2] = 7;
        assert_eq!(expand(&bad, &mut out), Err(GzipError::Header));
        assert_eq!(expand(&HELLO[..17], &mut out), Err(GzipError::Truncated));
        let mut unterminated = HELLO[..10].to_vec();
        unterminated[3] = FNAME;
        unterminated.extend_from_slice(&[b'x'; 20]);
        assert_eq!(expand(&unterminated, &mut out), Err(GzipError::Truncated));
    }

    #[test]
    fn crc32_of_the_check_string() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }
}
