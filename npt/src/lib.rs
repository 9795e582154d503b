//! Nested page tables: how a hypervisor tells the hardware where guest-physical memory is.
//!
//! A [`NestedPageTable`] maps guest-physical ranges to host-physical ranges with
//! [`MapFlags`] permissions, in one of five hardware formats, building its tables in frames
//! from an [`AxVCpuHal`](axvcpu::AxVCpuHal). Its [`root_paddr`](NestedPageTable::root_paddr)
//! is what a backend's [`set_ept_root`](axvcpu::AxArchVCpu::set_ept_root) takes; a backend
//! that needs the mappings back (the hosted KVM backend turns them into memory slots) walks
//! the table from that address alone with [`NptView`].
//!
//! ```
//! # use std::alloc::{alloc_zeroed, dealloc, Layout};
//! # use axvcpu::{AxVCpuHal, HostVirtAddr};
//! # struct Hal; // frames from the heap, host-physical == host-virtual
//! # fn frame() -> Layout { Layout::from_size_align(4096, 4096).unwrap() }
//! # impl AxVCpuHal for Hal {
//! #     fn alloc_frame() -> Option<HostPhysAddr> {
//! #         // SAFETY: the layout is not zero-sized.
//! #         let p = unsafe { alloc_zeroed(frame()) };
//! #         (!p.is_null()).then(|| HostPhysAddr::from(p.expose_provenance()))
//! #     }
//! #     fn dealloc_frame(pa: HostPhysAddr) {
//! #         // SAFETY: `pa` came from `alloc_frame`, with this layout.
//! #         unsafe { dealloc(std::ptr::with_exposed_provenance_mut(pa.as_usize()), frame()) }
//! #     }
//! #     fn phys_to_virt(pa: HostPhysAddr) -> HostVirtAddr { HostVirtAddr::from(pa.as_usize()) }
//! #     fn virt_to_phys(va: HostVirtAddr) -> HostPhysAddr { HostPhysAddr::from(va.as_usize()) }
//! #     fn current_cpu_id() -> usize { 0 }
//! # }
//! use axvcpu::{GuestPhysAddr, HostPhysAddr};
//! use axvcpu_npt::{MapFlags, Mapping, NestedPageTable, X86Npt};
//!
//! let gpa = GuestPhysAddr::from;
//! let hpa = HostPhysAddr::from;
//! let rwx = MapFlags::READ | MapFlags::WRITE | MapFlags::EXECUTE;
//!
//! let mut npt = NestedPageTable::<Hal, X86Npt>::new()?;
//! // 4 MiB of guest RAM at GPA 0, backed by host memory at 1 GiB: two 2 MiB leaves.
//! npt.map(gpa(0), hpa(0x4000_0000), 0x40_0000, rwx)?;
//! // A read-only page right above it, backed by the host page right after the RAM.
//! npt.map(gpa(0x40_0000), hpa(0x4040_0000), 0x1000, MapFlags::READ)?;
//!
//! assert_eq!(npt.query(gpa(0x1234)), Some((hpa(0x4000_1234), rwx, 0x20_0000)));
//! // Mapping over an existing mapping is refused.
//! assert!(npt.map(gpa(0x1000), hpa(0x9000_0000), 0x1000, MapFlags::READ).is_err());
//!
//! // Leaves with contiguous host addresses and equal flags come merged.
//! let all: Vec<Mapping> = npt.mappings().collect();
//! assert_eq!(all, [
//!     Mapping { gpa: gpa(0), hpa: hpa(0x4000_0000), size: 0x40_0000, flags: rwx },
//!     Mapping { gpa: gpa(0x40_0000), hpa: hpa(0x4040_0000), size: 0x1000, flags: MapFlags::READ },
//! ]);
//!
//! // Unmapping one page inside a 2 MiB leaf splits the leaf into 4 KiB pages.
//! npt.unmap(gpa(0x10_0000), 0x1000)?;
//! assert_eq!(npt.query(gpa(0x10_0000)), None);
//! assert_eq!(npt.query(gpa(0x10_1000)), Some((hpa(0x4010_1000), rwx, 0x1000)));
//!
//! // A backend given only the root walks the same table.
//! // SAFETY: `npt` is alive and unchanged while `view` is used.
//! let view = unsafe { NestedPageTable::<Hal, X86Npt>::from_root(npt.root_paddr()) }?;
//! assert_eq!(view.mappings().count(), 3);
//! # Ok::<(), axvcpu::VCpuError>(())
//! ```
//!
//! # Formats
//!
//! | format            | levels | root              | GPA bits | leaves         | register      |
//! |-------------------|--------|-------------------|----------|----------------|---------------|
//! | [`X86Npt`]        | 4      | 1 frame           | 48       | 4 KiB, 2 MiB, 1 GiB | VMCB `N_CR3` = root |
//! | [`Ept`]           | 4      | 1 frame           | 48       | 4 KiB, 2 MiB, 1 GiB | VMCS EPT pointer = [`eptp`](Ept::eptp) |
//! | [`RiscvSv39x4`]   | 3      | 4 frames, 16 KiB aligned | 41 | 4 KiB, 2 MiB, 1 GiB | [`hgatp`](RiscvSv39x4::hgatp) |
//! | [`RiscvSv48x4`]   | 4      | 4 frames, 16 KiB aligned | 50 | 4 KiB, 2 MiB, 1 GiB | [`hgatp`](RiscvSv48x4::hgatp) |
//! | [`Aarch64Stage2`] | 3      | 1 frame           | 39       | 4 KiB, 2 MiB, 1 GiB | [`vtcr_el2`](Aarch64Stage2::vtcr_el2), [`vttbr_el2`](Aarch64Stage2::vttbr_el2) |
//!
//! Each format's page documents its exact entry bits. Not every permission set is
//! expressible: AMD NPT pages are always readable, RISC-V and EPT have no write-only pages;
//! [`PagingFormat::check_flags`] says, and `map`/`protect` refuse what a format cannot
//! express rather than widen it.
//!
//! A RISC-V hypervisor learns which G-stage formats `hgatp` accepts only at run time:
//! [`GStageTable`] and [`GStageView`] are the table and the view of either RISC-V format,
//! picked by a [`GStageMode`] value.
//!
//! # Walking a table
//!
//! [`query`](NestedPageTable::query) gives the host address, permissions and leaf size;
//! [`translate`](NestedPageTable::translate) gives the same as a [`Translation`], with what
//! the hardware recorded in the leaf (accessed, dirty): a backend told that the guest faulted
//! on a mapped address uses it to tell a stale cached translation from a fault the table
//! itself gives (RISC-V without hardware A/D updating faults on a leaf with A, or for a
//! write D, clear). Views ([`NptView`], [`GStageView`]) walk a table from its root alone.
//!
//! # Rules
//!
//! * Addresses and sizes are in 4 KiB units. [`map`](NestedPageTable::map) refuses to
//!   overlap an existing mapping; [`unmap`](NestedPageTable::unmap) and
//!   [`protect`](NestedPageTable::protect) require the whole range to be mapped. Large leaves
//!   are used when alignment allows and split when a change covers only part of one.
//! * Every failure is an [`Err`](axvcpu::VCpuError) with a reason, and leaves the translation
//!   unchanged. No input makes these functions panic.
//! * The table owns its table frames and frees them on drop (and frees tables an `unmap`
//!   empties); the memory it maps belongs to the caller.
//! * After changing a table a vCPU uses, call
//!   [`AxVCpu::nested_page_table_changed`](axvcpu::AxVCpu::nested_page_table_changed) before
//!   relying on the change: the backend flushes cached translations (hardware may cache even
//!   the absence of a mapping, and must forget removed or narrowed ones before the memory they
//!   pointed to is reused).

#![no_std]
#![deny(missing_docs, missing_debug_implementations)]

mod format;
mod frame;
mod gstage;
mod table;
mod view;

pub use format::{Aarch64Stage2, Ept, PagingFormat, Pte, RiscvSv39x4, RiscvSv48x4, X86Npt};
pub use gstage::{GStageMappings, GStageMode, GStageTable, GStageView};
pub use table::NestedPageTable;
pub use view::{Mappings, NptView};

use axvcpu::{GuestPhysAddr, HostPhysAddr};

bitflags::bitflags! {
    /// What the guest may do with a mapping.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct MapFlags: u8 {
        /// The guest may read.
        const READ = 1 << 0;
        /// The guest may write.
        const WRITE = 1 << 1;
        /// The guest may execute.
        const EXECUTE = 1 << 2;
    }
}

/// A run of guest-physical memory mapped to contiguous host-physical memory with the same
/// permissions, as [`NestedPageTable::mappings`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// Where the run starts in guest-physical memory.
    pub gpa: GuestPhysAddr,
    /// Where it starts in host-physical memory.
    pub hpa: HostPhysAddr,
    /// Its length in bytes (a multiple of 4 KiB).
    pub size: usize,
    /// The guest's permissions.
    pub flags: MapFlags,
}

/// What one guest-physical address translates to, with what the hardware recorded in its
/// leaf: [`NestedPageTable::translate`], [`NptView::translate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// The host-physical address (the guest address's offset in its leaf included).
    pub hpa: HostPhysAddr,
    /// The guest's permissions.
    pub flags: MapFlags,
    /// The size of the leaf: 4 KiB, 2 MiB or 1 GiB.
    pub size: usize,
    /// The leaf records an access ([`PagingFormat::accessed`]).
    pub accessed: bool,
    /// The leaf records a write, or the format cannot say ([`PagingFormat::dirty`]).
    pub dirty: bool,
}
