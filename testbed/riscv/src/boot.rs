//! Boot: stacks, BSS, the trap handler, starting the second hart through SBI HSM, and the
//! hand-over to `axvcpu-testbed`'s boot flow (H-extension enable on every hart, then the
//! scenario runner on hart 0 and the job mailbox on hart 1).

use axvcpu_testbed::boot::{fail, Cpus};

use crate::arch::Riscv;
use crate::hal;

/// Harts the testbed uses (CPU id = hart id).
pub const MAX_HARTS: usize = 2;
const STACK_SIZE: usize = 256 * 1024;

#[repr(C, align(16))]
struct Stacks([[u8; STACK_SIZE]; MAX_HARTS]);

#[unsafe(link_section = ".bss.stack")]
#[unsafe(no_mangle)]
static mut TESTBED_STACKS: Stacks = Stacks([[0; STACK_SIZE]; MAX_HARTS]);

core::arch::global_asm!(
    r#"
    .section .text.entry, "ax"
    .global _start
_start:
    la t0, __bss_start
    la t1, __bss_end
1:  bgeu t0, t1, 2f
    sd zero, 0(t0)
    addi t0, t0, 8
    j 1b
2:  li a2, 1
    j 3f
    .global testbed_secondary_start
testbed_secondary_start:
    li a2, 0
3:  li t0, {max_harts}
    bgeu a0, t0, 5f
    la sp, TESTBED_STACKS
    addi t1, a0, 1
    slli t1, t1, {stack_shift}
    add sp, sp, t1
    mv tp, a0
    li t0, 0x2000
    csrs sstatus, t0
    la t0, testbed_trap
    csrw stvec, t0
    call testbed_rust_start
5:  wfi
    j 5b

    .balign 4
testbed_trap:
    call testbed_trap_rust
    j testbed_trap
"#,
    max_harts = const MAX_HARTS,
    stack_shift = const STACK_SIZE.trailing_zeros(),
);

/// The harts' state; [`testbed_rust_start`] enters the shared boot flow through it.
pub static CPUS: Cpus<Riscv, MAX_HARTS> = Cpus::new();

/// SBI HSM `hart_start` at the secondary entry; `true` if the hart will start.
pub fn start_hart(hart: usize) -> bool {
    extern "C" {
        fn testbed_secondary_start();
    }
    // HSM hart_start(hartid, start_addr, opaque)
    let (err, _) = hal::sbi(
        0x48_534d,
        0,
        hart,
        testbed_secondary_start as *const () as usize,
        0,
    );
    err == 0
}

#[unsafe(no_mangle)]
extern "C" fn testbed_rust_start(hart: usize, _arg: usize, boot: usize) -> ! {
    #[cfg(feature = "linux")]
    {
        CPUS.start_with(hart, boot != 0, crate::linux::main)
    }
    #[cfg(not(feature = "linux"))]
    {
        CPUS.start(hart, boot != 0)
    }
}

#[unsafe(no_mangle)]
extern "C" fn testbed_trap_rust() -> ! {
    let (scause, sepc, stval): (usize, usize, usize);
    // SAFETY: reads trap CSRs.
    unsafe {
        core::arch::asm!("csrr {}, scause", "csrr {}, sepc", "csrr {}, stval",
            out(reg) scause, out(reg) sepc, out(reg) stval)
    };
    fail::<Riscv>(format_args!(
        "host trap on hart {}: scause {scause:#x} sepc {sepc:#x} stval {stval:#x}",
        hal::hart_id()
    ))
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    fail::<Riscv>(format_args!("panic on hart {}: {info}", hal::hart_id()))
}
