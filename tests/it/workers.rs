//! Workers on NATS JetStream against a real `nats-server -js` and real sshd hosts: runs
//! handed to several workers converge like local runs; a worker SIGKILLed mid-run loses no
//! plan (another worker runs it again, never at the same time) and its commands are reported
//! as lost; items put on the stream without a valid signature, or replayed, are refused by
//! the workers; a NATS server that goes away mid-run ends the run clearly, non-zero.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wisp_tests::nats::Nats;
use wisp_tests::sshd::Fleet;
use wisp_tests::{ScratchDir, root_or_explain, wait_for, wisp};

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

/// A worker started in `dir` with no credentials or CA for `nats` is shut out: exit 3, and
/// the error names the server.
fn assert_worker_shut_out(dir: &Path, nats: &Nats) {
    worker_key(dir, "w0");
    let mut c = wisp_tests::wisp_command!(dir);
    c.args([
        "worker",
        "--nats",
        &nats.url,
        "--trust-jobs",
        "jobs.key.pub",
        "--sign-events",
        "w0.key",
    ])
    .current_dir(dir);
    let refused = wisp::run(&mut c, dir);
    assert_eq!(refused.status.code(), Some(3));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains(&format!("cannot reach the NATS server at {}", nats.url)),
        "{stderr}"
    );
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
    let public = ::wisp::bus::item::Signer::generate(&key).expect("a worker key");
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

const PLAN: &str = r#"
[[task]]
name = "first"
op = "file.write"
path = "OUT/{{ host.name }}.a"
content = "a\n"

[[task]]
name = "wait"
op = "exec"
argv = ["sleep", "2"]
changed_when = false

[[task]]
name = "second"
op = "file.write"
path = "OUT/{{ host.name }}.b"
content = "b\n"
"#;

fn write_plan(dir: &Path) -> PathBuf {
    let out = dir.join("out");
    std::fs::create_dir_all(&out).expect("create the output folder");
    std::fs::write(
        dir.join("plan.toml"),
        PLAN.replace("OUT", &out.display().to_string()),
    )
    .expect("write the plan");
    out
}

#[test]
fn three_workers_converge_thirty_hosts_through_a_killed_worker() {
    if !root_or_explain("workers reaching sshd hosts as root") {
        return;
    }
    let tmp = ScratchDir::new("workers");
    let fleet = Fleet::start(30);
    fleet.write_inventory(&tmp.0.join("hosts"));
    let nats = Nats::start(&tmp.0);
    keygen(&tmp.0);
    let out = write_plan(&tmp.0);
    let mut workers: Vec<Worker> = (1..=3)
        .map(|i| Worker::start(&fleet, &tmp.0, &nats, &format!("w{i}"), 5))
        .collect();
    let mut run = controller(
        &fleet,
        &tmp.0,
        &nats,
        &["apply", "plan.toml", "all", "--forks", "30"],
    );
    run.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = run.spawn().expect("start the controller");
    // Kill w1 while it is running hosts of its own.
    let busy = wait_for(Duration::from_secs(60), || {
        workers[0]
            .log_text()
            .contains(": running item")
            .then_some(())
    });
    assert!(busy.is_some(), "w1 never took an item");
    workers[0].kill();
    let done = child.wait_with_output().expect("wait for the controller");
    wisp::show(&run, &done, &tmp.0);
    show_logs(&workers);
    let stderr = text(&done.stderr);
    assert_eq!(done.status.code(), Some(0), "the run did not converge");
    assert!(
        stderr.contains("30 hosts: 30 ok, 0 failed, 0 unreachable"),
        "recap: {stderr}"
    );
    for i in 1..=30 {
        for part in ["a", "b"] {
            let file = out.join(format!("web{i:02}.{part}"));
            assert!(file.is_file(), "{} was not written", file.display());
        }
    }
    // From the store: every host finished once; a host w1 had claimed was taken over from
    // it, and no claim started while another worker's claim on the host was live.
    let lines = worker_lines(&tmp.0);
    let mut by_host: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
    for l in &lines {
        by_host
            .entry(l["host"].as_str().unwrap().to_owned())
            .or_default()
            .push(l);
    }
    assert_eq!(by_host.len(), 30, "worker lines: {lines:#?}");
    let mut taken_over = 0;
    for (host, events) in &by_host {
        let finished: Vec<_> = events.iter().filter(|e| e["event"] == "finished").collect();
        assert_eq!(finished.len(), 1, "{host}: {events:#?}");
        assert_ne!(
            finished[0]["worker"], "w1",
            "{host} finished on the killed worker"
        );
        let mut live: Option<&str> = None;
        for e in events.iter().filter(|e| e["event"] == "claimed") {
            let worker = e["worker"].as_str().unwrap();
            // A second claim is only ever a takeover of the lost worker's claim (whose own
            // claim line may have died with it).
            if let Some(holder) = live {
                assert_eq!(e["took_over"].as_str(), Some(holder), "{host}: {events:#?}");
            }
            if !e["took_over"].is_null() {
                assert_eq!(e["took_over"], "w1", "{host}: {events:#?}");
                taken_over += 1;
            }
            live = Some(worker);
        }
    }
    assert!(
        taken_over >= 1,
        "no host of the killed worker was run again: {lines:#?}"
    );
    // The same plan run locally afterwards finds all 30 hosts converged.
    let local = fleet.wisp(
        wisp_tests::wisp_command!(&tmp.0),
        &tmp.0,
        &["apply", "plan.toml", "all"],
    );
    assert_eq!(local.status.code(), Some(0));
    let local_out = text(&local.stdout);
    assert!(
        !local_out.contains("changed "),
        "not converged: {local_out}"
    );
    drop(workers);
    fleet.assert_clean();
    // Everything the controller and the workers did, a killed worker's takeover included,
    // is within their permissions on the server.
    assert_eq!(nats.violations(), Vec::<String>::new());
}

#[test]
fn an_exec_item_of_a_killed_worker_is_reported_lost() {
    if !root_or_explain("workers reaching sshd hosts as root") {
        return;
    }
    let tmp = ScratchDir::new("workers-lost");
    let fleet = Fleet::start(4);
    fleet.write_inventory(&tmp.0.join("hosts"));
    let nats = Nats::start(&tmp.0);
    keygen(&tmp.0);
    let mut w1 = Worker::start(&fleet, &tmp.0, &nats, "w1", 4);
    let mut run = controller(&fleet, &tmp.0, &nats, &["run", "all", "--", "sleep", "4"]);
    run.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = run.spawn().expect("start the controller");
    let busy = wait_for(Duration::from_secs(60), || {
        (w1.log_text().matches(": running item").count() == 4).then_some(())
    });
    assert!(
        busy.is_some(),
        "w1 did not take all four items:\n{}",
        w1.log_text()
    );
    w1.kill();
    // Another worker gets the items again after the ack wait, and reports them lost.
    let w2 = Worker::start(&fleet, &tmp.0, &nats, "w2", 4);
    let done = child.wait_with_output().expect("wait for the controller");
    wisp::show(&run, &done, &tmp.0);
    show_logs(&[w1]);
    let stderr = text(&done.stderr);
    assert_eq!(
        done.status.code(),
        Some(3),
        "lost hosts are unreachable: {stderr}"
    );
    assert_eq!(
        stderr.matches("UNREACHABLE: lost with worker w1").count(),
        4,
        "{stderr}"
    );
    assert!(
        stderr.contains("4 hosts: 0 ok, 0 failed, 4 unreachable"),
        "{stderr}"
    );
    let lines = worker_lines(&tmp.0);
    assert_eq!(
        lines.iter().filter(|l| l["event"] == "lost").count(),
        4,
        "{lines:#?}"
    );
    assert_eq!(
        lines.iter().filter(|l| l["event"] == "finished").count(),
        0,
        "{lines:#?}"
    );
    // `wisp retry` through the bus runs the lost hosts again, on the live worker.
    let mut retry = wisp_tests::wisp_command!(&tmp.0);
    retry
        .arg("retry")
        .args(nats.args(false))
        .args(["--sign-jobs", "jobs.key", "--trust-workers", "workers.pub"])
        .args(["--", "sleep", "1"])
        .current_dir(&tmp.0);
    let again = wisp::run(&mut retry, &tmp.0);
    show_logs(std::slice::from_ref(&w2));
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("4 hosts: 4 ok"),
        "{}",
        text(&again.stderr)
    );
    let lines = worker_lines(&tmp.0);
    let finished: Vec<_> = lines.iter().filter(|l| l["event"] == "finished").collect();
    assert_eq!(finished.len(), 4, "{lines:#?}");
    assert!(finished.iter().all(|l| l["worker"] == "w2"), "{lines:#?}");
}

/// A plain NATS client on `nats`: signed in as `seed` (a role's nkey file), or as no one.
async fn client(nats: &Nats, seed: Option<&Path>) -> Result<async_nats::Client, String> {
    // A role's replies come on its own prefix (its permissions allow no other).
    let mut options = async_nats::ConnectOptions::new()
        .custom_inbox_prefix(::wisp::bus::permissions::CONTROLLER_INBOX);
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

#[test]
fn forged_and_replayed_items_are_refused() {
    use ::wisp::bus::item::{FORMAT, HostSpec, Item, Signer, Start, Work, now_ms, random_id};
    if !root_or_explain("workers reaching sshd hosts as root") {
        return;
    }
    let tmp = ScratchDir::new("workers-forged");
    let fleet = Fleet::start(1);
    fleet.write_inventory(&tmp.0.join("hosts"));
    let nats = Nats::start(&tmp.0);
    keygen(&tmp.0);
    // A key the workers do not trust.
    std::fs::create_dir(tmp.0.join("other")).unwrap();
    let mut c = wisp_tests::wisp_command!(&tmp.0);
    c.args(["keygen", "other/jobs.key"]).current_dir(&tmp.0);
    assert!(wisp::run(&mut c, &tmp.0).status.success());
    let workers: Vec<Worker> = (1..=2)
        .map(|i| Worker::start(&fleet, &tmp.0, &nats, &format!("w{i}"), 2))
        .collect();
    let host = &fleet.hosts[0];
    let marker = |name: &str| tmp.0.join(format!("ran-{name}"));
    let item = |name: &str, expires_ms: u64| Item {
        format: FORMAT,
        id: random_id(),
        run: random_id(),
        issued_ms: now_ms(),
        expires_ms,
        region: "any".into(),
        host: HostSpec {
            name: "web01".into(),
            address: host.addr.clone(),
            port: Some(host.port),
            user: Some("root".into()),
            vars: Default::default(),
        },
        work: Work::Exec {
            args: wisp_protocol::ops::ExecArgs {
                argv: Some(vec!["touch".into(), marker(name).display().to_string()]),
                ..Default::default()
            },
            limits: Box::default(),
        },
        start: Start {
            connect_timeout_ms: 30_000,
            ttl_ms: 60_000,
            become_root: false,
        },
        redeliver_exec: false,
        secrets: None,
    };
    let trusted = Signer::load(&tmp.0.join("jobs.key")).unwrap();
    let other = Signer::load(&tmp.0.join("other/jobs.key")).unwrap();
    let later = now_ms() + 600_000;
    let subject = |i: &Item| format!("wisp.work.any.{}", i.run);
    // No signature; a key nobody trusts; a trusted signature over other bytes.
    let unsigned = item("unsigned", later);
    publish(
        &nats,
        &subject(&unsigned),
        serde_json::to_vec(&unsigned).unwrap(),
        None,
    );
    let forged = item("forged", later);
    let body = serde_json::to_vec(&forged).unwrap();
    publish(
        &nats,
        &subject(&forged),
        body.clone(),
        Some(other.sign(&body).unwrap()),
    );
    let altered = item("altered", later);
    let good = serde_json::to_vec(&item("original", later)).unwrap();
    publish(
        &nats,
        &subject(&altered),
        serde_json::to_vec(&altered).unwrap(),
        Some(trusted.sign(&good).unwrap()),
    );
    // An old signed item, past its expiry.
    let old = item("expired", now_ms() - 1_000);
    let body = serde_json::to_vec(&old).unwrap();
    publish(
        &nats,
        &subject(&old),
        body.clone(),
        Some(trusted.sign(&body).unwrap()),
    );
    // A genuine item runs once; the same bytes put on the stream again are a replay.
    let genuine = item("genuine", later);
    let body = serde_json::to_vec(&genuine).unwrap();
    let sig = trusted.sign(&body).unwrap();
    publish(&nats, &subject(&genuine), body.clone(), Some(sig.clone()));
    let ran = wait_for(Duration::from_secs(60), || {
        marker("genuine").is_file().then_some(())
    });
    assert!(ran.is_some(), "the genuine item did not run");
    std::fs::remove_file(marker("genuine")).unwrap();
    publish(&nats, &subject(&genuine), body, Some(sig));
    let logs = || workers.iter().map(Worker::log_text).collect::<String>();
    let refused = wait_for(Duration::from_secs(30), || {
        (logs().matches("REFUSED").count() >= 5).then_some(())
    });
    show_logs(&workers);
    assert!(
        refused.is_some(),
        "not every bad item was refused:\n{}",
        logs()
    );
    let all = logs();
    for why in [
        "no signature",
        "a signature by no trusted job key",
        "expired",
        "replayed: item",
    ] {
        assert!(all.contains(why), "no refusal for {why:?}:\n{all}");
    }
    assert_eq!(
        all.matches("a signature by no trusted job key").count(),
        2,
        "{all}"
    );
    // Give a wrongly accepted item time to show, then check that none ran.
    std::thread::sleep(Duration::from_secs(2));
    for name in [
        "unsigned", "forged", "altered", "original", "expired", "genuine",
    ] {
        assert!(!marker(name).exists(), "the {name} item ran");
    }
}

#[test]
fn a_nats_server_lost_mid_run_ends_the_run_and_half_applies_nothing() {
    if !root_or_explain("workers reaching sshd hosts as root") {
        return;
    }
    let tmp = ScratchDir::new("workers-nats-lost");
    let fleet = Fleet::start(6);
    fleet.write_inventory(&tmp.0.join("hosts"));
    let mut nats = Nats::start(&tmp.0);
    keygen(&tmp.0);
    let out = write_plan(&tmp.0);
    let w1 = Worker::start(&fleet, &tmp.0, &nats, "w1", 3);
    let mut run = controller(&fleet, &tmp.0, &nats, &["apply", "plan.toml", "all"]);
    run.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = run.spawn().expect("start the controller");
    let busy = wait_for(Duration::from_secs(60), || {
        w1.log_text().contains(": running item").then_some(())
    });
    assert!(busy.is_some(), "w1 never took an item");
    nats.stop();
    let done = child.wait_with_output().expect("wait for the controller");
    wisp::show(&run, &done, &tmp.0);
    let stderr = text(&done.stderr);
    assert_ne!(done.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("lost the NATS server at nats://127.0.0.1"),
        "{stderr}"
    );
    // The worker finishes the hosts it started (all three tasks); the others were never
    // touched: no host has the first file without the second.
    let finished = wait_for(Duration::from_secs(30), || {
        (w1.log_text().matches(": ok").count() >= 1).then_some(())
    });
    show_logs(&[w1]);
    assert!(finished.is_some(), "the worker did not finish its hosts");
    std::thread::sleep(Duration::from_secs(3));
    for i in 1..=6 {
        let (a, b) = (
            out.join(format!("web{i:02}.a")),
            out.join(format!("web{i:02}.b")),
        );
        assert_eq!(a.is_file(), b.is_file(), "web{i:02} half-applied");
    }
}

#[test]
fn ctrl_c_cancels_the_remote_work_through_the_bus() {
    if !root_or_explain("workers reaching sshd hosts as root") {
        return;
    }
    let tmp = ScratchDir::new("workers-cancel");
    let fleet = Fleet::start(3);
    fleet.write_inventory(&tmp.0.join("hosts"));
    let nats = Nats::start(&tmp.0);
    keygen(&tmp.0);
    let w1 = Worker::start(&fleet, &tmp.0, &nats, "w1", 3);
    // A duration no other test uses: the process checks below see only this test's sleeps.
    let marker = format!("300.{}", std::process::id() % 1000);
    let mut run = controller(
        &fleet,
        &tmp.0,
        &nats,
        &["run", "all", "--", "sleep", &marker],
    );
    run.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = run.spawn().expect("start the controller");
    let busy = wait_for(Duration::from_secs(60), || {
        (w1.log_text().matches(": running item").count() == 3).then_some(())
    });
    assert!(
        busy.is_some(),
        "w1 did not take the three items:\n{}",
        w1.log_text()
    );
    // The remote commands are running before the interrupt.
    let sleeping = wait_for(Duration::from_secs(30), || {
        (wisp_tests::all_processes()
            .iter()
            .filter(|(_, argv)| argv == &["sleep", marker.as_str()])
            .count()
            >= 3)
            .then_some(())
    });
    assert!(sleeping.is_some(), "the commands did not start");
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let done = child.wait_with_output().expect("wait for the controller");
    wisp::show(&run, &done, &tmp.0);
    show_logs(std::slice::from_ref(&w1));
    let stderr = text(&done.stderr);
    assert_eq!(done.status.code(), Some(99), "{stderr}");
    assert!(
        w1.log_text().contains(": cancel"),
        "the worker got no cancel"
    );
    // The runner killed each command's tree and removed itself, as in a local run.
    let gone = wait_for(Duration::from_secs(20), || {
        (!wisp_tests::all_processes()
            .iter()
            .any(|(_, argv)| argv == &["sleep", marker.as_str()]))
        .then_some(())
    });
    assert!(gone.is_some(), "the remote commands outlived the cancel");
    fleet.assert_clean();
}

#[test]
fn regions_keep_hosts_to_their_workers_and_nkeys_guard_the_bus() {
    if !root_or_explain("workers reaching sshd hosts as root") {
        return;
    }
    let tmp = ScratchDir::new("workers-regions");
    let fleet = Fleet::start(4);
    // web01 and web02 are in region eu; web03 and web04 in none.
    fleet.write_inventory(&tmp.0.join("hosts"));
    let inventory = std::fs::read_to_string(tmp.0.join("hosts")).unwrap();
    let tagged: String = inventory
        .lines()
        .map(|l| {
            if l.starts_with("web01") || l.starts_with("web02") {
                format!("{l} wisp_region=eu\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(tmp.0.join("hosts"), tagged).unwrap();
    let nats = Nats::start(&tmp.0);
    keygen(&tmp.0);
    // Without the nkey the bus refuses a worker, and it says so.
    assert_worker_shut_out(&tmp.0, &nats);
    let workers = [
        Worker::start_with(&fleet, &tmp.0, &nats, "eu1", 4, &["--region", "eu"]),
        Worker::start_with(&fleet, &tmp.0, &nats, "rest1", 4, &[]),
    ];
    let out = tmp.0.join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        tmp.0.join("drift.toml"),
        format!(
            "[[task]]\nname = \"conf\"\nop = \"file.write\"\npath = \"{}/conf\"\ncontent = \"x\\n\"\n",
            out.display()
        ),
    )
    .unwrap();
    // A drift check through the bus: folded as a local one is, exit 2 for drifted hosts.
    let mut run = controller(&fleet, &tmp.0, &nats, &["drift", "drift.toml", "all"]);
    let done = wisp::run(&mut run, &tmp.0);
    show_logs(&workers);
    assert_eq!(done.status.code(), Some(2), "drifted hosts exit 2");
    assert!(text(&done.stdout).contains("web[01-04]"), "not folded");
    assert!(!out.join("conf").exists(), "a drift check changed a host");
    let lines = worker_lines(&tmp.0);
    let claimed_by = |host: &str| {
        lines
            .iter()
            .find(|l| l["host"] == host && l["event"] == "claimed")
            .map(|l| l["worker"].as_str().unwrap().to_owned())
    };
    for (host, worker) in [
        ("web01", "eu1"),
        ("web02", "eu1"),
        ("web03", "rest1"),
        ("web04", "rest1"),
    ] {
        assert_eq!(claimed_by(host).as_deref(), Some(worker), "{lines:#?}");
    }
}

#[test]
fn secrets_reach_only_workers_holding_the_identity_and_never_cross_the_bus_in_clear() {
    if !root_or_explain("workers reaching sshd hosts as root") {
        return;
    }
    let tmp = ScratchDir::new("workers-secrets");
    let fleet = Fleet::start(2);
    fleet.write_inventory(&tmp.0.join("hosts"));
    let nats = Nats::start(&tmp.0);
    keygen(&tmp.0);
    let secrets = |args: &[&str], stdin: Option<&str>| {
        let mut c = wisp_tests::wisp_command!(&tmp.0);
        c.args(["secrets"]).args(args).current_dir(&tmp.0);
        if let Some(input) = stdin {
            let mut child = c
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run wisp secrets");
            std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), input.as_bytes())
                .expect("write the value");
            let out = child.wait_with_output().expect("wisp secrets");
            wisp::show(&c, &out, &tmp.0);
            return out;
        }
        wisp::run(&mut c, &tmp.0)
    };
    let controller_id = text(&secrets(&["keygen", "--out", "ctl.key"], None).stdout);
    let worker_id = text(&secrets(&["keygen", "--out", "wk.key"], None).stdout);
    assert!(
        secrets(
            &["init", "s.age", "--recipient", controller_id.trim()],
            None
        )
        .status
        .success()
    );
    let value = format!("s3cr3t-{}-bus", std::process::id());
    assert!(
        secrets(
            &["set", "s.age", "db_pass", "--identity", "ctl.key"],
            Some(&format!("{value}\n"))
        )
        .status
        .success()
    );
    std::fs::write(tmp.0.join("workers.recipients"), &worker_id).unwrap();
    let out = tmp.0.join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        tmp.0.join("plan.toml"),
        format!(
            r#"secrets = "s.age"

[[task]]
name = "echoes it"
op = "exec"
shell = 'echo "token is $TOKEN"'
env = {{ TOKEN = "{{{{ secret.db_pass }}}}" }}

[[task]]
name = "writes it"
op = "file.write"
path = "{}/{{{{ host.name }}}}.conf"
content = "password = {{{{ secret.db_pass }}}}\n"
mode = "0600"
"#,
            out.display()
        ),
    )
    .unwrap();
    let apply = |hosts: &str| {
        let mut run = controller(
            &fleet,
            &tmp.0,
            &nats,
            &[
                "apply",
                "plan.toml",
                hosts,
                "--identity",
                "ctl.key",
                "--worker-recipients",
                "workers.recipients",
            ],
        );
        wisp::run(&mut run, &tmp.0)
    };
    // A worker without the identity refuses the item: nothing runs.
    let mut plain = Worker::start(&fleet, &tmp.0, &nats, "plain", 2);
    let refused = apply("web01");
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("worker plain refused the item: its secrets do not open"),
        "{}",
        text(&refused.stderr)
    );
    assert!(!out.join("web01.conf").exists());
    plain.kill();
    // The worker that holds it runs the plan; the output comes back hidden.
    let keyed = Worker::start_with(&fleet, &tmp.0, &nats, "keyed", 2, &["--identity", "wk.key"]);
    let done = apply("all");
    show_logs(&[plain, keyed]);
    assert_eq!(done.status.code(), Some(0));
    let stdout = text(&done.stdout);
    assert!(stdout.contains("token is [secret:db_pass]"), "{stdout}");
    assert!(!stdout.contains(&value) && !text(&done.stderr).contains(&value));
    for host in ["web01", "web02"] {
        let conf = std::fs::read_to_string(out.join(format!("{host}.conf"))).unwrap();
        assert_eq!(conf, format!("password = {value}\n"));
    }
    // Nothing the bus stored (items, events, claims) holds the value in clear; the hidden
    // form of the output is there, so the search does see the events.
    let store = tmp.0.join("nats-store");
    assert!(!wisp_tests::files_containing(&store, b"token is [secret:db_pass]").is_empty());
    let leaked = wisp_tests::files_containing(&store, value.as_bytes());
    assert!(
        leaked.is_empty(),
        "the secret is in the bus's store: {leaked:?}"
    );
}

#[test]
fn redeliver_exec_runs_a_lost_command_again_on_another_worker() {
    if !root_or_explain("workers reaching sshd hosts as root") {
        return;
    }
    let tmp = ScratchDir::new("workers-redeliver");
    let fleet = Fleet::start(2);
    fleet.write_inventory(&tmp.0.join("hosts"));
    let nats = Nats::start(&tmp.0);
    keygen(&tmp.0);
    let mut w1 = Worker::start(&fleet, &tmp.0, &nats, "w1", 2);
    let mut run = controller(
        &fleet,
        &tmp.0,
        &nats,
        &["run", "all", "--redeliver-exec", "--", "sleep", "3"],
    );
    run.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = run.spawn().expect("start the controller");
    let busy = wait_for(Duration::from_secs(60), || {
        (w1.log_text().matches(": running item").count() == 2).then_some(())
    });
    assert!(busy.is_some(), "w1 did not take both items");
    w1.kill();
    let w2 = Worker::start(&fleet, &tmp.0, &nats, "w2", 2);
    let done = child.wait_with_output().expect("wait for the controller");
    wisp::show(&run, &done, &tmp.0);
    show_logs(&[w1, w2]);
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    let lines = worker_lines(&tmp.0);
    for host in ["web01", "web02"] {
        let finished: Vec<_> = lines
            .iter()
            .filter(|l| l["host"] == host && l["event"] == "finished")
            .collect();
        assert_eq!(finished.len(), 1, "{lines:#?}");
        assert_eq!(finished[0]["worker"], "w2");
        assert!(
            lines
                .iter()
                .any(|l| l["host"] == host && l["took_over"] == "w1"),
            "{lines:#?}"
        );
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made with openssl in `dir`:
/// (ca.pem, server.pem, server.key).
fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl (Debian's openssl package)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            text(&out.stderr)
        );
    };
    ssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=wisp-test-ca",
    ]);
    ssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n")
        .expect("write the SAN extension");
    ssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "san.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

#[test]
fn a_tls_bus_is_reached_only_with_its_ca() {
    if !root_or_explain("workers reaching sshd hosts as root") {
        return;
    }
    let tmp = ScratchDir::new("workers-tls");
    let fleet = Fleet::start(1);
    fleet.write_inventory(&tmp.0.join("hosts"));
    let (ca, cert, key) = tls_files(&tmp.0);
    let nats = Nats::start_secured(
        &tmp.0,
        &format!(
            "tls {{ cert_file: \"{}\", key_file: \"{}\" }}",
            cert.display(),
            key.display()
        ),
    );
    keygen(&tmp.0);
    // A worker that does not know the server's CA is refused before anything is exchanged.
    assert_worker_shut_out(&tmp.0, &nats);
    let ca = ca.display().to_string();
    let worker = Worker::start_with(&fleet, &tmp.0, &nats, "w1", 1, &["--nats-ca", &ca]);
    let mut run = controller(
        &fleet,
        &tmp.0,
        &nats,
        &["run", "all", "--nats-ca", &ca, "--", "echo", "over tls"],
    );
    let done = wisp::run(&mut run, &tmp.0);
    show_logs(&[worker]);
    assert_eq!(done.status.code(), Some(0));
    assert!(
        text(&done.stdout).contains("web01 | over tls"),
        "{}",
        text(&done.stdout)
    );
}

// ---- Someone with access to the bus (SECURITY.md, attacker 7) ----

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
                ::wisp::bus::permissions::CONTROLLER_INBOX,
            ),
            (Role::Worker, Some(u)) => (
                Some(u.worker.clone()),
                ::wisp::bus::permissions::WORKER_INBOX,
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
        "v": 1, "run": item["run"], "item": item["id"], "worker": "w1", "seq": seq,
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

/// Case 1 (critical): a bus client that is not a worker reports results. With the workers'
/// own bus user (all the server lets it do is publish events and claims), it reads the
/// queued items and forges their events: a claim, an output line, facts with a hostname that
/// is shell code, a journal line that is not a task result, a result for another host, and
/// `ok` for a command that fails. Signed by nobody, or by a key no controller trusts, every
/// one is refused: the run reports the real failures (exit 2), the forged line is never
/// shown, and the store takes no facts, audit or host row from it, so a later plan that
/// reads cached facts sees the host's real name. Nobody else gets in at all.
#[test]
fn a_bus_client_cannot_forge_results_facts_or_rows() {
    if !root_or_explain("workers reaching sshd hosts as root") {
        return;
    }
    let tmp = ScratchDir::new("bus-forged-events");
    let fleet = Fleet::start(2);
    fleet.write_inventory(&tmp.0.join("hosts"));
    let nats = Nats::start(&tmp.0);
    keygen(&tmp.0);
    // Neither a client without credentials nor a stranger's nkey gets in.
    assert!(Attacker::connect(&nats, Role::Anonymous).is_err());
    // The consumer exists once a worker has started; the worker then leaves the items queued.
    let mut w1 = Worker::start(&fleet, &tmp.0, &nats, "w1", 2);
    stop_worker(&mut w1);
    let mut run = controller(
        &fleet,
        &tmp.0,
        &nats,
        &["run", "all", "--", "sh", "-c", "sleep 3; exit 1"],
    );
    run.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = run.spawn().expect("start the controller");
    let attacker = Attacker::connect(&nats, Role::Worker).expect("the workers' bus user");
    let mut items = Vec::new();
    let queued = wait_for(Duration::from_secs(30), || {
        items = attacker.peek_items(2);
        (items.len() == 2).then_some(())
    });
    assert!(queued.is_some(), "the items never showed on the stream");
    let host_key = "ssh ssh-ed25519 SHA256:forgedforgedforgedforgedforgedforgedforged";
    let untrusted = ::wisp::bus::auth::WorkerKey::load(&{
        std::fs::create_dir_all(tmp.0.join("evil")).unwrap();
        let key = tmp.0.join("evil/evil.key");
        ::wisp::bus::item::Signer::generate(&key).unwrap();
        key
    })
    .unwrap();
    for item in &items {
        let host = item["host"]["name"].as_str().unwrap().to_owned();
        let other = if host == "web01" { "web02" } else { "web01" };
        let forged = [
            serde_json::json!({"t": "claimed", "worker": "w1", "at_ms": 1, "took_over": null}),
            serde_json::json!({"t": "report", "event": {"call": "line", "host": host,
                "stream": "stdout", "line": "FORGED OUTPUT"}}),
            serde_json::json!({"t": "report", "event": {"call": "facts_read", "host": host,
                "host_key": host_key, "facts": {"hostname": "vm; touch /tmp/x #"}}}),
            serde_json::json!({"t": "report", "event": {"call": "journal",
                "line": {"kind": "audit", "act": "forged", "detail": "planted"}}}),
            serde_json::json!({"t": "finished", "worker": "w1", "at_ms": 2, "result": {
                "host": other, "outcome": "ok", "detail": "exit 0",
                "elapsed": {"secs": 0, "nanos": 0}, "sandbox": null}}),
            serde_json::json!({"t": "finished", "worker": "w1", "at_ms": 2, "result": {
                "host": host, "outcome": "ok", "detail": "exit 0",
                "elapsed": {"secs": 0, "nanos": 0}, "sandbox": null}}),
        ];
        for (i, back) in forged.into_iter().enumerate() {
            let body = forged_event(item, i as u64 + 1, back);
            // Unsigned, then signed by a key no controller trusts.
            attacker.publish(&events_subject(item), body.clone(), &[]);
            let sig = untrusted.sign(::wisp::bus::auth::Domain::Event, &body);
            attacker.publish(
                &events_subject(item),
                body,
                &[("Wisp-Worker-Signature", sig.as_str())],
            );
        }
    }
    // The real worker comes back and runs the real commands.
    let w1 = Worker::start(&fleet, &tmp.0, &nats, "w1", 2);
    let done = child.wait_with_output().expect("wait for the controller");
    wisp::show(&run, &done, &tmp.0);
    show_logs(std::slice::from_ref(&w1));
    let (stdout, stderr) = (text(&done.stdout), text(&done.stderr));
    assert_eq!(
        done.status.code(),
        Some(2),
        "the real exit 1, on both hosts: {stderr}"
    );
    assert!(!stdout.contains("FORGED"), "{stdout}");
    assert!(stderr.contains("2 hosts: 0 ok, 2 failed"), "{stderr}");
    assert!(
        stderr.contains("refused an event on the bus"),
        "the refusal is not said: {stderr}"
    );
    // The record holds the refusals, and nothing the forger wrote.
    let mut show = wisp_tests::wisp_command!(&tmp.0);
    show.args(["show", "last", "--json"]).current_dir(&tmp.0);
    let record = text(&wisp::run(&mut show, &tmp.0).stdout);
    assert!(record.contains("refused_event"), "{record}");
    for planted in ["vm; touch", "planted", "FORGED", host_key] {
        assert!(
            !record.contains(planted),
            "{planted:?} reached the store: {record}"
        );
    }
    // A plan that reads cached facts (no bus) sees the host's real name.
    std::fs::write(
        tmp.0.join("deploy.toml"),
        "[[task]]\nop = \"exec\"\nshell = \"echo deploying to {{ facts.hostname | quote }}\"\n",
    )
    .unwrap();
    let deploy = fleet.wisp(
        wisp_tests::wisp_command!(&tmp.0),
        &tmp.0,
        &["apply", "deploy.toml", "web01", "--facts-ttl", "1h"],
    );
    assert_eq!(deploy.status.code(), Some(0));
    assert!(
        !text(&deploy.stdout).contains("touch"),
        "{}",
        text(&deploy.stdout)
    );
    assert!(!Path::new("/tmp/x").exists());
}

/// Case 2: taking the workers' consumer. On wisp's server nobody may delete or replace the
/// consumer or the streams (the server refuses, and says so in its log). On a server that
/// lets anyone do anything (`--insecure-open-bus`), a consumer someone else made in its place
/// (another filter, which starves every worker) is refused by a running worker within its
/// idle check and by a worker starting; deleted streams are made again by the next run and
/// the worker carries on, saying what happened.
#[test]
fn nobody_on_the_bus_can_take_or_starve_the_workers_consumer() {
    if !root_or_explain("workers reaching sshd hosts as root") {
        return;
    }
    let tmp = ScratchDir::new("bus-consumer");
    let fleet = Fleet::start(1);
    fleet.write_inventory(&tmp.0.join("hosts"));
    let nats = Nats::start(&tmp.0);
    keygen(&tmp.0);
    let w1 = Worker::start(&fleet, &tmp.0, &nats, "w1", 1);
    for role in [Role::Worker, Role::Controller] {
        let a = Attacker::connect(&nats, role).unwrap();
        let stream = a
            .manage(async {
                a.js.get_stream("WISP_WORK")
                    .await
                    .map_err(|e| e.to_string())
            })
            .expect("both roles may look at the work stream");
        let deleted = a.manage(async {
            stream
                .delete_consumer("wisp-any")
                .await
                .map_err(|e| e.to_string())
        });
        assert!(deleted.is_err(), "{role:?} deleted the consumer");
        let gone = a.manage(async {
            a.js.delete_stream("WISP_WORK")
                .await
                .map_err(|e| e.to_string())
        });
        assert!(gone.is_err(), "{role:?} deleted the work stream");
    }
    let refused = nats.violations().join("\n");
    assert!(refused.contains("CONSUMER.DELETE.WISP_WORK"), "{refused}");
    assert!(refused.contains("STREAM.DELETE.WISP_WORK"), "{refused}");
    let mut run = controller(&fleet, &tmp.0, &nats, &["run", "all", "--", "true"]);
    assert_eq!(wisp::run(&mut run, &tmp.0).status.code(), Some(0));
    drop(w1);

    // The same attacks on a server that lets anyone in.
    let open_dir = tmp.0.join("open");
    std::fs::create_dir_all(&open_dir).unwrap();
    let open = Nats::start_open(&open_dir);
    let mut w1 = Worker::start(&fleet, &tmp.0, &open, "w1", 1);
    let a = Attacker::connect(&open, Role::Anonymous).expect("anyone gets in");
    let replace = |a: &Attacker| {
        a.manage(async {
            let stream =
                a.js.get_stream("WISP_WORK")
                    .await
                    .map_err(|e| e.to_string())?;
            stream
                .delete_consumer("wisp-any")
                .await
                .map_err(|e| e.to_string())?;
            stream
                .create_consumer(async_nats::jetstream::consumer::pull::Config {
                    durable_name: Some("wisp-any".into()),
                    filter_subject: "wisp.work.nothing.>".into(),
                    ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            Ok(())
        })
    };
    replace(&a).expect("an open server lets anyone replace the consumer");
    let noticed = wait_for(Duration::from_secs(40), || {
        w1.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    });
    show_logs(std::slice::from_ref(&w1));
    let status = noticed.expect("the worker kept pulling from a consumer it did not make");
    assert!(!status.success());
    assert!(
        w1.log_text()
            .contains("was not made by a trusted wisp worker"),
        "{}",
        w1.log_text()
    );
    w1.child = None;
    // A worker starting refuses it too, and says how to fix it.
    let mut c = wisp_tests::wisp_command!(&tmp.0);
    c.arg("worker")
        .args(open.args(true))
        .args(["--trust-jobs", "jobs.key.pub", "--sign-events", "w2.key"])
        .args(["--trust-workers", "workers.pub"])
        .current_dir(&tmp.0);
    let out = wisp::run(&mut c, &tmp.0);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("nats consumer rm WISP_WORK wisp-any"),
        "{}",
        text(&out.stderr)
    );
    // The admin deletes it; a worker makes it again. Then the streams are deleted under it.
    a.manage(async {
        let stream =
            a.js.get_stream("WISP_WORK")
                .await
                .map_err(|e| e.to_string())?;
        stream
            .delete_consumer("wisp-any")
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .unwrap();
    let w2 = Worker::start(&fleet, &tmp.0, &open, "w2", 1);
    for s in ["WISP_WORK", "WISP_EVENTS", "WISP_CLAIMS"] {
        a.manage(async {
            a.js.delete_stream(s)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .unwrap();
    }
    let mut run = controller(&fleet, &tmp.0, &open, &["run", "all", "--", "true"]);
    let done = wisp::run(&mut run, &tmp.0);
    show_logs(std::slice::from_ref(&w2));
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    // It made the consumer when it started, and again once it found it gone.
    assert!(
        w2.log_text()
            .matches("made the work consumer wisp-any")
            .count()
            >= 2,
        "the worker did not say its consumer was gone: {}",
        w2.log_text()
    );
}

/// Case 3: replaying a signed item after erasing its claim. On wisp's server no bus user
/// may purge the claims (refused, in the server's log), and the copy is refused by its
/// claim. On an open server the purge goes through, and the copy is still refused: the
/// worker's own ledger knows the id. The command ran once.
#[test]
fn a_replayed_item_is_refused_even_when_its_claim_is_purged() {
    use ::wisp::bus::item::{FORMAT, HostSpec, Item, Signer, Start, Work, now_ms, random_id};
    if !root_or_explain("workers reaching sshd hosts as root") {
        return;
    }
    let tmp = ScratchDir::new("bus-replay");
    let fleet = Fleet::start(1);
    let host = &fleet.hosts[0];
    keygen(&tmp.0);
    let trusted = Signer::load(&tmp.0.join("jobs.key")).unwrap();
    let counter = tmp.0.join("ran");
    let item = || Item {
        format: FORMAT,
        id: random_id(),
        run: random_id(),
        issued_ms: now_ms(),
        expires_ms: now_ms() + 300_000,
        region: "any".into(),
        host: HostSpec {
            name: "web01".into(),
            address: host.addr.clone(),
            port: Some(host.port),
            user: Some("root".into()),
            vars: Default::default(),
        },
        work: Work::Exec {
            args: wisp_protocol::ops::ExecArgs {
                argv: Some(vec![
                    "sh".into(),
                    "-c".into(),
                    format!("echo once >> {}", counter.display()),
                ]),
                ..Default::default()
            },
            limits: Box::default(),
        },
        start: Start {
            connect_timeout_ms: 30_000,
            ttl_ms: 60_000,
            become_root: false,
        },
        redeliver_exec: false,
        secrets: None,
    };
    let runs = || {
        std::fs::read_to_string(&counter)
            .unwrap_or_default()
            .lines()
            .count()
    };
    for open in [false, true] {
        let dir = tmp.0.join(if open { "open" } else { "secured" });
        std::fs::create_dir_all(&dir).unwrap();
        let nats = if open {
            Nats::start_open(&dir)
        } else {
            Nats::start(&dir)
        };
        let w1 = Worker::start(&fleet, &tmp.0, &nats, "w1", 1);
        let genuine = item();
        let body = serde_json::to_vec(&genuine).unwrap();
        let sig = trusted.sign(&body).unwrap();
        let subject = format!("wisp.work.any.{}", genuine.run);
        let before = runs();
        publish(&nats, &subject, body.clone(), Some(sig.clone()));
        let ran = wait_for(Duration::from_secs(60), || {
            (runs() == before + 1).then_some(())
        });
        assert!(ran.is_some(), "the genuine item did not run");
        // Erase the claim, as every bus user the server knows, then as anyone.
        let roles: &[Role] = if open {
            &[Role::Anonymous]
        } else {
            &[Role::Worker, Role::Controller]
        };
        for role in roles {
            let a = Attacker::connect(&nats, *role).unwrap();
            let purged = a.manage(async {
                let stream =
                    a.js.get_stream("WISP_CLAIMS")
                        .await
                        .map_err(|e| e.to_string())?;
                stream.purge().await.map(|_| ()).map_err(|e| e.to_string())
            });
            assert_eq!(purged.is_ok(), open, "{role:?} purging the claims");
        }
        // On wisp's server the claim stays, and refuses the copy to any worker: here one
        // on another machine (a ledger of its own). On an open server it is gone, and the
        // worker that ran the item refuses the copy from its ledger.
        let mut w1 = w1;
        let (worker, why) = if open {
            (w1, "already ran here")
        } else {
            assert!(
                nats.violations()
                    .join("\n")
                    .contains("STREAM.PURGE.WISP_CLAIMS")
            );
            stop_worker(&mut w1);
            let ledger = dir.join("elsewhere.ran").display().to_string();
            let w2 = Worker::start_with(&fleet, &tmp.0, &nats, "w2", 1, &["--ledger", &ledger]);
            (w2, "already ran from")
        };
        publish(&nats, &subject, body, Some(sig));
        let refused = wait_for(Duration::from_secs(30), || {
            worker.log_text().contains("replayed").then_some(())
        });
        show_logs(std::slice::from_ref(&worker));
        assert!(refused.is_some(), "the copy was not refused");
        assert!(worker.log_text().contains(why), "{}", worker.log_text());
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(runs(), before + 1, "the command ran again");
    }
}

/// Case 4: a claim written over by a bus client (the workers' own bus user, without a worker
/// key) while its item runs. It used to stop the item (the run ended interrupted); now the
/// worker sees a claim no trusted worker signed, writes its own back over it, and the item
/// runs to its end.
#[test]
fn a_forged_claim_does_not_stop_a_running_item() {
    if !root_or_explain("workers reaching sshd hosts as root") {
        return;
    }
    let tmp = ScratchDir::new("bus-claim");
    let fleet = Fleet::start(1);
    fleet.write_inventory(&tmp.0.join("hosts"));
    let nats = Nats::start(&tmp.0);
    keygen(&tmp.0);
    let mut w1 = Worker::start(&fleet, &tmp.0, &nats, "w1", 1);
    stop_worker(&mut w1);
    let mut run = controller(
        &fleet,
        &tmp.0,
        &nats,
        &["run", "all", "--", "sh", "-c", "sleep 6; echo finished"],
    );
    run.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = run.spawn().expect("start the controller");
    let attacker = Attacker::connect(&nats, Role::Worker).unwrap();
    let mut items = Vec::new();
    let queued = wait_for(Duration::from_secs(30), || {
        items = attacker.peek_items(1);
        (items.len() == 1).then_some(())
    });
    assert!(queued.is_some(), "the item never showed");
    let id = items[0]["id"].as_str().unwrap().to_owned();
    let w1 = Worker::start(&fleet, &tmp.0, &nats, "w1", 1);
    let running = wait_for(Duration::from_secs(30), || {
        w1.log_text().contains(": running item").then_some(())
    });
    assert!(running.is_some(), "{}", w1.log_text());
    // Three forged claims, a second apart: another worker's, fresh, not done.
    for _ in 0..3 {
        let claim = serde_json::json!({
            "item": id, "worker": "thief", "seq": 1, "beat_ms": ::wisp::bus::item::now_ms(),
            "done": false,
        });
        attacker.publish(
            &format!("wisp.claims.{id}"),
            serde_json::to_vec(&claim).unwrap(),
            &[],
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let done = child.wait_with_output().expect("wait for the controller");
    wisp::show(&run, &done, &tmp.0);
    show_logs(std::slice::from_ref(&w1));
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    assert!(text(&done.stdout).contains("finished"));
    assert!(
        w1.log_text().contains("a claim no trusted worker wrote"),
        "{}",
        w1.log_text()
    );
}

/// Cases 11 and 7 (worker side): subjects a bus client chose reach the worker's log escaped,
/// one line each; a worker whose server is gone while it runs an item still ends on SIGTERM.
#[test]
fn worker_logs_are_escaped_and_sigterm_ends_a_worker_without_its_server() {
    if !root_or_explain("workers reaching sshd hosts as root") {
        return;
    }
    let tmp = ScratchDir::new("bus-worker-log");
    let fleet = Fleet::start(1);
    // The NATS library refuses such a subject, so the attacker speaks the protocol itself,
    // on a server that lets it in.
    let mut nats = Nats::start_open(&tmp.0);
    keygen(&tmp.0);
    // Two slots: while one runs an item, the worker is pulling for the other.
    let mut w1 = Worker::start(&fleet, &tmp.0, &nats, "w1", 2);
    let addr = nats.url.trim_start_matches("nats://").to_owned();
    let mut raw = std::net::TcpStream::connect(&addr).unwrap();
    let subject = "wisp.work.any.\u{1b}]52;c;ZXZpbA==\u{7}\u{1b}[2Kfake";
    std::io::Write::write_all(
        &mut raw,
        format!("CONNECT {{\"verbose\":false}}\r\nPUB {subject} 10\r\nnot signed\r\nPING\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut answer = [0u8; 4096];
    let _ = std::io::Read::read(&mut raw, &mut answer);
    let logged = wait_for(Duration::from_secs(30), || {
        w1.log_text().contains("REFUSED").then_some(())
    });
    assert!(logged.is_some(), "{}", w1.log_text());
    let log = w1.log_text();
    assert!(!log.contains('\u{1b}') && !log.contains('\u{7}'), "{log:?}");
    assert!(log.contains(r"\x1b]52;c;ZXZpbA==\x07\x1b[2Kfake"), "{log}");
    // An item running when the server goes, and a pull waiting on it: the worker finishes
    // the item, cannot tell the bus, and still ends on SIGTERM (the pull used to wait for an
    // answer from a server that was gone, and the signal was never looked at).
    fleet.write_inventory(&tmp.0.join("hosts"));
    let mut run = controller(&fleet, &tmp.0, &nats, &["run", "all", "--", "sleep", "3"]);
    run.stdout(Stdio::null()).stderr(Stdio::null());
    let mut controller = run.spawn().expect("start the controller");
    let running = wait_for(Duration::from_secs(30), || {
        w1.log_text().contains(": running item").then_some(())
    });
    assert!(running.is_some(), "{}", w1.log_text());
    nats.stop();
    std::thread::sleep(Duration::from_secs(1));
    stop_worker(&mut w1);
    let _ = controller.kill();
    let _ = controller.wait();
}

/// Case 7 (worker path) and 12: a worker whose events are honest but carry a hostile host's
/// text (its detail and sandbox report) reaches the recap escaped; and only wisp's two users
/// can read anything on the bus: neither can subscribe to the work, the events or the other
/// role's replies, and a client without credentials is not let in.
#[test]
fn a_trusted_workers_text_is_escaped_and_only_wisps_roles_read_the_bus() {
    if !root_or_explain("workers reaching sshd hosts as root") {
        return;
    }
    let tmp = ScratchDir::new("bus-honest-worker");
    let fleet = Fleet::start(1);
    fleet.write_inventory(&tmp.0.join("hosts"));
    let nats = Nats::start(&tmp.0);
    keygen(&tmp.0);
    let mut w1 = Worker::start(&fleet, &tmp.0, &nats, "w1", 1);
    stop_worker(&mut w1);
    // The controller on a terminal.
    let (mut master, slave) = {
        use std::os::fd::FromRawFd;
        // SAFETY: the descriptor just returned; ptsname's buffer is copied at once.
        #[allow(unsafe_code)]
        unsafe {
            let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
            assert!(fd >= 0);
            assert_eq!(libc::grantpt(fd), 0);
            assert_eq!(libc::unlockpt(fd), 0);
            let name = std::ffi::CStr::from_ptr(libc::ptsname(fd))
                .to_string_lossy()
                .into_owned();
            (std::fs::File::from_raw_fd(fd), name)
        }
    };
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&slave)
        .unwrap();
    let mut run = controller(&fleet, &tmp.0, &nats, &["run", "all", "--", "true"]);
    run.stdin(Stdio::null())
        .stdout(tty.try_clone().unwrap())
        .stderr(tty)
        .env("NO_COLOR", "1");
    let mut child = run.spawn().expect("start the controller");
    drop(run);
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut master, &mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        seen
    });
    let attacker = Attacker::connect(&nats, Role::Worker).unwrap();
    let mut items = Vec::new();
    let queued = wait_for(Duration::from_secs(30), || {
        items = attacker.peek_items(1);
        (items.len() == 1).then_some(())
    });
    assert!(queued.is_some());
    let item = &items[0];
    // Speaking as worker w1, with its key: what its host said, passed on.
    let key = ::wisp::bus::auth::WorkerKey::load(&tmp.0.join("w1.key")).unwrap();
    let evil = "\u{1b}]52;c;ZXZpbA==\u{7}";
    for (seq, back) in [
        serde_json::json!({"t": "claimed", "worker": "w1", "at_ms": 1, "took_over": null}),
        serde_json::json!({"t": "finished", "worker": "w1", "at_ms": 2, "result": {
            "host": "web01", "outcome": "failed", "detail": format!("exit 1{evil}"),
            "elapsed": {"secs": 0, "nanos": 0}, "sandbox": format!("seccomp default{evil}")}}),
    ]
    .into_iter()
    .enumerate()
    {
        let body = forged_event(item, seq as u64 + 1, back);
        let sig = key.sign(::wisp::bus::auth::Domain::Event, &body);
        attacker.publish(
            &events_subject(item),
            body,
            &[("Wisp-Worker-Signature", sig.as_str())],
        );
    }
    let status = child.wait().unwrap();
    let seen = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    println!("--- the terminal\n{seen}");
    assert_eq!(status.code(), Some(2));
    assert!(!seen.contains(evil), "{seen:?}");
    assert!(seen.contains(r"exit 1\x1b]52;c;ZXZpbA==\x07"), "{seen:?}");
    assert!(
        seen.contains(r"seccomp default\x1b]52;c;ZXZpbA==\x07"),
        "{seen:?}"
    );

    // Reading the bus: neither role may subscribe beyond its own replies (and the cancels,
    // for workers); the server refuses and logs each.
    for (role, subjects) in [
        (
            Role::Worker,
            ["wisp.work.>", "wisp.events.>", "_I_WISP_C.>"],
        ),
        (
            Role::Controller,
            ["wisp.work.>", "wisp.claims.>", "_I_WISP_W.>"],
        ),
    ] {
        let a = Attacker::connect(&nats, role).unwrap();
        for subject in subjects {
            a.rt.block_on(async {
                let _sub = a.client.subscribe(subject.to_owned()).await;
                let _ = a.client.flush().await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            });
        }
    }
    let violations = nats.violations().join("\n");
    for subject in [
        "wisp.work.>",
        "wisp.events.>",
        "_I_WISP_C.>",
        "wisp.claims.>",
        "_I_WISP_W.>",
    ] {
        assert!(
            violations.contains(&format!("Subject \"{subject}\"")),
            "{subject}: {violations}"
        );
    }
    assert!(Attacker::connect(&nats, Role::Anonymous).is_err());
}

/// wisp refuses a server that lets clients in without credentials, on both sides, unless
/// told `--insecure-open-bus`; `wisp nats-config` writes users that close it.
#[test]
fn an_open_bus_is_refused_unless_asked_for() {
    if !root_or_explain("workers reaching sshd hosts as root") {
        return;
    }
    let tmp = ScratchDir::new("bus-open");
    let fleet = Fleet::start(1);
    fleet.write_inventory(&tmp.0.join("hosts"));
    let open = Nats::start_open(&tmp.0);
    keygen(&tmp.0);
    let mut c = wisp_tests::wisp_command!(&tmp.0);
    c.args(["worker", "--nats", &open.url])
        .args(["--trust-jobs", "jobs.key.pub", "--sign-events", "w1.key"])
        .current_dir(&tmp.0);
    let out = wisp::run(&mut c, &tmp.0);
    assert_eq!(out.status.code(), Some(5));
    assert!(text(&out.stderr).contains("lets a client in without credentials"));
    let mut run = wisp_tests::wisp_command!(&tmp.0);
    run.args(["run", "all", "-i", "hosts", "--nats", &open.url])
        .args(["--sign-jobs", "jobs.key", "--trust-workers", "workers.pub"])
        .args(["--", "true"])
        .current_dir(&tmp.0);
    let out = wisp::run(&mut run, &tmp.0);
    assert_eq!(out.status.code(), Some(5));
    assert!(
        text(&out.stderr).contains("wisp nats-config"),
        "{}",
        text(&out.stderr)
    );
    // With the flag, it works.
    let w1 = Worker::start(&fleet, &tmp.0, &open, "w1", 1);
    let mut run = controller(&fleet, &tmp.0, &open, &["run", "all", "--", "true"]);
    assert_eq!(wisp::run(&mut run, &tmp.0).status.code(), Some(0));
    drop(w1);
    // `wisp nats-config` writes the users and permissions these tests run the server with.
    let mut c = wisp_tests::wisp_command!(&tmp.0);
    c.args(["nats-config", "bus"]).current_dir(&tmp.0);
    assert!(wisp::run(&mut c, &tmp.0).status.success());
    let conf = std::fs::read_to_string(tmp.0.join("bus/wisp-auth.conf")).unwrap();
    assert!(conf.contains("permissions: $WISP_WORKER"), "{conf}");
    for seed in ["controller.nk", "worker.nk"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tmp.0.join("bus").join(seed))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{seed}");
    }
    let secured_dir = tmp.0.join("secured");
    std::fs::create_dir_all(&secured_dir).unwrap();
    let secured = Nats::start_with(&secured_dir, &conf);
    assert!(Attacker::connect(&secured, Role::Anonymous).is_err());
}
