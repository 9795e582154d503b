//! Installs what a fresh machine lacks: Rust targets and components, QEMU.

use crate::cmd;

/// The bare-metal targets the core and the bare-metal backends build for.
pub const BARE_METAL_TARGETS: [&str; 3] = [
    "riscv64gc-unknown-none-elf",
    "aarch64-unknown-none",
    "x86_64-unknown-none",
];

pub fn rust_targets() -> Result<(), String> {
    let mut args = vec!["target", "add"];
    args.extend(BARE_METAL_TARGETS);
    cmd::run("rustup", &args, &[])
}

pub fn nightly_miri() -> Result<(), String> {
    cmd::run(
        "rustup",
        &["toolchain", "install", "nightly", "--profile", "minimal"],
        &[],
    )?;
    cmd::run(
        "rustup",
        &[
            "component",
            "add",
            "miri",
            "rust-src",
            "--toolchain",
            "nightly",
        ],
        &[],
    )?;
    cmd::run("cargo", &["+nightly", "miri", "setup"], &[])
}

pub fn rust_components() -> Result<(), String> {
    cmd::run("rustup", &["component", "add", "clippy", "rustfmt"], &[])
}

/// QEMU 10 from Debian bookworm-backports (see shared notes: bookworm's own 7.2 conflicts
/// with the machine's qemu-utils, which already comes from backports).
pub fn qemu() -> Result<(), String> {
    const SYSTEMS: [&str; 3] = [
        "qemu-system-riscv64",
        "qemu-system-aarch64",
        "qemu-system-x86_64",
    ];
    if SYSTEMS.iter().all(|s| cmd::exists(s)) {
        return Ok(());
    }
    let script = r#"set -e
awk 'BEGIN{RS=""} NR==1{print; exit}' /etc/apt/sources.list.d/debian.sources \
  | sed 's/^Suites:.*/Suites: bookworm-backports/' > /etc/apt/sources.list.d/backports.sources
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports \
  qemu-system-misc qemu-system-arm qemu-system-x86 >/dev/null"#;
    cmd::run("sh", &["-c", script], &[])?;
    match SYSTEMS.iter().find(|s| !cmd::exists(s)) {
        None => Ok(()),
        Some(missing) => Err(format!("QEMU installed but {missing} is still missing")),
    }
}

/// The hosted backend needs a usable /dev/kvm.
pub fn require_kvm() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(|e| format!("/dev/kvm is not usable ({e}): the hosted backend needs KVM"))
}
