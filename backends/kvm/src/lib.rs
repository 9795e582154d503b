//! Hosted axvcpu backend: x86-64 guests on Linux KVM, through rust-vmm's `kvm-ioctls`.
//!
//! A hypervisor that is an ordinary Linux process makes a [`HostedVm`] (guest memory, the
//! nested page table, the boot tables and the KVM VM, owned together), loads its guest's
//! bytes, takes vCPUs from it and handles the [`AxVCpuExitReason`]s their
//! [`run`](AxVCpu::run) returns. This runs a real guest of three instructions, with no
//! `unsafe`:
//!
//! ```
//! use axvcpu_kvm::{AccessWidth, AxVCpuExitReason, HostedVm, Port};
//!
//! // The guest, 64-bit code, hand-encoded:
//! //   mov al, 42      b0 2a
//! //   out 0x80, al    e6 80    -> IoWrite { port: 0x80, width: Byte, data: 42 }
//! //   hlt             f4       -> Halt
//! const GUEST: [u8; 5] = [0xb0, 0x2a, 0xe6, 0x80, 0xf4];
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // 64 KiB of guest RAM at guest-physical 0x10000 (the boot tables take its first pages);
//! // the guest at 0x18000, its stack below 0x20000.
//! let vm = HostedVm::new(0x1_0000, 0x1_0000)?;
//! vm.load(0x1_8000, &GUEST)?;
//! let mut vcpu = vm.new_vcpu(0, 0x1_8000, 0x2_0000)?;
//! vcpu.bind()?;
//! let out = AxVCpuExitReason::IoWrite { port: Port(0x80), width: AccessWidth::Byte, data: 42 };
//! assert_eq!(vcpu.run()?, out);
//! assert_eq!(vcpu.run()?, AxVCpuExitReason::Halt);
//! vcpu.unbind()?;
//! # Ok(()) }
//! ```
//!
//! `examples/hosted.rs` (the repository README's "Use it") is a complete program with an
//! MMIO device, and `examples/demo.rs` one with two vCPUs on two threads, an interrupt, and
//! [`wait_while_blocked`] (`cargo run -p axvcpu-kvm --release --example demo`).
//!
//! Below [`HostedVm`] are the pieces it is made of, for a hypervisor that builds its own:
//! [`KvmVm`] (made through an enabled [`KvmPerCpu`]), [`KvmVCpu`] driven through
//! [`AxVCpu`], guest RAM in [`HostFrames`] mapped by an axvcpu-npt [`NestedPageTable`] of
//! the [`X86Npt`] format in [`HostedHal`] frames, whose root `set_ept_root` takes (an
//! `unsafe` promise that the table and memory outlive the VM's memory slots), and
//! [`boot::write_long_mode_tables`].
//!
//! One dependency is enough: this crate re-exports [`axvcpu`] and `axvcpu_npt`, and the
//! names a hosted hypervisor uses from them.
//!
//! # Errors
//! Every failure is an `Err(`[`VCpuError`]`)` with a reason. A failed KVM call names the
//! call and the `errno`: `"KVM_CREATE_VM: ENOMEM (Cannot allocate memory)"`, the value
//! being the `errno` number. A vCPU id is used once per VM (KVM keeps a vCPU until its VM
//! is destroyed): making it again, even after its vCPU was dropped, is refused
//! (`ResourceBusy`, the value being the id).
//!
//! # What the guest sees
//! Each vCPU starts in 64-bit long mode at its entry (see [`KvmSetupConfig`]), with the GDT
//! and identity page tables [`boot::write_long_mode_tables`] writes into guest RAM. There is
//! no in-kernel interrupt controller: no local APIC timer, no PIC; interrupts come only from
//! [`inject_interrupt`](axvcpu::AxVCpu::inject_interrupt).
//!
//! # Exits
//! | guest does | KVM exit | `run()` returns |
//! |---|---|---|
//! | `out` to port [`X86_HYPERCALL_PORT`](axvcpu::X86_HYPERCALL_PORT), 4 bytes | `KVM_EXIT_IO` | `Hypercall { nr: rax, args: rdi, rsi, rdx, rcx, r8, r9 }`; `set_return_value` → `rax` |
//! | `out` to [`X86_SHUTDOWN_PORT`](axvcpu::X86_SHUTDOWN_PORT); triple fault; system event | `KVM_EXIT_IO`, `KVM_EXIT_SHUTDOWN`, `KVM_EXIT_SYSTEM_EVENT` | `SystemDown` |
//! | other `out` / `in` (1, 2, 4 bytes) | `KVM_EXIT_IO` | `IoWrite` / `IoRead`; string I/O is reported one element per exit |
//! | load / store to unmapped guest-physical memory | `KVM_EXIT_MMIO` | `MmioRead { reg: None, .. }` / `MmioWrite` (KVM's emulator writes the destination register) |
//! | store to a read-only mapping | `KVM_EXIT_MMIO` in a read-only slot | `NestedPageFault { addr, WRITE }`; the write is held and stored into host memory by the next `run()` once the table maps it writable, or faults again |
//! | 4-byte ICR writes to the local APIC (0xFEE0_0300/0310): INIT, then SIPI | `KVM_EXIT_MMIO` | `CpuUp { target_cpu: APIC id, entry_point: vector << 12, arg: 0 }` (physical destination, no shorthand; later SIPIs are absorbed); fixed and lowest-priority IPIs → `SendIPI { vector }`, NMIs → `SendIPI { vector: 2 }`; other delivery modes are absorbed (decoded by the shared `axvcpu_x86::apic::IcrDecoder`) |
//! | `rdmsr` / `wrmsr` of an MSR in [`KvmVmConfig::trapped_msrs`] | `KVM_EXIT_X86_RDMSR/WRMSR` | `SysRegRead { reg: 0 }` / `SysRegWrite` |
//! | `hlt` | `KVM_EXIT_HLT` | `Halt` |
//! | — (kicked) | `EINTR` | `Kicked` |
//! | bad guest state | `KVM_EXIT_FAIL_ENTRY` | `FailEntry` |
//! | an instruction KVM cannot emulate | `KVM_EXIT_INTERNAL_ERROR` | `Err` (`Unsupported`, value = KVM's suberror) |
//! | anything else | other | `Err` (`Unsupported`, value = KVM's exit reason) |
//!
//! After a read exit (`IoRead`, `MmioRead`, `SysRegRead`) and after `SysRegWrite`,
//! [`pc`](axvcpu::AxVCpu::pc) still points at the instruction: KVM finishes it (a read with
//! the value given to `complete_read`) at the next `run()`, so `set_pc` is refused
//! (`BadState`) until then, `complete_read` or not. After every other exit it points past the instruction; after a `NestedPageFault`
//! the store itself is held and done by the next `run()` (see the table).
//!
//! Registers travel through the shared `kvm_run` page (`KVM_CAP_SYNC_REGS`), so each exit
//! costs one ioctl; [`KvmVCpu::ioctl_count`] counts them. An exit handled inside (an
//! interrupt window opening, an ICR write that starts nothing) returns
//! [`Nothing`](axvcpu::AxVCpuExitReason::Nothing) and the core enters again: still one
//! ioctl per `KVM_RUN`. Interrupts: a pending bit per vector, highest injected first (see
//! [`KvmVCpu`]). Kicks: see [`Kicker`] (the hosted mechanism: `immediate_exit` and a
//! signal, not the bare-metal [`IpiKicker`](axvcpu::IpiKicker)).
//!
//! # Layout
//! `vcpu.rs` (the vCPU, thin) with `vcpu/exit.rs` (KVM exits → exit reasons) and
//! `vcpu/irq.rs` (interrupt injection); `switch.rs` (`KVM_RUN` and the shared `kvm_run`
//! page); `percpu.rs`; `regs.rs`; and the hosted pieces `guest.rs` (the [`HostedVm`]
//! owner), `vm.rs` (the VM and its memory slots), `memory.rs` (guest RAM), `hal.rs` (frames
//! from the process heap, the wake-up [`wait_while_blocked`] sleeps on), `kick.rs` (the
//! hosted kick), `boot.rs` (long-mode start state) and `errno.rs` (KVM errors). The
//! conformance platform, the test VM and the guest programs of the tests and benches are
//! in the `axvcpu-kvm-testkit` crate, which only they depend on.

#![deny(missing_docs, missing_debug_implementations)]

pub mod boot;
mod errno;
mod guest;
mod hal;
mod kick;
mod memory;
mod percpu;
pub mod regs;
mod switch;
mod vcpu;
mod vm;

pub use guest::{GuestVCpu, HostedVm, HostedVmConfig};
pub use hal::{wait_while_blocked, HostedHal};
pub use kick::{kick_signal, Kicker};
pub use memory::HostFrames;
pub use percpu::KvmPerCpu;
pub use vcpu::{KvmCreateConfig, KvmSetupConfig, KvmVCpu};
pub use vm::{KvmVm, KvmVmConfig};

#[doc(no_inline)]
pub use axvcpu::{
    self, AccessWidth, AxPerCpu, AxVCpu, AxVCpuExitReason, GuestPhysAddr, HostPhysAddr, Port,
    VCpuError, VCpuHandle, VCpuResult, VCpuState,
};
#[doc(no_inline)]
pub use axvcpu_npt;
// Inlined: a documentation set of this crate and the core (`cargo doc -p axvcpu -p
// axvcpu-kvm`) then has them.
#[doc(inline)]
pub use axvcpu_npt::{MapFlags, Mapping, NestedPageTable, PagingFormat, X86Npt};
