//! Instruction decoding for MMIO and port-I/O exits whose instruction the hardware does not
//! describe (SVM without decode assists, as QEMU's is: no `NEXT_RIP`, no instruction bytes
//! in the VMCB): the length and operands of the `mov` forms that access memory, so a
//! backend can complete the access and move `rip` past it itself. Fetch the bytes with
//! [`paging::PagingRegs::fetch_insn`](crate::paging::PagingRegs::fetch_insn).
//!
//! Plain functions over instruction bytes, tested on any host (the 252 assembler-made
//! vectors are in `tests/decode_vectors.rs`), and compared input by input with `iced-x86`
//! by `decode-check/` (workspace root), in `cargo xtask test` and in the coverage-guided
//! `cargo xtask fuzz x86`.

use axvcpu::AccessWidth;

/// The register operand of a decoded access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegOperand {
    /// The general-purpose register, numbered as instructions encode it (0 = `rax`, ...).
    pub reg: usize,
    /// For byte accesses without a REX prefix, registers 4..8 are `ah, ch, dh, bh`: bits
    /// 8..16 of `rax, rcx, rdx, rbx` (`reg` is then 0..4 and `high_byte` is set).
    pub high_byte: bool,
}

/// What a memory-accessing instruction does, as far as MMIO emulation needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioInsn {
    /// A load of `width` bytes into `dst`, written as `dst_width` bytes (`movzx`/`movsx`
    /// widen), sign-extended if `signed`.
    Load {
        /// The memory access width.
        width: AccessWidth,
        /// The destination register.
        dst: RegOperand,
        /// The width of the register write.
        dst_width: AccessWidth,
        /// Whether the load sign-extends (`movsx`, `movsxd`).
        signed: bool,
    },
    /// A store of `width` bytes from a register.
    StoreReg {
        /// The memory access width.
        width: AccessWidth,
        /// The source register.
        src: RegOperand,
    },
    /// A store of `width` bytes of an immediate (already sign-extended to 64 bits).
    StoreImm {
        /// The memory access width.
        width: AccessWidth,
        /// The immediate.
        imm: u64,
    },
}

/// A decoded instruction: its length in bytes and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Length in bytes (prefixes included).
    pub len: usize,
    /// The access.
    pub insn: MmioInsn,
}

/// Why an instruction was not decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end before the instruction does.
    Truncated,
    /// Not one of the supported `mov` forms (or a register-only form, which cannot fault
    /// on memory).
    Unsupported,
}

/// The longest x86 instruction.
pub const MAX_INSN_LEN: usize = 15;

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.bytes.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        if self.pos > MAX_INSN_LEN {
            return Err(DecodeError::Unsupported);
        }
        Ok(b)
    }

    fn imm(&mut self, size: usize) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for i in 0..size {
            v |= u64::from(self.u8()?) << (8 * i);
        }
        Ok(v)
    }

    fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        for _ in 0..n {
            self.u8()?;
        }
        Ok(())
    }
}

/// Skips the ModRM memory operand (SIB, displacement); `Unsupported` for a register
/// operand (`mod` = 3). Returns the ModRM `reg` field.
fn modrm_mem(c: &mut Cursor<'_>) -> Result<u8, DecodeError> {
    let modrm = c.u8()?;
    let (md, reg, rm) = (modrm >> 6, (modrm >> 3) & 7, modrm & 7);
    if md == 3 {
        return Err(DecodeError::Unsupported);
    }
    let mut disp = match md {
        1 => 1,
        2 => 4,
        _ => 0,
    };
    if rm == 4 {
        let sib = c.u8()?;
        if md == 0 && sib & 7 == 5 {
            disp = 4;
        }
    } else if md == 0 && rm == 5 {
        // RIP-relative.
        disp = 4;
    }
    c.skip(disp)?;
    Ok(reg)
}

fn reg_operand(reg: u8, rex: u8, byte: bool) -> RegOperand {
    let r = usize::from(reg) | if rex & 4 != 0 { 8 } else { 0 };
    if byte && rex == 0 && (4..8).contains(&r) {
        RegOperand {
            reg: r - 4,
            high_byte: true,
        }
    } else {
        RegOperand {
            reg: r,
            high_byte: false,
        }
    }
}

/// Decodes the 64-bit-mode instruction at the start of `bytes`, one of: `mov r/m, r`
/// (`88`, `89`), `mov r, r/m` (`8a`, `8b`), `mov r/m, imm` (`c6 /0`, `c7 /0`), `mov` with a
/// 64-bit absolute address (`a0`..`a3`), `movzx` (`0f b6`, `0f b7`), `movsx` (`0f be`,
/// `0f bf`), `movsxd` (`63`), with legacy prefixes (`66`, `67`, segment overrides, `f2`,
/// `f3`) and REX (the last one, if nothing but the opcode follows it). `lock` (`f0`) is
/// refused: it makes a `mov` #UD.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let mut c = Cursor { bytes, pos: 0 };
    let mut opsize16 = false;
    let mut addr32 = false;
    // A REX prefix counts only right before the opcode: a legacy prefix after it cancels it.
    let mut rex = 0u8;
    let mut op = c.u8()?;
    loop {
        match op {
            0x66 => opsize16 = true,
            0x67 => addr32 = true,
            0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0xf2 | 0xf3 => {}
            // `lock mov` is #UD: the access never happens.
            0xf0 => return Err(DecodeError::Unsupported),
            0x40..=0x4f => {
                rex = op;
                op = c.u8()?;
                continue;
            }
            _ => break,
        }
        rex = 0;
        op = c.u8()?;
    }
    let rex_w = rex & 8 != 0;
    let wide = if rex_w {
        AccessWidth::Qword
    } else if opsize16 {
        AccessWidth::Word
    } else {
        AccessWidth::Dword
    };
    let insn = match op {
        0x88..=0x8b => {
            let byte = op & 1 == 0;
            let reg = reg_operand(modrm_mem(&mut c)?, rex, byte);
            let width = if byte { AccessWidth::Byte } else { wide };
            if op & 2 == 0 {
                MmioInsn::StoreReg { width, src: reg }
            } else {
                MmioInsn::Load {
                    width,
                    dst: reg,
                    dst_width: width,
                    signed: false,
                }
            }
        }
        0xc6 | 0xc7 => {
            if modrm_mem(&mut c)? != 0 {
                return Err(DecodeError::Unsupported);
            }
            let width = if op == 0xc6 { AccessWidth::Byte } else { wide };
            let imm_size = width.size().min(4);
            let raw = c.imm(imm_size)?;
            let imm =
                AccessWidth::from_size(imm_size).map_or(raw, |w| w.sign_extend(raw)) & width.mask();
            MmioInsn::StoreImm { width, imm }
        }
        0xa0..=0xa3 => {
            c.skip(if addr32 { 4 } else { 8 })?;
            let byte = op & 1 == 0;
            let width = if byte { AccessWidth::Byte } else { wide };
            let reg = RegOperand {
                reg: 0,
                high_byte: false,
            };
            if op & 2 == 0 {
                MmioInsn::Load {
                    width,
                    dst: reg,
                    dst_width: width,
                    signed: false,
                }
            } else {
                MmioInsn::StoreReg { width, src: reg }
            }
        }
        0x63 => {
            let dst = reg_operand(modrm_mem(&mut c)?, rex, false);
            MmioInsn::Load {
                width: if rex_w { AccessWidth::Dword } else { wide },
                dst,
                dst_width: wide,
                signed: rex_w,
            }
        }
        0x0f => {
            let op2 = c.u8()?;
            let (width, signed) = match op2 {
                0xb6 => (AccessWidth::Byte, false),
                0xb7 => (AccessWidth::Word, false),
                0xbe => (AccessWidth::Byte, true),
                0xbf => (AccessWidth::Word, true),
                _ => return Err(DecodeError::Unsupported),
            };
            let dst = reg_operand(modrm_mem(&mut c)?, rex, false);
            MmioInsn::Load {
                width,
                dst,
                dst_width: wide,
                signed,
            }
        }
        _ => return Err(DecodeError::Unsupported),
    };
    Ok(Decoded { len: c.pos, insn })
}

/// The value of register `reg` after writing `value` (already extended to `width`) into it
/// with an instruction whose destination is `width` bytes: 32-bit writes zero-extend, 8-
/// and 16-bit writes keep the rest, `high_byte` writes bits 8..16.
pub fn merge_reg(old: u64, value: u64, width: AccessWidth, high_byte: bool) -> u64 {
    if high_byte {
        return (old & !0xff00) | ((value & 0xff) << 8);
    }
    match width {
        AccessWidth::Byte | AccessWidth::Word => (old & !width.mask()) | (value & width.mask()),
        AccessWidth::Dword => value & 0xffff_ffff,
        AccessWidth::Qword => value,
    }
}

/// What a register operand holds as `width` bytes of store data (zero-extended).
pub fn reg_value(full: u64, op: RegOperand, width: AccessWidth) -> u64 {
    let v = if op.high_byte { full >> 8 } else { full };
    v & width.mask()
}

/// The value `complete_read(value)` writes into the destination of `insn`'s load:
/// `value` truncated to the access width, then zero- or sign-extended.
pub fn load_value(value: u64, width: AccessWidth, signed: bool) -> u64 {
    if signed {
        width.sign_extend(value)
    } else {
        value & width.mask()
    }
}

/// The length of an `in`/`out` instruction at the start of `bytes` (`e4`..`e7` with an
/// 8-bit port are 2 bytes, `ec`..`ef` are 1, plus prefixes); `None` for anything else,
/// string forms included, and for what the CPU would not execute: a `lock` prefix (`#UD`)
/// or more than [`MAX_INSN_LEN`] bytes. The port byte need not be in `bytes`.
pub fn io_insn_len(bytes: &[u8]) -> Option<usize> {
    let mut len = 0;
    for &b in bytes.iter().take(MAX_INSN_LEN) {
        len += 1;
        match b {
            0x66 | 0x67 | 0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0xf2 | 0xf3 => {}
            0x40..=0x4f => {}
            0xe4..=0xe7 => return (len < MAX_INSN_LEN).then_some(len + 1),
            0xec..=0xef => return Some(len),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use AccessWidth::*;

    fn reg(r: usize) -> RegOperand {
        RegOperand {
            reg: r,
            high_byte: false,
        }
    }

    fn load(width: AccessWidth, r: usize, dst_width: AccessWidth, signed: bool) -> MmioInsn {
        MmioInsn::Load {
            width,
            dst: reg(r),
            dst_width,
            signed,
        }
    }

    #[test]
    fn the_contract_programs_decode() {
        // movzx ecx, byte ptr [rbx]
        assert_eq!(
            decode(&[0x0f, 0xb6, 0x0b]),
            Ok(Decoded {
                len: 3,
                insn: load(Byte, 1, Dword, false)
            })
        );
        // movzx edx, word ptr [rbx + 8]
        assert_eq!(
            decode(&[0x0f, 0xb7, 0x53, 0x08]),
            Ok(Decoded {
                len: 4,
                insn: load(Word, 2, Dword, false)
            })
        );
        // mov esi, dword ptr [rbx + 0x10]
        assert_eq!(
            decode(&[0x8b, 0x73, 0x10]),
            Ok(Decoded {
                len: 3,
                insn: load(Dword, 6, Dword, false)
            })
        );
        // mov r8, qword ptr [rbx + 0x18]
        assert_eq!(
            decode(&[0x4c, 0x8b, 0x43, 0x18]),
            Ok(Decoded {
                len: 4,
                insn: load(Qword, 8, Qword, false)
            })
        );
        // movsx r9, byte ptr [rbx + 0x20]
        assert_eq!(
            decode(&[0x4c, 0x0f, 0xbe, 0x4b, 0x20]),
            Ok(Decoded {
                len: 5,
                insn: load(Byte, 9, Qword, true)
            })
        );
        // movsx r10, word ptr [rbx + 0x28]
        assert_eq!(
            decode(&[0x4c, 0x0f, 0xbf, 0x53, 0x28]),
            Ok(Decoded {
                len: 5,
                insn: load(Word, 10, Qword, true)
            })
        );
        // movsxd r11, dword ptr [rbx + 0x30]
        assert_eq!(
            decode(&[0x4c, 0x63, 0x5b, 0x30]),
            Ok(Decoded {
                len: 4,
                insn: load(Dword, 11, Qword, true)
            })
        );
        // mov byte ptr [rbx], 0xa5
        assert_eq!(
            decode(&[0xc6, 0x03, 0xa5]),
            Ok(Decoded {
                len: 3,
                insn: MmioInsn::StoreImm {
                    width: Byte,
                    imm: 0xa5
                }
            })
        );
        // mov word ptr [rbx + 8], 0xbeef
        assert_eq!(
            decode(&[0x66, 0xc7, 0x43, 0x08, 0xef, 0xbe]),
            Ok(Decoded {
                len: 6,
                insn: MmioInsn::StoreImm {
                    width: Word,
                    imm: 0xbeef
                }
            })
        );
        // mov dword ptr [rbx + 16], 0xdeadbeef
        assert_eq!(
            decode(&[0xc7, 0x43, 0x10, 0xef, 0xbe, 0xad, 0xde]),
            Ok(Decoded {
                len: 7,
                insn: MmioInsn::StoreImm {
                    width: Dword,
                    imm: 0xdead_beef
                }
            })
        );
        // mov qword ptr [rbx + 24], rax
        assert_eq!(
            decode(&[0x48, 0x89, 0x43, 0x18]),
            Ok(Decoded {
                len: 4,
                insn: MmioInsn::StoreReg {
                    width: Qword,
                    src: reg(0)
                }
            })
        );
        // mov dword ptr [rbx + 0x300], eax (ICR)
        assert_eq!(
            decode(&[0x89, 0x83, 0x00, 0x03, 0x00, 0x00]),
            Ok(Decoded {
                len: 6,
                insn: MmioInsn::StoreReg {
                    width: Dword,
                    src: reg(0)
                }
            })
        );
    }

    #[test]
    fn addressing_forms_have_their_lengths() {
        // mov eax, [rip + disp32]
        assert_eq!(decode(&[0x8b, 0x05, 1, 2, 3, 4]).map(|d| d.len), Ok(6));
        // mov eax, [rsp] (SIB)
        assert_eq!(decode(&[0x8b, 0x04, 0x24]).map(|d| d.len), Ok(3));
        // mov eax, [disp32] via SIB with no base
        assert_eq!(
            decode(&[0x8b, 0x04, 0x25, 1, 2, 3, 4]).map(|d| d.len),
            Ok(7)
        );
        // mov eax, [rax + rcx*4 + disp8]
        assert_eq!(decode(&[0x8b, 0x44, 0x88, 0x10]).map(|d| d.len), Ok(4));
        // mov eax, [rax + disp32]
        assert_eq!(decode(&[0x8b, 0x80, 1, 2, 3, 4]).map(|d| d.len), Ok(6));
        // mov al, [moffs64]
        assert_eq!(
            decode(&[0xa0, 0, 0, 0, 0xd0, 0, 0, 0, 0]).map(|d| d.len),
            Ok(9)
        );
        // mov qword ptr [rbx], imm32 sign-extended
        assert_eq!(
            decode(&[0x48, 0xc7, 0x03, 0xff, 0xff, 0xff, 0xff]),
            Ok(Decoded {
                len: 7,
                insn: MmioInsn::StoreImm {
                    width: Qword,
                    imm: u64::MAX
                }
            })
        );
        // segment override + 67
        assert_eq!(decode(&[0x65, 0x67, 0x8b, 0x00]).map(|d| d.len), Ok(4));
    }

    #[test]
    fn byte_registers_follow_rex() {
        // mov byte ptr [rbx], ah  (no REX: reg 4 = ah)
        assert_eq!(
            decode(&[0x88, 0x23]).map(|d| d.insn),
            Ok(MmioInsn::StoreReg {
                width: Byte,
                src: RegOperand {
                    reg: 0,
                    high_byte: true
                }
            })
        );
        // mov byte ptr [rbx], spl (REX: reg 4 = spl)
        assert_eq!(
            decode(&[0x40, 0x88, 0x23]).map(|d| d.insn),
            Ok(MmioInsn::StoreReg {
                width: Byte,
                src: reg(4)
            })
        );
        // mov r15b, [rbx]
        assert_eq!(
            decode(&[0x44, 0x8a, 0x3b]).map(|d| d.insn),
            Ok(load(Byte, 15, Byte, false))
        );
    }

    #[test]
    fn everything_else_is_refused() {
        assert_eq!(decode(&[]), Err(DecodeError::Truncated));
        assert_eq!(decode(&[0x8b]), Err(DecodeError::Truncated));
        assert_eq!(decode(&[0x8b, 0x80, 1, 2]), Err(DecodeError::Truncated));
        assert_eq!(decode(&[0xc7, 0x03, 1, 2]), Err(DecodeError::Truncated));
        // register-only form
        assert_eq!(decode(&[0x89, 0xc0]), Err(DecodeError::Unsupported));
        // c7 /1 is not mov
        assert_eq!(
            decode(&[0xc7, 0x08, 0, 0, 0, 0]),
            Err(DecodeError::Unsupported)
        );
        // add, stos, a 0f that is not movzx/movsx
        assert_eq!(decode(&[0x01, 0x03]), Err(DecodeError::Unsupported));
        assert_eq!(decode(&[0xab]), Err(DecodeError::Unsupported));
        assert_eq!(decode(&[0x0f, 0x05]), Err(DecodeError::Unsupported));
        // 15 prefixes: too long
        assert_eq!(decode(&[0x66; 16]), Err(DecodeError::Unsupported));
    }

    /// Found by the comparison with iced-x86 (decode-check).
    #[test]
    fn prefixes_as_the_cpu_reads_them() {
        // lock mov [rax], al is #UD, not a store.
        assert_eq!(decode(&[0xf0, 0x88, 0x00]), Err(DecodeError::Unsupported));
        assert_eq!(
            decode(&[0x48, 0xf0, 0x89, 0x00]),
            Err(DecodeError::Unsupported)
        );
        // A REX followed by a legacy prefix is ignored: 48 66 8b 00 is mov ax, [rax].
        assert_eq!(
            decode(&[0x48, 0x66, 0x8b, 0x00]),
            Ok(Decoded {
                len: 4,
                insn: load(Word, 0, Word, false)
            })
        );
        // Of two REX prefixes the last counts: 4c 40 8a 20 is mov spl, [rax], not r12b.
        assert_eq!(
            decode(&[0x4c, 0x40, 0x8a, 0x20]).map(|d| d.insn),
            Ok(load(Byte, 4, Byte, false))
        );
        // ... and 40 48 89 00 is mov [rax], rax.
        assert_eq!(
            decode(&[0x40, 0x48, 0x89, 0x00]).map(|d| d.insn),
            Ok(MmioInsn::StoreReg {
                width: Qword,
                src: reg(0)
            })
        );
    }

    #[test]
    fn register_writes_merge_as_x86_does() {
        let old = 0x1111_1111_1111_1111;
        assert_eq!(merge_reg(old, 0xff, Byte, false), 0x1111_1111_1111_11ff);
        assert_eq!(merge_reg(old, 0xffff, Word, false), 0x1111_1111_1111_ffff);
        assert_eq!(merge_reg(old, u64::MAX, Dword, false), 0xffff_ffff);
        assert_eq!(merge_reg(old, 5, Qword, false), 5);
        assert_eq!(merge_reg(old, 0xab, Byte, true), 0x1111_1111_1111_ab11);
        assert_eq!(
            load_value(0xf1e2_d3c4_b5a6_9788, Byte, true),
            0xffff_ffff_ffff_ff88
        );
        assert_eq!(load_value(0xf1e2_d3c4_b5a6_9788, Word, false), 0x9788);
        assert_eq!(
            reg_value(
                0xabcd,
                RegOperand {
                    reg: 0,
                    high_byte: true
                },
                Byte
            ),
            0xab
        );
    }

    #[test]
    fn io_lengths() {
        assert_eq!(io_insn_len(&[0xe6, 0xe0]), Some(2));
        assert_eq!(io_insn_len(&[0x66, 0xe7, 0xe2]), Some(3));
        assert_eq!(io_insn_len(&[0xee]), Some(1));
        assert_eq!(io_insn_len(&[0x66, 0xef]), Some(2));
        assert_eq!(io_insn_len(&[0x6e]), None);
        // Found by the comparison with iced-x86 (decode-check): `lock in`/`lock out` are
        // #UD, and 14 prefixes before `in al, imm8` make 16 bytes.
        assert_eq!(io_insn_len(&[0xf0, 0xe4, 0x60]), None);
        assert_eq!(io_insn_len(&[0xf0, 0xec]), None);
        let mut long = [0x66u8; 16];
        long[14] = 0xe4;
        assert_eq!(io_insn_len(&long), None);
        long[13] = 0xe4;
        assert_eq!(io_insn_len(&long), Some(15));
        assert_eq!(io_insn_len(&[]), None);
    }
}
