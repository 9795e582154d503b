# The x86-64 chaos runtime (axvcpu_conformance::Platform::create_chaos_vm), 64-bit Intel
# syntax, shared by the x86 backends like src/contract.s (the crate's `chaos_asm!` hands it
# out; the user's `hypercall`, `PROGRAM` and `END_PROGRAM` macros come first). Operands:
#   chaos_code, chaos_code_bytes, chaos_data, chaos_counts
#        CHAOS_CODE_OFFSET, CHAOS_CODE_BYTES, CHAOS_DATA_OFFSET, CHAOS_COUNTS_OFFSET
#
# Programs: `chaos` (the runtime, copied to the entry) and `chaos_hypercall` (the hypercall
# instruction alone, whose bytes the platform hands the generator: on Intel the testbed
# rewrites it to `vmcall` with every other site).
#
# Memory, from the entry: the runtime's code and GDT/TSS, the IDT at +0x2000, the IST stack
# below +0x3f00, a word at +0x3f00 the handler keeps the frame's address in, the counts at
# chaos_counts, the random code at chaos_code, the scratch page at chaos_data (the code's
# stack starts near its top).
#
# Every IDT gate uses IST 1, so a fault with any RSP lands on the runtime's stack. The
# handler tells an error-code frame from one without by where CS (0x08) is (an `int n` of an
# error-code vector pushes none), counts, and for vectors 0..31 moves RIP to the next 16-byte
# slot of the code (the code's start if RIP is outside it); interrupts (32..255) need no
# acknowledgement (the vector is the IDT entry) and return to the interrupted instruction.

PROGRAM chaos
80:
    # Our own GDT: code 0x08, data 0x10, a 64-bit TSS at 0x18.
    lea rax, [rip + 83f]
    lea rbx, [rip + 84f]
    mov word ptr [rax + 0x18 + 2], bx
    shr rbx, 16
    mov byte ptr [rax + 0x18 + 4], bl
    mov byte ptr [rax + 0x18 + 7], bh
    shr rbx, 16
    mov dword ptr [rax + 0x18 + 8], ebx
    lea rbx, [rip + 82f]
    mov qword ptr [rbx + 2], rax
    lgdt [rbx]
    push 0x08
    lea rax, [rip + 1f]
    push rax
    retfq
1:
    mov eax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    lea rax, [rip + 80b + 0x3f00]
    lea rbx, [rip + 84f]
    mov qword ptr [rbx + 0x04], rax
    mov qword ptr [rbx + 0x24], rax
    mov eax, 0x18
    ltr ax
    # 256 interrupt gates, IST 1, to the 16-byte stubs.
    lea rbx, [rip + 80b + 0x2000]
    lea rax, [rip + 86f]
    xor ecx, ecx
2:
    mov word ptr [rbx], ax
    mov word ptr [rbx + 2], 0x08
    mov word ptr [rbx + 4], 0x8e01
    mov rdx, rax
    shr rdx, 16
    mov word ptr [rbx + 6], dx
    shr rdx, 16
    mov dword ptr [rbx + 8], edx
    mov dword ptr [rbx + 12], 0
    add rax, 16
    add rbx, 16
    inc ecx
    cmp ecx, 256
    jne 2b
    lea rax, [rip + 81f]
    lea rbx, [rip + 80b + 0x2000]
    mov qword ptr [rax + 2], rbx
    lidt [rax]
    mov qword ptr [rip + 80b + {chaos_counts}], 0
    mov qword ptr [rip + 80b + {chaos_counts} + 8], 0
    lea rsp, [rip + 80b + {chaos_data} + 0x1000 - 64]
    sti
    jmp 80b + {chaos_code}

# The common handler: [rsp] = vector, then the CPU's frame, with or without an error code.
85:
    push rax
    push rbx
    push rcx
    lea rbx, [rsp + 32]
    cmp qword ptr [rbx + 8], 0x08
    je 3f
    add rbx, 8
3:
    cmp qword ptr [rsp + 24], 32
    jae 5f
    inc qword ptr [rip + 80b + {chaos_counts}]
    and qword ptr [rbx + 16], ~0x100
    lea rcx, [rip + 80b + {chaos_code}]
    mov rax, qword ptr [rbx]
    sub rax, rcx
    cmp rax, {chaos_code_bytes}
    jae 4f
    and rax, ~15
    add rax, 16
    cmp rax, {chaos_code_bytes}
    jb 6f
4:
    xor eax, eax
6:
    add rax, rcx
    mov qword ptr [rbx], rax
    jmp 7f
5:
    inc qword ptr [rip + 80b + {chaos_counts} + 8]
7:
    mov qword ptr [rip + 80b + 0x3f00], rbx
    pop rcx
    pop rbx
    pop rax
    mov rsp, qword ptr [rip + 80b + 0x3f00]
    iretq

    .balign 16
81:
    .word 256 * 16 - 1
    .quad 0
    .balign 16
82:
    .word 5 * 8 - 1
    .quad 0
    .balign 16
83:
    .quad 0
    .quad 0x00209a0000000000
    .quad 0x0000920000000000
    .quad 0x0000890000000067
    .quad 0
    .balign 16
84:
    .skip 0x68
    .balign 16
86:
    .set chaos_vector, 0
    .rept 256
    .balign 16
    .byte 0x68
    .long chaos_vector
    jmp 85b
    .set chaos_vector, chaos_vector + 1
    .endr
END_PROGRAM chaos

PROGRAM chaos_hypercall
    hypercall
END_PROGRAM chaos_hypercall
