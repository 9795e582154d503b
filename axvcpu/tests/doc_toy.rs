// A toy backend for the crate-level doc example: its "guest" is a fixed list of exits.
use axvcpu::*;

pub struct ToyHal;
impl AxVCpuHal for ToyHal {
    fn alloc_frame() -> Option<HostPhysAddr> {
        None
    }
    fn dealloc_frame(_: HostPhysAddr) {}
    fn phys_to_virt(p: HostPhysAddr) -> HostVirtAddr {
        HostVirtAddr::from(p.as_usize())
    }
    fn virt_to_phys(v: HostVirtAddr) -> HostPhysAddr {
        HostPhysAddr::from(v.as_usize())
    }
    fn current_cpu_id() -> usize {
        200
    }
}

pub struct ToyKick;
impl VCpuKick for ToyKick {
    fn kick(&self) {}
}

pub struct ToyArch {
    script: std::vec::IntoIter<AxVCpuExitReason>,
}
impl AxArchVCpu for ToyArch {
    type CreateConfig = ();
    type SetupConfig = ();
    type Hal = ToyHal;
    type Kicker = ToyKick;
    fn new(_: usize, _: usize, _: ()) -> VCpuResult<Self> {
        let out = |b: u8| AxVCpuExitReason::IoWrite {
            port: Port(0x3f8),
            width: AccessWidth::Byte,
            data: b as u64,
        };
        Ok(Self {
            script: vec![out(b'h'), out(b'i'), AxVCpuExitReason::Halt].into_iter(),
        })
    }
    fn set_entry(&mut self, _: GuestPhysAddr) -> VCpuResult {
        Ok(())
    }
    unsafe fn set_ept_root(&mut self, _: HostPhysAddr) -> VCpuResult {
        Ok(())
    }
    fn setup(&mut self, _: ()) -> VCpuResult {
        Ok(())
    }
    fn run(&mut self) -> VCpuResult<AxVCpuExitReason> {
        self.script
            .next()
            .ok_or(VCpuError::bad_state("toy guest ended"))
    }
    fn bind(&mut self) -> VCpuResult {
        Ok(())
    }
    fn unbind(&mut self) -> VCpuResult {
        Ok(())
    }
    fn set_gpr(&mut self, _: usize, _: usize) -> VCpuResult {
        Ok(())
    }
    fn get_gpr(&self, _: usize) -> VCpuResult<usize> {
        Ok(0)
    }
    fn pc(&self) -> usize {
        0
    }
    fn set_pc(&mut self, _: usize) -> VCpuResult {
        Ok(())
    }
    fn set_return_value(&mut self, _: usize) {}
    fn set_boot_arg(&mut self, _: usize) -> VCpuResult {
        Ok(())
    }
    fn complete_read(&mut self, _: u64) -> VCpuResult {
        Ok(())
    }
    fn inject_interrupt(&mut self, _: usize) -> VCpuResult {
        Ok(())
    }
    fn has_pending_interrupt(&self) -> bool {
        false
    }
    fn kicker(&self) -> ToyKick {
        ToyKick
    }
}
