//! The scenarios, hypervisor side.

use core::fmt;

use crate::{Outcome, Platform, Summary};

/// Every scenario id, in the order [`run_all`] runs them.
pub const SCENARIOS: [&str; 19] = [
    "lifecycle",
    "io-out",
    "io-in",
    "mmio-write",
    "mmio-read",
    "hypercall",
    "halt",
    "system-down",
    "nested-page-fault",
    "cpu-up",
    "cpu-down",
    "irq-inject",
    "irq-queued",
    "preempt",
    "sysreg",
    "isolation",
    "smp",
    "regs",
    "garbage",
];

/// Runs every scenario on `platform`, printing one line each and the closing line.
pub fn run_all<P: Platform>(platform: &mut P, out: &mut dyn fmt::Write) -> Summary {
    run_selected(platform, out, |_| true)
}

/// Runs the scenarios whose id `select` accepts.
pub fn run_selected<P: Platform>(
    platform: &mut P,
    out: &mut dyn fmt::Write,
    select: impl Fn(&str) -> bool,
) -> Summary {
    let mut summary = Summary::default();
    for id in SCENARIOS.iter().copied().filter(|id| select(id)) {
        let outcome = run_one(platform, id);
        summary.record(out, id, &outcome);
    }
    let _ = writeln!(out, "{summary}");
    summary
}

fn run_one<P: Platform>(_platform: &mut P, _id: &str) -> Outcome {
    Outcome::Fail("scenario not written yet".into())
}
