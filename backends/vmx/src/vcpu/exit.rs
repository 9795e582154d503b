//! Exit decoding: the VMCS's exit reason, qualification and guest-physical address after a
//! VM exit → an [`AxVCpuExitReason`] ([`Nothing`](AxVCpuExitReason::Nothing) when handled
//! here) or an `Err`, and completing the read exits. Instruction lengths come from the
//! VM-exit instruction length (I/O, MSRs, VMCALL, HLT, CPUID); for MMIO (an EPT violation,
//! which has none) from decoding the bytes fetched through the guest's page tables and the
//! EPT.

use axvcpu::{
    AccessWidth, AxVCpuExitReason, AxVCpuHal, GuestPhysAddr, Port, VCpuError, VCpuResult,
};
use axvcpu_x86::decode::MAX_INSN_LEN;
use axvcpu_x86::exit::{self as x86_exit};
use axvcpu_x86::msr as x86_msr;
use axvcpu_x86::paging::PagingRegs;

use super::VmxVCpu;
use crate::controls::entry_ctl;
use crate::hw;
use crate::regs::gpr;
use crate::vmcs::{ctrl, exit, guest, info, EFER_LMA, EFER_LME};

/// EPT-violation qualification bits.
mod qual {
    pub const WRITE: u64 = 1 << 1;
    pub const FETCH: u64 = 1 << 2;
    /// The entry allowed read, write or execute: the page is mapped.
    pub const MAPPED: u64 = 0b111 << 3;
    pub const LINEAR_VALID: u64 = 1 << 7;
    /// With `LINEAR_VALID`: the access was to the translated address (clear: during the
    /// guest's own page walk).
    pub const TRANSLATED: u64 = 1 << 8;
}

impl<H: AxVCpuHal> VmxVCpu<H> {
    /// Fetches up to 15 instruction bytes at the guest's `rip`; returns how many it could.
    fn fetch(&self, buf: &mut [u8; MAX_INSN_LEN]) -> usize {
        let Some(npt) = self.npt() else { return 0 };
        let v = self.vmcs();
        let regs = PagingRegs {
            cr0: v.read(guest::CR0),
            cr3: v.read(guest::CR3),
            cr4: v.read(guest::CR4),
            efer: v.read(guest::EFER),
        };
        // SAFETY: the table maps guest RAM the hypervisor keeps allocated for the vCPU's
        // life (set_ept_root's contract).
        let memory = |gpa: u64, buf: &mut [u8]| unsafe {
            npt.read_guest(GuestPhysAddr::from(gpa as usize), buf)
        };
        regs.fetch_insn(&memory, self.regs.rip, buf)
    }

    /// Decodes the exit `enter` just returned from.
    pub(super) fn decode_exit(&mut self) -> VCpuResult<AxVCpuExitReason> {
        let v = self.vmcs();
        let reason = v.read(info::EXIT_REASON) as u32;
        // The hypercall first, on its own: the hot path stays short whatever else is
        // decoded below.
        if reason == exit::VMCALL {
            self.regs.advance_rip(v.read(info::EXIT_INSN_LEN));
            return Ok(AxVCpuExitReason::Hypercall {
                nr: self.regs.get(gpr::RAX),
                args: self.regs.gprs.hypercall_args(),
            });
        }
        self.decode_other(reason)
    }

    /// Every exit but `vmcall`.
    #[inline(never)]
    fn decode_other(&mut self, reason: u32) -> VCpuResult<AxVCpuExitReason> {
        let v = self.vmcs();
        if reason & exit::FAILED_ENTRY != 0 {
            let q = v.read(info::EXIT_QUALIFICATION);
            return Ok(AxVCpuExitReason::FailEntry {
                hardware_entry_failure_reason: (q << 32) | u64::from(reason),
            });
        }
        let len = || v.read(info::EXIT_INSN_LEN);
        Ok(match reason {
            exit::EXTERNAL_INTERRUPT | exit::EXCEPTION_NMI => {
                let i = v.read(info::EXIT_INTR_INFO) as u32;
                return self.host_interrupt_exit(reason, i);
            }
            // The window opened: the next entry injects.
            // Nothing to do: the next entry takes kick requests first.
            exit::INTERRUPT_WINDOW | exit::PREEMPTION_TIMER => AxVCpuExitReason::Nothing,
            exit::HLT => {
                self.regs.advance_rip(len());
                AxVCpuExitReason::Halt
            }
            exit::TRIPLE_FAULT => AxVCpuExitReason::SystemDown,
            exit::CPUID => {
                self.cpuid_exit(len());
                AxVCpuExitReason::Nothing
            }
            exit::IO => return self.io_exit(v.read(info::EXIT_QUALIFICATION), len()),
            exit::RDMSR | exit::WRMSR => {
                let write = reason == exit::WRMSR;
                let len = len();
                if let Some(handled) = self.msr_inside(write, len) {
                    return handled.map(|()| AxVCpuExitReason::Nothing);
                }
                let exit = x86_exit::msr(&mut self.regs, &mut self.pending_read, write, len);
                self.msr_write_rip = write.then_some((self.regs.rip, len));
                exit
            }
            // Caches are coherent with the guest's memory here: nothing to write back.
            exit::INVD | exit::WBINVD => {
                self.regs.advance_rip(len());
                AxVCpuExitReason::Nothing
            }
            // CPUID hides MONITOR/MWAIT and XSAVE (`XCR0` stays the host's).
            exit::MONITOR | exit::MWAIT => {
                self.irq.exception(6, None)?;
                AxVCpuExitReason::Nothing
            }
            exit::XSETBV => {
                self.irq.exception(13, Some(0))?;
                AxVCpuExitReason::Nothing
            }
            // CPUID hides VMX and SMX: their instructions are the #UD of a processor
            // without them.
            exit::GETSEC
            | exit::VMCLEAR..=exit::VMXON
            | exit::INVEPT
            | exit::INVVPID
            | exit::VMFUNC => {
                self.irq.exception(6, None)?;
                AxVCpuExitReason::Nothing
            }
            exit::CR_ACCESS => return self.cr_access(v.read(info::EXIT_QUALIFICATION), len()),
            exit::EPT_VIOLATION => {
                let q = v.read(info::EXIT_QUALIFICATION);
                return self.ept_violation(q, v.read(info::GUEST_PHYSICAL_ADDR));
            }
            exit::EPT_MISCONFIG => {
                return Err(VCpuError::bad_state(
                    "EPT misconfiguration (value: the guest-physical address)",
                )
                .with_value(v.read(info::GUEST_PHYSICAL_ADDR)))
            }
            _ => {
                return Err(VCpuError::unsupported(
                    "VMX exit the backend does not handle (value: the exit reason)",
                )
                .with_value(u64::from(reason)))
            }
        })
    }

    /// CPUID: the host's answer as [`axvcpu_x86::cpuid::filter_for`] lets the guest see
    /// it (no VMX, no features the backend does not virtualise, a hypervisor leaf), with the
    /// vCPU id as the initial APIC id; INVPCID only when the VMX control lets the guest
    /// execute it (it is #UD otherwise).
    fn cpuid_exit(&mut self, len: u64) {
        let vcpu_id = self.vcpu_id as u8;
        let invpcid = self
            .controls
            .is_some_and(|c| c.proc2 & crate::controls::proc2::INVPCID != 0);
        let r = &mut self.regs;
        let (leaf, sub) = (r.get(gpr::RAX) as u32, r.get(gpr::RCX) as u32);
        let (eax, ebx, ecx, edx) = hw::cpuid(leaf, sub);
        let host = axvcpu_x86::cpuid::Regs { eax, ebx, ecx, edx };
        let mut g = axvcpu_x86::cpuid::filter_for(leaf, sub, host, vcpu_id);
        if leaf == 7 && !invpcid {
            g.ebx &= !axvcpu_x86::cpuid::L7_EBX_INVPCID;
        }
        for (reg, val) in [
            (gpr::RAX, g.eax),
            (gpr::RBX, g.ebx),
            (gpr::RCX, g.ecx),
            (gpr::RDX, g.edx),
        ] {
            r.set(reg, u64::from(val));
        }
        r.advance_rip(len);
    }

    /// `rdmsr`/`wrmsr` of `EFER` (the VMCS's guest `EFER`), `PAT` (kept in the vCPU),
    /// `IA32_MISC_ENABLE` (fixed, [`x86_msr::GUEST_MISC_ENABLE`]) or `IA32_BIOS_SIGN_ID`
    /// (no microcode revision; writes taken), answered here (#GP(0) for a value the
    /// hardware, or the fixed MSR, refuses); `None` for every other MSR.
    fn msr_inside(&mut self, write: bool, len: u64) -> Option<VCpuResult> {
        let msr = self.regs.get(gpr::RCX) as u32;
        let v = self.vmcs();
        let current = match msr {
            x86_msr::EFER => v.read(guest::EFER),
            x86_msr::PAT => self.pat,
            x86_msr::MISC_ENABLE => x86_msr::GUEST_MISC_ENABLE,
            x86_msr::BIOS_SIGN_ID => x86_msr::GUEST_BIOS_SIGN_ID,
            _ => return None,
        };
        if !write {
            self.regs.set(gpr::RAX, current & 0xffff_ffff);
            self.regs.set(gpr::RDX, current >> 32);
            self.regs.advance_rip(len);
            return Some(Ok(()));
        }
        let value = (self.regs.get(gpr::RDX) << 32) | (self.regs.get(gpr::RAX) & 0xffff_ffff);
        let new = match msr {
            // LME may not change while paging is on (LMA follows CR0.PG, in `cr_access`).
            x86_msr::EFER
                if v.read(guest::CR0) & crate::controls::CR0_PG != 0
                    && (current ^ value) & EFER_LME != 0 =>
            {
                None
            }
            x86_msr::EFER => x86_msr::efer_write(current, value),
            x86_msr::PAT => x86_msr::pat_valid(value).then_some(value),
            // Writing it asks the next CPUID to load the revision: nothing to keep.
            x86_msr::BIOS_SIGN_ID => Some(value),
            _ => x86_msr::misc_enable_write(value).then_some(value),
        };
        Some(match new {
            Some(new) => {
                match msr {
                    x86_msr::EFER => v.write(guest::EFER, new),
                    x86_msr::PAT => self.pat = new,
                    _ => {}
                }
                self.regs.advance_rip(len);
                Ok(())
            }
            None => self.irq.exception(13, Some(0)),
        })
    }

    /// A control-register access that exits: a `mov` to CR0 or CR4 that changes a bit the
    /// guest/host mask keeps (CR4's are VMXE — CPUID hides VMX — and features this CPU
    /// lacks, so setting one is the #GP(0) the hardware gives; CR0's are NE, which the guest
    /// may clear: the guest reads its value, the read shadow, while the CPU keeps the fixed
    /// bits set; and PG, whose change [`paging_switch`](Self::paging_switch) checks and
    /// follows); `clts` and `lmsw` of a kept bit, as the CR0 write they make; and every
    /// `mov` to or from CR8, which reads back what was written (no TPR shadow).
    fn cr_access(&mut self, q: u64, len: u64) -> VCpuResult<AxVCpuExitReason> {
        const TS: u64 = 1 << 3;
        let (cr, access, reg) = (q & 0xf, (q >> 4) & 3, ((q >> 8) & 0xf) as usize);
        match (access, cr) {
            (0, 0 | 4) => self.cr_write(cr, self.regs.get(reg), len),
            // clts
            (2, 0) => self.cr_write(0, self.guest_cr0() & !TS, len),
            // lmsw: PE, MP, EM, TS from its operand (bits 31:16), PE never cleared.
            (3, 0) => {
                let cr0 = self.guest_cr0();
                let src = (q >> 16) & 0xf;
                self.cr_write(0, (cr0 & !0xe) | src | (cr0 & 1), len)
            }
            (0, 8) => {
                let value = self.regs.get(reg);
                if value > 15 {
                    self.irq.exception(13, Some(0))?;
                    return Ok(AxVCpuExitReason::Nothing);
                }
                self.irq.cr8 = value as u8;
                self.regs.advance_rip(len);
                Ok(AxVCpuExitReason::Nothing)
            }
            (1, 8) => {
                self.regs.set(reg, u64::from(self.irq.cr8));
                self.regs.advance_rip(len);
                Ok(AxVCpuExitReason::Nothing)
            }
            _ => Err(VCpuError::unsupported(
                "control-register access the backend does not handle (value: the exit \
                 qualification)",
            )
            .with_value(q)),
        }
    }

    /// CR0 as the guest sees it: its own bits, and the read shadow's for those the mask
    /// keeps.
    fn guest_cr0(&self) -> u64 {
        let v = self.vmcs();
        let mask = self.controls.map_or(0, |c| c.cr0_mask);
        (v.read(guest::CR0) & !mask) | (v.read(ctrl::CR0_SHADOW) & mask)
    }

    /// The guest writes `value` to CR0 or CR4 (`cr`).
    fn cr_write(&mut self, cr: u64, value: u64, len: u64) -> VCpuResult<AxVCpuExitReason> {
        const PE: u64 = 1;
        const NW: u64 = 1 << 29;
        const CD: u64 = 1 << 30;
        const PG: u64 = 1 << 31;
        let Some(c) = self.controls else {
            return Err(VCpuError::bad_state(
                "CR access exit before the VMCS was filled",
            ));
        };
        let v = self.vmcs();
        let refused = if cr == 4 {
            value & c.cr4_mask != 0
        } else {
            value >> 32 != 0
                || (value & PG != 0 && value & PE == 0)
                || (value & NW != 0 && value & CD == 0)
        };
        if refused {
            self.irq.exception(13, Some(0))?;
            return Ok(AxVCpuExitReason::Nothing);
        }
        if cr == 0 {
            if !c.unrestricted_guest && value & (PE | PG) != PE | PG {
                return Err(VCpuError::unsupported(
                    "a CR0 write turning protection or paging off, without unrestricted guest \
                     (value: the new CR0)",
                )
                .with_value(value));
            }
            if (v.read(guest::CR0) ^ value) & PG != 0 && !self.paging_switch(value & PG != 0) {
                self.irq.exception(13, Some(0))?;
                return Ok(AxVCpuExitReason::Nothing);
            }
            v.write(guest::CR0, value | c.cr0_set);
            v.write(ctrl::CR0_SHADOW, value);
        } else {
            v.write(guest::CR4, value | c.cr4_set);
            v.write(ctrl::CR4_SHADOW, value);
        }
        self.regs.advance_rip(len);
        Ok(AxVCpuExitReason::Nothing)
    }

    /// A CR0 write turning paging on (`on`) or off, as the CPU does it (Intel SDM vol. 3A
    /// 10.8.5, "Initializing IA-32e Mode"): with `EFER.LME` set, on enters IA-32e mode
    /// (needs `CR4.PAE`) and off leaves it (not from 64-bit code, nor
    /// with `CR4.PCIDE`). Under VMX, `EFER.LMA` and the IA-32e-mode-guest entry control must
    /// agree, so both follow here, on the exit, rather than at every entry. `false`: the
    /// write is a #GP(0).
    fn paging_switch(&mut self, on: bool) -> bool {
        const CR4_PAE: u64 = 1 << 5;
        const CR4_PCIDE: u64 = 1 << 17;
        let v = self.vmcs();
        let efer = v.read(guest::EFER);
        let cr4 = v.read(guest::CR4);
        let long = if on {
            if efer & EFER_LME == 0 {
                return true;
            }
            if cr4 & CR4_PAE == 0 {
                return false;
            }
            true
        } else {
            if efer & EFER_LMA == 0 {
                return true;
            }
            if v.in_64bit_code() || cr4 & CR4_PCIDE != 0 {
                return false;
            }
            false
        };
        let entry = v.read(ctrl::ENTRY_CONTROLS) as u32 & !entry_ctl::IA32E_GUEST;
        let (efer, entry) = if long {
            (efer | EFER_LMA, entry | entry_ctl::IA32E_GUEST)
        } else {
            (efer & !EFER_LMA, entry)
        };
        v.write(guest::EFER, efer);
        v.write(ctrl::ENTRY_CONTROLS, u64::from(entry));
        true
    }

    fn io_exit(&mut self, q: u64, len: u64) -> VCpuResult<AxVCpuExitReason> {
        if q & 0x10 != 0 {
            return Err(VCpuError::unsupported(
                "string or rep port I/O (ins/outs; value: the exit qualification)",
            )
            .with_value(q));
        }
        let width = match q & 7 {
            0 => AccessWidth::Byte,
            1 => AccessWidth::Word,
            3 => AccessWidth::Dword,
            _ => return Err(VCpuError::unsupported("bad I/O size").with_value(q)),
        };
        let port = Port((q >> 16) as u16);
        let is_in = q & 8 != 0;
        let (regs, pending) = (&mut self.regs, &mut self.pending_read);
        Ok(x86_exit::port_io(regs, pending, port, width, is_in, len))
    }

    fn ept_violation(&mut self, q: u64, gpa: u64) -> VCpuResult<AxVCpuExitReason> {
        let addr = GuestPhysAddr::from(gpa as usize);
        let walk = q & qual::LINEAR_VALID != 0 && q & qual::TRANSLATED == 0;
        if q & (qual::MAPPED | qual::FETCH) != 0 || walk {
            // A mapped page without the permission, an instruction fetch from unmapped
            // memory, or the guest's own page walk reaching unmapped memory.
            let write = q & qual::WRITE != 0;
            let access_flags = x86_exit::fault_access(write, q & qual::FETCH != 0);
            return Ok(AxVCpuExitReason::NestedPageFault { addr, access_flags });
        }
        if !self.vmcs().in_64bit_code() {
            // The decoder reads 64-bit code: in 16- and 32-bit code the operand and address
            // sizes, `0x66`/`0x67` and the REX bytes (`inc`/`dec` there) mean other things,
            // and `rip` is an offset into CS; such an access is refused, not misdecoded.
            return Err(VCpuError::unsupported(
                "MMIO from 16- or 32-bit code (the backend decodes 64-bit code only; value: the GPA)",
            )
            .with_value(gpa));
        }
        let mut buf = [0u8; MAX_INSN_LEN];
        let n = self.fetch(&mut buf);
        let (regs, pending) = (&mut self.regs, &mut self.pending_read);
        x86_exit::mmio(regs, pending, &mut self.icr, gpa, &buf[..n])
    }

    /// `complete_read`: the value into the pending read's destination, `rip` past it.
    pub(super) fn finish_read(&mut self, value: u64) -> VCpuResult {
        x86_exit::complete_read(&mut self.regs, &mut self.pending_read, value)
    }
}
