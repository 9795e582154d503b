//! Interrupts: injection into the guest (`hvip`), the kick, the guest's timer, and host
//! interrupts taken while the guest ran.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axvcpu::{AxVCpuExitReason, AxVCpuHal, VCpuError, VCpuKick, VCpuResult};

use super::RiscvVCpu;
use crate::csr::{self, irq, num};
use crate::hw;

/// The kick of one vCPU: a flag and the hart it is bound to.
#[derive(Debug)]
pub(super) struct KickState {
    pub flag: AtomicBool,
    pub hart: AtomicUsize,
}

/// `KickState::hart` while the vCPU is not bound.
pub(super) const NO_HART: usize = usize::MAX;

impl KickState {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            flag: AtomicBool::new(false),
            hart: AtomicUsize::new(NO_HART),
        })
    }
}

/// Kicks a [`RiscvVCpu`]: sets its flag and sends a supervisor software interrupt (SBI IPI)
/// to the hart it is bound to. The run loop checks the flag with interrupts disabled just
/// before `sret`; an IPI that arrives after that check makes the guest trap at once.
#[derive(Debug, Clone)]
pub struct RiscvKicker(pub(super) Arc<KickState>);

impl VCpuKick for RiscvKicker {
    fn kick(&self) {
        self.0.flag.store(true, Ordering::SeqCst);
        let hart = self.0.hart.load(Ordering::SeqCst);
        if hart != NO_HART {
            hw::send_ipi(hart);
        }
    }
}

/// The `hvip` bit that injects guest interrupt code `vector`.
pub(super) fn vector_bit(vector: usize) -> VCpuResult<u64> {
    match vector {
        1 => Ok(irq::VSSIP),
        5 => Ok(irq::VSTIP),
        9 => Ok(irq::VSEIP),
        _ => Err(VCpuError::invalid_input(
            "RISC-V injects interrupt codes 1 (software), 5 (timer) or 9 (external)",
        )
        .with_value(vector as u64)),
    }
}

impl<H: AxVCpuHal> RiscvVCpu<H> {
    /// Clears an injected external interrupt (`hvip.VSEIP`): the guest claimed it from the
    /// hypervisor's interrupt-controller model.
    pub fn clear_external_interrupt(&mut self) {
        self.pending_irqs &= !irq::VSEIP;
    }

    /// The interrupts injected and not yet acknowledged, as guest interrupt codes bits
    /// (`1 << 1` software, `1 << 5` timer, `1 << 9` external).
    pub fn pending_interrupts(&self) -> u64 {
        self.pending_irqs >> 1
    }

    /// The guest's SBI `set_timer(stime)`: a new deadline replaces the old one and takes
    /// back a timer interrupt the guest has not taken yet.
    pub(super) fn set_guest_timer(&mut self, stime: u64) {
        self.pending_irqs &= !irq::VSTIP;
        self.vs.vstimecmp = stime;
        if hw::has_sstc() {
            csr::write::<{ num::VSTIMECMP }>(stime);
        } else {
            self.arm_host_timer();
        }
    }

    /// Without Sstc: programs the host's supervisor timer with the guest's deadline (none:
    /// `u64::MAX`). Called on `set_timer` and at `bind`, so a deadline set before an
    /// `unbind` still fires after the next `bind` (at once if it has passed).
    pub(super) fn arm_host_timer(&mut self) {
        if self.vs.vstimecmp == u64::MAX {
            self.disarm_host_timer();
        } else {
            hw::set_host_timer(self.vs.vstimecmp);
            csr::set::<{ num::SIE }>(irq::STIP);
            self.guest_timer_armed = true;
        }
    }

    /// Without Sstc: gives the host's supervisor timer back (the deadline is kept).
    pub(super) fn disarm_host_timer(&mut self) {
        if self.guest_timer_armed {
            hw::set_host_timer(u64::MAX);
            csr::clear::<{ num::SIE }>(irq::STIP);
            self.guest_timer_armed = false;
        }
    }

    /// A host interrupt (`scause` code `code`) arrived while the guest ran. Nothing of the
    /// guest is lost: the world switch saved every register, and `sepc` is the
    /// instruction the guest resumes at.
    pub(super) fn handle_host_interrupt(&mut self, code: u64) -> AxVCpuExitReason {
        match code {
            1 => {
                // Supervisor software interrupt: a kick (or a stale one; the core absorbs
                // a Kicked it did not ask for).
                csr::clear::<{ num::SIP }>(irq::SSIP);
                // A swap, not a store: reading the flag the kicker set orders its earlier
                // writes (the core's exit request) before what the core reads next.
                self.kick.flag.swap(false, Ordering::SeqCst);
                AxVCpuExitReason::Kicked
            }
            5 if self.guest_timer_armed => {
                // The guest's deadline, multiplexed onto the host timer (no Sstc).
                self.disarm_host_timer();
                self.vs.vstimecmp = u64::MAX;
                self.pending_irqs |= irq::VSTIP;
                AxVCpuExitReason::Nothing
            }
            code => {
                H::irq_handler();
                AxVCpuExitReason::ExternalInterrupt { vector: code }
            }
        }
    }
}
