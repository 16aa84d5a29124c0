//! The fuzzing guest, written from PAPR and Linux `asm/hvcall.h` rather
//! than from the hypervisor's code. Two roles (bootargs):
//!
//! - `seed=S calls=N` (the fuzzer): N seeded random hypercalls (every
//!   implemented number, RTAS through H_RTAS, unknown numbers), arguments
//!   drawn from valid-looking, edge and random values. After each call it
//!   checks the return code is one `asm/hvcall.h` defines, that r1, r2 and
//!   r13-r31 and the MSR are what they were, and every 1,024 calls that
//!   its own code and data, the guard zone under its arena and the HPT
//!   entries it did not touch are unchanged. It stays in real mode and
//!   protects itself: buffers the hypervisor may write (RTAS, VPAs,
//!   H_PAGE_INIT) are in the arena at the top of its memory or outside it,
//!   and it never names its real-mode (VRMA) HPT entries.
//! - `neighbour`: fills its memory with a pattern and its HPT with
//!   entries, and re-checks both until a `q` arrives on its console.
//!
//! Each prints one result line, then powers off.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use guest_common::papr::{self, *};
use guest_common::{device_tree, hcall, install_trap_handlers, install_vector, println, trap_log};

// ---------------------------------------------------------------------------
// The checked hypercall
// ---------------------------------------------------------------------------

/// Registers captured right after `sc 1`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct After {
    /// r3..=r11.
    ret: [u64; 9],
    r1: u64,
    r2: u64,
    r13: u64,
    /// r14..=r31.
    nv: [u64; 18],
}

// __fuzz_hcall stores into these offsets.
const _: () = assert!(core::mem::offset_of!(After, ret) == 0);
const _: () = assert!(core::mem::offset_of!(After, r1) == 72);
const _: () = assert!(core::mem::offset_of!(After, r2) == 80);
const _: () = assert!(core::mem::offset_of!(After, r13) == 88);
const _: () = assert!(core::mem::offset_of!(After, nv) == 96);
const _: () = assert!(core::mem::size_of::<After>() == 96 + 18 * 8);

// u64 __fuzz_hcall(const u64 args[9], After *out, u64 base): r3..r11 :=
// args, r2 and r13-r31 := base + register number, `sc 1`, then every
// register into *out, and the caller's registers back. SPRG2 holds the
// stack pointer across the call (the interrupt stubs use SPRG1, SPRG3
// is the vcpu's id; the recording trap handlers, for interrupts that
// must not come, use SPRG1/2).
global_asm!(
    r#"
    .pushsection .text.fuzz, "ax", @progbits
    .balign 16
    .global __fuzz_hcall
    __fuzz_hcall:
        stdu 1, -512(1)
        mflr 0
        std 0, 528(1)
        mfcr 0
        std 0, 280(1)
        .irp n, 14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        std \n, 112+8*(\n-14)(1)
        .endr
        std 2, 256(1)
        std 13, 264(1)
        std 4, 272(1)
        mtsprg 2, 1
        mr 11, 3
        mr 12, 5
        addi 2, 12, 2
        .irp n, 13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        addi \n, 12, \n
        .endr
        ld 3, 0(11)
        ld 4, 8(11)
        ld 5, 16(11)
        ld 6, 24(11)
        ld 7, 32(11)
        ld 8, 40(11)
        ld 9, 48(11)
        ld 10, 56(11)
        ld 11, 64(11)
        sc 1
        mfsprg 12, 2
        std 1, 288(12)
        mr 1, 12
        ld 12, 272(1)
        std 3, 0(12)
        std 4, 8(12)
        std 5, 16(12)
        std 6, 24(12)
        std 7, 32(12)
        std 8, 40(12)
        std 9, 48(12)
        std 10, 56(12)
        std 11, 64(12)
        ld 0, 288(1)
        std 0, 72(12)
        std 2, 80(12)
        std 13, 88(12)
        .irp n, 14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        std \n, 96+8*(\n-14)(12)
        .endr
        .irp n, 14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        ld \n, 112+8*(\n-14)(1)
        .endr
        ld 2, 256(1)
        ld 13, 264(1)
        ld 0, 280(1)
        mtcrf 0xff, 0
        addi 1, 1, 512
        ld 0, 16(1)
        mtlr 0
        blr

    # Interrupt stubs: the pending external interrupt or decrementer a
    # return from H_CEDE (MSR[EE] on) delivers. They save the volatile
    # state on the vcpu's interrupt stack (SPRG1 holds r1 meanwhile) and
    # call fuzz_irq(vector).
    .global __fuzz_irq_500
    __fuzz_irq_500:
        mtsprg 1, 1
        mfsprg 1, 3
        addi 1, 1, 1
        sldi 1, 1, 13
        addis 1, 1, FUZZ_IRQ_STACKS@ha
        addi 1, 1, FUZZ_IRQ_STACKS@l
        addi 1, 1, -320
        std 3, 136(1)
        li 3, 0x500
        b __fuzz_irq_common
    .global __fuzz_irq_900
    __fuzz_irq_900:
        mtsprg 1, 1
        mfsprg 1, 3
        addi 1, 1, 1
        sldi 1, 1, 13
        addis 1, 1, FUZZ_IRQ_STACKS@ha
        addi 1, 1, FUZZ_IRQ_STACKS@l
        addi 1, 1, -320
        std 3, 136(1)
        li 3, 0x900
    __fuzz_irq_common:
        std 0, 112(1)
        mfsprg 0, 1
        std 0, 120(1)
        std 0, 0(1)
    "#,
    guest_common::irq_body_asm!("fuzz_irq"),
    r#"
    # A secondary vcpu (RTAS start-cpu: real mode, big-endian, r3 = its
    # id): little-endian, its own stack, fuzz_secondary(id).
    .global __fuzz_secondary
    __fuzz_secondary:
    "#,
    guest_common::endian_fixup_asm!(),
    r#"
        mr 14, 3
        addi 5, 14, 1
        sldi 5, 5, 16
        addis 1, 5, FUZZ_STACKS@ha
        addi 1, 1, FUZZ_STACKS@l
        li 0, 0
        stdu 0, -112(1)
        lis 2, .TOC.@ha
        addi 2, 2, .TOC.@l
        mr 3, 14
        bl fuzz_secondary
        nop
    1:  b 1b
    .popsection
    "#
);

unsafe extern "C" {
    fn __fuzz_secondary();
    fn __fuzz_hcall(args: *const [u64; 9], out: *mut After, base: u64);
    fn __fuzz_irq_500();
    fn __fuzz_irq_900();
}

/// Most vcpus the fuzzer runs (one SMT8 vcore).
const MAX_VCPUS: usize = 8;

#[repr(C, align(16))]
struct IrqStacks([[u8; 8192]; MAX_VCPUS]);
#[unsafe(no_mangle)]
static mut FUZZ_IRQ_STACKS: IrqStacks = IrqStacks([[0; 8192]; MAX_VCPUS]);
/// The secondaries' stacks (vcpu 0 runs on the runtime's).
#[repr(C, align(16))]
struct Stacks([[u8; 65536]; MAX_VCPUS]);
#[unsafe(no_mangle)]
static mut FUZZ_STACKS: Stacks = Stacks([[0; 65536]; MAX_VCPUS]);

static EXTERNALS: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];
static DECREMENTERS: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];

/// This vcpu's id (SPRG3, set when it starts).
fn my_id() -> usize {
    let id: u64;
    // SAFETY: reads the guest's own SPRG3.
    unsafe { asm!("mfsprg {0}, 3", out(reg) id) };
    id as usize % MAX_VCPUS
}

#[unsafe(no_mangle)]
extern "C" fn fuzz_irq(vector: u64) {
    let id = my_id();
    if vector == 0x900 {
        set_dec(0x7fff_ffff);
        DECREMENTERS[id].fetch_add(1, Ordering::Relaxed);
        return;
    }
    EXTERNALS[id].fetch_add(1, Ordering::Relaxed);
    // Take every presented interrupt: an IPI the fuzzer sent itself is
    // cleared (MFRR back to 0xff) before its EOI.
    for _ in 0..16 {
        let (rc, r) = hcall(H_XIRR, [0; 6]);
        let xirr = r[0];
        if rc != H_SUCCESS || xirr & 0xff_ffff == 0 {
            break;
        }
        if xirr & 0xff_ffff == 2 {
            hcall(H_IPI, [id as u64, 0xff, 0, 0, 0, 0]);
        }
        hcall(H_EOI, [xirr, 0, 0, 0, 0, 0]);
    }
}

fn set_dec(v: u64) {
    // SAFETY: the guest's own decrementer.
    unsafe { asm!("mtdec {0}", in(reg) v) };
}

fn mfmsr() -> u64 {
    let m: u64;
    // SAFETY: reads the guest's own MSR.
    unsafe { asm!("mfmsr {0}", out(reg) m) };
    m
}

fn set_msr(m: u64) {
    // SAFETY: the guest's own MSR, back to a value it had.
    unsafe { asm!("mtmsrd {0}", "isync", in(reg) m) };
}

const MSR_EE: u64 = 0x8000;

// ---------------------------------------------------------------------------
// Random values
// ---------------------------------------------------------------------------

#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }
    /// An edge value: 0, 1, -1, powers of two and their neighbours,
    /// sign bits.
    fn edge(&mut self) -> u64 {
        let b = self.below(64);
        match self.below(8) {
            0 => 0,
            1 => 1,
            2 => u64::MAX,
            3 => 1 << b,
            4 => (1u64 << b).wrapping_sub(1),
            5 => (1u64 << b).wrapping_add(1),
            6 => 0x8000_0000_0000_0000 | self.below(16),
            _ => 0xffff_ffff,
        }
    }
    /// Mostly `valid`, else an edge or random value.
    fn arg(&mut self, valid: u64) -> u64 {
        match self.below(10) {
            0 => self.edge(),
            1 => self.next(),
            _ => valid,
        }
    }
}

// ---------------------------------------------------------------------------
// The fuzzer
// ---------------------------------------------------------------------------

/// Bytes below the device tree (which the hypervisor puts at the top of
/// guest memory, under the RTAS area) that the hypervisor may write: RTAS
/// buffers, VPAs, H_PAGE_INIT targets.
const ARENA: u64 = 1 << 20;
/// The guard zone under the arena, checked.
const GUARD: u64 = 64 << 10;
const GUARD_PATTERN: u64 = 0x4655_5a5a_4755_4152;
/// An IOMMU page, and a TCE's permission bits (PAPR).
const PAGE: u64 = 4096;
const TCE_READ: u64 = 1;
const TCE_WRITE: u64 = 2;
/// The VRMA's VSID (1 TiB segment), which the fuzzer never uses.
const VRMA_VSID: u64 = 0x1ff_ffff;

#[derive(Clone)]
struct Fuzzer {
    /// This vcpu, and how many the VM has.
    id: usize,
    vcpus: u64,
    rng: Rng,
    mem: u64,
    /// The arena: [top - ARENA, top), below the device tree.
    top: u64,
    /// The device tree the hypervisor gave (it must never change).
    fdt: &'static [u8],
    fdt_sum: u64,
    entries: u64,
    vtermno: u64,
    /// RTAS tokens the fuzzer may call (none that ends the partition).
    tokens: [u32; 24],
    ntokens: usize,
    /// HPT slots that held entries at start (the VRMA), with their words.
    protected: [(u64, u64, u64); 16],
    nprotected: usize,
    image: &'static [u8],
    image_sum: u64,
    /// The l-lan adapter's unit address (its window's LIOBN) and window
    /// bytes, from the device tree (a number no device has, if none).
    lan: u64,
    /// The v-scsi adapter's unit address (its LIOBN too).
    scsi: u64,
    window: u64,
    calls: [u64; 8],
    anomalies: u64,
}

/// Hypercalls in the fuzzer's mix, with a weight each.
const MIX: &[(u64, u32)] = &[
    (H_ENTER, 12),
    (H_REMOVE, 8),
    (H_READ, 6),
    (H_PROTECT, 6),
    (H_BULK_REMOVE, 6),
    (H_CLEAR_REF, 3),
    (H_CLEAR_MOD, 3),
    (H_RTAS, 10),
    (H_SET_MODE, 4),
    (H_REGISTER_VPA, 4),
    (H_PAGE_INIT, 3),
    (H_CEDE, 2),
    (H_PROD, 2),
    (H_CONFER, 2),
    (H_IPI, 3),
    (H_XIRR, 2),
    (H_XIRR_X, 2),
    (H_EOI, 2),
    (H_CPPR, 2),
    (H_IPOLL, 2),
    (H_GET_TERM_CHAR, 2),
    (H_PUT_TERM_CHAR, 2),
    (H_SET_SPRG0, 2),
    (H_SET_DABR, 1),
    (H_GET_CPU_CHARACTERISTICS, 2),
    (H_GET_TCE, 2),
    (H_PUT_TCE, 4),
    (H_STUFF_TCE, 2),
    (H_PUT_TCE_INDIRECT, 3),
    (H_VIO_SIGNAL, 2),
    (H_REGISTER_LOGICAL_LAN, 3),
    (H_FREE_LOGICAL_LAN, 1),
    (H_ADD_LOGICAL_LAN_BUFFER, 4),
    (H_SEND_LOGICAL_LAN, 4),
    (H_MULTICAST_CTRL, 1),
    (H_CHANGE_LOGICAL_LAN_MAC, 1),
    (H_REG_CRQ, 2),
    (H_FREE_CRQ, 1),
    (H_SEND_CRQ, 4),
    (H_ENABLE_CRQ, 1),
    (0, 6), // an unknown number
];

fn checksum(b: &[u8]) -> u64 {
    b.chunks(8).fold(0xcbf2_9ce4_8422_2325u64, |h, c| {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        (h ^ u64::from_le_bytes(w)).wrapping_mul(0x100_0000_01b3)
    })
}

impl Fuzzer {
    fn anomaly(&mut self, what: core::fmt::Arguments<'_>) {
        self.anomalies += 1;
        if self.anomalies <= 10 {
            say(format_args!("fuzz: ANOMALY vcpu {}: {what}", self.id));
        }
    }

    fn is_protected(&self, ptex: u64) -> bool {
        self.protected[..self.nprotected]
            .iter()
            .any(|p| p.0 == ptex)
    }

    /// A PTE index: mostly in range, never a protected one.
    fn ptex(&mut self) -> u64 {
        loop {
            let i = match self.rng.below(10) {
                0 => self.rng.edge(),
                1 => self.entries + self.rng.below(16),
                _ => self.rng.below(self.entries),
            };
            if !self.is_protected(i) {
                return i;
            }
        }
    }

    /// An address the hypervisor may write: in the arena, or beyond
    /// guest memory (including straddling its end).
    fn writable_addr(&mut self, len: u64) -> u64 {
        match self.rng.below(10) {
            0 => self.mem - self.rng.below(len.max(8)),
            1 => self.mem + self.rng.below(1 << 30),
            2 => self.rng.edge() | (self.mem << 1),
            _ => self.top - ARENA + (self.rng.below(ARENA - len.max(8)) & !7),
        }
    }

    fn hpte_v(&mut self) -> u64 {
        loop {
            let mut v = self.rng.next() & !0x3f80; // AVPN, SW bits random
            v |= self.rng.below(4) << 62; // B: 256M, 1T, reserved
            v = (v & !0x7) | self.rng.pick(&[1, 1, 1, 5, 0, 3, 7]); // V, L, H
            let vsid = (v >> 24) & 0xff_ffff_ffff;
            if !(v >> 62 == 1 && vsid >> 13 == VRMA_VSID >> 13) {
                return v;
            }
        }
    }

    fn hpte_r(&mut self) -> u64 {
        let rpn = match self.rng.below(10) {
            0 => self.rng.edge() >> 12,
            1 => (self.mem >> 12) + self.rng.below(1 << 16),
            _ => self.rng.below(self.mem >> 12),
        };
        let wimg = self.rng.pick(&[0x10, 0x10, 0x0, 0x20, 0x28, 0x08, 0x78]);
        (rpn << 12) | wimg | (self.rng.next() & 0x3) | (self.rng.below(2) << 63)
    }

    fn rtas(&mut self, buf: u64) -> [u64; 9] {
        let token = if self.rng.chance(85) && self.ntokens > 0 {
            let i = self.rng.below(self.ntokens as u64) as usize;
            self.tokens[i]
        } else {
            self.rng.next() as u32
        };
        let nargs = if self.rng.chance(90) {
            self.rng.below(9) as u32
        } else {
            self.rng.edge() as u32
        };
        let nret = if self.rng.chance(90) {
            self.rng.below(9) as u32
        } else {
            self.rng.edge() as u32
        };
        if buf >= self.top - ARENA && buf.checked_add(96).is_some_and(|e| e <= self.top) {
            let mut cells = [0u32; 24];
            cells[0] = token;
            cells[1] = nargs;
            cells[2] = nret;
            for c in cells[3..].iter_mut() {
                *c = match self.rng.below(4) {
                    0 => self.rng.next() as u32,
                    1 => self.rng.edge() as u32,
                    2 => (self.top - ARENA + self.rng.below(ARENA)) as u32,
                    _ => self.rng.below(16) as u32,
                };
            }
            for (i, c) in cells.iter().enumerate() {
                // SAFETY: inside the arena, which only the fuzzer and the
                // hypervisor use.
                unsafe { core::ptr::write_volatile((buf + 4 * i as u64) as *mut u32, c.to_be()) };
            }
        }
        [H_RTAS, buf, 0, 0, 0, 0, 0, 0, 0]
    }

    /// A LIOBN: the l-lan adapter's or the v-scsi adapter's, mostly.
    fn liobn(&mut self) -> u64 {
        let dev = if self.rng.chance(50) {
            self.lan
        } else {
            self.scsi
        };
        self.rng.arg(dev)
    }

    /// An I/O bus address: mostly a page of the window (half the time
    /// one of its first eight, so mappings, queues and buffers meet),
    /// else past it, misaligned or anything.
    fn ioba(&mut self) -> u64 {
        match self.rng.below(10) {
            0 => self.rng.edge(),
            1 => self.window + self.rng.below(4) * PAGE,
            2 => self.rng.below(self.window),
            3..=5 => self.rng.below(self.window / PAGE) * PAGE,
            _ => self.rng.below(8) * PAGE,
        }
    }

    /// A TCE the device may only ever write through into the arena:
    /// unmapped, a page of the arena with any permission, a read-only
    /// page anywhere (in guest memory or not), or anything without the
    /// write bit (the device may read where it likes, not write).
    fn tce(&mut self) -> u64 {
        let r = &mut self.rng;
        match r.below(8) {
            0 => 0,
            1 => r.edge() & !TCE_WRITE,
            2 => r.next() & !TCE_WRITE,
            3 => (r.below(self.mem) & !(PAGE - 1)) | TCE_READ,
            4 => (self.mem + r.below(1 << 30)) & !(PAGE - 1) | TCE_READ | TCE_WRITE,
            _ => {
                let page = (self.top - ARENA + r.below(ARENA)) & !(PAGE - 1);
                let rw = TCE_READ | TCE_WRITE;
                page | r.pick(&[TCE_READ, TCE_WRITE, rw, rw])
            }
        }
    }

    /// A buffer descriptor: valid bit, length, IOBA (mostly sensible).
    fn bd(&mut self) -> u64 {
        if self.rng.chance(10) {
            return self.rng.next();
        }
        let valid = if self.rng.chance(90) { 1 << 63 } else { 0 };
        let len = self.rng.pick(&[16, 64, 1514, 2048, 4096, 65536, 0xff_ffff]);
        valid | len << 32 | (self.ioba() & 0xffff_ffff)
    }

    /// An H_PUT_TCE_INDIRECT list: mostly a page of the arena holding
    /// `count` entries from [`Self::tce`], else anything.
    fn tce_list(&mut self, count: u64) -> u64 {
        if self.rng.chance(15) {
            let edge = self.rng.edge();
            return self.rng.pick(&[edge, self.mem, self.top - ARENA + 8]);
        }
        let list = (self.top - ARENA + self.rng.below(ARENA)) & !(PAGE - 1);
        for k in 0..count.min(PAGE / 8) {
            let t = self.tce();
            // SAFETY: inside the arena, which only the fuzzer and the
            // hypervisor use.
            unsafe { core::ptr::write_volatile((list + 8 * k) as *mut u64, t.to_be()) };
        }
        list
    }

    /// The arguments (r3 = the number, r4.. = arguments) of one call.
    fn draw(&mut self) -> [u64; 9] {
        let total: u32 = MIX.iter().map(|m| m.1).sum();
        let mut w = self.rng.below(total as u64) as u32;
        let nr = MIX
            .iter()
            .find(|m| {
                let hit = w < m.1;
                w = w.saturating_sub(m.1);
                hit
            })
            .map_or(0, |m| m.0);
        let r = &mut self.rng;
        let flags_hpt = |r: &mut Rng| {
            let f = [H_EXACT, H_AVPN, H_ANDCOND, H_READ_4, 0, 0][r.below(6) as usize];
            if r.chance(10) {
                r.next()
            } else {
                f
            }
        };
        match nr {
            H_ENTER => {
                let f = flags_hpt(&mut self.rng);
                let i = self.ptex();
                [nr, f, i, self.hpte_v(), self.hpte_r(), 0, 0, 0, 0]
            }
            H_REMOVE | H_PROTECT | H_CLEAR_REF | H_CLEAR_MOD | H_READ => {
                let f = flags_hpt(&mut self.rng);
                let i = self.ptex();
                let avpn = if self.rng.chance(50) {
                    self.hpte_v()
                } else {
                    self.rng.next()
                };
                [nr, f, i, avpn, 0, 0, 0, 0, 0]
            }
            H_BULK_REMOVE => {
                let mut a = [nr, 0, 0, 0, 0, 0, 0, 0, 0];
                for k in 0..4 {
                    let kind = self.rng.pick(&[
                        BULK_REQUEST,
                        BULK_REQUEST,
                        BULK_REQUEST,
                        BULK_END,
                        BULK_RESPONSE,
                        0,
                    ]);
                    let fl = self
                        .rng
                        .pick(&[0, BULK_AVPN, BULK_ANDCOND, BULK_AVPN | BULK_ANDCOND]);
                    let ptex = self.ptex() & BULK_PTEX;
                    a[1 + 2 * k] = if self.rng.chance(5) {
                        self.rng.next()
                    } else {
                        kind | fl | ptex
                    };
                    a[2 + 2 * k] = self.hpte_v();
                }
                a
            }
            H_RTAS => {
                let buf = self.writable_addr(96);
                self.rtas(buf)
            }
            H_SET_MODE => {
                let valid = r.below(6);
                let resource = r.arg(valid);
                // Never big-endian interrupts (its handlers are
                // little-endian), never a live breakpoint on itself.
                let mflags = match resource {
                    4 => r.pick(&[1, 2, 0xff, u64::MAX]),
                    3 => r.pick(&[0, 3, 1, 2, 4]),
                    _ => r.arg(0),
                };
                let beyond = self.mem + (r.next() & 0xffff_fff8);
                let (v1, v2) = match resource {
                    1 => {
                        let any = r.next() & !3;
                        (r.pick(&[0, beyond, beyond | 3, any]), 0)
                    }
                    2 => {
                        let any = r.next() & !0x7;
                        (beyond, r.pick(&[0, 0x7, 0x1ff, any]))
                    }
                    _ => (r.next(), r.next()),
                };
                let v1 = if resource == 1 && v1 & 3 != 0 && v1 < self.mem {
                    v1 & !3
                } else {
                    v1
                };
                [nr, mflags, resource, v1, v2, 0, 0, 0, 0]
            }
            H_REGISTER_VPA => {
                let f = r.pick(&[1u64, 2, 3, 5, 6, 7, 0, 4]) << 45;
                let f = if r.chance(10) { r.next() } else { f };
                let cpu = r.below(self.vcpus);
                let cpu = r.arg(cpu);
                let addr = self.writable_addr(4096);
                [nr, f, cpu, addr, 0, 0, 0, 0, 0]
            }
            H_PAGE_INIT => {
                let f = r.pick(&[
                    H_ZERO_PAGE,
                    H_COPY_PAGE,
                    H_ZERO_PAGE | H_ICACHE_INVALIDATE,
                    H_COPY_PAGE | H_ICACHE_SYNCHRONIZE,
                    0,
                ]);
                let f = if r.chance(10) { r.next() } else { f };
                let dest = self.writable_addr(4096) & !0xfff;
                let dest = if self.rng.chance(10) {
                    dest | 0x800
                } else {
                    dest
                };
                let src = match self.rng.below(4) {
                    0 => self.rng.edge(),
                    _ => self.rng.below(self.mem) & !0xfff,
                };
                [nr, f, dest, src, 0, 0, 0, 0, 0]
            }
            H_CEDE => {
                set_dec(self.rng.below(50_000) + 1);
                [nr, 0, 0, 0, 0, 0, 0, 0, 0]
            }
            H_PROD | H_CONFER => {
                let (a, b) = (r.below(self.vcpus), r.below(self.vcpus));
                [nr, r.arg(a), r.arg(b), 0, 0, 0, 0, 0, 0]
            }
            H_IPI => {
                let to = r.below(self.vcpus);
                let mfrr = r.pick(&[0, 5, 0xff, 0x100, u64::MAX]);
                [nr, r.arg(to), mfrr, 0, 0, 0, 0, 0, 0]
            }
            H_EOI => {
                let valid = r.pick(&[0xff00_0002, 0xff00_0000, 0x0000_0002]);
                [nr, r.arg(valid), 0, 0, 0, 0, 0, 0, 0]
            }
            H_CPPR => [nr, r.arg(0xff), 0, 0, 0, 0, 0, 0, 0],
            H_IPOLL | H_XIRR_X => [nr, r.arg(0), 0, 0, 0, 0, 0, 0, 0],
            H_GET_TERM_CHAR => [nr, r.arg(self.vtermno), 0, 0, 0, 0, 0, 0, 0],
            H_PUT_TERM_CHAR => {
                // Nothing printed on the real vty (the console is read
                // by people and tests), its `reg` or 0 (the first vty):
                // length 0 or refused there, anything elsewhere.
                let t = r.arg(self.vtermno);
                let len = if t == self.vtermno || t == 0 {
                    r.pick(&[0, 17, u64::MAX])
                } else {
                    r.below(20)
                };
                [nr, t, len, r.next(), r.next(), 0, 0, 0, 0]
            }
            H_GET_TCE => {
                let liobn = self.liobn();
                [nr, liobn, self.ioba(), 0, 0, 0, 0, 0, 0]
            }
            H_PUT_TCE => {
                let liobn = self.liobn();
                [nr, liobn, self.ioba(), self.tce(), 0, 0, 0, 0, 0]
            }
            H_STUFF_TCE => {
                let liobn = self.liobn();
                let value = if self.rng.chance(70) { 0 } else { self.tce() };
                let count = self.rng.pick(&[1, 2, 16, 512, 513, self.window / PAGE]);
                [nr, liobn, self.ioba(), value, count, 0, 0, 0, 0]
            }
            H_PUT_TCE_INDIRECT => {
                let liobn = self.liobn();
                let edge = self.rng.edge();
                let count = self.rng.pick(&[1, 2, 3, 64, 512, 513, edge]);
                let list = self.tce_list(count);
                [nr, liobn, self.ioba(), list, count, 0, 0, 0, 0]
            }
            H_VIO_SIGNAL => {
                let any = self.rng.next();
                let unit = self.rng.pick(&[self.lan, self.scsi, self.vtermno, any]);
                let edge = self.rng.edge();
                let mode = self.rng.pick(&[0, 1, 2, 3, edge]);
                [nr, unit, mode, 0, 0, 0, 0, 0, 0]
            }
            H_REGISTER_LOGICAL_LAN => {
                let unit = self.rng.arg(self.lan);
                // Half the time the layout a driver would use (pages 0-2
                // of the window), so the adapter opens now and then.
                let (list, q, filter) = if self.rng.chance(50) {
                    let entries = self.rng.pick(&[1, 4, 256]);
                    (0, 1 << 63 | (16 * entries) << 32 | PAGE, 2 * PAGE)
                } else {
                    (self.ioba(), self.bd(), self.ioba())
                };
                [nr, unit, list, q, filter, self.rng.next(), 0, 0, 0]
            }
            H_FREE_LOGICAL_LAN => [nr, r.arg(self.lan), 0, 0, 0, 0, 0, 0, 0],
            H_ADD_LOGICAL_LAN_BUFFER => {
                let unit = self.rng.arg(self.lan);
                [nr, unit, self.bd(), 0, 0, 0, 0, 0, 0]
            }
            H_SEND_LOGICAL_LAN => {
                let unit = self.rng.arg(self.lan);
                let mut a = [nr, unit, 0, 0, 0, 0, 0, 0, 0];
                let n = self.rng.below(7) as usize;
                for bd in a[2..2 + n].iter_mut() {
                    *bd = self.bd();
                }
                a[8] = if self.rng.chance(90) {
                    0
                } else {
                    self.rng.next()
                };
                a
            }
            H_MULTICAST_CTRL => [nr, r.arg(self.lan), r.next(), r.next(), 0, 0, 0, 0, 0],
            H_CHANGE_LOGICAL_LAN_MAC => [nr, r.arg(self.lan), r.next(), 0, 0, 0, 0, 0, 0],
            H_REG_CRQ => {
                let unit = self.rng.arg(self.scsi);
                let edge = self.rng.edge();
                let len = self.rng.pick(&[PAGE, 2 * PAGE, 16 * PAGE, 3000, edge]);
                [nr, unit, self.ioba(), len, 0, 0, 0, 0, 0]
            }
            H_FREE_CRQ | H_ENABLE_CRQ => [nr, r.arg(self.scsi), 0, 0, 0, 0, 0, 0, 0],
            H_SEND_CRQ => {
                // Mostly what ibmvscsi sends: an init, a MAD or an SRP IU
                // (of 256 bytes or another length) naming an IOBA; the
                // IU is whatever the window shows there (the arena's
                // bytes, which the fuzzer changes all along).
                let unit = self.rng.arg(self.scsi);
                let any = self.rng.next();
                let hi = self.rng.pick(&[
                    0xc001 << 48,
                    0xc002 << 48,
                    0x8001_0000_0000_0100,
                    0x8002_0000_0000_0018,
                    0x8001_0000_0000_0030,
                    0xff01 << 48,
                    any,
                ]);
                [nr, unit, hi, self.ioba(), 0, 0, 0, 0, 0]
            }
            H_SET_SPRG0 | H_SET_DABR => [nr, r.next(), 0, 0, 0, 0, 0, 0, 0],
            H_XIRR | H_GET_CPU_CHARACTERISTICS => [nr, r.next(), 0, 0, 0, 0, 0, 0, 0],
            _ => {
                // An unknown number: a gap in the table, past its end, in
                // the RTAS range, or anything.
                let n = match r.below(4) {
                    0 => (r.below(0x200) << 2) | 0x400,
                    1 => 0xf000 + (r.below(0x100) << 2),
                    2 => r.below(0x400) | 1,
                    _ => r.next(),
                };
                let n = if MIX.iter().any(|m| m.0 == n && n != 0) || n == H_RTAS {
                    0x7f00
                } else {
                    n
                };
                [
                    n,
                    r.next(),
                    r.next(),
                    r.next(),
                    r.next(),
                    r.next(),
                    r.next(),
                    r.next(),
                    r.next(),
                ]
            }
        }
    }

    /// One call and its checks.
    fn one(&mut self, n: u64) {
        let args = self.draw();
        let base = self.rng.next() & !0xff;
        let mut after = After::default();
        let msr = mfmsr();
        // SAFETY: `sc 1` with these arguments: the hypervisor may write
        // only the arena (every buffer address above is in it or outside
        // guest memory); the registers are checked below.
        unsafe { __fuzz_hcall(&args, &mut after, base) };
        let msr_after = mfmsr();
        if args[0] == H_CEDE {
            set_msr(msr);
            set_dec(0x7fff_ffff);
        }
        self.calls[0] += 1;
        let rc = after.ret[0] as i64;
        if !papr::is_return_code(rc) {
            self.anomaly(format_args!(
                "call {n}: {:#x}({:#x}, {:#x}, {:#x}, {:#x}) answered {rc} (not a PAPR code)",
                args[0], args[1], args[2], args[3], args[4]
            ));
        }
        let changed = (after.r2 != base + 2) as u32
            | ((after.r13 != base + 13) as u32) << 1
            | after.nv.iter().enumerate().fold(0u32, |m, (i, &v)| {
                m | ((v != base + 14 + i as u64) as u32) << (i + 2)
            });
        if changed != 0 {
            self.anomaly(format_args!("call {n}: {:#x}({:#x}, {:#x}, {:#x}) changed non-volatile registers (mask {changed:#x}: bit 0 r2, 1 r13, 2.. r14..)", args[0], args[1], args[2], args[3]));
        }
        let mask = if args[0] == H_CEDE { !MSR_EE } else { !0 };
        if (msr ^ msr_after) & mask != 0 {
            self.anomaly(format_args!(
                "call {n}: {:#x}({:#x}, {:#x}) changed the MSR {msr:#x} -> {msr_after:#x}",
                args[0], args[1], args[2]
            ));
        }
        if args[0] == H_ENTER || args[0] == H_BULK_REMOVE || args[0] == H_REMOVE {
            self.calls[1] += (rc == H_SUCCESS) as u64;
        }
        if args[0] == H_RTAS {
            self.calls[2] += 1;
        }
    }

    /// The slow checks: own image, arena guard, untouched HPT entries,
    /// no unexpected interrupt.
    fn audit(&mut self, n: u64) {
        if checksum(self.image) != self.image_sum {
            self.anomaly(format_args!(
                "after call {n}: the guest's own code or constants changed"
            ));
            self.image_sum = checksum(self.image);
        }
        if checksum(self.fdt) != self.fdt_sum {
            self.anomaly(format_args!(
                "after call {n}: the guest's device tree changed"
            ));
            self.fdt_sum = checksum(self.fdt);
        }
        let guard = self.top - ARENA - GUARD;
        for a in (guard..guard + GUARD).step_by(8) {
            // SAFETY: inside guest memory, below the arena.
            let w = unsafe { core::ptr::read_volatile(a as *const u64) };
            if w != GUARD_PATTERN {
                self.anomaly(format_args!(
                    "after call {n}: guard word at {a:#x} is {w:#x}"
                ));
                // SAFETY: as above.
                unsafe { core::ptr::write_volatile(a as *mut u64, GUARD_PATTERN) };
                break;
            }
        }
        for k in 0..self.nprotected {
            let (i, v, r) = self.protected[k];
            let (rc, got) = hcall(H_READ, [0, i, 0, 0, 0, 0]);
            if rc != H_SUCCESS || got[0] != v || got[1] != r {
                self.anomaly(format_args!(
                    "after call {n}: real-mode HPTE {i} is {:#x} {:#x}, was {v:#x} {r:#x}",
                    got[0], got[1]
                ));
                self.protected[k] = (i, got[0], got[1]);
            }
        }
        let t = trap_log();
        if t.count != 0 {
            self.anomaly(format_args!(
                "after call {n}: {} unexpected interrupt(s), last {:#x} at {:#x}",
                t.count, t.vector, t.srr0
            ));
            // SAFETY: the trap log of this single-vcpu guest.
            unsafe { (&raw mut guest_common::GUEST_TRAP_LOG).write_volatile(Default::default()) };
        }
    }
}

unsafe extern "C" {
    static __rodata_end: u8;
}

fn arg<'a>(args: &'a str, key: &str) -> Option<&'a str> {
    args.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// The fuzzer every vcpu copies (made by vcpu 0 before it starts the
/// others), its seed and each vcpu's share of the calls.
static mut TEMPLATE: Option<Fuzzer> = None;
static SEED: AtomicU64 = AtomicU64::new(0);
static SHARE: AtomicU64 = AtomicU64::new(0);
/// Sums over the vcpus that have finished: calls, RTAS calls, successful
/// HPT changes, anomalies; and how many have finished.
static TOTALS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
static FINISHED: AtomicU64 = AtomicU64::new(0);

/// One line on the console, whole (vcpus print one at a time).
fn say(args: core::fmt::Arguments<'_>) {
    static LOCK: AtomicBool = AtomicBool::new(false);
    while LOCK.swap(true, Ordering::Acquire) {
        core::hint::spin_loop();
    }
    println!("{args}");
    LOCK.store(false, Ordering::Release);
}

/// Sets this vcpu's id (SPRG3) and lets its ICP present everything.
fn vcpu_setup(id: usize) {
    // SAFETY: the guest's own SPRG3.
    unsafe { asm!("mtsprg 3, {0}", in(reg) id as u64) };
    hcall(H_CPPR, [0xff, 0, 0, 0, 0, 0]);
}

/// This vcpu's share of the calls, added to the totals.
fn run_share(mut f: Fuzzer, calls: u64) {
    for n in 0..calls {
        f.one(n);
        if n % 1024 == 1023 {
            f.audit(n);
        }
    }
    f.audit(calls);
    for (t, v) in TOTALS
        .iter()
        .zip([f.calls[0], f.calls[2], f.calls[1], f.anomalies])
    {
        t.fetch_add(v, Ordering::AcqRel);
    }
    FINISHED.fetch_add(1, Ordering::AcqRel);
}

fn fuzzer_for(id: usize) -> Fuzzer {
    // SAFETY: written once by vcpu 0 before any other vcpu starts.
    // (Nothing in a Fuzzer owns anything: a bitwise copy is a clone.)
    let mut f = unsafe { (&raw const TEMPLATE).read() }.expect("made by vcpu 0");
    let seed = SEED.load(Ordering::Acquire);
    f.id = id;
    f.rng = Rng((seed ^ (id as u64) << 40).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    f
}

#[unsafe(no_mangle)]
extern "C" fn fuzz_secondary(id: u64) -> ! {
    let id = id as usize;
    vcpu_setup(id);
    run_share(fuzzer_for(id), SHARE.load(Ordering::Acquire));
    loop {
        set_dec(0x7fff_ffff);
        hcall(H_CEDE, [0; 6]);
        set_msr(mfmsr() & !MSR_EE);
    }
}

fn fuzz(fdt: &guest_common::fdt::Fdt<'_>, fdt_addr: u64, args: &str) -> bool {
    let seed: u64 = arg(args, "seed").and_then(|s| s.parse().ok()).unwrap_or(1);
    let calls: u64 = arg(args, "calls")
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    // One cpu node per vcore, its threads' ids in
    // ibm,ppc-interrupt-server#s.
    let vcpus = fdt
        .find_node("/cpus")
        .map_or(1, |c| {
            c.children()
                .filter_map(|n| n.property("ibm,ppc-interrupt-server#s"))
                .map(|p| p.value.len() / 4)
                .sum::<usize>()
        })
        .clamp(1, MAX_VCPUS) as u64;
    let mem = guest_common::memory_size(Some(fdt));
    let entries = 1u64 << (guest_common::hpt_order(Some(fdt)) - 4);
    vcpu_setup(0);
    install_trap_handlers();
    install_vector(0x500, __fuzz_irq_500 as *const () as u64);
    install_vector(0x900, __fuzz_irq_900 as *const () as u64);
    let start = 0x40_0000u64;
    // The linker's end of the read-only part of the image.
    let end = &raw const __rodata_end as u64;
    // SAFETY: the guest's own image, read only.
    let image = unsafe { core::slice::from_raw_parts(start as *const u8, (end - start) as usize) };
    // SAFETY: the device tree the hypervisor passed, read only.
    let tree = unsafe { core::slice::from_raw_parts(fdt_addr as *const u8, fdt.total_size()) };
    let top = fdt_addr & !0xfff;
    let mut f = Fuzzer {
        id: 0,
        vcpus,
        rng: Rng(1),
        mem,
        top,
        fdt: tree,
        fdt_sum: checksum(tree),
        entries,
        vtermno: guest_common::vtermno(),
        tokens: [0; 24],
        ntokens: 0,
        protected: [(0, 0, 0); 16],
        nprotected: 0,
        image,
        image_sum: checksum(image),
        lan: 0x3000_00ff,
        scsi: 0x3000_00fe,
        window: 1 << 20,
        calls: [0; 8],
        anomalies: 0,
    };
    if let Some((reg, window)) = guest_common::vio_device(fdt, "network") {
        (f.lan, f.window) = (reg, window.max(PAGE));
    }
    if let Some((reg, _)) = guest_common::vio_device(fdt, "vscsi") {
        f.scsi = reg;
    }
    // RTAS services, except those that end or restart the partition or
    // print on the console.
    const ENDING: [&str; 5] = [
        "power-off",
        "system-reboot",
        "ibm,os-term",
        "stop-self",
        "display-character",
    ];
    if let Some(rtas) = fdt.find_node("/rtas") {
        for p in rtas.properties() {
            if p.value.len() == 4
                && !p.name.starts_with("linux,")
                && !p.name.starts_with("rtas-")
                && !ENDING.contains(&p.name)
                && f.ntokens < f.tokens.len()
            {
                f.tokens[f.ntokens] =
                    u32::from_be_bytes([p.value[0], p.value[1], p.value[2], p.value[3]]);
                f.ntokens += 1;
            }
        }
    }
    // The real-mode entries the hypervisor made: found, remembered, never
    // named.
    for i in (0..entries).step_by(4) {
        let (rc, r) = guest_common::hcall8(H_READ, [H_READ_4, i, 0, 0, 0, 0, 0, 0]);
        for k in 0..4 {
            if rc == H_SUCCESS && r[2 * k] & 1 != 0 && f.nprotected < f.protected.len() {
                f.protected[f.nprotected] = (i + k as u64, r[2 * k], r[2 * k + 1]);
                f.nprotected += 1;
            }
        }
    }
    let guard = top - ARENA - GUARD;
    for a in (guard..guard + GUARD).step_by(8) {
        // SAFETY: guest memory below the arena, used for nothing else.
        unsafe { core::ptr::write_volatile(a as *mut u64, GUARD_PATTERN) };
    }
    let share = calls / vcpus;
    let calls = share * vcpus;
    println!(
        "fuzz: seed {seed}: {calls} calls on {vcpus} vcpus, {} RTAS services, {} real-mode HPTEs protected, HPT of {entries} entries, arena {:#x}-{top:#x}",
        f.ntokens, f.nprotected, top - ARENA
    );
    SEED.store(seed, Ordering::Release);
    SHARE.store(share, Ordering::Release);
    // SAFETY: no other vcpu runs yet.
    unsafe { (&raw mut TEMPLATE).write(Some(f)) };
    let start_cpu = guest_common::rtas_token(fdt, "start-cpu").unwrap_or(0);
    for id in 1..vcpus as u32 {
        let rc = guest_common::rtas_call(
            start_cpu,
            &[id, __fuzz_secondary as *const () as u32, id],
            1,
        );
        if rc != 0 {
            say(format_args!("fuzz: FAIL start-cpu {id}: {rc}"));
            return false;
        }
    }
    run_share(fuzzer_for(0), share);
    while FINISHED.load(Ordering::Acquire) < vcpus {
        set_dec(512_000);
        hcall(H_CEDE, [0; 6]);
        set_msr(mfmsr() & !MSR_EE);
    }
    let t: [u64; 4] = core::array::from_fn(|i| TOTALS[i].load(Ordering::Acquire));
    let ext: u64 = EXTERNALS.iter().map(|e| e.load(Ordering::Relaxed)).sum();
    let dec: u64 = DECREMENTERS.iter().map(|e| e.load(Ordering::Relaxed)).sum();
    say(format_args!(
        "fuzz: seed {seed}: {} calls ({} RTAS, {} HPT changes succeeded), {ext} externals, {dec} decrementers, {} anomalies",
        t[0], t[1], t[2], t[3]
    ));
    t[3] == 0 && t[0] == calls
}

// ---------------------------------------------------------------------------
// The neighbour
// ---------------------------------------------------------------------------

const NEIGHBOUR_HPTES: usize = 256;

fn pattern(a: u64) -> u64 {
    a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x4e45_4947_4842_4f52
}

fn neighbour(fdt: &guest_common::fdt::Fdt<'_>, fdt_addr: u64) -> bool {
    // Everything from 8 MiB up to the device tree (the top holds the tree
    // and the RTAS area, which stay as the hypervisor made them).
    let mem = fdt_addr & !0xfff;
    let entries = 1u64 << (guest_common::hpt_order(Some(fdt)) - 4);
    let from = 8u64 << 20;
    for a in (from..mem).step_by(8) {
        // SAFETY: guest memory above the image and its stack.
        unsafe { core::ptr::write_volatile(a as *mut u64, pattern(a)) };
    }
    // Entries of a 256 MiB segment the neighbour never uses, mapping its
    // own memory; H_ENTER picks the slots.
    let mut hptes = [(0u64, 0u64, 0u64); NEIGHBOUR_HPTES];
    let mut made = 0;
    let mut rng = Rng(0x6e65_6967_6862_6f72);
    for h in hptes.iter_mut() {
        let v = ((0x1234_5000 + rng.below(1 << 12)) << 12) | 1;
        let r = ((rng.below(mem >> 12)) << 12) | 0x190;
        let ptex = rng.below(entries) & !7;
        let (rc, o) = hcall(H_ENTER, [0, ptex, v, r, 0, 0]);
        if rc == H_SUCCESS {
            let (_, got) = hcall(H_READ, [0, o[0], 0, 0, 0, 0]);
            *h = (o[0], got[0], got[1]);
            made += 1;
        }
    }
    println!(
        "neighbour: {} MiB filled, {made} HPTEs entered; checking until 'q'",
        (mem - from) >> 20
    );
    let mut rounds = 0u64;
    let mut bad = 0u64;
    loop {
        for a in (from..mem).step_by(8) {
            // SAFETY: as above.
            let w = unsafe { core::ptr::read_volatile(a as *const u64) };
            if w != pattern(a) {
                bad += 1;
                if bad <= 10 {
                    println!("neighbour: FAIL memory at {a:#x} is {w:#x}");
                }
                // SAFETY: as above.
                unsafe { core::ptr::write_volatile(a as *mut u64, pattern(a)) };
            }
            if a % (1 << 20) == 0 {
                let (rc, r) = hcall(H_GET_TERM_CHAR, [guest_common::vtermno(), 0, 0, 0, 0, 0]);
                if rc == H_SUCCESS && r[0] > 0 && (r[1] >> 56) as u8 == b'q' {
                    println!(
                        "neighbour: {rounds} rounds over {} MiB and {made} HPTEs: {}",
                        (mem - from) >> 20,
                        if bad == 0 { "intact" } else { "FAILED" }
                    );
                    return bad == 0;
                }
            }
        }
        for &(i, v, r) in &hptes[..made] {
            let (rc, got) = hcall(H_READ, [0, i, 0, 0, 0, 0]);
            if rc != H_SUCCESS || got[0] != v || got[1] & !0x180 != r & !0x180 {
                bad += 1;
                if bad <= 10 {
                    println!(
                        "neighbour: FAIL HPTE {i} is {:#x} {:#x}, was {v:#x} {r:#x}",
                        got[0], got[1]
                    );
                }
            }
        }
        rounds += 1;
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn guest_main(fdt_addr: u64) -> ! {
    let fdt = device_tree(fdt_addr);
    let Some(f) = fdt.as_ref() else {
        println!("fuzz: FAIL no device tree");
        guest_common::power_off(None)
    };
    let args = f.chosen().bootargs().unwrap_or("");
    let role = if args.split_whitespace().any(|w| w == "neighbour") {
        "neighbour"
    } else {
        "fuzz"
    };
    let ok = if role == "neighbour" {
        neighbour(f, fdt_addr)
    } else {
        fuzz(f, fdt_addr, args)
    };
    println!("{role}: result {}", if ok { "ok" } else { "FAILED" });
    guest_common::power_off(fdt.as_ref())
}
