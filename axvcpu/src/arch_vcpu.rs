//! The trait each virtualization backend implements.

use crate::{AxVCpuExitReason, AxVCpuHal, GuestPhysAddr, HostPhysAddr, VCpuResult};

/// Makes a running vCPU leave `run()` from another CPU or thread.
///
/// A kick that arrives while the vCPU is not inside the guest must not be lost: the next
/// guest entry returns [`AxVCpuExitReason::Kicked`] at once. A kick may make `run()`
/// return `Kicked` once more than asked (the core absorbs those), never fewer.
///
/// Bare-metal backends use [`IpiKicker`](crate::IpiKicker), which implements this protocol
/// once; they only say how to interrupt a CPU.
pub trait VCpuKick: Send + Sync + 'static {
    /// Asks the vCPU to leave the guest as soon as possible.
    fn kick(&self);
}

/// One virtual CPU of one architecture. [`AxVCpu`](crate::AxVCpu) wraps it and enforces the
/// call order, so a backend may assume:
///
/// 1. [`new`](Self::new) first; then [`set_entry`](Self::set_entry) and
///    [`set_ept_root`](Self::set_ept_root), each exactly once; then
///    [`setup`](Self::setup), once.
/// 2. [`bind`](Self::bind) on the physical CPU (hosted: the thread) that will run it, then
///    any number of [`run`](Self::run) on that same CPU, then [`unbind`](Self::unbind) there.
/// 3. Register accessors, [`inject_interrupt`](Self::inject_interrupt) and
///    [`complete_read`](Self::complete_read) only after `setup`, never during `run`.
/// 4. `complete_read` exactly once after each `MmioRead`, `IoRead` or `SysRegRead` exit,
///    before the next `run`.
///
/// A backend must not panic on any guest behaviour: every guest action ends in an exit
/// reason or an `Err` describing what happened.
pub trait AxArchVCpu: Sized {
    /// Architecture-specific parameters for [`new`](Self::new).
    type CreateConfig;
    /// Architecture-specific parameters for [`setup`](Self::setup).
    type SetupConfig;
    /// The host services this backend uses.
    type Hal: AxVCpuHal;
    /// The kick mechanism (an IPI, a signal, ...).
    type Kicker: VCpuKick;

    /// Creates vCPU `vcpu_id` of VM `vm_id`.
    fn new(vm_id: usize, vcpu_id: usize, config: Self::CreateConfig) -> VCpuResult<Self>;

    /// Sets the guest-physical address the vCPU starts at.
    fn set_entry(&mut self, entry: GuestPhysAddr) -> VCpuResult;

    /// Sets the host-physical address of the root of the guest's nested page table (EPT,
    /// NPT, `hgatp` root, `VTTBR_EL2` base), built in frames of [`Self::Hal`].
    ///
    /// # Safety
    /// `ept_root` must be the root of a nested page table in this backend's format, built in
    /// frames of [`Self::Hal`] (as `axvcpu-npt` builds them). The table, and every host frame
    /// it maps, must stay allocated, and not be handed to anything the guest must not reach,
    /// for as long as this vCPU exists: the hardware (or the hosted backend) walks the table
    /// and lets the guest read and write the frames it maps.
    unsafe fn set_ept_root(&mut self, ept_root: HostPhysAddr) -> VCpuResult;

    /// Finishes initialisation once entry and nested page table are known.
    fn setup(&mut self, config: Self::SetupConfig) -> VCpuResult;

    /// Runs the guest until it does something the hypervisor must handle.
    ///
    /// Return [`Nothing`](AxVCpuExitReason::Nothing) after an exit you handled yourself
    /// (an SBI call answered inside, a stale TLB entry flushed, ...): the core enters the
    /// guest again after taking kick requests and pending interrupts, and never shows
    /// `Nothing` to the hypervisor. So a backend has no "handled, enter again" loop of its
    /// own.
    fn run(&mut self) -> VCpuResult<AxVCpuExitReason>;

    /// Attaches the vCPU to the calling physical CPU (hosted: the calling thread).
    fn bind(&mut self) -> VCpuResult;

    /// Detaches the vCPU from the calling physical CPU.
    fn unbind(&mut self) -> VCpuResult;

    /// Sets general-purpose register `reg`, numbered as the architecture encodes it in
    /// instructions: x86_64 `0..16` = rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8..r15;
    /// RISC-V `0..32` = x0..x31 (writes to x0 are ignored); AArch64 `0..31` = x0..x30.
    /// An out-of-range `reg` is an `InvalidInput` error.
    fn set_gpr(&mut self, reg: usize, val: usize) -> VCpuResult;

    /// Reads general-purpose register `reg` (numbered as in [`set_gpr`](Self::set_gpr)).
    fn get_gpr(&self, reg: usize) -> VCpuResult<usize>;

    /// The guest's program counter (`rip`, `sepc`/`pc`, `ELR_EL2`).
    fn pc(&self) -> usize;

    /// Moves the guest's program counter.
    fn set_pc(&mut self, pc: usize) -> VCpuResult;

    /// Sets the value a guest sees as the result of its last
    /// [`Hypercall`](AxVCpuExitReason::Hypercall) (the register is documented there).
    fn set_return_value(&mut self, val: usize);

    /// Sets the argument a CPU started by [`CpuUp`](AxVCpuExitReason::CpuUp) receives
    /// (RISC-V `a1`, AArch64 `x0`; x86 has none and ignores it).
    fn set_boot_arg(&mut self, arg: usize) -> VCpuResult;

    /// Completes the last `MmioRead`, `IoRead` or `SysRegRead` exit with `value`: the backend
    /// puts it where the guest's instruction expects it, with that instruction's width and
    /// extension.
    fn complete_read(&mut self, value: u64) -> VCpuResult;

    /// Makes interrupt `vector` pending in the guest, to be taken as soon as the guest can
    /// accept it (held across runs while the guest masks interrupts).
    ///
    /// The rule on every architecture: a pending bit per vector. A `vector` already pending
    /// here (handed over before and not yet taken by the guest) merges with it: the guest
    /// takes it once. Distinct vectors are all taken. "Taken" is the architecture's: x86,
    /// delivered through the IDT; AArch64, acknowledged (`GICV_IAR`, or the backend's
    /// acknowledge hypercall); RISC-V, the level `hvip` line lowered (the guest clears
    /// `sip.SSIP`, a new timer deadline, or the hypervisor's
    /// `clear_external_interrupt`).
    fn inject_interrupt(&mut self, vector: usize) -> VCpuResult;

    /// Makes the guest take exception `vector` (0..32) at its next entry, before any
    /// interrupt, with `error_code` for the exceptions that push one (x86 #DF, #TS, #NP,
    /// #SS, #GP, #PF, #AC, #CP). What a hypervisor answers an instruction it refuses with:
    /// #GP(0) for an MSR it does not give, #UD for an instruction it does not emulate.
    ///
    /// After a read exit (`MmioRead`, `IoRead`, `SysRegRead`) it replaces
    /// `complete_read`: the instruction faults instead of completing (its pending read is
    /// dropped, the program counter stays on it, as the architecture does for a fault).
    ///
    /// Implemented by the x86 backends (SVM `EVENTINJ`, VMX VM-entry interruption
    /// information, KVM `KVM_SET_VCPU_EVENTS`). The default, for the architectures without
    /// such a thing, is `Unsupported`: RISC-V and AArch64 have no exception vector with an
    /// error code a hypervisor injects (their hypervisors forward a trap by writing the
    /// guest's cause/syndrome registers, which the backends do themselves).
    fn inject_exception(&mut self, vector: u8, error_code: Option<u32>) -> VCpuResult {
        let _ = (vector, error_code);
        Err(crate::VCpuError::unsupported(
            "exception injection: this architecture has no exception vectors with error codes to inject",
        ))
    }

    /// Whether the backend holds an injected interrupt the guest has not taken yet. After a
    /// [`Halt`](AxVCpuExitReason::Halt) the core reports the vCPU `Ready` rather than
    /// `Blocked` when this is true, so a hypervisor never sleeps on a wake-up it already has.
    fn has_pending_interrupt(&self) -> bool;

    /// When the guest's own timer fires, if the backend runs that timer and the guest has
    /// armed it: the deadline in the host's counter (AArch64: `CNTPCT_EL0`, the guest's
    /// `CNTV_CVAL_EL0` plus `CNTVOFF_EL2`, with the timer enabled and unmasked; RISC-V: the
    /// `time` CSR, the guest's `vstimecmp` or SBI `set_timer` deadline plus `htimedelta`).
    /// A hypervisor that holds a halted vCPU ([`Halt`](AxVCpuExitReason::Halt), `Blocked`)
    /// runs it again by then, so the guest does not sleep past its deadline; a deadline
    /// already passed means "at once". `None` when no timer is armed, and on backends whose
    /// guest timers are the hypervisor's own devices (x86: the local APIC or PIT the
    /// hypervisor emulates, which already knows their deadlines; hosted KVM runs them
    /// itself). The default is `None`.
    fn wake_deadline(&self) -> Option<u64> {
        None
    }

    /// Checks that `vector` is an interrupt this architecture can inject, before it is
    /// made pending. The default accepts any vector below
    /// [`MAX_VECTORS`](crate::MAX_VECTORS) (the core refuses larger ones itself).
    fn check_interrupt_vector(vector: usize) -> VCpuResult {
        let _ = vector;
        Ok(())
    }

    /// A handle that kicks this vCPU out of `run()` from anywhere.
    fn kicker(&self) -> Self::Kicker;

    /// Tells the backend the hypervisor changed the nested page table (new mappings, changed
    /// permissions), so it flushes what it cached of it. The default does nothing.
    fn nested_page_table_changed(&mut self) -> VCpuResult {
        Ok(())
    }
}
