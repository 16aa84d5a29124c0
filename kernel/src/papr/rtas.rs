//! RTAS as guests see it: one token table (shared with the guest device
//! tree), the big-endian argument buffer (token, nargs, nret, args...,
//! rets...) read and written through [`GuestMemory`], PAPR status codes,
//! and the time-of-day arithmetic for a per-VM clock offset.

use crate::gmem::GuestMemory;

pub use papr_abi::rtas::*;

/// The RTAS blob placed in guest memory, big-endian code (guests enter
/// RTAS big-endian): `mr r4,r3; lis r3,H_RTAS@h; ori r3,r3,H_RTAS@l;
/// sc 1; blr` — the argument buffer goes to H_RTAS in r4.
pub const RTAS_BLOB: [u8; 20] = {
    let hcall = papr_abi::H_RTAS;
    let insns: [u32; 5] = [
        0x7c64_1b78,                                   // mr r4, r3
        0x3c60_0000 | ((hcall >> 16) as u32 & 0xffff), // lis r3, hi
        0x6063_0000 | (hcall as u32 & 0xffff),         // ori r3, r3, lo
        0x4400_0022,                                   // sc 1
        0x4e80_0020,                                   // blr
    ];
    let mut b = [0u8; 20];
    let mut i = 0;
    while i < 5 {
        let w = insns[i].to_be_bytes();
        b[4 * i] = w[0];
        b[4 * i + 1] = w[1];
        b[4 * i + 2] = w[2];
        b[4 * i + 3] = w[3];
        i += 1;
    }
    b
};

/// The RTAS services this hypervisor implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    PowerOff,
    SystemReboot,
    DisplayCharacter,
    GetTimeOfDay,
    SetTimeOfDay,
    EventScan,
    GetSystemParameter,
    NmiRegister,
    NmiInterlock,
    OsTerm,
    SetXive,
    GetXive,
    IntOff,
    IntOn,
    QueryCpuStoppedState,
    StartCpu,
    StopSelf,
    NvramFetch,
    NvramStore,
}

/// Name in `/rtas` and service, in token order.
pub const SERVICES: &[(&str, Service)] = &[
    ("power-off", Service::PowerOff),
    ("system-reboot", Service::SystemReboot),
    ("display-character", Service::DisplayCharacter),
    ("get-time-of-day", Service::GetTimeOfDay),
    ("set-time-of-day", Service::SetTimeOfDay),
    ("event-scan", Service::EventScan),
    ("ibm,get-system-parameter", Service::GetSystemParameter),
    ("ibm,nmi-register", Service::NmiRegister),
    ("ibm,nmi-interlock", Service::NmiInterlock),
    ("ibm,os-term", Service::OsTerm),
    ("ibm,set-xive", Service::SetXive),
    ("ibm,get-xive", Service::GetXive),
    ("ibm,int-off", Service::IntOff),
    ("ibm,int-on", Service::IntOn),
    ("query-cpu-stopped-state", Service::QueryCpuStoppedState),
    ("start-cpu", Service::StartCpu),
    ("stop-self", Service::StopSelf),
    ("nvram-fetch", Service::NvramFetch),
    ("nvram-store", Service::NvramStore),
];

/// Tokens are ours to choose: 0x2001 upwards in table order.
const TOKEN_BASE: u32 = 0x2001;

pub fn token(s: Service) -> u32 {
    let i = SERVICES.iter().position(|&(_, x)| x == s).unwrap();
    TOKEN_BASE + i as u32
}

pub fn service(token: u32) -> Option<Service> {
    let i = token.checked_sub(TOKEN_BASE)? as usize;
    SERVICES.get(i).map(|&(_, s)| s)
}

/// `(name, token)` for every service, for the device tree.
pub fn tokens() -> alloc::vec::Vec<(&'static str, u32)> {
    SERVICES.iter().map(|&(n, s)| (n, token(s))).collect()
}

/// At most this many arguments or returns (the largest call here uses 8).
pub const MAX_CELLS: u32 = 16;

/// A call read from the guest's argument buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    pub gpa: u64,
    pub token: u32,
    pub nargs: u32,
    pub nret: u32,
    pub args: [u32; MAX_CELLS as usize],
}

impl Call {
    /// Reads the buffer at `gpa`; `None` if the header or the argument
    /// and return cells do not lie inside guest memory, or there are too
    /// many (the hypercall then fails with H_PARAMETER).
    pub fn read(mem: &GuestMemory<'_>, gpa: u64) -> Option<Call> {
        let token = mem.read_be32(gpa)?;
        let nargs = mem.read_be32(gpa.checked_add(4)?)?;
        let nret = mem.read_be32(gpa.checked_add(8)?)?;
        if nargs > MAX_CELLS || nret > MAX_CELLS {
            return None;
        }
        if !mem.contains(gpa, 12 + 4 * u64::from(nargs + nret)) {
            return None;
        }
        let mut args = [0; MAX_CELLS as usize];
        for (i, a) in args.iter_mut().enumerate().take(nargs as usize) {
            *a = mem.read_be32(gpa + 12 + 4 * i as u64)?;
        }
        Some(Call {
            gpa,
            token,
            nargs,
            nret,
            args,
        })
    }

    /// Whether the call has exactly the numbers of cells a service takes.
    pub fn shape(&self, nargs: u32, nret: u32) -> bool {
        self.nargs == nargs && self.nret == nret
    }

    /// Writes return cell `i` (ignored beyond `nret`: the buffer was
    /// checked for exactly that many).
    pub fn set_ret(&self, mem: &mut GuestMemory<'_>, i: u32, v: i32) {
        if i < self.nret {
            let at = self.gpa + 12 + 4 * u64::from(self.nargs + i);
            mem.write_be32(at, v as u32);
        }
    }
}

/// A calendar time as RTAS passes it: year, month (1-12), day (1-31),
/// hour, minute, second.
pub type Tm = [u32; 6];

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Seconds since the epoch, or `None` if a field is out of range.
pub fn to_epoch(t: Tm) -> Option<i64> {
    let [y, mo, d, h, mi, s] = t.map(i64::from);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&mo) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    if d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

pub fn from_epoch(secs: i64) -> Tm {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let r = secs.rem_euclid(86_400);
    [y, m, d, r / 3600, r % 3600 / 60, r % 60].map(|v| v as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blob_calls_h_rtas_with_the_buffer_in_r4() {
        // The words QEMU's and SLOF's RTAS trampolines use for the same.
        assert_eq!(
            RTAS_BLOB,
            [
                0x7c, 0x64, 0x1b, 0x78, 0x3c, 0x60, 0x00, 0x00, 0x60, 0x63, 0xf0, 0x00, 0x44, 0x00,
                0x00, 0x22, 0x4e, 0x80, 0x00, 0x20
            ]
        );
    }
    use alloc::vec;

    #[test]
    fn tokens_are_unique_and_round_trip() {
        for &(name, s) in SERVICES {
            assert_eq!(service(token(s)), Some(s), "{name}");
        }
        let t = tokens();
        let mut toks: alloc::vec::Vec<_> = t.iter().map(|x| x.1).collect();
        toks.dedup();
        assert_eq!(toks.len(), SERVICES.len());
        assert_eq!(service(0), None);
        assert_eq!(service(TOKEN_BASE + SERVICES.len() as u32), None);
    }

    fn buf(words: &[u32]) -> alloc::vec::Vec<u8> {
        let mut v = vec![0u8; 256];
        for (i, w) in words.iter().enumerate() {
            v[0x40 + 4 * i..0x44 + 4 * i].copy_from_slice(&w.to_be_bytes());
        }
        v
    }

    #[test]
    fn reads_arguments_and_writes_returns_big_endian() {
        let t = token(Service::GetXive);
        let mut v = buf(&[t, 1, 3, 0x1000, 7, 7, 7]);
        let mut m = GuestMemory::new(&mut v);
        let c = Call::read(&m, 0x40).unwrap();
        assert_eq!((c.token, c.nargs, c.nret, c.args[0]), (t, 1, 3, 0x1000));
        assert!(c.shape(1, 3));
        assert!(!c.shape(1, 2));
        c.set_ret(&mut m, 0, -3);
        c.set_ret(&mut m, 2, 5);
        c.set_ret(&mut m, 3, 9); // beyond nret: ignored
        assert_eq!(v[0x50..0x54], (-3i32).to_be_bytes());
        assert_eq!(v[0x58..0x5c], 5u32.to_be_bytes());
        assert_eq!(v[0x5c..0x60], [0; 4]);
    }

    #[test]
    fn buffers_outside_memory_or_too_large_are_refused() {
        let mut v = buf(&[1, 17, 0]);
        let m = GuestMemory::new(&mut v);
        assert_eq!(Call::read(&m, 0x40), None, "17 args");
        let mut v = vec![0u8; 0x40 + 12 + 4 * 31];
        v[0x44..0x48].copy_from_slice(&16u32.to_be_bytes());
        v[0x48..0x4c].copy_from_slice(&16u32.to_be_bytes());
        let m = GuestMemory::new(&mut v);
        assert_eq!(Call::read(&m, 0x40), None, "cells beyond the end");
        let mut v = vec![0u8; 0x40 + 12 + 4 * 32];
        v[0x44..0x48].copy_from_slice(&16u32.to_be_bytes());
        v[0x48..0x4c].copy_from_slice(&16u32.to_be_bytes());
        let m = GuestMemory::new(&mut v);
        assert!(Call::read(&m, 0x40).is_some(), "exactly fits");
        assert_eq!(Call::read(&m, 254), None, "header beyond the end");
        assert_eq!(Call::read(&m, u64::MAX - 3), None);
    }

    #[test]
    fn epoch_conversions() {
        assert_eq!(to_epoch([1970, 1, 1, 0, 0, 0]), Some(0));
        assert_eq!(to_epoch([2000, 3, 1, 0, 0, 0]), Some(951_868_800));
        assert_eq!(to_epoch([2026, 12, 1, 7, 43, 38]), Some(1_796_111_018));
        for secs in [0, 951_782_399, 951_868_800, 1_796_111_018, 4_102_444_800] {
            assert_eq!(to_epoch(from_epoch(secs)), Some(secs));
        }
        assert_eq!(from_epoch(951_782_400), [2000, 2, 29, 0, 0, 0]);
        assert_eq!(to_epoch([2023, 2, 29, 0, 0, 0]), None);
        assert_eq!(to_epoch([2024, 2, 29, 0, 0, 0]), Some(1_709_164_800));
        assert_eq!(to_epoch([1900, 2, 29, 0, 0, 0]), None);
        assert_eq!(to_epoch([2024, 13, 1, 0, 0, 0]), None);
        assert_eq!(to_epoch([2024, 1, 1, 24, 0, 0]), None);
        assert_eq!(to_epoch([2024, 4, 31, 0, 0, 0]), None);
    }
}
