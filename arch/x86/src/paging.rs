//! The guest's own page tables, walked by the hypervisor: turning a guest-linear address
//! (the guest's `rip`, say) into a guest-physical one, and fetching the instruction bytes
//! there when the hardware does not hand them over (SVM without decode assists, VMX).
//!
//! The walk reads guest-physical memory through a [`GuestMemory`] the backend supplies
//! (through its nested page table), so it is the same on every x86 backend. It follows
//! 4-level long-mode paging with 1 GiB and 2 MiB pages, and no paging at all when `CR0.PG`
//! is clear; legacy 32-bit, PAE outside long mode and 5-level paging are not walked.

use crate::decode::MAX_INSN_LEN;

/// Guest-physical memory as the walk reads it.
pub trait GuestMemory {
    /// Reads `buf.len()` bytes at guest-physical `gpa` into `buf`; the range never crosses
    /// a 4 KiB page. `false` if the page is not guest RAM (unmapped, or MMIO).
    fn read(&self, gpa: u64, buf: &mut [u8]) -> bool;
}

impl<F: Fn(u64, &mut [u8]) -> bool> GuestMemory for F {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> bool {
        self(gpa, buf)
    }
}

/// The guest's control registers the walk depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PagingRegs {
    /// `CR0` (`PG`, bit 31).
    pub cr0: u64,
    /// `CR3` (the PML4's guest-physical address).
    pub cr3: u64,
    /// `CR4` (`LA57`, bit 12).
    pub cr4: u64,
    /// `EFER` (`LMA`, bit 10).
    pub efer: u64,
}

const CR0_PG: u64 = 1 << 31;
const CR4_LA57: u64 = 1 << 12;
const EFER_LMA: u64 = 1 << 10;
const PRESENT: u64 = 1;
const PAGE_SIZE_BIT: u64 = 1 << 7;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
const PAGE: u64 = 0x1000;

impl PagingRegs {
    /// The guest-physical address of guest-linear `la`: `la` itself with paging off, the
    /// 4-level long-mode walk from `CR3` otherwise. `None` if a table entry on the way is
    /// not present or not readable through `mem`, or the guest uses a paging mode the walk
    /// does not follow. Access rights (user, write, no-execute) are not checked: the
    /// hardware already let the guest's access through before the exit.
    pub fn linear_to_gpa(&self, mem: &impl GuestMemory, la: u64) -> Option<u64> {
        if self.cr0 & CR0_PG == 0 {
            return Some(la);
        }
        if self.efer & EFER_LMA == 0 || self.cr4 & CR4_LA57 != 0 {
            return None;
        }
        let mut table = self.cr3 & ADDR_MASK;
        for shift in [39u32, 30, 21, 12] {
            let mut entry = [0u8; 8];
            if !mem.read(table + ((la >> shift) & 511) * 8, &mut entry) {
                return None;
            }
            let entry = u64::from_le_bytes(entry);
            if entry & PRESENT == 0 {
                return None;
            }
            if (shift == 30 || shift == 21) && entry & PAGE_SIZE_BIT != 0 {
                let size = 1u64 << shift;
                return Some((entry & ADDR_MASK & !(size - 1)) | (la & (size - 1)));
            }
            table = entry & ADDR_MASK;
        }
        Some(table | (la & (PAGE - 1)))
    }

    /// Fetches up to [`MAX_INSN_LEN`] instruction bytes at guest-linear `rip` into `buf`,
    /// page by page; returns how many it could (fewer when the instruction runs into a page
    /// that is not mapped, or not RAM).
    pub fn fetch_insn(
        &self,
        mem: &impl GuestMemory,
        rip: u64,
        buf: &mut [u8; MAX_INSN_LEN],
    ) -> usize {
        let mut done = 0;
        while done < MAX_INSN_LEN {
            let la = rip.wrapping_add(done as u64);
            let in_page = (PAGE - (la & (PAGE - 1))) as usize;
            let n = in_page.min(MAX_INSN_LEN - done);
            let Some(gpa) = self.linear_to_gpa(mem, la) else {
                break;
            };
            let Some(chunk) = buf.get_mut(done..done + n) else {
                break;
            };
            if !mem.read(gpa, chunk) {
                break;
            }
            done += n;
        }
        done
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::collections::BTreeMap;
    use std::vec;
    use std::vec::Vec;

    /// Sparse guest RAM: 4 KiB pages by guest-physical page number.
    struct Ram(BTreeMap<u64, Vec<u8>>);

    impl Ram {
        fn new(pages: &[u64]) -> Self {
            Self(pages.iter().map(|&p| (p >> 12, vec![0; 4096])).collect())
        }
        fn put(&mut self, gpa: u64, bytes: &[u8]) {
            let page = self.0.get_mut(&(gpa >> 12)).expect("page");
            let o = (gpa & 0xfff) as usize;
            page[o..o + bytes.len()].copy_from_slice(bytes);
        }
        fn pte(&mut self, gpa: u64, value: u64) {
            self.put(gpa, &value.to_le_bytes());
        }
    }

    impl GuestMemory for Ram {
        fn read(&self, gpa: u64, buf: &mut [u8]) -> bool {
            let o = (gpa & 0xfff) as usize;
            assert!(o + buf.len() <= 4096, "a read crosses a page");
            match self.0.get(&(gpa >> 12)) {
                Some(page) => {
                    buf.copy_from_slice(&page[o..o + buf.len()]);
                    true
                }
                None => false,
            }
        }
    }

    const LONG_MODE: PagingRegs = PagingRegs {
        cr0: CR0_PG | 1,
        cr3: 0x1000,
        cr4: 1 << 5,
        efer: EFER_LMA | (1 << 8),
    };

    /// PML4 at 0x1000, PDPT at 0x2000, PD at 0x3000, PT at 0x4000.
    fn tables() -> Ram {
        let mut ram = Ram::new(&[
            0x1000,
            0x2000,
            0x3000,
            0x4000,
            0x10000,
            0x11000,
            0x4000_0000,
        ]);
        ram.pte(0x1000, 0x2000 | 3);
        ram.pte(0x2000, 0x3000 | 3);
        // 1 GiB page at linear 1 GiB -> guest-physical 0x4000_0000 (identity).
        ram.pte(0x2008, 0x4000_0000 | 0x83);
        // linear 0..2 MiB through the PT; 2..4 MiB a 2 MiB page at 0x20_0000.
        ram.pte(0x3000, 0x4000 | 3);
        ram.pte(0x3008, 0x0020_0000 | 0x83);
        // linear 0x5000 -> 0x10000, linear 0x6000 -> 0x11000, linear 0x7000 not present.
        ram.pte(0x4000 + 5 * 8, 0x10000 | 3);
        ram.pte(0x4000 + 6 * 8, 0x11000 | 3);
        ram
    }

    #[test]
    fn walks_4k_2m_and_1g_pages() {
        let ram = tables();
        assert_eq!(LONG_MODE.linear_to_gpa(&ram, 0x5123), Some(0x10123));
        assert_eq!(
            LONG_MODE.linear_to_gpa(&ram, 0x0023_4567),
            Some(0x0023_4567)
        );
        assert_eq!(
            LONG_MODE.linear_to_gpa(&ram, 0x4123_4567),
            Some(0x4123_4567)
        );
        assert_eq!(LONG_MODE.linear_to_gpa(&ram, 0x7000), None, "not present");
        assert_eq!(
            LONG_MODE.linear_to_gpa(&ram, 1 << 39),
            None,
            "the PML4 entry is empty"
        );
    }

    #[test]
    fn paging_off_is_identity_and_other_modes_are_not_walked() {
        let ram = tables();
        let off = PagingRegs {
            cr0: 1,
            ..LONG_MODE
        };
        assert_eq!(off.linear_to_gpa(&ram, 0xdead_b000), Some(0xdead_b000));
        let la57 = PagingRegs {
            cr4: LONG_MODE.cr4 | CR4_LA57,
            ..LONG_MODE
        };
        assert_eq!(la57.linear_to_gpa(&ram, 0x5000), None);
        let legacy = PagingRegs {
            efer: 0,
            ..LONG_MODE
        };
        assert_eq!(legacy.linear_to_gpa(&ram, 0x5000), None);
        let unbacked = PagingRegs {
            cr3: 0x9000,
            ..LONG_MODE
        };
        assert_eq!(unbacked.linear_to_gpa(&ram, 0x5000), None);
    }

    #[test]
    fn fetch_crosses_pages_and_stops_where_memory_ends() {
        let mut ram = tables();
        let bytes: Vec<u8> = (1..=15).collect();
        // 5 bytes at the end of linear page 0x5000, 10 at the start of 0x6000.
        ram.put(0x10ffb, &bytes[..5]);
        ram.put(0x11000, &bytes[5..]);
        let mut buf = [0u8; MAX_INSN_LEN];
        assert_eq!(LONG_MODE.fetch_insn(&ram, 0x5ffb, &mut buf), 15);
        assert_eq!(&buf[..], &bytes[..]);
        // Linear page 0x7000 is not present: 3 bytes only.
        ram.put(0x11ffd, &[0xaa, 0xbb, 0xcc]);
        let mut buf = [0u8; MAX_INSN_LEN];
        assert_eq!(LONG_MODE.fetch_insn(&ram, 0x6ffd, &mut buf), 3);
        assert_eq!(&buf[..3], &[0xaa, 0xbb, 0xcc]);
        assert_eq!(LONG_MODE.fetch_insn(&ram, 0x7000, &mut buf), 0);
    }

    #[test]
    fn a_closure_is_guest_memory() {
        let mem = |gpa: u64, buf: &mut [u8]| {
            buf.fill(gpa as u8);
            true
        };
        let off = PagingRegs::default();
        let mut buf = [0u8; MAX_INSN_LEN];
        assert_eq!(off.fetch_insn(&mem, 0x42, &mut buf), 15);
        assert_eq!(buf[0], 0x42);
    }
}
