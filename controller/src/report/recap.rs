//! The recap after a run: per host (or per folded group) on stderr, or the JSON summary.

use serde_json::json;

use super::{HostOutcome, HostResult, Reporter, folded, outcome_colour, visible};
use crate::exit::ExitStatus;

impl Reporter {
    /// The recap after a run: per host on stderr (human), or the summary line (JSON).
    pub fn recap(&self, results: &[HostResult], status: ExitStatus, stopped: Option<&str>) {
        let count = |o| results.iter().filter(|r| r.outcome == o).count();
        let (ok, failed, unreachable, interrupted, not_started) = (
            count(HostOutcome::Ok),
            count(HostOutcome::Failed),
            count(HostOutcome::Unreachable),
            count(HostOutcome::Interrupted),
            count(HostOutcome::NotStarted),
        );
        let groups = self.fold.as_ref().map(|f| f.groups(results));
        if let Some(groups) = &groups
            && self.json
        {
            self.json(json!({"type": "fold", "groups": groups}));
        }
        if self.json {
            self.json(json!({
                "type": "summary", "hosts": results.len(), "ok": ok, "failed": failed,
                "unreachable": unreachable, "interrupted": interrupted,
                "not_started": not_started, "stopped": stopped, "exit_code": status as u8,
            }));
            return;
        }
        if let Some(bar) = &self.progress {
            bar.finish_and_clear();
        }
        if let Some(groups) = &groups {
            let text: String = groups.iter().map(folded::Group::text).collect();
            self.out(text.trim_end_matches('\n'));
        }
        let mut text = String::from("\nRECAP\n");
        for r in results.iter().filter(|_| groups.is_none()) {
            let colour = outcome_colour(r.outcome.label());
            text.push_str(&format!(
                "{:<w$}  {}  {:<16}  {:.3}s\n",
                r.host,
                self.paint(colour, &format!("{:<11}", r.outcome.label())),
                visible(&r.detail),
                r.elapsed.as_secs_f64(),
                w = self.width
            ));
            if let Some(sandbox) = &r.sandbox {
                let sandbox = visible(sandbox);
                text.push_str(&format!("{:<w$}  {sandbox}\n", "", w = self.width));
            }
        }
        for (hosts, outcome, detail) in groups
            .as_deref()
            .map(folded::recap_rows)
            .unwrap_or_default()
        {
            text.push_str(&format!(
                "{hosts:<w$}  {}  {}\n",
                self.paint(outcome_colour(outcome), &format!("{outcome:<11}")),
                visible(detail),
                w = self.width
            ));
        }
        let extra = |n: usize, what: &str| {
            if n > 0 {
                format!(", {n} {what}")
            } else {
                String::new()
            }
        };
        text.push_str(&format!(
            "{} host{}: {ok} ok, {failed} failed, {unreachable} unreachable{}{}",
            results.len(),
            if results.len() == 1 { "" } else { "s" },
            extra(interrupted, "interrupted"),
            extra(not_started, "not started"),
        ));
        if let Some(why) = stopped {
            text.push_str(&format!(
                "\nstopped: {why}; {not_started} hosts not started"
            ));
        }
        self.err(&text);
    }
}
