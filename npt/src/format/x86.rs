//! x86-64 / AMD NPT.

use axvcpu::{AxErrorKind, HostPhysAddr, VCpuError, VCpuResult};

use super::{addr, common_flag_checks, level_size, sealed, PagingFormat, Pte};
use crate::MapFlags;

/// The x86-64 4-level long-mode page-table format, as AMD nested paging (NPT) walks it from
/// the VMCB's `N_CR3` (put [`root_paddr`](crate::NestedPageTable::root_paddr) there as is).
///
/// * 48-bit guest-physical addresses, 52-bit host-physical addresses, one-frame root (PML4).
/// * Leaves of 4 KiB (PTE), 2 MiB (PDE with PS) and 1 GiB (PDPTE with PS).
/// * Every entry has P and U/S set (nested walks are user accesses); table entries are
///   `next | P | RW | US` (0x7) so the leaves alone decide permissions.
/// * A leaf is `hpa | P | US`, plus RW for [`MapFlags::WRITE`], plus NX (bit 63) unless
///   [`MapFlags::EXECUTE`] (NX is honoured when the host runs with `EFER.NXE = 1`).
///   PWT = PCD = PAT = 0: write-back, combined with the guest's own memory type.
/// * A present entry is always readable, so every mapping must include [`MapFlags::READ`].
///
/// This is not Intel's EPT format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct X86Npt;

impl X86Npt {
    /// P: present.
    pub const P: u64 = 1 << 0;
    /// R/W: writable.
    pub const RW: u64 = 1 << 1;
    /// U/S: user-accessible (required on every NPT entry).
    pub const US: u64 = 1 << 2;
    /// PS: this PDE/PDPTE is a 2 MiB / 1 GiB leaf.
    pub const PS: u64 = 1 << 7;
    /// A: accessed, set by the processor's nested walk.
    pub const A: u64 = 1 << 5;
    /// D: dirty, set by the processor on a write through a leaf.
    pub const D: u64 = 1 << 6;
    /// NX: no execute.
    pub const NX: u64 = 1 << 63;
    /// The address bits 12..52.
    pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
}

impl sealed::Sealed for X86Npt {}

impl PagingFormat for X86Npt {
    const NAME: &'static str = "x86-64 NPT";
    const LEVELS: usize = 4;
    const ROOT_FRAMES: usize = 1;
    const MAX_LEAF_LEVEL: usize = 2;
    const PA_BITS: u32 = 52;

    fn check_flags(flags: MapFlags) -> VCpuResult {
        common_flag_checks(flags)?;
        if !flags.contains(MapFlags::READ) {
            return Err(VCpuError::new(
                AxErrorKind::Unsupported,
                "x86 NPT cannot express a mapping without READ (present pages are readable)",
            )
            .with_value(flags.bits() as u64));
        }
        Ok(())
    }

    fn table_entry(table: HostPhysAddr) -> u64 {
        (table.as_usize() as u64 & Self::ADDR_MASK) | Self::P | Self::RW | Self::US
    }

    fn leaf_entry(level: usize, hpa: HostPhysAddr, flags: MapFlags) -> u64 {
        let mut e = (hpa.as_usize() as u64 & Self::ADDR_MASK) | Self::P | Self::US;
        if flags.contains(MapFlags::WRITE) {
            e |= Self::RW;
        }
        if !flags.contains(MapFlags::EXECUTE) {
            e |= Self::NX;
        }
        if level > 0 {
            e |= Self::PS;
        }
        e
    }

    fn decode(level: usize, entry: u64) -> Pte {
        if entry & Self::P == 0 {
            return Pte::Empty;
        }
        let pa = entry & Self::ADDR_MASK;
        let leaf = |pa: u64| {
            let mut flags = MapFlags::READ;
            if entry & Self::RW != 0 {
                flags |= MapFlags::WRITE;
            }
            if entry & Self::NX == 0 {
                flags |= MapFlags::EXECUTE;
            }
            Pte::Leaf(addr(pa), flags)
        };
        match level {
            // In a PTE, bit 7 is PAT, not PS.
            0 => leaf(pa),
            // Bit 12 of a large leaf is its PAT bit: mask everything below the leaf size.
            1 | 2 if entry & Self::PS != 0 => leaf(pa & !(level_size(level) as u64 - 1)),
            1..=3 if entry & Self::PS == 0 => Pte::Table(addr(pa)),
            // PS in a PML4E is reserved.
            _ => Pte::Empty,
        }
    }

    fn accessed(entry: u64) -> bool {
        entry & Self::A != 0
    }

    fn dirty(entry: u64) -> bool {
        entry & Self::D != 0
    }
}
