//! A local APIC per vCPU, emulated by the hypervisor for Linux's SMP: the xAPIC register
//! page at 0xfee0_0000, reached through the backend's MMIO exits.
//!
//! Why xAPIC and not x2APIC (MSR exits): Linux 6.1 turns x2APIC on only with interrupt
//! remapping, or when the hypervisor says it may do without (`x86_init.hyper.
//! x2apic_available()`, which only the hypervisors Linux knows by name answer: KVM, Xen,
//! Hyper-V, VMware, ACRN, Jailhouse); ours is none of them, so CPUID's x2APIC bit would be
//! ignored (or, without `nox2apic`, make Linux panic on "x2apic enabled by BIOS" paths).
//! In xAPIC mode the backends already decode the ICR writes into `SendIPI`/`CpuUp` exits
//! (`axvcpu_x86::apic::IcrDecoder`), so IPIs and INIT-SIPI need nothing more here.
//!
//! What is modelled: ID, version (integrated, 6 LVT entries), TPR/PPR, EOI, LDR/DFR (flat
//! and cluster logical destinations), SVR (software enable), ISR/IRR/TMR, ESR (always 0),
//! the LVT entries (timer, thermal, perf, LINT0, LINT1, error), and the timer: one-shot and
//! periodic, counting host time at [`BUS_HZ`] through the divide register, and TSC-deadline
//! (`IA32_TSC_DEADLINE`, an MSR exit; the guest's TSC is the host's). CPUID offers
//! TSC-deadline, and Linux uses it: it then needs no calibration of the timer against the
//! PIT, which on a loaded host (QEMU descheduled for tens of milliseconds) came out wrong
//! often enough to make Linux give up its local APIC timers for the PIT's broadcast. The
//! counting modes' rate agrees with the PIT's anyway (both host time). Not modelled: NMIs
//! through LINT1, lowest-priority arbitration (delivered as fixed), remote read.
//!
//! Delivery: one interrupt at a time goes to the backend ([`Lapic::next`]): the highest
//! IRR vector above the processor priority, accepted (IRR → ISR) as it is injected and
//! held "in flight" until the backend reports the guest took it ([`Lapic::taken`]). An EOI
//! then clears the highest ISR bit that is not in flight, so an EOI for an earlier
//! interrupt never retires one the guest has not taken yet. The 8259's interrupts come on
//! LINT0 as ExtINT: vCPU 0 takes them while LINT0 is unmasked in ExtINT mode (virtual-wire
//! mode, the state the MP table announces and the BSP starts in).

/// How many periods behind a periodic timer still delivers each missed one (the PIT's
/// figure, `devices::CATCH_UP`).
const CATCH_UP: u64 = 10;

/// The timer's input clock (the "bus"), Hz: 1 GHz, so a tick is a host nanosecond times
/// the divider.
pub const BUS_HZ: u64 = 1_000_000_000;
/// The register page's guest-physical base.
pub const BASE: usize = 0xfee0_0000;
/// The version register: integrated APIC (0x14), highest LVT entry 5 (6 entries).
const VERSION: u32 = 0x0005_0014;

/// Register offsets.
mod reg {
    pub const ID: usize = 0x20;
    pub const VERSION: usize = 0x30;
    pub const TPR: usize = 0x80;
    pub const APR: usize = 0x90;
    pub const PPR: usize = 0xa0;
    pub const EOI: usize = 0xb0;
    pub const LDR: usize = 0xd0;
    pub const DFR: usize = 0xe0;
    pub const SVR: usize = 0xf0;
    pub const ISR: usize = 0x100;
    pub const TMR: usize = 0x180;
    pub const IRR: usize = 0x200;
    pub const ESR: usize = 0x280;
    pub const ICR_LOW: usize = 0x300;
    pub const ICR_HIGH: usize = 0x310;
    pub const LVT_TIMER: usize = 0x320;
    pub const LVT_LINT0: usize = 0x350;
    pub const LVT_ERROR: usize = 0x370;
    pub const TIMER_INITIAL: usize = 0x380;
    pub const TIMER_CURRENT: usize = 0x390;
    pub const TIMER_DIVIDE: usize = 0x3e0;
}

const MASKED: u32 = 1 << 16;
const SVR_ENABLE: u32 = 1 << 8;
const PERIODIC: u32 = 1 << 17;
/// The LVT timer's mode field and its TSC-deadline value.
const TIMER_MODE: u32 = 3 << 17;
const TSC_DEADLINE: u32 = 2 << 17;
const DM_EXTINT: u32 = 7 << 8;
const DM_NMI: u32 = 4 << 8;
/// LVT entries: timer, thermal, perf, LINT0, LINT1, error (0x320..=0x370).
const LVTS: usize = 6;
/// Indices into the LVT entries.
const LINT0: usize = (reg::LVT_LINT0 - reg::LVT_TIMER) >> 4;
const LINT1: usize = LINT0 + 1;

/// One vCPU's local APIC.
#[derive(Debug, Clone)]
pub struct Lapic {
    id: u32,
    tpr: u32,
    ldr: u32,
    dfr: u32,
    svr: u32,
    isr: [u32; 8],
    irr: [u32; 8],
    tmr: [u32; 8],
    lvt: [u32; LVTS],
    icr: [u32; 2],
    timer_initial: u32,
    timer_divide: u32,
    /// Host ns the timer's current period started and when it ends (counting), or `None`.
    timer: Option<(u64, u64)>,
    /// `IA32_TSC_DEADLINE` as the guest wrote it (0: disarmed, or fired).
    tsc_deadline: u64,
    /// The vector injected and not yet taken by the guest.
    in_flight: Option<u8>,
    /// Timer interrupts raised, for the closing line.
    pub timer_irqs: u64,
}

impl Lapic {
    /// The local APIC of vCPU `id` (its APIC id) at reset; the BSP's as the firmware leaves
    /// it in virtual-wire mode (enabled, LINT0 ExtINT, LINT1 NMI).
    pub fn new(id: u32) -> Self {
        let mut l = Self {
            id,
            tpr: 0,
            ldr: 0,
            dfr: u32::MAX,
            svr: 0xff,
            isr: [0; 8],
            irr: [0; 8],
            tmr: [0; 8],
            lvt: [MASKED; LVTS],
            icr: [0; 2],
            timer_initial: 0,
            timer_divide: 0,
            timer: None,
            tsc_deadline: 0,
            in_flight: None,
            timer_irqs: 0,
        };
        if id == 0 {
            l.svr |= SVR_ENABLE;
            l.lvt[LINT0] = DM_EXTINT;
            l.lvt[LINT1] = DM_NMI;
        }
        l
    }

    fn enabled(&self) -> bool {
        self.svr & SVR_ENABLE != 0
    }

    /// The timer's divider (divide configuration register: bits 0, 1, 3).
    fn divider(&self) -> u64 {
        let v = (self.timer_divide & 3) | ((self.timer_divide >> 1) & 4);
        if v == 7 {
            1
        } else {
            2 << v
        }
    }

    fn ticks_ns(&self, ticks: u64) -> u64 {
        (u128::from(ticks) * u128::from(self.divider()) * 1_000_000_000 / u128::from(BUS_HZ)) as u64
    }

    /// A read of the 4-byte register at `offset` into the page at host time `now`.
    pub fn read(&self, offset: usize, now: u64) -> u32 {
        let bank = |b: &[u32; 8]| b[(offset >> 4) & 7];
        match offset & !0xf {
            reg::ID => self.id << 24,
            reg::VERSION => VERSION,
            reg::TPR => self.tpr,
            reg::APR => 0,
            reg::PPR => self.ppr(),
            reg::LDR => self.ldr,
            reg::DFR => self.dfr,
            reg::SVR => self.svr,
            o if (reg::ISR..reg::TMR).contains(&o) => bank(&self.isr),
            o if (reg::TMR..reg::IRR).contains(&o) => bank(&self.tmr),
            o if (reg::IRR..reg::ESR).contains(&o) => bank(&self.irr),
            // Delivery status idle: every IPI is sent at once.
            reg::ICR_LOW => self.icr[0] & !(1 << 12),
            reg::ICR_HIGH => self.icr[1],
            o if (reg::LVT_TIMER..=reg::LVT_ERROR).contains(&o) => {
                self.lvt[(o - reg::LVT_TIMER) >> 4]
            }
            reg::TIMER_INITIAL => self.timer_initial,
            reg::TIMER_CURRENT => self.current_count(now),
            reg::TIMER_DIVIDE => self.timer_divide,
            // ESR, EOI and the rest read as 0.
            _ => 0,
        }
    }

    /// A write of the 4-byte register at `offset` at host time `now`.
    pub fn write(&mut self, offset: usize, v: u32, now: u64) {
        match offset & !0xf {
            // The xAPIC id is writable; routing keeps the vCPU's number (Linux writes it
            // back unchanged when it writes it at all).
            reg::ID => self.id = v >> 24,
            reg::TPR => self.tpr = v & 0xff,
            reg::EOI => self.eoi(),
            reg::LDR => self.ldr = v & 0xff00_0000,
            reg::DFR => self.dfr = v | 0x0fff_ffff,
            reg::SVR => {
                self.svr = v & 0x3ff;
                if !self.enabled() {
                    // Software disable masks every LVT entry.
                    for l in &mut self.lvt {
                        *l |= MASKED;
                    }
                }
            }
            // What the backend did not take as an IPI: remembered for reads.
            reg::ICR_LOW => self.icr[0] = v,
            reg::ICR_HIGH => self.icr[1] = v & 0xff00_0000,
            o if (reg::LVT_TIMER..=reg::LVT_ERROR).contains(&o) => {
                let i = (o - reg::LVT_TIMER) >> 4;
                let keep = if self.enabled() { v } else { v | MASKED };
                let old_mode = self.lvt[0] & TIMER_MODE;
                if let Some(l) = self.lvt.get_mut(i) {
                    *l = keep & 0x7_a7ff;
                }
                if i == 0 && self.lvt[0] & TIMER_MODE != old_mode {
                    // A change of mode disarms the timer.
                    self.timer = None;
                    self.tsc_deadline = 0;
                }
            }
            // The counter does not run in TSC-deadline mode.
            reg::TIMER_INITIAL if self.deadline_mode() => {}
            reg::TIMER_INITIAL => {
                self.timer_initial = v;
                self.timer = (v != 0).then(|| (now, now + self.ticks_ns(u64::from(v)).max(1)));
            }
            reg::TIMER_DIVIDE => self.timer_divide = v & 0xb,
            _ => {}
        }
    }

    fn deadline_mode(&self) -> bool {
        self.lvt[0] & TIMER_MODE == TSC_DEADLINE
    }

    /// A write of `IA32_TSC_DEADLINE` (MSR 0x6e0) with `tsc`, which is host time `at_ns`:
    /// in TSC-deadline mode it arms the timer (0 disarms it); in the other modes it is
    /// ignored, as hardware does.
    pub fn write_tsc_deadline(&mut self, tsc: u64, at_ns: u64) {
        if self.deadline_mode() {
            self.tsc_deadline = tsc;
            self.timer = (tsc != 0).then_some((at_ns, at_ns));
        }
    }

    /// A read of `IA32_TSC_DEADLINE`: the armed deadline, 0 once it fired or outside
    /// TSC-deadline mode.
    pub fn tsc_deadline(&self) -> u64 {
        if self.deadline_mode() {
            self.tsc_deadline
        } else {
            0
        }
    }

    fn current_count(&self, now: u64) -> u32 {
        if self.deadline_mode() {
            return 0;
        }
        match self.timer {
            Some((_, end)) if end > now => {
                let per_tick = self.ticks_ns(1).max(1);
                ((end - now) / per_tick).min(u64::from(self.timer_initial)) as u32
            }
            _ => 0,
        }
    }

    /// Whether the timer's interrupt still waits in the IRR (a new one now would merge
    /// with it and be lost).
    fn timer_waiting(&self) -> bool {
        let lvt = self.lvt[0];
        let v = lvt as u8;
        lvt & MASKED == 0 && self.irr[usize::from(v / 32)] & (1 << (v % 32)) != 0
    }

    /// When the timer next fires (host ns), if it counts: `None` while its last interrupt
    /// still waits in the IRR (the next period is raised once that one is accepted, which
    /// an exit of the guest's own comes with).
    pub fn deadline(&self) -> Option<u64> {
        if self.timer_waiting() {
            return None;
        }
        self.timer.map(|(_, end)| end)
    }

    /// Brings the timer up to `now`: a period that ended raises its vector (unless the
    /// entry is masked) and a periodic timer starts its next period. A period that ends
    /// while the last interrupt still waits in the IRR waits too, and a periodic timer
    /// behind catches up one period per call, up to `CATCH_UP` periods behind (older
    /// ones are dropped), as the PIT does: Linux checks this timer against the PIT's
    /// jiffies, and a host descheduled for a while must not make the two disagree.
    pub fn tick(&mut self, now: u64) {
        let Some((_, end)) = self.timer else { return };
        if end > now || self.timer_waiting() {
            return;
        }
        let lvt = self.lvt[0];
        if lvt & MASKED == 0 {
            self.timer_irqs += 1;
            self.request(lvt as u8);
        }
        self.timer = if lvt & TIMER_MODE == PERIODIC {
            let period = self.ticks_ns(u64::from(self.timer_initial)).max(1);
            let behind = (now - end) / period;
            let start = end + behind.saturating_sub(CATCH_UP) * period;
            Some((start, start + period))
        } else {
            // One-shot, or TSC-deadline (whose MSR then reads 0).
            self.tsc_deadline = 0;
            None
        };
    }

    /// Makes `vector` pending (a fixed interrupt from an IPI or a local source); a software
    /// disabled APIC, or a vector below 16, takes nothing.
    pub fn request(&mut self, vector: u8) {
        if self.enabled() && vector >= 16 {
            self.irr[usize::from(vector / 32)] |= 1 << (vector % 32);
        }
    }

    fn highest(bank: &[u32; 8]) -> Option<u8> {
        (0..8)
            .rev()
            .find(|&i| bank[i] != 0)
            .map(|i| (i * 32 + 31 - bank[i].leading_zeros() as usize) as u8)
    }

    /// The highest ISR vector that the guest has taken (not the one in flight).
    fn highest_served(&self) -> Option<u8> {
        let mut isr = self.isr;
        if let Some(v) = self.in_flight {
            isr[usize::from(v / 32)] &= !(1 << (v % 32));
        }
        Self::highest(&isr)
    }

    fn ppr(&self) -> u32 {
        let isrv = Self::highest(&self.isr).map_or(0, u32::from);
        if self.tpr & 0xf0 >= isrv & 0xf0 {
            self.tpr
        } else {
            isrv & 0xf0
        }
    }

    /// The vector to inject now, accepted (IRR → ISR, in flight): `None` while one is in
    /// flight, or when nothing pending is above the processor priority.
    pub fn next(&mut self) -> Option<u8> {
        if self.in_flight.is_some() {
            return None;
        }
        let v = Self::highest(&self.irr)?;
        if u32::from(v) & 0xf0 <= self.ppr() & 0xf0 {
            return None;
        }
        let (word, bit) = (usize::from(v / 32), 1 << (v % 32));
        self.irr[word] &= !bit;
        self.isr[word] |= bit;
        self.in_flight = Some(v);
        Some(v)
    }

    /// Whether an interrupt is in flight (injected, not yet reported taken).
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The guest took the interrupt in flight (the backend holds nothing pending any more).
    pub fn taken(&mut self) {
        self.in_flight = None;
    }

    /// Whether [`next`](Self::next) would give a vector (a halted vCPU wakes for it).
    pub fn has_deliverable(&self) -> bool {
        self.in_flight.is_none()
            && Self::highest(&self.irr).is_some_and(|v| u32::from(v) & 0xf0 > self.ppr() & 0xf0)
    }

    fn eoi(&mut self) {
        if let Some(v) = self.highest_served() {
            self.isr[usize::from(v / 32)] &= !(1 << (v % 32));
        }
    }

    /// Whether the 8259's interrupts reach this vCPU: LINT0 unmasked in ExtINT mode.
    pub fn extint(&self) -> bool {
        self.lvt[LINT0] & (MASKED | (7 << 8)) == DM_EXTINT
    }

    /// Whether a fixed IPI with `dest` in the ICR's destination field, in logical
    /// (`logical`) or physical destination mode, is for this APIC.
    pub fn accepts(&self, dest: u8, logical: bool) -> bool {
        if !logical {
            return dest == 0xff || u32::from(dest) == self.id;
        }
        let ldr = (self.ldr >> 24) as u8;
        if dest == 0xff {
            return true;
        }
        if self.dfr >> 28 == 0xf {
            // Flat: one bit per APIC.
            dest & ldr != 0
        } else {
            // Cluster: the high nibble names the cluster, the low one the APICs in it.
            dest >> 4 == ldr >> 4 && dest & ldr & 0xf != 0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn enabled(id: u32) -> Lapic {
        let mut l = Lapic::new(id);
        l.write(reg::SVR, 0x1ff, 0);
        l
    }

    #[test]
    fn registers_read_back_and_the_bsp_starts_in_virtual_wire_mode() {
        let bsp = Lapic::new(0);
        assert!(bsp.extint() && bsp.enabled());
        let ap = Lapic::new(1);
        assert!(!ap.extint() && !ap.enabled());
        assert_eq!(ap.read(reg::ID, 0), 1 << 24);
        assert_eq!(ap.read(reg::VERSION, 0), 0x0005_0014);
        assert_eq!(ap.read(reg::DFR, 0), u32::MAX);
        let mut l = enabled(1);
        l.write(reg::LDR, 0x0200_0000, 0);
        l.write(reg::TPR, 0x20, 0);
        l.write(reg::LVT_ERROR, 0xfe, 0);
        assert_eq!(
            (
                l.read(reg::LDR, 0),
                l.read(reg::TPR, 0),
                l.read(reg::LVT_ERROR, 0)
            ),
            (0x0200_0000, 0x20, 0xfe)
        );
        // Software disable masks the LVT entries, and writes while disabled stay masked.
        l.write(reg::SVR, 0xff, 0);
        assert_eq!(l.read(reg::LVT_ERROR, 0), 0x100fe);
        l.write(reg::LVT_LINT0, DM_EXTINT, 0);
        assert!(!l.extint());
    }

    #[test]
    fn interrupts_go_one_at_a_time_by_priority_and_eoi_retires_what_was_taken() {
        let mut l = enabled(0);
        l.request(0x31);
        l.request(0xec);
        assert_eq!(l.next(), Some(0xec));
        assert_eq!(l.next(), None, "one in flight");
        l.taken();
        // 0x31 is below 0xec's class, which is in service.
        assert!(!l.has_deliverable());
        assert_eq!(l.read(reg::PPR, 0), 0xe0);
        l.write(reg::EOI, 0, 0);
        assert!(l.has_deliverable());
        assert_eq!(l.next(), Some(0x31));
        // 0x31 is not taken yet when an EOI comes: the EOI is for nothing taken, and 0x31
        // stays in service.
        l.write(reg::EOI, 0, 0);
        assert_eq!(
            l.read(reg::ISR + 0x10, 0),
            1 << 0x11,
            "0x31 still in service"
        );
        l.taken();
        l.request(0xfd);
        assert_eq!(l.next(), Some(0xfd), "nests above 0x31");
        l.taken();
        l.write(reg::EOI, 0, 0);
        l.write(reg::EOI, 0, 0);
        assert_eq!(l.read(reg::ISR + 0x10, 0), 0);
        assert_eq!(l.read(reg::PPR, 0), 0);
        // The TPR holds back its class and below.
        l.write(reg::TPR, 0x40, 0);
        l.request(0x41);
        assert_eq!(l.next(), None);
        l.request(0x51);
        assert_eq!(l.next(), Some(0x51));
        // A disabled APIC takes nothing.
        let mut off = Lapic::new(1);
        off.request(0x40);
        assert!(!off.has_deliverable());
    }

    #[test]
    fn the_timer_counts_host_time_one_shot_and_periodic() {
        let mut l = enabled(0);
        l.write(reg::TIMER_DIVIDE, 0x3, 0); // divide by 16
        l.write(reg::LVT_TIMER, 0xec, 0);
        l.write(reg::TIMER_INITIAL, 62_500, 10 * MS); // 1 ms at 62.5 MHz
        assert_eq!(l.deadline(), Some(11 * MS));
        assert_eq!(l.read(reg::TIMER_CURRENT, 10 * MS + MS / 2), 31_250);
        l.tick(11 * MS - 1);
        assert!(!l.has_deliverable());
        l.tick(11 * MS);
        assert_eq!(l.next(), Some(0xec));
        assert_eq!(
            (l.deadline(), l.read(reg::TIMER_CURRENT, 12 * MS)),
            (None, 0)
        );
        l.taken();
        l.write(reg::EOI, 0, 0);
        // Periodic, divide by 1: 1,000,000 ticks = 1 ms. Three periods missed: each is
        // raised once the last one left the IRR, then the timer is back on its grid.
        l.write(reg::TIMER_DIVIDE, 0xb, 0);
        l.write(reg::LVT_TIMER, 0xec | PERIODIC, 0);
        l.write(reg::TIMER_INITIAL, 1_000_000, 20 * MS);
        let now = 23 * MS + 10;
        for n in 2..=4 {
            l.tick(now);
            assert_eq!(l.timer_irqs, n);
            assert_eq!(l.deadline(), None, "waits in the IRR");
            l.tick(now);
            assert_eq!(l.timer_irqs, n, "no second request while one waits");
            assert_eq!(l.next(), Some(0xec));
            l.taken();
            l.write(reg::EOI, 0, 0);
        }
        assert_eq!(l.deadline(), Some(24 * MS));
        // Far behind: only CATCH_UP periods are caught up.
        l.tick(24 * MS + 100 * MS);
        assert_eq!(l.deadline(), None);
        let _ = l.next();
        l.taken();
        l.write(reg::EOI, 0, 0);
        assert_eq!(l.deadline(), Some(24 * MS + (100 - CATCH_UP + 1) * MS));
        // Masked: counts, raises nothing; initial count 0 stops it.
        l.write(reg::LVT_TIMER, 0xec | PERIODIC | MASKED, 0);
        let irqs = l.timer_irqs;
        l.tick(200 * MS);
        assert_eq!(l.timer_irqs, irqs);
        l.write(reg::TIMER_INITIAL, 0, 25 * MS);
        assert_eq!(l.deadline(), None);
    }

    #[test]
    fn the_tsc_deadline_timer_fires_once_and_a_mode_change_disarms_it() {
        let mut l = enabled(0);
        l.write_tsc_deadline(5_000, 5 * MS);
        assert_eq!(l.deadline(), None, "ignored outside TSC-deadline mode");
        l.write(reg::LVT_TIMER, 0xec | TSC_DEADLINE, 0);
        l.write(reg::TIMER_INITIAL, 1000, 0);
        assert_eq!(l.deadline(), None, "the counter does not run in this mode");
        l.write_tsc_deadline(5_000, 5 * MS);
        assert_eq!((l.deadline(), l.tsc_deadline()), (Some(5 * MS), 5_000));
        l.tick(5 * MS);
        assert_eq!(
            (l.next(), l.deadline(), l.tsc_deadline()),
            (Some(0xec), None, 0)
        );
        l.taken();
        l.write(reg::EOI, 0, 0);
        l.write_tsc_deadline(9_000, 9 * MS);
        l.write_tsc_deadline(0, 0);
        assert_eq!(l.deadline(), None, "0 disarms");
        l.write_tsc_deadline(9_000, 9 * MS);
        l.write(reg::LVT_TIMER, 0xec, 0);
        assert_eq!(
            (l.deadline(), l.tsc_deadline()),
            (None, 0),
            "a mode change disarms"
        );
    }

    #[test]
    fn destinations_physical_flat_and_cluster() {
        let mut l = enabled(1);
        assert!(l.accepts(1, false) && l.accepts(0xff, false) && !l.accepts(2, false));
        l.write(reg::LDR, 0x0200_0000, 0);
        assert!(l.accepts(0x02, true) && l.accepts(0x03, true) && !l.accepts(0x01, true));
        l.write(reg::DFR, 0x0fff_ffff, 0);
        l.write(reg::LDR, 0x1200_0000, 0);
        assert!(l.accepts(0x12, true) && !l.accepts(0x22, true) && !l.accepts(0x11, true));
    }
}
