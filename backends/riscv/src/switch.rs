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

/// Everything the assembly reads or writes. `#[repr(C)]`: offsets are passed to the asm.
#[repr(C)]
#[derive(Debug, Default, Clone)]
pub(crate) struct Regs {
    /// Guest `x0..x31` (`x0` stays 0).
    pub guest_gpr: [u64; 32],
    /// The HS-level `sstatus` the guest runs with (`SPP` = its privilege).
    pub guest_sstatus: u64,
    /// The guest's `hstatus` (`SPV` = 1, `VTW`, `VTVM`, ...).
    pub guest_hstatus: u64,
    /// The guest's program counter.
    pub guest_sepc: u64,
    /// Host registers: only `ra, sp, gp, tp, s0..s11` are used (indexed by number).
    pub host_gpr: [u64; 32],
    pub host_sstatus: u64,
    pub host_hstatus: u64,
    pub host_stvec: u64,
    pub host_sscratch: u64,
    /// Trap CSRs saved by the exit path.
    pub trap_scause: u64,
    pub trap_stval: u64,
    pub trap_htval: u64,
    pub trap_htinst: u64,
}

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

    // u64 axvcpu_riscv_hlvx_hu(u64 gva, u64 guest_hstatus, u64 *scause_out)
    // Reads a halfword of guest instruction memory as the guest would fetch it; a fault is
    // caught here (scause stored, 0 when none) instead of reaching the host's trap handler.
    .balign 4
    .global axvcpu_riscv_hlvx_hu
axvcpu_riscv_hlvx_hu:
    csrrw a1, 0x600, a1
    csrr t2, stvec
    la t0, 1f
    csrw stvec, t0
    li t1, 0
    .word 0x64354573        // hlvx.hu a0, (a0)
    j 2f
    .balign 4
1:  csrr t1, scause
    li a0, 0
    la t0, 2f
    csrw sepc, t0
    sret
2:  csrw stvec, t2
    csrw 0x600, a1
    sd t1, 0(a2)
    ret

    // u64 axvcpu_riscv_probe_h(void): reads hstatus with traps caught; returns the scause
    // of the trap, or 0 when the H extension is there.
    .balign 4
    .global axvcpu_riscv_probe_h
axvcpu_riscv_probe_h:
    csrr t2, stvec
    la t0, 1f
    csrw stvec, t0
    li a0, 0
    csrr t1, 0x600
    j 2f
    .balign 4
1:  csrr a0, scause
    la t0, 2f
    csrw sepc, t0
    sret
2:  csrw stvec, t2
    ret
"#
);

extern "C" {
    /// Runs the guest until it traps to HS-mode. `regs` must stay valid and unaliased for
    /// the whole call.
    pub(crate) fn axvcpu_riscv_run_guest(regs: *mut Regs);
    fn axvcpu_riscv_hlvx_hu(gva: u64, guest_hstatus: u64, scause_out: *mut u64) -> u64;
    fn axvcpu_riscv_probe_h() -> u64;
}

/// Reads the guest instruction halfword at guest-virtual `gva` with the guest's
/// translation (`vsatp` loaded, `hstatus.SPVP` from `guest_hstatus`). `Err(scause)` if the
/// read faulted.
pub(crate) fn read_guest_u16(gva: u64, guest_hstatus: u64) -> Result<u16, u64> {
    let mut scause = 0u64;
    // SAFETY: the routine catches its own faults and restores stvec and hstatus.
    let v = unsafe { axvcpu_riscv_hlvx_hu(gva, guest_hstatus, &mut scause) };
    if scause == 0 {
        Ok(v as u16)
    } else {
        Err(scause)
    }
}

/// `Err(scause)` if reading `hstatus` traps (no H extension, or not in HS-mode).
pub(crate) fn probe_h() -> Result<(), u64> {
    // SAFETY: catches its own trap and restores stvec.
    match unsafe { axvcpu_riscv_probe_h() } {
        0 => Ok(()),
        c => Err(c),
    }
}
