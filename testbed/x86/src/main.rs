//! The x86-64 test hypervisor, on AMD SVM (QEMU) or Intel VMX (Bochs).
//!
//! Built for `x86_64-unknown-none`, it is a bare-metal image QEMU boots through PVH
//! (`qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 256M -nodefaults -display none
//! -serial stdio -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel <elf>`)
//! and GRUB through its Multiboot2 header (Bochs, which has no `-kernel`; see
//! `cargo xtask run x86-vmx`). Both enter in 32-bit protected mode. It switches to long
//! mode (identity map of the low 4 GiB), sets COM1 to 8N1, picks its backend from CPUID
//! (`backend.rs`: SVM on AMD, VMX on Intel), masks the legacy PIC, calibrates the TSC
//! against the PIT, starts CPU 1 with INIT-SIPI, enables virtualization on both CPUs, then
//! runs the conformance suite through `AxVCpu<backend>` exactly as a hypervisor would,
//! printing one line per scenario on COM1. It ends QEMU through `isa-debug-exit`, which
//! exits with status `(code << 1) | 1`: code 0x10 (status 33) when everything passed, 0x11
//! (status 35) otherwise; any other status (QEMU quitting on its own, a reset after a host
//! triple fault) is a failure too. Bochs ignores that port and ends on `Shutdown` written to
//! its port 0x8900 (its exit status says nothing: its runs are judged by the report). With
//! the `bench` feature it measures hypercall round trips instead.
//!
//! With the `linux` feature the testbed boots a Linux guest instead (`linux/`), on AMD SVM in
//! QEMU (`cargo xtask run linux-x86_64`: vCPU 0 on CPU 0, vCPU 1 on CPU 1 once Linux starts
//! it with INIT-SIPI) or Intel VMX in Bochs (`cargo xtask run linux-x86_64-vmx`, 1 vCPU);
//! `cargo xtask boot x86_64 [--svm|--vmx]`. QEMU's loader devices put its files in place;
//! in Bochs GRUB loads them as Multiboot2 modules, which the boot CPU copies there first
//! (`multiboot.rs`). An idle CPU sleeps in `sti; hlt` until a wake IPI.
//!
//! Each CPU loads a 64-bit TSS (`tss.rs`): VMX refuses a host without a task register.
//!
//! This crate holds only what is x86-specific (`arch.rs`: the `TestbedArch` impl, generic
//! over `backend::Backend`, the one thing SVM and VMX differ in here; entry assembly, COM1,
//! APIC/PIC/PIT, guest programs); the boot flow after the entry, the HAL, the test VM, the
//! platform and the runner are `axvcpu-testbed`'s.
//!
//! On the build host this crate is an empty program, so the workspace builds anywhere.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod arch;
#[cfg(target_os = "none")]
mod backend;
#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod guests;
#[cfg(target_os = "none")]
mod hal;
#[cfg(all(target_os = "none", feature = "linux"))]
mod linux;
#[cfg(target_os = "none")]
mod multiboot;
#[cfg(target_os = "none")]
mod selftest;
#[cfg(target_os = "none")]
mod tss;

// The Linux hypervisor's devices, local APIC, MP table and loader are checked on the build
// host too.
#[cfg(all(test, not(target_os = "none")))]
#[path = "linux/devices.rs"]
#[allow(dead_code)]
mod devices;
#[cfg(all(test, not(target_os = "none")))]
#[path = "linux/lapic.rs"]
#[allow(dead_code)]
mod lapic;
#[cfg(all(test, not(target_os = "none")))]
#[path = "linux/loader.rs"]
#[allow(dead_code)] // the hypervisor's addresses: used on the bare-metal target only
mod loader;
#[cfg(all(test, not(target_os = "none")))]
#[path = "linux/mptable.rs"]
#[allow(dead_code)]
mod mptable;

// The Multiboot2 module placement too.
#[cfg(all(test, not(target_os = "none")))]
#[allow(dead_code)]
mod multiboot;

#[cfg(not(target_os = "none"))]
fn main() {}
