//! RISC-V: a 16- or 32-bit instruction (little-endian bytes) against raki (and the Zcb
//! table).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut b = [0u8; 4];
    let n = data.len().min(4);
    b[..n].copy_from_slice(&data[..n]);
    if let Err(m) = axvcpu_decode_check::riscv::check(u32::from_le_bytes(b)) {
        panic!("{m}");
    }
});
