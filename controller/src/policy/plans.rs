//! A policy's plan rules (`[[plan]]`): which plans may be checked on which hosts, and whether
//! and how they may then be applied.
//!
//! ```toml
//! [[plan]]
//! name = "web config"
//! path = "/srv/plans/web*.toml"  # a glob over the plan's absolute path
//! hosts = "web"                  # an inventory pattern; every host of the call must be in it
//! apply = "approved"             # "approved" (default), "never" or "direct"
//! approval_for = "1h"            # the longest an approval may last (default 1h)
//! ```
//!
//! `approved`: a check records what it saw under an id, and only an id an operator approved
//! (`wisp approve ID`) may be applied, once, while the plan, vars, hosts and what each host
//! holds are still what was checked. `direct`: the same, the approval given by the rule
//! itself. `never`: check and drift only.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// One plan rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRule {
    /// Its name, in refusals, approvals and the audit.
    pub name: String,
    /// A glob (`*`, `?`) over the plan file's absolute path, symlinks resolved.
    pub path: String,
    /// An inventory pattern: the hosts it covers (`all` by default).
    #[serde(default = "super::all")]
    pub hosts: String,
    /// Whether and how a checked plan may be applied.
    #[serde(default)]
    pub apply: Apply,
    /// The longest an approval may last (`30m`, `1h`).
    #[serde(default = "hour")]
    pub approval_for: String,
}

fn hour() -> String {
    "1h".into()
}

/// How a checked plan may be applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Apply {
    /// After an operator's approval of the check.
    #[default]
    Approved,
    /// Never: check and drift only.
    Never,
    /// After a check, approved by the rule itself.
    Direct,
}

impl PlanRule {
    /// Checks the rule as it is read.
    pub(super) fn check(&self) -> Result<(), String> {
        if !self.path.starts_with('/') {
            return Err(format!(
                "plan rule {:?}: path {:?} must be absolute",
                self.name, self.path
            ));
        }
        self.lifetime().map(|_| ())
    }

    /// `approval_for`, read.
    pub fn lifetime(&self) -> Result<Duration, String> {
        wisp_plan::quantity::parse_duration(&self.approval_for)
            .map_err(|e| format!("plan rule {:?}: approval_for: {e}", self.name))
    }
}

impl super::Policy {
    /// The plan rule that lets `plan` (an absolute path, symlinks resolved) be checked on
    /// every one of `hosts`; why not otherwise.
    pub fn allow_plan(
        &self,
        plan: &Path,
        hosts: &[String],
        select: impl Fn(&str) -> Result<Vec<String>, String>,
    ) -> Result<&PlanRule, String> {
        self.within_max(hosts)?;
        let shown = plan.display().to_string();
        let mut why = format!("no plan rule names {shown}");
        for rule in &self.plans {
            if !super::glob(rule.path.as_bytes(), shown.as_bytes()) {
                continue;
            }
            let covered = select(&rule.hosts)?;
            if let Some(h) = hosts.iter().find(|h| !covered.contains(h)) {
                why = format!(
                    "plan rule {:?} covers {:?}, which {h} is not in",
                    rule.name, rule.hosts
                );
                continue;
            }
            return Ok(rule);
        }
        Err(why)
    }
}
