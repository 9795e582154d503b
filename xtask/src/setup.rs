//! Installs what a fresh machine lacks: Rust targets and components, QEMU, Bochs.

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

/// Bochs (Intel VMX for the x86 testbed), its firmware and `term` display, and what builds
/// its boot medium (`grub-mkrescue` and the tools it runs), from Debian bookworm.
pub fn bochs() -> Result<(), String> {
    const PACKAGES: [&str; 8] = [
        "bochs",
        "bochsbios",
        "vgabios",
        "bochs-term",
        "grub-pc-bin",
        "grub-common",
        "xorriso",
        "mtools",
    ];
    let installed = |p: &str| {
        std::process::Command::new("dpkg-query")
            .args(["-W", "-f=${Status}", p])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout) == "install ok installed")
            .unwrap_or(false)
    };
    let missing: Vec<&str> = PACKAGES.into_iter().filter(|p| !installed(p)).collect();
    if missing.is_empty() && cmd::exists("script") {
        return Ok(());
    }
    eprintln!(
        "xtask: installing {} (Bochs and its boot medium)",
        missing.join(" ")
    );
    let script = format!(
        "set -e
apt-get update -qq
         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends          {} bsdutils >/dev/null",
        missing.join(" ")
    );
    cmd::run("sh", &["-c", &script], &[])?;
    match PACKAGES.into_iter().find(|p| !installed(p)) {
        None => Ok(()),
        Some(p) => Err(format!("Bochs installed but package {p} is still missing")),
    }
}

/// `xz`, which unpacks the amd64 bzImage's payload (`crate::bzimage`), from Debian's
/// `xz-utils` when missing.
pub fn xz() -> Result<(), String> {
    if cmd::exists("xz") {
        return Ok(());
    }
    eprintln!("xtask: installing xz-utils (to unpack the amd64 kernel)");
    cmd::run(
        "sh",
        &[
            "-c",
            "set -e\napt-get update -qq\nDEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
             --no-install-recommends xz-utils >/dev/null",
        ],
        &[],
    )?;
    if cmd::exists("xz") {
        Ok(())
    } else {
        Err("xz-utils installed but `xz` is still missing".into())
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
