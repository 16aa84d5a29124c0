//! Every TCE error path, and DMA through a window with its permissions.

use super::*;

const MEM: u64 = 1 << 20;
const WINDOW: u64 = 64 * PAGE;
const RW: u64 = TCE_READ | TCE_WRITE;

fn table() -> TceTable {
    TceTable::new(0x3000_0002, WINDOW)
}

#[test]
fn a_window_starts_unmapped_and_put_get_round_trip() {
    let mut t = table();
    assert_eq!(t.window(), WINDOW);
    assert_eq!(t.get(0x2000), Ok(0));
    t.put(0x2000, 0x5000 | RW, MEM).unwrap();
    assert_eq!(t.get(0x2000), Ok(0x5000 | RW));
    // Unmapping: no permission bit, whatever the address.
    t.put(0x2000, 0, MEM).unwrap();
    assert_eq!(t.get(0x2000), Ok(0));
}

#[test]
fn a_bad_ioba_is_h_parameter_and_maps_nothing() {
    let mut t = table();
    for ioba in [0x2001, 0x2ff8, WINDOW, WINDOW + PAGE, !(PAGE - 1)] {
        assert_eq!(
            t.put(ioba, 0x5000 | TCE_READ, MEM),
            Err(HError::Parameter),
            "{ioba:#x}"
        );
        assert_eq!(t.get(ioba), Err(HError::Parameter), "{ioba:#x}");
    }
    assert!((0..WINDOW)
        .step_by(PAGE as usize)
        .all(|i| t.get(i) == Ok(0)));
}

#[test]
fn a_tce_outside_the_partition_or_with_stray_bits_is_refused() {
    let mut t = table();
    for tce in [
        MEM | TCE_READ,          // the page after guest memory
        (MEM - PAGE) | 0x4 | RW, // a bit that is no permission
        !(PAGE - 1) | RW,        // the top of the address space
        (1 << 60) | TCE_WRITE,   // hypervisor memory, far away
    ] {
        assert_eq!(t.put(0, tce, MEM), Err(HError::Parameter), "{tce:#x}");
    }
    assert_eq!(t.get(0), Ok(0));
    // The last page of guest memory is fine.
    t.put(0, (MEM - PAGE) | TCE_READ, MEM).unwrap();
    // An unmapping may name any page (its address is not used).
    t.put(PAGE, MEM * 4, MEM).unwrap();
}

#[test]
fn stuff_only_clears_and_stays_inside_the_window() {
    let mut t = table();
    for i in 0..8 {
        t.put(i * PAGE, (i * PAGE) | RW, MEM).unwrap();
    }
    assert_eq!(t.stuff(0, 0x5000 | TCE_READ, 2), Err(HError::Parameter));
    assert_eq!(t.stuff(0, 0x5, 2), Err(HError::Parameter));
    assert_eq!(t.stuff(PAGE, 0, 64), Err(HError::Parameter), "past the end");
    assert_eq!(t.stuff(PAGE, 0, u64::MAX), Err(HError::Parameter));
    assert_eq!(
        t.get(PAGE),
        Ok(PAGE | RW),
        "a refused stuff changed nothing"
    );
    t.stuff(PAGE, 0, 4).unwrap();
    let got: Vec<u64> = (0..8).map(|i| t.get(i * PAGE).unwrap()).collect();
    assert_eq!(
        got,
        [
            RW,
            0,
            0,
            0,
            0,
            (5 * PAGE) | RW,
            (6 * PAGE) | RW,
            (7 * PAGE) | RW
        ]
    );
    t.stuff(0, 0, 64).unwrap();
    assert_eq!(t.get(7 * PAGE), Ok(0));
}

#[test]
fn an_indirect_list_is_checked_whole_before_any_entry_changes() {
    let mut ram = vec![0u8; MEM as usize];
    let list = 0x8000;
    let write_list = |ram: &mut Vec<u8>, tces: &[u64]| {
        for (k, t) in tces.iter().enumerate() {
            let at = list as usize + 8 * k;
            ram[at..at + 8].copy_from_slice(&t.to_be_bytes());
        }
    };
    let mut t = table();
    // The third TCE points past guest memory: nothing is mapped.
    write_list(
        &mut ram,
        &[0x1000 | RW, 0x2000 | TCE_READ, MEM | RW, 0x3000 | RW],
    );
    let mem = GuestMemory::new(&mut ram);
    assert_eq!(t.put_indirect(0, list, 4, &mem), Err(HError::Parameter));
    assert!((0..4).all(|i| t.get(i * PAGE) == Ok(0)));
    // The first two alone are fine, in order.
    t.put_indirect(PAGE, list, 2, &mem).unwrap();
    assert_eq!(t.get(PAGE), Ok(0x1000 | RW));
    assert_eq!(t.get(2 * PAGE), Ok(0x2000 | TCE_READ));
    // A list not 4 KiB-aligned, over 512 entries, outside guest memory,
    // or an IOBA range past the window: refused.
    assert_eq!(t.put_indirect(0, list + 8, 2, &mem), Err(HError::Parameter));
    assert_eq!(
        t.put_indirect(0, list, MAX_LIST + 1, &mem),
        Err(HError::Parameter)
    );
    assert_eq!(t.put_indirect(0, MEM, 1, &mem), Err(HError::Parameter));
    assert_eq!(
        t.put_indirect(0, MEM - PAGE, 512, &mem),
        Err(HError::Parameter)
    );
    assert_eq!(
        t.put_indirect(63 * PAGE, list, 2, &mem),
        Err(HError::Parameter)
    );
}

#[test]
fn dma_needs_the_permission_of_every_page_it_touches() {
    let mut ram = vec![0u8; MEM as usize];
    ram[0x5ffe..0x6002].copy_from_slice(b"abcd");
    let mut mem = GuestMemory::new(&mut ram);
    let mut t = table();
    // IOBA pages 1 and 2 map guest pages 5 and 6, readable; page 2 only
    // readable, page 1 also writable.
    t.put(PAGE, 0x5000 | RW, MEM).unwrap();
    t.put(2 * PAGE, 0x6000 | TCE_READ, MEM).unwrap();
    let mut buf = [0u8; 4];
    assert!(t.read(2 * PAGE - 2, &mut buf, &mem), "a read across both");
    assert_eq!(&buf, b"abcd");
    assert!(!t.read(3 * PAGE - 2, &mut buf, &mem), "page 3 is unmapped");
    assert!(!t.read(WINDOW - 2, &mut buf, &mem), "past the window");
    assert!(!t.read(u64::MAX - 1, &mut buf, &mem));
    // A write across the two: page 2 is read-only, so nothing is written,
    // not even the part in page 1.
    assert!(!t.write(2 * PAGE - 2, b"WXYZ", &mut mem));
    assert_eq!(mem.to_vec(0x5ffe, 4).unwrap(), b"abcd");
    assert!(t.write(2 * PAGE - 2, b"WX", &mut mem));
    assert_eq!(mem.to_vec(0x5ffe, 4).unwrap(), b"WXcd");
    // Unmapped again: no access at all.
    t.stuff(PAGE, 0, 2).unwrap();
    assert!(!t.read(PAGE, &mut buf, &mem));
    assert!(!t.write(PAGE, b"no", &mut mem));
}

#[test]
fn a_window_maps_scattered_guest_pages_into_one_contiguous_range() {
    let mut ram = vec![0u8; MEM as usize];
    for (p, byte) in [(9u64, b'x'), (3, b'y'), (7, b'z')] {
        let at = (p * PAGE) as usize;
        ram[at..at + PAGE as usize].fill(byte);
    }
    let mem = GuestMemory::new(&mut ram);
    let mut t = table();
    for (i, p) in [9u64, 3, 7].into_iter().enumerate() {
        t.put((10 + i as u64) * PAGE, (p * PAGE) | TCE_READ, MEM)
            .unwrap();
    }
    let mut buf = vec![0u8; 3 * PAGE as usize];
    assert!(t.read(10 * PAGE, &mut buf, &mem));
    assert!(buf[..PAGE as usize].iter().all(|&b| b == b'x'));
    assert!(buf[PAGE as usize..2 * PAGE as usize]
        .iter()
        .all(|&b| b == b'y'));
    assert!(buf[2 * PAGE as usize..].iter().all(|&b| b == b'z'));
}
