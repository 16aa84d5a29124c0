//! H_SET_MODE(mflags, resource, value1, value2) and H_PAGE_INIT(flags,
//! destination, source): argument checking as PAPR and QEMU's pseries
//! answer, returning what to change (the caller owns the vcpu's registers
//! and the interrupt mode).

use crate::gmem::GuestMemory;
use papr_abi::{
    H_COPY_PAGE, H_ICACHE_INVALIDATE, H_ICACHE_SYNCHRONIZE, H_P2, H_P3, H_P4, H_PARAMETER,
    H_SET_MODE_RESOURCE_ADDR_TRANS_MODE, H_SET_MODE_RESOURCE_LE, H_SET_MODE_RESOURCE_SET_CIABR,
    H_SET_MODE_RESOURCE_SET_DAWR, H_UNSUPPORTED_FLAG, H_ZERO_PAGE,
};

/// CIABR privilege field and its hypervisor value; DAWRX hypervisor bit.
const CIABR_PRIV: u64 = 3;
const CIABR_PRIV_HYPER: u64 = 3;
const DAWRX_HYP: u64 = 1 << 2;

/// What an accepted H_SET_MODE changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeChange {
    Ciabr(u64),
    Dawr {
        dawr: u64,
        dawrx: u64,
    },
    /// LPCR[AIL]: 0 or 3.
    Ail(u64),
    /// LPCR[ILE].
    LittleEndian(bool),
}

/// Checks an H_SET_MODE: breakpoints (1: CIABR, 2: DAWR; never on the
/// hypervisor), interrupt location (3: AIL 0 or 3; AIL 1 is reserved and
/// 2 not offered, as on QEMU) and endianness (4). An unknown resource is
/// H_P2; a bad value H_P3/H_P4; bad mflags H_UNSUPPORTED_FLAG.
pub fn set_mode(mflags: u64, resource: u64, v1: u64, v2: u64) -> Result<ModeChange, i64> {
    match resource {
        H_SET_MODE_RESOURCE_SET_CIABR => {
            if v2 != 0 {
                Err(H_P4)
            } else if mflags != 0 {
                Err(H_UNSUPPORTED_FLAG)
            } else if v1 & CIABR_PRIV == CIABR_PRIV_HYPER {
                Err(H_P3)
            } else {
                Ok(ModeChange::Ciabr(v1))
            }
        }
        H_SET_MODE_RESOURCE_SET_DAWR => {
            if mflags != 0 {
                Err(H_UNSUPPORTED_FLAG)
            } else if v2 & DAWRX_HYP != 0 {
                Err(H_P4)
            } else {
                Ok(ModeChange::Dawr {
                    dawr: v1,
                    dawrx: v2,
                })
            }
        }
        H_SET_MODE_RESOURCE_ADDR_TRANS_MODE | H_SET_MODE_RESOURCE_LE => {
            let ok = match resource {
                H_SET_MODE_RESOURCE_LE => mflags <= 1,
                _ => mflags == 0 || mflags == 3,
            };
            if v1 != 0 {
                Err(H_P3)
            } else if v2 != 0 {
                Err(H_P4)
            } else if !ok {
                Err(H_UNSUPPORTED_FLAG)
            } else if resource == H_SET_MODE_RESOURCE_LE {
                Ok(ModeChange::LittleEndian(mflags == 1))
            } else {
                Ok(ModeChange::Ail(mflags))
            }
        }
        _ => Err(H_P2),
    }
}

const PAGE: u64 = 4096;

/// H_PAGE_INIT: zero or copy a 4 KiB page of guest memory (both page
/// aligned and inside it); unknown flags are H_PARAMETER. On success,
/// the guest-physical page whose instruction cache must be made coherent,
/// if the flags ask for it.
pub fn page_init(
    mem: &mut GuestMemory<'_>,
    flags: u64,
    dst: u64,
    src: u64,
) -> Result<Option<u64>, i64> {
    let icache = H_ICACHE_INVALIDATE | H_ICACHE_SYNCHRONIZE;
    if flags & !(H_ZERO_PAGE | H_COPY_PAGE | icache) != 0 {
        return Err(H_PARAMETER);
    }
    let page_ok = |mem: &GuestMemory<'_>, a: u64| a.is_multiple_of(PAGE) && mem.contains(a, PAGE);
    if !page_ok(mem, dst) {
        return Err(H_PARAMETER);
    }
    if flags & H_COPY_PAGE != 0 {
        if !page_ok(mem, src) {
            return Err(H_PARAMETER);
        }
        mem.copy_within(src, dst, PAGE);
    } else if flags & H_ZERO_PAGE != 0 {
        mem.fill(dst, PAGE, 0);
    }
    Ok((flags & icache != 0).then_some(dst))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn set_mode_answers_as_papr_and_qemu() {
        assert_eq!(set_mode(3, 3, 0, 0), Ok(ModeChange::Ail(3)));
        assert_eq!(set_mode(0, 3, 0, 0), Ok(ModeChange::Ail(0)));
        assert_eq!(set_mode(2, 3, 0, 0), Err(H_UNSUPPORTED_FLAG));
        assert_eq!(set_mode(1, 3, 0, 0), Err(H_UNSUPPORTED_FLAG));
        assert_eq!(set_mode(3, 3, 1, 0), Err(H_P3));
        assert_eq!(set_mode(3, 3, 0, 1), Err(H_P4));
        assert_eq!(set_mode(1, 4, 0, 0), Ok(ModeChange::LittleEndian(true)));
        assert_eq!(set_mode(0, 4, 0, 0), Ok(ModeChange::LittleEndian(false)));
        assert_eq!(set_mode(2, 4, 0, 0), Err(H_UNSUPPORTED_FLAG));
        assert_eq!(set_mode(0, 1, 0x1000 | 1, 0), Ok(ModeChange::Ciabr(0x1001)));
        assert_eq!(
            set_mode(0, 1, 0x1000 | 3, 0),
            Err(H_P3),
            "no breaking on the hypervisor"
        );
        assert_eq!(set_mode(0, 1, 0, 1), Err(H_P4));
        assert_eq!(set_mode(1, 1, 0, 0), Err(H_UNSUPPORTED_FLAG));
        assert_eq!(
            set_mode(0, 2, 0x2000, 3),
            Ok(ModeChange::Dawr {
                dawr: 0x2000,
                dawrx: 3
            })
        );
        assert_eq!(set_mode(0, 2, 0x2000, 4), Err(H_P4));
        assert_eq!(set_mode(0, 5, 0, 0), Err(H_P2));
        assert_eq!(set_mode(0, u64::MAX, 0, 0), Err(H_P2));
    }

    #[test]
    fn page_init_zeroes_copies_and_checks_both_pages() {
        let mut ram = vec![0u8; 4 * 4096];
        ram[4096..8192].fill(0xab);
        ram[8192..12288].fill(0xcd);
        let mut mem = GuestMemory::new(&mut ram);
        assert_eq!(page_init(&mut mem, H_COPY_PAGE, 0, 4096), Ok(None));
        assert_eq!(
            page_init(&mut mem, H_ZERO_PAGE | H_ICACHE_SYNCHRONIZE, 8192, 0),
            Ok(Some(8192))
        );
        // Misaligned, past the end, far away.
        for gpa in [100, 4 * 4096, !4095] {
            assert_eq!(page_init(&mut mem, H_ZERO_PAGE, gpa, 0), Err(H_PARAMETER));
        }
        assert_eq!(
            page_init(&mut mem, H_COPY_PAGE, 0, 4 * 4096),
            Err(H_PARAMETER)
        );
        assert_eq!(page_init(&mut mem, H_COPY_PAGE, 0, 12), Err(H_PARAMETER));
        assert_eq!(
            page_init(&mut mem, 1, 0, 0),
            Err(H_PARAMETER),
            "unknown flag"
        );
        assert!(ram[..4096].iter().all(|&b| b == 0xab));
        assert!(ram[8192..12288].iter().all(|&b| b == 0));
        assert!(ram[12288..].iter().all(|&b| b == 0));
    }
}
