//! The testbed's AArch64 host services: PL011 console, GIC addresses, CPU id, clock,
//! PSCI and semihosting, the PMU cycle counter. (Heap, frames and the `AxVCpuHal` are
//! `axvcpu-testbed`'s.)

use axvcpu_testbed::console::Console;

/// QEMU virt's PL011 UART.
pub const UART: usize = 0x0900_0000;
/// QEMU virt's GICv2 distributor.
pub const GICD: usize = 0x0800_0000;
/// QEMU virt's GICv2 CPU interface.
pub const GICC: usize = 0x0801_0000;
/// QEMU virt's GICv2 virtual interface control (`GICH`, banked per CPU).
pub const GICH: usize = 0x0803_0000;
/// QEMU virt's GICv2 virtual CPU interface (`GICV`), 8 KiB, mapped into vGIC guests.
pub const GICV: usize = 0x0804_0000;
/// End of QEMU virt RAM with `-m 128M`: the heap and frames use it all.
#[cfg(not(feature = "linux"))]
pub const RAM_END: usize = 0x4800_0000;
/// With the `linux` feature (`-m 1G`) the heap and frames end here: the guest's RAM and
/// the staging area QEMU loads the guest's files into follow (`linux::loader`).
#[cfg(feature = "linux")]
pub const RAM_END: usize = 0x5000_0000;

fn uart_putc(b: u8) {
    let dr = UART as *mut u32;
    let fr = (UART + 0x18) as *const u32;
    // SAFETY: the PL011's registers, identity-mapped as device memory.
    unsafe {
        while fr.read_volatile() & (1 << 5) != 0 {}
        dr.write_volatile(b as u32);
    }
}

/// The console.
pub static CONSOLE: Console = Console::new(uart_putc);

/// This CPU's id (`MPIDR_EL1.Aff0`).
pub fn cpu_id() -> usize {
    let mpidr: u64;
    // SAFETY: reads a register.
    unsafe { core::arch::asm!("mrs {}, mpidr_el1", out(reg) mpidr, options(nomem, nostack)) };
    (mpidr & 0xff) as usize
}

/// The SGI that wakes an idle CPU when a job is posted to it (the backend kicks with 14,
/// the self-tests use 13).
pub const WAKE_SGI: u32 = 12;

/// A CPU with no job: enables the wake SGI (banked per CPU), sleeps until an interrupt is
/// pending, then acknowledges and ends it at the CPU interface (EL2 keeps IRQs masked, so
/// nothing else takes it; a stray kick SGI ended here is harmless, as the kick's request
/// flag is what counts). A wake sent before the `wfi` is pending, so the `wfi` returns.
pub fn idle() {
    // SAFETY: the GICv2 distributor and CPU interface, identity-mapped as device memory.
    unsafe {
        ((GICD + 0x100) as *mut u32).write_volatile(1 << WAKE_SGI);
        core::arch::asm!("dsb sy", "wfi", options(nostack, preserves_flags));
        let iar = ((GICC + 0x0c) as *const u32).read_volatile();
        if iar & 0x3ff != 1023 {
            ((GICC + 0x10) as *mut u32).write_volatile(iar);
        }
    }
}

/// Sends the wake SGI to `cpu` (after posting it a job).
pub fn wake(cpu: usize) {
    if cpu < 8 {
        // SAFETY: the GICv2 distributor's SGI register, identity-mapped as device memory.
        unsafe {
            core::arch::asm!("dsb sy", options(nostack, preserves_flags));
            ((GICD + 0xf00) as *mut u32).write_volatile((1 << (16 + cpu)) | WAKE_SGI);
        }
    }
}

/// The host PL011's interrupt: SPI 1 (INTID 33) on QEMU virt.
#[cfg(feature = "linux")]
const UART_INTID: usize = 33;

/// Console input for the guest: unmasks the host PL011's receive and receive-timeout
/// interrupts and routes their line to CPU 0, so typed input ends CPU 0's guest run (an
/// `ExternalInterrupt` exit, acknowledged by the backend) or its `wfi`. The line stays high
/// until [`console_input`] empties the FIFO. Call after the backend's GIC set-up, on CPU 0.
#[cfg(feature = "linux")]
pub fn enable_console_input() {
    // SAFETY: the PL011's IMSC and the GICv2 distributor's enable, priority and target
    // registers of one SPI, identity-mapped as device memory; only the console's own
    // interrupt changes.
    unsafe {
        ((UART + 0x038) as *mut u32).write_volatile((1 << 4) | (1 << 6));
        ((GICD + 0x400 + UART_INTID) as *mut u8).write_volatile(0x80);
        ((GICD + 0x800 + UART_INTID) as *mut u8).write_volatile(1);
        ((GICD + 0x100 + 4 * (UART_INTID / 32)) as *mut u32).write_volatile(1 << (UART_INTID % 32));
    }
}

/// Takes what the host's console received, up to `buf.len()` bytes; returns how many.
#[cfg(feature = "linux")]
pub fn console_input(buf: &mut [u8]) -> usize {
    let mut n = 0;
    for b in buf.iter_mut() {
        // SAFETY: the PL011's flag and data registers, identity-mapped as device memory;
        // reading DR takes a byte the FIFO holds (RXFE clear).
        unsafe {
            if ((UART + 0x18) as *const u32).read_volatile() & (1 << 4) != 0 {
                break;
            }
            *b = ((UART) as *const u32).read_volatile() as u8;
        }
        n += 1;
    }
    n
}

/// Sleeps until an interrupt is pending at this CPU's GIC interface (taken or not: EL2
/// keeps IRQs masked, `wfi` ends all the same).
pub fn wait_for_interrupt() {
    // SAFETY: waits; changes no state.
    unsafe { core::arch::asm!("dsb sy", "wfi", options(nostack, preserves_flags)) };
}

#[cfg(feature = "linux")]
/// The CPU model from `MIDR_EL1` (what the guest reads too).
pub fn cpu_model() -> &'static str {
    let midr: u64;
    // SAFETY: reads a register.
    unsafe { core::arch::asm!("mrs {}, midr_el1", out(reg) midr, options(nomem, nostack)) };
    match (midr >> 24 & 0xff, midr >> 4 & 0xfff) {
        (0x41, 0xd08) => "Cortex-A72",
        (0x41, 0xd07) => "Cortex-A57",
        (0x41, 0xd03) => "Cortex-A53",
        (0, 0x51) => "QEMU max",
        _ => "other Armv8-A",
    }
}

/// The current exception level.
pub fn current_el() -> u64 {
    let el: u64;
    // SAFETY: reads a register.
    unsafe { core::arch::asm!("mrs {}, CurrentEL", out(reg) el, options(nomem, nostack)) };
    (el >> 2) & 3
}

/// The physical counter in nanoseconds.
pub fn now_ns() -> u64 {
    let (cnt, freq): (u64, u64);
    // SAFETY: reads counters.
    unsafe {
        core::arch::asm!("isb", "mrs {}, cntpct_el0", "mrs {}, cntfrq_el0",
            out(reg) cnt, out(reg) freq, options(nomem, nostack))
    };
    (cnt as u128 * 1_000_000_000 / freq.max(1) as u128) as u64
}

/// An SMC call (PSCI), `x0` returned.
pub fn smc(x0: u64, x1: u64, x2: u64, x3: u64) -> u64 {
    let r: u64;
    // SAFETY: a firmware call; QEMU's PSCI clobbers nothing else.
    unsafe {
        core::arch::asm!("smc #0", inlateout("x0") x0 => r, inlateout("x1") x1 => _,
            inlateout("x2") x2 => _, inlateout("x3") x3 => _, options(nostack))
    };
    r
}

/// Ends QEMU with `status` through semihosting `SYS_EXIT` (`ADP_Stopped_ApplicationExit`,
/// which QEMU turns into its own exit status). The first CPU to shut down decides; any
/// other just parks. PSCI `SYSTEM_OFF` follows in case semihosting is off.
pub fn shutdown(ok: bool) -> ! {
    static SHUTTING_DOWN: core::sync::atomic::AtomicBool =
        core::sync::atomic::AtomicBool::new(false);
    if SHUTTING_DOWN.swap(true, core::sync::atomic::Ordering::AcqRel) {
        park();
    }
    let block: [u64; 2] = [0x2_0026, if ok { 0 } else { 1 }];
    // SAFETY: the semihosting call reads the two-word block; QEMU exits.
    unsafe {
        core::arch::asm!("hlt #0xf000", in("x0") 0x18u64, in("x1") block.as_ptr(),
            options(nostack))
    };
    smc(0x8400_0008, 0, 0, 0);
    park()
}

fn park() -> ! {
    loop {
        // SAFETY: waiting forever.
        unsafe { core::arch::asm!("wfe") };
    }
}

/// Enables SGI `sgi` in the distributor (this CPU's bank) and sends it to this CPU. EL2
/// interrupts stay masked, so it waits in the GIC until a guest runs.
pub fn send_self_sgi(sgi: u32) {
    // SAFETY: the GICv2 distributor, identity-mapped as device memory.
    unsafe {
        ((GICD + 0x100) as *mut u32).write_volatile(1 << sgi);
        ((GICD + 0xf00) as *mut u32).write_volatile((0b10 << 24) | sgi);
    }
}

/// Reads the PMU cycle counter (enabled by [`enable_cycle_counter`]).
pub fn cycles() -> u64 {
    let c: u64;
    // SAFETY: reads a counter.
    unsafe { core::arch::asm!("isb", "mrs {}, pmccntr_el0", out(reg) c, options(nomem, nostack)) };
    c
}

/// Starts the PMU cycle counter, counting at EL2 too (`PMCCFILTR_EL0.NSH`).
pub fn enable_cycle_counter() {
    // SAFETY: PMU setup at EL2.
    unsafe {
        core::arch::asm!(
            "msr pmccfiltr_el0, {f}",
            "mrs {t}, pmcr_el0",
            "orr {t}, {t}, #1",
            "msr pmcr_el0, {t}",
            "msr pmcntenset_el0, {c}",
            "isb",
            f = in(reg) 1u64 << 27,
            c = in(reg) 1u64 << 31,
            t = out(reg) _,
            options(nostack)
        )
    };
}
