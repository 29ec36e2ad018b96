//! The flags that reach a NATS server: how a fleet command hands its hosts to workers
//! (`--nats` and its keys), and how a controller or a worker signs in.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use wisp_bus::Connect;
use wisp_plan::quantity::parse_duration;

/// How to authenticate to the NATS server and check it.
#[derive(Debug, Clone, Args)]
pub(super) struct NatsAuth {
    /// NATS credentials file (user JWT and nkey seed) for the server.
    #[arg(long, value_name = "FILE", env = "WISP_NATS_CREDS")]
    pub(super) nats_creds: Option<PathBuf>,
    /// A file holding the nkey seed to sign in to the server with.
    #[arg(long, value_name = "FILE", env = "WISP_NATS_NKEY")]
    pub(super) nats_nkey: Option<PathBuf>,
    /// CA certificates (PEM) the server's TLS certificate must chain to; turns TLS on.
    #[arg(long, value_name = "FILE")]
    pub(super) nats_ca: Option<PathBuf>,
    /// Use a NATS server that lets clients in without credentials. Anyone who can reach such
    /// a server can read every item and hold back or replay work; signatures still keep
    /// them from running their own. Without this flag wisp refuses such a server.
    #[arg(long)]
    pub(super) insecure_open_bus: bool,
}

impl NatsAuth {
    pub(super) fn connect(&self, url: &str, name: String, inbox_prefix: &str) -> Connect {
        Connect {
            url: url.to_owned(),
            creds: self.nats_creds.clone(),
            nkey: self.nats_nkey.clone(),
            ca: self.nats_ca.clone(),
            name,
            inbox_prefix: inbox_prefix.to_owned(),
            insecure_open_bus: self.insecure_open_bus,
        }
    }
}

/// `--nats` on `run`, `apply`, `drift`, `facts`, `ping`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Workers (NATS JetStream)")]
pub(super) struct BusArgs {
    /// Hand each host to workers (`wisp worker`) through this NATS server instead of
    /// connecting from here. Batches and failure budgets stay with this controller; output,
    /// recap, store and exit code are those of a local run. Host keys, SSH keys and runners
    /// are the workers' own.
    #[arg(long, value_name = "URL", env = "WISP_NATS")]
    pub(super) nats: Option<String>,
    #[command(flatten)]
    pub(super) auth: NatsAuth,
    /// The minisign secret key jobs are signed with (`wisp keygen`); workers run only jobs
    /// signed by a key they trust. Its password, if any, in $WISP_JOB_KEY_PASSWORD.
    #[arg(long, value_name = "FILE", env = "WISP_JOB_KEY")]
    pub(super) sign_jobs: Option<PathBuf>,
    /// Age recipients of the workers (a file, one `age1...` per line): a plan's secrets
    /// travel encrypted to them, and only workers holding one of those identities
    /// (`wisp worker --identity`) can run it.
    #[arg(long, value_name = "FILE")]
    pub(super) worker_recipients: Option<PathBuf>,
    /// The public keys of the workers whose events this controller hears (each worker's
    /// `wisp keygen` FILE.pub; a file may hold several, one after another). An event not
    /// signed by one of them, or not by the worker that claimed the host, is refused.
    #[arg(long, value_name = "FILE", env = "WISP_TRUST_WORKERS")]
    pub(super) trust_workers: Vec<PathBuf>,
    /// How long an item may wait for a worker to take it; a copy of it put on the bus later
    /// is refused for its age alone, and a host no worker took by then is unreachable.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub(super) item_expiry: Duration,
    /// When a worker dies mid-command, run an exec item again on another worker (by default
    /// it is reported as lost: a command may not be safe to run twice; plans always are).
    #[arg(long)]
    pub(super) redeliver_exec: bool,
}
