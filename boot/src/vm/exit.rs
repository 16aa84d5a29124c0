//! Exit handling (under the VM's lock) and interrupt delivery.

use super::*;

/// Whether handling `exit` needs the VM's state (its lock). IPIs and
/// doorbells for the thread are run by the caller; a slice end is the
/// vcore's (`slice_over`), and console work is done without the lock
/// (`console_service`).
pub(super) fn exit_needs_vm(exit: Exit) -> bool {
    !matches!(exit, Exit::Hdec | Exit::HvDoorbell | Exit::External)
}

impl VmState {
    /// Handles an exit of `v` on its thread (the partition still loaded).
    /// `vec` is the raw exit vector `exit` was decoded from.
    pub(super) fn handle_exit(&mut self, v: &mut Vcpu, exit: Exit, vec: u64) -> Action {
        self.exits += 1;
        match exit {
            Exit::Hcall => self.hcall(v),
            // Handled without the VM's lock ([`exit_needs_vm`]).
            Exit::Hdec | Exit::HvDoorbell | Exit::External => Action::Resume,
            // An instruction the guest may not execute, or a facility it
            // does not have (TM, BHRB): to the guest it is an
            // illegal-instruction program interrupt.
            Exit::HvEmulation | Exit::HvFacility => {
                self.reflect_fault(v, vector::PROGRAM, spr::SRR1_PROGRAM_ILLEGAL, vec)
            }
            // A real-mode access beyond guest memory: a machine check for
            // the guest, as on QEMU's pseries machine.
            Exit::Hdsi if v.regs.msr & spr::MSR_DR == 0 => {
                let r = &v.regs;
                info!(target: "vm", "{}: real-mode data access beyond guest memory at pc {:#x} (HDAR {:#x}): machine check", self.name, r.pc, r.hdar);
                self.machine_check(v, Cause::LoadStore(r.hdar), vec)
            }
            Exit::Hisi if v.regs.msr & spr::MSR_IR == 0 => {
                info!(target: "vm", "{}: real-mode instruction fetch at {:#x} beyond guest memory: machine check", self.name, v.regs.pc);
                self.machine_check(v, Cause::Fetch(v.regs.pc), vec)
            }
            _ => Action::Stop(self.unexpected(v, vec)),
        }
    }

    pub(super) fn unexpected(&self, v: &Vcpu, vec: u64) -> Outcome {
        let r = &v.regs;
        let v = vec & !ppc64::trap::VEC_HSRR_FLAG;
        Outcome::Crashed(alloc::format!(
            "unexpected exit {:#x} ({}) at pc {:#x} msr {:#x} hdar {:#x}",
            v,
            ppc64::trap::vector_name(v),
            r.pc,
            r.msr,
            r.hdar
        ))
    }

    /// Makes the presented external interrupt the guest's: delivered now
    /// (0x500) when its MSR[EE] allows, else left to LPCR[MER] so it is
    /// taken the moment the guest enables EE. Returns whether MER is needed.
    pub(super) fn deliver_external(&mut self, v: &mut Vcpu) -> bool {
        let presented = self
            .svc
            .xics
            .icp(v.id)
            .is_some_and(|i| i.pending().is_some());
        match deliver::external(presented, v.regs.msr) {
            External::None => false,
            External::Inject => {
                self.reflect(v, vector::EXTERNAL, 0);
                self.externals += 1;
                true
            }
            External::Mediated => true,
        }
    }

    /// Delivers an interrupt to the guest (kernel::deliver says how).
    pub(super) fn reflect(&mut self, v: &mut Vcpu, vector: u64, reason: u64) -> u64 {
        self.reflected += 1;
        deliver::deliver(&mut v.regs, self.svc.irq_mode, vector, reason)
    }

    /// Reflects a fault, unless it happened on the first instruction of
    /// the vector this hypervisor last sent the guest to: then the guest
    /// has no handler there and would fault forever; the VM stops.
    pub(super) fn reflect_fault(
        &mut self,
        v: &mut Vcpu,
        vector: u64,
        reason: u64,
        exit: u64,
    ) -> Action {
        if let Some((at, sent)) = v.last_vector.filter(|l| l.0 == v.regs.pc) {
            let offset = exit & !ppc64::trap::VEC_HSRR_FLAG;
            return Action::Stop(Outcome::Crashed(alloc::format!(
                "no handler at the guest's {sent:#x} vector: {} at {at:#x} (msr {:#x})",
                ppc64::trap::vector_name(offset),
                v.regs.msr
            )));
        }
        let at = self.reflect(v, vector, reason);
        v.last_vector = Some((at, vector));
        Action::Resume
    }

    /// A machine check for the running vcpu. With FWNMI registered it goes
    /// to the guest's handler with r3 pointing at the error log in the
    /// RTAS area (the interrupted r3 saved in it), MSR as for a machine
    /// check (translation off, ME on, interrupt endianness); without, at
    /// 0x200. A machine check while this vcpu has not yet released the
    /// previous log (`ibm,nmi-interlock`) stops the VM, as a nested
    /// machine check checkstops a machine.
    pub(super) fn machine_check(&mut self, v: &mut Vcpu, cause: Cause, exit: u64) -> Action {
        let reason = match cause {
            Cause::LoadStore(addr) => {
                v.regs.dar = addr;
                spr::SRR1_MC_DATA_SIDE
            }
            Cause::Fetch(_) => 0,
        };
        let handler = match self.svc.fwnmi.begin_machine_check(v.id) {
            Ok(v) => v,
            Err(Refused::NotRegistered) => return self.reflect_fault(v, vector::MACHINE_CHECK, reason, exit),
            // A nested machine check, or one while another vcpu holds the
            // log: QEMU makes the second wait, which a vcpu whose thread
            // must keep going cannot here; the VM stops, as on a
            // checkstop.
            Err(Refused::Nested | Refused::Busy(_)) => {
                return Action::Stop(Outcome::Crashed(alloc::format!(
                    "machine check at pc {:#x} before the guest released the previous one (ibm,nmi-interlock)",
                    v.regs.pc
                )))
            }
        };
        let log_gpa = self.rtas_base + fwnmi::ERROR_LOG_OFFSET;
        let log = fwnmi::machine_check_log(v.regs.gpr[3], cause);
        match self.mem().write(log_gpa, &log) {
            Some(()) => {}
            None => {
                return Action::Stop(Outcome::Crashed("no room for the machine check log".into()))
            }
        }
        self.reflected += 1;
        deliver::deliver_fwnmi(&mut v.regs, self.svc.irq_mode, handler, log_gpa, reason);
        Action::Resume
    }
}
