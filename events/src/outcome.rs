//! How each host's part of a run ended, and the exit status a set of them gives.

use std::time::Duration;

use crate::exit::ExitStatus;

/// How a host's part of the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostOutcome {
    /// Succeeded.
    Ok,
    /// The command failed, timed out or was refused.
    Failed,
    /// The host could not be reached, or its session broke.
    Unreachable,
    /// The host was reached but the runner could not start there (becoming root refused, no
    /// place that can execute it, a shell that cannot run the bootstrap).
    CouldNotStart,
    /// Ctrl-C stopped it.
    Interrupted,
    /// The run stopped (a failure budget or the canary) before its turn came.
    NotStarted,
}

impl HostOutcome {
    /// The word the recap uses for it.
    pub fn label(self) -> &'static str {
        match self {
            HostOutcome::Ok => "ok",
            HostOutcome::Failed => "failed",
            HostOutcome::Unreachable => "unreachable",
            HostOutcome::CouldNotStart => "could not start",
            HostOutcome::Interrupted => "interrupted",
            HostOutcome::NotStarted => "not started",
        }
    }

    /// Whether it counts against a failure budget: it failed or could not be reached.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            HostOutcome::Failed | HostOutcome::Unreachable | HostOutcome::CouldNotStart
        )
    }
}

/// One host's result, for the recap.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HostResult {
    /// The host.
    pub host: String,
    /// How it ended.
    pub outcome: HostOutcome,
    /// A short description: `exit 0`, `signal SIGKILL`, the error.
    pub detail: String,
    /// Time from start to the end of this host's work.
    pub elapsed: Duration,
    /// What the sandbox enforced, when the command asked for protections.
    pub sandbox: Option<String>,
}

impl HostResult {
    /// A result with no elapsed time or sandbox report (the host never got that far).
    pub fn new(host: &str, outcome: HostOutcome, detail: &str) -> Self {
        Self {
            host: host.to_owned(),
            outcome,
            detail: detail.to_owned(),
            elapsed: Duration::ZERO,
            sandbox: None,
        }
    }
}

/// The exit status for a set of results (interrupted > failed > could not start >
/// unreachable > ok).
pub fn exit_status(results: &[HostResult], interrupted: bool) -> ExitStatus {
    let any = |o| results.iter().any(|r| r.outcome == o);
    if interrupted || any(HostOutcome::Interrupted) {
        ExitStatus::Interrupted
    } else if any(HostOutcome::Failed) || any(HostOutcome::NotStarted) {
        // Hosts were left out because the run stopped: that is a failed run.
        ExitStatus::Failed
    } else if any(HostOutcome::CouldNotStart) {
        ExitStatus::CouldNotStart
    } else if any(HostOutcome::Unreachable) {
        ExitStatus::Unreachable
    } else {
        ExitStatus::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_precedence() {
        let r = |outcome| HostResult {
            host: "h".into(),
            outcome,
            detail: String::new(),
            elapsed: Duration::ZERO,
            sandbox: None,
        };
        assert_eq!(exit_status(&[r(HostOutcome::Ok)], false), ExitStatus::Ok);
        assert_eq!(
            exit_status(&[r(HostOutcome::Ok), r(HostOutcome::Unreachable)], false),
            ExitStatus::Unreachable
        );
        assert_eq!(
            exit_status(
                &[r(HostOutcome::CouldNotStart), r(HostOutcome::Unreachable)],
                false
            ),
            ExitStatus::CouldNotStart
        );
        assert_eq!(
            exit_status(
                &[r(HostOutcome::Failed), r(HostOutcome::Unreachable)],
                false
            ),
            ExitStatus::Failed
        );
        assert_eq!(
            exit_status(&[r(HostOutcome::Ok)], true),
            ExitStatus::Interrupted
        );
    }
}
