//! The testbed's own checks of the AArch64 backend, beyond the conformance contract.

mod vtimer;

use alloc::format;

use core::fmt::Write;

use axvcpu::{
    AxArchVCpu, AxPerCpu, AxVCpu, AxVCpuExitReason, GuestPhysAddr, VCpuError, VCpuResult, VCpuState,
};
use axvcpu_aarch64::decode::sysreg;
use axvcpu_aarch64::{gic, Aarch64PerCpu, Aarch64SetupConfig, Aarch64VCpu};
use axvcpu_conformance::alloc_fail::FailingHal;
use axvcpu_conformance::contract::{HC_DONE, HC_READY, HC_REPORT};
use axvcpu_conformance::TestVm;
use axvcpu_npt::{Aarch64Stage2, MapFlags, NestedPageTable};
use axvcpu_testbed::selftest::{
    self, alloc_fail_with_memory, note_vcpu_set_up, AllocFailMemory, Check, SelfTest,
    AF_BIG_FRAMES, AF_BIG_GPA,
};

use crate::arch::{Hal, VCpu, Vm};
use crate::boot::CPUS;
use crate::guests::{selftest_code, SelfTest as Guest, RAM_BASE};
use crate::hal;

fn vm(guest: Guest) -> Result<Vm, alloc::string::String> {
    Vm::new(selftest_code(guest), Aarch64SetupConfig::default()).map_err(|e| format!("VM: {e}"))
}

fn bound(vm: &Vm, id: usize) -> Result<AxVCpu<VCpu>, alloc::string::String> {
    let mut v = vm
        .new_vcpu(id, vm.entry())
        .map_err(|e| format!("new vCPU: {e}"))?;
    v.bind().map_err(|e| format!("bind: {e}"))?;
    Ok(v)
}

fn step(v: &mut AxVCpu<VCpu>) -> Result<AxVCpuExitReason, alloc::string::String> {
    v.run().map_err(|e| format!("run: {e}"))
}

fn expect_hc(v: &mut AxVCpu<VCpu>, nr: u64, arg: Option<u64>, what: &str) -> Check {
    match step(v)? {
        AxVCpuExitReason::Hypercall { nr: n, args }
            if n == nr && arg.is_none_or(|a| a == args[0]) =>
        {
            Ok(())
        }
        other => Err(format!("{what}: got {other:?}")),
    }
}

/// PSCI_VERSION 1.0; FEATURES(CPU_ON) 0; FEATURES(CPU_SUSPEND) and an unknown SMC -1;
/// `hvc #5` -1; the acknowledge with nothing pending 1023.
fn psci(_: ()) -> Check {
    let vm = vm(Guest::Psci)?;
    let mut v = bound(&vm, 0)?;
    let expected: [(u64, &str); 6] = [
        (0x1_0000, "PSCI_VERSION"),
        (0, "PSCI_FEATURES(CPU_ON)"),
        (u64::MAX, "PSCI_FEATURES(CPU_SUSPEND)"),
        (u64::MAX, "an unknown SMC"),
        (u64::MAX, "hvc #5"),
        (gic::SPURIOUS as u64, "hvc #1 with nothing pending"),
    ];
    for (value, what) in expected {
        expect_hc(&mut v, HC_REPORT, Some(value), what)?;
    }
    expect_hc(&mut v, HC_DONE, None, "done")
}

/// A load pair from unmapped memory has no syndrome: `run` fails, the vCPU is invalid.
fn isv0(_: ()) -> Check {
    let vm = vm(Guest::Isv0)?;
    let mut v = bound(&vm, 0)?;
    match v.run() {
        Err(e) if v.state() == VCpuState::Invalid => {
            if format!("{e}").contains("ISV") {
                Ok(())
            } else {
                Err(format!("unexpected error {e}"))
            }
        }
        other => Err(format!(
            "expected Err, got {other:?} in state {:?}",
            v.state()
        )),
    }
}

/// FP/SIMD registers belong to their vCPU: another vCPU on the same CPU in between does not
/// change them.
fn fp(_: ()) -> Check {
    const A: u64 = 0x0123_4567_89ab_cdef;
    const B: u64 = 0x7edc_ba98_7654_3210;
    let vm_a = vm(Guest::Fp)?;
    let vm_b = vm(Guest::Fp)?;
    let mut a = bound(&vm_a, 0)?;
    a.set_gpr(19, A as usize).map_err(|e| format!("{e}"))?;
    expect_hc(&mut a, HC_READY, None, "A ready")?;
    a.unbind().map_err(|e| format!("unbind A: {e}"))?;
    let mut b = bound(&vm_b, 0)?;
    b.set_gpr(19, B as usize).map_err(|e| format!("{e}"))?;
    expect_hc(&mut b, HC_READY, None, "B ready")?;
    expect_hc(&mut b, HC_REPORT, Some(B), "B d8")?;
    expect_hc(&mut b, HC_REPORT, Some(B), "B d31")?;
    b.unbind().map_err(|e| format!("unbind B: {e}"))?;
    a.bind().map_err(|e| format!("rebind A: {e}"))?;
    expect_hc(&mut a, HC_REPORT, Some(A), "A d8")?;
    expect_hc(&mut a, HC_REPORT, Some(A), "A d31")?;
    expect_hc(&mut a, HC_DONE, None, "A done")?;
    a.unbind().map_err(|e| format!("unbind A: {e}"))
}

/// The guest's physical-timer access traps (`CNTHCTL_EL2.EL1PCEN` = 0).
fn cntp(_: ()) -> Check {
    let vm = vm(Guest::Cntp)?;
    let mut v = bound(&vm, 0)?;
    let cntp_ctl = sysreg(3, 3, 14, 2, 1);
    match step(&mut v)? {
        AxVCpuExitReason::SysRegRead { addr, reg: 9 } if addr == cntp_ctl => {}
        other => {
            return Err(format!(
                "expected SysRegRead of CNTP_CTL_EL0 into x9, got {other:?}"
            ))
        }
    }
    v.complete_read(5)
        .map_err(|e| format!("complete_read: {e}"))?;
    expect_hc(&mut v, HC_REPORT, Some(5), "the emulated value")?;
    expect_hc(&mut v, HC_DONE, None, "done")
}

/// A host interrupt other than the kick, pending when the guest runs, is an
/// `ExternalInterrupt` with its INTID, acknowledged and ended by the backend.
fn external_irq(_: ()) -> Check {
    const SGI: u32 = 13;
    let vm = Vm::new(
        crate::guests::code(axvcpu_conformance::contract::GuestProgram::Spin)
            .ok_or("no spin program")?,
        Aarch64SetupConfig::default(),
    )
    .map_err(|e| format!("VM: {e}"))?;
    let mut v = bound(&vm, 0)?;
    hal::send_self_sgi(SGI);
    match step(&mut v)? {
        AxVCpuExitReason::ExternalInterrupt { vector } if vector == SGI as u64 => {}
        other => {
            return Err(format!(
                "expected ExternalInterrupt {{ vector: {SGI} }}, got {other:?}"
            ))
        }
    }
    // Ended: the next run spins until kicked.
    v.handle().kick();
    match step(&mut v)? {
        AxVCpuExitReason::Kicked => Ok(()),
        other => Err(format!("expected Kicked, got {other:?}")),
    }
}

/// vGIC: two interrupts injected before the first run arrive one after the other (list
/// register 0 reloaded after the guest's EOI), lowest INTID first, each once.
fn vgic_two(_: ()) -> Check {
    let vm = Vm::new(
        crate::guests::irq_gic_code(),
        Aarch64SetupConfig {
            vgic: true,
            ..Aarch64SetupConfig::default()
        },
    )
    .map_err(|e| format!("VM: {e}"))?;
    let mut v = bound(&vm, 0)?;
    v.inject_interrupt(50).map_err(|e| format!("inject: {e}"))?;
    v.inject_interrupt(48).map_err(|e| format!("inject: {e}"))?;
    let mut reports = alloc::vec::Vec::new();
    for _ in 0..16 {
        match step(&mut v)? {
            AxVCpuExitReason::Hypercall {
                nr: HC_REPORT,
                args,
            } => reports.push(args[0]),
            AxVCpuExitReason::Hypercall { nr: HC_DONE, .. } if reports.len() >= 2 => break,
            AxVCpuExitReason::Hypercall {
                nr: HC_DONE | HC_READY,
                ..
            }
            | AxVCpuExitReason::Halt => {}
            other => return Err(format!("unexpected exit {other:?}")),
        }
    }
    if reports != [48, 50] {
        return Err(format!("reports {reports:?}, expected [48, 50]"));
    }
    Ok(())
}

/// vGIC: an INTID injected again while list register 0 still offers it (the guest has not
/// acknowledged it) merges: the guest takes it once.
fn vgic_merge(_: ()) -> Check {
    const SGI: u32 = 13;
    let vm = Vm::new(
        crate::guests::irq_gic_code(),
        Aarch64SetupConfig {
            vgic: true,
            ..Aarch64SetupConfig::default()
        },
    )
    .map_err(|e| format!("VM: {e}"))?;
    let mut v = bound(&vm, 0)?;
    v.inject_interrupt(48).map_err(|e| format!("inject: {e}"))?;
    // A host interrupt makes the guest exit before its first instruction, with 48 loaded
    // into the list register and still masked by the guest.
    hal::send_self_sgi(SGI);
    match step(&mut v)? {
        AxVCpuExitReason::ExternalInterrupt { vector } if vector == SGI as u64 => {}
        other => return Err(format!("expected ExternalInterrupt {SGI}, got {other:?}")),
    }
    v.inject_interrupt(48)
        .map_err(|e| format!("inject again: {e}"))?;
    let mut reports = alloc::vec::Vec::new();
    let mut dones = 0;
    for _ in 0..16 {
        match step(&mut v)? {
            AxVCpuExitReason::Hypercall {
                nr: HC_REPORT,
                args,
            } => reports.push(args[0]),
            AxVCpuExitReason::Hypercall { nr: HC_DONE, .. } => {
                dones += 1;
                if dones == 3 {
                    break;
                }
            }
            AxVCpuExitReason::Hypercall { nr: HC_READY, .. } | AxVCpuExitReason::Halt => {}
            other => return Err(format!("unexpected exit {other:?}")),
        }
    }
    if reports != [48] {
        return Err(format!("reports {reports:?}, expected [48] (taken once)"));
    }
    Ok(())
}

/// The backend itself (not through `AxVCpu`) refuses to run a guest whose stage 2 is not
/// set: `setup` before `set_ept_root`, `bind` before `setup`, `run` before `bind`.
fn call_order(_: ()) -> Check {
    let mut v = VCpu::new(0, 0, ()).map_err(|e| format!("new: {e}"))?;
    if v.setup(Aarch64SetupConfig::default()).is_ok() {
        return Err("setup without a stage-2 root was accepted".into());
    }
    if v.bind().is_ok() {
        return Err("bind before setup was accepted".into());
    }
    match v.run() {
        Err(_) => Ok(()),
        Ok(exit) => Err(format!("run before bind entered the guest: {exit:?}")),
    }
}

/// `hardware_disable` on this CPU makes `bind` refuse; enabling again makes it work.
fn percpu(_: ()) -> Check {
    let cpu = hal::cpu_id();
    let vm = vm(Guest::Psci)?;
    let mut slot = CPUS.percpu(cpu).ok_or("no such CPU")?.lock();
    let p: &mut AxPerCpu<Aarch64PerCpu<Hal>> = slot.as_mut().ok_or("no per-CPU state")?;
    p.hardware_disable().map_err(|e| format!("disable: {e}"))?;
    let refused = {
        let mut v = vm
            .new_vcpu(0, vm.entry())
            .map_err(|e| format!("new: {e}"))?;
        v.bind().is_err()
    };
    if p.hardware_disable().is_ok() {
        return Err("a second disable was accepted".into());
    }
    p.hardware_enable()
        .map_err(|e| format!("enable again: {e}"))?;
    if !refused {
        return Err("bind was accepted with virtualization disabled".into());
    }
    if !p.is_enabled() {
        return Err("not enabled after hardware_enable".into());
    }
    drop(slot);
    let mut v = bound(&vm, 0)?;
    expect_hc(&mut v, HC_REPORT, Some(0x1_0000), "after re-enable")
}

type Failing = FailingHal<Hal>;
/// The far page of the build: in another 1 GiB (a stage-2 top-level entry) than RAM and
/// the block, within the 39-bit IPA space (`AF_FAR_GPA` is beyond it).
const FAR_IPA: usize = 0x40_4000_0000;
type FailingVCpu = AxVCpu<Aarch64VCpu<Failing>>;
type FailingNpt = NestedPageTable<Failing, Aarch64Stage2>;

/// One build: a stage-2 table over [`Failing`], RAM and a 2 MiB block mapped, a vCPU
/// created and set up, two table changes under it (a block split, a far page), and a run
/// to its `wfi`. Returns the vCPU before the table, so it drops first.
fn alloc_fail_build(mem: &AllocFailMemory) -> VCpuResult<(FailingVCpu, FailingNpt)> {
    let rwx = MapFlags::READ | MapFlags::WRITE | MapFlags::EXECUTE;
    let mut npt = FailingNpt::new()?;
    let ram = GuestPhysAddr::from(RAM_BASE);
    npt.map(ram, mem.ram, mem.ram_frames * 4096, rwx)?;
    npt.map(
        GuestPhysAddr::from(AF_BIG_GPA),
        mem.big,
        AF_BIG_FRAMES * 4096,
        rwx,
    )?;
    let builder = FailingVCpu::builder(0, 0, ())?;
    // SAFETY: the table is returned with the vCPU, which drops first; the memory it maps
    // outlives every build.
    let mut v = unsafe { builder.ept_root(npt.root_paddr()) }
        .entry(ram)
        .setup(Aarch64SetupConfig::default())?;
    note_vcpu_set_up();
    npt.protect(
        GuestPhysAddr::from(AF_BIG_GPA + 0x1000),
        4096,
        MapFlags::READ,
    )?;
    npt.map(GuestPhysAddr::from(FAR_IPA), mem.ram, 4096, MapFlags::READ)?;
    v.nested_page_table_changed()?;
    v.bind()?;
    let exit = v.run();
    v.unbind()?;
    match exit? {
        AxVCpuExitReason::Halt => Ok((v, npt)),
        _ => Err(VCpuError::bad_state("alloc-fail: the guest did not halt")),
    }
}

/// Every frame allocation of [`alloc_fail_build`] fails in turn: each must be a clean
/// `NoMemory` error with no frame leaked (`axvcpu_conformance::alloc_fail`).
fn alloc_fail(_: ()) -> Check {
    const WFI: u32 = 0xd503_207f;
    // Root, tables for RAM and the block, the split, the far page's tables.
    let (points, with_vcpu) =
        alloc_fail_with_memory::<Hal, _>(16, &WFI.to_le_bytes(), alloc_fail_build, 6)?;
    let mut out = hal::CONSOLE.writer();
    let _ = writeln!(
        out,
        "testbed-aarch64: alloc-fail: {points} allocation points, {with_vcpu} with a set-up \
         vCPU, each a clean NoMemory error"
    );
    Ok(())
}

/// Runs every self-test, one `SELFTEST` line each; `true` if all passed.
pub fn run_all() -> bool {
    let tests: [SelfTest<()>; 11] = [
        ("psci", psci),
        ("isv0-error", isv0),
        ("fp-state", fp),
        ("cntp-trap", cntp),
        ("external-irq", external_irq),
        ("vgic-two-irqs", vgic_two),
        ("vgic-merge", vgic_merge),
        ("vgic-vtimer", vtimer::vtimer),
        ("call-order", call_order),
        ("percpu", percpu),
        ("alloc-fail", alloc_fail),
    ];
    let mut w = hal::CONSOLE.writer();
    selftest::run_all(&tests, (), &mut w)
}
