//! The RISC-V H-extension backend of `axvcpu`: a hypervisor running in HS-mode runs each
//! guest hart in VS-mode.
//!
//! The decoders and the SBI classification are plain functions that run on any host; the
//! vCPU itself is compiled for `riscv64` only. What the backend does when a guest's store
//! reaches unmapped memory, step by step:
//!
//! ```
//! use axvcpu::AccessWidth;
//! use axvcpu_riscv::decode::{self, Htinst, MemInsn};
//! use axvcpu_riscv::sbi::{self, SbiCall};
//!
//! // `sw a1, 8(a0)` faulted on unmapped memory. The hardware's transformed instruction
//! // (`htinst`) is that store with its address fields zeroed: `sw a1, 0(x0)`.
//! let Htinst::Transformed(t) = decode::classify_htinst(0x00b0_2023) else { unreachable!() };
//! let (width, reg) = (AccessWidth::Dword, 11); // 4 bytes, from a1
//! let store = MemInsn { is_load: false, width, signed: false, reg, len: 4 };
//! assert_eq!(decode::decode_transformed(t), Some(store));
//! assert_eq!(decode::transformed_addr_offset(t), 0); // the access starts at the fault
//!
//! // Without htinst the backend reads the instruction with HLVX and decodes it itself,
//! // compressed forms included: `c.sw a1, 8(a0)`.
//! assert_eq!(decode::decode_mem(0xc50c), Some(MemInsn { len: 2, ..store }));
//!
//! // An `ecall` with a7 = the hypercall extension, a6 = the number: a `Hypercall` exit.
//! let a = [1, 2, 3, 4, 5, 6, 0x42, axvcpu::RISCV_HYPERCALL_EXT]; // a0..a7
//! assert_eq!(sbi::classify(&a), SbiCall::Hypercall { nr: 0x42, args: [1, 2, 3, 4, 5, 6] });
//! ```
//!
//! - `RiscvVCpu` (riscv64) implements [`axvcpu::AxArchVCpu`]: world switch in assembly,
//!   G-stage translation from `set_ept_root` (an `axvcpu-npt` table, Sv39x4 or Sv48x4 as
//!   [`GStageMode`] says), guest F/D state switched at bind/unbind, SBI for the guest
//!   (base, TIME, IPI, RFENCE, HSM, SRST, DBCN, legacy console,
//!   and the hypercall extension [`axvcpu::RISCV_HYPERCALL_EXT`]), MMIO decoding, trapped
//!   CSRs, `wfi`. Its kicker is [`axvcpu::IpiKicker`] over `SbiIpi` (an SBI IPI).
//! - `RiscvPerCpu` (riscv64) implements [`axvcpu::AxArchPerCpu`]: delegation and counters
//!   per hart.
//!
//! # What the hypervisor must provide
//!
//! - **`AxVCpuHal::current_cpu_id()` must return the hart id** (`mhartid`, as SBI numbers
//!   harts): a kick is an SBI IPI to the hart `bind` recorded through it, and
//!   `hardware_enable` refuses to run on a hart other than its state's `cpu_id`.
//! - `hardware_enable` on every hart that will run vCPUs, before `setup` and `bind` there
//!   (and `hardware_enable`/`hardware_disable` only while no vCPU is bound to that hart).
//! - A G-stage table from `axvcpu-npt` ([`axvcpu_npt::GStageTable`] picks the format at run
//!   time) in a mode `hgatp` accepts (`supports(mode)`).
//! - Without Sstc, the host's supervisor timer belongs to the bound vCPU while its guest has
//!   a deadline armed (the backend reprograms it through SBI `set_timer`).
//!
//! # Exits, by guest trap
//!
//! `Nothing` below means the backend handled the trap itself: `AxArchVCpu::run` returns it
//! and `AxVCpu::run` enters the guest again, so a hypervisor never sees it.
//!
//! | guest does | exit |
//! |---|---|
//! | `ecall`, `a7` = `RISCV_HYPERCALL_EXT` | `Hypercall{nr: a6, args: a0..a5}` (see below) |
//! | `ecall` HSM `hart_start` / `hart_stop` | `CpuUp{hartid, start_addr, opaque}` / `CpuDown` (the hart reset for its next start) |
//! | `ecall` HSM `hart_get_status` | `Hypercall{nr: sbi::HART_STATUS_NR, args[0]: hartid}` (the hypervisor answers) |
//! | `ecall` HSM `hart_suspend` (default retentive / non-retentive) | `Halt` (non-retentive: resumes at its resume address) |
//! | `ecall` RFENCE `remote_fence_i` / `remote_sfence_vma[_asid]` | the calling hart fenced inside; `RemoteFence{mask, base}` when other harts are targets, else `Nothing` |
//! | `ecall` SRST (defined reset type and reason), legacy shutdown | `SystemDown` |
//! | `ecall` IPI `send_ipi` | `SendIPI{target_cpu: mask, target_cpu_aux: base, vector: 1}` |
//! | `ecall` base, TIME, DBCN, legacy console, anything else | answered inside (`Nothing`; unknown: `SBI_ERR_NOT_SUPPORTED`; reserved SRST parameters: `SBI_ERR_INVALID_PARAM`) |
//! | load/store to a GPA the G-stage does not map | `MmioRead` / `MmioWrite` (decoded from `htinst` or the instruction read with HLVX) |
//! | the same, spanning a page boundary | `Err` (value: the faulting GPA) |
//! | load/store/fetch the G-stage maps without that permission | `NestedPageFault` |
//! | load/store the G-stage allows (a stale cached translation) | flushed and retried once inside (`Nothing`); a second fault at that GPA: `NestedPageFault` |
//! | fetch from an unmapped GPA, or its own page-table walk touching one | `NestedPageFault` |
//! | `wfi` (`hstatus.VTW` = 1) | `Halt` |
//! | `sfence.vma` with `trap_satp` | done inside with `hfence.vvma` (`Nothing`) |
//! | `csrr* cycle` (hcounteren.CY = 0), `satp` with `trap_satp` | `SysRegRead` / `SysRegWrite` |
//! | host software interrupt | `Kicked` |
//! | host timer interrupt carrying the guest's deadline (no Sstc) | `VSTIP` raised inside (`Nothing`) |
//! | other host interrupts | `ExternalInterrupt{vector: scause code}` |
//! | anything else | `Err` naming the cause (value: `scause`, or `stval` for access faults); `RiscvVCpu::last_trap` has all four trap CSRs |
//!
//! When reading the trapping instruction with HLVX faults (the guest changed its memory
//! since it ran it), the backend returns `Nothing` with the PC unchanged: the guest runs
//! the instruction again and takes whatever fault its memory now gives, itself.
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
//! (`VSEIP`). Anything else is `InvalidInput`. The `hvip` bits are the pending set (one per
//! code: an injection of a pending code merges with it); `RiscvVCpu` says what "taken"
//! means for each code.
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
//! | file | job |
//! |---|---|
//! | `vcpu.rs` | `RiscvVCpu`, `RiscvSetupConfig`, `TrapInfo`, the `AxArchVCpu` impl, guest entry |
//! | `vcpu/exit.rs` | exit decoding: every `scause` to an exit, `Nothing` (handled) or an error |
//! | `vcpu/irq.rs` | injection (`hvip`), `SbiIpi` (the `KickIpi`), the guest timer, host interrupts |
//! | `switch.rs` | the world switch, the fault-catching HLVX read and the H probe (assembly) |
//! | `percpu.rs` | `RiscvPerCpu`: delegation per hart |
//! | `regs.rs` | the register file the switch uses, VS CSRs swapped at bind/unbind |
//! | `hw.rs` | the host's CSRs (`hgatp`/`vsatp` writes are `unsafe fn`), fences, probes, SBI calls |
//! | [`decode`] | instruction decoding: loads/stores, `htinst`, CSR instructions |
//! | [`sbi`] | the guest's SBI calls, classified |
//!
//! The G-stage walk is `axvcpu-npt`'s ([`axvcpu_npt::GStageView`]).

#![no_std]
#![deny(missing_docs, missing_debug_implementations)]

pub mod decode;
pub mod sbi;

pub use axvcpu_npt::GStageMode;

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
pub use vcpu::{RiscvSetupConfig, RiscvVCpu, SbiIpi, TrapInfo};
