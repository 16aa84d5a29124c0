//! The NVRAM's node (`/vdevice/nvram@30000001`), as QEMU's pseries
//! presents it: Linux finds it by `device_type` and wants a 4-byte
//! `#bytes`. It has no hypercalls and no interrupt: the guest reaches it
//! through RTAS nvram-fetch / nvram-store (crate::papr::services).

use super::{Effect, Irq, VioCall, VioDevice};
use crate::fdtw::FdtWriter;
use crate::papr::services::{Env, HError};

/// Unit address (`reg`) of the guest's NVRAM.
pub const REG: u32 = 0x3000_0001;

/// A VM's NVRAM of `.0` bytes.
pub struct Nvram(pub u32);

impl VioDevice for Nvram {
    fn unit(&self) -> u32 {
        REG
    }

    fn node_name(&self) -> &'static str {
        "nvram"
    }

    fn kind(&self) -> (&'static str, &'static str) {
        ("nvram", "qemu,spapr-nvram")
    }

    fn node(&self, w: &mut FdtWriter) {
        w.prop_u32("#bytes", self.0);
    }

    fn irq(&self) -> Option<Irq> {
        None
    }

    /// No hypercall names the NVRAM.
    fn hcall(&mut self, _: VioCall, _: &mut [u64; 32], _: &mut dyn Env) -> Result<Effect, HError> {
        Err(HError::Parameter)
    }
}
