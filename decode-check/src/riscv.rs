//! RISC-V: `axvcpu_riscv::decode` against `raki` (RV64I, C, Zicsr).
//!
//! For every instruction word [`decode_mem`] accepts, the reference must decode the same
//! load or store with the same direction, width, sign extension, data register, length,
//! and [`mem_operands`] the same base register and offset; every integer load or store the
//! reference decodes must be accepted by ours, except reserved encodings. `raki` has no Zcb
//! (`c.lbu`, `c.lhu`, `c.lh`, `c.sb`, `c.sh`): those are compared with [`ZCB`], the Zcb
//! encoding table of the Zc* specification written out as data. [`decode_transformed`]
//! (the `htinst` form) and [`decode_csr`] are compared with the reference too.

use crate::{Mismatch, Verdict};
use axvcpu::AccessWidth;
use axvcpu_riscv::decode::{
    decode_csr, decode_mem, decode_transformed, mem_operands, CsrOp, CsrSrc, MemInsn,
};
use raki::{BaseIOpcode, COpcode, Decode, Instruction, Isa, OpcodeKind, ZicntrOpcode, ZicsrOpcode};

/// One Zcb load/store: bits 15:10 (funct6), the required value of bit 6 (`None`: bit 6
/// is an offset bit), load, width, signed, and where the offset bits sit: (bit, value).
type ZcbRow = (
    u16,
    Option<u16>,
    bool,
    AccessWidth,
    bool,
    &'static [(u32, i64)],
);

/// The Zcb loads and stores (Zc* spec v1.0, "Zcb": CLB, CLH, CSB, CSH formats).
pub const ZCB: [ZcbRow; 5] = [
    (
        0b100_000,
        None,
        true,
        AccessWidth::Byte,
        false,
        &[(6, 1), (5, 2)],
    ), // c.lbu
    (
        0b100_001,
        Some(0),
        true,
        AccessWidth::Word,
        false,
        &[(5, 2)],
    ), // c.lhu
    (0b100_001, Some(1), true, AccessWidth::Word, true, &[(5, 2)]), // c.lh
    (
        0b100_010,
        None,
        false,
        AccessWidth::Byte,
        false,
        &[(6, 1), (5, 2)],
    ), // c.sb
    (
        0b100_011,
        Some(0),
        false,
        AccessWidth::Word,
        false,
        &[(5, 2)],
    ), // c.sh
];

/// A load/store as the reference describes it: (load, width, signed, data register,
/// base register, offset, length).
type RefMem = (bool, AccessWidth, bool, usize, usize, i64, usize);

fn zcb(insn: u16) -> Option<RefMem> {
    if insn & 3 != 0 {
        return None;
    }
    let f6 = insn >> 10;
    let bit6 = (insn >> 6) & 1;
    let (_, _, load, width, signed, offs) = ZCB
        .iter()
        .find(|r| r.0 == f6 && r.1.is_none_or(|b| b == bit6))?;
    let offset = offs
        .iter()
        .map(|&(bit, v)| if (insn >> bit) & 1 != 0 { v } else { 0 })
        .sum();
    let reg = usize::from((insn >> 2) & 7) + 8;
    let base = usize::from((insn >> 7) & 7) + 8;
    Some((*load, *width, *signed, reg, base, offset, 2))
}

fn reference(insn: u32) -> Option<Instruction> {
    if insn & 3 == 3 {
        insn.decode(Isa::Rv64).ok()
    } else {
        (insn as u16).decode(Isa::Rv64).ok()
    }
}

fn ref_mem(i: &Instruction) -> Option<RefMem> {
    use AccessWidth::*;
    let (load, width, signed) = match &i.opc {
        OpcodeKind::BaseI(op) => match op {
            BaseIOpcode::LB => (true, Byte, true),
            BaseIOpcode::LH => (true, Word, true),
            BaseIOpcode::LW => (true, Dword, true),
            BaseIOpcode::LD => (true, Qword, false),
            BaseIOpcode::LBU => (true, Byte, false),
            BaseIOpcode::LHU => (true, Word, false),
            BaseIOpcode::LWU => (true, Dword, false),
            BaseIOpcode::SB => (false, Byte, false),
            BaseIOpcode::SH => (false, Word, false),
            BaseIOpcode::SW => (false, Dword, false),
            BaseIOpcode::SD => (false, Qword, false),
            _ => return None,
        },
        OpcodeKind::C(op) => match op {
            COpcode::LW | COpcode::LWSP => (true, Dword, true),
            COpcode::LD | COpcode::LDSP => (true, Qword, false),
            COpcode::SW | COpcode::SWSP => (false, Dword, false),
            COpcode::SD | COpcode::SDSP => (false, Qword, false),
            _ => return None,
        },
        _ => return None,
    };
    let reg = if load { i.rd? } else { i.rs2? };
    let sp_relative = matches!(
        i.opc,
        OpcodeKind::C(COpcode::LWSP | COpcode::LDSP | COpcode::SWSP | COpcode::SDSP)
    );
    let base = if sp_relative { 2 } else { i.rs1? };
    let len = if i.is_compressed { 2 } else { 4 };
    Some((load, width, signed, reg, base, i64::from(i.imm?), len))
}

fn ours(insn: u32) -> Option<RefMem> {
    let MemInsn {
        is_load,
        width,
        signed,
        reg,
        len,
    } = decode_mem(insn)?;
    let (base, offset) = mem_operands(insn).unwrap_or((usize::MAX, i64::MIN));
    Some((is_load, width, signed, reg, base, offset, len))
}

/// Compares our load/store decode (and CSR decode) with the reference on `insn` (for a
/// 16-bit instruction only the low half counts).
pub fn check(insn: u32) -> Result<Verdict, Mismatch> {
    let insn = if insn & 3 == 3 { insn } else { insn & 0xffff };
    let theirs = reference(insn);
    let bad = |what: String| Mismatch {
        input: format!("insn {insn:#010x}"),
        what: format!(
            "{what}; reference {:?}",
            theirs.as_ref().map(|i| (&i.opc, i.rd, i.rs1, i.rs2, i.imm))
        ),
    };
    check_csr(insn, theirs.as_ref()).map_err(bad)?;
    check_transformed(insn, theirs.as_ref()).map_err(bad)?;
    let want = theirs
        .as_ref()
        .and_then(ref_mem)
        .or_else(|| zcb(insn as u16).filter(|_| insn & 3 == 0));
    let verdict = match (ours(insn), want) {
        (Some(o), Some(w)) if o == w => Verdict::Agree,
        (None, None) => Verdict::NotAccess,
        (None, Some(_))
            if matches!(
                theirs.as_ref().map(|i| &i.opc),
                Some(OpcodeKind::C(COpcode::LWSP | COpcode::LDSP))
            ) && (insn >> 7) & 0x1f == 0 =>
        {
            Verdict::RefusedByDesign("reserved encoding: c.lwsp/c.ldsp with rd = x0")
        }
        (o, w) => return Err(bad(format!("ours {o:?}, want {w:?}"))),
    };
    Ok(match (verdict, theirs.as_ref().map(|i| &i.opc)) {
        (Verdict::NotAccess, Some(OpcodeKind::A(_))) => {
            Verdict::RefusedByDesign("atomic (LR/SC/AMO): not emulated on MMIO")
        }
        (v, _) => v,
    })
}

/// `htinst` reports a trapping load/store as its 32-bit form, bit 1 cleared when the
/// original was compressed: [`decode_transformed`] must agree with the reference's decode
/// of the 32-bit form on direction, width, sign extension and register, with the length
/// bit 1 gives.
fn check_transformed(insn: u32, theirs: Option<&Instruction>) -> Result<(), String> {
    if insn & 3 != 3 {
        return Ok(());
    }
    let want = theirs.and_then(ref_mem).filter(|m| m.6 == 4);
    for (t, len) in [(insn, 4), (insn & !2, 2)] {
        let ours = decode_transformed(t).map(|m| (m.is_load, m.width, m.signed, m.reg, m.len));
        let want = want.map(|(l, w, s, r, ..)| (l, w, s, r, len));
        if ours != want {
            return Err(format!("transformed {t:#x}: ours {ours:?}, want {want:?}"));
        }
    }
    Ok(())
}

fn check_csr(insn: u32, theirs: Option<&Instruction>) -> Result<(), String> {
    let want = match theirs {
        Some(
            i @ Instruction {
                opc: OpcodeKind::Zicsr(op),
                ..
            },
        ) => {
            let (op, imm) = match op {
                ZicsrOpcode::CSRRW => (CsrOp::Write, false),
                ZicsrOpcode::CSRRS => (CsrOp::Set, false),
                ZicsrOpcode::CSRRC => (CsrOp::Clear, false),
                ZicsrOpcode::CSRRWI => (CsrOp::Write, true),
                ZicsrOpcode::CSRRSI => (CsrOp::Set, true),
                ZicsrOpcode::CSRRCI => (CsrOp::Clear, true),
            };
            let src = if imm {
                i.imm.map(|v| CsrSrc::Imm(v as u64))
            } else {
                i.rs1.map(CsrSrc::Reg)
            };
            // raki puts the CSR number in rs2.
            Some((i.rs2, op, i.rd, src))
        }
        // raki reads `csrrs rd, cycle/time/instret[h], rs1` as the Zicntr pseudo-instruction
        // whatever rs1 is, and drops rs1: compare what it keeps.
        Some(Instruction {
            opc: OpcodeKind::Zicntr(op),
            rd,
            ..
        }) => {
            let csr = match op {
                ZicntrOpcode::RDCYCLE => 0xc00,
                ZicntrOpcode::RDTIME => 0xc01,
                ZicntrOpcode::RDINSTRET => 0xc02,
                ZicntrOpcode::RDCYCLE_H => 0xc80,
                ZicntrOpcode::RDTIME_H => 0xc81,
                ZicntrOpcode::RDINSTRET_H => 0xc82,
            };
            let src = decode_csr(insn).map(|c| c.src);
            Some((Some(csr), CsrOp::Set, *rd, src))
        }
        _ => None,
    };
    let ours = decode_csr(insn).map(|c| (Some(usize::from(c.csr)), c.op, Some(c.rd), Some(c.src)));
    if ours == want {
        Ok(())
    } else {
        Err(format!("csr: ours {ours:?}, want {want:?}"))
    }
}
