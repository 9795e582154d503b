//! What every Linux-booting test hypervisor's QEMU run shares: the guest's files loaded
//! into the machine's RAM by QEMU's `loader` devices where the hypervisor reads them, the
//! parameter block that tells it their sizes, the vCPU count and the command line, and the
//! judgement of how the run ended.

use std::path::{Path, PathBuf};

use crate::initramfs::{SHELL_FLAG, SHELL_MARKER};
use crate::testbed::{self, Input, Testbed};

/// The line only the guest's shell can print in [`TYPED_SESSION`] (the console's echo of
/// the typed command shows `$((6*7))`, not its value).
pub const TYPED_ANSWER: &str = "AXVCPU-TYPED-42";

/// What xtask types on the guest's console when `/init` starts its shell: a command whose
/// answer proves the shell read it, then `exit` (`/init` then powers off). Console input
/// end to end: QEMU's standard input, the host UART and its interrupt, the hypervisor's
/// emulated UART and interrupt controller, the guest's driver, tty and shell.
pub const TYPED_SESSION: [(&str, &str); 2] = [
    (SHELL_MARKER, "echo AXVCPU-TYPED-$((6*7))\n"),
    (TYPED_ANSWER, "exit\n"),
];

/// `append` with the word that makes `/init` start its shell.
pub fn with_shell(append: &str) -> String {
    format!("{append} {SHELL_FLAG}")
}

/// Whether the guest's shell answered what [`TYPED_SESSION`] typed.
pub fn check_typed(output: &str) -> Result<(), String> {
    if !output.lines().any(|l| l.contains(SHELL_MARKER)) {
        return Err("the guest's /init did not start its shell".into());
    }
    if !output.lines().any(|l| l.trim_end().ends_with(TYPED_ANSWER)) {
        return Err(format!(
            "the guest's shell did not answer the typed command (no `{TYPED_ANSWER}` line): console input lost"
        ));
    }
    Ok(())
}

/// Where one hypervisor reads the guest's files (host-physical addresses of its
/// `linux::loader`) and how many vCPUs it runs.
pub struct HostLayout {
    /// The testbed build that boots Linux (feature `linux`).
    pub testbed: &'static Testbed,
    /// Its ELF's name under `target/`.
    pub elf_name: &'static str,
    /// The architecture, for messages ("AArch64", "RISC-V").
    pub arch: &'static str,
    /// The kernel's address.
    pub kernel: u64,
    /// The initrd's address (the kernel's room ends here).
    pub initrd: u64,
    /// The end of the initrd's room.
    pub staging_end: u64,
    /// The parameter block's address.
    pub params: u64,
    /// The most vCPUs (one per host CPU of the testbed).
    pub max_vcpus: usize,
}

impl HostLayout {
    /// Checks the files fit, builds the hypervisor and writes the parameter block; returns
    /// the image and the `-device loader,...` arguments that put the files in place.
    pub fn prepare(
        &self,
        kernel: &Path,
        initrd: Option<&Path>,
        append: &str,
        cpus: usize,
        print_dtb: bool,
    ) -> Result<(PathBuf, Vec<String>), String> {
        if cpus == 0 || cpus > self.max_vcpus {
            return Err(format!(
                "--cpus {cpus}: the {} hypervisor runs 1 to {} vCPUs (one per host CPU)",
                self.arch, self.max_vcpus
            ));
        }
        let size = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.len())
                .map_err(|e| format!("{}: {e}", p.display()))
        };
        let kernel_size = size(kernel)?;
        let initrd_size = initrd.map(size).transpose()?.unwrap_or(0);
        if kernel_size > self.initrd - self.kernel {
            return Err(format!(
                "{}: larger than the kernel's room ({} MiB)",
                kernel.display(),
                (self.initrd - self.kernel) >> 20
            ));
        }
        if initrd_size > self.staging_end - self.initrd {
            return Err("the initrd is larger than its room in the guest's RAM".into());
        }
        testbed::ensure_tools(self.testbed)?;
        let elf = testbed::build(self.testbed, &["linux"], self.elf_name)?;
        let params = testbed::target_dir().join(format!("{}-params.bin", self.elf_name));
        std::fs::write(
            &params,
            super::params_block(kernel_size, initrd_size, cpus, print_dtb, append),
        )
        .map_err(|e| format!("writing {}: {e}", params.display()))?;
        let loader = |file: &Path, addr: u64| {
            format!("loader,file={},addr={addr:#x},force-raw=on", file.display())
        };
        let mut devices = vec![loader(&params, self.params), loader(kernel, self.kernel)];
        if let Some(initrd) = initrd {
            devices.push(loader(initrd, self.initrd));
        }
        let args = devices
            .into_iter()
            .flat_map(|d| ["-device".to_string(), d])
            .collect();
        Ok((elf, args))
    }

    /// Boots `elf` with `args` and `input` on the guest's console; returns the console
    /// output. Fails when the hypervisor or the guest fails, or the guest does not power
    /// off cleanly (QEMU status 0).
    pub fn boot(&self, elf: &Path, args: &[String], input: Input) -> Result<String, String> {
        boot_checked(self.testbed, elf, args, 0, input)
    }
}

/// Boots a Linux host `elf` of `tb` with `args` and `input` on the guest's console;
/// returns the console output. Fails when the hypervisor reports a failure or a fatal
/// trap, or QEMU ends with another status than `powered_off` (the testbed's clean
/// power-off).
pub fn boot_checked(
    tb: &Testbed,
    elf: &Path,
    args: &[String],
    powered_off: i32,
    input: Input,
) -> Result<String, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (output, status) = testbed::boot_with_input(tb, elf, &args, input)?;
    if let Some(l) = output
        .lines()
        .find(|l| l.contains("FATAL") || l.starts_with("linux: FAIL"))
    {
        return Err(format!("hypervisor: {l}"));
    }
    if status != Some(powered_off) {
        return Err(format!(
            "the guest did not power off cleanly (QEMU status {status:?})"
        ));
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_shells_answer_counts_as_typed_input_read() {
        let echoed_only = format!("{SHELL_MARKER}\necho AXVCPU-TYPED-$((6*7))\n");
        assert!(
            check_typed(&echoed_only).is_err(),
            "the echo is not an answer"
        );
        assert!(
            check_typed("AXVCPU-TYPED-42\n").is_err(),
            "no shell started"
        );
        let answered = format!("{echoed_only}~ # echo AXVCPU-TYPED-$((6*7))\n{TYPED_ANSWER}\n");
        assert_eq!(check_typed(&answered), Ok(()));
        assert!(with_shell("quiet").ends_with(" axvcpu.shell"));
    }
}
