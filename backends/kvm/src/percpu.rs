//! [`KvmPerCpu`]: the hosted meaning of "virtualization enabled on this CPU": an opened,
//! checked `/dev/kvm`, from which VMs are made.

use std::sync::OnceLock;

use axvcpu::{AxArchPerCpu, VCpuError, VCpuResult};
use kvm_ioctls::{Cap, Kvm};

use crate::errno::kvm_error;

/// Checks that `kvm` offers what the backend relies on.
fn check_caps(kvm: &Kvm) -> VCpuResult {
    if kvm.get_api_version() != 12 {
        return Err(VCpuError::unsupported("KVM API version is not 12")
            .with_value(kvm.get_api_version() as u64));
    }
    for (cap, what) in [
        (Cap::SyncRegs, "KVM lacks KVM_CAP_SYNC_REGS"),
        (Cap::ImmediateExit, "KVM lacks KVM_CAP_IMMEDIATE_EXIT"),
        (Cap::ReadonlyMem, "KVM lacks KVM_CAP_READONLY_MEM"),
        (Cap::UserMemory, "KVM lacks KVM_CAP_USER_MEMORY"),
    ] {
        if !kvm.check_extension(cap) {
            return Err(VCpuError::unsupported(what));
        }
    }
    Ok(())
}

/// Virtualization state of the hosted backend. There is no hardware switch to flip in a
/// process: "enabled" means `/dev/kvm` was opened and offers every capability the backend
/// needs (API 12, sync regs, immediate exit, read-only memory), and the kick signal's
/// handler is installed. Disabling closes the file.
///
/// A hosted hypervisor that uses [`HostedVm`](crate::HostedVm) never sees one: it uses
/// [`process_wide`](Self::process_wide). One that builds a [`KvmVm`](crate::KvmVm) itself
/// passes an enabled `KvmPerCpu`, through whose `/dev/kvm` the VM is made. One is enough
/// for the whole process (`/dev/kvm` is not tied to a CPU or thread): vCPUs run on any
/// thread without a `KvmPerCpu` of their own, and VMs keep working after it is disabled.
#[derive(Debug)]
pub struct KvmPerCpu {
    cpu_id: usize,
    kvm: Option<Kvm>,
}

impl KvmPerCpu {
    /// The process's own enabled `KvmPerCpu`, enabled at the first call (one serves every
    /// VM and thread); should `/dev/kvm` be unusable, every call returns that error.
    /// [`HostedVm`](crate::HostedVm) makes its VMs through it.
    pub fn process_wide() -> VCpuResult<&'static KvmPerCpu> {
        static KVM: OnceLock<VCpuResult<KvmPerCpu>> = OnceLock::new();
        KVM.get_or_init(|| {
            let mut percpu = KvmPerCpu::new(0)?;
            percpu.hardware_enable()?;
            Ok(percpu)
        })
        .as_ref()
        .map_err(|e| *e)
    }

    /// The opened `/dev/kvm`, while enabled.
    pub fn kvm(&self) -> Option<&Kvm> {
        self.kvm.as_ref()
    }
}

impl AxArchPerCpu for KvmPerCpu {
    fn new(cpu_id: usize) -> VCpuResult<Self> {
        Ok(Self { cpu_id, kvm: None })
    }

    fn is_enabled(&self) -> bool {
        self.kvm.is_some()
    }

    fn hardware_enable(&mut self) -> VCpuResult {
        let kvm = Kvm::new().map_err(|e| kvm_error("opening /dev/kvm", e))?;
        check_caps(&kvm)?;
        crate::kick::install_kick_handler()
            .map_err(|e| kvm_error("installing the kick signal handler", e))?;
        log::debug!("CPU {}: /dev/kvm ready", self.cpu_id);
        self.kvm = Some(kvm);
        Ok(())
    }

    fn hardware_disable(&mut self) -> VCpuResult {
        self.kvm = None;
        Ok(())
    }
}
