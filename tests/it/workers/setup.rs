//! How a bus is set up: regions keep hosts to their workers, plans' secrets reach only the
//! workers holding the identity, TLS needs its CA, and an open server is refused unless asked.

use super::*;

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
