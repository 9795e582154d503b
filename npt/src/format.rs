//! The page-table formats: geometry constants and the bit-exact encoding of entries.
//!
//! Levels are numbered from the leaves up: level 0 holds 4 KiB pages, level 1 entries map
//! 2 MiB, level 2 entries map 1 GiB, and level [`LEVELS`](PagingFormat::LEVELS)` - 1` is the
//! root. (Arm numbers the other way round: our level 2, 1, 0 are Arm's levels 1, 2, 3.)
//! One file per architecture below this one.

use axvcpu::{HostPhysAddr, VCpuError, VCpuResult};

use crate::MapFlags;

mod aarch64;
mod ept;
mod riscv;
mod x86;

pub use aarch64::Aarch64Stage2;
pub use ept::Ept;
pub use riscv::{RiscvSv39x4, RiscvSv48x4};
pub use x86::X86Npt;

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
/// formats are [`X86Npt`], [`Ept`], [`RiscvSv39x4`], [`RiscvSv48x4`] and [`Aarch64Stage2`].
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

    /// Whether the leaf `entry` records an access: the hardware sets this bit on the first
    /// access through the leaf (or needs it preset; see each format). Meaningful only for an
    /// entry [`decode`](Self::decode) reads as a [`Pte::Leaf`].
    fn accessed(entry: u64) -> bool;

    /// Whether the leaf `entry` records a write (the page is dirty), or, where the format has
    /// no dirty bit, may be written without the hardware saying so. Meaningful only for an
    /// entry [`decode`](Self::decode) reads as a [`Pte::Leaf`].
    fn dirty(entry: u64) -> bool;
}

/// The size of the range one entry at `level` covers.
pub(crate) const fn level_size(level: usize) -> usize {
    1 << (12 + 9 * level)
}

pub(crate) fn common_flag_checks(flags: MapFlags) -> VCpuResult {
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

pub(crate) fn addr(pa: u64) -> HostPhysAddr {
    HostPhysAddr::from(pa as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry() {
        assert_eq!(X86Npt::GPA_BITS, 48);
        assert_eq!(Ept::GPA_BITS, 48);
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
        round_trip::<Ept>();
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
        assert!(ok(Ept::check_flags(M::EXECUTE)) && ok(Ept::check_flags(M::all())));
        assert!(!ok(Ept::check_flags(M::WRITE)));
        assert!(!ok(Ept::check_flags(M::WRITE | M::EXECUTE)));
        assert!(!ok(Ept::check_flags(M::empty())));
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
