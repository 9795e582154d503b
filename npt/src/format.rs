//! The page-table formats: geometry constants and the bit-exact encoding of entries.
//!
//! Levels are numbered from the leaves up: level 0 holds 4 KiB pages, level 1 entries map
//! 2 MiB, level 2 entries map 1 GiB, and level [`LEVELS`](PagingFormat::LEVELS)` - 1` is the
//! root. (Arm numbers the other way round: our level 2, 1, 0 are Arm's levels 1, 2, 3.)

use axvcpu::{AxErrorKind, HostPhysAddr, VCpuError, VCpuResult};

use crate::MapFlags;

mod sealed {
    pub trait Sealed {}
}

/// What one page-table entry means, as [`PagingFormat::decode`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pte {
    /// Nothing is mapped through this entry: it is invalid, or uses an encoding the format
    /// reserves (which the hardware would fault on).
    Empty,
    /// A pointer to the next-level table at this host-physical address.
    Table(HostPhysAddr),
    /// A leaf mapping the whole range the entry covers to this host-physical address (aligned
    /// to the leaf size) with these permissions.
    Leaf(HostPhysAddr, MapFlags),
}

/// A nested-page-table format: its geometry and the bit-exact encoding of its entries.
///
/// Every format has 4 KiB pages, 512 eight-byte entries per table frame, and a root of
/// [`ROOT_FRAMES`](Self::ROOT_FRAMES) frames aligned to its own size. The trait is sealed: the
/// formats are [`X86Npt`], [`RiscvSv39x4`], [`RiscvSv48x4`] and [`Aarch64Stage2`].
pub trait PagingFormat: sealed::Sealed + Send + Sync + 'static {
    /// A human-readable name, e.g. `"RISC-V Sv39x4"`.
    const NAME: &'static str;
    /// Number of table levels, the root included.
    const LEVELS: usize;
    /// Number of 4 KiB frames in the root table (the root is aligned to its size).
    const ROOT_FRAMES: usize;
    /// The highest level at which [`NestedPageTable::map`](crate::NestedPageTable::map) puts
    /// leaves (1 = 2 MiB, 2 = 1 GiB).
    const MAX_LEAF_LEVEL: usize;
    /// Width of the host-physical addresses entries can hold.
    const PA_BITS: u32;
    /// Width of the guest-physical addresses the table translates: 12 bits of page offset, 9
    /// per level, plus 2 when the root has 4 frames. Derived; no format overrides it.
    const GPA_BITS: u32 = 12 + 9 * Self::LEVELS as u32 + Self::ROOT_FRAMES.trailing_zeros();

    /// Checks that this format can express a leaf with exactly `flags`. Every format refuses
    /// an empty set and unknown bits; see each format for what else it refuses.
    fn check_flags(flags: MapFlags) -> VCpuResult;

    /// The entry pointing to the next-level table at `table` (4 KiB aligned).
    fn table_entry(table: HostPhysAddr) -> u64;

    /// The leaf entry at `level` mapping to `hpa` (aligned to the leaf size) with `flags`
    /// (accepted by [`check_flags`](Self::check_flags)).
    fn leaf_entry(level: usize, hpa: HostPhysAddr, flags: MapFlags) -> u64;

    /// What `entry`, found in a table at `level`, means. Never panics: reserved or malformed
    /// encodings decode as [`Pte::Empty`].
    fn decode(level: usize, entry: u64) -> Pte;
}

/// The size of the range one entry at `level` covers.
pub(crate) const fn level_size(level: usize) -> usize {
    1 << (12 + 9 * level)
}

fn common_flag_checks(flags: MapFlags) -> VCpuResult {
    if flags.bits() & !MapFlags::all().bits() != 0 {
        return Err(
            VCpuError::invalid_input("flags: unknown bits set").with_value(flags.bits() as u64)
        );
    }
    if flags.is_empty() {
        return Err(VCpuError::invalid_input(
            "flags grant no access (to remove access, unmap the range)",
        ));
    }
    Ok(())
}

fn addr(pa: u64) -> HostPhysAddr {
    HostPhysAddr::from(pa as usize)
}

// ---------------------------------------------------------------------------------------------
// x86-64 / AMD NPT

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
}

// ---------------------------------------------------------------------------------------------
// RISC-V G-stage

/// Bits shared by the RISC-V G-stage formats.
mod rv {
    use super::*;

    pub const V: u64 = 1 << 0;
    pub const R: u64 = 1 << 1;
    pub const W: u64 = 1 << 2;
    pub const X: u64 = 1 << 3;
    pub const U: u64 = 1 << 4;
    pub const A: u64 = 1 << 6;
    pub const D: u64 = 1 << 7;
    const PPN_SHIFT: u32 = 10;
    const PPN_MASK: u64 = (1 << 44) - 1;

    pub fn check_flags(flags: MapFlags) -> VCpuResult {
        common_flag_checks(flags)?;
        if flags.contains(MapFlags::WRITE) && !flags.contains(MapFlags::READ) {
            return Err(VCpuError::new(
                AxErrorKind::Unsupported,
                "RISC-V cannot express WRITE without READ (W=1, R=0 is reserved)",
            )
            .with_value(flags.bits() as u64));
        }
        Ok(())
    }

    fn ppn(pa: HostPhysAddr) -> u64 {
        ((pa.as_usize() as u64 >> 12) & PPN_MASK) << PPN_SHIFT
    }

    pub fn table_entry(table: HostPhysAddr) -> u64 {
        ppn(table) | V
    }

    pub fn leaf_entry(hpa: HostPhysAddr, flags: MapFlags) -> u64 {
        let mut e = ppn(hpa) | V | U | A;
        if flags.contains(MapFlags::READ) {
            e |= R;
        }
        if flags.contains(MapFlags::WRITE) {
            e |= W | D;
        }
        if flags.contains(MapFlags::EXECUTE) {
            e |= X;
        }
        e
    }

    pub fn decode(level: usize, entry: u64) -> Pte {
        if entry & V == 0 {
            return Pte::Empty;
        }
        let pa = ((entry >> PPN_SHIFT) & PPN_MASK) << 12;
        let rwx = entry & (R | W | X);
        if rwx == 0 {
            // A pointer; at level 0 there is nothing to point to.
            return if level == 0 {
                Pte::Empty
            } else {
                Pte::Table(addr(pa))
            };
        }
        if rwx & (R | W) == W || entry & U == 0 {
            // W without R is reserved; a G-stage leaf without U faults on every access.
            return Pte::Empty;
        }
        if pa & (level_size(level) as u64 - 1) != 0 {
            // A misaligned superpage faults.
            return Pte::Empty;
        }
        let mut flags = MapFlags::empty();
        if entry & R != 0 {
            flags |= MapFlags::READ;
        }
        if entry & W != 0 {
            flags |= MapFlags::WRITE;
        }
        if entry & X != 0 {
            flags |= MapFlags::EXECUTE;
        }
        Pte::Leaf(addr(pa), flags)
    }

    pub const fn hgatp(mode: u64, root: HostPhysAddr, vmid: u16) -> u64 {
        (mode << 60) | ((vmid as u64 & 0x3fff) << 44) | ((root.as_usize() as u64 >> 12) & PPN_MASK)
    }
}

macro_rules! riscv_format {
    ($(#[$doc:meta])* $name:ident, $display:literal, $levels:literal, $mode:literal) => {
        $(#[$doc])*
        ///
        /// Shared by both G-stage formats:
        /// * The root is 16 KiB (2048 entries), aligned to 16 KiB: the guest-physical address
        ///   is 2 bits wider than the Sv39/Sv48 virtual address. The HAL must implement
        ///   [`alloc_contiguous_frames`](axvcpu::AxVCpuHal::alloc_contiguous_frames).
        /// * Table entries are `PPN << 10 | V` (R = W = X = U = A = D = 0, as the spec
        ///   requires of non-leaf entries).
        /// * Leaves are `PPN << 10 | V | U | A`, plus R, W | D, X per the flags: U = 1 because
        ///   every G-stage access is checked as a U-mode access; A (and D when writable) are
        ///   preset so hardware without A/D updating does not fault; G = 0 (unused in
        ///   G-stage). Leaves of 4 KiB, 2 MiB and 1 GiB.
        /// * WRITE without READ is reserved and refused; execute-only is allowed.
        /// * 56-bit host-physical addresses (44-bit PPN).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
        pub struct $name;

        impl $name {
            /// The `hgatp.MODE` value selecting this format.
            pub const HGATP_MODE: u64 = $mode;

            /// The `hgatp` value for a table with this `root` and `vmid`: MODE in bits
            /// 63:60, VMID (14 bits kept) in bits 57:44, root PPN in bits 43:0.
            pub const fn hgatp(root: HostPhysAddr, vmid: u16) -> u64 {
                rv::hgatp(Self::HGATP_MODE, root, vmid)
            }
        }

        impl sealed::Sealed for $name {}

        impl PagingFormat for $name {
            const NAME: &'static str = $display;
            const LEVELS: usize = $levels;
            const ROOT_FRAMES: usize = 4;
            const MAX_LEAF_LEVEL: usize = 2;
            const PA_BITS: u32 = 56;

            fn check_flags(flags: MapFlags) -> VCpuResult {
                rv::check_flags(flags)
            }

            fn table_entry(table: HostPhysAddr) -> u64 {
                rv::table_entry(table)
            }

            fn leaf_entry(_level: usize, hpa: HostPhysAddr, flags: MapFlags) -> u64 {
                rv::leaf_entry(hpa, flags)
            }

            fn decode(level: usize, entry: u64) -> Pte {
                rv::decode(level, entry)
            }
        }
    };
}

riscv_format!(
    /// RISC-V Sv39x4 G-stage translation (`hgatp.MODE = 8`): 3 levels, 41-bit guest-physical
    /// addresses.
    RiscvSv39x4,
    "RISC-V Sv39x4",
    3,
    8
);

riscv_format!(
    /// RISC-V Sv48x4 G-stage translation (`hgatp.MODE = 9`): 4 levels, 50-bit guest-physical
    /// addresses.
    RiscvSv48x4,
    "RISC-V Sv48x4",
    4,
    9
);

// ---------------------------------------------------------------------------------------------
// AArch64 stage 2

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry() {
        assert_eq!(X86Npt::GPA_BITS, 48);
        assert_eq!(RiscvSv39x4::GPA_BITS, 41);
        assert_eq!(RiscvSv48x4::GPA_BITS, 50);
        assert_eq!(Aarch64Stage2::GPA_BITS, 39);
    }

    #[test]
    fn register_values() {
        // T0SZ 25 | SL0 1 | IRGN0 1 | ORGN0 1 | SH0 3 | TG0 0 | PS 40-bit | RES1.
        assert_eq!(Aarch64Stage2::VTCR_EL2_BASE, 0x8000_3559);
        assert_eq!(Aarch64Stage2::vtcr_el2(0b010), Some(0x8002_3559));
        assert_eq!(Aarch64Stage2::vtcr_el2(0b110), Some(0x8005_3559));
        assert_eq!(Aarch64Stage2::vtcr_el2(0b001), None);
        assert_eq!(
            Aarch64Stage2::vttbr_el2(HostPhysAddr::from(0x8_1234_5000), 7),
            0x0007_0008_1234_5000
        );
        assert_eq!(
            RiscvSv39x4::hgatp(HostPhysAddr::from(0x8020_4000), 5),
            (8 << 60) | (5 << 44) | 0x80204
        );
        assert_eq!(
            RiscvSv48x4::hgatp(HostPhysAddr::from(0x4000), 0xffff) >> 60,
            9
        );
        assert_eq!(
            (RiscvSv48x4::hgatp(HostPhysAddr::from(0x4000), 0xffff) >> 44) & 0xffff,
            0x3fff
        );
    }

    fn round_trip<F: PagingFormat>() {
        for level in 0..=F::MAX_LEAF_LEVEL {
            let hpa = HostPhysAddr::from(level_size(level) * 3);
            for bits in 0..8u8 {
                let flags = MapFlags::from_bits_retain(bits);
                if F::check_flags(flags).is_ok() {
                    let e = F::leaf_entry(level, hpa, flags);
                    assert_eq!(
                        F::decode(level, e),
                        Pte::Leaf(hpa, flags),
                        "{} {level} {bits}",
                        F::NAME
                    );
                }
            }
        }
        for level in 1..F::LEVELS {
            let t = HostPhysAddr::from(0x7000);
            assert_eq!(F::decode(level, F::table_entry(t)), Pte::Table(t));
        }
        // Level 0 has no tables: a table-shaped entry there is a page or nothing.
        assert!(!matches!(
            F::decode(0, F::table_entry(HostPhysAddr::from(0x7000))),
            Pte::Table(_)
        ));
        for level in 0..F::LEVELS + 2 {
            assert_eq!(F::decode(level, 0), Pte::Empty);
            // Any bit pattern decodes without panicking.
            for e in [
                u64::MAX,
                0x8000_0000_0000_0001,
                0x5555_5555_5555_5555,
                0xaaaa_aaaa_aaaa_aaab,
            ] {
                let _ = F::decode(level, e);
            }
        }
    }

    #[test]
    fn encodings_round_trip() {
        round_trip::<X86Npt>();
        round_trip::<RiscvSv39x4>();
        round_trip::<RiscvSv48x4>();
        round_trip::<Aarch64Stage2>();
    }

    #[test]
    fn flag_support() {
        use MapFlags as M;
        let ok = |r: VCpuResult| r.is_ok();
        for f in [M::READ, M::READ | M::WRITE, M::READ | M::EXECUTE, M::all()] {
            assert!(ok(X86Npt::check_flags(f)) && ok(RiscvSv39x4::check_flags(f)));
            assert!(ok(Aarch64Stage2::check_flags(f)));
        }
        assert!(!ok(X86Npt::check_flags(M::EXECUTE)));
        assert!(ok(RiscvSv48x4::check_flags(M::EXECUTE)));
        assert!(!ok(RiscvSv48x4::check_flags(M::WRITE)));
        assert!(!ok(RiscvSv48x4::check_flags(M::WRITE | M::EXECUTE)));
        assert!(ok(Aarch64Stage2::check_flags(M::WRITE)));
        for f in [M::empty(), M::from_bits_retain(0x81)] {
            assert!(!ok(X86Npt::check_flags(f)) && !ok(RiscvSv39x4::check_flags(f)));
            assert!(!ok(Aarch64Stage2::check_flags(f)));
        }
    }
}
