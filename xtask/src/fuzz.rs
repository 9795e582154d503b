//! `cargo xtask fuzz [x86|aarch64|riscv] [--runs N]`: the coverage-guided comparison of each
//! guest-reachable instruction decoder with its reference decoder (`decode-check/fuzz`,
//! libFuzzer through cargo-fuzz on nightly), N inputs per decoder (default 10 million).
//! Installs nightly and cargo-fuzz if missing. Prints the inputs run and the mismatches
//! per decoder; a mismatch stops that decoder's run and leaves the input under
//! `decode-check/fuzz/artifacts/<decoder>/` (`cargo +nightly fuzz run <decoder> <file>`
//! in `decode-check` replays it).
//!
//! `cargo xtask fuzz guests [--runs N]`: the conformance `chaos` scenario alone on hosted
//! KVM with N random programs (default 100,000; `cargo test` runs 200), through
//! `backends/kvm/testkit/examples/chaos.rs`: prints the report line with the exits tallied,
//! the time taken and the frames leaked, and fails if the scenario failed or a frame leaked.

use crate::cmd;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const TARGETS: [(&str, usize); 3] = [("x86", 16), ("aarch64", 12), ("riscv", 4)];
const DEFAULT_RUNS: u64 = 10_000_000;

/// Random guest programs `cargo xtask fuzz guests` runs unless told otherwise.
const DEFAULT_GUEST_PROGRAMS: u64 = 100_000;

pub fn fuzz(args: &[String]) -> Result<(), String> {
    if args.first().map(String::as_str) == Some("guests") {
        return guests(&args[1..]);
    }
    let mut runs = DEFAULT_RUNS;
    let mut which: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => {
                runs = it
                    .next()
                    .and_then(|n| n.replace('_', "").parse().ok())
                    .ok_or("--runs needs a number")?;
            }
            t if TARGETS.iter().any(|(n, _)| *n == t) => which.push(t),
            other => {
                return Err(format!(
                    "unknown fuzz argument `{other}`; usage: cargo xtask fuzz [x86|aarch64|riscv|guests] [--runs N]"
                ))
            }
        }
    }
    if which.is_empty() {
        which = TARGETS.iter().map(|(n, _)| *n).collect();
    }
    install()?;
    let mut results = Vec::new();
    for t in &which {
        let max_len = TARGETS.iter().find(|(n, _)| n == t).map_or(16, |(_, l)| *l);
        results.push((*t, run(t, runs, max_len)?));
    }
    let mut failed = false;
    for (t, r) in &results {
        println!(
            "fuzz {t}: {} inputs run, {} mismatches{}",
            r.runs,
            r.mismatch.is_some() as u8,
            r.mismatch
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        );
        failed |= r.mismatch.is_some() || r.runs < runs;
    }
    if failed {
        Err("a decoder disagreed with its reference (or ran short)".into())
    } else {
        Ok(())
    }
}

fn install() -> Result<(), String> {
    let nightly = Command::new("cargo")
        .args(["+nightly", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !nightly {
        cmd::run(
            "rustup",
            &["toolchain", "install", "nightly", "--profile", "minimal"],
            &[],
        )?;
    }
    let have_fuzz = Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have_fuzz {
        cmd::cargo(&["install", "cargo-fuzz", "--locked"])?;
    }
    Ok(())
}

struct Outcome {
    runs: u64,
    mismatch: Option<String>,
}

/// Runs one target for `runs` inputs, echoing libFuzzer's output and reading from it the
/// inputs run ("Done N runs") and our mismatch message (the panic).
fn run(target: &str, runs: u64, max_len: usize) -> Result<Outcome, String> {
    let runs_arg = format!("-runs={runs}");
    let len_arg = format!("-max_len={max_len}");
    let args = [
        "+nightly",
        "fuzz",
        "run",
        "-O",
        target,
        "--",
        runs_arg.as_str(),
        len_arg.as_str(),
        "-print_final_stats=1",
    ];
    eprintln!("$ (cd decode-check && cargo {})", args.join(" "));
    let mut child = Command::new("cargo")
        .current_dir(decode_check_dir()?)
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cargo fuzz: cannot start: {e}"))?;
    let mut out = Outcome {
        runs: 0,
        mismatch: None,
    };
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines() {
            let line = line.map_err(|e| format!("cargo fuzz: {e}"))?;
            eprintln!("{line}");
            if let Some(n) = line
                .strip_prefix("Done ")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok())
            {
                out.runs = n;
            }
            if let Some(n) = line
                .strip_prefix("stat::number_of_executed_units:")
                .and_then(|n| n.trim().parse().ok())
            {
                out.runs = n;
            }
            if out.mismatch.is_none() {
                if let Some(i) = line.find("mismatch on ") {
                    out.mismatch = Some(line[i..].to_string());
                }
            }
        }
    }
    let status = child.wait().map_err(|e| format!("cargo fuzz: {e}"))?;
    if !status.success() && out.mismatch.is_none() {
        return Err(format!("cargo fuzz run {target}: {status}"));
    }
    Ok(out)
}

fn decode_check_dir() -> Result<PathBuf, String> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|root| root.join("decode-check"))
        .ok_or_else(|| "xtask is not inside the workspace".to_string())
}

/// `cargo xtask fuzz guests [--runs N]`.
fn guests(args: &[String]) -> Result<(), String> {
    let runs = match args {
        [] => DEFAULT_GUEST_PROGRAMS,
        [flag, n] if flag == "--runs" => n
            .replace('_', "")
            .parse()
            .map_err(|_| format!("--runs needs a number, not `{n}`"))?,
        _ => return Err("usage: cargo xtask fuzz guests [--runs N]".into()),
    };
    let runs = runs.to_string();
    cmd::cargo(&[
        "run",
        "--release",
        "-p",
        "axvcpu-kvm-testkit",
        "--example",
        "chaos",
        "--",
        "--runs",
        &runs,
    ])
}
