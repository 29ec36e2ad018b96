//! Work spread over workers on NATS JetStream.
//!
//! The controller puts one signed item per host on the `WISP_WORK` stream (work-queue
//! retention, subject `wisp.work.<region>.<run>`), batch after batch with its failure budget
//! as a local run does; workers pull items (`wisp worker`, one durable consumer per region,
//! shared by that region's workers), run each with the same jobs a local run uses, and send
//! back every reporter call, then the host's result, on `WISP_EVENTS`
//! (`wisp.events.<run>.<item>`). Cancels go out on `wisp.cancel.<run>`.
//!
//! Delivery: an item is acked when its host is done. While it runs, its worker tells the
//! stream it is still working (so the ack wait never runs out under a live worker) and keeps
//! its claim fresh on the `WISP_CLAIMS` stream (one message per item, replaced only by a
//! writer that saw the previous one). When a worker dies, the stream
//! delivers the item again after the ack wait; the next worker takes the stale claim over
//! (compare-and-set: one winner) and runs a plan again, since a plan converges, but reports
//! an exec item as lost with that worker unless the run said `--redeliver-exec`. A claim
//! that is still fresh is never taken over, so no item runs twice at once.
//!
//! Trust: items and cancels are signed by the controller's job key (`bus/item`); every
//! event, claim and work consumer by the worker that wrote it, with a key of its own
//! (`bus/auth`). The controller takes an item's events only from the worker whose signed
//! claim it saw, and only about that item's host; a worker takes a claim only when a trusted
//! worker signed it. The server itself runs with per-user permissions (`bus/permissions`,
//! `wisp nats-config`), and wisp refuses a server that lets a client in without credentials
//! unless told `--insecure-open-bus`. A worker also keeps the ids of the items it ran on its
//! own disk (`bus/ledger`), so a replay is refused even when the claims are gone.
//!
//! What this module does not know: the command line, or how hosts are reached (the worker
//! is handed a way to turn a host into a target).

pub mod auth;
pub mod dispatch;
mod events;
pub mod item;
mod ledger;
pub mod permissions;
pub mod wire;
pub mod worker;

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream;

/// Work items.
pub const WORK_STREAM: &str = "WISP_WORK";
/// What workers send back.
pub const EVENTS_STREAM: &str = "WISP_EVENTS";
/// Who runs which item: one message per item (the newest), replaced by compare-and-set.
pub const CLAIMS_STREAM: &str = "WISP_CLAIMS";
/// How long the streams keep an item: longer than any item's expiry.
pub const ITEM_LIFETIME: Duration = Duration::from_secs(3600);
/// How long after it is made an item may still be taken by a worker, by default
/// (`--item-expiry`): a copy replayed later is refused for its age alone.
pub const DEFAULT_ITEM_EXPIRY: Duration = Duration::from_secs(300);

/// How to reach the bus.
#[derive(Debug, Clone, Default)]
pub struct Connect {
    /// `nats://host:port` or `tls://host:port` (several, comma-separated).
    pub url: String,
    /// A NATS credentials file (JWT and nkey seed).
    pub creds: Option<PathBuf>,
    /// A file holding an nkey seed.
    pub nkey: Option<PathBuf>,
    /// CA certificates to check the server's TLS certificate against (implies TLS).
    pub ca: Option<PathBuf>,
    /// The name this client shows the server.
    pub name: String,
    /// The prefix of this client's reply subjects (`_INBOX` when empty), so the server's
    /// permissions can keep each role's replies from the others.
    pub inbox_prefix: String,
    /// Use a server that lets clients in without credentials (`--insecure-open-bus`).
    pub insecure_open_bus: bool,
}

/// Why the bus could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Connecting failed.
    #[error("cannot reach the NATS server at {url}: {why}")]
    Connect { url: String, why: String },
    /// A stream, consumer or bucket could not be set up.
    #[error("cannot set up {what} on the NATS server at {url}: {why}")]
    Setup {
        what: &'static str,
        url: String,
        why: String,
    },
    /// A key file is unusable.
    #[error("{}: {why}", path.display())]
    Key { path: PathBuf, why: String },
    /// Signing failed.
    #[error("cannot sign a job: {0}")]
    Sign(String),
    /// The bus went away mid-run.
    #[error("lost the NATS server at {url}: {why}")]
    Lost { url: String, why: String },
    /// The work consumer of a region is not one a trusted worker made.
    #[error("{why}")]
    ForeignConsumer { why: String },
    /// The server lets anyone in.
    #[error(
        "the NATS server at {url} lets a client in without credentials and reach wisp's \
         streams: anyone who can connect could read every item and forge claims and events. \
         Run it with users and permissions (`wisp nats-config DIR` writes them), or pass \
         --insecure-open-bus to use it anyway"
    )]
    Open { url: String },
}

/// A connection, with JetStream and the streams wisp uses.
#[derive(Debug, Clone)]
pub struct Bus {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub url: String,
    /// Moves to `true` while the connection is down.
    pub down: tokio::sync::watch::Receiver<bool>,
}

impl Bus {
    /// Connects and makes sure the streams and the claims bucket exist.
    pub async fn connect(c: &Connect) -> Result<Bus, BusError> {
        let err = |why: String| BusError::Connect {
            url: c.url.clone(),
            why,
        };
        let (tx, down) = tokio::sync::watch::channel(false);
        let mut options = async_nats::ConnectOptions::new()
            .name(&c.name)
            .connection_timeout(Duration::from_secs(5))
            .event_callback(move |event| {
                let tx = tx.clone();
                async move {
                    match event {
                        async_nats::Event::Disconnected => {
                            let _ = tx.send(true);
                        }
                        async_nats::Event::Connected => {
                            let _ = tx.send(false);
                        }
                        _ => {}
                    }
                }
            });
        if let Some(path) = &c.creds {
            options = options
                .credentials_file(path)
                .await
                .map_err(|e| err(format!("credentials file {}: {e}", path.display())))?;
        }
        if let Some(path) = &c.nkey {
            let seed = std::fs::read_to_string(path)
                .map_err(|e| err(format!("nkey file {}: {e}", path.display())))?;
            options = options.nkey(seed.trim().to_owned());
        }
        if let Some(path) = &c.ca {
            options = options
                .add_root_certificates(path.clone())
                .require_tls(true);
        }
        if !c.inbox_prefix.is_empty() {
            options = options.custom_inbox_prefix(c.inbox_prefix.clone());
        }
        if !c.insecure_open_bus && lets_anyone_in(c).await {
            return Err(BusError::Open { url: c.url.clone() });
        }
        let client = options
            .connect(c.url.as_str())
            .await
            .map_err(|e| err(e.to_string()))?;
        let js = jetstream::new(client.clone());
        let bus = Bus {
            client,
            js,
            url: c.url.clone(),
            down,
        };
        bus.ensure().await?;
        Ok(bus)
    }

    fn setup(&self, what: &'static str) -> impl Fn(String) -> BusError + '_ {
        move |why| BusError::Setup {
            what,
            url: self.url.clone(),
            why,
        }
    }

    /// The streams and the bucket, created when missing (every client may be the first).
    pub(crate) async fn ensure(&self) -> Result<(), BusError> {
        use jetstream::stream::{Config, RetentionPolicy, StorageType};
        self.js
            .get_or_create_stream(Config {
                name: WORK_STREAM.into(),
                subjects: vec!["wisp.work.>".into()],
                retention: RetentionPolicy::WorkQueue,
                storage: StorageType::File,
                max_age: ITEM_LIFETIME,
                ..Default::default()
            })
            .await
            .map_err(|e| self.setup("the work stream")(e.to_string()))?;
        self.js
            .get_or_create_stream(Config {
                name: EVENTS_STREAM.into(),
                subjects: vec!["wisp.events.>".into()],
                retention: RetentionPolicy::Limits,
                storage: StorageType::File,
                max_age: Duration::from_secs(24 * 3600),
                ..Default::default()
            })
            .await
            .map_err(|e| self.setup("the events stream")(e.to_string()))?;
        self.claims().await?;
        Ok(())
    }

    /// The claims.
    pub async fn claims(&self) -> Result<Claims, BusError> {
        use jetstream::stream::{Config, DiscardPolicy};
        let stream = self
            .js
            .get_or_create_stream(Config {
                name: CLAIMS_STREAM.into(),
                subjects: vec!["wisp.claims.*".into()],
                max_messages_per_subject: 1,
                discard: DiscardPolicy::Old,
                // Longer than any item lives: a claim outlasts every copy of its item.
                max_age: ITEM_LIFETIME * 2,
                storage: StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| self.setup("the claims stream")(e.to_string()))?;
        Ok(Claims {
            js: self.js.clone(),
            stream,
        })
    }
}

/// Claims on items, as the newest message of `wisp.claims.<item>`; a write names the
/// sequence of the claim it replaces (0: none), and the server refuses it when that is not
/// the newest any more, so of two workers racing for one item exactly one wins.
#[derive(Debug, Clone)]
pub struct Claims {
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
}

/// A claim as the claims stream holds it.
#[derive(Debug, Clone)]
pub struct StoredClaim {
    /// Its sequence in the stream (what a write replacing it names).
    pub seq: u64,
    /// Its body.
    pub body: Vec<u8>,
    /// Its worker signature header, when it has one.
    pub signature: Option<String>,
}

/// Why a claim was not written.
#[derive(Debug)]
pub enum ClaimError {
    /// Someone else's claim is newer than the one the write expected.
    Raced,
    /// The bus failed.
    Bus(String),
}

impl Claims {
    /// The claim on `id`: its sequence, its body and its worker signature, when there is
    /// one.
    pub async fn get(&self, id: &str) -> Result<Option<StoredClaim>, String> {
        match self
            .stream
            .get_last_raw_message_by_subject(&format!("wisp.claims.{id}"))
            .await
        {
            Ok(m) => Ok(Some(StoredClaim {
                seq: m.sequence,
                signature: m
                    .headers
                    .get(auth::WORKER_SIGNATURE_HEADER)
                    .map(|v| v.as_str().to_owned()),
                body: m.payload.to_vec(),
            })),
            Err(e) if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound => {
                Ok(None)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Writes `body`, signed by `signature` (a worker signature header), as the claim on
    /// `id`, replacing the claim at sequence `expected` (0: there must be none); the new
    /// claim's sequence.
    pub async fn put(
        &self,
        id: &str,
        body: Vec<u8>,
        signature: &str,
        expected: u64,
    ) -> Result<u64, ClaimError> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Nats-Expected-Last-Subject-Sequence",
            expected.to_string().as_str(),
        );
        headers.insert(auth::WORKER_SIGNATURE_HEADER, signature);
        let ack = self
            .js
            .publish_with_headers(format!("wisp.claims.{id}"), headers, body.into())
            .await
            .map_err(|e| ClaimError::Bus(e.to_string()))?;
        match ack.await {
            Ok(a) => Ok(a.sequence),
            Err(e) if e.to_string().contains("wrong last sequence") => Err(ClaimError::Raced),
            Err(e) => Err(ClaimError::Bus(e.to_string())),
        }
    }
}

use jetstream::stream::StorageType;

/// Whether a client with no credentials gets in and can reach wisp's streams: a server that
/// asks for no credentials, or maps clients without them to a user allowed there. A client
/// that gets in but cannot use JetStream there (another account, no permission) is kept out
/// of wisp's streams, which is all that matters here.
async fn lets_anyone_in(c: &Connect) -> bool {
    let mut options = async_nats::ConnectOptions::new()
        .name("wisp open-bus check")
        .connection_timeout(Duration::from_secs(3));
    if let Some(path) = &c.ca {
        options = options
            .add_root_certificates(path.clone())
            .require_tls(true);
    }
    let Ok(Ok(client)) =
        tokio::time::timeout(Duration::from_secs(4), options.connect(c.url.as_str())).await
    else {
        return false;
    };
    let js = jetstream::new(client.clone());
    let answer = tokio::time::timeout(Duration::from_secs(2), js.get_stream(WORK_STREAM)).await;
    let _ = client.drain().await;
    match answer {
        Ok(Ok(_)) => true,
        // The API answered: it is there to be used, the stream is only not made yet.
        Ok(Err(e)) => e.to_string().contains("stream not found"),
        // No answer: a permissions violation is dropped by the server.
        Err(_) => false,
    }
}

/// Says something on stderr for a worker, prefixed with its name, on one line: what it says
/// often holds what a bus client chose (a subject, an item's host), shown escaped.
fn log(worker: &str, text: &str) {
    let _ = std::io::Write::write_fmt(
        &mut std::io::stderr(),
        format_args!("wisp worker {worker}: {}\n", wisp_events::visible(text)),
    );
}

/// A region name, as it may appear in a subject.
pub fn check_region(region: &str) -> Result<(), String> {
    if !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(format!(
            "region {region:?}: use letters, digits, '-' and '_' only"
        ))
    }
}

/// The work subject of a run's items for `region`.
pub fn work_subject(region: &str, run: &str) -> String {
    format!("wisp.work.{region}.{run}")
}
