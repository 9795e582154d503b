//! `cargo xtask bench linux-aarch64` and `linux-riscv64`: the time to user space under our
//! hypervisor and in plain QEMU, the same kernel, initramfs, command line and device tree.

use super::{check_boot, AARCH64, APPEND};

/// Runs `program args` (QEMU) to its end, at most `TIMEOUT`; returns the seconds from its
/// start to the line holding the user-space marker (if any) and its output.
pub(super) fn time_to_marker(
    program: &str,
    args: &[String],
) -> Result<(Option<f64>, String), String> {
    run_to_marker(program, args, false)
}

/// [`time_to_marker`], ending QEMU at the marker when `stop_at_marker` (a plain boot whose
/// firmware cannot power off with the hypervisor's device tree).
fn run_to_marker(
    program: &str,
    args: &[String],
    stop_at_marker: bool,
) -> Result<(Option<f64>, String), String> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    const TIMEOUT: Duration = Duration::from_secs(120);
    eprintln!("$ {program} {}", args.join(" "));
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: cannot start: {e}"))?;
    let stdout = child.stdout.take().ok_or("no QEMU stdout")?;
    let child = Arc::new(Mutex::new(child));
    let finished = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (child, finished) = (child.clone(), finished.clone());
        std::thread::spawn(move || {
            while !finished.load(Ordering::Acquire) {
                if started.elapsed() > TIMEOUT {
                    let _ = child.lock().map(|mut c| c.kill());
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let (mut marker, mut output) = (None, String::new());
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("reading QEMU output: {e}"))?;
        if marker.is_none() && line.contains(crate::initramfs::USERSPACE_MARKER) {
            marker = Some(started.elapsed().as_secs_f64());
            if stop_at_marker {
                let _ = child.lock().map(|mut c| c.kill());
            }
        }
        output.push_str(line.trim_end_matches('\r'));
        output.push('\n');
    }
    let _ = child.lock().map(|mut c| c.wait());
    finished.store(true, Ordering::Release);
    let _ = watchdog.join();
    Ok((marker, output))
}

/// `cargo xtask bench`'s Linux figures: wall-clock seconds from QEMU's start to the
/// user-space marker, under our hypervisor and in plain QEMU TCG (the same kernel,
/// initramfs, command line and device tree), and the exits by kind.
pub fn bench_aarch64() -> Result<(), String> {
    let images = AARCH64.images()?;
    let (elf, host_args) =
        crate::aarch64::linux_host(&images.kernel, Some(&images.initrd), APPEND, 2, true)?;
    let tb = &crate::aarch64::LINUX_HOST;
    let mut ours: Vec<String> = tb.machine.iter().map(|s| s.to_string()).collect();
    ours.extend(host_args);
    ours.extend(tb.boot.iter().map(|s| s.to_string()));
    ours.extend([
        "-no-reboot".into(),
        "-kernel".into(),
        elf.display().to_string(),
    ]);
    let (t_ours, out) = time_to_marker(tb.qemu, &ours)?;
    let summary = check_boot(&out, 2)?;
    // The same device tree for plain QEMU (it fills in the memory node and the initrd's
    // place itself).
    let dtb = out
        .lines()
        .find_map(|l| l.strip_prefix("linux: device tree "))
        .map(from_hex)
        .ok_or("the hypervisor did not print the device tree")??;
    let dtb_path = crate::testbed::target_dir().join("linux-aarch64.dtb");
    std::fs::write(&dtb_path, dtb).map_err(|e| format!("writing {}: {e}", dtb_path.display()))?;
    let plain: Vec<String> = [
        "-machine",
        "virt,gic-version=2",
        "-cpu",
        "cortex-a72",
        "-smp",
        "2",
        "-m",
        "256M",
        "-nographic",
        "-no-reboot",
        "-kernel",
    ]
    .into_iter()
    .map(String::from)
    .chain([
        images.kernel.display().to_string(),
        "-initrd".into(),
        images.initrd.display().to_string(),
        "-append".into(),
        APPEND.into(),
        "-dtb".into(),
        dtb_path.display().to_string(),
    ])
    .collect();
    let (t_plain, _) = time_to_marker(tb.qemu, &plain)?;
    let (Some(t_ours), Some(t_plain)) = (t_ours, t_plain) else {
        return Err("a boot did not reach the user-space marker".into());
    };
    println!(
        "linux-aarch64 (QEMU TCG, 2 vCPUs): user space after {t_ours:.2} s under axvcpu-aarch64, {t_plain:.2} s in plain QEMU ({:.2}x)",
        t_ours / t_plain
    );
    let exits = summary.closing.split("exits:").nth(1).unwrap_or("").trim();
    println!("linux-aarch64 exits by kind during the boot: {exits}");
    Ok(())
}

/// `cargo xtask bench linux-riscv64`: wall-clock seconds from QEMU's start to the
/// user-space marker under the RISC-V hypervisor (2 vCPUs) and in plain QEMU TCG booting
/// the same kernel, initramfs, command line and device tree (through OpenSBI, 2 harts),
/// and the exits by kind; with Sstc, then without (host and plain CPU alike).
pub fn bench_riscv64() -> Result<(), String> {
    for sstc in [true, false] {
        bench_riscv64_with(sstc)?;
    }
    Ok(())
}

fn bench_riscv64_with(sstc: bool) -> Result<(), String> {
    let images = super::RISCV64.images()?;
    let (elf, host_args) = crate::riscv::linux_host(
        &images.kernel,
        Some(&images.initrd),
        super::APPEND_RISCV64,
        2,
        sstc,
        true,
    )?;
    let tb = &crate::riscv::LINUX_HOST;
    let mut ours: Vec<String> = tb.machine.iter().map(|s| s.to_string()).collect();
    ours.extend(host_args);
    ours.extend(tb.boot.iter().map(|s| s.to_string()));
    ours.extend([
        "-no-reboot".into(),
        "-kernel".into(),
        elf.display().to_string(),
    ]);
    let (t_ours, out) = time_to_marker(tb.qemu, &ours)?;
    let summary = super::check::check_boot_of(&out, 2, &super::check::RISCV64_CHECK)?;
    let dtb = out
        .lines()
        .find_map(|l| l.strip_prefix("linux: device tree "))
        .map(from_hex)
        .ok_or("the hypervisor did not print the device tree")??;
    let dtb_path = crate::testbed::target_dir().join("linux-riscv64.dtb");
    std::fs::write(&dtb_path, dtb).map_err(|e| format!("writing {}: {e}", dtb_path.display()))?;
    let plain: Vec<String> = [
        "-machine",
        "virt",
        "-cpu",
        if sstc { "rv64" } else { "rv64,sstc=false" },
        "-smp",
        "2",
        "-m",
        "256M",
        "-bios",
        "default",
        "-nographic",
        "-no-reboot",
        "-kernel",
    ]
    .into_iter()
    .map(String::from)
    .chain([
        images.kernel.display().to_string(),
        "-initrd".into(),
        images.initrd.display().to_string(),
        "-append".into(),
        super::APPEND_RISCV64.into(),
        "-dtb".into(),
        dtb_path.display().to_string(),
    ])
    .collect();
    // OpenSBI finds no power-off device in this tree (Linux powers off through SBI SRST,
    // which the hypervisor serves): plain QEMU is ended at the marker.
    let (t_plain, plain_out) = run_to_marker(tb.qemu, &plain, true)?;
    let (Some(t_ours), Some(t_plain)) = (t_ours, t_plain) else {
        let tail: Vec<&str> = plain_out.lines().rev().take(5).collect();
        return Err(format!(
            "a boot did not reach the user-space marker (plain QEMU's last lines: {tail:?})"
        ));
    };
    println!(
        "linux-riscv64 (QEMU TCG, 2 vCPUs, Sstc {sstc}): user space after {t_ours:.2} s under axvcpu-riscv, {t_plain:.2} s in plain QEMU ({:.2}x)",
        t_ours / t_plain
    );
    let exits = summary.closing.split("exits:").nth(1).unwrap_or("").trim();
    println!("linux-riscv64 (Sstc {sstc}) exits by kind during the boot: {exits}");
    Ok(())
}

/// Bytes from their hex digits.
fn from_hex(hex: &str) -> Result<Vec<u8>, String> {
    let hex = hex.trim();
    if !hex.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| format!("not hex at {i}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_reads_back() {
        assert_eq!(
            from_hex("d00dfeed00\n").unwrap(),
            [0xd0, 0x0d, 0xfe, 0xed, 0]
        );
        assert!(from_hex("abc").is_err());
        assert!(from_hex("zz").is_err());
    }
}
