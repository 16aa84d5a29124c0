//! A VM's disks (the LUNs of its v-scsi adapter, kernel::vio::vscsi):
//! where each one's bytes live on this machine. A writable disk is a
//! block of the machine's memory that the VM owns while it exists, so
//! what it wrote survives its reboots: a copy of its image from the boot
//! archive, or zeros. A read-only image is read where the boot archive
//! holds it (reserved for the hypervisor's whole life), one copy for
//! every VM that names it so. A flash disk is a partition of the
//! machine's flash (`DISK-NAME`), cached whole in such a block
//! (kernel::scsi::flash) and written back through OPAL's flash calls;
//! one VM at a time may have it.

use super::*;
use crate::mem::Pages;
use kernel::archive::{DiskSource, DiskSpec};
use kernel::scsi::flash::{self, FlashStore};
use kernel::scsi::{Disk, RamStore, RomStore, Store};
use kernel::vio::vscsi;
use ppc64::opal;

/// The flash disks in use, by name: a second VM may not have one.
static CLAIMED: spin::Mutex<Vec<String>> = spin::Mutex::new(Vec::new());

/// A flash partition as a flash disk reaches it: OPAL's calls, each done
/// (its completion waited for) when it returns. Holds the disk's claim.
struct OpalFlash {
    name: String,
    flash: kernel::devtree::Flash,
    part: kernel::ffs::Partition,
}

impl OpalFlash {
    /// Disk `name`'s partition, claimed; why not, for the VM's error.
    fn claim(name: &str) -> Result<OpalFlash, String> {
        let (flash, part) = crate::nvstore::partition(&flash::partition_name(name))?;
        let mut claimed = CLAIMED.lock();
        if claimed.iter().any(|n| n == name) {
            return Err(alloc::format!("flash disk {name} is another VM's"));
        }
        claimed.push(name.into());
        Ok(OpalFlash {
            name: name.into(),
            flash,
            part,
        })
    }

    fn code(rc: i64) -> Result<(), i64> {
        if rc == opal::OPAL_SUCCESS {
            Ok(())
        } else {
            Err(rc)
        }
    }
}

impl Drop for OpalFlash {
    fn drop(&mut self) {
        CLAIMED.lock().retain(|n| *n != self.name);
    }
}

impl flash::Flash for OpalFlash {
    fn bytes(&self) -> u64 {
        self.part.size
    }

    fn erase_block(&self) -> u64 {
        self.flash.block
    }

    fn read(&mut self, at: u64, buf: &mut [u8]) -> Result<(), i64> {
        Self::code(opal::flash_read(self.flash.id, self.part.base + at, buf))
    }

    fn erase(&mut self, at: u64, len: u64) -> Result<(), i64> {
        Self::code(opal::flash_erase(self.flash.id, self.part.base + at, len))
    }

    fn write(&mut self, at: u64, data: &[u8]) -> Result<(), i64> {
        Self::code(opal::flash_write(self.flash.id, self.part.base + at, data))
    }
}

/// The disks of VM `name` from its manifest lines, in LUN order; an
/// error names the first that could not be made (the ones made before it
/// are freed).
pub(super) fn make(name: &str, specs: &[DiskSpec<'static>]) -> Result<Vec<Disk>, VmError> {
    let mut disks = Vec::with_capacity(specs.len());
    for (lun, spec) in specs.iter().enumerate() {
        let memory = |bytes: u64| {
            Pages::zeroed(bytes).ok_or(VmError::NoDiskMemory {
                lun,
                mib: bytes.div_ceil(1 << 20),
            })
        };
        let store: Box<dyn Store> = match (&spec.source, spec.read_only) {
            (DiskSource::Image(_, data), true) => Box::new(RomStore(data)),
            (DiskSource::Image(_, data), false) => {
                let mut pages = memory(data.len() as u64)?;
                pages.as_mut().copy_from_slice(data);
                Box::new(RamStore::new(pages, true))
            }
            (DiskSource::Scratch(bytes), _) => Box::new(RamStore::new(memory(*bytes)?, true)),
            (DiskSource::Flash(disk), _) => {
                let fail = |why: String| VmError::Disk { lun, why };
                let f = OpalFlash::claim(disk).map_err(fail)?;
                let at = f.part.base;
                let pages = memory(f.part.size)?;
                let s = FlashStore::load(pages, f)
                    .map_err(|e| fail(alloc::format!("flash disk {disk}: {e:?}")))?;
                info!(target: "disk", "{name}: LUN {lun} is flash disk {disk} ({} KiB at flash {at:#x})", s.bytes() >> 10);
                Box::new(s)
            }
        };
        let serial = alloc::format!("{name}-{lun}");
        disks.push(Disk::new(store, &serial, vscsi::MAX_TRANSFER));
    }
    Ok(disks)
}
