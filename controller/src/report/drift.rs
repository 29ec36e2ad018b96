//! `wisp drift`: what check mode found on each host, collected instead of printed task by
//! task, then reported once, with the hosts that drifted the same way (the same tasks, the
//! same diffs) folded into one group.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

use super::nodeset::fold_hosts;
use super::{HostOutcome, HostResult, visible};
use wisp_events::exit::ExitStatus;

/// One task that would change (or could not be checked) on a host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    /// The task's name.
    pub task: String,
    /// `changed` (it would change the host) or `failed` (it could not be checked).
    pub status: String,
    /// What the task said.
    pub detail: String,
    /// The unified diff of a file it would rewrite, already redacted; empty when none.
    pub diff: String,
}

/// Findings per host, as the tasks report them.
#[derive(Debug, Default)]
pub struct Collector {
    findings: Mutex<BTreeMap<String, Vec<Finding>>>,
    /// A diff waits for its task: a file task's diff is reported just before it.
    pending_diff: Mutex<BTreeMap<String, String>>,
}

impl Collector {
    /// Keeps what drift is made of: task results and diffs.
    pub(super) fn take(&self, event: &super::Event) {
        use super::Event;
        match event {
            Event::Task(t) => self.task(&t.host, &t.task, &t.status, &t.detail),
            Event::Diff { host, text } => self.diff(host, text),
            Event::RunStarted(_)
            | Event::Audit { .. }
            | Event::Bus { .. }
            | Event::Output { .. }
            | Event::CommandDone { .. }
            | Event::Refused { .. }
            | Event::Unreachable { .. }
            | Event::CouldNotStart { .. }
            | Event::FactsRead { .. }
            | Event::Facts { .. }
            | Event::Ping { .. }
            | Event::HostEnded { .. }
            | Event::Worker(_)
            | Event::Warning { .. }
            | Event::Stopping { .. }
            | Event::RunEnded { .. }
            | Event::Other(_) => {}
        }
    }

    /// A task's result: kept when it would change the host or failed, with its diff.
    pub fn task(&self, host: &str, task: &str, status: &str, detail: &str) {
        let diff = self
            .pending_diff
            .lock()
            .ok()
            .and_then(|mut p| p.remove(host))
            .unwrap_or_default();
        if !matches!(status, "changed" | "failed") {
            return;
        }
        if let Ok(mut f) = self.findings.lock() {
            f.entry(host.to_owned()).or_default().push(Finding {
                task: task.to_owned(),
                status: status.to_owned(),
                detail: detail.to_owned(),
                diff,
            });
        }
    }

    /// A diff, for the host's task reported next.
    pub fn diff(&self, host: &str, text: &str) {
        if let Ok(mut p) = self.pending_diff.lock() {
            p.entry(host.to_owned()).or_default().push_str(text);
        }
    }

    fn findings(&self) -> BTreeMap<String, Vec<Finding>> {
        self.findings
            .lock()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default()
    }
}

/// The whole drift of a run.
#[derive(Debug, Serialize)]
pub struct Drift {
    /// Hosts that drifted the same way, folded (`web[01-03]`), with the list and findings.
    pub groups: Vec<Group>,
    /// Hosts that could not be reached, with why.
    pub unreachable: Vec<(String, String)>,
    /// Hosts that failed or were interrupted before they could be checked whole.
    pub incomplete: Vec<(String, String)>,
    /// Hosts that match the plan, folded.
    pub clean: String,
    /// How many hosts match the plan.
    pub clean_count: usize,
    /// The hosts that match the plan, one by one.
    #[serde(skip)]
    pub clean_hosts: Vec<String>,
}

/// Hosts that drifted identically.
#[derive(Debug, Serialize)]
pub struct Group {
    /// The hosts, folded.
    pub hosts: String,
    /// The hosts, one by one.
    pub host_list: Vec<String>,
    /// What drifted on each of them.
    pub findings: Vec<Finding>,
}

impl Drift {
    /// Folds what `collector` gathered, for these results.
    pub fn new(collector: &Collector, results: &[HostResult]) -> Drift {
        let mut findings = collector.findings();
        let mut by_findings: BTreeMap<Vec<Finding>, Vec<String>> = BTreeMap::new();
        let (mut unreachable, mut incomplete, mut clean) = (Vec::new(), Vec::new(), Vec::new());
        for r in results {
            let found = findings.remove(&r.host).unwrap_or_default();
            match r.outcome {
                HostOutcome::Unreachable => unreachable.push((r.host.clone(), r.detail.clone())),
                _ if !found.is_empty() => {
                    by_findings.entry(found).or_default().push(r.host.clone())
                }
                HostOutcome::Ok => clean.push(r.host.clone()),
                HostOutcome::Failed
                | HostOutcome::CouldNotStart
                | HostOutcome::Interrupted
                | HostOutcome::NotStarted => {
                    incomplete.push((r.host.clone(), r.detail.clone()));
                }
            }
        }
        let mut groups: Vec<Group> = by_findings
            .into_iter()
            .map(|(findings, hosts)| Group {
                hosts: fold_hosts(&hosts),
                host_list: hosts,
                findings,
            })
            .collect();
        // The largest groups first: the fleet-wide drift before the odd host.
        groups.sort_by_key(|g| std::cmp::Reverse(g.host_list.len()));
        Drift {
            groups,
            unreachable,
            incomplete,
            clean_count: clean.len(),
            clean: fold_hosts(&clean),
            clean_hosts: clean,
        }
    }

    /// 0 when nothing drifted, 2 when some host drifted (or could not be checked), 3 when
    /// some host was unreachable and none drifted; 99 when interrupted.
    pub fn exit_status(&self, interrupted: bool) -> ExitStatus {
        if interrupted {
            ExitStatus::Interrupted
        } else if !self.groups.is_empty() || !self.incomplete.is_empty() {
            ExitStatus::Failed
        } else if !self.unreachable.is_empty() {
            ExitStatus::Unreachable
        } else {
            ExitStatus::Ok
        }
    }

    /// The report as the operator reads it.
    pub fn text(&self) -> String {
        self.text_as("DRIFTED")
    }

    /// The report, each group of hosts headed `heading` (`WOULD CHANGE` for a check, `CHANGED`
    /// for an apply).
    pub fn text_as(&self, heading: &str) -> String {
        let mut out = String::new();
        for g in &self.groups {
            let n = g.host_list.len();
            out.push_str(&format!(
                "{heading} {} ({n} host{})\n",
                g.hosts,
                if n == 1 { "" } else { "s" }
            ));
            // Details and diffs are the hosts' words (a file someone changed on a host):
            // shown escaped, so they cannot drive the terminal the report is read on.
            for f in &g.findings {
                let detail = if f.detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", visible(&f.detail))
                };
                out.push_str(&format!("  {:<8} {}{detail}\n", f.status, visible(&f.task)));
                for line in f.diff.lines() {
                    out.push_str(&format!("    {}\n", visible(line)));
                }
            }
        }
        for (host, why) in &self.incomplete {
            out.push_str(&format!("NOT CHECKED {host}: {}\n", visible(why)));
        }
        for (host, why) in &self.unreachable {
            out.push_str(&format!("UNREACHABLE {host}: {}\n", visible(why)));
        }
        if self.clean_count > 0 {
            out.push_str(&format!(
                "CLEAN {} ({} host{})\n",
                self.clean,
                self.clean_count,
                if self.clean_count == 1 { "" } else { "s" }
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(host: &str, outcome: HostOutcome) -> HostResult {
        HostResult::new(host, outcome, "")
    }

    #[test]
    fn identical_drift_folds_and_sets_the_exit_code() {
        let c = Collector::default();
        for h in ["web03", "web01", "web02"] {
            c.task(h, "dir", "ok", "");
            c.diff(h, "-a\n+b\n");
            c.task(h, "config", "changed", "would change content");
        }
        c.diff("web04", "-a\n+c\n");
        c.task("web04", "config", "changed", "would change content");
        let results = [
            result("web01", HostOutcome::Ok),
            result("web02", HostOutcome::Ok),
            result("web03", HostOutcome::Ok),
            result("web04", HostOutcome::Ok),
            result("web05", HostOutcome::Ok),
            result("web06", HostOutcome::Unreachable),
        ];
        let d = Drift::new(&c, &results);
        assert_eq!(d.groups.len(), 2);
        assert_eq!(d.groups[0].hosts, "web[01-03]");
        assert_eq!(d.groups[0].findings[0].diff, "-a\n+b\n");
        assert_eq!(d.groups[1].hosts, "web04");
        assert_eq!(d.clean, "web05");
        assert_eq!(d.unreachable.len(), 1);
        assert_eq!(d.exit_status(false), ExitStatus::Failed);
        let text = d.text();
        assert!(
            text.starts_with("DRIFTED web[01-03] (3 hosts)\n  changed  config"),
            "{text}"
        );
        assert!(text.contains("UNREACHABLE web06"), "{text}");

        let quiet = Drift::new(&Collector::default(), &results);
        assert_eq!(quiet.exit_status(false), ExitStatus::Unreachable);
        let clean = Drift::new(&Collector::default(), &results[..5]);
        assert_eq!(clean.exit_status(false), ExitStatus::Ok);
        assert_eq!(clean.clean, "web[01-05]");
    }
}
