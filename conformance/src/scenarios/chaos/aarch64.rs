//! The AArch64 chaos generator: templates of one or a few instructions, back to back, then
//! `nop`s and a branch back to the start. The runtime's exception handler resumes at the
//! next instruction (+4). Branches only skip forward over the next template.

use alloc::vec::Vec;

use super::{ChaosTarget, Rng};
use crate::contract::{CHAOS_CODE_BYTES, HC_DONE, HC_REPORT};

/// System registers as (op0, op1, CRn, CRm, op2): identification, EL1 control, the
/// timers, the PMU, debug, GICv3's CPU interface, and EL2/EL3 ones (undefined at EL1).
const SYSREGS: [(u32, u32, u32, u32, u32); 36] = [
    (3, 0, 0, 0, 0),   // MIDR_EL1
    (3, 0, 0, 0, 5),   // MPIDR_EL1
    (3, 0, 0, 4, 0),   // ID_AA64PFR0_EL1
    (3, 0, 0, 7, 0),   // ID_AA64MMFR0_EL1
    (3, 0, 1, 0, 1),   // ACTLR_EL1
    (3, 0, 2, 0, 2),   // TCR_EL1
    (3, 0, 4, 0, 0),   // SPSR_EL1
    (3, 0, 4, 0, 1),   // ELR_EL1
    (3, 0, 4, 1, 0),   // SP_EL0 (undefined while SPSel is 0)
    (3, 0, 5, 2, 0),   // ESR_EL1
    (3, 0, 6, 0, 0),   // FAR_EL1
    (3, 0, 7, 4, 0),   // PAR_EL1
    (3, 0, 10, 2, 0),  // MAIR_EL1
    (3, 0, 13, 0, 1),  // CONTEXTIDR_EL1
    (3, 0, 13, 0, 4),  // TPIDR_EL1
    (3, 0, 14, 1, 0),  // CNTKCTL_EL1
    (3, 3, 14, 0, 0),  // CNTFRQ_EL0
    (3, 3, 14, 0, 2),  // CNTVCT_EL0
    (3, 3, 14, 2, 1),  // CNTP_CTL_EL0
    (3, 3, 14, 2, 2),  // CNTP_CVAL_EL0
    (3, 3, 14, 3, 0),  // CNTV_TVAL_EL0
    (3, 3, 14, 3, 1),  // CNTV_CTL_EL0
    (3, 3, 14, 3, 2),  // CNTV_CVAL_EL0
    (3, 3, 9, 12, 0),  // PMCR_EL0
    (3, 3, 9, 13, 0),  // PMCCNTR_EL0
    (2, 0, 0, 2, 2),   // MDSCR_EL1
    (2, 0, 1, 0, 4),   // OSLAR_EL1
    (2, 0, 0, 0, 4),   // DBGBVR0_EL1
    (3, 0, 12, 12, 5), // ICC_SRE_EL1
    (3, 0, 12, 12, 0), // ICC_IAR1_EL1
    (3, 4, 1, 1, 0),   // HCR_EL2
    (3, 4, 2, 1, 0),   // VTTBR_EL2
    (3, 4, 4, 0, 1),   // ELR_EL2
    (3, 4, 14, 1, 0),  // CNTHCTL_EL2
    (3, 6, 1, 1, 0),   // SCR_EL3
    (3, 6, 1, 0, 0),   // SCTLR_EL3
];

/// Written rarely: they take the runtime's handlers or the memory map away.
const DANGEROUS: [(u32, u32, u32, u32, u32); 4] = [
    (3, 0, 1, 0, 0),  // SCTLR_EL1
    (3, 0, 12, 0, 0), // VBAR_EL1
    (3, 0, 2, 0, 0),  // TTBR0_EL1
    (3, 0, 1, 0, 2),  // CPACR_EL1
];

struct Asm(Vec<u32>);

impl Asm {
    fn w(&mut self, insn: u32) {
        self.0.push(insn);
    }
    /// `movz` + three `movk`: any 64-bit value.
    fn li(&mut self, rd: u32, v: u64) {
        self.w(0xd280_0000 | ((v as u32 & 0xffff) << 5) | rd);
        for hw in 1..4 {
            self.w(0xf280_0000 | (hw << 21) | (((v >> (16 * hw)) as u32 & 0xffff) << 5) | rd);
        }
    }
    fn sysreg(
        &mut self,
        read: bool,
        (op0, op1, crn, crm, op2): (u32, u32, u32, u32, u32),
        rt: u32,
    ) {
        let base = if read { 0xd530_0000 } else { 0xd510_0000 };
        self.w(base | ((op0 - 2) << 19) | (op1 << 16) | (crn << 12) | (crm << 8) | (op2 << 5) | rt);
    }
}

fn reg(rng: &mut Rng) -> u32 {
    rng.below(29) as u32 // x0..x28
}

pub(super) fn program(t: &ChaosTarget, rng: &mut Rng) -> Vec<u8> {
    let words = CHAOS_CODE_BYTES / 4;
    let mut a = Asm(Vec::with_capacity(words));
    while a.0.len() < words - 32 {
        if rng.chance(1, 20) {
            let at = a.0.len();
            a.w(0);
            template(t, rng, &mut a);
            let off = (a.0.len() - at) as u32; // in words
            a.0[at] = match rng.below(3) {
                0 => 0x1400_0000 | off,                                 // b
                1 => 0x5400_0000 | (off << 5) | (rng.below(15) as u32), // b.cond
                _ => 0xb400_0000 | (off << 5) | reg(rng),               // cbz
            };
        } else {
            template(t, rng, &mut a);
        }
    }
    while a.0.len() < words - 1 {
        a.w(0xd503_201f); // nop
    }
    let back = (-((words - 1) as i32)) as u32 & 0x3ff_ffff;
    a.w(0x1400_0000 | back);
    a.0.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn template(t: &ChaosTarget, rng: &mut Rng, a: &mut Asm) {
    match rng.below(100) {
        0..=13 => noise(rng, a),
        14..=17 => a.w(rng.next() as u32),
        18..=25 => {
            let forms = [
                rng.next() as u32 & 0xffff,    // udf #imm
                0xd440_0000,                   // hlt #0 (no halting debug)
                0xd69f_03e0,                   // eret
                0xd500_4000 | 0xbf | (1 << 8), // msr spsel, #1
                0x1e20_1000,                   // fmov s0, #2.0 (FP may be off)
                0xd50b_7420 | reg(rng),        // dc zva (to wherever the register points)
            ];
            a.w(rng.pick(&forms));
        }
        26..=51 => memory(t, rng, a),
        52..=60 => {
            let imm = rng.below(16) as u32;
            // msr daifset / daifclr
            a.w(if rng.chance(1, 2) {
                0xd503_40df
            } else {
                0xd503_40ff
            } | (imm << 8));
        }
        61..=81 => privileged(t, rng, a),
        82..=91 => firmware(t, rng, a),
        _ => {
            let nr = match rng.below(3) {
                0 => HC_REPORT,
                1 => HC_DONE,
                _ => rng.next() & 0xffff_ffff,
            };
            // Outside the PSCI/SMCCC function-id ranges, so a hypercall.
            a.li(0, nr & 0x7fff_ffff);
            a.li(1, rng.next() & 0xffff);
            a.w(0xd400_0002); // hvc #0
        }
    }
}

fn noise(rng: &mut Rng, a: &mut Asm) {
    let (rd, rn, rm) = (rng.below(32) as u32, reg(rng), reg(rng));
    match rng.below(4) {
        0 => a.li(reg(rng), rng.next() >> rng.below(64)),
        1 => a.w(0x9100_0000 | ((rng.below(4096) as u32) << 10) | (rn << 5) | rd), // add (sp if rd = 31)
        2 => {
            a.w(rng.pick(&[0x9b00_7c00u32, 0x9ac0_0800, 0x9ac0_2000]) | (rm << 16) | (rn << 5) | rd)
        } // mul udiv lsl
        _ => {
            let op = rng.pick(&[
                0x8b00_0000u32,
                0xcb00_0000,
                0x8a00_0000,
                0xaa00_0000,
                0xca00_0000,
                0xeb00_0000,
            ]);
            a.w(op | (rm << 16) | ((rng.below(64) as u32) << 10) | (rn << 5) | rd);
        }
    }
}

fn memory(t: &ChaosTarget, rng: &mut Rng, a: &mut Asm) {
    let (base, data, data2) = (reg(rng), reg(rng), reg(rng));
    a.li(base, t.address(rng));
    let rb = (base << 5) | data;
    // One time in 48 a form without a valid syndrome: at MMIO the backend can only give
    // up (an error), which ends the program.
    let form = if rng.chance(1, 48) {
        9 + rng.below(5)
    } else {
        rng.below(9)
    };
    a.w(match form {
        0 => 0x3900_0000 | rb,                                           // strb
        1 => 0x7900_0000 | rb,                                           // strh
        2 => 0xb900_0000 | rb,                                           // str w
        3 => 0xf900_0000 | rb,                                           // str x
        4 => 0x3940_0000 | rb,                                           // ldrb
        5 => 0x7940_0000 | rb,                                           // ldrh
        6 => 0xb940_0000 | rb,                                           // ldr w
        7 => 0xf940_0000 | rb,                                           // ldr x
        8 => rng.pick(&[0x3980_0000u32, 0x7980_0000, 0xb980_0000]) | rb, // ldrsb ldrsh ldrsw
        // No valid syndrome for these: pairs, exclusives, atomics, writeback.
        9 => rng.pick(&[0xa940_0000u32, 0xa900_0000]) | (data2 << 10) | rb, // ldp / stp
        10 => rng.pick(&[0xc85f_7c00u32, 0xc8df_fc00]) | rb,                // ldxr / ldar
        11 => 0xf820_0000 | (data2 << 16) | rb,                             // ldadd
        12 => 0xf840_0c00 | (8 << 12) | rb,                                 // ldr x, [base, #8]!
        _ => rng.pick(&[0xd50b_7e20u32, 0xd508_7620, 0xd50b_7520, 0xd508_7800]) | base, // dc civac, dc ivac, ic ivau, at s1e1r
    });
}

fn privileged(t: &ChaosTarget, rng: &mut Rng, a: &mut Asm) {
    let rt = reg(rng);
    match rng.below(12) {
        0..=3 => {
            let r = if rng.chance(1, 4) {
                random_sysreg(rng)
            } else {
                rng.pick(&SYSREGS)
            };
            a.sysreg(true, r, rt);
        }
        4..=6 => {
            let r = match rng.below(16) {
                0 => rng.pick(&DANGEROUS),
                1..=4 => random_sysreg(rng),
                _ => rng.pick(&SYSREGS),
            };
            // The timers' compare values near their counters; anything elsewhere.
            let v = if r.2 == 14 { rng.below(4) } else { rng.next() };
            a.li(rt, v);
            a.sysreg(false, r, rt);
        }
        7 => a.w(rng.pick(&[0xd503_207fu32, 0xd503_205f, 0xd503_209f, 0xd503_203f])), // wfi wfe sev yield
        8 if rng.chance(1, 3) => {
            // eret to the next instruction, with the SPSR of the last exception or a random
            // one (EL0, AArch32, an illegal return...). IRQs masked first: one taken between
            // the `msr elr_el1` and the `eret` would leave ELR_EL1 at the `eret` itself, a
            // loop without exits.
            a.w(0xd503_42df); // msr daifset, #2
            if rng.chance(1, 3) {
                a.li(rt, rng.next() & 0xf3ff_03df);
                a.sysreg(false, (3, 0, 4, 0, 0), rt); // SPSR_EL1
            }
            a.w(0x1000_0000 | (3 << 5) | rt); // adr rt, . + 12
            a.sysreg(false, (3, 0, 4, 0, 1), rt); // ELR_EL1
            a.w(0xd69f_03e0); // eret
        }
        8 => a.w(rng.pick(&[
            0xd508_871fu32,
            0xd508_831f,
            0xd508_751f,
            0xd503_3fdf,
            0xd503_3f9f,
        ])), // tlbi, ic iallu, isb, dsb
        9 => {
            a.li(rt, t.address(rng) >> 12);
            a.w(0xd508_8720 | rt); // tlbi vae1
        }
        10 => {
            // svc, brk, or hvc/smc with a random immediate.
            let imm = (rng.next() as u32 & 0xffff) << 5;
            a.w(rng.pick(&[0xd400_0001u32, 0xd420_0000, 0xd400_0002, 0xd400_0003]) | imm);
        }
        _ => {
            // Arm the virtual timer to fire soon.
            a.li(rt, rng.below(2000));
            a.sysreg(false, (3, 3, 14, 3, 0), rt); // CNTV_TVAL_EL0
            a.li(rt, 1);
            a.sysreg(false, (3, 3, 14, 3, 1), rt); // CNTV_CTL_EL0
        }
    }
}

fn random_sysreg(rng: &mut Rng) -> (u32, u32, u32, u32, u32) {
    (
        2 + rng.below(2) as u32,
        rng.below(8) as u32,
        rng.below(16) as u32,
        rng.below(16) as u32,
        rng.below(8) as u32,
    )
}

/// PSCI and SMCCC calls over `hvc` or `smc`.
fn firmware(t: &ChaosTarget, rng: &mut Rng, a: &mut Asm) {
    let (x0, x1, x2, x3): (u64, u64, u64, u64) = match rng.below(60) {
        0 => (0x8400_0002, 0, 0, 0),                              // CPU_OFF
        1 => (rng.pick(&[0x8400_0008u64, 0x8400_0009]), 0, 0, 0), // SYSTEM_OFF, SYSTEM_RESET
        2..=11 => (
            0xc400_0003, // CPU_ON
            {
                let any = rng.next();
                rng.pick(&[0u64, 1, 2, 0x100, any])
            },
            t.code_base as u64 + 4 * rng.below(256),
            rng.next(),
        ),
        12..=17 => (0xc400_0004, rng.below(3), rng.below(3), 0), // AFFINITY_INFO
        18..=25 => {
            let any = rng.next();
            (
                0x8400_000a,
                rng.pick(&[0xc400_0003u64, 0x8400_0002, 0x8400_0000, any]),
                0,
                0,
            ) // FEATURES
        }
        26..=31 => (
            rng.pick(&[0xc400_0001u64, 0x8400_0001]),
            rng.next(),
            t.code_base as u64,
            0,
        ), // CPU_SUSPEND
        32..=41 => (
            rng.pick(&[
                0x8400_0000u64,
                0x8400_0006,
                0x8000_0000,
                0x8000_0001,
                0x8000_8000,
            ]),
            rng.next(),
            0,
            0,
        ),
        42..=49 => (0x8400_0000 | rng.below(0x20), rng.next(), rng.next(), 0),
        _ => (rng.next(), rng.next(), rng.next(), rng.next()),
    };
    a.li(0, x0);
    a.li(1, x1);
    a.li(2, x2);
    a.li(3, x3);
    a.w(rng.pick(&[0xd400_0002u32, 0xd400_0002, 0xd400_0003, 0xd400_0022])); // hvc #0, smc #0, hvc #1
}
