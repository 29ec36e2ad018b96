//! ssh_config as OpenSSH means it: a `ProxyCommand` carries the connection (through a real
//! bastion's `ssh -W`), `IdentitiesOnly` keeps a crowded agent from spending sshd's
//! MaxAuthTries, `Include` and `Match` apply where they stand, and a directive wisp cannot
//! honour stops the run naming its file and line.

use super::*;

#[test]
fn a_proxy_command_carries_the_connection_through_the_bastion() {
    let mut fleet = Fleet::start(2);
    let (bastion, target) = (&fleet.hosts[0], &fleet.hosts[1]);
    // The name the target goes by resolves nowhere: only the ProxyCommand can reach it.
    let name = "target.via-bastion.invalid";
    let known = format!(
        "{}[{name}]:{} {}\n",
        std::fs::read_to_string(&fleet.known_hosts).unwrap(),
        target.port,
        target.host_key
    );
    std::fs::write(&fleet.known_hosts, known).unwrap();
    let config = fleet.dir.0.join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host target\n  HostName {name}\n  Port {port}\n  User root\n  \
             ProxyCommand ssh -F /dev/null -o BatchMode=yes -o UserKnownHostsFile={known} \
             -o StrictHostKeyChecking=yes -i {key} -p {bport} -W {addr}:%p root@{baddr}\n",
            port = target.port,
            known = fleet.known_hosts.display(),
            key = fleet.client_key.display(),
            bport = bastion.port,
            addr = target.addr,
            baddr = bastion.addr,
        ),
    )
    .unwrap();
    let through = |fleet: &Fleet| {
        let mut c = sub(fleet, "run", "target");
        c.arg("--ssh-config")
            .arg(&config)
            .args(["--", "sh", "-c", "echo through the bastion"]);
        c
    };
    let out = run(&mut through(&fleet));
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("target | through the bastion"));
    fleet.assert_clean();
    // Proof that it went through the bastion: once it may not forward, nothing gets there.
    fleet.restart_with(0, "AllowTcpForwarding no");
    let out = run(&mut through(&fleet));
    assert_eq!(out.status.code(), Some(3), "reached without the bastion");
    // What the ProxyCommand said on its way out is part of the message.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("through ProxyCommand") && err.contains("it said:"),
        "{err}"
    );
}

#[test]
fn identities_only_keeps_a_crowded_agent_within_max_auth_tries() {
    let fleet = Fleet::start(1);
    // Six keys the hosts do not know, as a developer's agent holds them.
    let strangers: Vec<std::path::PathBuf> = (0..6)
        .map(|i| {
            let k = fleet.dir.0.join(format!("stranger{i}"));
            wisp_tests::sshd::keygen_of_type(&k, "stranger", "ed25519");
            k
        })
        .collect();
    let (mut agent, sock) = agent_with(&fleet, &strangers);
    let config = fleet.dir.0.join("ssh_config");
    let write = |only: &str| {
        std::fs::write(
            &config,
            format!(
                "Host *\n  User root\n  IdentitiesOnly {only}\n  IdentityFile {}\n",
                fleet.client_key.display()
            ),
        )
        .unwrap();
    };
    let attempt = || {
        let mut c = base(&fleet, "run", &fleet.targets());
        c.env("SSH_AUTH_SOCK", &sock)
            .arg("--ssh-config")
            .arg(&config)
            .args(["--", "true"]);
        run(&mut c)
    };
    write("no");
    let crowded = attempt();
    write("yes");
    let only = attempt();
    let _ = agent.kill();
    let _ = agent.wait();
    assert_ne!(
        crowded.status.code(),
        Some(0),
        "six agent keys first: sshd gives up"
    );
    assert_eq!(
        only.status.code(),
        Some(0),
        "IdentitiesOnly: the identity file alone"
    );
    fleet.assert_clean();
}

#[test]
fn include_and_match_apply_and_an_unknown_directive_is_refused() {
    let fleet = Fleet::start(1);
    let h = &fleet.hosts[0];
    let dir = fleet.dir.0.join("ssh");
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    std::fs::write(
        dir.join("conf.d/fleet.conf"),
        format!("Host fleet-host\n  HostName {}\n", h.addr),
    )
    .unwrap();
    let config = dir.join("config");
    std::fs::write(
        &config,
        format!(
            "Include {}/conf.d/*.conf\nMatch host {} user root\n  Port {}\nHost *\n  User root\n  Port 1\n",
            dir.display(),
            h.addr,
            h.port
        ),
    )
    .unwrap();
    let out = run(sub(&fleet, "run", "fleet-host")
        .arg("--ssh-config")
        .arg(&config)
        .args(["--", "echo", "matched"]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "Include gave the address, Match the port"
    );
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("  RemoteCommand reboot\n");
    std::fs::write(&config, text).unwrap();
    let out = run(sub(&fleet, "run", "fleet-host")
        .arg("--ssh-config")
        .arg(&config)
        .args(["--", "echo", "matched"]));
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:7: remotecommand reboot", config.display())),
        "{err}"
    );
    fleet.assert_clean();
}

/// 40 hosts behind one bastion whose sshd keeps its default `MaxStartups` (10:30:100), at
/// `--forks 50`: the hosts share a few sessions to the bastion instead of one login each,
/// and every one of them is reached.
#[test]
fn forty_hosts_behind_one_bastion_share_its_sessions() {
    let mut fleet = Fleet::start(41);
    fleet.restart_with(0, "MaxStartups 10:30:100");
    fleet.restart_with(0, "LogLevel INFO");
    let bastion = &fleet.hosts[0];
    let config = fleet.dir.0.join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host * !{addr}\n  ProxyJump root@{addr}:{port}\n",
            addr = bastion.addr,
            port = bastion.port
        ),
    )
    .unwrap();
    let targets: Vec<String> = fleet.hosts[1..].iter().map(|h| h.target()).collect();
    let out = run(sub(&fleet, "run", &targets.join(","))
        .arg("--ssh-config")
        .arg(&config)
        .args(["--forks", "50", "--", "echo", "behind"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout.matches("| behind").count(), 40, "{stdout}");
    let log = std::fs::read_to_string(bastion.config.with_extension("log")).unwrap();
    let logins = log.matches("Accepted publickey").count();
    println!("the bastion saw {logins} logins for 40 hosts");
    assert!(
        (1..=8).contains(&logins),
        "{logins} logins on the bastion: its sessions were not shared"
    );
    fleet.assert_clean();
}
