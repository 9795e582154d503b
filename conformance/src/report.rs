//! Scenario outcomes, the summary line, and the check of a run's report lines against the
//! exact set of scenarios a platform must pass.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::Scenario;

/// How one scenario ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Everything the scenario checks held.
    Pass,
    /// Everything the scenario checks held; the text is a figure worth printing (the
    /// `chaos` scenario's tally), after the id: `PASS id: text`.
    PassWith(String),
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
    /// Records `outcome` of `scenario` and prints its line to `out`.
    pub fn record(&mut self, out: &mut dyn fmt::Write, scenario: Scenario, outcome: &Outcome) {
        // A report that cannot be written has no one to tell; the counts still hold.
        let _ = match outcome {
            Outcome::Pass => {
                self.passed += 1;
                writeln!(out, "PASS {scenario}")
            }
            Outcome::PassWith(note) => {
                self.passed += 1;
                writeln!(out, "PASS {scenario}: {note}")
            }
            Outcome::Fail(why) => {
                self.failed += 1;
                writeln!(out, "FAIL {scenario}: {why}")
            }
            Outcome::NotApplicable(why) => {
                self.skipped += 1;
                writeln!(out, "N/A {scenario}: {why}")
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

/// One scenario line of a report: `PASS id`, `PASS id: figures`, `N/A id: why` or
/// `FAIL id: why`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line<'a> {
    Pass(&'a str),
    NotApplicable(&'a str),
    Fail(&'a str),
}

impl<'a> Line<'a> {
    fn parse(line: &'a str) -> Option<Self> {
        let id_before_colon = |rest: &'a str| rest.split_once(':').map_or(rest, |(id, _)| id);
        if let Some(rest) = line.strip_prefix("PASS ") {
            Some(Self::Pass(id_before_colon(rest)))
        } else if let Some(rest) = line.strip_prefix("N/A ") {
            Some(Self::NotApplicable(id_before_colon(rest)))
        } else {
            line.strip_prefix("FAIL ")
                .map(|rest| Self::Fail(id_before_colon(rest)))
        }
    }

    fn id(self) -> &'a str {
        match self {
            Self::Pass(id) | Self::NotApplicable(id) | Self::Fail(id) => id,
        }
    }
}

/// Checks one pass of a run's report: the lines of `output` that start with `prefix` (a
/// second pass's prefix, or `""`; the others are ignored). Every scenario of
/// [`Scenario::ALL`] must have exactly one line: `N/A` for those in `not_applicable`,
/// `PASS` for every other; no line may name an id the suite does not have, and the
/// closing line must read `<passed> passed, 0 failed, <skipped> skipped`. Returns how many
/// scenarios passed, or every problem found (a failing scenario's problem is its line).
pub fn check_report(
    output: &str,
    prefix: &str,
    not_applicable: &[Scenario],
) -> Result<usize, Vec<String>> {
    let mut problems = Vec::new();
    let mut lines: [Vec<(Line, &str)>; Scenario::COUNT] = core::array::from_fn(|_| Vec::new());
    for raw in output.lines() {
        let Some(line) = raw.strip_prefix(prefix).and_then(Line::parse) else {
            continue;
        };
        match Scenario::from_id(line.id()) {
            Some(s) => lines[s as usize].push((line, raw)),
            None => problems.push(format!("a line for no scenario of the suite: {raw}")),
        }
    }
    let mut passed = 0;
    for s in Scenario::ALL {
        let na_here = not_applicable.contains(&s);
        match lines[s as usize].as_slice() {
            [(Line::Pass(_), _)] if !na_here => passed += 1,
            [(Line::NotApplicable(_), _)] if na_here => {}
            [(Line::Pass(_), _)] => problems.push(format!(
                "{prefix}{s} passed, but this platform must report it N/A"
            )),
            [(Line::NotApplicable(_), raw)] => {
                problems.push(format!("{s} must run on this platform: {raw}"))
            }
            [(Line::Fail(_), raw)] => problems.push(raw.to_string()),
            [] => problems.push(format!("{prefix}no line for scenario {s}")),
            more => problems.push(format!(
                "{prefix}{} lines for scenario {s}: {}",
                more.len(),
                more.iter()
                    .map(|(_, raw)| *raw)
                    .collect::<Vec<_>>()
                    .join(" | ")
            )),
        }
    }
    let skipped = Scenario::ALL
        .iter()
        .filter(|s| not_applicable.contains(s))
        .count();
    let closing = format!("{prefix}{passed} passed, 0 failed, {skipped} skipped");
    if !output.lines().any(|l| l == closing) {
        problems.push(format!("no closing line `{closing}`"));
    }
    if problems.is_empty() {
        Ok(passed)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SCENARIOS;

    /// A report with `PASS` for every scenario but the N/A ones, and its closing line.
    fn report(prefix: &str, na: &[Scenario]) -> String {
        let mut out = String::new();
        let mut summary = Summary::default();
        for s in Scenario::ALL {
            let outcome = if na.contains(&s) {
                Outcome::NotApplicable("no such thing here")
            } else {
                Outcome::Pass
            };
            let mut line = String::new();
            summary.record(&mut line, s, &outcome);
            out.push_str(prefix);
            out.push_str(&line);
        }
        out.push_str(&format!("{prefix}{summary}\n"));
        out
    }

    const NA: [Scenario; 2] = [Scenario::IoOut, Scenario::IoIn];

    #[test]
    fn a_complete_report_passes_with_its_count() {
        let out = report("", &NA);
        assert_eq!(check_report(&out, "", &NA), Ok(SCENARIOS.len() - 2));
        let out = format!("boot banner\n{}SELFTEST x: ok\n", report("[b] ", &NA));
        assert_eq!(check_report(&out, "[b] ", &NA), Ok(SCENARIOS.len() - 2));
    }

    #[test]
    fn a_pass_line_with_figures_counts_for_its_scenario() {
        let out = report("", &NA).replace("PASS chaos\n", "PASS chaos: 2 programs, 9 exits\n");
        assert_eq!(check_report(&out, "", &NA), Ok(SCENARIOS.len() - 2));
    }

    #[test]
    fn a_missing_duplicate_failing_or_unknown_line_is_a_problem() {
        let good = report("", &NA);
        let cases = [
            (
                good.replace("PASS irq-merge\n", ""),
                "no line for scenario irq-merge",
            ),
            (
                good.replace("PASS irq-merge\n", "PASS irq-merge\nPASS irq-merge\n"),
                "2 lines for scenario irq-merge",
            ),
            (
                good.replace("PASS irq-merge", "FAIL irq-merge: taken twice"),
                "FAIL irq-merge: taken twice",
            ),
            (
                format!("PASS irq-merged\n{good}"),
                "a line for no scenario of the suite: PASS irq-merged",
            ),
            (
                good.replace(" passed, 0 failed", " passed, 1 failed"),
                "no closing line",
            ),
        ];
        for (out, expected) in cases {
            let problems = check_report(&out, "", &NA).expect_err(expected);
            assert!(
                problems.iter().any(|p| p.starts_with(expected)),
                "{expected}: {problems:?}"
            );
        }
    }

    #[test]
    fn the_not_applicable_set_is_exact() {
        // One more N/A than the platform may have.
        let extra = report("", &[Scenario::IoOut, Scenario::IoIn, Scenario::CpuDown]);
        let problems = check_report(&extra, "", &NA).unwrap_err();
        assert!(
            problems.iter().any(|p| p.starts_with("cpu-down must run")),
            "{problems:?}"
        );
        // One fewer: io-in passed where the platform must not run it.
        let fewer = report("", &[Scenario::IoOut]);
        let problems = check_report(&fewer, "", &NA).unwrap_err();
        assert!(
            problems.iter().any(|p| p.starts_with("io-in passed")),
            "{problems:?}"
        );
    }

    #[test]
    fn another_pass_does_not_count_for_this_one() {
        let out = report("[b] ", &NA);
        let problems = check_report(&out, "", &NA).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p == "no line for scenario lifecycle"),
            "{problems:?}"
        );
    }

    #[test]
    fn summary_counts_and_prints_each_outcome() {
        let mut s = Summary::default();
        let mut out = String::new();
        s.record(&mut out, Scenario::Halt, &Outcome::Pass);
        assert!(s.ok());
        s.record(
            &mut out,
            Scenario::Chaos,
            &Outcome::PassWith("3 programs".into()),
        );
        s.record(
            &mut out,
            Scenario::IoIn,
            &Outcome::NotApplicable("no ports"),
        );
        s.record(
            &mut out,
            Scenario::Regs,
            &Outcome::Fail("r3 changed".into()),
        );
        assert!(!s.ok());
        assert_eq!(
            out,
            "PASS halt\nPASS chaos: 3 programs\nN/A io-in: no ports\nFAIL regs: r3 changed\n"
        );
        assert_eq!(s.to_string(), "2 passed, 1 failed, 1 skipped");
        assert!(!Summary::default().ok(), "nothing passed is not a success");
    }
}
