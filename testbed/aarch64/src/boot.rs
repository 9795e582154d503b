//! Boot: stacks, BSS, the EL2 MMU (identity map), exception vectors, starting the second
//! CPU through PSCI, and the hand-over to `axvcpu-testbed`'s boot flow (virtualization
//! enable on every CPU, then the scenario runner on CPU 0 and the job mailbox on CPU 1).

use axvcpu_testbed::boot::{fail, Cpus};

use crate::arch::Aarch64;
use crate::hal;

/// CPUs the testbed uses (CPU id = `MPIDR_EL1.Aff0`).
pub const MAX_CPUS: usize = 2;
const STACK_SIZE: usize = 256 * 1024;

#[repr(C, align(16))]
struct Stacks([[u8; STACK_SIZE]; MAX_CPUS]);

#[unsafe(link_section = ".bss.stack")]
#[unsafe(no_mangle)]
static mut TESTBED_STACKS: Stacks = Stacks([[0; STACK_SIZE]; MAX_CPUS]);

/// `MAIR_EL2`: attribute 0 Device-nGnRnE, attribute 1 Normal write-back.
const MAIR_EL2: u64 = 0xff00;
/// `TCR_EL2`: RES1 bits 31 and 23, PS = 40 bits, SH0 inner, IRGN0/ORGN0 write-back,
/// 4 KiB granule, T0SZ = 25 (39-bit VA: the walk starts at level 1).
const TCR_EL2: u64 =
    (1 << 31) | (1 << 23) | (0b010 << 16) | (0b11 << 12) | (1 << 10) | (1 << 8) | 25;
/// `SCTLR_EL2`: the RES1 bits, M (MMU), C (data cache), I (instruction cache); A = 0.
const SCTLR_EL2: u64 = 0x30c5_0830 | 1 | (1 << 2) | (1 << 12);

core::arch::global_asm!(
    r#"
    .section .text.entry, "ax"
    .global _start
_start:
    mrs x1, CurrentEL
    cmp x1, #8
    b.ne 8f
    mrs x19, mpidr_el1
    and x19, x19, #0xff
    cbnz x19, 9f
    ldr x1, =__bss_start
    ldr x2, =__bss_end
1:  cmp x1, x2
    b.hs 2f
    str xzr, [x1], #8
    b 1b
2:  mov x20, #1
    b 3f

    .global testbed_secondary_start
testbed_secondary_start:
    mrs x19, mpidr_el1
    and x19, x19, #0xff
    mov x20, #0
3:  cmp x19, #{max_cpus}
    b.hs 9f
    ldr x1, =TESTBED_STACKS
    add x2, x19, #1
    lsl x2, x2, #{stack_shift}
    add x1, x1, x2
    mov sp, x1

    mov x1, #0x33ff
    msr cptr_el2, x1
    ldr x1, =testbed_vectors
    msr vbar_el2, x1
    ldr x1, =testbed_page_table
    msr ttbr0_el2, x1
    ldr x1, ={mair}
    msr mair_el2, x1
    ldr x1, ={tcr}
    msr tcr_el2, x1
    isb
    tlbi alle2
    dsb sy
    isb
    ldr x1, ={sctlr}
    msr sctlr_el2, x1
    isb

    mov x0, x19
    mov x1, x20
    bl testbed_rust_start
9:  wfe
    b 9b

    // Not entered at EL2 (QEMU without virtualization=on): say so on the PL011 and end
    // QEMU with status 1 through semihosting, without touching EL2 registers or Rust.
8:  adr x2, 7f
    ldr x3, ={uart}
6:  ldrb w4, [x2], #1
    cbz w4, 5f
    str w4, [x3]
    b 6b
5:  adr x1, 4f
    mov x0, #0x18
    hlt #0xf000
    b 9b
    .balign 8
4:  .quad 0x20026, 1
7:  .asciz "testbed: FATAL not entered at EL2 (QEMU needs -machine virt,virtualization=on)\r\n"
    .balign 4
    .ltorg

    .macro TB_VEC n
    .balign 0x80
    mov x0, #\n
    b testbed_trap
    .endm
    .balign 0x800
testbed_vectors:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    TB_VEC \n
    .endr
testbed_trap:
    bl testbed_trap_rust
    b testbed_trap

    .section .data.page_table, "aw"
    .balign 4096
    // Level-1 table, 1 GiB blocks: [0, 1 GiB) device (UART, GIC), [1, 2 GiB) RAM.
testbed_page_table:
    .quad 0x0000000000000401
    .quad 0x0000000040000705
    .fill 510, 8, 0
"#,
    max_cpus = const MAX_CPUS,
    uart = const crate::hal::UART,
    stack_shift = const STACK_SIZE.trailing_zeros(),
    mair = const MAIR_EL2,
    tcr = const TCR_EL2,
    sctlr = const SCTLR_EL2,
);

/// The CPUs' state; [`testbed_rust_start`] enters the shared boot flow through it.
pub static CPUS: Cpus<Aarch64, MAX_CPUS> = Cpus::new();

/// PSCI `CPU_ON` (64-bit) over `smc`: QEMU's firmware answers it at EL2.
pub fn start_cpu(cpu: usize) -> bool {
    extern "C" {
        fn testbed_secondary_start();
    }
    let ret = hal::smc(
        0xc400_0003,
        cpu as u64,
        testbed_secondary_start as *const () as u64,
        0,
    );
    ret == 0
}

#[unsafe(no_mangle)]
extern "C" fn testbed_rust_start(cpu: usize, boot: usize) -> ! {
    #[cfg(feature = "linux")]
    {
        CPUS.start_with(cpu, boot != 0, crate::linux::main)
    }
    #[cfg(not(feature = "linux"))]
    {
        CPUS.start(cpu, boot != 0)
    }
}

#[unsafe(no_mangle)]
extern "C" fn testbed_trap_rust(vector: usize) -> ! {
    let (esr, elr, far): (u64, u64, u64);
    // SAFETY: reads EL2 trap registers.
    unsafe {
        core::arch::asm!("mrs {}, esr_el2", "mrs {}, elr_el2", "mrs {}, far_el2",
            out(reg) esr, out(reg) elr, out(reg) far)
    };
    fail::<Aarch64>(format_args!(
        "host exception on CPU {} (vector {vector}): ESR_EL2 {esr:#x} ELR_EL2 {elr:#x} FAR_EL2 {far:#x}",
        hal::cpu_id()
    ))
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    fail::<Aarch64>(format_args!("panic on CPU {}: {info}", hal::cpu_id()))
}
