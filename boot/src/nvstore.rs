//! Guest NVRAMs kept in flash across power-offs: the PNOR partition
//! `kernel::nvram::STORE_PARTITION` (`cargo xtask pnor` lays it out),
//! found through skiboot's flash partition table (`kernel::ffs`) and
//! read and written with OPAL's flash calls. Records (`kernel::nvram`)
//! hold one VM's NVRAM each, found by VM name and size. A machine whose
//! flash has no such partition (QEMU's default PNOR, a vendor image)
//! keeps NVRAMs in memory only, and says so once.

use alloc::vec;
use alloc::vec::Vec;
use kernel::devtree::Flash;
use kernel::nvram::{self, RECORD_HEADER};
use log::{info, warn};
use ppc64::opal;

/// The store: the flash and the partition's place in it.
struct Store {
    flash: Flash,
    base: u64,
    size: u64,
}

/// Set once at boot; the lock also keeps one flash operation at a time.
static STORE: spin::Mutex<Option<Store>> = spin::Mutex::new(None);

/// Bytes of the flash partition table read to find the partition.
const TOC_READ: usize = 0x8000;

/// Finds the store on `flash` (skiboot's system flash, if any).
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
    match kernel::ffs::find(&toc, nvram::STORE_PARTITION) {
        Ok(Some(p)) if !p.ecc && p.size >= flash.block && p.base + p.size <= flash.size => {
            info!(
                target: "nvram",
                "guest NVRAMs kept in flash partition {} ({} KiB at {:#x})",
                nvram::STORE_PARTITION,
                p.size >> 10,
                p.base
            );
            *STORE.lock() = Some(Store {
                flash,
                base: p.base,
                size: p.size,
            });
        }
        Ok(Some(p)) => {
            warn!(target: "nvram", "flash partition {} is unusable ({p:?}): guest NVRAMs last until power-off", nvram::STORE_PARTITION)
        }
        Ok(None) => {
            info!(target: "nvram", "no {} partition in flash: guest NVRAMs last until power-off", nvram::STORE_PARTITION)
        }
        Err(e) => {
            info!(target: "nvram", "no flash partition table ({e:?}): guest NVRAMs last until power-off")
        }
    }
}

impl Store {
    fn read(&self, off: u64, buf: &mut [u8]) -> bool {
        opal::flash_read(self.flash.id, self.base + off, buf) == opal::OPAL_SUCCESS
    }

    /// Where `name`'s record is or goes (kernel::nvram::place).
    fn place(&self, name: &str, size: u32) -> Option<(u64, bool)> {
        nvram::place(self.size, self.flash.block, name, size, |off| {
            let mut h = [0u8; RECORD_HEADER];
            self.read(off, &mut h).then_some(h)
        })
    }
}

/// `name`'s NVRAM of `size` bytes as last saved, if the store has it.
pub fn load(name: &str, size: u32) -> Option<Vec<u8>> {
    let store = STORE.lock();
    let s = store.as_ref()?;
    let (off, true) = s.place(name, size)? else {
        return None;
    };
    let mut rec = vec![0u8; RECORD_HEADER + size as usize];
    if !s.read(off, &mut rec) {
        warn!(target: "nvram", "vm {name}: reading its NVRAM from flash failed: starting blank");
        return None;
    }
    match nvram::record_data(&rec, name, size) {
        Some(d) => {
            info!(target: "nvram", "vm {name}: NVRAM ({} KiB) read from flash", size >> 10);
            Some(d.to_vec())
        }
        None => {
            warn!(target: "nvram", "vm {name}: its NVRAM record in flash is damaged: starting blank");
            None
        }
    }
}

/// Saves `name`'s NVRAM (its record erased and written in whole blocks).
pub fn save(name: &str, data: &[u8]) {
    let store = STORE.lock();
    let Some(s) = store.as_ref() else { return };
    let size = data.len() as u32;
    let Some((off, _)) = s.place(name, size) else {
        warn!(target: "nvram", "vm {name}: no room for its NVRAM in flash partition {} ({} KiB): not saved", nvram::STORE_PARTITION, s.size >> 10);
        return;
    };
    let len = nvram::record_len(size, s.flash.block);
    let mut rec = vec![0xffu8; len as usize];
    rec[..RECORD_HEADER].copy_from_slice(&nvram::record_header(name, data));
    rec[RECORD_HEADER..RECORD_HEADER + data.len()].copy_from_slice(data);
    let at = s.base + off;
    let rc = match opal::flash_erase(s.flash.id, at, len) {
        opal::OPAL_SUCCESS => opal::flash_write(s.flash.id, at, &rec),
        rc => rc,
    };
    if rc == opal::OPAL_SUCCESS {
        info!(target: "nvram", "vm {name}: NVRAM ({} KiB) saved to flash", size >> 10);
    } else {
        warn!(target: "nvram", "vm {name}: saving its NVRAM to flash failed (OPAL {rc})");
    }
}
