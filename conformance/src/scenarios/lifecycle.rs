//! `lifecycle`: the call order is enforced, and every refused call leaves the vCPU usable.

use alloc::format;

use axvcpu::{current_vcpu, AxArchVCpu, AxErrorKind, AxVCpu, VCpuResult, VCpuState};

use super::{expect_done, expect_state, ArchOf, Check};
use crate::contract::GuestProgram;
use crate::{Platform, TestVm};

/// Requires `call` to fail with a `BadState` error that gives a reason, and the vCPU to stay
/// in the state it was in.
fn refused<A: AxArchVCpu, T>(
    vcpu: &mut AxVCpu<A>,
    before: VCpuState,
    call: impl FnOnce(&mut AxVCpu<A>) -> VCpuResult<T>,
    what: &str,
) -> Check {
    refused_with(vcpu, before, AxErrorKind::BadState, call, what)
}

/// As [`refused`], with the error kind `kind`.
fn refused_with<A: AxArchVCpu, T>(
    vcpu: &mut AxVCpu<A>,
    before: VCpuState,
    kind: AxErrorKind,
    call: impl FnOnce(&mut AxVCpu<A>) -> VCpuResult<T>,
    what: &str,
) -> Check {
    match call(vcpu) {
        Ok(_) => return Err(format!("{what} was accepted in state {before:?}")),
        Err(e) if e.kind() != kind || e.reason().is_empty() => {
            return Err(format!(
                "{what} was refused with {e}, expected {kind:?} and a reason"
            ))
        }
        Err(_) => {}
    }
    expect_state(vcpu, before, &format!("after refused {what}"))
}

pub(crate) fn lifecycle<P: Platform>(p: &mut P) -> Check {
    type H<P> = <ArchOf<P> as AxArchVCpu>::Hal;
    let vm = p
        .create_vm(GuestProgram::Done)
        .map_err(|e| format!("create_vm: {e}"))?;
    let (entry, root) = (vm.entry(), vm.ept_root());
    let mut v = AxVCpu::<ArchOf<P>>::new(vm.vm_id(), 0, vm.create_config(0))
        .map_err(|e| format!("new: {e}"))?;
    let s = VCpuState::Created;
    expect_state(&v, s, "after new")?;
    refused(&mut v, s, |v| v.bind(), "bind before setup")?;
    refused(&mut v, s, |v| v.run(), "run before setup")?;
    refused(&mut v, s, |v| v.unbind(), "unbind before setup")?;
    refused(&mut v, s, |v| v.set_gpr(1, 0), "set_gpr before setup")?;
    refused(&mut v, s, |v| v.get_gpr(1), "get_gpr before setup")?;
    refused(&mut v, s, |v| v.set_pc(0), "set_pc before setup")?;
    refused(
        &mut v,
        s,
        |v| v.inject_interrupt(p.info().irq_vector),
        "inject_interrupt before setup",
    )?;
    refused(
        &mut v,
        s,
        |v| v.complete_read(0),
        "complete_read before setup",
    )?;
    refused(
        &mut v,
        s,
        |v| v.setup(vm.setup_config(0)),
        "setup without entry and root",
    )?;

    v.set_entry(entry).map_err(|e| format!("set_entry: {e}"))?;
    refused(&mut v, s, |v| v.set_entry(entry), "a second set_entry")?;
    refused(
        &mut v,
        s,
        |v| v.setup(vm.setup_config(0)),
        "setup without root",
    )?;
    // SAFETY: `TestVm`'s contract makes `root` outlive the vCPUs of `vm`, and `v` is
    // dropped before `vm`.
    unsafe { v.set_ept_root(root) }.map_err(|e| format!("set_ept_root: {e}"))?;
    refused(
        &mut v,
        s,
        // SAFETY: as for the first `set_ept_root` (and this one is refused).
        |v| unsafe { v.set_ept_root(root) },
        "a second set_ept_root",
    )?;
    v.setup(vm.setup_config(0))
        .map_err(|e| format!("setup: {e}"))?;

    let s = VCpuState::Free;
    expect_state(&v, s, "after setup")?;
    refused(&mut v, s, |v| v.setup(vm.setup_config(0)), "a second setup")?;
    refused(&mut v, s, |v| v.set_entry(entry), "set_entry after setup")?;
    refused(
        &mut v,
        s,
        // SAFETY: as for the first `set_ept_root` (and this one is refused).
        |v| unsafe { v.set_ept_root(root) },
        "set_ept_root after setup",
    )?;
    refused(&mut v, s, |v| v.run(), "run before bind")?;
    refused(&mut v, s, |v| v.unbind(), "unbind before bind")?;

    v.bind().map_err(|e| format!("bind: {e}"))?;
    let s = VCpuState::Ready;
    expect_state(&v, s, "after bind")?;
    refused(&mut v, s, |v| v.bind(), "a second bind")?;
    if current_vcpu::<H<P>>() != Some(v.id()) {
        return Err(format!(
            "current vCPU is {:?}, expected {:?}",
            current_vcpu::<H<P>>(),
            v.id()
        ));
    }
    let mut other = vm
        .new_vcpu(1, entry)
        .map_err(|e| format!("new vCPU 1: {e}"))?;
    refused_with(
        &mut other,
        VCpuState::Free,
        AxErrorKind::ResourceBusy,
        |other| other.bind(),
        "binding a second vCPU to a busy CPU",
    )?;

    expect_done(&mut v)?;
    expect_state(&v, s, "after run")?;
    refused(
        &mut v,
        s,
        |v| v.complete_read(0),
        "complete_read with no read pending",
    )?;
    v.unbind().map_err(|e| format!("unbind: {e}"))?;
    expect_state(&v, VCpuState::Free, "after unbind")?;
    refused(&mut v, VCpuState::Free, |v| v.unbind(), "a second unbind")?;
    refused(&mut v, VCpuState::Free, |v| v.run(), "run after unbind")?;
    if current_vcpu::<H<P>>().is_some() {
        return Err("the CPU still has a current vCPU after unbind".into());
    }

    // The CPU is free for the other vCPU now, and the first is still usable afterwards.
    other
        .bind()
        .map_err(|e| format!("bind vCPU 1 after unbind: {e}"))?;
    expect_done(&mut other)?;
    other.unbind().map_err(|e| format!("unbind vCPU 1: {e}"))?;
    v.bind().map_err(|e| format!("bind again: {e}"))?;
    expect_done(&mut v)?;
    v.unbind().map_err(|e| format!("unbind again: {e}"))
}
