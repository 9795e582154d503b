//! Decoding the guest instructions the backend must emulate: loads and stores that hit
//! unmapped guest-physical memory (MMIO), CSR instructions that trap, and `wfi`.
//!
//! Pure functions over instruction bits, tested on the host against the encodings of the
//! RISC-V unprivileged specification (RV64I loads/stores, the C extension's `c.lw`, `c.ld`,
//! `c.sw`, `c.sd`, `c.lwsp`, `c.ldsp`, `c.swsp`, `c.sdsp`, and Zcb's `c.lbu`, `c.lhu`,
//! `c.lh`, `c.sb`, `c.sh`). `decode-check/` (workspace root) also compares these decoders,
//! input by input, with the independent `raki` decoder, in `cargo xtask test` and in the
//! coverage-guided `cargo xtask fuzz riscv`.

use axvcpu::AccessWidth;

/// A decoded load or store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInsn {
    /// `true` for a load, `false` for a store.
    pub is_load: bool,
    /// The access width.
    pub width: AccessWidth,
    /// Whether a load sign-extends (`lb`, `lh`, `lw`, `c.lw`, `c.lh`); `false` for stores.
    pub signed: bool,
    /// The destination register (loads) or the data source register (stores), `x0..x31`.
    pub reg: usize,
    /// The instruction length in bytes (2 or 4).
    pub len: usize,
}

/// The length in bytes of the instruction whose low 16 bits are `low`.
pub const fn insn_len(low: u16) -> usize {
    if low & 3 == 3 {
        4
    } else {
        2
    }
}

const fn width_of(size_log2: u32) -> AccessWidth {
    match size_log2 {
        0 => AccessWidth::Byte,
        1 => AccessWidth::Word,
        2 => AccessWidth::Dword,
        _ => AccessWidth::Qword,
    }
}

/// Decodes a 32-bit load (`lb lh lw ld lbu lhu lwu`) or store (`sb sh sw sd`).
pub fn decode_mem32(insn: u32) -> Option<MemInsn> {
    let opcode = insn & 0x7f;
    let funct3 = (insn >> 12) & 7;
    match opcode {
        // LOAD
        0b000_0011 => {
            if funct3 == 7 {
                return None;
            }
            Some(MemInsn {
                is_load: true,
                width: width_of(funct3 & 3),
                signed: funct3 < 3, // lb, lh, lw; ld (3) needs no extension
                reg: ((insn >> 7) & 0x1f) as usize,
                len: 4,
            })
        }
        // STORE
        0b010_0011 => {
            if funct3 > 3 {
                return None;
            }
            Some(MemInsn {
                is_load: false,
                width: width_of(funct3),
                signed: false,
                reg: ((insn >> 20) & 0x1f) as usize,
                len: 4,
            })
        }
        _ => None,
    }
}

/// Decodes a 16-bit compressed load or store.
pub fn decode_mem16(insn: u16) -> Option<MemInsn> {
    let insn = insn as u32;
    let quadrant = insn & 3;
    let funct3 = (insn >> 13) & 7;
    let rd_prime = (((insn >> 2) & 7) + 8) as usize; // rd' / rs2' in bits 4:2
    let rd_full = ((insn >> 7) & 0x1f) as usize; // bits 11:7
    let rs2_full = ((insn >> 2) & 0x1f) as usize; // bits 6:2
    let load = |width, signed, reg| {
        Some(MemInsn {
            is_load: true,
            width,
            signed,
            reg,
            len: 2,
        })
    };
    let store = |width, reg| {
        Some(MemInsn {
            is_load: false,
            width,
            signed: false,
            reg,
            len: 2,
        })
    };
    match (quadrant, funct3) {
        (0, 0b010) => load(AccessWidth::Dword, true, rd_prime), // c.lw
        (0, 0b011) => load(AccessWidth::Qword, false, rd_prime), // c.ld (RV64)
        (0, 0b110) => store(AccessWidth::Dword, rd_prime),      // c.sw
        (0, 0b111) => store(AccessWidth::Qword, rd_prime),      // c.sd (RV64)
        (0, 0b100) => {
            // Zcb: funct6 = 100000 c.lbu, 100001 c.lhu (bit6=0)/c.lh (bit6=1),
            //      100010 c.sb, 100011 c.sh (bit6=0)
            let funct6 = (insn >> 10) & 0x3f;
            let bit6 = (insn >> 6) & 1;
            match (funct6, bit6) {
                (0b100_000, _) => load(AccessWidth::Byte, false, rd_prime),
                (0b100_001, 0) => load(AccessWidth::Word, false, rd_prime),
                (0b100_001, 1) => load(AccessWidth::Word, true, rd_prime),
                (0b100_010, _) => store(AccessWidth::Byte, rd_prime),
                (0b100_011, 0) => store(AccessWidth::Word, rd_prime),
                _ => None,
            }
        }
        (2, 0b010) if rd_full != 0 => load(AccessWidth::Dword, true, rd_full), // c.lwsp
        (2, 0b011) if rd_full != 0 => load(AccessWidth::Qword, false, rd_full), // c.ldsp
        (2, 0b110) => store(AccessWidth::Dword, rs2_full),                     // c.swsp
        (2, 0b111) => store(AccessWidth::Qword, rs2_full),                     // c.sdsp
        _ => None,
    }
}

/// Decodes the instruction whose bits are `insn` (the high half ignored for a 16-bit one).
pub fn decode_mem(insn: u32) -> Option<MemInsn> {
    if insn_len(insn as u16) == 4 {
        decode_mem32(insn)
    } else {
        decode_mem16(insn as u16)
    }
}

/// The address operands of a load or store [`decode_mem`] accepts: the base register and
/// the immediate offset, so `x[base] + offset` is the address the instruction accesses.
/// The backend compares it with the faulting address to spot an access that faulted part
/// way through (one that spans a page boundary).
pub fn mem_operands(insn: u32) -> Option<(usize, i64)> {
    decode_mem(insn)?;
    let bit = |n: u32| ((insn >> n) & 1) as i64;
    let bits = |hi: u32, lo: u32| ((insn >> lo) & ((1 << (hi - lo + 1)) - 1)) as i64;
    if insn_len(insn as u16) == 4 {
        let rs1 = bits(19, 15) as usize;
        let imm = if insn & 0x7f == 0b010_0011 {
            ((insn as i32 >> 25) << 5) as i64 | bits(11, 7) // S-type
        } else {
            (insn as i32 >> 20) as i64 // I-type
        };
        return Some((rs1, imm));
    }
    let rs1_prime = bits(9, 7) as usize + 8;
    let sp = 2;
    // Immediate layouts from the C extension's CL/CS/CI/CSS formats (and Zcb's CLB/CSB/CLH/CSH).
    Some(match (insn & 3, bits(15, 13)) {
        (0, 0b010) | (0, 0b110) => (
            rs1_prime,
            (bits(12, 10) << 3) | (bit(6) << 2) | (bit(5) << 6),
        ), // c.lw, c.sw
        (0, 0b011) | (0, 0b111) => (rs1_prime, (bits(12, 10) << 3) | (bits(6, 5) << 6)), // c.ld, c.sd
        (0, 0b100) if bits(11, 10) & 1 == 0 => (rs1_prime, (bit(5) << 1) | bit(6)), // c.lbu, c.sb
        (0, 0b100) => (rs1_prime, bit(5) << 1), // c.lhu, c.lh, c.sh
        (2, 0b010) => (sp, (bit(12) << 5) | (bits(6, 4) << 2) | (bits(3, 2) << 6)), // c.lwsp
        (2, 0b011) => (sp, (bit(12) << 5) | (bits(6, 5) << 3) | (bits(4, 2) << 6)), // c.ldsp
        (2, 0b110) => (sp, (bits(12, 9) << 2) | (bits(8, 7) << 6)), // c.swsp
        (2, 0b111) => (sp, (bits(12, 10) << 3) | (bits(9, 7) << 6)), // c.sdsp
        _ => return None,
    })
}

/// What `htinst` says about a guest-page fault (privileged spec, "Trap value registers").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Htinst {
    /// No information: the backend reads the instruction itself.
    None,
    /// A transformed load or store: the decoded access (length from bit 1).
    Transformed(u32),
    /// The fault happened on an implicit access of the guest's own (VS-stage) page-table
    /// walk: a pseudoinstruction, `write` says whether the walk wrote (A/D bits).
    PageTableWalk {
        /// Whether the implicit access was a write.
        write: bool,
    },
    /// A value the backend does not understand (custom instruction, reserved).
    Unknown(u64),
}

/// Classifies the value of `htinst` at a guest-page fault.
pub fn classify_htinst(htinst: u64) -> Htinst {
    match htinst {
        0 => Htinst::None,
        0x0000_2000 | 0x0000_3000 => Htinst::PageTableWalk { write: false },
        0x0000_2020 | 0x0000_3020 => Htinst::PageTableWalk { write: true },
        v if v & 1 == 1 && v >> 32 == 0 => {
            // Bit 1 clear marks a compressed original; setting it gives a valid 32-bit insn.
            Htinst::Transformed(v as u32)
        }
        v => Htinst::Unknown(v),
    }
}

/// The "address offset" field (bits 19:15, where `rs1` would be) of a transformed load or
/// store: how far past the start of the access the faulting address lies. Non-zero only
/// for a misaligned access that faulted part way through.
pub const fn transformed_addr_offset(tinst: u32) -> u64 {
    ((tinst >> 15) & 0x1f) as u64
}

/// Decodes a transformed instruction from `htinst` (see [`classify_htinst`]).
pub fn decode_transformed(tinst: u32) -> Option<MemInsn> {
    let len = if tinst & 2 != 0 { 4 } else { 2 };
    let mut m = decode_mem32(tinst | 2)?;
    m.len = len;
    Some(m)
}

/// The read-modify-write a CSR instruction performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrOp {
    /// `csrrw`/`csrrwi`: new = operand.
    Write,
    /// `csrrs`/`csrrsi`: new = old | operand.
    Set,
    /// `csrrc`/`csrrci`: new = old & !operand.
    Clear,
}

/// A decoded CSR instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsrInsn {
    /// The 12-bit CSR number.
    pub csr: u16,
    /// The operation.
    pub op: CsrOp,
    /// The destination register (0: the old value is not read, for `csrrw`).
    pub rd: usize,
    /// The source: a register number, or the 5-bit immediate.
    pub src: CsrSrc,
}

/// The source operand of a CSR instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrSrc {
    /// Register `x<n>`.
    Reg(usize),
    /// A zero-extended 5-bit immediate.
    Imm(u64),
}

impl CsrInsn {
    /// Whether the instruction reads the CSR (`csrrw` with `rd = x0` does not).
    pub fn reads(&self) -> bool {
        !(self.op == CsrOp::Write && self.rd == 0)
    }

    /// Whether the instruction writes the CSR (`csrrs`/`csrrc` with `x0` or immediate 0 do
    /// not).
    pub fn writes(&self) -> bool {
        match (self.op, self.src) {
            (CsrOp::Write, _) => true,
            (_, CsrSrc::Reg(0)) | (_, CsrSrc::Imm(0)) => false,
            _ => true,
        }
    }

    /// The value written, given the old value and the source operand's value.
    pub fn new_value(&self, old: u64, operand: u64) -> u64 {
        match self.op {
            CsrOp::Write => operand,
            CsrOp::Set => old | operand,
            CsrOp::Clear => old & !operand,
        }
    }
}

/// The 32-bit encoding of `wfi`.
pub const WFI: u32 = 0x1050_0073;

/// Decodes a Zicsr instruction.
pub fn decode_csr(insn: u32) -> Option<CsrInsn> {
    if insn & 0x7f != 0b111_0011 {
        return None;
    }
    let funct3 = (insn >> 12) & 7;
    let op = match funct3 & 3 {
        1 => CsrOp::Write,
        2 => CsrOp::Set,
        3 => CsrOp::Clear,
        _ => return None,
    };
    let field = (insn >> 15) & 0x1f;
    Some(CsrInsn {
        csr: (insn >> 20) as u16,
        op,
        rd: ((insn >> 7) & 0x1f) as usize,
        src: if funct3 & 4 != 0 {
            CsrSrc::Imm(field as u64)
        } else {
            CsrSrc::Reg(field as usize)
        },
    })
}

/// Whether `insn` is `sfence.vma` (any operands).
pub fn is_sfence_vma(insn: u32) -> bool {
    insn & 0xfe00_7fff == 0x1200_0073
}

#[cfg(test)]
mod tests {
    use super::*;
    use axvcpu::AccessWidth::*;

    // Encoders written from the spec's instruction formats, independent of the decoder.
    fn i_type(imm: i32, rs1: u32, funct3: u32, rd: u32, opcode: u32) -> u32 {
        ((imm as u32 & 0xfff) << 20) | (rs1 << 15) | (funct3 << 12) | (rd << 7) | opcode
    }
    fn s_type(imm: i32, rs2: u32, rs1: u32, funct3: u32, opcode: u32) -> u32 {
        let imm = imm as u32 & 0xfff;
        ((imm >> 5) << 25)
            | (rs2 << 20)
            | (rs1 << 15)
            | (funct3 << 12)
            | ((imm & 0x1f) << 7)
            | opcode
    }

    #[test]
    fn every_rv64i_load() {
        // (funct3, width, signed)  from the RV64I opcode map
        let table = [
            (0, Byte, true),   // lb
            (1, Word, true),   // lh
            (2, Dword, true),  // lw
            (3, Qword, false), // ld
            (4, Byte, false),  // lbu
            (5, Word, false),  // lhu
            (6, Dword, false), // lwu
        ];
        for (f3, width, signed) in table {
            for rd in [1u32, 5, 10, 31] {
                for (rs1, imm) in [(2u32, 0), (11, -8), (31, 2047)] {
                    let insn = i_type(imm, rs1, f3, rd, 0b000_0011);
                    assert_eq!(
                        decode_mem(insn),
                        Some(MemInsn {
                            is_load: true,
                            width,
                            signed,
                            reg: rd as usize,
                            len: 4
                        }),
                        "funct3 {f3} rd {rd} insn {insn:#x}"
                    );
                }
            }
        }
        assert_eq!(decode_mem32(i_type(0, 1, 7, 1, 0b000_0011)), None);
    }

    #[test]
    fn every_rv64i_store() {
        let table = [(0, Byte), (1, Word), (2, Dword), (3, Qword)]; // sb sh sw sd
        for (f3, width) in table {
            for rs2 in [0u32, 6, 15, 31] {
                let insn = s_type(-4, rs2, 10, f3, 0b010_0011);
                assert_eq!(
                    decode_mem(insn),
                    Some(MemInsn {
                        is_load: false,
                        width,
                        signed: false,
                        reg: rs2 as usize,
                        len: 4
                    })
                );
            }
        }
        for f3 in 4..8 {
            assert_eq!(decode_mem32(s_type(0, 1, 1, f3, 0b010_0011)), None);
        }
    }

    #[test]
    fn known_encodings_from_an_assembler() {
        // Cross-checked against `llvm-mc -triple=riscv64 -mattr=+c -show-encoding`.
        assert_eq!(decode_mem(0x0005_0583).unwrap().reg, 11); // lb a1, 0(a0)
        assert_eq!(
            decode_mem(0x0085_3603),
            Some(MemInsn {
                is_load: true,
                width: Qword,
                signed: false,
                reg: 12,
                len: 4
            })
        ); // ld a2, 8(a0)
        assert_eq!(
            decode_mem(0x00b5_3423),
            Some(MemInsn {
                is_load: false,
                width: Qword,
                signed: false,
                reg: 11,
                len: 4
            })
        ); // sd a1, 8(a0)
        assert_eq!(
            decode_mem(0x4108),
            Some(MemInsn {
                is_load: true,
                width: Dword,
                signed: true,
                reg: 10,
                len: 2
            })
        ); // c.lw a0, 0(a0)
        assert_eq!(
            decode_mem(0x6510),
            Some(MemInsn {
                is_load: true,
                width: Qword,
                signed: false,
                reg: 12,
                len: 2
            })
        ); // c.ld a2, 8(a0)
        assert_eq!(
            decode_mem(0xe50c),
            Some(MemInsn {
                is_load: false,
                width: Qword,
                signed: false,
                reg: 11,
                len: 2
            })
        ); // c.sd a1, 8(a0)
        assert_eq!(
            decode_mem(0x4502),
            Some(MemInsn {
                is_load: true,
                width: Dword,
                signed: true,
                reg: 10,
                len: 2
            })
        ); // c.lwsp a0, 0(sp)
        assert_eq!(
            decode_mem(0xe02e),
            Some(MemInsn {
                is_load: false,
                width: Qword,
                signed: false,
                reg: 11,
                len: 2
            })
        ); // c.sdsp a1, 0(sp)
    }

    // CL/CS format: funct3 | imm | rs1' | imm | rd'/rs2' | op
    fn c_ls(funct3: u32, rs1p: u32, rdp: u32, quadrant: u32) -> u16 {
        ((funct3 << 13) | (rs1p << 7) | (rdp << 2) | quadrant) as u16
    }

    #[test]
    fn compressed_register_loads_and_stores() {
        for rdp in 0..8u32 {
            let reg = rdp as usize + 8;
            let ld = |w, s| {
                Some(MemInsn {
                    is_load: true,
                    width: w,
                    signed: s,
                    reg,
                    len: 2,
                })
            };
            let st = |w| {
                Some(MemInsn {
                    is_load: false,
                    width: w,
                    signed: false,
                    reg,
                    len: 2,
                })
            };
            assert_eq!(decode_mem16(c_ls(0b010, 3, rdp, 0)), ld(Dword, true)); // c.lw
            assert_eq!(decode_mem16(c_ls(0b011, 3, rdp, 0)), ld(Qword, false)); // c.ld
            assert_eq!(decode_mem16(c_ls(0b110, 3, rdp, 0)), st(Dword)); // c.sw
            assert_eq!(decode_mem16(c_ls(0b111, 3, rdp, 0)), st(Qword)); // c.sd
                                                                         // with immediate bits set (bits 12:10 and 6:5)
            assert_eq!(
                decode_mem16(c_ls(0b011, 3, rdp, 0) | 0x1c60),
                ld(Qword, false)
            );
            // Zcb: c.lbu 100 000, c.lhu 100 001 (bit 6 = 0), c.lh (bit 6 = 1), c.sb, c.sh
            let zcb = |f6: u32, b6: u32| ((f6 << 10) | (1 << 7) | (b6 << 6) | (rdp << 2)) as u16;
            assert_eq!(decode_mem16(zcb(0b100_000, 0)), ld(Byte, false));
            assert_eq!(decode_mem16(zcb(0b100_001, 0)), ld(Word, false));
            assert_eq!(decode_mem16(zcb(0b100_001, 1)), ld(Word, true));
            assert_eq!(decode_mem16(zcb(0b100_010, 0)), st(Byte));
            assert_eq!(decode_mem16(zcb(0b100_011, 0)), st(Word));
        }
        // c.fld / c.fsd are not integer accesses
        assert_eq!(decode_mem16(c_ls(0b001, 0, 0, 0)), None);
        assert_eq!(decode_mem16(c_ls(0b101, 0, 0, 0)), None);
    }

    #[test]
    fn compressed_stack_pointer_loads_and_stores() {
        for r in 1..32u32 {
            let reg = r as usize;
            // CI format for c.lwsp/c.ldsp: funct3 | imm[5] | rd | imm | 10
            let ci = |f3: u32, imm_bits: u32| ((f3 << 13) | (r << 7) | imm_bits | 2) as u16;
            // CSS format for c.swsp/c.sdsp: funct3 | imm | rs2 | 10
            let css = |f3: u32, imm_bits: u32| ((f3 << 13) | imm_bits | (r << 2) | 2) as u16;
            for imm in [0u32, 0x1000 | 0x7c] {
                assert_eq!(
                    decode_mem16(ci(0b010, imm & 0x107c)),
                    Some(MemInsn {
                        is_load: true,
                        width: Dword,
                        signed: true,
                        reg,
                        len: 2
                    })
                );
                assert_eq!(
                    decode_mem16(ci(0b011, imm & 0x107c)),
                    Some(MemInsn {
                        is_load: true,
                        width: Qword,
                        signed: false,
                        reg,
                        len: 2
                    })
                );
                assert_eq!(
                    decode_mem16(css(0b110, (imm << 1) & 0x1f80)),
                    Some(MemInsn {
                        is_load: false,
                        width: Dword,
                        signed: false,
                        reg,
                        len: 2
                    })
                );
                assert_eq!(
                    decode_mem16(css(0b111, (imm << 1) & 0x1f80)),
                    Some(MemInsn {
                        is_load: false,
                        width: Qword,
                        signed: false,
                        reg,
                        len: 2
                    })
                );
            }
        }
        // rd = x0 is reserved for c.lwsp/c.ldsp
        assert_eq!(decode_mem16(((0b010 << 13) | 2) as u16), None);
        assert_eq!(decode_mem16(((0b011 << 13) | 2) as u16), None);
        // c.swsp with rs2 = x0 stores zero: valid
        assert!(decode_mem16(((0b110 << 13) | 2) as u16).is_some());
    }

    #[test]
    fn address_operands_of_loads_and_stores() {
        // Cross-checked against `llvm-mc -triple=riscv64 -mattr=+c -show-encoding`.
        let cases: [(u32, usize, i64); 11] = [
            (0x5ff4, 15, 124),       // c.lw a3, 124(a5)
            (0xc1e0, 11, 68),        // c.sw s0, 68(a1)
            (0x7cf8, 9, 248),        // c.ld a4, 248(s1)
            (0xe55c, 10, 136),       // c.sd a5, 136(a0)
            (0x537e, 2, 252),        // c.lwsp t1, 252(sp)
            (0x797e, 2, 504),        // c.ldsp s2, 504(sp)
            (0xc39e, 2, 196),        // c.swsp t2, 196(sp)
            (0xff4e, 2, 440),        // c.sdsp s3, 440(sp)
            (0x8004_a283, 9, -2048), // lw t0, -2048(s1)
            (0xff1f_bfa3, 31, -1),   // sd a7, -1(t6)
            (0x7e01_0fa3, 2, 2047),  // sb zero, 2047(sp)
        ];
        for (insn, base, offset) in cases {
            assert_eq!(mem_operands(insn), Some((base, offset)), "insn {insn:#x}");
        }
        // Zcb (not in that llvm-mc): CLB/CSB put uimm[0] in bit 6 and uimm[1] in bit 5;
        // CLH/CSH put uimm[1] in bit 5 (bit 6 tells c.lh from c.lhu).
        // rs1' = 5 (a3), rd'/rs2' = 3 (a1).
        let zcb =
            |f6: u32, b6: u32, b5: u32| (f6 << 10) | (5 << 7) | (b6 << 6) | (b5 << 5) | (3 << 2);
        assert_eq!(mem_operands(zcb(0b100_000, 1, 1)), Some((13, 3))); // c.lbu a1, 3(a3)
        assert_eq!(mem_operands(zcb(0b100_010, 1, 0)), Some((13, 1))); // c.sb a1, 1(a3)
        assert_eq!(mem_operands(zcb(0b100_001, 0, 1)), Some((13, 2))); // c.lhu a1, 2(a3)
        assert_eq!(mem_operands(zcb(0b100_001, 1, 1)), Some((13, 2))); // c.lh a1, 2(a3)
        assert_eq!(mem_operands(zcb(0b100_011, 0, 1)), Some((13, 2))); // c.sh a1, 2(a3)
                                                                       // Not a load or store: no operands.
        assert_eq!(mem_operands(WFI), None);
        assert_eq!(mem_operands(0), None);
    }

    #[test]
    fn transformed_instructions() {
        // lw a1, 0(x0) transformed from a 32-bit lw
        let lw = i_type(0, 0, 2, 11, 0b000_0011);
        assert_eq!(classify_htinst(lw as u64), Htinst::Transformed(lw));
        assert_eq!(decode_transformed(lw).unwrap().len, 4);
        // a c.lw a0 is reported as `lw a0` with bit 1 cleared
        let clw = i_type(0, 0, 2, 10, 0b000_0011) & !2;
        assert_eq!(classify_htinst(clw as u64), Htinst::Transformed(clw));
        assert_eq!(
            decode_transformed(clw),
            Some(MemInsn {
                is_load: true,
                width: Dword,
                signed: true,
                reg: 10,
                len: 2
            })
        );
        assert_eq!(
            classify_htinst(0x2000),
            Htinst::PageTableWalk { write: false }
        );
        assert_eq!(
            classify_htinst(0x3020),
            Htinst::PageTableWalk { write: true }
        );
        assert_eq!(classify_htinst(0), Htinst::None);
        // A misaligned load that faulted 4 bytes in: the offset sits where rs1 would be.
        assert_eq!(transformed_addr_offset(lw | (4 << 15)), 4);
        assert_eq!(transformed_addr_offset(lw), 0);
        // Custom or reserved values are not guessed at.
        assert_eq!(
            classify_htinst(0x1234_5678_0000_0003),
            Htinst::Unknown(0x1234_5678_0000_0003)
        );
        assert_eq!(classify_htinst(0x0000_4000), Htinst::Unknown(0x4000));
    }

    #[test]
    fn csr_instructions() {
        // csrr a0, cycle = csrrs a0, 0xc00, x0
        let c = decode_csr(0xc000_2573).unwrap();
        assert_eq!(
            c,
            CsrInsn {
                csr: 0xc00,
                op: CsrOp::Set,
                rd: 10,
                src: CsrSrc::Reg(0)
            }
        );
        assert!(c.reads() && !c.writes());
        // csrw satp, a1 = csrrw x0, satp, a1
        let w = decode_csr(0x1805_9073).unwrap();
        assert_eq!(
            w,
            CsrInsn {
                csr: 0x180,
                op: CsrOp::Write,
                rd: 0,
                src: CsrSrc::Reg(11)
            }
        );
        assert!(!w.reads() && w.writes());
        // csrrci a2, 0x140, 3
        let ci = decode_csr(i_type(0x140, 3, 7, 12, 0b111_0011)).unwrap();
        assert_eq!(ci.src, CsrSrc::Imm(3));
        assert_eq!(ci.new_value(0xff, 3), 0xfc);
        assert!(decode_csr(WFI).is_none());
        assert!(is_sfence_vma(0x1200_0073));
        assert!(is_sfence_vma(0x12b5_0073)); // sfence.vma a0, a1
        assert!(!is_sfence_vma(WFI));
    }
}
