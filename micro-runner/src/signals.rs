//! Termination signals, turned into session inputs by a dedicated `sigwait` thread.
//!
//! SIGTERM, SIGINT and SIGHUP are blocked in every runner thread (the mask is set before any
//! thread starts, and threads inherit it), so only the waiting thread ever receives them.
//! Children start with an empty mask: std's spawn resets it between fork and exec.

use std::sync::mpsc::SyncSender;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};

use crate::input::Input;

fn termination_set() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.add(Signal::SIGHUP);
    set
}

/// Blocks the termination signals in the calling thread; call before spawning any thread.
pub(crate) fn block() -> nix::Result<()> {
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&termination_set()), None)
}

/// Waits for termination signals forever, forwarding each one.
pub(crate) fn wait_loop(tx: SyncSender<Input>) {
    let set = termination_set();
    while let Ok(sig) = set.wait() {
        if tx.send(Input::Signal(sig.as_str())).is_err() {
            return;
        }
    }
}

/// `SIGKILL` for 9, and so on; `SIG<n>` for numbers without a name.
pub(crate) fn name(signo: i32) -> String {
    Signal::try_from(signo)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| format!("SIG{signo}"))
}
