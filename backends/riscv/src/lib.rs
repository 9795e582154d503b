//! The RISC-V H-extension backend of `axvcpu`: a hypervisor running in HS-mode runs each
//! guest hart in VS-mode.
//!
//! - `RiscvVCpu` (riscv64 only) implements [`axvcpu::AxArchVCpu`]: world switch in assembly, G-stage
//!   translation from `set_ept_root` (Sv39x4 or Sv48x4), SBI for the guest (base, TIME,
//!   IPI, HSM, SRST, legacy console, and the hypercall extension
//!   [`axvcpu::RISCV_HYPERCALL_EXT`]), MMIO decoding, trapped CSRs, `wfi`.
//! - `RiscvPerCpu` (riscv64 only) implements [`axvcpu::AxArchPerCpu`]: delegation and counters per hart.
//!
//! Exits, by guest trap:
//!
//! | guest does | exit |
//! |---|---|
//! | `ecall`, `a7` = `RISCV_HYPERCALL_EXT` | `Hypercall{nr: a6, args: a0..a5}`, returns `a0 = 0`, `a1` = value |
//! | `ecall` HSM `hart_start` / `hart_stop` | `CpuUp{hartid, start_addr, opaque}` / `CpuDown` |
//! | `ecall` SRST, legacy shutdown | `SystemDown` |
//! | `ecall` IPI `send_ipi` | `SendIPI{target_cpu: mask, target_cpu_aux: base}` |
//! | `ecall` base, TIME, legacy console, anything else | handled: `Nothing` (unknown: `SBI_ERR_NOT_SUPPORTED`) |
//! | load/store to a GPA the G-stage does not map | `MmioRead` / `MmioWrite` (decoded from `htinst` or the instruction read with HLVX) |
//! | load/store/fetch the G-stage maps without that permission | `NestedPageFault` |
//! | fetch from an unmapped GPA | `NestedPageFault{EXECUTE}` |
//! | `wfi` (`hstatus.VTW` = 1) | `Halt` |
//! | `csrr* cycle` (hcounteren.CY = 0), `satp` with `trap_satp` | `SysRegRead` / `SysRegWrite` |
//! | host software interrupt | `Kicked` |
//! | other host interrupts | `ExternalInterrupt{vector: scause code}` |
//! | anything else | `Err` (value: `scause`) |
//!
//! The HAL's `current_cpu_id` must return the hart id: kicks are SBI IPIs to it.
//! The decoders, the SBI classification and the G-stage walk are plain functions, tested on
//! any host; the rest is compiled for `riscv64` only.

#![no_std]
#![deny(missing_debug_implementations)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod decode;
mod gstage;
pub mod sbi;

pub use gstage::{pte, walk, GStageMode, Walk};

#[cfg(target_arch = "riscv64")]
mod csr;
#[cfg(target_arch = "riscv64")]
mod hw;
#[cfg(target_arch = "riscv64")]
mod percpu;
#[cfg(target_arch = "riscv64")]
mod switch;
#[cfg(target_arch = "riscv64")]
mod vcpu;

#[cfg(target_arch = "riscv64")]
pub use hw::{has_sstc, supports};
#[cfg(target_arch = "riscv64")]
pub use percpu::{RiscvPerCpu, HCOUNTEREN};
#[cfg(target_arch = "riscv64")]
pub use vcpu::{RiscvKicker, RiscvSetupConfig, RiscvVCpu};
