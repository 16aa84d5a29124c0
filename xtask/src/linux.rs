//! The unmodified Linux guest: Debian's ppc64el kernel and busybox-static
//! (fetched by `scripts/linux-guest.sh` into `target/linux`), a busybox
//! initramfs built deterministically here, and the boot archives that run
//! it.

use crate::root;
use kernel::archive::{build_newc_entries, NewcEntry};
use std::path::PathBuf;
use std::process::Command;

/// What `/init` prints when the shell is about to start (the smoke tests'
/// marker).
pub const SHELL_MARKER: &str = "init: busybox shell ready";

/// The cache directory holding `vmlinux`, `modules/*.ko`, `busybox` and
/// `versions`.
pub fn cache() -> PathBuf {
    root().join("target/linux")
}

/// Fetches kernel and busybox unless cached.
pub fn fetch() -> Result<PathBuf, String> {
    let st = Command::new("bash")
        .arg(root().join("scripts/linux-guest.sh"))
        .arg(cache())
        .status()
        .map_err(|e| format!("scripts/linux-guest.sh: {e}"))?;
    if !st.success() {
        return Err("scripts/linux-guest.sh failed".into());
    }
    Ok(cache())
}

/// Module `name` (`modules/NAME.ko` of the cache).
fn module(name: &str) -> Result<Vec<u8>, String> {
    let path = fetch()?.join("modules").join(format!("{name}.ko"));
    std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
}

fn dir(name: &str) -> NewcEntry<'_> {
    NewcEntry {
        name,
        mode: 0o040_755,
        rdev: (0, 0),
        data: &[],
    }
}

fn file<'a>(name: &'a str, data: &'a [u8]) -> NewcEntry<'a> {
    NewcEntry {
        name,
        mode: 0o100_755,
        rdev: (0, 0),
        data,
    }
}

/// The `/init` script: busybox applets, /proc and /sys, a marker line with
/// the results of the user-space checks, then an interactive shell on the
/// console with job control.
fn init_script() -> String {
    format!(
        "#!/bin/busybox sh\n\
         /bin/busybox --install -s /bin\n\
         export PATH=/bin\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sys /sys\n\
         mount -t devtmpfs dev /dev\n\
         echo \"init: $(uname -r) up $(cut -d' ' -f1 /proc/uptime) s, $(nproc) cpus\"\n\
         if insmod /lib/modules/ibmveth.ko; then echo 'init: ibmveth.ko loaded'; \
         else echo 'init: ibmveth.ko NOT loaded'; fi\n\
         if /bin/hcall-from-user; then echo 'init: sc 1 from user space: refused with H_PRIVILEGE'; \
         else echo 'init: sc 1 from user space: NOT refused'; fi\n\
         echo '{SHELL_MARKER}'\n\
         exec setsid cttyhack sh -i\n"
    )
}

/// A static ppc64le ELF executable of a few instructions: it issues `sc 1`
/// (a hypercall) from problem state with H_REMOVE's arguments for PTE
/// index 0, then exits with status 0 if the hypervisor answered
/// H_PRIVILEGE (-3) and 1 otherwise. Hand-assembled: there is no ppc64le
/// C compiler on the host.
fn hcall_from_user() -> Vec<u8> {
    const BASE: u64 = 0x1000_0000;
    let code: [u32; 10] = [
        0x3860_0004, // li r3, 4 (H_REMOVE)
        0x3880_0000, // li r4, 0 (flags)
        0x38a0_0000, // li r5, 0 (ptex)
        0x38c0_0000, // li r6, 0 (avpn)
        0x4400_0022, // sc 1
        0x2c23_fffd, // cmpdi r3, -3
        0x3860_0000, // li r3, 0
        0x4182_0008, // beq +8
        0x3860_0001, // li r3, 1
        0x3800_0001, // li r0, 1 (exit) ; followed by sc
    ];
    let mut text: Vec<u8> = code.iter().flat_map(|w| w.to_le_bytes()).collect();
    text.extend_from_slice(&0x4400_0002u32.to_le_bytes()); // sc
    let hdr_len = 64 + 56;
    let total = hdr_len + text.len();
    let mut e = Vec::new();
    e.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    e.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    e.extend_from_slice(&21u16.to_le_bytes()); // EM_PPC64
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&(BASE + hdr_len as u64).to_le_bytes()); // entry
    e.extend_from_slice(&64u64.to_le_bytes()); // phoff
    e.extend_from_slice(&0u64.to_le_bytes()); // shoff
    e.extend_from_slice(&2u32.to_le_bytes()); // flags: ELFv2
    e.extend_from_slice(&64u16.to_le_bytes());
    e.extend_from_slice(&56u16.to_le_bytes());
    e.extend_from_slice(&1u16.to_le_bytes());
    e.extend_from_slice(&64u16.to_le_bytes());
    e.extend_from_slice(&0u16.to_le_bytes());
    e.extend_from_slice(&0u16.to_le_bytes());
    // PT_LOAD, R+X, the whole file at BASE.
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&5u32.to_le_bytes());
    e.extend_from_slice(&0u64.to_le_bytes());
    e.extend_from_slice(&BASE.to_le_bytes());
    e.extend_from_slice(&BASE.to_le_bytes());
    e.extend_from_slice(&(total as u64).to_le_bytes());
    e.extend_from_slice(&(total as u64).to_le_bytes());
    e.extend_from_slice(&0x10000u64.to_le_bytes());
    e.extend_from_slice(&text);
    e
}

/// Builds `build/linux/NAME.cpio`: the cached busybox, `/init` and
/// `more` files, with /bin, /dev, /proc, /sys, /tmp and the initial
/// console.
fn busybox_initramfs(name: &str, init: &str, more: &[(&str, &[u8])]) -> Result<PathBuf, String> {
    let cached = fetch()?;
    let busybox = std::fs::read(cached.join("busybox")).map_err(|e| format!("busybox: {e}"))?;
    let mut entries = vec![
        dir("bin"),
        dir("dev"),
        dir("lib"),
        dir("lib/modules"),
        dir("proc"),
        dir("sys"),
        dir("tmp"),
        // The initial console, before devtmpfs is mounted over /dev.
        NewcEntry {
            name: "dev/console",
            mode: 0o020_600,
            rdev: (5, 1),
            data: &[],
        },
        file("bin/busybox", &busybox),
        file("init", init.as_bytes()),
    ];
    entries.extend(more.iter().map(|(n, d)| file(n, d)));
    let cpio = build_newc_entries(&entries);
    let out = root().join("build/linux");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let path = out.join(format!("{name}.cpio"));
    std::fs::write(&path, cpio).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Builds `build/linux/initramfs.cpio`: busybox, the shell `/init`, the
/// user-space hypercall probe and the kernel's own `ibmveth` module (the
/// virtual Ethernet's driver, loaded at boot).
pub fn initramfs() -> Result<PathBuf, String> {
    let ibmveth = module("ibmveth")?;
    busybox_initramfs(
        "initramfs",
        &init_script(),
        &[
            ("bin/hcall-from-user", &hcall_from_user()),
            ("lib/modules/ibmveth.ko", &ibmveth),
        ],
    )
}

/// How much SMP work the stress `/init` does (`cargo xtask bench
/// linux-smp` runs [`Stress::FULL`], the smoke tests [`Stress::SMOKE`]).
#[derive(Clone, Copy, Debug)]
pub struct Stress {
    /// `seq 1 N` hashed by every CPU, straight and through gzip | gunzip.
    pub seq: u32,
    /// fork + exec of /bin/true by every CPU.
    pub forks: u32,
    /// `seq 1 N` written to one tmpfs file, copied, both hashed twice.
    pub file_seq: u32,
}

impl Stress {
    /// The issue's work: 300,000 numbers per CPU, 400 forks per CPU, a
    /// 64 MiB file.
    pub const FULL: Stress = Stress {
        seq: 300_000,
        forks: 400,
        file_seq: 8_500_000,
    };
    /// Small enough for CI, the same kinds of work.
    pub const SMOKE: Stress = Stress {
        seq: 20_000,
        forks: 40,
        file_seq: 400_000,
    };
}

/// What the stress `/init` prints when every check passed.
pub const STRESS_DONE: &str = "stress: done: every check passed";

/// The SHA-256 of `seq 1 n`'s output, computed on the host (coreutils),
/// for the guest to compare its own against.
fn seq_sha256(n: u32) -> Result<String, String> {
    sha256(&seq(n))
}

/// How the `/init` of a VM that does its work alone (no shell) starts:
/// busybox's applets, /proc, /sys, /dev and a tmpfs /tmp.
const BATCH_INIT: &str = "#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs -o size=90% tmp /tmp";

/// The stress `/init`: on every CPU at once `seq | sha256sum`, the same
/// through `gzip | gunzip` and a run of fork + exec; meanwhile one tmpfs
/// file written, copied and both hashed twice. Each result is checked
/// against the host's; any wrong one is printed with `WRONG`. Then the
/// partition's name (from its device tree, so a check can tell whose
/// line it is), the uptime (the benchmark's figure), steal time, and
/// power-off.
fn stress_init_script(w: Stress) -> Result<String, String> {
    let (seq_sum, file_sum) = (seq_sha256(w.seq)?, seq_sha256(w.file_seq)?);
    let (seq, forks, file_seq) = (w.seq, w.forks, w.file_seq);
    Ok(format!(
        r#"{BATCH_INIT}
n=$(nproc)
part=$(tr -d '\000' < /proc/device-tree/ibm,partition-name)
echo "stress: $(uname -r) up $(cut -d' ' -f1 /proc/uptime) s, $n cpus: seq {seq}, forks {forks}, file seq {file_seq}"
check() {{ if [ "$2" = "$3" ]; then echo ok >> /tmp/ok.$1; else echo "stress: $1: WRONG: got '$2', want '$3'"; fi; }}
job() {{
  r=$(seq 1 {seq} | sha256sum); check cpu$1 "${{r%% *}}" {seq_sum}
  r=$(seq 1 {seq} | gzip | gunzip | sha256sum); check cpu$1 "${{r%% *}}" {seq_sum}
  k=0; while [ $k -lt {forks} ] && /bin/true; do k=$((k+1)); done; check cpu$1 $k {forks}
}}
file() {{
  seq 1 {file_seq} > /tmp/big; cp /tmp/big /tmp/copy
  for round in 1 2; do for f in /tmp/big /tmp/copy; do r=$(sha256sum $f); check file "${{r%% *}}" {file_sum}; done; done
}}
i=0; while [ $i -lt $n ]; do job $i & i=$((i+1)); done
file &
wait
got=$(cat /tmp/ok.* | wc -l); want=$((3 * n + 4))
up=$(cut -d' ' -f1 /proc/uptime)
steal=$(awk '/^cpu /{{print $9}}' /proc/stat)
if [ "$got" = "$want" ]; then echo "{STRESS_DONE} in $part ($got of $want) at $up s of uptime, steal $steal ticks"
else echo "stress: FAILED: $got of $want checks passed at $up s of uptime"; fi
poweroff -f
"#
    ))
}

/// Builds `build/linux/stressSUFFIX.cpio`: busybox and the stress `/init`.
pub fn stress_initramfs(suffix: &str, w: Stress) -> Result<PathBuf, String> {
    busybox_initramfs(&format!("stress{suffix}"), &stress_init_script(w)?, &[])
}

/// What the network `/init` prints when every check passed.
pub const NET_DONE: &str = "net: done: every check passed";

/// The network `/init` (the VMs of [`NET_VMS`]): loads ibmveth and
/// takes its address from its name (`net-a` 10.0.0.1, `net-b` 10.0.0.2,
/// any other 10.0.0.3): the partition's, or `netname=` on the kernel
/// command line (QEMU's pseries, for the benchmark). With `smoke`:
/// - `net-b`'s first boot pings `net-a` until it answers, notes in its
///   NVRAM that it rebooted, and reboots (`net-a` keeps sending to it).
/// - Then `net-a` and `net-b` each listen with `nc`, ping the other until
///   it answers, and send it `seq 1 N` over TCP with `nc` while receiving
///   the same from it; what each sent and received is checked against the
///   SHA-256 the host computed. `net-a` pings `net-b` all along.
/// - Any other VM (on another LAN) must not reach 10.0.0.1.
///
/// Without (`cargo xtask bench net`): `net-a` pings `net-b` 20 times,
/// then sends it `seq 1 N` alone, timed; `net-b` checks what it received.
///
/// Each prints [`NET_DONE`] with its name when every check passed, or a
/// `WRONG` line per failed check; then power-off.
fn net_init_script(seq: u32, smoke: bool) -> Result<String, String> {
    let sum = seq_sha256(seq)?;
    let smoke = u8::from(smoke);
    Ok(format!(
        r#"{BATCH_INIT}
smoke={smoke}
part=$(tr -d '\000' < /proc/device-tree/ibm,partition-name 2> /dev/null)
for w in $(cat /proc/cmdline); do case $w in netname=*) part=${{w#netname=}} ;; esac; done
say() {{ echo "net: $part: $*"; }}
fail=0
wrong() {{ say "WRONG: $*"; fail=1; }}
insmod /lib/modules/ibmveth.ko || wrong "ibmveth.ko not loaded"
case "$part" in
  net-a) me=1; peer=10.0.0.2 ;;
  net-b) me=2; peer=10.0.0.1 ;;
  *) me=3; peer=10.0.0.1 ;;
esac
ip link set eth0 up && ip addr add 10.0.0.$me/24 dev eth0 || wrong "eth0 not configured"
say "10.0.0.$me on eth0 $(cat /sys/class/net/eth0/address); interfaces: $(ls /sys/class/net | tr '\n' ' ')"
reach() {{ i=0; until ping -c 1 -W 1 $peer > /dev/null; do i=$((i+1)); [ $i -lt $1 ] || return 1; done; }}
mark() {{ printf $1 | dd of=/dev/nvram bs=1 seek=65000 conv=notrunc 2> /dev/null; }}
now() {{ cut -d' ' -f1 /proc/uptime; }}
if [ $me = 3 ]; then
  if reach 5; then wrong "reached $peer on another LAN"; else say "$peer unreachable from another LAN"; fi
else
  if [ $smoke = 1 ] && [ $me = 2 ] && [ "$(dd if=/dev/nvram bs=1 skip=65000 count=8 2> /dev/null)" != rebooted ]; then
    if reach 120; then say "reached $peer: rebooting"; else wrong "$peer unreachable"; fi
    mark rebooted
    reboot -f
  fi
  [ $smoke = 1 ] && [ $me = 2 ] && mark xxxxxxxx
  seq 1 {seq} > /tmp/sent
  r=$(sha256sum /tmp/sent); [ "${{r%% *}}" = {sum} ] || wrong "sent sha256 ${{r%% *}}"
  listener=
  if [ $smoke = 1 ] || [ $me = 2 ]; then
    mkfifo /tmp/hold
    exec 3<> /tmp/hold
    nc -l -p 5000 <&3 > /tmp/got &
    listener=$!
    (sleep 300; kill $listener) 2> /dev/null &
  fi
  if reach 120; then say "reached $peer"; else wrong "$peer unreachable"; fi
  pinger=
  [ $smoke = 1 ] && [ $me = 1 ] && {{ ping $peer > /tmp/ping 2>&1 & pinger=$!; }}
  [ $smoke = 0 ] && [ $me = 1 ] && say "ping $(ping -c 20 -i 0.2 $peer | grep round-trip)"
  if [ $smoke = 1 ] || [ $me = 1 ]; then
    i=0; t0=$(now)
    until nc -w 3 $peer 5000 < /tmp/sent; do
      i=$((i+1)); [ $i -lt 90 ] || {{ wrong "could not send to $peer"; break; }}; sleep 1; t0=$(now)
    done
    say "sent $(wc -c < /tmp/sent) bytes in $(echo $(now) $t0 | awk '{{printf "%.2f", $1 - $2}}') s"
  fi
  if [ -n "$listener" ]; then
    wait $listener
    r=$(sha256sum /tmp/got); [ "${{r%% *}}" = {sum} ] || wrong "received sha256 ${{r%% *}}"
    say "received $(wc -c < /tmp/got) bytes, sha256 ${{r%% *}}"
  fi
  [ -n "$pinger" ] && {{ kill -INT $pinger; wait $pinger; say "pinging $peer all along: $(grep transmitted /tmp/ping)"; }}
fi
if [ $fail = 0 ]; then echo "{NET_DONE} in $part"; else echo "net: FAILED in $part"; fi
poweroff -f
"#
    ))
}

/// The VMs of the network smoke test: two on `lan0`, one with an
/// adapter on `lan1` and another on `lan2`.
pub const NET_VMS: &[(&str, &str)] =
    &[("net-a", "lan0"), ("net-b", "lan0"), ("net-c", "lan1 lan2")];

/// Builds `build/linux/NAME.cpio`: busybox, ibmveth and the network
/// `/init` moving `seq 1 N` ([`net_init_script`]).
pub fn net_initramfs(name: &str, seq: u32, smoke: bool) -> Result<PathBuf, String> {
    let ibmveth = module("ibmveth")?;
    busybox_initramfs(
        name,
        &net_init_script(seq, smoke)?,
        &[("lib/modules/ibmveth.ko", &ibmveth)],
    )
}

/// Builds `build/archives/NAME.cpio`: `vms` (name, LAN) booting the
/// network `/init` moving `seq 1 N`.
pub fn net_archive(
    name: &str,
    vms: &[(&str, &str)],
    seq: u32,
    smoke: bool,
) -> Result<PathBuf, String> {
    let initrd = net_initramfs(name, seq, smoke)?;
    let mut manifest = String::new();
    for (vm, lan) in vms {
        manifest.push_str(&format!(
            "[vm {vm}]\nmemory = 256M\nimage = vmlinux\ninitrd = initramfs.cpio\nbootargs = console=hvc0\nnet = {lan}\n\n"
        ));
    }
    archive_of(name, &manifest, &initrd, &[])
}

/// What the disk `/init` prints when every check passed.
pub const DISK_DONE: &str = "disk: done: every check passed";

/// The modules the disk `/init` loads, in load order: the v-scsi
/// adapter's driver, the SCSI disk driver and its integrity helpers,
/// ext2 (through ext4) and its helpers.
const DISK_MODULES: &[&str] = &[
    "scsi_transport_srp",
    "ibmvscsi",
    "crct10dif_common",
    "crc-t10dif",
    "crc64",
    "crc64-rocksoft",
    "t10-pi",
    "sd_mod",
    "crc16",
    "crc32c_generic",
    "mbcache",
    "jbd2",
    "ext4",
];

/// The VMs of the disk smoke test, each with the disks of [`DISK_LINES`].
pub const DISK_VMS: &[&str] = &["disk-a", "disk-b"];

/// Each disk VM's disks: a scratch disk (LUN 0), the shared image
/// read-only (LUN 1) and its own copy of the other image (LUN 2).
const DISK_LINES: &str = "disk = scratch 64M\ndisk = image shared.img ro\ndisk = image own.img\n";

/// The images of the disk archive: `shared.img` (`seq 1 60000`, padded
/// to whole sectors) and `own.img` (256 KiB of zeros with
/// [`OWN_ORIGINAL`] at byte 4096).
fn disk_images() -> (Vec<u8>, Vec<u8>) {
    let mut shared = seq(60_000);
    shared.resize(shared.len().next_multiple_of(512), 0);
    let mut own = vec![0u8; 256 << 10];
    own[4096..4096 + OWN_ORIGINAL.len()].copy_from_slice(OWN_ORIGINAL.as_bytes());
    (shared, own)
}

/// What `own.img` holds at byte 4096 until a VM writes its copy.
const OWN_ORIGINAL: &str = "original own.img";

/// `input` through the host's `program` with `args` (a filter on stdin
/// and stdout): what it wrote.
fn filter(program: &str, args: &[&str], input: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let mut stdin = child.stdin.take().ok_or(format!("{program}: no stdin"))?;
    let input = input.to_vec();
    // Written from another thread: the output may fill its pipe first.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    writer
        .join()
        .map_err(|_| format!("{program}: the writer panicked"))?
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{program} failed"));
    }
    Ok(out.stdout)
}

/// The SHA-256 of `bytes`, by the host's `sha256sum`.
fn sha256(bytes: &[u8]) -> Result<String, String> {
    let out = filter("sha256sum", &[], bytes)?;
    let text = String::from_utf8_lossy(&out);
    let sum = text.split_whitespace().next().unwrap_or("");
    if sum.len() != 64 {
        return Err(format!("sha256sum printed '{text}'"));
    }
    Ok(sum.to_string())
}

/// What `seq 1 n` prints.
fn seq(n: u32) -> Vec<u8> {
    (1..=n)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect()
}

/// Builds `build/linux/NAME.cpio`: busybox, the disk modules and `init`.
fn disk_initramfs(name: &str, init: &str) -> Result<PathBuf, String> {
    let files: Vec<(String, Vec<u8>)> = DISK_MODULES
        .iter()
        .map(|m| Ok((format!("lib/modules/{m}.ko"), module(m)?)))
        .collect::<Result<_, String>>()?;
    let more: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    busybox_initramfs(name, init, &more)
}

/// The cached kernel gzip'd (`vmlinux.gz` beside it, made once).
fn vmlinux_gz() -> Result<Vec<u8>, String> {
    let gz = cache().join("vmlinux.gz");
    if let Ok(bytes) = std::fs::read(&gz) {
        return Ok(bytes);
    }
    let vmlinux = std::fs::read(cache().join("vmlinux")).map_err(|e| format!("vmlinux: {e}"))?;
    let bytes = gzip(&vmlinux)?;
    std::fs::write(&gz, &bytes).map_err(|e| format!("{}: {e}", gz.display()))?;
    Ok(bytes)
}

/// Builds `build/archives/NAME.cpio`: one VM `vm` (512 MiB, manifest
/// lines `extra`) booting the cached kernel with `initrd`; with `gz`
/// both gzip'd (so that the archive fits a PNOR's ROOTFS).
fn one_vm_archive(
    name: &str,
    vm: &str,
    extra: &str,
    initrd: &std::path::Path,
    gz: bool,
) -> Result<PathBuf, String> {
    let initrd = std::fs::read(initrd).map_err(|e| format!("{}: {e}", initrd.display()))?;
    let (kernel, initrd, k, i) = if gz {
        (
            vmlinux_gz()?,
            gzip(&initrd)?,
            "vmlinux.gz",
            "initramfs.cpio.gz",
        )
    } else {
        let vmlinux =
            std::fs::read(cache().join("vmlinux")).map_err(|e| format!("vmlinux: {e}"))?;
        (vmlinux, initrd, "vmlinux", "initramfs.cpio")
    };
    let manifest = format!(
        "[vm {vm}]\nmemory = 512M\nimage = {k}\ninitrd = {i}\nbootargs = console=hvc0\n{extra}"
    );
    let files: Vec<(&str, &[u8])> = vec![
        ("manifest", manifest.as_bytes()),
        (k, &kernel),
        (i, &initrd),
    ];
    let out = root().join(format!("build/archives/{name}.cpio"));
    std::fs::write(&out, kernel::archive::build_newc(&files))
        .map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}

/// The disk `/init` (the VMs of [`DISK_VMS`]): loads the disk modules,
/// waits for the three disks and checks their sizes, checks the shared
/// image against the host's SHA-256, that Linux sees it read-only (the
/// disk's MODE SENSE says write-protected) and that writing it fails. On its
/// first boot (told by a mark in its NVRAM) it checks that its own copy
/// holds the original bytes, writes its name there (16 bytes), makes an ext2 file
/// system on the scratch disk with a file of `seq 1 N` named after
/// itself, and reboots. On the second it checks that its copy holds its
/// own name (no other VM's), that the file system has its file alone
/// and the file the host's SHA-256. Then [`DISK_DONE`] with its name, or
/// a `WRONG` line per failed check; then power-off.
fn disk_init_script(seq: u32, shared_sum: &str, shared_sectors: usize) -> Result<String, String> {
    let sum = seq_sha256(seq)?;
    let modules = DISK_MODULES.join(" ");
    let scratch_sectors = (64u64 << 20) / 512;
    let own_sectors = (256 << 10) / 512;
    let original = OWN_ORIGINAL;
    Ok(format!(
        r#"{BATCH_INIT}
part=$(tr -d '\000' < /proc/device-tree/ibm,partition-name)
say() {{ echo "disk: $part: $*"; }}
fail=0
wrong() {{ say "WRONG: $*"; fail=1; }}
for m in {modules}; do insmod /lib/modules/$m.ko || wrong "$m.ko not loaded"; done
# The scan is asynchronous, and so are the names: a disk is found by its
# SCSI address (host 0, bus 0, target 0, LUN n).
lun() {{ ls /sys/bus/scsi/devices/0:0:0:$1/block 2> /dev/null; }}
i=0; until [ -n "$(lun 2)" ] && [ -n "$(lun 1)" ] && [ -n "$(lun 0)" ]; do i=$((i+1)); [ $i -lt 600 ] || break; sleep 0.1; done
scratch=$(lun 0); shared=$(lun 1); own=$(lun 2)
seen=$(ls /sys/block | grep '^sd' | tr '\n' ' ')
[ "$seen" = "sda sdb sdc " ] || wrong "disks seen: $seen"
for d in $scratch:{scratch_sectors} $shared:{shared_sectors} $own:{own_sectors}; do
  s=$(cat /sys/block/${{d%%:*}}/size 2> /dev/null); [ "$s" = "${{d#*:}}" ] || wrong "${{d%%:*}}: $s sectors, want ${{d#*:}}"
done
say "disks: LUN 0 $scratch of $(cat /sys/block/$scratch/size) sectors, LUN 1 $shared of $(cat /sys/block/$shared/size), LUN 2 $own of $(cat /sys/block/$own/size)"
r=$(sha256sum /dev/$shared); [ "${{r%% *}}" = {shared_sum} ] || wrong "shared image sha256 ${{r%% *}}"
[ "$(cat /sys/block/$shared/ro)" = 1 ] || wrong "$shared is not read-only to Linux"
if dd if=/dev/zero of=/dev/$shared bs=512 count=1 conv=fsync 2> /dev/null; then wrong "wrote the read-only disk"; else say "writing the shared image failed, as it must"; fi
echo 3 > /proc/sys/vm/drop_caches
r=$(sha256sum /dev/$shared); [ "${{r%% *}}" = {shared_sum} ] || wrong "shared image changed: sha256 ${{r%% *}}"
mark() {{ printf $1 | dd of=/dev/nvram bs=1 seek=65000 conv=notrunc 2> /dev/null; }}
own() {{ dd if=/dev/$own bs=1 skip=4096 count=16 2> /dev/null; }}
mine=$(printf '%-16s' "by $part")
mkdir -p /mnt
if [ "$(dd if=/dev/nvram bs=1 skip=65000 count=8 2> /dev/null)" != rebooted ]; then
  [ "$(own)" = "{original}" ] || wrong "own copy at 4096: '$(own)'"
  printf '%s' "$mine" | dd of=/dev/$own bs=1 seek=4096 conv=notrunc,fsync 2> /dev/null || wrong "own copy not written"
  mke2fs -q /dev/$scratch > /dev/null || wrong "mke2fs failed"
  mount -t ext2 /dev/$scratch /mnt || wrong "mount failed"
  seq 1 {seq} > /mnt/$part.data
  sync
  umount /mnt || wrong "umount failed"
  say "file system made and written: rebooting"
  mark rebooted
  reboot -f
fi
mark xxxxxxxx
[ "$(own)" = "$mine" ] || wrong "own copy at 4096 after the reboot: '$(own)'"
mount -t ext2 /dev/$scratch /mnt || wrong "mount after the reboot failed"
[ "$(ls /mnt | grep -v lost+found | tr '\n' ' ')" = "$part.data " ] || wrong "files: $(ls /mnt | tr '\n' ' ')"
r=$(sha256sum /mnt/$part.data); [ "${{r%% *}}" = {sum} ] || wrong "file sha256 after the reboot ${{r%% *}}"
say "after the reboot: $part.data of $(wc -c < /mnt/$part.data) bytes, sha256 ${{r%% *}}"
umount /mnt
if [ $fail = 0 ]; then echo "{DISK_DONE} in $part"; else echo "disk: FAILED in $part"; fi
poweroff -f
"#
    ))
}

/// Builds `build/archives/disk.cpio`: the VMs of [`DISK_VMS`] with the
/// disk `/init` and the two images.
pub fn disk_archive() -> Result<PathBuf, String> {
    let (shared, own) = disk_images();
    let init = disk_init_script(200_000, &sha256(&shared)?, shared.len() / 512)?;
    let initrd = disk_initramfs("disk", &init)?;
    let mut manifest = String::new();
    for vm in DISK_VMS {
        manifest.push_str(&format!(
            "[vm {vm}]\nmemory = 512M\nimage = vmlinux\ninitrd = initramfs.cpio\nbootargs = console=hvc0\n{DISK_LINES}\n"
        ));
    }
    archive_of(
        "disk",
        &manifest,
        &initrd,
        &[("shared.img", &shared), ("own.img", &own)],
    )
}

/// What the flash-disk `/init` prints when every check passed.
pub const FLASH_DISK_DONE: &str = "disk: done: the flash disk held its file";
/// What it prints when it made the file system (the first boot).
pub const FLASH_DISK_MADE: &str = "disk: flash disk formatted and written";
/// The flash disk of the flash-disk archive (`cargo xtask pnor --disk
/// NAME=SIZE`) and what the VM writes there.
pub const FLASH_DISK: &str = "data";
pub const FLASH_DISK_SIZE: &str = "8M";
/// The text at the start of the file the VM writes (for pflash to find).
pub const FLASH_DISK_MARK: &str = "written-through-opal-flash";

/// `data` gzip'd by the host's gzip (`-9n`: no name or time, so the same
/// input gives the same bytes).
fn gzip(data: &[u8]) -> Result<Vec<u8>, String> {
    filter("gzip", &["-9n"], data)
}

/// The flash-disk `/init`: loads the disk modules and waits for the
/// flash disk (LUN 0). If it holds no file system yet (the machine's
/// first boot), makes one with a file of `seq 1 N` that starts with
/// [`FLASH_DISK_MARK`], unmounts it (Linux then sends SYNCHRONIZE CACHE,
/// which returns once the flash holds it) and powers off. Otherwise
/// checks the file against the host's SHA-256 and prints
/// [`FLASH_DISK_DONE`]. Any failed check prints `WRONG`.
fn flash_disk_init_script(seq: u32) -> Result<String, String> {
    let mut file = format!("{FLASH_DISK_MARK}\n").into_bytes();
    file.extend_from_slice(&self::seq(seq));
    let sum = sha256(&file)?;
    let modules = DISK_MODULES.join(" ");
    Ok(format!(
        r#"{BATCH_INIT}
say() {{ echo "disk: flash: $*"; }}
wrong() {{ say "WRONG: $*"; }}
for m in {modules}; do insmod /lib/modules/$m.ko || wrong "$m.ko not loaded"; done
i=0; until [ -n "$(ls /sys/bus/scsi/devices/0:0:0:0/block 2> /dev/null)" ]; do i=$((i+1)); [ $i -lt 600 ] || break; sleep 0.1; done
d=/dev/$(ls /sys/bus/scsi/devices/0:0:0:0/block)
say "$d of $(cat /sys/block/${{d#/dev/}}/size) sectors, write cache: $(cat /sys/class/scsi_disk/0:0:0:0/cache_type)"
mkdir -p /mnt
if mount -t ext2 $d /mnt 2> /dev/null; then
  r=$(sha256sum /mnt/data); [ "${{r%% *}}" = {sum} ] && echo "{FLASH_DISK_DONE}" || wrong "sha256 ${{r%% *}}"
  umount /mnt
else
  mke2fs -q $d > /dev/null || wrong "mke2fs failed"
  mount -t ext2 $d /mnt || wrong "mount failed"
  (echo {FLASH_DISK_MARK}; seq 1 {seq}) > /mnt/data
  umount /mnt || wrong "umount failed"
  say "{FLASH_DISK_MADE}"
fi
poweroff -f
"#
    ))
}

/// Builds `build/archives/flash-disk.cpio`: one VM with the flash disk
/// [`FLASH_DISK`], its kernel and initramfs gzip'd so that the archive
/// fits the PNOR's ROOTFS beside the disk.
pub fn flash_disk_archive() -> Result<PathBuf, String> {
    let initrd = disk_initramfs("flash-disk", &flash_disk_init_script(100_000)?)?;
    let disk = format!("disk = flash {FLASH_DISK}\n");
    one_vm_archive("flash-disk", "flash", &disk, &initrd, true)
}

/// What the disk-benchmark `/init` prints with its figures.
pub const DISK_BENCH: &str = "disk-bench figures:";

/// The disk-benchmark `/init` (`cargo xtask bench disk`): loads the disk
/// modules, waits for the first SCSI disk (LUN 0 here, or QEMU's
/// scsi-hd), then times with the guest's uptime: writing `mib` MiB of
/// zeros in 1 MiB blocks and syncing them (`conv=fsync`), reading them
/// back in 1 MiB blocks with the page cache dropped, and `reads` reads
/// of 4 KiB at pseudo-random 4 KiB offsets bypassing the page cache
/// (`iflag=direct`; the offsets from a fixed LCG, the same on every
/// machine). Prints one [`DISK_BENCH`] line, then powers off.
fn disk_bench_init_script(mib: u32, reads: u32) -> String {
    let modules = DISK_MODULES.join(" ");
    format!(
        r#"{BATCH_INIT}
for m in {modules}; do insmod /lib/modules/$m.ko || echo "disk-bench: WRONG: $m.ko not loaded"; done
i=0; until ls /sys/class/scsi_disk/*/device/block/* > /dev/null 2>&1; do i=$((i+1)); [ $i -lt 600 ] || break; sleep 0.1; done
d=/dev/$(ls /sys/class/scsi_disk/*/device/block | head -1)
now() {{ cut -d' ' -f1 /proc/uptime; }}
t0=$(now)
dd if=/dev/zero of=$d bs=1M count={mib} conv=fsync 2> /dev/null || echo "disk-bench: WRONG: write failed"
t1=$(now)
echo 3 > /proc/sys/vm/drop_caches
dd if=$d of=/dev/null bs=1M count={mib} 2> /dev/null || echo "disk-bench: WRONG: read failed"
t2=$(now)
blocks=$(( {mib} * 256 )); r=12345; k=0
while [ $k -lt {reads} ]; do
  r=$(( (r * 1103515245 + 12345) % 2147483648 ))
  dd if=$d of=/dev/null bs=4k count=1 skip=$(( r % blocks )) iflag=direct 2> /dev/null || {{ echo "disk-bench: WRONG: direct read failed"; break; }}
  k=$((k+1))
done
t3=$(now)
echo "{DISK_BENCH} $d write {mib} MiB $(echo $t1 $t0 | awk '{{print $1-$2}}') s read {mib} MiB $(echo $t2 $t1 | awk '{{print $1-$2}}') s random {reads} x 4 KiB $(echo $t3 $t2 | awk '{{print $1-$2}}') s"
poweroff -f
"#
    )
}

/// Builds `build/linux/NAME.cpio`, the disk-benchmark initramfs:
/// busybox, the disk modules, [`disk_bench_init_script`].
pub fn disk_bench_initramfs(name: &str, mib: u32, reads: u32) -> Result<PathBuf, String> {
    disk_initramfs(name, &disk_bench_init_script(mib, reads))
}

/// Builds `build/archives/NAME.cpio`: one VM `disk-bench` with
/// `disk_line` and the disk-benchmark `/init`; with `gz` its kernel and
/// initramfs gzip'd (for a PNOR's ROOTFS).
pub fn disk_bench_archive(
    name: &str,
    disk_line: &str,
    mib: u32,
    reads: u32,
    gz: bool,
) -> Result<PathBuf, String> {
    let initrd = disk_bench_initramfs(name, mib, reads)?;
    one_vm_archive(name, "disk-bench", &format!("{disk_line}\n"), &initrd, gz)
}

/// One VM of a stress layout: name, vcpus, threads per vcore.
pub type StressVm = (&'static str, u32, u32);

/// The SMP stress layouts: (archive name, its VMs): one SMT4 vcore; two
/// SMT4 vcores of one VM; three VMs on the two cores (time slicing,
/// vcore migration).
pub const STRESS_LAYOUTS: &[(&str, &[StressVm])] = &[
    ("stress-smt4", &[("stress", 4, 4)]),
    ("stress-2x-smt4", &[("stress", 8, 4)]),
    (
        "stress-three-vms",
        &[("stress-a", 4, 4), ("stress-b", 4, 4), ("stress-c", 2, 2)],
    ),
];

/// Builds `build/archives/ARCHIVE[-SUFFIX].cpio` for a stress layout:
/// each VM boots the Debian kernel with the stress `/init` of `w`.
pub fn stress_archive(
    archive: &str,
    vms: &[StressVm],
    memory: &str,
    w: Stress,
    suffix: &str,
) -> Result<PathBuf, String> {
    let initrd = stress_initramfs(suffix, w)?;
    let mut manifest = String::new();
    for (name, vcpus, threads) in vms {
        manifest.push_str(&format!(
            "[vm {name}]\nmemory = {memory}\nimage = vmlinux\ninitrd = initramfs.cpio\nbootargs = console=hvc0\nvcpus = {vcpus}\nthreads = {threads}\n\n"
        ));
    }
    archive_of(&format!("{archive}{suffix}"), &manifest, &initrd, &[])
}

/// The manifest of the Linux boot archive (`vcpus`, `memory` as given).
pub fn manifest(name: &str, memory: &str, extra: &str) -> String {
    format!(
        "[vm {name}]\nmemory = {memory}\nimage = vmlinux\ninitrd = initramfs.cpio\nbootargs = console=hvc0\n{extra}"
    )
}

/// Builds `build/archives/NAME.cpio`: the Linux guest (and `more` files,
/// e.g. other guests named in `manifest`).
pub fn archive(name: &str, manifest: &str, more: &[(&str, &[u8])]) -> Result<PathBuf, String> {
    archive_of(name, manifest, &initramfs()?, more)
}

/// `build/archives/NAME.cpio`: the manifest, the kernel, `initrd` as
/// `initramfs.cpio`, and `more` files.
fn archive_of(
    name: &str,
    manifest: &str,
    initrd: &std::path::Path,
    more: &[(&str, &[u8])],
) -> Result<PathBuf, String> {
    let initrd = std::fs::read(initrd).map_err(|e| format!("{}: {e}", initrd.display()))?;
    let vmlinux = std::fs::read(cache().join("vmlinux")).map_err(|e| format!("vmlinux: {e}"))?;
    let mut files: Vec<(&str, &[u8])> = vec![
        ("manifest", manifest.as_bytes()),
        ("vmlinux", &vmlinux),
        ("initramfs.cpio", &initrd),
    ];
    files.extend_from_slice(more);
    let dir = root().join("build/archives");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let out = dir.join(format!("{name}.cpio"));
    std::fs::write(&out, kernel::archive::build_newc(&files))
        .map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}

/// The kernel release of the cached image (`6.1.0-N-powerpc64le`), from
/// the package name in `versions`.
pub fn kernel_release() -> Result<String, String> {
    let v =
        std::fs::read_to_string(cache().join("versions")).map_err(|e| format!("versions: {e}"))?;
    v.split_whitespace()
        .next()
        .and_then(|p| p.strip_prefix("linux-image-"))
        .map(String::from)
        .ok_or_else(|| format!("unexpected versions file: {v}"))
}

/// The Linux archives users boot: one vcpu; SMP as one SMT4 vcore
/// (siblings signal with msgsndp) and as two.
fn linux_archives() -> Result<Vec<PathBuf>, String> {
    Ok(vec![
        archive("linux", &manifest("linux", "1G", ""), &[])?,
        archive(
            "linux-smp4",
            &manifest("linux", "1G", "vcpus = 4\nthreads = 4\n"),
            &[],
        )?,
        archive(
            "linux-smp8",
            &manifest("linux", "1G", "vcpus = 8\nthreads = 4\n"),
            &[],
        )?,
    ])
}

/// The archives the Linux smoke tests boot.
pub fn prepare() -> Result<(), String> {
    linux_archives()?;
    for (name, vms) in STRESS_LAYOUTS {
        stress_archive(name, vms, "512M", Stress::SMOKE, "")?;
    }
    // One VM with an l-lan adapter on virtual LAN lan0.
    archive("linux-net", &manifest("linux", "1G", "net = lan0\n"), &[])?;
    net_archive("net", NET_VMS, 400_000, true)?;
    disk_archive()?;
    flash_disk_archive()?;
    let bad = std::fs::read(root().join("build/guests/bad.elf")).map_err(|e| e.to_string())?;
    archive(
        "linux-and-bad",
        &format!(
            "{}\n[vm bad]\nmemory = 16M\nimage = bad.elf\n",
            manifest("linux", "1G", "")
        ),
        &[("bad.elf", &bad)],
    )?;
    Ok(())
}

/// `cargo xtask linux`: fetch, build the initramfs and
/// `build/archives/linux{,-smp4,-smp8}.cpio`.
pub fn command(_args: &[String]) -> Result<(), String> {
    for out in linux_archives()? {
        eprintln!(
            "xtask: wrote {} (boot it: ./qemu-run.sh --initrd {})",
            out.display(),
            out.display()
        );
    }
    Ok(())
}
