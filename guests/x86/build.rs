//! Writes the `contract_asm!` macro with the absolute path of `src/contract.s`.
//!
//! `include_str!` resolves a relative path against the file where the outermost macro was
//! invoked, that is, against the user's crate, so the exported macro must name the file by
//! its absolute path; this crate's directory is known only here.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let path = |file: &str| {
        let p = dir.join("src").join(file);
        p.to_str().expect("the source path is UTF-8").to_owned()
    };
    let (contract, chaos) = (path("contract.s"), path("chaos.s"));
    let text = format!(
        "/// The text of `src/contract.s`: the x86-64 contract programs, for a `global_asm!`\n\
         /// template (see the crate documentation for what the user supplies).\n\
         #[macro_export]\n\
         macro_rules! contract_asm {{\n    () => {{\n        include_str!({contract:?})\n    }};\n}}\n\
         /// The text of `src/chaos.s`: the x86-64 chaos runtime, for a `global_asm!` template\n\
         /// after [`contract_asm!`] (see the crate documentation).\n\
         #[macro_export]\n\
         macro_rules! chaos_asm {{\n    () => {{\n        include_str!({chaos:?})\n    }};\n}}\n"
    );
    std::fs::write(out.join("contract_asm.rs"), text).expect("writing OUT_DIR/contract_asm.rs");
    println!("cargo:rerun-if-changed=build.rs");
}
