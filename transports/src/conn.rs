//! Frames over any byte stream: the controller's side of the wire, generic over the stream so
//! a local child's pipes and an SSH channel share it.
//!
//! [`FrameReader::until_ready`] skips login noise up to the session's marker and reads READY;
//! after that the stream is strictly framed.

use std::fmt;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use wisp_protocol::frame::{DecodeError, FrameDecoder};
use wisp_protocol::marker::{MarkerScanner, Scan, TooMuchNoise};
use wisp_protocol::message::{Frame, Message, MessageError, Ready};

/// Bytes read from the stream at a time.
const READ_CHUNK: usize = 64 * 1024;

/// The framed stream broke.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnError {
    /// Reading or writing the stream failed.
    #[error("connection to the runner failed")]
    Io(#[from] std::io::Error),
    /// The runner sent bytes that are not frames.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The runner sent a frame that is not a valid message.
    #[error("invalid frame from the runner: {0}")]
    Message(#[from] MessageError),
    /// The stream ended in the middle of a frame.
    #[error("stream ended in the middle of a frame")]
    Truncated,
    /// The start marker never came.
    #[error(transparent)]
    Noise(#[from] TooMuchNoise),
    /// The stream ended before the start marker.
    #[error("stream ended before the runner started; output was {noise:?}")]
    EndedBeforeMarker {
        /// What the stream carried instead.
        noise: String,
    },
    /// The first frame was not READY.
    #[error("expected READY as the first frame, got {0}")]
    NotReady(String),
    /// A frame could not be encoded.
    #[error(transparent)]
    Encode(#[from] wisp_protocol::frame::EncodeError),
}

/// Reads frames from the runner.
pub struct FrameReader {
    stream: Box<dyn AsyncRead + Send + Unpin>,
    decoder: FrameDecoder,
    buf: Vec<u8>,
}

impl fmt::Debug for FrameReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameReader")
            .field("decoder", &self.decoder)
            .finish_non_exhaustive()
    }
}

impl FrameReader {
    /// Skips everything up to the marker for `nonce`, then reads READY.
    pub async fn until_ready(
        mut stream: Box<dyn AsyncRead + Send + Unpin>,
        nonce: &str,
    ) -> Result<(Self, Ready), ConnError> {
        let mut scanner = MarkerScanner::new(nonce);
        let mut buf = vec![0u8; READ_CHUNK];
        let rest = loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(ConnError::EndedBeforeMarker {
                    noise: scanner.noise(),
                });
            }
            if let Scan::Found { rest } = scanner.push(&buf[..n])? {
                break rest;
            }
        };
        let mut decoder = FrameDecoder::new();
        decoder.push(&rest);
        let mut reader = Self {
            stream,
            decoder,
            buf,
        };
        match reader.next().await? {
            Some(Frame {
                message: Message::Ready(ready),
                ..
            }) => Ok((reader, ready)),
            Some(other) => Err(ConnError::NotReady(format!("{:?}", other.message))),
            None => Err(ConnError::NotReady("end of stream".into())),
        }
    }

    /// The next frame; `None` when the stream ends cleanly between frames.
    pub async fn next(&mut self) -> Result<Option<Frame>, ConnError> {
        loop {
            if let Some(raw) = self.decoder.next_frame()? {
                return Ok(Some(Frame::decode(raw)?));
            }
            let n = self.stream.read(&mut self.buf).await?;
            if n == 0 {
                return if self.decoder.is_mid_frame() {
                    Err(ConnError::Truncated)
                } else {
                    Ok(None)
                };
            }
            self.decoder.push(&self.buf[..n]);
        }
    }
}

/// Writes frames to the runner.
pub struct FrameWriter {
    stream: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    buf: Vec<u8>,
}

impl fmt::Debug for FrameWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameWriter")
            .field("open", &self.stream.is_some())
            .finish()
    }
}

impl FrameWriter {
    /// Wraps the stream that carries frames to the runner.
    pub fn new(stream: Box<dyn AsyncWrite + Send + Unpin>) -> Self {
        Self {
            stream: Some(stream),
            buf: Vec::new(),
        }
    }

    /// Sends one frame and flushes it.
    pub async fn send(&mut self, frame: &Frame) -> Result<(), ConnError> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(ConnError::Io(std::io::ErrorKind::BrokenPipe.into()));
        };
        self.buf.clear();
        frame.encode(&mut self.buf)?;
        stream.write_all(&self.buf).await?;
        stream.flush().await?;
        Ok(())
    }

    /// Closes the stream: the runner sees EOF, kills what it runs and exits.
    pub async fn close(&mut self) {
        if let Some(mut s) = self.stream.take() {
            let _ = s.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_protocol::message::{
        Capabilities, CgroupCap, Exit, LandlockCap, SeccompCap, VersionRange,
    };

    fn ready() -> Ready {
        Ready {
            protocol: VersionRange { min: 1, max: 1 },
            runner_version: "t".into(),
            arch: "x86_64".into(),
            kernel: "k".into(),
            uid: 0,
            euid: 0,
            pid: 1,
            ttl_s: 5,
            ops: vec![],
            machine_id: String::new(),
            caps: Capabilities {
                landlock: LandlockCap {
                    abi: None,
                    status: "not_built".into(),
                },
                seccomp: SeccompCap {
                    filter: false,
                    already_filtered: false,
                },
                cgroup: CgroupCap {
                    mode: "none".into(),
                    writable: false,
                    detail: String::new(),
                },
            },
        }
    }

    #[tokio::test]
    async fn reads_ready_behind_noise_then_frames_then_clean_eof() {
        let mut bytes = b"Last login: yesterday\nrc noise without newline".to_vec();
        bytes.extend_from_slice(b"WISP-START nonce1234\n");
        Frame::new(Message::Ready(ready()))
            .encode(&mut bytes)
            .unwrap();
        Frame::new(Message::Exit(Exit::default()))
            .encode(&mut bytes)
            .unwrap();
        let (mut r, got) =
            FrameReader::until_ready(Box::new(std::io::Cursor::new(bytes)), "nonce1234")
                .await
                .unwrap();
        assert_eq!(got, ready());
        assert!(matches!(
            r.next().await.unwrap().unwrap().message,
            Message::Exit(_)
        ));
        assert!(r.next().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn truncated_frame_is_an_error() {
        let mut bytes = b"WISP-START nonce1234\n".to_vec();
        Frame::new(Message::Ready(ready()))
            .encode(&mut bytes)
            .unwrap();
        let mut exit = Vec::new();
        Frame::new(Message::Exit(Exit::default()))
            .encode(&mut exit)
            .unwrap();
        bytes.extend_from_slice(&exit[..exit.len() - 1]);
        let (mut r, _) =
            FrameReader::until_ready(Box::new(std::io::Cursor::new(bytes)), "nonce1234")
                .await
                .unwrap();
        assert!(matches!(r.next().await, Err(ConnError::Truncated)));
    }

    #[tokio::test]
    async fn eof_before_marker_reports_the_noise() {
        let err = FrameReader::until_ready(
            Box::new(std::io::Cursor::new(b"sh: not found\n".to_vec())),
            "nonce1234",
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("sh: not found"), "{err}");
    }
}
