//! Table frames: raw entry access, geometry and argument checks, shared by the owned table
//! (`table.rs`) and the read-only walks (`view.rs`).
//!
//! # Memory-safety invariant
//!
//! Every table address passed to [`read`], [`write`] and [`zero`] is a page-table frame (or,
//! for the root, frame group) of a live table, reachable by `H::phys_to_virt`, and every
//! index is below that table's entry count. For a
//! [`NestedPageTable`](crate::NestedPageTable) this holds because it allocates every frame
//! itself, reaches frames only through entries it wrote, and frees them only when it unlinks
//! them (or in `Drop`). For an [`NptView`](crate::NptView) the caller of the `unsafe`
//! [`NptView::from_root`](crate::NptView::from_root) promises it.

use core::{
    ptr,
    sync::atomic::{AtomicU64, Ordering},
};

use axvcpu::{AxErrorKind, AxVCpuHal, GuestPhysAddr, HostPhysAddr, VCpuError, VCpuResult};

use crate::format::{level_size, PagingFormat};

#[cfg(not(target_pointer_width = "64"))]
compile_error!("axvcpu-npt needs 64-bit addresses");

pub(crate) const FRAME_SIZE: usize = 4096;
pub(crate) const ENTRIES_PER_FRAME: usize = 512;
/// The most levels any format has.
pub(crate) const MAX_LEVELS: usize = 4;

// ---------------------------------------------------------------------------------------------
// Raw entry access (see the module invariant).

fn entry_ptr<H: AxVCpuHal>(table: HostPhysAddr, index: usize) -> *mut u64 {
    ptr::with_exposed_provenance_mut::<u64>(H::phys_to_virt(table).as_usize()).wrapping_add(index)
}

/// Reads entry `index` of the table at `table`.
pub(crate) fn read<H: AxVCpuHal>(table: HostPhysAddr, index: usize) -> u64 {
    let p = entry_ptr::<H>(table, index);
    // SAFETY: by the module invariant `p` points into a live, 8-byte aligned table frame the
    // host can reach; entries are only ever accessed atomically once the frame is linked.
    unsafe { AtomicU64::from_ptr(p) }.load(Ordering::Acquire)
}

/// Writes entry `index` of the table at `table` with one atomic 64-bit store, so a hardware
/// walker never sees half an entry.
pub(crate) fn write<H: AxVCpuHal>(table: HostPhysAddr, index: usize, value: u64) {
    let p = entry_ptr::<H>(table, index);
    // SAFETY: as in `read`; we hold `&mut` on the table, so no other software writer exists.
    unsafe { AtomicU64::from_ptr(p) }.store(value, Ordering::Release);
}

/// Zeroes `frames` frames at `table`, which was just allocated and is not linked yet.
pub(crate) fn zero<H: AxVCpuHal>(table: HostPhysAddr, frames: usize) {
    let p = entry_ptr::<H>(table, 0);
    // SAFETY: the HAL just gave us these `frames` frames; nothing else refers to them.
    unsafe { ptr::write_bytes(p, 0, frames * ENTRIES_PER_FRAME) };
}

// ---------------------------------------------------------------------------------------------
// Geometry.

pub(crate) fn top<F: PagingFormat>() -> usize {
    F::LEVELS - 1
}

pub(crate) fn entries<F: PagingFormat>(level: usize) -> usize {
    if level == top::<F>() {
        ENTRIES_PER_FRAME * F::ROOT_FRAMES
    } else {
        ENTRIES_PER_FRAME
    }
}

pub(crate) fn index<F: PagingFormat>(level: usize, gpa: usize) -> usize {
    (gpa >> (12 + 9 * level)) & (entries::<F>(level) - 1)
}

pub(crate) fn gpa_limit<F: PagingFormat>() -> usize {
    1 << F::GPA_BITS
}

pub(crate) fn pa_limit<F: PagingFormat>() -> usize {
    1 << F::PA_BITS
}

/// Calls `f(index, start, end)` for each entry of a table at `level` that `[start, end)`
/// touches, with the part of the range that entry covers.
pub(crate) fn for_each_entry<F: PagingFormat, E>(
    level: usize,
    start: usize,
    end: usize,
    mut f: impl FnMut(usize, usize, usize) -> Result<(), E>,
) -> Result<(), E> {
    let size = level_size(level);
    let mut addr = start;
    while addr < end {
        let next = ((addr & !(size - 1)) + size).min(end);
        f(index::<F>(level, addr), addr, next)?;
        addr = next;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Argument checks.

pub(crate) fn check_gpa_range<F: PagingFormat>(
    gpa: GuestPhysAddr,
    size: usize,
) -> VCpuResult<(usize, usize)> {
    let start = gpa.as_usize();
    if size == 0 {
        return Err(VCpuError::invalid_input("size is zero"));
    }
    if start % FRAME_SIZE != 0 {
        return Err(
            VCpuError::invalid_input("guest-physical address is not 4 KiB aligned")
                .with_value(start as u64),
        );
    }
    if size % FRAME_SIZE != 0 {
        return Err(
            VCpuError::invalid_input("size is not a multiple of 4 KiB").with_value(size as u64)
        );
    }
    match start.checked_add(size) {
        Some(end) if end <= gpa_limit::<F>() => Ok((start, end)),
        _ => Err(VCpuError::invalid_input(
            "guest-physical range goes beyond the address width of the table format",
        )
        .with_value(start as u64)),
    }
}

pub(crate) fn check_hpa_range<F: PagingFormat>(hpa: HostPhysAddr, size: usize) -> VCpuResult {
    let start = hpa.as_usize();
    if start % FRAME_SIZE != 0 {
        return Err(
            VCpuError::invalid_input("host-physical address is not 4 KiB aligned")
                .with_value(start as u64),
        );
    }
    match start.checked_add(size) {
        Some(end) if end <= pa_limit::<F>() => Ok(()),
        _ => Err(VCpuError::invalid_input(
            "host-physical range goes beyond what the table format's entries can hold",
        )
        .with_value(start as u64)),
    }
}

pub(crate) fn no_memory() -> VCpuError {
    VCpuError::new(
        AxErrorKind::NoMemory,
        "the HAL has no frame left for a page table",
    )
}
