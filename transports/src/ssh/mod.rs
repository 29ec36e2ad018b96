//! The SSH transport: russh client, strict host-key checking against OpenSSH `known_hosts`,
//! agent and key-file authentication, and the one-channel runner push (see [`bootstrap`]).
//!
//! Nothing SSH-specific leaves this module: the controller gets a [`RunnerConnection`] like
//! any transport's.

mod auth;
pub mod bootstrap;
mod channel;
pub mod config;
mod hops;
mod hostkey;
pub mod known_hosts;
mod way;

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
use hops::{AgentSocket, Hop};
use hostkey::HostKeyCheck;
use way::JumpLease;

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
    /// Whether to become root on this host, when the inventory says (`ansible_become`),
    /// over the run's choice.
    pub become_root: Option<bool>,
    /// How, when the inventory says (`ansible_become_method`).
    pub become_method: Option<BecomeMethod>,
}

/// What becomes root on a remote host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BecomeMethod {
    /// `sudo`: without a password (`-n`), or with the one asked for.
    #[default]
    Sudo,
    /// `doas -n`: a `nopass` rule only, since doas reads a password from a terminal alone.
    Doas,
    /// `su`, with root's password (`--ask-become-pass`), on a terminal of its own.
    Su,
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
    /// Whether `known_hosts` was given (`--known-hosts`), over ssh_config's
    /// `UserKnownHostsFile`.
    pub known_hosts_given: bool,
    /// Run the runner as root.
    pub become_root: bool,
    /// Through what.
    pub become_method: BecomeMethod,
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
    /// The run's shared sessions to jump hosts.
    jumps: way::JumpPool,
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
            known_hosts_given: false,
            become_root,
            become_method: BecomeMethod::Sudo,
            default_user: None,
            ssh_config: config::SshConfig::default(),
            passphrases: HashMap::new(),
            password: None,
            become_password: None,
            payloads: Mutex::new(HashMap::new()),
            arch_seen: Mutex::new(None),
            jumps: Mutex::default(),
        }
    }

    /// How the bootstrap starts the runner on `target`: its own become settings over the
    /// run's.
    fn start_mode(&self, target: &SshTarget) -> bootstrap::Become {
        let become_root = target.become_root.unwrap_or(self.become_root);
        let method = target.become_method.unwrap_or(self.become_method);
        match (become_root, method, &self.become_password) {
            (false, _, _) => bootstrap::Become::No,
            (true, BecomeMethod::Doas, _) => bootstrap::Become::Doas,
            (true, BecomeMethod::Su, _) => bootstrap::Become::SuWithPassword,
            (true, BecomeMethod::Sudo, None) => bootstrap::Become::Sudo,
            (true, BecomeMethod::Sudo, Some(_)) => bootstrap::Become::SudoWithPassword,
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
