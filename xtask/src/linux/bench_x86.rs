//! `cargo xtask bench linux-x86_64`: the time to user space under the x86 hypervisor (AMD
//! SVM in QEMU TCG) and in plain QEMU TCG booting the same vmlinux through its PVH note,
//! the same initramfs and command line, with the same number of CPUs ([`X86_CPUS`]).

use super::bench::time_to_marker;
use super::{check_boot_of, APPEND_X86, X86_64, X86_64_CHECK, X86_CPUS};

/// Prints the seconds from QEMU's start to the user-space marker both ways, their ratio,
/// and the hypervisor's exits by kind.
pub fn bench_x86_64() -> Result<(), String> {
    let images = X86_64.images()?;
    let (elf, host_args) =
        crate::x86::linux_host(&images.kernel, Some(&images.initrd), APPEND_X86, X86_CPUS)?;
    let tb = &crate::x86::LINUX_HOST;
    let mut ours: Vec<String> = tb.machine.iter().map(|s| s.to_string()).collect();
    ours.extend(host_args);
    ours.extend([
        "-no-reboot".into(),
        "-kernel".into(),
        elf.display().to_string(),
    ]);
    let (t_ours, out) = time_to_marker(tb.qemu, &ours)?;
    let summary = check_boot_of(&out, X86_CPUS, &X86_64_CHECK)?;
    let vmlinux = crate::testbed::target_dir().join("linux-x86_64-vmlinux");
    crate::bzimage::write_vmlinux(&images.kernel, &vmlinux)?;
    let plain: Vec<String> = [
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-smp",
        "2",
        "-m",
        "256M",
        "-nodefaults",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-kernel",
    ]
    .into_iter()
    .map(String::from)
    .chain([
        vmlinux.display().to_string(),
        "-initrd".into(),
        images.initrd.display().to_string(),
        "-append".into(),
        APPEND_X86.into(),
    ])
    .collect();
    let (t_plain, _) = time_to_marker(tb.qemu, &plain)?;
    let (Some(t_ours), Some(t_plain)) = (t_ours, t_plain) else {
        return Err("a boot did not reach the user-space marker".into());
    };
    println!(
        "linux-x86_64 (QEMU TCG, {X86_CPUS} vCPUs): user space after {t_ours:.2} s under axvcpu-svm, {t_plain:.2} s in plain QEMU ({:.2}x)",
        t_ours / t_plain
    );
    let exits = summary.closing.split("exits:").nth(1).unwrap_or("").trim();
    println!("linux-x86_64 exits by kind during the boot: {exits}");
    Ok(())
}
