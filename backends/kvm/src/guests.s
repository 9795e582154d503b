# Guest programs (64-bit, Intel syntax), assembled into this crate by `guests.rs`, which
# supplies the `{{name}}` constants. Each PROGRAM is copied to a page-aligned entry in guest
# RAM; the conformance programs follow axvcpu_conformance::contract::GuestProgram.

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
