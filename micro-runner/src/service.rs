//! `service.*`: start, stop, restart, reload, enable, disable or report a service through the
//! host's init system: systemd (`systemctl`), OpenRC (`rc-service`, `rc-update`) or SysV
//! (`/etc/init.d/NAME`, `update-rc.d` or `chkconfig`).
//!
//! Each op asks the init system for the state first, so `start`, `stop`, `enable` and `disable`
//! change nothing when the service already is as asked. `restart` and `reload` are actions:
//! they always change. A `reload` the service cannot do fails, unless `restart_fallback` asked
//! for a restart instead; a reload that the service attempted and failed never turns into a
//! restart (that would take a running service down on a bad configuration).

use std::path::Path;
use std::process::Command;

use wisp_protocol::ops::{ServiceAction, ServiceArgs, ServiceResult};

use crate::system::{Failure, output, run};

/// Runs `action` on the service through `init` (as `facts` names it).
pub(crate) fn act(
    action: ServiceAction,
    args: &ServiceArgs,
    init: &str,
) -> Result<ServiceResult, Failure> {
    let manager = Manager::for_init(init)?;
    let name = args.name.as_str();
    let (running, enabled) = manager.state(name)?;
    let mut result = ServiceResult {
        name: name.into(),
        manager: init.into(),
        running,
        enabled,
        changes: Vec::new(),
    };
    let change = match action {
        ServiceAction::Status => None,
        ServiceAction::Start => (!running).then_some("started"),
        ServiceAction::Stop => running.then_some("stopped"),
        ServiceAction::Restart => Some("restarted"),
        ServiceAction::Reload => Some("reloaded"),
        ServiceAction::Enable => (enabled != Some(true)).then_some("enabled"),
        ServiceAction::Disable => (enabled != Some(false)).then_some("disabled"),
    };
    let Some(change) = change else {
        return Ok(result);
    };
    if args.check {
        result.changes.push(change.into());
        return Ok(result);
    }
    // What an init script daemonises is the host's service: with the runner no longer
    // adopting orphans meanwhile, it is reparented to init and outlives the session, where an
    // ordinary command's strays are adopted and killed at shutdown. Orphans that a command
    // running at the same moment leaves escape adoption too (plans send one command at a time
    // per host).
    subreaper(0);
    let done = match action {
        ServiceAction::Enable | ServiceAction::Disable => manager
            .boot(name, action == ServiceAction::Enable)
            .map(|()| change),
        ServiceAction::Reload => manager.reload(name, args.restart_fallback),
        _ => run(&mut manager.control(name, action.verb())).map(|_| change),
    };
    subreaper(1);
    let done = done?;
    result.changes.push(done.into());
    Ok(result)
}

fn subreaper(on: libc::c_ulong) {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag, no pointers.
    #[allow(unsafe_code)]
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, on, 0, 0, 0);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Manager {
    Systemd,
    OpenRc,
    SysV,
}

impl Manager {
    fn for_init(init: &str) -> Result<Manager, Failure> {
        match init {
            "systemd" => Ok(Manager::Systemd),
            "openrc" => Ok(Manager::OpenRc),
            "sysv" => Ok(Manager::SysV),
            other => Err(Failure::Failed(format!(
                "no supported init system on this host (found {other}; wisp drives systemd, \
                 OpenRC and SysV init scripts)"
            ))),
        }
    }

    /// Running, and started at boot when the init system can tell; an unknown service is an
    /// error naming where it was looked for.
    fn state(self, name: &str) -> Result<(bool, Option<bool>), Failure> {
        if self == Manager::Systemd {
            let out = run(Command::new("systemctl").args([
                "show",
                "--property=LoadState,ActiveState,UnitFileState",
                "--",
                name,
            ]))?;
            let text = String::from_utf8_lossy(&out.stdout);
            let field = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                    .unwrap_or("")
                    .to_owned()
            };
            if field("LoadState") == "not-found" {
                return Err(Failure::Failed(format!("systemd knows no unit {name:?}")));
            }
            let running = matches!(field("ActiveState").as_str(), "active" | "reloading");
            let enabled = match field("UnitFileState").as_str() {
                "enabled" | "enabled-runtime" | "alias" => Some(true),
                "disabled" | "masked" | "masked-runtime" => Some(false),
                _ => None,
            };
            return Ok((running, enabled));
        }
        let script = Path::new("/etc/init.d").join(name);
        if !script.is_file() {
            return Err(Failure::Failed(format!(
                "no init script {} on this host",
                script.display()
            )));
        }
        // Both OpenRC and LSB scripts exit 0 from `status` when the service runs (LSB: 3 when
        // stopped, 4 when unknown); anything but 0 counts as not running.
        let running = output(&mut self.control(name, "status"))?.status.success();
        Ok((running, self.enabled(name)))
    }

    fn enabled(self, name: &str) -> Option<bool> {
        let dirs: &[&str] = match self {
            Manager::OpenRc => &["/etc/runlevels"],
            _ => &["/etc", "/etc/rc.d"],
        };
        let mut seen_any_dir = false;
        for base in dirs {
            let Ok(entries) = std::fs::read_dir(base) else {
                continue;
            };
            for entry in entries.flatten() {
                let dir_name = entry.file_name();
                let dir_name = dir_name.to_string_lossy();
                let runlevel = match self {
                    Manager::OpenRc => true,
                    // rc2.d to rc5.d: the multi-user runlevels.
                    _ => matches!(dir_name.as_ref(), "rc2.d" | "rc3.d" | "rc4.d" | "rc5.d"),
                };
                if !runlevel {
                    continue;
                }
                seen_any_dir = true;
                let Ok(links) = std::fs::read_dir(entry.path()) else {
                    continue;
                };
                let found = links.flatten().any(|l| {
                    let l = l.file_name();
                    let l = l.to_string_lossy();
                    match self {
                        Manager::OpenRc => l == name,
                        // S20nginx: a start link, two digits of order.
                        _ => l.strip_prefix('S').and_then(|r| r.get(2..)) == Some(name),
                    }
                });
                if found {
                    return Some(true);
                }
            }
        }
        seen_any_dir.then_some(false)
    }

    /// The command that runs `verb` (start, stop, …) on the service.
    fn control(self, name: &str, verb: &str) -> Command {
        match self {
            Manager::Systemd => {
                let mut c = Command::new("systemctl");
                c.args([verb, "--", name]);
                c
            }
            Manager::OpenRc => {
                let mut c = Command::new("rc-service");
                c.args([name, verb]);
                c
            }
            Manager::SysV => {
                // As `service` does: the script sees a clean environment.
                let mut c = Command::new(Path::new("/etc/init.d").join(name));
                c.env_clear().arg(verb);
                c
            }
        }
    }

    fn reload(self, name: &str, restart_fallback: bool) -> Result<&'static str, Failure> {
        if self == Manager::Systemd {
            let verb = if restart_fallback {
                "reload-or-restart"
            } else {
                "reload"
            };
            run(&mut self.control(name, verb))?;
            return Ok("reloaded");
        }
        let mut cmd = self.control(name, "reload");
        let out = output(&mut cmd)?;
        if out.status.success() {
            return Ok("reloaded");
        }
        if restart_fallback && cannot_reload(&out) {
            run(&mut self.control(name, "restart"))?;
            return Ok("restarted");
        }
        let mut message = crate::system::failed(&cmd, &out);
        if cannot_reload(&out) {
            message.push_str(" (the service cannot reload; set restart_fallback to restart it)");
        }
        Err(Failure::Failed(message))
    }

    fn boot(self, name: &str, enable: bool) -> Result<(), Failure> {
        match self {
            Manager::Systemd => {
                let verb = if enable { "enable" } else { "disable" };
                run(&mut self.control(name, verb))?;
            }
            Manager::OpenRc if enable => {
                run(Command::new("rc-update").args(["add", name, "default"]))?;
            }
            Manager::OpenRc => {
                run(Command::new("rc-update").args(["--all", "del", name]))?;
            }
            Manager::SysV if has("update-rc.d") => {
                if enable {
                    // `defaults` creates the links from the script's LSB header when there are
                    // none; `enable` turns existing stop links back into start links.
                    run(Command::new("update-rc.d").args([name, "defaults"]))?;
                    run(Command::new("update-rc.d").args([name, "enable"]))?;
                } else {
                    run(Command::new("update-rc.d").args([name, "disable"]))?;
                }
            }
            Manager::SysV if has("chkconfig") => {
                let state = if enable { "on" } else { "off" };
                run(Command::new("chkconfig").args([name, state]))?;
            }
            Manager::SysV => {
                return Err(Failure::Failed(
                    "neither update-rc.d nor chkconfig is on this host: cannot change what \
                     starts at boot"
                        .into(),
                ));
            }
        }
        Ok(())
    }
}

/// The script or tool said it has no reload: LSB's status 3 ("unimplemented feature"), or a
/// usage message, or OpenRC's refusal.
fn cannot_reload(out: &std::process::Output) -> bool {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .to_ascii_lowercase();
    out.status.code() == Some(3)
        || text.contains("usage:")
        || text.contains("does not support")
        || text.contains("no such function")
}

fn has(tool: &str) -> bool {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(tool).is_file())
}
