//! Boot: stacks, BSS, trap handler, per-hart H-extension enable, the second hart, and the
//! hand-over to the scenario runner (hart 0) and the job mailbox (hart 1).

use core::sync::atomic::{AtomicBool, Ordering};

use axvcpu::AxPerCpu;
use axvcpu_riscv::RiscvPerCpu;
use axvcpu_testbed::mailbox::Mailbox;

use crate::hal::{self, Hal};
use crate::println;

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

/// Hart `i` has enabled virtualization and is serving (1) or running (0).
static ONLINE: [AtomicBool; MAX_HARTS] = [const { AtomicBool::new(false) }; MAX_HARTS];
/// Memory and console are ready.
static MEMORY_READY: AtomicBool = AtomicBool::new(false);

/// Jobs for other harts.
pub static MAILBOX: Mailbox<MAX_HARTS> = Mailbox::new();

/// Whether hart `i` is up.
pub fn online(i: usize) -> bool {
    ONLINE.get(i).is_some_and(|o| o.load(Ordering::Acquire))
}

fn start_hart(hart: usize) -> bool {
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

/// The virtualization state of each hart, enabled at boot for the whole run.
pub static PERCPU: [spin::Mutex<Option<AxPerCpu<RiscvPerCpu<Hal>>>>; MAX_HARTS] =
    [const { spin::Mutex::new(None) }; MAX_HARTS];

fn enable_virtualization(hart: usize) {
    let mut percpu = match AxPerCpu::<RiscvPerCpu<Hal>>::new(hart) {
        Ok(p) => p,
        Err(e) => fail(format_args!("hart {hart}: per-CPU state: {e}")),
    };
    if let Err(e) = percpu.hardware_enable() {
        fail(format_args!("hart {hart}: hardware_enable: {e}"));
    }
    match PERCPU.get(hart) {
        Some(slot) => *slot.lock() = Some(percpu),
        None => fail(format_args!("hart {hart}: beyond MAX_HARTS")),
    }
}

fn fail(why: core::fmt::Arguments) -> ! {
    println!("testbed: FATAL {why}");
    hal::shutdown(false)
}

#[unsafe(no_mangle)]
extern "C" fn testbed_rust_start(hart: usize, _arg: usize, boot: usize) -> ! {
    if boot != 0 {
        hal::init_memory();
        MEMORY_READY.store(true, Ordering::Release);
        println!("testbed-riscv: boot hart {hart}");
        // Hart 0 runs the scenarios and hart 1 serves jobs, whichever booted.
        let other = if hart == 0 { 1 } else { 0 };
        let want_second = cfg!(not(feature = "bench")) || hart != 0;
        if want_second && !start_hart(other) {
            println!("testbed-riscv: hart {other} did not start; running on one CPU");
        }
    } else {
        while !MEMORY_READY.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
    }
    enable_virtualization(hart);
    if let Some(online) = ONLINE.get(hart) {
        online.store(true, Ordering::Release);
    }
    if hart == 0 {
        if !online(1) && cfg!(not(feature = "bench")) {
            // Give hart 1 a moment to come up.
            let t0 = hal::now_ns();
            while !online(1) && hal::now_ns() - t0 < 500_000_000 {
                core::hint::spin_loop();
            }
        }
        let ok = crate::platform::main();
        hal::shutdown(ok)
    } else {
        MAILBOX.serve(hart)
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
    fail(format_args!(
        "host trap on hart {}: scause {scause:#x} sepc {sepc:#x} stval {stval:#x}",
        hal::hart_id()
    ))
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    fail(format_args!("panic on hart {}: {info}", hal::hart_id()))
}
