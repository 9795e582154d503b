//! The AArch64 backend of `axvcpu`: a hypervisor running at EL2 (`HCR_EL2.E2H` = 0) runs
//! each guest CPU at EL1, translated by a stage-2 table
//! ([`NestedPageTable<H, Aarch64Stage2>`](axvcpu_npt::Aarch64Stage2)).
//!
//! - `Aarch64VCpu` (aarch64 only) implements [`axvcpu::AxArchVCpu`]: world switch in
//!   assembly, stage 2 from `set_ept_root` (`VTTBR_EL2` with VMID = `vm_id` mod 256),
//!   PSCI for the guest, MMIO from the data-abort syndrome, trapped system registers,
//!   `wfi`/`wfe`, virtual IRQ injection through `HCR_EL2.VI` (acknowledged with `hvc #1`)
//!   or through the GICv2 virtual CPU interface, kicks through a GICv2 SGI.
//! - `Aarch64PerCpu` (aarch64 only) implements [`axvcpu::AxArchPerCpu`]: `VTCR_EL2`,
//!   `CPTR_EL2`, timers, debug traps, GIC interface per CPU.
//!
//! Guests run with `HCR_EL2` = `VM | SWIO | FMO | IMO | AMO | FB | BSU=IS | TWI | TWE |
//! TSC | RW` (+ `TID3`, `TVM` per `Aarch64SetupConfig` options, + `VI`
//! while an interrupt is pending, unless `vgic`). Exits, by guest action (`ESR_EL2.EC`):
//!
//! | guest does | exit |
//! |---|---|
//! | `hvc #0`, `x0` outside the PSCI range | `Hypercall{nr: x0, args: x1..x6}`; `set_return_value` writes `x0` |
//! | `hvc #0` or `smc` (trapped by `TSC`), PSCI `CPU_ON(mpidr, entry, ctx)` | `CpuUp{target_cpu: mpidr, entry_point: entry, arg: ctx}`, `x0` = 0 |
//! | PSCI `CPU_OFF` | `CpuDown{state: 0}` |
//! | PSCI `SYSTEM_OFF` / `SYSTEM_RESET` | `SystemDown` |
//! | PSCI `VERSION` (1.0), `FEATURES`, `MIGRATE_INFO_TYPE`; any other `smc`/PSCI id; `hvc #n`, n ≥ 2 | answered inside (unknown: `NOT_SUPPORTED` = -1 in `x0`) |
//! | `hvc #1` | answered inside: the virtual interrupt acknowledge (lowest pending INTID in `x0`, 1023 if none) |
//! | load/store to an IPA stage 2 does not map, `ISV` = 1 | `MmioRead{width: SAS, reg: SRT, reg_width: SF ? 64 : 32, signed_ext: SSE}` / `MmioWrite` |
//! | the same with `ISV` = 0 (pair, writeback, SIMD, exclusive) | `Err` (value: `ESR_EL2`); the backend does not decode instructions |
//! | load/store stage 2 maps without that permission; the guest's stage-1 walk faulting in stage 2 | `NestedPageFault{READ/WRITE}` |
//! | fetch from an IPA stage 2 does not map or maps without execute | `NestedPageFault{EXECUTE}` |
//! | a fault the table allows (stale TLB) | flushed and retried once inside, then `NestedPageFault` |
//! | `wfi` / `wfe` (`TWI`/`TWE`) | `Halt` / `Idle` |
//! | `mrs`/`msr` of a trapped register (`TID3` ID registers, `TVM` VM registers, `MDCR_EL2` debug/PMU) | `SysRegRead{addr, reg: Rt}` / `SysRegWrite{addr, value}` |
//! | kick SGI while the guest runs | `Kicked` |
//! | other physical IRQ/FIQ (routed by `IMO`/`FMO`) | `ExternalInterrupt{vector: INTID}` after `Hal::irq_handler`, then EOI |
//! | anything else (SError, FP traps, ...) | `Err` (value: `ESR_EL2`) |
//!
//! [`SysRegAddr`](axvcpu::SysRegAddr) packs `Op0 << 20 | Op2 << 17 | Op1 << 14 | CRn << 10 |
//! CRm << 1`, the EC 0x18 ISS without Rt and direction ([`decode::sysreg`]).
//!
//! The decoders and the PSCI classification are plain functions, tested on any host; the
//! rest is compiled for `aarch64` only.

#![no_std]
#![deny(missing_docs, missing_debug_implementations)]

extern crate alloc;

pub mod decode;
pub mod psci;

#[cfg(target_arch = "aarch64")]
pub mod gic;
#[cfg(target_arch = "aarch64")]
mod percpu;
#[cfg(target_arch = "aarch64")]
mod switch;
#[cfg(target_arch = "aarch64")]
mod sysregs;
#[cfg(target_arch = "aarch64")]
mod vcpu;

#[cfg(target_arch = "aarch64")]
pub use percpu::Aarch64PerCpu;
#[cfg(target_arch = "aarch64")]
pub use vcpu::{Aarch64Kicker, Aarch64SetupConfig, Aarch64VCpu, HVC_IRQ_ACK, MAX_VIRQ};

/// `HCR_EL2` bits the backend uses.
pub mod hcr {
    /// VM: stage-2 translation for EL1&0.
    pub const VM: u64 = 1 << 0;
    /// SWIO: set/way invalidation becomes clean and invalidate.
    pub const SWIO: u64 = 1 << 1;
    /// FMO: physical FIQs go to EL2.
    pub const FMO: u64 = 1 << 3;
    /// IMO: physical IRQs go to EL2 (and virtual IRQs are enabled).
    pub const IMO: u64 = 1 << 4;
    /// AMO: SErrors go to EL2.
    pub const AMO: u64 = 1 << 5;
    /// VI: a virtual IRQ is pending.
    pub const VI: u64 = 1 << 7;
    /// FB: TLB and cache maintenance by the guest is broadcast (inner shareable).
    pub const FB: u64 = 1 << 9;
    /// BSU = 0b01: barriers of the guest are at least inner shareable.
    pub const BSU_IS: u64 = 0b01 << 10;
    /// TWI: `wfi` traps.
    pub const TWI: u64 = 1 << 13;
    /// TWE: `wfe` traps.
    pub const TWE: u64 = 1 << 14;
    /// TID3: ID group 3 register reads trap.
    pub const TID3: u64 = 1 << 18;
    /// TSC: `smc` traps.
    pub const TSC: u64 = 1 << 19;
    /// TVM: writes of the virtual-memory control registers trap.
    pub const TVM: u64 = 1 << 26;
    /// RW: EL1 is AArch64.
    pub const RW: u64 = 1 << 31;
    /// What a guest runs with (before the per-vCPU options and `VI`).
    pub const GUEST: u64 = VM | SWIO | FMO | IMO | AMO | FB | BSU_IS | TWI | TWE | TSC | RW;
    /// What the host runs with between guests.
    pub const HOST: u64 = RW;
}
