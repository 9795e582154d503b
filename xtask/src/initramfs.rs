//! The initramfs a Linux guest boots into: a `newc` cpio archive (the format the kernel
//! unpacks, `Documentation/driver-api/early-userspace/buffer-format.rst`) holding a static
//! busybox, `/dev/console` and `/init`, a busybox shell script that reports what the test
//! checks and powers the machine off.
//!
//! Nothing here depends on the architecture: the caller brings that architecture's busybox
//! binary ([`crate::linux::Guest`] says where each Debian package keeps it).
//!
//! `/init` prints, each on its own line:
//! - [`USERSPACE_MARKER`] — the guest's init runs in user space;
//! - `AXVCPU-CPUS: N` — the CPUs Linux brought up (`processor` lines of `/proc/cpuinfo`);
//! - with a second CPU, [`HOTPLUG_PREFIX`]`N` once CPU 1 went offline and online again;
//! - `AXVCPU-IRQS:` followed by `/proc/interrupts`, twice, 200 ms apart (the timer line
//!   must rise on every CPU between the two);
//! - [`POWEROFF_MARKER`], then runs `poweroff -f` (PSCI `SYSTEM_OFF` on arm64).

use std::path::Path;

/// The line `/init` prints first.
pub const USERSPACE_MARKER: &str = "AXVCPU-USERSPACE: init reached user space";
/// The prefix of the CPU-count line.
pub const CPUS_PREFIX: &str = "AXVCPU-CPUS: ";
/// The prefix of the line saying CPU 1 went offline and online again (CPU hotplug: PSCI
/// `CPU_OFF`, `AFFINITY_INFO`, `CPU_ON` on arm64), with the CPU count after.
pub const HOTPLUG_PREFIX: &str = "AXVCPU-HOTPLUG: CPU 1 off and on again, CPUs: ";
/// The line before each copy of `/proc/interrupts`.
pub const IRQS_MARKER: &str = "AXVCPU-IRQS:";
/// The kernel command-line word that makes `/init` start a shell on the console after its
/// checks (before it powers off).
pub const SHELL_FLAG: &str = "axvcpu.shell";
/// The line `/init` prints just before that shell starts reading the console.
pub const SHELL_MARKER: &str = "AXVCPU-SHELL: a shell on the console; `exit` powers the guest off";
/// The line `/init` prints just before `poweroff -f`.
pub const POWEROFF_MARKER: &str = "AXVCPU-POWEROFF";

/// The `/init` script.
pub fn init_script() -> String {
    format!(
        "#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /tmp /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
echo '{USERSPACE_MARKER}'
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo \"{CPUS_PREFIX}$(grep -c ^processor /proc/cpuinfo)\"
if [ -w /sys/devices/system/cpu/cpu1/online ]; then
  echo 0 > /sys/devices/system/cpu/cpu1/online && echo 1 > /sys/devices/system/cpu/cpu1/online \
    && echo \"{HOTPLUG_PREFIX}$(grep -c ^processor /proc/cpuinfo)\"
fi
echo '{IRQS_MARKER}'
cat /proc/interrupts
sleep 0.2
echo '{IRQS_MARKER}'
cat /proc/interrupts
cat /proc/uptime
if grep -qw {SHELL_FLAG} /proc/cmdline; then
  echo '{SHELL_MARKER}'
  sh
fi
echo '{POWEROFF_MARKER}'
poweroff -f
"
    )
}

/// One `newc` archive being written.
#[derive(Default)]
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

/// File type bits of `st_mode`.
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            if mode & S_IFDIR != 0 { 2 } else { 1 },
            0, // mtime: reproducible archives
            data.len() as u32,
            0,
            0, // devmajor/devminor of the archive's file system
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check: only for the "070702" format
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    /// A directory.
    pub fn dir(&mut self, name: &str) {
        self.entry(name, S_IFDIR | 0o755, (0, 0), &[]);
    }

    /// A regular file with permission bits `perm`.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, S_IFREG | (perm & 0o7777), (0, 0), data);
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, S_IFLNK | 0o777, (0, 0), target.as_bytes());
    }

    /// A character device node.
    pub fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) {
        self.entry(name, S_IFCHR | (perm & 0o7777), (major, minor), &[]);
    }

    /// Closes the archive (the `TRAILER!!!` entry) and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.out
    }
}

/// The archive: `/bin/busybox`, `/bin/sh` → busybox, `/dev/console` (5:1, so init has its
/// standard streams), the empty mount points and `/init`.
pub fn archive(busybox: &[u8], init: &str) -> Vec<u8> {
    let mut c = Cpio::default();
    for d in [
        "bin", "dev", "proc", "sys", "tmp", "sbin", "usr", "usr/bin", "usr/sbin",
    ] {
        c.dir(d);
    }
    c.file("bin/busybox", 0o755, busybox);
    c.symlink("bin/sh", "busybox");
    c.char_dev("dev/console", 0o600, 5, 1);
    c.file("init", 0o755, init.as_bytes());
    c.finish()
}

/// Writes the initramfs for `busybox` (a static binary of the guest's architecture) to
/// `out` and returns its size. Rewritten only when the busybox or the script changed.
pub fn build(busybox: &Path, out: &Path) -> Result<usize, String> {
    let bb = std::fs::read(busybox).map_err(|e| format!("reading {}: {e}", busybox.display()))?;
    let bytes = archive(&bb, &init_script());
    if std::fs::read(out).ok().as_deref() != Some(&bytes[..]) {
        std::fs::write(out, &bytes).map_err(|e| format!("writing {}: {e}", out.display()))?;
        eprintln!(
            "xtask: wrote {} ({} KiB)",
            out.display(),
            bytes.len() / 1024
        );
    }
    Ok(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a `newc` archive back: (name, mode, rdev major, data) per entry.
    fn parse(mut a: &[u8]) -> Vec<(String, u32, u32, Vec<u8>)> {
        let mut entries = Vec::new();
        let start = a.as_ptr() as usize;
        let field = |h: &[u8], i: usize| {
            u32::from_str_radix(std::str::from_utf8(&h[6 + 8 * i..14 + 8 * i]).unwrap(), 16)
                .unwrap()
        };
        fn align(a: &[u8], start: usize) -> &[u8] {
            let off = (a.as_ptr() as usize - start) % 4;
            &a[if off == 0 { 0 } else { 4 - off }..]
        }
        loop {
            assert_eq!(&a[..6], b"070701");
            let (mode, size, major, namesize) =
                (field(a, 1), field(a, 6), field(a, 9), field(a, 11));
            let name = std::str::from_utf8(&a[110..110 + namesize as usize - 1])
                .unwrap()
                .to_string();
            assert_eq!(a[110 + namesize as usize - 1], 0);
            a = align(&a[110 + namesize as usize..], start);
            let data = a[..size as usize].to_vec();
            a = align(&a[size as usize..], start);
            if name == "TRAILER!!!" {
                assert!(a.is_empty());
                return entries;
            }
            entries.push((name, mode, major, data));
        }
    }

    #[test]
    fn the_archive_reads_back_with_every_entry_aligned() {
        let a = archive(b"\x7fELF-busybox", "#!/bin/sh\n");
        assert_eq!(a.len() % 4, 0);
        let e = parse(&a);
        let get = |n: &str| e.iter().find(|x| x.0 == n).unwrap();
        assert_eq!(get("bin/busybox").3, b"\x7fELF-busybox");
        assert_eq!(get("bin/busybox").1, 0o100755);
        assert_eq!(get("bin/sh").1, 0o120777);
        assert_eq!(get("bin/sh").3, b"busybox");
        assert_eq!(get("dev/console").1, 0o020600);
        assert_eq!(get("dev/console").2, 5);
        assert_eq!(get("init").3, b"#!/bin/sh\n");
        assert_eq!(get("proc").1, 0o040755);
    }

    #[test]
    fn init_says_each_marker_and_powers_off_last() {
        let s = init_script();
        assert!(s.starts_with("#!/bin/busybox sh\n"));
        for m in [
            USERSPACE_MARKER,
            CPUS_PREFIX,
            HOTPLUG_PREFIX,
            IRQS_MARKER,
            POWEROFF_MARKER,
        ] {
            assert!(s.contains(m), "{m}");
        }
        assert!(s.trim_end().ends_with("poweroff -f"));
    }
}
