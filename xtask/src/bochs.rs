//! The x86-64 testbed on Intel VMX, in Bochs: build the same image as the QEMU run, put it
//! in a GRUB ISO, boot it headless in Bochs, check its report.
//!
//! `test()` builds `testbed-x86` (the `x86::TESTBED` image, which picks its backend from
//! CPUID: Bochs's `corei7_haswell_4770` offers VMX), wraps it in a GRUB rescue ISO
//! (`grub-mkrescue`; GRUB loads it through its Multiboot2 header, Bochs has no `-kernel`;
//! [`iso`] also adds Multiboot2 modules, which the Linux run uses: `crate::bochs_linux`),
//! writes `target/bochs/bochsrc` for a [`Machine`] (for the suite two CPUs, 256 MiB,
//! `clock: sync=none` with a fixed [`IPS`]; the port 0xe9 hack by which the testbed knows
//! Bochs, COM1 to `target/bochs/com1.txt`, the log to `target/bochs/bochs.log`) and runs
//! `bochs -q -f bochsrc -rc <file with "c">` under `script` (its `term` display wants a
//! terminal; no network port is opened), killed after the machine's timeout. A triple
//! fault of the host is a Bochs panic that ends the run at once (`reset_on_triple_fault=0`;
//! with a reset the machine would boot again and hang). COM1's lines are echoed as they
//! come. Bochs's exit status is 1 however the run went, so the run is judged by the
//! report alone, with the checks of the QEMU runs (`crate::testbed::check_report`: exactly
//! `cpu-down` `N/A`, every other scenario `PASS`, the closing line, `SELFTEST` lines and no
//! failure, `testbed-x86: frames leaked: 0`), plus every self-test of the SVM run reported
//! `ok` ([`REQUIRED_SELFTESTS`]), and by the log: the testbed ended Bochs
//! through its shutdown port, not a reset loop or a Bochs panic.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::testbed;
use crate::x86;

/// The conformance run's instructions per emulated second. With `clock: sync=none` time is
/// counted in instructions, so the firmware's fixed waits cost fewer host seconds with a
/// smaller figure (BIOS and GRUB on two CPUs: ~5 s at 10 M, ~12 s at 50 M), while the
/// testbed's own timeouts (measured against the PIT, so in emulated time) still allow
/// millions of instructions.
pub const IPS: u64 = 10_000_000;
/// A Bochs machine: its memory, its CPUs, how long a run may take (boot to shutdown).
#[derive(Debug, Clone, Copy)]
pub struct Machine {
    /// RAM in MiB.
    pub megs: u32,
    /// CPUs.
    pub cpus: u32,
    /// Instructions per emulated second (`cpu: ips=`): the TSC's rate, and how many
    /// instructions a timer period of the guest is worth.
    pub ips: u64,
    /// The whole run, boot to shutdown.
    pub timeout: Duration,
}

/// The conformance run's machine: two CPUs (the multi-CPU scenarios), 256 MiB.
const TESTBED: Machine = Machine {
    megs: 256,
    cpus: 2,
    ips: IPS,
    timeout: Duration::from_secs(300),
};

/// A file GRUB loads as a Multiboot2 module, with the command line `<name> <address>
/// <size>` (the testbed's `multiboot.rs` copies it there). The ISO holds the file without
/// its trailing zeros (a kernel image's `.bss` is megabytes of them, which GRUB would read
/// from the emulated CD); the size tells the testbed how many to write back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// The file.
    pub file: PathBuf,
    /// Its name (the testbed checks it).
    pub name: &'static str,
    /// The physical address it goes to.
    pub addr: u64,
}
/// How the testbed's line ends when CPUID offers VMX but the image has no VMX backend.
const NO_BACKEND: &str = "VMX backend not available in this build";
/// The self-tests that must report `ok` in Bochs: the SVM run's checks of the backend
/// (`external-interrupt-masked-guest` is reported as not run there, see the testbed).
const REQUIRED_SELFTESTS: [&str; 11] = [
    "real-mode-start",
    "fail-entry",
    "external-interrupt",
    "triple-fault",
    "string-io",
    "high-byte-mmio",
    "send-ipi",
    "msrs-trap",
    "percpu-cycle",
    "garbage-exits",
    "alloc-fail",
];
/// What Bochs writes to its log when the testbed ends the run through port 0x8900.
const SHUTDOWN_LOG: &str = "Shutdown port: shutdown requested";

/// Where the Bochs runs keep their files: `target/bochs/`.
pub fn dir() -> PathBuf {
    testbed::target_dir().join("bochs")
}

/// GRUB's menu: no wait, the testbed through Multiboot2, then each module (in
/// `/boot/<name>`) with its command line `<name> <address> <size>`, `sizes` the files'.
fn grub_cfg(modules: &[Module], sizes: &[u64]) -> String {
    let mut cfg = String::from(
        "set timeout=0\nset default=0\nmenuentry \"testbed-x86\" {\n    \
         multiboot2 /boot/testbed-x86.elf\n",
    );
    for (m, size) in modules.iter().zip(sizes) {
        cfg += &format!(
            "    module2 /boot/{0} {0} {1:#x} {size:#x}\n",
            m.name, m.addr
        );
    }
    cfg + "    boot\n}\n"
}

/// The Bochs configuration of `machine` for booting `iso`, with COM1 to `com1` and the log
/// to `log`.
fn bochsrc(machine: &Machine, iso: &Path, com1: &Path, log: &Path) -> String {
    format!(
        "# Written by cargo xtask (xtask/src/bochs.rs).\n\
         megs: {}\n\
         cpu: model=corei7_haswell_4770, count={}, ips={}, reset_on_triple_fault=0\n\
         clock: sync=none, time0=local\n\
         romimage: file=/usr/share/bochs/BIOS-bochs-latest\n\
         vgaromimage: file=/usr/share/bochs/VGABIOS-lgpl-latest\n\
         ata0-master: type=cdrom, path=\"{}\", status=inserted\n\
         boot: cdrom\n\
         display_library: term\n\
         com1: enabled=1, mode=file, dev=\"{}\"\n\
         log: \"{}\"\n\
         port_e9_hack: enabled=1\n\
         panic: action=fatal\n\
         error: action=report\n",
        machine.megs,
        machine.cpus,
        machine.ips,
        iso.display(),
        com1.display(),
        log.display()
    )
}

/// Builds the GRUB ISO `target/bochs/<name>.iso` around `elf` and `modules`.
pub fn iso(elf: &Path, modules: &[Module], name: &str) -> Result<PathBuf, String> {
    let root = dir().join(format!("{name}-iso"));
    let _ = std::fs::remove_dir_all(&root);
    let boot = root.join("boot");
    std::fs::create_dir_all(boot.join("grub")).map_err(|e| format!("{}: {e}", boot.display()))?;
    std::fs::copy(elf, boot.join("testbed-x86.elf")).map_err(|e| format!("copying ELF: {e}"))?;
    let mut sizes = Vec::new();
    for m in modules {
        let bytes = std::fs::read(&m.file).map_err(|e| format!("{}: {e}", m.file.display()))?;
        let kept = bytes.len() - bytes.iter().rev().take_while(|b| **b == 0).count();
        std::fs::write(boot.join(m.name), &bytes[..kept])
            .map_err(|e| format!("writing module {}: {e}", m.name))?;
        sizes.push(bytes.len() as u64);
    }
    std::fs::write(
        boot.join("grub").join("grub.cfg"),
        grub_cfg(modules, &sizes),
    )
    .map_err(|e| format!("grub.cfg: {e}"))?;
    let out = dir().join(format!("{name}.iso"));
    let (o, r) = (out.display().to_string(), root.display().to_string());
    eprintln!("$ grub-mkrescue -o {o} {r}");
    let made = Command::new("grub-mkrescue")
        .args(["-o", &o, &r])
        .output()
        .map_err(|e| format!("grub-mkrescue: cannot start: {e}"))?;
    if !made.status.success() {
        return Err(format!(
            "grub-mkrescue: {}: {}",
            made.status,
            String::from_utf8_lossy(&made.stderr)
        ));
    }
    Ok(out)
}

/// Echoes the complete lines `file` has gained since `*done` bytes; keeps the rest.
/// Whether one of them starts with `marker` (never, for an empty one).
fn echo_new_lines(file: &Path, done: &mut u64, partial: &mut String, marker: &str) -> bool {
    let Ok(mut f) = std::fs::File::open(file) else {
        return false;
    };
    if f.seek(SeekFrom::Start(*done)).is_err() {
        return false;
    }
    let mut bytes = Vec::new();
    let mut seen = false;
    if let Ok(n) = f.read_to_end(&mut bytes) {
        *done += n as u64;
        partial.push_str(&String::from_utf8_lossy(&bytes));
        while let Some(end) = partial.find('\n') {
            let line = partial[..end].trim_end_matches('\r');
            seen |= !marker.is_empty() && line.starts_with(marker);
            println!("{line}");
            partial.drain(..=end);
        }
    }
    seen
}

/// What a Bochs run left.
#[derive(Debug)]
pub struct Run {
    /// COM1's output, `\r` removed.
    pub output: String,
    /// Bochs's log.
    pub log: String,
    /// Wall time, Bochs's start to its end.
    pub secs: f64,
    /// Wall time from Bochs's start to the first line starting with the marker `boot` was
    /// given (within the 0.1 s COM1 is polled at).
    pub marker_secs: Option<f64>,
    /// Wall time from Bochs's start to the testbed's first line (BIOS, GRUB and what it
    /// loads).
    pub first_line_secs: Option<f64>,
}

/// The line of `log` with Bochs's panic, if it gave up (a triple fault of the host, say),
/// other than the testbed's shutdown.
pub fn panic_line(log: &str) -> Option<&str> {
    log.lines()
        .find(|l| l.contains(">>PANIC<<") && !l.contains(SHUTDOWN_LOG))
}

/// Whether the testbed ended Bochs through its shutdown port.
pub fn shut_down(log: &str) -> bool {
    log.contains(SHUTDOWN_LOG)
}

/// Ends `child` (`script`), which ends Bochs with it: SIGTERM, which `script` passes on.
fn stop(child: &mut Child) {
    let terminated = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    if !terminated {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// Boots `iso` in Bochs on `machine`, timing the first COM1 line that starts with `marker`
/// (none if empty).
pub fn boot(iso: &Path, machine: &Machine, marker: &str) -> Result<Run, String> {
    let d = dir();
    let (rc, cmds) = (d.join("bochsrc"), d.join("bochs.rc"));
    let (com1, log, screen) = (
        d.join("com1.txt"),
        d.join("bochs.log"),
        d.join("screen.txt"),
    );
    std::fs::write(&rc, bochsrc(machine, iso, &com1, &log)).map_err(|e| format!("bochsrc: {e}"))?;
    // Bochs's built-in debugger stops at a prompt first: `c` continues.
    std::fs::write(&cmds, "c\n").map_err(|e| format!("{}: {e}", cmds.display()))?;
    for old in [&com1, &log] {
        let _ = std::fs::remove_file(old);
    }
    let screen_file =
        std::fs::File::create(&screen).map_err(|e| format!("{}: {e}", screen.display()))?;
    let inner = format!(
        "exec timeout --kill-after=5 {} bochs -q -f '{}' -rc '{}'",
        machine.timeout.as_secs(),
        rc.display(),
        cmds.display()
    );
    eprintln!(
        "$ script -qec \"{inner}\" /dev/null   (COM1: {})",
        com1.display()
    );
    let started = Instant::now();
    // `script` gives Bochs's `term` display the terminal it wants; the screen goes to a file.
    let mut child = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(screen_file)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("script: cannot start: {e}"))?;
    let (mut done, mut partial, mut marker_secs, mut first_line_secs) =
        (0, String::new(), None, None);
    let status = loop {
        if echo_new_lines(&com1, &mut done, &mut partial, marker) && marker_secs.is_none() {
            marker_secs = Some(started.elapsed().as_secs_f64());
        }
        if done > 0 && first_line_secs.is_none() {
            first_line_secs = Some(started.elapsed().as_secs_f64());
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => {
                stop(&mut child);
                return Err(format!("waiting for Bochs: {e}"));
            }
        }
    };
    if echo_new_lines(&com1, &mut done, &mut partial, marker) && marker_secs.is_none() {
        marker_secs = Some(started.elapsed().as_secs_f64());
    }
    if !partial.is_empty() {
        println!("{partial}");
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!("xtask: Bochs ran {secs:.1} s, {status}");
    // `timeout` exits with 124 (137 after the kill) when it had to end Bochs.
    if matches!(status.code(), Some(124) | Some(137)) {
        return Err(format!(
            "Bochs did not finish within {} s (see {})",
            machine.timeout.as_secs(),
            log.display()
        ));
    }
    let output = std::fs::read_to_string(&com1)
        .map_err(|e| format!("{}: {e}", com1.display()))?
        .replace('\r', "");
    let log = std::fs::read(&log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    Ok(Run {
        output,
        log,
        secs,
        marker_secs,
        first_line_secs,
    })
}

/// Builds the testbed, boots it in Bochs (Intel VMX, two CPUs) and checks its report.
pub fn test() -> Result<(), String> {
    let tb = &x86::TESTBED;
    let elf = testbed::build(tb, &[], tb.package)?;
    let iso = iso(&elf, &[], tb.package)?;
    let Run { output, log, .. } = boot(&iso, &TESTBED, "")?;
    // A triple fault of the host, or anything else Bochs gives up on.
    if let Some(panic) = panic_line(&log) {
        return Err(format!("x86 VMX in Bochs: Bochs panicked: {panic}"));
    }
    if let Some(l) = output.lines().find(|l| l.ends_with(NO_BACKEND)) {
        return Err(format!(
            "x86 VMX in Bochs: every scenario N/A, the image has no VMX backend: {l}"
        ));
    }
    let passed = testbed::check_report(tb, &output).map_err(|e| {
        format!(
            "x86 VMX in Bochs: {e} (Bochs's log: {})",
            dir().join("bochs.log").display()
        )
    })?;
    let missing = missing_selftests(&output);
    if !missing.is_empty() {
        return Err(format!(
            "x86 VMX in Bochs: self-tests not reported ok: {}",
            missing.join(", ")
        ));
    }
    if !shut_down(&log) {
        return Err(format!(
            "x86 VMX in Bochs: the testbed did not end the run (no `{SHUTDOWN_LOG}` in {})",
            dir().join("bochs.log").display()
        ));
    }
    testbed::say_passed(tb, "x86 VMX testbed (Bochs, corei7_haswell_4770)", passed);
    Ok(())
}

/// Builds the benchmark image, boots it in Bochs and prints its figures: hypervisor
/// instructions per hypercall round trip (with `clock: sync=none` the TSC the testbed reads
/// counts one tick per instruction, so the figures are exact and repeatable).
pub fn bench() -> Result<(), String> {
    let tb = &x86::TESTBED;
    let name = format!("{}-bench", tb.package);
    let elf = testbed::build(tb, &["bench"], &name)?;
    let iso = iso(&elf, &[], &name)?;
    let output = boot(&iso, &TESTBED, "")?.output;
    let figures = testbed::bench_figures(&output);
    if figures.is_empty() {
        return Err("the x86 VMX benchmark in Bochs did not report its figures".into());
    }
    for f in figures {
        println!("x86 VMX (Bochs, clock: sync=none): {f}");
    }
    Ok(())
}

/// The [`REQUIRED_SELFTESTS`] that `output` does not report `ok`.
fn missing_selftests(output: &str) -> Vec<&'static str> {
    REQUIRED_SELFTESTS
        .into_iter()
        .filter(|name| {
            let ok = format!("SELFTEST {name}: ok");
            !output.lines().any(|l| l == ok)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_required_selftest_must_say_ok() {
        let all: String = REQUIRED_SELFTESTS
            .iter()
            .map(|n| format!("SELFTEST {n}: ok\n"))
            .collect();
        assert!(missing_selftests(&all).is_empty());
        let not_run = all.replace(
            "SELFTEST garbage-exits: ok",
            "SELFTEST garbage-exits: not run (x)",
        );
        assert_eq!(missing_selftests(&not_run), ["garbage-exits"]);
        assert_eq!(missing_selftests("").len(), REQUIRED_SELFTESTS.len());
    }

    #[test]
    fn the_bochsrc_boots_the_iso_headless_with_vmx_and_opens_no_port() {
        let rc = bochsrc(
            &TESTBED,
            Path::new("/x/t.iso"),
            Path::new("/x/c"),
            Path::new("/x/l"),
        );
        for want in [
            "megs: 256",
            "cpu: model=corei7_haswell_4770, count=2,",
            "clock: sync=none",
            "path=\"/x/t.iso\"",
            "boot: cdrom",
            "display_library: term",
            "com1: enabled=1, mode=file, dev=\"/x/c\"",
            // The testbed knows Bochs by it (port 0xe9 reads 0xe9).
            "port_e9_hack: enabled=1",
        ] {
            assert!(rc.contains(want), "{want} missing from\n{rc}");
        }
        assert!(
            !rc.contains("rfb"),
            "a display library that listens on a port"
        );
    }

    #[test]
    fn grub_loads_the_testbed_through_multiboot2_at_once() {
        let cfg = grub_cfg(&[], &[]);
        assert!(cfg.contains("set timeout=0"));
        assert!(cfg.contains("multiboot2 /boot/testbed-x86.elf"));
        assert!(!cfg.contains("module2"));
    }

    #[test]
    fn modules_carry_their_name_and_address_on_their_command_line() {
        let cfg = grub_cfg(
            &[Module {
                file: PathBuf::from("/x/k.bin"),
                name: "kernel",
                addr: 0x1100_0000,
            }],
            &[0x3a0_0000],
        );
        let multiboot = cfg.find("multiboot2").unwrap();
        let module = cfg
            .find("    module2 /boot/kernel kernel 0x11000000 0x3a00000\n")
            .unwrap();
        assert!(multiboot < module && module < cfg.find("boot\n}").unwrap());
    }
}
