//! Guest programs, written as 64-bit assembly (Intel syntax) and copied into guest RAM: the
//! contract programs shared with the other x86 backend (`axvcpu-guests-x86`), then this
//! backend's own (`guests.s`: the self-test and benchmark loops).
//!
//! Each program is position-independent code between a start and an end symbol, in its own
//! 4 KiB-aligned section, so offsets inside it that are 4 KiB aligned stay page aligned in
//! guest RAM when it is copied to a page-aligned entry. Programs talk to the hypervisor with
//! `out 0xf6, eax` hypercalls ([`axvcpu::X86_HYPERCALL_PORT`]): number in `rax`, arguments in
//! `rdi, rsi, rdx, rcx, r8, r9`, result in `rax`.
//!
//! The conformance programs follow [`axvcpu_conformance::contract::GuestProgram`] exactly,
//! with the addresses of [`crate::vm`]'s layout.

use core::arch::global_asm;

use axvcpu_conformance::contract::{self as c, GuestProgram};

use crate::vm::{IRQ_VECTOR, MMIO_BASE, RAM_BASE, RAM_SIZE, RO_PAGE, SYSREG_MSR};

/// The port [`string_io`] uses.
pub const STRING_IO_PORT: u16 = 0xe8;

global_asm!(
    // What the shared contract programs need from their user (see axvcpu-guests-x86): the
    // hypercall instruction, and this backend's labels, which `program!` below reads.
    r#"
.macro hypercall
    out 0xf6, eax
.endm
.macro PROGRAM name
    .pushsection .text.axvcpu_kvm_guest_\name, "ax", @progbits
    .p2align 12
    .globl axvcpu_kvm_guest_\name\()_start
axvcpu_kvm_guest_\name\()_start:
.endm
.macro END_PROGRAM name
    .globl axvcpu_kvm_guest_\name\()_end
axvcpu_kvm_guest_\name\()_end:
    .popsection
.endm
"#,
    axvcpu_guests_x86::contract_asm!(),
    axvcpu_guests_x86::chaos_asm!(),
    include_str!("guests.s"),
    done = const c::HC_DONE,
    report = const c::HC_REPORT,
    ready = const c::HC_READY,
    port0 = const c::IO_PORT,
    port1 = const c::IO_PORT + 2,
    port2 = const c::IO_PORT + 4,
    out0 = const c::IO_OUT_DATA[0],
    out1 = const c::IO_OUT_DATA[1],
    out2 = const c::IO_OUT_DATA[2],
    in_before = const c::IO_IN_RAX_BEFORE,
    mmio = const MMIO_BASE,
    w0 = const c::MMIO_WRITE_DATA[0],
    w1 = const c::MMIO_WRITE_DATA[1],
    w2 = const c::MMIO_WRITE_DATA[2],
    w3 = const c::MMIO_WRITE_DATA[3],
    a0 = const c::HYPERCALL_ARGS[0],
    a1 = const c::HYPERCALL_ARGS[1],
    a2 = const c::HYPERCALL_ARGS[2],
    a3 = const c::HYPERCALL_ARGS[3],
    a4 = const c::HYPERCALL_ARGS[4],
    a5 = const c::HYPERCALL_ARGS[5],
    hc_nr = const c::HYPERCALL_NR,
    npf_addr = const RO_PAGE + c::NPF_OFFSET as u64,
    npf_data = const c::NPF_DATA,
    cpu_up_target = const c::CPU_UP_TARGET,
    irq_vec = const IRQ_VECTOR,
    irq_vec2 = const crate::vm::SECOND_IRQ_VECTOR,
    msr = const SYSREG_MSR,
    sysreg_write = const c::SYSREG_WRITE_VALUE,
    below = const RAM_BASE - 0x1000,
    above = const RAM_BASE + RAM_SIZE,
    smp_iterations = const c::SMP_ITERATIONS,
    sig_offset = const c::SIGNATURE_OFFSET,
    port_str = const STRING_IO_PORT,
    chaos_code = const c::CHAOS_CODE_OFFSET,
    chaos_code_bytes = const c::CHAOS_CODE_BYTES,
    chaos_data = const c::CHAOS_DATA_OFFSET,
    chaos_counts = const c::CHAOS_COUNTS_OFFSET,
);

/// Declares `fn $name() -> &'static [u8]` returning the bytes of program `$name`.
macro_rules! program {
    ($(#[$doc:meta])* $vis:vis $name:ident) => {
        $(#[$doc])*
        $vis fn $name() -> &'static [u8] {
            extern "C" {
                #[link_name = concat!("axvcpu_kvm_guest_", stringify!($name), "_start")]
                static START: u8;
                #[link_name = concat!("axvcpu_kvm_guest_", stringify!($name), "_end")]
                static END: u8;
            }
            span(&raw const START, &raw const END)
        }
    };
}

/// The bytes from `start` to `end`: a program's code in this binary's text section.
fn span(start: *const u8, end: *const u8) -> &'static [u8] {
    let len = end.addr().saturating_sub(start.addr());
    // SAFETY: `start` and `end` delimit one program assembled above, inside one section of
    // this binary, which is mapped readable for the life of the process.
    unsafe { core::slice::from_raw_parts(start, len) }
}

program!(done);
program!(io_out);
program!(io_in);
program!(mmio_write);
program!(mmio_read);
program!(hypercall);
program!(halt);
program!(system_down);
program!(npf);
program!(cpu_up);
program!(irq);
program!(spin);
program!(sysreg);
program!(isolation);
program!(smp);
program!(signature);
program!(
    /// The chaos runtime (`axvcpu_conformance::Platform::create_chaos_vm`).
    pub chaos
);
program!(
    /// The hypercall instruction alone (`PlatformInfo::hypercall_insn`).
    pub chaos_hypercall
);
program!(
    /// `rep outsb` of 0x11, 0x22, 0x33 to [`STRING_IO_PORT`], then `rep insw` of two words
    /// from it, `HC_REPORT` of the four bytes read, then `HC_DONE`.
    pub string_io
);
program!(
    /// Loads an empty IDT and executes `ud2`: a triple fault.
    pub triple_fault
);
program!(
    /// Jumps to [`MMIO_BASE`]: KVM cannot fetch an instruction from memory no slot backs,
    /// so its emulator fails (`KVM_EXIT_INTERNAL_ERROR`, `KVM_INTERNAL_ERROR_EMULATION`).
    pub unemulated
);
program!(
    /// A fixed IPI, vector 0x55, to APIC id 2 through the ICR; then `HC_DONE`.
    pub send_ipi
);
program!(
    /// Handlers for vectors [`IRQ_VECTOR`]..+3, each `HC_REPORT(vector)`; enables
    /// interrupts, `HC_READY`, then halts forever.
    pub irq3
);
program!(
    /// `out` of `al` to `IO_PORT`, forever.
    pub pio_loop
);
program!(
    /// 4-byte load from [`MMIO_BASE`], forever.
    pub mmio_read_loop
);
program!(
    /// 4-byte store to [`MMIO_BASE`], forever.
    pub mmio_write_loop
);
program!(
    /// Hypercall `HYPERCALL_NR`, forever.
    pub hypercall_loop
);

/// The x86 code of a contract program, or `None` for programs x86 cannot express
/// ([`GuestProgram::CpuDown`]: x86 has no architectural CPU-off).
pub fn contract_program(program: GuestProgram) -> Option<&'static [u8]> {
    Some(match program {
        GuestProgram::Done => done(),
        GuestProgram::IoOut => io_out(),
        GuestProgram::IoIn => io_in(),
        GuestProgram::MmioWrite => mmio_write(),
        GuestProgram::MmioRead => mmio_read(),
        GuestProgram::Hypercall => hypercall(),
        GuestProgram::Halt | GuestProgram::Regs => halt(),
        GuestProgram::SystemDown => system_down(),
        GuestProgram::NestedPageFault => npf(),
        GuestProgram::CpuUp => cpu_up(),
        GuestProgram::CpuDown => return None,
        GuestProgram::Irq => irq(),
        GuestProgram::Spin => spin(),
        GuestProgram::SysReg => sysreg(),
        GuestProgram::Isolation => isolation(),
        GuestProgram::Smp => smp(),
        GuestProgram::Signature => signature(),
        GuestProgram::HaltTimer => return None,
    })
}
