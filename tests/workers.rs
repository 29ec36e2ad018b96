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
        let mut c = wisp_tests::wisp_command!(dir);
        c.args([
            "worker",
            "--nats",
            &nats.url,
            "--name",
            name,
            "--trust-jobs",
            "jobs.key.pub",
        ])
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
    let mut c = wisp_tests::wisp_command!(dir);
    c.args([
        "worker",
        "--nats",
        &nats.url,
        "--trust-jobs",
        "jobs.key.pub",
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

/// `wisp keygen jobs.key` in `dir`.
fn keygen(dir: &Path) {
    let mut c = wisp_tests::wisp_command!(dir);
    c.args(["keygen", "jobs.key"]).current_dir(dir);
    let out = wisp::run(&mut c, dir);
    assert!(out.status.success(), "keygen failed");
}

/// The controller command: `wisp ARGS -i hosts (credentials) --nats URL --sign-jobs key`.
fn controller(fleet: &Fleet, dir: &Path, nats: &Nats, args: &[&str]) -> Command {
    let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
    let mut c = wisp_tests::wisp_command!(dir);
    c.args(&args[..split])
        .args(["-i", "hosts"])
        .args(fleet.root_options())
        .args(["--nats", &nats.url, "--sign-jobs", "jobs.key"])
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
        .args(["retry", "--nats", &nats.url, "--sign-jobs", "jobs.key"])
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

/// Puts `body` with `signature` (a header value, when given) on the work stream.
fn publish(nats: &Nats, subject: &str, body: Vec<u8>, signature: Option<String>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let client = async_nats::connect(nats.url.as_str())
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
    let mut run = controller(&fleet, &tmp.0, &nats, &["run", "all", "--", "sleep", "300"]);
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
            .filter(|(_, argv)| argv == &["sleep", "300"])
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
            .any(|(_, argv)| argv == &["sleep", "300"]))
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
    let user = nkeys::KeyPair::new_user();
    std::fs::write(tmp.0.join("seed"), user.seed().unwrap()).unwrap();
    let nats = Nats::start_with(
        &tmp.0,
        &format!(
            "authorization {{ users = [ {{ nkey: \"{}\" }} ] }}",
            user.public_key()
        ),
    );
    keygen(&tmp.0);
    // Without the nkey the bus refuses a worker, and it says so.
    assert_worker_shut_out(&tmp.0, &nats);
    let nkey = ["--nats-nkey", "seed"];
    let workers = [
        Worker::start_with(
            &fleet,
            &tmp.0,
            &nats,
            "eu1",
            4,
            &[&nkey[..], &["--region", "eu"]].concat(),
        ),
        Worker::start_with(&fleet, &tmp.0, &nats, "rest1", 4, &nkey),
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
    let mut run = controller(
        &fleet,
        &tmp.0,
        &nats,
        &["drift", "drift.toml", "all", "--nats-nkey", "seed"],
    );
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
    let nats = Nats::start_with(
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
