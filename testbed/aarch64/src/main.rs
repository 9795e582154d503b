//! The AArch64 test hypervisor.
//!
//! Built for `aarch64-unknown-none`, it is a bare-metal image QEMU enters at EL2
//! (`qemu-system-aarch64 -machine virt,virtualization=on,gic-version=2 -cpu max -smp 2
//! -m 128M -semihosting -nographic -kernel <elf>`). It turns the EL2 MMU on (identity map:
//! device memory below 1 GiB, normal memory for RAM), starts CPU 1 with PSCI `CPU_ON` over
//! `smc`, enables virtualization on both CPUs, then runs the conformance suite through
//! `AxVCpu<Aarch64VCpu<_>>` exactly as a hypervisor would, printing one line per scenario on
//! the PL011. It ends QEMU through semihosting `SYS_EXIT` (status 0 when everything passed,
//! 1 otherwise), since PSCI `SYSTEM_OFF` carries no status. With the `bench` feature it
//! measures hypercall round trips instead. With the `linux` feature CPU 0 boots a Linux
//! guest instead (`linux/`: `cargo xtask boot aarch64`, `cargo xtask run linux-aarch64`;
//! QEMU `-m 1G -cpu cortex-a72`, the guest's files loaded with `-device loader`).
//!
//! This crate holds only what is AArch64-specific (`arch.rs`: the `TestbedArch` impl;
//! entry assembly, UART, firmware calls, guest programs, self-tests); the boot flow after
//! the entry, the HAL, the test VM, the platform and the runner are `axvcpu-testbed`'s.
//!
//! On the build host this crate is an empty program, so the workspace builds anywhere;
//! its tests there check the Linux loader's and emulated devices' plain code.

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

// The loader's and the devices' checks run on the build host too.
#[cfg(all(test, not(target_os = "none")))]
extern crate alloc;
#[cfg(all(test, not(target_os = "none")))]
#[path = "linux/devices.rs"]
#[allow(dead_code)]
mod devices;
#[cfg(all(test, not(target_os = "none")))]
#[path = "linux/loader.rs"]
#[allow(dead_code)] // the hypervisor's addresses: used on the bare-metal target only
mod loader;

#[cfg(not(target_os = "none"))]
fn main() {}
