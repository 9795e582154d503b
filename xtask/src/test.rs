//! `cargo xtask test`: every check and test the project has, in one command.
//!
//! Steps run in order and all run even when one fails, so one red step does not hide
//! another; the last line counts the tests that ran, so a run that ran none shows it.

use crate::{aarch64, bochs, bochs_linux, cmd, linux, riscv, setup, x86};

/// Test counts read from cargo's `test result:` lines.
#[derive(Default)]
struct Counts {
    passed: usize,
    failed: usize,
    ignored: usize,
}

impl Counts {
    fn add_cargo_output(&mut self, out: &str) {
        for line in out.lines().filter(|l| l.starts_with("test result:")) {
            let number_before = |word: &str| {
                line.split(';')
                    .find(|part| part.trim_end().ends_with(word))
                    .and_then(|part| part.split_whitespace().rev().nth(1))
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(0)
            };
            self.passed += number_before("passed");
            self.failed += number_before("failed");
            self.ignored += number_before("ignored");
        }
    }
}

/// The test hypervisors and their targets.
const TESTBEDS: [(&str, &str); 3] = [
    ("testbed-riscv", "riscv64gc-unknown-none-elf"),
    ("testbed-aarch64", "aarch64-unknown-none"),
    ("testbed-x86", "x86_64-unknown-none"),
];

pub fn all() -> Result<(), String> {
    let mut counts = Counts::default();
    let mut failures: Vec<String> = Vec::new();
    let mut steps = 0;
    let mut step = |name: &str, result: Result<(), String>| {
        steps += 1;
        match result {
            Ok(()) => eprintln!("xtask: step `{name}` ok"),
            Err(why) => {
                eprintln!("xtask: step `{name}` FAILED: {why}");
                failures.push(format!("{name}: {why}"));
            }
        }
    };

    step("install toolchain pieces", install());
    step("rustfmt", cmd::cargo(&["fmt", "--all", "--check"]));
    step(
        "clippy",
        cmd::cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    );
    // The test hypervisors are empty programs on the build host: their code is linted for
    // their own targets, in each build the steps below boot (suite, `bench`, `linux`).
    step(
        "clippy (test hypervisors, for their targets)",
        TESTBEDS.iter().try_for_each(|(package, target)| {
            ["", "bench", "linux"].iter().try_for_each(|features| {
                let mut args = vec!["clippy", "-p", package, "--target", target];
                if !features.is_empty() {
                    args.extend(["--features", features]);
                }
                args.extend(["--", "-D", "warnings"]);
                cmd::cargo(&args)
            })
        }),
    );
    step(
        "docs",
        cmd::run(
            "cargo",
            &["doc", "--workspace", "--no-deps"],
            &[("RUSTDOCFLAGS", "-D warnings")],
        ),
    );
    for target in setup::BARE_METAL_TARGETS {
        step(
            &format!("no_std build for {target}"),
            cmd::cargo(&[
                "build",
                "-p",
                "axvcpu",
                "-p",
                "axvcpu-npt",
                "-p",
                "axvcpu-conformance",
                "-p",
                "axvcpu-x86",
                "--target",
                target,
            ]),
        );
    }
    // Every library crate as crates.io would get it: packaged, then built from the
    // packages alone (the workspace's own crates stand in for their crates.io versions).
    step(
        "packages (cargo publish --workspace --dry-run)",
        forget_packaged_sources().and_then(|()| {
            let dir = publish_check_dir();
            cmd::cargo(&[
                "publish",
                "--workspace",
                "--dry-run",
                "--allow-dirty",
                "--target-dir",
                &dir.to_string_lossy(),
            ])
        }),
    );
    let mut tests = |args: &[&str], env: &[(&str, &str)]| {
        cmd::run_capture("cargo", args, env).map(|out| counts.add_cargo_output(&out))
    };
    step(
        "tests (workspace, /dev/kvm included)",
        tests(&["test", "--workspace"], &[]),
    );
    step(
        "miri (core and nested page tables)",
        tests(
            &[
                "+nightly",
                "miri",
                "test",
                "-p",
                "axvcpu",
                "-p",
                "axvcpu-npt",
            ],
            &[],
        ),
    );
    step("RISC-V testbed in QEMU", riscv::test());
    step("AArch64 testbed in QEMU", aarch64::test());
    step(
        "Linux on the AArch64 hypervisor in QEMU (user space, 2 CPUs, CPU 1 off/on, timers, a typed shell command, power-off)",
        linux::test_aarch64(),
    );
    step(
        "Linux on the RISC-V hypervisor in QEMU (user space, 2 CPUs, CPU 1 off/on, timers, a typed shell command, power-off; with and without Sstc)",
        linux::test_riscv64(),
    );
    step("x86-64 SVM testbed in QEMU", x86::test());
    step(
        "Linux on the x86 hypervisor, AMD SVM in QEMU (user space, 2 CPUs, CPU 1 off/on, timers, a typed shell command, power-off)",
        linux::test_x86_64(),
    );
    step("x86-64 VMX testbed in Bochs", bochs::test());
    step(
        "Linux on the x86 hypervisor, Intel VMX in Bochs (a missing module refused; user space, 2 CPUs, CPU 1 off/on, timers, power-off)",
        bochs_linux::test(),
    );

    let failed_steps = failures.len();
    for f in &failures {
        eprintln!("xtask: failed: {f}");
    }
    println!(
        "test result: {}. {} passed; {} failed; {} ignored; {} of {} steps failed",
        if failed_steps == 0 && counts.failed == 0 {
            "ok"
        } else {
            "FAILED"
        },
        counts.passed,
        counts.failed,
        counts.ignored,
        failed_steps,
        steps
    );
    if failed_steps == 0 && counts.passed > 0 {
        Ok(())
    } else {
        Err(format!("{failed_steps} step(s) failed"))
    }
}

fn install() -> Result<(), String> {
    setup::rust_components()?;
    setup::rust_targets()?;
    setup::nightly_miri()?;
    setup::qemu()?;
    setup::bochs()
}

/// Where the publish dry-run builds: its own directory, so its builds of this workspace's
/// crates as registry packages can be thrown away before each run.
fn publish_check_dir() -> std::path::PathBuf {
    crate::testbed::target_dir().join("publish-check")
}

/// Removes what an earlier `cargo publish --workspace --dry-run` unpacked and built of
/// this workspace's crates. Cargo verifies a package against its workspace siblings
/// through a local registry, unpacked under `$CARGO_HOME/registry/src/-<hash>/`; it
/// unpacks a crate of a given name and version only once and takes a registry package's
/// build as final: without this, a second run on changed sources would build a dependent
/// against the first run's copy of its dependency. (Third-party crates' builds stay.)
fn forget_packaged_sources() -> Result<(), String> {
    for sub in ["deps", ".fingerprint", "build"] {
        let dir = publish_check_dir().join("debug").join(sub);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue; // not built yet
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("axvcpu") || name.starts_with("libaxvcpu") {
                let path = e.path();
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed.map_err(|err| format!("{}: {err}", path.display()))?;
            }
        }
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    let Ok(registries) = std::fs::read_dir(home.join("registry").join("src")) else {
        return Ok(()); // nothing unpacked yet
    };
    for registry in registries.flatten() {
        // Local registries are named `-<hash>`; crates.io's `index.crates.io-<hash>`.
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        let Ok(crates) = std::fs::read_dir(registry.path()) else {
            continue;
        };
        for krate in crates.flatten() {
            if krate.file_name().to_string_lossy().starts_with("axvcpu") {
                std::fs::remove_dir_all(krate.path())
                    .map_err(|e| format!("{}: {e}", krate.path().display()))?;
            }
        }
    }
    Ok(())
}
