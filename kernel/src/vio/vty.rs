//! The vty (`/vdevice/vty@30000000`, `hvterm1`): H_PUT_TERM_CHAR and
//! H_GET_TERM_CHAR, their arguments checked here; the bytes go to and
//! come from the machine's console ([`Env`]'s console calls), which keeps
//! the line state (crate::vterm). Its level-sensitive source is asserted
//! while typed input waits.

use super::{Effect, Irq, VioCall, VioDevice};
use crate::papr::services::{Env, HError};
use crate::vterm;

/// Unit address (`reg`, the vtermno) of the console.
pub const REG: u32 = 0x3000_0000;

/// The one vty of a VM.
pub struct Vty;

impl VioDevice for Vty {
    fn unit(&self) -> u32 {
        REG
    }

    /// 0: "the first vty", as on QEMU's pseries.
    fn alias(&self) -> Option<u64> {
        Some(vterm::FIRST_VTY)
    }

    fn node_name(&self) -> &'static str {
        "vty"
    }

    fn kind(&self) -> (&'static str, &'static str) {
        ("serial", "hvterm1")
    }

    fn irq(&self) -> Option<Irq> {
        Some(Irq::Level)
    }

    fn hcall(
        &mut self,
        call: VioCall,
        gpr: &mut [u64; 32],
        env: &mut dyn Env,
    ) -> Result<Effect, HError> {
        match call {
            // (vtermno, len, chars 0-7, chars 8-15)
            VioCall::PutTermChar => {
                let (bytes, n) = vterm::unpack(gpr[5], gpr[6], gpr[7]).ok_or(HError::Parameter)?;
                env.console_write(&bytes[..n]);
                Ok(Effect::None)
            }
            // (vtermno) -> count in r4, up to 16 bytes in r5, r6.
            VioCall::GetTermChar => {
                (gpr[4], gpr[5], gpr[6]) = env.console_read();
                Ok(Effect::Line(env.console_has_input()))
            }
            // Its interrupt is the console's, not the guest's to mask (as
            // QEMU's spapr-vty: no signal bits): only "off" is accepted.
            VioCall::Signal if gpr[5] == 0 => Ok(Effect::None),
            _ => Err(HError::Parameter),
        }
    }
}
