//! Behaviour every format shares: round trips, large leaves, merging, misuse, out-of-memory
//! atomicity, views, and freeing every frame.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axvcpu::{AxErrorKind, GuestPhysAddr, HostPhysAddr, VCpuResult};
use axvcpu_npt::{
    Aarch64Stage2, Ept, MapFlags, Mapping, NestedPageTable, NptView, PagingFormat, RiscvSv39x4,
    RiscvSv48x4, X86Npt,
};
use common::{live_frames, set_budget, MisalignedHal, NoContigHal, TestHal};

const K4: usize = 0x1000;
const M2: usize = 0x20_0000;
const G1: usize = 0x4000_0000;

const R: MapFlags = MapFlags::READ;
const RW: MapFlags = MapFlags::READ.union(MapFlags::WRITE);
const RWX: MapFlags = MapFlags::all();

type Npt<F> = NestedPageTable<TestHal, F>;

fn gpa(a: usize) -> GuestPhysAddr {
    GuestPhysAddr::from(a)
}

fn hpa(a: usize) -> HostPhysAddr {
    HostPhysAddr::from(a)
}

fn all<F: PagingFormat>(npt: &Npt<F>) -> Vec<Mapping> {
    npt.mappings().collect()
}

fn m(g: usize, h: usize, size: usize, flags: MapFlags) -> Mapping {
    Mapping {
        gpa: gpa(g),
        hpa: hpa(h),
        size,
        flags,
    }
}

#[track_caller]
fn kind(r: VCpuResult, kind: AxErrorKind) {
    match r {
        Err(e) => assert_eq!(e.kind(), kind, "{e}"),
        Ok(()) => panic!("expected {kind:?}, got Ok"),
    }
}

/// Runs `f` and checks that every frame it allocated is freed by the time it returns.
fn no_leak(f: impl FnOnce()) {
    let before = live_frames();
    f();
    assert_eq!(live_frames(), before, "frames leaked");
}

fn round_trip<F: PagingFormat>() {
    no_leak(|| {
        let mut npt = Npt::<F>::new().unwrap();
        assert_eq!(live_frames(), F::ROOT_FRAMES);
        assert_eq!(npt.root_paddr().as_usize() % (F::ROOT_FRAMES * K4), 0);
        let base = 0x1000_0000;
        npt.map(gpa(base), hpa(0x8000_0000), 3 * K4, RW).unwrap();
        for i in 0..3 {
            let q = npt.query(gpa(base + i * K4 + 0x123));
            assert_eq!(q, Some((hpa(0x8000_0000 + i * K4 + 0x123), RW, K4)));
        }
        assert_eq!(npt.query(gpa(base - K4)), None);
        assert_eq!(npt.query(gpa(base + 3 * K4)), None);
        assert_eq!(all(&npt), [m(base, 0x8000_0000, 3 * K4, RW)]);

        npt.protect(gpa(base + K4), K4, R).unwrap();
        assert_eq!(
            npt.query(gpa(base + K4)),
            Some((hpa(0x8000_0000 + K4), R, K4))
        );
        assert_eq!(
            all(&npt),
            [
                m(base, 0x8000_0000, K4, RW),
                m(base + K4, 0x8000_0000 + K4, K4, R),
                m(base + 2 * K4, 0x8000_0000 + 2 * K4, K4, RW),
            ]
        );
        npt.protect(gpa(base), 3 * K4, RWX).unwrap();
        assert_eq!(all(&npt), [m(base, 0x8000_0000, 3 * K4, RWX)]);

        npt.unmap(gpa(base + K4), K4).unwrap();
        assert_eq!(npt.query(gpa(base + K4)), None);
        assert_eq!(
            all(&npt),
            [
                m(base, 0x8000_0000, K4, RWX),
                m(base + 2 * K4, 0x8000_0000 + 2 * K4, K4, RWX),
            ]
        );
        // Remapping the hole elsewhere: no merge, the host addresses are not contiguous.
        npt.map(gpa(base + K4), hpa(0x9000_0000), K4, RWX).unwrap();
        assert_eq!(all(&npt).len(), 3);
        npt.unmap(gpa(base), 3 * K4).unwrap();
        assert_eq!(all(&npt), []);
        // Emptied tables are freed.
        assert_eq!(live_frames(), F::ROOT_FRAMES);
    });
}

fn large_leaves<F: PagingFormat>() {
    no_leak(|| {
        let mut npt = Npt::<F>::new().unwrap();
        // 1 GiB + 2 MiB + 4 KiB at GPA 1 GiB, host 2 GiB: one leaf of each size.
        let size = G1 + M2 + K4;
        npt.map(gpa(G1), hpa(2 * G1), size, RW).unwrap();
        assert_eq!(
            npt.query(gpa(G1 + 0x1234_5678)),
            Some((hpa(2 * G1 + 0x1234_5678), RW, G1))
        );
        assert_eq!(
            npt.query(gpa(2 * G1 + 0x1_2345)),
            Some((hpa(3 * G1 + 0x1_2345), RW, M2))
        );
        assert_eq!(
            npt.query(gpa(2 * G1 + M2)),
            Some((hpa(3 * G1 + M2), RW, K4))
        );
        assert_eq!(npt.query(gpa(2 * G1 + M2 + K4)), None);
        // One table per level below the root: nothing more.
        assert_eq!(live_frames(), F::ROOT_FRAMES + F::LEVELS - 1);
        // The three leaves are contiguous: one mapping.
        assert_eq!(all(&npt), [m(G1, 2 * G1, size, RW)]);

        // Unmapping one page in the middle of the 1 GiB leaf splits it twice.
        let hole = G1 + 3 * M2 + 5 * K4;
        npt.unmap(gpa(hole), K4).unwrap();
        assert_eq!(npt.query(gpa(hole)), None);
        assert_eq!(
            npt.query(gpa(hole - K4)),
            Some((hpa(G1 + hole - K4), RW, K4))
        );
        assert_eq!(
            npt.query(gpa(hole + K4)),
            Some((hpa(G1 + hole + K4), RW, K4))
        );
        assert_eq!(npt.query(gpa(G1)), Some((hpa(2 * G1), RW, M2)));
        assert_eq!(
            npt.query(gpa(G1 + 4 * M2)),
            Some((hpa(2 * G1 + 4 * M2), RW, M2))
        );
        assert_eq!(
            all(&npt),
            [
                m(G1, 2 * G1, hole - G1, RW),
                m(hole + K4, G1 + hole + K4, 2 * G1 + M2 + K4 - hole - K4, RW),
            ]
        );

        // Protecting a 2 MiB-aligned range inside the split region keeps the 2 MiB leaf.
        npt.protect(gpa(G1 + 8 * M2), M2, R).unwrap();
        assert_eq!(
            npt.query(gpa(G1 + 8 * M2)),
            Some((hpa(2 * G1 + 8 * M2), R, M2))
        );
        assert_eq!(all(&npt).len(), 4);

        // Protecting across a 2 MiB leaf's middle splits only that one.
        npt.protect(gpa(G1 + 10 * M2 + K4), M2, R).unwrap();
        assert_eq!(
            npt.query(gpa(G1 + 10 * M2)),
            Some((hpa(2 * G1 + 10 * M2), RW, K4))
        );
        assert_eq!(
            npt.query(gpa(G1 + 10 * M2 + K4)),
            Some((hpa(2 * G1 + 10 * M2 + K4), R, K4))
        );
        assert_eq!(
            npt.query(gpa(G1 + 11 * M2)),
            Some((hpa(2 * G1 + 11 * M2), R, K4))
        );
        assert_eq!(
            npt.query(gpa(G1 + 11 * M2 + K4)),
            Some((hpa(2 * G1 + 11 * M2 + K4), RW, K4))
        );

        npt.unmap(gpa(G1), hole - G1).unwrap();
        npt.unmap(gpa(hole + K4), 2 * G1 + M2 + K4 - hole - K4)
            .unwrap();
        assert_eq!(all(&npt), []);
        assert_eq!(live_frames(), F::ROOT_FRAMES);

        // Host address not 2 MiB aligned: 4 KiB pages only.
        npt.map(gpa(M2), hpa(0x4000_1000), M2, R).unwrap();
        assert_eq!(npt.query(gpa(M2)), Some((hpa(0x4000_1000), R, K4)));
        assert_eq!(all(&npt), [m(M2, 0x4000_1000, M2, R)]);
        // Guest range not covering a whole 2 MiB: 4 KiB pages.
        npt.map(gpa(4 * M2 + K4), hpa(0x4000_0000), M2, R).unwrap();
        assert_eq!(npt.query(gpa(4 * M2 + K4)).unwrap().2, K4);
    });
}

fn address_space_edges<F: PagingFormat>() {
    no_leak(|| {
        let mut npt = Npt::<F>::new().unwrap();
        let limit = 1usize << F::GPA_BITS;
        let pa_limit = 1usize << F::PA_BITS;
        npt.map(gpa(limit - K4), hpa(pa_limit - K4), K4, R).unwrap();
        assert_eq!(npt.query(gpa(limit - 1)), Some((hpa(pa_limit - 1), R, K4)));
        assert_eq!(npt.query(gpa(limit)), None);
        assert_eq!(npt.query(gpa(usize::MAX)), None);
        kind(
            npt.map(gpa(limit), hpa(0), K4, R),
            AxErrorKind::InvalidInput,
        );
        kind(
            npt.map(gpa(limit - K4), hpa(0), 2 * K4, R),
            AxErrorKind::InvalidInput,
        );
        kind(
            npt.map(gpa(0), hpa(pa_limit), K4, R),
            AxErrorKind::InvalidInput,
        );
        kind(
            npt.map(gpa(0), hpa(pa_limit - K4), 2 * K4, R),
            AxErrorKind::InvalidInput,
        );
        // The last root entry: the widened RISC-V root index reaches it.
        let top_entry = limit - (1 << (12 + 9 * (F::LEVELS - 1)));
        npt.map(gpa(top_entry), hpa(0x1000_0000), K4, R).unwrap();
        npt.map(gpa(0), hpa(0x2000_0000), K4, R).unwrap();
        assert_eq!(
            all(&npt),
            [
                m(0, 0x2000_0000, K4, R),
                m(top_entry, 0x1000_0000, K4, R),
                m(limit - K4, pa_limit - K4, K4, R),
            ]
        );
        npt.unmap(gpa(limit - K4), K4).unwrap();
        kind(npt.unmap(gpa(limit - K4), K4), AxErrorKind::NotFound);
    });
}

fn misuse<F: PagingFormat>() {
    no_leak(|| {
        let mut npt = Npt::<F>::new().unwrap();
        npt.map(gpa(0x10_0000), hpa(0x20_0000), 4 * K4, RW).unwrap();
        let before = all(&npt);
        let frames = live_frames();
        use AxErrorKind::*;

        // Bad arguments.
        kind(npt.map(gpa(0), hpa(0), 0, R), InvalidInput);
        kind(npt.map(gpa(0x800), hpa(0), K4, R), InvalidInput);
        kind(npt.map(gpa(0), hpa(0x800), K4, R), InvalidInput);
        kind(npt.map(gpa(0), hpa(0), 0x1800, R), InvalidInput);
        kind(
            npt.map(gpa(usize::MAX & !0xfff), hpa(0), K4, R),
            InvalidInput,
        );
        kind(
            npt.map(gpa(K4), hpa(0), usize::MAX & !0xfff, R),
            InvalidInput,
        );
        kind(
            npt.map(gpa(0), hpa(usize::MAX & !0xfff), 2 * K4, R),
            InvalidInput,
        );
        kind(npt.map(gpa(0), hpa(0), K4, MapFlags::empty()), InvalidInput);
        kind(
            npt.map(gpa(0), hpa(0), K4, MapFlags::from_bits_retain(0x81)),
            InvalidInput,
        );
        kind(npt.unmap(gpa(0x10_0000), 0), InvalidInput);
        kind(npt.unmap(gpa(0x10_0800), K4), InvalidInput);
        kind(npt.unmap(gpa(0x10_0000), 0x800), InvalidInput);
        kind(npt.unmap(gpa(usize::MAX & !0xfff), K4), InvalidInput);
        kind(npt.protect(gpa(0x10_0000), 0, R), InvalidInput);
        kind(
            npt.protect(gpa(0x10_0000), K4, MapFlags::empty()),
            InvalidInput,
        );
        kind(
            npt.protect(gpa(0x10_0000), K4, MapFlags::from_bits_retain(8 | 1)),
            InvalidInput,
        );

        // Overlap, reporting the first mapped address.
        let e = npt.map(gpa(0xf_e000), hpa(0), 4 * K4, R).unwrap_err();
        assert_eq!((e.kind(), e.value()), (AlreadyExists, Some(0x10_0000)));
        kind(npt.map(gpa(0x10_3000), hpa(0), K4, R), AlreadyExists);
        // A 1 GiB map over a 4 KiB mapping.
        kind(npt.map(gpa(0), hpa(0), G1, R), AlreadyExists);

        // Not (entirely) mapped, reporting the first unmapped address.
        let e = npt.unmap(gpa(0x10_2000), 4 * K4).unwrap_err();
        assert_eq!((e.kind(), e.value()), (NotFound, Some(0x10_4000)));
        kind(npt.unmap(gpa(0), K4), NotFound);
        kind(npt.protect(gpa(0xf_f000), 2 * K4, R), NotFound);
        kind(npt.protect(gpa(0x20_0000), K4, R), NotFound);

        // Flags the format cannot express: refused, not widened.
        for bits in 0..8u8 {
            let flags = MapFlags::from_bits_retain(bits);
            let expressible = expressible::<F>(flags);
            assert_eq!(
                F::check_flags(flags).is_ok(),
                expressible,
                "{} {flags:?}",
                F::NAME
            );
            if !expressible {
                let e = npt.map(gpa(0x40_0000), hpa(0), K4, flags).unwrap_err();
                assert!(matches!(e.kind(), InvalidInput | Unsupported), "{e}");
                assert!(npt.protect(gpa(0x10_0000), K4, flags).is_err());
            }
        }

        // Nothing changed, nothing allocated.
        assert_eq!(all(&npt), before);
        assert_eq!(live_frames(), frames);
    });
}

/// What the spec says each format can express (independent of the crate's code).
fn expressible<F: PagingFormat>(flags: MapFlags) -> bool {
    if flags.is_empty() {
        return false;
    }
    match F::NAME {
        n if n.starts_with("x86") => flags.contains(MapFlags::READ),
        n if n.starts_with("RISC-V") || n == "Intel EPT" => {
            !flags.contains(MapFlags::WRITE) || flags.contains(MapFlags::READ)
        }
        _ => true,
    }
}

fn out_of_memory_is_atomic<F: PagingFormat>() {
    no_leak(|| {
        set_budget(Some(0));
        kind(Npt::<F>::new().map(drop), AxErrorKind::NoMemory);
        set_budget(None);

        let mut npt = Npt::<F>::new().unwrap();
        npt.map(gpa(G1), hpa(G1), G1, RW).unwrap();
        let before = all(&npt);
        let frames = live_frames();
        // A fresh mapping at 5 GiB needs two new tables in every format: fail at each step.
        for budget in 0..2 {
            set_budget(Some(budget));
            let e = npt
                .map(gpa(5 * G1 + M2 + K4), hpa(0), 3 * K4, R)
                .unwrap_err();
            set_budget(None);
            assert_eq!(e.kind(), AxErrorKind::NoMemory, "{e}");
            assert_eq!(all(&npt), before);
            assert_eq!(
                live_frames(),
                frames,
                "tables of a failed map must be freed"
            );
        }
        // Unmapping a page inside the 1 GiB leaf needs two frames for the splits.
        for budget in 0..2 {
            set_budget(Some(budget));
            kind(npt.unmap(gpa(G1 + M2 + K4), K4), AxErrorKind::NoMemory);
            kind(npt.protect(gpa(G1 + M2 + K4), K4, R), AxErrorKind::NoMemory);
            set_budget(None);
            assert_eq!(all(&npt), before);
            // Translation unchanged (a split that succeeded may leave smaller leaves).
            let (h, f, _) = npt.query(gpa(G1 + M2 + K4)).unwrap();
            assert_eq!((h, f), (hpa(G1 + M2 + K4), RW));
        }
        set_budget(Some(2));
        npt.unmap(gpa(G1 + M2 + K4), K4).unwrap();
        set_budget(None);
        assert_eq!(all(&npt).len(), 2);
    });
}

fn views<F: PagingFormat>() {
    no_leak(|| {
        let mut npt = Npt::<F>::new().unwrap();
        npt.map(gpa(0), hpa(G1), 2 * M2 + 3 * K4, RWX).unwrap();
        npt.map(gpa(G1), hpa(0x10_0000), K4, R).unwrap();
        npt.map(gpa(7 * G1), hpa(3 * G1), G1, RW).unwrap();
        // SAFETY: `npt` outlives `view` and does not change while it is used.
        let view: NptView<TestHal, F> = unsafe { NptView::from_root(npt.root_paddr()) }.unwrap();
        assert_eq!(view.root_paddr(), npt.root_paddr());
        assert_eq!(view.mappings().collect::<Vec<_>>(), all(&npt));
        for g in [
            0,
            M2 + 5 * K4,
            2 * M2 + 2 * K4,
            2 * M2 + 3 * K4,
            G1,
            7 * G1 + 12345,
            8 * G1,
        ] {
            assert_eq!(view.query(gpa(g)), npt.query(gpa(g)));
        }
        // The same through NestedPageTable::from_root.
        // SAFETY: as above.
        let v2 = unsafe { Npt::<F>::from_root(npt.root_paddr()) }.unwrap();
        assert_eq!(v2.mappings().count(), 3);
        assert!(format!("{v2:?}").contains(F::NAME));
        assert!(format!("{npt:?}").contains(F::NAME));
        assert!(format!("{:?}", v2.mappings()).contains("Mappings"));

        // SAFETY: these are refused before anything is read.
        unsafe {
            kind(
                NptView::<TestHal, F>::from_root(hpa(0)).map(drop),
                AxErrorKind::InvalidInput,
            );
            kind(
                NptView::<TestHal, F>::from_root(hpa(npt.root_paddr().as_usize() + 0x800))
                    .map(drop),
                AxErrorKind::InvalidInput,
            );
            kind(
                NptView::<TestHal, F>::from_root(hpa(usize::MAX & !0x3fff)).map(drop),
                AxErrorKind::InvalidInput,
            );
        }
    });
}

fn many_tables_are_freed<F: PagingFormat>() {
    no_leak(|| {
        let mut npt = Npt::<F>::new().unwrap();
        let limit = 1usize << F::GPA_BITS;
        // Scatter pages across the whole guest space so every level gets many tables.
        let n = if cfg!(miri) { 12 } else { 48 };
        for i in 0..n {
            let g = (limit / n * i + i * (M2 + K4)) & !(K4 - 1);
            npt.map(gpa(g), hpa(i * K4 * 2), K4, R).unwrap();
        }
        assert_eq!(npt.mappings().count(), n);
        assert!(live_frames() > n);
        drop(npt);
    });
}

fn hal_misbehaviour<F: PagingFormat>() {
    no_leak(|| {
        if F::ROOT_FRAMES > 1 {
            kind(
                NestedPageTable::<NoContigHal, F>::new().map(drop),
                AxErrorKind::NoMemory,
            );
            kind(
                NestedPageTable::<MisalignedHal, F>::new().map(drop),
                AxErrorKind::BadAddress,
            );
        } else {
            assert!(NestedPageTable::<NoContigHal, F>::new().is_ok());
            assert!(NestedPageTable::<MisalignedHal, F>::new().is_ok());
        }
    });
}

macro_rules! per_format {
    ($($module:ident => $format:ty),* $(,)?) => {$(
        mod $module {
            use super::*;
            #[test]
            fn round_trip() { super::round_trip::<$format>() }
            #[test]
            fn large_leaves() { super::large_leaves::<$format>() }
            #[test]
            fn address_space_edges() { super::address_space_edges::<$format>() }
            #[test]
            fn misuse() { super::misuse::<$format>() }
            #[test]
            fn out_of_memory_is_atomic() { super::out_of_memory_is_atomic::<$format>() }
            #[test]
            fn views() { super::views::<$format>() }
            #[test]
            fn many_tables_are_freed() { super::many_tables_are_freed::<$format>() }
            #[test]
            fn hal_misbehaviour() { super::hal_misbehaviour::<$format>() }
        }
    )*};
}

per_format! {
    x86_npt => X86Npt,
    intel_ept => Ept,
    riscv_sv39x4 => RiscvSv39x4,
    riscv_sv48x4 => RiscvSv48x4,
    aarch64_stage2 => Aarch64Stage2,
}

/// Guest memory through a view: a copy crossing two 4 KiB leaves backed by host frames that
/// are not adjacent lands in both; a write touching a read-only or unmapped page writes
/// nothing and names the address; a read of unmapped memory says so.
fn guest_memory_through_a_view<F: PagingFormat>() {
    use axvcpu::AxVCpuHal;
    let ram: Vec<HostPhysAddr> = (0..4).map(|_| TestHal::alloc_frame().unwrap()).collect();
    {
        let mut npt = Npt::<F>::new().unwrap();
        // Guest pages 0x1000, 0x2000 → frames 2 and 0 (not adjacent); 0x3000 read-only.
        npt.map(gpa(0x1000), ram[2], K4, RW).unwrap();
        npt.map(gpa(0x2000), ram[0], K4, RW).unwrap();
        npt.map(gpa(0x3000), ram[3], K4, R).unwrap();
        // SAFETY: the table lives until the end of this block; the RAM frames are ours.
        let view = unsafe { NptView::<TestHal, F>::from_root(npt.root_paddr()) }.unwrap();
        let bytes: Vec<u8> = (0..16).collect();
        // SAFETY: every frame the table maps is one of `ram`, allocated by this test.
        unsafe { view.write_guest(gpa(0x1ff8), &bytes) }.unwrap();
        let host = |f: usize, off: usize| {
            // SAFETY: inside a frame of `ram`, host-physical = host-virtual in TestHal.
            unsafe { *(ram[f].as_usize() as *const u8).add(off) }
        };
        assert_eq!((host(2, 0xff8), host(2, 0xfff)), (0, 7));
        assert_eq!((host(0, 0), host(0, 7)), (8, 15));
        let mut back = [0u8; 16];
        // SAFETY: as above.
        assert!(unsafe { view.read_guest(gpa(0x1ff8), &mut back) });
        assert_eq!(back.as_slice(), bytes.as_slice());
        // Reaching into the read-only page: nothing written, the first bad address named.
        // SAFETY: as above.
        let e = unsafe { view.write_guest(gpa(0x2ffc), &[0xaa; 8]) }.unwrap_err();
        assert_eq!(
            (e.kind(), e.value()),
            (AxErrorKind::InvalidInput, Some(0x3000))
        );
        assert_eq!(host(0, 0xffc), 0, "a refused write changed guest memory");
        // Read-only pages are readable by the hypervisor; unmapped ones are not.
        // SAFETY: as above.
        assert!(unsafe { view.read_guest(gpa(0x3000), &mut back[..4]) });
        // SAFETY: as above.
        assert!(!unsafe { view.read_guest(gpa(0x3ffe), &mut back[..4]) });
        // SAFETY: as above.
        assert!(unsafe { view.write_guest(gpa(0x9000), &[1]) }.is_err());
    }
    for f in ram {
        TestHal::dealloc_frame(f);
    }
    assert_eq!(live_frames(), 0);
}

#[test]
fn guest_memory_through_a_view_every_format() {
    guest_memory_through_a_view::<X86Npt>();
    guest_memory_through_a_view::<Ept>();
    guest_memory_through_a_view::<RiscvSv39x4>();
    guest_memory_through_a_view::<RiscvSv48x4>();
    guest_memory_through_a_view::<Aarch64Stage2>();
}
