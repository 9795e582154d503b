//! `bind` and `unbind`: a vCPU's VMCS on the CPU it is bound to. `bind` loads it (clearing
//! and filling it the first time, with the controls that CPU's capabilities give) and
//! writes that CPU's host state; `unbind` clears it (`vmclear`), so it can move.

use axvcpu::{AxVCpuHal, VCpuError, VCpuResult};

use super::{VmcsState, VmxVCpu};
use crate::hw;

impl<H: AxVCpuHal> VmxVCpu<H> {
    /// `bind`: makes the VMCS current on this CPU (filling it the first time, from the
    /// controls this CPU's capabilities give) and writes this CPU's host state into it.
    pub(super) fn load(&mut self) -> VCpuResult {
        let cpu = H::current_cpu_id();
        let (caps, controls) = crate::percpu::probe()?;
        if matches!(self.start, Some(super::Start::RealMode(_))) && !controls.unrestricted_guest {
            return Err(VCpuError::unsupported(
                "a real-mode start (GuestBoot::RealMode) needs VMX's unrestricted guest, which this CPU lacks",
            ));
        }
        let fail =
            |what| move |valid: bool| VCpuError::bad_state(what).with_value(u64::from(valid));
        match self.state {
            VmcsState::Active(c) if c != cpu => {
                return Err(VCpuError::bad_state(
                    "the VMCS is still active on another CPU (value: that CPU)",
                )
                .with_value(c as u64))
            }
            VmcsState::Active(_) => {}
            VmcsState::Fresh => {
                let va = H::phys_to_virt(self.vmcs).as_usize() as *mut u32;
                // SAFETY: this vCPU's VMCS frame, not yet handed to the CPU: its first 4
                // bytes are the revision identifier. VMX is on here (`bind` runs after
                // `hardware_enable` on this CPU); the frame is the VMCS's alone.
                unsafe {
                    va.write_volatile(caps.revision());
                    hw::vmclear(self.vmcs).map_err(fail("vmclear of a new VMCS failed"))?;
                    hw::vmptrld(self.vmcs).map_err(fail("vmptrld of a new VMCS failed"))?;
                }
                self.state = VmcsState::Active(cpu);
                self.init_vmcs(controls)?;
            }
            VmcsState::Clear => {
                // SAFETY: the VMCS was cleared (`unbind`), so it is active nowhere.
                unsafe { hw::vmptrld(self.vmcs) }.map_err(fail("vmptrld failed"))?;
            }
        }
        self.state = VmcsState::Active(cpu);
        // SAFETY: the VMCS is current on this CPU, with VMX on.
        unsafe { crate::switch::write_host_state(self.vmcs()) }?;
        // Translations tagged with this VPID/EPTP may be stale on this CPU.
        self.flush_tlb = true;
        Ok(())
    }

    /// `unbind`: `vmclear`, so the VMCS may be loaded on another CPU (and launched again).
    pub(super) fn clear(&mut self) -> VCpuResult {
        if let VmcsState::Active(_) = self.state {
            // SAFETY: the VMCS is active on this CPU (`unbind` runs where `bind` did), VMX
            // is on; clearing it writes it back to its frame.
            unsafe { hw::vmclear(self.vmcs) }.map_err(|valid| {
                VCpuError::bad_state("vmclear failed").with_value(u64::from(valid))
            })?;
            self.state = VmcsState::Clear;
            self.launched = false;
        }
        Ok(())
    }
}
