//! The way to a host: TCP (or a `ProxyCommand`) to the first hop, then each `ProxyJump` hop
//! tunnelled through the one before. Jump hosts are shared: every host of the run behind the
//! same jump hosts gets a channel over one session to them, and a jump session carries at most
//! [`CHANNELS_PER_JUMP`] hosts at once (OpenSSH's default `MaxSessions`) before another is
//! opened, so 40 hosts behind one bastion cost the bastion four logins, not forty: the
//! bastion's `MaxStartups` is not spent on them.

use std::sync::Weak;

use super::channel::keep_tail;
use super::*;

/// The most hosts one jump session carries at once.
pub(super) const CHANNELS_PER_JUMP: usize = 10;

/// One session to a jump host, shared by the hosts tunnelled through it.
pub(super) struct JumpConn {
    handle: Handle<HostKeyCheck>,
}

/// A host's hold on a shared jump session; the session closes when the last hold ends.
pub(super) struct JumpLease {
    conn: Arc<JumpConn>,
}

/// The jump sessions of a run, by the way to them (`user@a:22 > user@b:22`).
pub(super) type JumpPool = Mutex<HashMap<String, Arc<tokio::sync::Mutex<Vec<Weak<JumpConn>>>>>>;

impl SshTransport {
    /// The sessions to `hops` in turn: the jump hosts' shared ones, then the target's own,
    /// with the target's host key.
    pub(super) async fn connect_chain(
        &self,
        hops: &[Hop],
    ) -> Result<(Vec<JumpLease>, Handle<HostKeyCheck>, String), TransportError> {
        let Some(last) = hops.len().checked_sub(1) else {
            return Err(TransportError::Handshake {
                detail: "no host to connect to".into(),
            });
        };
        let mut jumps: Vec<JumpLease> = Vec::new();
        for i in 0..last {
            let lease = self.jump(hops, i, jumps.last()).await?;
            jumps.push(lease);
        }
        let via = jumps.last().map(|l| &l.conn.handle);
        let (session, key) = self.open_hop(hops, last, via).await?;
        Ok((jumps, session, key))
    }

    /// A hold on a session to jump host `hops[i]`, shared with every host of the run whose
    /// way goes through the same hops; a new one when each open one carries
    /// [`CHANNELS_PER_JUMP`] hosts, or none is open.
    async fn jump(
        &self,
        hops: &[Hop],
        i: usize,
        via: Option<&JumpLease>,
    ) -> Result<JumpLease, TransportError> {
        let key = hops[..=i]
            .iter()
            .map(Hop::label)
            .collect::<Vec<_>>()
            .join(" > ");
        let slot = match self.options.jumps.lock() {
            Ok(mut pool) => Arc::clone(pool.entry(key).or_default()),
            Err(_) => Arc::default(),
        };
        // One host at a time opens or picks a session for this way: the rest wait, then share.
        let mut conns = slot.lock().await;
        conns.retain(|w| w.strong_count() > 0);
        for conn in conns.iter().filter_map(Weak::upgrade) {
            // Held by its leases and by `conn` here.
            if !conn.handle.is_closed() && Arc::strong_count(&conn) <= CHANNELS_PER_JUMP {
                return Ok(JumpLease { conn });
            }
        }
        let (handle, _) = self.open_hop(hops, i, via.map(|l| &l.conn.handle)).await?;
        let conn = Arc::new(JumpConn { handle });
        conns.push(Arc::downgrade(&conn));
        Ok(JumpLease { conn })
    }

    /// An authenticated session to `hops[i]`: through `via` (the previous hop's session),
    /// else over its `ProxyCommand`, else over TCP.
    async fn open_hop(
        &self,
        hops: &[Hop],
        i: usize,
        via: Option<&Handle<HostKeyCheck>>,
    ) -> Result<(Handle<HostKeyCheck>, String), TransportError> {
        let hop = &hops[i];
        let Some(previous) = via else {
            return match &hop.proxy_command {
                Some(command) => {
                    let (stream, said) = ProxyStream::spawn(command, hop)?;
                    let result = self.connect_hop(hop, stream).await;
                    if result.is_ok() {
                        return result;
                    }
                    // What the command printed on its way out belongs to the message.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let said = said
                        .lock()
                        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
                        .unwrap_or_default();
                    let said = if said.is_empty() {
                        String::new()
                    } else {
                        format!("; it said: {said}")
                    };
                    let more = |detail: String| {
                        format!("{detail} (through ProxyCommand {command:?}{said})")
                    };
                    result.map_err(|e| match e {
                        TransportError::Handshake { detail } => TransportError::Handshake {
                            detail: more(detail),
                        },
                        TransportError::Dropped { detail } => TransportError::Dropped {
                            detail: more(detail),
                        },
                        other => other,
                    })
                }
                None => {
                    let tcp = tcp_to(hop).await?;
                    self.connect_hop(hop, tcp).await
                }
            };
        };
        let jump = &hops[i - 1];
        let tunnel = previous
            .channel_open_direct_tcpip(hop.host.as_str(), u32::from(hop.port), "127.0.0.1", 0)
            .await
            .map_err(|e| TransportError::Handshake {
                detail: format!(
                    "jump host {} could not reach {}:{}: {e}",
                    jump.label(),
                    hop.host,
                    hop.port
                ),
            })?;
        self.connect_hop(hop, tunnel.into_stream())
            .await
            .map_err(|e| match e {
                TransportError::Handshake { detail } => TransportError::Handshake {
                    detail: format!("{detail} (via {})", jump.label()),
                },
                other => other,
            })
    }
}

/// The TCP connection to the first hop, within its `ConnectTimeout` when it has one.
async fn tcp_to(hop: &Hop) -> Result<tokio::net::TcpStream, TransportError> {
    let connect = tokio::net::TcpStream::connect((hop.host.as_str(), hop.port));
    let tcp = match hop.tcp_timeout {
        Some(limit) => tokio::time::timeout(limit, connect)
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within ConnectTimeout {limit:?}"),
                ))
            }),
        None => connect.await,
    }
    .map_err(|source| TransportError::Spawn {
        program: format!("TCP connection to {}:{}", hop.host, hop.port),
        source,
    })?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// The tail of what a `ProxyCommand` printed on stderr.
type Said = Arc<Mutex<Vec<u8>>>;

/// A `ProxyCommand` as the connection: `sh -c COMMAND`, its stdout read and its stdin
/// written; the command is killed when the connection is dropped.
struct ProxyStream {
    io: tokio::io::Join<tokio::process::ChildStdout, tokio::process::ChildStdin>,
    _child: tokio::process::Child,
}

impl ProxyStream {
    /// The command running, and the tail of what it prints on stderr (kept for messages).
    fn spawn(command: &str, hop: &Hop) -> Result<(Self, Said), TransportError> {
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", command])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| TransportError::Spawn {
                program: format!("ProxyCommand {command:?} for {}", hop.label()),
                source,
            })?;
        let (Some(out), Some(input), Some(mut err)) =
            (child.stdout.take(), child.stdin.take(), child.stderr.take())
        else {
            return Err(TransportError::Handshake {
                detail: format!("ProxyCommand {command:?}: no pipes to it"),
            });
        };
        let said = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&said);
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = AsyncReadExt::read(&mut err, &mut buf).await {
                if n == 0 {
                    break;
                }
                keep_tail(&kept, &buf[..n]);
            }
        });
        let stream = ProxyStream {
            io: tokio::io::join(out, input),
            _child: child,
        };
        Ok((stream, said))
    }
}

impl AsyncRead for ProxyStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for ProxyStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
