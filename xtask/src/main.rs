//! The project's task runner (`cargo xtask`, see README.md):
//!
//! - `cargo xtask run [kvm|riscv|aarch64|x86|x86-vmx]`: runs the main job: a demo guest on
//!   our vCPUs (default: the hosted KVM backend); the others boot a test hypervisor in QEMU,
//!   `x86-vmx` the x86 one in Bochs (Intel VMX).
//! - `cargo xtask run linux-aarch64`: fetches Debian's arm64 kernel and busybox (cached
//!   under `target/`), builds the initramfs and boots it on the AArch64 hypervisor, 2 vCPUs.
//! - `cargo xtask run linux-riscv64`: the same with Debian trixie's riscv64 kernel and
//!   busybox on the RISC-V hypervisor, 2 vCPUs, with Sstc and without.
//! - `cargo xtask run linux-x86_64`: Debian bookworm's amd64 kernel and busybox on the x86
//!   hypervisor, AMD SVM in QEMU, 2 vCPUs; `linux-x86_64-vmx` the same on Intel VMX in Bochs.
//! - `cargo xtask boot aarch64|riscv64|x86_64 --kernel FILE [--initrd FILE] [--append
//!   STRING] [--cpus N] [--shell] [--no-sstc] [--svm|--vmx]`: boots any kernel on the
//!   AArch64, RISC-V or x86 hypervisor (exit 0 when the guest powers off cleanly;
//!   `--no-sstc`: a RISC-V host CPU without Sstc; x86_64 takes a bzImage or a vmlinux ELF,
//!   2 vCPUs unless `--cpus 1`, SVM in QEMU or `--vmx` in Bochs).
//! - `cargo xtask shell aarch64|riscv64|x86_64`: the same Linux with this terminal as its console
//!   and a shell after `/init`'s checks (`exit` powers it off).
//! - `cargo xtask images linux-aarch64|linux-riscv64|linux-x86_64`: fetches a Linux guest's
//!   Debian packages and builds its initramfs (cached under `target/`), prints the paths.
//! - `cargo xtask test`: installs what a fresh machine lacks, then runs every check and test.
//! - `cargo xtask bench [kvm|riscv|aarch64|x86|x86-vmx|linux-aarch64|linux-riscv64|linux-x86_64]`:
//!   prints the benchmark figures (of every backend and of Linux on AArch64, RISC-V and
//!   x86, or of one).
//! - `cargo xtask fuzz [x86|aarch64|riscv] [--runs N]`: fuzzes each instruction decoder
//!   against its reference decoder (default 10 million inputs each); `cargo xtask fuzz
//!   guests [--runs N]` runs N random `chaos` guest programs on hosted KVM (default 100,000).
//! - `cargo xtask soak [--exits N]`: 8 hosted vCPUs, N exits each (default 1,000,000), with
//!   interrupts injected and kicks sent from another thread; counts every interrupt and
//!   checks memory and file descriptors stay flat (`backends/kvm/examples/soak.rs`).

mod aarch64;
mod bochs;
mod bochs_linux;
mod bzimage;
mod cmd;
mod debian;
mod fuzz;
mod initramfs;
mod linux;
mod riscv;
mod setup;
mod test;
mod testbed;
mod x86;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask run [kvm|riscv|aarch64|x86|x86-vmx|linux-aarch64|linux-riscv64|linux-x86_64|linux-x86_64-vmx] | \
cargo xtask boot aarch64|riscv64|x86_64 --kernel FILE [--initrd FILE] [--append STRING] [--cpus N] [--shell] [--no-sstc] [--svm|--vmx] | \
cargo xtask shell aarch64|riscv64|x86_64 | \
cargo xtask images linux-aarch64|linux-riscv64|linux-x86_64 | cargo xtask test | \
cargo xtask bench [kvm|riscv|aarch64|x86|x86-vmx|linux-aarch64|linux-riscv64|linux-x86_64] | \
cargo xtask fuzz [x86|aarch64|riscv|guests] [--runs N] | cargo xtask soak [--exits N]";

/// What `cargo xtask bench` can measure alone.
const BENCHES: [&str; 8] = [
    "kvm",
    "riscv",
    "aarch64",
    "x86",
    "x86-vmx",
    "linux-aarch64",
    "linux-riscv64",
    "linux-x86_64",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(args.get(1).map(String::as_str).unwrap_or("kvm")),
        Some("test") => test::all(),
        Some("boot") => linux::boot_command(&args[1..]),
        Some("shell") => linux::shell_command(args.get(1).map(String::as_str)),
        Some("images") => linux::images_command(args.get(1).map(String::as_str)),
        Some("bench") => bench(args.get(1).map(String::as_str)),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        Some("soak") => soak(&args[1..]),
        _ => Err(USAGE.to_string()),
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
    let testbed: fn() -> Result<(), String> = match which {
        "kvm" => {
            setup::require_kvm()?;
            return cmd::cargo(&["run", "-p", "axvcpu-kvm", "--release", "--example", "demo"]);
        }
        "riscv" => riscv::test,
        "aarch64" => aarch64::test,
        "x86" => x86::test,
        "linux-aarch64" => {
            setup::rust_targets()?;
            setup::qemu()?;
            return linux::test_aarch64();
        }
        "linux-riscv64" => {
            setup::rust_targets()?;
            setup::qemu()?;
            return linux::test_riscv64();
        }
        "linux-x86_64" => {
            setup::rust_targets()?;
            setup::qemu()?;
            return linux::test_x86_64();
        }
        "x86-vmx" => {
            setup::rust_targets()?;
            setup::bochs()?;
            return bochs::test();
        }
        "linux-x86_64-vmx" => {
            setup::rust_targets()?;
            setup::qemu()?;
            setup::bochs()?;
            return bochs_linux::test();
        }
        other => return Err(format!("unknown job `{other}`; {USAGE}")),
    };
    setup::rust_targets()?;
    setup::qemu()?;
    testbed()
}

/// The hosted soak: `backends/kvm/examples/soak.rs`, optimised, with `args`
/// (`--exits N`).
fn soak(args: &[String]) -> Result<(), String> {
    setup::require_kvm()?;
    let mut cargo_args = vec![
        "run",
        "--release",
        "-p",
        "axvcpu-kvm",
        "--example",
        "soak",
        "--",
    ];
    cargo_args.extend(args.iter().map(String::as_str));
    cmd::cargo(&cargo_args)
}

/// Prints the benchmark figures of `which` backend, or of every backend.
fn bench(which: Option<&str>) -> Result<(), String> {
    let all = which.is_none();
    let wants = |name: &str| all || which == Some(name);
    if let Some(other) = which.filter(|w| !BENCHES.contains(w)) {
        return Err(format!("unknown benchmark `{other}`; {USAGE}"));
    }
    if wants("kvm") {
        setup::require_kvm()?;
        cmd::cargo(&["bench", "-p", "axvcpu-kvm", "--bench", "exits"])?;
    }
    setup::rust_targets()?;
    if wants("riscv")
        || wants("aarch64")
        || wants("x86")
        || wants("linux-aarch64")
        || wants("linux-riscv64")
        || wants("linux-x86_64")
    {
        setup::qemu()?;
    }
    if wants("riscv") {
        riscv::bench()?;
    }
    if wants("aarch64") {
        aarch64::bench()?;
    }
    if wants("linux-aarch64") {
        linux::bench_aarch64()?;
    }
    if wants("linux-riscv64") {
        linux::bench_riscv64()?;
    }
    if wants("x86") {
        x86::bench()?;
    }
    if wants("linux-x86_64") {
        linux::bench_x86_64()?;
    }
    if wants("x86-vmx") {
        setup::bochs()?;
        bochs::bench()?;
    }
    Ok(())
}
