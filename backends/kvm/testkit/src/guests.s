# This backend's own guest programs (64-bit, Intel syntax), assembled by `guests.rs` after
# the shared contract programs of axvcpu-guests-x86, whose macros HC, REPORT and DONE_LOOP
# they use; `guests.rs` supplies the `{{name}}` constants. Each PROGRAM is copied to a
# page-aligned entry in guest RAM.

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
    mov rax, {mmio}
    jmp rax
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
    HC {ready}
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
    HC {report}
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
