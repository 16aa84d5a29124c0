//! Native XICS interrupt presentation controller (ICP), one 4 KiB window
//! per thread, found in the device tree. Registers are big-endian and
//! accessed with cache-inhibited loads/stores (real mode: the MMU is off,
//! so the access type comes from the instruction).
//!
//! XIRR (+4): a 4-byte load accepts the most favoured pending interrupt
//! (CPPR in the top byte, XISR below); a 4-byte store is the EOI; a 1-byte
//! store sets CPPR. MFRR (+12, byte only): a value more favoured than the
//! target's CPPR raises an IPI (XISR 2).

#[cfg(target_arch = "powerpc64")]
use core::arch::asm;

#[cfg(target_arch = "powerpc64")]
const XIRR: u64 = 4;
const MFRR: u64 = 12;
/// Bytes of a window the hypervisor touches (XIRR to MFRR); a device-tree
/// window smaller than this is refused.
pub const REGS_LEN: u64 = MFRR + 1;

/// XISR of an inter-processor interrupt.
pub const XISR_IPI: u32 = 2;
/// Priority used for IPIs (more favoured = smaller).
pub const IPI_PRIORITY: u8 = 4;
/// CPPR accepting every priority.
pub const CPPR_ALL: u8 = 0xff;
/// MFRR value meaning "no IPI".
pub const MFRR_NONE: u8 = 0xff;

/// One thread's ICP window.
#[cfg(target_arch = "powerpc64")]
#[derive(Clone, Copy, Debug)]
pub struct Icp {
    base: u64,
}

#[cfg(target_arch = "powerpc64")]
impl Icp {
    /// # Safety
    /// `base` must be the real address of an ICP window from the device tree.
    pub const unsafe fn new(base: u64) -> Self {
        Icp { base }
    }

    fn store_u8(&self, off: u64, v: u8) {
        // SAFETY: `base + off` is a register of this ICP window (see `new`);
        // `sync` orders earlier cacheable stores (e.g. a mailbox) before it.
        unsafe {
            asm!("sync", "stbcix {v}, {b}, {o}", v = in(reg) v as u64, b = in(reg_nonzero) self.base, o = in(reg) off, options(nostack))
        };
    }

    /// Sets the current processor priority (0xff: accept everything).
    pub fn set_cppr(&self, v: u8) {
        self.store_u8(XIRR, v);
    }

    /// Writes MFRR: `IPI_PRIORITY` raises an IPI, `MFRR_NONE` clears it.
    pub fn set_mfrr(&self, v: u8) {
        self.store_u8(MFRR, v);
    }

    /// Reads MFRR (MFRR_NONE when no IPI is pending or it was taken).
    pub fn mfrr(&self) -> u8 {
        let v: u64;
        // SAFETY: MFRR of this ICP window, a byte register.
        unsafe {
            asm!("sync", "lbzcix {v}, {b}, {o}", v = out(reg) v, b = in(reg_nonzero) self.base, o = in(reg) MFRR, options(nostack))
        };
        v as u8
    }

    /// Reads (accepts) XIRR: the interrupt is now in service.
    pub fn accept(&self) -> u32 {
        let v: u64;
        // SAFETY: XIRR of this ICP window; the trailing `sync` keeps later
        // cacheable loads (the mailbox) after the accept.
        unsafe {
            asm!("lwzcix {v}, {b}, {o}", "sync", v = out(reg) v, b = in(reg_nonzero) self.base, o = in(reg) XIRR, options(nostack))
        };
        u32::from_be(v as u32)
    }

    /// End of interrupt: writes back the XIRR value `accept` returned,
    /// which also restores the CPPR held in its top byte.
    ///
    /// The trailing `sync` performs the EOI, and an MFRR clear before it,
    /// ahead of every later cacheable load. A sender that stores its wake
    /// state, syncs and then finds MFRR still set sends no second IPI
    /// (`kernel::smp::Smp::kick`), so the woken thread must read the wake
    /// state only once its MFRR clear is visible; without the `sync` a
    /// cache-inhibited store may be performed after those loads.
    pub fn eoi(&self, xirr: u32) {
        // SAFETY: XIRR of this ICP window.
        unsafe {
            asm!("sync", "stwcix {v}, {b}, {o}", "sync", v = in(reg) xirr.to_be() as u64, b = in(reg_nonzero) self.base, o = in(reg) XIRR, options(nostack))
        };
    }

    /// Sends an IPI to the thread owning this window.
    pub fn raise_ipi(&self) {
        self.set_mfrr(IPI_PRIORITY);
    }
}
