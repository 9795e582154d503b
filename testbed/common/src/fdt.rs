//! Device-tree pieces every OS-guest hypervisor writes the same way, whatever the
//! architecture (feature `fdt`, over `vm-fdt`): the `chosen` node (command line, console,
//! initrd), the `memory` node, and the tree as hex for `cargo xtask bench` (plain QEMU
//! boots the same tree).

use alloc::string::String;

use vm_fdt::{Error, FdtWriter};

/// `chosen`: `bootargs`, `stdout-path` and, with an initrd, its guest-physical start and
/// end.
pub fn chosen(
    f: &mut FdtWriter,
    cmdline: &str,
    stdout_path: &str,
    initrd: Option<(u64, u64)>,
) -> Result<(), Error> {
    let chosen = f.begin_node("chosen")?;
    f.property_string("bootargs", cmdline)?;
    f.property_string("stdout-path", stdout_path)?;
    if let Some((start, end)) = initrd {
        f.property_u64("linux,initrd-start", start)?;
        f.property_u64("linux,initrd-end", end)?;
    }
    f.end_node(chosen)
}

/// `memory@<start>`: guest RAM (`#address-cells` = `#size-cells` = 2).
pub fn memory(f: &mut FdtWriter, start: u64, size: u64) -> Result<(), Error> {
    let memory = f.begin_node(&alloc::format!("memory@{start:x}"))?;
    f.property_string("device_type", "memory")?;
    f.property_array_u64("reg", &[start, size])?;
    f.end_node(memory)
}

/// The tree's bytes as hex digits.
pub fn hex(dtb: &[u8]) -> String {
    let mut s = String::with_capacity(dtb.len() * 2);
    for b in dtb {
        s += &alloc::format!("{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_nodes_are_written() {
        let mut f = FdtWriter::new().unwrap();
        let root = f.begin_node("").unwrap();
        chosen(&mut f, "quiet", "/uart", Some((0x1000, 0x2000))).unwrap();
        memory(&mut f, 0x8000_0000, 0x1000_0000).unwrap();
        f.end_node(root).unwrap();
        let dtb = f.finish().unwrap();
        let has = |needle: &[u8]| dtb.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"quiet\0") && has(b"/uart\0") && has(b"memory@80000000\0"));
        assert!(has(b"linux,initrd-start\0") && has(b"bootargs\0"));
        assert_eq!(hex(&[0xd0, 0x0d]), "d00d");
    }
}
