//! Interrupt injection: to a waiting guest, and queued before the vCPU runs.

use alloc::format;

use axvcpu::{AxVCpuExitReason, VCpuState};

use super::{start, step, Check};
use crate::contract::*;
use crate::Platform;

/// Exits the `Irq` program may take before it finishes.
const MAX_EXITS: usize = 64;

/// Runs the `Irq` program to `HC_DONE`, injecting the platform's vector before the first run
/// if `inject_before_run`, else when the guest says `HC_READY`. Requires exactly one
/// `HC_REPORT(vector)`, and the vCPU `Ready` (not `Blocked`) at every halt after `HC_READY`
/// while the vector is still pending.
fn run_irq_program<P: Platform>(p: &mut P, inject_before_run: bool) -> Check {
    let vector = p.info().irq_vector;
    let (_vm, mut v) = start(p, GuestProgram::Irq)?;
    let handle = v.handle();
    if inject_before_run {
        handle
            .inject_interrupt(vector)
            .map_err(|e| format!("inject_interrupt before run: {e}"))?;
    }
    let mut reports = 0;
    let mut ready = false;
    for _ in 0..MAX_EXITS {
        match step(&mut v)? {
            AxVCpuExitReason::Hypercall { nr: HC_READY, .. } if !ready => {
                ready = true;
                if !inject_before_run {
                    handle
                        .inject_interrupt(vector)
                        .map_err(|e| format!("inject_interrupt: {e}"))?;
                }
            }
            AxVCpuExitReason::Hypercall {
                nr: HC_REPORT,
                args,
            } => {
                if args[0] != vector as u64 {
                    return Err(format!(
                        "handler saw vector {:#x}, injected {vector:#x}",
                        args[0]
                    ));
                }
                reports += 1;
            }
            AxVCpuExitReason::Hypercall { nr: HC_DONE, .. } => {
                return match (ready, reports) {
                    (false, _) => Err("HC_DONE before HC_READY".into()),
                    (true, 1) => Ok(()),
                    (true, n) => Err(format!("the interrupt was taken {n} times, not once")),
                };
            }
            AxVCpuExitReason::Halt => {
                // Waiting for the interrupt: one injected and not yet taken keeps it Ready.
                let state = v.state();
                if ready && reports == 0 && state != VCpuState::Ready {
                    return Err(format!("halted with an interrupt pending, state {state:?}"));
                }
            }
            other => return Err(format!("unexpected exit {other:?}")),
        }
    }
    Err(format!(
        "no HC_DONE within {MAX_EXITS} exits ({reports} reports)"
    ))
}

pub(crate) fn irq_inject<P: Platform>(p: &mut P) -> Check {
    run_irq_program(p, false)
}

pub(crate) fn irq_queued<P: Platform>(p: &mut P) -> Check {
    run_irq_program(p, true)
}
