//! Linux guests: which Debian packages hold each architecture's kernel and busybox, and
//! the images made from them (the kernel as packaged, an initramfs built by
//! [`crate::initramfs`]), all cached under `target/`.
//!
//! One [`Guest`] per architecture; [`Guest::images`] fetches what is missing (printing
//! progress) and returns the files to boot.

use std::path::{Path, PathBuf};

use crate::debian::Distro;

/// A Linux guest of one architecture, as Debian packages it.
#[derive(Debug, Clone, Copy)]
pub struct Guest {
    /// Names the images under `target/`: `linux-aarch64`.
    pub name: &'static str,
    /// The suite and architecture the packages come from.
    pub distro: Distro,
    /// The kernel metapackage (`linux-image-arm64`), which depends on the current
    /// `linux-image-<version>-<flavour>` package holding the kernel.
    pub kernel_package: &'static str,
    /// The kernel file's path in that package, up to the version: `boot/vmlinuz-`.
    pub kernel_file: &'static str,
    /// The package with a static busybox.
    pub busybox_package: &'static str,
    /// Where that package keeps the binary.
    pub busybox_file: &'static str,
}

/// Debian bookworm's arm64 kernel (6.1; its `vmlinuz` is an uncompressed arm64 `Image`
/// with an EFI stub) and busybox.
pub const AARCH64: Guest = Guest {
    name: "linux-aarch64",
    distro: Distro {
        suite: "bookworm",
        arch: "arm64",
        security: true,
    },
    kernel_package: "linux-image-arm64",
    kernel_file: "boot/vmlinuz-",
    busybox_package: "busybox-static",
    busybox_file: "bin/busybox",
};

/// Debian trixie's riscv64 kernel (6.12; bookworm has none; its `vmlinux` is a RISC-V
/// `Image` with an EFI stub) and busybox (`usr/bin/busybox` there). For the RISC-V Linux
/// guest to come; `cargo xtask images linux-riscv64` fetches it.
pub const RISCV64: Guest = Guest {
    name: "linux-riscv64",
    distro: Distro {
        suite: "trixie",
        arch: "riscv64",
        security: false,
    },
    kernel_package: "linux-image-riscv64",
    kernel_file: "boot/vmlinux-",
    busybox_package: "busybox-static",
    busybox_file: "usr/bin/busybox",
};

/// Debian bookworm's amd64 kernel (6.1, a bzImage) and busybox. For the x86 Linux guest to
/// come; `cargo xtask images linux-x86_64` fetches it.
pub const X86_64: Guest = Guest {
    name: "linux-x86_64",
    distro: Distro {
        suite: "bookworm",
        arch: "amd64",
        security: true,
    },
    kernel_package: "linux-image-amd64",
    kernel_file: "boot/vmlinuz-",
    busybox_package: "busybox-static",
    busybox_file: "bin/busybox",
};

/// Every guest, by name.
pub const GUESTS: [Guest; 3] = [AARCH64, RISCV64, X86_64];

/// `cargo xtask images <guest>`: fetches and builds one guest's images, printing where.
pub fn images_command(name: Option<&str>) -> Result<(), String> {
    let names: Vec<&str> = GUESTS.iter().map(|g| g.name).collect();
    let usage = || format!("usage: cargo xtask images {}", names.join("|"));
    let name = name.ok_or_else(usage)?;
    let guest = GUESTS
        .iter()
        .find(|g| g.name == name)
        .ok_or_else(|| format!("unknown guest `{name}`; {}", usage()))?;
    let images = guest.images()?;
    println!("{}", images.kernel.display());
    println!("{}", images.initrd.display());
    Ok(())
}

/// The files a guest boots.
#[derive(Debug, Clone)]
pub struct Images {
    /// The kernel as packaged.
    pub kernel: PathBuf,
    /// The initramfs (`newc` cpio, uncompressed).
    pub initrd: PathBuf,
}

impl Guest {
    /// Fetches the packages (when not cached) and builds the initramfs.
    pub fn images(&self) -> Result<Images, String> {
        // Only the kernel: the package's modules are ten times its size.
        let kernel_dir = self.kernel_file.rsplit_once('/').map_or("", |(d, _)| d);
        let kernel_root =
            self.distro
                .package_through(self.kernel_package, "linux-image-", &[kernel_dir])?;
        let kernel = find_prefixed(&kernel_root, self.kernel_file)?;
        let busybox_root = self
            .distro
            .package(self.busybox_package, &[self.busybox_file])?;
        let busybox = busybox_root.join(self.busybox_file);
        let initrd = crate::testbed::target_dir().join(format!("{}-initramfs.cpio", self.name));
        crate::initramfs::build(&busybox, &initrd)?;
        eprintln!(
            "xtask: {}: kernel {}, initramfs {}",
            self.name,
            kernel.display(),
            initrd.display()
        );
        Ok(Images { kernel, initrd })
    }
}

/// The one file under `root` whose path starts with `prefix` (`boot/vmlinuz-`).
fn find_prefixed(root: &Path, prefix: &str) -> Result<PathBuf, String> {
    let (dir, stem) = match prefix.rsplit_once('/') {
        Some((d, s)) => (root.join(d), s),
        None => (root.to_path_buf(), prefix),
    };
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(stem))
        .map(|e| e.path())
        .collect();
    found.sort();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(format!("no {prefix}* in {}", root.display())),
        _ => Err(format!("more than one {prefix}* in {}", root.display())),
    }
}

/// The command line `cargo xtask run linux-<arch>` boots the Debian kernel with.
/// (`quiet`: every console byte is an MMIO exit or two; the kernel's log would dominate
/// the time to user space.)
pub const APPEND: &str = "console=ttyAMA0 quiet panic=-1";

/// `cargo xtask boot <arch> --kernel FILE [--initrd FILE] [--append STRING] [--cpus N]`.
pub fn boot_command(args: &[String]) -> Result<(), String> {
    const USAGE: &str =
        "usage: cargo xtask boot aarch64|riscv64 --kernel FILE [--initrd FILE] [--append STRING] [--cpus N] [--no-sstc (riscv64)]";
    let (arch, rest) = args.split_first().ok_or(USAGE)?;
    let default_append = if arch == "riscv64" {
        APPEND_RISCV64
    } else {
        APPEND
    };
    let (mut kernel, mut initrd, mut append, mut cpus) =
        (None, None, default_append.to_string(), 2);
    let mut sstc = true;
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value; {USAGE}"))
        };
        match flag.as_str() {
            "--kernel" => kernel = Some(PathBuf::from(value()?)),
            "--initrd" => initrd = Some(PathBuf::from(value()?)),
            "--append" => append = value()?.clone(),
            "--cpus" => {
                let v = value()?;
                cpus = v.parse().map_err(|_| format!("--cpus {v}: not a number"))?;
            }
            "--no-sstc" => sstc = false,
            other => return Err(format!("unknown option {other}; {USAGE}")),
        }
    }
    let kernel = kernel.ok_or(USAGE)?;
    match arch.as_str() {
        "aarch64" => {
            crate::aarch64::boot_linux(&kernel, initrd.as_deref(), &append, cpus).map(drop)
        }
        "riscv64" => {
            crate::riscv::boot_linux(&kernel, initrd.as_deref(), &append, cpus, sstc).map(drop)
        }
        other => Err(format!("cannot boot {other} yet; {USAGE}")),
    }
}

/// The command line of the RISC-V guest (its console is the NS16550A, `ttyS0`).
pub const APPEND_RISCV64: &str = "console=ttyS0 quiet panic=-1";

/// The parameter block an OS-guest hypervisor reads (`axvcpu_testbed::params`): magic,
/// kernel size, initrd size, vCPUs, flags (bit 0: print the device tree), command-line
/// length (little-endian `u64`s), the command line.
pub fn params_block(
    kernel_size: u64,
    initrd_size: u64,
    cpus: usize,
    print_dtb: bool,
    append: &str,
) -> Vec<u8> {
    let mut b = b"AXVLINUX".to_vec();
    let flags = u64::from(print_dtb);
    for v in [
        kernel_size,
        initrd_size,
        cpus as u64,
        flags,
        append.len() as u64,
    ] {
        b.extend(v.to_le_bytes());
    }
    b.extend(append.as_bytes());
    b
}

/// `cargo xtask run linux-riscv64`: the Debian images, booted on 2 vCPUs, with Sstc and
/// without; checked as `cargo xtask test` checks them.
pub fn run_riscv64() -> Result<(), String> {
    let images = RISCV64.images()?;
    for sstc in [true, false] {
        let output = crate::riscv::boot_linux(
            &images.kernel,
            Some(&images.initrd),
            APPEND_RISCV64,
            2,
            sstc,
        )?;
        let s =
            check_boot_of(&output, 2, &RISCV64_CHECK).map_err(|e| format!("Sstc {sstc}: {e}"))?;
        eprintln!(
            "xtask: Linux on the RISC-V hypervisor (Sstc {sstc}): user space at {} ms, 2 CPUs, timer ticking on both, clean power-off",
            s.userspace_ms
        );
    }
    Ok(())
}

/// `cargo xtask run linux-aarch64`: the Debian images, booted on 2 vCPUs.
pub fn run_aarch64() -> Result<String, String> {
    let images = AARCH64.images()?;
    crate::aarch64::boot_linux(&images.kernel, Some(&images.initrd), APPEND, 2)
}

/// The most guest-clock time from the hypervisor's start to the guest's user-space marker
/// that `cargo xtask test` accepts (plain QEMU takes 2–4 s, the hypervisor 5–10 s on a
/// loaded 2-core machine).
pub const USERSPACE_BOUND_MS: u64 = 60_000;

/// What a passing boot showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSummary {
    /// Milliseconds (hypervisor clock) from its start to the user-space marker.
    pub userspace_ms: u64,
    /// The hypervisor's closing line.
    pub closing: String,
}

/// Checks the console of a Linux boot under our hypervisor: the init's user-space marker,
/// `cpus` CPUs (and, with more than one, CPU 1 offline and online again), the timer interrupt count (`arch_timer` in `/proc/interrupts`) rising on
/// every CPU between init's two copies, the power-off marker, and the hypervisor's closing
/// line saying the guest powered off through PSCI with user space reached within
/// [`USERSPACE_BOUND_MS`].
pub fn check_boot(output: &str, cpus: usize) -> Result<BootSummary, String> {
    check_boot_of(output, cpus, &AARCH64_CHECK)
}

/// What differs between architectures in [`check_boot_of`].
#[derive(Debug, Clone, Copy)]
pub struct BootCheck {
    /// The timer's name in `/proc/interrupts`.
    pub timer: &'static str,
    /// The start of the hypervisor's closing line after a clean power-off.
    pub powered_off: &'static str,
}

/// The AArch64 hypervisor's boots.
pub const AARCH64_CHECK: BootCheck = BootCheck {
    timer: "arch_timer",
    powered_off: "linux: guest powered off (PSCI SYSTEM_OFF)",
};

/// The RISC-V hypervisor's boots.
pub const RISCV64_CHECK: BootCheck = BootCheck {
    timer: "riscv-timer",
    powered_off: "linux: guest powered off (SBI SRST shutdown)",
};

/// [`check_boot`] for any architecture's hypervisor.
pub fn check_boot_of(output: &str, cpus: usize, arch: &BootCheck) -> Result<BootSummary, String> {
    use crate::initramfs::{
        CPUS_PREFIX, HOTPLUG_PREFIX, IRQS_MARKER, POWEROFF_MARKER, USERSPACE_MARKER,
    };
    let lines: Vec<&str> = output.lines().collect();
    let has = |m: &str| lines.iter().any(|l| l.trim() == m);
    if !has(USERSPACE_MARKER) {
        return Err("the guest's init never reached user space".into());
    }
    let reported = lines
        .iter()
        .find_map(|l| l.strip_prefix(CPUS_PREFIX))
        .ok_or("no CPU count from the guest")?;
    if reported.trim() != cpus.to_string() {
        return Err(format!(
            "Linux reports {} CPUs, not {cpus}",
            reported.trim()
        ));
    }
    if cpus > 1 {
        let after = lines
            .iter()
            .find_map(|l| l.strip_prefix(HOTPLUG_PREFIX))
            .ok_or("CPU 1 did not go offline and online again")?;
        if after.trim() != cpus.to_string() {
            return Err(format!(
                "after CPU 1 went offline and online, {} CPUs, not {cpus}",
                after.trim()
            ));
        }
    }
    let timer_counts: Vec<Vec<u64>> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim() == IRQS_MARKER)
        .map(|(i, _)| {
            lines[i + 1..]
                .iter()
                .take_while(|l| l.trim() != IRQS_MARKER)
                .find(|l| l.contains(arch.timer))
                .map(|l| per_cpu_counts(l, cpus))
                .unwrap_or_default()
        })
        .collect();
    match timer_counts.as_slice() {
        [a, b] if a.len() == cpus && b.len() == cpus => {
            if let Some(cpu) = (0..cpus).find(|&c| b[c] <= a[c]) {
                return Err(format!(
                    "the timer interrupt count did not rise on CPU {cpu} ({} then {})",
                    a[cpu], b[cpu]
                ));
            }
        }
        _ => {
            return Err(format!(
                "no two {} lines of /proc/interrupts from the guest",
                arch.timer
            ))
        }
    }
    if !has(POWEROFF_MARKER) {
        return Err("the guest's init did not get to its power-off".into());
    }
    let closing = lines
        .iter()
        .find(|l| l.starts_with(arch.powered_off))
        .ok_or("the hypervisor did not see the guest power off")?;
    let userspace_ms = closing
        .split("user space reached at ")
        .nth(1)
        .and_then(|r| r.split(" ms").next())
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or("the hypervisor's closing line has no time to user space")?;
    if userspace_ms > USERSPACE_BOUND_MS {
        return Err(format!(
            "user space reached after {userspace_ms} ms, more than {USERSPACE_BOUND_MS} ms"
        ));
    }
    Ok(BootSummary {
        userspace_ms,
        closing: closing.to_string(),
    })
}

/// The first `cpus` counts of a `/proc/interrupts` line (` 11:  883  692 GIC-0 27 Level
/// arch_timer`).
fn per_cpu_counts(line: &str, cpus: usize) -> Vec<u64> {
    line.split_whitespace()
        .skip(1)
        .take(cpus)
        .map_while(|w| w.parse().ok())
        .collect()
}

/// `cargo xtask test`'s Linux step: boots the Debian images on 2 vCPUs and checks the run
/// ([`check_boot`]).
pub fn test_aarch64() -> Result<(), String> {
    let output = run_aarch64()?;
    let s = check_boot(&output, 2)?;
    eprintln!(
        "xtask: Linux on the AArch64 hypervisor: user space at {} ms, 2 CPUs, timer ticking on both, clean power-off",
        s.userspace_ms
    );
    Ok(())
}

/// Runs `program args` (QEMU) to its end, at most `TIMEOUT`; returns the seconds from its
/// start to the line holding the user-space marker (if any) and its output.
fn time_to_marker(program: &str, args: &[String]) -> Result<(Option<f64>, String), String> {
    run_to_marker(program, args, false)
}

/// [`time_to_marker`], ending QEMU at the marker when `stop_at_marker` (a plain boot whose
/// firmware cannot power off with the hypervisor's device tree).
fn run_to_marker(
    program: &str,
    args: &[String],
    stop_at_marker: bool,
) -> Result<(Option<f64>, String), String> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    const TIMEOUT: Duration = Duration::from_secs(120);
    eprintln!("$ {program} {}", args.join(" "));
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: cannot start: {e}"))?;
    let stdout = child.stdout.take().ok_or("no QEMU stdout")?;
    let child = Arc::new(Mutex::new(child));
    let finished = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (child, finished) = (child.clone(), finished.clone());
        std::thread::spawn(move || {
            while !finished.load(Ordering::Acquire) {
                if started.elapsed() > TIMEOUT {
                    let _ = child.lock().map(|mut c| c.kill());
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let (mut marker, mut output) = (None, String::new());
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("reading QEMU output: {e}"))?;
        if marker.is_none() && line.contains(crate::initramfs::USERSPACE_MARKER) {
            marker = Some(started.elapsed().as_secs_f64());
            if stop_at_marker {
                let _ = child.lock().map(|mut c| c.kill());
            }
        }
        output.push_str(line.trim_end_matches('\r'));
        output.push('\n');
    }
    let _ = child.lock().map(|mut c| c.wait());
    finished.store(true, Ordering::Release);
    let _ = watchdog.join();
    Ok((marker, output))
}

/// `cargo xtask bench`'s Linux figures: wall-clock seconds from QEMU's start to the
/// user-space marker, under our hypervisor and in plain QEMU TCG (the same kernel,
/// initramfs, command line and device tree), and the exits by kind.
pub fn bench_aarch64() -> Result<(), String> {
    let images = AARCH64.images()?;
    let (elf, host_args) =
        crate::aarch64::linux_host(&images.kernel, Some(&images.initrd), APPEND, 2, true)?;
    let tb = &crate::aarch64::LINUX_HOST;
    let mut ours: Vec<String> = tb.machine.iter().map(|s| s.to_string()).collect();
    ours.extend(host_args);
    ours.extend(tb.boot.iter().map(|s| s.to_string()));
    ours.extend([
        "-no-reboot".into(),
        "-kernel".into(),
        elf.display().to_string(),
    ]);
    let (t_ours, out) = time_to_marker(tb.qemu, &ours)?;
    let summary = check_boot(&out, 2)?;
    // The same device tree for plain QEMU (it fills in the memory node and the initrd's
    // place itself).
    let dtb = out
        .lines()
        .find_map(|l| l.strip_prefix("linux: device tree "))
        .map(from_hex)
        .ok_or("the hypervisor did not print the device tree")??;
    let dtb_path = crate::testbed::target_dir().join("linux-aarch64.dtb");
    std::fs::write(&dtb_path, dtb).map_err(|e| format!("writing {}: {e}", dtb_path.display()))?;
    let plain: Vec<String> = [
        "-machine",
        "virt,gic-version=2",
        "-cpu",
        "cortex-a72",
        "-smp",
        "2",
        "-m",
        "256M",
        "-nographic",
        "-no-reboot",
        "-kernel",
    ]
    .into_iter()
    .map(String::from)
    .chain([
        images.kernel.display().to_string(),
        "-initrd".into(),
        images.initrd.display().to_string(),
        "-append".into(),
        APPEND.into(),
        "-dtb".into(),
        dtb_path.display().to_string(),
    ])
    .collect();
    let (t_plain, _) = time_to_marker(tb.qemu, &plain)?;
    let (Some(t_ours), Some(t_plain)) = (t_ours, t_plain) else {
        return Err("a boot did not reach the user-space marker".into());
    };
    println!(
        "linux-aarch64 (QEMU TCG, 2 vCPUs): user space after {t_ours:.2} s under axvcpu-aarch64, {t_plain:.2} s in plain QEMU ({:.2}x)",
        t_ours / t_plain
    );
    let exits = summary.closing.split("exits:").nth(1).unwrap_or("").trim();
    println!("linux-aarch64 exits by kind during the boot: {exits}");
    Ok(())
}

/// `cargo xtask bench linux-riscv64`: wall-clock seconds from QEMU's start to the
/// user-space marker under the RISC-V hypervisor (2 vCPUs, with Sstc) and in plain QEMU TCG
/// booting the same kernel, initramfs, command line and device tree (through OpenSBI, 2
/// harts), and the exits by kind.
pub fn bench_riscv64() -> Result<(), String> {
    let images = RISCV64.images()?;
    let (elf, host_args) = crate::riscv::linux_host(
        &images.kernel,
        Some(&images.initrd),
        APPEND_RISCV64,
        2,
        true,
        true,
    )?;
    let tb = &crate::riscv::LINUX_HOST;
    let mut ours: Vec<String> = tb.machine.iter().map(|s| s.to_string()).collect();
    ours.extend(host_args);
    ours.extend(tb.boot.iter().map(|s| s.to_string()));
    ours.extend([
        "-no-reboot".into(),
        "-kernel".into(),
        elf.display().to_string(),
    ]);
    let (t_ours, out) = time_to_marker(tb.qemu, &ours)?;
    let summary = check_boot_of(&out, 2, &RISCV64_CHECK)?;
    let dtb = out
        .lines()
        .find_map(|l| l.strip_prefix("linux: device tree "))
        .map(from_hex)
        .ok_or("the hypervisor did not print the device tree")??;
    let dtb_path = crate::testbed::target_dir().join("linux-riscv64.dtb");
    std::fs::write(&dtb_path, dtb).map_err(|e| format!("writing {}: {e}", dtb_path.display()))?;
    let plain: Vec<String> = [
        "-machine",
        "virt",
        "-cpu",
        "rv64",
        "-smp",
        "2",
        "-m",
        "256M",
        "-bios",
        "default",
        "-nographic",
        "-no-reboot",
        "-kernel",
    ]
    .into_iter()
    .map(String::from)
    .chain([
        images.kernel.display().to_string(),
        "-initrd".into(),
        images.initrd.display().to_string(),
        "-append".into(),
        APPEND_RISCV64.into(),
        "-dtb".into(),
        dtb_path.display().to_string(),
    ])
    .collect();
    // OpenSBI finds no power-off device in this tree (Linux powers off through SBI SRST,
    // which the hypervisor serves): plain QEMU is ended at the marker.
    let (t_plain, plain_out) = run_to_marker(tb.qemu, &plain, true)?;
    let (Some(t_ours), Some(t_plain)) = (t_ours, t_plain) else {
        let tail: Vec<&str> = plain_out.lines().rev().take(5).collect();
        return Err(format!(
            "a boot did not reach the user-space marker (plain QEMU's last lines: {tail:?})"
        ));
    };
    println!(
        "linux-riscv64 (QEMU TCG, 2 vCPUs, Sstc): user space after {t_ours:.2} s under axvcpu-riscv, {t_plain:.2} s in plain QEMU ({:.2}x)",
        t_ours / t_plain
    );
    let exits = summary.closing.split("exits:").nth(1).unwrap_or("").trim();
    println!("linux-riscv64 exits by kind during the boot: {exits}");
    Ok(())
}

/// Bytes from their hex digits.
fn from_hex(hex: &str) -> Result<Vec<u8>, String> {
    let hex = hex.trim();
    if !hex.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| format!("not hex at {i}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
linux: backend axvcpu-aarch64, CPU Cortex-A72, 2 vCPUs, guest at EL1
AXVCPU-USERSPACE: init reached user space
AXVCPU-CPUS: 2
AXVCPU-HOTPLUG: CPU 1 off and on again, CPUs: 2
AXVCPU-IRQS:
           CPU0       CPU1
 11:        883        692 GIC-0  27 Level     arch_timer
IPI0:        16         21       Rescheduling interrupts
AXVCPU-IRQS:
           CPU0       CPU1
 11:        909        720 GIC-0  27 Level     arch_timer
IPI0:        16         23       Rescheduling interrupts
AXVCPU-POWEROFF
[    5.551496] reboot: Power down
linux: guest powered off (PSCI SYSTEM_OFF) after 9252 ms; user space reached at 8627 ms; exits: Halt 3
";

    #[test]
    fn a_complete_boot_passes() {
        let s = check_boot(GOOD, 2).unwrap();
        assert_eq!(s.userspace_ms, 8627);
    }

    fn refused(from: &str, to: &str, why: &str) {
        assert!(GOOD.contains(from), "{from}");
        let err = check_boot(&GOOD.replacen(from, to, 1), 2).unwrap_err();
        assert!(err.contains(why), "{from:?} -> {to:?}: {err}");
    }

    #[test]
    fn each_requirement_can_fail() {
        refused(
            "AXVCPU-USERSPACE: init reached user space\n",
            "",
            "user space",
        );
        refused("AXVCPU-CPUS: 2", "AXVCPU-CPUS: 1", "reports 1 CPUs");
        refused("909        720", "909        692", "did not rise on CPU 1");
        refused("again, CPUs: 2", "again, CPUs: 1", "1 CPUs, not 2");
        refused("AXVCPU-HOTPLUG", "AXVCPU-NOPLUG", "did not go offline");
        refused("883        692", "883", "no two arch_timer lines");
        refused("AXVCPU-POWEROFF\n", "", "power-off");
        refused(
            "(PSCI SYSTEM_OFF)",
            "(error)",
            "did not see the guest power off",
        );
        refused("reached at 8627 ms", "reached at 61000 ms", "more than");
        refused(
            "reached at 8627 ms",
            "reached never",
            "no time to user space",
        );
        assert!(check_boot(GOOD, 1).is_err());
    }

    #[test]
    fn a_riscv_boot_is_checked_by_its_timer_and_its_power_off() {
        let riscv = GOOD
            .replace(
                "GIC-0  27 Level     arch_timer",
                "RISC-V INTC   5 Edge      riscv-timer",
            )
            .replace("(PSCI SYSTEM_OFF)", "(SBI SRST shutdown)");
        assert_eq!(
            check_boot_of(&riscv, 2, &RISCV64_CHECK)
                .unwrap()
                .userspace_ms,
            8627
        );
        assert!(check_boot_of(GOOD, 2, &RISCV64_CHECK).is_err());
        assert!(check_boot_of(&riscv, 2, &AARCH64_CHECK).is_err());
    }

    #[test]
    fn hex_reads_back() {
        assert_eq!(
            from_hex("d00dfeed00\n").unwrap(),
            [0xd0, 0x0d, 0xfe, 0xed, 0]
        );
        assert!(from_hex("abc").is_err());
        assert!(from_hex("zz").is_err());
    }
}
