//! [`KvmTestVm`]: a small ready-to-run VM the conformance platform, tests and benches
//! share, and [`kvm`], the enabled per-CPU state every one of them is made from.
//!
//! Guest-physical layout of every test VM:
//!
//! | what | guest-physical | nested page table |
//! |---|---|---|
//! | RAM | [`RAM_BASE`] .. + [`RAM_SIZE`] | read/write/execute |
//! | GDT + identity page tables | [`RAM_BASE`] (first 7 pages of RAM) | |
//! | program entry | [`ENTRY`] | |
//! | stacks | top of RAM, 16 KiB per vCPU, vCPU 0 highest | |
//! | read-only page | [`RO_PAGE`] | read/execute |
//! | MMIO window (unmapped) | [`MMIO_BASE`] | — |

use std::sync::{Arc, Mutex, MutexGuard};

use axvcpu::{GuestPhysAddr, HostPhysAddr, VCpuError, VCpuResult};
use axvcpu_conformance::{Layout, TestVm};
use axvcpu_kvm::boot::{write_long_mode_tables, LongModeBoot};
use axvcpu_kvm::{
    HostFrames, HostedHal, KvmCreateConfig, KvmPerCpu, KvmSetupConfig, KvmVCpu, KvmVm, KvmVmConfig,
};
use axvcpu_npt::{MapFlags, NestedPageTable, X86Npt};

/// First guest-physical byte of RAM (below 1 MiB, so an SIPI vector can reach it).
pub const RAM_BASE: u64 = 0x1_0000;
/// RAM size.
pub const RAM_SIZE: u64 = 0x4_0000;
/// Where programs are loaded and start.
pub const ENTRY: u64 = 0x2_0000;
/// The read-only page.
pub const RO_PAGE: u64 = 0x6_0000;
/// 4 KiB nothing maps.
pub const MMIO_BASE: u64 = 0xd000_0000;
/// The vector the `irq` scenarios inject.
pub const IRQ_VECTOR: u64 = 0x40;
/// The `Irq` program's second vector (`PlatformInfo::second_irq_vector`, `irq-merge`).
pub const SECOND_IRQ_VECTOR: u64 = 0x50;
/// The MSR the `sysreg` scenario traps (IA32_TSC_AUX).
pub const SYSREG_MSR: u64 = 0xc000_0103;
/// Stack bytes per vCPU.
pub const STACK_SIZE: u64 = 0x4000;

const RAM_END: u64 = RAM_BASE + RAM_SIZE;
const RWX: MapFlags = MapFlags::READ
    .union(MapFlags::WRITE)
    .union(MapFlags::EXECUTE);

/// The process's enabled [`KvmPerCpu`]: [`KvmPerCpu::process_wide`].
pub fn kvm() -> VCpuResult<&'static KvmPerCpu> {
    KvmPerCpu::process_wide()
}

/// A test VM: RAM and a read-only page in [`HostedHal`] frames, a nested page table mapping
/// them, a [`KvmVm`] mirroring it, and a program at [`ENTRY`].
///
/// Dropping it first removes the VM's memory slots (see [`KvmVm::unmap_all`]), so vCPUs
/// that outlive it see MMIO where RAM was instead of freed memory. Should KVM refuse to
/// remove a slot, the RAM is leaked rather than freed under it.
#[derive(Debug)]
pub struct KvmTestVm {
    vm: Arc<KvmVm>,
    vm_id: usize,
    boot: LongModeBoot,
    npt: Mutex<NestedPageTable<HostedHal, X86Npt>>,
    ram: HostFrames,
    ro: HostFrames,
}

impl KvmTestVm {
    /// A VM with `code` at [`ENTRY`], the rest of RAM zero.
    pub fn new(vm_id: usize, code: &[u8]) -> VCpuResult<Self> {
        let ram = HostFrames::new((RAM_SIZE / 4096) as usize)?;
        let ro = HostFrames::new(1)?;
        let mut npt = NestedPageTable::<HostedHal, X86Npt>::new()?;
        npt.map(
            GuestPhysAddr::from(RAM_BASE as usize),
            ram.paddr(),
            ram.len(),
            RWX,
        )?;
        npt.map(
            GuestPhysAddr::from(RO_PAGE as usize),
            ro.paddr(),
            ro.len(),
            MapFlags::READ | MapFlags::EXECUTE,
        )?;
        let vm = KvmVm::new(
            kvm()?,
            KvmVmConfig {
                trapped_msrs: vec![SYSREG_MSR as u32],
            },
        )?;
        let mut this = Self {
            vm,
            vm_id,
            boot: LongModeBoot {
                cr3: 0,
                gdt_base: 0,
                gdt_limit: 0,
            },
            npt: Mutex::new(npt),
            ram,
            ro,
        };
        this.boot = this.load(code)?;
        Ok(this)
    }

    /// Rewrites all of RAM: zeroes, boot tables, `code` at [`ENTRY`]; and zeroes the
    /// read-only page. Only while no vCPU of this VM runs.
    pub fn load(&self, code: &[u8]) -> VCpuResult<LongModeBoot> {
        let room = (RAM_END - ENTRY) as usize - 2 * STACK_SIZE as usize;
        if code.len() > room {
            return Err(
                VCpuError::invalid_input("guest program too large").with_value(code.len() as u64)
            );
        }
        let mut image = vec![0u8; RAM_SIZE as usize];
        let boot = write_long_mode_tables(&mut image, RAM_BASE, RAM_BASE)?;
        let at = (ENTRY - RAM_BASE) as usize;
        image[at..at + code.len()].copy_from_slice(code);
        self.ram.write(0, &image)?;
        self.ro.write(0, &[0u8; 4096])?;
        Ok(boot)
    }

    /// The KVM VM.
    pub fn kvm_vm(&self) -> &Arc<KvmVm> {
        &self.vm
    }

    /// Guest RAM.
    pub fn ram(&self) -> &HostFrames {
        &self.ram
    }

    /// The nested page table.
    pub fn npt(&self) -> MutexGuard<'_, NestedPageTable<HostedHal, X86Npt>> {
        self.npt.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Maps the read-only page read-only again (after [`TestVm::make_writable`]). Tell the
    /// vCPUs with `nested_page_table_changed`.
    pub fn make_read_only(&self) -> VCpuResult {
        self.npt().protect(
            GuestPhysAddr::from(RO_PAGE as usize),
            4096,
            MapFlags::READ | MapFlags::EXECUTE,
        )
    }

    fn host_bytes(&self, gpa: u64, len: usize) -> VCpuResult<(&HostFrames, usize)> {
        let end = gpa.saturating_add(len as u64);
        if gpa >= RAM_BASE && end <= RAM_END {
            Ok((&self.ram, (gpa - RAM_BASE) as usize))
        } else if gpa >= RO_PAGE && end <= RO_PAGE + 4096 {
            Ok((&self.ro, (gpa - RO_PAGE) as usize))
        } else {
            Err(VCpuError::invalid_input("not guest RAM").with_value(gpa))
        }
    }

    /// Writes `bytes` to guest RAM at `gpa` (RAM or the read-only page).
    pub fn write(&self, gpa: u64, bytes: &[u8]) -> VCpuResult {
        let (mem, off) = self.host_bytes(gpa, bytes.len())?;
        mem.write(off, bytes)
    }
}

impl Drop for KvmTestVm {
    fn drop(&mut self) {
        if let Err(e) = self.vm.unmap_all() {
            log::error!("KvmTestVm: removing memory slots: {e}; leaking guest RAM");
            self.ram.leak();
            self.ro.leak();
        }
    }
}

// SAFETY: `ept_root` is this VM's live X86Npt table; `Drop` unmaps every KVM slot before it
// frees the table and the RAM, so no vCPU made from the VM can reach them afterwards.
unsafe impl TestVm for KvmTestVm {
    type Arch = KvmVCpu<HostedHal>;

    fn layout(&self) -> Layout {
        Layout {
            ram_base: GuestPhysAddr::from(RAM_BASE as usize),
            ram_size: RAM_SIZE as usize,
            ro_page: GuestPhysAddr::from(RO_PAGE as usize),
            mmio_base: GuestPhysAddr::from(MMIO_BASE as usize),
        }
    }

    fn entry(&self) -> GuestPhysAddr {
        GuestPhysAddr::from(ENTRY as usize)
    }

    fn ept_root(&self) -> HostPhysAddr {
        self.npt().root_paddr()
    }

    fn create_config(&self, _vcpu_id: usize) -> KvmCreateConfig {
        KvmCreateConfig {
            vm: self.vm.clone(),
        }
    }

    fn setup_config(&self, vcpu_id: usize) -> KvmSetupConfig {
        let below_top = (vcpu_id as u64 % 4) * STACK_SIZE;
        KvmSetupConfig {
            boot: self.boot,
            stack_top: RAM_END - below_top,
        }
    }

    fn vm_id(&self) -> usize {
        self.vm_id
    }

    fn read_u64(&self, gpa: GuestPhysAddr) -> VCpuResult<u64> {
        let (mem, off) = self.host_bytes(gpa.as_usize() as u64, 8)?;
        let mut b = [0u8; 8];
        mem.read(off, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn make_writable(&self, gpa: GuestPhysAddr) -> VCpuResult {
        self.npt().protect(gpa, 4096, RWX)
    }
}
