//! RISC-V G-stage: Sv39x4 and Sv48x4.

use axvcpu::{HostPhysAddr, VCpuResult};

use super::{sealed, PagingFormat, Pte};
use crate::MapFlags;

/// Bits shared by the RISC-V G-stage formats.
mod rv {
    use axvcpu::{AxErrorKind, HostPhysAddr, VCpuError, VCpuResult};

    use crate::format::{addr, common_flag_checks, level_size, Pte};
    use crate::MapFlags;

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
            /// V: valid.
            pub const V: u64 = rv::V;
            /// R: readable.
            pub const R: u64 = rv::R;
            /// W: writable.
            pub const W: u64 = rv::W;
            /// X: executable.
            pub const X: u64 = rv::X;
            /// U: user (set in every G-stage leaf: G-stage accesses are checked as U-mode).
            pub const U: u64 = rv::U;
            /// A: accessed. Without hardware A/D updating (Svadu) an access through a leaf
            /// with A clear faults.
            pub const A: u64 = rv::A;
            /// D: dirty. Without Svadu a write through a leaf with D clear faults.
            pub const D: u64 = rv::D;

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

            fn accessed(entry: u64) -> bool {
                entry & rv::A != 0
            }

            fn dirty(entry: u64) -> bool {
                entry & rv::D != 0
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
