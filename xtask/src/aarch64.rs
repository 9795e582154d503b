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

use axvcpu_conformance::Scenario;

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
