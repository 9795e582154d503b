//! The conformance `chaos` scenario alone on hosted KVM, with as many programs as asked
//! (`cargo xtask fuzz guests [--runs N]` runs it; default 100,000): prints the report line
//! with its tally, the time taken, and fails if a frame leaked.
//!
//! `cargo run --release -p axvcpu-kvm-testkit --example chaos -- [--runs N]`

use std::time::Instant;

use axvcpu_conformance::{run_selected, Scenario};
use axvcpu_kvm::HostedHal;
use axvcpu_kvm_testkit::KvmPlatform;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs = match args.as_slice() {
        [] => 100_000,
        [flag, n] if flag == "--runs" => n.parse().map_err(|e| format!("--runs {n}: {e}"))?,
        _ => return Err("usage: chaos [--runs N]".into()),
    };
    let mut platform = KvmPlatform::new().with_chaos_programs(runs);
    let frames = HostedHal::live_frames();
    let t0 = Instant::now();
    let mut report = String::new();
    let summary = run_selected(&mut platform, &mut report, |s| s == Scenario::Chaos);
    let secs = t0.elapsed().as_secs_f64();
    print!("{report}");
    println!(
        "chaos on hosted KVM: {runs} programs in {secs:.1} s ({:.0} programs/s)",
        runs as f64 / secs
    );
    let leaked = HostedHal::live_frames() as isize - frames as isize;
    println!("frames leaked: {leaked}");
    if summary.ok() && leaked == 0 {
        Ok(())
    } else {
        Err("chaos failed".into())
    }
}
