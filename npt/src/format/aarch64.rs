//! AArch64 stage 2.

use axvcpu::{HostPhysAddr, VCpuResult};

use super::{addr, common_flag_checks, level_size, sealed, PagingFormat, Pte};
use crate::MapFlags;

/// AArch64 stage-2 translation with the 4 KiB granule: 3 levels starting at Arm's level 1,
/// 39-bit IPA (`VTCR_EL2.T0SZ = 25`, `SL0 = 0b01`), a one-frame root, 48-bit output
/// addresses. Program `VTCR_EL2` with [`vtcr_el2`](Self::vtcr_el2) and `VTTBR_EL2` with
/// [`vttbr_el2`](Self::vttbr_el2).
///
/// * Table descriptors are `next | 0b11` (stage-2 table descriptors have no attribute bits).
/// * Block (Arm level 1: 1 GiB, level 2: 2 MiB) and page (level 3: 4 KiB) descriptors are
///   `hpa | valid | (0b10 for a page) | MemAttr 0b1111 (Normal, inner + outer write-back)
///   << 2 | S2AP << 6 | SH 0b11 (inner shareable) << 8 | AF << 10`, plus XN (bit 54) when
///   not executable. S2AP is 0b01 for READ, 0b10 for WRITE, 0b11 for both.
/// * Every non-empty flag set is expressible (write-only and execute-only included).
/// * All mappings are Normal write-back memory: do not map device MMIO through this table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Aarch64Stage2;

impl Aarch64Stage2 {
    /// Bit 0: valid.
    pub const VALID: u64 = 1 << 0;
    /// Bit 1: table (at Arm levels 1-2) or page (at Arm level 3); 0 means block.
    pub const TABLE_OR_PAGE: u64 = 1 << 1;
    /// `MemAttr[3:0]` = 0b1111 in bits 5:2: Normal memory, outer and inner write-back.
    pub const MEMATTR_NORMAL_WB: u64 = 0b1111 << 2;
    /// `S2AP[0]` (bit 6): read access.
    pub const S2AP_READ: u64 = 1 << 6;
    /// `S2AP[1]` (bit 7): write access.
    pub const S2AP_WRITE: u64 = 1 << 7;
    /// `SH[1:0]` = 0b11 in bits 9:8: inner shareable.
    pub const SH_INNER: u64 = 0b11 << 8;
    /// AF (bit 10): access flag, preset so no access-flag fault is taken.
    pub const AF: u64 = 1 << 10;
    /// XN (bit 54; `XN[1:0]` = 0b10 with FEAT_XNX): not executable at EL1 or EL0.
    pub const XN: u64 = 1 << 54;
    /// The output-address bits 47:12.
    pub const OA_MASK: u64 = 0x0000_ffff_ffff_f000;

    /// `VTCR_EL2` for this format, except the PS field (bits 18:16): T0SZ = 25 (39-bit IPA),
    /// SL0 = 0b01 (start at level 1), IRGN0 = ORGN0 = 0b01 (walks write-back cacheable),
    /// SH0 = 0b11 (inner shareable), TG0 = 0b00 (4 KiB granule), VS = 0 (8-bit VMID),
    /// HA = HD = 0, and bit 31 (RES1) set.
    pub const VTCR_EL2_BASE: u64 =
        (1 << 31) | (0b11 << 12) | (0b01 << 10) | (0b01 << 8) | (0b01 << 6) | 25;

    /// The `VTCR_EL2` value to program, given the host's `ID_AA64MMFR0_EL1.PARange` (bits
    /// 3:0): [`VTCR_EL2_BASE`](Self::VTCR_EL2_BASE) with PS = PARange, capped at 0b101
    /// (48 bits, the widest output address these descriptors hold). `None` when PARange is
    /// below 0b010 (40 bits): the 39-bit IPA needs at least that.
    pub const fn vtcr_el2(id_aa64mmfr0_parange: u64) -> Option<u64> {
        let parange = id_aa64mmfr0_parange & 0xf;
        if parange < 0b010 {
            return None;
        }
        let ps = if parange > 0b101 { 0b101 } else { parange };
        Some(Self::VTCR_EL2_BASE | (ps << 16))
    }

    /// The `VTTBR_EL2` value for a table with this `root` and 8-bit `vmid`: VMID in bits
    /// 55:48, BADDR = root, CnP = 0.
    pub const fn vttbr_el2(root: HostPhysAddr, vmid: u8) -> u64 {
        ((vmid as u64) << 48) | (root.as_usize() as u64 & Self::OA_MASK)
    }
}

impl sealed::Sealed for Aarch64Stage2 {}

impl PagingFormat for Aarch64Stage2 {
    const NAME: &'static str = "AArch64 stage 2 (4 KiB granule, 39-bit IPA)";
    const LEVELS: usize = 3;
    const ROOT_FRAMES: usize = 1;
    const MAX_LEAF_LEVEL: usize = 2;
    const PA_BITS: u32 = 48;

    fn check_flags(flags: MapFlags) -> VCpuResult {
        common_flag_checks(flags)
    }

    fn table_entry(table: HostPhysAddr) -> u64 {
        (table.as_usize() as u64 & Self::OA_MASK) | Self::VALID | Self::TABLE_OR_PAGE
    }

    fn leaf_entry(level: usize, hpa: HostPhysAddr, flags: MapFlags) -> u64 {
        let mut e = (hpa.as_usize() as u64 & Self::OA_MASK)
            | Self::VALID
            | Self::MEMATTR_NORMAL_WB
            | Self::SH_INNER
            | Self::AF;
        if level == 0 {
            e |= Self::TABLE_OR_PAGE;
        }
        if flags.contains(MapFlags::READ) {
            e |= Self::S2AP_READ;
        }
        if flags.contains(MapFlags::WRITE) {
            e |= Self::S2AP_WRITE;
        }
        if !flags.contains(MapFlags::EXECUTE) {
            e |= Self::XN;
        }
        e
    }

    fn decode(level: usize, entry: u64) -> Pte {
        if entry & Self::VALID == 0 {
            return Pte::Empty;
        }
        let pa = entry & Self::OA_MASK;
        let leaf = |pa: u64| {
            let mut flags = MapFlags::empty();
            if entry & Self::S2AP_READ != 0 {
                flags |= MapFlags::READ;
            }
            if entry & Self::S2AP_WRITE != 0 {
                flags |= MapFlags::WRITE;
            }
            // XN[1:0] = 0b00: executable at EL1 and EL0.
            if entry & (0b11 << 53) == 0 {
                flags |= MapFlags::EXECUTE;
            }
            Pte::Leaf(addr(pa), flags)
        };
        let table_or_page = entry & Self::TABLE_OR_PAGE != 0;
        match level {
            0 if table_or_page => leaf(pa),
            1 | 2 if table_or_page => Pte::Table(addr(pa)),
            1 | 2 => leaf(pa & !(level_size(level) as u64 - 1)),
            // A block-shaped entry at Arm level 3 is reserved; deeper levels do not exist.
            _ => Pte::Empty,
        }
    }

    fn accessed(entry: u64) -> bool {
        entry & Self::AF != 0
    }

    /// Stage 2 has no dirty bit without FEAT_HAFDBS (and these tables do not use its DBM):
    /// every writable leaf may have been written.
    fn dirty(entry: u64) -> bool {
        entry & Self::S2AP_WRITE != 0
    }
}
