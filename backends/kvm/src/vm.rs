//! [`KvmVm`]: one KVM virtual machine, shared by its vCPUs, and its memory slots.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axvcpu::{AxErrorKind, AxVCpuHal, HostPhysAddr, VCpuError, VCpuResult};
use axvcpu_npt::{MapFlags, NestedPageTable, X86Npt};
use kvm_bindings::{
    kvm_enable_cap, kvm_userspace_memory_region, CpuId, KVM_CAP_X86_USER_SPACE_MSR,
    KVM_MAX_CPUID_ENTRIES, KVM_MEM_READONLY, KVM_MSR_EXIT_REASON_FILTER,
};
use kvm_ioctls::{
    Cap, Kvm, MsrFilterDefaultAction, MsrFilterRange, MsrFilterRangeFlags, VcpuFd, VmFd,
};

use crate::errno::kvm_error;
use crate::KvmPerCpu;

/// VM-wide settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvmVmConfig {
    /// MSRs whose `rdmsr`/`wrmsr` leave the guest as
    /// [`SysRegRead`](axvcpu::AxVCpuExitReason::SysRegRead) /
    /// [`SysRegWrite`](axvcpu::AxVCpuExitReason::SysRegWrite) (KVM's user-space MSR exits
    /// with an MSR filter). At most 16. Every other MSR is handled by KVM as usual.
    pub trapped_msrs: Vec<u32>,
}

/// One memory slot: a run of guest-physical memory backed by host memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) id: u32,
    pub(crate) gpa: u64,
    pub(crate) size: u64,
    pub(crate) hva: u64,
    pub(crate) readonly: bool,
}

impl Slot {
    fn same_memory(&self, other: &Slot) -> bool {
        (self.gpa, self.size, self.hva, self.readonly)
            == (other.gpa, other.size, other.hva, other.readonly)
    }

    fn region(&self, size: u64) -> kvm_userspace_memory_region {
        kvm_userspace_memory_region {
            slot: self.id,
            flags: if self.readonly { KVM_MEM_READONLY } else { 0 },
            guest_phys_addr: self.gpa,
            memory_size: size,
            userspace_addr: self.hva,
        }
    }
}

#[derive(Debug, Default)]
struct SlotTable {
    slots: Vec<Slot>,
    free_ids: Vec<u32>,
    next_id: u32,
    /// The nested page table the slots come from.
    root: Option<HostPhysAddr>,
    /// Set by `unmap_all`: the table (and the memory it maps) may be gone, so it is never
    /// read or mirrored again.
    detached: bool,
}

/// Where a guest-physical address lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backing {
    /// Host memory at this address; `readonly` for read-only slots.
    Ram { hva: u64, readonly: bool },
    /// No slot: an MMIO access.
    None,
}

/// One KVM virtual machine: the VM file descriptor, the CPUID its vCPUs get, and the memory
/// slots, which mirror the nested page table the hypervisor built (see
/// [`KvmVCpu`](crate::KvmVCpu)). Shared by all vCPUs of the VM through an `Arc`. Made from
/// an enabled [`KvmPerCpu`], whose `/dev/kvm` it uses.
///
/// The host memory the nested page table maps must stay allocated while any slot maps it:
/// call [`unmap_all`](Self::unmap_all) (or drop every vCPU and the VM) before freeing it.
pub struct KvmVm {
    fd: VmFd,
    cpuid: CpuId,
    run_size: usize,
    slots: Mutex<SlotTable>,
    ioctls: AtomicU64,
}

impl core::fmt::Debug for KvmVm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let table = self.table();
        f.debug_struct("KvmVm")
            .field("slots", &table.slots)
            .field("root", &table.root)
            .finish_non_exhaustive()
    }
}

impl KvmVm {
    /// Creates a VM through `percpu`'s `/dev/kvm` (enabled, so the capabilities the backend
    /// needs are checked and the kick signal's handler is installed). The VM keeps its own
    /// file descriptor: disabling or dropping `percpu` later does not affect it.
    pub fn new(percpu: &KvmPerCpu, config: KvmVmConfig) -> VCpuResult<Arc<Self>> {
        let kvm = percpu.kvm().ok_or(VCpuError::bad_state(
            "KvmVm::new: the KvmPerCpu is not enabled (call hardware_enable first)",
        ))?;
        let fd = kvm.create_vm().map_err(|e| kvm_error("KVM_CREATE_VM", e))?;
        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(|e| kvm_error("KVM_GET_SUPPORTED_CPUID", e))?;
        let run_size = kvm
            .get_vcpu_mmap_size()
            .map_err(|e| kvm_error("KVM_GET_VCPU_MMAP_SIZE", e))?;
        let vm = Self {
            fd,
            cpuid,
            run_size,
            slots: Mutex::new(SlotTable::default()),
            ioctls: AtomicU64::new(3),
        };
        vm.trap_msrs(kvm, &config.trapped_msrs)?;
        Ok(Arc::new(vm))
    }

    fn trap_msrs(&self, kvm: &Kvm, msrs: &[u32]) -> VCpuResult {
        if msrs.is_empty() {
            return Ok(());
        }
        if msrs.len() > kvm_bindings::KVM_MSR_FILTER_MAX_RANGES as usize {
            return Err(VCpuError::invalid_input("at most 16 MSRs can be trapped")
                .with_value(msrs.len() as u64));
        }
        if !kvm.check_extension(Cap::X86UserSpaceMsr) {
            return Err(VCpuError::unsupported(
                "KVM lacks KVM_CAP_X86_USER_SPACE_MSR",
            ));
        }
        let cap = kvm_enable_cap {
            cap: KVM_CAP_X86_USER_SPACE_MSR,
            args: [KVM_MSR_EXIT_REASON_FILTER as u64, 0, 0, 0],
            ..Default::default()
        };
        self.fd
            .enable_cap(&cap)
            .map_err(|e| kvm_error("enabling user-space MSR exits", e))?;
        // One range per MSR; a clear bit denies the access, which KVM turns into an exit.
        let deny = [0u8];
        let ranges: Vec<MsrFilterRange<'_>> = msrs
            .iter()
            .map(|&base| MsrFilterRange {
                flags: MsrFilterRangeFlags::READ | MsrFilterRangeFlags::WRITE,
                base,
                msr_count: 1,
                bitmap: &deny,
            })
            .collect();
        self.fd
            .set_msr_filter(MsrFilterDefaultAction::ALLOW, &ranges)
            .map_err(|e| kvm_error("KVM_X86_SET_MSR_FILTER", e))?;
        self.ioctls.fetch_add(2, Ordering::Relaxed);
        Ok(())
    }

    fn table(&self) -> MutexGuard<'_, SlotTable> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The VM file descriptor, for what this crate does not wrap (benchmarks against raw
    /// kvm-ioctls, say). Changing memory slots through it confuses the backend.
    pub fn vm_fd(&self) -> &VmFd {
        &self.fd
    }

    /// The CPUID table vCPUs start from (KVM's supported CPUID; each vCPU patches in its
    /// APIC id).
    pub fn cpuid(&self) -> &CpuId {
        &self.cpuid
    }

    /// The size of each vCPU's `kvm_run` mapping.
    pub(crate) fn run_size(&self) -> usize {
        self.run_size
    }

    /// Creates KVM vCPU `id`. An id is used once per VM: KVM keeps a vCPU until its VM is
    /// destroyed, even after the vCPU's file is closed, so creating `id` again after its
    /// vCPU was dropped fails (`ResourceBusy`) like creating it twice.
    pub(crate) fn create_vcpu(&self, id: u64) -> VCpuResult<VcpuFd> {
        self.fd.create_vcpu(id).map_err(|e| match e.errno() {
            libc::EEXIST => VCpuError::new(
                AxErrorKind::ResourceBusy,
                "KVM_CREATE_VCPU: EEXIST (File exists): this vCPU id was already used in this VM; \
                 KVM frees vCPU ids only when the VM is destroyed (use another id, or a new VM)",
            )
            .with_value(id),
            _ => kvm_error("KVM_CREATE_VCPU", e),
        })
    }

    /// The number of VM ioctls made so far (creation, MSR filter, memory slots).
    pub fn ioctl_count(&self) -> u64 {
        self.ioctls.load(Ordering::Relaxed)
    }

    /// The number of memory slots.
    pub fn slot_count(&self) -> usize {
        self.table().slots.len()
    }

    /// Binds the VM to the nested page table at `root` (every vCPU of a VM must use the same
    /// one) and mirrors it into memory slots.
    ///
    /// # Safety
    /// `root` must be the root of a live x86-64 nested page table (axvcpu-npt's
    /// [`X86Npt`] format) built in frames of `H`, not changed while this runs, and the host
    /// memory it maps must stay allocated while the slots map it.
    pub(crate) unsafe fn attach<H: AxVCpuHal>(&self, root: HostPhysAddr) -> VCpuResult<u64> {
        let mut table = self.table();
        if table.detached {
            return Err(VCpuError::bad_state(
                "the KvmVm's memory was unmapped for good (unmap_all)",
            ));
        }
        match table.root {
            Some(r) if r != root => {
                return Err(VCpuError::invalid_input(
                    "every vCPU of a KvmVm must use the same nested page table root",
                )
                .with_value(root.as_usize() as u64))
            }
            _ => table.root = Some(root),
        }
        // SAFETY: forwarded from our caller.
        unsafe { self.sync_locked::<H>(&mut table) }
    }

    /// Mirrors the nested page table again after the hypervisor changed it. Returns the
    /// number of ioctls it took (0 when nothing changed).
    ///
    /// # Safety
    /// As for [`attach`](Self::attach).
    pub(crate) unsafe fn resync<H: AxVCpuHal>(&self) -> VCpuResult<u64> {
        let mut table = self.table();
        // SAFETY: forwarded from our caller.
        unsafe { self.sync_locked::<H>(&mut table) }
    }

    /// # Safety
    /// As for [`attach`](Self::attach), for `table.root`.
    unsafe fn sync_locked<H: AxVCpuHal>(&self, table: &mut SlotTable) -> VCpuResult<u64> {
        let Some(root) = table.root.filter(|_| !table.detached) else {
            return Ok(0);
        };
        // SAFETY: our caller promises `root` is a live table of this format.
        let view = unsafe { NestedPageTable::<H, X86Npt>::from_root(root) }?;
        let wanted: Vec<Slot> = view
            .mappings()
            .map(|m| Slot {
                id: 0,
                gpa: m.gpa.as_usize() as u64,
                size: m.size as u64,
                hva: H::phys_to_virt(m.hpa).as_usize() as u64,
                readonly: !m.flags.contains(MapFlags::WRITE),
            })
            .collect();
        let mut ioctls = 0;
        // Remove what changed first: KVM refuses overlapping slots.
        let mut kept = Vec::with_capacity(table.slots.len());
        for slot in std::mem::take(&mut table.slots) {
            if wanted.iter().any(|w| w.same_memory(&slot)) {
                kept.push(slot);
                continue;
            }
            // SAFETY: deleting a slot (size 0) never makes KVM touch host memory again.
            let r = unsafe { self.fd.set_user_memory_region(slot.region(0)) };
            ioctls += 1;
            match r {
                Ok(()) => table.free_ids.push(slot.id),
                Err(e) => {
                    kept.push(slot);
                    table.slots = kept;
                    return Err(kvm_error("deleting a memory slot", e));
                }
            }
        }
        table.slots = kept;
        for mut slot in wanted {
            if table.slots.iter().any(|s| s.same_memory(&slot)) {
                continue;
            }
            slot.id = match table.free_ids.pop() {
                Some(id) => id,
                None => {
                    let id = table.next_id;
                    table.next_id = id.checked_add(1).ok_or(
                        VCpuError::new(AxErrorKind::NoMemory, "out of KVM memory slot ids")
                            .with_value(slot.gpa),
                    )?;
                    id
                }
            };
            // SAFETY: the memory comes from the nested page table, whose mapped host memory
            // our caller promises stays allocated while the slot exists.
            let r = unsafe { self.fd.set_user_memory_region(slot.region(slot.size)) };
            ioctls += 1;
            if let Err(e) = r {
                table.free_ids.push(slot.id);
                return Err(kvm_error("adding a memory slot", e).with_value(slot.gpa));
            }
            table.slots.push(slot);
        }
        table.slots.sort_by_key(|s| s.gpa);
        self.ioctls.fetch_add(ioctls, Ordering::Relaxed);
        Ok(ioctls)
    }

    /// Removes every memory slot and detaches the VM from its nested page table for good,
    /// so no vCPU of this VM can reach host memory any more: guest accesses become MMIO
    /// exits, [`nested_page_table_changed`](axvcpu::AxArchVCpu::nested_page_table_changed)
    /// maps nothing again, and `setup` of a further vCPU fails. Call it before freeing the
    /// nested page table or the memory it maps while vCPUs of this VM may still exist.
    pub fn unmap_all(&self) -> VCpuResult {
        let mut table = self.table();
        table.detached = true;
        while let Some(slot) = table.slots.pop() {
            // SAFETY: deleting a slot (size 0) never makes KVM touch host memory again.
            let r = unsafe { self.fd.set_user_memory_region(slot.region(0)) };
            self.ioctls.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = r {
                table.slots.push(slot);
                return Err(kvm_error("deleting a memory slot", e));
            }
            table.free_ids.push(slot.id);
        }
        Ok(())
    }

    /// What backs guest-physical byte `gpa`.
    pub(crate) fn backing(&self, gpa: u64) -> Backing {
        let table = self.table();
        for s in &table.slots {
            if gpa >= s.gpa && gpa - s.gpa < s.size {
                return Backing::Ram {
                    hva: s.hva + (gpa - s.gpa),
                    readonly: s.readonly,
                };
            }
        }
        Backing::None
    }
}
