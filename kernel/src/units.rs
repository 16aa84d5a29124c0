//! Sizes and alignment helpers.

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

/// Rounds `v` up to a multiple of the power of two `align`, or `None` on
/// overflow.
pub fn align_up(v: u64, align: u64) -> Option<u64> {
    debug_assert!(align.is_power_of_two());
    v.checked_add(align - 1).map(|x| x & !(align - 1))
}

/// Rounds `v` down to a multiple of the power of two `align`.
pub fn align_down(v: u64, align: u64) -> u64 {
    debug_assert!(align.is_power_of_two());
    v & !(align - 1)
}

/// Parses a size such as `64M`, `1G`, `512K`, `4096` (bytes), case-insensitive.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mul) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], KIB),
        b'm' | b'M' => (&s[..s.len() - 1], MIB),
        b'g' | b'G' => (&s[..s.len() - 1], GIB),
        _ => (s, 1),
    };
    let n: u64 = if let Some(hex) = num.strip_prefix("0x") {
        u64::from_str_radix(hex, 16).ok()?
    } else {
        num.parse().ok()?
    };
    n.checked_mul(mul)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("64M"), Some(64 * MIB));
        assert_eq!(parse_size("1g"), Some(GIB));
        assert_eq!(parse_size("512K"), Some(512 * KIB));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("0x1000"), Some(4096));
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("12x"), None);
        assert_eq!(parse_size("99999999999999G"), None);
    }

    #[test]
    fn alignment() {
        assert_eq!(align_up(1, 4096), Some(4096));
        assert_eq!(align_up(4096, 4096), Some(4096));
        assert_eq!(align_up(u64::MAX, 4096), None);
        assert_eq!(align_down(4097, 4096), 4096);
    }
}
