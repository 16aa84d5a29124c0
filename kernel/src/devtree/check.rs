//! A full structural check of a flattened device tree before any of it is
//! read: the `fdt` crate trusts its input and panics (asserts, slice
//! indexing, `unwrap`s) on a malformed blob, so [`well_formed`] first
//! proves everything the crate relies on (the host fuzz test
//! `fuzz_skiboot_device_tree` drives both).
//!
//! Checked (Devicetree Specification v0.4, chapter 5): the header's magic,
//! version and sizes; every block inside `totalsize` and the input; the
//! memory reservation block 8-byte aligned and ended by its zero entry;
//! the structure block a single root node of 4-byte aligned tokens, each
//! node's properties before its children, names NUL-terminated UTF-8,
//! property values inside the block and property names inside the strings
//! block, nesting at most [`MAX_DEPTH`] deep, then `FDT_END`. `FDT_NOP` is
//! refused (no firmware here writes one, and the crate skips them only in
//! some places).

const MAGIC: u32 = 0xd00d_feed;
const HEADER_LEN: usize = 40;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;
/// Deepest node nesting accepted (the `fdt` crate keeps 64 parents; the
/// deepest skiboot tree is 5).
pub const MAX_DEPTH: usize = 32;

/// Where the blob is malformed (byte offset from its start) and how.
pub type Malformed = (u32, &'static str);

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// A NUL-terminated UTF-8 string starting at `at` in `b`: its length
/// without the NUL.
fn cstr(b: &[u8], at: usize) -> Option<usize> {
    let rest = b.get(at..)?;
    let n = rest.iter().position(|&c| c == 0)?;
    core::str::from_utf8(&rest[..n]).ok()?;
    Some(n)
}

/// Checks `blob` as described in the module documentation.
pub fn well_formed(blob: &[u8]) -> Result<(), Malformed> {
    let h = |i: usize, what| be32(blob, 4 * i).ok_or((4 * i as u32, what));
    if h(0, "truncated header")? != MAGIC {
        return Err((0, "bad magic (expected 0xd00dfeed)"));
    }
    let total = h(1, "truncated header")? as usize;
    let (off_struct, off_strings, off_rsv) = (
        h(2, "truncated header")? as usize,
        h(3, "truncated header")? as usize,
        h(4, "truncated header")? as usize,
    );
    let (version, last_comp) = (h(5, "truncated header")?, h(6, "truncated header")?);
    let (size_strings, size_struct) = (
        h(8, "truncated header")? as usize,
        h(9, "truncated header")? as usize,
    );
    if total < HEADER_LEN || total > blob.len() {
        return Err((
            4,
            "totalsize is smaller than the header or larger than the blob",
        ));
    }
    if version < 17 || last_comp > 17 {
        return Err((20, "unsupported version (need 17, compatible with 16..=17)"));
    }
    let inside = |off: usize, len: usize| {
        off >= HEADER_LEN && off.checked_add(len).is_some_and(|e| e <= total)
    };
    if !inside(off_struct, size_struct) || off_struct % 4 != 0 || size_struct % 4 != 0 {
        return Err((8, "structure block outside the blob or not 4-byte aligned"));
    }
    if !inside(off_strings, size_strings) {
        return Err((12, "strings block outside the blob"));
    }
    if !inside(off_rsv, 16) || off_rsv % 8 != 0 {
        return Err((
            16,
            "memory reservation block outside the blob or not 8-byte aligned",
        ));
    }
    let blob = &blob[..total];
    let mut at = off_rsv;
    loop {
        let (a, s) = match (be64(blob, at), be64(blob, at + 8)) {
            (Some(a), Some(s)) => (a, s),
            _ => return Err((at as u32, "memory reservation block has no end entry")),
        };
        at += 16;
        if a == 0 && s == 0 {
            break;
        }
    }
    structure(
        &blob[off_struct..off_struct + size_struct],
        &blob[off_strings..off_strings + size_strings],
    )
    .map_err(|(o, what)| ((off_struct + o as usize) as u32, what))
}

/// The structure block `s` (offsets relative to it).
fn structure(s: &[u8], strings: &[u8]) -> Result<(), Malformed> {
    let mut at = 0usize;
    let mut depth = 0usize;
    // Whether the current node has had a child (its properties are over).
    let mut children = false;
    let tok = |at: usize| be32(s, at).ok_or((at as u32, "structure block ends inside a token"));
    loop {
        let here = at as u32;
        match tok(at)? {
            BEGIN_NODE => {
                if depth == 0 && at != 0 {
                    return Err((here, "a second root node"));
                }
                let n = cstr(s, at + 4)
                    .ok_or((here, "node name not NUL-terminated UTF-8 inside the block"))?;
                if depth == 0 && n != 0 {
                    return Err((here, "the root node has a name"));
                }
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err((here, "nodes nested too deep"));
                }
                children = false;
                at = (at + 4 + n + 1).next_multiple_of(4);
            }
            PROP => {
                if depth == 0 {
                    return Err((here, "property outside the root node"));
                }
                if children {
                    return Err((here, "property after a child node"));
                }
                let len = tok(at + 4)? as usize;
                let name = tok(at + 8)? as usize;
                if name >= strings.len() || cstr(strings, name).is_none() {
                    return Err((
                        here,
                        "property name not a NUL-terminated UTF-8 string of the strings block",
                    ));
                }
                let end = (at + 12).checked_add(len).filter(|&e| e <= s.len());
                at = end
                    .ok_or((here, "property value runs past the structure block"))?
                    .next_multiple_of(4);
            }
            END_NODE => {
                if depth == 0 {
                    return Err((here, "end of a node that was not begun"));
                }
                depth -= 1;
                // The parent has had a child: this one.
                children = true;
                at += 4;
            }
            END => {
                if depth != 0 || at == 0 {
                    return Err((here, "end of the structure block inside a node"));
                }
                return Ok(());
            }
            NOP => return Err((here, "NOP token (not supported)")),
            _ => return Err((here, "unknown token")),
        }
        if at > s.len() {
            return Err((here, "structure block ends inside a token"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &[u8] = include_bytes!("../../../tests/fixtures/p8-2c4t-2g.dtb");

    #[test]
    fn skiboots_trees_are_well_formed() {
        assert_eq!(well_formed(FIXTURE), Ok(()));
        assert_eq!(
            well_formed(include_bytes!(
                "../../../tests/fixtures/p8-2c4t-2g-initrd.dtb"
            )),
            Ok(())
        );
        assert_eq!(well_formed(&nested(0)), Ok(()));
    }

    fn with_struct_word(index_from_struct: usize, v: u32) -> Vec<u8> {
        let mut b = FIXTURE.to_vec();
        let off = be32(&b, 8).unwrap() as usize + 4 * index_from_struct;
        b[off..off + 4].copy_from_slice(&v.to_be_bytes());
        b
    }

    #[test]
    fn what_the_fdt_crate_would_panic_on_is_refused() {
        let total = FIXTURE.len();
        assert_eq!(
            well_formed(&FIXTURE[..total - 1]).unwrap_err().1,
            "totalsize is smaller than the header or larger than the blob"
        );
        // The root node's first token replaced: a property outside it.
        assert_eq!(
            well_formed(&with_struct_word(0, PROP)).unwrap_err(),
            (be32(FIXTURE, 8).unwrap(), "property outside the root node")
        );
        assert_eq!(
            well_formed(&with_struct_word(0, NOP)).unwrap_err().1,
            "NOP token (not supported)"
        );
        assert_eq!(
            well_formed(&with_struct_word(0, 0x77)).unwrap_err().1,
            "unknown token"
        );
        // The strings block cut to nothing: every property name is outside.
        let mut b = FIXTURE.to_vec();
        b[32..36].copy_from_slice(&0u32.to_be_bytes());
        assert!(well_formed(&b).unwrap_err().1.starts_with("property name"));
        // A version-16 tree lacks size_dt_struct.
        let mut b = FIXTURE.to_vec();
        b[20..24].copy_from_slice(&16u32.to_be_bytes());
        assert!(well_formed(&b)
            .unwrap_err()
            .1
            .starts_with("unsupported version"));
    }

    /// A root node with `depth` nodes nested below it.
    fn nested(depth: usize) -> Vec<u8> {
        let mut w = crate::fdtw::FdtWriter::new();
        w.begin_node("");
        w.prop_u32("#address-cells", 2);
        for _ in 0..depth {
            w.begin_node("n");
        }
        for _ in 0..=depth {
            w.end_node();
        }
        w.finish().unwrap()
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused() {
        assert_eq!(well_formed(&nested(MAX_DEPTH - 1)), Ok(()));
        assert_eq!(
            well_formed(&nested(MAX_DEPTH)).unwrap_err().1,
            "nodes nested too deep"
        );
    }

    #[test]
    fn an_empty_structure_block_is_refused() {
        let w = crate::fdtw::FdtWriter::new();
        assert!(well_formed(&w.finish().unwrap()).is_err());
    }
}
