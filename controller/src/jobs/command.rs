//! One command on one session, followed to its end: output split into lines and reported as
//! it comes, the first Ctrl-C turned into CANCEL, the second into a cut connection. Exec jobs
//! and plan tasks both drive their commands through this one loop.
//!
//! What this module does not know: what the command was for (an exec job, a plan task), or
//! what its DONE means to the caller.

use tokio::sync::watch;
use wisp_protocol::message::{Done, ErrorFrame, EventKind};

use crate::report::{Event, LineSplitter, Reporter};
use crate::session::{CmdEvent, Session, SessionError};
use wisp_events::interrupt::Interrupt;

/// Where a followed command's output goes besides the reporter, and how much of it.
pub(crate) struct Streams<'a> {
    /// Gets each chunk (secrets hidden) by stream: 0 stdout, 1 stderr.
    pub(crate) tee: &'a mut (dyn FnMut(usize, &[u8]) + Send),
    /// Bytes taken per stream; more than this is dropped, with a line saying so.
    pub(crate) max_output: u64,
    /// Nothing is shown or recorded of the output (`no_log`); `tee` still sees it.
    pub(crate) quiet: bool,
}

/// How a followed command ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// DONE, with its data section (a file op's previous content).
    Done(Box<Done>, Vec<u8>),
    /// The runner refused the command or could not run it.
    Refused(ErrorFrame),
    /// A second Ctrl-C: the caller cuts the connection.
    Disconnected,
    /// The session broke.
    Lost(SessionError),
}

/// Follows command `id` until it ends. `tee` sees every output chunk (stream 0 stdout, 1
/// stderr) before it is split into lines; `cancelled` is set once CANCEL has been sent.
pub(crate) async fn follow(
    session: &mut Session,
    id: &str,
    host: &str,
    reporter: &Reporter,
    interrupt: &mut watch::Receiver<Interrupt>,
    cancelled: &mut bool,
    streams: Streams<'_>,
) -> Ended {
    let (tee, max_output, quiet) = (streams.tee, streams.max_output, streams.quiet);
    let mut lines = [LineSplitter::default(), LineSplitter::default()];
    // Secrets are hidden in the byte stream, before it is cut into lines or saved: a key
    // spans lines, and a slow writer splits a token across chunks.
    let mut hidden = [reporter.stream_redactor(), reporter.stream_redactor()];
    // The runner keeps at most `max_output` bytes per stream; a runner that sends more (a
    // tampered or broken one) is cut here too, once, with a line that says so.
    let mut received = [0u64; 2];
    // An interrupt that came while the command was being started (after the connect looked,
    // before this loop) is one `changed()` will never report: act on it now.
    let level = *interrupt.borrow_and_update();
    match level {
        Interrupt::Disconnect => return Ended::Disconnected,
        Interrupt::Cancel if !*cancelled => {
            *cancelled = true;
            let _ = session.cancel(id).await;
        }
        _ => {}
    }
    loop {
        let event = tokio::select! {
            ev = session.next_for(id) => ev,
            _ = interrupt.changed() => {
                let level = *interrupt.borrow();
                if level == Interrupt::Disconnect {
                    return Ended::Disconnected;
                }
                if level == Interrupt::Cancel && !*cancelled {
                    *cancelled = true;
                    let _ = session.cancel(id).await;
                }
                continue;
            }
        };
        match event {
            Ok(CmdEvent::Output(stream, bytes)) => {
                let i = usize::from(stream == EventKind::Stderr);
                let room = max_output.saturating_sub(received[i]);
                let was = received[i];
                received[i] = received[i].saturating_add(bytes.len() as u64);
                let kept = if room < bytes.len() as u64 {
                    let keep = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
                    let mut kept = hidden[i].push(&bytes[..keep]);
                    if was <= max_output {
                        kept.extend(hidden[i].finish());
                        kept.extend_from_slice(
                            format!(
                                "\n[wisp: output past {max_output} bytes dropped: the runner sent more than it may]\n"
                            )
                            .as_bytes(),
                        );
                    }
                    kept
                } else {
                    hidden[i].push(&bytes)
                };
                tee(i, &kept);
                let batch = if quiet {
                    Vec::new()
                } else {
                    lines[i].push(&kept)
                };
                if let Some(ended) = report(
                    reporter, host, stream, batch, session, id, interrupt, cancelled,
                )
                .await
                {
                    return ended;
                }
            }
            Ok(CmdEvent::Done(done, data)) => {
                for (i, stream) in [EventKind::Stdout, EventKind::Stderr]
                    .into_iter()
                    .enumerate()
                {
                    let rest = hidden[i].finish();
                    tee(i, &rest);
                    if !quiet {
                        last_lines(reporter, host, stream, &mut lines[i], &rest);
                    }
                }
                return Ended::Done(done, data);
            }
            Ok(CmdEvent::Refused(e)) => return Ended::Refused(e),
            Err(e) => return Ended::Lost(e),
        }
    }
}

/// Lines reported between two looks at the interrupt.
const LINES_PER_LOOK: usize = 1024;

/// Reports `batch`, a slice at a time, looking at the interrupt in between and letting the
/// other tasks run (the signal watchers and the run timeout among them): a frame of a
/// million short lines cannot hold Ctrl-C or `--run-timeout` off. `Some` when the operator
/// asked to disconnect.
/// The last of a stream's output, `rest` and the line it ends, shown.
fn last_lines(
    reporter: &Reporter,
    host: &str,
    stream: EventKind,
    lines: &mut LineSplitter,
    rest: &[u8],
) {
    for line in lines.push(rest) {
        reporter.emit(Event::output(host, stream, &line));
    }
    if let Some(line) = lines.finish() {
        reporter.emit(Event::output(host, stream, &line));
    }
}

#[allow(clippy::too_many_arguments)] // the loop's own state, lent for one batch
async fn report(
    reporter: &Reporter,
    host: &str,
    stream: EventKind,
    batch: Vec<String>,
    session: &mut Session,
    id: &str,
    interrupt: &mut watch::Receiver<Interrupt>,
    cancelled: &mut bool,
) -> Option<Ended> {
    let many = batch.len() > LINES_PER_LOOK;
    for (n, line) in batch.iter().enumerate() {
        reporter.emit(Event::output(host, stream, line));
        if !many || (n + 1) % LINES_PER_LOOK != 0 {
            continue;
        }
        tokio::task::yield_now().await;
        if interrupt.has_changed().unwrap_or(false) {
            let level = *interrupt.borrow_and_update();
            match level {
                Interrupt::Disconnect => return Some(Ended::Disconnected),
                Interrupt::Cancel if !*cancelled => {
                    *cancelled = true;
                    let _ = session.cancel(id).await;
                }
                _ => {}
            }
        }
    }
    None
}
