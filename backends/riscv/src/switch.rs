//! The world switch: enter the guest with `sret`, come back through `stvec`.
//!
//! `axvcpu_riscv_run_guest(regs)` saves the host's callee-saved registers and the CSRs the
//! guest changes (`sstatus`, `hstatus`, `stvec`, `sscratch`) into `regs`, loads the guest's
//! GPRs, `sstatus`, `hstatus` and `sepc`, and `sret`s into VS/VU-mode. Any trap taken to
//! HS-mode while the guest runs lands in `axvcpu_riscv_guest_exit`, which saves every guest
//! GPR, `sepc` and the trap CSRs (`scause`, `stval`, `htval`, `htinst`) into `regs` *before*
//! any Rust code runs, restores the host, and returns from `axvcpu_riscv_run_guest`. So the
//! exit reason is in memory when Rust looks at it, whatever the optimiser does.
//!
//! The VS-level CSRs (`vsstatus`, `vsatp`, ...) are not touched here: the host never uses
//! them, so they are swapped when a vCPU is bound to or unbound from a hart.

use core::mem::offset_of;

use crate::regs::{FpRegs, Regs};

macro_rules! switch_asm {
    ($($tt:tt)*) => {
        core::arch::global_asm!(
            $($tt)*,
            G = const offset_of!(Regs, guest_gpr),
            G_SSTATUS = const offset_of!(Regs, guest_sstatus),
            G_HSTATUS = const offset_of!(Regs, guest_hstatus),
            G_SEPC = const offset_of!(Regs, guest_sepc),
            H = const offset_of!(Regs, host_gpr),
            H_SSTATUS = const offset_of!(Regs, host_sstatus),
            H_HSTATUS = const offset_of!(Regs, host_hstatus),
            H_STVEC = const offset_of!(Regs, host_stvec),
            H_SSCRATCH = const offset_of!(Regs, host_sscratch),
            T_SCAUSE = const offset_of!(Regs, trap_scause),
            T_STVAL = const offset_of!(Regs, trap_stval),
            T_HTVAL = const offset_of!(Regs, trap_htval),
            T_HTINST = const offset_of!(Regs, trap_htinst),
        );
    };
}

switch_asm!(
    r#"
    .section .text.axvcpu_riscv_switch, "ax"
    .balign 4
    .global axvcpu_riscv_run_guest
axvcpu_riscv_run_guest:
    sd ra, {H}+1*8(a0)
    sd sp, {H}+2*8(a0)
    sd gp, {H}+3*8(a0)
    sd tp, {H}+4*8(a0)
    sd s0, {H}+8*8(a0)
    sd s1, {H}+9*8(a0)
    sd s2, {H}+18*8(a0)
    sd s3, {H}+19*8(a0)
    sd s4, {H}+20*8(a0)
    sd s5, {H}+21*8(a0)
    sd s6, {H}+22*8(a0)
    sd s7, {H}+23*8(a0)
    sd s8, {H}+24*8(a0)
    sd s9, {H}+25*8(a0)
    sd s10, {H}+26*8(a0)
    sd s11, {H}+27*8(a0)

    ld t1, {G_SSTATUS}(a0)
    csrrw t1, sstatus, t1
    sd t1, {H_SSTATUS}(a0)
    ld t1, {G_HSTATUS}(a0)
    csrrw t1, 0x600, t1
    sd t1, {H_HSTATUS}(a0)
    ld t1, {G_SEPC}(a0)
    csrw sepc, t1
    la t1, axvcpu_riscv_guest_exit
    csrrw t1, stvec, t1
    sd t1, {H_STVEC}(a0)
    csrrw t1, sscratch, a0
    sd t1, {H_SSCRATCH}(a0)

    ld x1, {G}+1*8(a0)
    ld x2, {G}+2*8(a0)
    ld x3, {G}+3*8(a0)
    ld x4, {G}+4*8(a0)
    ld x5, {G}+5*8(a0)
    ld x6, {G}+6*8(a0)
    ld x7, {G}+7*8(a0)
    ld x8, {G}+8*8(a0)
    ld x9, {G}+9*8(a0)
    ld x11, {G}+11*8(a0)
    ld x12, {G}+12*8(a0)
    ld x13, {G}+13*8(a0)
    ld x14, {G}+14*8(a0)
    ld x15, {G}+15*8(a0)
    ld x16, {G}+16*8(a0)
    ld x17, {G}+17*8(a0)
    ld x18, {G}+18*8(a0)
    ld x19, {G}+19*8(a0)
    ld x20, {G}+20*8(a0)
    ld x21, {G}+21*8(a0)
    ld x22, {G}+22*8(a0)
    ld x23, {G}+23*8(a0)
    ld x24, {G}+24*8(a0)
    ld x25, {G}+25*8(a0)
    ld x26, {G}+26*8(a0)
    ld x27, {G}+27*8(a0)
    ld x28, {G}+28*8(a0)
    ld x29, {G}+29*8(a0)
    ld x30, {G}+30*8(a0)
    ld x31, {G}+31*8(a0)
    ld x10, {G}+10*8(a0)
    sret

    .balign 4
    .global axvcpu_riscv_guest_exit
axvcpu_riscv_guest_exit:
    csrrw a0, sscratch, a0
    sd x1, {G}+1*8(a0)
    sd x2, {G}+2*8(a0)
    sd x3, {G}+3*8(a0)
    sd x4, {G}+4*8(a0)
    sd x5, {G}+5*8(a0)
    sd x6, {G}+6*8(a0)
    sd x7, {G}+7*8(a0)
    sd x8, {G}+8*8(a0)
    sd x9, {G}+9*8(a0)
    sd x11, {G}+11*8(a0)
    sd x12, {G}+12*8(a0)
    sd x13, {G}+13*8(a0)
    sd x14, {G}+14*8(a0)
    sd x15, {G}+15*8(a0)
    sd x16, {G}+16*8(a0)
    sd x17, {G}+17*8(a0)
    sd x18, {G}+18*8(a0)
    sd x19, {G}+19*8(a0)
    sd x20, {G}+20*8(a0)
    sd x21, {G}+21*8(a0)
    sd x22, {G}+22*8(a0)
    sd x23, {G}+23*8(a0)
    sd x24, {G}+24*8(a0)
    sd x25, {G}+25*8(a0)
    sd x26, {G}+26*8(a0)
    sd x27, {G}+27*8(a0)
    sd x28, {G}+28*8(a0)
    sd x29, {G}+29*8(a0)
    sd x30, {G}+30*8(a0)
    sd x31, {G}+31*8(a0)
    csrr t0, sscratch
    sd t0, {G}+10*8(a0)

    csrr t0, sepc
    sd t0, {G_SEPC}(a0)
    csrr t0, scause
    sd t0, {T_SCAUSE}(a0)
    csrr t0, stval
    sd t0, {T_STVAL}(a0)
    csrr t0, 0x643
    sd t0, {T_HTVAL}(a0)
    csrr t0, 0x64a
    sd t0, {T_HTINST}(a0)

    ld t1, {H_SSCRATCH}(a0)
    csrw sscratch, t1
    ld t1, {H_STVEC}(a0)
    csrw stvec, t1
    ld t1, {H_HSTATUS}(a0)
    csrrw t1, 0x600, t1
    sd t1, {G_HSTATUS}(a0)
    ld t1, {H_SSTATUS}(a0)
    csrrw t1, sstatus, t1
    sd t1, {G_SSTATUS}(a0)

    ld ra, {H}+1*8(a0)
    ld sp, {H}+2*8(a0)
    ld gp, {H}+3*8(a0)
    ld tp, {H}+4*8(a0)
    ld s0, {H}+8*8(a0)
    ld s1, {H}+9*8(a0)
    ld s2, {H}+18*8(a0)
    ld s3, {H}+19*8(a0)
    ld s4, {H}+20*8(a0)
    ld s5, {H}+21*8(a0)
    ld s6, {H}+22*8(a0)
    ld s7, {H}+23*8(a0)
    ld s8, {H}+24*8(a0)
    ld s9, {H}+25*8(a0)
    ld s10, {H}+26*8(a0)
    ld s11, {H}+27*8(a0)
    ret

    // u64 axvcpu_riscv_hlvx_hu(u64 gva, u64 guest_hstatus, u64 out[2])
    // Reads a halfword of guest instruction memory as the guest would fetch it. A fault is
    // caught by the local handler (out[0] = 1, out[1] = its scause) instead of reaching the
    // host's trap handler. Interrupts are off throughout (the whole sstatus is restored at
    // the end): a host interrupt taken here would land on the local handler and be mistaken
    // for a fault of the read.
    .balign 4
    .global axvcpu_riscv_hlvx_hu
axvcpu_riscv_hlvx_hu:
    csrrci t3, sstatus, 2
    csrrw a1, 0x600, a1
    csrr t2, stvec
    la t0, 1f
    csrw stvec, t0
    li t1, 0
    li t4, 0
    .word 0x64354573        // hlvx.hu a0, (a0)
    j 2f
    .balign 4
1:  li t1, 1
    csrr t4, scause
    li a0, 0
    la t0, 2f
    csrw sepc, t0
    sret
2:  csrw stvec, t2
    csrw 0x600, a1
    csrw sstatus, t3
    sd t1, 0(a2)
    sd t4, 8(a2)
    ret

    // u64 axvcpu_riscv_probe_h(void): reads hstatus with traps caught (and interrupts off,
    // as above); returns 1 + the scause of the trap, or 0 when the H extension is there.
    .balign 4
    .global axvcpu_riscv_probe_h
axvcpu_riscv_probe_h:
    csrrci t3, sstatus, 2
    csrr t2, stvec
    la t0, 1f
    csrw stvec, t0
    li a0, 0
    csrr t1, 0x600
    j 2f
    .balign 4
1:  csrr a0, scause
    addi a0, a0, 1
    la t0, 2f
    csrw sepc, t0
    sret
2:  csrw stvec, t2
    csrw sstatus, t3
    ret
    // void axvcpu_riscv_fp_save(FpRegs *) / axvcpu_riscv_fp_restore(const FpRegs *):
    // f0..f31 and fcsr, with sstatus.FS turned on for the copy and put back as it was.
    // The routines need D whatever the target's own features say.
    .option push
    .option arch, +d
    .balign 4
    .global axvcpu_riscv_fp_save
axvcpu_riscv_fp_save:
    li t1, 0x6000
    csrrs t0, sstatus, t1
    fsd f0, 0(a0)
    fsd f1, 8(a0)
    fsd f2, 16(a0)
    fsd f3, 24(a0)
    fsd f4, 32(a0)
    fsd f5, 40(a0)
    fsd f6, 48(a0)
    fsd f7, 56(a0)
    fsd f8, 64(a0)
    fsd f9, 72(a0)
    fsd f10, 80(a0)
    fsd f11, 88(a0)
    fsd f12, 96(a0)
    fsd f13, 104(a0)
    fsd f14, 112(a0)
    fsd f15, 120(a0)
    fsd f16, 128(a0)
    fsd f17, 136(a0)
    fsd f18, 144(a0)
    fsd f19, 152(a0)
    fsd f20, 160(a0)
    fsd f21, 168(a0)
    fsd f22, 176(a0)
    fsd f23, 184(a0)
    fsd f24, 192(a0)
    fsd f25, 200(a0)
    fsd f26, 208(a0)
    fsd f27, 216(a0)
    fsd f28, 224(a0)
    fsd f29, 232(a0)
    fsd f30, 240(a0)
    fsd f31, 248(a0)
    frcsr t2
    sd t2, 256(a0)
    and t0, t0, t1
    xor t0, t0, t1
    csrc sstatus, t0
    ret

    .balign 4
    .global axvcpu_riscv_fp_restore
axvcpu_riscv_fp_restore:
    li t1, 0x6000
    csrrs t0, sstatus, t1
    fld f0, 0(a0)
    fld f1, 8(a0)
    fld f2, 16(a0)
    fld f3, 24(a0)
    fld f4, 32(a0)
    fld f5, 40(a0)
    fld f6, 48(a0)
    fld f7, 56(a0)
    fld f8, 64(a0)
    fld f9, 72(a0)
    fld f10, 80(a0)
    fld f11, 88(a0)
    fld f12, 96(a0)
    fld f13, 104(a0)
    fld f14, 112(a0)
    fld f15, 120(a0)
    fld f16, 128(a0)
    fld f17, 136(a0)
    fld f18, 144(a0)
    fld f19, 152(a0)
    fld f20, 160(a0)
    fld f21, 168(a0)
    fld f22, 176(a0)
    fld f23, 184(a0)
    fld f24, 192(a0)
    fld f25, 200(a0)
    fld f26, 208(a0)
    fld f27, 216(a0)
    fld f28, 224(a0)
    fld f29, 232(a0)
    fld f30, 240(a0)
    fld f31, 248(a0)
    ld t2, 256(a0)
    fscsr t2
    and t0, t0, t1
    xor t0, t0, t1
    csrc sstatus, t0
    ret
    .option pop
"#
);

extern "C" {
    /// Runs the guest until it traps to HS-mode. `regs` must stay valid and unaliased for
    /// the whole call.
    pub(crate) fn axvcpu_riscv_run_guest(regs: *mut Regs);
    fn axvcpu_riscv_hlvx_hu(gva: u64, guest_hstatus: u64, out: *mut [u64; 2]) -> u64;
    fn axvcpu_riscv_probe_h() -> u64;
    fn axvcpu_riscv_fp_save(fp: *mut FpRegs);
    fn axvcpu_riscv_fp_restore(fp: *const FpRegs);
}

/// Copies the hart's floating-point registers (`f0..f31`, `fcsr`) into `fp`.
pub(crate) fn fp_save(fp: &mut FpRegs) {
    // SAFETY: the routine writes the 33 words of `fp` (a valid, exclusive reference to a
    // `#[repr(C)]` struct of that layout) and touches only FP registers and sstatus.FS,
    // which it puts back.
    unsafe { axvcpu_riscv_fp_save(fp) }
}

/// Loads the hart's floating-point registers from `fp`.
pub(crate) fn fp_restore(fp: &FpRegs) {
    // SAFETY: the routine reads the 33 words of `fp` and writes only FP registers (and
    // sstatus.FS, put back as it was).
    unsafe { axvcpu_riscv_fp_restore(fp) }
}

/// Reads the guest instruction halfword at guest-virtual `gva` with the guest's
/// translation (`vsatp` and `hgatp` live, `hstatus.SPVP` from `guest_hstatus`).
/// `Err(scause)` if the read faulted.
pub(crate) fn read_guest_u16(gva: u64, guest_hstatus: u64) -> Result<u16, u64> {
    let mut out = [0u64; 2];
    // SAFETY: HLVX is the hardware's only way to read guest memory through the guest's
    // translation, and a fault in it would otherwise reach the host's trap handler. The
    // routine catches its own fault with interrupts off and restores stvec, hstatus and
    // sstatus; `out` is a valid local.
    let v = unsafe { axvcpu_riscv_hlvx_hu(gva, guest_hstatus, &mut out) };
    match out {
        [0, _] => Ok(v as u16),
        [_, scause] => Err(scause),
    }
}

/// `Err(scause)` if reading `hstatus` traps (no H extension, or not in HS-mode).
pub(crate) fn probe_h() -> Result<(), u64> {
    // SAFETY: reading a CSR that may not exist traps; the routine catches that trap with
    // interrupts off and restores stvec and sstatus.
    match unsafe { axvcpu_riscv_probe_h() } {
        0 => Ok(()),
        c => Err(c.wrapping_sub(1)),
    }
}
