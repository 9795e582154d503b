//! The x86-64 guest programs of the conformance contract, which start in the long-mode
//! state of `axvcpu_x86::boot`. The programs:
//! (`axvcpu_conformance::contract::GuestProgram`: `done`, `io_out`, `io_in`,
//! `mmio_write`, `mmio_read`, `hypercall`, `halt` (also for `Regs`), `system_down`, `npf`,
//! `cpu_up`, `irq`, `spin`, `sysreg`, `isolation`, `smp`, `signature`), written once in `src/contract.s`
//! and assembled into the test harness of each x86 backend: the hosted KVM test kit
//! (`axvcpu-kvm-testkit`) and the bare-metal x86 test hypervisor (`testbed-x86`). `CpuDown`
//! has no program: x86 has no architectural CPU-off.
//!
//! Each program is 64-bit, position-independent code (Intel syntax) in its own 4 KiB-aligned
//! section, copied to a page-aligned entry in guest RAM; guests run in long mode with
//! guest-virtual = guest-physical. Hypercalls follow the contract: number in `rax`, arguments
//! in `rdi, rsi, rdx, rcx, r8, r9`, result in `rax`.
//!
//! # How a backend includes them
//!
//! [`contract_asm!`] expands to the text of `src/contract.s` (an `include_str!` of it), for
//! use as one template of a `global_asm!` that has, before it, a template defining three
//! assembler macros, and after it any programs of the backend's own:
//! - `hypercall`: the hypercall instruction, the number already in `eax` (`out 0xf6, eax`
//!   on KVM, `vmmcall` on SVM); the only difference between the backends' copies;
//! - `PROGRAM name`: opens program `name` (its section, `.p2align 12`, a global start label
//!   in the backend's naming);
//! - `END_PROGRAM name`: the program's global end label, then `.popsection`.
//!
//! The `global_asm!` operands supply the contract's constants by name: `done`, `report`,
//! `ready`, `port0`..`port2`, `out0`..`out2`, `in_before`, `mmio`, `w0`..`w3`,
//! `a0`..`a5`, `hc_nr`, `npf_addr`, `npf_data`, `cpu_up_target`, `irq_vec`, `irq_vec2`, `msr`,
//! `sysreg_write`, `below`, `above`, `smp_iterations` and `sig_offset` (the list with their meanings heads
//! `src/contract.s`; the common ones are named as `axvcpu_testbed::guest_asm!` supplies them).
//! The text also defines the assembler macros `HC nr`, `REPORT src`, `GATE idt, vec, handler`,
//! `IRQ_GATE idt, handler, idtr` and `DONE_LOOP`, which the backend's own programs after it
//! may use.
//!
//! ```text
//! core::arch::global_asm!(
//!     ".macro hypercall\n out 0xf6, eax\n.endm\n\
//!      .macro PROGRAM name\n ... \n.endm\n.macro END_PROGRAM name\n ... \n.endm",
//!     axvcpu_guests_x86::contract_asm!(),
//!     include_str!("my_programs.s"),
//!     done = const axvcpu_conformance::contract::HC_DONE,
//!     // ...
//! );
//! ```
//!
//! [`chaos_asm!`] expands to the text of `src/chaos.s` in the same way: the runtime of the
//! conformance `chaos` scenario (`axvcpu_conformance::Platform::create_chaos_vm`), program
//! `chaos`, and `chaos_hypercall`, the hypercall instruction alone (its bytes are the
//! platform's `PlatformInfo::hypercall_insn`). It needs the operands `chaos_code`,
//! `chaos_code_bytes`, `chaos_data` and `chaos_counts` (the contract's `CHAOS_*` offsets).
//!
//! The macros name the files by their absolute paths (written by this crate's build script):
//! `include_str!` resolves a relative path against the invoking crate's file.

#![no_std]
#![deny(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/contract_asm.rs"));
