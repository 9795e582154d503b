//! A test VM: its RAM (contiguous host frames from the HAL, zeroed, loaded with a
//! program, freed when dropped), an extra page, and [`TestbedVm`], the conformance
//! suite's `TestVm` built from them and a nested page table.

use core::marker::PhantomData;
use core::sync::atomic::{AtomicUsize, Ordering};

use axvcpu::{AxErrorKind, AxVCpuHal, GuestPhysAddr, HostPhysAddr, VCpuError, VCpuResult};
use axvcpu_conformance::{Layout, TestVm};
use axvcpu_npt::MapFlags;

use crate::arch::{NestedTable, TestbedArch};
use crate::frames::FRAME_SIZE;
use crate::hal::FrameHal;

static NEXT_VM_ID: AtomicUsize = AtomicUsize::new(1);

/// A fresh VM id (1, 2, ...).
pub fn next_vm_id() -> usize {
    NEXT_VM_ID.fetch_add(1, Ordering::Relaxed)
}

/// The RAM of one test VM, at `layout.ram_base` in the guest.
pub struct GuestRam<H: AxVCpuHal> {
    layout: Layout,
    hpa: HostPhysAddr,
    frames: usize,
    _hal: PhantomData<fn() -> H>,
}

impl<H: AxVCpuHal> core::fmt::Debug for GuestRam<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GuestRam")
            .field("layout", &self.layout)
            .field("hpa", &self.hpa)
            .finish()
    }
}

impl<H: AxVCpuHal> GuestRam<H> {
    /// Allocates and zeroes `layout.ram_size` bytes (a multiple of 4 KiB).
    pub fn new(layout: Layout) -> VCpuResult<Self> {
        let frames = layout.ram_size / FRAME_SIZE;
        if frames == 0 || layout.ram_size % FRAME_SIZE != 0 {
            return Err(VCpuError::invalid_input(
                "RAM size must be a non-zero multiple of 4 KiB",
            ));
        }
        let hpa = H::alloc_contiguous_frames(frames, 1).ok_or(VCpuError::new(
            AxErrorKind::NoMemory,
            "no contiguous frames for guest RAM",
        ))?;
        let ram = Self {
            layout,
            hpa,
            frames,
            _hal: PhantomData,
        };
        // SAFETY: the frames were just allocated for this RAM and are `ram_size` bytes long.
        unsafe { core::ptr::write_bytes(ram.host_ptr(0), 0, layout.ram_size) };
        Ok(ram)
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The host-physical address of the first byte.
    pub fn hpa(&self) -> HostPhysAddr {
        self.hpa
    }

    fn host_ptr(&self, offset: usize) -> *mut u8 {
        (H::phys_to_virt(self.hpa).as_usize() + offset) as *mut u8
    }

    fn offset_of(&self, gpa: GuestPhysAddr, len: usize) -> VCpuResult<usize> {
        let off = gpa
            .as_usize()
            .checked_sub(self.layout.ram_base.as_usize())
            .filter(|o| {
                o.checked_add(len)
                    .is_some_and(|e| e <= self.layout.ram_size)
            });
        off.ok_or(
            VCpuError::invalid_input("address outside guest RAM").with_value(gpa.as_usize() as u64),
        )
    }

    /// Copies `bytes` into guest RAM at `gpa`.
    pub fn load(&self, gpa: GuestPhysAddr, bytes: &[u8]) -> VCpuResult {
        let off = self.offset_of(gpa, bytes.len())?;
        // SAFETY: in bounds of this RAM (checked); `bytes` is not guest RAM, so no overlap.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.host_ptr(off), bytes.len()) };
        Ok(())
    }

    /// Reads 8 bytes of guest RAM at `gpa`.
    pub fn read_u64(&self, gpa: GuestPhysAddr) -> VCpuResult<u64> {
        let off = self.offset_of(gpa, 8)?;
        // SAFETY: in bounds of this RAM (checked); unaligned read allowed.
        Ok(unsafe { (self.host_ptr(off) as *const u64).read_unaligned() })
    }
}

/// One extra 4 KiB page of a test VM (the read-only page of `nested-page-fault`): a zeroed
/// host frame from the HAL, freed when dropped.
pub struct GuestPage<H: AxVCpuHal> {
    hpa: HostPhysAddr,
    _hal: PhantomData<fn() -> H>,
}

impl<H: AxVCpuHal> core::fmt::Debug for GuestPage<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GuestPage").field("hpa", &self.hpa).finish()
    }
}

impl<H: AxVCpuHal> GuestPage<H> {
    /// Allocates the page (the HAL hands out zeroed frames).
    pub fn new() -> VCpuResult<Self> {
        let hpa = H::alloc_frame().ok_or(VCpuError::new(
            AxErrorKind::NoMemory,
            "no frame for a guest page",
        ))?;
        Ok(Self {
            hpa,
            _hal: PhantomData,
        })
    }

    /// The host-physical address of the page.
    pub fn hpa(&self) -> HostPhysAddr {
        self.hpa
    }

    /// Reads 8 bytes at `offset` into the page.
    pub fn read_u64(&self, offset: usize) -> VCpuResult<u64> {
        if offset.checked_add(8).is_none_or(|end| end > FRAME_SIZE) {
            return Err(
                VCpuError::invalid_input("read outside the guest page").with_value(offset as u64)
            );
        }
        let p = (H::phys_to_virt(self.hpa).as_usize() + offset) as *const u64;
        // SAFETY: in bounds (checked) of a frame this page owns; unaligned read allowed.
        Ok(unsafe { p.read_unaligned() })
    }
}

impl<H: AxVCpuHal> Drop for GuestPage<H> {
    fn drop(&mut self) {
        H::dealloc_frame(self.hpa);
    }
}

impl<H: AxVCpuHal> Drop for GuestRam<H> {
    fn drop(&mut self) {
        H::dealloc_contiguous_frames(self.hpa, self.frames);
    }
}

/// A test VM of testbed `A`: its RAM, a read-only page and a nested page table mapping
/// both (and whatever [`TestbedArch::map_devices`] adds), with the setup config its vCPUs
/// get.
pub struct TestbedVm<A: TestbedArch> {
    vm_id: usize,
    // Declared first so it drops first: the table goes before the memory it maps.
    npt: spin::Mutex<A::Npt>,
    ram: GuestRam<FrameHal<A>>,
    ro_page: GuestPage<FrameHal<A>>,
    root: HostPhysAddr,
    setup: A::Setup,
}

impl<A: TestbedArch> core::fmt::Debug for TestbedVm<A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TestbedVm")
            .field("vm_id", &self.vm_id)
            .field("ram", &self.ram)
            .field("root", &self.root)
            .finish()
    }
}

impl<A: TestbedArch> TestbedVm<A> {
    /// A VM running `code` from the start of RAM, its vCPUs set up with `setup`.
    pub fn new(code: &[u8], setup: A::Setup) -> VCpuResult<Self> {
        let layout = A::layout();
        let ram = GuestRam::<FrameHal<A>>::new(layout)?;
        ram.load(layout.ram_base, code)?;
        let ro_page = GuestPage::<FrameHal<A>>::new()?;
        let mut npt = A::new_npt(&setup)?;
        let rwx = MapFlags::READ | MapFlags::WRITE | MapFlags::EXECUTE;
        npt.map(layout.ram_base, ram.hpa(), layout.ram_size, rwx)?;
        npt.map(layout.ro_page, ro_page.hpa(), FRAME_SIZE, MapFlags::READ)?;
        A::map_devices(&mut npt, &setup)?;
        let root = npt.root();
        Ok(Self {
            vm_id: next_vm_id(),
            npt: spin::Mutex::new(npt),
            ram,
            ro_page,
            root,
            setup,
        })
    }
}

impl<A: TestbedArch> TestbedVm<A> {
    /// Copies `bytes` into guest RAM at `gpa` (only while no vCPU of the VM runs).
    pub fn load(&self, gpa: GuestPhysAddr, bytes: &[u8]) -> VCpuResult {
        self.ram.load(gpa, bytes)
    }
}

// SAFETY: `ept_root` is this VM's live nested page table; the scenarios drop every vCPU
// before the VM, whose fields free the table first, then guest RAM and the read-only page.
unsafe impl<A: TestbedArch> TestVm for TestbedVm<A> {
    type Arch = A::VCpu;

    fn layout(&self) -> Layout {
        self.ram.layout()
    }
    fn entry(&self) -> GuestPhysAddr {
        self.ram.layout().ram_base
    }
    fn ept_root(&self) -> HostPhysAddr {
        self.root
    }
    fn create_config(&self, _vcpu_id: usize) {}
    fn setup_config(&self, _vcpu_id: usize) -> A::Setup {
        self.setup
    }
    fn vm_id(&self) -> usize {
        self.vm_id
    }
    fn read_u64(&self, gpa: GuestPhysAddr) -> VCpuResult<u64> {
        let ro_page = self.ram.layout().ro_page.as_usize();
        match gpa.as_usize().checked_sub(ro_page) {
            Some(off) if off < FRAME_SIZE => self.ro_page.read_u64(off),
            _ => self.ram.read_u64(gpa),
        }
    }
    fn make_writable(&self, gpa: GuestPhysAddr) -> VCpuResult {
        let page = GuestPhysAddr::from(gpa.as_usize() & !(FRAME_SIZE - 1));
        self.npt
            .lock()
            .protect(page, FRAME_SIZE, MapFlags::READ | MapFlags::WRITE)
    }
}
