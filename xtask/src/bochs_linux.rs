//! Linux on the x86 hypervisor on Intel VMX, in Bochs: `cargo xtask boot x86_64 --vmx` and
//! `cargo xtask run linux-x86_64-vmx`.
//!
//! The files are those the SVM run gives QEMU's `-device loader` ([`crate::x86::linux_host`]
//! takes the kernel apart, builds the `linux` hypervisor and writes the parameter block):
//! Bochs has no such device, so each becomes a GRUB Multiboot2 module whose command line
//! names it and the address the loader device would have used (`params`, `kernel`,
//! `initrd`), and the hypervisor copies them there before it starts (`testbed/x86/src/
//! multiboot.rs`). The machine ([`LINUX`]): one CPU per vCPU (two, as the SVM run: vCPU 1
//! starts in real mode at Linux's SIPI address on CPU 1; Bochs runs both CPUs on one host
//! thread, and BIOS and GRUB take about twice as long with two), 1 GiB (the hypervisor and
//! its frames below 256 MiB, the guest's 256 MiB above, the parameter block past it, and
//! room for GRUB's copies).
//!
//! The run passes when the hypervisor's closing line says the guest powered off cleanly,
//! no line is `FATAL` or `linux: FAIL`, Bochs did not panic and the testbed ended it
//! through its shutdown port (Bochs's exit status says nothing). It prints the wall time
//! to the guest's user-space line and to the end, and the guest instructions to user
//! space: with `clock: sync=none` Bochs's TSC counts one tick per instruction, so the
//! hypervisor's "user space reached at N ms" times its "TSC K kHz" is the instruction
//! count from the guest's start (to a millisecond's worth of instructions).

use std::path::Path;
use std::time::Duration;

use crate::bochs::{self, Machine, Module};

/// The Linux run's machine (one CPU per vCPU: [`crate::linux::X86_CPUS`]). At 100 M instructions per
/// emulated second a guest timer tick (250 Hz) is 400,000 instructions, so the exits of the
/// emulated PIT and 8259 stay a small share, and the guest's clock reaches user space at
/// about 16 s (`cargo xtask test` allows 60); BIOS and GRUB wait in emulated time, so they
/// take longer than at the suite's 10 M. The timeout is about five times a run on a loaded
/// machine.
pub const LINUX: Machine = Machine {
    megs: 1024,
    cpus: crate::linux::X86_CPUS as u32,
    ips: 100_000_000,
    timeout: Duration::from_secs(600),
};

/// The module names, in the order [`crate::x86::linux_host`] lists its loader devices: the
/// parameter block, the kernel's segments, the initrd.
const NAMES: [&str; 3] = ["params", "kernel", "initrd"];

/// The hypervisor's closing line after a clean power-off.
const POWERED_OFF: &str = "linux: guest powered off (hlt with interrupts off)";

/// The Multiboot2 modules for QEMU arguments `args` (`-device loader,file=F,addr=A,...`).
fn modules(args: &[String]) -> Result<Vec<Module>, String> {
    let loaders: Vec<&str> = args
        .iter()
        .filter_map(|a| a.strip_prefix("loader,"))
        .collect();
    if loaders.len() < 2 || loaders.len() > NAMES.len() {
        return Err(format!(
            "expected 2 or 3 loader devices (parameter block, kernel, initrd), got {args:?}"
        ));
    }
    loaders
        .iter()
        .zip(NAMES)
        .map(|(d, name)| {
            let field = |key: &str| {
                d.split(',')
                    .find_map(|kv| kv.strip_prefix(key))
                    .ok_or_else(|| format!("loader device without {key}: {d}"))
            };
            let addr = field("addr=")?;
            let addr = u64::from_str_radix(addr.trim_start_matches("0x"), 16)
                .map_err(|_| format!("loader device address {addr}: not hex"))?;
            Ok(Module {
                file: field("file=")?.into(),
                name,
                addr,
            })
        })
        .collect()
}

/// A number in `output` right after `before` and up to `after`.
fn figure(output: &str, before: &str, after: &str) -> Option<u64> {
    let at = output.find(before)? + before.len();
    output[at..].split(after).next()?.trim().parse().ok()
}

/// Boots `kernel` (a bzImage or a vmlinux ELF) under the x86 hypervisor on Intel VMX in
/// Bochs; returns the console output. Fails when the hypervisor or the guest fails, or the
/// guest does not power off cleanly.
pub fn boot_linux(
    kernel: &Path,
    initrd: Option<&Path>,
    append: &str,
    cpus: usize,
) -> Result<String, String> {
    crate::setup::bochs()?;
    let (elf, args) = crate::x86::linux_host(kernel, initrd, append, cpus)?;
    let modules = modules(&args)?;
    let iso = bochs::iso(&elf, &modules, "testbed-x86-linux")?;
    let marker = crate::initramfs::USERSPACE_MARKER;
    let machine = Machine {
        cpus: cpus.max(1) as u32,
        ..LINUX
    };
    let run = bochs::boot(&iso, &machine, marker)?;
    let log = bochs::dir().join("bochs.log");
    if let Some(panic) = bochs::panic_line(&run.log) {
        return Err(format!("Bochs panicked: {panic} (see {})", log.display()));
    }
    if let Some(l) = run
        .output
        .lines()
        .find(|l| l.contains("FATAL") || l.starts_with("linux: FAIL"))
    {
        return Err(format!("hypervisor: {l}"));
    }
    if !run.output.lines().any(|l| l.starts_with(POWERED_OFF)) {
        return Err(format!(
            "the guest did not power off cleanly (no `{POWERED_OFF}` line; see {})",
            log.display()
        ));
    }
    if !bochs::shut_down(&run.log) {
        return Err(format!(
            "the testbed did not end Bochs through its shutdown port (see {})",
            log.display()
        ));
    }
    let tsc_khz = figure(&run.output, "; TSC ", " kHz");
    let userspace_ms = figure(&run.output, "user space reached at ", " ms");
    let instructions = match (tsc_khz, userspace_ms) {
        (Some(k), Some(ms)) => format!("{} million", k * ms / 1_000_000),
        _ => "?".into(),
    };
    let secs = |s: Option<f64>| s.map_or("never".into(), |s| format!("{s:.1} s"));
    eprintln!(
        "xtask: Linux on VMX in Bochs: the hypervisor's first line {}, user space {} after Bochs started ({instructions} guest and hypervisor instructions from the guest's start), whole run {:.1} s",
        secs(run.first_line_secs),
        secs(run.marker_secs),
        run.secs
    );
    Ok(run.output)
}

/// An ISO with the parameter block and the initrd but not the kernel: the hypervisor must
/// refuse it with the module's name before any guest instruction runs.
fn missing_kernel_refused(kernel: &Path, initrd: &Path) -> Result<(), String> {
    let (elf, args) = crate::x86::linux_host(kernel, Some(initrd), crate::linux::APPEND_X86, 1)?;
    let modules: Vec<Module> = modules(&args)?
        .into_iter()
        .filter(|m| m.name != "kernel")
        .collect();
    let iso = bochs::iso(&elf, &modules, "testbed-x86-linux-no-kernel")?;
    // One CPU: the refusal comes before any vCPU, and BIOS and GRUB are faster with one.
    let one = Machine { cpus: 1, ..LINUX };
    let run = bochs::boot(&iso, &one, "")?;
    let want = "testbed: FATAL multiboot: module kernel missing";
    if !run.output.lines().any(|l| l == want) || run.output.contains("linux: backend") {
        return Err(format!(
            "an ISO without the kernel module: expected `{want}` and no guest, got:\n{}",
            run.output
        ));
    }
    eprintln!(
        "xtask: an ISO without the kernel refused by the hypervisor ({:.1} s)",
        run.secs
    );
    Ok(())
}

/// `cargo xtask run linux-x86_64-vmx`: an ISO without the kernel refused with a clear line,
/// then the Debian amd64 images on [`crate::linux::X86_CPUS`] (2) vCPUs of the x86
/// hypervisor on VMX in Bochs, checked as the SVM run is ([`crate::linux::check_boot_of`]
/// with x86's checks: user space, 2 CPUs, CPU 1 offline and online again, the local APIC
/// timer's count rising on both, the power-off).
pub fn test() -> Result<(), String> {
    let images = crate::linux::X86_64.images()?;
    missing_kernel_refused(&images.kernel, &images.initrd)?;
    let cpus = crate::linux::X86_CPUS;
    let output = boot_linux(
        &images.kernel,
        Some(&images.initrd),
        crate::linux::APPEND_X86,
        cpus,
    )?;
    let s = crate::linux::check_boot_of(&output, cpus, &crate::linux::X86_64_CHECK)?;
    eprintln!(
        "xtask: Linux on the x86 hypervisor (VMX, Bochs): user space at {} ms of guest time, {cpus} CPUs, CPU 1 off and on again, timer ticking on each, clean power-off",
        s.userspace_ms
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loader_devices_become_named_modules_at_their_addresses() {
        let args: Vec<String> = [
            "-cpu",
            "max",
            "-device",
            "loader,file=/t/p.bin,addr=0x20000000,force-raw=on",
            "-device",
            "loader,file=/t/k.bin,addr=0x11000000,force-raw=on",
            "-device",
            "loader,file=/t/i.cpio,addr=0x1c000000,force-raw=on",
        ]
        .map(String::from)
        .to_vec();
        let m = modules(&args).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(
            (m[0].name, m[0].addr, m[0].file.as_path()),
            ("params", 0x2000_0000, Path::new("/t/p.bin"))
        );
        assert_eq!((m[1].name, m[1].addr), ("kernel", 0x1100_0000));
        assert_eq!((m[2].name, m[2].addr), ("initrd", 0x1c00_0000));
        assert_eq!(modules(&args[..6]).unwrap().len(), 2, "no initrd");
        assert!(modules(&args[..4]).is_err(), "no kernel");
        let bad = vec!["loader,file=/t/p.bin,addr=zz".to_string(); 2];
        assert!(modules(&bad).unwrap_err().contains("not hex"));
    }

    #[test]
    fn figures_are_read_from_the_hypervisors_lines() {
        let out = "linux: backend x; TSC 10000 kHz; set up in 3 ms\n\
                   linux: guest powered off (hlt with interrupts off) after 9 ms; user space reached at 4200 ms; halts";
        assert_eq!(figure(out, "; TSC ", " kHz"), Some(10_000));
        assert_eq!(figure(out, "user space reached at ", " ms"), Some(4200));
        assert_eq!(figure(out, "nothing ", " ms"), None);
    }
}
