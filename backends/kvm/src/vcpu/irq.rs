//! Interrupt delivery: the vectors handed over and not yet taken, injected one at a time
//! through the synced vCPU events when the guest can take one, with KVM's interrupt-window
//! exit (handled inside: `Nothing`) while it cannot.
//!
//! The interrupt rule (see `AxArchVCpu::inject_interrupt`): a pending bit per vector. A
//! vector handed over again while it is still pending here, or injected into KVM and not
//! yet delivered through the guest's IDT, merges with it; distinct vectors are all
//! delivered, highest first (x86's priority order), each exactly once. There is no
//! in-kernel local APIC, so this set is the only one.
//!
//! Kicks of this hosted backend are `kick`'s signal and `immediate_exit`, not
//! [`IpiKicker`](axvcpu::IpiKicker); host interrupts never reach this code (the host kernel
//! takes them inside `KVM_RUN`).

use axvcpu::{VCpuError, VCpuResult, VectorSet};

use crate::regs::RFLAGS_IF;
use crate::switch::Switch;

/// The interrupts of one vCPU that the guest has not taken yet.
#[derive(Debug, Default)]
pub(crate) struct Irqs {
    /// Handed over, not yet injected into KVM.
    pending: VectorSet,
    /// Injected into KVM, not yet delivered to the guest (as of the last exit).
    in_flight: Option<u8>,
    /// Whether KVM said the guest can take an interrupt at the last exit.
    ready: bool,
}

impl Irqs {
    /// Vectors 32..=255: 0..32 are exceptions.
    pub(crate) fn check_vector(vector: usize) -> VCpuResult {
        if (32..=255).contains(&vector) {
            Ok(())
        } else {
            Err(
                VCpuError::invalid_input("x86 interrupt vectors are 32..=255")
                    .with_value(vector as u64),
            )
        }
    }

    /// Makes `vector` (checked by [`check_vector`](Self::check_vector)) pending, merging
    /// with the same vector pending or in flight.
    #[inline]
    pub(crate) fn inject(&mut self, vector: usize) -> VCpuResult {
        Self::check_vector(vector)?;
        if self.in_flight != Some(vector as u8) {
            self.pending.insert(vector);
        }
        Ok(())
    }

    /// Whether the guest has an interrupt to take.
    #[inline]
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty() || self.in_flight.is_some()
    }

    /// Before an entry: injects the highest pending vector if the guest can take it now,
    /// and asks KVM for an interrupt-window exit while any remains held.
    #[inline]
    pub(crate) fn before_entry(&mut self, switch: &mut Switch, rflags: u64) {
        if self.pending.is_empty() {
            switch.request_interrupt_window(false);
            return;
        }
        let can_take = self.ready && self.in_flight.is_none() && rflags & RFLAGS_IF != 0;
        if can_take {
            if let Some(vector) = self.pending.highest() {
                self.pending.remove(vector);
                // `check_vector` kept every pending vector below 256.
                let vector = vector as u8;
                switch.inject(vector);
                self.in_flight = Some(vector);
                self.ready = false;
            }
        }
        switch.request_interrupt_window(!self.pending.is_empty());
    }

    /// After an exit: what KVM still holds injected, and whether the guest could take more.
    #[inline]
    pub(crate) fn after_exit(&mut self, switch: &Switch) {
        self.in_flight = switch.injected_interrupt();
        self.ready = switch.ready_for_interrupt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vector_pending_or_in_flight_merges() {
        let mut irqs = Irqs::default();
        for v in [0x40, 0x41, 0x40, 0x41, 0x40] {
            irqs.inject(v).expect("valid vector");
        }
        assert_eq!(irqs.pending.iter().collect::<Vec<_>>(), [0x40, 0x41]);
        irqs.in_flight = irqs.pending.highest().map(|v| v as u8);
        irqs.pending.remove(0x41);
        irqs.inject(0x41).expect("valid vector");
        assert_eq!(irqs.pending.iter().collect::<Vec<_>>(), [0x40]);
        assert!(irqs.has_pending());
        assert!(irqs.inject(31).is_err());
        assert!(irqs.inject(256).is_err());
    }
}
