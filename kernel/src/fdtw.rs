//! A small flattened-device-tree writer (version 17). Used to build guest
//! device trees and, in tests, device trees with deliberate faults.

use alloc::string::String;
use alloc::vec::Vec;

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_END: u32 = 9;
const HEADER_LEN: usize = 40;

/// Builds a device tree node by node. Calls must nest properly; `finish`
/// checks that every node was closed.
#[derive(Default)]
pub struct FdtWriter {
    structs: Vec<u8>,
    strings: Vec<u8>,
    reservations: Vec<(u64, u64)>,
    depth: usize,
    boot_cpuid: u32,
}

/// A writer misuse: unbalanced nodes.
#[derive(Debug, PartialEq, Eq)]
pub struct Unbalanced;

impl FdtWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry to the memory reservation block.
    pub fn reserve(&mut self, addr: u64, size: u64) {
        self.reservations.push((addr, size));
    }

    pub fn set_boot_cpuid(&mut self, id: u32) {
        self.boot_cpuid = id;
    }

    fn u32(&mut self, v: u32) {
        self.structs.extend_from_slice(&v.to_be_bytes());
    }

    fn pad(&mut self) {
        while !self.structs.len().is_multiple_of(4) {
            self.structs.push(0);
        }
    }

    /// Opens a node; the root node's name is "".
    pub fn begin_node(&mut self, name: &str) {
        self.u32(FDT_BEGIN_NODE);
        self.structs.extend_from_slice(name.as_bytes());
        self.structs.push(0);
        self.pad();
        self.depth += 1;
    }

    pub fn end_node(&mut self) {
        self.u32(FDT_END_NODE);
        self.depth = self.depth.wrapping_sub(1);
    }

    fn name_offset(&mut self, name: &str) -> u32 {
        // Reuse an existing copy of the name.
        let mut off = 0;
        while off < self.strings.len() {
            let end = off
                + self.strings[off..]
                    .iter()
                    .position(|&b| b == 0)
                    .unwrap_or(0);
            if &self.strings[off..end] == name.as_bytes() {
                return off as u32;
            }
            off = end + 1;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        off
    }

    /// A property with raw bytes.
    pub fn prop(&mut self, name: &str, value: &[u8]) {
        let off = self.name_offset(name);
        self.u32(FDT_PROP);
        self.u32(value.len() as u32);
        self.u32(off);
        self.structs.extend_from_slice(value);
        self.pad();
    }

    pub fn prop_empty(&mut self, name: &str) {
        self.prop(name, &[]);
    }

    pub fn prop_u32(&mut self, name: &str, v: u32) {
        self.prop(name, &v.to_be_bytes());
    }

    pub fn prop_u64(&mut self, name: &str, v: u64) {
        self.prop(name, &v.to_be_bytes());
    }

    /// A list of 32-bit cells.
    pub fn prop_cells(&mut self, name: &str, cells: &[u32]) {
        let bytes: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
        self.prop(name, &bytes);
    }

    /// A NUL-terminated string.
    pub fn prop_str(&mut self, name: &str, s: &str) {
        let mut v = String::from(s).into_bytes();
        v.push(0);
        self.prop(name, &v);
    }

    /// A string list (each NUL-terminated).
    pub fn prop_strs(&mut self, name: &str, list: &[&str]) {
        let mut v = Vec::new();
        for s in list {
            v.extend_from_slice(s.as_bytes());
            v.push(0);
        }
        self.prop(name, &v);
    }

    /// The finished blob.
    pub fn finish(mut self) -> Result<Vec<u8>, Unbalanced> {
        if self.depth != 0 {
            return Err(Unbalanced);
        }
        self.u32(FDT_END);
        let rsv_off = HEADER_LEN.next_multiple_of(8);
        let rsv_len = (self.reservations.len() + 1) * 16;
        let struct_off = rsv_off + rsv_len;
        let strings_off = struct_off + self.structs.len();
        let total = strings_off + self.strings.len();
        let mut out = Vec::with_capacity(total);
        for v in [
            FDT_MAGIC,
            total as u32,
            struct_off as u32,
            strings_off as u32,
            rsv_off as u32,
            17,
            16,
            self.boot_cpuid,
            self.strings.len() as u32,
            self.structs.len() as u32,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.resize(rsv_off, 0);
        for (a, s) in self.reservations.iter().chain(core::iter::once(&(0, 0))) {
            out.extend_from_slice(&a.to_be_bytes());
            out.extend_from_slice(&s.to_be_bytes());
        }
        out.extend_from_slice(&self.structs);
        out.extend_from_slice(&self.strings);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_tree_reads_back_with_the_fdt_crate() {
        let mut w = FdtWriter::new();
        w.reserve(0x3000_0000, 0x100_0000);
        w.begin_node("");
        w.prop_u32("#address-cells", 2);
        w.prop_u32("#size-cells", 2);
        w.prop_str("model", "test");
        w.begin_node("chosen");
        w.prop_str("bootargs", "hv.log=debug");
        w.end_node();
        w.begin_node("memory@0");
        w.prop_str("device_type", "memory");
        w.prop_cells("reg", &[0, 0, 0, 0x4000_0000]);
        w.end_node();
        w.end_node();
        let blob = w.finish().unwrap();
        let fdt = fdt::Fdt::new(&blob).unwrap();
        assert_eq!(fdt.chosen().bootargs(), Some("hv.log=debug"));
        assert_eq!(fdt.total_size(), blob.len());
        let r: Vec<_> = fdt
            .memory_reservations()
            .map(|r| (r.address() as u64, r.size()))
            .collect();
        assert_eq!(r, vec![(0x3000_0000, 0x100_0000)]);
        let mem = fdt.find_node("/memory@0").unwrap();
        assert_eq!(mem.property("reg").unwrap().value.len(), 16);
        // A string shared by two properties is stored once.
        assert_eq!(fdt.strings().filter(|s| *s == "#address-cells").count(), 1);
    }

    #[test]
    fn unbalanced_nodes_are_refused() {
        let mut w = FdtWriter::new();
        w.begin_node("");
        assert_eq!(w.finish(), Err(Unbalanced));
    }
}
