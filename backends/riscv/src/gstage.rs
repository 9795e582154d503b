//! The G-stage (guest-physical → host-physical) translation modes and a read-only table
//! walk, used to tell an access to unmapped memory (MMIO) from one the table maps without
//! the permission it needed (a nested page fault).

/// A G-stage translation mode of `hgatp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GStageMode {
    /// Three levels, 41-bit guest-physical addresses, 16 KiB root.
    Sv39x4,
    /// Four levels, 50-bit guest-physical addresses, 16 KiB root.
    Sv48x4,
}

impl GStageMode {
    /// The `hgatp.MODE` value.
    pub const fn hgatp_mode(self) -> u64 {
        match self {
            Self::Sv39x4 => 8,
            Self::Sv48x4 => 9,
        }
    }

    /// The number of table levels.
    pub const fn levels(self) -> usize {
        match self {
            Self::Sv39x4 => 3,
            Self::Sv48x4 => 4,
        }
    }

    /// The number of guest-physical address bits translated.
    pub const fn gpa_bits(self) -> u32 {
        match self {
            Self::Sv39x4 => 41,
            Self::Sv48x4 => 50,
        }
    }
}

/// PTE bits.
pub mod pte {
    /// Valid.
    pub const V: u64 = 1 << 0;
    /// Readable.
    pub const R: u64 = 1 << 1;
    /// Writable.
    pub const W: u64 = 1 << 2;
    /// Executable.
    pub const X: u64 = 1 << 3;
    /// User (must be set in every G-stage leaf).
    pub const U: u64 = 1 << 4;
    /// Accessed.
    pub const A: u64 = 1 << 6;
    /// Dirty.
    pub const D: u64 = 1 << 7;
    /// The physical page number field, shifted into place.
    pub const PPN_MASK: u64 = ((1 << 44) - 1) << 10;
}

/// What a walk found for one guest-physical address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// No valid leaf maps it: the guest touched unmapped memory.
    Unmapped,
    /// A leaf maps it with these PTE flags (low 10 bits) at this host-physical address.
    Mapped {
        /// The leaf's flags.
        flags: u64,
        /// The translated host-physical address.
        hpa: u64,
    },
}

/// Walks the table rooted at host-physical `root` for `gpa`. `read(paddr)` reads the 8-byte
/// PTE at a host-physical address. A malformed table (reserved encodings, a misaligned
/// superpage) reads as unmapped, which is what the hardware makes of it too (it faults).
pub fn walk(mode: GStageMode, root: u64, gpa: u64, read: impl Fn(u64) -> u64) -> Walk {
    if gpa >> mode.gpa_bits() != 0 {
        return Walk::Unmapped;
    }
    let levels = mode.levels();
    let mut table = root;
    for level in (0..levels).rev() {
        let shift = 12 + 9 * level as u32;
        // The root level has 2 extra index bits (x4).
        let bits = if level == levels - 1 { 11 } else { 9 };
        let index = (gpa >> shift) & ((1 << bits) - 1);
        let entry = read(table + index * 8);
        if entry & pte::V == 0 || (entry & pte::W != 0 && entry & pte::R == 0) {
            return Walk::Unmapped;
        }
        let ppn_addr = (entry & pte::PPN_MASK) << 2;
        if entry & (pte::R | pte::W | pte::X) != 0 {
            let page_mask = (1u64 << shift) - 1;
            if ppn_addr & page_mask != 0 {
                return Walk::Unmapped; // misaligned superpage
            }
            return Walk::Mapped {
                flags: entry & 0x3ff,
                hpa: ppn_addr | (gpa & page_mask),
            };
        }
        table = ppn_addr;
    }
    Walk::Unmapped
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn walks_four_kib_and_superpage_leaves() {
        let mut mem: HashMap<u64, u64> = HashMap::new();
        let root = 0x10_0000u64;
        let l1 = 0x20_0000u64;
        let l0 = 0x30_0000u64;
        let gpa = 0x8000_1000u64;
        // root index (gpa >> 30) & 0x7ff = 2
        mem.insert(root + 2 * 8, (l1 >> 2) | pte::V);
        mem.insert(l1 + 8 * ((gpa >> 21) & 0x1ff), (l0 >> 2) | pte::V);
        let leaf = pte::V | pte::R | pte::U;
        mem.insert(l0 + 8 * ((gpa >> 12) & 0x1ff), (0x40_0000 >> 2) | leaf);
        let read = |a| *mem.get(&a).unwrap_or(&0);
        assert_eq!(
            walk(GStageMode::Sv39x4, root, gpa + 0x18, read),
            Walk::Mapped {
                flags: leaf,
                hpa: 0x40_0018
            }
        );
        assert_eq!(
            walk(GStageMode::Sv39x4, root, gpa + 0x1000, read),
            Walk::Unmapped
        );
        assert_eq!(
            walk(GStageMode::Sv39x4, root, 1 << 41, read),
            Walk::Unmapped
        );
        // a 1 GiB leaf at root index 3
        mem.insert(
            root + 3 * 8,
            (0x4000_0000 >> 2) | pte::V | pte::R | pte::W | pte::X | pte::U,
        );
        let read = |a| *mem.get(&a).unwrap_or(&0);
        assert!(matches!(
            walk(GStageMode::Sv39x4, root, 0xc000_1234, read),
            Walk::Mapped {
                hpa: 0x4000_1234,
                ..
            }
        ));
    }
}
