//! x86 architecture pieces every x86 backend of `axvcpu` needs, whatever its hardware
//! (hosted KVM, AMD SVM, Intel VMX): plain code over bytes and register values, tested on
//! any host.
//!
//! ```
//! use axvcpu::{AccessWidth, AxVCpuExitReason, GuestPhysAddr};
//! use axvcpu_x86::apic::{IcrDecoder, ICR_HIGH, ICR_LOW};
//! use axvcpu_x86::decode::{decode, MmioInsn};
//!
//! // A guest stores eax to unmapped guest-physical memory: `mov dword ptr [rbx + 0x300], eax`.
//! let insn = decode(&[0x89, 0x83, 0x00, 0x03, 0x00, 0x00]).unwrap();
//! assert_eq!(insn.len, 6); // rip moves past it
//! let MmioInsn::StoreReg { width, src } = insn.insn else { panic!() };
//! assert_eq!((width, src.reg), (AccessWidth::Dword, 0));
//!
//! // The address was the local APIC's ICR: INIT, then start-up at page 0x9a, of APIC id 1.
//! let mut icr = IcrDecoder::new();
//! let mut write = |addr, data| icr.mmio_write(addr, width, data);
//! assert_eq!(write(ICR_HIGH, 1 << 24), Some(AxVCpuExitReason::Nothing));
//! assert_eq!(write(ICR_LOW, 0x4500), Some(AxVCpuExitReason::Nothing));
//! assert_eq!(write(ICR_HIGH, 1 << 24), Some(AxVCpuExitReason::Nothing));
//! assert_eq!(
//!     write(ICR_LOW, 0x069a),
//!     Some(AxVCpuExitReason::CpuUp {
//!         target_cpu: 1,
//!         entry_point: GuestPhysAddr::from(0x9a000),
//!         arg: 0,
//!     })
//! );
//! // Any other address is ordinary MMIO.
//! assert_eq!(write(0xd000_0000, 7), None);
//! ```
//!
//! | module | what |
//! |---|---|
//! | `cpu` (x86-64 targets) | the host CPU's MSRs, CPUID, `RFLAGS.IF` and FXSAVE/FXRSTOR, as bare-metal backends use them |
//! | [`cpuid`] | what a guest sees of CPUID: the host's answer filtered to what the backends virtualise, and a hypervisor leaf |
//! | [`boot`] | the GDT and identity page tables a guest starts in 64-bit long mode with |
//! | [`apic`] | the local APIC's ICR written through the xAPIC page → `CpuUp` (INIT-SIPI), `SendIPI`, or absorbed |
//! | [`msr`] | the MSRs kept in the guest state (EFER, PAT): what a guest may write |
//! | [`paging`] | the guest's 4-level page-table walk, and fetching instruction bytes at `rip` through it, over any [`paging::GuestMemory`] |
//! | [`decode`] | the `mov`/`movzx`/`movsx`/`movsxd` forms that access MMIO, and `in`/`out` lengths |
//! | [`exit`] | port I/O, MSR and MMIO exits → `AxVCpuExitReason`, and completing their reads, over any [`exit::GuestRegs`] |

#![no_std]
#![deny(missing_docs, missing_debug_implementations)]

pub mod apic;
pub mod boot;
#[cfg(target_arch = "x86_64")]
pub mod cpu;
pub mod cpuid;
pub mod decode;
pub mod exit;
pub mod gpr;
pub mod lapic;
pub mod msr;
pub mod paging;
