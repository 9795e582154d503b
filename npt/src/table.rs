//! The owned table: building, changing and freeing it (see `frame.rs` for the memory-safety
//! invariant, `view.rs` for the walks it shares with [`NptView`]).

use core::{fmt, marker::PhantomData};

use axvcpu::{AxErrorKind, AxVCpuHal, GuestPhysAddr, HostPhysAddr, VCpuError, VCpuResult};

use crate::format::{level_size, PagingFormat, Pte};
use crate::frame::{
    check_gpa_range, check_hpa_range, entries, for_each_entry, gpa_limit, index, no_memory,
    pa_limit, read, top, write, zero, ENTRIES_PER_FRAME, FRAME_SIZE,
};
use crate::view::{mappings_in, translate_in, Mappings, NptView};
use crate::{MapFlags, Translation};

/// A nested page table of format `F` built in frames of `H`: it owns its table frames (not
/// the memory it maps) and frees them when dropped.
///
/// All changes are all-or-nothing: when a call returns `Err`, every guest-physical address
/// translates as before (some empty or split tables may remain; they change nothing).
///
/// Entries are written with single atomic 64-bit stores, new tables are zeroed before they
/// are linked, and tables are unlinked before they are freed, so a hardware walker never sees
/// a torn entry. Still, after a change, tell each vCPU using the table
/// ([`AxVCpu::nested_page_table_changed`](axvcpu::AxVCpu::nested_page_table_changed)) so its
/// backend flushes cached translations, and do so before reusing memory that was unmapped.
/// Splitting a large leaf (an `unmap` or `protect` covering part of one) replaces a live leaf
/// by a table without break-before-make: on Arm, do that only while no vCPU using the table
/// runs.
pub struct NestedPageTable<H: AxVCpuHal, F: PagingFormat> {
    root: HostPhysAddr,
    _marker: PhantomData<fn() -> (H, F)>,
}

impl<H: AxVCpuHal, F: PagingFormat> NestedPageTable<H, F> {
    /// Creates an empty table, allocating its root (one frame, or for the RISC-V formats 4
    /// contiguous frames aligned to 16 KiB through `H::alloc_contiguous_frames`).
    pub fn new() -> VCpuResult<Self> {
        let root = if F::ROOT_FRAMES == 1 {
            Self::alloc_table()?
        } else {
            let n = F::ROOT_FRAMES;
            let root = H::alloc_contiguous_frames(n, n).ok_or(VCpuError::new(
                AxErrorKind::NoMemory,
                "the HAL could not allocate the 4 contiguous, 16 KiB-aligned frames of a \
                 RISC-V G-stage root (does it implement alloc_contiguous_frames?)",
            ))?;
            let bytes = n * FRAME_SIZE;
            if root.as_usize() % bytes != 0
                || root
                    .as_usize()
                    .checked_add(bytes)
                    .is_none_or(|e| e > pa_limit::<F>())
            {
                H::dealloc_contiguous_frames(root, n);
                return Err(VCpuError::new(
                    AxErrorKind::BadAddress,
                    "the HAL returned a root misaligned or beyond the format's physical-address width",
                )
                .with_value(root.as_usize() as u64));
            }
            zero::<H>(root, n);
            root
        };
        Ok(Self {
            root,
            _marker: PhantomData,
        })
    }

    /// Walks the table rooted at `root` without owning it: see [`NptView::from_root`], whose
    /// safety contract applies.
    ///
    /// # Safety
    /// As for [`NptView::from_root`].
    pub unsafe fn from_root(root: HostPhysAddr) -> VCpuResult<NptView<H, F>> {
        // SAFETY: the caller upholds `NptView::from_root`'s contract.
        unsafe { NptView::from_root(root) }
    }

    /// The host-physical address of the root: what
    /// [`AxArchVCpu::set_ept_root`](axvcpu::AxArchVCpu::set_ept_root) takes.
    pub fn root_paddr(&self) -> HostPhysAddr {
        self.root
    }

    /// Maps `[gpa, gpa + size)` to `[hpa, hpa + size)` with `flags`.
    ///
    /// Uses 2 MiB and 1 GiB leaves wherever both addresses are aligned to, and the range
    /// covers, a whole leaf; 4 KiB pages elsewhere.
    ///
    /// # Errors
    /// * `InvalidInput`: `size` is zero or not a multiple of 4 KiB, an address is not 4 KiB
    ///   aligned, the guest range exceeds [`F::GPA_BITS`](PagingFormat::GPA_BITS) or the host
    ///   range exceeds [`F::PA_BITS`](PagingFormat::PA_BITS), `flags` is empty or has unknown
    ///   bits.
    /// * `Unsupported`: the format cannot express `flags` (see [`PagingFormat::check_flags`]).
    /// * `AlreadyExists`: part of the guest range is mapped already (the value is the first
    ///   such address).
    /// * `NoMemory`: the HAL ran out of frames (nothing is mapped then).
    pub fn map(
        &mut self,
        gpa: GuestPhysAddr,
        hpa: HostPhysAddr,
        size: usize,
        flags: MapFlags,
    ) -> VCpuResult {
        let (start, end) = check_gpa_range::<F>(gpa, size)?;
        check_hpa_range::<F>(hpa, size)?;
        F::check_flags(flags)?;
        if let Some(at) = self.find(start, end, false) {
            return Err(VCpuError::new(
                AxErrorKind::AlreadyExists,
                "map: part of the guest-physical range is already mapped",
            )
            .with_value(at as u64));
        }
        let delta = hpa.as_usize().wrapping_sub(start);
        if let Err(e) = self.map_in(self.root, top::<F>(), start, end, delta, flags) {
            // The range was empty before: clearing it restores the table.
            self.clear_in(self.root, top::<F>(), start, end);
            return Err(e);
        }
        Ok(())
    }

    /// Unmaps `[gpa, gpa + size)`, splitting large leaves that straddle its ends, and frees
    /// the tables it leaves empty.
    ///
    /// # Errors
    /// * `InvalidInput`: as for [`map`](Self::map).
    /// * `NotFound`: part of the range is not mapped (the value is the first such address);
    ///   nothing is unmapped then.
    /// * `NoMemory`: splitting a large leaf needed a frame the HAL did not have.
    pub fn unmap(&mut self, gpa: GuestPhysAddr, size: usize) -> VCpuResult {
        let (start, end) =
            self.prepare_change(gpa, size, "unmap: part of the range is not mapped")?;
        self.clear_in(self.root, top::<F>(), start, end);
        Ok(())
    }

    /// Changes the permissions of every mapping in `[gpa, gpa + size)` to `flags`, keeping
    /// their host addresses, and splitting large leaves that straddle the range's ends.
    ///
    /// # Errors
    /// As for [`unmap`](Self::unmap), plus `InvalidInput`/`Unsupported` for `flags` as for
    /// [`map`](Self::map).
    pub fn protect(&mut self, gpa: GuestPhysAddr, size: usize, flags: MapFlags) -> VCpuResult {
        F::check_flags(flags)?;
        let (start, end) =
            self.prepare_change(gpa, size, "protect: part of the range is not mapped")?;
        self.protect_in(self.root, top::<F>(), start, end, flags);
        Ok(())
    }

    /// What `gpa` translates to: the host-physical address (`gpa`'s offset in its leaf
    /// included), the permissions, and the size of the leaf. `None` when unmapped.
    pub fn query(&self, gpa: GuestPhysAddr) -> Option<(HostPhysAddr, MapFlags, usize)> {
        self.translate(gpa).map(|t| (t.hpa, t.flags, t.size))
    }

    /// What `gpa` translates to, with what the hardware recorded in the leaf (accessed,
    /// dirty): what a backend needs to tell a stale cached translation from a fault the
    /// table itself gives. `None` when unmapped.
    pub fn translate(&self, gpa: GuestPhysAddr) -> Option<Translation> {
        translate_in::<H, F>(self.root, gpa)
    }

    /// Every mapping in GPA order; adjacent leaves whose host addresses are contiguous and
    /// whose flags are equal come merged into one [`Mapping`](crate::Mapping).
    pub fn mappings(&self) -> Mappings<'_, H, F> {
        mappings_in(self.root)
    }

    // -- internals ----------------------------------------------------------------------

    fn alloc_table() -> VCpuResult<HostPhysAddr> {
        let frame = H::alloc_frame().ok_or_else(no_memory)?;
        let pa = frame.as_usize();
        if pa % FRAME_SIZE != 0
            || pa
                .checked_add(FRAME_SIZE)
                .is_none_or(|e| e > pa_limit::<F>())
        {
            H::dealloc_frame(frame);
            return Err(VCpuError::new(
                AxErrorKind::BadAddress,
                "the HAL returned a frame misaligned or beyond the format's physical-address width",
            )
            .with_value(pa as u64));
        }
        zero::<H>(frame, 1);
        Ok(frame)
    }

    /// Checks the range and that all of it is mapped, then splits the large leaves that
    /// straddle its ends. Leaves translation unchanged on error.
    fn prepare_change(
        &mut self,
        gpa: GuestPhysAddr,
        size: usize,
        unmapped: &'static str,
    ) -> VCpuResult<(usize, usize)> {
        let (start, end) = check_gpa_range::<F>(gpa, size)?;
        if let Some(at) = self.find(start, end, true) {
            return Err(VCpuError::new(AxErrorKind::NotFound, unmapped).with_value(at as u64));
        }
        self.split_at(start)?;
        self.split_at(end)?;
        Ok((start, end))
    }

    /// The first address in `[start, end)` that is mapped (`want_mapped == false`) or
    /// unmapped (`want_mapped == true`).
    fn find(&self, start: usize, end: usize, want_mapped: bool) -> Option<usize> {
        fn walk<H: AxVCpuHal, F: PagingFormat>(
            table: HostPhysAddr,
            level: usize,
            start: usize,
            end: usize,
            want_mapped: bool,
        ) -> Result<(), usize> {
            for_each_entry::<F, usize>(level, start, end, |idx, s, e| {
                match F::decode(level, read::<H>(table, idx)) {
                    Pte::Leaf(..) if !want_mapped => Err(s),
                    Pte::Leaf(..) => Ok(()),
                    Pte::Table(next) if level > 0 => {
                        walk::<H, F>(next, level - 1, s, e, want_mapped)
                    }
                    _ if want_mapped => Err(s),
                    _ => Ok(()),
                }
            })
        }
        walk::<H, F>(self.root, top::<F>(), start, end, want_mapped).err()
    }

    /// Maps `[start, end)` (known to be unmapped) in the table at `level`, the host address
    /// of each guest address `g` being `g + delta`.
    fn map_in(
        &mut self,
        table: HostPhysAddr,
        level: usize,
        start: usize,
        end: usize,
        delta: usize,
        flags: MapFlags,
    ) -> VCpuResult {
        let size = level_size(level);
        for_each_entry::<F, VCpuError>(level, start, end, |idx, s, e| {
            let hpa = s.wrapping_add(delta);
            let whole = s % size == 0 && e - s == size;
            match F::decode(level, read::<H>(table, idx)) {
                Pte::Empty if whole && level <= F::MAX_LEAF_LEVEL && hpa % size == 0 => {
                    write::<H>(
                        table,
                        idx,
                        F::leaf_entry(level, HostPhysAddr::from(hpa), flags),
                    );
                    Ok(())
                }
                Pte::Empty if level > 0 => {
                    let next = Self::alloc_table()?;
                    write::<H>(table, idx, F::table_entry(next));
                    self.map_in(next, level - 1, s, e, delta, flags)
                }
                Pte::Table(next) if level > 0 => self.map_in(next, level - 1, s, e, delta, flags),
                _ => Err(
                    VCpuError::bad_state("map: met a mapping the range check missed")
                        .with_value(s as u64),
                ),
            }
        })
    }

    /// Makes sure no leaf straddles `addr`: splits each large leaf containing `addr` (but not
    /// starting there) into a table of 512 smaller leaves, down to where `addr` is a leaf
    /// boundary. Translation is unchanged whatever happens.
    fn split_at(&mut self, addr: usize) -> VCpuResult {
        if addr >= gpa_limit::<F>() {
            return Ok(());
        }
        let mut table = self.root;
        let mut level = top::<F>();
        loop {
            let idx = index::<F>(level, addr);
            match F::decode(level, read::<H>(table, idx)) {
                Pte::Table(next) if level > 0 => table = next,
                Pte::Leaf(hpa, flags) if level > 0 && addr % level_size(level) != 0 => {
                    let next = Self::alloc_table()?;
                    let sub = level_size(level - 1);
                    for i in 0..ENTRIES_PER_FRAME {
                        let e = F::leaf_entry(level - 1, hpa + i * sub, flags);
                        write::<H>(next, i, e);
                    }
                    write::<H>(table, idx, F::table_entry(next));
                    table = next;
                }
                _ => return Ok(()),
            }
            level -= 1;
        }
    }

    /// Removes every leaf inside `[start, end)` and frees the tables that become empty.
    fn clear_in(&mut self, table: HostPhysAddr, level: usize, start: usize, end: usize) {
        let size = level_size(level);
        let _ = for_each_entry::<F, ()>(level, start, end, |idx, s, e| {
            let whole = s % size == 0 && e - s == size;
            match F::decode(level, read::<H>(table, idx)) {
                Pte::Leaf(..) if whole => write::<H>(table, idx, 0),
                Pte::Table(next) if level > 0 => {
                    self.clear_in(next, level - 1, s, e);
                    if (0..ENTRIES_PER_FRAME).all(|i| read::<H>(next, i) == 0) {
                        // Unlink before freeing.
                        write::<H>(table, idx, 0);
                        H::dealloc_frame(next);
                    }
                }
                // A leaf straddling the range's ends cannot be here (split_at ran first).
                _ => {}
            }
            Ok(())
        });
    }

    /// Rewrites every leaf inside `[start, end)` with `flags`.
    fn protect_in(
        &mut self,
        table: HostPhysAddr,
        level: usize,
        start: usize,
        end: usize,
        flags: MapFlags,
    ) {
        let size = level_size(level);
        let _ = for_each_entry::<F, ()>(level, start, end, |idx, s, e| {
            let whole = s % size == 0 && e - s == size;
            match F::decode(level, read::<H>(table, idx)) {
                Pte::Leaf(hpa, _) if whole => {
                    write::<H>(table, idx, F::leaf_entry(level, hpa, flags))
                }
                Pte::Table(next) if level > 0 => self.protect_in(next, level - 1, s, e, flags),
                _ => {}
            }
            Ok(())
        });
    }

    /// Frees every table below the table at `level`.
    fn free_below(table: HostPhysAddr, level: usize) {
        if level == 0 {
            return;
        }
        for idx in 0..entries::<F>(level) {
            if let Pte::Table(next) = F::decode(level, read::<H>(table, idx)) {
                Self::free_below(next, level - 1);
                H::dealloc_frame(next);
            }
        }
    }
}

impl<H: AxVCpuHal, F: PagingFormat> Drop for NestedPageTable<H, F> {
    /// Frees every table frame, the root included (not the memory the table maps).
    fn drop(&mut self) {
        Self::free_below(self.root, top::<F>());
        if F::ROOT_FRAMES == 1 {
            H::dealloc_frame(self.root);
        } else {
            H::dealloc_contiguous_frames(self.root, F::ROOT_FRAMES);
        }
    }
}

impl<H: AxVCpuHal, F: PagingFormat> fmt::Debug for NestedPageTable<H, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NestedPageTable")
            .field("format", &F::NAME)
            .field("root", &self.root)
            .finish()
    }
}
