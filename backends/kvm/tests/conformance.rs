//! The shared conformance scenarios on hosted KVM.

use axvcpu_conformance::{run_all, SCENARIOS};
use axvcpu_kvm::testing::KvmPlatform;

#[test]
fn every_scenario_passes_or_is_not_applicable() {
    let garbage = std::env::var("AXVCPU_KVM_GARBAGE_PROGRAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(axvcpu_kvm::testing::DEFAULT_GARBAGE_PROGRAMS);
    let mut platform = KvmPlatform::new().with_garbage_programs(garbage);
    let mut out = String::new();
    let summary = run_all(&mut platform, &mut out);
    print!("{out}");
    for id in SCENARIOS {
        let has_line = out.lines().any(|l| {
            ["PASS ", "FAIL ", "N/A "].iter().any(|p| {
                l.strip_prefix(p)
                    .is_some_and(|rest| rest == id || rest.starts_with(&format!("{id}:")))
            })
        });
        assert!(has_line, "no line for scenario {id}");
    }
    assert!(
        out.lines().any(|l| l.starts_with("N/A cpu-down:")),
        "cpu-down must be N/A on x86"
    );
    assert_eq!(summary.failed, 0, "{summary}");
    assert!(summary.passed >= SCENARIOS.len() - 1, "{summary}");
}
