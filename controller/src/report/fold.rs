//! `--fold`: each host's output is kept until the run ends, then printed once per group of
//! hosts whose output and result are the same, under the group's folded host list
//! (`web[01-29]`), as ClusterShell's `clubak -b` prints it. The largest group comes first, so
//! the hosts that differ are the last thing printed before the recap.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use super::HostResult;
use super::nodeset::fold_hosts;

/// One line of a host's output: on stderr or not, and its text.
type Line = (bool, String);

/// The output of every host, kept for folding.
#[derive(Debug, Default)]
pub(super) struct Folder {
    lines: Mutex<HashMap<String, Vec<Line>>>,
}

/// Hosts with the same output and the same result.
#[derive(Debug, Serialize)]
pub(super) struct Group {
    /// The hosts, folded (`web[01-29]`).
    pub(super) hosts: String,
    /// How many.
    pub(super) count: usize,
    /// Each host, in the run's order.
    pub(super) host_list: Vec<String>,
    /// How they ended (`ok`, `failed`, ...).
    pub(super) outcome: &'static str,
    /// The result's detail (`exit 0`, a plan's tally).
    pub(super) detail: String,
    /// Their output, in order.
    pub(super) lines: Vec<GroupLine>,
}

/// One line of a group's output.
#[derive(Debug, Serialize)]
pub(super) struct GroupLine {
    /// `stdout` or `stderr`.
    pub(super) stream: &'static str,
    /// The text.
    pub(super) line: String,
}

impl Folder {
    /// Keeps one line of `host`'s output.
    pub(super) fn line(&self, host: &str, stderr: bool, line: &str) {
        if let Ok(mut lines) = self.lines.lock() {
            lines
                .entry(host.to_owned())
                .or_default()
                .push((stderr, line.to_owned()));
        }
    }

    /// The hosts of `results` grouped by output and result, largest group first (then in the
    /// order of their first host).
    pub(super) fn groups(&self, results: &[HostResult]) -> Vec<Group> {
        let lines = self.lines.lock().map(|l| l.clone()).unwrap_or_default();
        let mut groups: Vec<(Vec<Line>, &'static str, String, Vec<String>)> = Vec::new();
        for r in results {
            let output = lines.get(&r.host).cloned().unwrap_or_default();
            let outcome = r.outcome.label();
            match groups
                .iter_mut()
                .find(|(o, out, d, _)| *o == output && *out == outcome && *d == r.detail)
            {
                Some((_, _, _, hosts)) => hosts.push(r.host.clone()),
                None => groups.push((output, outcome, r.detail.clone(), vec![r.host.clone()])),
            }
        }
        // Stable: equal sizes keep the order of their first host.
        groups.sort_by_key(|g| std::cmp::Reverse(g.3.len()));
        groups
            .into_iter()
            .map(|(output, outcome, detail, hosts)| Group {
                hosts: fold_hosts(&hosts),
                count: hosts.len(),
                host_list: hosts,
                outcome,
                detail,
                lines: output
                    .into_iter()
                    .map(|(stderr, line)| GroupLine {
                        stream: if stderr { "stderr" } else { "stdout" },
                        line,
                    })
                    .collect(),
            })
            .collect()
    }
}

/// The recap's rows: the hosts of `groups` folded by result alone (outcome and detail),
/// whatever their output.
pub(super) fn recap_rows(groups: &[Group]) -> Vec<(String, &'static str, &str)> {
    let mut rows: Vec<(Vec<&str>, &'static str, &str)> = Vec::new();
    for g in groups {
        let hosts = g.host_list.iter().map(String::as_str);
        match rows
            .iter_mut()
            .find(|(_, o, d)| *o == g.outcome && *d == g.detail)
        {
            Some((list, _, _)) => list.extend(hosts),
            None => rows.push((hosts.collect(), g.outcome, &g.detail)),
        }
    }
    rows.into_iter()
        .map(|(hosts, outcome, detail)| (fold_hosts(&hosts), outcome, detail))
        .collect()
}

impl Group {
    /// The group as text: a header naming the hosts and their result, then the output, `| `
    /// before stdout lines and `! ` before stderr ones.
    pub(super) fn text(&self) -> String {
        let many = if self.count > 1 {
            format!(" ({} hosts)", self.count)
        } else {
            String::new()
        };
        let detail = if self.detail.is_empty() {
            String::new()
        } else {
            format!(", {}", super::visible(&self.detail))
        };
        let mut text = format!("==== {}{many}: {}{detail}\n", self.hosts, self.outcome);
        for l in &self.lines {
            let sep = if l.stream == "stderr" { '!' } else { '|' };
            text.push_str(&format!("{sep} {}\n", l.line));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::HostOutcome;

    fn result(host: &str, outcome: HostOutcome, detail: &str) -> HostResult {
        HostResult {
            host: host.into(),
            outcome,
            detail: detail.into(),
            elapsed: std::time::Duration::ZERO,
            sandbox: None,
        }
    }

    #[test]
    fn hosts_fold_by_output_and_result() {
        let folder = Folder::default();
        let mut results = Vec::new();
        for i in 1..=5 {
            let host = format!("web{i:02}");
            folder.line(&host, false, if i == 4 { "other" } else { "same" });
            // Same output, different result: apart.
            let outcome = if i == 5 {
                HostOutcome::Failed
            } else {
                HostOutcome::Ok
            };
            results.push(result(
                &host,
                outcome,
                if i == 5 { "exit 1" } else { "exit 0" },
            ));
        }
        let groups = folder.groups(&results);
        let heads: Vec<String> = groups
            .iter()
            .map(|g| g.text().lines().next().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(
            heads,
            [
                "==== web[01-03] (3 hosts): ok, exit 0",
                "==== web04: ok, exit 0",
                "==== web05: failed, exit 1",
            ]
        );
        assert_eq!(groups[1].text(), "==== web04: ok, exit 0\n| other\n");
    }
}
