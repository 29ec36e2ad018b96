//! `wisp apply site.yml`: an Ansible playbook's plays run one after the other, each as a
//! plan on the hosts its `hosts` selects (and the command line's TARGETS, when given, limit),
//! with the play's `become`, `serial` and `max_fail_percentage`; `wisp apply --role DIR
//! HOSTS`: one role as a play; `--check-support`: what a playbook uses that wisp lacks.

use std::io::Write;
use std::path::Path;

use super::apply::{ApplyArgs, Mode, PlanArgs};
use super::{parse_error, usage_error};
use wisp_events::exit::ExitStatus;
use wisp_plan::ansible::{self, Play};
use wisp_protocol::error::chain as error_chain;

/// `wisp apply` of a playbook or a role.
pub(super) fn main(a: ApplyArgs) -> ExitStatus {
    let role = a.role.as_deref();
    if a.check_support {
        if !ansible::is_playbook(&a.plan.plan) {
            return usage_error("--check-support reads an Ansible playbook (.yml, .yaml)");
        }
        return check_support(&a.plan.plan);
    }
    if a.list_tasks || a.list_hosts {
        let plays = match plays(&a.plan, role) {
            Ok(p) => p,
            Err(status) => return status,
        };
        for p in plays {
            let status = if a.list_tasks {
                super::apply::list_tasks(&p.plan)
            } else {
                let mut common = a.plan.common.clone();
                common.playbook_dir = Some(super::apply::plan_dir(&p.path));
                super::connect::list_hosts(&spec(&p, role.is_some(), &a.plan), &common)
            };
            if status != ExitStatus::Ok {
                return status;
            }
        }
        return ExitStatus::Ok;
    }
    let mode = a.mode();
    run(a.plan, role, mode)
}

/// The hosts a play runs on: over an inventory, TARGETS limits the play's `hosts`; without
/// one, TARGETS are the hosts (the play's pattern has nothing to select from).
fn spec(play: &Play, role: bool, a: &PlanArgs) -> String {
    match (role, &a.targets, &a.common.inventory) {
        (false, Some(t), Some(_)) => format!("{}:&{t}", play.hosts),
        (false, Some(t), None) => t.clone(),
        _ => play.hosts.clone(),
    }
}

/// `--check-support`: each thing the playbook uses that wisp does not implement, with its
/// file and line; exit 0 when there is none, 4 when there is.
fn check_support(path: &Path) -> ExitStatus {
    let found = match ansible::check_support(path) {
        Ok(f) => f,
        Err(e) => return parse_error(&error_chain(&e)),
    };
    let mut out = std::io::stdout().lock();
    if found.is_empty() {
        let _ = writeln!(out, "{}: wisp runs everything it uses", path.display());
        return ExitStatus::Ok;
    }
    for f in &found {
        let _ = writeln!(out, "{f}");
    }
    let _ = writeln!(
        out,
        "{}: {} use(s) of what wisp does not implement",
        path.display(),
        found.len()
    );
    ExitStatus::ParseError
}

/// Reads the plays (or the role) named by `a`.
fn plays(a: &PlanArgs, role: Option<&Path>) -> Result<Vec<Play>, ExitStatus> {
    let extra = wisp_plan::extra_vars(&a.options.extra_vars).map_err(|e| usage_error(&e))?;
    let loaded = match role {
        Some(dir) => {
            // With --role, the first argument names the hosts.
            let hosts = a.plan.display().to_string();
            ansible::load_role(dir, &hosts, a.common.become_root, extra).map(|p| vec![p])
        }
        None => ansible::load_playbook(&a.plan, extra),
    };
    let mut plays = loaded.map_err(|e| parse_error(&error_chain(&e)))?;
    let selection = wisp_plan::Selection {
        tags: a.options.tags.clone(),
        skip_tags: a.options.skip_tags.clone(),
        start_at: a.options.start_at_task.clone(),
    };
    for p in &mut plays {
        p.plan.select(&selection).map_err(|e| usage_error(&e))?;
    }
    Ok(plays)
}

/// Runs each play in turn; the first that does not end well stops the playbook, with its
/// exit status.
fn run(a: PlanArgs, role: Option<&Path>, mode: Mode) -> ExitStatus {
    let plays = match plays(&a, role) {
        Ok(p) => p,
        Err(status) => return status,
    };
    let count = plays.len();
    for (i, play) in plays.into_iter().enumerate() {
        let mut common = a.common.clone();
        common.playbook_dir = Some(super::apply::plan_dir(&play.path));
        common.become_root |= play.become_root;
        if common.rollout.serial.is_none()
            && let Some(s) = &play.serial
        {
            match s.parse() {
                Ok(serial) => common.rollout.serial = Some(serial),
                Err(e) => {
                    return parse_error(&format!(
                        "{}:{}: serial: {e}",
                        play.path.display(),
                        play.line
                    ));
                }
            }
        }
        if common.rollout.max_fail.is_none()
            && let Some(p) = play.max_fail_percentage
        {
            // Ansible stops once more than the share has failed: the budget is that share.
            common.rollout.max_fail = format!("{}%", p.clamp(0.0, 100.0).floor()).parse().ok();
        }
        let spec = spec(&play, role.is_some(), &a);
        if !common.json {
            let _ = writeln!(
                std::io::stderr(),
                "play {}/{count}: {} (hosts: {spec})",
                i + 1,
                play.name
            );
        }
        let status = super::apply::run_loaded(play.plan, &spec, common, &a.options, mode, None);
        if status != ExitStatus::Ok {
            return status;
        }
    }
    ExitStatus::Ok
}
