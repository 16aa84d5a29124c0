//! Firmware-assisted NMI (PAPR FWNMI): once a guest has registered its
//! handlers with RTAS `ibm,nmi-register`, a machine check is delivered at
//! the guest's registered machine-check vector instead of 0x200, with r3
//! pointing at an RTAS error log in the RTAS area (the interrupted r3 saved
//! in its first doubleword), and the log stays the guest's until it calls
//! `ibm,nmi-interlock`. A second machine check on the same vcpu before
//! that is fatal for the partition (QEMU's pseries treats it as a guest
//! panic). Layout and values as QEMU's `spapr_mce_dispatch_elog` writes
//! them and Linux's pseries `ras.c` reads them.

use crate::papr::rtas;

/// Where the log goes, from the RTAS base (QEMU's RTAS_ERROR_LOG_OFFSET).
pub const ERROR_LOG_OFFSET: u64 = 0x30;
/// `rtas-error-log-max`: the most Linux copies out of the log.
pub const ERROR_LOG_MAX: u64 = 2048;
/// The RTAS area must hold the blob, the log and Linux's 16-byte margin
/// per vcpu (system-reset save areas) plus 8.
pub const fn rtas_size_needed(vcpus: u64) -> u64 {
    ERROR_LOG_OFFSET + ERROR_LOG_MAX + vcpus * 16 + 8
}

/// Registered handlers must lie in the first 32 MiB (and in guest memory).
const VECTOR_LIMIT: u64 = 32 << 20;

/// What went wrong, for the log's machine-check section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// A load or store of this real address failed (uncorrectable error).
    LoadStore(u64),
    /// An instruction fetch at this real address failed.
    Fetch(u64),
}

/// The guest's FWNMI registration and the interlock, per VM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fwnmi {
    /// (system reset, machine check) handler addresses.
    vectors: Option<(u64, u64)>,
    /// The vcpu whose machine check log is not released yet.
    held_by: Option<u32>,
}

/// Why a machine check cannot be delivered through FWNMI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// No handler registered: deliver at 0x200 as the architecture does.
    NotRegistered,
    /// This vcpu's previous machine check is still being handled: the
    /// partition cannot take another (fatal).
    Nested,
    /// Another vcpu holds the log: wait for its interlock.
    Busy(u32),
}

impl Fwnmi {
    /// `ibm,nmi-register(system reset, machine check)` for a guest with
    /// `memory` bytes: both handlers inside guest memory and the first 32
    /// MiB, word aligned.
    pub fn register(&mut self, system_reset: u64, machine_check: u64, memory: u64) -> i32 {
        let ok = |a: u64| a < VECTOR_LIMIT.min(memory) && a.is_multiple_of(4);
        if !ok(system_reset) || !ok(machine_check) {
            return rtas::PARAMETER_ERROR;
        }
        self.vectors = Some((system_reset, machine_check));
        rtas::SUCCESS
    }

    /// `ibm,nmi-interlock` from `vcpu`: releases the log if it holds it;
    /// a vcpu that does not is answered success (Linux also calls it after
    /// a system reset). Parameter error if nothing was registered.
    pub fn interlock(&mut self, vcpu: u32) -> i32 {
        if self.vectors.is_none() {
            return rtas::PARAMETER_ERROR;
        }
        if self.held_by == Some(vcpu) {
            self.held_by = None;
        }
        rtas::SUCCESS
    }

    /// A machine check for `vcpu`: on success the log is now held by it
    /// and the answer is the registered handler's address.
    pub fn begin_machine_check(&mut self, vcpu: u32) -> Result<u64, Refused> {
        let (_, mc) = self.vectors.ok_or(Refused::NotRegistered)?;
        match self.held_by {
            Some(v) if v == vcpu => Err(Refused::Nested),
            Some(v) => Err(Refused::Busy(v)),
            None => {
                self.held_by = Some(vcpu);
                Ok(mc)
            }
        }
    }

    /// Forgets the registration (system reset of the VM).
    pub fn reset(&mut self) {
        *self = Fwnmi::default();
    }
}

/// Bytes of the log written at `rtas base + ERROR_LOG_OFFSET`.
pub const LOG_LEN: usize = 72;

/// Builds the log: the interrupted r3, the RTAS error log header (version
/// 6, severity "error sync", disposition "not recovered", initiator CPU,
/// extended), the version 6 extended header (big-endian, IBM format) and
/// one machine-check section (`MC`) saying an uncorrectable error on a
/// load/store or an instruction fetch, with its effective address.
pub fn machine_check_log(saved_r3: u64, cause: Cause) -> [u8; LOG_LEN] {
    const VERSION_6: u32 = 0x0600_0000;
    const SEVERITY_ERROR_SYNC: u32 = 3 << 21;
    const DISPOSITION_NOT_RECOVERED: u32 = 2 << 19;
    const EXTENDED: u32 = 1 << 18;
    const INITIATOR_CPU: u32 = 1 << 12;
    const EXT_LEN: u32 = 56;
    const V6_VALID_NEW_BIGENDIAN: u8 = 0x86;
    const V6_POWERPC_FORMAT_IBM: u8 = 0x80 | 0x0e;
    const MC_UE: u8 = 0;
    const UE_IFETCH: u8 = 1;
    const UE_LOAD_STORE: u8 = 3;
    const UE_EA_PROVIDED: u8 = 0x40;

    let (sub, ea) = match cause {
        Cause::LoadStore(a) => (UE_LOAD_STORE, a),
        Cause::Fetch(a) => (UE_IFETCH, a),
    };
    let mut l = [0u8; LOG_LEN];
    l[0..8].copy_from_slice(&saved_r3.to_be_bytes());
    let summary =
        VERSION_6 | SEVERITY_ERROR_SYNC | DISPOSITION_NOT_RECOVERED | EXTENDED | INITIATOR_CPU;
    l[8..12].copy_from_slice(&summary.to_be_bytes());
    l[12..16].copy_from_slice(&EXT_LEN.to_be_bytes());
    l[16] = V6_VALID_NEW_BIGENDIAN;
    l[18] = V6_POWERPC_FORMAT_IBM;
    l[28..32].copy_from_slice(b"IBM\0");
    // The machine-check section: id, length (header included), version.
    l[32..34].copy_from_slice(b"MC");
    l[34..36].copy_from_slice(&40u16.to_be_bytes());
    l[36] = 1;
    l[48] = MC_UE;
    l[49] = sub | UE_EA_PROVIDED;
    l[56..64].copy_from_slice(&ea.to_be_bytes());
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_is_checked_and_interlock_releases_only_the_holder() {
        let mut f = Fwnmi::default();
        assert_eq!(f.begin_machine_check(0), Err(Refused::NotRegistered));
        assert_eq!(f.interlock(0), rtas::PARAMETER_ERROR);
        // Outside memory, past 32 MiB, misaligned: refused, nothing kept.
        assert_eq!(
            f.register(0x100, 0x2000_0000, 16 << 20),
            rtas::PARAMETER_ERROR
        );
        assert_eq!(
            f.register(0x100, 0x0200_0000, 1 << 30),
            rtas::PARAMETER_ERROR
        );
        assert_eq!(f.register(0x102, 0x200, 1 << 30), rtas::PARAMETER_ERROR);
        assert_eq!(f, Fwnmi::default());
        assert_eq!(f.register(0x7000, 0x7100, 1 << 30), rtas::SUCCESS);

        assert_eq!(f.begin_machine_check(0), Ok(0x7100));
        assert_eq!(f.begin_machine_check(0), Err(Refused::Nested));
        assert_eq!(f.begin_machine_check(1), Err(Refused::Busy(0)));
        // Another vcpu's interlock changes nothing.
        assert_eq!(f.interlock(1), rtas::SUCCESS);
        assert_eq!(f.begin_machine_check(1), Err(Refused::Busy(0)));
        assert_eq!(f.interlock(0), rtas::SUCCESS);
        assert_eq!(f.begin_machine_check(1), Ok(0x7100));
        f.reset();
        assert_eq!(f.begin_machine_check(2), Err(Refused::NotRegistered));
    }

    #[test]
    fn log_layout_is_what_linux_parses() {
        let l = machine_check_log(0x1122_3344_5566_7788, Cause::LoadStore(0x4000_0000));
        assert_eq!(l[0..8], 0x1122_3344_5566_7788u64.to_be_bytes());
        // QEMU's value for an unrecovered synchronous error.
        assert_eq!(l[8..12], [0x06, 0x74, 0x10, 0x00]);
        assert_eq!(u32::from_be_bytes(l[12..16].try_into().unwrap()), 56);
        assert_eq!(8 + 8 + 56, LOG_LEN);
        // Linux: byte2 & 0xf == 14 (IBM format), company "IBM\0".
        assert_eq!(l[18] & 0xf, 14);
        assert_eq!(&l[28..32], b"IBM\0");
        // First section right after the 16-byte v6 header: "MC", 40 bytes.
        assert_eq!(&l[32..34], b"MC");
        assert_eq!(u16::from_be_bytes([l[34], l[35]]), 40);
        assert_eq!(32 + 40, LOG_LEN);
        assert_eq!((l[48], l[49]), (0, 0x43));
        assert_eq!(l[56..64], 0x4000_0000u64.to_be_bytes());
        let f = machine_check_log(0, Cause::Fetch(0x123_4560));
        assert_eq!(f[49], 0x41);
        assert_eq!(f[56..64], 0x123_4560u64.to_be_bytes());
    }

    #[test]
    fn the_rtas_area_of_a_small_vm_holds_the_log() {
        assert!(ERROR_LOG_OFFSET + LOG_LEN as u64 <= ERROR_LOG_OFFSET + ERROR_LOG_MAX);
        assert_eq!(rtas_size_needed(1), 0x30 + 2048 + 16 + 8);
    }
}
