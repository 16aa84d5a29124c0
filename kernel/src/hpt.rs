//! Hashed page table allocation (seed 002).
//!
//! An HPT of order N is 2^N bytes, aligned to its size, zeroed. The order
//! asked for (or the default: 1/128 of guest memory, at least 2^18) is
//! served by, in turn:
//! 1. the page allocator, if the order differs from the preallocated pool's;
//! 2. the preallocated pool (whose slots have the pool's order);
//! 3. the page allocator at decreasing orders, down to 18 (256 KiB).
//!
//! The caller learns the order actually obtained. An existing HPT is reset
//! (zeroed) rather than reallocated, and never while a vcpu of its VM runs.

use crate::hptpool::{MAX_HPT_ORDER, MIN_HPT_ORDER};
use core::fmt;

/// Where HPT memory comes from (the firmware's page allocator and pool, or
/// a fake in tests).
pub trait HptMemory {
    /// A naturally aligned block of 2^order bytes from the page allocator.
    fn alloc_pages(&mut self, order: u32) -> Option<u64>;
    fn free_pages(&mut self, addr: u64, order: u32);
    /// The pool's slot order, or None when there is no pool.
    fn pool_order(&self) -> Option<u32>;
    /// A free pool slot (of `pool_order()`).
    fn pool_alloc(&mut self) -> Option<u64>;
    fn pool_free(&mut self, addr: u64);
    /// Zeroes `len` bytes at physical `addr`.
    fn zero(&mut self, addr: u64, len: u64);
}

/// An allocated hashed page table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hpt {
    pub base: u64,
    pub order: u32,
    pub from_pool: bool,
}

impl Hpt {
    pub fn size(&self) -> u64 {
        1 << self.order
    }

    /// Number of PTEGs (128 bytes each).
    pub fn ptegs(&self) -> u64 {
        1 << (self.order - 7)
    }

    /// SDR1 for this HPT: HTABORG | HTABSIZE (order - 18).
    pub fn sdr1(&self) -> u64 {
        self.base | (self.order - 18) as u64
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HptError {
    /// Order above what SDR1 can describe.
    BadOrder(u32),
    /// Nothing could be found, even at 256 KiB.
    NoMemory,
    /// A vcpu of the VM is running; the HPT cannot be reset now.
    Busy,
}

impl fmt::Display for HptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HptError::BadOrder(o) => {
                write!(f, "HPT order {o} is above the maximum {MAX_HPT_ORDER}")
            }
            HptError::NoMemory => write!(f, "no memory for an HPT, not even 256 KiB"),
            HptError::Busy => write!(f, "vcpus are running; the HPT cannot be reset now"),
        }
    }
}

/// Default order for a guest with `memory` bytes: 1/128 of it, at least 18.
pub fn default_order(memory: u64) -> u32 {
    let want = (memory / 128).max(1);
    let order = 64 - (want - 1).leading_zeros(); // ceil(log2)
    order.clamp(MIN_HPT_ORDER, MAX_HPT_ORDER)
}

/// Allocates and zeroes an HPT following the seed's fallback order.
pub fn alloc(mem: &mut impl HptMemory, requested: u32) -> Result<Hpt, HptError> {
    if requested > MAX_HPT_ORDER {
        return Err(HptError::BadOrder(requested));
    }
    let order = requested.max(MIN_HPT_ORDER);
    let mut got = None;
    if mem.pool_order() != Some(order) {
        got = mem.alloc_pages(order).map(|b| Hpt {
            base: b,
            order,
            from_pool: false,
        });
    }
    if got.is_none() {
        if let Some(po) = mem.pool_order() {
            got = mem.pool_alloc().map(|b| Hpt {
                base: b,
                order: po,
                from_pool: true,
            });
        }
    }
    if got.is_none() {
        got = (MIN_HPT_ORDER..=order).rev().find_map(|o| {
            mem.alloc_pages(o).map(|b| Hpt {
                base: b,
                order: o,
                from_pool: false,
            })
        });
    }
    let hpt = got.ok_or(HptError::NoMemory)?;
    mem.zero(hpt.base, hpt.size());
    Ok(hpt)
}

/// Returns an HPT to where it came from.
pub fn free(mem: &mut impl HptMemory, hpt: Hpt) {
    if hpt.from_pool {
        mem.pool_free(hpt.base);
    } else {
        mem.free_pages(hpt.base, hpt.order);
    }
}

/// Clears an existing HPT for a VM reset, refusing while `vcpus_running`.
pub fn reset(mem: &mut impl HptMemory, hpt: &Hpt, vcpus_running: u32) -> Result<(), HptError> {
    if vcpus_running != 0 {
        return Err(HptError::Busy);
    }
    mem.zero(hpt.base, hpt.size());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::MIB;

    /// A recording fake: the page allocator serves orders up to `max_pages_order`,
    /// `pages_left` times; the pool has `pool_slots` slots.
    #[derive(Default)]
    struct Fake {
        max_pages_order: u32,
        pages_left: usize,
        pool: Option<u32>,
        pool_slots: usize,
        next: u64,
        log: Vec<String>,
        zeroed: Vec<(u64, u64)>,
    }

    impl HptMemory for Fake {
        fn alloc_pages(&mut self, order: u32) -> Option<u64> {
            self.log.push(format!("pages {order}"));
            if order > self.max_pages_order || self.pages_left == 0 {
                return None;
            }
            self.pages_left -= 1;
            self.next += 1 << 30;
            Some(self.next)
        }
        fn free_pages(&mut self, addr: u64, order: u32) {
            self.log.push(format!("free pages {addr:#x} {order}"));
        }
        fn pool_order(&self) -> Option<u32> {
            self.pool
        }
        fn pool_alloc(&mut self) -> Option<u64> {
            self.log.push("pool".into());
            if self.pool_slots == 0 {
                return None;
            }
            self.pool_slots -= 1;
            Some(0x4000_0000 + self.pool_slots as u64 * 16 * MIB)
        }
        fn pool_free(&mut self, addr: u64) {
            self.log.push(format!("free pool {addr:#x}"));
        }
        fn zero(&mut self, addr: u64, len: u64) {
            self.zeroed.push((addr, len));
        }
    }

    #[test]
    fn default_order_is_one_128th_of_memory_at_least_256k() {
        assert_eq!(default_order(2048 * MIB), 24);
        assert_eq!(default_order(256 * MIB), 21);
        assert_eq!(default_order(300 * MIB), 22); // rounds up
        assert_eq!(default_order(16 * MIB), 18);
        assert_eq!(default_order(0), 18);
    }

    #[test]
    fn other_order_tries_page_allocator_first() {
        let mut f = Fake {
            max_pages_order: 30,
            pages_left: 9,
            pool: Some(24),
            pool_slots: 4,
            ..Default::default()
        };
        let h = alloc(&mut f, 20).unwrap();
        assert_eq!((h.order, h.from_pool), (20, false));
        assert_eq!(f.log, vec!["pages 20"]);
        assert_eq!(f.zeroed, vec![(h.base, 1 << 20)]);
    }

    #[test]
    fn pool_order_goes_to_the_pool_first() {
        let mut f = Fake {
            max_pages_order: 30,
            pages_left: 9,
            pool: Some(24),
            pool_slots: 4,
            ..Default::default()
        };
        let h = alloc(&mut f, 24).unwrap();
        assert_eq!((h.order, h.from_pool), (24, true));
        assert_eq!(f.log, vec!["pool"]);
        free(&mut f, h);
        assert_eq!(f.log.last().unwrap(), &format!("free pool {:#x}", h.base));
    }

    #[test]
    fn page_allocator_failure_falls_back_to_pool_with_the_pool_order() {
        // Page allocator cannot do more than 2^22; order 26 asked.
        let mut f = Fake {
            max_pages_order: 22,
            pages_left: 9,
            pool: Some(24),
            pool_slots: 1,
            ..Default::default()
        };
        let h = alloc(&mut f, 26).unwrap();
        assert_eq!((h.order, h.from_pool), (24, true));
        assert_eq!(f.log, vec!["pages 26", "pool"]);
    }

    #[test]
    fn then_decreasing_orders_down_to_256k() {
        let mut f = Fake {
            max_pages_order: 19,
            pages_left: 9,
            pool: Some(24),
            pool_slots: 0,
            ..Default::default()
        };
        let h = alloc(&mut f, 22).unwrap();
        assert_eq!((h.order, h.from_pool), (19, false));
        assert_eq!(
            f.log,
            vec!["pages 22", "pool", "pages 22", "pages 21", "pages 20", "pages 19"]
        );
        let mut f = Fake {
            max_pages_order: 18,
            pages_left: 9,
            pool: None,
            ..Default::default()
        };
        assert_eq!(alloc(&mut f, 20).unwrap().order, 18);
        assert_eq!(f.log, vec!["pages 20", "pages 20", "pages 19", "pages 18"]);
    }

    #[test]
    fn nothing_left_is_a_clean_error_and_tiny_orders_are_raised() {
        let mut f = Fake {
            max_pages_order: 40,
            pages_left: 0,
            pool: Some(24),
            pool_slots: 0,
            ..Default::default()
        };
        assert_eq!(alloc(&mut f, 20), Err(HptError::NoMemory));
        assert!(f.zeroed.is_empty());
        let mut f = Fake {
            max_pages_order: 40,
            pages_left: 1,
            ..Default::default()
        };
        assert_eq!(alloc(&mut f, 12).unwrap().order, 18);
        assert_eq!(alloc(&mut f, 47), Err(HptError::BadOrder(47)));
    }

    #[test]
    fn reset_clears_but_not_while_vcpus_run() {
        let mut f = Fake {
            max_pages_order: 40,
            pages_left: 1,
            ..Default::default()
        };
        let h = alloc(&mut f, 18).unwrap();
        f.zeroed.clear();
        assert_eq!(reset(&mut f, &h, 1), Err(HptError::Busy));
        assert!(f.zeroed.is_empty());
        assert_eq!(reset(&mut f, &h, 0), Ok(()));
        assert_eq!(f.zeroed, vec![(h.base, 1 << 18)]);
        assert_eq!(h.sdr1(), h.base);
        assert_eq!(
            Hpt {
                base: 0x100_0000,
                order: 24,
                from_pool: true
            }
            .sdr1(),
            0x100_0006
        );
        assert_eq!(h.ptegs(), 2048);
    }
}
