//! The x86-64 SVM testbed: build the test hypervisor image, boot it in QEMU (TCG, AMD SVM
//! with nested paging), check its report.
//!
//! `test()` builds `testbed-x86` for `x86_64-unknown-none` and boots it twice, with
//! `qemu-system-x86_64 -accel tcg -cpu max|qemu64,+svm,+npt -smp 2 -m 256M -nodefaults
//! -display none -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=0x04 -no-reboot
//! -kernel <elf>` (a PVH boot), streaming COM1. Each boot passes only if exactly `cpu-down` (x86 has no
//! architectural CPU-off) is `N/A` and every other scenario of
//! `axvcpu_conformance::Scenario::ALL` has one `PASS` line, the closing line says
//! `N passed, 0 failed, 1 skipped`, there are
//! `SELFTEST` lines and no line reports a failure or a fatal host exception, no frame
//! leaked, and QEMU exits with status 33. The testbed ends QEMU through `isa-debug-exit`,
//! which exits with `(code << 1) | 1`: code 0x10 (33) means everything passed, 0x11 (35)
//! that something failed; anything else (0 when QEMU quits on its own, a reset after a
//! host triple fault with `-no-reboot`) is a failure too. There is no second pass. The
//! checks are [`crate::testbed`]'s.
//!
//! The same image runs on Intel VMX in Bochs: `crate::bochs`.
//!
//! `bench()` builds the image with the `bench` feature and boots it on one CPU with
//! `-icount shift=0`, where QEMU derives the TSC from the instruction count (one tick per
//! instruction), and prints hypervisor instructions per hypercall round trip.

use std::path::{Path, PathBuf};

use axvcpu_conformance::Scenario;

use crate::testbed::{self, Testbed};

pub const TESTBED: Testbed = Testbed {
    name: "x86 SVM",
    target: "x86_64-unknown-none",
    package: "testbed-x86",
    qemu: "qemu-system-x86_64",
    // TCG (SVM with nested paging), PVH boot, COM1 on stdout, the exit device.
    machine: &[
        "-accel",
        "tcg",
        "-m",
        "256M",
        "-nodefaults",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
    ],
    boot: &[],
    // `max` (every feature QEMU's TCG has, x2APIC included) and `qemu64` with SVM and
    // nested paging added (the least an SVM host needs).
    cpus: &["max", "qemu64,+svm,+npt"],
    // No architectural CPU-off.
    not_applicable: &[Scenario::CpuDown, Scenario::HaltTimer],
    second_pass: None,
    // The testbed wrote its success code (0x10) to `isa-debug-exit`.
    exit_status: (0x10 << 1) | 1,
    bench_label: "x86 SVM",
};

/// Builds the testbed, boots it in QEMU on two CPUs of each CPU model and checks every
/// scenario's line, the self-tests and the exit status.
pub fn test() -> Result<(), String> {
    testbed::test(&TESTBED)
}

/// Builds the benchmark image and prints hypervisor instructions per hypercall round trip,
/// counted with the TSC under `-icount shift=0` (one tick per instruction).
pub fn bench() -> Result<(), String> {
    testbed::bench(&TESTBED)
}

/// The Linux-booting build of the testbed (feature `linux`): QEMU with 1 GiB (the
/// hypervisor's heap and frames below 256 MiB, the guest's 256 MiB, the parameter block).
pub const LINUX_HOST: Testbed = Testbed {
    name: "x86 SVM Linux host",
    machine: &[
        "-accel",
        "tcg",
        "-m",
        "1G",
        "-nodefaults",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
    ],
    ..TESTBED
};

/// Guest-physical = host-physical - `GUEST_RAM_HPA` for the guest's RAM (the hypervisor's
/// `linux::loader`); the parameter block just past it.
const GUEST_RAM_HPA: u64 = 0x1000_0000;
const INITRD_GPA: u64 = 0x0c00_0000;
const INITRD_END: u64 = 0x0ff0_0000;
const PARAMS_ADDR: u64 = 0x2000_0000;
/// The most vCPUs the x86 Linux hypervisor runs: one per CPU of its QEMU (`-smp 2`).
pub const MAX_VCPUS: usize = 2;

/// Builds the Linux-booting hypervisor, takes the kernel apart ([`crate::bzimage`]) and
/// writes the files QEMU loads; returns the image and the QEMU arguments (before
/// `-no-reboot -kernel <elf>`).
pub fn linux_host(
    kernel: &Path,
    initrd: Option<&Path>,
    append: &str,
    cpus: usize,
) -> Result<(PathBuf, Vec<String>), String> {
    if cpus == 0 || cpus > MAX_VCPUS {
        return Err(format!(
            "--cpus {cpus}: the x86 Linux hypervisor runs 1 to {MAX_VCPUS} vCPUs (one per CPU)"
        ));
    }
    let k = crate::bzimage::load(kernel)?;
    if k.load < 0x10_0000 || k.load + k.mem_size > INITRD_GPA {
        return Err(format!(
            "{}: loads at {:#x}..{:#x}, outside 1 MiB..192 MiB of the guest's RAM",
            kernel.display(),
            k.load,
            k.load + k.mem_size
        ));
    }
    let initrd_size = initrd
        .map(|p| {
            std::fs::metadata(p)
                .map(|m| m.len())
                .map_err(|e| format!("{}: {e}", p.display()))
        })
        .transpose()?
        .unwrap_or(0);
    if initrd_size > INITRD_END - INITRD_GPA {
        return Err("the initrd is larger than its room in the guest's RAM (63 MiB)".into());
    }
    let tb = &LINUX_HOST;
    testbed::ensure_tools(tb)?;
    let elf = testbed::build(tb, &["linux"], "testbed-x86-linux")?;
    let dir = testbed::target_dir();
    let image = dir.join("linux-x86_64-kernel.bin");
    std::fs::write(&image, &k.image).map_err(|e| format!("writing {}: {e}", image.display()))?;
    let params = dir.join("linux-x86_64-params.bin");
    let mut block = b"AXVLNX86".to_vec();
    for v in [
        k.image.len() as u64,
        k.load,
        k.mem_size,
        k.entry,
        initrd_size,
        cpus as u64,
        0,
        0,
        append.len() as u64,
    ] {
        block.extend(v.to_le_bytes());
    }
    block.extend(append.as_bytes());
    std::fs::write(&params, block).map_err(|e| format!("writing {}: {e}", params.display()))?;
    eprintln!(
        "xtask: kernel {}: segments at {:#x} ({} KiB, {} KiB in memory), entry {:#x}",
        kernel.display(),
        k.load,
        k.image.len() / 1024,
        k.mem_size / 1024,
        k.entry
    );
    let loader = |file: &Path, addr: u64| {
        format!("loader,file={},addr={addr:#x},force-raw=on", file.display())
    };
    let mut args: Vec<String> = ["-cpu", "max", "-smp", "2"]
        .into_iter()
        .map(String::from)
        .collect();
    let mut devices = vec![
        loader(&params, PARAMS_ADDR),
        loader(&image, GUEST_RAM_HPA + k.load),
    ];
    if let Some(initrd) = initrd {
        devices.push(loader(initrd, GUEST_RAM_HPA + INITRD_GPA));
    }
    for d in devices {
        args.extend(["-device".to_string(), d]);
    }
    Ok((elf, args))
}

/// Boots `kernel` (a bzImage or a vmlinux ELF) under the x86 hypervisor on AMD SVM in
/// QEMU; returns the console output. Fails when the hypervisor or the guest fails, or the
/// guest does not power off cleanly.
pub fn boot_linux(
    kernel: &Path,
    initrd: Option<&Path>,
    append: &str,
    cpus: usize,
    input: crate::testbed::Input,
) -> Result<String, String> {
    let (elf, args) = linux_host(kernel, initrd, append, cpus)?;
    crate::linux::host::boot_checked(&LINUX_HOST, &elf, &args, TESTBED.exit_status, input)
}
