//! The floor: a bare russh client that connects, authenticates with the fleet's key, execs
//! `true` and waits for its exit status, on every host at once. It checks no host key and
//! pushes nothing: what any SSH-based tool costs at the least, in the same library wisp uses.

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

/// One host: connect, authenticate, exec `true`, wait for its exit.
async fn one(addr: String, port: u16, key: Arc<PrivateKey>) -> Result<(), String> {
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
        .exec(true, "true")
        .await
        .map_err(|e| format!("{addr}:{port}: exec: {e}"))?;
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let key = Arc::new(russh::keys::load_secret_key(key_file, None).expect("the client key"));
    runtime.block_on(async {
        let started = Instant::now();
        let tasks: Vec<_> = hosts
            .iter()
            .map(|(a, p)| tokio::spawn(one(a.clone(), *p, Arc::clone(&key))))
            .collect();
        for t in tasks {
            if let Err(e) = t.await.expect("host task") {
                panic!("bare russh: {e}");
            }
        }
        started.elapsed()
    })
}
