//! `package` (and `apt`, `dnf`, `yum`, `apk`) and `service` (and `systemd`): packages and
//! services through the ops the runner has, a list of packages one op per name.

use super::args::{Args, Step, need};
use super::kv::one_expression;
use super::refuse;
use crate::Located;
use crate::data::Data;
use crate::source::{Src, SrcValue};

/// The loop var a package list is walked with.
const PKG_VAR: &str = "__wisp_package";

pub(crate) fn package(a: &mut Args<'_>, line: usize) -> Result<Vec<Step>, Located> {
    a.ignore(&["force_apt_get", "lock_timeout", "use", "install_recommends"]);
    let mut steps = Vec::new();
    let update = matches!(a.flag(&["update_cache", "update-cache"]), Some(Ok(true)));
    let valid = a.take(&["cache_valid_time"]);
    if update {
        // `apt-get update`, unless the lists were refreshed less than cache_valid_time ago.
        let shell = match &valid {
            Some(Src {
                value: SrcValue::Decimal(s),
                ..
            }) => format!(
                "[ -n \"$(find /var/lib/apt/lists -maxdepth 0 -newermt '-{s} seconds' 2>/dev/null)\" ] \
                 || apt-get update -q"
            ),
            _ => "apt-get update -q".to_owned(),
        };
        let mut s = Step::op("exec", line).put("shell", Src::text(line, shell));
        s.name = Some("update the package lists".into());
        s.keys
            .push(("changed_when".into(), Src::text(line, "false")));
        s.own = vec!["changed_when", "loop", "loop_control", "register", "notify"];
        steps.push(s);
    }
    let state = match a.text(&["state"])?.map(|(s, _)| s).as_deref() {
        None | Some("present" | "installed") => "present",
        Some("absent" | "removed") => "absent",
        Some("latest") => "latest",
        Some(other) => return Err(refuse(line, format!("{}: state {other:?}", a.module))),
    };
    let file = a.take(&["deb"]);
    let name = a.take(&["name", "pkg"]);
    let Some(name) = name.or_else(|| file.clone().map(|_| Src::text(line, "package"))) else {
        if steps.is_empty() {
            return Err(refuse(line, format!("{} needs name", a.module)));
        }
        return Ok(steps);
    };
    let mut step = Step::op("pkg.ensure", line).put("state", Src::text(line, state));
    if let Some(f) = file {
        step = step.put("file", f);
    }
    match &name.value {
        SrcValue::Scalar(Data::Str(s)) if one_expression(s).is_some() || s.contains(',') => {
            // A list at run time, or `a,b`: one op per name.
            let items = match one_expression(s) {
                Some(e) => Src::text(name.line, format!("{{{{ [{e}] | flatten(levels=1) }}}}")),
                None => Src {
                    line: name.line,
                    value: SrcValue::List(
                        s.split(',')
                            .map(|n| Src::text(name.line, n.trim()))
                            .collect(),
                    ),
                },
            };
            step = per_name(step, items, name.line);
        }
        SrcValue::List(_) => step = per_name(step, name.clone(), name.line),
        _ => step = step.put("name", name),
    }
    steps.push(step);
    Ok(steps)
}

fn per_name(step: Step, items: Src, line: usize) -> Step {
    let mut s = step
        .put("name", Src::text(line, format!("{{{{ {PKG_VAR} }}}}")))
        .key("loop", items)
        .key(
            "loop_control",
            Src::map(line, vec![("loop_var".into(), Src::text(line, PKG_VAR))]),
        );
    s.own = vec!["loop", "loop_control"];
    s
}

pub(crate) fn service(a: &mut Args<'_>, line: usize) -> Result<Vec<Step>, Located> {
    a.ignore(&["use", "scope"]);
    let name = need(a, &["name", "service", "unit"], line)?;
    let mut steps = Vec::new();
    if matches!(a.flag(&["daemon_reload", "daemon-reload"]), Some(Ok(true))) {
        let mut s = Step::op("exec", line).put(
            "argv",
            Src::list(
                line,
                vec![
                    Src::text(line, "systemctl"),
                    Src::text(line, "daemon-reload"),
                ],
            ),
        );
        s.name = Some("systemctl daemon-reload".into());
        s.keys
            .push(("changed_when".into(), Src::text(line, "false")));
        s.own = vec!["changed_when"];
        steps.push(s);
    }
    match a.flag(&["enabled"]) {
        None => {}
        Some(Ok(on)) => steps.push(
            Step::op(
                if on {
                    "service.enable"
                } else {
                    "service.disable"
                },
                line,
            )
            .put("name", name.clone()),
        ),
        Some(Err(v)) => return Err(refuse(v.line, "enabled must be yes or no here")),
    }
    if let Some((state, at)) = a.text(&["state"])? {
        let op = match state.as_str() {
            "started" => "service.start",
            "stopped" => "service.stop",
            "restarted" => "service.restart",
            "reloaded" => "service.reload",
            other => return Err(refuse(at, format!("{}: state {other:?}", a.module))),
        };
        steps.push(Step::op(op, line).put("name", name));
    }
    if steps.is_empty() {
        return Err(refuse(
            line,
            format!("{} needs state, enabled or daemon_reload", a.module),
        ));
    }
    Ok(steps)
}
