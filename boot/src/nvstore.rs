//! Guest NVRAMs kept in flash across power-offs: the PNOR partition
//! `kernel::nvram::STORE_PARTITION` (`cargo xtask pnor` lays it out),
//! found through skiboot's flash partition table (`kernel::ffs`) and
//! read and written with OPAL's flash calls. Its first erase block is a
//! directory (VM name, place, size, checksum; kernel::nvram), read once
//! at boot and kept here; a VM's NVRAM is written first, the directory
//! after it. A machine whose flash has no such partition (a `-kernel`
//! boot, a vendor PNOR) keeps NVRAMs in memory only, and says so once.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use kernel::devtree::Flash;
use kernel::nvram::{self, StoreEntry};
use log::{info, warn};
use ppc64::opal;

/// The store: the flash, the partition's place in it, its directory.
struct Store {
    flash: Flash,
    base: u64,
    size: u64,
    entries: Vec<StoreEntry>,
}

/// Set once at boot; the lock also keeps one flash operation at a time.
static STORE: spin::Mutex<Option<Store>> = spin::Mutex::new(None);

/// Bytes of the flash partition table read to find the partition.
const TOC_READ: usize = 0x8000;

/// The system flash and its partition table, as read at boot.
static TABLE: spin::Once<(Flash, Vec<u8>)> = spin::Once::new();

/// Partition `name` of the system flash, if it can hold data OPAL's
/// flash calls write: no ECC, whole erase blocks, inside the flash.
/// The error says why not, for a log line.
pub fn partition(name: &str) -> Result<(Flash, kernel::ffs::Partition), String> {
    let Some((flash, toc)) = TABLE.get() else {
        return Err("no system flash with a readable partition table".into());
    };
    let block = flash.block;
    match kernel::ffs::find(toc, name) {
        Ok(Some(p))
            if !p.ecc
                && p.base.is_multiple_of(block)
                && p.size.is_multiple_of(block)
                && p.base + p.size <= flash.size =>
        {
            Ok((*flash, p))
        }
        Ok(Some(p)) => Err(alloc::format!(
            "flash partition {name} is unusable ({p:?}, erase block {block:#x})"
        )),
        Ok(None) => Err(alloc::format!("no {name} partition in flash")),
        Err(e) => Err(alloc::format!("no flash partition table ({e:?})")),
    }
}

/// Reads skiboot's system flash's partition table (if there is a
/// flash) and finds the store in it.
pub fn init(flash: Option<Flash>) {
    let Some(flash) = flash else {
        info!(target: "nvram", "no system flash: guest NVRAMs last until power-off");
        return;
    };
    let mut toc = vec![0u8; TOC_READ];
    let rc = opal::flash_read(flash.id, 0, &mut toc);
    if rc != opal::OPAL_SUCCESS {
        warn!(target: "nvram", "reading the flash partition table failed (OPAL {rc}): guest NVRAMs last until power-off");
        return;
    }
    TABLE.call_once(|| (flash, toc));
    match partition(nvram::STORE_PARTITION) {
        Ok((flash, p)) if p.size >= 2 * flash.block => {
            let mut dir = vec![0u8; flash.block as usize];
            let rc = opal::flash_read(flash.id, p.base, &mut dir);
            if rc != opal::OPAL_SUCCESS {
                warn!(target: "nvram", "reading the guest NVRAM directory failed (OPAL {rc}): guest NVRAMs last until power-off");
                return;
            }
            let entries = nvram::read_directory(&dir, p.size);
            info!(
                target: "nvram",
                "guest NVRAMs kept in flash partition {} ({} KiB at {:#x}, {} stored)",
                nvram::STORE_PARTITION,
                p.size >> 10,
                p.base,
                entries.len()
            );
            *STORE.lock() = Some(Store {
                flash,
                base: p.base,
                size: p.size,
                entries,
            });
        }
        Ok((flash, p)) => {
            warn!(target: "nvram", "flash partition {} is unusable ({p:?}, erase block {:#x}): guest NVRAMs last until power-off", nvram::STORE_PARTITION, flash.block)
        }
        Err(e) => info!(target: "nvram", "{e}: guest NVRAMs last until power-off"),
    }
}

impl Store {
    /// Erases whole blocks at `off` in the store and writes `data` there
    /// (padded with erased bytes).
    fn put(&self, off: u64, data: &[u8]) -> i64 {
        let len = (data.len() as u64).div_ceil(self.flash.block) * self.flash.block;
        let mut buf = vec![0xffu8; len as usize];
        buf[..data.len()].copy_from_slice(data);
        let at = self.base + off;
        match opal::flash_erase(self.flash.id, at, len) {
            opal::OPAL_SUCCESS => opal::flash_write(self.flash.id, at, &buf),
            rc => rc,
        }
    }
}

/// `name`'s NVRAM of `size` bytes as last saved, if the store has it
/// whole.
pub fn load(name: &str, size: u32) -> Option<Vec<u8>> {
    let store = STORE.lock();
    let s = store.as_ref()?;
    let e = s
        .entries
        .iter()
        .find(|e| e.name == name && e.size == size)?;
    let mut data = vec![0u8; size as usize];
    let rc = opal::flash_read(s.flash.id, s.base + e.offset, &mut data);
    if rc != opal::OPAL_SUCCESS || nvram::data_sum(&data) != e.sum {
        warn!(target: "nvram", "vm {name}: its NVRAM in flash is damaged or unreadable (OPAL {rc}): starting blank");
        return None;
    }
    info!(target: "nvram", "vm {name}: NVRAM ({} KiB) read from flash", size >> 10);
    Some(data)
}

/// Saves `name`'s NVRAM: the bytes first, then the directory naming
/// them (a write cut short leaves a checksum that does not match, and
/// the VM starts blank next time).
pub fn save(name: &str, data: &[u8]) {
    let mut store = STORE.lock();
    let Some(s) = store.as_mut() else { return };
    let size = data.len() as u32;
    let Some(off) = nvram::place(&s.entries, s.size, s.flash.block, name, size) else {
        warn!(target: "nvram", "vm {name}: no room for its NVRAM in flash partition {} ({} KiB): not saved", nvram::STORE_PARTITION, s.size >> 10);
        return;
    };
    let entries = nvram::with_entry(&s.entries, name, off, data);
    let Some(dir) = nvram::write_directory(&entries, s.flash.block as usize) else {
        warn!(target: "nvram", "vm {name}: the guest NVRAM directory is full: not saved");
        return;
    };
    let rc = match s.put(off, data) {
        opal::OPAL_SUCCESS => s.put(0, &dir),
        rc => rc,
    };
    if rc == opal::OPAL_SUCCESS {
        s.entries = entries;
        info!(target: "nvram", "vm {name}: NVRAM ({} KiB) saved to flash", size >> 10);
    } else {
        warn!(target: "nvram", "vm {name}: saving its NVRAM to flash failed (OPAL {rc})");
    }
}
