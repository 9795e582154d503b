//! A console whose lines never interleave between CPUs.

use core::fmt;

/// A console over a byte sink (a UART's transmit register, an SBI call, ...).
#[derive(Debug)]
pub struct Console {
    putc: fn(u8),
    lock: spin::Mutex<()>,
}

impl Console {
    /// A console writing bytes with `putc`.
    pub const fn new(putc: fn(u8)) -> Self {
        Self {
            putc,
            lock: spin::Mutex::new(()),
        }
    }

    /// Writes `bytes` at once, holding the console lock (`\n` becomes `\r\n`).
    pub fn write_bytes(&self, bytes: &[u8]) {
        let _guard = self.lock.lock();
        for &b in bytes {
            if b == b'\n' {
                (self.putc)(b'\r');
            }
            (self.putc)(b);
        }
    }

    /// A writer that buffers up to a line and writes whole lines.
    pub fn writer(&self) -> LineWriter<'_> {
        LineWriter {
            console: self,
            buf: [0; LINE],
            len: 0,
        }
    }
}

const LINE: usize = 256;

/// Buffers text and hands it to its [`Console`] a line at a time (or when full, or dropped).
pub struct LineWriter<'a> {
    console: &'a Console,
    buf: [u8; LINE],
    len: usize,
}

impl core::fmt::Debug for LineWriter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineWriter")
            .field("len", &self.len)
            .finish()
    }
}

impl LineWriter<'_> {
    /// Writes what is buffered.
    pub fn flush(&mut self) {
        if self.len > 0 {
            self.console.write_bytes(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl fmt::Write for LineWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == LINE {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' {
                self.flush();
            }
        }
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Writes `prefix` at the start of every line it passes on (a second pass of the suite
/// marks its lines this way, so they are told apart from the first pass's).
#[derive(Debug)]
pub struct Prefixed<'a, W: fmt::Write> {
    out: &'a mut W,
    prefix: &'a str,
    at_line_start: bool,
}

impl<'a, W: fmt::Write> Prefixed<'a, W> {
    /// A writer prefixing each line written to `out` with `prefix`.
    pub fn new(out: &'a mut W, prefix: &'a str) -> Self {
        Self {
            out,
            prefix,
            at_line_start: true,
        }
    }
}

impl<W: fmt::Write> fmt::Write for Prefixed<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for piece in s.split_inclusive('\n') {
            if self.at_line_start {
                self.out.write_str(self.prefix)?;
            }
            self.out.write_str(piece)?;
            self.at_line_start = piece.ends_with('\n');
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;
    use std::sync::Mutex;
    use std::vec::Vec;

    static OUT: Mutex<Vec<u8>> = Mutex::new(Vec::new());
    fn put(b: u8) {
        OUT.lock().unwrap().push(b);
    }

    #[test]
    fn writes_whole_lines_with_crlf() {
        let c = Console::new(put);
        let mut w = c.writer();
        write!(w, "PASS {}", 1 + 1).unwrap();
        assert!(OUT.lock().unwrap().is_empty());
        writeln!(w, "!").unwrap();
        assert_eq!(&OUT.lock().unwrap()[..], b"PASS 2!\r\n");
    }

    #[test]
    fn prefixes_every_line_however_it_is_split() {
        let mut out = std::string::String::new();
        {
            let mut p = Prefixed::new(&mut out, "[b] ");
            write!(p, "PASS a\nPA").unwrap();
            write!(p, "SS b\n\n").unwrap();
            write!(p, "3 passed").unwrap();
        }
        assert_eq!(out, "[b] PASS a\n[b] PASS b\n[b] \n[b] 3 passed");
    }
}
