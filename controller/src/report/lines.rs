//! Turning runner output and frames into text: lines out of a byte stream, a DONE in a few
//! words, a host's capabilities in one line.

use wisp_protocol::message::{Capabilities, Done, Status};

/// What a host can enforce, in one line: `landlock abi 7, seccomp yes, cgroup hybrid
/// (writable)`.
pub fn capabilities(c: &Capabilities) -> String {
    let landlock = c
        .landlock
        .abi
        .map_or_else(|| c.landlock.status.clone(), |abi| format!("abi {abi}"));
    format!(
        "landlock {landlock}, seccomp {}, cgroup {}{}",
        if c.seccomp.filter { "yes" } else { "no" },
        c.cgroup.mode,
        if c.cgroup.writable {
            " (writable)".to_owned()
        } else {
            format!(" (not writable: {})", c.cgroup.detail)
        },
    )
}

/// Short description of how a command ended, for the recap.
pub fn describe(done: &Done) -> String {
    match (done.status, done.exit_code, &done.signal) {
        (Status::Timeout, _, _) => "timed out".into(),
        (Status::Cancelled, _, _) => "cancelled".into(),
        (Status::Oom, _, _) => "killed: out of memory".into(),
        (_, Some(code), _) => format!("exit {code}"),
        (_, None, Some(sig)) => format!("signal {sig}"),
        _ => String::new(),
    }
}

/// `line` as it may reach a terminal: every control character but tab (ESC, BEL, CR, DEL,
/// the C1 range) shown as `\xNN`, so host output can neither move the cursor, rewrite a
/// line wisp printed, set the title nor reach the clipboard (OSC 52).
fn visible(line: &str) -> std::borrow::Cow<'_, str> {
    let control = |c: char| (c.is_control() && c != '\t') || ('\u{80}'..='\u{9f}').contains(&c);
    if !line.chars().any(control) {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 8);
    for c in line.chars() {
        if control(c) {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// [`visible`] when `terminal`, else `line` as it is.
pub(super) fn visible_on(terminal: bool, line: &str) -> std::borrow::Cow<'_, str> {
    if terminal {
        visible(line)
    } else {
        std::borrow::Cow::Borrowed(line)
    }
}

/// Splits a byte stream into lines without ever holding more than a bounded partial line.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

/// A partial line longer than this is emitted as if it ended, so memory stays bounded.
const MAX_LINE: usize = 64 * 1024;

impl LineSplitter {
    /// Adds bytes; returns the lines they complete (without their newline).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
            let rest = self.pending.split_off(pos + 1);
            self.pending.pop();
            lines.push(String::from_utf8_lossy(&self.pending).into_owned());
            self.pending = rest;
        }
        if self.pending.len() > MAX_LINE {
            lines.push(String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned());
        }
        lines
    }

    /// The unterminated last line, if any.
    pub fn finish(&mut self) -> Option<String> {
        (!self.pending.is_empty())
            .then(|| String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(visible("plain\ttab"), "plain\ttab");
        assert_eq!(
            visible("\x1b]52;c;ZXZpbA==\x07 \x1b[2K\rok \u{9b}"),
            "\\x1b]52;c;ZXZpbA==\\x07 \\x1b[2K\\x0dok \\x9b"
        );
    }

    #[test]
    fn splits_lines_across_chunks() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"a\nb"), ["a"]);
        assert_eq!(s.push(b"c\n\nd"), ["bc", ""]);
        assert_eq!(s.finish().as_deref(), Some("d"));
        assert_eq!(s.finish(), None);
    }
}
