//! Reading a Linux boot's console: what `cargo xtask test` requires of it.

/// The most guest-clock time from the hypervisor's start to the guest's user-space marker
/// that `cargo xtask test` accepts (plain QEMU takes 2–4 s, the hypervisor 5–10 s on a
/// loaded 2-core machine).
pub const USERSPACE_BOUND_MS: u64 = 60_000;

/// What a passing boot showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSummary {
    /// Milliseconds (hypervisor clock) from its start to the user-space marker.
    pub userspace_ms: u64,
    /// The hypervisor's closing line.
    pub closing: String,
}

/// Checks the console of a Linux boot under our hypervisor: the init's user-space marker,
/// `cpus` CPUs (and, with more than one, CPU 1 offline and online again), the timer
/// interrupt count (`arch_timer` in `/proc/interrupts`) rising on every CPU between init's
/// two copies, the power-off marker, and the hypervisor's closing line saying the guest
/// powered off through PSCI with user space reached within [`USERSPACE_BOUND_MS`].
pub fn check_boot(output: &str, cpus: usize) -> Result<BootSummary, String> {
    check_boot_of(output, cpus, &AARCH64_CHECK)
}

/// What differs between architectures in [`check_boot_of`].
#[derive(Debug, Clone, Copy)]
pub struct BootCheck {
    /// The timer's name in `/proc/interrupts`.
    pub timer: &'static str,
    /// The start of the hypervisor's closing line after a clean power-off.
    pub powered_off: &'static str,
}

/// The AArch64 hypervisor's boots.
pub const AARCH64_CHECK: BootCheck = BootCheck {
    timer: "arch_timer",
    powered_off: "linux: guest powered off (PSCI SYSTEM_OFF)",
};

/// The RISC-V hypervisor's boots: the `riscv-timer` line, SBI SRST shutdown.
pub const RISCV64_CHECK: BootCheck = BootCheck {
    timer: "riscv-timer",
    powered_off: "linux: guest powered off (SBI SRST shutdown)",
};

/// The x86 hypervisor's boots: the `LOC` line (the emulated local APIC timers), and Linux
/// without ACPI ending `poweroff -f` with `hlt` and interrupts off.
pub const X86_64_CHECK: BootCheck = BootCheck {
    timer: "Local timer interrupts",
    powered_off: "linux: guest powered off (hlt with interrupts off)",
};

/// [`check_boot`] for any architecture's hypervisor.
pub fn check_boot_of(output: &str, cpus: usize, arch: &BootCheck) -> Result<BootSummary, String> {
    use crate::initramfs::{
        CPUS_PREFIX, HOTPLUG_PREFIX, IRQS_MARKER, POWEROFF_MARKER, USERSPACE_MARKER,
    };
    let lines: Vec<&str> = output.lines().collect();
    let has = |m: &str| lines.iter().any(|l| l.trim() == m);
    if !has(USERSPACE_MARKER) {
        return Err("the guest's init never reached user space".into());
    }
    let reported = lines
        .iter()
        .find_map(|l| l.strip_prefix(CPUS_PREFIX))
        .ok_or("no CPU count from the guest")?;
    if reported.trim() != cpus.to_string() {
        return Err(format!(
            "Linux reports {} CPUs, not {cpus}",
            reported.trim()
        ));
    }
    if cpus > 1 {
        let after = lines
            .iter()
            .find_map(|l| l.strip_prefix(HOTPLUG_PREFIX))
            .ok_or("CPU 1 did not go offline and online again")?;
        if after.trim() != cpus.to_string() {
            return Err(format!(
                "after CPU 1 went offline and online, {} CPUs, not {cpus}",
                after.trim()
            ));
        }
    }
    let timer_counts: Vec<Vec<u64>> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim() == IRQS_MARKER)
        .map(|(i, _)| {
            lines[i + 1..]
                .iter()
                .take_while(|l| l.trim() != IRQS_MARKER)
                .find(|l| l.contains(arch.timer))
                .map(|l| per_cpu_counts(l, cpus))
                .unwrap_or_default()
        })
        .collect();
    match timer_counts.as_slice() {
        [a, b] if a.len() == cpus && b.len() == cpus => {
            if let Some(cpu) = (0..cpus).find(|&c| b[c] <= a[c]) {
                return Err(format!(
                    "the timer interrupt count did not rise on CPU {cpu} ({} then {})",
                    a[cpu], b[cpu]
                ));
            }
        }
        _ => {
            return Err(format!(
                "no two {} lines of /proc/interrupts from the guest",
                arch.timer
            ))
        }
    }
    if !has(POWEROFF_MARKER) {
        return Err("the guest's init did not get to its power-off".into());
    }
    let closing = lines
        .iter()
        .find(|l| l.starts_with(arch.powered_off))
        .ok_or("the hypervisor did not see the guest power off")?;
    let userspace_ms = closing
        .split("user space reached at ")
        .nth(1)
        .and_then(|r| r.split(" ms").next())
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or("the hypervisor's closing line has no time to user space")?;
    if userspace_ms > USERSPACE_BOUND_MS {
        return Err(format!(
            "user space reached after {userspace_ms} ms, more than {USERSPACE_BOUND_MS} ms"
        ));
    }
    Ok(BootSummary {
        userspace_ms,
        closing: closing.to_string(),
    })
}

/// The first `cpus` counts of a `/proc/interrupts` line (` 11:  883  692 GIC-0 27 Level
/// arch_timer`).
fn per_cpu_counts(line: &str, cpus: usize) -> Vec<u64> {
    line.split_whitespace()
        .skip(1)
        .take(cpus)
        .map_while(|w| w.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
linux: backend axvcpu-aarch64, CPU Cortex-A72, 2 vCPUs, guest at EL1
AXVCPU-USERSPACE: init reached user space
AXVCPU-CPUS: 2
AXVCPU-HOTPLUG: CPU 1 off and on again, CPUs: 2
AXVCPU-IRQS:
           CPU0       CPU1
 11:        883        692 GIC-0  27 Level     arch_timer
IPI0:        16         21       Rescheduling interrupts
AXVCPU-IRQS:
           CPU0       CPU1
 11:        909        720 GIC-0  27 Level     arch_timer
IPI0:        16         23       Rescheduling interrupts
AXVCPU-POWEROFF
[    5.551496] reboot: Power down
linux: guest powered off (PSCI SYSTEM_OFF) after 9252 ms; user space reached at 8627 ms; exits: Halt 3
";

    #[test]
    fn a_complete_boot_passes() {
        let s = check_boot(GOOD, 2).unwrap();
        assert_eq!(s.userspace_ms, 8627);
    }

    fn refused(from: &str, to: &str, why: &str) {
        assert!(GOOD.contains(from), "{from}");
        let err = check_boot(&GOOD.replacen(from, to, 1), 2).unwrap_err();
        assert!(err.contains(why), "{from:?} -> {to:?}: {err}");
    }

    #[test]
    fn each_requirement_can_fail() {
        refused(
            "AXVCPU-USERSPACE: init reached user space\n",
            "",
            "user space",
        );
        refused("AXVCPU-CPUS: 2", "AXVCPU-CPUS: 1", "reports 1 CPUs");
        refused("909        720", "909        692", "did not rise on CPU 1");
        refused("again, CPUs: 2", "again, CPUs: 1", "1 CPUs, not 2");
        refused("AXVCPU-HOTPLUG", "AXVCPU-NOPLUG", "did not go offline");
        refused("883        692", "883", "no two arch_timer lines");
        refused("AXVCPU-POWEROFF\n", "", "power-off");
        refused(
            "(PSCI SYSTEM_OFF)",
            "(error)",
            "did not see the guest power off",
        );
        refused("reached at 8627 ms", "reached at 61000 ms", "more than");
        refused(
            "reached at 8627 ms",
            "reached never",
            "no time to user space",
        );
        assert!(check_boot(GOOD, 1).is_err());
    }

    #[test]
    fn a_riscv_boot_is_checked_by_its_timer_and_its_power_off() {
        let riscv = GOOD
            .replace(
                "GIC-0  27 Level     arch_timer",
                "RISC-V INTC   5 Edge      riscv-timer",
            )
            .replace("(PSCI SYSTEM_OFF)", "(SBI SRST shutdown)");
        assert_eq!(
            check_boot_of(&riscv, 2, &RISCV64_CHECK)
                .unwrap()
                .userspace_ms,
            8627
        );
        assert!(check_boot_of(GOOD, 2, &RISCV64_CHECK).is_err());
        assert!(check_boot_of(&riscv, 2, &AARCH64_CHECK).is_err());
    }

    #[test]
    fn an_x86_boot_is_checked_by_the_local_apic_timer_line_and_the_halt() {
        let x86 = "\
AXVCPU-USERSPACE: init reached user space
AXVCPU-CPUS: 2
AXVCPU-HOTPLUG: CPU 1 off and on again, CPUs: 2
AXVCPU-IRQS:
  0:         37          0    XT-PIC      timer
LOC:       2191        812   Local timer interrupts
AXVCPU-IRQS:
  0:         37          0    XT-PIC      timer
LOC:       2338        901   Local timer interrupts
AXVCPU-POWEROFF
linux: guest powered off (hlt with interrupts off) after 18333 ms; user space reached at 16454 ms; exits: Halt 50
";
        let ok = check_boot_of(x86, 2, &X86_64_CHECK).unwrap();
        assert_eq!(ok.userspace_ms, 16454);
        let stopped = x86.replace("901", "812");
        assert!(check_boot_of(&stopped, 2, &X86_64_CHECK)
            .unwrap_err()
            .contains("did not rise on CPU 1"));
        assert!(check_boot_of(x86, 2, &AARCH64_CHECK).is_err());
    }
}
