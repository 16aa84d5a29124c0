//! The l-lan port against guest memory in a Vec, its window mapping IOBA
//! page `i` to guest page `16 + i`.

use super::*;
use crate::vio::lan::Frame;
use crate::vio::tce::{PAGE, TCE_READ, TCE_WRITE};
use alloc::vec;

const MEM: u64 = 1 << 20;
const WINDOW: u64 = 128 * PAGE;
const GPA: u64 = 16 * PAGE;
const BUF_LIST: u64 = 0;
const FILTER: u64 = PAGE;
const RXQ: u64 = 2 * PAGE;
const MAC: u64 = 0x0200_0000_0001;

fn bd(ioba: u64, len: u64) -> u64 {
    BD_VALID | (len << 32) | ioba
}

/// A port with its whole window mapped read-write, and its RAM.
fn port() -> (Llan, Vec<u8>) {
    let mut t = TceTable::new(0x3000_0002, WINDOW);
    for i in 0..WINDOW / PAGE {
        t.put(i * PAGE, (GPA + i * PAGE) | TCE_READ | TCE_WRITE, MEM)
            .unwrap();
    }
    (
        Llan::new(REG, t, [2, 0, 0, 0, 0, 9]),
        vec![0u8; MEM as usize],
    )
}

/// Registered with a queue of `entries`.
fn open(entries: u64) -> (Llan, Vec<u8>) {
    let (mut l, mut ram) = port();
    let mut mem = GuestMemory::new(&mut ram);
    l.register(
        BUF_LIST,
        bd(RXQ, entries * RXQ_ENTRY),
        FILTER,
        MAC,
        &mut mem,
    )
    .unwrap();
    (l, ram)
}

/// The queue entry `i`: (flags, length, correlator).
fn entry(ram: &[u8], i: u64) -> (u32, u32, u64) {
    let at = (GPA + RXQ + i * RXQ_ENTRY) as usize;
    let word = |o: usize| u32::from_be_bytes(ram[at + o..at + o + 4].try_into().unwrap());
    let corr = u64::from_be_bytes(ram[at + 8..at + 16].try_into().unwrap());
    (word(0), word(4), corr)
}

fn dropped(ram: &[u8]) -> u64 {
    let at = (GPA + BUF_LIST + DROPPED_AT) as usize;
    u64::from_be_bytes(ram[at..at + 8].try_into().unwrap())
}

/// A receive buffer at IOBA `ioba` of `len` bytes, its correlator set.
fn buffer(l: &mut Llan, ram: &mut [u8], ioba: u64, len: u64, correlator: u64) {
    let at = (GPA + ioba) as usize;
    ram[at..at + 8].copy_from_slice(&correlator.to_be_bytes());
    l.add_buffer(bd(ioba, len)).unwrap();
}

/// `bytes` offered to the port as a frame in another port's memory.
fn rx(l: &mut Llan, mem: &mut GuestMemory<'_>, bytes: &[u8]) -> Received {
    let mut src_ram = bytes.to_vec();
    let src = GuestMemory::new(&mut src_ram);
    let mut f = Frame::default();
    f.push(0, bytes.len() as u64);
    f.read_dest(&src);
    l.receive(&f, &src, mem)
}

/// The bytes of a frame gathered from `ram`.
fn bytes_of(f: &Frame, ram: &mut [u8]) -> Vec<u8> {
    let mem = GuestMemory::new(ram);
    f.pieces()
        .iter()
        .flat_map(|&(gpa, n)| mem.to_vec(gpa, n).unwrap())
        .collect()
}

#[test]
fn registration_checks_every_page_and_refuses_a_second() {
    let (mut l, mut ram) = port();
    let mut mem = GuestMemory::new(&mut ram);
    let q = bd(RXQ, 4 * RXQ_ENTRY);
    let bad = [
        (BUF_LIST + 8, q, FILTER),
        (BUF_LIST, q, WINDOW),
        (BUF_LIST, q & !BD_VALID, FILTER),
        (BUF_LIST, bd(RXQ + 8, 64), FILTER),
        (BUF_LIST, bd(RXQ, 24), FILTER),
        (BUF_LIST, bd(WINDOW - 16, 32), FILTER),
        (BUF_LIST, bd(RXQ, 0), FILTER),
    ];
    for (b, q, f) in bad {
        assert_eq!(
            l.register(b, q, f, MAC, &mut mem),
            Err(HError::Parameter),
            "{b:#x} {q:#x} {f:#x}"
        );
        assert!(!l.is_open());
    }
    l.register(BUF_LIST, q, FILTER, MAC, &mut mem).unwrap();
    assert_eq!(l.mac(), [2, 0, 0, 0, 0, 1], "the guest's MAC from now on");
    assert_eq!(
        l.register(BUF_LIST, q, FILTER, MAC, &mut mem),
        Err(HError::Resource)
    );
    l.free().unwrap();
    assert_eq!(l.free(), Err(HError::Resource));
}

#[test]
fn a_queue_the_window_does_not_let_it_write_is_refused() {
    let (mut l, mut ram) = port();
    l.tce().unwrap().put(RXQ, GPA | TCE_READ, MEM).unwrap();
    let mut mem = GuestMemory::new(&mut ram);
    assert_eq!(
        l.register(BUF_LIST, bd(RXQ, 64), FILTER, MAC, &mut mem),
        Err(HError::Parameter)
    );
}

#[test]
fn buffers_are_pooled_by_size_within_limits() {
    let (mut l, _) = port();
    assert_eq!(
        l.add_buffer(bd(0x4000, 512)),
        Err(HError::Resource),
        "closed"
    );
    let (mut l, _) = open(4);
    assert_eq!(
        l.add_buffer(bd(0x4002, 512)),
        Err(HError::Parameter),
        "misaligned"
    );
    assert_eq!(
        l.add_buffer(bd(0x4000, 8)),
        Err(HError::Parameter),
        "too small"
    );
    assert_eq!(
        l.add_buffer(bd(WINDOW - 256, 512)),
        Err(HError::Parameter),
        "past the window"
    );
    assert_eq!(
        l.add_buffer(bd(0x4000, 512) & !BD_VALID),
        Err(HError::Parameter)
    );
    for size in [64, 128, 256, 512, 1024] {
        l.add_buffer(bd(0x4000, size)).unwrap();
    }
    assert_eq!(
        l.add_buffer(bd(0x4000, 2048)),
        Err(HError::Resource),
        "a sixth size"
    );
    for _ in 1..MAX_POOL_BUFFERS {
        l.add_buffer(bd(0x4000, 64)).unwrap();
    }
    assert_eq!(
        l.add_buffer(bd(0x4000, 64)),
        Err(HError::Resource),
        "a full pool"
    );
}

#[test]
fn a_frame_lands_after_the_correlator_in_the_smallest_buffer_that_holds_it() {
    let (mut l, mut ram) = open(4);
    buffer(&mut l, &mut ram, 0x10000, 2048, 0x1111);
    buffer(&mut l, &mut ram, 0x8000, 512, 0x2222);
    let frame: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
    let mut mem = GuestMemory::new(&mut ram);
    assert_eq!(
        rx(&mut l, &mut mem, &frame),
        Received::Queued { signal: false }
    );
    let at = (GPA + 0x8000 + RX_OFFSET) as usize;
    assert_eq!(&ram[at..at + 300], &frame[..]);
    let (flags, len, corr) = entry(&ram, 0);
    assert_eq!(flags, RXQ_TOGGLE | RXQ_VALID | RX_OFFSET as u32);
    assert_eq!(len, 300);
    assert_eq!(corr, 0x2222, "the 512-byte buffer's correlator");
    // 600 bytes need the 2 KiB one.
    let mut mem = GuestMemory::new(&mut ram);
    rx(&mut l, &mut mem, &[7; 600]);
    assert_eq!(entry(&ram, 1).2, 0x1111);
    assert_eq!(l.counters.rx_frames, 2);
    assert_eq!(l.counters.rx_bytes, 900);
}

#[test]
fn no_buffer_drops_and_counts_where_linux_reads_it() {
    let (mut l, mut ram) = open(4);
    buffer(&mut l, &mut ram, 0x8000, 512, 1);
    let mut mem = GuestMemory::new(&mut ram);
    assert_eq!(
        rx(&mut l, &mut mem, &[0; 600]),
        Received::Dropped,
        "too big for the pool"
    );
    assert_eq!(
        rx(&mut l, &mut mem, &[0; 100]),
        Received::Queued { signal: false }
    );
    assert_eq!(
        rx(&mut l, &mut mem, &[0; 100]),
        Received::Dropped,
        "the one buffer is used"
    );
    assert_eq!(dropped(&ram), 2);
    assert_eq!(l.counters.rx_dropped, 2);
    // A closed port drops too.
    l.free().unwrap();
    let mut mem = GuestMemory::new(&mut ram);
    assert_eq!(rx(&mut l, &mut mem, &[0; 100]), Received::Dropped);
    assert_eq!(l.counters.rx_dropped, 3);
}

#[test]
fn the_toggle_flips_each_time_the_queue_wraps() {
    let (mut l, mut ram) = open(2);
    for i in 0..5 {
        buffer(&mut l, &mut ram, 0x8000 + i * 0x1000, 512, i);
    }
    for _ in 0..5 {
        let mut mem = GuestMemory::new(&mut ram);
        assert!(matches!(
            rx(&mut l, &mut mem, &[1; 60]),
            Received::Queued { .. }
        ));
    }
    // Frames 1-2 with toggle 1, 3-4 with 0, the fifth in slot 0 with 1.
    assert_eq!(entry(&ram, 0).0 & RXQ_TOGGLE, RXQ_TOGGLE);
    assert_eq!(entry(&ram, 1).0 & RXQ_TOGGLE, 0);
}

#[test]
fn the_interrupt_is_asked_for_only_while_the_guest_enabled_it() {
    let (mut l, mut ram) = open(4);
    for i in 0..2 {
        buffer(&mut l, &mut ram, 0x8000 + i * 0x1000, 512, i);
    }
    assert_eq!(l.signal(2), Err(HError::Parameter));
    l.signal(1).unwrap();
    let mut mem = GuestMemory::new(&mut ram);
    assert_eq!(
        rx(&mut l, &mut mem, &[1; 60]),
        Received::Queued { signal: true }
    );
    l.signal(0).unwrap();
    assert_eq!(
        rx(&mut l, &mut mem, &[1; 60]),
        Received::Queued { signal: false }
    );
}

#[test]
fn a_sent_frame_is_gathered_from_the_valid_descriptors_and_copied_now() {
    let (mut l, mut ram) = open(4);
    let at = (GPA + 0x20000) as usize;
    ram[at..at + 14].copy_from_slice(b"header........");
    ram[at + 0x1000..at + 0x1000 + 4].copy_from_slice(b"body");
    let bds = [bd(0x20000, 14), bd(0x21000, 4), 0, bd(0x22000, 4), 0, 0];
    let frame = l
        .gather(&bds, &GuestMemory::new(&mut ram))
        .unwrap()
        .unwrap();
    assert_eq!(
        bytes_of(&frame, &mut ram),
        b"header........body",
        "up to the first invalid one"
    );
    assert_eq!(frame.dest, *b"header");
    let mem = GuestMemory::new(&mut ram);
    assert_eq!((l.counters.tx_frames, l.counters.tx_bytes), (1, 18));
    // Over 64 KiB, or a page the window does not let it read: refused.
    let big = [bd(0, 0x8000), bd(0x8000, 0x8000), bd(0x10000, 1), 0, 0, 0];
    assert_eq!(l.gather(&big, &mem), Err(HError::Resource));
    l.tce().unwrap().put(0x21000, 0, MEM).unwrap();
    assert_eq!(l.gather(&bds, &mem), Err(HError::Parameter));
    // A closed port: nothing is sent (H_DROPPED).
    l.free().unwrap();
    assert_eq!(l.gather(&bds, &mem), Ok(None));
}

/// Two ports on one switch, each with its own RAM.
struct Two([(Llan, Vec<u8>); 2]);

impl crate::vio::lan::Ports for Two {
    fn count(&self) -> usize {
        2
    }
    /// From the other port's memory (the switch never offers a frame to
    /// its sender).
    fn offer(&mut self, i: usize, frame: &Frame, all: bool) -> Option<Received> {
        let [p0, p1] = &mut self.0;
        let (to, from) = if i == 0 { (p0, p1) } else { (p1, p0) };
        let src = GuestMemory::new(&mut from.1);
        to.0.offer(frame, &src, all, &mut GuestMemory::new(&mut to.1))
    }
}

#[test]
fn a_frame_sent_by_one_port_lands_in_the_other_through_the_switch() {
    use crate::vio::lan::{switch, Counters};
    let (mut a, mut ram_a) = open(4);
    let (mut b, mut ram_b) = open(4);
    b.change_mac(0x0200_0000_000b);
    buffer(&mut b, &mut ram_b, 0x8000, 2048, 0xb0b);
    // A frame for b's MAC, gathered from a's memory.
    let at = (GPA + 0x20000) as usize;
    ram_a[at..at + 6].copy_from_slice(&[2, 0, 0, 0, 0, 0xb]);
    ram_a[at + 6..at + 64].fill(0x5a);
    let bds = [bd(0x20000, 64), 0, 0, 0, 0, 0];
    let frame = a
        .gather(&bds, &GuestMemory::new(&mut ram_a))
        .unwrap()
        .unwrap();
    let mut ports = Two([(a, ram_a), (b, ram_b)]);
    let mut c = Counters::default();
    switch(&frame, 0, &mut ports, &mut c);
    assert_eq!((c.delivered, c.unknown), (1, 0));
    let [_, (b, ram_b)] = &ports.0;
    let buf = (GPA + 0x8000 + RX_OFFSET) as usize;
    let sent = bytes_of(&frame, &mut ports.0[0].1.clone());
    assert_eq!(&ram_b[buf..buf + 64], &sent[..]);
    assert_eq!(entry(ram_b, 0), (RXQ_TOGGLE | RXQ_VALID | 8, 64, 0xb0b));
    assert_eq!(b.counters.rx_frames, 1);
    // Back to a: it answers to the MAC it registered (…:01), not to its
    // device tree's (…:09) any more; it has no buffer, so it drops it.
    let mut back = frame.clone();
    back.dest = [2, 0, 0, 0, 0, 1];
    switch(&back, 1, &mut ports, &mut c);
    assert_eq!((c.delivered, c.dropped), (1, 1));
    assert_eq!(ports.0[0].0.counters.rx_dropped, 1);
    back.dest[5] = 9;
    switch(&back, 1, &mut ports, &mut c);
    assert_eq!(c.unknown, 1, "the device tree's MAC is gone");
}
