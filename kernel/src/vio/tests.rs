//! The bus against the devices every VM has.

use super::nvram::{self, Nvram};
use super::vty::{self, Vty};
use super::*;
use alloc::vec;

fn bus() -> VioBus {
    VioBus::new(vec![Box::new(Vty), Box::new(Nvram(4096))])
}

#[test]
fn sources_are_numbered_in_bus_order_and_only_for_devices_that_interrupt() {
    let b = bus();
    assert_eq!(b.sources(), [true], "the vty's level source alone");
    assert_eq!(b.irq(vty::REG), Some(crate::xics::IRQ_BASE));
    assert_eq!(b.irq(nvram::REG), None);
}

#[test]
fn a_unit_address_routes_to_its_device_and_zero_to_the_vty() {
    let b = bus();
    let unit = |u: u64| b.route(u).map(|(_, d)| d.lock().unit());
    assert_eq!(unit(u64::from(vty::REG)), Some(vty::REG));
    assert_eq!(unit(0), Some(vty::REG), "vtermno 0 is the first vty");
    assert_eq!(unit(u64::from(nvram::REG)), Some(nvram::REG));
    assert_eq!(unit(0x3000_0002), None);
    assert_eq!(unit(0x1_3000_0000), None, "no truncation to 32 bits");
}

#[test]
#[should_panic(expected = "twice")]
fn two_devices_at_one_unit_address_are_refused() {
    VioBus::new(vec![Box::new(Vty), Box::new(Vty)]);
}

#[test]
fn two_network_adapters_get_their_own_sources_and_windows() {
    use super::llan::{self, Llan};
    use super::tce::TceTable;
    let nic = |i: u32| {
        let unit = llan::REG + i;
        Box::new(Llan::new(
            unit,
            TceTable::new(unit, 1 << 20),
            [2, 0, 0, 0, 0, i as u8],
        ))
    };
    let b = VioBus::new(vec![Box::new(Vty), Box::new(Nvram(4096)), nic(0), nic(1)]);
    assert_eq!(
        b.sources(),
        [true, false, false],
        "the vty's, then an edge each"
    );
    assert_eq!(b.irq(llan::REG + 1), Some(crate::xics::IRQ_BASE + 2));
    let liobn = |l: u64| b.window(l).map(|d| d.lock().unit());
    assert_eq!(liobn(u64::from(llan::REG)), Some(llan::REG));
    assert_eq!(liobn(u64::from(llan::REG + 1)), Some(llan::REG + 1));
    assert_eq!(liobn(u64::from(llan::REG + 2)), None);
}
