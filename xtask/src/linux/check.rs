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
    check_boot_with(output, cpus, "arch_timer", "(PSCI SYSTEM_OFF)")
}

/// [`check_boot`] for any architecture: `timer` names the timer's line of
/// `/proc/interrupts` (`arch_timer`, x86's `timer`), `how` how the closing line says the
/// guest powered off (`(PSCI SYSTEM_OFF)`, `(hlt with interrupts off)`).
pub fn check_boot_with(
    output: &str,
    cpus: usize,
    timer: &str,
    how: &str,
) -> Result<BootSummary, String> {
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
                .find(|l| l.split_whitespace().last() == Some(timer))
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
                "no two {timer} lines of /proc/interrupts from the guest"
            ))
        }
    }
    if !has(POWEROFF_MARKER) {
        return Err("the guest's init did not get to its power-off".into());
    }
    let closing = lines
        .iter()
        .find(|l| {
            l.strip_prefix("linux: guest powered off ")
                .is_some_and(|r| r.starts_with(how))
        })
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
        refused(
            "Level     arch_timer\nIPI0",
            "Level     arch_timer_x\nIPI0",
            "no two",
        );
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
    fn x86_names_its_timer_and_power_off() {
        let x86 = "\
AXVCPU-USERSPACE: init reached user space
AXVCPU-CPUS: 1
AXVCPU-IRQS:
  0:       2191    XT-PIC      timer
AXVCPU-IRQS:
  0:       2338    XT-PIC      timer
AXVCPU-POWEROFF
linux: guest powered off (hlt with interrupts off) after 18333 ms; user space reached at 16454 ms; exits: Halt 50
";
        let how = "(hlt with interrupts off)";
        assert_eq!(
            check_boot_with(x86, 1, "timer", how).unwrap().userspace_ms,
            16454
        );
        let stopped = x86.replace("2338", "2191");
        assert!(check_boot_with(&stopped, 1, "timer", how)
            .unwrap_err()
            .contains("did not rise"));
        assert!(check_boot(x86, 1).is_err());
    }
}
