//! [`Aarch64PerCpu`]: turning EL2's virtualization controls on and off on one CPU.

use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, Ordering};

use axvcpu::{AxArchPerCpu, AxVCpuHal, VCpuError, VCpuResult, MAX_CPUS};
use axvcpu_npt::Aarch64Stage2;

use crate::gic;
use crate::hw::{self, hcr, El2Controls};

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
/// (the backend does not switch that state).
const MDCR_EL2_TRAPS: u64 = (1 << 5) | (1 << 6) | (1 << 9) | (1 << 10) | (1 << 11);
/// `MDCR_EL2.HPMN` (4:0): the counters the host gives EL1/EL0, kept as found.
const MDCR_EL2_HPMN: u64 = 0x1f;

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
    saved: El2Controls,
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
            saved: El2Controls::default(),
            _hal: PhantomData,
        })
    }

    fn is_enabled(&self) -> bool {
        self.enabled
    }

    fn hardware_enable(&mut self) -> VCpuResult {
        let el = hw::current_el();
        if el != 2 {
            return Err(VCpuError::unsupported("not running at EL2 (CurrentEL.EL)").with_value(el));
        }
        let parange = hw::pa_range();
        let vtcr = Aarch64Stage2::vtcr_el2(parange).ok_or(
            VCpuError::unsupported("physical address range below 40 bits (PARange)")
                .with_value(parange),
        )?;
        self.saved = El2Controls::read();
        let guest_ready = El2Controls {
            hcr: hcr::HOST,
            vtcr,
            vttbr: 0,
            cptr: CPTR_EL2_VALUE,
            cnthctl: CNTHCTL_EL2_VALUE,
            cntvoff: 0,
            mdcr: (self.saved.mdcr & MDCR_EL2_HPMN) | MDCR_EL2_TRAPS,
        };
        // SAFETY: no guest runs on this CPU (a vCPU binds only once it is enabled); the host
        // value of HCR_EL2 has VM clear and VTTBR_EL2 is 0 until a `bind` loads a vCPU's
        // table, in the format `vtcr` (from the same `Aarch64Stage2`) describes.
        unsafe { guest_ready.write() };
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
        // SAFETY: what the CPU ran with before `hardware_enable`: the host's own setting,
        // under which no vCPU of this backend runs (`bind` now refuses on this CPU).
        unsafe { self.saved.write() };
        self.enabled = false;
        Ok(())
    }

    fn max_guest_page_table_levels(&self) -> usize {
        3
    }
}
