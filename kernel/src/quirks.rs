//! Where QEMU's `powernv8` and POWER8 silicon differ in a way the
//! hypervisor must act on, one item each, decided from what the machine
//! tells us. (The other deviation, LPIDR/SDR1/LPCR per thread in QEMU but
//! per core on POWER8, is read from the thread's own LPIDR where it
//! matters: `ppc64::guest::secondary_join_partition`.)

use crate::memmap::Range;

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

/// Where QEMU's `powernv` machine writes RAM before skiboot starts
/// (hw/ppc/pnv.c, QEMU 10.0): the firmware image at 0 (at most 16 MiB),
/// the device tree at 16 MiB (at most 1 MiB), the `-kernel` file at
/// 0x2000_0000 and the `-initrd` file at 0x2800_0000 (at most 128 MiB
/// each, whole files: more than the image's own segments).
const QEMU_POWERNV_LOAD_AREAS: [Range; 3] = [
    Range {
        start: 0,
        end: 17 << 20,
    },
    Range {
        start: 0x2000_0000,
        end: 0x2000_0000 + (128 << 20),
    },
    Range {
        start: 0x2800_0000,
        end: 0x2800_0000 + (128 << 20),
    },
];

/// Whether RAM reads zero at power-on, and if so which of it the machine
/// itself wrote before the firmware ran. QEMU's RAM is host memory that
/// reads zero until written (and is only allocated on the host when first
/// written), so memory nobody wrote need not be zeroed for a guest. On
/// POWER8 silicon memory holds whatever it held (skiboot clears unused
/// memory only for a fast reboot, core/fast-reboot.c), so every byte is
/// treated as possibly holding data (`None`). Everything skiboot itself
/// writes afterwards lies in the ranges its device tree reserves.
pub fn ram_reads_zero_at_power_on<'a>(
    root_compatible: impl IntoIterator<Item = &'a str>,
) -> Option<&'static [Range]> {
    root_compatible
        .into_iter()
        .any(|c| c.starts_with("qemu,"))
        .then_some(&QEMU_POWERNV_LOAD_AREAS[..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_qemu_ram_reads_zero_and_its_load_areas_do_not() {
        assert_eq!(ram_reads_zero_at_power_on(["ibm,powernv"]), None);
        let areas = ram_reads_zero_at_power_on(["qemu,powernv8", "ibm,powernv"]).unwrap();
        for loaded in [
            0x0,
            0x100_0000,
            0x2000_0000,
            0x200e_0000,
            0x2800_0000,
            0x2fff_ffff,
        ] {
            assert!(areas.iter().any(|r| r.contains(loaded)), "{loaded:#x}");
        }
        // skiboot's own area (reserved in its device tree) and the rest.
        assert!(!areas.iter().any(|r| r.contains(0x3000_0000)));
        assert!(!areas.iter().any(|r| r.contains(0x4000_0000)));
    }

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
