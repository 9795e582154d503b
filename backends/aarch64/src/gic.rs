//! The little of a GICv2 the backend needs: a software-generated interrupt to kick a CPU
//! out of its guest, acknowledging the interrupts that made a guest exit, masking the
//! virtual timer's PPI, and the virtual CPU interface's list register (`GICH_LR0`) for
//! `Aarch64SetupConfig::vgic`.
//!
//! The hypervisor names its GIC once with [`set_gic_v2`] before enabling virtualization on
//! any CPU; [`AxArchPerCpu::hardware_enable`](axvcpu::AxArchPerCpu::hardware_enable) then
//! enables the distributor, this CPU's interface, the kick SGI ([`KICK_SGI`]) and the vGIC
//! maintenance interrupt ([`MAINTENANCE_PPI`]). Without
//! a GIC, a kick still stops the vCPU at its next entry, but cannot interrupt a guest
//! that never exits.
//!
//! The register accesses are plain volatile reads and writes, so the list-register model is
//! tested on any host.

#![cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]

use core::sync::atomic::{AtomicUsize, Ordering};

use axvcpu::VectorSet;

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
/// backend owns list register 0, `GICH_HCR`, `GICH_VMCR` and `GICH_APR` while a vGIC vCPU is
/// bound.
pub unsafe fn set_gic_v2_hyp(gich: usize) {
    GICH.store(gich, Ordering::SeqCst);
}

/// Whether the virtual interface control registers were named.
pub fn hyp_configured() -> bool {
    GICH.load(Ordering::Acquire) != 0
}

const GICH_HCR: usize = 0x000;
const GICH_VMCR: usize = 0x008;
const GICH_APR: usize = 0x0f0;
const GICH_LR0: usize = 0x100;

/// A GICv2 list register (`GICH_LR<n>`): the virtual interrupt `VirtualID` (bits 9:0)
/// offered to the guest, and its state (bits 29:28).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListReg(pub u32);

impl ListReg {
    const STATE: u32 = 0b11 << 28;
    const PENDING: u32 = 0b01 << 28;

    /// `EOI` (bit 19): a maintenance interrupt when the guest ends it.
    const EOI: u32 = 1 << 19;

    /// `intid` offered to the guest, not yet acknowledged.
    pub const fn pending(intid: usize) -> Self {
        Self(Self::PENDING | (intid as u32 & 0x3ff))
    }

    /// The same, with a maintenance interrupt when the guest ends it.
    pub const fn pending_with_eoi(intid: usize) -> Self {
        Self(Self::pending(intid).0 | Self::EOI)
    }

    /// The interrupt it holds (pending, active or both), if any.
    pub const fn intid(self) -> Option<usize> {
        if self.is_free() {
            None
        } else {
            Some((self.0 & 0x3ff) as usize)
        }
    }

    /// Whether it holds nothing: the guest ended its interrupt (`GICV_EOIR`), or none was
    /// loaded.
    pub const fn is_free(self) -> bool {
        self.0 & Self::STATE == 0
    }

    /// The interrupt it offers that the guest has not acknowledged (`GICV_IAR`) yet.
    pub const fn pending_intid(self) -> Option<usize> {
        if self.0 & Self::PENDING != 0 {
            Some((self.0 & 0x3ff) as usize)
        } else {
            None
        }
    }
}

/// The virtual CPU interface state of one vCPU, live in `GICH` while it is bound. One
/// interrupt is in flight at a time, in list register 0; the rest wait in a [`VectorSet`].
///
/// A list register is loaded with its `EOI` bit when more wait, or when it holds the
/// virtual timer: the guest's end of it then raises the maintenance interrupt, so the
/// next one is offered at once, and the timer's physical PPI (masked while the guest
/// handles its virtual one: it is level-sensitive and stays asserted until the guest
/// reprograms the timer) is unmasked again.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VgicState {
    /// List register 0: the interrupt in flight.
    pub lr0: ListReg,
    /// The physical timer PPI is masked until the guest ends virtual [`VTIMER_PPI`].
    pub timer_masked: bool,
    /// `GICH_VMCR`: the guest's `GICV_CTLR`, `GICV_PMR`, `GICV_BPR`.
    vmcr: u32,
    /// `GICH_APR`: active priorities.
    apr: u32,
}

impl VgicState {
    /// Makes `intid` pending: it merges with the list register when that offers `intid`
    /// and the guest has not acknowledged it, and otherwise joins `waiting` (where it
    /// merges with itself).
    pub fn inject(&self, intid: usize, waiting: &mut VectorSet) {
        if self.lr0.pending_intid() != Some(intid) {
            waiting.insert(intid);
        }
    }

    /// Before an entry: a free list register takes the lowest waiting interrupt, with a
    /// maintenance interrupt at its end when more wait or it is the timer. A free one that
    /// takes nothing is cleared (its `EOI` bit would keep the maintenance interrupt up).
    pub fn refill(&mut self, waiting: &mut VectorSet) {
        if self.lr0.is_free() {
            self.lr0 = match waiting.lowest() {
                Some(intid) => {
                    waiting.remove(intid);
                    if !waiting.is_empty() || intid == VTIMER_PPI as usize {
                        ListReg::pending_with_eoi(intid)
                    } else {
                        ListReg::pending(intid)
                    }
                }
                None => ListReg::default(),
            };
        }
    }

    /// Whether the guest has ended the virtual timer interrupt that masked the physical
    /// one: it is neither waiting nor in the list register. Clears `timer_masked` then.
    pub fn timer_ended(&mut self, waiting: &VectorSet) -> bool {
        let timer = VTIMER_PPI as usize;
        if self.timer_masked && !waiting.contains(timer) && self.lr0.intid() != Some(timer) {
            self.timer_masked = false;
            return true;
        }
        false
    }

    /// Loads the state into `GICH` and enables the virtual CPU interface.
    pub fn load(&self) {
        write(&GICH, GICH_VMCR, self.vmcr);
        write(&GICH, GICH_APR, self.apr);
        write(&GICH, GICH_LR0, self.lr0.0);
        write(&GICH, GICH_HCR, 1);
    }

    /// Saves the state from `GICH` and disables the virtual CPU interface.
    pub fn save(&mut self) {
        self.vmcr = read(&GICH, GICH_VMCR);
        self.apr = read(&GICH, GICH_APR);
        self.lr0 = ListReg(read(&GICH, GICH_LR0));
        write(&GICH, GICH_LR0, 0);
        write(&GICH, GICH_HCR, 0);
    }

    /// Writes list register 0 (before an entry).
    pub fn put_lr0(&self) {
        write(&GICH, GICH_LR0, self.lr0.0);
    }

    /// Reads list register 0 back (after an exit): the guest may have acknowledged
    /// (pending → active) or ended (→ invalid) the interrupt.
    pub fn get_lr0(&mut self) {
        self.lr0 = ListReg(read(&GICH, GICH_LR0));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `GICH_LR` state active (bits 29:28 = 0b10).
    const ACTIVE: u32 = 0b10 << 28;

    /// What the guest does to list register 0 between entries.
    fn acknowledge(v: &mut VgicState) {
        v.lr0 = ListReg((v.lr0.0 & !ListReg::STATE) | ACTIVE);
    }
    fn end(v: &mut VgicState) {
        v.lr0 = ListReg(v.lr0.0 & !ListReg::STATE);
    }

    #[test]
    fn an_interrupt_offered_and_not_acknowledged_merges_an_acknowledged_one_comes_again() {
        let mut v = VgicState::default();
        let mut waiting = VectorSet::new();
        v.inject(48, &mut waiting);
        v.refill(&mut waiting);
        assert_eq!(v.lr0.pending_intid(), Some(48));
        assert!(waiting.is_empty());
        v.inject(48, &mut waiting);
        assert!(waiting.is_empty(), "pending in the list register: merged");
        acknowledge(&mut v);
        assert_eq!(v.lr0.pending_intid(), None);
        v.inject(48, &mut waiting);
        assert!(waiting.contains(48), "taken by the guest: pending again");
        v.refill(&mut waiting);
        assert!(waiting.contains(48), "one in flight: waits for the end");
        end(&mut v);
        assert!(v.lr0.is_free());
        v.refill(&mut waiting);
        assert_eq!(v.lr0.pending_intid(), Some(48));
        assert!(waiting.is_empty());
    }

    #[test]
    fn waiting_interrupts_are_offered_lowest_first_one_at_a_time() {
        let mut v = VgicState::default();
        let mut waiting = VectorSet::new();
        for intid in [50, 48, 1019, 48] {
            v.inject(intid, &mut waiting);
        }
        let mut offered = [0; 3];
        for o in &mut offered {
            v.refill(&mut waiting);
            v.refill(&mut waiting);
            *o = v.lr0.pending_intid().unwrap();
            acknowledge(&mut v);
            end(&mut v);
        }
        assert_eq!(offered, [48, 50, 1019]);
        v.refill(&mut waiting);
        assert!(v.lr0.is_free());
        assert_eq!(ListReg::pending(1019).0, 0x1000_03fb);
    }

    #[test]
    fn the_end_of_an_interrupt_is_asked_for_when_more_wait_or_it_is_the_timer() {
        const EOI: u32 = 1 << 19;
        let mut v = VgicState::default();
        let mut waiting = VectorSet::new();
        v.inject(48, &mut waiting);
        v.refill(&mut waiting);
        assert_eq!(v.lr0.0 & EOI, 0, "alone: no maintenance interrupt");
        acknowledge(&mut v);
        end(&mut v);
        for intid in [50, 52] {
            v.inject(intid, &mut waiting);
        }
        v.refill(&mut waiting);
        assert_eq!(v.lr0.0 & EOI, EOI, "another waits: its end is seen");
        acknowledge(&mut v);
        end(&mut v);
        v.refill(&mut waiting);
        assert_eq!((v.lr0.intid(), v.lr0.0 & EOI), (Some(52), 0));
        acknowledge(&mut v);
        end(&mut v);
        // A free register that takes nothing is cleared, its EOI bit with it (else the
        // maintenance interrupt stays asserted).
        v.lr0 = ListReg(EOI);
        v.refill(&mut waiting);
        assert_eq!(v.lr0, ListReg::default());
        v.inject(VTIMER_PPI as usize, &mut waiting);
        v.refill(&mut waiting);
        assert_eq!(v.lr0.0 & EOI, EOI, "the timer: always");
    }

    #[test]
    fn the_masked_timer_ends_only_when_the_guest_has_ended_it() {
        let timer = VTIMER_PPI as usize;
        let mut v = VgicState::default();
        let mut waiting = VectorSet::new();
        assert!(!v.timer_ended(&waiting), "not masked: nothing to end");
        v.timer_masked = true;
        v.inject(timer, &mut waiting);
        assert!(!v.timer_ended(&waiting), "waiting");
        v.refill(&mut waiting);
        assert!(!v.timer_ended(&waiting), "offered");
        acknowledge(&mut v);
        assert!(!v.timer_ended(&waiting), "being handled");
        end(&mut v);
        assert!(v.timer_ended(&waiting), "ended: unmask");
        assert!(!v.timer_masked);
        assert!(!v.timer_ended(&waiting), "once");
    }
}
