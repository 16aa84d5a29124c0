//! The SMP guest: vcpu 0 reads the cpu nodes of its device tree, starts
//! every other vcpu through RTAS `start-cpu` and checks, with exact
//! counts, what an SMP operating system relies on: an atomic counter
//! shared by every vcpu (lwarx/stwcx.), H_IPI round trips to every vcpu,
//! an H_PROD/H_CEDE ping-pong with no lost wake-up, `msgsndp` doorbells
//! between the threads of a vcore, each vcpu's thread position (TIR)
//! against its device-tree thread, and stop-self followed by a restart.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use guest_common::papr::{H_CEDE, H_CPPR, H_EOI, H_IPI, H_PROD, H_SUCCESS, H_XIRR};
use guest_common::{
    device_tree, hcall, install_vector, mftb, power_off, println, rtas_call, rtas_call_rets,
    rtas_token,
};

/// Most vcpus this guest handles.
const MAX: usize = 16;
const STACK: usize = 64 * 1024;
/// Increments of the shared counter per vcpu.
const ADDS: u64 = 20_000;
const IPI_ROUNDS: u64 = 20;
const PINGS: u64 = 100;
const DOORBELLS: u64 = 20;
/// XICS: the IPI's source number, the least favoured priority.
const XISR_IPI: u64 = 2;
const MFRR_NONE: u64 = 0xff;
/// `msgsndp` message type for a privileged doorbell (RB bits 32:36).
const DBELL_TYPE: u64 = 5 << 27;

#[repr(C, align(16))]
struct Stacks([[u8; STACK]; MAX]);
/// Per vcpu: the lower half is its interrupt stack, the upper half its
/// main stack (vcpu 0 runs on the common runtime's stack).
#[unsafe(no_mangle)]
static mut SMP_STACKS: Stacks = Stacks([[0; STACK]; MAX]);

static ONLINE: [AtomicBool; MAX] = [const { AtomicBool::new(false) }; MAX];
static STARTS: [AtomicU32; MAX] = [const { AtomicU32::new(0) }; MAX];
static IPIS: [AtomicU64; MAX] = [const { AtomicU64::new(0) }; MAX];
static DBELLS: [AtomicU64; MAX] = [const { AtomicU64::new(0) }; MAX];
static DEC_WAKES: [AtomicU64; MAX] = [const { AtomicU64::new(0) }; MAX];
static OTHER_IRQS: AtomicU64 = AtomicU64::new(0);
/// Thread position each vcpu read from TIR (u32::MAX until then).
static TIR: [AtomicU32; MAX] = [const { AtomicU32::new(u32::MAX) }; MAX];
static COUNTER: AtomicU64 = AtomicU64::new(0);
static ADDED: AtomicU32 = AtomicU32::new(0);
/// What the secondaries do next (a phase number), and the ping-pong turn.
static PHASE: AtomicU32 = AtomicU32::new(0);
static TURN: AtomicU32 = AtomicU32::new(0);
static PINGED: AtomicU64 = AtomicU64::new(0);
static PRINT: AtomicBool = AtomicBool::new(false);
static STOP_SELF_TOKEN: AtomicU32 = AtomicU32::new(0);
static PASSED: AtomicU32 = AtomicU32::new(0);
static FAILED: AtomicU32 = AtomicU32::new(0);

const PHASE_ADD: u32 = 1;
const PHASE_WAIT: u32 = 2;
const PHASE_PONG: u32 = 3;
const PHASE_STOP: u32 = 4;
/// Benchmarks: vcpu 1 answers doorbells with a doorbell, IPIs with an
/// IPI, and records when it returns from a cede; vcpu 2 makes null
/// hypercalls while the others stay in the guest.
const PHASE_BENCH: u32 = 5;
const BENCH_TRIALS: usize = 200;
/// Every vcpu busy in the guest (time-sliced vcores: entries timed with
/// every thread runnable).
const PHASE_SPIN: u32 = 6;
/// Timebase when vcpu 1 came back from H_CEDE (H_PROD benchmark).
static WOKE_AT: AtomicU64 = AtomicU64::new(0);
static NULL_TICKS: [AtomicU64; BENCH_TRIALS] = [const { AtomicU64::new(0) }; BENCH_TRIALS];
static NULL_DONE: AtomicBool = AtomicBool::new(false);

// Secondary entry (RTAS start-cpu: real mode, big-endian, r3 = vcpu id):
// the same endian trampoline as the boot entry, then the vcpu's own
// stack. Interrupt entries at 0x500/0x900/0xA00 branch to the stubs
// below, which save the volatile state on the vcpu's interrupt stack
// (SPRG0) and call `smp_irq(vector)`.
global_asm!(
    r#"
    .pushsection .text.smp, "ax", @progbits
    .balign 16
    .global __smp_secondary
    __smp_secondary:
    "#,
    guest_common::endian_fixup_asm!(),
    r#"
        mr 14, 3
        lis 5, SMP_STACKS@ha
        addi 5, 5, SMP_STACKS@l
        addi 6, 14, 1
        sldi 6, 6, 16
        add 1, 5, 6
        li 0, 0
        stdu 0, -112(1)
        lis 2, .TOC.@ha
        addi 2, 2, .TOC.@l
        mr 3, 14
        bl smp_secondary_main
        nop
    1:  b 1b

    .global __smp_irq_500
    __smp_irq_500:
        mtsprg 1, 3
        li 3, 0x500
        b __smp_irq_common
    .global __smp_irq_900
    __smp_irq_900:
        mtsprg 1, 3
        li 3, 0x900
        b __smp_irq_common
    .global __smp_irq_a00
    __smp_irq_a00:
        mtsprg 1, 3
        li 3, 0xa00
        b __smp_irq_common
    __smp_irq_common:
        mtsprg 2, 1
        mfsprg 1, 0
        stdu 1, -320(1)
        std 0, 112(1)
        mfsprg 0, 2
        std 0, 120(1)
        mfsprg 0, 1
        std 0, 136(1)
    "#,
    guest_common::irq_body_asm!("smp_irq"),
    r#"
    .popsection
    "#
);

unsafe extern "C" {
    fn __smp_secondary();
    fn __smp_irq_500();
    fn __smp_irq_900();
    fn __smp_irq_a00();
}

/// 512 MHz timebase: ticks in `ms` milliseconds.
const fn ms(ms: u64) -> u64 {
    ms * 512_000
}

fn my_id() -> usize {
    let id: u64;
    // SAFETY: SPRG3 holds this vcpu's id (set in `vcpu_setup`).
    unsafe { asm!("mfsprg {0}, 3", out(reg) id) };
    id as usize
}

fn tir() -> u32 {
    let t: u64;
    // SAFETY: TIR (SPR 446) is readable in supervisor state.
    unsafe { asm!("mfspr {0}, 446", out(reg) t) };
    t as u32
}

/// Per-vcpu set-up: its id in SPRG3, its interrupt stack in SPRG0.
fn vcpu_setup(id: usize) {
    // SAFETY: the interrupt stack is this vcpu's own slot of SMP_STACKS.
    let irq_top = unsafe { (&raw const SMP_STACKS.0[id]) as u64 } + (STACK / 2) as u64 - 16;
    // SAFETY: SPRG0/SPRG3 are the guest's own.
    unsafe { asm!("mtsprg 0, {0}", "mtsprg 3, {1}", in(reg) irq_top, in(reg) id as u64) };
    TIR[id].store(tir(), Ordering::Release);
    // Accept every priority (a new ICP's CPPR is 0: nothing is presented).
    hcall(H_CPPR, [0xff, 0, 0, 0, 0, 0]);
}

fn set_ee(on: bool) {
    let mut msr: u64;
    // SAFETY: toggles only MSR[EE] of the guest's own MSR.
    unsafe {
        asm!("mfmsr {0}", out(reg) msr);
        if on {
            msr |= 0x8000;
        } else {
            msr &= !0x8000;
        }
        asm!("mtmsrd {0}, 1", in(reg) msr);
    }
}

fn set_dec(v: u64) {
    // SAFETY: the guest's own decrementer.
    unsafe { asm!("mtdec {0}", in(reg) v) };
}

/// H_CEDE with interrupts off, as an OS does; it returns with MSR[EE]
/// set, so whatever woke the vcpu is taken now; then EE goes off again.
/// The decrementer is armed first: a wake-up that never comes shows as a
/// decrementer wake.
fn cede() {
    set_ee(false);
    set_dec(ms(2000));
    hcall(H_CEDE, [0; 6]);
    set_ee(false);
    set_dec(0x7fff_ffff);
}

#[unsafe(no_mangle)]
extern "C" fn smp_irq(vector: u64) {
    let me = my_id();
    match vector {
        0x500 => loop {
            let (rc, r) = hcall(H_XIRR, [0; 6]);
            let xirr = r[0];
            if rc != H_SUCCESS || xirr & 0xff_ffff == 0 {
                break;
            }
            if xirr & 0xff_ffff == XISR_IPI {
                hcall(H_IPI, [me as u64, MFRR_NONE, 0, 0, 0, 0]);
                IPIS[me].fetch_add(1, Ordering::AcqRel);
                if me == 1 && PHASE.load(Ordering::Acquire) == PHASE_BENCH {
                    hcall(H_IPI, [0, 0, 0, 0, 0, 0]);
                }
            } else {
                OTHER_IRQS.fetch_add(1, Ordering::Relaxed);
            }
            hcall(H_EOI, [xirr, 0, 0, 0, 0, 0]);
        },
        0x900 => {
            set_dec(0x7fff_ffff);
            DEC_WAKES[me].fetch_add(1, Ordering::AcqRel);
        }
        0xa00 => {
            DBELLS[me].fetch_add(1, Ordering::AcqRel);
            if me == 1 && PHASE.load(Ordering::Acquire) == PHASE_BENCH {
                send_doorbell(0);
            }
        }
        _ => {
            OTHER_IRQS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One line at a time from any vcpu.
macro_rules! say {
    ($($a:tt)*) => {{
        while PRINT
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        println!($($a)*);
        PRINT.store(false, Ordering::Release);
    }};
}

fn check(what: &str, ok: bool) {
    if ok {
        PASSED.fetch_add(1, Ordering::AcqRel);
    } else {
        FAILED.fetch_add(1, Ordering::AcqRel);
        say!("smp: FAIL {what}");
    }
}

/// Waits (interrupts off, spinning) until `cond` or `timeout` ticks.
fn wait_for(timeout: u64, cond: impl Fn() -> bool) -> bool {
    let end = mftb() + timeout;
    while !cond() {
        if mftb() > end {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

fn send_doorbell(thread: u32) {
    let rb = DBELL_TYPE | u64::from(thread);
    // SAFETY: `msgsndp rb` (not known to the assembler): a privileged
    // doorbell to a thread of this vcore.
    unsafe { asm!("mr 4, {0}", ".long 0x7c00211c", in(reg) rb, out("r4") _) };
}

/// Where each vcpu is: (vcore node index, thread in the vcore), from the
/// cpu nodes' `ibm,ppc-interrupt-server#s`.
struct Cpus {
    n: usize,
    place: [(u32, u32); MAX],
    threads: u32,
}

fn cpus(fdt: &guest_common::fdt::Fdt<'_>) -> Cpus {
    let mut c = Cpus {
        n: 0,
        place: [(u32::MAX, u32::MAX); MAX],
        threads: 0,
    };
    let Some(node) = fdt.find_node("/cpus") else {
        return c;
    };
    for (vcore, cpu) in node
        .children()
        .filter(|n| n.property("device_type").and_then(|p| p.as_str()) == Some("cpu"))
        .enumerate()
    {
        let Some(p) = cpu.property("ibm,ppc-interrupt-server#s") else {
            continue;
        };
        let ids = p.value.chunks_exact(4);
        c.threads = ids.len() as u32;
        for (t, w) in ids.enumerate() {
            let id = u32::from_be_bytes(w.try_into().unwrap_or([0xff; 4])) as usize;
            if id < MAX {
                c.place[id] = (vcore as u32, t as u32);
                c.n = c.n.max(id + 1);
            }
        }
    }
    c
}

fn report(what: &str, v: &mut [u64]) {
    v.sort_unstable();
    say!(
        "bench: {what}: median={} min={} max={} ticks ({} trials)",
        v[v.len() / 2],
        v[0],
        v[v.len() - 1],
        v.len()
    );
}

/// Guest-side timings between vcpus (meant for QEMU -icount): vcpu 1 is
/// a sibling thread of vcpu 0 when the vcores have more than one thread.
fn bench(c: &Cpus) {
    PHASE.store(PHASE_BENCH, Ordering::Release);
    let mut t = [0u64; BENCH_TRIALS];
    if c.place[1].0 == c.place[0].0 {
        // msgsndp to thread 1, whose handler answers with msgsndp.
        // Both wait in H_CEDE (under -icount a spinning waiter would be
        // counted too).
        for x in t.iter_mut() {
            let before = DBELLS[0].load(Ordering::Acquire);
            let t0 = mftb();
            send_doorbell(c.place[1].1);
            while DBELLS[0].load(Ordering::Acquire) == before {
                cede();
            }
            *x = mftb() - t0;
        }
        report("msgsndp round trip, both threads in H_CEDE", &mut t);
    }
    // H_IPI to vcpu 1 (in H_CEDE), whose handler answers with H_IPI.
    for x in t.iter_mut() {
        let before = IPIS[0].load(Ordering::Acquire);
        let t0 = mftb();
        hcall(H_IPI, [1, 0, 0, 0, 0, 0]);
        while IPIS[0].load(Ordering::Acquire) == before {
            cede();
        }
        *x = mftb() - t0;
    }
    report("H_IPI round trip, both vcpus in H_CEDE", &mut t);
    // H_PROD to vcpu 1 in H_CEDE until it runs again (it time-stamps its
    // return from H_CEDE and prods back).
    for x in t.iter_mut() {
        WOKE_AT.store(0, Ordering::Release);
        let t0 = mftb();
        hcall(H_PROD, [1, 0, 0, 0, 0, 0]);
        while WOKE_AT.load(Ordering::Acquire) == 0 {
            cede();
        }
        *x = WOKE_AT.load(Ordering::Acquire) - t0;
    }
    report("H_PROD to a ceded vcpu -> it runs", &mut t);
    if c.n > 2 {
        wait_for(ms(20_000), || NULL_DONE.load(Ordering::Acquire));
        for (x, n) in t.iter_mut().zip(NULL_TICKS.iter()) {
            *x = n.load(Ordering::Acquire);
        }
        report("null hypercall on vcpu 2, siblings in the guest", &mut t);
    }
}

/// Survives a reboot: guest memory outside the image is kept.
const BOOT_MARK: *mut u64 = 0x0200_0000 as *mut u64;
const MARK: u64 = 0x5eb0_07ed_5eb0_07ed;

/// `reboot` in bootargs: the start-up checks ran with every vcpu started
/// (the first of them: every vcpu but 0 starts stopped); the first boot
/// then reboots with `system-reboot`, and the second, having passed the
/// same checks again (so the reboot stopped every other vcpu and they
/// all started once more), reports.
fn reboot_check(reboot: u32, fdt: Option<&guest_common::fdt::Fdt<'_>>) -> ! {
    // SAFETY: guest RAM above the image, used only for this mark.
    let second = unsafe { core::ptr::read_volatile(BOOT_MARK) } == MARK;
    let (p, fl) = (
        PASSED.load(Ordering::Acquire),
        FAILED.load(Ordering::Acquire),
    );
    if !second {
        say!("smp: reboot: {p} checks passed with every vcpu started, rebooting");
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(BOOT_MARK, MARK) };
        rtas_call(reboot, &[], 1);
        say!("smp: FAIL system-reboot returned");
        power_off(fdt)
    }
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(BOOT_MARK, 0) };
    if fl == 0 {
        say!("smp: reboot: all {p} checks passed again after the reboot");
    } else {
        say!(
            "smp: reboot: {fl} of {} checks failed after the reboot",
            p + fl
        );
    }
    power_off(fdt)
}

/// `spin` in bootargs: every vcpu busy for 200 ms, so that vcores sharing
/// a core are time-sliced with every thread runnable; the hypervisor
/// times their entries and exits (its stop report).
fn spin(c: &Cpus) {
    PHASE.store(PHASE_SPIN, Ordering::Release);
    for i in 1..c.n {
        hcall(H_PROD, [i as u64, 0, 0, 0, 0, 0]);
    }
    let end = mftb() + ms(200);
    while mftb() < end {
        core::hint::spin_loop();
    }
    PHASE.store(PHASE_WAIT, Ordering::Release);
}

#[unsafe(no_mangle)]
pub extern "C" fn smp_secondary_main(id: u64) -> ! {
    let id = id as usize;
    vcpu_setup(id);
    STARTS[id].fetch_add(1, Ordering::AcqRel);
    ONLINE[id].store(true, Ordering::Release);
    let mut done_add = false;
    loop {
        match PHASE.load(Ordering::Acquire) {
            PHASE_ADD if !done_add => {
                for _ in 0..ADDS {
                    COUNTER.fetch_add(1, Ordering::AcqRel);
                }
                done_add = true;
                ADDED.fetch_add(1, Ordering::AcqRel);
            }
            PHASE_PONG if id == 1 => {
                // The ping-pong partner of vcpu 0: wait for our turn in
                // H_CEDE, answer with H_PROD.
                while PINGED.load(Ordering::Acquire) < PINGS {
                    while TURN.load(Ordering::Acquire) != 1 {
                        if PHASE.load(Ordering::Acquire) != PHASE_PONG {
                            break;
                        }
                        cede();
                    }
                    PINGED.fetch_add(1, Ordering::AcqRel);
                    TURN.store(0, Ordering::Release);
                    hcall(H_PROD, [0, 0, 0, 0, 0, 0]);
                }
                while PHASE.load(Ordering::Acquire) == PHASE_PONG {
                    cede();
                }
            }
            PHASE_STOP if STOP_SELF_TOKEN.load(Ordering::Acquire) != 0 && id == last_vcpu() => {
                ONLINE[id].store(false, Ordering::Release);
                let t = STOP_SELF_TOKEN.load(Ordering::Acquire);
                rtas_call(t, &[], 1);
                say!("smp: FAIL stop-self returned on vcpu {id}");
                loop {
                    cede();
                }
            }
            PHASE_BENCH if id == 2 && !NULL_DONE.load(Ordering::Acquire) => {
                for t in NULL_TICKS.iter() {
                    let t0 = mftb();
                    hcall(0x7f00, [0; 6]);
                    t.store(mftb() - t0, Ordering::Relaxed);
                }
                NULL_DONE.store(true, Ordering::Release);
            }
            PHASE_BENCH if id == 1 => {
                // Answers arrive in the interrupt handlers; a return from
                // H_CEDE is time-stamped and answered for the H_PROD
                // benchmark.
                cede();
                if WOKE_AT.load(Ordering::Acquire) == 0 {
                    WOKE_AT.store(mftb(), Ordering::Release);
                    hcall(H_PROD, [0, 0, 0, 0, 0, 0]);
                }
            }
            PHASE_SPIN => {
                while PHASE.load(Ordering::Acquire) == PHASE_SPIN {
                    core::hint::spin_loop();
                }
            }
            // Waiting for IPIs and doorbells: sleep in H_CEDE.
            _ => cede(),
        }
    }
}

static LAST: AtomicU32 = AtomicU32::new(0);
fn last_vcpu() -> usize {
    LAST.load(Ordering::Acquire) as usize
}

#[unsafe(no_mangle)]
pub extern "C" fn guest_main(fdt_addr: u64) -> ! {
    let fdt = device_tree(fdt_addr);
    let Some(f) = fdt.as_ref() else {
        println!("smp: FAIL no device tree");
        power_off(None)
    };
    guest_common::install_trap_handlers();
    install_vector(0x500, __smp_irq_500 as *const () as u64);
    install_vector(0x900, __smp_irq_900 as *const () as u64);
    install_vector(0xa00, __smp_irq_a00 as *const () as u64);
    vcpu_setup(0);
    let c = cpus(f);
    let n = c.n;
    say!(
        "smp: {} vcpus in {} vcores of {} threads",
        n,
        (n as u32).checked_div(c.threads).unwrap_or(0),
        c.threads
    );
    if !(2..=MAX).contains(&n) {
        println!("smp: FAIL need 2..={MAX} vcpus, the device tree has {n}");
        power_off(fdt.as_ref())
    }
    LAST.store(n as u32 - 1, Ordering::Release);
    let token = |name| rtas_token(f, name).unwrap_or(0);
    let (query, start, stop) = (
        token("query-cpu-stopped-state"),
        token("start-cpu"),
        token("stop-self"),
    );
    STOP_SELF_TOKEN.store(0, Ordering::Release);

    // 1. Stopped states before start-up.
    let q = |id: u32| {
        let mut r = [0; 2];
        rtas_call_rets(query, &[id], 2, &mut r);
        (r[0], r[1])
    };
    check(
        "query-cpu-stopped-state of vcpu 0 is running (2)",
        q(0) == (0, 2),
    );
    check(
        "every other vcpu starts stopped (0)",
        (1..n as u32).all(|i| q(i) == (0, 0)),
    );
    check(
        "query of an unknown vcpu is a parameter error",
        q(n as u32).0 == -3,
    );

    // 2. Start every vcpu.
    let entry = __smp_secondary as *const () as u32;
    let ok = (1..n as u32).all(|i| rtas_call(start, &[i, entry, i], 1) == 0);
    check("start-cpu starts every vcpu", ok);
    let online = wait_for(ms(5000), || {
        (1..n).all(|i| ONLINE[i].load(Ordering::Acquire))
    });
    check("every vcpu came online", online);
    check(
        "start-cpu of a running vcpu is a hardware error (-1)",
        rtas_call(start, &[1, entry, 1], 1) == -1,
    );
    check(
        "start-cpu of an unknown vcpu is a parameter error (-3)",
        rtas_call(start, &[n as u32, entry, 0], 1) == -3,
    );
    check(
        "every vcpu's TIR is its device-tree thread",
        (0..n).all(|i| TIR[i].load(Ordering::Acquire) == c.place[i].1),
    );

    let arg = |w: &str| {
        f.chosen()
            .bootargs()
            .is_some_and(|a| a.split_whitespace().any(|x| x == w))
    };
    if arg("bench") {
        bench(&c);
        power_off(fdt.as_ref())
    }
    if arg("spin") {
        spin(&c);
        power_off(fdt.as_ref())
    }
    if arg("reboot") {
        reboot_check(token("system-reboot"), fdt.as_ref());
    }

    // 3. One counter, every vcpu, lwarx/stwcx.
    PHASE.store(PHASE_ADD, Ordering::Release);
    for _ in 0..ADDS {
        COUNTER.fetch_add(1, Ordering::AcqRel);
    }
    let added = wait_for(ms(20_000), || {
        ADDED.load(Ordering::Acquire) as usize == n - 1
    });
    let total = COUNTER.load(Ordering::Acquire);
    check("every vcpu finished its additions", added);
    check("the shared counter is exact", total == ADDS * n as u64);
    say!("smp: counter {total} from {n} vcpus");
    PHASE.store(PHASE_WAIT, Ordering::Release);

    // 4. H_IPI round trips: each woken from H_CEDE, counted once each.
    let mut ipi_ok = true;
    for round in 1..=IPI_ROUNDS {
        for (i, got) in IPIS.iter().enumerate().take(n).skip(1) {
            let (rc, _) = hcall(H_IPI, [i as u64, 0, 0, 0, 0, 0]);
            ipi_ok &= rc == H_SUCCESS;
            ipi_ok &= wait_for(ms(2000), || got.load(Ordering::Acquire) >= round);
        }
    }
    check("H_IPI to every vcpu answered", ipi_ok);
    check(
        "every vcpu took exactly one interrupt per H_IPI",
        (1..n).all(|i| IPIS[i].load(Ordering::Acquire) == IPI_ROUNDS),
    );
    let (rc, _) = hcall(H_IPI, [n as u64, 0, 0, 0, 0, 0]);
    check(
        "H_IPI to an unknown vcpu is H_PARAMETER",
        rc == guest_common::papr::H_PARAMETER,
    );

    // 5. msgsndp doorbells to the other threads of this vcore.
    let siblings: usize = (1..n).filter(|&i| c.place[i].0 == c.place[0].0).count();
    if siblings > 0 {
        let mut db_ok = true;
        for round in 1..=DOORBELLS {
            for i in (1..n).filter(|&i| c.place[i].0 == c.place[0].0) {
                send_doorbell(c.place[i].1);
                db_ok &= wait_for(ms(2000), || DBELLS[i].load(Ordering::Acquire) >= round);
            }
        }
        check("msgsndp reached every sibling thread", db_ok);
        check(
            "every sibling took exactly one doorbell per msgsndp",
            (1..n)
                .filter(|&i| c.place[i].0 == c.place[0].0)
                .all(|i| DBELLS[i].load(Ordering::Acquire) == DOORBELLS),
        );
        say!(
            "smp: {} doorbells to {siblings} sibling threads",
            DOORBELLS * siblings as u64
        );
    }

    // 6. H_PROD/H_CEDE ping-pong with vcpu 1.
    let dec_before = DEC_WAKES[0].load(Ordering::Acquire) + DEC_WAKES[1].load(Ordering::Acquire);
    TURN.store(0, Ordering::Release);
    PHASE.store(PHASE_PONG, Ordering::Release);
    hcall(H_PROD, [1, 0, 0, 0, 0, 0]);
    for k in 0..PINGS {
        TURN.store(1, Ordering::Release);
        hcall(H_PROD, [1, 0, 0, 0, 0, 0]);
        let end = mftb() + ms(5000);
        while PINGED.load(Ordering::Acquire) <= k && mftb() < end {
            cede();
        }
    }
    let pinged = PINGED.load(Ordering::Acquire);
    let lost =
        DEC_WAKES[0].load(Ordering::Acquire) + DEC_WAKES[1].load(Ordering::Acquire) - dec_before;
    check("the H_PROD/H_CEDE ping-pong completed", pinged == PINGS);
    check("no wake-up was lost (no decrementer wake)", lost == 0);
    say!("smp: {pinged} H_PROD/H_CEDE round trips, {lost} lost wake-ups");
    PHASE.store(PHASE_WAIT, Ordering::Release);
    for i in 1..n {
        hcall(H_PROD, [i as u64, 0, 0, 0, 0, 0]);
    }

    // 7. stop-self of the last vcpu, then start it again.
    let last = n - 1;
    STOP_SELF_TOKEN.store(stop, Ordering::Release);
    PHASE.store(PHASE_STOP, Ordering::Release);
    hcall(H_PROD, [last as u64, 0, 0, 0, 0, 0]);
    let stopped = wait_for(ms(5000), || q(last as u32) == (0, 0));
    check("stop-self stops the vcpu (query says 0)", stopped);
    PHASE.store(PHASE_WAIT, Ordering::Release);
    STOP_SELF_TOKEN.store(0, Ordering::Release);
    let restarted = rtas_call(start, &[last as u32, entry, last as u32], 1) == 0
        && wait_for(ms(5000), || STARTS[last].load(Ordering::Acquire) == 2);
    check("a stopped vcpu starts again", restarted);
    check(
        "no unexpected interrupt",
        OTHER_IRQS.load(Ordering::Acquire) == 0,
    );

    let (p, fl) = (
        PASSED.load(Ordering::Acquire),
        FAILED.load(Ordering::Acquire),
    );
    if fl == 0 {
        say!("smp: all {p} checks passed");
    } else {
        say!("smp: {fl} of {} checks failed", p + fl);
    }
    power_off(fdt.as_ref())
}
