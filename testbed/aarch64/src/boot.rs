//! Boot: stacks, BSS, the EL2 MMU (identity map), exception vectors, per-CPU
//! virtualization enable, the second CPU, and the hand-over to the scenario runner (CPU 0)
//! and the job mailbox (CPU 1).

use core::sync::atomic::{AtomicBool, Ordering};

use axvcpu::AxPerCpu;
use axvcpu_aarch64::Aarch64PerCpu;
use axvcpu_testbed::mailbox::Mailbox;

use crate::hal::{self, Hal};
use crate::println;

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

/// CPU `i` has enabled virtualization and is serving (1) or running (0).
static ONLINE: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Memory and console are ready.
static MEMORY_READY: AtomicBool = AtomicBool::new(false);

/// Jobs for other CPUs.
pub static MAILBOX: Mailbox<MAX_CPUS> = Mailbox::new();

/// Whether CPU `i` is up.
pub fn online(i: usize) -> bool {
    ONLINE.get(i).is_some_and(|o| o.load(Ordering::Acquire))
}

/// PSCI `CPU_ON` (64-bit) over `smc`: QEMU's firmware answers it at EL2.
fn start_cpu(cpu: usize) -> bool {
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

/// The virtualization state of each CPU, enabled at boot for the whole run.
pub static PERCPU: [spin::Mutex<Option<AxPerCpu<Aarch64PerCpu<Hal>>>>; MAX_CPUS] =
    [const { spin::Mutex::new(None) }; MAX_CPUS];

fn enable_virtualization(cpu: usize) {
    let mut percpu = match AxPerCpu::<Aarch64PerCpu<Hal>>::new(cpu) {
        Ok(p) => p,
        Err(e) => fail(format_args!("CPU {cpu}: per-CPU state: {e}")),
    };
    if let Err(e) = percpu.hardware_enable() {
        fail(format_args!("CPU {cpu}: hardware_enable: {e}"));
    }
    *PERCPU[cpu].lock() = Some(percpu);
}

fn fail(why: core::fmt::Arguments) -> ! {
    println!("testbed: FATAL {why}");
    hal::shutdown(false)
}

#[unsafe(no_mangle)]
extern "C" fn testbed_rust_start(cpu: usize, boot: usize) -> ! {
    if boot != 0 {
        hal::init_memory();
        // SAFETY: QEMU virt's GICv2 distributor and CPU interface, identity-mapped as
        // device memory on every CPU; the testbed uses no SGI itself.
        unsafe { axvcpu_aarch64::gic::set_gic_v2(hal::GICD, hal::GICC) };
        // SAFETY: the same GIC's virtual interface control frame; the testbed leaves it to
        // the backend.
        unsafe { axvcpu_aarch64::gic::set_gic_v2_hyp(hal::GICH) };
        MEMORY_READY.store(true, Ordering::Release);
        println!("testbed-aarch64: boot CPU {cpu} at EL{}", hal::current_el());
        if cfg!(not(feature = "bench")) && !start_cpu(1) {
            println!("testbed-aarch64: CPU 1 did not start; running on one CPU");
        }
    } else {
        while !MEMORY_READY.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
    }
    enable_virtualization(cpu);
    ONLINE[cpu].store(true, Ordering::Release);
    if cpu == 0 {
        if !online(1) && cfg!(not(feature = "bench")) {
            // Give CPU 1 a moment to come up.
            let t0 = hal::now_ns();
            while !online(1) && hal::now_ns() - t0 < 500_000_000 {
                core::hint::spin_loop();
            }
        }
        let ok = crate::platform::main();
        hal::shutdown(ok)
    } else {
        MAILBOX.serve(cpu)
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
    fail(format_args!(
        "host exception on CPU {} (vector {vector}): ESR_EL2 {esr:#x} ELR_EL2 {elr:#x} FAR_EL2 {far:#x}",
        hal::cpu_id()
    ))
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    fail(format_args!("panic on CPU {}: {info}", hal::cpu_id()))
}
