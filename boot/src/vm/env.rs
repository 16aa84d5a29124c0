//! The firmware's side of the partition services (kernel::papr::services
//! decides; this file is the machine they act on): [`FirmwareEnv`], the
//! one implementation of `papr::services::Env`, and the full hypercall
//! path's entry under the VM's lock.

use super::*;

/// What a hypercall of a VM may reach of the machine: its threads'
/// shared state (to wake vcpus), its console, its RAM, the fast path.
pub(super) struct FirmwareEnv<'a> {
    sh: &'a Shared,
    con: &'a mut GuestConsole,
    /// The VM's creation order (console ownership).
    id: usize,
    mem_base: u64,
    mem_size: u64,
    /// The physical core the calling vcpu runs on.
    core: usize,
    /// Interrupts its frames raise in VMs once the lock is released.
    raise: &'a mut Vec<(Arc<Vm>, u32)>,
}

impl Env for FirmwareEnv<'_> {
    #[inline]
    fn kick(&mut self, id: u32) {
        self.sh.kick_vcpu(id);
    }

    #[inline]
    fn timebase(&self) -> u64 {
        cpu::mftb()
    }

    fn host_epoch(&self) -> Option<i64> {
        host_epoch()
    }

    #[inline]
    fn mem(&self) -> GuestMemory<'_> {
        // SAFETY: as in `VmState::mem`: this VM's own RAM for as long as
        // the VM lives, never referenced by the firmware while vcpus run.
        unsafe { GuestMemory::from_raw(self.mem_base as *mut u8, self.mem_size) }
    }

    fn flush_icache(&mut self, gpa: u64, len: u64) {
        // Only inside this VM's RAM, whoever asks.
        if !gpa.checked_add(len).is_some_and(|end| end <= self.mem_size) {
            return;
        }
        let host = self.mem_base + gpa;
        // SAFETY: `host..host+len` was just checked to lie in this VM's
        // RAM; flushing caches changes no memory.
        unsafe { cpu::flush_icache_range(host, host + len) };
    }

    fn cpu_characteristics(&self) -> kernel::cpuchar::Characteristics {
        crate::mem::CPU_CHARACTERISTICS
            .get()
            .copied()
            .unwrap_or(kernel::cpuchar::CONSERVATIVE)
    }

    fn vcore_waiting(&self, index: u32) -> bool {
        self.sh
            .vcores
            .get(index as usize)
            .is_some_and(|vc| vc.core.load(Ordering::Acquire) == NO_CORE)
    }

    #[inline]
    fn interrupt_mode(&mut self, mode: InterruptMode) {
        self.sh.irq_lpcr.store(irq_lpcr(mode), Ordering::Release);
    }

    fn console_write(&mut self, bytes: &[u8]) {
        self.con.output(self.sh, self.id, bytes);
    }

    fn console_read(&mut self) -> (u64, u64, u64) {
        // Typed input comes in through Vm::console_service (after this
        // exit, and every CONSOLE_POLL_MS), not here under the lock.
        self.con.flush_raw(self.sh);
        self.con.term.read()
    }

    #[inline]
    fn console_has_input(&self) -> bool {
        self.con.term.has_input()
    }

    fn console_last_line(&mut self) -> String {
        self.con.flush_line(self.sh, self.id);
        String::from(self.con.term.last_line())
    }

    fn transmit(&mut self, unit: u32, frame: &kernel::vio::lan::Frame) {
        // The caller's vcpu is in this hypercall.
        net::transmit(self.sh, self.id, unit, frame, self.raise);
    }

    fn hpt(&mut self, op: HptCall, gpr: &mut [u64; 32]) -> i64 {
        hpt_hcall(&self.sh.mmu.partition(self.core), op, gpr);
        gpr[3] as i64
    }
}

impl VmState {
    /// Handles `sc 1` of `v` (kernel::papr::services).
    pub(super) fn hcall(&mut self, v: &mut Vcpu) -> Action {
        let mut env = FirmwareEnv {
            sh: &self.sh,
            con: &mut self.con,
            id: self.id,
            mem_base: self.mem_base,
            mem_size: self.mem_size,
            core: v.core,
            raise: &mut v.raise,
        };
        let caller = Caller {
            id: v.id,
            regs: &mut v.regs,
        };
        self.svc
            .hcall(&mut env, &self.sh.vcpus, &self.sh.vio, caller)
    }
}

/// The host's clock, read from OPAL's RTC once (when it first answers)
/// and advanced by the timebase since: (epoch seconds, timebase then).
static HOST_CLOCK: spin::Once<(i64, u64)> = spin::Once::new();

/// Seconds since the epoch now, if the RTC could ever be read.
pub fn host_epoch() -> Option<i64> {
    let (epoch, tb) = match HOST_CLOCK.get() {
        Some(c) => *c,
        None => {
            let t = ppc64::opal::rtc_read().and_then(rtas::to_epoch)?;
            *HOST_CLOCK.call_once(|| (t, cpu::mftb()))
        }
    };
    let hz = kernel::time::timebase_hz().max(1);
    Some(epoch + (cpu::mftb().wrapping_sub(tb) / hz) as i64)
}
