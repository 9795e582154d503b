//! Bit-exact entries, read back from the frames and checked against the architecture
//! specifications (AMD APM vol. 2 nested paging, RISC-V privileged spec H extension, Arm ARM
//! stage-2 VMSAv8-64 descriptors, Intel SDM vol. 3C EPT).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axvcpu::{GuestPhysAddr, HostPhysAddr};
use axvcpu_npt::{
    Aarch64Stage2, Ept, MapFlags, NestedPageTable, PagingFormat, RiscvSv39x4, RiscvSv48x4, X86Npt,
};
use common::{live_frames, raw_entry, set_raw_entry, TestHal};

const R: MapFlags = MapFlags::READ;
const W: MapFlags = MapFlags::WRITE;
const X: MapFlags = MapFlags::EXECUTE;

/// Independent walker: where the raw entry for `gpa` at `level` is (table, index), following
/// table entries with the spec's address extraction `next`.
fn slot<F: PagingFormat>(
    npt: &NestedPageTable<TestHal, F>,
    gpa: usize,
    level: usize,
    next: fn(u64) -> usize,
) -> (HostPhysAddr, usize) {
    let mut table = npt.root_paddr();
    let mut l = F::LEVELS - 1;
    loop {
        let mask = if l == F::LEVELS - 1 {
            512 * F::ROOT_FRAMES - 1
        } else {
            511
        };
        let index = (gpa >> (12 + 9 * l)) & mask;
        if l == level {
            return (table, index);
        }
        table = HostPhysAddr::from(next(raw_entry(table, index)));
        l -= 1;
    }
}

/// The raw entry for `gpa` at `level` (see [`slot`]).
fn raw<F: PagingFormat>(
    npt: &NestedPageTable<TestHal, F>,
    gpa: usize,
    level: usize,
    next: fn(u64) -> usize,
) -> u64 {
    let (table, index) = slot(npt, gpa, level, next);
    raw_entry(table, index)
}

fn map<F: PagingFormat>(
    npt: &mut NestedPageTable<TestHal, F>,
    g: usize,
    h: usize,
    size: usize,
    f: MapFlags,
) {
    npt.map(GuestPhysAddr::from(g), HostPhysAddr::from(h), size, f)
        .unwrap();
}

#[test]
fn x86_npt_entries() {
    let next = |e: u64| (e & 0x000f_ffff_ffff_f000) as usize;
    let mut npt = NestedPageTable::<TestHal, X86Npt>::new().unwrap();
    map(&mut npt, 0x1000, 0x5000, 0x1000, R | W);
    map(&mut npt, 0x2000, 0x000f_ffff_ffff_f000, 0x1000, R | X);
    map(&mut npt, 0x20_0000, 0x1_0020_0000, 0x20_0000, R | W | X);
    map(&mut npt, 0x4000_0000, 0x80_4000_0000, 0x4000_0000, R);
    // 4 KiB RW leaf: hpa | P | RW | US | NX.
    assert_eq!(raw(&npt, 0x1000, 0, next), 0x8000_0000_0000_5007);
    // RX leaf at the top of the 52-bit physical space: P | US, no NX.
    assert_eq!(raw(&npt, 0x2000, 0, next), 0x000f_ffff_ffff_f005);
    // 2 MiB RWX leaf: P | RW | US | PS.
    assert_eq!(raw(&npt, 0x20_0000, 1, next), 0x1_0020_0087);
    // 1 GiB read-only leaf: P | US | PS | NX.
    assert_eq!(raw(&npt, 0x4000_0000, 2, next), 0x8000_0080_4000_0085);
    // Table entries: next | P | RW | US, nothing else.
    for level in 1..4 {
        let e = raw(&npt, 0x1000, level, next);
        assert_eq!(e & !0x000f_ffff_ffff_f000, 0x7, "level {level}: {e:#x}");
        assert_eq!(next(e) % 4096, 0);
    }
}

#[test]
fn intel_ept_entries() {
    let next = |e: u64| (e & 0x000f_ffff_ffff_f000) as usize;
    let mut npt = NestedPageTable::<TestHal, Ept>::new().unwrap();
    assert_eq!(live_frames(), 1);
    map(&mut npt, 0x1000, 0x5000, 0x1000, R | W);
    map(&mut npt, 0x2000, 0x000f_ffff_ffff_f000, 0x1000, R | X);
    map(&mut npt, 0x3000, 0x7000, 0x1000, X);
    map(&mut npt, 0x20_0000, 0x1_0020_0000, 0x20_0000, R | W | X);
    map(&mut npt, 0x4000_0000, 0x80_4000_0000, 0x4000_0000, R);
    // 4 KiB RW leaf: hpa | R | W | memory type WB (6 << 3); IPAT, A, D clear.
    assert_eq!(raw(&npt, 0x1000, 0, next), 0x5033);
    // RX leaf at the top of the 52-bit physical space.
    assert_eq!(raw(&npt, 0x2000, 0, next), 0x000f_ffff_ffff_f035);
    // Execute-only leaf.
    assert_eq!(raw(&npt, 0x3000, 0, next), 0x7034);
    // 2 MiB RWX leaf: bit 7.
    assert_eq!(raw(&npt, 0x20_0000, 1, next), 0x1_0020_00b7);
    // 1 GiB read-only leaf.
    assert_eq!(raw(&npt, 0x4000_0000, 2, next), 0x80_4000_00b1);
    // Table entries: next | R | W | X, reserved bits 3..8 zero.
    for level in 1..4 {
        let e = raw(&npt, 0x1000, level, next);
        assert_eq!(e & !0x000f_ffff_ffff_f000, 0x7, "level {level}: {e:#x}");
    }
    // Write without read is refused (a misconfiguration to the hardware).
    assert!(npt
        .map(
            GuestPhysAddr::from(0x8000),
            HostPhysAddr::from(0x8000),
            0x1000,
            W
        )
        .is_err());
}

#[test]
fn intel_ept_misconfigurations_decode_as_empty() {
    use axvcpu_npt::Pte;
    let leaf = 0x5000 | Ept::MEMORY_TYPE_WB;
    assert!(matches!(Ept::decode(0, leaf | 1), Pte::Leaf(..)));
    // W without R.
    assert_eq!(Ept::decode(0, leaf | 2), Pte::Empty);
    assert_eq!(Ept::decode(0, leaf | 6), Pte::Empty);
    // Reserved memory types 2, 3, 7; UC (0) is a valid type.
    for mt in [2u64, 3, 7] {
        assert_eq!(Ept::decode(0, 0x5000 | (mt << 3) | 1), Pte::Empty, "{mt}");
    }
    assert!(matches!(Ept::decode(0, 0x5001), Pte::Leaf(..)));
    // Bit 7 in a PML4E, reserved bits in a table entry.
    assert_eq!(Ept::decode(3, 0x5000 | 0x87), Pte::Empty);
    assert_eq!(Ept::decode(2, 0x5000 | 0x0f), Pte::Empty);
    assert_eq!(
        Ept::decode(2, 0x5007),
        Pte::Table(HostPhysAddr::from(0x5000))
    );
}

#[test]
fn intel_eptp() {
    let npt = NestedPageTable::<TestHal, Ept>::new().unwrap();
    let root = npt.root_paddr().as_usize() as u64;
    // Memory type WB (6), walk length 4 (3 << 3), accessed/dirty flags (bit 6).
    assert_eq!(Ept::eptp(npt.root_paddr(), false), root | 0x1e);
    assert_eq!(Ept::eptp(npt.root_paddr(), true), root | 0x5e);
}

fn riscv_entries<F: PagingFormat>() {
    let next = |e: u64| (((e >> 10) & ((1 << 44) - 1)) << 12) as usize;
    let mut npt = NestedPageTable::<TestHal, F>::new().unwrap();
    // 16 KiB root aligned to 16 KiB.
    assert_eq!(npt.root_paddr().as_usize() % 0x4000, 0);
    assert_eq!(live_frames(), 4);
    let top = F::LEVELS - 1;
    // An address using the 2 extra root-index bits: root entry 1024 (third root frame).
    let high = 1usize << (F::GPA_BITS - 1);
    map(&mut npt, 0x1000, 0x8020_0000, 0x1000, R | W);
    map(&mut npt, 0x3000, 0x8030_0000, 0x1000, X);
    map(&mut npt, 0x20_0000, 0x20_0000, 0x20_0000, R | W | X);
    map(&mut npt, high, 0x4000_0000, 0x4000_0000, R | X);
    // 4 KiB RW leaf: PPN << 10 | V | R | W | U | A | D (G = 0).
    assert_eq!(raw(&npt, 0x1000, 0, next), (0x80200 << 10) | 0xd7);
    // Execute-only leaf: V | X | U | A.
    assert_eq!(raw(&npt, 0x3000, 0, next), (0x80300 << 10) | 0x59);
    // 2 MiB RWX leaf.
    assert_eq!(raw(&npt, 0x20_0000, 1, next), (0x200 << 10) | 0xdf);
    // 1 GiB RX leaf behind root entry 1024.
    let root_index = high >> (12 + 9 * top);
    assert_eq!(root_index, 1024);
    assert_ne!(raw_entry(npt.root_paddr(), 1024), 0);
    assert_eq!(raw(&npt, high, 2, next), (0x40000 << 10) | 0x5b);
    // Table entries: PPN << 10 | V, with U = A = D = 0 as the spec requires.
    for level in 1..F::LEVELS {
        let e = raw(&npt, 0x1000, level, next);
        assert_eq!(e & 0x3ff, 0x1, "level {level}: {e:#x}");
        assert_eq!(e >> 54, 0);
    }
    assert_eq!(
        F::NAME,
        if F::LEVELS == 3 {
            "RISC-V Sv39x4"
        } else {
            "RISC-V Sv48x4"
        }
    );
}

#[test]
fn riscv_sv39x4_entries() {
    assert_eq!(RiscvSv39x4::GPA_BITS, 41);
    riscv_entries::<RiscvSv39x4>();
}

#[test]
fn riscv_sv48x4_entries() {
    assert_eq!(RiscvSv48x4::GPA_BITS, 50);
    riscv_entries::<RiscvSv48x4>();
}

#[test]
fn riscv_hgatp() {
    let npt = NestedPageTable::<TestHal, RiscvSv39x4>::new().unwrap();
    let v = RiscvSv39x4::hgatp(npt.root_paddr(), 3);
    assert_eq!(v >> 60, 8);
    assert_eq!((v >> 44) & 0x3fff, 3);
    assert_eq!(
        (v & ((1 << 44) - 1)) << 12,
        npt.root_paddr().as_usize() as u64
    );
    assert_eq!(RiscvSv48x4::hgatp(npt.root_paddr(), 3) >> 60, 9);
}

#[test]
fn aarch64_stage2_entries() {
    let next = |e: u64| (e & 0x0000_ffff_ffff_f000) as usize;
    let mut npt = NestedPageTable::<TestHal, Aarch64Stage2>::new().unwrap();
    assert_eq!(live_frames(), 1);
    map(&mut npt, 0x1000, 0x5000, 0x1000, R | W);
    map(&mut npt, 0x2000, 0xffff_ffff_f000, 0x1000, R | X);
    map(&mut npt, 0x20_0000, 0x4020_0000, 0x20_0000, R | W | X);
    map(&mut npt, 0x40_0000_0000, 0x80_0000_0000, 0x4000_0000, W);
    const XN: u64 = 1 << 54;
    // Page: valid | page | MemAttr 0b1111 | S2AP 0b11 | SH 0b11 | AF, plus XN.
    assert_eq!(raw(&npt, 0x1000, 0, next), 0x5000 | 0x7ff | XN);
    // Read-only executable page, at the top of the 48-bit output space: S2AP 0b01.
    assert_eq!(raw(&npt, 0x2000, 0, next), 0xffff_ffff_f000 | 0x77f);
    // 2 MiB block (Arm level 2): bit 1 clear.
    assert_eq!(raw(&npt, 0x20_0000, 1, next), 0x4020_0000 | 0x7fd);
    // 1 GiB write-only block (Arm level 1) in root entry 256: S2AP 0b10, XN.
    assert_ne!(raw_entry(npt.root_paddr(), 256), 0);
    assert_eq!(
        raw(&npt, 0x40_0000_0000, 2, next),
        0x80_0000_0000 | 0x7bd | XN
    );
    // Table descriptors: next | 0b11, no attributes.
    for level in 1..3 {
        let e = raw(&npt, 0x1000, level, next);
        assert_eq!(e & !0x0000_ffff_ffff_f000, 0x3, "level {level}: {e:#x}");
    }
}

#[test]
fn aarch64_registers() {
    // VTCR_EL2: T0SZ = 25, SL0 = 1, IRGN0 = ORGN0 = 1, SH0 = 3, TG0 = 0, RES1 bit 31.
    let v = Aarch64Stage2::vtcr_el2(0b0101).unwrap();
    assert_eq!(v & 0x3f, 25);
    assert_eq!((v >> 6) & 3, 1);
    assert_eq!((v >> 8) & 3, 1);
    assert_eq!((v >> 10) & 3, 1);
    assert_eq!((v >> 12) & 3, 3);
    assert_eq!((v >> 14) & 3, 0);
    assert_eq!((v >> 16) & 7, 0b101);
    assert_eq!(v >> 31, 1);
    assert_eq!(64 - (v & 0x3f), Aarch64Stage2::GPA_BITS as u64);
    // PARange 52 bits is capped at 48, the descriptors' output-address width.
    assert_eq!((Aarch64Stage2::vtcr_el2(0b0110).unwrap() >> 16) & 7, 0b101);
    assert_eq!((Aarch64Stage2::vtcr_el2(0b0010).unwrap() >> 16) & 7, 0b010);
    assert_eq!(Aarch64Stage2::vtcr_el2(0b0001), None);
    let npt = NestedPageTable::<TestHal, Aarch64Stage2>::new().unwrap();
    let t = Aarch64Stage2::vttbr_el2(npt.root_paddr(), 0x42);
    assert_eq!(t >> 48, 0x42);
    assert_eq!(t & 0xffff_ffff_ffff, npt.root_paddr().as_usize() as u64);
}

/// `translate` reports the leaf's accessed and dirty bits, at the positions the specs give
/// them: as `map` presets them (`fresh`: for an RW and an R page), then as hardware would
/// change them (`set` turns bits on, `clear` turns them off, in the R page's leaf).
fn accessed_dirty<F: PagingFormat>(
    next: fn(u64) -> usize,
    fresh: [(bool, bool); 2],
    changes: &[(u64, u64, (bool, bool))],
) {
    let gpa = GuestPhysAddr::from;
    let mut npt = NestedPageTable::<TestHal, F>::new().unwrap();
    map(&mut npt, 0x1000, 0x8020_0000, 0x1000, R | W);
    map(&mut npt, 0x2000, 0x8030_0000, 0x1000, R);
    let ad = |npt: &NestedPageTable<TestHal, F>, g: usize| {
        let t = npt.translate(gpa(g)).unwrap();
        assert_eq!(Some((t.hpa, t.flags, t.size)), npt.query(gpa(g)));
        (t.accessed, t.dirty)
    };
    assert_eq!([ad(&npt, 0x1000), ad(&npt, 0x2000)], fresh, "{}", F::NAME);
    let (table, index) = slot(&npt, 0x2000, 0, next);
    for &(set, clear, want) in changes {
        let e = raw_entry(table, index);
        set_raw_entry(table, index, (e | set) & !clear);
        assert_eq!(
            ad(&npt, 0x2000),
            want,
            "{} set {set:#x} clear {clear:#x}",
            F::NAME
        );
    }
    assert_eq!(npt.translate(gpa(0x3000)), None);
}

#[test]
fn x86_npt_accessed_dirty() {
    // A = bit 5, D = bit 6; map leaves both to the processor.
    let next = |e: u64| (e & 0x000f_ffff_ffff_f000) as usize;
    accessed_dirty::<X86Npt>(
        next,
        [(false, false); 2],
        &[(1 << 5, 0, (true, false)), (1 << 6, 0, (true, true))],
    );
}

#[test]
fn intel_ept_accessed_dirty() {
    // A = bit 8, D = bit 9; map leaves both to the processor.
    let next = |e: u64| (e & 0x000f_ffff_ffff_f000) as usize;
    accessed_dirty::<Ept>(
        next,
        [(false, false); 2],
        &[(1 << 8, 0, (true, false)), (1 << 9, 0, (true, true))],
    );
}

#[test]
fn riscv_accessed_dirty() {
    // A = bit 6, D = bit 7, preset by map (D only when writable).
    let next = |e: u64| (((e >> 10) & ((1 << 44) - 1)) << 12) as usize;
    let changes = [(0, 1 << 6, (false, false)), (1 << 7, 0, (false, true))];
    accessed_dirty::<RiscvSv39x4>(next, [(true, true), (true, false)], &changes);
    accessed_dirty::<RiscvSv48x4>(next, [(true, true), (true, false)], &changes);
}

#[test]
fn aarch64_stage2_accessed_dirty() {
    // AF = bit 10, preset; no dirty bit: S2AP[1] (bit 7, writable) stands for it.
    let next = |e: u64| (e & 0x0000_ffff_ffff_f000) as usize;
    accessed_dirty::<Aarch64Stage2>(
        next,
        [(true, true), (true, false)],
        &[(0, 1 << 10, (false, false)), (1 << 7, 0, (false, true))],
    );
}
