//! Guest programs, written here as 64-bit assembly (Intel syntax) and copied into guest RAM.
//!
//! Each program is position-independent code between a start and an end symbol, in its own
//! 4 KiB-aligned section, so offsets inside it that are 4 KiB aligned stay page aligned in
//! guest RAM when it is copied to a page-aligned entry. Programs talk to the hypervisor with
//! `out 0xf6, eax` hypercalls ([`axvcpu::X86_HYPERCALL_PORT`]): number in `rax`, arguments in
//! `rdi, rsi, rdx, rcx, r8, r9`, result in `rax`.
//!
//! The conformance programs follow [`axvcpu_conformance::contract::GuestProgram`] exactly,
//! with the addresses of [`crate::testing`]'s layout.

use core::arch::global_asm;

use axvcpu_conformance::contract::{self as c, GuestProgram};

use crate::testing::{IRQ_VECTOR, MMIO_BASE, RAM_BASE, RAM_SIZE, RO_PAGE, SYSREG_MSR};

/// The port [`string_io`] uses.
pub const STRING_IO_PORT: u16 = 0xe8;
/// The demo's hypercall: returns `rdi + rsi`.
pub const HC_ADD: u64 = 0x4144;

global_asm!(
    r#"
.macro HC nr
    mov eax, \nr
    out 0xf6, eax
.endm
.macro REPORT src
    mov rdi, \src
    HC {hc_report}
.endm
.macro DONE_LOOP
77:
    HC {hc_done}
    jmp 77b
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

PROGRAM done
    DONE_LOOP
END_PROGRAM done

PROGRAM io_out
    mov al, {out0}
    out {port0}, al
    mov ax, {out1}
    out {port1}, ax
    mov eax, {out2}
    out {port2}, eax
    DONE_LOOP
END_PROGRAM io_out

PROGRAM io_in
    mov rax, {in_before}
    in al, {port0}
    REPORT rax
    mov rax, {in_before}
    in ax, {port1}
    REPORT rax
    mov rax, {in_before}
    in eax, {port2}
    REPORT rax
    DONE_LOOP
END_PROGRAM io_in

PROGRAM mmio_write
    mov rbx, {mmio}
    mov byte ptr [rbx], {mw0}
    mov word ptr [rbx + 8], {mw1}
    mov dword ptr [rbx + 16], {mw2}
    mov rax, {mw3}
    mov qword ptr [rbx + 24], rax
    DONE_LOOP
END_PROGRAM mmio_write

PROGRAM mmio_read
    mov rbx, {mmio}
    movzx ecx, byte ptr [rbx]
    REPORT rcx
    movzx edx, word ptr [rbx + 0x08]
    REPORT rdx
    mov esi, dword ptr [rbx + 0x10]
    REPORT rsi
    mov r8, qword ptr [rbx + 0x18]
    REPORT r8
    movsx r9, byte ptr [rbx + 0x20]
    REPORT r9
    movsx r10, word ptr [rbx + 0x28]
    REPORT r10
    movsxd r11, dword ptr [rbx + 0x30]
    REPORT r11
    DONE_LOOP
END_PROGRAM mmio_read

PROGRAM hypercall
    mov rdi, {a0}
    mov rsi, {a1}
    mov rdx, {a2}
    mov rcx, {a3}
    mov r8, {a4}
    mov r9, {a5}
    HC {hc_nr}
    REPORT rax
    DONE_LOOP
END_PROGRAM hypercall

PROGRAM halt
    hlt
    DONE_LOOP
END_PROGRAM halt

PROGRAM system_down
    mov dx, 0x604
    mov ax, 0x2000
    out dx, ax
    DONE_LOOP
END_PROGRAM system_down

PROGRAM npf
    mov rbx, {npf_addr}
    mov rax, {npf_data}
    mov qword ptr [rbx], rax
    DONE_LOOP
END_PROGRAM npf

PROGRAM cpu_up
    mov rbx, 0xfee00000
    mov dword ptr [rbx + 0x310], {cpu_up_dest}
    mov dword ptr [rbx + 0x300], 0x4500
    lea rax, [rip + 2f]
    shr eax, 12
    or eax, 0x4600
    mov dword ptr [rbx + 0x300], eax
    mov dword ptr [rbx + 0x300], eax
    DONE_LOOP
    .balign 4096
2:
    REPORT 0
    DONE_LOOP
END_PROGRAM cpu_up

PROGRAM irq
    lea rbx, [rip + 5f]
    lea rax, [rip + 4f]
    mov word ptr [rbx + {irq_vec} * 16], ax
    mov word ptr [rbx + {irq_vec} * 16 + 2], 0x08
    mov word ptr [rbx + {irq_vec} * 16 + 4], 0x8e00
    shr rax, 16
    mov word ptr [rbx + {irq_vec} * 16 + 6], ax
    shr rax, 16
    mov dword ptr [rbx + {irq_vec} * 16 + 8], eax
    mov dword ptr [rbx + {irq_vec} * 16 + 12], 0
    lea rax, [rip + 3f]
    mov qword ptr [rax + 2], rbx
    lidt [rax]
    mov byte ptr [rip + 6f], 0
    sti
    HC {hc_ready}
1:
    cmp byte ptr [rip + 6f], 0
    jne 2f
    hlt
    jmp 1b
2:
    DONE_LOOP
4:
    push rax
    push rdi
    REPORT {irq_vec}
    mov byte ptr [rip + 6f], 1
    pop rdi
    pop rax
    iretq
    .balign 16
3:
    .word 256 * 16 - 1
    .quad 0
6:
    .byte 0
    .balign 16
5:
    .skip 256 * 16
END_PROGRAM irq

PROGRAM spin
2:
    jmp 2b
END_PROGRAM spin

PROGRAM sysreg
    mov ecx, {msr}
    rdmsr
    shl rdx, 32
    or rax, rdx
    REPORT rax
    mov ecx, {msr}
    mov rax, {sysreg_write}
    mov rdx, rax
    shr rdx, 32
    wrmsr
    DONE_LOOP
END_PROGRAM sysreg

PROGRAM isolation
    mov rbx, {below}
    mov rax, qword ptr [rbx]
    mov qword ptr [rbx], rax
    mov rbx, {above}
    mov rax, qword ptr [rbx]
    mov qword ptr [rbx], rax
    DONE_LOOP
END_PROGRAM isolation

PROGRAM smp
    mov r12, {smp_iterations}
2:
    REPORT rbx
    dec r12
    jnz 2b
    DONE_LOOP
END_PROGRAM smp

PROGRAM string_io
    lea rsi, [rip + 8f]
    mov ecx, 3
    mov dx, {port_str}
    rep outsb
    lea rdi, [rip + 9f]
    mov ecx, 2
    rep insw
    mov eax, dword ptr [rip + 9f]
    REPORT rax
    DONE_LOOP
8:
    .byte 0x11, 0x22, 0x33
    .balign 8
9:
    .quad 0
END_PROGRAM string_io

PROGRAM triple_fault
    lea rax, [rip + 3f]
    lidt [rax]
    ud2
3:
    .word 0
    .quad 0
END_PROGRAM triple_fault

PROGRAM unemulated
    fwait
    DONE_LOOP
END_PROGRAM unemulated

PROGRAM send_ipi
    mov rbx, 0xfee00000
    mov dword ptr [rbx + 0x310], 0x02000000
    mov dword ptr [rbx + 0x300], 0x4055
    DONE_LOOP
END_PROGRAM send_ipi

PROGRAM irq3
    lea rbx, [rip + 5f]
    lea rax, [rip + 10f]
    mov ecx, {irq_vec}
11:
    mov rdx, rcx
    shl rdx, 4
    add rdx, rbx
    mov word ptr [rdx], ax
    mov word ptr [rdx + 2], 0x08
    mov word ptr [rdx + 4], 0x8e00
    mov r8, rax
    shr r8, 16
    mov word ptr [rdx + 6], r8w
    shr r8, 16
    mov dword ptr [rdx + 8], r8d
    mov dword ptr [rdx + 12], 0
    add rax, 16
    inc ecx
    cmp ecx, {irq_vec} + 3
    jne 11b
    lea rax, [rip + 3f]
    mov qword ptr [rax + 2], rbx
    lidt [rax]
    sti
    HC {hc_ready}
1:
    hlt
    jmp 1b
    .balign 16
10:
    push rdi
    mov edi, {irq_vec}
    jmp 12f
    .balign 16
    push rdi
    mov edi, {irq_vec} + 1
    jmp 12f
    .balign 16
    push rdi
    mov edi, {irq_vec} + 2
    jmp 12f
12:
    push rax
    HC {hc_report}
    pop rax
    pop rdi
    iretq
    .balign 16
3:
    .word 256 * 16 - 1
    .quad 0
    .balign 16
5:
    .skip 256 * 16
END_PROGRAM irq3

PROGRAM pio_loop
2:
    out {port0}, al
    jmp 2b
END_PROGRAM pio_loop

PROGRAM mmio_read_loop
    mov rbx, {mmio}
2:
    mov eax, dword ptr [rbx]
    jmp 2b
END_PROGRAM mmio_read_loop

PROGRAM mmio_write_loop
    mov rbx, {mmio}
2:
    mov dword ptr [rbx], eax
    jmp 2b
END_PROGRAM mmio_write_loop

PROGRAM hypercall_loop
2:
    HC {hc_nr}
    jmp 2b
END_PROGRAM hypercall_loop

PROGRAM demo
    lea rsi, [rip + 20f]
    call 30f
    mov rdi, 40
    mov rsi, 2
    HC {hc_add}
    REPORT rax
    mov rbx, {mmio}
    mov dword ptr [rbx], 21
    mov eax, dword ptr [rbx + 4]
    REPORT rax
    lea rbx, [rip + 25f]
    lea rax, [rip + 24f]
    mov word ptr [rbx + {irq_vec} * 16], ax
    mov word ptr [rbx + {irq_vec} * 16 + 2], 0x08
    mov word ptr [rbx + {irq_vec} * 16 + 4], 0x8e00
    shr rax, 16
    mov word ptr [rbx + {irq_vec} * 16 + 6], ax
    shr rax, 16
    mov dword ptr [rbx + {irq_vec} * 16 + 8], eax
    lea rax, [rip + 23f]
    mov qword ptr [rax + 2], rbx
    lidt [rax]
    sti
    HC {hc_ready}
21:
    cmp byte ptr [rip + 26f], 0
    jne 22f
    hlt
    jmp 21b
22:
    cli
    lea rsi, [rip + 27f]
    call 30f
    mov dx, 0x604
    mov ax, 0x2000
    out dx, ax
    DONE_LOOP
24:
    push rsi
    push rax
    push rdx
    lea rsi, [rip + 28f]
    call 30f
    mov byte ptr [rip + 26f], 1
    pop rdx
    pop rax
    pop rsi
    iretq
30:
    mov dx, 0x3f8
31:
    lodsb
    test al, al
    jz 32f
    out dx, al
    jmp 31b
32:
    ret
20:
    .asciz "Hello from a 64-bit guest on KVM!\n"
27:
    .asciz "Bye.\n"
28:
    .asciz "(interrupt)\n"
26:
    .byte 0
    .balign 16
23:
    .word 256 * 16 - 1
    .quad 0
    .balign 16
25:
    .skip 256 * 16
END_PROGRAM demo
"#,
    hc_report = const c::HC_REPORT,
    hc_done = const c::HC_DONE,
    hc_ready = const c::HC_READY,
    port0 = const c::IO_PORT,
    port1 = const c::IO_PORT + 2,
    port2 = const c::IO_PORT + 4,
    out0 = const c::IO_OUT_DATA[0],
    out1 = const c::IO_OUT_DATA[1],
    out2 = const c::IO_OUT_DATA[2],
    in_before = const c::IO_IN_RAX_BEFORE,
    mmio = const MMIO_BASE,
    mw0 = const c::MMIO_WRITE_DATA[0],
    mw1 = const c::MMIO_WRITE_DATA[1],
    mw2 = const c::MMIO_WRITE_DATA[2],
    mw3 = const c::MMIO_WRITE_DATA[3],
    a0 = const c::HYPERCALL_ARGS[0],
    a1 = const c::HYPERCALL_ARGS[1],
    a2 = const c::HYPERCALL_ARGS[2],
    a3 = const c::HYPERCALL_ARGS[3],
    a4 = const c::HYPERCALL_ARGS[4],
    a5 = const c::HYPERCALL_ARGS[5],
    hc_nr = const c::HYPERCALL_NR,
    npf_addr = const RO_PAGE + c::NPF_OFFSET as u64,
    npf_data = const c::NPF_DATA,
    cpu_up_dest = const c::CPU_UP_TARGET << 24,
    irq_vec = const IRQ_VECTOR,
    msr = const SYSREG_MSR,
    sysreg_write = const c::SYSREG_WRITE_VALUE,
    below = const RAM_BASE - 0x1000,
    above = const RAM_BASE + RAM_SIZE,
    smp_iterations = const c::SMP_ITERATIONS,
    port_str = const STRING_IO_PORT,
    hc_add = const HC_ADD,
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
    /// `fwait`, which KVM's instruction emulator refuses on this platform (then `HC_DONE`).
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
program!(
    /// The demo: prints a greeting to the serial port 0x3f8, asks hypercall [`HC_ADD`] for
    /// 40 + 2 and reports the result, writes 21 to the MMIO register at [`MMIO_BASE`] and
    /// reports what it reads back from `MMIO_BASE + 4`, takes interrupt [`IRQ_VECTOR`] (its
    /// handler prints a line), prints goodbye and powers off through port 0x604.
    pub demo
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
    })
}
