//! A VM's console: output queued under its lock and written without it,
//! the serial console's input, and which VM owns the console.

use super::*;

/// How often a VM that owns the console polls it while it idles.
pub(super) const CONSOLE_POLL_MS: u64 = 10;

/// Id (creation order) of the VM that owns the serial console.
pub(super) static CONSOLE_OWNER: AtomicUsize = AtomicUsize::new(0);

/// (id, name) of the VMs running now: where Ctrl-] n can move the console.
pub(super) static RUNNING: spin::Mutex<Vec<(usize, String)>> = spin::Mutex::new(Vec::new());

/// A VM's console output for the serial console: raw for the owner, else
/// one log line each, prefixed with the VM's name.
pub(super) enum ConsoleOut {
    Raw(Vec<u8>),
    Line(String),
}

/// Where a VM's console output goes under the VM's lock: a queue
/// ([`Vm::write_console`] writes it out without the lock, because an
/// OPAL console write can take long and every exit of every vcpu of the
/// VM may need the lock meanwhile).
pub(super) struct ConsoleSink<'a> {
    out: &'a mut Vec<ConsoleOut>,
    queued: &'a AtomicBool,
}

impl vterm::Sink for ConsoleSink<'_> {
    fn raw(&mut self, bytes: &[u8]) {
        match self.out.last_mut() {
            Some(ConsoleOut::Raw(r)) => r.extend_from_slice(bytes),
            _ => self.out.push(ConsoleOut::Raw(bytes.to_vec())),
        }
        self.queued.store(true, Ordering::Release);
    }
    fn line(&mut self, line: &str) {
        self.out.push(ConsoleOut::Line(String::from(line)));
        self.queued.store(true, Ordering::Release);
    }
}

/// Moves the console to the next running VM after `from` (in creation
/// order, wrapping), and says so.
pub(super) fn pass_console_on(from: usize) {
    let running = RUNNING.lock();
    let next = running
        .iter()
        .filter(|(id, _)| *id != from)
        .min_by_key(|(id, _)| (*id <= from, *id));
    match next {
        Some((id, name)) => {
            CONSOLE_OWNER.store(*id, Ordering::Release);
            info!(target: "console", "input now goes to vm {name} (Ctrl-] n: next VM)");
        }
        None => CONSOLE_OWNER.store(usize::MAX, Ordering::Release),
    }
}

/// Whether VM `id` (creation order) owns the serial console.
pub(super) fn owns_console(id: usize) -> bool {
    CONSOLE_OWNER.load(Ordering::Acquire) == id
}

/// Chooses the VM that owns the console first.
pub fn set_console_owner(id: usize) {
    CONSOLE_OWNER.store(id, Ordering::Release);
}

impl Vm {
    /// The VM's console work, done without its lock on time-slice exits
    /// and after every nap: writes out the output its
    /// vcpus queued, and while it owns the serial console (at most every
    /// CONSOLE_POLL_MS, whichever vcpu comes first) shows its unfinished
    /// line and reads what was typed; Ctrl-] x stops the VM.
    pub(super) fn console_service(&self) {
        if self.sh.console_queued.load(Ordering::Acquire) {
            self.write_console();
        }
        if !owns_console(self.id) {
            return;
        }
        let now = cpu::mftb();
        let poll = self.sh.next_poll.load(Ordering::Relaxed);
        let every = kernel::time::ms_to_ticks(CONSOLE_POLL_MS);
        if now < poll
            || self
                .sh
                .next_poll
                .compare_exchange(poll, now + every, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let mut buf = [0u8; 64];
        let n = ppc64::opal::console_read(&mut buf);
        if n == 0 && !self.sh.raw_held.load(Ordering::Acquire) {
            return;
        }
        let stop = {
            let mut st = self.st.lock();
            st.flush_raw();
            n != 0 && st.typed(&buf[..n])
        };
        if stop {
            crate::scheduler::post_event(self, VmEvent::Stop(Outcome::Stopped));
        }
        self.write_console();
    }

    /// Writes the console output queued under the VM's lock, in order,
    /// without the lock: one writer at a time; a thread that finds
    /// another writing leaves its output to it.
    pub(super) fn write_console(&self) {
        loop {
            // Pairs with the fence below: a producer that fails to take
            // the writer's lock has its `console_queued` seen by the
            // writer's last look (store-buffer order needs SeqCst).
            core::sync::atomic::fence(Ordering::SeqCst);
            {
                let Some(_writer) = self.console_writer.try_lock() else {
                    return;
                };
                loop {
                    let out = {
                        let mut st = self.st.lock();
                        self.sh.console_queued.store(false, Ordering::Release);
                        core::mem::take(&mut st.con.out)
                    };
                    if out.is_empty() {
                        break;
                    }
                    for o in out {
                        match o {
                            ConsoleOut::Raw(b) => crate::machine::CONSOLE.write_raw(&b),
                            ConsoleOut::Line(l) => info!(target: "guest", "{}: {l}", self.name),
                        }
                    }
                }
            }
            // Output queued after the last look, while this thread still
            // held the writer's lock, is written by this thread.
            core::sync::atomic::fence(Ordering::SeqCst);
            if !self.sh.console_queued.load(Ordering::Acquire) {
                return;
            }
        }
    }

    /// Lists the VM where Ctrl-] n can move the console; it takes the
    /// console if nobody has it (a VM created after the others stopped).
    pub fn started(&self) {
        RUNNING.lock().push((self.id, self.name.clone()));
        if CONSOLE_OWNER
            .compare_exchange(usize::MAX, self.id, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            info!(target: "console", "input now goes to vm {} (Ctrl-] n: next VM)", self.name);
        }
    }
}

/// A VM's side of the console: the vty's state and the output queued
/// under the VM's lock.
#[derive(Default)]
pub(super) struct GuestConsole {
    /// Output lines (the last one is a guest panic's reason), the console
    /// owner's unfinished line, typed input.
    pub(super) term: Vterm,
    /// Console output made under the lock, written without it.
    pub(super) out: Vec<ConsoleOut>,
}

impl GuestConsole {
    /// Writes out the console owner's unfinished line.
    pub(super) fn flush_raw(&mut self, sh: &Shared) {
        let mut sink = ConsoleSink {
            out: &mut self.out,
            queued: &sh.console_queued,
        };
        self.term.flush(&mut sink);
        sh.raw_held.store(false, Ordering::Release);
    }

    /// Guest console output of VM `id`: passed through as it is when the
    /// VM owns the console, else printed a line at a time with the VM's
    /// name. The owner's output goes out a whole line at a time too, and
    /// an unfinished line (a shell prompt, the echo of what is typed) as
    /// soon as the guest waits: it cedes, reads the console, or its time
    /// slice ends ([`GuestConsole::flush_raw`]), so a prompt shows before
    /// the user types and other VMs' lines never cut into it.
    pub(super) fn output(&mut self, sh: &Shared, id: usize, b: &[u8]) {
        let owner = owns_console(id);
        let mut sink = ConsoleSink {
            out: &mut self.out,
            queued: &sh.console_queued,
        };
        self.term.output(b, owner, &mut sink);
        sh.raw_held.store(self.term.holds_raw(), Ordering::Release);
    }

    /// Ends an unterminated console line (so it counts as the last line).
    pub(super) fn flush_line(&mut self, sh: &Shared, id: usize) {
        if self.term.unterminated().is_some() {
            self.output(sh, id, b"\n");
        }
    }
}

impl VmState {
    /// Writes out the console owner's unfinished line.
    pub(super) fn flush_raw(&mut self) {
        self.con.flush_raw(&self.sh);
    }

    /// What was typed on the serial console while this VM owns it
    /// ([`Vm::console_service`] reads it); the vty interrupt is asserted
    /// while input waits. Ctrl-] n passes the console on; Ctrl-] x
    /// answers true (stop the VM).
    pub(super) fn typed(&mut self, bytes: &[u8]) -> bool {
        let mut stop = false;
        match self.con.term.typed(bytes) {
            Typed::NextVm => {
                self.flush_raw();
                pass_console_on(self.id);
                return false;
            }
            Typed::StopVm => {
                info!(target: "console", "stopping vm {} (Ctrl-] x)", self.name);
                stop = true;
            }
            Typed::Input => {}
        }
        if let Some(irq) = self.sh.vio.irq(vty::REG) {
            let k = self.svc.xics.set_line(irq, self.con.term.has_input());
            let sh = &self.sh;
            self.svc.kick(&sh.vcpus, k, |s| sh.kick_vcpu(s));
        }
        stop
    }
}
