//! The 64-bit long-mode state every x86 guest program starts in: a GDT (null, 64-bit code
//! at [`CODE_SELECTOR`], data at [`DATA_SELECTOR`]) and page tables that identity-map
//! guest-physical `[0, max(4 GiB, RAM end))` with 2 MiB pages, which the hypervisor writes
//! into guest RAM. Every x86 backend uses it, so a program written for one runs on the
//! others; each loads the result into its own register state (KVM `kvm_sregs`, the SVM VMCB).

use axvcpu::{VCpuError, VCpuResult};

/// The 64-bit code segment selector of the GDT [`write_long_mode_tables`] builds.
pub const CODE_SELECTOR: u16 = 0x08;
/// The data segment selector of that GDT.
pub const DATA_SELECTOR: u16 = 0x10;

const PAGE: u64 = 0x1000;
const GIB: u64 = 1 << 30;
const MIN_COVER: u64 = 4 * GIB;
const MAX_COVER: u64 = 512 * GIB;

/// Where the boot structures are, in guest-physical addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LongModeBoot {
    /// Guest-physical address of the PML4 (CR3).
    pub cr3: u64,
    /// Guest-physical address of the GDT.
    pub gdt_base: u64,
    /// GDT limit (size in bytes - 1).
    pub gdt_limit: u16,
}

fn cover_for(ram_end: u64) -> u64 {
    ram_end.div_ceil(GIB).saturating_mul(GIB).max(MIN_COVER)
}

/// The number of bytes [`write_long_mode_tables`] writes for guest RAM ending (exclusive)
/// at guest-physical `ram_end`.
pub fn long_mode_tables_size(ram_end: u64) -> usize {
    ((3 + cover_for(ram_end) / GIB) * PAGE) as usize
}

/// Writes a GDT and page tables identity-mapping `[0, max(4 GiB, RAM end))` with 2 MiB
/// pages at guest-physical `at` (4 KiB aligned, inside `ram`, which starts at guest-physical
/// `ram_gpa`).
pub fn write_long_mode_tables(ram: &mut [u8], ram_gpa: u64, at: u64) -> VCpuResult<LongModeBoot> {
    let ram_end = ram_gpa
        .checked_add(ram.len() as u64)
        .ok_or(VCpuError::invalid_input("guest RAM wraps around"))?;
    let cover = cover_for(ram_end);
    if cover > MAX_COVER {
        return Err(
            VCpuError::invalid_input("guest RAM must end below 512 GiB").with_value(ram_end)
        );
    }
    let size = long_mode_tables_size(ram_end) as u64;
    if at % PAGE != 0 || at < ram_gpa || at.saturating_add(size) > ram_end {
        return Err(VCpuError::invalid_input(
            "the boot tables must be 4 KiB aligned and fit inside guest RAM",
        )
        .with_value(at));
    }
    let off = (at - ram_gpa) as usize;
    let area = ram
        .get_mut(off..off + size as usize)
        .ok_or(VCpuError::invalid_input("boot tables outside RAM"))?;
    area.fill(0);
    let mut put = |offset: u64, value: u64| {
        let o = offset as usize;
        if let Some(slot) = area.get_mut(o..o + 8) {
            slot.copy_from_slice(&value.to_le_bytes());
        }
    };
    put(0x08, 0x00af_9b00_0000_ffff);
    put(0x10, 0x00cf_9300_0000_ffff);
    const P_RW: u64 = 0x3;
    const PS: u64 = 0x80;
    let (pml4, pdpt, pd0) = (at + PAGE, at + 2 * PAGE, at + 3 * PAGE);
    put(PAGE, pdpt | P_RW);
    for g in 0..cover / GIB {
        put(2 * PAGE + g * 8, (pd0 + g * PAGE) | P_RW);
        for e in 0..512 {
            put(
                3 * PAGE + g * PAGE + e * 8,
                (g * GIB + (e << 21)) | P_RW | PS,
            );
        }
    }
    Ok(LongModeBoot {
        cr3: pml4,
        gdt_base: at,
        gdt_limit: 0x17,
    })
}

/// How a vCPU of a bare-metal x86 backend starts: in 64-bit long mode, with boot structures
/// (GDT, page tables) from one of two places, or in real mode as a CPU woken by INIT and a
/// start-up IPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestBoot {
    /// Long mode; the hypervisor wrote the tables (see [`write_long_mode_tables`]).
    Tables(LongModeBoot),
    /// Long mode; `setup` writes the tables itself at this 4 KiB-aligned guest-physical
    /// address (they take [`long_mode_tables_size`] bytes, 28 KiB below 4 GiB), through the
    /// nested page table, which must map that range writable. Every vCPU's `setup` writes
    /// the same bytes again.
    WriteTablesAt(u64),
    /// Real mode at the entry, as hardware starts an application processor at a start-up
    /// IPI whose vector is `entry >> 12`: CS selector `entry >> 4`, CS base `entry`, IP 0,
    /// 64 KiB segment limits, `CR0` = its INIT value (`CD | NW | ET`), `EFER` = 0 (SVME
    /// under SVM), interrupts off, no paging. The entry is what a
    /// [`CpuUp`](axvcpu::AxVCpuExitReason::CpuUp) exit reports for a SIPI (vector << 12):
    /// 4 KiB aligned, below 1 MiB ([`sipi_code_segment`] checks it). The guest goes to
    /// protected and long mode itself (Linux's trampoline does); the stack fields of
    /// [`LongModeSetup`] are not used (`rsp` = 0).
    RealMode,
}

/// `CR0` after INIT: `CD`, `NW`, `ET` (Intel SDM vol. 3 table 10-1, AMD APM vol. 2 table
/// 14-1); the guest clears the cache bits itself when it enables paging.
pub const INIT_CR0: u64 = 0x6000_0010;

/// The real-mode CS selector a vCPU started at `entry` has ([`GuestBoot::RealMode`]):
/// `entry >> 4`, for a 4 KiB-aligned entry below 1 MiB (where a start-up IPI's vector
/// points); anything else is refused, as no SIPI can name it.
pub fn sipi_code_segment(entry: u64) -> VCpuResult<u16> {
    if entry % PAGE != 0 || entry >= 1 << 20 {
        return Err(VCpuError::invalid_input(
            "a real-mode start is at a start-up IPI's address: 4 KiB aligned, below 1 MiB",
        )
        .with_value(entry));
    }
    Ok((entry >> 4) as u16)
}

impl Default for GuestBoot {
    fn default() -> Self {
        Self::Tables(LongModeBoot::default())
    }
}

/// How a vCPU of a bare-metal x86 backend starts: the configuration `setup` takes
/// (`axvcpu_svm::SvmSetupConfig` and `axvcpu_vmx::VmxSetupConfig` are this type).
///
/// With [`GuestBoot::Tables`] or [`GuestBoot::WriteTablesAt`] the vCPU starts in 64-bit
/// long mode at its entry (a secondary started through `CpuUp` too, if the hypervisor
/// likes; [`GuestBoot::RealMode`] starts it in real mode as hardware does): CS = [`CODE_SELECTOR`] (64-bit), the
/// other segments [`DATA_SELECTOR`], paging through the boot tables' CR3, `EFER` = LME | LMA
/// (and SVME under SVM), interrupts disabled (RFLAGS = 2), `rsp` =
/// [`rsp_of`](Self::rsp_of) its id, every other GPR 0, and no IDT (limit 0): the guest
/// installs its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LongModeSetup {
    /// The GDT and page tables.
    pub boot: GuestBoot,
    /// The initial `rsp` of vCPU 0.
    pub stack_top: u64,
    /// How far below the previous vCPU's each vCPU's stack starts.
    pub stack_stride: u64,
}

impl LongModeSetup {
    /// The initial `rsp` of vCPU `vcpu_id`: `stack_top - vcpu_id * stack_stride`
    /// (wrapping: a nonsensical stack is the guest's problem, not a host fault).
    pub fn rsp_of(&self, vcpu_id: usize) -> u64 {
        self.stack_top
            .wrapping_sub(self.stack_stride.wrapping_mul(vcpu_id as u64))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;

    #[test]
    fn each_vcpu_starts_one_stride_below_the_previous() {
        let s = LongModeSetup {
            boot: GuestBoot::WriteTablesAt(0x4000),
            stack_top: 0x8_0000,
            stack_stride: 0x1000,
        };
        assert_eq!(
            [s.rsp_of(0), s.rsp_of(1), s.rsp_of(3)],
            [0x8_0000, 0x7_f000, 0x7_d000]
        );
    }

    #[test]
    fn real_mode_starts_only_where_a_sipi_points() {
        assert_eq!(sipi_code_segment(0x9a000).ok(), Some(0x9a00));
        assert_eq!(sipi_code_segment(0).ok(), Some(0));
        assert_eq!(sipi_code_segment(0xff000).ok(), Some(0xff00));
        assert!(sipi_code_segment(0x9a010).is_err(), "not 4 KiB aligned");
        assert!(sipi_code_segment(0x10_0000).is_err(), "above 1 MiB");
    }

    #[test]
    fn tables_identity_map_the_low_4_gib() {
        let mut ram = vec![0u8; 0x20000];
        let boot = write_long_mode_tables(&mut ram, 0x10000, 0x10000).expect("fits");
        assert_eq!(boot.cr3, 0x11000);
        let read = |gpa: u64| {
            let o = (gpa - 0x10000) as usize;
            u64::from_le_bytes(ram[o..o + 8].try_into().expect("8 bytes"))
        };
        assert_eq!(read(0x11000), 0x12000 | 3);
        assert_eq!(read(0x12000 + 3 * 8), 0x16000 | 3);
        // The PDE mapping 0xFEE0_0000 (the local APIC).
        assert_eq!(read(0x16000 + 0x1f7 * 8), 0xfee0_0000 | 0x83);
        assert!(write_long_mode_tables(&mut ram, 0x10000, 0x2a000).is_err());
        assert!(write_long_mode_tables(&mut ram, 0x10000, 0x10800).is_err());
    }
}
