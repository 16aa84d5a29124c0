//! CPU masks: one bit per core or thread index.
//!
//! `AtomicCpuMask` is the shared form (e.g. a VM's `need_tlb_flush`, one
//! bit per physical core, set by one core and test-and-cleared by another);
//! `CpuMask` is the plain value form.

use core::sync::atomic::{AtomicU64, Ordering};

/// Indexes a mask can hold: 4 words x 64.
pub const MASK_BITS: usize = 256;
const WORDS: usize = MASK_BITS / 64;

/// A plain bitmap of `MASK_BITS` indexes.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct CpuMask {
    w: [u64; WORDS],
}

fn split(i: usize) -> (usize, u64) {
    assert!(i < MASK_BITS, "cpu index {i} out of range");
    (i / 64, 1u64 << (i % 64))
}

impl CpuMask {
    pub const fn new() -> Self {
        CpuMask { w: [0; WORDS] }
    }

    /// Indexes `0..n` set.
    pub fn first_n(n: usize) -> Self {
        let mut m = Self::new();
        for i in 0..n {
            m.set(i);
        }
        m
    }

    pub fn set(&mut self, i: usize) {
        let (w, b) = split(i);
        self.w[w] |= b;
    }

    pub fn clear(&mut self, i: usize) {
        let (w, b) = split(i);
        self.w[w] &= !b;
    }

    pub fn test(&self, i: usize) -> bool {
        let (w, b) = split(i);
        self.w[w] & b != 0
    }

    pub fn test_and_clear(&mut self, i: usize) -> bool {
        let was = self.test(i);
        self.clear(i);
        was
    }

    pub fn count(&self) -> usize {
        self.w.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.w.iter().all(|w| *w == 0)
    }

    /// Set indexes in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..WORDS).flat_map(move |wi| {
            let mut w = self.w[wi];
            core::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(wi * 64 + b)
            })
        })
    }
}

/// A bitmap shared between threads; every operation is atomic per bit.
#[derive(Default, Debug)]
pub struct AtomicCpuMask {
    w: [AtomicU64; WORDS],
}

impl AtomicCpuMask {
    pub const fn new() -> Self {
        AtomicCpuMask {
            w: [const { AtomicU64::new(0) }; WORDS],
        }
    }

    pub fn set(&self, i: usize) {
        let (w, b) = split(i);
        self.w[w].fetch_or(b, Ordering::AcqRel);
    }

    /// Sets every index in `m`. A word that already has them is only
    /// read (masks set over and over, like a one-vcore VM marking the
    /// other cores on every `tlbiel`, then cost a load per word); a word
    /// already set was set by an earlier call, whose own ordering stands.
    #[inline(always)]
    pub fn set_all(&self, m: &CpuMask) {
        for (a, v) in self.w.iter().zip(m.w.iter()) {
            if *v != 0 && a.load(Ordering::Relaxed) & *v != *v {
                a.fetch_or(*v, Ordering::AcqRel);
            }
        }
    }

    pub fn clear(&self, i: usize) {
        let (w, b) = split(i);
        self.w[w].fetch_and(!b, Ordering::AcqRel);
    }

    pub fn test(&self, i: usize) -> bool {
        let (w, b) = split(i);
        self.w[w].load(Ordering::Acquire) & b != 0
    }

    /// Clears bit `i` and says whether it was set, in one atomic step: of
    /// two threads racing on the same set bit exactly one sees `true`.
    pub fn test_and_clear(&self, i: usize) -> bool {
        let (w, b) = split(i);
        self.w[w].fetch_and(!b, Ordering::AcqRel) & b != 0
    }

    /// A snapshot.
    pub fn load(&self) -> CpuMask {
        let mut m = CpuMask::new();
        for (v, a) in m.w.iter_mut().zip(self.w.iter()) {
            *v = a.load(Ordering::Acquire);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn plain_mask_set_clear_test_iterate() {
        let mut m = CpuMask::new();
        assert!(m.is_empty());
        for i in [0, 3, 63, 64, 130, 255] {
            m.set(i);
        }
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![0, 3, 63, 64, 130, 255]);
        assert_eq!(m.count(), 6);
        assert!(m.test(64) && !m.test(65));
        assert!(m.test_and_clear(64));
        assert!(!m.test_and_clear(64));
        m.clear(0);
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![3, 63, 130, 255]);
        assert_eq!(
            CpuMask::first_n(5).iter().collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn out_of_range_index_is_a_bug() {
        CpuMask::new().set(MASK_BITS);
    }

    #[test]
    fn atomic_test_and_clear_hands_each_set_bit_to_exactly_one_thread() {
        let m = Arc::new(AtomicCpuMask::new());
        for round in 0..200 {
            m.set_all(&CpuMask::first_n(100));
            let winners: Vec<_> = (0..4)
                .map(|_| {
                    let m = m.clone();
                    std::thread::spawn(move || (0..100).filter(|i| m.test_and_clear(*i)).count())
                })
                .collect();
            let total: usize = winners.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(total, 100, "round {round}");
            assert!(m.load().is_empty());
        }
    }
}
