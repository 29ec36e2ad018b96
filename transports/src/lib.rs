//! How bytes reach a host and how the runner is started there.
//!
//! Every transport does the same three things: get the runner executable onto the host in a
//! fresh private directory, start it with a session nonce, and hand back a framed duplex
//! stream positioned after READY. [`Transport`] is that contract; [`local::LocalTransport`]
//! runs the runner as a child process of the controller. Only this crate knows how a host is
//! reached: the controller sees [`RunnerConnection`]s and frames, never sockets or channels.
//!
//! Non-goals: deciding what to run (the controller) and running it (the runner).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod address;
pub mod conn;
pub mod local;
pub mod remote;
mod secret;
pub mod ssh;
pub mod stage;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use wisp_protocol::message::Ready;

pub use conn::{ConnError, FrameReader, FrameWriter};

/// True when `nonce` can travel unquoted through a shell (see `wisp_protocol::marker`).
pub(crate) fn marker_safe(nonce: &str) -> bool {
    wisp_protocol::marker::valid_nonce(nonce)
}

/// A boxed future, so [`Transport`] stays usable as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One runner executable: the bytes that are pushed (read once, and checked by the caller
/// before they get here), and where they came from, for messages.
#[derive(Debug, Clone)]
pub struct Runner {
    /// The file it was read from.
    pub path: PathBuf,
    /// Its contents: exactly what every host receives.
    pub bytes: std::sync::Arc<Vec<u8>>,
}

/// Runner executables by architecture (`x86_64`, `aarch64`), as named in READY.
#[derive(Debug, Clone, Default)]
pub struct RunnerBinaries {
    by_arch: BTreeMap<String, Runner>,
}

impl RunnerBinaries {
    /// Adds the executable for one architecture.
    pub fn insert(&mut self, arch: impl Into<String>, path: PathBuf, bytes: Vec<u8>) {
        let runner = Runner {
            path,
            bytes: std::sync::Arc::new(bytes),
        };
        self.by_arch.insert(arch.into(), runner);
    }

    /// The architectures there are executables for.
    pub fn arches(&self) -> Vec<&str> {
        self.by_arch.keys().map(String::as_str).collect()
    }

    /// The executable for `arch`.
    pub fn for_arch(&self, arch: &str) -> Result<&Runner, TransportError> {
        self.by_arch
            .get(arch)
            .ok_or_else(|| TransportError::NoRunner {
                arch: arch.to_owned(),
                known: self.by_arch.keys().cloned().collect(),
            })
    }
}

/// What every start of a runner needs.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The session nonce (see `wisp_protocol::marker`).
    pub nonce: String,
    /// The runner's time to live.
    pub ttl: Duration,
    /// Bound on reaching the host and receiving READY.
    pub connect_timeout: Duration,
    /// Runner executables to choose from.
    pub runners: RunnerBinaries,
    /// Handshakes in flight, shared by every host of a run (see [`HANDSHAKES_IN_FLIGHT`]).
    pub handshakes: std::sync::Arc<tokio::sync::Semaphore>,
}

/// How many SSH handshakes (TCP, key exchange, authentication, upload, runner start) a run
/// has in flight at once. The rest wait for a slot before their connect timeout starts, so
/// the timeout measures the host, not a queue on this machine; and the controller, busy with
/// at most this many key exchanges, stays responsive to the hosts already at work.
pub const HANDSHAKES_IN_FLIGHT: usize = 64;

impl Launch {
    /// A launch with a fresh random nonce, and its own handshake slots.
    pub fn new(runners: RunnerBinaries, ttl: Duration, connect_timeout: Duration) -> Self {
        Self {
            nonce: stage::random_token(),
            ttl,
            connect_timeout,
            runners,
            handshakes: std::sync::Arc::new(tokio::sync::Semaphore::new(HANDSHAKES_IN_FLIGHT)),
        }
    }

    /// The same launch for another host: a fresh nonce, the same handshake slots.
    pub fn for_host(&self) -> Self {
        Self {
            nonce: stage::random_token(),
            ..self.clone()
        }
    }
}

/// A started runner: its framed stream, its READY, and the handle that owns its process.
#[derive(Debug)]
pub struct RunnerConnection {
    /// The READY the runner sent.
    pub ready: Ready,
    /// Frames from the runner.
    pub reader: FrameReader,
    /// Frames to the runner.
    pub writer: FrameWriter,
    /// The process or channel behind the stream.
    pub handle: Box<dyn RunnerHandle>,
    /// What identifies the host itself, not its name: for SSH the accepted host key
    /// (`ssh ALGORITHM SHA256:...`), for this machine its machine id. A re-keyed or replaced
    /// host gets a new one.
    pub host_key: String,
}

/// The process or channel a runner lives in, as the controller may act on it.
pub trait RunnerHandle: Send + fmt::Debug {
    /// Waits until the runner has gone; returns a description of how it ended.
    fn wait(&mut self) -> BoxFuture<'_, String>;
    /// What the runner wrote to stderr (the last few KiB), for error messages.
    fn diagnostics(&self) -> String;
}

/// A way to reach hosts of one kind.
pub trait Transport: Send + Sync + fmt::Debug {
    /// Starts a runner on the host and returns once it has said READY.
    fn start<'a>(
        &'a self,
        launch: &'a Launch,
    ) -> BoxFuture<'a, Result<RunnerConnection, TransportError>>;
}

/// Why a runner could not be started: the host is unreachable for this run, or (for
/// [`TransportError::CouldNotStart`]) it answered but cannot run the runner as asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No runner was built for the host's architecture.
    #[error("no wisp-runner for architecture {arch} (have: {})", if known.is_empty() { "none".to_owned() } else { known.join(", ") })]
    NoRunner {
        /// The host's architecture.
        arch: String,
        /// Architectures there are runners for.
        known: Vec<String>,
    },
    /// Staging the runner (directory, copy, permissions) failed.
    #[error("cannot stage the runner in {path}")]
    Stage {
        /// The path that failed.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The runner process could not be started.
    #[error("cannot start {program}")]
    Spawn {
        /// What was executed.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The runner did not say READY, or the session to the host failed on the way.
    #[error("{detail}")]
    Handshake {
        /// What happened instead.
        detail: String,
    },
    /// The host was reached and logged in to, and its bootstrap said why the runner cannot
    /// start (becoming root refused, no location that can hold and execute it, a hash
    /// mismatch): not a network problem, and trying again will not help.
    #[error("{detail}")]
    CouldNotStart {
        /// The bootstrap's words, with its exit status.
        detail: String,
    },
    /// The host's key is unknown, changed or revoked: the connection was refused.
    #[error("{detail}")]
    HostKey {
        /// Why, with the fingerprint and what to do.
        detail: String,
    },
    /// The host closed the connection during the handshake (typically sshd's MaxStartups
    /// under load). Transient: trying again may work.
    #[error("{detail}")]
    Dropped {
        /// What happened, naming the host.
        detail: String,
    },
    /// The host accepted none of the credentials offered.
    #[error("authentication failed: {detail}")]
    Auth {
        /// What was tried.
        detail: String,
    },
}

impl TransportError {
    /// True for failures that a later attempt may not meet (see [`TransportError::Dropped`]).
    /// Refused connections, timeouts, host keys and authentication are never transient.
    pub fn is_transient(&self) -> bool {
        matches!(self, TransportError::Dropped { .. })
    }
}
