//! `wisp worker`, and the `--nats` flags of fleet commands: how a run is
//! handed to workers on NATS JetStream (see [`wisp_bus`] and [`crate::bus`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use wisp_transports::remote::{Remote, RemoteHost, RemoteOptions};

use super::nats::NatsAuth;
use super::options::RunOptions;
use super::usage_error;
use crate::fleet::Target;
use crate::jobs::Job;
use wisp_bus::auth::{WorkerKey, WorkerKeys};
use wisp_bus::item::{HostSpec, Signer, Start, Verifier, Work};
use wisp_bus::{self as bus, Connect};
use wisp_events::exit::ExitStatus;
use wisp_plan::quantity::parse_duration;
use wisp_protocol::error::chain as error_chain;

/// What the controller needs to hand a run to the bus, worked out before anything connects.
#[derive(Debug)]
pub(super) struct Handoff {
    pub(super) connect: Connect,
    pub(super) signer: Signer,
    pub(super) hosts: HashMap<String, (HostSpec, String)>,
    pub(super) work: Work,
    pub(super) start: Start,
    pub(super) redeliver_exec: bool,
    pub(super) secrets: Option<String>,
    pub(super) workers: WorkerKeys,
    pub(super) item_expiry: Duration,
}

/// Checks that this run can go through the bus, and says what to fix when it cannot.
pub(super) fn handoff(
    common: &RunOptions,
    url: &str,
    targets: &[Target],
    job: &Job,
    output_dir: bool,
) -> Result<Handoff, ExitStatus> {
    let a = &common.bus;
    let Some(key) = &a.sign_jobs else {
        return Err(usage_error(
            "--nats needs --sign-jobs FILE (or $WISP_JOB_KEY): workers run only signed jobs; \
             make a key pair with `wisp keygen FILE` and give workers FILE.pub with \
             --trust-jobs",
        ));
    };
    if a.trust_workers.is_empty() {
        return Err(usage_error(
            "--nats needs --trust-workers FILE (or $WISP_TRUST_WORKERS): the public keys of \
             the workers whose events count (each worker's `wisp keygen` FILE.pub, given to it \
             as --sign-events FILE); without them anyone on the bus could report results",
        ));
    }
    let workers = WorkerKeys::load(&a.trust_workers).map_err(|e| usage_error(&error_chain(&e)))?;
    if output_dir {
        return Err(usage_error(
            "--output-dir writes on this machine; it does not combine with --nats",
        ));
    }
    if common.ask_pass || common.ask_become_pass {
        return Err(usage_error(
            "--ask-pass and --ask-become-pass do not travel through NATS: credentials stay \
             with each worker (its keys, or $WISP_BECOME_PASSWORD where it runs)",
        ));
    }
    let work = crate::bus::work_of(job).map_err(|e| usage_error(&e))?;
    let mut hosts = HashMap::new();
    for t in targets {
        let Some(remote) = &t.remote else {
            return Err(usage_error(&format!(
                "{}: a local target runs on this machine; --nats hands remote hosts to workers",
                t.name
            )));
        };
        let region = match t.vars.get("wisp_region") {
            None => "any".to_owned(),
            Some(wisp_inventory::Value::String(r)) => r.clone(),
            Some(other) => other.to_string(),
        };
        if let Err(e) = bus::check_region(&region) {
            return Err(usage_error(&format!("{}: wisp_region: {e}", t.name)));
        }
        let spec = HostSpec {
            name: t.name.clone(),
            address: remote.address.clone(),
            port: remote.port,
            user: remote.user.clone().or_else(|| common.user.clone()),
            vars: t.vars.clone(),
        };
        hosts.insert(t.name.clone(), (spec, region));
    }
    let secrets = match job {
        Job::Plan { plan, .. } if !plan.secret_refs.is_empty() => {
            let Some(file) = &a.worker_recipients else {
                return Err(usage_error(&format!(
                    "{} uses secrets: with --nats they travel encrypted to the workers; give \
                     --worker-recipients FILE (the age recipients of the workers' --identity \
                     keys, one per line)",
                    plan.path.display()
                )));
            };
            let sealed = wisp_secrets::recipients_in(file)
                .and_then(|rs| wisp_secrets::seal_values(&plan.secrets, &rs))
                .map_err(|e| usage_error(&format!("--worker-recipients: {}", error_chain(&e))))?;
            Some(data_encoding::BASE64.encode(&sealed))
        }
        _ => None,
    };
    let signer = Signer::load(key).map_err(|e| usage_error(&error_chain(&e)))?;
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Ok(Handoff {
        connect: a.auth.connect(
            url,
            format!("wisp controller {}", std::process::id()),
            bus::permissions::CONTROLLER_INBOX,
        ),
        signer,
        hosts,
        work,
        start: Start {
            connect_timeout_ms: ms(common.connect_timeout),
            ttl_ms: ms(common.ttl),
            become_root: common.become_root,
        },
        redeliver_exec: a.redeliver_exec,
        secrets,
        workers,
        item_expiry: a.item_expiry,
    })
}

#[derive(Debug, Args)]
pub(super) struct WorkerArgs {
    /// The NATS server to take work from.
    #[arg(long, value_name = "URL", env = "WISP_NATS")]
    nats: String,
    #[command(flatten)]
    auth: NatsAuth,
    /// This worker's name, in claims, logs and the run's record [default: HOSTNAME-PID].
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Take only the items of hosts in this region (their inventory var `wisp_region`);
    /// without it, the items of hosts that have none.
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// The age identity that opens the secrets of plans sent to workers (the controller
    /// encrypts them to its recipient with --worker-recipients). Without one, a plan with
    /// secrets is refused.
    #[arg(long, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// Run jobs signed by this minisign public key (repeatable; at least one). Anything else
    /// put on the stream is refused and logged.
    #[arg(long, value_name = "FILE", required = true)]
    trust_jobs: Vec<PathBuf>,
    /// This worker's own key (`wisp keygen FILE`): everything it sends back, every claim
    /// and the consumer it makes are signed with it. Give FILE.pub to controllers and the
    /// other workers (--trust-workers). Its password, if any, in $WISP_WORKER_KEY_PASSWORD.
    #[arg(long, value_name = "FILE", env = "WISP_WORKER_KEY", required = true)]
    sign_events: PathBuf,
    /// The public keys of the other workers (their claims and consumers count; one written
    /// by anyone else is not a claim). This worker's own key is always trusted.
    #[arg(long, value_name = "FILE")]
    trust_workers: Vec<PathBuf>,
    /// Where this worker records the items it ran, so a copy put on the bus again is refused
    /// even if the claims are gone [default: $XDG_STATE_HOME/wisp/worker-ran, shared by the
    /// workers of this user].
    #[arg(long, value_name = "FILE")]
    ledger: Option<PathBuf>,
    /// Hosts worked on at once.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    forks: u32,
    /// How long an item may go without a sign of life from its worker before the stream
    /// hands it to another (set when the region's consumer is first made; workers tell the
    /// stream they are alive every third of it).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    ack_wait: Duration,
    /// SSH login user for hosts whose item names none [default: $USER].
    #[arg(short = 'u', long, value_name = "USER")]
    user: Option<String>,
    /// Private key file to offer (repeatable) [default: ~/.ssh/id_ed25519, id_ecdsa, id_rsa].
    #[arg(long, value_name = "FILE")]
    key: Vec<PathBuf>,
    /// The known_hosts file host keys are checked against [default: ~/.ssh/known_hosts].
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,
    /// Trust hosts whose key is not in known_hosts yet, and record it there.
    #[arg(long)]
    accept_new: bool,
    /// OpenSSH client config to read [default: ~/.ssh/config].
    #[arg(short = 'F', long, value_name = "FILE")]
    ssh_config: Option<PathBuf>,
    /// The runner executable to push [default: $WISP_RUNNER, then beside wisp, then the
    /// build tree].
    #[arg(long, value_name = "PATH")]
    runner: Option<PathBuf>,
    /// Also trust runners signed by this minisign public key (repeatable).
    #[arg(long, value_name = "FILE")]
    trusted_key: Vec<PathBuf>,
    /// Push runners without checking their signatures. Development only.
    #[arg(long)]
    insecure_unsigned_runner: bool,
}

/// `wisp worker`.
pub(super) fn main(a: WorkerArgs) -> ExitStatus {
    let worker = match worker_of(&a) {
        Ok(w) => w,
        Err(status) => return status,
    };
    let connect = a.auth.connect(
        &a.nats,
        format!("wisp worker {}", worker.name),
        bus::permissions::WORKER_INBOX,
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return usage_error(&format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(serve(connect, worker))
}

/// The worker the flags describe, each key, identity and runner read and checked before it
/// connects.
fn worker_of(a: &WorkerArgs) -> Result<bus::worker::Worker, ExitStatus> {
    let region = a.region.clone().unwrap_or_else(|| "any".into());
    bus::check_region(&region).map_err(|e| usage_error(&format!("--region: {e}")))?;
    let verifier = Verifier::load(&a.trust_jobs).map_err(|e| usage_error(&error_chain(&e)))?;
    let key = WorkerKey::load(&a.sign_events)
        .map(Arc::new)
        .map_err(|e| usage_error(&format!("--sign-events: {}", error_chain(&e))))?;
    let workers = WorkerKeys::load(&a.trust_workers)
        .map(|w| w.with(key.public()))
        .map_err(|e| usage_error(&format!("--trust-workers: {}", error_chain(&e))))?;
    let Some(ledger) = a
        .ledger
        .clone()
        .or_else(|| wisp_store::state_dir().map(|d| d.join("worker-ran")))
    else {
        return Err(usage_error(
            "no state directory for the worker's ledger (no HOME, no XDG_STATE_HOME): give \
             --ledger FILE",
        ));
    };
    let identities = match &a.identity {
        Some(path) => wisp_secrets::identities(Some(path))
            .map_err(|e| usage_error(&format!("--identity: {}", error_chain(&e))))?,
        None => Vec::new(),
    };
    let runners = wisp_runners::Trust::load(&a.trusted_key, a.insecure_unsigned_runner)
        .and_then(|trust| wisp_runners::locate(a.runner.as_deref(), &trust, false))
        .map_err(|e| usage_error(&e.to_string()))?;
    crate::fds::prepare(usize::try_from(a.forks).unwrap_or(usize::MAX))
        .map_err(|e| usage_error(&e))?;
    let name = a.name.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "worker".into());
        format!("{host}-{}", std::process::id())
    });
    Ok(bus::worker::Worker {
        name: name.clone(),
        region,
        forks: usize::try_from(a.forks).unwrap_or(usize::MAX),
        ack_wait: a.ack_wait,
        verifier,
        key,
        workers,
        identities,
        jobs: Arc::new(crate::bus::Jobs {
            worker: name,
            reach: reach(a),
            runners: runners.binaries,
        }),
        ledger,
    })
}

/// Connects and serves until SIGINT/SIGTERM: the first takes no more items and finishes the
/// ones started, a second exits now.
async fn serve(connect: Connect, worker: bus::worker::Worker) -> ExitStatus {
    let bus = match bus::Bus::connect(&connect).await {
        Ok(b) => b,
        Err(e) => {
            let status = usage_error(&error_chain(&e));
            // An open bus is a setting to fix; anything else, a server not reached.
            if matches!(e, bus::BusError::Open { .. }) {
                return status;
            }
            return ExitStatus::Unreachable;
        }
    };
    let (stop_tx, stop) = tokio::sync::watch::channel(0u8);
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            for n in 1..=2 {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                let _ = stop_tx.send(n);
            }
        }
    });
    match bus::worker::serve(bus, worker, stop).await {
        Ok(()) => ExitStatus::Ok,
        Err(e) => {
            let _ = usage_error(&error_chain(&e));
            ExitStatus::Unreachable
        }
    }
}

/// How this worker reaches a host: its own keys, known_hosts and client config; one set of
/// remote options per become mode, made when first needed.
fn reach(a: &WorkerArgs) -> crate::bus::Reach {
    let base = RemoteOptions {
        keys: a.key.clone(),
        known_hosts: a.known_hosts.clone(),
        accept_new: a.accept_new,
        become_root: false,
        ask_pass: false,
        ask_become_pass: false,
        become_method: Default::default(),
        default_user: a.user.clone(),
        config: a.ssh_config.clone(),
    };
    let made: Mutex<HashMap<bool, Remote>> = Mutex::default();
    Arc::new(move |host: &HostSpec, become_root: bool| {
        let mut made = made
            .lock()
            .map_err(|_| "worker state poisoned".to_owned())?;
        let remote = match made.get(&become_root) {
            Some(r) => r.clone(),
            None => {
                let options = RemoteOptions {
                    become_root,
                    ..base.clone()
                };
                // No terminal here: an encrypted key without $WISP_SSH_PASSPHRASE is refused
                // when it is needed.
                let r = Remote::new(options, |_| Ok(None)).map_err(|e| error_chain(&e))?;
                made.insert(become_root, r.clone());
                r
            }
        };
        let target = RemoteHost {
            become_root: None,
            become_method: None,
            address: host.address.clone(),
            port: host.port,
            user: host.user.clone(),
            key: None,
        };
        Ok(Target {
            name: host.name.clone(),
            transport: remote.transport(target.clone()),
            vars: host.vars.clone(),
            remote: Some(target),
        })
    })
}
