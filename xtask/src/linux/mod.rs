//! Linux guests: which Debian packages hold each architecture's kernel and busybox, and
//! the images made from them (the kernel as packaged, an initramfs built by
//! [`crate::initramfs`]), all cached under `target/`.
//!
//! One [`Guest`] per architecture; [`Guest::images`] fetches what is missing (printing
//! progress) and returns the files to boot.

use std::path::{Path, PathBuf};

use crate::debian::Distro;
use crate::testbed::Input;

mod bench;
mod bench_x86;
mod check;
pub mod host;

pub use bench::{bench_aarch64, bench_riscv64};
pub use bench_x86::bench_x86_64;
pub use check::{check_boot, check_boot_of, RISCV64_CHECK, X86_64_CHECK};

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

/// The command line of the RISC-V guest (its console is the NS16550A, `ttyS0`).
pub const APPEND_RISCV64: &str = "console=ttyS0 quiet panic=-1";

/// The x86 command line: COM1, no ACPI or I/O APIC (the hypervisor emulates a local APIC
/// per vCPU, the 8259 and the 8254, and an MP table names the CPUs), no PCI (no config
/// space), no port-0x80 delays (an exit each, for nothing: the emulated devices need no
/// settling time).
pub const APPEND_X86: &str = "console=ttyS0 acpi=off noapic pci=off io_delay=none quiet panic=-1";
/// vCPUs of the x86 Linux runs (`run`, `test`, `bench`): the testbed's two CPUs.
pub const X86_CPUS: usize = 2;

const BOOT_USAGE: &str =
    "usage: cargo xtask boot aarch64|riscv64|x86_64 --kernel FILE [--initrd FILE] [--append STRING] [--cpus N] [--shell] [--no-sstc (riscv64)] [--svm|--vmx (x86_64)]";

/// What `cargo xtask boot` was asked to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootArgs {
    /// The architecture: `aarch64`, `riscv64`, `x86_64`.
    pub arch: String,
    /// The kernel.
    pub kernel: PathBuf,
    /// The initrd, if any.
    pub initrd: Option<PathBuf>,
    /// The command line ([`APPEND`], [`APPEND_RISCV64`], [`APPEND_X86`] unless given).
    pub append: String,
    /// vCPUs (2 unless given).
    pub cpus: usize,
    /// RISC-V: the host CPU has Sstc (unless `--no-sstc`).
    pub sstc: bool,
    /// `--shell`: the guest's console reads this terminal, and the command line asks the
    /// test initramfs's `/init` for a shell after its checks.
    pub shell: bool,
    /// x86_64: Intel VMX in Bochs (`--vmx`) instead of AMD SVM in QEMU (`--svm`, the
    /// default).
    pub vmx: bool,
}

/// Reads `<arch> --kernel FILE [--initrd FILE] [--append STRING] [--cpus N]` (riscv64 also
/// `--no-sstc`; x86_64 also `--svm`, AMD SVM in QEMU, the default, or `--vmx`, Intel VMX
/// in Bochs).
pub fn parse_boot_args(args: &[String]) -> Result<BootArgs, String> {
    let (arch, rest) = args.split_first().ok_or(BOOT_USAGE)?;
    let x86 = arch == "x86_64";
    let default_append = match arch.as_str() {
        "riscv64" => APPEND_RISCV64,
        "x86_64" => APPEND_X86,
        _ => APPEND,
    };
    let (mut kernel, mut initrd, mut append, mut cpus) =
        (None, None, default_append.to_string(), None);
    let (mut sstc, mut vmx) = (true, false);
    let mut shell = false;
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value; {BOOT_USAGE}"))
        };
        match flag.as_str() {
            "--kernel" => kernel = Some(PathBuf::from(value()?)),
            "--initrd" => initrd = Some(PathBuf::from(value()?)),
            "--append" => append = value()?.clone(),
            "--cpus" => {
                let v = value()?;
                cpus = Some(v.parse().map_err(|_| format!("--cpus {v}: not a number"))?);
            }
            "--no-sstc" => sstc = false,
            "--shell" => shell = true,
            "--svm" if x86 => vmx = false,
            "--vmx" if x86 => vmx = true,
            other => return Err(format!("unknown option {other}; {BOOT_USAGE}")),
        }
    }
    if shell && vmx {
        return Err("--shell with --vmx: Bochs's COM1 is not this terminal".into());
    }
    Ok(BootArgs {
        arch: arch.clone(),
        kernel: kernel.ok_or(BOOT_USAGE)?,
        initrd,
        append: if shell {
            host::with_shell(&append)
        } else {
            append
        },
        cpus: cpus.unwrap_or(2),
        sstc,
        shell,
        vmx,
    })
}

/// `cargo xtask boot <arch> --kernel FILE [--initrd FILE] [--append STRING] [--cpus N]`.
pub fn boot_command(args: &[String]) -> Result<(), String> {
    let b = parse_boot_args(args)?;
    let input = if b.shell {
        Input::Terminal
    } else {
        Input::Closed
    };
    match b.arch.as_str() {
        "aarch64" => {
            crate::aarch64::boot_linux(&b.kernel, b.initrd.as_deref(), &b.append, b.cpus, input)
                .map(drop)
        }
        "riscv64" => crate::riscv::boot_linux(
            &b.kernel,
            b.initrd.as_deref(),
            &b.append,
            b.cpus,
            b.sstc,
            input,
        )
        .map(drop),
        "x86_64" if b.vmx => {
            crate::bochs_linux::boot_linux(&b.kernel, b.initrd.as_deref(), &b.append, b.cpus)
                .map(drop)
        }
        "x86_64" => {
            crate::x86::boot_linux(&b.kernel, b.initrd.as_deref(), &b.append, b.cpus, input)
                .map(drop)
        }
        other => Err(format!("cannot boot {other} yet; {BOOT_USAGE}")),
    }
}

/// `cargo xtask shell aarch64|riscv64|x86_64`: the Debian images on 2 vCPUs (x86: SVM) with this terminal as
/// the guest's console and a shell after `/init`'s checks; `exit` powers the guest off.
pub fn shell_command(arch: Option<&str>) -> Result<(), String> {
    const USAGE: &str = "usage: cargo xtask shell aarch64|riscv64|x86_64";
    match arch {
        Some(arch @ ("aarch64" | "riscv64" | "x86_64")) => {
            boot_images(arch, true, Input::Terminal).map(drop)
        }
        _ => Err(USAGE.into()),
    }
}

/// The Debian images of `arch` on its default vCPUs (x86: SVM; RISC-V: with `sstc` or
/// without), `/init` asked for its shell, `input` on the console; returns the output.
fn boot_images(arch: &str, sstc: bool, input: Input) -> Result<String, String> {
    match arch {
        "aarch64" => {
            let images = AARCH64.images()?;
            let append = host::with_shell(APPEND);
            crate::aarch64::boot_linux(&images.kernel, Some(&images.initrd), &append, 2, input)
        }
        "riscv64" => {
            let images = RISCV64.images()?;
            let append = host::with_shell(APPEND_RISCV64);
            crate::riscv::boot_linux(
                &images.kernel,
                Some(&images.initrd),
                &append,
                2,
                sstc,
                input,
            )
        }
        _ => {
            let images = X86_64.images()?;
            let append = host::with_shell(APPEND_X86);
            crate::x86::boot_linux(
                &images.kernel,
                Some(&images.initrd),
                &append,
                X86_CPUS,
                input,
            )
        }
    }
}

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
    for sstc in [true, false] {
        let output = boot_images("riscv64", sstc, Input::Script(&host::TYPED_SESSION))?;
        let s = check_boot_of(&output, 2, &RISCV64_CHECK)
            .and_then(|s| host::check_typed(&output).map(|()| s))
            .map_err(|e| format!("Sstc {sstc}: {e}"))?;
        eprintln!(
            "xtask: Linux on the RISC-V hypervisor (Sstc {sstc}): user space at {} ms, 2 CPUs, timer ticking on both, a typed command answered by the guest's shell, clean power-off",
            s.userspace_ms
        );
    }
    Ok(())
}

/// `cargo xtask test`'s RISC-V Linux step (and `cargo xtask run linux-riscv64`): the
/// loader's refusals and a raw binary first (a second or two each), then the Debian images
/// on 2 vCPUs with Sstc and without ([`run_riscv64`]).
pub fn test_riscv64() -> Result<(), String> {
    loader_checks_riscv64()?;
    run_riscv64()
}

/// A raw RISC-V binary (no `Image` header) that writes `H` and a newline to the NS16550A
/// and powers off through SBI SRST.
const RAW_HELLO_RISCV64: [u32; 11] = [
    0x1000_05b7, // lui a1, 0x10000        (the UART)
    0x0480_0613, // li a2, 'H'
    0x00c5_8023, // sb a2, 0(a1)
    0x00a0_0613, // li a2, '\n'
    0x00c5_8023, // sb a2, 0(a1)
    0x0000_0513, // li a0, 0               (shutdown)
    0x0000_0593, // li a1, 0               (no reason)
    0x5352_58b7, // lui a7, 0x53525
    0x3548_8893, // addi a7, a7, 0x354     (SRST)
    0x0000_0813, // li a6, 0               (system_reset)
    0x0000_0073, // ecall
];

/// The RISC-V loader: a raw binary runs (at RAM + 2 MiB) and powers off cleanly; an ELF
/// file, an `Image` whose header says big-endian and one larger than the guest's RAM are
/// refused with the reason before the guest starts.
fn loader_checks_riscv64() -> Result<(), String> {
    let dir = crate::testbed::target_dir();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes)
            .map(|()| path.clone())
            .map_err(|e| format!("writing {}: {e}", path.display()))
    };
    let raw: Vec<u8> = RAW_HELLO_RISCV64
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    let raw = write("loader-raw-riscv64.bin", &raw)?;
    let out = crate::riscv::boot_linux(&raw, None, "", 1, true, Input::Closed)?;
    if !out.lines().any(|l| l == "H") || !out.contains("kernel at 0x80200000") {
        return Err("the raw binary did not run at RAM + 2 MiB".into());
    }
    // An `Image` header: text_offset 2 MiB, image_size, flags, both magics.
    let header = |image_size: u64, flags: u64| {
        let mut h = vec![0u8; 64];
        h[8..16].copy_from_slice(&(2u64 << 20).to_le_bytes());
        h[16..24].copy_from_slice(&image_size.to_le_bytes());
        h[24..32].copy_from_slice(&flags.to_le_bytes());
        h[0x30..0x35].copy_from_slice(b"RISCV");
        h[0x38..0x3c].copy_from_slice(b"RSC\x05");
        h
    };
    let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
    elf.resize(64, 0);
    for (name, image, why) in [
        ("loader-elf-riscv64.img", elf, "ELF"),
        ("loader-be-riscv64.img", header(1 << 20, 1), "big-endian"),
        (
            "loader-huge-riscv64.img",
            header(1 << 30, 0),
            "does not fit",
        ),
    ] {
        let path = write(name, &image)?;
        match crate::riscv::boot_linux(&path, None, "", 1, true, Input::Closed) {
            Err(e) if e.contains("kernel refused") && e.contains(why) => {}
            Err(e) => return Err(format!("{name}: refused for the wrong reason: {e}")),
            Ok(_) => return Err(format!("{name}: booted; the loader must refuse it")),
        }
    }
    eprintln!("xtask: RISC-V loader: raw binary ran, an ELF file and bad headers refused");
    Ok(())
}

/// `cargo xtask run linux-x86_64`: the Debian amd64 images, booted on the x86 hypervisor
/// (AMD SVM in QEMU), [`X86_CPUS`] vCPUs, with a command typed to its shell.
pub fn run_x86_64() -> Result<String, String> {
    boot_images("x86_64", true, Input::Script(&host::TYPED_SESSION))
}

/// `cargo xtask run linux-x86_64` and `cargo xtask test`'s x86 Linux step: a kernel that is
/// not one refused before QEMU starts, then the Debian images on [`X86_CPUS`] vCPUs,
/// checked by [`check_boot_of`] (user space, the CPU count, CPU 1 offline and online, the
/// local APIC timers' `LOC` line rising on every CPU, the power-off by `hlt` with
/// interrupts off).
pub fn test_x86_64() -> Result<(), String> {
    let junk = crate::testbed::target_dir().join("loader-junk.bzimage");
    std::fs::write(&junk, [0u8; 4096]).map_err(|e| format!("writing {}: {e}", junk.display()))?;
    match crate::x86::linux_host(&junk, None, APPEND_X86, X86_CPUS) {
        Err(e) if e.contains("HdrS") => {}
        Err(e) => {
            return Err(format!(
                "a junk kernel was refused for the wrong reason: {e}"
            ))
        }
        Ok(_) => return Err("a junk kernel was accepted".into()),
    }
    let output = run_x86_64()?;
    let s = check_boot_of(&output, X86_CPUS, &X86_64_CHECK)?;
    host::check_typed(&output)?;
    eprintln!(
        "xtask: Linux on the x86 hypervisor (SVM): user space at {} ms, {X86_CPUS} CPUs, CPU 1 off and on again, timer ticking on each, a typed command answered by the guest's shell, clean power-off",
        s.userspace_ms
    );
    Ok(())
}

/// `cargo xtask run linux-aarch64`: the Debian images, booted on 2 vCPUs, with a command
/// typed to its shell.
pub fn run_aarch64() -> Result<String, String> {
    boot_images("aarch64", true, Input::Script(&host::TYPED_SESSION))
}

/// `cargo xtask test`'s Linux step: the loader's two refusals and a raw binary first (each
/// QEMU run well under a second), then the Debian images on 2 vCPUs, checked by
/// [`check_boot`].
pub fn test_aarch64() -> Result<(), String> {
    loader_checks_aarch64()?;
    let output = run_aarch64()?;
    let s = check_boot(&output, 2)?;
    host::check_typed(&output)?;
    eprintln!(
        "xtask: Linux on the AArch64 hypervisor: user space at {} ms, 2 CPUs, timer ticking on both, a typed command answered by the guest's shell, clean power-off",
        s.userspace_ms
    );
    Ok(())
}

/// A raw binary (no `Image` header) that writes `H` and a newline to the PL011 and powers
/// off through PSCI `SYSTEM_OFF` over `hvc`.
const RAW_HELLO: [u32; 8] = [
    0xd2a1_2001, // movz x1, #0x900, lsl #16   (the PL011)
    0x5280_0902, // movz w2, #'H'
    0x3900_0022, // strb w2, [x1]
    0x5280_0142, // movz w2, #'\n'
    0x3900_0022, // strb w2, [x1]
    0xd280_0100, // movz x0, #0x8
    0xf2b0_8000, // movk x0, #0x8400, lsl #16 (SYSTEM_OFF)
    0xd400_0002, // hvc #0
];

/// The AArch64 loader: a raw binary runs (at RAM + 0x80000) and powers off cleanly; an
/// `Image` whose header says big-endian, and one larger than the guest's RAM, are refused
/// with the reason before the guest starts.
fn loader_checks_aarch64() -> Result<(), String> {
    let dir = crate::testbed::target_dir();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes)
            .map(|()| path.clone())
            .map_err(|e| format!("writing {}: {e}", path.display()))
    };
    let raw: Vec<u8> = RAW_HELLO.iter().flat_map(|w| w.to_le_bytes()).collect();
    let raw = write("loader-raw.bin", &raw)?;
    let out = crate::aarch64::boot_linux(&raw, None, "", 1, Input::Closed)?;
    if !out.lines().any(|l| l == "H") || !out.contains("kernel at 0x40080000") {
        return Err("the raw binary did not run at RAM + 0x80000".into());
    }
    // An `Image` header: text_offset 0, image_size, flags, the magic at 0x38.
    let header = |image_size: u64, flags: u64| {
        let mut h = vec![0u8; 64];
        h[16..24].copy_from_slice(&image_size.to_le_bytes());
        h[24..32].copy_from_slice(&flags.to_le_bytes());
        h[0x38..0x3c].copy_from_slice(b"ARM\x64");
        h
    };
    for (name, image, why) in [
        ("loader-be.img", header(1 << 20, 0b1011), "big-endian"),
        ("loader-huge.img", header(1 << 30, 0b1010), "does not fit"),
    ] {
        let path = write(name, &image)?;
        match crate::aarch64::boot_linux(&path, None, "", 1, Input::Closed) {
            Err(e) if e.contains("kernel refused") && e.contains(why) => {}
            Err(e) => return Err(format!("{name}: refused for the wrong reason: {e}")),
            Ok(_) => return Err(format!("{name}: booted; the loader must refuse it")),
        }
    }
    eprintln!("xtask: AArch64 loader: raw binary ran, bad headers refused");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn boot_arguments_have_defaults_and_refuse_what_they_do_not_know() {
        let b = parse_boot_args(&args("aarch64 --kernel K")).unwrap();
        assert_eq!(
            (b.kernel, b.initrd, b.append, b.cpus, b.sstc),
            ("K".into(), None, APPEND.into(), 2, true)
        );
        let b =
            parse_boot_args(&args("aarch64 --cpus 1 --initrd I --kernel K --append q")).unwrap();
        assert_eq!(
            (b.initrd, b.append.as_str(), b.cpus),
            (Some("I".into()), "q", 1)
        );
        assert!(
            parse_boot_args(&args("aarch64 --initrd I")).is_err(),
            "no kernel"
        );
        assert!(parse_boot_args(&args("aarch64 --kernel"))
            .unwrap_err()
            .contains("needs a value"));
        assert!(parse_boot_args(&args("aarch64 --kernel K --cpus two")).is_err());
        assert!(parse_boot_args(&args("aarch64 --kernel K --smp 2")).is_err());
        assert!(parse_boot_args(&[]).is_err());
        let b = parse_boot_args(&args("riscv64 --kernel K --no-sstc")).unwrap();
        assert_eq!((b.append.as_str(), b.sstc), (APPEND_RISCV64, false));
        let x = parse_boot_args(&args("x86_64 --kernel K --svm")).unwrap();
        assert_eq!((x.cpus, x.append.as_str()), (2, APPEND_X86));
        assert!(!x.vmx);
        let v = parse_boot_args(&args("x86_64 --kernel K --vmx")).unwrap();
        assert_eq!((v.vmx, v.cpus), (true, 2));
        let v = parse_boot_args(&args("x86_64 --kernel K --vmx --cpus 1")).unwrap();
        assert_eq!((v.vmx, v.cpus), (true, 1));
        assert!(parse_boot_args(&args("aarch64 --kernel K --vmx")).is_err());
        assert!(parse_boot_args(&args("aarch64 --kernel K --svm")).is_err());
    }

    #[test]
    fn every_guest_names_its_packages_and_files() {
        for g in GUESTS {
            assert!(g.name.starts_with("linux-"));
            assert!(g.kernel_file.starts_with("boot/"), "{}", g.name);
            assert!(g.busybox_file.ends_with("/busybox"), "{}", g.name);
            assert!(g.distro.sources_list().contains(g.distro.arch));
        }
    }
}
