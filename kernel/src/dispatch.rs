//! How long vcpus wait to run: the dispatch figures a VM's stop report
//! gives, per VM, for every vcpu together (max with the vcpu that had it,
//! and the 99th percentile).
//!
//! Two waits are measured and recorded in timebase ticks (the report
//! converts):
//! - **ready**: from the moment a vcpu could run guest code (it left the
//!   guest, its cede ended, or it was started) to its next instruction in
//!   the guest. It holds the exit's handling, a slice spent off the core
//!   (preempted), a secondary thread slow to join its vcore.
//! - **wake**: how long a ceded vcpu stayed asleep past its wake-up
//!   condition: its decrementer's expiry, or the first interrupt or prod
//!   sent to it (`Wake::kicked`).
//!
//! The histogram has four linear sub-buckets per power of two, so a
//! percentile is within 25 % of the true value (its bucket's upper bound).

/// Sub-buckets per power of two (a power of two itself).
const SUB: u64 = 4;
const SUB_BITS: u32 = SUB.trailing_zeros();
/// Buckets: values below `SUB` one each, then `SUB` per power of two up
/// to 2^63.
const BUCKETS: usize = (SUB + (64 - SUB_BITS as u64) * SUB) as usize;

/// A latency histogram (any unit: the firmware records timebase ticks),
/// with its maximum and whose it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Latency {
    counts: [u32; BUCKETS],
    samples: u64,
    max: u64,
    /// The vcpu that waited `max`.
    max_vcpu: u32,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            counts: [0; BUCKETS],
            samples: 0,
            max: 0,
            max_vcpu: 0,
        }
    }
}

fn bucket(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let e = 63 - v.leading_zeros();
    let sub = (v >> (e - SUB_BITS)) & (SUB - 1);
    (SUB + u64::from(e - SUB_BITS) * SUB + sub) as usize
}

/// The largest value bucket `i` holds.
fn bucket_top(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let e = (i - SUB) / SUB + u64::from(SUB_BITS);
    let sub = (i - SUB) % SUB;
    let low = (1u64 << e) | (sub << (e - u64::from(SUB_BITS)));
    low.saturating_add((1u64 << (e - u64::from(SUB_BITS))) - 1)
}

impl Latency {
    /// One wait of `v` (units) by `vcpu`; true when it is the longest
    /// so far.
    pub fn record(&mut self, v: u64, vcpu: u32) -> bool {
        let c = &mut self.counts[bucket(v)];
        *c = c.saturating_add(1);
        self.samples += 1;
        if v > self.max || self.samples == 1 {
            self.max = v;
            self.max_vcpu = vcpu;
            return true;
        }
        false
    }

    /// Adds `other`'s samples (another vcpu's) to these.
    pub fn merge(&mut self, other: &Latency) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
        if other.samples != 0 && (self.samples == 0 || other.max > self.max) {
            self.max = other.max;
            self.max_vcpu = other.max_vcpu;
        }
        self.samples += other.samples;
    }

    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// The longest wait and the vcpu that had it.
    pub fn max(&self) -> (u64, u32) {
        (self.max, self.max_vcpu)
    }

    /// The `pct`-th percentile (0-100), as its bucket's upper bound (never
    /// above the maximum); 0 with no samples.
    pub fn percentile(&self, pct: u64) -> u64 {
        if self.samples == 0 {
            return 0;
        }
        // The smallest value with at least pct % of the samples at or
        // below it.
        let want = (self.samples * pct.min(100)).div_ceil(100).max(1);
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen += u64::from(*c);
            if seen >= want {
                return bucket_top(i).min(self.max);
            }
        }
        self.max
    }
}

/// One vcpu's dispatch figures (kept by the thread running it, merged
/// into the VM's when it stops).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dispatch {
    pub ready: Latency,
    pub wake: Latency,
    /// Times the vcpu left its thread while it wanted to run (its vcore
    /// gave the core up at a slice end).
    pub preemptions: u64,
}

impl Dispatch {
    pub fn merge(&mut self, other: &Dispatch) {
        self.ready.merge(&other.ready);
        self.wake.merge(&other.wake);
        self.preemptions += other.preemptions;
    }
}

/// When a ceded vcpu should have woken, at the latest: the earlier of its
/// decrementer's expiry (if that has passed by `now`) and the first
/// interrupt or prod sent to it (`kicked`, 0 if none). None when neither
/// happened (the wake was a doorbell, whose sending the hypervisor does
/// not see, or a vcore exit).
pub fn wake_condition(dec_expires: Option<u64>, kicked: u64, now: u64) -> Option<u64> {
    let dec = dec_expires.filter(|e| crate::deliver::dec_expired(*e, now));
    match (dec, kicked) {
        (Some(d), 0) => Some(d),
        (Some(d), k) => Some(d.min(k)),
        (None, 0) => None,
        (None, k) => Some(k),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for us in (0..5000u64).chain([1 << 20, (1 << 20) + 1, u64::MAX / 2, u64::MAX]) {
            let b = bucket(us);
            assert!(b < BUCKETS, "{us}");
            assert!(b >= last || us > 5000, "{us}");
            assert!(
                bucket_top(b) >= us,
                "{us} above its bucket's top {}",
                bucket_top(b)
            );
            if b > 0 {
                assert!(bucket_top(b - 1) < us, "{us} belongs lower");
            }
            last = b;
        }
    }

    #[test]
    fn the_99th_percentile_and_the_max_name_what_happened() {
        let mut l = Latency::default();
        assert_eq!(l.percentile(99), 0);
        for _ in 0..990 {
            l.record(10, 1);
        }
        for _ in 0..9 {
            l.record(1000, 2);
        }
        assert!(l.record(2_000_000, 3), "a new longest wait");
        assert!(!l.record(5, 0));
        assert_eq!(l.max(), (2_000_000, 3));
        // 990 of 1001 samples are 10 us: the 99th percentile is 10's bucket
        // (10 is in [10, 11]).
        assert_eq!(l.percentile(99), 11);
        assert_eq!(l.percentile(100), 2_000_000);
        assert_eq!(l.percentile(50), 11);
    }

    #[test]
    fn merged_vcpus_keep_the_worst_and_every_sample() {
        let (mut a, mut b) = (Dispatch::default(), Dispatch::default());
        a.ready.record(100, 0);
        a.preemptions = 2;
        b.ready.record(7000, 5);
        b.ready.record(1, 5);
        b.wake.record(30, 5);
        b.preemptions = 1;
        let mut vm = Dispatch::default();
        vm.merge(&a);
        vm.merge(&b);
        assert_eq!(vm.ready.samples(), 3);
        assert_eq!(vm.ready.max(), (7000, 5));
        assert_eq!(vm.wake.max(), (30, 5));
        assert_eq!(vm.preemptions, 3);
        let mut empty = Dispatch::default();
        empty.merge(&Dispatch::default());
        assert_eq!(empty.ready.max(), (0, 0));
    }

    #[test]
    fn a_ceded_vcpu_should_wake_at_its_first_wake_condition() {
        // Decrementer expired at 1000, a prod at 1500: 1000.
        assert_eq!(wake_condition(Some(1000), 1500, 2000), Some(1000));
        // A prod first.
        assert_eq!(wake_condition(Some(1800), 1500, 2000), Some(1500));
        // The decrementer has not expired: only the prod counts.
        assert_eq!(wake_condition(Some(9000), 1500, 2000), Some(1500));
        assert_eq!(wake_condition(Some(9000), 0, 2000), None);
        assert_eq!(wake_condition(None, 0, 2000), None);
        assert_eq!(wake_condition(Some(1000), 0, 2000), Some(1000));
    }
}
