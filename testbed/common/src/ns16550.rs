//! An NS16550A UART as far as Linux's 8250 driver and its console need, for OS-guest
//! hypervisors that emulate it through MMIO exits (byte-wide registers, `reg-shift` 0):
//! the transmitter always empty and ready, nothing to receive, the divisor latch, the
//! scratch register and the control registers reading back as written, FIFOs reported
//! (IIR bits 7:6). Its one interrupt is "transmitter empty" ([`Ns16550::irq`]: asserted
//! while the guest enables it, since the transmitter is always empty): the driver then
//! writes its output in bursts from its interrupt handler instead of polling.

use alloc::vec::Vec;

/// Line status: transmit holding register empty, transmitter empty.
const LSR_THRE_TEMT: u8 = 0x60;
/// Line control: divisor latch access.
const LCR_DLAB: u8 = 0x80;

/// The UART's registers.
#[derive(Debug, Clone, Default)]
pub struct Ns16550 {
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    fcr: u8,
    dll: u8,
    dlm: u8,
    line: Vec<u8>,
}

impl Ns16550 {
    /// A byte read at `offset` (0..8).
    pub fn read(&self, offset: usize) -> u8 {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            0 if dlab => self.dll,
            1 if dlab => self.dlm,
            0 => 0,
            1 => self.ier,
            // IIR: "transmitter empty" when enabled, else no interrupt; FIFOs enabled when
            // FCR says so.
            2 => (if self.irq() { 0x02 } else { 0x01 }) | if self.fcr & 1 != 0 { 0xc0 } else { 0 },
            3 => self.lcr,
            4 => self.mcr,
            5 => LSR_THRE_TEMT,
            // MSR: in loopback, the modem outputs come back as inputs; otherwise CTS, DSR, DCD.
            6 if self.mcr & 0x10 != 0 => {
                let m = self.mcr;
                ((m & 0x02) << 3) | ((m & 0x01) << 5) | ((m & 0x04) << 4) | ((m & 0x08) << 4)
            }
            6 => 0xb0,
            7 => self.scr,
            _ => 0,
        }
    }

    /// The interrupt line: high while "transmitter empty" is enabled (IER bit 1).
    pub fn irq(&self) -> bool {
        self.ier & 0x02 != 0
    }

    /// A byte write at `offset`; returns a finished line of output (without its `\n`).
    pub fn write(&mut self, offset: usize, value: u8) -> Option<Vec<u8>> {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            0 if dlab => self.dll = value,
            1 if dlab => self.dlm = value,
            0 if self.mcr & 0x10 == 0 => return self.put(value),
            0 => {}
            1 => self.ier = value & 0x0f,
            2 => self.fcr = value,
            3 => self.lcr = value,
            4 => self.mcr = value & 0x1f,
            7 => self.scr = value,
            _ => {}
        }
        None
    }

    fn put(&mut self, b: u8) -> Option<Vec<u8>> {
        match b {
            b'\n' => Some(core::mem::take(&mut self.line)),
            b'\r' => None,
            _ => {
                self.line.push(b);
                (self.line.len() >= 4096).then(|| core::mem::take(&mut self.line))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uart_is_always_ready_and_gives_whole_lines() {
        let mut u = Ns16550::default();
        assert_eq!(u.read(5) & 0x60, 0x60);
        assert_eq!(u.write(0, b'o'), None);
        assert_eq!(u.write(0, b'k'), None);
        assert_eq!(u.write(0, b'\r'), None);
        assert_eq!(u.write(0, b'\n').as_deref(), Some(&b"ok"[..]));
    }

    #[test]
    fn registers_read_back_and_the_divisor_latch_is_banked() {
        let mut u = Ns16550::default();
        u.write(7, 0x5a);
        assert_eq!(u.read(7), 0x5a);
        u.write(3, 0x83);
        u.write(0, 0x01);
        u.write(1, 0x02);
        assert_eq!((u.read(0), u.read(1)), (0x01, 0x02));
        u.write(3, 0x03);
        assert_eq!(u.read(1), 0);
        assert_eq!(u.read(3), 0x03);
        u.write(2, 0x07);
        assert_eq!(u.read(2), 0xc1);
        assert!(!u.irq());
        u.write(1, 0x02);
        assert!(u.irq());
        assert_eq!(u.read(2), 0xc2, "transmitter empty");
        // Loopback: bytes written are not output.
        u.write(4, 0x10);
        assert_eq!(u.write(0, b'\n'), None);
    }
}
