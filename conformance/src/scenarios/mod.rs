//! The scenarios, hypervisor side: one function each, written against `AxVCpu` only, and
//! [`run_one`], the one place a [`Scenario`] is mapped to its function.

pub(crate) mod chaos;
mod cpus;
mod devices;
mod exception;
pub(crate) mod garbage;
mod irq;
mod lifecycle;
pub(crate) mod memory;
mod wild;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use axvcpu::{AxArchVCpu, AxVCpu, AxVCpuExitReason, VCpuState};

use crate::contract::{GuestProgram, HC_DONE, HC_REPORT};
use crate::{Outcome, Platform, Scenario, Summary, TestVm};

/// Runs every scenario on `platform`, printing one line each and the closing line.
pub fn run_all<P: Platform>(platform: &mut P, out: &mut dyn fmt::Write) -> Summary {
    run_selected(platform, out, |_| true)
}

/// Runs the scenarios `select` accepts, in the order of [`Scenario::ALL`], printing one
/// line each and the closing line.
pub fn run_selected<P: Platform>(
    platform: &mut P,
    out: &mut dyn fmt::Write,
    select: impl Fn(Scenario) -> bool,
) -> Summary {
    let mut summary = Summary::default();
    for scenario in Scenario::ALL.into_iter().filter(|s| select(*s)) {
        let outcome = run_one(platform, scenario);
        summary.record(out, scenario, &outcome);
    }
    // A report that cannot be written has no one to tell; the summary is returned anyway.
    let _ = writeln!(out, "{summary}");
    summary
}

/// What a scenario body returns: `Err(why)` is a failure.
pub(crate) type Check = Result<(), String>;

fn run_one<P: Platform>(p: &mut P, scenario: Scenario) -> Outcome {
    if let Some(why) = scenario.program().and_then(|prog| p.not_applicable(prog)) {
        return Outcome::NotApplicable(why);
    }
    if scenario.needs_second_cpu() && p.cpu_count() < 2 {
        return Outcome::NotApplicable("needs a second physical CPU to run or kick the first");
    }
    let result = match scenario {
        Scenario::Lifecycle => lifecycle::lifecycle(p),
        Scenario::IoOut => devices::io_out(p),
        Scenario::IoIn => devices::io_in(p),
        Scenario::MmioWrite => devices::mmio_write(p),
        Scenario::MmioRead => devices::mmio_read(p),
        Scenario::Hypercall => devices::hypercall(p),
        Scenario::Halt => devices::halt(p),
        Scenario::HaltTimer => devices::halt_timer(p),
        Scenario::SystemDown => devices::system_down(p),
        Scenario::SysReg => devices::sysreg(p),
        Scenario::Exception => exception::exception(p),
        Scenario::Regs => devices::regs(p),
        Scenario::NestedPageFault => memory::nested_page_fault(p),
        Scenario::Isolation => memory::isolation(p),
        Scenario::TwoVms => memory::two_vms(p),
        Scenario::CpuUp => cpus::cpu_up(p),
        Scenario::CpuDown => cpus::cpu_down(p),
        Scenario::Preempt => cpus::preempt(p),
        Scenario::Smp => cpus::smp(p),
        Scenario::IrqInject => irq::irq_inject(p),
        Scenario::IrqQueued => irq::irq_queued(p),
        Scenario::IrqMerge => irq::irq_merge(p),
        Scenario::Garbage => garbage::garbage(p),
        Scenario::Chaos => {
            return match chaos::chaos(p) {
                Ok(tally) => Outcome::PassWith(tally),
                Err(why) => Outcome::Fail(why),
            }
        }
    };
    match result {
        Ok(()) => Outcome::Pass,
        Err(why) => Outcome::Fail(why),
    }
}

/// The backend of platform `P`.
pub(crate) type ArchOf<P> = <<P as Platform>::Vm as TestVm>::Arch;
/// The vCPU type of platform `P`.
pub(crate) type VCpuOf<P> = AxVCpu<ArchOf<P>>;

/// A fresh VM running `program` with vCPU 0 set up and bound to this CPU.
pub(crate) fn start<P: Platform>(
    p: &mut P,
    program: GuestProgram,
) -> Result<(P::Vm, VCpuOf<P>), String> {
    let vm = p
        .create_vm(program)
        .map_err(|e| format!("create_vm({program:?}): {e}"))?;
    let mut vcpu = vm
        .new_vcpu(0, vm.entry())
        .map_err(|e| format!("new vCPU 0: {e}"))?;
    vcpu.bind().map_err(|e| format!("bind: {e}"))?;
    Ok((vm, vcpu))
}

/// Runs once; an `Err` from the backend is a failure.
pub(crate) fn step<A: AxArchVCpu>(vcpu: &mut AxVCpu<A>) -> Result<AxVCpuExitReason, String> {
    vcpu.run().map_err(|e| format!("run() failed: {e}"))
}

/// Runs until the next exit and requires it to be `HC_REPORT(expected)`.
pub(crate) fn expect_report<A: AxArchVCpu>(
    vcpu: &mut AxVCpu<A>,
    expected: u64,
    what: &str,
) -> Check {
    match step(vcpu)? {
        AxVCpuExitReason::Hypercall {
            nr: HC_REPORT,
            args,
        } if args[0] == expected => Ok(()),
        AxVCpuExitReason::Hypercall {
            nr: HC_REPORT,
            args,
        } => Err(format!(
            "{what}: guest saw {:#x}, expected {expected:#x}",
            args[0]
        )),
        other => Err(format!("{what}: expected HC_REPORT, got {other:?}")),
    }
}

/// Runs until the next exit and requires it to be `HC_DONE`.
pub(crate) fn expect_done<A: AxArchVCpu>(vcpu: &mut AxVCpu<A>) -> Check {
    match step(vcpu)? {
        AxVCpuExitReason::Hypercall { nr: HC_DONE, .. } => Ok(()),
        other => Err(format!("expected HC_DONE, got {other:?}")),
    }
}

/// Runs until the next exit and requires it to equal `expected`.
pub(crate) fn expect_exit<A: AxArchVCpu>(
    vcpu: &mut AxVCpu<A>,
    expected: AxVCpuExitReason,
) -> Check {
    let got = step(vcpu)?;
    if got == expected {
        Ok(())
    } else {
        Err(format!("expected {expected:?}, got {got:?}"))
    }
}

/// Runs until `HC_DONE`, collecting every `HC_REPORT` value; any other exit is a failure,
/// as is not finishing within `max_exits`.
pub(crate) fn reports_until_done<A: AxArchVCpu>(
    vcpu: &mut AxVCpu<A>,
    max_exits: usize,
) -> Result<Vec<u64>, String> {
    let mut reports = Vec::new();
    for _ in 0..max_exits {
        match step(vcpu)? {
            AxVCpuExitReason::Hypercall { nr: HC_DONE, .. } => return Ok(reports),
            AxVCpuExitReason::Hypercall {
                nr: HC_REPORT,
                args,
            } => reports.push(args[0]),
            other => return Err(format!("unexpected exit {other:?}")),
        }
    }
    Err(format!("no HC_DONE within {max_exits} exits"))
}

/// Requires the vCPU to be in `state`.
pub(crate) fn expect_state<A: AxArchVCpu>(vcpu: &AxVCpu<A>, state: VCpuState, when: &str) -> Check {
    if vcpu.state() == state {
        Ok(())
    } else {
        Err(format!(
            "{when}: state {:?}, expected {state:?}",
            vcpu.state()
        ))
    }
}

/// How a job waits: the platform's clock and what it does between checks
/// ([`Platform::idle`]).
#[derive(Clone, Copy)]
pub(crate) struct Waiter {
    pub(crate) clock: fn() -> u64,
    idle: fn(),
}

impl Waiter {
    pub(crate) fn of<P: Platform>(p: &P) -> Self {
        Self {
            clock: p.clock(),
            idle: p.idle(),
        }
    }

    /// Waits until `cond` holds (`true`) or `timeout_ns` passes (`false`).
    pub(crate) fn until(self, timeout_ns: u64, cond: impl Fn() -> bool) -> bool {
        let start = (self.clock)();
        while !cond() {
            if (self.clock)().saturating_sub(start) > timeout_ns {
                return false;
            }
            (self.idle)();
        }
        true
    }
}
