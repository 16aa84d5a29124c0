//! Runtime for the small test guests: entry code, PAPR hypercalls, the
//! hvterm console, RTAS calls found through the device tree.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![no_std]

use core::arch::{asm, global_asm};
use core::fmt::{self, Write};
/// The device-tree parser guests use (re-exported so guests name its types).
pub use fdt;

/// The PAPR hypercall ABI (numbers, return codes, flags), shared with the
/// hypervisor.
pub use papr_abi as papr;
use papr_abi::{H_PUT_TERM_CHAR, H_RTAS, H_SET_MODE, H_SET_MODE_RESOURCE_LE};

const STACK_SIZE: usize = 64 * 1024;
#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);
#[unsafe(no_mangle)]
static mut GUEST_STACK: Stack = Stack([0; STACK_SIZE]);

/// The first instructions of an entry point that may be reached
/// big-endian (the boot entry, RTAS `start-cpu`): they switch to
/// little-endian, as every pseries image does. In big-endian
/// `tdi 0,0,0x48` reads as `b .+8`, into a trampoline encoded big-endian
/// (mfmsr r11; xori r11,r11,MSR_LE; li r10,0; mtmsrd r10,1; bcl 20,31,$+4;
/// mflr r10; addi r10,r10,20; mtsrr0 r10; mtsrr1 r11; rfid) that returns
/// to the code after it (local label `9:`) with MSR[LE] flipped; entered
/// little-endian, `tdi` does nothing and `b 9f` skips the trampoline.
/// Clobbers r10, r11.
#[macro_export]
macro_rules! endian_fixup_asm {
    () => {
        r#"
        tdi 0, 0, 0x48
        b 9f
        .long 0xa600607d
        .long 0x01006b69
        .long 0x00004039
        .long 0x6401417d
        .long 0x05009f42
        .long 0xa602487d
        .long 0x14004a39
        .long 0xa6035a7d
        .long 0xa6037b7d
        .long 0x2400004c
    9:
        "#
    };
}

/// The body of an interrupt stub that calls `$handler(vector)` (a Rust
/// `extern "C" fn(u64)`) and returns with `rfid`. The stub's prologue must
/// have set r1 to a 320-byte frame on an interrupt stack and stored r0 at
/// 112(r1), the interrupted r1 at 120(r1) and r3 at 136(r1), with r3 =
/// the vector; this saves and restores the rest of the volatile state
/// (r2, r4-r12, LR, CTR, XER, CR, SRR0/1).
#[macro_export]
macro_rules! irq_body_asm {
    ($handler:literal) => {
        concat!(
            r#"
        std 2, 128(1)
        .irp n, 4,5,6,7,8,9,10,11,12
        std \n, 144+8*(\n-4)(1)
        .endr
        mflr 0
        std 0, 216(1)
        mfctr 0
        std 0, 224(1)
        mfxer 0
        std 0, 232(1)
        mfcr 0
        std 0, 240(1)
        mfsrr0 0
        std 0, 248(1)
        mfsrr1 0
        std 0, 256(1)
        lis 2, .TOC.@ha
        addi 2, 2, .TOC.@l
        bl "#,
            $handler,
            r#"
        nop
        ld 0, 256(1)
        mtsrr1 0
        ld 0, 248(1)
        mtsrr0 0
        ld 0, 240(1)
        mtcrf 0xff, 0
        ld 0, 232(1)
        mtxer 0
        ld 0, 224(1)
        mtctr 0
        ld 0, 216(1)
        mtlr 0
        .irp n, 4,5,6,7,8,9,10,11,12
        ld \n, 144+8*(\n-4)(1)
        .endr
        ld 3, 136(1)
        ld 2, 128(1)
        ld 0, 112(1)
        ld 1, 120(1)
        rfid
        "#
        )
    };
}

// Entry (as on QEMU's pseries machine): real mode, 64-bit, big-endian,
// r3 = device tree, r4 = image start.
global_asm!(
    r#"
    .pushsection .text.entry, "ax", @progbits
    .global _start
    _start:
    "#,
    endian_fixup_asm!(),
    r#"
        mr 14, 3
        lis 5, __bss_start@ha
        addi 5, 5, __bss_start@l
        lis 6, __bss_end@ha
        addi 6, 6, __bss_end@l
        li 0, 0
    1:  cmpld 5, 6
        bge 2f
        std 0, 0(5)
        addi 5, 5, 8
        b 1b
    2:  lis 1, (GUEST_STACK + {size})@ha
        addi 1, 1, (GUEST_STACK + {size})@l
        stdu 0, -112(1)
        lis 2, .TOC.@ha
        addi 2, 2, .TOC.@l
        mr 3, 14
        bl guest_runtime_init
        nop
        mr 3, 14
        bl guest_main
        nop
    3:  b 3b
    .popsection
    "#,
    size = const STACK_SIZE,
);

/// A hypercall with up to 6 arguments; returns (status, r4..r7).
pub fn hcall(nr: u64, a: [u64; 6]) -> (i64, [u64; 4]) {
    let (r3, r4, r5, r6, r7): (u64, u64, u64, u64, u64);
    // SAFETY: `sc 1` enters the hypervisor, which follows PAPR: it reads
    // r3-r9, writes r3-r12 and preserves everything else.
    unsafe {
        asm!(
            "sc 1",
            inlateout("r3") nr => r3,
            inlateout("r4") a[0] => r4,
            inlateout("r5") a[1] => r5,
            inlateout("r6") a[2] => r6,
            inlateout("r7") a[3] => r7,
            inlateout("r8") a[4] => _,
            inlateout("r9") a[5] => _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("r0") _,
            out("cr0") _,
        )
    };
    (r3 as i64, [r4, r5, r6, r7])
}

/// A hypercall with up to 8 arguments (r4-r11, as H_BULK_REMOVE takes
/// four pairs); returns (status, r4..r11).
pub fn hcall8(nr: u64, a: [u64; 8]) -> (i64, [u64; 8]) {
    let r3: u64;
    let mut o = a;
    // SAFETY: as for `hcall`; r4-r11 carry arguments in and results out.
    unsafe {
        asm!(
            "sc 1",
            inlateout("r3") nr => r3,
            inlateout("r4") o[0],
            inlateout("r5") o[1],
            inlateout("r6") o[2],
            inlateout("r7") o[3],
            inlateout("r8") o[4],
            inlateout("r9") o[5],
            inlateout("r10") o[6],
            inlateout("r11") o[7],
            out("r12") _,
            out("r0") _,
            out("cr0") _,
        )
    };
    (r3 as i64, o)
}

/// The console's terminal number: the `reg` of the node `/chosen`
/// `stdout-path` names, as PAPR guests find it.
static VTERMNO: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(u64::MAX);

/// The console's vtermno (from the device tree).
pub fn vtermno() -> u64 {
    VTERMNO.load(core::sync::atomic::Ordering::Relaxed)
}

/// Runs before `guest_main`: finds the console in the device tree.
#[unsafe(no_mangle)]
pub extern "C" fn guest_runtime_init(fdt_addr: u64) {
    let fdt = device_tree(fdt_addr);
    let reg = fdt
        .as_ref()
        .and_then(|f| f.chosen().stdout())
        .and_then(|n| n.property("reg"))
        .and_then(|p| Some(u32::from_be_bytes(p.value.get(0..4)?.try_into().ok()?)));
    if let Some(r) = reg {
        VTERMNO.store(u64::from(r), core::sync::atomic::Ordering::Relaxed);
    }
}

/// Writes bytes to the hvterm console (the vty of `stdout-path`), 16 at
/// a time.
pub fn put_bytes(b: &[u8]) {
    put_bytes_to(vtermno(), b);
}

/// Writes bytes to vterm `term`, 16 at a time; returns the last answer
/// (H_SUCCESS, or the error that ended the write).
pub fn put_bytes_to(term: u64, b: &[u8]) -> i64 {
    let mut rc = 0;
    for chunk in b.chunks(16) {
        let mut w = [0u64; 2];
        for (i, c) in chunk.iter().enumerate() {
            w[i / 8] |= (*c as u64) << (56 - 8 * (i % 8));
        }
        loop {
            (rc, _) = hcall(
                H_PUT_TERM_CHAR,
                [term, chunk.len() as u64, w[0], w[1], 0, 0],
            );
            if rc != 1 {
                break; // H_SUCCESS, or an error we cannot do better on
            }
        }
        if rc != 0 {
            break;
        }
    }
    rc
}

pub struct Console;
impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        put_bytes(s.as_bytes());
        Ok(())
    }
}

#[macro_export]
macro_rules! println {
    ($($a:tt)*) => {{
        use core::fmt::Write;
        let _ = writeln!($crate::Console, $($a)*);
    }};
}

/// The guest's device tree.
pub fn device_tree(addr: u64) -> Option<fdt::Fdt<'static>> {
    // SAFETY: the hypervisor passes the address of a valid device tree in
    // guest memory, which stays in place.
    unsafe { fdt::Fdt::from_ptr(addr as *const u8).ok() }
}

/// The first `/vdevice` child whose `device_type` is `device_type`: its
/// unit address (`reg`, also its DMA window's LIOBN) and the bytes of its
/// DMA window (`ibm,my-dma-window`: LIOBN, a 2-cell bus address, a
/// 2-cell size; 0 without one).
pub fn vio_device(fdt: &fdt::Fdt<'_>, device_type: &str) -> Option<(u64, u64)> {
    let cell = |v: &[u8], i: usize| -> Option<u64> {
        Some(u64::from(u32::from_be_bytes(
            v.get(4 * i..4 * i + 4)?.try_into().ok()?,
        )))
    };
    let node = fdt
        .find_node("/vdevice")?
        .children()
        .find(|n| n.property("device_type").and_then(|p| p.as_str()) == Some(device_type))?;
    let reg = cell(node.property("reg")?.value, 0)?;
    let window = node
        .property("ibm,my-dma-window")
        .and_then(|p| Some(cell(p.value, 3)? << 32 | cell(p.value, 4)?))
        .unwrap_or(0);
    Some((reg, window))
}

/// An RTAS token from `/rtas`.
pub fn rtas_token(fdt: &fdt::Fdt<'_>, name: &str) -> Option<u32> {
    let p = fdt.find_node("/rtas")?.property(name)?;
    Some(u32::from_be_bytes(p.value.get(0..4)?.try_into().ok()?))
}

/// One RTAS call through H_RTAS: big-endian argument buffer
/// (token, nargs, nret, args..., rets...). Returns the first return value.
pub fn rtas_call(token: u32, args: &[u32], nret: usize) -> i32 {
    let mut rets = [0; 1];
    rtas_call_rets(token, args, nret, &mut rets);
    rets[0]
}

/// An RTAS call with `nret` return values (at most 12 cells in all),
/// the first `rets.len()` of them copied to `rets` (the status first).
pub fn rtas_call_rets(token: u32, args: &[u32], nret: usize, rets: &mut [i32]) {
    let mut buf = [0u32; 16];
    buf[0] = token.to_be();
    buf[1] = (args.len() as u32).to_be();
    buf[2] = (nret as u32).to_be();
    for (i, a) in args.iter().enumerate() {
        buf[3 + i] = a.to_be();
    }
    hcall(H_RTAS, [buf.as_ptr() as u64, 0, 0, 0, 0, 0]);
    for (i, r) in rets.iter_mut().enumerate().take(nret) {
        *r = i32::from_be(buf[3 + args.len() + i] as i32);
    }
}

/// The timebase.
pub fn mftb() -> u64 {
    let t: u64;
    // SAFETY: reading the timebase has no side effects.
    unsafe { asm!("mftb {0}", out(reg) t) };
    t
}

/// Powers the partition off through RTAS `power-off`.
pub fn power_off(fdt: Option<&fdt::Fdt<'_>>) -> ! {
    if let Some(t) = fdt.and_then(|f| rtas_token(f, "power-off")) {
        rtas_call(t, &[0, 0], 1);
    }
    println!("guest: power-off did not stop the partition");
    loop {
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("guest: panic: {}", info.message());
    loop {
        core::hint::spin_loop();
    }
}

/// MSR[FP] | MSR[VEC] | MSR[VSX]: a guest turns these on itself.
const MSR_FP_VEC_VSX: u64 = (1 << 13) | (1 << 25) | (1 << 23);

global_asm!(
    r#"
    .pushsection .text.guest_fp, "ax", @progbits
    .machine power8
    .balign 16
    # void __guest_vsr_store(u64 buf[128]): VSR0-63 to buf.
    .global __guest_vsr_store
    __guest_vsr_store:
        .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63
        li 6, \n*16
        stxvd2x \n, 3, 6
        .endr
        blr
    # void __guest_vsr_load(const u64 buf[128]): VSR0-63 from buf.
    .global __guest_vsr_load
    __guest_vsr_load:
        .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63
        li 6, \n*16
        lxvd2x \n, 3, 6
        .endr
        blr
    .popsection
    "#
);

unsafe extern "C" {
    fn __guest_vsr_store(buf: *mut [u64; 128]);
    fn __guest_vsr_load(buf: *const [u64; 128]);
}

fn enable_fp() {
    // SAFETY: turning on FP/VMX/VSX in the guest's own MSR.
    unsafe {
        asm!("mfmsr {t}", "or {t}, {t}, {m}", "mtmsrd {t}", "isync", t = out(reg) _, m = in(reg) MSR_FP_VEC_VSX)
    };
}

/// How many of the 128 doublewords of VSR0-63 are non-zero.
pub fn vsr_nonzero() -> usize {
    enable_fp();
    let mut buf = [0u64; 128];
    // SAFETY: stores only into `buf`.
    unsafe { __guest_vsr_store(&mut buf) };
    buf.iter().filter(|w| **w != 0).count()
}

/// Fills VSR0-63 with `pattern`.
pub fn vsr_fill(pattern: u64) {
    enable_fp();
    let buf = [pattern; 128];
    // SAFETY: loads only from `buf`; the registers are the guest's own.
    unsafe { __guest_vsr_load(&buf) };
}

/// What the last interrupt taken by the guest's own handlers recorded.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapLog {
    pub vector: u64,
    pub srr0: u64,
    pub srr1: u64,
    pub dar: u64,
    pub dsisr: u64,
    pub count: u64,
    /// r3 at the FWNMI machine-check handler: the error log's address.
    pub fwnmi_log: u64,
}

// The handlers below address the fields by these offsets.
const _: () = assert!(core::mem::offset_of!(TrapLog, vector) == 0);
const _: () = assert!(core::mem::offset_of!(TrapLog, srr0) == 8);
const _: () = assert!(core::mem::offset_of!(TrapLog, srr1) == 16);
const _: () = assert!(core::mem::offset_of!(TrapLog, dar) == 24);
const _: () = assert!(core::mem::offset_of!(TrapLog, dsisr) == 32);
const _: () = assert!(core::mem::offset_of!(TrapLog, count) == 40);
const _: () = assert!(core::mem::offset_of!(TrapLog, fwnmi_log) == 48);

#[unsafe(no_mangle)]
pub static mut GUEST_TRAP_LOG: TrapLog = TrapLog {
    vector: 0,
    srr0: 0,
    srr1: 0,
    dar: 0,
    dsisr: 0,
    count: 0,
    fwnmi_log: 0,
};

// The guest's own interrupt handlers for 0x300 (DSI), 0x400 (ISI) and 0x700
// (program): record the interrupt in GUEST_TRAP_LOG, skip the instruction
// and return. They run in real mode (the interrupt turns translation off),
// where the image's link addresses are its real addresses.
global_asm!(
    r#"
    .pushsection .text.guest_traps, "ax", @progbits
    .balign 16
    .global __guest_trap_300
    __guest_trap_300:
        mtsprg 1, 3
        li 3, 0x300
        b __guest_trap_common
    .global __guest_trap_400
    __guest_trap_400:
        mtsprg 1, 3
        li 3, 0x400
        b __guest_trap_common
    .global __guest_trap_700
    __guest_trap_700:
        mtsprg 1, 3
        li 3, 0x700
        b __guest_trap_common
    # The FWNMI machine-check handler (ibm,nmi-register): r3 is the error
    # log, whose first doubleword is the interrupted r3. Records the log's
    # address, restores r3 and records the interrupt as a 0x200.
    .global __guest_fwnmi_mc
    __guest_fwnmi_mc:
        mtsprg 2, 4
        lis 4, GUEST_TRAP_LOG@ha
        addi 4, 4, GUEST_TRAP_LOG@l
        std 3, 48(4)
        ld 3, 0(3)
        mtsprg 1, 3
        mfsprg 4, 2
        li 3, 0x200
        b __guest_trap_common
    __guest_trap_common:
        mtsprg 2, 4
        lis 4, GUEST_TRAP_LOG@ha
        addi 4, 4, GUEST_TRAP_LOG@l
        std 3, 0(4)
        mfsrr0 3
        std 3, 8(4)
        mfsrr1 3
        std 3, 16(4)
        mfdar 3
        std 3, 24(4)
        mfdsisr 3
        std 3, 32(4)
        ld 3, 40(4)
        addi 3, 3, 1
        std 3, 40(4)
        mfsrr0 3
        addi 3, 3, 4
        mtsrr0 3
        mfsprg 4, 2
        mfsprg 3, 1
        rfid
    .popsection
    "#
);

unsafe extern "C" {
    fn __guest_fwnmi_mc();
    fn __guest_trap_300();
    fn __guest_trap_400();
    fn __guest_trap_700();
}

/// Asks for little-endian interrupts (H_SET_MODE) and installs the
/// recording handlers at 0x300, 0x400 and 0x700.
pub fn install_trap_handlers() -> i64 {
    let (rc, _) = hcall(H_SET_MODE, [1, H_SET_MODE_RESOURCE_LE, 0, 0, 0, 0]);
    install_vector(0x300, __guest_trap_300 as *const () as u64);
    install_vector(0x400, __guest_trap_400 as *const () as u64);
    install_vector(0x700, __guest_trap_700 as *const () as u64);
    rc
}

/// Makes interrupt vector `vec` (real address, below 0x2000) branch to
/// `handler` (an absolute branch: the image lies below 64 MiB).
pub fn install_vector(vec: u64, handler: u64) {
    // `ba handler`: opcode 18, AA=1.
    let insn = 0x4800_0002u32 | (handler as u32 & 0x03ff_fffc);
    // SAFETY: the guest's own vector area in its real memory.
    unsafe {
        core::ptr::write_volatile(vec as *mut u32, insn);
        asm!("dcbst 0, {0}", "sync", "icbi 0, {0}", "isync", in(reg) vec);
    }
}

/// The real address of the FWNMI machine-check handler (it records the
/// interrupt like the others and returns past the faulting instruction).
pub fn fwnmi_handler() -> u64 {
    __guest_fwnmi_mc as *const () as u64
}

/// A copy of the trap log.
pub fn trap_log() -> TrapLog {
    // SAFETY: written only by the trap handlers of this single-vcpu guest.
    unsafe { core::ptr::read_volatile(&raw const GUEST_TRAP_LOG) }
}

global_asm!(
    r#"
    .pushsection .text.guest_probe, "ax", @progbits
    .balign 16
    # u64 __guest_probe(u64 ea, u64 val, u64 store): one load or store with
    # data translation on (MSR[DR]); a fault is skipped by the trap handler.
    .global __guest_probe
    __guest_probe:
        mfmsr 6
        ori 7, 6, 0x10
        cmpdi 5, 0
        mtmsrd 7
        isync
        beq 1f
        std 4, 0(3)
        b 2f
    1:  ld 4, 0(3)
    2:  mtmsrd 6
        isync
        mr 3, 4
        blr
    .popsection
    "#
);

unsafe extern "C" {
    fn __guest_probe(ea: u64, val: u64, store: u64) -> u64;
}

/// Loads the doubleword at effective address `ea` with data translation on.
pub fn translated_load(ea: u64) -> u64 {
    // SAFETY: a fault is caught by the handlers from install_trap_handlers.
    unsafe { __guest_probe(ea, 0, 0) }
}

/// Stores `val` at effective address `ea` with data translation on.
pub fn translated_store(ea: u64, val: u64) {
    // SAFETY: as above.
    unsafe { __guest_probe(ea, val, 1) };
}

/// Loads SLB entry `index` (256 MiB segment `esid`, VSID `vsid`, Ks=Kp=0).
pub fn slb_load(index: u64, esid: u64, vsid: u64) {
    // SAFETY: the guest's own SLB.
    unsafe {
        asm!("slbmte {rs}, {rb}", "isync", rs = in(reg) vsid << 12, rb = in(reg) (esid << 28) | 0x0800_0000 | index)
    };
}

/// The guest's HPT order from `ibm,pft-size` of its first vcpu (18 if absent).
pub fn hpt_order(fdt: Option<&fdt::Fdt<'_>>) -> u32 {
    fdt.and_then(|f| f.find_node("/cpus/PowerPC,POWER8@0"))
        .and_then(|n| n.property("ibm,pft-size"))
        .and_then(|p| p.value.get(4..8))
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(18)
}

/// Bytes of guest memory from the device tree's memory nodes.
pub fn memory_size(fdt: Option<&fdt::Fdt<'_>>) -> u64 {
    fdt.map(|f| {
        f.memory()
            .regions()
            .map(|r| r.size.unwrap_or(0) as u64)
            .sum()
    })
    .unwrap_or(0)
}
