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

/// `line` as it may reach a terminal: every control character but tab (ESC, BEL, CR, LF, DEL,
/// the C1 range) shown as `\xNN`, so text from a host or a peer can neither move the cursor,
/// rewrite a line wisp printed, start a line of its own, set the title nor reach the
/// clipboard (OSC 52). The one escaping function: every path that prints host- or
/// peer-controlled text for a person (live output on a terminal, refusals, recaps, details,
/// `wisp show`, drift reports, worker logs) passes that text through it.
pub fn visible(line: &str) -> std::borrow::Cow<'_, str> {
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
pub fn visible_on(terminal: bool, line: &str) -> std::borrow::Cow<'_, str> {
    if terminal {
        visible(line)
    } else {
        std::borrow::Cow::Borrowed(line)
    }
}

/// Splits a byte stream into lines without ever holding more than a bounded partial line.
/// Each byte is looked at once: a frame of a million short lines costs a million steps.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

/// A partial line longer than this is emitted as if it ended, so memory stays bounded.
const MAX_LINE: usize = 64 * 1024;

impl LineSplitter {
    /// Adds bytes; returns the lines they complete (without their newline). A line longer
    /// than [`MAX_LINE`] comes out in pieces of that size.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut rest = bytes;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            let (line, after) = (&rest[..pos], &rest[pos + 1..]);
            if self.pending.is_empty() {
                self.cut_long(line, &mut lines);
            } else {
                self.pending.extend_from_slice(line);
                let whole = std::mem::take(&mut self.pending);
                self.cut_long(&whole, &mut lines);
            }
            rest = after;
        }
        self.pending.extend_from_slice(rest);
        while self.pending.len() > MAX_LINE {
            let tail = self.pending.split_off(MAX_LINE);
            lines.push(String::from_utf8_lossy(&self.pending).into_owned());
            self.pending = tail;
        }
        lines
    }

    /// `line` (complete) as lines of at most [`MAX_LINE`] bytes.
    fn cut_long(&self, line: &[u8], lines: &mut Vec<String>) {
        let mut chunks = line.chunks(MAX_LINE);
        lines.push(String::from_utf8_lossy(chunks.next().unwrap_or_default()).into_owned());
        lines.extend(chunks.map(|c| String::from_utf8_lossy(c).into_owned()));
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

    #[test]
    fn long_lines_come_out_in_bounded_pieces() {
        let mut s = LineSplitter::default();
        let long = vec![b'x'; MAX_LINE * 2 + 5];
        let lines = s.push(&long);
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.len() == MAX_LINE));
        assert_eq!(s.push(b"\n"), ["xxxxx"]);
        let mut whole = long.clone();
        whole.push(b'\n');
        let lines = s.push(&whole);
        assert_eq!(
            lines.iter().map(String::len).collect::<Vec<_>>(),
            [MAX_LINE, MAX_LINE, 5]
        );
    }

    #[test]
    fn a_megabyte_of_short_lines_is_split_in_one_pass() {
        let mut s = LineSplitter::default();
        let frame = b"a\n".repeat(800_000);
        // Quadratic splitting took minutes here; one pass takes milliseconds. Counted, not
        // timed: each of the 800,000 lines comes out once, in order.
        let lines = s.push(&frame);
        assert_eq!(lines.len(), 800_000);
        assert!(lines.iter().all(|l| l == "a"));
        assert_eq!(s.finish(), None);
    }
}
