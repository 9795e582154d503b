//! Per-physical-CPU virtualization state: turning the hardware's virtualization on and off.

use crate::{VCpuError, VCpuResult};

/// What a backend does on each physical CPU before any vCPU runs there.
pub trait AxArchPerCpu: Sized {
    /// Creates the (still disabled) state for physical CPU `cpu_id`.
    fn new(cpu_id: usize) -> VCpuResult<Self>;

    /// Whether virtualization is currently enabled on this CPU.
    fn is_enabled(&self) -> bool;

    /// Enables virtualization on this CPU (VMXON, EFER.SVME, HS-mode delegation, EL2 traps).
    /// Must be called on the CPU this state belongs to.
    fn hardware_enable(&mut self) -> VCpuResult;

    /// Disables virtualization on this CPU, undoing [`hardware_enable`](Self::hardware_enable).
    fn hardware_disable(&mut self) -> VCpuResult;

    /// The number of levels of the guest nested page table this CPU supports (4 by default).
    fn max_guest_page_table_levels(&self) -> usize {
        4
    }
}

/// The virtualization state of one physical CPU. Enabling twice or disabling while disabled
/// is an error; dropping it disables virtualization if it is still enabled.
#[derive(Debug)]
pub struct AxPerCpu<A: AxArchPerCpu> {
    cpu_id: usize,
    arch: A,
}

impl<A: AxArchPerCpu> AxPerCpu<A> {
    /// Creates the state of physical CPU `cpu_id`, disabled.
    pub fn new(cpu_id: usize) -> VCpuResult<Self> {
        Ok(Self {
            cpu_id,
            arch: A::new(cpu_id)?,
        })
    }

    /// The physical CPU this state belongs to.
    pub fn cpu_id(&self) -> usize {
        self.cpu_id
    }

    /// Whether virtualization is enabled on this CPU.
    pub fn is_enabled(&self) -> bool {
        self.arch.is_enabled()
    }

    /// Enables virtualization on this CPU.
    pub fn hardware_enable(&mut self) -> VCpuResult {
        if self.arch.is_enabled() {
            return Err(VCpuError::bad_state(
                "hardware_enable: virtualization is already enabled on this CPU",
            ));
        }
        self.arch.hardware_enable()
    }

    /// Disables virtualization on this CPU.
    pub fn hardware_disable(&mut self) -> VCpuResult {
        if !self.arch.is_enabled() {
            return Err(VCpuError::bad_state(
                "hardware_disable: virtualization is not enabled on this CPU",
            ));
        }
        self.arch.hardware_disable()
    }

    /// The backend's own per-CPU state.
    pub fn arch(&self) -> &A {
        &self.arch
    }

    /// The number of nested page table levels this CPU supports.
    pub fn max_guest_page_table_levels(&self) -> usize {
        self.arch.max_guest_page_table_levels()
    }
}

impl<A: AxArchPerCpu> Drop for AxPerCpu<A> {
    fn drop(&mut self) {
        if self.arch.is_enabled() {
            if let Err(e) = self.arch.hardware_disable() {
                log::error!("CPU {}: disabling virtualization on drop: {e}", self.cpu_id);
            }
        }
    }
}
