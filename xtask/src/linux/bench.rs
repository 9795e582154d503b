//! `cargo xtask bench linux-aarch64`: the time to user space under our hypervisor and in
//! plain QEMU, the same kernel, initramfs, command line and device tree.

use super::{check_boot, AARCH64, APPEND};

/// Runs `program args` (QEMU) to its end, at most `TIMEOUT`; returns the seconds from its
/// start to the line holding the user-space marker (if any) and its output.
pub(super) fn time_to_marker(
    program: &str,
    args: &[String],
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
