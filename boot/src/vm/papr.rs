//! The full-path hypercalls and the RTAS services (under the VM's lock).

use super::*;

/// The host's clock, read from OPAL's RTC once (when it first answers)
/// and advanced by the timebase since: (epoch seconds, timebase then).
pub(super) static HOST_CLOCK: spin::Once<(i64, u64)> = spin::Once::new();

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

impl VmState {
    /// Handles `sc 1`. From guest problem state nothing is done: the
    /// caller gets H_PRIVILEGE, as on QEMU's pseries machine.
    pub(super) fn hcall(&mut self, v: &mut Vcpu) -> Next {
        let r = &v.regs.gpr;
        let (nr, a) = (r[3], [r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11]]);
        if v.regs.msr & spr::MSR_PR != 0 {
            self.privileged += 1;
            v.regs.gpr[3] = papr_abi::H_PRIVILEGE as u64;
            return Next::Resume;
        }
        self.hcalls += 1;
        let Some((index, call)) = Hcall::decode(nr) else {
            self.unknown_counts.count(nr, 1);
            v.regs.gpr[3] = papr_abi::H_FUNCTION as u64;
            return Next::Resume;
        };
        self.known_counts[index] += 1;
        let (ret, next) = match call {
            Hcall::PutTermChar => (self.h_put_term_char(a[0], a[1], a[2], a[3]), Next::Resume),
            Hcall::GetTermChar => (self.h_get_term_char(v, a[0]), Next::Resume),
            Hcall::SetMode => (self.h_set_mode(v, a[0], a[1], a[2], a[3]), Next::Resume),
            Hcall::Rtas => self.rtas(v, a[0]),
            // Only from the fast path's refusal (it takes every HPT call
            // a kernel makes), the same code.
            Hcall::Hpt(op) => {
                let p = self.sh.mmu.partition(v.core);
                hpt_hcall(&p, op, &mut v.regs.gpr);
                (v.regs.gpr[3] as i64, Next::Resume)
            }
            Hcall::Xirr | Hcall::XirrX => {
                let (xirr, _) = self.xics.accept(v.id);
                v.regs.gpr[4] = u64::from(xirr);
                if call == Hcall::XirrX {
                    v.regs.gpr[5] = cpu::mftb();
                }
                (H_SUCCESS, Next::Resume)
            }
            Hcall::Eoi => {
                let r = self.xics.eoi(v.id, a[0]);
                (self.xics_ret(r), Next::Resume)
            }
            Hcall::Cppr => {
                let r = self.xics.set_cppr(v.id, a[0]);
                (self.xics_ret(r), Next::Resume)
            }
            // To any vcpu of the VM, woken wherever it is.
            Hcall::Ipi => {
                let r = self.xics.set_mfrr(a[0], a[1]);
                (self.xics_ret(r), Next::Resume)
            }
            Hcall::Ipoll => match self.xics.poll(a[0]) {
                Ok((xirr, mfrr)) => {
                    v.regs.gpr[4] = u64::from(xirr);
                    v.regs.gpr[5] = u64::from(mfrr);
                    (H_SUCCESS, Next::Resume)
                }
                Err(_) => (H_PARAMETER, Next::Resume),
            },
            Hcall::Cede => {
                // PAPR: H_CEDE returns with MSR[EE] set.
                v.regs.msr |= spr::MSR_EE;
                match self.sh.vcpus[v.id as usize].cede.cede() {
                    Cede::Resume => (H_SUCCESS, Next::Resume),
                    Cede::Sleep => {
                        self.undispatch(v.id);
                        // Wake-ups sent before the cede do not count
                        // against it (one still pending ends it at once);
                        // kicks take this lock, so none is lost here.
                        self.sh.vcpus[v.id as usize]
                            .kicked
                            .store(0, Ordering::Relaxed);
                        (H_SUCCESS, Next::Cede)
                    }
                }
            }
            // Remembered if the target has not ceded yet; a ceded target
            // is woken wherever its thread naps.
            Hcall::Prod => match self.vcpu_id(a[0]) {
                Some(id) => {
                    if self.sh.vcpus[id as usize].cede.prod() {
                        self.sh.kick_vcpu(id);
                    }
                    (H_SUCCESS, Next::Resume)
                }
                None => (H_PARAMETER, Next::Resume),
            },
            // Yield to vcpu a[0] (-1: any), which had yield count a[1]
            // when the guest looked (Linux: a lock holder it saw
            // preempted). If it has not run since and its vcore waits for
            // a core, this vcore gives its core up (as KVM-HV yields to
            // the target's thread); a vcpu of the caller's own vcore runs
            // beside it already, and "any" has nothing to give to.
            Hcall::Confer => match self.vcpu_id(a[0]) {
                _ if a[0] as i64 == -1 => (H_SUCCESS, Next::Resume),
                None => (H_PARAMETER, Next::Resume),
                Some(id) => (H_SUCCESS, self.confer(v.id, id, a[1] as u32)),
            },
            // For any vcpu of the VM (Linux registers each from itself).
            Hcall::RegisterVpa => match self.vcpu_id(a[1]) {
                Some(id) => {
                    let sh = self.sh.clone();
                    let rc = sh.vcpus[id as usize]
                        .vpa
                        .lock()
                        .register(a[0], a[2], &mut self.mem());
                    (rc, Next::Resume)
                }
                None => (H_PARAMETER, Next::Resume),
            },
            Hcall::SetSprg0 => {
                v.regs.sprg[0] = a[0];
                (H_SUCCESS, Next::Resume)
            }
            Hcall::PageInit => (self.h_page_init(a[0], a[1], a[2]), Next::Resume),
            Hcall::GetCpuCharacteristics => {
                let c = crate::mem::CPU_CHARACTERISTICS
                    .get()
                    .copied()
                    .unwrap_or(kernel::cpuchar::CONSERVATIVE);
                v.regs.gpr[4] = c.character;
                v.regs.gpr[5] = c.behaviour;
                (H_SUCCESS, Next::Resume)
            }
        };
        v.regs.gpr[3] = ret as u64;
        next
    }

    /// The vcpu a guest names by its id (its interrupt server number).
    pub(super) fn vcpu_id(&self, id: u64) -> Option<u32> {
        (id < u64::from(self.sh.layout.vcpus)).then_some(id as u32)
    }

    /// A XICS hypercall's answer; the vcpus it changed are woken.
    pub(super) fn xics_ret(&self, r: Result<kernel::xics::Kick, XicsError>) -> i64 {
        match r {
            Ok(k) => {
                self.kick(k);
                H_SUCCESS
            }
            Err(_) => H_PARAMETER,
        }
    }

    /// Wakes the vcpus whose presented interrupt may have changed.
    pub(super) fn kick(&self, k: kernel::xics::Kick) {
        for s in k.servers() {
            self.sync_presented(s);
            self.sh.kick_vcpu(s);
        }
    }

    /// Vcpu `id` stops running (ceded, preempted): its VPA's yield count
    /// goes odd, as guests read it (Linux: `vcpu_is_preempted`).
    pub(super) fn undispatch(&mut self, id: u32) {
        let sh = self.sh.clone();
        sh.vcpus[id as usize]
            .vpa
            .lock()
            .bump_yield_count(&mut self.mem());
    }

    /// Copies whether vcpu `id`'s ICP presents an interrupt to its
    /// lock-free flag (after any change of its ICP, before its kick).
    pub(super) fn sync_presented(&self, id: u32) {
        if let Some(shv) = self.sh.vcpus.get(id as usize) {
            let p = self.xics.icp(id).is_some_and(|i| i.pending().is_some());
            shv.presented.store(p, Ordering::Release);
        }
    }

    /// H_PUT_TERM_CHAR(vtermno, len, chars 0-7, chars 8-15).
    pub(super) fn h_put_term_char(&mut self, term: u64, len: u64, hi: u64, lo: u64) -> i64 {
        let Some((bytes, n)) = vterm::unpack(len, hi, lo) else {
            return H_PARAMETER;
        };
        if !vterm::names_vty(term, guestfdt::VTY_REG) {
            return H_PARAMETER;
        }
        self.console_bytes(&bytes[..n]);
        H_SUCCESS
    }

    /// H_GET_TERM_CHAR(vtermno): up to 16 typed bytes in r5, r6; count in r4.
    pub(super) fn h_get_term_char(&mut self, v: &mut Vcpu, term: u64) -> i64 {
        if !vterm::names_vty(term, guestfdt::VTY_REG) {
            return H_PARAMETER;
        }
        // Typed input comes in through Vm::console_service (after this
        // exit, and every CONSOLE_POLL_MS), not here under the lock.
        self.flush_raw();
        let (n, hi, lo) = self.term.read();
        let r = &mut v.regs.gpr;
        (r[4], r[5], r[6]) = (n, hi, lo);
        self.update_vty_line();
        H_SUCCESS
    }

    /// H_SET_MODE (kernel::mode checks it): breakpoints go into the
    /// vcpu's registers, AIL and endianness into the interrupt mode.
    pub(super) fn h_set_mode(
        &mut self,
        v: &mut Vcpu,
        mflags: u64,
        resource: u64,
        v1: u64,
        v2: u64,
    ) -> i64 {
        let r = &mut v.regs;
        match mode::set_mode(mflags, resource, v1, v2) {
            Ok(ModeChange::Ciabr(v)) => r.ciabr = v,
            Ok(ModeChange::Dawr { dawr, dawrx }) => (r.dawr, r.dawrx) = (dawr, dawrx),
            Ok(ModeChange::Ail(ail)) => {
                self.irq_mode.ail = ail;
                self.sh
                    .irq_lpcr
                    .store(irq_lpcr(self.irq_mode), Ordering::Release);
            }
            Ok(ModeChange::LittleEndian(le)) => {
                self.irq_mode.little_endian = le;
                self.sh
                    .irq_lpcr
                    .store(irq_lpcr(self.irq_mode), Ordering::Release);
            }
            Err(code) => return code,
        }
        H_SUCCESS
    }

    /// H_PAGE_INIT (kernel::mode checks it and does the copy or zeroing).
    pub(super) fn h_page_init(&mut self, flags: u64, dst: u64, src: u64) -> i64 {
        match mode::page_init(&mut self.mem(), flags, dst, src) {
            Ok(Some(gpa)) => {
                let host = self.mem_base + gpa;
                // SAFETY: the page was just checked to lie in this VM's RAM.
                unsafe { cpu::flush_icache_range(host, host + 4096) };
                H_SUCCESS
            }
            Ok(None) => H_SUCCESS,
            Err(code) => code,
        }
    }

    /// H_RTAS: the argument buffer is big-endian (token, nargs, nret,
    /// args, rets); a buffer outside guest memory is H_PARAMETER.
    pub(super) fn rtas(&mut self, v: &mut Vcpu, gpa: u64) -> (i64, Next) {
        let Some(call) = rtas::Call::read(&mut self.mem(), gpa) else {
            return (H_PARAMETER, Next::Resume);
        };
        let Some(service) = rtas::service(call.token) else {
            call.set_ret(&mut self.mem(), 0, rtas::PARAMETER_ERROR);
            return (H_SUCCESS, Next::Resume);
        };
        if let Some(i) = rtas::SERVICES.iter().position(|&(_, s)| s == service) {
            self.rtas_counts[i] += 1;
        }
        let mut rets: [i32; 8] = [0; 8];
        let (status, next) = self.rtas_service(v, service, &call, &mut rets);
        let mut mem = self.mem();
        call.set_ret(&mut mem, 0, status);
        for (i, v) in rets
            .iter()
            .enumerate()
            .take(call.nret.saturating_sub(1) as usize)
        {
            call.set_ret(&mut mem, 1 + i as u32, *v);
        }
        (H_SUCCESS, next)
    }

    /// One RTAS service: its status and further return values.
    pub(super) fn rtas_service(
        &mut self,
        v: &mut Vcpu,
        s: Service,
        c: &rtas::Call,
        rets: &mut [i32; 8],
    ) -> (i32, Next) {
        use rtas::{PARAMETER_ERROR as BAD, SUCCESS as OK};
        let args = &c.args;
        let xics_status = |st: &Self, r: Result<kernel::xics::Kick, XicsError>| match r {
            Ok(k) => {
                st.kick(k);
                OK
            }
            Err(_) => BAD,
        };
        match s {
            Service::PowerOff => (OK, Next::Stop(Outcome::Ok)),
            Service::SystemReboot => (OK, Next::Reboot),
            Service::DisplayCharacter => {
                if c.nargs < 1 {
                    return (BAD, Next::Resume);
                }
                self.console_bytes(&[args[0] as u8]);
                (OK, Next::Resume)
            }
            Service::GetTimeOfDay => match host_epoch() {
                Some(now) => {
                    let t = rtas::from_epoch(now + self.tod_offset);
                    for (i, v) in t.iter().enumerate() {
                        rets[i] = *v as i32;
                    }
                    rets[6] = 0; // nanoseconds
                    (OK, Next::Resume)
                }
                None => (rtas::HARDWARE_ERROR, Next::Resume),
            },
            Service::SetTimeOfDay => {
                if c.nargs < 6 {
                    return (BAD, Next::Resume);
                }
                let want = [args[0], args[1], args[2], args[3], args[4], args[5]];
                match (rtas::to_epoch(want), host_epoch()) {
                    (Some(w), Some(now)) => {
                        self.tod_offset = w - now;
                        (OK, Next::Resume)
                    }
                    (None, _) => (BAD, Next::Resume),
                    (_, None) => (rtas::HARDWARE_ERROR, Next::Resume),
                }
            }
            Service::EventScan => (rtas::NO_ERRORS_FOUND, Next::Resume),
            // No system parameter is available here.
            Service::GetSystemParameter => (BAD, Next::Resume),
            Service::NmiRegister => match c.shape(2, 1) {
                true => {
                    let size = self.mem_size;
                    (
                        self.fwnmi
                            .register(u64::from(args[0]), u64::from(args[1]), size),
                        Next::Resume,
                    )
                }
                false => (BAD, Next::Resume),
            },
            Service::NmiInterlock => match c.shape(0, 1) {
                true => (self.fwnmi.interlock(v.id), Next::Resume),
                false => (BAD, Next::Resume),
            },
            Service::OsTerm => {
                // The guest's panic message (Linux: "OS panic: <why>"),
                // else the last line it printed.
                let msg = match c.nargs {
                    0 => String::new(),
                    _ => self
                        .mem()
                        .read_cstr(u64::from(args[0]), 256)
                        .unwrap_or_default(),
                };
                self.flush_line();
                let msg = msg.trim();
                let last = match msg.strip_prefix("OS panic:").unwrap_or(msg).trim() {
                    "" => String::from(self.term.last_line()),
                    m => String::from(m),
                };
                let why = alloc::format!("guest panic: {}", last.replace('"', "'"));
                (OK, Next::Stop(Outcome::Crashed(why)))
            }
            Service::SetXive => {
                if c.nargs < 3 {
                    return (BAD, Next::Resume);
                }
                let r = self
                    .xics
                    .set_xive(args[0].into(), args[1].into(), args[2].into());
                (xics_status(self, r), Next::Resume)
            }
            Service::GetXive => {
                if c.nargs < 1 {
                    return (BAD, Next::Resume);
                }
                match self.xics.get_xive(args[0].into()) {
                    Ok((server, prio)) => {
                        rets[0] = server as i32;
                        rets[1] = i32::from(prio);
                        (OK, Next::Resume)
                    }
                    Err(_) => (BAD, Next::Resume),
                }
            }
            Service::IntOff | Service::IntOn => {
                if c.nargs < 1 {
                    return (BAD, Next::Resume);
                }
                let irq = args[0].into();
                let r = if s == Service::IntOff {
                    self.xics.int_off(irq)
                } else {
                    self.xics.int_on(irq)
                };
                (xics_status(self, r), Next::Resume)
            }
            Service::QueryCpuStoppedState => {
                if c.nargs < 1 {
                    return (BAD, Next::Resume);
                }
                match self.vcpu_id(args[0].into()) {
                    Some(id) => {
                        let stopped = self.sh.vcpus[id as usize].stopped.load(Ordering::Acquire);
                        rets[0] = if stopped {
                            rtas::CPU_STOPPED
                        } else {
                            rtas::CPU_RUNNING
                        };
                        (OK, Next::Resume)
                    }
                    None => (BAD, Next::Resume),
                }
            }
            // start-cpu(id, address, r3), as QEMU's pseries: a running
            // vcpu is a hardware error, an unknown id a parameter error.
            Service::StartCpu => match (c.nargs >= 3)
                .then(|| self.vcpu_id(args[0].into()))
                .flatten()
            {
                Some(id) => {
                    let shv = &self.sh.vcpus[id as usize];
                    let mut start = shv.start.lock();
                    if !shv.stopped.load(Ordering::Acquire) {
                        return (rtas::HARDWARE_ERROR, Next::Resume);
                    }
                    *start = Some((u64::from(args[1]), u64::from(args[2])));
                    shv.stopped.store(false, Ordering::Release);
                    drop(start);
                    self.sh.kick_vcpu(id);
                    (OK, Next::Resume)
                }
                None => (BAD, Next::Resume),
            },
            // The caller stops until another vcpu starts it again; with no
            // other vcpu left running nothing ever can: the VM ends.
            Service::StopSelf => {
                let shv = &self.sh.vcpus[v.id as usize];
                let start = shv.start.lock();
                shv.stopped.store(true, Ordering::Release);
                drop(start);
                if self.sh.all_stopped() {
                    let why = String::from("stop-self on the last running vcpu");
                    return (OK, Next::Stop(Outcome::Crashed(why)));
                }
                (OK, Next::Stopped)
            }
            // (offset, buffer, length) -> (status, length done), as on
            // QEMU's pseries: -3 for a bad call or bytes outside the
            // NVRAM, -1 for a buffer outside guest memory.
            Service::NvramFetch | Service::NvramStore => {
                if c.nargs != 3 || c.nret != 2 {
                    return (BAD, Next::Resume);
                }
                let (off, buf, len) = (args[0], u64::from(args[1]), args[2]);
                let Some(span) = kernel::nvram::span(self.nvram.len(), off, len) else {
                    return (BAD, Next::Resume);
                };
                let done = if s == Service::NvramFetch {
                    self.mem().write(buf, &self.nvram[span])
                } else {
                    let got = self.mem().to_vec(buf, u64::from(len));
                    got.map(|g| self.nvram[span].copy_from_slice(&g))
                };
                self.nvram_dirty |= done.is_some() && s == Service::NvramStore;
                match done {
                    Some(()) => {
                        rets[0] = len as i32;
                        (OK, Next::Resume)
                    }
                    None => (rtas::HARDWARE_ERROR, Next::Resume),
                }
            }
        }
    }

    /// H_CONFER from vcpu `from` to `to`, which had yield count `seen`
    /// when the guest looked (Linux: a lock holder it saw preempted). If
    /// `to` has not run since and its vcore waits for a core, `from`'s
    /// vcore gives its core up (as KVM-HV yields to the target's thread);
    /// a vcpu of the caller's own vcore already runs beside it.
    pub(super) fn confer(&mut self, from: u32, to: u32, seen: u32) -> Next {
        let sh = self.sh.clone();
        let count = sh.vcpus[to as usize].vpa.lock().yield_count(&self.mem());
        let (theirs, ours) = (sh.layout.place(to), sh.layout.place(from));
        let waiting = match (theirs, ours) {
            (Some((t, _)), Some((o, _))) => {
                t != o && sh.vcores[t as usize].core.load(Ordering::Acquire) == NO_CORE
            }
            _ => false,
        };
        if waiting && count == Some(seen) {
            Next::Yield
        } else {
            Next::Resume
        }
    }
}
