//! A rule's sandbox floor: the limits every command under the rule gets, which the command
//! line may tighten and never loosen.

use std::path::Path;

use serde::Deserialize;
use wisp_plan::limits::LimitArgs;
use wisp_plan::quantity::{parse_duration, parse_size};
use wisp_protocol::sandbox::SandboxMode;

/// What a rule's commands run under at least.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Floor {
    /// Wall-clock limit (`30s`).
    timeout: Option<String>,
    /// Memory limit (`256M`).
    memory: Option<String>,
    /// Process limit.
    pids: Option<u64>,
    /// Open-file limit.
    nofile: Option<u64>,
    /// No network at all (a namespace of its own).
    #[serde(default)]
    no_net: bool,
    /// The only TCP ports it may connect to.
    allow_connect: Option<Vec<u16>>,
    /// Where it may read (everywhere, `/`, when `rw` is given without it).
    ro: Option<Vec<String>>,
    /// The only places it may write.
    rw: Option<Vec<String>>,
    /// The seccomp profile (`default` or `strict`).
    seccomp: Option<String>,
}

impl Floor {
    pub(super) fn check(&self) -> Result<(), String> {
        if let Some(t) = &self.timeout {
            parse_duration(t).map_err(|e| format!("timeout: {e}"))?;
        }
        if let Some(m) = &self.memory {
            parse_size(m).map_err(|e| format!("memory: {e}"))?;
        }
        if let Some(s) = &self.seccomp
            && !matches!(s.as_str(), "default" | "strict")
        {
            return Err(format!("seccomp {s:?}: default or strict"));
        }
        for p in self.ro.iter().chain(&self.rw).flatten() {
            if !p.starts_with('/') {
                return Err(format!("{p:?}: sandbox paths are absolute"));
            }
        }
        Ok(())
    }

    /// `asked` held to this floor.
    pub(super) fn apply(&self, asked: &LimitArgs) -> Result<LimitArgs, String> {
        let mut l = asked.clone();
        if asked.sandbox == Some(SandboxMode::BestEffort) {
            return Err("--sandbox best-effort: the policy's sandbox is required".into());
        }
        l.sandbox = Some(SandboxMode::Require);
        if let Some(t) = &self.timeout {
            let t = parse_duration(t)?;
            l.timeout = Some(asked.timeout.map_or(t, |a| a.min(t)));
        }
        if let Some(m) = &self.memory {
            let m = parse_size(m)?;
            l.memory = Some(asked.memory.map_or(m, |a| a.min(m)));
        }
        for (floor, slot) in [(self.pids, &mut l.pids), (self.nofile, &mut l.nofile)] {
            if let Some(f) = floor {
                *slot = Some(slot.map_or(f, |a| a.min(f)));
            }
        }
        if self.no_net {
            if !asked.allow_connect.is_empty() || !asked.allow_bind.is_empty() {
                return Err("--allow-connect/--allow-bind: the rule allows no network".into());
            }
            l.no_net = true;
        }
        if let Some(ports) = &self.allow_connect {
            if let Some(p) = asked.allow_connect.iter().find(|p| !ports.contains(p)) {
                return Err(format!("--allow-connect {p}: the rule allows {ports:?}"));
            }
            if asked.allow_connect.is_empty() {
                l.allow_connect = ports.clone();
            }
        }
        self.paths(asked, &mut l)?;
        if let Some(s) = &self.seccomp {
            l.seccomp = match asked.seccomp.as_deref() {
                None => Some(s.clone()),
                Some(a) if a == s || a == "strict" => Some(a.to_owned()),
                Some(a) => return Err(format!("--seccomp {a}: the rule requires {s}")),
            };
        }
        Ok(l)
    }

    /// Landlock paths: writes only beneath the rule's `rw`, reads beneath its `ro`.
    fn paths(&self, asked: &LimitArgs, l: &mut LimitArgs) -> Result<(), String> {
        if self.rw.is_none() && self.ro.is_none() {
            return Ok(());
        }
        let rw = self.rw.clone().unwrap_or_default();
        let rw = &rw;
        let ro = self.ro.clone().unwrap_or_else(|| vec!["/".into()]);
        let beneath = |p: &str, roots: &[String]| {
            roots
                .iter()
                .any(|r| Path::new(p).starts_with(Path::new(r)) && !p.contains("/.."))
        };
        if let Some(p) = asked.rw.iter().find(|p| !beneath(p, rw)) {
            return Err(format!(
                "--rw {p}: the rule allows writes beneath {rw:?} only"
            ));
        }
        let readable: Vec<String> = ro.iter().chain(rw).cloned().collect();
        if let Some(p) = asked.ro.iter().find(|p| !beneath(p, &readable)) {
            return Err(format!(
                "--ro {p}: the rule allows reads beneath {readable:?} only"
            ));
        }
        if !asked.exec.is_empty() {
            return Err("--exec: the rule's sandbox names where programs run from".into());
        }
        if asked.rw.is_empty() {
            l.rw = rw.clone();
        }
        if asked.ro.is_empty() {
            l.ro = ro;
        }
        Ok(())
    }
}
