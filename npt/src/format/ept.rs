//! Intel EPT.

use axvcpu::{AxErrorKind, HostPhysAddr, VCpuError, VCpuResult};

use super::{addr, common_flag_checks, level_size, sealed, PagingFormat, Pte};
use crate::MapFlags;

/// Intel's extended page tables (EPT, SDM vol. 3C §29.3), as VMX walks them from the
/// VMCS's EPT pointer ([`eptp`](Ept::eptp) of [`root_paddr`](crate::NestedPageTable::root_paddr)).
///
/// * 4 levels, 48-bit guest-physical addresses, 52-bit host-physical addresses, one-frame
///   root (PML4).
/// * Leaves of 4 KiB (PTE), 2 MiB (PDE with bit 7) and 1 GiB (PDPTE with bit 7; the CPU must
///   report 1 GiB pages, `IA32_VMX_EPT_VPID_CAP` bit 17).
/// * Permissions are bits: R (0), W (1), X (2). An entry with none of them is not present.
/// * Table entries are `next | R | W | X` (0x7) so the leaves alone decide permissions;
///   their bits 3..8 are reserved and zero.
/// * A leaf is `hpa | perms | memory type WB (6 << 3)`, plus bit 7 for large leaves. IPAT
///   (bit 6) is clear: the guest's PAT combines with WB as on bare metal. Accessed (bit 8)
///   and dirty (bit 9) are left to the processor (recorded when the EPTP enables them).
/// * Write without read is a misconfiguration to the hardware, so `check_flags` refuses
///   [`MapFlags::WRITE`] without [`MapFlags::READ`]. Execute-only pages need the CPU's
///   execute-only capability (`IA32_VMX_EPT_VPID_CAP` bit 0; Bochs has it).
///
/// Reserved encodings (W without R, memory types 2, 3 and 7 in a leaf, bit 7 in a PML4E,
/// reserved bits in a table entry) decode as [`Pte::Empty`]: the hardware would report an
/// EPT misconfiguration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Ept;

impl Ept {
    /// R: readable.
    pub const R: u64 = 1 << 0;
    /// W: writable.
    pub const W: u64 = 1 << 1;
    /// X: executable (supervisor-mode execute when mode-based control is on).
    pub const X: u64 = 1 << 2;
    /// The memory-type field of a leaf (bits 3..6).
    pub const MEMORY_TYPE_MASK: u64 = 7 << 3;
    /// Memory type write-back (6) in a leaf's memory-type field.
    pub const MEMORY_TYPE_WB: u64 = 6 << 3;
    /// IPAT: ignore the guest's PAT (left clear).
    pub const IPAT: u64 = 1 << 6;
    /// This PDE/PDPTE is a 2 MiB / 1 GiB leaf.
    pub const LARGE: u64 = 1 << 7;
    /// Accessed, set by the processor when the EPTP enables accessed/dirty flags.
    pub const A: u64 = 1 << 8;
    /// Dirty (leaves), set by the processor when the EPTP enables accessed/dirty flags.
    pub const D: u64 = 1 << 9;
    /// The address bits 12..52.
    pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

    /// EPTP memory type write-back (bits 0..3 = 6).
    pub const EPTP_WB: u64 = 6;
    /// EPTP page-walk length 4 (bits 3..6 = length - 1).
    pub const EPTP_WALK_4: u64 = 3 << 3;
    /// EPTP bit 6: the processor records accessed and dirty flags.
    pub const EPTP_AD: u64 = 1 << 6;

    /// The EPT pointer for the table rooted at `root`: write-back paging-structure accesses,
    /// a 4-level walk, and accessed/dirty flags when `accessed_dirty` (the CPU must report
    /// them: `IA32_VMX_EPT_VPID_CAP` bit 21).
    pub const fn eptp(root: HostPhysAddr, accessed_dirty: bool) -> u64 {
        let ad = if accessed_dirty { Self::EPTP_AD } else { 0 };
        (root.as_usize() as u64 & Self::ADDR_MASK) | Self::EPTP_WB | Self::EPTP_WALK_4 | ad
    }
}

impl sealed::Sealed for Ept {}

impl PagingFormat for Ept {
    const NAME: &'static str = "Intel EPT";
    const LEVELS: usize = 4;
    const ROOT_FRAMES: usize = 1;
    const MAX_LEAF_LEVEL: usize = 2;
    const PA_BITS: u32 = 52;

    fn check_flags(flags: MapFlags) -> VCpuResult {
        common_flag_checks(flags)?;
        if flags.contains(MapFlags::WRITE) && !flags.contains(MapFlags::READ) {
            return Err(VCpuError::new(
                AxErrorKind::Unsupported,
                "EPT cannot express a writable page that is not readable (a misconfiguration)",
            )
            .with_value(flags.bits() as u64));
        }
        Ok(())
    }

    fn table_entry(table: HostPhysAddr) -> u64 {
        (table.as_usize() as u64 & Self::ADDR_MASK) | Self::R | Self::W | Self::X
    }

    fn leaf_entry(level: usize, hpa: HostPhysAddr, flags: MapFlags) -> u64 {
        let mut e = (hpa.as_usize() as u64 & Self::ADDR_MASK) | Self::MEMORY_TYPE_WB;
        if flags.contains(MapFlags::READ) {
            e |= Self::R;
        }
        if flags.contains(MapFlags::WRITE) {
            e |= Self::W;
        }
        if flags.contains(MapFlags::EXECUTE) {
            e |= Self::X;
        }
        if level > 0 {
            e |= Self::LARGE;
        }
        e
    }

    fn decode(level: usize, entry: u64) -> Pte {
        let perms = entry & (Self::R | Self::W | Self::X);
        if perms == 0 {
            return Pte::Empty;
        }
        if perms & Self::W != 0 && perms & Self::R == 0 {
            return Pte::Empty;
        }
        let pa = entry & Self::ADDR_MASK;
        let leaf = |pa: u64| {
            // Memory types 2, 3 and 7 are reserved.
            if matches!((entry & Self::MEMORY_TYPE_MASK) >> 3, 2 | 3 | 7) {
                return Pte::Empty;
            }
            let mut flags = MapFlags::empty();
            for (bit, flag) in [
                (Self::R, MapFlags::READ),
                (Self::W, MapFlags::WRITE),
                (Self::X, MapFlags::EXECUTE),
            ] {
                if entry & bit != 0 {
                    flags |= flag;
                }
            }
            Pte::Leaf(addr(pa), flags)
        };
        match level {
            // In a PTE, bit 7 is ignored.
            0 => leaf(pa),
            // A large leaf's address bits below its size are reserved: mask them.
            1 | 2 if entry & Self::LARGE != 0 => leaf(pa & !(level_size(level) as u64 - 1)),
            // Bits 3..8 of a table entry are reserved.
            1..=3 if entry & 0xf8 == 0 => Pte::Table(addr(pa)),
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
