//! An x86 kernel for the x86 Linux hypervisor: the vmlinux ELF inside a bzImage (its
//! payload decompressed on the build host with `xz`), or a vmlinux ELF as given, turned
//! into what the hypervisor loads: one flat image of the loadable segments at their
//! physical addresses, the span they cover in memory (`.bss` included), and the entry.
//!
//! The bzImage layout is Linux's boot protocol (`Documentation/arch/x86/boot.rst`): the
//! setup header at 0x1f1 (`HdrS` at 0x202, version at 0x206, `setup_sects` at 0x1f1), the
//! protected-mode code from `(setup_sects + 1) * 512`, and in it the compressed payload at
//! `payload_offset` (0x248) for `payload_length` (0x24c) bytes. Anything else is refused
//! here, before QEMU starts.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// The kernel as the hypervisor loads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    /// The segments' bytes from `load` (gaps zero-filled), up to the last file byte.
    pub image: Vec<u8>,
    /// Physical load address of `image`.
    pub load: u64,
    /// Bytes from `load` the segments cover in memory.
    pub mem_size: u64,
    /// Physical entry address (64-bit `startup_64`).
    pub entry: u64,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];

/// Reads `path` (a bzImage or a vmlinux ELF) into a [`Kernel`].
pub fn load(path: &Path) -> Result<Kernel, String> {
    let file = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let elf = if file.starts_with(b"\x7fELF") {
        file
    } else {
        let payload = payload(&file).map_err(|e| format!("{}: {e}", path.display()))?;
        unxz(payload).map_err(|e| format!("{}: {e}", path.display()))?
    };
    flatten(&elf).map_err(|e| format!("{}: the vmlinux inside: {e}", path.display()))
}

/// The vmlinux ELF of `path` (a bzImage, decompressed; or the ELF itself) written to
/// `out`: what plain QEMU boots through its PVH note, to compare with.
pub fn write_vmlinux(path: &Path, out: &Path) -> Result<(), String> {
    let file = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let elf = if file.starts_with(b"\x7fELF") {
        file
    } else {
        unxz(payload(&file).map_err(|e| format!("{}: {e}", path.display()))?)?
    };
    std::fs::write(out, elf).map_err(|e| format!("writing {}: {e}", out.display()))
}

/// The compressed payload of a bzImage (xz only: what Debian ships).
pub fn payload(b: &[u8]) -> Result<&[u8], String> {
    if b.get(0x202..0x206) != Some(b"HdrS") {
        return Err("neither an ELF nor a bzImage (no `HdrS` setup header)".into());
    }
    let version = u16_at(b, 0x206).unwrap_or(0);
    if version < 0x0208 {
        return Err(format!(
            "boot protocol {version:#x}: no payload fields (2.08 and later have them)"
        ));
    }
    let sects = match b.get(0x1f1).copied().unwrap_or(0) {
        0 => 4,
        n => usize::from(n),
    };
    let pm = (sects + 1) * 512;
    let off = u32_at(b, 0x248).ok_or("truncated setup header")? as usize;
    let len = u32_at(b, 0x24c).ok_or("truncated setup header")? as usize;
    let p = b
        .get(pm + off..(pm + off).saturating_add(len))
        .ok_or("the payload lies past the end of the file")?;
    if !p.starts_with(XZ_MAGIC) {
        return Err("the payload is not xz-compressed (only xz is supported)".into());
    }
    Ok(p)
}

/// Decompresses an xz stream with the host's `xz` (trailing bytes ignored).
fn unxz(data: &[u8]) -> Result<Vec<u8>, String> {
    crate::setup::xz()?;
    let mut child = Command::new("xz")
        .args(["--decompress", "--stdout", "--single-stream"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run xz (install xz-utils): {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin for xz")?;
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().map_err(|e| format!("xz: {e}"))?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(format!(
            "xz could not decompress the payload: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

/// The loadable segments of an x86-64 ELF as one flat image.
pub fn flatten(elf: &[u8]) -> Result<Kernel, String> {
    if elf.get(..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err("not a little-endian 64-bit ELF".into());
    }
    if u16_at(elf, 0x12) != Some(62) {
        return Err("not an x86-64 ELF".into());
    }
    let bad = || String::from("truncated ELF header");
    let entry = u64_at(elf, 0x18).ok_or_else(bad)?;
    let phoff = u64_at(elf, 0x20).ok_or_else(bad)? as usize;
    let phentsize = usize::from(u16_at(elf, 0x36).ok_or_else(bad)?);
    let phnum = usize::from(u16_at(elf, 0x38).ok_or_else(bad)?);
    // (paddr, vaddr, file bytes, memsz)
    let mut segs = Vec::new();
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let field = |o: usize| u64_at(elf, ph + o).ok_or("truncated program header");
        if u32_at(elf, ph) != Some(1) {
            continue;
        }
        let (offset, vaddr, paddr) = (field(8)?, field(16)?, field(24)?);
        let (filesz, memsz) = (field(32)?, field(40)?);
        if memsz == 0 {
            continue;
        }
        if filesz > memsz {
            return Err(format!("segment {i}: file size larger than memory size"));
        }
        if paddr.checked_add(memsz).is_none() || vaddr.checked_add(memsz).is_none() {
            return Err(format!("segment {i} wraps around the address space"));
        }
        let bytes = offset
            .checked_add(filesz)
            .and_then(|end| elf.get(offset as usize..end as usize))
            .ok_or(format!("segment {i} lies past the end of the file"))?;
        segs.push((paddr, vaddr, bytes, memsz));
    }
    let load = segs
        .iter()
        .map(|s| s.0)
        .min()
        .ok_or("no loadable segment")?;
    let file_end = segs
        .iter()
        .map(|s| s.0 + s.2.len() as u64)
        .max()
        .unwrap_or(load);
    let mem_end = segs.iter().map(|s| s.0 + s.3).max().unwrap_or(load);
    if mem_end - load > 1 << 30 {
        return Err("the segments span more than 1 GiB".into());
    }
    let mut image = vec![0u8; (file_end - load) as usize];
    for (paddr, _, bytes, _) in &segs {
        let at = (paddr - load) as usize;
        image[at..at + bytes.len()].copy_from_slice(bytes);
    }
    // The entry may be given as a virtual address: find its segment.
    let entry = segs
        .iter()
        .find_map(|&(paddr, vaddr, _, memsz)| {
            if (paddr..paddr + memsz).contains(&entry) {
                Some(entry)
            } else if (vaddr..vaddr + memsz).contains(&entry) {
                Some(entry - vaddr + paddr)
            } else {
                None
            }
        })
        .ok_or(format!("the entry {entry:#x} is in no loadable segment"))?;
    Ok(Kernel {
        image,
        load,
        mem_size: mem_end - load,
        entry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF: two PT_LOADs, the second with `.bss`, entry virtual.
    fn elf() -> Vec<u8> {
        let mut b = vec![0u8; 0x200];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x12] = 62;
        b[0x18..0x20].copy_from_slice(&0xffff_ffff_8100_0010u64.to_le_bytes());
        b[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        b[0x36] = 56;
        b[0x38] = 2;
        let mut ph = |i: usize, off: u64, vaddr: u64, paddr: u64, filesz: u64, memsz: u64| {
            let p = 0x40 + i * 56;
            b[p] = 1;
            for (o, v) in [
                (8, off),
                (16, vaddr),
                (24, paddr),
                (32, filesz),
                (40, memsz),
            ] {
                b[p + o..p + o + 8].copy_from_slice(&v.to_le_bytes());
            }
        };
        ph(0, 0x100, 0xffff_ffff_8100_0000, 0x100_0000, 0x20, 0x20);
        ph(1, 0x120, 0xffff_ffff_8100_1000, 0x100_1000, 0x10, 0x1000);
        b[0x100] = 0xaa;
        b[0x120] = 0xbb;
        b
    }

    #[test]
    fn segments_land_at_their_physical_addresses_and_the_entry_is_translated() {
        let k = flatten(&elf()).unwrap();
        assert_eq!(
            (k.load, k.entry, k.mem_size),
            (0x100_0000, 0x100_0010, 0x2000)
        );
        assert_eq!(k.image.len(), 0x1010);
        assert_eq!(
            (k.image[0], k.image[0x1000], k.image[0x20]),
            (0xaa, 0xbb, 0)
        );
    }

    #[test]
    fn bad_images_are_refused_with_a_reason() {
        assert!(flatten(b"\x7fELF").is_err());
        let mut e = elf();
        e[0x12] = 183;
        assert!(flatten(&e).unwrap_err().contains("x86-64"));
        assert!(payload(&[0u8; 0x300]).unwrap_err().contains("HdrS"));
        let mut bz = vec![0u8; 0x1000];
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        bz[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        bz[0x1f1] = 1;
        bz[0x248..0x24c].copy_from_slice(&0x10u32.to_le_bytes());
        bz[0x24c..0x250].copy_from_slice(&0x10u32.to_le_bytes());
        assert!(payload(&bz).unwrap_err().contains("xz"));
        bz[0x410..0x416].copy_from_slice(XZ_MAGIC);
        assert_eq!(payload(&bz).unwrap().len(), 0x10);
    }
}
