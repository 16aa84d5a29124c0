//! Big-endian doublewords shared with the MMU (the words of an HPTE),
//! read and written byte-reversed in one access: `ldbrx` / `stdbrx` on
//! POWER, single-copy atomic when aligned (Linux's hash MMU code relies on
//! the same for its `be64_to_cpu(READ_ONCE(hpte->v))`), instead of a load
//! and a dozen rotate-and-insert instructions to swap the bytes in a
//! register. Relaxed ordering, like `AtomicU64::load`/`store` with
//! `Ordering::Relaxed`: callers order with fences. On the host, the
//! portable equivalent.

use core::sync::atomic::AtomicU64;
#[cfg(not(target_arch = "powerpc64"))]
use core::sync::atomic::Ordering;

/// The value of big-endian word `a`.
#[inline(always)]
pub fn load(a: &AtomicU64) -> u64 {
    #[cfg(target_arch = "powerpc64")]
    {
        let v: u64;
        // SAFETY: `a` is a valid, aligned doubleword (an AtomicU64); a
        // single load, with no other effect.
        unsafe {
            core::arch::asm!(
                "ldbrx {v}, 0, {p}",
                v = out(reg) v,
                p = in(reg_nonzero) a.as_ptr(),
                options(nostack, readonly, preserves_flags)
            )
        };
        v
    }
    #[cfg(not(target_arch = "powerpc64"))]
    {
        u64::from_be(a.load(Ordering::Relaxed))
    }
}

/// Stores `v` into big-endian word `a`.
#[inline(always)]
pub fn store(a: &AtomicU64, v: u64) {
    #[cfg(target_arch = "powerpc64")]
    {
        // SAFETY: `a` is a valid, aligned doubleword (an AtomicU64) that
        // the caller may write; a single store.
        unsafe {
            core::arch::asm!(
                "stdbrx {v}, 0, {p}",
                v = in(reg) v,
                p = in(reg_nonzero) a.as_ptr(),
                options(nostack, preserves_flags)
            )
        };
    }
    #[cfg(not(target_arch = "powerpc64"))]
    {
        a.store(v.to_be(), Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_big_endian_in_memory() {
        let a = AtomicU64::new(0);
        store(&a, 0x0102_0304_0506_0708);
        assert_eq!(
            a.load(core::sync::atomic::Ordering::Relaxed).to_ne_bytes(),
            [1, 2, 3, 4, 5, 6, 7, 8]
        );
        assert_eq!(load(&a), 0x0102_0304_0506_0708);
    }
}
