//! Runs handed to workers converge like local runs, and the delivery rules hold: a killed
//! worker's plans run again elsewhere (never twice at once), its commands are reported lost
//! (or run again when asked), a lost server ends the run clearly, Ctrl-C reaches the workers.

use super::*;

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
