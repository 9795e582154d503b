//! `cargo xtask run` and `cargo xtask test`: see README.md.
fn main() {}
