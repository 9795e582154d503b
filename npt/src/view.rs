//! Reading a table: the walks [`NestedPageTable`](crate::NestedPageTable) and [`NptView`]
//! share, and [`NptView`] itself (see `frame.rs` for the memory-safety invariant).

use core::{fmt, iter::FusedIterator, marker::PhantomData};

use axvcpu::{AxVCpuHal, GuestPhysAddr, HostPhysAddr, VCpuError, VCpuResult};

use crate::format::{level_size, PagingFormat, Pte};
use crate::frame::{entries, gpa_limit, index, pa_limit, read, top, FRAME_SIZE, MAX_LEVELS};
use crate::{MapFlags, Mapping, Translation};

/// The leaf translating `gpa` in the table at `root`, if any.
pub(crate) fn translate_in<H: AxVCpuHal, F: PagingFormat>(
    root: HostPhysAddr,
    gpa: GuestPhysAddr,
) -> Option<Translation> {
    let gpa = gpa.as_usize();
    if gpa >= gpa_limit::<F>() {
        return None;
    }
    let mut table = root;
    let mut level = top::<F>();
    loop {
        let entry = read::<H>(table, index::<F>(level, gpa));
        match F::decode(level, entry) {
            Pte::Leaf(hpa, flags) => {
                let size = level_size(level);
                return Some(Translation {
                    hpa: hpa + (gpa & (size - 1)),
                    flags,
                    size,
                    accessed: F::accessed(entry),
                    dirty: F::dirty(entry),
                });
            }
            Pte::Table(next) if level > 0 => {
                table = next;
                level -= 1;
            }
            _ => return None,
        }
    }
}

/// Every leaf in GPA order (depth-first walk with an explicit stack).
struct Leaves<H, F> {
    /// `(table, next index, GPA the table starts at)` for the tables being walked; entry `d`
    /// is a table at level `LEVELS - 1 - d`.
    stack: [(HostPhysAddr, usize, usize); MAX_LEVELS],
    depth: usize,
    _marker: PhantomData<fn() -> (H, F)>,
}

impl<H: AxVCpuHal, F: PagingFormat> Leaves<H, F> {
    fn new(root: HostPhysAddr) -> Self {
        let mut stack = [(HostPhysAddr::from(0), 0, 0); MAX_LEVELS];
        stack[0] = (root, 0, 0);
        Self {
            stack,
            depth: if F::LEVELS <= MAX_LEVELS { 1 } else { 0 },
            _marker: PhantomData,
        }
    }
}

impl<H: AxVCpuHal, F: PagingFormat> Iterator for Leaves<H, F> {
    type Item = Mapping;

    fn next(&mut self) -> Option<Mapping> {
        while self.depth > 0 {
            let d = self.depth - 1;
            let level = top::<F>() - d;
            let (table, idx, base) = self.stack[d];
            if idx >= entries::<F>(level) {
                self.depth -= 1;
                continue;
            }
            self.stack[d].1 += 1;
            let size = level_size(level);
            let gpa = base + idx * size;
            match F::decode(level, read::<H>(table, idx)) {
                Pte::Leaf(hpa, flags) => {
                    return Some(Mapping {
                        gpa: GuestPhysAddr::from(gpa),
                        hpa,
                        size,
                        flags,
                    })
                }
                Pte::Table(next) if level > 0 && self.depth < MAX_LEVELS => {
                    self.stack[self.depth] = (next, 0, gpa);
                    self.depth += 1;
                }
                _ => {}
            }
        }
        None
    }
}

/// The mappings of a table in GPA order, with adjacent leaves of contiguous host addresses
/// and equal flags merged. Returned by
/// [`NestedPageTable::mappings`](crate::NestedPageTable::mappings) and
/// [`NptView::mappings`].
pub struct Mappings<'a, H, F> {
    leaves: Leaves<H, F>,
    pending: Option<Mapping>,
    _borrow: PhantomData<&'a ()>,
}

impl<H: AxVCpuHal, F: PagingFormat> Iterator for Mappings<'_, H, F> {
    type Item = Mapping;

    fn next(&mut self) -> Option<Mapping> {
        for leaf in self.leaves.by_ref() {
            match &mut self.pending {
                Some(p)
                    if p.gpa.as_usize() + p.size == leaf.gpa.as_usize()
                        && p.hpa.as_usize() + p.size == leaf.hpa.as_usize()
                        && p.flags == leaf.flags =>
                {
                    p.size += leaf.size;
                }
                pending => {
                    if let Some(done) = pending.replace(leaf) {
                        return Some(done);
                    }
                }
            }
        }
        self.pending.take()
    }
}

impl<H: AxVCpuHal, F: PagingFormat> FusedIterator for Mappings<'_, H, F> {}

impl<H, F: PagingFormat> fmt::Debug for Mappings<'_, H, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mappings")
            .field("format", &F::NAME)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

pub(crate) fn mappings_in<'a, H: AxVCpuHal, F: PagingFormat>(
    root: HostPhysAddr,
) -> Mappings<'a, H, F> {
    Mappings {
        leaves: Leaves::new(root),
        pending: None,
        _borrow: PhantomData,
    }
}

// ---------------------------------------------------------------------------------------------
// The borrowed view.

/// A read-only view of a nested page table known only by its root, e.g. the address a
/// backend received in [`set_ept_root`](axvcpu::AxArchVCpu::set_ept_root).
pub struct NptView<H: AxVCpuHal, F: PagingFormat> {
    root: HostPhysAddr,
    _marker: PhantomData<fn() -> (H, F)>,
}

impl<H: AxVCpuHal, F: PagingFormat> NptView<H, F> {
    /// A view of the table whose root is at `root`.
    ///
    /// # Errors
    /// `InvalidInput` when `root` is zero, not aligned to the root's size, or beyond the
    /// format's physical-address width.
    ///
    /// # Safety
    /// For as long as the view (or an iterator it returned) is used, `root` must be the
    /// [`root_paddr`](crate::NestedPageTable::root_paddr) of a live `NestedPageTable<H, F>`
    /// (same HAL, same format), so every frame it reaches is a table frame that
    /// `H::phys_to_virt` maps. The table may change between calls on the view, but not
    /// during one (a `mappings()` iteration counts as one call): a concurrent change could
    /// free a frame the walk is reading.
    pub unsafe fn from_root(root: HostPhysAddr) -> VCpuResult<Self> {
        let r = root.as_usize();
        let bytes = F::ROOT_FRAMES * FRAME_SIZE;
        if r == 0 || r % bytes != 0 || r.checked_add(bytes).is_none_or(|e| e > pa_limit::<F>()) {
            return Err(VCpuError::invalid_input(
                "nested page table root is zero, misaligned for its format, or out of range",
            )
            .with_value(r as u64));
        }
        Ok(Self {
            root,
            _marker: PhantomData,
        })
    }

    /// The root this view walks.
    pub fn root_paddr(&self) -> HostPhysAddr {
        self.root
    }

    /// As [`NestedPageTable::query`](crate::NestedPageTable::query).
    pub fn query(&self, gpa: GuestPhysAddr) -> Option<(HostPhysAddr, MapFlags, usize)> {
        self.translate(gpa).map(|t| (t.hpa, t.flags, t.size))
    }

    /// As [`NestedPageTable::translate`](crate::NestedPageTable::translate).
    pub fn translate(&self, gpa: GuestPhysAddr) -> Option<Translation> {
        translate_in::<H, F>(self.root, gpa)
    }

    /// As [`NestedPageTable::mappings`](crate::NestedPageTable::mappings).
    pub fn mappings(&self) -> Mappings<'_, H, F> {
        mappings_in(self.root)
    }

    /// Copies guest-physical memory from `gpa` into `buf` through the table, whatever the
    /// guest's permissions; `false` (and `buf` partly written) if a byte is unmapped. Each
    /// byte is read volatile: the guest may be writing it.
    ///
    /// # Safety
    /// Every host frame the table maps in the range is memory the caller may read for the
    /// duration of the call, reachable by `H::phys_to_virt` (guest RAM the hypervisor keeps
    /// allocated while the table maps it — `set_ept_root`'s contract for a backend).
    pub unsafe fn read_guest(&self, gpa: GuestPhysAddr, buf: &mut [u8]) -> bool {
        let mut done = 0;
        while done < buf.len() {
            let Some((va, n)) = self.chunk(gpa.as_usize().wrapping_add(done), buf.len() - done)
            else {
                return false;
            };
            for (i, b) in buf[done..done + n].iter_mut().enumerate() {
                // SAFETY: `va..va + n` is inside one leaf the table maps, which the caller
                // promises is readable memory.
                *b = unsafe { va.add(i).read_volatile() };
            }
            done += n;
        }
        true
    }

    /// Copies `bytes` into guest-physical memory at `gpa` through the table. Nothing is
    /// written unless the whole range is mapped with [`MapFlags::WRITE`]: `InvalidInput`
    /// naming the first address that is not (the error's value).
    ///
    /// # Safety
    /// Every host frame the table maps in the range is memory the caller may write for the
    /// duration of the call, reachable by `H::phys_to_virt`, and no Rust reference to it is
    /// live (guest RAM is only ever accessed through raw pointers).
    pub unsafe fn write_guest(&self, gpa: GuestPhysAddr, bytes: &[u8]) -> VCpuResult {
        let start = gpa.as_usize();
        let mut done = 0;
        while done < bytes.len() {
            let at = start.wrapping_add(done);
            let writable = self
                .translate(GuestPhysAddr::from(at))
                .is_some_and(|t| t.flags.contains(MapFlags::WRITE));
            let Some((_, n)) = self.chunk(at, bytes.len() - done).filter(|_| writable) else {
                return Err(VCpuError::invalid_input(
                    "guest memory to write is unmapped or read-only (value: its address)",
                )
                .with_value(at as u64));
            };
            done += n;
        }
        done = 0;
        while done < bytes.len() {
            let Some((va, n)) = self.chunk(start.wrapping_add(done), bytes.len() - done) else {
                break; // checked above: not reached
            };
            let dst = va.cast_mut();
            // SAFETY: checked above: inside one writable leaf, memory the caller promises
            // may be written; `bytes` is the caller's, so the ranges do not overlap.
            unsafe { core::ptr::copy_nonoverlapping(bytes[done..].as_ptr(), dst, n) };
            done += n;
        }
        Ok(())
    }

    /// Where guest-physical `gpa` is in the host, and how many of the next `want` bytes
    /// stay in its leaf.
    fn chunk(&self, gpa: usize, want: usize) -> Option<(*const u8, usize)> {
        let t = self.translate(GuestPhysAddr::from(gpa))?;
        let left_in_leaf = t.size - (gpa & (t.size - 1));
        let va = core::ptr::with_exposed_provenance::<u8>(H::phys_to_virt(t.hpa).as_usize());
        Some((va, want.min(left_in_leaf)))
    }
}

impl<H: AxVCpuHal, F: PagingFormat> Clone for NptView<H, F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<H: AxVCpuHal, F: PagingFormat> Copy for NptView<H, F> {}

impl<H: AxVCpuHal, F: PagingFormat> fmt::Debug for NptView<H, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NptView")
            .field("format", &F::NAME)
            .field("root", &self.root)
            .finish()
    }
}
