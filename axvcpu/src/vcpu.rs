//! [`AxVCpu`]: an architecture vCPU wrapped in a checked lifecycle.

use alloc::sync::Arc;
use core::marker::PhantomData;
use core::sync::atomic::Ordering;

use crate::current::{self, VCpuId};
use crate::handle::Shared;
use crate::{
    AxArchVCpu, AxVCpuExitReason, AxVCpuHal, GuestPhysAddr, HostPhysAddr, VCpuError, VCpuHandle,
    VCpuResult, VCpuState,
};

/// A virtual CPU: an architecture backend `A` driven through the lifecycle of
/// [`VCpuState`]. Every call made in the wrong state returns a `BadState` error that says
/// what was expected, and leaves the vCPU as it was.
///
/// Configure it either at run time (`new`, `set_entry`, `set_ept_root`, `setup`), or with
/// [`AxVCpu::builder`], which makes a wrong order a compile error.
pub struct AxVCpu<A: AxArchVCpu> {
    arch: A,
    shared: Arc<Shared<A::Kicker>>,
    entry: Option<GuestPhysAddr>,
    ept_root: Option<HostPhysAddr>,
    bound_cpu: Option<usize>,
    /// What the last exit left for the hypervisor to answer.
    awaiting: Awaiting,
    /// The guest asked to power off ([`SystemDown`](AxVCpuExitReason::SystemDown)).
    powered_off: bool,
    /// The guest has been entered since `setup` or its last `CpuDown`.
    started: bool,
}

/// What the last exit left for the hypervisor to answer before the next `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    /// Nothing to answer.
    Nothing,
    /// A `MmioRead`, `IoRead` or `SysRegRead`: `complete_read` is owed.
    Read,
    /// A `Hypercall`: `set_return_value` may answer it.
    HypercallResult,
}

impl Awaiting {
    fn after(exit: &AxVCpuExitReason) -> Self {
        match exit {
            AxVCpuExitReason::MmioRead { .. }
            | AxVCpuExitReason::IoRead { .. }
            | AxVCpuExitReason::SysRegRead { .. } => Self::Read,
            AxVCpuExitReason::Hypercall { .. } => Self::HypercallResult,
            _ => Self::Nothing,
        }
    }
}

impl<A: AxArchVCpu> core::fmt::Debug for AxVCpu<A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AxVCpu")
            .field("id", &self.shared.id)
            .field("state", &self.state())
            .field("bound_cpu", &self.bound_cpu)
            .finish_non_exhaustive()
    }
}

impl<A: AxArchVCpu> AxVCpu<A> {
    /// Creates vCPU `vcpu_id` of VM `vm_id` in state `Created`.
    pub fn new(vm_id: usize, vcpu_id: usize, config: A::CreateConfig) -> VCpuResult<Self> {
        let id = VCpuId::new(vm_id, vcpu_id)?;
        let arch = A::new(vm_id, vcpu_id, config)?;
        let shared = Arc::new(Shared::new(id, arch.kicker()));
        Ok(Self {
            arch,
            shared,
            entry: None,
            ept_root: None,
            bound_cpu: None,
            awaiting: Awaiting::Nothing,
            powered_off: false,
            started: false,
        })
    }

    /// Starts a compile-time-checked configuration: entry and nested page table root, each
    /// exactly once, then `setup`.
    /// The crate-level example shows it in use.
    pub fn builder(
        vm_id: usize,
        vcpu_id: usize,
        config: A::CreateConfig,
    ) -> VCpuResult<VCpuBuilder<A, Unset, Unset>> {
        Ok(VCpuBuilder {
            vcpu: Self::new(vm_id, vcpu_id, config)?,
            entry: Unset,
            ept_root: Unset,
        })
    }

    /// The vCPU's ids.
    pub fn id(&self) -> VCpuId {
        self.shared.id
    }

    /// The current state.
    pub fn state(&self) -> VCpuState {
        self.shared.state.get()
    }

    /// The physical CPU the vCPU is bound to, if any.
    pub fn bound_cpu(&self) -> Option<usize> {
        self.bound_cpu
    }

    /// A handle for other CPUs and threads: inject interrupts, kick, read the state.
    pub fn handle(&self) -> VCpuHandle<A> {
        VCpuHandle {
            shared: self.shared.clone(),
            _arch: PhantomData,
        }
    }

    /// When the guest's own timer fires, in the host's counter, if the backend runs it and
    /// the guest armed it: a halted (`Blocked`) vCPU must run again by then. See
    /// [`AxArchVCpu::wake_deadline`] for each architecture.
    pub fn wake_deadline(&self) -> Option<u64> {
        self.arch.wake_deadline()
    }

    /// The backend, for architecture-specific queries.
    pub fn arch(&self) -> &A {
        &self.arch
    }

    /// The backend, for architecture-specific configuration. Refused once the vCPU is
    /// `Invalid`.
    pub fn arch_mut(&mut self) -> VCpuResult<&mut A> {
        self.expect_usable()?;
        Ok(&mut self.arch)
    }

    fn expect_usable(&self) -> VCpuResult {
        match self.state() {
            VCpuState::Invalid => Err(VCpuError::bad_state(
                "the vCPU is Invalid after a backend failure; drop it",
            )),
            _ => Ok(()),
        }
    }

    /// Configuration calls need state `Created`; `refusal` says which call was refused.
    fn expect_created(&self, refusal: &'static str) -> VCpuResult {
        self.expect_usable()?;
        if self.state() != VCpuState::Created {
            return Err(VCpuError::bad_state(refusal));
        }
        Ok(())
    }

    /// Registers, reads and interrupts need a set-up vCPU.
    fn expect_set_up(&self) -> VCpuResult {
        self.expect_usable()?;
        if self.state() == VCpuState::Created {
            return Err(VCpuError::bad_state(
                "register and interrupt access needs setup() first (state Created)",
            ));
        }
        Ok(())
    }

    /// Sets the guest entry point. Once, before `setup`.
    pub fn set_entry(&mut self, entry: GuestPhysAddr) -> VCpuResult {
        self.expect_created("set_entry: only allowed before setup (state Created)")?;
        if self.entry.is_some() {
            return Err(VCpuError::bad_state(
                "set_entry: the entry point is already set",
            ));
        }
        self.arch.set_entry(entry)?;
        self.entry = Some(entry);
        Ok(())
    }

    /// Sets the root of the nested page table. Once, before `setup`.
    ///
    /// # Safety
    /// As [`AxArchVCpu::set_ept_root`]: a live table in the backend's format, which with the
    /// memory it maps outlives this vCPU.
    pub unsafe fn set_ept_root(&mut self, ept_root: HostPhysAddr) -> VCpuResult {
        self.expect_created("set_ept_root: only allowed before setup (state Created)")?;
        if self.ept_root.is_some() {
            return Err(VCpuError::bad_state(
                "set_ept_root: the nested page table root is already set",
            ));
        }
        // SAFETY: the caller upholds `set_ept_root`'s contract, which is the backend's.
        unsafe { self.arch.set_ept_root(ept_root) }?;
        self.ept_root = Some(ept_root);
        Ok(())
    }

    /// Finishes configuration: `Created` → `Free`. Needs entry and nested page table root.
    /// A backend failure leaves the vCPU `Invalid`.
    pub fn setup(&mut self, config: A::SetupConfig) -> VCpuResult {
        self.expect_created("setup: the vCPU is already set up")?;
        if self.entry.is_none() {
            return Err(VCpuError::bad_state(
                "setup: set_entry() has not been called",
            ));
        }
        if self.ept_root.is_none() {
            return Err(VCpuError::bad_state(
                "setup: set_ept_root() has not been called",
            ));
        }
        match self.arch.setup(config) {
            Ok(()) => {
                self.shared.state.set(VCpuState::Free);
                Ok(())
            }
            Err(e) => {
                self.shared.state.set(VCpuState::Invalid);
                Err(e)
            }
        }
    }

    /// Binds the vCPU to the calling physical CPU: `Free` → `Ready`. Refused (`ResourceBusy`)
    /// if another vCPU is bound to this CPU, and (`InvalidInput`) if the CPU id is not below
    /// [`MAX_CPUS`](crate::MAX_CPUS). A backend failure leaves the vCPU `Free` and the CPU
    /// unclaimed.
    pub fn bind(&mut self) -> VCpuResult {
        self.expect_usable()?;
        match self.state() {
            VCpuState::Free => {}
            VCpuState::Created => {
                return Err(VCpuError::bad_state("bind: setup() has not been called"))
            }
            _ => return Err(VCpuError::bad_state("bind: the vCPU is already bound")),
        }
        let cpu = <A::Hal as AxVCpuHal>::current_cpu_id();
        current::claim(cpu, self.id())?;
        if let Err(e) = self.arch.bind() {
            current::release(cpu, self.id());
            return Err(e);
        }
        self.bound_cpu = Some(cpu);
        self.shared.state.set(VCpuState::Ready);
        Ok(())
    }

    /// The seed's name of [`bind`](Self::bind).
    #[deprecated(note = "the seed's name; call `bind`")]
    pub fn bind_to_cpu(&mut self) -> VCpuResult {
        self.bind()
    }

    /// The seed's name of [`unbind`](Self::unbind).
    #[deprecated(note = "the seed's name; call `unbind`")]
    pub fn unbind_from_cpu(&mut self) -> VCpuResult {
        self.unbind()
    }

    /// Checks the caller is on the CPU the vCPU is bound to and returns that CPU.
    fn expect_on_bound_cpu(&self, not_bound: &'static str) -> VCpuResult<usize> {
        let here = <A::Hal as AxVCpuHal>::current_cpu_id();
        match self.bound_cpu {
            Some(cpu) if cpu == here => Ok(cpu),
            Some(_) => Err(VCpuError::bad_state(
                "called on a CPU other than the one the vCPU is bound to",
            )
            .with_value(here as u64)),
            None => Err(VCpuError::bad_state(not_bound)),
        }
    }

    /// Unbinds the vCPU from the calling CPU, which must be the one it is bound to:
    /// `Ready`/`Blocked` → `Free`. A backend failure leaves the vCPU `Invalid`; the CPU is
    /// freed either way.
    pub fn unbind(&mut self) -> VCpuResult {
        self.expect_usable()?;
        let cpu = self.expect_on_bound_cpu("unbind: the vCPU is not bound")?;
        let result = self.arch.unbind();
        current::release(cpu, self.id());
        self.bound_cpu = None;
        match result {
            Ok(()) => self.shared.state.set(VCpuState::Free),
            Err(_) => self.shared.state.set(VCpuState::Invalid),
        }
        result
    }

    /// Runs the guest until an exit the hypervisor must see: `Ready`/`Blocked` → `Running` →
    /// `Ready` (or `Blocked` after [`Halt`](AxVCpuExitReason::Halt) with no interrupt
    /// pending). Pending interrupts are handed to the backend first. A backend error leaves
    /// the vCPU `Invalid`.
    ///
    /// Never returns [`Nothing`](AxVCpuExitReason::Nothing): an exit the backend handled
    /// itself enters the guest again (after taking kick requests and pending interrupts),
    /// and so does a kick nobody asked for.
    ///
    /// Refused (`BadState`) when the vCPU is not bound to the calling CPU, when the last
    /// exit was a read not yet answered with [`complete_read`](Self::complete_read), and
    /// after [`SystemDown`](AxVCpuExitReason::SystemDown): a guest that powered off is not
    /// resumed (create new vCPUs to boot it again).
    // Inlined so the exit reason is not copied through out-of-line calls on the hot path
    // (the RISC-V bench measured 696 vs 357 hypervisor instructions per hypercall).
    #[inline]
    pub fn run(&mut self) -> VCpuResult<AxVCpuExitReason> {
        self.expect_usable()?;
        if !matches!(self.state(), VCpuState::Ready | VCpuState::Blocked) {
            return Err(VCpuError::bad_state(
                "run: the vCPU is not bound (call bind() first)",
            ));
        }
        self.expect_on_bound_cpu("run: the vCPU is not bound (call bind() first)")?;
        if self.awaiting == Awaiting::Read {
            return Err(VCpuError::bad_state(
                "run: the last MmioRead/IoRead/SysRegRead exit has not been answered with complete_read()",
            ));
        }
        if self.powered_off {
            return Err(VCpuError::bad_state(
                "run: the guest powered off (SystemDown); create a new vCPU to start it again",
            ));
        }
        self.shared.publish_state(VCpuState::Running);
        self.awaiting = Awaiting::Nothing;
        self.started = true;
        let exit = self.run_until_exit();
        let shared = &self.shared;
        match &exit {
            Ok(AxVCpuExitReason::Halt) => {
                shared.publish_state(VCpuState::Blocked);
                if shared.has_pending() || self.arch.has_pending_interrupt() {
                    shared
                        .state
                        .transition(VCpuState::Blocked, VCpuState::Ready);
                }
            }
            Ok(reason) => {
                self.awaiting = Awaiting::after(reason);
                self.powered_off = matches!(reason, AxVCpuExitReason::SystemDown);
                // A CPU that stopped itself may be started again, with a new argument.
                self.started = !matches!(reason, AxVCpuExitReason::CpuDown { .. });
                shared.state.set(VCpuState::Ready);
            }
            Err(_) => shared.state.set(VCpuState::Invalid),
        }
        exit
    }

    /// Enters the guest until an exit the hypervisor must see: the one place the rule "an
    /// exit the backend handled itself (`Nothing`), or a kick nobody asked for, enters
    /// again" lives.
    #[inline]
    fn run_until_exit(&mut self) -> VCpuResult<AxVCpuExitReason> {
        loop {
            if self.shared.exit_requested.swap(false, Ordering::AcqRel) {
                return Ok(AxVCpuExitReason::Kicked);
            }
            let arch = &mut self.arch;
            self.shared.drain(|v| arch.inject_interrupt(v))?;
            match self.arch.run()? {
                AxVCpuExitReason::Kicked | AxVCpuExitReason::Nothing => continue,
                reason => return Ok(reason),
            }
        }
    }

    /// Answers the last `MmioRead`, `IoRead` or `SysRegRead` exit with `value` (see each
    /// variant for where the value goes). Refused when no read is waiting.
    pub fn complete_read(&mut self, value: u64) -> VCpuResult {
        self.expect_set_up()?;
        if self.awaiting != Awaiting::Read {
            return Err(VCpuError::bad_state(
                "complete_read: the last exit was not an MmioRead, IoRead or SysRegRead",
            ));
        }
        self.arch.complete_read(value)?;
        self.awaiting = Awaiting::Nothing;
        Ok(())
    }

    /// Sets general-purpose register `reg` (numbering: [`AxArchVCpu::set_gpr`]).
    pub fn set_gpr(&mut self, reg: usize, val: usize) -> VCpuResult {
        self.expect_set_up()?;
        self.arch.set_gpr(reg, val)
    }

    /// Reads general-purpose register `reg`.
    pub fn get_gpr(&self, reg: usize) -> VCpuResult<usize> {
        self.expect_set_up()?;
        self.arch.get_gpr(reg)
    }

    /// The guest program counter.
    pub fn pc(&self) -> VCpuResult<usize> {
        self.expect_set_up()?;
        Ok(self.arch.pc())
    }

    /// Moves the guest program counter. Refused (`BadState`) while a read exit waits for
    /// [`complete_read`](Self::complete_read): completing it moves the program counter past
    /// the reading instruction.
    pub fn set_pc(&mut self, pc: usize) -> VCpuResult {
        self.expect_set_up()?;
        if self.awaiting == Awaiting::Read {
            return Err(VCpuError::bad_state(
                "set_pc: the last read exit has not been answered with complete_read()",
            ));
        }
        self.arch.set_pc(pc)
    }

    /// Sets the result of the last hypercall (register: see
    /// [`Hypercall`](AxVCpuExitReason::Hypercall)). Allowed only between a `Hypercall` exit
    /// and the next `run` (any number of times: the last value wins); otherwise refused
    /// (`BadState`), as there is no hypercall to answer.
    pub fn set_return_value(&mut self, val: usize) -> VCpuResult {
        self.expect_set_up()?;
        if self.awaiting != Awaiting::HypercallResult {
            return Err(VCpuError::bad_state(
                "set_return_value: the last exit was not a Hypercall",
            ));
        }
        self.arch.set_return_value(val);
        Ok(())
    }

    /// Sets the argument a secondary CPU started by [`CpuUp`](AxVCpuExitReason::CpuUp)
    /// receives. Only before the CPU starts: between `setup` (or a
    /// [`CpuDown`](AxVCpuExitReason::CpuDown) exit, after which it may be started again) and
    /// the next `run`; refused (`BadState`) otherwise, as the argument register belongs to
    /// the running guest.
    pub fn set_boot_arg(&mut self, arg: usize) -> VCpuResult {
        self.expect_set_up()?;
        if self.started {
            return Err(VCpuError::bad_state(
                "set_boot_arg: the guest has already run; the boot argument is for its first entry",
            ));
        }
        self.arch.set_boot_arg(arg)
    }

    /// Queues interrupt `vector` (see [`VCpuHandle::inject_interrupt`]). Unlike the handle's,
    /// refused (`BadState`) before `setup` and once the vCPU is `Invalid`.
    pub fn inject_interrupt(&self, vector: usize) -> VCpuResult {
        self.expect_set_up()?;
        crate::handle::inject::<A>(&self.shared, vector)
    }

    /// Makes the guest take exception `vector` with `error_code` at its next entry (see
    /// [`AxArchVCpu::inject_exception`]). After a read exit it replaces `complete_read`:
    /// the reading instruction faults instead, and the read is no longer owed. Refused
    /// (`BadState`) before `setup`; `Unsupported` on architectures without such exceptions.
    pub fn inject_exception(&mut self, vector: u8, error_code: Option<u32>) -> VCpuResult {
        self.expect_set_up()?;
        self.arch.inject_exception(vector, error_code)?;
        if self.awaiting == Awaiting::Read {
            self.awaiting = Awaiting::Nothing;
        }
        Ok(())
    }

    /// Tells the backend the nested page table changed.
    pub fn nested_page_table_changed(&mut self) -> VCpuResult {
        self.expect_set_up()?;
        self.arch.nested_page_table_changed()
    }
}

/// Dropping a bound vCPU unbinds it and frees its CPU. The backend's `unbind` runs only
/// when the drop happens on the CPU the vCPU is bound to: elsewhere it would save and reset
/// the wrong CPU's virtualization registers (those of whatever vCPU runs there), so it is
/// skipped, with an error logged, and that CPU keeps this vCPU's hardware context until
/// the next `bind` there replaces it. Either way the CPU's current-vCPU slot is freed.
impl<A: AxArchVCpu> Drop for AxVCpu<A> {
    fn drop(&mut self) {
        if let Some(cpu) = self.bound_cpu.take() {
            let here = <A::Hal as AxVCpuHal>::current_cpu_id();
            if here != cpu {
                log::error!(
                    "vCPU {:?}: dropped on CPU {here} while bound to CPU {cpu}; backend unbind skipped",
                    self.id()
                );
            } else if let Err(e) = self.arch.unbind() {
                log::warn!("vCPU {:?}: unbind on drop: {e}", self.id());
            }
            current::release(cpu, self.id());
        }
    }
}

/// A configuration step not yet taken (typestate of [`VCpuBuilder`]).
#[derive(Debug)]
pub struct Unset;
/// A configuration step taken, holding its value (typestate of [`VCpuBuilder`]).
#[derive(Debug)]
pub struct Set<T>(T);

/// Configures a new vCPU in an order the compiler checks: [`entry`](Self::entry) and
/// [`ept_root`](Self::ept_root) once each, in either order, then [`setup`](Self::setup).
/// The right order compiles:
///
/// ```
/// # use axvcpu::*;
/// # fn f<A: AxArchVCpu>(b: VCpuBuilder<A, Unset, Unset>, c: A::SetupConfig) -> VCpuResult {
/// let entry = GuestPhysAddr::from(0x1000usize);
/// // SAFETY: a doc example that never runs the vCPU; a real root must outlive it.
/// let b = unsafe { b.ept_root(HostPhysAddr::from(0x8000usize)) };
/// let vcpu = b.entry(entry).setup(c)?;
/// # Ok(()) }
/// ```
///
/// Calling either twice, or `setup` too early, does not:
///
/// ```compile_fail
/// # use axvcpu::*;
/// # fn f<A: AxArchVCpu>(b: VCpuBuilder<A, Unset, Unset>) {
/// let entry = GuestPhysAddr::from(0x1000usize);
/// let b = b.entry(entry).entry(entry); // entry twice
/// # }
/// ```
///
/// ```compile_fail
/// # use axvcpu::*;
/// # fn f<A: AxArchVCpu>(b: VCpuBuilder<A, Unset, Unset>, c: A::SetupConfig) -> VCpuResult {
/// let vcpu = b.entry(GuestPhysAddr::from(0x1000usize)).setup(c)?; // no nested page table root
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct VCpuBuilder<A: AxArchVCpu, E, R> {
    vcpu: AxVCpu<A>,
    entry: E,
    ept_root: R,
}

impl<A: AxArchVCpu, R> VCpuBuilder<A, Unset, R> {
    /// Sets the guest entry point.
    pub fn entry(self, entry: GuestPhysAddr) -> VCpuBuilder<A, Set<GuestPhysAddr>, R> {
        VCpuBuilder {
            vcpu: self.vcpu,
            entry: Set(entry),
            ept_root: self.ept_root,
        }
    }
}

impl<A: AxArchVCpu, E> VCpuBuilder<A, E, Unset> {
    /// Sets the root of the nested page table.
    ///
    /// # Safety
    /// As [`AxArchVCpu::set_ept_root`]: a live table in the backend's format, which with the
    /// memory it maps outlives the vCPU.
    pub unsafe fn ept_root(self, root: HostPhysAddr) -> VCpuBuilder<A, E, Set<HostPhysAddr>> {
        VCpuBuilder {
            vcpu: self.vcpu,
            entry: self.entry,
            ept_root: Set(root),
        }
    }
}

impl<A: AxArchVCpu> VCpuBuilder<A, Set<GuestPhysAddr>, Set<HostPhysAddr>> {
    /// Hands entry and root to the backend and sets the vCPU up; it is then `Free`.
    pub fn setup(self, config: A::SetupConfig) -> VCpuResult<AxVCpu<A>> {
        let mut vcpu = self.vcpu;
        vcpu.set_entry(self.entry.0)?;
        // SAFETY: `ept_root` (an unsafe fn) took this root under the same contract.
        unsafe { vcpu.set_ept_root(self.ept_root.0) }?;
        vcpu.setup(config)?;
        Ok(vcpu)
    }
}
