//! The host hart's privileged registers and instructions: CSR numbers and bit fields (H
//! extension included), accessors by number (the assembler need not know the hypervisor CSR
//! names), the G-stage and VS-stage TLB fences, what `hardware_enable` probed, and the SBI
//! calls the backend makes to the machine-mode firmware.
//!
//! The CSRs that decide what memory a guest reaches (`hgatp`, `vsatp`) are written only
//! through `unsafe fn`s with their conditions; the generic accessors refuse them (and
//! `satp`, which the backend never writes) at compile time, wherever they are instantiated.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axvcpu::HostPhysAddr;

use crate::sbi::eid;
use crate::GStageMode;

/// CSR numbers.
pub mod num {
    pub const SSTATUS: u16 = 0x100;
    pub const SIE: u16 = 0x104;
    pub const SCOUNTEREN: u16 = 0x106;
    pub const SENVCFG: u16 = 0x10a;
    pub const SIP: u16 = 0x144;
    pub const SATP: u16 = 0x180;
    pub const VSSTATUS: u16 = 0x200;
    pub const VSIE: u16 = 0x204;
    pub const VSTVEC: u16 = 0x205;
    pub const VSSCRATCH: u16 = 0x240;
    pub const VSEPC: u16 = 0x241;
    pub const VSCAUSE: u16 = 0x242;
    pub const VSTVAL: u16 = 0x243;
    pub const VSTIMECMP: u16 = 0x24d;
    pub const VSATP: u16 = 0x280;
    pub const HSTATUS: u16 = 0x600;
    pub const HEDELEG: u16 = 0x602;
    pub const HIDELEG: u16 = 0x603;
    pub const HIE: u16 = 0x604;
    pub const HTIMEDELTA: u16 = 0x605;
    pub const HCOUNTEREN: u16 = 0x606;
    pub const HENVCFG: u16 = 0x60a;
    pub const HVIP: u16 = 0x645;
    pub const HGATP: u16 = 0x680;
}

/// `sstatus` bits.
pub mod sstatus {
    pub const SIE: u64 = 1 << 1;
    pub const SPP: u64 = 1 << 8;
    /// `FS` = Initial: FP on, its registers in their reset state.
    pub const FS_INITIAL: u64 = 1 << 13;
}

/// `fence.i`: this hart's instruction fetches see every earlier store.
#[inline(always)]
pub fn fence_i() {
    // SAFETY: an instruction-cache synchronisation.
    unsafe { core::arch::asm!("fence.i", options(nostack)) };
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
    pub const VSEIP: u64 = 1 << 10;
    pub const VS_ALL: u64 = VSSIP | VSTIP | VSEIP;
}

/// Whether CSR `n` decides what memory a guest (or the host) reaches through translation.
const fn translates(n: u16) -> bool {
    matches!(n, num::HGATP | num::VSATP | num::SATP)
}

/// Reads CSR `N`.
#[inline(always)]
pub fn read<const N: u16>() -> u64 {
    let v: u64;
    // SAFETY: reading a CSR has no memory effects; the backend runs in HS-mode.
    unsafe {
        core::arch::asm!("csrr {0}, {csr}", out(reg) v, csr = const N, options(nomem, nostack))
    };
    v
}

/// Writes CSR `N` (not `hgatp`, `vsatp` or `satp`: see [`write_hgatp`], [`write_vsatp`]).
#[inline(always)]
pub fn write<const N: u16>(v: u64) {
    const { assert!(!translates(N), "write hgatp/vsatp through their unsafe fns") };
    // SAFETY: the CSRs left (trap delegation, interrupt enables and pendings, counters, the
    // VS trap state) change what traps where, never what memory anything reaches.
    unsafe { core::arch::asm!("csrw {csr}, {0}", in(reg) v, csr = const N, options(nostack)) };
}

/// Writes CSR `N`, returning the old value (as [`write`]).
#[inline(always)]
pub fn swap<const N: u16>(v: u64) -> u64 {
    const { assert!(!translates(N), "write hgatp/vsatp through their unsafe fns") };
    let old: u64;
    // SAFETY: as for `write`.
    unsafe {
        core::arch::asm!("csrrw {0}, {csr}, {1}", out(reg) old, in(reg) v, csr = const N, options(nostack))
    };
    old
}

/// Sets bits of CSR `N`, returning the old value (as [`write`]).
#[inline(always)]
pub fn set<const N: u16>(bits: u64) -> u64 {
    const { assert!(!translates(N), "write hgatp/vsatp through their unsafe fns") };
    let v: u64;
    // SAFETY: as for `write`.
    unsafe {
        core::arch::asm!("csrrs {0}, {csr}, {1}", out(reg) v, in(reg) bits, csr = const N, options(nostack))
    };
    v
}

/// Clears bits of CSR `N`, returning the old value (as [`write`]).
#[inline(always)]
pub fn clear<const N: u16>(bits: u64) -> u64 {
    const { assert!(!translates(N), "write hgatp/vsatp through their unsafe fns") };
    let v: u64;
    // SAFETY: as for `write`.
    unsafe {
        core::arch::asm!("csrrc {0}, {csr}, {1}", out(reg) v, in(reg) bits, csr = const N, options(nostack))
    };
    v
}

/// Writes `hgatp`: the G-stage table every guest access on this hart goes through.
///
/// # Safety
/// Until `hgatp` is written again, anything that translates guest addresses on this hart (a
/// guest running in VS/VU-mode, and `HLV`/`HSV`/`HLVX` run by the host) reaches exactly the
/// host memory the table `v` names maps, and with MODE = Bare all of host memory. So either
/// no guest is entered and no such instruction runs on this hart until the next write, or
/// `v` names a live G-stage table in the format its MODE says, which maps only memory the
/// guest may use and outlives every use of this value. Cached translations of `v`'s VMID
/// must be flushed (`hfence.gvma`) before a guest runs with it, unless they are known to
/// belong to this very table.
#[inline(always)]
pub unsafe fn write_hgatp(v: u64) {
    // SAFETY: the caller upholds the contract above.
    unsafe {
        core::arch::asm!("csrw {csr}, {0}", in(reg) v, csr = const num::HGATP, options(nostack))
    };
}

/// Writes `vsatp`: the guest's own (VS-stage) translation.
///
/// # Safety
/// What `vsatp` translates to is a guest-physical address, confined by the G-stage only
/// while `hgatp` names a table: `hgatp` must not be Bare whenever a guest runs or the host
/// runs `HLV`/`HSV`/`HLVX` with this `vsatp` (with Bare, the guest's page tables and what
/// they map would be host memory).
#[inline(always)]
pub unsafe fn write_vsatp(v: u64) {
    // SAFETY: the caller upholds the contract above.
    unsafe {
        core::arch::asm!("csrw {csr}, {0}", in(reg) v, csr = const num::VSATP, options(nostack))
    };
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

// ---------------------------------------------------------------------------------------------
// What `hardware_enable` probed (on each hart it enables; the harts of one machine agree).

static PROBED: AtomicBool = AtomicBool::new(false);
static SV39X4: AtomicBool = AtomicBool::new(false);
static SV48X4: AtomicBool = AtomicBool::new(false);
static SSTC: AtomicBool = AtomicBool::new(false);
static VMID_MASK: AtomicU64 = AtomicU64::new(0);

/// The widest `hgatp.VMID`.
const HGATP_VMID_MAX: u16 = 0x3fff;
const HGATP_VMID_SHIFT: u32 = 44;

/// `henvcfg.STCE`: VS-mode may use `vstimecmp` (Sstc).
const HENVCFG_STCE: u64 = 1 << 63;

/// Probes `hgatp` modes, VMID width and Sstc on this hart (H-extension CSRs must work).
///
/// # Safety
/// No guest may be entered on this hart between this call and the next `hgatp` write of a
/// `bind` (the probe leaves `hgatp` Bare): no vCPU is bound to it.
pub(crate) unsafe fn probe() {
    let mut modes = [false; 2];
    for (i, mode) in GStageMode::ALL.into_iter().enumerate() {
        // SAFETY: no guest runs on this hart until the next bind writes hgatp (the
        // caller's contract), and this code runs no HLV/HSV.
        unsafe { write_hgatp(mode.hgatp(HostPhysAddr::from(0), HGATP_VMID_MAX)) };
        let back = read::<{ num::HGATP }>();
        modes[i] = GStageMode::from_hgatp_mode(back >> 60) == Some(mode);
        if modes[i] {
            VMID_MASK.store(
                (back >> HGATP_VMID_SHIFT) & HGATP_VMID_MAX as u64,
                Ordering::Relaxed,
            );
        }
    }
    // SAFETY: as above; Bare until the next bind.
    unsafe { write_hgatp(0) };
    hfence_gvma_all();
    SV39X4.store(modes[0], Ordering::Relaxed);
    SV48X4.store(modes[1], Ordering::Relaxed);
    let old = set::<{ num::HENVCFG }>(HENVCFG_STCE);
    let sstc = read::<{ num::HENVCFG }>() & HENVCFG_STCE != 0;
    write::<{ num::HENVCFG }>(old | if sstc { HENVCFG_STCE } else { 0 });
    SSTC.store(sstc, Ordering::Relaxed);
    PROBED.store(true, Ordering::Release);
}

/// Whether `hardware_enable` has probed the hardware on some hart.
pub(crate) fn probed() -> bool {
    PROBED.load(Ordering::Acquire)
}

/// Whether `hgatp` accepts `mode` (false before `hardware_enable` has run on some hart).
pub fn supports(mode: GStageMode) -> bool {
    match mode {
        GStageMode::Sv39x4 => SV39X4.load(Ordering::Relaxed),
        GStageMode::Sv48x4 => SV48X4.load(Ordering::Relaxed),
    }
}

/// The bits of `hgatp.VMID` the hardware implements.
pub(crate) fn vmid_mask() -> u16 {
    VMID_MASK.load(Ordering::Relaxed) as u16
}

/// Whether the Sstc extension (`vstimecmp`) is usable (false before `hardware_enable`).
pub fn has_sstc() -> bool {
    SSTC.load(Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------------
// SBI calls to the firmware.

fn sbi_call(eid: u64, fid: u64, a0: u64, a1: u64) -> (i64, u64) {
    let (err, val): (i64, u64);
    // SAFETY: an SBI call to one of the extensions below, whose functions touch no memory
    // of ours; the firmware preserves every register but a0/a1.
    unsafe {
        core::arch::asm!(
            "ecall",
            inlateout("a0") a0 => err,
            inlateout("a1") a1 => val,
            in("a6") fid,
            in("a7") eid,
            options(nostack)
        )
    };
    (err, val)
}

/// Sends a supervisor software interrupt to hart `hart` (IPI extension: `send_ipi` with
/// `hart_mask` = 1, `hart_mask_base` = `hart`).
pub(crate) fn send_ipi(hart: usize) {
    sbi_call(eid::IPI, 0, 1, hart as u64);
}

/// Programs the host's supervisor timer (`u64::MAX`: never).
pub(crate) fn set_host_timer(stime: u64) {
    sbi_call(eid::TIME, 0, stime, 0);
}

/// Writes a byte to the firmware's console (legacy `console_putchar`).
pub(crate) fn console_putchar(c: u8) {
    sbi_call(eid::LEGACY_PUTCHAR, 0, c as u64, 0);
}

/// Reads a byte from the firmware's console (legacy `console_getchar`: -1 when none).
pub(crate) fn console_getchar() -> i64 {
    sbi_call(eid::LEGACY_GETCHAR, 0, 0, 0).0
}
