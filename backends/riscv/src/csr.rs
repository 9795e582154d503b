//! CSR numbers and bit fields of the privileged architecture (H extension included), and
//! accessors by number (the assembler need not know the hypervisor CSR names).

#![allow(dead_code)]

/// CSR numbers.
pub mod num {
    pub const SSTATUS: u16 = 0x100;
    pub const SIE: u16 = 0x104;
    pub const STVEC: u16 = 0x105;
    pub const SCOUNTEREN: u16 = 0x106;
    pub const SENVCFG: u16 = 0x10a;
    pub const SSCRATCH: u16 = 0x140;
    pub const SEPC: u16 = 0x141;
    pub const SCAUSE: u16 = 0x142;
    pub const STVAL: u16 = 0x143;
    pub const SIP: u16 = 0x144;
    pub const SATP: u16 = 0x180;
    pub const VSSTATUS: u16 = 0x200;
    pub const VSIE: u16 = 0x204;
    pub const VSTVEC: u16 = 0x205;
    pub const VSSCRATCH: u16 = 0x240;
    pub const VSEPC: u16 = 0x241;
    pub const VSCAUSE: u16 = 0x242;
    pub const VSTVAL: u16 = 0x243;
    pub const VSIP: u16 = 0x244;
    pub const VSTIMECMP: u16 = 0x24d;
    pub const VSATP: u16 = 0x280;
    pub const HSTATUS: u16 = 0x600;
    pub const HEDELEG: u16 = 0x602;
    pub const HIDELEG: u16 = 0x603;
    pub const HIE: u16 = 0x604;
    pub const HTIMEDELTA: u16 = 0x605;
    pub const HCOUNTEREN: u16 = 0x606;
    pub const HGEIE: u16 = 0x607;
    pub const HENVCFG: u16 = 0x60a;
    pub const HTVAL: u16 = 0x643;
    pub const HIP: u16 = 0x644;
    pub const HVIP: u16 = 0x645;
    pub const HTINST: u16 = 0x64a;
    pub const HGATP: u16 = 0x680;
    pub const TIME: u16 = 0xc01;
    pub const CYCLE: u16 = 0xc00;
    pub const INSTRET: u16 = 0xc02;
}

/// `sstatus` bits.
pub mod sstatus {
    pub const SIE: u64 = 1 << 1;
    pub const SPIE: u64 = 1 << 5;
    pub const SPP: u64 = 1 << 8;
    pub const FS: u64 = 3 << 13;
}

/// `hstatus` bits.
pub mod hstatus {
    pub const GVA: u64 = 1 << 6;
    pub const SPV: u64 = 1 << 7;
    pub const SPVP: u64 = 1 << 8;
    pub const HU: u64 = 1 << 9;
    pub const VGEIN: u64 = 0x3f << 12;
    pub const VTVM: u64 = 1 << 20;
    pub const VTW: u64 = 1 << 21;
    pub const VTSR: u64 = 1 << 22;
}

/// Interrupt bits (`sip`/`sie`/`hvip`/`hideleg`).
pub mod irq {
    pub const SSIP: u64 = 1 << 1;
    pub const VSSIP: u64 = 1 << 2;
    pub const STIP: u64 = 1 << 5;
    pub const VSTIP: u64 = 1 << 6;
    pub const SEIP: u64 = 1 << 9;
    pub const VSEIP: u64 = 1 << 10;
    pub const VS_ALL: u64 = VSSIP | VSTIP | VSEIP;
}

/// Reads CSR `N`.
#[inline(always)]
pub fn read<const N: u16>() -> u64 {
    let v: u64;
    // SAFETY: reading a CSR has no memory effects; the caller runs in HS-mode.
    unsafe {
        core::arch::asm!("csrr {0}, {csr}", out(reg) v, csr = const N, options(nomem, nostack))
    };
    v
}

/// Writes CSR `N`.
#[inline(always)]
pub fn write<const N: u16>(v: u64) {
    // SAFETY: callers write only hypervisor-owned CSRs with values they computed.
    unsafe { core::arch::asm!("csrw {csr}, {0}", in(reg) v, csr = const N, options(nostack)) };
}

/// Writes CSR `N`, returning the old value.
#[inline(always)]
pub fn swap<const N: u16>(v: u64) -> u64 {
    let old: u64;
    // SAFETY: as for `write`.
    unsafe {
        core::arch::asm!("csrrw {0}, {csr}, {1}", out(reg) old, in(reg) v, csr = const N, options(nostack))
    };
    old
}

/// Sets bits of CSR `N`, returning the old value.
#[inline(always)]
pub fn set<const N: u16>(bits: u64) -> u64 {
    let v: u64;
    // SAFETY: as for `write`.
    unsafe {
        core::arch::asm!("csrrs {0}, {csr}, {1}", out(reg) v, in(reg) bits, csr = const N, options(nostack))
    };
    v
}

/// Clears bits of CSR `N`, returning the old value.
#[inline(always)]
pub fn clear<const N: u16>(bits: u64) -> u64 {
    let v: u64;
    // SAFETY: as for `write`.
    unsafe {
        core::arch::asm!("csrrc {0}, {csr}, {1}", out(reg) v, in(reg) bits, csr = const N, options(nostack))
    };
    v
}

/// `hfence.gvma zero, zero`: forgets every cached G-stage translation on this hart.
#[inline(always)]
pub fn hfence_gvma_all() {
    // SAFETY: a TLB flush.
    unsafe { core::arch::asm!(".word 0x62000073", options(nostack)) };
}

/// `hfence.vvma zero, zero`: forgets every cached VS-stage translation of the current VMID.
#[inline(always)]
pub fn hfence_vvma_all() {
    // SAFETY: a TLB flush.
    unsafe { core::arch::asm!(".word 0x22000073", options(nostack)) };
}
