//! `exception`: an exception with an error code injected in answer to a read exit.

use alloc::format;

use axvcpu::{AxErrorKind, AxVCpuExitReason};

use super::{expect_exit, Check};
use crate::contract::*;
use crate::{Isa, Platform};

/// #GP.
const GP: u8 = 13;

pub(crate) fn exception<P: Platform>(p: &mut P) -> Check {
    let info = p.info();
    let (_vm, mut v) = super::devices::start_sysreg_read(p)?;
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
    super::devices::finish_sysreg(&mut v, &info, "complete_read after the refused exception")
}
