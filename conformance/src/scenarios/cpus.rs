//! More than one CPU: starting and stopping guest CPUs, kicking a running vCPU from another
//! CPU, and two vCPUs running at once.

use alloc::boxed::Box;
use alloc::format;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axvcpu::{current_vcpu, AxArchVCpu, AxVCpuExitReason, VCpuState};

use super::{expect_done, expect_report, reports_until_done, start, step, Check, Waiter};
use crate::contract::*;
use crate::{Isa, Platform, TestVm};

const SECOND: u64 = 1_000_000_000;

pub(crate) fn cpu_up<P: Platform>(p: &mut P) -> Check {
    // x86 INIT-SIPI carries no argument; the secondary reports 0 there.
    let expected_arg = if p.info().isa == Isa::X86_64 {
        0
    } else {
        CPU_UP_ARG
    };
    let (vm, mut v0) = start(p, GuestProgram::CpuUp)?;
    let (entry_point, arg) = match step(&mut v0)? {
        AxVCpuExitReason::CpuUp { target_cpu, entry_point, arg }
            if target_cpu == CPU_UP_TARGET && arg == expected_arg =>
        {
            (entry_point, arg)
        }
        other => {
            return Err(format!(
                "expected CpuUp {{ target_cpu: {CPU_UP_TARGET}, arg: {expected_arg:#x} }}, got {other:?}"
            ))
        }
    };
    // Run the secondary on this CPU, then let the boot CPU finish.
    v0.unbind().map_err(|e| format!("unbind vCPU 0: {e}"))?;
    let mut v1 = vm
        .new_vcpu(CPU_UP_TARGET as usize, entry_point)
        .map_err(|e| format!("new vCPU 1 at {entry_point:?}: {e}"))?;
    v1.set_boot_arg(arg as usize)
        .map_err(|e| format!("set_boot_arg: {e}"))?;
    v1.bind().map_err(|e| format!("bind vCPU 1: {e}"))?;
    expect_report(&mut v1, expected_arg, "secondary's argument register")?;
    expect_done(&mut v1)?;
    v1.unbind().map_err(|e| format!("unbind vCPU 1: {e}"))?;
    v0.bind().map_err(|e| format!("rebind vCPU 0: {e}"))?;
    expect_done(&mut v0)
}

pub(crate) fn cpu_down<P: Platform>(p: &mut P) -> Check {
    let (_vm, mut v) = start(p, GuestProgram::CpuDown)?;
    match step(&mut v)? {
        AxVCpuExitReason::CpuDown { .. } => Ok(()),
        other => Err(format!("expected CpuDown, got {other:?}")),
    }
}

pub(crate) fn preempt<P: Platform>(p: &mut P) -> Check {
    let wait = Waiter::of(p);
    let clock = wait.clock;
    let (_vm, mut v) = start(p, GuestProgram::Spin)?;
    // A kick that comes before run() is not lost.
    v.handle().kick();
    match step(&mut v)? {
        AxVCpuExitReason::Kicked => {}
        other => {
            return Err(format!(
                "a kick before run(): expected Kicked, got {other:?}"
            ))
        }
    }
    let mut spin_pc = None;
    for round in 0..2 {
        let handle = v.handle();
        let returned = Arc::new(AtomicBool::new(false));
        let returned_seen = returned.clone();
        // Set when one kick was not enough: the kicker then kicks again so run() returns and
        // the scenario can fail instead of hanging.
        let lost = Arc::new(AtomicBool::new(false));
        let lost_seen = lost.clone();
        let kicker = p
            .spawn_on_cpu(
                1,
                Box::new(move || {
                    // One kick once the guest is in; a kick is never lost, so run() returns.
                    wait.until(SECOND, || handle.state() == VCpuState::Running);
                    handle.kick();
                    if wait.until(2 * SECOND, || returned_seen.load(Ordering::Acquire)) {
                        return;
                    }
                    lost_seen.store(true, Ordering::Release);
                    let start = clock();
                    while !returned_seen.load(Ordering::Acquire)
                        && clock().saturating_sub(start) < 5 * SECOND
                    {
                        handle.kick();
                        wait.until(SECOND / 100, || returned_seen.load(Ordering::Acquire));
                    }
                }),
            )
            .map_err(|e| format!("spawn_on_cpu: {e}"))?;
        let exit = step(&mut v);
        returned.store(true, Ordering::Release);
        let joined = kicker.join();
        match exit? {
            AxVCpuExitReason::Kicked => {}
            other => return Err(format!("round {round}: expected Kicked, got {other:?}")),
        }
        if !joined {
            return Err("the kicking CPU did not finish".into());
        }
        if lost.load(Ordering::Acquire) {
            return Err(format!(
                "round {round}: run() did not return within 2 s of one kick (it returned only after more kicks)"
            ));
        }
        let pc = v.pc().map_err(|e| format!("pc: {e}"))?;
        match spin_pc {
            None => spin_pc = Some(pc),
            Some(first) if first != pc => {
                return Err(format!(
                    "kicked at pc {first:#x}, then at {pc:#x}: the spin loop moved"
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Runs one vCPU of the `Smp` program to its end on the calling CPU.
fn run_smp_vcpu<V: TestVm>(
    vm: &V,
    id: usize,
    id_reg: usize,
    bound: &AtomicUsize,
    wait: Waiter,
) -> Check {
    type H<V> = <<V as TestVm>::Arch as AxArchVCpu>::Hal;
    let mut v = vm
        .new_vcpu(id, vm.entry())
        .map_err(|e| format!("vCPU {id}: new: {e}"))?;
    v.set_gpr(id_reg, id)
        .map_err(|e| format!("vCPU {id}: set_gpr: {e}"))?;
    v.bind().map_err(|e| format!("vCPU {id}: bind: {e}"))?;
    bound.fetch_add(1, Ordering::AcqRel);
    if !wait.until(5 * SECOND, || bound.load(Ordering::Acquire) == 2) {
        return Err(format!("vCPU {id}: the other vCPU never got bound"));
    }
    if current_vcpu::<H<V>>() != Some(v.id()) {
        return Err(format!(
            "vCPU {id}: current vCPU is {:?}",
            current_vcpu::<H<V>>()
        ));
    }
    let reports = reports_until_done(&mut v, SMP_ITERATIONS as usize + 16)
        .map_err(|e| format!("vCPU {id}: {e}"))?;
    if reports.len() as u64 != SMP_ITERATIONS || reports.iter().any(|&r| r != id as u64) {
        let stray = reports.iter().find(|&&r| r != id as u64);
        return Err(format!(
            "vCPU {id}: {} reports, stray value {stray:?}, expected {SMP_ITERATIONS} of {id}",
            reports.len()
        ));
    }
    if current_vcpu::<H<V>>() != Some(v.id()) {
        return Err(format!(
            "vCPU {id}: current vCPU changed to {:?}",
            current_vcpu::<H<V>>()
        ));
    }
    v.unbind().map_err(|e| format!("vCPU {id}: unbind: {e}"))
}

pub(crate) fn smp<P: Platform>(p: &mut P) -> Check {
    let wait = Waiter::of(p);
    let id_reg = p.info().smp_id_reg;
    let vm = Arc::new(
        p.create_vm(GuestProgram::Smp)
            .map_err(|e| format!("create_vm: {e}"))?,
    );
    let bound = Arc::new(AtomicUsize::new(0));
    let second: Arc<spin::Mutex<Option<Check>>> = Arc::new(spin::Mutex::new(None));
    let (vm1, bound1, second1) = (vm.clone(), bound.clone(), second.clone());
    let job = p
        .spawn_on_cpu(
            1,
            Box::new(move || {
                let r = run_smp_vcpu(&*vm1, 1, id_reg, &bound1, wait);
                *second1.lock() = Some(r);
            }),
        )
        .map_err(|e| format!("spawn_on_cpu: {e}"))?;
    let first = run_smp_vcpu(&*vm, 0, id_reg, &bound, wait);
    let joined = job.join();
    first?;
    let second = second.lock().take();
    match (joined, second) {
        (true, Some(r)) => r,
        _ => Err("the second CPU did not finish its vCPU".into()),
    }
}
