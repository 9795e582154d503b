//! The RISC-V test hypervisor.
//!
//! Built for `riscv64gc-unknown-none-elf`, it is a bare-metal image that OpenSBI starts in
//! HS-mode (`qemu-system-riscv64 -machine virt -cpu rv64,h=true -smp 2 -bios default
//! -kernel <elf>`). It enables the H extension on every hart, then runs the conformance
//! suite through `AxVCpu<RiscvVCpu<_>>` exactly as a hypervisor would, prints one line per
//! scenario on the UART, and powers off through SBI SRST (reason "system failure" when a
//! scenario failed, which makes QEMU exit non-zero). With the `bench` feature it measures
//! hypercall round trips instead. With the `linux` feature hart 0 boots a Linux guest
//! instead (`linux/`: `cargo xtask boot riscv64`, `cargo xtask run linux-riscv64`; QEMU
//! `-m 1G`, the guest's files loaded with `-device loader`).
//!
//! This crate holds only what is RISC-V-specific (`arch.rs`: the `TestbedArch` impl;
//! entry assembly, UART, firmware calls, guest programs, self-tests); the boot flow after
//! the entry, the HAL, the test VM, the platform and the runner are `axvcpu-testbed`'s.
//!
//! On the build host this crate is an empty program, so the workspace builds anywhere.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod arch;
#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod guests;
#[cfg(target_os = "none")]
mod hal;
#[cfg(all(target_os = "none", feature = "linux"))]
mod linux;
#[cfg(target_os = "none")]
mod selftest;

// The loader's checks run on the build host too.
#[cfg(all(test, not(target_os = "none")))]
#[path = "linux/loader.rs"]
#[allow(dead_code)] // the hypervisor's addresses: used on the bare-metal target only
mod loader;
#[cfg(all(test, not(target_os = "none")))]
#[path = "linux/plic.rs"]
#[allow(dead_code)] // what the hypervisor uses on the bare-metal target only
mod plic;

#[cfg(not(target_os = "none"))]
fn main() {}
