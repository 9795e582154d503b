//! The shared conformance scenarios on hosted KVM: every scenario of the suite
//! (`axvcpu_conformance::Scenario::ALL`) passes except exactly `cpu-down`, which x86 cannot
//! express (N/A), checked by the suite's own `check_report`; `garbage` runs 10,000 random
//! programs (each must end in an exit or an `Err`, with exits that agree with the memory
//! map); `chaos` runs 200 random programs that fault inside the guest, toggle interrupt
//! masks and use privileged instructions under random injections (`cargo xtask fuzz guests`
//! runs 100,000); and no frame leaks. The only test of this binary: it counts the process's
//! frames exactly.
//!
//! `AXVCPU_KVM_GARBAGE_PROGRAMS` and `AXVCPU_KVM_CHAOS_PROGRAMS` set other numbers of
//! random programs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axvcpu_conformance::{check_report, run_all, Scenario};
use axvcpu_kvm::HostedHal;
use axvcpu_kvm_testkit::KvmPlatform;

const GARBAGE_PROGRAMS: usize = 10_000;
const CHAOS_PROGRAMS: usize = 200;

fn count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn every_scenario_passes_except_cpu_down_and_halt_timer_which_are_not_applicable() {
    let mut platform = KvmPlatform::new()
        .with_garbage_programs(count("AXVCPU_KVM_GARBAGE_PROGRAMS", GARBAGE_PROGRAMS))
        .with_chaos_programs(count("AXVCPU_KVM_CHAOS_PROGRAMS", CHAOS_PROGRAMS));
    let frames = HostedHal::live_frames();
    let mut report = String::new();
    run_all(&mut platform, &mut report);
    print!("{report}");
    let passed = check_report(&report, "", &[Scenario::CpuDown, Scenario::HaltTimer])
        .unwrap_or_else(|problems| panic!("{}", problems.join("\n")));
    assert_eq!(passed, Scenario::ALL.len() - 2);
    assert_eq!(HostedHal::live_frames(), frames, "frames leaked");
}
