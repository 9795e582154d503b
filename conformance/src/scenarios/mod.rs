//! The scenarios, hypervisor side: one function each, written against `AxVCpu` only.

mod cpus;
mod devices;
pub(crate) mod garbage;
mod irq;
mod lifecycle;
mod memory;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use axvcpu::{AxArchVCpu, AxVCpu, AxVCpuExitReason, VCpuState};

use crate::contract::{GuestProgram, HC_DONE, HC_REPORT};
use crate::{Outcome, Platform, Summary, TestVm};

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

/// Runs the scenarios whose id `select` accepts, printing one line each and the closing
/// line.
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

/// What a scenario body returns: `Err(why)` is a failure.
pub(crate) type Check = Result<(), String>;

fn run_one<P: Platform>(p: &mut P, id: &str) -> Outcome {
    let program = match id {
        "lifecycle" => GuestProgram::Done,
        "io-out" => GuestProgram::IoOut,
        "io-in" => GuestProgram::IoIn,
        "mmio-write" => GuestProgram::MmioWrite,
        "mmio-read" => GuestProgram::MmioRead,
        "hypercall" => GuestProgram::Hypercall,
        "halt" => GuestProgram::Halt,
        "system-down" => GuestProgram::SystemDown,
        "nested-page-fault" => GuestProgram::NestedPageFault,
        "cpu-up" => GuestProgram::CpuUp,
        "cpu-down" => GuestProgram::CpuDown,
        "irq-inject" | "irq-queued" => GuestProgram::Irq,
        "preempt" => GuestProgram::Spin,
        "sysreg" => GuestProgram::SysReg,
        "isolation" => GuestProgram::Isolation,
        "smp" => GuestProgram::Smp,
        "regs" => GuestProgram::Regs,
        // `garbage` runs random bytes, no contract program.
        _ => GuestProgram::Done,
    };
    if let Some(why) = p.not_applicable(program) {
        return Outcome::NotApplicable(why);
    }
    if let Some(why) = needs_second_cpu(p, id) {
        return Outcome::NotApplicable(why);
    }
    let result = match id {
        "lifecycle" => lifecycle::lifecycle(p),
        "io-out" => devices::io_out(p),
        "io-in" => devices::io_in(p),
        "mmio-write" => devices::mmio_write(p),
        "mmio-read" => devices::mmio_read(p),
        "hypercall" => devices::hypercall(p),
        "halt" => devices::halt(p),
        "system-down" => devices::system_down(p),
        "sysreg" => devices::sysreg(p),
        "regs" => devices::regs(p),
        "nested-page-fault" => memory::nested_page_fault(p),
        "isolation" => memory::isolation(p),
        "cpu-up" => cpus::cpu_up(p),
        "cpu-down" => cpus::cpu_down(p),
        "preempt" => cpus::preempt(p),
        "smp" => cpus::smp(p),
        "irq-inject" => irq::irq_inject(p),
        "irq-queued" => irq::irq_queued(p),
        "garbage" => garbage::garbage(p),
        _ => Err(format!("unknown scenario {id}")),
    };
    match result {
        Ok(()) => Outcome::Pass,
        Err(why) => Outcome::Fail(why),
    }
}

fn needs_second_cpu<P: Platform>(p: &P, id: &str) -> Option<&'static str> {
    let multi = matches!(id, "smp" | "preempt" | "garbage");
    (multi && p.cpu_count() < 2).then_some("needs a second physical CPU to run or kick the first")
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

/// Waits (spinning on `clock`) until `cond` holds or `timeout_ns` passes.
pub(crate) fn wait_until(clock: fn() -> u64, timeout_ns: u64, cond: impl Fn() -> bool) -> bool {
    let start = clock();
    while !cond() {
        if clock().saturating_sub(start) > timeout_ns {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}
