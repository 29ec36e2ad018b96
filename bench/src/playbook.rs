//! `--playbook-vs N`: the web role of `tests/playbooks` (with its base dependency) converged
//! on N sshd hosts, from nothing and then again (nothing to change), by `wisp apply web.yml`,
//! by `ansible-playbook` (pipelining on, ControlPersist on) and by the same deploy written for
//! pyinfra, one after the other on the same hosts, each into a folder of its own. The Python
//! tools come from `WISP_ANSIBLE_PYTHON` and `WISP_PYINFRA_PYTHON` (a venv's python each);
//! one that is not given is left out, and the report says so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use wisp_tests::sshd::Fleet;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/playbooks")
}

/// Runs `c` and times it; panics (with its output) unless it succeeded.
fn timed(what: &str, c: &mut Command) -> Duration {
    let started = Instant::now();
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// The inventory for wisp and Ansible, and the one for pyinfra (a Python file).
fn inventories(fleet: &Fleet, dir: &Path, pyinfra_out: &Path) -> (PathBuf, PathBuf) {
    let mut ini = String::from("[web]\n");
    let mut py = String::from("web = [\n");
    for (i, h) in fleet.hosts.iter().enumerate() {
        let name = format!("web{:02}", i + 1);
        ini.push_str(&format!(
            "{name} ansible_host={} ansible_port={}\n",
            h.addr, h.port
        ));
        py.push_str(&format!(
            "    ({name:?}, {{\"ssh_hostname\": {:?}, \"ssh_port\": {}, \"ssh_user\": \"root\", \
             \"ssh_key\": {:?}, \"ssh_known_hosts_file\": {:?}, \"ssh_strict_host_key_checking\": \"yes\", \
             \"out\": {:?}, \"roles\": {:?}}}),\n",
            h.addr,
            h.port,
            fleet.client_key.display().to_string(),
            fleet.known_hosts.display().to_string(),
            pyinfra_out.display().to_string(),
            fixtures().join("roles").display().to_string(),
        ));
    }
    py.push_str("]\n");
    let (a, b) = (dir.join("hosts"), dir.join("inventory.py"));
    std::fs::write(&a, ini).expect("write the inventory");
    std::fs::write(&b, py).expect("write pyinfra's inventory");
    (a, b)
}

pub(crate) fn bench(n: usize) {
    let wisp = std::env::var_os("WISP_BIN").expect("WISP_BIN must name a wisp executable");
    println!("starting {n} sshd hosts on loopback...");
    let fleet = Fleet::start(n);
    let dir = fleet.dir.0.clone();
    let book = fixtures().join("web.yml");
    let (hosts, py_inventory) = inventories(&fleet, &dir, &dir.join("by-pyinfra"));
    // Each tool converges the hosts from nothing (its own folders), then runs again on
    // converged hosts; `WISP_BENCH_ONCE` leaves the second run out for the Python tools (on 2
    // cores ansible-playbook takes minutes a run at 50 hosts). Each line prints as it is known.
    let again = std::env::var_os("WISP_BENCH_ONCE").is_none();
    let mut first_wisp = Duration::ZERO;
    let mut row = |name: &str, first: Duration, second: Option<Duration>| {
        if first_wisp.is_zero() {
            first_wisp = first;
            println!("web role on {n} sshd hosts, one run each (from nothing / converged):");
        }
        let second = second.map_or("-".to_owned(), |d| format!("{d:.3?}"));
        println!(
            "  {name:<17} {first:>10.3?} / {second:>10}   {:>6.1}x wisp's time from nothing",
            first.as_secs_f64() / first_wisp.as_secs_f64()
        );
    };

    let wisp_run = || {
        let mut c = Command::new(&wisp);
        c.arg("apply")
            .arg(&book)
            .arg("-i")
            .arg(&hosts)
            .args(fleet.root_options())
            .args(["--forks", &n.to_string(), "-e"])
            .arg(format!("out={}", dir.join("by-wisp").display()))
            .env_remove("SSH_AUTH_SOCK");
        timed("wisp apply", &mut c)
    };
    row("wisp apply", wisp_run(), Some(wisp_run()));

    if let Some(python) = std::env::var_os("WISP_ANSIBLE_PYTHON") {
        let tool = PathBuf::from(python).with_file_name("ansible-playbook");
        let home = dir.join("ansible-home");
        let run = || {
            let mut c = Command::new(&tool);
            c.arg(&book)
                .args(["-i"])
                .arg(&hosts)
                .args(["-u", "root", "--private-key"])
                .arg(&fleet.client_key)
                .arg("--ssh-common-args")
                .arg(format!(
                    "-o UserKnownHostsFile={} -F /dev/null",
                    fleet.known_hosts.display()
                ))
                .args([
                    "-f",
                    &n.to_string(),
                    "-e",
                    "ansible_python_interpreter=/usr/bin/python3",
                    "-e",
                ])
                .arg(format!("out={}", dir.join("by-ansible").display()))
                .env("HOME", &home)
                .env("ANSIBLE_PIPELINING", "true")
                .env(
                    "ANSIBLE_SSH_ARGS",
                    "-o ControlMaster=auto -o ControlPersist=60s",
                )
                .env("ANSIBLE_SSH_CONTROL_PATH_DIR", home.join("cp"))
                .env("ANSIBLE_SSH_TRANSFER_METHOD", "piped")
                .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
                .env("ANSIBLE_REMOTE_TMP", home.join("remote-tmp"))
                .env_remove("SSH_AUTH_SOCK");
            timed("ansible-playbook", &mut c)
        };
        let first = run();
        row("ansible-playbook", first, again.then(run));
    } else {
        println!("ansible-playbook: left out (WISP_ANSIBLE_PYTHON names no venv python)");
    }
    if let Some(python) = std::env::var_os("WISP_PYINFRA_PYTHON") {
        let tool = PathBuf::from(python).with_file_name("pyinfra");
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("pyinfra/web_deploy.py");
        let run = || {
            let mut c = Command::new(&tool);
            c.args(["-y", "--parallel", &n.to_string()])
                .arg(&py_inventory)
                .arg(&deploy)
                .current_dir(&dir)
                .env("HOME", dir.join("pyinfra-home"))
                .env_remove("SSH_AUTH_SOCK");
            timed("pyinfra", &mut c)
        };
        let first = run();
        row("pyinfra", first, again.then(run));
    } else {
        println!("pyinfra: left out (WISP_PYINFRA_PYTHON names no venv python)");
    }
    fleet.assert_clean();
}
