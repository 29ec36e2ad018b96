//! A real `nats-server` with JetStream on a loopback port, its store in a scratch directory;
//! stopped when dropped. Tests that need it fail loudly when it is not installed.

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
}

impl Nats {
    /// Starts a server with JetStream, storing in `dir`, and waits until it accepts clients.
    pub fn start(dir: &Path) -> Nats {
        Self::start_with(dir, "")
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
        }
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
