# The x86-64 programs of the conformance contract (axvcpu_conformance::contract::GuestProgram),
# 64-bit Intel syntax, shared by the x86 backends: the crate axvcpu-guests-x86 hands this text
# out with its `contract_asm!` macro, and each user assembles it in one `global_asm!` between
# its own definitions and its own programs. Guests run in long mode with guest-virtual =
# guest-physical; each program is position-independent code copied to a page-aligned entry.
#
# Hypercalls follow the contract: number in rax, arguments in rdi, rsi, rdx, rcx, r8, r9,
# result in rax. The user defines, before this text:
#   .macro hypercall            the hypercall instruction (`out 0xf6, eax` on KVM, `vmmcall`
#                               on SVM), with the number already in eax
#   .macro PROGRAM name         opens program `name`: its own 4 KiB-aligned section and a
#                               start label the user's Rust side finds
#   .macro END_PROGRAM name     the program's end label; closes the section
# and passes these `global_asm!` operands (the contract's constants, named as
# axvcpu_testbed::guest_asm! supplies them, plus the x86-only ones):
#   done, report, ready                       HC_DONE, HC_REPORT, HC_READY
#   port0, port1, port2                       IO_PORT, IO_PORT + 2, IO_PORT + 4
#   out0, out1, out2                          IO_OUT_DATA[0..3]
#   in_before                                 IO_IN_RAX_BEFORE
#   mmio                                      the layout's MMIO base
#   w0, w1, w2, w3                            MMIO_WRITE_DATA[0..4]
#   a0 .. a5, hc_nr                           HYPERCALL_ARGS[0..6], HYPERCALL_NR
#   npf_addr, npf_data                        read-only page + NPF_OFFSET, NPF_DATA
#   cpu_up_target                             CPU_UP_TARGET (the secondary's APIC id)
#   irq_vec, irq_vec2                         the irq program's two vectors
#                                             (PlatformInfo::irq_vector, second_irq_vector)
#   msr, sysreg_write                         the sysreg scenario's MSR, SYSREG_WRITE_VALUE
#   below, above                              the pages just below and just above RAM
#   smp_iterations                            SMP_ITERATIONS
#   sig_offset                                SIGNATURE_OFFSET (a power of two)
# This text defines the macros HC, REPORT, GATE, IRQ_GATE and DONE_LOOP, which the user's
# programs after it may use too, and the programs done, io_out, io_in, mmio_write, mmio_read, hypercall, halt
# (also for Regs), system_down, npf, cpu_up, irq, spin, sysreg, isolation, smp and signature
# (CpuDown has none: x86 has no architectural CPU-off).

# Hypercall `nr`.
.macro HC nr
    mov eax, \nr
    hypercall
.endm
# HC_REPORT(src).
.macro REPORT src
    mov rdi, \src
    HC {report}
.endm
# Points vector `vec` of the 16-byte-entry IDT at label `idt` to `handler` (a present 64-bit
# interrupt gate, code selector 0x08). Leaves the IDT's address in rbx; clobbers rax.
.macro GATE idt, vec, handler
    lea rbx, [rip + \idt]
    lea rax, [rip + \handler]
    mov word ptr [rbx + \vec * 16], ax
    mov word ptr [rbx + \vec * 16 + 2], 0x08
    mov word ptr [rbx + \vec * 16 + 4], 0x8e00
    shr rax, 16
    mov word ptr [rbx + \vec * 16 + 6], ax
    shr rax, 16
    mov dword ptr [rbx + \vec * 16 + 8], eax
    mov dword ptr [rbx + \vec * 16 + 12], 0
.endm
# GATE for vector {irq_vec}, then loads the IDTR whose 10-byte image is at label `idtr`.
# Clobbers rax, rbx.
.macro IRQ_GATE idt, handler, idtr
    GATE \idt, {irq_vec}, \handler
    lea rax, [rip + \idtr]
    mov qword ptr [rax + 2], rbx
    lidt [rax]
.endm
# HC_DONE, forever.
.macro DONE_LOOP
77:
    HC {done}
    jmp 77b
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
    mov byte ptr [rbx], {w0}
    mov word ptr [rbx + 8], {w1}
    mov dword ptr [rbx + 16], {w2}
    mov rax, {w3}
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
    mov dword ptr [rbx + 0x310], ({cpu_up_target} << 24)
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
    # Interrupts stay masked (IF = 0 from the start) through both HC_READYs.
    IRQ_GATE 5f, 4f, 3f
    GATE 5f, {irq_vec2}, 7f
    mov byte ptr [rip + 6f], 0
    HC {ready}
    HC {ready}
    sti
1:
    cmp byte ptr [rip + 6f], 0
    jne 2f
    hlt
    jmp 1b
2:
    DONE_LOOP
# Each handler keeps rax and rdi (REPORT's), so a late interrupt taken inside DONE_LOOP's
# `mov eax, done; hypercall` does not change the hypercall.
4:
    push rax
    push rdi
    REPORT {irq_vec}
    mov byte ptr [rip + 6f], 1
    pop rdi
    pop rax
    iretq
7:
    push rax
    push rdi
    REPORT {irq_vec2}
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

# The slot is SIGNATURE_OFFSET past the start: the section starts 4 KiB-aligned (PROGRAM).
PROGRAM signature
    lea rsi, [rip + 3f]
2:
    mov rax, qword ptr [rsi]
    REPORT rax
    mov qword ptr [rsi], rbx
    jmp 2b
    .balign {sig_offset}
3:
    .quad 0
END_PROGRAM signature
