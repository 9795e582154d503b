//! AArch64: a faulting instruction word (bytes 0..4) against yaxpeax-arm, and an `ESR_EL2`
//! value (bytes 4..12, or the word alone) against aarch64-esr-decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut b = [0u8; 12];
    let n = data.len().min(12);
    b[..n].copy_from_slice(&data[..n]);
    let word = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    if let Err(m) = axvcpu_decode_check::aarch64::check_insn(word) {
        panic!("{m}");
    }
    let esr = if n > 4 {
        u64::from_le_bytes([b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11]])
    } else {
        u64::from(word)
    };
    if let Err(m) = axvcpu_decode_check::aarch64::check_esr(esr) {
        panic!("{m}");
    }
});
