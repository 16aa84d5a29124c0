//! Bringing up every hardware thread and the POWER8 side of cross-thread
//! calls: XICS IPIs to send, nap to wait.

use alloc::boxed::Box;
use alloc::vec::Vec;
use kernel::devtree::{IcpWindow, Topology};
use kernel::smp::{CpuState, Machine, Smp, WakeReason};
use log::{info, warn};
use ppc64::paca::Paca;
use ppc64::xics::{self, Icp};
use ppc64::{cpu, opal, power, vectors};

/// The POWER8 machine: IPIs through the target's ICP, waits in nap.
pub struct Power8;

impl Machine for Power8 {
    fn send_ipi(&self, to: &CpuState) {
        // SAFETY: icp_base comes from the device tree's ICP window for `to`.
        unsafe { Icp::new(to.icp_base) }.raise_ipi();
    }

    fn ipi_pending(&self, to: &CpuState) -> bool {
        // SAFETY: as above; MFRR stays set until the target takes the IPI.
        unsafe { Icp::new(to.icp_base) }.mfrr() != xics::MFRR_NONE
    }

    fn idle(&self, me: &CpuState, deadline: Option<u64>) {
        crate::stacks::check_thread_stack();
        let mut lpcr = cpu::mfspr::<{ ppc64::spr::LPCR }>() | ppc64::spr::LPCR_PECE_EXTERNAL;
        match deadline {
            Some(d) => {
                let now = cpu::mftb();
                if now >= d {
                    return;
                }
                cpu::set_dec(d - now);
                lpcr |= ppc64::spr::LPCR_PECE_DEC;
            }
            None => lpcr &= !ppc64::spr::LPCR_PECE_DEC,
        }
        set_lpcr_if_changed(lpcr);
        let srr1 = power::nap();
        let why = WakeReason::from_srr1(srr1);
        me.stats.count_wake(why);
        match why {
            WakeReason::External => acknowledge(me),
            // Re-arm far away so the expired decrementer stops pending.
            WakeReason::Decrementer => cpu::set_dec(ppc64::spr::DEC_MAX),
            _ => {}
        }
    }

    fn now(&self) -> u64 {
        cpu::mftb()
    }
}

fn set_lpcr_if_changed(v: u64) {
    if cpu::mfspr::<{ ppc64::spr::LPCR }>() != v {
        // SAFETY: only the power-saving exit enables differ from the value
        // this thread already runs with.
        unsafe { cpu::set_lpcr(v) };
    }
}

/// An external interrupt arrived while a guest ran (exit 0x500): take it
/// and run any call it brought.
pub fn external_exit() {
    let me = me();
    acknowledge(me);
    smp().service(me);
}

/// Takes the pending external interrupt: an IPI is cleared (MFRR first,
/// then EOI, or the EOI would re-raise it) and counted.
fn acknowledge(me: &CpuState) {
    // SAFETY: this thread's own ICP window from the device tree.
    let icp = unsafe { Icp::new(me.icp_base) };
    let xirr = icp.accept();
    match xirr & 0x00ff_ffff {
        0 => {
            me.stats
                .spurious
                .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        }
        xics::XISR_IPI => {
            icp.set_mfrr(xics::MFRR_NONE);
            icp.eoi(xirr);
            me.stats
                .ipis_received
                .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        }
        other => {
            warn!(target: "xics", "PIR {:#x}: unexpected interrupt source {other:#x}", me.pir);
            icp.eoi(xirr);
            me.stats
                .spurious
                .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        }
    }
}

static SMP: spin::Once<Smp<Power8>> = spin::Once::new();

/// What a secondary thread runs when it finds work in its
/// hypervisor-state block (the scheduler's, given at [`init`]).
static THREAD_WORK: spin::Once<fn(&CpuState, usize)> = spin::Once::new();
/// Index of the boot thread in `smp().cpus`.
static BOOT_ID: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// The boot thread's state.
pub fn boot_cpu() -> &'static CpuState {
    &smp().cpus[BOOT_ID.load(core::sync::atomic::Ordering::Acquire)]
}

/// All hardware threads (after `init`).
pub fn smp() -> &'static Smp<Power8> {
    SMP.get().expect("cpus::init has run")
}

/// The calling thread's state, through its per-thread area.
pub fn me() -> &'static CpuState {
    &smp().cpus[power::this_paca().cpu_id as usize]
}

/// Usable bytes of each secondary thread's stack (a guard zone lies
/// below it, boot/src/stacks.rs).
const STACK_SIZE: usize = 64 * 1024;

/// Creates the per-thread state of every thread, moves the boot thread onto
/// its own, starts every other thread with OPAL_START_CPU and waits until
/// all are online.
pub fn init(topology: &Topology, icps: &[IcpWindow], work: fn(&CpuState, usize)) {
    THREAD_WORK.call_once(|| work);
    let boot_pir = cpu::pir();
    let mut cpus = Vec::new();
    for core in &topology.cores {
        for (t, &pir) in core.pirs.iter().enumerate() {
            match icps.iter().find(|w| w.pir == pir) {
                Some(w) => cpus.push(CpuState::new(cpus.len(), pir, core.index, t, w.base)),
                None => warn!(target: "cpu", "PIR {pir:#x} has no ICP window; not starting it"),
            }
        }
    }
    let smp = SMP.call_once(|| Smp::new(cpus, Power8));
    let Some(boot) = smp.by_pir(boot_pir) else {
        crate::machine::fatal(format_args!(
            "boot thread PIR {boot_pir:#x} is not in the device tree"
        ));
    };
    BOOT_ID.store(boot.id, core::sync::atomic::Ordering::Release);

    for c in &smp.cpus {
        let paca: &'static mut Paca = Box::leak(Box::new(Paca::new()));
        paca.cpu_id = c.id as u64;
        paca.exc_entry = vectors::exc_common_address();
        (paca.exc_stack_zone, paca.exc_stack_top) =
            crate::stacks::new_stack(crate::exceptions::EXC_STACK_SIZE);
        (paca.stack_zone, paca.stack_top) = if c.id == boot.id {
            // The boot thread stays on the stack it runs on.
            crate::entry::boot_stack()
        } else {
            crate::stacks::new_stack(STACK_SIZE)
        };
        power::register_paca(c.pir, paca);
        if c.id == boot.id {
            // SAFETY: the new area is complete and never freed; from now
            // on exceptions on this thread save into it.
            unsafe { power::set_this_thread_paca(paca) };
        }
    }
    thread_setup(boot);

    let entry = power::secondary_entry();
    let mut started = 0;
    for c in smp.cpus.iter().filter(|c| c.id != boot.id) {
        // SAFETY: starts a thread that is waiting in OPAL at our entry
        // point, whose per-thread area was registered above.
        let rc = unsafe { opal::call(opal::OPAL_START_CPU, &[c.pir as u64, entry]) };
        if rc == opal::OPAL_SUCCESS {
            started += 1;
        } else {
            warn!(target: "cpu", "OPAL_START_CPU(PIR {:#x}) failed: rc={rc}", c.pir);
        }
    }
    let all = || smp.cpus.iter().filter(|c| c.is_online()).count() == started + 1;
    if !smp.wait_until(boot, Some(kernel::time::ms_to_ticks(5000)), all) {
        warn!(target: "cpu", "only {} of {} threads came online", smp.cpus.iter().filter(|c| c.is_online()).count(), smp.cpus.len());
    }
    // Barrier: one call to every other thread. Each replies only from its
    // idle loop, after its "online" IPI, so afterwards no bring-up IPI is
    // still in flight and the counters describe a quiet machine.
    let mut answered = 0;
    for c in smp.cpus.iter().filter(|c| c.id != boot.id && c.is_online()) {
        match smp.call(boot, c.pir, |x| x, c.pir as u64, true) {
            Ok(Some(v)) if v == c.pir as u64 => answered += 1,
            other => warn!(target: "cpu", "PIR {:#x} did not answer a call: {other:?}", c.pir),
        }
    }
    info!(
        target: "cpu",
        "{} of {} threads online, {answered} answered a call (boot thread PIR {:#x})",
        smp.cpus.iter().filter(|c| c.is_online()).count(),
        smp.cpus.len(),
        boot.pir
    );
}

/// What every thread does to itself before it can take IPIs.
fn thread_setup(me: &CpuState) {
    cpu::enable_machine_check();
    // Power-saving exits: external interrupts (IPIs); the decrementer is
    // enabled per wait. External interrupts go to the hypervisor.
    let lpcr = (cpu::mfspr::<{ ppc64::spr::LPCR }>() | ppc64::spr::LPCR_PECE_EXTERNAL)
        & !(ppc64::spr::LPCR_PECE_DEC | ppc64::spr::LPCR_LPES0);
    // SAFETY: sets only the exit enables and LPES0 (no guest runs yet).
    unsafe { cpu::set_lpcr(lpcr) };
    cpu::set_dec(ppc64::spr::DEC_MAX);
    // SAFETY: this thread's own ICP window from the device tree.
    let icp = unsafe { Icp::new(me.icp_base) };
    icp.set_mfrr(xics::MFRR_NONE);
    icp.set_cppr(xics::CPPR_ALL);
    me.set_online();
}

/// First Rust code of a secondary thread (from `__secondary_start`).
#[unsafe(no_mangle)]
pub extern "C" fn hv_secondary_main(paca: &'static mut Paca) -> ! {
    let smp = smp();
    let me = &smp.cpus[paca.cpu_id as usize];
    thread_setup(me);
    info!(target: "cpu", "PIR {:#x} online: core {} thread {}", me.pir, me.core, me.thread);
    // Tell the boot thread (it waits in nap for everyone to come online).
    me.stats
        .ipis_sent
        .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    smp.machine.send_ipi(boot_cpu());
    let work = *THREAD_WORK.get().expect("cpus::init has run");
    smp.idle_loop_with(me, work)
}

/// Waits `us` microseconds in nap (woken by the decrementer).
pub fn delay_us(us: u64) {
    smp().wait_until(me(), Some(kernel::time::us_to_ticks(us)), || false);
}

/// Per-thread counters, one line each (printed at power-off).
pub fn print_counters() {
    let Some(smp) = SMP.get() else { return };
    for c in &smp.cpus {
        let exc = power::paca_of(c.pir).map(|p| p.exceptions).unwrap_or(0);
        info!(
            target: "cpu",
            "PIR {:#x} core {} thread {}: {} exceptions={exc}",
            c.pir,
            c.core,
            c.thread,
            c.stats.snapshot()
        );
    }
}

/// Hardware thread `thread` of physical core `core`, if online.
pub fn thread_at(core: usize, thread: usize) -> Option<&'static CpuState> {
    smp()
        .cpus
        .iter()
        .find(|c| c.core == core && c.thread == thread && c.is_online())
}
