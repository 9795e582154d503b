//! Could `iced-x86` replace the hand-written x86 MMIO decoder? Decode speed on the host,
//! and the heap its decoder tables take (the no_std code size is measured separately, see
//! the README): `cargo run --release -p axvcpu-decode-check --example iced_vs_ours`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use axvcpu_decode_check::Rng;
use iced_x86::{Decoder, DecoderOptions};

struct Counting;
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn main() {
    // MMIO accesses as guests make them: the mov forms, with random ModRM/SIB/disp/imm.
    let opcodes: [&[u8]; 8] = [
        &[0x8b],
        &[0x89],
        &[0x48, 0x8b],
        &[0x88],
        &[0x0f, 0xb6],
        &[0x66, 0xc7],
        &[0xc7],
        &[0x48, 0x63],
    ];
    let mut rng = Rng::new(7);
    let mut inputs = Vec::new();
    while inputs.len() < 1_000_000 {
        let mut b = opcodes[rng.below(opcodes.len())].to_vec();
        b.push((rng.next_u64() as u8) & 0xbf); // mod != 3
        while b.len() < 16 {
            b.push(rng.next_u64() as u8);
        }
        if axvcpu_x86::decode::decode(&b).is_ok() {
            inputs.push(b);
        }
    }

    let before = ALLOCATED.load(Ordering::Relaxed);
    let mut d = Decoder::new(64, &inputs[0], DecoderOptions::NONE);
    black_box(d.decode());
    let tables = ALLOCATED.load(Ordering::Relaxed) - before;

    for round in 0..3 {
        let t = Instant::now();
        let mut sum = 0usize;
        for b in &inputs {
            if let Ok(d) = axvcpu_x86::decode::decode(black_box(b)) {
                sum += d.len;
            }
        }
        let ours = t.elapsed();
        let t = Instant::now();
        let mut sum2 = 0usize;
        for b in &inputs {
            // A fresh decoder per instruction, as a backend decodes one per exit.
            let mut d = Decoder::new(64, black_box(b), DecoderOptions::NONE);
            let i = d.decode();
            sum2 += i.len() + i.memory_size() as usize + i.op0_register() as usize;
        }
        let iced = t.elapsed();
        println!(
            "round {round}: {} instructions: ours {:.1} ns each, iced-x86 {:.1} ns each ({sum} {sum2})",
            inputs.len(),
            ours.as_nanos() as f64 / inputs.len() as f64,
            iced.as_nanos() as f64 / inputs.len() as f64,
        );
    }
    println!("iced-x86 decoder tables: {tables} bytes of heap, built on first use");
}
