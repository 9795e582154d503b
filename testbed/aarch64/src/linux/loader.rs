//! What `cargo xtask boot aarch64` hands the hypervisor and where the guest's pieces go:
//! the boot parameters QEMU loads at [`PARAMS`] (read with `axvcpu_testbed::params`), the arm64 `Image` header (Linux's
//! `Documentation/arch/arm64/booting.rst`) and the guest-physical layout.
//!
//! QEMU puts the files in host RAM with `-device loader` (raw, at fixed addresses): the
//! kernel file at the start of the guest's RAM, the initrd where the guest will find it.
//! The hypervisor checks the kernel and moves it where its header says (nothing to move
//! for the usual `text_offset` 0), so a bad image is refused before any guest instruction
//! runs and nothing is copied twice.

use axvcpu_testbed::params;

/// The guest's RAM, guest-physical (where QEMU virt has its RAM).
pub const RAM_IPA: usize = 0x4000_0000;
/// The guest's RAM size.
pub const RAM_SIZE: usize = 0x1000_0000;
/// The host RAM behind the guest's.
pub const RAM_HPA: usize = 0x5000_0000;
/// Where the initrd goes in guest RAM (offset): kernels must end below it.
pub const INITRD_OFFSET: usize = 128 << 20;
/// Room kept at the top of guest RAM for the device tree.
pub const DTB_ROOM: usize = 2 << 20;

/// Where QEMU loads the kernel file (host physical): the start of the guest's RAM.
pub const KERNEL_STAGING: usize = RAM_HPA;
/// Where QEMU loads the initrd file: where the guest finds it.
pub const INITRD_STAGING: usize = RAM_HPA + INITRD_OFFSET;
/// The end of the initrd's room: the device tree follows.
pub const STAGING_END: usize = RAM_HPA + RAM_SIZE - DTB_ROOM;
/// Where QEMU loads the parameter block (host physical), past the guest's RAM.
pub const PARAMS: usize = RAM_HPA + RAM_SIZE;

/// The arm64 `Image` header's magic, `ARM\x64` at offset 0x38.
const IMAGE_MAGIC: u32 = 0x644d_5241;
/// Where a raw binary (no header) goes, as QEMU's `-kernel` does.
pub const RAW_OFFSET: usize = 0x8_0000;

/// Where the kernel goes in guest RAM and how much RAM it takes from there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Offset of the kernel's first byte from the start of guest RAM (also the entry).
    pub offset: usize,
    /// Bytes it occupies from there, its BSS included.
    pub size: usize,
}

/// Places `kernel`: an `Image` (magic at 0x38) at `text_offset` from the 2 MiB aligned
/// start of RAM, taking `image_size` (at least the file); anything else as a raw binary at
/// [`RAW_OFFSET`]. An `Image` whose header says big-endian, or that does not fit in
/// `ram_size` (with `reserve` bytes kept at the top), is refused.
pub fn place(kernel: &[u8], ram_size: usize, reserve: usize) -> Result<Placement, &'static str> {
    let magic = kernel
        .get(0x38..0x3c)
        .map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
    let p = if magic == Some(IMAGE_MAGIC) {
        let text_offset = params::u64_at(kernel, 0x08) as usize;
        let image_size = params::u64_at(kernel, 0x10) as usize;
        let flags = params::u64_at(kernel, 0x18);
        if flags & 1 != 0 {
            return Err(
                "the Image header says big-endian; this hypervisor runs little-endian guests",
            );
        }
        // image_size 0: a kernel older than 3.17, text_offset then 0x80000.
        let (offset, size) = if image_size == 0 {
            (RAW_OFFSET, kernel.len())
        } else {
            (text_offset, image_size.max(kernel.len()))
        };
        if offset % 4096 != 0 {
            return Err("the Image header's text_offset is not page aligned");
        }
        Placement { offset, size }
    } else {
        Placement {
            offset: RAW_OFFSET,
            size: kernel.len(),
        }
    };
    match p.offset.checked_add(p.size) {
        Some(end) if end <= ram_size.saturating_sub(reserve) => Ok(p),
        _ => Err("the kernel does not fit in the guest's RAM"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(text_offset: u64, image_size: u64, flags: u64) -> [u8; 64] {
        let mut h = [0u8; 64];
        h[8..16].copy_from_slice(&text_offset.to_le_bytes());
        h[16..24].copy_from_slice(&image_size.to_le_bytes());
        h[24..32].copy_from_slice(&flags.to_le_bytes());
        h[0x38..0x3c].copy_from_slice(b"ARM\x64");
        h
    }

    #[test]
    fn an_image_goes_per_its_header_a_raw_binary_at_0x80000() {
        let p = place(&image(0, 32 << 20, 0xa), 256 << 20, 2 << 20).unwrap();
        assert_eq!(
            p,
            Placement {
                offset: 0,
                size: 32 << 20
            }
        );
        let p = place(&image(0x80000, 0, 0), 256 << 20, 0).unwrap();
        assert_eq!(
            p,
            Placement {
                offset: 0x80000,
                size: 64
            }
        );
        let p = place(&[0u8; 100], 256 << 20, 0).unwrap();
        assert_eq!(
            p,
            Placement {
                offset: 0x80000,
                size: 100
            }
        );
    }

    #[test]
    fn bad_headers_and_images_that_do_not_fit_are_refused() {
        assert!(place(&image(0, 32 << 20, 1), 256 << 20, 0).is_err());
        assert!(place(&image(0x123, 32 << 20, 0), 256 << 20, 0).is_err());
        assert!(place(&image(0, 300 << 20, 0), 256 << 20, 0).is_err());
        assert!(place(&image(0, 255 << 20, 0), 256 << 20, 2 << 20).is_err());
        assert!(place(&image(u64::MAX - 4095, 1 << 20, 0), 256 << 20, 0).is_err());
    }
}
