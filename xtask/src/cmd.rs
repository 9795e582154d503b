//! Running commands: streamed to the terminal, failures turned into errors.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn describe(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `program args`, its output going straight to ours.
pub fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let line = describe(program, args);
    eprintln!("$ {line}");
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .map_err(|e| format!("{line}: cannot start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{line}: {status}"))
    }
}

/// Runs cargo with `args`.
pub fn cargo(args: &[&str]) -> Result<(), String> {
    run("cargo", args, &[])
}

/// Runs `program args`, echoing its standard output line by line as it comes and returning
/// it, so the caller can read test counts from it.
pub fn run_capture(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<String, String> {
    let line = describe(program, args);
    eprintln!("$ {line}");
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{line}: cannot start: {e}"))?;
    let mut captured = String::new();
    if let Some(out) = child.stdout.take() {
        for l in BufReader::new(out).lines() {
            let l = l.map_err(|e| format!("{line}: reading output: {e}"))?;
            println!("{l}");
            captured.push_str(&l);
            captured.push('\n');
        }
    }
    let status = child.wait().map_err(|e| format!("{line}: {e}"))?;
    if status.success() {
        Ok(captured)
    } else {
        Err(format!("{line}: {status}"))
    }
}

/// Whether `program` can be found on PATH.
pub fn exists(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Runs `program args` in directory `dir`, its output going straight to ours.
pub fn run_in(program: &str, args: &[&str], dir: &std::path::Path) -> Result<(), String> {
    let line = describe(program, args);
    eprintln!("$ (in {}) {line}", dir.display());
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .status()
        .map_err(|e| format!("{line}: cannot start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{line}: {status}"))
    }
}

/// Runs `program args` (in `dir`, if given) quietly and returns its standard output;
/// its standard error goes to ours.
pub fn output(
    program: &str,
    args: &[&str],
    dir: Option<&std::path::Path>,
) -> Result<String, String> {
    let line = describe(program, args);
    let mut c = Command::new(program);
    c.args(args).stderr(Stdio::inherit());
    if let Some(dir) = dir {
        c.current_dir(dir);
    }
    let out = c
        .output()
        .map_err(|e| format!("{line}: cannot start: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{line}: {}", out.status))
    }
}
