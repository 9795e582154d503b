//! `exception`: an exception with an error code injected in answer to a read exit.

use alloc::format;

use axvcpu::{AxErrorKind, AxVCpuExitReason};

use super::{expect_done, expect_exit, expect_report, start, step, Check};
use crate::contract::*;
use crate::{Isa, Platform};

/// #GP.
const GP: u8 = 13;

pub(crate) fn exception<P: Platform>(p: &mut P) -> Check {
    let info = p.info();
    let Some(read_reg) = info.sysreg_read else {
        return Err("the platform runs the sysreg program but names no register".into());
    };
    let (_vm, mut v) = start(p, GuestProgram::SysReg)?;
    match step(&mut v)? {
        AxVCpuExitReason::SysRegRead { addr, .. } if addr == read_reg => {}
        other => {
            return Err(format!(
                "expected SysRegRead of {read_reg:?}, got {other:?}"
            ))
        }
    }
    let injected = v.inject_exception(GP, Some(0));
    if info.isa == Isa::X86_64 {
        injected.map_err(|e| format!("inject_exception(#GP(0)): {e}"))?;
        if v.complete_read(SYSREG_READ_VALUE).is_ok() {
            return Err("complete_read accepted after the exception replaced the read".into());
        }
        // No IDT: the #GP cannot be delivered (#DF cannot either): a triple fault.
        return expect_exit(&mut v, AxVCpuExitReason::SystemDown);
    }
    match injected {
        Err(e) if e.kind() == AxErrorKind::Unsupported => {}
        other => return Err(format!("inject_exception: {other:?}, not Unsupported")),
    }
    v.complete_read(SYSREG_READ_VALUE)
        .map_err(|e| format!("complete_read after the refused exception: {e}"))?;
    expect_report(&mut v, SYSREG_READ_VALUE, "system register read")?;
    if let Some(addr) = info.sysreg_write {
        expect_exit(
            &mut v,
            AxVCpuExitReason::SysRegWrite {
                addr,
                value: SYSREG_WRITE_VALUE,
            },
        )?;
    }
    expect_done(&mut v)
}
