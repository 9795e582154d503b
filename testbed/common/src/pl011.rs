//! A PL011 UART as far as Linux's `amba-pl011` driver and its console need, for OS-guest
//! hypervisors that emulate it through MMIO exits: transmit always ready and never full,
//! the receiver fed by the hypervisor with what the host's console received
//! ([`Pl011::receive`]), the PrimeCell identification registers, the control registers
//! read back as written. Interrupts as the chip raises them: receive (RXRIS) and receive
//! timeout (RTRIS) while input waits, transmit (TXRIS) always (the FIFO is never above
//! its trigger level: the driver enables TXIM only while it has output queued); the line
//! ([`Pl011::irq`]) is high while one of them is unmasked in IMSC.

use crate::uart::{Line, LineBuffer, RxFifo};

/// Registers.
const DR: usize = 0x000;
const FR: usize = 0x018;
const IMSC: usize = 0x038;
const RIS: usize = 0x03c;
const MIS: usize = 0x040;
/// The read-back registers, IBRD (0x024) to DMACR (0x048).
const REGS_START: usize = 0x024;
const REGS_END: usize = 0x048;
/// FR: transmit FIFO empty, receive FIFO empty.
const FR_TXFE: u32 = 1 << 7;
const FR_RXFE: u32 = 1 << 4;
/// Interrupt bits (RIS, MIS, IMSC): receive, transmit, receive timeout.
const INT_RX: u32 = 1 << 4;
const INT_TX: u32 = 1 << 5;
const INT_RT: u32 = 1 << 6;
/// PeriphID0..3 (PL011 r1p4), PCellID0..3.
const IDS: [u32; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

/// The UART's state.
#[derive(Debug, Clone, Default)]
pub struct Pl011 {
    regs: [u32; (REGS_END - REGS_START) / 4 + 1],
    line: LineBuffer,
    rx: RxFifo,
}

impl Pl011 {
    /// A read at `offset`. Reading DR takes a byte of input.
    pub fn read(&mut self, offset: usize) -> u64 {
        let v = match offset {
            DR => self.rx.pop().map_or(0, u32::from),
            FR => FR_TXFE | if self.rx.has_data() { 0 } else { FR_RXFE },
            RIS => self.raw_interrupts(),
            MIS => self.raw_interrupts() & self.imsc(),
            0xfe0..0x1000 => IDS.get((offset - 0xfe0) / 4).copied().unwrap_or(0),
            REGS_START..=REGS_END => self.regs[(offset - REGS_START) / 4],
            _ => 0,
        };
        u64::from(v)
    }

    /// A write at `offset`; returns a finished line of output.
    pub fn write(&mut self, offset: usize, value: u64) -> Option<Line> {
        match offset {
            DR => return self.line.put(value as u8),
            // ICR clears only edge conditions; this model's are all levels (input waiting,
            // transmit FIFO empty), so there is nothing to clear.
            RIS | MIS => {}
            REGS_START..=REGS_END => self.regs[(offset - REGS_START) / 4] = value as u32,
            _ => {}
        }
        None
    }

    fn imsc(&self) -> u32 {
        self.regs[(IMSC - REGS_START) / 4]
    }

    fn raw_interrupts(&self) -> u32 {
        INT_TX
            | if self.rx.has_data() {
                INT_RX | INT_RT
            } else {
                0
            }
    }

    /// The interrupt line: an unmasked interrupt is raised.
    pub fn irq(&self) -> bool {
        self.raw_interrupts() & self.imsc() != 0
    }

    /// Input from the host's console for the guest to read (dropped beyond the FIFO's
    /// room).
    pub fn receive(&mut self, input: &[u8]) {
        self.rx.push(input);
    }

    /// What the guest's unfinished output line (a prompt) has that was not shown yet.
    pub fn show_partial_line(&mut self) -> Option<&[u8]> {
        self.line.show_partial()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn the_uart_is_always_ready_identifies_itself_and_gives_whole_lines() {
        let mut u = Pl011::default();
        assert_eq!(u.read(FR), 0x90);
        let id: Vec<u64> = (0..8).map(|i| u.read(0xfe0 + 4 * i)).collect();
        assert_eq!(id, [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
        assert_eq!(u.write(DR, b'o' as u64), None);
        assert_eq!(u.write(DR, b'k' as u64), None);
        assert_eq!(u.write(DR, b'\r' as u64), None);
        assert_eq!(
            u.write(DR, b'\n' as u64).map(|l| l.text).as_deref(),
            Some(&b"ok"[..])
        );
        u.write(0x030, 0x301);
        assert_eq!(u.read(0x030), 0x301);
    }

    #[test]
    fn input_raises_the_unmasked_receive_interrupts_until_read() {
        let mut u = Pl011::default();
        u.receive(b"hi");
        assert_eq!(u.read(FR) & u64::from(FR_RXFE), 0);
        assert!(!u.irq(), "masked");
        u.write(IMSC, u64::from(INT_RX | INT_RT));
        assert!(u.irq());
        assert_eq!(u.read(MIS), u64::from(INT_RX | INT_RT));
        assert_eq!((u.read(DR), u.read(DR)), (u64::from(b'h'), u64::from(b'i')));
        assert_eq!(u.read(FR) & u64::from(FR_RXFE), u64::from(FR_RXFE));
        assert!(!u.irq() && u.read(MIS) == 0);
        assert_eq!(
            u.read(RIS),
            u64::from(INT_TX),
            "the transmit FIFO is always empty"
        );
        u.write(IMSC, u64::from(INT_TX));
        assert!(
            u.irq(),
            "transmit interrupt while the driver has output queued"
        );
    }
}
