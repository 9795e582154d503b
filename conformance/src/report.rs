//! Scenario outcomes and the summary line.

use alloc::string::String;
use core::fmt;

/// How one scenario ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Everything the scenario checks held.
    Pass,
    /// A check failed; the text says which and how.
    Fail(String),
    /// The scenario cannot be expressed on this platform; the text says why.
    NotApplicable(&'static str),
}

/// Counts of outcomes over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Scenarios that passed.
    pub passed: usize,
    /// Scenarios that failed.
    pub failed: usize,
    /// Scenarios not applicable here.
    pub skipped: usize,
}

impl Summary {
    /// Records `outcome` of scenario `id` and prints its line to `out`.
    pub fn record(&mut self, out: &mut dyn fmt::Write, id: &str, outcome: &Outcome) {
        let _ = match outcome {
            Outcome::Pass => {
                self.passed += 1;
                writeln!(out, "PASS {id}")
            }
            Outcome::Fail(why) => {
                self.failed += 1;
                writeln!(out, "FAIL {id}: {why}")
            }
            Outcome::NotApplicable(why) => {
                self.skipped += 1;
                writeln!(out, "N/A {id}: {why}")
            }
        };
    }

    /// Whether no scenario failed and at least one passed.
    pub fn ok(&self) -> bool {
        self.failed == 0 && self.passed > 0
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }
}
