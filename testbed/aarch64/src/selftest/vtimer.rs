//! The guest's virtual timer through the vGIC: a guest arms `CNTV_*` 2^20 ticks ahead (about
//! 17 ms at QEMU's 62.5 MHz), unmasks IRQs at its GIC CPU interface and waits in `wfi`;
//! its handler acknowledges at `GICC_IAR`, turns the timer off (so its level drops), ends
//! the interrupt and counts it; the guest arms the timer a second time (the backend must
//! have unmasked its PPI at the first end) and waits again; then it reports the INTID it
//! took and how often, and is done. A backend that loses the timer hangs the run (QEMU's
//! time-out); one that leaves it asserted makes an interrupt storm. The host
//! sleeps in `wfi` whenever the vCPU halts with nothing pending, as a hypervisor does.

use alloc::format;

use axvcpu::{AxVCpuExitReason, VCpuState};
use axvcpu_aarch64::gic::VTIMER_PPI;
use axvcpu_aarch64::Aarch64SetupConfig;
use axvcpu_conformance::contract::{HC_DONE, HC_REPORT};
use axvcpu_testbed::selftest::Check;

use super::{bound, step};
use crate::arch::Vm;
use crate::guests::GICC_IPA;
use crate::hal;

core::arch::global_asm!(
    r#"
    .section .rodata.guests, "a"
    .balign 0x800
    .global guest_vtimer
guest_vtimer:
    movz x9, #({gicc} & 0xffff)
    movk x9, #(({gicc} >> 16) & 0xffff), lsl #16
    mov w10, #0xff
    str w10, [x9, #4]
    mov w10, #1
    str w10, [x9, #0]
    adr x11, 2f
    msr vbar_el1, x11
    mov x20, #0
    mov x21, #1023
    bl 6f
    msr daifclr, #2
1:  cbnz x20, 7f
    wfi
    b 1b
7:  bl 6f
8:  cmp x20, #2
    b.eq 3f
    wfi
    b 8b
6:  mrs x12, cntvct_el0
    add x12, x12, #(1 << 20)
    msr cntv_cval_el0, x12
    mov x12, #1
    msr cntv_ctl_el0, x12
    isb
    ret
3:  msr daifset, #2
    mov x1, x21
    mov x2, x20
    mov x0, #{report}
    hvc #0
4:  mov x0, #{done}
    hvc #0
    b 4b
    .balign 0x800
2:  .skip 0x280
    ldr w10, [x9, #0xc]
    and x13, x10, #0x3ff
    cmp x13, #{timer}
    b.ne 5f
    msr cntv_ctl_el0, xzr
    isb
    mov x21, x13
    add x20, x20, #1
5:  str w10, [x9, #0x10]
    eret
    .global guest_vtimer_end
guest_vtimer_end:
"#,
    gicc = const GICC_IPA,
    report = const HC_REPORT,
    done = const HC_DONE,
    timer = const VTIMER_PPI,
);

/// The most exits the run may take: a timer interrupt that stayed asserted after the guest
/// turned the timer off would be a storm of them.
const MAX_EXITS: usize = 200;

/// The guest takes its virtual timer's INTID 27 once per deadline, through the list
/// registers, without an interrupt storm, with the host asleep in `wfi` while it waits.
pub fn vtimer(_: ()) -> Check {
    let vm = Vm::new(
        axvcpu_testbed::guest_code!(guest_vtimer, guest_vtimer_end),
        Aarch64SetupConfig {
            vgic: true,
            ..Aarch64SetupConfig::default()
        },
    )
    .map_err(|e| format!("VM: {e}"))?;
    let mut v = bound(&vm, 0)?;
    for _ in 0..MAX_EXITS {
        match step(&mut v)? {
            AxVCpuExitReason::Halt => {
                if v.state() == VCpuState::Blocked {
                    hal::wait_for_interrupt();
                }
            }
            AxVCpuExitReason::Hypercall {
                nr: HC_REPORT,
                args,
            } => {
                if (args[0], args[1]) != (VTIMER_PPI as u64, 2) {
                    return Err(format!(
                        "the guest took INTID {} {} times, not 27 twice",
                        args[0], args[1]
                    ));
                }
            }
            AxVCpuExitReason::Hypercall { nr: HC_DONE, .. } => return Ok(()),
            other => return Err(format!("unexpected exit {other:?}")),
        }
    }
    Err(format!("more than {MAX_EXITS} exits: an interrupt storm?"))
}
