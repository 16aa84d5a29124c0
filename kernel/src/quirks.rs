//! Where QEMU's `powernv8` and POWER8 silicon differ in a way the
//! hypervisor must act on, one item each, decided from what the machine
//! tells us. (The other deviation, LPIDR/SDR1/LPCR per thread in QEMU but
//! per core on POWER8, is read from the thread's own LPIDR where it
//! matters: `ppc64::guest::secondary_join_partition`.)

/// QEMU's `tlbiel` flushes only the soft TLB of the thread that runs it
/// (target/ppc: a local invalidation marks `TLB_NEED_LOCAL_FLUSH` on that
/// CPU alone); POWER8's TLB belongs to the core, so there `tlbiel`
/// reaches every thread. Under QEMU an HPT change made by one thread of a
/// multi-thread vcore must therefore use `tlbie`, or its siblings keep
/// the stale translation. QEMU's skiboot tree names the machine
/// `qemu,powernv8` (root `compatible`).
pub fn tlbiel_reaches_one_thread<'a>(root_compatible: impl IntoIterator<Item = &'a str>) -> bool {
    root_compatible.into_iter().any(|c| c.starts_with("qemu,"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_qemu_machines_have_thread_local_tlbiel() {
        assert!(tlbiel_reaches_one_thread([
            "qemu,powernv8",
            "qemu,powernv",
            "ibm,powernv"
        ]));
        assert!(!tlbiel_reaches_one_thread(["ibm,powernv", "ibm,firestone"]));
        assert!(!tlbiel_reaches_one_thread([]));
    }
}
