//! The floors: a bare russh client that connects, authenticates with the fleet's key, execs
//! `true` and waits for its exit status, on every host at once. It checks no host key and
//! pushes nothing: what any SSH-based tool costs at the least, in the same library wisp uses.
//!
//! The pushing floor does the same, but the command is the least a tool that pushes this
//! runner must do on each host ([`Push`]): what any push-and-verify tool costs at the least.

use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg};

struct AnyKey;

impl client::Handler for AnyKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// What a floor runs on each host: a command, and the bytes it reads on stdin.
#[derive(Clone)]
pub(crate) struct Push {
    command: String,
    stdin: Arc<Vec<u8>>,
}

impl Push {
    /// `true`, with nothing on stdin.
    pub(crate) fn nothing() -> Push {
        Push {
            command: "true".into(),
            stdin: Arc::default(),
        }
    }

    /// `runner`, compressed as wisp sends it, taken into a fresh `mktemp -d` directory,
    /// decompressed, checked against its SHA-256, made executable, run (`--version`) and
    /// removed. None of wisp's checks of the base directory, no `noexec` probe, no protocol,
    /// no sandbox, no command.
    pub(crate) fn runner(runner: Arc<Vec<u8>>) -> Push {
        use wisp_transports::ssh::bootstrap::{Encoding, Payload};
        let payload = Payload::new(runner);
        let gz = payload.bytes(Encoding::Gzip).to_vec();
        let command = format!(
            "exec sh -c 'd=$(mktemp -d) || exit 1; head -c {} | gzip -dc > \"$d/r\" && s=$(sha256sum \"$d/r\") && [ \"${{s%% *}}\" = {} ] && chmod 700 \"$d/r\" && \"$d/r\" --version > /dev/null; rc=$?; rm -rf \"$d\"; exit $rc'",
            gz.len(),
            payload.sha256
        );
        Push {
            command,
            stdin: Arc::new(gz),
        }
    }
}

/// One host: connect, authenticate, exec the command with its stdin, wait for its exit.
async fn one(addr: String, port: u16, key: Arc<PrivateKey>, push: Push) -> Result<(), String> {
    let config = Arc::new(client::Config {
        nodelay: true,
        ..client::Config::default()
    });
    let mut session = client::connect(config, (addr.as_str(), port), AnyKey)
        .await
        .map_err(|e| format!("{addr}:{port}: connect: {e}"))?;
    let auth = session
        .authenticate_publickey(crate::ssh::USER, PrivateKeyWithHashAlg::new(key, None))
        .await
        .map_err(|e| format!("{addr}:{port}: auth: {e}"))?;
    if !auth.success() {
        return Err(format!("{addr}:{port}: key refused"));
    }
    let mut channel = session
        .channel_open_session()
        .await
        .map_err(|e| format!("{addr}:{port}: channel: {e}"))?;
    channel
        .exec(true, push.command.as_str())
        .await
        .map_err(|e| format!("{addr}:{port}: exec: {e}"))?;
    if !push.stdin.is_empty() {
        channel
            .data(push.stdin.as_slice())
            .await
            .map_err(|e| format!("{addr}:{port}: upload: {e}"))?;
        channel
            .eof()
            .await
            .map_err(|e| format!("{addr}:{port}: eof: {e}"))?;
    }
    let mut status = None;
    while let Some(msg) = channel.wait().await {
        if let russh::ChannelMsg::ExitStatus { exit_status } = msg {
            status = Some(exit_status);
        }
    }
    let _ = session
        .disconnect(russh::Disconnect::ByApplication, "", "")
        .await;
    match status {
        Some(0) => Ok(()),
        other => Err(format!("{addr}:{port}: exit {other:?}")),
    }
}

/// Every `(address, port)` at once; the wall time. Panics if any host fails.
pub(crate) fn all(hosts: &[(String, u16)], key_file: &std::path::Path) -> Duration {
    all_with(hosts, key_file, &Push::nothing())
}

/// Every `(address, port)` at once running `push`; the wall time. Panics if any host fails.
pub(crate) fn all_with(
    hosts: &[(String, u16)],
    key_file: &std::path::Path,
    push: &Push,
) -> Duration {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let key = Arc::new(russh::keys::load_secret_key(key_file, None).expect("the client key"));
    runtime.block_on(async {
        let started = Instant::now();
        let tasks: Vec<_> = hosts
            .iter()
            .map(|(a, p)| tokio::spawn(one(a.clone(), *p, Arc::clone(&key), push.clone())))
            .collect();
        for t in tasks {
            if let Err(e) = t.await.expect("host task") {
                panic!("bare russh ({}): {e}", push.command);
            }
        }
        started.elapsed()
    })
}
