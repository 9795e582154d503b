//! Links with `linker.ld` (non-PIE: the 32-bit PVH entry and the AP trampoline use absolute
//! addresses) only for the bare-metal x86-64 target; host builds are a stub.
fn main() {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    println!("cargo:rerun-if-changed=linker.ld");
    if arch == "x86_64" && os == "none" {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
        println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
        println!("cargo:rustc-link-arg-bins=--no-pie");
    }
}
