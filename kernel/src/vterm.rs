//! A guest's virtual terminal (the PAPR vty, H_PUT_TERM_CHAR and
//! H_GET_TERM_CHAR): output split into lines for the hypervisor's console
//! log, or passed through raw while the guest owns the serial console
//! (whole lines at once, an unfinished line — a prompt — when flushed);
//! typed input queued for the guest, with the console escape (Ctrl-])
//! that moves the console to another VM.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

/// Ctrl-]: the console escape (like QEMU's Ctrl-A for `-serial mon:stdio`,
/// but a key QEMU's own console multiplexer leaves alone). Ctrl-] n moves
/// the console to the next running VM, Ctrl-] x stops the VM that has it,
/// Ctrl-] Ctrl-] types a Ctrl-].
pub const ESCAPE: u8 = 0x1d;
/// The key after the escape that moves the console on.
pub const ESCAPE_NEXT_VM: u8 = b'n';
/// After [`ESCAPE`]: stop the VM that owns the console (an operator's
/// way out of a guest that never ends).
pub const ESCAPE_STOP_VM: u8 = b'x';
/// Input kept for a guest that does not read it (bytes).
pub const INPUT_MAX: usize = 4096;
/// A line longer than this is cut (the log stays line-sized).
pub const LINE_MAX: usize = 200;
/// Bytes one H_PUT_TERM_CHAR or H_GET_TERM_CHAR carries.
pub const CHUNK: usize = 16;
/// The vtermno that means "the first vty" whatever its `reg` (QEMU's
/// pseries, hw/char/spapr_vty.c: "kernel early debug always specifies 0";
/// Linux's hvterm udbg and kvm-unit-tests rely on it): the vty's alias on
/// the VM's device bus (crate::vio::vty).
pub const FIRST_VTY: u64 = 0;

/// Where the terminal's output goes.
pub trait Sink {
    /// Bytes for the serial console as they are (the owner's output).
    fn raw(&mut self, bytes: &[u8]);
    /// One complete line of a VM that does not own the console.
    fn line(&mut self, line: &str);
}

/// What typed input asked for besides bytes for the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Typed {
    /// Nothing else.
    Input,
    /// Ctrl-] n: move the console to the next VM (the rest of the input
    /// is not for this guest).
    NextVm,
    /// Ctrl-] x: stop this VM.
    StopVm,
}

#[derive(Default)]
pub struct Vterm {
    /// Output not yet ended by a newline.
    line: Vec<u8>,
    /// The last non-empty line (a guest panic's reason).
    last_line: String,
    /// The owner's output not yet written (an unfinished line).
    raw: Vec<u8>,
    /// Typed input waiting for H_GET_TERM_CHAR.
    input: VecDeque<u8>,
    /// The last byte typed was the escape.
    escape: bool,
}

impl Vterm {
    /// Guest output. `owner`: the guest owns the serial console (its
    /// output goes raw, whole lines now, the rest at [`Vterm::flush`]).
    pub fn output(&mut self, bytes: &[u8], owner: bool, sink: &mut impl Sink) {
        if owner {
            self.raw.extend_from_slice(bytes);
            if let Some(end) = self.raw.iter().rposition(|&c| c == b'\n') {
                sink.raw(&self.raw[..=end]);
                self.raw.drain(..=end);
            }
        }
        for &c in bytes {
            if c == b'\n' || self.line.len() >= LINE_MAX {
                self.end_line(owner, sink);
            } else if c != b'\r' {
                self.line.push(c);
            }
        }
    }

    fn end_line(&mut self, owner: bool, sink: &mut impl Sink) {
        let s = String::from_utf8_lossy(&self.line).into_owned();
        if !owner {
            sink.line(&s);
        }
        if !s.trim().is_empty() {
            self.last_line = s;
        }
        self.line.clear();
    }

    /// Writes the owner's unfinished line (a prompt) now.
    pub fn flush(&mut self, sink: &mut impl Sink) {
        if !self.raw.is_empty() {
            sink.raw(&self.raw);
            self.raw.clear();
        }
    }

    /// The owner's unfinished line is held for [`Vterm::flush`].
    pub fn holds_raw(&self) -> bool {
        !self.raw.is_empty()
    }

    /// The last non-empty line the guest printed.
    pub fn last_line(&self) -> &str {
        &self.last_line
    }

    /// Output never ended by a newline, if any.
    pub fn unterminated(&self) -> Option<String> {
        (!self.line.is_empty()).then(|| String::from_utf8_lossy(&self.line).into_owned())
    }

    /// Bytes typed on the serial console while this guest owns it.
    pub fn typed(&mut self, bytes: &[u8]) -> Typed {
        for &c in bytes {
            if core::mem::take(&mut self.escape) {
                match c {
                    ESCAPE_NEXT_VM => return Typed::NextVm,
                    ESCAPE_STOP_VM => return Typed::StopVm,
                    ESCAPE => self.push(c),
                    _ => {}
                }
            } else if c == ESCAPE {
                self.escape = true;
            } else {
                self.push(c);
            }
        }
        Typed::Input
    }

    fn push(&mut self, c: u8) {
        if self.input.len() < INPUT_MAX {
            self.input.push_back(c);
        }
    }

    /// Whether input waits (the vty's interrupt line).
    pub fn has_input(&self) -> bool {
        !self.input.is_empty()
    }

    /// Up to [`CHUNK`] typed bytes, as H_GET_TERM_CHAR returns them: the
    /// count, and the bytes packed big-endian into two registers.
    pub fn read(&mut self) -> (u64, u64, u64) {
        let mut bytes = [0u8; CHUNK];
        let n = self.input.len().min(CHUNK);
        for b in bytes.iter_mut().take(n) {
            *b = self.input.pop_front().unwrap_or(0);
        }
        let (hi, lo) = pack(&bytes);
        (n as u64, hi, lo)
    }
}

fn pack(bytes: &[u8; CHUNK]) -> (u64, u64) {
    let word = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
    (word(&bytes[..8]), word(&bytes[8..]))
}

/// The bytes of H_PUT_TERM_CHAR(len, chars 0-7, chars 8-15); `None` when
/// `len` is more than 16.
pub fn unpack(len: u64, hi: u64, lo: u64) -> Option<([u8; CHUNK], usize)> {
    if len > CHUNK as u64 {
        return None;
    }
    let mut bytes = [0u8; CHUNK];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    Some((bytes, len as usize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    #[derive(Default)]
    struct Rec {
        raw: Vec<u8>,
        lines: Vec<String>,
    }
    impl Sink for Rec {
        fn raw(&mut self, b: &[u8]) {
            self.raw.extend_from_slice(b);
        }
        fn line(&mut self, l: &str) {
            self.lines.push(l.to_string());
        }
    }

    #[test]
    fn lines_of_a_vm_without_the_console_are_logged_whole() {
        let (mut t, mut s) = (Vterm::default(), Rec::default());
        t.output(b"hello\r\nwor", false, &mut s);
        t.output(b"ld\n\n", false, &mut s);
        assert_eq!(s.lines, ["hello", "world", ""]);
        assert!(s.raw.is_empty());
        assert_eq!(t.last_line(), "world");
        t.output(b"pan", false, &mut s);
        assert_eq!(t.unterminated().as_deref(), Some("pan"));
        t.output(b"\n", false, &mut s);
        assert_eq!(t.last_line(), "pan");
        assert_eq!(t.unterminated(), None);
    }

    #[test]
    fn a_long_line_is_cut() {
        let (mut t, mut s) = (Vterm::default(), Rec::default());
        t.output(&[b'x'; LINE_MAX + 5], false, &mut s);
        assert_eq!(s.lines.len(), 1);
        assert_eq!(s.lines[0].len(), LINE_MAX);
    }

    #[test]
    fn the_owner_gets_whole_lines_at_once_and_its_prompt_on_flush() {
        let (mut t, mut s) = (Vterm::default(), Rec::default());
        t.output(b"one\ntwo\n/ # ", true, &mut s);
        assert_eq!(s.raw, b"one\ntwo\n");
        assert!(s.lines.is_empty(), "the owner's output is not also logged");
        t.flush(&mut s);
        assert_eq!(s.raw, b"one\ntwo\n/ # ");
        t.flush(&mut s);
        assert_eq!(s.raw, b"one\ntwo\n/ # ");
        assert_eq!(t.last_line(), "two");
    }

    #[test]
    fn typed_input_queues_and_reads_back_16_at_a_time() {
        let mut t = Vterm::default();
        assert!(!t.has_input());
        assert_eq!(t.read(), (0, 0, 0));
        assert_eq!(t.typed(b"0123456789abcdefXY"), Typed::Input);
        assert!(t.has_input());
        let (n, hi, lo) = t.read();
        assert_eq!(n, 16);
        assert_eq!(hi.to_be_bytes(), *b"01234567");
        assert_eq!(lo.to_be_bytes(), *b"89abcdef");
        assert_eq!(t.read(), (2, u64::from_be_bytes(*b"XY\0\0\0\0\0\0"), 0));
        assert!(!t.has_input());
    }

    #[test]
    fn the_escape_moves_the_console_or_types_itself() {
        let mut t = Vterm::default();
        assert_eq!(
            t.typed(&[b'a', ESCAPE, ESCAPE, b'b', ESCAPE, b'q', b'c']),
            Typed::Input
        );
        assert_eq!(t.read().0, 4); // a, Ctrl-], b, c: Ctrl-] q is dropped
                                   // An escape split across two reads still counts.
        assert_eq!(t.typed(&[b'd', ESCAPE]), Typed::Input);
        assert_eq!(t.typed(&[ESCAPE_NEXT_VM, b'e']), Typed::NextVm);
        let (n, hi, _) = t.read();
        assert_eq!((n, hi >> 56), (1, u64::from(b'd')));
        assert_eq!(t.typed(&[ESCAPE, ESCAPE_STOP_VM, b'g']), Typed::StopVm);
    }

    #[test]
    fn input_is_bounded() {
        let mut t = Vterm::default();
        t.typed(&vec![b'z'; INPUT_MAX + 100]);
        let mut total = 0;
        while t.has_input() {
            total += t.read().0;
        }
        assert_eq!(total, INPUT_MAX as u64);
    }

    #[test]
    fn put_term_char_unpacks_big_endian_and_refuses_more_than_16() {
        let (b, n) = unpack(3, u64::from_be_bytes(*b"abcdefgh"), 0).unwrap();
        assert_eq!(&b[..n], b"abc");
        let (b, n) = unpack(
            16,
            u64::from_be_bytes(*b"abcdefgh"),
            u64::from_be_bytes(*b"ijklmnop"),
        )
        .unwrap();
        assert_eq!(&b[..n], b"abcdefghijklmnop");
        assert_eq!(unpack(17, 0, 0), None);
    }
}
