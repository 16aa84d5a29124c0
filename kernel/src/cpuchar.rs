//! H_GET_CPU_CHARACTERISTICS: what the processor needs from a guest
//! kernel to mitigate speculative-execution attacks, taken from the host
//! firmware's `/ibm,opal/fw-features` (skiboot fills it in on OpenPOWER
//! machines; each child node is a feature with an `enabled` or `disabled`
//! property) exactly as Linux's powernv platform reads it. Where the
//! firmware says nothing, the answer asks for every mitigation: a guest
//! kernel never learns that it is safe to skip one when nobody said so.

/// Bits of R4 (characteristics: instructions the processor offers).
pub const CHAR_SPEC_BAR_ORI31: u64 = 1 << 63;
pub const CHAR_L1D_FLUSH_ORI30: u64 = 1 << 61;
pub const CHAR_L1D_FLUSH_TRIG2: u64 = 1 << 60;
pub const CHAR_THREAD_RECONFIG_CTRL: u64 = 1 << 57;
pub const CHAR_COUNT_CACHE_DISABLED: u64 = 1 << 56;
pub const CHAR_BCCTR_FLUSH_ASSIST: u64 = 1 << 54;

/// Bits of R5 (behaviour: what the guest kernel should do).
pub const BEHAV_FAVOUR_SECURITY: u64 = 1 << 63;
pub const BEHAV_L1D_FLUSH_PR: u64 = 1 << 62;
pub const BEHAV_BNDS_CHK_SPEC_BAR: u64 = 1 << 61;
pub const BEHAV_FLUSH_COUNT_CACHE: u64 = 1 << 58;

/// The two words H_GET_CPU_CHARACTERISTICS answers in R4 and R5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Characteristics {
    pub character: u64,
    pub behaviour: u64,
}

/// Nothing known about the processor: no special instructions are
/// promised, every flush and barrier is asked for.
pub const CONSERVATIVE: Characteristics = Characteristics {
    character: 0,
    behaviour: BEHAV_FAVOUR_SECURITY | BEHAV_L1D_FLUSH_PR | BEHAV_BNDS_CHK_SPEC_BAR,
};

/// How one firmware feature node changes the answer.
enum Effect {
    /// `enabled` sets this characteristic.
    Char(u64),
    /// `enabled` sets this behaviour.
    Needs(u64),
    /// `disabled` clears this behaviour (which is asked for by default).
    NotNeeded(u64),
}

/// Feature node names (skiboot's, as Linux's powernv `setup.c` reads them).
const FEATURES: &[(&str, Effect)] = &[
    (
        "inst-spec-barrier-ori31,31,0",
        Effect::Char(CHAR_SPEC_BAR_ORI31),
    ),
    ("inst-l1d-flush-trig2", Effect::Char(CHAR_L1D_FLUSH_TRIG2)),
    (
        "inst-l1d-flush-ori30,30,0",
        Effect::Char(CHAR_L1D_FLUSH_ORI30),
    ),
    (
        "inst-thread-reconfig-control-trig0-1",
        Effect::Char(CHAR_THREAD_RECONFIG_CTRL),
    ),
    (
        "fw-count-cache-disabled",
        Effect::Char(CHAR_COUNT_CACHE_DISABLED),
    ),
    (
        "fw-count-cache-flush-bcctr2,0,0",
        Effect::Char(CHAR_BCCTR_FLUSH_ASSIST),
    ),
    (
        "needs-count-cache-flush-on-context-switch",
        Effect::Needs(BEHAV_FLUSH_COUNT_CACHE),
    ),
    (
        "speculation-policy-favor-security",
        Effect::NotNeeded(BEHAV_FAVOUR_SECURITY),
    ),
    (
        "needs-l1d-flush-msr-pr-0-to-1",
        Effect::NotNeeded(BEHAV_L1D_FLUSH_PR),
    ),
    (
        "needs-spec-barrier-for-bound-checks",
        Effect::NotNeeded(BEHAV_BNDS_CHK_SPEC_BAR),
    ),
];

/// The answer for firmware feature nodes given as (name, state), where
/// state is `Some(true)` for `enabled`, `Some(false)` for `disabled`, and
/// `None` for a node with neither (ignored, as Linux does). Unknown names
/// are ignored.
pub fn from_fw_features<'a>(
    nodes: impl IntoIterator<Item = (&'a str, Option<bool>)>,
) -> Characteristics {
    let mut c = CONSERVATIVE;
    for (name, state) in nodes {
        let Some(enabled) = state else { continue };
        let Some((_, effect)) = FEATURES.iter().find(|(n, _)| *n == name) else {
            continue;
        };
        match (effect, enabled) {
            (Effect::Char(b), true) => c.character |= b,
            (Effect::Needs(b), true) => c.behaviour |= b,
            (Effect::NotNeeded(b), false) => c.behaviour &= !b,
            _ => {}
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_firmware_features_asks_for_every_mitigation() {
        assert_eq!(from_fw_features([]), CONSERVATIVE);
        assert_eq!(CONSERVATIVE.character, 0);
        assert_ne!(CONSERVATIVE.behaviour & BEHAV_L1D_FLUSH_PR, 0);
    }

    #[test]
    fn a_patched_power8_tells_the_guest_which_instructions_to_use() {
        // What skiboot reports on a POWER8 with the 2018 firmware fixes.
        let c = from_fw_features([
            ("inst-spec-barrier-ori31,31,0", Some(true)),
            ("inst-l1d-flush-ori30,30,0", Some(true)),
            ("inst-l1d-flush-trig2", Some(false)),
            ("needs-l1d-flush-msr-pr-0-to-1", Some(true)),
            ("needs-spec-barrier-for-bound-checks", Some(true)),
            ("speculation-policy-favor-security", Some(true)),
            ("fw-count-cache-disabled", Some(false)),
        ]);
        assert_eq!(c.character, CHAR_SPEC_BAR_ORI31 | CHAR_L1D_FLUSH_ORI30);
        assert_eq!(c.behaviour, CONSERVATIVE.behaviour);
    }

    #[test]
    fn disabled_needs_clear_behaviour_and_unknown_or_stateless_nodes_do_nothing() {
        let c = from_fw_features([
            ("needs-l1d-flush-msr-pr-0-to-1", Some(false)),
            ("speculation-policy-favor-security", Some(false)),
            ("needs-count-cache-flush-on-context-switch", Some(true)),
            ("inst-l1d-flush-ori30,30,0", None),
            ("tm-suspend-mode", Some(true)),
        ]);
        assert_eq!(c.character, 0);
        assert_eq!(
            c.behaviour,
            BEHAV_BNDS_CHK_SPEC_BAR | BEHAV_FLUSH_COUNT_CACHE
        );
    }
}
