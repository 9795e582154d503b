//! The x86-64 Intel VMX backend of `axvcpu`: a bare-metal hypervisor runs each guest CPU
//! under `vmlaunch`/`vmresume`, started in 64-bit long mode or, with unrestricted guest, in
//! real mode as after INIT and a start-up IPI ([`GuestBoot::RealMode`]; the guest goes on
//! to protected and long mode itself), translated by EPT
//! ([`NestedPageTable<H, Ept>`](axvcpu_npt::Ept), EPTP = [`Ept::eptp`](axvcpu_npt::Ept::eptp)
//! of its root) and tagged with a VPID.
//!
//! The controls are computed from the CPU's capability MSRs, never hard-coded; the
//! computation is a pure function, here with the values Bochs 2.7 reports (runs anywhere):
//!
//! ```
//! use axvcpu_vmx::controls::{proc, proc2, Controls, VmxCaps, BOCHS_CAPS};
//!
//! let caps = VmxCaps::read(|msr| {
//!     BOCHS_CAPS.iter().find(|&&(m, _)| m == msr).map_or(0, |&(_, v)| v)
//! });
//! assert_eq!(caps.revision(), 0x2b);
//! let c = Controls::compute(&caps)?;
//! assert_ne!(c.proc & proc::HLT, 0);
//! assert_eq!(c.proc & proc::CR3_LOAD, 0); // the TRUE_ controls let it be cleared
//! assert_ne!(c.proc2 & proc2::UNRESTRICTED_GUEST, 0);
//!
//! // A CPU without EPT is refused, naming what it lacks.
//! let mut no_ept = caps;
//! no_ept.proc2 &= !(u64::from(proc2::EPT) << 32);
//! let err = Controls::compute(&no_ept).unwrap_err();
//! assert_eq!(err.value(), Some(u64::from(proc2::EPT)));
//! # Ok::<(), axvcpu::VCpuError>(())
//! ```
//!
//! A hypervisor uses it as it uses the SVM backend (`axvcpu_svm`): the same
//! [`GuestBoot`], stack fields and exits, with [`VmxVCpu`], [`VmxPerCpu`] and
//! [`VmxSetupConfig`] for `SvmVCpu`, `SvmPerCpu` and `SvmSetupConfig`, and an
//! `Ept` table instead of an `X86Npt` one.
//!
//! - [`VmxVCpu`] (x86_64 only) implements [`axvcpu::AxArchVCpu`]: a VMCS per vCPU, world
//!   switch in assembly (`vmlaunch`/`vmresume`), exit decoding, injection through the
//!   VM-entry interruption information with interrupt-window exiting, kicks through a fixed
//!   IPI ([`IpiKicker`](axvcpu::IpiKicker)`<`[`LapicKick`]`>`, vector [`KICK_VECTOR`]).
//! - [`VmxPerCpu`] (x86_64 only) implements [`axvcpu::AxArchPerCpu`]: `CR4.VMXE`, `vmxon`.
//!
//! # What the hypervisor must provide
//!
//! - `AxVCpuHal::current_cpu_id()` is the local APIC id (kicks are IPIs to it).
//! - An IDT handler returning with `iretq` for every vector its devices use, and for
//!   [`KICK_VECTOR`] one that sends EOI: the backend hands each interrupt an exit
//!   acknowledged to the host's IDT (`int vector`), NMIs to vector 2.
//! - `hardware_enable` on every CPU that runs vCPUs, before `bind` there; `unbind` every
//!   vCPU of a CPU before `hardware_disable` there.
//!
//! # Exits, by guest action
//!
//! | guest does | exit |
//! |---|---|
//! | `vmcall` | `Hypercall{nr: rax, args: rdi, rsi, rdx, rcx, r8, r9}`; `set_return_value` writes `rax`; `rip` += 3 |
//! | `in` (port in `dx` or imm8) | `IoRead{port, width}`; `complete_read` merges into `al`/`ax` (rest of `rax` kept) or zero-extends into `rax` for `eax` |
//! | `out` | `IoWrite{port, width, data}`; to [`X86_SHUTDOWN_PORT`](axvcpu::X86_SHUTDOWN_PORT): `SystemDown` |
//! | `ins`/`outs` | `Err` (value: the exit qualification) |
//! | load from unmapped guest-physical memory in 64-bit code (`mov`, `movzx`, `movsx`, `movsxd`, with REX) | `MmioRead{reg: Some(dst), reg_width, signed_ext}`; `complete_read` writes the register with x86's width rules |
//! | store to unmapped memory (`mov r/m, r` / `mov r/m, imm`) | `MmioWrite` |
//! | another instruction touching unmapped memory | `Err` (value: its first 8 bytes) |
//! | any access to unmapped memory from 16- or 32-bit code (real, protected or compatibility mode: the decoder reads 64-bit code only) | `Err` `Unsupported` (value: the guest-physical address) |
//! | 4-byte writes of the local APIC ICR at `0xFEE0_0300/0310` (xAPIC page left unmapped; `axvcpu_x86::apic`) | INIT then SIPI: `CpuUp{target_cpu: APIC id, entry_point: vector << 12, arg: 0}`; fixed, lowest-priority, NMI IPIs: `SendIPI`; ICR high and other modes: handled (`Nothing`) |
//! | access the EPT maps without that permission; fetch from unmapped memory; guest page walk through unmapped memory (EPT violation) | `NestedPageFault` |
//! | an EPT entry the hardware calls misconfigured | `Err` (value: the guest-physical address) |
//! | `hlt` | `Halt` |
//! | triple fault | `SystemDown` |
//! | `rdmsr` / `wrmsr` of `EFER`, `PAT`, `IA32_MISC_ENABLE`, `IA32_BIOS_SIGN_ID` | handled (`Nothing`) by `axvcpu_x86::msr`'s rules; a value they refuse: #GP(0) |
//! | `rdmsr` / `wrmsr` of another MSR (every MSR exits but the syscall, FS/GS and SYSENTER ones) | `SysRegRead{addr: ecx, reg: 0}` (value to `edx:eax`) / `SysRegWrite{addr: ecx, value: edx:eax}` |
//! | `cpuid` | handled (`Nothing`): the host's values through `axvcpu_x86::cpuid::filter_for` (INVPCID only with its VMX control) |
//! | `invd`, `wbinvd` / `monitor`, `mwait` / `xsetbv` | handled (`Nothing`): skipped / #UD / #GP(0) |
//! | interrupt window opens (requested for a pending vector) | handled (`Nothing`): the next entry injects |
//! | kick IPI while in the guest (or a kick before entry) | `Kicked` |
//! | the late IPI of a kick already taken | handled (`Nothing`) |
//! | another host interrupt / NMI | `ExternalInterrupt{vector}` (the vector the exit acknowledged, handed to the host's IDT before `run` returns) / `ExternalInterrupt{vector: 2}` |
//! | VM entry refused | `FailEntry{hardware_entry_failure_reason}`: the VM-instruction error (VMfailValid, e.g. 7 bad controls, 8 bad host state), `u64::MAX` (VMfailInvalid), or a failed-entry exit: `qualification << 32 \| exit reason` (bit 31 set; 33 bad guest state) |
//! | `mov` to CR4 setting a bit VMX fixes (VMXE, a feature the CPU lacks) / to CR0 clearing NE | handled (`Nothing`): #GP(0) / the guest's value in the read shadow, NE kept set in the CPU |
//! | `mov` to CR0 changing PG (the guest/host mask keeps it) | handled (`Nothing`): with `EFER.LME`, paging on enters IA-32e mode (`EFER.LMA` and the IA-32e-mode entry control set; #GP(0) without `CR4.PAE`), off leaves it (#GP(0) from 64-bit code or with `CR4.PCIDE`) |
//! | `wrmsr` of `EFER` changing LME while paging is on | handled (`Nothing`): #GP(0) |
//! | `mov` to CR0 clearing PE or PG on a CPU without unrestricted guest (where `bind` also refuses a real-mode start) | `Err` `Unsupported` (value: the new CR0) |
//! | `clts`, `lmsw` of a bit the mask keeps | handled (`Nothing`): the CR0 write they make, as above (`lmsw` never clears PE) |
//! | `mov` to / from CR8 (no TPR shadow) | handled (`Nothing`): kept and read back (it does not hold back injected interrupts; priorities are the hypervisor's interrupt controller's); a value above 15 is #GP(0) |
//! | `getsec`, the VMX instructions (`vmclear` .. `vmxon`, `invept`, `invvpid`, `vmfunc`) | handled (`Nothing`): #UD, as on a CPU without VMX and SMX (CPUID hides them) |
//! | another control-register access (CR3 does not exit under EPT) | `Err` (value: the exit qualification) |
//! | anything else (task switches, ...) | `Err` (value: the exit reason) |
//!
//! `rip` has moved past the instruction when `run` returns, except for reads, where
//! `complete_read` moves it. `Nothing` is the core's "handled, enter again": `AxVCpu::run`
//! never returns it.
//!
//! # Shape of the backend
//!
//! | module | role |
//! |---|---|
//! | `vcpu` | [`VmxVCpu`], [`VmxSetupConfig`], [`GuestBoot`]; the VMCS on CPUs (`bind`: load, fill, host state; `unbind`: clear); `AxArchVCpu` (thin: delegates) |
//! | `vcpu/exit` | exit decoding: exit reason/qualification → exit, `Nothing` or `Err`; completing reads |
//! | `vcpu/irq` | pending vectors (`VectorSet`), entry injection, the interrupt window, re-injection, [`LapicKick`], the entry with the host's interrupts |
//! | `switch` | the world switch (assembly: `vmlaunch`/`vmresume` and the exit path), the host state |
//! | `percpu` | [`VmxPerCpu`]: checks, `IA32_FEATURE_CONTROL`, `CR4.VMXE`, `vmxon` |
//! | [`regs`] | the GPRs the world switch moves, `rip`, their numbering |
//! | `hw` | VMX instructions, MSRs, control registers (writes are `unsafe fn`), CPUID, local-APIC IPIs, handing a vector to the host's IDT |
//! | [`vmcs`] | VMCS field encodings and exit reasons; reading and writing the current VMCS; `vmcs/fill`: filling one for a long-mode or a real-mode guest |
//! | [`controls`] | the capability MSRs and the controls computed from them (pure) |
//!
//! The x86 pieces shared with the other x86 backends (boot tables, ICR decoding, page walk,
//! instruction decoder) are `axvcpu-x86`'s, tested on any host; the VMCS encodings and the
//! controls are plain data and code; the rest is compiled for `x86_64` only.

#![no_std]
#![deny(missing_docs, missing_debug_implementations)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod controls;
pub mod vmcs;

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
pub use percpu::VmxPerCpu;
#[cfg(target_arch = "x86_64")]
pub use vcpu::{GuestBoot, LapicKick, VmxSetupConfig, VmxVCpu, KICK_VECTOR};
