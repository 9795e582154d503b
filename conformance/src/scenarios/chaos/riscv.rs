//! The RISC-V chaos generator: templates of one or a few instructions (compressed ones
//! among them), back to back, then `nop`s and a jump back to the start. The runtime's
//! exception handler resumes after the faulting instruction (+2 or +4 from its low bits),
//! so templates need no alignment. Branches only skip forward over the next template.

use alloc::vec::Vec;

use super::{ChaosTarget, Rng};
use crate::contract::{CHAOS_CODE_BYTES, HC_DONE, HC_REPORT};

/// Registers templates compute in: t0-t2, s1, a0-a7, s2-s11, t3-t6 (never x0-x4, s0).
const POOL: [u32; 24] = [
    5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29,
];

/// CSRs worth reading or writing: supervisor (the runtime's `stvec`, `sscratch` and
/// `sepc`, `scause` aside), counters, hypervisor and machine ones (VS-mode takes a
/// virtual-instruction or illegal-instruction exception), debug.
const CSRS: [u32; 26] = [
    0x100, 0x104, 0x106, 0x10a, 0x143, 0x144, 0x14d, 0x180, 0x5a8, 0xc00, 0xc01, 0xc02, 0xc03,
    0xc80, 0x600, 0x602, 0x604, 0x643, 0x680, 0x200, 0x300, 0x305, 0x341, 0xf14, 0x7b0, 0x7a0,
];

const SBI_TIME: u64 = 0x5449_4d45;
const SBI_IPI: u64 = 0x73_5049;
const SBI_RFENCE: u64 = 0x5246_4e43;
const SBI_HSM: u64 = 0x48_534d;
const SBI_SRST: u64 = 0x5352_5354;
const SBI_DBCN: u64 = 0x4442_434e;

struct Asm(Vec<u8>);

impl Asm {
    fn w(&mut self, insn: u32) {
        self.0.extend_from_slice(&insn.to_le_bytes());
    }
    fn h(&mut self, insn: u16) {
        self.0.extend_from_slice(&insn.to_le_bytes());
    }
    fn i(&mut self, op: u32, f3: u32, rd: u32, rs1: u32, imm: i64) {
        self.w(((imm as u32 & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op);
    }
    fn r(&mut self, f7: u32, f3: u32, rd: u32, rs1: u32, rs2: u32) {
        self.w((f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | 0x33);
    }
    fn store(&mut self, f3: u32, rs2: u32, rs1: u32, imm: i64) {
        let imm = imm as u32;
        self.w(((imm >> 5 & 0x7f) << 25)
            | (rs2 << 20)
            | (rs1 << 15)
            | (f3 << 12)
            | ((imm & 0x1f) << 7)
            | 0x23);
    }
    fn csr(&mut self, f3: u32, rd: u32, csr: u32, rs1: u32) {
        self.w((csr << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | 0x73);
    }
    /// `li rd, v` as `lui`/`addiw`/`slli`/`addi`.
    fn li(&mut self, rd: u32, v: i64) {
        let lo = (v << 52) >> 52;
        if v == (v as i32) as i64 {
            let hi = (v.wrapping_sub(lo) >> 12) & 0xf_ffff;
            if hi != 0 {
                self.w(((hi as u32) << 12) | (rd << 7) | 0x37);
                if lo != 0 {
                    self.i(0x1b, 0, rd, rd, lo);
                }
            } else {
                self.i(0x13, 0, rd, 0, lo);
            }
            return;
        }
        let hi = v.wrapping_sub(lo) >> 12;
        let tz = hi.trailing_zeros();
        self.li(rd, hi >> tz);
        self.i(0x13, 1, rd, rd, (12 + tz) as i64);
        if lo != 0 {
            self.i(0x13, 0, rd, rd, lo);
        }
    }
    fn ecall(&mut self) {
        self.w(0x0000_0073);
    }
}

pub(super) fn program(t: &ChaosTarget, rng: &mut Rng) -> Vec<u8> {
    let mut a = Asm(Vec::with_capacity(CHAOS_CODE_BYTES));
    // The longest template is well under 128 bytes.
    while a.0.len() < CHAOS_CODE_BYTES - 128 {
        if rng.chance(1, 20) {
            // A forward branch over the next template.
            let at = a.0.len();
            a.w(0);
            template(t, rng, &mut a);
            let off = (a.0.len() - at) as u32;
            let (rs1, rs2) = (rng.pick(&POOL), rng.pick(&POOL));
            let f3 = rng.pick(&[0u32, 1, 4, 5, 6, 7]);
            let insn = ((off >> 12 & 1) << 31)
                | ((off >> 5 & 0x3f) << 25)
                | (rs2 << 20)
                | (rs1 << 15)
                | (f3 << 12)
                | ((off >> 1 & 0xf) << 8)
                | ((off >> 11 & 1) << 7)
                | 0x63;
            a.0[at..at + 4].copy_from_slice(&insn.to_le_bytes());
        } else {
            template(t, rng, &mut a);
        }
    }
    while a.0.len() < CHAOS_CODE_BYTES - 4 {
        a.h(0x0001); // c.nop
    }
    // jal x0, back to the start.
    let off = -((CHAOS_CODE_BYTES - 4) as i64) as u32;
    a.w(((off >> 20 & 1) << 31)
        | ((off >> 1 & 0x3ff) << 21)
        | ((off >> 11 & 1) << 20)
        | ((off >> 12 & 0xff) << 12)
        | 0x6f);
    a.0
}

fn template(t: &ChaosTarget, rng: &mut Rng, a: &mut Asm) {
    match rng.below(100) {
        0..=13 => noise(rng, a),
        14..=17 => {
            if rng.chance(1, 2) {
                a.w(rng.next() as u32);
            } else {
                a.h(rng.next() as u16);
            }
        }
        18..=25 => {
            let forms = [
                0x0000_0000u32, // two c.unimp
                0xffff_ffff,
                0x3020_0073,                                                    // mret
                0x7b20_0073,                                                    // dret
                0x0001_2007,                                                    // flw (FS off)
                0x0200_0053,                                                    // fadd.s
                0xc000_1073, // csrw cycle, x0: read-only
                0x6c00_4073 | (rng.pick(&POOL) << 15) | (rng.pick(&POOL) << 7), // hlv.d
                0x2220_0073, // hfence.vvma
                0x6220_0073, // hfence.gvma
            ];
            a.w(rng.pick(&forms));
        }
        26..=51 => memory(t, rng, a),
        52..=60 => mask(rng, a),
        61..=83 => privileged(t, rng, a),
        84..=91 => sbi(t, rng, a),
        _ => {
            a.li(17, axvcpu::RISCV_HYPERCALL_EXT as i64);
            let nr = match rng.below(3) {
                0 => HC_REPORT,
                1 => HC_DONE,
                _ => rng.next() & 0xffff_ffff,
            };
            a.li(16, nr as i64);
            a.li(10, (rng.next() & 0xffff) as i64);
            a.ecall();
        }
    }
}

fn noise(rng: &mut Rng, a: &mut Asm) {
    let (rd, rs1, rs2) = (rng.pick(&POOL), rng.pick(&POOL), rng.pick(&POOL));
    match rng.below(4) {
        0 => a.li(rd, rng.next() as i64 >> rng.below(64)),
        1 => a.i(
            0x13,
            rng.pick(&[0u32, 2, 3, 4, 6, 7]),
            rd,
            rs1,
            rng.below(4096) as i64,
        ),
        2 => a.r(1, rng.below(8) as u32, rd, rs1, rs2), // mul, div, rem...
        _ => a.r(
            if rng.chance(1, 4) { 0x20 } else { 0 },
            rng.below(8) as u32,
            rd,
            rs1,
            rs2,
        ),
    }
}

fn memory(t: &ChaosTarget, rng: &mut Rng, a: &mut Asm) {
    let base = rng.pick(&POOL);
    let data = rng.pick(&POOL);
    a.li(base, t.address(rng) as i64);
    match rng.below(10) {
        0..=3 => a.i(0x03, rng.pick(&[0u32, 1, 2, 3, 4, 5, 6]), data, base, 0),
        4..=6 => a.store(rng.below(4) as u32, data, base, 0),
        7 => {
            // c.ld / c.sd / c.lw / c.sw with base and data among x8..x15 (s1, a0-a5).
            let cb = rng.pick(&[9u32, 10, 11, 12, 13, 14, 15]);
            a.li(cb, t.address(rng) as i64);
            let cd = rng.pick(&[9u32, 10, 11, 12, 13, 14, 15]) - 8;
            let f = rng.pick(&[0b011u16, 0b111, 0b010, 0b110]);
            a.h((f << 13) | (((cb - 8) as u16) << 7) | ((cd as u16) << 2));
        }
        8 if rng.chance(1, 8) => {
            // An atomic (no MMIO decoder takes them: at MMIO the backend gives up).
            let f5 = rng.pick(&[0u32, 1, 2, 3, 4, 8, 0xc]);
            a.w((f5 << 27)
                | (data << 20)
                | (base << 15)
                | (rng.pick(&[2u32, 3]) << 12)
                | (data << 7)
                | 0x2f);
        }
        _ => {
            // A load with an offset, crossing into the next page one time in eight.
            let off = if rng.chance(1, 8) {
                2044
            } else {
                rng.below(64) as i64 - 32
            };
            a.i(0x03, rng.pick(&[2u32, 3]), data, base, off);
        }
    }
}

fn mask(rng: &mut Rng, a: &mut Asm) {
    let t = rng.pick(&POOL);
    match rng.below(4) {
        0 => a.csr(6, 0, 0x100, 2), // csrsi sstatus, SIE
        1 => a.csr(7, 0, 0x100, 2), // csrci sstatus, SIE
        2 => {
            a.li(t, (rng.next() & 0x222) as i64);
            a.csr(rng.pick(&[2u32, 3]), 0, 0x104, t); // csrs/csrc sie
        }
        _ => {
            // sip: raise or clear the software interrupt ourselves.
            a.csr(rng.pick(&[6u32, 7]), 0, 0x144, 2);
        }
    }
}

fn privileged(t: &ChaosTarget, rng: &mut Rng, a: &mut Asm) {
    let (rd, rs) = (rng.pick(&POOL), rng.pick(&POOL));
    match rng.below(12) {
        0..=3 => {
            let csr = if rng.chance(1, 4) {
                rng.below(4096) as u32
            } else {
                rng.pick(&CSRS)
            };
            a.csr(2, rd, csr, 0); // csrr
        }
        4..=6 => {
            let csr = if rng.chance(1, 4) {
                // Not the runtime's own: stvec, sscratch, sepc, scause.
                let c = rng.below(4096) as u32;
                if matches!(c, 0x105 | 0x140 | 0x141 | 0x142) {
                    0x5a8
                } else {
                    c
                }
            } else {
                rng.pick(&CSRS)
            };
            let value = if csr == 0x180 { 0 } else { rng.next() as i64 };
            a.li(rs, value);
            a.csr(rng.pick(&[1u32, 2, 3]), rd, csr, rs);
        }
        7 => a.w(0x1050_0073), // wfi
        8 if rng.chance(1, 3) => {
            // sret to the next instruction (auipc; addi; csrw sepc; sret), interrupts
            // masked first: one taken before the `sret` would leave sepc at the `sret`
            // itself, a loop without exits.
            a.csr(7, 0, 0x100, 2); // csrci sstatus, SIE
            a.w(0x17 | (rs << 7));
            a.i(0x13, 0, rs, rs, 16);
            a.csr(1, 0, 0x141, rs);
            a.w(0x1020_0073);
        }
        8 => a.w(rng.pick(&[0x0010_0073u32, 0x0000_100f])), // ebreak, fence.i
        9 => {
            a.li(rs, t.address(rng) as i64);
            a.w(0x1200_0073 | (rs << 15)); // sfence.vma rs
        }
        10 => {
            // rdtime, then arm the timer a little ahead (Sstc's stimecmp where there is one).
            a.csr(2, rd, 0xc01, 0);
            a.i(0x13, 0, rd, rd, rng.below(2000) as i64);
            a.csr(1, 0, 0x14d, rd);
        }
        _ => {
            // c.ebreak or an FP load with FS off (illegal), compressed.
            a.h(rng.pick(&[0x9002u16, 0x2000]));
        }
    }
}

fn sbi(t: &ChaosTarget, rng: &mut Rng, a: &mut Asm) {
    let (ext, fid, a0, a1, a2): (u64, u64, i64, i64, i64) = match rng.below(60) {
        0 => (SBI_SRST, 0, rng.below(3) as i64, 0, 0),
        1 => (SBI_HSM, 1, 0, 0, 0), // hart_stop
        2 => (8, 0, 0, 0, 0),       // legacy shutdown
        3..=10 => (
            SBI_HSM,
            rng.pick(&[0u64, 0, 2, 3]),
            rng.pick(&[0i64, 1, 2, -1, 0x8000_0000]),
            t.code_base as i64 + 4 * rng.below(64) as i64,
            rng.next() as i64,
        ),
        11..=20 => {
            let soon = rng.below(1 << 20) as i64;
            (SBI_TIME, 0, rng.pick(&[-1i64, 0, 1 << 40, soon]), 0, 0)
        }
        21..=26 => (SBI_IPI, 0, rng.below(4) as i64, rng.pick(&[0i64, 1, -1]), 0),
        27..=32 => (
            SBI_RFENCE,
            rng.below(7),
            rng.below(4) as i64,
            0,
            rng.next() as i64,
        ),
        // The debug console's writes from unmapped or MMIO space only (refused; guest
        // bytes on the host's console would garble the report), and its read.
        33..=38 => (
            SBI_DBCN,
            rng.below(2),
            rng.below(16) as i64,
            if rng.chance(1, 2) {
                (t.layout.mmio_base.as_usize() as u64 + rng.below(4096)) as i64
            } else {
                (rng.next() | 1 << 40) as i64
            },
            0,
        ),
        39..=46 => (0x10, rng.below(8), rng.next() as i64 & 0xffff_ffff, 0, 0),
        // Legacy calls but console_putchar (1).
        47..=52 => (
            rng.pick(&[0u64, 2, 3, 4, 5, 6, 7]),
            0,
            rng.byte() as i64,
            0,
            0,
        ),
        _ => (
            rng.next() & 0xffff_ffff,
            rng.below(8),
            rng.next() as i64,
            rng.next() as i64,
            0,
        ),
    };
    a.li(17, ext as i64);
    a.li(16, fid as i64);
    a.li(10, a0);
    a.li(11, a1);
    a.li(12, a2);
    a.ecall();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the `lui`/`addiw`/`addi`/`slli` sequence `li` writes.
    fn run(code: &[u8]) -> i64 {
        let mut x = [0i64; 32];
        for w in code.chunks(4) {
            let i = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            let (rd, rs1) = ((i >> 7 & 31) as usize, (i >> 15 & 31) as usize);
            let imm = (i as i32 >> 20) as i64;
            x[rd] = match (i & 0x7f, i >> 12 & 7) {
                (0x37, _) => ((i & 0xffff_f000) as i32) as i64,
                (0x1b, 0) => (x[rs1].wrapping_add(imm) as i32) as i64,
                (0x13, 0) => x[rs1].wrapping_add(imm),
                (0x13, 1) => x[rs1] << (imm & 63),
                other => panic!("li wrote {other:?}"),
            };
        }
        x[5]
    }

    #[test]
    fn li_loads_every_value() {
        let mut rng = Rng::new(3);
        let fixed = [
            0,
            1,
            -1,
            2047,
            -2048,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
            i64::MAX,
            i64::MIN,
        ];
        for v in fixed
            .into_iter()
            .chain((0..10_000).map(|_| rng.next() as i64 >> rng.below(64)))
        {
            let mut a = Asm(Vec::new());
            a.li(5, v);
            assert_eq!(run(&a.0), v, "{v:#x}");
        }
    }
}
