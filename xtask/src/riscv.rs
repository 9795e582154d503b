//! The RISC-V testbed: build the test hypervisor image, boot it in QEMU, check its report.
//!
//! `test()` builds `testbed-riscv` for `riscv64gc-unknown-none-elf`, boots it with
//! `qemu-system-riscv64 -machine virt -cpu rv64,h=true -smp 2 -bios default` (and again
//! without Sstc, see [`TESTBED`]), streams the UART, and passes only if exactly `io-out` and
//! `io-in` (port I/O, which RISC-V does not have) are `N/A` and every other scenario of
//! `axvcpu_conformance::Scenario::ALL` has one `PASS` line, with the closing line
//! `N passed, 0 failed, 2 skipped` and QEMU's exit status 0
//! (the testbed powers off through SBI SRST, with reason "system failure" when anything
//! failed). The same holds for the second pass (Sv39x4, MMIO read with HLVX), whose lines
//! carry the prefix `[sv39x4, hlvx] `; the self-tests must report and none may fail, no line
//! may report a fatal host trap, and no frame may leak. The checks are
//! [`crate::testbed`]'s.
//!
//! `bench()` builds the image with the `bench` feature and boots it with `-icount shift=0`
//! on one hart, so `instret` counts instructions exactly, and prints the figures.

use std::path::{Path, PathBuf};

use axvcpu_conformance::Scenario;

use crate::linux::host::HostLayout;
use crate::testbed::{self, SecondPass, Testbed};

pub const TESTBED: Testbed = Testbed {
    name: "RISC-V",
    target: "riscv64gc-unknown-none-elf",
    package: "testbed-riscv",
    qemu: "qemu-system-riscv64",
    machine: &["-machine", "virt", "-m", "128M"],
    boot: &["-bios", "default", "-nographic"],
    // With Sstc (the guest timer is `vstimecmp`) and without (the backend multiplexes the
    // host's SBI timer).
    cpus: &["rv64,h=true", "rv64,h=true,sstc=false"],
    // Port I/O.
    not_applicable: &[Scenario::IoOut, Scenario::IoIn],
    second_pass: Some(SecondPass {
        prefix: "[sv39x4, hlvx] ",
        name: "second pass",
    }),
    exit_status: 0,
    bench_label: "riscv64",
};

/// Builds the testbed, boots it in QEMU (2 harts, each CPU model) and checks every
/// scenario's line.
pub fn test() -> Result<(), String> {
    testbed::test(&TESTBED)
}

/// Builds the benchmark image and prints hypervisor instructions per hypercall round trip,
/// counted exactly with `-icount shift=0`.
pub fn bench() -> Result<(), String> {
    testbed::bench(&TESTBED)
}

/// The Linux-booting build of the testbed (feature `linux`): QEMU with 1 GiB (the
/// hypervisor's heap and frames, the guest's 256 MiB, the parameter block).
pub const LINUX_HOST: Testbed = Testbed {
    name: "RISC-V Linux host",
    machine: &["-machine", "virt", "-m", "1G"],
    ..TESTBED
};

/// Host-physical addresses the hypervisor reads the guest's files from (its
/// `linux::loader`): the kernel at the guest's RAM + 2 MiB (an `Image`'s `text_offset`),
/// the initrd where the guest finds it (guest RAM + 128 MiB, up to the device tree's room),
/// the parameter block past the guest's RAM.
const LINUX_LAYOUT: HostLayout = HostLayout {
    testbed: &LINUX_HOST,
    elf_name: "testbed-riscv-linux",
    arch: "RISC-V",
    kernel: 0x9020_0000,
    initrd: 0x9800_0000,
    staging_end: 0x9fe0_0000,
    params: 0xa000_0000,
    max_vcpus: MAX_VCPUS,
};
/// The most vCPUs: one per host CPU of the testbed.
pub const MAX_VCPUS: usize = 2;

/// The QEMU CPU models the hypervisor runs on: with Sstc (the guest's timer is
/// `vstimecmp`, written by the guest itself) and without (the backend multiplexes the
/// host's SBI timer).
pub fn host_cpu(sstc: bool) -> &'static str {
    if sstc {
        "rv64,h=true"
    } else {
        "rv64,h=true,sstc=false"
    }
}

/// Builds the Linux-booting hypervisor and writes the parameter block; returns the image
/// and the QEMU arguments (before `-no-reboot -kernel <elf>`, which [`testbed::boot`]
/// adds) that load the guest's files where the hypervisor reads them. With `print_dtb` the
/// hypervisor prints the guest's device tree (`linux: device tree <hex>`) first.
pub fn linux_host(
    kernel: &Path,
    initrd: Option<&Path>,
    append: &str,
    cpus: usize,
    sstc: bool,
    print_dtb: bool,
) -> Result<(PathBuf, Vec<String>), String> {
    let (elf, loaders) = LINUX_LAYOUT.prepare(kernel, initrd, append, cpus, print_dtb)?;
    // Two harts whatever the vCPU count (hart 1 serves jobs either way).
    let mut args: Vec<String> = ["-cpu", host_cpu(sstc), "-smp", "2"]
        .into_iter()
        .map(String::from)
        .collect();
    args.extend(loaders);
    Ok((elf, args))
}

/// Boots `kernel` (a RISC-V `Image` or a raw binary) under the RISC-V hypervisor with
/// `cpus` vCPUs and `input` on its console; returns the console output (the guest's and the hypervisor's lines).
/// Fails when the hypervisor or the guest fails, or the guest does not power off cleanly.
pub fn boot_linux(
    kernel: &Path,
    initrd: Option<&Path>,
    append: &str,
    cpus: usize,
    sstc: bool,
    input: crate::testbed::Input,
) -> Result<String, String> {
    let (elf, args) = linux_host(kernel, initrd, append, cpus, sstc, false)?;
    LINUX_LAYOUT.boot(&elf, &args, input)
}
