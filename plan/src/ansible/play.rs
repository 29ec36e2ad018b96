//! A playbook's plays, each read into a plan: `pre_tasks`, the `roles`, `tasks` and
//! `post_tasks` in that order; `vars` and `vars_files` as the plan's vars; and the keys that
//! say how the play runs.

use std::path::{Path, PathBuf};

use super::{Cx, Reading, at, dir_of, plan_of, refuse, task, vars_file};
use crate::data::{Data, DataMap};
use crate::gathered::Gathered;
use crate::source::{Src, SrcValue, read_yaml};
use crate::{Located, Plan, PlanError, PlanErrorKind};

/// One play, ready to run.
#[derive(Debug)]
pub struct Play {
    /// Its name (`hosts` when it has none).
    pub name: String,
    /// The host pattern it runs on.
    pub hosts: String,
    /// Its tasks and handlers, vars and roles.
    pub plan: Plan,
    /// `become: true`: the whole play runs as root.
    pub become_root: bool,
    /// `serial`, as written (a count, a percentage, or a list of them).
    pub serial: Option<String>,
    /// `max_fail_percentage`.
    pub max_fail_percentage: Option<f64>,
    /// The file and line it starts on.
    pub path: PathBuf,
    /// Its line.
    pub line: usize,
}

/// Play keys wisp reads.
const PLAY_KEYS: &[&str] = &[
    "name",
    "hosts",
    "vars",
    "vars_files",
    "roles",
    "pre_tasks",
    "tasks",
    "post_tasks",
    "handlers",
    "become",
    "become_user",
    "become_method",
    "serial",
    "max_fail_percentage",
    "gather_facts",
    "collections",
    "strategy",
];

/// Reads a playbook: its plays in order (`import_playbook` entries read in place).
pub fn load_playbook(path: &Path, extra_vars: DataMap) -> Result<Vec<Play>, PlanError> {
    let mut plays = Vec::new();
    read_plays(path, &extra_vars, false, &mut plays, &mut Vec::new(), 0)?;
    Ok(plays)
}

/// What a playbook uses that wisp does not implement, each as `FILE:LINE: what`; empty when
/// it all runs. Other errors (a missing file, bad YAML) are errors.
pub fn check_support(path: &Path) -> Result<Vec<String>, PlanError> {
    let mut found = Vec::new();
    read_plays(path, &DataMap::new(), true, &mut Vec::new(), &mut found, 0)?;
    Ok(found)
}

/// `wisp apply --role DIR`: one play that runs the role at `dir` on the hosts named.
pub fn load_role(
    dir: &Path,
    hosts: &str,
    become_root: bool,
    extra_vars: DataMap,
) -> Result<Play, PlanError> {
    let dir = dir.canonicalize().map_err(|e| PlanError {
        path: dir.to_owned(),
        line: None,
        kind: PlanErrorKind::Unreadable(e),
    })?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let root_dir = dir_of(&dir);
    let line = 1;
    let text = format!("- hosts: {hosts}\n  roles: [{name}]\n");
    let root = Src::map(
        line,
        vec![
            ("vars".into(), Src::map(line, Vec::new())),
            (
                "task".into(),
                Src {
                    line,
                    value: SrcValue::List(vec![Src::map(
                        line,
                        vec![("role".into(), Src::text(line, name.clone()))],
                    )]),
                },
            ),
        ],
    );
    let reading = Reading {
        survey: false,
        become_root,
    };
    let gathered = Gathered::for_play(&root_dir, &reading);
    let plan = plan_of(
        &root,
        &text,
        &dir.join("tasks/main.yml"),
        extra_vars,
        gathered,
    )?;
    Ok(Play {
        name: format!("role {name}"),
        hosts: hosts.to_owned(),
        plan,
        become_root,
        serial: None,
        max_fail_percentage: None,
        path: dir,
        line,
    })
}

fn read_plays(
    path: &Path,
    extra: &DataMap,
    survey: bool,
    plays: &mut Vec<Play>,
    found: &mut Vec<String>,
    depth: usize,
) -> Result<(), PlanError> {
    let err = at(path);
    let text = std::fs::read_to_string(path).map_err(|e| PlanError {
        path: path.to_owned(),
        line: None,
        kind: PlanErrorKind::Unreadable(e),
    })?;
    let doc = read_yaml(&text).map_err(|(l, e)| err((l, PlanErrorKind::Syntax(e))))?;
    let Some(list) = doc.as_list() else {
        return Err(err(refuse(doc.line, "a playbook is a list of plays")));
    };
    for p in list {
        if let Some(next) = p
            .get("import_playbook")
            .or_else(|| p.get("ansible.builtin.import_playbook"))
        {
            let Some(file) = next.as_str() else {
                return Err(err(refuse(next.line, "import_playbook names a file")));
            };
            if depth > 8 {
                return Err(err(refuse(
                    next.line,
                    "playbooks import each other too deep",
                )));
            }
            read_plays(
                &dir_of(path).join(file),
                extra,
                survey,
                plays,
                found,
                depth + 1,
            )?;
            continue;
        }
        let reading = Reading {
            survey,
            become_root: is_true(p.get("become")),
        };
        let gathered = Gathered::for_play(&dir_of(path), &reading);
        let play = one_play(p, path, &text, extra.clone(), gathered, found)?;
        plays.extend(play);
    }
    Ok(())
}

fn is_true(v: Option<&Src>) -> bool {
    matches!(
        v.map(|v| &v.value),
        Some(SrcValue::Scalar(Data::Bool(true)))
    )
}

fn one_play(
    p: &Src,
    path: &Path,
    text: &str,
    extra: DataMap,
    gathered: Gathered,
    found: &mut Vec<String>,
) -> Result<Option<Play>, PlanError> {
    let err = at(path);
    let base = dir_of(path);
    let cx = Cx {
        base: &base,
        file: path,
        become_root: gathered.become_root.get(),
        gathered: &gathered,
        handlers: false,
    };
    let line = p.line;
    for (k, v) in p
        .as_map()
        .ok_or_else(|| err(refuse(line, "a play must be a mapping")))?
    {
        if !PLAY_KEYS.contains(&k.as_str()) {
            cx.unsupported(v.line, &format!("the play keyword {k}"))
                .map_err(&err)?;
        }
    }
    let hosts = match p.get("hosts").map(|h| (&h.value, h.line)) {
        Some((SrcValue::Scalar(Data::Str(s)), _)) => s.clone(),
        Some((SrcValue::List(items), _)) => items
            .iter()
            .filter_map(Src::as_str)
            .collect::<Vec<_>>()
            .join(":"),
        _ => return Err(err(refuse(line, "a play needs hosts"))),
    };
    check_play_keys(p, &cx).map_err(&err)?;
    let vars = play_vars(p, &base, &cx).map_err(&err)?;
    let mut tasks = Vec::new();
    let list = |k: &str| -> Result<Vec<Src>, PlanError> {
        match p.get(k) {
            None => Ok(Vec::new()),
            Some(l) => Ok(task::tasks(l, &cx)
                .map_err(&err)?
                .as_list()
                .unwrap_or_default()
                .to_vec()),
        }
    };
    tasks.extend(list("pre_tasks")?);
    for r in p.get("roles").and_then(Src::as_list).unwrap_or_default() {
        tasks.push(role_entry(r, &cx).map_err(&err)?);
    }
    tasks.extend(list("tasks")?);
    tasks.extend(list("post_tasks")?);
    let handler_cx = Cx {
        handlers: true,
        ..cx
    };
    let handlers = match p.get("handlers") {
        Some(h) => task::tasks(h, &handler_cx).map_err(&err)?,
        None => Src::list(line, Vec::new()),
    };
    let root = Src::map(
        line,
        vec![
            ("vars".into(), super::data_src(line, &Data::Map(vars))),
            ("task".into(), Src::list(line, tasks)),
            ("handler".into(), handlers),
        ],
    );
    let survey = gathered.survey.get();
    let unsupported = std::rc::Rc::clone(&gathered.unsupported);
    let plan = plan_of(&root, text, path, extra, gathered);
    if survey {
        // What the play's files use that wisp lacks is noted; whether the plan would then
        // pass its checks is not the question.
        found.extend(unsupported.take());
        return Ok(None);
    }
    let mut plan = plan?;
    // What Ansible's templates write as their header, by its default setting.
    plan.defaults
        .entry("ansible_managed".to_owned())
        .or_insert_with(|| Data::Str("Ansible managed".into()));
    Ok(Some(play_of(p, hosts, path, plan)))
}

/// The play, its plan read.
fn play_of(p: &Src, hosts: String, path: &Path, plan: Plan) -> Play {
    Play {
        name: p
            .get("name")
            .and_then(Src::as_str)
            .unwrap_or(&hosts)
            .to_owned(),
        hosts,
        become_root: is_true(p.get("become")),
        serial: p.get("serial").map(|s| match &s.value {
            SrcValue::Decimal(n) => n.to_string(),
            _ => s.as_str().unwrap_or_default().to_owned(),
        }),
        max_fail_percentage: p.get("max_fail_percentage").and_then(|v| match &v.value {
            #[allow(clippy::cast_precision_loss)] // a percentage
            SrcValue::Decimal(n) => Some(*n as f64),
            SrcValue::Scalar(Data::Float(f)) => Some(*f),
            _ => None,
        }),
        path: path.to_owned(),
        line: p.line,
        plan,
    }
}

/// The play's `vars`, with its `vars_files` over them.
fn play_vars(p: &Src, base: &Path, cx: &Cx<'_>) -> Result<DataMap, Located> {
    let mut vars = match p.get("vars").map(Src::to_data) {
        Some(Data::Map(m)) => m,
        None | Some(Data::Null) => DataMap::new(),
        Some(_) => return Err(refuse(p.line, "vars must be a mapping")),
    };
    for f in p
        .get("vars_files")
        .and_then(Src::as_list)
        .unwrap_or_default()
    {
        let Some(name) = f.as_str() else {
            cx.unsupported(f.line, "vars_files entries other than a file name")?;
            continue;
        };
        vars.extend(vars_file(&base.join(name), cx.gathered).map_err(|e| refuse(f.line, e))?);
    }
    Ok(vars)
}

/// The play keys with a meaning wisp reads only in part.
fn check_play_keys(p: &Src, cx: &Cx<'_>) -> Result<(), Located> {
    if let Some(u) = p.get("become_user")
        && u.as_str() != Some("root")
    {
        cx.unsupported(u.line, "become_user other than root on a play")?;
    }
    if let Some(m) = p.get("become_method")
        && m.as_str() != Some("sudo")
    {
        cx.unsupported(m.line, "become_method on a play (use --become-method)")?;
    }
    if let Some(s) = p.get("strategy")
        && s.as_str() != Some("linear")
    {
        cx.unsupported(s.line, "strategy other than linear")?;
    }
    Ok(())
}

/// A `roles:` entry: a name, or a mapping with `role` (or `name`) and the keywords.
pub(crate) fn role_entry(r: &Src, cx: &Cx<'_>) -> Result<Src, Located> {
    let line = r.line;
    if let Some(name) = r.as_str() {
        return Ok(Src::map(line, vec![("role".into(), Src::text(line, name))]));
    }
    let entries = r
        .as_map()
        .ok_or_else(|| refuse(line, "a role is a name or a mapping"))?;
    let mut out = Vec::new();
    let mut vars = Vec::new();
    for (k, v) in entries {
        match k.as_str() {
            "role" | "name" => out.push(("role".to_owned(), v.clone())),
            "when" | "tags" => out.push((k.clone(), v.clone())),
            "vars" => vars.extend(v.as_map().unwrap_or_default().iter().cloned()),
            "become" => {
                if !cx.become_root && is_true(Some(v)) {
                    cx.unsupported(
                        v.line,
                        "become on a role while the play does not become root",
                    )?;
                }
            }
            // Old style: a role's params written beside its name are its vars.
            other if !other.starts_with("with_") && other != "delegate_to" => {
                vars.push((k.clone(), v.clone()))
            }
            other => cx.unsupported(v.line, &format!("the keyword {other} on a role"))?,
        }
    }
    if !vars.is_empty() {
        out.push(("vars".into(), Src::map(line, vars)));
    }
    Ok(Src::map(line, out))
}
