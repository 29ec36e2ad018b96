//! A policy (`--policy FILE`): which programs may run on which hosts, with which arguments,
//! under which sandbox floor, on how many hosts at once and in which batches. It is checked
//! before any host is contacted, on the command's parsed argv, never on a shell string; the
//! runner then checks again that the program it is about to exec resolves (on the host's
//! `PATH`, symlinks followed) to one the matching rule names, and the sandbox floor is
//! enforced by the host's kernel, so an allowed program that is abused cannot write outside
//! its paths or reach the network either.
//!
//! ```toml
//! [limits]
//! max_hosts = 50        # the most hosts one call may reach
//! serial = "10"         # forced batches, as --serial
//! max_fail = "10%"      # forced failure budget, as --max-fail
//!
//! [[rule]]
//! name = "look around"
//! hosts = "web:db"      # an inventory pattern; every host of the call must be in it
//! programs = ["/usr/bin/uptime", "/usr/bin/df", "/usr/bin/cat"]
//! args = ["-h", "**"]   # optional: each argument by a glob, `**` for the rest
//! [rule.sandbox]        # every command under this rule gets at least this
//! no_net = true
//! rw = ["/tmp"]         # writes only beneath these
//! memory = "256M"
//! pids = 64
//! timeout = "30s"
//! seccomp = "default"
//! ```
//!
//! Plans are allowed by `[[plan]]` rules: which plan files may be checked on which hosts, and
//! whether a check may then be applied after an operator's approval, directly, or never (see
//! [`PlanRule`]).

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use wisp_plan::limits::LimitArgs;

mod floor;
mod plans;
#[cfg(test)]
mod tests;

pub use floor::Floor;
pub use plans::{Apply, PlanRule};

/// A loaded policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default, rename = "rule")]
    rules: Vec<Rule>,
    #[serde(default, rename = "plan")]
    plans: Vec<PlanRule>,
    #[serde(default)]
    limits: CallLimits,
}

/// One rule: programs that may run on some hosts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Its name, in refusals and the audit.
    pub name: String,
    /// An inventory pattern: the hosts it covers (`all` by default).
    #[serde(default = "all")]
    pub hosts: String,
    /// Absolute paths of the programs it allows.
    pub programs: Vec<String>,
    /// Globs, one per argument (`*`, `?`; `**` as the last stands for any rest); any
    /// arguments when absent. A glob never matches a control character (a newline...).
    pub args: Option<Vec<String>>,
    /// The sandbox floor its commands run under.
    #[serde(default)]
    pub sandbox: Floor,
}

fn all() -> String {
    "all".into()
}

/// Limits on one call.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallLimits {
    max_hosts: Option<usize>,
    serial: Option<String>,
    max_fail: Option<String>,
}

impl Policy {
    /// Reads and checks a policy file.
    pub fn load(path: &Path) -> Result<Policy, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("policy {}: {e}", path.display()))?;
        Policy::parse(&text).map_err(|e| format!("policy {}: {e}", path.display()))
    }

    /// Parses and checks policy text.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let p: Policy = toml::from_str(text).map_err(|e| e.to_string().trim().to_owned())?;
        if p.rules.is_empty() && p.plans.is_empty() {
            return Err("no [[rule]] and no [[plan]]: nothing would be allowed".into());
        }
        for r in &p.plans {
            r.check()?;
        }
        for r in &p.rules {
            if let Some(bad) = r.programs.iter().find(|p| !p.starts_with('/')) {
                return Err(format!(
                    "rule {:?}: program {bad:?} must be an absolute path",
                    r.name
                ));
            }
            r.sandbox
                .check()
                .map_err(|e| format!("rule {:?}: {e}", r.name))?;
        }
        if let Some(s) = &p.limits.serial {
            s.parse::<crate::rollout::Serial>()
                .map_err(|e| format!("[limits] serial: {e}"))?;
        }
        if let Some(s) = &p.limits.max_fail {
            s.parse::<crate::rollout::Budget>()
                .map_err(|e| format!("[limits] max_fail: {e}"))?;
        }
        Ok(p)
    }

    /// The rule that allows `argv` on every one of `hosts` (`select` gives the hosts an
    /// inventory pattern covers); why not, naming the program, rule and hosts, otherwise.
    pub fn allow(
        &self,
        argv: &[String],
        hosts: &[String],
        select: impl Fn(&str) -> Result<Vec<String>, String>,
    ) -> Result<&Rule, String> {
        self.within_max(hosts)?;
        let Some((program, args)) = argv.split_first() else {
            return Err("an empty command".into());
        };
        let mut why = format!("no rule allows the program {program:?}");
        for rule in &self.rules {
            if !rule.programs.iter().any(|p| same_program(program, p)) {
                continue;
            }
            if let Some(globs) = &rule.args
                && !args_match(globs, args)
            {
                why = format!(
                    "rule {:?} allows {program:?} only with arguments {globs:?}",
                    rule.name
                );
                continue;
            }
            let covered = select(&rule.hosts)?;
            let outside: Vec<&str> = hosts
                .iter()
                .filter(|h| !covered.contains(h))
                .map(String::as_str)
                .collect();
            if !outside.is_empty() {
                why = format!(
                    "rule {:?} allows {program:?} on {:?}, which {} not in",
                    rule.name,
                    rule.hosts,
                    if outside.len() == 1 {
                        format!("{} is", outside[0])
                    } else {
                        format!("{} hosts ({}...) are", outside.len(), outside[0])
                    }
                );
                continue;
            }
            return Ok(rule);
        }
        Err(why)
    }

    /// Whether reading `hosts` (their facts) is allowed: no more than `max_hosts`, each
    /// covered by some rule.
    pub fn allow_hosts(
        &self,
        hosts: &[String],
        select: impl Fn(&str) -> Result<Vec<String>, String>,
    ) -> Result<(), String> {
        self.within_max(hosts)?;
        let mut covered = std::collections::BTreeSet::new();
        for pattern in self.rules.iter().map(|r| &r.hosts) {
            covered.extend(select(pattern)?);
        }
        for pattern in self.plans.iter().map(|r| &r.hosts) {
            covered.extend(select(pattern)?);
        }
        match hosts.iter().find(|h| !covered.contains(*h)) {
            Some(h) => Err(format!("{h} is in no rule's hosts")),
            None => Ok(()),
        }
    }

    /// No more hosts than `max_hosts`.
    fn within_max(&self, hosts: &[String]) -> Result<(), String> {
        match self.limits.max_hosts {
            Some(max) if hosts.len() > max => Err(format!(
                "{} hosts: the policy allows at most {max} per call",
                hosts.len()
            )),
            _ => Ok(()),
        }
    }

    /// `--serial` and `--max-fail` as the policy forces them: the command line must leave
    /// them out.
    pub fn rollout(
        &self,
        serial: &mut Option<crate::rollout::Serial>,
        max_fail: &mut Option<crate::rollout::Budget>,
        (serial_given, max_fail_given): (bool, bool),
    ) -> Result<(), String> {
        if let Some(s) = &self.limits.serial {
            if serial_given {
                return Err(format!("the policy sets --serial {s}; leave --serial out"));
            }
            *serial = Some(s.parse()?);
        }
        if let Some(m) = &self.limits.max_fail {
            if max_fail_given {
                return Err(format!(
                    "the policy sets --max-fail {m}; leave --max-fail out"
                ));
            }
            *max_fail = Some(m.parse()?);
        }
        Ok(())
    }
}

impl Rule {
    /// The limits a command under this rule runs with: the command line's, held to the
    /// rule's floor (a limit the command line loosens is refused).
    pub fn limits(&self, asked: &LimitArgs) -> Result<LimitArgs, String> {
        self.sandbox
            .apply(asked)
            .map_err(|e| format!("rule {:?}: {e}", self.name))
    }
}

/// `path` with `.` and `..` taken out, as the kernel would walk it without symlinks.
fn normal(path: &str) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in Path::new(path).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// Whether the command's `program` is the policy's `allowed`: the same path once `.` and
/// `..` are taken out, or, written without a `/`, the same name (the runner then checks
/// where the host's `PATH` leads, symlinks followed).
fn same_program(program: &str, allowed: &str) -> bool {
    if program.contains('/') {
        program.starts_with('/') && normal(program) == normal(allowed)
    } else {
        Path::new(allowed).file_name().and_then(|n| n.to_str()) == Some(program)
    }
}

/// Whether `args` match `globs`, one by one (`**` last: any rest).
fn args_match(globs: &[String], args: &[String]) -> bool {
    let (globs, rest) = match globs.split_last() {
        Some((last, init)) if last == "**" => (init, true),
        _ => (globs, false),
    };
    if args.len() < globs.len() || (!rest && args.len() != globs.len()) {
        return false;
    }
    let fits = |a: &str| !a.chars().any(char::is_control);
    globs
        .iter()
        .zip(args)
        .all(|(g, a)| fits(a) && glob(g.as_bytes(), a.as_bytes()))
        && args[globs.len()..].iter().all(|a| fits(a))
}

/// `*` any run, `?` one byte, anything else itself.
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) && p[pi] != b'*' {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}
