//! The start-of-stream marker.
//!
//! Before its first frame the runner writes one line, `WISP-START <nonce>\n`, where the nonce
//! is chosen by the controller for this session and passed on the runner's command line.
//! Everything the channel carried before it (a login banner, rc-file noise, a `sudo` lecture)
//! is noise and is never parsed as frames. Because the nonce is fresh per session, no banner
//! can imitate the marker by accident.

use std::fmt;

/// The fixed part of the marker line.
pub const MARKER_PREFIX: &str = "WISP-START ";
/// How much noise is kept for error messages.
const NOISE_KEPT: usize = 4096;
/// How much noise is tolerated before giving up: a shell that prints more than this is not
/// going to start a runner.
pub const MAX_NOISE: usize = 1 << 20;

/// Returns the marker line for a nonce.
pub fn marker_line(nonce: &str) -> String {
    format!("{MARKER_PREFIX}{nonce}\n")
}

/// Checks a nonce: 8 to 64 characters from `[A-Za-z0-9_-]`, so it survives any shell quoting.
pub fn valid_nonce(nonce: &str) -> bool {
    (8..=64).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Outcome of feeding bytes to a [`MarkerScanner`].
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// The marker has not been seen yet.
    NeedMore,
    /// The marker was found; `rest` holds the bytes that followed it (the start of the frames).
    Found {
        /// Bytes after the marker in the input fed so far.
        rest: Vec<u8>,
    },
}

/// The stream produced too much output without a marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooMuchNoise {
    /// The first bytes of the noise, for the error message.
    pub noise_head: String,
}

impl fmt::Display for TooMuchNoise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no runner start marker in the first {MAX_NOISE} bytes; output began with {:?}",
            self.noise_head
        )
    }
}

impl std::error::Error for TooMuchNoise {}

/// Finds the marker in a byte stream fed in arbitrary pieces.
#[derive(Debug)]
pub struct MarkerScanner {
    marker: Vec<u8>,
    window: Vec<u8>,
    noise_head: Vec<u8>,
    noise_len: usize,
}

impl MarkerScanner {
    /// A scanner for the session whose nonce is `nonce`.
    pub fn new(nonce: &str) -> Self {
        Self {
            marker: marker_line(nonce).into_bytes(),
            window: Vec::new(),
            noise_head: Vec::new(),
            noise_len: 0,
        }
    }

    /// Feeds bytes; see [`Scan`].
    pub fn push(&mut self, bytes: &[u8]) -> Result<Scan, TooMuchNoise> {
        self.window.extend_from_slice(bytes);
        if let Some(pos) = find(&self.window, &self.marker) {
            let window = std::mem::take(&mut self.window);
            self.record_noise(&window[..pos]);
            return Ok(Scan::Found {
                rest: window[pos + self.marker.len()..].to_vec(),
            });
        }
        // Bytes that can no longer be the start of the marker are noise; the tail might be.
        let keep = self.marker.len().saturating_sub(1);
        if self.window.len() > keep {
            let noise: Vec<u8> = self.window.drain(..self.window.len() - keep).collect();
            self.record_noise(&noise);
        }
        if self.noise_len > MAX_NOISE {
            return Err(TooMuchNoise {
                noise_head: self.noise(),
            });
        }
        Ok(Scan::NeedMore)
    }

    fn record_noise(&mut self, bytes: &[u8]) {
        self.noise_len += bytes.len();
        let room = NOISE_KEPT.saturating_sub(self.noise_head.len());
        self.noise_head
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// The noise seen before the marker (its first few KiB), lossily decoded. Before the
    /// marker is found this includes the bytes held back in case they begin it.
    pub fn noise(&self) -> String {
        let mut all = self.noise_head.clone();
        all.extend_from_slice(
            &self.window[..self.window.len().min(NOISE_KEPT.saturating_sub(all.len()))],
        );
        String::from_utf8_lossy(&all).into_owned()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_banner_noise_and_returns_the_rest() {
        let mut s = MarkerScanner::new("abcdefgh12");
        assert_eq!(
            s.push(b"Welcome to host!\nWISP-START wrong\n").unwrap(),
            Scan::NeedMore
        );
        let got = s.push(b"motd\nWISP-START abcdefgh12\nWF\x00").unwrap();
        assert_eq!(
            got,
            Scan::Found {
                rest: b"WF\x00".to_vec()
            }
        );
        assert!(s.noise().starts_with("Welcome to host!"));
    }

    #[test]
    fn finds_a_marker_split_across_pushes() {
        let mut s = MarkerScanner::new("abcdefgh12");
        let all = b"noise WISP-START abcdefgh12\nrest";
        for cut in 0..all.len() {
            let mut s2 = MarkerScanner::new("abcdefgh12");
            let first = s2.push(&all[..cut]).unwrap();
            let found = match first {
                Scan::Found { mut rest } => {
                    rest.extend_from_slice(&all[cut..]);
                    rest
                }
                Scan::NeedMore => match s2.push(&all[cut..]).unwrap() {
                    Scan::Found { rest } => rest,
                    Scan::NeedMore => panic!("marker not found with cut at {cut}"),
                },
            };
            assert_eq!(found, b"rest", "cut at {cut}");
        }
        assert_eq!(s.push(b"").unwrap(), Scan::NeedMore);
    }

    #[test]
    fn gives_up_after_too_much_noise() {
        let mut s = MarkerScanner::new("abcdefgh12");
        let chunk = vec![b'y'; 64 * 1024];
        let mut result = Ok(Scan::NeedMore);
        for _ in 0..(MAX_NOISE / chunk.len() + 2) {
            result = s.push(&chunk);
            if result.is_err() {
                break;
            }
        }
        let err = result.unwrap_err();
        assert!(err.noise_head.starts_with("yyyy"));
    }

    #[test]
    fn nonce_rules() {
        assert!(valid_nonce("abcdefgh"));
        assert!(!valid_nonce("short"));
        assert!(!valid_nonce("has space in it"));
        assert!(!valid_nonce("quote'injection"));
    }
}
