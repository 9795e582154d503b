//! RISC-V G-stage tables whose format is picked at run time: which `hgatp` modes a hart has
//! is known only once the hypervisor probes it, so a hypervisor (and a backend walking the
//! table it was given) names the format with a [`GStageMode`] value instead of a type.

use core::fmt;
use core::iter::FusedIterator;

use axvcpu::{AxVCpuHal, GuestPhysAddr, HostPhysAddr, VCpuResult};

use crate::{
    MapFlags, Mapping, Mappings, NestedPageTable, NptView, PagingFormat, RiscvSv39x4, RiscvSv48x4,
    Translation,
};

/// A RISC-V G-stage translation mode (`hgatp.MODE`): which of the two formats a table has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GStageMode {
    /// [`RiscvSv39x4`]: three levels, 41-bit guest-physical addresses.
    Sv39x4,
    /// [`RiscvSv48x4`]: four levels, 50-bit guest-physical addresses.
    Sv48x4,
}

impl GStageMode {
    /// Both modes, narrowest first.
    pub const ALL: [Self; 2] = [Self::Sv39x4, Self::Sv48x4];

    /// The `hgatp.MODE` value (8 or 9).
    pub const fn hgatp_mode(self) -> u64 {
        match self {
            Self::Sv39x4 => RiscvSv39x4::HGATP_MODE,
            Self::Sv48x4 => RiscvSv48x4::HGATP_MODE,
        }
    }

    /// The mode an `hgatp.MODE` value selects; `None` for Bare (0) and reserved values.
    pub const fn from_hgatp_mode(mode: u64) -> Option<Self> {
        match mode {
            RiscvSv39x4::HGATP_MODE => Some(Self::Sv39x4),
            RiscvSv48x4::HGATP_MODE => Some(Self::Sv48x4),
            _ => None,
        }
    }

    /// The `hgatp` value for a table of this mode with this `root` and `vmid` (see
    /// [`RiscvSv39x4::hgatp`]).
    pub const fn hgatp(self, root: HostPhysAddr, vmid: u16) -> u64 {
        match self {
            Self::Sv39x4 => RiscvSv39x4::hgatp(root, vmid),
            Self::Sv48x4 => RiscvSv48x4::hgatp(root, vmid),
        }
    }

    /// The number of table levels.
    pub const fn levels(self) -> usize {
        match self {
            Self::Sv39x4 => RiscvSv39x4::LEVELS,
            Self::Sv48x4 => RiscvSv48x4::LEVELS,
        }
    }

    /// The number of guest-physical address bits translated.
    pub const fn gpa_bits(self) -> u32 {
        match self {
            Self::Sv39x4 => RiscvSv39x4::GPA_BITS,
            Self::Sv48x4 => RiscvSv48x4::GPA_BITS,
        }
    }
}

/// Applies `$e` to the table or view inside either variant.
macro_rules! either {
    ($self:expr, $t:ident => $e:expr) => {
        match $self {
            Self::Sv39x4($t) => $e,
            Self::Sv48x4($t) => $e,
        }
    };
}

/// A G-stage table in the format of a [`GStageMode`] picked at run time: a
/// [`NestedPageTable`] of either RISC-V format, with the same methods.
pub enum GStageTable<H: AxVCpuHal> {
    /// An Sv39x4 table.
    Sv39x4(NestedPageTable<H, RiscvSv39x4>),
    /// An Sv48x4 table.
    Sv48x4(NestedPageTable<H, RiscvSv48x4>),
}

impl<H: AxVCpuHal> GStageTable<H> {
    /// Creates an empty table of format `mode` (see [`NestedPageTable::new`]).
    pub fn new(mode: GStageMode) -> VCpuResult<Self> {
        Ok(match mode {
            GStageMode::Sv39x4 => Self::Sv39x4(NestedPageTable::new()?),
            GStageMode::Sv48x4 => Self::Sv48x4(NestedPageTable::new()?),
        })
    }

    /// The table's format.
    pub fn mode(&self) -> GStageMode {
        match self {
            Self::Sv39x4(_) => GStageMode::Sv39x4,
            Self::Sv48x4(_) => GStageMode::Sv48x4,
        }
    }

    /// As [`NestedPageTable::root_paddr`].
    pub fn root_paddr(&self) -> HostPhysAddr {
        either!(self, t => t.root_paddr())
    }

    /// The `hgatp` value selecting this table with `vmid`.
    pub fn hgatp(&self, vmid: u16) -> u64 {
        self.mode().hgatp(self.root_paddr(), vmid)
    }

    /// As [`NestedPageTable::map`].
    pub fn map(
        &mut self,
        gpa: GuestPhysAddr,
        hpa: HostPhysAddr,
        size: usize,
        flags: MapFlags,
    ) -> VCpuResult {
        either!(self, t => t.map(gpa, hpa, size, flags))
    }

    /// As [`NestedPageTable::unmap`].
    pub fn unmap(&mut self, gpa: GuestPhysAddr, size: usize) -> VCpuResult {
        either!(self, t => t.unmap(gpa, size))
    }

    /// As [`NestedPageTable::protect`].
    pub fn protect(&mut self, gpa: GuestPhysAddr, size: usize, flags: MapFlags) -> VCpuResult {
        either!(self, t => t.protect(gpa, size, flags))
    }

    /// As [`NestedPageTable::query`].
    pub fn query(&self, gpa: GuestPhysAddr) -> Option<(HostPhysAddr, MapFlags, usize)> {
        either!(self, t => t.query(gpa))
    }

    /// As [`NestedPageTable::translate`].
    pub fn translate(&self, gpa: GuestPhysAddr) -> Option<Translation> {
        either!(self, t => t.translate(gpa))
    }

    /// As [`NestedPageTable::mappings`].
    pub fn mappings(&self) -> GStageMappings<'_, H> {
        match self {
            Self::Sv39x4(t) => GStageMappings::Sv39x4(t.mappings()),
            Self::Sv48x4(t) => GStageMappings::Sv48x4(t.mappings()),
        }
    }
}

impl<H: AxVCpuHal> fmt::Debug for GStageTable<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        either!(self, t => t.fmt(f))
    }
}

/// A read-only view of a G-stage table known by its root and its [`GStageMode`]: an
/// [`NptView`] of either RISC-V format, e.g. what a backend walks from the root it was given
/// and the mode it was configured with.
pub enum GStageView<H: AxVCpuHal> {
    /// A view of an Sv39x4 table.
    Sv39x4(NptView<H, RiscvSv39x4>),
    /// A view of an Sv48x4 table.
    Sv48x4(NptView<H, RiscvSv48x4>),
}

impl<H: AxVCpuHal> GStageView<H> {
    /// A view of the table of format `mode` whose root is at `root`.
    ///
    /// # Errors
    /// As [`NptView::from_root`].
    ///
    /// # Safety
    /// As [`NptView::from_root`], with the format `mode` names: `root` is the root of a live
    /// `NestedPageTable<H, _>` (or [`GStageTable<H>`]) of that mode.
    pub unsafe fn from_root(mode: GStageMode, root: HostPhysAddr) -> VCpuResult<Self> {
        // SAFETY: the caller upholds `NptView::from_root`'s contract for this format.
        Ok(unsafe {
            match mode {
                GStageMode::Sv39x4 => Self::Sv39x4(NptView::from_root(root)?),
                GStageMode::Sv48x4 => Self::Sv48x4(NptView::from_root(root)?),
            }
        })
    }

    /// The format of the table viewed.
    pub fn mode(&self) -> GStageMode {
        match self {
            Self::Sv39x4(_) => GStageMode::Sv39x4,
            Self::Sv48x4(_) => GStageMode::Sv48x4,
        }
    }

    /// The root this view walks.
    pub fn root_paddr(&self) -> HostPhysAddr {
        either!(self, v => v.root_paddr())
    }

    /// As [`NestedPageTable::query`].
    pub fn query(&self, gpa: GuestPhysAddr) -> Option<(HostPhysAddr, MapFlags, usize)> {
        either!(self, v => v.query(gpa))
    }

    /// As [`NestedPageTable::translate`].
    pub fn translate(&self, gpa: GuestPhysAddr) -> Option<Translation> {
        either!(self, v => v.translate(gpa))
    }

    /// As [`NestedPageTable::mappings`].
    pub fn mappings(&self) -> GStageMappings<'_, H> {
        match self {
            Self::Sv39x4(v) => GStageMappings::Sv39x4(v.mappings()),
            Self::Sv48x4(v) => GStageMappings::Sv48x4(v.mappings()),
        }
    }
}

impl<H: AxVCpuHal> Clone for GStageView<H> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<H: AxVCpuHal> Copy for GStageView<H> {}

impl<H: AxVCpuHal> fmt::Debug for GStageView<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        either!(self, v => v.fmt(f))
    }
}

/// The mappings of a [`GStageTable`] or [`GStageView`], as [`Mappings`] gives them.
#[derive(Debug)]
pub enum GStageMappings<'a, H> {
    /// Of an Sv39x4 table.
    Sv39x4(Mappings<'a, H, RiscvSv39x4>),
    /// Of an Sv48x4 table.
    Sv48x4(Mappings<'a, H, RiscvSv48x4>),
}

impl<H: AxVCpuHal> Iterator for GStageMappings<'_, H> {
    type Item = Mapping;

    fn next(&mut self) -> Option<Mapping> {
        either!(self, m => m.next())
    }
}

impl<H: AxVCpuHal> FusedIterator for GStageMappings<'_, H> {}
