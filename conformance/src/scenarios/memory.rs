//! The nested page table: permission faults the hypervisor fixes, nothing reaching past
//! the guest's memory, and VMs that never see each other's.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use axvcpu::{AccessFlags, AccessWidth, AxVCpuExitReason, GuestPhysAddr};

use super::{expect_done, step, Check};
use crate::contract::*;
use crate::{Platform, TestVm};

/// How many VMs `two-vms` runs (more than the 2 or 4 tags a platform may force, so tags
/// are shared by VMs that run one after the other and at once).
pub const TWO_VMS_COUNT: usize = 6;
/// The TLB tags `two-vms` lets backends use ([`axvcpu::tlb_tags`]): VMs share them, the
/// even-numbered VMs one and the odd-numbered the other where tags follow the VM id.
const TWO_VMS_TAGS: usize = 2;
/// Rounds of turns in each phase of `two-vms`.
const ROUNDS: usize = 3;
/// Exits per turn: the second and later see the store of the first.
const EXITS_PER_TURN: usize = 4;

pub(crate) fn nested_page_fault<P: Platform>(p: &mut P) -> Check {
    let (vm, mut v) = super::start(p, GuestProgram::NestedPageFault)?;
    let ro_page = vm.layout().ro_page;
    let target = ro_page + NPF_OFFSET;
    match step(&mut v)? {
        AxVCpuExitReason::NestedPageFault { addr, access_flags }
            if addr == target && access_flags.contains(AccessFlags::WRITE) => {}
        other => {
            return Err(format!(
                "expected a write NestedPageFault at {target:?}, got {other:?}"
            ))
        }
    }
    vm.make_writable(ro_page)
        .map_err(|e| format!("make_writable: {e}"))?;
    v.nested_page_table_changed()
        .map_err(|e| format!("nested_page_table_changed: {e}"))?;
    expect_done(&mut v)?;
    let stored = vm.read_u64(target).map_err(|e| format!("read_u64: {e}"))?;
    if stored != NPF_DATA {
        return Err(format!(
            "host memory holds {stored:#x} after the retried write, expected {NPF_DATA:#x}"
        ));
    }
    Ok(())
}

pub(crate) fn isolation<P: Platform>(p: &mut P) -> Check {
    let (vm, mut v) = super::start(p, GuestProgram::Isolation)?;
    let layout = vm.layout();
    let below = layout.ram_base.as_usize().checked_sub(0x1000);
    let above = Some(layout.ram_base.as_usize() + layout.ram_size);
    for addr in [below, above]
        .into_iter()
        .flatten()
        .map(GuestPhysAddr::from)
    {
        match step(&mut v)? {
            AxVCpuExitReason::MmioRead {
                addr: a,
                width: AccessWidth::Qword,
                ..
            } if a == addr => {}
            other => {
                return Err(format!(
                    "read of {addr:?}: expected MmioRead, got {other:?}"
                ))
            }
        }
        v.complete_read(0)
            .map_err(|e| format!("complete_read: {e}"))?;
        match step(&mut v)? {
            AxVCpuExitReason::MmioWrite {
                addr: a,
                width: AccessWidth::Qword,
                ..
            } if a == addr => {}
            other => {
                return Err(format!(
                    "write of {addr:?}: expected MmioWrite, got {other:?}"
                ))
            }
        }
    }
    expect_done(&mut v)
}

/// VM `k`'s signature: distinct per VM, never 0, and not a value a guest finds by chance.
fn signature(k: usize) -> u64 {
    0x5157_0000_0000_0000 | ((k as u64 + 1) << 16) | 0x5a5a
}

/// Which VM a value is the signature of, for the report.
fn whose(value: u64) -> String {
    match (0..TWO_VMS_COUNT).find(|&j| signature(j) == value) {
        Some(j) => format!("VM {j}'s signature"),
        None => String::from("no VM's signature"),
    }
}

/// One turn of VM `k`'s vCPU on this CPU: bind, [`EXITS_PER_TURN`] reports each 0 or its
/// own signature, unbind; then its slot in host memory holds its signature.
fn turn<V: TestVm>(vm: &V, v: &mut axvcpu::AxVCpu<V::Arch>, k: usize) -> Check {
    v.bind().map_err(|e| format!("VM {k}: bind: {e}"))?;
    let mine = signature(k);
    for _ in 0..EXITS_PER_TURN {
        match step(v).map_err(|e| format!("VM {k}: {e}"))? {
            AxVCpuExitReason::Hypercall {
                nr: HC_REPORT,
                args,
            } if args[0] == 0 || args[0] == mine => {}
            AxVCpuExitReason::Hypercall {
                nr: HC_REPORT,
                args,
            } => {
                return Err(format!(
                    "VM {k} loaded {:#x} ({}) from its own slot",
                    args[0],
                    whose(args[0])
                ))
            }
            other => return Err(format!("VM {k}: expected HC_REPORT, got {other:?}")),
        }
    }
    v.unbind().map_err(|e| format!("VM {k}: unbind: {e}"))?;
    let slot = vm.entry() + SIGNATURE_OFFSET;
    let held = vm
        .read_u64(slot)
        .map_err(|e| format!("VM {k}: read_u64: {e}"))?;
    if held != mine {
        return Err(format!(
            "VM {k}'s slot in host memory holds {held:#x} ({}), not its signature",
            whose(held)
        ));
    }
    Ok(())
}

/// [`ROUNDS`] rounds of turns of the VMs `ks` (a fresh vCPU `vcpu_id` each, signature in
/// `id_reg`) on the calling CPU.
fn take_turns<V: TestVm>(vms: &[Arc<V>], ks: &[usize], vcpu_id: usize, id_reg: usize) -> Check {
    let mut vcpus = Vec::new();
    for &k in ks {
        let vm = &vms[k];
        let mut v = vm
            .new_vcpu(vcpu_id, vm.entry())
            .map_err(|e| format!("VM {k}: new vCPU {vcpu_id}: {e}"))?;
        v.set_gpr(id_reg, signature(k) as usize)
            .map_err(|e| format!("VM {k}: set_gpr: {e}"))?;
        vcpus.push((k, v));
    }
    for _ in 0..ROUNDS {
        for (k, v) in vcpus.iter_mut() {
            turn(&**vms.get(*k).ok_or("no such VM")?, v, *k)?;
        }
    }
    Ok(())
}

pub(crate) fn two_vms<P: Platform>(p: &mut P) -> Check {
    let limit = axvcpu::tlb_tags::tlb_tag_limit();
    axvcpu::tlb_tags::limit_tlb_tags(TWO_VMS_TAGS);
    let result = two_vms_sharing_tags(p);
    axvcpu::tlb_tags::limit_tlb_tags(limit);
    result
}

fn two_vms_sharing_tags<P: Platform>(p: &mut P) -> Check {
    let id_reg = p.info().smp_id_reg;
    let mut vms = Vec::new();
    for k in 0..TWO_VMS_COUNT {
        let vm = p
            .create_vm(GuestProgram::Signature)
            .map_err(|e| format!("create_vm {k}: {e}"))?;
        let l = vm.layout();
        let slot_end = (vm.entry() + SIGNATURE_OFFSET + 8).as_usize();
        if slot_end > l.ram_base.as_usize() + l.ram_size {
            return Err(format!("VM {k}: the signature slot is past the end of RAM"));
        }
        vms.push(Arc::new(vm));
    }
    let entry = vms[0].entry();
    if vms.iter().any(|vm| vm.entry() != entry) {
        return Err("the VMs do not share guest-physical addresses".into());
    }
    // One CPU: every VM in turn.
    let all: Vec<usize> = (0..TWO_VMS_COUNT).collect();
    take_turns(&vms, &all, 0, id_reg).map_err(|e| format!("taking turns on one CPU: {e}"))?;
    // Two CPUs at once (vCPU 1 of each VM, as KVM keeps a vCPU id until its VM goes): even
    // VMs here, odd ones on CPU 1, each CPU taking turns among its own. The VMs' ids are
    // consecutive, so where tags follow the VM id (AArch64, RISC-V) VMs running at once never
    // share one, as those architectures require.
    let (even, odd): (Vec<usize>, Vec<usize>) = all.iter().partition(|&&k| k % 2 == 0);
    let other: Arc<spin::Mutex<Option<Check>>> = Arc::new(spin::Mutex::new(None));
    let (vms1, other1) = (vms.clone(), other.clone());
    let job = p
        .spawn_on_cpu(
            1,
            Box::new(move || {
                let r = take_turns(&vms1, &odd, 1, id_reg);
                *other1.lock() = Some(r);
            }),
        )
        .map_err(|e| format!("spawn_on_cpu: {e}"))?;
    let here = take_turns(&vms, &even, 1, id_reg);
    let joined = job.join();
    here.map_err(|e| format!("two CPUs at once, CPU 0: {e}"))?;
    let there = other.lock().take();
    match (joined, there) {
        (true, Some(r)) => r.map_err(|e| format!("two CPUs at once, CPU 1: {e}")),
        _ => Err("the second CPU did not finish its VMs".into()),
    }
}
