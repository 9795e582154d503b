//! The x86-64 AMD SVM backend of `axvcpu`: a bare-metal hypervisor runs each guest CPU in
//! 64-bit long mode (or from real mode at a start-up IPI's address,
//! [`GuestBoot::RealMode`]) under `vmrun`, translated by nested paging
//! ([`NestedPageTable<H, X86Npt>`](axvcpu_npt::X86Npt), `N_CR3` = its root).
//!
//! ```
//! # #[cfg(target_arch = "x86_64")]
//! # mod hypervisor {
//! use axvcpu::{AxVCpu, AxVCpuExitReason, AxVCpuHal, GuestPhysAddr, VCpuResult};
//! use axvcpu_npt::{NestedPageTable, X86Npt};
//! use axvcpu_svm::{GuestBoot, SvmSetupConfig, SvmVCpu};
//!
//! /// Runs a guest whose RAM `npt` maps, from `entry`, until it halts; its hypercalls
//! /// return `nr + 1`. On the CPU where `AxPerCpu::<SvmPerCpu<H>>` enabled SVM.
//! pub fn run_guest<H: AxVCpuHal>(
//!     npt: &NestedPageTable<H, X86Npt>,
//!     entry: GuestPhysAddr,
//! ) -> VCpuResult<()> {
//!     let builder = AxVCpu::<SvmVCpu<H>>::builder(0, 0, ())?.entry(entry);
//!     // SAFETY: `npt` outlives the vCPU, which is dropped at the end of this function.
//!     let mut vcpu = unsafe { builder.ept_root(npt.root_paddr()) }.setup(SvmSetupConfig {
//!         // `setup` writes the GDT and identity page tables there, through the NPT.
//!         boot: GuestBoot::WriteTablesAt(0x1000),
//!         stack_top: 0x20_0000,
//!         stack_stride: 0x1_0000,
//!     })?;
//!     vcpu.bind()?;
//!     loop {
//!         match vcpu.run()? {
//!             AxVCpuExitReason::Hypercall { nr, .. } => vcpu.set_return_value(nr as usize + 1)?,
//!             AxVCpuExitReason::Halt => break,
//!             _ => {}
//!         }
//!     }
//!     vcpu.unbind()
//! }
//! # }
//! ```
//!
//! - [`SvmVCpu`] (x86_64 only) implements [`axvcpu::AxArchVCpu`]: VMCB per vCPU, world
//!   switch in assembly (`vmsave`/`vmload`/`vmrun`), exit decoding, injection through
//!   `EVENTINJ` with a VINTR window, kicks through a fixed IPI
//!   ([`IpiKicker`](axvcpu::IpiKicker)`<`[`LapicKick`]`>`, vector [`KICK_VECTOR`]).
//! - [`SvmPerCpu`] (x86_64 only) implements [`axvcpu::AxArchPerCpu`]: `EFER.SVME`,
//!   `VM_HSAVE_PA`.
//!
//! # What the hypervisor must provide
//!
//! - `AxVCpuHal::current_cpu_id()` is the local APIC id (kicks are IPIs to it).
//! - An IDT handler for [`KICK_VECTOR`] that sends EOI: the backend lets the host take its
//!   interrupts right after every `#VMEXIT`.
//! - `hardware_enable` on every CPU that runs vCPUs, before `bind` there.
//!
//! # Exits, by guest action
//!
//! All work without NRIPS or decode assists: the backend finds instruction lengths itself,
//! fetching bytes through the guest's page tables and the NPT (`axvcpu_x86::paging`) and
//! decoding them (`axvcpu_x86::decode`).
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
//! | 4-byte writes of the local APIC ICR at `0xFEE0_0300/0310` (xAPIC page left unmapped; `axvcpu_x86::apic`) | INIT then SIPI: `CpuUp{target_cpu: APIC id, entry_point: vector << 12, arg: 0}`; fixed, lowest-priority, NMI IPIs: `SendIPI` (`target_cpu_aux` 1 in logical destination mode); ICR high and other modes: handled (`Nothing`) |
//! | access the NPT maps without that permission; fetch from unmapped memory; guest page walk through unmapped memory | `NestedPageFault` |
//! | `hlt` | `Halt` |
//! | triple fault (shutdown intercept) | `SystemDown` |
//! | `rdmsr` / `wrmsr` of an intercepted MSR | `SysRegRead{addr: ecx, reg: 0}` (value to `edx:eax`) / `SysRegWrite{addr: ecx, value: edx:eax}`; `inject_exception(13, Some(0))` answers either with #GP instead |
//! | `rdmsr` / `wrmsr` of `EFER` or `PAT` | handled (`Nothing`): the VMCB's `EFER` (SVME kept, hidden) and `G_PAT`; a value the hardware refuses gets #GP(0) |
//! | `rdmsr` / `wrmsr` of FS/GS bases, `KernelGSBase`, `STAR`, `LSTAR`, `CSTAR`, `SFMASK`, `SYSENTER_*` | no exit: `vmload`/`vmsave` swap them with the host's |
//! | `cpuid` | handled (`Nothing`): the host's answer through [`axvcpu_x86::cpuid::filter_for`] (no SVM/VMX, MONITOR, XSAVE/AVX, x2APIC, ...; a hypervisor leaf) |
//! | `invd`, `wbinvd` | handled (`Nothing`): skipped, caches are coherent |
//! | `monitor`, `mwait` / `xsetbv` | handled: #UD / #GP(0) injected (CPUID hides them) |
//! | interrupt window opens (VINTR, requested for a pending vector) | handled (`Nothing`): the next entry injects |
//! | kick IPI while in the guest (or a kick before entry) | `Kicked` |
//! | the late IPI of a kick already taken | handled (`Nothing`) |
//! | another host interrupt (INTR intercept) / NMI | `ExternalInterrupt{vector}`: the highest vector pending in the local APIC's IRR at the exit / 2; the host's IDT has handled it when `run` returns |
//! | VMRUN refused (`EXITCODE` low 32 bits = `0xffff_ffff`) | `FailEntry{hardware_entry_failure_reason: EXITCODE}` |
//! | anything else (SVM instructions, INVLPGA, task switch) | `Err` (value: the exit code) |
//!
//! `rip` has moved past the instruction when `run` returns, except for reads, where
//! `complete_read` moves it (or `inject_exception` leaves it, the instruction faulting). `Nothing` is the core's "handled, enter again": `AxVCpu::run`
//! never returns it.
//!
//! # Shape of the backend
//!
//! | module | role |
//! |---|---|
//! | `vcpu` | [`SvmVCpu`], [`SvmSetupConfig`], [`GuestBoot`]; `AxArchVCpu` (thin: delegates) |
//! | `vcpu/exit` | exit decoding: `EXITCODE`/`EXITINFO` → exit, `Nothing` or `Err`; completing reads |
//! | `vcpu/irq` | pending vectors (`VectorSet`), `EVENTINJ`/VINTR/re-injection, [`LapicKick`], the entry with GIF and the host's interrupts |
//! | `switch` | the world switch (assembly: `vmsave`/`vmload`/`vmrun`) |
//! | `percpu` | [`SvmPerCpu`]: `EFER.SVME`, the host save area |
//! | [`regs`] | the GPRs the world switch moves and their numbering |
//! | `hw` | MSRs (`EFER` and `VM_HSAVE_PA` writes are `unsafe fn`), CPUID, GIF, local-APIC IPIs and IRR |
//! | [`vmcb`] | the VMCB layout, and filling one for a long-mode or real-mode guest |
//!
//! The x86 pieces shared with the other x86 backends (boot tables, ICR decoding, page
//! walk, instruction decoder) are `axvcpu-x86`'s, tested on any host; the VMCB constants
//! are plain data; the rest is compiled for `x86_64` only.

#![no_std]
#![deny(missing_docs, missing_debug_implementations)]

extern crate alloc;

pub mod vmcb;

#[cfg(target_arch = "x86_64")]
mod hw;
#[cfg(target_arch = "x86_64")]
mod percpu;
#[cfg(target_arch = "x86_64")]
pub mod regs;
#[cfg(target_arch = "x86_64")]
mod switch;
#[cfg(target_arch = "x86_64")]
mod vcpu;

#[cfg(target_arch = "x86_64")]
pub use percpu::SvmPerCpu;
#[cfg(target_arch = "x86_64")]
pub use vcpu::{GuestBoot, LapicKick, SvmSetupConfig, SvmVCpu, KICK_VECTOR};
