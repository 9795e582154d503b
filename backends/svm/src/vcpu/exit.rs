//! Exit decoding: the VMCB's `EXITCODE`/`EXITINFO` after `vmrun` → an
//! [`AxVCpuExitReason`] ([`Nothing`](AxVCpuExitReason::Nothing) when handled here) or an
//! `Err`, and completing the read exits. Without NRIPS or decode assists, instruction
//! lengths come from the exit (`in`/`out`), are fixed (`vmmcall`, `hlt`, `rdmsr`), or are
//! decoded from bytes fetched through the guest's page tables and the NPT.

use axvcpu::{
    AccessFlags, AccessWidth, AxVCpuExitReason, AxVCpuHal, GuestPhysAddr, Port, SysRegAddr,
    VCpuError, VCpuResult, X86_SHUTDOWN_PORT,
};
use axvcpu_npt::{NptView, X86Npt};
use axvcpu_x86::decode::{self, MmioInsn, RegOperand, MAX_INSN_LEN};
use axvcpu_x86::paging::{GuestMemory, PagingRegs};

use super::SvmVCpu;
use crate::regs::gpr;
use crate::vmcb::{ctrl, exit, save};

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
    Msr,
}

/// `rdmsr`/`wrmsr` are 2 bytes, `hlt` 1, `vmmcall` 3.
const MSR_INSN_LEN: u64 = 2;
const HLT_LEN: u64 = 1;
const VMMCALL_LEN: u64 = 3;

/// Guest RAM as the nested page table maps it.
struct NptMemory<'a, H: AxVCpuHal>(&'a NptView<H, X86Npt>);

impl<H: AxVCpuHal> GuestMemory for NptMemory<'_, H> {
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
        regs.fetch_insn(&NptMemory(&npt), v.r64(save::RIP), buf)
    }

    /// Decodes the exit `vmrun` just returned from.
    pub(super) fn decode_exit(&mut self) -> VCpuResult<AxVCpuExitReason> {
        let v = self.vmcb();
        let code = v.r64(ctrl::EXITCODE);
        if code as u32 == exit::INVALID {
            return Ok(AxVCpuExitReason::FailEntry {
                hardware_entry_failure_reason: code,
            });
        }
        Ok(match code {
            exit::VMMCALL => {
                v.advance_rip(VMMCALL_LEN);
                AxVCpuExitReason::Hypercall {
                    nr: v.r64(save::RAX),
                    args: self.gprs.hypercall_args(),
                }
            }
            exit::INTR | exit::NMI => self.host_interrupt_exit(code == exit::NMI),
            // The window opened: the next entry injects.
            exit::VINTR => AxVCpuExitReason::Nothing,
            exit::HLT => {
                v.advance_rip(HLT_LEN);
                AxVCpuExitReason::Halt
            }
            exit::SHUTDOWN => AxVCpuExitReason::SystemDown,
            exit::IOIO => return self.io_exit(),
            exit::MSR => self.msr_exit(),
            exit::NPF => return self.npf_exit(),
            _ => {
                return Err(
                    VCpuError::unsupported("SVM exit the backend does not handle").with_value(code),
                )
            }
        })
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
        if info & 1 != 0 {
            self.pending_read = Some(PendingRead::Io { width, len });
            return Ok(AxVCpuExitReason::IoRead { port, width });
        }
        let data = v.r64(save::RAX) & width.mask();
        v.advance_rip(len);
        if port.0 == X86_SHUTDOWN_PORT {
            return Ok(AxVCpuExitReason::SystemDown);
        }
        Ok(AxVCpuExitReason::IoWrite { port, width, data })
    }

    fn msr_exit(&mut self) -> AxVCpuExitReason {
        let v = self.vmcb();
        let addr = SysRegAddr(self.gprs.0[gpr::RCX] as u32 as usize);
        if v.r64(ctrl::EXITINFO1) & 1 == 0 {
            self.pending_read = Some(PendingRead::Msr);
            return AxVCpuExitReason::SysRegRead {
                addr,
                reg: gpr::RAX,
            };
        }
        let value = (self.gprs.0[gpr::RDX] << 32) | (v.r64(save::RAX) & 0xffff_ffff);
        v.advance_rip(MSR_INSN_LEN);
        AxVCpuExitReason::SysRegWrite { addr, value }
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
            let access_flags = if write {
                AccessFlags::WRITE
            } else if fetch {
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
                (width, decode::reg_value(self.reg(src.reg), src, width))
            }
            MmioInsn::StoreImm { width, imm } => (width, imm & width.mask()),
        };
        v.advance_rip(len);
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
        let len = match read {
            PendingRead::Mmio {
                dst,
                dst_width,
                width,
                signed,
                len,
            } => {
                let loaded = decode::load_value(value, width, signed);
                let new = decode::merge_reg(self.reg(dst.reg), loaded, dst_width, dst.high_byte);
                self.set_reg(dst.reg, new);
                len
            }
            PendingRead::Io { width, len } => {
                let old = self.reg(gpr::RAX);
                let new = decode::merge_reg(old, value & width.mask(), width, false);
                self.set_reg(gpr::RAX, new);
                len
            }
            PendingRead::Msr => {
                self.set_reg(gpr::RAX, value & 0xffff_ffff);
                self.set_reg(gpr::RDX, value >> 32);
                MSR_INSN_LEN
            }
        };
        self.vmcb().advance_rip(len);
        Ok(())
    }
}
