//! The scenario table: every scenario the suite runs, its id, what its guest does, what the
//! hypervisor must see and what the guest must then see. Each id is written once, in
//! [`Scenario::id`]; everything else (the run order, the report lines, `cargo xtask`'s
//! checks, the N/A lists of the testbeds) names scenarios through this type.

use core::fmt;

use crate::contract::GuestProgram;

/// One conformance scenario. The variants are the table of what the suite proves, in the
/// order [`run_all`](crate::run_all) runs them; each says what the guest does (its
/// [`GuestProgram`], which [`Scenario::program`] names), what the hypervisor must see and
/// do through [`AxVCpu`](axvcpu::AxVCpu), and what the guest must then see.
///
/// A platform that cannot express a scenario's program reports it `N/A` with a reason
/// ([`Platform::not_applicable`](crate::Platform::not_applicable)); it is never silently
/// skipped. RISC-V and AArch64 have no port I/O ([`IoOut`](Self::IoOut),
/// [`IoIn`](Self::IoIn)); x86 has no architectural CPU-off ([`CpuDown`](Self::CpuDown)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    /// `lifecycle` — guest: [`GuestProgram::Done`]. The hypervisor must be able to go
    /// `new` → `set_entry` → `set_ept_root` → `setup` → `bind` → `run` → `unbind`; every
    /// call out of order or repeated is refused with a `BadState` error that gives a reason
    /// and leaves the vCPU in its state and usable; binding a second vCPU to a busy CPU is
    /// `ResourceBusy`; the current-vCPU tracking follows `bind`/`unbind`.
    Lifecycle,
    /// `io-out` (x86) — guest: [`GuestProgram::IoOut`], `out` of a byte, a word and a dword.
    /// The hypervisor must see `IoWrite { port, width, data }` exactly, for each. The guest
    /// continues after each instruction.
    IoOut,
    /// `io-in` (x86) — guest: [`GuestProgram::IoIn`], `in` of a byte, a word and a dword.
    /// The hypervisor must see `IoRead { port, width }` and answers with `complete_read`.
    /// The guest sees the value in `rax` as x86 writes it: `al`/`ax` keep the rest of
    /// `rax`, `eax` zero-extends.
    IoIn,
    /// `mmio-write` — guest: [`GuestProgram::MmioWrite`], stores of 1, 2, 4 and 8 bytes to
    /// unmapped guest-physical memory. The hypervisor must see `MmioWrite { addr, width,
    /// data }` exactly, for each. The guest continues after each instruction.
    MmioWrite,
    /// `mmio-read` — guest: [`GuestProgram::MmioRead`], loads of 1, 2, 4 and 8 bytes,
    /// signed and unsigned, each into a different register. The hypervisor must see
    /// `MmioRead { addr, width, .. }`; a backend that names the destination register names
    /// a different one each time, with the right `signed_ext`; it answers with
    /// `complete_read`. The guest sees the value in the right register, sign-extended where
    /// the load is signed.
    MmioRead,
    /// `hypercall` — guest: [`GuestProgram::Hypercall`], a hypercall with a number and six
    /// arguments. The hypervisor must see `Hypercall { nr, args }` exactly and answers with
    /// `set_return_value`. The guest sees that value in its return register and continues
    /// after the instruction.
    Hypercall,
    /// `halt` — guest: [`GuestProgram::Halt`], `hlt`/`wfi` with interrupts masked. The
    /// hypervisor must see `Halt` with the vCPU `Blocked`. On the next `run` the guest
    /// resumes after the instruction and the vCPU is `Ready` after its next exit.
    Halt,
    /// `system-down` — guest: [`GuestProgram::SystemDown`], asks the platform to power off
    /// (SBI SRST, PSCI `SYSTEM_OFF`, the x86 ACPI shutdown port). The hypervisor must see
    /// `SystemDown`.
    SystemDown,
    /// `nested-page-fault` — guest: [`GuestProgram::NestedPageFault`], a write to a page
    /// the nested page table maps read-only. The hypervisor must see `NestedPageFault {
    /// addr, access_flags }` with the exact address and `WRITE`; it maps the page writable
    /// and calls `nested_page_table_changed`. The write then completes: the data is in host
    /// memory.
    NestedPageFault,
    /// `cpu-up` — guest: [`GuestProgram::CpuUp`], starts a secondary CPU (SBI HSM
    /// `hart_start`, PSCI `CPU_ON`, x86 INIT-SIPI). The hypervisor must see `CpuUp {
    /// target_cpu, entry_point, arg }` and starts vCPU 1 there with `set_boot_arg`. vCPU 1
    /// runs from that entry with the argument in its argument register (x86: none, 0).
    CpuUp,
    /// `cpu-down` (not x86) — guest: [`GuestProgram::CpuDown`], stops its own CPU (SBI HSM
    /// `hart_stop`, PSCI `CPU_OFF`). The hypervisor must see `CpuDown`.
    CpuDown,
    /// `irq-inject` — guest: [`GuestProgram::Irq`], which unmasks interrupts after its
    /// second `HC_READY` and waits in a halt loop. The hypervisor injects
    /// `PlatformInfo::irq_vector` when the guest halts (the vCPU goes from `Blocked` to
    /// `Ready`) and runs it again. The guest's handler takes the vector exactly once (and
    /// nothing else), also over a few more runs after its `HC_DONE`.
    IrqInject,
    /// `irq-queued` — guest: [`GuestProgram::Irq`]. The hypervisor injects
    /// `PlatformInfo::irq_vector` twice before the first `run` (the core's pending set
    /// merges the two). The guest holds it masked through two `HC_READY`s, then takes it
    /// exactly once when it unmasks, and nothing else.
    IrqQueued,
    /// `irq-merge` — guest: [`GuestProgram::Irq`]. The interrupt rule of
    /// [`AxArchVCpu::inject_interrupt`](axvcpu::AxArchVCpu::inject_interrupt), in the
    /// backend: the hypervisor injects `irq_vector` at the guest's first `HC_READY`, so the
    /// next `run` hands it to the backend, which must hold it while the guest keeps
    /// interrupts masked; at the second `HC_READY` it injects `irq_vector` again and
    /// `PlatformInfo::second_irq_vector`, both handed to the backend by the next `run` while
    /// it still holds the first. When the guest unmasks it must take `irq_vector` exactly
    /// once (the second injection merged with the held one) and `second_irq_vector` exactly
    /// once (distinct vectors are all taken), also counting the interrupts it takes over
    /// a few more runs after its `HC_DONE`.
    IrqMerge,
    /// `preempt` — guest: [`GuestProgram::Spin`], spins with interrupts masked. A kick
    /// before `run` makes that `run` return `Kicked`; another CPU kicks the running vCPU and
    /// `run` returns `Kicked` after that one kick (twice). The guest resumes where it was:
    /// both kicks find it at the same program counter.
    Preempt,
    /// `sysreg` — guest: [`GuestProgram::SysReg`], reads a trapped system register or MSR
    /// and writes one. The hypervisor must see `SysRegRead { addr, .. }`, answers with
    /// `complete_read`, then `SysRegWrite { addr, value }` exactly. The guest sees the
    /// answered value.
    SysReg,
    /// `exception` — guest: [`GuestProgram::SysReg`]. At its `SysRegRead` the hypervisor
    /// answers with [`AxVCpu::inject_exception`](axvcpu::AxVCpu::inject_exception)`(13,
    /// Some(0))` (#GP(0)) instead of a value. x86: accepted, the read is no longer owed
    /// (`complete_read` refused), and the guest takes the #GP at its `rdmsr`: the test
    /// guests have no IDT, so it ends in a triple fault, `SystemDown`. Elsewhere: refused as
    /// `Unsupported` (no exception vectors to inject), the read still owed and completed as
    /// in `sysreg`.
    Exception,
    /// `isolation` — guest: [`GuestProgram::Isolation`], reads and writes the pages just
    /// below and just above its RAM. The hypervisor sees only MMIO exits at exactly those
    /// addresses; host memory is never reached.
    Isolation,
    /// `smp` — guest: [`GuestProgram::Smp`] on two vCPUs running at once on two physical
    /// CPUs. Each `run` returns its own vCPU's exits (its id, set in a register before the
    /// first run, in every report), and the current-vCPU tracking is right on each CPU.
    Smp,
    /// `regs` — guest: [`GuestProgram::Regs`], halts. Every general-purpose register and
    /// the PC set before `run` read back the same before and after the halt exit; an
    /// out-of-range register is refused; `set_pc` moves the guest (back to the halt, it
    /// halts again).
    Regs,
    /// `halt-timer` (not x86) — guest: [`GuestProgram::HaltTimer`], arms its own timer at a
    /// deadline it reports, then halts until the deadline passes. After every `Halt` with
    /// the timer armed, [`AxVCpu::wake_deadline`](axvcpu::AxVCpu::wake_deadline) is
    /// exactly that deadline (the hypervisor knows when to run the halted vCPU again);
    /// before the guest arms it and after it disarms it, `None`. x86's guest timers are
    /// the hypervisor's own devices (N/A).
    HaltTimer,
    /// `two-vms` — guest: [`GuestProgram::Signature`] in each of
    /// [`TWO_VMS_COUNT`](crate::TWO_VMS_COUNT) VMs, at the same guest-physical addresses in
    /// each (different host memory), each with its own signature. First their vCPUs take
    /// turns on one physical CPU (bind, a few exits, unbind), then they run at once on two,
    /// taking turns on each. Every value a guest loads from its slot is 0 or its own
    /// signature, and after each turn host memory holds each VM's own signature in its
    /// slot: a sight of another VM's data (a stale translation left by a VM that ran
    /// before, under the same VMID, ASID or VPID) fails the run. The scenario makes the VMs
    /// share 2 such tags ([`axvcpu::tlb_tags::limit_tlb_tags`]; hosted KVM manages its own).
    TwoVms,
    /// `garbage` — guest: random bytes (no contract program). Every `run` ends in a defined
    /// exit consistent with the guest's memory map, or an error with the vCPU `Invalid`; a
    /// guest that never exits is kicked; the host never panics or hangs.
    Garbage,
    /// `chaos` — guest: the platform's chaos runtime
    /// ([`Platform::create_chaos_vm`](crate::Platform::create_chaos_vm)) running seeded
    /// random programs that fault inside the guest (undefined instructions, page faults,
    /// misaligned accesses), toggle interrupt masks and use privileged and system
    /// instructions, firmware calls and hypercalls. Between runs the hypervisor injects
    /// `irq_vector` and `second_irq_vector` at random, answers reads and hypercalls with
    /// random values, and now and then maps the read-only page writable at a fault there.
    /// Every `run` ends in a defined exit consistent with the memory map and the
    /// instruction set, or an error with the vCPU `Invalid`; a guest that never exits is
    /// kicked; the host never panics or hangs. The report line tallies the exits by kind.
    Chaos,
}

impl Scenario {
    /// How many scenarios there are.
    pub const COUNT: usize = Self::Chaos as usize + 1;

    /// Every scenario, in the order [`run_all`](crate::run_all) runs them.
    pub const ALL: [Scenario; Self::COUNT] = [
        Self::Lifecycle,
        Self::IoOut,
        Self::IoIn,
        Self::MmioWrite,
        Self::MmioRead,
        Self::Hypercall,
        Self::Halt,
        Self::SystemDown,
        Self::NestedPageFault,
        Self::CpuUp,
        Self::CpuDown,
        Self::IrqInject,
        Self::IrqQueued,
        Self::IrqMerge,
        Self::Preempt,
        Self::SysReg,
        Self::Exception,
        Self::Isolation,
        Self::Smp,
        Self::Regs,
        Self::HaltTimer,
        Self::TwoVms,
        Self::Garbage,
        Self::Chaos,
    ];

    /// The id the report lines use (`PASS <id>`, `N/A <id>: why`, `FAIL <id>: why`).
    pub const fn id(self) -> &'static str {
        match self {
            Self::Lifecycle => "lifecycle",
            Self::IoOut => "io-out",
            Self::IoIn => "io-in",
            Self::MmioWrite => "mmio-write",
            Self::MmioRead => "mmio-read",
            Self::Hypercall => "hypercall",
            Self::Halt => "halt",
            Self::SystemDown => "system-down",
            Self::NestedPageFault => "nested-page-fault",
            Self::CpuUp => "cpu-up",
            Self::CpuDown => "cpu-down",
            Self::IrqInject => "irq-inject",
            Self::IrqQueued => "irq-queued",
            Self::IrqMerge => "irq-merge",
            Self::Preempt => "preempt",
            Self::SysReg => "sysreg",
            Self::Exception => "exception",
            Self::Isolation => "isolation",
            Self::Smp => "smp",
            Self::Regs => "regs",
            Self::HaltTimer => "halt-timer",
            Self::TwoVms => "two-vms",
            Self::Garbage => "garbage",
            Self::Chaos => "chaos",
        }
    }

    /// The scenario whose [`id`](Self::id) is `id`.
    pub fn from_id(id: &str) -> Option<Scenario> {
        Self::ALL.into_iter().find(|s| s.id() == id)
    }

    /// The guest program the scenario runs; `None` for [`Garbage`](Self::Garbage) and
    /// [`Chaos`](Self::Chaos), which run random code.
    pub const fn program(self) -> Option<GuestProgram> {
        Some(match self {
            Self::Lifecycle => GuestProgram::Done,
            Self::IoOut => GuestProgram::IoOut,
            Self::IoIn => GuestProgram::IoIn,
            Self::MmioWrite => GuestProgram::MmioWrite,
            Self::MmioRead => GuestProgram::MmioRead,
            Self::Hypercall => GuestProgram::Hypercall,
            Self::Halt => GuestProgram::Halt,
            Self::SystemDown => GuestProgram::SystemDown,
            Self::NestedPageFault => GuestProgram::NestedPageFault,
            Self::CpuUp => GuestProgram::CpuUp,
            Self::CpuDown => GuestProgram::CpuDown,
            Self::IrqInject | Self::IrqQueued | Self::IrqMerge => GuestProgram::Irq,
            Self::Preempt => GuestProgram::Spin,
            Self::SysReg | Self::Exception => GuestProgram::SysReg,
            Self::Isolation => GuestProgram::Isolation,
            Self::Smp => GuestProgram::Smp,
            Self::Regs => GuestProgram::Regs,
            Self::HaltTimer => GuestProgram::HaltTimer,
            Self::TwoVms => GuestProgram::Signature,
            Self::Garbage | Self::Chaos => return None,
        })
    }

    /// Whether the scenario needs a second physical CPU (to run a second vCPU, or to kick
    /// the first); with one it is `N/A`.
    pub const fn needs_second_cpu(self) -> bool {
        matches!(
            self,
            Self::Smp | Self::Preempt | Self::TwoVms | Self::Garbage | Self::Chaos
        )
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A scenario equals its [`id`](Scenario::id) (`Scenario::IrqMerge == "irq-merge"`), so a
/// selection written with ids (`run_selected(p, out, |s| s == id)`) reads as before.
impl PartialEq<&str> for Scenario {
    fn eq(&self, id: &&str) -> bool {
        self.id() == *id
    }
}

/// Every scenario id, in the order [`run_all`](crate::run_all) runs them (the ids of
/// [`Scenario::ALL`]).
pub const SCENARIOS: [&str; Scenario::COUNT] = {
    let mut ids = [""; Scenario::COUNT];
    let mut i = 0;
    while i < Scenario::COUNT {
        ids[i] = Scenario::ALL[i].id();
        i += 1;
    }
    ids
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_variant_once_in_declaration_order() {
        // Variants have the default discriminants 0, 1, ...; `Chaos` is the last, so
        // `COUNT` counts them all and this position check leaves none out or twice.
        for (i, s) in Scenario::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i, "{s} is at {i} in ALL");
        }
    }

    #[test]
    fn ids_are_distinct_and_map_back() {
        for s in Scenario::ALL {
            assert_eq!(Scenario::from_id(s.id()), Some(s));
            assert_eq!(SCENARIOS.iter().filter(|id| **id == s.id()).count(), 1);
        }
        assert_eq!(SCENARIOS[Scenario::IrqMerge as usize], "irq-merge");
        assert_eq!(Scenario::from_id("irq"), None);
        assert!(Scenario::IrqMerge == "irq-merge" && Scenario::IrqMerge != "irq-inject");
        assert_eq!(Scenario::from_id(""), None);
    }

    #[test]
    fn only_the_random_scenarios_run_without_a_contract_program() {
        for s in Scenario::ALL {
            assert_eq!(
                s.program().is_none(),
                s == Scenario::Garbage || s == Scenario::Chaos,
                "{s}"
            );
        }
    }
}
