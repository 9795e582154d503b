//! The G-stage format picked at run time: `GStageMode` agrees with the typed formats, and a
//! `GStageTable` / `GStageView` of either mode behaves exactly as the `NestedPageTable` /
//! `NptView` of that format, under random operations.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axvcpu::{GuestPhysAddr, HostPhysAddr, VCpuResult};
use axvcpu_npt::{
    GStageMode, GStageTable, GStageView, MapFlags, NestedPageTable, PagingFormat, RiscvSv39x4,
    RiscvSv48x4,
};
use common::{live_frames, TestHal};
use proptest::prelude::*;

const K4: usize = 0x1000;
/// Pages the operations touch: 4 MiB, crossing a 2 MiB boundary.
const WINDOW: usize = 1024;

#[test]
fn modes_agree_with_the_typed_formats() {
    let root = HostPhysAddr::from(0x8020_4000);
    assert_eq!(GStageMode::Sv39x4.hgatp_mode(), 8);
    assert_eq!(GStageMode::Sv48x4.hgatp_mode(), 9);
    assert_eq!(
        GStageMode::Sv39x4.hgatp(root, 5),
        RiscvSv39x4::hgatp(root, 5)
    );
    assert_eq!(
        GStageMode::Sv48x4.hgatp(root, 5),
        RiscvSv48x4::hgatp(root, 5)
    );
    assert_eq!(
        (GStageMode::Sv39x4.levels(), GStageMode::Sv39x4.gpa_bits()),
        (3, 41)
    );
    assert_eq!(
        (GStageMode::Sv48x4.levels(), GStageMode::Sv48x4.gpa_bits()),
        (4, 50)
    );
    for mode in GStageMode::ALL {
        assert_eq!(GStageMode::from_hgatp_mode(mode.hgatp_mode()), Some(mode));
    }
    // Bare, the reserved values and Sv57x4 (which these tables do not build).
    for v in [0, 1, 7, 10, 15, u64::MAX] {
        assert_eq!(GStageMode::from_hgatp_mode(v), None, "{v}");
    }
}

#[test]
fn a_table_reports_its_mode_and_hgatp_and_frees_its_frames() {
    let before = live_frames();
    for mode in GStageMode::ALL {
        let t = GStageTable::<TestHal>::new(mode).unwrap();
        assert_eq!(t.mode(), mode);
        assert_eq!(t.hgatp(7), mode.hgatp(t.root_paddr(), 7));
        assert!(format!("{t:?}").contains(if mode == GStageMode::Sv39x4 {
            "Sv39x4"
        } else {
            "Sv48x4"
        }));
        // SAFETY: `t` is alive and unchanged while the view is used.
        let v = unsafe { GStageView::<TestHal>::from_root(mode, t.root_paddr()) }.unwrap();
        assert_eq!((v.mode(), v.root_paddr()), (mode, t.root_paddr()));
        // SAFETY: refused before anything is read.
        let bad = unsafe { GStageView::<TestHal>::from_root(mode, HostPhysAddr::from(0x1000)) };
        assert!(bad.is_err());
    }
    assert_eq!(live_frames(), before);
}

#[derive(Debug, Clone)]
enum Op {
    Map(usize, usize, usize, u8),
    Unmap(usize, usize),
    Protect(usize, usize, u8),
}

fn op() -> impl Strategy<Value = Op> {
    let range = prop_oneof![
        (0..WINDOW, 1..=8usize),
        (0..2usize, 1..=2usize).prop_map(|(a, n)| (a * 512, n * 512)),
    ]
    .prop_map(|(p, n)| (p, n.min(WINDOW - p).max(1)));
    prop_oneof![
        (range.clone(), 0..100_000usize, 0..8u8).prop_map(|((p, n), h, f)| Op::Map(p, n, h, f)),
        range.clone().prop_map(|(p, n)| Op::Unmap(p, n)),
        (range, 0..8u8).prop_map(|((p, n), f)| Op::Protect(p, n, f)),
    ]
}

fn outcome(r: VCpuResult) -> Result<(), axvcpu::AxErrorKind> {
    r.map_err(|e| e.kind())
}

/// Applies `ops` to a `GStageTable` of `mode` and to the typed table of format `F`, and
/// checks after each step that results, mappings, and every translation agree, through the
/// tables and through views.
fn same_as_typed<F: PagingFormat>(mode: GStageMode, ops: Vec<Op>) {
    let before = live_frames();
    let mut dynamic = GStageTable::<TestHal>::new(mode).unwrap();
    let mut typed = NestedPageTable::<TestHal, F>::new().unwrap();
    let gpa = |p: usize| GuestPhysAddr::from((1 << 30) - 0x20_0000 + p * K4);
    for op in ops {
        let (a, b) = match op {
            Op::Map(p, n, h, f) => {
                let (h, f) = (HostPhysAddr::from(h * K4), MapFlags::from_bits_retain(f));
                (
                    dynamic.map(gpa(p), h, n * K4, f),
                    typed.map(gpa(p), h, n * K4, f),
                )
            }
            Op::Unmap(p, n) => (dynamic.unmap(gpa(p), n * K4), typed.unmap(gpa(p), n * K4)),
            Op::Protect(p, n, f) => {
                let f = MapFlags::from_bits_retain(f);
                (
                    dynamic.protect(gpa(p), n * K4, f),
                    typed.protect(gpa(p), n * K4, f),
                )
            }
        };
        assert_eq!(outcome(a), outcome(b), "{op:?}");
        assert!(dynamic.mappings().eq(typed.mappings()));
        // SAFETY: `dynamic` is alive and unchanged while `view` is used.
        let view = unsafe { GStageView::<TestHal>::from_root(mode, dynamic.root_paddr()) };
        let view = view.unwrap();
        assert!(view.mappings().eq(typed.mappings()));
        let step = if cfg!(miri) { 61 } else { 1 };
        for p in (0..WINDOW).step_by(step) {
            let want = typed.translate(gpa(p));
            assert_eq!(dynamic.translate(gpa(p)), want, "page {p}");
            assert_eq!(view.translate(gpa(p)), want, "page {p}");
            assert_eq!(view.query(gpa(p)), typed.query(gpa(p)), "page {p}");
            assert_eq!(dynamic.query(gpa(p)), typed.query(gpa(p)), "page {p}");
        }
    }
    drop((dynamic, typed));
    assert_eq!(live_frames(), before, "frames leaked");
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(miri) { 2 } else { 64 },
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..if cfg!(miri) { 5 } else { 24 })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sv39x4_table_is_the_typed_table(ops in ops()) {
        same_as_typed::<RiscvSv39x4>(GStageMode::Sv39x4, ops)
    }

    #[test]
    fn sv48x4_table_is_the_typed_table(ops in ops()) {
        same_as_typed::<RiscvSv48x4>(GStageMode::Sv48x4, ops)
    }
}
