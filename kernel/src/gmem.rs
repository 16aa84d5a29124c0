//! Guest memory as the hypervisor sees it: the one place that turns a
//! guest-physical address into host memory, with every access bounds
//! checked against the partition's size.
//!
//! The firmware builds a [`GuestMemory`] over a VM's contiguous RAM; host
//! tests build one over a `Vec`. Multi-byte accessors are big-endian (RTAS
//! buffers, the VPA) unless named otherwise.

/// A partition's RAM: guest-physical 0 is `mem[0]`.
pub struct GuestMemory<'a> {
    mem: &'a mut [u8],
}

impl<'a> GuestMemory<'a> {
    pub fn new(mem: &'a mut [u8]) -> Self {
        GuestMemory { mem }
    }

    /// Bytes of guest memory.
    pub fn size(&self) -> u64 {
        self.mem.len() as u64
    }

    /// `gpa..gpa+len`, if it lies inside guest memory.
    pub fn slice(&mut self, gpa: u64, len: u64) -> Option<&mut [u8]> {
        let end = gpa.checked_add(len)?;
        if end > self.size() {
            return None;
        }
        Some(&mut self.mem[gpa as usize..end as usize])
    }

    /// Whether `gpa..gpa+len` lies inside guest memory.
    pub fn contains(&self, gpa: u64, len: u64) -> bool {
        gpa.checked_add(len).is_some_and(|e| e <= self.size())
    }

    pub fn read_u8(&mut self, gpa: u64) -> Option<u8> {
        self.slice(gpa, 1).map(|b| b[0])
    }

    pub fn read_be16(&mut self, gpa: u64) -> Option<u16> {
        self.slice(gpa, 2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn read_be32(&mut self, gpa: u64) -> Option<u32> {
        self.slice(gpa, 4)
            .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
    }

    pub fn write_be32(&mut self, gpa: u64, v: u32) -> Option<()> {
        self.slice(gpa, 4)
            .map(|b| b.copy_from_slice(&v.to_be_bytes()))
    }

    pub fn read_be64(&mut self, gpa: u64) -> Option<u64> {
        self.slice(gpa, 8)
            .map(|b| u64::from_be_bytes(b.try_into().unwrap()))
    }

    pub fn write_be64(&mut self, gpa: u64, v: u64) -> Option<()> {
        self.slice(gpa, 8)
            .map(|b| b.copy_from_slice(&v.to_be_bytes()))
    }

    /// A NUL-terminated string at `gpa` (at most `max` bytes, lossy UTF-8).
    pub fn read_cstr(&mut self, gpa: u64, max: u64) -> Option<alloc::string::String> {
        let avail = self.size().checked_sub(gpa)?.min(max);
        let b = self.slice(gpa, avail)?;
        let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        Some(alloc::string::String::from_utf8_lossy(&b[..n]).into_owned())
    }

    /// Copies `len` bytes from `src` to `dst` (both guest-physical; the
    /// ranges may overlap).
    pub fn copy_within(&mut self, src: u64, dst: u64, len: u64) -> Option<()> {
        if !self.contains(src, len) || !self.contains(dst, len) {
            return None;
        }
        self.mem
            .copy_within(src as usize..(src + len) as usize, dst as usize);
        Some(())
    }
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
        assert!(m.slice(u64::MAX, 2).is_none());
        assert!(m.slice(64, 0).is_some());
        assert!(!m.contains(1, u64::MAX));
    }

    #[test]
    fn strings_stop_at_nul_or_the_end_of_memory() {
        let mut v = vec![0u8; 16];
        v[4..9].copy_from_slice(b"panic");
        v[12..16].copy_from_slice(b"tail");
        let mut m = GuestMemory::new(&mut v);
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
    }
}
