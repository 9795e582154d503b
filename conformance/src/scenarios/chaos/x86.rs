//! The x86-64 chaos generator: [`CHAOS_CODE_BYTES`] / 16 slots of 16 bytes, each one
//! template padded with `nop`s, so the runtime's exception handler resumes at the next slot
//! without decoding; the last slot jumps back to the first. Branches only go forward (to a
//! later slot), so every loop passes the last slot, and most slots exit or fault.

use alloc::vec::Vec;

use super::{ChaosTarget, Rng};
use crate::contract::{CHAOS_CODE_BYTES, HC_DONE, HC_READY, HC_REPORT};

const SLOT: usize = 16;
const SLOTS: usize = CHAOS_CODE_BYTES / SLOT;

/// Base registers of the memory templates (`mod = 00` with these is `[reg]`: no rsp, rbp).
const BASES: [u8; 6] = [0, 1, 2, 3, 6, 7];

const MSRS: [u32; 24] = [
    0x10,        // TSC
    0x1b,        // APIC base
    0x3a,        // feature control
    0x8b,        // microcode revision
    0xe7,        // MPERF
    0x174,       // SYSENTER_CS
    0x176,       // SYSENTER_EIP
    0x1d9,       // DEBUGCTL
    0x277,       // PAT
    0x480,       // VMX basic
    0x48b,       // VMX secondary controls
    0x6e0,       // TSC deadline
    0x802,       // x2APIC id
    0x830,       // x2APIC ICR
    0xc000_0080, // EFER
    0xc000_0081, // STAR
    0xc000_0082, // LSTAR
    0xc000_0100, // FS base
    0xc000_0102, // kernel GS base
    0xc000_0103, // TSC_AUX
    0xc001_0114, // VM_CR
    0xc001_0117, // VM_HSAVE_PA
    0x4000_0000, // hypervisor range
    0x4b56_4d00, // KVM wall clock
];

const PORTS: [u16; 20] = [
    0x20, 0x21, 0x40, 0x43, 0x60, 0x64, 0x70, 0x71, 0x80, 0xa0, 0xa1, 0x3f8, 0x3fd, 0xcf8, 0xcfc,
    0xe9, 0xf4, 0xf6, 0x402, 0x510,
];

/// Slot contents, built up to 16 bytes.
struct Slot(Vec<u8>);

impl Slot {
    fn b(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }
    fn imm32(&mut self, v: u32) -> &mut Self {
        self.b(&v.to_le_bytes())
    }
    /// `mov r64, imm64`.
    fn movabs(&mut self, reg: u8, v: u64) -> &mut Self {
        self.b(&[0x48 | (reg >> 3), 0xb8 + (reg & 7)]);
        self.b(&v.to_le_bytes())
    }
    /// `mov eax, imm32` (zero-extends into rax).
    fn mov_eax(&mut self, v: u32) -> &mut Self {
        self.b(&[0xb8]).imm32(v)
    }
}

pub(super) fn program(t: &ChaosTarget, rng: &mut Rng) -> Vec<u8> {
    let mut code = Vec::with_capacity(CHAOS_CODE_BYTES);
    for i in 0..SLOTS - 1 {
        let mut s = Slot(Vec::with_capacity(SLOT));
        template(t, rng, i, &mut s);
        s.0.truncate(SLOT);
        s.0.resize(SLOT, 0x90);
        code.extend_from_slice(&s.0);
    }
    // jmp rel32 back to the start.
    let back = -((CHAOS_CODE_BYTES - SLOT + 5) as i32);
    code.push(0xe9);
    code.extend_from_slice(&back.to_le_bytes());
    code.resize(CHAOS_CODE_BYTES, 0x90);
    code
}

fn template(t: &ChaosTarget, rng: &mut Rng, slot: usize, s: &mut Slot) {
    match rng.below(100) {
        0..=13 => noise(rng, s),
        14..=15 => {
            // A sane stack again (the scratch page's top), so push/popf templates work.
            let top = t.data_base() + super::CHAOS_DATA_BYTES as u64 - 64;
            s.movabs(4, top);
        }
        16..=20 => branch(rng, slot, s),
        21..=24 => raw(rng, s),
        25..=32 if !t.x86_emulated || rng.chance(1, 16) => undefined(rng, s),
        25..=32 => noise(rng, s),
        33..=58 => memory(t, rng, s),
        59..=67 => mask(rng, s),
        68..=91 => privileged(t, rng, s),
        _ => hypercall(t, rng, s),
    }
}

/// Up to 15 random bytes, without two forms QEMU's TCG (10.0) gets wrong in a way that
/// kills the whole emulated machine: `8e /6` and `8e /7` (`mov` to segment register 6 or
/// 7, undefined: #UD on real processors) load LDTR or TR in QEMU, and `0f 00 /3` (`ltr`)
/// with a null selector loads a null TR instead of raising #GP; the next interrupt
/// through the IST then aborts QEMU ("qemu: fatal: invalid tss"). An emulator bug a
/// random guest reaches every few hundred programs is not something the layer under test
/// can answer, so the generator steers around it.
fn raw(rng: &mut Rng, s: &mut Slot) {
    let mut last = 0u8;
    for _ in 0..1 + rng.below(15) {
        let mut b = rng.byte();
        let bad_modrm = last == 0x8e && (b >> 3) & 7 >= 6;
        if bad_modrm || (last == 0x0f && b == 0x00) {
            b = 0x90;
        }
        s.b(&[b]);
        last = b;
    }
}

fn noise(rng: &mut Rng, s: &mut Slot) {
    let (r, b) = (rng.byte() & 15, rng.byte() & 15);
    let rex = 0x48 | ((r >> 3) << 2) | (b >> 3);
    let modrm = 0xc0 | ((r & 7) << 3) | (b & 7);
    match rng.below(4) {
        0 => {
            s.b(&[0xb8 + (b & 7)]).imm32(rng.next() as u32);
        }
        1 => {
            let op = rng.pick(&[0u8, 1, 4, 5, 7]); // rol ror shl shr sar
            s.b(&[rex, 0xc1, 0xc0 | (op << 3) | (b & 7), rng.byte()]);
        }
        _ => {
            let op = rng.pick(&[0x01, 0x09, 0x11, 0x19, 0x21, 0x29, 0x31, 0x39, 0x85, 0x89]);
            s.b(&[rex, op, modrm]);
        }
    }
}

fn branch(rng: &mut Rng, slot: usize, s: &mut Slot) {
    // Forward only: to a later slot start (at most the last one, which jumps back).
    let to = slot + 1 + rng.below((SLOTS - 1 - slot) as u64) as usize;
    let from = slot * SLOT;
    if rng.chance(1, 2) {
        let rel = (to * SLOT) as i64 - (from + 5) as i64;
        s.b(&[0xe9]).imm32(rel as u32);
    } else {
        let rel = (to * SLOT) as i64 - (from + 6) as i64;
        s.b(&[0x0f, 0x80 | (rng.byte() & 15)]).imm32(rel as u32);
    }
}

fn undefined(rng: &mut Rng, s: &mut Slot) {
    let forms: [&[u8]; 16] = [
        &[0x0f, 0x0b],       // ud2
        &[0x0f, 0xff, 0xc0], // ud0
        &[0x0f, 0xb9, 0xc0], // ud1
        &[0xd6],             // salc: invalid in 64-bit mode
        &[0x06],             // push es: invalid in 64-bit mode
        &[0x37],             // aaa: invalid in 64-bit mode
        &[0x60],             // pusha: invalid in 64-bit mode
        &[0xce],             // into: invalid in 64-bit mode
        &[0x8e, 0xc8],       // mov cs, ax
        &[0xf0, 0x90],       // lock nop
        &[0xf0, 0x89, 0xc0], // lock mov
        &[0x0f, 0x37],       // getsec (no SMX)
        &[0x0f, 0x01, 0xc1], // vmcall (the AMD guest's #UD, the Intel guest's exit)
        &[0x0f, 0x01, 0xd9], // vmmcall (the other way round)
        &[0x0f, 0x01, 0xc4], // vmxoff
        &[0x0f, 0x78, 0xc0], // vmread
    ];
    s.b(rng.pick(&forms));
}

fn memory(t: &ChaosTarget, rng: &mut Rng, s: &mut Slot) {
    let b = rng.pick(&BASES);
    let d = rng.pick(&BASES);
    let modrm = (d << 3) | b;
    s.movabs(b, t.address(rng));
    // One time in 48 a form no MMIO decoder takes (read-modify-write, locked): at MMIO
    // the backend gives up (an error), which ends the program.
    let form = if rng.chance(1, 48) {
        10 + rng.below(2)
    } else {
        rng.below(10)
    };
    match form {
        0 => s.b(&[0x88, modrm]),
        1 => s.b(&[0x66, 0x89, modrm]),
        2 => s.b(&[0x89, modrm]),
        3 => s.b(&[0x48, 0x89, modrm]),
        4 => s.b(&[0x8a, modrm]),
        5 => s.b(&[0x66, 0x8b, modrm]),
        6 => s.b(&[0x8b, modrm]),
        7 => s.b(&[0x48, 0x8b, modrm]),
        8 => s.b(&[0x0f, rng.pick(&[0xb6, 0xb7, 0xbe, 0xbf]), modrm]),
        9 => s.b(&[0xc7, b]).imm32(rng.next() as u32),
        // Read-modify-write and locked forms no MMIO decoder takes.
        10 => s.b(&[rng.pick(&[0x01, 0x31, 0x87]), modrm]),
        _ => s.b(&[0xf0, 0x0f, 0xc1, modrm]),
    };
}

fn mask(rng: &mut Rng, s: &mut Slot) {
    match rng.below(5) {
        0 => s.b(&[0xfa]),                                                 // cli
        1 => s.b(&[0xfb]),                                                 // sti
        2 => s.b(&[0xfb, 0xf4]),                                           // sti; hlt
        3 => s.b(&[0x9c, 0x58, 0x35, 0x00, 0x02, 0x00, 0x00, 0x50, 0x9d]), // flip IF
        _ => {
            // push imm32; popfq: IF and the arithmetic flags at random, rarely TF/AC/NT.
            let mut flags = 0x2 | (rng.next() as u32 & 0x8d5) | (rng.byte() as u32 & 1) << 9;
            if rng.chance(1, 8) {
                flags |= rng.pick(&[0x100, 0x4_0000, 0x4000, 0x400]);
            }
            s.b(&[0x68]).imm32(flags).b(&[0x9d])
        }
    };
}

fn msr(rng: &mut Rng) -> u32 {
    if rng.chance(1, 4) {
        rng.next() as u32
    } else {
        rng.pick(&MSRS)
    }
}

fn port(rng: &mut Rng) -> u16 {
    match rng.below(40) {
        0 => 0x604, // the shutdown port: SystemDown
        1..=20 => rng.pick(&PORTS),
        _ => rng.next() as u16,
    }
}

fn privileged(t: &ChaosTarget, rng: &mut Rng, s: &mut Slot) {
    match rng.below(22) {
        0 | 1 => {
            let m = msr(rng);
            s.b(&[0xb9]).imm32(m).b(&[0x0f, 0x32]);
        }
        2 | 3 => {
            let m = msr(rng);
            s.b(&[0xb9]).imm32(m).mov_eax(rng.next() as u32);
            s.b(&[0x99, 0x0f, 0x30]);
        }
        4 => {
            // Read a control register.
            let cr = rng.pick(&[0u8, 2, 3, 4]);
            s.b(&[0x0f, 0x20, 0xc0 | (cr << 3) | (rng.byte() & 7)]);
        }
        5 => {
            // Flip bits of CR0 or CR4 (the CPU refuses what it must with #GP).
            let cr = rng.pick(&[0u8, 4]);
            let bits = if cr == 0 {
                rng.pick(&[
                    0x2u32,
                    0x4,
                    0x8,
                    0x20,
                    0x1_0000,
                    0x4_0000,
                    0x4000_0000,
                    0x2000_0000,
                ])
            } else {
                rng.pick(&[
                    0x4u32, 0x8, 0x20, 0x80, 0x100, 0x200, 0x800, 0x1_0000, 0x4_0000, 0x10_0000,
                    0x1000,
                ])
            };
            s.b(&[0x0f, 0x20, 0xc0 | (cr << 3)]);
            s.b(&[0x48, 0x35]).imm32(bits);
            s.b(&[0x0f, 0x22, 0xc0 | (cr << 3)]);
        }
        6 => {
            // CR3: written back (a TLB flush), rarely a random root.
            if rng.chance(1, 16) {
                s.movabs(0, rng.next() & 0xffff_f000);
            } else {
                s.b(&[0x0f, 0x20, 0xd8]);
            }
            s.b(&[0x0f, 0x22, 0xd8]);
        }
        7 => {
            // CR8 (the TPR) read, or a debug register written. Not a CR8 write: QEMU 10.0's
            // TCG aborts when an SVM guest with V_INTR_MASKING writes CR8 (`cpu_interrupt`
            // without the big QEMU lock: "tcg_handle_interrupt: assertion failed").
            if rng.chance(1, 2) {
                s.b(&[0x44, 0x0f, 0x20, 0xc0 | (rng.byte() & 7)]);
            } else {
                s.mov_eax(rng.next() as u32);
                s.b(&[0x0f, 0x23, 0xc0 | (rng.pick(&[0u8, 6, 7]) << 3)]);
            }
        }
        8 => {
            s.movabs(0, t.address(rng)).b(&[0x0f, 0x01, 0x38]); // invlpg [rax]
        }
        9 | 10 => {
            let p = port(rng);
            s.b(&[0x66, 0xba]).b(&p.to_le_bytes());
            s.b(rng.pick(&[
                &[0xec][..],
                &[0xed],
                &[0x66, 0xed],
                &[0xee],
                &[0xef],
                &[0x66, 0xef],
            ]));
        }
        11 => {
            s.b(&[rng.pick(&[0xe4, 0xe5, 0xe6, 0xe7]), rng.byte()]);
        }
        12 => {
            s.b(&[0xf4]); // hlt
        }
        13 => {
            let leaf = rng.pick(&[
                0,
                1,
                7,
                0xb,
                0xd,
                0x4000_0000,
                0x8000_0000,
                0x8000_0001,
                0x8000_000a,
            ]);
            let leaf = if rng.chance(1, 4) {
                rng.next() as u32
            } else {
                leaf
            };
            s.mov_eax(leaf).b(&[0x31, 0xc9, 0x0f, 0xa2]);
        }
        14 => {
            s.b(rng.pick(&[
                &[0x0f, 0x31][..],         // rdtsc
                &[0x0f, 0x01, 0xf9],       // rdtscp
                &[0x0f, 0x09],             // wbinvd
                &[0x0f, 0x08],             // invd
                &[0x0f, 0x06],             // clts
                &[0x0f, 0x01, 0xf8],       // swapgs
                &[0x0f, 0x05],             // syscall
                &[0x48, 0x0f, 0x07],       // sysretq
                &[0x0f, 0x34],             // sysenter
                &[0x0f, 0x01, 0xc8],       // monitor
                &[0x0f, 0x01, 0xc9],       // mwait
                &[0x0f, 0x01, 0xd0],       // xgetbv
                &[0x48, 0x0f, 0xc7, 0xf0], // rdrand rax
                &[0x0f, 0x01, 0xe0],       // smsw eax
                &[0xf3, 0x90],             // pause
            ]));
        }
        15 => {
            // xsetbv with a random XCR and value.
            let xcr = if rng.chance(3, 4) {
                0
            } else {
                rng.next() as u32 & 3
            };
            s.b(&[0xb9]).imm32(xcr).mov_eax(rng.next() as u32 & 0xff);
            s.b(&[0x31, 0xd2, 0x0f, 0x01, 0xd1]);
        }
        16 => {
            s.b(&[0xb9])
                .imm32(rng.next() as u32 & 0x1_ffff)
                .b(&[0x0f, 0x33]); // rdpmc
        }
        17..=19 if t.x86_emulated && !rng.chance(1, 16) => {
            s.b(&[0x0f, 0x31]); // rdtsc
        }
        17 | 18 => {
            // int n: the platform's vectors, an exception's, or any.
            let n = match rng.below(3) {
                0 => rng.pick(&t.irq_vectors) as u8,
                1 => rng.below(32) as u8,
                _ => rng.byte(),
            };
            s.b(&[0xcd, n]);
        }
        19 => {
            s.b(&[rng.pick(&[0xcc, 0xf1])]); // int3, int1
        }
        20 => {
            // The local APIC: ICR or destination with a random value (IPIs, INIT-SIPI).
            let reg = rng.pick(&[0x300u64, 0x310, 0x300, 0x80, 0xb0]);
            s.movabs(3, 0xfee0_0000 + reg)
                .b(&[0xc7, 0x03])
                .imm32(rng.next() as u32);
        }
        _ => {
            // sgdt / sidt / str / sldt to a random address.
            s.movabs(0, t.address(rng));
            s.b(rng.pick(&[
                &[0x0f, 0x01, 0x00][..],
                &[0x0f, 0x01, 0x08],
                &[0x0f, 0x00, 0x08],
            ]));
        }
    }
}

fn hypercall(t: &ChaosTarget, rng: &mut Rng, s: &mut Slot) {
    let nr = match rng.below(4) {
        0 => HC_REPORT,
        1 => rng.pick(&[HC_DONE, HC_READY]),
        _ => rng.next(),
    };
    s.mov_eax(nr as u32);
    if rng.chance(1, 2) {
        s.b(&[0xbf]).imm32(rng.next() as u32); // mov edi, imm32: the first argument
    }
    s.b(t.hypercall);
}
