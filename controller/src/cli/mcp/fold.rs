//! A fleet's results for an agent: hosts that ended the same way with the same output told
//! once, under their folded names (`web[01-20]: ok, exit 0`), largest group first, each
//! group's output bounded so that 200 hosts fit in a reply.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use wisp_events::{Event, HostResult, Sink};
use wisp_protocol::message::EventKind;

use crate::report::fold_hosts;

/// The most output lines shown per group, and bytes per line.
const LINES: usize = 40;
const LINE_BYTES: usize = 400;

/// Each host's output lines, kept as its events arrive, and the hosts whose command has ended
/// (or that could not run it).
#[derive(Debug, Default, Clone)]
pub(super) struct Outputs(
    Arc<Mutex<HashMap<String, Vec<String>>>>,
    Arc<Mutex<HashSet<String>>>,
);

impl Outputs {
    /// A sink that keeps each host's output lines (stderr marked `! `).
    pub(super) fn sink(&self) -> Sink {
        let into = Arc::clone(&self.0);
        let ended = Arc::clone(&self.1);
        Sink(Arc::new(move |e| {
            let (host, line) = match e {
                Event::CommandDone { host, .. }
                | Event::Unreachable { host, .. }
                | Event::CouldNotStart { host, .. }
                | Event::Refused { host, .. } => {
                    if let Ok(mut ended) = ended.lock() {
                        ended.insert(host);
                    }
                    return;
                }
                Event::Output { host, stream, line } => {
                    let mark = if stream == EventKind::Stderr {
                        "! "
                    } else {
                        ""
                    };
                    (host, format!("{mark}{line}"))
                }
                Event::Facts { host, facts } => (host, facts_line(&facts)),
                _ => return,
            };
            if let Ok(mut all) = into.lock() {
                all.entry(host).or_default().push(line);
            }
        }))
    }

    /// How many hosts have ended so far.
    pub(super) fn ended(&self) -> usize {
        self.1.lock().map_or(0, |e| e.len())
    }

    /// The results, folded: one paragraph per group of hosts with the same outcome, detail
    /// and output, each group's output bounded.
    pub(super) fn fold(&self, results: &[HostResult]) -> String {
        self.fold_within(results, LINES, LINE_BYTES)
    }

    /// The results folded with every line of output, whole.
    pub(super) fn fold_whole(&self, results: &[HostResult]) -> String {
        self.fold_within(results, usize::MAX, usize::MAX)
    }

    fn fold_within(&self, results: &[HostResult], max_lines: usize, line_bytes: usize) -> String {
        let lines = self.0.lock().map(|l| l.clone()).unwrap_or_default();
        let mut groups: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
        for r in results {
            let key = match r.detail.as_str() {
                "" => r.outcome.label().to_owned(),
                detail => format!("{}, {detail}", r.outcome.label()),
            };
            let out = lines.get(&r.host).cloned().unwrap_or_default();
            match groups.iter_mut().find(|(k, _, o)| *k == key && *o == out) {
                Some((_, hosts, _)) => hosts.push(r.host.clone()),
                None => groups.push((key, vec![r.host.clone()], out)),
            }
        }
        groups.sort_by_key(|(_, hosts, _)| std::cmp::Reverse(hosts.len()));
        let mut text = String::new();
        for (key, hosts, out) in &groups {
            let same = if hosts.len() > 1 && !out.is_empty() {
                ", same output"
            } else {
                ""
            };
            text.push_str(&format!("{}: {key}{same}\n", fold_hosts(hosts)));
            for line in out.iter().take(max_lines) {
                let cut = line
                    .char_indices()
                    .nth(line_bytes)
                    .map_or(line.len(), |(i, _)| i);
                text.push_str("  ");
                text.push_str(&line[..cut]);
                text.push('\n');
            }
            if out.len() > max_lines {
                text.push_str(&format!("  ({} more lines)\n", out.len() - max_lines));
            }
        }
        text
    }
}

/// A host's facts in one line, its name left out so that hosts alike fold together.
fn facts_line(f: &serde_json::Value) -> String {
    let s = |k: &str| {
        f.get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    let n = |k: &str| f.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    format!(
        "{} (kernel {}, {}), {} cpus, {} MiB, init {}, packages {}",
        s("os_pretty"),
        s("kernel"),
        s("arch"),
        n("cpus"),
        n("mem_total_kb") / 1024,
        s("init"),
        s("pkg_manager")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_events::HostOutcome;

    #[test]
    fn hosts_that_said_the_same_are_told_once() {
        let outputs = Outputs::default();
        let sink = outputs.sink();
        let mut results = Vec::new();
        for i in 1..=200 {
            let host = format!("web{i:03}");
            let line = if i == 7 { "disk full" } else { "up 3 days" };
            (sink.0)(Event::output(&host, EventKind::Stdout, line));
            results.push(HostResult::new(&host, HostOutcome::Ok, "exit 0"));
        }
        let text = outputs.fold(&results);
        assert_eq!(
            text,
            "web[001-006,008-200]: ok, exit 0, same output\n  up 3 days\n\
             web007: ok, exit 0\n  disk full\n"
        );
    }
}
