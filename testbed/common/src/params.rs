//! The boot parameters `cargo xtask boot <arch>` hands an OS-guest hypervisor, the same on
//! every architecture: QEMU loads the block (`-device loader`) at an address the
//! architecture's hypervisor picks, next to the kernel and initrd files.
//!
//! Layout (little-endian `u64`s): [`MAGIC`], kernel size, initrd size, vCPUs, flags
//! ([`FLAG_PRINT_DTB`]), command-line length; then the command line (UTF-8).

/// The parameter block's first 8 bytes.
pub const MAGIC: &[u8; 8] = b"AXVLINUX";
/// Its fixed part: magic, kernel size, initrd size, vCPU count, flags, command-line length.
const HEADER: usize = 48;
/// Flag: print the device tree (hex) before the guest starts, so plain QEMU can boot the
/// same kernel with the same tree (`cargo xtask bench linux-<arch>`).
pub const FLAG_PRINT_DTB: u64 = 1;
/// The longest command line accepted.
pub const MAX_CMDLINE: usize = 2048;

/// The boot parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params<'a> {
    /// The kernel file's length.
    pub kernel_size: usize,
    /// The initrd's length (0: none).
    pub initrd_size: usize,
    /// vCPUs to give the guest.
    pub cpus: usize,
    /// `FLAG_*` bits.
    pub flags: u64,
    /// The kernel command line.
    pub cmdline: &'a str,
}

/// The little-endian `u64` at `at` (0 past the end).
pub fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    if let Some(s) = b.get(at..at + 8) {
        w.copy_from_slice(s);
    }
    u64::from_le_bytes(w)
}

impl<'a> Params<'a> {
    /// Reads the block; the kernel must fit in `kernel_room` bytes and the initrd in
    /// `initrd_room` (the staging areas QEMU loaded them into).
    pub fn parse(
        b: &'a [u8],
        kernel_room: usize,
        initrd_room: usize,
    ) -> Result<Self, &'static str> {
        if b.get(..8) != Some(&MAGIC[..]) {
            return Err("no boot parameters (boot with `cargo xtask boot <arch>`)");
        }
        let field = |i: usize| usize::try_from(u64_at(b, 8 + 8 * i)).unwrap_or(usize::MAX);
        let (kernel_size, initrd_size, cpus, len) = (field(0), field(1), field(2), field(4));
        let flags = u64_at(b, 8 + 8 * 3);
        if len > MAX_CMDLINE {
            return Err("the command line is too long");
        }
        let cmdline = b
            .get(HEADER..HEADER + len)
            .and_then(|c| core::str::from_utf8(c).ok())
            .ok_or("the command line is not UTF-8")?;
        if kernel_size == 0 || kernel_size > kernel_room {
            return Err("the kernel is empty or larger than its staging area");
        }
        if initrd_size > initrd_room {
            return Err("the initrd is larger than its staging area");
        }
        Ok(Self {
            kernel_size,
            initrd_size,
            cpus,
            flags,
            cmdline,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(values: [u64; 5], cmdline: &[u8]) -> std::vec::Vec<u8> {
        let mut b = MAGIC.to_vec();
        for v in values {
            b.extend(v.to_le_bytes());
        }
        b.extend(cmdline);
        b
    }

    #[test]
    fn parameters_read_back() {
        let b = block([1000, 20, 2, FLAG_PRINT_DTB, 5], b"quiet");
        let p = Params::parse(&b, 1000, 20).unwrap();
        assert_eq!(
            (p.kernel_size, p.initrd_size, p.cpus, p.flags, p.cmdline),
            (1000, 20, 2, FLAG_PRINT_DTB, "quiet")
        );
    }

    #[test]
    fn bad_blocks_are_refused() {
        let good = block([1000, 20, 2, 0, 5], b"quiet");
        let mut b = good.clone();
        b[0] = b'X';
        assert!(Params::parse(&b, 1000, 20).is_err(), "magic");
        assert!(Params::parse(&good, 999, 20).is_err(), "kernel room");
        assert!(Params::parse(&good, 1000, 19).is_err(), "initrd room");
        assert!(
            Params::parse(&block([0, 0, 1, 0, 0], b""), 10, 10).is_err(),
            "no kernel"
        );
        assert!(
            Params::parse(&block([1, 0, 1, 0, 2], b"\xff\xfe"), 10, 10).is_err(),
            "utf-8"
        );
        assert!(
            Params::parse(&block([1, 0, 1, 0, 9], b"short"), 10, 10).is_err(),
            "length"
        );
    }
}
