//! Where the operator's interrupts have got to, and the tasks that move them: SIGINT/SIGTERM
//! (first: cancel in order; second: disconnect) and `--run-timeout`.
//!
//! What this module does not know: hosts, sessions or jobs. They watch the channel.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

/// Where the operator's interrupts have got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Interrupt {
    /// Keep going.
    None,
    /// Cancel remote work and shut runners down cleanly.
    Cancel,
    /// Drop every connection now.
    Disconnect,
}

/// First SIGINT/SIGTERM: cancel in order. Second: disconnect.
pub async fn watch_signals(tx: Arc<watch::Sender<Interrupt>>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    for level in [Interrupt::Cancel, Interrupt::Disconnect] {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        let note = if level == Interrupt::Cancel {
            "interrupted: cancelling remote commands (Ctrl-C again to disconnect at once)"
        } else {
            "interrupted again: disconnecting"
        };
        let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("{note}\n"));
        let _ = tx.send(level);
    }
}

/// How long hosts have to answer the run timeout's cancel before they are disconnected.
pub const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// `--run-timeout`: after `limit`, the same orderly cancel as Ctrl-C; `timed_out` says it was
/// the clock, so the hosts it stopped count as failed, not interrupted. [`CANCEL_GRACE`] later
/// every host still out is disconnected: the limit is a hard bound, even against a peer that
/// never answers.
pub async fn run_timeout(
    limit: Duration,
    tx: Arc<watch::Sender<Interrupt>>,
    timed_out: Arc<AtomicBool>,
) {
    tokio::time::sleep(limit).await;
    timed_out.store(true, Ordering::SeqCst);
    let _ = std::io::Write::write_fmt(
        &mut std::io::stderr(),
        format_args!("run timeout ({limit:?}) reached: cancelling remote commands\n"),
    );
    tx.send_if_modified(|i| {
        let change = *i == Interrupt::None;
        if change {
            *i = Interrupt::Cancel;
        }
        change
    });
    tokio::time::sleep(CANCEL_GRACE).await;
    if tx.send_if_modified(|i| {
        let change = *i < Interrupt::Disconnect;
        if change {
            *i = Interrupt::Disconnect;
        }
        change
    }) {
        let _ = std::io::Write::write_fmt(
            &mut std::io::stderr(),
            format_args!(
                "run timeout: hosts that did not answer the cancel within {CANCEL_GRACE:?} are disconnected\n"
            ),
        );
    }
}
