//! Host failures: [`FailingHal`], a HAL wrapper that makes the Nth frame allocation fail,
//! and [`sweep`], which proves for every allocation a build path makes that its failure is
//! a clean `Err` (`NoMemory`) and leaks no frame.
//!
//! Test-only, like the rest of this crate (backends take it as a dev-dependency). The
//! backend-agnostic part is here so every harness, hosted or bare-metal, runs the same
//! check: a harness instantiates its backend and nested page table with
//! `FailingHal<ItsHal>` and hands [`sweep`] a closure that builds them (create, setup, map,
//! and whatever else its paths allocate), returning everything built so that dropping it
//! frees it all. `sweep` first runs the closure with no failure and counts the allocations
//! N it makes, then runs it N more times with allocation 1, 2, ..., N failing:
//!
//! ```
//! use axvcpu::{AxErrorKind, AxVCpuHal, HostPhysAddr, HostVirtAddr, VCpuError, VCpuResult};
//! use axvcpu_conformance::alloc_fail::{sweep, FailingHal};
//!
//! // A toy HAL and a "backend" that takes three frames and frees them on drop.
//! # use std::alloc::{alloc_zeroed, dealloc, Layout};
//! struct Heap;
//! impl AxVCpuHal for Heap {
//!     fn alloc_frame() -> Option<HostPhysAddr> {
//!         let l = Layout::from_size_align(4096, 4096).ok()?;
//!         // SAFETY: the layout has a non-zero size.
//!         let p = unsafe { alloc_zeroed(l) };
//!         (!p.is_null()).then(|| HostPhysAddr::from(p as usize))
//!     }
//!     fn dealloc_frame(paddr: HostPhysAddr) {
//!         let l = Layout::from_size_align(4096, 4096).unwrap();
//!         // SAFETY: `paddr` came from `alloc_frame` with this layout.
//!         unsafe { dealloc(paddr.as_usize() as *mut u8, l) }
//!     }
//!     fn phys_to_virt(p: HostPhysAddr) -> HostVirtAddr { HostVirtAddr::from(p.as_usize()) }
//!     fn virt_to_phys(v: HostVirtAddr) -> HostPhysAddr { HostPhysAddr::from(v.as_usize()) }
//!     fn current_cpu_id() -> usize { 0 }
//! }
//! struct Frames<H: AxVCpuHal>(Vec<HostPhysAddr>, core::marker::PhantomData<H>);
//! impl<H: AxVCpuHal> Drop for Frames<H> {
//!     fn drop(&mut self) { self.0.iter().for_each(|&f| H::dealloc_frame(f)) }
//! }
//! fn build<H: AxVCpuHal>() -> VCpuResult<Frames<H>> {
//!     let mut f = Frames(Vec::new(), core::marker::PhantomData);
//!     for _ in 0..3 {
//!         f.0.push(H::alloc_frame().ok_or(VCpuError::new(AxErrorKind::NoMemory, "no frame"))?);
//!     }
//!     Ok(f)
//! }
//! let report = sweep(build::<FailingHal<Heap>>).unwrap();
//! assert_eq!(report.points, 3);
//! ```
//!
//! The plan (which allocation fails, the counters) is one global: the HAL interface is made
//! of static functions, so a wrapper cannot carry it per instance. [`sweep`] holds a lock
//! for its whole run, so two sweeps in one process never mix their counts; code outside a
//! sweep that allocates through a `FailingHal` at the same time would.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicIsize, AtomicUsize, Ordering::SeqCst};

use axvcpu::{AxErrorKind, AxVCpuHal, HostPhysAddr, HostVirtAddr, VCpuId, VCpuResult};

/// A HAL that delegates everything to `H`, except that the allocation (of one frame or a
/// contiguous run, counted alike) numbered by [`plan::fail_nth`] returns `None`. It
/// also counts the frames it handed out and not yet got back
/// ([`plan::live_frames`]).
pub struct FailingHal<H>(PhantomData<fn() -> H>);

impl<H> core::fmt::Debug for FailingHal<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("FailingHal")
    }
}

struct Plan {
    /// The allocation (1-based, since the last reset) that fails; 0: none.
    fail_at: AtomicUsize,
    allocations: AtomicUsize,
    failures: AtomicUsize,
    live: AtomicIsize,
}

static PLAN: Plan = Plan {
    fail_at: AtomicUsize::new(0),
    allocations: AtomicUsize::new(0),
    failures: AtomicUsize::new(0),
    live: AtomicIsize::new(0),
};

static SWEEP: spin::Mutex<()> = spin::Mutex::new(());

impl<H: AxVCpuHal> FailingHal<H> {
    fn admit() -> bool {
        let n = PLAN.allocations.fetch_add(1, SeqCst) + 1;
        if n == PLAN.fail_at.load(SeqCst) {
            PLAN.failures.fetch_add(1, SeqCst);
            false
        } else {
            true
        }
    }
}

/// The plan shared by every [`FailingHal`]: what fails, what was counted.
pub mod plan {
    use super::{SeqCst, PLAN};

    /// Restarts the allocation count; allocation `n` from now (1-based) will fail, none if
    /// `n` is `None`. Live frames are not reset.
    pub fn fail_nth(n: Option<usize>) {
        PLAN.fail_at.store(n.unwrap_or(0), SeqCst);
        PLAN.allocations.store(0, SeqCst);
        PLAN.failures.store(0, SeqCst);
    }

    /// Allocations asked for since the last [`fail_nth`], the failed one
    /// included.
    pub fn allocations() -> usize {
        PLAN.allocations.load(SeqCst)
    }

    /// Allocations made to fail since the last [`fail_nth`] (0 or 1).
    pub fn failures() -> usize {
        PLAN.failures.load(SeqCst)
    }

    /// Frames allocated through any `FailingHal` and not yet freed (negative if more were
    /// freed than allocated: a double free).
    pub fn live_frames() -> isize {
        PLAN.live.load(SeqCst)
    }
}

impl<H: AxVCpuHal> AxVCpuHal for FailingHal<H> {
    fn alloc_frame() -> Option<HostPhysAddr> {
        if !Self::admit() {
            return None;
        }
        let f = H::alloc_frame()?;
        PLAN.live.fetch_add(1, SeqCst);
        Some(f)
    }

    fn dealloc_frame(paddr: HostPhysAddr) {
        PLAN.live.fetch_sub(1, SeqCst);
        H::dealloc_frame(paddr)
    }

    fn alloc_contiguous_frames(count: usize, align_frames: usize) -> Option<HostPhysAddr> {
        if !Self::admit() {
            return None;
        }
        let f = H::alloc_contiguous_frames(count, align_frames)?;
        PLAN.live.fetch_add(count as isize, SeqCst);
        Some(f)
    }

    fn dealloc_contiguous_frames(paddr: HostPhysAddr, count: usize) {
        PLAN.live.fetch_sub(count as isize, SeqCst);
        H::dealloc_contiguous_frames(paddr, count)
    }

    fn phys_to_virt(paddr: HostPhysAddr) -> HostVirtAddr {
        H::phys_to_virt(paddr)
    }

    fn virt_to_phys(vaddr: HostVirtAddr) -> HostPhysAddr {
        H::virt_to_phys(vaddr)
    }

    fn current_cpu_id() -> usize {
        H::current_cpu_id()
    }

    fn irq_fetch() -> usize {
        H::irq_fetch()
    }

    fn irq_handler() {
        H::irq_handler()
    }

    fn vcpu_woken(id: VCpuId) {
        H::vcpu_woken(id)
    }
}

/// What a passing [`sweep`] covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// The allocations the build makes, each of which was made to fail once.
    pub points: usize,
    /// For each point (allocation 1, 2, ...), the error the build returned.
    pub errors: Vec<String>,
}

/// Runs `build` once without failures, then once per allocation it made with that
/// allocation failing, through [`FailingHal`] (`build` must allocate only through
/// `FailingHal<_>` for what it counts; its result must own everything it built, freed on
/// drop). Fails (with the reason) unless: the clean build succeeds and frees every frame
/// when dropped; every failing build returns an `Err` of kind `NoMemory`, having reached
/// the failing allocation; and after each, every frame is back.
pub fn sweep<T>(mut build: impl FnMut() -> VCpuResult<T>) -> Result<SweepReport, String> {
    let _one_at_a_time = SWEEP.lock();
    let live = plan::live_frames;
    let before = live();
    plan::fail_nth(None);
    let built = build().map_err(|e| format!("the build fails without injected failures: {e}"))?;
    let points = plan::allocations();
    drop(built);
    if live() != before {
        return Err(format!(
            "the clean build leaks {} frames when dropped",
            live() - before
        ));
    }
    let mut errors = Vec::with_capacity(points);
    for n in 1..=points {
        plan::fail_nth(Some(n));
        let result = build();
        let reached = plan::failures() == 1;
        plan::fail_nth(None);
        match result {
            Ok(built) => {
                drop(built);
                return Err(if reached {
                    format!("allocation {n} of {points} failed, yet the build succeeded")
                } else {
                    format!("allocation {n} of {points} was not reached the second time")
                });
            }
            Err(e) if e.kind() != AxErrorKind::NoMemory => {
                return Err(format!(
                    "allocation {n} of {points} failed with {e}, not NoMemory"
                ))
            }
            Err(_) if !reached => {
                return Err(format!(
                    "allocation {n} of {points} was not reached the second time"
                ))
            }
            Err(e) => errors.push(format!("{e}")),
        }
        if live() != before {
            return Err(format!(
                "allocation {n} of {points} failed and {} frames leaked",
                live() - before
            ));
        }
    }
    Ok(SweepReport { points, errors })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use axvcpu::VCpuError;
    use std::alloc::{alloc_zeroed, dealloc, Layout};

    struct Heap;

    fn layout(count: usize) -> Layout {
        Layout::from_size_align(4096 * count, 4096).unwrap()
    }

    impl AxVCpuHal for Heap {
        fn alloc_frame() -> Option<HostPhysAddr> {
            Self::alloc_contiguous_frames(1, 1)
        }
        fn dealloc_frame(paddr: HostPhysAddr) {
            Self::dealloc_contiguous_frames(paddr, 1)
        }
        fn alloc_contiguous_frames(count: usize, _align: usize) -> Option<HostPhysAddr> {
            // SAFETY: the layout has a non-zero size.
            let p = unsafe { alloc_zeroed(layout(count)) };
            (!p.is_null()).then(|| HostPhysAddr::from(p as usize))
        }
        fn dealloc_contiguous_frames(paddr: HostPhysAddr, count: usize) {
            // SAFETY: `paddr` came from `alloc_contiguous_frames(count, _)`.
            unsafe { dealloc(paddr.as_usize() as *mut u8, layout(count)) }
        }
        fn phys_to_virt(p: HostPhysAddr) -> HostVirtAddr {
            HostVirtAddr::from(p.as_usize())
        }
        fn virt_to_phys(v: HostVirtAddr) -> HostPhysAddr {
            HostPhysAddr::from(v.as_usize())
        }
        fn current_cpu_id() -> usize {
            0
        }
    }

    type Hal = FailingHal<Heap>;

    /// Frames owned, freed on drop.
    struct Owned(Vec<(HostPhysAddr, usize)>);

    impl Drop for Owned {
        fn drop(&mut self) {
            for &(f, n) in &self.0 {
                Hal::dealloc_contiguous_frames(f, n);
            }
        }
    }

    fn oom() -> VCpuError {
        VCpuError::new(AxErrorKind::NoMemory, "no frame")
    }

    /// A well-behaved build: one frame, a run of 4, one frame.
    fn good() -> VCpuResult<Owned> {
        let mut o = Owned(Vec::new());
        o.0.push((Hal::alloc_frame().ok_or_else(oom)?, 1));
        o.0.push((Hal::alloc_contiguous_frames(4, 4).ok_or_else(oom)?, 4));
        o.0.push((Hal::alloc_frame().ok_or_else(oom)?, 1));
        Ok(o)
    }

    #[test]
    fn a_clean_build_passes_at_every_point() {
        let r = sweep(good).unwrap();
        assert_eq!(r.points, 3);
        assert_eq!(r.errors.len(), 3);
    }

    #[test]
    fn a_leak_on_the_error_path_is_caught() {
        let leaky = || -> VCpuResult<Owned> {
            let first = Hal::alloc_frame().ok_or_else(oom)?;
            // Forgets `first` when the second allocation fails.
            let second = Hal::alloc_frame().ok_or_else(oom)?;
            Ok(Owned(vec![(first, 1), (second, 1)]))
        };
        let e = sweep(leaky).unwrap_err();
        assert!(
            e.contains("allocation 2 of 2 failed and 1 frames leaked"),
            "{e}"
        );
    }

    #[test]
    fn a_swallowed_failure_or_a_wrong_kind_is_caught() {
        let swallow = || -> VCpuResult<Owned> {
            let f = Hal::alloc_frame()
                .or_else(Hal::alloc_frame)
                .ok_or_else(oom)?;
            Ok(Owned(vec![(f, 1)]))
        };
        let e = sweep(swallow).unwrap_err();
        assert!(e.contains("failed, yet the build succeeded"), "{e}");
        let wrong_kind = || -> VCpuResult<Owned> {
            let f = Hal::alloc_frame().ok_or(VCpuError::bad_state("oops"))?;
            Ok(Owned(vec![(f, 1)]))
        };
        let e = sweep(wrong_kind).unwrap_err();
        assert!(e.contains("not NoMemory"), "{e}");
    }

    #[test]
    fn a_leak_on_the_success_path_is_caught() {
        let e = sweep(|| good().map(core::mem::forget)).unwrap_err();
        assert!(e.contains("the clean build leaks 6 frames"), "{e}");
    }
}
