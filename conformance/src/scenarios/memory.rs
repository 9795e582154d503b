//! The nested page table: permission faults the hypervisor fixes, and nothing reaching past
//! the guest's memory.

use alloc::format;

use axvcpu::{AccessFlags, AccessWidth, AxVCpuExitReason, GuestPhysAddr};

use super::{expect_done, step, Check};
use crate::contract::*;
use crate::{Platform, TestVm};

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
