//! Attacker 7, holding the bus: taking or starving the workers' consumer, deleting streams,
//! hostile subjects in worker logs, a server gone under a running worker, and who may read
//! what on the bus.

use super::*;

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
    // The worker looks at its consumer every CONSUMER_CHECK (10 s); with the whole suite
    // running beside it, noticing took longer than 40 s once.
    let noticed = wait_for(Duration::from_secs(60), || {
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
    // The worker finds its stream gone (it looks every 10 s) and makes it again. Waiting for
    // that keeps the run from racing nats-server's own re-creation of a stream of the same
    // name, which once failed a publish with "error opening msg block file" (code 503).
    let remade = wait_for(Duration::from_secs(60), || {
        w2.log_text()
            .contains("the work stream was gone")
            .then_some(())
    });
    assert!(
        remade.is_some(),
        "the worker did not notice: {}",
        w2.log_text()
    );
    // Bounded: a run that waits on a bus that lost its streams must end, not hang the suite.
    let mut run = controller(
        &fleet,
        &tmp.0,
        &open,
        &["run", "all", "--run-timeout", "120s", "--", "true"],
    );
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
    let key = ::wisp_bus::auth::WorkerKey::load(&tmp.0.join("w1.key")).unwrap();
    let evil = "\u{1b}]52;c;ZXZpbA==\u{7}";
    for (seq, back) in [
        serde_json::json!({"t": "claimed", "worker": "w1", "at_ms": 1, "took_over": null}),
        serde_json::json!({"t": "finished", "worker": "w1", "at_ms": 2, "result": {
            "host": "web01", "outcome": "failed", "detail": format!("exit 1{evil}"),
            "elapsed_ms": 0, "sandbox": format!("seccomp default{evil}")}}),
    ]
    .into_iter()
    .enumerate()
    {
        let body = forged_event(item, seq as u64 + 1, back);
        let sig = key.sign(::wisp_bus::auth::Domain::Event, &body);
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
