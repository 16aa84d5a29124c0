//! OPAL (skiboot runtime) calls.
//!
//! A call enters OPAL with `hrfid` at the OPAL entry point, big-endian, MMU
//! and EE off, r0 = token, r2 = OPAL base, r3-r10 = arguments, LR = return
//! point. OPAL returns with `blr`, still big-endian, so the return point
//! starts with the endian fix-up. OPAL preserves r1, r2, r13-r31.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

pub const OPAL_SUCCESS: i64 = 0;
pub const OPAL_BUSY: i64 = -2;
pub const OPAL_BUSY_EVENT: i64 = -12;

pub const OPAL_CONSOLE_WRITE: u64 = 1;
pub const OPAL_CONSOLE_READ: u64 = 2;
pub const OPAL_RTC_READ: u64 = 3;
pub const OPAL_CEC_POWER_DOWN: u64 = 5;
pub const OPAL_POLL_EVENTS: u64 = 10;
pub const OPAL_START_CPU: u64 = 41;
pub const OPAL_REINIT_CPUS: u64 = 70;
pub const OPAL_CHECK_ASYNC_COMPLETION: u64 = 86;
pub const OPAL_FLASH_READ: u64 = 110;
pub const OPAL_FLASH_WRITE: u64 = 111;
pub const OPAL_FLASH_ERASE: u64 = 112;
/// The call was accepted; its result comes as an async-completion
/// message for its token.
pub const OPAL_ASYNC_COMPLETION: i64 = -15;

/// OPAL_REINIT_CPUS flag: take hypervisor interrupts little-endian.
pub const OPAL_REINIT_CPUS_HILE_LE: u64 = 2;

/// OPAL base and entry, recorded from skiboot's hand-off (r8, r9).
static OPAL_BASE: AtomicU64 = AtomicU64::new(0);
static OPAL_ENTRY: AtomicU64 = AtomicU64::new(0);

/// The endian fix-up that makes code entered big-endian continue
/// little-endian (skiboot's hand-off, OPAL_START_CPU, returns from OPAL).
/// Read little-endian, `tdi 0,0,0x48` is a no-op and the branch skips the
/// trampoline; read big-endian, the same word is `b .+8`, and the
/// trampoline (stored as big-endian words) flips MSR[LE] with `rfid` and
/// resumes after itself. Clobbers r10, r11, SRR0/1.
#[macro_export]
macro_rules! fixup_endian_asm {
    () => {
        r#"
        tdi 0, 0, 0x48
        b 191f
        .byte 0x7d, 0x60, 0x00, 0xa6   # mfmsr  r11
        .byte 0x69, 0x6b, 0x00, 0x01   # xori   r11, r11, 1 (MSR[LE])
        .byte 0x39, 0x40, 0x00, 0x00   # li     r10, 0
        .byte 0x7d, 0x41, 0x01, 0x64   # mtmsrd r10, 1 (EE=RI=0)
        .byte 0x42, 0x9f, 0x00, 0x05   # bcl    20, 31, .+4
        .byte 0x7d, 0x48, 0x02, 0xa6   # mflr   r10
        .byte 0x39, 0x4a, 0x00, 0x14   # addi   r10, r10, 20
        .byte 0x7d, 0x5a, 0x03, 0xa6   # mtsrr0 r10
        .byte 0x7d, 0x7b, 0x03, 0xa6   # mtsrr1 r11
        .byte 0x4c, 0x00, 0x00, 0x24   # rfid
    191:
        "#
    };
}

global_asm!(
    r#"
    .pushsection .text.opal_call, "ax", @progbits
    .balign 16
    .global __opal_call
    # i64 __opal_call(token, a0, a1, a2, a3, a4, a5, a6)
    __opal_call:
        mflr 0
        std 0, 16(1)
        stdu 1, -64(1)
        std 2, 24(1)
        mfmsr 11
        std 11, 32(1)
        mr 0, 3
        mr 3, 4
        mr 4, 5
        mr 5, 6
        mr 6, 7
        mr 7, 8
        mr 8, 9
        mr 9, 10
        lis 12, {entry}@ha
        ld 12, {entry}@l(12)
        mtspr {spr_hsrr0}, 12
        lis 2, {base}@ha
        ld 2, {base}@l(2)
        lis 12, __opal_return@ha
        addi 12, 12, __opal_return@l
        mtlr 12
        li 12, 0
        ori 12, 12, {msr_off}
        andc 11, 11, 12
        mtspr {spr_hsrr1}, 11
        hrfid
    __opal_return:
    "#,
    fixup_endian_asm!(),
    r#"
        ld 2, 24(1)
        ld 11, 32(1)
        mtmsrd 11
        addi 1, 1, 64
        ld 0, 16(1)
        mtlr 0
        blr
    .popsection
    "#,
    entry = sym OPAL_ENTRY,
    base = sym OPAL_BASE,
    // OPAL runs big-endian, untranslated, with external interrupts off.
    msr_off = const crate::spr::MSR_EE | crate::spr::MSR_IR | crate::spr::MSR_DR | crate::spr::MSR_LE,
    spr_hsrr0 = const crate::spr::HSRR0,
    spr_hsrr1 = const crate::spr::HSRR1,
);

unsafe extern "C" {
    fn __opal_call(
        token: u64,
        a0: u64,
        a1: u64,
        a2: u64,
        a3: u64,
        a4: u64,
        a5: u64,
        a6: u64,
    ) -> i64;
}

/// Records the OPAL base and entry from skiboot's hand-off.
pub fn init(base: u64, entry: u64) {
    OPAL_BASE.store(base, Ordering::Relaxed);
    OPAL_ENTRY.store(entry, Ordering::Release);
}

/// True once `init` has run.
pub fn available() -> bool {
    OPAL_ENTRY.load(Ordering::Acquire) != 0
}

/// One OPAL call with up to seven arguments.
///
/// # Safety
/// Pointer arguments must be real addresses of memory valid for what the
/// call does with it; the token must be a call whose effects the caller
/// intends.
pub unsafe fn call(token: u64, args: &[u64]) -> i64 {
    let mut a = [0u64; 7];
    a[..args.len()].copy_from_slice(args);
    if !available() {
        return -1;
    }
    // SAFETY: `__opal_call` follows the C ABI and preserves what the ABI
    // requires; the caller vouches for the arguments.
    unsafe { __opal_call(token, a[0], a[1], a[2], a[3], a[4], a[5], a[6]) }
}

/// Writes `bytes` to OPAL console 0, retrying until all is written.
pub fn console_write(bytes: &[u8]) {
    let mut off = 0;
    let mut spins = 0u32;
    while off < bytes.len() {
        let chunk = &bytes[off..];
        // The length is in/out, big-endian in memory.
        let mut len: u64 = (chunk.len() as u64).to_be();
        // SAFETY: `chunk` and `len` are valid for the duration of the call
        // and we run in real mode, so their addresses are real addresses.
        // Arguments: terminal, pointer to length, buffer.
        let rc = unsafe {
            call(
                OPAL_CONSOLE_WRITE,
                &[0, &mut len as *mut u64 as u64, chunk.as_ptr() as u64],
            )
        };
        let written = u64::from_be(len) as usize;
        match rc {
            OPAL_SUCCESS | OPAL_BUSY | OPAL_BUSY_EVENT => {
                off += written.min(chunk.len());
                if written == 0 {
                    poll_events();
                    spins += 1;
                    if spins > 1_000_000 {
                        return; // console is gone; drop the rest
                    }
                }
            }
            _ => return,
        }
    }
}

/// Reads what has been typed on OPAL console 0 into `buf`; returns how
/// many bytes (0 when nothing is waiting or the console is gone).
pub fn console_read(buf: &mut [u8]) -> usize {
    let mut len: u64 = (buf.len() as u64).to_be();
    // SAFETY: `buf` and `len` are valid for the call (real addresses).
    // Arguments: terminal, pointer to length (in/out, big-endian), buffer.
    let rc = unsafe {
        call(
            OPAL_CONSOLE_READ,
            &[0, &mut len as *mut u64 as u64, buf.as_mut_ptr() as u64],
        )
    };
    if rc == OPAL_SUCCESS {
        (u64::from_be(len) as usize).min(buf.len())
    } else {
        0
    }
}

/// Reads the real-time clock: (year, month, day, hour, minute, second),
/// or None if OPAL has none. OPAL answers in BCD.
pub fn rtc_read() -> Option<[u32; 6]> {
    for _ in 0..1000 {
        let mut ymd: u32 = 0;
        let mut hms: u64 = 0;
        // SAFETY: both outputs are valid for the call (real addresses).
        let rc = unsafe {
            call(
                OPAL_RTC_READ,
                &[&mut ymd as *mut u32 as u64, &mut hms as *mut u64 as u64],
            )
        };
        match rc {
            OPAL_SUCCESS => {
                let (ymd, hms) = (u32::from_be(ymd), u64::from_be(hms));
                let bcd = |v: u64| ((v >> 4) & 0xf) as u32 * 10 + (v & 0xf) as u32;
                return Some([
                    bcd((ymd >> 24) as u64) * 100 + bcd((ymd >> 16) as u64 & 0xff),
                    bcd((ymd >> 8) as u64 & 0xff),
                    bcd(ymd as u64 & 0xff),
                    bcd((hms >> 56) & 0xff),
                    bcd((hms >> 48) & 0xff),
                    bcd((hms >> 40) & 0xff),
                ]);
            }
            OPAL_BUSY | OPAL_BUSY_EVENT => poll_events(),
            _ => return None,
        }
    }
    None
}

/// Tokens of asynchronous OPAL calls (any value is ours to choose).
static ASYNC_TOKEN: AtomicU64 = AtomicU64::new(1);

/// One flash operation (`nr` with `args`, the token appended), waited
/// for. skiboot does the I/O inside the call and queues a completion
/// message (`struct opal_msg`: be32 type, be32 size, be64 params[8]; the
/// result in params[1]) that OPAL_CHECK_ASYNC_COMPLETION collects; it
/// must be collected, or it stays in skiboot's message list.
fn flash_op(nr: u64, args: &[u64]) -> i64 {
    let token = ASYNC_TOKEN.fetch_add(1, Ordering::Relaxed);
    let mut a = [0u64; 5];
    a[..args.len()].copy_from_slice(args);
    a[args.len()] = token;
    loop {
        // SAFETY: the callers pass buffers valid for the call's length
        // (real addresses) and the flash id skiboot gave.
        match unsafe { call(nr, &a[..=args.len()]) } {
            OPAL_BUSY | OPAL_BUSY_EVENT => poll_events(),
            OPAL_ASYNC_COMPLETION => break,
            rc => return rc,
        }
    }
    let mut msg = [0u64; 9];
    loop {
        // SAFETY: `msg` holds the 72-byte message.
        let rc = unsafe {
            call(
                OPAL_CHECK_ASYNC_COMPLETION,
                &[msg.as_mut_ptr() as u64, 72, token],
            )
        };
        match rc {
            OPAL_SUCCESS => return u64::from_be(msg[2]) as i64,
            OPAL_BUSY | OPAL_BUSY_EVENT => poll_events(),
            rc => return rc,
        }
    }
}

/// Reads `buf.len()` bytes of flash `id` at `offset` (OPAL's result).
pub fn flash_read(id: u64, offset: u64, buf: &mut [u8]) -> i64 {
    flash_op(
        OPAL_FLASH_READ,
        &[id, offset, buf.as_mut_ptr() as u64, buf.len() as u64],
    )
}

/// Writes `buf` to flash `id` at `offset` (erased first: [`flash_erase`]).
pub fn flash_write(id: u64, offset: u64, buf: &[u8]) -> i64 {
    flash_op(
        OPAL_FLASH_WRITE,
        &[id, offset, buf.as_ptr() as u64, buf.len() as u64],
    )
}

/// Erases `size` bytes of flash `id` at `offset` (whole erase blocks).
pub fn flash_erase(id: u64, offset: u64, size: u64) -> i64 {
    flash_op(OPAL_FLASH_ERASE, &[id, offset, size])
}

/// Lets OPAL make progress on background work (console flush, IPMI).
pub fn poll_events() {
    // SAFETY: OPAL_POLL_EVENTS with a null output pointer is allowed.
    unsafe { call(OPAL_POLL_EVENTS, &[0]) };
}

/// Makes hypervisor interrupts little-endian (HID0[HILE]) on all threads.
pub fn reinit_cpus_hile_le() -> i64 {
    // SAFETY: changes only the interrupt endianness, which the vectors
    // (little-endian code) need.
    unsafe { call(OPAL_REINIT_CPUS, &[OPAL_REINIT_CPUS_HILE_LE]) }
}

/// Asks the service processor to power the machine off; never returns.
pub fn power_down() -> ! {
    // SAFETY: powering off is the intended end of the firmware's run.
    unsafe { call(OPAL_CEC_POWER_DOWN, &[0]) };
    loop {
        poll_events();
    }
}
