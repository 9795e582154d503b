//! The GICv2 virtual CPU interface of one vCPU (`Aarch64SetupConfig::vgic`): its list
//! registers (`GICH_LR<n>`, as many as the hardware has, `GICH_VTR.ListRegs` + 1), what
//! waits for a free one, and the virtual timer's level-sensitive delivery.
//!
//! The state is kept in memory ([`VgicState`]) and is live in `GICH` while the vCPU is
//! bound: before an entry only the list registers that changed are written, after an exit
//! only those that held an interrupt are read back (the guest can only move a valid one
//! from pending to active to invalid). The register accesses are plain volatile reads and
//! writes through [`gic`](crate::gic), so the model is tested on any host.

#![cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]

use axvcpu::VectorSet;

use crate::gic::{self, VTIMER_PPI};

const GICH_HCR: usize = 0x000;
const GICH_VTR: usize = 0x004;
const GICH_VMCR: usize = 0x008;
const GICH_APR: usize = 0x0f0;
const GICH_LR0: usize = 0x100;

/// The most list registers a GICv2 has.
pub(crate) const MAX_LRS: usize = 16;

/// A GICv2 list register (`GICH_LR<n>`): the virtual interrupt `VirtualID` (bits 9:0)
/// offered to the guest, its state (bits 29:28), and `EOI` (bit 19).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListReg(pub u32);

impl ListReg {
    const STATE: u32 = 0b11 << 28;
    const PENDING: u32 = 0b01 << 28;
    /// A maintenance interrupt when the guest ends it.
    const EOI: u32 = 1 << 19;

    /// `intid` offered to the guest, not yet acknowledged.
    pub const fn pending(intid: usize) -> Self {
        Self(Self::PENDING | (intid as u32 & 0x3ff))
    }

    /// The same register asking for a maintenance interrupt when the guest ends it.
    pub const fn with_eoi(self) -> Self {
        Self(self.0 | Self::EOI)
    }

    /// Whether it asks for a maintenance interrupt at its end.
    #[cfg(test)]
    pub const fn has_eoi(self) -> bool {
        self.0 & Self::EOI != 0
    }

    /// Whether it holds nothing: the guest ended its interrupt (`GICV_EOIR`), or none was
    /// loaded.
    pub const fn is_free(self) -> bool {
        self.0 & Self::STATE == 0
    }

    /// The interrupt it holds (pending, active or both), if any.
    pub const fn intid(self) -> Option<usize> {
        if self.is_free() {
            None
        } else {
            Some((self.0 & 0x3ff) as usize)
        }
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

/// The virtual CPU interface state of one vCPU.
///
/// Interrupts go into free list registers, lowest INTID first; one the list registers
/// already hold (pending or active: GICv2 forbids an INTID in two of them) waits, and so
/// does everything when none is free. While anything waits, every occupied list register
/// asks for a maintenance interrupt at its end (`EOI`), so the guest's end of any of them
/// makes it exit and the next is offered at once. The virtual timer's list register always
/// asks: its physical PPI is masked while the guest handles the virtual one (it is
/// level-sensitive and stays asserted until the guest reprograms the timer) and is
/// unmasked at that end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VgicState {
    lrs: [ListReg; MAX_LRS],
    /// List registers the hardware has.
    count: usize,
    /// List registers changed since they were last written to `GICH`.
    dirty: u16,
    /// `GICH_VMCR`: the guest's `GICV_CTLR`, `GICV_PMR`, `GICV_BPR`.
    vmcr: u32,
    /// `GICH_APR`: active priorities.
    apr: u32,
    /// The physical timer PPI is masked until the guest ends virtual [`VTIMER_PPI`].
    pub timer_masked: bool,
}

impl VgicState {
    /// An empty interface with `count` list registers (1..=16).
    pub fn new(count: usize) -> Self {
        Self {
            lrs: [ListReg::default(); MAX_LRS],
            count: count.clamp(1, MAX_LRS),
            dirty: 0,
            vmcr: 0,
            apr: 0,
            timer_masked: false,
        }
    }

    /// The list registers this CPU's virtual interface has (`GICH_VTR.ListRegs` + 1).
    pub fn hardware_list_registers() -> usize {
        (gic::hyp_read(GICH_VTR) & 0x3f) as usize + 1
    }

    fn lrs(&self) -> &[ListReg] {
        &self.lrs[..self.count]
    }

    /// Whether a list register offers an interrupt the guest has not acknowledged.
    pub fn holds_pending(&self) -> bool {
        self.lrs().iter().any(|l| l.pending_intid().is_some())
    }

    fn holds(&self, intid: usize) -> bool {
        self.lrs().iter().any(|l| l.intid() == Some(intid))
    }

    /// Makes `intid` pending: it merges with a list register that offers it and the guest
    /// has not acknowledged, and otherwise joins `waiting` (where it merges with itself).
    pub fn inject(&self, intid: usize, waiting: &mut VectorSet) {
        if !self.lrs().iter().any(|l| l.pending_intid() == Some(intid)) {
            waiting.insert(intid);
        }
    }

    fn set(&mut self, i: usize, lr: ListReg) {
        if self.lrs[i] != lr {
            self.lrs[i] = lr;
            self.dirty |= 1 << i;
        }
    }

    /// Before an entry: clears the list registers the guest ended, fills the free ones
    /// from `waiting`, and asks for the end of every occupied one while anything waits.
    pub fn refill(&mut self, waiting: &mut VectorSet) {
        for i in 0..self.count {
            if self.lrs[i].is_free() {
                // Its `EOI` bit would keep the maintenance interrupt up.
                self.set(i, ListReg::default());
            }
        }
        if waiting.is_empty() {
            return;
        }
        let mut free = (0..self.count).filter(|&i| self.lrs[i].is_free());
        let mut picked = [0usize; MAX_LRS];
        let mut n = 0;
        for intid in waiting.iter() {
            if n == picked.len() {
                break;
            }
            if !self.holds(intid) {
                picked[n] = intid;
                n += 1;
            }
        }
        let mut placed = [None; MAX_LRS];
        for (slot, &intid) in placed.iter_mut().zip(&picked[..n]) {
            match free.next() {
                Some(i) => *slot = Some((i, intid)),
                None => break,
            }
        }
        for (i, intid) in placed.into_iter().flatten() {
            waiting.remove(intid);
            let lr = ListReg::pending(intid);
            let lr = if intid == VTIMER_PPI as usize {
                lr.with_eoi()
            } else {
                lr
            };
            self.set(i, lr);
        }
        if !waiting.is_empty() {
            for i in 0..self.count {
                if !self.lrs[i].is_free() {
                    self.set(i, self.lrs[i].with_eoi());
                }
            }
        }
    }

    /// Whether the guest has ended the virtual timer interrupt that masked the physical
    /// one: it is neither waiting nor in a list register. Clears `timer_masked` then.
    pub fn timer_ended(&mut self, waiting: &VectorSet) -> bool {
        let timer = VTIMER_PPI as usize;
        if self.timer_masked && !waiting.contains(timer) && !self.holds(timer) {
            self.timer_masked = false;
            return true;
        }
        false
    }

    /// Loads the state into `GICH` and enables the virtual CPU interface (`bind`).
    pub fn load(&mut self) {
        gic::hyp_write(GICH_VMCR, self.vmcr);
        gic::hyp_write(GICH_APR, self.apr);
        for (i, lr) in self.lrs().iter().enumerate() {
            gic::hyp_write(GICH_LR0 + 4 * i, lr.0);
        }
        self.dirty = 0;
        gic::hyp_write(GICH_HCR, 1);
    }

    /// Saves the state from `GICH` and disables the virtual CPU interface (`unbind`).
    pub fn save(&mut self) {
        self.vmcr = gic::hyp_read(GICH_VMCR);
        self.apr = gic::hyp_read(GICH_APR);
        self.get();
        for i in 0..self.count {
            gic::hyp_write(GICH_LR0 + 4 * i, 0);
        }
        gic::hyp_write(GICH_HCR, 0);
    }

    /// Writes the list registers that changed (before an entry).
    pub fn put(&mut self) {
        let mut dirty = self.dirty;
        while dirty != 0 {
            let i = dirty.trailing_zeros() as usize;
            dirty &= dirty - 1;
            if let Some(lr) = self.lrs.get(i) {
                gic::hyp_write(GICH_LR0 + 4 * i, lr.0);
            }
        }
        self.dirty = 0;
    }

    /// Reads back the list registers that held an interrupt (after an exit): the guest may
    /// have acknowledged (pending → active) or ended (→ invalid) them.
    pub fn get(&mut self) {
        for i in 0..self.count {
            if !self.lrs[i].is_free() {
                self.lrs[i] = ListReg(gic::hyp_read(GICH_LR0 + 4 * i));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// `GICH_LR` state active (bits 29:28 = 0b10).
    const ACTIVE: u32 = 0b10 << 28;

    /// What the guest does to the list register holding `intid` between entries.
    fn acknowledge(v: &mut VgicState, intid: usize) {
        let i = v
            .lrs()
            .iter()
            .position(|l| l.pending_intid() == Some(intid))
            .unwrap();
        v.lrs[i] = ListReg((v.lrs[i].0 & !ListReg::STATE) | ACTIVE);
    }
    fn end(v: &mut VgicState, intid: usize) {
        let i = v
            .lrs()
            .iter()
            .position(|l| l.intid() == Some(intid))
            .unwrap();
        v.lrs[i] = ListReg(v.lrs[i].0 & !ListReg::STATE);
    }
    fn offered(v: &VgicState) -> Vec<usize> {
        v.lrs().iter().filter_map(|l| l.pending_intid()).collect()
    }

    #[test]
    fn an_interrupt_offered_and_not_acknowledged_merges_an_acknowledged_one_comes_again() {
        let mut v = VgicState::new(1);
        let mut waiting = VectorSet::new();
        v.inject(48, &mut waiting);
        v.refill(&mut waiting);
        assert_eq!(offered(&v), [48]);
        assert!(waiting.is_empty());
        v.inject(48, &mut waiting);
        assert!(waiting.is_empty(), "pending in a list register: merged");
        acknowledge(&mut v, 48);
        assert!(!v.holds_pending());
        v.inject(48, &mut waiting);
        assert!(waiting.contains(48), "taken by the guest: pending again");
        v.refill(&mut waiting);
        assert!(
            waiting.contains(48),
            "active in a list register: waits for its end"
        );
        end(&mut v, 48);
        v.refill(&mut waiting);
        assert_eq!(offered(&v), [48]);
        assert!(waiting.is_empty());
    }

    #[test]
    fn more_than_the_list_registers_hold_wait_and_come_lowest_first() {
        for count in [1, 4] {
            let mut v = VgicState::new(count);
            let mut waiting = VectorSet::new();
            for intid in [50, 48, 1019, 48, 33, 34] {
                v.inject(intid, &mut waiting);
            }
            let mut taken = Vec::new();
            while !waiting.is_empty() || v.holds_pending() {
                v.refill(&mut waiting);
                let now = offered(&v);
                assert!(now.len() <= count);
                // Equal priorities: the guest takes the lowest INTID offered.
                let first = *now.iter().min().unwrap();
                acknowledge(&mut v, first);
                end(&mut v, first);
                taken.push(first);
            }
            assert_eq!(taken, [33, 34, 48, 50, 1019], "{count} list registers");
        }
        assert_eq!(ListReg::pending(1019).0, 0x1000_03fb);
    }

    #[test]
    fn the_end_of_an_interrupt_is_asked_for_while_others_wait_or_for_the_timer() {
        let mut v = VgicState::new(2);
        let mut waiting = VectorSet::new();
        v.inject(48, &mut waiting);
        v.refill(&mut waiting);
        assert!(
            v.lrs().iter().all(|l| !l.has_eoi()),
            "nothing waits: no maintenance"
        );
        for intid in [50, 52] {
            v.inject(intid, &mut waiting);
        }
        v.refill(&mut waiting);
        assert_eq!(offered(&v), [48, 50]);
        assert!(waiting.contains(52));
        assert!(
            v.lrs().iter().all(|l| l.has_eoi()),
            "52 waits: every end is seen"
        );
        end(&mut v, 48);
        v.refill(&mut waiting);
        assert_eq!(offered(&v), [52, 50]);
        assert!(!v.lrs[0].has_eoi(), "nothing waits any more");
        end(&mut v, 50);
        end(&mut v, 52);
        // Free list registers are cleared, their EOI bits with them (else the maintenance
        // interrupt stays asserted), and written once.
        v.put();
        v.refill(&mut waiting);
        assert_eq!(v.lrs(), [ListReg::default(); 2]);
        assert_eq!(v.dirty, 0b11);
        v.inject(VTIMER_PPI as usize, &mut waiting);
        v.refill(&mut waiting);
        assert!(v.lrs[0].has_eoi(), "the timer: always");
    }

    #[test]
    fn the_masked_timer_ends_only_when_the_guest_has_ended_it() {
        let timer = VTIMER_PPI as usize;
        let mut v = VgicState::new(4);
        let mut waiting = VectorSet::new();
        assert!(!v.timer_ended(&waiting), "not masked: nothing to end");
        v.timer_masked = true;
        v.inject(timer, &mut waiting);
        assert!(!v.timer_ended(&waiting), "waiting");
        v.refill(&mut waiting);
        assert!(!v.timer_ended(&waiting), "offered");
        acknowledge(&mut v, timer);
        assert!(!v.timer_ended(&waiting), "being handled");
        end(&mut v, timer);
        assert!(v.timer_ended(&waiting), "ended: unmask");
        assert!(!v.timer_masked);
        assert!(!v.timer_ended(&waiting), "once");
    }
}
