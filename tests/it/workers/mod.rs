//! Workers on NATS JetStream against a real `nats-server -js` (run with wisp's users and
//! permissions unless a test says otherwise) and real sshd hosts: delivery, the bus's set-up,
//! and someone with access to the bus (SECURITY.md, attacker 7), forging or holding it. The
//! helpers here: worker processes, keys, the controller command, and a plain bus client.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wisp_tests::nats::Nats;
use wisp_tests::sshd::Fleet;
use wisp_tests::{ScratchDir, root_or_explain, wait_for, wisp};

mod bus_control;
mod delivery;
mod forged;
mod setup;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A `wisp worker` process, its stderr in a log file; killed when dropped.
struct Worker {
    child: Option<Child>,
    name: String,
    log: PathBuf,
}

impl Worker {
    fn start(fleet: &Fleet, dir: &Path, nats: &Nats, name: &str, forks: u32) -> Worker {
        Self::start_with(fleet, dir, nats, name, forks, &[])
    }

    fn start_with(
        fleet: &Fleet,
        dir: &Path,
        nats: &Nats,
        name: &str,
        forks: u32,
        extra: &[&str],
    ) -> Worker {
        let log = dir.join(format!("{name}.log"));
        worker_key(dir, name);
        let mut c = wisp_tests::wisp_command!(dir);
        c.arg("worker")
            .args(nats.args(true))
            .args(["--name", name, "--trust-jobs", "jobs.key.pub"])
            .args(["--sign-events", &format!("{name}.key")])
            .args(["--trust-workers", "workers.pub"])
            .args(["--ack-wait", "3s", "--forks", &forks.to_string()])
            .args(extra)
            .args(
                fleet
                    .root_options()
                    .iter()
                    .filter(|a| *a != "--connect-timeout" && *a != "30s"),
            )
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("worker log"));
        let child = c.spawn().expect("start a worker");
        let worker = Worker {
            child: Some(child),
            name: name.to_owned(),
            log,
        };
        let ready = wait_for(Duration::from_secs(20), || {
            worker.log_text().contains("taking items").then_some(())
        });
        assert!(
            ready.is_some(),
            "worker {name} did not start:\n{}",
            worker.log_text()
        );
        worker
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

#[allow(clippy::print_stdout)] // shown only when the test fails
fn show_logs(workers: &[Worker]) {
    for w in workers {
        println!("--- worker {} log\n{}", w.name, w.log_text());
    }
}

/// The workers the tests start, by name: each has its own key, made before any starts, so
/// every worker and controller trusts every one of them (`workers.pub`).
const WORKERS: &[&str] = &["w1", "w2", "w3", "eu1", "rest1", "plain", "keyed"];

/// `wisp keygen jobs.key` in `dir`, and a key for each of [`WORKERS`], gathered in
/// `workers.pub` as an operator would `cat` them.
fn keygen(dir: &Path) {
    let mut c = wisp_tests::wisp_command!(dir);
    c.args(["keygen", "jobs.key"]).current_dir(dir);
    let out = wisp::run(&mut c, dir);
    assert!(out.status.success(), "keygen failed");
    for name in WORKERS {
        worker_key(dir, name);
    }
}

/// `NAME.key` in `dir` (made when missing, its public half added to `workers.pub`).
fn worker_key(dir: &Path, name: &str) {
    let key = dir.join(format!("{name}.key"));
    if key.exists() {
        return;
    }
    let public = ::wisp_bus::item::Signer::generate(&key).expect("a worker key");
    let mut all = std::fs::read_to_string(dir.join("workers.pub")).unwrap_or_default();
    all.push_str(&std::fs::read_to_string(public).expect("its public key"));
    std::fs::write(dir.join("workers.pub"), all).expect("write workers.pub");
}

/// The controller command: `wisp ARGS -i hosts (credentials) --nats URL (its user)
/// --sign-jobs jobs.key --trust-workers workers.pub`.
fn controller(fleet: &Fleet, dir: &Path, nats: &Nats, args: &[&str]) -> Command {
    let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
    let mut c = wisp_tests::wisp_command!(dir);
    c.args(&args[..split])
        .args(["-i", "hosts"])
        .args(fleet.root_options())
        .args(nats.args(false))
        .args(["--sign-jobs", "jobs.key", "--trust-workers", "workers.pub"])
        .args(&args[split..])
        .current_dir(dir);
    c
}

/// The `kind: worker` lines of the newest run, from the state store (`wisp show last --json`).
fn worker_lines(dir: &Path) -> Vec<serde_json::Value> {
    let mut show = wisp_tests::wisp_command!(dir);
    show.args(["show", "last", "--json"]).current_dir(dir);
    let out = wisp::run(&mut show, dir);
    assert!(out.status.success(), "wisp show failed");
    text(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "worker")
        .collect()
}

/// A plain NATS client on `nats`: signed in as `seed` (a role's nkey file), or as no one.
async fn client(nats: &Nats, seed: Option<&Path>) -> Result<async_nats::Client, String> {
    // A role's replies come on its own prefix (its permissions allow no other).
    let mut options = async_nats::ConnectOptions::new()
        .custom_inbox_prefix(::wisp_bus::permissions::CONTROLLER_INBOX);
    if let Some(seed) = seed {
        let seed = std::fs::read_to_string(seed).expect("read the seed");
        options = options.nkey(seed.trim().to_owned());
    }
    options
        .connect(nats.url.as_str())
        .await
        .map_err(|e| e.to_string())
}

/// The controller's nkey of a secured server (who may put work on the stream).
fn controller_seed(nats: &Nats) -> Option<&Path> {
    nats.users.as_ref().map(|u| u.controller.as_path())
}

/// Puts `body` with `signature` (a header value, when given) on the work stream, as a client
/// holding the controller's bus credentials.
fn publish(nats: &Nats, subject: &str, body: Vec<u8>, signature: Option<String>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let client = client(nats, controller_seed(nats))
            .await
            .expect("connect to NATS");
        let js = async_nats::jetstream::new(client);
        let mut headers = async_nats::HeaderMap::new();
        if let Some(sig) = signature {
            headers.insert("Wisp-Signature", sig.as_str());
        }
        js.publish_with_headers(subject.to_owned(), headers, body.into())
            .await
            .expect("publish")
            .await
            .expect("stored");
    });
}

/// Who a plain bus client signs in as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// No credentials at all.
    Anonymous,
    /// The controllers' bus user (it can publish work, but holds no job key).
    Controller,
    /// The workers' bus user (it can publish events and claims, but holds no worker key).
    Worker,
}

/// A plain NATS client, as an attacker runs one: the library, no wisp code between it and
/// the server.
struct Attacker {
    rt: tokio::runtime::Runtime,
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
}

impl Attacker {
    fn connect(nats: &Nats, role: Role) -> Result<Attacker, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let (seed, inbox) = match (role, &nats.users) {
            (Role::Controller, Some(u)) => (
                Some(u.controller.clone()),
                ::wisp_bus::permissions::CONTROLLER_INBOX,
            ),
            (Role::Worker, Some(u)) => (
                Some(u.worker.clone()),
                ::wisp_bus::permissions::WORKER_INBOX,
            ),
            _ => (None, "_INBOX"),
        };
        let client = rt.block_on(async {
            let mut options = async_nats::ConnectOptions::new()
                .custom_inbox_prefix(inbox)
                .connection_timeout(Duration::from_secs(5));
            if let Some(seed) = seed {
                let seed = std::fs::read_to_string(seed).expect("read the seed");
                options = options.nkey(seed.trim().to_owned());
            }
            options.connect(nats.url.as_str()).await
        });
        let client = client.map_err(|e| e.to_string())?;
        let js = rt.block_on(async { async_nats::jetstream::new(client.clone()) });
        Ok(Attacker { rt, client, js })
    }

    /// A plain publish (no JetStream ack awaited), with headers.
    fn publish(&self, subject: &str, body: Vec<u8>, headers: &[(&str, &str)]) {
        let mut map = async_nats::HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, *v);
        }
        self.rt.block_on(async {
            let _ = self
                .client
                .publish_with_headers(subject.to_owned(), map, body.into())
                .await;
            let _ = self.client.flush().await;
        });
    }

    /// The items waiting on the work stream: taken from the workers' consumer (as a worker
    /// user may), read, and handed back at once (`nak`), so the workers still get them.
    fn peek_items(&self, n: usize) -> Vec<serde_json::Value> {
        use futures_util::StreamExt;
        self.rt.block_on(async {
            let stream = self
                .js
                .get_stream("WISP_WORK")
                .await
                .expect("the work stream");
            let consumer: async_nats::jetstream::consumer::PullConsumer = stream
                .get_consumer("wisp-any")
                .await
                .expect("the workers' consumer");
            let mut items = Vec::new();
            let mut batch = consumer
                .fetch()
                .max_messages(n)
                .expires(Duration::from_secs(5))
                .messages()
                .await
                .expect("fetch");
            while let Some(Ok(msg)) = batch.next().await {
                items.push(serde_json::from_slice(&msg.payload).expect("an item"));
                let _ = msg
                    .ack_with(async_nats::jetstream::AckKind::Nak(None))
                    .await;
            }
            items
        })
    }

    /// Runs one JetStream management call; `Err` when the server refused it or never answered
    /// (a permissions violation is dropped, so the request times out).
    fn manage<T, F>(&self, call: F) -> Result<T, String>
    where
        F: Future<Output = Result<T, String>>,
    {
        self.rt.block_on(async {
            match tokio::time::timeout(Duration::from_secs(6), call).await {
                Ok(r) => r,
                Err(_) => Err("no answer".into()),
            }
        })
    }
}

/// An event as a forger writes it: the envelope a worker sends, for `item` of `run`.
fn forged_event(item: &serde_json::Value, seq: u64, back: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "v": 2, "run": item["run"], "item": item["id"], "worker": "w1", "seq": seq,
        "back": back,
    }))
    .expect("an envelope")
}

/// The subject of `item`'s events.
fn events_subject(item: &serde_json::Value) -> String {
    format!(
        "wisp.events.{}.{}",
        item["run"].as_str().expect("the item's run"),
        item["id"].as_str().expect("the item's id")
    )
}

/// A worker, stopped by SIGTERM and waited for.
fn stop_worker(w: &mut Worker) {
    if let Some(child) = &w.child {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
    }
    let stopped = wait_for(Duration::from_secs(30), || {
        w.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
            .map(|_| ())
    });
    assert!(stopped.is_some(), "worker {} ignored SIGTERM", w.name);
    w.child = None;
}
