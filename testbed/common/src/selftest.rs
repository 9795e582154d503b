//! A testbed's own checks beyond the conformance contract, each reported on one line
//! `SELFTEST <name>: ok` or `SELFTEST <name>: FAIL <why>`, the form `cargo xtask` looks for;
//! a check the platform cannot run says so, `SELFTEST <name>: not run (<why>)`, and is not
//! counted as passed.

use alloc::format;
use alloc::string::String;
use core::fmt::Write;

use core::sync::atomic::{AtomicUsize, Ordering};

use axvcpu::{AxVCpuHal, HostPhysAddr, VCpuResult};
use axvcpu_conformance::alloc_fail::{plan, sweep};

use crate::hal::frames_in_use;

/// What one self-test returns: `Err(why)` on failure.
pub type Check = Result<(), String>;

/// A named self-test taking a context `C` (a testbed's run options).
pub type SelfTest<C> = (&'static str, fn(C) -> Check);

/// Runs every test in order with `ctx`, one report line each on `out`; `true` if all
/// passed. A failing test does not stop the rest.
pub fn run_all<C: Copy, W: Write>(tests: &[SelfTest<C>], ctx: C, out: &mut W) -> bool {
    let mut ok = true;
    for (name, test) in tests {
        let line = match test(ctx) {
            Ok(()) => writeln!(out, "SELFTEST {name}: ok"),
            Err(why) => {
                ok = false;
                writeln!(out, "SELFTEST {name}: FAIL {why}")
            }
        };
        // A console that cannot write cannot report a failure either.
        let _ = line;
    }
    ok
}

/// Reports `name` as not run on this platform, for the reason `why`.
pub fn not_run<W: Write>(name: &str, why: &str, out: &mut W) {
    // As in `run_all`: a console that cannot write cannot report anything.
    let _ = writeln!(out, "SELFTEST {name}: not run ({why})");
}

/// The host-failure check of `axvcpu_conformance::alloc_fail` on a testbed: runs
/// [`sweep`] over `build` (which builds a backend and nested page table over
/// `FailingHal<FrameHal<A>>`, see that module) and also checks, with the testbed's own
/// frame count, that nothing leaked. Returns the number of allocation points, each made to
/// fail once; fails if there are fewer than `min_points` (a path that allocates less than
/// expected is news too).
pub fn alloc_fail<T>(
    build: impl FnMut() -> VCpuResult<T>,
    min_points: usize,
) -> Result<usize, String> {
    let before = frames_in_use();
    let report = sweep(build)?;
    let after = frames_in_use();
    if after != before {
        return Err(format!(
            "{} frames of the testbed leaked",
            after as isize - before as isize
        ));
    }
    if report.points < min_points {
        return Err(format!(
            "only {} allocation points, expected at least {min_points}",
            report.points
        ));
    }
    Ok(report.points)
}

/// Guest memory of an `alloc-fail` build, from the testbed's own HAL (not the failing one
/// the build runs over): RAM starting with the guest's code, and a 2 MiB-aligned 2 MiB block
/// for a large page the build splits.
#[derive(Debug)]
pub struct AllocFailMemory {
    /// The RAM.
    pub ram: HostPhysAddr,
    /// Its size in 4 KiB frames.
    pub ram_frames: usize,
    /// The 2 MiB block ([`AF_BIG_FRAMES`] frames).
    pub big: HostPhysAddr,
}

/// Frames of [`AllocFailMemory::big`].
pub const AF_BIG_FRAMES: usize = 512;
/// Where a build maps the 2 MiB block: 3 GiB, clear of every testbed's RAM, read-only page
/// and devices.
pub const AF_BIG_GPA: usize = 0xc000_0000;
/// A page in another 512 GiB (Sv48x4, 4-level EPT/NPT) or 1 GiB (Sv39x4) than RAM and the
/// block: new tables at every level.
pub const AF_FAR_GPA: usize = 0x80_4000_0000;

/// Allocations the current build had made when its vCPU was set up.
static SET_UP_AFTER: AtomicUsize = AtomicUsize::new(0);

/// Called by a build once its vCPU is set up: the points after it fail with a live vCPU.
pub fn note_vcpu_set_up() {
    SET_UP_AFTER.store(plan::allocations(), Ordering::SeqCst);
}

/// [`alloc_fail`] over [`AllocFailMemory`] of `ram_frames` frames holding `code` at their
/// start, allocated from `H` (the testbed's frame HAL) and freed afterwards. Returns the
/// allocation points and how many of them came after the vCPU was set up
/// ([`note_vcpu_set_up`]).
pub fn alloc_fail_with_memory<H: AxVCpuHal, T>(
    ram_frames: usize,
    code: &[u8],
    mut build: impl FnMut(&AllocFailMemory) -> VCpuResult<T>,
    min_points: usize,
) -> Result<(usize, usize), String> {
    let ram = H::alloc_contiguous_frames(ram_frames, 1).ok_or("no RAM frames")?;
    let Some(big) = H::alloc_contiguous_frames(AF_BIG_FRAMES, AF_BIG_FRAMES) else {
        H::dealloc_contiguous_frames(ram, ram_frames);
        return Err("no 2 MiB block".into());
    };
    let mem = AllocFailMemory {
        ram,
        ram_frames,
        big,
    };
    let dst = H::phys_to_virt(ram).as_usize() as *mut u8;
    for (i, b) in code.iter().take(ram_frames * 4096).enumerate() {
        // SAFETY: `ram` is ours, mapped by the HAL, `i` inside it; no guest runs yet.
        unsafe { dst.add(i).write_volatile(*b) };
    }
    let result = alloc_fail(|| build(&mem), min_points);
    H::dealloc_contiguous_frames(big, AF_BIG_FRAMES);
    H::dealloc_contiguous_frames(ram, ram_frames);
    let points = result?;
    Ok((
        points,
        points.saturating_sub(SET_UP_AFTER.load(Ordering::SeqCst)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn reports_each_test_and_fails_if_any_fails() {
        let tests: [SelfTest<u32>; 3] = [
            ("even", |n| {
                if n % 2 == 0 {
                    Ok(())
                } else {
                    Err("odd".to_string())
                }
            }),
            ("small", |n| {
                if n < 10 {
                    Ok(())
                } else {
                    Err(alloc::format!("{n} >= 10"))
                }
            }),
            ("any", |_| Ok(())),
        ];
        let mut out = String::new();
        assert!(!run_all(&tests, 12, &mut out));
        assert_eq!(
            out,
            "SELFTEST even: ok\nSELFTEST small: FAIL 12 >= 10\nSELFTEST any: ok\n"
        );
        let mut out = String::new();
        assert!(run_all(&tests, 4, &mut out));
    }

    #[test]
    fn a_test_not_run_says_why_and_is_neither_ok_nor_failed() {
        let mut out = String::new();
        not_run("probe", "no such device", &mut out);
        assert_eq!(out, "SELFTEST probe: not run (no such device)\n");
        assert!(!out.contains(": ok") && !out.contains("FAIL"));
    }
}
