//! Ansible modules as the plan model's ops: each module's args read (inline `k=v` text,
//! a mapping, and the task's `args`), checked, and turned into one op or a few; an arg that
//! would change what the module does and that wisp does not implement is refused by name.

use super::args::{Args, Step, need};
use super::{Cx, refuse};
use crate::Located;
use crate::data::Data;
use crate::source::{Src, SrcValue};

/// The name Ansible resolves a module key to: `ansible.builtin.copy` and `copy` alike.
pub(crate) fn short(name: &str) -> &str {
    name.strip_prefix("ansible.builtin.")
        .or_else(|| name.strip_prefix("ansible.legacy."))
        .unwrap_or(name)
}

/// What a module is and what to use instead when wisp does not implement it.
fn instead(module: &str) -> &'static str {
    match module {
        "meta" => "of meta, only flush_handlers is read",
        "setup" | "gather_facts" => "facts are read when a task names one",
        _ => "use command with creates, or shell",
    }
}

/// The steps `module` with `args` (and the task's `args`) makes; `None` when it is refused
/// and `--check-support` reads on.
pub(crate) fn module(
    name: &str,
    args: &Src,
    extra: Option<&Src>,
    line: usize,
    cx: &Cx<'_>,
) -> Result<Option<Vec<Step>>, Located> {
    let module = short(name);
    let free_form = matches!(
        module,
        "command"
            | "shell"
            | "raw"
            | "include_tasks"
            | "import_tasks"
            | "include_vars"
            | "include_role"
            | "import_role"
            | "meta"
    );
    let mut a = Args {
        module,
        line: args.line,
        free: None,
        map: Vec::new(),
    };
    match &args.value {
        SrcValue::Map(m) => a.map = m.clone(),
        SrcValue::Scalar(Data::Null) => {}
        SrcValue::Scalar(Data::Str(s)) => {
            let (kv, rest) = super::kv::split(s, free_form);
            a.map = kv
                .into_iter()
                .map(|(k, v)| (k, Src::text(args.line, v)))
                .collect();
            a.free = rest;
        }
        _ => {
            return Err(refuse(
                args.line,
                format!("{module}: args must be a mapping or text"),
            ));
        }
    }
    if let Some(extra) = extra {
        let Some(m) = extra.as_map() else {
            return Err(refuse(extra.line, "args must be a mapping"));
        };
        for (k, v) in m {
            if !a.map.iter().any(|(have, _)| have == k) {
                a.map.push((k.clone(), v.clone()));
            }
        }
    }
    let steps = match module {
        "command" | "shell" | "raw" => super::exec::command(&mut a, line)?,
        "copy" => super::copy::copy(&mut a, line, cx)?,
        "template" => template(&mut a, line)?,
        "file" => match super::paths::file(&mut a, line, cx)? {
            Some(s) => s,
            None => return Ok(None),
        },
        "lineinfile" | "blockinfile" | "replace" => edit(&mut a, line)?,
        "get_url" => super::fetch::get_url(&mut a, line)?,
        "wait_for" => super::paths::wait_for(&mut a, line)?,
        "service_facts" | "package_facts" => super::gather::gather(&mut a, line)?,
        "unarchive" => super::fetch::unarchive(&mut a, line)?,
        "user" | "group" | "cron" => controller_edit(&mut a, line),
        "package" | "apt" | "yum" | "dnf" | "apk" => super::system::package(&mut a, line)?,
        "service" | "systemd" | "systemd_service" | "sysvinit" => {
            super::system::service(&mut a, line)?
        }
        "include_vars" => vec![cx.include_vars(&mut a, line)?],
        "meta" if a.free.as_deref().map(str::trim) == Some("flush_handlers") => {
            a.free = None;
            vec![Step::op("flush_handlers", line)]
        }
        _ => match controller_side(&mut a, line)? {
            Some(steps) => steps,
            None => match includes(&mut a, line, cx)? {
                Some(steps) => steps,
                None => {
                    cx.unsupported_with(line, name, instead(module))?;
                    return Ok(None);
                }
            },
        },
    };
    Ok(a.done(cx)?.then_some(steps))
}

/// `user`, `group` and `cron`: ops the controller carries out over what it reads on the host,
/// their args passed on as they are named there.
fn controller_edit(a: &mut Args<'_>, line: usize) -> Vec<Step> {
    let module = a.module;
    match module {
        "user" | "group" => {
            a.ignore(&["local"]);
            let mut step = Step::op(module, line);
            let known = crate::edit::account::known_args(module);
            let (take, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut a.map)
                .into_iter()
                .partition(|(k, _)| known.contains(&k.as_str()));
            a.map = rest;
            for (k, v) in take {
                step = step.put(&k, v);
            }
            vec![step]
        }
        "cron" => {
            let mut step = Step::op("cron", line);
            for (to, names) in [
                ("name", &["name"][..]),
                ("job", &["job", "value"]),
                ("user", &["user"]),
                ("cron_file", &["cron_file"]),
                ("state", &["state"]),
                ("minute", &["minute"]),
                ("hour", &["hour"]),
                ("day", &["day", "dom"]),
                ("month", &["month"]),
                ("weekday", &["weekday", "dow"]),
                ("special_time", &["special_time"]),
            ] {
                if let Some(v) = a.take(names) {
                    step = step.put(to, v);
                }
            }
            match a.flag(&["disabled"]) {
                None => {}
                Some(Ok(b)) => step = step.put("disabled", Src::bool(line, b)),
                Some(Err(v)) => step = step.put("disabled", super::args::bool_template(&v, "")),
            }
            vec![step]
        }
        _ => Vec::new(),
    }
}

/// `lineinfile`, `blockinfile`, `replace`: an edit the controller computes from the file it
/// reads, written only over the file it read.
fn edit(a: &mut Args<'_>, line: usize) -> Result<Vec<Step>, Located> {
    a.ignore(&["unsafe_writes", "encoding"]);
    let module = a.module;
    let mut step = Step::op(module, line).put(
        "path",
        need(a, &["path", "dest", "destfile", "name"], line)?,
    );
    let (texts, flags): (&[(&str, &[&str])], &[&str]) = match module {
        "lineinfile" => (
            &[
                ("line", &["line", "value"]),
                ("regexp", &["regexp", "regex"]),
                ("search_string", &["search_string"]),
                ("insertafter", &["insertafter"]),
                ("insertbefore", &["insertbefore"]),
                ("state", &["state"]),
            ],
            &["backrefs", "firstmatch", "create", "backup"],
        ),
        "blockinfile" => (
            &[
                ("block", &["block", "content"]),
                ("marker", &["marker"]),
                ("marker_begin", &["marker_begin"]),
                ("marker_end", &["marker_end"]),
                ("insertafter", &["insertafter"]),
                ("insertbefore", &["insertbefore"]),
                ("state", &["state"]),
            ],
            &["create", "backup", "append_newline", "prepend_newline"],
        ),
        _ => (
            &[
                ("regexp", &["regexp"]),
                ("replace", &["replace"]),
                ("after", &["after"]),
                ("before", &["before"]),
            ],
            &["backup"],
        ),
    };
    for (to, names) in texts {
        if let Some(v) = a.take(names) {
            step = step.put(to, v);
        }
    }
    for f in flags {
        match a.flag(&[f]) {
            None => {}
            Some(Ok(b)) => {
                step = step.put(
                    f,
                    Src {
                        line,
                        value: SrcValue::Scalar(Data::Bool(b)),
                    },
                )
            }
            Some(Err(v)) => step = step.put(f, super::args::bool_template(&v, "")),
        }
    }
    Ok(vec![a.attrs(step, false)?])
}

/// `template`: a file of the role's (or playbook's) `templates/`, rendered per host.
fn template(a: &mut Args<'_>, line: usize) -> Result<Vec<Step>, Located> {
    a.ignore(&["unsafe_writes", "follow"]);
    for (k, default) in [
        ("trim_blocks", true),
        ("lstrip_blocks", false),
        ("force", true),
    ] {
        if let Some(v) = a.flag(&[k])
            && !matches!(v, Ok(b) if b == default)
        {
            return Err(refuse(
                line,
                format!("template with {k}: {} is not supported", !default),
            ));
        }
    }
    let src = need(a, &["src"], line)?;
    let dest = need(a, &["dest"], line)?;
    let step = match src.as_str() {
        // A template picked when the task runs, by its name under `templates/`.
        Some(s) if crate::data::is_template(s) => {
            let content = format!(
                "{{% set __wisp_src %}}{s}{{% endset %}}{{% set __wisp_out %}}\
                 {{% include __wisp_src %}}{{% endset %}}{{{{ __wisp_out }}}}\
                 {{{{ __wisp_newline(__wisp_src, __wisp_out) }}}}"
            );
            Step::op("file.write", line)
                .put("path", dest)
                .key("content", Src::text(src.line, content))
        }
        _ => Step::op("template", line).put("src", src).put("dest", dest),
    };
    Ok(vec![a.attrs(step, true)?])
}

/// `stat`, and the modules the controller carries out (`debug`, `assert`, `fail`,
/// `set_fact`); `None` for another module.
fn controller_side(a: &mut Args<'_>, line: usize) -> Result<Option<Vec<Step>>, Located> {
    let steps = match a.module {
        "stat" => {
            a.ignore(&[
                "get_checksum",
                "get_md5",
                "get_mime",
                "get_attributes",
                "follow",
                "checksum_algorithm",
            ]);
            let path = need(a, &["path", "dest", "name"], line)?;
            vec![Step::op("file.stat", line).put("path", path)]
        }
        "debug" => {
            a.ignore(&["verbosity"]);
            let mut s = Step::op("debug", line);
            for k in ["msg", "var"] {
                if let Some(v) = a.take(&[k]) {
                    s = s.put(k, v);
                }
            }
            vec![s]
        }
        "assert" => {
            a.ignore(&["quiet"]);
            let mut s = Step::op("assert", line).put("that", need(a, &["that"], line)?);
            if let Some(v) = a.take(&["fail_msg", "msg"]) {
                s = s.put("fail_msg", v);
            }
            if let Some(v) = a.take(&["success_msg"]) {
                s = s.put("success_msg", v);
            }
            vec![s]
        }
        "fail" => {
            let msg = a
                .take(&["msg"])
                .unwrap_or_else(|| Src::text(line, "Failed as requested from task"));
            vec![Step::op("fail", line).put("msg", msg)]
        }
        "set_fact" => {
            a.ignore(&["cacheable"]);
            let mut s = Step::op("set_fact", line);
            s.args.append(&mut a.map);
            vec![s]
        }
        _ => return Ok(None),
    };
    Ok(Some(steps))
}

/// `include_tasks`, `import_tasks`, `include_role`, `import_role`; `None` for another module.
fn includes(a: &mut Args<'_>, line: usize, cx: &Cx<'_>) -> Result<Option<Vec<Step>>, Located> {
    let module = a.module;
    let steps = match module {
        "include_tasks" | "import_tasks" => {
            let file = a.free.take().map(|f| (f, line)).or(a.text(&["file"])?);
            let Some((file, at)) = file else {
                return Err(refuse(line, format!("{module} needs a file")));
            };
            let path = cx.find_tasks_file(&file).ok_or_else(|| {
                refuse(
                    at,
                    format!(
                        "{module}: no tasks file {file:?} beside {}",
                        cx.file.display()
                    ),
                )
            })?;
            vec![Step::op("", line).key("include", Src::text(line, path))]
        }
        "include_role" | "import_role" => {
            a.ignore(&["public", "allow_duplicates", "rolespec_validate"]);
            let (role, _) = a
                .text(&["name", "role"])?
                .or(a.free.take().map(|f| (f, line)))
                .ok_or_else(|| refuse(line, format!("{module} needs name")))?;
            vec![Step::op("", line).key("role", Src::text(line, role))]
        }
        _ => return Ok(None),
    };
    Ok(Some(steps))
}
