//! The world switch: enter the guest with `eret`, come back through the backend's
//! `VBAR_EL2` vector table.
//!
//! `axvcpu_aarch64_run_guest(regs)` saves the host's callee-saved state (`x19..x30`, `sp`,
//! `d8..d15`, `TPIDR_EL2`, `VBAR_EL2`) into `regs`, points `VBAR_EL2` at
//! `axvcpu_aarch64_vectors` and `TPIDR_EL2` at `regs`, loads `ELR_EL2`, `SPSR_EL2` and
//! `x0..x30`, and `eret`s to EL1.
//!
//! FP/SIMD is switched lazily: a guest that has not used it runs with `CPTR_EL2.TFP` set,
//! so its registers stay the host's and are never exposed (any access traps, EC 0x07). The
//! backend then sets `Regs::fp_eager` and the guest runs the instruction again; from then
//! on every entry also saves the host's `FPCR`/`FPSR` and loads the guest's `q0..q31`,
//! `FPCR`, `FPSR`, and every exit saves them and restores the host's (`d8..d15` are
//! restored on every exit).
//!
//! Any exception the guest takes to EL2 (synchronous, IRQ, FIQ, SError from a lower EL)
//! enters the table, which pushes the guest's `x0`/`x1` on the EL2 stack (below the host's
//! saved `sp`, unused), records which of the four it was, then saves every guest GPR,
//! `ELR_EL2`, `SPSR_EL2`, the trap registers `ESR_EL2`, `FAR_EL2`, `HPFAR_EL2` and the
//! guest's FP/SIMD state into `regs` *before* any Rust code runs, restores the host, and
//! returns from `axvcpu_aarch64_run_guest`.
//!
//! The guest's EL1 system registers (`SCTLR_EL1`, `TTBR*_EL1`, `SP_EL1`, ...) are not
//! touched here: the host at EL2 never uses them, so they are swapped when a vCPU is bound
//! to or unbound from a CPU ([`El1Regs`](crate::regs::El1Regs)).
//!
//! Exceptions taken from EL2 itself while the table is installed (none are expected: the
//! window is the few instructions around `eret`) park the CPU in a loop.

use core::mem::offset_of;

use crate::regs::Regs;

/// Which vector the exit came through (`Regs::exit_kind`), as the table records it.
pub(crate) mod kind {
    /// Synchronous exception from a lower EL.
    pub const SYNC: u64 = 0;
    /// IRQ from a lower EL.
    pub const IRQ: u64 = 1;
    /// FIQ from a lower EL.
    pub const FIQ: u64 = 2;
    /// SError from a lower EL.
    pub const SERROR: u64 = 3;
}

// The assembly addresses `x0..x30` from the start of `Regs`.
const _: () = assert!(offset_of!(Regs, x) == 0);

#[cfg(target_arch = "aarch64")]
macro_rules! switch_asm {
    ($($tt:tt)*) => {
        core::arch::global_asm!(
            $($tt)*,
            ELR = const offset_of!(Regs, elr),
            SPSR = const offset_of!(Regs, spsr),
            HX = const offset_of!(Regs, host_x),
            HD = const offset_of!(Regs, host_d),
            HSP = const offset_of!(Regs, host_sp),
            HTPIDR = const offset_of!(Regs, host_tpidr),
            HVBAR = const offset_of!(Regs, host_vbar),
            HFPCR = const offset_of!(Regs, host_fpcr),
            HFPSR = const offset_of!(Regs, host_fpsr),
            FPQ = const offset_of!(Regs, fp_q),
            FPCR = const offset_of!(Regs, fpcr),
            FPSR = const offset_of!(Regs, fpsr),
            FPEAGER = const offset_of!(Regs, fp_eager),
            CPTR_GUEST_TRAP_FP = const crate::percpu::CPTR_EL2_VALUE | (1 << 10),
            CPTR_HOST = const crate::percpu::CPTR_EL2_VALUE,
            KIND = const offset_of!(Regs, exit_kind),
            ESR = const offset_of!(Regs, esr),
            FAR = const offset_of!(Regs, far),
            HPFAR = const offset_of!(Regs, hpfar),
        );
    };
}

#[cfg(target_arch = "aarch64")]
switch_asm!(
    r#"
    .section .text.axvcpu_aarch64_switch, "ax"
    .balign 4
    .global axvcpu_aarch64_run_guest
axvcpu_aarch64_run_guest:
    stp x19, x20, [x0, #{HX} + 0]
    stp x21, x22, [x0, #{HX} + 16]
    stp x23, x24, [x0, #{HX} + 32]
    stp x25, x26, [x0, #{HX} + 48]
    stp x27, x28, [x0, #{HX} + 64]
    stp x29, x30, [x0, #{HX} + 80]
    stp d8, d9, [x0, #{HD} + 0]
    stp d10, d11, [x0, #{HD} + 16]
    stp d12, d13, [x0, #{HD} + 32]
    stp d14, d15, [x0, #{HD} + 48]
    mov x1, sp
    str x1, [x0, #{HSP}]
    mrs x1, tpidr_el2
    str x1, [x0, #{HTPIDR}]
    msr tpidr_el2, x0
    mrs x1, vbar_el2
    str x1, [x0, #{HVBAR}]
    adr x1, axvcpu_aarch64_vectors
    msr vbar_el2, x1

    ldr x1, [x0, #{FPEAGER}]
    cbz x1, 1f
    mrs x1, fpcr
    str x1, [x0, #{HFPCR}]
    mrs x1, fpsr
    str x1, [x0, #{HFPSR}]
    add x1, x0, #{FPQ}
    ldp q0, q1, [x1], #32
    ldp q2, q3, [x1], #32
    ldp q4, q5, [x1], #32
    ldp q6, q7, [x1], #32
    ldp q8, q9, [x1], #32
    ldp q10, q11, [x1], #32
    ldp q12, q13, [x1], #32
    ldp q14, q15, [x1], #32
    ldp q16, q17, [x1], #32
    ldp q18, q19, [x1], #32
    ldp q20, q21, [x1], #32
    ldp q22, q23, [x1], #32
    ldp q24, q25, [x1], #32
    ldp q26, q27, [x1], #32
    ldp q28, q29, [x1], #32
    ldp q30, q31, [x1], #32
    ldr x1, [x0, #{FPCR}]
    msr fpcr, x1
    ldr x1, [x0, #{FPSR}]
    msr fpsr, x1
    ldr x1, ={CPTR_HOST}
    b 2f
1:  ldr x1, ={CPTR_GUEST_TRAP_FP}
2:  msr cptr_el2, x1

    ldr x1, [x0, #{ELR}]
    msr elr_el2, x1
    ldr x1, [x0, #{SPSR}]
    msr spsr_el2, x1

    ldp x2, x3, [x0, #16]
    ldp x4, x5, [x0, #32]
    ldp x6, x7, [x0, #48]
    ldp x8, x9, [x0, #64]
    ldp x10, x11, [x0, #80]
    ldp x12, x13, [x0, #96]
    ldp x14, x15, [x0, #112]
    ldp x16, x17, [x0, #128]
    ldp x18, x19, [x0, #144]
    ldp x20, x21, [x0, #160]
    ldp x22, x23, [x0, #176]
    ldp x24, x25, [x0, #192]
    ldp x26, x27, [x0, #208]
    ldp x28, x29, [x0, #224]
    ldr x30, [x0, #240]
    ldp x0, x1, [x0, #0]
    eret
    dsb nsh
    isb

    .macro AXV_EXIT n
    .balign 0x80
    stp x0, x1, [sp, #-16]!
    mov x0, #\n
    b axvcpu_aarch64_exit
    .endm
    .macro AXV_PARK
    .balign 0x80
    b .
    .endm

    .balign 0x800
    .global axvcpu_aarch64_vectors
axvcpu_aarch64_vectors:
    AXV_PARK
    AXV_PARK
    AXV_PARK
    AXV_PARK
    AXV_PARK
    AXV_PARK
    AXV_PARK
    AXV_PARK
    AXV_EXIT 0
    AXV_EXIT 1
    AXV_EXIT 2
    AXV_EXIT 3
    AXV_PARK
    AXV_PARK
    AXV_PARK
    AXV_PARK

    .balign 0x80
axvcpu_aarch64_exit:
    mrs x1, tpidr_el2
    str x0, [x1, #{KIND}]
    stp x2, x3, [x1, #16]
    stp x4, x5, [x1, #32]
    stp x6, x7, [x1, #48]
    stp x8, x9, [x1, #64]
    stp x10, x11, [x1, #80]
    stp x12, x13, [x1, #96]
    stp x14, x15, [x1, #112]
    stp x16, x17, [x1, #128]
    stp x18, x19, [x1, #144]
    stp x20, x21, [x1, #160]
    stp x22, x23, [x1, #176]
    stp x24, x25, [x1, #192]
    stp x26, x27, [x1, #208]
    stp x28, x29, [x1, #224]
    str x30, [x1, #240]
    ldp x2, x3, [sp], #16
    stp x2, x3, [x1, #0]
    mov x0, x1

    mrs x1, elr_el2
    str x1, [x0, #{ELR}]
    mrs x1, spsr_el2
    str x1, [x0, #{SPSR}]
    mrs x1, esr_el2
    str x1, [x0, #{ESR}]
    mrs x1, far_el2
    str x1, [x0, #{FAR}]
    mrs x1, hpfar_el2
    str x1, [x0, #{HPFAR}]

    ldr x1, ={CPTR_HOST}
    msr cptr_el2, x1
    isb
    ldr x1, [x0, #{FPEAGER}]
    cbz x1, 1f
    add x1, x0, #{FPQ}
    stp q0, q1, [x1], #32
    stp q2, q3, [x1], #32
    stp q4, q5, [x1], #32
    stp q6, q7, [x1], #32
    stp q8, q9, [x1], #32
    stp q10, q11, [x1], #32
    stp q12, q13, [x1], #32
    stp q14, q15, [x1], #32
    stp q16, q17, [x1], #32
    stp q18, q19, [x1], #32
    stp q20, q21, [x1], #32
    stp q22, q23, [x1], #32
    stp q24, q25, [x1], #32
    stp q26, q27, [x1], #32
    stp q28, q29, [x1], #32
    stp q30, q31, [x1], #32
    mrs x1, fpcr
    str x1, [x0, #{FPCR}]
    mrs x1, fpsr
    str x1, [x0, #{FPSR}]
    ldr x1, [x0, #{HFPCR}]
    msr fpcr, x1
    ldr x1, [x0, #{HFPSR}]
    msr fpsr, x1

1:  ldr x1, [x0, #{HVBAR}]
    msr vbar_el2, x1
    ldr x1, [x0, #{HTPIDR}]
    msr tpidr_el2, x1
    isb
    ldr x1, [x0, #{HSP}]
    mov sp, x1
    ldp d8, d9, [x0, #{HD} + 0]
    ldp d10, d11, [x0, #{HD} + 16]
    ldp d12, d13, [x0, #{HD} + 32]
    ldp d14, d15, [x0, #{HD} + 48]
    ldp x19, x20, [x0, #{HX} + 0]
    ldp x21, x22, [x0, #{HX} + 16]
    ldp x23, x24, [x0, #{HX} + 32]
    ldp x25, x26, [x0, #{HX} + 48]
    ldp x27, x28, [x0, #{HX} + 64]
    ldp x29, x30, [x0, #{HX} + 80]
    ret
    .ltorg
"#
);

#[cfg(target_arch = "aarch64")]
extern "C" {
    /// Runs the guest until it takes an exception to EL2.
    ///
    /// # Safety
    /// `regs` must stay valid and unaliased for the whole call; EL2 interrupts must be
    /// masked; `HCR_EL2` and `VTTBR_EL2` must confine the guest to its own memory (see
    /// [`set_hcr`](crate::hw::set_hcr) and [`set_vttbr`](crate::hw::set_vttbr)).
    pub(crate) fn axvcpu_aarch64_run_guest(regs: *mut Regs);
}
