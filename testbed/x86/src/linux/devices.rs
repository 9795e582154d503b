//! The PC devices the hypervisor emulates for Linux besides COM1 (the shared
//! [`axvcpu_testbed::ns16550`] model, on IRQ 4): the 8259 PIC pair (the slave only answers: nothing
//! is wired to it), the 8254 PIT (channels 0 and 2, counting at 1.193182 MHz of host
//! time; channel 0 drives IRQ 0), port 0x61 (channel 2's gate and output) and a CMOS RTC
//! that reads a fixed time. Every other port reads all ones and ignores writes, which is
//! what an absent ISA device does.
//!
//! The guest runs with `acpi=off noapic`: no I/O APIC, so the 8259 is its interrupt
//! controller for the legacy devices, delivered to vCPU 0 through its local APIC's LINT0
//! (ExtINT, `lapic.rs`); the PIT is its clock event device until the local APIC timers take
//! over.

/// How many periods behind a periodic timer (the PIT's channel 0, a local APIC timer)
/// still delivers each missed one; further back they are dropped.
pub const CATCH_UP: u64 = 10;

/// The PIT's input clock, Hz.
const PIT_HZ: u64 = 1_193_182;

/// PIT ticks at host time `ns`.
pub fn pit_ticks(ns: u64) -> u64 {
    (u128::from(ns) * u128::from(PIT_HZ) / 1_000_000_000) as u64
}

/// Host nanoseconds at PIT tick `ticks` (rounded up).
pub fn ticks_ns(ticks: u64) -> u64 {
    (u128::from(ticks) * 1_000_000_000).div_ceil(u128::from(PIT_HZ)) as u64
}

/// One 8259.
#[derive(Debug, Default, Clone, Copy)]
struct Pic8259 {
    irr: u8,
    isr: u8,
    imr: u8,
    base: u8,
    /// Lines seen high (edge detection).
    level: u8,
    /// Next data-port write is ICW `n` (0: none, 2..=4).
    icw: u8,
    icw4: bool,
    read_isr: bool,
    auto_eoi: bool,
}

impl Pic8259 {
    fn write(&mut self, cmd: bool, v: u8) {
        if cmd {
            if v & 0x10 != 0 {
                // ICW1.
                *self = Self {
                    icw: 2,
                    icw4: v & 1 != 0,
                    level: self.level,
                    ..Self::default()
                };
            } else if v & 0x08 != 0 {
                // OCW3.
                if v & 0x02 != 0 {
                    self.read_isr = v & 1 != 0;
                }
            } else if v & 0x20 != 0 {
                // OCW2: EOI, specific (level in bits 0..3) or not (the highest in service).
                let irq = if v & 0x40 != 0 {
                    Some(v & 7)
                } else {
                    (0..8).find(|i| self.isr & (1 << i) != 0)
                };
                if let Some(i) = irq {
                    self.isr &= !(1 << i);
                }
            }
            return;
        }
        match self.icw {
            2 => {
                self.base = v & 0xf8;
                self.icw = 3;
            }
            3 => self.icw = if self.icw4 { 4 } else { 0 },
            4 => {
                self.auto_eoi = v & 2 != 0;
                self.icw = 0;
            }
            _ => self.imr = v,
        }
    }

    fn read(&self, cmd: bool) -> u8 {
        match (cmd, self.read_isr) {
            (false, _) => self.imr,
            (true, true) => self.isr,
            (true, false) => self.irr,
        }
    }

    fn set_line(&mut self, irq: u8, high: bool) {
        let bit = 1 << irq;
        if high && self.level & bit == 0 {
            self.irr |= bit;
        }
        if high {
            self.level |= bit;
        } else {
            self.level &= !bit;
        }
    }

    /// The vector to deliver now, acknowledged (IRR → ISR): the highest-priority request
    /// not masked and above everything in service.
    fn ack(&mut self) -> Option<u8> {
        let want = self.irr & !self.imr;
        let irq = (0..8).find(|i| want & (1 << i) != 0)?;
        if let Some(busy) = (0..8).find(|i| self.isr & (1 << i) != 0) {
            if busy <= irq {
                return None;
            }
        }
        self.irr &= !(1 << irq);
        if !self.auto_eoi {
            self.isr |= 1 << irq;
        }
        Some(self.base + irq)
    }
}

/// The master and slave 8259s.
#[derive(Debug, Default)]
pub struct Pic {
    master: Pic8259,
    slave: Pic8259,
}

impl Pic {
    /// Port 0x20/0x21 (`master`) or 0xa0/0xa1 write.
    pub fn write(&mut self, master: bool, cmd: bool, v: u8) {
        if master {
            self.master.write(cmd, v);
        } else {
            self.slave.write(cmd, v);
        }
    }

    /// Port 0x20/0x21 or 0xa0/0xa1 read.
    pub fn read(&self, master: bool, cmd: bool) -> u8 {
        if master {
            self.master.read(cmd)
        } else {
            self.slave.read(cmd)
        }
    }

    /// Sets master line `irq`'s level (edge-triggered: a rising edge requests).
    pub fn set_line(&mut self, irq: u8, high: bool) {
        self.master.set_line(irq, high);
    }

    /// The vector to inject now, if any (acknowledged at once: the vCPU holds it until the
    /// guest can take it).
    pub fn ack(&mut self) -> Option<u8> {
        self.master.ack()
    }

    /// Whether master line `irq` has a request the 8259 will deliver (requested, not
    /// masked): a new edge on it now would be lost.
    pub fn requested(&self, irq: u8) -> bool {
        let bit = 1 << irq;
        self.master.irr & bit != 0 && self.master.imr & bit == 0
    }

    /// Whether [`ack`](Self::ack) would give a vector now (nothing is acknowledged).
    pub fn pending(&self) -> bool {
        {
            let mut master = self.master;
            master.ack().is_some()
        }
    }
}

/// One PIT channel.
#[derive(Debug, Default, Clone, Copy)]
struct Channel {
    /// The reload value (0 means 65536).
    count: u32,
    mode: u8,
    /// Access: 1 LSB, 2 MSB, 3 LSB then MSB.
    access: u8,
    /// PIT tick the count was loaded at.
    start: u64,
    /// A count loaded and counting.
    armed: bool,
    /// Next write is the MSB (access 3).
    write_msb: bool,
    /// Next read is the MSB (access 3).
    read_msb: bool,
    latched: Option<u16>,
    lsb: u8,
}

impl Channel {
    fn period(&self) -> u64 {
        if self.count == 0 {
            0x1_0000
        } else {
            u64::from(self.count)
        }
    }

    fn periodic(&self) -> bool {
        matches!(self.mode & 3, 2 | 3)
    }

    /// The counter at tick `now`.
    fn value(&self, now: u64) -> u16 {
        if !self.armed {
            return self.count as u16;
        }
        let elapsed = now.saturating_sub(self.start);
        let p = self.period();
        if self.periodic() {
            (p - elapsed % p) as u16
        } else if elapsed < p {
            (p - elapsed) as u16
        } else {
            // Past zero the counter wraps and goes on down from 0xffff.
            (0x1_0000 - (elapsed - p) % 0x1_0000) as u16
        }
    }

    /// OUT at tick `now` for modes 0 and 1 (one-shot): high once the count ran out.
    fn out(&self, now: u64) -> bool {
        if !self.armed {
            return true;
        }
        let elapsed = now.saturating_sub(self.start);
        if self.periodic() {
            elapsed % self.period() < self.period() / 2
        } else {
            elapsed >= self.period()
        }
    }

    fn write_count(&mut self, v: u8, now: u64) {
        match self.access {
            1 => self.load(u32::from(v), now),
            2 => self.load(u32::from(v) << 8, now),
            _ => {
                if self.write_msb {
                    self.write_msb = false;
                    self.load(u32::from(self.lsb) | u32::from(v) << 8, now);
                } else {
                    self.lsb = v;
                    self.write_msb = true;
                }
            }
        }
    }

    fn load(&mut self, count: u32, now: u64) {
        self.count = count;
        self.start = now;
        self.armed = true;
    }

    fn read(&mut self, now: u64) -> u8 {
        let v = self.latched.unwrap_or_else(|| self.value(now));
        let byte = match self.access {
            1 => v as u8,
            2 => (v >> 8) as u8,
            _ => {
                self.read_msb = !self.read_msb;
                if self.read_msb {
                    v as u8
                } else {
                    (v >> 8) as u8
                }
            }
        };
        if self.access != 3 || !self.read_msb {
            self.latched = None;
        }
        byte
    }
}

/// The 8254 PIT's channels 0 and 2, and port 0x61.
#[derive(Debug, Default)]
pub struct Pit {
    ch: [Channel; 3],
    /// Port 0x61 bits 0 (channel 2's gate) and 1 (speaker).
    port61: u8,
    /// The PIT tick of channel 0's next IRQ 0, while it has one to give.
    next_irq: Option<u64>,
}

impl Pit {
    /// A write to port 0x40..=0x43 (`port` - 0x40) at PIT tick `now`.
    pub fn write(&mut self, port: u16, v: u8, now: u64) {
        if port == 3 {
            let c = usize::from(v >> 6);
            if c == 3 {
                // Read-back: not used by Linux.
                return;
            }
            let access = (v >> 4) & 3;
            if access == 0 {
                let value = self.ch[c].value(now);
                self.ch[c].latched = Some(value);
                return;
            }
            let ch = &mut self.ch[c];
            ch.access = access;
            ch.mode = (v >> 1) & 7;
            ch.armed = false;
            ch.write_msb = false;
            ch.read_msb = false;
            ch.latched = None;
            if c == 0 {
                self.next_irq = None;
            }
            return;
        }
        let c = usize::from(port & 3);
        self.ch[c].write_count(v, now);
        if c == 0 && self.ch[0].armed && !self.ch[0].write_msb {
            self.next_irq = Some(now + self.ch[0].period());
        }
    }

    /// A read of port 0x40..=0x42 at PIT tick `now`.
    pub fn read(&mut self, port: u16, now: u64) -> u8 {
        self.ch[usize::from(port & 3) % 3].read(now)
    }

    /// Port 0x61: gate and speaker as written, channel 2's OUT in bit 5, the refresh
    /// toggle in bit 4.
    pub fn read61(&self, now: u64) -> u8 {
        let out = self.port61 & 1 != 0 && self.ch[2].out(now);
        self.port61 | (u8::from(out) << 5) | (((now >> 4) & 1) as u8) << 4
    }

    /// Port 0x61 write (the gate restarts channel 2's count on a rising edge).
    pub fn write61(&mut self, v: u8, now: u64) {
        if v & 1 != 0 && self.port61 & 1 == 0 && self.ch[2].armed {
            self.ch[2].start = now;
        }
        self.port61 = v & 3;
    }

    /// Whether channel 0 fired by tick `now` (then its next period is scheduled, or, one
    /// shot, nothing). A periodic channel the caller could not take IRQs from in time
    /// catches up one period per call, up to [`CATCH_UP`] periods behind (older ones are
    /// dropped): a host that was descheduled for a while does not lose the guest's ticks
    /// (Linux counts jiffies by them, and checks its local APIC timer against them).
    pub fn take_irq(&mut self, now: u64) -> bool {
        match self.next_irq {
            Some(t) if now >= t => {
                let ch = self.ch[0];
                self.next_irq = if ch.periodic() {
                    let p = ch.period();
                    let behind = (now - t) / p;
                    let skipped = behind.saturating_sub(CATCH_UP);
                    Some(t + p * (skipped + 1))
                } else {
                    None
                };
                true
            }
            _ => false,
        }
    }

    /// The PIT tick of the next IRQ 0.
    pub fn next_irq(&self) -> Option<u64> {
        self.next_irq
    }
}

/// The CMOS RTC: an index register and a fixed, valid time (2026-01-01 00:00:00, BCD,
/// 24-hour), never updating.
#[derive(Debug, Default)]
pub struct Cmos {
    index: u8,
}

impl Cmos {
    /// Port 0x70 write.
    pub fn select(&mut self, v: u8) {
        self.index = v & 0x7f;
    }

    /// Port 0x71 read.
    pub fn read(&self) -> u8 {
        match self.index {
            // Day of month, month.
            0x07 | 0x08 => 0x01,
            // Year, century.
            0x09 => 0x26,
            0x32 => 0x20,
            // Register A: no update in progress, 32.768 kHz base.
            0x0a => 0x26,
            // Register B: 24-hour, BCD, no interrupts.
            0x0b => 0x02,
            // Register D: the time is valid.
            0x0d => 0x80,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 8259 pair programmed as Linux does: vectors 0x30.., edge, 8086 mode.
    fn linux_pic() -> Pic {
        let mut p = Pic::default();
        for (master, base, cascade) in [(true, 0x30, 4), (false, 0x38, 2)] {
            p.write(master, true, 0x11);
            p.write(master, false, base);
            p.write(master, false, cascade);
            p.write(master, false, 0x01);
        }
        p
    }

    #[test]
    fn the_pic_delivers_by_priority_until_eoi_and_honours_its_mask() {
        let mut p = linux_pic();
        assert_eq!(p.ack(), None);
        p.set_line(4, true);
        p.set_line(0, true);
        p.set_line(0, false);
        assert!(p.pending() && p.pending(), "looking acknowledges nothing");
        assert_eq!(p.ack(), Some(0x30), "IRQ 0 first");
        assert!(!p.pending());
        assert_eq!(p.ack(), None, "IRQ 4 waits for IRQ 0's EOI");
        p.write(true, true, 0x60); // specific EOI, IRQ 0
        assert_eq!(p.ack(), Some(0x34));
        // A level held high requests once per rising edge.
        p.write(true, true, 0x20); // non-specific EOI
        assert_eq!(p.ack(), None);
        // Masked lines wait; IMR reads back.
        p.write(true, false, 0x01);
        assert_eq!(p.read(true, false), 0x01);
        p.set_line(0, true);
        p.set_line(0, false);
        assert_eq!(p.ack(), None);
        // OCW3 selects IRR or ISR for command-port reads.
        p.write(true, true, 0x0a);
        assert_eq!(p.read(true, true), 0x01);
        p.write(true, false, 0x00);
        assert_eq!(p.ack(), Some(0x30));
        p.write(true, true, 0x0b);
        assert_eq!(p.read(true, true), 0x01);
    }

    #[test]
    fn the_pit_counts_down_fires_once_or_periodically_and_drives_port_61() {
        let mut t = Pit::default();
        // Channel 0, LSB then MSB, mode 4 (Linux's one-shot): 1000 ticks.
        t.write(3, 0x38, 0);
        t.write(0, 0xe8, 100);
        t.write(0, 0x03, 100);
        assert_eq!(t.next_irq(), Some(1100));
        assert!(!t.take_irq(1099));
        assert!(t.take_irq(1100));
        assert_eq!(t.next_irq(), None, "one shot");
        // Mode 2, period 100: missed periods are caught up one IRQ at a time, on the grid...
        t.write(3, 0x34, 2000);
        t.write(0, 100, 2000);
        t.write(0, 0, 2000);
        assert!(t.take_irq(2350));
        assert_eq!(t.next_irq(), Some(2200));
        assert!(t.take_irq(2350) && t.take_irq(2350));
        assert!(!t.take_irq(2350));
        assert_eq!(t.next_irq(), Some(2400));
        // ... up to CATCH_UP periods behind.
        assert!(t.take_irq(2400 + 100 * 50 + 50));
        assert_eq!(t.next_irq(), Some(2400 + 100 * (50 - CATCH_UP) + 100));
        // Channel 2, mode 0, gate on: the counter reads down, OUT (port 0x61 bit 5)
        // rises at zero.
        t.write61(0x01, 0);
        t.write(3, 0xb0, 0);
        t.write(2, 0x00, 0);
        t.write(2, 0x10, 0);
        assert_eq!(t.read61(0x0fff) & 0x20, 0);
        assert_eq!(t.read(2, 0x100), 0x00);
        assert_eq!(t.read(2, 0x100), 0x0f, "0x1000 - 0x100, LSB then MSB");
        assert_ne!(t.read61(0x1000) & 0x20, 0);
        // A latched count survives the time between its two reads.
        t.write(3, 0x80, 0x200);
        assert_eq!((t.read(2, 0x200), t.read(2, 0x900)), (0x00, 0x0e));
    }

    #[test]
    fn pit_time_converts_both_ways() {
        assert_eq!(pit_ticks(1_000_000_000), 1_193_182);
        assert!(ticks_ns(pit_ticks(12_345_678)) <= 12_345_678 + 1000);
        assert!(ticks_ns(1) >= 838);
    }

    #[test]
    fn the_cmos_clock_is_valid_and_never_updating() {
        let mut c = Cmos::default();
        c.select(0x0a);
        assert_eq!(c.read() & 0x80, 0, "no update in progress");
        c.select(0x8d);
        assert_eq!(c.read(), 0x80, "valid, NMI bit ignored");
    }
}
