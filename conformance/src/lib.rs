//! The golden conformance suite: the protocol's contract in data form (golden/), run against
//! any runner executable. Each case starts a fresh runner from a private staged copy, plays
//! its steps, and compares the normalised answers; the runner must also exit and leave
//! nothing on disk.

mod case;
mod driver;
mod normalise;

use std::path::{Path, PathBuf};

pub use case::{Case, CaseError, load, load_dir};

/// How one case went.
#[derive(Debug)]
pub struct CaseOutcome {
    /// The case's name.
    pub name: String,
    /// Empty when it passed.
    pub failures: Vec<String>,
    /// Set by update mode when the file was rewritten.
    pub updated: bool,
}

impl CaseOutcome {
    /// True when the runner answered as the case expects.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs `cases` against `runner`. With `update`, rewrites each case's expectations from the
/// runner's answers (only cases that ran to the end are rewritten).
pub fn run_cases(cases: &[Case], runner: &Path, update: bool) -> Vec<CaseOutcome> {
    run_cases_under(cases, runner, None, update)
}

/// [`run_cases`] with the runner started through `interpreter` (`qemu-aarch64-static`) when
/// given: a runner for another architecture, on this machine.
pub fn run_cases_under(
    cases: &[Case],
    runner: &Path,
    interpreter: Option<&Path>,
    update: bool,
) -> Vec<CaseOutcome> {
    cases
        .iter()
        .map(|case| {
            let run = driver::run_case(case, runner, interpreter, update);
            let mut outcome = CaseOutcome {
                name: case.name.clone(),
                failures: run.failures,
                updated: false,
            };
            // A case that could not run to its end (a runner that hung or broke the stream)
            // is never rewritten: its expectations would be cut short.
            if update && outcome.failures.is_empty() {
                let text = case::render(case, &run.blocks, &run.exit_statuses);
                let old = std::fs::read_to_string(&case.path).unwrap_or_default();
                if text != old {
                    match std::fs::write(&case.path, text) {
                        Ok(()) => outcome.updated = true,
                        Err(e) => outcome
                            .failures
                            .push(format!("cannot write {}: {e}", case.path.display())),
                    }
                }
            }
            outcome
        })
        .collect()
}

/// The default golden directory: `./golden` when it exists, else the source tree's.
pub fn default_golden_dir() -> PathBuf {
    let here = PathBuf::from("golden");
    if here.is_dir() {
        here
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden")
    }
}

/// Formats outcomes as the CLI prints them; the last line is `N passed, M failed`.
pub fn render_report(outcomes: &[CaseOutcome]) -> String {
    let mut text = String::new();
    for o in outcomes {
        let label = match (o.passed(), o.updated) {
            (true, true) => "updated",
            (true, false) => "ok",
            (false, _) => "FAIL",
        };
        text.push_str(&format!("{label:<7} {}\n", o.name));
        for f in &o.failures {
            for line in f.lines() {
                text.push_str(&format!("        {line}\n"));
            }
        }
    }
    let passed = outcomes.iter().filter(|o| o.passed()).count();
    text.push_str(&format!(
        "{passed} passed, {} failed\n",
        outcomes.len() - passed
    ));
    text
}

/// How a conformance run went, for the caller's exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every case passed.
    Passed,
    /// Some case failed.
    Failed,
    /// The runner named does not exist.
    NoRunner,
    /// The golden cases could not be read.
    BadCases,
}

/// `wisp conformance`: runs the suite, prints the report, says how it went.
pub fn cli_main(
    runner: &Path,
    interpreter: Option<&Path>,
    golden: Option<PathBuf>,
    filter: Option<String>,
    update: bool,
) -> Verdict {
    let say = |text: &str| {
        let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    };
    if !runner.is_file() {
        say(&format!(
            "error: runner {} does not exist\n",
            runner.display()
        ));
        return Verdict::NoRunner;
    }
    let dir = golden.unwrap_or_else(default_golden_dir);
    let mut cases = match load_dir(&dir) {
        Ok(c) => c,
        Err(e) => {
            say(&format!("error: {e}\n"));
            return Verdict::BadCases;
        }
    };
    if let Some(f) = &filter {
        cases.retain(|c| c.name.contains(f.as_str()));
    }
    let outcomes = run_cases_under(&cases, runner, interpreter, update);
    say(&render_report(&outcomes));
    if outcomes.iter().all(CaseOutcome::passed) {
        Verdict::Passed
    } else {
        Verdict::Failed
    }
}
