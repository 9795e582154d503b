//! The contract's guest programs for x86-64 SVM and VMX: the shared ones of
//! `axvcpu-guests-x86` (which the hosted KVM backend assembles too) with `vmmcall` as the
//! hypercall (`vmcall` on Intel, see [`crate::backend::patch_hypercalls`]), plus this
//! testbed's own (`regs`, the benchmark, the self-tests). Each program is
//! position-independent code between `guest_<name>` and `guest_<name>_end`, in its own
//! 4 KiB-aligned section, copied to the start of guest RAM (the entry). Guests run in long
//! mode on identity page tables the backend writes at [`BOOT_TABLES`], so guest-virtual =
//! guest-physical.

use axvcpu_conformance::contract::GuestProgram;
use axvcpu_testbed::guest_code;

/// First guest-physical byte of RAM and the entry (below 1 MiB, so the `cpu-up`
/// secondary's SIPI vector reaches it).
pub const RAM_BASE: usize = 0x1_0000;
/// RAM size.
pub const RAM_SIZE: usize = 0x4_0000;
/// Where the backend writes the GDT and page tables (28 KiB), in RAM below the stacks.
pub const BOOT_TABLES: usize = 0x4_0000;
/// Stack bytes per vCPU, from the top of RAM down (vCPU 0 highest).
pub const STACK_SIZE: usize = 0x4000;
/// The read-only page.
pub const RO_PAGE: usize = 0x6_0000;
/// 4 KiB nothing maps.
pub const MMIO_BASE: usize = 0xd000_0000;
/// The vector the `irq-*` scenarios inject (`PlatformInfo::irq_vector`).
pub const IRQ_VECTOR: usize = 0x40;
/// The second vector of the `Irq` program, which `irq-merge` injects alongside
/// [`IRQ_VECTOR`] (`PlatformInfo::second_irq_vector`).
pub const SECOND_IRQ_VECTOR: usize = 0x50;
/// The MSR the `sysreg` scenario reads and writes (IA32_TSC_AUX).
pub const SYSREG_MSR: usize = 0xc000_0103;

axvcpu_testbed::guest_asm!(
    ram: (RAM_BASE, RAM_SIZE), ro_page: RO_PAGE, mmio: MMIO_BASE,
    [
        r#"
# What axvcpu_guests_x86's contract programs need from their user (see its crate docs):
# the hypercall instruction, and the labels axvcpu_testbed::guest_asm! programs follow
# (`guest_<name>` .. `guest_<name>_end`, each program in its own 4 KiB-aligned section).

# x86 INIT-SIPI carries no argument: CPU_UP_ARG is not used by any program.
.set cpu_up_arg_unused, {cpu_up_arg}
# x86 has no HaltTimer program (its guest timers are the hypervisor's devices).
.set halt_timer_ticks_unused, {halt_timer_ticks}

# `vmmcall` (AMD); every site is recorded, and on Intel the boot CPU rewrites them to
# `vmcall` (crate::backend::patch_hypercalls).
.macro hypercall
    .pushsection .hypercall_sites, "a", @progbits
    .quad 9999f
    .popsection
9999:
    vmmcall
.endm
.macro PROGRAM name
    .pushsection .text.guest.\name, "ax", @progbits
    .p2align 12
    .globl guest_\name
guest_\name:
.endm
.macro END_PROGRAM name
    .globl guest_\name\()_end
guest_\name\()_end:
    .popsection
.endm
"#,
        axvcpu_guests_x86::contract_asm!(),
        axvcpu_guests_x86::chaos_asm!(),
        r#"
# The testbed's own programs: `regs` (the contract's Regs, the same code as `halt`), the
# benchmark and the self-tests.

PROGRAM regs
    hlt
    DONE_LOOP
END_PROGRAM regs

# The benchmark: hypercall HC_BENCH in a two-instruction loop (the backend leaves rax alone).
PROGRAM bench
    mov eax, {hc_bench}
2:
    hypercall
    jmp 2b
END_PROGRAM bench


# Self-test programs (not part of the contract).

PROGRAM st_triple
    lea rax, [rip + 3f]
    lidt [rax]
    ud2
3:
    .word 0
    .quad 0
END_PROGRAM st_triple

PROGRAM st_string_io
    lea rsi, [rip + 8f]
    mov ecx, 3
    mov dx, {port0}
    rep outsb
    DONE_LOOP
8:
    .byte 0x11, 0x22, 0x33
END_PROGRAM st_string_io

PROGRAM st_high_byte
    mov rbx, {mmio}
    mov eax, 0x1234
    mov byte ptr [rbx], ah
    mov rax, {in_before}
    mov ah, byte ptr [rbx + 8]
    REPORT rax
    DONE_LOOP
END_PROGRAM st_high_byte

PROGRAM st_send_ipi
    mov rbx, 0xfee00000
    mov dword ptr [rbx + 0x310], 0x02000000
    mov dword ptr [rbx + 0x300], 0x4055
    DONE_LOOP
END_PROGRAM st_send_ipi

PROGRAM st_send_ipi_open
    sti
    mov rbx, 0xfee00000
    mov dword ptr [rbx + 0x310], 0x02000000
    mov dword ptr [rbx + 0x300], 0x4055
    DONE_LOOP
END_PROGRAM st_send_ipi_open

PROGRAM st_msr
    mov ecx, 0x1b
    rdmsr
    shl rdx, 32
    or rax, rdx
    REPORT rax
    mov ecx, 0x1b
    xor eax, eax
    xor edx, edx
    wrmsr
    DONE_LOOP
END_PROGRAM st_msr
"#,
    ],
    port0 = const axvcpu_conformance::contract::IO_PORT,
    port1 = const axvcpu_conformance::contract::IO_PORT + 2,
    port2 = const axvcpu_conformance::contract::IO_PORT + 4,
    out0 = const axvcpu_conformance::contract::IO_OUT_DATA[0],
    out1 = const axvcpu_conformance::contract::IO_OUT_DATA[1],
    out2 = const axvcpu_conformance::contract::IO_OUT_DATA[2],
    in_before = const axvcpu_conformance::contract::IO_IN_RAX_BEFORE,
    irq_vec = const IRQ_VECTOR,
    irq_vec2 = const SECOND_IRQ_VECTOR,
    msr = const SYSREG_MSR,
    chaos_code = const axvcpu_conformance::contract::CHAOS_CODE_OFFSET,
    chaos_code_bytes = const axvcpu_conformance::contract::CHAOS_CODE_BYTES,
    chaos_data = const axvcpu_conformance::contract::CHAOS_DATA_OFFSET,
    chaos_counts = const axvcpu_conformance::contract::CHAOS_COUNTS_OFFSET,
);

/// The x86 code of a contract program, or `None` for programs x86 cannot express
/// ([`GuestProgram::CpuDown`]: x86 has no architectural CPU-off).
pub fn code(program: GuestProgram) -> Option<&'static [u8]> {
    use GuestProgram as P;
    Some(match program {
        P::Done => guest_code!(guest_done, guest_done_end),
        P::IoOut => guest_code!(guest_io_out, guest_io_out_end),
        P::IoIn => guest_code!(guest_io_in, guest_io_in_end),
        P::MmioWrite => guest_code!(guest_mmio_write, guest_mmio_write_end),
        P::MmioRead => guest_code!(guest_mmio_read, guest_mmio_read_end),
        P::Hypercall => guest_code!(guest_hypercall, guest_hypercall_end),
        P::Halt => guest_code!(guest_halt, guest_halt_end),
        P::SystemDown => guest_code!(guest_system_down, guest_system_down_end),
        P::NestedPageFault => guest_code!(guest_npf, guest_npf_end),
        P::CpuUp => guest_code!(guest_cpu_up, guest_cpu_up_end),
        P::CpuDown => return None,
        P::Irq => guest_code!(guest_irq, guest_irq_end),
        P::Spin => guest_code!(guest_spin, guest_spin_end),
        P::SysReg => guest_code!(guest_sysreg, guest_sysreg_end),
        P::Isolation => guest_code!(guest_isolation, guest_isolation_end),
        P::Smp => guest_code!(guest_smp, guest_smp_end),
        P::Signature => guest_code!(guest_signature, guest_signature_end),
        P::HaltTimer => return None,
        P::Regs => guest_code!(guest_regs, guest_regs_end),
    })
}

/// The chaos runtime of `axvcpu-guests-x86` (`Platform::create_chaos_vm`).
pub fn chaos_runtime() -> &'static [u8] {
    guest_code!(guest_chaos, guest_chaos_end)
}

/// The hypercall instruction alone, as the guests run it: `vmmcall`, or `vmcall` once
/// [`crate::backend::patch_hypercalls`] rewrote it on Intel (`PlatformInfo::hypercall_insn`).
pub fn chaos_hypercall() -> &'static [u8] {
    guest_code!(guest_chaos_hypercall, guest_chaos_hypercall_end)
}

/// The self-tests' guest programs.
#[derive(Debug, Clone, Copy)]
pub enum SelfTest {
    /// An empty IDT, then `ud2`: a triple fault.
    TripleFault,
    /// `rep outsb` of three bytes to `IO_PORT`.
    StringIo,
    /// `mov [mmio], ah` with `ax` = 0x1234; `rax` = `IO_IN_RAX_BEFORE`, `mov ah, [mmio +
    /// 8]`, `HC_REPORT(rax)`; `HC_DONE`.
    HighByte,
    /// A fixed IPI, vector 0x55, to APIC id 2 through the ICR; `HC_DONE`.
    SendIpi,
    /// `sti` (the guest takes interrupts), then as [`SelfTest::SendIpi`].
    SendIpiOpen,
    /// `rdmsr` of EFER, `HC_REPORT(edx:eax)`; `wrmsr` of 0 to IA32_APIC_BASE; `HC_DONE`.
    Msr,
}

/// The code of a self-test program.
pub fn selftest_code(which: SelfTest) -> &'static [u8] {
    match which {
        SelfTest::TripleFault => guest_code!(guest_st_triple, guest_st_triple_end),
        SelfTest::StringIo => guest_code!(guest_st_string_io, guest_st_string_io_end),
        SelfTest::HighByte => guest_code!(guest_st_high_byte, guest_st_high_byte_end),
        SelfTest::SendIpi => guest_code!(guest_st_send_ipi, guest_st_send_ipi_end),
        SelfTest::SendIpiOpen => guest_code!(guest_st_send_ipi_open, guest_st_send_ipi_open_end),
        SelfTest::Msr => guest_code!(guest_st_msr, guest_st_msr_end),
    }
}
