//! The testbed's own checks beyond the conformance contract: the per-CPU switch (refused
//! while a vCPU is bound), the guest timer (also across unbind/bind), external-interrupt
//! injection and its acknowledgement, SBI answers, CSRs the guest shares with the host,
//! MMIO spanning pages, a virtual instruction the backend does not emulate raised in the
//! guest as an illegal instruction, guest FP registers kept per vCPU, the SBI calls of an OS (HSM status
//! and suspend, RFENCE, DBCN), and every frame allocation of the create / setup / G-stage paths
//! failing in turn (`alloc-fail`).
//! Each prints `SELFTEST <name>: ok` or `SELFTEST <name>: FAIL <why>`.

use alloc::format;
use alloc::string::String;

use core::fmt::Write;

use axvcpu::{
    AxArchVCpu, AxErrorKind, AxPerCpu, AxVCpu, AxVCpuExitReason, GuestPhysAddr, VCpuError,
    VCpuResult, VCpuState,
};
use axvcpu_conformance::alloc_fail::FailingHal;
use axvcpu_conformance::contract::{HC_DONE, HC_READY, HC_REPORT};
use axvcpu_conformance::TestVm;
use axvcpu_npt::{GStageTable, MapFlags};
use axvcpu_riscv::{decode::WFI, GStageMode, RiscvPerCpu, RiscvSetupConfig, RiscvVCpu};
use axvcpu_testbed::selftest::{
    alloc_fail_with_memory, note_vcpu_set_up, AllocFailMemory, Check, SelfTest as Test,
    AF_BIG_FRAMES, AF_BIG_GPA, AF_FAR_GPA,
};

use crate::arch::{Hal, VCpu, Vm};
use crate::boot::CPUS;
use crate::guests::{self, selftest_code, SelfTest, RAM_BASE};
use crate::hal;

fn vcpu(t: SelfTest, gstage: GStageMode) -> Result<(Vm, AxVCpu<VCpu>), String> {
    let setup = RiscvSetupConfig {
        gstage,
        ..RiscvSetupConfig::default()
    };
    let vm = Vm::new(selftest_code(t), setup).map_err(|e| format!("vm: {e}"))?;
    let mut v = vm
        .new_vcpu(0, vm.entry())
        .map_err(|e| format!("vcpu: {e}"))?;
    v.bind().map_err(|e| format!("bind: {e}"))?;
    Ok((vm, v))
}

fn percpu(gstage: GStageMode) -> Check {
    let mut slot = CPUS.percpu(hal::hart_id()).ok_or("no such hart")?.lock();
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
    // With a vCPU bound here, hgatp is that vCPU's: resetting it is refused.
    {
        let (_vm, _v) = vcpu(SelfTest::Timer, gstage)?;
        match p.hardware_disable() {
            Err(e) if e.kind() == AxErrorKind::BadState && p.is_enabled() => {}
            other => {
                return Err(format!(
                    "hardware_disable with a vCPU bound: {other:?}, expected BadState"
                ))
            }
        }
    }
    p.hardware_disable()
        .and_then(|()| p.hardware_enable())
        .map_err(|e| format!("disable/enable once the vCPU is gone: {e}"))?;
    // hardware_enable writes the calling hart's CSRs: a state for another hart is refused.
    let other = hal::hart_id() ^ 1;
    let mut wrong = AxPerCpu::<RiscvPerCpu<Hal>>::new(other).map_err(|e| format!("{e}"))?;
    if wrong.hardware_enable().is_ok() || wrong.is_enabled() {
        return Err(format!(
            "hardware_enable for hart {other} accepted on this hart"
        ));
    }
    Ok(())
}

fn timer(gstage: GStageMode) -> Check {
    let (_vm, mut v) = vcpu(SelfTest::Timer, gstage)?;
    expect_timer_interrupt(&mut v)
}

/// The guest's deadline outlives an unbind/bind (without Sstc the backend keeps it and
/// re-arms the host timer at bind).
fn timer_rebind(gstage: GStageMode) -> Check {
    let (_vm, mut v) = vcpu(SelfTest::TimerRebind, gstage)?;
    // The guest's first trap is its SBI set_timer, which the backend answers itself
    // (`Nothing`): `AxVCpu::run` would enter again, and reach the deadline before an unbind
    // whenever the host is slow. So this one entry goes to the backend directly.
    let arch = v.arch_mut().map_err(|e| format!("arch_mut: {e}"))?;
    match arch.run().map_err(|e| format!("run: {e}"))? {
        AxVCpuExitReason::Nothing if arch.pending_interrupts() == 0 => {}
        other => return Err(format!("expected set_timer (Nothing), got {other:?}")),
    }
    v.unbind().map_err(|e| format!("unbind: {e}"))?;
    v.bind().map_err(|e| format!("rebind: {e}"))?;
    expect_timer_interrupt(&mut v)
}

/// Runs until the guest reports its timer interrupt (code 5) and finishes, within 2 s.
fn expect_timer_interrupt(v: &mut AxVCpu<VCpu>) -> Check {
    let t0 = hal::now_ns();
    let mut seen = None;
    while hal::now_ns() - t0 < 2_000_000_000 {
        match v.run().map_err(|e| format!("run: {e}"))? {
            AxVCpuExitReason::Halt => {}
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
            AxVCpuExitReason::Halt => {}
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

/// The next exit (SBI calls the backend answers itself never reach the hypervisor).
fn next(v: &mut AxVCpu<VCpu>) -> Result<AxVCpuExitReason, String> {
    v.run().map_err(|e| format!("run: {e}"))
}

/// The next exit is the guest's report of `want` (`what` names it in the failure).
fn report(v: &mut AxVCpu<VCpu>, what: &str, want: u64) -> Check {
    match next(v)? {
        AxVCpuExitReason::Hypercall {
            nr: HC_REPORT,
            args,
        } if args[0] == want => Ok(()),
        other => Err(format!(
            "{what}: expected HC_REPORT({want:#x}), got {other:?}"
        )),
    }
}

/// The guest reports each of `wants` in turn, then finishes.
fn reports_then_done(v: &mut AxVCpu<VCpu>, wants: &[(&str, u64)]) -> Check {
    for &(what, want) in wants {
        report(v, what, want)?;
    }
    match next(v)? {
        AxVCpuExitReason::Hypercall { nr: HC_DONE, .. } => Ok(()),
        other => Err(format!("expected HC_DONE, got {other:?}")),
    }
}

fn sbi(gstage: GStageMode) -> Check {
    let (_vm, mut v) = vcpu(SelfTest::Sbi, gstage)?;
    let not_supported = (-2i64) as u64;
    let invalid_param = (-3i64) as u64;
    reports_then_done(
        &mut v,
        &[
            ("probe HSM", 1),
            ("probe unknown", 0),
            ("unknown call", not_supported),
            ("SRST with reserved reset type 3", invalid_param),
        ],
    )
}

/// HSM `hart_get_status` reaches the hypervisor (a `Hypercall` it answers); a remote
/// fence to another hart is a `RemoteFence` exit, one to the calling hart alone is done
/// inside; `hart_suspend` is a `Halt`; DBCN writes guest RAM to the console, and refuses a
/// high address half or memory that is not RAM.
fn sbi_os(gstage: GStageMode) -> Check {
    use axvcpu_riscv::sbi::HART_STATUS_NR;
    let (_vm, mut v) = vcpu(SelfTest::SbiOs, gstage)?;
    match next(&mut v)? {
        AxVCpuExitReason::Hypercall { nr, args } if nr == HART_STATUS_NR && args[0] == 1 => {
            v.set_return_value(1).map_err(|e| format!("{e}"))?
        }
        other => return Err(format!("hart_get_status: got {other:?}")),
    }
    let err = |e: i64| e as u64;
    report(&mut v, "hart_get_status a1", 1)?;
    report(&mut v, "hart_get_status a0", 0)?;
    match next(&mut v)? {
        AxVCpuExitReason::RemoteFence {
            target_cpu: 3,
            target_cpu_aux: 0,
            send_to_all: false,
        } => {}
        other => return Err(format!("remote_sfence_vma: got {other:?}")),
    }
    report(&mut v, "remote_sfence_vma a0", 0)?;
    report(&mut v, "remote_fence_i to this hart", 0)?;
    report(&mut v, "hfence", err(-2))?;
    match next(&mut v)? {
        AxVCpuExitReason::Halt => {}
        other => return Err(format!("hart_suspend: got {other:?}")),
    }
    report(&mut v, "hart_suspend a0", 0)?;
    report(&mut v, "hart_suspend reserved type", err(-3))?;
    report(&mut v, "DBCN write: bytes written", 5)?;
    report(&mut v, "DBCN write, high half", err(-3))?;
    report(&mut v, "DBCN write of MMIO", err(-3))?;
    match next(&mut v)? {
        AxVCpuExitReason::Hypercall { nr: HC_DONE, .. } => Ok(()),
        other => Err(format!("expected HC_DONE, got {other:?}")),
    }
}

fn read_scounteren() -> u64 {
    let v: u64;
    // SAFETY: reading a CSR has no side effects.
    unsafe { core::arch::asm!("csrr {}, scounteren", out(reg) v, options(nomem, nostack)) };
    v
}

fn write_scounteren(v: u64) {
    // SAFETY: the testbed runs no U-mode code, which is all scounteren governs.
    unsafe { core::arch::asm!("csrw scounteren, {}", in(reg) v, options(nomem, nostack)) };
}

/// `scounteren` has no VS copy: the guest's value must not reach the host, and must be
/// the guest's again after an unbind/bind.
fn shared_csrs(gstage: GStageMode) -> Check {
    const HOST: u64 = 0x2;
    let saved = read_scounteren();
    write_scounteren(HOST);
    let result = (|| {
        let (_vm, mut v) = vcpu(SelfTest::SharedCsrs, gstage)?;
        match next(&mut v)? {
            AxVCpuExitReason::Hypercall { nr: HC_READY, .. } => {}
            other => return Err(format!("expected HC_READY, got {other:?}")),
        }
        v.unbind().map_err(|e| format!("unbind: {e}"))?;
        let host = read_scounteren();
        if host != HOST {
            return Err(format!(
                "host scounteren {host:#x} after the guest ran, expected {HOST:#x}"
            ));
        }
        v.bind().map_err(|e| format!("rebind: {e}"))?;
        match next(&mut v)? {
            AxVCpuExitReason::Hypercall {
                nr: HC_REPORT,
                args,
            } if args[0] == guests::GUEST_SCOUNTEREN => Ok(()),
            other => Err(format!(
                "expected the guest to read back scounteren {:#x}, got {other:?}",
                guests::GUEST_SCOUNTEREN
            )),
        }
    })();
    write_scounteren(saved);
    result
}

/// `hfence.gvma` in VS-mode traps to the backend as a virtual instruction it does not
/// emulate: the guest takes it as an illegal instruction (scause 2, stval the instruction,
/// sepc at it) in its own handler, and goes on.
fn illegal_insn(gstage: GStageMode) -> Check {
    let (_vm, mut v) = vcpu(SelfTest::IllegalInsn, gstage)?;
    reports_then_done(
        &mut v,
        &[("scause", 2), ("stval", 0x6200_0073), ("sepc - hfence", 0)],
    )
}

/// An MMIO load that runs from RAM into the unmapped page above: the backend cannot
/// emulate half an access, so `run` fails and names it; the host carries on.
fn span(gstage: GStageMode) -> Check {
    let (_vm, mut v) = vcpu(SelfTest::Span, gstage)?;
    match v.run() {
        Err(e) if e.reason().contains("spans a page boundary") => {
            if v.state() != VCpuState::Invalid {
                return Err(format!("vCPU {:?} after a failed run", v.state()));
            }
            Ok(())
        }
        other => Err(format!(
            "expected a page-spanning MMIO error, got {other:?}"
        )),
    }
}

type Failing = FailingHal<Hal>;

/// One build: a G-stage table over [`Failing`], RAM and the block mapped, a vCPU created
/// and set up, two table changes under it (a superpage split, a far page), and a run to
/// its `wfi`. Returns the vCPU before the table, so it drops first.
fn alloc_fail_build(
    gstage: GStageMode,
    mem: &AllocFailMemory,
) -> VCpuResult<(AxVCpu<RiscvVCpu<Failing>>, GStageTable<Failing>)> {
    let rwx = MapFlags::READ | MapFlags::WRITE | MapFlags::EXECUTE;
    let mut npt = GStageTable::<Failing>::new(gstage)?;
    npt.map(
        GuestPhysAddr::from(RAM_BASE),
        mem.ram,
        mem.ram_frames * 4096,
        rwx,
    )?;
    npt.map(
        GuestPhysAddr::from(AF_BIG_GPA),
        mem.big,
        AF_BIG_FRAMES * 4096,
        rwx,
    )?;
    let builder = AxVCpu::<RiscvVCpu<Failing>>::builder(0, 0, ())?;
    // SAFETY: the table is returned with the vCPU, which drops first; the memory it maps
    // outlives every build.
    let mut v = unsafe { builder.ept_root(npt.root_paddr()) }
        .entry(GuestPhysAddr::from(RAM_BASE))
        .setup(RiscvSetupConfig {
            gstage,
            ..RiscvSetupConfig::default()
        })?;
    note_vcpu_set_up();
    npt.protect(
        GuestPhysAddr::from(AF_BIG_GPA + 0x1000),
        4096,
        MapFlags::READ,
    )?;
    npt.map(
        GuestPhysAddr::from(AF_FAR_GPA),
        mem.ram,
        4096,
        MapFlags::READ,
    )?;
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
fn alloc_fail(gstage: GStageMode) -> Check {
    // Root, tables for RAM and the block, the split, the far page's tables.
    let (points, with_vcpu) = alloc_fail_with_memory::<Hal, _>(
        16,
        &WFI.to_le_bytes(),
        |mem| alloc_fail_build(gstage, mem),
        6,
    )?;
    let mut out = hal::CONSOLE.writer();
    let _ = writeln!(
        out,
        "testbed-riscv: alloc-fail: {points} allocation points, {with_vcpu} with a set-up vCPU, each a clean NoMemory error"
    );
    Ok(())
}

/// Reads `f5` (the host's, between vCPU runs).
fn read_f5() -> u64 {
    let v: u64;
    // SAFETY: reads an FP register (sstatus.FS is on in the testbed).
    unsafe {
        core::arch::asm!(".option push", ".option arch, +d", "fmv.x.d {}, f5", ".option pop",
            out(reg) v, options(nomem, nostack))
    };
    v
}

fn write_f5(v: u64) {
    // SAFETY: writes an FP register nothing else of the testbed's uses.
    unsafe {
        core::arch::asm!(".option push", ".option arch, +d", "fmv.d.x f5, {}", ".option pop",
            in(reg) v, options(nomem, nostack))
    };
}

/// Guest FP state is the guest's own: two vCPUs on this hart each load `f5` and a rounding
/// mode, and each finds its own after the other ran; the host's `f5` is back after both
/// are unbound.
fn fp(gstage: GStageMode) -> Check {
    const HOST: u64 = 0x4000_1111_2222_3333;
    const SEEDS: [u64; 2] = [0x3ff0_0000_0000_0001, 0xc000_0000_0000_0002];
    write_f5(HOST);
    let (_vm_a, mut a) = vcpu(SelfTest::Fp, gstage)?;
    a.unbind().map_err(|e| format!("unbind: {e}"))?;
    let (_vm_b, mut b) = vcpu(SelfTest::Fp, gstage)?;
    b.unbind().map_err(|e| format!("unbind: {e}"))?;
    let step = |v: &mut AxVCpu<VCpu>, what: &str, want: Option<u64>| -> Check {
        v.bind().map_err(|e| format!("bind: {e}"))?;
        let exit = next(v);
        v.unbind().map_err(|e| format!("unbind: {e}"))?;
        match (exit?, want) {
            (AxVCpuExitReason::Hypercall { nr: HC_READY, .. }, None) => Ok(()),
            (
                AxVCpuExitReason::Hypercall {
                    nr: HC_REPORT,
                    args,
                },
                Some(w),
            ) if args[0] == w => Ok(()),
            (other, _) => Err(format!("{what}: expected {want:#x?}, got {other:?}")),
        }
    };
    for (v, seed) in [(&mut a, SEEDS[0]), (&mut b, SEEDS[1])] {
        v.set_gpr(12, seed as usize).map_err(|e| format!("{e}"))?;
        step(v, "READY", None)?;
    }
    for (v, seed) in [(&mut a, SEEDS[0]), (&mut b, SEEDS[1])] {
        step(v, "f5", Some(seed))?;
        // fcsr: frm (7:5) = 2, no exception flags.
        step(v, "fcsr", Some(2 << 5))?;
    }
    match read_f5() {
        HOST => Ok(()),
        other => Err(format!("the host's f5 is {other:#x}, not {HOST:#x}")),
    }
}

/// Runs every self-test with the G-stage mode `gstage`; `true` if all passed.
pub fn run_all(gstage: GStageMode) -> bool {
    let tests: [Test<GStageMode>; 11] = [
        ("percpu", percpu),
        ("fp", fp),
        ("sbi-os", sbi_os),
        ("timer", timer),
        ("timer-rebind", timer_rebind),
        ("ext-irq", ext_irq),
        ("sbi", sbi),
        ("shared-csrs", shared_csrs),
        ("span", span),
        ("illegal-insn", illegal_insn),
        ("alloc-fail", alloc_fail),
    ];
    let mut out = hal::CONSOLE.writer();
    axvcpu_testbed::selftest::run_all(&tests, gstage, &mut out)
}
