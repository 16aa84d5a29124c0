//! Device-tree reading against trees skiboot really handed to the payload
//! on QEMU powernv8 (captured with `cargo xtask dtb`), and against small
//! trees with deliberate faults.

use super::*;
use crate::fdtw::FdtWriter;
use crate::memmap::free_map;
use crate::units::MIB;

const P8_2C4T_2G: &[u8] = include_bytes!("../../../tests/fixtures/p8-2c4t-2g.dtb");
const P8_1C4T_1G: &[u8] = include_bytes!("../../../tests/fixtures/p8-1c4t-1g.dtb");
const P8_INITRD: &[u8] = include_bytes!("../../../tests/fixtures/p8-2c4t-2g-initrd.dtb");

fn reserved_set(fdt: &Fdt<'_>) -> RangeSet {
    let mut s = RangeSet::new();
    reserved(fdt, |r| {
        s.add(r).unwrap();
        Ok(())
    })
    .unwrap();
    s
}

#[test]
fn powernv8_two_cores_four_threads() {
    let fdt = open(P8_2C4T_2G).unwrap();
    let mem = memory(&fdt).unwrap();
    assert_eq!(mem.total(), 2048 * MIB);
    let t = topology(&fdt).unwrap();
    assert_eq!(t.timebase_hz, 512_000_000);
    assert_eq!(t.clock_hz, Some(1_000_000_000)); // QEMU powernv8 says 1 GHz
    assert_eq!(t.cores.len(), 2);
    assert_eq!(t.cores[0].pirs, vec![0x8, 0x9, 0xa, 0xb]);
    assert_eq!(t.cores[1].pirs, vec![0x10, 0x11, 0x12, 0x13]);
    assert_eq!(t.cores[1].chip_id, Some(0));
    assert_eq!(t.threads_per_core(), 4);
    assert_eq!(t.thread_count(), 8);
    assert_eq!(t.locate(0x12), Some((1, 2)));
    assert_eq!(t.locate(0x8), Some((0, 0)));
    assert_eq!(t.locate(0xc), None);
    let icps = icp_windows(&fdt).unwrap();
    assert_eq!(icps.len(), 8);
    for c in &t.cores {
        for &pir in &c.pirs {
            let w = icps.iter().find(|w| w.pir == pir).unwrap();
            // QEMU's layout (PLATFORM.md): 0x0003_ffff_8000_0000 + (PIR << 12).
            assert_eq!(w.base, 0x0003_ffff_8000_0000 + ((pir as u64) << 12));
            assert_eq!(w.size, 0x1000);
        }
    }
    let c = chosen(&fdt).unwrap();
    assert_eq!(c.bootargs, "hv.dumpfdt");
    assert_eq!(c.initrd, None);
}

#[test]
fn powernv8_one_core() {
    let fdt = open(P8_1C4T_1G).unwrap();
    assert_eq!(memory(&fdt).unwrap().total(), 1024 * MIB);
    let t = topology(&fdt).unwrap();
    assert_eq!(t.cores.len(), 1);
    assert_eq!(t.thread_count(), 4);
    assert_eq!(icp_windows(&fdt).unwrap().len(), 4);
}

#[test]
fn skiboot_reserved_ranges_are_all_found_and_excluded() {
    let fdt = open(P8_2C4T_2G).unwrap();
    let res = reserved_set(&fdt);
    // skiboot's code/heap at 0x3000_0000 and HOMER/OCC areas.
    assert!(res.iter().any(|r| r.contains(0x3000_0000)));
    assert!(res.iter().any(|r| r.contains(0x007f_fd80_0000)));
    assert!(res.iter().any(|r| r.contains(0x007f_ff80_0000)));
    // Every memreserve entry and every /reserved-memory child is covered.
    for r in fdt.memory_reservations() {
        let r = Range::sized(r.address() as u64, r.size() as u64);
        assert!(
            res.iter().any(|s| s.start <= r.start && r.end <= s.end),
            "{r}"
        );
    }
    let rm = fdt.find_node("/reserved-memory").unwrap();
    let mut n = 0;
    for c in rm.children() {
        for reg in c.reg().unwrap() {
            let r = Range::sized(reg.starting_address as u64, reg.size.unwrap() as u64);
            assert!(
                res.iter().any(|s| s.start <= r.start && r.end <= s.end),
                "{} {r}",
                c.name
            );
            n += 1;
        }
    }
    assert!(n >= 3, "only {n} /reserved-memory ranges");
    let free = free_map(&memory(&fdt).unwrap(), res.iter().copied(), 4096).unwrap();
    for r in res.iter() {
        assert!(!free.overlaps(r), "{r} is free");
    }
    assert!(free.total() > 1900 * MIB && free.total() < 2048 * MIB);
}

#[test]
fn initrd_range_from_chosen() {
    let fdt = open(P8_INITRD).unwrap();
    let c = chosen(&fdt).unwrap();
    // QEMU loads -initrd at 0x2800_0000; the fixture's file was 5000 bytes.
    assert_eq!(
        c.initrd,
        Some(Range {
            start: 0x2800_0000,
            end: 0x2800_0000 + 5000
        })
    );
}

/// A minimal powernv-like tree; `f` may add faults.
fn tree(f: impl Fn(&mut FdtWriter, &str)) -> Vec<u8> {
    let mut w = FdtWriter::new();
    w.begin_node("");
    f(&mut w, "/");
    w.begin_node("memory@0");
    w.prop_str("device_type", "memory");
    f(&mut w, "memory");
    w.end_node();
    w.begin_node("chosen");
    f(&mut w, "chosen");
    w.end_node();
    w.begin_node("cpus");
    w.prop_u32("#address-cells", 1);
    w.prop_u32("#size-cells", 0);
    w.begin_node("PowerPC,POWER8@8");
    w.prop_str("device_type", "cpu");
    f(&mut w, "cpu");
    w.end_node();
    w.end_node();
    w.begin_node("interrupt-controller@3ffff80008000");
    w.prop_strs("compatible", &["IBM,ppc-xicp", "IBM,power8-icp"]);
    f(&mut w, "icp");
    w.end_node();
    w.end_node();
    w.finish().unwrap()
}

fn good(w: &mut FdtWriter, at: &str) {
    match at {
        "/" => {
            w.prop_u32("#address-cells", 2);
            w.prop_u32("#size-cells", 2);
        }
        "memory" => w.prop_cells("reg", &[0, 0, 0, 0x4000_0000]),
        "cpu" => {
            w.prop_cells("ibm,ppc-interrupt-server#s", &[8, 9]);
            w.prop_u32("timebase-frequency", 512_000_000);
        }
        "icp" => {
            w.prop_cells("ibm,interrupt-server-ranges", &[8, 2]);
            w.prop_cells(
                "reg",
                &[
                    0x3ffff,
                    0x8000_8000,
                    0,
                    0x1000,
                    0x3ffff,
                    0x8000_9000,
                    0,
                    0x1000,
                ],
            );
        }
        _ => {}
    }
}

#[test]
fn synthetic_good_tree_reads() {
    let blob = tree(good);
    let fdt = open(&blob).unwrap();
    assert_eq!(memory(&fdt).unwrap().total(), 1 << 30);
    assert_eq!(topology(&fdt).unwrap().cores[0].pirs, vec![8, 9]);
    assert_eq!(
        icp_windows(&fdt).unwrap()[1],
        IcpWindow {
            pir: 9,
            base: 0x0003_ffff_8000_9000,
            size: 0x1000
        }
    );
    assert_eq!(chosen(&fdt).unwrap(), Chosen::default());
}

#[test]
fn missing_interrupt_servers_names_node_and_property() {
    let blob = tree(|w, at| {
        if at == "cpu" {
            w.prop_u32("timebase-frequency", 512_000_000);
        } else {
            good(w, at)
        }
    });
    let fdt = open(&blob).unwrap();
    let e = topology(&fdt).unwrap_err();
    assert_eq!(e.problem, Problem::Missing);
    assert_eq!(
        e.to_string(),
        "device tree: node `/cpus/PowerPC,POWER8@8`: property `ibm,ppc-interrupt-server#s` is missing"
    );
}

#[test]
fn bad_lengths_and_values_are_reported_not_panicked() {
    type Fault = Box<dyn Fn(&mut FdtWriter, &str)>;
    let cases: Vec<(Fault, &str)> = vec![
        (
            Box::new(|w: &mut FdtWriter, at: &str| {
                if at == "memory" {
                    w.prop_cells("reg", &[0, 0, 0]); // 12 bytes: not a whole entry
                } else {
                    good(w, at)
                }
            }),
            "device tree: node `/memory@0`: property `reg` has a length that does not fit its format",
        ),
        (
            Box::new(|w: &mut FdtWriter, at: &str| {
                if at == "cpu" {
                    w.prop_cells("ibm,ppc-interrupt-server#s", &[8]);
                    w.prop("timebase-frequency", &[1, 2, 3]);
                } else {
                    good(w, at)
                }
            }),
            "device tree: node `/cpus/PowerPC,POWER8@8`: property `timebase-frequency` has a length that does not fit its format",
        ),
        (
            Box::new(|w: &mut FdtWriter, at: &str| {
                if at == "chosen" {
                    w.prop_u32("linux,initrd-start", 0x2800_0000);
                } else {
                    good(w, at)
                }
            }),
            "device tree: node `/chosen`: property `linux,initrd-end` is missing",
        ),
        (
            Box::new(|w: &mut FdtWriter, at: &str| {
                if at == "chosen" {
                    w.prop_u32("linux,initrd-start", 0x2800_0000);
                    w.prop_u32("linux,initrd-end", 0x2000_0000);
                } else {
                    good(w, at)
                }
            }),
            "device tree: node `/chosen`: property `linux,initrd-end` has a value out of range",
        ),
        (
            Box::new(|w: &mut FdtWriter, at: &str| {
                if at == "icp" {
                    w.prop_cells("ibm,interrupt-server-ranges", &[8, 4]);
                    w.prop_cells("reg", &[0x3ffff, 0x8000_8000, 0, 0x1000]);
                } else {
                    good(w, at)
                }
            }),
            "device tree: node `/interrupt-controller@3ffff80008000`: property `reg` has a value out of range",
        ),
        (
            Box::new(|w: &mut FdtWriter, at: &str| {
                if at == "/" {
                    w.prop_u32("#address-cells", 2);
                    w.prop_u32("#size-cells", 7);
                } else {
                    good(w, at)
                }
            }),
            "device tree: node `/`: property `#size-cells` has a value out of range",
        ),
    ];
    for (f, want) in cases {
        let blob = tree(f);
        let fdt = open(&blob).unwrap();
        let errs: Vec<String> = [
            memory(&fdt).err().map(|e| e.to_string()),
            topology(&fdt).err().map(|e| e.to_string()),
            chosen(&fdt).err().map(|e| e.to_string()),
            icp_windows(&fdt).err().map(|e| e.to_string()),
        ]
        .into_iter()
        .flatten()
        .collect();
        assert!(
            errs.iter().any(|e| e == want),
            "want `{want}`, got {errs:?}"
        );
    }
}

#[test]
fn no_memory_or_cpus_is_a_clear_error() {
    let mut w = FdtWriter::new();
    w.begin_node("");
    w.end_node();
    let blob = w.finish().unwrap();
    let fdt = open(&blob).unwrap();
    assert_eq!(
        memory(&fdt).unwrap_err().to_string(),
        "device tree: node `/memory` is missing"
    );
    assert_eq!(
        topology(&fdt).unwrap_err().to_string(),
        "device tree: node `/cpus` is missing"
    );
    assert_eq!(
        open(&[0u8; 64]).unwrap_err().to_string(),
        "device tree is malformed at offset 0x0: bad magic (expected 0xd00dfeed)"
    );
}

#[test]
fn firmware_features_are_read_with_their_state() {
    let blob = tree(|w, at| {
        good(w, at);
        if at == "/" {
            w.begin_node("ibm,opal");
            w.begin_node("fw-features");
            for (name, prop) in [
                ("inst-l1d-flush-ori30,30,0", Some("enabled")),
                ("inst-l1d-flush-trig2", Some("disabled")),
                ("tm-suspend-mode", None),
            ] {
                w.begin_node(name);
                if let Some(p) = prop {
                    w.prop_empty(p);
                }
                w.end_node();
            }
            w.end_node();
            w.end_node();
        }
    });
    let fdt = open(&blob).unwrap();
    assert_eq!(
        fw_features(&fdt),
        vec![
            ("inst-l1d-flush-ori30,30,0", Some(true)),
            ("inst-l1d-flush-trig2", Some(false)),
            ("tm-suspend-mode", None),
        ]
    );
    // QEMU's powernv tree has no such node.
    assert!(fw_features(&open(P8_2C4T_2G).unwrap()).is_empty());
}

#[test]
fn the_system_flash_is_skiboots_flash_node() {
    let fdt = open(P8_2C4T_2G).unwrap();
    let f = system_flash(&fdt).expect("QEMU's powernv has a PNOR");
    assert_eq!(f.id, 0);
    assert!(f.block.is_power_of_two() && f.block >= 0x1000, "{f:?}");
    assert!(
        f.size >= 32 << 20 && f.size.is_multiple_of(f.block),
        "{f:?}"
    );
}
