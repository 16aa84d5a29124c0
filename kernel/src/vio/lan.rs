//! The virtual Ethernet switch's rules (the l-lan ports of one virtual
//! LAN): where a frame goes, and the MAC address a VM's adapter gets.
//! Unicast frames go to the port with the destination MAC; broadcast and
//! multicast ones to every other port; a frame for a MAC no port has is
//! dropped and counted by the switch; nothing goes back to its sender.

use alloc::vec::Vec;

/// Bytes of an Ethernet header (destination, source, type).
pub const HEADER: usize = 14;

/// Where a frame sent by one port goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Forward {
    /// To these ports (indexes into the LAN's ports).
    To(Vec<usize>),
    /// A unicast MAC no other port has: dropped.
    Unknown,
    /// Shorter than an Ethernet header: dropped.
    Runt,
}

/// Where `frame`, sent by port `from`, goes among the LAN's `ports` (each
/// port's MAC, in port order).
pub fn forward(frame: &[u8], from: usize, ports: &[[u8; 6]]) -> Forward {
    if frame.len() < HEADER {
        return Forward::Runt;
    }
    let dest = &frame[..6];
    let mut others = (0..ports.len()).filter(|&p| p != from);
    // The group bit: broadcast and multicast.
    if dest[0] & 1 != 0 {
        return Forward::To(others.collect());
    }
    match others.find(|&p| ports[p] == dest) {
        Some(p) => Forward::To(alloc::vec![p]),
        None => Forward::Unknown,
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

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
    const C: [u8; 6] = [2, 0, 0, 0, 0, 0xc];

    fn frame(dest: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&dest);
        f[6..12].copy_from_slice(&src);
        f
    }

    #[test]
    fn unicast_goes_to_its_port_only_and_never_back() {
        let ports = [A, B, C];
        assert_eq!(forward(&frame(B, A), 0, &ports), Forward::To(vec![1]));
        assert_eq!(forward(&frame(A, C), 2, &ports), Forward::To(vec![0]));
        // To itself: no other port has its MAC.
        assert_eq!(forward(&frame(A, A), 0, &ports), Forward::Unknown);
        assert_eq!(
            forward(&frame([2, 9, 9, 9, 9, 9], A), 0, &ports),
            Forward::Unknown
        );
    }

    #[test]
    fn broadcast_and_multicast_go_to_every_other_port() {
        let ports = [A, B, C];
        assert_eq!(
            forward(&frame([0xff; 6], B), 1, &ports),
            Forward::To(vec![0, 2])
        );
        let ipv6_multicast = [0x33, 0x33, 0, 0, 0, 1];
        assert_eq!(
            forward(&frame(ipv6_multicast, A), 0, &ports),
            Forward::To(vec![1, 2])
        );
        // Alone on its LAN: nobody to send to.
        assert_eq!(forward(&frame([0xff; 6], A), 0, &[A]), Forward::To(vec![]));
    }

    #[test]
    fn a_frame_without_a_header_is_a_runt() {
        assert_eq!(forward(&[0xff; 13], 0, &[A, B]), Forward::Runt);
        assert_eq!(forward(&[], 0, &[A, B]), Forward::Runt);
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
