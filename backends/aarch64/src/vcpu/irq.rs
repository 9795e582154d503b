//! Interrupts: what is injected and not yet taken (a [`VectorSet`](axvcpu::VectorSet), and
//! the list registers with the vGIC), its delivery at entry (`HCR_EL2.VI` or the list
//! registers, `vgic.rs`), the guest's
//! `hvc #1` acknowledge, the kick SGI ([`KickSgi`]), and the physical interrupts that made
//! the guest exit.
//!
//! "Taken" is the guest's acknowledge: `hvc #1` with `VI`, a `GICV_IAR` read with the vGIC.
//! Until then an INTID injected again merges with the pending one.

use axvcpu::{AxVCpuExitReason, AxVCpuHal, KickIpi, VCpuError, VCpuResult};

use super::Aarch64VCpu;
use crate::gic;
use crate::hw::hcr;

/// Interrupt ids a guest can be given: GICv2 INTIDs `0..1020` (1020..1023 are special).
pub const MAX_VIRQ: usize = 1020;

/// The `HVC` immediate of the backend's own virtual interrupt acknowledge (without the
/// vGIC): `hvc #1` returns the lowest pending INTID in `x0` and removes it, or 1023
/// ([`SPURIOUS`](gic::SPURIOUS)) when none is pending.
pub const HVC_IRQ_ACK: u16 = 1;

/// How [`IpiKicker`](axvcpu::IpiKicker) interrupts a CPU for this backend: SGI
/// [`KICK_SGI`](gic::KICK_SGI) through the GICv2 distributor named with
/// [`set_gic_v2`](gic::set_gic_v2), to the CPU interface numbered `cpu` (0..8). With
/// `HCR_EL2.IMO` the SGI makes a running guest exit to EL2; `run` acknowledges it and
/// reports `Kicked`.
#[derive(Debug, Clone, Copy)]
pub struct KickSgi;

impl KickIpi for KickSgi {
    fn send_kick(cpu: usize) {
        gic::send_sgi(cpu, gic::KICK_SGI);
    }
}

/// Refuses what is not a GICv2 INTID a guest can be given.
pub(super) fn check_vector(vector: usize) -> VCpuResult {
    if vector < MAX_VIRQ {
        Ok(())
    } else {
        Err(
            VCpuError::invalid_input("AArch64 injects GIC INTIDs 0..1020")
                .with_value(vector as u64),
        )
    }
}

impl<H: AxVCpuHal> Aarch64VCpu<H> {
    /// `inject_interrupt`: makes `intid` pending, merging with itself when the guest has
    /// not taken it yet.
    pub(super) fn inject(&mut self, intid: usize) -> VCpuResult {
        check_vector(intid)?;
        match &self.vgic {
            Some(v) => v.inject(intid, &mut self.pending),
            None => {
                self.pending.insert(intid);
            }
        }
        Ok(())
    }

    /// Whether an injected interrupt waits for the guest to take it.
    pub(super) fn holds_pending_irq(&self) -> bool {
        !self.pending.is_empty() || self.vgic.is_some_and(|v| v.holds_pending())
    }

    /// The guest's `hvc #1`: takes the lowest pending INTID (1023 when none).
    pub(super) fn acknowledge_irq(&mut self) -> u64 {
        match self.pending.lowest() {
            Some(intid) => {
                self.pending.remove(intid);
                intid as u64
            }
            None => gic::SPURIOUS as u64,
        }
    }

    /// Before an entry: offers the guest what is pending. Returns the `HCR_EL2` bits for
    /// it (`VI` while any is pending without the vGIC). With the vGIC, the physical timer
    /// PPI is unmasked again once the guest has ended the virtual one.
    #[inline]
    pub(super) fn offer_irqs(&mut self) -> u64 {
        match self.vgic.as_mut() {
            Some(v) => {
                if v.timer_ended(&self.pending) {
                    gic::set_ppi_enabled(gic::VTIMER_PPI, true);
                }
                v.refill(&mut self.pending);
                v.put();
                0
            }
            None if self.pending.is_empty() => 0,
            None => hcr::VI,
        }
    }

    /// After an exit: reads back what the guest did to the list register.
    #[inline]
    pub(super) fn irqs_after_exit(&mut self) {
        if let Some(v) = self.vgic.as_mut() {
            v.get();
        }
    }

    /// A physical IRQ or FIQ made the guest exit (`HCR_EL2.IMO`/`FMO`; EL2 interrupts are
    /// masked for the whole of `run`, so it is still pending in the GIC).
    pub(super) fn host_irq_exit(&mut self) -> AxVCpuExitReason {
        let iar = gic::ack();
        let intid = iar & 0x3ff;
        if intid == gic::SPURIOUS {
            // Withdrawn, or taken by another CPU of its target list.
            return AxVCpuExitReason::Nothing;
        }
        if let Some(v) = self.vgic.as_mut() {
            if intid == gic::VTIMER_PPI {
                // The guest's own timer: level-sensitive, so it stays asserted until the
                // guest reprograms it. Masked here, offered as virtual INTID 27, unmasked
                // when the guest ends that (`offer_irqs`).
                gic::set_ppi_enabled(gic::VTIMER_PPI, false);
                gic::eoi(iar);
                v.timer_masked = true;
                v.inject(gic::VTIMER_PPI as usize, &mut self.pending);
                return AxVCpuExitReason::Nothing;
            }
            if intid == gic::MAINTENANCE_PPI {
                // The guest ended an interrupt loaded with `EOI`: `offer_irqs` refills.
                gic::eoi(iar);
                return AxVCpuExitReason::Nothing;
            }
        }
        if intid == gic::KICK_SGI {
            gic::eoi(iar);
            // Taken again, not just cleared: the swap orders the kicker's earlier writes
            // (the core's exit request) before what the core reads next. Reported even if
            // the pre-entry check already took it: a `Kicked` too many is harmless.
            self.kick.take_request();
            return AxVCpuExitReason::Kicked;
        }
        H::irq_handler();
        gic::eoi(iar);
        AxVCpuExitReason::ExternalInterrupt {
            vector: intid as u64,
        }
    }
}
