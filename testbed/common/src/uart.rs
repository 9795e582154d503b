//! What the emulated UARTs of the OS-guest hypervisors share ([`ns16550`](crate::ns16550),
//! [`pl011`](crate::pl011)): the guest's output gathered into whole lines (the hypervisor
//! prints a line at a time, never interleaved with its own), and the bytes the host's
//! console received, waiting for the guest to read them.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// The longest line kept before it goes out unfinished.
const LINE_MAX: usize = 4096;
/// Bytes of input the model holds for the guest; more are dropped (an overrun, as a
/// hardware FIFO has: typing faster than the guest reads loses characters, nothing else).
pub const RX_CAPACITY: usize = 256;

/// The guest's output, a line at a time.
#[derive(Debug, Clone, Default)]
pub struct LineBuffer {
    line: Vec<u8>,
    /// How much of `line` [`show_partial`](Self::show_partial) gave out already.
    shown: usize,
}

/// A finished line of the guest's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The whole line, without its `\n` (markers are looked for in this).
    pub text: Vec<u8>,
    /// How many of its first bytes were printed already, as a partial line.
    pub shown: usize,
}

impl Line {
    /// What is left to print.
    pub fn unshown(&self) -> &[u8] {
        self.text.get(self.shown..).unwrap_or(&[])
    }
}

impl LineBuffer {
    /// Adds a byte the guest wrote; returns a finished line (`\r` is dropped), or a
    /// 4 KiB piece of a longer one.
    pub fn put(&mut self, b: u8) -> Option<Line> {
        match b {
            b'\n' => Some(self.finish()),
            b'\r' => None,
            _ => {
                self.line.push(b);
                (self.line.len() >= LINE_MAX).then(|| self.finish())
            }
        }
    }

    fn finish(&mut self) -> Line {
        Line {
            text: core::mem::take(&mut self.line),
            shown: core::mem::take(&mut self.shown),
        }
    }

    /// What the unfinished line has that was not shown yet (a shell's prompt, shown when
    /// the guest waits for input); the line stays whole for [`put`](Self::put).
    pub fn show_partial(&mut self) -> Option<&[u8]> {
        let new = self.line.get(self.shown..).filter(|b| !b.is_empty())?;
        self.shown = self.line.len();
        Some(new)
    }
}

/// Input waiting for the guest.
#[derive(Debug, Clone, Default)]
pub struct RxFifo {
    bytes: VecDeque<u8>,
    overrun: bool,
}

impl RxFifo {
    /// Queues `input`; what does not fit in [`RX_CAPACITY`] is dropped and noted.
    pub fn push(&mut self, input: &[u8]) {
        for &b in input {
            if self.bytes.len() < RX_CAPACITY {
                self.bytes.push_back(b);
            } else {
                self.overrun = true;
            }
        }
    }

    /// The next byte for the guest.
    pub fn pop(&mut self) -> Option<u8> {
        self.bytes.pop_front()
    }

    /// Whether there is input.
    pub fn has_data(&self) -> bool {
        !self.bytes.is_empty()
    }

    /// Whether input was dropped since the last call (the UART's overrun error bit).
    pub fn take_overrun(&mut self) -> bool {
        core::mem::take(&mut self.overrun)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_goes_out_in_whole_lines_and_a_prompt_on_demand() {
        let mut l = LineBuffer::default();
        assert_eq!(l.put(b'o'), None);
        assert_eq!(l.put(b'k'), None);
        assert_eq!(l.put(b'\r'), None);
        let ok = l.put(b'\n').unwrap();
        assert_eq!((ok.text.as_slice(), ok.unshown()), (&b"ok"[..], &b"ok"[..]));
        assert_eq!(l.show_partial(), None);
        for b in b"# ls" {
            l.put(*b);
            if *b == b' ' {
                assert_eq!(l.show_partial(), Some(&b"# "[..]));
                assert_eq!(l.show_partial(), None, "shown once");
            }
        }
        let typed = l.put(b'\n').unwrap();
        assert_eq!(typed.text, b"# ls", "the whole line, for markers");
        assert_eq!(typed.unshown(), b"ls", "the rest, for printing");
        let long: Vec<_> = (0..LINE_MAX).filter_map(|_| l.put(b'x')).collect();
        assert_eq!(long.len(), 1, "a line that never ends still goes out");
    }

    #[test]
    fn input_is_read_in_order_and_an_overflow_is_an_overrun() {
        let mut f = RxFifo::default();
        assert!(!f.has_data());
        f.push(b"ab");
        assert!(f.has_data() && !f.take_overrun());
        assert_eq!((f.pop(), f.pop(), f.pop()), (Some(b'a'), Some(b'b'), None));
        f.push(&[0; RX_CAPACITY + 3]);
        assert!(f.take_overrun() && !f.take_overrun());
        assert_eq!(core::iter::from_fn(|| f.pop()).count(), RX_CAPACITY);
    }
}
