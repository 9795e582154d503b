//! The port-I/O devices as the vCPUs share them ([`Devices`], behind one lock in the
//! machine): which port is which device, the console's lines, the #GP'd MSRs the closing
//! line names, and the interrupt lines the PIT and the UART drive into the 8259.

use alloc::vec::Vec;

use axvcpu_testbed::ns16550::Ns16550;
use axvcpu_testbed::uart::Line;

use super::devices::{pit_ticks, ticks_ns, Cmos, Pic, Pit};

/// The devices port accesses are counted by, for the closing line.
pub(super) const DEVICES: [&str; 7] = ["COM1", "PIC", "PIT", "port61", "port80", "CMOS", "other"];
/// How many distinct #GP'd MSRs the closing line names.
pub(super) const GP_MSRS_SHOWN: usize = 12;

fn device_of(port: u16) -> usize {
    match port {
        0x3f8..=0x3ff => 0,
        0x20 | 0x21 | 0xa0 | 0xa1 => 1,
        0x40..=0x43 => 2,
        0x61 => 3,
        0x80 => 4,
        0x70 | 0x71 => 5,
        _ => 6,
    }
}

/// Whether a port access by a vCPU other than 0 may change what vCPU 0 delivers or when
/// (the 8259, the PIT, the UART's interrupt): vCPU 0 is then kicked to look again.
pub(super) fn concerns_vcpu0(port: u16) -> bool {
    matches!(port, 0x20 | 0x21 | 0xa0 | 0xa1 | 0x40..=0x43 | 0x61 | 0x3f8..=0x3ff)
}

/// What a port write asks of the hypervisor.
#[derive(Debug, Default)]
pub(super) struct Written {
    /// A whole console line, to print once the lock is released (never interleaved with
    /// the hypervisor's own lines).
    pub line: Option<Line>,
    /// A reset: the keyboard controller's pulse or the PCI reset control register.
    pub reset: bool,
}

/// The devices every vCPU reaches through port I/O.
pub(super) struct Devices {
    /// COM1.
    pub uart: Ns16550,
    pub pic: Pic,
    pit: Pit,
    cmos: Cmos,
    /// Port accesses by device ([`DEVICES`]).
    pub io: [u64; DEVICES.len()],
    /// MSRs answered with #GP: the first few distinct ones, and how many accesses.
    pub gp_msrs: Vec<u32>,
    pub gp_count: u64,
}

impl Default for Devices {
    fn default() -> Self {
        Self {
            uart: Ns16550::pc(),
            pic: Pic::default(),
            pit: Pit::default(),
            cmos: Cmos::default(),
            io: [0; DEVICES.len()],
            gp_msrs: Vec::new(),
            gp_count: 0,
        }
    }
}

impl Devices {
    /// Takes the host console's input into COM1, brings the PIT's IRQ 0 and the UART's
    /// IRQ 4 into the 8259 at host time `now`;
    /// returns when the PIT's next IRQ is due (host ns): `None` while IRQ 0 still waits in
    /// the 8259 (its next edge comes once that one is taken, so no tick is lost; the
    /// guest's acknowledge and EOI exit anyway).
    pub fn tick(&mut self, now: u64) -> Option<u64> {
        // What the host's COM1 received goes to the guest's (vCPU 0's CPU calls this).
        let mut input = [0u8; 64];
        let n = crate::hal::console_input(&mut input);
        if n != 0 {
            self.uart.receive(&input[..n]);
        }
        let waiting = self.pic.requested(0);
        if !waiting && self.pit.take_irq(pit_ticks(now)) {
            self.pic.set_line(0, true);
            self.pic.set_line(0, false);
        }
        let uart = self.uart.irq();
        self.pic.set_line(4, uart);
        if self.pic.requested(0) {
            return None;
        }
        self.pit.next_irq().map(ticks_ns)
    }

    /// A read of `size` bytes at `port` at host time `now`; all ones for a port nothing
    /// answers.
    pub fn read(&mut self, port: u16, size: usize, now: u64) -> u64 {
        self.io[device_of(port)] += 1;
        let now = pit_ticks(now);
        let v = match port {
            0x3f8..=0x3ff => self.uart.read(usize::from(port - 0x3f8)),
            0x20 | 0x21 => self.pic.read(true, port == 0x20),
            0xa0 | 0xa1 => self.pic.read(false, port == 0xa0),
            0x40..=0x42 => self.pit.read(port - 0x40, now),
            0x61 => self.pit.read61(now),
            0x71 => self.cmos.read(),
            _ => return u64::MAX >> (64 - 8 * size.clamp(1, 8) as u32),
        };
        u64::from(v)
    }

    /// A byte written to `port` at host time `now`.
    pub fn write(&mut self, port: u16, v: u8, now: u64) -> Written {
        self.io[device_of(port)] += 1;
        let now = pit_ticks(now);
        let mut out = Written::default();
        match port {
            0x3f8..=0x3ff => out.line = self.uart.write(usize::from(port - 0x3f8), v),
            0x20 | 0x21 => self.pic.write(true, port == 0x20, v),
            0xa0 | 0xa1 => self.pic.write(false, port == 0xa0, v),
            0x40..=0x43 => self.pit.write(port - 0x40, v, now),
            0x61 => self.pit.write61(v, now),
            0x70 => self.cmos.select(v),
            0x64 if v == 0xfe => out.reset = true,
            0xcf9 if v & 4 != 0 => out.reset = true,
            _ => {}
        }
        out
    }

    /// Notes an MSR access answered with #GP.
    pub fn gp(&mut self, msr: u32) {
        self.gp_count += 1;
        if !self.gp_msrs.contains(&msr) && self.gp_msrs.len() < GP_MSRS_SHOWN {
            self.gp_msrs.push(msr);
        }
    }
}
