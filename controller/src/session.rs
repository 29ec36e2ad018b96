//! One conversation with one runner: HELLO, then commands, then EXIT.
//!
//! A reader task turns the runner's stream into a channel of frames so that waiting for a
//! frame can be raced against Ctrl-C; every other step is a plain method call.

use std::time::Duration;

use tokio::sync::mpsc;
use wisp_protocol::PROTOCOL_VERSION;
use wisp_protocol::frame::MAX_DATA_LEN;
use wisp_protocol::message::{
    Cancel, Cmd, DataFrame, Done, ErrorFrame, EventKind, Exit, Frame, Hello, Limits, Message, Ready,
};
use wisp_protocol::ops::Op;
use wisp_transports::{ConnError, FrameWriter, Launch, RunnerHandle, Transport, TransportError};

/// Frames buffered between the reader task and the session.
const FRAME_QUEUE: usize = 64;

/// The part of a `content_file` read and sent at a time. Each host holds a few parts in
/// flight (the part, its frame, the SSH layer's copy), so this, not the file's size, is what a
/// large file costs per host.
const STREAM_PART: usize = 1 << 20;

/// What happened to a command, one step at a time.
#[derive(Debug)]
pub enum CmdEvent {
    /// A chunk of output.
    Output(EventKind, Vec<u8>),
    /// The command finished: DONE and its data section (a file op's previous content, for a diff).
    Done(Box<Done>, Vec<u8>),
    /// The runner refused or could not run the command.
    Refused(ErrorFrame),
}

/// The session broke while a command was in flight.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The stream failed or carried something that is not a frame.
    #[error("connection to the runner broke")]
    Conn(#[source] ConnError),
    /// The stream ended before the command finished.
    #[error("the runner went away before the command finished")]
    Closed,
    /// The runner reported a session-level error.
    #[error("runner error {:?}: {}", .0.code, .0.message)]
    Runner(ErrorFrame),
    /// A data section larger than one frame, for an op that cannot take it in parts.
    #[error("{0}")]
    TooLarge(String),
    /// The runner sent what the protocol forbids it (a second READY, an answer for a command
    /// never sent): nothing more it says can be trusted.
    #[error("the runner broke the protocol: {0}; nothing more it says is trusted")]
    Protocol(String),
    /// A `content_file` could not be read, or is no longer what the plan read.
    #[error("{0}")]
    Content(String),
}

/// A started runner, greeted with HELLO.
#[derive(Debug)]
pub struct Session {
    ready: Ready,
    host_key: String,
    writer: FrameWriter,
    frames: mpsc::Receiver<Result<Frame, ConnError>>,
    handle: Box<dyn RunnerHandle>,
    next_id: u64,
}

impl Session {
    /// Starts the runner through `transport` and greets it.
    pub async fn open(transport: &dyn Transport, launch: &Launch) -> Result<Self, TransportError> {
        let conn = transport.start(launch).await?;
        let (tx, frames) = mpsc::channel(FRAME_QUEUE);
        let mut reader = conn.reader;
        tokio::spawn(async move {
            loop {
                let item = match reader.next().await {
                    Ok(Some(frame)) => Ok(frame),
                    Ok(None) => return,
                    Err(e) => Err(e),
                };
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    return;
                }
            }
        });
        let mut session = Session {
            ready: conn.ready,
            host_key: conn.host_key,
            writer: conn.writer,
            frames,
            handle: conn.handle,
            next_id: 0,
        };
        let hello = Frame::new(Message::Hello(Hello {
            version: PROTOCOL_VERSION,
        }));
        if let Err(e) = session.writer.send(&hello).await {
            return Err(TransportError::Handshake {
                detail: format!("cannot send HELLO: {e}"),
            });
        }
        Ok(session)
    }

    /// What identifies the host itself (its accepted SSH host key, or the machine id), as the
    /// transport reported it.
    pub fn host_key(&self) -> &str {
        &self.host_key
    }

    /// What the facts cache is keyed by, not the host's name: the host key and the machine
    /// id the runner read (hosts cloned from one image share the first, not the second).
    pub fn facts_key(&self) -> String {
        if self.ready.machine_id.is_empty() {
            self.host_key.clone()
        } else {
            format!("{} machine-id {}", self.host_key, self.ready.machine_id)
        }
    }

    /// What the runner said about itself and the host.
    pub fn ready(&self) -> &Ready {
        &self.ready
    }

    /// Sends a command; returns its id. A `file.write` whose content is larger than one
    /// frame's data section announces its `size` and sends the rest in DATA frames.
    pub async fn start(
        &mut self,
        op: &Op,
        limits: Limits,
        data: &[u8],
    ) -> Result<String, SessionError> {
        let chunk = MAX_DATA_LEN as usize;
        let mut op = std::borrow::Cow::Borrowed(op);
        // The content stays where it is (one copy for every host); only the frame being sent
        // is copied, one chunk at a time.
        let (first, rest) = data.split_at(data.len().min(chunk));
        if !rest.is_empty() {
            let Op::FileWrite(args) = op.to_mut() else {
                return Err(SessionError::TooLarge(format!(
                    "{} takes at most {chunk} bytes of input",
                    op.name()
                )));
            };
            args.size = Some(data.len() as u64);
        }
        self.next_id += 1;
        let id = format!("c{}", self.next_id);
        let cmd = Cmd {
            id: id.clone(),
            op: op.name().into(),
            args: op.args(),
            limits,
        };
        let frame = Frame {
            message: Message::Cmd(cmd),
            data: first.to_vec(),
        };
        self.writer.send(&frame).await.map_err(SessionError::Conn)?;
        for part in rest.chunks(chunk) {
            let frame = Frame {
                message: Message::Data(DataFrame { id: id.clone() }),
                data: part.to_vec(),
            };
            self.writer.send(&frame).await.map_err(SessionError::Conn)?;
        }
        Ok(id)
    }

    /// Starts a `file.write` whose content is `file`, read from disk one frame at a time as
    /// it is sent, so memory stays flat whatever its size. Before the last part goes, the
    /// bytes sent are checked against the size and SHA-256 the plan recorded: a file changed
    /// in the meantime is cancelled, and the runner writes nothing.
    pub async fn start_file(
        &mut self,
        op: &Op,
        limits: Limits,
        file: &wisp_plan::FileAt,
    ) -> Result<String, SessionError> {
        use sha2::Digest;
        let shown = file.path.display();
        let unreadable =
            |e: std::io::Error| SessionError::Content(format!("cannot read {shown}: {e}"));
        let changed = || {
            SessionError::Content(format!(
                "{shown} changed since the plan was read; nothing was written"
            ))
        };
        let mut chunk = MAX_DATA_LEN as usize;
        let mut f = std::fs::File::open(&file.path).map_err(unreadable)?;
        let mut op = std::borrow::Cow::Borrowed(op);
        if let Op::FileWrite(args) = op.to_mut() {
            if file.len > STREAM_PART as u64 {
                args.size = Some(file.len);
                chunk = STREAM_PART;
            }
        } else if file.len > chunk as u64 {
            return Err(SessionError::TooLarge(format!(
                "{} takes at most {chunk} bytes of input",
                op.name()
            )));
        }
        let mut hasher = sha2::Sha256::new();
        let mut sent = 0u64;
        let mut id: Option<String> = None;
        loop {
            let part = read_part(&mut f, chunk).map_err(unreadable)?;
            sent += part.len() as u64;
            hasher.update(&part);
            let last = sent >= file.len || part.is_empty();
            if last {
                let more = read_part(&mut f, 1).map_err(unreadable)?;
                let sum = data_encoding::HEXLOWER.encode(&hasher.clone().finalize());
                if sent != file.len || !more.is_empty() || sum != file.sha256 {
                    if let Some(id) = &id {
                        let _ = self.cancel(id).await;
                    }
                    return Err(changed());
                }
            }
            match &id {
                None => {
                    self.next_id += 1;
                    let new = format!("c{}", self.next_id);
                    let cmd = Cmd {
                        id: new.clone(),
                        op: op.name().into(),
                        args: op.args(),
                        limits: limits.clone(),
                    };
                    let frame = Frame {
                        message: Message::Cmd(cmd),
                        data: part,
                    };
                    self.writer.send(&frame).await.map_err(SessionError::Conn)?;
                    id = Some(new);
                }
                Some(id) => {
                    let frame = Frame {
                        message: Message::Data(DataFrame { id: id.clone() }),
                        data: part,
                    };
                    self.writer.send(&frame).await.map_err(SessionError::Conn)?;
                }
            }
            if last {
                return id.ok_or_else(changed);
            }
        }
    }

    /// True for the id of a command this session sent (`c1` up to the last one).
    fn issued(&self, id: &str) -> bool {
        id.strip_prefix('c')
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| (1..=self.next_id).contains(&n))
    }

    /// The next thing that happens to command `id`.
    pub async fn next_for(&mut self, id: &str) -> Result<CmdEvent, SessionError> {
        loop {
            let frame = match self.frames.recv().await {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return Err(SessionError::Conn(e)),
                None => return Err(SessionError::Closed),
            };
            match frame.message {
                Message::Event(e) if e.id == id => match e.kind {
                    EventKind::Stdout | EventKind::Stderr => {
                        return Ok(CmdEvent::Output(e.kind, frame.data));
                    }
                    EventKind::Log => {}
                },
                Message::Done(d) if d.id == id => {
                    return Ok(CmdEvent::Done(Box::new(d), frame.data));
                }
                Message::Error(e) if e.id.as_deref() == Some(id) => {
                    return Ok(CmdEvent::Refused(e));
                }
                Message::Error(e) if e.id.is_none() => return Err(SessionError::Runner(e)),
                Message::Exit(_) => return Err(SessionError::Closed),
                Message::Ready(_) => {
                    return Err(SessionError::Protocol("a second READY".into()));
                }
                Message::Event(e) if !self.issued(&e.id) => {
                    return Err(SessionError::Protocol(format!(
                        "an EVENT for {:?}, a command never sent",
                        e.id
                    )));
                }
                Message::Done(d) if !self.issued(&d.id) => {
                    return Err(SessionError::Protocol(format!(
                        "a DONE for {:?}, a command never sent",
                        d.id
                    )));
                }
                // Late frames of an earlier command (after its DONE) concern nothing running.
                Message::Event(_) | Message::Done(_) | Message::Error(_) => {}
                Message::Hello(_) | Message::Cmd(_) | Message::Cancel(_) | Message::Data(_) => {
                    return Err(SessionError::Protocol(
                        "a frame only the controller sends".into(),
                    ));
                }
            }
        }
    }

    /// Asks the runner to stop command `id`; its DONE (status `cancelled`) follows.
    pub async fn cancel(&mut self, id: &str) -> Result<(), SessionError> {
        let frame = Frame::new(Message::Cancel(Cancel { id: id.into() }));
        self.writer.send(&frame).await.map_err(SessionError::Conn)
    }

    /// Clean shutdown: EXIT, wait for the runner's EXIT (bounded by `grace`), then for the
    /// process. Returns how the runner ended.
    pub async fn close(mut self, grace: Duration) -> String {
        let _ = self
            .writer
            .send(&Frame::new(Message::Exit(Exit::default())))
            .await;
        let drained = tokio::time::timeout(grace, async {
            while let Some(Ok(frame)) = self.frames.recv().await {
                if matches!(frame.message, Message::Exit(_)) {
                    break;
                }
            }
        })
        .await;
        self.writer.close().await;
        match tokio::time::timeout(grace, self.handle.wait()).await {
            Ok(how) if drained.is_ok() => how,
            Ok(how) => format!("{how} (no EXIT frame within {grace:?})"),
            Err(_) => format!("runner still running {grace:?} after EXIT; its stdin is closed"),
        }
    }

    /// Cuts the stream without waiting: the runner sees EOF, kills its commands and exits.
    pub async fn disconnect(mut self) {
        self.writer.close().await;
    }

    /// Whether the runner's stream is still open (it has not ended or broken).
    pub fn is_alive(&self) -> bool {
        !self.frames.is_closed()
    }

    /// The runner's stderr so far, for error messages.
    pub fn diagnostics(&self) -> String {
        self.handle.diagnostics()
    }
}

/// Up to `max` bytes from `f` (fewer only at its end).
fn read_part(f: &mut std::fs::File, max: usize) -> std::io::Result<Vec<u8>> {
    let mut part = Vec::with_capacity(max);
    std::io::Read::read_to_end(&mut std::io::Read::take(f, max as u64), &mut part)?;
    Ok(part)
}
