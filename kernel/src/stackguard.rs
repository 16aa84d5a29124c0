//! Guard zones under the hypervisor's stacks. The hypervisor runs in real
//! mode, so no page can be left unmapped below a stack; instead each stack
//! has [`ZONE_BYTES`] below its usable part filled with [`PATTERN`]. A
//! stack that grows into its zone overwrites the pattern, and the next
//! check (every slow guest exit, every idle wake-up, every hypervisor
//! exception, the failure report) turns that into a report naming the
//! thread and the stack instead of silent corruption of whatever lies
//! below. The zone also absorbs an overflow of up to its size, so the
//! memory under it stays intact until the report.

/// Bytes of each guard zone.
pub const ZONE_BYTES: usize = 4096;
/// What an untouched zone holds, in every doubleword.
pub const PATTERN: u64 = 0x5354_4b47_5541_5244; // "STKGUARD"
/// Doublewords at the top of a zone (next to the stack) that the quick
/// check reads: a growing stack writes them first (each frame stores its
/// back chain at its lowest address).
pub const QUICK_WORDS: usize = 8;

/// Which of a thread's stacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackKind {
    /// The stack the thread's hypervisor code runs on.
    Thread,
    /// The stack exception entry switches to.
    Exception,
}

impl StackKind {
    pub fn name(self) -> &'static str {
        match self {
            StackKind::Thread => "thread stack",
            StackKind::Exception => "exception stack",
        }
    }
}

/// A stack and its guard zone: `[zone, zone + ZONE_BYTES)` is the zone,
/// `[zone + ZONE_BYTES, top)` the usable stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guarded {
    pub kind: StackKind,
    pub zone: u64,
    pub top: u64,
}

/// A guard zone found overwritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflow {
    pub stack: Guarded,
    /// Bytes of the zone overwritten, counted down from its top (at
    /// least; words the overflow skipped still hold the pattern).
    pub depth: usize,
}

impl core::fmt::Display for Overflow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} overflow: {} bytes written into its {}-byte guard zone (stack {:#x}-{:#x})",
            self.stack.kind.name(),
            self.depth,
            ZONE_BYTES,
            self.stack.bottom(),
            self.stack.top
        )
    }
}

impl Guarded {
    /// The lowest address the stack may use.
    pub fn bottom(&self) -> u64 {
        self.zone + ZONE_BYTES as u64
    }

    /// Whether `sp` lies in the usable stack.
    pub fn holds(&self, sp: u64) -> bool {
        (self.bottom()..=self.top).contains(&sp)
    }

    /// Whether `sp` lies in (or below) the guard zone but not far below
    /// it: an overflow, rather than a pointer into another stack.
    pub fn overflowed_to(&self, sp: u64) -> bool {
        sp < self.bottom() && sp >= self.zone.saturating_sub(ZONE_BYTES as u64)
    }
}

/// Fills `zone` with the pattern.
pub fn arm(zone: &mut [u64]) {
    zone.fill(PATTERN);
}

/// The quick check: only the top [`QUICK_WORDS`] of `zone` (branch-free:
/// it runs on every idle wake-up, so on every cross-thread call's path).
#[inline]
pub fn quick_ok(zone: &[u64]) -> bool {
    let Some(top) = zone.last_chunk::<QUICK_WORDS>() else {
        return zone.iter().all(|&w| w == PATTERN);
    };
    top.iter().fold(0, |acc, &w| acc | (w ^ PATTERN)) == 0
}

/// The full check: how many bytes, from the top of `zone` down to its
/// lowest overwritten doubleword, no longer hold the pattern (0: intact).
pub fn overwritten(zone: &[u64]) -> usize {
    match zone.iter().position(|&w| w != PATTERN) {
        None => 0,
        Some(i) => (zone.len() - i) * 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORDS: usize = ZONE_BYTES / 8;

    #[test]
    fn an_armed_zone_is_intact() {
        let mut z = vec![0u64; WORDS];
        assert_eq!(overwritten(&z), ZONE_BYTES);
        arm(&mut z);
        assert!(quick_ok(&z));
        assert_eq!(overwritten(&z), 0);
    }

    #[test]
    fn a_frame_written_into_the_zone_is_found() {
        let mut z = vec![0u64; WORDS];
        arm(&mut z);
        // A frame's back chain 24 bytes into the zone.
        z[WORDS - 3] = 0x2000_1234;
        assert!(!quick_ok(&z));
        assert_eq!(overwritten(&z), 24);
        // Deeper than the quick check reads: only the full check sees it.
        let mut z = vec![PATTERN; WORDS];
        z[WORDS - QUICK_WORDS - 1] = 0;
        assert!(quick_ok(&z));
        assert_eq!(overwritten(&z), (QUICK_WORDS + 1) * 8);
    }

    #[test]
    fn stack_pointers_are_placed() {
        let g = Guarded {
            kind: StackKind::Thread,
            zone: 0x10_0000,
            top: 0x12_0000,
        };
        assert_eq!(g.bottom(), 0x10_1000);
        assert!(g.holds(0x11_fff0) && g.holds(0x10_1000) && !g.holds(0x10_0ff0));
        assert!(g.overflowed_to(0x10_0ff0) && g.overflowed_to(0xf_f000));
        assert!(!g.overflowed_to(0x10_1000) && !g.overflowed_to(0x5000));
        let o = Overflow {
            stack: g,
            depth: 64,
        };
        assert_eq!(
            o.to_string(),
            "thread stack overflow: 64 bytes written into its 4096-byte guard zone (stack 0x101000-0x120000)"
        );
    }
}
