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

use axvcpu_conformance::Scenario;

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
