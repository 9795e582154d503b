//! x86-64: `axvcpu_x86::decode` against `iced-x86`.
//!
//! For every input our [`decode`] accepts, `iced-x86` must decode a valid `mov`, `movzx`,
//! `movsx` or `movsxd` of the same length with one memory operand, and the two must agree
//! on the direction, the access width, the register (with `ah`..`bh`), the immediate, and
//! the value the destination register holds after a load (width, sign or zero extension,
//! and how x86 merges 8/16/32-bit writes). For every input our decoder refuses, `iced-x86`
//! must not see one of those `mov` forms with a general-purpose register or immediate:
//! anything else that touches memory is refused by design (see [`refusal`]).
//! `io_insn_len` is compared with `iced-x86`'s length of `in`/`out`.

use crate::{hex, Mismatch, Verdict};
use axvcpu::AccessWidth;
use axvcpu_x86::decode::{
    decode, io_insn_len, load_value, merge_reg, reg_value, MmioInsn, RegOperand, MAX_INSN_LEN,
};
use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter, Mnemonic};
use iced_x86::{OpKind, Register};

/// Old register contents and loaded values the load semantics are compared on.
const VALUES: [(u64, u64); 3] = [
    (0x1111_2222_3333_4444, 0xf1e2_d3c4_b5a6_9788),
    (0xffff_ffff_ffff_ffff, 0x0000_0000_7f00_7f7f),
    (0, 0x8000_0000_8000_8080),
];

fn reference(bytes: &[u8]) -> Option<Instruction> {
    let mut d = Decoder::with_ip(64, bytes, 0, DecoderOptions::NONE);
    let insn = d.decode();
    (!insn.is_invalid()).then_some(insn)
}

fn text(insn: &Instruction) -> String {
    let mut out = String::new();
    IntelFormatter::new().format(insn, &mut out);
    out
}

/// The general-purpose register an `iced-x86` register operand names, numbered as
/// instructions encode it, with the `ah`..`bh` flag.
fn gpr(reg: Register) -> Option<RegOperand> {
    if !reg.is_gpr() {
        return None;
    }
    let high_byte = matches!(
        reg,
        Register::AH | Register::CH | Register::DH | Register::BH
    );
    let n = reg.full_register() as usize;
    let base = Register::RAX as usize;
    (base..base + 16).contains(&n).then_some(RegOperand {
        reg: n - base,
        high_byte,
    })
}

fn width(size: usize) -> Option<AccessWidth> {
    AccessWidth::from_size(size)
}

fn is_mov_family(m: Mnemonic) -> bool {
    matches!(
        m,
        Mnemonic::Mov | Mnemonic::Movzx | Mnemonic::Movsx | Mnemonic::Movsxd
    )
}

/// What the reference says a `mov`-family access with one memory operand does.
#[derive(Debug)]
enum RefAccess {
    Load {
        mem: usize,
        dst: Register,
        signed: bool,
    },
    StoreReg {
        mem: usize,
        src: Register,
    },
    StoreImm {
        mem: usize,
        imm: u64,
    },
}

fn ref_access(insn: &Instruction) -> Option<RefAccess> {
    if !is_mov_family(insn.mnemonic()) || insn.op_count() != 2 {
        return None;
    }
    let mem = insn.memory_size().size();
    let gp = |i| {
        (insn.op_kind(i) == OpKind::Register && gpr(insn.op_register(i)).is_some())
            .then(|| insn.op_register(i))
    };
    match (insn.op_kind(0), insn.op_kind(1)) {
        (OpKind::Register, OpKind::Memory) => Some(RefAccess::Load {
            mem,
            dst: gp(0)?,
            signed: matches!(insn.mnemonic(), Mnemonic::Movsx | Mnemonic::Movsxd),
        }),
        (OpKind::Memory, OpKind::Register) => Some(RefAccess::StoreReg { mem, src: gp(1)? }),
        (
            OpKind::Memory,
            OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate32to64,
        ) => Some(RefAccess::StoreImm {
            mem,
            imm: insn.immediate(1),
        }),
        _ => None,
    }
}

/// The architectural result of a load of `mem` bytes of `value` into `dst` holding `old`:
/// extended to the register's size, then written as x86 writes that size.
fn arch_load(old: u64, value: u64, mem: usize, dst: Register, signed: bool) -> u64 {
    let bits = 8 * mem as u32;
    let v = if bits >= 64 {
        value
    } else if signed {
        (((value << (64 - bits)) as i64) >> (64 - bits)) as u64
    } else {
        value & ((1u64 << bits) - 1)
    };
    match dst {
        Register::AH | Register::CH | Register::DH | Register::BH => {
            (old & !0xff00) | ((v & 0xff) << 8)
        }
        _ => match dst.size() {
            1 => (old & !0xff) | (v & 0xff),
            2 => (old & !0xffff) | (v & 0xffff),
            4 => v & 0xffff_ffff,
            _ => v,
        },
    }
}

/// Why our decoder refuses an instruction the reference decodes as touching memory.
pub fn refusal(insn: &Instruction) -> &'static str {
    let kinds: Vec<OpKind> = (0..insn.op_count()).map(|i| insn.op_kind(i)).collect();
    let string = kinds.iter().any(|k| {
        matches!(
            k,
            OpKind::MemorySegSI
                | OpKind::MemorySegESI
                | OpKind::MemorySegRSI
                | OpKind::MemorySegDI
                | OpKind::MemorySegEDI
                | OpKind::MemorySegRDI
                | OpKind::MemoryESDI
                | OpKind::MemoryESEDI
                | OpKind::MemoryESRDI
        )
    });
    if string {
        "string instruction (movs/stos/lods/cmps/scas/ins/outs): repeats and two addresses"
    } else if is_mov_family(insn.mnemonic()) {
        "mov to/from a segment register"
    } else if matches!(insn.mnemonic(), Mnemonic::Movbe | Mnemonic::Movnti) {
        "movbe/movnti: a byte-swapping or non-temporal general-register move"
    } else if matches!(
        insn.mnemonic(),
        Mnemonic::Xchg
            | Mnemonic::Cmpxchg
            | Mnemonic::Xadd
            | Mnemonic::Cmpxchg8b
            | Mnemonic::Cmpxchg16b
    ) {
        "xchg/cmpxchg/xadd: an atomic read-modify-write"
    } else if (0..insn.op_count()).any(|i| {
        insn.op_kind(i) == OpKind::Register
            && !insn.op_register(i).is_gpr()
            && insn.op_register(i) != Register::None
    }) {
        "SIMD/FP/system-register operand (SSE/AVX/x87 moves, ...)"
    } else {
        "not a plain move: read-modify-write, ALU, stack, bit or atomic instruction"
    }
}

fn mismatch(bytes: &[u8], what: String) -> Mismatch {
    Mismatch {
        input: hex(bytes),
        what,
    }
}

/// Compares `decode` with the reference on `bytes` (at most [`MAX_INSN_LEN`] + 1 used).
pub fn check(bytes: &[u8]) -> Result<Verdict, Mismatch> {
    let bytes = &bytes[..bytes.len().min(MAX_INSN_LEN + 1)];
    let ours = decode(bytes);
    let theirs = reference(bytes);
    let access = theirs.as_ref().and_then(ref_access);
    let (d, insn, access) = match (ours, theirs, access) {
        (Ok(d), Some(insn), Some(access)) => (d, insn, access),
        (Ok(d), Some(insn), None) => {
            return Err(mismatch(
                bytes,
                format!(
                    "ours decodes {d:?}, reference `{}` is no mov-family access",
                    text(&insn)
                ),
            ))
        }
        (Ok(d), None, _) => {
            return Err(mismatch(
                bytes,
                format!("ours decodes {d:?}, reference: invalid"),
            ))
        }
        (Err(e), Some(insn), Some(_)) => {
            return Err(mismatch(
                bytes,
                format!("ours refuses ({e:?}), reference `{}`", text(&insn)),
            ))
        }
        (Err(_), Some(insn), None) => {
            let touches_memory = (0..insn.op_count()).any(|i| {
                !matches!(
                    insn.op_kind(i),
                    OpKind::Register
                        | OpKind::NearBranch16
                        | OpKind::NearBranch32
                        | OpKind::NearBranch64
                        | OpKind::FarBranch16
                        | OpKind::FarBranch32
                        | OpKind::Immediate8
                        | OpKind::Immediate8_2nd
                        | OpKind::Immediate16
                        | OpKind::Immediate32
                        | OpKind::Immediate64
                        | OpKind::Immediate8to16
                        | OpKind::Immediate8to32
                        | OpKind::Immediate8to64
                        | OpKind::Immediate32to64
                )
            }) || insn.stack_pointer_increment() != 0;
            return Ok(if touches_memory {
                Verdict::RefusedByDesign(refusal(&insn))
            } else {
                Verdict::NotAccess
            });
        }
        (Err(_), None, _) => return Ok(Verdict::NotAccess),
    };
    let fail = |what: String| {
        Err(mismatch(
            bytes,
            format!("{what}; reference `{}`", text(&insn)),
        ))
    };
    if d.len != insn.len() {
        return fail(format!("length {} vs {}", d.len, insn.len()));
    }
    match (d.insn, access) {
        (
            MmioInsn::Load {
                width: w,
                dst,
                dst_width,
                signed,
            },
            RefAccess::Load {
                mem,
                dst: rdst,
                signed: rsigned,
            },
        ) => {
            if Some(w) != width(mem)
                || Some(dst) != gpr(rdst)
                || Some(dst_width) != width(rdst.size())
            {
                return fail(format!("load {d:?}"));
            }
            for (old, value) in VALUES {
                let ours = merge_reg(old, load_value(value, w, signed), dst_width, dst.high_byte);
                let want = arch_load(old, value, mem, rdst, rsigned);
                if ours != want {
                    return fail(format!(
                        "load of {value:#x} over {old:#x} gives {ours:#x}, architecturally {want:#x}"
                    ));
                }
            }
        }
        (MmioInsn::StoreReg { width: w, src }, RefAccess::StoreReg { mem, src: rsrc }) => {
            if Some(w) != width(mem) || Some(src) != gpr(rsrc) || rsrc.size() != mem {
                return fail(format!("store {d:?}"));
            }
            for (full, _) in VALUES {
                let want = if src.high_byte {
                    (full >> 8) & 0xff
                } else {
                    full & w.mask()
                };
                if reg_value(full, src, w) != want {
                    return fail(format!("store data of {full:#x}"));
                }
            }
        }
        (MmioInsn::StoreImm { width: w, imm }, RefAccess::StoreImm { mem, imm: rimm }) => {
            if Some(w) != width(mem) || imm != rimm & w.mask() {
                return fail(format!("store immediate {d:?} vs {rimm:#x}"));
            }
        }
        (ours, theirs) => return fail(format!("direction/kind {ours:?} vs {theirs:?}")),
    }
    Ok(Verdict::Agree)
}

/// Compares `io_insn_len` with the reference on `bytes`: a length we report must be the
/// length of a valid non-string `in`/`out`, and every such instruction must get one. The
/// reference decodes `bytes` padded with `nop`s, since `io_insn_len` only reads the
/// opcode and prefixes (an 8-bit port may lie past the bytes fetched).
pub fn check_io(bytes: &[u8]) -> Result<Verdict, Mismatch> {
    let bytes = &bytes[..bytes.len().min(MAX_INSN_LEN + 1)];
    let mut padded = bytes.to_vec();
    padded.resize(MAX_INSN_LEN + 1, 0x90);
    let theirs = reference(&padded)
        .filter(|i| matches!(i.mnemonic(), Mnemonic::In | Mnemonic::Out))
        // Only a padding byte as the port number is allowed (it is all that can follow).
        .filter(|i| i.len() <= bytes.len() + 1);
    match (io_insn_len(bytes), theirs) {
        (Some(len), Some(i)) if len == i.len() => Ok(Verdict::Agree),
        (None, None) => Ok(Verdict::NotAccess),
        (ours, theirs) => Err(mismatch(
            bytes,
            format!(
                "io_insn_len {ours:?}, reference {:?}",
                theirs.map(|i| (text(&i), i.len()))
            ),
        )),
    }
}
