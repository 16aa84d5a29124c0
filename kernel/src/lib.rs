//! Portable hypervisor logic: no hardware access, unit-tested on the host.
//!
//! Hardware is reached only through functions and traits that the firmware
//! (`boot`, using `arch/ppc64`) supplies, so every piece here runs under
//! `cargo test` on the development machine.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod archive;
pub mod bootargs;
pub mod console;
pub mod cpuchar;
pub mod cpumask;
pub mod deliver;
pub mod devtree;
pub mod dispatch;
pub mod elf;
pub mod fdtw;
pub mod ffs;
pub mod fwnmi;
pub mod gmem;
pub mod guestfdt;
pub mod gzip;
pub mod hpt;
pub mod hptpool;
pub mod layout;
pub mod lpid;
pub mod memmap;
pub mod mode;
pub mod nvram;
pub mod pagealloc;
pub mod papr;
pub mod quirks;
pub mod rootfs;
pub mod scsi;
pub mod smp;
pub mod stackguard;
pub mod time;
pub mod tlb;
pub mod units;
pub mod vcore;
pub mod vio;
pub mod vpa;
pub mod vterm;
pub mod xics;
