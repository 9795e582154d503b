//! Exit decoding: the exception the world switch saved (`ESR_EL2`, `FAR_EL2`, `HPFAR_EL2`,
//! the vector it came through) → an [`AxVCpuExitReason`], `Nothing` when the backend
//! handled it and the guest goes on, or an `Err` naming what the guest did.
//!
//! | exit vector, `ESR_EL2.EC` | outcome |
//! |---|---|
//! | IRQ / FIQ | see `irq.rs`: `Kicked`, `ExternalInterrupt`, or `Nothing` (spurious) |
//! | SError | `Err`, value `ESR_EL2` |
//! | 0x01 `wfi` / `wfe` | `Halt` / `Idle` |
//! | 0x16 `hvc #0` | PSCI (below) or `Hypercall` |
//! | 0x16 `hvc #1` | `Nothing`: the acknowledge answered in `x0` (`irq.rs`) |
//! | 0x16 `hvc #n`, n ≥ 2 | `Nothing`, `x0` = `NOT_SUPPORTED` |
//! | 0x17 `smc` | PSCI (below), past the `smc` |
//! | 0x18 `mrs` / `msr` | `SysRegRead` / `SysRegWrite` |
//! | 0x07 FP/SIMD, first use | `Nothing`: FP/SIMD switched from now on, the instruction runs again |
//! | 0x24 data abort | `MmioRead` / `MmioWrite`, `NestedPageFault`, `Nothing` (stale TLB, flushed and retried once; cache maintenance on unmapped space, skipped), or `Err` (`ISV` = 0, other fault kinds) |
//! | 0x20 instruction abort | `NestedPageFault`, `Nothing` (stale TLB, retried once), or `Err` |
//! | anything else | `Err`, value `ESR_EL2` |
//!
//! PSCI and SMCCC: `CPU_ON` → `CpuUp` (`x0` = SUCCESS), `CPU_OFF` → `CpuDown` (the vCPU's
//! EL1 state back to reset, for a later start with `set_pc`/`set_boot_arg`),
//! `AFFINITY_INFO` → `Hypercall`, `SYSTEM_OFF` / `SYSTEM_RESET` → `SystemDown`, everything
//! else answered in `x0` → `Nothing`.

use axvcpu::{AccessFlags, AxVCpuExitReason, AxVCpuHal, GuestPhysAddr, VCpuError, VCpuResult};
use axvcpu_npt::{Aarch64Stage2, MapFlags, NestedPageTable, NptView};

use super::Aarch64VCpu;
use crate::decode::{self, ec, AbortAction, DataAbort, Esr, SysRegAccess, Wfx};
use crate::psci::{self, PsciCall};
use crate::regs::{El1Regs, SPSR_EL1H_MASKED};
use crate::switch::kind;

use AxVCpuExitReason::Nothing;

/// A read exit waiting for `complete_read`.
#[derive(Debug, Clone, Copy)]
pub(super) enum PendingRead {
    /// A load the data-abort syndrome describes, and the length of its instruction.
    Mmio(DataAbort, u64),
    /// An `mrs` into this register.
    SysReg(usize),
}

impl<H: AxVCpuHal> Aarch64VCpu<H> {
    /// Decodes the exit the world switch saved.
    pub(super) fn decode_exit(&mut self) -> VCpuResult<AxVCpuExitReason> {
        let esr = Esr(self.regs.esr);
        match self.regs.exit_kind {
            kind::SYNC => self.sync_exit(esr),
            kind::IRQ | kind::FIQ => Ok(self.host_irq_exit()),
            kind::SERROR => Err(
                VCpuError::unsupported("SError taken from the guest (ESR_EL2)").with_value(esr.0),
            ),
            other => Err(VCpuError::unsupported("unknown exit vector").with_value(other)),
        }
    }

    /// Completes the pending read exit with `value` (`complete_read`).
    pub(super) fn finish_read(&mut self, value: u64) -> VCpuResult {
        let (reg, value, len) = match self.pending_read.take() {
            Some(PendingRead::Mmio(d, len)) => (d.reg, d.load_result(value), len),
            Some(PendingRead::SysReg(reg)) => (reg, value, 4),
            None => {
                return Err(VCpuError::bad_state(
                    "complete_read: no read exit is waiting",
                ))
            }
        };
        self.regs.set_result(reg, value);
        self.regs.advance(len);
        Ok(())
    }

    fn sync_exit(&mut self, esr: Esr) -> VCpuResult<AxVCpuExitReason> {
        let iss = esr.iss();
        if esr.ec() != ec::DABT_LOWER && esr.ec() != ec::IABT_LOWER {
            self.stale_retry = None;
        }
        match esr.ec() {
            ec::WFX => {
                self.regs.advance(esr.insn_len());
                Ok(match Wfx::decode(iss) {
                    Wfx::Wfi => AxVCpuExitReason::Halt,
                    Wfx::Wfe => AxVCpuExitReason::Idle,
                })
            }
            ec::HVC64 => Ok(self.hvc(decode::imm16(iss))),
            ec::SMC64 => {
                // A trapped SMC returns to the SMC itself.
                self.regs.advance(4);
                Ok(self.psci())
            }
            ec::SYSREG => Ok(self.sysreg(SysRegAccess::decode(iss))),
            // The guest's first FP/SIMD access (CPTR_EL2.TFP): switch its FP state from now
            // on and run the instruction again.
            ec::FP if self.regs.fp_eager == 0 => {
                self.regs.fp_eager = 1;
                Ok(Nothing)
            }
            ec::DABT_LOWER => self.data_abort(esr),
            ec::IABT_LOWER => self.insn_abort(esr),
            _ => Err(VCpuError::unsupported(
                "guest exception the backend does not handle (ESR_EL2)",
            )
            .with_value(esr.0)),
        }
    }

    fn hvc(&mut self, imm: u16) -> AxVCpuExitReason {
        match imm {
            0 if psci::is_firmware(self.regs.x[0]) => self.psci(),
            0 => {
                let x = &self.regs.x;
                AxVCpuExitReason::Hypercall {
                    nr: x[0],
                    args: [x[1], x[2], x[3], x[4], x[5], x[6]],
                }
            }
            super::HVC_IRQ_ACK => {
                self.regs.x[0] = self.acknowledge_irq();
                Nothing
            }
            _ => {
                self.regs.x[0] = psci::ret::NOT_SUPPORTED as u64;
                Nothing
            }
        }
    }

    fn psci(&mut self) -> AxVCpuExitReason {
        let x = &self.regs.x;
        match psci::classify([x[0], x[1], x[2], x[3]]) {
            PsciCall::CpuOn {
                target,
                entry,
                context_id,
            } => {
                self.regs.x[0] = psci::ret::SUCCESS as u64;
                AxVCpuExitReason::CpuUp {
                    target_cpu: target,
                    entry_point: GuestPhysAddr::from(entry as usize),
                    arg: context_id,
                }
            }
            PsciCall::CpuOff => {
                // PSCI: a CPU turned on again starts as from reset (EL1h, DAIF masked, MMU
                // and caches off, its timer off), not where it left off. The vCPU is bound
                // (exits only happen in `run`), so its EL1 registers are live in the CPU.
                self.el1 = El1Regs::reset();
                self.el1.load();
                self.regs.spsr = SPSR_EL1H_MASKED;
                AxVCpuExitReason::CpuDown { state: 0 }
            }
            PsciCall::AffinityInfo => AxVCpuExitReason::Hypercall {
                nr: x[0],
                args: [x[1], x[2], x[3], x[4], x[5], x[6]],
            },
            PsciCall::SystemDown => AxVCpuExitReason::SystemDown,
            PsciCall::Answer(v) => {
                self.regs.x[0] = v;
                Nothing
            }
        }
    }

    fn sysreg(&mut self, a: SysRegAccess) -> AxVCpuExitReason {
        if a.read {
            self.pending_read = Some(PendingRead::SysReg(a.reg));
            AxVCpuExitReason::SysRegRead {
                addr: a.addr,
                reg: a.reg,
            }
        } else {
            let value = self.regs.operand(a.reg);
            self.regs.advance(4);
            AxVCpuExitReason::SysRegWrite {
                addr: a.addr,
                value,
            }
        }
    }

    /// The permissions the stage-2 table gives `ipa`, walked from the root.
    fn table_flags(&self, ipa: u64) -> Option<MapFlags> {
        // SAFETY: the hypervisor keeps the table whose root it gave `set_ept_root` alive and
        // unchanged while the vCPU runs (`run` is not concurrent with its changes), built in
        // frames of `H`.
        let view = unsafe { NestedPageTable::<H, Aarch64Stage2>::from_root(self.ept_root) };
        let view: NptView<H, Aarch64Stage2> = view.ok()?;
        view.query(GuestPhysAddr::from(ipa as usize))
            .map(|(_, flags, _)| flags)
    }

    /// A fault the table says should not happen: flush the TLB and let the guest retry,
    /// once; the same fault again is reported as `fault`.
    fn stale_or(&mut self, ipa: u64, fault: AxVCpuExitReason) -> AxVCpuExitReason {
        if self.stale_retry == Some(ipa) {
            self.stale_retry = None;
            return fault;
        }
        self.stale_retry = Some(ipa);
        self.flush_tlb = true;
        Nothing
    }

    fn data_abort(&mut self, esr: Esr) -> VCpuResult<AxVCpuExitReason> {
        let d = DataAbort::decode(esr.iss());
        let ipa = decode::fault_ipa(self.regs.hpfar, self.regs.far);
        let addr = GuestPhysAddr::from(ipa as usize);
        let access_flags = if d.write {
            AccessFlags::WRITE
        } else {
            AccessFlags::READ
        };
        let npf = AxVCpuExitReason::NestedPageFault { addr, access_flags };
        let action = decode::classify_data_abort(&d, self.table_flags(ipa));
        if action != AbortAction::Retry {
            self.stale_retry = None;
        }
        match action {
            AbortAction::Retry => Ok(self.stale_or(ipa, npf)),
            AbortAction::NestedPageFault => Ok(npf),
            AbortAction::SkipCacheMaintenance => {
                self.regs.advance(esr.insn_len());
                Ok(Nothing)
            }
            AbortAction::Mmio => Ok(self.mmio(esr, d, addr)),
            AbortAction::NoSyndrome => Err(VCpuError::unsupported(
                "guest accessed unmapped memory with an instruction the syndrome does not \
                 describe (ISV = 0: load/store pair, writeback, SIMD, exclusive, ...; ESR_EL2)",
            )
            .with_value(esr.0)),
            AbortAction::Unhandled => Err(VCpuError::unsupported(
                "guest data abort the backend does not handle (ESR_EL2)",
            )
            .with_value(esr.0)),
        }
    }

    /// An access the syndrome describes to unmapped memory.
    fn mmio(&mut self, esr: Esr, d: DataAbort, addr: GuestPhysAddr) -> AxVCpuExitReason {
        if d.write {
            let data = self.regs.operand(d.reg) & d.width.mask();
            self.regs.advance(esr.insn_len());
            AxVCpuExitReason::MmioWrite {
                addr,
                width: d.width,
                data,
            }
        } else {
            self.pending_read = Some(PendingRead::Mmio(d, esr.insn_len()));
            AxVCpuExitReason::MmioRead {
                addr,
                width: d.width,
                reg: Some(d.reg),
                reg_width: d.reg_width(),
                signed_ext: d.sign_extend,
            }
        }
    }

    fn insn_abort(&mut self, esr: Esr) -> VCpuResult<AxVCpuExitReason> {
        let iss = esr.iss();
        let ipa = decode::fault_ipa(self.regs.hpfar, self.regs.far);
        let addr = GuestPhysAddr::from(ipa as usize);
        // S1PTW (bit 7): the guest's stage-1 walk for the fetch read unmapped memory.
        let s1ptw = iss & (1 << 7) != 0;
        let access_flags = if s1ptw {
            AccessFlags::READ
        } else {
            AccessFlags::EXECUTE
        };
        let npf = AxVCpuExitReason::NestedPageFault { addr, access_flags };
        let action = decode::classify_insn_abort(iss, s1ptw, self.table_flags(ipa));
        if action != AbortAction::Retry {
            self.stale_retry = None;
        }
        match action {
            AbortAction::Retry => Ok(self.stale_or(ipa, npf)),
            AbortAction::NestedPageFault => Ok(npf),
            _ => Err(VCpuError::unsupported(
                "guest instruction abort the backend does not handle (ESR_EL2)",
            )
            .with_value(esr.0)),
        }
    }
}
