//! Exit decoding: the VMCS's exit reason, qualification and guest-physical address after a
//! VM exit → an [`AxVCpuExitReason`] ([`Nothing`](AxVCpuExitReason::Nothing) when handled
//! here) or an `Err`, and completing the read exits. Instruction lengths come from the
//! VM-exit instruction length (I/O, MSRs, VMCALL, HLT, CPUID); for MMIO (an EPT violation,
//! which has none) from decoding the bytes fetched through the guest's page tables and the
//! EPT.

use axvcpu::{
    AccessFlags, AccessWidth, AxVCpuExitReason, AxVCpuHal, GuestPhysAddr, Port, SysRegAddr,
    VCpuError, VCpuResult, X86_SHUTDOWN_PORT,
};
use axvcpu_npt::{Ept, NptView};
use axvcpu_x86::decode::{self, MmioInsn, RegOperand, MAX_INSN_LEN};
use axvcpu_x86::paging::{GuestMemory, PagingRegs};

use super::VmxVCpu;
use crate::hw;
use crate::regs::gpr;
use crate::vmcs::{exit, guest, info};

/// A read exit waiting for `complete_read`.
#[derive(Debug, Clone, Copy)]
pub(super) enum PendingRead {
    Mmio {
        dst: RegOperand,
        dst_width: AccessWidth,
        width: AccessWidth,
        signed: bool,
        len: u64,
    },
    Io {
        width: AccessWidth,
        len: u64,
    },
    Msr {
        len: u64,
    },
}

/// Guest RAM as the EPT maps it.
struct EptMemory<'a, H: AxVCpuHal>(&'a NptView<H, Ept>);

impl<H: AxVCpuHal> GuestMemory for EptMemory<'_, H> {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> bool {
        let Some((hpa, _, _)) = self.0.query(GuestPhysAddr::from(gpa as usize)) else {
            return false;
        };
        let va = H::phys_to_virt(hpa).as_usize() as *const u8;
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: the table maps `gpa`'s page to this host frame, which stays allocated
            // for the vCPU's life (set_ept_root's contract); the read stays in that page
            // (`GuestMemory`'s contract). Volatile: other vCPUs may write guest RAM.
            *b = unsafe { va.add(i).read_volatile() };
        }
        true
    }
}

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
        regs.fetch_insn(&EptMemory(&npt), self.regs.rip, buf)
    }

    /// Decodes the exit `enter` just returned from.
    pub(super) fn decode_exit(&mut self) -> VCpuResult<AxVCpuExitReason> {
        let v = self.vmcs();
        let reason = v.read(info::EXIT_REASON) as u32;
        if reason & exit::FAILED_ENTRY != 0 {
            let q = v.read(info::EXIT_QUALIFICATION);
            return Ok(AxVCpuExitReason::FailEntry {
                hardware_entry_failure_reason: (q << 32) | u64::from(reason),
            });
        }
        let len = || v.read(info::EXIT_INSN_LEN);
        Ok(match reason {
            exit::VMCALL => {
                self.regs.advance_rip(len());
                AxVCpuExitReason::Hypercall {
                    nr: self.regs.get(gpr::RAX),
                    args: self.regs.gprs.hypercall_args(),
                }
            }
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
            exit::RDMSR | exit::WRMSR => self.msr_exit(reason == exit::WRMSR, len()),
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

    /// CPUID: the host's answer, without VMX (the guest cannot use it).
    fn cpuid_exit(&mut self, len: u64) {
        let r = &mut self.regs;
        let (leaf, sub) = (r.get(gpr::RAX) as u32, r.get(gpr::RCX) as u32);
        let (a, b, mut c, d) = hw::cpuid(leaf, sub);
        if leaf == 1 {
            c &= !(1 << 5);
        }
        for (reg, val) in [(gpr::RAX, a), (gpr::RBX, b), (gpr::RCX, c), (gpr::RDX, d)] {
            r.set(reg, u64::from(val));
        }
        r.advance_rip(len);
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
        if q & 8 != 0 {
            self.pending_read = Some(PendingRead::Io { width, len });
            return Ok(AxVCpuExitReason::IoRead { port, width });
        }
        let data = self.regs.get(gpr::RAX) & width.mask();
        self.regs.advance_rip(len);
        if port.0 == X86_SHUTDOWN_PORT {
            return Ok(AxVCpuExitReason::SystemDown);
        }
        Ok(AxVCpuExitReason::IoWrite { port, width, data })
    }

    fn msr_exit(&mut self, write: bool, len: u64) -> AxVCpuExitReason {
        let r = &mut self.regs;
        let addr = SysRegAddr(r.get(gpr::RCX) as u32 as usize);
        if !write {
            self.pending_read = Some(PendingRead::Msr { len });
            return AxVCpuExitReason::SysRegRead {
                addr,
                reg: gpr::RAX,
            };
        }
        let value = (r.get(gpr::RDX) << 32) | (r.get(gpr::RAX) & 0xffff_ffff);
        r.advance_rip(len);
        AxVCpuExitReason::SysRegWrite { addr, value }
    }

    fn ept_violation(&mut self, q: u64, gpa: u64) -> VCpuResult<AxVCpuExitReason> {
        let addr = GuestPhysAddr::from(gpa as usize);
        let walk = q & qual::LINEAR_VALID != 0 && q & qual::TRANSLATED == 0;
        if q & (qual::MAPPED | qual::FETCH) != 0 || walk {
            // A mapped page without the permission, an instruction fetch from unmapped
            // memory, or the guest's own page walk reaching unmapped memory.
            let access_flags = if q & qual::WRITE != 0 {
                AccessFlags::WRITE
            } else if q & qual::FETCH != 0 {
                AccessFlags::EXECUTE
            } else {
                AccessFlags::READ
            };
            return Ok(AxVCpuExitReason::NestedPageFault { addr, access_flags });
        }
        let mut buf = [0u8; MAX_INSN_LEN];
        let n = self.fetch(&mut buf);
        let d = decode::decode(&buf[..n]).map_err(|_| {
            let mut first = [0u8; 8];
            first.copy_from_slice(&buf[..8]);
            VCpuError::unsupported(
                "MMIO by an instruction the backend does not decode (value: its first bytes)",
            )
            .with_value(u64::from_le_bytes(first))
        })?;
        let len = d.len as u64;
        let (width, data) = match d.insn {
            MmioInsn::Load {
                width,
                dst,
                dst_width,
                signed,
            } => {
                self.pending_read = Some(PendingRead::Mmio {
                    dst,
                    dst_width,
                    width,
                    signed,
                    len,
                });
                return Ok(AxVCpuExitReason::MmioRead {
                    addr,
                    width,
                    reg: Some(dst.reg),
                    reg_width: dst_width,
                    signed_ext: signed,
                });
            }
            MmioInsn::StoreReg { width, src } => {
                (width, decode::reg_value(self.regs.get(src.reg), src, width))
            }
            MmioInsn::StoreImm { width, imm } => (width, imm & width.mask()),
        };
        self.regs.advance_rip(len);
        // The xAPIC page is left unmapped: ICR writes are the guest's IPIs.
        if let Some(ipi) = self.icr.mmio_write(gpa, width, data) {
            return Ok(ipi);
        }
        Ok(AxVCpuExitReason::MmioWrite { addr, width, data })
    }

    /// `complete_read`: puts `value` where the pending read's instruction puts it, with
    /// x86's register-write rules, and moves `rip` past it.
    pub(super) fn finish_read(&mut self, value: u64) -> VCpuResult {
        let Some(read) = self.pending_read.take() else {
            return Err(VCpuError::bad_state("complete_read: no read exit pending"));
        };
        let r = &mut self.regs;
        let len = match read {
            PendingRead::Mmio {
                dst,
                dst_width,
                width,
                signed,
                len,
            } => {
                let loaded = decode::load_value(value, width, signed);
                let new = decode::merge_reg(r.get(dst.reg), loaded, dst_width, dst.high_byte);
                r.set(dst.reg, new);
                len
            }
            PendingRead::Io { width, len } => {
                let new = decode::merge_reg(r.get(gpr::RAX), value & width.mask(), width, false);
                r.set(gpr::RAX, new);
                len
            }
            PendingRead::Msr { len } => {
                r.set(gpr::RAX, value & 0xffff_ffff);
                r.set(gpr::RDX, value >> 32);
                len
            }
        };
        r.advance_rip(len);
        Ok(())
    }
}
