//! The SSH transport: russh client, strict host-key checking against OpenSSH `known_hosts`,
//! agent and key-file authentication, and the one-channel runner push (see [`bootstrap`]).
//!
//! Nothing SSH-specific leaves this module: the controller gets a [`RunnerConnection`] like
//! any transport's.

pub mod bootstrap;
pub mod config;
pub mod known_hosts;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bootstrap::Payload;
use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::address::HostAddress;
use crate::conn::{FrameReader, FrameWriter};
use crate::secret::Secret;
use crate::{BoxFuture, Launch, RunnerConnection, RunnerHandle, TransportError};

/// Environment variable holding the passphrase for encrypted key files.
pub const PASSPHRASE_ENV: &str = "WISP_SSH_PASSPHRASE";
/// Test hook: when set, the controller flips one byte of the runner after hashing it, so a
/// test can prove that the host refuses a corrupted upload. Only debug builds (the test
/// suite's) read it; a release build has no such hook.
pub const CORRUPT_UPLOAD_ENV: &str = "WISP_TEST_CORRUPT_UPLOAD";

/// Whether the test hook above asks for a corrupted upload (never in a release build).
#[cfg(debug_assertions)]
fn corrupt_upload() -> bool {
    std::env::var_os(CORRUPT_UPLOAD_ENV).is_some()
}

#[cfg(not(debug_assertions))]
fn corrupt_upload() -> bool {
    false
}
/// Bytes of the runner's (or bootstrap's) stderr kept for error messages.
const STDERR_KEPT: usize = 16 * 1024;
/// Bytes of login noise tolerated before the bootstrap's arch line.
const MAX_NOISE: usize = 64 * 1024;

/// A host as named by the operator. Unset fields come from `~/.ssh/config`, then defaults.
#[derive(Debug, Clone)]
pub struct SshTarget {
    /// The name as given (an ssh_config alias, a host name or an address).
    pub alias: String,
    /// The address to connect to, when the inventory gives one (`ansible_host`).
    pub host: Option<String>,
    /// The port, when given (`host:port`, `ansible_port`).
    pub port: Option<u16>,
    /// The login user, when given (`user@host`, `ansible_user`).
    pub user: Option<String>,
    /// A key file for this host alone (from the inventory), offered before the shared ones.
    pub key: Option<PathBuf>,
}

/// Settings shared by every SSH host of a run.
#[derive(Debug)]
pub struct SshOptions {
    /// Private key files to offer, in order, after the agent's keys.
    pub keys: Vec<PathBuf>,
    /// Offer the keys of the agent at `$SSH_AUTH_SOCK`.
    pub use_agent: bool,
    /// The `known_hosts` file to check against (and append to with `accept_new`).
    pub known_hosts: PathBuf,
    /// Trust and record keys of hosts not in `known_hosts` yet. Never overrides a changed key.
    pub accept_new: bool,
    /// Run the runner as root through `sudo -n`.
    pub become_root: bool,
    /// Login user for hosts that name none (`--user`), before ssh_config's `User`.
    pub default_user: Option<String>,
    /// `~/.ssh/config` (or none).
    pub ssh_config: config::SshConfig,
    /// Passphrases for encrypted key files, asked once before fan-out.
    pub passphrases: HashMap<PathBuf, Secret>,
    /// Password for password authentication (`--ask-pass`), tried after every key.
    pub password: Option<Secret>,
    /// sudo password (`--ask-become-pass`), sent inside the channel, never as an argument.
    pub become_password: Option<Secret>,
    /// Runner bytes and their SHA-256, read once per file for the whole fleet.
    payloads: Mutex<HashMap<PathBuf, Arc<Payload>>>,
    /// The architecture the last host of this run said it has: the first guess for the next.
    arch_seen: Mutex<Option<String>>,
}

impl SshOptions {
    /// Options with no payload cache filled yet.
    pub fn new(
        keys: Vec<PathBuf>,
        use_agent: bool,
        known_hosts: PathBuf,
        accept_new: bool,
        become_root: bool,
    ) -> Self {
        Self {
            keys,
            use_agent,
            known_hosts,
            accept_new,
            become_root,
            default_user: None,
            ssh_config: config::SshConfig::default(),
            passphrases: HashMap::new(),
            password: None,
            become_password: None,
            payloads: Mutex::new(HashMap::new()),
            arch_seen: Mutex::new(None),
        }
    }

    /// The architecture to upload for before the host has said: the last one a host of this
    /// run had, else the only one there is, else this machine's.
    fn arch_guess(&self, runners: &crate::RunnerBinaries) -> String {
        if let Some(seen) = self.arch_seen.lock().ok().and_then(|a| a.clone()) {
            return seen;
        }
        let arches = runners.arches();
        match arches.as_slice() {
            [only] => (*only).to_owned(),
            _ => std::env::consts::ARCH.to_owned(),
        }
    }

    fn payload(&self, runner: &crate::Runner) -> Arc<Payload> {
        let Ok(mut payloads) = self.payloads.lock() else {
            return Arc::new(Payload::new(Arc::clone(&runner.bytes)));
        };
        Arc::clone(
            payloads
                .entry(runner.path.clone())
                .or_insert_with(|| Arc::new(Payload::new(Arc::clone(&runner.bytes)))),
        )
    }
}

/// True when `path` is a private key that needs a passphrase.
pub fn is_encrypted_key(path: &Path) -> bool {
    matches!(
        russh::keys::load_secret_key(path, None),
        Err(russh::keys::Error::KeyIsEncrypted)
    )
}

/// Environment variable holding the password for `--ask-pass` when there is no terminal.
pub const PASSWORD_ENV: &str = "WISP_SSH_PASSWORD";
/// Environment variable holding the sudo password for `--ask-become-pass` without a terminal.
pub const BECOME_PASSWORD_ENV: &str = "WISP_BECOME_PASSWORD";

/// The user's default key files that exist, as OpenSSH would try them.
pub fn default_keys() -> Vec<PathBuf> {
    let Some(home) = std::env::var_os("HOME") else {
        return Vec::new();
    };
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|name| Path::new(&home).join(".ssh").join(name))
        .filter(|p| p.is_file())
        .collect()
}

/// `~/.ssh/known_hosts`.
pub fn default_known_hosts() -> PathBuf {
    std::env::var_os("HOME").map_or_else(
        || PathBuf::from(".ssh/known_hosts"),
        |h| Path::new(&h).join(".ssh/known_hosts"),
    )
}

/// One SSH host.
#[derive(Debug, Clone)]
pub struct SshTransport {
    target: SshTarget,
    options: Arc<SshOptions>,
}

impl SshTransport {
    /// A transport for `target` with the run's shared options.
    pub fn new(target: SshTarget, options: Arc<SshOptions>) -> Self {
        Self { target, options }
    }
}

impl crate::Transport for SshTransport {
    fn start<'a>(
        &'a self,
        launch: &'a Launch,
    ) -> BoxFuture<'a, Result<RunnerConnection, TransportError>> {
        Box::pin(async move {
            // The connect timeout bounds everything up to READY: TCP, key exchange,
            // authentication, upload and runner start. A host that never answers is bounded.
            // It starts once this host has a handshake slot: waiting for one is this
            // machine's queue, not the host's delay.
            let _slot =
                launch
                    .handshakes
                    .acquire()
                    .await
                    .map_err(|_| TransportError::Handshake {
                        detail: "the run is shutting down".into(),
                    })?;
            match tokio::time::timeout(launch.connect_timeout, self.start_runner(launch)).await {
                Ok(result) => result,
                Err(_) => Err(TransportError::Handshake {
                    detail: format!(
                        "{} did not get as far as a running runner within {:?} (--connect-timeout)",
                        self.target.alias, launch.connect_timeout
                    ),
                }),
            }
        })
    }
}

/// The host-key check russh calls during key exchange; records why it refused.
struct HostKeyCheck {
    hop: Hop,
    options: Arc<SshOptions>,
    refusal: Arc<Mutex<Option<String>>>,
    /// The key accepted, as `ALGORITHM SHA256:...`.
    accepted: Arc<Mutex<Option<String>>>,
}

impl HostKeyCheck {
    fn verdict(&self, offered: &PublicKeyOrCertificate) -> Result<(), String> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = offered else {
            return Err(
                "the host offered a host certificate; wisp checks plain host keys only".into(),
            );
        };
        let path = &self.options.known_hosts;
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let (host, port) = (self.hop.host.as_str(), self.hop.port);
        let name = known_hosts::host_entry_name(host, port);
        let shown = format!("{} {}", key.algorithm(), known_hosts::fingerprint(key));
        match known_hosts::check(&text, host, port, key) {
            known_hosts::Verdict::Known => Ok(()),
            // A key of a new type beside a recorded one is a changed key (as OpenSSH
            // treats it): an attacker with a fresh key would pick a type never recorded.
            known_hosts::Verdict::Unknown { other_types } if !other_types.is_empty() => {
                Err(format!(
                    "HOST KEY OF {name} HAS CHANGED: it offered {shown}, but {} records only {} keys for it. This can be a man-in-the-middle attack. If the host really changed its keys, remove the old ones with `ssh-keygen -R '{name}' -f {}`; --accept-new never adds a key of a new type beside a recorded one",
                    path.display(),
                    other_types.join(", "),
                    path.display()
                ))
            }
            known_hosts::Verdict::Unknown { .. } if self.options.accept_new => {
                known_hosts::learn(path, host, port, key).map_err(|e| {
                    format!(
                        "cannot record the host key of {name} in {}: {e}",
                        path.display()
                    )
                })
            }
            known_hosts::Verdict::Unknown { .. } => Err(format!(
                "host key of {name} is not in {}: it offered {shown}. Check that fingerprint, then run once with --accept-new (or add it with `ssh-keyscan -p {port} {host} >> {}`)",
                path.display(),
                path.display()
            )),
            known_hosts::Verdict::Changed { line } => Err(format!(
                "HOST KEY OF {name} HAS CHANGED: it offered {shown}, which differs from line {line} of {}. This can be a man-in-the-middle attack. If the host was reinstalled, remove the old key with `ssh-keygen -R '{name}' -f {}`; --accept-new never overrides a changed key",
                path.display(),
                path.display()
            )),
            known_hosts::Verdict::Revoked { line } => Err(format!(
                "host key of {name} ({shown}) is marked @revoked on line {line} of {}",
                path.display()
            )),
        }
    }
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        match self.verdict(offered) {
            Ok(()) => {
                if let (PublicKeyOrCertificate::PublicKey { key, .. }, Ok(mut a)) =
                    (offered, self.accepted.lock())
                {
                    *a = Some(format!(
                        "{} {}",
                        key.algorithm(),
                        known_hosts::fingerprint(key)
                    ));
                }
                Ok(true)
            }
            Err(why) => {
                if let Ok(mut r) = self.refusal.lock() {
                    *r = Some(why);
                }
                Ok(false)
            }
        }
    }
}

fn ssh_error(hop: &Hop, e: impl std::fmt::Display) -> TransportError {
    TransportError::Handshake {
        detail: format!("ssh to {}: {e}", hop.label()),
    }
}

/// The host hung up before authentication: worth another try (see `TransportError::Dropped`).
fn dropped(e: &russh::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    match e {
        russh::Error::Disconnect | russh::Error::HUP => true,
        russh::Error::IO(io) => matches!(
            io.kind(),
            ConnectionReset | ConnectionAborted | UnexpectedEof | BrokenPipe
        ),
        _ => false,
    }
}

/// One connection of the chain: a jump host, or the target itself, fully resolved.
#[derive(Debug, Clone)]
struct Hop {
    host: String,
    port: u16,
    user: String,
    keys: Vec<PathBuf>,
    tcp_timeout: Option<Duration>,
    keepalive: Option<Duration>,
}

impl Hop {
    fn label(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }
}

impl SshTransport {
    /// Resolves a name through ssh_config: explicit settings first, then `--user`, then the
    /// config, then defaults.
    fn resolve(
        &self,
        alias: &str,
        host: Option<String>,
        port: Option<u16>,
        user: Option<String>,
        key: Option<PathBuf>,
    ) -> Hop {
        let c = self.options.ssh_config.for_host(alias);
        let host = host
            .or_else(|| c.hostname.clone())
            .unwrap_or_else(|| alias.to_owned());
        let user = user
            .or_else(|| self.options.default_user.clone())
            .or_else(|| c.user.clone())
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "root".into());
        let mut keys: Vec<PathBuf> = key.into_iter().collect();
        for k in c
            .expand_identities(&host, &user)
            .into_iter()
            .chain(self.options.keys.iter().cloned())
        {
            if !keys.contains(&k) && (k.is_file() || self.options.keys.contains(&k)) {
                keys.push(k);
            }
        }
        Hop {
            host,
            port: port.or(c.port).unwrap_or(22),
            user,
            keys,
            tcp_timeout: c.connect_timeout,
            keepalive: c.server_alive_interval,
        }
    }

    /// The jump hosts from ssh_config's `ProxyJump`, then the target.
    fn hops(&self) -> Result<Vec<Hop>, TransportError> {
        let t = &self.target;
        let mut hops = Vec::new();
        for jump in self.options.ssh_config.for_host(&t.alias).proxy_jump {
            let hop = HostAddress::parse(&jump).map_err(|e| TransportError::Handshake {
                detail: format!("ProxyJump {jump:?} for {}: {e}", t.alias),
            })?;
            hops.push(self.resolve(&hop.host, None, hop.port, hop.user, None));
        }
        hops.push(self.resolve(
            &t.alias,
            t.host.clone(),
            t.port,
            t.user.clone(),
            t.key.clone(),
        ));
        Ok(hops)
    }

    /// Opens an authenticated session to `hop`, over `stream` (TCP, or a tunnel through the
    /// previous hop).
    async fn connect_hop<S>(
        &self,
        hop: &Hop,
        stream: S,
    ) -> Result<(Handle<HostKeyCheck>, String), TransportError>
    where
        S: AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let mut preferred = russh::Preferred::default();
        if let Ok(text) = std::fs::read_to_string(&self.options.known_hosts) {
            let recorded = known_hosts::recorded_algorithms(&text, &hop.host, hop.port);
            preferred.key = known_hosts::prefer_recorded(&preferred.key, &recorded).into();
        }
        let config = Arc::new(client::Config {
            keepalive_interval: Some(hop.keepalive.unwrap_or(Duration::from_secs(15))),
            keepalive_max: 3,
            nodelay: true,
            preferred,
            ..client::Config::default()
        });
        let refusal = Arc::new(Mutex::new(None));
        let accepted = Arc::new(Mutex::new(None));
        let check = HostKeyCheck {
            hop: hop.clone(),
            options: Arc::clone(&self.options),
            refusal: Arc::clone(&refusal),
            accepted: Arc::clone(&accepted),
        };
        let mut session = match client::connect_stream(config, stream, check).await {
            Ok(s) => s,
            Err(e) => {
                let why = refusal.lock().ok().and_then(|mut r| r.take());
                return Err(match why {
                    Some(detail) => TransportError::HostKey { detail },
                    None if dropped(&e) => TransportError::Dropped {
                        detail: format!(
                            "{} closed the connection during the SSH handshake ({e})",
                            hop.label()
                        ),
                    },
                    None => ssh_error(hop, e),
                });
            }
        };
        self.authenticate(&mut session, hop).await?;
        let key = accepted.lock().ok().and_then(|mut a| a.take());
        Ok((session, key.unwrap_or_default()))
    }

    async fn start_runner(&self, launch: &Launch) -> Result<RunnerConnection, TransportError> {
        let hops = self.hops()?;
        let mut sessions: Vec<Handle<HostKeyCheck>> = Vec::new();
        let mut host_key = String::new();
        // The payload for the likely architecture is made (compressed, in the background)
        // while this host's handshake runs.
        let guess = self.options.arch_guess(&launch.runners);
        if let Ok(runner) = launch.runners.for_arch(&guess) {
            self.options.payload(runner);
        }
        for (i, hop) in hops.iter().enumerate() {
            let (session, key) = match sessions.last() {
                None => {
                    let connect = tokio::net::TcpStream::connect((hop.host.as_str(), hop.port));
                    let tcp =
                        match hop.tcp_timeout {
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
                    self.connect_hop(hop, tcp).await?
                }
                Some(previous) => {
                    let via = &hops[i - 1];
                    let tunnel = previous
                        .channel_open_direct_tcpip(
                            hop.host.as_str(),
                            u32::from(hop.port),
                            "127.0.0.1",
                            0,
                        )
                        .await
                        .map_err(|e| TransportError::Handshake {
                            detail: format!(
                                "jump host {} could not reach {}:{}: {e}",
                                via.label(),
                                hop.host,
                                hop.port
                            ),
                        })?;
                    self.connect_hop(hop, tunnel.into_stream())
                        .await
                        .map_err(|e| match e {
                            TransportError::Handshake { detail } => TransportError::Handshake {
                                detail: format!("{detail} (via {})", via.label()),
                            },
                            other => other,
                        })?
                }
            };
            sessions.push(session);
            host_key = key;
        }
        let hop = hops.last().ok_or_else(|| TransportError::Handshake {
            detail: "no host to connect to".into(),
        })?;
        let Some(session) = sessions.last() else {
            return Err(TransportError::Handshake {
                detail: "no session".into(),
            });
        };

        let channel = session
            .channel_open_session()
            .await
            .map_err(|e| ssh_error(hop, e))?;
        let start_mode = match (self.options.become_root, &self.options.become_password) {
            (false, _) => bootstrap::Become::No,
            (true, None) => bootstrap::Become::Sudo,
            (true, Some(_)) => bootstrap::Become::SudoWithPassword,
        };
        let command = bootstrap::command(&launch.nonce, launch.ttl.as_secs().max(1), start_mode);
        channel
            .exec(true, command)
            .await
            .map_err(|e| ssh_error(hop, e))?;
        let (mut read_half, write_half) = channel.split();

        // One task owns the channel's incoming side: stdout to a pipe the framing reads,
        // stderr to a bounded buffer for messages, and the exit status.
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
            sessions,
            pump: Some(pump),
            stderr,
            exit_status,
        };
        let fail = |detail: String| {
            let diag = handle.diagnostics();
            let code = handle.exit_status.lock().ok().and_then(|e| *e);
            let mut detail = detail;
            if let Some(code) = code {
                detail.push_str(&format!(" (bootstrap exit status {code})"));
            }
            if !diag.trim().is_empty() {
                detail.push_str(&format!("; host said: {}", diag.trim()));
            }
            TransportError::Handshake { detail }
        };

        let mut stdout: Box<dyn AsyncRead + Send + Unpin> = Box::new(stdout_rx);
        let mut writer = write_half.make_writer();
        // Compressed whenever the host can decompress: it says so, and gets it raw, when not.
        let encoding = bootstrap::Encoding::Gzip;
        let sent = self
            .upload(&mut writer, launch, &guess, encoding, start_mode)
            .await;
        if let Err(e) = sent {
            return Err(fail(e));
        }
        let (line, rest) = match read_arch_line(&mut stdout, &launch.nonce).await {
            Ok(found) => found,
            Err(e) => {
                // Let the pump collect the bootstrap's stderr and exit status.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Err(fail(e));
            }
        };
        let Some(said) = bootstrap::HostSaid::parse(&line) else {
            return Err(fail(format!(
                "the bootstrap said {line:?}, which wisp does not know"
            )));
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
            if let Err(e) = self
                .upload(&mut writer, launch, &said.arch, encoding, start_mode)
                .await
            {
                return Err(fail(e));
            }
        }
        let stdout = Box::new(std::io::Cursor::new(rest).chain(stdout));
        let (reader, ready) = match FrameReader::until_ready(stdout, &launch.nonce).await {
            Ok(pair) => pair,
            Err(e) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Err(fail(format!("runner did not start: {e}")));
            }
        };
        Ok(RunnerConnection {
            ready,
            reader,
            writer: FrameWriter::new(Box::new(writer)),
            handle: Box::new(handle),
            host_key: format!("ssh {host_key}"),
        })
    }

    /// Sends one header and upload: the runner for `arch` in `encoding` (and the sudo
    /// password line after it, when there is one).
    async fn upload(
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
        let header = bootstrap::header(arch, encoding, bytes.len(), &payload.sha256);
        let sent = async {
            writer.write_all(header.as_bytes()).await?;
            writer.write_all(bytes).await?;
            if let (bootstrap::Become::SudoWithPassword, Some(pw)) =
                (start_mode, &self.options.become_password)
            {
                writer
                    .write_all(format!("{}\n", pw.expose()).as_bytes())
                    .await?;
            }
            writer.flush().await
        };
        sent.await
            .map_err(|e| format!("uploading the runner failed: {e}"))
    }

    async fn authenticate(
        &self,
        session: &mut Handle<HostKeyCheck>,
        t: &Hop,
    ) -> Result<(), TransportError> {
        let mut tried = Vec::new();
        if self.options.use_agent && std::env::var_os("SSH_AUTH_SOCK").is_some() {
            match AgentClient::connect_env().await {
                Ok(mut agent) => {
                    let identities = agent.request_identities().await.unwrap_or_default();
                    for identity in identities {
                        let AgentIdentity::PublicKey { key, comment } = identity else {
                            continue;
                        };
                        let hash = rsa_hash(session, &key).await;
                        match session
                            .authenticate_publickey_with(t.user.as_str(), key, hash, &mut agent)
                            .await
                        {
                            Ok(r) if r.success() => return Ok(()),
                            _ => tried.push(format!("agent key {comment}")),
                        }
                    }
                }
                Err(e) => tried.push(format!("ssh-agent at $SSH_AUTH_SOCK ({e})")),
            }
        }
        let from_env = std::env::var(PASSPHRASE_ENV).ok();
        for path in &t.keys {
            let passphrase = self
                .options
                .passphrases
                .get(path)
                .map(Secret::expose)
                .or(from_env.as_deref());
            let key = match russh::keys::load_secret_key(path, passphrase) {
                Ok(k) => k,
                Err(russh::keys::Error::KeyIsEncrypted) => {
                    tried.push(format!(
                        "{} (encrypted: put its passphrase in ${PASSPHRASE_ENV})",
                        path.display()
                    ));
                    continue;
                }
                Err(e) => {
                    tried.push(format!("{} (unreadable: {e})", path.display()));
                    continue;
                }
            };
            let hash = rsa_hash(session, key.public_key()).await;
            let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
            match session.authenticate_publickey(t.user.as_str(), key).await {
                Ok(r) if r.success() => return Ok(()),
                Ok(_) => tried.push(path.display().to_string()),
                Err(e) => return Err(ssh_error(t, e)),
            }
        }
        if let Some(password) = &self.options.password {
            match session
                .authenticate_password(t.user.as_str(), password.expose())
                .await
            {
                Ok(r) if r.success() => return Ok(()),
                Ok(_) => tried.push("password".into()),
                Err(e) => return Err(ssh_error(t, e)),
            }
        }
        Err(TransportError::Auth {
            detail: format!(
                "{} refused every key offered: {}",
                t.label(),
                if tried.is_empty() {
                    "none (no agent, no key files: use --key FILE)".to_owned()
                } else {
                    tried.join(", ")
                }
            ),
        })
    }
}

/// For RSA keys, the best signature hash the server accepts; `None` for other key types.
async fn rsa_hash(
    session: &Handle<HostKeyCheck>,
    key: &russh::keys::PublicKey,
) -> Option<russh::keys::HashAlg> {
    if !key.algorithm().is_rsa() {
        return None;
    }
    session
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten()
}

fn keep_tail(buf: &Mutex<Vec<u8>>, data: &[u8]) {
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
    /// Jump hosts first, the target last.
    sessions: Vec<Handle<HostKeyCheck>>,
    pump: Option<tokio::task::JoinHandle<()>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    exit_status: Arc<Mutex<Option<u32>>>,
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
            for session in self.sessions.iter().rev() {
                let _ = session
                    .disconnect(russh::Disconnect::ByApplication, "", "en")
                    .await;
            }
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
