//! The x86-64 AMD SVM backend of `axvcpu`: a bare-metal hypervisor runs each guest CPU in
//! 64-bit long mode under `vmrun`, translated by nested paging
//! ([`NestedPageTable<H, X86Npt>`](axvcpu_npt::X86Npt), `N_CR3` = its root).
//!
//! - `SvmVCpu` (x86_64 only) implements [`axvcpu::AxArchVCpu`]: VMCB per vCPU, world
//!   switch in assembly (`vmsave`/`vmload`/`vmrun`), exit decoding, injection through
//!   `EVENTINJ` with a VINTR window, kicks through a fixed IPI.
//! - `SvmPerCpu` (x86_64 only) implements [`axvcpu::AxArchPerCpu`]: `EFER.SVME`,
//!   `VM_HSAVE_PA`.
//!
//! Exits, by guest action (all work without NRIPS or decode assists: the backend finds
//! instruction lengths itself, fetching bytes through the guest's page tables and the NPT):
//!
//! | guest does | exit |
//! |---|---|
//! | `vmmcall` | `Hypercall{nr: rax, args: rdi, rsi, rdx, rcx, r8, r9}`; `set_return_value` writes `rax`; `rip` += 3 |
//! | `in` (port in `dx` or imm8) | `IoRead{port, width}`; `complete_read` merges into `al`/`ax` (rest of `rax` kept) or zero-extends into `rax` for `eax` |
//! | `out` | `IoWrite{port, width, data}`; to [`X86_SHUTDOWN_PORT`](axvcpu::X86_SHUTDOWN_PORT): `SystemDown` |
//! | `ins`/`outs` | `Err` (value: EXITINFO1) |
//! | load from unmapped guest-physical memory (`mov`, `movzx`, `movsx`, `movsxd`, with REX) | `MmioRead{reg: Some(dst), reg_width, signed_ext}`; `complete_read` writes the register with x86's width rules |
//! | store to unmapped memory (`mov r/m, r` / `mov r/m, imm`) | `MmioWrite` |
//! | another instruction touching unmapped memory | `Err` (value: its first 8 bytes) |
//! | 4-byte writes of the local APIC ICR at `0xFEE0_0300/0310` (xAPIC page left unmapped): INIT then SIPI | `CpuUp{target_cpu: APIC id, entry_point: vector << 12, arg: 0}`; fixed, lowest-priority, NMI IPIs → `SendIPI`; others absorbed |
//! | access the NPT maps without that permission; fetch from unmapped memory; guest page walk through unmapped memory | `NestedPageFault` |
//! | `hlt` | `Halt` |
//! | triple fault (shutdown intercept) | `SystemDown` |
//! | `rdmsr` / `wrmsr` (every MSR is intercepted) | `SysRegRead{addr: ecx, reg: 0}` (value to `edx:eax`) / `SysRegWrite{addr: ecx, value: edx:eax}` |
//! | kick IPI while in the guest (or before entry) | `Kicked` |
//! | another host interrupt (INTR intercept) / NMI | `ExternalInterrupt{vector}`: the highest vector pending in the local APIC's IRR at the exit / 2; the host's IDT has handled it when `run` returns |
//! | VMRUN refused (`EXITCODE` low 32 bits = `0xffff_ffff`) | `FailEntry{hardware_entry_failure_reason: EXITCODE}` |
//! | anything else (SVM instructions, INVD, WBINVD, MONITOR/MWAIT, XSETBV, task switch) | `Err` (value: the exit code) |
//!
//! `rip` has moved past the instruction when `run` returns, except for reads, where
//! `complete_read` moves it.
//!
//! The decoder ([`decode`]), the VMCB layout ([`vmcb`]) and the long-mode boot tables
//! ([`boot`]) are plain code, tested on any host.

#![no_std]
#![deny(missing_docs, missing_debug_implementations)]

extern crate alloc;

pub mod boot;
pub use axvcpu_x86::decode;
pub mod vmcb;

#[cfg(target_arch = "x86_64")]
mod hw;
#[cfg(target_arch = "x86_64")]
mod percpu;
#[cfg(target_arch = "x86_64")]
mod switch;
#[cfg(target_arch = "x86_64")]
mod vcpu;

#[cfg(target_arch = "x86_64")]
pub use percpu::SvmPerCpu;
#[cfg(target_arch = "x86_64")]
pub use vcpu::{GuestBoot, SvmKicker, SvmSetupConfig, SvmVCpu, APIC_BASE_GPA, KICK_VECTOR};
