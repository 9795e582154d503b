//! The testbed's own checks beyond the conformance contract: the per-CPU switch, the
//! guest timer, external-interrupt injection and its acknowledgement, SBI answers.
//! Each prints `SELFTEST <name>: ok` or `SELFTEST <name>: FAIL <why>`.

use alloc::format;
use alloc::string::String;

use axvcpu::{AxPerCpu, AxVCpu, AxVCpuExitReason};
use axvcpu_conformance::contract::{HC_DONE, HC_READY, HC_REPORT};
use axvcpu_conformance::TestVm;
use axvcpu_riscv::{GStageMode, RiscvPerCpu, RiscvSetupConfig};

use crate::boot::PERCPU;
use crate::guests::{selftest_code, SelfTest};
use crate::hal::{self, Hal};
use crate::platform::{RiscvTestVm, VCpu};
use crate::println;

type Check = Result<(), String>;
/// A named self-test.
type Test = (&'static str, fn(GStageMode) -> Check);

fn vcpu(t: SelfTest, gstage: GStageMode) -> Result<(RiscvTestVm, AxVCpu<VCpu>), String> {
    let setup = RiscvSetupConfig {
        gstage,
        ..RiscvSetupConfig::default()
    };
    let vm = RiscvTestVm::new(selftest_code(t), setup).map_err(|e| format!("vm: {e}"))?;
    let mut v = vm
        .new_vcpu(0, vm.entry())
        .map_err(|e| format!("vcpu: {e}"))?;
    v.bind().map_err(|e| format!("bind: {e}"))?;
    Ok((vm, v))
}

fn percpu(_: GStageMode) -> Check {
    let mut slot = PERCPU[hal::hart_id()].lock();
    let p = slot.as_mut().ok_or("no per-CPU state")?;
    p.hardware_disable().map_err(|e| format!("disable: {e}"))?;
    if p.is_enabled() || p.hardware_disable().is_ok() {
        return Err("still enabled after hardware_disable".into());
    }
    {
        // A second state on this hart: enabled, then dropped while enabled (must not panic).
        let mut t =
            AxPerCpu::<RiscvPerCpu<Hal>>::new(hal::hart_id()).map_err(|e| format!("{e}"))?;
        t.hardware_enable().map_err(|e| format!("enable: {e}"))?;
        if !t.is_enabled() || t.hardware_enable().is_ok() {
            return Err("enable twice accepted, or not enabled".into());
        }
    }
    p.hardware_enable().map_err(|e| format!("re-enable: {e}"))?;
    if !p.is_enabled() {
        return Err("not enabled after hardware_enable".into());
    }
    let levels = p.max_guest_page_table_levels();
    let want = if axvcpu_riscv::supports(GStageMode::Sv48x4) {
        4
    } else {
        3
    };
    if levels != want {
        return Err(format!(
            "max_guest_page_table_levels {levels}, expected {want}"
        ));
    }
    Ok(())
}

fn timer(gstage: GStageMode) -> Check {
    let (_vm, mut v) = vcpu(SelfTest::Timer, gstage)?;
    let t0 = hal::now_ns();
    let mut seen = None;
    while hal::now_ns() - t0 < 2_000_000_000 {
        match v.run().map_err(|e| format!("run: {e}"))? {
            AxVCpuExitReason::Halt | AxVCpuExitReason::Nothing => {}
            AxVCpuExitReason::Hypercall {
                nr: HC_REPORT,
                args,
            } => seen = Some(args[0]),
            AxVCpuExitReason::Hypercall { nr: HC_DONE, .. } => {
                return match seen {
                    Some(5) => Ok(()),
                    other => Err(format!("handler saw {other:?}, expected 5")),
                };
            }
            other => return Err(format!("unexpected exit {other:?}")),
        }
    }
    Err(format!("no timer interrupt within 2 s (report {seen:?})"))
}

fn ext_irq(gstage: GStageMode) -> Check {
    let (_vm, mut v) = vcpu(SelfTest::ExtIrq, gstage)?;
    let mut reports = 0;
    for _ in 0..1000 {
        match v.run().map_err(|e| format!("run: {e}"))? {
            AxVCpuExitReason::Halt | AxVCpuExitReason::Nothing => {}
            AxVCpuExitReason::Hypercall { nr: HC_READY, .. } => {
                v.inject_interrupt(9).map_err(|e| format!("inject: {e}"))?
            }
            AxVCpuExitReason::Hypercall {
                nr: HC_REPORT,
                args,
            } if args[0] == 9 => {
                reports += 1;
                // The interrupt-controller model's claim: the level goes down.
                v.arch_mut()
                    .map_err(|e| format!("{e}"))?
                    .clear_external_interrupt();
            }
            AxVCpuExitReason::Hypercall { nr: HC_DONE, .. } if reports == 1 => return Ok(()),
            other => return Err(format!("unexpected exit {other:?} after {reports} reports")),
        }
    }
    Err("no HC_DONE within 1000 exits".into())
}

/// The next exit that is not `Nothing` (SBI calls the backend answers itself).
fn next(v: &mut AxVCpu<VCpu>) -> Result<AxVCpuExitReason, String> {
    loop {
        match v.run().map_err(|e| format!("run: {e}"))? {
            AxVCpuExitReason::Nothing => {}
            exit => return Ok(exit),
        }
    }
}

fn sbi(gstage: GStageMode) -> Check {
    let (_vm, mut v) = vcpu(SelfTest::Sbi, gstage)?;
    let not_supported = (-2i64) as u64;
    for (what, want) in [
        ("probe HSM", 1),
        ("probe unknown", 0),
        ("unknown call", not_supported),
    ] {
        match next(&mut v)? {
            AxVCpuExitReason::Hypercall {
                nr: HC_REPORT,
                args,
            } if args[0] == want => {}
            other => {
                return Err(format!(
                    "{what}: expected HC_REPORT({want:#x}), got {other:?}"
                ))
            }
        }
    }
    match next(&mut v)? {
        AxVCpuExitReason::Hypercall { nr: HC_DONE, .. } => Ok(()),
        other => Err(format!("expected HC_DONE, got {other:?}")),
    }
}

/// Runs every self-test; `true` if all passed.
pub fn run_all(gstage: GStageMode) -> bool {
    let tests: [Test; 4] = [
        ("percpu", percpu),
        ("timer", timer),
        ("ext-irq", ext_irq),
        ("sbi", sbi),
    ];
    let mut ok = true;
    for (name, test) in tests {
        match test(gstage) {
            Ok(()) => println!("SELFTEST {name}: ok"),
            Err(why) => {
                ok = false;
                println!("SELFTEST {name}: FAIL {why}");
            }
        }
    }
    ok
}
