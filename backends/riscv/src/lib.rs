//! The RISC-V H-extension backend of `axvcpu`: a hypervisor running in HS-mode runs each
//! guest hart in VS-mode.
//!
//! - `RiscvVCpu` (riscv64 only) implements [`axvcpu::AxArchVCpu`]: world switch in
//!   assembly, G-stage translation from `set_ept_root` (Sv39x4 or Sv48x4), SBI for the guest
//!   (base, TIME, IPI, HSM, SRST, legacy console, and the hypercall extension
//!   [`axvcpu::RISCV_HYPERCALL_EXT`]), MMIO decoding, trapped CSRs, `wfi`.
//! - `RiscvPerCpu` (riscv64 only) implements [`axvcpu::AxArchPerCpu`]: delegation and
//!   counters per hart.
//!
//! # What the hypervisor must provide
//!
//! - **`AxVCpuHal::current_cpu_id()` must return the hart id** (`mhartid`, as SBI numbers
//!   harts): a kick is an SBI IPI to the hart `bind` recorded through it, and
//!   `hardware_enable` refuses to run on a hart other than its state's `cpu_id`.
//! - `hardware_enable` on every hart that will run vCPUs, before `setup` and `bind` there.
//! - Without Sstc, the host's supervisor timer belongs to the bound vCPU while its guest has
//!   a deadline armed (the backend reprograms it through SBI `set_timer`).
//!
//! # Exits, by guest trap
//!
//! | guest does | exit |
//! |---|---|
//! | `ecall`, `a7` = `RISCV_HYPERCALL_EXT` | `Hypercall{nr: a6, args: a0..a5}` (see below) |
//! | `ecall` HSM `hart_start` / `hart_stop` | `CpuUp{hartid, start_addr, opaque}` / `CpuDown` |
//! | `ecall` SRST (defined reset type and reason), legacy shutdown | `SystemDown` |
//! | `ecall` IPI `send_ipi` | `SendIPI{target_cpu: mask, target_cpu_aux: base, vector: 1}` |
//! | `ecall` base, TIME, legacy console, anything else | handled: `Nothing` (unknown: `SBI_ERR_NOT_SUPPORTED`; reserved SRST parameters: `SBI_ERR_INVALID_PARAM`) |
//! | load/store to a GPA the G-stage does not map | `MmioRead` / `MmioWrite` (decoded from `htinst` or the instruction read with HLVX) |
//! | the same, spanning a page boundary | `Err` (value: the faulting GPA) |
//! | load/store/fetch the G-stage maps without that permission | `NestedPageFault` |
//! | fetch from an unmapped GPA, or its own page-table walk touching one | `NestedPageFault` |
//! | `wfi` (`hstatus.VTW` = 1) | `Halt` |
//! | `csrr* cycle` (hcounteren.CY = 0), `satp` with `trap_satp` | `SysRegRead` / `SysRegWrite` |
//! | host software interrupt | `Kicked` |
//! | other host interrupts | `ExternalInterrupt{vector: scause code}` |
//! | anything else | `Err` naming the cause (value: `scause`, or `stval` for access faults); `RiscvVCpu::last_trap` has all four trap CSRs |
//!
//! When reading the trapping instruction with HLVX faults (the guest changed its memory
//! since it ran it), the exit is `Nothing` with the PC unchanged: the guest runs the
//! instruction again and takes whatever fault its memory now gives, itself.
//!
//! # The hypercall ABI
//!
//! `ecall` with `a7` = [`axvcpu::RISCV_HYPERCALL_EXT`] (in SBI's vendor range), `a6` = the
//! hypercall number, `a0..a5` = the six arguments. On return `a0` = 0 (`SBI_SUCCESS`) and
//! `a1` = the value given to `set_return_value` (unchanged if none); every other register
//! is preserved.
//!
//! # Interrupt vectors
//!
//! `inject_interrupt(vector)` takes the guest's `scause` interrupt code: 1 = supervisor
//! software (`hvip.VSSIP`), 5 = supervisor timer (`VSTIP`), 9 = supervisor external
//! (`VSEIP`). Anything else is `InvalidInput`. How each is acknowledged: see `RiscvVCpu`.
//!
//! # `CpuUp`: what the new hart gets
//!
//! For SBI `hart_start(hartid, start_addr, opaque)` the hypervisor creates a vCPU with
//! `vcpu_id` = `hartid` and entry `start_addr`, and calls `set_boot_arg(opaque)`. That vCPU
//! starts as SBI specifies: in VS-mode at `start_addr`, `a0` = its `vcpu_id` (set by
//! `setup`), `a1` = the boot argument, `vsatp` = 0 (no translation), `vsstatus.SIE` = 0,
//! other registers 0.
//!
//! # Shape of the backend
//!
//! | module | role |
//! |---|---|
//! | `vcpu` | `RiscvVCpu`: state, `AxArchVCpu`, guest entry |
//! | `vcpu/trap` | the trap decoder: every `scause` to an exit or an error |
//! | `vcpu/irq` | injection, kicks, the guest timer, host interrupts |
//! | `percpu` | `RiscvPerCpu`: delegation per hart |
//! | `switch` | the world switch and the fault-catching HLVX read (assembly) |
//! | `regs` | the register file the switch uses, VS CSRs swapped at bind/unbind |
//! | [`decode`], [`sbi`], `gstage` | pure decoding, SBI classification, G-stage walk |
//!
//! The decoders, the SBI classification and the G-stage walk are plain functions, tested on
//! any host; the rest is compiled for `riscv64` only.

#![no_std]
#![deny(missing_docs, missing_debug_implementations)]

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
mod regs;
#[cfg(target_arch = "riscv64")]
mod switch;
#[cfg(target_arch = "riscv64")]
mod vcpu;

#[cfg(target_arch = "riscv64")]
pub use hw::{has_sstc, supports};
#[cfg(target_arch = "riscv64")]
pub use percpu::{RiscvPerCpu, HCOUNTEREN};
#[cfg(target_arch = "riscv64")]
pub use vcpu::{RiscvKicker, RiscvSetupConfig, RiscvVCpu, TrapInfo};
