//! Random map/unmap/protect sequences against a model: a map from 4 KiB guest page to
//! (host page, flags). `query`, `translate` and `mappings()` must agree with the model after
//! every step, failed operations must change nothing, and no frame may leak.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use axvcpu::{AxErrorKind, GuestPhysAddr, HostPhysAddr};
use axvcpu_npt::{
    Aarch64Stage2, Ept, MapFlags, Mapping, NestedPageTable, PagingFormat, RiscvSv39x4, RiscvSv48x4,
    X86Npt,
};
use common::{live_frames, TestHal};
use proptest::prelude::*;

const K4: usize = 0x1000;
/// Pages in the guest window the operations touch: 8 MiB, four 2 MiB leaves' worth.
const WINDOW: usize = 2048;
/// Where the window starts: just below a 1 GiB boundary, so operations cross tables at every
/// level.
const BASE: usize = (1 << 30) - 4 * 0x20_0000;

#[derive(Debug, Clone)]
enum Op {
    Map {
        page: usize,
        pages: usize,
        host_page: usize,
        flags: u8,
    },
    Unmap {
        page: usize,
        pages: usize,
    },
    Protect {
        page: usize,
        pages: usize,
        flags: u8,
    },
}

/// Page ranges biased toward 2 MiB alignment and whole 2 MiB multiples, so large leaves
/// appear and get split.
fn range() -> impl Strategy<Value = (usize, usize)> {
    prop_oneof![
        (0..WINDOW, 1..=16usize),
        (0..WINDOW, 1..=WINDOW / 2),
        (0..4usize, 1..=2usize).prop_map(|(a, n)| (a * 512, n * 512)),
        (0..4usize, 0..512usize, 1..=600usize).prop_map(|(a, o, n)| (a * 512 + o, n)),
    ]
    .prop_map(|(p, n)| (p, n.min(WINDOW - p).max(1)))
}

fn op() -> impl Strategy<Value = Op> {
    let host = prop_oneof![0..1_000_000usize, (0..2000usize).prop_map(|h| h * 512)];
    prop_oneof![
        3 => (range(), host, 0..8u8).prop_map(|((page, pages), host_page, flags)| Op::Map {
            page,
            pages,
            host_page,
            flags
        }),
        1 => range().prop_map(|(page, pages)| Op::Unmap { page, pages }),
        1 => (range(), 0..8u8).prop_map(|((page, pages), flags)| Op::Protect { page, pages, flags }),
    ]
}

type Model = BTreeMap<usize, (usize, MapFlags)>;

fn expressible<F: PagingFormat>(flags: MapFlags) -> bool {
    !flags.is_empty()
        && match F::NAME {
            n if n.starts_with("x86") => flags.contains(MapFlags::READ),
            n if n.starts_with("RISC-V") || n == "Intel EPT" => {
                !flags.contains(MapFlags::WRITE) || flags.contains(MapFlags::READ)
            }
            _ => true,
        }
}

fn merged(model: &Model) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for (&page, &(host, flags)) in model {
        let g = BASE + page * K4;
        let h = host * K4;
        match out.last_mut() {
            Some(m)
                if m.gpa.as_usize() + m.size == g
                    && m.hpa.as_usize() + m.size == h
                    && m.flags == flags =>
            {
                m.size += K4
            }
            _ => out.push(Mapping {
                gpa: GuestPhysAddr::from(g),
                hpa: HostPhysAddr::from(h),
                size: K4,
                flags,
            }),
        }
    }
    out
}

fn check<F: PagingFormat>(npt: &NestedPageTable<TestHal, F>, model: &Model, pages: &[usize]) {
    assert_eq!(npt.mappings().collect::<Vec<_>>(), merged(model));
    for &p in pages {
        let got = npt.query(GuestPhysAddr::from(BASE + p * K4 + 8));
        let walked = npt.translate(GuestPhysAddr::from(BASE + p * K4 + 8));
        assert_eq!(walked.map(|t| (t.hpa, t.flags, t.size)), got, "page {p}");
        let want = model
            .get(&p)
            .map(|&(h, f)| (HostPhysAddr::from(h * K4 + 8), f));
        assert_eq!(got.map(|(h, f, _)| (h, f)), want, "page {p}");
        if let Some((h, _, size)) = got {
            // The leaf really is that big: its first page maps to the leaf's first host page.
            let first = (BASE + p * K4) & !(size - 1);
            let off = BASE + p * K4 - first;
            assert_eq!(
                (h.as_usize() - 8 - off) % size,
                0,
                "page {p}: leaf {size:#x}"
            );
        }
    }
}

fn run<F: PagingFormat>(ops: Vec<Op>) {
    let before = live_frames();
    let mut npt = NestedPageTable::<TestHal, F>::new().unwrap();
    let mut model = Model::new();
    for op in ops {
        let (page, pages) = match op {
            Op::Map { page, pages, .. }
            | Op::Unmap { page, pages }
            | Op::Protect { page, pages, .. } => (page, pages),
        };
        let gpa = GuestPhysAddr::from(BASE + page * K4);
        let size = pages * K4;
        let range = page..page + pages;
        let all_mapped = range.clone().all(|p| model.contains_key(&p));
        let none_mapped = range.clone().all(|p| !model.contains_key(&p));
        let snapshot = model.clone();
        let result = match op {
            Op::Map {
                host_page, flags, ..
            } => {
                let flags = MapFlags::from_bits_retain(flags);
                let r = npt.map(gpa, HostPhysAddr::from(host_page * K4), size, flags);
                let ok = expressible::<F>(flags) && none_mapped;
                if ok {
                    for (i, p) in range.clone().enumerate() {
                        model.insert(p, (host_page + i, flags));
                    }
                } else if expressible::<F>(flags) {
                    assert_eq!(r.unwrap_err().kind(), AxErrorKind::AlreadyExists);
                }
                (r, ok)
            }
            Op::Unmap { .. } => {
                let r = npt.unmap(gpa, size);
                if all_mapped {
                    for p in range.clone() {
                        model.remove(&p);
                    }
                } else {
                    assert_eq!(r.unwrap_err().kind(), AxErrorKind::NotFound);
                }
                (r, all_mapped)
            }
            Op::Protect { flags, .. } => {
                let flags = MapFlags::from_bits_retain(flags);
                let r = npt.protect(gpa, size, flags);
                let ok = expressible::<F>(flags) && all_mapped;
                if ok {
                    for p in range.clone() {
                        model.get_mut(&p).unwrap().1 = flags;
                    }
                }
                (r, ok)
            }
        };
        assert_eq!(result.0.is_ok(), result.1, "{:?}", result.0);
        if !result.1 {
            assert_eq!(model, snapshot);
        }
        // Query the pages around the operation natively; a sample under Miri (slow).
        let lo = page.saturating_sub(1);
        let hi = (page + pages + 1).min(WINDOW);
        let step = if cfg!(miri) { 97 } else { 1 };
        let probe: Vec<usize> = (lo..hi).step_by(step).chain([lo, hi - 1]).collect();
        check(&npt, &model, &probe);
    }
    if !cfg!(miri) {
        check(&npt, &model, &(0..WINDOW).collect::<Vec<_>>());
    }
    if model.is_empty() {
        assert_eq!(
            live_frames() - before,
            F::ROOT_FRAMES,
            "empty tables must be freed"
        );
    }
    drop(npt);
    assert_eq!(live_frames(), before, "frames leaked");
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(miri) { 3 } else { 256 },
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..if cfg!(miri) { 6 } else { 40 })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn x86_npt_matches_model(ops in ops()) { run::<X86Npt>(ops) }

    #[test]
    fn intel_ept_matches_model(ops in ops()) { run::<Ept>(ops) }

    #[test]
    fn riscv_sv39x4_matches_model(ops in ops()) { run::<RiscvSv39x4>(ops) }

    #[test]
    fn riscv_sv48x4_matches_model(ops in ops()) { run::<RiscvSv48x4>(ops) }

    #[test]
    fn aarch64_stage2_matches_model(ops in ops()) { run::<Aarch64Stage2>(ops) }
}
