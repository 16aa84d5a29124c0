//! The virtual Ethernet switch (the l-lan ports of one virtual LAN):
//! where a frame goes, and the MAC address a VM's adapter gets. Unicast
//! frames go to the port with the destination MAC; broadcast and
//! multicast ones to every other port; a frame for a MAC no port has is
//! dropped and counted by the switch; nothing goes back to its sender.
//! Whether a port takes a frame and where it lands is the port's own
//! business ([`Ports::offer`], an l-lan device's
//! [`super::VioDevice::offer`]): its MAC may change at any time.

use super::llan::Received;
use crate::gmem::GuestMemory;

/// Bytes of an Ethernet header (destination, source, type).
pub const HEADER: usize = 14;

/// A frame on its way through the switch: where its bytes lie in the
/// sender's memory (resolved through the sender's window, each piece
/// inside that memory), copied once, straight into each receiver's
/// buffer, while the sender is still in its H_SEND_LOGICAL_LAN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Bytes in all.
    pub len: u64,
    /// Its destination MAC (zeros if shorter than that).
    pub dest: [u8; 6],
    pieces: [(u64, u64); Frame::MAX_PIECES],
    n: usize,
}

impl Default for Frame {
    fn default() -> Self {
        Frame {
            len: 0,
            dest: [0; 6],
            pieces: [(0, 0); Frame::MAX_PIECES],
            n: 0,
        }
    }
}

impl Frame {
    /// Pieces a frame of at most 64 KiB in six descriptors spans: 16 whole
    /// pages and at most two partial ones per descriptor.
    pub const MAX_PIECES: usize = 32;

    /// Empty again.
    pub fn clear(&mut self) {
        (self.len, self.dest, self.n) = (0, [0; 6], 0);
    }

    /// Adds `len` bytes at guest-physical `gpa` of the sender's memory;
    /// false if the frame has no room for another piece.
    pub fn push(&mut self, gpa: u64, len: u64) -> bool {
        if len == 0 {
            return true;
        }
        let Some(slot) = self.pieces.get_mut(self.n) else {
            return false;
        };
        *slot = (gpa, len);
        self.n += 1;
        self.len += len;
        true
    }

    pub fn pieces(&self) -> &[(u64, u64)] {
        &self.pieces[..self.n]
    }

    /// Reads its destination MAC from the sender's memory `mem`.
    pub fn read_dest(&mut self, mem: &GuestMemory<'_>) {
        let mut at = 0;
        for i in 0..self.n {
            let (gpa, n) = self.pieces[i];
            let take = (6 - at).min(n as usize);
            if take == 0 {
                break;
            }
            let _ = mem.read(gpa, &mut self.dest[at..at + take]);
            at += take;
        }
    }
}

/// The ports of one LAN, as the switch reaches them.
pub trait Ports {
    /// How many there are (indexes `0..count`).
    fn count(&self) -> usize;
    /// `frame` offered to port `i`: `None` if it does not take it (not
    /// its MAC, unless `all`; or gone).
    fn offer(&mut self, i: usize, frame: &Frame, all: bool) -> Option<Received>;
}

/// What a LAN's switch counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames sent into the switch.
    pub frames: u64,
    /// Copies queued in a port's receive buffers.
    pub delivered: u64,
    /// Copies a port took and dropped (no buffer, closed).
    pub dropped: u64,
    /// Unicast frames for a MAC no other port has.
    pub unknown: u64,
    /// Frames shorter than an Ethernet header.
    pub runts: u64,
}

/// Switches `frame`, sent by port `from`, among `ports`.
pub fn switch(frame: &Frame, from: usize, ports: &mut impl Ports, c: &mut Counters) {
    c.frames += 1;
    if frame.len < HEADER as u64 {
        c.runts += 1;
        return;
    }
    // The group bit: broadcast and multicast.
    let all = frame.dest[0] & 1 != 0;
    let mut taken = false;
    for i in (0..ports.count()).filter(|&i| i != from) {
        let Some(r) = ports.offer(i, frame, all) else {
            continue;
        };
        taken = true;
        match r {
            Received::Queued { .. } => c.delivered += 1,
            Received::Dropped => c.dropped += 1,
        }
        if !all {
            break;
        }
    }
    if !taken && !all {
        c.unknown += 1;
    }
}

/// The MAC of adapter `index` of the VM named `vm`: locally administered
/// and unicast (the first byte's bits 1 set, 0 clear), the rest a hash of
/// the name and index, so it is the same at every boot.
pub fn mac_for(vm: &str, index: u32) -> [u8; 6] {
    // FNV-1a, 64 bits.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in vm.bytes().chain(index.to_be_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    [(b[0] & 0xfc) | 0x02, b[1], b[2], b[3], b[4], b[5]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
    const C: [u8; 6] = [2, 0, 0, 0, 0, 0xc];

    /// Ports by MAC (`None`: gone), recording what each took; port 2
    /// has no buffer left.
    struct Fake {
        macs: Vec<Option<[u8; 6]>>,
        took: Vec<usize>,
    }

    impl Ports for Fake {
        fn count(&self) -> usize {
            self.macs.len()
        }
        fn offer(&mut self, i: usize, frame: &Frame, all: bool) -> Option<Received> {
            let mac = self.macs[i]?;
            if !all && frame.dest != mac {
                return None;
            }
            self.took.push(i);
            Some(if i == 2 {
                Received::Dropped
            } else {
                Received::Queued { signal: true }
            })
        }
    }

    fn lan(macs: &[Option<[u8; 6]>]) -> (Fake, Counters) {
        let f = Fake {
            macs: macs.to_vec(),
            took: Vec::new(),
        };
        (f, Counters::default())
    }

    /// A 60-byte frame for `dest` (the sender's MAC does not matter to
    /// the switch).
    fn frame(dest: [u8; 6], _src: [u8; 6]) -> Frame {
        let mut f = Frame::default();
        f.push(0x1000, 60);
        f.dest = dest;
        f
    }

    fn runt(len: u64) -> Frame {
        let mut f = Frame::default();
        f.push(0x1000, len);
        f.dest = [0xff; 6];
        f
    }

    #[test]
    fn unicast_goes_to_its_port_only_and_never_back() {
        let (mut p, mut c) = lan(&[Some(A), Some(B), Some(C), Some(B)]);
        switch(&frame(B, A), 0, &mut p, &mut c);
        assert_eq!(p.took, [1], "the first port with the MAC, only");
        switch(&frame(A, C), 2, &mut p, &mut c);
        assert_eq!(p.took, [1, 0]);
        // To itself: no other port has its MAC.
        switch(&frame(A, A), 0, &mut p, &mut c);
        switch(&frame([2, 9, 9, 9, 9, 9], A), 0, &mut p, &mut c);
        assert_eq!(p.took, [1, 0]);
        assert_eq!(
            c,
            Counters {
                frames: 4,
                delivered: 2,
                unknown: 2,
                ..Counters::default()
            }
        );
    }

    #[test]
    fn broadcast_and_multicast_go_to_every_other_port() {
        let (mut p, mut c) = lan(&[Some(A), Some(B), Some(C)]);
        switch(&frame([0xff; 6], B), 1, &mut p, &mut c);
        assert_eq!(p.took, [0, 2]);
        let ipv6_multicast = [0x33, 0x33, 0, 0, 0, 1];
        switch(&frame(ipv6_multicast, A), 0, &mut p, &mut c);
        assert_eq!(p.took, [0, 2, 1, 2]);
        assert_eq!((c.delivered, c.dropped, c.unknown), (2, 2, 0));
        // Alone on its LAN: nobody to send to, and nothing unknown.
        let (mut p, mut c) = lan(&[Some(A)]);
        switch(&frame([0xff; 6], A), 0, &mut p, &mut c);
        assert_eq!((p.took.len(), c.unknown), (0, 0));
    }

    #[test]
    fn a_gone_port_takes_nothing_and_its_mac_is_unknown() {
        let (mut p, mut c) = lan(&[Some(A), None, Some(C)]);
        switch(&frame(B, A), 0, &mut p, &mut c);
        switch(&frame([0xff; 6], A), 0, &mut p, &mut c);
        assert_eq!(p.took, [2]);
        assert_eq!((c.unknown, c.dropped), (1, 1), "port 2 had no buffer");
    }

    #[test]
    fn a_frame_without_a_header_is_a_runt() {
        let (mut p, mut c) = lan(&[Some(A), Some(B)]);
        switch(&runt(13), 0, &mut p, &mut c);
        switch(&runt(0), 0, &mut p, &mut c);
        assert!(p.took.is_empty());
        assert_eq!((c.frames, c.runts), (2, 2));
    }

    #[test]
    fn a_frame_is_pieces_of_the_senders_memory_and_its_mac_is_read_across_them() {
        let mut ram = vec![0u8; 0x3000];
        ram[0x1ffd..0x2000].copy_from_slice(&[2, 0, 0]);
        ram[0x2000..0x2003].copy_from_slice(&[0, 0, 0xb]);
        let mem = GuestMemory::new(&mut ram);
        let mut f = Frame::default();
        assert!(f.push(0x1ffd, 3) && f.push(0x2000, 57) && f.push(0, 0));
        f.read_dest(&mem);
        assert_eq!((f.dest, f.len), ([2, 0, 0, 0, 0, 0xb], 60));
        assert_eq!(f.pieces(), [(0x1ffd, 3), (0x2000, 57)], "no empty piece");
        for _ in 2..Frame::MAX_PIECES {
            assert!(f.push(0, 1));
        }
        assert!(!f.push(0, 1), "no room for a 33rd piece");
    }

    #[test]
    fn macs_are_stable_locally_administered_unicast_and_distinct() {
        let m = mac_for("web", 0);
        assert_eq!(m, mac_for("web", 0));
        assert_eq!(m[0] & 0x03, 0x02, "locally administered, unicast");
        let all = [
            mac_for("web", 0),
            mac_for("web", 1),
            mac_for("db", 0),
            mac_for("wed", 0),
        ];
        for (i, a) in all.iter().enumerate() {
            assert_eq!(a[0] & 0x03, 0x02);
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
