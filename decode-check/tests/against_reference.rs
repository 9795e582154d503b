//! The deterministic pass `cargo xtask test` runs: systematic and seeded-random inputs for
//! each decoder, compared with its reference (the long coverage-guided runs are
//! `cargo xtask fuzz`). Each test fails on the first mismatches it finds, printing them,
//! and prints what was refused by design (run with `--nocapture` to see it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axvcpu_decode_check::{aarch64, riscv, x86, Mismatch, Rng, Verdict};
use std::collections::BTreeMap;

#[derive(Default)]
struct Tally {
    inputs: u64,
    agree: u64,
    refused: BTreeMap<&'static str, u64>,
    mismatches: Vec<Mismatch>,
}

impl Tally {
    fn add(&mut self, r: Result<Verdict, Mismatch>) {
        self.inputs += 1;
        match r {
            Ok(Verdict::Agree) => self.agree += 1,
            Ok(Verdict::NotAccess) => {}
            Ok(Verdict::RefusedByDesign(why)) => *self.refused.entry(why).or_default() += 1,
            Err(m) => self.mismatches.push(m),
        }
    }

    fn finish(self, name: &str, min_agree: u64) {
        println!(
            "{name}: {} inputs, {} agreed, {} mismatches",
            self.inputs,
            self.agree,
            self.mismatches.len()
        );
        for (why, n) in &self.refused {
            println!("  refused by design ({n}): {why}");
        }
        for m in self.mismatches.iter().take(20) {
            println!("  {m}");
        }
        assert!(
            self.mismatches.is_empty(),
            "{name}: {} mismatches",
            self.mismatches.len()
        );
        // A pass that compared (almost) nothing proves nothing.
        assert!(
            self.agree >= min_agree,
            "{name}: only {} agreed",
            self.agree
        );
    }
}

/// Prefix sequences that change what a `mov` means (and some that make it invalid).
const PREFIXES: &[&[u8]] = &[
    &[],
    &[0x66],
    &[0x67],
    &[0xf0],
    &[0xf2],
    &[0xf3],
    &[0x65],
    &[0x40],
    &[0x41],
    &[0x44],
    &[0x48],
    &[0x4c],
    &[0x4f],
    &[0x66, 0x48],
    &[0x48, 0x66],
    &[0x44, 0x65],
    &[0x48, 0x40],
    &[0x67, 0x66, 0x41],
    &[
        0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
    ],
];

/// Opcodes (one or two bytes) our decoder handles, and neighbours it must refuse.
const OPCODES: &[&[u8]] = &[
    &[0x88],
    &[0x89],
    &[0x8a],
    &[0x8b],
    &[0x8c],
    &[0x8e],
    &[0xc6],
    &[0xc7],
    &[0xa0],
    &[0xa1],
    &[0xa2],
    &[0xa3],
    &[0x63],
    &[0x0f, 0xb6],
    &[0x0f, 0xb7],
    &[0x0f, 0xbe],
    &[0x0f, 0xbf],
    &[0x0f, 0xb8],
    &[0x0f, 0x38, 0xf0],
    &[0x86],
    &[0x87],
    &[0x0f, 0xc3],
    &[0x0f, 0x38, 0xf1],
    &[0x0f, 0xb1],
    &[0x01],
    &[0xa4],
    &[0xab],
];

#[test]
fn x86_mmio_decoder_agrees_with_iced() {
    let mut t = Tally::default();
    let mut rng = Rng::new(1);
    // Systematic: every prefix set x opcode x ModRM, with random SIB/displacement/imm.
    for prefix in PREFIXES {
        for op in OPCODES {
            for modrm in 0..=255u8 {
                let mut b = prefix.to_vec();
                b.extend_from_slice(op);
                b.push(modrm);
                while b.len() < 16 {
                    b.push(rng.next_u64() as u8);
                }
                t.add(x86::check(&b));
                // and every truncation of it
                let cut = 1 + rng.below(b.len() - 1);
                t.add(x86::check(&b[..cut]));
            }
        }
    }
    // Random: bytes drawn mostly from prefixes and the opcodes above.
    let pool: Vec<u8> = PREFIXES
        .iter()
        .chain(OPCODES)
        .flat_map(|s| s.iter().copied())
        .collect();
    for _ in 0..100_000 {
        let len = 1 + rng.below(16);
        let b: Vec<u8> = (0..len)
            .map(|_| {
                if rng.below(2) == 0 {
                    pool[rng.below(pool.len())]
                } else {
                    rng.next_u64() as u8
                }
            })
            .collect();
        t.add(x86::check(&b));
    }
    t.finish("x86 decode", 50_000);
}

#[test]
fn x86_io_lengths_agree_with_iced() {
    let mut t = Tally::default();
    let mut rng = Rng::new(2);
    let ops = [
        0xe4u8, 0xe5, 0xe6, 0xe7, 0xec, 0xed, 0xee, 0xef, 0x6c, 0x6f, 0x90,
    ];
    for prefix in PREFIXES {
        for op in ops {
            for tail in 0..4usize {
                let mut b = prefix.to_vec();
                b.push(op);
                for _ in 0..tail {
                    b.push(rng.next_u64() as u8);
                }
                t.add(x86::check_io(&b));
            }
        }
    }
    t.finish("x86 io_insn_len", 500);
}

/// The ISS bits that may be set for exception class `ec` (RES0 bits clear).
fn res0_clear(ec: u64, iss: u64) -> u64 {
    match ec {
        0x01 => 0x1ff_ffff & !0xf_fc18,
        0x16 | 0x17 => 0xffff,
        0x18 => 0x3f_ffff,
        0x20 | 0x21 => 0x6bf,
        _ if iss & (1 << 24) != 0 => 0x1ff_e7ff,
        _ => 0x100_27ff,
    }
}

#[test]
fn aarch64_syndromes_agree_with_aarch64_esr_decoder() {
    let mut t = Tally::default();
    let mut rng = Rng::new(3);
    for ec in [0x01u64, 0x16, 0x17, 0x18, 0x20, 0x21, 0x24, 0x25] {
        for _ in 0..20_000 {
            let iss = rng.next_u64() & 0x1ff_ffff;
            // Keep RES0 bits mostly clear so most inputs are architecturally possible.
            let iss = if rng.below(8) == 0 {
                iss
            } else {
                iss & res0_clear(ec, iss)
            };
            t.add(aarch64::check_esr((ec << 26) | (1 << 25) | iss));
        }
        // Every fault status code.
        for fsc in 0..64 {
            t.add(aarch64::check_esr((ec << 26) | (1 << 25) | fsc));
        }
    }
    for _ in 0..20_000 {
        t.add(aarch64::check_esr(rng.next_u64() & 0xffff_ffff));
    }
    t.finish("aarch64 ESR", 100_000);
}

#[test]
fn aarch64_faulting_loads_and_stores_agree_with_yaxpeax() {
    let mut t = Tally::default();
    let mut rng = Rng::new(4);
    for _ in 0..300_000 {
        // Loads and stores: op0 bits x1x0 (bit 27 set, bit 25 clear).
        let w = (rng.next_u64() as u32 | (1 << 27)) & !(1 << 25);
        t.add(aarch64::check_insn(w));
    }
    for _ in 0..50_000 {
        t.add(aarch64::check_insn(rng.next_u64() as u32));
    }
    t.finish("aarch64 instruction syndromes", 20_000);
}

#[test]
fn riscv_loads_stores_and_csrs_agree_with_raki() {
    let mut t = Tally::default();
    let mut rng = Rng::new(5);
    // Every 16-bit instruction.
    for i in 0..=0xffffu32 {
        if i & 3 != 3 {
            t.add(riscv::check(i));
        }
    }
    // 32-bit: LOAD, STORE, SYSTEM and AMO opcodes with random fields, then anything.
    for op in [0x03u32, 0x23, 0x73, 0x2f] {
        for _ in 0..100_000 {
            t.add(riscv::check((rng.next_u64() as u32 & !0x7f) | op));
        }
    }
    for _ in 0..100_000 {
        t.add(riscv::check(rng.next_u64() as u32 | 3));
    }
    t.finish("riscv", 100_000);
}
