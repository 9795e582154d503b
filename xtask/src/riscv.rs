//! The RISC-V testbed: build the test hypervisor image, boot it in QEMU, check its report.
//!
//! `test()` builds `testbed-riscv` for `riscv64gc-unknown-none-elf`, boots it with
//! `qemu-system-riscv64 -machine virt -cpu rv64,h=true -smp 2 -bios default`, streams the
//! UART, and passes only if every scenario id of the conformance crate (read from its source
//! at run time, so a scenario added there is required here at once) has a `PASS` line, or an
//! `N/A` line for the scenarios RISC-V cannot express (port I/O), with the closing line
//! `N passed, 0 failed` and QEMU's exit status 0 (the testbed powers off through SBI SRST,
//! with reason "system failure" when anything failed). The same holds for the second pass
//! (Sv39x4, MMIO read with HLVX), whose lines carry the prefix [`SECOND_PASS`]; the
//! self-tests must report and none may fail, and no frame may leak.
//!
//! `bench()` builds the image with the `bench` feature and boots it with `-icount shift=0`
//! on one hart, so `instret` counts instructions exactly, and prints the figures.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TARGET: &str = "riscv64gc-unknown-none-elf";
/// Scenarios RISC-V cannot express; the testbed must report them `N/A`, not skip them.
const NOT_APPLICABLE: [&str; 2] = ["io-out", "io-in"];
const TIMEOUT: Duration = Duration::from_secs(120);
/// The prefix of every line of the testbed's second pass of the suite.
const SECOND_PASS: &str = "[sv39x4, hlvx] ";

fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // xtask lives one level below the workspace root.
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Installs the target and QEMU if this machine lacks them.
fn ensure_tools() -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == TARGET)
        })
        .unwrap_or(false);
    if !installed {
        crate::cmd::run("rustup", &["target", "add", TARGET], &[])?;
    }
    crate::setup::qemu()
}

/// Builds the image (with `features`) and copies it to `target/<name>.elf`.
fn build(features: &[&str], name: &str) -> Result<PathBuf, String> {
    let started = Instant::now();
    let mut args = vec![
        "build",
        "-p",
        "testbed-riscv",
        "--target",
        TARGET,
        "--release",
    ];
    if !features.is_empty() {
        args.push("--features");
        args.extend(features);
    }
    crate::cmd::cargo(&args)?;
    let built = target_dir()
        .join(TARGET)
        .join("release")
        .join("testbed-riscv");
    let copy = target_dir().join(format!("{name}.elf"));
    std::fs::copy(&built, &copy).map_err(|e| format!("copying {}: {e}", built.display()))?;
    eprintln!(
        "xtask: built {} in {:.1} s",
        copy.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(copy)
}

/// Boots `elf` in QEMU, echoing its output; returns the output (`\r` removed) and whether
/// QEMU exited with status 0. Killed after [`TIMEOUT`].
fn boot(elf: &Path, extra: &[&str]) -> Result<(String, bool), String> {
    let mut args: Vec<String> = ["-machine", "virt", "-m", "128M"]
        .into_iter()
        .map(String::from)
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(
        ["-bios", "default", "-nographic", "-no-reboot", "-kernel"]
            .into_iter()
            .map(String::from),
    );
    args.push(elf.display().to_string());
    eprintln!("$ qemu-system-riscv64 {}", args.join(" "));
    let started = Instant::now();
    let mut child = Command::new("qemu-system-riscv64")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("qemu-system-riscv64: cannot start: {e}"))?;
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
    Ok((output, status.success()))
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

/// Checks one pass of the suite (its lines start with `prefix`) against `ids`: a `PASS`
/// line per scenario (or `N/A` for the ones RISC-V cannot express) and the closing line.
/// Returns how many passed.
fn check_pass(lines: &[&str], ids: &[String], prefix: &str, problems: &mut Vec<String>) -> usize {
    let mut passed = 0;
    for id in ids {
        let pass = lines.iter().any(|l| *l == format!("{prefix}PASS {id}"));
        let na = lines
            .iter()
            .find(|l| l.starts_with(&format!("{prefix}N/A {id}:")));
        let fail = lines
            .iter()
            .find(|l| l.starts_with(&format!("{prefix}FAIL {id}:")));
        match (pass, na, fail) {
            (true, None, None) => passed += 1,
            (false, Some(_), None) if NOT_APPLICABLE.contains(&id.as_str()) => {}
            (false, Some(l), None) => problems.push(format!("{id} must run on RISC-V: {l}")),
            (_, _, Some(l)) => problems.push(l.to_string()),
            (false, None, None) => problems.push(format!("no line for scenario {id} ({prefix:?})")),
            _ => problems.push(format!("several lines for scenario {id} ({prefix:?})")),
        }
    }
    let closing = format!("{prefix}{passed} passed, 0 failed");
    if !lines.iter().any(|l| l.starts_with(&closing)) {
        problems.push(format!("no closing line `{closing}...`"));
    }
    passed
}

/// Checks the testbed's report against `ids`: both passes, the self-tests, no leak.
fn check_report(output: &str, ids: &[String]) -> Result<usize, String> {
    let lines: Vec<&str> = output.lines().collect();
    let mut problems = Vec::new();
    let passed = check_pass(&lines, ids, "", &mut problems);
    let again = check_pass(&lines, ids, SECOND_PASS, &mut problems);
    if again != passed {
        problems.push(format!(
            "the second pass passed {again} scenarios, the first {passed}"
        ));
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
    if !lines.contains(&"testbed-riscv: frames leaked: 0") {
        problems.push("no `frames leaked: 0` line".into());
    }
    if problems.is_empty() {
        Ok(passed)
    } else {
        Err(problems.join("; "))
    }
}

/// The CPU models the testbed boots on: with Sstc (the guest timer is `vstimecmp`) and
/// without (the backend multiplexes the host's SBI timer).
const CPUS: [&str; 2] = ["rv64,h=true", "rv64,h=true,sstc=false"];

/// Builds the testbed, boots it in QEMU (2 harts, each CPU model of [`CPUS`]) and checks
/// every scenario's line.
pub fn test() -> Result<(), String> {
    ensure_tools()?;
    let ids = scenario_ids()?;
    let elf = build(&[], "testbed-riscv")?;
    for cpu in CPUS {
        let (output, exited_ok) = boot(&elf, &["-cpu", cpu, "-smp", "2"])?;
        let passed = check_report(&output, &ids).map_err(|e| format!("-cpu {cpu}: {e}"))?;
        if !exited_ok {
            return Err(format!(
                "-cpu {cpu}: the testbed powered off with a failure status"
            ));
        }
        eprintln!(
            "xtask: RISC-V testbed (-cpu {cpu}): {passed} of {} scenarios passed, the rest not applicable",
            ids.len()
        );
    }
    Ok(())
}

/// Builds the benchmark image and prints hypervisor instructions per hypercall round trip,
/// counted exactly with `-icount shift=0`.
pub fn bench() -> Result<(), String> {
    ensure_tools()?;
    let elf = build(&["bench"], "testbed-riscv-bench")?;
    let (output, exited_ok) = boot(&elf, &["-cpu", CPUS[0], "-smp", "1", "-icount", "shift=0"])?;
    let figures: Vec<&str> = output
        .lines()
        .filter_map(|l| l.strip_prefix("bench: "))
        .filter(|l| l.contains("per round trip") || l.contains("of which"))
        .collect();
    if figures.is_empty() || !exited_ok {
        return Err("the RISC-V benchmark did not report its figures".into());
    }
    for f in figures {
        println!("riscv64 (QEMU TCG, -icount shift=0): {f}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_scenario_list_from_the_conformance_source() {
        let ids = scenario_ids().unwrap();
        assert!(ids.iter().any(|i| i == "garbage"), "{ids:?}");
    }

    /// A report whose first pass is `first`, followed by a complete second pass and tail.
    fn with_rest(first: &str) -> String {
        format!(
            "{first}[sv39x4, hlvx] PASS a\n[sv39x4, hlvx] N/A io-in: no port I/O\n\
             [sv39x4, hlvx] PASS b\n[sv39x4, hlvx] 2 passed, 0 failed, 1 skipped\n\
             SELFTEST timer: ok\ntestbed-riscv: frames leaked: 0\n"
        )
    }

    #[test]
    fn report_needs_every_id_and_the_closing_line() {
        let ids: Vec<String> = ["a", "io-in", "b"].iter().map(|s| s.to_string()).collect();
        let first = "PASS a\nN/A io-in: no port I/O\nPASS b\n2 passed, 0 failed, 1 skipped\n";
        let good = with_rest(first);
        assert_eq!(check_report(&good, &ids), Ok(2));
        let bad_selftest = format!("{good}SELFTEST sbi: FAIL no\n");
        assert!(check_report(&bad_selftest, &ids).is_err());
        assert!(check_report(
            &with_rest("PASS a\nN/A io-in: x\n1 passed, 0 failed\n"),
            &ids
        )
        .is_err());
        assert!(check_report(
            &with_rest("PASS a\nN/A io-in: x\nFAIL b: no\n1 passed, 1 failed\n"),
            &ids
        )
        .is_err());
        assert!(check_report(
            &with_rest("PASS a\nN/A io-in: x\nN/A b: x\n1 passed, 0 failed\n"),
            &ids
        )
        .is_err());
    }

    #[test]
    fn report_needs_the_second_pass_and_no_leak() {
        let ids: Vec<String> = ["a", "io-in", "b"].iter().map(|s| s.to_string()).collect();
        let first = "PASS a\nN/A io-in: no port I/O\nPASS b\n2 passed, 0 failed, 1 skipped\n";
        let good = with_rest(first);
        // A scenario missing from the second pass.
        let missing = good.replace("[sv39x4, hlvx] PASS b\n", "");
        assert!(check_report(&missing, &ids).is_err());
        // A scenario failing in the second pass only.
        let failing = good.replace("[sv39x4, hlvx] PASS b", "[sv39x4, hlvx] FAIL b: no");
        assert!(check_report(&failing, &ids).is_err());
        // No closing line for the second pass.
        let unclosed = good.replace("[sv39x4, hlvx] 2 passed", "[sv39x4, hlvx] 2 passd");
        assert!(check_report(&unclosed, &ids).is_err());
        // A frame leaked.
        let leaked = good.replace("frames leaked: 0", "frames leaked: 3");
        assert!(check_report(&leaked, &ids).is_err());
        // A fatal trap in the hypervisor.
        let fatal = format!("{good}testbed: FATAL host trap on hart 0: scause 0xd\n");
        assert!(check_report(&fatal, &ids).is_err());
    }

    /// Boots QEMU: `cargo test -p xtask -- --ignored`.
    #[test]
    #[ignore]
    fn bench_reports_its_figures() {
        bench().unwrap();
    }
}
