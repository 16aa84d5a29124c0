//! The partition services of the full hypercall path and RTAS: what a
//! guest's `sc 1` does once the run loop has it (the HPT calls excepted:
//! they run on the fast path, [`super::hpt`]). One exhaustive `match` on
//! [`Hcall`], typed errors that become PAPR codes in one place, and
//! every RTAS service's behaviour with its argument shape checked.
//!
//! The services run under the VM's lock on the calling vcpu's thread.
//! What they need from the machine (waking a vcpu, the clock, guest
//! memory, the console, the HPT fast path) comes through [`Env`], which
//! the firmware implements once and host tests fake; what the run loop
//! must do next is the returned [`Action`].

use super::rtas::{self, Service};
use super::table::{self, Hcall, HptCall};
use crate::cpuchar::Characteristics;
use crate::deliver::InterruptMode;
use crate::fwnmi::Fwnmi;
use crate::gmem::GuestMemory;
use crate::mode::{self, ModeChange};
use crate::vcore::{Cede, CedeState, Layout};
use crate::vio::{Effect, VioBus};
use crate::vpa::Vpa;
use crate::xics::{Kick, Xics, XicsError};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use papr_abi::*;
use ppc64::regs::GuestRegs;
use ppc64::spr;

/// What the services ask of the machine.
pub trait Env {
    /// Wakes the thread running vcpu `id`, wherever it is (its wake state
    /// was changed first).
    fn kick(&mut self, id: u32);
    /// The timebase now.
    fn timebase(&self) -> u64;
    /// Seconds since the epoch by the host's clock, if it can be read.
    fn host_epoch(&self) -> Option<i64>;
    /// The guest's RAM.
    fn mem(&self) -> GuestMemory<'_>;
    /// Makes the instruction cache coherent with guest page `gpa`.
    fn flush_icache(&mut self, gpa: u64, len: u64);
    /// What H_GET_CPU_CHARACTERISTICS answers.
    fn cpu_characteristics(&self) -> Characteristics;
    /// Whether vcore `index` waits for a physical core.
    fn vcore_waiting(&self, index: u32) -> bool;
    /// The guest's interrupt mode changed (H_SET_MODE).
    fn interrupt_mode(&mut self, mode: InterruptMode);
    /// Guest console output (the vty, RTAS display-character).
    fn console_write(&mut self, bytes: &[u8]);
    /// Up to 16 typed bytes for the vty: (count, bytes 0-7, bytes 8-15).
    fn console_read(&mut self) -> (u64, u64, u64);
    /// Typed input waits (the vty's interrupt line is high).
    fn console_has_input(&self) -> bool;
    /// The guest's last console line (its unfinished one ended first).
    fn console_last_line(&mut self) -> String;
    /// A frame the VM's network device at `unit` sent (its bytes in the
    /// VM's memory), for its virtual LAN (no device's lock is held).
    fn transmit(&mut self, unit: u32, frame: &crate::vio::lan::Frame);
    /// An HPT call that came by the full path: the fast path's handler
    /// on the caller's registers (its results written); its return code.
    fn hpt(&mut self, op: HptCall, gpr: &mut [u64; 32]) -> i64;
}

/// How a VM ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Crashed(String),
    /// Stopped from the console (Ctrl-] x).
    Stopped,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => write!(f, "result=ok"),
            Outcome::Crashed(why) => write!(f, "result=crashed reason=\"{why}\""),
            Outcome::Stopped => write!(f, "result=stopped reason=\"Ctrl-] x on the console\""),
        }
    }
}

/// What the run loop does after a hypercall or an exit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Resume,
    Cede,
    /// H_CONFER to a vcpu whose vcore waits for a core: this vcore gives
    /// its core up now if a vcore waits (its slice ends early).
    Yield,
    /// The vcpu stopped itself (`stop-self`).
    Stopped,
    Reboot,
    Stop(Outcome),
}

/// A hypercall's failure: every error code PAPR and Linux's hvcall.h
/// define that a call here answers (`papr_abi`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HError {
    Hardware,
    /// H_SEND_CRQ with no queue registered.
    Closed,
    /// H_SEND_LOGICAL_LAN on a closed port.
    Dropped,
    Function,
    Privilege,
    Parameter,
    PtegFull,
    NotFound,
    Resource,
    P2,
    P3,
    P4,
    UnsupportedFlag,
}

impl HError {
    const ALL: [HError; 13] = [
        HError::Hardware,
        HError::Closed,
        HError::Dropped,
        HError::Function,
        HError::Privilege,
        HError::Parameter,
        HError::PtegFull,
        HError::NotFound,
        HError::Resource,
        HError::P2,
        HError::P3,
        HError::P4,
        HError::UnsupportedFlag,
    ];

    /// The code r3 carries.
    pub const fn code(self) -> i64 {
        match self {
            HError::Hardware => H_HARDWARE,
            HError::Closed => H_CLOSED,
            HError::Dropped => H_DROPPED,
            HError::Function => H_FUNCTION,
            HError::Privilege => H_PRIVILEGE,
            HError::Parameter => H_PARAMETER,
            HError::PtegFull => H_PTEG_FULL,
            HError::NotFound => H_NOT_FOUND,
            HError::Resource => H_RESOURCE,
            HError::P2 => H_P2,
            HError::P3 => H_P3,
            HError::P4 => H_P4,
            HError::UnsupportedFlag => H_UNSUPPORTED_FLAG,
        }
    }

    /// The error a lower module's code stands for (the HPT calls,
    /// crate::mode and crate::vpa answer PAPR codes): `Ok` for
    /// H_SUCCESS; a code not listed (none is) would be a hardware error.
    pub fn check(code: i64) -> Result<(), HError> {
        if code == H_SUCCESS {
            return Ok(());
        }
        Err(Self::ALL
            .into_iter()
            .find(|e| e.code() == code)
            .unwrap_or(HError::Hardware))
    }

    /// The error of a failed lower call's code.
    pub fn of(code: i64) -> HError {
        Self::check(code).err().unwrap_or(HError::Hardware)
    }
}

/// A handler's answer: r3 is written from it in one place
/// ([`Services::hcall`]); results in r4.. are the handler's to write.
type HResult = Result<Action, HError>;

/// A vcpu's state that other vcpus change while it may run elsewhere
/// (each word its own; `start` and `vpa` have their own locks, taken
/// after the VM's).
#[derive(Default)]
pub struct VcpuShared {
    /// H_PROD / H_CEDE handshake (a prod before the cede is kept).
    pub cede: CedeState,
    /// Stopped (never started, or `stop-self`): its thread naps in the
    /// vcore until RTAS `start-cpu`.
    pub stopped: AtomicBool,
    /// `start-cpu`'s (entry, r3), applied by the thread that runs the
    /// vcpu next; the lock also orders start-cpu against stop-self.
    pub start: spin::Mutex<Option<(u64, u64)>>,
    /// H_REGISTER_VPA registrations (any vcpu may register for another).
    pub vpa: spin::Mutex<Vpa>,
    /// Timebase of the first interrupt or prod sent to the vcpu since it
    /// last ceded, 0 if none (how late a ceded vcpu woke: crate::dispatch).
    pub kicked: AtomicU64,
    /// Its ICP presents an interrupt: a copy of [`Services::xics`] made
    /// under the VM's lock by every change ([`Services::sync_presented`]),
    /// before the vcpu is kicked, so its thread checks for interrupts
    /// without the lock (a stale `false` is followed by the kick's IPI, a
    /// stale `true` costs a look under the lock).
    pub presented: AtomicBool,
}

/// The calling vcpu.
pub struct Caller<'a> {
    pub id: u32,
    pub regs: &'a mut GuestRegs,
}

/// Keys of RTAS services in the hypercall counts' report.
pub const RTAS_COUNT_BASE: u64 = 1 << 32;

/// What a VM's hypercalls counted.
pub struct Counts {
    pub hcalls: u64,
    /// Implemented hypercalls by table index.
    pub known: [u64; table::IMPLEMENTED],
    /// Unimplemented hypercall numbers.
    pub unknown: table::UnknownCounts,
    /// RTAS calls by service (index into `rtas::SERVICES`).
    pub rtas: [u64; rtas::SERVICES.len()],
    /// `sc 1` from guest user space, refused.
    pub privileged: u64,
    /// Device calls (`Hcall::vio`) by table index that came by the full
    /// path, and the timebase ticks their handlers took (under the VM's
    /// lock, from the services' dispatch to the result; without the exit,
    /// the lock and the entry, and what is done after the lock is
    /// released).
    pub full: [u64; table::IMPLEMENTED],
    pub ticks: [u64; table::IMPLEMENTED],
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            hcalls: 0,
            known: [0; table::IMPLEMENTED],
            unknown: table::UnknownCounts::default(),
            rtas: [0; rtas::SERVICES.len()],
            privileged: 0,
            full: [0; table::IMPLEMENTED],
            ticks: [0; table::IMPLEMENTED],
        }
    }
}

impl Counts {
    /// Adds what a vcpu's thread counted on the fast path.
    pub fn add(&mut self, t: &table::Tally) {
        self.hcalls += t.hcalls();
        for (k, n) in self.known.iter_mut().zip(t.known) {
            *k += n;
        }
        for (nr, n) in t.unknown() {
            self.unknown.count(nr, n);
        }
    }

    /// (name, full-path calls, mean handler ticks) of the `top` device
    /// calls whose handlers took the most time in all.
    pub fn handler_report(&self, top: usize) -> Vec<(&'static str, u64, u64)> {
        let mut v: Vec<(u64, usize)> = (0..table::IMPLEMENTED)
            .filter(|&i| self.full[i] > 0)
            .map(|i| (self.ticks[i], i))
            .collect();
        v.sort_by(|a, b| b.cmp(a));
        v.iter()
            .take(top)
            .map(|&(t, i)| {
                (
                    table::name(table::number(i)),
                    self.full[i],
                    t / self.full[i],
                )
            })
            .collect()
    }

    /// (count, name, key) of every call and RTAS service made, most used
    /// first (unknown numbers named "unknown").
    pub fn report(&self) -> Vec<(u64, &'static str, u64)> {
        let known = self.known.iter().enumerate().filter(|(_, n)| **n > 0);
        let rtas = self.rtas.iter().enumerate().filter(|(_, n)| **n > 0);
        let mut v: Vec<(u64, &str, u64)> = known
            .map(|(i, n)| (*n, table::name(table::number(i)), table::number(i)))
            .chain(rtas.map(|(i, n)| {
                let (name, s) = rtas::SERVICES[i];
                (*n, name, RTAS_COUNT_BASE | u64::from(rtas::token(s)))
            }))
            .chain(self.unknown.named().map(|(k, n)| (n, "unknown", k)))
            .collect();
        v.sort_by(|a, b| b.cmp(a));
        v
    }
}

/// A VM's partition services' state (under the VM's lock).
pub struct Services {
    pub layout: Layout,
    /// Interrupt controller: one ICP per vcpu, the device sources.
    pub xics: Xics,
    /// Interrupt endianness and location (H_SET_MODE: LPCR[ILE], [AIL]).
    pub irq_mode: InterruptMode,
    /// `ibm,nmi-register` and the machine-check log interlock.
    pub fwnmi: Fwnmi,
    /// Seconds added to the host's clock (set-time-of-day).
    pub tod_offset: i64,
    /// Its NVRAM (RTAS nvram-fetch/-store), kept across reboots.
    pub nvram: Vec<u8>,
    /// Stored into since it was last saved.
    pub nvram_dirty: bool,
    /// Bytes of guest memory (for `ibm,nmi-register`'s checks).
    pub mem_size: u64,
    pub counts: Counts,
}

impl Services {
    /// `sources`: each device interrupt source, level-triggered or not.
    pub fn new(layout: Layout, sources: &[bool], nvram: Vec<u8>, mem_size: u64) -> Self {
        Services {
            layout,
            xics: Xics::new(layout.vcpus, sources),
            irq_mode: InterruptMode::default(),
            fwnmi: Fwnmi::default(),
            tod_offset: 0,
            nvram,
            nvram_dirty: false,
            mem_size,
            counts: Counts::default(),
        }
    }

    /// `system-reboot`: interrupts, interrupt mode and FWNMI as at power
    /// on (the NVRAM and the clock offset are kept, as on a machine).
    pub fn reset(&mut self, vcpus: &[VcpuShared]) {
        self.xics.reset();
        for id in 0..self.layout.vcpus {
            self.sync_presented(vcpus, id);
        }
        self.irq_mode = InterruptMode::default();
        self.fwnmi.reset();
    }

    /// Handles `sc 1` from vcpu `v`. From guest problem state nothing is
    /// done: the caller gets H_PRIVILEGE, as on QEMU's pseries machine.
    /// Inlined into the run loop's exit handling (as the dispatcher was
    /// before it moved here): out of line, its frame's save and restore
    /// cost ~55 ticks per cede round trip (BENCHMARKS.md).
    #[inline(always)]
    pub fn hcall(
        &mut self,
        env: &mut impl Env,
        vcpus: &[VcpuShared],
        vio: &VioBus,
        v: Caller<'_>,
    ) -> Action {
        // Every vcpu id checked against the layout indexes `vcpus`.
        debug_assert_eq!(vcpus.len(), self.layout.vcpus as usize);
        let r = if v.regs.msr & spr::MSR_PR != 0 {
            self.counts.privileged += 1;
            Err(HError::Privilege)
        } else {
            self.counts.hcalls += 1;
            let nr = v.regs.gpr[3];
            match table::Hcall::decode(nr) {
                None => {
                    self.counts.unknown.count(nr, 1);
                    Err(HError::Function)
                }
                // Device calls are timed (the stop report's figures for
                // a network's per-frame cost); the others are not, to keep
                // two timebase reads off every cede and XICS call.
                Some((index, call)) if call.vio().is_some() => {
                    self.counts.known[index] += 1;
                    let t0 = env.timebase();
                    let r = self.call(env, vcpus, vio, v.id, v.regs, call);
                    self.counts.full[index] += 1;
                    self.counts.ticks[index] += env.timebase().wrapping_sub(t0);
                    r
                }
                Some((index, call)) => {
                    self.counts.known[index] += 1;
                    self.call(env, vcpus, vio, v.id, v.regs, call)
                }
            }
        };
        match r {
            Ok(a) => {
                v.regs.gpr[3] = H_SUCCESS as u64;
                a
            }
            Err(e) => {
                v.regs.gpr[3] = e.code() as u64;
                Action::Resume
            }
        }
    }

    #[inline(always)]
    fn call(
        &mut self,
        env: &mut impl Env,
        vcpus: &[VcpuShared],
        vio: &VioBus,
        id: u32,
        regs: &mut GuestRegs,
        call: Hcall,
    ) -> HResult {
        let g = &regs.gpr;
        let a = [g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11]];
        match call {
            // Only from the fast path's refusal (it takes every HPT call a
            // kernel makes), the same code.
            Hcall::Hpt(op) => {
                HError::check(env.hpt(op, &mut regs.gpr))?;
                Ok(Action::Resume)
            }
            // To the device whose unit address is in r4; one that is not
            // there is H_PARAMETER. A change of the device's interrupt
            // line goes to the XICS, and the vcpus it concerns are woken.
            // To the DMA window of the device whose LIOBN is in r4.
            // (The fast path takes these; here only from an entry without
            // its context.)
            Hcall::GetTce | Hcall::PutTce | Hcall::StuffTce | Hcall::PutTceIndirect => {
                let tc = call.tce().ok_or(HError::Function)?;
                vio.tce_call(tc, &mut regs.gpr, &env.mem())?;
                Ok(Action::Resume)
            }
            Hcall::PutTermChar
            | Hcall::GetTermChar
            | Hcall::VioSignal
            | Hcall::RegisterLogicalLan
            | Hcall::FreeLogicalLan
            | Hcall::AddLogicalLanBuffer
            | Hcall::SendLogicalLan
            | Hcall::MulticastCtrl
            | Hcall::ChangeLogicalLanMac
            | Hcall::RegCrq
            | Hcall::FreeCrq
            | Hcall::SendCrq
            | Hcall::EnableCrq => {
                let vc = call.vio().ok_or(HError::Function)?;
                let (irq, dev) = vio.route(a[0]).ok_or(HError::Parameter)?;
                // The device's lock is released at the end of this line.
                let effect = dev.lock().hcall(vc, &mut regs.gpr, env)?;
                match effect {
                    Effect::None => {}
                    Effect::Line(high) => {
                        if let Some(irq) = irq {
                            let k = self.xics.set_line(irq, high);
                            self.kick(vcpus, k, |s| env.kick(s));
                        }
                    }
                    Effect::Send(frame) => env.transmit(a[0] as u32, &frame),
                }
                Ok(Action::Resume)
            }
            Hcall::SetMode => self.set_mode(env, regs, a),
            Hcall::Rtas => self.rtas(env, vcpus, id, a[0]),
            Hcall::Xirr | Hcall::XirrX => {
                let (xirr, _) = self.xics.accept(id);
                regs.gpr[4] = u64::from(xirr);
                if call == Hcall::XirrX {
                    regs.gpr[5] = env.timebase();
                }
                Ok(Action::Resume)
            }
            Hcall::Eoi => {
                let r = self.xics.eoi(id, a[0]);
                self.xics_done(env, vcpus, r)
            }
            Hcall::Cppr => {
                let r = self.xics.set_cppr(id, a[0]);
                self.xics_done(env, vcpus, r)
            }
            // To any vcpu of the VM, woken wherever it is.
            Hcall::Ipi => {
                let r = self.xics.set_mfrr(a[0], a[1]);
                self.xics_done(env, vcpus, r)
            }
            Hcall::Ipoll => {
                let (xirr, mfrr) = self.xics.poll(a[0]).map_err(|_| HError::Parameter)?;
                regs.gpr[4] = u64::from(xirr);
                regs.gpr[5] = u64::from(mfrr);
                Ok(Action::Resume)
            }
            Hcall::Cede => {
                // PAPR: H_CEDE returns with MSR[EE] set.
                regs.msr |= spr::MSR_EE;
                let me = &vcpus[id as usize];
                match me.cede.cede() {
                    Cede::Resume => Ok(Action::Resume),
                    Cede::Sleep => {
                        Self::undispatch(vcpus, id, &mut env.mem());
                        // Wake-ups sent before the cede do not count
                        // against it (one still pending ends it at once);
                        // kicks take the VM's lock, so none is lost here.
                        me.kicked.store(0, Ordering::Relaxed);
                        Ok(Action::Cede)
                    }
                }
            }
            // Remembered if the target has not ceded yet; a ceded target
            // is woken wherever its thread naps.
            Hcall::Prod => {
                let to = self.vcpu_id(a[0])?;
                if vcpus[to as usize].cede.prod() {
                    env.kick(to);
                }
                Ok(Action::Resume)
            }
            // Yield to vcpu a[0] (-1: any), which had yield count a[1]
            // when the guest looked (Linux: a lock holder it saw
            // preempted). "Any" has nothing to give to.
            Hcall::Confer if a[0] as i64 == -1 => Ok(Action::Resume),
            Hcall::Confer => {
                let to = self.vcpu_id(a[0])?;
                Ok(self.confer(env, vcpus, id, to, a[1] as u32))
            }
            // For any vcpu of the VM (Linux registers each from itself).
            Hcall::RegisterVpa => {
                let (flags, target, addr) = (a[0], a[1], a[2]);
                let target = self.vcpu_id(target)?;
                let mut vpa = vcpus[target as usize].vpa.lock();
                HError::check(vpa.register(flags, addr, &mut env.mem()))?;
                Ok(Action::Resume)
            }
            Hcall::SetSprg0 => {
                regs.sprg[0] = a[0];
                Ok(Action::Resume)
            }
            Hcall::PageInit => {
                let (flags, dst, src) = (a[0], a[1], a[2]);
                let flush = mode::page_init(&mut env.mem(), flags, dst, src).map_err(HError::of)?;
                if let Some(gpa) = flush {
                    env.flush_icache(gpa, 4096);
                }
                Ok(Action::Resume)
            }
            Hcall::GetCpuCharacteristics => {
                let c = env.cpu_characteristics();
                regs.gpr[4] = c.character;
                regs.gpr[5] = c.behaviour;
                Ok(Action::Resume)
            }
        }
    }

    /// H_SET_MODE (crate::mode checks it): breakpoints go into the vcpu's
    /// registers, AIL and endianness into the interrupt mode.
    fn set_mode(&mut self, env: &mut impl Env, r: &mut GuestRegs, a: [u64; 8]) -> HResult {
        let change = mode::set_mode(a[0], a[1], a[2], a[3]);
        match change.map_err(HError::of)? {
            ModeChange::Ciabr(v) => r.ciabr = v,
            ModeChange::Dawr { dawr, dawrx } => (r.dawr, r.dawrx) = (dawr, dawrx),
            ModeChange::Ail(ail) => {
                self.irq_mode.ail = ail;
                env.interrupt_mode(self.irq_mode);
            }
            ModeChange::LittleEndian(le) => {
                self.irq_mode.little_endian = le;
                env.interrupt_mode(self.irq_mode);
            }
        }
        Ok(Action::Resume)
    }

    /// The vcpu a guest names by its id (its interrupt server number).
    #[inline]
    fn vcpu_id(&self, id: u64) -> Result<u32, HError> {
        (id < u64::from(self.layout.vcpus))
            .then_some(id as u32)
            .ok_or(HError::Parameter)
    }

    /// The vcpu an RTAS call names in its first argument, if it has at
    /// least `nargs` arguments and the vcpu exists.
    fn vcpu_arg(&self, c: &rtas::Call, nargs: u32) -> Option<u32> {
        (c.nargs >= nargs)
            .then(|| self.vcpu_id(c.args[0].into()).ok())
            .flatten()
    }

    /// A XICS call's answer; the vcpus it changed are woken.
    #[inline]
    fn xics_done(
        &mut self,
        env: &mut impl Env,
        vcpus: &[VcpuShared],
        r: Result<Kick, XicsError>,
    ) -> HResult {
        let k = r.map_err(|_| HError::Parameter)?;
        self.kick(vcpus, k, |s| env.kick(s));
        Ok(Action::Resume)
    }

    /// Wakes (`wake`) the vcpus whose presented interrupt may have
    /// changed, their lock-free flag updated first.
    #[inline]
    pub fn kick(&self, vcpus: &[VcpuShared], k: Kick, mut wake: impl FnMut(u32)) {
        for s in k.servers() {
            self.sync_presented(vcpus, s);
            wake(s);
        }
    }

    /// Copies whether vcpu `id`'s ICP presents an interrupt to its
    /// lock-free flag (after any change of its ICP, before its kick).
    #[inline]
    pub fn sync_presented(&self, vcpus: &[VcpuShared], id: u32) {
        if let Some(shv) = vcpus.get(id as usize) {
            let p = self.xics.icp(id).is_some_and(|i| i.pending().is_some());
            shv.presented.store(p, Ordering::Release);
        }
    }

    /// Vcpu `id` stops running (ceded, preempted): its VPA's yield count
    /// goes odd, as guests read it (Linux: `vcpu_is_preempted`).
    #[inline]
    pub fn undispatch(vcpus: &[VcpuShared], id: u32, mem: &mut GuestMemory<'_>) {
        vcpus[id as usize].vpa.lock().bump_yield_count(mem);
    }

    /// H_CONFER from vcpu `from` to `to`, which had yield count `seen`
    /// when the guest looked. If `to` has not run since and its vcore
    /// waits for a core, `from`'s vcore gives its core up (as KVM-HV
    /// yields to the target's thread); a vcpu of the caller's own vcore
    /// already runs beside it.
    fn confer(
        &self,
        env: &impl Env,
        vcpus: &[VcpuShared],
        from: u32,
        to: u32,
        seen: u32,
    ) -> Action {
        let count = vcpus[to as usize].vpa.lock().yield_count(&env.mem());
        let waiting = match (self.layout.place(to), self.layout.place(from)) {
            (Some((t, _)), Some((o, _))) => t != o && env.vcore_waiting(t),
            _ => false,
        };
        if waiting && count == Some(seen) {
            Action::Yield
        } else {
            Action::Resume
        }
    }

    /// H_RTAS: the argument buffer is big-endian (token, nargs, nret,
    /// args, rets); a buffer outside guest memory is H_PARAMETER.
    fn rtas(&mut self, env: &mut impl Env, vcpus: &[VcpuShared], id: u32, gpa: u64) -> HResult {
        let call = rtas::Call::read(&env.mem(), gpa).ok_or(HError::Parameter)?;
        let Some(service) = rtas::service(call.token) else {
            call.set_ret(&mut env.mem(), 0, rtas::PARAMETER_ERROR);
            return Ok(Action::Resume);
        };
        if let Some(i) = rtas::SERVICES.iter().position(|&(_, s)| s == service) {
            self.counts.rtas[i] += 1;
        }
        let mut rets: [i32; 8] = [0; 8];
        let (status, next) = self.rtas_service(env, vcpus, id, service, &call, &mut rets);
        let mut mem = env.mem();
        call.set_ret(&mut mem, 0, status);
        for (i, v) in rets
            .iter()
            .enumerate()
            .take(call.nret.saturating_sub(1) as usize)
        {
            call.set_ret(&mut mem, 1 + i as u32, *v);
        }
        Ok(next)
    }

    /// One RTAS service: its status and further return values. Each
    /// checks the arguments it reads (at least that many, as QEMU's
    /// pseries does; the exact shape where PAPR fixes it: NVRAM, FWNMI);
    /// `rtas` writes no return beyond the caller's `nret`.
    fn rtas_service<E: Env>(
        &mut self,
        env: &mut E,
        vcpus: &[VcpuShared],
        id: u32,
        s: Service,
        c: &rtas::Call,
        rets: &mut [i32; 8],
    ) -> (i32, Action) {
        use rtas::{PARAMETER_ERROR as BAD, SUCCESS as OK};
        let args = &c.args;
        let resume = |status| (status, Action::Resume);
        let xics_status = |st: &Self, env: &mut E, r: Result<Kick, XicsError>| match r {
            Ok(k) => {
                st.kick(vcpus, k, |s| env.kick(s));
                resume(OK)
            }
            Err(_) => resume(BAD),
        };
        match s {
            Service::PowerOff => (OK, Action::Stop(Outcome::Ok)),
            Service::SystemReboot => (OK, Action::Reboot),
            Service::DisplayCharacter => {
                if c.nargs < 1 {
                    return resume(BAD);
                }
                env.console_write(&[args[0] as u8]);
                resume(OK)
            }
            Service::GetTimeOfDay => match env.host_epoch() {
                Some(now) => {
                    let t = rtas::from_epoch(now + self.tod_offset);
                    for (i, v) in t.iter().enumerate() {
                        rets[i] = *v as i32;
                    }
                    rets[6] = 0; // nanoseconds
                    resume(OK)
                }
                None => resume(rtas::HARDWARE_ERROR),
            },
            Service::SetTimeOfDay => {
                if c.nargs < 6 {
                    return resume(BAD);
                }
                let want = [args[0], args[1], args[2], args[3], args[4], args[5]];
                match (rtas::to_epoch(want), env.host_epoch()) {
                    (Some(w), Some(now)) => {
                        self.tod_offset = w - now;
                        resume(OK)
                    }
                    (None, _) => resume(BAD),
                    (_, None) => resume(rtas::HARDWARE_ERROR),
                }
            }
            Service::EventScan => resume(rtas::NO_ERRORS_FOUND),
            // No system parameter is available here.
            Service::GetSystemParameter => resume(BAD),
            Service::NmiRegister => match c.shape(2, 1) {
                true => {
                    let (sreset, mce) = (u64::from(args[0]), u64::from(args[1]));
                    resume(self.fwnmi.register(sreset, mce, self.mem_size))
                }
                false => resume(BAD),
            },
            Service::NmiInterlock => match c.shape(0, 1) {
                true => resume(self.fwnmi.interlock(id)),
                false => resume(BAD),
            },
            Service::OsTerm => {
                // The guest's panic message (Linux: "OS panic: <why>"),
                // else the last line it printed.
                let msg = match c.nargs {
                    0 => String::new(),
                    _ => env
                        .mem()
                        .read_cstr(u64::from(args[0]), 256)
                        .unwrap_or_default(),
                };
                let last_line = env.console_last_line();
                let msg = msg.trim();
                let last = match msg.strip_prefix("OS panic:").unwrap_or(msg).trim() {
                    "" => last_line,
                    m => String::from(m),
                };
                let why = alloc::format!("guest panic: {}", last.replace('"', "'"));
                (OK, Action::Stop(Outcome::Crashed(why)))
            }
            Service::SetXive => {
                if c.nargs < 3 {
                    return resume(BAD);
                }
                let r = self
                    .xics
                    .set_xive(args[0].into(), args[1].into(), args[2].into());
                xics_status(self, env, r)
            }
            Service::GetXive => {
                if c.nargs < 1 {
                    return resume(BAD);
                }
                match self.xics.get_xive(args[0].into()) {
                    Ok((server, prio)) => {
                        rets[0] = server as i32;
                        rets[1] = i32::from(prio);
                        resume(OK)
                    }
                    Err(_) => resume(BAD),
                }
            }
            Service::IntOff | Service::IntOn => {
                if c.nargs < 1 {
                    return resume(BAD);
                }
                let irq = args[0].into();
                let r = if s == Service::IntOff {
                    self.xics.int_off(irq)
                } else {
                    self.xics.int_on(irq)
                };
                xics_status(self, env, r)
            }
            Service::QueryCpuStoppedState => {
                let Some(id) = self.vcpu_arg(c, 1) else {
                    return resume(BAD);
                };
                let stopped = vcpus[id as usize].stopped.load(Ordering::Acquire);
                rets[0] = if stopped {
                    rtas::CPU_STOPPED
                } else {
                    rtas::CPU_RUNNING
                };
                resume(OK)
            }
            // start-cpu(id, address, r3), as QEMU's pseries: a running
            // vcpu is a hardware error, an unknown id a parameter error.
            Service::StartCpu => {
                let Some(to) = self.vcpu_arg(c, 3) else {
                    return resume(BAD);
                };
                let shv = &vcpus[to as usize];
                let mut start = shv.start.lock();
                if !shv.stopped.load(Ordering::Acquire) {
                    return resume(rtas::HARDWARE_ERROR);
                }
                *start = Some((u64::from(args[1]), u64::from(args[2])));
                shv.stopped.store(false, Ordering::Release);
                drop(start);
                env.kick(to);
                resume(OK)
            }
            // The caller stops until another vcpu starts it again; with no
            // other vcpu left running nothing ever can: the VM ends.
            Service::StopSelf => {
                let shv = &vcpus[id as usize];
                let start = shv.start.lock();
                shv.stopped.store(true, Ordering::Release);
                drop(start);
                if vcpus.iter().all(|v| v.stopped.load(Ordering::Acquire)) {
                    let why = String::from("stop-self on the last running vcpu");
                    return (OK, Action::Stop(Outcome::Crashed(why)));
                }
                (OK, Action::Stopped)
            }
            // (offset, buffer, length) -> (status, length done), as on
            // QEMU's pseries: -3 for a bad call or bytes outside the
            // NVRAM, -1 for a buffer outside guest memory.
            Service::NvramFetch | Service::NvramStore => {
                if c.nargs != 3 || c.nret != 2 {
                    return resume(BAD);
                }
                let (off, buf, len) = (args[0], u64::from(args[1]), args[2]);
                let Some(span) = crate::nvram::span(self.nvram.len(), off, len) else {
                    return resume(BAD);
                };
                let done = if s == Service::NvramFetch {
                    env.mem().write(buf, &self.nvram[span])
                } else {
                    let got = env.mem().to_vec(buf, u64::from(len));
                    got.map(|g| self.nvram[span].copy_from_slice(&g))
                };
                self.nvram_dirty |= done.is_some() && s == Service::NvramStore;
                match done {
                    Some(()) => {
                        rets[0] = len as i32;
                        resume(OK)
                    }
                    None => resume(rtas::HARDWARE_ERROR),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
