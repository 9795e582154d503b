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
