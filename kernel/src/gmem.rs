//! Guest memory as the hypervisor sees it: the one place that turns a
//! guest-physical address into host memory, with every access bounds
//! checked against the partition's size.
//!
//! A guest's RAM is written by its vcpus while the hypervisor reads or
//! writes it (a hypercall on one thread, the guest running on the
//! others), so no Rust reference (`&[u8]`, `&mut [u8]`) to it is ever
//! made: every access is a copy in or out through raw pointers (rust-vmm's
//! `vm-memory` dropped its slices over guest memory for the same reason,
//! v0.11). A copy is not ordered against the guest's own stores: what it
//! reads while the guest writes the same bytes is whatever they held, as
//! with a device's DMA. Nothing here relies on those values: every value
//! read is checked after it has been copied into hypervisor memory.
//!
//! The firmware builds a [`GuestMemory`] over a VM's contiguous RAM
//! ([`GuestMemory::from_raw`]); host tests build one over a `Vec`
//! ([`GuestMemory::new`]). Multi-byte accessors are big-endian (RTAS
//! buffers, the VPA) unless named otherwise.

use alloc::vec::Vec;
use core::marker::PhantomData;

/// A partition's RAM: guest-physical 0 is the byte at `base`.
pub struct GuestMemory<'a> {
    base: *mut u8,
    size: u64,
    _ram: PhantomData<&'a mut [u8]>,
}

impl<'a> GuestMemory<'a> {
    /// Over memory the caller owns alone for `'a` (host tests, and RAM
    /// no vcpu runs on yet).
    pub fn new(mem: &'a mut [u8]) -> Self {
        GuestMemory {
            base: mem.as_mut_ptr(),
            size: mem.len() as u64,
            _ram: PhantomData,
        }
    }

    /// Over `size` bytes at `base`, which the guest's vcpus may be
    /// writing meanwhile.
    ///
    /// # Safety
    /// `base..base+size` must be valid for reads and writes for `'a` and
    /// not be referenced by any Rust reference meanwhile (only raw
    /// accesses, such as the guest's own, may touch it).
    pub unsafe fn from_raw(base: *mut u8, size: u64) -> Self {
        GuestMemory {
            base,
            size,
            _ram: PhantomData,
        }
    }

    /// Bytes of guest memory.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether `gpa..gpa+len` lies inside guest memory.
    pub fn contains(&self, gpa: u64, len: u64) -> bool {
        gpa.checked_add(len).is_some_and(|e| e <= self.size)
    }

    /// The host pointer of `gpa..gpa+len`, if it lies inside.
    fn at(&self, gpa: u64, len: u64) -> Option<*mut u8> {
        // In bounds, so the offset fits the allocation (and a usize).
        self.contains(gpa, len)
            .then(|| self.base.wrapping_add(gpa as usize))
    }

    /// Copies `gpa..gpa+buf.len()` out into `buf`.
    pub fn read(&self, gpa: u64, buf: &mut [u8]) -> Option<()> {
        let src = self.at(gpa, buf.len() as u64)?;
        // SAFETY: `src..+len` lies in the RAM `new`/`from_raw` vouched
        // for, which `buf` (a reference the caller holds while this view
        // exists) cannot overlap: `new` borrowed the RAM exclusively, and
        // `from_raw`'s caller promised no reference covers it.
        unsafe { copy_apart(src, buf.as_mut_ptr(), buf.len()) };
        Some(())
    }

    /// Copies `data` in at `gpa`.
    pub fn write(&mut self, gpa: u64, data: &[u8]) -> Option<()> {
        let dst = self.at(gpa, data.len() as u64)?;
        // SAFETY: as in `read`, the other way.
        unsafe { copy_apart(data.as_ptr(), dst, data.len()) };
        Some(())
    }

    /// Copies `len` bytes from `src_gpa` in `src` (another partition's
    /// memory, or this one's) to `dst` in this memory; nothing is copied
    /// unless both ranges lie inside.
    pub fn copy_from(
        &mut self,
        dst: u64,
        src: &GuestMemory<'_>,
        src_gpa: u64,
        len: u64,
    ) -> Option<()> {
        let (from, to) = (src.at(src_gpa, len)?, self.at(dst, len)?);
        let apart = (from as usize).abs_diff(to as usize) >= len as usize;
        // SAFETY: both ranges in bounds of RAM vouched for (see `read`);
        // they may be the same RAM: `copy_apart` only when they do not
        // overlap, else `copy` (which allows overlap).
        unsafe {
            if apart {
                copy_apart(from, to, len as usize);
            } else {
                core::ptr::copy(from, to, len as usize);
            }
        }
        Some(())
    }

    /// Sets `gpa..gpa+len` to `byte`.
    pub fn fill(&mut self, gpa: u64, len: u64, byte: u8) -> Option<()> {
        let dst = self.at(gpa, len)?;
        // SAFETY: in bounds of the RAM vouched for (see `read`).
        unsafe { core::ptr::write_bytes(dst, byte, len as usize) };
        Some(())
    }

    /// Copies `len` bytes from `src` to `dst` (both guest-physical; the
    /// ranges may overlap).
    pub fn copy_within(&mut self, src: u64, dst: u64, len: u64) -> Option<()> {
        let (from, to) = (self.at(src, len)?, self.at(dst, len)?);
        // SAFETY: both ranges in bounds of the RAM vouched for; `copy`
        // allows overlap.
        unsafe { core::ptr::copy(from, to, len as usize) };
        Some(())
    }

    /// `gpa..gpa+len` copied out.
    pub fn to_vec(&self, gpa: u64, len: u64) -> Option<Vec<u8>> {
        if !self.contains(gpa, len) {
            return None;
        }
        let mut v = alloc::vec![0; len as usize];
        self.read(gpa, &mut v)?;
        Some(v)
    }

    fn read_n<const N: usize>(&self, gpa: u64) -> Option<[u8; N]> {
        let mut b = [0; N];
        self.read(gpa, &mut b)?;
        Some(b)
    }

    pub fn read_u8(&self, gpa: u64) -> Option<u8> {
        self.read_n::<1>(gpa).map(|b| b[0])
    }

    pub fn write_u8(&mut self, gpa: u64, v: u8) -> Option<()> {
        self.write(gpa, &[v])
    }

    pub fn read_be16(&self, gpa: u64) -> Option<u16> {
        self.read_n(gpa).map(u16::from_be_bytes)
    }

    pub fn read_be32(&self, gpa: u64) -> Option<u32> {
        self.read_n(gpa).map(u32::from_be_bytes)
    }

    pub fn write_be32(&mut self, gpa: u64, v: u32) -> Option<()> {
        self.write(gpa, &v.to_be_bytes())
    }

    pub fn read_be64(&self, gpa: u64) -> Option<u64> {
        self.read_n(gpa).map(u64::from_be_bytes)
    }

    pub fn write_be64(&mut self, gpa: u64, v: u64) -> Option<()> {
        self.write(gpa, &v.to_be_bytes())
    }

    /// A NUL-terminated string at `gpa` (at most `max` bytes, lossy UTF-8).
    pub fn read_cstr(&self, gpa: u64, max: u64) -> Option<alloc::string::String> {
        let avail = self.size.checked_sub(gpa)?.min(max);
        let b = self.to_vec(gpa, avail)?;
        let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        Some(alloc::string::String::from_utf8_lossy(&b[..n]).into_owned())
    }
}

/// Copies `len` bytes from `src` to `dst`, which do not overlap: 64
/// bytes per step in eight doubleword loads and stores when both are
/// 8-byte aligned (a disk's sectors, a page of a buffer: the copies of
/// virtual I/O), else as `copy_nonoverlapping`. The firmware's own
/// `memcpy` (compiler-builtins) moves a doubleword per loop iteration;
/// under QEMU every instruction is emulated, so the fewer per byte the
/// faster a disk or network copy. Volatile accesses keep the compiler
/// from turning the loop back into a `memcpy` call.
///
/// # Safety
/// `src..src+len` readable, `dst..dst+len` writable, not overlapping.
unsafe fn copy_apart(src: *const u8, dst: *mut u8, len: usize) {
    const STEP: usize = 64;
    if len < STEP || !(src as usize | dst as usize).is_multiple_of(8) {
        // SAFETY: the caller's promise.
        unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
        return;
    }
    let (s, d) = (src as *const u64, dst as *mut u64);
    let blocks = len / STEP;
    for b in 0..blocks {
        // SAFETY: doublewords 8b..8b+8 lie in the ranges the caller gave
        // (b < len / 64), both 8-byte aligned.
        unsafe {
            let (s, d) = (s.add(8 * b), d.add(8 * b));
            let w = [
                s.read_volatile(),
                s.add(1).read_volatile(),
                s.add(2).read_volatile(),
                s.add(3).read_volatile(),
                s.add(4).read_volatile(),
                s.add(5).read_volatile(),
                s.add(6).read_volatile(),
                s.add(7).read_volatile(),
            ];
            for (k, v) in w.iter().enumerate() {
                d.add(k).write_volatile(*v);
            }
        }
    }
    let done = blocks * STEP;
    // SAFETY: the rest of the caller's ranges.
    unsafe { core::ptr::copy_nonoverlapping(src.add(done), dst.add(done), len - done) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn accesses_inside_succeed_and_outside_fail() {
        let mut v = vec![0u8; 64];
        let mut m = GuestMemory::new(&mut v);
        assert_eq!(m.size(), 64);
        m.write_be32(60, 0x1234_5678).unwrap();
        assert_eq!(m.read_be32(60), Some(0x1234_5678));
        assert_eq!(m.read_be16(60), Some(0x1234));
        assert_eq!(m.read_u8(63), Some(0x78));
        assert_eq!(m.read_be32(61), None);
        assert_eq!(m.write_be64(57, 1), None);
        assert_eq!(m.read_u8(64), None);
        assert_eq!(m.write_u8(64, 1), None);
        assert!(m.to_vec(u64::MAX, 2).is_none());
        assert_eq!(m.to_vec(64, 0), Some(vec![]));
        assert!(!m.contains(1, u64::MAX));
        assert_eq!(m.fill(60, 5, 0xff), None);
        m.fill(60, 4, 0xff).unwrap();
        assert_eq!(m.read_be32(60), Some(u32::MAX));
    }

    #[test]
    fn a_refused_write_changes_nothing() {
        let mut v = vec![7u8; 16];
        let mut m = GuestMemory::new(&mut v);
        assert_eq!(m.write(10, &[0; 7]), None);
        assert_eq!(m.fill(u64::MAX, 2, 0), None);
        assert_eq!(v, vec![7u8; 16]);
    }

    #[test]
    fn strings_stop_at_nul_or_the_end_of_memory() {
        let mut v = vec![0u8; 16];
        v[4..9].copy_from_slice(b"panic");
        v[12..16].copy_from_slice(b"tail");
        let m = GuestMemory::new(&mut v);
        assert_eq!(m.read_cstr(4, 100).as_deref(), Some("panic"));
        assert_eq!(m.read_cstr(4, 3).as_deref(), Some("pan"));
        assert_eq!(m.read_cstr(12, 100).as_deref(), Some("tail"));
        assert_eq!(m.read_cstr(17, 4), None);
    }

    #[test]
    fn copies_check_both_ranges() {
        let mut v: alloc::vec::Vec<u8> = (0..32).collect();
        let mut m = GuestMemory::new(&mut v);
        m.copy_within(0, 16, 16).unwrap();
        assert_eq!(m.read_u8(16), Some(0));
        assert_eq!(m.copy_within(0, 17, 16), None);
        assert_eq!(m.copy_within(17, 0, 16), None);
        // Overlapping ranges copy as memmove does.
        m.copy_within(0, 1, 4).unwrap();
        assert_eq!(m.to_vec(0, 5), Some(vec![0, 0, 1, 2, 3]));
    }

    #[test]
    fn copies_of_every_length_and_alignment_move_exactly_their_bytes() {
        let src: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8).collect();
        for (from, to, len) in [
            (0, 0, 64),
            (0, 8, 4096),
            (8, 16, 4099),
            (3, 8, 200),
            (0, 5, 130),
            (16, 0, 63),
            (0, 0, 0),
        ] {
            let mut dst = vec![0xeeu8; 5200];
            let mut m = GuestMemory::new(&mut dst);
            m.write(to as u64, &src[from..from + len]).unwrap();
            assert_eq!(
                &dst[to..to + len],
                &src[from..from + len],
                "{from} {to} {len}"
            );
            assert!(dst[..to].iter().all(|b| *b == 0xee));
            assert!(
                dst[to + len..].iter().all(|b| *b == 0xee),
                "{from} {to} {len}: past the end"
            );
            let mut back = vec![0u8; len];
            GuestMemory::new(&mut dst)
                .read(to as u64, &mut back)
                .unwrap();
            assert_eq!(back, &src[from..from + len]);
        }
    }
}
