//! [`HostedVm`]: the safe owner of a hosted guest (its memory, nested page table, boot
//! tables and KVM VM), and [`GuestVCpu`], a vCPU that borrows it.

use std::ops::{Deref, DerefMut, Range};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axvcpu::{AxVCpu, GuestPhysAddr, VCpuError, VCpuResult};
use axvcpu_npt::{MapFlags, NestedPageTable, X86Npt};

use crate::boot::{long_mode_tables_size, write_long_mode_tables, LongModeBoot};
use crate::{
    wait_while_blocked, HostFrames, HostedHal, KvmCreateConfig, KvmPerCpu, KvmSetupConfig, KvmVCpu,
    KvmVm, KvmVmConfig,
};

const PAGE: u64 = 4096;
const RWX: MapFlags = MapFlags::READ
    .union(MapFlags::WRITE)
    .union(MapFlags::EXECUTE);
const RX: MapFlags = MapFlags::READ.union(MapFlags::EXECUTE);

/// What [`HostedVm::with_config`] builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedVmConfig {
    /// Guest-physical address of main RAM (4 KiB aligned). The boot tables take its first
    /// pages (see [`HostedVm::boot_tables`]).
    pub ram_base: u64,
    /// Bytes of main RAM (a non-zero multiple of 4 KiB).
    pub ram_size: usize,
    /// MSRs whose accesses leave the guest (see [`KvmVmConfig::trapped_msrs`]).
    pub trapped_msrs: Vec<u32>,
}

/// A hosted guest: its RAM and other memory in [`HostedHal`] frames, the x86-64 nested
/// page table that maps them, the long-mode boot tables (written into RAM for you), and the
/// [`KvmVm`]. It hands out vCPUs ([`new_vcpu`](Self::new_vcpu)) set up to start at an
/// entry, in 64-bit mode, ready to [`bind`](AxVCpu::bind) and run, and frees every frame
/// when dropped. No `unsafe` is needed to use it.
///
/// Guest-physical memory is what you map: main RAM from the configuration,
/// [`map_ram`](Self::map_ram) for more, [`map_read_only`](Self::map_read_only) for ROM;
/// every address left unmapped is MMIO (`MmioRead` / `MmioWrite` exits). Mapping calls take
/// `&self` and reach running vCPUs at once (the VM's KVM memory slots are updated in the
/// call), so they can be made while vCPUs exist.
///
/// Each [`GuestVCpu`] borrows the `HostedVm`, so the compiler keeps the VM (and the memory
/// under it) alive as long as any of its vCPUs:
///
/// ```compile_fail,E0505
/// use axvcpu_kvm::HostedVm;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let vm = HostedVm::new(0x1_0000, 0x4_0000)?;
/// let mut vcpu = vm.new_vcpu(0, 0x2_0000, 0x5_0000)?;
/// drop(vm); // error[E0505]: cannot move out of `vm` because it is borrowed
/// vcpu.bind()?;
/// # Ok(()) }
/// ```
///
/// (Memory safety does not rest on that alone: dropping a `HostedVm` removes the VM's
/// memory slots before it frees anything, so even a vCPU moved out of its `GuestVCpu`
/// would see MMIO, not freed memory; should KVM refuse, the memory is leaked, not freed.)
#[derive(Debug)]
pub struct HostedVm {
    vm: Arc<KvmVm>,
    vm_id: usize,
    boot: LongModeBoot,
    ram: Range<u64>,
    boot_tables: Range<u64>,
    memory: Mutex<Memory>,
}

#[derive(Debug)]
struct Memory {
    npt: NestedPageTable<HostedHal, X86Npt>,
    /// Every mapped region: (first guest-physical byte, its frames).
    regions: Vec<(u64, HostFrames)>,
}

impl Memory {
    /// The region holding `gpa..gpa + len`, and the offset of `gpa` in it.
    fn find(&self, gpa: u64, len: usize) -> VCpuResult<(&HostFrames, usize)> {
        let end = gpa.checked_add(len as u64);
        self.regions
            .iter()
            .find(|(base, mem)| {
                gpa >= *base && end.is_some_and(|end| end <= *base + mem.len() as u64)
            })
            .map(|(base, mem)| (mem, (gpa - base) as usize))
            .ok_or(
                VCpuError::invalid_input("not inside one region of guest memory").with_value(gpa),
            )
    }
}

fn check_range(gpa: u64, size: usize) -> VCpuResult<usize> {
    if gpa % PAGE != 0 || size == 0 || size as u64 % PAGE != 0 {
        return Err(VCpuError::invalid_input(
            "guest memory must be 4 KiB aligned and a non-zero multiple of 4 KiB",
        )
        .with_value(gpa));
    }
    Ok(size / PAGE as usize)
}

impl HostedVm {
    /// A VM with `ram_size` bytes of RAM at guest-physical `ram_base`, boot tables at its
    /// start, and nothing else mapped. See [`with_config`](Self::with_config).
    pub fn new(ram_base: u64, ram_size: usize) -> VCpuResult<Self> {
        Self::with_config(HostedVmConfig {
            ram_base,
            ram_size,
            trapped_msrs: Vec::new(),
        })
    }

    /// Makes the VM (through the process's [`KvmPerCpu::process_wide`]), allocates and
    /// maps main RAM (zeroed) and writes the boot tables at its start. Fails
    /// (`InvalidInput`) if RAM is misaligned, too small for the boot tables, or ends above
    /// 512 GiB.
    pub fn with_config(config: HostedVmConfig) -> VCpuResult<Self> {
        static NEXT_VM_ID: AtomicUsize = AtomicUsize::new(0);
        let frames = check_range(config.ram_base, config.ram_size)?;
        let ram_end = config
            .ram_base
            .checked_add(config.ram_size as u64)
            .ok_or(VCpuError::invalid_input("guest RAM wraps around"))?;
        let tables = long_mode_tables_size(ram_end);
        // All of RAM, as the tables' size depends on where it ends; zeroed pages nobody
        // touches cost nothing, and only the tables are copied.
        let mut image = vec![0u8; config.ram_size];
        let boot = write_long_mode_tables(&mut image, config.ram_base, config.ram_base)?;
        let ram = HostFrames::new(frames)?;
        ram.write(0, &image[..tables])?;
        let mut npt = NestedPageTable::new()?;
        npt.map(
            GuestPhysAddr::from(config.ram_base as usize),
            ram.paddr(),
            ram.len(),
            RWX,
        )?;
        let vm = KvmVm::new(
            KvmPerCpu::process_wide()?,
            KvmVmConfig {
                trapped_msrs: config.trapped_msrs,
            },
        )?;
        Ok(Self {
            vm,
            vm_id: NEXT_VM_ID.fetch_add(1, Ordering::Relaxed),
            boot,
            ram: config.ram_base..ram_end,
            boot_tables: config.ram_base..config.ram_base + tables as u64,
            memory: Mutex::new(Memory {
                npt,
                regions: vec![(config.ram_base, ram)],
            }),
        })
    }

    fn memory(&self) -> MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Mirrors the nested page table into the VM's memory slots (nothing before the first
    /// vCPU's `setup`, which mirrors it then).
    fn resync(&self, _memory: &MutexGuard<'_, Memory>) -> VCpuResult {
        // SAFETY: the only root the VM is attached to is `memory.npt`'s (every vCPU is set
        // up by `new_vcpu` with it), locked by our caller so it does not change while read;
        // the memory it maps is in `memory.regions`, freed only by `drop` after the VM's
        // slots are removed.
        unsafe { self.vm.resync::<HostedHal>() }.map(drop)
    }

    /// The guest-physical range of main RAM.
    pub fn ram(&self) -> Range<u64> {
        self.ram.clone()
    }

    /// Where in RAM the boot tables are (the GDT and the page tables identity-mapping the
    /// first 4 GiB, or all of RAM if more): the first pages of main RAM.
    /// [`load`](Self::load) refuses to overwrite them.
    pub fn boot_tables(&self) -> Range<u64> {
        self.boot_tables.clone()
    }

    /// The boot state every vCPU starts with.
    pub fn boot(&self) -> LongModeBoot {
        self.boot
    }

    /// The VM id its vCPUs carry ([`VCpuId::vm_id`](axvcpu::VCpuId::vm_id)), unique in
    /// this process.
    pub fn vm_id(&self) -> usize {
        self.vm_id
    }

    /// The KVM VM, for its counters and for what this type does not wrap.
    pub fn kvm_vm(&self) -> &Arc<KvmVm> {
        &self.vm
    }

    /// Copies the guest's bytes (its program, its data) to guest-physical `gpa`, inside one
    /// mapped region. Refused (`InvalidInput`) over the boot tables.
    pub fn load(&self, gpa: u64, bytes: &[u8]) -> VCpuResult {
        let end = gpa.saturating_add(bytes.len() as u64);
        if gpa < self.boot_tables.end && end > self.boot_tables.start {
            return Err(
                VCpuError::invalid_input("load: that would overwrite the boot tables")
                    .with_value(gpa),
            );
        }
        self.write(gpa, bytes)
    }

    /// Writes `bytes` to guest memory at `gpa` (read-only regions included: they are
    /// read-only to the guest), inside one mapped region.
    pub fn write(&self, gpa: u64, bytes: &[u8]) -> VCpuResult {
        let memory = self.memory();
        let (mem, offset) = memory.find(gpa, bytes.len())?;
        mem.write(offset, bytes)
    }

    /// Reads guest memory at `gpa` into `buf`, inside one mapped region.
    pub fn read(&self, gpa: u64, buf: &mut [u8]) -> VCpuResult {
        let memory = self.memory();
        let (mem, offset) = memory.find(gpa, buf.len())?;
        mem.read(offset, buf)
    }

    /// Maps `size` bytes of new, zeroed RAM at `gpa` (4 KiB aligned, a multiple of 4 KiB).
    /// Fails if it overlaps memory already mapped.
    pub fn map_ram(&self, gpa: u64, size: usize) -> VCpuResult {
        self.map(gpa, HostFrames::new(check_range(gpa, size)?)?, RWX)
    }

    /// Maps `bytes`, rounded up to whole pages (zero-filled), read-only (and executable) at
    /// `gpa` (4 KiB aligned): a guest store there exits with
    /// [`NestedPageFault`](axvcpu::AxVCpuExitReason::NestedPageFault).
    pub fn map_read_only(&self, gpa: u64, bytes: &[u8]) -> VCpuResult {
        let size = bytes.len().max(1).next_multiple_of(PAGE as usize);
        let frames = HostFrames::new(check_range(gpa, size)?)?;
        frames.write(0, bytes)?;
        self.map(gpa, frames, RX)
    }

    fn map(&self, gpa: u64, frames: HostFrames, flags: MapFlags) -> VCpuResult {
        let mut memory = self.memory();
        memory.npt.map(
            GuestPhysAddr::from(gpa as usize),
            frames.paddr(),
            frames.len(),
            flags,
        )?;
        memory.regions.push((gpa, frames));
        self.resync(&memory)
    }

    /// Makes `size` bytes of mapped memory at `gpa` writable by the guest or not (it stays
    /// readable and executable). A store that faulted on it
    /// ([`NestedPageFault`](axvcpu::AxVCpuExitReason::NestedPageFault)) is completed by the
    /// vCPU's next `run` once writable.
    pub fn set_writable(&self, gpa: u64, size: usize, writable: bool) -> VCpuResult {
        check_range(gpa, size)?;
        let mut memory = self.memory();
        let flags = if writable { RWX } else { RX };
        memory
            .npt
            .protect(GuestPhysAddr::from(gpa as usize), size, flags)?;
        self.resync(&memory)
    }

    /// A new vCPU, set up to start at guest-physical `entry` with `rsp = stack_top`, in
    /// 64-bit long mode through the boot tables (see [`KvmSetupConfig`]): state `Free`,
    /// ready to [`bind`](AxVCpu::bind) on the thread that runs it. Its KVM vCPU id, and
    /// its APIC id, is `vcpu_id`.
    ///
    /// A vCPU id is used once per VM: KVM keeps a vCPU until the VM is destroyed, so making
    /// `vcpu_id` again, even after its vCPU was dropped, fails (`ResourceBusy`).
    pub fn new_vcpu(
        &self,
        vcpu_id: usize,
        entry: u64,
        stack_top: u64,
    ) -> VCpuResult<GuestVCpu<'_>> {
        let memory = self.memory();
        let builder = AxVCpu::<KvmVCpu>::builder(
            self.vm_id,
            vcpu_id,
            KvmCreateConfig {
                vm: self.vm.clone(),
            },
        )?;
        // SAFETY: the root is this VM's live X86Npt table in HostedHal frames, locked here
        // while `setup` reads it; it and the memory it maps are freed only by `drop`,
        // after the VM's memory slots are removed.
        let builder = unsafe { builder.ept_root(memory.npt.root_paddr()) };
        let vcpu = builder
            .entry(GuestPhysAddr::from(entry as usize))
            .setup(KvmSetupConfig {
                boot: self.boot,
                stack_top,
            })?;
        Ok(GuestVCpu { vcpu, vm: self })
    }
}

impl Drop for HostedVm {
    fn drop(&mut self) {
        let memory = self.memory.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = self.vm.unmap_all() {
            log::error!("HostedVm: removing memory slots: {e}; leaking guest memory");
            for (_, frames) in &mut memory.regions {
                frames.leak();
            }
        }
    }
}

/// A vCPU of a [`HostedVm`], which it borrows: it dereferences to
/// [`AxVCpu<KvmVCpu>`](AxVCpu), through which it is bound, run and answered.
#[derive(Debug)]
pub struct GuestVCpu<'vm> {
    vcpu: AxVCpu<KvmVCpu>,
    vm: &'vm HostedVm,
}

impl<'vm> GuestVCpu<'vm> {
    /// The VM this vCPU belongs to.
    pub fn vm(&self) -> &'vm HostedVm {
        self.vm
    }

    /// Waits, without polling, until an injected interrupt wakes this vCPU from
    /// `Blocked` (after a [`Halt`](axvcpu::AxVCpuExitReason::Halt)), or `timeout` passes:
    /// [`wait_while_blocked`] on its handle. `true` if it is no longer `Blocked`.
    pub fn wait_while_blocked(&self, timeout: Duration) -> bool {
        wait_while_blocked(&self.vcpu.handle(), timeout)
    }
}

impl Deref for GuestVCpu<'_> {
    type Target = AxVCpu<KvmVCpu>;

    fn deref(&self) -> &AxVCpu<KvmVCpu> {
        &self.vcpu
    }
}

impl DerefMut for GuestVCpu<'_> {
    fn deref_mut(&mut self) -> &mut AxVCpu<KvmVCpu> {
        &mut self.vcpu
    }
}
