//! Diagnostics: one line on stderr, prefixed with the runner's name. Never stdout, which
//! carries only frames. A leaf: every module may use it, and it uses none.

/// Writes a diagnostic line to stderr.
pub(crate) fn say(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "wisp-runner: {message}");
}
