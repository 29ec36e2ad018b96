//! Attacker 7 (SECURITY.md), forging: items without a trusted signature, replays (even with
//! the claim purged), events no trusted worker signed, claims written over a running item.

use super::*;

#[test]
fn forged_and_replayed_items_are_refused() {
    use ::wisp_bus::item::{FORMAT, HostSpec, Item, Signer, Start, Work, now_ms, random_id};
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
    let untrusted = ::wisp_bus::auth::WorkerKey::load(&{
        std::fs::create_dir_all(tmp.0.join("evil")).unwrap();
        let key = tmp.0.join("evil/evil.key");
        ::wisp_bus::item::Signer::generate(&key).unwrap();
        key
    })
    .unwrap();
    for item in &items {
        let host = item["host"]["name"].as_str().unwrap().to_owned();
        let other = if host == "web01" { "web02" } else { "web01" };
        let forged = [
            serde_json::json!({"t": "claimed", "worker": "w1", "at_ms": 1, "took_over": null}),
            serde_json::json!({"t": "report", "event": {"event": "output", "host": host,
                "stream": "stdout", "line": "FORGED OUTPUT"}}),
            serde_json::json!({"t": "report", "event": {"event": "facts_read", "host": host,
                "host_key": host_key, "facts": {"hostname": "vm; touch /tmp/x #"}}}),
            serde_json::json!({"t": "report", "event": {"event": "audit",
                "act": "forged", "detail": "planted"}}),
            serde_json::json!({"t": "finished", "worker": "w1", "at_ms": 2, "result": {
                "host": other, "outcome": "ok", "detail": "exit 0",
                "elapsed_ms": 0, "sandbox": null}}),
            serde_json::json!({"t": "finished", "worker": "w1", "at_ms": 2, "result": {
                "host": host, "outcome": "ok", "detail": "exit 0",
                "elapsed_ms": 0, "sandbox": null}}),
        ];
        for (i, back) in forged.into_iter().enumerate() {
            let body = forged_event(item, i as u64 + 1, back);
            // Unsigned, then signed by a key no controller trusts.
            attacker.publish(&events_subject(item), body.clone(), &[]);
            let sig = untrusted.sign(::wisp_bus::auth::Domain::Event, &body);
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

/// Case 3: replaying a signed item after erasing its claim. On wisp's server no bus user
/// may purge the claims (refused, in the server's log), and the copy is refused by its
/// claim. On an open server the purge goes through, and the copy is still refused: the
/// worker's own ledger knows the id. The command ran once.
#[test]
fn a_replayed_item_is_refused_even_when_its_claim_is_purged() {
    use ::wisp_bus::item::{FORMAT, HostSpec, Item, Signer, Start, Work, now_ms, random_id};
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
            "item": id, "worker": "thief", "seq": 1, "beat_ms": ::wisp_bus::item::now_ms(),
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
