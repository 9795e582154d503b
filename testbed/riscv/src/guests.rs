//! The contract's guest programs for RISC-V, in assembly (no binary blobs). Each lives
//! between `guest_<name>` and `guest_<name>_end`; the testbed copies it to the VM's entry
//! (the start of guest RAM). All code is position-independent; the addresses it touches
//! come from the layout below.

use axvcpu_conformance::contract::GuestProgram;
use axvcpu_testbed::guest_code;

/// Guest RAM (GPA) of every test VM.
pub const RAM_BASE: usize = 0x8000_0000;
/// Guest RAM size.
pub const RAM_SIZE: usize = 0x1_0000;
/// The read-only page (nested-page-fault): away from the pages around RAM.
pub const RO_PAGE: usize = 0x8010_0000;
/// Unmapped guest-physical space the MMIO programs use.
pub const MMIO_BASE: usize = 0x1000_0000;
/// The `scounteren` the shared-csrs self-test guest writes.
pub const GUEST_SCOUNTEREN: u64 = 0x5;
/// Where the span self-test guest loads 8 bytes: 4 in RAM, 4 in the unmapped page above.
pub const SPAN_ADDR: usize = RAM_BASE + RAM_SIZE - 4;
/// The interrupt code the `irq-*` scenarios inject (`PlatformInfo::irq_vector`): the
/// supervisor software interrupt, which the `Irq` program acknowledges by clearing
/// `sip.SSIP`.
pub const IRQ_VECTOR: usize = 1;
/// The `Irq` program's second interrupt code (`PlatformInfo::second_irq_vector`, injected
/// by `irq-merge`): the supervisor timer, which the program acknowledges with SBI
/// `set_timer(u64::MAX)`. (External interrupts, 9, are acknowledged by the hypervisor's
/// interrupt-controller model, which the contract does not have.)
pub const SECOND_IRQ_VECTOR: usize = 5;
// The `Irq` program's acknowledgements are those of codes 1 and 5.
const _: () = assert!(IRQ_VECTOR == 1 && SECOND_IRQ_VECTOR == 5);

axvcpu_testbed::guest_asm!(
    ram: (RAM_BASE, RAM_SIZE), ro_page: RO_PAGE, mmio: MMIO_BASE,
    r#"
    .macro HC nr
        li a7, {ext}
        li a6, \nr
        ecall
    .endm
    .macro DONE_LOOP
    99: HC {done}
        j 99b
    .endm
    .macro REPORT reg
        mv a0, \reg
        HC {report}
    .endm

    .section .rodata.guests, "a"
    .option push
    .option rvc
    .balign 4

    .global guest_done
guest_done:
    DONE_LOOP
    .global guest_done_end
guest_done_end:

    .balign 4
    .global guest_mmio_write
guest_mmio_write:
    li s1, {mmio}
    li t1, {w0}
    sb t1, 0(s1)
    li t1, {w1}
    sh t1, 8(s1)
    li a2, {w2}
    c.sw a2, 16(s1)
    li a3, {w3}
    sd a3, 24(s1)
    DONE_LOOP
    .global guest_mmio_write_end
guest_mmio_write_end:

    .balign 4
    .global guest_mmio_read
guest_mmio_read:
    li s1, {mmio}
    lbu t3, 0x00(s1)
    REPORT t3
    lhu t4, 0x08(s1)
    REPORT t4
    lwu t5, 0x10(s1)
    REPORT t5
    c.ld a4, 0x18(s1)
    REPORT a4
    lb a5, 0x20(s1)
    REPORT a5
    lh s0, 0x28(s1)
    REPORT s0
    c.lw a2, 0x30(s1)
    REPORT a2
    DONE_LOOP
    .global guest_mmio_read_end
guest_mmio_read_end:

    .balign 4
    .global guest_hypercall
guest_hypercall:
    li a0, {a0}
    li a1, {a1}
    li a2, {a2}
    li a3, {a3}
    li a4, {a4}
    li a5, {a5}
    HC {hc_nr}
    REPORT a1
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

    .balign 4
    .global guest_system_down
guest_system_down:
    li a0, 0
    li a1, 0
    li a6, 0
    li a7, 0x53525354
    ecall
    DONE_LOOP
    .global guest_system_down_end
guest_system_down_end:

    .balign 4
    .global guest_npf
guest_npf:
    li t0, {npf_addr}
    li t1, {npf_data}
    sd t1, 0(t0)
    DONE_LOOP
    .global guest_npf_end
guest_npf_end:

    .balign 4
    .global guest_cpu_up
guest_cpu_up:
    li a0, {cpu_up_target}
    la a1, 1f
    li a2, {cpu_up_arg}
    li a6, 0
    li a7, 0x48534d
    ecall
    DONE_LOOP
1:  REPORT a1
    HC {done}
    j 1b
    .global guest_cpu_up_end
guest_cpu_up_end:

    .balign 4
    .global guest_cpu_down
guest_cpu_down:
    li a6, 1
    li a7, 0x48534d
    ecall
    DONE_LOOP
    .global guest_cpu_down_end
guest_cpu_down_end:

    // irq: sie enables the software (1) and timer (5) interrupts; sstatus.SIE stays clear
    // through both READYs, then the guest waits for code 1. The handler saves in s4..s9
    // what it uses (the rest of the program uses none of them), so a late interrupt taken
    // inside DONE_LOOP's `li a7; li a6; ecall` leaves the hypercall as it was.
    .balign 4
    .global guest_irq
guest_irq:
    li s2, 0
    la t0, 2f
    csrw stvec, t0
    li t0, (1 << {irq_vec}) | (1 << {irq_vec2})
    csrs sie, t0
    HC {ready}
    HC {ready}
    csrsi sstatus, 2
1:  bnez s2, 3f
    wfi
    j 1b
3:  DONE_LOOP
    .balign 4
2:  mv s4, a0
    mv s5, a1
    mv s6, a6
    mv s7, a7
    mv s8, t0
    csrr s9, scause
    slli s9, s9, 1
    srli s9, s9, 1
    REPORT s9
    li t0, {irq_vec}
    bne s9, t0, 4f
    // Software: clear sip.SSIP (hvip.VSSIP).
    li t0, 1 << {irq_vec}
    csrc sip, t0
    li s2, 1
    j 5f
4:  li t0, {irq_vec2}
    bne s9, t0, 5f
    // Timer: SBI set_timer(u64::MAX) takes the deadline, and the interrupt, back.
    li a0, -1
    li a6, 0
    li a7, 0x54494d45
    ecall
5:  mv a0, s4
    mv a1, s5
    mv a6, s6
    mv a7, s7
    mv t0, s8
    sret
    .global guest_irq_end
guest_irq_end:

    .balign 4
    .global guest_spin
guest_spin:
    j guest_spin
    .global guest_spin_end
guest_spin_end:

    .balign 4
    .global guest_sysreg
guest_sysreg:
    csrr s3, cycle
    REPORT s3
    li t0, {sysreg_write}
    csrw satp, t0
    DONE_LOOP
    .global guest_sysreg_end
guest_sysreg_end:

    .balign 4
    .global guest_isolation
guest_isolation:
    li t0, {below}
    ld t1, 0(t0)
    sd t1, 0(t0)
    li t0, {above}
    ld t1, 0(t0)
    sd t1, 0(t0)
    DONE_LOOP
    .global guest_isolation_end
guest_isolation_end:

    .balign 4
    .global guest_smp
guest_smp:
    mv s1, a0
    li s2, {smp_iterations}
1:  REPORT s1
    addi s2, s2, -1
    bnez s2, 1b
    DONE_LOOP
    .global guest_smp_end
guest_smp_end:

    // The slot is SIGNATURE_OFFSET past the start, both aligned to it.
    .balign {sig_offset}
    .global guest_signature
guest_signature:
    mv s1, a0
    lla s2, 3f
1:  ld t0, 0(s2)
    REPORT t0
    sd s1, 0(s2)
    j 1b
    .balign {sig_offset}
3:  .dword 0
    .global guest_signature_end
guest_signature_end:

    .balign 4
    .global guest_halt_timer
guest_halt_timer:
    li t0, 0x20
    csrs sie, t0
    rdtime s1
    li t0, {halt_timer_ticks}
    add s1, s1, t0
    mv a0, s1
    li a6, 0
    li a7, 0x54494d45
    ecall
    REPORT s1
1:  wfi
    rdtime t0
    bltu t0, s1, 1b
    li a0, -1
    li a6, 0
    li a7, 0x54494d45
    ecall
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

    // chaos: the runtime of the conformance `chaos` scenario (Platform::create_chaos_vm).
    // stvec -> the handler below, interrupts 1, 5, 9 enabled, sp in the scratch page, then
    // the code at CHAOS_CODE_OFFSET. The handler swaps sp with sscratch and takes its own
    // stack (PC-relative, so a clobbered sscratch does not matter), counts, and resumes:
    // an exception after the faulting instruction (+2 or +4 from its low bits; the code's
    // start if outside it), an interrupt where it was, acknowledged as the Irq program
    // does (1: clear sip.SSIP; 5: SBI set_timer(-1) and sie.STIE off, in case the code
    // armed Sstc's stimecmp; 9: sie.SEIE off, there is no controller to acknowledge).
    // sstatus.SPP is set again, so sret returns to VS-mode whatever the code wrote.
    .balign 4
    .global guest_chaos
guest_chaos:
    lla t0, 2f
    csrw stvec, t0
    lla t0, guest_chaos + {chaos_counts}
    sd zero, 0(t0)
    sd zero, 8(t0)
    lla sp, guest_chaos + {chaos_data} + 0x1000 - 64
    li t0, 0x222
    csrs sie, t0
    csrsi sstatus, 2
    j guest_chaos + {chaos_code}
    .balign 4
2:  csrrw sp, sscratch, sp
    lla sp, guest_chaos + 0x3f00
    sd t0, -8(sp)
    sd t1, -16(sp)
    sd t2, -24(sp)
    sd a0, -32(sp)
    sd a1, -40(sp)
    sd a6, -48(sp)
    sd a7, -56(sp)
    csrr t0, scause
    lla t1, guest_chaos + {chaos_counts}
    bltz t0, 5f
    ld t2, 0(t1)
    addi t2, t2, 1
    sd t2, 0(t1)
    csrr t0, sepc
    lla t1, guest_chaos + {chaos_code}
    sub t2, t0, t1
    li a0, {chaos_code_bytes}
    bgeu t2, a0, 3f
    lhu a1, 0(t0)
    andi a1, a1, 3
    li a6, 3
    addi t0, t0, 2
    bne a1, a6, 4f
    addi t0, t0, 2
4:  sub t2, t0, t1
    bltu t2, a0, 6f
3:  mv t0, t1
6:  csrw sepc, t0
    j 7f
5:  ld t2, 8(t1)
    addi t2, t2, 1
    sd t2, 8(t1)
    slli t0, t0, 1
    srli t0, t0, 1
    li t1, 1
    bne t0, t1, 8f
    csrci sip, 2
    j 7f
8:  li t1, 5
    bne t0, t1, 9f
    li t1, 0x20
    csrc sie, t1
    li a0, -1
    li a6, 0
    li a7, 0x54494d45
    ecall
    j 7f
9:  li t1, 9
    bne t0, t1, 7f
    li t1, 0x200
    csrc sie, t1
7:  li t1, 0x100
    csrs sstatus, t1
    ld t0, -8(sp)
    ld t1, -16(sp)
    ld t2, -24(sp)
    ld a0, -32(sp)
    ld a1, -40(sp)
    ld a6, -48(sp)
    ld a7, -56(sp)
    csrrw sp, sscratch, sp
    sret
    .global guest_chaos_end
guest_chaos_end:

    .balign 4
    .global guest_chaos_hypercall
guest_chaos_hypercall:
    ecall
    .global guest_chaos_hypercall_end
guest_chaos_hypercall_end:

    .balign 4
    .global guest_bench
guest_bench:
    li a7, {ext}
    li a6, {hc_bench}
1:  ecall
    j 1b
    .global guest_bench_end
guest_bench_end:

    // Testbed self-tests (beyond the contract).
    // timer: arm the SBI timer 100 us ahead, wait with wfi; the handler reports scause's
    // code, disarms the timer (set_timer(-1)), then DONE.
    .balign 4
    .global guest_timer
guest_timer:
    la t0, 2f
    csrw stvec, t0
    li t0, 0x20
    csrs sie, t0
    csrsi sstatus, 2
    rdtime a0
    li t0, 1000
    add a0, a0, t0
    li a6, 0
    li a7, 0x54494d45
    ecall
1:  wfi
    j 1b
    .balign 4
2:  csrr a0, scause
    slli a0, a0, 1
    srli a0, a0, 1
    HC {report}
    li a0, -1
    li a6, 0
    li a7, 0x54494d45
    ecall
    DONE_LOOP
    .global guest_timer_end
guest_timer_end:

    // ext-irq: enable external interrupts, READY, wait; the handler reports the code and
    // sets s2 (the hypervisor's interrupt-controller model acknowledges for the guest).
    .balign 4
    .global guest_ext_irq
guest_ext_irq:
    li s2, 0
    la t0, 2f
    csrw stvec, t0
    li t0, 0x200
    csrs sie, t0
    csrsi sstatus, 2
    HC {ready}
1:  bnez s2, 3f
    wfi
    j 1b
3:  DONE_LOOP
    .balign 4
2:  csrr a0, scause
    slli a0, a0, 1
    srli a0, a0, 1
    HC {report}
    li s2, 1
    sret
    .global guest_ext_irq_end
guest_ext_irq_end:

    // sbi: probe the base extension for HSM and for an unknown extension (report a1 of
    // each), call an unknown extension, then SRST with a reserved reset type (report a0 of
    // each).
    .balign 4
    .global guest_sbi
guest_sbi:
    li a0, 0x48534d
    li a6, 3
    li a7, 0x10
    ecall
    mv s2, a1
    REPORT s2
    li a0, 0x12345
    li a6, 3
    li a7, 0x10
    ecall
    mv s2, a1
    REPORT s2
    li a6, 0
    li a7, 0x7777777
    ecall
    mv s2, a0
    REPORT s2
    li a0, 3
    li a1, 0
    li a6, 0
    li a7, 0x53525354
    ecall
    mv s2, a0
    REPORT s2
    DONE_LOOP
    .global guest_sbi_end
guest_sbi_end:
    // timer-rebind: arm the SBI timer 1 ms ahead (the hypervisor unbinds and rebinds the
    // vCPU right after this call), wait with wfi; the handler reports scause's code, disarms
    // the timer, then DONE.
    .balign 4
    .global guest_timer_rebind
guest_timer_rebind:
    la t0, 2f
    csrw stvec, t0
    li t0, 0x20
    csrs sie, t0
    csrsi sstatus, 2
    rdtime a0
    li t0, 10000
    add a0, a0, t0
    li a6, 0
    li a7, 0x54494d45
    ecall
1:  wfi
    j 1b
    .balign 4
2:  csrr a0, scause
    slli a0, a0, 1
    srli a0, a0, 1
    HC {report}
    li a0, -1
    li a6, 0
    li a7, 0x54494d45
    ecall
    DONE_LOOP
    .global guest_timer_rebind_end
guest_timer_rebind_end:

    // shared-csrs: write scounteren (a CSR VS-mode shares with the host), READY, then
    // report what it reads back, DONE.
    .balign 4
    .global guest_shared_csrs
guest_shared_csrs:
    li t0, {guest_scounteren}
    csrw scounteren, t0
    HC {ready}
    csrr s2, scounteren
    REPORT s2
    DONE_LOOP
    .global guest_shared_csrs_end
guest_shared_csrs_end:

    // illegal-insn: `hfence.gvma` from VS-mode (a virtual-instruction exception the backend
    // does not emulate) must reach the guest's own handler as an illegal instruction:
    // report scause, stval and sepc's distance from the hfence, then skip it and DONE.
    .balign 4
    .global guest_illegal_insn
guest_illegal_insn:
    la t0, 2f
    csrw stvec, t0
1:  .word 0x62000073
    DONE_LOOP
    .balign 4
2:  csrr s2, scause
    REPORT s2
    csrr s2, stval
    REPORT s2
    csrr s2, sepc
    lla t0, 1b
    sub s2, s2, t0
    REPORT s2
    csrr t0, sepc
    addi t0, t0, 4
    csrw sepc, t0
    sret
    .global guest_illegal_insn_end
guest_illegal_insn_end:

    // span: an 8-byte load whose last 4 bytes lie in the unmapped page above RAM.
    .balign 4
    .global guest_span
guest_span:
    li t0, {span_addr}
    ld t1, 0(t0)
    DONE_LOOP
    .global guest_span_end
guest_span_end:

    // sbi-os: the SBI calls an OS makes that the backend hands to the hypervisor or answers
    // itself: hart_get_status(1) (report a1, a0), remote_sfence_vma to harts 0 and 1,
    // remote_fence_i to this hart alone, an hfence (unsupported), hart_suspend retentive
    // and with a reserved type, DBCN write of 5 bytes of RAM, with a non-zero high address
    // half, and of MMIO (report a0 of each, a1 of the good write).
    .balign 4
    .global guest_sbi_os
guest_sbi_os:
    li a0, 1
    li a6, 2
    li a7, 0x48534d
    ecall
    mv s2, a0
    mv s3, a1
    REPORT s3
    REPORT s2
    li a0, 3
    li a1, 0
    li a2, 0
    li a3, -1
    li a6, 1
    li a7, 0x52464e43
    ecall
    mv s2, a0
    REPORT s2
    li a0, 1
    li a1, 0
    li a6, 0
    li a7, 0x52464e43
    ecall
    mv s2, a0
    REPORT s2
    li a0, 1
    li a1, 0
    li a6, 3
    li a7, 0x52464e43
    ecall
    mv s2, a0
    REPORT s2
    li a0, 0
    li a6, 3
    li a7, 0x48534d
    ecall
    mv s2, a0
    REPORT s2
    li a0, 1
    li a6, 3
    li a7, 0x48534d
    ecall
    mv s2, a0
    REPORT s2
    li a0, 5
    la a1, 1f
    li a2, 0
    li a6, 0
    li a7, 0x4442434e
    ecall
    mv s2, a1
    REPORT s2
    li a0, 5
    la a1, 1f
    li a2, 1
    li a6, 0
    li a7, 0x4442434e
    ecall
    mv s2, a0
    REPORT s2
    li a0, 5
    li a1, {mmio}
    li a2, 0
    li a6, 0
    li a7, 0x4442434e
    ecall
    mv s2, a0
    REPORT s2
    DONE_LOOP
1:  .ascii "dbcn\n"
    .balign 4
    .global guest_sbi_os_end
guest_sbi_os_end:

    // fp: turn FP on, put a2 (set by the hypervisor) in f5 and fcsr's rounding mode 2, READY,
    // then report f5 and fcsr as they are after the hypervisor ran other vCPUs on this hart.
    .balign 4
    .global guest_fp
guest_fp:
    .option push
    .option arch, +d
    li t0, 0x2000
    csrs sstatus, t0
    fmv.d.x f5, a2
    fsrmi 2
    HC {ready}
    fmv.x.d s2, f5
    REPORT s2
    frcsr s2
    REPORT s2
    DONE_LOOP
    .option pop
    .global guest_fp_end
guest_fp_end:
    .option pop
"#,
    ext = const axvcpu::RISCV_HYPERCALL_EXT,
    guest_scounteren = const GUEST_SCOUNTEREN,
    span_addr = const SPAN_ADDR,
    irq_vec = const IRQ_VECTOR,
    irq_vec2 = const SECOND_IRQ_VECTOR,
    chaos_code = const axvcpu_conformance::contract::CHAOS_CODE_OFFSET,
    chaos_code_bytes = const axvcpu_conformance::contract::CHAOS_CODE_BYTES,
    chaos_data = const axvcpu_conformance::contract::CHAOS_DATA_OFFSET,
    chaos_counts = const axvcpu_conformance::contract::CHAOS_COUNTS_OFFSET,
);

/// The code of `program`, or `None` where RISC-V cannot express it.
pub fn code(program: GuestProgram) -> Option<&'static [u8]> {
    axvcpu_testbed::contract_program!(program, without_port_io)
}

/// The chaos runtime (`Platform::create_chaos_vm`).
pub fn chaos_runtime() -> &'static [u8] {
    guest_code!(guest_chaos, guest_chaos_end)
}

/// The hypercall instruction alone (`PlatformInfo::hypercall_insn`).
pub fn chaos_hypercall() -> &'static [u8] {
    guest_code!(guest_chaos_hypercall, guest_chaos_hypercall_end)
}

/// The testbed's own self-test guests (beyond the contract).
#[derive(Debug, Clone, Copy)]
pub enum SelfTest {
    /// SBI set_timer, then the timer interrupt (code 5).
    Timer,
    /// An injected external interrupt (code 9), acknowledged by the hypervisor.
    ExtIrq,
    /// Base-extension probes, an unknown SBI call, SRST with a reserved reset type.
    Sbi,
    /// The SBI timer armed, then the vCPU unbound and bound again before it fires.
    TimerRebind,
    /// The guest writes `scounteren`, which it shares with the host.
    SharedCsrs,
    /// A load spanning RAM and the unmapped page above it.
    Span,
    /// Floating-point registers kept across other vCPUs' runs on the same hart.
    Fp,
    /// The SBI calls of an OS: HSM status and suspend, RFENCE, DBCN.
    SbiOs,
    /// `hfence.gvma` from VS-mode, which the guest must take as an illegal instruction.
    IllegalInsn,
}

/// The code of a self-test guest.
pub fn selftest_code(t: SelfTest) -> &'static [u8] {
    match t {
        SelfTest::Timer => guest_code!(guest_timer, guest_timer_end),
        SelfTest::ExtIrq => guest_code!(guest_ext_irq, guest_ext_irq_end),
        SelfTest::Sbi => guest_code!(guest_sbi, guest_sbi_end),
        SelfTest::TimerRebind => guest_code!(guest_timer_rebind, guest_timer_rebind_end),
        SelfTest::SharedCsrs => guest_code!(guest_shared_csrs, guest_shared_csrs_end),
        SelfTest::Span => guest_code!(guest_span, guest_span_end),
        SelfTest::Fp => guest_code!(guest_fp, guest_fp_end),
        SelfTest::SbiOs => guest_code!(guest_sbi_os, guest_sbi_os_end),
        SelfTest::IllegalInsn => guest_code!(guest_illegal_insn, guest_illegal_insn_end),
    }
}
