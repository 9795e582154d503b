//! Exit decoding: the VMCB's `EXITCODE`/`EXITINFO` after `vmrun` → an
//! [`AxVCpuExitReason`] ([`Nothing`](AxVCpuExitReason::Nothing) when handled here) or an
//! `Err`, and completing the read exits. Without NRIPS or decode assists, instruction
//! lengths come from the exit (`in`/`out`), are fixed (`vmmcall`, `hlt`, `rdmsr`), or are
//! decoded from bytes fetched through the guest's page tables and the NPT.

use axvcpu::{
    AccessWidth, AxVCpuExitReason, AxVCpuHal, GuestPhysAddr, Port, VCpuError, VCpuResult,
};
use axvcpu_x86::decode::{self, MAX_INSN_LEN};
use axvcpu_x86::exit::{self as x86_exit};
use axvcpu_x86::paging::PagingRegs;
use axvcpu_x86::{cpuid, gpr, msr as x86_msr};

use super::SvmVCpu;
use crate::hw;
use crate::regs::GuestView;
use crate::vmcb::{ctrl, exit, save};

/// `rdmsr`/`wrmsr` are 2 bytes, `hlt` 1, `vmmcall` 3, `cpuid`, `invd` and `wbinvd` 2.
pub(super) const MSR_INSN_LEN: u64 = 2;
const CPUID_LEN: u64 = 2;
const CACHE_INSN_LEN: u64 = 2;

/// Exception vectors the backend injects.
pub(super) mod vector {
    /// Invalid opcode.
    pub const UD: u8 = 6;
    /// General protection.
    pub const GP: u8 = 13;
}
const HLT_LEN: u64 = 1;
const VMMCALL_LEN: u64 = 3;

impl<H: AxVCpuHal> SvmVCpu<H> {
    /// Fetches up to 15 instruction bytes at the guest's `rip`; returns how many it could.
    fn fetch(&self, buf: &mut [u8; MAX_INSN_LEN]) -> usize {
        let Some(npt) = self.npt() else { return 0 };
        let v = self.vmcb();
        let regs = PagingRegs {
            cr0: v.r64(save::CR0),
            cr3: v.r64(save::CR3),
            cr4: v.r64(save::CR4),
            efer: v.r64(save::EFER),
        };
        // SAFETY: the table maps guest RAM the hypervisor keeps allocated for the vCPU's
        // life (set_ept_root's contract).
        let memory = |gpa: u64, buf: &mut [u8]| unsafe {
            npt.read_guest(GuestPhysAddr::from(gpa as usize), buf)
        };
        regs.fetch_insn(&memory, v.rip_linear(), buf)
    }

    /// Decodes the exit `vmrun` just returned from.
    pub(super) fn decode_exit(&mut self) -> VCpuResult<AxVCpuExitReason> {
        let v = self.vmcb();
        let code = v.r64(ctrl::EXITCODE);
        // The hypercall first, on its own: the hot path stays short whatever else is
        // decoded below.
        if code == exit::VMMCALL {
            v.advance_rip(VMMCALL_LEN);
            return Ok(AxVCpuExitReason::Hypercall {
                nr: v.r64(save::RAX),
                args: self.gprs.hypercall_args(),
            });
        }
        self.decode_other(code)
    }

    /// Every exit but `vmmcall`.
    #[inline(never)]
    fn decode_other(&mut self, code: u64) -> VCpuResult<AxVCpuExitReason> {
        let v = self.vmcb();
        if code as u32 == exit::INVALID {
            return Ok(AxVCpuExitReason::FailEntry {
                hardware_entry_failure_reason: code,
            });
        }
        Ok(match code {
            exit::INTR | exit::NMI => self.host_interrupt_exit(code == exit::NMI),
            // The window opened: the next entry injects.
            exit::VINTR => AxVCpuExitReason::Nothing,
            exit::HLT => {
                v.advance_rip(HLT_LEN);
                AxVCpuExitReason::Halt
            }
            exit::SHUTDOWN => AxVCpuExitReason::SystemDown,
            exit::IOIO => return self.io_exit(),
            exit::MSR => return self.msr_exit(),
            exit::CPUID => {
                self.cpuid_exit();
                AxVCpuExitReason::Nothing
            }
            // Caches are coherent with the guest's memory here: nothing to write back.
            exit::INVD | exit::WBINVD => {
                v.advance_rip(CACHE_INSN_LEN);
                AxVCpuExitReason::Nothing
            }
            // CPUID hides MONITOR/MWAIT: the instruction is undefined for the guest.
            exit::MONITOR | exit::MWAIT | exit::MWAIT_COND => {
                self.irq.exception(vector::UD, None)?;
                AxVCpuExitReason::Nothing
            }
            // CPUID hides XSAVE and `XCR0` stays the host's: no value is accepted.
            exit::XSETBV => {
                self.irq.exception(vector::GP, Some(0))?;
                AxVCpuExitReason::Nothing
            }
            exit::NPF => return self.npf_exit(),
            _ => {
                return Err(
                    VCpuError::unsupported("SVM exit the backend does not handle").with_value(code),
                )
            }
        })
    }

    /// `rdmsr`/`wrmsr`: `EFER` and `PAT` are the VMCB's (answered here; a value the
    /// hardware would refuse gets #GP(0)); every other intercepted MSR goes to the
    /// hypervisor.
    fn msr_exit(&mut self) -> VCpuResult<AxVCpuExitReason> {
        let v = self.vmcb();
        let write = v.r64(ctrl::EXITINFO1) & 1 != 0;
        let msr = self.gprs.get(v, gpr::RCX) as u32;
        let field = match msr {
            x86_msr::EFER => save::EFER,
            x86_msr::PAT => save::G_PAT,
            _ => {
                let regs = &mut GuestView {
                    gprs: &mut self.gprs,
                    vmcb: v,
                };
                let exit = x86_exit::msr(regs, &mut self.pending_read, write, MSR_INSN_LEN);
                self.msr_write_rip = write.then(|| v.r64(save::RIP));
                return Ok(exit);
            }
        };
        let current = v.r64(field);
        if write {
            let value = (self.gprs.get(v, gpr::RDX) << 32) | (v.r64(save::RAX) & 0xffff_ffff);
            let new = match msr {
                x86_msr::EFER => x86_msr::efer_write(current, value),
                _ => x86_msr::pat_valid(value).then_some(value),
            };
            match new {
                Some(new) => {
                    v.w64(field, new);
                    v.advance_rip(MSR_INSN_LEN);
                }
                None => self.irq.exception(vector::GP, Some(0))?,
            }
        } else {
            let value = if msr == x86_msr::EFER {
                current & !hw::EFER_SVME
            } else {
                current
            };
            v.w64(save::RAX, value & 0xffff_ffff);
            self.gprs.set(v, gpr::RDX, value >> 32);
            v.advance_rip(MSR_INSN_LEN);
        }
        Ok(AxVCpuExitReason::Nothing)
    }

    /// `cpuid`: the host's answer as [`axvcpu_x86::cpuid::filter_for`] lets the guest see
    /// it, with the vCPU id as the initial APIC id.
    fn cpuid_exit(&mut self) {
        let v = self.vmcb();
        let leaf = v.r64(save::RAX) as u32;
        let sub = self.gprs.get(v, gpr::RCX) as u32;
        let (eax, ebx, ecx, edx) = hw::cpuid(leaf, sub);
        let host = cpuid::Regs { eax, ebx, ecx, edx };
        let r = cpuid::filter_for(leaf, sub, host, self.vcpu_id as u8);
        v.w64(save::RAX, u64::from(r.eax));
        self.gprs.set(v, gpr::RBX, u64::from(r.ebx));
        self.gprs.set(v, gpr::RCX, u64::from(r.ecx));
        self.gprs.set(v, gpr::RDX, u64::from(r.edx));
        v.advance_rip(CPUID_LEN);
    }

    fn io_exit(&mut self) -> VCpuResult<AxVCpuExitReason> {
        let v = self.vmcb();
        let info = v.r64(ctrl::EXITINFO1);
        if info & 0b1100 != 0 {
            return Err(
                VCpuError::unsupported("string or rep port I/O (ins/outs)").with_value(info)
            );
        }
        let width = match (info >> 4) & 7 {
            1 => AccessWidth::Byte,
            2 => AccessWidth::Word,
            4 => AccessWidth::Dword,
            _ => return Err(VCpuError::unsupported("bad IOIO size").with_value(info)),
        };
        let port = Port((info >> 16) as u16);
        let rip = v.r64(save::RIP);
        // EXITINFO2 is the next rip; the decoder is the fallback if it looks wrong.
        let len = match v.r64(ctrl::EXITINFO2).wrapping_sub(rip) {
            l @ 1..=15 => l,
            _ => {
                let mut buf = [0u8; MAX_INSN_LEN];
                let n = self.fetch(&mut buf);
                decode::io_insn_len(&buf[..n]).ok_or(
                    VCpuError::unsupported("cannot find the length of the in/out instruction")
                        .with_value(rip),
                )? as u64
            }
        };
        let is_in = info & 1 != 0;
        let regs = &mut GuestView {
            gprs: &mut self.gprs,
            vmcb: v,
        };
        Ok(x86_exit::port_io(
            regs,
            &mut self.pending_read,
            port,
            width,
            is_in,
            len,
        ))
    }

    fn npf_exit(&mut self) -> VCpuResult<AxVCpuExitReason> {
        let v = self.vmcb();
        let err = v.r64(ctrl::EXITINFO1);
        let gpa = v.r64(ctrl::EXITINFO2);
        let addr = GuestPhysAddr::from(gpa as usize);
        let present = err & 1 != 0;
        let write = err & 2 != 0;
        let fetch = err & 0x10 != 0;
        let walk = err & (1 << 33) != 0;
        if present || fetch || walk {
            // A mapped page without the permission, an instruction fetch from unmapped
            // memory, or the guest's own page walk reaching unmapped memory.
            let access_flags = x86_exit::fault_access(write, fetch);
            return Ok(AxVCpuExitReason::NestedPageFault { addr, access_flags });
        }
        if !v.in_64bit_code() {
            // The decoder reads 64-bit code: in 16- and 32-bit code the operand and address
            // sizes, `0x66`/`0x67` and the REX bytes (`inc`/`dec` there) mean other things,
            // so such an access is refused rather than misdecoded.
            return Err(VCpuError::unsupported(
                "MMIO from 16- or 32-bit code (the backend decodes 64-bit code only; value: the GPA)",
            )
            .with_value(gpa));
        }
        let mut buf = [0u8; MAX_INSN_LEN];
        let n = self.fetch(&mut buf);
        let regs = &mut GuestView {
            gprs: &mut self.gprs,
            vmcb: v,
        };
        x86_exit::mmio(regs, &mut self.pending_read, &mut self.icr, gpa, &buf[..n])
    }

    /// `complete_read`: the value into the pending read's destination, `rip` past it.
    pub(super) fn finish_read(&mut self, value: u64) -> VCpuResult {
        let vmcb = self.vmcb();
        let regs = &mut GuestView {
            gprs: &mut self.gprs,
            vmcb,
        };
        x86_exit::complete_read(regs, &mut self.pending_read, value)
    }
}
