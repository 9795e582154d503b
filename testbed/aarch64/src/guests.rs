//! The contract's guest programs for AArch64, in assembly (no binary blobs). Each lives
//! between `guest_<name>` and `guest_<name>_end`; the testbed copies it to the VM's entry
//! (the start of guest RAM). The code is position-independent (PC-relative addresses only);
//! the addresses it touches come from the layout below. Guests run at EL1 with their MMU
//! off, so guest-virtual = guest-physical.

use axvcpu_conformance::contract::GuestProgram;

/// Guest RAM (GPA) of every test VM.
pub const RAM_BASE: usize = 0x4000_0000;
/// Guest RAM size.
pub const RAM_SIZE: usize = 0x1_0000;
/// The read-only page (nested-page-fault): away from the pages around RAM.
pub const RO_PAGE: usize = 0x4010_0000;
/// Unmapped guest-physical space the MMIO programs use.
pub const MMIO_BASE: usize = 0x1000_0000;
/// Where vGIC guests find their GIC CPU interface (the host's `GICV`, mapped there).
pub const GICC_IPA: usize = 0x0801_0000;
/// The INTID the `irq-*` scenarios inject (`PlatformInfo::irq_vector`; an SPI number: the
/// guest learns it from its acknowledge, `hvc #1` or `GICC_IAR`).
pub const IRQ_VECTOR: usize = 48;
/// The `Irq` program's second INTID (`PlatformInfo::second_irq_vector`, injected by
/// `irq-merge`), another SPI.
pub const SECOND_IRQ_VECTOR: usize = 40;

axvcpu_testbed::guest_asm!(
    ram: (RAM_BASE, RAM_SIZE), ro_page: RO_PAGE, mmio: MMIO_BASE,
    r#"
    .macro LI reg, val
        movz \reg, #((\val) & 0xffff)
        movk \reg, #(((\val) >> 16) & 0xffff), lsl #16
        movk \reg, #(((\val) >> 32) & 0xffff), lsl #32
        movk \reg, #(((\val) >> 48) & 0xffff), lsl #48
    .endm
    .macro HC nr
        LI x0, \nr
        hvc #0
    .endm
    .macro DONE_LOOP
    99: HC {done}
        b 99b
    .endm
    .macro REPORT reg
        mov x1, \reg
        HC {report}
    .endm

    .section .rodata.guests, "a"
    .balign 4

    .global guest_done
guest_done:
    DONE_LOOP
    .global guest_done_end
guest_done_end:

    .balign 4
    .global guest_mmio_write
guest_mmio_write:
    LI x9, {mmio}
    LI x10, {w0}
    strb w10, [x9, #0]
    LI x11, {w1}
    strh w11, [x9, #8]
    LI x12, {w2}
    str w12, [x9, #16]
    LI x13, {w3}
    str x13, [x9, #24]
    DONE_LOOP
    .global guest_mmio_write_end
guest_mmio_write_end:

    .balign 4
    .global guest_mmio_read
guest_mmio_read:
    LI x9, {mmio}
    ldrb w10, [x9, #0x00]
    REPORT x10
    ldrh w11, [x9, #0x08]
    REPORT x11
    ldr w12, [x9, #0x10]
    REPORT x12
    ldr x13, [x9, #0x18]
    REPORT x13
    ldrsb x14, [x9, #0x20]
    REPORT x14
    ldrsh x15, [x9, #0x28]
    REPORT x15
    ldrsw x16, [x9, #0x30]
    REPORT x16
    DONE_LOOP
    .global guest_mmio_read_end
guest_mmio_read_end:

    .balign 4
    .global guest_hypercall
guest_hypercall:
    LI x1, {a0}
    LI x2, {a1}
    LI x3, {a2}
    LI x4, {a3}
    LI x5, {a4}
    LI x6, {a5}
    HC {hc_nr}
    mov x7, x0
    REPORT x7
    DONE_LOOP
    .global guest_hypercall_end
guest_hypercall_end:

    .balign 4
    .global guest_halt
guest_halt:
    wfi
    DONE_LOOP
    .global guest_halt_end
guest_halt_end:

    // PSCI SYSTEM_OFF over smc (trapped by HCR_EL2.TSC).
    .balign 4
    .global guest_system_down
guest_system_down:
    LI x0, 0x84000008
    smc #0
    DONE_LOOP
    .global guest_system_down_end
guest_system_down_end:

    .balign 4
    .global guest_npf
guest_npf:
    LI x9, {npf_addr}
    LI x10, {npf_data}
    str x10, [x9]
    DONE_LOOP
    .global guest_npf_end
guest_npf_end:

    // PSCI CPU_ON (64-bit) over smc; the secondary reports x0 (context_id).
    .balign 4
    .global guest_cpu_up
guest_cpu_up:
    LI x0, 0xc4000003
    LI x1, {cpu_up_target}
    adr x2, 1f
    LI x3, {cpu_up_arg}
    smc #0
    DONE_LOOP
1:  mov x9, x0
    REPORT x9
    DONE_LOOP
    .global guest_cpu_up_end
guest_cpu_up_end:

    // PSCI CPU_OFF over hvc.
    .balign 4
    .global guest_cpu_down
guest_cpu_down:
    LI x0, 0x84000002
    hvc #0
    DONE_LOOP
    .global guest_cpu_down_end
guest_cpu_down_end:

    // irq: VBAR_EL1 -> the table below; READY twice with IRQs masked (DAIF.I is set from
    // reset); unmask; wait for {irq_vec}. The IRQ handler (current EL, SPx, offset 0x280)
    // acknowledges with hvc #1 (x0 = INTID), reports it, and sets x20 if it was {irq_vec};
    // it keeps x0 and x1 in x21, x22 (the rest of the program uses neither), so a late
    // interrupt taken inside DONE_LOOP's hypercall sequence leaves the hypercall as it was.
    .balign 0x800
    .global guest_irq
guest_irq:
    mov x20, #0
    adr x9, 2f
    msr vbar_el1, x9
    isb
    HC {ready}
    HC {ready}
    msr daifclr, #2
1:  cbnz x20, 3f
    wfi
    b 1b
3:  DONE_LOOP
    .balign 0x800
2:  .skip 0x280
    mov x21, x0
    mov x22, x1
    hvc #1
    mov x1, x0
    cmp x1, #{irq_vec}
    b.ne 4f
    mov x20, #1
4:  HC {report}
    mov x0, x21
    mov x1, x22
    eret
    .global guest_irq_end
guest_irq_end:

    // The same with the GICv2 virtual CPU interface: enable it (PMR, CTLR) first, and in
    // the handler acknowledge with GICC_IAR, report the INTID, end it with GICC_EOIR. The
    // handler keeps x0, x1, x9, x10 in x21..x24.
    .balign 0x800
    .global guest_irq_gic
guest_irq_gic:
    mov x20, #0
    LI x9, {gicc}
    mov w10, #0xff
    str w10, [x9, #4]
    mov w10, #1
    str w10, [x9, #0]
    adr x9, 2f
    msr vbar_el1, x9
    isb
    HC {ready}
    HC {ready}
    msr daifclr, #2
1:  cbnz x20, 3f
    wfi
    b 1b
3:  DONE_LOOP
    .balign 0x800
2:  .skip 0x280
    mov x21, x0
    mov x22, x1
    mov x23, x9
    mov x24, x10
    LI x9, {gicc}
    ldr w10, [x9, #0xc]
    and x1, x10, #0x3ff
    cmp x1, #{irq_vec}
    b.ne 4f
    mov x20, #1
4:  HC {report}
    str w10, [x9, #0x10]
    mov x0, x21
    mov x1, x22
    mov x9, x23
    mov x10, x24
    eret
    .global guest_irq_gic_end
guest_irq_gic_end:

    .balign 4
    .global guest_spin
guest_spin:
    b guest_spin
    .global guest_spin_end
guest_spin_end:

    // mrs of ID_AA64MMFR0_EL1 (TID3), msr of CONTEXTIDR_EL1 (TVM).
    .balign 4
    .global guest_sysreg
guest_sysreg:
    mrs x9, id_aa64mmfr0_el1
    REPORT x9
    LI x10, {sysreg_write}
    msr contextidr_el1, x10
    DONE_LOOP
    .global guest_sysreg_end
guest_sysreg_end:

    .balign 4
    .global guest_isolation
guest_isolation:
    LI x9, {below}
    ldr x10, [x9]
    str x10, [x9]
    LI x9, {above}
    ldr x10, [x9]
    str x10, [x9]
    DONE_LOOP
    .global guest_isolation_end
guest_isolation_end:

    .balign 4
    .global guest_smp
guest_smp:
    mov x19, x0
    LI x20, {smp_iterations}
1:  REPORT x19
    subs x20, x20, #1
    b.ne 1b
    DONE_LOOP
    .global guest_smp_end
guest_smp_end:

    // The slot is SIGNATURE_OFFSET past the start, both aligned to it.
    .balign {sig_offset}
    .global guest_signature
guest_signature:
    mov x19, x0
    adr x20, 3f
1:  ldr x21, [x20]
    REPORT x21
    str x19, [x20]
    b 1b
    .balign {sig_offset}
3:  .quad 0
    .global guest_signature_end
guest_signature_end:

    .balign 4
    .global guest_halt_timer
guest_halt_timer:
    mrs x19, cntvct_el0
    LI x20, {halt_timer_ticks}
    add x19, x19, x20
    msr cntv_cval_el0, x19
    mov x20, #1
    msr cntv_ctl_el0, x20
    isb
    REPORT x19
1:  wfi
    mrs x20, cntvct_el0
    cmp x20, x19
    b.lo 1b
    msr cntv_ctl_el0, xzr
    isb
    wfi
    DONE_LOOP
    .global guest_halt_timer_end
guest_halt_timer_end:

    .balign 4
    .global guest_regs
guest_regs:
    wfi
    DONE_LOOP
    .global guest_regs_end
guest_regs_end:

    // Testbed self-tests (beyond the contract).
    // psci: PSCI answers the backend gives itself, each reported.
    .balign 4
    .global guest_psci
guest_psci:
    LI x0, 0x84000000
    hvc #0
    REPORT x0
    LI x0, 0x8400000a
    LI x1, 0xc4000003
    smc #0
    REPORT x0
    LI x0, 0x8400000a
    LI x1, 0xc4000001
    smc #0
    REPORT x0
    LI x0, 0x82000000
    smc #0
    REPORT x0
    hvc #5
    REPORT x0
    hvc #1
    REPORT x0
    DONE_LOOP
    .global guest_psci_end
guest_psci_end:

    // isv0: a load pair from unmapped memory (no valid syndrome).
    .balign 4
    .global guest_isv0
guest_isv0:
    LI x9, {mmio}
    ldp x1, x2, [x9]
    DONE_LOOP
    .global guest_isv0_end
guest_isv0_end:

    // fp: d8 and d31 <- x19; READY; report both back.
    .balign 4
    .global guest_fp
guest_fp:
    fmov d8, x19
    fmov d31, x19
    HC {ready}
    fmov x10, d8
    REPORT x10
    fmov x11, d31
    REPORT x11
    DONE_LOOP
    .global guest_fp_end
guest_fp_end:

    // cntp: the physical timer is the host's (CNTHCTL_EL2.EL1PCEN = 0): a read traps.
    .balign 4
    .global guest_cntp
guest_cntp:
    mrs x9, cntp_ctl_el0
    REPORT x9
    DONE_LOOP
    .global guest_cntp_end
guest_cntp_end:

    // chaos: the runtime of the conformance `chaos` scenario (Platform::create_chaos_vm),
    // in two kinds: acknowledging interrupts with `hvc #1` or, for vGIC VMs, at the GIC
    // CPU interface (GICC_IAR, GICC_EOIR), as the two Irq programs do. VBAR_EL1 -> the
    // table below; the handlers run on SP_EL1, the code on SP_EL0 (in the scratch page).
    // Every vector first takes its own stack again (PC-relative, through TPIDRRO_EL0), so
    // a code that moved to SP_EL1 and clobbered it cannot take the handlers down. A
    // synchronous exception resumes at ELR + 4 (ELR itself after an SVC, whose ELR is
    // already past it; the code's start if outside it); an IRQ is acknowledged (and the
    // virtual timer disabled: the code arms it, and a level interrupt left on would
    // storm) and returns where it was; FIQ and SError return with them masked. SPSR's
    // mode is set to EL1t again and its IL and SS bits cleared, so `eret` returns to EL1
    // on SP_EL0, legally and without a software step, whatever the code wrote.
    .macro CHAOS_RUNTIME name, gic
    .balign 0x1000
    .global guest_\name
guest_\name:
    adr x9, 20f
    msr vbar_el1, x9
    isb
    adr x9, guest_\name + 0x3f00
    mov sp, x9
    msr spsel, #0
    adr x9, guest_\name + {chaos_data} + 0x1000 - 64
    mov sp, x9
    adr x9, guest_\name + {chaos_counts}
    stp xzr, xzr, [x9]
    .if \gic
    LI x9, {gicc}
    mov w10, #0xff
    str w10, [x9, #4]
    mov w10, #1
    str w10, [x9, #0]
    .endif
    msr daifclr, #2
    b guest_\name + {chaos_code}

    // The handlers: x0 is in TPIDRRO_EL0 (the vector saved it).
22: mrs x1, spsr_el1
    bic x1, x1, #0x1f
    orr x1, x1, #4
    bic x1, x1, #(3 << 20)
    msr spsr_el1, x1
    ldp x2, x3, [sp], #16
    ldp x0, x1, [sp], #16
    eret
    // Synchronous.
23: adr x0, guest_\name + 0x3f00
    mov sp, x0
    mrs x0, tpidrro_el0
    stp x0, x1, [sp, #-16]!
    stp x2, x3, [sp, #-16]!
    adr x2, guest_\name + {chaos_counts}
    ldr x3, [x2]
    add x3, x3, #1
    str x3, [x2]
    mrs x0, elr_el1
    mrs x1, esr_el1
    lsr x1, x1, #26
    cmp x1, #0x15
    b.eq 24f
    add x0, x0, #4
24: adr x2, guest_\name + {chaos_code}
    sub x3, x0, x2
    cmp x3, #{chaos_code_bytes}
    b.lo 25f
    mov x0, x2
25: msr elr_el1, x0
    b 22b
    // IRQ.
26: adr x0, guest_\name + 0x3f00
    mov sp, x0
    mrs x0, tpidrro_el0
    stp x0, x1, [sp, #-16]!
    stp x2, x3, [sp, #-16]!
    adr x2, guest_\name + {chaos_counts}
    ldr x3, [x2, #8]
    add x3, x3, #1
    str x3, [x2, #8]
    .if \gic
    LI x2, {gicc}
    ldr w0, [x2, #0xc]
    msr cntv_ctl_el0, xzr
    str w0, [x2, #0x10]
    .else
    hvc #1
    msr cntv_ctl_el0, xzr
    .endif
    b 22b
    // FIQ, SError: masked again on return (nothing here acknowledges them).
28: adr x0, guest_\name + 0x3f00
    mov sp, x0
    mrs x0, tpidrro_el0
    stp x0, x1, [sp, #-16]!
    stp x2, x3, [sp, #-16]!
    mrs x1, spsr_el1
    orr x1, x1, #0x100
    orr x1, x1, #0x40
    msr spsr_el1, x1
    b 22b

    .balign 0x800
20:
    .rept 4
    .balign 0x80
    msr tpidrro_el0, x0
    b 23b
    .balign 0x80
    msr tpidrro_el0, x0
    b 26b
    .balign 0x80
    msr tpidrro_el0, x0
    b 28b
    .balign 0x80
    msr tpidrro_el0, x0
    b 28b
    .endr
    .global guest_\name\()_end
guest_\name\()_end:
    .endm

    CHAOS_RUNTIME chaos, 0
    CHAOS_RUNTIME chaos_gic, 1

    .balign 4
    .global guest_chaos_hypercall
guest_chaos_hypercall:
    hvc #0
    .global guest_chaos_hypercall_end
guest_chaos_hypercall_end:

    .balign 4
    .global guest_bench
guest_bench:
    LI x0, {hc_bench}
1:  hvc #0
    b 1b
    .global guest_bench_end
guest_bench_end:
"#,
    gicc = const GICC_IPA,
    irq_vec = const IRQ_VECTOR,
    chaos_code = const axvcpu_conformance::contract::CHAOS_CODE_OFFSET,
    chaos_code_bytes = const axvcpu_conformance::contract::CHAOS_CODE_BYTES,
    chaos_data = const axvcpu_conformance::contract::CHAOS_DATA_OFFSET,
    chaos_counts = const axvcpu_conformance::contract::CHAOS_COUNTS_OFFSET,
);

use axvcpu_testbed::guest_code as program;

/// The code of `program`, or `None` where AArch64 cannot express it.
pub fn code(program: GuestProgram) -> Option<&'static [u8]> {
    axvcpu_testbed::contract_program!(program, without_port_io)
}

/// The `Irq` program for vGIC VMs: acknowledges through the GIC CPU interface.
pub fn irq_gic_code() -> &'static [u8] {
    program!(guest_irq_gic, guest_irq_gic_end)
}

/// The chaos runtime (`Platform::create_chaos_vm`): acknowledging with `hvc #1`, or at the
/// GIC CPU interface for vGIC VMs.
pub fn chaos_runtime(vgic: bool) -> &'static [u8] {
    if vgic {
        program!(guest_chaos_gic, guest_chaos_gic_end)
    } else {
        program!(guest_chaos, guest_chaos_end)
    }
}

/// The hypercall instruction alone (`PlatformInfo::hypercall_insn`).
pub fn chaos_hypercall() -> &'static [u8] {
    program!(guest_chaos_hypercall, guest_chaos_hypercall_end)
}

/// The testbed's own self-test guests (beyond the contract).
#[derive(Debug, Clone, Copy)]
pub enum SelfTest {
    /// PSCI answers and unknown calls.
    Psci,
    /// A load pair from unmapped memory.
    Isv0,
    /// FP registers set from `x19`, reported after a hypercall.
    Fp,
    /// A read of `CNTP_CTL_EL0`.
    Cntp,
}

/// The code of a self-test guest.
pub fn selftest_code(t: SelfTest) -> &'static [u8] {
    match t {
        SelfTest::Psci => program!(guest_psci, guest_psci_end),
        SelfTest::Isv0 => program!(guest_isv0, guest_isv0_end),
        SelfTest::Fp => program!(guest_fp, guest_fp_end),
        SelfTest::Cntp => program!(guest_cntp, guest_cntp_end),
    }
}
