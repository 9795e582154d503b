//! The AArch64 testbed: build the test hypervisor image, boot it in QEMU at EL2, check its
//! report.
//!
//! `test()` builds `testbed-aarch64` for `aarch64-unknown-none`, boots it twice with
//! `qemu-system-aarch64 -machine virt,virtualization=on,gic-version=2 -cpu max|cortex-a72
//! -smp 2 -m 128M -semihosting`, streams the UART, and passes only if every scenario id of
//! the conformance crate (read from its source at run time, so a scenario added there is
//! required here at once) has a `PASS` line, or an `N/A` line for the scenarios AArch64
//! cannot express (port I/O), in both passes (the second, prefixed `[vgic] `, injects
//! interrupts through the GICv2 virtual CPU interface instead of `HCR_EL2.VI`), each pass's
//! closing line says `N passed, 0 failed`, there are
//! `SELFTEST` lines and no line reports a failure or a fatal host exception, no frame
//! leaked, and QEMU exits with status 0 (the
//! testbed ends QEMU through semihosting `SYS_EXIT` with status 1 when anything failed;
//! PSCI `SYSTEM_OFF` carries no status).
//!
//! `bench()` builds the image with the `bench` feature and boots it on one CPU with
//! `-icount shift=0`, where QEMU's PMU cycle counter advances once per instruction, and
//! prints hypervisor instructions per hypercall round trip.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TARGET: &str = "aarch64-unknown-none";
const CRATE: &str = "testbed-aarch64";
const QEMU: &str = "qemu-system-aarch64";
/// Scenarios AArch64 cannot express; the testbed must report them `N/A`, not skip them.
const NOT_APPLICABLE: [&str; 2] = ["io-out", "io-in"];
const TIMEOUT: Duration = Duration::from_secs(120);
/// The machine: EL2 available (`virtualization=on`), a GICv2 (the backend's kick SGI).
const MACHINE: [&str; 4] = [
    "-machine",
    "virt,virtualization=on,gic-version=2",
    "-m",
    "128M",
];
/// The CPU models the testbed boots on: `max` (48-bit PA, every feature QEMU has) and
/// `cortex-a72` (44-bit PA, Armv8.0).
const CPUS: [&str; 2] = ["max", "cortex-a72"];

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
    // `setup::qemu` stops when the RISC-V emulator is there; the Arm one comes from the
    // same place (Debian bookworm-backports, see the shared platform notes).
    let script = r#"set -e
if [ ! -f /etc/apt/sources.list.d/backports.sources ]; then
  awk 'BEGIN{RS=""} NR==1{print; exit}' /etc/apt/sources.list.d/debian.sources \
    | sed 's/^Suites:.*/Suites: bookworm-backports/' > /etc/apt/sources.list.d/backports.sources
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports qemu-system-arm >/dev/null"#;
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

/// Boots `elf` in QEMU, echoing its output; returns the output (`\r` removed) and whether
/// QEMU exited with status 0. Killed after [`TIMEOUT`].
fn boot(elf: &Path, extra: &[&str]) -> Result<(String, bool), String> {
    let mut args: Vec<String> = MACHINE.iter().map(|s| s.to_string()).collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(
        ["-semihosting", "-nographic", "-no-reboot", "-kernel"]
            .into_iter()
            .map(String::from),
    );
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

/// The prefix of the testbed's second pass (interrupts through the GICv2 virtual interface).
const SECOND_PASS: &str = "[vgic] ";

/// Checks one pass of the suite (its lines start with `prefix`); returns how many passed.
fn check_pass(lines: &[&str], ids: &[String], prefix: &str, problems: &mut Vec<String>) -> usize {
    let mut passed = 0;
    for id in ids {
        let pass = lines
            .iter()
            .filter(|l| **l == format!("{prefix}PASS {id}"))
            .count();
        let na = lines
            .iter()
            .filter(|l| l.starts_with(&format!("{prefix}N/A {id}:")))
            .count();
        let fail = lines
            .iter()
            .find(|l| l.starts_with(&format!("{prefix}FAIL {id}:")));
        match (pass, na, fail) {
            (1, 0, None) => passed += 1,
            (0, 1, None) if NOT_APPLICABLE.contains(&id.as_str()) => {}
            (0, 1, None) => problems.push(format!("{prefix}{id} must run on AArch64, it says N/A")),
            (_, _, Some(l)) => problems.push(l.to_string()),
            (0, 0, None) => problems.push(format!("{prefix}no line for scenario {id}")),
            _ => problems.push(format!("{prefix}several lines for scenario {id}")),
        }
    }
    let closing = format!("{prefix}{passed} passed, 0 failed");
    if !lines.iter().any(|l| l.starts_with(&closing)) {
        problems.push(format!("no closing line `{closing}...`"));
    }
    passed
}

/// Checks the testbed's report against `ids` (both passes); returns how many passed.
fn check_report(output: &str, ids: &[String]) -> Result<usize, String> {
    let lines: Vec<&str> = output.lines().collect();
    let mut problems = Vec::new();
    let passed = check_pass(&lines, ids, "", &mut problems);
    let again = check_pass(&lines, ids, SECOND_PASS, &mut problems);
    if again != passed {
        problems.push(format!(
            "the vGIC pass passed {again} scenarios, the first {passed}"
        ));
    }
    // Any other failure line (a trap or panic in the hypervisor) fails the run.
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
    if !lines.contains(&"testbed-aarch64: frames leaked: 0") {
        problems.push("no `frames leaked: 0` line".into());
    }
    if problems.is_empty() {
        Ok(passed)
    } else {
        Err(problems.join("; "))
    }
}

/// Builds the testbed, boots it in QEMU (2 CPUs, each model of [`CPUS`]) and checks every
/// scenario's line and the self-tests.
pub fn test() -> Result<(), String> {
    ensure_tools()?;
    let ids = scenario_ids()?;
    let elf = build(&[], CRATE)?;
    for cpu in CPUS {
        let (output, exited_ok) = boot(&elf, &["-cpu", cpu, "-smp", "2"])?;
        let passed = check_report(&output, &ids).map_err(|e| format!("-cpu {cpu}: {e}"))?;
        if !exited_ok {
            return Err(format!(
                "-cpu {cpu}: the AArch64 testbed ended QEMU with a failure status"
            ));
        }
        eprintln!(
            "xtask: AArch64 testbed (-cpu {cpu}): {passed} of {} scenarios passed, the rest not applicable",
            ids.len()
        );
    }
    Ok(())
}

/// Builds the benchmark image and prints hypervisor instructions per hypercall round trip,
/// counted with the PMU cycle counter under `-icount shift=0` (one cycle per instruction).
pub fn bench() -> Result<(), String> {
    ensure_tools()?;
    let elf = build(&["bench"], "testbed-aarch64-bench")?;
    let (output, exited_ok) = boot(&elf, &["-cpu", CPUS[0], "-smp", "1", "-icount", "shift=0"])?;
    let figures: Vec<&str> = output
        .lines()
        .filter_map(|l| l.strip_prefix("bench: "))
        .filter(|l| l.contains("per round trip") || l.contains("of which"))
        .collect();
    if figures.is_empty() || !exited_ok {
        return Err("the AArch64 benchmark did not report its figures".into());
    }
    for f in figures {
        println!("aarch64 (QEMU TCG, -icount shift=0): {f}");
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

    #[test]
    fn report_needs_every_id_the_closing_line_and_no_leak() {
        let ids: Vec<String> = ["a", "io-in", "b"].iter().map(|s| s.to_string()).collect();
        let pass = "PASS a\nN/A io-in: no port I/O\nPASS b\n2 passed, 0 failed, 1 skipped\n";
        let second: String = pass.lines().map(|l| format!("[vgic] {l}\n")).collect();
        let good = &format!("{pass}{second}SELFTEST psci: ok\ntestbed-aarch64: frames leaked: 0\n");
        assert_eq!(check_report(good, &ids), Ok(2));
        let no_second = format!("{pass}SELFTEST psci: ok\ntestbed-aarch64: frames leaked: 0\n");
        assert!(check_report(&no_second, &ids).is_err());
        let second_fails = good.replace("[vgic] PASS b", "[vgic] FAIL b: no");
        assert!(check_report(&second_fails, &ids).is_err());
        let fatal = format!("{good}testbed: FATAL host exception\n");
        assert!(check_report(&fatal, &ids).is_err());
        let leak = good.replace("leaked: 0", "leaked: 3");
        assert!(check_report(&leak, &ids).is_err());
        let selftest = good.replace("psci: ok", "psci: FAIL no");
        assert!(check_report(&selftest, &ids).is_err());
        let no_selftest = good.replace("SELFTEST psci: ok\n", "");
        assert!(check_report(&no_selftest, &ids).is_err());
        assert!(check_report("PASS a\nN/A io-in: x\n1 passed, 0 failed\n", &ids).is_err());
        assert!(check_report(
            "PASS a\nN/A io-in: x\nFAIL b: no\n1 passed, 1 failed\n",
            &ids
        )
        .is_err());
        assert!(check_report(
            "PASS a\nN/A io-in: x\nN/A b: x\n1 passed, 0 failed\ntestbed-aarch64: frames leaked: 0\n",
            &ids
        )
        .is_err());
    }

    /// Boots QEMU: `cargo test -p xtask -- --ignored`.
    #[test]
    #[ignore]
    fn test_and_bench_in_qemu() {
        test().unwrap();
        bench().unwrap();
    }
}
