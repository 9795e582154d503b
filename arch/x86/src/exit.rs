//! The exits every bare-metal x86 backend turns into the same [`AxVCpuExitReason`] once it
//! has read its hardware's exit information: port I/O, `rdmsr`/`wrmsr`, and MMIO by a
//! decoded instruction (the xAPIC's ICR included), with the completion of their reads.
//!
//! SVM and VMX differ in where the facts come from (VMCB `EXITINFO` fields, VMCS exit
//! qualifications) and where the guest's registers live (SVM keeps `rax` and `rsp` in the
//! VMCB, VMX keeps `rsp` in the VMCS and the rest in software); the backend hands over the
//! facts and a [`GuestRegs`] view, and what the exit means is decided here, once.
//!
//! ```
//! use axvcpu::{AccessWidth, AxVCpuExitReason, GuestPhysAddr};
//! use axvcpu_x86::apic::IcrDecoder;
//! use axvcpu_x86::exit::{self, GuestRegs, PendingRead};
//! use axvcpu_x86::gpr;
//!
//! #[derive(Default)]
//! struct Regs { gprs: [u64; 16], rip: u64 }
//! impl GuestRegs for Regs {
//!     fn gpr(&self, r: usize) -> u64 { self.gprs[r] }
//!     fn set_gpr(&mut self, r: usize, v: u64) { self.gprs[r] = v }
//!     fn advance_rip(&mut self, len: u64) { self.rip += len }
//! }
//!
//! // `mov ecx, [rbx]` (3 bytes: 8b 0b) touched unmapped guest-physical 0xd000_0000.
//! let (mut regs, mut pending) = (Regs::default(), None::<PendingRead>);
//! let got = exit::mmio(&mut regs, &mut pending, &mut IcrDecoder::new(), 0xd000_0000, &[0x8b, 0x0b])
//!     .unwrap();
//! assert_eq!(
//!     got,
//!     AxVCpuExitReason::MmioRead {
//!         addr: GuestPhysAddr::from(0xd000_0000),
//!         width: AccessWidth::Dword,
//!         reg: Some(gpr::RCX),
//!         reg_width: AccessWidth::Dword,
//!         signed_ext: false,
//!     }
//! );
//! // The hypervisor's answer lands in ecx (upper half cleared, as x86 does) and rip moves on.
//! regs.gprs[gpr::RCX] = u64::MAX;
//! exit::complete_read(&mut regs, &mut pending, 0x1234).unwrap();
//! assert_eq!((regs.gprs[gpr::RCX], regs.rip), (0x1234, 2));
//! ```

use axvcpu::{
    AccessFlags, AccessWidth, AxVCpuExitReason, GuestPhysAddr, Port, SysRegAddr, VCpuError,
    VCpuResult, X86_SHUTDOWN_PORT,
};

use crate::apic::IcrDecoder;
use crate::decode::{self, MmioInsn, RegOperand};
use crate::gpr;

/// The guest's general-purpose registers and `rip`, wherever the backend keeps them.
pub trait GuestRegs {
    /// Register `r` (a [`gpr`] number).
    fn gpr(&self, r: usize) -> u64;
    /// Sets register `r` (a [`gpr`] number).
    fn set_gpr(&mut self, r: usize, value: u64);
    /// Moves `rip` past an instruction of `len` bytes.
    fn advance_rip(&mut self, len: u64);
}

/// A read exit waiting for `complete_read`: where the value goes and how long the
/// instruction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingRead {
    /// An MMIO load into `dst`.
    Mmio {
        /// The destination register.
        dst: RegOperand,
        /// How much of it the instruction writes.
        dst_width: AccessWidth,
        /// The access's width.
        width: AccessWidth,
        /// Sign-extended (`movsx`, `movsxd`), else zero-extended.
        signed: bool,
        /// The instruction's length.
        len: u64,
    },
    /// `in` into `al`/`ax`/`eax`.
    Io {
        /// The access's width.
        width: AccessWidth,
        /// The instruction's length.
        len: u64,
    },
    /// `rdmsr` into `edx:eax`.
    Msr {
        /// The instruction's length.
        len: u64,
    },
}

/// A non-string `in`/`out` of `width` at `port` by an instruction of `len` bytes: `IoRead`
/// (completed by [`complete_read`]), or `IoWrite` of `al`/`ax`/`eax`, `rip` moved past it —
/// `SystemDown` for a write to [`X86_SHUTDOWN_PORT`].
pub fn port_io(
    regs: &mut impl GuestRegs,
    pending: &mut Option<PendingRead>,
    port: Port,
    width: AccessWidth,
    is_in: bool,
    len: u64,
) -> AxVCpuExitReason {
    if is_in {
        *pending = Some(PendingRead::Io { width, len });
        return AxVCpuExitReason::IoRead { port, width };
    }
    let data = regs.gpr(gpr::RAX) & width.mask();
    regs.advance_rip(len);
    if port.0 == X86_SHUTDOWN_PORT {
        return AxVCpuExitReason::SystemDown;
    }
    AxVCpuExitReason::IoWrite { port, width, data }
}

/// `rdmsr` (`SysRegRead` into `edx:eax`, completed by [`complete_read`]) or `wrmsr`
/// (`SysRegWrite` of `edx:eax`, `rip` moved past it) of the MSR in `ecx`, by an instruction
/// of `len` bytes.
pub fn msr(
    regs: &mut impl GuestRegs,
    pending: &mut Option<PendingRead>,
    write: bool,
    len: u64,
) -> AxVCpuExitReason {
    let addr = SysRegAddr(regs.gpr(gpr::RCX) as u32 as usize);
    if !write {
        *pending = Some(PendingRead::Msr { len });
        return AxVCpuExitReason::SysRegRead {
            addr,
            reg: gpr::RAX,
        };
    }
    let value = (regs.gpr(gpr::RDX) << 32) | (regs.gpr(gpr::RAX) & 0xffff_ffff);
    regs.advance_rip(len);
    AxVCpuExitReason::SysRegWrite { addr, value }
}

/// A guest access the nested page table refused: the access a `NestedPageFault` reports
/// (a write, else an instruction fetch, else a read).
pub fn fault_access(write: bool, fetch: bool) -> AccessFlags {
    if write {
        AccessFlags::WRITE
    } else if fetch {
        AccessFlags::EXECUTE
    } else {
        AccessFlags::READ
    }
}

/// A data access to unmapped guest-physical `gpa` by the instruction whose bytes start
/// `insn` (fetched at `rip`; fewer than 15 when the fetch stopped early): `MmioRead`
/// (completed by [`complete_read`]) or `MmioWrite`, `rip` moved past a write — or what
/// `icr` makes of a write to the xAPIC's ICR (`CpuUp`, `SendIPI`, `Nothing`). An
/// instruction the decoder does not know is an `Err` whose value is its first bytes.
pub fn mmio(
    regs: &mut impl GuestRegs,
    pending: &mut Option<PendingRead>,
    icr: &mut IcrDecoder,
    gpa: u64,
    insn: &[u8],
) -> VCpuResult<AxVCpuExitReason> {
    let addr = GuestPhysAddr::from(gpa as usize);
    let d = decode::decode(insn).map_err(|_| {
        let mut first = [0u8; 8];
        for (f, b) in first.iter_mut().zip(insn) {
            *f = *b;
        }
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
            *pending = Some(PendingRead::Mmio {
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
            (width, decode::reg_value(regs.gpr(src.reg), src, width))
        }
        MmioInsn::StoreImm { width, imm } => (width, imm & width.mask()),
    };
    regs.advance_rip(len);
    // The xAPIC page is left unmapped: ICR writes are the guest's IPIs.
    if let Some(ipi) = icr.mmio_write(gpa, width, data) {
        return Ok(ipi);
    }
    Ok(AxVCpuExitReason::MmioWrite { addr, width, data })
}

/// `complete_read`: puts `value` where the pending read's instruction puts it, with x86's
/// register-write rules (a 32-bit write clears the upper half, 8- and 16-bit writes keep
/// the rest), and moves `rip` past it. `Err` if no read is pending.
pub fn complete_read(
    regs: &mut impl GuestRegs,
    pending: &mut Option<PendingRead>,
    value: u64,
) -> VCpuResult {
    let Some(read) = pending.take() else {
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
            let new = decode::merge_reg(regs.gpr(dst.reg), loaded, dst_width, dst.high_byte);
            regs.set_gpr(dst.reg, new);
            len
        }
        PendingRead::Io { width, len } => {
            let new = decode::merge_reg(regs.gpr(gpr::RAX), value & width.mask(), width, false);
            regs.set_gpr(gpr::RAX, new);
            len
        }
        PendingRead::Msr { len } => {
            regs.set_gpr(gpr::RAX, value & 0xffff_ffff);
            regs.set_gpr(gpr::RDX, value >> 32);
            len
        }
    };
    regs.advance_rip(len);
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::apic::{ICR_HIGH, ICR_LOW};
    use std::vec;

    #[derive(Default)]
    struct Regs {
        gprs: [u64; 16],
        rip: u64,
    }

    impl GuestRegs for Regs {
        fn gpr(&self, r: usize) -> u64 {
            self.gprs[r]
        }
        fn set_gpr(&mut self, r: usize, v: u64) {
            self.gprs[r] = v;
        }
        fn advance_rip(&mut self, len: u64) {
            self.rip += len;
        }
    }

    #[test]
    fn out_writes_the_accumulators_width_and_moves_rip() {
        let (mut r, mut p) = (Regs::default(), None);
        r.gprs[gpr::RAX] = 0x1122_3344_5566_7788;
        let got = port_io(&mut r, &mut p, Port(0x60), AccessWidth::Word, false, 2);
        let want = AxVCpuExitReason::IoWrite {
            port: Port(0x60),
            width: AccessWidth::Word,
            data: 0x7788,
        };
        assert_eq!((got, r.rip, p), (want, 2, None));
    }

    #[test]
    fn out_to_the_shutdown_port_is_system_down() {
        let (mut r, mut p) = (Regs::default(), None);
        let got = port_io(
            &mut r,
            &mut p,
            Port(X86_SHUTDOWN_PORT),
            AccessWidth::Byte,
            false,
            1,
        );
        assert_eq!(got, AxVCpuExitReason::SystemDown);
    }

    #[test]
    fn in_of_a_byte_keeps_the_rest_of_rax_and_moves_rip_only_when_completed() {
        let (mut r, mut p) = (Regs::default(), None);
        r.gprs[gpr::RAX] = 0xaaaa_bbbb_cccc_dddd;
        let got = port_io(&mut r, &mut p, Port(0x71), AccessWidth::Byte, true, 2);
        assert_eq!(
            got,
            AxVCpuExitReason::IoRead {
                port: Port(0x71),
                width: AccessWidth::Byte
            }
        );
        assert_eq!(r.rip, 0);
        complete_read(&mut r, &mut p, 0x1ff).unwrap();
        assert_eq!((r.gprs[gpr::RAX], r.rip), (0xaaaa_bbbb_cccc_ddff, 2));
    }

    #[test]
    fn rdmsr_completes_into_edx_eax_and_wrmsr_sends_edx_eax() {
        let (mut r, mut p) = (Regs::default(), None);
        r.gprs[gpr::RCX] = 0xffff_ffff_c000_0080;
        let got = msr(&mut r, &mut p, false, 2);
        assert_eq!(
            got,
            AxVCpuExitReason::SysRegRead {
                addr: SysRegAddr(0xc000_0080),
                reg: gpr::RAX
            }
        );
        complete_read(&mut r, &mut p, 0x1234_5678_9abc_def0).unwrap();
        assert_eq!(
            (r.gprs[gpr::RAX], r.gprs[gpr::RDX], r.rip),
            (0x9abc_def0, 0x1234_5678, 2)
        );
        r.gprs[gpr::RAX] = 0xffff_ffff_0000_0001;
        r.gprs[gpr::RDX] = 2;
        let got = msr(&mut r, &mut p, true, 2);
        assert_eq!(
            got,
            AxVCpuExitReason::SysRegWrite {
                addr: SysRegAddr(0xc000_0080),
                value: 0x2_0000_0001
            }
        );
        assert_eq!(r.rip, 4);
    }

    #[test]
    fn a_second_completion_is_refused() {
        let (mut r, mut p) = (Regs::default(), None);
        assert!(complete_read(&mut r, &mut p, 0).is_err());
        msr(&mut r, &mut p, false, 2);
        complete_read(&mut r, &mut p, 0).unwrap();
        assert!(complete_read(&mut r, &mut p, 0).is_err());
        assert_eq!(r.rip, 2);
    }

    #[test]
    fn mmio_store_of_a_high_byte_register_writes_that_byte() {
        let (mut r, mut p) = (Regs::default(), None);
        r.gprs[gpr::RAX] = 0x1234;
        // mov [rbx], ah
        let got = mmio(
            &mut r,
            &mut p,
            &mut IcrDecoder::new(),
            0x9000,
            &[0x88, 0x23],
        )
        .unwrap();
        assert_eq!(
            got,
            AxVCpuExitReason::MmioWrite {
                addr: GuestPhysAddr::from(0x9000),
                width: AccessWidth::Byte,
                data: 0x12
            }
        );
        assert_eq!((r.rip, p), (2, None));
    }

    #[test]
    fn mmio_sign_extending_load_fills_the_destination() {
        let (mut r, mut p) = (Regs::default(), None);
        // movsx rax, byte ptr [rbx]
        mmio(
            &mut r,
            &mut p,
            &mut IcrDecoder::new(),
            0x9000,
            &[0x48, 0x0f, 0xbe, 0x03],
        )
        .unwrap();
        complete_read(&mut r, &mut p, 0x80).unwrap();
        assert_eq!((r.gprs[gpr::RAX], r.rip), (0xffff_ffff_ffff_ff80, 4));
    }

    #[test]
    fn mmio_write_to_the_icr_is_the_decoders_exit() {
        let (mut r, mut p, mut icr) = (Regs::default(), None, IcrDecoder::new());
        // mov dword ptr [rbx], 0x...: the immediate form, to ICR high then low.
        let mov_imm = |v: u32| {
            let mut b = vec![0xc7, 0x03];
            b.extend_from_slice(&v.to_le_bytes());
            b
        };
        let high = mmio(&mut r, &mut p, &mut icr, ICR_HIGH, &mov_imm(2 << 24)).unwrap();
        assert_eq!(high, AxVCpuExitReason::Nothing);
        let low = mmio(&mut r, &mut p, &mut icr, ICR_LOW, &mov_imm(0x4055)).unwrap();
        assert!(matches!(
            low,
            AxVCpuExitReason::SendIPI {
                target_cpu: 2,
                vector: 0x55,
                ..
            }
        ));
        assert_eq!(r.rip, 12);
    }

    #[test]
    fn mmio_by_an_unknown_instruction_is_an_error_naming_its_bytes_and_leaves_rip() {
        let (mut r, mut p) = (Regs::default(), None);
        // movs (a string move) is not decoded.
        let e = mmio(&mut r, &mut p, &mut IcrDecoder::new(), 0x9000, &[0xa4]).unwrap_err();
        assert_eq!(e.value(), Some(0xa4));
        assert_eq!((r.rip, p), (0, None));
        // An empty fetch too.
        assert!(mmio(&mut r, &mut p, &mut IcrDecoder::new(), 0x9000, &[]).is_err());
    }

    #[test]
    fn a_refused_access_reports_write_then_fetch_then_read() {
        assert_eq!(fault_access(true, false), AccessFlags::WRITE);
        assert_eq!(fault_access(false, true), AccessFlags::EXECUTE);
        assert_eq!(fault_access(false, false), AccessFlags::READ);
    }
}
