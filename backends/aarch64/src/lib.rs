//! The AArch64 backend of `axvcpu`: a hypervisor running at EL2 (`HCR_EL2.E2H` = 0) runs
//! each guest CPU at EL1, translated by a stage-2 table
//! ([`NestedPageTable<H, Aarch64Stage2>`](axvcpu_npt::Aarch64Stage2)).
//!
//! Exits are decoded from `ESR_EL2` by plain functions that run on any host. A guest's
//! `ldr w1, [x0]` from an IPA its stage-2 table does not map:
//!
//! ```
//! use axvcpu::AccessWidth;
//! use axvcpu_aarch64::decode::{classify_data_abort, ec, fault_ipa, AbortAction, DataAbort, Esr};
//!
//! // EC 0x24 (data abort from EL1), IL, ISV, SAS = 32 bits, SRT = 1, level-3 translation fault.
//! let esr = Esr(0x9381_0007);
//! assert_eq!(esr.ec(), ec::DABT_LOWER);
//! let abort = DataAbort::decode(esr.iss());
//! assert_eq!((abort.width, abort.reg, abort.write), (AccessWidth::Dword, 1, false));
//! // Nothing mapped there and the syndrome describes the access: an `MmioRead` exit.
//! assert_eq!(classify_data_abort(&abort, None), AbortAction::Mmio);
//! // The IPA: `HPFAR_EL2` gives the page, `FAR_EL2` the offset.
//! assert_eq!(fault_ipa(0x0900_0000 >> 8, 0xffff_0000_0000_0018), 0x0900_0018);
//! // `complete_read(v)` writes `w1`: 32 bits, zero-extended.
//! assert_eq!(abort.load_result(0xdead_beef_8000_0001), 0x8000_0001);
//! ```
//!
//! - `Aarch64VCpu` (aarch64 only) implements [`axvcpu::AxArchVCpu`]: world switch in
//!   assembly, stage 2 from `set_ept_root` (`VTTBR_EL2` with VMID = `vm_id` mod 256),
//!   PSCI for the guest, MMIO from the data-abort syndrome, trapped system registers,
//!   `wfi`/`wfe`, virtual IRQ injection through `HCR_EL2.VI` (acknowledged with `hvc #1`)
//!   or through the GICv2 virtual CPU interface, kicks through a GICv2 SGI
//!   ([`axvcpu::IpiKicker`]`<KickSgi>`).
//! - `Aarch64PerCpu` (aarch64 only) implements [`axvcpu::AxArchPerCpu`]: `VTCR_EL2`,
//!   `CPTR_EL2`, timers, debug traps, GIC interface per CPU.
//!
//! # What the hypervisor must provide
//!
//! - The GICv2, named once with [`gic::set_gic_v2`] (and [`gic::set_gic_v2_hyp`] for the
//!   vGIC option) before `hardware_enable`; `AxVCpuHal::current_cpu_id()` must be the CPU's
//!   GIC interface number (0..8), which kicks target.
//! - `hardware_enable` on every CPU that will run vCPUs, before `bind` there.
//! - Distinct `vm_id`s mod 256 for VMs that run at the same time (the VMID).
//!
//! # Exits, by guest action
//!
//! Guests run with `HCR_EL2` = `VM | SWIO | FMO | IMO | AMO | FB | BSU=IS | TWI | TWE |
//! TSC | RW` (+ `TID3`, `TVM` per `Aarch64SetupConfig` options, + `VI` while an interrupt
//! is pending, unless `vgic`). "Handled" rows return [`Nothing`](axvcpu::AxVCpuExitReason::Nothing)
//! from `AxArchVCpu::run`, and `AxVCpu::run` enters the guest again.
//!
//! | guest does (`ESR_EL2.EC`) | exit |
//! |---|---|
//! | `hvc #0`, `x0` outside the PSCI and SMCCC architecture ranges | `Hypercall{nr: x0, args: x1..x6}`; `set_return_value` writes `x0` |
//! | `hvc #0` or `smc` (trapped by `TSC`), PSCI `CPU_ON(mpidr, entry, ctx)` | `CpuUp{target_cpu: mpidr, entry_point: entry, arg: ctx}`, `x0` = 0 |
//! | PSCI `CPU_OFF` | `CpuDown{state: 0}`; the vCPU's EL1 state is back at reset (MMU off, EL1h, DAIF masked, timer off), so `set_pc` + `set_boot_arg` start it as `CPU_ON` would |
//! | PSCI `AFFINITY_INFO(mpidr, level)` | `Hypercall{nr: x0, args: x1..x6}`: the hypervisor answers (0 on, 1 off, 2 on pending) |
//! | PSCI `SYSTEM_OFF` / `SYSTEM_RESET` | `SystemDown` |
//! | PSCI `VERSION` (1.0), `FEATURES`, `MIGRATE_INFO_TYPE`, `SMCCC_VERSION` (1.1), `SMCCC_ARCH_FEATURES`; any other `smc`/PSCI/SMCCC id; `hvc #n`, n ≥ 2 | handled (unknown: `NOT_SUPPORTED` = -1 in `x0`) |
//! | `hvc #1` | handled: the virtual interrupt acknowledge (lowest pending INTID in `x0`, 1023 if none) |
//! | load/store to an IPA stage 2 does not map, `ISV` = 1 | `MmioRead{width: SAS, reg: SRT, reg_width: SF ? 64 : 32, signed_ext: SSE}` / `MmioWrite` |
//! | the same with `ISV` = 0 (pair, writeback, SIMD, exclusive) | `Err` (value: `ESR_EL2`); the backend does not decode instructions |
//! | cache maintenance by VA on an IPA stage 2 does not map | handled: skipped |
//! | load/store stage 2 maps without that permission; the guest's stage-1 walk faulting in stage 2 | `NestedPageFault{READ/WRITE}` |
//! | fetch from an IPA stage 2 does not map or maps without execute | `NestedPageFault{EXECUTE}` |
//! | a fault the table allows (stale TLB) | handled: flushed and retried once, then `NestedPageFault` |
//! | first FP/SIMD instruction (`CPTR_EL2.TFP`) | handled: FP/SIMD state switched from then on, the instruction runs again |
//! | `wfi` / `wfe` (`TWI`/`TWE`) | `Halt` / `Idle` |
//! | `mrs`/`msr` of a trapped register (`TID3` ID registers, `TVM` VM registers, `MDCR_EL2` debug/PMU, `CNTP_*`) | `SysRegRead{addr, reg: Rt}` / `SysRegWrite{addr, value}` |
//! | kick SGI while the guest runs | `Kicked` |
//! | the virtual timer's PPI 27 while a `vgic` guest runs | handled: masked, virtual INTID 27 injected; unmasked when the guest ends it |
//! | the vGIC maintenance interrupt (INTID 25: the guest ended an interrupt loaded with `EOI`) | handled: the next one is offered |
//! | other physical IRQ/FIQ (routed by `IMO`/`FMO`) | `ExternalInterrupt{vector: INTID}` after `Hal::irq_handler`, then EOI; a spurious one is handled |
//! | anything else (SError, FP traps, ...) | `Err` (value: `ESR_EL2`) |
//!
//! [`SysRegAddr`](axvcpu::SysRegAddr) packs `Op0 << 20 | Op2 << 17 | Op1 << 14 | CRn << 10 |
//! CRm << 1`, the EC 0x18 ISS without Rt and direction ([`decode::sysreg`]).
//!
//! # Layout
//!
//! `vcpu.rs` the vCPU and its `AxArchVCpu` impl; `vcpu/exit.rs` exit decoding;
//! `vcpu/irq.rs` interrupt delivery, the kick and host interrupts during `run`;
//! `switch.rs` the world switch; `percpu.rs` `AxArchPerCpu`; `regs.rs` the guest register
//! file; `hw.rs` the EL2 system registers; `decode.rs` `ESR_EL2` decoding; `psci.rs` PSCI;
//! `gic.rs` the GICv2. The decoders, PSCI, the GIC's list-register model and the register
//! file are compiled and tested on any host; the rest is compiled for `aarch64` only.

#![no_std]
#![deny(missing_docs, missing_debug_implementations)]

extern crate alloc;

pub mod decode;
pub mod gic;
mod hw;
pub mod psci;
mod regs;
mod vgic;

#[cfg(target_arch = "aarch64")]
mod percpu;
#[cfg(target_arch = "aarch64")]
mod switch;
#[cfg(target_arch = "aarch64")]
mod vcpu;

pub use hw::hcr;
#[cfg(target_arch = "aarch64")]
pub use percpu::Aarch64PerCpu;
#[cfg(target_arch = "aarch64")]
pub use vcpu::{Aarch64SetupConfig, Aarch64VCpu, KickSgi, HVC_IRQ_ACK, MAX_VIRQ};
