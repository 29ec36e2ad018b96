//! Process exit codes. They follow Ansible's, which operators already script against.

/// What `wisp` exits with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Every host succeeded.
    Ok = 0,
    /// At least one host failed (the command failed, timed out, or was refused).
    Failed = 2,
    /// At least one host could not be reached, and none failed.
    Unreachable = 3,
    /// An inventory or plan could not be parsed.
    ParseError = 4,
    /// Bad command-line options.
    BadOptions = 5,
    /// The state store cannot be opened or written, so the run did not start.
    State = 6,
    /// At least one host was reached but could not start the runner (becoming root refused,
    /// no place that can execute it), and none failed: the host needs fixing, not the
    /// network.
    CouldNotStart = 7,
    /// The policy (`--policy`) refused the call; no host was contacted.
    Refused = 8,
    /// Interrupted by Ctrl-C (SIGINT) or SIGTERM.
    Interrupted = 99,
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(s: ExitStatus) -> Self {
        std::process::ExitCode::from(s as u8)
    }
}
