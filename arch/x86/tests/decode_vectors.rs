//! Decoder test vectors: each instruction assembled with GNU as (`as --64`, Intel
//! syntax) and split by `objdump -d`, with what the decoder must report for it.

use axvcpu::AccessWidth;
use axvcpu_x86::decode::{decode, DecodeError, Decoded, MmioInsn, RegOperand};

/// 252 instructions assembled by GNU as: every register as source and destination of
/// each width, the high-byte registers, immediates, `movzx`/`movsx`/`movsxd` to each
/// width, the 64-bit absolute forms, and SIB, RIP-relative, disp8/disp32, segment and
/// address-size prefixes. Each decodes to its length and meaning, also followed by
/// other bytes, and each of its strict prefixes is `Truncated`.
#[test]
fn assembler_vectors_decode() {
    assert_eq!(VECTORS.len(), 252);
    for v in VECTORS {
        let want = Ok(Decoded {
            len: v.bytes.len(),
            insn: v.insn,
        });
        assert_eq!(decode(v.bytes), want, "{}", v.text);
        let mut longer = v.bytes.to_vec();
        longer.extend_from_slice(&[0x90; 8]);
        assert_eq!(decode(&longer), want, "{} + nops", v.text);
        for cut in 0..v.bytes.len() {
            assert_eq!(
                decode(&v.bytes[..cut]),
                Err(DecodeError::Truncated),
                "{} cut at {cut}",
                v.text
            );
        }
    }
}

struct Vector {
    text: &'static str,
    bytes: &'static [u8],
    insn: MmioInsn,
}

const fn reg(reg: usize, high_byte: bool) -> RegOperand {
    RegOperand { reg, high_byte }
}

const VECTORS: &[Vector] = &[
    Vector {
        text: "mov byte ptr [r8+r15*8-0x80], al",
        bytes: &[0x43, 0x88, 0x44, 0xf8, 0x80],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Byte,
            src: reg(0, false),
        },
    },
    Vector {
        text: "mov al, byte ptr [r8+r15*8-0x80]",
        bytes: &[0x43, 0x8a, 0x44, 0xf8, 0x80],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(0, false),
            dst_width: AccessWidth::Byte,
            signed: false,
        },
    },
    Vector {
        text: "mov byte ptr [rsp+0x12345], cl",
        bytes: &[0x88, 0x8c, 0x24, 0x45, 0x23, 0x01, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Byte,
            src: reg(1, false),
        },
    },
    Vector {
        text: "mov cl, byte ptr [rsp+0x12345]",
        bytes: &[0x8a, 0x8c, 0x24, 0x45, 0x23, 0x01, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(1, false),
            dst_width: AccessWidth::Byte,
            signed: false,
        },
    },
    Vector {
        text: "mov byte ptr [0x1000], dl",
        bytes: &[0x88, 0x14, 0x25, 0x00, 0x10, 0x00, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Byte,
            src: reg(2, false),
        },
    },
    Vector {
        text: "mov dl, byte ptr [0x1000]",
        bytes: &[0x8a, 0x14, 0x25, 0x00, 0x10, 0x00, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(2, false),
            dst_width: AccessWidth::Byte,
            signed: false,
        },
    },
    Vector {
        text: "mov byte ptr [rbx+rdx], bl",
        bytes: &[0x88, 0x1c, 0x13],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Byte,
            src: reg(3, false),
        },
    },
    Vector {
        text: "mov bl, byte ptr [rbx+rdx]",
        bytes: &[0x8a, 0x1c, 0x13],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(3, false),
            dst_width: AccessWidth::Byte,
            signed: false,
        },
    },
    Vector {
        text: "mov byte ptr fs:[rax], spl",
        bytes: &[0x64, 0x40, 0x88, 0x20],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Byte,
            src: reg(4, false),
        },
    },
    Vector {
        text: "mov spl, byte ptr fs:[rax]",
        bytes: &[0x64, 0x40, 0x8a, 0x20],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(4, false),
            dst_width: AccessWidth::Byte,
            signed: false,
        },
    },
    Vector {
        text: "mov byte ptr [eax], bpl",
        bytes: &[0x67, 0x40, 0x88, 0x28],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Byte,
            src: reg(5, false),
        },
    },
    Vector {
        text: "mov bpl, byte ptr [eax]",
        bytes: &[0x67, 0x40, 0x8a, 0x28],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(5, false),
            dst_width: AccessWidth::Byte,
            signed: false,
        },
    },
    Vector {
        text: "mov byte ptr [rax], sil",
        bytes: &[0x40, 0x88, 0x30],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Byte,
            src: reg(6, false),
        },
    },
    Vector {
        text: "mov sil, byte ptr [rax]",
        bytes: &[0x40, 0x8a, 0x30],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(6, false),
            dst_width: AccessWidth::Byte,
            signed: false,
        },
    },
    Vector {
        text: "mov byte ptr [rbx+8], dil",
        bytes: &[0x40, 0x88, 0x7b, 0x08],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Byte,
            src: reg(7, false),
        },
    },
    Vector {
        text: "mov dil, byte ptr [rbx+8]",
        bytes: &[0x40, 0x8a, 0x7b, 0x08],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(7, false),
            dst_width: AccessWidth::Byte,
            signed: false,
        },
    },
    Vector {
        text: "mov byte ptr [rsp], r8b",
        bytes: &[0x44, 0x88, 0x04, 0x24],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Byte,
            src: reg(8, false),
        },
    },
    Vector {
        text: "mov r8b, byte ptr [rsp]",
        bytes: &[0x44, 0x8a, 0x04, 0x24],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(8, false),
            dst_width: AccessWidth::Byte,
            signed: false,
        },
    },
    Vector {
        text: "mov byte ptr [rbp], r9b",
        bytes: &[0x44, 0x88, 0x4d, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Byte,
            src: reg(9, false),
        },
    },
    Vector {
        text: "mov r9b, byte ptr [rbp]",
        bytes: &[0x44, 0x8a, 0x4d, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(9, false),
            dst_width: AccessWidth::Byte,
            signed: false,
        },
    },
    Vector {
        text: "mov byte ptr [r12], r10b",
        bytes: &[0x45, 0x88, 0x14, 0x24],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Byte,
            src: reg(10, false),
        },
    },
    Vector {
        text: "mov r10b, byte ptr [r12]",
        bytes: &[0x45, 0x8a, 0x14, 0x24],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(10, false),
            dst_width: AccessWidth::Byte,
            signed: false,
        },
    },
    Vector {
        text: "mov byte ptr [r13], r11b",
        bytes: &[0x45, 0x88, 0x5d, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Byte,
            src: reg(11, false),
        },
    },
    Vector {
        text: "mov r11b, byte ptr [r13]",
        bytes: &[0x45, 0x8a, 0x5d, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(11, false),
            dst_width: AccessWidth::Byte,
            signed: false,
        },
    },
    Vector {
        text: "mov byte ptr [rip+0x1234], r12b",
        bytes: &[0x44, 0x88, 0x25, 0x34, 0x12, 0x00, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Byte,
            src: reg(12, false),
        },
    },
    Vector {
        text: "mov r12b, byte ptr [rip+0x1234]",
        bytes: &[0x44, 0x8a, 0x25, 0x34, 0x12, 0x00, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(12, false),
            dst_width: AccessWidth::Byte,
            signed: false,
        },
    },
    Vector {
        text: "mov byte ptr [rax+rcx*4+0x10], r13b",
        bytes: &[0x44, 0x88, 0x6c, 0x88, 0x10],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Byte,
            src: reg(13, false),
        },
    },
    Vector {
        text: "mov r13b, byte ptr [rax+rcx*4+0x10]",
        bytes: &[0x44, 0x8a, 0x6c, 0x88, 0x10],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(13, false),
            dst_width: AccessWidth::Byte,
            signed: false,
        },
    },
    Vector {
        text: "mov byte ptr [r8+r15*8-0x80], r14b",
        bytes: &[0x47, 0x88, 0x74, 0xf8, 0x80],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Byte,
            src: reg(14, false),
        },
    },
    Vector {
        text: "mov r14b, byte ptr [r8+r15*8-0x80]",
        bytes: &[0x47, 0x8a, 0x74, 0xf8, 0x80],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(14, false),
            dst_width: AccessWidth::Byte,
            signed: false,
        },
    },
    Vector {
        text: "mov byte ptr [rsp+0x12345], r15b",
        bytes: &[0x44, 0x88, 0xbc, 0x24, 0x45, 0x23, 0x01, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Byte,
            src: reg(15, false),
        },
    },
    Vector {
        text: "mov r15b, byte ptr [rsp+0x12345]",
        bytes: &[0x44, 0x8a, 0xbc, 0x24, 0x45, 0x23, 0x01, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(15, false),
            dst_width: AccessWidth::Byte,
            signed: false,
        },
    },
    Vector {
        text: "mov word ptr [rsp], ax",
        bytes: &[0x66, 0x89, 0x04, 0x24],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Word,
            src: reg(0, false),
        },
    },
    Vector {
        text: "mov ax, word ptr [rsp]",
        bytes: &[0x66, 0x8b, 0x04, 0x24],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(0, false),
            dst_width: AccessWidth::Word,
            signed: false,
        },
    },
    Vector {
        text: "mov word ptr [rbp], cx",
        bytes: &[0x66, 0x89, 0x4d, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Word,
            src: reg(1, false),
        },
    },
    Vector {
        text: "mov cx, word ptr [rbp]",
        bytes: &[0x66, 0x8b, 0x4d, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(1, false),
            dst_width: AccessWidth::Word,
            signed: false,
        },
    },
    Vector {
        text: "mov word ptr [r12], dx",
        bytes: &[0x66, 0x41, 0x89, 0x14, 0x24],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Word,
            src: reg(2, false),
        },
    },
    Vector {
        text: "mov dx, word ptr [r12]",
        bytes: &[0x66, 0x41, 0x8b, 0x14, 0x24],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(2, false),
            dst_width: AccessWidth::Word,
            signed: false,
        },
    },
    Vector {
        text: "mov word ptr [r13], bx",
        bytes: &[0x66, 0x41, 0x89, 0x5d, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Word,
            src: reg(3, false),
        },
    },
    Vector {
        text: "mov bx, word ptr [r13]",
        bytes: &[0x66, 0x41, 0x8b, 0x5d, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(3, false),
            dst_width: AccessWidth::Word,
            signed: false,
        },
    },
    Vector {
        text: "mov word ptr [rip+0x1234], sp",
        bytes: &[0x66, 0x89, 0x25, 0x34, 0x12, 0x00, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Word,
            src: reg(4, false),
        },
    },
    Vector {
        text: "mov sp, word ptr [rip+0x1234]",
        bytes: &[0x66, 0x8b, 0x25, 0x34, 0x12, 0x00, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(4, false),
            dst_width: AccessWidth::Word,
            signed: false,
        },
    },
    Vector {
        text: "mov word ptr [rax+rcx*4+0x10], bp",
        bytes: &[0x66, 0x89, 0x6c, 0x88, 0x10],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Word,
            src: reg(5, false),
        },
    },
    Vector {
        text: "mov bp, word ptr [rax+rcx*4+0x10]",
        bytes: &[0x66, 0x8b, 0x6c, 0x88, 0x10],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(5, false),
            dst_width: AccessWidth::Word,
            signed: false,
        },
    },
    Vector {
        text: "mov word ptr [r8+r15*8-0x80], si",
        bytes: &[0x66, 0x43, 0x89, 0x74, 0xf8, 0x80],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Word,
            src: reg(6, false),
        },
    },
    Vector {
        text: "mov si, word ptr [r8+r15*8-0x80]",
        bytes: &[0x66, 0x43, 0x8b, 0x74, 0xf8, 0x80],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(6, false),
            dst_width: AccessWidth::Word,
            signed: false,
        },
    },
    Vector {
        text: "mov word ptr [rsp+0x12345], di",
        bytes: &[0x66, 0x89, 0xbc, 0x24, 0x45, 0x23, 0x01, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Word,
            src: reg(7, false),
        },
    },
    Vector {
        text: "mov di, word ptr [rsp+0x12345]",
        bytes: &[0x66, 0x8b, 0xbc, 0x24, 0x45, 0x23, 0x01, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(7, false),
            dst_width: AccessWidth::Word,
            signed: false,
        },
    },
    Vector {
        text: "mov word ptr [0x1000], r8w",
        bytes: &[0x66, 0x44, 0x89, 0x04, 0x25, 0x00, 0x10, 0x00, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Word,
            src: reg(8, false),
        },
    },
    Vector {
        text: "mov r8w, word ptr [0x1000]",
        bytes: &[0x66, 0x44, 0x8b, 0x04, 0x25, 0x00, 0x10, 0x00, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(8, false),
            dst_width: AccessWidth::Word,
            signed: false,
        },
    },
    Vector {
        text: "mov word ptr [rbx+rdx], r9w",
        bytes: &[0x66, 0x44, 0x89, 0x0c, 0x13],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Word,
            src: reg(9, false),
        },
    },
    Vector {
        text: "mov r9w, word ptr [rbx+rdx]",
        bytes: &[0x66, 0x44, 0x8b, 0x0c, 0x13],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(9, false),
            dst_width: AccessWidth::Word,
            signed: false,
        },
    },
    Vector {
        text: "mov word ptr fs:[rax], r10w",
        bytes: &[0x64, 0x66, 0x44, 0x89, 0x10],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Word,
            src: reg(10, false),
        },
    },
    Vector {
        text: "mov r10w, word ptr fs:[rax]",
        bytes: &[0x64, 0x66, 0x44, 0x8b, 0x10],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(10, false),
            dst_width: AccessWidth::Word,
            signed: false,
        },
    },
    Vector {
        text: "mov word ptr [eax], r11w",
        bytes: &[0x67, 0x66, 0x44, 0x89, 0x18],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Word,
            src: reg(11, false),
        },
    },
    Vector {
        text: "mov r11w, word ptr [eax]",
        bytes: &[0x67, 0x66, 0x44, 0x8b, 0x18],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(11, false),
            dst_width: AccessWidth::Word,
            signed: false,
        },
    },
    Vector {
        text: "mov word ptr [rax], r12w",
        bytes: &[0x66, 0x44, 0x89, 0x20],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Word,
            src: reg(12, false),
        },
    },
    Vector {
        text: "mov r12w, word ptr [rax]",
        bytes: &[0x66, 0x44, 0x8b, 0x20],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(12, false),
            dst_width: AccessWidth::Word,
            signed: false,
        },
    },
    Vector {
        text: "mov word ptr [rbx+8], r13w",
        bytes: &[0x66, 0x44, 0x89, 0x6b, 0x08],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Word,
            src: reg(13, false),
        },
    },
    Vector {
        text: "mov r13w, word ptr [rbx+8]",
        bytes: &[0x66, 0x44, 0x8b, 0x6b, 0x08],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(13, false),
            dst_width: AccessWidth::Word,
            signed: false,
        },
    },
    Vector {
        text: "mov word ptr [rsp], r14w",
        bytes: &[0x66, 0x44, 0x89, 0x34, 0x24],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Word,
            src: reg(14, false),
        },
    },
    Vector {
        text: "mov r14w, word ptr [rsp]",
        bytes: &[0x66, 0x44, 0x8b, 0x34, 0x24],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(14, false),
            dst_width: AccessWidth::Word,
            signed: false,
        },
    },
    Vector {
        text: "mov word ptr [rbp], r15w",
        bytes: &[0x66, 0x44, 0x89, 0x7d, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Word,
            src: reg(15, false),
        },
    },
    Vector {
        text: "mov r15w, word ptr [rbp]",
        bytes: &[0x66, 0x44, 0x8b, 0x7d, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(15, false),
            dst_width: AccessWidth::Word,
            signed: false,
        },
    },
    Vector {
        text: "mov dword ptr [r12], eax",
        bytes: &[0x41, 0x89, 0x04, 0x24],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Dword,
            src: reg(0, false),
        },
    },
    Vector {
        text: "mov eax, dword ptr [r12]",
        bytes: &[0x41, 0x8b, 0x04, 0x24],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(0, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "mov dword ptr [r13], ecx",
        bytes: &[0x41, 0x89, 0x4d, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Dword,
            src: reg(1, false),
        },
    },
    Vector {
        text: "mov ecx, dword ptr [r13]",
        bytes: &[0x41, 0x8b, 0x4d, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(1, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "mov dword ptr [rip+0x1234], edx",
        bytes: &[0x89, 0x15, 0x34, 0x12, 0x00, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Dword,
            src: reg(2, false),
        },
    },
    Vector {
        text: "mov edx, dword ptr [rip+0x1234]",
        bytes: &[0x8b, 0x15, 0x34, 0x12, 0x00, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(2, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "mov dword ptr [rax+rcx*4+0x10], ebx",
        bytes: &[0x89, 0x5c, 0x88, 0x10],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Dword,
            src: reg(3, false),
        },
    },
    Vector {
        text: "mov ebx, dword ptr [rax+rcx*4+0x10]",
        bytes: &[0x8b, 0x5c, 0x88, 0x10],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(3, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "mov dword ptr [r8+r15*8-0x80], esp",
        bytes: &[0x43, 0x89, 0x64, 0xf8, 0x80],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Dword,
            src: reg(4, false),
        },
    },
    Vector {
        text: "mov esp, dword ptr [r8+r15*8-0x80]",
        bytes: &[0x43, 0x8b, 0x64, 0xf8, 0x80],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(4, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "mov dword ptr [rsp+0x12345], ebp",
        bytes: &[0x89, 0xac, 0x24, 0x45, 0x23, 0x01, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Dword,
            src: reg(5, false),
        },
    },
    Vector {
        text: "mov ebp, dword ptr [rsp+0x12345]",
        bytes: &[0x8b, 0xac, 0x24, 0x45, 0x23, 0x01, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(5, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "mov dword ptr [0x1000], esi",
        bytes: &[0x89, 0x34, 0x25, 0x00, 0x10, 0x00, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Dword,
            src: reg(6, false),
        },
    },
    Vector {
        text: "mov esi, dword ptr [0x1000]",
        bytes: &[0x8b, 0x34, 0x25, 0x00, 0x10, 0x00, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(6, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "mov dword ptr [rbx+rdx], edi",
        bytes: &[0x89, 0x3c, 0x13],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Dword,
            src: reg(7, false),
        },
    },
    Vector {
        text: "mov edi, dword ptr [rbx+rdx]",
        bytes: &[0x8b, 0x3c, 0x13],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(7, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "mov dword ptr fs:[rax], r8d",
        bytes: &[0x64, 0x44, 0x89, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Dword,
            src: reg(8, false),
        },
    },
    Vector {
        text: "mov r8d, dword ptr fs:[rax]",
        bytes: &[0x64, 0x44, 0x8b, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(8, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "mov dword ptr [eax], r9d",
        bytes: &[0x67, 0x44, 0x89, 0x08],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Dword,
            src: reg(9, false),
        },
    },
    Vector {
        text: "mov r9d, dword ptr [eax]",
        bytes: &[0x67, 0x44, 0x8b, 0x08],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(9, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "mov dword ptr [rax], r10d",
        bytes: &[0x44, 0x89, 0x10],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Dword,
            src: reg(10, false),
        },
    },
    Vector {
        text: "mov r10d, dword ptr [rax]",
        bytes: &[0x44, 0x8b, 0x10],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(10, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "mov dword ptr [rbx+8], r11d",
        bytes: &[0x44, 0x89, 0x5b, 0x08],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Dword,
            src: reg(11, false),
        },
    },
    Vector {
        text: "mov r11d, dword ptr [rbx+8]",
        bytes: &[0x44, 0x8b, 0x5b, 0x08],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(11, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "mov dword ptr [rsp], r12d",
        bytes: &[0x44, 0x89, 0x24, 0x24],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Dword,
            src: reg(12, false),
        },
    },
    Vector {
        text: "mov r12d, dword ptr [rsp]",
        bytes: &[0x44, 0x8b, 0x24, 0x24],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(12, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "mov dword ptr [rbp], r13d",
        bytes: &[0x44, 0x89, 0x6d, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Dword,
            src: reg(13, false),
        },
    },
    Vector {
        text: "mov r13d, dword ptr [rbp]",
        bytes: &[0x44, 0x8b, 0x6d, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(13, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "mov dword ptr [r12], r14d",
        bytes: &[0x45, 0x89, 0x34, 0x24],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Dword,
            src: reg(14, false),
        },
    },
    Vector {
        text: "mov r14d, dword ptr [r12]",
        bytes: &[0x45, 0x8b, 0x34, 0x24],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(14, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "mov dword ptr [r13], r15d",
        bytes: &[0x45, 0x89, 0x7d, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Dword,
            src: reg(15, false),
        },
    },
    Vector {
        text: "mov r15d, dword ptr [r13]",
        bytes: &[0x45, 0x8b, 0x7d, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(15, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "mov qword ptr [r8+r15*8-0x80], rax",
        bytes: &[0x4b, 0x89, 0x44, 0xf8, 0x80],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Qword,
            src: reg(0, false),
        },
    },
    Vector {
        text: "mov rax, qword ptr [r8+r15*8-0x80]",
        bytes: &[0x4b, 0x8b, 0x44, 0xf8, 0x80],
        insn: MmioInsn::Load {
            width: AccessWidth::Qword,
            dst: reg(0, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "mov qword ptr [rsp+0x12345], rcx",
        bytes: &[0x48, 0x89, 0x8c, 0x24, 0x45, 0x23, 0x01, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Qword,
            src: reg(1, false),
        },
    },
    Vector {
        text: "mov rcx, qword ptr [rsp+0x12345]",
        bytes: &[0x48, 0x8b, 0x8c, 0x24, 0x45, 0x23, 0x01, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Qword,
            dst: reg(1, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "mov qword ptr [0x1000], rdx",
        bytes: &[0x48, 0x89, 0x14, 0x25, 0x00, 0x10, 0x00, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Qword,
            src: reg(2, false),
        },
    },
    Vector {
        text: "mov rdx, qword ptr [0x1000]",
        bytes: &[0x48, 0x8b, 0x14, 0x25, 0x00, 0x10, 0x00, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Qword,
            dst: reg(2, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "mov qword ptr [rbx+rdx], rbx",
        bytes: &[0x48, 0x89, 0x1c, 0x13],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Qword,
            src: reg(3, false),
        },
    },
    Vector {
        text: "mov rbx, qword ptr [rbx+rdx]",
        bytes: &[0x48, 0x8b, 0x1c, 0x13],
        insn: MmioInsn::Load {
            width: AccessWidth::Qword,
            dst: reg(3, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "mov qword ptr fs:[rax], rsp",
        bytes: &[0x64, 0x48, 0x89, 0x20],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Qword,
            src: reg(4, false),
        },
    },
    Vector {
        text: "mov rsp, qword ptr fs:[rax]",
        bytes: &[0x64, 0x48, 0x8b, 0x20],
        insn: MmioInsn::Load {
            width: AccessWidth::Qword,
            dst: reg(4, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "mov qword ptr [eax], rbp",
        bytes: &[0x67, 0x48, 0x89, 0x28],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Qword,
            src: reg(5, false),
        },
    },
    Vector {
        text: "mov rbp, qword ptr [eax]",
        bytes: &[0x67, 0x48, 0x8b, 0x28],
        insn: MmioInsn::Load {
            width: AccessWidth::Qword,
            dst: reg(5, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "mov qword ptr [rax], rsi",
        bytes: &[0x48, 0x89, 0x30],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Qword,
            src: reg(6, false),
        },
    },
    Vector {
        text: "mov rsi, qword ptr [rax]",
        bytes: &[0x48, 0x8b, 0x30],
        insn: MmioInsn::Load {
            width: AccessWidth::Qword,
            dst: reg(6, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "mov qword ptr [rbx+8], rdi",
        bytes: &[0x48, 0x89, 0x7b, 0x08],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Qword,
            src: reg(7, false),
        },
    },
    Vector {
        text: "mov rdi, qword ptr [rbx+8]",
        bytes: &[0x48, 0x8b, 0x7b, 0x08],
        insn: MmioInsn::Load {
            width: AccessWidth::Qword,
            dst: reg(7, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "mov qword ptr [rsp], r8",
        bytes: &[0x4c, 0x89, 0x04, 0x24],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Qword,
            src: reg(8, false),
        },
    },
    Vector {
        text: "mov r8, qword ptr [rsp]",
        bytes: &[0x4c, 0x8b, 0x04, 0x24],
        insn: MmioInsn::Load {
            width: AccessWidth::Qword,
            dst: reg(8, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "mov qword ptr [rbp], r9",
        bytes: &[0x4c, 0x89, 0x4d, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Qword,
            src: reg(9, false),
        },
    },
    Vector {
        text: "mov r9, qword ptr [rbp]",
        bytes: &[0x4c, 0x8b, 0x4d, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Qword,
            dst: reg(9, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "mov qword ptr [r12], r10",
        bytes: &[0x4d, 0x89, 0x14, 0x24],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Qword,
            src: reg(10, false),
        },
    },
    Vector {
        text: "mov r10, qword ptr [r12]",
        bytes: &[0x4d, 0x8b, 0x14, 0x24],
        insn: MmioInsn::Load {
            width: AccessWidth::Qword,
            dst: reg(10, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "mov qword ptr [r13], r11",
        bytes: &[0x4d, 0x89, 0x5d, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Qword,
            src: reg(11, false),
        },
    },
    Vector {
        text: "mov r11, qword ptr [r13]",
        bytes: &[0x4d, 0x8b, 0x5d, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Qword,
            dst: reg(11, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "mov qword ptr [rip+0x1234], r12",
        bytes: &[0x4c, 0x89, 0x25, 0x34, 0x12, 0x00, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Qword,
            src: reg(12, false),
        },
    },
    Vector {
        text: "mov r12, qword ptr [rip+0x1234]",
        bytes: &[0x4c, 0x8b, 0x25, 0x34, 0x12, 0x00, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Qword,
            dst: reg(12, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "mov qword ptr [rax+rcx*4+0x10], r13",
        bytes: &[0x4c, 0x89, 0x6c, 0x88, 0x10],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Qword,
            src: reg(13, false),
        },
    },
    Vector {
        text: "mov r13, qword ptr [rax+rcx*4+0x10]",
        bytes: &[0x4c, 0x8b, 0x6c, 0x88, 0x10],
        insn: MmioInsn::Load {
            width: AccessWidth::Qword,
            dst: reg(13, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "mov qword ptr [r8+r15*8-0x80], r14",
        bytes: &[0x4f, 0x89, 0x74, 0xf8, 0x80],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Qword,
            src: reg(14, false),
        },
    },
    Vector {
        text: "mov r14, qword ptr [r8+r15*8-0x80]",
        bytes: &[0x4f, 0x8b, 0x74, 0xf8, 0x80],
        insn: MmioInsn::Load {
            width: AccessWidth::Qword,
            dst: reg(14, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "mov qword ptr [rsp+0x12345], r15",
        bytes: &[0x4c, 0x89, 0xbc, 0x24, 0x45, 0x23, 0x01, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Qword,
            src: reg(15, false),
        },
    },
    Vector {
        text: "mov r15, qword ptr [rsp+0x12345]",
        bytes: &[0x4c, 0x8b, 0xbc, 0x24, 0x45, 0x23, 0x01, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Qword,
            dst: reg(15, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "mov byte ptr [rbx+0x10], ah",
        bytes: &[0x88, 0x63, 0x10],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Byte,
            src: reg(0, true),
        },
    },
    Vector {
        text: "mov ah, byte ptr [rsi]",
        bytes: &[0x8a, 0x26],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(0, true),
            dst_width: AccessWidth::Byte,
            signed: false,
        },
    },
    Vector {
        text: "mov byte ptr [rbx+0x10], ch",
        bytes: &[0x88, 0x6b, 0x10],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Byte,
            src: reg(1, true),
        },
    },
    Vector {
        text: "mov ch, byte ptr [rsi]",
        bytes: &[0x8a, 0x2e],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(1, true),
            dst_width: AccessWidth::Byte,
            signed: false,
        },
    },
    Vector {
        text: "mov byte ptr [rbx+0x10], dh",
        bytes: &[0x88, 0x73, 0x10],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Byte,
            src: reg(2, true),
        },
    },
    Vector {
        text: "mov dh, byte ptr [rsi]",
        bytes: &[0x8a, 0x36],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(2, true),
            dst_width: AccessWidth::Byte,
            signed: false,
        },
    },
    Vector {
        text: "mov byte ptr [rbx+0x10], bh",
        bytes: &[0x88, 0x7b, 0x10],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Byte,
            src: reg(3, true),
        },
    },
    Vector {
        text: "mov bh, byte ptr [rsi]",
        bytes: &[0x8a, 0x3e],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(3, true),
            dst_width: AccessWidth::Byte,
            signed: false,
        },
    },
    Vector {
        text: "mov byte ptr [rax], 165",
        bytes: &[0xc6, 0x00, 0xa5],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Byte,
            imm: 0xa5,
        },
    },
    Vector {
        text: "mov byte ptr [rbx+8], 165",
        bytes: &[0xc6, 0x43, 0x08, 0xa5],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Byte,
            imm: 0xa5,
        },
    },
    Vector {
        text: "mov byte ptr [rsp], 165",
        bytes: &[0xc6, 0x04, 0x24, 0xa5],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Byte,
            imm: 0xa5,
        },
    },
    Vector {
        text: "mov byte ptr [rbp], 165",
        bytes: &[0xc6, 0x45, 0x00, 0xa5],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Byte,
            imm: 0xa5,
        },
    },
    Vector {
        text: "mov byte ptr [r12], 165",
        bytes: &[0x41, 0xc6, 0x04, 0x24, 0xa5],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Byte,
            imm: 0xa5,
        },
    },
    Vector {
        text: "mov byte ptr [r13], 165",
        bytes: &[0x41, 0xc6, 0x45, 0x00, 0xa5],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Byte,
            imm: 0xa5,
        },
    },
    Vector {
        text: "mov byte ptr [rip+0x1234], 165",
        bytes: &[0xc6, 0x05, 0x34, 0x12, 0x00, 0x00, 0xa5],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Byte,
            imm: 0xa5,
        },
    },
    Vector {
        text: "mov byte ptr [rax+rcx*4+0x10], 165",
        bytes: &[0xc6, 0x44, 0x88, 0x10, 0xa5],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Byte,
            imm: 0xa5,
        },
    },
    Vector {
        text: "mov word ptr [rax], 48879",
        bytes: &[0x66, 0xc7, 0x00, 0xef, 0xbe],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Word,
            imm: 0xbeef,
        },
    },
    Vector {
        text: "mov word ptr [rbx+8], 48879",
        bytes: &[0x66, 0xc7, 0x43, 0x08, 0xef, 0xbe],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Word,
            imm: 0xbeef,
        },
    },
    Vector {
        text: "mov word ptr [rsp], 48879",
        bytes: &[0x66, 0xc7, 0x04, 0x24, 0xef, 0xbe],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Word,
            imm: 0xbeef,
        },
    },
    Vector {
        text: "mov word ptr [rbp], 48879",
        bytes: &[0x66, 0xc7, 0x45, 0x00, 0xef, 0xbe],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Word,
            imm: 0xbeef,
        },
    },
    Vector {
        text: "mov word ptr [r12], 48879",
        bytes: &[0x66, 0x41, 0xc7, 0x04, 0x24, 0xef, 0xbe],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Word,
            imm: 0xbeef,
        },
    },
    Vector {
        text: "mov word ptr [r13], 48879",
        bytes: &[0x66, 0x41, 0xc7, 0x45, 0x00, 0xef, 0xbe],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Word,
            imm: 0xbeef,
        },
    },
    Vector {
        text: "mov word ptr [rip+0x1234], 48879",
        bytes: &[0x66, 0xc7, 0x05, 0x34, 0x12, 0x00, 0x00, 0xef, 0xbe],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Word,
            imm: 0xbeef,
        },
    },
    Vector {
        text: "mov word ptr [rax+rcx*4+0x10], 48879",
        bytes: &[0x66, 0xc7, 0x44, 0x88, 0x10, 0xef, 0xbe],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Word,
            imm: 0xbeef,
        },
    },
    Vector {
        text: "mov dword ptr [rax], 2125315823",
        bytes: &[0xc7, 0x00, 0xef, 0xbe, 0xad, 0x7e],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Dword,
            imm: 0x7eadbeef,
        },
    },
    Vector {
        text: "mov dword ptr [rbx+8], 2125315823",
        bytes: &[0xc7, 0x43, 0x08, 0xef, 0xbe, 0xad, 0x7e],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Dword,
            imm: 0x7eadbeef,
        },
    },
    Vector {
        text: "mov dword ptr [rsp], 2125315823",
        bytes: &[0xc7, 0x04, 0x24, 0xef, 0xbe, 0xad, 0x7e],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Dword,
            imm: 0x7eadbeef,
        },
    },
    Vector {
        text: "mov dword ptr [rbp], 2125315823",
        bytes: &[0xc7, 0x45, 0x00, 0xef, 0xbe, 0xad, 0x7e],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Dword,
            imm: 0x7eadbeef,
        },
    },
    Vector {
        text: "mov dword ptr [r12], 2125315823",
        bytes: &[0x41, 0xc7, 0x04, 0x24, 0xef, 0xbe, 0xad, 0x7e],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Dword,
            imm: 0x7eadbeef,
        },
    },
    Vector {
        text: "mov dword ptr [r13], 2125315823",
        bytes: &[0x41, 0xc7, 0x45, 0x00, 0xef, 0xbe, 0xad, 0x7e],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Dword,
            imm: 0x7eadbeef,
        },
    },
    Vector {
        text: "mov dword ptr [rip+0x1234], 2125315823",
        bytes: &[0xc7, 0x05, 0x34, 0x12, 0x00, 0x00, 0xef, 0xbe, 0xad, 0x7e],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Dword,
            imm: 0x7eadbeef,
        },
    },
    Vector {
        text: "mov dword ptr [rax+rcx*4+0x10], 2125315823",
        bytes: &[0xc7, 0x44, 0x88, 0x10, 0xef, 0xbe, 0xad, 0x7e],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Dword,
            imm: 0x7eadbeef,
        },
    },
    Vector {
        text: "mov qword ptr [rax], -2",
        bytes: &[0x48, 0xc7, 0x00, 0xfe, 0xff, 0xff, 0xff],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Qword,
            imm: 0xfffffffffffffffe,
        },
    },
    Vector {
        text: "mov qword ptr [rbx+8], -2",
        bytes: &[0x48, 0xc7, 0x43, 0x08, 0xfe, 0xff, 0xff, 0xff],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Qword,
            imm: 0xfffffffffffffffe,
        },
    },
    Vector {
        text: "mov qword ptr [rsp], -2",
        bytes: &[0x48, 0xc7, 0x04, 0x24, 0xfe, 0xff, 0xff, 0xff],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Qword,
            imm: 0xfffffffffffffffe,
        },
    },
    Vector {
        text: "mov qword ptr [rbp], -2",
        bytes: &[0x48, 0xc7, 0x45, 0x00, 0xfe, 0xff, 0xff, 0xff],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Qword,
            imm: 0xfffffffffffffffe,
        },
    },
    Vector {
        text: "mov qword ptr [r12], -2",
        bytes: &[0x49, 0xc7, 0x04, 0x24, 0xfe, 0xff, 0xff, 0xff],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Qword,
            imm: 0xfffffffffffffffe,
        },
    },
    Vector {
        text: "mov qword ptr [r13], -2",
        bytes: &[0x49, 0xc7, 0x45, 0x00, 0xfe, 0xff, 0xff, 0xff],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Qword,
            imm: 0xfffffffffffffffe,
        },
    },
    Vector {
        text: "mov qword ptr [rip+0x1234], -2",
        bytes: &[
            0x48, 0xc7, 0x05, 0x34, 0x12, 0x00, 0x00, 0xfe, 0xff, 0xff, 0xff,
        ],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Qword,
            imm: 0xfffffffffffffffe,
        },
    },
    Vector {
        text: "mov qword ptr [rax+rcx*4+0x10], -2",
        bytes: &[0x48, 0xc7, 0x44, 0x88, 0x10, 0xfe, 0xff, 0xff, 0xff],
        insn: MmioInsn::StoreImm {
            width: AccessWidth::Qword,
            imm: 0xfffffffffffffffe,
        },
    },
    Vector {
        text: "movzx ax, byte ptr [rax]",
        bytes: &[0x66, 0x0f, 0xb6, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(0, false),
            dst_width: AccessWidth::Word,
            signed: false,
        },
    },
    Vector {
        text: "movsx ax, byte ptr [rax]",
        bytes: &[0x66, 0x0f, 0xbe, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(0, false),
            dst_width: AccessWidth::Word,
            signed: true,
        },
    },
    Vector {
        text: "movzx bx, byte ptr [rbp]",
        bytes: &[0x66, 0x0f, 0xb6, 0x5d, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(3, false),
            dst_width: AccessWidth::Word,
            signed: false,
        },
    },
    Vector {
        text: "movsx bx, byte ptr [rbp]",
        bytes: &[0x66, 0x0f, 0xbe, 0x5d, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(3, false),
            dst_width: AccessWidth::Word,
            signed: true,
        },
    },
    Vector {
        text: "movzx si, byte ptr [rip+0x1234]",
        bytes: &[0x66, 0x0f, 0xb6, 0x35, 0x34, 0x12, 0x00, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(6, false),
            dst_width: AccessWidth::Word,
            signed: false,
        },
    },
    Vector {
        text: "movsx si, byte ptr [rip+0x1234]",
        bytes: &[0x66, 0x0f, 0xbe, 0x35, 0x34, 0x12, 0x00, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(6, false),
            dst_width: AccessWidth::Word,
            signed: true,
        },
    },
    Vector {
        text: "movzx r9w, byte ptr [rsp+0x12345]",
        bytes: &[0x66, 0x44, 0x0f, 0xb6, 0x8c, 0x24, 0x45, 0x23, 0x01, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(9, false),
            dst_width: AccessWidth::Word,
            signed: false,
        },
    },
    Vector {
        text: "movsx r9w, byte ptr [rsp+0x12345]",
        bytes: &[0x66, 0x44, 0x0f, 0xbe, 0x8c, 0x24, 0x45, 0x23, 0x01, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(9, false),
            dst_width: AccessWidth::Word,
            signed: true,
        },
    },
    Vector {
        text: "movzx r12w, byte ptr fs:[rax]",
        bytes: &[0x64, 0x66, 0x44, 0x0f, 0xb6, 0x20],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(12, false),
            dst_width: AccessWidth::Word,
            signed: false,
        },
    },
    Vector {
        text: "movsx r12w, byte ptr fs:[rax]",
        bytes: &[0x64, 0x66, 0x44, 0x0f, 0xbe, 0x20],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(12, false),
            dst_width: AccessWidth::Word,
            signed: true,
        },
    },
    Vector {
        text: "movzx r15w, byte ptr [rbx+8]",
        bytes: &[0x66, 0x44, 0x0f, 0xb6, 0x7b, 0x08],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(15, false),
            dst_width: AccessWidth::Word,
            signed: false,
        },
    },
    Vector {
        text: "movsx r15w, byte ptr [rbx+8]",
        bytes: &[0x66, 0x44, 0x0f, 0xbe, 0x7b, 0x08],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(15, false),
            dst_width: AccessWidth::Word,
            signed: true,
        },
    },
    Vector {
        text: "movzx eax, byte ptr [rax]",
        bytes: &[0x0f, 0xb6, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(0, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "movzx eax, word ptr [rax]",
        bytes: &[0x0f, 0xb7, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(0, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "movsx eax, byte ptr [rax]",
        bytes: &[0x0f, 0xbe, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(0, false),
            dst_width: AccessWidth::Dword,
            signed: true,
        },
    },
    Vector {
        text: "movsx eax, word ptr [rax]",
        bytes: &[0x0f, 0xbf, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(0, false),
            dst_width: AccessWidth::Dword,
            signed: true,
        },
    },
    Vector {
        text: "movzx ebx, byte ptr [rbp]",
        bytes: &[0x0f, 0xb6, 0x5d, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(3, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "movzx ebx, word ptr [rbp]",
        bytes: &[0x0f, 0xb7, 0x5d, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(3, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "movsx ebx, byte ptr [rbp]",
        bytes: &[0x0f, 0xbe, 0x5d, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(3, false),
            dst_width: AccessWidth::Dword,
            signed: true,
        },
    },
    Vector {
        text: "movsx ebx, word ptr [rbp]",
        bytes: &[0x0f, 0xbf, 0x5d, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(3, false),
            dst_width: AccessWidth::Dword,
            signed: true,
        },
    },
    Vector {
        text: "movzx esi, byte ptr [rip+0x1234]",
        bytes: &[0x0f, 0xb6, 0x35, 0x34, 0x12, 0x00, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(6, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "movzx esi, word ptr [rip+0x1234]",
        bytes: &[0x0f, 0xb7, 0x35, 0x34, 0x12, 0x00, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(6, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "movsx esi, byte ptr [rip+0x1234]",
        bytes: &[0x0f, 0xbe, 0x35, 0x34, 0x12, 0x00, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(6, false),
            dst_width: AccessWidth::Dword,
            signed: true,
        },
    },
    Vector {
        text: "movsx esi, word ptr [rip+0x1234]",
        bytes: &[0x0f, 0xbf, 0x35, 0x34, 0x12, 0x00, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(6, false),
            dst_width: AccessWidth::Dword,
            signed: true,
        },
    },
    Vector {
        text: "movzx r9d, byte ptr [rsp+0x12345]",
        bytes: &[0x44, 0x0f, 0xb6, 0x8c, 0x24, 0x45, 0x23, 0x01, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(9, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "movzx r9d, word ptr [rsp+0x12345]",
        bytes: &[0x44, 0x0f, 0xb7, 0x8c, 0x24, 0x45, 0x23, 0x01, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(9, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "movsx r9d, byte ptr [rsp+0x12345]",
        bytes: &[0x44, 0x0f, 0xbe, 0x8c, 0x24, 0x45, 0x23, 0x01, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(9, false),
            dst_width: AccessWidth::Dword,
            signed: true,
        },
    },
    Vector {
        text: "movsx r9d, word ptr [rsp+0x12345]",
        bytes: &[0x44, 0x0f, 0xbf, 0x8c, 0x24, 0x45, 0x23, 0x01, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(9, false),
            dst_width: AccessWidth::Dword,
            signed: true,
        },
    },
    Vector {
        text: "movzx r12d, byte ptr fs:[rax]",
        bytes: &[0x64, 0x44, 0x0f, 0xb6, 0x20],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(12, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "movzx r12d, word ptr fs:[rax]",
        bytes: &[0x64, 0x44, 0x0f, 0xb7, 0x20],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(12, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "movsx r12d, byte ptr fs:[rax]",
        bytes: &[0x64, 0x44, 0x0f, 0xbe, 0x20],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(12, false),
            dst_width: AccessWidth::Dword,
            signed: true,
        },
    },
    Vector {
        text: "movsx r12d, word ptr fs:[rax]",
        bytes: &[0x64, 0x44, 0x0f, 0xbf, 0x20],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(12, false),
            dst_width: AccessWidth::Dword,
            signed: true,
        },
    },
    Vector {
        text: "movzx r15d, byte ptr [rbx+8]",
        bytes: &[0x44, 0x0f, 0xb6, 0x7b, 0x08],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(15, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "movzx r15d, word ptr [rbx+8]",
        bytes: &[0x44, 0x0f, 0xb7, 0x7b, 0x08],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(15, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "movsx r15d, byte ptr [rbx+8]",
        bytes: &[0x44, 0x0f, 0xbe, 0x7b, 0x08],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(15, false),
            dst_width: AccessWidth::Dword,
            signed: true,
        },
    },
    Vector {
        text: "movsx r15d, word ptr [rbx+8]",
        bytes: &[0x44, 0x0f, 0xbf, 0x7b, 0x08],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(15, false),
            dst_width: AccessWidth::Dword,
            signed: true,
        },
    },
    Vector {
        text: "movzx rax, byte ptr [rax]",
        bytes: &[0x48, 0x0f, 0xb6, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(0, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "movzx rax, word ptr [rax]",
        bytes: &[0x48, 0x0f, 0xb7, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(0, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "movsx rax, byte ptr [rax]",
        bytes: &[0x48, 0x0f, 0xbe, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(0, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movsx rax, word ptr [rax]",
        bytes: &[0x48, 0x0f, 0xbf, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(0, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movzx rbx, byte ptr [rbp]",
        bytes: &[0x48, 0x0f, 0xb6, 0x5d, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(3, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "movzx rbx, word ptr [rbp]",
        bytes: &[0x48, 0x0f, 0xb7, 0x5d, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(3, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "movsx rbx, byte ptr [rbp]",
        bytes: &[0x48, 0x0f, 0xbe, 0x5d, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(3, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movsx rbx, word ptr [rbp]",
        bytes: &[0x48, 0x0f, 0xbf, 0x5d, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(3, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movzx rsi, byte ptr [rip+0x1234]",
        bytes: &[0x48, 0x0f, 0xb6, 0x35, 0x34, 0x12, 0x00, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(6, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "movzx rsi, word ptr [rip+0x1234]",
        bytes: &[0x48, 0x0f, 0xb7, 0x35, 0x34, 0x12, 0x00, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(6, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "movsx rsi, byte ptr [rip+0x1234]",
        bytes: &[0x48, 0x0f, 0xbe, 0x35, 0x34, 0x12, 0x00, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(6, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movsx rsi, word ptr [rip+0x1234]",
        bytes: &[0x48, 0x0f, 0xbf, 0x35, 0x34, 0x12, 0x00, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(6, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movzx r9, byte ptr [rsp+0x12345]",
        bytes: &[0x4c, 0x0f, 0xb6, 0x8c, 0x24, 0x45, 0x23, 0x01, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(9, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "movzx r9, word ptr [rsp+0x12345]",
        bytes: &[0x4c, 0x0f, 0xb7, 0x8c, 0x24, 0x45, 0x23, 0x01, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(9, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "movsx r9, byte ptr [rsp+0x12345]",
        bytes: &[0x4c, 0x0f, 0xbe, 0x8c, 0x24, 0x45, 0x23, 0x01, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(9, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movsx r9, word ptr [rsp+0x12345]",
        bytes: &[0x4c, 0x0f, 0xbf, 0x8c, 0x24, 0x45, 0x23, 0x01, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(9, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movzx r12, byte ptr fs:[rax]",
        bytes: &[0x64, 0x4c, 0x0f, 0xb6, 0x20],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(12, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "movzx r12, word ptr fs:[rax]",
        bytes: &[0x64, 0x4c, 0x0f, 0xb7, 0x20],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(12, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "movsx r12, byte ptr fs:[rax]",
        bytes: &[0x64, 0x4c, 0x0f, 0xbe, 0x20],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(12, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movsx r12, word ptr fs:[rax]",
        bytes: &[0x64, 0x4c, 0x0f, 0xbf, 0x20],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(12, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movzx r15, byte ptr [rbx+8]",
        bytes: &[0x4c, 0x0f, 0xb6, 0x7b, 0x08],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(15, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "movzx r15, word ptr [rbx+8]",
        bytes: &[0x4c, 0x0f, 0xb7, 0x7b, 0x08],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(15, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "movsx r15, byte ptr [rbx+8]",
        bytes: &[0x4c, 0x0f, 0xbe, 0x7b, 0x08],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(15, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movsx r15, word ptr [rbx+8]",
        bytes: &[0x4c, 0x0f, 0xbf, 0x7b, 0x08],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(15, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movsxd rax, dword ptr [rax]",
        bytes: &[0x48, 0x63, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(0, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movsxd rcx, dword ptr [rbx+8]",
        bytes: &[0x48, 0x63, 0x4b, 0x08],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(1, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movsxd rdx, dword ptr [rsp]",
        bytes: &[0x48, 0x63, 0x14, 0x24],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(2, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movsxd rbx, dword ptr [rbp]",
        bytes: &[0x48, 0x63, 0x5d, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(3, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movsxd rsp, dword ptr [r12]",
        bytes: &[0x49, 0x63, 0x24, 0x24],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(4, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movsxd rbp, dword ptr [r13]",
        bytes: &[0x49, 0x63, 0x6d, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(5, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movsxd rsi, dword ptr [rip+0x1234]",
        bytes: &[0x48, 0x63, 0x35, 0x34, 0x12, 0x00, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(6, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movsxd rdi, dword ptr [rax+rcx*4+0x10]",
        bytes: &[0x48, 0x63, 0x7c, 0x88, 0x10],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(7, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movsxd r8, dword ptr [r8+r15*8-0x80]",
        bytes: &[0x4f, 0x63, 0x44, 0xf8, 0x80],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(8, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movsxd r9, dword ptr [rsp+0x12345]",
        bytes: &[0x4c, 0x63, 0x8c, 0x24, 0x45, 0x23, 0x01, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(9, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movsxd r10, dword ptr [0x1000]",
        bytes: &[0x4c, 0x63, 0x14, 0x25, 0x00, 0x10, 0x00, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(10, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movsxd r11, dword ptr [rbx+rdx]",
        bytes: &[0x4c, 0x63, 0x1c, 0x13],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(11, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movsxd r12, dword ptr fs:[rax]",
        bytes: &[0x64, 0x4c, 0x63, 0x20],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(12, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movsxd r13, dword ptr [eax]",
        bytes: &[0x67, 0x4c, 0x63, 0x28],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(13, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movsxd r14, dword ptr [rax]",
        bytes: &[0x4c, 0x63, 0x30],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(14, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movsxd r15, dword ptr [rbx+8]",
        bytes: &[0x4c, 0x63, 0x7b, 0x08],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(15, false),
            dst_width: AccessWidth::Qword,
            signed: true,
        },
    },
    Vector {
        text: "movabs al, byte ptr [0xd0000000]",
        bytes: &[0xa0, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x00, 0x00, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Byte,
            dst: reg(0, false),
            dst_width: AccessWidth::Byte,
            signed: false,
        },
    },
    Vector {
        text: "movabs byte ptr [0xd0000000], al",
        bytes: &[0xa2, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x00, 0x00, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Byte,
            src: reg(0, false),
        },
    },
    Vector {
        text: "movabs ax, word ptr [0xd0000000]",
        bytes: &[0x66, 0xa1, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x00, 0x00, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Word,
            dst: reg(0, false),
            dst_width: AccessWidth::Word,
            signed: false,
        },
    },
    Vector {
        text: "movabs word ptr [0xd0000000], ax",
        bytes: &[0x66, 0xa3, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x00, 0x00, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Word,
            src: reg(0, false),
        },
    },
    Vector {
        text: "movabs eax, dword ptr [0xd0000000]",
        bytes: &[0xa1, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x00, 0x00, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Dword,
            dst: reg(0, false),
            dst_width: AccessWidth::Dword,
            signed: false,
        },
    },
    Vector {
        text: "movabs dword ptr [0xd0000000], eax",
        bytes: &[0xa3, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x00, 0x00, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Dword,
            src: reg(0, false),
        },
    },
    Vector {
        text: "movabs rax, qword ptr [0xd0000000]",
        bytes: &[0x48, 0xa1, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x00, 0x00, 0x00],
        insn: MmioInsn::Load {
            width: AccessWidth::Qword,
            dst: reg(0, false),
            dst_width: AccessWidth::Qword,
            signed: false,
        },
    },
    Vector {
        text: "movabs qword ptr [0xd0000000], rax",
        bytes: &[0x48, 0xa3, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x00, 0x00, 0x00],
        insn: MmioInsn::StoreReg {
            width: AccessWidth::Qword,
            src: reg(0, false),
        },
    },
];
