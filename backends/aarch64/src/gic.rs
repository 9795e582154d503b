//! The little of a GICv2 the backend needs: a software-generated interrupt to kick a CPU
//! out of its guest, and acknowledging the interrupts that made a guest exit.
//!
//! The hypervisor names its GIC once with [`set_gic_v2`] before enabling virtualization on
//! any CPU; [`AxArchPerCpu::hardware_enable`](axvcpu::AxArchPerCpu::hardware_enable) then
//! enables the distributor, this CPU's interface and the kick SGI ([`KICK_SGI`]). Without
//! a GIC, a kick still stops the vCPU at its next entry, but cannot interrupt a guest
//! that never exits.

use core::sync::atomic::{AtomicUsize, Ordering};

/// The SGI the backend kicks vCPUs with.
pub const KICK_SGI: u32 = 14;
/// The INTID a GICv2 acknowledge returns when nothing is pending.
pub const SPURIOUS: u32 = 1023;

static GICD: AtomicUsize = AtomicUsize::new(0);
static GICC: AtomicUsize = AtomicUsize::new(0);

const GICD_CTLR: usize = 0x000;
const GICD_ISENABLER: usize = 0x100;
const GICD_IPRIORITYR: usize = 0x400;
const GICD_SGIR: usize = 0xf00;
const GICC_CTLR: usize = 0x000;
const GICC_PMR: usize = 0x004;
const GICC_IAR: usize = 0x00c;
const GICC_EOIR: usize = 0x010;

/// Tells the backend where the GICv2 distributor and CPU interface are.
///
/// # Safety
/// `gicd` and `gicc` must be the host virtual addresses of a GICv2 distributor and CPU
/// interface, mapped as device memory on every CPU for as long as vCPUs run, and the
/// hypervisor must let the backend own SGI [`KICK_SGI`].
pub unsafe fn set_gic_v2(gicd: usize, gicc: usize) {
    GICD.store(gicd, Ordering::SeqCst);
    GICC.store(gicc, Ordering::SeqCst);
}

/// Whether a GIC was named.
pub fn configured() -> bool {
    GICD.load(Ordering::Acquire) != 0 && GICC.load(Ordering::Acquire) != 0
}

fn write(base: &AtomicUsize, off: usize, v: u32) {
    let b = base.load(Ordering::Acquire);
    if b != 0 {
        // SAFETY: `set_gic_v2`'s contract: a mapped GIC register.
        unsafe { ((b + off) as *mut u32).write_volatile(v) };
    }
}

fn read(base: &AtomicUsize, off: usize) -> u32 {
    let b = base.load(Ordering::Acquire);
    if b == 0 {
        return SPURIOUS;
    }
    // SAFETY: `set_gic_v2`'s contract: a mapped GIC register.
    unsafe { ((b + off) as *const u32).read_volatile() }
}

/// Enables the distributor, this CPU's interface (all priorities) and the kick SGI.
pub(crate) fn cpu_init() {
    write(&GICD, GICD_CTLR, 1);
    write(&GICD, GICD_ISENABLER, 1 << KICK_SGI);
    // Priority 0x80 for SGIs 12..15 (one byte each, banked per CPU).
    write(&GICD, GICD_IPRIORITYR + 12, 0x8080_8080);
    write(&GICC, GICC_PMR, 0xff);
    write(&GICC, GICC_CTLR, 1);
}

/// Sends the kick SGI to the CPU whose GIC interface number is `cpu` (0..8).
pub(crate) fn kick_cpu(cpu: usize) {
    if cpu < 8 {
        write(&GICD, GICD_SGIR, (1 << (16 + cpu)) | KICK_SGI);
    }
}

/// Acknowledges the highest-priority pending interrupt; returns `GICC_IAR`.
pub(crate) fn ack() -> u32 {
    read(&GICC, GICC_IAR)
}

/// Ends the interrupt `iar` returned by [`ack`].
pub(crate) fn eoi(iar: u32) {
    write(&GICC, GICC_EOIR, iar);
}
