//! Interrupt injection: to a halted guest (`irq-inject`), queued before the first run
//! (`irq-queued`), and the interrupt rule in the backend (`irq-merge`: a vector injected
//! again while the backend still holds it merges; a distinct one is taken too).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use axvcpu::{AxArchVCpu, AxVCpu, AxVCpuExitReason, VCpuState};

use super::{start, step, Check};
use crate::contract::*;
use crate::Platform;

/// Exits the `Irq` program may take in all, `HC_DONE`s after the first included.
const MAX_EXITS: usize = 64;

/// Runs after the guest's first `HC_DONE`. Its interrupts are unmasked there, so a vector
/// the backend still holds (a duplicate delivered late, or one it delivers one entry at a
/// time) is taken and reported within these runs; each must end in `HC_DONE` or
/// `HC_REPORT`. The bound: a backend that holds back a duplicate for more than this many
/// further guest entries with the guest's interrupts unmasked is not caught here.
pub(crate) const RESUMES_AFTER_DONE: usize = 4;

/// When the hypervisor injects what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// `irq_vector` at the first halt after the guest unmasked.
    AtHalt,
    /// `irq_vector` twice before the first run.
    BeforeRun,
    /// `irq_vector` at the first `HC_READY`; `irq_vector` and `second_irq_vector` at the
    /// second, while the backend still holds the first (the guest keeps interrupts
    /// masked until after it).
    Merge,
}

fn inject<A: AxArchVCpu>(v: &AxVCpu<A>, vector: usize, when: &str) -> Check {
    v.inject_interrupt(vector)
        .map_err(|e| format!("inject_interrupt({vector:#x}) {when}: {e}"))
}

/// Runs the `Irq` program under `plan` until [`RESUMES_AFTER_DONE`] runs after its first
/// `HC_DONE`, then requires each vector injected to have been taken exactly once, and
/// nothing else.
fn run_irq_program<P: Platform>(p: &mut P, plan: Plan) -> Check {
    let info = p.info();
    let (first, second) = (info.irq_vector, info.second_irq_vector);
    if plan == Plan::Merge && first == second {
        return Err(format!(
            "the platform's two interrupt vectors are both {first:#x}"
        ));
    }
    let (_vm, mut v) = start(p, GuestProgram::Irq)?;
    // The vectors injected so far, each expected once.
    let mut injected: Vec<usize> = Vec::new();
    if plan == Plan::BeforeRun {
        inject(&v, first, "before the first run")?;
        inject(&v, first, "again before the first run")?;
        injected.push(first);
    }
    let mut readies = 0;
    let mut reports: Vec<u64> = Vec::new();
    let mut dones = 0;
    for _ in 0..MAX_EXITS {
        match step(&mut v)? {
            AxVCpuExitReason::Hypercall { nr: HC_READY, .. } => {
                readies += 1;
                match (readies, plan) {
                    (1, Plan::Merge) => {
                        inject(&v, first, "at the first HC_READY")?;
                        injected.push(first);
                    }
                    (2, Plan::Merge) => {
                        // The run that returned this exit handed `first` to the backend,
                        // and the guest has interrupts masked: the backend holds it now.
                        inject(&v, first, "at the second HC_READY, still held")?;
                        inject(&v, second, "at the second HC_READY")?;
                        injected.push(second);
                    }
                    (1 | 2, _) => {}
                    _ => return Err(format!("HC_READY {readies} times, the program makes 2")),
                }
            }
            AxVCpuExitReason::Hypercall {
                nr: HC_REPORT,
                args,
            } => {
                if readies < 2 {
                    return Err(format!(
                        "took vector {:#x} before its second HC_READY, with interrupts masked",
                        args[0]
                    ));
                }
                reports.push(args[0]);
            }
            AxVCpuExitReason::Hypercall { nr: HC_DONE, .. } => {
                if readies < 2 || reports.is_empty() {
                    return Err(format!(
                        "HC_DONE after {readies} HC_READY and {} interrupts",
                        reports.len()
                    ));
                }
                dones += 1;
                if dones > RESUMES_AFTER_DONE {
                    return taken_once_each(&injected, &reports);
                }
            }
            AxVCpuExitReason::Halt => {
                if readies < 2 {
                    return Err(format!("halted after {readies} HC_READY, before unmasking"));
                }
                if plan == Plan::AtHalt && injected.is_empty() {
                    // The guest waits for an interrupt: inject it now, as a device would.
                    v.handle()
                        .inject_interrupt(first)
                        .map_err(|e| format!("inject_interrupt to the halted guest: {e}"))?;
                    injected.push(first);
                    if v.state() != VCpuState::Ready {
                        return Err(format!(
                            "state {:?} after injecting into a halted vCPU, expected Ready",
                            v.state()
                        ));
                    }
                } else if let Some(&held) =
                    injected.iter().find(|&&i| !reports.contains(&(i as u64)))
                {
                    // One injected and not yet taken keeps the vCPU Ready (never Blocked).
                    if v.state() != VCpuState::Ready {
                        return Err(format!(
                            "halted with vector {held:#x} injected and not yet taken, state {:?}",
                            v.state()
                        ));
                    }
                }
            }
            other => return Err(format!("unexpected exit {other:?}")),
        }
    }
    Err(format!(
        "no {RESUMES_AFTER_DONE} runs after HC_DONE within {MAX_EXITS} exits (HC_READY {readies} times, HC_DONE {dones} times, vectors taken {})",
        hex_list(&reports)
    ))
}

/// `[0x40, 0x50]`, on one line (a report line must not break).
fn hex_list(values: &[u64]) -> String {
    let items: Vec<String> = values.iter().map(|v| format!("{v:#x}")).collect();
    format!("[{}]", items.join(", "))
}

/// Each of `injected` taken exactly once, and nothing else.
fn taken_once_each(injected: &[usize], reports: &[u64]) -> Check {
    for &vector in injected {
        match reports.iter().filter(|&&r| r == vector as u64).count() {
            1 => {}
            0 => {
                return Err(format!(
                    "vector {vector:#x} was never taken (taken: {})",
                    hex_list(reports)
                ))
            }
            n => {
                return Err(format!(
                    "vector {vector:#x} was taken {n} times, not once (taken: {})",
                    hex_list(reports)
                ))
            }
        }
    }
    match reports
        .iter()
        .find(|&&r| !injected.iter().any(|&i| i as u64 == r))
    {
        Some(stray) => Err(format!(
            "vector {stray:#x} was taken but never injected (taken: {})",
            hex_list(reports)
        )),
        None => Ok(()),
    }
}

pub(crate) fn irq_inject<P: Platform>(p: &mut P) -> Check {
    run_irq_program(p, Plan::AtHalt)
}

pub(crate) fn irq_queued<P: Platform>(p: &mut P) -> Check {
    run_irq_program(p, Plan::BeforeRun)
}

pub(crate) fn irq_merge<P: Platform>(p: &mut P) -> Check {
    run_irq_program(p, Plan::Merge)
}
