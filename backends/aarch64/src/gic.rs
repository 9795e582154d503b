//! The little of a GICv2 the backend needs: a software-generated interrupt to kick a CPU
//! out of its guest, acknowledging the interrupts that made a guest exit, masking the
//! virtual timer's PPI, and access to the virtual interface control registers (`GICH`),
//! whose list registers `vgic.rs` manages for `Aarch64SetupConfig::vgic`.
//!
//! The hypervisor names its GIC once with [`set_gic_v2`] before enabling virtualization on
//! any CPU; [`AxArchPerCpu::hardware_enable`](axvcpu::AxArchPerCpu::hardware_enable) then
//! enables the distributor, this CPU's interface, the kick SGI ([`KICK_SGI`]) and the vGIC
//! maintenance interrupt ([`MAINTENANCE_PPI`]). Without
//! a GIC, a kick still stops the vCPU at its next entry, but cannot interrupt a guest
//! that never exits.
//!
//! The register accesses are plain volatile reads and writes (nothing when the GIC was not
//! named), so what uses them is tested on any host.

#![cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]

use core::sync::atomic::{AtomicUsize, Ordering};

/// The SGI the backend kicks vCPUs with.
pub const KICK_SGI: u32 = 14;
/// The INTID a GICv2 acknowledge returns when nothing is pending.
pub const SPURIOUS: u32 = 1023;
/// The EL1 virtual timer's PPI (INTID 27, level-sensitive), the guest's own timer. With the
/// vGIC the backend delivers it to the guest as virtual INTID 27.
pub const VTIMER_PPI: u32 = 27;
/// The GICv2 virtual interface's maintenance interrupt (PPI 9, INTID 25, as QEMU virt
/// wires it): the backend asks for it when the guest ends an interrupt it must see end.
pub const MAINTENANCE_PPI: u32 = 25;

static GICD: AtomicUsize = AtomicUsize::new(0);
static GICC: AtomicUsize = AtomicUsize::new(0);
static GICH: AtomicUsize = AtomicUsize::new(0);

const GICD_CTLR: usize = 0x000;
const GICD_ISENABLER: usize = 0x100;
const GICD_ICENABLER: usize = 0x180;
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

/// Tells the backend where the GICv2 virtual interface control registers (`GICH`, the
/// banked per-CPU view) are, which enables
/// `Aarch64SetupConfig::vgic`.
///
/// # Safety
/// `gich` must be the host virtual address of the GICv2 `GICH` frame of the GIC named with
/// [`set_gic_v2`], mapped as device memory on every CPU for as long as vCPUs run; the
/// backend owns the list registers, `GICH_HCR`, `GICH_VMCR` and `GICH_APR` while a vGIC
/// vCPU is bound.
pub unsafe fn set_gic_v2_hyp(gich: usize) {
    GICH.store(gich, Ordering::SeqCst);
}

/// Whether the virtual interface control registers were named.
pub fn hyp_configured() -> bool {
    GICH.load(Ordering::Acquire) != 0
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

/// Enables the distributor, this CPU's interface (all priorities), the kick SGI and the
/// virtual interface's maintenance interrupt.
pub(crate) fn cpu_init() {
    write(&GICD, GICD_CTLR, 1);
    write(
        &GICD,
        GICD_ISENABLER,
        (1 << KICK_SGI) | (1 << MAINTENANCE_PPI),
    );
    // Priority 0x80 for SGIs 12..15 (one byte each, banked per CPU).
    write(&GICD, GICD_IPRIORITYR + 12, 0x8080_8080);
    write(&GICC, GICC_PMR, 0xff);
    write(&GICC, GICC_CTLR, 1);
}

/// Reads the virtual interface control register at `off` of `GICH` (`vgic.rs`).
pub(crate) fn hyp_read(off: usize) -> u32 {
    read(&GICH, off)
}

/// Writes the virtual interface control register at `off` of `GICH` (`vgic.rs`).
pub(crate) fn hyp_write(off: usize, v: u32) {
    write(&GICH, off, v)
}

/// Enables (`on`) or masks PPI `ppi` (16..32) of this CPU at the distributor.
pub(crate) fn set_ppi_enabled(ppi: u32, on: bool) {
    let reg = if on { GICD_ISENABLER } else { GICD_ICENABLER };
    write(&GICD, reg, 1 << (ppi & 31));
}

/// Sends SGI `sgi` to the CPU whose GIC interface number is `cpu` (0..8; others are
/// ignored).
pub(crate) fn send_sgi(cpu: usize, sgi: u32) {
    if cpu < 8 {
        write(&GICD, GICD_SGIR, (1 << (16 + cpu)) | (sgi & 0xf));
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
