//! Interrupts: the guest's pending vectors and their delivery (`EVENTINJ`, the VINTR
//! window, re-injection after `EXITINTINFO`), the kick IPI, and the host interrupts taken
//! around each entry (GIF, the local APIC's IRR at an INTR exit).

use axvcpu::{AxVCpuExitReason, AxVCpuHal, VCpuError, VCpuResult, VectorSet};
use axvcpu_x86::lapic::{self, check_injectable_vector, KICK_VECTOR};

use super::SvmVCpu;
use crate::hw;
use crate::switch;
use crate::vmcb::{ctrl, event, exit, icpt3, int_ctl, save, TLB_FLUSH_ALL};

const RFLAGS_IF: u64 = 1 << 9;
/// `INT_STATE` bit 0: the guest is in an interrupt shadow (`sti`, `mov ss`).
const INTERRUPT_SHADOW: u64 = 1;

/// The host interrupt pending at an INTR exit, read from the local APIC's IRR before the
/// host takes it.
#[derive(Debug, Clone, Copy)]
enum HostIrq {
    /// The kick vector (a kick, or a late IPI of a kick already taken).
    StaleKick,
    /// Another vector.
    Other(u8),
}

/// A vCPU's interrupt state.
#[derive(Debug, Default)]
pub(super) struct Interrupts {
    /// Injected vectors the guest has not taken.
    pending: VectorSet,
    /// An event whose delivery the last exit cut short (`EXITINTINFO`, as `EVENTINJ`).
    reinject: Option<u64>,
    /// What made the last INTR exit.
    host_irq: Option<HostIrq>,
}

impl Interrupts {
    pub(super) fn inject(&mut self, vector: usize) -> VCpuResult {
        check_injectable_vector(vector)?;
        self.pending.insert(vector);
        Ok(())
    }

    /// Delivers exception `vector` (with `error_code`) at the next entry, ahead of any
    /// interrupt. Refused while an event an exit cut short waits to be delivered again (the
    /// exit was not the faulting instruction's), and for vectors that are not exceptions
    /// (NMI, 32 and up).
    pub(super) fn exception(&mut self, vector: u8, error_code: Option<u32>) -> VCpuResult {
        if vector >= 32 || vector == 2 {
            return Err(VCpuError::invalid_input(
                "inject_exception: x86 exceptions are vectors 0..32 other than NMI (2)",
            )
            .with_value(u64::from(vector)));
        }
        if self.reinject.is_some() {
            return Err(VCpuError::bad_state(
                "inject_exception: an event the last exit interrupted is still to be delivered",
            ));
        }
        let mut ev = u64::from(vector) | event::TYPE_EXCEPTION | event::VALID;
        if let Some(code) = error_code {
            ev |= event::EV | (u64::from(code) << 32);
        }
        self.reinject = Some(ev);
        Ok(())
    }

    pub(super) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
            || self
                .reinject
                .is_some_and(|ev| ev & event::TYPE_MASK == 0 && ev & event::VALID != 0)
    }
}

impl<H: AxVCpuHal> SvmVCpu<H> {
    /// Sets `EVENTINJ`, `V_IRQ` and the VINTR intercept for the next entry: the event an
    /// exit cut short first, else the highest pending vector if the guest can take it now,
    /// else a window request.
    pub(super) fn prepare_injection(&mut self) {
        let v = self.vmcb();
        v.w64(ctrl::EVENTINJ, 0);
        v.w64(
            ctrl::INT_CTL,
            v.r64(ctrl::INT_CTL) & !(int_ctl::V_IRQ | int_ctl::V_IGN_TPR),
        );
        v.w32(ctrl::INTERCEPT_3, v.r32(ctrl::INTERCEPT_3) & !icpt3::VINTR);
        if let Some(ev) = self.irq.reinject.take() {
            v.w64(ctrl::EVENTINJ, ev);
            return;
        }
        let Some(vector) = self.irq.pending.highest() else {
            return;
        };
        let open =
            v.r64(save::RFLAGS) & RFLAGS_IF != 0 && v.r64(ctrl::INT_STATE) & INTERRUPT_SHADOW == 0;
        if open {
            self.irq.pending.remove(vector);
            v.w64(ctrl::EVENTINJ, vector as u64 | event::VALID);
        } else {
            v.w64(
                ctrl::INT_CTL,
                v.r64(ctrl::INT_CTL) | int_ctl::V_IRQ | int_ctl::V_IGN_TPR,
            );
            v.w32(ctrl::INTERCEPT_3, v.r32(ctrl::INTERCEPT_3) | icpt3::VINTR);
        }
    }

    /// One entry into the guest and back; `false` if a kick was requested (no entry).
    ///
    /// Host interrupts: `cli`, `clgi`; take the kick request (set: `stgi`, no entry); `sti`
    /// with GIF still clear, so an interrupt arriving from here on is held and makes the
    /// guest exit (INTR intercept) as soon as it runs; `vmrun`; read the IRR before the
    /// host takes anything; `stgi` (the host's IDT takes what is pending); `cli` and the
    /// caller's `IF` again.
    pub(super) fn enter(&mut self) -> bool {
        let flags = hw::save_flags_cli();
        // SAFETY: `bind` ran on this CPU, where the hypervisor enabled SVM (AxPerCpu).
        unsafe { hw::clgi() };
        if self.kicker.take_request() {
            // SAFETY: as above; the caller's interrupts come back with its flags.
            unsafe { hw::stgi() };
            hw::restore_flags(flags);
            return false;
        }
        self.prepare_injection();
        let v = self.vmcb();
        v.w8(
            ctrl::TLB_CONTROL,
            if self.flush_tlb { TLB_FLUSH_ALL } else { 0 },
        );
        v.w32(ctrl::CLEAN, 0);
        self.flush_tlb = false;
        // SAFETY: GIF = 0 holds host interrupts until the guest runs (with IF = 1 so they
        // make it exit), and after #VMEXIT until `stgi`. The VMCB, host area and
        // permission maps are this vCPU's frames, filled by `setup` (`AxVCpu` runs only
        // after it); SVM is enabled on this CPU.
        unsafe {
            hw::sti();
            switch::vmrun(&mut self.gprs, self.frames.vmcb, self.frames.host_area);
        }
        self.irq.host_irq = None;
        if v.r64(ctrl::EXITCODE) == exit::INTR {
            let irr = lapic::irr::<H>();
            self.irq.host_irq = if lapic::has_vector(&irr, KICK_VECTOR) {
                Some(HostIrq::StaleKick)
            } else {
                lapic::highest_vector(&irr).map(HostIrq::Other)
            };
        }
        // SAFETY: as above; with GIF set and IF = 1 the host's IDT takes what is pending.
        unsafe { hw::stgi_take_interrupts_cli() };
        hw::restore_flags(flags);
        let info = v.r64(ctrl::EXITINTINFO);
        if info & event::VALID != 0 {
            // Re-deliver the event the exit interrupted, with its error code.
            let mut ev = info & 0xffff_ffff;
            if info & event::EV != 0 {
                ev |= info & 0xffff_ffff_0000_0000;
            }
            self.irq.reinject = Some(ev);
        }
        true
    }

    /// An INTR or NMI exit (`nmi`): `Kicked` if a kick was requested, else the host
    /// interrupt that caused it (already handled by the host's IDT), or `Nothing` for the
    /// late IPI of a kick already taken (or nothing pending any more).
    pub(super) fn host_interrupt_exit(&mut self, nmi: bool) -> AxVCpuExitReason {
        let host_irq = self.irq.host_irq.take();
        if self.kicker.take_request() {
            return AxVCpuExitReason::Kicked;
        }
        if nmi {
            return AxVCpuExitReason::ExternalInterrupt { vector: 2 };
        }
        match host_irq {
            Some(HostIrq::Other(vector)) => AxVCpuExitReason::ExternalInterrupt {
                vector: u64::from(vector),
            },
            Some(HostIrq::StaleKick) | None => AxVCpuExitReason::Nothing,
        }
    }
}
