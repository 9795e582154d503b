//! The testbed's host services: COM1 console, TSC clock (calibrated against the PIT),
//! local APIC, legacy PIC, QEMU and Bochs exit.

use core::sync::atomic::{AtomicU64, Ordering};

use axvcpu_testbed::console::Console;

/// End of RAM with `-m 256M`.
pub const RAM_END: usize = 0x1000_0000;
/// The local APIC (xAPIC default base, identity-mapped).
const APIC: usize = 0xfee0_0000;
/// COM1.
const COM1: u16 = 0x3f8;
/// QEMU's `isa-debug-exit` port.
const DEBUG_EXIT: u16 = 0xf4;
/// Bochs's shutdown port.
const BOCHS_SHUTDOWN: u16 = 0x8900;
/// What the testbed writes to [`DEBUG_EXIT`] when everything passed: QEMU exits with
/// status `(0x10 << 1) | 1` = 33.
pub const EXIT_SUCCESS: u32 = 0x10;
/// ... and when anything failed: status 35.
pub const EXIT_FAILURE: u32 = 0x11;

/// `out` of a byte.
pub fn outb(port: u16, v: u8) {
    // SAFETY: port I/O to legacy devices the testbed owns.
    unsafe { core::arch::asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack)) };
}

/// `in` of a byte.
pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: port I/O to legacy devices the testbed owns.
    unsafe { core::arch::asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack)) };
    v
}

/// Whether this machine is Bochs: with its `port_e9_hack` (xtask's bochsrc turns it on),
/// port 0xe9 reads as 0xe9; QEMU without a debug console, and PC hardware, read 0xff there.
pub fn is_bochs() -> bool {
    inb(0xe9) == 0xe9
}

/// Sets COM1 to 8 data bits, no parity, one stop bit, 115200 baud, FIFOs on, no
/// interrupts. QEMU ignores the line settings, Bochs keeps only the bits of the word length
/// (5 after reset).
pub fn init_uart() {
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x80);
    outb(COM1, 0x01);
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);
    outb(COM1 + 2, 0xc7);
}

fn uart_putc(b: u8) {
    while inb(COM1 + 5) & 0x20 == 0 {
        core::hint::spin_loop();
    }
    outb(COM1, b);
}

/// The console.
pub static CONSOLE: Console = Console::new(uart_putc);

fn apic_read(reg: usize) -> u32 {
    // SAFETY: the local APIC's registers, identity-mapped.
    unsafe { ((APIC + reg) as *const u32).read_volatile() }
}

fn apic_write(reg: usize, v: u32) {
    // SAFETY: the local APIC's registers, identity-mapped.
    unsafe { ((APIC + reg) as *mut u32).write_volatile(v) }
}

/// This CPU's local APIC id.
pub fn cpu_id() -> usize {
    (apic_read(0x20) >> 24) as usize
}

/// Software-enables this CPU's local APIC (spurious vector 0xff), accepts every priority,
/// masks LINT0/LINT1.
pub fn enable_local_apic() {
    apic_write(0x80, 0);
    apic_write(0xf0, 0x1ff);
    apic_write(0x350, 1 << 16);
    apic_write(0x360, 1 << 16);
}

/// Writes the ICR: `low` to APIC id `dest`, and waits until it is sent.
pub fn apic_icr(dest: u32, low: u32) {
    apic_write(0x310, dest << 24);
    apic_write(0x300, low);
    while apic_read(0x300) & (1 << 12) != 0 {
        core::hint::spin_loop();
    }
}

/// The host vector of the local APIC timer (the Linux hypervisor's guest timer deadlines);
/// its handler only sends EOI.
pub const TIMER_VECTOR: u8 = 0xf1;

#[cfg(feature = "linux")]
static APIC_PER_MS: AtomicU64 = AtomicU64::new(0);

/// Measures the local APIC timer (divide by 1) against 10 ms of TSC.
#[cfg(feature = "linux")]
pub fn calibrate_apic_timer() {
    apic_write(0x3e0, 0b1011);
    apic_write(0x320, 1 << 16);
    apic_write(0x380, u32::MAX);
    delay_ms(10);
    let left = apic_read(0x390);
    apic_write(0x380, 0);
    APIC_PER_MS.store((u64::from(u32::MAX - left) / 10).max(1), Ordering::Relaxed);
}

/// Local APIC timer ticks per millisecond (0 before [`calibrate_apic_timer`]).
#[cfg(feature = "linux")]
pub fn apic_timer_per_ms() -> u64 {
    APIC_PER_MS.load(Ordering::Relaxed)
}

/// Arms this CPU's local APIC timer to interrupt ([`TIMER_VECTOR`]) once, `ns` from now
/// (at least one tick; at most what the counter holds).
#[cfg(feature = "linux")]
pub fn arm_timer_ns(ns: u64) {
    let ticks = (u128::from(ns) * u128::from(apic_timer_per_ms()) / 1_000_000)
        .clamp(1, u128::from(u32::MAX)) as u32;
    apic_write(0x320, u32::from(TIMER_VECTOR));
    apic_write(0x380, ticks);
}

/// Stops this CPU's local APIC timer.
#[cfg(feature = "linux")]
pub fn disarm_timer() {
    apic_write(0x380, 0);
}

/// Sleeps until an interrupt (a [`wake`] IPI at the latest): `sti; hlt` takes one pending
/// since the caller's last look at its mailbox, as the testbed runs with interrupts off.
/// Takes what the host's COM1 received, up to `buf.len()` bytes; returns how many. (Its
/// interrupt stays off: the Linux host polls it before each entry of vCPU 0 and at least
/// every [`CONSOLE_POLL_NS`] while vCPU 0 sleeps.)
#[cfg(feature = "linux")]
pub fn console_input(buf: &mut [u8]) -> usize {
    let mut n = 0;
    for b in buf.iter_mut() {
        if inb(COM1 + 5) & 1 == 0 {
            break;
        }
        *b = inb(COM1);
        n += 1;
    }
    n
}

/// How long a sleeping vCPU 0's CPU goes without looking at the console's input.
#[cfg(feature = "linux")]
pub const CONSOLE_POLL_NS: u64 = 20_000_000;

pub fn idle() {
    // SAFETY: waits for an interrupt, whose handler (kick vector: EOI) returns here;
    // interrupts are off again after.
    unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) };
}

/// Ends [`idle`] on `cpu` after a job was posted to it: the kick vector, whose handler
/// only sends EOI (and which a backend running a guest there takes as a late kick).
pub fn wake(cpu: usize) {
    if let Ok(id) = u32::try_from(cpu) {
        apic_icr(id, u32::from(axvcpu_svm::KICK_VECTOR));
    }
}

/// Masks every line of both legacy PICs (the firmware leaves the PIT's IRQ 0 on).
pub fn mask_pic() {
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
}

fn rdtsc() -> u64 {
    // SAFETY: reads the TSC.
    unsafe { core::arch::x86_64::_rdtsc() }
}

static TSC_PER_MS: AtomicU64 = AtomicU64::new(1_000_000);
static TSC0: AtomicU64 = AtomicU64::new(0);

/// Measures the TSC against 10 ms of PIT channel 2 (mode 0, gate on, speaker off).
pub fn calibrate_tsc() {
    const COUNT: u16 = 11932; // 10 ms at 1.193182 MHz
    outb(0x61, (inb(0x61) & !0x02) | 0x01);
    outb(0x43, 0xb0);
    outb(0x42, COUNT as u8);
    outb(0x42, (COUNT >> 8) as u8);
    let t0 = rdtsc();
    while inb(0x61) & 0x20 == 0 {
        core::hint::spin_loop();
    }
    let per_ms = ((rdtsc() - t0) / 10).max(1);
    TSC_PER_MS.store(per_ms, Ordering::Relaxed);
    TSC0.store(rdtsc(), Ordering::Relaxed);
}

/// TSC ticks per millisecond.
pub fn tsc_per_ms() -> u64 {
    TSC_PER_MS.load(Ordering::Relaxed)
}

/// Nanoseconds since calibration.
pub fn now_ns() -> u64 {
    let ticks = rdtsc().saturating_sub(TSC0.load(Ordering::Relaxed));
    (ticks as u128 * 1_000_000 / tsc_per_ms() as u128) as u64
}

/// Spins for `ms` milliseconds.
pub fn delay_ms(ms: u64) {
    let t0 = now_ns();
    while now_ns() - t0 < ms * 1_000_000 {
        core::hint::spin_loop();
    }
}

/// Ends QEMU through `isa-debug-exit` with [`EXIT_SUCCESS`] or [`EXIT_FAILURE`], or Bochs
/// through its shutdown port. The first CPU to shut down decides; any other just parks.
pub fn shutdown(ok: bool) -> ! {
    static SHUTTING_DOWN: core::sync::atomic::AtomicBool =
        core::sync::atomic::AtomicBool::new(false);
    if !SHUTTING_DOWN.swap(true, Ordering::AcqRel) {
        let code = if ok { EXIT_SUCCESS } else { EXIT_FAILURE };
        // SAFETY: QEMU's debug-exit device ends the emulation.
        unsafe {
            core::arch::asm!("out dx, eax", in("dx") DEBUG_EXIT, in("eax") code,
                options(nomem, nostack))
        };
        // Still here: Bochs, which ends on these bytes to its port 0x8900 (its exit status
        // says nothing; the report says everything).
        for b in *b"Shutdown" {
            outb(BOCHS_SHUTDOWN, b);
        }
    }
    loop {
        // SAFETY: parks this CPU with interrupts off.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}
