//! Files GRUB hands over as Multiboot2 modules, copied where the hypervisor reads them.
//!
//! Bochs has no `-device loader`: `cargo xtask boot x86_64 --vmx` puts the files QEMU's
//! loader devices would place (the Linux host's kernel segments, initrd and parameter block)
//! in the GRUB ISO as `module2` lines whose command line is `<name> <address> [<size>]`
//! (hex; a file whose trailing zeros the ISO leaves out gives its full size). GRUB
//! loads each module wherever it finds room and lists it in the boot information (a tag of
//! type 3: start, end, command line); before anything else uses memory, the boot CPU
//! copies each one to its address, so the hypervisor finds the files exactly where QEMU
//! would have put them.
//!
//! Everything is checked before the first byte moves: each module's command line, its
//! place in the machine's RAM (the memory-map tag), above the hypervisor's own memory
//! (`keep_below`: image, heap and frames), clear of every other module's place and of the
//! boot information itself. GRUB may have loaded a module where another goes; the copies
//! are ordered so that none overwrites a module still to be copied, and a cycle is refused.
//! Any refusal is a [`Error`] with the module's name, which the caller prints: a clear line,
//! not a crash.
//!
//! No heap: this runs before the frame allocator takes the memory GRUB loaded into.

use core::fmt;

/// What GRUB passes in `eax` with a Multiboot2 boot.
pub const MAGIC: u32 = 0x36d7_6289;
/// The most modules read.
pub const MAX_MODULES: usize = 8;

const TAG_END: u32 = 0;
const TAG_MODULE: u32 = 3;
const TAG_MMAP: u32 = 6;
/// A memory-map entry of available RAM.
const MMAP_AVAILABLE: u32 = 1;
/// The most available RAM ranges kept from the memory map.
const MAX_RANGES: usize = 16;

/// One module: where GRUB put it, where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Module<'a> {
    /// Its name (the command line's first word).
    pub name: &'a str,
    /// Where GRUB loaded it (physical).
    pub start: usize,
    /// Its length in bytes, as GRUB loaded it.
    pub len: usize,
    /// Its length in place (at least `len`): the bytes past `len` are zeros, which the
    /// ISO leaves out (a kernel image ends in megabytes of them).
    pub size: usize,
    /// Where it goes (physical).
    pub dest: usize,
}

impl Module<'_> {
    fn src(&self) -> (usize, usize) {
        (self.start, self.start + self.len)
    }

    fn place(&self) -> (usize, usize) {
        (self.dest, self.dest + self.size)
    }
}

/// Why the modules cannot be put in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// `Missing` and `Wrong` come from the checks of the `linux` feature's modules.
#[cfg_attr(not(feature = "linux"), allow(dead_code))]
pub enum Error<'a> {
    /// The boot information is cut short or malformed.
    BadInfo(&'static str),
    /// More than [`MAX_MODULES`] modules.
    TooMany,
    /// A module's command line is not `<name> <hex address>`.
    BadCommandLine(&'a str),
    /// A module's place is below `keep_below` (the hypervisor's memory).
    InHypervisor(Module<'a>, usize),
    /// A module's place is not in available RAM according to the memory map.
    NotInRam(Module<'a>),
    /// Two modules' places overlap.
    Overlap(Module<'a>, Module<'a>),
    /// A module's place overlaps the boot information (still being read).
    OverInfo(Module<'a>),
    /// Every remaining module's place covers where GRUB loaded another remaining one.
    Cycle(Module<'a>, Module<'a>),
    /// A module the caller requires is not there.
    Missing(&'static str),
    /// A module is there but not as the caller requires it.
    Wrong(Module<'a>, &'static str),
}

impl fmt::Display for Error<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = |m: &Module| m.place();
        match self {
            Error::BadInfo(why) => write!(f, "the Multiboot2 boot information: {why}"),
            Error::TooMany => write!(f, "more than {MAX_MODULES} modules"),
            Error::BadCommandLine(s) => write!(
                f,
                "module `{s}`: its command line must be `<name> <hex address>`"
            ),
            Error::InHypervisor(m, below) => {
                let (a, b) = place(m);
                write!(
                    f,
                    "module {}: its place {a:#x}..{b:#x} is in the hypervisor's memory (below {below:#x})",
                    m.name
                )
            }
            Error::NotInRam(m) => {
                let (a, b) = place(m);
                write!(
                    f,
                    "module {}: its place {a:#x}..{b:#x} is not in the machine's RAM (too little memory?)",
                    m.name
                )
            }
            Error::Overlap(m, n) => write!(
                f,
                "modules {} ({:#x}..{:#x}) and {} ({:#x}..{:#x}) overlap",
                m.name,
                m.place().0,
                m.place().1,
                n.name,
                n.place().0,
                n.place().1
            ),
            Error::OverInfo(m) => write!(
                f,
                "module {}: its place {:#x}..{:#x} covers the boot information",
                m.name,
                m.place().0,
                m.place().1
            ),
            Error::Cycle(m, n) => write!(
                f,
                "modules {} and {}: GRUB loaded each where the other goes",
                m.name, n.name
            ),
            Error::Missing(name) => write!(f, "module {name} missing"),
            Error::Wrong(m, why) => write!(
                f,
                "module {} ({} bytes at {:#x}): {why}",
                m.name, m.size, m.dest
            ),
        }
    }
}

/// The modules of one boot information, in the order they are to be copied.
#[derive(Debug, Clone, Copy)]
pub struct Modules<'a> {
    list: [Option<Module<'a>>; MAX_MODULES],
    count: usize,
}

// `get`, `expect` and `only` serve the `linux` feature's checks of its modules.
#[cfg_attr(not(feature = "linux"), allow(dead_code))]
impl<'a> Modules<'a> {
    /// The modules, in copy order.
    pub fn iter(&self) -> impl Iterator<Item = &Module<'a>> {
        self.list[..self.count].iter().flatten()
    }

    /// The module named `name`.
    pub fn get(&self, name: &str) -> Option<&Module<'a>> {
        self.iter().find(|m| m.name == name)
    }

    /// The module `name`, required at `dest` (and `len` bytes long in place, if given).
    pub fn expect(
        &self,
        name: &'static str,
        dest: usize,
        len: Option<usize>,
    ) -> Result<&Module<'a>, Error<'a>> {
        let m = self.get(name).ok_or(Error::Missing(name))?;
        if m.dest != dest {
            return Err(Error::Wrong(*m, "not at the address the hypervisor reads"));
        }
        if len.is_some_and(|l| l != m.size) {
            return Err(Error::Wrong(*m, "not the size the parameter block gives"));
        }
        Ok(m)
    }

    /// Refuses a module not named in `names`.
    pub fn only(&self, names: &[&str]) -> Result<(), Error<'a>> {
        match self.iter().find(|m| !names.contains(&m.name)) {
            Some(m) => Err(Error::Wrong(*m, "not a file this hypervisor reads")),
            None => Ok(()),
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let mut w = [0; 4];
    w.copy_from_slice(b.get(at..at.checked_add(4)?)?);
    Some(u32::from_le_bytes(w))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let mut w = [0; 8];
    w.copy_from_slice(b.get(at..at.checked_add(8)?)?);
    Some(u64::from_le_bytes(w))
}

fn overlap((a, b): (usize, usize), (c, d): (usize, usize)) -> bool {
    a < d && c < b
}

/// `<name> <hex address> [<hex size>]` (hex with or without `0x`).
fn command_line(s: &str) -> Option<(&str, usize, Option<usize>)> {
    let hex = |w: &str| usize::from_str_radix(w.strip_prefix("0x").unwrap_or(w), 16).ok();
    let mut words = s.split_ascii_whitespace();
    let (name, addr) = (words.next()?, hex(words.next()?)?);
    let size = match words.next() {
        Some(w) => Some(hex(w)?),
        None => None,
    };
    if words.next().is_some() {
        return None;
    }
    Some((name, addr, size))
}

/// Reads the boot information `info` (its bytes, found at physical address `info_at`) and
/// orders its modules for copying; `keep_below` is the end of the hypervisor's memory.
pub fn plan(info: &[u8], info_at: usize, keep_below: usize) -> Result<Modules<'_>, Error<'_>> {
    let total = u32_at(info, 0).ok_or(Error::BadInfo("shorter than its header"))? as usize;
    if total < 8 || total > info.len() {
        return Err(Error::BadInfo("its total size is out of range"));
    }
    let info = &info[..total];
    let mut found: [Option<Module>; MAX_MODULES] = [None; MAX_MODULES];
    let mut count = 0;
    let mut ram = [(0usize, 0usize); MAX_RANGES];
    let mut ranges = 0;
    let mut at = 8;
    loop {
        let (ty, size) = match (u32_at(info, at), u32_at(info, at + 4)) {
            (Some(t), Some(s)) if s >= 8 && at + s as usize <= total => (t, s as usize),
            _ => return Err(Error::BadInfo("a tag runs past its end")),
        };
        let tag = &info[at..at + size];
        match ty {
            TAG_END => break,
            TAG_MODULE => {
                let (start, end) = match (u32_at(tag, 8), u32_at(tag, 12)) {
                    (Some(s), Some(e)) if e >= s => (s as usize, e as usize),
                    _ => return Err(Error::BadInfo("a module tag's range is malformed")),
                };
                let text = tag.get(16..).unwrap_or_default();
                let text = text.split(|b| *b == 0).next().unwrap_or_default();
                let text = core::str::from_utf8(text)
                    .map_err(|_| Error::BadInfo("a module's command line is not UTF-8"))?;
                let (name, dest, size) = command_line(text).ok_or(Error::BadCommandLine(text))?;
                let slot = found.get_mut(count).ok_or(Error::TooMany)?;
                let len = end - start;
                let size = size.unwrap_or(len);
                if size < len || dest.checked_add(size).is_none() {
                    return Err(Error::BadCommandLine(text));
                }
                *slot = Some(Module {
                    name,
                    start,
                    len,
                    size,
                    dest,
                });
                count += 1;
            }
            TAG_MMAP => {
                let entry = u32_at(tag, 8).unwrap_or(0) as usize;
                if entry < 24 {
                    return Err(Error::BadInfo("memory-map entries shorter than 24 bytes"));
                }
                let mut e = 16;
                while e + entry <= size {
                    let (base, len, kind) = (
                        u64_at(tag, e).unwrap_or(0) as usize,
                        u64_at(tag, e + 8).unwrap_or(0) as usize,
                        u32_at(tag, e + 16).unwrap_or(0),
                    );
                    if kind == MMAP_AVAILABLE && ranges < MAX_RANGES {
                        ram[ranges] = (base, base.saturating_add(len));
                        ranges += 1;
                    }
                    e += entry;
                }
            }
            _ => {}
        }
        at += size.next_multiple_of(8);
    }
    let mods = found;
    let all = || mods[..count].iter().flatten();
    let info_span = (info_at, info_at + total);
    for (i, m) in all().enumerate() {
        if m.dest < keep_below {
            return Err(Error::InHypervisor(*m, keep_below));
        }
        let (a, b) = m.place();
        if ranges > 0 && !ram[..ranges].iter().any(|&(s, e)| s <= a && b <= e) {
            return Err(Error::NotInRam(*m));
        }
        if overlap(m.place(), info_span) {
            return Err(Error::OverInfo(*m));
        }
        if let Some(n) = all().skip(i + 1).find(|n| overlap(m.place(), n.place())) {
            return Err(Error::Overlap(*m, *n));
        }
    }
    // Copy order: a module goes once no other module still to be copied was loaded where it
    // goes (its own source may overlap its place: the copy is a memmove).
    let mut order: [Option<Module>; MAX_MODULES] = [None; MAX_MODULES];
    let mut left = mods;
    for slot in order.iter_mut().take(count) {
        let still = |j: usize| left[j].is_some();
        let next = (0..count).filter(|&i| still(i)).find(|&i| {
            let place = left[i].map(|m| m.place()).unwrap_or_default();
            (0..count)
                .filter(|&j| j != i && still(j))
                .all(|j| !left[j].is_some_and(|n| overlap(place, n.src())))
        });
        match next {
            Some(i) => *slot = left[i].take(),
            None => {
                let mut rest = left.iter().flatten();
                return match (rest.next(), rest.next()) {
                    (Some(m), Some(n)) => Err(Error::Cycle(*m, *n)),
                    _ => Err(Error::BadInfo("module copy order")),
                };
            }
        }
    }
    Ok(Modules { list: order, count })
}

/// Copies each module of `mods` (in their order) to its place.
///
/// # Safety
/// Every module's source and place are RAM, identity-mapped, that nothing else uses (what
/// [`plan`] checked, with the right `keep_below`, for the boot information GRUB left).
pub unsafe fn copy(mods: &Modules) {
    for m in mods.iter() {
        // SAFETY: the caller's contract; `copy` is a memmove, for a module GRUB loaded
        // across its own place.
        unsafe {
            core::ptr::copy(m.start as *const u8, m.dest as *mut u8, m.len);
            core::ptr::write_bytes((m.dest + m.len) as *mut u8, 0, m.size - m.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    /// A boot information with a memory map of `ram` and the modules `(start, end, text)`.
    fn info(ram: &[(u64, u64)], mods: &[(u32, u32, &str)]) -> Vec<u8> {
        let mut b = vec![0u8; 8];
        let tag = |b: &mut Vec<u8>, ty: u32, body: &[u8]| {
            b.extend(ty.to_le_bytes());
            b.extend((8 + body.len() as u32).to_le_bytes());
            b.extend(body);
            while b.len() % 8 != 0 {
                b.push(0);
            }
        };
        let mut mmap = Vec::new();
        mmap.extend(24u32.to_le_bytes());
        mmap.extend(0u32.to_le_bytes());
        for &(base, len) in ram {
            mmap.extend(base.to_le_bytes());
            mmap.extend(len.to_le_bytes());
            mmap.extend(1u32.to_le_bytes());
            mmap.extend(0u32.to_le_bytes());
        }
        // A reserved range, ignored.
        mmap.extend(0xf_0000u64.to_le_bytes());
        mmap.extend(0x1_0000u64.to_le_bytes());
        mmap.extend(2u64.to_le_bytes());
        tag(&mut b, TAG_MMAP, &mmap);
        for &(s, e, text) in mods {
            let mut body = Vec::new();
            body.extend(s.to_le_bytes());
            body.extend(e.to_le_bytes());
            body.extend(text.as_bytes());
            body.push(0);
            tag(&mut b, TAG_MODULE, &body);
        }
        tag(&mut b, TAG_END, &[]);
        let len = b.len() as u32;
        b[..4].copy_from_slice(&len.to_le_bytes());
        b
    }

    const RAM: [(u64, u64); 2] = [(0, 0x9_f000), (0x10_0000, 0x3ff0_0000)];
    const KEEP: usize = 0x1000_0000;
    const INFO_AT: usize = 0x1_0000;

    #[test]
    fn modules_are_read_with_their_names_and_places() {
        let b = info(
            &RAM,
            &[
                (0x20_0000, 0x20_0100, "params 0x20000000"),
                (0x30_0000, 0x40_0000, "kernel 11000000"),
            ],
        );
        let m = plan(&b, INFO_AT, KEEP).unwrap();
        assert_eq!(m.iter().count(), 2);
        let k = m.get("kernel").unwrap();
        assert_eq!(
            (k.start, k.len, k.dest),
            (0x30_0000, 0x10_0000, 0x1100_0000)
        );
        assert_eq!(m.get("params").unwrap().dest, 0x2000_0000);
        assert!(m.get("initrd").is_none());
    }

    #[test]
    fn required_modules_are_checked_by_name_place_and_size() {
        let b = info(&RAM, &[(0x20_0000, 0x20_0100, "params 0x20000000")]);
        let m = plan(&b, INFO_AT, KEEP).unwrap();
        assert!(m.expect("params", 0x2000_0000, Some(0x100)).is_ok());
        assert!(matches!(
            m.expect("params", 0x2000_0000, Some(0x200)),
            Err(Error::Wrong(..))
        ));
        assert!(matches!(
            m.expect("params", 0x2100_0000, None),
            Err(Error::Wrong(..))
        ));
        let e = m.expect("kernel", 0x1010_0000, None).unwrap_err();
        assert_eq!(std::format!("{e}"), "module kernel missing");
        assert!(m.only(&["params", "kernel"]).is_ok());
        assert!(m.only(&["kernel"]).is_err());
    }

    #[test]
    fn bad_places_and_command_lines_are_refused_with_the_module_named() {
        let one = |text: &str| info(&RAM, &[(0x20_0000, 0x20_1000, text)]);
        let b = one("kernel");
        assert!(matches!(
            plan(&b, INFO_AT, KEEP),
            Err(Error::BadCommandLine("kernel"))
        ));
        let b = one("kernel 0xzz");
        assert!(matches!(
            plan(&b, INFO_AT, KEEP),
            Err(Error::BadCommandLine(_))
        ));
        // A size shorter than the file.
        let b = one("kernel 0x10000000 0x800");
        assert!(matches!(
            plan(&b, INFO_AT, KEEP),
            Err(Error::BadCommandLine(_))
        ));
        let b = one("kernel 0x10000000 0x2000 7");
        assert!(matches!(
            plan(&b, INFO_AT, KEEP),
            Err(Error::BadCommandLine(_))
        ));
        // Zeros past the file count in its place: they reach the next module's.
        let b = info(
            &RAM,
            &[
                (0x20_0000, 0x20_1000, "kernel 0x10000000 0x3000"),
                (0x30_0000, 0x30_1000, "initrd 0x10002000"),
            ],
        );
        assert!(matches!(plan(&b, INFO_AT, KEEP), Err(Error::Overlap(..))));
        let b = one("kernel 0x800000");
        let e = plan(&b, INFO_AT, KEEP).unwrap_err();
        assert!(matches!(e, Error::InHypervisor(..)));
        assert!(std::format!("{e}").contains("module kernel"));
        // Past the end of RAM (1 GiB here): a machine with too little memory.
        let b = one("params 0x3ffff800");
        let e = plan(&b, INFO_AT, KEEP).unwrap_err();
        assert!(matches!(e, Error::NotInRam(_)), "{e}");
        assert!(std::format!("{e}").contains("not in the machine's RAM"));
        let b = info(
            &RAM,
            &[
                (0x20_0000, 0x30_0000, "kernel 0x10100000"),
                (0x30_0000, 0x30_1000, "initrd 0x10180000"),
            ],
        );
        let e = plan(&b, INFO_AT, KEEP).unwrap_err();
        assert!(matches!(e, Error::Overlap(..)));
        assert!(std::format!("{e}").contains("kernel"));
        // The boot information itself lies where a module goes.
        let b = one("params 0x10000000");
        assert!(matches!(
            plan(&b, 0x1000_0800, KEEP),
            Err(Error::OverInfo(_))
        ));
    }

    #[test]
    fn a_module_loaded_where_another_goes_is_copied_first() {
        // GRUB put the initrd where the kernel goes: the initrd moves first.
        let b = info(
            &RAM,
            &[
                (0x20_0000, 0x30_0000, "kernel 0x10100000"),
                (0x1010_0000, 0x1020_0000, "initrd 0x1c000000"),
            ],
        );
        let m = plan(&b, INFO_AT, KEEP).unwrap();
        let names: Vec<&str> = m.iter().map(|m| m.name).collect();
        assert_eq!(names, ["initrd", "kernel"]);
        // Each where the other goes: no order works.
        let b = info(
            &RAM,
            &[
                (0x1c00_0000, 0x1c10_0000, "kernel 0x10100000"),
                (0x1010_0000, 0x1020_0000, "initrd 0x1c000000"),
            ],
        );
        assert!(matches!(plan(&b, INFO_AT, KEEP), Err(Error::Cycle(..))));
    }

    #[test]
    fn copies_move_the_bytes_in_their_order() {
        let mut mem = vec![0u8; 0x4000];
        let base = mem.as_mut_ptr() as usize;
        mem[0x1000..0x1010].fill(0xaa);
        mem[0x2000..0x2010].fill(0xbb);
        let module = |name, from: usize, to: usize| Module {
            name,
            start: base + from,
            len: 0x10,
            size: 0x18,
            dest: base + to,
        };
        mem[0x3010..0x3018].fill(0xcc);
        // `b` first: `a` goes where `b` was loaded.
        let mut list = [None; MAX_MODULES];
        list[0] = Some(module("b", 0x2000, 0x3000));
        list[1] = Some(module("a", 0x1000, 0x2000));
        // SAFETY: the places and sources are inside `mem`.
        unsafe { copy(&Modules { list, count: 2 }) };
        assert_eq!(&mem[0x2000..0x2010], &[0xaa; 16]);
        assert_eq!(&mem[0x3000..0x3010], &[0xbb; 16]);
        assert_eq!(&mem[0x3010..0x3018], &[0; 8], "zeros up to the size");
    }

    #[test]
    fn truncated_information_is_refused() {
        let mut b = info(&RAM, &[(0x20_0000, 0x20_1000, "k 0x10000000")]);
        assert!(matches!(
            plan(&b[..4], INFO_AT, KEEP),
            Err(Error::BadInfo(_))
        ));
        let n = b.len();
        b.truncate(n - 8);
        assert!(matches!(plan(&b, INFO_AT, KEEP), Err(Error::BadInfo(_))));
    }
}
