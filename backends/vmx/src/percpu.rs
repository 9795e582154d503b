//! [`VmxPerCpu`]: VMX operation on one physical CPU (`CR4.VMXE`, the VMXON region).

use core::marker::PhantomData;

use axvcpu::{AxArchPerCpu, AxErrorKind, AxVCpuHal, HostPhysAddr, VCpuError, VCpuResult};

use crate::controls::{msr, Controls, VmxCaps, CR4_VMXE};
use crate::hw::{self, FEATURE_CONTROL_LOCK, FEATURE_CONTROL_VMXON};

/// VMX operation on one physical CPU.
///
/// `hardware_enable` (on that CPU: the HAL's `current_cpu_id` must be the `cpu_id` given to
/// `new`) checks CPUID for VMX, `IA32_FEATURE_CONTROL` (setting and locking it if the
/// firmware left it unlocked), the capability MSRs (the controls the backend needs, EPT and
/// VPID: [`Controls::compute`]) and CR0/CR4 against the bits VMX
/// fixes; then sets `CR4.VMXE` and runs `vmxon` with a VMXON region (one frame of the HAL).
/// Each failure is an `Err` naming what is missing. `hardware_disable` runs `vmxoff`,
/// clears `CR4.VMXE` (if it was clear before) and frees the region; unbind every vCPU
/// bound to this CPU first (their VMCSs must be cleared before `vmxoff`).
#[derive(Debug)]
pub struct VmxPerCpu<H: AxVCpuHal> {
    cpu_id: usize,
    vmxon_region: Option<HostPhysAddr>,
    vmxe_was_set: bool,
    _hal: PhantomData<fn() -> H>,
}

/// The running CPU's capabilities and controls, or why it cannot run the backend's guests.
pub(crate) fn probe() -> VCpuResult<(VmxCaps, Controls)> {
    if !hw::has_vmx() {
        return Err(VCpuError::unsupported(
            "this CPU has no VMX (CPUID.1:ECX.VMX[bit 5])",
        ));
    }
    // SAFETY: the VMX capability MSRs exist on a CPU with VMX; `read` reads the secondary
    // and EPT ones only when the primary controls announce them.
    let caps = VmxCaps::read(|m| unsafe { hw::rdmsr(m) });
    let controls = Controls::compute(&caps)?;
    Ok((caps, controls))
}

impl<H: AxVCpuHal> VmxPerCpu<H> {
    fn check_cpu(&self, what: &'static str) -> VCpuResult {
        if H::current_cpu_id() != self.cpu_id {
            return Err(VCpuError::bad_state(what).with_value(H::current_cpu_id() as u64));
        }
        Ok(())
    }
}

impl<H: AxVCpuHal> AxArchPerCpu for VmxPerCpu<H> {
    fn new(cpu_id: usize) -> VCpuResult<Self> {
        Ok(Self {
            cpu_id,
            vmxon_region: None,
            vmxe_was_set: false,
            _hal: PhantomData,
        })
    }

    fn is_enabled(&self) -> bool {
        self.vmxon_region.is_some()
    }

    fn hardware_enable(&mut self) -> VCpuResult {
        if self.vmxon_region.is_some() {
            return Err(VCpuError::bad_state("VMX is already on on this CPU"));
        }
        self.check_cpu(
            "hardware_enable: called on another CPU than the one this state belongs to",
        )?;
        if !hw::has_vmx() {
            return Err(VCpuError::unsupported(
                "this CPU has no VMX (CPUID.1:ECX.VMX[bit 5])",
            ));
        }
        // SAFETY: IA32_FEATURE_CONTROL exists on CPUs with VMX.
        let fc = unsafe { hw::rdmsr(msr::FEATURE_CONTROL) };
        if fc & FEATURE_CONTROL_LOCK == 0 {
            // SAFETY: unlocked, so writable; it only allows VMXON.
            unsafe { hw::write_feature_control(fc | FEATURE_CONTROL_LOCK | FEATURE_CONTROL_VMXON) };
        } else if fc & FEATURE_CONTROL_VMXON == 0 {
            return Err(VCpuError::unsupported(
                "VMX is disabled by the firmware (IA32_FEATURE_CONTROL locked without VMXON \
                 outside SMX)",
            )
            .with_value(fc));
        }
        let (caps, _) = probe()?;
        let cr0 = hw::cr0();
        let bad_cr0 = (caps.cr0_fixed0 & !cr0) | (cr0 & !caps.cr0_fixed1);
        if bad_cr0 != 0 {
            return Err(VCpuError::unsupported(
                "the host's CR0 violates the bits VMX fixes (value: the offending bits)",
            )
            .with_value(bad_cr0));
        }
        let cr4 = hw::cr4();
        let new_cr4 = cr4 | CR4_VMXE;
        let bad_cr4 = (caps.cr4_fixed0 & !new_cr4) | (new_cr4 & !caps.cr4_fixed1);
        if bad_cr4 != 0 {
            return Err(VCpuError::unsupported(
                "the host's CR4 violates the bits VMX fixes (value: the offending bits)",
            )
            .with_value(bad_cr4));
        }
        let region = H::alloc_frame().ok_or(VCpuError::new(
            AxErrorKind::NoMemory,
            "no frame for the VMXON region",
        ))?;
        let va = H::phys_to_virt(region).as_usize() as *mut u32;
        // SAFETY: a frame just allocated, through the HAL's mapping: zeroed, then the
        // revision in its first 4 bytes.
        unsafe {
            core::ptr::write_bytes(va as *mut u8, 0, 4096);
            va.write_volatile(caps.revision());
        }
        // SAFETY: setting VMXE keeps everything the host runs on; the fixed bits hold, the
        // feature control allows VMXON, and the region stays this state's until `vmxoff`.
        let on = unsafe {
            hw::write_cr4(new_cr4);
            hw::vmxon(region)
        };
        if let Err(valid) = on {
            // SAFETY: VMX is not on; CR4 as it was.
            unsafe { hw::write_cr4(cr4) };
            H::dealloc_frame(region);
            return Err(
                VCpuError::unsupported("vmxon failed (value: 1 if VMfailValid)")
                    .with_value(u64::from(valid)),
            );
        }
        self.vmxe_was_set = cr4 & CR4_VMXE != 0;
        self.vmxon_region = Some(region);
        Ok(())
    }

    fn hardware_disable(&mut self) -> VCpuResult {
        let Some(region) = self.vmxon_region else {
            return Err(VCpuError::bad_state("VMX is not on on this CPU"));
        };
        self.check_cpu(
            "hardware_disable: called on another CPU than the one this state belongs to",
        )?;
        // SAFETY: VMX is on here; vCPUs bound here were unbound (their VMCSs cleared), as
        // documented. Clearing VMXE after vmxoff returns CR4 to its state before.
        unsafe {
            hw::vmxoff();
            if !self.vmxe_was_set {
                hw::write_cr4(hw::cr4() & !CR4_VMXE);
            }
        }
        H::dealloc_frame(region);
        self.vmxon_region = None;
        Ok(())
    }
}

impl<H: AxVCpuHal> Drop for VmxPerCpu<H> {
    /// Leaves VMX operation if it is still on (`AxPerCpu` has usually done so already).
    /// Dropped on another CPU, it cannot: the region is leaked, never freed under the CPU.
    fn drop(&mut self) {
        if self.vmxon_region.is_some() && H::current_cpu_id() == self.cpu_id {
            let _ = self.hardware_disable();
        }
    }
}
