//! Why [`run`](crate::AxVCpu::run) returned: the common exit reasons and their operand types.
//!
//! Every variant documents, per architecture, which guest action produces it and how the
//! hypervisor completes it. Register numbers follow each architecture's own encoding (see
//! [`AxArchVCpu::set_gpr`](crate::AxArchVCpu::set_gpr)).

use bitflags::bitflags;

use crate::GuestPhysAddr;

/// The width of a memory, port or register access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessWidth {
    /// 1 byte.
    Byte,
    /// 2 bytes.
    Word,
    /// 4 bytes.
    Dword,
    /// 8 bytes.
    Qword,
}

impl AccessWidth {
    /// The access size in bytes.
    pub const fn size(self) -> usize {
        match self {
            Self::Byte => 1,
            Self::Word => 2,
            Self::Dword => 4,
            Self::Qword => 8,
        }
    }

    /// The width of a `size`-byte access, or `None` if no such width exists.
    pub const fn from_size(size: usize) -> Option<Self> {
        match size {
            1 => Some(Self::Byte),
            2 => Some(Self::Word),
            4 => Some(Self::Dword),
            8 => Some(Self::Qword),
            _ => None,
        }
    }

    /// The mask of the bits this width covers (`0xff` for a byte, ...).
    pub const fn mask(self) -> u64 {
        match self {
            Self::Qword => u64::MAX,
            w => (1u64 << (w.size() * 8)) - 1,
        }
    }

    /// `value` truncated to this width, then sign-extended to 64 bits.
    pub const fn sign_extend(self, value: u64) -> u64 {
        let shift = 64 - self.size() as u32 * 8;
        (((value << shift) as i64) >> shift) as u64
    }
}

impl TryFrom<usize> for AccessWidth {
    type Error = crate::VCpuError;

    fn try_from(size: usize) -> Result<Self, Self::Error> {
        Self::from_size(size).ok_or(
            crate::VCpuError::invalid_input("access width must be 1, 2, 4 or 8 bytes")
                .with_value(size as u64),
        )
    }
}

/// An x86 I/O port number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port(pub u16);

impl Port {
    /// The port number.
    pub const fn number(self) -> u16 {
        self.0
    }
}

/// A system register address, in the architecture's own encoding:
///
/// - **x86_64**: the MSR index (`ecx` of `rdmsr`/`wrmsr`).
/// - **RISC-V**: the 12-bit CSR number.
/// - **AArch64**: the `MRS`/`MSR` operands packed as in the ISS of ESR_EL2 for EC 0x18:
///   `Op0 << 20 | Op2 << 17 | Op1 << 14 | CRn << 10 | CRm << 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SysRegAddr(pub usize);

impl SysRegAddr {
    /// The raw address.
    pub const fn addr(self) -> usize {
        self.0
    }
}

bitflags! {
    /// The kind of guest access that caused a [`NestedPageFault`](AxVCpuExitReason::NestedPageFault).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct AccessFlags: u8 {
        /// A data read.
        const READ = 1 << 0;
        /// A data write.
        const WRITE = 1 << 1;
        /// An instruction fetch.
        const EXECUTE = 1 << 2;
    }
}

/// Why the guest stopped running. Returned by [`AxVCpu::run`](crate::AxVCpu::run).
///
/// Unless a variant says otherwise, the next `run()` continues after the instruction that
/// caused the exit. Where `pc()` points *between* the exit and that `run()` differs:
/// - bare-metal backends move it past the instruction before `run()` returns, or, for reads
///   (`MmioRead`, `IoRead`, `SysRegRead`), in
///   [`complete_read`](crate::AxVCpu::complete_read);
/// - hosted KVM leaves it at the instruction for reads and `SysRegWrite` (its emulator
///   finishes them inside the next `run()`), and has moved it past a store that caused a
///   `NestedPageFault` (the store is held and performed by the next `run()`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AxVCpuExitReason {
    /// The guest made a hypercall. Answer with
    /// [`set_return_value`](crate::AxVCpu::set_return_value) (default: the return register
    /// is left as the guest set it).
    ///
    /// - **x86_64**: `vmcall`/`vmmcall` on bare metal; on hosted KVM, which keeps
    ///   `vmcall` for itself, `out imm8, eax` to port [`X86_HYPERCALL_PORT`]. `nr` is `rax`,
    ///   `args` are `rdi, rsi, rdx, rcx, r8, r9`; the return value goes to `rax`.
    /// - **RISC-V**: `ecall` with SBI extension id `a7` = [`RISCV_HYPERCALL_EXT`]; `nr` is
    ///   the function id `a6`, `args` are `a0..a5`; the return value goes to `a1` and `a0`
    ///   is set to 0 (SBI_SUCCESS).
    /// - **AArch64**: `hvc #0` with `x0` outside the PSCI function-id range (PSCI calls are
    ///   `CpuUp`, `CpuDown`, `SystemDown` or answered inside); `nr` is `x0`, `args` are
    ///   `x1..x6`; the return value goes to `x0`.
    Hypercall {
        /// The hypercall number.
        nr: u64,
        /// The six arguments.
        args: [u64; 6],
    },
    /// The guest loaded from guest-physical memory the nested page table does not map.
    /// Complete it with [`complete_read`](crate::AxVCpu::complete_read); the value is
    /// truncated to `width` and extended as the guest's instruction asks.
    MmioRead {
        /// The guest-physical address read.
        addr: GuestPhysAddr,
        /// The access width.
        width: AccessWidth,
        /// The destination register, when the backend decoded the instruction itself
        /// (RISC-V, AArch64, x86 SVM). `None` on hosted KVM, whose instruction emulator
        /// writes the register itself.
        reg: Option<usize>,
        /// The width of the destination register write (equal to `width` when `reg` is
        /// `None`).
        reg_width: AccessWidth,
        /// Whether the load sign-extends (`false` when `reg` is `None`: the emulator applies
        /// the instruction's own extension).
        signed_ext: bool,
    },
    /// The guest stored to guest-physical memory the nested page table does not map.
    MmioWrite {
        /// The guest-physical address written.
        addr: GuestPhysAddr,
        /// The access width.
        width: AccessWidth,
        /// The data, zero-extended from `width`.
        data: u64,
    },
    /// The guest read a system register the hypervisor traps. Complete it with
    /// [`complete_read`](crate::AxVCpu::complete_read).
    ///
    /// - **x86_64**: `rdmsr`; the value lands in `edx:eax` and `reg` is 0 (`rax`).
    /// - **RISC-V**: `csrr*`; `reg` is the destination `x` register.
    /// - **AArch64**: `mrs`; `reg` is the destination `x` register.
    SysRegRead {
        /// The register read.
        addr: SysRegAddr,
        /// The destination general-purpose register.
        reg: usize,
    },
    /// The guest wrote a system register the hypervisor traps (`wrmsr`: `edx:eax`).
    SysRegWrite {
        /// The register written.
        addr: SysRegAddr,
        /// The value written.
        value: u64,
    },
    /// The guest executed `in` (x86 only). Complete it with
    /// [`complete_read`](crate::AxVCpu::complete_read): the value is truncated to `width`;
    /// `in al`/`in ax` keep the rest of `rax`, `in eax` zero-extends into `rax`.
    IoRead {
        /// The port.
        port: Port,
        /// The access width (1, 2 or 4 bytes).
        width: AccessWidth,
    },
    /// The guest executed `out` (x86 only).
    IoWrite {
        /// The port.
        port: Port,
        /// The access width (1, 2 or 4 bytes).
        width: AccessWidth,
        /// The data, zero-extended from `width`.
        data: u64,
    },
    /// A host interrupt arrived while the guest ran. The backend has already handed it to
    /// the host through [`AxVCpuHal::irq_handler`](crate::AxVCpuHal::irq_handler) where
    /// the platform routes interrupts that way.
    ExternalInterrupt {
        /// The host interrupt number (RISC-V: the `scause` interrupt code; AArch64: the GIC
        /// INTID; x86 SVM: the highest vector pending in the local APIC at the exit, 2 for
        /// an NMI; x86 VMX: the vector the exit acknowledged, 2 for an NMI). Hosted KVM
        /// never returns this exit: a signal that interrupts the guest is a kick.
        vector: u64,
    },
    /// The guest accessed guest-physical memory the nested page table maps, but without the
    /// permission the access needed (a write to a read-only page, say). Bare-metal backends
    /// also report an instruction fetch from memory the table does not map, and the guest's
    /// own page-table walk through such memory, this way (a data load or store there is
    /// `MmioRead` / `MmioWrite`). The access has *not*
    /// taken effect: fix the mapping, call
    /// [`nested_page_table_changed`](crate::AxVCpu::nested_page_table_changed) and `run()`
    /// again, and it is performed (bare metal retries the instruction; hosted KVM performs
    /// the held store). Run again without fixing it and the same exit comes back.
    NestedPageFault {
        /// The faulting guest-physical address.
        addr: GuestPhysAddr,
        /// What the guest tried to do.
        access_flags: AccessFlags,
    },
    /// The guest halted until an interrupt (x86 `hlt`, RISC-V/AArch64 `wfi`). The vCPU is
    /// [`Blocked`](crate::VCpuState::Blocked), or [`Ready`](crate::VCpuState::Ready) if an
    /// injected interrupt is already waiting (queued in the core or held by the backend),
    /// so a hypervisor that sleeps on `Blocked` never misses that wake-up. Either way the
    /// next `run()` resumes after the instruction.
    Halt,
    /// The guest asked to start a secondary CPU.
    ///
    /// - **RISC-V**: SBI HSM `hart_start(hartid, start_addr, opaque)`; the new hart starts
    ///   with `a0` = its hart id and `a1` = `arg`.
    /// - **AArch64**: PSCI `CPU_ON(target_mpidr, entry, context_id)`; the new CPU starts
    ///   with `x0` = `arg`.
    /// - **x86_64**: the INIT-SIPI-SIPI sequence through the local APIC ICR; `target_cpu`
    ///   is the destination APIC id, `entry_point` is `vector << 12`, `arg` is 0.
    ///
    /// Start the target as a new vCPU whose entry is `entry_point`, handing it `arg` with
    /// [`AxVCpu::set_boot_arg`](crate::AxVCpu::set_boot_arg).
    CpuUp {
        /// The architecture's id of the CPU to start (hart id, MPIDR, APIC id).
        target_cpu: u64,
        /// Where the new CPU starts.
        entry_point: GuestPhysAddr,
        /// The argument handed to the new CPU.
        arg: u64,
    },
    /// The guest stopped its own CPU (SBI HSM `hart_stop`, PSCI `CPU_OFF`). Do not run this
    /// vCPU again until it is started anew. x86 has no architectural CPU-off: no x86 backend
    /// returns it.
    CpuDown {
        /// Architecture-specific power state. Always 0 today: neither `hart_stop` nor
        /// `CPU_OFF` carries one.
        state: u64,
    },
    /// The guest asked to power off or reset the whole machine (SBI SRST or the legacy SBI
    /// shutdown, PSCI `SYSTEM_OFF`/`SYSTEM_RESET`, x86: a triple fault or a write to
    /// [`X86_SHUTDOWN_PORT`]; hosted KVM also a `KVM_EXIT_SYSTEM_EVENT`).
    SystemDown,
    /// The backend handled the exit itself. A backend's
    /// [`AxArchVCpu::run`](crate::AxArchVCpu::run) returns it; [`AxVCpu::run`](crate::AxVCpu::run)
    /// never does: it enters the guest again. Kept for the upstream's enum.
    Nothing,
    /// The hardware refused to enter the guest (bad guest state).
    FailEntry {
        /// The hardware's reason code: VMX, the VM-instruction error (`u64::MAX` for
        /// VMfailInvalid) or, for a failed-entry exit, `qualification << 32 | exit reason`;
        /// SVM, the exit code (`VMEXIT_INVALID`); KVM, `hardware_entry_failure_reason`.
        hardware_entry_failure_reason: u64,
    },
    /// The guest sent an inter-processor interrupt the backend does not deliver itself.
    ///
    /// - **x86_64**: a fixed, lowest-priority or NMI write of the local APIC ICR;
    ///   `target_cpu` is the destination APIC id, the shorthand sets `send_to_all` /
    ///   `send_to_self`, `vector` is the ICR vector (2 for an NMI).
    /// - **RISC-V**: SBI IPI `send_ipi(hart_mask, hart_mask_base)`: `target_cpu` is the hart
    ///   *mask*, `target_cpu_aux` its base (`send_to_all` when the base is `-1`), `vector`
    ///   is 1 (supervisor software interrupt).
    /// - **AArch64**: not returned by the AArch64 backend.
    SendIPI {
        /// The target CPU (x86: APIC id), or on RISC-V the hart mask.
        target_cpu: u64,
        /// Architecture-specific extra target information (RISC-V: the hart mask base).
        target_cpu_aux: u64,
        /// Sent to all CPUs.
        send_to_all: bool,
        /// Sent to the sending CPU itself.
        send_to_self: bool,
        /// The interrupt vector.
        vector: u64,
    },
    /// The guest asked other CPUs to fence their address-translation or instruction caches
    /// (RISC-V only: SBI RFENCE `remote_fence_i`, `remote_sfence_vma`,
    /// `remote_sfence_vma_asid`). Targets as in [`SendIPI`](Self::SendIPI): `target_cpu` is
    /// the hart *mask*, `target_cpu_aux` its base, `send_to_all` when the base is `-1`. The
    /// backend has already fenced the calling vCPU's hart if it is a target. The hypervisor
    /// makes every other target run `RiscvVCpu::fence_guest` on its own hart before that
    /// target executes another guest instruction, and only then calls `run()` on the caller
    /// again (the guest's call returns `SBI_SUCCESS` when it resumes). Other architectures
    /// broadcast their TLB and cache maintenance in hardware: none returns this exit.
    RemoteFence {
        /// The hart mask.
        target_cpu: u64,
        /// The hart mask base.
        target_cpu_aux: u64,
        /// Every hart of the guest.
        send_to_all: bool,
    },
    /// The guest signalled it is idle without halting (x86 `pause` exiting, AArch64 `wfe`).
    Idle,
    /// The backend's per-vCPU preemption timer expired.
    PreemptionTimer,
    /// The guest signalled the end of an interrupt the hypervisor injected.
    InterruptEnd {
        /// The interrupt vector.
        vector: u64,
    },
    /// `run()` returned because [`VCpuHandle::kick`](crate::VCpuHandle::kick) asked it to.
    /// The guest is intact and continues where it was on the next `run()`.
    Kicked,
}

impl AxVCpuExitReason {
    /// The variant's name (`"MmioRead"`, `"Halt"`, ...), for logs and exit statistics.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Hypercall { .. } => "Hypercall",
            Self::MmioRead { .. } => "MmioRead",
            Self::MmioWrite { .. } => "MmioWrite",
            Self::SysRegRead { .. } => "SysRegRead",
            Self::SysRegWrite { .. } => "SysRegWrite",
            Self::IoRead { .. } => "IoRead",
            Self::IoWrite { .. } => "IoWrite",
            Self::ExternalInterrupt { .. } => "ExternalInterrupt",
            Self::NestedPageFault { .. } => "NestedPageFault",
            Self::Halt => "Halt",
            Self::CpuUp { .. } => "CpuUp",
            Self::CpuDown { .. } => "CpuDown",
            Self::SystemDown => "SystemDown",
            Self::Nothing => "Nothing",
            Self::FailEntry { .. } => "FailEntry",
            Self::SendIPI { .. } => "SendIPI",
            Self::RemoteFence { .. } => "RemoteFence",
            Self::Idle => "Idle",
            Self::PreemptionTimer => "PreemptionTimer",
            Self::InterruptEnd { .. } => "InterruptEnd",
            Self::Kicked => "Kicked",
        }
    }
}

/// Hosted x86 (KVM) hypercall port: a 4-byte `out` here is a [`AxVCpuExitReason::Hypercall`].
pub const X86_HYPERCALL_PORT: u16 = 0x00f6;
/// x86 port whose write is reported as [`AxVCpuExitReason::SystemDown`] (the ACPI PM1a
/// control port of QEMU's PIIX machine type).
pub const X86_SHUTDOWN_PORT: u16 = 0x0604;
/// RISC-V SBI extension id of the hypercall extension, in the SBI specification's
/// vendor-specific range `0x0900_0000..=0x09FF_FFFF`.
pub const RISCV_HYPERCALL_EXT: u64 = 0x0900_4158;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_round_trip_through_sizes() {
        for w in [
            AccessWidth::Byte,
            AccessWidth::Word,
            AccessWidth::Dword,
            AccessWidth::Qword,
        ] {
            assert_eq!(AccessWidth::from_size(w.size()), Some(w));
            assert_eq!(AccessWidth::try_from(w.size()), Ok(w));
        }
        assert!(AccessWidth::try_from(3).is_err());
        assert_eq!(AccessWidth::from_size(0), None);
    }

    /// One exit of each kind. The exhaustive match makes a new variant a compile error
    /// here until it is added to the list.
    fn one_of_each() -> std::vec::Vec<AxVCpuExitReason> {
        use AxVCpuExitReason as E;
        let addr = GuestPhysAddr::from(0x1000usize);
        let w = AccessWidth::Byte;
        let all = std::vec![
            E::Hypercall {
                nr: 0,
                args: [0; 6]
            },
            E::MmioRead {
                addr,
                width: w,
                reg: None,
                reg_width: w,
                signed_ext: false
            },
            E::MmioWrite {
                addr,
                width: w,
                data: 0
            },
            E::SysRegRead {
                addr: SysRegAddr(0),
                reg: 0
            },
            E::SysRegWrite {
                addr: SysRegAddr(0),
                value: 0
            },
            E::IoRead {
                port: Port(0),
                width: w
            },
            E::IoWrite {
                port: Port(0),
                width: w,
                data: 0
            },
            E::ExternalInterrupt { vector: 0 },
            E::NestedPageFault {
                addr,
                access_flags: AccessFlags::READ
            },
            E::Halt,
            E::CpuUp {
                target_cpu: 0,
                entry_point: addr,
                arg: 0
            },
            E::CpuDown { state: 0 },
            E::SystemDown,
            E::Nothing,
            E::FailEntry {
                hardware_entry_failure_reason: 0
            },
            E::SendIPI {
                target_cpu: 0,
                target_cpu_aux: 0,
                send_to_all: false,
                send_to_self: false,
                vector: 0,
            },
            E::RemoteFence {
                target_cpu: 0,
                target_cpu_aux: 0,
                send_to_all: false,
            },
            E::Idle,
            E::PreemptionTimer,
            E::InterruptEnd { vector: 0 },
            E::Kicked,
        ];
        let mut seen = [false; 21];
        for e in &all {
            let i = match e {
                E::Hypercall { .. } => 0,
                E::MmioRead { .. } => 1,
                E::MmioWrite { .. } => 2,
                E::SysRegRead { .. } => 3,
                E::SysRegWrite { .. } => 4,
                E::IoRead { .. } => 5,
                E::IoWrite { .. } => 6,
                E::ExternalInterrupt { .. } => 7,
                E::NestedPageFault { .. } => 8,
                E::Halt => 9,
                E::CpuUp { .. } => 10,
                E::CpuDown { .. } => 11,
                E::SystemDown => 12,
                E::Nothing => 13,
                E::FailEntry { .. } => 14,
                E::SendIPI { .. } => 15,
                E::Idle => 16,
                E::PreemptionTimer => 17,
                E::InterruptEnd { .. } => 18,
                E::Kicked => 19,
                E::RemoteFence { .. } => 20,
            };
            seen[i] = true;
        }
        assert!(seen.iter().all(|&s| s), "one_of_each misses a variant");
        all
    }

    #[test]
    fn every_exit_has_its_variant_name() {
        for e in one_of_each() {
            let debug = std::format!("{e:?}");
            let variant = debug.split([' ', '{', '(']).next().unwrap_or_default();
            assert_eq!(e.name(), variant, "{debug}");
        }
    }

    #[test]
    fn sign_extension_follows_the_width() {
        assert_eq!(AccessWidth::Byte.sign_extend(0x80), 0xffff_ffff_ffff_ff80);
        assert_eq!(AccessWidth::Byte.sign_extend(0x17f), 0x7f);
        assert_eq!(AccessWidth::Word.sign_extend(0x8000), 0xffff_ffff_ffff_8000);
        assert_eq!(AccessWidth::Dword.sign_extend(0x7fff_ffff), 0x7fff_ffff);
        assert_eq!(AccessWidth::Qword.sign_extend(u64::MAX), u64::MAX);
        assert_eq!(AccessWidth::Word.mask(), 0xffff);
        assert_eq!(AccessWidth::Qword.mask(), u64::MAX);
    }
}
