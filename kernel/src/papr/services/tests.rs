//! The full-path hypercalls and RTAS against a recording fake machine:
//! what could be checked only by booting QEMU before.

use super::*;
use crate::vio::nvram::Nvram;
use crate::vio::vty::{self, Vty};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

const MEM: usize = 1 << 20;
const RTAS_BUF: u64 = 0x1000;

/// A machine that records what the services ask of it.
struct Fake {
    /// Guest RAM, reached only through `base` (taken once, writable).
    _ram: Vec<u8>,
    base: *mut u8,
    /// The vcpus' shared words, to see what a kick's target sees.
    vcpus: *const [VcpuShared],
    /// Each kick: (vcpu, whether it was presented an interrupt then).
    kicked: Vec<(u32, bool)>,
    console: Vec<u8>,
    /// Typed, not yet read.
    input: Vec<u8>,
    waiting: Vec<u32>,
    mode: Option<InterruptMode>,
    flushed: Vec<u64>,
    /// The bus the calls go to, when a test looks at its devices from
    /// inside a call.
    bus: *const VioBus,
    /// Each frame sent: (unit, frame, whether the sender's lock was free).
    sent: Vec<(u32, Vec<u8>, bool)>,
}

impl Fake {
    fn new(vcpus: &[VcpuShared]) -> Self {
        let mut ram = vec![0; MEM];
        Fake {
            base: ram.as_mut_ptr(),
            _ram: ram,
            vcpus,
            kicked: Vec::new(),
            console: Vec::new(),
            input: Vec::new(),
            waiting: Vec::new(),
            mode: None,
            flushed: Vec::new(),
            bus: core::ptr::null(),
            sent: Vec::new(),
        }
    }

    fn kicked_ids(&self) -> Vec<u32> {
        self.kicked.iter().map(|k| k.0).collect()
    }
}

impl Env for Fake {
    fn kick(&mut self, id: u32) {
        // SAFETY: every test keeps its vcpus alive and unmoved for as long
        // as its Fake (they are made first and dropped last).
        let vcpus = unsafe { &*self.vcpus };
        let presented = vcpus[id as usize].presented.load(Ordering::Acquire);
        self.kicked.push((id, presented));
    }
    fn timebase(&self) -> u64 {
        1234
    }
    fn host_epoch(&self) -> Option<i64> {
        Some(1_700_000_000)
    }
    fn mem(&self) -> GuestMemory<'_> {
        // SAFETY: `base` is the fake's own buffer, taken writable once and
        // alive as long as `self`; nothing makes a reference to it.
        unsafe { GuestMemory::from_raw(self.base, MEM as u64) }
    }
    fn flush_icache(&mut self, gpa: u64, _: u64) {
        self.flushed.push(gpa);
    }
    fn cpu_characteristics(&self) -> Characteristics {
        crate::cpuchar::CONSERVATIVE
    }
    fn vcore_waiting(&self, index: u32) -> bool {
        self.waiting.contains(&index)
    }
    fn interrupt_mode(&mut self, mode: InterruptMode) {
        self.mode = Some(mode);
    }
    fn console_write(&mut self, bytes: &[u8]) {
        self.console.extend_from_slice(bytes);
    }
    fn console_read(&mut self) -> (u64, u64, u64) {
        let n = self.input.len().min(16);
        let mut b = [0u8; 16];
        b[..n].copy_from_slice(&self.input[..n]);
        self.input.drain(..n);
        let hi = u64::from_be_bytes(b[..8].try_into().unwrap());
        let lo = u64::from_be_bytes(b[8..].try_into().unwrap());
        (n as u64, hi, lo)
    }
    fn console_has_input(&self) -> bool {
        !self.input.is_empty()
    }
    fn console_last_line(&mut self) -> String {
        String::from("last words")
    }
    fn transmit(&mut self, unit: u32, f: &crate::vio::lan::Frame) {
        let mem = self.mem();
        let mut frame = Vec::new();
        for &(gpa, n) in f.pieces() {
            frame.extend(mem.to_vec(gpa, n).unwrap());
        }
        // SAFETY: a test that sets `bus` keeps the bus alive and unmoved
        // while it makes calls with this Fake.
        let bus = unsafe { self.bus.as_ref() };
        let free = bus
            .and_then(|b| b.route(u64::from(unit)))
            .is_some_and(|(_, d)| d.try_lock().is_some());
        self.sent.push((unit, frame, free));
    }
    /// H_ENTER "succeeds" at slot 7; any other HPT call finds nothing.
    fn hpt(&mut self, op: HptCall, gpr: &mut [u64; 32]) -> i64 {
        match op {
            HptCall::Enter => {
                gpr[4] = 7;
                H_SUCCESS
            }
            _ => H_NOT_FOUND,
        }
    }
}

/// The devices every VM has: the vty, the NVRAM.
fn bus() -> VioBus {
    VioBus::new(vec![Box::new(Vty), Box::new(Nvram(65536))])
}

/// A VM of `vcpus` vcpus in vcores of `threads`, vcpu 0 running.
fn vm(vcpus: u32, threads: u32) -> (Services, Vec<VcpuShared>) {
    let layout = Layout::new(vcpus, threads, 8).unwrap();
    let shared: Vec<VcpuShared> = (0..vcpus).map(|_| VcpuShared::default()).collect();
    for (i, v) in shared.iter().enumerate() {
        v.stopped.store(i != 0, Ordering::Release);
    }
    let svc = Services::new(
        layout,
        &bus().sources(),
        crate::nvram::blank(65536),
        MEM as u64,
    );
    (svc, shared)
}

/// `sc 1` with `nr` and its arguments from vcpu `id`: (r3, action, regs).
fn call(
    svc: &mut Services,
    env: &mut Fake,
    vcpus: &[VcpuShared],
    id: u32,
    nr: u64,
    args: &[u64],
) -> (i64, Action, GuestRegs) {
    call_on(svc, env, vcpus, &bus(), id, nr, args)
}

/// `sc 1` as [`call`] makes it, to the devices of `bus`.
fn call_on(
    svc: &mut Services,
    env: &mut Fake,
    vcpus: &[VcpuShared],
    bus: &VioBus,
    id: u32,
    nr: u64,
    args: &[u64],
) -> (i64, Action, GuestRegs) {
    let mut regs = GuestRegs::default();
    regs.gpr[3] = nr;
    regs.gpr[4..4 + args.len()].copy_from_slice(args);
    let a = svc.hcall(
        env,
        vcpus,
        bus,
        Caller {
            id,
            regs: &mut regs,
        },
    );
    (regs.gpr[3] as i64, a, regs)
}

/// An RTAS call by service name: (status, returns, action).
fn rtas_call(
    svc: &mut Services,
    env: &mut Fake,
    vcpus: &[VcpuShared],
    id: u32,
    service: Service,
    args: &[u32],
    nret: u32,
) -> (i32, Vec<i32>, Action) {
    let mut m = env.mem();
    m.write_be32(RTAS_BUF, rtas::token(service)).unwrap();
    m.write_be32(RTAS_BUF + 4, args.len() as u32).unwrap();
    m.write_be32(RTAS_BUF + 8, nret).unwrap();
    for (i, a) in args.iter().enumerate() {
        m.write_be32(RTAS_BUF + 12 + 4 * i as u64, *a).unwrap();
    }
    let (rc, action, _) = call(svc, env, vcpus, id, H_RTAS, &[RTAS_BUF]);
    assert_eq!(rc, H_SUCCESS, "{service:?}: H_RTAS itself");
    let m = env.mem();
    let rets: Vec<i32> = (0..nret)
        .map(|i| {
            m.read_be32(RTAS_BUF + 12 + 4 * (args.len() as u64 + u64::from(i)))
                .unwrap() as i32
        })
        .collect();
    (rets.first().copied().unwrap_or(0), rets, action)
}

#[test]
fn problem_state_gets_h_privilege_and_nothing_is_done() {
    let (mut svc, vcpus) = vm(2, 1);
    let mut env = Fake::new(&vcpus);
    let mut regs = GuestRegs::default();
    regs.gpr[3] = H_PROD;
    regs.gpr[4] = 1;
    regs.msr = spr::MSR_PR;
    let a = svc.hcall(
        &mut env,
        &vcpus,
        &bus(),
        Caller {
            id: 0,
            regs: &mut regs,
        },
    );
    assert_eq!((regs.gpr[3] as i64, a), (H_PRIVILEGE, Action::Resume));
    assert!(env.kicked.is_empty());
    assert_eq!(svc.counts.privileged, 1);
    assert_eq!(svc.counts.hcalls, 0);
}

#[test]
fn unknown_numbers_are_h_function_and_counted() {
    let (mut svc, vcpus) = vm(1, 1);
    let mut env = Fake::new(&vcpus);
    let (rc, a, _) = call(&mut svc, &mut env, &vcpus, 0, 0xf080, &[]);
    assert_eq!((rc, a), (H_FUNCTION, Action::Resume));
    assert_eq!(svc.counts.unknown.named().next(), Some((0xf080, 1)));
}

#[test]
fn a_wrong_vtermno_is_h_parameter_and_prints_nothing() {
    let (mut svc, vcpus) = vm(1, 1);
    let mut env = Fake::new(&vcpus);
    let hi = u64::from_be_bytes(*b"hi\0\0\0\0\0\0");
    let (rc, ..) = call(
        &mut svc,
        &mut env,
        &vcpus,
        0,
        H_PUT_TERM_CHAR,
        &[0x3000_0001, 2, hi, 0],
    );
    assert_eq!(rc, H_PARAMETER);
    assert!(env.console.is_empty());
    // The vty's reg, and 0 (the first vty), both print.
    for term in [u64::from(vty::REG), 0] {
        let (rc, ..) = call(
            &mut svc,
            &mut env,
            &vcpus,
            0,
            H_PUT_TERM_CHAR,
            &[term, 2, hi, 0],
        );
        assert_eq!(rc, H_SUCCESS);
    }
    assert_eq!(env.console, b"hihi");
    // A length over 16 is refused whatever the vtermno.
    let (rc, ..) = call(
        &mut svc,
        &mut env,
        &vcpus,
        0,
        H_PUT_TERM_CHAR,
        &[0, 17, hi, 0],
    );
    assert_eq!(rc, H_PARAMETER);
}

#[test]
fn prod_of_a_vcpu_that_is_not_there_is_h_parameter() {
    let (mut svc, vcpus) = vm(2, 1);
    let mut env = Fake::new(&vcpus);
    let (rc, ..) = call(&mut svc, &mut env, &vcpus, 0, H_PROD, &[2]);
    assert_eq!(rc, H_PARAMETER);
    // A prod before the cede is kept: the cede returns at once.
    let (rc, ..) = call(&mut svc, &mut env, &vcpus, 0, H_PROD, &[1]);
    assert_eq!(rc, H_SUCCESS);
    let (rc, a, regs) = call(&mut svc, &mut env, &vcpus, 1, H_CEDE, &[]);
    assert_eq!((rc, a), (H_SUCCESS, Action::Resume));
    assert_ne!(regs.msr & spr::MSR_EE, 0, "H_CEDE returns with MSR[EE] set");
    let (_, a, _) = call(&mut svc, &mut env, &vcpus, 1, H_CEDE, &[]);
    assert_eq!(a, Action::Cede);
}

#[test]
fn an_ipi_marks_the_target_presented_before_it_is_kicked() {
    let (mut svc, vcpus) = vm(2, 1);
    let mut env = Fake::new(&vcpus);
    // The target accepts every priority first (the ICP starts at CPPR 0).
    let (rc, ..) = call(&mut svc, &mut env, &vcpus, 1, H_CPPR, &[0xff]);
    assert_eq!(rc, H_SUCCESS);
    assert!(!vcpus[1].presented.load(Ordering::Acquire));
    let (rc, ..) = call(&mut svc, &mut env, &vcpus, 0, H_IPI, &[1, 5]);
    assert_eq!(rc, H_SUCCESS);
    assert_eq!(
        env.kicked.last(),
        Some(&(1, true)),
        "kicked with its interrupt already presented"
    );
    let (rc, _, regs) = call(&mut svc, &mut env, &vcpus, 1, H_XIRR_X, &[]);
    assert_eq!(rc, H_SUCCESS);
    assert_eq!(regs.gpr[4] & 0xff_ffff, 2, "the IPI source");
    assert_eq!(regs.gpr[5], 1234, "H_XIRR_X gives the timebase");
    let (rc, ..) = call(&mut svc, &mut env, &vcpus, 0, H_IPI, &[7, 5]);
    assert_eq!(rc, H_PARAMETER);
}

#[test]
fn start_cpu_on_a_running_vcpu_is_a_hardware_error() {
    let (mut svc, vcpus) = vm(2, 1);
    let mut env = Fake::new(&vcpus);
    let s = Service::StartCpu;
    let (st, ..) = rtas_call(&mut svc, &mut env, &vcpus, 0, s, &[0, 0x100, 7], 1);
    assert_eq!(st, rtas::HARDWARE_ERROR);
    let (st, ..) = rtas_call(&mut svc, &mut env, &vcpus, 0, s, &[2, 0x100, 7], 1);
    assert_eq!(st, rtas::PARAMETER_ERROR, "no vcpu 2");
    let (st, ..) = rtas_call(&mut svc, &mut env, &vcpus, 0, s, &[1, 0x100], 1);
    assert_eq!(st, rtas::PARAMETER_ERROR, "too few arguments");
    let (st, ..) = rtas_call(&mut svc, &mut env, &vcpus, 0, s, &[1, 0x100, 7], 1);
    assert_eq!(st, rtas::SUCCESS);
    assert_eq!(*vcpus[1].start.lock(), Some((0x100, 7)));
    assert!(!vcpus[1].stopped.load(Ordering::Acquire));
    assert_eq!(env.kicked_ids(), [1]);
    let q = Service::QueryCpuStoppedState;
    let (st, rets, _) = rtas_call(&mut svc, &mut env, &vcpus, 0, q, &[1], 2);
    assert_eq!((st, rets[1]), (rtas::SUCCESS, rtas::CPU_RUNNING));
}

#[test]
fn stop_self_stops_the_caller_and_on_the_last_vcpu_ends_the_vm() {
    let (mut svc, vcpus) = vm(2, 1);
    let mut env = Fake::new(&vcpus);
    let s = Service::StartCpu;
    rtas_call(&mut svc, &mut env, &vcpus, 0, s, &[1, 0x100, 0], 1);
    let (st, _, a) = rtas_call(&mut svc, &mut env, &vcpus, 1, Service::StopSelf, &[], 1);
    assert_eq!((st, a), (rtas::SUCCESS, Action::Stopped));
    let (_, _, a) = rtas_call(&mut svc, &mut env, &vcpus, 0, Service::StopSelf, &[], 1);
    assert!(
        matches!(a, Action::Stop(Outcome::Crashed(ref why)) if why.contains("last running vcpu")),
        "{a:?}"
    );
}

#[test]
fn rtas_outside_guest_memory_is_h_parameter_and_an_unknown_token_a_parameter_error() {
    let (mut svc, vcpus) = vm(1, 1);
    let mut env = Fake::new(&vcpus);
    let (rc, ..) = call(&mut svc, &mut env, &vcpus, 0, H_RTAS, &[MEM as u64 - 8]);
    assert_eq!(rc, H_PARAMETER);
    let mut m = env.mem();
    m.write_be32(RTAS_BUF, 0xdead).unwrap();
    m.write_be32(RTAS_BUF + 4, 0).unwrap();
    m.write_be32(RTAS_BUF + 8, 1).unwrap();
    let (rc, ..) = call(&mut svc, &mut env, &vcpus, 0, H_RTAS, &[RTAS_BUF]);
    assert_eq!(rc, H_SUCCESS);
    assert_eq!(
        env.mem().read_be32(RTAS_BUF + 12).map(|v| v as i32),
        Some(rtas::PARAMETER_ERROR)
    );
}

#[test]
fn nvram_calls_check_their_exact_shape_and_the_buffer() {
    let (mut svc, vcpus) = vm(1, 1);
    let mut env = Fake::new(&vcpus);
    env.mem().write(0x8000, b"hello").unwrap();
    let store = Service::NvramStore;
    let (st, ..) = rtas_call(&mut svc, &mut env, &vcpus, 0, store, &[16, 0x8000, 5], 1);
    assert_eq!(st, rtas::PARAMETER_ERROR, "nret must be 2");
    let (st, ..) = rtas_call(
        &mut svc,
        &mut env,
        &vcpus,
        0,
        store,
        &[16, MEM as u32 - 2, 5],
        2,
    );
    assert_eq!(st, rtas::HARDWARE_ERROR, "buffer beyond guest memory");
    assert!(!svc.nvram_dirty);
    let (st, rets, _) = rtas_call(&mut svc, &mut env, &vcpus, 0, store, &[16, 0x8000, 5], 2);
    assert_eq!((st, rets[1]), (rtas::SUCCESS, 5));
    assert!(svc.nvram_dirty);
    assert_eq!(&svc.nvram[16..21], b"hello");
    let fetch = Service::NvramFetch;
    let (st, ..) = rtas_call(&mut svc, &mut env, &vcpus, 0, fetch, &[16, 0x9000, 5], 2);
    assert_eq!(st, rtas::SUCCESS);
    assert_eq!(env.mem().to_vec(0x9000, 5).unwrap(), b"hello");
    let (st, ..) = rtas_call(&mut svc, &mut env, &vcpus, 0, fetch, &[65535, 0x9000, 5], 2);
    assert_eq!(st, rtas::PARAMETER_ERROR, "beyond the NVRAM");
}

#[test]
fn os_term_stops_the_vm_with_the_guests_reason() {
    let (mut svc, vcpus) = vm(1, 1);
    let mut env = Fake::new(&vcpus);
    env.mem().write(0x8000, b"OS panic: \"oops\"\0").unwrap();
    let (_, _, a) = rtas_call(&mut svc, &mut env, &vcpus, 0, Service::OsTerm, &[0x8000], 1);
    assert_eq!(
        a,
        Action::Stop(Outcome::Crashed("guest panic: 'oops'".into()))
    );
    let (_, _, a) = rtas_call(&mut svc, &mut env, &vcpus, 0, Service::OsTerm, &[], 1);
    assert_eq!(
        a,
        Action::Stop(Outcome::Crashed("guest panic: last words".into()))
    );
}

#[test]
fn set_mode_changes_the_interrupt_mode_and_reports_papr_codes() {
    let (mut svc, vcpus) = vm(1, 1);
    let mut env = Fake::new(&vcpus);
    let le = (1, H_SET_MODE_RESOURCE_LE, 0, 0);
    let (rc, ..) = call(
        &mut svc,
        &mut env,
        &vcpus,
        0,
        H_SET_MODE,
        &[le.0, le.1, le.2, le.3],
    );
    assert_eq!(rc, H_SUCCESS);
    assert_eq!(env.mode.map(|m| m.little_endian), Some(true));
    // A resource that does not exist: H_P2, as crate::mode says.
    let (rc, ..) = call(&mut svc, &mut env, &vcpus, 0, H_SET_MODE, &[0, 99, 0, 0]);
    assert_eq!(rc, H_P2);
}

#[test]
fn confer_yields_only_to_a_preempted_vcpu_of_a_waiting_vcore() {
    let (mut svc, vcpus) = vm(4, 2);
    let mut env = Fake::new(&vcpus);
    // Vcpu 2 is in vcore 1; its VPA says yield count 3 (preempted).
    let mut m = env.mem();
    m.write(0x2004, &640u16.to_be_bytes()).unwrap();
    m.write_be32(0x2000 + crate::vpa::YIELD_COUNT, 3).unwrap();
    let vpa_flags = crate::vpa::REG_VPA << crate::vpa::FUNC_SHIFT;
    let (rc, ..) = call(
        &mut svc,
        &mut env,
        &vcpus,
        2,
        H_REGISTER_VPA,
        &[vpa_flags, 2, 0x2000],
    );
    assert_eq!(rc, H_SUCCESS);
    let (_, a, _) = call(&mut svc, &mut env, &vcpus, 0, H_CONFER, &[2, 3]);
    assert_eq!(a, Action::Resume, "vcore 1 is on a core");
    env.waiting.push(1);
    let (_, a, _) = call(&mut svc, &mut env, &vcpus, 0, H_CONFER, &[2, 3]);
    assert_eq!(a, Action::Yield);
    let (_, a, _) = call(&mut svc, &mut env, &vcpus, 0, H_CONFER, &[2, 5]);
    assert_eq!(a, Action::Resume, "it ran since the guest looked");
    let (_, a, _) = call(&mut svc, &mut env, &vcpus, 0, H_CONFER, &[1, 0]);
    assert_eq!(a, Action::Resume, "a sibling of the caller's own vcore");
    let (rc, ..) = call(&mut svc, &mut env, &vcpus, 0, H_CONFER, &[9, 0]);
    assert_eq!(rc, H_PARAMETER);
}

#[test]
fn every_error_code_maps_back_to_itself() {
    for e in HError::ALL {
        assert_eq!(HError::check(e.code()), Err(e));
    }
    assert_eq!(HError::check(H_SUCCESS), Ok(()));
    // Every code a lower module answers is listed (else it would reach
    // the guest as H_HARDWARE).
    for code in [
        H_HARDWARE,
        H_DROPPED,
        H_FUNCTION,
        H_PRIVILEGE,
        H_PARAMETER,
        H_PTEG_FULL,
        H_NOT_FOUND,
        H_RESOURCE,
        H_P2,
        H_P3,
        H_P4,
        H_UNSUPPORTED_FLAG,
    ] {
        assert_eq!(HError::of(code).code(), code);
    }
    assert_eq!(HError::of(-9999), HError::Hardware);
}

#[test]
fn typed_input_is_read_sixteen_bytes_at_a_time_and_the_vty_line_drops_with_the_last() {
    let (mut svc, vcpus) = vm(1, 1);
    let mut env = Fake::new(&vcpus);
    let irq = crate::xics::IRQ_BASE;
    let (st, ..) = rtas_call(
        &mut svc,
        &mut env,
        &vcpus,
        0,
        Service::SetXive,
        &[irq, 0, 5],
        1,
    );
    assert_eq!(st, rtas::SUCCESS);
    call(&mut svc, &mut env, &vcpus, 0, H_CPPR, &[0xff]);
    // Typed (the firmware raises the line as boot's console does).
    env.input = (b'a'..b'a' + 20).collect();
    let k = svc.xics.set_line(irq, true);
    svc.kick(&vcpus, k, |_| {});
    assert!(vcpus[0].presented.load(Ordering::Acquire));
    env.kicked.clear();
    let (rc, _, regs) = call(&mut svc, &mut env, &vcpus, 0, H_GET_TERM_CHAR, &[0]);
    assert_eq!((rc, regs.gpr[4]), (H_SUCCESS, 16));
    assert_eq!(regs.gpr[5].to_be_bytes(), *b"abcdefgh");
    assert!(
        env.kicked.is_empty(),
        "input still waits: the line stays up"
    );
    let (_, _, regs) = call(&mut svc, &mut env, &vcpus, 0, H_GET_TERM_CHAR, &[0]);
    assert_eq!(regs.gpr[4], 4);
    assert_eq!(&regs.gpr[5].to_be_bytes()[..4], b"qrst");
    assert_eq!(env.kicked, [(0, false)], "the line dropped, the vcpu told");
    // The NVRAM's unit address is no vty.
    let nv = u64::from(crate::vio::nvram::REG);
    let (rc, ..) = call(&mut svc, &mut env, &vcpus, 0, H_GET_TERM_CHAR, &[nv]);
    assert_eq!(rc, H_PARAMETER);
}

#[test]
fn page_init_copies_inside_guest_memory_and_asks_for_the_icache_flush() {
    let (mut svc, vcpus) = vm(1, 1);
    let mut env = Fake::new(&vcpus);
    env.mem().write(0x3000, b"code").unwrap();
    let flags = H_COPY_PAGE | H_ICACHE_SYNCHRONIZE;
    let (rc, ..) = call(
        &mut svc,
        &mut env,
        &vcpus,
        0,
        H_PAGE_INIT,
        &[flags, 0x5000, 0x3000],
    );
    assert_eq!(rc, H_SUCCESS);
    assert_eq!(env.mem().to_vec(0x5000, 4).unwrap(), b"code");
    assert_eq!(env.flushed, [0x5000]);
    let (rc, ..) = call(
        &mut svc,
        &mut env,
        &vcpus,
        0,
        H_PAGE_INIT,
        &[flags, MEM as u64, 0x3000],
    );
    assert_eq!(rc, H_PARAMETER);
    assert_eq!(env.flushed.len(), 1, "nothing flushed for a refused call");
}

#[test]
fn an_hpt_call_by_the_full_path_answers_the_fast_paths_code() {
    let (mut svc, vcpus) = vm(1, 1);
    let mut env = Fake::new(&vcpus);
    let (rc, ..) = call(&mut svc, &mut env, &vcpus, 0, H_REMOVE, &[0, 0, 0]);
    assert_eq!(rc, H_NOT_FOUND);
    let (rc, _, regs) = call(&mut svc, &mut env, &vcpus, 0, H_ENTER, &[0, 0, 0, 0]);
    assert_eq!(
        (rc, regs.gpr[4]),
        (H_SUCCESS, 7),
        "its results reach the guest"
    );
    assert_eq!(
        svc.counts.report().len(),
        2,
        "each counted under its own name"
    );
}

/// A VM's devices with an l-lan adapter (its window maps nothing yet).
fn net_bus() -> VioBus {
    use crate::vio::llan::{self, Llan};
    use crate::vio::tce::TceTable;
    let unit = llan::REG;
    let nic = Llan::new(unit, TceTable::new(unit, 64 * 4096), [2, 0, 0, 0, 0, 1]);
    VioBus::new(vec![Box::new(Vty), Box::new(Nvram(65536)), Box::new(nic)])
}

#[test]
fn tce_calls_reach_a_window_by_liobn_and_nothing_else() {
    let (mut svc, vcpus) = vm(1, 1);
    let mut env = Fake::new(&vcpus);
    let bus = net_bus();
    let mut call = |nr: u64, args: &[u64]| {
        let (rc, _, regs) = call_on(&mut svc, &mut env, &vcpus, &bus, 0, nr, args);
        (rc, regs.gpr[4])
    };
    let liobn = u64::from(crate::vio::llan::REG);
    let rw = crate::vio::tce::TCE_READ | crate::vio::tce::TCE_WRITE;
    assert_eq!(call(H_PUT_TCE, &[liobn, 0x1000, 0x5000 | rw]).0, H_SUCCESS);
    assert_eq!(call(H_GET_TCE, &[liobn, 0x1000]), (H_SUCCESS, 0x5000 | rw));
    // The vty and the NVRAM have no window; no device has LIOBN 7, and
    // the upper half of r4 is not ignored.
    for bad in [
        u64::from(vty::REG),
        u64::from(crate::vio::nvram::REG),
        7,
        liobn | 1 << 32,
    ] {
        assert_eq!(call(H_PUT_TCE, &[bad, 0x1000, 0x5000 | rw]).0, H_PARAMETER);
    }
    // A mapping outside guest memory maps nothing.
    assert_eq!(
        call(H_PUT_TCE, &[liobn, 0x2000, MEM as u64 | rw]).0,
        H_PARAMETER
    );
    assert_eq!(call(H_GET_TCE, &[liobn, 0x2000]), (H_SUCCESS, 0));
    assert_eq!(call(H_STUFF_TCE, &[liobn, 0, 0, 64]).0, H_SUCCESS);
    assert_eq!(call(H_GET_TCE, &[liobn, 0x1000]), (H_SUCCESS, 0));
}

#[test]
fn logical_lan_calls_answer_as_ibmveth_expects() {
    let (mut svc, vcpus) = vm(1, 1);
    let mut env = Fake::new(&vcpus);
    let bus = net_bus();
    let mut call = |nr: u64, args: &[u64]| call_on(&mut svc, &mut env, &vcpus, &bus, 0, nr, args).0;
    let unit = u64::from(crate::vio::llan::REG);
    // Closed: a send is H_DROPPED (Linux counts it sent), a buffer
    // H_RESOURCE, H_FREE H_RESOURCE; interrupts may be switched off.
    assert_eq!(
        call(H_SEND_LOGICAL_LAN, &[unit, 0, 0, 0, 0, 0, 0, 0]),
        H_DROPPED
    );
    assert_eq!(call(H_ADD_LOGICAL_LAN_BUFFER, &[unit, 0]), H_RESOURCE);
    assert_eq!(call(H_FREE_LOGICAL_LAN, &[unit]), H_RESOURCE);
    assert_eq!(call(H_VIO_SIGNAL, &[unit, 0]), H_SUCCESS);
    assert_eq!(call(H_VIO_SIGNAL, &[unit, 2]), H_PARAMETER);
    // A continuation token is not supported.
    assert_eq!(
        call(H_SEND_LOGICAL_LAN, &[unit, 0, 0, 0, 0, 0, 0, 1]),
        H_HARDWARE
    );
    // The vty takes no LAN call and only "interrupts off".
    let vty = u64::from(vty::REG);
    assert_eq!(
        call(H_REGISTER_LOGICAL_LAN, &[vty, 0, 0, 0, 0]),
        H_PARAMETER
    );
    assert_eq!(call(H_VIO_SIGNAL, &[vty, 0]), H_SUCCESS);
    assert_eq!(call(H_VIO_SIGNAL, &[vty, 1]), H_PARAMETER);
    // No device at a unit address: H_PARAMETER.
    assert_eq!(call(H_FREE_LOGICAL_LAN, &[0x3000_0009]), H_PARAMETER);
}

#[test]
fn a_frame_sent_goes_to_the_switch_after_its_port_is_unlocked() {
    use crate::vio::llan::{BD_VALID, RXQ_ENTRY};
    use crate::vio::tce::{TCE_READ, TCE_WRITE};
    let (mut svc, vcpus) = vm(1, 1);
    let mut env = Fake::new(&vcpus);
    let bus = net_bus();
    env.bus = &bus;
    let unit = u64::from(crate::vio::llan::REG);
    let mut call =
        |env: &mut Fake, nr: u64, args: &[u64]| call_on(&mut svc, env, &vcpus, &bus, 0, nr, args).0;
    // IOBA page i is guest page 16 + i.
    for i in 0..4u64 {
        let tce = ((16 + i) * 4096) | TCE_READ | TCE_WRITE;
        assert_eq!(call(&mut env, H_PUT_TCE, &[unit, i * 4096, tce]), H_SUCCESS);
    }
    let rxq = BD_VALID | (4 * RXQ_ENTRY) << 32 | 0x2000;
    let mac = 0x0200_0000_0007;
    assert_eq!(
        call(
            &mut env,
            H_REGISTER_LOGICAL_LAN,
            &[unit, 0, rxq, 0x1000, mac]
        ),
        H_SUCCESS
    );
    env.mem().write(19 * 4096, b"0123456789abcdefgh").unwrap();
    let bd = BD_VALID | 18 << 32 | 0x3000;
    assert_eq!(
        call(&mut env, H_SEND_LOGICAL_LAN, &[unit, bd, 0, 0, 0, 0, 0, 0]),
        H_SUCCESS
    );
    assert_eq!(
        env.sent,
        [(unit as u32, b"0123456789abcdefgh".to_vec(), true)]
    );
}
