//! The project's task runner (`cargo xtask`, see README.md):
//!
//! - `cargo xtask run [kvm|riscv|aarch64]`: runs the main job: a demo guest on our vCPUs
//!   (default: the hosted KVM backend); `riscv`/`aarch64` boot a test hypervisor in QEMU.
//! - `cargo xtask test`: installs what a fresh machine lacks, then runs every check and test.
//! - `cargo xtask bench`: prints the benchmark figures.

mod aarch64;
mod cmd;
mod riscv;
mod setup;
mod test;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(args.get(1).map(String::as_str).unwrap_or("kvm")),
        Some("test") => test::all(),
        Some("bench") => bench(),
        _ => Err(
            "usage: cargo xtask run [kvm|riscv|aarch64] | cargo xtask test | cargo xtask bench"
                .to_string(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("xtask: {why}");
            ExitCode::FAILURE
        }
    }
}

fn run(which: &str) -> Result<(), String> {
    match which {
        "kvm" => {
            setup::require_kvm()?;
            cmd::cargo(&["run", "-p", "axvcpu-kvm", "--release", "--example", "demo"])
        }
        "riscv" => {
            setup::rust_targets()?;
            setup::qemu()?;
            riscv::test()
        }
        "aarch64" => {
            setup::rust_targets()?;
            setup::qemu()?;
            aarch64::test()
        }
        other => Err(format!(
            "unknown job `{other}`: expected kvm, riscv or aarch64"
        )),
    }
}

fn bench() -> Result<(), String> {
    setup::require_kvm()?;
    cmd::cargo(&["bench", "-p", "axvcpu-kvm", "--bench", "exits"])?;
    setup::rust_targets()?;
    setup::qemu()?;
    riscv::bench()?;
    aarch64::bench()
}
