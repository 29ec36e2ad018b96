//! The local transport: the runner as a child process of the controller, optionally through
//! `sudo -n`. Used for the `localhost` target; it stages the runner exactly as a remote push
//! does, so it exercises the same lifecycle.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};

use crate::conn::{FrameReader, FrameWriter};
use crate::stage::{stage_bytes, staging_base};
use crate::{BoxFuture, Launch, RunnerConnection, RunnerHandle, TransportError};

/// How much of the runner's stderr is kept for error messages.
const STDERR_KEPT: usize = 16 * 1024;

/// Runs the runner on this machine.
#[derive(Debug, Clone, Default)]
pub struct LocalTransport {
    /// Run it as root through `sudo -n` (no prompt: sudo must not need a password).
    pub sudo: bool,
}

impl crate::Transport for LocalTransport {
    fn start<'a>(
        &'a self,
        launch: &'a Launch,
    ) -> BoxFuture<'a, Result<RunnerConnection, TransportError>> {
        Box::pin(self.start_runner(launch))
    }
}

impl LocalTransport {
    /// The runner's command: as this user, or through `sudo -n`, with a login's environment
    /// and in its own process group.
    fn command(&self, exe: &str, runner_args: &[&str]) -> Command {
        let mut cmd = if self.sudo {
            let mut c = Command::new("sudo");
            c.args(["-n", "--", exe]);
            c
        } else {
            Command::new(exe)
        };
        // The runner (and every command it starts) gets what an SSH login would give it, not
        // the controller's environment: $WISP_AGE_KEY, $WISP_SSH_PASSWORD and the like stay
        // here.
        cmd.env_clear().envs(login_environment());
        cmd.args(runner_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a terminal's Ctrl-C reaches only the controller, which
            // then cancels in order instead of the runner dying mid-frame.
            .process_group(0);
        cmd
    }

    async fn start_runner(&self, launch: &Launch) -> Result<RunnerConnection, TransportError> {
        let runner = launch.runners.for_arch(std::env::consts::ARCH)?;
        let staged = stage_bytes(&runner.bytes, &staging_base())?;
        let exe = staged.exe.to_string_lossy().into_owned();
        let dir = staged.dir.to_string_lossy().into_owned();
        let ttl = launch.ttl.as_secs().max(1).to_string();
        let runner_args = [
            "--marker",
            launch.nonce.as_str(),
            "--ttl",
            ttl.as_str(),
            "--private-dir",
            dir.as_str(),
        ];
        let mut cmd = self.command(&exe, &runner_args);
        let program = if self.sudo {
            "sudo -n wisp-runner".to_owned()
        } else {
            exe.clone()
        };
        let spawned = spawn_retrying(&mut cmd).await;
        let mut child = match spawned {
            Ok(c) => c,
            Err(source) => {
                staged.remove_leftovers();
                return Err(TransportError::Spawn { program, source });
            }
        };
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(err) = child.stderr.take() {
            tokio::spawn(collect_tail(err, Arc::clone(&stderr)));
        }
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            staged.remove_leftovers();
            return Err(TransportError::Handshake {
                detail: "runner did not start: its pipes are missing".into(),
            });
        };
        let handle = LocalHandle { child, stderr };
        let hello = tokio::time::timeout(
            launch.connect_timeout,
            FrameReader::until_ready(Box::new(stdout), &launch.nonce),
        )
        .await;
        let (reader, ready) = match hello {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => {
                staged.remove_leftovers();
                let mut detail = format!("runner did not start: {e}");
                let diag = handle.diagnostics();
                if !diag.is_empty() {
                    detail.push_str(&format!("; runner stderr: {}", diag.trim_end()));
                }
                return Err(TransportError::Handshake { detail });
            }
            Err(_) => {
                staged.remove_leftovers();
                return Err(TransportError::Handshake {
                    detail: format!(
                        "runner did not start: no READY within {:?}",
                        launch.connect_timeout
                    ),
                });
            }
        };
        // The runner removes its directory before it says READY; if a runner that does not
        // (an older or foreign build) got here, the controller cleans up after it.
        staged.remove_leftovers();
        Ok(RunnerConnection {
            ready,
            reader,
            writer: FrameWriter::new(Box::new(stdin)),
            handle: Box::new(handle),
            host_key: machine_id(),
        })
    }
}

/// Spawns `cmd`, trying again a few times while the staged file is still busy (another
/// thread's fork holding it open for writing).
async fn spawn_retrying(cmd: &mut Command) -> std::io::Result<Child> {
    let mut attempt = 0;
    loop {
        match cmd.spawn() {
            Err(e) if crate::stage::is_text_busy(&e) && attempt < crate::stage::BUSY_RETRIES => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(10 * u64::from(attempt))).await;
            }
            other => return other,
        }
    }
}

/// The variables a login over SSH sets (who, where, which shell and path) and the locale
/// ones OpenSSH's default configuration accepts, taken from this process; nothing else.
fn login_environment() -> impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)> {
    const KEPT: &[&str] = &[
        "HOME", "USER", "LOGNAME", "SHELL", "PATH", "LANG", "LANGUAGE", "TZ",
    ];
    std::env::vars_os().filter(|(name, _)| {
        name.to_str()
            .is_some_and(|n| KEPT.contains(&n) || n.starts_with("LC_"))
    })
}

async fn collect_tail(mut stream: impl AsyncRead + Unpin, into: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if let Ok(mut kept) = into.lock() {
            kept.extend_from_slice(&buf[..n]);
            let excess = kept.len().saturating_sub(STDERR_KEPT);
            kept.drain(..excess);
        }
    }
}

#[derive(Debug)]
struct LocalHandle {
    child: Child,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl RunnerHandle for LocalHandle {
    fn wait(&mut self) -> BoxFuture<'_, String> {
        Box::pin(async move {
            match self.child.wait().await {
                Ok(status) => status.to_string(),
                Err(e) => format!("cannot wait for the runner: {e}"),
            }
        })
    }

    fn diagnostics(&self) -> String {
        self.stderr
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

/// This machine's identity: `/etc/machine-id` (else the kernel's boot id), as `local ID`.
fn machine_id() -> String {
    [
        "/etc/machine-id",
        "/var/lib/dbus/machine-id",
        "/proc/sys/kernel/random/boot_id",
    ]
    .iter()
    .find_map(|p| {
        std::fs::read_to_string(p)
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
    })
    .map_or_else(|| "local".to_owned(), |id| format!("local {id}"))
}
