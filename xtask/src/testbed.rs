//! What the three bare-metal testbeds share: build the test hypervisor image, boot it in
//! QEMU with a timeout while streaming its output, check its report.
//!
//! Each testbed is described by a [`Testbed`] (`riscv::TESTBED`, `aarch64::TESTBED`,
//! `x86::TESTBED`). [`test()`] builds the image, boots it on two CPUs of each CPU model of the
//! description and passes only if, for each boot:
//!
//! - every scenario id of the conformance crate (read from its source at run time, so a
//!   scenario added there is required here at once) has exactly one `PASS` line, or one
//!   `N/A` line for the scenarios the architecture cannot express
//!   ([`Testbed::not_applicable`]), and no `FAIL` line;
//! - the closing line says `N passed, 0 failed`;
//! - the same holds for the second pass ([`Testbed::second_pass`]), whose lines carry its
//!   prefix, and it passes as many scenarios as the first;
//! - no other line reports a failure (`FAIL`) or a fatal host trap (`FATAL`);
//! - there are `SELFTEST` lines, and the line `<crate>: frames leaked: 0`;
//! - QEMU exits with [`Testbed::exit_status`].
//!
//! [`bench()`] builds the image with the `bench` feature, boots it on one CPU of the first model
//! with `-icount shift=0` (one counter tick per instruction) and prints the figures.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What differs between the testbeds.
pub struct Testbed {
    /// The architecture as the printed lines name it: `RISC-V`, `AArch64`, `x86 SVM`.
    pub name: &'static str,
    /// The Rust target the image is built for.
    pub target: &'static str,
    /// The testbed crate, which is also its binary and the prefix of its leak line.
    pub package: &'static str,
    /// The QEMU system emulator.
    pub qemu: &'static str,
    /// QEMU arguments before `-cpu`/`-smp`: the machine and its memory.
    pub machine: &'static [&'static str],
    /// QEMU arguments after `-cpu`/`-smp`, before `-no-reboot -kernel <elf>`.
    pub boot: &'static [&'static str],
    /// The CPU models `test()` boots on, each on two CPUs; `bench()` uses the first.
    pub cpus: &'static [&'static str],
    /// Scenarios the architecture cannot express: the testbed may report them `N/A`
    /// (instead of `PASS`), never skip them.
    pub not_applicable: &'static [&'static str],
    /// The testbed's second pass of the suite, if it runs one.
    pub second_pass: Option<SecondPass>,
    /// QEMU's exit status when everything passed.
    pub exit_status: i32,
    /// Names the architecture on the benchmark's figure lines.
    pub bench_label: &'static str,
}

/// A second pass of the suite, checked like the first.
pub struct SecondPass {
    /// The prefix of each of its lines.
    pub prefix: &'static str,
    /// Names it in the error when it passes a different number of scenarios than the first.
    pub name: &'static str,
}

const TIMEOUT: Duration = Duration::from_secs(120);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Installs the bare-metal targets and QEMU if this machine lacks them.
fn ensure_tools(tb: &Testbed) -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == tb.target)
        })
        .unwrap_or(false);
    if !installed {
        crate::setup::rust_targets()?;
    }
    crate::setup::qemu()
}

/// Builds the image (with `features`) and copies it to `target/<name>.elf`.
fn build(tb: &Testbed, features: &[&str], name: &str) -> Result<PathBuf, String> {
    let started = Instant::now();
    let mut args = vec![
        "build",
        "-p",
        tb.package,
        "--target",
        tb.target,
        "--release",
    ];
    if !features.is_empty() {
        args.push("--features");
        args.extend(features);
    }
    crate::cmd::cargo(&args)?;
    let built = target_dir()
        .join(tb.target)
        .join("release")
        .join(tb.package);
    let copy = target_dir().join(format!("{name}.elf"));
    std::fs::copy(&built, &copy).map_err(|e| format!("copying {}: {e}", built.display()))?;
    eprintln!(
        "xtask: built {} in {:.1} s",
        copy.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(copy)
}

/// Boots `elf` in QEMU, echoing its output; returns the output (`\r` removed) and QEMU's
/// exit status (`None` if killed by a signal). Killed after [`TIMEOUT`].
fn boot(tb: &Testbed, elf: &Path, extra: &[&str]) -> Result<(String, Option<i32>), String> {
    let qemu = tb.qemu;
    let mut args: Vec<String> = tb.machine.iter().map(|s| s.to_string()).collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(tb.boot.iter().map(|s| s.to_string()));
    args.extend(["-no-reboot", "-kernel"].into_iter().map(String::from));
    args.push(elf.display().to_string());
    eprintln!("$ {qemu} {}", args.join(" "));
    let started = Instant::now();
    let mut child = Command::new(qemu)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{qemu}: cannot start: {e}"))?;
    let stdout = child.stdout.take().ok_or("no QEMU stdout")?;
    let child = Arc::new(Mutex::new(child));
    let finished = Arc::new(AtomicBool::new(false));
    let timed_out = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (child, finished, timed_out) = (child.clone(), finished.clone(), timed_out.clone());
        std::thread::spawn(move || {
            while !finished.load(Ordering::Acquire) {
                if started.elapsed() > TIMEOUT {
                    timed_out.store(true, Ordering::Release);
                    let _ = child.lock().map(|mut c| c.kill());
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let mut output = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("reading QEMU output: {e}"))?;
        let line = line.trim_end_matches('\r');
        println!("{line}");
        output.push_str(line);
        output.push('\n');
    }
    let status = child
        .lock()
        .map_err(|_| "QEMU child lock poisoned")?
        .wait()
        .map_err(|e| format!("waiting for QEMU: {e}"))?;
    finished.store(true, Ordering::Release);
    let _ = watchdog.join();
    eprintln!(
        "xtask: QEMU ran {:.2} s, {status}",
        started.elapsed().as_secs_f64()
    );
    if timed_out.load(Ordering::Acquire) {
        return Err(format!(
            "QEMU did not finish within {} s",
            TIMEOUT.as_secs()
        ));
    }
    Ok((output, status.code()))
}

/// The scenario ids of the conformance crate, read from `pub const SCENARIOS` in its source.
fn scenario_ids() -> Result<Vec<String>, String> {
    let dir = root().join("conformance/src");
    let candidates = [dir.join("scenarios/mod.rs"), dir.join("scenarios.rs")];
    let (path, src) = candidates
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok().map(|s| (p, s)))
        .ok_or("cannot read conformance/src/scenarios{/mod.rs,.rs}")?;
    let start = src
        .find("pub const SCENARIOS")
        .ok_or_else(|| format!("{}: no `pub const SCENARIOS`", path.display()))?;
    let body = &src[start..];
    let open = body.find("= [").ok_or("SCENARIOS: no `= [`")? + 3;
    let close = body[open..].find("];").ok_or("SCENARIOS: no `];`")? + open;
    let ids: Vec<String> = body[open..close]
        .split(',')
        .filter_map(|item| {
            let item = item.trim();
            let item = item.strip_prefix('"')?.strip_suffix('"')?;
            Some(item.to_string())
        })
        .collect();
    if ids.is_empty() {
        return Err(format!("{}: SCENARIOS lists no ids", path.display()));
    }
    Ok(ids)
}

/// Checks one pass of the suite (its lines start with `prefix`) against `ids`: exactly one
/// `PASS` line per scenario (or one `N/A` line for the ones the architecture cannot express)
/// and the closing line. Returns how many passed.
fn check_pass(
    tb: &Testbed,
    lines: &[&str],
    ids: &[String],
    prefix: &str,
    problems: &mut Vec<String>,
) -> usize {
    let mut passed = 0;
    for id in ids {
        let pass = lines
            .iter()
            .filter(|l| **l == format!("{prefix}PASS {id}"))
            .count();
        let na: Vec<&&str> = lines
            .iter()
            .filter(|l| l.starts_with(&format!("{prefix}N/A {id}:")))
            .collect();
        let fail = lines
            .iter()
            .find(|l| l.starts_with(&format!("{prefix}FAIL {id}:")));
        match (pass, na.as_slice(), fail) {
            (1, [], None) => passed += 1,
            (0, [_], None) if tb.not_applicable.contains(&id.as_str()) => {}
            (0, [l], None) => problems.push(format!("{id} must run on {}: {l}", tb.name)),
            (_, _, Some(l)) => problems.push(l.to_string()),
            (0, [], None) => problems.push(format!("{prefix}no line for scenario {id}")),
            _ => problems.push(format!("{prefix}several lines for scenario {id}")),
        }
    }
    let closing = format!("{prefix}{passed} passed, 0 failed");
    if !lines.iter().any(|l| l.starts_with(&closing)) {
        problems.push(format!("no closing line `{closing}...`"));
    }
    passed
}

/// Checks the testbed's report against `ids`: both passes (if there is a second), the
/// self-tests, no failure or fatal line, no leak. Returns how many passed.
fn check_report(tb: &Testbed, output: &str, ids: &[String]) -> Result<usize, String> {
    let lines: Vec<&str> = output.lines().collect();
    let mut problems = Vec::new();
    let passed = check_pass(tb, &lines, ids, "", &mut problems);
    if let Some(second) = &tb.second_pass {
        let again = check_pass(tb, &lines, ids, second.prefix, &mut problems);
        if again != passed {
            problems.push(format!(
                "the {} passed {again} scenarios, the first {passed}",
                second.name
            ));
        }
    }
    // Any other failure line (a self-test, a trap or panic in the hypervisor) fails the run.
    for l in lines
        .iter()
        .filter(|l| l.contains("FAIL") || l.contains("FATAL"))
    {
        if !problems.iter().any(|p| p == l) {
            problems.push(l.to_string());
        }
    }
    if !lines.iter().any(|l| l.starts_with("SELFTEST ")) {
        problems.push("no SELFTEST lines".into());
    }
    if !lines.contains(&format!("{}: frames leaked: 0", tb.package).as_str()) {
        problems.push("no `frames leaked: 0` line".into());
    }
    if problems.is_empty() {
        Ok(passed)
    } else {
        Err(problems.join("; "))
    }
}

/// Builds the testbed, boots it in QEMU on two CPUs of each model of [`Testbed::cpus`] and
/// checks every scenario's line, the self-tests, the leak line and the exit status.
pub fn test(tb: &Testbed) -> Result<(), String> {
    ensure_tools(tb)?;
    let ids = scenario_ids()?;
    let elf = build(tb, &[], tb.package)?;
    for cpu in tb.cpus {
        let (output, status) = boot(tb, &elf, &["-cpu", cpu, "-smp", "2"])?;
        let passed = check_report(tb, &output, &ids).map_err(|e| format!("-cpu {cpu}: {e}"))?;
        if status != Some(tb.exit_status) {
            return Err(format!(
                "-cpu {cpu}: the {} testbed ended QEMU with status {status:?}, not {} (success)",
                tb.name, tb.exit_status
            ));
        }
        eprintln!(
            "xtask: {} testbed (-cpu {cpu}): {passed} of {} scenarios passed, the rest not applicable",
            tb.name,
            ids.len()
        );
    }
    Ok(())
}

/// Builds the benchmark image and prints hypervisor instructions per hypercall round trip,
/// counted with `-icount shift=0` on one CPU of the first model of [`Testbed::cpus`].
pub fn bench(tb: &Testbed) -> Result<(), String> {
    ensure_tools(tb)?;
    let elf = build(tb, &["bench"], &format!("{}-bench", tb.package))?;
    let cpu = tb.cpus[0];
    let (output, status) = boot(tb, &elf, &["-cpu", cpu, "-smp", "1", "-icount", "shift=0"])?;
    let figures: Vec<&str> = output
        .lines()
        .filter_map(|l| l.strip_prefix("bench: "))
        .filter(|l| l.contains("per round trip") || l.contains("of which"))
        .collect();
    if figures.is_empty() || status != Some(tb.exit_status) {
        return Err(format!(
            "the {} benchmark did not report its figures",
            tb.name
        ));
    }
    for f in figures {
        println!("{} (QEMU TCG, -icount shift=0): {f}", tb.bench_label);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{aarch64, riscv, x86};

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reads_the_scenario_list_from_the_conformance_source() {
        let ids = scenario_ids().unwrap();
        assert!(ids.iter().any(|i| i == "garbage"), "{ids:?}");
        assert!(ids.iter().any(|i| i == "cpu-down"), "{ids:?}");
    }

    #[test]
    fn not_applicable_scenarios_are_scenarios() {
        let ids = scenario_ids().unwrap();
        for tb in [&riscv::TESTBED, &aarch64::TESTBED, &x86::TESTBED] {
            for id in tb.not_applicable {
                assert!(ids.iter().any(|i| i == id), "{}: {id} in {ids:?}", tb.name);
            }
        }
    }

    /// A RISC-V report whose first pass is `first`, followed by a complete second pass and
    /// tail.
    fn riscv_with_rest(first: &str) -> String {
        format!(
            "{first}[sv39x4, hlvx] PASS a\n[sv39x4, hlvx] N/A io-in: no port I/O\n\
             [sv39x4, hlvx] PASS b\n[sv39x4, hlvx] 2 passed, 0 failed, 1 skipped\n\
             SELFTEST timer: ok\ntestbed-riscv: frames leaked: 0\n"
        )
    }

    #[test]
    fn riscv_report_needs_every_id_and_the_closing_line() {
        let tb = &riscv::TESTBED;
        let ids = ids(&["a", "io-in", "b"]);
        let first = "PASS a\nN/A io-in: no port I/O\nPASS b\n2 passed, 0 failed, 1 skipped\n";
        let good = riscv_with_rest(first);
        assert_eq!(check_report(tb, &good, &ids), Ok(2));
        let bad_selftest = format!("{good}SELFTEST sbi: FAIL no\n");
        assert!(check_report(tb, &bad_selftest, &ids).is_err());
        assert!(check_report(
            tb,
            &riscv_with_rest("PASS a\nN/A io-in: x\n1 passed, 0 failed\n"),
            &ids
        )
        .is_err());
        assert!(check_report(
            tb,
            &riscv_with_rest("PASS a\nN/A io-in: x\nFAIL b: no\n1 passed, 1 failed\n"),
            &ids
        )
        .is_err());
        assert!(check_report(
            tb,
            &riscv_with_rest("PASS a\nN/A io-in: x\nN/A b: x\n1 passed, 0 failed\n"),
            &ids
        )
        .is_err());
    }

    #[test]
    fn riscv_report_needs_the_second_pass_and_no_leak() {
        let tb = &riscv::TESTBED;
        let ids = ids(&["a", "io-in", "b"]);
        let first = "PASS a\nN/A io-in: no port I/O\nPASS b\n2 passed, 0 failed, 1 skipped\n";
        let good = riscv_with_rest(first);
        // A scenario missing from the second pass.
        let missing = good.replace("[sv39x4, hlvx] PASS b\n", "");
        assert!(check_report(tb, &missing, &ids).is_err());
        // A scenario failing in the second pass only.
        let failing = good.replace("[sv39x4, hlvx] PASS b", "[sv39x4, hlvx] FAIL b: no");
        assert!(check_report(tb, &failing, &ids).is_err());
        // No closing line for the second pass.
        let unclosed = good.replace("[sv39x4, hlvx] 2 passed", "[sv39x4, hlvx] 2 passd");
        assert!(check_report(tb, &unclosed, &ids).is_err());
        // A frame leaked.
        let leaked = good.replace("frames leaked: 0", "frames leaked: 3");
        assert!(check_report(tb, &leaked, &ids).is_err());
        // A fatal trap in the hypervisor.
        let fatal = format!("{good}testbed: FATAL host trap on hart 0: scause 0xd\n");
        assert!(check_report(tb, &fatal, &ids).is_err());
    }

    #[test]
    fn aarch64_report_needs_every_id_the_closing_line_and_no_leak() {
        let tb = &aarch64::TESTBED;
        let ids = ids(&["a", "io-in", "b"]);
        let pass = "PASS a\nN/A io-in: no port I/O\nPASS b\n2 passed, 0 failed, 1 skipped\n";
        let second: String = pass.lines().map(|l| format!("[vgic] {l}\n")).collect();
        let good = &format!("{pass}{second}SELFTEST psci: ok\ntestbed-aarch64: frames leaked: 0\n");
        assert_eq!(check_report(tb, good, &ids), Ok(2));
        let no_second = format!("{pass}SELFTEST psci: ok\ntestbed-aarch64: frames leaked: 0\n");
        assert!(check_report(tb, &no_second, &ids).is_err());
        let second_fails = good.replace("[vgic] PASS b", "[vgic] FAIL b: no");
        assert!(check_report(tb, &second_fails, &ids).is_err());
        let fatal = format!("{good}testbed: FATAL host exception\n");
        assert!(check_report(tb, &fatal, &ids).is_err());
        let leak = good.replace("leaked: 0", "leaked: 3");
        assert!(check_report(tb, &leak, &ids).is_err());
        let selftest = good.replace("psci: ok", "psci: FAIL no");
        assert!(check_report(tb, &selftest, &ids).is_err());
        let no_selftest = good.replace("SELFTEST psci: ok\n", "");
        assert!(check_report(tb, &no_selftest, &ids).is_err());
        assert!(check_report(tb, "PASS a\nN/A io-in: x\n1 passed, 0 failed\n", &ids).is_err());
        assert!(check_report(
            tb,
            "PASS a\nN/A io-in: x\nFAIL b: no\n1 passed, 1 failed\n",
            &ids
        )
        .is_err());
        assert!(check_report(
            tb,
            "PASS a\nN/A io-in: x\nN/A b: x\n1 passed, 0 failed\ntestbed-aarch64: frames leaked: 0\n",
            &ids
        )
        .is_err());
    }

    #[test]
    fn x86_report_needs_every_id_the_closing_line_and_no_leak() {
        let tb = &x86::TESTBED;
        let ids = ids(&["a", "cpu-down", "b"]);
        let good = "PASS a\nN/A cpu-down: no CPU-off\nPASS b\n2 passed, 0 failed, 1 skipped\n\
                    SELFTEST send-ipi: ok\ntestbed-x86: frames leaked: 0\n";
        assert_eq!(check_report(tb, good, &ids), Ok(2));
        assert!(check_report(tb, &good.replace("PASS b", "FAIL b: no"), &ids).is_err());
        assert!(check_report(tb, &good.replace("PASS b", "N/A b: x"), &ids).is_err());
        assert!(check_report(tb, &good.replace("PASS a\n", ""), &ids).is_err());
        assert!(check_report(tb, &good.replace("leaked: 0", "leaked: 3"), &ids).is_err());
        assert!(check_report(
            tb,
            &good.replace("2 passed, 0 failed", "2 passed, 1 failed"),
            &ids
        )
        .is_err());
        assert!(
            check_report(tb, &good.replace("send-ipi: ok", "send-ipi: FAIL no"), &ids).is_err()
        );
        assert!(check_report(tb, &good.replace("SELFTEST send-ipi: ok\n", ""), &ids).is_err());
        let fatal = format!("{good}testbed: FATAL host exception 13\n");
        assert!(check_report(tb, &fatal, &ids).is_err());
    }

    /// Boots QEMU: `cargo test -p xtask -- --ignored`.
    #[test]
    #[ignore]
    fn riscv_bench_reports_its_figures() {
        riscv::bench().unwrap();
    }

    /// Boots QEMU: `cargo test -p xtask -- --ignored`.
    #[test]
    #[ignore]
    fn aarch64_test_and_bench_in_qemu() {
        aarch64::test().unwrap();
        aarch64::bench().unwrap();
    }

    /// Boots QEMU: `cargo test -p xtask -- --ignored`.
    #[test]
    #[ignore]
    fn x86_test_and_bench_in_qemu() {
        x86::test().unwrap();
        x86::bench().unwrap();
    }
}
