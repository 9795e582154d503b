//! x86: `axvcpu_x86::decode::{decode, io_insn_len}` against iced-x86 on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(m) = axvcpu_decode_check::x86::check(data) {
        panic!("{m}");
    }
    if let Err(m) = axvcpu_decode_check::x86::check_io(data) {
        panic!("{m}");
    }
});
