//! The PAPR hypercall ABI as guests and this hypervisor both see it:
//! hypercall numbers, return codes and flag bits (values as Linux's
//! `arch/powerpc/include/asm/hvcall.h` and PAPR define them). Shared by the
//! hypervisor (`kernel::papr` uses it) and the test guests, so a
//! number is written once; nothing here knows the hypervisor's internals.
#![no_std]

// Return codes (Linux arch/powerpc/include/asm/hvcall.h).
pub const H_SUCCESS: i64 = 0;
pub const H_BUSY: i64 = 1;
pub const H_HARDWARE: i64 = -1;
pub const H_FUNCTION: i64 = -2;
pub const H_PRIVILEGE: i64 = -3;
pub const H_PARAMETER: i64 = -4;
pub const H_PTEG_FULL: i64 = -6;
pub const H_NOT_FOUND: i64 = -7;
pub const H_CLOSED: i64 = -5;
pub const H_DROPPED: i64 = -12;
pub const H_RESOURCE: i64 = -16;
pub const H_P2: i64 = -55;
pub const H_P3: i64 = -56;
pub const H_P4: i64 = -57;
/// The first of PAPR's "unsupported flag" codes (QEMU's H_UNSUPPORTED_FLAG).
pub const H_UNSUPPORTED_FLAG: i64 = -256;

/// Whether `rc` is a hypercall return code Linux's `asm/hvcall.h` defines
/// (what a guest may ever be answered): H_SUCCESS and the other
/// non-negative statuses, the H_LONG_BUSY range, the errors H_HARDWARE
/// (-1) to H_IN_USE (-77) that it names, H_P2-H_P9, the unsupported-flag
/// range (-256..=-511) and the two multi-thread errors.
pub const fn is_return_code(rc: i64) -> bool {
    matches!(rc,
        0..=5 | 14..=18 | 9900..=9905
        | -25..=-1 | -35..=-27 | -46..=-37 | -64..=-54 | -75..=-67 | -77
        | -511..=-256 | -9006..=-9005)
}

// Opcodes.
pub const H_REMOVE: u64 = 0x04;
pub const H_ENTER: u64 = 0x08;
pub const H_READ: u64 = 0x0c;
pub const H_CLEAR_MOD: u64 = 0x10;
pub const H_CLEAR_REF: u64 = 0x14;
pub const H_PROTECT: u64 = 0x18;
pub const H_BULK_REMOVE: u64 = 0x124;
pub const H_SET_SPRG0: u64 = 0x24;
pub const H_SET_DABR: u64 = 0x28;
pub const H_PAGE_INIT: u64 = 0x2c;
pub const H_GET_TERM_CHAR: u64 = 0x54;
pub const H_PUT_TERM_CHAR: u64 = 0x58;
pub const H_EOI: u64 = 0x64;
pub const H_CPPR: u64 = 0x68;
pub const H_IPI: u64 = 0x6c;
pub const H_IPOLL: u64 = 0x70;
pub const H_XIRR: u64 = 0x74;
pub const H_REGISTER_VPA: u64 = 0xdc;
pub const H_CEDE: u64 = 0xe0;
pub const H_CONFER: u64 = 0xe4;
pub const H_PROD: u64 = 0xe8;
pub const H_GET_CPU_CHARACTERISTICS: u64 = 0x1c8;
// Virtual I/O: TCE tables, device interrupts, the logical LAN (ibmveth).
pub const H_GET_TCE: u64 = 0x1c;
pub const H_PUT_TCE: u64 = 0x20;
pub const H_VIO_SIGNAL: u64 = 0x104;
pub const H_REGISTER_LOGICAL_LAN: u64 = 0x114;
pub const H_FREE_LOGICAL_LAN: u64 = 0x118;
pub const H_ADD_LOGICAL_LAN_BUFFER: u64 = 0x11c;
pub const H_SEND_LOGICAL_LAN: u64 = 0x120;
pub const H_MULTICAST_CTRL: u64 = 0x130;
pub const H_STUFF_TCE: u64 = 0x138;
pub const H_PUT_TCE_INDIRECT: u64 = 0x13c;
// The CRQ of a virtual SCSI adapter (ibmvscsi).
pub const H_REG_CRQ: u64 = 0xfc;
pub const H_FREE_CRQ: u64 = 0x100;
pub const H_SEND_CRQ: u64 = 0x108;
pub const H_ENABLE_CRQ: u64 = 0x2b0;
pub const H_CHANGE_LOGICAL_LAN_MAC: u64 = 0x14c;
pub const H_XIRR_X: u64 = 0x2fc;
pub const H_SET_MODE: u64 = 0x31c;
/// The private RTAS hypercall QEMU and KVM use.
pub const H_RTAS: u64 = 0xf000;

// H_SET_MODE resources.
pub const H_SET_MODE_RESOURCE_SET_CIABR: u64 = 1;
pub const H_SET_MODE_RESOURCE_SET_DAWR: u64 = 2;
pub const H_SET_MODE_RESOURCE_ADDR_TRANS_MODE: u64 = 3;
pub const H_SET_MODE_RESOURCE_LE: u64 = 4;

// H_PAGE_INIT flags.
pub const H_ZERO_PAGE: u64 = 1 << (63 - 48);
pub const H_COPY_PAGE: u64 = 1 << (63 - 49);
pub const H_ICACHE_INVALIDATE: u64 = 1 << (63 - 40);
pub const H_ICACHE_SYNCHRONIZE: u64 = 1 << (63 - 41);

// Flags.
pub const H_EXACT: u64 = 1 << (63 - 24);
pub const H_READ_4: u64 = 1 << (63 - 26);
pub const H_AVPN: u64 = 1 << (63 - 32);
pub const H_ANDCOND: u64 = 1 << (63 - 33);

// H_BULK_REMOVE translation specifier high word.
pub const BULK_TYPE: u64 = 0xc000_0000_0000_0000;
pub const BULK_REQUEST: u64 = 0x4000_0000_0000_0000;
pub const BULK_RESPONSE: u64 = 0x8000_0000_0000_0000;
pub const BULK_END: u64 = 0xc000_0000_0000_0000;
pub const BULK_CODE: u64 = 0x3000_0000_0000_0000;
pub const BULK_SUCCESS: u64 = 0;
pub const BULK_NOT_FOUND: u64 = 0x1000_0000_0000_0000;
pub const BULK_PARM: u64 = 0x2000_0000_0000_0000;
pub const BULK_RC: u64 = 0x0c00_0000_0000_0000;
pub const BULK_RC_SHIFT: u32 = 51; // R,C (0x180) -> 0x0c00_0000_0000_0000
pub const BULK_FLAGS: u64 = 0x0300_0000_0000_0000;
pub const BULK_ANDCOND: u64 = 0x0100_0000_0000_0000;
pub const BULK_AVPN: u64 = 0x0200_0000_0000_0000;
pub const BULK_PTEX: u64 = 0x00ff_ffff_ffff_ffff;

/// RTAS call status codes (PAPR).
pub mod rtas {
    /// RTAS status codes (PAPR).
    pub const SUCCESS: i32 = 0;
    pub const HARDWARE_ERROR: i32 = -1;
    /// "Parameter error", also what an unimplemented call answers.
    pub const PARAMETER_ERROR: i32 = -3;
    /// `event-scan`: no error log returned.
    pub const NO_ERRORS_FOUND: i32 = 1;
    /// `query-cpu-stopped-state` answers.
    pub const CPU_STOPPED: i32 = 0;
    pub const CPU_RUNNING: i32 = 2;
}
