//! A real `nats-server` with JetStream on a loopback port, its store in a scratch directory;
//! stopped when dropped. Tests that need it fail loudly when it is not installed.
//!
//! By default it runs as wisp asks a server to run: with wisp's users and permissions (the
//! `authorization` block `wisp nats-config` writes), a controller and a worker nkey, and no
//! one else let in. [`Nats::start_open`] starts one that lets anyone in, for the attacks
//! that need it and for `--insecure-open-bus`.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use crate::wait_for;

const NATS_SERVER: &str = "/usr/sbin/nats-server";

/// Ports handed out in this process (each test binary starts at its own offset).
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A running server.
#[derive(Debug)]
pub struct Nats {
    child: Option<Child>,
    /// `nats://127.0.0.1:PORT`.
    pub url: String,
    /// Its log file.
    pub log: PathBuf,
    /// wisp's users, unless it lets anyone in.
    pub users: Option<Users>,
}

/// The nkey seed files of wisp's users on a server.
#[derive(Debug, Clone)]
pub struct Users {
    /// What controllers sign in with (`--nats-nkey`).
    pub controller: PathBuf,
    /// What workers sign in with.
    pub worker: PathBuf,
}

impl Nats {
    /// Starts a server with JetStream and wisp's users and permissions, storing in `dir`,
    /// and waits until it accepts clients.
    pub fn start(dir: &Path) -> Nats {
        Self::start_secured(dir, "")
    }

    /// The same, with `config` (more nats-server configuration, e.g. a `tls` block).
    pub fn start_secured(dir: &Path, config: &str) -> Nats {
        let auth = dir.join("nats-users");
        std::fs::create_dir_all(&auth).expect("create the users' folder");
        let controller = nkeys::KeyPair::new_user();
        let worker = nkeys::KeyPair::new_user();
        let users = Users {
            controller: auth.join("controller.nk"),
            worker: auth.join("worker.nk"),
        };
        std::fs::write(&users.controller, controller.seed().expect("a seed"))
            .expect("write the controller's seed");
        std::fs::write(&users.worker, worker.seed().expect("a seed"))
            .expect("write the worker's seed");
        let block =
            wisp_bus::permissions::authorization(&controller.public_key(), &worker.public_key());
        let mut nats = Self::start_with(dir, &format!("{block}\n{config}"));
        nats.users = Some(users);
        nats
    }

    /// A server that lets anyone in, with all rights (wisp uses it only with
    /// `--insecure-open-bus`).
    pub fn start_open(dir: &Path) -> Nats {
        Self::start_with(dir, "")
    }

    /// The flags that reach this server as a controller (or a worker): its URL and the
    /// role's nkey, or `--insecure-open-bus` on an open server.
    pub fn args(&self, worker: bool) -> Vec<String> {
        let mut args = vec!["--nats".to_owned(), self.url.clone()];
        match &self.users {
            Some(u) => {
                let seed = if worker { &u.worker } else { &u.controller };
                args.push("--nats-nkey".into());
                args.push(seed.display().to_string());
            }
            None => args.push("--insecure-open-bus".into()),
        }
        args
    }

    /// The same, with `config` (nats-server configuration text, e.g. an `authorization`
    /// block) added to its configuration file.
    pub fn start_with(dir: &Path, config: &str) -> Nats {
        assert!(
            Path::new(NATS_SERVER).is_file(),
            "{NATS_SERVER} is missing: install Debian's nats-server (.ci/run does) to run the \
             worker tests"
        );
        let offset = NEXT_PORT.fetch_add(1, Ordering::SeqCst);
        let port = 14_000 + u16::try_from(std::process::id() % 2000).unwrap_or(0) * 2 + offset;
        let store = dir.join("nats-store");
        std::fs::create_dir_all(&store).expect("create the NATS store");
        let log = dir.join("nats.log");
        let conf = dir.join("nats.conf");
        std::fs::write(
            &conf,
            format!(
                "listen: \"127.0.0.1:{port}\"\njetstream {{ store_dir: \"{}\" }}\nlog_file: \"{}\"\n{config}\n",
                store.display(),
                log.display()
            ),
        )
        .expect("write the NATS config");
        let child = Command::new(NATS_SERVER)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        let addr = format!("127.0.0.1:{port}");
        let up = wait_for(Duration::from_secs(10), || {
            TcpStream::connect(&addr).ok().map(|_| ())
        });
        assert!(up.is_some(), "nats-server on {addr} did not come up");
        Nats {
            child: Some(child),
            url: format!("nats://{addr}"),
            log,
            users: None,
        }
    }

    /// The permission violations the server logged: what a client was refused.
    pub fn violations(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            // `Publish Violation - User "...", Subject "..."`, `Subscription Violation - ...`.
            .filter(|l| l.contains(" Violation - "))
            .map(str::to_owned)
            .collect()
    }

    /// Stops the server (SIGTERM, then waits).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
