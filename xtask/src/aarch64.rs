//! The AArch64 testbed: build the test hypervisor image, boot it in QEMU at EL2, check its
//! report.
//!
//! `test()` builds `testbed-aarch64` for `aarch64-unknown-none`, boots it twice with
//! `qemu-system-aarch64 -machine virt,virtualization=on,gic-version=2 -cpu max|cortex-a72
//! -smp 2 -m 128M -semihosting`, streams the UART, and passes only if exactly `io-out` and
//! `io-in` (port I/O, which AArch64 does not have) are `N/A` and every other scenario of
//! `axvcpu_conformance::Scenario::ALL` has one `PASS` line, in both passes (the second,
//! prefixed `[vgic] `, injects interrupts through the GICv2 virtual CPU interface instead of
//! `HCR_EL2.VI`), each pass's closing line says `N passed, 0 failed, 2 skipped`, there are
//! `SELFTEST` lines and no line reports a failure or a fatal host exception, no frame
//! leaked, and QEMU exits with status 0 (the
//! testbed ends QEMU through semihosting `SYS_EXIT` with status 1 when anything failed;
//! PSCI `SYSTEM_OFF` carries no status). The checks are [`crate::testbed`]'s.
//!
//! `bench()` builds the image with the `bench` feature and boots it on one CPU with
//! `-icount shift=0`, where QEMU's PMU cycle counter advances once per instruction, and
//! prints hypervisor instructions per hypercall round trip.

use std::path::{Path, PathBuf};

use axvcpu_conformance::Scenario;

use crate::linux::host::HostLayout;
use crate::testbed::{self, SecondPass, Testbed};

pub const TESTBED: Testbed = Testbed {
    name: "AArch64",
    target: "aarch64-unknown-none",
    package: "testbed-aarch64",
    qemu: "qemu-system-aarch64",
    // EL2 available (`virtualization=on`), a GICv2 (the backend's kick SGI).
    machine: &[
        "-machine",
        "virt,virtualization=on,gic-version=2",
        "-m",
        "128M",
    ],
    boot: &["-semihosting", "-nographic"],
    // `max` (48-bit PA, every feature QEMU has) and `cortex-a72` (44-bit PA, Armv8.0).
    cpus: &["max", "cortex-a72"],
    // Port I/O.
    not_applicable: &[Scenario::IoOut, Scenario::IoIn],
    // Interrupts through the GICv2 virtual interface.
    second_pass: Some(SecondPass {
        prefix: "[vgic] ",
        name: "vGIC pass",
    }),
    exit_status: 0,
    bench_label: "aarch64",
};

/// Builds the testbed, boots it in QEMU (2 CPUs, each CPU model) and checks every
/// scenario's line and the self-tests.
pub fn test() -> Result<(), String> {
    testbed::test(&TESTBED)
}

/// Builds the benchmark image and prints hypervisor instructions per hypercall round trip,
/// counted with the PMU cycle counter under `-icount shift=0` (one cycle per instruction).
pub fn bench() -> Result<(), String> {
    testbed::bench(&TESTBED)
}

/// The Linux-booting build of the testbed (feature `linux`): QEMU with 1 GiB (the
/// hypervisor's heap and frames, the guest's 256 MiB, the staging area for the files).
pub const LINUX_HOST: Testbed = Testbed {
    name: "AArch64 Linux host",
    machine: &[
        "-machine",
        "virt,virtualization=on,gic-version=2",
        "-m",
        "1G",
    ],
    ..TESTBED
};

/// Host-physical addresses the hypervisor reads the guest's files from (its
/// `linux::loader`): the kernel (at the start of the guest's RAM), the initrd (where the
/// guest finds it, up to the device tree's room), the parameter block (past the guest's
/// RAM).
const LINUX_LAYOUT: HostLayout = HostLayout {
    testbed: &LINUX_HOST,
    elf_name: "testbed-aarch64-linux",
    arch: "AArch64",
    kernel: 0x5000_0000,
    initrd: 0x5800_0000,
    staging_end: 0x5fe0_0000,
    params: 0x6000_0000,
    max_vcpus: MAX_VCPUS,
};
/// The most vCPUs: one per host CPU of the testbed.
pub const MAX_VCPUS: usize = 2;

/// Builds the Linux-booting hypervisor and writes the parameter block; returns the image
/// and the QEMU arguments (before `-no-reboot -kernel <elf>`, which
/// [`testbed::boot`] adds) that load the guest's files where the hypervisor reads them.
/// With `print_dtb` the hypervisor prints the guest's device tree (`linux: device tree
/// <hex>`) before starting it.
pub fn linux_host(
    kernel: &Path,
    initrd: Option<&Path>,
    append: &str,
    cpus: usize,
    print_dtb: bool,
) -> Result<(PathBuf, Vec<String>), String> {
    let (elf, loaders) = LINUX_LAYOUT.prepare(kernel, initrd, append, cpus, print_dtb)?;
    // Two host CPUs whatever the vCPU count (CPU 1 serves jobs either way); a Cortex-A72
    // has no SVE, pointer authentication or MTE for the guest to find and use.
    let mut args: Vec<String> = ["-cpu", "cortex-a72", "-smp", "2"]
        .into_iter()
        .map(String::from)
        .collect();
    args.extend(loaders);
    Ok((elf, args))
}

/// Boots `kernel` (an arm64 `Image` or a raw binary) under the AArch64 hypervisor with
/// `cpus` vCPUs and `input` on its console; returns the console output (the guest's and the hypervisor's lines).
/// Fails when the hypervisor or the guest fails, or the guest does not power off cleanly.
pub fn boot_linux(
    kernel: &Path,
    initrd: Option<&Path>,
    append: &str,
    cpus: usize,
    input: crate::testbed::Input,
) -> Result<String, String> {
    let (elf, args) = linux_host(kernel, initrd, append, cpus, false)?;
    LINUX_LAYOUT.boot(&elf, &args, input)
}
