//! Time from the timebase: conversions between ticks and wall units. The
//! frequency comes from the device tree (`timebase-frequency`, 512 MHz on
//! POWER8); skiboot synchronises the timebase of every thread, so it is a
//! monotonic clock shared by all of them.

use core::sync::atomic::{AtomicU64, Ordering};

static TB_HZ: AtomicU64 = AtomicU64::new(512_000_000);

/// Sets the timebase frequency (from the device tree).
pub fn set_timebase_hz(hz: u64) {
    assert!(hz > 0);
    TB_HZ.store(hz, Ordering::Relaxed);
    TICKS_PER_MS.store(us_to_ticks(1000), Ordering::Relaxed);
}

/// Ticks in a millisecond, kept with the frequency: the watchdog of every
/// cross-thread wait needs it, and a division per wait is not free.
static TICKS_PER_MS: AtomicU64 = AtomicU64::new(512_000);

#[inline]
pub fn ticks_per_ms() -> u64 {
    TICKS_PER_MS.load(Ordering::Relaxed)
}

pub fn timebase_hz() -> u64 {
    TB_HZ.load(Ordering::Relaxed)
}

/// Processor clock, from the host device tree's `clock-frequency`; 0 until
/// known (guests are then told what the host firmware said: nothing).
static CLOCK_HZ: AtomicU64 = AtomicU64::new(0);

pub fn set_cpu_clock_hz(hz: u64) {
    CLOCK_HZ.store(hz, Ordering::Relaxed);
}

pub fn cpu_clock_hz() -> u64 {
    CLOCK_HZ.load(Ordering::Relaxed)
}

/// Ticks in `us` microseconds (saturating). In 64 bits when the product
/// fits (hours, at 512 MHz): a 128-bit division is a library call.
pub fn us_to_ticks(us: u64) -> u64 {
    let hz = timebase_hz();
    match us.checked_mul(hz) {
        Some(p) => p / 1_000_000,
        None => ((us as u128 * hz as u128) / 1_000_000).min(u64::MAX as u128) as u64,
    }
}

/// Ticks in `ms` milliseconds (saturating): a multiplication, with the
/// ticks of a millisecond kept (exact for any frequency in whole kHz,
/// as every timebase is).
#[inline]
pub fn ms_to_ticks(ms: u64) -> u64 {
    ms.saturating_mul(ticks_per_ms())
}

/// Nanoseconds in `ticks`.
pub fn ticks_to_ns(ticks: u64) -> u64 {
    ((ticks as u128 * 1_000_000_000) / timebase_hz() as u128).min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_at_512mhz_round_trip() {
        // The default equals POWER8's architected frequency; tests never
        // change it (it is process-global).
        assert_eq!(timebase_hz(), 512_000_000);
        assert_eq!(us_to_ticks(1), 512);
        assert_eq!(ms_to_ticks(2), 1_024_000);
        assert_eq!(ms_to_ticks(u64::MAX), u64::MAX);
        assert_eq!(ticks_to_ns(512), 1000);
        assert_eq!(ticks_to_ns(1), 1); // 1.95 ns rounds down
        assert_eq!(ticks_to_ns(us_to_ticks(123_456)), 123_456_000);
        assert_eq!(us_to_ticks(u64::MAX), u64::MAX);
    }
}
