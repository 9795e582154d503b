//! [`SvmPerCpu`]: SVM on one physical CPU (`EFER.SVME`, the host save area).

use core::marker::PhantomData;

use axvcpu::{AxArchPerCpu, AxErrorKind, AxVCpuHal, HostPhysAddr, VCpuError, VCpuResult};

use crate::hw::{self, EFER_NXE, EFER_SVME, MSR_VM_CR, VM_CR_SVMDIS};

/// SVM on one physical CPU.
///
/// `hardware_enable` (on that CPU: the HAL's `current_cpu_id` must be the `cpu_id` given to
/// `new`) checks CPUID for SVM with nested paging and `VM_CR.SVMDIS`, gives the CPU a host
/// save area (`VM_HSAVE_PA`, one frame of the HAL) and sets `EFER.SVME`, and `EFER.NXE`,
/// which the NPT format's no-execute bit needs. `hardware_disable` undoes all three.
#[derive(Debug)]
pub struct SvmPerCpu<H: AxVCpuHal> {
    cpu_id: usize,
    hsave: Option<HostPhysAddr>,
    nxe_was_set: bool,
    _hal: PhantomData<fn() -> H>,
}

impl<H: AxVCpuHal> AxArchPerCpu for SvmPerCpu<H> {
    fn new(cpu_id: usize) -> VCpuResult<Self> {
        Ok(Self {
            cpu_id,
            hsave: None,
            nxe_was_set: false,
            _hal: PhantomData,
        })
    }

    fn is_enabled(&self) -> bool {
        self.hsave.is_some()
    }

    fn hardware_enable(&mut self) -> VCpuResult {
        if H::current_cpu_id() != self.cpu_id {
            return Err(VCpuError::bad_state(
                "hardware_enable: called on another CPU than the one this state belongs to",
            )
            .with_value(H::current_cpu_id() as u64));
        }
        if hw::svm_with_np().is_none() {
            return Err(VCpuError::unsupported(
                "this CPU has no SVM with nested paging (CPUID 8000_0001h/8000_000Ah)",
            ));
        }
        // SAFETY: VM_CR exists on CPUs with SVM.
        let vm_cr = unsafe { hw::rdmsr(MSR_VM_CR) };
        if vm_cr & VM_CR_SVMDIS != 0 {
            return Err(
                VCpuError::unsupported("SVM is disabled by the firmware (VM_CR.SVMDIS)")
                    .with_value(vm_cr),
            );
        }
        let hsave = H::alloc_frame().ok_or(VCpuError::new(
            AxErrorKind::NoMemory,
            "no frame for the host save area",
        ))?;
        let efer = hw::efer();
        self.nxe_was_set = efer & EFER_NXE != 0;
        // SAFETY: the host save area is a frame this state owns until `hardware_disable`,
        // written before SVME is set; setting SVME and NXE keeps everything the host runs
        // on (NXE only allows the no-execute bit in page tables).
        unsafe {
            hw::write_vm_hsave_pa(hsave);
            hw::write_efer(efer | EFER_SVME | EFER_NXE);
        }
        self.hsave = Some(hsave);
        Ok(())
    }

    fn hardware_disable(&mut self) -> VCpuResult {
        let Some(hsave) = self.hsave else {
            return Err(VCpuError::bad_state("SVM is not enabled on this CPU"));
        };
        if H::current_cpu_id() != self.cpu_id {
            return Err(VCpuError::bad_state(
                "hardware_disable: called on another CPU than the one this state belongs to",
            )
            .with_value(H::current_cpu_id() as u64));
        }
        let mut efer = hw::efer() & !EFER_SVME;
        if !self.nxe_was_set {
            efer &= !EFER_NXE;
        }
        // SAFETY: no guest runs on this CPU (vCPUs run only inside `run`); clearing SVME,
        // then the save area, returns the CPU to its state before `hardware_enable` (NXE
        // only if it was clear then, when the host's tables could not use it).
        unsafe {
            hw::write_efer(efer);
            hw::write_vm_hsave_pa(HostPhysAddr::from(0));
        }
        H::dealloc_frame(hsave);
        self.hsave = None;
        Ok(())
    }
}
