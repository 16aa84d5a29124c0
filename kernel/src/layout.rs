//! Where things go in a new guest's memory, as on QEMU's pseries machine:
//! the image where it asks (or 0x400000), the initrd 1 MiB-aligned after
//! it, the RTAS area in the top page, the device tree just below it.

use crate::fwnmi;
use crate::papr::rtas::RTAS_BLOB;

/// The RTAS area at the top of guest memory: the blob, the FWNMI error
/// log after it, Linux's per-vcpu margin.
pub const RTAS_SIZE: u64 = 0x1000;
const _: () = assert!(RTAS_BLOB.len() as u64 <= fwnmi::ERROR_LOG_OFFSET);
const _: () = assert!(fwnmi::rtas_size_needed(1) <= RTAS_SIZE);

/// The initrd starts on this boundary after the image, and at least this
/// much memory stays free above it (for the device tree and RTAS).
pub const INITRD_ALIGN: u64 = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The initrd (bytes) does not fit above the image.
    InitrdTooBig(u64),
    /// The device tree would overlap the image or initrd.
    NoRoomForDeviceTree,
}

/// Guest-physical range of an initrd of `len` bytes after an image that
/// ends at `image_end`, in `mem_size` bytes of memory.
pub fn initrd(image_end: u64, len: u64, mem_size: u64) -> Result<(u64, u64), LayoutError> {
    let start = image_end.next_multiple_of(INITRD_ALIGN);
    let end = start
        .checked_add(len)
        .ok_or(LayoutError::InitrdTooBig(len))?;
    match end.checked_add(INITRD_ALIGN) {
        Some(top) if top <= mem_size => Ok((start, end)),
        _ => Err(LayoutError::InitrdTooBig(len)),
    }
}

/// Base of the RTAS area.
pub fn rtas_base(mem_size: u64) -> u64 {
    mem_size - RTAS_SIZE
}

/// Where a device tree of `len` bytes goes: page-aligned, right below the
/// RTAS area, above `top_used` (the end of the image or initrd).
pub fn device_tree(mem_size: u64, len: u64, top_used: u64) -> Result<u64, LayoutError> {
    let at = rtas_base(mem_size)
        .checked_sub(len)
        .ok_or(LayoutError::NoRoomForDeviceTree)?
        & !0xfff;
    if at < top_used {
        return Err(LayoutError::NoRoomForDeviceTree);
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    const MIB: u64 = 1 << 20;

    #[test]
    fn linux_in_1g_gets_its_initrd_after_the_image_and_the_tree_at_the_top() {
        // Debian's vmlinux at 0 ends at ~40 MiB; a 3 MiB initramfs.
        let (start, end) = initrd(40 * MIB + 123, 3 * MIB, 1024 * MIB).unwrap();
        assert_eq!((start, end), (41 * MIB, 44 * MIB));
        assert_eq!(rtas_base(1024 * MIB), 1024 * MIB - 0x1000);
        let fdt = device_tree(1024 * MIB, 0x4cfa, end).unwrap();
        assert_eq!(fdt, 1024 * MIB - 0x1000 - 0x5000);
        assert!(fdt + 0x4cfa <= rtas_base(1024 * MIB));
    }

    #[test]
    fn what_does_not_fit_is_refused() {
        // The initrd must leave 1 MiB above it.
        assert_eq!(initrd(0, 15 * MIB, 16 * MIB), Ok((0, 15 * MIB)));
        assert_eq!(
            initrd(1, 15 * MIB, 16 * MIB),
            Err(LayoutError::InitrdTooBig(15 * MIB))
        );
        assert_eq!(
            initrd(0, u64::MAX, 16 * MIB),
            Err(LayoutError::InitrdTooBig(u64::MAX))
        );
        // A tree that would reach down into the image.
        assert_eq!(
            device_tree(16 * MIB, 0x2000, 16 * MIB - 0x2000),
            Err(LayoutError::NoRoomForDeviceTree)
        );
        assert_eq!(
            device_tree(16 * MIB, 32 * MIB, 0),
            Err(LayoutError::NoRoomForDeviceTree)
        );
    }
}
