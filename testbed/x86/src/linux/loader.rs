//! What `cargo xtask boot x86_64` hands the hypervisor and where the guest's pieces go:
//! the boot parameters QEMU loads at [`PARAMS`], the guest-physical layout, and the
//! `boot_params` "zero page" of Linux's x86 boot protocol
//! (`Documentation/arch/x86/boot.rst`, `zero-page.rst`) with its e820 map.
//!
//! xtask takes the vmlinux ELF out of the bzImage (its payload decompressed on the build
//! host) and hands over its loadable segments as one flat image, with the physical address
//! it loads at, the span its segments cover in memory (the `.bss` included) and the entry.
//! QEMU puts the image where the guest finds it (no copy) and the initrd too
//! (`-device loader`, raw). The hypervisor checks everything against the guest's RAM
//! before any guest instruction runs.

/// The guest's RAM, guest-physical: `[0, RAM_SIZE)`.
pub const RAM_SIZE: usize = 0x1000_0000;
/// The host RAM behind the guest's (past the hypervisor's heap and frames).
pub const RAM_HPA: usize = 0x1000_0000;
/// Where the initrd goes (guest-physical): the kernel must end below it.
pub const INITRD_GPA: usize = 0x0c00_0000;
/// The end of the initrd's room.
pub const INITRD_END: usize = RAM_SIZE - 0x10_0000;
/// Where QEMU loads the parameter block (host physical), past the guest's RAM.
pub const PARAMS: usize = RAM_HPA + RAM_SIZE;
/// The long-mode boot tables (GDT, page tables: 28 KiB).
pub const BOOT_TABLES_GPA: u64 = 0x1_0000;
/// The zero page.
pub const ZERO_PAGE_GPA: usize = 0x2_0000;
/// The kernel command line.
pub const CMDLINE_GPA: usize = 0x2_1000;
/// The boot stack (Linux sets up its own at once; `rsp` only has to be valid).
pub const STACK_TOP: u64 = 0x8_0000;
/// The lowest address the kernel may load at (the boot structures are below).
pub const KERNEL_MIN: usize = 0x10_0000;

/// The parameter block's first 8 bytes.
pub const MAGIC: &[u8; 8] = b"AXVLNX86";
/// Its fixed part: magic and nine `u64`s.
const HEADER: usize = 8 + 9 * 8;
/// The longest command line accepted (the hypervisor appends to it).
pub const MAX_CMDLINE: usize = 2048;

/// The boot parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params<'a> {
    /// The flat image's length (what QEMU loaded at `load`).
    pub image_size: usize,
    /// The guest-physical address the image loads at.
    pub load: usize,
    /// The bytes from `load` the kernel's segments cover in memory (`.bss` included).
    pub mem_size: usize,
    /// The entry (guest-physical, 64-bit code: `startup_64`).
    pub entry: u64,
    /// The initrd's length (0: none), at [`INITRD_GPA`].
    pub initrd_size: usize,
    /// vCPUs to give the guest.
    pub cpus: usize,
    /// Flags (none defined yet).
    pub flags: u64,
    /// The kernel command line.
    pub cmdline: &'a str,
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    if let Some(s) = b.get(at..at + 8) {
        w.copy_from_slice(s);
    }
    u64::from_le_bytes(w)
}

impl<'a> Params<'a> {
    /// Reads the block (little-endian: magic, image size, load address, memory size,
    /// entry, initrd size, CPUs, flags, reserved, command-line length, command line) and
    /// checks it against the layout.
    pub fn parse(b: &'a [u8]) -> Result<Self, &'static str> {
        if b.get(..8) != Some(&MAGIC[..]) {
            return Err("no boot parameters (boot with `cargo xtask boot x86_64`)");
        }
        let field = |i: usize| usize::try_from(u64_at(b, 8 + 8 * i)).unwrap_or(usize::MAX);
        let len = field(8);
        if len > MAX_CMDLINE {
            return Err("the command line is too long");
        }
        let cmdline = b
            .get(HEADER..HEADER + len)
            .and_then(|c| core::str::from_utf8(c).ok())
            .ok_or("the command line is not UTF-8")?;
        let p = Self {
            image_size: field(0),
            load: field(1),
            mem_size: field(2),
            entry: u64_at(b, 8 + 8 * 3),
            initrd_size: field(4),
            cpus: field(5),
            flags: u64_at(b, 8 + 8 * 6),
            cmdline,
        };
        let end = p
            .load
            .checked_add(p.mem_size)
            .ok_or("the kernel wraps around")?;
        if p.image_size == 0 || p.image_size > p.mem_size {
            return Err("the kernel image is empty or larger than its memory span");
        }
        if p.load < KERNEL_MIN || end > INITRD_GPA {
            return Err("the kernel does not fit between 1 MiB and the initrd (192 MiB)");
        }
        if p.entry < p.load as u64 || p.entry >= end as u64 {
            return Err("the kernel's entry is outside its image");
        }
        if p.initrd_size > INITRD_END - INITRD_GPA {
            return Err("the initrd is larger than its room");
        }
        Ok(p)
    }
}

/// Offsets into `struct boot_params` and its `setup_header` (`hdr`, at 0x1f1).
mod zp {
    pub const EXT_RAMDISK_IMAGE: usize = 0x0c0;
    pub const EXT_RAMDISK_SIZE: usize = 0x0c4;
    pub const EXT_CMD_LINE_PTR: usize = 0x0c8;
    pub const E820_ENTRIES: usize = 0x1e8;
    pub const BOOT_FLAG: usize = 0x1fe;
    pub const HEADER: usize = 0x202;
    pub const VERSION: usize = 0x206;
    pub const TYPE_OF_LOADER: usize = 0x210;
    pub const LOADFLAGS: usize = 0x211;
    pub const RAMDISK_IMAGE: usize = 0x218;
    pub const RAMDISK_SIZE: usize = 0x21c;
    pub const CMD_LINE_PTR: usize = 0x228;
    pub const INITRD_ADDR_MAX: usize = 0x22c;
    pub const KERNEL_ALIGNMENT: usize = 0x230;
    pub const CMDLINE_SIZE: usize = 0x238;
    pub const E820_TABLE: usize = 0x2d0;
}

/// e820 types.
const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;

/// Fills `page` (4 KiB, zeroed) as the zero page: the setup header a boot loader fills,
/// the command line's and initrd's places, and the e820 map (RAM below 639 KiB and from
/// 1 MiB to the end of the guest's RAM; the EBDA and BIOS area reserved).
pub fn zero_page(page: &mut [u8; 4096], cmdline_len: usize, initrd: Option<(u64, u64)>) {
    let mut put = |at: usize, bytes: &[u8]| page[at..at + bytes.len()].copy_from_slice(bytes);
    put(zp::BOOT_FLAG, &0xaa55u16.to_le_bytes());
    put(zp::HEADER, b"HdrS");
    put(zp::VERSION, &0x020fu16.to_le_bytes());
    put(zp::TYPE_OF_LOADER, &[0xff]);
    // LOADED_HIGH.
    put(zp::LOADFLAGS, &[0x01]);
    put(zp::CMD_LINE_PTR, &(CMDLINE_GPA as u32).to_le_bytes());
    put(zp::EXT_CMD_LINE_PTR, &0u32.to_le_bytes());
    put(zp::CMDLINE_SIZE, &(cmdline_len as u32).to_le_bytes());
    put(zp::INITRD_ADDR_MAX, &0x7fff_ffffu32.to_le_bytes());
    put(zp::KERNEL_ALIGNMENT, &0x20_0000u32.to_le_bytes());
    if let Some((start, size)) = initrd {
        put(zp::RAMDISK_IMAGE, &(start as u32).to_le_bytes());
        put(zp::RAMDISK_SIZE, &(size as u32).to_le_bytes());
        put(zp::EXT_RAMDISK_IMAGE, &((start >> 32) as u32).to_le_bytes());
        put(zp::EXT_RAMDISK_SIZE, &((size >> 32) as u32).to_le_bytes());
    }
    let map: [(u64, u64, u32); 4] = [
        (0, 0x9_fc00, E820_RAM),
        (0x9_fc00, 0x400, E820_RESERVED),
        (0xf_0000, 0x1_0000, E820_RESERVED),
        (0x10_0000, RAM_SIZE as u64 - 0x10_0000, E820_RAM),
    ];
    for (i, (addr, size, kind)) in map.iter().enumerate() {
        let at = zp::E820_TABLE + 20 * i;
        put(at, &addr.to_le_bytes());
        put(at + 8, &size.to_le_bytes());
        put(at + 16, &kind.to_le_bytes());
    }
    put(zp::E820_ENTRIES, &[map.len() as u8]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    extern crate std;

    fn block(fields: [u64; 8], cmdline: &str) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        for f in fields {
            b.extend(f.to_le_bytes());
        }
        b.extend((cmdline.len() as u64).to_le_bytes());
        b.extend(cmdline.as_bytes());
        b
    }

    const GOOD: [u64; 8] = [0x100, 0x100_0000, 0x200, 0x100_0000, 0x1000, 1, 0, 0];

    #[test]
    fn a_good_block_parses_and_bad_ones_say_why() {
        let good = block(GOOD, "console=ttyS0");
        let p = Params::parse(&good).unwrap();
        assert_eq!(
            (p.load, p.entry, p.cmdline),
            (0x100_0000, 0x100_0000, "console=ttyS0")
        );
        let bad = |i: usize, v: u64| {
            let mut f = GOOD;
            f[i] = v;
            Params::parse(&block(f, "")).unwrap_err()
        };
        assert!(bad(0, 0x300).contains("larger than its memory span"));
        assert!(bad(1, 0x1000).contains("does not fit"));
        assert!(bad(2, 0x1000_0000).contains("does not fit"));
        assert!(bad(3, 0x200_0000).contains("entry"));
        assert!(bad(4, 0x1000_0000).contains("initrd"));
        assert!(Params::parse(&[0; 4096])
            .unwrap_err()
            .contains("no boot parameters"));
    }

    #[test]
    fn the_zero_page_has_the_header_the_map_and_the_initrd() {
        let mut page = [0u8; 4096];
        zero_page(&mut page, 20, Some((0x0c00_0000, 0x1234)));
        assert_eq!(&page[0x202..0x206], b"HdrS");
        assert_eq!(page[0x1e8], 4, "four e820 entries");
        let u32_at = |o: usize| u32::from_le_bytes(page[o..o + 4].try_into().unwrap());
        assert_eq!((u32_at(0x218), u32_at(0x21c)), (0x0c00_0000, 0x1234));
        assert_eq!(u32_at(0x228), CMDLINE_GPA as u32);
        // The last entry: RAM from 1 MiB to the end of the guest's RAM.
        let at = 0x2d0 + 3 * 20;
        let u64_at = |o: usize| u64::from_le_bytes(page[o..o + 8].try_into().unwrap());
        assert_eq!(
            (u64_at(at), u64_at(at + 8) + u64_at(at)),
            (0x10_0000, RAM_SIZE as u64)
        );
    }
}
