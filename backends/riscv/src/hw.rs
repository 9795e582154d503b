//! What the backend learned about the hardware (probed once by `hardware_enable`), and the
//! host SBI calls it makes.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::csr::{self, num};
use crate::GStageMode;

static PROBED: AtomicBool = AtomicBool::new(false);
static SV39X4: AtomicBool = AtomicBool::new(false);
static SV48X4: AtomicBool = AtomicBool::new(false);
static SSTC: AtomicBool = AtomicBool::new(false);
static VMID_MASK: AtomicU64 = AtomicU64::new(0);

/// `hgatp` field positions.
pub(crate) const HGATP_MODE_SHIFT: u32 = 60;
pub(crate) const HGATP_VMID_SHIFT: u32 = 44;
const HGATP_VMID_MAX: u64 = 0x3fff;

/// `henvcfg.STCE`: VS-mode may use `vstimecmp` (Sstc).
pub(crate) const HENVCFG_STCE: u64 = 1 << 63;

/// Probes `hgatp` modes, VMID width and Sstc on this hart (H-extension CSRs must work).
pub(crate) fn probe() {
    let mut modes = [false; 2];
    for (i, mode) in [GStageMode::Sv39x4, GStageMode::Sv48x4]
        .into_iter()
        .enumerate()
    {
        csr::write::<{ num::HGATP }>(
            (mode.hgatp_mode() << HGATP_MODE_SHIFT) | (HGATP_VMID_MAX << HGATP_VMID_SHIFT),
        );
        let back = csr::read::<{ num::HGATP }>();
        modes[i] = back >> HGATP_MODE_SHIFT == mode.hgatp_mode();
        if modes[i] {
            VMID_MASK.store(
                (back >> HGATP_VMID_SHIFT) & HGATP_VMID_MAX,
                Ordering::Relaxed,
            );
        }
    }
    csr::write::<{ num::HGATP }>(0);
    csr::hfence_gvma_all();
    SV39X4.store(modes[0], Ordering::Relaxed);
    SV48X4.store(modes[1], Ordering::Relaxed);
    let old = csr::set::<{ num::HENVCFG }>(HENVCFG_STCE);
    let sstc = csr::read::<{ num::HENVCFG }>() & HENVCFG_STCE != 0;
    csr::write::<{ num::HENVCFG }>(old | if sstc { HENVCFG_STCE } else { 0 });
    SSTC.store(sstc, Ordering::Relaxed);
    PROBED.store(true, Ordering::Release);
}

/// Whether `hardware_enable` has probed the hardware on some hart.
pub(crate) fn probed() -> bool {
    PROBED.load(Ordering::Acquire)
}

/// Whether `hgatp` accepts `mode` (false before probing).
pub fn supports(mode: GStageMode) -> bool {
    match mode {
        GStageMode::Sv39x4 => SV39X4.load(Ordering::Relaxed),
        GStageMode::Sv48x4 => SV48X4.load(Ordering::Relaxed),
    }
}

/// The bits of `hgatp.VMID` the hardware implements.
pub(crate) fn vmid_mask() -> u64 {
    VMID_MASK.load(Ordering::Relaxed)
}

/// Whether the Sstc extension (`vstimecmp`) is usable.
pub fn has_sstc() -> bool {
    SSTC.load(Ordering::Relaxed)
}

/// An SBI call from HS-mode to the machine-mode firmware.
pub(crate) fn sbi_call(eid: u64, fid: u64, a0: u64, a1: u64, a2: u64) -> (i64, u64) {
    let (err, val): (i64, u64);
    // SAFETY: an SBI call; the firmware preserves every register but a0/a1.
    unsafe {
        core::arch::asm!(
            "ecall",
            inlateout("a0") a0 => err,
            inlateout("a1") a1 => val,
            in("a2") a2,
            in("a6") fid,
            in("a7") eid,
            options(nostack)
        )
    };
    (err, val)
}

/// Sends a supervisor software interrupt to hart `hart`.
pub(crate) fn send_ipi(hart: usize) {
    // IPI extension: send_ipi(hart_mask = 1, hart_mask_base = hart)
    sbi_call(crate::sbi::eid::IPI, 0, 1, hart as u64, 0);
}

/// Programs the host's supervisor timer.
pub(crate) fn set_host_timer(stime: u64) {
    sbi_call(crate::sbi::eid::TIME, 0, stime, 0, 0);
}
