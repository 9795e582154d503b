//! The x86-64 SVM testbed: build the test hypervisor image, boot it in QEMU (TCG, AMD SVM
//! with nested paging), check its report.
//!
//! `test()` builds `testbed-x86` for `x86_64-unknown-none` and boots it twice, with
//! `qemu-system-x86_64 -accel tcg -cpu max|qemu64,+svm,+npt -smp 2 -m 256M -nodefaults
//! -display none -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=0x04 -no-reboot
//! -kernel <elf>` (a PVH boot), streaming COM1. Each boot passes only if every scenario id
//! of the conformance crate (read from its source at run time, so a scenario added there
//! is required here at once) has a `PASS` line, or an `N/A` line for `cpu-down` (x86 has
//! no architectural CPU-off), the closing line says `N passed, 0 failed`, there are
//! `SELFTEST` lines and no line reports a failure or a fatal host exception, no frame
//! leaked, and QEMU exits with status 33. The testbed ends QEMU through `isa-debug-exit`,
//! which exits with `(code << 1) | 1`: code 0x10 (33) means everything passed, 0x11 (35)
//! that something failed; anything else (0 when QEMU quits on its own, a reset after a
//! host triple fault with `-no-reboot`) is a failure too.
//!
//! `bench()` builds the image with the `bench` feature and boots it on one CPU with
//! `-icount shift=0`, where QEMU derives the TSC from the instruction count (one tick per
//! instruction), and prints hypervisor instructions per hypercall round trip.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TARGET: &str = "x86_64-unknown-none";
const CRATE: &str = "testbed-x86";
const QEMU: &str = "qemu-system-x86_64";
/// Scenarios x86 cannot express; the testbed must report them `N/A`, not skip them.
const NOT_APPLICABLE: [&str; 1] = ["cpu-down"];
const TIMEOUT: Duration = Duration::from_secs(120);
/// QEMU's exit status when the testbed wrote its success code (0x10) to `isa-debug-exit`.
const EXIT_PASSED: i32 = (0x10 << 1) | 1;
/// The CPU models the testbed boots on: `max` (every feature QEMU's TCG has, x2APIC
/// included) and `qemu64` with SVM and nested paging added (the least an SVM host needs).
const CPUS: [&str; 2] = ["max", "qemu64,+svm,+npt"];
/// The machine: TCG (SVM with nested paging), PVH boot, COM1 on stdout, the exit device.
const MACHINE: [&str; 11] = [
    "-accel",
    "tcg",
    "-m",
    "256M",
    "-nodefaults",
    "-display",
    "none",
    "-serial",
    "stdio",
    "-device",
    "isa-debug-exit,iobase=0xf4,iosize=0x04",
];

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
    crate::setup::qemu()?;
    if crate::cmd::exists(QEMU) {
        return Ok(());
    }
    // `setup::qemu` stops when the RISC-V emulator is there; the x86 one comes from the
    // same place (Debian bookworm-backports, see the shared platform notes).
    let script = r#"set -e
if [ ! -f /etc/apt/sources.list.d/backports.sources ]; then
  awk 'BEGIN{RS=""} NR==1{print; exit}' /etc/apt/sources.list.d/debian.sources \
    | sed 's/^Suites:.*/Suites: bookworm-backports/' > /etc/apt/sources.list.d/backports.sources
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports qemu-system-x86 >/dev/null"#;
    crate::cmd::run("sh", &["-c", script], &[])?;
    if crate::cmd::exists(QEMU) {
        Ok(())
    } else {
        Err(format!("QEMU installed but {QEMU} is still missing"))
    }
}

/// Builds the image (with `features`) and copies it to `target/<name>.elf`.
fn build(features: &[&str], name: &str) -> Result<PathBuf, String> {
    let started = Instant::now();
    let mut args = vec!["build", "-p", CRATE, "--target", TARGET, "--release"];
    if !features.is_empty() {
        args.push("--features");
        args.extend(features);
    }
    crate::cmd::cargo(&args)?;
    let built = target_dir().join(TARGET).join("release").join(CRATE);
    let copy = target_dir().join(format!("{name}.elf"));
    std::fs::copy(&built, &copy).map_err(|e| format!("copying {}: {e}", built.display()))?;
    eprintln!(
        "xtask: built {} in {:.1} s",
        copy.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(copy)
}

/// Boots `elf` in QEMU, echoing its output; returns the output and QEMU's exit status
/// (`None` if killed by a signal). Killed after [`TIMEOUT`].
fn boot(elf: &Path, extra: &[&str]) -> Result<(String, Option<i32>), String> {
    let mut args: Vec<String> = MACHINE.iter().map(|s| s.to_string()).collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["-no-reboot", "-kernel"].into_iter().map(String::from));
    args.push(elf.display().to_string());
    eprintln!("$ {QEMU} {}", args.join(" "));
    let started = Instant::now();
    let mut child = Command::new(QEMU)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{QEMU}: cannot start: {e}"))?;
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

/// Checks the testbed's report against `ids`; returns how many passed.
fn check_report(output: &str, ids: &[String]) -> Result<usize, String> {
    let lines: Vec<&str> = output.lines().collect();
    let mut problems = Vec::new();
    let mut passed = 0;
    for id in ids {
        let pass = lines.iter().filter(|l| **l == format!("PASS {id}")).count();
        let na = lines
            .iter()
            .filter(|l| l.starts_with(&format!("N/A {id}:")))
            .count();
        let fail = lines.iter().find(|l| l.starts_with(&format!("FAIL {id}:")));
        match (pass, na, fail) {
            (1, 0, None) => passed += 1,
            (0, 1, None) if NOT_APPLICABLE.contains(&id.as_str()) => {}
            (0, 1, None) => problems.push(format!("{id} must run on x86 SVM, it says N/A")),
            (_, _, Some(l)) => problems.push(l.to_string()),
            (0, 0, None) => problems.push(format!("no line for scenario {id}")),
            _ => problems.push(format!("several lines for scenario {id}")),
        }
    }
    let closing = format!("{passed} passed, 0 failed");
    if !lines.iter().any(|l| l.starts_with(&closing)) {
        problems.push(format!("no closing line `{closing}...`"));
    }
    // Any other failure line (a host exception or panic in the hypervisor) fails the run.
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
    if !lines.contains(&"testbed-x86: frames leaked: 0") {
        problems.push("no `frames leaked: 0` line".into());
    }
    if problems.is_empty() {
        Ok(passed)
    } else {
        Err(problems.join("; "))
    }
}

/// Builds the testbed, boots it in QEMU on two CPUs of each model of [`CPUS`] and checks
/// every scenario's line, the self-tests and the exit status.
pub fn test() -> Result<(), String> {
    ensure_tools()?;
    let ids = scenario_ids()?;
    let elf = build(&[], CRATE)?;
    for cpu in CPUS {
        let (output, status) = boot(&elf, &["-cpu", cpu, "-smp", "2"])?;
        let passed = check_report(&output, &ids).map_err(|e| format!("-cpu {cpu}: {e}"))?;
        if status != Some(EXIT_PASSED) {
            return Err(format!(
                "-cpu {cpu}: the x86 testbed ended QEMU with status {status:?}, not {EXIT_PASSED} (success)"
            ));
        }
        eprintln!(
            "xtask: x86 SVM testbed (-cpu {cpu}): {passed} of {} scenarios passed, the rest not applicable",
            ids.len()
        );
    }
    Ok(())
}

/// Builds the benchmark image and prints hypervisor instructions per hypercall round trip,
/// counted with the TSC under `-icount shift=0` (one tick per instruction).
pub fn bench() -> Result<(), String> {
    ensure_tools()?;
    let elf = build(&["bench"], "testbed-x86-bench")?;
    let (output, status) = boot(&elf, &["-cpu", CPUS[0], "-smp", "1", "-icount", "shift=0"])?;
    let figures: Vec<&str> = output
        .lines()
        .filter_map(|l| l.strip_prefix("bench: "))
        .filter(|l| l.contains("per round trip") || l.contains("of which"))
        .collect();
    if figures.is_empty() || status != Some(EXIT_PASSED) {
        return Err("the x86 SVM benchmark did not report its figures".into());
    }
    for f in figures {
        println!("x86 SVM (QEMU TCG, -icount shift=0): {f}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_scenario_list_from_the_conformance_source() {
        let ids = scenario_ids().unwrap();
        assert!(ids.iter().any(|i| i == "cpu-down"), "{ids:?}");
    }

    #[test]
    fn report_needs_every_id_the_closing_line_and_no_leak() {
        let ids: Vec<String> = ["a", "cpu-down", "b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let good = "PASS a\nN/A cpu-down: no CPU-off\nPASS b\n2 passed, 0 failed, 1 skipped\n\
                    SELFTEST send-ipi: ok\ntestbed-x86: frames leaked: 0\n";
        assert_eq!(check_report(good, &ids), Ok(2));
        assert!(check_report(&good.replace("PASS b", "FAIL b: no"), &ids).is_err());
        assert!(check_report(&good.replace("PASS b", "N/A b: x"), &ids).is_err());
        assert!(check_report(&good.replace("PASS a\n", ""), &ids).is_err());
        assert!(check_report(&good.replace("leaked: 0", "leaked: 3"), &ids).is_err());
        assert!(check_report(
            &good.replace("2 passed, 0 failed", "2 passed, 1 failed"),
            &ids
        )
        .is_err());
        assert!(check_report(&good.replace("send-ipi: ok", "send-ipi: FAIL no"), &ids).is_err());
        assert!(check_report(&good.replace("SELFTEST send-ipi: ok\n", ""), &ids).is_err());
        let fatal = format!("{good}testbed: FATAL host exception 13\n");
        assert!(check_report(&fatal, &ids).is_err());
    }

    /// Boots QEMU: `cargo test -p xtask -- --ignored`.
    #[test]
    #[ignore]
    fn test_and_bench_in_qemu() {
        test().unwrap();
        bench().unwrap();
    }
}
