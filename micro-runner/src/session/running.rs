//! Exec commands in flight: their output forwarded under the cap, their end (exit, drain,
//! timeout, cancel) turned into one DONE with usage and the enforcement report.

use super::*;

/// An exec command in flight.
pub(crate) struct Running {
    pub(super) id: String,
    pub(super) pgid: i32,
    pub(super) started: Instant,
    pub(super) deadline: Option<Instant>,
    /// Set once the main process has exited: DONE goes out when both pipes close or this passes.
    pub(super) drain_deadline: Option<Instant>,
    pub(super) open_streams: u8,
    pub(super) exit: Option<ProcessExit>,
    pub(super) killed_for: Option<Status>,
    pub(super) max_output: u64,
    pub(super) sent: [u64; 2],
    pub(super) truncated: [bool; 2],
    /// The command's protections: its cgroup (kills the whole tree) and the report so far.
    pub(super) sandbox: Prepared,
}

impl Running {
    /// SIGKILLs the command's whole tree: its cgroup when it has one, its process group always.
    pub(super) fn kill(&self, groups: &LiveGroups) {
        exec::kill_group(groups, self.pgid);
        self.sandbox.kill_tree();
    }
}

impl Session {
    pub(super) fn on_output(&mut self, serial: u64, stream: EventKind, bytes: Vec<u8>) {
        let Some(r) = self.running.get_mut(&serial) else {
            return;
        };
        let i = usize::from(stream == EventKind::Stderr);
        let room = r.max_output.saturating_sub(r.sent[i]);
        let keep = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
        if keep < bytes.len() {
            r.truncated[i] = true;
        }
        if keep == 0 {
            return;
        }
        r.sent[i] += keep as u64;
        let id = r.id.clone();
        let mut bytes = bytes;
        bytes.truncate(keep.min(MAX_DATA_LEN as usize));
        self.out.send_with_data(
            Message::Event(Event {
                id,
                kind: stream,
                message: None,
            }),
            bytes,
        );
    }

    pub(super) fn finish_if_complete(&mut self, serial: u64) {
        let complete = self
            .running
            .get(&serial)
            .is_some_and(|r| r.open_streams == 0 && r.exit.is_some());
        if complete && let Some(r) = self.running.remove(&serial) {
            self.send_done(r);
        }
    }

    pub(super) fn send_done(&mut self, r: Running) {
        let exit = r.exit.unwrap_or(ProcessExit {
            code: None,
            signal: None,
            usage: Default::default(),
        });
        let enforcement = r.sandbox.finish();
        let oom = enforcement.cgroup.as_ref().is_some_and(|c| c.oom_kills > 0);
        let status = match (r.killed_for, exit.code) {
            (Some(status), _) => status,
            // The kernel killed something for memory: say so, not "signal 9".
            (None, _) if oom => Status::Oom,
            (None, Some(0)) => Status::Ok,
            (None, _) => Status::Failed,
        };
        let truncated = [EventKind::Stdout, EventKind::Stderr]
            .into_iter()
            .zip(r.truncated)
            .filter_map(|(k, t)| t.then_some(k))
            .collect();
        self.out.send(Message::Done(Done {
            id: r.id,
            status,
            exit_code: exit.code,
            signal: exit.signal.map(crate::signals::name),
            changed: true,
            duration_ms: millis(r.started.elapsed()),
            usage: Some(exit.usage),
            truncated,
            result: None,
            enforcement: Some(enforcement),
        }));
    }
}
