//! The channel that carries the runner: the bootstrap's exec request, the upload, READY,
//! and the handle that waits for the session's end.

use super::*;

impl SshTransport {
    pub(super) async fn start_runner(
        &self,
        launch: &Launch,
    ) -> Result<RunnerConnection, TransportError> {
        let hops = self.hops()?;
        // The payload for the likely architecture is made (compressed, in the background)
        // while this host's handshake runs.
        let guess = self.options.arch_guess(&launch.runners);
        if let Ok(runner) = launch.runners.for_arch(&guess) {
            self.options.payload(runner);
        }
        let (jumps, session, host_key) = self.connect_chain(&hops).await?;
        let Some(hop) = hops.last() else {
            return Err(TransportError::Handshake {
                detail: "no host to connect to".into(),
            });
        };

        let channel = session
            .channel_open_session()
            .await
            .map_err(|e| ssh_error(hop, e))?;
        let start_mode = self.options.start_mode(&self.target);
        let command = bootstrap::command(&launch.nonce, launch.ttl.as_secs().max(1), start_mode);
        channel
            .exec(true, command)
            .await
            .map_err(|e| ssh_error(hop, e))?;
        let (read_half, write_half) = channel.split();
        let (handle, stdout_rx) = SshHandle::pumping(jumps, session, read_half);
        let mut stdout: Box<dyn AsyncRead + Send + Unpin> = Box::new(stdout_rx);
        let mut writer = write_half.make_writer();
        // The script goes first: the exec request only tells `sh` how much of it to read.
        writer
            .write_all(bootstrap::script())
            .await
            .map_err(|e| handle.failure(format!("sending the bootstrap failed: {e}")))?;
        let ready = self
            .bootstrap(&mut stdout, &mut writer, launch, &guess, start_mode)
            .await;
        let (reader, ready) = ready.map_err(|e| handle.failure(e))?;
        Ok(RunnerConnection {
            ready,
            reader,
            writer: FrameWriter::new(Box::new(writer)),
            handle: Box::new(handle),
            host_key: format!("ssh {host_key}"),
        })
    }

    /// Speaks the bootstrap on a started channel: the speculative upload, the host's
    /// `WISP-ARCH` answer, the upload it asks for when the guess was wrong, then READY.
    async fn bootstrap(
        &self,
        stdout: &mut Box<dyn AsyncRead + Send + Unpin>,
        writer: &mut (impl tokio::io::AsyncWrite + Unpin),
        launch: &Launch,
        guess: &str,
        start_mode: bootstrap::Become,
    ) -> Result<(FrameReader, wisp_protocol::message::Ready), String> {
        // Compressed whenever the host can decompress: it says so, and gets it raw, when not.
        let encoding = bootstrap::Encoding::Gzip;
        self.upload(writer, launch, guess, encoding, start_mode)
            .await?;
        let (line, rest) = match read_arch_line(stdout, &launch.nonce).await {
            Ok(found) => found,
            Err(e) => {
                // Let the pump collect the bootstrap's stderr and exit status.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Err(e);
            }
        };
        let Some(said) = bootstrap::HostSaid::parse(&line) else {
            return Err(format!(
                "the bootstrap said {line:?}, which wisp does not know"
            ));
        };
        if let Ok(mut seen) = self.options.arch_seen.lock() {
            *seen = Some(said.arch.clone());
        }
        if !said.took {
            let encoding = if said.gzip {
                encoding
            } else {
                bootstrap::Encoding::Raw
            };
            self.upload(writer, launch, &said.arch, encoding, start_mode)
                .await?;
        }
        let taken = std::mem::replace(stdout, Box::new(tokio::io::empty()));
        let stdout = Box::new(std::io::Cursor::new(rest).chain(taken));
        match FrameReader::until_ready(stdout, &launch.nonce).await {
            Ok(pair) => Ok(pair),
            Err(e) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(format!("runner did not start: {e}"))
            }
        }
    }

    /// Sends one header and upload: the runner for `arch` in `encoding` (and the sudo
    /// password line after it, when there is one).
    pub(super) async fn upload(
        &self,
        writer: &mut (impl tokio::io::AsyncWrite + Unpin),
        launch: &Launch,
        arch: &str,
        encoding: bootstrap::Encoding,
        start_mode: bootstrap::Become,
    ) -> Result<(), String> {
        let runner = launch.runners.for_arch(arch).map_err(|e| e.to_string())?;
        let payload = self.options.payload(runner);
        let corrupt = corrupt_upload();
        let owned;
        let bytes = if corrupt {
            owned = payload.corrupted(encoding);
            owned.as_slice()
        } else {
            payload.bytes(encoding)
        };
        let header = bootstrap::header(
            arch,
            encoding,
            bytes.len(),
            &payload.sha256,
            payload.raw_len(),
        );
        let sent = async {
            writer.write_all(header.as_bytes()).await?;
            writer.write_all(bytes).await?;
            if let (
                bootstrap::Become::SudoWithPassword | bootstrap::Become::SuWithPassword,
                Some(pw),
            ) = (start_mode, &self.options.become_password)
            {
                let line = format!("{}\n", pw.expose());
                for _ in 0..bootstrap::PASSWORD_LINES {
                    writer.write_all(line.as_bytes()).await?;
                }
            }
            writer.flush().await
        };
        sent.await
            .map_err(|e| format!("uploading the runner failed: {e}"))
    }
}

pub(super) fn keep_tail(buf: &Mutex<Vec<u8>>, data: &[u8]) {
    if let Ok(mut b) = buf.lock() {
        b.extend_from_slice(data);
        let excess = b.len().saturating_sub(STDERR_KEPT);
        b.drain(..excess);
    }
}

/// Reads up to the bootstrap's `WISP-ARCH <nonce> ...` line; returns the rest of the line after
/// the nonce and the bytes that followed the line.
async fn read_arch_line(
    stdout: &mut (dyn AsyncRead + Send + Unpin),
    nonce: &str,
) -> Result<(String, Vec<u8>), String> {
    let prefix = format!("WISP-ARCH {nonce} ");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(start) = seen
            .windows(prefix.len())
            .position(|w| w == prefix.as_bytes())
            && let Some(end) = seen[start..].iter().position(|b| *b == b'\n')
        {
            let line = String::from_utf8_lossy(&seen[start + prefix.len()..start + end])
                .trim()
                .to_owned();
            return Ok((line, seen[start + end + 1..].to_vec()));
        }
        if seen.len() > MAX_NOISE {
            return Err(format!(
                "no bootstrap line in the first {MAX_NOISE} bytes of output"
            ));
        }
        let n = stdout
            .read(&mut buf)
            .await
            .map_err(|e| format!("reading from the host failed: {e}"))?;
        if n == 0 {
            let noise = String::from_utf8_lossy(&seen).trim().to_owned();
            return Err(if noise.is_empty() {
                "the host closed the session before the bootstrap started".into()
            } else {
                format!(
                    "the host closed the session before the bootstrap started; it printed {noise:?}"
                )
            });
        }
        seen.extend_from_slice(&buf[..n]);
    }
}

/// An SSH session carrying one runner, with the jump sessions it is tunnelled through.
struct SshHandle {
    /// The jump hosts' shared sessions, held while this one lasts.
    _jumps: Vec<JumpLease>,
    /// The target's own session.
    session: Handle<HostKeyCheck>,
    pump: Option<tokio::task::JoinHandle<()>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    exit_status: Arc<Mutex<Option<u32>>>,
}

impl SshHandle {
    /// Starts the one task that owns the channel's incoming side: stdout to a pipe the
    /// framing reads (returned), stderr to a bounded buffer for messages, and the exit status.
    fn pumping(
        jumps: Vec<JumpLease>,
        session: Handle<HostKeyCheck>,
        mut read_half: russh::ChannelReadHalf,
    ) -> (Self, tokio::io::DuplexStream) {
        let (mut stdout_tx, stdout_rx) = tokio::io::duplex(256 * 1024);
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let exit_status = Arc::new(Mutex::new(None));
        let pump = {
            let (stderr, exit_status) = (Arc::clone(&stderr), Arc::clone(&exit_status));
            tokio::spawn(async move {
                let mut stdout_open = true;
                while let Some(msg) = read_half.wait().await {
                    match msg {
                        ChannelMsg::Data { data } if stdout_open => {
                            stdout_open = stdout_tx.write_all(&data).await.is_ok();
                        }
                        ChannelMsg::ExtendedData { data, ext: 1 } => keep_tail(&stderr, &data),
                        ChannelMsg::ExitStatus { exit_status: code } => {
                            if let Ok(mut e) = exit_status.lock() {
                                *e = Some(code);
                            }
                        }
                        ChannelMsg::Eof => {
                            stdout_open = false;
                            let _ = stdout_tx.shutdown().await;
                        }
                        ChannelMsg::Close => break,
                        _ => {}
                    }
                }
                let _ = stdout_tx.shutdown().await;
            })
        };
        let handle = SshHandle {
            _jumps: jumps,
            session,
            pump: Some(pump),
            stderr,
            exit_status,
        };
        (handle, stdout_rx)
    }

    /// A failed bootstrap, with the exit status and what the host printed on stderr: the
    /// host could not start the runner when the bootstrap ended with a status of its own
    /// (64 to 68: it said why), else a handshake error (the session broke on the way).
    fn failure(&self, mut detail: String) -> TransportError {
        let diag = self.diagnostics();
        let code = self.exit_status.lock().ok().and_then(|e| *e);
        if let Some(code) = code {
            detail.push_str(&format!(" (bootstrap exit status {code})"));
        }
        if !diag.trim().is_empty() {
            detail.push_str(&format!("; host said: {}", diag.trim()));
        }
        match code {
            Some(64..=68) => TransportError::CouldNotStart { detail },
            _ => TransportError::Handshake { detail },
        }
    }
}

impl std::fmt::Debug for SshHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshHandle").finish_non_exhaustive()
    }
}

impl RunnerHandle for SshHandle {
    fn wait(&mut self) -> BoxFuture<'_, String> {
        Box::pin(async move {
            if let Some(pump) = self.pump.take() {
                let _ = pump.await;
            }
            // The jump sessions are shared: this host's lease on them ends with it.
            let _ = self
                .session
                .disconnect(russh::Disconnect::ByApplication, "", "en")
                .await;
            match self.exit_status.lock().ok().and_then(|e| *e) {
                Some(code) => format!("exit status: {code}"),
                None => "channel closed".into(),
            }
        })
    }

    fn diagnostics(&self) -> String {
        self.stderr
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}
