//! The virtual Ethernet switch (the l-lan ports of one virtual LAN):
//! where a frame goes, and the MAC address a VM's adapter gets. Unicast
//! frames go to the port with the destination MAC; broadcast and
//! multicast ones to every other port; a frame for a MAC no port has is
//! dropped and counted by the switch; nothing goes back to its sender.
//! Whether a port takes a frame and where it lands is the port's own
//! business ([`Ports::offer`], an l-lan device's
//! [`super::VioDevice::offer`]): its MAC may change at any time.

use super::llan::Received;

/// Bytes of an Ethernet header (destination, source, type).
pub const HEADER: usize = 14;

/// The ports of one LAN, as the switch reaches them.
pub trait Ports {
    /// How many there are (indexes `0..count`).
    fn count(&self) -> usize;
    /// `frame` offered to port `i`: `None` if it does not take it (not
    /// its MAC, unless `all`; or gone).
    fn offer(&mut self, i: usize, frame: &[u8], all: bool) -> Option<Received>;
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
pub fn switch(frame: &[u8], from: usize, ports: &mut impl Ports, c: &mut Counters) {
    c.frames += 1;
    if frame.len() < HEADER {
        c.runts += 1;
        return;
    }
    // The group bit: broadcast and multicast.
    let all = frame[0] & 1 != 0;
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
        fn offer(&mut self, i: usize, frame: &[u8], all: bool) -> Option<Received> {
            let mac = self.macs[i]?;
            if !all && frame[..6] != mac {
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

    fn frame(dest: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&dest);
        f[6..12].copy_from_slice(&src);
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
        switch(&[0xff; 13], 0, &mut p, &mut c);
        switch(&[], 0, &mut p, &mut c);
        assert!(p.took.is_empty());
        assert_eq!((c.frames, c.runts), (2, 2));
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
