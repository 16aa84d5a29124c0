//! The hypervisor's boot arguments (`/chosen/bootargs`, QEMU `-append`).
//!
//! Words are separated by spaces. The hypervisor reads the `hv.` words and
//! ignores the rest:
//!
//! | word | meaning |
//! |---|---|
//! | `hv.hpt_pool=SIZE` | size of the preallocated HPT pool (`64M`, `0` for none) |
//! | `hv.hpt_pool_order=N` | slot order of the pool (18..=46, default 24) |
//! | `hv.log=LEVEL` | console level: error, warn, info, debug, trace |
//! | `hv.dumpfdt` | print the device tree skiboot handed over (hex) |
//! | `hv.ram=unknown` | treat all RAM as holding data at power-on, as on POWER8 silicon, even where the machine says it reads zero (QEMU): every VM's memory is zeroed when it is made |
//! | `hv.test=panic` | test only: panic after boot |
//! | `hv.test=trap` | test only: execute `trap` (unexpected exception) |
//! | `hv.test=resume` | test only: exceptions that return (trap, HDEC), timed nap |
//! | `hv.test=ipi[:N]` | test only: N IPI round trips from thread 0 of each core (default 10000) |
//! | `hv.test=stack-overflow` | test only: another thread grows its stack 1 KiB into its guard zone (the next check reports it) |
//! | `hv.test=stuck-thread` | test only: another thread stops answering calls for 2.5 s; the watchdog reports it by name, the boot goes on |
//! | `hv.test=vm-churn[:N]` | test only: N VMs (default 1000) of the hello guest created, run and destroyed one after another; free memory, HPT pool slots and LPIDs must be as before |
//! | `hv.test=fail-alloc:K` | test only: the K-th allocation of VM creation (guest memory, HPT, pool slot, LPID; counted over the boot) fails as if it had run out |
//! | `hv.test=deaf-thread` | test only: thread 1 of every core ignores the work thread 0 posts (a vcore wake-up that never comes) |
//! | `hv.bench=ipi[:N]` | benchmark: IPI latencies over N trials (default 1000) |

use crate::units::parse_size;

/// Test-only actions, used by the smoke tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestAction {
    Panic,
    Trap,
    /// IPI round trips from thread 0 of each core.
    Ipi(u32),
    /// Exceptions that return (trap, HDEC) and a timed nap.
    Resume,
    /// Thread 1 of every core drops the vcore work it is given.
    DeafThread,
    /// Another thread overflows its stack into the guard zone.
    StackOverflow,
    /// Another thread stops answering calls for a while (the watchdog).
    StuckThread,
    /// N VMs created, run and destroyed one after another.
    VmChurn(u32),
    /// The K-th allocation of VM creation fails.
    FailAlloc(u32),
}

/// Benchmarks run at boot (meant for `-icount shift=0,sleep=off`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bench {
    /// IPI send -> handler latency and nap round trips, N trials each.
    Ipi(u32),
}

/// `NAME` or `NAME:COUNT` with COUNT in 1..=10_000_000.
fn with_count(v: &str, name: &str, default: u32) -> Option<u32> {
    let rest = v.strip_prefix(name)?;
    if rest.is_empty() {
        return Some(default);
    }
    rest.strip_prefix(':')?
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=10_000_000).contains(n))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BootArgs {
    pub hpt_pool: Option<u64>,
    pub hpt_pool_order: Option<u32>,
    pub log: Option<log::LevelFilter>,
    pub dump_fdt: bool,
    /// `hv.ram=unknown`.
    pub ram_unknown: bool,
    pub test: Option<TestAction>,
    pub bench: Option<Bench>,
}

/// A word the hypervisor could not use; reported as a warning, the boot
/// goes on with the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadArg<'a> {
    pub word: &'a str,
    pub why: &'static str,
}

/// Parses `s`, calling `bad` for every `hv.` word it cannot use.
pub fn parse<'a>(s: &'a str, mut bad: impl FnMut(BadArg<'a>)) -> BootArgs {
    let mut a = BootArgs::default();
    for word in s.split_ascii_whitespace() {
        let Some(rest) = word.strip_prefix("hv.") else {
            continue;
        };
        let (key, val) = match rest.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (rest, None),
        };
        let mut complain = |why| bad(BadArg { word, why });
        match (key, val) {
            ("hpt_pool", Some(v)) => match parse_size(v) {
                Some(n) => a.hpt_pool = Some(n),
                None => complain("expected a size such as 64M"),
            },
            ("hpt_pool_order", Some(v)) => match v.parse::<u32>() {
                Ok(n) if (18..=46).contains(&n) => a.hpt_pool_order = Some(n),
                _ => complain("expected an order from 18 to 46"),
            },
            ("log", Some(v)) => match v.parse::<log::LevelFilter>() {
                Ok(l) => a.log = Some(l),
                Err(_) => complain("expected error, warn, info, debug or trace"),
            },
            ("dumpfdt", None) => a.dump_fdt = true,
            ("ram", Some("unknown")) => a.ram_unknown = true,
            ("ram", _) => complain("expected unknown"),
            ("test", Some("panic")) => a.test = Some(TestAction::Panic),
            ("test", Some("trap")) => a.test = Some(TestAction::Trap),
            ("test", Some("resume")) => a.test = Some(TestAction::Resume),
            ("test", Some("deaf-thread")) => a.test = Some(TestAction::DeafThread),
            ("test", Some("stack-overflow")) => a.test = Some(TestAction::StackOverflow),
            ("test", Some("stuck-thread")) => a.test = Some(TestAction::StuckThread),
            ("test", Some(v)) if with_count(v, "ipi", 10_000).is_some() => {
                a.test = with_count(v, "ipi", 10_000).map(TestAction::Ipi)
            }
            ("test", Some(v)) if with_count(v, "vm-churn", 1000).is_some() => {
                a.test = with_count(v, "vm-churn", 1000).map(TestAction::VmChurn)
            }
            ("test", Some(v)) if v.starts_with("fail-alloc:") && with_count(v, "fail-alloc", 0).is_some() => {
                a.test = with_count(v, "fail-alloc", 0).map(TestAction::FailAlloc)
            }
            ("test", _) => {
                complain("expected panic, trap, resume, deaf-thread, stack-overflow, stuck-thread, vm-churn[:N], fail-alloc:K or ipi[:N]")
            }
            ("bench", Some(v)) if with_count(v, "ipi", 1000).is_some() => {
                a.bench = with_count(v, "ipi", 1000).map(Bench::Ipi)
            }
            ("bench", _) => complain("expected ipi[:N]"),
            _ => complain("unknown hypervisor argument"),
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> (BootArgs, Vec<String>) {
        let mut bad = Vec::new();
        let a = parse(s, |b| bad.push(format!("{}: {}", b.word, b.why)));
        (a, bad)
    }

    #[test]
    fn churn_and_fault_injection_take_counts() {
        assert_eq!(
            p("hv.test=vm-churn").0.test,
            Some(TestAction::VmChurn(1000))
        );
        assert_eq!(p("hv.test=vm-churn:7").0.test, Some(TestAction::VmChurn(7)));
        assert_eq!(
            p("hv.test=fail-alloc:3").0.test,
            Some(TestAction::FailAlloc(3))
        );
        for bad in [
            "hv.test=fail-alloc",
            "hv.test=fail-alloc:0",
            "hv.test=vm-churn:x",
        ] {
            let (a, why) = p(bad);
            assert_eq!(a.test, None, "{bad}");
            assert_eq!(why.len(), 1, "{bad}");
        }
    }

    #[test]
    fn known_words_are_read_and_others_ignored() {
        let (a, bad) =
            p("console=hvc0 hv.hpt_pool=128M hv.log=debug  hv.test=trap hv.dumpfdt root=/dev/sda hv.ram=unknown");
        assert!(bad.is_empty(), "{bad:?}");
        assert!(a.ram_unknown);
        assert!(!p("hv.log=info").0.ram_unknown);
        assert_eq!(p("hv.ram=zero").1, vec!["hv.ram=zero: expected unknown"]);
        assert_eq!(a.hpt_pool, Some(128 << 20));
        assert_eq!(a.log, Some(log::LevelFilter::Debug));
        assert_eq!(a.test, Some(TestAction::Trap));
        assert!(a.dump_fdt);
        assert_eq!(p("").0, BootArgs::default());
        assert_eq!(p("hv.test=ipi").0.test, Some(TestAction::Ipi(10_000)));
        assert_eq!(p("hv.test=ipi:250").0.test, Some(TestAction::Ipi(250)));
        assert_eq!(p("hv.bench=ipi:2000").0.bench, Some(Bench::Ipi(2000)));
        assert_eq!(
            p("hv.test=deaf-thread").0.test,
            Some(TestAction::DeafThread)
        );
        assert_eq!(p("hv.bench=ipi").0.bench, Some(Bench::Ipi(1000)));
        assert_eq!(
            p("hv.test=ipi:0").1,
            vec!["hv.test=ipi:0: expected panic, trap, resume, deaf-thread, stack-overflow, stuck-thread, vm-churn[:N], fail-alloc:K or ipi[:N]"]
        );
        assert_eq!(
            p("hv.bench=ipix").1,
            vec!["hv.bench=ipix: expected ipi[:N]"]
        );
    }

    #[test]
    fn bad_words_are_reported_and_defaults_kept() {
        let (a, bad) = p("hv.hpt_pool=lots hv.hpt_pool_order=12 hv.log=loud hv.test=explode hv.frobnicate hv.hpt_pool");
        assert_eq!(a, BootArgs::default());
        assert_eq!(
            bad,
            vec![
                "hv.hpt_pool=lots: expected a size such as 64M",
                "hv.hpt_pool_order=12: expected an order from 18 to 46",
                "hv.log=loud: expected error, warn, info, debug or trace",
                "hv.test=explode: expected panic, trap, resume, deaf-thread, stack-overflow, stuck-thread, vm-churn[:N], fail-alloc:K or ipi[:N]",
                "hv.frobnicate: unknown hypervisor argument",
                "hv.hpt_pool: unknown hypervisor argument",
            ]
        );
    }
}
