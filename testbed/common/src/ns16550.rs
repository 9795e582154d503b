//! An NS16550A UART as far as Linux's 8250 driver and its console need, for OS-guest
//! hypervisors that emulate it through MMIO exits (byte-wide registers, `reg-shift` 0):
//! the transmitter always empty and ready, the receiver fed by the hypervisor with what the
//! host's console received ([`Ns16550::receive`]), the divisor latch, the scratch register
//! and the control registers reading back as written, FIFOs reported (IIR bits 7:6).
//! Its interrupt line ([`Ns16550::irq`]) is "received data available" (IER bit 0, while
//! input waits) or "transmitter empty" (IER bit 1), with the chip's rules for the latter:
//! raised when enabled and after each byte written (the transmitter empties at once),
//! cleared by reading IIR while it is the interrupt IIR names, or by writing THR — the
//! driver then writes its output in bursts from its interrupt handler instead of polling.
//! IIR names the higher-priority interrupt. On a PC ([`Ns16550::pc`]) MCR's OUT2 gates the
//! line to the interrupt controller, as the boards wire it.

use crate::uart::{Line, LineBuffer, RxFifo};

/// Line status: data ready, overrun error.
const LSR_DR: u8 = 0x01;
const LSR_OE: u8 = 0x02;
/// Line status: transmit holding register empty, transmitter empty.
const LSR_THRE_TEMT: u8 = 0x60;
/// Interrupt enable: received data available, transmitter empty.
const IER_RDA: u8 = 0x01;
const IER_THRE: u8 = 0x02;
/// Line control: divisor latch access.
const LCR_DLAB: u8 = 0x80;
/// Modem control: OUT2 (a PC's interrupt gate), loopback.
const MCR_OUT2: u8 = 0x08;
const MCR_LOOP: u8 = 0x10;

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
    line: LineBuffer,
    rx: RxFifo,
    /// The "transmitter empty" interrupt is pending.
    thr_pending: bool,
    /// MCR.OUT2 gates the interrupt line (a PC's COM port).
    out2_gate: bool,
}

impl Ns16550 {
    /// A PC's COM port: the interrupt line reaches the 8259 only with MCR.OUT2 set.
    pub fn pc() -> Self {
        Self {
            out2_gate: true,
            ..Self::default()
        }
    }

    /// A byte read at `offset` (0..8). Reading the receive buffer takes a byte of input;
    /// reading the line status clears its overrun bit.
    pub fn read(&mut self, offset: usize) -> u8 {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            0 if dlab => self.dll,
            1 if dlab => self.dlm,
            0 => self.rx.pop().unwrap_or(0),
            1 => self.ier,
            // IIR: the pending interrupt of highest priority (received data, then
            // transmitter empty) or none; FIFOs enabled when FCR says so.
            2 => {
                let id = if self.rx_irq() {
                    0x04
                } else if self.thr_irq() {
                    self.thr_pending = false;
                    0x02
                } else {
                    0x01
                };
                id | if self.fcr & 1 != 0 { 0xc0 } else { 0 }
            }
            3 => self.lcr,
            4 => self.mcr,
            5 => {
                let dr = if self.rx.has_data() { LSR_DR } else { 0 };
                let oe = if self.rx.take_overrun() { LSR_OE } else { 0 };
                LSR_THRE_TEMT | dr | oe
            }
            // MSR: in loopback, the modem outputs come back as inputs; otherwise CTS, DSR, DCD.
            6 if self.mcr & MCR_LOOP != 0 => {
                let m = self.mcr;
                ((m & 0x02) << 3) | ((m & 0x01) << 5) | ((m & 0x04) << 4) | ((m & 0x08) << 4)
            }
            6 => 0xb0,
            7 => self.scr,
            _ => 0,
        }
    }

    /// The interrupt line: high while input waits with "received data available" enabled
    /// (IER bit 0), or while "transmitter empty" is enabled (IER bit 1) and pending; on a
    /// PC only with MCR.OUT2 set.
    pub fn irq(&self) -> bool {
        let gate = !self.out2_gate || self.mcr & MCR_OUT2 != 0;
        gate && (self.rx_irq() || self.thr_irq())
    }

    fn rx_irq(&self) -> bool {
        self.ier & IER_RDA != 0 && self.rx.has_data()
    }

    fn thr_irq(&self) -> bool {
        self.ier & IER_THRE != 0 && self.thr_pending
    }

    /// Input from the host's console for the guest to read (dropped beyond the FIFO's
    /// room, as an overrun).
    pub fn receive(&mut self, input: &[u8]) {
        self.rx.push(input);
    }

    /// What the guest's unfinished output line (a prompt) has that was not shown yet.
    pub fn show_partial_line(&mut self) -> Option<&[u8]> {
        self.line.show_partial()
    }

    /// A byte write at `offset`; returns a finished line of output.
    pub fn write(&mut self, offset: usize, value: u8) -> Option<Line> {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            0 if dlab => self.dll = value,
            1 if dlab => self.dlm = value,
            0 => {
                // Sent at once: the transmitter is empty again, its interrupt pending.
                self.thr_pending = true;
                if self.mcr & MCR_LOOP == 0 {
                    return self.line.put(value);
                }
            }
            1 => {
                if self.ier & IER_THRE == 0 && value & IER_THRE != 0 {
                    self.thr_pending = true;
                }
                self.ier = value & 0x0f;
            }
            2 => self.fcr = value,
            3 => self.lcr = value,
            4 => self.mcr = value & 0x1f,
            7 => self.scr = value,
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn the_uart_is_always_ready_and_gives_whole_lines() {
        let mut u = Ns16550::default();
        assert_eq!(u.read(5) & 0x60, 0x60);
        assert_eq!(u.write(0, b'o'), None);
        assert_eq!(u.write(0, b'k'), None);
        assert_eq!(u.write(0, b'\r'), None);
        assert_eq!(
            u.write(0, b'\n').map(|l| l.text).as_deref(),
            Some(&b"ok"[..])
        );
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
        u.write(1, 0x00);
        // Loopback: bytes written are not output.
        u.write(4, 0x10);
        assert_eq!(u.write(0, b'\n'), None);
    }

    #[test]
    fn input_is_read_through_the_receive_buffer_with_its_interrupt() {
        let mut u = Ns16550::default();
        u.write(2, 0x01);
        assert_eq!(u.read(5) & LSR_DR, 0, "nothing received yet");
        u.receive(b"ls\n");
        assert!(!u.irq(), "received data is not an interrupt until enabled");
        u.write(1, IER_RDA | IER_THRE);
        assert!(u.irq());
        assert_eq!(u.read(2), 0xc4, "received data outranks transmitter empty");
        let mut got = Vec::new();
        while u.read(5) & LSR_DR != 0 {
            got.push(u.read(0));
        }
        assert_eq!(got, b"ls\n");
        assert_eq!(u.read(2), 0xc2);
        u.write(1, IER_RDA);
        assert!(!u.irq(), "the line falls once the input is read");
        u.receive(&[b'x'; crate::uart::RX_CAPACITY + 1]);
        assert_eq!(u.read(5) & (LSR_DR | LSR_OE), LSR_DR | LSR_OE);
        assert_eq!(
            u.read(5) & LSR_OE,
            0,
            "reading the status clears the overrun"
        );
    }

    #[test]
    fn transmitter_empty_is_raised_by_enabling_and_sending_and_cleared_by_iir() {
        let mut u = Ns16550::default();
        u.write(1, IER_THRE);
        assert!(u.irq(), "raised when enabled");
        assert_eq!(u.read(2) & 0x0f, 0x02);
        assert!(!u.irq(), "reading IIR cleared it");
        assert_eq!(u.read(2) & 0x0f, 0x01, "no interrupt pending");
        assert!(u.write(0, b'x').is_none());
        assert!(u.irq(), "each byte sent raises it again");
        u.write(1, 0);
        assert!(!u.irq(), "disabled");
    }

    #[test]
    fn a_pc_port_passes_linux_probes_and_gates_its_line_with_out2() {
        let mut u = Ns16550::pc();
        u.write(1, 0x0f);
        assert_eq!(u.read(1), 0x0f, "IER reads back its low nibble");
        u.write(1, 0);
        u.write(7, 0xa5);
        assert_eq!(u.read(7), 0xa5, "scratch");
        u.write(4, 0x1a);
        assert_eq!(
            u.read(6) & 0xf0,
            0x90,
            "loopback: RTS and OUT2 show as CTS and DCD"
        );
        u.write(4, 0);
        u.write(1, IER_THRE);
        assert!(!u.irq(), "OUT2 clear: the line does not reach the 8259");
        u.write(4, MCR_OUT2);
        assert!(u.irq());
        u.write(3, 0x80);
        assert!(u.write(0, 1).is_none(), "DLL is not THR");
        assert_eq!(u.read(0), 1);
    }

    #[test]
    fn a_prompt_without_a_newline_can_be_taken() {
        let mut u = Ns16550::default();
        for b in b"~ # " {
            assert_eq!(u.write(0, *b), None);
        }
        assert_eq!(u.show_partial_line(), Some(&b"~ # "[..]));
    }
}
