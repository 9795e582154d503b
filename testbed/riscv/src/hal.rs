//! The testbed's RISC-V host services: UART console, hart id, clock, SBI calls, power-off.
//! (Heap, frames and the `AxVCpuHal` are `axvcpu-testbed`'s.)

use axvcpu_testbed::console::Console;

/// QEMU virt's 16550 UART.
const UART: usize = 0x1000_0000;
/// End of QEMU virt RAM with `-m 128M`: the heap and frames use it all.
#[cfg(not(feature = "linux"))]
pub const RAM_END: usize = 0x8800_0000;
/// With the `linux` feature (`-m 1G`) the heap and frames end here: the guest's RAM and
/// the parameter block follow (`linux::loader`).
#[cfg(feature = "linux")]
pub const RAM_END: usize = 0x9000_0000;

fn uart_putc(b: u8) {
    let thr = UART as *mut u8;
    let lsr = (UART + 5) as *const u8;
    // SAFETY: the UART's registers, identity-mapped (no paging in the testbed).
    unsafe {
        while lsr.read_volatile() & 0x20 == 0 {}
        thr.write_volatile(b);
    }
}

/// The console.
pub static CONSOLE: Console = Console::new(uart_putc);

/// This hart's id (kept in `tp` from boot).
pub fn hart_id() -> usize {
    let id: usize;
    // SAFETY: reads a register.
    unsafe { core::arch::asm!("mv {}, tp", out(reg) id, options(nomem, nostack)) };
    id
}

/// `time` in nanoseconds (QEMU virt: 10 MHz).
pub fn now_ns() -> u64 {
    let t: u64;
    // SAFETY: reads a counter.
    unsafe { core::arch::asm!("rdtime {}", out(reg) t, options(nomem, nostack)) };
    t * 100
}

/// Retired instructions on this hart.
pub fn instret() -> u64 {
    let t: u64;
    // SAFETY: reads a counter.
    unsafe { core::arch::asm!("rdinstret {}", out(reg) t, options(nomem, nostack)) };
    t
}

/// Sleeps until an interrupt is pending and enabled at this hart (taken or not: the
/// hypervisor runs with `sstatus.SIE` clear, `wfi` ends all the same): a kick, the host
/// timer carrying a guest's deadline, or the guest's own timer (`vsie` is live in `hie`
/// while a vCPU is bound).
#[cfg(feature = "linux")]
pub fn wait_for_interrupt() {
    // SAFETY: waits; changes no state.
    unsafe { core::arch::asm!("wfi", options(nostack, nomem)) };
}

/// QEMU virt's PLIC, and the host UART's source on it.
#[cfg(feature = "linux")]
const PLIC: usize = 0x0c00_0000;
#[cfg(feature = "linux")]
const UART_SOURCE: usize = 10;

/// This hart's supervisor-mode PLIC context (QEMU virt: `2 * hart + 1`).
#[cfg(feature = "linux")]
fn plic_context() -> usize {
    2 * hart_id() + 1
}

/// Console input for the guest: enables the host UART's "received data" interrupt and
/// routes it through the host PLIC to this hart's supervisor external interrupt, so typed
/// input ends this hart's guest run (an `ExternalInterrupt` exit) or its `wfi`; the line
/// stays high until [`console_input`] empties the UART, which also claims and completes
/// it. Call on the hart that calls [`console_input`].
#[cfg(feature = "linux")]
pub fn enable_console_input() {
    let ctx = plic_context();
    // SAFETY: the host UART's IER and the host PLIC's priority, enable and threshold
    // registers of this hart's S-mode context, identity-mapped; only the console's own
    // interrupt changes. `sie.SEIE` lets it end a `wfi` and a guest's run (the hypervisor
    // runs with `sstatus.SIE` clear, so it is never taken in HS-mode code).
    unsafe {
        ((PLIC + 4 * UART_SOURCE) as *mut u32).write_volatile(1);
        let enable = (PLIC + 0x2000 + 0x80 * ctx + 4 * (UART_SOURCE / 32)) as *mut u32;
        enable.write_volatile(enable.read_volatile() | 1 << (UART_SOURCE % 32));
        ((PLIC + 0x20_0000 + 0x1000 * ctx) as *mut u32).write_volatile(0);
        ((UART + 1) as *mut u8).write_volatile(0x01);
        core::arch::asm!("csrs sie, {}", in(reg) 1usize << 9, options(nostack, nomem));
    }
}

/// Takes what the host's console received, up to `buf.len()` bytes; returns how many. A
/// host external interrupt pending at this hart (`sip.SEIP`) is claimed and completed once
/// the UART is empty, so it does not end the next guest run again.
#[cfg(feature = "linux")]
pub fn console_input(buf: &mut [u8]) -> usize {
    let mut n = 0;
    for b in buf.iter_mut() {
        // SAFETY: the UART's line status and receive registers, identity-mapped; reading
        // the receive buffer takes a byte the UART holds (LSR.DR set).
        unsafe {
            if ((UART + 5) as *const u8).read_volatile() & 1 == 0 {
                break;
            }
            *b = (UART as *const u8).read_volatile();
        }
        n += 1;
    }
    let sip: usize;
    // SAFETY: reads a CSR.
    unsafe { core::arch::asm!("csrr {}, sip", out(reg) sip, options(nomem, nostack)) };
    if sip & (1 << 9) != 0 {
        let claim = (PLIC + 0x20_0004 + 0x1000 * plic_context()) as *mut u32;
        // SAFETY: this hart's S-mode claim/complete register, identity-mapped: the claim
        // takes the highest pending source (the UART's, the only one enabled), the write
        // completes it.
        unsafe {
            let source = claim.read_volatile();
            if source != 0 {
                claim.write_volatile(source);
            }
        }
    }
    n
}

/// Sends a supervisor software interrupt to `hart` (SBI IPI): ends its `wait_for_interrupt`.
#[cfg(feature = "linux")]
pub fn send_ipi(hart: usize) {
    sbi(0x0073_5049, 0, 1 << hart, 0, 0);
}

/// Clears this hart's pending supervisor software interrupt (`sip.SSIP`).
#[cfg(feature = "linux")]
pub fn clear_soft_interrupt() {
    // SAFETY: clears a pending-interrupt bit of this hart; no memory is touched.
    unsafe { core::arch::asm!("csrc sip, {}", in(reg) 2usize, options(nostack, nomem)) };
}

/// An SBI call.
pub fn sbi(eid: usize, fid: usize, a0: usize, a1: usize, a2: usize) -> (isize, usize) {
    let (e, v);
    // SAFETY: an SBI call.
    unsafe {
        core::arch::asm!("ecall", inlateout("a0") a0 => e, inlateout("a1") a1 => v,
            in("a2") a2, in("a6") fid, in("a7") eid, options(nostack))
    };
    (e, v)
}

/// QEMU virt's SiFive test finisher: `0x5555` exits 0, `code << 16 | 0x3333` exits `code`.
const TEST_FINISHER: usize = 0x10_0000;

/// Powers off: SRST shutdown, reason "system failure" unless `ok`. OpenSBI's QEMU reset
/// driver ignores the reason, so a failure first goes straight to the test finisher to make
/// QEMU exit with status 1.
pub fn shutdown(ok: bool) -> ! {
    // The first hart to shut down decides the status; any other just parks.
    static SHUTTING_DOWN: core::sync::atomic::AtomicBool =
        core::sync::atomic::AtomicBool::new(false);
    if SHUTTING_DOWN.swap(true, core::sync::atomic::Ordering::AcqRel) {
        park();
    }
    if !ok {
        // SAFETY: the finisher register, identity-mapped; writing it ends the machine.
        unsafe { (TEST_FINISHER as *mut u32).write_volatile((1 << 16) | 0x3333) };
        // QEMU ends the machine asynchronously: an SRST right away would have OpenSBI write
        // the finisher's "pass" over the failure (QEMU then exits 0). Give it a second
        // before falling back to SRST (a machine without the finisher).
        let t0 = now_ns();
        while now_ns() - t0 < 1_000_000_000 {
            core::hint::spin_loop();
        }
    }
    sbi(0x5352_5354, 0, 0, if ok { 0 } else { 1 }, 0);
    park()
}

fn park() -> ! {
    loop {
        // SAFETY: waiting forever.
        unsafe { core::arch::asm!("wfi") };
    }
}
