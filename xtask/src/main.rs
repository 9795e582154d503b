//! The project's task runner (`cargo xtask`, see README.md):
//!
//! - `cargo xtask run [kvm|riscv]`: runs the main job: a demo guest on our vCPUs (default:
//!   the hosted KVM backend).
//! - `cargo xtask test`: installs what a fresh machine lacks, then runs every check and test.
//! - `cargo xtask bench`: prints the benchmark figures.

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
            "usage: cargo xtask run [kvm|riscv] | cargo xtask test | cargo xtask bench".to_string(),
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
        other => Err(format!("unknown job `{other}`: expected kvm or riscv")),
    }
}

fn bench() -> Result<(), String> {
    setup::require_kvm()?;
    cmd::cargo(&["bench", "-p", "axvcpu-kvm", "--bench", "exits"])?;
    setup::rust_targets()?;
    setup::qemu()?;
    riscv::bench()
}
