//! Framing: bytes ↔ raw frames. No IO, no JSON parsing.
//!
//! A frame is a 10-byte header followed by two sections:
//!
//! ```text
//! "WF"  json_len:u32 big-endian  data_len:u32 big-endian  json[json_len]  data[data_len]
//! ```
//!
//! The JSON section is the message; the data section carries raw bytes (command output, stdin,
//! file contents) so large payloads move without base64's overhead. Both lengths are bounded
//! ([`MAX_JSON_LEN`], [`MAX_DATA_LEN`]): a peer can never make the other buffer more than one
//! bounded frame. An oversize frame is skipped without buffering it and reported once, so the
//! stream stays usable; a bad magic means the stream is out of step and cannot be recovered.

use std::fmt;

/// The two bytes that open every frame.
pub const MAGIC: [u8; 2] = *b"WF";
/// Length of the fixed frame header.
pub const HEADER_LEN: usize = 10;
/// Largest JSON section a peer may send (1 MiB).
pub const MAX_JSON_LEN: u32 = 1 << 20;
/// Largest data section a peer may send (8 MiB). Larger payloads are split across frames.
pub const MAX_DATA_LEN: u32 = 8 << 20;

/// One frame with its sections still as bytes.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct RawFrame {
    /// The JSON message, not yet parsed.
    pub json: Vec<u8>,
    /// The raw data section; empty when the frame has none.
    pub data: Vec<u8>,
}

impl fmt::Debug for RawFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawFrame")
            .field("json", &String::from_utf8_lossy(&self.json))
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// Why bytes could not be decoded into a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The stream does not start a frame where one must start. Unrecoverable: every later
    /// length would be read from the wrong place.
    BadMagic {
        /// The two bytes found instead of [`MAGIC`].
        found: [u8; 2],
    },
    /// The header announced sections larger than the limits. The decoder skips the announced
    /// bytes and carries on with the frame after it.
    Oversize {
        /// Announced JSON length.
        json_len: u32,
        /// Announced data length.
        data_len: u32,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BadMagic { found } => write!(
                f,
                "stream out of step: expected frame magic \"WF\", found {:?}",
                String::from_utf8_lossy(found)
            ),
            DecodeError::Oversize { json_len, data_len } => write!(
                f,
                "oversize frame: json {json_len} bytes (max {MAX_JSON_LEN}), data {data_len} bytes (max {MAX_DATA_LEN})"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a frame could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    /// Length of the JSON section.
    pub json_len: usize,
    /// Length of the data section.
    pub data_len: usize,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "frame too large to send: json {} bytes (max {MAX_JSON_LEN}), data {} bytes (max {MAX_DATA_LEN})",
            self.json_len, self.data_len
        )
    }
}

impl std::error::Error for EncodeError {}

/// Appends one encoded frame to `out`.
pub fn encode(json: &[u8], data: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let too_big = || EncodeError {
        json_len: json.len(),
        data_len: data.len(),
    };
    let json_len = u32::try_from(json.len()).map_err(|_| too_big())?;
    let data_len = u32::try_from(data.len()).map_err(|_| too_big())?;
    if json_len > MAX_JSON_LEN || data_len > MAX_DATA_LEN {
        return Err(too_big());
    }
    out.reserve(HEADER_LEN + json.len() + data.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&json_len.to_be_bytes());
    out.extend_from_slice(&data_len.to_be_bytes());
    out.extend_from_slice(json);
    out.extend_from_slice(data);
    Ok(())
}

/// Incremental decoder: feed it bytes as they arrive, take frames out as they complete.
///
/// "Not enough bytes yet" is `Ok(None)`, not an error. The internal buffer never holds more
/// than one bounded frame plus whatever the caller pushed since the last [`Self::next_frame`].
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes of an oversize frame still to discard as they arrive.
    skip: u64,
    poisoned: Option<[u8; 2]>,
}

impl FrameDecoder {
    /// A decoder at the start of a frame.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes read from the peer.
    pub fn push(&mut self, mut bytes: &[u8]) {
        if self.poisoned.is_some() {
            return;
        }
        if self.skip > 0 {
            let n = usize::try_from(self.skip)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            self.skip -= n as u64;
            bytes = bytes.get(n..).unwrap_or_default();
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Takes the next complete frame, if there is one.
    pub fn next_frame(&mut self) -> Result<Option<RawFrame>, DecodeError> {
        if let Some(found) = self.poisoned {
            return Err(DecodeError::BadMagic { found });
        }
        let Some(header) = self.buf.get(..HEADER_LEN) else {
            return self.check_partial_magic();
        };
        let found = [header[0], header[1]];
        if found != MAGIC {
            self.poisoned = Some(found);
            self.buf = Vec::new();
            return Err(DecodeError::BadMagic { found });
        }
        let json_len = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
        let data_len = u32::from_be_bytes([header[6], header[7], header[8], header[9]]);
        if json_len > MAX_JSON_LEN || data_len > MAX_DATA_LEN {
            let announced = u64::from(json_len) + u64::from(data_len);
            let buffered = (self.buf.len() - HEADER_LEN) as u64;
            let drop_now = usize::try_from(announced.min(buffered)).unwrap_or(usize::MAX);
            self.buf.drain(..HEADER_LEN + drop_now);
            self.skip = announced - drop_now as u64;
            return Err(DecodeError::Oversize { json_len, data_len });
        }
        let (json_len, data_len) = (json_len as usize, data_len as usize);
        let total = HEADER_LEN + json_len + data_len;
        if self.buf.len() < total {
            return Ok(None);
        }
        let data = self.buf[HEADER_LEN + json_len..total].to_vec();
        let json = self.buf[HEADER_LEN..HEADER_LEN + json_len].to_vec();
        self.buf.drain(..total);
        Ok(Some(RawFrame { json, data }))
    }

    /// Fails fast on a wrong first byte instead of waiting for a whole header that may never
    /// come (a peer printing one stray character would otherwise look like a slow frame).
    fn check_partial_magic(&mut self) -> Result<Option<RawFrame>, DecodeError> {
        for (i, b) in self.buf.iter().take(2).enumerate() {
            if *b != MAGIC[i] {
                let mut found = [0u8; 2];
                found[..self.buf.len().min(2)].copy_from_slice(&self.buf[..self.buf.len().min(2)]);
                self.poisoned = Some(found);
                self.buf = Vec::new();
                return Err(DecodeError::BadMagic { found });
            }
        }
        Ok(None)
    }

    /// True when bytes of an unfinished frame are buffered: an EOF now truncates a frame.
    pub fn is_mid_frame(&self) -> bool {
        !self.buf.is_empty() || self.skip > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(json: &str, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(json.as_bytes(), data, &mut out).unwrap();
        out
    }

    #[test]
    fn decodes_byte_by_byte() {
        let bytes = frame(r#"{"t":"exit"}"#, b"raw\x00bytes");
        let mut dec = FrameDecoder::new();
        let mut got = Vec::new();
        for b in &bytes {
            dec.push(std::slice::from_ref(b));
            if let Some(f) = dec.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].json, br#"{"t":"exit"}"#);
        assert_eq!(got[0].data, b"raw\x00bytes");
        assert!(!dec.is_mid_frame());
    }

    #[test]
    fn oversize_frame_is_skipped_and_the_next_one_decodes() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&(MAX_JSON_LEN + 1).to_be_bytes());
        bytes.extend_from_slice(&0u32.to_be_bytes());
        bytes.extend(std::iter::repeat_n(b'x', MAX_JSON_LEN as usize + 1));
        bytes.extend(frame(r#"{"t":"exit"}"#, b""));
        let mut dec = FrameDecoder::new();
        // Deliver in chunks so the skip spans several pushes.
        let mut results = Vec::new();
        for chunk in bytes.chunks(4096) {
            dec.push(chunk);
            loop {
                match dec.next_frame() {
                    Ok(Some(f)) => results.push(Ok(f)),
                    Ok(None) => break,
                    Err(e) => results.push(Err(e)),
                }
            }
        }
        assert_eq!(results.len(), 2, "{results:?}");
        assert_eq!(
            results[0],
            Err(DecodeError::Oversize {
                json_len: MAX_JSON_LEN + 1,
                data_len: 0
            })
        );
        assert_eq!(results[1].as_ref().unwrap().json, br#"{"t":"exit"}"#);
    }

    #[test]
    fn bad_magic_poisons_the_stream() {
        let mut dec = FrameDecoder::new();
        dec.push(b"hello\n");
        assert_eq!(
            dec.next_frame(),
            Err(DecodeError::BadMagic { found: *b"he" })
        );
        dec.push(&frame("{}", b""));
        assert!(matches!(
            dec.next_frame(),
            Err(DecodeError::BadMagic { .. })
        ));
    }

    #[test]
    fn a_single_wrong_byte_is_reported_without_waiting_for_a_header() {
        let mut dec = FrameDecoder::new();
        dec.push(b"x");
        assert!(matches!(
            dec.next_frame(),
            Err(DecodeError::BadMagic { .. })
        ));
    }

    #[test]
    fn encode_refuses_oversize() {
        let big = vec![0u8; MAX_DATA_LEN as usize + 1];
        assert!(encode(b"{}", &big, &mut Vec::new()).is_err());
    }
}
