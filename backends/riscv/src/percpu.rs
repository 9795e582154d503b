//! [`RiscvPerCpu`]: turning the H extension's delegation on and off on one hart.

use core::marker::PhantomData;

use axvcpu::{AxArchPerCpu, AxVCpuHal, VCpuError, VCpuResult};

use crate::hw::{self, irq, num};
use crate::vcpu::HEDELEG;
use crate::GStageMode;

/// `hcounteren`: the guest reads `time` (bit 1) and `instret` (bit 2) directly; `cycle`
/// (bit 0) and the HPM counters trap as virtual-instruction exceptions, reported as
/// [`SysRegRead`](axvcpu::AxVCpuExitReason::SysRegRead).
pub const HCOUNTEREN: u64 = (1 << 1) | (1 << 2);

/// The H-extension state of one hart.
///
/// `hardware_enable` checks the H extension is there (a trapping `hstatus` read means it is
/// not), probes the G-stage modes, VMID width and Sstc, then sets `hedeleg`, `hideleg`
/// (the three VS interrupts), `hcounteren`, `henvcfg.STCE` (when Sstc), clears `hvip`,
/// `hgatp` and `htimedelta`, and enables the supervisor software interrupt in `sie` (kicks).
/// `hardware_disable` undoes all of it. Neither panics. Both are refused while a vCPU is
/// bound to the hart (as `AxVCpu` records it): they reset `hgatp`, which that vCPU's guest
/// would then run with.
#[derive(Debug)]
pub struct RiscvPerCpu<H: AxVCpuHal> {
    cpu_id: usize,
    enabled: bool,
    saved_sie: u64,
    _hal: PhantomData<fn() -> H>,
}

impl<H: AxVCpuHal> RiscvPerCpu<H> {
    /// Refuses with `reason` when a vCPU is bound to this hart.
    fn expect_no_vcpu(&self, reason: &'static str) -> VCpuResult {
        match axvcpu::vcpu_on_cpu(self.cpu_id) {
            None => Ok(()),
            Some(id) => Err(VCpuError::bad_state(reason).with_value(id.vcpu_id as u64)),
        }
    }
}

impl<H: AxVCpuHal> AxArchPerCpu for RiscvPerCpu<H> {
    fn new(cpu_id: usize) -> VCpuResult<Self> {
        Ok(Self {
            cpu_id,
            enabled: false,
            saved_sie: 0,
            _hal: PhantomData,
        })
    }

    fn is_enabled(&self) -> bool {
        self.enabled
    }

    fn hardware_enable(&mut self) -> VCpuResult {
        // The CSRs written below are this hart's: enabling for another one would leave
        // that hart without delegation while claiming it has it.
        let here = H::current_cpu_id();
        if here != self.cpu_id {
            return Err(VCpuError::bad_state(
                "hardware_enable: called on another hart than the state's cpu_id (value: current_cpu_id, which must be the hart id)",
            )
            .with_value(here as u64));
        }
        self.expect_no_vcpu(
            "hardware_enable: a vCPU is bound to this hart (value: its vcpu_id); unbind it first",
        )?;
        if let Err(scause) = crate::switch::probe_h() {
            return Err(
                VCpuError::unsupported("no H extension: reading hstatus traps (scause)")
                    .with_value(scause),
            );
        }
        // SAFETY: no vCPU is bound to this hart (checked above), so no guest enters here
        // before a `bind` writes its own hgatp.
        unsafe { hw::probe() };
        if !hw::supports(GStageMode::Sv39x4) && !hw::supports(GStageMode::Sv48x4) {
            return Err(VCpuError::unsupported(
                "hgatp accepts neither Sv39x4 nor Sv48x4",
            ));
        }
        hw::write::<{ num::HEDELEG }>(HEDELEG);
        hw::write::<{ num::HIDELEG }>(irq::VS_ALL);
        hw::write::<{ num::HCOUNTEREN }>(HCOUNTEREN);
        hw::write::<{ num::HVIP }>(0);
        hw::write::<{ num::HIE }>(0);
        hw::write::<{ num::HTIMEDELTA }>(0);
        // SAFETY: as for the probe: Bare until a `bind` writes its table.
        unsafe { hw::write_hgatp(0) };
        hw::hfence_gvma_all();
        self.saved_sie = hw::set::<{ num::SIE }>(irq::SSIP) & irq::SSIP;
        self.enabled = true;
        Ok(())
    }

    fn hardware_disable(&mut self) -> VCpuResult {
        self.expect_no_vcpu(
            "hardware_disable: a vCPU is bound to this hart (value: its vcpu_id); unbind it first",
        )?;
        hw::write::<{ num::HEDELEG }>(0);
        hw::write::<{ num::HIDELEG }>(0);
        hw::write::<{ num::HCOUNTEREN }>(0);
        hw::write::<{ num::HVIP }>(0);
        hw::write::<{ num::HENVCFG }>(0);
        // SAFETY: no vCPU is bound to this hart (checked above); a later `bind` writes
        // its own table.
        unsafe { hw::write_hgatp(0) };
        hw::hfence_gvma_all();
        if self.saved_sie == 0 {
            hw::clear::<{ num::SIE }>(irq::SSIP);
        }
        self.enabled = false;
        Ok(())
    }

    fn max_guest_page_table_levels(&self) -> usize {
        if hw::supports(GStageMode::Sv48x4) {
            4
        } else {
            3
        }
    }
}
