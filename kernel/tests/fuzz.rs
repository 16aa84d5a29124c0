//! Property-based fuzzing of everything the hypervisor reads from outside
//! itself: the boot archive (cpio `newc`), its manifest, the flash ROOTFS
//! container it may come in, guest ELF images, skiboot's device tree and
//! the boot arguments in it; and a guest driving its network adapter's
//! DMA (any sequence of TCE and logical-LAN calls between two adapters:
//! the device writes guest memory only in pages mapped writable, only in
//! its own VM's memory, and only when registering or receiving).
//!
//! Inputs are valid seeds (archives, ELF files, the captured skiboot
//! trees in tests/fixtures) put through up to eight byte-level mutations
//! (bit flips, interesting bytes and words, ASCII hex fields, truncation,
//! insertion, deletion, copies), or plain random bytes; manifests are
//! generated from their grammar. Each reader must not panic, must return
//! only what is consistent with its input, and must reject with an error
//! whose message is one non-empty line.
//!
//! `proptest` rather than coverage-guided fuzzing: it runs inside the
//! normal `cargo test` on the stable parts of the toolchain (no libFuzzer,
//! no sanitizer build), every run is reproducible from its seed, and a
//! failure is shrunk to a small input before it is reported.
//!
//! `HV_FUZZ_CASES` sets the cases per target (default 2,000: the bounded
//! run of `cargo xtask test`; `cargo xtask soak` runs 1,000,000), and
//! `HV_FUZZ_SEED` the seed (default fixed, printed on failure).

use kernel::archive::{self, Archive, NewcEntry};
use kernel::{bootargs, devtree, elf, rootfs};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use std::cell::RefCell;
use std::collections::BTreeMap;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A deterministic runner: `HV_FUZZ_CASES` cases from `HV_FUZZ_SEED`.
fn runner(target: &str) -> TestRunner {
    let seed = env_u64("HV_FUZZ_SEED", 0x5eed_1234);
    let cases = env_u64("HV_FUZZ_CASES", 2_000) as u32;
    eprintln!("fuzz {target}: {cases} cases, HV_FUZZ_SEED={seed}");
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&(target.len() as u64).to_le_bytes());
    for (i, b) in target.bytes().enumerate() {
        key[16 + i % 16] ^= b;
    }
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 4_096,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &key))
}

/// Runs `test` over `strategy`; each case names its outcome (how deep the
/// input got), and the share of each is printed and returned, so a test
/// can insist that its inputs reach the reader's inner paths.
fn run<S: Strategy>(
    target: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<&'static str, TestCaseError>,
) -> BTreeMap<&'static str, f64>
where
    S::Value: std::fmt::Debug,
{
    let tally = RefCell::new(BTreeMap::<&'static str, u64>::new());
    let result = runner(target).run(&strategy, |v| {
        let outcome = test(v)?;
        *tally.borrow_mut().entry(outcome).or_default() += 1;
        Ok(())
    });
    if let Err(e) = result {
        panic!("fuzz {target}: {e}");
    }
    let tally = tally.into_inner();
    let total = tally.values().sum::<u64>().max(1) as f64;
    let shares: BTreeMap<_, _> = tally.iter().map(|(k, &n)| (*k, n as f64 / total)).collect();
    let line: Vec<String> = shares
        .iter()
        .map(|(k, f)| format!("{k} {:.1}%", f * 100.0))
        .collect();
    eprintln!(
        "fuzz {target}: {total} cases, no panic: {}",
        line.join(", ")
    );
    shares
}

/// At least `min` of the cases had `outcome`.
fn reached(shares: &BTreeMap<&'static str, f64>, outcome: &str, min: f64) {
    let got = shares.get(outcome).copied().unwrap_or(0.0);
    assert!(
        got >= min,
        "only {:.2}% of the cases were `{outcome}` (want {:.0}%)",
        got * 100.0,
        min * 100.0
    );
}

/// A rejection's message: one non-empty line.
fn clear_error(e: &dyn std::fmt::Display) -> Result<(), TestCaseError> {
    let s = e.to_string();
    prop_assert!(
        !s.trim().is_empty() && !s.contains('\n'),
        "unclear error {s:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Byte-level mutation of seeds
// ---------------------------------------------------------------------------

const INTERESTING: [u64; 20] = [
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    16,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x1000,
    0xffff,
    0x40_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x7fff_ffff_ffff_ffff,
    u64::MAX,
];

#[derive(Clone, Debug)]
enum Mutation {
    Flip {
        at: usize,
        bit: u8,
    },
    Byte {
        at: usize,
        v: u8,
    },
    /// An interesting value (index into INTERESTING, or a random one).
    Word {
        at: usize,
        width: u8,
        v: u64,
        big: bool,
    },
    /// Eight ASCII hex digits (cpio header fields).
    Hex {
        at: usize,
        v: u32,
    },
    Truncate {
        at: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Delete {
        at: usize,
        len: usize,
    },
    Copy {
        from: usize,
        to: usize,
        len: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let value = prop_oneof![
        3 => (0..INTERESTING.len()).prop_map(|i| INTERESTING[i]),
        1 => any::<u64>(),
    ];
    prop_oneof![
        3 => (any::<usize>(), 0..8u8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(at, v)| Mutation::Byte { at, v }),
        3 => (any::<usize>(), prop_oneof![Just(1u8), Just(2), Just(4), Just(8)], value.clone(), any::<bool>())
            .prop_map(|(at, width, v, big)| Mutation::Word { at, width, v, big }),
        2 => (any::<usize>(), value.prop_map(|v| v as u32)).prop_map(|(at, v)| Mutation::Hex { at, v }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        1 => (any::<usize>(), vec(any::<u8>(), 1..16)).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (any::<usize>(), 1..64usize).prop_map(|(at, len)| Mutation::Delete { at, len }),
        1 => (any::<usize>(), any::<usize>(), 1..64usize)
            .prop_map(|(from, to, len)| Mutation::Copy { from, to, len }),
    ]
}

fn apply(b: &mut Vec<u8>, m: &Mutation) {
    let n = b.len();
    let at = |x: usize| if n == 0 { 0 } else { x % n };
    match *m {
        Mutation::Flip { at: a, bit } if n > 0 => b[at(a)] ^= 1 << bit,
        Mutation::Byte { at: a, v } if n > 0 => b[at(a)] = v,
        Mutation::Word {
            at: a,
            width,
            v,
            big,
        } if n >= width as usize => {
            let w = width as usize;
            let a = at(a) % (n - w + 1);
            let bytes = if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            let src = if big { &bytes[8 - w..] } else { &bytes[..w] };
            b[a..a + w].copy_from_slice(src);
        }
        Mutation::Hex { at: a, v } if n >= 8 => {
            let a = at(a) % (n - 7);
            b[a..a + 8].copy_from_slice(format!("{v:08x}").as_bytes());
        }
        Mutation::Truncate { at: a } => b.truncate(at(a)),
        Mutation::Insert { at: a, ref bytes } => {
            let a = if n == 0 { 0 } else { a % (n + 1) };
            b.splice(a..a, bytes.iter().copied());
        }
        Mutation::Delete { at: a, len } if n > 0 => {
            let a = at(a);
            b.drain(a..(a + len).min(n));
        }
        Mutation::Copy { from, to, len } if n > 0 => {
            let (f, t) = (at(from), at(to));
            let len = len.min(n - f).min(n - t);
            b.copy_within(f..f + len, t);
        }
        _ => {}
    }
}

/// Seeds mutated, or (one case in ten) random bytes.
fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    prop_oneof![
        9 => (0..n, vec(mutation(), 0..8)).prop_map(move |(i, ms)| {
            let mut b = seeds[i].clone();
            for m in &ms {
                apply(&mut b, m);
            }
            b
        }),
        1 => vec(any::<u8>(), 0..512),
    ]
}

// ---------------------------------------------------------------------------
// The boot archive and its manifest
// ---------------------------------------------------------------------------

const MANIFEST: &str = "# two guests\n[vm web]\nmemory = 256M\nimage = vmlinux\n\
    initrd = ./rootfs.cpio\nbootargs = console=hvc0 # verbatim\n\n\
    [vm db]\nvcpus = 4\nthreads = 2\nmemory = 0x40000000\nhpt_order = 24\n\
    image = /vmlinux\nload_addr = 0x1000000\nentry_endian = little\nconsole = yes\n\
    [vm next]\nmemory = 16M\nimage = vmlinux\nafter = web\n";

fn archive_seeds() -> Vec<Vec<u8>> {
    let files = archive::build_newc(&[
        ("manifest", MANIFEST.as_bytes()),
        ("vmlinux", b"\x7fELF not really"),
        ("rootfs.cpio", &[7u8; 33]),
    ]);
    let dirs = archive::build_newc_entries(&[
        NewcEntry {
            name: "./guests",
            mode: 0o040_755,
            rdev: (0, 0),
            data: b"",
        },
        NewcEntry {
            name: "./manifest",
            mode: 0o100_644,
            rdev: (0, 0),
            data: b"[vm a]\nmemory = 32M\nimage = guests/a\n",
        },
        NewcEntry {
            name: "./guests/a",
            mode: 0o100_755,
            rdev: (0, 0),
            data: &[0xaa; 5],
        },
        NewcEntry {
            name: "dev/console",
            mode: 0o020_600,
            rdev: (5, 1),
            data: b"",
        },
    ]);
    let mut padded = files.clone();
    padded.resize(padded.len().next_multiple_of(512), 0);
    vec![files, dirs, padded, archive::build_newc(&[])]
}

/// What a manifest's accepted VMs must satisfy, whatever the input.
fn check_manifest(
    m: &archive::Manifest<'_>,
    a: &Archive<'_>,
    threads: u32,
) -> Result<(), TestCaseError> {
    for e in &m.errors {
        clear_error(e)?;
        prop_assert!(e.to_string().starts_with("manifest"));
    }
    for (i, vm) in m.vms.iter().enumerate() {
        prop_assert!(!vm.name.is_empty() && vm.name.len() <= archive::MAX_VM_NAME);
        prop_assert!(
            m.vms[..i].iter().all(|o| o.name != vm.name),
            "two VMs named {}",
            vm.name
        );
        prop_assert!(vm.memory > 0 && vm.memory % archive::MEMORY_MULTIPLE == 0);
        prop_assert!((1..=256).contains(&vm.layout.vcpus));
        prop_assert!(matches!(vm.layout.threads, 1 | 2 | 4 | 8) && vm.layout.threads <= threads);
        prop_assert!(vm.layout.vcpus % vm.layout.threads == 0);
        prop_assert!(vm
            .hpt_order
            .is_none_or(|o| archive::HPT_ORDERS.contains(&o)));
        prop_assert_eq!(a.file(vm.image_path), Some(vm.image));
        if let Some((p, data)) = vm.initrd {
            prop_assert_eq!(a.file(p), Some(data));
        }
        prop_assert!(vm.load_addr.is_none_or(|l| l % 4096 == 0));
        if let Some(after) = vm.after {
            prop_assert!(after != vm.name);
        }
        prop_assert!(!vm.bootargs.contains('\n'));
    }
    prop_assert!(m.vms.iter().filter(|v| v.console).count() <= 1);
    Ok(())
}

#[test]
fn fuzz_boot_archive_and_manifest() {
    let shares = run(
        "boot-archive",
        (
            mutated(archive_seeds()),
            prop_oneof![Just(1u32), Just(4), Just(8)],
        ),
        |(bytes, threads)| match Archive::parse(&bytes) {
            Ok(a) => {
                prop_assert!(a.byte_len() <= bytes.len());
                let range = bytes.as_ptr_range();
                for e in &a {
                    let d = e.data.as_ptr_range();
                    prop_assert!(
                        e.data.is_empty() || (range.start <= d.start && d.end <= range.end)
                    );
                    prop_assert!(e.offset < a.byte_len());
                    prop_assert_ne!(e.name, archive::TRAILER_NAME);
                }
                let m = archive::parse_manifest(&a, threads);
                check_manifest(&m, &a, threads)?;
                Ok(if m.vms.is_empty() {
                    "archive read"
                } else {
                    "VMs accepted"
                })
            }
            Err(e) => {
                prop_assert!(e.offset <= bytes.len());
                clear_error(&e)?;
                Ok("refused")
            }
        },
    );
    reached(&shares, "VMs accepted", 0.05);
    reached(&shares, "refused", 0.2);
}

/// A `[vm NAME]` section whose keys mostly have valid values (so that
/// VMs get accepted and the checks between keys run), some edge ones.
fn vm_section() -> impl Strategy<Value = String> {
    let good = |k: &'static str, vals: &'static [&'static str]| {
        (0..vals.len(), any::<bool>()).prop_map(move |(i, present)| {
            if present || k == "memory" || k == "image" {
                format!("{k} = {}", vals[i])
            } else {
                String::new()
            }
        })
    };
    let keys = (
        good("vcpus", &["1", "2", "4", "8", "256", "3"]),
        good("threads", &["1", "2", "4", "8"]),
        good("memory", &["16M", "256M", "1G", "0x2000000"]),
        good("hpt_order", &["18", "24", "46"]),
        good("image", &["vmlinux", "/vmlinux", "./vmlinux"]),
        good("initrd", &["rootfs.cpio", "./rootfs.cpio"]),
        good("bootargs", &["console=hvc0", "", "a=b # c"]),
        good("load_addr", &["0x0", "0x1000000", "0x400000"]),
        good("entry_endian", &["big", "little"]),
        good("console", &["yes"]),
        good("after", &["a", "web", "db"]),
    );
    let name = prop_oneof![Just("a"), Just("web"), Just("db"), Just("x.y_z-1")];
    (name, keys, vec(manifest_line(), 0..2)).prop_map(|(n, k, extra)| {
        let mut lines = vec![format!("[vm {n}]")];
        lines.extend([k.0, k.1, k.2, k.3, k.4, k.5, k.6, k.7, k.8, k.9, k.10]);
        lines.extend(extra);
        lines.join("\n")
    })
}

/// Manifest lines from the grammar, with edge values.
fn manifest_line() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("a".to_string()),
        Just("web".to_string()),
        Just("db".to_string()),
        Just("x".repeat(32)),
        Just("x".repeat(33)),
        Just("bad name".to_string()),
        Just("é".to_string()),
        Just(String::new()),
        "[A-Za-z0-9_.-]{1,8}",
    ];
    let key = prop_oneof![
        10 => (0..11usize).prop_map(|i| [
            "vcpus", "threads", "memory", "hpt_order", "image", "bootargs",
            "initrd", "load_addr", "entry_endian", "console", "after"
        ][i].to_string()),
        1 => "[a-z_]{1,10}",
        1 => Just("MEMORY".to_string()),
    ];
    let value = prop_oneof![
        Just("0".to_string()),
        Just("1".to_string()),
        Just("2".to_string()),
        Just("3".to_string()),
        Just("4".to_string()),
        Just("8".to_string()),
        Just("256".to_string()),
        Just("257".to_string()),
        Just("16M".to_string()),
        Just("256M".to_string()),
        Just("1G".to_string()),
        Just("17M".to_string()),
        Just("0x1000000".to_string()),
        Just("18446744073709551615".to_string()),
        Just("18446744073709551616G".to_string()),
        Just("99999999999G".to_string()),
        Just("-1".to_string()),
        Just("17".to_string()),
        Just("46".to_string()),
        Just("47".to_string()),
        Just("0x1001".to_string()),
        Just("0xffffffffffffffff".to_string()),
        Just("vmlinux".to_string()),
        Just("./rootfs.cpio".to_string()),
        Just("guests".to_string()),
        Just("missing".to_string()),
        Just("little".to_string()),
        Just("big".to_string()),
        Just("yes".to_string()),
        Just("web".to_string()),
        Just("db".to_string()),
        Just(String::new()),
        Just("a = b # c".to_string()),
        ".{0,12}",
    ];
    prop_oneof![
        2 => name.clone().prop_map(|n| format!("[vm {n}]")),
        1 => name.prop_map(|n| format!("[{n}")),
        8 => (key, value, any::<bool>()).prop_map(|(k, v, sp)| if sp { format!("  {k} = {v}  ") } else { format!("{k}={v}") }),
        1 => Just("# comment".to_string()),
        1 => Just(String::new()),
        1 => ".{0,20}",
    ]
}

#[test]
fn fuzz_manifest_text() {
    let bytes = archive::build_newc_entries(&[
        NewcEntry {
            name: "vmlinux",
            mode: 0o100_644,
            rdev: (0, 0),
            data: b"image",
        },
        NewcEntry {
            name: "rootfs.cpio",
            mode: 0o100_644,
            rdev: (0, 0),
            data: b"initrd",
        },
        NewcEntry {
            name: "guests",
            mode: 0o040_755,
            rdev: (0, 0),
            data: b"",
        },
    ]);
    let a = Archive::parse(&bytes).unwrap();
    let lines =
        vec(prop_oneof![3 => vm_section(), 1 => manifest_line()], 0..8).prop_map(|l| l.join("\n"));
    let shares = run(
        "manifest",
        (lines, prop_oneof![Just(1u32), Just(2), Just(4), Just(8)]),
        |(text, threads)| {
            let m = archive::parse_manifest_text(&text, &a, threads);
            check_manifest(&m, &a, threads)?;
            Ok(match (m.vms.is_empty(), m.errors.is_empty()) {
                (false, true) => "all VMs accepted",
                (false, false) => "some VMs accepted",
                (true, _) => "no VM accepted",
            })
        },
    );
    reached(&shares, "some VMs accepted", 0.02);
    reached(&shares, "all VMs accepted", 0.001);
}

// ---------------------------------------------------------------------------
// Guest ELF images
// ---------------------------------------------------------------------------

use kernel::elf::build as elf_image;

const GUEST_MEM: usize = 256 * 1024;
const PATTERN: u8 = 0xa5;

#[test]
fn fuzz_elf_loader() {
    let seeds = vec![
        elf_image(0x100, &[(0x100, 0, &[1; 64], 0x200)]),
        elf_image(0x4_0000, &[(0x4_0000, 0x4_0000, &[2; 40], 40)]),
        elf_image(
            0xc000_0000_0000_0010,
            &[
                (0xc000_0000_0000_0000, 0, &[3; 100], 0x1000),
                (0xc000_0000_0000_2000, 0, &[4; 16], 0x3000),
            ],
        ),
        elf_image(
            0x20,
            &[
                (0, 0, &[5; 8], 8),
                (0x800, 0x800, &[], 0x100),
                (0x1000, 0x1000, &[6; 24], 24),
            ],
        ),
    ];
    let load_addr = prop_oneof![
        Just(None),
        Just(Some(0u64)),
        (0..GUEST_MEM as u64 / 4096).prop_map(|p| Some(p * 4096)),
        (0..INTERESTING.len()).prop_map(|i| Some(INTERESTING[i])),
    ];
    let mem = std::cell::RefCell::new(vec![PATTERN; GUEST_MEM]);
    let shares = run("elf", (mutated(seeds), load_addr), |(image, load_addr)| {
        let mut mem = mem.borrow_mut();
        match elf::load(&image, &mut mem, load_addr) {
            Ok(l) => {
                let (s, e) = (l.start as usize, l.end as usize);
                prop_assert!(s <= e && e <= GUEST_MEM);
                prop_assert!(
                    (l.start..l.end).contains(&l.entry),
                    "entry {:#x} outside {l:?}",
                    l.entry
                );
                prop_assert!(
                    mem[..s].iter().chain(&mem[e..]).all(|&b| b == PATTERN),
                    "written outside {l:?}"
                );
                mem[s..e].fill(PATTERN);
                Ok("loaded")
            }
            Err(err) => {
                clear_error(&err)?;
                prop_assert!(
                    mem.iter().all(|&b| b == PATTERN),
                    "a refused image wrote memory"
                );
                Ok("refused")
            }
        }
    });
    reached(&shares, "loaded", 0.1);
}

/// The flash ROOTFS container skiboot hands over as the initrd: an archive
/// found in it lies inside the input, and a bare archive is not taken for
/// a container.
#[test]
fn fuzz_flash_rootfs_container() {
    let seeds = vec![
        rootfs::wrap(&[]),
        rootfs::wrap(b"070701"),
        rootfs::wrap(&archive_seeds()[0]),
    ];
    let shares = run("rootfs", mutated(seeds), |image| {
        match rootfs::unwrap(&image) {
            Ok(None) => {
                prop_assert!(!image.starts_with(b"\x7fELF"));
                Ok("not a container")
            }
            Ok(Some(a)) => {
                let start = a.as_ptr() as usize - image.as_ptr() as usize;
                prop_assert!(a.is_empty() || start + a.len() <= image.len());
                Ok("unwrapped")
            }
            Err(e) => {
                clear_error(&e)?;
                Ok("refused")
            }
        }
    });
    reached(&shares, "unwrapped", 0.1);
}

// ---------------------------------------------------------------------------
// skiboot's device tree and the boot arguments
// ---------------------------------------------------------------------------

#[test]
fn fuzz_skiboot_device_tree() {
    let seeds = vec![
        include_bytes!("../../tests/fixtures/p8-2c4t-2g.dtb").to_vec(),
        include_bytes!("../../tests/fixtures/p8-1c4t-1g.dtb").to_vec(),
        include_bytes!("../../tests/fixtures/p8-2c4t-2g-initrd.dtb").to_vec(),
    ];
    let shares = run("device-tree", mutated(seeds), |blob| {
        let fdt = match devtree::open(&blob) {
            Ok(f) => f,
            Err(e) => return clear_error(&e).map(|_| "refused"),
        };
        let mut complete = true;
        prop_assert!(devtree::total_size(&fdt) <= blob.len() as u64);
        match devtree::chosen(&fdt) {
            Ok(c) => {
                if let Some(r) = c.initrd {
                    prop_assert!(r.start <= r.end);
                }
                let mut bad = Vec::new();
                bootargs::parse(c.bootargs, |b| bad.push(format!("{}: {}", b.word, b.why)));
                for b in &bad {
                    clear_error(b)?;
                }
            }
            Err(e) => {
                complete = false;
                clear_error(&e)?
            }
        }
        match devtree::memory(&fdt) {
            Ok(m) => prop_assert!(m.iter().all(|r| r.start <= r.end)),
            Err(e) => {
                complete = false;
                clear_error(&e)?
            }
        }
        match devtree::reserved(&fdt, |_| Ok(())) {
            Ok(()) => {}
            Err(e) => {
                complete = false;
                clear_error(&e)?
            }
        }
        let _ = devtree::machine_compatible(&fdt);
        match devtree::topology(&fdt) {
            Ok(t) => {
                prop_assert!(t.timebase_hz > 0);
                prop_assert!(t.cores.iter().all(|c| !c.pirs.is_empty()));
            }
            Err(e) => {
                complete = false;
                clear_error(&e)?
            }
        }
        match devtree::icp_windows(&fdt) {
            Ok(w) => prop_assert!(w.iter().all(|w| w.size >= ppc64::xics::REGS_LEN)),
            Err(e) => {
                complete = false;
                clear_error(&e)?
            }
        }
        let _ = devtree::fw_features(&fdt);
        Ok(if complete {
            "read completely"
        } else {
            "opened, some part refused"
        })
    });
    reached(&shares, "read completely", 0.1);
    reached(&shares, "opened, some part refused", 0.001);
}

#[test]
fn fuzz_boot_arguments() {
    let word = prop_oneof![
        Just("hv.".to_string()),
        Just("hv.hpt_pool_order=24".to_string()),
        Just("hv.hpt_pool_order=99".to_string()),
        Just("hv.ram=unknown".to_string()),
        Just("hv.test=vm-churn:1000".to_string()),
        Just("hv.test=fail-alloc:3".to_string()),
        Just("hv.test=".to_string()),
        Just("console=hvc0".to_string()),
        "hv\\.[a-z_]{0,12}=[a-z0-9:,-]{0,12}",
        "\\PC{0,12}",
    ];
    let shares = run("bootargs", vec(word, 0..8).prop_map(|w| w.join(" ")), |s| {
        let mut bad = Vec::new();
        bootargs::parse(&s, |b| bad.push(format!("`{}`: {}", b.word, b.why)));
        for b in &bad {
            clear_error(b)?;
        }
        Ok(if bad.is_empty() {
            "accepted"
        } else {
            "some word refused"
        })
    });
    reached(&shares, "accepted", 0.05);
    reached(&shares, "some word refused", 0.05);
}

// ---------------------------------------------------------------------------
// DMA through a TCE window: the l-lan adapter's every call, two ports
// ---------------------------------------------------------------------------

use kernel::gmem::GuestMemory;
use kernel::vio::lan::{self, Frame, Ports};
use kernel::vio::llan::{Llan, Received, BD_VALID, SEND_BDS};
use kernel::vio::tce::{TceTable, PAGE, TCE_READ, TCE_WRITE};
use kernel::vio::VioDevice;

/// Guest RAM of each port, and its window.
const DMA_RAM: u64 = 16 * PAGE;
const DMA_WINDOW: u64 = 8 * PAGE;

/// What a guest may do to its adapter and its own memory.
#[derive(Clone, Debug)]
enum DmaOp {
    /// What a driver does first: IOBA pages 0-7 onto guest pages 8-15,
    /// read-write.
    MapAll {
        port: usize,
    },
    /// What it does then: registers (list page 0, a 16-entry queue on
    /// page 1, filter page 2) and adds four 2 KiB buffers (pages 4-5).
    Open {
        port: usize,
    },
    PutTce {
        port: usize,
        ioba: u64,
        tce: u64,
    },
    Stuff {
        port: usize,
        ioba: u64,
        value: u64,
        count: u64,
    },
    Indirect {
        port: usize,
        ioba: u64,
        list: u64,
        tces: Vec<u64>,
    },
    Register {
        port: usize,
        list: u64,
        queue: u64,
        filter: u64,
        mac: u64,
    },
    Free {
        port: usize,
    },
    AddBuffer {
        port: usize,
        bd: u64,
    },
    Send {
        port: usize,
        bds: Vec<u64>,
    },
    Signal {
        port: usize,
        mode: u64,
    },
    ChangeMac {
        port: usize,
        mac: u64,
    },
    GuestWrite {
        port: usize,
        gpa: u64,
        bytes: Vec<u8>,
    },
}

fn dma_op() -> impl Strategy<Value = DmaOp> {
    let port = 0..2usize;
    // Mostly page-aligned addresses in (or just past) the window.
    let ioba = prop_oneof![
        (0..DMA_WINDOW / PAGE + 2).prop_map(|p| p * PAGE),
        0..DMA_WINDOW + 2 * PAGE,
        any::<u64>(),
    ];
    let tce = prop_oneof![
        (0..DMA_RAM / PAGE + 4, 0..4u64).prop_map(|(p, perm)| (p * PAGE) | perm),
        any::<u64>(),
    ];
    let bd = prop_oneof![
        // A buffer or frame in pages 3-7, as a driver lays them out.
        (
            3..8u64,
            0..PAGE / 2,
            prop_oneof![Just(64u64), Just(1514), Just(2048)]
        )
            .prop_map(|(page, off, len)| BD_VALID | len << 32 | (page * PAGE + off * 2 / 16 * 8)),
        (
            ioba.clone(),
            prop_oneof![
                Just(16u64),
                Just(64),
                Just(1514),
                Just(2048),
                0..0x2_0000u64
            ]
        )
            .prop_map(|(a, len)| BD_VALID | len << 32 | (a & 0xffff_ffff)),
        any::<u64>(),
    ];
    let queue = prop_oneof![
        (1..64u64).prop_map(|n| BD_VALID | (16 * n) << 32 | PAGE),
        bd.clone(),
    ];
    let mac = prop_oneof![
        Just(0x0200_0000_0001u64),
        Just(0x0200_0000_0002),
        Just(0xffff_ffff_ffff),
        any::<u64>()
    ];
    prop_oneof![
        2 => port.clone().prop_map(|port| DmaOp::MapAll { port }),
        2 => port.clone().prop_map(|port| DmaOp::Open { port }),
        4 => (port.clone(), ioba.clone(), tce.clone()).prop_map(|(port, ioba, tce)| DmaOp::PutTce { port, ioba, tce }),
        1 => (port.clone(), ioba.clone(), tce.clone(), 0..40u64)
            .prop_map(|(port, ioba, value, count)| DmaOp::Stuff { port, ioba, value, count }),
        1 => (port.clone(), ioba.clone(), 0..DMA_RAM + PAGE, vec(tce.clone(), 0..6))
            .prop_map(|(port, ioba, list, tces)| DmaOp::Indirect { port, ioba, list, tces }),
        2 => (port.clone(), prop_oneof![Just(0u64), ioba.clone()], queue, prop_oneof![Just(2 * PAGE), ioba.clone()], mac.clone())
            .prop_map(|(port, list, queue, filter, mac)| DmaOp::Register { port, list, queue, filter, mac }),
        1 => port.clone().prop_map(|port| DmaOp::Free { port }),
        3 => (port.clone(), bd.clone()).prop_map(|(port, bd)| DmaOp::AddBuffer { port, bd }),
        3 => (port.clone(), vec(bd, 0..SEND_BDS + 1)).prop_map(|(port, bds)| DmaOp::Send { port, bds }),
        1 => (port.clone(), 0..4u64).prop_map(|(port, mode)| DmaOp::Signal { port, mode }),
        1 => (port.clone(), mac).prop_map(|(port, mac)| DmaOp::ChangeMac { port, mac }),
        2 => (port, 0..DMA_RAM, vec(any::<u8>(), 1..32))
            .prop_map(|(port, gpa, bytes)| DmaOp::GuestWrite { port, gpa, bytes }),
    ]
}

/// Two adapters, each with its RAM and a copy of what its guest wrote.
struct DmaPorts {
    nic: [Llan; 2],
    ram: [Vec<u8>; 2],
}

impl Ports for DmaPorts {
    fn count(&self) -> usize {
        2
    }
    fn offer(&mut self, i: usize, frame: &Frame, all: bool) -> Option<Received> {
        let [r0, r1] = &mut self.ram;
        let (to, from) = if i == 0 { (r0, r1) } else { (r1, r0) };
        let src = GuestMemory::new(from);
        self.nic[i].offer(frame, &src, all, &mut GuestMemory::new(to))
    }
}

/// The guest pages a device's window lets it write now.
fn writable_pages(dev: &mut dyn VioDevice) -> Vec<u64> {
    let t = dev.tce().expect("the device has a window");
    (0..t.window() / PAGE)
        .filter_map(|i| t.get(i * PAGE).ok())
        .filter(|tce| tce & TCE_WRITE != 0)
        .map(|tce| tce / PAGE)
        .collect()
}

#[test]
fn fuzz_dma_stays_inside_writable_mappings() {
    let shares = run("dma", vec(dma_op(), 1..60), |ops| {
        let mk = |unit: u32, mac: u8| {
            Llan::new(unit, TceTable::new(unit, DMA_WINDOW), [2, 0, 0, 0, 0, mac])
        };
        let mut p = DmaPorts {
            nic: [mk(0x3000_0002, 1), mk(0x3000_0002, 2)],
            // All ones: a frame's destination is the broadcast address
            // unless the guest wrote another.
            ram: [vec![0xff; DMA_RAM as usize], vec![0xff; DMA_RAM as usize]],
        };
        let mut shadow = p.ram.clone();
        let mut counters = lan::Counters::default();
        let (mut delivered, mut sent) = (false, false);
        for op in &ops {
            let writable: Vec<Vec<u64>> = (0..2).map(|i| writable_pages(&mut p.nic[i])).collect();
            match op.clone() {
                DmaOp::MapAll { port } => {
                    for i in 0..8 {
                        let tce = ((8 + i) * PAGE) | TCE_READ | TCE_WRITE;
                        prop_assert!(p.nic[port]
                            .tce()
                            .unwrap()
                            .put(i * PAGE, tce, DMA_RAM)
                            .is_ok());
                    }
                }
                DmaOp::Open { port } => {
                    let mut mem = GuestMemory::new(&mut p.ram[port]);
                    let queue = BD_VALID | (16 * 16) << 32 | PAGE;
                    let mac = 0x0200_0000_0001 + port as u64;
                    let _ = p.nic[port].register(0, queue, 2 * PAGE, mac, &mut mem);
                    for k in 0..4u64 {
                        let _ =
                            p.nic[port].add_buffer(BD_VALID | 2048 << 32 | (4 * PAGE + k * 2048));
                    }
                }
                DmaOp::PutTce { port, ioba, tce } => {
                    let _ = p.nic[port].tce().unwrap().put(ioba, tce, DMA_RAM);
                }
                DmaOp::Stuff {
                    port,
                    ioba,
                    value,
                    count,
                } => {
                    let _ = p.nic[port].tce().unwrap().stuff(ioba, value, count);
                }
                DmaOp::Indirect {
                    port,
                    ioba,
                    list,
                    tces,
                } => {
                    // The guest writes its list, then makes the call.
                    for (k, t) in tces.iter().enumerate() {
                        let at = (list + 8 * k as u64) as usize;
                        if at + 8 <= DMA_RAM as usize {
                            p.ram[port][at..at + 8].copy_from_slice(&t.to_be_bytes());
                            shadow[port][at..at + 8].copy_from_slice(&t.to_be_bytes());
                        }
                    }
                    let mem = GuestMemory::new(&mut p.ram[port]);
                    let _ = p.nic[port].tce().unwrap().put_indirect(
                        ioba,
                        list,
                        tces.len() as u64,
                        &mem,
                    );
                }
                DmaOp::Register {
                    port,
                    list,
                    queue,
                    filter,
                    mac,
                } => {
                    let mut mem = GuestMemory::new(&mut p.ram[port]);
                    let _ = p.nic[port].register(list, queue, filter, mac, &mut mem);
                }
                DmaOp::Free { port } => {
                    let _ = p.nic[port].free();
                }
                DmaOp::AddBuffer { port, bd } => {
                    let _ = p.nic[port].add_buffer(bd);
                }
                DmaOp::Send { port, bds } => {
                    let mut all = [0u64; SEND_BDS];
                    all[..bds.len().min(SEND_BDS)].copy_from_slice(&bds[..bds.len().min(SEND_BDS)]);
                    let mem = GuestMemory::new(&mut p.ram[port]);
                    if let Ok(Some(frame)) = p.nic[port].gather(&all, &mem) {
                        prop_assert!(frame.len <= 64 * 1024);
                        prop_assert!(frame.pieces().iter().all(|&(gpa, n)| gpa + n <= DMA_RAM));
                        let before = counters.delivered;
                        sent = true;
                        lan::switch(&frame, port, &mut p, &mut counters);
                        delivered |= counters.delivered > before;
                    }
                }
                DmaOp::Signal { port, mode } => {
                    let _ = p.nic[port].signal(mode);
                }
                DmaOp::ChangeMac { port, mac } => p.nic[port].change_mac(mac),
                DmaOp::GuestWrite { port, gpa, bytes } => {
                    let end = (gpa as usize + bytes.len()).min(DMA_RAM as usize);
                    let n = end - gpa as usize;
                    p.ram[port][gpa as usize..end].copy_from_slice(&bytes[..n]);
                    shadow[port][gpa as usize..end].copy_from_slice(&bytes[..n]);
                }
            }
            // Whatever the device wrote lies in a page it was allowed to
            // write, in its own VM's memory (only registration and a
            // frame received write guest memory).
            if !matches!(
                op,
                DmaOp::Register { .. } | DmaOp::Open { .. } | DmaOp::Send { .. }
            ) {
                prop_assert!(p.ram == shadow, "the device wrote during {op:?}");
                continue;
            }
            for i in 0..2 {
                let pages = p.ram[i]
                    .chunks(PAGE as usize)
                    .zip(shadow[i].chunks(PAGE as usize));
                for (page, (now, was)) in pages.enumerate() {
                    prop_assert!(
                        now == was || writable[i].contains(&(page as u64)),
                        "port {i}: page {page} written by the device, not mapped writable ({op:?})"
                    );
                }
                shadow[i].copy_from_slice(&p.ram[i]);
            }
        }
        Ok(if delivered {
            "a frame delivered"
        } else if sent {
            "a frame sent"
        } else if p.nic.iter().any(|n| n.is_open()) {
            "an adapter opened"
        } else {
            "nothing opened"
        })
    });
    reached(&shares, "a frame delivered", 0.01);
}

// ---------------------------------------------------------------------------
// The virtual SCSI adapter: CRQ and SRP input from a guest
// ---------------------------------------------------------------------------

use kernel::scsi::{Disk, RamStore};
use kernel::vio::vscsi::{Vscsi, REG};

/// Guest RAM and window of the adapter under fuzzing: the window's pages
/// 0-7 map guest pages 8-15 once `Open` ran (the queue on IOBA page 0,
/// IUs on page 1, data on pages 3-7).
const SCSI_RAM: u64 = 16 * PAGE;
const SCSI_WINDOW: u64 = 8 * PAGE;

/// What a guest may do to its v-scsi adapter and its own memory.
#[derive(Clone, Debug)]
enum ScsiOp {
    /// What ibmvscsi does first: maps IOBA pages 0-7 onto guest pages
    /// 8-15 read-write and registers a one-page queue at IOBA 0.
    Open,
    PutTce {
        ioba: u64,
        tce: u64,
    },
    Register {
        ioba: u64,
        bytes: u64,
    },
    Free,
    Signal {
        mode: u64,
    },
    /// The guest writes an IU (or any bytes) at `gpa`.
    GuestWrite {
        gpa: u64,
        bytes: Vec<u8>,
    },
    /// H_SEND_CRQ of the entry (hi, lo).
    Send {
        hi: u64,
        lo: u64,
    },
    Reset,
}

/// An SRP IU as ibmvscsi builds them, its fields fuzzed: an opcode
/// (mostly SRP_CMD), descriptor formats, a LUN, a CDB (mostly a READ or
/// WRITE of a few blocks near the start), descriptors (mostly in the
/// data pages), an indirect header with a right or wrong total.
fn iu() -> impl Strategy<Value = Vec<u8>> {
    let ioba = prop_oneof![
        6 => (3..8u64, 0..8u64).prop_map(|(p, k)| p * PAGE + k * 512),
        1 => (0..SCSI_WINDOW / PAGE + 2, 0..PAGE).prop_map(|(p, o)| p * PAGE + o),
        1 => any::<u64>(),
    ];
    let len = prop_oneof![
        3 => prop::sample::select(vec![512u32, 1024, 1536, 4096]),
        1 => 0..0x3000u32,
        1 => any::<u32>(),
    ];
    let desc = (ioba, len).prop_map(|(va, len)| {
        let mut d = va.to_be_bytes().to_vec();
        d.extend_from_slice(&[0; 4]);
        d.extend_from_slice(&len.to_be_bytes());
        d
    });
    let opcode = prop_oneof![8 => Just(0x02u8), 1 => Just(0x00), 1 => Just(0x01), 1 => Just(0x03), 1 => any::<u8>()];
    let fmt = prop_oneof![
        4 => prop::sample::select(vec![0x01u8, 0x10, 0x02, 0x20]),
        1 => Just(0u8),
        1 => any::<u8>(),
    ];
    let cdb = prop_oneof![
        4 => (prop::sample::select(vec![0x28u8, 0x2a, 0x88, 0x8a]), 0..130u8, 1..4u8)
            .prop_map(|(op, lba, n)| {
                let mut c = [0u8; 16];
                c[0] = op;
                if op < 0x80 {
                    (c[5], c[8]) = (lba, n);
                } else {
                    (c[9], c[13]) = (lba, n);
                }
                c
            }),
        1 => (prop::sample::select(vec![
            0x00u8, 0x03, 0x12, 0x1a, 0x1b, 0x25, 0x35, 0x5a, 0x91, 0x9e, 0xa0
        ]), any::<[u8; 15]>())
            .prop_map(|(op, rest)| {
                let mut c = [0u8; 16];
                c[0] = op;
                c[1..].copy_from_slice(&rest);
                c
            }),
        1 => any::<[u8; 16]>(),
    ];
    let lun = prop_oneof![
        4 => Just([0x80u8, 0]),
        1 => Just([0x80, 1]),
        1 => Just([0x00, 1]),
        1 => any::<[u8; 2]>()
    ];
    (
        opcode,
        fmt,
        lun,
        cdb,
        vec(desc, 0..4),
        any::<bool>(),
        any::<u32>(),
    )
        .prop_map(|(opcode, fmt, lun, cdb, descs, right_total, total)| {
            let mut iu = vec![0u8; 48];
            iu[0] = opcode;
            iu[5] = fmt;
            iu[20..22].copy_from_slice(&lun);
            iu[32..48].copy_from_slice(&cdb);
            if fmt & 0x22 != 0 {
                // An indirect header: its table inline, right after it
                // (IU IOBA page 1, as ibmvscsi points it).
                let sum: u32 = descs
                    .iter()
                    .map(|d| u32::from_be_bytes(d[12..16].try_into().unwrap()))
                    .fold(0, u32::wrapping_add);
                iu.extend_from_slice(&(PAGE + 68).to_be_bytes());
                iu.extend_from_slice(&[0; 4]);
                iu.extend_from_slice(&(descs.len() as u32 * 16).to_be_bytes());
                iu.extend_from_slice(&(if right_total { sum } else { total }).to_be_bytes());
            }
            for d in descs {
                iu.extend_from_slice(&d);
            }
            iu.resize(256, 0);
            iu
        })
}

fn scsi_op() -> impl Strategy<Value = ScsiOp> {
    let ioba = prop_oneof![
        (0..SCSI_WINDOW / PAGE + 2).prop_map(|p| p * PAGE),
        any::<u64>(),
    ];
    let tce = prop_oneof![
        (0..SCSI_RAM / PAGE + 4, 0..4u64).prop_map(|(p, perm)| (p * PAGE) | perm),
        any::<u64>(),
    ];
    // A CRQ entry: mostly a command naming IU page 1, else anything.
    let entry = prop_oneof![
        6 => (prop_oneof![4 => Just(0x01u8), 1 => Just(0x02)], prop_oneof![4 => Just(256u16), 1 => 0..300u16])
            .prop_map(|(format, len)| {
                ((0x80u64 << 56) | (u64::from(format) << 48) | u64::from(len), PAGE)
            }),
        1 => Just((0xc001u64 << 48, 0)),
        1 => any::<(u64, u64)>(),
    ];
    prop_oneof![
        2 => Just(ScsiOp::Open),
        1 => (ioba.clone(), tce).prop_map(|(ioba, tce)| ScsiOp::PutTce { ioba, tce }),
        1 => (ioba, prop_oneof![Just(PAGE), Just(2 * PAGE), any::<u64>()])
            .prop_map(|(ioba, bytes)| ScsiOp::Register { ioba, bytes }),
        1 => Just(ScsiOp::Free),
        1 => (0..3u64).prop_map(|mode| ScsiOp::Signal { mode }),
        6 => iu().prop_map(|bytes| ScsiOp::GuestWrite { gpa: 9 * PAGE, bytes }),
        1 => (0..SCSI_RAM, vec(any::<u8>(), 1..64))
            .prop_map(|(gpa, bytes)| ScsiOp::GuestWrite { gpa, bytes }),
        8 => entry.prop_map(|(hi, lo)| ScsiOp::Send { hi, lo }),
        1 => Just(ScsiOp::Reset),
    ]
}

#[test]
fn fuzz_crq_and_srp_input_stays_inside_writable_mappings() {
    let shares = run("vscsi", vec(scsi_op(), 1..60), |ops| {
        let disk = |writable| {
            let store = RamStore::new(vec![0x5au8; 64 << 10], writable);
            Disk::new(Box::new(store), "fuzz", 1 << 20)
        };
        let window = TceTable::new(REG, SCSI_WINDOW);
        let mut v = Vscsi::new(window, vec![disk(true), disk(false)], "fuzz", 1);
        let mut ram = vec![0u8; SCSI_RAM as usize];
        let mut shadow = ram.clone();
        for op in &ops {
            let writable = writable_pages(&mut v);
            match op.clone() {
                ScsiOp::Open => {
                    for i in 0..8 {
                        let tce = ((8 + i) * PAGE) | TCE_READ | TCE_WRITE;
                        prop_assert!(v.tce().unwrap().put(i * PAGE, tce, SCSI_RAM).is_ok());
                    }
                    let _ = v.register(0, PAGE);
                }
                ScsiOp::PutTce { ioba, tce } => {
                    let _ = v.tce().unwrap().put(ioba, tce, SCSI_RAM);
                }
                ScsiOp::Register { ioba, bytes } => {
                    let _ = v.register(ioba, bytes);
                }
                ScsiOp::Free => v.free(),
                ScsiOp::Signal { mode } => {
                    let _ = v.set_signal(mode);
                }
                ScsiOp::GuestWrite { gpa, bytes } => {
                    let end = (gpa as usize + bytes.len()).min(SCSI_RAM as usize);
                    let n = end - gpa as usize;
                    ram[gpa as usize..end].copy_from_slice(&bytes[..n]);
                    shadow[gpa as usize..end].copy_from_slice(&bytes[..n]);
                }
                ScsiOp::Send { hi, lo } => {
                    let _ = v.send(hi, lo, &mut GuestMemory::new(&mut ram));
                }
                ScsiOp::Reset => v.reset(),
            }
            // Only an answer writes guest memory, and only where the
            // window lets the device write.
            if !matches!(op, ScsiOp::Send { .. }) {
                prop_assert!(ram == shadow, "the device wrote during {op:?}");
                continue;
            }
            let pages = ram.chunks(PAGE as usize).zip(shadow.chunks(PAGE as usize));
            for (page, (now, was)) in pages.enumerate() {
                prop_assert!(
                    now == was || writable.contains(&(page as u64)),
                    "page {page} written by the device, not mapped writable ({op:?})"
                );
            }
            shadow.copy_from_slice(&ram);
        }
        let d = v.disks();
        prop_assert!(d[1].counters.writes == 0, "the read-only disk was written");
        Ok(if d.iter().any(|d| d.counters.writes > 0) {
            "data written to a disk"
        } else if d.iter().any(|d| d.counters.reads > 0) {
            "data read from a disk"
        } else if v.counters.commands > 0 {
            "a command answered"
        } else {
            "no command"
        })
    });
    reached(&shares, "data written to a disk", 0.01);
    reached(&shares, "data read from a disk", 0.02);
}
