//! AArch64: `axvcpu_aarch64::decode` against `aarch64-esr-decoder` (syndrome fields) and
//! `yaxpeax-arm` (what the faulting instruction does).
//!
//! - [`check_esr`]: for any `ESR_EL2` value the reference accepts (architecturally
//!   possible: RES0 bits clear), our field decode agrees with the reference's on every field
//!   the backend uses: EC, IL, ISS; for data aborts ISV, SAS, SSE, SRT, SF (when ISV), WnR,
//!   S1PTW, CM, FnV and the fault-status class; for instruction aborts the IFSC class; for
//!   trapped `MSR`/`MRS` the register address, Rt and direction; for `WFx` WFI vs WFE; for
//!   `HVC`/`SMC` the immediate.
//! - [`check_insn`]: for an instruction word, the reference decodes it; if it is a load or
//!   store the Arm ARM gives a valid syndrome for (one general-purpose register, no
//!   writeback: ISV = 1), the syndrome the hardware reports for a stage-2 translation fault
//!   on it is built from the reference's operands, and our decode of that syndrome must
//!   classify it as MMIO and give the instruction's width, register, direction, and the
//!   exact register value a load leaves. Any other load/store gets ISV = 0 from the hardware
//!   and must be refused (`NoSyndrome`): refused by design, with the class named.

use crate::{Mismatch, Verdict};
use aarch64_esr_decoder::FieldInfo;
use axvcpu::AccessWidth;
use axvcpu_aarch64::decode::{
    classify_data_abort, sysreg, AbortAction, DataAbort, Esr, FaultKind, SysRegAccess, Wfx,
};
use yaxpeax_arch::{Decoder, U8Reader};
use yaxpeax_arm::armv8::a64::{InstDecoder, Opcode, Operand, SizeCode};

fn field<'a>(fields: &'a [FieldInfo], name: &str) -> Option<&'a FieldInfo> {
    fields.iter().find_map(|f| {
        if f.name == name {
            Some(f)
        } else {
            field(&f.subfields, name)
        }
    })
}

fn kind_of(description: Option<&str>) -> &'static str {
    let d = description.unwrap_or("");
    for (prefix, kind) in [
        ("Address size fault", "AddressSize"),
        ("Translation fault", "Translation"),
        ("Access flag fault", "AccessFlag"),
        ("Permission fault", "Permission"),
    ] {
        if d.starts_with(prefix) {
            return kind;
        }
    }
    "Other"
}

fn our_kind(k: FaultKind) -> &'static str {
    match k {
        FaultKind::AddressSize => "AddressSize",
        FaultKind::Translation => "Translation",
        FaultKind::AccessFlag => "AccessFlag",
        FaultKind::Permission => "Permission",
        FaultKind::Other(_) => "Other",
    }
}

/// Compares our syndrome decode with the reference on `esr`.
pub fn check_esr(esr: u64) -> Result<Verdict, Mismatch> {
    let Ok(fields) = aarch64_esr_decoder::decode(esr) else {
        // RES0 bits set: no hardware reports it; ours must merely not panic.
        let e = Esr(esr);
        let _ = (DataAbort::decode(e.iss()), SysRegAccess::decode(e.iss()));
        return Ok(Verdict::NotAccess);
    };
    let bad = |what: String| {
        Err(Mismatch {
            input: format!("ESR {esr:#x}"),
            what,
        })
    };
    let get = |name: &str| field(&fields, name).map(|f| f.value);
    let e = Esr(esr);
    if Some(e.ec()) != get("EC") || Some(e.il() as u64) != get("IL") || Some(e.iss()) != get("ISS")
    {
        return bad(format!("EC/IL/ISS {:#x}/{}/{:#x}", e.ec(), e.il(), e.iss()));
    }
    let iss = e.iss();
    match e.ec() {
        0x24 | 0x25 => {
            let d = DataAbort::decode(iss);
            let flag = |name: &str| get(name) == Some(1);
            let mut same = d.isv == flag("ISV")
                && d.write == flag("WnR")
                && d.s1ptw == flag("S1PTW")
                && d.cache_maintenance == flag("CM")
                && d.far_not_valid == flag("FnV");
            if d.isv {
                same &= Some(d.width.size().trailing_zeros() as u64) == get("SAS")
                    && d.sign_extend == flag("SSE")
                    && Some(d.reg as u64) == get("SRT")
                    && d.sf == flag("SF");
            }
            let theirs = kind_of(field(&fields, "DFSC").and_then(|f| f.description.as_deref()));
            if !same || our_kind(d.kind) != theirs {
                return bad(format!("data abort {d:?}, reference fault class {theirs}"));
            }
        }
        0x20 | 0x21 => {
            let ours = our_kind(FaultKind::from_fsc(iss));
            let theirs = kind_of(field(&fields, "IFSC").and_then(|f| f.description.as_deref()));
            if ours != theirs {
                return bad(format!("instruction abort class {ours} vs {theirs}"));
            }
        }
        0x18 => {
            let a = SysRegAccess::decode(iss);
            let r = |n| get(n).unwrap_or(u64::MAX);
            let addr = sysreg(r("Op0"), r("Op1"), r("CRn"), r("CRm"), r("Op2"));
            if a.addr != addr || Some(a.reg as u64) != get("Rt") || a.read != (r("Direction") == 1)
            {
                return bad(format!("sysreg access {a:?}"));
            }
        }
        0x01 => {
            let ours = Wfx::decode(iss);
            let ti = field(&fields, "TI").and_then(|f| f.description.clone());
            let theirs = match ti.as_deref() {
                Some(t) if t.contains("WFE") => Wfx::Wfe,
                Some(t) if t.contains("WFI") => Wfx::Wfi,
                _ => return bad(format!("WFx TI {ti:?}")),
            };
            if ours != theirs {
                return bad(format!("WFx {ours:?} vs {theirs:?}"));
            }
        }
        0x16 | 0x17 => {
            if Some(u64::from(axvcpu_aarch64::decode::imm16(iss))) != get("imm16") {
                return bad("imm16".into());
            }
        }
        _ => return Ok(Verdict::NotAccess),
    }
    Ok(Verdict::Agree)
}

/// A single-register load or store as the reference describes it.
#[derive(Debug)]
struct RefAccess {
    load: bool,
    bytes: usize,
    signed: bool,
    rt: u16,
    x: bool,
    acquire_release: bool,
}

/// The access size and signedness of single-register load/store opcodes (`None`: the
/// register's size), and whether the opcode loads.
fn single(op: Opcode) -> Option<(bool, Option<usize>, bool, bool)> {
    use Opcode::*;
    // (load, bytes, signed, acquire/release)
    Some(match op {
        LDR | LDUR | LDTR => (true, None, false, false),
        LDAR | LDAPR | LDAPUR | LDLAR => (true, None, false, true),
        LDRB | LDURB | LDTRB => (true, Some(1), false, false),
        LDARB | LDAPRB | LDAPURB | LDLARB => (true, Some(1), false, true),
        LDRH | LDURH | LDTRH => (true, Some(2), false, false),
        LDARH | LDAPRH | LDAPURH | LDLARH => (true, Some(2), false, true),
        LDRSB | LDURSB | LDTRSB => (true, Some(1), true, false),
        LDAPURSB => (true, Some(1), true, true),
        LDRSH | LDURSH | LDTRSH => (true, Some(2), true, false),
        LDAPURSH => (true, Some(2), true, true),
        LDRSW | LDURSW | LDTRSW => (true, Some(4), true, false),
        LDAPURSW => (true, Some(4), true, true),
        STR | STUR | STTR => (false, None, false, false),
        STLR | STLUR | STLLR => (false, None, false, true),
        STRB | STURB | STTRB => (false, Some(1), false, false),
        STLRB | STLURB | STLLRB => (false, Some(1), false, true),
        STRH | STURH | STTRH => (false, Some(2), false, false),
        STLRH | STLURH | STLLRH => (false, Some(2), false, true),
        _ => return None,
    })
}

/// Why a load/store the reference decodes gets no instruction syndrome (`None`: it is not
/// a load or store at all, as far as this check is concerned).
fn no_syndrome_class(op: Opcode, operands: &[Operand]) -> Option<&'static str> {
    let name = format!("{op:?}");
    let memory = operands.iter().any(|o| {
        matches!(
            o,
            Operand::RegPreIndex(..)
                | Operand::RegPostIndex(..)
                | Operand::RegPostIndexReg(..)
                | Operand::RegRegOffset(..)
        )
    });
    if !memory && !name.starts_with("LD") && !name.starts_with("ST") {
        return None;
    }
    Some(
        if name.contains('P')
            && (name.starts_with("LDP")
                || name.starts_with("STP")
                || name.ends_with("XP")
                || name.starts_with("LDNP")
                || name.starts_with("STNP"))
        {
            "register pair (LDP/STP/LDXP...): ISV = 0"
        } else if name.contains("XR") {
            "exclusive (LDXR/STXR...): ISV = 0"
        } else if operands.iter().any(|o| {
            matches!(
                o,
                Operand::RegPostIndex(..)
                    | Operand::RegPostIndexReg(..)
                    | Operand::RegPreIndex(_, _, true)
            )
        }) {
            "writeback (pre/post-index): ISV = 0"
        } else if operands.iter().any(|o| {
            matches!(
                o,
                Operand::SIMDRegister(..)
                    | Operand::SIMDRegisterElements(..)
                    | Operand::SIMDRegisterElementsLane(..)
                    | Operand::SIMDRegisterElementsMultipleLane(..)
                    | Operand::SIMDRegisterGroup(..)
                    | Operand::SIMDRegisterGroupLane(..)
            )
        }) {
            "SIMD/FP register: ISV = 0"
        } else {
            "atomic, tag, pointer-authenticated or other load/store: ISV = 0"
        },
    )
}

fn decode_insn(word: u32) -> Option<yaxpeax_arm::armv8::a64::Instruction> {
    let bytes = word.to_le_bytes();
    let mut reader = U8Reader::new(&bytes);
    InstDecoder::default().decode(&mut reader).ok()
}

/// The ISS of a stage-2 translation fault (level 3) on `a`, as the Arm ARM says the
/// hardware builds it for an instruction with a valid syndrome.
fn syndrome(a: &RefAccess, bytes: usize) -> u64 {
    (1 << 24)
        | ((bytes.trailing_zeros() as u64) << 22)
        | (u64::from(a.signed) << 21)
        | (u64::from(a.rt) << 16)
        | (u64::from(a.x) << 15)
        | (u64::from(a.acquire_release) << 14)
        | (u64::from(!a.load) << 6)
        | 0x07
}

/// Compares our handling of a stage-2 fault on the instruction `word` with the reference.
pub fn check_insn(word: u32) -> Result<Verdict, Mismatch> {
    let Some(insn) = decode_insn(word) else {
        return Ok(Verdict::NotAccess);
    };
    let bad = |what: String| {
        Err(Mismatch {
            input: format!("insn {word:#010x} ({insn})"),
            what,
        })
    };
    let ops = &insn.operands;
    let no_writeback = matches!(
        ops[1],
        Operand::RegPreIndex(_, _, false) | Operand::RegRegOffset(..) | Operand::PCOffset(_)
    ) && ops[2] == Operand::Nothing;
    let access = match (single(insn.opcode), ops[0]) {
        (Some((load, bytes, signed, ar)), Operand::Register(size, rt)) if no_writeback => {
            let x = size == SizeCode::X;
            RefAccess {
                load,
                bytes: bytes.unwrap_or(if x { 8 } else { 4 }),
                signed,
                rt,
                x,
                acquire_release: ar,
            }
        }
        _ => {
            return Ok(match no_syndrome_class(insn.opcode, ops) {
                Some(class) => {
                    // The hardware reports ISV = 0: ours must refuse, not guess.
                    let d = DataAbort::decode(0x07);
                    if classify_data_abort(&d, None) != AbortAction::NoSyndrome {
                        return bad("ISV = 0 not refused".into());
                    }
                    Verdict::RefusedByDesign(class)
                }
                None => Verdict::NotAccess,
            });
        }
    };
    let d = DataAbort::decode(syndrome(&access, access.bytes));
    if classify_data_abort(&d, None) != AbortAction::Mmio {
        return bad(format!("{d:?} not classified as MMIO"));
    }
    let want_width = AccessWidth::from_size(access.bytes);
    if Some(d.width) != want_width
        || d.reg != usize::from(access.rt)
        || d.write == access.load
        || d.reg_width()
            != if access.x {
                AccessWidth::Qword
            } else {
                AccessWidth::Dword
            }
    {
        return bad(format!("{d:?} vs {access:?}"));
    }
    if access.load {
        for v in [
            0xf1e2_d3c4_b5a6_9788u64,
            0x7f7f_7f7f_7f7f_7f7f,
            0x8000_0000_8000_8080,
        ] {
            let bits = 8 * access.bytes as u32;
            let loaded = if bits == 64 { v } else { v & ((1 << bits) - 1) };
            let extended = if access.signed && bits < 64 {
                (((loaded << (64 - bits)) as i64) >> (64 - bits)) as u64
            } else {
                loaded
            };
            // A write to a `w` register zeroes bits 63:32.
            let want = if access.x {
                extended
            } else {
                extended & 0xffff_ffff
            };
            if d.load_result(v) != want {
                return bad(format!(
                    "load of {v:#x} leaves {:#x}, architecturally {want:#x}",
                    d.load_result(v)
                ));
            }
        }
    }
    Ok(Verdict::Agree)
}
