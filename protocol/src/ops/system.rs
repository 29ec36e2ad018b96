//! The ops that drive the host's own tools: `pkg.ensure` and `service.*`, their arguments
//! and what they report.

use serde::{Deserialize, Serialize};

use super::{OpError, check_path};

/// What `pkg.ensure` makes true.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PkgState {
    /// Installed (at `version`, when given).
    #[default]
    Present,
    /// Not installed.
    Absent,
    /// Installed at the newest version the host's repositories offer.
    Latest,
}

/// Arguments of `pkg.ensure`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PkgEnsureArgs {
    /// The package name.
    pub name: String,
    /// `present` (default), `absent` or `latest`.
    #[serde(default)]
    pub state: PkgState,
    /// An exact version to have installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Install from this package file on the host (a `.deb`) instead of the repositories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Check mode.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub check: bool,
}

impl PkgEnsureArgs {
    pub(super) fn validate(&self) -> Result<(), OpError> {
        let ok = |s: &str| {
            !s.is_empty()
                && !s.starts_with('-')
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-._:~".contains(c))
        };
        if !ok(&self.name) {
            return Err(OpError::BadArgs(format!(
                "pkg.ensure args: {:?} is not a package name",
                self.name
            )));
        }
        if let Some(v) = &self.version
            && !ok(v)
        {
            return Err(OpError::BadArgs(format!(
                "pkg.ensure args: {v:?} is not a version"
            )));
        }
        if let Some(f) = &self.file {
            check_path("pkg.ensure", f)?;
        }
        if self.state != PkgState::Present && (self.version.is_some() || self.file.is_some()) {
            return Err(OpError::BadArgs(
                "pkg.ensure args: version and file go with state \"present\" only".into(),
            ));
        }
        Ok(())
    }
}

/// What a `service.*` op does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceAction {
    /// Running afterwards; unchanged when it already was.
    Start,
    /// Stopped afterwards; unchanged when it already was.
    Stop,
    /// Restarted (started when it was stopped); always a change.
    Restart,
    /// Told to reload its configuration; always a change.
    Reload,
    /// Started at boot; unchanged when it already is.
    Enable,
    /// Not started at boot; unchanged when it already is not.
    Disable,
    /// Only report: running, enabled; never a change.
    Status,
}

impl ServiceAction {
    /// The action named by the part after `service.`.
    pub fn parse(name: &str) -> Option<ServiceAction> {
        Some(match name {
            "start" => ServiceAction::Start,
            "stop" => ServiceAction::Stop,
            "restart" => ServiceAction::Restart,
            "reload" => ServiceAction::Reload,
            "enable" => ServiceAction::Enable,
            "disable" => ServiceAction::Disable,
            "status" => ServiceAction::Status,
            _ => return None,
        })
    }

    /// The op that names this action (`service.start`).
    pub fn op_name(self) -> &'static str {
        match self {
            ServiceAction::Start => "service.start",
            ServiceAction::Stop => "service.stop",
            ServiceAction::Restart => "service.restart",
            ServiceAction::Reload => "service.reload",
            ServiceAction::Enable => "service.enable",
            ServiceAction::Disable => "service.disable",
            ServiceAction::Status => "service.status",
        }
    }

    /// The verb as the init systems spell it.
    pub fn verb(self) -> &'static str {
        match self {
            ServiceAction::Start => "start",
            ServiceAction::Stop => "stop",
            ServiceAction::Restart => "restart",
            ServiceAction::Reload => "reload",
            ServiceAction::Enable => "enable",
            ServiceAction::Disable => "disable",
            ServiceAction::Status => "status",
        }
    }
}

/// Arguments of the `service.*` ops.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceArgs {
    /// The service (`nginx`, `ssh`): a systemd unit name, an OpenRC or SysV script name.
    pub name: String,
    /// `service.reload` only: restart instead when the service cannot reload.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restart_fallback: bool,
    /// Check mode: report what would change, change nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub check: bool,
}

impl ServiceArgs {
    pub(super) fn validate(&self, op: &str, action: ServiceAction) -> Result<(), OpError> {
        let ok = !self.name.is_empty()
            && !self.name.starts_with(['-', '.'])
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "@+-._:".contains(c));
        if !ok {
            return Err(OpError::BadArgs(format!(
                "{op} args: {:?} is not a service name",
                self.name
            )));
        }
        if self.restart_fallback && action != ServiceAction::Reload {
            return Err(OpError::BadArgs(format!(
                "{op} args: restart_fallback is for service.reload only"
            )));
        }
        Ok(())
    }
}

/// What a `service.*` op found and did, in DONE's `result`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceResult {
    /// The service.
    pub name: String,
    /// The init system used: `systemd`, `openrc` or `sysv`.
    pub manager: String,
    /// Running before the op.
    pub running: bool,
    /// Started at boot before the op, when the init system can tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `started`, `stopped`, `restarted`, `reloaded`, `enabled`, `disabled` (or would be, in
    /// check mode); empty when nothing changed.
    pub changes: Vec<String>,
}

/// What `pkg.ensure` found and did, in DONE's `result`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PkgResult {
    /// The package.
    pub name: String,
    /// The package manager used (`apt`, `dnf`, `yum`, `apk`, `zypper`, `pacman`).
    pub manager: String,
    /// The version installed before, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The version installed after (in check mode: unchanged), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// `installed`, `removed`, `upgraded` (or would be, in check mode); empty when nothing.
    pub changes: Vec<String>,
}
