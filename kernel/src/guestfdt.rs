//! The device tree handed to a guest: PAPR-shaped (what QEMU `-M pseries`
//! gives), so that an unmodified Linux pseries kernel entered with r3 = this
//! blob finds its CPUs, memory, console and RTAS.
//!
//! ```text
//! / (device_type "chrp", compatible "qemu,pseries", #address-cells 2, #size-cells 2)
//!   cpus (#address-cells 1, #size-cells 0)
//!     PowerPC,POWER8@0 ... @N-1   one node per vcpu (one thread per core); interrupt
//!                                 server = vcpu id; ibm,pa-features without TM
//!   memory@0                      reg <0 0 size_hi size_lo>
//!   chosen                        bootargs, stdout-path, linux,initrd-start/end
//!   interrupt-controller          the virtual XICS presentation layer (IBM,ppc-xicp,
//!                                 hypercalls), ibm,interrupt-server-ranges <0 N>
//!   vdevice (IBM,vdevice)         also the interrupt parent of its children (XICS sources);
//!                                 one child per device of the VM's bus (crate::vio):
//!     vty@30000000                hvterm1: H_PUT_TERM_CHAR / H_GET_TERM_CHAR, vtermno 0x30000000,
//!                                 interrupts <0x1000 0>
//!     nvram@30000001              the guest's NVRAM (qemu,spapr-nvram): #bytes; RTAS
//!                                 nvram-fetch / nvram-store
//!   rtas                          ibm,hypertas-functions, one property per RTAS token,
//!                                 rtas-size, linux,rtas-base, linux,rtas-entry
//! memory reservation: the RTAS blob
//! ```
//!
//! The caller supplies every fact that depends on what the hypervisor
//! implements (hypercall function sets, RTAS tokens) or allocated (HPT
//! order, RTAS and initrd placement); nothing here invents them.

use alloc::format;
use alloc::vec::Vec;

use crate::fdtw::FdtWriter;

/// `/chosen` `stdout-path`: the vty's node.
pub const STDOUT_PATH: &str = "/vdevice/vty@30000000";
const _: () = assert!(crate::vio::vty::REG == 0x3000_0000);
/// `ibm,pa-features` of QEMU's POWER8 pseries CPU (ISA 2.07): byte 22 bit 0
/// (transactional memory) clear, so Linux leaves TM alone: guests do not
/// get TM (HFSCR[TM] is clear; a TM instruction is a program interrupt).
pub const PA_FEATURES: [u8; 26] = [
    24, 0, //
    0xf6, 0x1f, 0xc7, 0xc0, 0x80, 0xf0, //
    0x80, 0x00, 0x00, 0x00, 0x00, 0x00, //
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
    0x80, 0x00, 0x80, 0x00, 0x00, 0x00,
];
/// `/rtas` `rtas-error-log-max` (bytes) and `rtas-event-scan-rate` (calls
/// per minute), QEMU's values.
pub const RTAS_ERROR_LOG_MAX: u32 = 2048;
pub const RTAS_EVENT_SCAN_RATE: u32 = 1;
const PHANDLE_XICP: u32 = 0x1111;

/// Root `model`.
pub const MODEL: &str = "IBM pSeries (power8-hv)";
/// Root `compatible`.
pub const COMPATIBLE: &str = "qemu,pseries";

/// `ibm,segment-page-sizes` for POWER8 with 4K, 64K and 16M pages, in the
/// layout Linux's `htab_dt_scan_page_sizes` reads: for each base (segment)
/// page size, `base shift, SLB encoding (L||LP in SLBV bits), count`, then
/// `count` pairs of `actual page shift, PTE LP encoding`. Same values as
/// skiboot gives the host (tests/fixtures) and QEMU's POWER8 model, without
/// the 16G pages.
pub const SEGMENT_PAGE_SIZES: [u32; 21] = [
    12, 0x000, 3, // 4K segments:
    12, 0x00, //   4K pages
    16, 0x07, //   64K pages (MPSS)
    24, 0x38, //   16M pages (MPSS)
    16, 0x110, 2, // 64K segments:
    16, 0x01, //   64K pages
    24, 0x08, //   16M pages (MPSS)
    24, 0x100, 1, // 16M segments:
    24, 0x00, //   16M pages
];

/// `ibm,processor-segment-sizes`: 256M (2^28) and 1T (2^40) segments.
pub const PROCESSOR_SEGMENT_SIZES: [u32; 2] = [0x1c, 0x28];

/// POWER8 L1 cache line (and block) size in bytes.
pub const CACHE_LINE: u32 = 128;

/// What the guest's tree says; see the module documentation.
#[derive(Clone, Copy)]
pub struct GuestFdtConfig<'a> {
    /// Root `ibm,partition-name`.
    pub name: &'a str,
    /// How vcpus form vcores: one cpu node per vcore, named and `reg`'d
    /// after its first vcpu, listing its threads' interrupt server numbers
    /// (= vcpu ids) in `ibm,ppc-interrupt-server#s`, as QEMU's pseries
    /// does; vcpu 0 is the boot CPU.
    pub layout: crate::vcore::Layout,
    /// Guest RAM in bytes, at guest-physical 0.
    pub memory: u64,
    /// log2 of the HPT actually allocated for the guest (`ibm,pft-size`).
    pub hpt_order: u32,
    /// Hz.
    pub timebase_frequency: u32,
    /// CPU `clock-frequency` in Hz.
    pub clock_frequency: u32,
    pub bootargs: &'a str,
    /// Guest-physical (start, end) of the initrd; `end` is exclusive.
    pub initrd: Option<(u64, u64)>,
    /// Guest-physical address of the RTAS blob; also its entry point. Linux
    /// reads these as 32-bit cells and wants RTAS below 1 GiB (inside the
    /// real-mode area).
    pub rtas_base: u32,
    pub rtas_size: u32,
    /// `ibm,hypertas-functions` strings, e.g. `hcall-pft`, `hcall-term`.
    pub hypertas_functions: &'a [&'a str],
    /// RTAS calls and their tokens, e.g. `("power-off", 0x2001)`: each
    /// becomes a u32 property of `/rtas` named after the call.
    pub rtas_tokens: &'a [(&'a str, u32)],
    /// The VM's devices: the children of `/vdevice`.
    pub vio: &'a crate::vio::VioBus,
}

/// Property names of `/rtas` that are not tokens.
const RTAS_RESERVED: [&str; 8] = [
    "name",
    "ibm,hypertas-functions",
    "rtas-size",
    "linux,rtas-base",
    "linux,rtas-entry",
    "ibm,extended-os-term",
    "rtas-error-log-max",
    "rtas-event-scan-rate",
];

/// Builds the guest's flattened device tree.
///
/// # Panics
///
/// If an RTAS token is named like one of the other `/rtas` properties (a
/// bug in the caller).
pub fn build(cfg: &GuestFdtConfig<'_>) -> Vec<u8> {
    let vcpus = cfg.layout.vcpus;
    let mut w = FdtWriter::new();
    w.set_boot_cpuid(0);
    w.reserve(u64::from(cfg.rtas_base), u64::from(cfg.rtas_size));

    w.begin_node("");
    w.prop_str("device_type", "chrp");
    w.prop_str("model", MODEL);
    w.prop_str("compatible", COMPATIBLE);
    w.prop_str("ibm,partition-name", cfg.name);
    w.prop_u32("#address-cells", 2);
    w.prop_u32("#size-cells", 2);

    w.begin_node("cpus");
    w.prop_u32("#address-cells", 1);
    w.prop_u32("#size-cells", 0);
    for vcore in 0..cfg.layout.vcores() {
        let threads: Vec<u32> = (0..cfg.layout.threads)
            .filter_map(|t| cfg.layout.vcpu(vcore, t))
            .collect();
        let first = threads[0];
        w.begin_node(&format!("PowerPC,POWER8@{first:x}"));
        w.prop_str("device_type", "cpu");
        w.prop_u32("reg", first);
        w.prop_cells("ibm,ppc-interrupt-server#s", &threads);
        let gservers: Vec<u32> = threads.iter().flat_map(|&t| [t, 0]).collect();
        w.prop_cells("ibm,ppc-interrupt-gserver#s", &gservers);
        w.prop("ibm,pa-features", &PA_FEATURES);
        // Facilities Linux learns from the tree in the FDT boot path:
        // VMX and VSX (2), decimal floating point, PURR and SPURR.
        w.prop_u32("ibm,vmx", 2);
        w.prop_u32("ibm,dfp", 1);
        w.prop_u32("ibm,purr", 1);
        w.prop_u32("ibm,spurr", 1);
        w.prop_cells("ibm,pft-size", &[0, cfg.hpt_order]);
        w.prop_u32("timebase-frequency", cfg.timebase_frequency);
        w.prop_u32("clock-frequency", cfg.clock_frequency);
        w.prop_u32("ibm,slb-size", ppc64::sizes::SLB_SIZE as u32);
        w.prop_cells("ibm,segment-page-sizes", &SEGMENT_PAGE_SIZES);
        w.prop_cells("ibm,processor-segment-sizes", &PROCESSOR_SEGMENT_SIZES);
        w.prop_u32("d-cache-line-size", CACHE_LINE);
        w.prop_u32("d-cache-block-size", CACHE_LINE);
        w.prop_u32("i-cache-line-size", CACHE_LINE);
        w.prop_u32("i-cache-block-size", CACHE_LINE);
        w.prop_empty("64-bit");
        w.prop_str("status", "okay");
        w.end_node();
    }
    w.end_node();

    w.begin_node("memory@0");
    w.prop_str("device_type", "memory");
    w.prop_cells("reg", &[0, 0, (cfg.memory >> 32) as u32, cfg.memory as u32]);
    w.end_node();

    w.begin_node("chosen");
    w.prop_str("bootargs", cfg.bootargs);
    w.prop_str("stdout-path", STDOUT_PATH);
    w.prop_str("linux,stdout-path", STDOUT_PATH);
    if let Some((start, end)) = cfg.initrd {
        w.prop_u64("linux,initrd-start", start);
        w.prop_u64("linux,initrd-end", end);
    }
    w.end_node();

    w.begin_node("interrupt-controller");
    w.prop_str("device_type", "PowerPC-External-Interrupt-Presentation");
    w.prop_str("compatible", "IBM,ppc-xicp");
    w.prop_empty("interrupt-controller");
    w.prop_cells("ibm,interrupt-server-ranges", &[0, vcpus]);
    w.prop_u32("#interrupt-cells", 2);
    w.prop_u32("linux,phandle", PHANDLE_XICP);
    w.prop_u32("phandle", PHANDLE_XICP);
    w.end_node();

    w.begin_node("vdevice");
    w.prop_str("device_type", "vdevice");
    w.prop_str("compatible", "IBM,vdevice");
    w.prop_u32("#address-cells", 1);
    w.prop_u32("#size-cells", 0);
    w.prop_u32("#interrupt-cells", 2);
    w.prop_empty("interrupt-controller");
    cfg.vio.write_nodes(&mut w);
    w.end_node();

    w.begin_node("rtas");
    w.prop_strs("ibm,hypertas-functions", cfg.hypertas_functions);
    for &(name, token) in cfg.rtas_tokens {
        assert!(
            !RTAS_RESERVED.contains(&name),
            "RTAS token named like the /rtas property '{name}'"
        );
        w.prop_u32(name, token);
    }
    w.prop_u32("rtas-size", cfg.rtas_size);
    // ibm,os-term returns (Linux calls it only if this is present).
    w.prop_u32("ibm,extended-os-term", 1);
    w.prop_u32("rtas-error-log-max", RTAS_ERROR_LOG_MAX);
    w.prop_u32("rtas-event-scan-rate", RTAS_EVENT_SCAN_RATE);
    w.prop_u32("linux,rtas-base", cfg.rtas_base);
    w.prop_u32("linux,rtas-entry", cfg.rtas_base);
    w.end_node();

    w.end_node();
    w.finish()
        .expect("guest device tree nodes are opened and closed in pairs")
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec;
    use fdt::node::FdtNode;
    use fdt::Fdt;

    const HCALLS: &[&str] = &["hcall-pft", "hcall-term", "hcall-dabr", "hcall-set-mode"];
    const TOKENS: &[(&str, u32)] = &[
        ("display-character", 0x2000),
        ("get-time-of-day", 0x2001),
        ("power-off", 0x2002),
        ("system-reboot", 0x2003),
    ];

    fn config(vcpus: u32, initrd: Option<(u64, u64)>) -> GuestFdtConfig<'static> {
        smt(vcpus, 1, initrd)
    }

    fn smt(vcpus: u32, threads: u32, initrd: Option<(u64, u64)>) -> GuestFdtConfig<'static> {
        GuestFdtConfig {
            name: "web",
            layout: crate::vcore::Layout::new(vcpus, threads, 8).unwrap(),
            memory: 0x1_4000_0000, // 5 GiB: both halves of the size matter
            hpt_order: 24,
            timebase_frequency: 512_000_000,
            clock_frequency: 3_690_000_000,
            bootargs: "console=hvc0 root=/dev/ram0",
            initrd,
            rtas_base: 0x0ff0_0000,
            rtas_size: 0x2000,
            hypertas_functions: HCALLS,
            rtas_tokens: TOKENS,
            // Leaked: the config is 'static, a test's bus lives as long.
            vio: alloc::boxed::Box::leak(alloc::boxed::Box::new(crate::vio::VioBus::new(vec![
                alloc::boxed::Box::new(crate::vio::vty::Vty),
                alloc::boxed::Box::new(crate::vio::nvram::Nvram(0x10000)),
            ]))),
        }
    }

    fn raw<'a>(node: FdtNode<'_, 'a>, name: &str) -> &'a [u8] {
        node.property(name)
            .unwrap_or_else(|| panic!("{}: no property {name}", node.name))
            .value
    }

    fn cells(node: FdtNode<'_, '_>, name: &str) -> Vec<u32> {
        let v = raw(node, name);
        assert_eq!(v.len() % 4, 0, "{name}");
        v.chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn u64_prop(node: FdtNode<'_, '_>, name: &str) -> u64 {
        u64::from_be_bytes(raw(node, name).try_into().unwrap())
    }

    fn string(node: FdtNode<'_, '_>, name: &str) -> String {
        let v = raw(node, name);
        assert_eq!(v.last(), Some(&0), "{name} is not NUL-terminated");
        String::from(core::str::from_utf8(&v[..v.len() - 1]).unwrap())
    }

    fn strings<'a>(node: FdtNode<'_, 'a>, name: &str) -> Vec<&'a str> {
        let v = raw(node, name);
        assert_eq!(v.last(), Some(&0));
        v[..v.len() - 1]
            .split(|&b| b == 0)
            .map(|s| core::str::from_utf8(s).unwrap())
            .collect()
    }

    fn node<'b, 'a>(fdt: &'b Fdt<'a>, path: &str) -> FdtNode<'b, 'a> {
        fdt.find_node(path)
            .unwrap_or_else(|| panic!("no node {path}"))
    }

    fn check(cfg: &GuestFdtConfig<'_>) {
        let blob = build(cfg);
        let fdt = Fdt::new(&blob).unwrap();
        assert_eq!(fdt.total_size(), blob.len());

        // Header and memory reservations.
        assert_eq!(u32::from_be_bytes(blob[28..32].try_into().unwrap()), 0);
        let rsv: Vec<_> = fdt
            .memory_reservations()
            .map(|r| (r.address() as u64, r.size()))
            .collect();
        assert_eq!(rsv, vec![(0x0ff0_0000, 0x2000)]);

        // Root.
        let root = node(&fdt, "/");
        assert_eq!(string(root, "device_type"), "chrp");
        assert_eq!(string(root, "model"), MODEL);
        assert_eq!(string(root, "compatible"), "qemu,pseries");
        assert_eq!(string(root, "ibm,partition-name"), "web");
        assert_eq!(cells(root, "#address-cells"), [2]);
        assert_eq!(cells(root, "#size-cells"), [2]);
        let top: Vec<_> = root.children().map(|n| n.name).collect();
        assert_eq!(
            top,
            [
                "cpus",
                "memory@0",
                "chosen",
                "interrupt-controller",
                "vdevice",
                "rtas"
            ]
        );

        // CPUs.
        let cpus = node(&fdt, "/cpus");
        assert_eq!(cells(cpus, "#address-cells"), [1]);
        assert_eq!(cells(cpus, "#size-cells"), [0]);
        let names: Vec<_> = cpus.children().map(|n| n.name).collect();
        let t = cfg.layout.threads;
        let expected: Vec<_> = (0..cfg.layout.vcores())
            .map(|c| format!("PowerPC,POWER8@{:x}", c * t))
            .collect();
        assert_eq!(names, expected);
        for (c, cpu) in cpus.children().enumerate() {
            let first = c as u32 * t;
            let threads: Vec<u32> = (first..first + t).collect();
            let gservers: Vec<u32> = threads.iter().flat_map(|&i| [i, 0]).collect();
            assert_eq!(string(cpu, "device_type"), "cpu");
            assert_eq!(cells(cpu, "reg"), [first]);
            assert_eq!(cells(cpu, "ibm,ppc-interrupt-server#s"), threads);
            assert_eq!(cells(cpu, "ibm,ppc-interrupt-gserver#s"), gservers);
            let pa = raw(cpu, "ibm,pa-features");
            assert_eq!(pa[0] as usize + 2, pa.len());
            assert_eq!(pa[2 + 22] & 0x80, 0, "no TM");
            assert_eq!(cells(cpu, "ibm,vmx"), [2]);
            assert_eq!(cells(cpu, "ibm,dfp"), [1]);
            assert_eq!(cells(cpu, "ibm,pft-size"), [0, 24]);
            assert_eq!(cells(cpu, "timebase-frequency"), [512_000_000]);
            assert_eq!(cells(cpu, "clock-frequency"), [3_690_000_000]);
            assert_eq!(cells(cpu, "ibm,slb-size"), [32]);
            assert_eq!(
                cells(cpu, "ibm,segment-page-sizes"),
                [
                    12, 0, 3, 12, 0, 16, 7, 24, 0x38, //
                    16, 0x110, 2, 16, 1, 24, 8, //
                    24, 0x100, 1, 24, 0
                ]
            );
            assert_eq!(cells(cpu, "ibm,processor-segment-sizes"), [0x1c, 0x28]);
            for p in [
                "d-cache-line-size",
                "d-cache-block-size",
                "i-cache-line-size",
                "i-cache-block-size",
            ] {
                assert_eq!(cells(cpu, p), [128], "{p}");
            }
            assert_eq!(raw(cpu, "64-bit"), b"");
            assert_eq!(string(cpu, "status"), "okay");
        }
        // Memory.
        let mem = node(&fdt, "/memory@0");
        assert_eq!(string(mem, "device_type"), "memory");
        assert_eq!(cells(mem, "reg"), [0, 0, 1, 0x4000_0000]);
        let regions: Vec<_> = fdt
            .memory()
            .regions()
            .map(|r| (r.starting_address as u64, r.size))
            .collect();
        assert_eq!(regions, vec![(0, Some(0x1_4000_0000))]);

        // Chosen.
        let chosen = node(&fdt, "/chosen");
        assert_eq!(fdt.chosen().bootargs(), Some("console=hvc0 root=/dev/ram0"));
        assert_eq!(string(chosen, "stdout-path"), "/vdevice/vty@30000000");
        assert_eq!(string(chosen, "linux,stdout-path"), "/vdevice/vty@30000000");
        assert_eq!(fdt.chosen().stdout().map(|n| n.name), Some("vty@30000000"));
        match cfg.initrd {
            Some((start, end)) => {
                assert_eq!(u64_prop(chosen, "linux,initrd-start"), start);
                assert_eq!(u64_prop(chosen, "linux,initrd-end"), end);
            }
            None => {
                assert!(chosen.property("linux,initrd-start").is_none());
                assert!(chosen.property("linux,initrd-end").is_none());
            }
        }

        // Virtual devices.
        let vdev = node(&fdt, "/vdevice");
        assert_eq!(string(vdev, "device_type"), "vdevice");
        assert_eq!(string(vdev, "compatible"), "IBM,vdevice");
        assert_eq!(cells(vdev, "#address-cells"), [1]);
        assert_eq!(cells(vdev, "#size-cells"), [0]);
        let vty = node(&fdt, "/vdevice/vty@30000000");
        assert_eq!(string(vty, "compatible"), "hvterm1");
        assert_eq!(string(vty, "device_type"), "serial");
        assert_eq!(cells(vty, "reg"), [0x3000_0000]);
        assert_eq!(cells(vty, "interrupts"), [0x1000, 0]);
        assert_eq!(cells(vdev, "#interrupt-cells"), [2]);
        let nvram = node(&fdt, "/vdevice/nvram@30000001");
        assert_eq!(string(nvram, "device_type"), "nvram");
        assert_eq!(string(nvram, "compatible"), "qemu,spapr-nvram");
        assert_eq!(cells(nvram, "reg"), [0x3000_0001]);
        assert_eq!(raw(nvram, "#bytes"), 0x10000u32.to_be_bytes());
        assert!(vdev.property("interrupt-controller").is_some());
        let icp = node(&fdt, "/interrupt-controller");
        assert_eq!(string(icp, "compatible"), "IBM,ppc-xicp");
        assert_eq!(
            string(icp, "device_type"),
            "PowerPC-External-Interrupt-Presentation"
        );
        assert_eq!(
            cells(icp, "ibm,interrupt-server-ranges"),
            [0, cfg.layout.vcpus]
        );

        // RTAS.
        let rtas = node(&fdt, "/rtas");
        assert_eq!(strings(rtas, "ibm,hypertas-functions"), HCALLS);
        for &(name, token) in TOKENS {
            assert_eq!(cells(rtas, name), [token], "{name}");
        }
        assert_eq!(cells(rtas, "rtas-size"), [0x2000]);
        assert_eq!(cells(rtas, "linux,rtas-base"), [0x0ff0_0000]);
        assert_eq!(cells(rtas, "linux,rtas-entry"), [0x0ff0_0000]);
        assert_eq!(cells(rtas, "ibm,extended-os-term"), [1]);
        assert_eq!(cells(rtas, "rtas-error-log-max"), [2048]);
        assert_eq!(rtas.properties().count(), 7 + TOKENS.len());
    }

    #[test]
    fn one_vcpu_without_initrd() {
        check(&config(1, None));
    }

    #[test]
    fn one_vcpu_with_initrd() {
        check(&config(1, Some((0x0200_0000, 0x0280_1234))));
    }

    #[test]
    fn two_vcpus_without_initrd() {
        check(&config(2, None));
    }

    #[test]
    fn two_vcpus_with_initrd_above_4g() {
        check(&config(2, Some((0x1_0000_0000, 0x1_0100_0000))));
    }

    #[test]
    fn smt_vcores_get_one_cpu_node_listing_their_threads() {
        // vcpus = 8, threads = 4: two nodes, @0 with servers 0-3 and @4
        // with 4-7 (QEMU pseries' -smp 8,threads=4 layout).
        check(&smt(8, 4, None));
        check(&smt(4, 4, Some((0x0200_0000, 0x0280_1234))));
    }

    #[test]
    fn unit_addresses_are_hex() {
        let blob = build(&config(17, None));
        let fdt = Fdt::new(&blob).unwrap();
        assert!(fdt.find_node("/cpus/PowerPC,POWER8@10").is_some());
        assert_eq!(cells(node(&fdt, "/cpus/PowerPC,POWER8@10"), "reg"), [16]);
    }

    #[test]
    fn the_tree_has_the_segment_page_sizes_skiboot_gives_the_host() {
        // The host's tree (QEMU powernv8 via skiboot) lists the same
        // encodings, plus 16G pages that guests do not get here.
        let host = include_bytes!("../../tests/fixtures/p8-1c4t-1g.dtb");
        let fdt = Fdt::new(host).unwrap();
        let cpu = fdt
            .find_node("/cpus/PowerPC,POWER8@8")
            .expect("fixture cpu node");
        let host_sps = cells(cpu, "ibm,segment-page-sizes");
        assert_eq!(&host_sps[..SEGMENT_PAGE_SIZES.len()], SEGMENT_PAGE_SIZES);
    }

    #[test]
    fn empty_lists_are_allowed() {
        let cfg = GuestFdtConfig {
            hypertas_functions: &[],
            rtas_tokens: &[],
            bootargs: "",
            ..config(1, None)
        };
        let blob = build(&cfg);
        let fdt = Fdt::new(&blob).unwrap();
        let rtas = node(&fdt, "/rtas");
        assert_eq!(raw(rtas, "ibm,hypertas-functions"), b"");
        assert_eq!(fdt.chosen().bootargs(), Some(""));
    }

    #[test]
    #[should_panic(expected = "RTAS token named like")]
    fn a_token_cannot_shadow_rtas_size() {
        let cfg = GuestFdtConfig {
            rtas_tokens: &[("rtas-size", 1)],
            ..config(1, None)
        };
        build(&cfg);
    }
}
