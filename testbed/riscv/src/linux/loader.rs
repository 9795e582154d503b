//! Where `cargo xtask boot riscv64` has QEMU put the guest's files and where they go in the
//! guest, and the RISC-V `Image` header (Linux's `Documentation/arch/riscv/boot-image-header.rst`).
//!
//! QEMU loads (raw, `-device loader`) the kernel file at the guest's RAM + 2 MiB (where an
//! `Image` asks to be: its `text_offset`), the initrd where the guest finds it and the
//! parameter block ([`axvcpu_testbed::params`]) past the guest's RAM. The hypervisor
//! checks the kernel before any guest instruction runs and moves it only if its header
//! asks for another offset.

/// The guest's RAM, guest-physical (where QEMU virt has its RAM, so plain QEMU boots the
/// same device tree).
pub const RAM_GPA: usize = 0x8000_0000;
/// The guest's RAM size.
pub const RAM_SIZE: usize = 0x1000_0000;
/// The host RAM behind the guest's (QEMU `-m 1G`: host RAM is 0x8000_0000..0xc000_0000; the
/// hypervisor's image, heap and frames end below this).
pub const RAM_HPA: usize = 0x9000_0000;
/// Where QEMU loads the kernel file, as an offset into the guest's RAM.
pub const KERNEL_STAGING_OFFSET: usize = 2 << 20;
/// Where the initrd goes in guest RAM (offset): kernels must end below it.
pub const INITRD_OFFSET: usize = 128 << 20;
/// Room kept at the top of guest RAM for the device tree.
pub const DTB_ROOM: usize = 2 << 20;
/// Where QEMU loads the parameter block (host physical), past the guest's RAM.
pub const PARAMS: usize = RAM_HPA + RAM_SIZE;

/// The staging areas' sizes (what `Params::parse` checks the files against).
pub const KERNEL_ROOM: usize = INITRD_OFFSET - KERNEL_STAGING_OFFSET;
/// See [`KERNEL_ROOM`].
pub const INITRD_ROOM: usize = RAM_SIZE - DTB_ROOM - INITRD_OFFSET;

/// The `Image` header's magic at 0x38: `RSC\x05`.
const MAGIC2: u32 = 0x0543_5352;
/// The older magic at 0x30: `RISCV\0\0\0`.
const MAGIC: u64 = 0x0056_4353_4952;

/// Where the kernel goes in guest RAM and how much RAM it takes from there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Offset of the kernel's first byte from the start of guest RAM (also the entry).
    pub offset: usize,
    /// Bytes it occupies from there, its BSS included.
    pub size: usize,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0; 4];
    if let Some(s) = b.get(at..at + 4) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

/// Places `kernel`: an `Image` (either magic) at its `text_offset` taking `image_size` (at
/// least the file); a raw binary at 2 MiB. An ELF file (a `vmlinux` with symbols), an
/// `Image` that says big-endian, has no size or a misaligned offset, or a kernel that does
/// not fit below `limit` (the initrd's offset), is refused.
pub fn place(kernel: &[u8], limit: usize) -> Result<Placement, &'static str> {
    use axvcpu_testbed::params::u64_at;
    if kernel.starts_with(b"\x7fELF") {
        return Err("an ELF file, not a RISC-V Image (use the kernel's arch/riscv/boot/Image)");
    }
    let p = if u32_at(kernel, 0x38) == MAGIC2 || u64_at(kernel, 0x30) == MAGIC {
        let (text_offset, image_size, flags) = (
            u64_at(kernel, 0x08),
            u64_at(kernel, 0x10),
            u64_at(kernel, 0x18),
        );
        if flags & 1 != 0 {
            return Err(
                "the Image header says big-endian; this hypervisor runs little-endian guests",
            );
        }
        if image_size == 0 {
            return Err("the Image header has no image_size");
        }
        let offset = usize::try_from(text_offset).map_err(|_| "text_offset out of range")?;
        if offset % 4096 != 0 {
            return Err("the Image header's text_offset is not page aligned");
        }
        let size = usize::try_from(image_size).map_err(|_| "image_size out of range")?;
        Placement {
            offset,
            size: size.max(kernel.len()),
        }
    } else {
        Placement {
            offset: KERNEL_STAGING_OFFSET,
            size: kernel.len(),
        }
    };
    match p.offset.checked_add(p.size) {
        Some(end) if end <= limit => Ok(p),
        _ => Err("the kernel does not fit in the guest's RAM below the initrd"),
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
        h[0x30..0x35].copy_from_slice(b"RISCV");
        h[0x38..0x3c].copy_from_slice(b"RSC\x05");
        h
    }

    #[test]
    fn an_image_goes_per_its_header_a_raw_binary_at_2_mib() {
        let p = place(&image(0x20_0000, 30 << 20, 0), 128 << 20).unwrap();
        assert_eq!(
            p,
            Placement {
                offset: 0x20_0000,
                size: 30 << 20
            }
        );
        assert_eq!(
            place(&image(0, 1 << 20, 0), 128 << 20),
            Ok(Placement {
                offset: 0,
                size: 1 << 20
            })
        );
        let p = place(&[0x13u8; 100], 128 << 20).unwrap();
        assert_eq!(
            p,
            Placement {
                offset: 2 << 20,
                size: 100
            }
        );
    }

    #[test]
    fn bad_headers_elf_files_and_images_that_do_not_fit_are_refused() {
        assert!(place(&image(0x20_0000, 30 << 20, 1), 128 << 20).is_err());
        assert!(place(&image(0x20_0123, 30 << 20, 0), 128 << 20).is_err());
        assert!(place(&image(0x20_0000, 0, 0), 128 << 20).is_err());
        assert!(place(&image(0x20_0000, 127 << 20, 0), 128 << 20).is_err());
        assert!(place(&image(u64::MAX - 4095, 1 << 20, 0), 128 << 20).is_err());
        assert!(place(b"\x7fELF\x02\x01\x01", 128 << 20).is_err());
    }
}
