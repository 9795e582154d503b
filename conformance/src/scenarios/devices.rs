//! Exits a device model or hypervisor service handles: port and MMIO accesses, hypercalls,
//! halt, power off, system registers, and the register file.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;

use axvcpu::{AccessWidth, AxArchVCpu, AxVCpu, AxVCpuExitReason, Port, VCpuState};

use super::{expect_done, expect_exit, expect_report, expect_state, start, step, Check, VCpuOf};
use crate::contract::*;
use crate::{Platform, PlatformInfo, TestVm};

pub(crate) fn io_out<P: Platform>(p: &mut P) -> Check {
    let (_vm, mut v) = start(p, GuestProgram::IoOut)?;
    let widths = [AccessWidth::Byte, AccessWidth::Word, AccessWidth::Dword];
    for (i, (width, data)) in widths.into_iter().zip(IO_OUT_DATA).enumerate() {
        let port = Port(IO_PORT + 2 * i as u16);
        expect_exit(&mut v, AxVCpuExitReason::IoWrite { port, width, data })?;
    }
    expect_done(&mut v)
}

pub(crate) fn io_in<P: Platform>(p: &mut P) -> Check {
    let (_vm, mut v) = start(p, GuestProgram::IoIn)?;
    let widths = [AccessWidth::Byte, AccessWidth::Word, AccessWidth::Dword];
    for (i, width) in widths.into_iter().enumerate() {
        let port = Port(IO_PORT + 2 * i as u16);
        expect_exit(&mut v, AxVCpuExitReason::IoRead { port, width })?;
        v.complete_read(IO_IN_VALUE)
            .map_err(|e| format!("complete_read: {e}"))?;
        // `in al`/`in ax` keep the rest of rax; `in eax` zero-extends (as any 32-bit write).
        let expected = match width {
            AccessWidth::Dword => IO_IN_VALUE & width.mask(),
            _ => (IO_IN_RAX_BEFORE & !width.mask()) | (IO_IN_VALUE & width.mask()),
        };
        expect_report(&mut v, expected, &format!("in {width:?}"))?;
    }
    expect_done(&mut v)
}

const MMIO_WIDTHS: [AccessWidth; 4] = [
    AccessWidth::Byte,
    AccessWidth::Word,
    AccessWidth::Dword,
    AccessWidth::Qword,
];

pub(crate) fn mmio_write<P: Platform>(p: &mut P) -> Check {
    let (vm, mut v) = start(p, GuestProgram::MmioWrite)?;
    let base = vm.layout().mmio_base;
    for (i, (width, data)) in MMIO_WIDTHS.into_iter().zip(MMIO_WRITE_DATA).enumerate() {
        let addr = base + 8 * i;
        expect_exit(&mut v, AxVCpuExitReason::MmioWrite { addr, width, data })?;
    }
    expect_done(&mut v)
}

pub(crate) fn mmio_read<P: Platform>(p: &mut P) -> Check {
    let (vm, mut v) = start(p, GuestProgram::MmioRead)?;
    let base = vm.layout().mmio_base;
    let mut regs = BTreeSet::new();
    let mut named = 0;
    for (offset, size, signed) in MMIO_READS {
        let what = format!(
            "{}{} load at +{offset:#x}",
            if signed { "i" } else { "u" },
            size * 8
        );
        let want_addr = base + offset;
        let want_width = AccessWidth::from_size(size).ok_or("bad contract width")?;
        match step(&mut v)? {
            AxVCpuExitReason::MmioRead {
                addr,
                width,
                reg,
                signed_ext,
                ..
            } if addr == want_addr && width == want_width => {
                if let Some(reg) = reg {
                    if signed_ext != signed {
                        return Err(format!("{what}: signed_ext = {signed_ext}"));
                    }
                    regs.insert(reg);
                    named += 1;
                }
            }
            other => {
                return Err(format!(
                    "{what}: expected MmioRead at {want_addr:?}, got {other:?}"
                ))
            }
        }
        v.complete_read(MMIO_READ_VALUE)
            .map_err(|e| format!("complete_read: {e}"))?;
        let expected = if signed {
            want_width.sign_extend(MMIO_READ_VALUE)
        } else {
            MMIO_READ_VALUE & want_width.mask()
        };
        expect_report(&mut v, expected, &what)?;
    }
    // The program loads into a different register each time: a backend that decodes the
    // destination names it on every exit (or, like hosted KVM, on none), each one different.
    if named != 0 && named != MMIO_READS.len() {
        return Err(format!(
            "{named} of {} exits named the destination register",
            MMIO_READS.len()
        ));
    }
    if regs.len() != named {
        return Err(format!(
            "the program loads into {named} different registers, the exits named {} ({regs:?})",
            regs.len()
        ));
    }
    expect_done(&mut v)
}

pub(crate) fn hypercall<P: Platform>(p: &mut P) -> Check {
    let (_vm, mut v) = start(p, GuestProgram::Hypercall)?;
    expect_exit(
        &mut v,
        AxVCpuExitReason::Hypercall {
            nr: HYPERCALL_NR,
            args: HYPERCALL_ARGS,
        },
    )?;
    v.set_return_value(HYPERCALL_RET as usize)
        .map_err(|e| format!("set_return_value: {e}"))?;
    expect_report(&mut v, HYPERCALL_RET, "hypercall return value")?;
    expect_done(&mut v)
}

pub(crate) fn halt<P: Platform>(p: &mut P) -> Check {
    let (_vm, mut v) = start(p, GuestProgram::Halt)?;
    expect_exit(&mut v, AxVCpuExitReason::Halt)?;
    expect_state(&v, VCpuState::Blocked, "after Halt")?;
    expect_done(&mut v)?;
    expect_state(&v, VCpuState::Ready, "after resuming from Halt")
}

pub(crate) fn system_down<P: Platform>(p: &mut P) -> Check {
    let (_vm, mut v) = start(p, GuestProgram::SystemDown)?;
    expect_exit(&mut v, AxVCpuExitReason::SystemDown)
}

pub(crate) fn sysreg<P: Platform>(p: &mut P) -> Check {
    let (_vm, mut v) = start_sysreg_read(p)?;
    finish_sysreg(&mut v, &p.info(), "complete_read")
}

/// The [`SysReg`](GuestProgram::SysReg) program started and run to its read of
/// `PlatformInfo::sysreg_read`, which waits for `complete_read`.
pub(super) fn start_sysreg_read<P: Platform>(p: &mut P) -> Result<(P::Vm, VCpuOf<P>), String> {
    let Some(read_reg) = p.info().sysreg_read else {
        return Err("the platform runs the sysreg program but names no register".into());
    };
    let (vm, mut v) = start(p, GuestProgram::SysReg)?;
    match step(&mut v)? {
        AxVCpuExitReason::SysRegRead { addr, .. } if addr == read_reg => Ok((vm, v)),
        other => Err(format!(
            "expected SysRegRead of {read_reg:?}, got {other:?}"
        )),
    }
}

/// The rest of the [`SysReg`](GuestProgram::SysReg) program after its read exit: the read
/// answered with [`SYSREG_READ_VALUE`] (a failure of it reported as `context`), the guest
/// reports it, writes `sysreg_write` if the platform has one, and is done.
pub(super) fn finish_sysreg<A: AxArchVCpu>(
    v: &mut AxVCpu<A>,
    info: &PlatformInfo,
    context: &str,
) -> Check {
    v.complete_read(SYSREG_READ_VALUE)
        .map_err(|e| format!("{context}: {e}"))?;
    expect_report(v, SYSREG_READ_VALUE, "system register read")?;
    if let Some(addr) = info.sysreg_write {
        expect_exit(
            v,
            AxVCpuExitReason::SysRegWrite {
                addr,
                value: SYSREG_WRITE_VALUE,
            },
        )?;
    }
    expect_done(v)
}

/// A value per register that no two registers share.
fn pattern(reg: usize) -> usize {
    0x0102_0304_0506_0708_u64.wrapping_mul(reg as u64 + 1) as usize ^ 0x5a
}

pub(crate) fn regs<P: Platform>(p: &mut P) -> Check {
    let info = p.info();
    let (vm, mut v) = start(p, GuestProgram::Regs)?;
    let (first, end) = info.gpr_range;
    for reg in first..end {
        v.set_gpr(reg, pattern(reg))
            .map_err(|e| format!("set_gpr({reg}): {e}"))?;
    }
    if v.set_gpr(end.max(64), 0).is_ok() || v.get_gpr(end.max(64)).is_ok() {
        return Err("an out-of-range register number was accepted".into());
    }
    let entry = vm.entry().as_usize();
    // `pc` reads back what `set_pc` wrote; then back to the entry for the run.
    let elsewhere = entry + 2 * info.halt_insn_len;
    v.set_pc(elsewhere).map_err(|e| format!("set_pc: {e}"))?;
    let pc = v.pc().map_err(|e| format!("pc: {e}"))?;
    if pc != elsewhere {
        return Err(format!("pc reads {pc:#x} after set_pc({elsewhere:#x})"));
    }
    v.set_pc(entry).map_err(|e| format!("set_pc: {e}"))?;
    for reg in first..end {
        let got = v.get_gpr(reg).map_err(|e| format!("get_gpr({reg}): {e}"))?;
        if got != pattern(reg) {
            return Err(format!(
                "register {reg} reads {got:#x} before run, set {:#x}",
                pattern(reg)
            ));
        }
    }
    expect_exit(&mut v, AxVCpuExitReason::Halt)?;
    for reg in first..end {
        let got = v.get_gpr(reg).map_err(|e| format!("get_gpr({reg}): {e}"))?;
        if got != pattern(reg) {
            return Err(format!(
                "register {reg} reads {got:#x} after Halt, set {:#x}",
                pattern(reg)
            ));
        }
    }
    let pc = v.pc().map_err(|e| format!("pc: {e}"))?;
    if pc != entry + info.halt_insn_len {
        return Err(format!(
            "pc {pc:#x} after Halt, expected {:#x}",
            entry + info.halt_insn_len
        ));
    }
    // `set_pc` steers the guest: moved back to the halt, it halts again instead of going on
    // to `HC_DONE`.
    v.set_pc(entry).map_err(|e| format!("set_pc: {e}"))?;
    expect_exit(&mut v, AxVCpuExitReason::Halt)
        .map_err(|e| format!("run after set_pc back to the halt: {e}"))?;
    let pc = v.pc().map_err(|e| format!("pc: {e}"))?;
    if pc != entry + info.halt_insn_len {
        return Err(format!(
            "pc {pc:#x} after the second Halt, expected {:#x}",
            entry + info.halt_insn_len
        ));
    }
    expect_done(&mut v)
}

pub(crate) fn halt_timer<P: Platform>(p: &mut P) -> Check {
    let wait = super::Waiter::of(p);
    let (_vm, mut v) = start(p, GuestProgram::HaltTimer)?;
    if let Some(d) = v.wake_deadline() {
        return Err(format!(
            "a wake deadline {d:#x} before the guest armed its timer"
        ));
    }
    let deadline = match step(&mut v)? {
        AxVCpuExitReason::Hypercall {
            nr: HC_REPORT,
            args,
        } => args[0],
        other => return Err(format!("expected HC_REPORT(deadline), got {other:?}")),
    };
    let started = (wait.clock)();
    let mut armed_halts = 0;
    loop {
        match step(&mut v)? {
            AxVCpuExitReason::Halt => {}
            other => return Err(format!("expected Halt, got {other:?}")),
        }
        match v.wake_deadline() {
            Some(d) if d == deadline => armed_halts += 1,
            // The guest saw its deadline pass, disarmed the timer and halted once more.
            None if armed_halts > 0 => break,
            other => {
                return Err(format!(
                "after {armed_halts} halts: wake_deadline {other:x?}, the guest armed {deadline:x}"
            ))
            }
        }
        if (wait.clock)().saturating_sub(started) > 1_000_000_000 {
            return Err("the guest's deadline did not pass within 1 s of halts".into());
        }
    }
    expect_done(&mut v)
}
