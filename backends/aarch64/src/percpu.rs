//! [`Aarch64PerCpu`]: turning EL2's virtualization controls on and off on one CPU.

use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, Ordering};

use aarch64_cpu::registers::{
    CurrentEL, Readable, Writeable, CNTHCTL_EL2, CNTVOFF_EL2, CPTR_EL2, HCR_EL2, ID_AA64MMFR0_EL1,
    MDCR_EL2, VTCR_EL2, VTTBR_EL2,
};
use axvcpu::{AxArchPerCpu, AxVCpuHal, VCpuError, VCpuResult, MAX_CPUS};
use axvcpu_npt::Aarch64Stage2;

use crate::{gic, hcr};

static ENABLED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// Whether `hardware_enable` has run (and `hardware_disable` not since) on CPU `cpu`.
pub(crate) fn enabled_on(cpu: usize) -> bool {
    ENABLED.get(cpu).is_some_and(|e| e.load(Ordering::Acquire))
}

/// `CPTR_EL2` with E2H = 0: the RES1 bits (13:12 and 9:0, which also keep SVE and SME
/// trapped), `TFP` = 0 so FP/SIMD works at EL2 and for the guest, no `TTA`/`TCPAC` traps.
pub(crate) const CPTR_EL2_VALUE: u64 = 0x33ff;
/// `CNTHCTL_EL2`: EL1 and EL0 read the physical counter (`EL1PCTEN`); the physical timer
/// (`EL1PCEN` = 0) is the host's, so the guest's `CNTP_*` accesses become
/// `SysRegRead`/`SysRegWrite` exits. The guest owns the virtual timer (`CNTV_*`).
const CNTHCTL_EL2_VALUE: u64 = 0b01;
/// `MDCR_EL2` trap bits: `TPMCR` (5), `TPM` (6), `TDA` (9), `TDOSA` (10), `TDRA` (11): the
/// guest's PMU and debug register accesses become `SysRegRead`/`SysRegWrite` exits
/// (the backend does not switch that state). `HPMN` (4:0) is kept.
const MDCR_EL2_TRAPS: u64 = (1 << 5) | (1 << 6) | (1 << 9) | (1 << 10) | (1 << 11);

/// The EL2 state of one CPU.
///
/// `hardware_enable` checks the CPU runs at EL2 and that `ID_AA64MMFR0_EL1.PARange` covers
/// the stage-2 format's 40-bit minimum, then programs `VTCR_EL2`
/// ([`Aarch64Stage2::vtcr_el2`]), `HCR_EL2` (host value: `RW`), `VTTBR_EL2` = 0,
/// `CPTR_EL2`, `CNTHCTL_EL2`, `CNTVOFF_EL2` = 0, `MDCR_EL2` traps, and this CPU's GIC
/// interface and kick SGI (when a GIC was named). `hardware_disable` puts back what it
/// found. Neither panics.
#[derive(Debug)]
pub struct Aarch64PerCpu<H: AxVCpuHal> {
    cpu_id: usize,
    enabled: bool,
    saved: [u64; 7],
    _hal: PhantomData<fn() -> H>,
}

impl<H: AxVCpuHal> AxArchPerCpu for Aarch64PerCpu<H> {
    fn new(cpu_id: usize) -> VCpuResult<Self> {
        if cpu_id >= MAX_CPUS {
            return Err(
                VCpuError::invalid_input("CPU id beyond MAX_CPUS").with_value(cpu_id as u64)
            );
        }
        Ok(Self {
            cpu_id,
            enabled: false,
            saved: [0; 7],
            _hal: PhantomData,
        })
    }

    fn is_enabled(&self) -> bool {
        self.enabled
    }

    fn hardware_enable(&mut self) -> VCpuResult {
        let el = CurrentEL.read(CurrentEL::EL);
        if el != 2 {
            return Err(VCpuError::unsupported("not running at EL2 (CurrentEL.EL)").with_value(el));
        }
        let parange = ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange);
        let vtcr = Aarch64Stage2::vtcr_el2(parange).ok_or(
            VCpuError::unsupported("physical address range below 40 bits (PARange)")
                .with_value(parange),
        )?;
        self.saved = [
            HCR_EL2.get(),
            VTCR_EL2.get(),
            VTTBR_EL2.get(),
            CPTR_EL2.get(),
            CNTHCTL_EL2.get(),
            CNTVOFF_EL2.get(),
            MDCR_EL2.get(),
        ];
        HCR_EL2.set(hcr::HOST);
        VTCR_EL2.set(vtcr);
        VTTBR_EL2.set(0);
        CPTR_EL2.set(CPTR_EL2_VALUE);
        CNTHCTL_EL2.set(CNTHCTL_EL2_VALUE);
        CNTVOFF_EL2.set(0);
        MDCR_EL2.set((self.saved[6] & 0x1f) | MDCR_EL2_TRAPS);
        aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
        gic::cpu_init();
        self.enabled = true;
        if let Some(e) = ENABLED.get(self.cpu_id) {
            e.store(true, Ordering::Release);
        }
        Ok(())
    }

    fn hardware_disable(&mut self) -> VCpuResult {
        if let Some(e) = ENABLED.get(self.cpu_id) {
            e.store(false, Ordering::Release);
        }
        let [h, vtcr, vttbr, cptr, cnthctl, cntvoff, mdcr] = self.saved;
        HCR_EL2.set(h);
        VTCR_EL2.set(vtcr);
        VTTBR_EL2.set(vttbr);
        CPTR_EL2.set(cptr);
        CNTHCTL_EL2.set(cnthctl);
        CNTVOFF_EL2.set(cntvoff);
        MDCR_EL2.set(mdcr);
        aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
        self.enabled = false;
        Ok(())
    }

    fn max_guest_page_table_levels(&self) -> usize {
        3
    }
}
