//! What the three bare-metal testbeds share: build the test hypervisor image, boot it in
//! QEMU with a timeout while streaming its output, check its report.
//!
//! Each testbed is described by a [`Testbed`] (`riscv::TESTBED`, `aarch64::TESTBED`,
//! `x86::TESTBED`). [`test()`] builds the image, boots it on two CPUs of each CPU model of the
//! description and passes only if, for each boot:
//!
//! - each pass of the suite (the first, and [`Testbed::second_pass`] whose lines carry its
//!   prefix) reports exactly the set the testbed states: one `N/A` line for each scenario
//!   of [`Testbed::not_applicable`] and one `PASS` line for every other scenario of
//!   `axvcpu_conformance::Scenario::ALL` (so a scenario added there is required here at
//!   once), no other line for any scenario, no line naming an id the suite does not have,
//!   and the closing line `N passed, 0 failed, M skipped` (`axvcpu_conformance::check_report`);
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

use axvcpu_conformance::{check_report as check_pass, Scenario};

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
    /// Exactly the scenarios the architecture cannot express: the testbed must report
    /// each of them `N/A` (never skip it), and every other scenario `PASS`.
    pub not_applicable: &'static [Scenario],
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
    /// Names it in the errors.
    pub name: &'static str,
}

const TIMEOUT: Duration = Duration::from_secs(120);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Installs the bare-metal targets and QEMU if this machine lacks them.
pub(crate) fn ensure_tools(tb: &Testbed) -> Result<(), String> {
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

/// Builds the image (with `features`) and copies it to `target/<name>.elf` (also the
/// image `crate::bochs` boots).
pub(crate) fn build(tb: &Testbed, features: &[&str], name: &str) -> Result<PathBuf, String> {
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

/// What the guest's console receives: QEMU's standard input (`-serial stdio`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Input<'a> {
    /// Nothing.
    Closed,
    /// This terminal: a person types.
    Terminal,
    /// Typed by xtask: for each `(wait_for, text)` in turn, `text` once a line of the
    /// output contains `wait_for`.
    Script(&'a [(&'a str, &'a str)]),
}

/// Boots `elf` in QEMU, echoing its output; returns the output (`\r` removed) and QEMU's
/// exit status (`None` if killed by a signal). Killed after [`TIMEOUT`].
pub(crate) fn boot(
    tb: &Testbed,
    elf: &Path,
    extra: &[&str],
) -> Result<(String, Option<i32>), String> {
    boot_with_input(tb, elf, extra, Input::Closed)
}

/// [`boot`], with `input` on the guest's console.
pub(crate) fn boot_with_input(
    tb: &Testbed,
    elf: &Path,
    extra: &[&str],
    input: Input,
) -> Result<(String, Option<i32>), String> {
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
        .stdin(match input {
            Input::Closed => Stdio::null(),
            Input::Terminal => Stdio::inherit(),
            Input::Script(_) => Stdio::piped(),
        })
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{qemu}: cannot start: {e}"))?;
    let stdout = child.stdout.take().ok_or("no QEMU stdout")?;
    let mut typist = match input {
        Input::Script(steps) => Some((steps.iter(), child.stdin.take())),
        _ => None,
    };
    let mut next_step = typist.as_mut().and_then(|(steps, _)| steps.next());
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
    // Bytes, not UTF-8: random guests may have the backend print anything.
    for line in BufReader::new(stdout).split(b'\n') {
        let line = line.map_err(|e| format!("reading QEMU output: {e}"))?;
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches('\r');
        println!("{line}");
        output.push_str(line);
        output.push('\n');
        if let (Some((wait_for, text)), Some((steps, stdin))) = (next_step, typist.as_mut()) {
            if line.contains(wait_for) {
                if let Some(stdin) = stdin {
                    use std::io::Write;
                    // A guest that stopped reading ends the run by itself; what it did
                    // not take is judged from its output.
                    let _ = stdin
                        .write_all(text.as_bytes())
                        .and_then(|()| stdin.flush());
                }
                next_step = steps.next();
            }
        }
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

/// Checks the testbed's report: both passes (if there is a second) against exactly the
/// scenarios of the suite and [`Testbed::not_applicable`], the self-tests, no failure or
/// fatal line, no leak. Returns how many scenarios passed in the first pass.
pub(crate) fn check_report(tb: &Testbed, output: &str) -> Result<usize, String> {
    let mut problems = Vec::new();
    let passed = check_pass(output, "", tb.not_applicable).unwrap_or_else(|p| {
        problems.extend(p);
        0
    });
    if let Some(second) = &tb.second_pass {
        if let Err(p) = check_pass(output, second.prefix, tb.not_applicable) {
            problems.extend(p.into_iter().map(|p| format!("{}: {p}", second.name)));
        }
    }
    // Any other failure line (a self-test, a trap or panic in the hypervisor) fails the run.
    for l in output
        .lines()
        .filter(|l| l.contains("FAIL") || l.contains("FATAL"))
    {
        if !problems.iter().any(|p| p.ends_with(l)) {
            problems.push(l.to_string());
        }
    }
    if !output.lines().any(|l| l.starts_with("SELFTEST ")) {
        problems.push("no SELFTEST lines".into());
    }
    let leak_line = format!("{}: frames leaked: 0", tb.package);
    if !output.lines().any(|l| l == leak_line) {
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
    let elf = build(tb, &[], tb.package)?;
    for cpu in tb.cpus {
        let (output, status) = boot(tb, &elf, &["-cpu", cpu, "-smp", "2"])?;
        let passed = check_report(tb, &output).map_err(|e| format!("-cpu {cpu}: {e}"))?;
        if status != Some(tb.exit_status) {
            return Err(format!(
                "-cpu {cpu}: the {} testbed ended QEMU with status {status:?}, not {} (success)",
                tb.name, tb.exit_status
            ));
        }
        say_passed(tb, &format!("{} testbed (-cpu {cpu})", tb.name), passed);
    }
    Ok(())
}

/// The line that closes a passing run of testbed `tb`, run as `what`.
pub(crate) fn say_passed(tb: &Testbed, what: &str, passed: usize) {
    let not_applicable: Vec<_> = tb.not_applicable.iter().map(|s| s.id()).collect();
    eprintln!(
        "xtask: {what}: {passed} of {} scenarios passed, N/A as expected: {}",
        Scenario::COUNT,
        not_applicable.join(", ")
    );
}

/// Builds the benchmark image and prints hypervisor instructions per hypercall round trip,
/// counted with `-icount shift=0` on one CPU of the first model of [`Testbed::cpus`].
pub fn bench(tb: &Testbed) -> Result<(), String> {
    ensure_tools(tb)?;
    let elf = build(tb, &["bench"], &format!("{}-bench", tb.package))?;
    let cpu = tb.cpus[0];
    let (output, status) = boot(tb, &elf, &["-cpu", cpu, "-smp", "1", "-icount", "shift=0"])?;
    let figures = bench_figures(&output);
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

/// The figure lines of a benchmark image's output (`bench: ` removed).
pub(crate) fn bench_figures(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("bench: "))
        .filter(|l| l.contains("per round trip") || l.contains("of which"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{aarch64, riscv, x86};

    /// One pass as a testbed prints it: `PASS` for every scenario but the testbed's N/A
    /// ones, each line with `prefix`, and the closing line.
    fn pass(tb: &Testbed, prefix: &str) -> String {
        let mut out = String::new();
        for s in Scenario::ALL {
            if tb.not_applicable.contains(&s) {
                out += &format!("{prefix}N/A {s}: cannot here\n");
            } else {
                out += &format!("{prefix}PASS {s}\n");
            }
        }
        let n = tb.not_applicable.len();
        out + &format!(
            "{prefix}{} passed, 0 failed, {n} skipped\n",
            Scenario::COUNT - n
        )
    }

    /// A whole report: banner, both passes, a self-test and the leak line.
    fn report(tb: &Testbed) -> String {
        let second = tb
            .second_pass
            .as_ref()
            .map_or(String::new(), |s| pass(tb, s.prefix));
        format!(
            "{}: 2 CPUs\n{}{second}SELFTEST probe: ok\n{}: frames leaked: 0\n",
            tb.package,
            pass(tb, ""),
            tb.package
        )
    }

    const TESTBEDS: [&Testbed; 3] = [&riscv::TESTBED, &aarch64::TESTBED, &x86::TESTBED];

    #[test]
    fn a_complete_report_passes_on_every_testbed() {
        for tb in TESTBEDS {
            let want = Scenario::COUNT - tb.not_applicable.len();
            assert_eq!(check_report(tb, &report(tb)), Ok(want), "{}", tb.name);
        }
    }

    /// `report(tb)` with `from` replaced by `to` (which must occur) must be refused with a
    /// problem containing `why`.
    fn refused(tb: &Testbed, from: &str, to: &str, why: &str) {
        let good = report(tb);
        assert!(
            good.contains(from),
            "{}: no {from:?} in the report",
            tb.name
        );
        let err = check_report(tb, &good.replacen(from, to, 1)).unwrap_err();
        assert!(err.contains(why), "{}: {from:?} -> {to:?}: {err}", tb.name);
    }

    #[test]
    fn every_scenario_must_have_exactly_its_one_expected_line() {
        for tb in TESTBEDS {
            refused(tb, "PASS irq-merge\n", "", "no line for scenario irq-merge");
            refused(
                tb,
                "PASS halt\n",
                "PASS halt\nPASS halt\n",
                "2 lines for scenario halt",
            );
            refused(tb, "PASS regs", "FAIL regs: r3", "FAIL regs: r3");
            refused(
                tb,
                "PASS smp",
                "N/A smp: one CPU",
                "smp must run on this platform",
            );
            refused(
                tb,
                "PASS lifecycle\n",
                "PASS lifecycle\nPASS lifecycles\n",
                "no scenario of the suite: PASS lifecycles",
            );
            refused(
                tb,
                " passed, 0 failed",
                " passed, 1 failed",
                "no closing line",
            );
        }
    }

    #[test]
    fn the_not_applicable_set_is_exact_per_testbed() {
        for tb in [&riscv::TESTBED, &aarch64::TESTBED] {
            refused(tb, "N/A io-in: cannot here", "PASS io-in", "io-in passed");
            refused(
                tb,
                "PASS cpu-down",
                "N/A cpu-down: no",
                "cpu-down must run on this platform",
            );
        }
        let tb = &x86::TESTBED;
        refused(
            tb,
            "N/A cpu-down: cannot here",
            "PASS cpu-down",
            "cpu-down passed",
        );
        refused(
            tb,
            "PASS io-in",
            "N/A io-in: no",
            "io-in must run on this platform",
        );
    }

    #[test]
    fn the_second_pass_is_checked_like_the_first() {
        for tb in [&riscv::TESTBED, &aarch64::TESTBED] {
            let p = tb.second_pass.as_ref().unwrap().prefix;
            refused(
                tb,
                &format!("{p}PASS irq-merge\n"),
                "",
                "no line for scenario irq-merge",
            );
            refused(
                tb,
                &format!("{p}PASS irq-merge"),
                &format!("{p}FAIL irq-merge: twice"),
                "FAIL irq-merge: twice",
            );
            refused(
                tb,
                &format!("{p}PASS sysreg"),
                &format!("{p}N/A sysreg: no"),
                "sysreg must run",
            );
        }
    }

    #[test]
    fn self_tests_leaks_and_fatal_traps_are_checked() {
        for tb in TESTBEDS {
            refused(tb, "probe: ok", "probe: FAIL no", "SELFTEST probe: FAIL no");
            refused(tb, "SELFTEST probe: ok\n", "", "no SELFTEST lines");
            refused(tb, "leaked: 0", "leaked: 3", "no `frames leaked: 0` line");
            refused(
                tb,
                "SELFTEST probe: ok\n",
                "SELFTEST probe: ok\ntestbed: FATAL host trap\n",
                "FATAL host trap",
            );
        }
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
