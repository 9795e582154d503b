//! Interrupts: injection into the guest (`hvip`, the pending bit of each code), the kick
//! (an SBI IPI), the guest's timer, and host interrupts taken while the guest ran.

use axvcpu::{AxVCpuExitReason, AxVCpuHal, KickIpi, VCpuError, VCpuResult};

use super::RiscvVCpu;
use crate::hw::{self, irq, num};

/// The kick interrupt of this backend: a supervisor software interrupt sent through the SBI
/// IPI extension to the hart the vCPU is bound to (`RiscvVCpu`'s kicker is
/// [`IpiKicker<SbiIpi>`](axvcpu::IpiKicker)). The run loop takes the kick request with
/// interrupts disabled just before `sret`; an IPI that arrives after that makes the guest
/// trap at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct SbiIpi;

impl KickIpi for SbiIpi {
    fn send_kick(cpu: usize) {
        hw::send_ipi(cpu);
    }
}

/// The `hvip` bit that injects guest interrupt code `vector`.
#[inline]
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
    /// Takes back an injected external interrupt (`hvip.VSEIP`): the guest claimed it from
    /// the hypervisor's interrupt-controller model. No CSR of the guest acknowledges an
    /// external interrupt, so this is how code 9 is taken.
    pub fn clear_external_interrupt(&mut self) {
        self.pending_irqs &= !irq::VSEIP;
    }

    /// The interrupts injected and not yet taken, as guest interrupt code bits (`1 << 1`
    /// software, `1 << 5` timer, `1 << 9` external).
    pub fn pending_interrupts(&self) -> u64 {
        self.pending_irqs >> 1
    }

    /// The guest's SBI `set_timer(stime)`: a new deadline replaces the old one and takes
    /// back a timer interrupt the guest has not taken yet.
    pub(super) fn set_guest_timer(&mut self, stime: u64) {
        self.pending_irqs &= !irq::VSTIP;
        self.vs.vstimecmp = stime;
        if hw::has_sstc() {
            hw::write::<{ num::VSTIMECMP }>(stime);
        } else {
            self.arm_host_timer();
        }
    }

    /// Without Sstc: programs the host's supervisor timer with the guest's deadline (none:
    /// `u64::MAX`; or already fired: the timer line is pending). Called on `set_timer` and
    /// at `bind`, so a deadline set before an `unbind` still fires after the next `bind` (at
    /// once if it has passed).
    pub(super) fn arm_host_timer(&mut self) {
        // No deadline, or it fired already and the guest has not set a new one.
        if self.vs.vstimecmp == u64::MAX || self.pending_irqs & irq::VSTIP != 0 {
            self.disarm_host_timer();
        } else {
            hw::set_host_timer(self.vs.vstimecmp);
            hw::set::<{ num::SIE }>(irq::STIP);
            self.guest_timer_armed = true;
        }
    }

    /// Without Sstc: gives the host's supervisor timer back (the deadline is kept).
    pub(super) fn disarm_host_timer(&mut self) {
        if self.guest_timer_armed {
            hw::set_host_timer(u64::MAX);
            hw::clear::<{ num::SIE }>(irq::STIP);
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
                // a Kicked it did not ask for). Taking the request (a swap) orders the
                // kicker's earlier writes, the core's exit request among them, before what
                // the core reads next.
                hw::clear::<{ num::SIP }>(irq::SSIP);
                self.kick.take_request();
                AxVCpuExitReason::Kicked
            }
            5 if self.guest_timer_armed => {
                // The guest's deadline, multiplexed onto the host timer (no Sstc). The
                // deadline stays, as `vstimecmp` does with Sstc (`wake_deadline` reports it,
                // passed); the pending line keeps the host timer from firing again for it.
                self.disarm_host_timer();
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
