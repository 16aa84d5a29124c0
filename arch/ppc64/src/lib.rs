//! POWER8 specifics for the hypervisor firmware.
//!
//! Everything that touches the machine lives here, in small functions whose
//! `unsafe` blocks each carry a `// SAFETY:` line. The pure parts (trap-frame
//! layout, vector names, report formatting) build and test on the host; the
//! parts that execute POWER instructions only build for `powerpc64`.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![no_std]

pub mod bedw;
pub mod hpte;
pub mod paca;
pub mod regs;
pub mod sizes;
pub mod spr;
pub mod trap;

#[cfg(target_arch = "powerpc64")]
pub mod cpu;
#[cfg(target_arch = "powerpc64")]
pub mod fpu;
#[cfg(target_arch = "powerpc64")]
pub mod guest;
#[cfg(target_arch = "powerpc64")]
pub mod opal;
#[cfg(target_arch = "powerpc64")]
pub mod power;
#[cfg(target_arch = "powerpc64")]
pub mod probe;
#[cfg(target_arch = "powerpc64")]
pub mod vectors;
pub mod xics;
