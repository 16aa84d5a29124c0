//! The console: a `log` facade whose lines carry a timebase timestamp and a
//! subsystem prefix, written whole under a lock so that lines from
//! different threads never interleave.
//!
//! Line format: `[    4.123456] mem: message` (info), with `warning: `,
//! `error: `, `debug: ` after the prefix for the other levels.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};

/// What the console needs from the machine.
pub struct Hooks {
    /// Writes raw bytes to the console device.
    pub write: fn(&[u8]),
    /// Current timebase.
    pub ticks: fn() -> u64,
    /// A small integer unique to the calling hardware thread.
    pub cpu_id: fn() -> u64,
}

/// Longest line; longer messages are cut and end in `...`.
pub const LINE_MAX: usize = 400;

/// A fixed-size line buffer that truncates instead of failing.
pub struct LineBuf {
    buf: [u8; LINE_MAX],
    len: usize,
    truncated: bool,
}

impl Default for LineBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl LineBuf {
    pub const fn new() -> Self {
        LineBuf {
            buf: [0; LINE_MAX],
            len: 0,
            truncated: false,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn as_str(&self) -> &str {
        // Only whole UTF-8 strings are ever appended (see write_str).
        core::str::from_utf8(self.as_bytes()).unwrap_or("<bad utf-8>")
    }

    /// Terminates the line with `\n`, marking a cut line with `...`.
    fn finish(&mut self) {
        let reserve = if self.truncated { 4 } else { 1 };
        if self.len + reserve > LINE_MAX {
            self.len = LINE_MAX - reserve;
            // Do not split a UTF-8 sequence.
            while self.len > 0 && (self.buf[self.len] & 0xc0) == 0x80 {
                self.len -= 1;
            }
        }
        if self.truncated {
            self.buf[self.len..self.len + 3].copy_from_slice(b"...");
            self.len += 3;
        }
        self.buf[self.len] = b'\n';
        self.len += 1;
    }
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = LINE_MAX - 1 - self.len;
        if s.len() <= room {
            self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
            self.len += s.len();
        } else {
            let mut cut = room;
            while cut > 0 && !s.is_char_boundary(cut) {
                cut -= 1;
            }
            self.buf[self.len..self.len + cut].copy_from_slice(&s.as_bytes()[..cut]);
            self.len += cut;
            self.truncated = true;
        }
        Ok(())
    }
}

/// The subsystem shown for a `log` target: its last `::` segment, so a
/// module path `kernel::memmap` prints as `memmap`.
pub fn subsystem(target: &str) -> &str {
    target.rsplit("::").next().unwrap_or(target)
}

/// Formats one console line (with its trailing newline) into `out`.
pub fn format_line(
    out: &mut LineBuf,
    ticks: u64,
    tb_hz: u64,
    level: log::Level,
    target: &str,
    args: fmt::Arguments<'_>,
) {
    let hz = if tb_hz == 0 { DEFAULT_TB_HZ } else { tb_hz };
    let secs = ticks / hz;
    let micros = (ticks % hz) * 1_000_000 / hz;
    let tag = match level {
        log::Level::Error => "error: ",
        log::Level::Warn => "warning: ",
        log::Level::Info => "",
        log::Level::Debug => "debug: ",
        log::Level::Trace => "trace: ",
    };
    let _ = write!(
        out,
        "[{:5}.{:06}] {}: {}{}",
        secs,
        micros,
        subsystem(target),
        tag,
        args
    );
    out.finish();
}

/// POWER8's architected timebase frequency, used until the device tree
/// has been read.
pub const DEFAULT_TB_HZ: u64 = 512_000_000;

const NO_OWNER: u64 = u64::MAX;

/// The console logger. One static instance lives in the firmware.
pub struct Console {
    hooks: spin::Once<Hooks>,
    tb_hz: AtomicU64,
    owner: AtomicU64,
    /// Raw output (a guest's console) ended without a newline: the next
    /// log line starts on a line of its own.
    mid_line: core::sync::atomic::AtomicBool,
    /// That unfinished raw line, shown again after a log line interrupts
    /// it (so the guest's line, a shell prompt, reads whole); only used
    /// under the console lock.
    partial: spin::Mutex<Partial>,
}

/// The raw bytes since the last newline, if they fit.
struct Partial {
    bytes: [u8; PARTIAL_MAX],
    len: usize,
    /// Longer than `bytes`: not shown again.
    overflow: bool,
}

/// Longest unfinished raw line shown again after an interruption.
const PARTIAL_MAX: usize = 256;

impl Partial {
    /// Follows `bytes` written raw.
    fn track(&mut self, bytes: &[u8]) {
        let tail = match bytes.iter().rposition(|&b| b == b'\n') {
            Some(nl) => {
                self.len = 0;
                self.overflow = false;
                &bytes[nl + 1..]
            }
            None => bytes,
        };
        if self.overflow || self.len + tail.len() > PARTIAL_MAX {
            self.overflow = true;
            return;
        }
        self.bytes[self.len..self.len + tail.len()].copy_from_slice(tail);
        self.len += tail.len();
    }

    /// What to show again, if anything.
    fn shown_again(&self) -> Option<&[u8]> {
        (!self.overflow && self.len > 0).then_some(&self.bytes[..self.len])
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Console {
    pub const fn new() -> Self {
        Console {
            hooks: spin::Once::new(),
            tb_hz: AtomicU64::new(0),
            owner: AtomicU64::new(NO_OWNER),
            mid_line: core::sync::atomic::AtomicBool::new(false),
            partial: spin::Mutex::new(Partial {
                bytes: [0; PARTIAL_MAX],
                len: 0,
                overflow: false,
            }),
        }
    }

    /// Connects the console to the machine. Later calls are ignored.
    pub fn init(&self, hooks: Hooks) {
        self.hooks.call_once(|| hooks);
    }

    /// Sets the timebase frequency used for timestamps.
    pub fn set_timebase_hz(&self, hz: u64) {
        self.tb_hz.store(hz, Ordering::Relaxed);
    }

    /// Writes one already formatted line, holding the console lock. A
    /// thread that already holds the lock (a panic while printing) writes
    /// without it rather than deadlocking.
    pub fn write_line(&self, line: &[u8]) {
        let Some(h) = self.hooks.get() else { return };
        self.locked(h, |h| (h.write)(line));
    }

    /// Writes bytes as they are (the console-owning guest's output, so a
    /// shell prompt shows before the user types), holding the lock.
    pub fn write_raw(&self, bytes: &[u8]) {
        let Some(h) = self.hooks.get() else { return };
        if bytes.is_empty() {
            return;
        }
        self.locked(h, |h| {
            (h.write)(bytes);
            self.mid_line
                .store(bytes.last() != Some(&b'\n'), Ordering::Relaxed);
            self.partial.lock().track(bytes);
        });
    }

    fn locked(&self, h: &Hooks, f: impl FnOnce(&Hooks)) {
        let me = (h.cpu_id)();
        let reentrant = self.owner.load(Ordering::Relaxed) == me;
        if !reentrant {
            while self
                .owner
                .compare_exchange_weak(NO_OWNER, me, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                core::hint::spin_loop();
            }
        }
        f(h);
        if !reentrant {
            self.owner.store(NO_OWNER, Ordering::Release);
        }
    }

    /// Formats and writes one line. The timestamp is taken under the lock,
    /// so timestamps on the console never go backwards.
    pub fn line(&self, level: log::Level, target: &str, args: fmt::Arguments<'_>) {
        let Some(h) = self.hooks.get() else { return };
        self.locked(h, |h| {
            let interrupted = self.mid_line.swap(false, Ordering::Relaxed);
            if interrupted {
                (h.write)(b"\r\n");
            }
            let mut buf = LineBuf::new();
            format_line(
                &mut buf,
                (h.ticks)(),
                self.tb_hz.load(Ordering::Relaxed),
                level,
                target,
                args,
            );
            (h.write)(buf.as_bytes());
            // The guest's unfinished line again, for it to go on with.
            if interrupted {
                if let Some(p) = self.partial.lock().shown_again() {
                    (h.write)(p);
                    self.mid_line.store(true, Ordering::Relaxed);
                }
            }
        });
    }
}

impl log::Log for Console {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            self.line(record.level(), record.target(), *record.args());
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn line(ticks: u64, level: log::Level, target: &str, msg: &str) -> String {
        let mut b = LineBuf::new();
        format_line(
            &mut b,
            ticks,
            512_000_000,
            level,
            target,
            format_args!("{msg}"),
        );
        b.as_str().to_string()
    }

    #[test]
    fn lines_have_timestamp_subsystem_and_level() {
        assert_eq!(
            line(
                512_000_000 * 4 + 256_000_000,
                log::Level::Info,
                "hv",
                "boot ok"
            ),
            "[    4.500000] hv: boot ok\n"
        );
        assert_eq!(
            line(512, log::Level::Warn, "kernel::memmap", "odd"),
            "[    0.000001] memmap: warning: odd\n"
        );
        assert_eq!(
            line(0, log::Level::Error, "fdt", "x"),
            "[    0.000000] fdt: error: x\n"
        );
    }

    #[test]
    fn long_lines_are_cut_not_overflowed() {
        let long = "é".repeat(LINE_MAX);
        let l = line(0, log::Level::Info, "hv", &long);
        assert!(l.len() <= LINE_MAX);
        assert!(l.ends_with("...\n"));
    }

    static OUT: Mutex<Vec<u8>> = Mutex::new(Vec::new());
    fn sink(b: &[u8]) {
        OUT.lock().unwrap().extend_from_slice(b);
    }

    #[test]
    fn console_writes_whole_lines_from_many_threads() {
        static C: Console = Console::new();
        C.init(Hooks {
            write: sink,
            ticks: || 0,
            cpu_id: || {
                // distinct id per OS thread
                thread_local!(static ID: u64 = rand_id());
                ID.with(|i| *i)
            },
        });
        fn rand_id() -> u64 {
            use std::sync::atomic::AtomicU64;
            static N: AtomicU64 = AtomicU64::new(1);
            N.fetch_add(1, Ordering::Relaxed)
        }
        let hs: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..200 {
                        C.line(
                            log::Level::Info,
                            "t",
                            format_args!("thread {t} line {i} {}", "x".repeat(50)),
                        );
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let out = String::from_utf8(OUT.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 800);
        for l in lines {
            assert!(l.starts_with("[    0.000000] t: thread "), "{l}");
            assert!(l.ends_with(&"x".repeat(50)), "{l}");
        }
    }

    #[test]
    fn a_log_line_inside_a_guest_line_shows_that_line_again_after_it() {
        static OUT2: Mutex<Vec<u8>> = Mutex::new(Vec::new());
        static C: Console = Console::new();
        C.init(Hooks {
            write: |b| OUT2.lock().unwrap().extend_from_slice(b),
            ticks: || 0,
            cpu_id: || 1,
        });
        C.write_raw(b"boot\nhello: guest running, ");
        C.line(log::Level::Info, "guest", format_args!("bad: a line"));
        C.write_raw(b"64 MiB\n/ # ");
        C.line(log::Level::Info, "hv", format_args!("vm stopped"));
        C.write_raw(b"ls\n");
        // Too long to show again: only the line break.
        C.write_raw(&[b'x'; PARTIAL_MAX + 1]);
        C.line(log::Level::Info, "hv", format_args!("late"));
        let out = String::from_utf8(OUT2.lock().unwrap().clone()).unwrap();
        let x = "x".repeat(PARTIAL_MAX + 1);
        assert_eq!(
            out,
            format!("boot\nhello: guest running, \r\n[    0.000000] guest: bad: a line\nhello: guest running, 64 MiB\n/ # \r\n[    0.000000] hv: vm stopped\n/ # ls\n{x}\r\n[    0.000000] hv: late\n")
        );
    }
}
