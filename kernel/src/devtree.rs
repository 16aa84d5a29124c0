//! Reading the machine's device tree (as skiboot hands it over).
//!
//! Every property the hypervisor depends on is checked here, and a missing
//! or malformed one is reported as a `DtError` naming the node and the
//! property, so that bad firmware data stops the boot with a clear message
//! instead of a panic deep inside.

use crate::memmap::{Range, RangeSet};
use alloc::vec::Vec;
use core::fmt;
use fdt::node::FdtNode;
use fdt::Fdt;

/// What is wrong with the device tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A required node does not exist.
    MissingNode,
    /// A required property does not exist.
    Missing,
    /// The property exists but its length does not fit its format.
    BadLength,
    /// The property's value is out of range or inconsistent.
    BadValue,
    /// More entries than the hypervisor can hold.
    TooMany,
    /// The blob's structure is broken at this byte offset (check.rs).
    Malformed { offset: u32, what: &'static str },
}

/// A device-tree error: which node, which property, what is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtError<'a> {
    /// Path of the node's parent, e.g. "/cpus".
    pub parent: &'static str,
    /// Name of the node ("" for the root or for the whole tree).
    pub node: &'a str,
    /// The property ("" when the error is about a node).
    pub property: &'static str,
    pub problem: Problem,
}

impl fmt::Display for DtError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.problem {
            Problem::MissingNode => "is missing",
            Problem::Missing => "is missing",
            Problem::BadLength => "has a length that does not fit its format",
            Problem::BadValue => "has a value out of range",
            Problem::TooMany => "has more entries than supported",
            Problem::Malformed { offset, what } => {
                return write!(f, "device tree is malformed at offset {offset:#x}: {what}");
            }
        };
        write!(f, "device tree: node `")?;
        if self.parent.is_empty() && self.node.is_empty() {
            write!(f, "/")?;
        } else {
            let sep = if self.parent.ends_with('/') || self.node.is_empty() {
                ""
            } else {
                "/"
            };
            write!(f, "{}{sep}{}", self.parent, self.node)?;
        }
        if self.property.is_empty() {
            write!(f, "` {what}")
        } else {
            write!(f, "`: property `{}` {what}", self.property)
        }
    }
}

fn err<'a>(
    parent: &'static str,
    node: &'a str,
    property: &'static str,
    problem: Problem,
) -> DtError<'a> {
    DtError {
        parent,
        node,
        property,
        problem,
    }
}

/// Opens a device tree blob, once its whole structure is checked
/// ([`check::well_formed`]: the `fdt` crate panics on a malformed one).
pub fn open(blob: &[u8]) -> Result<Fdt<'_>, DtError<'static>> {
    let malformed = |(offset, what)| err("", "", "", Problem::Malformed { offset, what });
    check::well_formed(blob).map_err(malformed)?;
    Fdt::new(blob).map_err(|_| malformed((0, "refused by the fdt crate")))
}

/// The blob's total size from its header, for reserving it.
pub fn total_size(fdt: &Fdt<'_>) -> u64 {
    fdt.total_size() as u64
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Reads a number of `cells` 32-bit cells (1 or 2) from the start of `b`.
fn read_cells(b: &[u8], cells: usize) -> u64 {
    (0..cells).fold(0u64, |acc, i| (acc << 32) | be_u32(&b[i * 4..]) as u64)
}

/// `#address-cells`/`#size-cells` of `node` (for its children), checked.
fn cell_sizes<'a>(
    parent: &'static str,
    node: FdtNode<'_, 'a>,
) -> Result<(usize, usize), DtError<'a>> {
    let get = |name: &'static str, default: usize| -> Result<usize, DtError<'a>> {
        match node.property(name) {
            None => Ok(default),
            Some(p) if p.value.len() != 4 => Err(err(parent, node.name, name, Problem::BadLength)),
            Some(p) => match be_u32(p.value) as usize {
                v @ 1..=2 => Ok(v),
                0 if name == "#size-cells" => Ok(0),
                _ => Err(err(parent, node.name, name, Problem::BadValue)),
            },
        }
    };
    Ok((get("#address-cells", 2)?, get("#size-cells", 1)?))
}

/// Parses a `reg` property of (address, size) pairs.
fn reg_ranges<'a>(
    parent: &'static str,
    node: FdtNode<'_, 'a>,
    cells: (usize, usize),
    mut each: impl FnMut(Range) -> Result<(), DtError<'a>>,
) -> Result<(), DtError<'a>> {
    let p = node
        .property("reg")
        .ok_or(err(parent, node.name, "reg", Problem::Missing))?;
    let entry = (cells.0 + cells.1) * 4;
    if entry == 0 || p.value.is_empty() || p.value.len() % entry != 0 {
        return Err(err(parent, node.name, "reg", Problem::BadLength));
    }
    for e in p.value.chunks_exact(entry) {
        let start = read_cells(e, cells.0);
        let size = read_cells(&e[cells.0 * 4..], cells.1);
        if start.checked_add(size).is_none() {
            return Err(err(parent, node.name, "reg", Problem::BadValue));
        }
        each(Range::sized(start, size))?;
    }
    Ok(())
}

fn u32_or_u64<'a>(
    parent: &'static str,
    node: FdtNode<'_, 'a>,
    name: &'static str,
) -> Result<Option<u64>, DtError<'a>> {
    match node.property(name) {
        None => Ok(None),
        Some(p) if p.value.len() == 4 => Ok(Some(be_u32(p.value) as u64)),
        Some(p) if p.value.len() == 8 => Ok(Some(read_cells(p.value, 2))),
        Some(_) => Err(err(parent, node.name, name, Problem::BadLength)),
    }
}

fn root<'b, 'a>(fdt: &'b Fdt<'a>) -> Result<FdtNode<'b, 'a>, DtError<'a>> {
    fdt.find_node("/")
        .ok_or(err("", "", "", Problem::MissingNode))
}

/// The root node's `compatible` strings (what machine this is).
pub fn machine_compatible<'a>(fdt: &Fdt<'a>) -> Vec<&'a str> {
    match fdt.find_node("/").and_then(|r| r.compatible()) {
        Some(c) => c.all().collect(),
        None => Vec::new(),
    }
}

fn is_type(node: FdtNode<'_, '_>, ty: &str) -> bool {
    node.property("device_type").and_then(|p| p.as_str()) == Some(ty)
}

/// All RAM: every root-level node with `device_type = "memory"`.
pub fn memory<'a>(fdt: &Fdt<'a>) -> Result<RangeSet, DtError<'a>> {
    let root = root(fdt)?;
    let cells = cell_sizes("", root)?;
    let mut set = RangeSet::new();
    for n in root.children().filter(|n| is_type(*n, "memory")) {
        reg_ranges("/", n, cells, |r| {
            set.add(r)
                .map_err(|_| err("/", n.name, "reg", Problem::TooMany))
        })?;
    }
    if set.is_empty() {
        return Err(err("/", "memory", "", Problem::MissingNode));
    }
    Ok(set)
}

/// Every range firmware reserved: the memreserve block, `/reserved-memory`
/// children and the root `reserved-ranges` property (older skiboot).
pub fn reserved<'a>(
    fdt: &Fdt<'a>,
    mut each: impl FnMut(Range) -> Result<(), DtError<'a>>,
) -> Result<(), DtError<'a>> {
    for r in fdt.memory_reservations() {
        each(Range::sized(r.address() as u64, r.size() as u64))?;
    }
    let root = root(fdt)?;
    let rcells = cell_sizes("", root)?;
    if let Some(p) = root.property("reserved-ranges") {
        let entry = (rcells.0 + rcells.1) * 4;
        if entry == 0 || p.value.len() % entry != 0 {
            return Err(err("", "", "reserved-ranges", Problem::BadLength));
        }
        for e in p.value.chunks_exact(entry) {
            each(Range::sized(
                read_cells(e, rcells.0),
                read_cells(&e[rcells.0 * 4..], rcells.1),
            ))?;
        }
    }
    if let Some(rm) = root.children().find(|n| n.name == "reserved-memory") {
        let cells = cell_sizes("/", rm)?;
        for n in rm.children() {
            if n.property("reg").is_some() {
                reg_ranges("/reserved-memory", n, cells, &mut each)?;
            }
        }
    }
    Ok(())
}

/// What `/chosen` says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Chosen<'a> {
    pub bootargs: &'a str,
    pub initrd: Option<Range>,
}

pub fn chosen<'a>(fdt: &Fdt<'a>) -> Result<Chosen<'a>, DtError<'a>> {
    let Some(c) = root(fdt)?.children().find(|n| n.name == "chosen") else {
        return Ok(Chosen::default());
    };
    let bootargs = match c.property("bootargs") {
        None => "",
        Some(p) => p
            .as_str()
            .ok_or(err("/", "chosen", "bootargs", Problem::BadValue))?,
    };
    let start = u32_or_u64("/", c, "linux,initrd-start")?;
    let end = u32_or_u64("/", c, "linux,initrd-end")?;
    let initrd = match (start, end) {
        (None, None) => None,
        (Some(_), None) => return Err(err("/", "chosen", "linux,initrd-end", Problem::Missing)),
        (None, Some(_)) => return Err(err("/", "chosen", "linux,initrd-start", Problem::Missing)),
        (Some(s), Some(e)) if e < s => {
            return Err(err("/", "chosen", "linux,initrd-end", Problem::BadValue))
        }
        (Some(s), Some(e)) => Some(Range { start: s, end: e }),
    };
    Ok(Chosen { bootargs, initrd })
}

/// One physical core and its hardware threads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreInfo {
    /// Dense index, in device-tree order.
    pub index: usize,
    /// `ibm,chip-id`, when present.
    pub chip_id: Option<u32>,
    /// PIRs of its threads, thread 0 first (`ibm,ppc-interrupt-server#s`).
    pub pirs: Vec<u32>,
}

/// The CPU topology.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    pub cores: Vec<CoreInfo>,
    /// Timebase frequency in Hz.
    pub timebase_hz: u64,
    /// Processor clock in Hz (`clock-frequency`), if the tree gives it.
    pub clock_hz: Option<u64>,
}

impl Topology {
    pub fn thread_count(&self) -> usize {
        self.cores.iter().map(|c| c.pirs.len()).sum()
    }

    /// Threads per core when every core has the same number, else the
    /// smallest count (the SMT mode all cores can run).
    pub fn threads_per_core(&self) -> usize {
        self.cores.iter().map(|c| c.pirs.len()).min().unwrap_or(0)
    }

    /// (core index, thread index) of the thread with this PIR.
    pub fn locate(&self, pir: u32) -> Option<(usize, usize)> {
        self.cores
            .iter()
            .find_map(|c| c.pirs.iter().position(|&p| p == pir).map(|t| (c.index, t)))
    }
}

/// Reads `/cpus`: one node per core (`device_type = "cpu"`) listing its
/// threads in `ibm,ppc-interrupt-server#s`. Nodes whose `status` is not
/// "okay" are skipped.
pub fn topology<'a>(fdt: &Fdt<'a>) -> Result<Topology, DtError<'a>> {
    let cpus = root(fdt)?.children().find(|n| n.name == "cpus").ok_or(err(
        "/",
        "cpus",
        "",
        Problem::MissingNode,
    ))?;
    let mut cores = Vec::new();
    let mut timebase_hz = None;
    let mut clock_hz = None;
    for n in cpus.children().filter(|n| is_type(*n, "cpu")) {
        if let Some(s) = n.property("status").and_then(|p| p.as_str()) {
            if s != "okay" && s != "ok" {
                continue;
            }
        }
        let p = n.property("ibm,ppc-interrupt-server#s").ok_or(err(
            "/cpus",
            n.name,
            "ibm,ppc-interrupt-server#s",
            Problem::Missing,
        ))?;
        if p.value.is_empty() || p.value.len() % 4 != 0 {
            return Err(err(
                "/cpus",
                n.name,
                "ibm,ppc-interrupt-server#s",
                Problem::BadLength,
            ));
        }
        let pirs: Vec<u32> = p.value.chunks_exact(4).map(be_u32).collect();
        let tb = u32_or_u64("/cpus", n, "timebase-frequency")?.ok_or(err(
            "/cpus",
            n.name,
            "timebase-frequency",
            Problem::Missing,
        ))?;
        if tb == 0 {
            return Err(err(
                "/cpus",
                n.name,
                "timebase-frequency",
                Problem::BadValue,
            ));
        }
        timebase_hz.get_or_insert(tb);
        if let Some(c) = u32_or_u64("/cpus", n, "clock-frequency")? {
            clock_hz.get_or_insert(c);
        }
        let chip_id = match n.property("ibm,chip-id") {
            None => None,
            Some(p) if p.value.len() == 4 => Some(be_u32(p.value)),
            Some(_) => return Err(err("/cpus", n.name, "ibm,chip-id", Problem::BadLength)),
        };
        cores.push(CoreInfo {
            index: cores.len(),
            chip_id,
            pirs,
        });
    }
    let Some(timebase_hz) = timebase_hz else {
        return Err(err("/", "cpus", "", Problem::MissingNode));
    };
    Ok(Topology {
        cores,
        timebase_hz,
        clock_hz,
    })
}

/// One thread's XICS presentation controller (ICP) window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcpWindow {
    pub pir: u32,
    pub base: u64,
    pub size: u64,
}

/// Reads the native ICP windows: root-level nodes compatible with
/// "IBM,ppc-xicp", whose `reg` lists one window per server in
/// `ibm,interrupt-server-ranges` (<first count>).
pub fn icp_windows<'a>(fdt: &Fdt<'a>) -> Result<Vec<IcpWindow>, DtError<'a>> {
    let root = root(fdt)?;
    let cells = cell_sizes("", root)?;
    let mut out = Vec::new();
    for n in root.children() {
        let xicp = n
            .compatible()
            .map(|c| c.all().any(|s| s == "IBM,ppc-xicp"))
            .unwrap_or(false);
        if !xicp {
            continue;
        }
        let p = n.property("ibm,interrupt-server-ranges").ok_or(err(
            "/",
            n.name,
            "ibm,interrupt-server-ranges",
            Problem::Missing,
        ))?;
        if p.value.len() != 8 {
            return Err(err(
                "/",
                n.name,
                "ibm,interrupt-server-ranges",
                Problem::BadLength,
            ));
        }
        let first = be_u32(p.value);
        let count = be_u32(&p.value[4..]);
        let mut windows = Vec::new();
        reg_ranges("/", n, cells, |r| {
            windows.push(r);
            Ok(())
        })?;
        if windows.len() != count as usize {
            return Err(err("/", n.name, "reg", Problem::BadValue));
        }
        for (i, w) in windows.iter().enumerate() {
            let bad = err("/", n.name, "reg", Problem::BadValue);
            if w.size() < ppc64::xics::REGS_LEN {
                return Err(bad);
            }
            out.push(IcpWindow {
                pir: first.checked_add(i as u32).ok_or(bad)?,
                base: w.start,
                size: w.size(),
            });
        }
    }
    Ok(out)
}

/// The host firmware's speculation-mitigation features: the children of
/// `/ibm,opal/fw-features`, each with `Some(true)` for an `enabled`
/// property, `Some(false)` for `disabled`, `None` for neither. Empty when
/// the node is absent (QEMU's powernv has none).
pub fn fw_features<'a>(fdt: &Fdt<'a>) -> Vec<(&'a str, Option<bool>)> {
    let Some(node) = fdt.find_node("/ibm,opal/fw-features") else {
        return Vec::new();
    };
    node.children()
        .map(|n| {
            let state = match (n.property("enabled"), n.property("disabled")) {
                (Some(_), _) => Some(true),
                (None, Some(_)) => Some(false),
                (None, None) => None,
            };
            (n.name, state)
        })
        .collect()
}

/// skiboot's system flash (`/ibm,opal/flash@N`, compatible
/// `ibm,opal-flash`): what OPAL_FLASH_READ/WRITE/ERASE take as its id, its
/// erase block and its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flash {
    pub id: u64,
    pub block: u64,
    pub size: u64,
}

/// The first OPAL flash device, if skiboot found one (QEMU's powernv
/// always has a PNOR; a tree without the node has no flash to keep
/// anything in).
pub fn system_flash(fdt: &Fdt<'_>) -> Option<Flash> {
    let opal = fdt.find_node("/ibm,opal")?;
    let node = opal.children().find(|n| {
        n.compatible()
            .is_some_and(|c| c.all().any(|s| s == "ibm,opal-flash"))
    })?;
    let u32_of = |name: &str| -> Option<u64> {
        let v = node.property(name)?.value;
        Some(u64::from(u32::from_be_bytes(v.get(0..4)?.try_into().ok()?)))
    };
    let reg = node.property("reg")?.value;
    let size = u64::from_be_bytes(reg.get(0..8)?.try_into().ok()?);
    Some(Flash {
        id: u32_of("ibm,opal-id")?,
        block: u32_of("ibm,flash-block-size")?,
        size,
    })
}

pub mod check;
#[cfg(test)]
mod tests;
